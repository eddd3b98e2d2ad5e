"""Factories that build validated containers from arrays and labels."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import xarray as xr

from ._checks import check_unique
from ._schemas import SchemaError, validate

__all__ = ["eeg_raw", "eeg_epochs", "evoked", "fmri_timeseries", "fmri_responses", "activations", "rdm"]


def _array(data, ndim: int | tuple[int, ...], name: str, dims: str):
    arr = data if hasattr(data, "dask") or hasattr(data, "chunks") and not isinstance(data, np.ndarray) else np.asarray(data)
    ndims = (ndim,) if isinstance(ndim, int) else ndim
    if arr.ndim not in ndims:
        raise SchemaError(f"{name}: expected a {' or '.join(map(str, ndims))}-d array ({dims}), got shape {tuple(arr.shape)}; "
                          "reshape the data or pass the right axes order")
    return arr


def _labels(values, n: int, what: str, dim: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise SchemaError(f"{what} has {arr.shape[0] if arr.ndim else 'a scalar'} entries but dim {dim!r} has {n}; "
                          f"pass one {what} per {dim}")
    return arr


def _times(n: int, times, sfreq, tmin: float) -> tuple[np.ndarray, float]:
    if times is not None:
        t = _labels(times, n, "times", "time").astype(float)
        if sfreq is None:
            if n < 2:
                raise SchemaError("cannot infer sfreq from a single time point; pass sfreq=...")
            sfreq = float(1.0 / np.median(np.diff(t)))
        return t, float(sfreq)
    if sfreq is None:
        raise SchemaError("pass either times=... (seconds) or sfreq=... (Hz, with tmin=...)")
    return float(tmin) + np.arange(n) / float(sfreq), float(sfreq)


def _channel_coords(n: int, ch_names, ch_types, ch_pos) -> dict:
    names = _labels(ch_names, n, "ch_names", "channel").astype(str) if ch_names is not None else np.array(
        [f"ch{i:03d}" for i in range(n)])
    check_unique(names, "channel names", owner="ch_names", fix="channel names must be unique; rename the duplicates")
    coords: dict = {"channel": names}
    if ch_types is not None:
        coords["ch_type"] = ("channel", _labels(ch_types, n, "ch_types", "channel").astype(str))
    if ch_pos is not None:
        pos = np.asarray(ch_pos, dtype=float)
        if pos.shape != (n, 3):
            raise SchemaError(f"ch_pos must have shape (n_channels, 3) in metres, got {pos.shape}")
        for i, ax in enumerate("xyz"):
            coords[f"pos_{ax}"] = ("channel", pos[:, i])
    return coords


def _clean_attrs(attrs: Mapping | None, **fixed) -> dict:
    out = {k: v for k, v in fixed.items() if v is not None}
    out.update(attrs or {})
    return out


def _extra(coords: Mapping | None, dim: str, n: int) -> dict:
    out = {}
    for key, values in (coords or {}).items():
        out[key] = (dim, _labels(values, n, f"coordinate {key!r}", dim))
    return out


def eeg_raw(
    data, *, sfreq: float, ch_names: Sequence[str] | None = None, ch_types: Sequence[str] | None = None,
    ch_pos=None, tmin: float = 0.0, attrs: Mapping | None = None,
) -> xr.DataArray:
    """Continuous M/EEG, dims ``(channel, time)``.

    Parameters
    ----------
    data : array, shape (n_channels, n_times)
    sfreq : float
        Sampling rate in Hz.
    ch_names, ch_types : sequence of str, optional
    ch_pos : array, shape (n_channels, 3), optional
        Sensor positions in metres.
    tmin : float
        Time of the first sample in seconds.

    Examples
    --------
    >>> raw = eeg_raw(np.zeros((2, 100)), sfreq=100.0, ch_names=["Cz", "Pz"])
    >>> raw.dims, float(raw.time[-1])
    (('channel', 'time'), 0.99)
    """
    arr = _array(data, 2, "eeg_raw", "channel x time")
    t, sfreq = _times(arr.shape[1], None, sfreq, tmin)
    coords = _channel_coords(arr.shape[0], ch_names, ch_types, ch_pos)
    coords["time"] = t
    da = xr.DataArray(arr, dims=("channel", "time"), coords=coords,
                      attrs=_clean_attrs(attrs, modality="eeg", sfreq=sfreq, units="V"))
    return validate(da, "eeg_raw")


def eeg_epochs(
    data, *, stimulus: Sequence, ch_names: Sequence[str] | None = None, times=None, sfreq: float | None = None,
    tmin: float = 0.0, ch_types: Sequence[str] | None = None, ch_pos=None, trial_coords: Mapping | None = None,
    attrs: Mapping | None = None,
) -> xr.DataArray:
    """Epoched M/EEG, dims ``(trial, channel, time)`` with a ``stimulus`` coordinate on ``trial``.

    Parameters
    ----------
    data : array, shape (n_trials, n_channels, n_times)
    stimulus : sequence, length n_trials
        Stimulus id of each trial (repetitions share an id).
    times : array, shape (n_times,), optional
        Seconds; else built from ``sfreq`` and ``tmin``.
    trial_coords : mapping, optional
        More per-trial labels (condition, run, ...).

    Examples
    --------
    >>> ep = eeg_epochs(np.zeros((4, 2, 5)), stimulus=["a", "b", "a", "b"], sfreq=100.0, tmin=-0.01)
    >>> ep.dims, ep.stimulus.values.tolist()
    (('trial', 'channel', 'time'), ['a', 'b', 'a', 'b'])
    """
    arr = _array(data, 3, "eeg_epochs", "trial x channel x time")
    n_trial, n_ch, n_t = arr.shape
    t, sfreq = _times(n_t, times, sfreq, tmin)
    coords = _channel_coords(n_ch, ch_names, ch_types, ch_pos)
    coords.update(time=t, trial=np.arange(n_trial), stimulus=("trial", _labels(stimulus, n_trial, "stimulus", "trial")))
    coords.update(_extra(trial_coords, "trial", n_trial))
    da = xr.DataArray(arr, dims=("trial", "channel", "time"), coords=coords,
                      attrs=_clean_attrs(attrs, modality="eeg", sfreq=sfreq, units="V"))
    return validate(da, "eeg_epochs")


def evoked(
    data, *, condition: Sequence | None = None, stimulus: Sequence | None = None, ch_names: Sequence[str] | None = None,
    times=None, sfreq: float | None = None, tmin: float = 0.0, ch_types=None, ch_pos=None,
    nave: Sequence[int] | None = None, attrs: Mapping | None = None,
) -> xr.DataArray:
    """Averaged M/EEG, dims ``(condition, channel, time)`` or ``(stimulus, channel, time)``.

    Pass exactly one of ``condition`` or ``stimulus`` (the labels of the first axis).

    Examples
    --------
    >>> ev = evoked(np.zeros((2, 3, 4)), condition=["left", "right"], sfreq=10.0)
    >>> ev.dims
    ('condition', 'channel', 'time')
    """
    if (condition is None) == (stimulus is None):
        raise SchemaError("evoked: pass exactly one of condition=... or stimulus=... to label the first axis")
    arr = _array(data, 3, "evoked", "condition|stimulus x channel x time")
    first = "condition" if condition is not None else "stimulus"
    labels = _labels(condition if condition is not None else stimulus, arr.shape[0], first, first)
    t, sfreq = _times(arr.shape[2], times, sfreq, tmin)
    coords = _channel_coords(arr.shape[1], ch_names, ch_types, ch_pos)
    coords.update({first: labels, "time": t})
    if nave is not None:
        coords["nave"] = (first, _labels(nave, arr.shape[0], "nave", first).astype(int))
    da = xr.DataArray(arr, dims=(first, "channel", "time"), coords=coords,
                      attrs=_clean_attrs(attrs, modality="eeg", sfreq=sfreq, units="V"))
    return validate(da, "evoked")


def _voxel_coords(n: int, voxel_coords: Mapping | None) -> dict:
    coords: dict = {"voxel": np.arange(n)}
    coords.update(_extra(voxel_coords, "voxel", n))
    return coords


def fmri_timeseries(
    data, *, tr: float, voxel_coords: Mapping | None = None, frame_times=None, attrs: Mapping | None = None
) -> xr.DataArray:
    """BOLD time series, dims ``(time, voxel)``; ``time`` in seconds (frame onsets).

    Parameters
    ----------
    data : array, shape (n_scans, n_voxels)
    tr : float
        Repetition time in seconds.
    voxel_coords : mapping, optional
        Per-voxel labels such as ``i, j, k`` (indices) and ``x, y, z`` (mm), ``roi``.

    Examples
    --------
    >>> ts = fmri_timeseries(np.zeros((10, 3)), tr=2.0)
    >>> float(ts.time[1])
    2.0
    """
    arr = _array(data, 2, "fmri_timeseries", "time x voxel")
    t = np.arange(arr.shape[0]) * float(tr) if frame_times is None else _labels(frame_times, arr.shape[0], "frame_times", "time")
    coords = _voxel_coords(arr.shape[1], voxel_coords)
    coords["time"] = np.asarray(t, dtype=float)
    da = xr.DataArray(arr, dims=("time", "voxel"), coords=coords, attrs=_clean_attrs(attrs, modality="fmri", tr=float(tr)))
    return validate(da, "fmri_timeseries")


def fmri_responses(
    data, *, stimulus: Sequence, dim: str = "trial", voxel_coords: Mapping | None = None,
    trial_coords: Mapping | None = None, attrs: Mapping | None = None,
) -> xr.DataArray:
    """fMRI responses (betas), dims ``(trial, voxel)`` (``stimulus`` coord on trial) or ``(stimulus, voxel)``.

    Examples
    --------
    >>> r = fmri_responses(np.zeros((4, 3)), stimulus=["a", "b", "a", "b"])
    >>> r.dims
    ('trial', 'voxel')
    """
    if dim not in ("trial", "stimulus"):
        raise SchemaError(f"fmri_responses: dim must be 'trial' or 'stimulus', got {dim!r}")
    arr = _array(data, 2, "fmri_responses", f"{dim} x voxel")
    coords = _voxel_coords(arr.shape[1], voxel_coords)
    ids = _labels(stimulus, arr.shape[0], "stimulus", dim)
    if dim == "trial":
        coords.update(trial=np.arange(arr.shape[0]), stimulus=("trial", ids))
    else:
        coords["stimulus"] = ids
    coords.update(_extra(trial_coords, dim, arr.shape[0]))
    da = xr.DataArray(arr, dims=(dim, "voxel"), coords=coords, attrs=_clean_attrs(attrs, modality="fmri"))
    return validate(da, "fmri_responses")


def activations(
    data, *, stimulus: Sequence, dims: Sequence[str] | None = None, unit: Sequence | None = None,
    layer: str | None = None, model: str | None = None, coords: Mapping | None = None, attrs: Mapping | None = None,
) -> xr.DataArray:
    """Model activations, dims ``(stimulus, unit)`` or e.g. ``(stimulus, token, unit)`` before pooling.

    Parameters
    ----------
    data : array or tensor, shape (n_stimuli, [n_tokens,] n_units)
    stimulus : sequence
        Unique stimulus ids.
    dims : sequence of str, optional
        Dims of ``data``; default ``("stimulus", "unit")`` for 2-d and ``("stimulus", "token", "unit")`` for 3-d.
    layer, model : str, optional
        Stored as attrs.

    Examples
    --------
    >>> a = activations(np.ones((3, 8)), stimulus=["cat", "dog", "car"], layer="blocks.3")
    >>> a.dims, a.attrs["layer"]
    (('stimulus', 'unit'), 'blocks.3')
    """
    if hasattr(data, "detach"):
        data = data.detach().cpu().numpy()
    arr = _array(data, (2, 3, 4), "activations", "stimulus x [token|time|space] x unit")
    if dims is None:
        dims = {2: ("stimulus", "unit"), 3: ("stimulus", "token", "unit")}.get(arr.ndim)
        if dims is None:
            raise SchemaError("activations: pass dims=... for 4-d data, e.g. ('stimulus', 'token', 'space', 'unit')")
    dims = tuple(dims)
    if len(dims) != arr.ndim:
        raise SchemaError(f"activations: dims {dims} do not match data with {arr.ndim} axes")
    all_coords: dict = {"stimulus": _labels(stimulus, arr.shape[0], "stimulus", "stimulus")}
    n_unit = arr.shape[dims.index("unit")] if "unit" in dims else None
    if unit is not None and n_unit is not None:
        all_coords["unit"] = _labels(unit, n_unit, "unit", "unit")
    elif n_unit is not None:
        all_coords["unit"] = np.arange(n_unit)
    all_coords.update(coords or {})
    da = xr.DataArray(arr, dims=dims, coords=all_coords, attrs=_clean_attrs(attrs, modality="activations", layer=layer, model=model))
    return validate(da, "activations")


def rdm(
    data, *, stimulus: Sequence | None = None, dims: Sequence[str] | None = None, coords: Mapping | None = None,
    metric: str | None = None, attrs: Mapping | None = None,
) -> xr.DataArray:
    """Representational dissimilarity matrices, dims ``(..., stimulus, stimulus2)``.

    Parameters
    ----------
    data : array, shape (..., n_stimuli, n_stimuli)
    stimulus : sequence, optional
        Stimulus ids (default ``0..n-1``), used for both ``stimulus`` and ``stimulus2``.
    dims : sequence of str, optional
        Names of the leading (broadcast) dims, e.g. ``("subject",)`` or ``("time",)``.

    Examples
    --------
    >>> r = rdm(np.zeros((2, 3, 3)), dims=("subject",), stimulus=list("abc"))
    >>> r.dims
    ('subject', 'stimulus', 'stimulus2')
    """
    arr = np.asarray(data)
    if arr.ndim < 2 or arr.shape[-1] != arr.shape[-2]:
        raise SchemaError(f"rdm: expected (..., n, n) square matrices, got shape {arr.shape}")
    lead = tuple(dims or [f"dim_{i}" for i in range(arr.ndim - 2)])
    if len(lead) != arr.ndim - 2:
        raise SchemaError(f"rdm: dims {lead} name {len(lead)} leading axes but data has {arr.ndim - 2}")
    n = arr.shape[-1]
    ids = _labels(stimulus, n, "stimulus", "stimulus") if stimulus is not None else np.arange(n)
    all_coords = {"stimulus": ids, "stimulus2": ids.copy()}
    all_coords.update(coords or {})
    da = xr.DataArray(arr, dims=(*lead, "stimulus", "stimulus2"), coords=all_coords,
                      attrs=_clean_attrs(attrs, metric=metric))
    return validate(da, "rdm")
