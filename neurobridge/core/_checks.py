"""The input checks every entry point shares: one function per check, one wording per problem.

``check_finite`` (NaN/inf) and ``check_unique`` (duplicated ids) raise :class:`SchemaError` (a ``ValueError``)
whose message names the input, what is wrong and where, and how to fix it. Entry points pass ``fix=`` only
when their fix differs from the generic one (an RDM drops stimuli, a solver imputes values).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
import xarray as xr

from ._schemas import SchemaError

__all__ = ["check_finite", "check_unique"]

_FINITE_FIX = "drop or interpolate them first (e.g. da.dropna(...), da.interpolate_na(...), or mark bad channels)"
_UNIQUE_FIX = "average repetitions with nb.core.average_repetitions(da) or make the ids unique"


def _all_finite_numpy(values: np.ndarray) -> bool:
    # A finite sum proves every entry finite (NaN and inf propagate); only a non-finite sum (a bad value, or
    # overflow of large finite values) pays for the elementwise mask.
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(values.sum(dtype=np.float64)):
            return True
    return bool(np.isfinite(values).all())


def check_finite(x, name: str = "data", *, fix: str | None = None) -> None:
    """Raise :class:`SchemaError` if ``x`` holds NaN or inf, saying how many and where the first one is.

    Parameters
    ----------
    x : xr.DataArray, np.ndarray or torch.Tensor
        Integer, boolean and non-numeric data pass unchecked. A dask-backed DataArray is computed.
    name : str
        What ``x`` is, as the user knows it ("brain", "features", "X").
    fix : str, optional
        What the user should do; default: drop or interpolate the bad values.

    Examples
    --------
    >>> check_finite(xr.DataArray([1.0, 2.0], dims="time"))
    >>> check_finite(np.array([[1.0, np.nan]]), "X")
    Traceback (most recent call last):
    ...
    neurobridge.core._schemas.SchemaError: X contains 1 non-finite value(s) (NaN or inf), first at index (0, 1); drop or interpolate them first (e.g. da.dropna(...), da.interpolate_na(...), or mark bad channels)
    """
    dims = x.dims if isinstance(x, xr.DataArray) else None
    if isinstance(x, xr.DataArray):
        x = x.data
        if hasattr(x, "compute"):
            x = x.compute()
    if isinstance(x, torch.Tensor):
        if not (x.is_floating_point() or x.is_complex()) or x.numel() == 0:
            return
        from ._config import all_finite

        if all_finite(x):
            return
        bad = ~torch.isfinite(x)
        n_bad = int(bad.sum())
        first = tuple(int(i) for i in bad.nonzero()[0])
    else:
        values = np.asarray(x)
        if not (np.issubdtype(values.dtype, np.floating) or np.issubdtype(values.dtype, np.complexfloating)):
            return
        if values.size == 0 or _all_finite_numpy(values):
            return
        bad = ~np.isfinite(values)
        n_bad = int(bad.sum())
        first = tuple(int(i) for i in np.unravel_index(int(np.argmax(bad)), values.shape))
    if dims is not None and len(dims) == len(first):
        where = ", ".join(f"{d}={i}" for d, i in zip(dims, first, strict=True))
    else:
        where = f"index {first}"
    raise SchemaError(f"{name} contains {n_bad} non-finite value(s) (NaN or inf), first at {where}; "
                      f"{fix or _FINITE_FIX}")


def check_unique(ids: Sequence | np.ndarray | pd.Index, what: str = "stimulus ids", *, owner: str | None = None,
                 fix: str | None = None) -> None:
    """Raise :class:`SchemaError` if ``ids`` has duplicates, naming up to five of them.

    Parameters
    ----------
    ids : sequence, array or pandas Index
        Stimulus ids, channel names, voxel indices (rows of a 2-D array count as one id each).
    what : str
        What the ids are ("stimulus ids", "channel names", "voxel indices (i, j, k)").
    owner : str, optional
        The input they belong to, as the user knows it ("features", "brain", "evoked").
    fix : str, optional
        What the user should do; default: average repetitions or make the ids unique.

    Examples
    --------
    >>> check_unique(["a", "b"])
    >>> check_unique(["a", "b", "a"], owner="features")
    Traceback (most recent call last):
    ...
    neurobridge.core._schemas.SchemaError: features: duplicated stimulus ids ['a']; average repetitions with nb.core.average_repetitions(da) or make the ids unique
    """
    arr = ids if isinstance(ids, pd.Index) else np.asarray(ids)
    if isinstance(arr, np.ndarray) and arr.ndim == 2:
        frame = pd.DataFrame(arr)
        dup_mask = frame.duplicated().to_numpy()
        if not dup_mask.any():
            return
        dup = [tuple(r) for r in frame[dup_mask].drop_duplicates().to_numpy()[:5].tolist()]
    else:
        index = pd.Index(arr)
        if not index.has_duplicates:
            return
        dup = index[index.duplicated()].unique()[:5].tolist()
    prefix = f"{owner}: " if owner else ""
    raise SchemaError(f"{prefix}duplicated {what} {dup}; {fix or _UNIQUE_FIX}")
