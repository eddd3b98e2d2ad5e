"""RSA maps: time-resolved RSA for M/EEG and searchlight RSA (fMRI spheres, M/EEG sensor neighbourhoods).

Both compute many RDMs in batches and compare them with model RDMs without building intermediate
DataArrays: memory is planned (``batch_size``) and the work is GEMMs, a gather of neighbourhoods and, for
Spearman and rho-a on the CPU, the compiled rank kernels of ``_rank_kernels`` (no rank arrays stored).
For correlation, cosine and euclidean the searchlight never builds condensed RDMs: Pearson comes from
sums over each batch's full matrices, Spearman from the kernel reading the upper triangles of the inner
products.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
import xarray as xr

from neurobridge.core import SchemaError, Workspace, cpu_threads, progress_bar, side_by_side

from ._compare import COMPARE_METHODS, DOT_METHODS, RANK_METHODS, _prepare, compare_vectors
from ._labelled import rdm_vectors
from ._rdm import (
    RDM_METRICS,
    _clean_attrs,
    _crossnobis_folds,
    _feature_dims,
    _fold_sums,
    _group_sum,
    _lead_coords,
    _sample_axis,
    _to_tensor,
    crossnobis_tensor,
    rdm,
    rdm_tensor,
)

__all__ = ["time_resolved_rsa", "searchlight", "sphere_neighbourhoods"]

logger = logging.getLogger("neurobridge")

_SEARCHLIGHT_BATCH_BYTES = 256e6
"""Work arrays per searchlight batch when batches run one after another (GPU, and the condensed paths:
crossnobis, poisson, kendall, whitened). Measured on CPU before the side-by-side paths, 10k spheres of 100
conditions: 0.32 s at ~1200 centres per batch, 0.37 s at ~2500."""

_SIDE_BY_SIDE_BATCH_BYTES = 64e6
"""Work arrays per batch of each worker when CPU batches run side by side (10k spheres of 123 voxels and 100
conditions, Pearson: 0.40 s at ~290 centres per batch, 0.45 s at ~600)."""

_COORD_SETS = (("x", "y", "z"), ("i", "j", "k"), ("pos_x", "pos_y", "pos_z"))


def _patterns(da: xr.DataArray, *, sample_dim: str, feature_dim, metric: str, cv_dim, dtype, device):
    """Stimulus patterns (lead..., n, p), or fold sums (lead..., F, n, p) + counts (F, n) for crossnobis."""
    if not isinstance(da, xr.DataArray):
        raise SchemaError(f"expected brain data as an xr.DataArray, got {type(da).__name__}")
    if metric not in RDM_METRICS or metric == "mahalanobis":
        raise ValueError(f"metric must be one of {[m for m in RDM_METRICS if m != 'mahalanobis']} here, got {metric!r}")
    feats = _feature_dims(da, feature_dim)
    if len(feats) != 1:
        raise SchemaError("this analysis takes a single feature dim (channel or voxel)")
    f = feats[0]
    obs, labels, uniques = _sample_axis(da, sample_dim)
    fold_dim = cv_dim if (cv_dim is not None and cv_dim in da.dims) else None
    lead = [d for d in da.dims if d not in (obs, f, fold_dim)]
    t = _to_tensor(da.drop_vars([c for c in da.coords if f in da[c].dims], errors="ignore"),
                   [*lead, *([fold_dim] if fold_dim else []), obs, f], dtype, device)
    n = len(uniques)
    if n < 3:
        raise SchemaError(f"need at least 3 distinct stimuli for an RDM comparison, found {n}")
    codes = torch.as_tensor(pd.Index(uniques).get_indexer(labels), device=t.device)
    if metric != "crossnobis":
        if cv_dim is not None:
            raise ValueError("cv_dim is only used by metric='crossnobis'")
        if len(uniques) == len(labels):
            return t, None, lead, f, uniques
        sums = _group_sum(t, codes, n)
        cnt = torch.bincount(codes, minlength=n).to(t.dtype)
        return sums / cnt[:, None], None, lead, f, uniques
    t, stim_codes, fold_codes, n_folds = _crossnobis_folds(da, t, codes, labels, obs, fold_dim, cv_dim)
    sums, counts = _fold_sums(t, stim_codes, fold_codes, n_folds, n)
    return sums, counts, lead, f, uniques


def _model_vectors(models, uniques, *, model_metric: str, dtype, device):
    if isinstance(models, xr.DataArray) and ("stimulus2" in models.dims or "pair" in models.dims):
        m = models
    elif isinstance(models, xr.DataArray):
        m = rdm(models, metric=model_metric, dtype=dtype, device=device)
    else:
        raise SchemaError(f"models must be RDMs (nb.rsa.rdm / nb.core.rdm) or activations as an xr.DataArray, "
                          f"got {type(models).__name__}")
    ids_m = set(np.asarray(m["stimulus"].values).tolist()) if "stimulus" in m.dims else None
    if ids_m is not None and ids_m != set(np.asarray(uniques).tolist()):
        raise SchemaError(f"the model RDMs cover {len(ids_m)} stimuli, the brain data {len(uniques)} "
                          f"({len(ids_m & set(np.asarray(uniques).tolist()))} shared); select the shared stimuli "
                          "on both first")
    v, lead, _ = rdm_vectors(m, stimulus=uniques, dtype=dtype, device=device)
    return v, lead, m


def _rank_kernels_apply(x: torch.Tensor, method: str, n_pairs: int) -> bool:
    """Whether the compiled rank kernels (``_rank_kernels``) take this comparison: Spearman or rho-a of
    float rows on the CPU, up to ``max_pairs()`` entries per RDM."""
    if method not in RANK_METHODS or x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64):
        return False
    from ._rank_kernels import max_pairs

    return 3 <= n_pairs <= max_pairs()


def _compare_block(vb: torch.Tensor, vm: torch.Tensor, prepared_m: torch.Tensor | None, method: str, cov):
    """(..., n_pairs) brain vectors against (M, n_pairs) model vectors -> (..., M); may modify ``vb``."""
    if prepared_m is not None and _rank_kernels_apply(vb, method, vb.shape[-1]):
        from ._rank_kernels import rank_dot_rows

        return rank_dot_rows(vb.reshape(-1, vb.shape[-1]), prepared_m, method).reshape(*vb.shape[:-1], -1)
    if prepared_m is not None:
        if method in ("pearson", "cosine"):  # in place: vb is a scratch buffer
            if method == "pearson":
                vb.sub_(vb.mean(-1, keepdim=True))
            norm = torch.linalg.vector_norm(vb, dim=-1, keepdim=True)
            return vb.div_(torch.where(norm > 0, norm, torch.ones_like(norm))) @ prepared_m.T
        return _prepare(vb, method) @ prepared_m.T
    return compare_vectors(vb[..., None, :], vm, method, cov=cov)


def _auto_batch(n: int, per_item: float, budget_bytes: float = 512e6, itemsize: int = 4) -> int:
    return max(1, int(budget_bytes // max(1.0, per_item * itemsize)))


def time_resolved_rsa(
    brain: xr.DataArray, models, *, method: str = "spearman", metric: str = "correlation",
    model_metric: str = "correlation", feature_dim: str | None = None, sample_dim: str = "stimulus",
    cv_dim: str | None = None, cov=None, batch_size: int | None = None, progress: bool | None = None,
    dtype=None, device=None,
) -> xr.DataArray:
    """Compare brain RDMs at every time point (and every other extra dim) with model RDMs.

    Parameters
    ----------
    brain : xr.DataArray
        E.g. epochs ``(trial, channel, time)`` with a ``stimulus`` coordinate (repetitions averaged) or
        ``(stimulus, channel, time)``. Every dim besides samples, features and ``cv_dim`` is mapped over.
    models : xr.DataArray
        Model RDMs ``(..., stimulus, stimulus2)`` (e.g. over ``layer``), or activations
        ``(..., stimulus, unit)`` turned into RDMs with ``model_metric``.
    method : str
        RDM comparison (see :func:`compare_vectors`), default Spearman.
    metric : str
        Brain RDM metric (see :func:`rdm`; ``crossnobis`` with ``cv_dim`` or repetitions as folds).
    batch_size : int, optional
        Time points per batch (default: about 512 MB of RDMs).
    progress : bool, optional
        Progress bar counting brain RDMs (time points): ``True``/``False``; ``None`` (default, automatic)
        shows it only when someone watches: stderr is a terminal or Jupyter, and ``TQDM_DISABLE`` is unset
        (:func:`neurobridge.core.progress_enabled`; ``nb.config_context(progress=...)`` sets the default).

    Returns
    -------
    xr.DataArray
        Dims ``(*model_dims, *brain_dims)``, e.g. ``(layer, time)``, named ``similarity``.

    Examples
    --------
    >>> import numpy as np, xarray as xr, neurobridge as nb
    >>> ep = nb.core.eeg_epochs(np.random.randn(20, 8, 5), stimulus=np.arange(20) % 5, sfreq=100.0)
    >>> acts = xr.DataArray(np.random.rand(2, 5, 4), dims=("layer", "stimulus", "unit"), coords={"stimulus": range(5)})
    >>> nb.rsa.time_resolved_rsa(ep, acts, progress=False).dims
    ('layer', 'time')
    """
    if method not in COMPARE_METHODS:
        raise ValueError(f"unknown comparison method {method!r}; expected one of {list(COMPARE_METHODS)}")
    x, counts, lead, _, uniques = _patterns(brain, sample_dim=sample_dim, feature_dim=feature_dim, metric=metric,
                                            cv_dim=cv_dim, dtype=dtype, device=device)
    vm, m_lead, m = _model_vectors(models, uniques, model_metric=model_metric, dtype=x.dtype, device=x.device)
    m_shape = list(vm.shape[:-1])
    vm = vm.reshape(-1, vm.shape[-1])
    prepared = _prepare(vm, method) if method in DOT_METHODS else None
    n = len(uniques)
    lead_shape = list(x.shape[: len(lead)])
    n_items = math.prod(lead_shape)
    core = x.shape[len(lead):]
    xf = x.reshape(n_items, *core)
    per = n * n * 3 + (core[0] * n * core[-1] if counts is not None else 0)
    bs = batch_size or _auto_batch(n, per, itemsize=x.element_size())
    out = torch.empty(n_items, vm.shape[0], dtype=x.dtype, device=x.device)
    starts = range(0, n_items, bs)
    ws = Workspace(x.dtype, x.device)
    iu, ju = torch.triu_indices(n, n, offset=1, device=x.device)
    with progress_bar(total=n_items, desc="time-resolved RSA", progress=progress, unit="RDM") as bar:
        for s in starts:
            block = xf[s:s + bs]
            if counts is None and metric in ("correlation", "cosine", "euclidean"):
                v = _pattern_distances(block, metric, iu, ju, ws)
            elif counts is not None:
                v = crossnobis_tensor(block, counts, condensed=True)
            else:
                v = rdm_tensor(block, metric, condensed=True)
            out[s:s + bs] = _compare_block(v, vm, prepared, method, cov)
            bar.update(min(bs, n_items - s))
    out = out.T.reshape(*m_shape, *lead_shape)
    coords = _lead_coords(m, m_lead)
    coords.update(_lead_coords(brain, lead))
    attrs = _clean_attrs(brain.attrs)
    attrs.update(method=method, metric=metric)
    return xr.DataArray(out.cpu().numpy(), dims=[*m_lead, *lead], coords=coords, attrs=attrs, name="similarity")


def sphere_neighbourhoods(positions, radius: float, centers: Sequence[int] | None = None) -> list[np.ndarray]:
    """Indices of the points within ``radius`` (inclusive) of each centre.

    Parameters
    ----------
    positions : array, shape (n_points, n_dims)
        Voxel coordinates (mm or indices) or sensor positions (m).
    radius : float
        Same unit as ``positions``. For rsatoolbox's voxel spheres (strict ``< r`` in voxels) pass a
        value just below ``r`` (e.g. 2.9 for 3).
    centers : sequence of int, optional
        Indices of the centre points (default: every point).

    Returns
    -------
    list of np.ndarray
        Sorted point indices per centre (each includes its centre).

    Examples
    --------
    >>> pos = np.array([[0, 0, 0], [1, 0, 0], [3, 0, 0]])
    >>> [nb.tolist() for nb in sphere_neighbourhoods(pos, 1.5)]
    [[0, 1], [0, 1], [2]]
    """
    pad, sizes = _padded_neighbourhoods(positions, radius, centers)
    return [row[:k].copy() for row, k in zip(pad, sizes, strict=True)]


def _grid_neighbourhoods(pos: np.ndarray, radius: float, idx: np.ndarray, sort: bool = True):
    """:func:`_padded_neighbourhoods` for points on an integer grid (voxel indices): a lookup volume and the
    sphere's offsets instead of a KD-tree (~10x faster for a whole brain). None when not applicable."""
    if pos.shape[1] > 3 or len(pos) == 0 or not np.array_equal(pos, np.round(pos)):
        return None
    lo = pos.min(0).astype(np.int64)
    r = int(np.floor(radius * (1 + 1e-12)))
    shape = pos.max(0).astype(np.int64) - lo + 1 + 2 * r
    if np.prod(shape, dtype=float) > 2e7 or len(np.unique(pos, axis=0)) != len(pos):
        return None  # a lookup volume over 160 MB, or repeated positions: the KD-tree path
    vol = np.full(tuple(shape), len(pos), dtype=np.int64)  # padding value outside the points
    ijk = pos.astype(np.int64) - lo + r
    vol[tuple(ijk.T)] = np.arange(len(pos))
    ax = np.arange(-r, r + 1)
    off = np.stack(np.meshgrid(*([ax] * pos.shape[1]), indexing="ij"), -1).reshape(-1, pos.shape[1])
    off = off[(off.astype(float) ** 2).sum(1) <= (radius * (1 + 1e-12)) ** 2]
    chunks = []
    for s in range(0, len(idx), 50_000):  # bounded temporaries for whole-brain grids
        at = ijk[idx[s:s + 50_000]][:, None, :] + off[None]
        hood = vol[tuple(at.transpose(2, 0, 1))]
        rows = slice(None) if sort else (hood == len(pos)).any(1)  # unsorted: only the padding must go last
        hood[rows] = np.sort(hood[rows], axis=1)  # the padding value sorts last
        chunks.append(hood)
    cand = np.concatenate(chunks) if chunks else np.zeros((0, len(off)), dtype=np.int64)
    sizes = (cand < len(pos)).sum(1)
    return np.ascontiguousarray(cand[:, : int(sizes.max(initial=0))]), sizes


def _padded_neighbourhoods(positions, radius: float, centers=None, sort: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Neighbourhoods as one ``(n_centres, k_max)`` int64 array padded (at the end of each row) with
    ``n_points``, and sizes. Sorted unless ``sort=False`` (a whole-brain grid then skips most of the sorting).

    One threaded KD-tree query, flattened without a Python loop over centres."""
    from scipy.spatial import cKDTree

    pos = np.asarray(positions, dtype=float)
    if pos.ndim != 2 or not np.isfinite(pos).all():
        raise ValueError(f"positions must be a finite (n_points, n_dims) array, got shape {pos.shape}")
    if not radius > 0:
        raise ValueError(f"radius must be positive, got {radius}")
    idx = np.arange(len(pos)) if centers is None else np.asarray(centers, dtype=int).reshape(-1)
    grid = _grid_neighbourhoods(pos, float(radius), idx, sort)
    if grid is not None:
        return grid
    hits = cKDTree(pos).query_ball_point(pos[idx], r=float(radius) * (1 + 1e-12), return_sorted=True,
                                         workers=-1)
    hits = list(hits)
    sizes = np.fromiter(map(len, hits), dtype=np.int64, count=len(hits))
    flat = np.fromiter(itertools.chain.from_iterable(hits), dtype=np.int64, count=int(sizes.sum()))
    pad = np.full((len(hits), int(sizes.max(initial=0))), len(pos), dtype=np.int64)
    starts = np.cumsum(sizes) - sizes
    pad[np.repeat(np.arange(len(hits)), sizes), np.arange(len(flat)) - np.repeat(starts, sizes)] = flat
    return pad, sizes


def _pattern_distances(x: torch.Tensor, metric: str, iu: torch.Tensor, ju: torch.Tensor, ws: Workspace):
    """Condensed correlation/cosine/euclidean RDMs of (b, n, p) patterns into workspace buffers."""
    b, n, p_feat = x.shape
    if metric in ("correlation", "cosine"):
        xc = x - x.mean(-1, keepdim=True) if metric == "correlation" else x.clone()
        norm = torch.linalg.vector_norm(xc, dim=-1, keepdim=True)
        if bool((norm == 0).any()):
            raise ValueError(f"{metric} distance is undefined for a pattern with zero "
                             f"{'variance' if metric == 'correlation' else 'norm'} across features")
        xc.div_(norm)
    else:
        xc = x
    k = ws("k", (b, n, n))
    torch.matmul(xc, xc.transpose(-1, -2), out=k)
    if metric == "euclidean":
        sq = torch.diagonal(k, dim1=-2, dim2=-1).clone()
        k.mul_(-2.0).add_(sq[..., :, None]).add_(sq[..., None, :]).div_(p_feat)
    pij = ws("pij", (b, iu.shape[0]))
    torch.index_select(k.view(b, n * n), -1, iu * n + ju, out=pij)
    return pij if metric == "euclidean" else pij.neg_().add_(1.0)


def _sphere_products(xt: torch.Tensor, idx: torch.Tensor, k: torch.Tensor, metric: str,
                     ws: Workspace) -> tuple[torch.Tensor, torch.Tensor]:
    """Inner products ``P = g^T g`` (L, c, n, n) of the zero-padded neighbourhoods ``idx`` (c, K) of xt
    (L, p + 1, n), k real features, and per-pattern scales (L, c, n): for ``metric="correlation"`` P is
    centred and the scales are the inverse norms of the centred patterns; for ``"cosine"`` the inverse
    norms; for ``"euclidean"`` the sums of squares.

    One batched GEMM, padding contributes nothing, so the padded block is never centred or masked.
    Returns workspace buffers, valid until the next call.
    """
    n_lead, _, n = xt.shape
    c, kmax = idx.shape
    g = ws("g", (n_lead, c * kmax, n))
    for li in range(n_lead):
        torch.index_select(xt[li], 0, idx.reshape(-1), out=g[li])
    g = g.view(n_lead, c, kmax, n)
    p = ws("p", (n_lead, c, n, n))
    torch.matmul(g.transpose(-1, -2), g, out=p)
    if metric == "correlation":
        # P - s s^T / k (in place, one batched rank-1 update) is the centred cross-product
        sm = ws("sm", (n_lead, c, n))
        torch.sum(g, -2, out=sm)
        sm.div_(k[:, None].sqrt())
        flat = p.view(n_lead * c, n, n)
        flat.baddbmm_(sm.view(n_lead * c, n, 1), sm.view(n_lead * c, 1, n), alpha=-1.0)
    scale = ws("inv", (n_lead, c, n))
    scale.copy_(torch.diagonal(p, dim1=-2, dim2=-1))  # one strided read of the diagonals
    if metric in ("correlation", "cosine"):
        if bool((scale <= 0).any()):
            raise ValueError(f"{metric} distance is undefined for a pattern with zero "
                             f"{'variance' if metric == 'correlation' else 'norm'} in a searchlight; use "
                             "metric='euclidean' or drop constant voxels")
        scale.rsqrt_()
    return p, scale


def _sphere_matrices(xt: torch.Tensor, idx: torch.Tensor, k: torch.Tensor, metric: str,
                     ws: Workspace) -> torch.Tensor:
    """Full (L, c, n, n) matrices of the neighbourhoods (see :func:`_sphere_products`): pattern correlations
    (``metric="correlation"``), cosine similarities (``"cosine"``) or squared euclidean distances per feature
    (``"euclidean"``). Returns a workspace buffer, valid until the next call."""
    p, scale = _sphere_products(xt, idx, k, metric, ws)
    if metric in ("correlation", "cosine"):
        p.mul_(scale[..., :, None]).mul_(scale[..., None, :])
    else:
        p.mul_(-2.0).add_(scale[..., :, None]).add_(scale[..., None, :]).div_(k[:, None, None])
    return p


def _condensed_distances(mats: torch.Tensor, metric: str, flat_upper: torch.Tensor, ws: Workspace) -> torch.Tensor:
    """Upper triangles (L, c, n_pairs) of :func:`_sphere_matrices` as distances (workspace buffer)."""
    n_lead, c, n, _ = mats.shape
    pij = ws("pij", (n_lead, c, flat_upper.shape[0]))
    # on a 2-d view: index_select along the last dim of a 3-d tensor is ~8x slower on CPU
    torch.index_select(mats.view(n_lead * c, n * n), -1, flat_upper, out=pij.view(n_lead * c, -1))
    return pij if metric == "euclidean" else pij.neg_().add_(1.0)


def _symmetric_model_matrix(prepared: torch.Tensor, n: int, iu: torch.Tensor, ju: torch.Tensor) -> torch.Tensor:
    """(n * n, 1 + M): a column of ones, then each prepared (centred, unit-norm) model vector as a symmetric
    matrix with zero diagonal, flattened."""
    mfull = torch.zeros(n * n, 1 + prepared.shape[0], dtype=prepared.dtype, device=prepared.device)
    mfull[:, 0] = 1.0
    mfull = mfull.contiguous()
    mfull[iu * n + ju, 1:] = prepared.T
    mfull[ju * n + iu, 1:] = prepared.T
    return mfull


def _pearson_from_matrices(mats: torch.Tensor, metric: str, mfull: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of the condensed distances of ``mats`` (L, c, n, n) with the prepared models, from
    the full symmetric matrices: no upper-triangle gather, no condensed copy. Returns (L, c, M).

    Over the pairs ``i < j``: ``sum d m = sum_all(S * M) / 2`` (``M`` symmetric, zero diagonal) and
    ``sum (d - mean)^2 = (sum_all (S - mean)^2 - sum_diag (S - mean)^2) / 2`` (two passes: exact centring,
    no cancellation in float32); for correlation and cosine, ``d = 1 - S`` flips the sign.
    """
    n_lead, c, n, _ = mats.shape
    n_pairs = n * (n - 1) // 2
    flat = mats.view(n_lead * c, n * n)
    diag = torch.diagonal(mats, dim1=-2, dim2=-1).reshape(n_lead * c, n)
    total = flat.sum(1)
    if mfull.shape[1] <= 5:  # matrix-vector products stream the block once each; a thin GEMM is ~4x slower
        dots = torch.stack([flat @ mfull[:, j] for j in range(1, mfull.shape[1])], 1)
    else:
        dots = flat @ mfull[:, 1:]
    mean = (total - diag.sum(1)) / (2 * n_pairs)
    dev_diag = (diag - mean[:, None]).square_().sum(1)
    flat.sub_(mean[:, None])
    ss = (torch.linalg.vector_norm(flat, dim=1).square_() - dev_diag) / 2
    den = ss.clamp_min(0).sqrt_()
    r = dots / 2 / torch.where(den > 0, den, torch.ones_like(den))[:, None]
    if metric != "euclidean":
        r.neg_()
    return r.reshape(n_lead, c, -1)


def _offsets_removed(x: torch.Tensor, metric: str) -> torch.Tensor:
    """Remove the offsets that ``metric`` ignores before inner products are formed from sums: the mean of
    each pattern over all features for correlation, the mean of each feature over the stimuli for
    euclidean. Exact in theory, and in float32 it keeps a large baseline (raw BOLD around 1000) from
    cancelling catastrophically in ``P - s s^T / k`` or ``ss_i + ss_j - 2 P_ij``."""
    if metric == "correlation":
        return x - x.mean(-1, keepdim=True)
    if metric == "euclidean":
        return x - x.mean(-2, keepdim=True)
    return x


def _size_batches(index: torch.Tensor, sizes: np.ndarray, bs: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Batches ``(centres, neighbourhoods)`` of at most ``bs`` centres in order of neighbourhood size, each
    padded only to its own largest neighbourhood (the edge of a volume has many small spheres)."""
    order = np.argsort(sizes, kind="stable")
    out = []
    for s in range(0, len(order), bs):
        sel = order[s:s + bs]
        k = max(1, int(sizes[sel[-1]]))
        sel_t = torch.as_tensor(sel, device=index.device)
        out.append((sel_t, index[sel_t, :k]))
    return out


def _coord_names(da: xr.DataArray, f: str, coords) -> list[str]:
    if coords is not None:
        names = [coords] if isinstance(coords, str) else list(coords)
        bad = [c for c in names if c not in da.coords or da[c].dims != (f,)]
        if bad:
            raise SchemaError(f"searchlight: coordinates {bad} are not coordinates on {f!r}")
        return names
    for names in _COORD_SETS:
        if all(c in da.coords and da[c].dims == (f,) for c in names):
            return list(names)
    raise SchemaError(f"searchlight: no positions on {f!r}; expected coordinates x/y/z or i/j/k (voxels, e.g. from "
                      "nb.io nilearn maskers) or pos_x/pos_y/pos_z (sensors, from nb.io.from_mne), or pass coords=...")


def searchlight(
    brain: xr.DataArray, models, *, radius: float, method: str = "spearman", metric: str = "correlation",
    model_metric: str = "correlation", feature_dim: str | None = None, coords: Sequence[str] | None = None,
    centers: Sequence[int] | None = None, sample_dim: str = "stimulus", cv_dim: str | None = None, cov=None,
    batch_size: int | None = None, progress: bool | None = None, dtype=None, device=None,
) -> xr.DataArray:
    """Searchlight RSA: an RDM per neighbourhood (sphere of ``radius`` around each centre) vs model RDMs.

    Works for fMRI voxels (positions from the ``x, y, z`` or ``i, j, k`` coordinates on ``voxel``)
    and M/EEG sensors (``pos_x, pos_y, pos_z`` on ``channel``, mapped over ``time``). Neighbourhoods
    are gathered in padded batches (centres grouped by neighbourhood size) so the RDMs of a whole batch
    come from one batched GEMM. On the CPU, correlation/cosine/euclidean searchlights with Pearson,
    Spearman or rho-a run their batches side by side, one per core; Spearman and rho-a rank each RDM in a
    compiled kernel (numba; the first call in a fresh install compiles it, a few seconds, then it is
    cached). 10,164 spheres of 123 voxels and 100 conditions take ~0.5 s on 2 cores, ~60x rsatoolbox.

    Offsets that the metric ignores (each pattern's mean for correlation, each feature's mean over
    stimuli for euclidean) are removed first, so float32 stays accurate on raw data with a large
    baseline. Cosine has no such invariance: for raw BOLD-like data (all patterns nearly parallel) pass
    ``dtype="float64"``.

    Parameters
    ----------
    brain : xr.DataArray
        ``(stimulus|trial, voxel)`` responses or ``(trial|stimulus, channel, time)`` epochs; extra dims
        are mapped over.
    models : xr.DataArray
        Model RDMs (or activations, turned into RDMs with ``model_metric``).
    radius : float
        Sphere radius in the unit of the positions (inclusive).
    method, metric : str
        Comparison method and brain RDM metric (correlation, euclidean, cosine, poisson, crossnobis).
    coords : sequence of str, optional
        Names of the position coordinates on the feature dim.
    centers : sequence of int, optional
        Positions (indices along the feature dim) of the centres; default every voxel/sensor.
    batch_size : int, optional
        Centres per batch (default: about 512 MB of work arrays).
    progress : bool, optional
        Progress bar counting centres: ``True``/``False``; ``None`` (default, automatic) shows it only when
        someone watches (:func:`neurobridge.core.progress_enabled`).

    Returns
    -------
    xr.DataArray
        Dims ``(*model_dims, *other_dims, feature_dim)`` over the centres, with the centres' coordinates
        (``i, j, k`` / ``x, y, z`` for NIfTI, ``pos_*`` / names for topomaps) and ``n_features``.

    Examples
    --------
    >>> import numpy as np, xarray as xr, neurobridge as nb
    >>> ijk = np.stack(np.meshgrid(range(4), range(4), range(3), indexing="ij"), -1).reshape(-1, 3)
    >>> betas = nb.core.fmri_responses(np.random.randn(6, 48), stimulus=range(6), dim="stimulus",
    ...                                voxel_coords={"i": ijk[:, 0], "j": ijk[:, 1], "k": ijk[:, 2]})
    >>> model = nb.rsa.rdm(xr.DataArray(np.random.rand(6, 3), dims=("stimulus", "unit"), coords={"stimulus": range(6)}))
    >>> nb.rsa.searchlight(betas, model, radius=1.5, progress=False).dims
    ('voxel',)
    """
    if method not in COMPARE_METHODS:
        raise ValueError(f"unknown comparison method {method!r}; expected one of {list(COMPARE_METHODS)}")
    x, counts, lead, f, uniques = _patterns(brain, sample_dim=sample_dim, feature_dim=feature_dim, metric=metric,
                                            cv_dim=cv_dim, dtype=dtype, device=device)
    names = _coord_names(brain, f, coords)
    pos = np.stack([np.asarray(brain[c].values, dtype=float) for c in names], -1)
    center_idx = np.arange(brain.sizes[f]) if centers is None else np.asarray(centers, dtype=int)
    pad, sizes = _padded_neighbourhoods(pos, radius, center_idx, sort=False)  # order inside a sphere: irrelevant
    k_max = pad.shape[1]
    p = x.shape[-1]
    index = torch.as_tensor(pad, device=x.device)
    x = torch.cat([x, torch.zeros(*x.shape[:-1], 1, dtype=x.dtype, device=x.device)], -1)  # padding column
    vm, m_lead, m = _model_vectors(models, uniques, model_metric=model_metric, dtype=x.dtype, device=x.device)
    m_shape = list(vm.shape[:-1])
    vm = vm.reshape(-1, vm.shape[-1])
    prepared = _prepare(vm, method) if method in DOT_METHODS else None
    n = len(uniques)
    lead_shape = list(x.shape[: len(lead)])
    n_lead = math.prod(lead_shape)
    core = x.shape[len(lead):-1]  # (n,) or (F, n)
    xf = x.reshape(n_lead, *core, p + 1)
    per_centre = n_lead * (math.prod(core) * k_max * 2 + n * n * 3)
    bs = batch_size or _auto_batch(n, per_centre, budget_bytes=_SEARCHLIGHT_BATCH_BYTES, itemsize=x.element_size())
    n_c = len(pad)
    out = torch.empty(n_lead, n_c, vm.shape[0], dtype=x.dtype, device=x.device)
    fast = counts is None and metric in ("correlation", "cosine", "euclidean")
    full_pearson = fast and method == "pearson"
    fused_rank = fast and _rank_kernels_apply(x, method, n * (n - 1) // 2)
    on_cores = (fused_rank or full_pearson) and x.device.type == "cpu"
    if on_cores:  # a few hundred centres per batch: their matrices stay in cache for the next step
        bs = batch_size or _auto_batch(n, per_centre, budget_bytes=_SIDE_BY_SIDE_BATCH_BYTES,
                                       itemsize=x.element_size())
    batches = _size_batches(index, sizes, bs)
    if fast:
        xt = _offsets_removed(xf[..., :p], metric)
        xt = torch.cat([xt, xf[..., p:]], -1).transpose(-1, -2).contiguous()  # (L, p + 1, n): gathered rows
        iu, ju = torch.triu_indices(n, n, offset=1, device=x.device)
        mfull = _symmetric_model_matrix(prepared, n, iu, ju) if full_pearson else None
    if fused_rank:  # ranks straight from the inner products: no normalised or condensed copies
        from ._rank_kernels import rank_dot_matrices

        def work(batch, ws):
            sel, idx = batch
            k = (idx < p).sum(-1).to(x.dtype)
            prods, scale = _sphere_products(xt, idx, k, metric, ws)
            res = rank_dot_matrices(prods.view(-1, n, n), scale.view(-1, n), k.repeat(n_lead), metric, prepared,
                                    method, threads=1)
            out[:, sel] = res.view(n_lead, -1, res.shape[-1])
    elif full_pearson:
        def work(batch, ws):
            sel, idx = batch
            mats = _sphere_matrices(xt, idx, (idx < p).sum(-1).to(x.dtype), metric, ws)
            out[:, sel] = _pearson_from_matrices(mats, metric, mfull)
    if on_cores:  # one worker per core, single-threaded torch ops and a workspace per worker
        local = threading.local()

        def run(batch):
            if not hasattr(local, "ws"):
                local.ws = Workspace(x.dtype, x.device)
            work(batch, local.ws)

        n_workers = torch.get_num_threads()  # read before cpu_threads(1) lowers it
        with cpu_threads(1):
            side_by_side(run, batches, n_workers, progress=progress, desc="searchlight",
                         sizes=[len(sel) for sel, _ in batches], unit="centre")
        batches = []
    elif fast:
        flat_upper = iu * n + ju
        ws = Workspace(x.dtype, x.device)
    with progress_bar(total=sum(len(sel) for sel, _ in batches), desc="searchlight", unit="centre",
                      progress=progress if batches else False) as bar:  # no second, empty bar after side_by_side
        for sel, idx in batches:
            v = idx < p
            if fused_rank or full_pearson:  # on a GPU
                work((sel, idx), ws)
                bar.update(len(sel))
                continue
            if fast:
                vec = _condensed_distances(_sphere_matrices(xt, idx, v.sum(-1).to(x.dtype), metric, ws), metric,
                                           flat_upper, ws)
            else:
                g = xf[..., idx]  # (L, *core, c, K)
                g = g.movedim(-2, 1)  # (L, c, *core, K)
                if counts is not None:
                    vec = crossnobis_tensor(g, counts, valid=v, condensed=True)
                else:
                    vec = rdm_tensor(g, metric, valid=v, condensed=True)
            out[:, sel] = _compare_block(vec, vm, prepared, method, cov)
            bar.update(len(sel))
    out = out.permute(2, 0, 1).reshape(*m_shape, *lead_shape, n_c)
    coords_out = _lead_coords(m, m_lead)
    coords_out.update(_lead_coords(brain, lead))
    sub = brain.isel({f: center_idx})
    for name, c in sub.coords.items():
        if c.dims == (f,):
            coords_out[name] = c.variable
    coords_out["n_features"] = ((f,), sizes)
    attrs = _clean_attrs(brain.attrs)
    attrs.update(method=method, metric=metric, radius=float(radius))
    return xr.DataArray(out.cpu().numpy(), dims=[*m_lead, *lead, f], coords=coords_out, attrs=attrs,
                        name="similarity")
