"""Ridge solvers: pure functions on torch tensors.

Every solver diagonalises the (centred) design once per fold and reuses that for every alpha:

* primal (``n_train >= n_features``): eigendecomposition of ``X^T X = V diag(lam) V^T``;
* dual (``n_train < n_features``): eigendecomposition of ``X X^T = Q diag(lam) Q^T``, mapped to the same
  ``V = X^T Q / sqrt(lam)``.

With ``Z = X V`` (so ``Z^T Z = diag(lam)``) and projected targets ``B = Z^T Y`` (one GEMM per fold), the
validation predictions for one alpha are ``(X_val V) diag(1 / (lam + alpha)) B``: one GEMM of
``n_val x rank x n_targets`` per alpha, with nothing of size ``n_targets x n_alphas x n_samples`` ever
allocated (targets go in memory-planned batches, scores are reduced per alpha).

Leave-one-out uses the exact closed form of scikit-learn's ``RidgeCV`` (hat-matrix diagonal, unpenalised
intercept); generalised cross-validation (GCV) replaces the per-sample leverage by its mean, so that its
per-alpha cost is ``rank x n_targets`` (independent of ``n_samples``).

When is LOO/GCV wrong? Both assume independent samples. For autocorrelated time series (fMRI runs,
continuous M/EEG) or repeated presentations of the same stimulus, a left-out sample has near-copies in the
training set, so LOO/GCV favour too little regularisation and overestimate scores: use grouped K-fold
(by run, session or stimulus) there, which is the default of the labelled API.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np
import torch

from ..core import (
    Workspace,
    as_tensor,
    check_finite,
    eigh_many,
    progress_bar,
    resolve_device,
)
from ._cv import make_folds
from ._memory import target_batch_size, threads_for

_IMPUTE = "remove or impute them before fitting"

__all__ = [
    "RidgeResult", "RidgeCVResult", "BandedRidgeCVResult", "KernelRidgeCVResult",
    "solve_ridge", "solve_ridge_cv", "solve_ridge_loo", "solve_kernel_ridge_cv", "solve_banded_ridge_cv",
    "RIDGE_SOLVERS", "SCORINGS",
]

SCORINGS = ("r2", "neg_mse", "correlation")
DEFAULT_ALPHAS = tuple(float(a) for a in np.logspace(-3, 7, 11))
"""Default grid: 1e-3 ... 1e7, one per decade."""


class RidgeResult(NamedTuple):
    """Ridge weights."""

    coef: torch.Tensor
    """(n_features, n_targets)."""
    intercept: torch.Tensor
    """(n_targets,)."""


class RidgeCVResult(NamedTuple):
    """Ridge with a per-target alpha chosen by cross-validation."""

    coef: torch.Tensor | None
    """(n_features, n_targets), refit on all samples with each target's alpha (None if not requested)."""
    intercept: torch.Tensor | None
    """(n_targets,)."""
    alpha: torch.Tensor
    """(n_targets,) chosen alpha."""
    cv_scores: torch.Tensor
    """(n_alphas, n_targets) validation score of every alpha (mean over folds; for LOO/GCV minus the mean
    squared leave-one-out error)."""
    best_score: torch.Tensor
    """(n_targets,) validation score at the chosen alpha."""


class KernelRidgeCVResult(NamedTuple):
    """Kernel ridge with a per-target alpha chosen by cross-validation."""

    dual_coef: torch.Tensor
    """(n_samples, n_targets)."""
    intercept: torch.Tensor
    """(n_targets,)."""
    alpha: torch.Tensor
    cv_scores: torch.Tensor
    best_score: torch.Tensor


class BandedRidgeCVResult(NamedTuple):
    """Banded ridge: one regularisation per feature space and target."""

    coef: torch.Tensor | None
    """(n_features, n_targets) on the original (unscaled) features."""
    intercept: torch.Tensor | None
    alpha: torch.Tensor
    """(n_targets,) overall alpha."""
    gamma: torch.Tensor
    """(n_spaces, n_targets) feature-space weights on the simplex; the penalty on space ``k`` is
    ``alpha / gamma_k``."""
    cv_scores: torch.Tensor
    """(n_iter, n_targets) best validation score of every candidate ``gamma``."""
    best_score: torch.Tensor
    gammas: torch.Tensor
    """(n_iter, n_spaces) the candidates tried."""


# --------------------------------------------------------------------------------------------- helpers
def _prepare(X, Y, dtype=None) -> tuple[torch.Tensor, torch.Tensor, bool]:
    X = as_tensor(X, dtype=dtype)
    Y = as_tensor(Y, dtype=dtype or X.dtype, device=X.device)
    if Y.dtype != X.dtype:
        Y = Y.to(X.dtype)
    one_d = Y.ndim == 1
    if one_d:
        Y = Y[:, None]
    if X.ndim != 2:
        raise ValueError(f"X must be 2-d (n_samples, n_features), got shape {tuple(X.shape)}")
    if Y.ndim != 2:
        raise ValueError(f"Y must be 1-d or 2-d (n_samples, n_targets), got shape {tuple(Y.shape)}")
    if X.shape[0] != Y.shape[0]:
        raise ValueError(f"X and Y must have the same number of samples, got {X.shape[0]} and {Y.shape[0]}")
    check_finite(X, "X", fix=_IMPUTE)
    check_finite(Y, "Y", fix=_IMPUTE)
    return X, Y, one_d


def _alphas(alphas, like: torch.Tensor) -> torch.Tensor:
    a = torch.as_tensor(np.atleast_1d(np.asarray(alphas, dtype=float)), dtype=torch.float64)
    if a.ndim != 1 or len(a) == 0:
        raise ValueError(f"alphas must be a non-empty 1-d sequence, got {alphas!r}")
    if not bool(torch.isfinite(a).all()) or bool((a <= 0).any()):
        raise ValueError(f"alphas must be finite and > 0, got {a.tolist()}")
    return a.to(device=like.device, dtype=like.dtype)


def _work(n: int, p: int, t: int, n_alphas: int = 1, n_fits: int = 1) -> float:
    """Rough flop count of a solve, to decide on threading."""
    r = min(n, p)
    return 2.0 * n_fits * (n * r * (t * (n_alphas + 1) + r))


def _small_single_threaded(n_fits_key: str | None = None):
    """Decorator: run a solver single-threaded on CPU when its work is small (see ``threads_for``)."""

    def deco(fn):
        @functools.wraps(fn)
        def wrapper(X, Y, *args, **kwargs):
            sx, sy = tuple(getattr(X, "shape", np.shape(X))), tuple(getattr(Y, "shape", np.shape(Y)))
            n, p = sx[0], (sx[1] if len(sx) > 1 else 1)
            t = sy[1] if len(sy) > 1 else 1
            alphas = kwargs.get("alphas", args[0] if args and not isinstance(args[0], (int, float)) else None)
            n_alphas = len(np.atleast_1d(alphas)) if alphas is not None else 11
            n_fits = 6 * (kwargs.get(n_fits_key, 20) if n_fits_key else 1)
            device = X.device if isinstance(X, torch.Tensor) else resolve_device(None)
            with threads_for(_work(n, p, t, n_alphas, n_fits), device):
                return fn(X, Y, *args, **kwargs)

        return wrapper

    return deco


def _null_tol(lam: torch.Tensor, n: int, p: int) -> torch.Tensor:
    """Eigenvalues of a Gram matrix below this are numerically zero (their directions are dropped)."""
    top = lam.abs().max().clamp_min(torch.finfo(lam.dtype).tiny)
    factor = max(n, p) if lam.dtype == torch.float64 else 30.0
    return top * factor * torch.finfo(lam.dtype).eps


class _Decomp(NamedTuple):
    V: torch.Tensor  # (p, r): right singular vectors of the centred design
    lam: torch.Tensor  # (r,): squared singular values
    Z: torch.Tensor  # (n, r): X V
    Qs: torch.Tensor | None = None  # dual only: (n, r) Q / sqrt(lam), so that X_new V = (X_new X^T) Qs


def _decompose(X: torch.Tensor, method: str = "auto") -> _Decomp:
    """Eigen-decompose a centred design ``X`` (n, p) and return the non-null part.

    In ``X``'s dtype: float32 solves are ~3x faster than float64 on CPU (as himalaya's float32 SVD), and the
    eigensolver runs single-threaded on CPU (see :func:`neurobridge.core.eigh_many`)."""
    n, p = X.shape
    if method == "auto":
        method = "primal" if n >= p else "dual"
    if method == "primal":
        (lam, V), = eigh_many([X.T @ X])
        lam, V, Z, _ = _finish_primal(X, None, lam, V)
        return _Decomp(V, lam, Z)
    if method == "dual":
        K = X @ X.T
        (lam, Q), = eigh_many([K])
        lam, Qs, Z, _ = _finish_dual(K, None, lam, Q, p)
        return _Decomp(X.T @ Qs, lam, Z, Qs)
    raise ValueError(f"method must be 'auto', 'primal' or 'dual', got {method!r}")


def _finish_primal(Xtr: torch.Tensor, Xva: torch.Tensor | None, lam: torch.Tensor, V: torch.Tensor):
    """Drop the null directions of ``eigh(Xtr^T Xtr)``; returns ``lam, V, Z = Xtr V, A = Xva V``."""
    keep = lam > _null_tol(lam, *Xtr.shape)
    if not bool(keep.all()):
        lam, V = lam[keep], V[:, keep]
    return lam, V, Xtr @ V, (None if Xva is None else Xva @ V)


def _finish_dual(Ktr: torch.Tensor, Kva: torch.Tensor | None, lam: torch.Tensor, Q: torch.Tensor, p: int):
    """Drop the null directions of ``eigh(Ktr)``; returns ``lam, Qs = Q / sqrt(lam), Z = Q sqrt(lam),
    A = Kva Qs`` (so that ``X_new V = (X_new X^T) Qs``)."""
    keep = lam > _null_tol(lam, Ktr.shape[0], p)
    if not bool(keep.all()):
        lam, Q = lam[keep], Q[:, keep]
    sq = lam.sqrt()
    Qs = Q / sq
    return lam, Qs, Q * sq, (None if Kva is None else Kva @ Qs)


def _center(X, fit_intercept: bool):
    if not fit_intercept:
        return X, torch.zeros(X.shape[1], dtype=X.dtype, device=X.device)
    m = X.mean(0)
    return X - m, m


def _batches(n: int, size: int):
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def _refit(dec: _Decomp, Y: torch.Tensor, alpha: torch.Tensor, batch: int, cols: torch.Tensor | None = None):
    """coef (p, t) = V diag(1/(lam+alpha_t)) Z^T Y[:, cols], target by target alpha, batch by batch.

    ``Z`` is built from the centred design, so ``Z^T 1 = 0`` and ``Y`` needs no centring (no copy of Y)."""
    n_t = Y.shape[1] if cols is None else len(cols)
    coef = torch.empty(dec.V.shape[0], n_t, dtype=Y.dtype, device=Y.device)
    for b in _batches(n_t, batch):
        Yb = Y[:, b] if cols is None else Y[:, cols[b]]
        B = dec.Z.T @ Yb
        B /= dec.lam[:, None] + alpha[None, b]
        coef[:, b] = dec.V @ B
    return coef


def _mean_or_zero(Y: torch.Tensor, fit_intercept: bool) -> torch.Tensor:
    if fit_intercept:
        return Y.mean(0)
    return torch.zeros(Y.shape[1], dtype=Y.dtype, device=Y.device)


# ------------------------------------------------------------------------------------------- solvers
@_small_single_threaded()
def solve_ridge(X, Y, alpha=1.0, *, fit_intercept: bool = True, method: str = "auto",
                n_targets_batch: int | None = None) -> RidgeResult:
    """Ridge regression for many targets, one alpha per target or shared.

    Minimises ``||Y - X W - b||^2 + alpha ||W||^2`` column by column.

    Parameters
    ----------
    X : tensor or array, shape (n_samples, n_features)
    Y : tensor or array, shape (n_samples, n_targets) or (n_samples,)
    alpha : float or array, shape (n_targets,)
    fit_intercept : bool
        Centre ``X`` and ``Y`` (unpenalised intercept).
    method : {"auto", "primal", "dual"}
        Diagonalise ``X^T X`` (primal) or ``X X^T`` (dual); auto picks the smaller.
    n_targets_batch : int, optional
        Targets per batch (default: planned from free memory).

    Returns
    -------
    RidgeResult
        ``coef`` (n_features, n_targets), ``intercept`` (n_targets,).

    Examples
    --------
    >>> X = torch.randn(50, 3); Y = X @ torch.ones(3, 2)
    >>> solve_ridge(X, Y, 1e-8).coef.round(decimals=4).tolist()[0]
    [1.0, 1.0]
    """
    X, Y, _ = _prepare(X, Y)
    Xc, xm = _center(X, fit_intercept)
    ym = _mean_or_zero(Y, fit_intercept)
    a = torch.as_tensor(alpha, dtype=X.dtype, device=X.device).reshape(-1)
    if len(a) == 1:
        a = a.expand(Y.shape[1])
    if len(a) != Y.shape[1]:
        raise ValueError(f"alpha must be a scalar or have one value per target ({Y.shape[1]}), got {len(a)}")
    if bool((a <= 0).any()) or not bool(torch.isfinite(a).all()):
        raise ValueError("alpha must be finite and > 0")
    dec = _decompose(Xc, method)
    batch = target_batch_size(Y.shape[1], 4 * X.element_size() * (X.shape[0] + dec.V.shape[0]), X.device,
                              n_targets_batch=n_targets_batch)
    coef = _refit(dec, Y, a, batch)
    return RidgeResult(coef, ym - xm @ coef)


def _score_block(scoring: str, YvT: torch.Tensor, pred_or_res: torch.Tensor, denom: torch.Tensor | None):
    """Scores over the sample axis (last, contiguous: reductions along it are ~10x faster on CPU than across
    rows) of residuals (r2, neg_mse) or predictions (correlation), shape (..., tb, n_val); a leading alpha
    axis broadcasts."""
    if scoring == "r2":
        sse = torch.linalg.vector_norm(pred_or_res, dim=-1).square_()  # one pass, no squared copy
        out = 1 - sse / denom
        return torch.where(denom > 0, out, torch.zeros_like(out))
    if scoring == "neg_mse":
        return -torch.linalg.vector_norm(pred_or_res, dim=-1).square_() / pred_or_res.shape[-1]
    # correlation between prediction and Yv
    p = pred_or_res - pred_or_res.mean(-1, keepdim=True)
    y = YvT - YvT.mean(-1, keepdim=True)
    num = (p * y).sum(-1)
    den = (p.square().sum(-1) * y.square().sum(-1)).sqrt()
    return torch.where(den > 0, num / den, torch.zeros_like(num))


# Below this many bytes, the predictions of all alphas are computed in one batched GEMM: far fewer kernel
# launches (which dominate small problems, above all on busy CPUs); above it, one GEMM per alpha keeps
# the working set small (the GEMMs dominate anyway).
_ALPHA_BATCH_BYTES = 32 * 2**20


def _val_targets(Yv_raw: torch.Tensor, ym: torch.Tensor | None, scoring: str, ws: Workspace | None = None):
    """Centred validation targets transposed to (tb, n_val), and the r2 denominators (or None)."""
    n_val, tb = Yv_raw.shape
    YvT = ws("yv", (tb, n_val)) if ws is not None else torch.empty(tb, n_val, dtype=Yv_raw.dtype,
                                                                     device=Yv_raw.device)
    if ym is None:
        YvT.copy_(Yv_raw.T)
    else:
        torch.sub(Yv_raw.T, ym[:, None], out=YvT)
    denom = None
    if scoring == "r2":
        dev = ws("res", (tb, n_val)) if ws is not None else torch.empty_like(YvT)
        torch.sub(YvT, YvT.mean(1, keepdim=True), out=dev)
        denom = torch.linalg.vector_norm(dev, dim=1).square_()
    return YvT, denom


def _fold_scores(scoring, A, d, Bp, YvT, denom, ws: Workspace | None = None):
    """Validation scores (n_alphas, tb) of one fold for all alphas from the transposed predictions
    ``Bp^T (A * d_alpha)^T`` (tb, n_val)."""
    n_alphas = d.shape[0]
    if n_alphas * A.shape[0] * Bp.shape[1] * A.element_size() <= _ALPHA_BATCH_BYTES:
        pred = torch.matmul(Bp.T, (A[None] * d[:, None, :]).transpose(-1, -2))  # (n_alphas, tb, n_val)
        blk = pred if scoring == "correlation" else pred.neg_().add_(YvT)
        return _score_block(scoring, YvT, blk, denom)
    ws = ws or Workspace(A.dtype, A.device)
    out = torch.empty(n_alphas, Bp.shape[1], dtype=A.dtype, device=A.device)
    ad = ws("ad", A.shape)
    res = ws("res", YvT.shape)  # reused: a fresh block per alpha page-faults on CPU
    for ia in range(n_alphas):
        torch.mul(A, d[ia], out=ad)
        if scoring == "correlation":
            torch.mm(Bp.T, ad.T, out=res)
        else:
            torch.addmm(YvT, Bp.T, ad.T, alpha=-1.0, out=res)  # residual
        out[ia] = _score_block(scoring, YvT, res, denom)
    return out


class _Fold(NamedTuple):
    """One fold, decomposed once for every alpha."""

    tr: list  # (rows of Z, rows of Y) pieces of the training set: slices (views) or one index tensor
    va: slice | torch.Tensor  # validation rows of Y
    n_tr: int
    Z: torch.Tensor  # (n_tr, r): centred training design in its eigenbasis (Z^T Z = diag(lam))
    A: torch.Tensor  # (n_val, r): validation design (centred with the training means) in that basis
    lam: torch.Tensor  # (r,)


def _fold_layout(folds, n: int):
    """A sample order in which every validation set is one contiguous block, or None.

    When the validation sets partition the samples and every training set is the complement of its
    validation set (KFold, GroupKFold, LeaveOneGroupOut, ...), ordering the samples by fold makes each fold
    ``train = [0, s) + [e, n)``, ``val = [s, e)``, so targets are read through views instead of being copied
    per fold and batch. Returns ``(order, bounds)`` with fold ``k`` validating ``order[bounds[k]:bounds[k+1]]``.
    """
    vals = [np.asarray(va, dtype=np.int64).reshape(-1) for _, va in folds]
    order = np.concatenate(vals)
    if len(order) != n or not np.array_equal(np.sort(order), np.arange(n)):
        return None
    for (tr, _), va in zip(folds, vals, strict=True):
        tr = np.asarray(tr, dtype=np.int64).reshape(-1)
        if len(tr) + len(va) != n:
            return None
        inside = np.zeros(n, dtype=bool)
        inside[tr] = True
        if int(inside.sum()) != len(tr) or inside[va].any():
            return None
    return order, np.cumsum([0] + [len(v) for v in vals])


def _fold_fits(X: torch.Tensor, folds, *, fit_intercept: bool, method: str, with_full: bool = False):
    """Decompose every training fold (and, with ``with_full``, the whole design for the refit).

    All eigendecompositions run together through :func:`neurobridge.core.eigh_many` (concurrently on CPU).
    In the dual form the fold kernels are blocks of one kernel of the (globally centred) design, re-centred
    with each fold's training means, instead of one ``n_train x n_train x n_features`` GEMM per fold.

    Returns ``(fits, perm, full)``: ``perm`` orders the rows of Y for the fits' slices (None: as given),
    ``full`` is ``(_Decomp, x_mean)`` of the whole design or None.
    """
    if method not in ("auto", "primal", "dual"):
        raise ValueError(f"method must be 'auto', 'primal' or 'dual', got {method!r}")
    n, p = X.shape
    dev = X.device
    layout = _fold_layout(folds, n)
    perm = None
    if layout is not None:
        order, bounds = layout
        if not np.array_equal(order, np.arange(n)):
            perm = torch.as_tensor(order, device=dev)
        specs = []
        for k in range(len(folds)):
            s, e = int(bounds[k]), int(bounds[k + 1])
            pieces = [(slice(0, s), slice(0, s)), (slice(s, n - (e - s)), slice(e, n))]
            specs.append(([pc for pc in pieces if pc[0].stop > pc[0].start], slice(s, e), n - (e - s)))
    else:
        specs = [([(slice(0, len(tr)), torch.as_tensor(tr, device=dev))], torch.as_tensor(va, device=dev), len(tr))
                 for tr, va in folds]
    Xp = X if perm is None else X[perm]
    zeros = torch.zeros(p, dtype=X.dtype, device=dev)

    def rows(sel_list):
        parts = [Xp[yr] for _, yr in sel_list]
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    methods = [method if method != "auto" else ("primal" if n_tr >= p else "dual") for *_, n_tr in specs]
    full_method = method if method != "auto" else ("primal" if n >= p else "dual")
    x_mean = X.mean(0) if fit_intercept else zeros
    X0 = None
    if "dual" in methods or (with_full and full_method == "dual"):
        X0 = Xp - x_mean if fit_intercept else Xp
        K0 = X0 @ X0.T
    mats, prep = [], []
    for (tr, va, _), meth in zip(specs, methods, strict=True):
        if meth == "primal":
            Xtr = rows(tr)
            xm = Xtr.mean(0) if fit_intercept else zeros
            Xtr = Xtr - xm
            mats.append(Xtr.T @ Xtr)
            prep.append(xm)
        else:
            tr_idx = torch.cat([torch.arange(n, device=dev)[yr] if isinstance(yr, slice) else yr for _, yr in tr])
            va_idx = torch.arange(n, device=dev)[va] if isinstance(va, slice) else va
            Ktr, Kva = K0[tr_idx][:, tr_idx], K0[va_idx][:, tr_idx]
            if fit_intercept:
                Ktr, Kva = _center_kernels(Ktr, Kva)
            mats.append(Ktr)
            prep.append(Kva)
    if with_full:
        if full_method == "primal":
            Xc = X - x_mean if fit_intercept else X
            mats.append(Xc.T @ Xc)
        else:
            mats.append(K0)
    eig = eigh_many(mats)
    fits = []
    for k, ((tr, va, n_tr), meth) in enumerate(zip(specs, methods, strict=True)):
        lam, vec = eig[k]
        if meth == "primal":  # the centred rows again: cheaper than holding every fold's copy through eigh
            xm = prep[k]
            lam, _, Z, A = _finish_primal(rows(tr) - xm, Xp[va] - xm, lam, vec)
        else:
            lam, _, Z, A = _finish_dual(mats[k], prep[k], lam, vec, p)
        fits.append(_Fold(tr, va, n_tr, Z, A, lam))
    full = None
    if with_full:
        lam, vec = eig[-1]
        if full_method == "primal":
            lam, V, Z, _ = _finish_primal(Xc, None, lam, vec)
            full = (_Decomp(V, lam, Z), x_mean)
        else:  # rows of K0 follow perm: map the eigenvectors back to the original sample order
            lam, Qs, Z, _ = _finish_dual(K0, None, lam, vec, p)
            V = X0.T @ Qs
            if perm is not None:
                inv_perm = torch.empty_like(perm)
                inv_perm[perm] = torch.arange(n, device=dev)
                Z, Qs = Z[inv_perm], Qs[inv_perm]
            full = (_Decomp(V, lam, Z, Qs), x_mean)
    return fits, perm, full


def _kfold_scores(X: torch.Tensor, Y: torch.Tensor, alphas: torch.Tensor, folds, *, fit_intercept: bool,
                  scoring: str, method: str, n_targets_batch: int | None, progress: bool | None,
                  desc: str = "ridge cv", with_full: bool = False):
    """``(scores, full)``: validation scores (n_alphas, n_targets) averaged over folds, and with ``with_full``
    the decomposition of the whole design for the refit, ``(dec, x_mean)`` (else None)."""
    if scoring not in SCORINGS:
        raise ValueError(f"scoring must be one of {SCORINGS}, got {scoring!r}")
    fits, perm, full = _fold_fits(X, folds, fit_intercept=fit_intercept, method=method, with_full=with_full)
    scores = fold_fit_scores(fits, perm, Y, alphas, fit_intercept=fit_intercept, scoring=scoring,
                             n_targets_batch=n_targets_batch, progress=progress, desc=desc)
    return scores, full


def fold_fit_scores(fits, perm, Y: torch.Tensor, alphas: torch.Tensor, *, fit_intercept: bool, scoring: str,
                    n_targets_batch: int | None, progress: bool | None = False,
                    desc: str = "ridge cv") -> torch.Tensor:
    """Validation scores (n_alphas, n_targets) averaged over folds, from the folds' decompositions
    (:func:`_fold_fits`): the target loop of :func:`_kfold_scores`, also run by the distributed workers on
    decompositions computed once and scattered."""
    dev = Y.device
    n_alphas, n_t, n = len(alphas), Y.shape[1], Y.shape[0]
    r_max = max(f.Z.shape[1] for f in fits)
    n_val_max = max(f.A.shape[0] for f in fits)
    per_target = Y.element_size() * (n + r_max + 3 * n_val_max + n_alphas * (len(fits) + 1))
    batch = target_batch_size(n_t, per_target, dev, n_targets_batch=n_targets_batch)
    scores = torch.zeros(n_alphas, n_t, dtype=Y.dtype, device=dev)
    inv = [1.0 / (f.lam[None, :] + alphas[:, None]) for f in fits]  # (n_alphas, r) per fold
    ws = Workspace(Y.dtype, dev)
    contiguous = all(isinstance(f.va, slice) for f in fits)
    for b in progress_bar(list(_batches(n_t, batch)), desc=desc, progress=progress, unit="target batch"):
        tb = b.stop - b.start
        Yb = Y[:, b]
        if perm is not None:
            Yb = torch.index_select(Yb, 0, perm, out=ws("y", (n, tb)))
        total = Yb.sum(0) if fit_intercept and contiguous else None
        for f, d in zip(fits, inv, strict=True):
            Yv_raw = Yb[f.va]
            pieces = [(f.Z[zr], Yb[yr]) for zr, yr in f.tr]  # views, or one gathered copy (irregular folds)
            if not fit_intercept:
                ym = None
            elif total is not None:
                ym = (total - Yv_raw.sum(0)).div_(f.n_tr)
            else:
                ym = pieces[0][1].mean(0)
            Bp = ws("bp", (f.Z.shape[1], tb))  # Z is centred, so Z^T (Ytr - ym) == Z^T Ytr
            torch.mm(pieces[0][0].T, pieces[0][1], out=Bp)
            for Zp, Yp in pieces[1:]:
                Bp.addmm_(Zp.T, Yp)
            YvT, denom = _val_targets(Yv_raw, ym, scoring, ws)
            scores[:, b] += _fold_scores(scoring, f.A, d, Bp, YvT, denom, ws)
    scores /= len(fits)
    return scores


@_small_single_threaded()
def solve_ridge_cv(X, Y, alphas=DEFAULT_ALPHAS, folds=5, *, groups=None, fit_intercept: bool = True,
                   scoring: str = "r2", method: str = "auto", alpha_per_target: bool = True,
                   return_weights: bool = True, n_targets_batch: int | None = None,
                   progress: bool | None = None) -> RidgeCVResult:
    """Ridge with the alpha of each target chosen by (grouped) K-fold cross-validation.

    One eigendecomposition per fold serves every alpha; per alpha the cost is one GEMM of
    ``n_val x rank x n_targets`` per fold (predictions from the projected targets).

    Parameters
    ----------
    X : tensor or array, shape (n_samples, n_features)
    Y : tensor or array, shape (n_samples, n_targets)
    alphas : array, shape (n_alphas,)
    folds : int, splitter or list of (train, val) index pairs
        An int gives contiguous K-fold, or GroupKFold with ``groups``.
    groups : array, shape (n_samples,), optional
        Samples sharing a group (run, stimulus) stay in one fold.
    fit_intercept : bool
        Centre with the training-fold means.
    scoring : {"r2", "neg_mse", "correlation"}
        Validation score, averaged over folds (as himalaya).
    method : {"auto", "primal", "dual"}
    alpha_per_target : bool
        Choose one alpha per target (default) or one for all (best mean score).
    return_weights : bool
        Refit on all samples with the chosen alphas.
    n_targets_batch : int, optional
    progress : bool, optional
        Progress bar over batches of targets: ``True``/``False``; ``None`` (default, automatic) shows it
        only when someone watches: stderr is a terminal or Jupyter, and ``TQDM_DISABLE`` is unset
        (:func:`neurobridge.core.progress_enabled`; ``nb.config_context(progress=...)`` sets the default).

    Returns
    -------
    RidgeCVResult

    Examples
    --------
    >>> X = torch.randn(60, 5); Y = X @ torch.randn(5, 3) + 0.1 * torch.randn(60, 3)
    >>> res = solve_ridge_cv(X, Y, [0.1, 1.0, 10.0], folds=5)
    >>> res.alpha.shape, res.coef.shape
    (torch.Size([3]), torch.Size([5, 3]))
    """
    X, Y, _ = _prepare(X, Y)
    a = _alphas(alphas, X)
    fold_list = make_folds(X.shape[0], folds, groups)
    scores, full = _kfold_scores(X, Y, a, fold_list, fit_intercept=fit_intercept, scoring=scoring,
                                 method=method, n_targets_batch=n_targets_batch, progress=progress,
                                 with_full=return_weights)
    return _select_and_refit(X, Y, a, scores, fit_intercept, method, alpha_per_target, return_weights,
                             n_targets_batch, full)


def _select_and_refit(X, Y, a, scores, fit_intercept, method, alpha_per_target, return_weights, n_targets_batch,
                      full=None):
    if alpha_per_target:
        best = scores.argmax(0)  # first maximum on ties, as scikit-learn and himalaya
    else:
        best = scores.mean(1).argmax().expand(Y.shape[1])
    alpha = a[best]
    best_score = scores.gather(0, best[None]).squeeze(0)
    coef = intercept = None
    if return_weights and full is not None:  # the decomposition of the whole design came with the folds
        dec, xm = full
        batch = target_batch_size(Y.shape[1], 4 * X.element_size() * (X.shape[0] + dec.V.shape[0]), X.device,
                                  n_targets_batch=n_targets_batch)
        coef = _refit(dec, Y, alpha, batch)
        intercept = _mean_or_zero(Y, fit_intercept) - xm @ coef
    elif return_weights:
        coef, intercept = solve_ridge(X, Y, alpha, fit_intercept=fit_intercept, method=method,
                                      n_targets_batch=n_targets_batch)
    return RidgeCVResult(coef, intercept, alpha, scores, best_score)


@_small_single_threaded()
def solve_ridge_loo(X, Y, alphas=DEFAULT_ALPHAS, *, mode: str = "loo", fit_intercept: bool = True,
                    method: str = "auto", alpha_per_target: bool = True, return_weights: bool = True,
                    n_targets_batch: int | None = None, progress: bool | None = None) -> RidgeCVResult:
    """Ridge with alphas chosen by exact leave-one-out (``mode="loo"``) or generalised CV (``mode="gcv"``).

    ``"loo"`` is the closed form that scikit-learn's ``RidgeCV(cv=None)`` uses (same alphas, same
    squared errors): residuals divided by ``1 - h_ii`` with ``h`` the hat-matrix diagonal (the intercept
    unpenalised). ``"gcv"`` replaces ``h_ii`` by its mean ``trace(H) / n``; then the per-alpha cost is
    ``rank x n_targets``, independent of ``n_samples``.

    Both assume independent samples: for autocorrelated time series or repeated stimuli, use grouped
    K-fold (:func:`solve_ridge_cv`) instead, or LOO/GCV will pick too little regularisation.

    Parameters
    ----------
    X, Y, alphas, fit_intercept, method, alpha_per_target, return_weights, n_targets_batch, progress
        As :func:`solve_ridge_cv`.
    mode : {"loo", "gcv"}

    Returns
    -------
    RidgeCVResult
        ``cv_scores`` is minus the mean squared leave-one-out (or GCV) error.

    Examples
    --------
    >>> X = torch.randn(40, 4); Y = X @ torch.randn(4, 2)
    >>> solve_ridge_loo(X, Y, [1e-3, 1.0], mode="gcv").alpha.shape
    torch.Size([2])
    """
    if mode not in ("loo", "gcv"):
        raise ValueError(f"mode must be 'loo' or 'gcv', got {mode!r}")
    X, Y, _ = _prepare(X, Y)
    n = X.shape[0]
    if n < 3:
        raise ValueError(f"leave-one-out needs at least 3 samples, found n_samples={n}")
    a = _alphas(alphas, X)
    Xc, xm = _center(X, fit_intercept)
    ym = _mean_or_zero(Y, fit_intercept)
    dec = _decompose(Xc, method)
    Z, lam, V = dec.Z, dec.lam, dec.V
    inv = 1.0 / (lam[None, :] + a[:, None])  # (n_alphas, r)
    n_t = Y.shape[1]
    r = Z.shape[1]
    batch = target_batch_size(n_t, X.element_size() * (2 * n + 2 * r + 2 * len(a)), X.device,
                              n_targets_batch=n_targets_batch)
    scores = torch.empty(len(a), n_t, dtype=X.dtype, device=X.device)
    offset = 1.0 / n if fit_intercept else 0.0
    if mode == "loo":
        h = offset + (Z * Z) @ inv.T  # (n, n_alphas) leverages
        w2 = (1.0 / (1.0 - h)).square_().T.contiguous()  # (n_alphas, n)
        w2 /= n
    else:
        dof = (1.0 if fit_intercept else 0.0) + (lam[None, :] * inv).sum(1)  # trace(H)
        gfac = 1.0 / (1.0 - dof / n) ** 2  # (n_alphas,)
        shrink = (a[:, None] * inv).square() - 1.0  # (n_alphas, r)
    keep_B = return_weights
    Bstore = torch.empty(r, n_t, dtype=X.dtype, device=X.device) if keep_B else None
    for b in progress_bar(list(_batches(n_t, batch)), desc=f"ridge {mode}", progress=progress, unit="target batch"):
        Yb = Y[:, b] - ym[b]  # centred copy of this batch only
        B = Z.T @ Yb
        if mode == "loo":
            for ia in range(len(a)):
                E = torch.addmm(Yb, Z * inv[ia], B, alpha=-1.0)
                E.square_()
                scores[ia, b] = -(w2[ia] @ E)
        else:
            sq = B.square() / lam[:, None]  # (r, tb): squared coordinates of Yc on the column space
            total = Yb.square().sum(0)  # ||Yc||^2
            sse = total[None, :] + shrink @ sq  # (n_alphas, tb)
            scores[:, b] = -(sse / n) * gfac[:, None]
        if keep_B:
            Bstore[:, b] = B  # scaled per target once alphas are chosen
    if alpha_per_target:
        best = scores.argmax(0)
    else:
        best = scores.mean(1).argmax().expand(n_t)
    alpha = a[best]
    best_score = scores.gather(0, best[None]).squeeze(0)
    coef = intercept = None
    if keep_B:
        coef = _apply_alpha(Bstore, V, lam, alpha, batch)
        intercept = ym - xm @ coef
    return RidgeCVResult(coef, intercept, alpha, scores, best_score)


def _apply_alpha(B: torch.Tensor, V, lam, alpha, batch) -> torch.Tensor:
    """coef = V (B / (lam + alpha_t)) with B = Z^T Yc (r, t)."""
    out = torch.empty(V.shape[0], B.shape[1], dtype=B.dtype, device=B.device)
    for b in _batches(B.shape[1], batch):
        out[:, b] = V @ (B[:, b] / (lam[:, None] + alpha[None, b]))
    return out


# --------------------------------------------------------------------------------------- kernel ridge
def _center_kernels(Ktr: torch.Tensor, Kva: torch.Tensor | None):
    col = Ktr.mean(0)
    tot = col.mean()
    Ktr_c = Ktr - col[None, :] - Ktr.mean(1)[:, None] + tot
    Kva_c = None if Kva is None else Kva - Kva.mean(1)[:, None] - col[None, :] + tot
    return Ktr_c, Kva_c


@_small_single_threaded()
def solve_kernel_ridge_cv(K, Y, alphas=DEFAULT_ALPHAS, folds=5, *, groups=None, fit_intercept: bool = True,
                          scoring: str = "r2", alpha_per_target: bool = True,
                          n_targets_batch: int | None = None, progress: bool | None = None) -> KernelRidgeCVResult:
    """Kernel ridge on a precomputed kernel ``K`` (n_samples, n_samples), per-target alpha by K-fold.

    One eigendecomposition of the training kernel per fold serves every alpha. With ``fit_intercept`` the
    kernel is centred in feature space with the training-fold means (equivalent to centring ``X`` for a
    linear kernel).

    Parameters
    ----------
    K : tensor or array, shape (n_samples, n_samples)
    Y : tensor or array, shape (n_samples, n_targets)
    alphas, folds, groups, fit_intercept, scoring, alpha_per_target, n_targets_batch, progress
        As :func:`solve_ridge_cv`.

    Returns
    -------
    KernelRidgeCVResult
        ``dual_coef`` (n_samples, n_targets): predictions are ``K_new_centred @ dual_coef + intercept``.

    Examples
    --------
    >>> X = torch.randn(30, 50); Y = X[:, :2]
    >>> solve_kernel_ridge_cv(X @ X.T, Y, [0.1, 1.0]).dual_coef.shape
    torch.Size([30, 2])
    """
    K, Y, _ = _prepare(K, Y)
    if K.shape[0] != K.shape[1]:
        raise ValueError(f"K must be square (n_samples, n_samples), got {tuple(K.shape)}")
    a = _alphas(alphas, K)
    fold_list = make_folds(K.shape[0], folds, groups)
    if scoring not in SCORINGS:
        raise ValueError(f"scoring must be one of {SCORINGS}, got {scoring!r}")
    dev = K.device
    n_t = Y.shape[1]
    plan = []
    for tr, va in fold_list:
        tr_t, va_t = torch.as_tensor(tr, device=dev), torch.as_tensor(va, device=dev)
        Ktr, Kva = K[tr_t][:, tr_t], K[va_t][:, tr_t]
        if fit_intercept:
            Ktr, Kva = _center_kernels(Ktr, Kva)
        (lam, Q), = eigh_many([Ktr])
        lam = lam.clamp_min(0)
        plan.append((tr_t, va_t, Q, Kva @ Q, lam))
    batch = target_batch_size(n_t, K.element_size() * (3 * K.shape[0] + len(a) * (len(fold_list) + 1)), dev,
                              n_targets_batch=n_targets_batch)
    scores = torch.zeros(len(a), n_t, dtype=K.dtype, device=dev)
    for b in progress_bar(list(_batches(n_t, batch)), desc="kernel ridge cv", progress=progress,
                          unit="target batch"):
        Yb = Y[:, b]
        for tr_t, va_t, Q, A, lam in plan:
            Ytr = Yb[tr_t]
            ym = Ytr.mean(0) if fit_intercept else torch.zeros(Yb.shape[1], dtype=K.dtype, device=dev)
            Bp = Q.T @ (Ytr - ym)
            YvT, denom = _val_targets(Yb[va_t], ym, scoring)
            scores[:, b] += _fold_scores(scoring, A, 1.0 / (lam[None, :] + a[:, None]), Bp, YvT, denom)
    scores /= len(fold_list)
    best = scores.argmax(0) if alpha_per_target else scores.mean(1).argmax().expand(n_t)
    alpha = a[best]
    best_score = scores.gather(0, best[None]).squeeze(0)
    Kc = _center_kernels(K, None)[0] if fit_intercept else K
    ym = Y.mean(0) if fit_intercept else torch.zeros(n_t, dtype=K.dtype, device=dev)
    (lam, Q), = eigh_many([Kc])
    lam = lam.clamp_min(0)
    dual = torch.empty(K.shape[0], n_t, dtype=K.dtype, device=dev)
    for b in _batches(n_t, batch):
        dual[:, b] = Q @ ((Q.T @ (Y[:, b] - ym[b])) / (lam[:, None] + alpha[None, b]))
    return KernelRidgeCVResult(dual, ym, alpha, scores, best_score)


# --------------------------------------------------------------------------------------- banded ridge
def _space_slices(n_features: int, feature_spaces) -> list[np.ndarray]:
    if feature_spaces is None:
        return [np.arange(n_features)]
    spaces = list(feature_spaces)
    if all(isinstance(s, (int, np.integer)) for s in spaces):
        sizes = [int(s) for s in spaces]
        if sum(sizes) != n_features or min(sizes) < 1:
            raise ValueError(f"feature_spaces sizes {sizes} must be positive and sum to n_features={n_features}")
        edges = np.concatenate([[0], np.cumsum(sizes)])
        return [np.arange(edges[i], edges[i + 1]) for i in range(len(sizes))]
    out = []
    for s in spaces:
        idx = np.arange(n_features)[s] if isinstance(s, slice) else np.asarray(s)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        out.append(idx.astype(np.int64))
    allidx = np.concatenate(out)
    if len(allidx) != n_features or len(np.unique(allidx)) != n_features:
        raise ValueError("feature_spaces must partition the features: every column in exactly one space "
                         f"(got {len(allidx)} indices, {len(np.unique(allidx))} unique, n_features={n_features})")
    return out


def dirichlet_candidates(n_iter: int, n_spaces: int, concentration=(0.1, 1.0), random_state=None) -> np.ndarray:
    """Candidate feature-space weights on the simplex: uniform first, then the corners, then Dirichlet draws.

    Examples
    --------
    >>> dirichlet_candidates(4, 2, random_state=0)[:3].tolist()
    [[0.5, 0.5], [1.0, 0.0], [0.0, 1.0]]
    """
    rng = np.random.default_rng(random_state)
    conc = np.atleast_1d(np.asarray(concentration, dtype=float))
    rows = [np.full(n_spaces, 1.0 / n_spaces)]
    if n_spaces > 1:
        rows += list(np.eye(n_spaces))
    i = 0
    while len(rows) < n_iter:
        rows.append(rng.dirichlet(np.full(n_spaces, conc[i % len(conc)])))
        i += 1
    return np.asarray(rows[:max(n_iter, 1)])


@_small_single_threaded("n_iter")
def solve_banded_ridge_cv(X, Y, feature_spaces=None, alphas=DEFAULT_ALPHAS, folds=5, *, n_iter: int = 20,
                          gammas=None, concentration=(0.1, 1.0), random_state=None, groups=None,
                          fit_intercept: bool = True, scoring: str = "r2", method: str = "auto",
                          return_weights: bool = True, n_targets_batch: int | None = None,
                          progress: bool | None = None) -> BandedRidgeCVResult:
    """Banded ridge: one penalty per feature space and target, by random search over the simplex.

    Feature space ``k`` is scaled by ``sqrt(gamma_k)`` (``gamma`` on the simplex), then a ridge with a
    per-target alpha is cross-validated; the best (gamma, alpha) per target is kept. Equivalent penalty on
    space ``k``: ``alpha / gamma_k`` (himalaya's ``deltas = log(gamma / alpha)``).

    Parameters
    ----------
    X : tensor or array, shape (n_samples, n_features)
        All feature spaces side by side.
    Y : tensor or array, shape (n_samples, n_targets)
    feature_spaces : list of int sizes, slices or index arrays
        The columns of each space (e.g. ``[768, 768]``).
    alphas : array
    folds : int, splitter or list of (train, val)
    n_iter : int
        Number of candidate ``gamma`` (uniform, corners, then Dirichlet draws); ignored if ``gammas``.
    gammas : array, shape (n_iter, n_spaces), optional
        Explicit candidates (rows on the simplex).
    concentration : float or sequence
        Dirichlet concentrations, cycled.
    random_state : int, optional
    groups, fit_intercept, scoring, method, return_weights, n_targets_batch, progress
        As :func:`solve_ridge_cv`.

    Returns
    -------
    BandedRidgeCVResult

    Examples
    --------
    >>> X = torch.randn(80, 6); Y = X[:, :3] @ torch.ones(3, 2)
    >>> res = solve_banded_ridge_cv(X, Y, [3, 3], [0.1, 10.0], n_iter=5, random_state=0)
    >>> res.gamma.shape
    torch.Size([2, 2])
    """
    X, Y, _ = _prepare(X, Y)
    a = _alphas(alphas, X)
    spaces = _space_slices(X.shape[1], feature_spaces)
    n_spaces = len(spaces)
    if gammas is None:
        g = dirichlet_candidates(n_iter, n_spaces, concentration, random_state)
    else:
        g = np.asarray(gammas, dtype=float)
        if g.ndim != 2 or g.shape[1] != n_spaces or (g < 0).any():
            raise ValueError(f"gammas must be a non-negative (n_iter, {n_spaces}) array, got shape {g.shape}")
    G = torch.as_tensor(g, dtype=X.dtype, device=X.device)
    fold_list = make_folds(X.shape[0], folds, groups)
    n_t = Y.shape[1]
    space_of = torch.empty(X.shape[1], dtype=torch.long, device=X.device)
    for k, idx in enumerate(spaces):
        space_of[torch.as_tensor(idx, device=X.device)] = k
    best_score = torch.full((n_t,), -torch.inf, dtype=X.dtype, device=X.device)
    best_iter = torch.zeros(n_t, dtype=torch.long, device=X.device)
    best_alpha = torch.ones(n_t, dtype=X.dtype, device=X.device)
    cv_scores = torch.empty(len(G), n_t, dtype=X.dtype, device=X.device)
    eps = torch.finfo(X.dtype).eps
    for it in progress_bar(range(len(G)), desc="banded ridge", progress=progress, unit="candidate"):
        scale = G[it][space_of].sqrt()
        scores, _ = _kfold_scores(X * scale, Y, a, fold_list, fit_intercept=fit_intercept, scoring=scoring,
                                  method=method, n_targets_batch=n_targets_batch, progress=False)
        arg = scores.argmax(0)
        s = scores.gather(0, arg[None]).squeeze(0)
        cv_scores[it] = s
        better = s > best_score + eps
        best_score = torch.where(better, s, best_score)
        best_iter = torch.where(better, torch.full_like(best_iter, it), best_iter)
        best_alpha = torch.where(better, a[arg], best_alpha)
    gamma = G[best_iter].T.contiguous()
    coef = intercept = None
    if return_weights:
        coef = torch.zeros(X.shape[1], n_t, dtype=X.dtype, device=X.device)
        ym = _mean_or_zero(Y, fit_intercept)
        for it in torch.unique(best_iter).tolist():
            cols = (best_iter == it).nonzero().squeeze(1)
            scale = G[it][space_of].sqrt()
            Xc, _ = _center(X * scale, fit_intercept)
            dec = _decompose(Xc, method)
            batch = target_batch_size(len(cols), X.element_size() * 4 * (X.shape[0] + X.shape[1]), X.device,
                                      n_targets_batch=n_targets_batch)
            coef[:, cols] = _refit(dec, Y, best_alpha[cols], batch, cols) * scale[:, None]
        xm = X.mean(0) if fit_intercept else torch.zeros(X.shape[1], dtype=X.dtype, device=X.device)
        intercept = ym - xm @ coef
    return BandedRidgeCVResult(coef, intercept, best_alpha, gamma, cv_scores, best_score, G)


def _solve_loo(X, Y, alphas, folds=None, **kw):
    return solve_ridge_loo(X, Y, alphas, mode="loo", **kw)


def _solve_gcv(X, Y, alphas, folds=None, **kw):
    return solve_ridge_loo(X, Y, alphas, mode="gcv", **kw)


RIDGE_SOLVERS = {"kfold": solve_ridge_cv, "loo": _solve_loo, "gcv": _solve_gcv}
"""Alpha-selection solvers by name: ``solver(X, Y, alphas, folds, **options) -> RidgeCVResult``."""


def n_flops_kfold(n: int, p: int, t: int, n_alphas: int, n_folds: int) -> float:
    """Floating-point operations of the GEMMs of :func:`solve_ridge_cv` (the lower bound it runs at).

    Examples
    --------
    >>> n_flops_kfold(100, 10, 5, 2, 5) > 0
    True
    """
    r = min(p, n - math.ceil(n / n_folds))
    n_tr = n - n / n_folds
    return 2.0 * (n_alphas * n * r * t + n_folds * n_tr * r * t)

