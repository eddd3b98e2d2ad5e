"""Labelled comparison of RDMs: ``nb.rsa.compare`` broadcasts RDM DataArrays by dim name."""

from __future__ import annotations

import numpy as np
import torch
import xarray as xr

from neurobridge.core import SchemaError, check_finite, validate

from ._compare import COMPARE_METHODS, compare_vectors, n_from_pairs
from ._rdm import _as_t, _lead_coords, from_condensed

__all__ = ["compare", "rdm_vectors"]


def _square(da: xr.DataArray, name: str) -> xr.DataArray:
    if not isinstance(da, xr.DataArray):
        raise SchemaError(f"compare: {name} must be an RDM xr.DataArray (nb.rsa.rdm / nb.core.rdm), "
                          f"got {type(da).__name__}; wrap arrays with nb.core.rdm(array, stimulus=ids)")
    if "pair" in da.dims:
        return from_condensed(da)
    return validate(da, "rdm", check_values=False)


def rdm_vectors(da: xr.DataArray, *, stimulus=None, dims=None, dtype=None, device=None):
    """Condensed RDM vectors of an RDM DataArray as a tensor, with their leading dims and stimulus ids.

    Parameters
    ----------
    da : xr.DataArray
        Square RDMs ``(..., stimulus, stimulus2)`` or condensed ``(..., pair)``.
    stimulus : sequence, optional
        Put the stimuli in this order first (must be the same set).
    dims : sequence of str, optional
        Order of the leading dims (default: the RDM's own order).

    Returns
    -------
    tuple of (torch.Tensor (..., n_pairs), list of leading dim names, np.ndarray of stimulus ids)

    Examples
    --------
    >>> import numpy as np, neurobridge as nb
    >>> r = nb.core.rdm(np.array([[0., 1, 2], [1, 0, 3], [2, 3, 0]]), stimulus=list("abc"))
    >>> v, lead, ids = rdm_vectors(r, stimulus=list("cba"), dtype="float64")
    >>> v.tolist(), lead
    ([3.0, 2.0, 1.0], [])
    """
    sq = _square(da, "rdm")
    ids = np.asarray(sq["stimulus"].values)
    if stimulus is not None:
        want = np.asarray(stimulus)
        if len(want) != len(ids) or set(want.tolist()) != set(ids.tolist()):
            only_a = sorted(set(want.tolist()) - set(ids.tolist()))[:5]
            only_b = sorted(set(ids.tolist()) - set(want.tolist()))[:5]
            raise SchemaError(f"the RDMs are over different stimuli ({len(want)} vs {len(ids)}; e.g. only in the first: "
                              f"{only_a}, only in the second: {only_b}); select the shared stimuli first, e.g. "
                              "r.sel(stimulus=ids, stimulus2=ids)")
        if not np.array_equal(want, ids):
            sq = sq.sel(stimulus=want, stimulus2=want)
            ids = want
    lead = [d for d in sq.dims if d not in ("stimulus", "stimulus2")] if dims is None else list(dims)
    sq = sq.transpose(*lead, "stimulus", "stimulus2")
    t = _as_t(sq, dtype=dtype, device=device)
    n = t.shape[-1]
    i, j = torch.triu_indices(n, n, offset=1, device=t.device)
    v = t[..., i, j]
    check_finite(v, "compare: an RDM", fix="drop the affected stimuli first")
    return v, lead, ids


def compare(a: xr.DataArray, b: xr.DataArray, method: str = "spearman", *, cov=None,
            dtype: str | torch.dtype | None = None, device: str | torch.device | None = None) -> xr.DataArray:
    """Compare RDMs, broadcasting their leading dims by name.

    The stimuli of ``b`` are put in ``a``'s order (the sets must match). Dims of ``b`` that ``a`` lacks
    come first, then ``a``'s leading dims, so a brain RDM over ``time`` against model RDMs over
    ``layer`` gives a ``(layer, time)`` map in one call; shared dims (e.g. ``subject``) are paired.

    Parameters
    ----------
    a, b : xr.DataArray
        RDMs ``(..., stimulus, stimulus2)`` (or condensed ``(..., pair)`` from :func:`to_condensed`).
    method : str
        One of ``spearman``, ``pearson``, ``kendall`` (tau-a), ``tau-b``, ``rho-a``, ``cosine``,
        ``corr_cov``, ``cosine_cov`` (see :func:`compare_vectors`).
    cov : array, optional
        Stimulus covariance for the whitened methods (see :func:`compare_vectors`).
    dtype, device : optional
        Computation dtype/device (float32 default).

    Returns
    -------
    xr.DataArray
        Similarities over the broadcast dims, attr ``method``.

    Examples
    --------
    >>> import numpy as np, neurobridge as nb
    >>> x = np.random.rand(5, 6, 4)  # time x stimulus x feature
    >>> brain = nb.rsa.rdm(xr.DataArray(x, dims=("time", "stimulus", "channel")))
    >>> acts = xr.DataArray(np.random.rand(3, 6, 8), dims=("layer", "stimulus", "unit"))
    >>> nb.rsa.compare(brain, nb.rsa.rdm(acts)).dims
    ('layer', 'time')
    """
    if method not in COMPARE_METHODS:
        raise ValueError(f"unknown comparison method {method!r}; expected one of {list(COMPARE_METHODS)}")
    sa, sb = _square(a, "a"), _square(b, "b")
    va, lead_a, ids = rdm_vectors(sa, dtype=dtype, device=device)
    lead_b_all = [d for d in sb.dims if d not in ("stimulus", "stimulus2")]
    b_only = [d for d in lead_b_all if d not in lead_a]
    for d in lead_b_all:
        if d in lead_a:
            if sa.sizes[d] != sb.sizes[d]:
                raise SchemaError(f"compare: dim {d!r} has {sa.sizes[d]} entries in a and {sb.sizes[d]} in b; "
                                  "shared dims are paired element by element, so they must match")
            if d in sa.coords and d in sb.coords and not np.array_equal(sa[d].values, sb[d].values):
                raise SchemaError(f"compare: coordinate {d!r} differs between a and b; align them first "
                                  "(xr.align(a, b, join='inner'))")
    vb, _, _ = rdm_vectors(sb, stimulus=ids, dims=b_only + [d for d in lead_a if d in lead_b_all],
                           dtype=va.dtype, device=va.device)
    n_pairs = va.shape[-1]
    n_from_pairs(n_pairs)
    # a: (1,)*len(b_only) + a_lead ; b: b_only + (a_lead dims present in b, else 1)
    x = va.reshape(*([1] * len(b_only)), *va.shape)
    shape_b = [sb.sizes[d] for d in b_only] + [sb.sizes[d] if d in lead_b_all else 1 for d in lead_a]
    y = vb.reshape(*shape_b, n_pairs)
    if isinstance(cov, xr.DataArray):
        cov = cov.values
    sim = compare_vectors(x, y, method, cov=cov)
    out_dims = [*b_only, *lead_a]
    coords = _lead_coords(sb, b_only)
    coords.update(_lead_coords(sa, lead_a))
    return xr.DataArray(sim.detach().cpu().numpy().reshape([sb.sizes[d] for d in b_only] + [sa.sizes[d] for d in lead_a]),
                        dims=out_dims, coords=coords, attrs={"method": method}, name="similarity")
