"""The ``neurobridge benchmark`` command: listing, errors, default output folder, extending a leaderboard."""

from __future__ import annotations

import textwrap

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
    assert main(["benchmark", "--benchmark", "kriegeskorte92-mit-rza"]) == 1
    assert "did you mean 'kriegeskorte92-mit-rsa'" in capsys.readouterr().err
    assert main(["benchmark", "--model", "efficientnet_lite", "--benchmark", str(lab / "lab.toml"), "--quiet"]) == 1
    assert "efficientnet_lite0" in capsys.readouterr().err


def test_offline_without_data_names_the_folder(capsys, tmp_path):
    rc = main(["benchmark", "--data-dir", str(tmp_path), "--no-download", "--quiet", "--out", str(tmp_path / "o")])
    assert rc == 1
    err = capsys.readouterr().err
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
