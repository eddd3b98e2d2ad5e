"""Inference on decoding scores: permutation tests calibrated on nulls with the structure of real data (smooth
epochs, few stimuli with repeats, runs), planted effects found with their extent, and the group-level test
against MNE's cluster test."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import xarray as xr

import neurobridge as nb
from neurobridge.decoding._inference import (
    _permutation_scheme,
    _permuted,
    group_test,
    permutation_test,
)


def _smooth(x, width=5):
    """Moving average along the last axis (time), renormalised to unit variance: strongly autocorrelated."""
    k = np.hanning(width + 2)[1:-1]
    k /= np.sqrt((k ** 2).sum())
    return np.apply_along_axis(lambda v: np.convolve(v, k, mode="same"), -1, x)


def _epochs(X, stim=None, **coords):
    stim = [f"t{i}" for i in range(len(X))] if stim is None else stim
    ep = nb.core.eeg_epochs(X, stimulus=stim, sfreq=100.0)
    return ep.assign_coords({k: ("trial", v) for k, v in coords.items()})


def test_planted_window_is_found_with_its_extent():
    """A class difference at times 10-17 of 30, in smooth correlated noise: the cluster covers that window
    (up to the smoothing's reach) and nothing else; max-statistic FWER p-values are small inside only."""
    rng = np.random.default_rng(0)
    n, p, T = 60, 6, 30
    y = np.repeat([0, 1], n // 2)
    X = _smooth(rng.normal(size=(n, p, T)))
    X[y == 1, :2, 10:18] += 2.0
    res = permutation_test(_epochs(X), y, n_permutations=199, seed=1, progress=False)
    assert res.attrs["scheme"] == "all" and res.attrs["chance"] == 0.5
    inside = res.cluster.values > 0
    found = np.flatnonzero(inside)
    assert abs(found[0] - 10) <= 1 and abs(found[-1] - 17) <= 1 and len(res.attrs["cluster_pvalues"]) == 1
    assert res.pvalue_cluster.values[inside].max() <= 0.01
    assert (res.pvalue_cluster.values[~inside] == 1).all()
    assert res.pvalue_max.values[11:17].max() < 0.05 and res.pvalue_max.values[:8].min() > 0.2
    # the pointwise p-values are permutation p-values: multiples of 1 / (n_permutations + 1)
    np.testing.assert_allclose((res.pvalue.values * 200) % 1, 0, atol=1e-9)
    np.testing.assert_array_equal(res.time.values, np.arange(T) / 100.0)


def _fwer(results, alpha=0.05):
    out = {}
    for key in ("pvalue_max", "pvalue_cluster"):
        out[key] = float(np.mean([r[key].values.min() <= alpha for r in results]))
    # each time point is a level-alpha test on its own: the rate averaged over time points (not their union)
    out["pointwise"] = float(np.mean([(r["pvalue"].values <= alpha).mean() for r in results]))
    return out


N_NULLS = 240
N_PERM = 19  # p <= 0.05 exactly when the observed score is the largest of 20: the test's level is 0.05


def test_null_smooth_epochs_are_calibrated():
    """Labels independent of temporally smooth epochs (lag-1 autocorrelation ~0.9): family-wise error of the
    max-statistic and cluster corrections, and the pointwise false-positive rate, are 3-7% at alpha 0.05."""
    rng = np.random.default_rng(2)
    n, p, T = 30, 4, 12
    y = np.repeat(["a", "b"], n // 2)
    res = []
    for _ in range(N_NULLS):
        X = _smooth(rng.normal(size=(n, p, T)))
        res.append(permutation_test(_epochs(X), y, scoring="roc_auc", n_permutations=N_PERM, seed=rng,
                                    progress=False))
    x = X[:, 0]
    assert np.corrcoef(x[:, :-1].ravel(), x[:, 1:].ravel())[0, 1] > 0.8  # the null really is smooth
    rates = _fwer(res)
    for key, rate in rates.items():
        assert 0.03 <= rate <= 0.07, (key, rates)


def _few_stimuli(rng, n_stim=8, reps=5, p=4, T=10):
    """Each stimulus evokes its own response on every repeat, plus smooth trial noise; labels are assigned to
    stimuli at random (animate / inanimate), so they are independent of the data."""
    stim = np.repeat(np.arange(n_stim), reps)
    X = 1.5 * _smooth(rng.normal(size=(n_stim, p, T)))[stim] + _smooth(rng.normal(size=(n_stim * reps, p, T)))
    y = rng.permutation(np.repeat(["animate", "inanimate"], n_stim // 2))[stim]
    return _epochs(X, stim=[f"img{s}" for s in stim]), y


def test_null_few_stimuli_with_repeats_is_calibrated_by_stimulus_permutations():
    """8 stimuli x 5 repeats, labels per stimulus, folds by stimulus: the labels of whole stimuli are permuted
    (repeats are not independent samples) and the family-wise error stays at 3-7%."""
    rng = np.random.default_rng(3)
    res = []
    for _ in range(N_NULLS):
        brain, y = _few_stimuli(rng)
        res.append(permutation_test(brain, y, groups="stimulus", cv=4, n_permutations=N_PERM, seed=rng,
                                    progress=False))
    assert res[0].attrs["scheme"] == "between groups"
    rates = _fwer(res)
    for key, rate in rates.items():
        assert 0.03 <= rate <= 0.07, (key, rates)


def test_trial_level_permutations_of_few_stimuli_are_anticonservative():
    """The same nulls decoded with trial-wise folds and trial-level relabelling: the decoder recalls each
    stimulus's arbitrary label from its other repeats, which shuffled trials cannot, so the 'significant'
    rate far exceeds alpha. This is why the scheme follows the design (and why groups= matters)."""
    rng = np.random.default_rng(4)
    hits = []
    for _ in range(60):
        brain, y = _few_stimuli(rng)
        r = permutation_test(brain, y, n_permutations=N_PERM, seed=rng, progress=False)
        hits.append(r.pvalue_max.values.min() <= 0.05)
    assert np.mean(hits) > 0.3


def test_within_run_permutations_keep_each_runs_labels():
    """Groups that hold both labels (runs) are permuted within: every run keeps its own label counts."""
    rng = np.random.default_rng(5)
    y = np.array([0, 0, 1, 1, 1, 0, 1, 0, 0, 1, 1, 1])
    runs = np.repeat([0, 1, 2], 4)
    scheme, members = _permutation_scheme(y, runs)
    assert scheme == "within groups"
    seen = set()
    for _ in range(50):
        yp = _permuted(y, scheme, members, rng)
        for r in range(3):
            assert sorted(yp[runs == r]) == sorted(y[runs == r])
        seen.add(tuple(yp))
    assert len(seen) > 20
    stim = np.repeat(np.arange(4), 3)
    ys = np.repeat([0, 1, 1, 0], 3)
    scheme, members = _permutation_scheme(ys, stim)
    assert scheme == "between groups"
    for _ in range(20):
        yp = _permuted(ys, scheme, members, rng)
        assert all(len(set(yp[stim == s])) == 1 for s in range(4)) and sorted(yp) == sorted(ys)
    assert _permutation_scheme(y, None)[0] == "all"


def test_generalization_matrix_and_regression_and_less():
    """generalize=True tests the (time, time2) matrix with 2-d clusters; continuous targets test r; a planted
    effect is found by 'greater' and not by 'less'."""
    rng = np.random.default_rng(6)
    n, p, T = 50, 5, 10
    y = rng.normal(size=n)
    X = _smooth(rng.normal(size=(n, p, T)))
    X[:, 0, 3:7] += 1.5 * y[:, None]
    res = permutation_test(_epochs(X), y, scoring="r", generalize=True, n_permutations=99, seed=0, progress=False)
    assert res.score.dims == ("time", "time2") and res.attrs["chance"] == 0
    assert (res.pvalue_cluster.values[4:6, 4:6] <= 0.02).all() and res.pvalue_cluster.values[0, 9] == 1
    less = permutation_test(_epochs(X), y, scoring="r", alternative="less", n_permutations=49, seed=0,
                            progress=False)
    assert less.pvalue_cluster.values.min() == 1 and less.pvalue.values[4] > 0.9


def test_fmri_single_score():
    rng = np.random.default_rng(7)
    y = np.repeat(["face", "house"], 20)
    X = rng.normal(size=(40, 30))
    X[y == "face", :5] += 0.8
    da = xr.DataArray(X, dims=("trial", "voxel"), coords={"trial": np.arange(40), "stimulus": ("trial", y)})
    res = permutation_test(da, y, dim=None, n_permutations=99, seed=0, progress=False)
    assert res.score.dims == () and float(res.pvalue) <= 0.05 and float(res.score) > 0.65
    assert res.attrs["cluster_pvalues"] == [] and int(res.cluster) == 0


@pytest.mark.parametrize("kwargs, match", [
    ({"n_permutations": 0}, "n_permutations must be >= 1"),
    ({"alternative": "bigger"}, "alternative must be"),
    ({"generalize": True, "dim": None}, "generalize=True needs a dim"),
])
def test_bad_input(kwargs, match):
    rng = np.random.default_rng(8)
    X = rng.normal(size=(20, 3, 4))
    with pytest.raises(ValueError, match=match):
        permutation_test(_epochs(X), np.repeat([0, 1], 10), progress=False, **kwargs)


# ------------------------------------------------------------------------------------------ group level
def test_group_test_matches_mne_cluster_1samp_exact():
    """Sign flips of 8 subjects' curves minus chance: the t map and clusters of
    mne.stats.permutation_cluster_1samp_test, and the exact p-values of enumerating all 256 flips by hand (MNE
    reports twice ours here, 2/256: it does not enumerate the flips the same way in its exact mode)."""
    mne_stats = pytest.importorskip("mne.stats")
    rng = np.random.default_rng(9)
    s = 0.5 + 0.04 * _smooth(rng.normal(size=(8, 40)))
    s[:, 15:25] += 0.05
    scores = xr.DataArray(s, dims=("subject", "time"), coords={"time": np.arange(40) / 100.0},
                          attrs={"chance": 0.5})
    res = group_test(scores, threshold=2.0, seed=0)
    t, clusters, pv, _ = mne_stats.permutation_cluster_1samp_test(s - 0.5, threshold=2.0, tail=1,
                                                                  n_permutations=256, out_type="mask",
                                                                  verbose=False)
    np.testing.assert_allclose(res.t.values, t, rtol=1e-10)
    assert len(res.attrs["cluster_pvalues"]) == len(clusters) >= 1
    for c, (cl, p) in enumerate(zip(clusters, pv, strict=True), start=1):
        mask = np.zeros(40, dtype=bool)
        mask[cl] = True  # MNE gives 1-d clusters as slices
        np.testing.assert_array_equal(res.cluster.values == c, mask)
        assert res.attrs["cluster_pvalues"][c - 1] <= p + 1e-12
        # float64 brute force: the largest cluster mass of every sign pattern against this cluster's mass
        mass = res.t.values[mask].sum()
        count = 0
        for signs in itertools.product([1.0, -1.0], repeat=8):
            xs = (s - 0.5) * np.array(signs)[:, None]
            tt = xs.mean(0) / (xs.std(0, ddof=1) / np.sqrt(8))
            runs, cur = [0.0], 0.0
            for v in tt:
                cur = cur + v if v > 2.0 else 0.0
                runs.append(cur)
            count += max(runs) >= mass - 1e-9
        assert res.attrs["cluster_pvalues"][c - 1] == pytest.approx(count / 256)
    np.testing.assert_array_equal(res.time.values, scores.time.values)


def test_group_test_null_subjects_calibrated():
    """800 groups of 10 subjects whose smooth curves hover around chance: family-wise error 3-7% (the standard
    error of the rate is 0.8%)."""
    rng = np.random.default_rng(10)
    hits = []
    for _ in range(800):
        s = 0.5 + 0.05 * _smooth(rng.normal(size=(10, 30)))
        hits.append(group_test(xr.DataArray(s, dims=("subject", "time"), attrs={"chance": 0.5}),
                               n_permutations=99, seed=rng.integers(1 << 31)).pvalue_cluster.values.min() <= 0.05)
    assert 0.03 <= np.mean(hits) <= 0.07, np.mean(hits)


def test_group_test_bad_input():
    s = xr.DataArray(np.zeros((3, 5)), dims=("subject", "time"))
    with pytest.raises(ValueError, match="no 'chance' attr"):
        group_test(s)
    with pytest.raises(ValueError, match="'session' dim of subjects"):
        group_test(s, dim="session", chance=0.5)
    with pytest.raises(ValueError, match="at least 2 subjects"):
        group_test(s.isel(subject=[0]), chance=0.5)
