"""Topological RSA: the geo-topological transform against a float64 numpy closed form and rsatoolbox's
``geotopological_transform``, the descriptor family, adjacency/Jaccard against brute force, and the planted test
of Lin & Kriegeskorte's claim: same topology with a different geometry is found by tRSA and missed by plain RSA."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr
from scipy.spatial.distance import pdist, squareform

import neurobridge as nb
from neurobridge.core import SchemaError
from neurobridge.rsa import geotopological_tensor


def _gt_numpy(v, lo, hi, quantile=True):
    """Closed form in float64: 0 at or below l, 1 at or above u, linear in between (step at l when l == u)."""
    v = np.asarray(v, dtype=np.float64)
    if quantile:
        lo, hi = np.quantile(v, lo), np.quantile(v, hi)
    if hi == lo:
        return (v > lo).astype(float)
    return np.clip((v - lo) / (hi - lo), 0.0, 1.0)


def _rdms(rng, n=12, n_layer=3, p=6):
    x = rng.standard_normal((n_layer, n, p))
    acts = xr.DataArray(x, dims=("layer", "stimulus", "unit"),
                        coords={"layer": [f"l{i}" for i in range(n_layer)], "stimulus": [f"s{i}" for i in range(n)]})
    return nb.rsa.rdm(acts, metric="euclidean", dtype="float64"), x


@pytest.mark.parametrize("lo,hi", [(0.1, 0.5), (0.0, 1.0), (0.25, 0.25), (0.3, 0.9), (0.0, 0.0)])
def test_transform_matches_closed_form_per_rdm(lo, hi):
    r, x = _rdms(np.random.default_rng(0))
    out = nb.rsa.geotopological(r, lo, hi, dtype="float64")
    assert out.dims == r.dims and out.attrs["lower"] == lo and out.attrs["upper"] == hi
    assert out.attrs["metric"] == "geo-topological euclidean"
    for k in range(x.shape[0]):
        v = pdist(x[k], "sqeuclidean") / x.shape[2]  # nb's euclidean RDM (rsatoolbox convention)
        want = squareform(_gt_numpy(v, lo, hi))
        np.testing.assert_allclose(out.values[k], want, atol=1e-12)
        assert float(out["lower_threshold"][k]) == pytest.approx(np.quantile(v, lo), abs=1e-12)
        assert float(out["upper_threshold"][k]) == pytest.approx(np.quantile(v, hi), abs=1e-12)


def test_transform_matches_rsatoolbox():
    rdm_mod = pytest.importorskip("rsatoolbox.rdm")
    rng = np.random.default_rng(1)
    # rsatoolbox (0.3.2) compares the already-rescaled ramp values with the upper threshold again, so it agrees
    # with the published transform only when u >= 1: dissimilarities in [1, 11) keep the test on that ground
    v = 1 + 10 * rng.random(45)
    ref = rdm_mod.geotopological_transform(rdm_mod.RDMs(v[None].copy()), 0.2, 0.7).get_vectors()[0]
    ours = geotopological_tensor(torch.tensor(v), 0.2, 0.7)
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-12)


def test_absolute_thresholds_condensed_and_float32():
    rng = np.random.default_rng(2)
    r, _ = _rdms(rng)
    cond = nb.rsa.to_condensed(r)
    out = nb.rsa.geotopological(cond, 0.5, 1.5, quantile=False)
    assert out.dims == cond.dims and out.dtype == np.float32
    np.testing.assert_allclose(out.values, _gt_numpy(cond.values, 0.5, 1.5, quantile=False), atol=1e-6)
    sq = nb.rsa.geotopological(r, 0.5, 1.5, quantile=False, dtype="float64")
    np.testing.assert_allclose(nb.rsa.to_condensed(sq).values, out.values, atol=1e-6)
    np.testing.assert_array_equal(np.diagonal(sq.values, axis1=1, axis2=2), 0.0)


def test_family_grid_and_compare_pairs_thresholds():
    rng = np.random.default_rng(3)
    r, x = _rdms(rng)
    fam = nb.rsa.geotopological_family(r, lower=[0.0, 0.1, 0.5], upper=[0.2, 0.5, 1.0], dtype="float64")
    pairs = [(a, b) for a in (0.0, 0.1, 0.5) for b in (0.2, 0.5, 1.0) if a <= b]
    assert fam.dims == ("threshold", "layer", "stimulus", "stimulus2") and fam.sizes["threshold"] == len(pairs)
    assert list(zip(fam["lower"].values, fam["upper"].values, strict=True)) == pairs
    for t, (a, b) in enumerate(pairs):
        np.testing.assert_allclose(fam.values[t], nb.rsa.geotopological(r, a, b, dtype="float64").values, atol=1e-12)
    # l=0, u=1 is the min-max scaled RDM: plain RSA with a correlation method
    sim = nb.rsa.compare(fam, fam.isel(layer=0), method="pearson")
    assert sim.dims == ("threshold", "layer")
    geo = nb.rsa.compare(r, r.isel(layer=0), method="pearson")
    t01 = int(np.flatnonzero((fam["lower"].values == 0.0) & (fam["upper"].values == 1.0))[0])
    np.testing.assert_allclose(sim.isel(threshold=t01).values, geo.values, atol=1e-5)


def test_compare_topology_map():
    rng = np.random.default_rng(4)
    r, _ = _rdms(rng)
    m = nb.rsa.compare_topology(r, r.isel(layer=0), lower=[0.0, 0.4], upper=[0.2, 0.6], dtype="float64")
    assert m.dims == ("lower", "upper", "layer")
    assert np.isnan(m.sel(lower=0.4, upper=0.2)).all()  # lower > upper: not part of the family
    np.testing.assert_allclose(m.sel(layer="l0").values[~np.isnan(m.sel(layer="l0").values)], 1.0, atol=1e-6)
    ga = nb.rsa.geotopological(r.isel(layer=1), 0.0, 0.6, dtype="float64")
    gb = nb.rsa.geotopological(r.isel(layer=0), 0.0, 0.6, dtype="float64")
    want = np.corrcoef(nb.rsa.to_condensed(ga).values, nb.rsa.to_condensed(gb).values)[0, 1]
    assert float(m.sel(lower=0.0, upper=0.6, layer="l1")) == pytest.approx(want, abs=1e-6)
    # l = u = 1: every pair is 0, a constant RGTM: undefined (NaN), where compare itself would say 0
    flat = nb.rsa.compare_topology(r, r.isel(layer=0), lower=[1.0], upper=[1.0])
    assert np.isnan(flat).all() and float(nb.rsa.compare(nb.rsa.geotopological(r, 1.0, 1.0),
                                                         nb.rsa.geotopological(r.isel(layer=0), 1.0, 1.0))[0]) == 0


def test_adjacency_and_graph_similarity_brute_force():
    rng = np.random.default_rng(5)
    r, x = _rdms(rng)
    a = nb.rsa.adjacency(r, 0.2, dtype="float64")
    assert a.dtype == bool and a.dims == r.dims
    for k in range(3):
        v = pdist(x[k], "sqeuclidean") / x.shape[2]
        np.testing.assert_array_equal(a.values[k], squareform(v <= np.quantile(v, 0.2)))
    jac = nb.rsa.graph_similarity(r, r.isel(layer=0), 0.2, dtype="float64")
    dice = nb.rsa.graph_similarity(a, a.isel(layer=0), method="dice")
    assert jac.dims == ("layer",)
    e = [squareform(a.values[k]).astype(bool) for k in range(3)]
    for k in range(3):
        assert float(jac[k]) == pytest.approx((e[k] & e[0]).sum() / (e[k] | e[0]).sum())
        assert float(dice[k]) == pytest.approx(2 * (e[k] & e[0]).sum() / (e[k].sum() + e[0].sum()))
    # b's stimuli are put in a's order
    perm = list(np.random.default_rng(0).permutation(r["stimulus"].values))
    shuffled = r.isel(layer=1).sel(stimulus=perm, stimulus2=perm)
    assert float(nb.rsa.graph_similarity(r.isel(layer=1), shuffled, 0.2)) == pytest.approx(1.0)


# ------------------------------------------------------------------------------ planted topology
def _planted(seed, n_clusters=6, per=8, p=40, noise=0.1):
    """A: 6 clusters on a ring. B: the same clusters (same stimuli together: same topology) with a different
    geometry: the clusters reordered on rings of other radii (neighbouring clusters of A are far apart in B),
    anisotropic per-cluster spread, another rotation. C: a different topology with A's geometry nearly kept:
    each cluster is made of the second half of one A cluster and the first half of the next, placed halfway
    between them."""
    rng = np.random.default_rng(seed)
    n = n_clusters * per
    lab = np.repeat(np.arange(n_clusters), per)
    ang = 2 * np.pi * np.arange(n_clusters) / n_clusters

    def embed(x2):
        q = np.linalg.qr(rng.standard_normal((p, p)))[0]
        x = np.c_[x2, np.zeros((n, p - 2))] @ q
        return x + noise * rng.standard_normal(x.shape)

    a = embed(3 * np.c_[np.cos(ang), np.sin(ang)][lab] + 0.4 * rng.standard_normal((n, 2)))
    order = np.array([0, 2, 4, 1, 3, 5])
    radii = 3 + 2 * (np.arange(n_clusters) % 3)
    centres_b = radii[:, None] * np.c_[np.cos(ang[order]), np.sin(ang[order])]
    spread = rng.uniform(0.2, 0.8, size=(n_clusters, 2))
    b = embed(centres_b[lab] + spread[lab] * rng.standard_normal((n, 2)))
    half = (np.arange(n) % per) >= per // 2
    ang_c = ang[lab] + (half - 0.5) * 2 * np.pi / n_clusters
    c = embed(3 * np.c_[np.cos(ang_c), np.sin(ang_c)] + 0.4 * rng.standard_normal((n, 2)))
    acts = xr.DataArray(np.stack([a, b, c]), dims=("system", "stimulus", "unit"),
                        coords={"system": ["A", "B", "C"], "stimulus": np.arange(n)})
    return nb.rsa.rdm(acts, metric="euclidean")


@pytest.mark.parametrize("seed", range(5))
def test_planted_same_topology_found_by_trsa_not_rsa(seed):
    r = _planted(seed)
    ref, cands = r.sel(system="A"), r.sel(system=["B", "C"])
    plain = nb.rsa.compare(ref, cands, method="spearman")
    assert float(plain.sel(system="C")) > float(plain.sel(system="B")) + 0.3  # plain RSA picks the wrong one
    m = nb.rsa.compare_topology(ref, cands, lower=[0.05], upper=[0.2]).sel(lower=0.05, upper=0.2)
    assert float(m.sel(system="B")) > float(m.sel(system="C")) + 0.3  # tRSA picks the same topology
    jac = nb.rsa.graph_similarity(ref, cands, 0.1)
    assert float(jac.sel(system="B")) > float(jac.sel(system="C")) + 0.1


# ------------------------------------------------------------------------------------ bad inputs
def test_bad_inputs():
    r, _ = _rdms(np.random.default_rng(6))
    with pytest.raises(ValueError, match="lower=0.6 is above upper=0.2"):
        nb.rsa.geotopological(r, 0.6, 0.2)
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        nb.rsa.geotopological(r, 0.1, 1.5)
    with pytest.raises(ValueError, match="not finite"):
        nb.rsa.geotopological(r, float("nan"), 0.5)
    with pytest.raises(TypeError, match="must be a number"):
        nb.rsa.geotopological(r, "low", 0.5)
    bad = r.copy()
    bad.values[0, 0, 1] = bad.values[0, 1, 0] = np.nan
    with pytest.raises(SchemaError, match="non-finite"):
        nb.rsa.geotopological(bad)
    with pytest.raises(SchemaError, match="expected an RDM"):
        nb.rsa.geotopological(np.eye(3))
    with pytest.raises(ValueError, match="no pair"):
        nb.rsa.geotopological_family(r, lower=[0.8], upper=[0.2])
    with pytest.raises(ValueError, match="repeated"):
        nb.rsa.geotopological_family(r, lower=[0.1, 0.1])
    with pytest.raises(ValueError, match="unknown graph comparison"):
        nb.rsa.graph_similarity(r, r, method="hamming")
    with pytest.raises(SchemaError, match="different stimuli"):
        nb.rsa.graph_similarity(r, r.isel(stimulus=slice(0, 6), stimulus2=slice(0, 6)))
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        nb.rsa.adjacency(r, 2.0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    r, _ = _rdms(np.random.default_rng(7))
    for fn in (lambda d: nb.rsa.geotopological(r, 0.1, 0.4, dtype="float64", device=d),
               lambda d: nb.rsa.compare_topology(r, r.isel(layer=0), lower=[0.0, 0.2], upper=[0.5], device=d),
               lambda d: nb.rsa.graph_similarity(r, r.isel(layer=1), 0.2, device=d)):
        np.testing.assert_allclose(fn("cuda").values, fn("cpu").values, atol=1e-5)
