"""Both an editable and a wheel install expose neurobridge.kernels and neurobridge.datasets."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


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
