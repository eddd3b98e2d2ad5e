"""CKA, Procrustes shape distance and mutual kNN against float64 closed forms, scipy and brute force."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr
from scipy.linalg import orthogonal_procrustes
from scipy.spatial import procrustes as scipy_procrustes

import neurobridge as nb
from neurobridge.rsa import cka_tensor, mutual_knn_tensor, procrustes_distance_tensor


# Kornblith et al. (2019) reference implementation (numpy, float64)
def _gram_linear(x):
    return x @ x.T


def _gram_rbf(x, threshold=1.0):
    dot = x @ x.T
    sq = np.diag(dot)
    d2 = -2 * dot + sq[:, None] + sq[None, :]
    return np.exp(-d2 / (2 * threshold**2 * np.median(d2)))


def _center_gram(gram, unbiased=False):
    gram = gram.copy()
    if unbiased:
        n = gram.shape[0]
        np.fill_diagonal(gram, 0)
        means = np.sum(gram, 0) / (n - 2)
        means -= np.sum(means) / (2 * (n - 1))
        gram -= means[:, None]
        gram -= means[None, :]
        np.fill_diagonal(gram, 0)
    else:
        means = np.mean(gram, 0)
        means -= np.mean(means) / 2
        gram -= means[:, None]
        gram -= means[None, :]
    return gram


def _cka_ref(gx, gy, debiased=False):
    gx, gy = _center_gram(gx, debiased), _center_gram(gy, debiased)
    s = gx.ravel() @ gy.ravel()
    return s / (np.linalg.norm(gx) * np.linalg.norm(gy))


def _hsic_unbiased_song(k, l):
    """Song et al. (2012) unbiased HSIC, written from the paper's formula."""
    n = k.shape[0]
    k, l = k.copy(), l.copy()
    np.fill_diagonal(k, 0)
    np.fill_diagonal(l, 0)
    one = np.ones(n)
    return (np.trace(k @ l) + (one @ k @ one) * (one @ l @ one) / ((n - 1) * (n - 2))
            - 2 / (n - 2) * one @ k @ l @ one) / (n * (n - 3))


@pytest.mark.parametrize("n,p,q", [(30, 5, 7), (12, 40, 25)])
def test_cka_matches_reference(n, p, q):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, p))
    y = x[:, :min(p, q)] @ rng.standard_normal((min(p, q), q)) + rng.standard_normal((n, q))
    tx, ty = torch.as_tensor(x), torch.as_tensor(y)
    assert float(cka_tensor(tx, ty)) == pytest.approx(_cka_ref(_gram_linear(x), _gram_linear(y)), abs=1e-10)
    deb = float(cka_tensor(tx, ty, debiased=True))
    assert deb == pytest.approx(_cka_ref(_gram_linear(x), _gram_linear(y), True), abs=1e-10)
    kx, ky = _gram_linear(x), _gram_linear(y)
    song = _hsic_unbiased_song(kx, ky) / np.sqrt(_hsic_unbiased_song(kx, kx) * _hsic_unbiased_song(ky, ky))
    assert deb == pytest.approx(song, abs=1e-10)
    for sigma in (0.5, 1.0):
        ref = _cka_ref(_gram_rbf(x, sigma), _gram_rbf(y, sigma))
        assert float(cka_tensor(tx, ty, kernel="rbf", sigma=sigma)) == pytest.approx(ref, abs=1e-10)


def test_cka_invariances_and_broadcast():
    rng = np.random.default_rng(1)
    x = torch.as_tensor(rng.standard_normal((25, 6)))
    q, _ = torch.linalg.qr(torch.as_tensor(rng.standard_normal((6, 6))))
    assert float(cka_tensor(x, 2.5 * x @ q + 3)) == pytest.approx(1.0, abs=1e-12)
    xs = torch.as_tensor(rng.standard_normal((3, 1, 25, 6)))
    ys = torch.as_tensor(rng.standard_normal((1, 4, 25, 8)))
    out = cka_tensor(xs, ys)
    assert out.shape == (3, 4)
    assert float(out[2, 1]) == pytest.approx(float(cka_tensor(xs[2, 0], ys[0, 1])), abs=1e-12)


def test_procrustes_matches_scipy():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((20, 4))
    y = rng.standard_normal((20, 4))
    xc = (x - x.mean(0)) / np.linalg.norm(x - x.mean(0))
    yc = (y - y.mean(0)) / np.linalg.norm(y - y.mean(0))
    r, _ = orthogonal_procrustes(yc, xc)
    ang = np.arccos(np.sum((yc @ r) * xc))
    tx, ty = torch.as_tensor(x), torch.as_tensor(y)
    assert float(procrustes_distance_tensor(tx, ty)) == pytest.approx(ang, abs=1e-10)
    eu = np.linalg.norm(xc - yc @ r)
    assert float(procrustes_distance_tensor(tx, ty, kind="euclidean")) == pytest.approx(eu, abs=1e-10)
    # scipy.spatial.procrustes (also fits a scale): disparity = 1 - ||X^T Y||_*^2
    _, _, disparity = scipy_procrustes(x, y)
    assert np.cos(float(procrustes_distance_tensor(tx, ty))) ** 2 == pytest.approx(1 - disparity, abs=1e-10)
    # planted: rotated, scaled, shifted copy -> 0; symmetric
    q, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    assert float(procrustes_distance_tensor(tx, torch.as_tensor(3 * x @ q - 2))) == pytest.approx(0.0, abs=1e-6)
    assert float(procrustes_distance_tensor(ty, tx)) == pytest.approx(ang, abs=1e-10)


def test_mutual_knn_matches_brute_force():
    rng = np.random.default_rng(3)
    n, k = 60, 7
    x = rng.standard_normal((n, 5))
    y = x + 0.7 * rng.standard_normal((n, 5))

    def knn(v, metric):
        if metric == "cosine":
            v = v / np.linalg.norm(v, axis=1, keepdims=True)
            s = v @ v.T
        else:
            s = -((v[:, None] - v[None]) ** 2).sum(-1)
        np.fill_diagonal(s, -np.inf)
        return [set(np.argsort(-row)[:k].tolist()) for row in s]

    for metric in ("cosine", "euclidean"):
        nx, ny = knn(x, metric), knn(y, metric)
        ref = np.mean([len(a & b) / k for a, b in zip(nx, ny, strict=True)])
        ours = float(mutual_knn_tensor(torch.as_tensor(x), torch.as_tensor(y), k=k, metric=metric, chunk=13))
        assert ours == pytest.approx(ref, abs=1e-12)


def test_labelled_indices_broadcast_layers_by_time():
    rng = np.random.default_rng(4)
    stim = [f"s{i}" for i in range(15)]
    brain = xr.DataArray(rng.standard_normal((15, 6, 3)), dims=("stimulus", "channel", "time"),
                         coords={"stimulus": stim, "time": [0.0, 0.1, 0.2]})
    acts = xr.DataArray(rng.standard_normal((2, 15, 9)), dims=("layer", "stimulus", "unit"),
                        coords={"layer": ["l1", "l2"], "stimulus": stim[::-1]})
    out = nb.rsa.cka(brain, acts, dtype="float64")
    assert out.dims == ("layer", "time") and out.name == "cka"
    ref = _cka_ref(_gram_linear(brain.isel(time=2).values), _gram_linear(acts.sel(layer="l2", stimulus=stim).values))
    assert float(out.sel(layer="l2").isel(time=2)) == pytest.approx(ref, abs=1e-10)
    pd_ = nb.rsa.procrustes_distance(brain, acts, dtype="float64")
    assert pd_.dims == ("layer", "time") and bool(((pd_ >= 0) & (pd_ <= np.pi / 2)).all())
    mk = nb.rsa.mutual_knn(brain, acts, k=3)
    assert mk.dims == ("layer", "time")


def test_similarity_errors():
    a = nb.core.activations(np.random.default_rng(5).random((10, 4)), stimulus=range(10))
    b = nb.core.activations(np.random.default_rng(6).random((10, 4)), stimulus=range(1, 11))
    with pytest.raises(nb.core.SchemaError, match="different stimuli"):
        nb.rsa.cka(a, b)
    with pytest.raises(ValueError, match="k must be between"):
        nb.rsa.mutual_knn(a, a, k=10)
    with pytest.raises(ValueError, match="kernel must be"):
        nb.rsa.cka(a, a, kernel="poly")
    with pytest.raises(ValueError, match="at least 4 stimuli"):
        cka_tensor(torch.ones(3, 2), torch.ones(3, 2), debiased=True)
    with pytest.raises(ValueError, match="constant over stimuli"):
        procrustes_distance_tensor(torch.ones(5, 2), torch.randn(5, 2))
