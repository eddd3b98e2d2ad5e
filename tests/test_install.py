"""Both an editable and a wheel install expose neurobridge.kernels and neurobridge.datasets, and neither folder
ever shadows the PyPI packages ``kernels`` (imported by transformers) and ``datasets`` (Hugging Face)."""

import importlib.metadata
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SITE = Path(sysconfig.get_paths()["purelib"]).resolve()


def _run_from_root(code: str, **env) -> subprocess.CompletedProcess:
    """``python -c code`` with the repository root as working directory, so it is ``sys.path[0]``."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **env})


@pytest.mark.parametrize("name", ["kernels", "datasets"])
def test_repo_root_never_shadows_the_pypi_package(name):
    """From the repository root, ``import kernels`` / ``import datasets`` give the installed PyPI package
    (both are in the dev extra), and the folders stay importable as ``neurobridge.<name>``."""
    importlib.metadata.distribution(name)  # installed by the dev extra; a missing one is a setup error
    code = (f"import sys; assert sys.path[0] in ('', {str(ROOT)!r}), sys.path[:2]; import {name}, neurobridge.{name}; "
            f"print({name}.__file__); print(neurobridge.{name}.__file__); "
            f"print(sys.modules[{name!r}] is {name})")
    out = _run_from_root(code)
    assert out.returncode == 0, out.stderr
    pypi, ours, same = out.stdout.split()
    assert Path(pypi).resolve().is_relative_to(SITE), f"import {name} from the repository root gave {pypi}"
    assert Path(ours).resolve() == ROOT / name / "__init__.py"
    assert same == "True"


def test_transformers_imports_pypi_kernels_from_repo_root():
    """The regression itself: transformers does ``from kernels import ...`` names our folder never had."""
    pytest.importorskip("transformers")
    code = ("import transformers, neurobridge.kernels, kernels; from transformers import AutoConfig; "
            "from kernels import CUDAProperties; print(neurobridge.kernels.info('cpu')['pool_stats'].implementation)")
    out = _run_from_root(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "reference"


@pytest.mark.parametrize("name", ["kernels", "datasets"])
def test_our_folders_are_not_reachable_as_top_level_packages(name, tmp_path):
    """Without the PyPI package on the path, ``import <name>`` from the root fails as if the folder were absent,
    and our submodules are never reachable under the top-level name."""
    # An interpreter that sees only the standard library and the repository root.
    code = (f"import sys; sys.path[:] = [p for p in sys.path if 'site-packages' not in p]; "
            f"sys.path.insert(0, {str(ROOT)!r})\n"
            f"try:\n    import {name}\nexcept ModuleNotFoundError as e:\n    print('absent', e.name)\n"
            f"else:\n    print('imported', {name}.__file__)")
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["absent", name]
    sub = "pool_stats" if name == "kernels" else "_simulate"
    out = _run_from_root(f"import {name}.{sub}")
    assert out.returncode != 0 and "ModuleNotFoundError" in out.stderr, out.stdout


def test_script_and_module_run_from_repo_root_use_pypi_packages(tmp_path):
    """A script in the root's place (``PYTHONPATH`` = root, as ``python script.py`` there sets ``sys.path[0]``)
    and ``python -m`` from the root both see the PyPI packages."""
    script = tmp_path / "analysis.py"
    script.write_text("import datasets, kernels, neurobridge as nb\n"
                      "print(datasets.__file__); print(kernels.__file__); print(nb.datasets.list()[0])\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=ROOT, env=env)
    assert out.returncode == 0, out.stderr
    hf, pypi_kernels, first = out.stdout.split()
    assert Path(hf).resolve().is_relative_to(SITE) and Path(pypi_kernels).resolve().is_relative_to(SITE)
    assert first == "haxby"
    # ``python -m`` puts the working directory first on sys.path; timeit runs the statement under it.
    stmt = ("import datasets, kernels, neurobridge.datasets; "
            f"assert all(m.__file__.startswith({str(SITE)!r}) for m in (datasets, kernels)), (datasets, kernels)")
    out = subprocess.run([sys.executable, "-m", "timeit", "-n", "1", "-r", "1", stmt], capture_output=True,
                         text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr


def test_editable_install_maps_top_level_folders():
    import neurobridge
    import neurobridge.datasets
    import neurobridge.kernels

    assert Path(neurobridge.kernels.__file__).resolve().parent == ROOT / "kernels"
    assert Path(neurobridge.datasets.__file__).resolve().parent == ROOT / "datasets"
    assert Path(neurobridge.__file__).resolve().parent == ROOT / "neurobridge"


def test_import_has_no_side_effects():
    code = ("import sys, neurobridge; "
            "heavy = [m for m in ('torch.cuda', 'pytest', 'transformers', 'mne', 'nilearn', 'triton') "
            "if m in sys.modules and m != 'torch.cuda']; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]" and out.stderr == ""


def test_wheel_install_imports_mapped_packages(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(ROOT)],
                   check=True, cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob("neurobridge-*.whl")
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True)
    code = (f"import sys; sys.path.insert(0, {str(target)!r}); import neurobridge, neurobridge.kernels, "
            "neurobridge.datasets, neurobridge.core; "
            "print(neurobridge.kernels.__file__); print(neurobridge.datasets.__file__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path)
    paths = out.stdout.split()
    assert len(paths) == 2 and all(p.startswith(str(target)) for p in paths), out.stdout
