"""Cluster labelling against scipy.ndimage and cluster permutation tests against MNE (exact sign flips)."""

from __future__ import annotations

import mne
import numpy as np
import pytest
import scipy.ndimage
import scipy.stats
import torch

import neurobridge as nb


@pytest.mark.parametrize("shape", [(200,), (6, 40), (3, 4, 10)])
def test_label_clusters_matches_scipy(shape):
    rng = np.random.default_rng(0)
    masks = rng.uniform(size=(20, *shape)) > 0.55
    labels = nb.stats.label_clusters(torch.from_numpy(masks)).numpy()
    for m, lab in zip(masks, labels, strict=True):
        ref, n_ref = scipy.ndimage.label(m)
        assert len(np.unique(lab[lab > 0])) == n_ref
        # same partition: a bijection between our ids and scipy's
        pairs = {(a, b) for a, b in zip(lab[m], ref[m], strict=True)}
        assert len(pairs) == n_ref
        assert bool(((lab > 0) == m).all())


def _brute_force_cluster_p(x, thr, alternative):
    """Reference: all 2**n sign flips, t maps, scipy.ndimage.label clusters, max mass per flip."""
    import itertools

    n = x.shape[0]

    def masses(t):
        out = []
        if alternative in ("greater", "two-sided"):
            lab, k = scipy.ndimage.label(t > thr)
            out += [t[lab == i].sum() for i in range(1, k + 1)]
        if alternative in ("less", "two-sided"):
            lab, k = scipy.ndimage.label(t < -thr)
            out += [-t[lab == i].sum() for i in range(1, k + 1)]
        return out

    null = []
    for signs in itertools.product([1, -1], repeat=n):
        t = scipy.stats.ttest_1samp(x * np.reshape(signs, (n,) + (1,) * (x.ndim - 1)), 0, axis=0).statistic
        null.append(max(masses(t), default=0.0))
    return np.array(null)


@pytest.mark.parametrize("tail, alternative", [(0, "two-sided"), (1, "greater"), (-1, "less")])
@pytest.mark.parametrize("grid", [(60,), (4, 30)])
def test_cluster_permutation_matches_mne_and_brute_force(tail, alternative, grid):
    rng = np.random.default_rng(1)
    n = 8
    x = rng.normal(size=(n, *grid))
    sl = (slice(None),) + tuple(slice(1, 3) for _ in grid[:-1]) + (slice(10, 25),)
    x[sl] += 0.9 * (1 if tail >= 0 else -1)
    x[(slice(None),) + (0,) * (len(grid) - 1) + (slice(40, 50) if grid[-1] > 50 else slice(26, 29),)] -= 0.8
    thr = 2.0
    res = nb.stats.cluster_permutation_test(x, dim=0, threshold=thr, alternative=alternative, n_permutations=1024)
    t_obs, clusters, pv, _ = mne.stats.permutation_cluster_1samp_test(
        x, threshold=thr if tail >= 0 else -thr, tail=tail, n_permutations="all", out_type="mask", verbose=False)
    np.testing.assert_allclose(res.statistic, t_obs, rtol=1e-10)
    assert len(res.clusters) == len(clusters) > 0
    null = _brute_force_cluster_p(x, thr, alternative)
    np.testing.assert_allclose(np.sort(res.null.numpy()), np.sort(null), rtol=1e-9, atol=1e-12)
    # masses and p-values: same clusters as MNE (compare sorted masses), exact p from the brute-force null
    mne_mass = np.sort([t_obs[c].sum() for c in clusters])
    np.testing.assert_allclose(np.sort(res.cluster_stats), mne_mass, rtol=1e-10)
    for mass, p in zip(res.cluster_stats, res.cluster_pvalues, strict=True):
        assert p == pytest.approx(np.mean(null >= abs(mass) - 1e-9), abs=1e-12)
    # MNE's exhaustive null differs from the full 2**n enumeration by one flip pattern
    for mass, p in zip(np.array([t_obs[c].sum() for c in clusters]), pv, strict=True):
        ours = res.cluster_pvalues[np.argmin(np.abs(res.cluster_stats - mass))]
        assert abs(ours - p) <= 2.5 / 2**n


def test_cluster_test_errors_and_null_calibration():
    with pytest.raises(ValueError, match="null must have shape"):
        nb.stats.cluster_test(np.zeros(10), np.zeros((5, 9)), 1.0)
    with pytest.raises(ValueError, match="threshold"):
        nb.stats.cluster_test(np.zeros(10), np.zeros((5, 10)), -1.0)


def _cluster_fwer(n_sims: int, n_permutations: int) -> float:
    """Fraction of smooth null datasets whose smallest cluster p-value is <= 0.05."""
    rng = np.random.default_rng(2)
    hits = 0
    for s in range(n_sims):
        x = scipy.ndimage.gaussian_filter1d(rng.normal(size=(12, 40)), 2, axis=1)
        res = nb.stats.cluster_permutation_test(x, dim=0, n_permutations=n_permutations, seed=s, exact=False)
        hits += bool(len(res.cluster_pvalues) and res.cluster_pvalues.min() <= 0.05)
    return hits / n_sims


def test_cluster_fwer_under_null_small():
    fwer = _cluster_fwer(100, 100)
    assert 0.01 <= fwer <= 0.10, fwer


@pytest.mark.slow
def test_cluster_fwer_under_null_500():
    fwer = _cluster_fwer(500, 200)
    assert 0.03 <= fwer <= 0.07, fwer
