"""Kernel analysis (Montavon, Braun & Mueller 2011, JMLR 12: "Kernel analysis of deep networks"), in the held-out
form of Cadieu et al. (2014, PLoS Comput Biol; the "Neural Representation Benchmark").

What is implemented, exactly. For a representation ``X`` (stimuli x units) and labels ``Y`` (one-hot classes
or continuous targets), in every cross-validation fold:

1. The kernel on the training stimuli, ``k(x, x') = exp(-|x - x'|^2 / (2 sigma^2))`` (``rbf``) or ``x . x'``
   (``linear``: ordinary PCA), is centred in feature space and eigendecomposed, ``K_c = V diag(lambda) V^T``
   (eigenvalues descending). Components with ``lambda <= 1e-10 lambda_1`` (float64; ``1e-5`` in float32) count
   as absent: they add nothing to the fit.
2. The readout with ``d`` components is the least-squares fit (with intercept) of the training labels on the
   first ``d`` kernel principal components, i.e. the projection ``Y_hat = mean(Y) + V_d V_d^T (Y - mean(Y))`` of
   Montavon et al.; held-out stimuli are projected with the training centring (``K_test,c V_d / lambda_d``),
   exactly as ``sklearn.decomposition.KernelPCA(n_components=d).transform`` followed by
   ``sklearn.linear_model.LinearRegression``.
3. ``sigma``: by default, for every ``d`` separately, the value of a grid (the median pairwise distance of the
   training stimuli times ``2**[-2, -1.5, ..., 2]``) with the smallest leave-one-out squared error of that
   readout on the training stimuli (the closed form ``r_i / (1 - h_ii)`` of a linear smoother, with the
   components held fixed), as Montavon et al. choose the kernel scale per ``d`` by leave-one-out; or a fixed
   value / your own grid.
4. The held-out error at each ``d``: for classes, the error rate of the arg-max of the one-hot readout
   (``metric="error_rate"``) or the normalised squared error; for continuous labels the normalised squared
   error ``sum (y - y_hat)^2 / sum (y - mean(y_train))^2``. Errors are pooled over folds (summed numerators
   over summed denominators).

The index is the area under the error curve over ``d = 1 .. D``, with the curve clipped to [0, 1] (a readout
worse than chance counts as chance) and ``d`` mapped to [0, 1] on a log axis (``log d / log D``, as the curves
are drawn in both papers) or a linear one, so it lies in [0, 1]: low for a representation whose first few
kernel components already carry the labels. Compare areas only at equal ``D`` (``n_components``).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
import xarray as xr

from neurobridge.core import SchemaError, check_finite, cpu_threads

from ._rdm import _as_t, _lead_coords
from ._similarity import _patterns

__all__ = ["kernel_analysis", "KERNEL_ANALYSIS_KERNELS"]

KERNEL_ANALYSIS_KERNELS = ("rbf", "linear")
"""Kernels of :func:`kernel_analysis`: Gaussian (RBF) and linear (kernel PCA = PCA)."""

_SIGMA_FACTORS = 2.0 ** np.arange(-2.0, 2.01, 0.5)

_SMALL_KERNEL = 1 << 20
"""Training kernels with fewer entries than this (about 1000 stimuli) are decomposed on one CPU thread: the
small eigensolvers and element-wise ops lose more to thread synchronisation than they gain (10x on busy cores)."""


# ------------------------------------------------------------------------------------------ numerics
def _sq_dists(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return ((x * x).sum(-1)[:, None] + (y * y).sum(-1)[None, :] - 2 * x @ y.T).clamp_min(0)


def _median_distance(x: torch.Tensor) -> float:
    d2 = _sq_dists(x, x)
    i, j = torch.triu_indices(len(x), len(x), offset=1, device=x.device)
    return float(torch.sqrt(d2[i, j]).median())


def _fold_curves(xtr, xte, ytr, yte, codes_te, *, kernel: str, sigmas: Sequence[float], n_comp: int,
                 classify: bool, metric: str):
    """Per-d held-out error parts (numerator, denominator) at the sigma chosen per d by training LOO."""
    n = len(xtr)
    ybar = ytr.mean(0)
    yc = ytr - ybar
    tol = 1e-10 if xtr.dtype == torch.float64 else 1e-5
    best_loo = None
    if kernel == "rbf":
        d2tr, d2te = _sq_dists(xtr, xtr), _sq_dists(xte, xtr)
    for s in (sigmas if kernel == "rbf" else [math.nan]):
        if kernel == "rbf":
            ktr, kte = torch.exp(-d2tr / (2 * s * s)), torch.exp(-d2te / (2 * s * s))
        else:
            ktr, kte = xtr @ xtr.T, xte @ xtr.T
        col = ktr.mean(0)
        grand = col.mean()
        kc = ktr - col[None, :] - col[:, None] + grand
        kc = (kc + kc.T) / 2
        ktec = kte - col[None, :] - kte.mean(1, keepdim=True) + grand
        lam, vec = torch.linalg.eigh(kc)
        lam, vec = lam.flip(0)[:n_comp], vec.flip(1)[:, :n_comp]
        keep = lam > tol * lam[0].clamp_min(torch.finfo(lam.dtype).tiny)
        vec = vec * keep
        proj = vec.T @ yc  # (D, C)
        # training leave-one-out (components fixed): residuals r / (1 - h)
        fitted = torch.cumsum(vec[:, :, None] * proj[None], dim=1)  # (n, D, C)
        h = 1.0 / n + torch.cumsum(vec * vec, dim=1)
        gap = 1 - h
        loo = ((yc[:, None, :] - fitted) / gap.clamp_min(1e-12)[..., None]).pow(2).sum((0, 2)) / yc.pow(2).sum()
        loo = torch.where((gap > 1e-8).all(0), loo, torch.full_like(loo, math.inf))
        # held-out predictions for every d
        a = ktec @ (vec / torch.where(keep, lam, torch.ones_like(lam)))  # (n_te, D)
        pred = ybar + torch.cumsum(a[:, :, None] * proj[None], dim=1)  # (n_te, D, C)
        if classify and metric == "error_rate":
            num = (pred.argmax(-1) != codes_te[:, None]).sum(0).to(pred.dtype)
            den = torch.full_like(num, float(len(xte)))
        else:
            num = (yte[:, None, :] - pred).pow(2).sum((0, 2))
            den = torch.full_like(num, float((yte - ybar).pow(2).sum()))
        if best_loo is None:
            best_loo, best_num, best_den = loo, num, den
            best_sigma = torch.full_like(loo, s)
        else:
            better = loo < best_loo
            best_loo = torch.where(better, loo, best_loo)
            best_num, best_den = torch.where(better, num, best_num), torch.where(better, den, best_den)
            best_sigma = torch.where(better, torch.full_like(loo, s), best_sigma)
    return best_num, best_den, best_sigma


def _area(err: np.ndarray, scale: str) -> float:
    e = np.clip(err, 0.0, 1.0)
    d = np.arange(1, len(e) + 1, dtype=float)
    if len(e) == 1:
        return float(e[0])
    x = np.log(d) / np.log(d[-1]) if scale == "log" else (d - 1) / (d[-1] - 1)
    return float(np.sum((e[1:] + e[:-1]) / 2 * np.diff(x)))


# ------------------------------------------------------------------------------------------ inputs
def _labels(labels, da: xr.DataArray, ids: np.ndarray) -> np.ndarray:
    if isinstance(labels, str):
        if labels not in da.coords:
            raise SchemaError(f"kernel_analysis: labels={labels!r} is not a coordinate of the representation "
                              f"(coords: {list(da.coords)}); pass a stimulus coordinate name or an array")
        lab = da[labels]
        if lab.dims != ("stimulus",):
            raise SchemaError(f"kernel_analysis: coordinate {labels!r} has dims {lab.dims}, expected ('stimulus',); "
                              "average trials first (nb.core.average_repetitions) or pass an array")
        return np.asarray(lab.values)
    if isinstance(labels, xr.DataArray):
        if "stimulus" not in labels.dims:
            raise SchemaError(f"kernel_analysis: labels as a DataArray need a 'stimulus' dim, found {labels.dims}")
        missing = sorted(set(ids.tolist()) - set(np.asarray(labels["stimulus"].values).tolist()))[:5]
        if missing:
            raise SchemaError(f"kernel_analysis: labels lack stimuli of the representation, e.g. {missing}")
        lab = labels.sel(stimulus=ids)
        return np.asarray(lab.transpose("stimulus", ...).values)
    arr = np.asarray(labels)
    if arr.ndim == 0 or arr.shape[0] != len(ids):
        raise SchemaError(f"kernel_analysis: expected one label per stimulus ({len(ids)}), got shape {arr.shape}")
    return arr


def _folds(cv, n: int, codes: np.ndarray | None, random_state) -> list[tuple[np.ndarray, np.ndarray]]:
    from neurobridge.encoding import make_folds

    if isinstance(cv, (int, np.integer)) and not isinstance(cv, bool):
        from sklearn.model_selection import KFold, StratifiedKFold

        k = int(cv)
        if k < 2:
            raise ValueError(f"kernel_analysis: cv must be >= 2 folds, got cv={k}")
        if codes is not None:
            least = int(np.bincount(codes).min())
            if least < k:
                raise ValueError(f"kernel_analysis: the rarest class has {least} stimuli, fewer than cv={k} folds; "
                                 "use fewer folds or drop that class")
            split = StratifiedKFold(k, shuffle=True, random_state=random_state).split(np.zeros(n), codes)
        else:
            if n < k:
                raise ValueError(f"kernel_analysis: {n} stimuli for cv={k} folds; use fewer folds")
            split = KFold(k, shuffle=True, random_state=random_state).split(np.zeros(n))
        return make_folds(n, list(split))
    return make_folds(n, cv)


def _run(t_all, ty, tcodes, folds, lead_shape, err, err_fold, sig, auc, *, kernel, grid, d_max, classify, metric,
         auc_scale) -> None:
    """Fill the result arrays, one leading index (e.g. layer) and fold at a time."""
    for idx in np.ndindex(*lead_shape):
        xt = t_all[idx]
        nums, dens = [], []
        for f, (tr, te) in enumerate(folds):
            tr_t = torch.as_tensor(tr, device=xt.device)
            te_t = torch.as_tensor(te, device=xt.device)
            xtr, xte = xt[tr_t], xt[te_t]
            if kernel == "rbf":
                sigmas = (_median_distance(xtr) * _SIGMA_FACTORS).tolist() if grid is None else grid.tolist()
                if not all(s > 0 for s in sigmas):
                    raise ValueError("kernel_analysis: the training stimuli of a fold have identical patterns; "
                                     "pass sigma=... or remove duplicate stimuli")
            else:
                sigmas = []
            num, den, s = _fold_curves(xtr, xte, ty[tr_t], ty[te_t], tcodes[te_t], kernel=kernel, sigmas=sigmas,
                                       n_comp=d_max, classify=classify, metric=metric)
            num, den = num.double().cpu().numpy(), den.double().cpu().numpy()
            nums.append(num)
            dens.append(den)
            err_fold[(*idx, f)] = num / np.where(den > 0, den, np.nan)
            sig[(*idx, f)] = s.double().cpu().numpy()
        err[idx] = np.sum(nums, 0) / np.sum(dens, 0)
        auc[idx] = _area(err[idx], auc_scale)


# ---------------------------------------------------------------------------------------- labelled
def kernel_analysis(representation: xr.DataArray, labels, *, kernel: str = "rbf",
                    sigma: float | Sequence[float] | None = None, n_components: int | None = None, cv=5,
                    task: str = "auto", metric: str = "auto", auc_scale: str = "log",
                    feature_dim: str | Sequence[str] | None = None, random_state: int | None = 0,
                    dtype: str | torch.dtype | None = None,
                    device: str | torch.device | None = None) -> xr.Dataset:
    """Kernel analysis curve (held-out error vs number of kernel principal components) and its area.

    See the module docstring for the exact procedure (Montavon et al. 2011; held-out, as Cadieu et al. 2014).

    Parameters
    ----------
    representation : xr.DataArray
        Patterns ``(stimulus, unit)`` (any feature dim: channel, voxel, unit, latent; trials with a stimulus
        coordinate are averaged); other dims (e.g. ``layer``) are analysed one by one and kept.
    labels : str, array or xr.DataArray
        A coordinate name on ``stimulus``, one label per stimulus (classes, or continuous targets ``(n,)`` /
        ``(n, k)``), or a DataArray over ``stimulus`` (aligned by id).
    kernel : str
        ``rbf`` (default) or ``linear``.
    sigma : float or sequence of float, optional
        RBF width: ``None`` picks it per ``d`` by training leave-one-out from the median pairwise distance times
        ``2**[-2 .. 2]`` (9 values); a float fixes it; a sequence is the grid searched. Ignored for ``linear``.
    n_components : int, optional
        Largest ``d`` (default ``min(100, smallest training fold - 1)``).
    cv : int, splitter or list of (train, test) index pairs
        An int gives shuffled (``random_state``) K-fold, stratified for classes.
    task : str
        ``auto`` (floating labels: ``regression``; anything else: ``classification``), ``classification`` or
        ``regression``.
    metric : str
        ``auto`` (``error_rate`` for classes, ``mse`` for continuous labels), ``error_rate`` or ``mse``
        (normalised squared error; for classes on the one-hot targets).
    auc_scale : str
        ``log`` (default) or ``linear`` axis of ``d`` for the area.
    feature_dim : str or sequence, optional
        The feature dim(s) (default the first of channel, voxel, unit, latent, feature).

    Returns
    -------
    xr.Dataset
        ``error`` (..., component): pooled held-out error; ``error_fold`` (..., fold, component);
        ``sigma`` (..., fold, component): the width used (NaN for ``linear``); ``auc`` (...): the area in [0, 1].
        ``component`` runs ``1 .. D``.

    Examples
    --------
    >>> import numpy as np, neurobridge as nb
    >>> rng = np.random.default_rng(0)
    >>> z = rng.standard_normal((60, 2))
    >>> acts = nb.core.activations(np.c_[z, 0.1 * rng.standard_normal((60, 8))], stimulus=range(60))
    >>> ka = nb.rsa.kernel_analysis(acts, np.where(z[:, 0] > 0, "pos", "neg"), n_components=10)
    >>> ka["error"].dims, bool(ka["auc"] < 0.3)
    (('component',), True)
    """
    if kernel not in KERNEL_ANALYSIS_KERNELS:
        raise ValueError(f"kernel_analysis: unknown kernel {kernel!r}; expected one of {list(KERNEL_ANALYSIS_KERNELS)}")
    if task not in ("auto", "classification", "regression"):
        raise ValueError(f"kernel_analysis: task must be 'auto', 'classification' or 'regression', got {task!r}")
    if metric not in ("auto", "error_rate", "mse"):
        raise ValueError(f"kernel_analysis: metric must be 'auto', 'error_rate' or 'mse', got {metric!r}")
    if auc_scale not in ("log", "linear"):
        raise ValueError(f"kernel_analysis: auc_scale must be 'log' or 'linear', got {auc_scale!r}")
    if not isinstance(representation, xr.DataArray):
        raise SchemaError(f"kernel_analysis: representation must be an xr.DataArray with a 'stimulus' dim and a "
                          f"feature dim, got {type(representation).__name__}; wrap arrays with "
                          "nb.core.activations(array, stimulus=ids)")
    x, lead, ids = _patterns(representation, "kernel_analysis: representation", feature_dim, "stimulus")
    n = len(ids)
    if n < 4:
        raise SchemaError(f"kernel_analysis: {n} stimuli; need at least 4")
    y_raw = _labels(labels, representation, ids)
    if task == "auto":
        task = "regression" if np.issubdtype(y_raw.dtype, np.floating) else "classification"
    classify = task == "classification"
    metric = ("error_rate" if classify else "mse") if metric == "auto" else metric
    if metric == "error_rate" and not classify:
        raise ValueError("kernel_analysis: metric='error_rate' needs classes; use metric='mse' for continuous labels")
    if classify:
        if y_raw.ndim != 1:
            raise SchemaError(f"kernel_analysis: class labels must be one per stimulus (1-d), got shape {y_raw.shape}")
        codes, classes = pd.factorize(pd.Series(y_raw))
        if (codes < 0).any():
            raise ValueError("kernel_analysis: some class labels are missing (NaN/None); drop those stimuli first")
        if len(classes) < 2:
            raise ValueError(f"kernel_analysis: the labels hold one class ({classes[0]!r}); need at least 2")
        y = np.eye(len(classes))[codes]
    else:
        try:
            y = np.asarray(y_raw, dtype=float)
        except (TypeError, ValueError) as err:
            raise TypeError(f"kernel_analysis: task='regression' needs numeric labels, got dtype {y_raw.dtype}") from err
        check_finite(y, "kernel_analysis: labels", fix="drop the stimuli without a label first")
        y = y.reshape(n, -1)
        if np.all(y.std(0) == 0):
            raise ValueError("kernel_analysis: the labels are constant; nothing to predict")
        codes = None
    folds = _folds(cv, n, codes, random_state)
    n_min = min(len(tr) for tr, _ in folds)
    d_max = min(100, n_min - 1) if n_components is None else int(n_components)
    if not 1 <= d_max <= n_min - 1:
        raise ValueError(f"kernel_analysis: n_components={n_components} must lie in [1, {n_min - 1}] (the smallest "
                         f"training fold has {n_min} stimuli)")
    grid = None
    if kernel == "rbf" and sigma is not None:
        grid = np.atleast_1d(np.asarray(sigma, dtype=float))
        if grid.ndim != 1 or grid.size == 0 or not np.all(np.isfinite(grid)) or np.any(grid <= 0):
            raise ValueError(f"kernel_analysis: sigma must be a positive number or a sequence of them, got {sigma!r}")
    t_all = _as_t(x, dtype=dtype, device=device)
    check_finite(t_all, "kernel_analysis: representation", fix="drop or impute the affected units first")
    ty = torch.as_tensor(y, dtype=t_all.dtype, device=t_all.device)
    tcodes = torch.as_tensor(codes if codes is not None else np.zeros(n, dtype=np.int64), device=t_all.device)
    lead_shape = t_all.shape[:-2]
    k_folds = len(folds)
    err_fold = np.zeros((*lead_shape, k_folds, d_max))
    sig = np.full((*lead_shape, k_folds, d_max), np.nan)
    err = np.zeros((*lead_shape, d_max))
    auc = np.zeros(lead_shape)
    small = n_min * n_min < _SMALL_KERNEL
    with cpu_threads(1, t_all.device) if small else contextlib.nullcontext():
        _run(t_all, ty, tcodes, folds, lead_shape, err, err_fold, sig, auc, kernel=kernel, grid=grid, d_max=d_max,
             classify=classify, metric=metric, auc_scale=auc_scale)
    coords = _lead_coords(x, lead)
    comp = np.arange(1, d_max + 1)
    ds = xr.Dataset(
        {"error": ((*lead, "component"), err), "error_fold": ((*lead, "fold", "component"), err_fold),
         "sigma": ((*lead, "fold", "component"), sig), "auc": (tuple(lead), auc)},
        coords={**coords, "component": comp, "fold": np.arange(k_folds)},
        attrs={"kernel": kernel, "task": task, "metric": metric, "auc_scale": auc_scale, "n_stimuli": n,
               "method": "kernel analysis (Montavon et al. 2011), held-out (Cadieu et al. 2014)"})
    return ds
