"""Similarity indices on paired representations: CKA, Procrustes shape distance, mutual k-NN alignment.

Pure torch kernels (``*_tensor``) take patterns of shape (..., n_stimuli, n_features) whose leading
axes broadcast; the labelled functions align two DataArrays on ``stimulus`` and broadcast their other
dims by name (dims only in ``b`` first, then ``a``'s), like :func:`neurobridge.rsa.compare`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
import xarray as xr

from neurobridge.core import SchemaError, check_finite

from ._rdm import _FEATURE_DIMS, _as_t, _lead_coords, _sample_axis

__all__ = [
    "cka", "cka_tensor", "procrustes_distance", "procrustes_distance_tensor", "mutual_knn", "mutual_knn_tensor",
]


# ------------------------------------------------------------------------------------------ kernels
def _center_rows(x: torch.Tensor) -> torch.Tensor:
    return x - x.mean(-2, keepdim=True)


def _median(v: torch.Tensor) -> torch.Tensor:
    """numpy-style median over the last axis (mean of the two middle values)."""
    n = v.shape[-1]
    lo = torch.kthvalue(v, (n + 1) // 2, dim=-1).values
    hi = torch.kthvalue(v, n // 2 + 1, dim=-1).values
    return (lo + hi) / 2


def _gram(x: torch.Tensor, kernel: str, sigma: float) -> torch.Tensor:
    k = x @ x.transpose(-1, -2)
    if kernel == "linear":
        return k
    sq = torch.diagonal(k, dim1=-2, dim2=-1)
    d2 = (sq[..., :, None] + sq[..., None, :] - 2 * k).clamp_min(0)
    med = _median(d2.flatten(-2))
    return torch.exp(-d2 / (2 * sigma**2 * med[..., None, None]))


def _center_gram(k: torch.Tensor, debiased: bool) -> torch.Tensor:
    n = k.shape[-1]
    if not debiased:
        rm = k.mean(-1, keepdim=True)
        return k - rm - rm.transpose(-1, -2) + rm.mean(-2, keepdim=True)
    k = k.clone()
    k.diagonal(dim1=-2, dim2=-1).zero_()
    means = k.sum(-2) / (n - 2)
    means = means - means.sum(-1, keepdim=True) / (2 * (n - 1))
    k = k - means[..., :, None] - means[..., None, :]
    k.diagonal(dim1=-2, dim2=-1).zero_()
    return k


def cka_tensor(x: torch.Tensor, y: torch.Tensor, *, kernel: str = "linear", debiased: bool = False,
               sigma: float = 1.0) -> torch.Tensor:
    """Centred kernel alignment (Kornblith et al. 2019) of paired patterns.

    Parameters
    ----------
    x : torch.Tensor, shape (..., n, p)
    y : torch.Tensor, shape (..., n, q)
        The same ``n`` stimuli in the same order; leading axes broadcast.
    kernel : {"linear", "rbf"}
        ``rbf`` uses ``exp(-d^2 / (2 sigma^2 median(d^2)))`` (median over the full distance matrix).
    debiased : bool
        Use the unbiased HSIC estimator (Song et al. 2012), as in Kornblith's reference code.
    sigma : float
        RBF bandwidth as a fraction of the median distance.

    Returns
    -------
    torch.Tensor, shape broadcast(x.shape[:-2], y.shape[:-2])

    Examples
    --------
    >>> x = torch.randn(20, 5, dtype=torch.float64)
    >>> q, _ = torch.linalg.qr(torch.randn(5, 5, dtype=torch.float64))
    >>> round(float(cka_tensor(x, 3 * x @ q)), 6)
    1.0
    """
    if kernel not in ("linear", "rbf"):
        raise ValueError(f"kernel must be 'linear' or 'rbf', got {kernel!r}")
    n = x.shape[-2]
    if y.shape[-2] != n:
        raise ValueError(f"x and y must hold the same stimuli: {n} vs {y.shape[-2]} rows")
    if n < (4 if debiased else 2):
        raise ValueError(f"CKA needs at least {4 if debiased else 2} stimuli{' (debiased)' if debiased else ''}, got {n}")
    if kernel == "linear" and not debiased and max(x.shape[-1], y.shape[-1]) < n:
        # feature-space form: ||Xc^T Yc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F), no n x n matrices
        xc, yc = _center_rows(x), _center_rows(y)
        xy = torch.linalg.matrix_norm(xc.transpose(-1, -2) @ yc) ** 2
        xx = torch.linalg.matrix_norm(xc.transpose(-1, -2) @ xc)
        yy = torch.linalg.matrix_norm(yc.transpose(-1, -2) @ yc)
        return xy / (xx * yy)
    kx = _center_gram(_gram(x, kernel, sigma), debiased)
    ky = _center_gram(_gram(y, kernel, sigma), debiased)
    xy = (kx * ky).sum((-1, -2))
    xx = (kx * kx).sum((-1, -2))
    yy = (ky * ky).sum((-1, -2))
    return xy / torch.sqrt(xx * yy)


def procrustes_distance_tensor(x: torch.Tensor, y: torch.Tensor, *, kind: str = "angular") -> torch.Tensor:
    """Orthogonal Procrustes shape distance (Williams et al. 2021) between paired patterns.

    Both patterns are centred over stimuli and scaled to unit Frobenius norm; the smaller feature space
    is zero-padded. ``angular``: ``arccos ||X^T Y||_*`` (a metric, in radians, 0 to pi/2);
    ``euclidean``: ``min_Q ||X - Y Q||_F = sqrt(2 - 2 ||X^T Y||_*)`` over orthogonal ``Q``.

    Parameters
    ----------
    x : torch.Tensor, shape (..., n, p)
    y : torch.Tensor, shape (..., n, q)
    kind : {"angular", "euclidean"}

    Returns
    -------
    torch.Tensor, shape broadcast(x.shape[:-2], y.shape[:-2])

    Examples
    --------
    >>> x = torch.randn(10, 3, dtype=torch.float64)
    >>> q, _ = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64))
    >>> float(procrustes_distance_tensor(x, 2 * x @ q + 1)) < 1e-6
    True
    """
    if kind not in ("angular", "euclidean"):
        raise ValueError(f"kind must be 'angular' or 'euclidean', got {kind!r}")
    if x.shape[-2] != y.shape[-2]:
        raise ValueError(f"x and y must hold the same stimuli: {x.shape[-2]} vs {y.shape[-2]} rows")
    xc, yc = _center_rows(x), _center_rows(y)
    nx = torch.linalg.matrix_norm(xc)[..., None, None]
    ny = torch.linalg.matrix_norm(yc)[..., None, None]
    if bool((nx == 0).any()) or bool((ny == 0).any()):
        raise ValueError("Procrustes distance is undefined for a representation that is constant over stimuli")
    nuc = torch.linalg.svdvals((xc / nx).transpose(-1, -2) @ (yc / ny)).sum(-1).clamp(-1.0, 1.0)
    if kind == "angular":
        return torch.arccos(nuc)
    return torch.sqrt((2 - 2 * nuc).clamp_min(0))


def _knn(x: torch.Tensor, k: int, metric: str, chunk: int) -> torch.Tensor:
    """Indices (n, k) of each row's k nearest other rows, computed in row blocks (no n x n matrix kept)."""
    n = x.shape[0]
    if metric == "cosine":
        norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
        x = x / torch.where(norm > 0, norm, torch.ones_like(norm))
        sq = None
    else:
        sq = (x * x).sum(-1)
    out = torch.empty(n, k, dtype=torch.int64, device=x.device)
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        score = x[s:e] @ x.T  # similarity: larger is nearer
        if sq is not None:
            score = 2 * score - sq[None, :]  # -(||a-b||^2) + ||a||^2, same order per row
        rows = torch.arange(s, e, device=x.device)
        score[rows - s, rows] = -torch.inf
        out[s:e] = torch.topk(score, k, dim=-1).indices
    return out


def mutual_knn_tensor(x: torch.Tensor, y: torch.Tensor, *, k: int = 10, metric: str = "cosine",
                      chunk: int | None = None) -> torch.Tensor:
    """Mutual k-nearest-neighbour alignment (Huh et al. 2024): mean over stimuli of ``|N_x(i) & N_y(i)| / k``.

    Neighbours exclude the stimulus itself. Computed in row blocks: memory is O(chunk x n + n x k^2),
    never an n x n mask.

    Parameters
    ----------
    x : torch.Tensor, shape (..., n, p)
    y : torch.Tensor, shape (..., n, q)
    k : int
        Number of neighbours (``1 <= k < n``).
    metric : {"cosine", "euclidean"}
    chunk : int, optional
        Rows per block (default: about 64 MB of similarities).

    Returns
    -------
    torch.Tensor, shape broadcast(x.shape[:-2], y.shape[:-2]), values in [0, 1]

    Examples
    --------
    >>> x = torch.randn(50, 8)
    >>> float(mutual_knn_tensor(x, 2 * x, k=5))
    1.0
    """
    if metric not in ("cosine", "euclidean"):
        raise ValueError(f"metric must be 'cosine' or 'euclidean', got {metric!r}")
    n = x.shape[-2]
    if y.shape[-2] != n:
        raise ValueError(f"x and y must hold the same stimuli: {n} vs {y.shape[-2]} rows")
    if not 1 <= k < n:
        raise ValueError(f"k must be between 1 and n_stimuli - 1 = {n - 1}, got {k}")
    chunk = chunk or max(1, int(16_000_000 // n))
    lead = torch.broadcast_shapes(x.shape[:-2], y.shape[:-2])
    xf = x.reshape(-1, n, x.shape[-1])
    yf = y.reshape(-1, n, y.shape[-1])
    kx = [_knn(v, k, metric, chunk) for v in xf]
    ky = [_knn(v, k, metric, chunk) for v in yf]
    ix = torch.arange(len(kx)).reshape(x.shape[:-2]).expand(lead).reshape(-1)
    iy = torch.arange(len(ky)).reshape(y.shape[:-2]).expand(lead).reshape(-1)
    out = torch.empty(len(ix), dtype=x.dtype if x.is_floating_point() else torch.float32, device=x.device)
    for o, (a, b) in enumerate(zip(ix.tolist(), iy.tolist(), strict=True)):
        hits = (kx[a][:, :, None] == ky[b][:, None, :]).any(-1).sum(-1)
        out[o] = hits.to(out.dtype).mean() / k
    return out.reshape(lead)


# ---------------------------------------------------------------------------------------- labelled
def _patterns(da: xr.DataArray, name: str, feature_dim, sample_dim: str):
    if not isinstance(da, xr.DataArray):
        raise SchemaError(f"{name} must be an xr.DataArray with a 'stimulus' dim (or trials with a stimulus "
                          f"coordinate), got {type(da).__name__}")
    obs, labels, uniques = _sample_axis(da, sample_dim)
    if obs != sample_dim:  # trials: average repetitions
        from neurobridge.core import average_repetitions

        da = average_repetitions(da)
        obs = "stimulus"
    if feature_dim is None:
        hits = [d for d in _FEATURE_DIMS if d in da.dims]
        if not hits:
            raise SchemaError(f"{name}: cannot tell which dim holds the features among {tuple(da.dims)}; pass "
                              "feature_dim=...")
        feats = [hits[0]]
    else:
        feats = [feature_dim] if isinstance(feature_dim, str) else list(feature_dim)
        missing = [f for f in feats if f not in da.dims]
        if missing:
            raise SchemaError(f"{name}: feature dims {missing} not among {tuple(da.dims)}")
    lead = [d for d in da.dims if d not in (obs, *feats)]
    x = da.stack(_feat=feats) if len(feats) > 1 else da.rename({feats[0]: "_feat"})
    return x.transpose(*lead, obs, "_feat"), lead, np.asarray(da[obs].values) if obs in da.coords else np.asarray(uniques)


def _paired(a, b, fn: Callable, *, feature_dim, sample_dim, dtype, device, name: str) -> xr.DataArray:
    xa, lead_a, ids_a = _patterns(a, "a", feature_dim, sample_dim)
    xb, lead_b, ids_b = _patterns(b, "b", feature_dim, sample_dim)
    if set(ids_a.tolist()) != set(ids_b.tolist()):
        common = sorted(set(ids_a.tolist()) & set(ids_b.tolist()))
        raise SchemaError(f"{name}: a and b hold different stimuli ({len(ids_a)} vs {len(ids_b)}, {len(common)} shared); "
                          "select the shared ones first (nb.core.align or .sel(stimulus=...))")
    obs_b = xb.dims[-2]
    xb = xb.isel({obs_b: [int(np.flatnonzero(ids_b == s)[0]) for s in ids_a]}) if not np.array_equal(ids_a, ids_b) else xb
    b_only = [d for d in lead_b if d not in lead_a]
    for d in lead_b:
        if d in lead_a and xa.sizes[d] != xb.sizes[d]:
            raise SchemaError(f"{name}: shared dim {d!r} has {xa.sizes[d]} entries in a and {xb.sizes[d]} in b")
    ta = _as_t(xa, dtype=dtype, device=device)
    tb = _as_t(xb.transpose(*b_only, *[d for d in lead_a if d in lead_b], obs_b, "_feat"), dtype=ta.dtype, device=ta.device)
    check_finite(ta, f"{name}: a")
    check_finite(tb, f"{name}: b")
    x = ta.reshape(*([1] * len(b_only)), *ta.shape)
    y = tb.reshape(*[xb.sizes[d] for d in b_only], *[xb.sizes[d] if d in lead_b else 1 for d in lead_a], *tb.shape[-2:])
    val = fn(x, y)
    coords = _lead_coords(b, b_only)
    coords.update(_lead_coords(a, lead_a))
    shape = [xb.sizes[d] for d in b_only] + [xa.sizes[d] for d in lead_a]
    return xr.DataArray(val.detach().cpu().numpy().reshape(shape), dims=[*b_only, *lead_a], coords=coords, name=name)


def cka(a: xr.DataArray, b: xr.DataArray, *, kernel: str = "linear", debiased: bool = False, sigma: float = 1.0,
        feature_dim: str | Sequence[str] | None = None, sample_dim: str = "stimulus", dtype=None,
        device=None) -> xr.DataArray:
    """Centred kernel alignment between two representations of the same stimuli.

    Parameters
    ----------
    a, b : xr.DataArray
        Patterns with a ``stimulus`` dim (or trials with a ``stimulus`` coordinate, averaged) and a
        feature dim (default the first of channel, voxel, unit, latent, feature); other dims broadcast
        by name (``b``'s own dims first), e.g. layers x time.
    kernel, debiased, sigma
        See :func:`cka_tensor`.
    feature_dim : str or sequence of str, optional
        The feature dim(s) of both inputs; by default each input's own (e.g. ``unit`` vs ``channel``).

    Returns
    -------
    xr.DataArray named ``cka``

    Examples
    --------
    >>> import numpy as np, neurobridge as nb
    >>> acts = nb.core.activations(np.random.rand(20, 6), stimulus=range(20))
    >>> round(float(nb.rsa.cka(acts, 2 * acts)), 6)
    1.0
    """
    return _paired(a, b, lambda x, y: cka_tensor(x, y, kernel=kernel, debiased=debiased, sigma=sigma),
                   feature_dim=feature_dim, sample_dim=sample_dim, dtype=dtype, device=device, name="cka")


def procrustes_distance(a: xr.DataArray, b: xr.DataArray, *, kind: str = "angular",
                        feature_dim: str | Sequence[str] | None = None, sample_dim: str = "stimulus", dtype=None,
                        device=None) -> xr.DataArray:
    """Orthogonal Procrustes / angular shape distance between two representations (see the tensor kernel).

    Examples
    --------
    >>> import numpy as np, neurobridge as nb
    >>> acts = nb.core.activations(np.random.rand(20, 6), stimulus=range(20))
    >>> float(nb.rsa.procrustes_distance(acts, 3 * acts, dtype="float64")) < 1e-6
    True
    """
    return _paired(a, b, lambda x, y: procrustes_distance_tensor(x, y, kind=kind), feature_dim=feature_dim,
                   sample_dim=sample_dim, dtype=dtype, device=device, name=f"procrustes_{kind}")


def mutual_knn(a: xr.DataArray, b: xr.DataArray, *, k: int = 10, metric: str = "cosine",
               feature_dim: str | Sequence[str] | None = None, sample_dim: str = "stimulus", dtype=None,
               device=None) -> xr.DataArray:
    """Mutual k-nearest-neighbour alignment between two representations (see :func:`mutual_knn_tensor`).

    Examples
    --------
    >>> import numpy as np, neurobridge as nb
    >>> acts = nb.core.activations(np.random.rand(30, 6), stimulus=range(30))
    >>> float(nb.rsa.mutual_knn(acts, acts, k=5))
    1.0
    """
    if not math.isfinite(k) or int(k) != k:
        raise ValueError(f"k must be an integer, got {k!r}")
    return _paired(a, b, lambda x, y: mutual_knn_tensor(x, y, k=int(k), metric=metric), feature_dim=feature_dim,
                   sample_dim=sample_dim, dtype=dtype, device=device, name="mutual_knn")
