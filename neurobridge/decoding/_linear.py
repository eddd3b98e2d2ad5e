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

* **logistic** (``LogisticRegression(C=...)``, L2 penalty, unpenalised intercept): scikit-learn's objective
  ``sum_i w_i loss_i + ||W||^2 / (2 C)`` (binomial loss for two classes, multinomial with one weight row per
  class otherwise; ``w_i`` the class weights), minimised for every fold and time point at once by a batched
  truncated Newton method: conjugate gradients on Hessian-vector products, preconditioned by
  ``c X^T X + I / C`` (the Hessian with the per-sample curvature replaced by its mean ``c``), then an Armijo
  line search. All folds share one pass over the data: the decision values of every fold come from one GEMM of
  all samples (left-out ones weigh 0), and time points whose folds have all converged leave the batch.

Training-set sums and Gram matrices are the whole-data ones minus those of the left-out samples, so each
fold costs a pass over its left-out samples only. Time points are processed in chunks planned from memory.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import NamedTuple

import torch

from ..core import cpu_threads, side_by_side

__all__ = ["LinearModels", "LogisticFit", "fit_linear", "fit_logistic", "decisions_sliding", "decisions_generalizing",
           "haufe_patterns"]

_CHUNK_BYTES = 256 * 2**20
_CPU_CHUNK_TIMES = 32
"""Time points per batch of the logistic solver on CPU: its per-sample arrays then stay within a few MB."""


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


# ------------------------------------------------------------------------------------------------ logistic
class LogisticFit(NamedTuple):
    """Batched L2 logistic regressions (:func:`fit_logistic`) and how their solver ended."""

    models: LinearModels
    """Weights ``(n_fits, T, p, k)`` and intercepts ``(n_fits, T, k)`` in the centred coordinates of each time point
    (``k = 1`` for two classes: the score of the second; else one column per class, summing to zero over classes
    as scikit-learn's)."""
    n_iter: torch.Tensor
    """(n_fits, T) Newton iterations."""
    grad_max: torch.Tensor
    """(n_fits, T) largest absolute entry of the gradient of scikit-learn's scaled objective (the mean weighted
    loss plus ``||W||^2 / (2 C sum(w))``) at the solution: what its ``tol`` bounds."""
    converged: torch.Tensor
    """(n_fits, T) bool, ``grad_max <= tol``."""


def _spd_inverse(A: torch.Tensor) -> torch.Tensor:
    """Batched inverse of symmetric positive definite matrices (for a preconditioner: jitter where Cholesky
    fails). On one CPU thread: batched LAPACK calls of small matrices ran 10-100x slower on two busy threads."""
    with cpu_threads(1, A.device):
        L, info = torch.linalg.cholesky_ex(A)
        bad = info != 0
        if bool(bad.any()):
            Ab = A[bad]
            m = Ab.shape[-1]
            jitter = (Ab.diagonal(dim1=-2, dim2=-1).sum(-1) / m).clamp_min(1.0) * 1e3 * torch.finfo(A.dtype).eps
            L[bad] = torch.linalg.cholesky(Ab + jitter[:, None, None] * torch.eye(m, dtype=A.dtype, device=A.device))
        return torch.cholesky_inverse(L)


def _logistic_chunk(X, y, w, lam: float, n_classes: int, tol: float, max_iter: int):
    """Truncated Newton on a chunk of time points; X (Tc, n, p) centred, w (F, n) sample weights (0: not in the
    training set). Returns W (Tc, F, k, p + 1) (last column: intercept), n_iter (Tc, F), grad_max (Tc, F)."""
    Tc, n, p = X.shape
    F = w.shape[0]
    dt, dev = X.dtype, X.device
    k = 1 if n_classes == 2 else n_classes
    p1 = p + 1
    eps = torch.finfo(dt).eps
    primal = p <= n
    # the preconditioner's Gram matrix: of the features (primal) or of the samples (dual, by Woodbury)
    Gram = torch.bmm(X.transpose(1, 2), X) if primal else torch.bmm(X, X.transpose(1, 2))
    Xb = torch.cat([X, torch.ones(Tc, n, 1, dtype=dt, device=dev)], 2)  # the intercept as a last feature
    sw = w.sum(1)  # (F,)
    abar = float(sw.mean()) / n
    wb = w[None, :, None, :]  # (1, F, 1, n)
    if k == 1:
        Y = (y == 1).to(dt).view(1, 1, 1, n)
    else:
        Y = torch.zeros(k, n, dtype=dt, device=dev)
        Y[y, torch.arange(n, device=dev)] = 1.0
        Y = Y[None, None]
    yi = y.view(1, 1, 1, n)
    pen = torch.full((p1,), lam, dtype=dt, device=dev)
    pen[-1] = 0.0  # the intercept is not penalised
    W_out = torch.zeros(Tc, F, k, p1, dtype=dt, device=dev)
    n_iter = torch.zeros(Tc, F, dtype=torch.long, device=dev)
    gmax_out = torch.zeros(Tc, F, dtype=dt, device=dev)
    idx = torch.arange(Tc, device=dev)

    def proj(A):  # the multinomial weights live where they sum to zero over classes (scikit-learn's minimiser)
        return A if k == 1 else A - A.mean(2, keepdim=True)

    def dot(A, B):
        return (A * B).sum((2, 3))

    def forward(V, Xb):
        return torch.bmm(V.reshape(len(V), F * k, p1), Xb.transpose(1, 2)).view(len(V), F, k, n)

    def backward(R, V, Xb):
        return torch.bmm(R.view(len(R), F * k, n), Xb).view(len(R), F, k, p1).addcmul_(V, pen)

    def objective(Z, V):
        """Objective (B, F) and class probabilities (B, F, k, n) of decision values Z."""
        if k == 1:
            P = torch.sigmoid(Z)
            L = torch.nn.functional.softplus(Z).sub_(Y * Z)
        else:
            m = Z.amax(2, keepdim=True)
            P = (Z - m).exp_()
            s = P.sum(2, keepdim=True)
            L = torch.log(s).add_(m).sub_(Z.gather(2, yi.expand(len(Z), F, 1, n)))
            P.div_(s)
        return (L * wb).sum((2, 3)) + 0.5 * dot(V.square(), pen.expand_as(V)), P

    def prec(r, Xb, Minv, cb):
        """The preconditioner: (c a X^T X + lam I)^-1 on the weights, 1 / (c sum(w)) on the intercept."""
        r = proj(r)
        B = len(r)
        rw = r[..., :p].reshape(B, F * k, p)
        if primal:
            zw = torch.bmm(rw, Minv)
        else:  # (s X^T X + lam I)^-1 = (I - X^T (X X^T + lam / s I)^-1 X) / lam
            Xf = Xb[..., :p]
            zw = (rw - torch.bmm(torch.bmm(torch.bmm(rw, Xf.transpose(1, 2)), Minv), Xf)) / lam
        return proj(torch.cat([zw.view(B, F, k, p), (r[..., p] / cb)[..., None]], 3))

    def hess(V, Xb, P, Pw):
        """Hessian-vector products; Pw the weighted curvature p (1 - p) (binary) or probabilities (multinomial)."""
        U = forward(V, Xb)
        if k == 1:
            U.mul_(Pw)
        else:
            U.mul_(Pw)
            U.addcmul_(P, U.sum(2, keepdim=True), value=-1.0)
        return proj(backward(U, V, Xb))

    # below the float resolution of the gradient (about eps * max |x|) no solver gets: tol is floored there
    tol = max(tol, 64 * eps * float(X.abs().max()))
    W = torch.zeros(Tc, F, k, p1, dtype=dt, device=dev)
    fval, P = objective(torch.zeros(Tc, F, k, n, dtype=dt, device=dev), W)
    Minv, c_fact = None, None
    for it in range(max_iter + 1):
        g = backward((P - Y).mul_(wb), W, Xb)
        gm = g.abs().amax((2, 3)) / sw
        gmax_out[idx] = gm
        done = gm <= tol
        if it == max_iter or bool(done.all()):
            break
        n_iter[idx] += (~done).long()
        keep = ~done.all(1)
        if int(keep.sum()) < 0.75 * len(idx):  # time points whose folds all converged leave the batch
            W_out[idx[~keep]] = W[~keep]
            idx, Xb, Gram, W, P, fval, g, done = (a[keep] for a in (idx, Xb, Gram, W, P, fval, g, done))
            if Minv is not None:
                Minv, c_fact = Minv[keep], c_fact[keep]
        # the mean curvature c of each fit; the preconditioner c X^T X + lam I, refactored when c has moved
        if k == 1:
            Pw = (P * (1 - P)).mul_(wb)
            c = Pw.sum((2, 3)) / sw
        else:
            Pw = P * wb
            c = (sw - dot(Pw, P)) / sw / (k - 1)
        c = c.clamp_min(1e-6)
        ct = c.mean(1)  # (B,)
        if Minv is None or bool(((ct / c_fact - 1).abs() > 0.5).any()):
            s_t = (ct * abar)[:, None, None]
            eye = torch.eye(Gram.shape[-1], dtype=dt, device=dev)
            Minv = _spd_inverse(s_t * Gram + lam * eye) if primal else _spd_inverse(Gram + (lam / s_t) * eye)
            c_fact = ct
        cb = (c * sw)[..., None]  # (B, F, 1): the intercept's curvature

        g = proj(g)
        gnorm = dot(g, g).sqrt()
        eta = torch.sqrt(gnorm / sw).clamp(max=0.5)  # forcing term: superlinear convergence
        active = ~done
        x = torch.zeros_like(W)
        r = -g
        z = prec(r, Xb, Minv, cb)
        d = z
        rz = dot(r, z)
        for _ in range(min(k * p1, 200)):
            Hd = hess(d, Xb, P, Pw)
            dHd = dot(d, Hd)
            alpha = torch.where(active & (dHd > 0), rz / torch.where(dHd > 0, dHd, 1.0), 0.0)
            x.add_(alpha[..., None, None] * d)
            r.sub_(alpha[..., None, None] * Hd)
            # r = -(g + H x): the gradient the quadratic model predicts after the step; stop when it is small
            # relative to g (superlinear convergence) or already well within tol (the last Newton step)
            active &= (dot(r, r).sqrt() > eta * gnorm) & (r.abs().amax((2, 3)) > 0.25 * tol * sw)
            if not bool(active.any()):
                break
            z = prec(r, Xb, Minv, cb)
            rz_new = dot(r, z)
            d = z + (rz_new / torch.where(rz != 0, rz, 1.0))[..., None, None] * d
            rz = rz_new
        # Armijo backtracking, per fit (the float tolerance: near the minimum f changes below its resolution)
        slope = dot(g, x)
        step = (~done).to(dt)
        for _ in range(40):
            Wn = W + step[..., None, None] * x
            fn, Pn = objective(forward(Wn, Xb), Wn)
            bad = ~done & (fn > fval + 1e-4 * step * slope + 16 * eps * fval.abs())
            if not bool(bad.any()):
                break
            step = torch.where(bad, 0.5 * step, step)
        W, P, fval = Wn, Pn, fn
    W_out[idx] = W
    return W_out, n_iter, gmax_out, tol


def fit_logistic(X: torch.Tensor, y: torch.Tensor, weights: torch.Tensor, *, n_classes: int, C: float = 1.0,
                 tol: float = 1e-4, max_iter: int = 100) -> LogisticFit:
    """Fit one L2-penalised logistic regression per training set and time point, all in one batched solve.

    The minimiser of scikit-learn's ``LogisticRegression(C=C)`` objective (its lbfgs, newton-cg and
    newton-cholesky solvers minimise the same one): ``sum_i w_i loss_i + ||W||^2 / (2 C)`` with the binomial
    loss for two classes and the multinomial loss (one weight row per class) otherwise, the intercept
    unpenalised. Solved by truncated Newton (preconditioned conjugate gradients, Armijo steps) until
    every entry of the gradient of ``objective / sum(w)`` is at most ``tol`` in absolute value, as
    scikit-learn's ``tol``.

    Parameters
    ----------
    X : tensor, shape (T, n, p)
        Centred over samples.
    y : int64 tensor, shape (n,)
        Class codes ``0 .. n_classes - 1``.
    weights : tensor, shape (n_fits, n)
        Sample weights of each fit, 0 outside its training set (the float training masks; times the class
        weights for ``class_weight``).
    n_classes : int
    C : float
        Inverse penalty, as scikit-learn's.
    tol : float
        Bound on the absolute gradient of the scaled objective (raised to ``64 * eps * max|X|`` where it is
        below what the dtype resolves: use float64 for tighter fits).
    max_iter : int
        Newton iterations at most (each solves the Newton system approximately, by conjugate gradients); fits
        that did not reach ``tol`` are flagged in ``converged``.

    Returns
    -------
    LogisticFit

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> X = torch.randn(3, 60, 4, dtype=torch.float64, generator=g); X -= X.mean(1, keepdim=True)
    >>> y = torch.arange(60) % 2
    >>> X[:, y == 1, 0] += 1.0
    >>> fit = fit_logistic(X, y, torch.ones(1, 60, dtype=torch.float64), n_classes=2)
    >>> fit.models.coef.shape, bool(fit.converged.all())
    (torch.Size([1, 3, 4, 1]), True)
    """
    if X.ndim != 3:
        raise ValueError(f"X must be (T, n, p), got shape {tuple(X.shape)}")
    T, n, p = X.shape
    if weights.ndim != 2 or weights.shape[1] != n:
        raise ValueError(f"weights must be (n_fits, {n}), got shape {tuple(weights.shape)}")
    if y.shape != (n,):
        raise ValueError(f"y must hold one class code per sample ({n}), got shape {tuple(y.shape)}")
    if int(n_classes) < 2:
        raise ValueError(f"n_classes must be >= 2, got {n_classes}")
    C = float(C)
    if not (C > 0 and C < float("inf")):
        raise ValueError(f"C must be a positive finite number, got {C}; for no penalty use a large C (e.g. 1e6)")
    if not float(tol) > 0:
        raise ValueError(f"tol must be > 0, got {tol}")
    if int(max_iter) < 1:
        raise ValueError(f"max_iter must be >= 1, got {max_iter}")
    F = weights.shape[0]
    k = 1 if n_classes == 2 else int(n_classes)
    w = weights.to(dtype=X.dtype, device=X.device)
    if bool((w.sum(1) <= 0).any()):
        raise ValueError("every fit needs training samples of positive weight; found a fit whose weights sum to 0")
    y = y.to(device=X.device, dtype=torch.long)
    per_time = X.element_size() * (2 * n * (p + 1) + 12 * n * F * k + 2 * min(n, p) ** 2 + 8 * F * k * (p + 1))
    chunk = _time_chunk(T, per_time)
    workers = 1
    if X.device.type == "cpu":
        # chunks of a few MB on single-threaded workers: every op is short, and two OpenMP threads that
        # synchronise after each of them lose to the scheduler on shared cores; independent chunks do not wait
        workers = torch.get_num_threads()
        chunk = min(chunk, max(8, -(-T // (4 * workers))), _CPU_CHUNK_TIMES)
    starts = list(range(0, T, chunk))

    def run(start):
        sl = slice(start, min(T, start + chunk))
        return _logistic_chunk(X[sl], y, w, 1.0 / C, int(n_classes), float(tol), int(max_iter))

    with cpu_threads(1, X.device) if workers > 1 else nullcontext():
        results = side_by_side(run, starts, workers, progress=False)
    W = torch.cat([r[0] for r in results])
    n_iter = torch.cat([r[1] for r in results])
    gmax = torch.cat([r[2] for r in results])
    conv = torch.cat([r[2] <= r[3] for r in results])
    models = LinearModels(W[..., :p].permute(1, 0, 3, 2).contiguous(), W[..., p].transpose(0, 1).contiguous())
    return LogisticFit(models, n_iter.T.contiguous(), gmax.T.contiguous(), conv.T.contiguous())


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
