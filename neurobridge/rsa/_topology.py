"""Topological RSA (tRSA; Lin & Kriegeskorte, "The topology and geometry of neural representations", PNAS 2024).

What is implemented, exactly:

- The geo-topological (GT) transform of an RDM with a lower threshold ``l`` and an upper threshold ``u``
  (``l <= u``): ``f(d) = 0`` for ``d <= l``, ``(d - l) / (u - l)`` for ``l < d < u`` and ``1`` for ``d >= u``;
  for ``l == u`` it is the step ``f(d) = 1[d > l]``. The thresholds are by default quantiles of each RDM's
  off-diagonal (``i < j``) dissimilarities (numpy's ``"linear"`` quantile, as ``rsatoolbox.rdm.
  geotopological_transform``, which pools all RDMs of an ``RDMs`` object; here each RDM gets its own), or
  absolute dissimilarities (``quantile=False``). The result is the paper's representational geo-topological
  matrix (RGTM); the diagonal stays 0. ``l = 0, u = 1`` (quantiles) is the min-max rescaled RDM (pure geometry),
  ``l = u`` a binary matrix: one minus the adjacency matrix of the graph that links stimuli closer than ``l``.
- The descriptor family: the RGTMs over a grid of ``(l, u)`` with ``l <= u`` along a ``threshold`` dim
  (coordinates ``lower`` and ``upper``), so every rsa function (``compare``, inference, ceilings) takes it.
- Graphs: the thresholded adjacency matrix ``A_ij = 1[d_ij <= t]`` (``i != j``), and the Jaccard index (or Dice
  coefficient) between the edge sets of two such graphs; and :func:`compare_topology`, the RDM comparison of the
  two systems' RGTMs at every ``(l, u)`` of the grid, as a ``(lower, upper)`` map.

Not implemented: the geodesic descriptors (RGDM: shortest paths over the RGTM graph) and the adaptive
threshold selection (AGTDM) of the later tRSA papers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import xarray as xr

from neurobridge.core import SchemaError, check_finite, validate

from ._labelled import compare
from ._rdm import _as_t, _lead_coords, condensed_tensor, square_tensor

__all__ = [
    "geotopological", "geotopological_tensor", "geotopological_family", "adjacency", "graph_similarity",
    "compare_topology", "GRAPH_METHODS",
]

GRAPH_METHODS = ("jaccard", "dice")
"""Edge-set overlaps of :func:`graph_similarity`: ``|A & B| / |A | B|`` and ``2 |A & B| / (|A| + |B|)``."""

_GRID = tuple(round(0.1 * k, 10) for k in range(11))


# ------------------------------------------------------------------------------------------ checks
def _check_levels(lower, upper, quantile: bool, *, name: str = "geotopological") -> tuple[float, float]:
    vals = []
    for label, v in (("lower", lower), ("upper", upper)):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise TypeError(f"{name}: {label} must be a number, got {type(v).__name__}")
        v = float(v)
        if not math.isfinite(v):
            raise ValueError(f"{name}: {label}={v} is not finite; pass a number")
        if quantile and not 0.0 <= v <= 1.0:
            raise ValueError(f"{name}: {label}={v} is a quantile and must lie in [0, 1]; pass a value in [0, 1] "
                             "or quantile=False for an absolute dissimilarity")
        vals.append(v)
    if vals[0] > vals[1]:
        raise ValueError(f"{name}: lower={vals[0]} is above upper={vals[1]}; the thresholds must satisfy "
                         "lower <= upper (swap them)")
    return vals[0], vals[1]


def _grid(values, name: str, quantile: bool) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(_GRID if values is None else values, dtype=float))
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"geotopological_family: {name} must be a non-empty 1-d sequence of thresholds, got shape "
                         f"{arr.shape}")
    for v in arr:
        _check_levels(float(v), float(v), quantile, name="geotopological_family")
    if np.unique(arr).size != arr.size:
        raise ValueError(f"geotopological_family: {name} has repeated thresholds {arr.tolist()}; pass distinct values")
    return arr


# ------------------------------------------------------------------------------------------ kernels
def _quantiles(v: torch.Tensor, qs: Sequence[float]) -> torch.Tensor:
    """numpy ``"linear"`` quantiles of the last axis, shape ``(len(qs), ...)`` (one sort for every level; no size
    limit, unlike ``torch.quantile``)."""
    s = torch.sort(v, dim=-1).values
    m = s.shape[-1]
    out = []
    for q in qs:
        pos = q * (m - 1)
        lo = min(int(math.floor(pos)), m - 1)
        hi = min(lo + 1, m - 1)
        frac = pos - lo
        out.append(s[..., lo] + (s[..., hi] - s[..., lo]) * frac if frac > 0 else s[..., lo])
    return torch.stack(out)


def _transform(v: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """GT transform of ``v (..., P)`` with absolute thresholds ``lo, hi`` of shape ``(...)``."""
    lo, hi = lo[..., None], hi[..., None]
    width = hi - lo
    ramp = ((v - lo) / torch.where(width > 0, width, torch.ones_like(width))).clamp(0, 1)
    return torch.where(width > 0, ramp, (v > lo).to(v.dtype))


def geotopological_tensor(v: torch.Tensor, lower: float = 0.1, upper: float = 0.5, *,
                          quantile: bool = True) -> torch.Tensor:
    """Geo-topological transform of condensed RDM vectors ``(..., n_pairs)``, each vector with its own thresholds.

    Parameters
    ----------
    v : torch.Tensor, shape (..., n_pairs)
        Dissimilarities (e.g. from :func:`neurobridge.rsa.condensed_tensor`).
    lower, upper : float
        Thresholds ``l <= u``: quantiles in [0, 1] of each vector (``quantile=True``) or dissimilarities.
    quantile : bool
        Read ``lower``/``upper`` as quantiles (numpy ``"linear"`` interpolation) or as absolute values.

    Returns
    -------
    torch.Tensor, same shape: 0 below ``l``, 1 above ``u``, linear in between (a step at ``l`` when ``l == u``).

    Examples
    --------
    >>> geotopological_tensor(torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0]), 1.0, 3.0, quantile=False).tolist()
    [0.0, 0.0, 0.5, 1.0, 1.0]
    """
    lower, upper = _check_levels(lower, upper, quantile)
    v = torch.as_tensor(v)
    if not v.is_floating_point():
        v = v.to(torch.get_default_dtype())
    if v.ndim == 0 or v.shape[-1] == 0:
        raise ValueError(f"geotopological_tensor: expected vectors (..., n_pairs) with n_pairs >= 1, got shape "
                         f"{tuple(v.shape)}")
    check_finite(v, "geotopological: the dissimilarities", fix="drop the affected stimuli first")
    if quantile:
        lo, hi = _quantiles(v, [lower, upper])
    else:
        lo = torch.full(v.shape[:-1], lower, dtype=v.dtype, device=v.device)
        hi = torch.full(v.shape[:-1], upper, dtype=v.dtype, device=v.device)
    return _transform(v, lo, hi)


# ---------------------------------------------------------------------------------------- labelled
def _rdm_input(da, name: str) -> tuple[xr.DataArray, bool]:
    """The RDM DataArray and whether it is condensed (``pair`` dim)."""
    if not isinstance(da, xr.DataArray):
        raise SchemaError(f"{name}: expected an RDM xr.DataArray (nb.rsa.rdm / nb.core.rdm, dims (..., stimulus, "
                          f"stimulus2) or condensed (..., pair)), got {type(da).__name__}; wrap arrays with "
                          "nb.core.rdm(array, stimulus=ids)")
    if "pair" in da.dims:
        return da, True
    return validate(da, "rdm", check_values=False), False


def _vectors(da: xr.DataArray, condensed: bool, lead: list, dtype, device, name: str) -> torch.Tensor:
    """Condensed vectors ``(*lead, n_pairs)`` of an RDM DataArray, checked finite."""
    if condensed:
        v = _as_t(da.transpose(*lead, "pair"), dtype=dtype, device=device)
    else:
        v = condensed_tensor(_as_t(da.transpose(*lead, "stimulus", "stimulus2"), dtype=dtype, device=device))
    if v.shape[-1] == 0:
        raise SchemaError(f"{name}: the RDMs have no off-diagonal entries (fewer than 2 stimuli)")
    check_finite(v, f"{name}: the RDM", fix="drop the affected stimuli first")
    return v


def _rebuild(vals: torch.Tensor, da: xr.DataArray, condensed: bool, lead: list, extra: dict, attrs: dict,
             name: str, new_dims: Sequence[str] = ()) -> xr.DataArray:
    """A DataArray like ``da`` (same dim order after ``new_dims``) holding condensed ``vals (*new, *lead, P)``."""
    if condensed:
        arr = vals.detach().cpu().numpy()
        dims = (*new_dims, *lead, "pair")
    else:
        arr = square_tensor(vals, diagonal=0.0).detach().cpu().numpy()
        dims = (*new_dims, *lead, "stimulus", "stimulus2")
    coords = {k: c.variable for k, c in da.coords.items()}
    coords.update(extra)
    attrs = {**da.attrs, **attrs}
    if isinstance(attrs.get("metric"), str):  # as rsatoolbox names its transformed measures
        attrs["metric"] = "geo-topological " + attrs["metric"]
    out = xr.DataArray(arr, dims=dims, coords=coords, attrs=attrs, name=name)
    return out.transpose(*new_dims, *da.dims)


def geotopological(rdm: xr.DataArray, lower: float = 0.1, upper: float = 0.5, *, quantile: bool = True,
                   dtype: str | torch.dtype | None = None,
                   device: str | torch.device | None = None) -> xr.DataArray:
    """Geo-topological transform of RDMs (the RGTM of Lin & Kriegeskorte), broadcasting over their other dims.

    Dissimilarities at or below the lower threshold become 0, at or above the upper threshold 1, and those in
    between are mapped linearly; with ``lower == upper`` the result is the binary matrix ``1[d > lower]``.
    Each RDM (every entry of the leading dims: layer, time, subject, ...) gets its own thresholds.

    Parameters
    ----------
    rdm : xr.DataArray
        RDMs ``(..., stimulus, stimulus2)`` or condensed ``(..., pair)`` (:func:`to_condensed`).
    lower, upper : float
        Thresholds, ``lower <= upper``. The defaults (the 10% and 50% quantiles) are our choice, not the paper's:
        it treats the pair as hyperparameters; scan them with :func:`geotopological_family`.
    quantile : bool
        Thresholds as quantiles in [0, 1] of each RDM's off-diagonal dissimilarities (default) or as absolute
        dissimilarities.
    dtype, device : optional
        Computation dtype/device (float32 default).

    Returns
    -------
    xr.DataArray
        Same dims and coords as ``rdm`` (values in [0, 1], diagonal 0), attrs ``lower``, ``upper``,
        ``quantile`` added and ``metric`` prefixed with "geo-topological ", and coordinates ``lower_threshold``/``upper_threshold`` over the leading dims: the
        absolute dissimilarities used.

    Raises
    ------
    ValueError
        ``lower > upper``, a quantile outside [0, 1], a non-finite threshold.
    SchemaError
        Not an RDM, or NaN/inf dissimilarities.

    Examples
    --------
    >>> import numpy as np, neurobridge as nb
    >>> r = nb.core.rdm(np.array([[0., 1, 2], [1, 0, 3], [2, 3, 0]]), stimulus=list("abc"))
    >>> nb.rsa.geotopological(r, 1.5, 2.5, quantile=False).values.tolist()
    [[0.0, 0.0, 0.5], [0.0, 0.0, 1.0], [0.5, 1.0, 0.0]]
    >>> float(nb.rsa.geotopological(r, 0.0, 0.5)[0, 2])  # quantiles: l = 1, u = 2
    1.0
    """
    lower, upper = _check_levels(lower, upper, quantile)
    da, condensed = _rdm_input(rdm, "geotopological")
    lead = [d for d in da.dims if d not in ("stimulus", "stimulus2", "pair")]
    v = _vectors(da, condensed, lead, dtype, device, "geotopological")
    if quantile:
        lo, hi = _quantiles(v, [lower, upper])
    else:
        lo, hi = torch.full(v.shape[:-1], lower, dtype=v.dtype), torch.full(v.shape[:-1], upper, dtype=v.dtype)
        lo, hi = lo.to(v.device), hi.to(v.device)
    out = _transform(v, lo, hi)
    extra = {"lower_threshold": (tuple(lead), lo.cpu().numpy()), "upper_threshold": (tuple(lead), hi.cpu().numpy())}
    return _rebuild(out, da, condensed, lead, extra, {"lower": lower, "upper": upper, "quantile": int(quantile)},
                    da.name if da.name is not None else "rgtm")


def geotopological_family(rdm: xr.DataArray, lower: Sequence[float] | None = None,
                          upper: Sequence[float] | None = None, *, quantile: bool = True,
                          dtype: str | torch.dtype | None = None,
                          device: str | torch.device | None = None) -> xr.DataArray:
    """The geo-topological descriptor family: RGTMs of the RDMs for every threshold pair of a grid.

    Every ``(l, u)`` of ``lower x upper`` with ``l <= u`` gives one entry of a new leading ``threshold`` dim,
    with coordinates ``lower`` and ``upper`` on it (plain arrays, so the result round-trips netCDF/zarr; make a
    grid with ``fam.set_index(threshold=["lower", "upper"]).unstack("threshold")``). ``l = 0, u = 1`` is the
    min-max scaled RDM (geometry), ``l == u`` the binary graph matrices (topology), the rest interpolate.

    Parameters
    ----------
    rdm : xr.DataArray
        RDMs ``(..., stimulus, stimulus2)`` or condensed ``(..., pair)``.
    lower, upper : sequence of float, optional
        Threshold grids (default ``0, 0.1, ..., 1`` for both: 66 pairs).
    quantile : bool
        Thresholds as quantiles of each RDM (default) or absolute dissimilarities.
    dtype, device : optional
        Computation dtype/device.

    Returns
    -------
    xr.DataArray
        Dims ``("threshold", *rdm.dims)``; coordinates ``lower``, ``upper`` on ``threshold`` and
        ``lower_threshold``/``upper_threshold`` (absolute values) over ``threshold`` and the leading dims.
        ``nb.rsa.compare(fam_a, fam_b)`` pairs the thresholds of two families element by element.

    Examples
    --------
    >>> import numpy as np, neurobridge as nb
    >>> r = nb.rsa.rdm(nb.core.activations(np.random.rand(8, 5), stimulus=range(8)))
    >>> fam = nb.rsa.geotopological_family(r, lower=[0.0, 0.2], upper=[0.2, 1.0])
    >>> fam.dims, fam["lower"].values.tolist(), fam["upper"].values.tolist()
    (('threshold', 'stimulus', 'stimulus2'), [0.0, 0.0, 0.2, 0.2], [0.2, 1.0, 0.2, 1.0])
    """
    lows, ups = _grid(lower, "lower", quantile), _grid(upper, "upper", quantile)
    pairs = [(float(lo), float(hi)) for lo in lows for hi in ups if lo <= hi]
    if not pairs:
        raise ValueError(f"geotopological_family: no pair of lower={lows.tolist()} and upper={ups.tolist()} has "
                         "lower <= upper; pass grids that overlap")
    da, condensed = _rdm_input(rdm, "geotopological_family")
    if "threshold" in da.dims:
        raise SchemaError("geotopological_family: the RDMs already have a 'threshold' dim; rename it first")
    lead = [d for d in da.dims if d not in ("stimulus", "stimulus2", "pair")]
    v = _vectors(da, condensed, lead, dtype, device, "geotopological_family")
    levels = sorted({x for p in pairs for x in p})
    if quantile:
        q = _quantiles(v, levels)
        at = {lv: q[k] for k, lv in enumerate(levels)}
    else:
        at = {lv: torch.full(v.shape[:-1], lv, dtype=v.dtype, device=v.device) for lv in levels}
    out = torch.stack([_transform(v, at[lo], at[hi]) for lo, hi in pairs])
    lo_abs = torch.stack([at[lo] for lo, _ in pairs]).cpu().numpy()
    hi_abs = torch.stack([at[hi] for _, hi in pairs]).cpu().numpy()
    extra = {"lower": ("threshold", np.array([p[0] for p in pairs])),
             "upper": ("threshold", np.array([p[1] for p in pairs])),
             "lower_threshold": (("threshold", *lead), lo_abs), "upper_threshold": (("threshold", *lead), hi_abs)}
    return _rebuild(out, da, condensed, lead, extra, {"quantile": int(quantile)}, "rgtm", new_dims=("threshold",))


def adjacency(rdm: xr.DataArray, threshold: float = 0.1, *, quantile: bool = True,
              dtype: str | torch.dtype | None = None, device: str | torch.device | None = None) -> xr.DataArray:
    """Adjacency matrices of the graphs that link stimuli whose dissimilarity is at most ``threshold``.

    ``A_ij = 1[d_ij <= t]`` for ``i != j`` and ``A_ii = 0``; equals ``1 - geotopological(rdm, t, t)`` off the
    diagonal (the topological end of the descriptor family).

    Parameters
    ----------
    rdm : xr.DataArray
        RDMs ``(..., stimulus, stimulus2)`` or condensed ``(..., pair)``.
    threshold : float
        A quantile in [0, 1] of each RDM's dissimilarities (default: the closest 10% of pairs are edges) or,
        with ``quantile=False``, a dissimilarity.

    Returns
    -------
    xr.DataArray of bool, same dims and coords as ``rdm``, named ``adjacency``.

    Examples
    --------
    >>> import numpy as np, neurobridge as nb
    >>> r = nb.core.rdm(np.array([[0., 1, 2], [1, 0, 3], [2, 3, 0]]), stimulus=list("abc"))
    >>> nb.rsa.adjacency(r, 2.0, quantile=False).values.astype(int).tolist()
    [[0, 1, 1], [1, 0, 0], [1, 0, 0]]
    """
    t, _ = _check_levels(threshold, threshold, quantile, name="adjacency")
    step = geotopological(rdm, t, t, quantile=quantile, dtype=dtype, device=device)
    out = step == 0
    if "pair" not in out.dims:
        out = _zero_diagonal(out)
    return out.rename("adjacency").assign_attrs(threshold=t, quantile=int(quantile))


def _zero_diagonal(a: xr.DataArray) -> xr.DataArray:
    n = a.sizes["stimulus"]
    off = xr.DataArray(~np.eye(n, dtype=bool), dims=("stimulus", "stimulus2"))
    return (a & off).transpose(*a.dims)


def _edge_vectors(g: xr.DataArray, name: str, threshold: float, quantile: bool, dtype, device,
                  order=None) -> xr.DataArray:
    """Condensed 0/1 edge indicators ``(*lead, pair)`` of an adjacency (bool) or RDM DataArray."""
    da, condensed = _rdm_input(g, name)
    if condensed:
        ids = None
    else:
        ids = np.asarray(da["stimulus"].values)
        if order is not None:
            if len(order) != len(ids) or set(order.tolist()) != set(ids.tolist()):
                raise SchemaError(f"graph_similarity: a and b are over different stimuli ({len(order)} vs {len(ids)}); "
                                  "select the shared stimuli first, e.g. r.sel(stimulus=ids, stimulus2=ids)")
            if not np.array_equal(order, ids):
                da = da.sel(stimulus=order, stimulus2=order)
    if da.dtype != bool:
        da = adjacency(da, threshold, quantile=quantile, dtype=dtype, device=device)
    lead = [d for d in da.dims if d not in ("stimulus", "stimulus2", "pair")]
    if condensed:
        vals = np.asarray(da.transpose(*lead, "pair").values)
    else:
        n = da.sizes["stimulus"]
        i, j = np.triu_indices(n, k=1)
        vals = np.asarray(da.transpose(*lead, "stimulus", "stimulus2").values)[..., i, j]
    return xr.DataArray(vals.astype(np.float64), dims=(*lead, "pair"), coords=_lead_coords(da, lead)), ids


def graph_similarity(a: xr.DataArray, b: xr.DataArray, threshold: float = 0.1, *, quantile: bool = True,
                     method: str = "jaccard", dtype: str | torch.dtype | None = None,
                     device: str | torch.device | None = None) -> xr.DataArray:
    """Overlap of the edge sets of two systems' neighbourhood graphs, broadcasting like :func:`compare`.

    Each input is either an adjacency DataArray (bool, from :func:`adjacency`) or RDMs, turned into graphs
    with :func:`adjacency` at ``threshold``. ``jaccard`` is ``|E_a & E_b| / |E_a | E_b|``, ``dice``
    ``2 |E_a & E_b| / (|E_a| + |E_b|)``; NaN when both graphs have no edges. ``b``'s stimuli are put in ``a``'s
    order; dims of ``b`` that ``a`` lacks come first, then ``a``'s leading dims; shared dims are paired.

    Parameters
    ----------
    a, b : xr.DataArray
        Adjacency matrices or RDMs, square ``(..., stimulus, stimulus2)`` or condensed ``(..., pair)``.
    threshold, quantile
        Graph threshold for RDM inputs (see :func:`adjacency`).
    method : str
        One of :data:`GRAPH_METHODS`.

    Returns
    -------
    xr.DataArray named ``method``.

    Examples
    --------
    >>> import numpy as np, neurobridge as nb
    >>> r = nb.core.rdm(np.array([[0., 1, 2], [1, 0, 3], [2, 3, 0]]), stimulus=list("abc"))
    >>> r2 = nb.core.rdm(np.array([[0., 1, 3], [1, 0, 2], [3, 2, 0]]), stimulus=list("abc"))
    >>> float(nb.rsa.graph_similarity(r, r2, 2.0, quantile=False))  # edges {ab, ac} vs {ab, bc}
    0.3333333333333333
    """
    if method not in GRAPH_METHODS:
        raise ValueError(f"unknown graph comparison {method!r}; expected one of {list(GRAPH_METHODS)}")
    ea, ids = _edge_vectors(a, "graph_similarity", threshold, quantile, dtype, device)
    eb, _ = _edge_vectors(b, "graph_similarity", threshold, quantile, dtype, device, order=ids)
    if ea.sizes["pair"] != eb.sizes["pair"]:
        raise SchemaError(f"graph_similarity: a has {ea.sizes['pair']} stimulus pairs and b {eb.sizes['pair']}; "
                          "the graphs must be over the same stimuli")
    lead_a = [d for d in ea.dims if d != "pair"]
    b_only = [d for d in eb.dims if d != "pair" and d not in lead_a]
    for d in eb.dims:
        if d in lead_a:
            if ea.sizes[d] != eb.sizes[d]:
                raise SchemaError(f"graph_similarity: dim {d!r} has {ea.sizes[d]} entries in a and {eb.sizes[d]} in b; "
                                  "shared dims are paired element by element, so they must match")
            if d in ea.coords and d in eb.coords and not np.array_equal(ea[d].values, eb[d].values):
                raise SchemaError(f"graph_similarity: coordinate {d!r} differs between a and b; align them first "
                                  "(xr.align(a, b, join='inner'))")
    both = xr.dot(ea, eb, dim="pair")
    na, nb_ = ea.sum("pair"), eb.sum("pair")
    denom = (na + nb_ - both) if method == "jaccard" else (na + nb_) / 2
    out = (both / denom.where(denom > 0)).transpose(*b_only, *lead_a)
    return out.rename(method).assign_attrs(method=method, threshold=float(threshold), quantile=int(quantile))


def _constant(fam: xr.DataArray) -> xr.DataArray:
    """Whether each RGTM of a family is constant off the diagonal (over ``threshold`` and the leading dims)."""
    if "pair" in fam.dims:
        return fam.max("pair") == fam.min("pair")
    n = fam.sizes["stimulus"]
    off = xr.DataArray(~np.eye(n, dtype=bool), dims=("stimulus", "stimulus2"))
    vals = fam.where(off)
    return vals.max(("stimulus", "stimulus2")) == vals.min(("stimulus", "stimulus2"))


def compare_topology(a: xr.DataArray, b: xr.DataArray, lower: Sequence[float] | None = None,
                     upper: Sequence[float] | None = None, *, quantile: bool = True, method: str = "pearson",
                     dtype: str | torch.dtype | None = None,
                     device: str | torch.device | None = None) -> xr.DataArray:
    """tRSA: the RDM comparison of two systems' RGTMs at every ``(lower, upper)`` of a threshold grid.

    Both inputs go through :func:`geotopological_family` with the same grid; the RGTMs at equal thresholds are
    compared with :func:`compare` (``method``), broadcasting the other dims as it does. The ``l = 0, u = 1``
    entry is plain RSA on min-max scaled RDMs (equal to plain RSA for rank and correlation methods); small
    ``u`` emphasise the neighbourhood graph (topology).

    Parameters
    ----------
    a, b : xr.DataArray
        RDMs ``(..., stimulus, stimulus2)`` or condensed.
    lower, upper : sequence of float, optional
        Threshold grids (default ``0, 0.1, ..., 1``).
    quantile : bool
        Thresholds as quantiles of each RDM (default) or absolute.
    method : str
        A :func:`compare` method (default ``pearson``; rank methods see many ties on saturated RGTMs).

    Returns
    -------
    xr.DataArray
        Dims ``("lower", "upper", *compare dims)``; NaN where ``lower > upper`` and where either RGTM is
        constant off the diagonal (e.g. ``l = u = 1``: every pair 0), for which a correlation is undefined
        (:func:`compare` would report 0).

    Examples
    --------
    >>> import numpy as np, neurobridge as nb
    >>> acts = nb.core.activations(np.random.rand(10, 5), stimulus=range(10))
    >>> r = nb.rsa.rdm(acts)
    >>> m = nb.rsa.compare_topology(r, r, lower=[0.0, 0.1], upper=[0.5, 1.0])
    >>> m.dims, np.round(m.values, 6).tolist()
    (('lower', 'upper'), [[1.0, 1.0], [1.0, 1.0]])
    """
    fa = geotopological_family(a, lower, upper, quantile=quantile, dtype=dtype, device=device)
    fb = geotopological_family(b, lower, upper, quantile=quantile, dtype=dtype, device=device)
    drop = ["lower_threshold", "upper_threshold"]
    sim = compare(fa.drop_vars(drop), fb.drop_vars(drop), method=method, dtype=dtype, device=device)
    flat = _constant(fa).reset_coords(drop=True) | _constant(fb).reset_coords(drop=True)  # compare says 0 there
    sim = sim.where(~flat.transpose(*[d for d in sim.dims if d in flat.dims]))
    sim = sim.set_index(threshold=["lower", "upper"]).unstack("threshold")
    rest = [d for d in sim.dims if d not in ("lower", "upper")]
    return sim.transpose("lower", "upper", *rest).rename("trsa").assign_attrs(method=method, quantile=int(quantile))
