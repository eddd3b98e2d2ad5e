"""neurobridge.sae.SparseDictionary: scikit-learn's estimator checks, a Pipeline before nb.encoding.RidgeCV equal to
the two steps run by hand, transform / inverse_transform against the model's encode / decode, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import Pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

import neurobridge as nb
from neurobridge.sae import (
    JumpReLUConfig,
    NMFConfig,
    ReLUConfig,
    SemiNMFConfig,
    SparseDictionary,
    TopKConfig,
    train_sae,
)

CHECKED = [
    SparseDictionary(TopKConfig(n_latents=12, k=2), epochs=2, batch_size=16),
    SparseDictionary(ReLUConfig(n_latents=12), epochs=2, batch_size=16),
    SparseDictionary(SemiNMFConfig(n_latents=2, transform_iter=20), n_iter=20),
]


@parametrize_with_checks(CHECKED)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def planted():
    sim = nb.datasets.simulate_sparse_codes(1200, 16, 24, k=2, random_state=0)
    rng = np.random.default_rng(0)
    # "brain" targets driven by a few planted latents (a sparse, non-linear function of the inputs), plus noise
    Y = sim.codes.values[:, :6] @ rng.normal(size=(6, 5)) + 0.05 * rng.normal(size=(1200, 5))
    return sim.data.values, Y, sim


def test_pipeline_before_ridgecv_equals_the_steps_by_hand(planted):
    X, Y, _ = planted
    train, test = slice(0, 900), slice(900, None)
    sd = SparseDictionary(TopKConfig(n_latents=96, k=2), epochs=20, batch_size=128, lr=1e-2, seed=0)
    pipe = Pipeline([("sae", sd), ("ridge", nb.encoding.RidgeCV(alphas=np.logspace(-3, 3, 7)))])
    pipe.fit(X[train], Y[train])
    assert pipe.named_steps["sae"] is sd and sd.model_.config.d_in == 16
    # the two steps by hand, with the same settings
    model, _ = train_sae(X[train], TopKConfig(n_latents=96, k=2), epochs=20, batch_size=128, lr=1e-2, seed=0,
                         progress=False)
    with torch.no_grad():
        Z = model.encode(X[train]).to_dense(96).double().numpy()
        Z_test = model.encode(X[test]).to_dense(96).double().numpy()
    np.testing.assert_array_equal(sd.transform(X[train]), Z)
    ridge = nb.encoding.RidgeCV(alphas=np.logspace(-3, 3, 7)).fit(Z, Y[train])
    np.testing.assert_allclose(pipe.predict(X[test]), ridge.predict(Z_test), rtol=1e-6, atol=1e-8)
    # the latents carry the planted code: held-out prediction is good, and beats ridge on the raw inputs
    r2 = pipe.score(X[test], Y[test])
    raw = nb.encoding.RidgeCV(alphas=np.logspace(-3, 3, 7)).fit(X[train], Y[train]).score(X[test], Y[test])
    assert r2 > 0.8 and r2 > raw + 0.05, (r2, raw)  # measured: 0.843 vs 0.748


def test_transform_inverse_transform_and_attributes(planted):
    X, _, _ = planted
    sd = SparseDictionary(ReLUConfig(n_latents=32, l1_coef=1.0), epochs=3, batch_size=100, seed=1).fit(X)
    model = sd.model_
    Z = sd.transform(X)
    assert Z.shape == (1200, 32) and Z.dtype == np.float64 and (Z >= 0).all()
    with torch.no_grad():
        code = model.encode(X)
        np.testing.assert_allclose(Z, code.to_dense(32).numpy(), rtol=1e-6)
        np.testing.assert_allclose(sd.inverse_transform(Z), model.decode(code).numpy(), rtol=1e-5, atol=1e-6)
    # inverse_transform of the dense code is the dense float64 reconstruction (code @ W_dec + b_dec) / scale
    W = model.W_dec.detach().double().numpy()
    b = model.b_dec.detach().double().numpy()
    s = float(model.input_scale)
    np.testing.assert_allclose(sd.inverse_transform(Z), (Z @ W + b) / s, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(sd.components_, W / s, rtol=1e-6)
    assert sd.transform(X.astype(np.float32)).dtype == np.float32
    assert list(sd.get_feature_names_out()[:2]) == ["sparsedictionary0", "sparsedictionary1"]
    assert sd.history_.sizes["step"] == 36 and sd.n_features_in_ == 16
    # params round-trip through clone; a clone is unfitted and refits to the same model
    params = sd.get_params()
    assert params["config"] == ReLUConfig(n_latents=32, l1_coef=1.0) and params["seed"] == 1
    again = clone(sd).fit(X)
    np.testing.assert_array_equal(again.transform(X[:50]), Z[:50])


@pytest.mark.parametrize("config", [SemiNMFConfig(n_latents=6), NMFConfig(n_latents=6),
                                    JumpReLUConfig(n_latents=32, threshold_init=0.1, bandwidth=0.2)])
def test_other_configs_fit_through_the_transformer(planted, config):
    X, _, _ = planted
    if isinstance(config, NMFConfig):
        X = np.abs(X)
    sd = SparseDictionary(config, n_iter=50, epochs=2, batch_size=200).fit(X)
    Z = sd.transform(X[:100])
    assert Z.shape == (100, config.n_latents) and (Z >= 0).all()
    ev = nb.sae.evaluate(sd.model_, X[:100])
    x_hat = sd.inverse_transform(Z)
    mse = ((X[:100] - x_hat) ** 2).mean()
    assert mse == pytest.approx(ev.mse, rel=1e-4)


def test_default_config_and_bad_input(planted):
    X, _, _ = planted
    sd = SparseDictionary(epochs=1, batch_size=400).fit(X)
    assert sd.model_.config == TopKConfig(n_latents=64, k=4, d_in=16)
    with pytest.raises(NotFittedError):
        SparseDictionary().transform(X)
    with pytest.raises(ValueError, match=r"X has 8 features, but SparseDictionary is expecting 16 features"):
        sd.transform(X[:, :8])
    with pytest.raises(ValueError, match=r"expected codes of shape \(n_samples, 64\), got \(3, 5\)"):
        sd.inverse_transform(np.ones((3, 5)))
    with pytest.raises(TypeError, match=r"config must be an SAE or NMF config.*got str"):
        SparseDictionary("topk").fit(X)
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"Input X contains NaN"):
        SparseDictionary(epochs=1).fit(bad)
