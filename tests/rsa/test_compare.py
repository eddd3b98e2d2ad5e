"""nb.rsa comparisons against rsatoolbox and scipy (float64, 1e-6)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr
from scipy import stats
from scipy.spatial.distance import squareform

import neurobridge as nb
from neurobridge.rsa import compare_vectors, rank

rsatoolbox = pytest.importorskip("rsatoolbox")
from rsatoolbox.rdm import RDMs  # noqa: E402
from rsatoolbox.rdm import compare as rsa_compare  # noqa: E402

RSA_NAMES = {"spearman": "spearman", "pearson": "corr", "kendall": "tau-a", "tau-b": "kendall", "rho-a": "rho-a",
             "cosine": "cosine", "corr_cov": "corr_cov", "cosine_cov": "cosine_cov"}


def _vectors(rng, n_rdm, n_cond, ties=False):
    v = rng.standard_normal((n_rdm, n_cond * (n_cond - 1) // 2))
    if ties:
        v = np.round(v * 2) / 2
    return v + 3.0


@pytest.mark.parametrize("method", sorted(RSA_NAMES))
@pytest.mark.parametrize("ties", [False, True])
def test_compare_vectors_matches_rsatoolbox(method, ties):
    rng = np.random.default_rng(0)
    a, b = _vectors(rng, 3, 12, ties), _vectors(rng, 4, 12, ties)
    ref = rsa_compare(RDMs(a), RDMs(b), method=RSA_NAMES[method])
    ours = compare_vectors(torch.as_tensor(a)[:, None], torch.as_tensor(b)[None], method).numpy()
    assert ours.shape == (3, 4)
    np.testing.assert_allclose(ours, ref, atol=1e-6, rtol=0)


@pytest.mark.parametrize("method", ["corr_cov", "cosine_cov"])
def test_whitened_with_stimulus_covariance(method):
    rng = np.random.default_rng(1)
    n = 9
    a, b = _vectors(rng, 2, n), _vectors(rng, 3, n)
    diag = rng.uniform(0.5, 2.0, n)
    ref = rsa_compare(RDMs(a), RDMs(b), method=RSA_NAMES[method], sigma_k=diag)
    ours = compare_vectors(torch.as_tensor(a)[:, None], torch.as_tensor(b)[None], method, cov=diag).numpy()
    np.testing.assert_allclose(ours, ref, atol=1e-6, rtol=0)
    m = rng.standard_normal((n, n))
    full = m @ m.T / n + np.eye(n)
    ref = rsa_compare(RDMs(a), RDMs(b), method=RSA_NAMES[method], sigma_k=full)  # conjugate gradients, rtol 1e-5
    ours = compare_vectors(torch.as_tensor(a)[:, None], torch.as_tensor(b)[None], method, cov=full).numpy()
    np.testing.assert_allclose(ours, ref, atol=1e-5, rtol=0)
    # exact reference: x^T V^-1 y with rsatoolbox's RDM-entry covariance V
    from rsatoolbox.rdm.compare import _get_v
    v = _get_v(n, full).toarray()
    aa = a - a.mean(1, keepdims=True) if method == "corr_cov" else a
    bb = b - b.mean(1, keepdims=True) if method == "corr_cov" else b
    vi = np.linalg.inv(v)
    exact = (aa @ vi @ bb.T) / np.sqrt(np.einsum("ij,jk,ik->i", aa, vi, aa))[:, None] \
        / np.sqrt(np.einsum("ij,jk,ik->i", bb, vi, bb))[None]
    np.testing.assert_allclose(ours, exact, atol=1e-9, rtol=0)


def test_rank_matches_scipy():
    rng = np.random.default_rng(2)
    for dtype in (torch.float32, torch.float64):
        x = np.round(rng.standard_normal((5, 300)), 1).astype(np.float32 if dtype == torch.float32 else np.float64)
        x[0, :5] = 0.0
        x[0, 5:8] = -0.0
        ours = rank(torch.as_tensor(x)).numpy()
        np.testing.assert_array_equal(ours, stats.rankdata(x, axis=-1))
    x = rng.standard_normal((3, 1000))
    np.testing.assert_array_equal(rank(torch.as_tensor(x)).numpy(), stats.rankdata(x, axis=-1))


def test_rank_blocks_with_ties_match_scipy():
    """Many rows (several 64-row blocks, threaded): float32 RDM-like rows with a few ties each, runs of
    ties at the ends, a constant row and signed zeros."""
    rng = np.random.default_rng(4)
    x = (1 - rng.uniform(-0.2, 0.2, (300, 4000))).astype(np.float32)
    x[:, -3:] = x[:, :1]  # a run of 4 equal values in every row
    x[7] = 1.0
    x[9, :4] = [0.0, -0.0, -1.0, 0.0]
    x[11, ::2] = x[11, 1::2]
    np.testing.assert_array_equal(rank(torch.as_tensor(x)).numpy(), stats.rankdata(x, axis=-1))


def test_rank_statistics_match_scipy():
    rng = np.random.default_rng(3)
    x, y = _vectors(rng, 1, 15, ties=True)[0], _vectors(rng, 1, 15, ties=True)[0]
    tx, ty = torch.as_tensor(x), torch.as_tensor(y)
    assert float(compare_vectors(tx, ty, "spearman")) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
    assert float(compare_vectors(tx, ty, "tau-b")) == pytest.approx(stats.kendalltau(x, y).statistic, abs=1e-12)
    assert float(compare_vectors(tx, ty, "pearson")) == pytest.approx(stats.pearsonr(x, y).statistic, abs=1e-12)
    # tau-a from the definition
    n = len(x)
    i, j = np.triu_indices(n, 1)
    tau_a = np.sum(np.sign(x[i] - x[j]) * np.sign(y[i] - y[j])) / (n * (n - 1) / 2)
    assert float(compare_vectors(tx, ty, "kendall")) == pytest.approx(tau_a, abs=1e-12)


def test_kendall_large_fallback_matches_gemm(monkeypatch):
    from neurobridge.rsa import _compare

    rng = np.random.default_rng(4)
    x, y = torch.as_tensor(_vectors(rng, 2, 20, ties=True)), torch.as_tensor(_vectors(rng, 3, 20, ties=True))
    for variant in ("kendall", "tau-b"):
        gemm = _compare._kendall_gemm(x, y, variant)
        slow = _compare._kendall_scipy(x, y, variant)
        np.testing.assert_allclose(gemm.numpy(), slow.numpy(), atol=1e-12)


def test_broadcasting_elementwise_and_outer():
    rng = np.random.default_rng(5)
    a = torch.as_tensor(_vectors(rng, 6, 8)).reshape(2, 3, -1)
    b = torch.as_tensor(_vectors(rng, 6, 8)).reshape(2, 3, -1)
    paired = compare_vectors(a, b, "pearson")
    assert paired.shape == (2, 3)
    for i in range(2):
        for j in range(3):
            ref = np.corrcoef(a[i, j].numpy(), b[i, j].numpy())[0, 1]
            assert float(paired[i, j]) == pytest.approx(ref, abs=1e-12)
    outer = compare_vectors(a[:, :, None], b.reshape(1, 1, 6, -1), "spearman")
    assert outer.shape == (2, 3, 6)
    ref = stats.spearmanr(a[1, 2].numpy(), b.reshape(6, -1)[4].numpy()).statistic
    assert float(outer[1, 2, 4]) == pytest.approx(ref, abs=1e-12)


def test_compare_errors():
    x = torch.ones(2, 10, dtype=torch.float64)
    with pytest.raises(ValueError, match="unknown comparison method"):
        compare_vectors(x, x, "spearmann")
    with pytest.raises(ValueError, match="differ in length"):
        compare_vectors(x, torch.ones(2, 6, dtype=torch.float64), "pearson")
    bad = x.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        compare_vectors(bad, x, "pearson")
    with pytest.raises(ValueError, match="cov= is only used"):
        compare_vectors(x, x, "pearson", cov=np.ones(5))
    with pytest.raises(ValueError, match="n\\*\\(n-1\\)/2"):
        compare_vectors(torch.ones(7), torch.ones(7), "cosine_cov")


def test_labelled_compare_broadcasts_layer_by_time():
    rng = np.random.default_rng(6)
    stim = [f"s{i}" for i in range(10)]
    brain = xr.DataArray(rng.standard_normal((4, 10, 7)), dims=("time", "stimulus", "channel"),
                         coords={"time": np.arange(4) * 0.1, "stimulus": stim})
    acts = xr.DataArray(rng.standard_normal((3, 10, 5)), dims=("layer", "stimulus", "unit"),
                        coords={"layer": ["a", "b", "c"], "stimulus": stim})
    with nb.config_context(dtype="float64"):
        rb, rm = nb.rsa.rdm(brain), nb.rsa.rdm(acts.isel(stimulus=slice(None, None, -1)))
        sim = nb.rsa.compare(rb, rm, method="spearman")
    assert sim.dims == ("layer", "time")
    assert sim["layer"].values.tolist() == ["a", "b", "c"]
    for li in range(3):
        for ti in range(4):
            va = squareform(rb.isel(time=ti).values, checks=False)
            vb = squareform(rm.isel(layer=li).sel(stimulus=stim, stimulus2=stim).values, checks=False)
            assert float(sim[li, ti]) == pytest.approx(stats.spearmanr(va, vb).statistic, abs=1e-10)
    # accessor forwards
    np.testing.assert_allclose(rb.nb.compare(rm, method="spearman", dtype="float64").values, sim.values)


def test_labelled_compare_errors():
    r1 = nb.core.rdm(squareform(np.arange(1.0, 7.0)), stimulus=list("abcd"))
    r2 = nb.core.rdm(squareform(np.arange(1.0, 7.0)), stimulus=list("abce"))
    with pytest.raises(nb.core.SchemaError, match="different stimuli"):
        nb.rsa.compare(r1, r2)
    with pytest.raises(nb.core.SchemaError, match="RDM xr.DataArray"):
        nb.rsa.compare(r1, np.zeros((4, 4)))


@pytest.fixture(scope="module")
def k92(data_dir):
    return nb.datasets.load("kriegeskorte92", data_dir=data_dir)


def test_real_kriegeskorte_rdms_match_rsatoolbox(k92):
    hit = k92.brain["hit"].stack(rdm=("subject", "session")).transpose("rdm", "stimulus", "stimulus2")
    models = k92.extras["models"]
    bv = np.stack([squareform(x, checks=False) for x in hit.values])
    mv = np.stack([squareform(x, checks=False) for x in models.values])
    for method in sorted(RSA_NAMES):
        b, m = (bv[:2], mv[:3]) if method in ("kendall", "tau-b") else (bv, mv)  # rsatoolbox's loop is slow
        ref = rsa_compare(RDMs(b), RDMs(m), method=RSA_NAMES[method])
        ours = compare_vectors(torch.as_tensor(b)[:, None], torch.as_tensor(m)[None], method).numpy()
        np.testing.assert_allclose(ours, ref, atol=1e-6, rtol=0, err_msg=method)
    # labelled: subject x session brain RDMs against the 8 models in one call
    sim = nb.rsa.compare(k92.brain["hit"], models, method="spearman", dtype="float64")
    assert sim.dims == ("model", "subject", "session")
    ref = rsa_compare(RDMs(bv), RDMs(mv), method="spearman")
    np.testing.assert_allclose(sim.transpose("subject", "session", "model").values.reshape(8, 8), ref, atol=1e-6)
