"""Slow tier: the other built-in benchmarks end to end (simulated fMRI encoding, MEG time-resolved RSA)."""

from __future__ import annotations

import numpy as np
import pytest

import neurobridge as nb
from neurobridge.benchmark._registry import SIMULATED_TRUE_LAYER

pytestmark = pytest.mark.slow


def test_simulated_fmri_encoding_recovers_the_true_layer(data_dir, tmp_path):
    scores = nb.benchmark.run("efficientnet_lite0", "simulated-fmri-encoding", data_dir=data_dir, out=tmp_path,
                              n_bootstrap=100, progress=False)
    s = scores.sel(model="efficientnet_lite0", benchmark="simulated-fmri-encoding")
    layers = [str(v) for v in s["layer"].values]
    true = layers.index(SIMULATED_TRUE_LAYER)
    assert abs(layers.index(str(s["selected_layer"].values)) - true) <= 1
    assert abs(int(np.nanargmax(s["score"].values)) - true) <= 1
    # the ceiling (split-half estimate) bounds the scores and is near the simulator's true ceiling (2/3)
    assert float(s["ceiling_lower"]) == pytest.approx(2 / 3, abs=0.1)
    assert np.nanmax(s["score"].values) < float(s["ceiling_lower"])
    assert "true_layer" in (tmp_path / "report.html").read_text()


def test_meg_time_resolved_rsa_pipeline_demo(data_dir, tmp_path):
    scores = nb.benchmark.run("minilm", "mne-sample-meg-rsa", data_dir=data_dir, out=tmp_path, n_bootstrap=0,
                              progress=False)
    s = scores.sel(model="minilm", benchmark="mne-sample-meg-rsa")
    assert s["score_time"].dims == ("layer", "time") and s.sizes["time"] > 400
    assert int(s["demo"]) == 1 and str(s["selected_layer"].values) in s["layer"].values
    assert (tmp_path / "layer_time_mne-sample-meg-rsa__minilm.png").is_file()
    assert "Pipeline demonstration" in (tmp_path / "report.html").read_text()
    with pytest.raises(ValueError, match="text model but benchmark 'kriegeskorte92-mit-rsa' shows vision"):
        nb.benchmark.run("minilm", "kriegeskorte92-mit-rsa", data_dir=data_dir, progress=False)
