"""Kernel analysis: the held-out curve against scikit-learn (KernelPCA / PCA + LinearRegression, fold by fold)
and a planted low-dimensional label structure (labels on 2 latent dims: the curve drops at d = 2 and the area
is far below that of random or high-dimensional labels)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr
from sklearn.decomposition import PCA, KernelPCA
from sklearn.linear_model import LinearRegression
from threadpoolctl import threadpool_limits

import neurobridge as nb
from neurobridge.core import SchemaError

N, P = 80, 20


def _data(seed=0, n=N, p=P):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, 2)) * [3.0, 2.0]  # PC 1 ~ z1, PC 2 ~ z2
    q = np.linalg.qr(rng.standard_normal((p, p)))[0]
    x = np.c_[z, 0.3 * rng.standard_normal((n, p - 2))] @ q
    return rng, z, x, q


def _folds(n=N, k=5):
    b = np.linspace(0, n, k + 1).astype(int)
    return [(np.r_[0:b[i], b[i + 1]:n], np.arange(b[i], b[i + 1])) for i in range(k)]


def _sklearn_curve(x, y, folds, d_max, make, classes=None):
    out = np.zeros((len(folds), d_max))
    with threadpool_limits(1):  # tiny LAPACK calls: threads only synchronise
        _fill(out, x, y, folds, d_max, make, classes)
    return out


def _fill(out, x, y, folds, d_max, make, classes):
    for f, (tr, te) in enumerate(folds):
        for d in range(1, d_max + 1):
            t = make(d).fit(x[tr])
            yt = np.eye(len(classes))[np.searchsorted(classes, y)] if classes is not None else y
            pred = LinearRegression().fit(t.transform(x[tr]), yt[tr]).predict(t.transform(x[te]))
            if classes is None:
                out[f, d - 1] = ((y[te] - pred) ** 2).sum() / ((y[te] - y[tr].mean()) ** 2).sum()
            else:
                out[f, d - 1] = np.mean(classes[pred.argmax(1)] != y[te])


def test_rbf_curve_matches_sklearn_regression():
    rng, z, x, _ = _data()
    y = np.sin(z[:, 0] / 3) + 0.2 * z[:, 1] + 0.1 * rng.standard_normal(N)
    folds, sigma = _folds(), 4.0
    ka = nb.rsa.kernel_analysis(nb.core.activations(x, stimulus=range(N)), y, sigma=sigma, n_components=10,
                                cv=folds, dtype="float64")
    ref = _sklearn_curve(x, y, folds, 10,
                         lambda d: KernelPCA(d, kernel="rbf", gamma=1 / (2 * sigma**2), eigen_solver="dense"))
    np.testing.assert_allclose(ka["error_fold"].values, ref, atol=1e-8)
    assert ka.attrs["task"] == "regression" and np.all(ka["sigma"].values == sigma)


def test_classes_and_linear_kernel_match_sklearn():
    rng, z, x, _ = _data(1)
    y = np.array(["cat", "dog", "emu"])[(z[:, 0] > 0).astype(int) + (z[:, 1] > 1).astype(int)]
    folds = _folds()
    acts = nb.core.activations(x, stimulus=range(N))
    ka = nb.rsa.kernel_analysis(acts, y, kernel="linear", n_components=10, cv=folds, dtype="float64")
    ref = _sklearn_curve(x, y, folds, 10, lambda d: PCA(d, svd_solver="full"), classes=np.unique(y))
    np.testing.assert_allclose(ka["error_fold"].values, ref, atol=1e-12)
    sizes = np.array([len(te) for _, te in folds])
    np.testing.assert_allclose(ka["error"].values, (ref * sizes[:, None]).sum(0) / N, atol=1e-12)
    assert ka.attrs["metric"] == "error_rate" and np.isnan(ka["sigma"].values).all()


def test_planted_two_latent_dims():
    rng, z, x, q = _data(2, n=100)
    y = z[:, 0] / 3 + z[:, 1] / 2 + 0.1 * rng.standard_normal(100)  # needs both latent dims
    acts = nb.core.activations(x, stimulus=range(100))
    ka = nb.rsa.kernel_analysis(acts, y, n_components=30)
    e = ka["error"].values
    assert e[0] > 0.25 and e[1] < 0.05 and e[1] - e.min() < 0.02  # the drop is at d = 2
    random = nb.rsa.kernel_analysis(acts, rng.permutation(y), n_components=30)
    # labels on 12 low-variance noise dims: high-dimensional, reached only late in the spectrum
    noise_dirs = (x @ q.T)[:, 2:14]
    high = nb.rsa.kernel_analysis(acts, noise_dirs.sum(1), n_components=30)
    assert float(ka["auc"]) < 0.15
    assert float(random["auc"]) > 0.8 and float(high["auc"]) > float(ka["auc"]) + 0.4
    assert 0 <= float(ka["auc"]) <= 1 and ka["error"].dims == ("component",)


def test_lead_dims_coordinate_labels_and_dataarray_labels():
    rng, z, x, _ = _data(3, n=40)
    acts = xr.DataArray(np.stack([x, rng.standard_normal(x.shape)]), dims=("layer", "stimulus", "unit"),
                        coords={"layer": ["good", "noise"], "stimulus": np.arange(40),
                                "cls": ("stimulus", np.where(z[:, 0] > 0, "a", "b"))})
    ka = nb.rsa.kernel_analysis(acts, "cls", n_components=8, cv=4)
    assert ka["auc"].dims == ("layer",) and ka["error_fold"].dims == ("layer", "fold", "component")
    assert float(ka["auc"].sel(layer="good")) < float(ka["auc"].sel(layer="noise"))
    lab = xr.DataArray(acts["cls"].values[::-1], dims="stimulus", coords={"stimulus": np.arange(40)[::-1]})
    ka2 = nb.rsa.kernel_analysis(acts, lab, n_components=8, cv=4)
    np.testing.assert_allclose(ka2["error"].values, ka["error"].values)


def test_bad_inputs():
    rng, z, x, _ = _data(4, n=30)
    acts = nb.core.activations(x, stimulus=range(30))
    y = z[:, 0]
    with pytest.raises(SchemaError, match="one label per stimulus"):
        nb.rsa.kernel_analysis(acts, y[:10])
    with pytest.raises(SchemaError, match="not a coordinate"):
        nb.rsa.kernel_analysis(acts, "category")
    with pytest.raises(ValueError, match="unknown kernel"):
        nb.rsa.kernel_analysis(acts, y, kernel="poly")
    with pytest.raises(ValueError, match="n_components"):
        nb.rsa.kernel_analysis(acts, y, n_components=50)
    with pytest.raises(ValueError, match="sigma must be a positive"):
        nb.rsa.kernel_analysis(acts, y, sigma=-1.0)
    with pytest.raises(ValueError, match="one class"):
        nb.rsa.kernel_analysis(acts, np.array(["a"] * 30))
    with pytest.raises(ValueError, match="rarest class"):
        nb.rsa.kernel_analysis(acts, np.array(["a"] * 28 + ["b"] * 2))
    with pytest.raises(ValueError, match="needs classes"):
        nb.rsa.kernel_analysis(acts, y, metric="error_rate")
    bad = y.copy()
    bad[3] = np.nan
    with pytest.raises(SchemaError, match="non-finite"):
        nb.rsa.kernel_analysis(acts, bad)
    xa = acts.copy()
    xa.values[0, 0] = np.inf
    with pytest.raises(SchemaError, match="non-finite"):
        nb.rsa.kernel_analysis(xa, y)
    with pytest.raises(SchemaError, match="must be an xr.DataArray"):
        nb.rsa.kernel_analysis(x, y)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    rng, z, x, _ = _data(5, n=60)
    acts = nb.core.activations(x, stimulus=range(60))
    y = z[:, 0] + 0.1 * rng.standard_normal(60)
    cpu = nb.rsa.kernel_analysis(acts, y, n_components=10, dtype="float64")
    gpu = nb.rsa.kernel_analysis(acts, y, n_components=10, dtype="float64", device="cuda")
    np.testing.assert_allclose(gpu["error_fold"].values, cpu["error_fold"].values, atol=1e-8)
