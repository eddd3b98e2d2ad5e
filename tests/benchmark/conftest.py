"""Fixtures for the benchmark tests: tiny synthetic benchmarks with a planted layer, a custom model file."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
import xarray as xr

TINY_MODEL = textwrap.dedent('''
    import torch
    from neurobridge.models import LoadedModel
    from neurobridge.models import ImagePreprocess


    def build(pretrained=True):
        torch.manual_seed(0)
        net = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
            torch.nn.Conv2d(8, 16, 3, stride=2, padding=1), torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten(), torch.nn.Linear(256, 32),
        )
        prep = ImagePreprocess(size=32, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
        return LoadedModel("tiny_cnn", net.eval(), prep, "vision", default_layers=("0", "2", "6"))


    def partly_dead(pretrained=True):
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 3), torch.nn.ReLU())
        torch.nn.init.constant_(net[2].weight, 0.0)
        torch.nn.init.constant_(net[2].bias, -1.0)  # layer "3" outputs 0 for every image
        prep = ImagePreprocess(size=16, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
        return LoadedModel("partly_dead_cnn", net.eval(), prep, "vision", default_layers=("1", "3"))


    def bare(pretrained=True):
        return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU())  # no preprocess


    def dead(pretrained=True):
        net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU())
        torch.nn.init.constant_(net[0].weight, 0.0)
        torch.nn.init.constant_(net[0].bias, -1.0)  # ReLU output is 0 for every image
        prep = ImagePreprocess(size=16, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
        return LoadedModel("dead_cnn", net.eval(), prep, "vision", default_layers=("1",))
''')


@pytest.fixture
def tiny_model_file(tmp_path):
    """A ``file.py`` with ``build`` (a small CNN) and ``dead`` (a CNN whose only layer outputs zeros)."""
    path = tmp_path / "tiny_model.py"
    path.write_text(TINY_MODEL)
    return path


@pytest.fixture
def random_images():
    rng = np.random.default_rng(3)
    ids = [f"img{i:02d}" for i in range(24)]
    smooth = rng.integers(0, 255, size=(24, 8, 8, 3)).repeat(4, axis=1).repeat(4, axis=2)
    return xr.DataArray(smooth.astype(np.uint8), dims=("stimulus", "height", "width", "color"),
                        coords={"stimulus": ids})
