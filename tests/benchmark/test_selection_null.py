"""Held-out layer selection on null time-resolved data: no time split, stimulus splits, the exact permutation
p-value of the held-out score and the simultaneous CI of the selected layer (issue 16, item 3)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from _benchmark_helpers import planted_features, planted_rdms
from scipy.stats import kendalltau, kstest, norm, pearsonr, spearmanr

import neurobridge as nb
from neurobridge.benchmark import Benchmark, BenchmarkData, score_benchmark, select_layer_heldout
from neurobridge.benchmark._calibration import null_calibration, simulate_null_meeg
from neurobridge.benchmark._scoring import _split_scores, simultaneous_ci


def _bench(**kw):
    return Benchmark("null", data=lambda d: None, ceiling="none", **kw)


def _permuted(brain: xr.DataArray, perm: np.ndarray) -> xr.DataArray:
    """Brain RDMs whose stimulus ``ids[i]`` holds the responses to stimulus ``ids[perm[i]]``."""
    ids = brain["stimulus"].values
    out = brain.isel(stimulus=perm, stimulus2=perm)
    return out.assign_coords(stimulus=ids, stimulus2=ids)


# ------------------------------------------------------------------------------------------- time split removed


def test_time_split_is_refused_with_the_reason_and_the_fix():
    with pytest.raises(ValueError, match=r"split='time' is no longer supported.*Use split='stimulus'"):
        _bench(split="time")
    assert nb.benchmark.get("mne-sample-meg-rsa").split == "stimulus"
    with pytest.raises(ValueError, match="n_permutations must be >= 0"):
        _bench(n_permutations=-1)


def test_null_meeg_heldout_score_is_zero_not_the_in_sample_maximum():
    # the failure of issue 16: alternate time samples gave a held-out score equal to the in-sample best (+0.17 on
    # these nulls, +0.09 without the persistent geometry); halves of stimuli give 0 on average (here 10 nulls:
    # standard error ~0.025; the slow test below uses 1000)
    cal = null_calibration(10, n_permutations=0, n_splits=4, n_stimuli=8, n_layers=6, sfreq=50.0, geometry=1.0,
                           seed=100)
    assert cal.mean_best > 0.12  # the in-sample maximum is optimistic on these nulls ...
    assert abs(cal.mean_heldout) < 0.08  # ... the held-out score is not
    assert cal.mean_best - cal.mean_heldout > 0.1  # the old time split gave a difference of 0.0001


def test_simulated_null_has_smooth_noise_and_a_persistent_geometry():
    acts, ev = simulate_null_meeg(0, n_stimuli=6, n_layers=2, n_channels=20, sfreq=100.0, geometry=0.0)
    assert ev.dims == ("stimulus", "channel", "time") and acts["L0"].dims == ("stimulus", "unit")
    x = ev.values
    # Gaussian-smoothed white noise (sd 2 samples): lag-1 autocorrelation exp(-1 / (4 * 2**2)) = 0.94
    assert np.corrcoef(x[..., :-1].ravel(), x[..., 1:].ravel())[0, 1] == pytest.approx(np.exp(-1 / 16), abs=0.03)
    _, rdms = simulate_null_meeg(1, n_stimuli=8, n_subjects=3, geometry=3.0)
    assert rdms.dims == ("subject", "time", "stimulus", "stimulus2")
    early, late = (rdms.sel(time=t, method="nearest").mean("subject") for t in (0.1, 0.4))
    iu = np.triu_indices(8, 1)
    assert np.corrcoef(early.values[iu], late.values[iu])[0, 1] > 0.5  # the geometry persists over 300 ms
    with pytest.raises(ValueError, match="n_stimuli >= 3"):
        simulate_null_meeg(0, n_stimuli=2)
    with pytest.raises(ValueError, match="n_nulls must be >= 1"):
        null_calibration(0)


# ------------------------------------------------------------------------------------------- split scores


@pytest.mark.parametrize("method", ["spearman", "pearson", "kendall"])
def test_split_scores_match_scipy_on_relabelled_brain_rdms(method):
    rng = np.random.default_rng(0)
    acts = planted_features(n_stim=9, n_layers=3, n_units=6, seed=3)
    brain = planted_rdms(acts, "L1", n_subjects=2, noise=2.0)
    e = rng.random(brain.shape)
    brain = xr.concat([brain, brain + (e + np.swapaxes(e, -1, -2)) * (1 - np.eye(9))], dim="time")
    brain = brain.transpose("subject", "time", "stimulus", "stimulus2")
    model = np.stack([1 - np.corrcoef(a.values) for a in acts.values()]).astype(np.float32)
    sq = brain.values.astype(np.float32)
    perms = np.stack([np.arange(9), *[rng.permutation(9) for _ in range(4)]])
    idx = np.array([0, 2, 3, 5, 8])
    got = _split_scores(model, sq, idx, perms, method)  # (perm, layer, subject, time)
    ref_fn = {"spearman": spearmanr, "pearson": pearsonr, "kendall": lambda a, b: kendalltau(a, b, variant="b")}[method]
    iu = np.triu_indices(len(idx), 1)
    for p, perm in enumerate(perms):
        for layer in range(3):
            for s in range(2):
                for t in range(2):
                    m = model[layer][np.ix_(idx, idx)][iu]
                    b = sq[s, t][np.ix_(perm[idx], perm[idx])][iu]
                    assert got[p, layer, s, t] == pytest.approx(ref_fn(m, b)[0], abs=1e-5)


# ------------------------------------------------------------------------------------------- permutation p-value


def test_select_layer_heldout_null_matches_a_loop_reference():
    rng = np.random.default_rng(1)
    sel, test = rng.normal(size=(6, 4)), rng.normal(size=(6, 4))
    sel_null, test_null = rng.normal(size=(50, 6, 4)), rng.normal(size=(50, 6, 4))
    sel_null[3, 2, 1] = np.nan  # an unusable layer in one split of one permutation ...
    sel_null[4, 0] = np.nan  # ... and a split without any usable layer: left out of that permutation's mean
    out = select_layer_heldout(sel, test, list("abcd"), select_null=sel_null, test_null=test_null)
    ref = [np.mean([test_null[k, s, np.nanargmax(sel_null[k, s])] for s in range(6) if (k, s) != (4, 0)])
           for k in range(50)]
    np.testing.assert_allclose(out.null, ref)
    assert out.pvalue == pytest.approx((1 + np.sum(np.array(ref) >= out.heldout_score)) / 51)
    assert np.isnan(select_layer_heldout(sel, test, list("abcd")).pvalue)
    with pytest.raises(ValueError, match="pass both"):
        select_layer_heldout(sel, test, list("abcd"), select_null=sel_null)
    with pytest.raises(ValueError, match=r"\(n_permutations, 6, 4\)"):
        select_layer_heldout(sel, test, list("abcd"), select_null=sel_null[:, :3], test_null=test_null[:, :3])


@pytest.mark.parametrize("split", ["stimulus", "subject"])
def test_heldout_pvalue_equals_scoring_each_relabelled_brain_from_scratch(split):
    # the fast path (one ranking per set of brain stimuli, all permutations at once) against the definition:
    # relabel the brain RDMs' stimuli, score the benchmark again, count held-out scores >= the observed one
    acts = planted_features(n_stim=10, n_layers=4, n_units=8, seed=5)
    brain = planted_rdms(acts, "L2", n_subjects=4, noise=4.0, seed=6)
    bench = _bench(split=split, n_splits=4, n_permutations=9)
    piece, _ = score_benchmark(bench, BenchmarkData(None, brain), acts, n_bootstrap=0, seed=3)
    perms = nb.stats.permutation_indices(10, 9, seed=3).numpy()
    plain = _bench(split=split, n_splits=4, n_permutations=0)
    null = [float(score_benchmark(plain, BenchmarkData(None, _permuted(brain, p)), acts, n_bootstrap=0,
                                  seed=3)[0]["heldout_score"]) for p in perms]
    observed = float(score_benchmark(plain, BenchmarkData(None, brain), acts, n_bootstrap=0, seed=3)[0]["heldout_score"])
    assert float(piece["heldout_score"]) == pytest.approx(observed, abs=1e-6)
    assert float(piece["heldout_p"]) == pytest.approx((1 + np.sum(np.array(null) >= observed - 1e-9)) / 10)


def test_planted_layer_in_time_resolved_responses_is_found_on_stimulus_halves_with_a_small_p():
    rng = np.random.default_rng(0)
    acts = planted_features(n_stim=12, n_layers=3)
    ids = acts["L0"]["stimulus"].values
    times = np.linspace(-0.1, 0.3, 21)
    drive = acts["L2"].values @ rng.normal(size=(30, 16))
    data = rng.normal(size=(12, 16, 21)) * 0.5
    data[:, :, times >= 0] += drive[:, :, None]
    ev = nb.core.evoked(data, stimulus=ids, times=times)
    piece, _ = score_benchmark(_bench(n_splits=6, n_permutations=99, time_window=(0.0, 0.3)),
                               BenchmarkData(None, ev), acts, n_bootstrap=0)
    assert str(piece["selected_layer"].values) == "L2" and float(piece["selection_frequency"].sel(layer="L2")) == 1
    assert float(piece["heldout_score"]) > 0.3 and float(piece["heldout_p"]) == pytest.approx(0.01)


def test_too_few_stimuli_give_no_heldout_score_and_say_so(caplog):
    acts = planted_features(n_stim=5, n_layers=3, n_units=6)
    brain = planted_rdms(acts, "L1", n_subjects=1).isel(subject=0)
    piece, _ = score_benchmark(_bench(), BenchmarkData(None, brain), acts, n_bootstrap=0)
    assert np.isnan(float(piece["heldout_score"])) and np.isnan(float(piece["heldout_p"]))
    assert str(piece["selected_layer"].values) == str(piece["best_layer"].values) and int(piece["n_splits"]) == 0
    assert str(piece["selection_rule"].values).startswith("no held-out selection")
    assert "too few to split into halves" in caplog.text


# ------------------------------------------------------------------------------------------- selected-layer CI


def test_simultaneous_ci_matches_the_closed_form_for_independent_and_identical_layers():
    rng = np.random.default_rng(0)
    boot = rng.normal(size=(40000, 10))
    low, high = simultaneous_ci(boot, np.zeros(10))
    q = norm.ppf((1 + 0.95 ** (1 / 10)) / 2)  # max of 10 independent |N(0, 1)|: 2.80
    np.testing.assert_allclose(high, q * boot.std(axis=0, ddof=1), rtol=0.02)
    np.testing.assert_allclose(low, -high)
    same = np.repeat(boot[:, :1], 5, axis=1)  # perfectly correlated layers: the pointwise 1.96
    assert simultaneous_ci(same, np.zeros(5))[1][0] == pytest.approx(1.96, abs=0.03)
    assert np.isnan(simultaneous_ci(np.full((10, 2), np.nan), np.zeros(2))[0]).all()
    with pytest.raises(ValueError, match=r"\(n_bootstraps, n_layers\)"):
        simultaneous_ci(boot, np.zeros(3))
    with pytest.raises(ValueError, match="level must be in"):
        simultaneous_ci(boot, np.zeros(10), level=1.5)


def test_selected_layer_ci_is_the_wider_simultaneous_band():
    acts = planted_features(n_stim=14, n_layers=5, n_units=10, seed=2)
    brain = planted_rdms(acts, "L3", n_subjects=3, noise=2.0, seed=4)
    piece, _ = score_benchmark(_bench(split="subject", n_permutations=0), BenchmarkData(None, brain), acts,
                               n_bootstrap=200)
    sel = str(piece["selected_layer"].values)
    lo, hi = float(piece["selected_ci_low"]), float(piece["selected_ci_high"])
    assert lo < float(piece["score"].sel(layer=sel)) < hi
    assert hi - lo > float(piece["ci_high"].sel(layer=sel) - piece["ci_low"].sel(layer=sel))
    assert "simultaneous 95% band over the 5 layers" in str(piece["ci_method"].values)


# ------------------------------------------------------------------------------------------- slow: calibration


@pytest.mark.slow
def test_null_calibration_full_size():
    # 1000 nulls of 8 stimuli with a persistent brain geometry: the binomial 95% interval of a 5% rate over 1000
    # nulls is 3.7-6.5%
    cal = null_calibration(1000, n_permutations=199, n_stimuli=8, geometry=1.0)
    assert abs(cal.mean_heldout) < 0.01
    assert 0.03 <= cal.false_positive_rate <= 0.07
    assert kstest(cal.pvalues, "uniform").pvalue > 0.001
    smooth = null_calibration(300, n_permutations=199, n_stimuli=8, geometry=0.0, seed=5000)
    assert abs(smooth.mean_heldout) < 0.01 + 2 * smooth.se_heldout
    assert 0.02 <= smooth.false_positive_rate <= 0.09
