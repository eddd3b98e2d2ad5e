"""Time-resolved and searchlight RSA against per-element rdm/compare, rsatoolbox and planted effects."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from scipy import stats
from scipy.spatial.distance import pdist, squareform

import neurobridge as nb

rsatoolbox = pytest.importorskip("rsatoolbox")


def _grid(shape):
    ijk = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), -1).reshape(-1, 3)
    return {"i": ijk[:, 0], "j": ijk[:, 1], "k": ijk[:, 2]}, ijk


def _rho_a(x, y):
    n = len(x)
    rx, ry = stats.rankdata(x), stats.rankdata(y)
    return 12 * np.sum((rx - rx.mean()) * (ry - ry.mean())) / (n**3 - n)


@pytest.mark.parametrize("method", ["spearman", "pearson", "kendall", "cosine_cov"])
def test_time_resolved_equals_rdm_then_compare(method):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((24, 6, 9))
    stim = np.arange(24) % 8
    ep = nb.core.eeg_epochs(x, stimulus=stim, sfreq=100.0)
    acts = xr.DataArray(rng.standard_normal((3, 8, 5)), dims=("layer", "stimulus", "unit"),
                        coords={"layer": ["a", "b", "c"], "stimulus": np.arange(8)[::-1]})
    models = nb.rsa.rdm(acts, dtype="float64")
    out = nb.rsa.time_resolved_rsa(ep, models, method=method, dtype="float64", batch_size=4, progress=False)
    ref = nb.rsa.compare(nb.rsa.rdm(ep, dtype="float64"), models, method=method, dtype="float64")
    assert out.dims == ("layer", "time")
    np.testing.assert_allclose(out.values, ref.transpose("layer", "time").values, atol=1e-10)
    np.testing.assert_allclose(out["time"].values, ep["time"].values)


def test_time_resolved_matches_rsatoolbox_movie():
    from rsatoolbox.data import TemporalDataset
    from rsatoolbox.rdm import RDMs, calc_rdm_movie, compare

    rng = np.random.default_rng(1)
    n_stim, n_ch, n_t = 10, 7, 6
    x = rng.standard_normal((n_stim, n_ch, n_t))
    times = np.arange(n_t) / 100.0
    ds = TemporalDataset(x, obs_descriptors={"stimulus": np.arange(n_stim)}, time_descriptors={"time": times})
    movie = calc_rdm_movie(ds, method="correlation", descriptor="stimulus")
    model = pdist(rng.standard_normal((n_stim, 3)))
    ref = compare(RDMs(model[None]), movie, method="spearman")[0]
    brain = nb.core.evoked(x, stimulus=np.arange(n_stim), times=times)
    out = nb.rsa.time_resolved_rsa(brain, nb.rsa.from_condensed(model), dtype="float64", progress=False)
    np.testing.assert_allclose(out.values, ref, atol=1e-6)


def test_time_resolved_planted_effect_and_crossnobis():
    rng = np.random.default_rng(2)
    n_stim, n_rep, n_ch, n_t = 8, 4, 10, 12
    feats = rng.standard_normal((n_stim, 4))
    mix = rng.standard_normal((4, n_ch))
    x = 0.3 * rng.standard_normal((n_stim * n_rep, n_ch, n_t))
    stim = np.tile(np.arange(n_stim), n_rep)
    x[:, :, 6:] += (feats @ mix)[stim][:, :, None]  # signal only from sample 6 on
    ep = nb.core.eeg_epochs(x, stimulus=stim, sfreq=100.0, trial_coords={"run": np.repeat(np.arange(n_rep), n_stim)})
    model = nb.rsa.rdm(xr.DataArray(feats @ mix, dims=("stimulus", "unit"), coords={"stimulus": np.arange(n_stim)}),
                       metric="euclidean")
    out = nb.rsa.time_resolved_rsa(ep, model, metric="crossnobis", cv_dim="run", dtype="float64", progress=False)
    assert out.dims == ("time",)
    assert out.values[6:].min() > 0.8 and np.abs(out.values[:6]).max() < 0.7
    ref = nb.rsa.compare(nb.rsa.rdm(ep, metric="crossnobis", cv_dim="run", dtype="float64"), model, dtype="float64")
    np.testing.assert_allclose(out.values, ref.values, atol=1e-10)


def test_sphere_neighbourhoods_match_rsatoolbox():
    from rsatoolbox.util.searchlight import _get_searchlight_neighbors

    shape = (6, 5, 4)
    coords, ijk = _grid(shape)
    mask = np.ones(shape, bool)
    ours = nb.rsa.sphere_neighbourhoods(ijk, 1.9)  # rsatoolbox: strict < 2 voxels
    for c in (0, 37, 119):
        ref = np.ravel_multi_index(_get_searchlight_neighbors(mask, ijk[c], 2), shape)
        np.testing.assert_array_equal(ours[c], np.sort(ref))


@pytest.mark.parametrize("metric", ["correlation", "euclidean"])
def test_searchlight_matches_rsatoolbox(metric):
    from rsatoolbox.rdm import RDMs, compare
    from rsatoolbox.util.searchlight import get_searchlight_RDMs, get_volume_searchlight

    rng = np.random.default_rng(3)
    shape = (5, 4, 4)
    coords, ijk = _grid(shape)
    n_stim = 7
    data = rng.standard_normal((n_stim, ijk.shape[0]))
    centers, neighbors = get_volume_searchlight(np.ones(shape), radius=2, threshold=0.0)
    sl = get_searchlight_RDMs(data, centers, neighbors, np.arange(n_stim), method=metric, verbose=False)
    model = pdist(rng.standard_normal((n_stim, 3)))
    ref = compare(RDMs(model[None]), sl, method="spearman")[0]
    betas = nb.core.fmri_responses(data, stimulus=np.arange(n_stim), dim="stimulus", voxel_coords=coords)
    out = nb.rsa.searchlight(betas, nb.rsa.from_condensed(model), radius=1.9, metric=metric, dtype="float64",
                             batch_size=17, progress=False)
    assert out.dims == ("voxel",)
    np.testing.assert_array_equal(out["i"].values, ijk[:, 0])
    np.testing.assert_allclose(out.values[centers], ref, atol=1e-6)
    assert out["n_features"].values.max() == max(len(n) for n in neighbors)


@pytest.mark.parametrize("metric", ["correlation", "euclidean", "cosine"])
@pytest.mark.parametrize("n_models", [1, 7])  # matrix-vector products, or one GEMM for many models
def test_searchlight_pearson_from_full_matrices(metric, n_models):
    """The pearson path never builds condensed RDMs: check it against pdist + pearson per sphere, in float64
    and float32, with an offset in the data (so that centring inside each sphere matters)."""
    rng = np.random.default_rng(5)
    shape = (5, 4, 3)
    coords, ijk = _grid(shape)
    n_stim = 9
    data = rng.standard_normal((n_stim, ijk.shape[0])) + 2.0
    models = np.stack([pdist(rng.standard_normal((n_stim, 3))) for _ in range(n_models)])
    model = nb.rsa.from_condensed(models, stimulus=np.arange(n_stim))
    if n_models == 1:
        model = model.isel({model.dims[0]: 0}) if model.ndim == 3 else model
    betas = nb.core.fmri_responses(data, stimulus=np.arange(n_stim), dim="stimulus", voxel_coords=coords)
    hoods = nb.rsa.sphere_neighbourhoods(ijk, 1.5)
    ref_metric = "sqeuclidean" if metric == "euclidean" else metric  # ours: squared, per feature
    ref = np.array([[stats.pearsonr(pdist(data[:, h], ref_metric), m).statistic
                     for h in hoods] for m in models])
    for dtype, tol in (("float64", 1e-10), ("float32", 2e-5)):
        out = nb.rsa.searchlight(betas, model, radius=1.5, metric=metric, method="pearson", dtype=dtype,
                                 batch_size=11, progress=False)
        np.testing.assert_allclose(out.values.reshape(n_models, -1), ref, atol=tol)


@pytest.mark.parametrize("method", ["spearman", "rho-a"])
@pytest.mark.parametrize("metric", ["correlation", "euclidean", "cosine"])
def test_searchlight_rank_methods_match_pdist_per_sphere(method, metric):
    """The fused rank searchlight against pdist + scipy per sphere, float64 and float32, several models."""
    rng = np.random.default_rng(7)
    ijk = np.stack(np.meshgrid(range(5), range(4), range(3), indexing="ij"), -1).reshape(-1, 3)
    n_stim = 11
    data = rng.standard_normal((n_stim, len(ijk))) + 2.0
    models = np.stack([pdist(rng.standard_normal((n_stim, 3))) for _ in range(3)])
    model = nb.rsa.from_condensed(models, stimulus=np.arange(n_stim))
    betas = nb.core.fmri_responses(data, stimulus=np.arange(n_stim), dim="stimulus",
                                   voxel_coords={"i": ijk[:, 0], "j": ijk[:, 1], "k": ijk[:, 2]})
    hoods = nb.rsa.sphere_neighbourhoods(ijk, 1.5)
    ref_metric = "sqeuclidean" if metric == "euclidean" else metric
    fn = (lambda a, b: stats.spearmanr(a, b).statistic) if method == "spearman" else _rho_a
    ref = np.array([[fn(pdist(data[:, h], ref_metric), m) for h in hoods] for m in models])
    for dtype, tol in (("float64", 1e-10), ("float32", 1e-5)):
        out = nb.rsa.searchlight(betas, model, radius=1.5, metric=metric, method=method, dtype=dtype,
                                 batch_size=7, progress=False)
        np.testing.assert_allclose(out.values.reshape(3, -1), ref, atol=tol)


@pytest.mark.parametrize("method", ["spearman", "pearson"])
@pytest.mark.parametrize("metric", ["correlation", "euclidean"])
def test_searchlight_float32_with_a_large_baseline(method, metric):
    """Raw BOLD-like data (a baseline of ~1000 that varies over voxels) in float32: the offsets the metric
    ignores are removed before the inner products, so P - s s^T / k and ss_i + ss_j - 2 P_ij do not cancel
    catastrophically (without it, the correlation maps were off by ~0.05)."""
    rng = np.random.default_rng(0)
    ijk = np.stack(np.meshgrid(range(6), range(6), range(5), indexing="ij"), -1).reshape(-1, 3)
    n_stim = 30
    data = rng.standard_normal((n_stim, len(ijk))) + 1000 + 50 * rng.standard_normal(len(ijk))
    model_vec = rng.random(n_stim * (n_stim - 1) // 2)
    betas = nb.core.fmri_responses(data.astype(np.float32), stimulus=np.arange(n_stim), dim="stimulus",
                                   voxel_coords={"i": ijk[:, 0], "j": ijk[:, 1], "k": ijk[:, 2]})
    out = nb.rsa.searchlight(betas, nb.rsa.from_condensed(model_vec, stimulus=np.arange(n_stim)), radius=1.5,
                             metric=metric, method=method, dtype="float32", progress=False)
    fn = stats.spearmanr if method == "spearman" else stats.pearsonr
    ref_metric = "sqeuclidean" if metric == "euclidean" else metric
    ref = [fn(pdist(data[:, h], ref_metric), model_vec).statistic for h in nb.rsa.sphere_neighbourhoods(ijk, 1.5)]
    # what float32 can resolve: correlations of ~0.9996 between patterns leave d = 1 - r ~ 4e-4 with ~3 digits
    np.testing.assert_allclose(out.values, ref, atol=1e-2 if metric == "correlation" else 1e-3)


def test_grid_neighbourhoods_equal_kdtree():
    from scipy.spatial import cKDTree

    from neurobridge.rsa._maps import _grid_neighbourhoods

    rng = np.random.default_rng(6)
    _, ijk = _grid((9, 7, 6))
    pos = ijk[rng.random(len(ijk)) < 0.6] - np.array([2, 0, 5])  # a masked grid, negative indices too
    centers = rng.choice(len(pos), 40, replace=False)
    for radius in (0.5, 1.0, 1.9, 2.0, 3.3):
        grid = _grid_neighbourhoods(pos.astype(float), radius, centers)
        assert grid is not None
        hits = cKDTree(pos).query_ball_point(pos[centers], r=radius * (1 + 1e-12))
        listed = nb.rsa.sphere_neighbourhoods(pos, radius, centers)
        for c, h in enumerate(hits):
            np.testing.assert_array_equal(grid[0][c, : grid[1][c]], np.sort(h))
            np.testing.assert_array_equal(listed[c], np.sort(h))
        assert (grid[0][np.arange(grid[0].shape[1])[None] >= grid[1][:, None]] == len(pos)).all()
        loose, sizes = _grid_neighbourhoods(pos.astype(float), radius, centers, sort=False)  # the searchlight's
        np.testing.assert_array_equal(sizes, grid[1])
        np.testing.assert_array_equal(np.sort(loose, axis=1), grid[0])  # same members, padding still last
        assert (loose[np.arange(loose.shape[1])[None] >= sizes[:, None]] == len(pos)).all()
    assert _grid_neighbourhoods(pos * 2.5 + 0.1, 3.0, centers) is None  # mm coordinates: KD-tree path
    off = nb.rsa.sphere_neighbourhoods(pos * 2.5 + 0.1, 3.0, centers)
    np.testing.assert_array_equal(off[0], np.sort(cKDTree(pos * 2.5).query_ball_point(pos[centers[0]] * 2.5, 3.0)))


def test_searchlight_planted_region_and_sensor_neighbourhoods():
    rng = np.random.default_rng(4)
    shape = (8, 8, 3)
    coords, ijk = _grid(shape)
    n_stim = 12
    feats = rng.standard_normal((n_stim, 3))
    data = rng.standard_normal((n_stim, ijk.shape[0]))
    region = (ijk[:, 0] < 3) & (ijk[:, 1] < 3)
    data[:, region] += 3 * feats @ rng.standard_normal((3, int(region.sum())))
    model = nb.rsa.rdm(xr.DataArray(feats, dims=("stimulus", "unit"), coords={"stimulus": np.arange(n_stim)}),
                       metric="euclidean")
    betas = nb.core.fmri_responses(data, stimulus=np.arange(n_stim), dim="stimulus", voxel_coords=coords)
    out = nb.rsa.searchlight(betas, model, radius=1.0, metric="euclidean", progress=False)
    inside = (ijk[:, 0] < 2) & (ijk[:, 1] < 2)
    outside = (ijk[:, 0] > 4) & (ijk[:, 1] > 4)
    assert out.values[inside].mean() > 0.6 and abs(out.values[outside].mean()) < 0.2
    # M/EEG sensors: neighbourhoods from pos_x/pos_y/pos_z, mapped over time
    n_ch = 10
    pos = np.c_[np.linspace(0, 0.09, n_ch), np.zeros(n_ch), np.zeros(n_ch)]
    x = rng.standard_normal((n_stim, n_ch, 4))
    ev = nb.core.evoked(x, stimulus=np.arange(n_stim), sfreq=100.0, ch_pos=pos)
    sl = nb.rsa.searchlight(ev, model, radius=0.025, dtype="float64", progress=False)
    assert sl.dims == ("time", "channel") and sl["n_features"].values.tolist()[:3] == [3, 4, 5]
    hood = [0, 1, 2, 3, 4]  # channel 2 within 0.025 m: channels 0..4 (0.01 m spacing)
    sl_p = nb.rsa.searchlight(ev, model, radius=0.025, method="pearson", dtype="float64", progress=False)
    for t in (0, 3):
        sub = ev.isel(channel=hood, time=t).values
        mvec = squareform(model.values, checks=False)
        ref = stats.spearmanr(pdist(sub, "correlation"), mvec).statistic
        assert float(sl.isel(time=t, channel=2)) == pytest.approx(ref, abs=1e-10)
        ref_p = stats.pearsonr(pdist(sub, "correlation"), mvec).statistic  # full-matrix path, time mapped
        assert float(sl_p.isel(time=t, channel=2)) == pytest.approx(ref_p, abs=1e-10)


def test_searchlight_crossnobis_equals_per_sphere_rdm():
    rng = np.random.default_rng(5)
    shape = (4, 3, 2)
    coords, ijk = _grid(shape)
    n_stim, n_run = 5, 3
    data = rng.standard_normal((n_stim * n_run, ijk.shape[0]))
    stim = np.tile(np.arange(n_stim), n_run)
    run = np.repeat(np.arange(n_run), n_stim)
    betas = nb.core.fmri_responses(data, stimulus=stim, voxel_coords=coords, trial_coords={"run": run})
    model = nb.rsa.from_condensed(pdist(rng.standard_normal((n_stim, 2))), stimulus=np.arange(n_stim))
    out = nb.rsa.searchlight(betas, model, radius=1.0, metric="crossnobis", cv_dim="run", method="pearson",
                             dtype="float64", progress=False)
    hoods = nb.rsa.sphere_neighbourhoods(ijk, 1.0)
    for c in (0, 11, 23):
        r = nb.rsa.rdm(betas.isel(voxel=hoods[c]), metric="crossnobis", cv_dim="run", dtype="float64")
        ref = float(nb.rsa.compare(r, model, method="pearson", dtype="float64"))
        assert float(out[c]) == pytest.approx(ref, abs=1e-10)


def test_map_errors():
    rng = np.random.default_rng(6)
    betas = nb.core.fmri_responses(rng.standard_normal((5, 4)), stimulus=range(5), dim="stimulus")
    model = nb.rsa.from_condensed(pdist(rng.standard_normal((5, 2))), stimulus=np.arange(5))
    with pytest.raises(nb.core.SchemaError, match="no positions"):
        nb.rsa.searchlight(betas, model, radius=1.0)
    other = nb.rsa.from_condensed(pdist(rng.standard_normal((5, 2))), stimulus=np.arange(1, 6))
    with pytest.raises(nb.core.SchemaError, match="shared"):
        nb.rsa.time_resolved_rsa(betas, other)
    with pytest.raises(ValueError, match="radius must be positive"):
        nb.rsa.sphere_neighbourhoods(np.zeros((3, 3)), 0.0)
    with pytest.raises(ValueError, match="unknown comparison"):
        nb.rsa.time_resolved_rsa(betas, model, method="foo")


def test_searchlight_map_round_trips_to_nifti():
    nib = pytest.importorskip("nibabel")
    rng = np.random.default_rng(7)
    shape, n_stim = (5, 4, 3), 6
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    img = nib.Nifti1Image(rng.standard_normal((*shape, n_stim)).astype(np.float32), affine)
    mask = np.zeros(shape, np.uint8)
    mask[1:4, :, :] = 1
    betas = nb.io.from_nifti(img, nib.Nifti1Image(mask, affine), stimulus=np.arange(n_stim), dim="stimulus")
    model = nb.rsa.from_condensed(pdist(rng.standard_normal((n_stim, 2))), stimulus=np.arange(n_stim))
    sl = nb.rsa.searchlight(betas, model, radius=2.5, progress=False)  # x, y, z in mm: 2 mm voxels
    assert sl.dims == ("voxel",) and int(sl["n_features"].max()) == 7
    out = nb.io.to_nifti(sl)
    vol = np.asarray(out.dataobj)
    assert vol.shape == shape
    np.testing.assert_allclose(vol[sl["i"].values, sl["j"].values, sl["k"].values], sl.values, rtol=1e-6)
    assert np.all(vol[mask == 0] == 0)
