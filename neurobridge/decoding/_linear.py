"""Linear decoders fitted for every time point and fold at once, in closed form, in torch.

The data arrive as ``X`` of shape ``(T, n, p)`` (time points, samples, features), centred over samples
(the caller keeps the removed mean ``g`` of shape ``(T, p)``). For every training set and every time point:

* **ridge** (scikit-learn's ``Ridge`` / ``RidgeClassifier``, intercept unpenalised): the normal equations
  ``(Xc^T Xc + alpha I) W = Xc^T Yc`` by one batched Cholesky solve over all time points, with
  ``Y`` the targets (regression) or the +-1 class codes of ``RidgeClassifier``; the dual form
  ``W = Xc^T (Xc Xc^T + alpha I)^-1 Yc`` when features outnumber training samples. This is the batched form
  of :func:`neurobridge.encoding.solve_ridge` (same minimiser), whose solvers take one design at a time;
  here every time point has its own design, so all of them go through one batched factorisation.
* **lda** (``LinearDiscriminantAnalysis(solver="lsqr", shrinkage=...)``): class means, the prior-weighted
  pooled within-class covariance with each class's covariance shrunk by Ledoit-Wolf on standardised data
  (``shrinkage="auto"``, the closed form of ``sklearn.covariance.ledoit_wolf_shrinkage``), by a fixed
  amount (a float) or not at all (``None``), then ``Sigma coef^T = means^T`` batched.

Training-set sums and Gram matrices are the whole-data ones minus those of the left-out samples, so each
fold costs a pass over its left-out samples only. Time points are processed in chunks planned from memory.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = ["LinearModels", "fit_linear", "decisions_sliding", "decisions_generalizing", "haufe_patterns"]

_CHUNK_BYTES = 256 * 2**20


class LinearModels(NamedTuple):
    """Linear decoders in the centred coordinates of their own time point."""

    coef: torch.Tensor
    """(n_fits, T, p, k): ``k = 1`` for a binary classifier (score of the second class), else one column per
    class or target."""
    intercept: torch.Tensor
    """(n_fits, T, k)."""


def _time_chunk(T: int, per_time_bytes: float) -> int:
    return max(1, min(T, int(_CHUNK_BYTES // max(per_time_bytes, 1.0))))


def _spd_solve(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """Solve ``A X = B`` for symmetric positive (semi-)definite ``A`` batched; a least-squares solution for the
    singular ones (as ``scipy.linalg.lstsq`` in scikit-learn's LDA)."""
    L, info = torch.linalg.cholesky_ex(A)
    out = torch.cholesky_solve(B, L)
    bad = info != 0
    if bool(bad.any()):
        out[bad] = torch.linalg.pinv(A[bad], hermitian=True) @ B[bad]
    return out


def _ridge_chunk(X, Y, masks, alpha):
    Tc, n, p = X.shape
    k = Y.shape[1]
    F = masks.shape[0]
    Xt = X.transpose(1, 2)
    G = torch.bmm(Xt, X)  # (Tc, p, p)
    XY = torch.matmul(Xt, Y)  # (Tc, p, k)
    s = X.sum(1)  # (Tc, p)
    coef = torch.empty(F, Tc, p, k, dtype=X.dtype, device=X.device)
    icpt = torch.empty(F, Tc, k, dtype=X.dtype, device=X.device)
    eye = torch.eye(p, dtype=X.dtype, device=X.device)
    for f in range(F):
        tr = masks[f]
        n_tr = int(tr.sum())
        ym = Y[tr].mean(0)  # (k,)
        if p <= n_tr:  # primal, from whole-data sums minus the left-out samples
            out = (~tr).nonzero().squeeze(1)
            Xo = X[:, out]
            Gtr = G - torch.bmm(Xo.transpose(1, 2), Xo)
            mx = (s - Xo.sum(1)) / n_tr
            XYtr = XY - torch.matmul(Xo.transpose(1, 2), Y[out])
            A = Gtr - n_tr * mx[:, :, None] * mx[:, None, :]
            A = A + alpha * eye
            B = XYtr - n_tr * mx[:, :, None] * ym[None, None, :]
            W = torch.cholesky_solve(B, torch.linalg.cholesky(A))
        else:  # dual
            Xtr = X[:, tr]
            mx = Xtr.mean(1)
            Xc = Xtr - mx[:, None, :]
            K = torch.bmm(Xc, Xc.transpose(1, 2))
            K.diagonal(dim1=-2, dim2=-1).add_(alpha)
            D = torch.cholesky_solve((Y[tr] - ym).expand(Tc, n_tr, k), torch.linalg.cholesky(K))
            W = torch.bmm(Xc.transpose(1, 2), D)
        coef[f] = W
        icpt[f] = ym[None, :] - torch.bmm(mx[:, None, :], W)[:, 0]
    return coef, icpt


def _lda_chunk(X, codes, n_classes, masks, shrinkage, origin=None):
    Tc, n, p = X.shape
    F = masks.shape[0]
    dt, dev = X.dtype, X.device
    eps = torch.finfo(dt).eps
    sigma = torch.zeros(F, Tc, p, p, dtype=dt, device=dev)
    means = torch.empty(F, Tc, n_classes, p, dtype=dt, device=dev)
    n_tr = masks.sum(1).to(dt)  # (F,)
    counts = torch.stack([(masks & (codes == c)).sum(1) for c in range(n_classes)], 1).to(dt)  # (F, K)
    priors = counts / n_tr[:, None]
    eye = torch.eye(p, dtype=dt, device=dev)
    for c in range(n_classes):
        idx = (codes == c).nonzero().squeeze(1)
        Xk = X[:, idx]  # (Tc, nk, p)
        mk = masks[:, idx]  # (F, nk)
        Gk = torch.bmm(Xk.transpose(1, 2), Xk)
        sk = Xk.sum(1)
        G = torch.empty(F, Tc, p, p, dtype=dt, device=dev)
        S = torch.empty(F, Tc, p, dtype=dt, device=dev)
        for f in range(F):
            out = (~mk[f]).nonzero().squeeze(1)
            if len(out):
                Xo = Xk[:, out]
                G[f] = Gk - torch.bmm(Xo.transpose(1, 2), Xo)
                S[f] = sk - Xo.sum(1)
            else:
                G[f], S[f] = Gk, sk
        nf = counts[:, c][:, None, None, None]  # (F, 1, 1, 1)
        m = S / nf[..., 0]  # (F, Tc, p)
        means[:, :, c] = m
        C = (G - nf * m[..., :, None] * m[..., None, :]) / nf  # empirical covariance (ddof 0)
        if shrinkage == "auto":  # sklearn: StandardScaler, ledoit_wolf, rescale
            scale = C.diagonal(dim1=-2, dim2=-1).clamp_min(0).sqrt()
            scale = torch.where(scale < 10 * eps, torch.ones_like(scale), scale)  # (F, Tc, p)
            outer = scale[..., :, None] * scale[..., None, :]
            R = C / outer
            tr = R.diagonal(dim1=-2, dim2=-1).sum(-1)  # (F, Tc)
            mu = tr / p
            delta_ = R.square().sum((-2, -1))
            # beta_ = sum over training samples of ||z||^4, z the standardised sample
            w = 1.0 / scale.square()  # (F, Tc, p)
            wm = w * m
            Xk2 = Xk.square()
            q = (torch.bmm(Xk2, w.permute(1, 2, 0)) - 2 * torch.bmm(Xk, wm.permute(1, 2, 0))
                 + (wm * m).sum(-1).T[:, None, :])  # (Tc, nk, F)
            beta_ = (q.square() * mk.T[None].to(dt)).sum(1).T  # (F, Tc)
            nfs = counts[:, c][:, None]
            beta = (beta_ / nfs - delta_) / (p * nfs)
            delta = (delta_ - 2 * mu * tr + p * mu.square()) / p
            beta = torch.minimum(beta, delta)
            sh = torch.where(beta == 0, torch.zeros_like(beta), beta / torch.where(delta == 0, 1.0, delta))
            if p == 1:
                sh = torch.zeros_like(sh)
            Sk = (1 - sh)[..., None, None] * R + (sh * mu)[..., None, None] * eye
            Sk = Sk * outer
        elif shrinkage is None:
            Sk = C
        else:
            sh = float(shrinkage)
            mu = C.diagonal(dim1=-2, dim2=-1).sum(-1) / p
            Sk = (1 - sh) * C + (sh * mu)[..., None, None] * eye
        sigma += priors[:, c][:, None, None, None] * Sk
    if origin is not None:  # the class means of the uncentred data: scikit-learn's per-class coef_
        means = means + origin[None, :, None, :]
    coefT = _spd_solve(sigma, means.transpose(-2, -1))  # (F, Tc, p, K)
    icpt = -0.5 * (means * coefT.transpose(-2, -1)).sum(-1) + priors.log()[:, None, :]
    if n_classes == 2:
        coefT = coefT[..., 1:2] - coefT[..., 0:1]
        icpt = icpt[..., 1:2] - icpt[..., 0:1]
    return coefT, icpt


def fit_linear(kind: str, X: torch.Tensor, y: torch.Tensor, masks: torch.Tensor, *, alpha: float = 1.0,
               shrinkage="auto", n_classes: int = 0, origin: torch.Tensor | None = None) -> LinearModels:
    """Fit one linear decoder per training set and time point.

    Parameters
    ----------
    kind : {"ridge", "lda"}
    X : tensor, shape (T, n, p)
        Centred over samples.
    y : tensor
        ``(n, k)`` float targets for ridge (the +-1 codes for a ridge classifier), ``(n,)`` int64 class codes
        for LDA.
    masks : bool tensor, shape (n_fits, n)
        The training samples of each fit.
    alpha : float
        Ridge penalty.
    shrinkage : "auto", float or None
        LDA covariance shrinkage.
    n_classes : int
        LDA classes.
    origin : tensor, shape (T, p), optional
        The per-time mean removed from ``X``. Given, the LDA decoders are those of the uncentred data (in its
        coordinates): for more than two classes scikit-learn's per-class ``coef_`` moves with the origin by
        a class-independent ``Sigma^-1 g`` (the predictions and the binary weights do not), and the patterns of
        MNE's ``LinearModel`` follow it. Ridge ignores it (its weights do not depend on the origin).

    Returns
    -------
    LinearModels

    Examples
    --------
    >>> X = torch.randn(3, 40, 5, dtype=torch.float64); X -= X.mean(1, keepdim=True)
    >>> y = torch.arange(40) % 2
    >>> fit_linear("lda", X, y, torch.ones(1, 40, dtype=torch.bool), n_classes=2).coef.shape
    torch.Size([1, 3, 5, 1])
    """
    T, n, p = X.shape
    F = masks.shape[0]
    k = 1 if kind == "lda" and n_classes == 2 else (n_classes if kind == "lda" else y.shape[1])
    per_time = X.element_size() * (n * p * 3 + (F + 2) * p * p * (3 if kind == "lda" else 2) + F * p * k)
    chunk = _time_chunk(T, per_time)
    coef = torch.empty(F, T, p, k, dtype=X.dtype, device=X.device)
    icpt = torch.empty(F, T, k, dtype=X.dtype, device=X.device)
    for start in range(0, T, chunk):
        sl = slice(start, min(T, start + chunk))
        if kind == "ridge":
            coef[:, sl], icpt[:, sl] = _ridge_chunk(X[sl], y, masks, alpha)
        elif kind == "lda":
            coef[:, sl], icpt[:, sl] = _lda_chunk(X[sl], y, n_classes, masks, shrinkage,
                                                  None if origin is None else origin[sl])
        else:
            raise ValueError(f"kind must be 'ridge' or 'lda', got {kind!r}")
    return LinearModels(coef, icpt)


def decisions_sliding(models: LinearModels, f: int, Xv: torch.Tensor) -> torch.Tensor:
    """Decision values of fit ``f`` on ``Xv`` (T, n_val, p) at the training time point: (T, n_val, k)."""
    return torch.baddbmm(models.intercept[f][:, None, :], Xv, models.coef[f])


def decisions_generalizing(models: LinearModels, f: int, Xv: torch.Tensor, g: torch.Tensor, train: slice):
    """Decision values of fit ``f`` trained at the time points ``train`` on ``Xv`` (T2, n_val, p) at every
    test time point: one GEMM, shape (n_train_times, T2, n_val, k).

    ``Xv`` and the models are centred with the per-time means ``g`` (T, p); the models of time ``t`` are
    corrected by ``(g[t2] - g[t]) W_t`` for the test time ``t2``."""
    W = models.coef[f, train]  # (Tc, p, k)
    Tc, p, k = W.shape
    T2, n_val, _ = Xv.shape
    Wm = W.permute(1, 0, 2).reshape(p, Tc * k)
    D = (Xv.reshape(T2 * n_val, p) @ Wm).view(T2, n_val, Tc, k).permute(2, 0, 1, 3)  # (Tc, T2, n_val, k)
    gW = (g @ Wm).view(g.shape[0], Tc, k).transpose(0, 1)  # (Tc, T2, k): g[t2] W_t
    own = gW[torch.arange(Tc), torch.arange(train.start, train.start + Tc)]  # (Tc, k): g[t] W_t
    bias = models.intercept[f, train][:, None, :] + gW - own[:, None, :]  # (Tc, T2, k)
    return D + bias[:, :, None, :]


def haufe_patterns(models: LinearModels, X: torch.Tensor, Y: torch.Tensor | None = None) -> torch.Tensor:
    """Haufe et al. (2014) activation patterns ``A = cov(X) W [cov(Y)^+]`` of fit 0 at every time point.

    As ``mne.decoding.LinearModel``: ``cov`` with ``ddof=1`` on all samples; the target covariance
    (pseudo-inverted) enters only for multi-column continuous targets ``Y``. Returns (T, p, k).
    """
    n = X.shape[1]
    W = models.coef[0]  # (T, p, k)
    A = torch.bmm(X.transpose(1, 2), torch.bmm(X, W)) / (n - 1)  # X centred: cov(X) W without the p x p matrix
    if Y is not None and Y.shape[1] > 1:
        Yc = Y - Y.mean(0)
        A = A @ torch.linalg.pinv(Yc.T @ Yc / (n - 1), hermitian=True)
    return A
