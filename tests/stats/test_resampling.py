"""Permutation/bootstrap machinery against scipy and closed forms; calibration under a true null."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch
import xarray as xr

import neurobridge as nb


def test_permutation_indices_are_permutations():
    idx = nb.stats.permutation_indices(7, 50, seed=0)
    assert idx.shape == (50, 7)
    assert bool((idx.sort(1).values == torch.arange(7)).all())
    assert torch.equal(idx, nb.stats.permutation_indices(7, 50, seed=0))
    assert not torch.equal(idx, nb.stats.permutation_indices(7, 50, seed=1))


def test_bootstrap_indices_and_counts():
    idx = nb.stats.bootstrap_indices(10, 2000, seed=0)
    assert idx.shape == (2000, 10) and bool((idx.diff(dim=1) >= 0).all())
    counts = nb.stats.indices_to_counts(idx, 10)
    assert bool((counts.sum(1) == 10).all())
    # each count is Binomial(10, 1/10): mean 1, variance 0.9
    assert abs(float(counts.double().mean()) - 1) < 0.02
    assert abs(float(counts.double().var()) - 0.9) < 0.05
    with pytest.raises(ValueError, match="must lie in"):
        nb.stats.indices_to_counts([[0, 5]], 3)


def test_bootstrap_counts_groups_draw_whole_groups():
    groups = np.array(["a", "a", "b", "c", "c", "c"])
    c = nb.stats.bootstrap_counts(6, 500, groups=groups, seed=2)
    assert bool((c[:, 0] == c[:, 1]).all()) and bool((c[:, 3] == c[:, 5]).all())
    # three groups drawn three times in total
    assert bool((c[:, [0, 2, 3]].sum(1) == 3).all())
    with pytest.raises(ValueError, match="one label per item"):
        nb.stats.bootstrap_counts(6, 5, groups=groups[:4])


def test_sign_flips_exact_enumeration():
    f = nb.stats.sign_flips(4, 100)
    assert f.shape == (16, 4) and bool((f[0] == 1).all())
    assert len({tuple(r) for r in f.tolist()}) == 16
    r = nb.stats.sign_flips(12, 100, seed=0)
    assert r.shape == (100, 12) and set(r.unique().tolist()) == {-1.0, 1.0}


@pytest.mark.parametrize("alternative", ["greater", "less", "two-sided"])
def test_sign_flip_test_matches_scipy_exact(alternative):
    rng = np.random.default_rng(3)
    x = rng.normal(0.4, 1, size=(9, 3))
    res = nb.stats.sign_flip_test(x, dim=0, statistic="mean", alternative=alternative)
    for j in range(3):
        ref = scipy.stats.permutation_test((x[:, j],), np.mean, permutation_type="samples",
                                           alternative=alternative, n_resamples=np.inf)
        assert res.pvalue[j] == pytest.approx(ref.pvalue, abs=1e-12)
        assert res.statistic[j] == pytest.approx(ref.statistic)


def test_sign_flip_t_statistic_and_dataarray():
    rng = np.random.default_rng(4)
    x = xr.DataArray(rng.normal(size=(6, 5, 8)), dims=("subject", "layer", "time"),
                     coords={"time": np.arange(8) * 0.1})
    res = nb.stats.sign_flip_test(x, dim="subject")
    t_ref = scipy.stats.ttest_1samp(x.values, 0, axis=0).statistic
    np.testing.assert_allclose(res.statistic.values, t_ref, rtol=1e-10)
    assert res.pvalue.dims == ("layer", "time") and res.null.shape == (64, 5, 8)
    with pytest.raises(ValueError, match="non-finite"):
        nb.stats.sign_flip_test(np.array([[1.0], [np.nan]]))
    with pytest.raises(ValueError, match="at least 2"):
        nb.stats.sign_flip_test(np.ones((1, 3)))


def test_pvalue_and_confidence_interval_against_numpy():
    rng = np.random.default_rng(5)
    null = rng.normal(size=(999, 4))
    obs = np.array([0.0, 1.0, 2.5, -3.0])
    p = nb.stats.pvalue(obs, null, alternative="two-sided")
    np.testing.assert_allclose(p, [(1 + np.sum(np.abs(null[:, j]) >= abs(o))) / 1000 for j, o in enumerate(obs)])
    ci = nb.stats.confidence_interval(null, 0.9)
    np.testing.assert_allclose(ci.low, np.percentile(null, 5, axis=0))
    np.testing.assert_allclose(ci.high, np.percentile(null, 95, axis=0))


def test_generic_permutation_test_matches_scipy_pearson():
    rng = np.random.default_rng(6)
    x = rng.normal(size=30)
    y = 0.3 * x + rng.normal(size=30)
    xt, yt = torch.tensor(x), torch.tensor(y)
    perms = nb.stats.permutation_indices(30, 2000, seed=0)

    def stat(p):
        yp = yt[p]
        return ((yp - yp.mean(1, keepdim=True)) @ (xt - xt.mean())) / (30 * yp.std(1, unbiased=False) * xt.std(unbiased=False))

    res = nb.stats.permutation_test(stat, 30, indices=perms)
    # the same permutations through a scipy loop
    ref_null = np.array([scipy.stats.pearsonr(x, y[q]).statistic for q in perms.numpy()])
    np.testing.assert_allclose(res.null.numpy(), ref_null, atol=1e-12)
    assert float(res.statistic) == pytest.approx(scipy.stats.pearsonr(x, y).statistic)
    assert float(res.pvalue) == pytest.approx((1 + np.sum(np.abs(ref_null) >= abs(res.statistic.item()) - 1e-12)) / 2001)


def test_bootstrap_both_factors_and_explicit_indices():
    rng = np.random.default_rng(7)
    data = torch.tensor(rng.normal(size=(8, 20)))
    res = nb.stats.bootstrap(lambda subject, stimulus: data[subject[:, :, None], stimulus[:, None, :]].mean((1, 2)),
                             {"subject": 8, "stimulus": 20}, n_bootstraps=300, seed=0)
    assert res.samples.shape == (300,) and float(res.estimate) == pytest.approx(float(data.mean()))
    assert float(res.ci.low) < float(res.estimate) < float(res.ci.high)
    idx = nb.stats.bootstrap_indices(20, 50, seed=1)
    r2 = nb.stats.bootstrap(lambda i: data[:, i].mean((0, 2)) if i.ndim == 2 else None, 20, indices=idx)
    np.testing.assert_allclose(r2.samples.numpy(), [data[:, q].mean().item() for q in idx.numpy()])
    np.testing.assert_allclose(float(r2.se), np.std(r2.samples.numpy(), ddof=1))


def test_pairwise_bootstrap_test_matches_rsatoolbox():
    from rsatoolbox.util.inference_util import bootstrap_pair_tests

    rng = np.random.default_rng(8)
    s = rng.normal([0.0, 0.05, 0.3], 0.1, size=(500, 3))
    np.testing.assert_allclose(nb.stats.pairwise_bootstrap_test(s), bootstrap_pair_tests(s), atol=1e-12)


def _null_false_positive_rate(n_sims: int, alpha: float = 0.05) -> tuple[float, float]:
    """Simulate true nulls; return the rejection rates of the sign-flip and generic permutation tests."""
    g = torch.Generator().manual_seed(123)
    n = 15
    x = torch.randn(n_sims, n, generator=g, dtype=torch.float64)
    # sign-flip test, all simulations at once (the simulations are the "grid")
    p_flip = nb.stats.sign_flip_test(x.T, dim=0, n_permutations=500, seed=1, exact=False).pvalue
    # independent-samples permutation test of a correlation, all simulations at once
    y = torch.randn(n_sims, n, generator=g, dtype=torch.float64)
    xc = (x - x.mean(1, keepdim=True)) / x.std(1, keepdim=True)
    yc = (y - y.mean(1, keepdim=True)) / y.std(1, keepdim=True)
    res = nb.stats.permutation_test(lambda p: (xc[:, p] * yc[:, None]).sum(-1).T, n, n_permutations=500, seed=2,
                                    batch_size=100)
    return float((p_flip <= alpha).double().mean()), float((res.pvalue <= alpha).double().mean())


def test_calibration_under_true_null():
    fpr_flip, fpr_perm = _null_false_positive_rate(2000)
    assert 0.03 <= fpr_flip <= 0.07, fpr_flip
    assert 0.03 <= fpr_perm <= 0.07, fpr_perm


def test_bootstrap_ci_coverage():
    # 95% percentile CIs of a mean cover the true mean about 95% of the time (n=40, normal data)
    g = torch.Generator().manual_seed(9)
    x = torch.randn(500, 40, generator=g, dtype=torch.float64)
    idx = nb.stats.bootstrap_indices(40, 1000, seed=3)
    samples = x[:, idx].mean(-1)  # (500 sims, 1000 boots)
    ci = nb.stats.confidence_interval(samples, 0.95, dim=1)
    cover = float(((ci.low < 0) & (ci.high > 0)).double().mean())
    assert 0.91 <= cover <= 0.98, cover
