"""Joining brain data and model features on the ``stimulus`` coordinate."""

from __future__ import annotations

import logging
from typing import NamedTuple

import numpy as np
import pandas as pd
import xarray as xr

from ._checks import check_unique
from ._schemas import SchemaError

__all__ = ["Aligned", "align", "average_repetitions", "expand_to_trials", "stimulus_ids"]

logger = logging.getLogger("neurobridge")


class Aligned(NamedTuple):
    """Brain data and features restricted to shared stimuli, in matching order along the sample dim."""

    brain: xr.DataArray
    features: xr.DataArray


def stimulus_ids(da: xr.DataArray | xr.Dataset) -> np.ndarray:
    """The stimulus id of every sample: the ``stimulus`` index, or the ``stimulus`` coordinate on ``trial``.

    Examples
    --------
    >>> da = xr.DataArray(np.zeros(3), dims="trial", coords={"stimulus": ("trial", ["a", "b", "a"])})
    >>> stimulus_ids(da).tolist()
    ['a', 'b', 'a']
    """
    if "stimulus" not in da.coords:
        dims = tuple(da.dims)
        raise SchemaError(
            f"no 'stimulus' coordinate (dims {dims}); assign one with da.assign_coords(stimulus=('trial', ids)) "
            "or build the container with a nb.core factory / nb.io.from_mne(..., stimulus=...)"
        )
    return np.asarray(da["stimulus"].values)


def _sample_dim(da, name: str) -> str:
    if "stimulus" in da.dims:
        return "stimulus"
    if "trial" in da.dims and "stimulus" in da.coords:
        return "trial"
    stimulus_ids(da)  # raises the missing-coordinate error
    raise SchemaError(f"{name}: 'stimulus' must label dim 'trial' or be a dim itself, found dims {tuple(da.dims)}")


def average_repetitions(da: xr.DataArray | xr.Dataset, *, keep_order: bool = True) -> xr.DataArray | xr.Dataset:
    """Average trials that share a stimulus id: ``trial`` -> ``stimulus`` dim.

    Adds an ``n_repetitions`` coordinate on ``stimulus``. Other per-trial coordinates that are constant
    within a stimulus are kept; the rest are dropped.

    Parameters
    ----------
    da : xr.DataArray or xr.Dataset with dim ``trial`` and coordinate ``stimulus`` on it.
    keep_order : bool
        Order stimuli by first appearance (True) or sorted (False, as ``groupby`` does).

    Examples
    --------
    >>> da = xr.DataArray([1.0, 2.0, 3.0], dims="trial", coords={"stimulus": ("trial", ["b", "a", "b"])})
    >>> average_repetitions(da).values.tolist()
    [2.0, 2.0]
    """
    if "trial" not in da.dims:
        raise SchemaError(f"average_repetitions needs a 'trial' dim, found dims {tuple(da.dims)}")
    ids = stimulus_ids(da)
    codes, uniques = pd.factorize(ids, sort=not keep_order)
    counts = np.bincount(codes, minlength=len(uniques))
    keep = {}
    for name, coord in da.coords.items():
        if name in ("stimulus", "trial") or coord.dims != ("trial",):
            continue
        first = pd.Series(np.asarray(coord.values)).groupby(codes).agg(lambda s: s.iloc[0] if s.nunique() == 1 else None)
        if first.notna().all():
            keep[name] = ("stimulus", first.to_numpy())
    drop = [n for n, c in da.coords.items() if "trial" in c.dims and n != "stimulus"]
    stripped = da.drop_vars(drop)
    grouped = stripped.assign_coords(_code=("trial", codes)).groupby("_code").mean("trial", keep_attrs=True)
    out = grouped.rename({"_code": "stimulus"}).assign_coords(stimulus=np.asarray(uniques))
    dims = ["stimulus"] + [d for d in da.dims if d != "trial"]
    out = out.transpose(*dims)
    return out.assign_coords(n_repetitions=("stimulus", counts), **keep)


def expand_to_trials(features: xr.DataArray, brain: xr.DataArray) -> xr.DataArray:
    """Index stimulus-level ``features`` by the ``stimulus`` of each trial of ``brain`` (dim ``trial``).

    Examples
    --------
    >>> f = xr.DataArray([[0.0], [1.0]], dims=("stimulus", "unit"), coords={"stimulus": ["a", "b"]})
    >>> b = xr.DataArray([5.0, 6.0, 7.0], dims="trial", coords={"stimulus": ("trial", ["b", "a", "b"])})
    >>> expand_to_trials(f, b).values.ravel().tolist()
    [1.0, 0.0, 1.0]
    """
    ids = stimulus_ids(brain)
    missing = pd.Index(ids).difference(pd.Index(stimulus_ids(features)))
    if len(missing):
        raise SchemaError(f"features lack {len(missing)} stimulus id(s) used by brain trials, e.g. {missing[:5].tolist()}; "
                          "use nb.core.align(brain, features) to keep only shared stimuli")
    out = features.sel(stimulus=xr.DataArray(ids, dims="trial"))
    return out.assign_coords(trial=brain["trial"].values if "trial" in brain.coords else np.arange(len(ids)))


def align(
    brain: xr.DataArray, features: xr.DataArray, *, min_stimuli: int = 2, expand: bool = True
) -> Aligned:
    """Inner-join ``brain`` and ``features`` on ``stimulus``.

    ``features`` have a unique ``stimulus`` dim. If ``brain`` has a ``trial`` dim (repetitions allowed), the
    trials whose stimulus has features are kept and, with ``expand=True``, ``features`` are expanded to those
    trials so both share dim ``trial``. If ``brain`` has a ``stimulus`` dim, both are restricted to the shared
    stimuli in ``brain``'s order.

    Raises
    ------
    SchemaError
        No ``stimulus`` coordinate, duplicated feature ids, or fewer than ``min_stimuli`` shared stimuli
        (the message lists ids missing on each side).

    Examples
    --------
    >>> f = xr.DataArray(np.eye(3), dims=("stimulus", "unit"), coords={"stimulus": ["a", "b", "c"]})
    >>> b = xr.DataArray(np.ones((2, 4)), dims=("stimulus", "voxel"), coords={"stimulus": ["c", "a"]})
    >>> align(b, f).features.stimulus.values.tolist()
    ['c', 'a']
    """
    _sample_dim(features, "features")
    if "stimulus" not in features.dims:
        raise SchemaError("features must have a 'stimulus' dim (one row per unique stimulus); "
                          "average repetitions first with nb.core.average_repetitions(features)")
    f_idx = features.indexes["stimulus"]
    check_unique(f_idx, owner="features")
    dim = _sample_dim(brain, "brain")
    b_ids = stimulus_ids(brain)
    if dim == "stimulus":
        check_unique(b_ids, "stimulus ids on dim 'stimulus'", owner="brain",
                     fix="use dim 'trial' for repetitions or average them with nb.core.average_repetitions")
    if len(b_ids) and len(f_idx) and type(b_ids[0]) is not type(f_idx[0]) and not (
        np.issubdtype(np.asarray(b_ids).dtype, np.number) and np.issubdtype(f_idx.dtype, np.number)
    ):
        logger.debug("stimulus ids have different types in brain (%s) and features (%s)", type(b_ids[0]), type(f_idx[0]))
    shared_mask = pd.Index(b_ids).isin(f_idx)
    shared = pd.unique(np.asarray(b_ids)[shared_mask])
    if len(shared) < min_stimuli:
        only_brain = pd.Index(b_ids).difference(f_idx)[:5].tolist()
        only_feat = f_idx.difference(pd.Index(b_ids))[:5].tolist()
        raise SchemaError(
            f"brain and features share {len(shared)} stimulus id(s), need at least {min_stimuli}; "
            f"only in brain (first 5): {only_brain}; only in features (first 5): {only_feat}; "
            "check that both use the same stimulus ids (names vs integer indices, file extensions, case)"
        )
    n_drop_b = int((~shared_mask).sum())
    n_drop_f = len(f_idx) - len(shared)
    if n_drop_b or n_drop_f:
        logger.info("align: keeping %d shared stimuli (dropped %d brain samples, %d feature stimuli)",
                    len(shared), n_drop_b, n_drop_f)
    brain_out = brain.isel({dim: np.flatnonzero(shared_mask)})
    if dim == "stimulus":
        return Aligned(brain_out, features.sel(stimulus=brain_out["stimulus"].values))
    feats = expand_to_trials(features, brain_out) if expand else features.sel(stimulus=shared)
    return Aligned(brain_out, feats)
