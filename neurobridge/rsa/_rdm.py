"""RDM computation: pure torch kernels (batched over leading axes) and the labelled ``nb.rsa.rdm``.

Conventions follow rsatoolbox exactly, so numbers agree with ``rsatoolbox.rdm.calc_rdm``:
``euclidean`` is the squared Euclidean distance divided by the number of features, ``mahalanobis`` and
``crossnobis`` likewise (with a noise precision), ``correlation`` is ``1 - r``, ``poisson`` the
symmetrised KL divergence of Poisson rates (with rsatoolbox's prior), divided by the number of features.
``cosine`` is ``1 - cos`` (as ``scipy.spatial.distance.pdist(..., "cosine")``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Hashable, Sequence

import numpy as np
import pandas as pd
import torch
import xarray as xr

from neurobridge.core import SchemaError, all_finite, as_tensor, check_finite, validate
from neurobridge.core._schemas import ATTR_TYPES

from ._compare import n_from_pairs

__all__ = [
    "RDM_METRICS", "NOISE_METHODS", "rdm", "rdm_tensor", "crossnobis_tensor", "noise_covariance_tensor",
    "noise_covariance", "to_condensed", "from_condensed", "condensed_tensor", "square_tensor",
]

logger = logging.getLogger("neurobridge")

RDM_METRICS = ("correlation", "euclidean", "cosine", "mahalanobis", "crossnobis", "poisson")
"""Dissimilarity measures of :func:`rdm`."""

NOISE_METHODS = ("full", "diag", "shrinkage_eye", "shrinkage_diag")
"""Noise covariance estimators (rsatoolbox names): sample covariance, its diagonal, Ledoit-Wolf shrinkage
towards a multiple of the identity, and Schaefer-Strimmer shrinkage towards the diagonal."""

_FEATURE_DIMS = ("channel", "voxel", "unit", "latent", "feature")


# ------------------------------------------------------------------------------------ condensed form
def condensed_tensor(square: torch.Tensor) -> torch.Tensor:
    """Upper triangles (i < j, row-major: ``scipy.spatial.distance.pdist`` order) of (..., n, n) matrices.

    Examples
    --------
    >>> condensed_tensor(torch.tensor([[0., 1., 2.], [1., 0., 3.], [2., 3., 0.]])).tolist()
    [1.0, 2.0, 3.0]
    """
    n = square.shape[-1]
    i, j = torch.triu_indices(n, n, offset=1, device=square.device)
    return square.reshape(*square.shape[:-2], n * n).index_select(-1, i * n + j)


def square_tensor(vectors: torch.Tensor, diagonal: float = 0.0) -> torch.Tensor:
    """Symmetric (..., n, n) matrices from condensed (..., n_pairs) vectors (inverse of :func:`condensed_tensor`).

    Examples
    --------
    >>> square_tensor(torch.tensor([1., 2., 3.]))[1].tolist()
    [1.0, 0.0, 3.0]
    """
    n = n_from_pairs(vectors.shape[-1])
    i, j = torch.triu_indices(n, n, offset=1, device=vectors.device)
    out = torch.full((*vectors.shape[:-1], n, n), float(diagonal), dtype=vectors.dtype, device=vectors.device)
    out[..., i, j] = vectors
    out[..., j, i] = vectors
    return out


# ---------------------------------------------------------------------------------- torch kernels
_GRAM_CHUNK_BYTES = 64 * 2**20
"""Square scratch of the condensed CPU path of :func:`rdm_tensor`: the GEMMs run this many bytes of inner
products (at least one matrix) at a time, each block turned into condensed vectors before the next."""


_COMPILED_MIN_ENTRIES = 1 << 20
"""Fewer square entries than this (e.g. one 1000 x 1000 RDM) and the torch expressions run on the CPU too:
they take milliseconds there, less than importing numba and loading the compiled kernel (~0.5 s, once per
process)."""


def _compiled_path(*ts, entries: int) -> bool:
    """Whether the CPU finishing kernel (``_rank_kernels.distances_from_gram``) takes these tensors: CPU,
    float32/float64, no autograd, at least :data:`_COMPILED_MIN_ENTRIES` square entries. Otherwise the torch
    expressions run (GPU, gradients, other dtypes, small RDMs)."""
    return entries >= _COMPILED_MIN_ENTRIES and all(
        t.device.type == "cpu" and t.dtype in (torch.float32, torch.float64)
        and not (t.requires_grad and torch.is_grad_enabled()) for t in ts)


def _scale_array(n_feat, batch: tuple[int, ...], kind: str) -> np.ndarray:
    """``1 / n_feat`` per flattened batch element (ones for ``one_minus``)."""
    if kind == "one_minus":
        return np.ones(max(1, int(np.prod(batch))))
    if isinstance(n_feat, torch.Tensor):
        nf = n_feat.detach().to("cpu", torch.float64).reshape(n_feat.shape[:-2]).expand(batch).reshape(-1).numpy()
        return 1.0 / nf
    return np.full(max(1, int(np.prod(batch))), 1.0 / float(n_feat))


def _gram_distances(a: torch.Tensor, b: torch.Tensor, kind: str, n_feat, condensed: bool,
                    finite: list | None = None) -> torch.Tensor:
    """Distances from the inner products ``a @ b^T`` (..., n, n), see :func:`_from_kernel`.

    On the CPU (:func:`_compiled_path`) one batched GEMM writes straight into the result buffer and the
    compiled pass turns it into distances in place (square), or the GEMMs fill a reused scratch block of
    :data:`_GRAM_CHUNK_BYTES` at a time that the pass condenses into the result: no (..., n, n) temporaries.
    ``finite`` (a list) receives whether every distance is finite, so callers need no second pass.
    """
    batch = tuple(torch.broadcast_shapes(a.shape[:-2], b.shape[:-2]))
    n, p = a.shape[-2], a.shape[-1]
    if not _compiled_path(a, b, entries=math.prod(batch) * n * n):
        out = _from_kernel(a @ b.transpose(-1, -2), kind, n_feat, condensed)
        if finite is not None:
            finite.append(None)
        return out
    from ._rank_kernels import distances_from_gram

    a3 = a.expand(*batch, n, p).reshape(-1, n, p)
    b3 = b.expand(*batch, n, p).reshape(-1, n, p).transpose(-1, -2)
    n_b = a3.shape[0]
    scale = _scale_array(n_feat, batch, kind)
    np_dtype = np.float32 if a.dtype == torch.float32 else np.float64
    chunk = max(1, min(n_b, _GRAM_CHUNK_BYTES // max(1, n * n * a.element_size()))) if condensed else max(1, n_b)
    n_pairs = n * (n - 1) // 2
    out = np.empty((n_b, n_pairs) if condensed else (n_b, n, n), np_dtype)
    scratch = torch.empty((chunk, n, n), dtype=a.dtype) if condensed else None
    ok = True
    for c0 in range(0, n_b, chunk):
        c1 = min(n_b, c0 + chunk)
        k = scratch[: c1 - c0] if condensed else torch.from_numpy(out[c0:c1])
        torch.bmm(a3[c0:c1], b3[c0:c1], out=k)
        ok &= distances_from_gram(k.numpy(), scale[c0:c1], kind == "one_minus", out[c0:c1] if condensed else None)
    if finite is not None:
        finite.append(ok)
    return torch.from_numpy(out).reshape(*batch, *out.shape[1:])


def _from_kernel(k: torch.Tensor, kind: str, n_feat, condensed: bool) -> torch.Tensor:
    """Distances from inner products ``k`` (..., n, n), which may be overwritten.

    ``kind``: ``"one_minus"`` (``1 - (k_ij + k_ji) / 2``), ``"sym"`` (``k_ii + k_jj - 2 k_ij``) or ``"asym"``
    (``k_ii + k_jj - k_ij - k_ji``), divided by ``n_feat`` (a number or a (..., 1, 1) tensor). The
    condensed form is taken from the upper triangle without building the square result.
    """
    n = k.shape[-1]
    if _compiled_path(k, entries=k.numel()) and not (
            isinstance(n_feat, torch.Tensor) and not _compiled_path(n_feat, entries=k.numel())):
        from ._rank_kernels import distances_from_gram

        batch = tuple(k.shape[:-2])
        k3 = k.reshape(-1, n, n).contiguous()
        scale = _scale_array(n_feat, batch, kind)
        if condensed:
            out = np.empty((k3.shape[0], n * (n - 1) // 2), np.float32 if k.dtype == torch.float32 else np.float64)
            distances_from_gram(k3.numpy(), scale, kind == "one_minus", out)
            return torch.from_numpy(out).reshape(*batch, out.shape[-1])
        distances_from_gram(k3.numpy(), scale, kind == "one_minus")
        return k3.reshape(k.shape)
    if condensed:
        i, j = torch.triu_indices(n, n, offset=1, device=k.device)
        kf = k.reshape(*k.shape[:-2], n * n)
        kij = kf.index_select(-1, i * n + j)
        if kind == "one_minus":
            return kij.add_(kf.index_select(-1, j * n + i)).mul_(-0.5).add_(1.0)
        d = torch.diagonal(k, dim1=-2, dim2=-1).contiguous()
        out = d.index_select(-1, i).add_(d.index_select(-1, j))
        out.sub_(kij)
        out.sub_(kij if kind == "sym" else kf.index_select(-1, j * n + i))
        return out.div_(n_feat[..., 0] if isinstance(n_feat, torch.Tensor) else n_feat)
    if kind == "one_minus":  # the same float operations as the condensed form and the compiled pass
        d = (k + k.transpose(-1, -2)).mul_(-0.5).add_(1.0)
        d.diagonal(dim1=-2, dim2=-1).zero_()
        return d
    d = torch.diagonal(k, dim1=-2, dim2=-1)
    return _finish((d[..., :, None] + d[..., None, :] - k - k.transpose(-1, -2)) / n_feat)


def _apply_precision(x: torch.Tensor, precision: torch.Tensor | None) -> torch.Tensor:
    """``x @ P``; a diagonal precision is stored as a row, shape (..., 1, p)."""
    if precision is None:
        return x
    if precision.ndim == 1:
        precision = precision[None, :]
    if precision.shape[-2] == 1:
        return x * precision
    return x @ precision


def _finish(d: torch.Tensor) -> torch.Tensor:
    d = 0.5 * (d + d.transpose(-1, -2))
    d.diagonal(dim1=-2, dim2=-1).zero_()
    return d


def rdm_tensor(
    x: torch.Tensor, metric: str = "correlation", *, precision: torch.Tensor | None = None,
    valid: torch.Tensor | None = None, remove_mean: bool = False, prior_lambda: float = 1.0,
    prior_weight: float = 0.1, condensed: bool = False,
) -> torch.Tensor:
    """Square RDMs of patterns, batched over leading axes (one batched GEMM).

    On the CPU (float32/float64, no autograd) the GEMM writes straight into the result and a compiled pass
    forms the symmetric distances in place (``condensed``: a few matrices of scratch at a time, condensed
    by the same pass); elsewhere (GPU, gradients) torch does every step.

    Parameters
    ----------
    x : torch.Tensor, shape (..., n_stimuli, n_features)
    metric : {"correlation", "euclidean", "cosine", "mahalanobis", "poisson"}
        ``"crossnobis"`` needs folds: use :func:`crossnobis_tensor`.
    precision : torch.Tensor, shape (..., n_features, n_features), optional
        Noise precision for ``mahalanobis``; a diagonal precision as (n_features,) or (..., 1, n_features); ``None`` is the identity
        (then ``mahalanobis`` equals ``euclidean``, as in rsatoolbox).
    valid : torch.Tensor of bool, shape (..., n_features), optional
        Which features are real (the rest are padding and must be zero); used by searchlights.
    remove_mean : bool
        Subtract each pattern's mean over features first (euclidean, mahalanobis).
    prior_lambda, prior_weight : float
        Prior of the Poisson rate estimate (rsatoolbox): ``(x + lambda * w) / (1 + w)``.
    condensed : bool
        Return the condensed upper triangles (..., n_pairs) instead (less memory, no symmetrisation).

    Returns
    -------
    torch.Tensor, shape (..., n_stimuli, n_stimuli) or (..., n_pairs)
        Symmetric with an exact zero diagonal.

    Examples
    --------
    >>> x = torch.tensor([[0., 0.], [1., 1.], [2., 0.]], dtype=torch.float64)
    >>> rdm_tensor(x, "euclidean")[0].round(decimals=12).tolist()
    [0.0, 1.0, 2.0]
    """
    return _rdm_tensor(x, metric, precision=precision, valid=valid, remove_mean=remove_mean,
                       prior_lambda=prior_lambda, prior_weight=prior_weight, condensed=condensed)


def _rdm_tensor(x, metric, *, precision=None, valid=None, remove_mean=False, prior_lambda=1.0, prior_weight=0.1,
                condensed=False, finite: list | None = None) -> torch.Tensor:
    """:func:`rdm_tensor`; ``finite`` (a list) receives whether every distance is finite (``None``: not
    known without a pass over the result)."""
    if metric not in RDM_METRICS or metric == "crossnobis":
        raise ValueError(f"rdm_tensor: unknown metric {metric!r}; expected one of "
                         f"{[m for m in RDM_METRICS if m != 'crossnobis']} (crossnobis: crossnobis_tensor)")
    if valid is not None:
        valid = valid.to(x.dtype)
        n_feat = valid.sum(-1)[..., None, None]
        x = x * valid[..., None, :]
    else:
        n_feat = x.shape[-1]
    if metric in ("correlation", "cosine"):
        if metric == "correlation":
            x = x - x.sum(-1, keepdim=True) / n_feat
            if valid is not None:
                x = x * valid[..., None, :]
        norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
        if bool((norm == 0).any()):
            raise ValueError(f"{metric} distance is undefined for a pattern with zero "
                             f"{'variance' if metric == 'correlation' else 'norm'} across features; "
                             "drop constant patterns or use metric='euclidean'")
        xn = x / norm
        return _gram_distances(xn, xn, "one_minus", n_feat, condensed, finite)
    if metric in ("euclidean", "mahalanobis"):
        if remove_mean:
            x = x - x.sum(-1, keepdim=True) / n_feat
            if valid is not None:
                x = x * valid[..., None, :]
        # distances ignore a vector shared by all patterns: without it, a large baseline (raw BOLD ~1000)
        # cancels catastrophically in k_ii + k_jj - 2 k_ij (float32 maps off by percent)
        x = x - x.mean(-2, keepdim=True)
        return _gram_distances(_apply_precision(x, precision), x, "sym", n_feat, condensed, finite)
    # poisson
    m = (x + prior_lambda * prior_weight) / (1 + prior_weight)
    if bool((m <= 0).any()):
        raise ValueError("metric='poisson' needs non-negative rates (spike counts or firing rates); found values "
                         f"below {-prior_lambda * prior_weight}")
    logm = torch.log(m)
    if valid is not None:
        m, logm = m * valid[..., None, :], logm * valid[..., None, :]
    return _gram_distances(m, logm, "asym", n_feat, condensed, finite)


def crossnobis_tensor(
    sums: torch.Tensor, counts: torch.Tensor, *, precision: torch.Tensor | None = None,
    valid: torch.Tensor | None = None, remove_mean: bool = False, condensed: bool = False,
) -> torch.Tensor:
    """Cross-validated (leave-one-fold-out) Mahalanobis RDMs, as ``rsatoolbox`` ``crossnobis``.

    For each fold ``f`` the training patterns are the means over all other folds and the test
    patterns the means within ``f``; ``d_ij = (a_i - a_j)^T P (b_i - b_j) / n_features``, averaged over folds.

    Parameters
    ----------
    sums : torch.Tensor, shape (..., n_folds, n_stimuli, n_features)
        Sum of the measurements of each stimulus within each fold.
    counts : torch.Tensor, shape (n_folds, n_stimuli)
        Number of measurements summed; every stimulus needs a measurement in at least two folds.
    precision : torch.Tensor, optional
        Noise precision (..., n_features, n_features), or its diagonal as (n_features,) or (..., 1,
        n_features); identity if ``None``.
    valid : torch.Tensor of bool, shape (..., n_features), optional
        Real (non-padding) features.
    remove_mean : bool
        Subtract each pattern's mean over features first.
    condensed : bool
        Return condensed upper triangles (..., n_pairs) instead.

    Returns
    -------
    torch.Tensor, shape (..., n_stimuli, n_stimuli) or (..., n_pairs)

    Examples
    --------
    >>> sums = torch.randn(4, 3, 5, dtype=torch.float64)  # 4 folds, 3 stimuli, 5 features
    >>> crossnobis_tensor(sums, torch.ones(4, 3)).shape
    torch.Size([3, 3])
    """
    counts = counts.to(sums.dtype)
    if counts.ndim != 2 or tuple(counts.shape) != tuple(sums.shape[-3:-1]):
        raise ValueError(f"counts must have shape (n_folds, n_stimuli) = {tuple(sums.shape[-3:-1])}, got {tuple(counts.shape)}")
    n_folds = counts.shape[0]
    if n_folds < 2:
        raise ValueError(f"crossnobis needs at least 2 cross-validation folds (e.g. runs), found {n_folds}")
    total_c = counts.sum(0)
    missing = (counts == 0) | (total_c - counts == 0)
    if bool(missing.any()):
        f, s = (int(v) for v in torch.nonzero(missing)[0])
        raise ValueError(f"crossnobis: stimulus #{s} has no measurement in fold #{f} (or only there); every stimulus "
                         "must be measured in every fold: drop it or the fold")
    if valid is not None:
        n_feat = valid.to(sums.dtype).sum(-1)[..., None, None]
        vm = valid.to(sums.dtype)[..., None, None, :]
    else:
        n_feat = sums.shape[-1]
        vm = None
    if remove_mean:  # row-centring commutes with the fold averaging below, so centre the sums
        denom = n_feat[..., None] if valid is not None else n_feat
        sums = sums - sums.sum(-1, keepdim=True) / denom
        if vm is not None:
            sums = sums * vm
    if precision is not None:
        precision = (precision[None, :] if precision.ndim == 1 else precision).unsqueeze(-3)
    # K_f = train_f P test_f^T with train_f = (T - S_f) / (c - c_f), test_f = S_f / c_f, T = sum_f S_f:
    # (T - S_f) P S_f^T = T W_f^T - S_f W_f^T with W_f = S_f P; no (F x n x p) train/test copies
    if bool((counts == counts[:1]).all()):
        # balanced: the count scalings do not depend on the fold, so sum_f K_f needs two GEMMs:
        # T P T^T - [S_1 .. S_F] P [S_1 .. S_F]^T (folds concatenated along features)
        st = sums.transpose(-3, -2)  # (..., n, F, p); a free view when built stimulus-major
        s_cat = st.reshape(*st.shape[:-2], n_folds * st.shape[-1])
        total = st.sum(-2)  # (..., n, p)
        if precision is None:
            w_cat, w_tot = s_cat, total
        else:
            w_cat = _apply_precision(st, precision).reshape(s_cat.shape)
            w_tot = _apply_precision(total, precision.squeeze(-3))
        k = torch.matmul(total, w_tot.transpose(-1, -2))
        k.sub_(torch.matmul(s_cat, w_cat.transpose(-1, -2)))
        c0 = counts[0]
        k.div_((total_c - c0)[:, None] * c0[None, :] * n_folds)
        return _from_kernel(k, "asym", n_feat, condensed)
    w = _apply_precision(sums, precision)
    total = sums.sum(-3, keepdim=True)
    k = torch.matmul(total, w.transpose(-1, -2))  # (..., F, n, n)
    k.sub_(torch.matmul(sums, w.transpose(-1, -2)))
    k.div_((total_c - counts)[..., :, None]).div_(counts[..., None, :])
    return _from_kernel(k.mean(-3), "asym", n_feat, condensed)


def _cov_from_demeaned(x: torch.Tensor, dof, method: str) -> torch.Tensor:
    """rsatoolbox's covariance estimators on demeaned rows x (..., m, p)."""
    m = x.shape[-2]
    p = x.shape[-1]
    if method == "full":
        return x.transpose(-1, -2) @ x / dof
    if method == "diag":
        return torch.diag_embed((x * x).sum(-2) / dof)
    s_sum = x.transpose(-1, -2) @ x
    x2 = x * x
    s2_sum = x2.transpose(-1, -2) @ x2
    eye = torch.eye(p, dtype=x.dtype, device=x.device)
    if method == "shrinkage_eye":
        s = s_sum / m
        b2 = (s2_sum / m - s * s).sum((-1, -2)) / m
        mu = torch.diagonal(s, dim1=-2, dim2=-1).sum(-1) / p
        d2 = ((s - mu[..., None, None] * eye) ** 2).sum((-1, -2))
        b2 = torch.minimum(d2, b2)
        shrunk = (b2 / d2 * mu)[..., None, None] * eye + ((d2 - b2) / d2)[..., None, None] * s
        return shrunk * m / dof
    if method == "shrinkage_diag":
        s = s_sum / dof
        var = torch.diagonal(s, dim1=-2, dim2=-1)
        std = torch.sqrt(var)
        s_mean = s_sum / std[..., None, :] / std[..., :, None] / (m - 1)
        s2_mean = s2_sum / var[..., None, :] / var[..., :, None] / (m - 1)
        var_hat = m / dof**2 * (s2_mean - s_mean**2)
        off = 1.0 - eye
        lamb = (var_hat * off).sum((-1, -2)) / ((s_mean**2) * off).sum((-1, -2))
        lamb = lamb.clamp(0.0, 1.0)
        return s * (eye + (1 - lamb)[..., None, None] * off)
    raise ValueError(f"unknown noise estimator {method!r}; expected one of {list(NOISE_METHODS)}")


def noise_covariance_tensor(residuals: torch.Tensor, method: str = "shrinkage_diag", dof: float | None = None,
                            *, demean: bool = True) -> torch.Tensor:
    """Noise covariance over features from residuals, as ``rsatoolbox.data.noise.cov_from_residuals``.

    Parameters
    ----------
    residuals : torch.Tensor, shape (..., n_residuals, n_features)
    method : {"full", "diag", "shrinkage_eye", "shrinkage_diag"}
        ``shrinkage_eye`` is Ledoit-Wolf shrinkage towards a multiple of the identity,
        ``shrinkage_diag`` Schaefer-Strimmer shrinkage towards the diagonal.
    dof : float, optional
        Degrees of freedom; default ``n_residuals - 1``.
    demean : bool
        Remove each feature's mean over residuals first (rsatoolbox does).

    Returns
    -------
    torch.Tensor, shape (..., n_features, n_features)

    Examples
    --------
    >>> noise_covariance_tensor(torch.randn(50, 3, dtype=torch.float64), "diag").shape
    torch.Size([3, 3])
    """
    if method not in NOISE_METHODS:
        raise ValueError(f"unknown noise estimator {method!r}; expected one of {list(NOISE_METHODS)}")
    m = residuals.shape[-2]
    if m < 2:
        raise ValueError(f"need at least 2 residual rows to estimate a noise covariance, got {m}")
    if demean:
        residuals = residuals - residuals.mean(-2, keepdim=True)
    return _cov_from_demeaned(residuals, float(m - 1 if dof is None else dof), method)


def _precision_from_cov(cov: torch.Tensor) -> torch.Tensor:
    if cov.ndim >= 2 and cov.shape[-1] == cov.shape[-2]:
        diag_only = bool((cov - torch.diag_embed(torch.diagonal(cov, dim1=-2, dim2=-1)) == 0).all())
        if diag_only:
            return (1.0 / torch.diagonal(cov, dim1=-2, dim2=-1))[..., None, :]
        try:
            return torch.cholesky_inverse(torch.linalg.cholesky(cov))
        except RuntimeError as err:
            raise ValueError("the noise covariance is not positive definite; use a shrinkage estimator "
                             "(noise='shrinkage_diag' or 'shrinkage_eye') or more residuals") from err
    if bool((cov <= 0).any()):
        raise ValueError("noise variances must be positive")
    return (1.0 / cov)[..., None, :]


# ----------------------------------------------------------------------------------- labelled API
def _feature_dims(da: xr.DataArray, feature_dim) -> list[str]:
    if feature_dim is None:
        hits = [d for d in _FEATURE_DIMS if d in da.dims]
        if not hits:
            raise SchemaError(f"rdm: cannot tell which dim holds the features among {tuple(da.dims)}; "
                              f"pass feature_dim=... (e.g. one of {list(_FEATURE_DIMS)})")
        return [hits[0]]
    dims = [feature_dim] if isinstance(feature_dim, str) else list(feature_dim)
    missing = [d for d in dims if d not in da.dims]
    if missing:
        raise SchemaError(f"rdm: feature_dim {missing} not among the dims {tuple(da.dims)}; pass the dim that holds "
                          "the pattern's features (channel, voxel, unit, ...)")
    return dims


def _sample_axis(da: xr.DataArray, sample_dim: str) -> tuple[str, np.ndarray, np.ndarray]:
    """(observation dim, stimulus label per observation, unique stimulus labels in first-seen order)."""
    if sample_dim in da.dims:
        labels = np.asarray(da[sample_dim].values) if sample_dim in da.coords else np.arange(da.sizes[sample_dim])
        return sample_dim, labels, np.asarray(pd.unique(pd.Series(labels))) if len(labels) else labels
    if sample_dim in da.coords and len(da[sample_dim].dims) == 1:
        obs = da[sample_dim].dims[0]
        labels = np.asarray(da[sample_dim].values)
        return obs, labels, np.asarray(pd.unique(pd.Series(labels)))
    raise SchemaError(f"rdm: sample_dim {sample_dim!r} is neither a dim nor a coordinate of the data (dims "
                      f"{tuple(da.dims)}); for trials pass data with a 'stimulus' coordinate on 'trial' "
                      "(nb.core.eeg_epochs(..., stimulus=...)) or set sample_dim=...")


def _as_t(x, dtype=None, device=None) -> torch.Tensor:
    """``nb.core.as_tensor`` that also takes non-contiguous / negatively strided numpy data."""
    if isinstance(x, xr.DataArray):
        x = x.data
        if hasattr(x, "compute"):
            x = x.compute()
    if isinstance(x, np.ndarray):
        x = np.ascontiguousarray(x)
    return as_tensor(x, dtype=dtype, device=device)


def _crossnobis_folds(da: xr.DataArray, t: torch.Tensor, codes: torch.Tensor, labels, obs_dim: Hashable,
                      fold_dim: Hashable | None, cv_dim: Hashable | None):
    """Observations ``(..., n_obs, p)``, their stimulus and fold codes and the fold count for crossnobis. Folds
    come from a dim of ``t`` (``fold_dim``, before ``obs_dim``), a per-observation coordinate (``cv_dim``) or,
    without either, the k-th repetition of each stimulus."""
    if fold_dim is not None:
        n_folds = da.sizes[fold_dim]
        obs_t = t.reshape(*t.shape[:-3], n_folds * t.shape[-2], t.shape[-1])
        fold_codes = torch.arange(n_folds, device=t.device).repeat_interleave(t.shape[-2])
        stim_codes = codes.repeat(n_folds)
    elif cv_dim is not None:
        if cv_dim not in da.coords or da[cv_dim].dims != (obs_dim,):
            raise SchemaError(f"cv_dim {cv_dim!r} is neither a dim nor a coordinate on {obs_dim!r} (dims "
                              f"{tuple(da.dims)}, coords {list(da.coords)}); pass the runs/sessions as a dim or a "
                              "per-trial coordinate")
        fvals = np.asarray(da[cv_dim].values)
        fu = np.asarray(pd.unique(pd.Series(fvals)))
        obs_t, stim_codes = t, codes
        fold_codes = torch.as_tensor(pd.Index(fu).get_indexer(fvals), device=t.device)
        n_folds = len(fu)
    else:
        counts_s = torch.bincount(codes)
        if not bool((counts_s == counts_s[0]).all()):
            raise SchemaError("crossnobis without cv_dim assigns the k-th repetition of each stimulus to fold k, "
                              "which needs equal repetition counts; found counts from "
                              f"{int(counts_s.min())} to {int(counts_s.max())}: pass cv_dim=... (e.g. 'run')")
        obs_t, stim_codes = t, codes
        fold_codes = torch.as_tensor(pd.Series(labels).groupby(labels).cumcount().to_numpy(), device=t.device)
        n_folds = int(counts_s[0])
    if n_folds < 2:
        raise SchemaError(f"crossnobis needs at least 2 folds along {cv_dim or 'the repetitions'}, found {n_folds}")
    return obs_t, stim_codes, fold_codes, n_folds


def _fold_sums(obs_t: torch.Tensor, stim_codes: torch.Tensor, fold_codes: torch.Tensor, n_folds: int,
               n_stim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-fold stimulus sums ``(..., F, n, p)`` and counts ``(F, n)``. The sums are a transposed view of a
    stimulus-major ``(..., n, F, p)`` block, so the balanced crossnobis path concatenates folds for free."""
    sums = _group_sum(obs_t, stim_codes * n_folds + fold_codes, n_folds * n_stim)
    sums = sums.reshape(*sums.shape[:-2], n_stim, n_folds, sums.shape[-1]).transpose(-3, -2)
    counts = torch.bincount(fold_codes * n_stim + stim_codes, minlength=n_folds * n_stim).reshape(n_folds, n_stim)
    return sums, counts


def _group_sum(t: torch.Tensor, codes: torch.Tensor, n_groups: int) -> torch.Tensor:
    """Sum the rows (axis -2) of ``t`` (..., m, p) that share a group code: (..., n_groups, p), contiguous.

    A permutation (each group has one row) is a row gather; otherwise rows are added with ``index_add_``
    along a leading axis (much faster on CPU than along an inner axis).
    """
    counts = torch.bincount(codes, minlength=n_groups)
    if codes.shape[0] == n_groups and bool((counts == 1).all()):
        inv = torch.empty_like(codes)
        inv[codes] = torch.arange(n_groups, device=codes.device)
        return t.index_select(-2, inv)
    src = t.movedim(-2, 0).contiguous()
    out = torch.zeros(n_groups, *src.shape[1:], dtype=t.dtype, device=t.device).index_add_(0, codes, src)
    return out.movedim(0, -2).contiguous()


_RDM_FINITE_FIX = ("an RDM needs every pattern complete: drop the stimuli or channels that hold them "
                   "(da.dropna('stimulus'), da.dropna('channel')), interpolate them (da.interpolate_na(...)), "
                   "or mark bad channels")


def _to_tensor(da: xr.DataArray, order: Sequence[Hashable], dtype, device, name: str = "rdm: the data",
               original: xr.DataArray | None = None) -> torch.Tensor:
    """``da`` transposed to ``order`` as a tensor, checked finite: a fast check on the tensor, then, for the
    message, the labelled one on ``original`` (the user's DataArray, default ``da``), naming the dims."""
    t = _as_t(da.transpose(*order), dtype=dtype, device=device)
    if not all_finite(t):
        check_finite(da if original is None else original, name, fix=_RDM_FINITE_FIX)
        check_finite(t, name + f" (as {t.dtype})", fix="the values exceed the range of the computation dtype: "
                     "pass dtype='float64' or rescale the data")
    return t


def _lead_coords(da: xr.DataArray, lead: Sequence[Hashable]) -> dict:
    return {name: c.variable for name, c in da.coords.items() if c.dims and set(c.dims) <= set(lead)}


def _clean_attrs(attrs: dict) -> dict:
    out = {}
    for k, v in attrs.items():
        if isinstance(v, ATTR_TYPES) or (isinstance(v, list | tuple) and all(isinstance(x, ATTR_TYPES) for x in v)):
            out[k] = v
    return out


def _noise_precision(noise, *, feats: list[str], lead: list[Hashable], residuals, dof, data_resid, data_dof,
                     dtype, device, n_features: int) -> torch.Tensor | None:
    if noise is None:
        return None
    if isinstance(noise, str):
        if noise not in NOISE_METHODS:
            raise ValueError(f"noise={noise!r} is not an estimator; expected a covariance array or one of {list(NOISE_METHODS)}")
        if residuals is not None:
            if not isinstance(residuals, xr.DataArray):
                raise SchemaError("residuals must be an xr.DataArray with the feature dim (e.g. GLM residuals, dims "
                                  "('time', 'voxel'))")
            missing = [d for d in feats if d not in residuals.dims]
            if missing:
                raise SchemaError(f"residuals lack the feature dim(s) {missing}; found {tuple(residuals.dims)}")
            keep = [d for d in lead if d in residuals.dims]
            obs = [d for d in residuals.dims if d not in feats and d not in keep]
            r = residuals.stack(_obs=obs) if obs else residuals.expand_dims("_obs")
            r = r.stack(_feat=feats) if len(feats) > 1 else r.rename({feats[0]: "_feat"})
            rt = _to_tensor(r, [*keep, "_obs", "_feat"], dtype, device, name="residuals")
            # broadcast over the data's lead dims the residuals do not have
            idx = [lead.index(d) for d in keep]
            cov = noise_covariance_tensor(rt, noise, dof)
            shape = [1] * len(lead) + list(cov.shape[-2:])
            for k, i in enumerate(idx):
                shape[i] = cov.shape[k]
            cov = cov.reshape(shape)
        else:
            if data_resid is None:
                raise ValueError(f"noise={noise!r} estimates the noise from repeated measurements, but each stimulus "
                                 "has one measurement; pass residuals=... (e.g. GLM residuals) or a covariance matrix")
            cov = _cov_from_demeaned(data_resid - data_resid.mean(-2, keepdim=True), float(data_dof), noise)
        return _precision_from_cov(cov)
    if isinstance(noise, xr.DataArray):
        noise = noise.values
    cov = _as_t(noise, dtype=dtype, device=device)
    if cov.ndim not in (1, 2) or cov.shape[-1] != n_features or (cov.ndim == 2 and cov.shape[0] != n_features):
        raise ValueError(f"noise must be a covariance of shape ({n_features}, {n_features}) or variances of shape "
                         f"({n_features},) for the {n_features} features; got {tuple(cov.shape)}")
    return _precision_from_cov(cov)


def rdm(
    da: xr.DataArray, *, sample_dim: str = "stimulus", feature_dim: str | Sequence[str] | None = None,
    metric: str = "correlation", cv_dim: str | None = None, noise=None, residuals: xr.DataArray | None = None,
    dof: float | None = None, remove_mean: bool = False, prior_lambda: float = 1.0, prior_weight: float = 0.1,
    dtype: str | torch.dtype | None = None, device: str | torch.device | None = None, condensed: bool = False,
) -> xr.DataArray:
    """Representational dissimilarity matrices, dims ``(..., stimulus, stimulus2)`` (or ``(..., pair)``).

    Every dim that is neither the sample dim (or the trial dim it labels), a feature dim nor ``cv_dim``
    (``time``, ``layer``, ``subject``, ``roi``...) is broadcast: one RDM per element, computed in one
    batched torch call on the input's device (``nb.config_context(device=...)`` for numpy data).

    Speed and memory: the work is one GEMM per RDM; beyond it, the cost is writing the result. Square RDMs
    hold every distance twice: 200 time points x 1000 stimuli are 800 MB in float32 (the default, also
    for float64 data) and 1.6 GB with ``dtype="float64"``. ``condensed=True`` returns the upper triangles
    only (half the memory; what :func:`compare` and the inference functions take anyway), with square
    scratch for a few RDMs at a time. On the CPU the GEMM writes straight into the returned array and a
    compiled pass forms the symmetric distances in place (loaded once per process, ~0.5 s; RDMs with fewer
    than a million entries in all skip it). Measured on that case (``benchmarks/rsa.py`` S1: float64 data,
    correlation, 2 threads, same process): rsatoolbox ``calc_rdm_movie`` 8.7-11 s; the default 0.39-0.52 s
    (17-28x; peak RSS 1.0 GB above the data, rsatoolbox's 1.6 GB), ``condensed=True`` 0.5-0.8 s (0.7 GB),
    ``dtype="float64"`` 1.3-1.9 s (1.9 GB).

    Parameters
    ----------
    da : xr.DataArray
        Patterns, e.g. ``(stimulus, unit)`` activations, ``(trial, channel, time)`` epochs (trials are
        averaged per stimulus, first-seen order) or ``(run, stimulus, voxel)`` betas.
    sample_dim : str
        The dim, or a coordinate on the observation dim, whose labels are the RDM's rows.
    feature_dim : str or sequence of str, optional
        Dim(s) holding the pattern's features; default the first of channel, voxel, unit, latent, feature.
    metric : {"correlation", "euclidean", "cosine", "mahalanobis", "crossnobis", "poisson"}
        ``euclidean``/``mahalanobis``/``crossnobis``/``poisson`` are divided by the number of features and
        ``euclidean`` is squared, as in rsatoolbox.
    cv_dim : str, optional
        Cross-validation folds for ``crossnobis``: a dim (``run``) or a coordinate on the trial dim. By
        default (as rsatoolbox) the k-th repetition of every stimulus forms fold k.
    noise : array, xr.DataArray or str, optional
        Noise model for ``mahalanobis``/``crossnobis``: a covariance (features x features, or the
        variances as a 1-d array), or an estimator name (:data:`NOISE_METHODS`) applied to ``residuals``
        or, without them, to the deviations of each measurement from its stimulus mean (rsatoolbox's
        ``prec_from_measurements``/``cov_from_unbalanced``). ``None``: identity.
    residuals : xr.DataArray, optional
        Residuals with the feature dim (e.g. GLM residuals over time) for the noise estimate.
    dof : float, optional
        Degrees of freedom for the noise estimate (default: rows - 1 for residuals, measurements -
        stimuli for the data).
    remove_mean : bool
        Subtract each pattern's mean over features (euclidean, mahalanobis, crossnobis).
    prior_lambda, prior_weight : float
        Prior for ``poisson`` (rsatoolbox's defaults).
    dtype, device : optional
        Computation and result dtype (float32 by default, whatever the data's dtype: distances agree with
        float64 ones to ~1e-6 for correlation; ``"float64"`` on request) and device.
    condensed : bool
        Return condensed vectors, dims ``(*broadcast_dims, "pair")`` in ``pdist`` order (i < j, row-major)
        with the coordinates ``stimulus`` and ``stimulus2`` on ``pair``, exactly
        ``nb.rsa.to_condensed(nb.rsa.rdm(da))`` without the square intermediate.

    Returns
    -------
    xr.DataArray
        Dims ``(*broadcast_dims, "stimulus", "stimulus2")`` (symmetric, exact zero diagonal), or
        ``(*broadcast_dims, "pair")`` with ``condensed=True``; attrs ``metric`` (+ the input's attrs).

    Examples
    --------
    >>> import numpy as np, neurobridge as nb
    >>> acts = nb.core.activations(np.random.rand(4, 10), stimulus=list("abcd"))
    >>> nb.rsa.rdm(acts, metric="euclidean").dims
    ('stimulus', 'stimulus2')
    >>> v = nb.rsa.rdm(acts, metric="euclidean", condensed=True)
    >>> v.dims, v.sizes["pair"], v["stimulus2"].values[:3].tolist()
    (('pair',), 6, ['b', 'c', 'd'])
    """
    if not isinstance(da, xr.DataArray):
        raise SchemaError(f"rdm expects an xr.DataArray, got {type(da).__name__}; build one with nb.core.activations / "
                          "nb.core.eeg_epochs / nb.core.fmri_responses")
    if metric not in RDM_METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {list(RDM_METRICS)}")
    feats = _feature_dims(da, feature_dim)
    obs_dim, labels, uniques = _sample_axis(da, sample_dim)
    if obs_dim in feats:
        raise SchemaError(f"rdm: the sample dim {obs_dim!r} cannot also be a feature dim")
    if cv_dim is not None and metric != "crossnobis":
        raise ValueError(f"cv_dim is only used by metric='crossnobis', not {metric!r}")
    fold_dim = cv_dim if (cv_dim is not None and cv_dim in da.dims) else None
    used = {obs_dim, *feats} | ({fold_dim} if fold_dim else set())
    lead = [d for d in da.dims if d not in used]
    n_stim = len(uniques)
    if n_stim < 2:
        raise SchemaError(f"rdm: need at least 2 distinct stimuli, found {n_stim}")
    x = da.stack(_feat=feats) if len(feats) > 1 else da.rename({feats[0]: "_feat"})
    order = [*lead, *([fold_dim] if fold_dim else []), obs_dim, "_feat"]
    feat_coords = [c for c in x.coords if "_feat" in x[c].dims]  # the stacked index and its levels, together
    t = _to_tensor(x.drop_vars(feat_coords), order, dtype, device, original=da)
    codes = torch.as_tensor(pd.Index(uniques).get_indexer(labels), device=t.device)
    counts_s = torch.bincount(codes, minlength=n_stim)
    repeated = bool((counts_s > 1).any())

    data_resid, data_dof = None, None
    if metric == "crossnobis":
        obs_t, stim_codes, fold_codes, n_folds = _crossnobis_folds(da, t, codes, labels, obs_dim, fold_dim, cv_dim)
        sums, counts = _fold_sums(obs_t, stim_codes, fold_codes, n_folds, n_stim)
        if isinstance(noise, str) and residuals is None:
            stim_sum = _group_sum(obs_t, stim_codes, n_stim)
            stim_cnt = torch.bincount(stim_codes, minlength=n_stim).to(t.dtype)
            data_resid = obs_t - (stim_sum / stim_cnt[:, None])[..., stim_codes, :]
            data_dof = obs_t.shape[-2] - n_stim
        precision = _noise_precision(noise, feats=feats, lead=lead, residuals=residuals, dof=dof,
                                     data_resid=data_resid, data_dof=dof if dof is not None else data_dof,
                                     dtype=dtype, device=t.device, n_features=t.shape[-1])
        out = crossnobis_tensor(sums, counts, precision=precision, remove_mean=remove_mean, condensed=condensed)
        finite = [None]
    else:
        if repeated:
            sums = _group_sum(t, codes, n_stim)
            means = sums / counts_s.to(t.dtype)[:, None]
            if isinstance(noise, str) and residuals is None:
                data_resid = t - means[..., codes, :]
                data_dof = t.shape[-2] - n_stim
        else:
            means = t  # unique labels: first-seen order is the data's order
        if metric == "mahalanobis" or noise is not None:
            if metric not in ("mahalanobis",):
                raise ValueError(f"noise= is used by 'mahalanobis' and 'crossnobis', not {metric!r}")
            precision = _noise_precision(noise, feats=feats, lead=lead, residuals=residuals, dof=dof,
                                         data_resid=data_resid, data_dof=dof if dof is not None else data_dof,
                                         dtype=dtype, device=t.device, n_features=t.shape[-1])
        else:
            precision = None
        finite = []
        out = _rdm_tensor(means, metric, precision=precision, remove_mean=remove_mean, prior_lambda=prior_lambda,
                          prior_weight=prior_weight, condensed=condensed, finite=finite)
    coords = _lead_coords(da, lead)
    if condensed:
        i, j = np.triu_indices(n_stim, k=1)
        coords["stimulus"] = ("pair", uniques[i])
        coords["stimulus2"] = ("pair", uniques[j])
    else:
        coords["stimulus"] = uniques
        coords["stimulus2"] = uniques.copy()
    attrs = _clean_attrs(da.attrs)
    attrs["metric"] = metric
    if cv_dim is not None:
        attrs["cv_dim"] = cv_dim
    # one DataArray around the result buffer (no copy on the CPU)
    result = xr.DataArray(out.detach().cpu().numpy(), dims=(*lead, *(("pair",) if condensed else ("stimulus", "stimulus2"))),
                          coords=coords, attrs=attrs)
    if finite[0] is not True:  # finite data can still overflow (float32 inner products of huge values)
        check_finite(result, "rdm: the distances", fix="compute in float64 (dtype='float64') or rescale the data")
    return result if condensed else validate(result, "rdm", check_values=False)


def noise_covariance(residuals: xr.DataArray, *, feature_dim: str | None = None, method: str = "shrinkage_diag",
                     dof: float | None = None, dtype=None, device=None) -> xr.DataArray:
    """Noise covariance over features from residuals (rsatoolbox's ``cov_from_residuals``), labelled.

    Parameters
    ----------
    residuals : xr.DataArray
        Residuals with a feature dim (e.g. ``(time, voxel)`` GLM residuals); every other dim is pooled.
    feature_dim : str, optional
        Default the first of channel, voxel, unit, latent, feature.
    method : {"full", "diag", "shrinkage_eye", "shrinkage_diag"}
    dof : float, optional
        Degrees of freedom (default rows - 1).

    Returns
    -------
    xr.DataArray
        Dims ``(feature_dim, feature_dim + "2")``.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> r = xr.DataArray(np.random.randn(40, 3), dims=("time", "voxel"))
    >>> noise_covariance(r, method="diag").dims
    ('voxel', 'voxel2')
    """
    feats = _feature_dims(residuals, feature_dim)
    if len(feats) != 1:
        raise SchemaError("noise_covariance takes one feature dim")
    f = feats[0]
    obs = [d for d in residuals.dims if d != f]
    r = residuals.stack(_obs=obs) if obs else residuals.expand_dims("_obs")
    t = _to_tensor(r.drop_vars(list(r.coords), errors="ignore"), ["_obs", f], dtype, device)
    cov = noise_covariance_tensor(t, method, dof)
    coords = {}
    if f in residuals.coords:
        coords[f] = residuals[f].values
        coords[f + "2"] = residuals[f].values
    return xr.DataArray(cov.cpu().numpy(), dims=(f, f + "2"), coords=coords, attrs={"method": method})


# ----------------------------------------------------------------------------- condensed (labelled)
def to_condensed(da: xr.DataArray) -> xr.DataArray:
    """Condensed RDM vectors: dims ``(..., "pair")`` in ``pdist`` order (i < j, row-major).

    The ``pair`` dim carries the coordinates ``stimulus`` and ``stimulus2`` (the ids of the two
    stimuli of each entry), so :func:`from_condensed` can rebuild the square form.

    Examples
    --------
    >>> import numpy as np, neurobridge as nb
    >>> r = nb.core.rdm(np.array([[0., 1, 2], [1, 0, 3], [2, 3, 0]]), stimulus=list("abc"))
    >>> v = nb.rsa.to_condensed(r)
    >>> v.values.tolist(), v["stimulus2"].values.tolist()
    ([1.0, 2.0, 3.0], ['b', 'c', 'c'])
    """
    validate(da, "rdm", check_values=False)
    lead = [d for d in da.dims if d not in ("stimulus", "stimulus2")]
    da = da.transpose(*lead, "stimulus", "stimulus2")
    n = da.sizes["stimulus"]
    i, j = np.triu_indices(n, k=1)
    vals = np.asarray(da.values)[..., i, j]
    coords = _lead_coords(da, lead)
    ids = np.asarray(da["stimulus"].values)
    ids2 = np.asarray(da["stimulus2"].values)
    if not np.array_equal(ids, ids2):
        raise SchemaError("to_condensed: 'stimulus' and 'stimulus2' hold different ids; an RDM lists the same "
                          "stimuli in the same order on both axes")
    coords["stimulus"] = ("pair", ids[i])
    coords["stimulus2"] = ("pair", ids[j])
    return xr.DataArray(vals, dims=(*lead, "pair"), coords=coords, attrs=dict(da.attrs))


def from_condensed(v, *, stimulus: Sequence | None = None, dims: Sequence[str] | None = None,
                   coords: dict | None = None, attrs: dict | None = None) -> xr.DataArray:
    """Square RDMs ``(..., stimulus, stimulus2)`` from condensed vectors (inverse of :func:`to_condensed`).

    Parameters
    ----------
    v : xr.DataArray with a ``pair`` dim (from :func:`to_condensed`), or an array/tensor (..., n_pairs)
    stimulus : sequence, optional
        Stimulus ids (default: read from ``v``'s ``pair`` coordinates, else ``0..n-1``).
    dims : sequence of str, optional
        Names of the leading dims of an unlabelled ``v``.
    coords, attrs : dict, optional
        Extra coordinates / attrs for an unlabelled ``v``.

    Examples
    --------
    >>> from_condensed(np.array([1.0, 2.0, 3.0]), stimulus=list("abc")).values[1].tolist()
    [1.0, 0.0, 3.0]
    """
    if isinstance(v, xr.DataArray):
        if "pair" not in v.dims:
            raise SchemaError(f"from_condensed expects a 'pair' dim, found {tuple(v.dims)}; use nb.rsa.to_condensed")
        lead = [d for d in v.dims if d != "pair"]
        v = v.transpose(*lead, "pair")
        n = n_from_pairs(v.sizes["pair"])
        if stimulus is None and "stimulus" in v.coords and "stimulus2" in v.coords:
            s1, s2 = np.asarray(v["stimulus"].values), np.asarray(v["stimulus2"].values)
            stimulus = np.concatenate([s1[:1], s2[: n - 1]])
        base_coords = _lead_coords(v, lead)
        base_coords.update(coords or {})
        return from_condensed(np.asarray(v.values), stimulus=stimulus, dims=lead, coords=base_coords,
                              attrs={**v.attrs, **(attrs or {})})
    arr = v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)
    n = n_from_pairs(arr.shape[-1])
    i, j = np.triu_indices(n, k=1)
    sq = np.zeros((*arr.shape[:-1], n, n), dtype=arr.dtype if np.issubdtype(arr.dtype, np.floating) else float)
    sq[..., i, j] = arr
    sq[..., j, i] = arr
    lead = list(dims) if dims is not None else [f"dim_{k}" for k in range(arr.ndim - 1)]
    if len(lead) != arr.ndim - 1:
        raise SchemaError(f"from_condensed: dims {lead} name {len(lead)} leading axes but the data have {arr.ndim - 1}")
    ids = np.asarray(stimulus) if stimulus is not None else np.arange(n)
    if ids.shape != (n,):
        raise SchemaError(f"from_condensed: {len(ids)} stimulus ids for RDMs over {n} stimuli")
    c = dict(coords or {})
    c["stimulus"] = ids
    c["stimulus2"] = ids.copy()
    out = xr.DataArray(sq, dims=(*lead, "stimulus", "stimulus2"), coords=c, attrs=_clean_attrs(dict(attrs or {})))
    return validate(out, "rdm")
