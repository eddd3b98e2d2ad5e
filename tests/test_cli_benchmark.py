"""The ``neurobridge benchmark`` command: listing, errors, default output folder, extending a leaderboard."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import neurobridge as nb
from neurobridge.cli import main

MODEL = textwrap.dedent('''
    import torch
    from neurobridge.models import ImagePreprocess, LoadedModel


    def _net(seed):
        torch.manual_seed(seed)
        return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                                   torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten(), torch.nn.Linear(32, 16))


    def build(pretrained=True):
        prep = ImagePreprocess(size=16, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
        return LoadedModel("cli_cnn", _net(0), prep, "vision", default_layers=("1", "4"))


    def build_other(pretrained=True):
        prep = ImagePreprocess(size=16, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
        return LoadedModel("cli_cnn_other", _net(1), prep, "vision", default_layers=("1", "4"))
''')

BAD_MODELS = textwrap.dedent('''
    import torch
    from neurobridge.models import ImagePreprocess, LoadedModel


    def build(pretrained=True):
        raise ValueError("weights file lab_cnn.pt is corrupt")


    def build_nothing(pretrained=True):
        net = torch.nn.Linear(3, 2)  # forgot to return it


    class _Mismatched(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, 5)

        def forward(self, x):
            return self.fc(x.flatten(1))  # 3 * 16 * 16 inputs, not 4: torch raises RuntimeError


    def build_mismatched(pretrained=True):
        prep = ImagePreprocess(size=16, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
        return LoadedModel("mismatched", _Mismatched(), prep, "vision", default_layers=("fc",))
''')


@pytest.fixture
def lab(tmp_path):
    """A TOML benchmark on 16 random images with 3 subjects' RDMs, and a model file."""
    rng = np.random.default_rng(0)
    ids = [f"im{i:02d}" for i in range(16)]
    images = rng.integers(0, 255, (16, 4, 4, 3)).repeat(4, 1).repeat(4, 2).astype(np.uint8)
    stim = xr.DataArray(images, dims=("stimulus", "height", "width", "color"), coords={"stimulus": ids})
    x = rng.random((3, 16, 16))
    x = (x + x.transpose(0, 2, 1)) / 2 * (1 - np.eye(16))
    nb.save(nb.core.rdm(x, dims=("subject",), stimulus=ids), tmp_path / "brain.nc")
    nb.save(stim, tmp_path / "stimuli.nc")
    (tmp_path / "lab.toml").write_text('[benchmark]\nname = "cli-lab-rsa"\nbrain = "brain.nc"\n'
                                       'stimuli = "stimuli.nc"\nsplit = "subject"\n')
    (tmp_path / "net.py").write_text(MODEL)
    yield tmp_path
    nb.benchmark.unregister("cli-lab-rsa")


def test_list(capsys):
    assert main(["benchmark", "--list"]) == 0
    out = capsys.readouterr().out
    assert "kriegeskorte92-hit-rsa" in out and "simulated-fmri-encoding" in out


def test_unknown_benchmark_and_model_suggest_names(capsys, lab):
    assert main(["benchmark", "--benchmark", "kriegeskorte92-mit-rza"]) == 2
    assert "did you mean 'kriegeskorte92-mit-rsa'" in _one_error_line(capsys)
    assert main(["benchmark", "--model", "efficientnet_lite", "--benchmark", str(lab / "lab.toml"), "--quiet"]) == 2
    line = _one_error_line(capsys)
    assert "--model efficientnet_lite: unknown model. Did you mean 'efficientnet_lite0'?" in line


def test_offline_without_data_names_the_folder(capsys, tmp_path):
    rc = main(["benchmark", "--data-dir", str(tmp_path), "--no-download", "--quiet", "--out", str(tmp_path / "o")])
    assert rc == 1
    err = _one_error_line(capsys)
    assert f"missing in {tmp_path / 'kriegeskorte92'}" in err and "Download them by hand" in err


def test_default_out_folder_then_second_model_extends(capsys, lab, monkeypatch):
    monkeypatch.chdir(lab)
    args = ["benchmark", "--benchmark", "lab.toml", "--n-bootstrap", "20", "--quiet", "--no-figures"]
    assert main([*args, "--model", "net.py:build"]) == 0
    out = capsys.readouterr().out
    runs = list((lab / "neurobridge-results").iterdir())
    assert len(runs) == 1 and (runs[0] / "leaderboard.csv").is_file()
    assert "net.py:build" in out and "cli-lab-rsa" in out and "report:" in out
    assert main([*args, "--model", "net.py:build_other", "--out", str(runs[0])]) == 0
    lb = pd.read_csv(runs[0] / "leaderboard.csv")
    assert sorted(lb["model"]) == ["net.py:build", "net.py:build_other"]
    assert set(lb["benchmark"]) == {"cli-lab-rsa"}


# ------------------------------------------------------------------------------------------- errors: one line


def _one_error_line(capsys) -> str:
    """stderr of the last command: exactly one line, ``neurobridge benchmark: error: ...``, no traceback."""
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("neurobridge ") and ": error: " in lines[0], err
    return lines[0]


def _run_bad(lab, spec, *extra):
    (lab / "bad.py").write_text(BAD_MODELS)
    return main(["benchmark", "--benchmark", str(lab / "lab.toml"), "--model", spec, "--n-bootstrap", "0",
                 "--quiet", "--no-figures", "--out", str(lab / "out"), *extra])


def test_build_function_that_raises(capsys, lab):
    spec = f"{lab / 'bad.py'}:build"
    assert _run_bad(lab, spec) == 1
    line = _one_error_line(capsys)
    assert f"--model {spec}: build() raised ValueError: weights file lab_cnn.pt is corrupt" in line
    assert "fix the function in" in line and "run again with --debug for the traceback" in line
    assert _run_bad(lab, spec, "--debug") == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert 'raise ValueError("weights file lab_cnn.pt is corrupt")' in err  # the user's own line
    assert err.strip().splitlines()[-1].startswith(f"neurobridge benchmark: error: --model {spec}: build() raised")
    assert "--debug" not in err.strip().splitlines()[-1]


def test_missing_build_function(capsys, lab):
    spec = f"{lab / 'bad.py'}:buidl"
    assert _run_bad(lab, spec) == 2
    line = _one_error_line(capsys)
    assert f"--model {spec}: bad.py has no function 'buidl'; did you mean build?" in line
    assert _run_bad(lab, spec, "--debug") == 2
    assert "Traceback" in capsys.readouterr().err


def test_build_function_returning_none(capsys, lab):
    spec = f"{lab / 'bad.py'}:build_nothing"
    assert _run_bad(lab, spec) == 1
    line = _one_error_line(capsys)
    assert f"--model {spec}: build_nothing() returned None (is a return statement missing?)" in line
    assert "return net" in line
    assert main(["--debug", "benchmark", "--benchmark", str(lab / "lab.toml"), "--model", spec, "--quiet",
                 "--n-bootstrap", "0", "--no-figures", "--out", str(lab / "out")]) == 1  # --debug before the command
    assert "Traceback" in capsys.readouterr().err


def test_hf_id_not_in_cache_offline(capsys, lab, monkeypatch):
    pytest.importorskip("transformers")
    monkeypatch.chdir(lab)  # not the repository root, whose kernels/ folder could shadow the PyPI package
    assert _run_bad(lab, "neurobridge-test/no-such-model") == 2
    line = _one_error_line(capsys)
    assert "--model neurobridge-test/no-such-model: cannot load it as a Hugging Face model" in line
    assert "not in the Hugging Face cache" in line and "hf download neurobridge-test/no-such-model" in line
    assert _run_bad(lab, "neurobridge-test/no-such-model", "--debug") == 2
    assert "Traceback" in capsys.readouterr().err


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_device_without_cuda_fails_before_loading_data(capsys, tmp_path):
    import torch

    # the data folder is empty: a device check after data loading would report the missing files instead
    args = ["benchmark", "--device", "cuda", "--data-dir", str(tmp_path), "--no-download", "--quiet"]
    assert main(args) == 2
    line = _one_error_line(capsys)
    assert f"--device cuda: no CUDA device is available (torch {torch.__version__}" in line
    assert line.endswith("; use --device cpu") and "AssertionError" not in line
    assert main(["benchmark", "--device", "gpu", "--quiet"]) == 2
    assert "--device gpu: not a torch device" in _one_error_line(capsys)
    assert main([*args, "--debug"]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_unexpected_error_one_line_with_debug_hint(capsys, lab):
    assert _run_bad(lab, f"{lab / 'bad.py'}:build_mismatched") == 1
    line = _one_error_line(capsys)
    assert "unexpected RuntimeError: mat1 and mat2 shapes cannot be multiplied" in line
    assert "run again with --debug for the traceback" in line


def test_unknown_dataset_message_is_not_quoted(capsys):
    assert main(["datasets", "info", "no_such_dataset"]) == 1
    line = _one_error_line(capsys)
    assert line.startswith("neurobridge datasets: error: unknown dataset 'no_such_dataset'; known datasets:")
    assert "kriegeskorte92" in line and not line.endswith('"')


def test_console_command_prints_one_line(lab):
    """The real command in a fresh process (``python -m neurobridge``, then the console script): one line on
    stderr and no progress frames in the log without --quiet, the traceback with --debug."""
    (lab / "bad.py").write_text(BAD_MODELS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TQDM_")} | {"HF_HUB_OFFLINE": "1"}
    args = ["benchmark", "--benchmark", "lab.toml", "--model", "bad.py:build", "--n-bootstrap", "0", "--no-figures",
            "--out", "out"]
    res = subprocess.run([sys.executable, "-m", "neurobridge", *args], cwd=lab, env=env, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [
        "neurobridge benchmark: error: --model bad.py:build: build() raised ValueError: weights file lab_cnn.pt is "
        f"corrupt; fix the function in {lab.resolve() / 'bad.py'} (run again with --debug for the traceback)"]
    console = Path(sys.executable).with_name("neurobridge")
    res = subprocess.run([str(console), *args, "--debug"], cwd=lab, env=env, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 1 and "Traceback (most recent call last)" in res.stderr
    assert 'bad.py", line 7, in build' in res.stderr
