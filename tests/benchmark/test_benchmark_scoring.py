"""Scoring one model on one benchmark: profiles against scipy, planted layers, held-out logic, layer checks."""

from __future__ import annotations

import numpy as np
import pytest
from _benchmark_helpers import planted_features, planted_rdms
from scipy.spatial.distance import pdist
from scipy.stats import spearmanr

import neurobridge as nb
from neurobridge.benchmark import (
    Benchmark,
    BenchmarkData,
    UnusableLayersError,
    check_layers,
    score_benchmark,
)


def _bench(split="stimulus", **kw):
    return Benchmark("toy", data=lambda d: None, split=split, **kw)


def test_rsa_profile_matches_scipy_spearman_per_subject():
    acts = planted_features(n_stim=20, n_layers=3)
    brain = planted_rdms(acts, "L1", n_subjects=3, noise=1.0)
    piece, extras = score_benchmark(_bench(n_splits=4), BenchmarkData(None, brain), acts, n_bootstrap=0)
    iu = np.triu_indices(20, 1)
    for layer in acts:
        model_vec = pdist(acts[layer].values, metric="correlation")
        ref = np.mean([spearmanr(model_vec, brain.isel(subject=s).values[iu])[0] for s in range(3)])
        assert float(piece["score"].sel(layer=layer)) == pytest.approx(ref, abs=1e-5)
    assert set(extras) == {"model_rdms", "brain_rdm"}
    assert extras["model_rdms"].dims == ("layer", "stimulus", "stimulus2")


@pytest.mark.parametrize("split", ["stimulus", "subject"])
def test_planted_layer_is_selected_held_out(split):
    acts = planted_features(n_stim=30, n_layers=5)
    brain = planted_rdms(acts, "L3", n_subjects=4, noise=1.5)
    piece, _ = score_benchmark(_bench(split, n_splits=6), BenchmarkData(None, brain), acts, n_bootstrap=0)
    assert str(piece["selected_layer"].values) == "L3"
    assert str(piece["best_layer"].values) == "L3"
    assert float(piece["selection_frequency"].sel(layer="L3")) == 1.0
    assert 0.2 < float(piece["heldout_score"]) <= float(piece["best_score"]) + 0.05


def test_heldout_score_is_not_inflated_under_the_null():
    # brain RDMs unrelated to every layer: the in-sample best layer looks positive, the held-out score does not
    heldout, best = [], []
    for seed in range(6):
        acts = planted_features(n_stim=24, n_layers=8, seed=seed)
        other = planted_features(n_stim=24, n_layers=1, seed=100 + seed)
        brain = planted_rdms(other, "L0", n_subjects=2, noise=0.5, seed=seed)
        piece, _ = score_benchmark(_bench(n_splits=6), BenchmarkData(None, brain), acts, n_bootstrap=0)
        heldout.append(float(piece["heldout_score"]))
        best.append(float(piece["best_score"]))
    assert np.mean(best) > np.mean(heldout) + 0.03
    assert abs(np.mean(heldout)) < 0.03


def test_rsa_of_responses_builds_brain_rdms_and_selects_on_stimuli():
    rng = np.random.default_rng(0)
    acts = planted_features(n_stim=12, n_layers=3)
    ids = acts["L0"]["stimulus"].values
    # M/EEG-like responses driven by L2 after t=0
    times = np.linspace(-0.1, 0.3, 21)
    drive = acts["L2"].values @ rng.normal(size=(30, 16))
    data = rng.normal(size=(12, 16, 21)) * 0.5
    data[:, :, times >= 0] += drive[:, :, None]
    ev = nb.core.evoked(data, stimulus=ids, times=times)
    bench = _bench("stimulus", n_splits=4, time_window=(0.0, 0.3))  # time splits are refused (issue 16)
    piece, extras = score_benchmark(bench, BenchmarkData(None, ev), acts, n_bootstrap=0)
    assert piece["score_time"].dims == ("layer", "time")
    assert str(piece["selected_layer"].values) == "L2"
    before = piece["score_time"].sel(layer="L2", time=times[times < 0]).mean()
    after = piece["score_time"].sel(layer="L2", time=times[times >= 0]).mean()
    assert float(after) > float(before) + 0.3
    assert extras["brain_rdm"].dims == ("time", "stimulus", "stimulus2")


def test_missing_stimuli_in_activations_is_an_error():
    acts = planted_features(n_stim=10, n_layers=2)
    brain = planted_rdms(acts, "L0")
    short = {k: v.isel(stimulus=slice(0, 8)) for k, v in acts.items()}
    with pytest.raises(ValueError, match="lack 2 of the benchmark's stimuli"):
        score_benchmark(_bench(n_splits=2), BenchmarkData(None, brain), short, n_bootstrap=0)


def test_check_layers_names_each_bad_layer_and_why():
    ids = list("abcdef")
    rng = np.random.default_rng(0)
    good = nb.core.activations(rng.normal(size=(6, 5)), stimulus=ids)
    nan = good.copy(data=np.where(np.eye(6, 5) > 0, np.nan, good.values))
    flat_stim = good.copy(data=np.vstack([np.ones((1, 5)), good.values[1:]]))
    assert check_layers({"ok": good}, "m") == {}
    bad = check_layers({"ok": good, "nan": nan, "flat": flat_stim}, "m")
    assert "NaN or inf" in bad["nan"]
    assert "correlation distance is undefined" in bad["flat"]
    assert check_layers({"ok": good, "flat": flat_stim}, "m", needs_correlation=False) == {}
    zero = good.copy(data=np.zeros((6, 5)))
    with pytest.raises(UnusableLayersError, match=r"layer 'relu': its activations are identical for all 6"):
        check_layers({"relu": zero}, "dead_model")


def test_subject_ceiling_requested_without_subjects_is_an_error():
    acts = planted_features(n_stim=10, n_layers=2)
    brain = planted_rdms(acts, "L0", n_subjects=1).isel(subject=0)
    with pytest.raises(ValueError, match="subject noise ceiling"):
        score_benchmark(_bench(ceiling="subject", n_splits=2), BenchmarkData(None, brain), acts, n_bootstrap=0)


def test_benchmark_validates_its_fields():
    with pytest.raises(ValueError, match="metric must be one of"):
        Benchmark("x", data=lambda d: None, metric="cka")
    with pytest.raises(ValueError, match="split must be one of"):
        Benchmark("x", data=lambda d: None, split="voxel")
    with pytest.raises(ValueError, match="without spaces"):
        Benchmark("my bench", data=lambda d: None)
    assert "half of the subjects" in Benchmark("x", data=lambda d: None, split="subject").selection_rule


def test_encoding_benchmark_finds_the_planted_layer_and_ceiling():
    acts = planted_features(n_stim=60, n_layers=3, n_units=10, seed=2)
    sim = nb.datasets.simulate_encoding(acts, n_voxels=20, snr=2.0, n_repeats=4, true_space="L2", random_state=0)
    bench = Benchmark("enc", data=lambda d: None, metric="encoding", options={"alphas": [0.1, 10.0, 1000.0]})
    piece, _ = score_benchmark(bench, BenchmarkData(None, sim.responses), acts, n_bootstrap=100)
    assert str(piece["selected_layer"].values) == "L2" and str(piece["best_layer"].values) == "L2"
    assert float(piece["selection_frequency"].sel(layer="L2")) == 1.0
    # held-out score of the chosen layer is the mean over outer folds of that layer's held-out score
    assert float(piece["heldout_score"]) == pytest.approx(float(piece["score"].sel(layer="L2")), abs=1e-6)
    assert float(piece["score"].sel(layer="L0")) < 0.05 < float(piece["score"].sel(layer="L2"))
    # the split-half ceiling estimate is close to the true ceiling of repetition means, above the model's R2
    true = float(sim.noise_ceiling.mean())
    assert float(piece["ceiling_lower"]) == pytest.approx(true, abs=0.05)
    assert float(piece["score"].sel(layer="L2")) < float(piece["ceiling_lower"]) + 0.02
    assert float(piece["ci_low"].sel(layer="L2")) < float(piece["score"].sel(layer="L2")) < \
        float(piece["ci_high"].sel(layer="L2"))
    assert "nested cross-validation" in str(piece["selection_rule"].values)
