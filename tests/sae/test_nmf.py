"""neurobridge.sae semi-NMF and NMF: iterates against a float64 numpy transcription of Ding, Li & Jordan (2010) and
against scikit-learn's multiplicative-update NMF from the same initialisation, reconstruction error against
scikit-learn's default NMF at the same rank, ``encode`` against scipy's non-negative least squares, the SAE
interface (``evaluate``, save / load), and bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from scipy.optimize import nnls

import neurobridge as nb
from neurobridge.core import SchemaError
from neurobridge.sae import (
    NMF,
    NMFConfig,
    SemiNMF,
    SemiNMFConfig,
    TopKConfig,
    evaluate,
    fit_nmf,
    load_sae,
)


def _seminmf_reference(X: np.ndarray, G0: np.ndarray, n_iter: int):
    """Ding, Li & Jordan (2010), section 3, transcribed in their orientation X_p = F G^T (X_p: features x samples),
    float64: F = X_p G (G^T G)^{-1}; G <- G * sqrt(((X_p^T F)^+ + G (F^T F)^-) / ((X_p^T F)^- + G (F^T F)^+)),
    A^+ = (|A| + A) / 2, A^- = (|A| - A) / 2 (a zero denominator replaced by float32 eps, as in the library)."""
    Xp = X.T
    G = G0.astype(np.float64).copy()
    iterates = []
    for _ in range(n_iter):
        F = Xp @ G @ np.linalg.inv(G.T @ G)
        XtF, FtF = Xp.T @ F, F.T @ F
        pos = lambda A: (np.abs(A) + A) / 2  # noqa: E731
        neg = lambda A: (np.abs(A) - A) / 2  # noqa: E731
        den = neg(XtF) + G @ pos(FtF)
        den[den == 0] = np.finfo(np.float32).eps
        G = G * np.sqrt((pos(XtF) + G @ neg(FtF)) / den)
        iterates.append((G.copy(), F.T.copy(), np.linalg.norm(Xp - F @ G.T)))
    return iterates


@pytest.fixture(scope="module")
def signed_data():
    sim = nb.datasets.simulate_sparse_codes(300, 20, 6, k=2, noise=0.05, random_state=0)
    return sim


@pytest.fixture(scope="module")
def nonneg_data():
    """Activation-like non-negative data: a rectified low-dimensional mixture plus noise."""
    rng = np.random.default_rng(0)
    Z, A = rng.normal(size=(400, 10)), rng.normal(size=(10, 40))
    return np.maximum(Z @ A + 0.3 * rng.normal(size=(400, 40)), 0)


# -- 1. semi-NMF against the published update rules --------------------------------------------------------------

def test_seminmf_iterates_equal_the_numpy_float64_transcription(signed_data):
    X = signed_data.data.values
    G0 = np.random.default_rng(1).uniform(size=(300, 6))
    ref = _seminmf_reference(X, G0, 30)
    for t in (1, 5, 30):
        model, G, history = fit_nmf(X, SemiNMFConfig(n_latents=6), init=G0, n_iter=t, tol=0, dtype=torch.float64,
                                    progress=False)
        G_ref, W_ref, _ = ref[t - 1]
        np.testing.assert_allclose(G.numpy(), G_ref, rtol=1e-9, atol=1e-12, err_msg=f"G at iteration {t}")
        np.testing.assert_allclose(model.W_dec.numpy(), W_ref, rtol=1e-9, atol=1e-12, err_msg=f"W at iteration {t}")
        np.testing.assert_allclose(history.error.values, [e for _, _, e in ref[:t]], rtol=1e-10)
        assert history.attrs["n_iter"] == t and history.attrs["converged"] == 0
    errors = np.array([e for _, _, e in ref])
    assert np.all(np.diff(errors) <= 1e-9 * errors[0])  # the paper's monotonicity theorem, as a sanity check
    assert errors[-1] < 0.5 * errors[0]  # and the iterations did work
    # the k-means initialisation is the paper's: cluster indicators + 0.2 (same KMeans, same seed)
    from sklearn.cluster import KMeans

    labels = KMeans(n_clusters=6, n_init=1, random_state=3).fit(X).labels_
    G0_km = np.full((300, 6), 0.2)
    G0_km[np.arange(300), labels] += 1.0
    ref_km = _seminmf_reference(X, G0_km, 10)
    model, G, _ = fit_nmf(X, SemiNMFConfig(n_latents=6), init="kmeans", seed=3, n_iter=10, tol=0,
                          dtype=torch.float64, progress=False)
    np.testing.assert_allclose(G.numpy(), ref_km[-1][0], rtol=1e-9, atol=1e-12)
    # float32 follows the same iterates to float32 precision
    _, G32, _ = fit_nmf(X, SemiNMFConfig(n_latents=6), init=G0, n_iter=5, tol=0, progress=False)
    assert G32.dtype == torch.float32
    np.testing.assert_allclose(G32.numpy(), ref[4][0], rtol=2e-3, atol=2e-4)


def test_seminmf_fits_signed_low_rank_data_and_stops_at_tol(signed_data):
    model, G, history = fit_nmf(signed_data.data, SemiNMFConfig(n_latents=6), n_iter=500, tol=1e-6,
                                dtype=torch.float64, progress=False)
    assert history.attrs["converged"] == 1 and history.attrs["n_iter"] < 500
    assert bool((G >= 0).all()) and float(model.W_dec.min()) < 0  # signed dictionary, non-negative codes
    # the data are rank-6 codes times a signed dictionary plus noise of sd 0.05: the fit reaches the noise floor
    X = signed_data.data.values
    noise_fvu = 0.05**2 * X.size / ((X - X.mean(0)) ** 2).sum()
    assert float(history.fvu[-1]) < 1.5 * noise_fvu
    np.testing.assert_allclose(float(history.fvu[-1]), ((X - G.numpy() @ model.W_dec.numpy()) ** 2).sum()
                               / ((X - X.mean(0)) ** 2).sum(), rtol=1e-10)


# -- 2. NMF against scikit-learn ---------------------------------------------------------------------------------

def test_nmf_iterates_equal_sklearn_multiplicative_updates(nonneg_data):
    from sklearn.decomposition import NMF as SkNMF

    X = nonneg_data
    rng = np.random.default_rng(2)
    G0, W0 = rng.uniform(0.1, 1, size=(400, 5)), rng.uniform(0.1, 1, size=(5, 40))
    for n_iter in (1, 25):
        sk = SkNMF(n_components=5, init="custom", solver="mu", beta_loss="frobenius", max_iter=n_iter, tol=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "maximum number of iterations reached": wanted here
            G_sk = sk.fit_transform(X, W=G0.copy(), H=W0.copy())
        model, G, history = fit_nmf(X, NMFConfig(n_latents=5), init=(G0, W0), n_iter=n_iter, tol=0,
                                    dtype=torch.float64, progress=False)
        np.testing.assert_allclose(G.numpy(), G_sk, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(model.W_dec.numpy(), sk.components_, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(history.error.values[-1], np.linalg.norm(X - G_sk @ sk.components_), rtol=1e-10)


@pytest.mark.parametrize("rank", [4, 8, 12])
def test_nmf_reconstruction_error_comparable_to_sklearn_at_the_same_rank(nonneg_data, rank):
    from sklearn.decomposition import NMF as SkNMF

    X = nonneg_data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sk = SkNMF(n_components=rank, max_iter=1000, tol=1e-6, random_state=0).fit(X)  # cd solver, nndsvda init
    model, G, history = fit_nmf(X, NMFConfig(n_latents=rank), n_iter=1000, tol=1e-6, progress=False)
    ours = float(history.error[-1])
    # measured: within 0.9% at ranks 4-12 on these data (multiplicative updates converge more slowly than
    # scikit-learn's coordinate descent; on nearly exactly low-rank data they can lag by ~10%)
    assert ours <= 1.02 * sk.reconstruction_err_, (ours, sk.reconstruction_err_)
    assert bool((G >= 0).all()) and bool((model.W_dec >= 0).all())
    assert ours == pytest.approx(float(np.linalg.norm(X - G.double().numpy() @ model.W_dec.double().numpy())),
                                 rel=1e-4)


def test_nmf_nndsvda_init_matches_sklearn(nonneg_data, monkeypatch):
    from sklearn.decomposition import _nmf as sk_nmf

    init = getattr(sk_nmf, "_initialize_nmf", None)
    svd_name = next((name for name in ("_randomized_svd", "randomized_svd") if hasattr(sk_nmf, name)), None)
    if init is None or svd_name is None:
        pytest.skip("this scikit-learn has no _initialize_nmf / randomized_svd to compare with")
    from neurobridge.sae._nmf import _nndsvda

    def exact_svd(M, k, **kwargs):  # scikit-learn's NNDSVD code on an exact SVD (ours uses an exact SVD)
        U, S, Vt = np.linalg.svd(M, full_matrices=False)
        return U[:, :k], S[:k], Vt[:k]

    monkeypatch.setattr(sk_nmf, svd_name, exact_svd)
    X = nonneg_data
    G_sk, W_sk = init(X, 6, init="nndsvda", random_state=0)
    G, W = _nndsvda(torch.as_tensor(X), 6)
    np.testing.assert_allclose(G.numpy(), G_sk, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(W.numpy(), W_sk, rtol=1e-9, atol=1e-12)


# -- 3. encode / decode / evaluate -------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["seminmf", "nmf"])
def test_encode_solves_nonnegative_least_squares_like_scipy(signed_data, nonneg_data, kind):
    if kind == "seminmf":
        X, cfg = signed_data.data.values, SemiNMFConfig(n_latents=6, transform_iter=2000)
    else:
        X, cfg = nonneg_data, NMFConfig(n_latents=6, transform_iter=2000)
    model, _, _ = fit_nmf(X[:250], cfg, n_iter=300, dtype=torch.float64, progress=False)
    assert type(model) is (SemiNMF if kind == "seminmf" else NMF)
    new = X[250:290]  # held-out inputs
    G = model.codes(new).numpy()
    W = model.W_dec.numpy()
    for i in range(new.shape[0]):
        g_ref, _ = nnls(W.T, new[i])
        obj, obj_ref = np.sum((new[i] - G[i] @ W) ** 2), np.sum((new[i] - g_ref @ W) ** 2)
        assert obj <= obj_ref * (1 + 1e-3) + 1e-10, (i, obj, obj_ref)  # multiplicative updates: slow but there
    assert (G >= 0).all()
    # encode: codes with the tiny entries zeroed, packed sparse; decode reconstructs from it
    code = model.encode(new)
    dense = code.to_dense(6).numpy()
    expected = np.where(G > cfg.zero_tol * G.max(1, keepdims=True), G, 0)
    np.testing.assert_allclose(dense, expected, rtol=1e-12, atol=0)
    np.testing.assert_allclose(model.decode(code).numpy(), expected @ W, rtol=1e-10, atol=1e-12)
    # evaluate recomputed in float64 numpy
    ev = evaluate(model, new)
    sse = ((new - expected @ W) ** 2).sum()
    np.testing.assert_allclose(ev.mse, sse / new.size, rtol=1e-8)
    np.testing.assert_allclose(ev.fvu, sse / ((new - new.mean(0)) ** 2).sum(), rtol=1e-8)
    np.testing.assert_allclose(ev.l0, (expected > 0).sum(1).mean(), rtol=1e-12)
    np.testing.assert_allclose(ev.density.values, (expected > 0).mean(0), rtol=1e-12)


def test_zero_tol_sets_the_sparsity_of_the_code(signed_data):
    X = signed_data.data.values
    model, _, _ = fit_nmf(X, SemiNMFConfig(n_latents=6), n_iter=100, dtype=torch.float64, progress=False)
    G = model.codes(X)
    l0 = {}
    for tol in (1e-12, 1e-2, 0.3):
        m = SemiNMF(SemiNMFConfig(n_latents=6, d_in=20, zero_tol=tol), dtype=torch.float64)
        m.W_dec.copy_(model.W_dec)
        l0[tol] = evaluate(m, X).l0
        assert l0[tol] == pytest.approx(float((G > tol * G.amax(1, keepdim=True)).sum(1).double().mean()))
    assert l0[1e-12] > l0[1e-2] > l0[0.3] >= 1


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kind", ["seminmf", "nmf"])
def test_save_load_roundtrip(signed_data, nonneg_data, tmp_path, kind, dtype):
    X = signed_data.data.values if kind == "seminmf" else nonneg_data
    cfg = SemiNMFConfig(n_latents=5, zero_tol=1e-3) if kind == "seminmf" else NMFConfig(n_latents=5, zero_tol=1e-3)
    model, _, _ = fit_nmf(X, cfg, n_iter=50, dtype=dtype, progress=False)
    folder = model.save(tmp_path / kind)
    loaded = load_sae(folder)
    assert type(loaded) is type(model) and loaded.config == model.config and loaded.W_dec.dtype == dtype
    assert torch.equal(loaded.W_dec, model.W_dec)
    c1, c2 = model.encode(X[:40]), loaded.encode(X[:40])
    assert torch.equal(c1.values, c2.values) and torch.equal(c1.indices, c2.indices)
    assert load_sae(folder, variant=kind).config == model.config
    with pytest.raises(ValueError, match=rf"is a '{kind}' SAE"):
        load_sae(folder, variant="topk")


# -- 4. bad input ------------------------------------------------------------------------------------------------

def test_bad_inputs_raise_clear_errors(signed_data, nonneg_data):
    X = signed_data.data.values
    with pytest.raises(ValueError, match=r"NMF needs non-negative inputs, found \d+ negative value\(s\).*SemiNMFConfig"):
        fit_nmf(X, NMFConfig(n_latents=3), progress=False)
    model, _, _ = fit_nmf(nonneg_data, NMFConfig(n_latents=3), n_iter=5, progress=False)
    with pytest.raises(ValueError, match=r"NMF input: NMF needs non-negative inputs"):
        model.encode(-nonneg_data[:3] - 1)
    bad = X.copy()
    bad[4, 1] = np.nan
    with pytest.raises(SchemaError, match=r"activations contains 1 non-finite value.*\(4, 1\)"):
        fit_nmf(bad, SemiNMFConfig(n_latents=3), progress=False)
    with pytest.raises(ValueError, match=r"semi-NMF of rank n_latents=8 needs at least as many samples, got n_samples=5"):
        fit_nmf(X[:5], SemiNMFConfig(n_latents=8), progress=False)
    with pytest.raises(ValueError, match=r"init has shape \(10, 2\), expected \(300, 3\)"):
        fit_nmf(X, SemiNMFConfig(n_latents=3), init=np.ones((10, 2)), progress=False)
    with pytest.raises(ValueError, match=r"init must be finite and non-negative"):
        fit_nmf(X, SemiNMFConfig(n_latents=3), init=-np.ones((300, 3)), progress=False)
    with pytest.raises(ValueError, match=r"unknown init 'svd'"):
        fit_nmf(X, SemiNMFConfig(n_latents=3), init="svd", progress=False)
    with pytest.raises(ValueError, match=r"init='kmeans' is the semi-NMF initialisation"):
        fit_nmf(nonneg_data, NMFConfig(n_latents=3), init="kmeans", progress=False)
    with pytest.raises(ValueError, match=r"init='nndsvda' is an NMF initialisation"):
        fit_nmf(X, SemiNMFConfig(n_latents=3), init="nndsvda", progress=False)
    with pytest.raises(ValueError, match=r"an NMF init must be 'nndsvda', 'random' or a pair"):
        fit_nmf(nonneg_data, NMFConfig(n_latents=3), init=np.ones((400, 3)), progress=False)
    with pytest.raises(ValueError, match=r"config.d_in=7 but the activations have 20 units"):
        fit_nmf(X, SemiNMFConfig(n_latents=3, d_in=7), progress=False)
    with pytest.raises(ValueError, match=r"n_iter must be a positive int"):
        fit_nmf(X, SemiNMFConfig(n_latents=3), n_iter=0, progress=False)
    with pytest.raises(TypeError, match=r"config must be a SemiNMFConfig or NMFConfig, got TopKConfig"):
        fit_nmf(X, TopKConfig(n_latents=3, k=1), progress=False)
    with pytest.raises(TypeError, match=r"SemiNMF: config must be a SemiNMFConfig, got NMFConfig"):
        SemiNMF(NMFConfig(n_latents=3, d_in=4))
    with pytest.raises(ValueError, match=r"expected input of shape \(batch, d_in=3\), got \(2, 5\)"):
        SemiNMF(SemiNMFConfig(n_latents=2, d_in=3)).encode(np.ones((2, 5)))
    with pytest.raises(ValueError, match=r"SemiNMFConfig: zero_tol must be a finite number in \[0, 1\)"):
        SemiNMFConfig(n_latents=2, zero_tol=1.0)
    with pytest.raises(ValueError, match=r"NMFConfig: transform_iter must be a positive int"):
        NMFConfig(n_latents=2, transform_iter=0)
