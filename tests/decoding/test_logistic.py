"""Batched logistic regression (``estimator="logistic"`` / ``LogisticRegression``): scikit-learn's minimiser for
every fold and time point, and MNE's scores on the same folds."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import xarray as xr
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.class_weight import compute_class_weight
from threadpoolctl import threadpool_limits

import neurobridge as nb
from neurobridge.decoding._linear import fit_logistic

mne_decoding = pytest.importorskip("mne.decoding")

TIGHT = dict(solver="newton-cholesky", tol=1e-10, max_iter=1000)
"""scikit-learn's exact Newton solver run to convergence: the reference minimiser (its L-BFGS needs thousands of
iterations, 0.6 s a fit, to get there on these correlated channels; it is checked once per case below)."""


@pytest.fixture(autouse=True)
def _one_blas_thread():
    """scikit-learn's small L-BFGS fits on two BLAS threads crawl on shared cores (0.5 s a fit measured)."""
    with threadpool_limits(1):
        yield


def _data(n=80, p=6, t=4, n_classes=2, seed=0, effect=0.7, offset=2.0):
    """Correlated channels, class effects growing over time, and an offset (centring must not matter)."""
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) % n_classes)
    X = (rng.normal(size=(n, t, p)) @ rng.normal(size=(p, p))).transpose(0, 2, 1) + offset
    for c in range(n_classes):
        X[y == c] += effect * rng.normal(size=(p, 1)) * np.linspace(0.2, 1.0, t)
    return X, y


def _epochs(X):
    return nb.core.eeg_epochs(X, stimulus=[f"s{i}" for i in range(len(X))], sfreq=100.0)


def _masks(n):
    """Two overlapping training sets and the full set."""
    idx = np.arange(n)
    return [idx >= n // 4, idx < 3 * n // 4, np.ones(n, bool)]


# ------------------------------------------------------------------------------------------ the solver
@pytest.mark.parametrize("n_classes", [2, 4])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("class_weight", [None, "balanced"])
def test_coefficients_match_sklearn_per_time_point(n_classes, dtype, class_weight):
    X, y = _data(n=90, p=7, t=3, n_classes=n_classes, seed=n_classes)
    y = np.where(np.arange(90) < 20, 0, y) if class_weight else y  # unbalanced classes: the weights matter
    Xt = torch.as_tensor(X, dtype=dtype).permute(2, 0, 1).contiguous()
    g = Xt.mean(1)
    Xt = Xt - g[:, None]
    masks = _masks(90)
    weights = torch.zeros(len(masks), 90, dtype=dtype)
    for f, tr in enumerate(masks):
        cw = compute_class_weight(class_weight, classes=np.arange(n_classes), y=y[tr]) if class_weight else None
        weights[f, tr] = 1.0 if cw is None else torch.as_tensor(cw[y[tr]], dtype=dtype)
    tol = 1e-10 if dtype == torch.float64 else 1e-4
    fit = fit_logistic(Xt, torch.as_tensor(y), weights, n_classes=n_classes, C=0.7, tol=tol, max_iter=200)
    assert bool(fit.converged.all())
    assert fit.models.coef.shape == (3, 3, 7, 1 if n_classes == 2 else n_classes)
    rtol = 1e-8 if dtype == torch.float64 else 2e-3
    for f, tr in enumerate(masks):
        for t in range(3):
            sk = LogisticRegression(C=0.7, class_weight=class_weight, **TIGHT).fit(X[tr, :, t], y[tr])
            W = fit.models.coef[f, t].double().numpy().T  # (k, p), as coef_
            b = fit.models.intercept[f, t].double().numpy() - W @ g[t].double().numpy()  # uncentred intercept
            scale = np.abs(sk.coef_).max()
            np.testing.assert_allclose(W, sk.coef_, atol=rtol * scale)
            np.testing.assert_allclose(b, sk.intercept_, atol=rtol * max(1.0, np.abs(sk.intercept_).max()))
            if f == t == 0:  # and the default L-BFGS at a tight tol (it stops at ~1e-6 relative: its ftol)
                lbfgs = LogisticRegression(C=0.7, class_weight=class_weight, tol=1e-8, max_iter=10_000).fit(
                    X[tr, :, t], y[tr])
                np.testing.assert_allclose(W, lbfgs.coef_, atol=max(rtol, 1e-4) * scale)
            if dtype == torch.float64:  # the same decision values, hence predictions
                dec = X[:, :, t] @ W.T + b
                np.testing.assert_array_equal(dec.argmax(1) if n_classes > 2 else (dec[:, 0] > 0),
                                              sk.predict(X[:, :, t]) if n_classes > 2 else sk.predict(X[:, :, t]) == 1)


def test_dual_preconditioner_wide_data_matches_sklearn():
    """More features than samples (fMRI-shaped): the preconditioner goes through the samples' Gram matrix."""
    rng = np.random.default_rng(3)
    n, p = 40, 120
    y = np.repeat([0, 1, 2], [14, 13, 13])
    X = rng.normal(size=(n, p)) + 0.5 * rng.normal(size=(3, p))[y]
    Xt = torch.as_tensor(X)[None]
    g = Xt.mean(1)
    tr = np.arange(n) % 4 != 0
    fit = fit_logistic(Xt - g[:, None], torch.as_tensor(y), torch.as_tensor(tr, dtype=torch.float64)[None],
                       n_classes=3, C=2.0, tol=1e-10)
    sk = LogisticRegression(C=2.0, **TIGHT).fit(X[tr], y[tr])
    np.testing.assert_allclose(fit.models.coef[0, 0].numpy().T, sk.coef_, atol=1e-6 * np.abs(sk.coef_).max())


def test_multinomial_weights_sum_to_zero_over_classes_as_sklearn():
    X, y = _data(n=60, p=5, t=2, n_classes=3, seed=9)
    Xt = torch.as_tensor(X).permute(2, 0, 1).contiguous()
    Xt -= Xt.mean(1, keepdim=True)
    fit = fit_logistic(Xt, torch.as_tensor(y), torch.ones(1, 60, dtype=torch.float64), n_classes=3, tol=1e-10)
    np.testing.assert_allclose(fit.models.coef.sum(-1).numpy(), 0.0, atol=1e-12)
    np.testing.assert_allclose(fit.models.intercept.sum(-1).numpy(), 0.0, atol=1e-12)


def test_fit_logistic_bad_inputs_raise():
    X = torch.randn(2, 20, 3, dtype=torch.float64)
    y = torch.arange(20) % 2
    w = torch.ones(1, 20, dtype=torch.float64)
    cases = [
        (dict(X=X[0]), r"X must be \(T, n, p\)"),
        (dict(weights=torch.ones(1, 19)), r"weights must be \(n_fits, 20\)"),
        (dict(y=y[:10]), r"one class code per sample"),
        (dict(n_classes=1), r"n_classes must be >= 2"),
        (dict(C=0.0), r"C must be a positive finite number.*large C"),
        (dict(C=float("inf")), r"C must be a positive finite number"),
        (dict(tol=0.0), r"tol must be > 0"),
        (dict(max_iter=0), r"max_iter must be >= 1"),
        (dict(weights=torch.zeros(1, 20)), r"weights sum to 0"),
    ]
    for change, match in cases:
        kw = dict(X=X, y=y, weights=w, n_classes=2) | change
        with pytest.raises(ValueError, match=match):
            fit_logistic(kw.pop("X"), kw.pop("y"), kw.pop("weights"), **kw)


# ------------------------------------------------------------------------------- the labelled entry points
@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("scoring", ["accuracy", "balanced_accuracy", "roc_auc"])
def test_sliding_and_generalizing_match_mne(n_classes, scoring):
    X, y = _data(n=60, t=3, n_classes=n_classes, seed=10 + n_classes)
    est = LogisticRegression(C=0.5, **TIGHT)
    sk_scoring = "roc_auc_ovr" if scoring == "roc_auc" and n_classes > 2 else scoring
    cv = StratifiedKFold(5)
    ref = mne_decoding.cross_val_multiscore(mne_decoding.SlidingEstimator(est, scoring=sk_scoring, verbose=False),
                                            X, y, cv=cv, verbose=False)
    ref_gen = mne_decoding.cross_val_multiscore(
        mne_decoding.GeneralizingEstimator(est, scoring=sk_scoring, verbose=False), X, y, cv=cv, verbose=False)
    with nb.config_context(dtype="float64"):
        got = nb.decoding.sliding(_epochs(X), y, estimator=est, scoring=scoring, keep_folds=True)
        gen = nb.decoding.generalizing(_epochs(X), y, estimator=est, scoring=scoring, keep_folds=True)
    assert got.attrs["path"] == gen.attrs["path"] == "batched logistic"
    np.testing.assert_allclose(got.values, ref, atol=1e-9)
    np.testing.assert_allclose(gen.values, ref_gen, atol=1e-9)
    assert gen.dims == ("fold", "time", "time2")


def _evoked_like(n=300, p=16, t=6, n_classes=4, seed=3):
    """M/EEG-like epochs: smooth noise mixed over channels, class topographies under a rising-falling envelope
    (scikit-learn's default L-BFGS converges on these within its 100 iterations)."""
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) % n_classes)
    kernel = np.hanning(7) / np.hanning(7).sum()
    noise = np.apply_along_axis(lambda v: np.convolve(v, kernel, mode="same"), 2, rng.normal(size=(n, p, 4 * t)))
    X = np.einsum("ij,njt->nit", rng.normal(size=(p, p)) / np.sqrt(p), noise)
    X += 0.3 * rng.normal(size=(n_classes, p))[y][:, :, None] * np.hanning(4 * t)[None, None, :]
    return X[:, :, t:3 * t:2], y


def test_default_logistic_same_accuracy_as_mne_default():
    """At scikit-learn's default tol both solvers stop near (not at) the minimiser: the issue asks for the same
    accuracy to 0.01 (here at most one trial of a 60-trial fold differs)."""
    X, y = _evoked_like()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # the reference converged, as ours
        ref = mne_decoding.cross_val_multiscore(mne_decoding.SlidingEstimator(LogisticRegression(), verbose=False),
                                                X, y, cv=StratifiedKFold(5), verbose=False)
        got = nb.decoding.sliding(_epochs(X), y, estimator="logistic", keep_folds=True)
    assert got.attrs["estimator"] == "logistic" and got.attrs["path"] == "batched logistic"
    assert np.abs(got.values.mean(0) - ref.mean(0)).max() <= 0.01
    assert np.abs(got.values - ref).max() <= 1 / 60 + 1e-12
    assert ref.mean() > 0.6  # decodable: agreement at chance level would prove little


@pytest.mark.parametrize("loader", ["breast_cancer", "wine"])
def test_real_datasets_same_cross_validated_accuracy_as_sklearn(loader):
    """Real (scikit-learn's bundled) data, standardised, as (stimulus, unit) activations with dim=None."""
    from sklearn import datasets

    data = getattr(datasets, f"load_{loader}")()
    X = StandardScaler().fit_transform(data.data)
    brain = xr.DataArray(X, dims=("stimulus", "unit"), coords={"stimulus": np.arange(len(X))})
    for C in (0.1, 1.0):
        ref = cross_val_score(LogisticRegression(C=C, **TIGHT), X, data.target, cv=StratifiedKFold(5))
        with nb.config_context(dtype="float64"):
            got = nb.decoding.sliding(brain, data.target, dim=None, estimator=LogisticRegression(C=C, **TIGHT),
                                      keep_folds=True)
        np.testing.assert_allclose(got.values, ref, atol=1e-12)
        ref_default = cross_val_score(LogisticRegression(C=C), X, data.target, cv=StratifiedKFold(5))
        got32 = nb.decoding.sliding(brain, data.target, dim=None, estimator=LogisticRegression(C=C),
                                    keep_folds=True)
        assert np.abs(got32.values - ref_default).max() <= 0.01


@pytest.mark.parametrize("class_weight", ["balanced", {"a": 1.0, "b": 3.0, "c": 0.5}])
def test_class_weight_matches_mne(class_weight):
    X, y = _data(n=75, p=5, t=3, n_classes=3, seed=30)
    labels = np.array(["a", "b", "c"])[np.where(np.arange(75) < 35, 0, y)]  # unbalanced
    est = LogisticRegression(C=0.8, class_weight=class_weight, **TIGHT)
    ref = mne_decoding.cross_val_multiscore(
        mne_decoding.SlidingEstimator(est, scoring="balanced_accuracy", verbose=False), X, labels,
        cv=StratifiedKFold(5), verbose=False)
    with nb.config_context(dtype="float64"):
        got = nb.decoding.sliding(_epochs(X), labels, estimator=est, scoring="balanced_accuracy", keep_folds=True)
    assert got.attrs["path"] == "batched logistic"
    np.testing.assert_allclose(got.values, ref, atol=1e-9)


def test_float32_default_agrees_with_float64():
    X, y = _data(n=120, p=8, t=5, n_classes=4, seed=40)
    got32 = nb.decoding.generalizing(_epochs(X), y, estimator="logistic", scoring="roc_auc")
    with nb.config_context(dtype="float64"):
        got64 = nb.decoding.generalizing(_epochs(X), y, estimator="logistic", scoring="roc_auc")
    np.testing.assert_allclose(got32.values, got64.values, atol=2e-3)


def test_patterns_match_mne_linear_model():
    X, y = _data(n=70, p=5, t=3, n_classes=3, seed=50)
    est = LogisticRegression(C=0.5, **TIGHT)
    sl = mne_decoding.SlidingEstimator(make_pipeline(mne_decoding.LinearModel(est)), verbose=False).fit(X, y)
    ref = mne_decoding.get_coef(sl, "patterns_", inverse_transform=True).transpose(1, 0, 2)  # (k, p, T)
    with nb.config_context(dtype="float64"):
        A = nb.decoding.patterns(_epochs(X), y, estimator=est)
    assert A.dims == ("class", "channel", "time")
    np.testing.assert_allclose(A.values, ref, atol=1e-7 * np.abs(ref).max())


def test_only_the_same_objective_takes_the_batched_path():
    X, y = _data(n=40, p=4, t=2, seed=60)
    generic = [LogisticRegression(solver="liblinear"), LogisticRegression(fit_intercept=False),
               LogisticRegression(C=np.inf), LogisticRegression(l1_ratio=1.0, solver="saga"),
               make_pipeline(StandardScaler(), LogisticRegression())]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn's own warnings about these settings
        for est in generic:
            assert nb.decoding.sliding(_epochs(X), y, estimator=est, progress=False).attrs["path"] == "generic"
    for est in ("logistic", "LOGISTIC", LogisticRegression(solver="newton-cholesky", C=3.0, class_weight="balanced")):
        assert nb.decoding.sliding(_epochs(X), y, estimator=est).attrs["path"] == "batched logistic"


def test_convergence_warning_names_the_fix():
    X, y = _data(n=60, p=6, t=3, n_classes=3, seed=70)
    with pytest.warns(ConvergenceWarning, match=r"did not converge for \d+ of 15 fits.*increase max_iter") as rec:
        nb.decoding.sliding(_epochs(X), y, estimator=LogisticRegression(max_iter=1, tol=1e-8))
    assert rec[0].filename == __file__  # pointing at the user's call
    with pytest.warns(ConvergenceWarning, match=r"did not converge for 3 of 3 fits") as rec:
        nb.decoding.patterns(_epochs(X), y, estimator=LogisticRegression(max_iter=1, tol=1e-8))
    assert rec[0].filename == __file__
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # converged fits warn nothing
        nb.decoding.sliding(_epochs(X), y, estimator="logistic")


def test_bad_inputs_name_the_fix():
    X, y = _data(n=40, p=4, t=2, seed=80)
    with pytest.raises(ValueError, match=r"classifier, but the target is continuous"):
        nb.decoding.sliding(_epochs(X), np.linspace(0, 1, 40), estimator="logistic")
    with pytest.raises(ValueError, match=r"only one class"):
        nb.decoding.sliding(_epochs(X), np.zeros(40, int), estimator="logistic")
    with pytest.raises(ValueError, match=r"missing from the training part of fold 0"):
        nb.decoding.sliding(_epochs(X), np.repeat([0, 1], 20), estimator="logistic",
                            cv=[(np.arange(20), np.arange(20, 40))])
    with pytest.raises(ValueError, match=r"estimator must be 'ridge', 'lda'"):
        nb.decoding.sliding(_epochs(X), y, estimator="logit")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    X, y = _data(n=100, p=8, t=6, n_classes=4, seed=90)
    with nb.config_context(dtype="float64"):
        cpu = nb.decoding.generalizing(_epochs(X), y, estimator="logistic", keep_folds=True)
        gpu = nb.decoding.generalizing(_epochs(X), y, estimator="logistic", keep_folds=True, device="cuda")
    np.testing.assert_allclose(gpu.values, cpu.values, atol=1e-9)
