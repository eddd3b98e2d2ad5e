"""nb.rsa.rdm against rsatoolbox.rdm.calc_rdm (float64, 1e-6) and scipy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr
from scipy.spatial.distance import pdist, squareform

import neurobridge as nb

rsatoolbox = pytest.importorskip("rsatoolbox")
from rsatoolbox.data import Dataset  # noqa: E402
from rsatoolbox.data.noise import cov_from_residuals, prec_from_unbalanced  # noqa: E402
from rsatoolbox.rdm import calc_rdm  # noqa: E402


def _trials(rng, n_stim=6, n_rep=4, n_feat=15, positive=False):
    stim = np.tile(np.array([f"s{i}" for i in range(n_stim)]), n_rep)
    run = np.repeat(np.arange(n_rep), n_stim)
    signal = rng.standard_normal((n_stim, n_feat))
    x = signal[np.tile(np.arange(n_stim), n_rep)] + 0.8 * rng.standard_normal((n_stim * n_rep, n_feat))
    if positive:
        x = rng.poisson(5.0, size=x.shape).astype(float)
    return x, stim, run


def _dataset(x, stim, run):
    return Dataset(x, obs_descriptors={"stimulus": stim, "run": run})


def _sorted_square(r: xr.DataArray) -> np.ndarray:
    ids = np.sort(r["stimulus"].values)
    return r.sel(stimulus=ids, stimulus2=ids).values


@pytest.mark.parametrize("metric", ["correlation", "euclidean", "poisson"])
def test_rdm_matches_rsatoolbox(metric):
    rng = np.random.default_rng(0)
    x, stim, run = _trials(rng, positive=(metric == "poisson"))
    ref = calc_rdm(_dataset(x, stim, run), method=metric, descriptor="stimulus")
    da = nb.core.fmri_responses(x, stimulus=stim, trial_coords={"run": run})
    ours = nb.rsa.rdm(da, metric=metric, dtype="float64")
    assert ours.dims == ("stimulus", "stimulus2") and ours.attrs["metric"] == metric
    np.testing.assert_allclose(squareform(_sorted_square(ours), checks=False), ref.dissimilarities[0], atol=1e-6, rtol=0)


def test_cosine_matches_scipy():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((7, 11))
    da = nb.core.activations(x, stimulus=list("abcdefg"))
    ours = nb.rsa.rdm(da, metric="cosine", dtype="float64")
    np.testing.assert_allclose(squareform(ours.values, checks=False), pdist(x, "cosine"), atol=1e-12)


@pytest.mark.parametrize("estimator", ["full", "diag", "shrinkage_eye", "shrinkage_diag"])
def test_mahalanobis_and_crossnobis_with_estimated_noise(estimator):
    rng = np.random.default_rng(2)
    x, stim, run = _trials(rng, n_stim=5, n_rep=6, n_feat=8)
    ds = _dataset(x, stim, run)
    # prec_from_unbalanced: deviations from the stimulus means, dof = n_trials - n_stimuli (rsatoolbox's
    # prec_from_measurements uses dof = (n_stimuli - 1) * n_repetitions instead; pass dof= to reproduce it)
    prec = prec_from_unbalanced(ds, obs_desc="stimulus", method=estimator)
    da = nb.core.fmri_responses(x, stimulus=stim, trial_coords={"run": run})
    for metric in ("mahalanobis", "crossnobis"):
        kw = {"cv_descriptor": "run"} if metric == "crossnobis" else {}
        ref = calc_rdm(ds, method=metric, descriptor="stimulus", noise=prec, **kw)
        ours = nb.rsa.rdm(da, metric=metric, noise=estimator, dtype="float64",
                          **({"cv_dim": "run"} if metric == "crossnobis" else {}))
        np.testing.assert_allclose(squareform(_sorted_square(ours), checks=False), ref.dissimilarities[0],
                                   atol=1e-6, rtol=0, err_msg=f"{metric}/{estimator}")


def test_crossnobis_identity_default_folds_and_run_dim():
    rng = np.random.default_rng(3)
    x, stim, run = _trials(rng, n_stim=6, n_rep=4, n_feat=12)
    ds = _dataset(x, stim, run)
    ref = calc_rdm(ds, method="crossnobis", descriptor="stimulus", cv_descriptor="run").dissimilarities[0]
    ref_default = calc_rdm(ds, method="crossnobis", descriptor="stimulus").dissimilarities[0]
    da = nb.core.fmri_responses(x, stimulus=stim, trial_coords={"run": run})
    ours = nb.rsa.rdm(da, metric="crossnobis", cv_dim="run", dtype="float64")
    np.testing.assert_allclose(squareform(_sorted_square(ours), checks=False), ref, atol=1e-6)
    ours_default = nb.rsa.rdm(da, metric="crossnobis", dtype="float64")
    np.testing.assert_allclose(squareform(_sorted_square(ours_default), checks=False), ref_default, atol=1e-6)
    # the same data as a (run, stimulus, voxel) array, runs as a dim
    cube = xr.DataArray(x.reshape(4, 6, 12), dims=("run", "stimulus", "voxel"),
                        coords={"stimulus": stim[:6]})
    ours_dim = nb.rsa.rdm(cube, metric="crossnobis", cv_dim="run", dtype="float64")
    np.testing.assert_allclose(squareform(_sorted_square(ours_dim), checks=False), ref, atol=1e-6)
    # with a given covariance (rsatoolbox takes the precision)
    cov = cov_from_residuals(rng.standard_normal((40, 12)), method="full")
    ref_cov = calc_rdm(ds, method="crossnobis", descriptor="stimulus", cv_descriptor="run",
                       noise=np.linalg.inv(cov)).dissimilarities[0]
    ours_cov = nb.rsa.rdm(da, metric="crossnobis", cv_dim="run", noise=cov, dtype="float64")
    np.testing.assert_allclose(squareform(_sorted_square(ours_cov), checks=False), ref_cov, atol=1e-6)


def test_noise_from_residuals_matches_rsatoolbox():
    rng = np.random.default_rng(4)
    x, stim, run = _trials(rng, n_stim=5, n_rep=4, n_feat=9)
    resid = rng.standard_normal((60, 9))
    for estimator in ("shrinkage_eye", "shrinkage_diag"):
        ref_cov = cov_from_residuals(resid, method=estimator)
        ours_cov = nb.rsa.noise_covariance(xr.DataArray(resid, dims=("time", "voxel")), method=estimator,
                                           dtype="float64")
        np.testing.assert_allclose(ours_cov.values, ref_cov, atol=1e-10)
        ref = calc_rdm(_dataset(x, stim, run), method="crossnobis", descriptor="stimulus", cv_descriptor="run",
                       noise=np.linalg.inv(ref_cov)).dissimilarities[0]
        da = nb.core.fmri_responses(x, stimulus=stim, trial_coords={"run": run})
        ours = nb.rsa.rdm(da, metric="crossnobis", cv_dim="run", noise=estimator,
                          residuals=xr.DataArray(resid, dims=("time", "voxel")), dtype="float64")
        np.testing.assert_allclose(squareform(_sorted_square(ours), checks=False), ref, atol=1e-6)


def test_rdm_broadcasts_over_time_and_matches_per_time():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((12, 5, 7))  # trial x channel x time
    stim = np.repeat(np.arange(4), 3)
    ep = nb.core.eeg_epochs(x, stimulus=stim, sfreq=100.0)
    r = nb.rsa.rdm(ep, metric="correlation", dtype="float64")
    assert r.dims == ("time", "stimulus", "stimulus2")
    np.testing.assert_allclose(r["time"].values, ep["time"].values)
    means = np.stack([x[stim == s].mean(0) for s in range(4)])  # stimulus x channel x time
    for t in (0, 6):
        np.testing.assert_allclose(squareform(r.isel(time=t).values, checks=False), pdist(means[:, :, t], "correlation"),
                                   atol=1e-12)
    # accessor and float32 default
    r32 = ep.nb.rdm(metric="correlation")
    assert r32.dtype == np.float32
    np.testing.assert_allclose(r32.values, r.values, atol=1e-5)


def test_condensed_round_trip():
    rng = np.random.default_rng(6)
    sq = np.stack([squareform(rng.random(10)) for _ in range(3)])
    r = nb.core.rdm(sq, dims=("subject",), stimulus=list("abcde"), coords={"subject": ["x", "y", "z"]})
    v = nb.rsa.to_condensed(r)
    assert v.dims == ("subject", "pair") and v.sizes["pair"] == 10
    np.testing.assert_array_equal(v.values[1], squareform(sq[1], checks=False))
    back = nb.rsa.from_condensed(v)
    xr.testing.assert_identical(back.drop_attrs(), r.drop_attrs())
    t = nb.rsa.condensed_tensor(torch.as_tensor(sq))
    np.testing.assert_array_equal(nb.rsa.square_tensor(t).numpy(), sq)


def test_rdm_errors():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((6, 4))
    da = nb.core.activations(x, stimulus=list("abcdef"))
    with pytest.raises(ValueError, match="unknown metric"):
        nb.rsa.rdm(da, metric="manhattan")
    bad = da.copy()
    bad.values[0, 0] = np.nan
    with pytest.raises(nb.core.SchemaError, match="NaN"):
        nb.rsa.rdm(bad)
    with pytest.raises(nb.core.SchemaError, match="feature_dim"):
        nb.rsa.rdm(da, feature_dim="voxel")
    with pytest.raises(nb.core.SchemaError, match="cannot tell which dim"):
        nb.rsa.rdm(xr.DataArray(x, dims=("stimulus", "foo")))
    with pytest.raises(ValueError, match="zero variance"):
        nb.rsa.rdm(nb.core.activations(np.ones((3, 4)), stimulus=list("abc")))
    with pytest.raises(nb.core.SchemaError, match="at least 2 folds|repetition"):
        nb.rsa.rdm(da, metric="crossnobis")
    uneven = nb.core.fmri_responses(rng.standard_normal((5, 3)), stimulus=list("aabbc"))
    with pytest.raises(nb.core.SchemaError, match="equal repetition counts"):
        nb.rsa.rdm(uneven, metric="crossnobis")
    with pytest.raises(ValueError, match="noise must be a covariance"):
        nb.rsa.rdm(da, metric="mahalanobis", noise=np.eye(3))
    with pytest.raises(ValueError, match="repeated measurements"):
        nb.rsa.rdm(da, metric="mahalanobis", noise="shrinkage_diag")
    with pytest.raises(ValueError, match="non-negative"):
        nb.rsa.rdm(da, metric="poisson")
    with pytest.raises(ValueError, match="cv_dim is only used"):
        nb.rsa.rdm(da, metric="euclidean", cv_dim="run")


@pytest.mark.parametrize("metric", ["correlation", "euclidean", "cosine", "poisson"])
def test_rdm_tensor_condensed_and_padding(metric):
    rng = np.random.default_rng(8)
    x = torch.as_tensor(rng.poisson(4.0, size=(3, 6, 9)).astype(float) + 0.1)
    sq = nb.rsa.rdm_tensor(x, metric)
    np.testing.assert_allclose(nb.rsa.rdm_tensor(x, metric, condensed=True).numpy(),
                               nb.rsa.condensed_tensor(sq).numpy(), atol=1e-12)
    np.testing.assert_array_equal(sq.numpy(), sq.transpose(-1, -2).numpy())
    # zero-padded features marked invalid give the same RDMs as the unpadded patterns
    padded = torch.cat([x, torch.zeros(3, 6, 4, dtype=x.dtype)], -1)
    valid = torch.cat([torch.ones(9, dtype=torch.bool), torch.zeros(4, dtype=torch.bool)])
    np.testing.assert_allclose(nb.rsa.rdm_tensor(padded, metric, valid=valid).numpy(), sq.numpy(), atol=1e-12)


def test_crossnobis_unbalanced_folds_match_rsatoolbox():
    rng = np.random.default_rng(9)
    x, stim, run = _trials(rng, n_stim=5, n_rep=4, n_feat=10)
    x, stim, run = np.r_[x, x[:3] + 0.1], np.r_[stim, stim[:3]], np.r_[run, run[:3]]  # extra trials in run 0
    ref = calc_rdm(_dataset(x, stim, run), method="crossnobis", descriptor="stimulus", cv_descriptor="run")
    da = nb.core.fmri_responses(x, stimulus=stim, trial_coords={"run": run})
    ours = nb.rsa.rdm(da, metric="crossnobis", cv_dim="run", dtype="float64")
    np.testing.assert_allclose(squareform(_sorted_square(ours), checks=False), ref.dissimilarities[0], atol=1e-6)


def test_rdm_metrics_on_real_images_match_rsatoolbox(data_dir):
    k92 = nb.datasets.load("kriegeskorte92", data_dir=data_dir)
    img = k92.stimuli.astype(float).coarsen(height=7, width=7, boundary="trim").mean()  # 25 x 25 x 3
    feats = img.stack(feature=("height", "width", "color")).transpose("stimulus", "feature")
    x = feats.values
    ds = Dataset(x, obs_descriptors={"stimulus": np.arange(len(x))})
    var = x.var(0) + 1.0
    for metric, kw, rkw in [("correlation", {}, {}), ("euclidean", {}, {}), ("poisson", {}, {}),
                            ("mahalanobis", {"noise": var}, {"noise": np.diag(1 / var)})]:
        ref = calc_rdm(ds, method=metric, **rkw).dissimilarities[0]
        ours = nb.rsa.rdm(feats, feature_dim="feature", metric=metric, dtype="float64", **kw)
        np.testing.assert_allclose(squareform(ours.values, checks=False), ref, atol=1e-6 * max(1, np.abs(ref).max()),
                                   rtol=0, err_msg=metric)


@pytest.mark.parametrize("metric", ["euclidean", "correlation"])
def test_rdm_float32_with_a_large_baseline(metric):
    """nb.rsa.rdm in float32 on data with a large shared baseline stays close to float64 pdist."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((20, 50)) + 1000 + 50 * rng.standard_normal(50)
    da = nb.core.fmri_responses(x.astype(np.float32), stimulus=np.arange(20), dim="stimulus")
    out = nb.rsa.to_condensed(nb.rsa.rdm(da, metric=metric, dtype="float32")).values
    ref = pdist(x, "sqeuclidean") / 50 if metric == "euclidean" else pdist(x, "correlation")
    np.testing.assert_allclose(out, ref, rtol=2e-3 if metric == "correlation" else 1e-4)


# ------------------------------------------------------- time-resolved RDMs: float64 path, condensed form
@pytest.fixture(params=["compiled", "torch"])
def rdm_path(request, monkeypatch):
    """Run a test through the CPU's compiled finishing pass (forced for small RDMs) and through the torch
    expressions (what small RDMs, autograd and GPUs use)."""
    import neurobridge.rsa._rdm as rdm_module

    monkeypatch.setattr(rdm_module, "_COMPILED_MIN_ENTRIES", 0 if request.param == "compiled" else 1 << 62)
    return request.param


@pytest.mark.parametrize("shape", [(2, 3, 1), (9, 5, 4), (70, 12, 3), (131, 20, 2)])
def test_time_resolved_rdm_matches_rsatoolbox_movie_square_and_condensed(shape, rdm_path):
    """nb.rsa.rdm on a float64 (stimulus, channel, time) DataArray equals rsatoolbox's calc_rdm_movie: float64 on
    request (1e-12), the float32 default (1e-5), and condensed=True, which is exactly to_condensed of the square
    result. Sizes span one and several 64-row tiles of the compiled finishing pass."""
    from rsatoolbox.data import TemporalDataset
    from rsatoolbox.rdm import calc_rdm_movie

    n_stim, n_ch, n_t = shape
    rng = np.random.default_rng(10)
    x = rng.standard_normal(shape) + 3.0 * rng.standard_normal((n_stim, n_ch, 1))  # patterns correlated in time
    stim = np.array([f"s{i:03d}" for i in range(n_stim)])
    times = np.arange(n_t) / 100.0
    ref = calc_rdm_movie(TemporalDataset(x, obs_descriptors={"stimulus": stim}, time_descriptors={"time": times}),
                         method="correlation", descriptor="stimulus").dissimilarities
    brain = nb.core.evoked(x, stimulus=stim, times=times, sfreq=100.0)
    assert brain.dims == ("stimulus", "channel", "time") and brain.dtype == np.float64
    iu, ju = np.triu_indices(n_stim, k=1)
    sq64 = nb.rsa.rdm(brain, dtype="float64")
    assert sq64.dims == ("time", "stimulus", "stimulus2") and sq64.dtype == np.float64
    np.testing.assert_allclose(sq64.values[:, iu, ju], ref, atol=1e-12, rtol=0)
    np.testing.assert_array_equal(sq64.values, sq64.values.transpose(0, 2, 1))  # exactly symmetric
    assert not sq64.values[:, np.arange(n_stim), np.arange(n_stim)].any()  # exact zero diagonal
    np.testing.assert_array_equal(sq64["time"].values, times)
    sq32 = nb.rsa.rdm(brain)  # the default: float32, also for float64 data
    assert sq32.dtype == np.float32
    np.testing.assert_allclose(sq32.values[:, iu, ju], ref, atol=1e-5, rtol=0)
    for dtype, sq in (("float64", sq64), (None, sq32)):
        v = nb.rsa.rdm(brain, dtype=dtype, condensed=True)
        assert v.dims == ("time", "pair") and v.dtype == sq.dtype
        xr.testing.assert_identical(v, nb.rsa.to_condensed(sq))  # values, stimulus/stimulus2 on pair, time, attrs
        xr.testing.assert_identical(nb.rsa.from_condensed(v), sq)


@pytest.mark.parametrize("metric", ["correlation", "cosine", "euclidean", "mahalanobis", "poisson", "crossnobis"])
def test_rdm_condensed_option_matches_scipy_and_square(metric, rdm_path):
    """condensed=True for every metric, with repeated trials and a broadcast dim, against the float64 closed form
    (scipy pdist on the stimulus means) and the square result."""
    rng = np.random.default_rng(11)
    n_stim, n_rep, n_feat, n_sub = 8, 3, 6, 2
    x = rng.poisson(6.0, size=(n_sub, n_stim * n_rep, n_feat)).astype(float) + 0.5
    stim = np.tile(np.arange(n_stim), n_rep)
    da = xr.DataArray(x, dims=("subject", "trial", "voxel"),
                      coords={"subject": ["a", "b"], "trial": np.arange(n_stim * n_rep), "stimulus": ("trial", stim)})
    sq = nb.rsa.rdm(da, metric=metric, dtype="float64")
    v = nb.rsa.rdm(da, metric=metric, dtype="float64", condensed=True)
    assert v.dims == ("subject", "pair") and list(v["subject"].values) == ["a", "b"]
    np.testing.assert_allclose(v.values, nb.rsa.to_condensed(sq).values, atol=1e-12, rtol=0)
    np.testing.assert_array_equal(v["stimulus"].values, nb.rsa.to_condensed(sq)["stimulus"].values)
    if metric == "crossnobis":
        return  # compared with rsatoolbox in the tests above
    means = np.stack([x[:, stim == s].mean(1) for s in range(n_stim)], 1)  # subject x stimulus x voxel
    for s in range(n_sub):
        m = means[s]
        if metric == "poisson":
            r = (m + 0.1) / 1.1  # rsatoolbox's prior: lambda = 1, weight = 0.1
            ref = np.array([(r[i] - r[j]) @ (np.log(r[i]) - np.log(r[j])) / n_feat
                            for i in range(n_stim) for j in range(i + 1, n_stim)])
        elif metric in ("euclidean", "mahalanobis"):
            ref = pdist(m, "sqeuclidean") / n_feat
        else:
            ref = pdist(m, metric)
        np.testing.assert_allclose(v.values[s], ref, atol=1e-12, rtol=0, err_msg=metric)


@pytest.mark.parametrize("condensed", [False, True])
@pytest.mark.parametrize("metric", ["correlation", "euclidean", "poisson"])
def test_rdm_tensor_compiled_pass_equals_torch_path(metric, condensed, monkeypatch):
    """The CPU path (GEMM into the result + compiled finishing pass) gives what the torch expressions give (the
    path taken under autograd and on GPUs), batched and with padding masks."""
    import neurobridge.rsa._rdm as rdm_module

    monkeypatch.setattr(rdm_module, "_COMPILED_MIN_ENTRIES", 0)
    rng = np.random.default_rng(12)
    x = torch.as_tensor(rng.poisson(4.0, size=(3, 2, 67, 9)).astype(float) + 0.1)
    valid = torch.as_tensor(rng.random((3, 2, 9)) > 0.2)
    for kw in ({}, {"valid": valid}):
        fast = nb.rsa.rdm_tensor(x, metric, condensed=condensed, **kw)
        ref = nb.rsa.rdm_tensor(x.clone().requires_grad_(), metric, condensed=condensed, **kw)
        assert ref.requires_grad and not fast.requires_grad
        np.testing.assert_allclose(fast.numpy(), ref.detach().numpy(), atol=1e-12, rtol=0)


def test_rdm_nan_and_overflow_errors_name_the_problem_and_fix(rdm_path):
    rng = np.random.default_rng(13)
    x = rng.standard_normal((5, 4, 3))
    brain = nb.core.evoked(x, stimulus=list("abcde"), times=np.arange(3) / 10).copy()
    brain.values[1, 2, 0] = np.nan
    with pytest.raises(nb.core.SchemaError, match=r"1 non-finite value.*stimulus=1, channel=2, time=0.*dropna"):
        nb.rsa.rdm(brain)
    # finite float64 data whose float32 inner products overflow: the distances are NaN, and the error says so
    big = nb.core.activations(rng.standard_normal((5, 4)) * 1e25, stimulus=list("abcde"))
    with pytest.raises(nb.core.SchemaError, match="distances.*dtype='float64'"):
        nb.rsa.rdm(big, metric="euclidean")
    with pytest.raises(nb.core.SchemaError, match="distances.*dtype='float64'"):
        nb.rsa.rdm(big, metric="euclidean", condensed=True)
    out = nb.rsa.rdm(big, metric="euclidean", dtype="float64")
    assert np.isfinite(out.values).all()
