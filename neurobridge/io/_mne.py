"""Bridge between MNE-Python objects (Raw, Epochs, Evoked) and neurobridge containers.

Channel information travels in coordinates on ``channel`` so that :func:`to_mne` can rebuild an
``mne.Info`` without the original: ``ch_type`` (mne type string), ``pos_x/pos_y/pos_z`` (metres,
``loc[:3]``), ``coil_type``, ``coord_frame`` and ``ch_unit`` (FIFF integers), and, when any channel has them
(MEG sensor orientations, EEG reference positions), ``loc_3`` ... ``loc_11``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from neurobridge.core import SchemaError, check_unique, optional_import, validate
from neurobridge.core import eeg_epochs as _eeg_epochs
from neurobridge.core import eeg_raw as _eeg_raw
from neurobridge.core import evoked as _evoked

__all__ = ["from_mne", "to_mne", "channel_info"]

logger = logging.getLogger("neurobridge")

_MEG_TYPES = {"mag", "grad", "ref_meg"}
_UNITS = {"eeg": "V", "eog": "V", "ecg": "V", "emg": "V", "seeg": "V", "dbs": "V", "ecog": "V", "stim": "V",
          "misc": "AU", "mag": "T", "grad": "T/m", "ref_meg": "T"}
_LOC_EXTRA = [f"loc_{i}" for i in range(3, 12)]
_ANNOT_KEYS = ("annot_onset", "annot_duration", "annot_description")
# Trial coordinates written by from_mne itself (not Epochs metadata).
_EPOCH_COORDS = ("trial", "stimulus", "event", "event_name", "sample")


def _mne():
    return optional_import("mne", purpose="MEG/EEG bridges")


def _source(obj) -> str:
    single = getattr(obj, "filename", None)
    if single:
        return Path(single).name
    fnames = getattr(obj, "filenames", None)
    if fnames:
        first = [f for f in fnames if f is not None]
        if first:
            return Path(first[0]).name
    info = getattr(obj, "info", None)
    desc = info.get("description") if info is not None else None
    return str(desc) if desc else f"mne.{type(obj).__name__}"


def channel_info(info) -> dict[str, Any]:
    """Channel coordinates of an ``mne.Info``, as ``{name: array}`` (one entry per channel).

    Parameters
    ----------
    info : mne.Info

    Returns
    -------
    dict
        ``ch_type`` (str), ``pos_x``, ``pos_y``, ``pos_z`` (m), ``coil_type``, ``coord_frame``, ``ch_unit``
        (FIFF integer codes) and,
        when any channel has them, ``loc_3`` ... ``loc_11``.

    Examples
    --------
    >>> import mne
    >>> info = mne.create_info(["Cz", "Pz"], 100.0, "eeg")
    >>> sorted(channel_info(info))[:3]
    ['ch_type', 'ch_unit', 'coil_type']
    """
    mne = _mne()
    chs = info["chs"]
    loc = np.array([np.asarray(ch["loc"], dtype=float) for ch in chs]).reshape(len(chs), 12)
    out: dict[str, Any] = {
        "ch_type": np.array(info.get_channel_types() if hasattr(info, "get_channel_types")
                            else [mne.channel_type(info, i) for i in range(len(chs))], dtype=str),
        "pos_x": loc[:, 0], "pos_y": loc[:, 1], "pos_z": loc[:, 2],
        "coil_type": np.array([int(ch["coil_type"]) for ch in chs], dtype=np.int64),
        "coord_frame": np.array([int(ch["coord_frame"]) for ch in chs], dtype=np.int64),
        "ch_unit": np.array([int(ch["unit"]) for ch in chs], dtype=np.int64),
    }
    extra = loc[:, 3:]
    if np.any(np.isfinite(extra) & (extra != 0)):
        for i, name in enumerate(_LOC_EXTRA):
            out[name] = extra[:, i]
    return out


def _modality(types) -> str:
    kinds = set(np.asarray(types).tolist())
    has_meg = bool(kinds & _MEG_TYPES)
    has_eeg = "eeg" in kinds
    if has_meg and has_eeg:
        return "meeg"
    return "meg" if has_meg else "eeg"


def _units(types) -> str:
    units = sorted({_UNITS.get(t, "AU") for t in np.asarray(types).tolist()} - {"AU"})
    return units[0] if len(units) == 1 else ("SI" if units else "AU")


def _info_attrs(obj, types) -> dict:
    info = obj.info
    attrs: dict[str, Any] = {"modality": _modality(types), "units": _units(types), "source": _source(obj)}
    for key in ("highpass", "lowpass"):
        if info.get(key) is not None:
            attrs[key] = float(info[key])
    attrs["bads"] = [str(b) for b in info["bads"]]
    if info.get("dev_head_t") is not None:
        attrs["dev_head_t"] = [float(v) for v in np.asarray(info["dev_head_t"]["trans"]).ravel()]
    if info.get("meas_date") is not None:
        attrs["meas_date"] = info["meas_date"].isoformat()
    return attrs


def _with_channel_coords(da: xr.DataArray, info) -> xr.DataArray:
    coords = channel_info(info)
    return da.assign_coords({k: ("channel", v) for k, v in coords.items()})


def _check_data(data: np.ndarray, what: str) -> None:
    if not np.all(np.isfinite(data)):
        n = int((~np.isfinite(data)).sum())
        raise SchemaError(f"{what} contains {n} non-finite value(s) (NaN or inf); interpolate bad channels "
                          "(inst.interpolate_bads()), drop the affected epochs or channels, then convert again")


def _stimulus_from_epochs(epochs, stimulus, names: np.ndarray, meta: pd.DataFrame | None) -> np.ndarray:
    n = len(epochs)
    if isinstance(stimulus, str):
        if stimulus == "event":
            return names
        if meta is not None and stimulus in meta.columns:
            return _column(meta[stimulus])
        cols = [] if meta is None else list(meta.columns)
        raise SchemaError(f"stimulus={stimulus!r} is neither 'event' nor a metadata column (columns: {cols}); "
                          "pass stimulus='event', a metadata column name, or one id per epoch")
    ids = np.asarray(stimulus)
    if ids.ndim != 1 or ids.shape[0] != n:
        raise SchemaError(f"stimulus has {ids.shape[0] if ids.ndim else 'a scalar'} entries but the epochs have {n}; "
                          "pass one id per epoch, 'event' or a metadata column name")
    return ids


def _meta_coord(name: str, stimulus) -> str:
    """Trial coordinate that holds metadata column ``name``."""
    if name == "stimulus" and isinstance(stimulus, str) and stimulus == "stimulus":
        return "stimulus"
    if name in _EPOCH_COORDS or name in ("channel", "time"):
        return f"meta_{name}"
    return name


def _column(series: pd.Series) -> np.ndarray:
    values = series.to_numpy()
    if values.dtype == object:
        values = np.array([str(v) for v in values])
    return values


def from_mne(obj, *, stimulus: str | Sequence | None = "event") -> xr.DataArray:
    """Convert an MNE Raw, Epochs, Evoked or list of Evoked into a labelled container.

    Parameters
    ----------
    obj : mne.io.BaseRaw, mne.BaseEpochs, mne.Evoked or list of mne.Evoked
    stimulus : str or sequence, optional
        For Epochs: ``"event"`` (the event name from ``event_id`` of each epoch, default), a metadata
        column name, or one id per epoch. For Evoked: ``None`` (default ``"event"`` is treated as None)
        labels the first dim ``condition`` with each ``comment``; ``"condition"`` or a sequence of ids
        names the first dim ``stimulus`` instead. Ignored for Raw.

    Returns
    -------
    xr.DataArray
        ``eeg_raw`` (channel, time), ``eeg_epochs`` (trial, channel, time) or ``evoked``
        (condition|stimulus, channel, time). Data in SI units (V, T, T/m), ``time`` in seconds;
        channel coords ``ch_type``, ``pos_x/y/z`` (m), ``coil_type``, ``coord_frame``; attrs ``sfreq``,
        ``modality`` ("eeg", "meg" or "meeg"), ``units``, ``source``, ``highpass``, ``lowpass``, ``bads``.
        Epochs also get trial coords ``event`` (code), ``event_name``, ``sample`` and every metadata column.

    Raises
    ------
    SchemaError
        NaN/inf in the data, unknown stimulus column, mismatched Evoked channels or times.

    Examples
    --------
    >>> import mne, numpy as np
    >>> info = mne.create_info(["Cz", "Pz"], 100.0, "eeg")
    >>> events = np.array([[0, 0, 1], [20, 0, 2]])
    >>> ep = mne.EpochsArray(np.zeros((2, 2, 10)), info, events=events, event_id={"cat": 1, "dog": 2}, verbose=False)
    >>> da = from_mne(ep)
    >>> da.dims, da.stimulus.values.tolist()
    (('trial', 'channel', 'time'), ['cat', 'dog'])
    """
    mne = _mne()
    if isinstance(obj, (list, tuple)):
        return _from_evokeds(list(obj), stimulus)
    if isinstance(obj, mne.Evoked):
        return _from_evokeds([obj], stimulus)
    if isinstance(obj, mne.BaseEpochs):
        return _from_epochs(obj, stimulus)
    if isinstance(obj, mne.io.BaseRaw):
        return _from_raw(obj)
    raise TypeError(f"from_mne expects mne Raw, Epochs, Evoked or a list of Evoked, got {type(obj).__name__}; "
                    "for arrays use nb.core.eeg_epochs(...) / nb.core.evoked(...)")


def _from_raw(raw) -> xr.DataArray:
    data = raw.get_data()
    _check_data(data, "raw data")
    types = raw.get_channel_types()
    attrs = _info_attrs(raw, types)
    attrs["first_samp"] = int(raw.first_samp)
    ann = raw.annotations
    if len(ann):
        # onsets relative to the first sample of the data, so they survive a rebuilt Info without meas_date
        offset = raw.first_time if ann.orig_time is not None else 0.0
        attrs["annot_onset"] = [float(v) - offset for v in ann.onset]
        attrs["annot_duration"] = [float(v) for v in ann.duration]
        attrs["annot_description"] = [str(v) for v in ann.description]
    da = _eeg_raw(data, sfreq=float(raw.info["sfreq"]), ch_names=raw.ch_names, tmin=0.0, attrs=attrs)
    da = da.assign_coords(time=raw.times.astype(float))
    return validate(_with_channel_coords(da, raw.info), "eeg_raw", check_values=False)


def _from_epochs(epochs, stimulus) -> xr.DataArray:
    if stimulus is None:
        raise SchemaError("from_mne(epochs) needs stimulus=...: 'event' (event names), a metadata column, "
                          "or one id per epoch")
    data = epochs.get_data()
    _check_data(data, "epochs data")
    codes = np.asarray(epochs.events[:, 2], dtype=np.int64)
    inv: dict[int, str] = {}
    for name, code in epochs.event_id.items():
        inv.setdefault(int(code), str(name))
    names = np.array([inv.get(int(c), str(int(c))) for c in codes])
    meta = epochs.metadata
    ids = _stimulus_from_epochs(epochs, stimulus, names, meta)
    trial_coords: dict[str, Any] = {"event": codes, "event_name": names,
                                    "sample": np.asarray(epochs.events[:, 0], dtype=np.int64)}
    meta_cols: list[str] = []
    if meta is not None:
        for col in meta.columns:
            name = str(col)
            key = _meta_coord(name, stimulus)
            if key == "stimulus":
                pass  # the stimulus coordinate already holds this column
            elif key != name:
                logger.warning("metadata column %r clashes with a reserved coordinate and is stored as %r", name, key)
                trial_coords[key] = _column(meta[col])
            else:
                trial_coords[key] = _column(meta[col])
            meta_cols.append(name)
    types = epochs.get_channel_types()
    attrs = _info_attrs(epochs, types)
    if meta_cols:
        attrs["metadata_columns"] = meta_cols
    if epochs.baseline is not None:
        attrs["baseline"] = [float(v) for v in epochs.baseline]
    da = _eeg_epochs(data, stimulus=ids, ch_names=epochs.ch_names, times=epochs.times.astype(float),
                     sfreq=float(epochs.info["sfreq"]), trial_coords=trial_coords, attrs=attrs)
    return validate(_with_channel_coords(da, epochs.info), "eeg_epochs", check_values=False)


def _from_evokeds(evokeds: list, stimulus) -> xr.DataArray:
    mne = _mne()
    if not evokeds:
        raise SchemaError("from_mne got an empty list; pass at least one mne.Evoked")
    for i, ev in enumerate(evokeds):
        if not isinstance(ev, mne.Evoked):
            raise TypeError(f"from_mne: element {i} of the list is {type(ev).__name__}, expected mne.Evoked")
    first = evokeds[0]
    for i, ev in enumerate(evokeds[1:], start=1):
        if ev.ch_names != first.ch_names:
            raise SchemaError(f"Evoked {i} ({ev.comment!r}) has different channels than Evoked 0 ({first.comment!r}); "
                              "pick the same channels in the same order with ev.pick(first.ch_names)")
        if ev.times.shape != first.times.shape or not np.array_equal(ev.times, first.times):
            raise SchemaError(f"Evoked {i} ({ev.comment!r}) has different times than Evoked 0 ({first.comment!r}); "
                              "crop/resample them to the same time axis first")
        if ev.info["sfreq"] != first.info["sfreq"]:
            raise SchemaError(f"Evoked {i} has sfreq {ev.info['sfreq']} but Evoked 0 has {first.info['sfreq']}; resample first")
    data = np.stack([ev.data for ev in evokeds])
    _check_data(data, "evoked data")
    comments = np.array([str(ev.comment) if ev.comment is not None else f"evoked{i}" for i, ev in enumerate(evokeds)])
    nave = [int(ev.nave) for ev in evokeds]
    types = first.get_channel_types()
    attrs = _info_attrs(first, types)
    attrs["kind"] = [str(ev.kind) for ev in evokeds]
    common = dict(ch_names=first.ch_names, times=first.times.astype(float), sfreq=float(first.info["sfreq"]),
                  nave=nave, attrs=attrs)
    if stimulus is None or (isinstance(stimulus, str) and stimulus == "event"):
        if len(set(comments.tolist())) != len(comments):
            raise SchemaError(f"Evoked comments are not unique ({comments.tolist()}); set ev.comment for each "
                              "or pass stimulus=[...] with unique ids")
        da = _evoked(data, condition=comments, **common)
    else:
        if isinstance(stimulus, str):
            if stimulus not in ("condition", "comment"):
                raise SchemaError(f"stimulus={stimulus!r} is not valid for Evoked; pass 'condition' (use the comments "
                                  "as stimulus ids) or a sequence of ids, one per Evoked")
            ids = comments
        else:
            ids = np.asarray(stimulus)
        if ids.ndim != 1 or len(ids) != len(evokeds):
            raise SchemaError(f"stimulus has {ids.size} ids but {len(evokeds)} Evoked were given; pass one id per Evoked")
        check_unique(ids, owner="Evoked", fix="pass one unique id per Evoked (one average per stimulus)")
        da = _evoked(data, stimulus=ids, **common).assign_coords(condition=("stimulus", comments))
    return validate(_with_channel_coords(da, first.info), "evoked", check_values=False)


# --------------------------------------------------------------------------------------------------- to_mne


def _build_info(da: xr.DataArray):
    mne = _mne()
    if "sfreq" not in da.attrs:
        raise SchemaError("to_mne needs attribute 'sfreq' (Hz); set da.attrs['sfreq'] = ... or pass info=...")
    names = [str(c) for c in da["channel"].values]
    if "ch_type" in da.coords:
        types = [str(t) for t in da["ch_type"].values]
    else:
        default = {"meg": "mag"}.get(str(da.attrs.get("modality", "eeg")), "eeg")
        logger.info("to_mne: no 'ch_type' coordinate, using %r for every channel", default)
        types = [default] * len(names)
    info = mne.create_info(names, float(da.attrs["sfreq"]), types)
    pos = [da[f"pos_{a}"].values.astype(float) if f"pos_{a}" in da.coords else None for a in "xyz"]
    extra = [da[n].values.astype(float) if n in da.coords else None for n in _LOC_EXTRA]
    for i, ch in enumerate(info["chs"]):
        loc = np.array(ch["loc"], dtype=float)
        for j, p in enumerate(pos):
            if p is not None:
                loc[j] = p[i]
        for j, e in enumerate(extra):
            if e is not None:
                loc[3 + j] = e[i]
        ch["loc"] = loc
        if "coil_type" in da.coords:
            ch["coil_type"] = int(da["coil_type"].values[i])
        if "coord_frame" in da.coords:
            ch["coord_frame"] = int(da["coord_frame"].values[i])
        if "ch_unit" in da.coords:
            ch["unit"] = int(da["ch_unit"].values[i])
    bads = [b for b in da.attrs.get("bads", []) if b in names] if isinstance(da.attrs.get("bads"), list) else []
    with info._unlock():
        info["bads"] = bads
        for key in ("highpass", "lowpass"):
            if key in da.attrs:
                info[key] = float(da.attrs[key])
        trans = da.attrs.get("dev_head_t")
        if isinstance(trans, list) and len(trans) == 16:
            info["dev_head_t"] = mne.transforms.Transform("meg", "head", np.asarray(trans, dtype=float).reshape(4, 4))
    return info


def _match_info(da: xr.DataArray, info):
    mne = _mne()
    names = [str(c) for c in da["channel"].values]
    missing = [n for n in names if n not in info["ch_names"]]
    if missing:
        raise SchemaError(f"info lacks {len(missing)} channel(s) of the data, e.g. {missing[:5]}; pass the Info of the "
                          "recording the data came from, or info=None to rebuild one from the coordinates")
    if "sfreq" in da.attrs and not np.isclose(float(info["sfreq"]), float(da.attrs["sfreq"])):
        raise SchemaError(f"info has sfreq {info['sfreq']} Hz but the data has {da.attrs['sfreq']} Hz; "
                          "resample or pass info=None")
    if names == list(info["ch_names"]):
        return info.copy()
    return mne.pick_info(info, [info["ch_names"].index(n) for n in names])


def _time_axis(da: xr.DataArray, sfreq: float) -> float:
    t = np.asarray(da["time"].values, dtype=float)
    if t.size > 1:
        step = np.diff(t)
        if not np.allclose(step, 1.0 / sfreq, rtol=1e-6, atol=0):
            raise SchemaError(f"time coordinate is not regularly sampled at sfreq={sfreq} Hz (steps {step.min()}..{step.max()} s); "
                              "MNE needs a regular grid: resample or fix attrs['sfreq']")
    return float(t[0])


def to_mne(da: xr.DataArray, info=None):
    """Convert a container back into an MNE object.

    Parameters
    ----------
    da : xr.DataArray
        ``eeg_epochs`` (trial, channel, time) -> ``mne.EpochsArray``; ``evoked`` (condition|stimulus,
        channel, time) -> list of ``mne.EvokedArray`` (one per condition, always a list);
        ``eeg_raw`` (channel, time) -> ``mne.io.RawArray``.
    info : mne.Info, optional
        Use this Info (channels picked in the data's order). By default an Info is rebuilt from the
        coordinates written by :func:`from_mne` (names, types, positions, coil types, sfreq, bads, filters).

    Returns
    -------
    mne.EpochsArray, list of mne.EvokedArray or mne.io.RawArray

    Raises
    ------
    SchemaError
        Wrong dims, missing ``sfreq``, NaN/inf, channels missing from ``info``, irregular time axis.

    Examples
    --------
    >>> import numpy as np, neurobridge as nb
    >>> da = nb.core.eeg_epochs(np.zeros((2, 2, 5)), stimulus=["a", "b"], ch_names=["Cz", "Pz"], sfreq=100.0)
    >>> ep = to_mne(da.assign_coords(ch_type=("channel", ["eeg", "eeg"])))
    >>> ep.get_data().shape, sorted(ep.event_id)
    ((2, 2, 5), ['a', 'b'])
    """
    mne = _mne()
    if not isinstance(da, xr.DataArray):
        raise TypeError(f"to_mne expects an xr.DataArray, got {type(da).__name__}")
    dims = tuple(da.dims)
    if dims[-2:] != ("channel", "time") or len(dims) not in (2, 3):
        raise SchemaError(f"to_mne: expected dims (channel, time), (trial, channel, time) or "
                          f"(condition|stimulus, channel, time), found {dims}; "
                          "use da.transpose(..., 'channel', 'time') or select away extra dims")
    if "sfreq" not in da.attrs and info is None:
        raise SchemaError("to_mne needs attribute 'sfreq' (Hz); set da.attrs['sfreq'] = ... or pass info=...")
    kind = {2: "eeg_raw"}.get(len(dims)) or ("eeg_epochs" if dims[0] == "trial" else "evoked")
    validate(da, kind)
    info = _build_info(da) if info is None else _match_info(da, info)
    sfreq = float(info["sfreq"])
    data = np.asarray(da.values, dtype=float)
    tmin = _time_axis(da, sfreq)
    if kind == "eeg_raw":
        raw = mne.io.RawArray(data, info, first_samp=int(da.attrs.get("first_samp", 0)), verbose=False)
        if all(k in da.attrs for k in _ANNOT_KEYS):
            raw.set_annotations(mne.Annotations(da.attrs["annot_onset"], da.attrs["annot_duration"],
                                                da.attrs["annot_description"], orig_time=None))
        return raw
    if kind == "evoked":
        first = dims[0]
        if "condition" in da.coords:
            comments = [str(c) for c in da["condition"].values]
        else:
            comments = [str(c) for c in da[first].values]
        if "nave" in da.coords:
            naves = da["nave"].values.astype(int)
        elif "n_repetitions" in da.coords:  # from nb.core.average_repetitions(epochs)
            naves = da["n_repetitions"].values.astype(int)
        else:
            naves = np.ones(da.sizes[first], dtype=int)
        kinds = da.attrs.get("kind")
        kinds = kinds if isinstance(kinds, list) and len(kinds) == len(comments) else ["average"] * len(comments)
        return [mne.EvokedArray(data[i], info, tmin=tmin, comment=comments[i], nave=int(naves[i]), kind=kinds[i],
                                verbose=False) for i in range(len(comments))]
    return _to_epochs(da, data, info, tmin)


def _to_epochs(da: xr.DataArray, data: np.ndarray, info, tmin: float):
    mne = _mne()
    n = da.sizes["trial"]
    if "event_name" in da.coords:
        names = np.asarray(da["event_name"].values).astype(str)
    else:
        names = np.asarray(da["stimulus"].values).astype(str)
    if "event" in da.coords:
        codes = np.asarray(da["event"].values, dtype=np.int64)
    else:
        _, codes = np.unique(names, return_inverse=True)
        codes = codes.astype(np.int64) + 1
    event_id: dict[str, int] = {}
    for name, code in zip(names.tolist(), codes.tolist(), strict=True):
        if event_id.get(name, code) != code:
            raise SchemaError(f"event name {name!r} maps to several event codes; fix the 'event'/'event_name' coords")
        event_id[name] = int(code)
    by_code: dict[int, str] = {}
    for name, code in event_id.items():
        if by_code.setdefault(code, name) != name:
            # mne needs one name per code; keep the first and report
            logger.warning("to_mne: event code %d has several names (%r, %r); keeping the first", code, by_code[code], name)
    event_id = {name: code for code, name in by_code.items()}
    if "sample" in da.coords:
        samples = np.asarray(da["sample"].values, dtype=np.int64)
    else:
        samples = np.arange(n, dtype=np.int64) * data.shape[-1]
    events = np.column_stack([samples, np.zeros(n, dtype=np.int64), codes])
    meta = None
    cols = da.attrs.get("metadata_columns")
    if isinstance(cols, list) and cols:
        columns = {}
        for c in cols:
            for key in (f"meta_{c}", c) if c in _EPOCH_COORDS else (c,):
                if key in da.coords and da[key].dims == ("trial",):
                    columns[c] = np.asarray(da[key].values)
                    break
        meta = pd.DataFrame(columns) if columns else None
    # data are taken as they are: a baseline applied before conversion is not applied again
    return mne.EpochsArray(data, info, events=events, tmin=tmin, event_id=event_id, metadata=meta,
                           baseline=None, proj=False, verbose=False)
