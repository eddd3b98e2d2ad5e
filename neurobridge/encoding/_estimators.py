"""Thin scikit-learn estimators over the ridge solvers.

numpy in, numpy out; torch in, torch out (on the input's device). Computation runs in the configured
dtype (float32 by default, ``nb.config_context(dtype="float64")`` for double precision).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, MultiOutputMixin, RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from ..core import as_tensor, check_finite
from ._solvers import (
    _IMPUTE,
    DEFAULT_ALPHAS,
    solve_banded_ridge_cv,
    solve_kernel_ridge_cv,
    solve_ridge,
    solve_ridge_cv,
    solve_ridge_loo,
)

__all__ = ["Ridge", "RidgeCV", "KernelRidgeCV", "BandedRidgeCV", "r2_score", "correlation_score"]


# ------------------------------------------------------------------------------------------ scoring
def r2_score(y_true, y_pred) -> torch.Tensor:
    """Coefficient of determination per target (column), on tensors.

    Targets with zero variance get 0, as in himalaya.

    Parameters
    ----------
    y_true, y_pred : tensor or array, shape (n_samples, n_targets)

    Returns
    -------
    tensor, shape (n_targets,)

    Examples
    --------
    >>> r2_score(torch.tensor([[1.0], [2.0], [3.0]]), torch.tensor([[1.0], [2.0], [3.0]])).tolist()
    [1.0]
    """
    yt = as_tensor(y_true)
    yp = as_tensor(y_pred, device=yt.device, dtype=yt.dtype)
    if yt.ndim == 1:
        yt, yp = yt[:, None], yp[:, None]
    ss_res = (yt - yp).square().sum(0)
    ss_tot = (yt - yt.mean(0)).square().sum(0)
    out = 1 - ss_res / ss_tot
    return torch.where(ss_tot > 0, out, torch.zeros_like(out))


def correlation_score(y_true, y_pred) -> torch.Tensor:
    """Pearson correlation per target (column), on tensors; 0 where either side is constant.

    Examples
    --------
    >>> correlation_score(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([2.0, 4.0, 7.0])).item() > 0.98
    True
    """
    yt = as_tensor(y_true)
    yp = as_tensor(y_pred, device=yt.device, dtype=yt.dtype)
    if yt.ndim == 1:
        yt, yp = yt[:, None], yp[:, None]
    a = yt - yt.mean(0)
    b = yp - yp.mean(0)
    den = (a.square().sum(0) * b.square().sum(0)).sqrt()
    num = (a * b).sum(0)
    return torch.where(den > 0, num / den, torch.zeros_like(num))


# ----------------------------------------------------------------------------------------- base class
class _LinearBase(MultiOutputMixin, RegressorMixin, BaseEstimator):
    """Validation, storage and prediction shared by the linear estimators."""

    def _validate_fit(self, X, y) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(X, torch.Tensor):
            self._torch = True
            if X.ndim != 2:
                raise ValueError(f"X must be 2-d (n_samples, n_features), got shape {tuple(X.shape)}")
            y_t = y if isinstance(y, torch.Tensor) else torch.as_tensor(np.asarray(y), device=X.device)
            if y_t.ndim not in (1, 2):
                raise ValueError(f"y must be 1-d or 2-d, got shape {tuple(y_t.shape)}")
            if X.shape[0] != y_t.shape[0]:
                raise ValueError(f"X and y have different numbers of samples: {X.shape[0]} and {y_t.shape[0]}")
            if X.shape[0] < 1:
                raise ValueError("found n_samples=0 while a minimum of 1 is required")
            self.n_features_in_ = int(X.shape[1])
            Xt = as_tensor(X)
            Yt = as_tensor(y_t, dtype=Xt.dtype, device=Xt.device)
            check_finite(Xt, "X", fix=_IMPUTE)
            check_finite(Yt, "y", fix=_IMPUTE)
        else:
            self._torch = False
            X, y = validate_data(self, X, y, multi_output=True, y_numeric=True, dtype=[np.float64, np.float32])
            Xt = as_tensor(np.array(X, copy=not X.flags.writeable))
            Yt = as_tensor(np.asarray(y) if np.asarray(y).dtype.kind == "f" else np.asarray(y, dtype=float), dtype=Xt.dtype)
        self._one_d = Yt.ndim == 1
        return Xt, (Yt[:, None] if self._one_d else Yt)

    def _validate_predict(self, X) -> tuple[torch.Tensor, bool]:
        check_is_fitted(self)
        if isinstance(X, torch.Tensor):
            if X.ndim != 2 or X.shape[1] != self.n_features_in_:
                raise ValueError(f"X has {X.shape[-1] if X.ndim else 0} features, but {type(self).__name__} is "
                                 f"expecting {self.n_features_in_} features as input")
            Xt = as_tensor(X, dtype=self._coef_t.dtype)
            check_finite(Xt, "X", fix=_IMPUTE)
            return Xt, True, None
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        np_dtype = X.dtype
        X = np.array(X, copy=not X.flags.writeable)
        return as_tensor(X, dtype=self._coef_t.dtype, device=self._coef_t.device), False, np_dtype

    def _out(self, t: torch.Tensor, as_torch: bool, np_dtype=None):
        if self._one_d and t.ndim == 2 and t.shape[-1] == 1:
            t = t[..., 0]
        if as_torch:
            return t
        out = t.detach().cpu().numpy()
        return out.astype(np_dtype, copy=False) if np_dtype is not None else out

    def _store_linear(self, coef: torch.Tensor, intercept: torch.Tensor) -> None:
        self._coef_t = coef  # (p, t)
        self._intercept_t = intercept
        self.coef_ = self._out(coef.T if not self._one_d else coef, self._torch)  # a view: no copy of the weights
        if self._one_d:
            self.coef_ = self.coef_.reshape(-1) if not self._torch else coef[:, 0]
            self.intercept_ = float(intercept[0])
        else:
            self.intercept_ = self._out(intercept, self._torch)

    def predict(self, X):
        """Predict targets, shape (n_samples, n_targets) (or (n_samples,) after a 1-d fit).

        Returns numpy for numpy input and a tensor on the input's device for tensor input.
        """
        Xt, as_torch, np_dtype = self._validate_predict(X)
        coef = self._coef_t.to(Xt.device)
        pred = torch.addmm(self._intercept_t.to(Xt.device)[None, :], Xt, coef)
        return self._out(pred, as_torch, np_dtype)

    def score(self, X, y, sample_weight=None, multioutput: str = "uniform_average"):
        """R^2 of the predictions; ``multioutput="raw_values"`` gives one score per target.

        Examples
        --------
        >>> X = np.random.default_rng(0).normal(size=(30, 3)); Y = X @ np.ones((3, 2))
        >>> Ridge(alpha=1e-6).fit(X, Y).score(X, Y, multioutput="raw_values").round(3).tolist()
        [1.0, 1.0]
        """
        pred = self.predict(X)
        if isinstance(pred, torch.Tensor):
            if sample_weight is not None:
                raise ValueError("sample_weight is not supported with tensor inputs")
            s = r2_score(y, pred)
            if multioutput == "raw_values":
                return s if not self._one_d else s[0]
            return s.mean().item()
        from sklearn.metrics import r2_score as sk_r2

        return sk_r2(y, pred, sample_weight=sample_weight, multioutput=multioutput)


def _cv_solver_kwargs(est) -> dict[str, Any]:
    return dict(fit_intercept=est.fit_intercept, scoring=est.scoring, n_targets_batch=est.n_targets_batch,
                progress=est.progress)


# -------------------------------------------------------------------------------------------- Ridge
class Ridge(_LinearBase):
    """Ridge regression for many targets (one alpha, or one per target).

    Parameters
    ----------
    alpha : float or array, shape (n_targets,)
        Regularisation strength.
    fit_intercept : bool
        Fit an unpenalised intercept.
    method : {"auto", "primal", "dual"}
        Diagonalise ``X^T X`` (primal) or ``X X^T`` (dual); auto picks the smaller one.
    n_targets_batch : int, optional
        Targets per batch (default: planned from free memory).

    Attributes
    ----------
    coef_ : array, shape (n_targets, n_features) or (n_features,)
    intercept_ : array, shape (n_targets,) or float
    n_features_in_ : int

    Examples
    --------
    >>> X = np.random.default_rng(0).normal(size=(40, 3)); y = X @ [1.0, 2.0, 3.0]
    >>> Ridge(alpha=1e-6).fit(X, y).coef_.round(3).tolist()
    [1.0, 2.0, 3.0]
    """

    def __init__(self, alpha=1.0, *, fit_intercept: bool = True, method: str = "auto",
                 n_targets_batch: int | None = None):
        self.alpha = alpha
        self.fit_intercept = fit_intercept
        self.method = method
        self.n_targets_batch = n_targets_batch

    def fit(self, X, y):
        """Fit on ``X`` (n_samples, n_features) and ``y`` (n_samples[, n_targets]); returns self."""
        Xt, Yt = self._validate_fit(X, y)
        res = solve_ridge(Xt, Yt, np.asarray(self.alpha, dtype=float), fit_intercept=self.fit_intercept,
                          method=self.method, n_targets_batch=self.n_targets_batch)
        self._store_linear(res.coef, res.intercept)
        return self


class RidgeCV(_LinearBase):
    """Ridge regression with a per-target alpha chosen by K-fold, leave-one-out or GCV.

    Parameters
    ----------
    alphas : array, shape (n_alphas,)
        Candidate alphas.
    cv : int, "loo", "gcv", sklearn splitter, or list of (train, val) index pairs
        An int gives contiguous K-fold (or GroupKFold when ``groups`` are passed to ``fit``). ``"loo"`` is
        scikit-learn's exact leave-one-out closed form (same alphas); ``"gcv"`` its fast approximation. Use
        K-fold grouped by run/stimulus for autocorrelated or repeated data: LOO/GCV assume independent
        samples and pick too little regularisation otherwise.
    fit_intercept : bool
    scoring : {"r2", "neg_mse", "correlation"}
        Validation score for K-fold (LOO/GCV always use the squared error).
    alpha_per_target : bool
    method : {"auto", "primal", "dual"}
    n_targets_batch : int, optional
    progress : bool
        Show a progress bar over target batches.

    Attributes
    ----------
    alpha_ : array, shape (n_targets,) or float
    cv_scores_ : array, shape (n_alphas, n_targets)
    best_score_ : array, shape (n_targets,)
    coef_, intercept_, n_features_in_ : as :class:`Ridge`

    Examples
    --------
    >>> rng = np.random.default_rng(0); X = rng.normal(size=(100, 5)); Y = X @ rng.normal(size=(5, 3))
    >>> RidgeCV(alphas=[0.1, 1.0, 10.0], cv=5).fit(X, Y).alpha_.shape
    (3,)
    """

    def __init__(self, alphas=DEFAULT_ALPHAS, *, cv=5, fit_intercept: bool = True, scoring: str = "r2",
                 alpha_per_target: bool = True, method: str = "auto", n_targets_batch: int | None = None,
                 progress: bool = False):
        self.alphas = alphas
        self.cv = cv
        self.fit_intercept = fit_intercept
        self.scoring = scoring
        self.alpha_per_target = alpha_per_target
        self.method = method
        self.n_targets_batch = n_targets_batch
        self.progress = progress

    def fit(self, X, y, groups=None):
        """Fit on ``X`` (n_samples, n_features), ``y`` (n_samples[, n_targets]); ``groups`` keep samples
        together across folds (K-fold only). Returns self."""
        Xt, Yt = self._validate_fit(X, y)
        if isinstance(self.cv, str):
            if self.cv not in ("loo", "gcv"):
                raise ValueError(f"cv must be an int, 'loo', 'gcv', a splitter or a list of folds, got {self.cv!r}")
            if groups is not None:
                raise ValueError(f"cv={self.cv!r} ignores groups; use K-fold (cv=5) to keep groups together")
            res = solve_ridge_loo(Xt, Yt, self.alphas, mode=self.cv, fit_intercept=self.fit_intercept,
                                  method=self.method, alpha_per_target=self.alpha_per_target,
                                  n_targets_batch=self.n_targets_batch, progress=self.progress)
        else:
            res = solve_ridge_cv(Xt, Yt, self.alphas, self.cv, groups=groups, method=self.method,
                                 alpha_per_target=self.alpha_per_target, **_cv_solver_kwargs(self))
        self._store_linear(res.coef, res.intercept)
        self._store_cv(res.alpha, res.cv_scores, res.best_score)
        return self

    def _store_cv(self, alpha, cv_scores, best_score):
        self.alpha_ = float(alpha[0]) if self._one_d else self._out(alpha, self._torch)
        self.cv_scores_ = self._out(cv_scores, self._torch)
        self.best_score_ = float(best_score[0]) if self._one_d else self._out(best_score, self._torch)


class BandedRidgeCV(RidgeCV):
    """Banded ridge: one penalty per feature space and target, by random search over the simplex.

    Parameters
    ----------
    alphas : array
        Candidate overall alphas.
    feature_spaces : list of int, slices or index arrays, optional
        Columns of each feature space (e.g. ``[768, 768]`` for two layers); None means one space.
    n_iter : int
        Candidate space weights ``gamma`` tried: uniform, each space alone, then Dirichlet draws.
    gammas : array, shape (n_iter, n_spaces), optional
        Explicit candidates (override ``n_iter``).
    concentration : float or sequence
        Dirichlet concentrations (cycled), as himalaya.
    random_state : int, optional
    cv, fit_intercept, scoring, method, n_targets_batch, progress
        As :class:`RidgeCV` (K-fold only).

    Attributes
    ----------
    gamma_ : array, shape (n_spaces, n_targets)
        Chosen weights on the simplex: a target driven by space k gets ``gamma_[k]`` near 1.
    alpha_ : array, shape (n_targets,)
    cv_scores_ : array, shape (n_iter, n_targets)
        Best validation score of every candidate.
    best_score_, coef_, intercept_, n_features_in_

    Examples
    --------
    >>> rng = np.random.default_rng(0); X = rng.normal(size=(120, 6)); Y = X[:, :3] @ rng.normal(size=(3, 2))
    >>> m = BandedRidgeCV(alphas=[0.1, 10.0], feature_spaces=[3, 3], n_iter=6, random_state=0).fit(X, Y)
    >>> m.gamma_.shape
    (2, 2)
    """

    def __init__(self, alphas=DEFAULT_ALPHAS, *, feature_spaces=None, n_iter: int = 20, gammas=None,
                 concentration=(0.1, 1.0), random_state=None, cv=5, fit_intercept: bool = True, scoring: str = "r2",
                 method: str = "auto", n_targets_batch: int | None = None, progress: bool = False):
        self.alphas = alphas
        self.feature_spaces = feature_spaces
        self.n_iter = n_iter
        self.gammas = gammas
        self.concentration = concentration
        self.random_state = random_state
        self.cv = cv
        self.fit_intercept = fit_intercept
        self.scoring = scoring
        self.method = method
        self.n_targets_batch = n_targets_batch
        self.progress = progress

    def fit(self, X, y, groups=None):
        """Fit on ``X`` (all feature spaces side by side) and ``y``; returns self."""
        Xt, Yt = self._validate_fit(X, y)
        if isinstance(self.cv, str):
            raise ValueError("BandedRidgeCV supports K-fold cv only (an int, a splitter or a list of folds)")
        res = solve_banded_ridge_cv(Xt, Yt, self.feature_spaces, self.alphas, self.cv, n_iter=self.n_iter,
                                    gammas=self.gammas, concentration=self.concentration,
                                    random_state=self.random_state, groups=groups, method=self.method,
                                    **_cv_solver_kwargs(self))
        self._store_linear(res.coef, res.intercept)
        self._store_cv(res.alpha, res.cv_scores, res.best_score)
        self.gamma_ = self._out(res.gamma, self._torch)
        return self


# -------------------------------------------------------------------------------------- kernel ridge
def _kernel(A: torch.Tensor, B: torch.Tensor, kind: str, gamma: float | None, degree: int, coef0: float):
    if kind == "linear":
        return A @ B.T
    g = 1.0 / A.shape[1] if gamma is None else float(gamma)
    if kind == "rbf":
        d2 = (A.square().sum(1)[:, None] + B.square().sum(1)[None, :] - 2 * A @ B.T).clamp_min(0)
        return torch.exp(-g * d2)
    if kind == "polynomial":
        return (g * (A @ B.T) + coef0) ** degree
    raise ValueError(f"kernel must be 'linear', 'rbf', 'polynomial' or 'precomputed', got {kind!r}")


class KernelRidgeCV(_LinearBase):
    """Kernel ridge (dual form) with a per-target alpha chosen by K-fold; for ``n_features >> n_samples``.

    Parameters
    ----------
    alphas : array
    kernel : {"linear", "rbf", "polynomial", "precomputed"}
    gamma, degree, coef0 : kernel parameters (``gamma`` defaults to ``1 / n_features``)
    cv : int, splitter or list of (train, val)
    fit_intercept : bool
        Centre the kernel in feature space (unpenalised intercept).
    scoring, n_targets_batch, progress : as :class:`RidgeCV`

    Attributes
    ----------
    dual_coef_ : array, shape (n_samples, n_targets)
    alpha_, cv_scores_, best_score_, intercept_, n_features_in_
    X_fit_ : training data (needed to predict)

    Examples
    --------
    >>> rng = np.random.default_rng(0); X = rng.normal(size=(40, 200)); Y = X[:, :4] @ rng.normal(size=(4, 2))
    >>> KernelRidgeCV(alphas=[0.1, 1.0, 10.0]).fit(X, Y).dual_coef_.shape
    (40, 2)
    """

    def __init__(self, alphas=DEFAULT_ALPHAS, *, kernel: str = "linear", gamma: float | None = None,
                 degree: int = 3, coef0: float = 1.0, cv=5, fit_intercept: bool = True, scoring: str = "r2",
                 n_targets_batch: int | None = None, progress: bool = False):
        self.alphas = alphas
        self.kernel = kernel
        self.gamma = gamma
        self.degree = degree
        self.coef0 = coef0
        self.cv = cv
        self.fit_intercept = fit_intercept
        self.scoring = scoring
        self.n_targets_batch = n_targets_batch
        self.progress = progress

    def _gram(self, A, B):
        if self.kernel == "precomputed":
            return A
        return _kernel(A, B, self.kernel, self.gamma, self.degree, self.coef0)

    def fit(self, X, y, groups=None):
        """Fit on ``X`` (n_samples, n_features) or a precomputed kernel, and ``y``; returns self."""
        Xt, Yt = self._validate_fit(X, y)
        if self.kernel == "precomputed" and Xt.shape[0] != Xt.shape[1]:
            raise ValueError(f"kernel='precomputed' needs a square (n_samples, n_samples) X, got {tuple(Xt.shape)}")
        K = self._gram(Xt, Xt)
        res = solve_kernel_ridge_cv(K, Yt, self.alphas, self.cv, groups=groups, **_cv_solver_kwargs(self))
        self.X_fit_ = Xt
        self._K_col_mean = K.mean(0)
        self._K_mean = K.mean()
        self._coef_t = res.dual_coef
        self._intercept_t = res.intercept
        self.dual_coef_ = self._out(res.dual_coef, self._torch)
        self.intercept_ = float(res.intercept[0]) if self._one_d else self._out(res.intercept, self._torch)
        RidgeCV._store_cv(self, res.alpha, res.cv_scores, res.best_score)
        return self

    def predict(self, X):
        """Predict targets from new samples (or, with ``kernel='precomputed'``, K(new, train))."""
        check_is_fitted(self)
        if self.kernel == "precomputed":
            n_fit = self.X_fit_.shape[0]
            if isinstance(X, torch.Tensor):
                Xt, as_torch = as_tensor(X, dtype=self._coef_t.dtype), True
            else:
                Xt, as_torch = as_tensor(np.array(X, dtype=float), dtype=self._coef_t.dtype), False
            np_dtype = np.float64
            if Xt.ndim != 2 or Xt.shape[1] != n_fit:
                raise ValueError(f"precomputed kernel must have shape (n_samples, {n_fit}), got {tuple(Xt.shape)}")
            K = Xt
        else:
            Xt, as_torch, np_dtype = self._validate_predict(X)
            K = self._gram(Xt.double(), self.X_fit_.to(Xt.device).double())
        # float64 here: a kernel prediction sums over all training samples, and float32 GEMMs of different
        # shapes round differently, which would make predictions depend on the batch of rows asked for
        K = K.double()
        if self.fit_intercept:
            K = K - K.mean(1, keepdim=True) - self._K_col_mean.to(K)[None, :] + self._K_mean.to(K)
        pred = (K @ self._coef_t.to(K) + self._intercept_t.to(K)).to(self._coef_t.dtype)
        return self._out(pred, as_torch, np_dtype)

