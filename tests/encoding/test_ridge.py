"""Ridge solvers and estimators against scikit-learn, himalaya and float64 closed forms."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import Ridge as SkRidge
from sklearn.linear_model import RidgeCV as SkRidgeCV
from sklearn.model_selection import GroupKFold, KFold

import neurobridge as nb
from neurobridge.encoding import (
    BandedRidgeCV,
    KernelRidgeCV,
    Ridge,
    RidgeCV,
    dirichlet_candidates,
    make_folds,
    solve_banded_ridge_cv,
    solve_kernel_ridge_cv,
    solve_ridge_cv,
    solve_ridge_loo,
)

ALPHAS = np.logspace(-2, 4, 13)


def _data(n=120, p=30, t=25, seed=0, noise=3.0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    W = rng.standard_normal((p, t)) * rng.uniform(0, 1, t)  # targets with different SNR -> different alphas
    Y = X @ W + noise * rng.standard_normal((n, t)) + 5.0
    return X, Y


def _rel(a, b):
    return np.abs(np.asarray(a) - np.asarray(b)).max() / np.abs(np.asarray(b)).max()


@pytest.mark.parametrize("shape", [(120, 30), (40, 90)], ids=["primal", "dual"])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_ridge_matches_sklearn(shape, fit_intercept):
    X, Y = _data(*shape)
    alpha = np.linspace(0.5, 50, Y.shape[1])
    with nb.config_context(dtype="float64"):
        ours = Ridge(alpha=alpha, fit_intercept=fit_intercept).fit(X, Y)
    ref = SkRidge(alpha=alpha, fit_intercept=fit_intercept).fit(X, Y)
    assert _rel(ours.coef_, ref.coef_) < 1e-8
    Xt = np.random.default_rng(1).standard_normal((10, shape[1]))
    assert _rel(ours.predict(Xt), ref.predict(Xt)) < 1e-8


@pytest.mark.parametrize("shape", [(120, 30), (40, 90)], ids=["primal", "dual"])
def test_ridgecv_loo_matches_sklearn(shape):
    X, Y = _data(*shape)
    with nb.config_context(dtype="float64"):
        ours = RidgeCV(alphas=ALPHAS, cv="loo").fit(X, Y)
    ref = SkRidgeCV(alphas=ALPHAS, alpha_per_target=True).fit(X, Y)
    assert len(np.unique(ref.alpha_)) > 2  # the test exercises per-target selection
    np.testing.assert_array_equal(ours.alpha_, ref.alpha_)
    Xt = np.random.default_rng(1).standard_normal((10, shape[1]))
    assert _rel(ours.predict(Xt), ref.predict(Xt)) < 1e-4
    # scikit-learn's best_score_ is minus the mean squared LOO error, per target
    np.testing.assert_allclose(ours.best_score_, ref.best_score_, rtol=1e-6)


def test_ridgecv_loo_float32_agrees():
    X, Y = _data(200, 20, 40)
    ours = RidgeCV(alphas=ALPHAS, cv="loo").fit(X, Y)  # float32 default
    ref = SkRidgeCV(alphas=ALPHAS, alpha_per_target=True).fit(X, Y)
    assert ours.coef_.dtype == np.float32
    assert np.isclose(ours.alpha_, ref.alpha_, rtol=1e-6).mean() >= 0.95
    assert _rel(ours.predict(X), ref.predict(X)) < 1e-2


def test_gcv_matches_explicit_hat_matrix():
    X, Y = _data(60, 10, 8)
    res = solve_ridge_loo(torch.tensor(X), torch.tensor(Y), ALPHAS, mode="gcv", progress=False)
    n = len(X)
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    for ia, a in enumerate(ALPHAS):
        H = Xc @ np.linalg.solve(Xc.T @ Xc + a * np.eye(X.shape[1]), Xc.T) + 1.0 / n
        E = Yc - (H - 1.0 / n) @ Yc
        gcv = (E**2).mean(0) / (1 - np.trace(H) / n) ** 2
        np.testing.assert_allclose(-res.cv_scores[ia].numpy(), gcv, rtol=1e-8)


def _brute_force_kfold(X, Y, alphas, folds, fit_intercept=True):
    """Reference: refit scikit-learn Ridge for every fold and alpha, R^2 on the validation part."""
    scores = np.zeros((len(alphas), Y.shape[1]))
    for tr, va in folds:
        for ia, a in enumerate(alphas):
            pred = SkRidge(alpha=a, fit_intercept=fit_intercept).fit(X[tr], Y[tr]).predict(X[va])
            yv = Y[va]
            ss = ((yv - yv.mean(0)) ** 2).sum(0)
            scores[ia] += 1 - ((yv - pred) ** 2).sum(0) / ss
    return scores / len(folds)


def _fold_kinds(n):
    """Contiguous K-fold (views), shuffled groups (reordered once), leave-one-group-out, and folds that do
    not partition the samples (overlapping validation sets: per-fold gathers)."""
    from sklearn.model_selection import LeaveOneGroupOut, ShuffleSplit

    rng = np.random.default_rng(3)
    groups = rng.permutation(np.repeat(np.arange(n // 2), 2))  # pairs of repetitions, scattered
    runs = np.repeat(np.arange(4), -(-n // 4))[:n]
    return {
        "kfold": list(KFold(5).split(np.zeros(n))),
        "groups": make_folds(n, 5, groups),
        "logo": list(LeaveOneGroupOut().split(np.zeros(n), groups=runs)),
        "shuffle": list(ShuffleSplit(4, test_size=0.25, random_state=0).split(np.zeros(n))),
    }


@pytest.mark.parametrize("kind", ["kfold", "groups", "logo", "shuffle"])
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("shape", [(100, 15), (50, 80)], ids=["primal", "dual"])
def test_kfold_scores_match_refitting(shape, fit_intercept, kind):
    X, Y = _data(*shape)
    X += 3.0  # an offset, so that centring with the training means matters
    folds = _fold_kinds(len(X))[kind]
    res = solve_ridge_cv(torch.tensor(X), torch.tensor(Y), ALPHAS, folds, fit_intercept=fit_intercept,
                         progress=False)
    ref = _brute_force_kfold(X, Y, ALPHAS, folds, fit_intercept)
    np.testing.assert_allclose(res.cv_scores.numpy(), ref, atol=1e-9)
    np.testing.assert_array_equal(res.alpha.numpy(), ALPHAS[ref.argmax(0)])
    sk = SkRidge(alpha=res.alpha.numpy(), fit_intercept=fit_intercept).fit(X, Y)
    assert _rel(res.coef.numpy().T, sk.coef_) < 1e-6
    np.testing.assert_allclose(res.intercept.numpy(), sk.intercept_ if fit_intercept else 0.0, atol=1e-6)


@pytest.mark.parametrize("solver", ["kfold", "loo", "gcv"])
def test_scores_without_weights(solver):
    from neurobridge.encoding import RIDGE_SOLVERS

    X, Y = _data(80, 12, 6)
    fn = RIDGE_SOLVERS[solver]
    full = fn(torch.tensor(X), torch.tensor(Y), ALPHAS, 5, progress=False)
    bare = fn(torch.tensor(X), torch.tensor(Y), ALPHAS, 5, return_weights=False, progress=False)
    assert bare.coef is None and bare.intercept is None and full.coef is not None
    np.testing.assert_array_equal(bare.alpha.numpy(), full.alpha.numpy())
    np.testing.assert_allclose(bare.cv_scores.numpy(), full.cv_scores.numpy(), rtol=1e-12, atol=1e-14)


def test_kfold_matches_himalaya():
    himalaya = pytest.importorskip("himalaya")
    from himalaya.backend import set_backend
    from himalaya.ridge import RidgeCV as HRidgeCV
    from himalaya.scoring import r2_score

    set_backend("numpy", on_error="raise")
    X, Y = _data(150, 20, 30)
    cv = KFold(5)
    ref = HRidgeCV(alphas=ALPHAS, cv=cv, fit_intercept=True, solver_params=dict(score_func=r2_score)).fit(X, Y)
    with nb.config_context(dtype="float64"):
        ours = RidgeCV(alphas=ALPHAS, cv=cv).fit(X, Y)
    assert himalaya.__version__
    np.testing.assert_allclose(ours.best_score_, ref.cv_scores_, atol=1e-3)
    np.testing.assert_allclose(ours.alpha_, ref.best_alphas_, rtol=1e-6)
    Xt = np.random.default_rng(3).standard_normal((20, 20))
    assert _rel(ours.predict(Xt), ref.predict(Xt)) < 1e-4
    # float32 (the default) agrees on scores too
    ours32 = RidgeCV(alphas=ALPHAS, cv=cv).fit(X, Y)
    np.testing.assert_allclose(ours32.best_score_, ref.cv_scores_, atol=1e-3)


def test_kernel_ridge_matches_himalaya():
    pytest.importorskip("himalaya")
    from himalaya.backend import set_backend
    from himalaya.kernel_ridge import KernelRidgeCV as HKernelRidgeCV
    from himalaya.scoring import r2_score

    set_backend("numpy", on_error="raise")
    X, Y = _data(60, 200, 12)
    cv = KFold(5)
    ref = HKernelRidgeCV(alphas=ALPHAS, kernel="linear", cv=cv, fit_intercept=True,
                         solver_params=dict(score_func=r2_score)).fit(X, Y)
    with nb.config_context(dtype="float64"):
        ours = KernelRidgeCV(alphas=ALPHAS, cv=cv).fit(X, Y)
    np.testing.assert_allclose(ours.best_score_, ref.cv_scores_, atol=1e-3)
    np.testing.assert_allclose(ours.alpha_, ref.best_alphas_, rtol=1e-6)
    Xt = np.random.default_rng(3).standard_normal((7, 200))
    assert _rel(ours.predict(Xt), ref.predict(Xt)) < 1e-4
    # linear kernel ridge == primal ridge with the same alphas
    lin = Ridge(alpha=ours.alpha_).fit(X, Y)
    assert _rel(ours.predict(Xt), lin.predict(Xt)) < 1e-3


def test_kernel_ridge_rbf_matches_sklearn():
    from sklearn.kernel_ridge import KernelRidge

    X, Y = _data(50, 5, 3)
    res = solve_kernel_ridge_cv(torch.tensor(X @ X.T), torch.tensor(Y), [2.0], progress=False, fit_intercept=False)
    ref = KernelRidge(alpha=2.0, kernel="linear").fit(X, Y)
    np.testing.assert_allclose(res.dual_coef.numpy(), ref.dual_coef_, rtol=1e-6)


def test_banded_matches_himalaya():
    pytest.importorskip("himalaya")
    from himalaya.backend import set_backend
    from himalaya.ridge import BandedRidgeCV as HBandedRidgeCV
    from himalaya.scoring import r2_score

    set_backend("numpy", on_error="raise")
    rng = np.random.default_rng(0)
    X, Y = _data(150, 20, 30)
    X2 = rng.standard_normal((150, 15))
    Y = Y + X2 @ rng.standard_normal((15, 30))
    Xa = np.hstack([X, X2])
    gammas = dirichlet_candidates(10, 2, random_state=0)[3:]  # himalaya cannot take exact zeros
    gammas = np.clip(gammas, 1e-3, None)
    gammas /= gammas.sum(1, keepdims=True)
    cv = KFold(5)
    ref = HBandedRidgeCV(groups=[0] * 20 + [1] * 15, cv=cv, fit_intercept=True,
                         solver_params=dict(n_iter=gammas, alphas=ALPHAS, score_func=r2_score,
                                            progress_bar=False)).fit(Xa, Y)
    with nb.config_context(dtype="float64"):
        ours = BandedRidgeCV(alphas=ALPHAS, feature_spaces=[20, 15], gammas=gammas, cv=cv).fit(Xa, Y)
    np.testing.assert_allclose(ours.cv_scores_, ref.cv_scores_, atol=1e-3)
    np.testing.assert_allclose(ours.gamma_ / ours.alpha_, np.exp(ref.deltas_), rtol=1e-6)
    Xt = rng.standard_normal((10, 35))
    assert _rel(ours.predict(Xt), ref.predict(Xt)) < 1e-4


def test_banded_assigns_the_right_feature_space():
    rng = np.random.default_rng(0)
    n, t = 300, 20
    XA, XB = rng.standard_normal((n, 20)), rng.standard_normal((n, 20))
    Y = np.empty((n, t))
    Y[:, :10] = XA @ rng.standard_normal((20, 10))  # driven by A only
    Y[:, 10:] = XB @ rng.standard_normal((20, 10))  # driven by B only
    Y += 2.0 * rng.standard_normal((n, t))
    m = BandedRidgeCV(alphas=np.logspace(-1, 4, 11), feature_spaces=[20, 20], n_iter=15, random_state=0).fit(
        np.hstack([XA, XB]), Y)
    assert (m.gamma_[0, :10] > 0.9).all() and (m.gamma_[1, 10:] > 0.9).all()
    # and beats plain ridge on the same folds
    plain = RidgeCV(alphas=np.logspace(-1, 4, 11)).fit(np.hstack([XA, XB]), Y)
    assert (m.best_score_ >= plain.best_score_ - 1e-6).all()


def test_float64_on_request_and_torch_in_torch_out():
    X, Y = _data(50, 5, 3)
    with nb.config_context(dtype="float64"):
        assert RidgeCV(alphas=ALPHAS).fit(X, Y).coef_.dtype == np.float64
    assert RidgeCV(alphas=ALPHAS).fit(X, Y).coef_.dtype == np.float32
    Xt = torch.tensor(X)
    m = RidgeCV(alphas=ALPHAS).fit(Xt, torch.tensor(Y))
    pred = m.predict(Xt)
    assert isinstance(pred, torch.Tensor) and pred.dtype == torch.float64
    assert m.score(Xt, torch.tensor(Y), multioutput="raw_values").shape == (3,)
    assert m.score(X, Y, multioutput="raw_values").shape == (3,)


def test_target_batches_give_identical_results():
    X, Y = _data(80, 10, 37)
    a = solve_ridge_cv(torch.tensor(X), torch.tensor(Y), ALPHAS, 5, n_targets_batch=5, progress=False)
    b = solve_ridge_cv(torch.tensor(X), torch.tensor(Y), ALPHAS, 5, progress=False)
    np.testing.assert_allclose(a.cv_scores.numpy(), b.cv_scores.numpy(), rtol=1e-10)
    c = solve_ridge_loo(torch.tensor(X), torch.tensor(Y), ALPHAS, n_targets_batch=4, progress=False)
    d = solve_ridge_loo(torch.tensor(X), torch.tensor(Y), ALPHAS, progress=False)
    np.testing.assert_allclose(c.coef.numpy(), d.coef.numpy(), rtol=1e-10)


def test_correlation_scoring_and_shared_alpha():
    X, Y = _data(100, 10, 6)
    m = RidgeCV(alphas=ALPHAS, scoring="correlation").fit(X, Y)
    assert (m.best_score_ <= 1).all() and (m.best_score_ > 0).all()
    s = RidgeCV(alphas=ALPHAS, alpha_per_target=False).fit(X, Y)
    assert len(np.unique(s.alpha_)) == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    X, Y = _data(200, 30, 50)
    cpu = solve_ridge_cv(torch.tensor(X), torch.tensor(Y), ALPHAS, 5, progress=False)
    gpu = solve_ridge_cv(torch.tensor(X, device="cuda"), torch.tensor(Y, device="cuda"), ALPHAS, 5, progress=False)
    assert gpu.coef.is_cuda
    np.testing.assert_allclose(gpu.cv_scores.cpu().numpy(), cpu.cv_scores.numpy(), atol=1e-8)


# ------------------------------------------------------------------------------------------------ errors
def test_nan_and_inf_are_rejected():
    X, Y = _data(30, 4, 2)
    Xn = X.copy()
    Xn[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        RidgeCV().fit(Xn, Y)
    Yi = Y.copy()
    Yi[0, 0] = np.inf
    with pytest.raises(ValueError, match="non-finite"):
        solve_ridge_cv(torch.tensor(X), torch.tensor(Yi), ALPHAS)
    with pytest.raises(ValueError, match="non-finite"):
        RidgeCV().fit(torch.tensor(Xn), torch.tensor(Y))


def test_too_few_samples_for_cv():
    X, Y = _data(4, 3, 2)
    with pytest.raises(ValueError, match=r"cv=5 folds needs at least 5 samples, found n_samples=4"):
        RidgeCV(cv=5).fit(X, Y)
    with pytest.raises(ValueError, match="at least 5 distinct groups, found 2"):
        RidgeCV(cv=5).fit(*_data(20, 3, 2), groups=np.repeat([0, 1], 10))


def test_groups_straddling_folds_are_rejected():
    X, Y = _data(20, 3, 2)
    groups = np.repeat(np.arange(10), 2)
    with pytest.raises(ValueError, match="appear in both training and validation"):
        solve_ridge_cv(torch.tensor(X), torch.tensor(Y), ALPHAS, folds=KFold(3, shuffle=True, random_state=0),
                       groups=groups)
    # grouped folds keep every group in one fold
    for tr, va in make_folds(20, GroupKFold(5), groups):
        assert not set(groups[tr]) & set(groups[va])


def test_bad_arguments():
    X, Y = _data(30, 4, 2)
    with pytest.raises(ValueError, match="alphas must be finite and > 0"):
        RidgeCV(alphas=[0.0, 1.0]).fit(X, Y)
    with pytest.raises(ValueError, match="same number of samples"):
        solve_ridge_cv(torch.tensor(X), torch.tensor(Y[:-1]))
    with pytest.raises(ValueError, match="sum to n_features"):
        BandedRidgeCV(feature_spaces=[2, 3]).fit(X, Y)
    with pytest.raises(ValueError, match="cv must be"):
        RidgeCV(cv="bogus").fit(X, Y)
    with pytest.raises(ValueError, match="scoring must be one of"):
        RidgeCV(scoring="auc").fit(X, Y)
    with pytest.raises(ValueError, match="features, but RidgeCV is expecting 4"):
        RidgeCV().fit(X, Y).predict(X[:, :3])


def test_banded_solver_function_shapes():
    X, Y = _data(60, 6, 3)
    res = solve_banded_ridge_cv(torch.tensor(X), torch.tensor(Y), [slice(0, 2), slice(2, 6)], ALPHAS, 5, n_iter=4,
                                random_state=0, progress=False)
    assert res.gamma.shape == (2, 3) and res.cv_scores.shape == (4, 3) and res.coef.shape == (6, 3)
    np.testing.assert_allclose(res.gamma.sum(0).numpy(), 1.0)


@pytest.mark.parametrize("scoring", ["r2", "correlation", "neg_mse"])
def test_alpha_batched_and_looped_paths_agree(monkeypatch, scoring):
    from neurobridge.encoding import _solvers

    X, Y = _data(90, 12, 9)
    batched = solve_ridge_cv(torch.tensor(X), torch.tensor(Y), ALPHAS, 5, scoring=scoring, progress=False)
    monkeypatch.setattr(_solvers, "_ALPHA_BATCH_BYTES", 0)
    looped = solve_ridge_cv(torch.tensor(X), torch.tensor(Y), ALPHAS, 5, scoring=scoring, progress=False)
    np.testing.assert_allclose(batched.cv_scores.numpy(), looped.cv_scores.numpy(), rtol=1e-10, atol=1e-12)
