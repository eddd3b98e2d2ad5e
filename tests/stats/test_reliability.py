"""subsample_reliability against closed forms and planted rankings; plot_subsample_reliability.

References: the variance of a mean under sampling without replacement (sigma^2 / n * (N - n) / (N - 1)), and its
two-way version for a random n x m block of a matrix (ANOVA decomposition, derived in `_block_mean_variance`);
planted model rankings: well-separated true scores -> split-half reliability ~1, equal true scores -> ~0 on
average over datasets, reliability rising with the fraction of stimuli kept.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import neurobridge as nb
from neurobridge.core import SchemaError


def _sim(sigmas, n=60, n_voxels=10, seed=0):
    """Brain = latent z + noise; model k = z + sigma_k * noise, so the true r falls with sigma_k."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 1))
    st = np.arange(n)
    brain = xr.DataArray(z + rng.normal(size=(n, n_voxels)), dims=("stimulus", "voxel"), coords={"stimulus": st})
    models = {f"m{i}": xr.DataArray(z + s * rng.normal(size=(n, 1)), dims=("stimulus", "unit"),
                                    coords={"stimulus": st}) for i, s in enumerate(sigmas)}
    return brain, models


def _r(b, m):
    return np.corrcoef(b.values.mean(1), m.values[:, 0])[0, 1]


def _mean(b, m):
    return float(b.values.mean())


def _block_mean_variance(x: np.ndarray, n: int, m: int) -> float:
    """Var of the mean of x[I][:, J] for random I (n of N rows) and J (m of M columns), without replacement.

    x = mu + a_i + b_j + e_ij (sum-to-zero effects); the three parts of the block mean are uncorrelated and
    Var(mean a_I) = (N - n) / (n N (N - 1)) sum a^2, Var(mean e_IJ) = (N - n)(M - m) / (n m N M (N-1)(M-1)) sum e^2.
    """
    N, M = x.shape
    mu = x.mean()
    a, b = x.mean(1) - mu, x.mean(0) - mu
    e = x - mu - a[:, None] - b[None, :]
    return float((N - n) / (n * N * (N - 1)) * (a ** 2).sum() + (M - m) / (m * M * (M - 1)) * (b ** 2).sum()
                 + (N - n) * (M - m) / (n * m * N * M * (N - 1) * (M - 1)) * (e ** 2).sum())


@pytest.mark.parametrize("over", ["stimulus", "voxel", "both"])
def test_variance_of_mean_matches_closed_form(over):
    rng = np.random.default_rng(1)
    N, M = 24, 20
    x = rng.gamma(2.0, size=(N, M)) + rng.normal(size=(N, 1)) + rng.normal(size=(1, M))
    brain = xr.DataArray(x, dims=("stimulus", "voxel"), coords={"stimulus": np.arange(N)})
    model = xr.DataArray(np.zeros((N, 1)), dims=("stimulus", "unit"), coords={"stimulus": np.arange(N)})
    fractions = (0.25, 0.5, 1.0)
    R = 400
    res = nb.stats.subsample_reliability(_mean, brain, {"m": model}, fractions=fractions, over=over, n_repeats=R,
                                         split_half=False, seed=0, progress=False)
    for f in fractions:
        n = int(round(f * N)) if over != "voxel" else N
        m = int(round(f * M)) if over != "stimulus" else M
        expected = _block_mean_variance(x, n, m)
        got = float(res["score_std"].sel(model="m", fraction=f)) ** 2
        mean = float(res["score_mean"].sel(model="m", fraction=f))
        if f == 1.0:
            assert got < 1e-20 and mean == pytest.approx(x.mean(), rel=1e-12)
            continue
        # sample variance of R draws: relative SE ~ sqrt(2 / R) = 7%; 25% is 3.5 SE
        assert got == pytest.approx(expected, rel=0.25), (f, got, expected)
        assert abs(mean - x.mean()) < 4 * np.sqrt(expected / R)
    assert res.attrs["over"] == {"stimulus": "stimulus", "voxel": "voxel", "both": "stimulus,voxel"}[over]
    if over != "stimulus":
        assert res["n_units"].values.tolist() == [5, 10, 20]


def test_separated_models_rank_reliably_and_sb_formula():
    brain, models = _sim((0.05, 0.5, 1.5, 5.0), n=120, seed=1)
    res = nb.stats.subsample_reliability(_r, brain, models, fractions=(1.0,), n_repeats=10, seed=1,
                                         progress=False)
    rel = float(res["ranking_reliability"][0])
    assert rel > 0.95
    np.testing.assert_allclose(res["ranking_reliability"], np.nanmean(res["ranking_split_half"], axis=1))
    np.testing.assert_allclose(res["ranking_reliability_sb"], 2 * rel / (1 + rel))
    # the planted order is recovered by the score means
    means = res["score_mean"].sel(fraction=1.0).values
    assert (np.diff(means) < 0).all()


def test_reliability_rises_with_fraction():
    brain, models = _sim((0.5, 0.8, 1.2, 1.8, 2.7), n=60, seed=0)
    res = nb.stats.subsample_reliability(_r, brain, models, fractions=(0.25, 0.5, 1.0), n_repeats=30, seed=0,
                                         progress=False)
    rel = res["ranking_reliability"].values
    assert (np.diff(rel) > 0).all() and rel[-1] - rel[0] > 0.2, rel
    # the score spread shrinks as more stimuli are kept
    assert (np.diff(res["score_std"].values, axis=1)[:, :-1] < 0).all()


def test_identical_models_rank_at_chance():
    # equal true scores: per dataset the split-half r scatters (SD ~0.3), its mean over datasets is ~0
    vals = []
    for seed in range(16):
        brain, models = _sim((1.0,) * 6, n=40, seed=100 + seed)
        res = nb.stats.subsample_reliability(_r, brain, models, fractions=(1.0,), n_repeats=8, seed=seed,
                                             progress=False)
        vals.append(float(res["ranking_reliability"][0]))
    assert abs(np.mean(vals)) < 0.25, vals


def test_subsets_are_paired_and_trials_follow_their_stimulus():
    rng = np.random.default_rng(0)
    ids = np.repeat(np.arange(15), 2)
    brain = xr.DataArray(rng.normal(size=(30, 4)), dims=("trial", "channel"),
                         coords={"stimulus": ("trial", ids)})
    # the model lacks stimulus 14 and is in a shuffled order: both are handled by the join
    order = rng.permutation(14)
    model = xr.DataArray(rng.normal(size=(14, 3)), dims=("stimulus", "unit"), coords={"stimulus": order})
    seen = []

    def check(b, m):
        sb = np.unique(b["stimulus"].values)
        assert np.array_equal(sb, np.sort(m["stimulus"].values))
        assert b.sizes["trial"] == 2 * len(sb)
        seen.append(len(sb))
        return float(len(sb))

    res = nb.stats.subsample_reliability(check, brain, {"a": model, "b": model}, fractions=(0.5, 1.0),
                                         n_repeats=3, seed=0, progress=False)
    assert res["n_stimuli"].values.tolist() == [7, 14]
    assert res["score"].sel(fraction=0.5).values.ravel().tolist() == [7.0] * 6
    assert 3 in seen  # halves of 7 stimuli


def test_rsa_score_at_full_fraction_equals_direct_call():
    rng = np.random.default_rng(2)
    st = [f"s{i}" for i in range(12)]
    brain = xr.DataArray(rng.normal(size=(12, 8)), dims=("stimulus", "voxel"), coords={"stimulus": st})
    model = xr.DataArray(rng.normal(size=(12, 5)), dims=("stimulus", "unit"), coords={"stimulus": st})

    def rsa(b, m):
        return nb.rsa.compare(nb.rsa.rdm(b), nb.rsa.rdm(m))

    res = nb.stats.subsample_reliability(rsa, brain, model.rename("net"), fractions=(0.5, 1.0), n_repeats=2,
                                         seed=0, progress=False)
    assert res["model"].values.tolist() == ["net"]
    assert "ranking_reliability" not in res  # one model: no ranking
    assert float(res["score"].sel(model="net", fraction=1.0, repeat=1)) == pytest.approx(float(rsa(brain, model)), abs=1e-6)


def test_seed_reproducible():
    brain, models = _sim((0.5, 1.0), n=20)
    kw = dict(fractions=(0.5,), n_repeats=4, progress=False)
    a = nb.stats.subsample_reliability(_r, brain, models, seed=3, **kw)
    b = nb.stats.subsample_reliability(_r, brain, models, seed=3, **kw)
    xr.testing.assert_identical(a, b)


def test_bad_inputs():
    brain, models = _sim((0.5, 1.0), n=20)
    f = nb.stats.subsample_reliability
    for bad in [(0.0, 1.0), (1.5,), (np.nan,), ()]:
        with pytest.raises(ValueError, match="fractions"):
            f(_r, brain, models, fractions=bad)
    with pytest.raises(ValueError, match="fewer than min_stimuli"):
        f(_r, brain, models, fractions=(0.1,))
    with pytest.raises(ValueError, match="keeps none"):
        f(_r, brain, models, fractions=(0.01,), over="voxel", min_stimuli=1)
    with pytest.raises(ValueError, match="one number"):
        f(lambda b, m: np.ones(3), brain, models, fractions=(1.0,), n_repeats=1)
    with pytest.raises(TypeError, match="must return a number"):
        f(lambda b, m: "high", brain, models, fractions=(1.0,), n_repeats=1)
    with pytest.raises(TypeError, match="Dataset"):
        f(lambda b, m: xr.Dataset({"s": 1.0}), brain, models, fractions=(1.0,), n_repeats=1)
    with pytest.raises(ValueError, match="over must be"):
        f(_r, brain, models, over="time")
    with pytest.raises(TypeError, match="callable"):
        f(0.5, brain, models)
    with pytest.raises(SchemaError, match="'stimulus' dim"):
        f(_r, brain, {"x": xr.DataArray(np.zeros((20, 1)), dims=("sample", "unit"))})
    with pytest.raises(ValueError, match="n_repeats"):
        f(_r, brain, models, n_repeats=0)
    disjoint = models["m0"].assign_coords(stimulus=np.arange(100, 120))
    with pytest.raises(SchemaError, match="share 0 stimuli"):
        f(_r, brain, {"x": disjoint})


def test_plot_subsample_reliability():
    import matplotlib.pyplot as plt

    brain, models = _sim((0.3, 1.0, 3.0), n=30)
    res = nb.stats.subsample_reliability(_r, brain, models, fractions=(0.5, 1.0), n_repeats=3, seed=0,
                                         progress=False)
    axes = nb.plotting.plot_subsample_reliability(res, x="n_stimuli", title="toy")
    assert len(axes) == 2
    assert len(axes[0].get_lines()) == 3
    np.testing.assert_allclose(axes[1].get_lines()[0].get_ydata(), res["ranking_reliability"].values)
    np.testing.assert_allclose(axes[0].get_lines()[0].get_xdata(), [15, 30])
    with pytest.raises(ValueError, match="x must be one of"):
        nb.plotting.plot_subsample_reliability(res, x="n_units")
    with pytest.raises(ValueError, match="lacks"):
        nb.plotting.plot_subsample_reliability(res[["score"]])
    plt.close("all")


def test_rank_correlation_matches_scipy():
    from scipy.stats import spearmanr

    from neurobridge.stats._reliability import _spearman

    rng = np.random.default_rng(4)
    for _ in range(5):
        a, b = rng.integers(0, 4, size=7).astype(float), rng.normal(size=7)  # ties in a
        assert _spearman(a, b) == pytest.approx(spearmanr(a, b).statistic, abs=1e-12)
    assert np.isnan(_spearman(np.ones(4), np.arange(4.0)))  # constant scores: undefined
    assert np.isnan(_spearman(np.array([1.0, np.nan]), np.array([1.0, 2.0])))


def test_rdms_are_subset_on_both_axes_and_subjects_can_be_subsampled():
    rng = np.random.default_rng(3)
    st = [f"s{i}" for i in range(16)]
    pats = rng.normal(size=(16, 6))
    brain = nb.rsa.rdm(xr.DataArray(pats[None] + 0.5 * rng.normal(size=(4, 16, 6)), dims=("subject", "stimulus", "channel"),
                                    coords={"stimulus": st, "subject": list("abcd")}))
    model = nb.rsa.rdm(xr.DataArray(pats, dims=("stimulus", "unit"), coords={"stimulus": st}))
    calls = []

    def rsa(b, m):
        assert np.array_equal(b["stimulus"].values, b["stimulus2"].values)
        assert np.array_equal(b["stimulus"].values, m["stimulus"].values)
        calls.append(b.sizes["subject"])
        return nb.rsa.compare(b.mean("subject"), m)

    res = nb.stats.subsample_reliability(rsa, brain, {"m": model, "m2": model * 2}, fractions=(0.5, 1.0),
                                         over=("stimulus", "subject"), n_repeats=2, seed=0, progress=False)
    assert res["n_stimuli"].values.tolist() == [8, 16] and res["n_units"].values.tolist() == [2, 4]
    assert set(calls) == {2, 4}
    full = float(nb.rsa.compare(brain.mean("subject"), model))
    assert float(res["score"].sel(model="m", fraction=1.0, repeat=0)) == pytest.approx(full, abs=1e-6)
    bad = model.assign_coords(stimulus2=[f"x{i}" for i in range(16)])
    with pytest.raises(SchemaError, match="stimulus2"):
        nb.stats.subsample_reliability(rsa, brain, {"m": bad})
