"""The batched decoders give the numbers of scikit-learn and MNE on the same folds (float64)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.linear_model import LogisticRegression, Ridge, RidgeClassifier
from sklearn.model_selection import GroupKFold, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import neurobridge as nb
from neurobridge.decoding._linear import fit_linear

mne_decoding = pytest.importorskip("mne.decoding")


def _data(n=60, p=6, t=5, n_classes=2, seed=0, effect=0.8):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % n_classes
    rng.shuffle(y)
    mix = rng.normal(size=(p, p))
    X = rng.normal(size=(n, p, t)).transpose(0, 2, 1) @ mix  # correlated channels
    X = X.transpose(0, 2, 1) + 3.0  # an offset: centring must not matter
    for c in range(n_classes):
        X[y == c] += effect * rng.normal(size=(p, 1)) * np.linspace(0, 1, t)
    return X, y


def _epochs(X, y):
    return nb.core.eeg_epochs(X, stimulus=[f"s{i}" for i in range(len(X))], sfreq=100.0,
                              trial_coords={"label": np.asarray(y)})


ESTIMATORS = {
    "ridge": (lambda: RidgeClassifier(alpha=1.0), "ridge"),
    "ridge_alpha": (lambda: RidgeClassifier(alpha=7.5), RidgeClassifier(alpha=7.5)),
    "lda": (lambda: LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto"), "lda"),
    "lda_fixed": (lambda: LinearDiscriminantAnalysis(solver="lsqr", shrinkage=0.3),
                  LinearDiscriminantAnalysis(solver="lsqr", shrinkage=0.3)),
}


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("name", list(ESTIMATORS))
@pytest.mark.parametrize("scoring", ["accuracy", "balanced_accuracy", "roc_auc"])
def test_sliding_and_generalizing_match_mne(name, n_classes, scoring):
    X, y = _data(n_classes=n_classes)
    make_sk, ours = ESTIMATORS[name]
    if scoring == "roc_auc" and n_classes > 2 and name.startswith("ridge"):
        pytest.skip("scikit-learn has no multi-class AUC for estimators without predict_proba")
    sk_scoring = "roc_auc_ovr" if scoring == "roc_auc" and n_classes > 2 else scoring
    cv = StratifiedKFold(5)
    ref = mne_decoding.cross_val_multiscore(mne_decoding.SlidingEstimator(make_sk(), scoring=sk_scoring), X, y,
                                            cv=cv)
    ref_gen = mne_decoding.cross_val_multiscore(mne_decoding.GeneralizingEstimator(make_sk(), scoring=sk_scoring),
                                                X, y, cv=cv)
    with nb.config_context(dtype="float64"):
        got = nb.decoding.sliding(_epochs(X, y), "label", estimator=ours, cv=5, scoring=scoring, keep_folds=True)
        gen = nb.decoding.generalizing(_epochs(X, y), "label", estimator=ours, cv=cv, scoring=scoring,
                                       keep_folds=True)
    assert got.attrs["path"].startswith("batched")
    np.testing.assert_allclose(got.values, ref, atol=1e-10)
    np.testing.assert_allclose(gen.values, ref_gen, atol=1e-10)
    assert gen.dims == ("fold", "time", "time2")
    np.testing.assert_array_equal(gen["time2"].values, got["time"].values)


@pytest.mark.parametrize("name", ["ridge", "lda"])
@pytest.mark.parametrize("n_classes", [2, 4])
def test_decision_values_match_sklearn_per_time_point(name, n_classes):
    X, y = _data(n=50, p=7, t=4, n_classes=n_classes, seed=1)
    Xt = torch.as_tensor(X, dtype=torch.float64).permute(2, 0, 1).contiguous()
    g = Xt.mean(1)
    Xt = Xt - g[:, None]
    tr = np.arange(50) >= 10
    masks = torch.as_tensor(np.stack([tr, np.ones(50, bool)]))
    if name == "ridge":
        Y = -torch.ones(50, n_classes, dtype=torch.float64)
        Y[torch.arange(50), torch.as_tensor(y)] = 1
        Y = Y[:, 1:] if n_classes == 2 else Y
        models = fit_linear("ridge", Xt, Y, masks, alpha=2.0)
    else:
        models = fit_linear("lda", Xt, torch.as_tensor(y), masks, n_classes=n_classes)
    for f, rows in enumerate([tr, np.ones(50, bool)]):
        for t in range(4):
            sk = (RidgeClassifier(alpha=2.0) if name == "ridge"
                  else LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto")).fit(X[rows, :, t], y[rows])
            ref = sk.decision_function(X[:, :, t]).reshape(50, -1)
            ours = (Xt[t] @ models.coef[f, t] + models.intercept[f, t]).numpy()
            if name == "lda" and n_classes > 2:
                # LDA's per-class decisions move by a class-independent term when the data are shifted (we fit
                # centred data): predictions and probabilities are the same
                np.testing.assert_allclose(torch.softmax(torch.as_tensor(ours), -1).numpy(),
                                           sk.predict_proba(X[:, :, t]), rtol=1e-6, atol=1e-10)
                ours, ref = ours - ours.mean(1, keepdims=True), ref - ref.mean(1, keepdims=True)
            np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-8)


def test_ridge_regression_matches_sklearn_and_solve_ridge():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(40, 5, 3))
    Y = X[:, :2, 1] @ rng.normal(size=(2, 3)) + 0.5 * rng.normal(size=(40, 3))
    brain = nb.core.eeg_epochs(X, stimulus=[f"s{i}" for i in range(40)], sfreq=10.0)
    from sklearn.metrics import r2_score
    from sklearn.model_selection import KFold

    with nb.config_context(dtype="float64"):
        got1 = nb.decoding.sliding(brain, Y[:, 0], estimator=Ridge(alpha=3.0), keep_folds=True)
        got = nb.decoding.sliding(brain, Y, estimator=Ridge(alpha=3.0), keep_folds=True)
        got_r = nb.decoding.sliding(brain, Y, estimator="ridge", scoring="r", keep_folds=True)
    assert got.attrs["task"] == "regression" and got.attrs["chance"] == 0.0
    ref = mne_decoding.cross_val_multiscore(mne_decoding.SlidingEstimator(Ridge(alpha=3.0), scoring="r2"), X,
                                            Y[:, 0], cv=KFold(5))
    np.testing.assert_allclose(got1.values, ref, atol=1e-10)
    for f, (tr, va) in enumerate(KFold(5).split(X)):
        for t in range(3):
            pred3 = Ridge(alpha=3.0).fit(X[tr, :, t], Y[tr]).predict(X[va, :, t])
            np.testing.assert_allclose(got.values[f, t], r2_score(Y[va], pred3), atol=1e-10)
            pred = Ridge(alpha=1.0).fit(X[tr, :, t], Y[tr]).predict(X[va, :, t])
            r = np.mean([np.corrcoef(pred[:, j], Y[va, j])[0, 1] for j in range(3)])
            np.testing.assert_allclose(got_r.values[f, t], r, atol=1e-10)
            # the batched solve is the minimiser of neurobridge.encoding.solve_ridge
            res = nb.encoding.solve_ridge(torch.as_tensor(X[tr, :, t]), torch.as_tensor(Y[tr]), 1.0)
            np.testing.assert_allclose((torch.as_tensor(X[va, :, t]) @ res.coef + res.intercept).numpy(), pred,
                                       atol=1e-10)


def test_dual_ridge_wide_fmri_matches_sklearn():
    rng = np.random.default_rng(4)
    n, p = 30, 80  # more voxels than training trials: the dual form
    y = np.repeat([0, 1, 2], 10)
    X = rng.normal(size=(n, p)) + 0.4 * rng.normal(size=(3, p))[y]
    brain = nb.core.fmri_responses(X, stimulus=[f"s{i}" for i in range(n)])
    with nb.config_context(dtype="float64"):
        got = nb.decoding.sliding(brain, y, dim=None, estimator=RidgeClassifier(alpha=0.5), keep_folds=True)
    from sklearn.model_selection import cross_val_score

    ref = cross_val_score(RidgeClassifier(alpha=0.5), X, y, cv=StratifiedKFold(5))
    assert got.dims == ("fold",)
    np.testing.assert_allclose(got.values, ref, atol=1e-12)


def test_generic_path_matches_mne_with_groups():
    X, y = _data(n=48, p=5, t=4, seed=5)
    groups = np.repeat(np.arange(6), 8)
    est = make_pipeline(StandardScaler(), LogisticRegression(C=0.5))
    brain = _epochs(X, y).assign_coords(run=("trial", groups))
    got = nb.decoding.sliding(brain, "label", estimator=est, groups="run", cv=GroupKFold(3), keep_folds=True,
                              n_jobs=2, progress=False)
    gen = nb.decoding.generalizing(brain, "label", estimator=est, groups="run", cv=GroupKFold(3), scoring="roc_auc",
                                   keep_folds=True, n_jobs=2, progress=False)
    assert got.attrs["path"] == "generic"
    ref = mne_decoding.cross_val_multiscore(mne_decoding.SlidingEstimator(est), X, y, groups=groups,
                                            cv=GroupKFold(3))
    ref_gen = mne_decoding.cross_val_multiscore(mne_decoding.GeneralizingEstimator(est, scoring="roc_auc"), X, y,
                                                groups=groups, cv=GroupKFold(3))
    np.testing.assert_allclose(got.values, ref, atol=1e-12)
    np.testing.assert_allclose(gen.values, ref_gen, atol=1e-12)


def test_float32_default_agrees_with_float64():
    X, y = _data(n=80, p=8, t=6, n_classes=4, seed=6)
    got32 = nb.decoding.generalizing(_epochs(X, y), y, estimator="lda", scoring="roc_auc")
    with nb.config_context(dtype="float64"):
        got64 = nb.decoding.generalizing(_epochs(X, y), y, estimator="lda", scoring="roc_auc")
    np.testing.assert_allclose(got32.values, got64.values, atol=1e-3)
