"""Schemas for the labelled containers: what dims, coords and attrs each kind of data has.

Containers are plain ``xr.DataArray`` objects; a schema only checks them. ``validate`` raises
:class:`SchemaError` (a ``ValueError``) that says what was expected, what was found and how to fix it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import xarray as xr

__all__ = ["SchemaError", "Schema", "SCHEMAS", "validate", "ATTR_TYPES"]

ATTR_TYPES = (str, int, float)


class SchemaError(ValueError):
    """A container does not match its schema; the message names the problem and the fix."""


@dataclass(frozen=True)
class Schema:
    """Structure of one kind of container."""

    kind: str
    """Name used with :func:`validate`."""
    dims: tuple[tuple[str, ...], ...]
    """Required dims in order; each entry lists the names accepted at that position."""
    optional_dims: tuple[str, ...] = ()
    """Dims that may appear in addition to the required ones (e.g. ``token`` for activations)."""
    any_extra_dims: bool = False
    """Whether arbitrary extra (broadcast) dims are allowed, as for RDMs over time or layer."""
    needs_stimulus: bool = True
    """Whether a ``stimulus`` coordinate (on ``trial`` or as the ``stimulus`` dim) is required."""
    required_attrs: tuple[str, ...] = ()
    """Attrs that must be present, e.g. ``sfreq``."""
    description: str = ""
    factory: str = ""
    """The factory that builds this kind, quoted in error messages."""
    example_dims: tuple[str, ...] = field(default=())


SCHEMAS: dict[str, Schema] = {
    s.kind: s
    for s in [
        Schema("eeg_raw", (("channel",), ("time",)), needs_stimulus=False, required_attrs=("sfreq",),
               description="continuous M/EEG", factory="nb.core.eeg_raw(data, ch_names=..., sfreq=...)"),
        Schema("eeg_epochs", (("trial",), ("channel",), ("time",)), required_attrs=("sfreq",),
               description="epoched M/EEG", factory="nb.core.eeg_epochs(data, stimulus=..., ch_names=..., times=...)"),
        Schema("evoked", (("condition", "stimulus"), ("channel",), ("time",)), needs_stimulus=False,
               required_attrs=("sfreq",), description="averaged M/EEG per condition or stimulus",
               factory="nb.core.evoked(data, condition=..., ch_names=..., times=...)"),
        Schema("fmri_timeseries", (("time",), ("voxel", "roi")), needs_stimulus=False, required_attrs=("tr",),
               description="BOLD time series", factory="nb.core.fmri_timeseries(data, tr=...)"),
        Schema("fmri_responses", (("trial", "stimulus"), ("voxel", "roi")), description="fMRI responses per trial or stimulus",
               factory="nb.core.fmri_responses(data, stimulus=...)"),
        Schema("activations", (("stimulus",), ("unit",)), optional_dims=("token", "time", "space", "layer"),
               description="model activations", factory="nb.core.activations(data, stimulus=...)"),
        Schema("rdm", (("stimulus",), ("stimulus2",)), any_extra_dims=True,
               description="representational dissimilarity matrices", factory="nb.core.rdm(data, stimulus=...)"),
    ]
}


def _fail(kind: str, msg: str, fix: str) -> SchemaError:
    return SchemaError(f"{kind}: {msg}; {fix}")


def _check_stimulus(da: xr.DataArray, kind: str, require: bool) -> None:
    if "stimulus" in da.dims:
        idx = da.indexes.get("stimulus")
        if idx is None:
            if require:
                raise _fail(kind, "dim 'stimulus' has no coordinate", "assign ids with da.assign_coords(stimulus=ids)")
            return
        from ._checks import check_unique  # _checks raises this module's SchemaError

        check_unique(idx, "stimulus ids on dim 'stimulus'", owner=kind)
        return
    if "trial" in da.dims:
        if "stimulus" not in da.coords:
            if require:
                raise _fail(kind, "has no 'stimulus' coordinate on dim 'trial'",
                            "pass stimulus=... to the factory, assign it with da.assign_coords(stimulus=('trial', ids)), "
                            "or use nb.io.from_mne(epochs, stimulus='event')")
            return
        if da["stimulus"].dims != ("trial",):
            raise _fail(kind, f"coordinate 'stimulus' has dims {da['stimulus'].dims}, expected ('trial',)",
                        "assign it with da.assign_coords(stimulus=('trial', ids))")


def validate(da: xr.DataArray, kind: str, *, check_values: bool = True) -> xr.DataArray:
    """Check that ``da`` is a valid container of ``kind`` and return it unchanged.

    Parameters
    ----------
    da : xr.DataArray
    kind : str
        One of ``SCHEMAS``: ``eeg_raw``, ``eeg_epochs``, ``evoked``, ``fmri_timeseries``,
        ``fmri_responses``, ``activations``, ``rdm``.
    check_values : bool
        Also check for NaN/inf (computes a dask-backed array).

    Raises
    ------
    SchemaError
        Naming what is wrong and how to fix it.

    Examples
    --------
    >>> import neurobridge as nb
    >>> acts = nb.core.activations(np.zeros((3, 4)), stimulus=["a", "b", "c"])
    >>> nb.core.validate(acts, "activations").dims
    ('stimulus', 'unit')
    """
    if kind not in SCHEMAS:
        raise ValueError(f"unknown container kind {kind!r}; expected one of {sorted(SCHEMAS)}")
    schema = SCHEMAS[kind]
    if not isinstance(da, xr.DataArray):
        raise _fail(kind, f"expected an xr.DataArray, got {type(da).__name__}", f"build one with {schema.factory}")
    dims = list(da.dims)
    expected = " x ".join("|".join(alts) for alts in schema.dims)
    found_required = []
    for alts in schema.dims:
        hit = [d for d in alts if d in dims]
        if len(hit) != 1:
            raise _fail(kind, f"expected dims ({expected}), found {tuple(dims)}",
                        f"rename dims with da.rename(...) / da.transpose(...) or build it with {schema.factory}")
        found_required.append(hit[0])
    extra = [d for d in dims if d not in found_required]
    if not schema.any_extra_dims:
        bad = [d for d in extra if d not in schema.optional_dims]
        if bad:
            raise _fail(kind, f"unexpected dims {bad} (expected ({expected}), optionally {list(schema.optional_dims)})",
                        "select or average them away, e.g. da.mean('dim') or da.isel(dim=0)")
    order = [d for d in dims if d in found_required]
    if order != found_required:
        raise _fail(kind, f"dims are in order {tuple(dims)}, expected {tuple(found_required)} order",
                    f"reorder with da.transpose({', '.join(repr(d) for d in found_required)}, ...)")
    _check_stimulus(da, kind, schema.needs_stimulus)
    for attr in schema.required_attrs:
        if attr not in da.attrs:
            raise _fail(kind, f"missing attribute {attr!r}", f"set it with da.attrs[{attr!r}] = ...")
    for key, value in da.attrs.items():
        ok = isinstance(value, ATTR_TYPES) or (
            isinstance(value, list | tuple) and all(isinstance(v, ATTR_TYPES) for v in value)
        )
        if not ok:
            raise _fail(kind, f"attribute {key!r} has type {type(value).__name__}; attrs hold only str/int/float or lists of them",
                        "move structured values into coords")
    if "time" in da.dims and "time" in da.coords:
        t = np.asarray(da["time"].values)
        if t.size > 1 and np.issubdtype(t.dtype, np.number) and not np.all(np.diff(t) > 0):
            raise _fail(kind, "coordinate 'time' is not strictly increasing", "sort with da.sortby('time')")
    if kind == "rdm" and da.sizes["stimulus"] != da.sizes["stimulus2"]:
        raise _fail(kind, f"RDM is not square: {da.sizes['stimulus']} x {da.sizes['stimulus2']}",
                    "build it with nb.rsa.rdm(...) or nb.core.rdm(...)")
    if check_values:
        from ._checks import check_finite  # _checks raises this module's SchemaError

        check_finite(da, kind)
    return da
