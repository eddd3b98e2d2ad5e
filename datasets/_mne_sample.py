"""Loader for the 4-condition evoked MEG+EEG of the MNE 'sample' subject (MNE-Python test data)."""

from __future__ import annotations

import logging

import numpy as np
import xarray as xr

from neurobridge.core import evoked as make_evoked
from neurobridge.core import validate

from ._bundle import DatasetBundle
from ._cards import get_card
from ._fetch import fetch

__all__ = ["load_mne_sample_evoked", "CONDITIONS", "evoked_to_container"]

logger = logging.getLogger("neurobridge")

CONDITIONS = {
    "Left Auditory": ("auditory/left", "a 1 kHz tone played to the left ear"),
    "Right Auditory": ("auditory/right", "a 1 kHz tone played to the right ear"),
    "Left visual": ("visual/left", "a checkerboard flashed in the left visual field"),
    "Right visual": ("visual/right", "a checkerboard flashed in the right visual field"),
}
"""MNE comment -> (stimulus id, text description)."""

_UNITS = {"grad": "T/m", "mag": "T", "eeg": "V", "eog": "V", "stim": "", "ecg": "V", "misc": ""}


def evoked_to_container(evokeds, stimulus, *, picks="data") -> xr.DataArray:
    """Stack MNE ``Evoked`` objects (same channels and times) into an ``evoked`` container.

    Parameters
    ----------
    evokeds : list of mne.Evoked
    stimulus : sequence of str
        One id per evoked, used as the ``stimulus`` dim.
    picks : str or list
        Channels to keep (MNE ``picks``; default ``"data"``: MEG and EEG).

    Returns
    -------
    xr.DataArray
        dims ``(stimulus, channel, time)``, coords ``ch_type``, ``ch_unit``, ``pos_x/y/z`` (metres), ``nave``,
        ``condition`` (the MNE comment); attrs ``sfreq``, ``modality``, ``units``.

    Examples
    --------
    >>> import mne, numpy as np
    >>> info = mne.create_info(["Cz", "Pz"], 100.0, "eeg")
    >>> ev = mne.EvokedArray(np.zeros((2, 5)), info, tmin=-0.02, comment="a")
    >>> evoked_to_container([ev], ["a"]).dims
    ('stimulus', 'channel', 'time')
    """
    evokeds = [ev.copy().pick(picks) for ev in evokeds]
    first = evokeds[0]
    for ev in evokeds[1:]:
        if ev.ch_names != first.ch_names or not np.allclose(ev.times, first.times):
            raise ValueError("evoked_to_container: all Evoked objects must share channels and times; "
                             "pick the same channels (ev.pick(...)) and crop/resample them alike")
    types = first.get_channel_types()
    pos = np.array([ch["loc"][:3] for ch in first.info["chs"]], dtype=float)
    data = np.stack([ev.data for ev in evokeds])
    modality = "meeg" if {"eeg"} & set(types) and {"grad", "mag"} & set(types) else (
        "meg" if {"grad", "mag"} & set(types) else "eeg")
    da = make_evoked(
        data, stimulus=list(stimulus), ch_names=first.ch_names, times=first.times, sfreq=float(first.info["sfreq"]),
        ch_types=types, ch_pos=pos, nave=[int(ev.nave) for ev in evokeds],
        attrs={"modality": modality, "units": "SI (see ch_unit)", "source": "mne"},
    )
    da = da.assign_coords(ch_unit=("channel", np.array([_UNITS.get(t, "") for t in types])),
                          condition=("stimulus", np.array([ev.comment for ev in evokeds], dtype=str)))
    if first.info["bads"]:
        da.attrs["bads"] = list(first.info["bads"])
    return validate(da, "evoked")


def _from_io(evokeds, stimulus):
    """Use ``nb.io.from_mne`` when the io module provides it, else the local converter."""
    try:
        from neurobridge.io import from_mne  # type: ignore[attr-defined]
    except ImportError:
        return None
    try:
        da = from_mne(evokeds, stimulus=list(stimulus))
    except (TypeError, ValueError, NotImplementedError) as err:
        logger.debug("nb.io.from_mne could not convert the evoked list (%s); using the local converter", err)
        return None
    if not isinstance(da, xr.DataArray) or da.dims[0] != "stimulus":
        return None
    return da


def load_mne_sample_evoked(*, data_dir=None, download: bool = True, progress: bool | None = None, picks="data",
                           noise_cov: bool = False) -> DatasetBundle:
    """Load the 4-condition evoked MEG+EEG of the MNE 'sample' subject.

    Parameters
    ----------
    picks : str or list
        MNE channel picks (default ``"data"``: 204 grad + 102 mag + 60 EEG = 366 channels).
    noise_cov : bool
        Also return the noise covariance as ``extras["noise_cov"]`` (``channel x channel2``).

    Returns
    -------
    DatasetBundle
        - ``brain["meeg"]``: evoked, dims ``(stimulus, channel, time)`` = 4 x 366 x 421, 600.6 Hz, -0.2..0.5 s;
          stimulus ids ``auditory/left``, ``auditory/right``, ``visual/left``, ``visual/right``; coords
          ``ch_type``, ``ch_unit``, ``nave``, ``condition``. Data as stored (SSP projectors applied).
        - ``stimuli``: str ``(stimulus,)``, a short description of each condition, with coords
          ``modality`` (auditory/visual) and ``side`` (left/right).
        - ``extras["events"]``: int ``(event, field)`` MNE events (sample, previous, id).
    """
    import mne

    card = get_card("mne_sample_evoked")
    want = ["test-ave.fif.gz", "test-eve.fif"] + (["test-cov.fif"] if noise_cov else [])
    paths = fetch(card.name, data_dir=data_dir, files=want, download=download, progress=progress)
    evokeds = mne.read_evokeds(paths["test-ave.fif.gz"], verbose="error")
    unknown = [ev.comment for ev in evokeds if ev.comment not in CONDITIONS]
    if unknown:
        raise ValueError(f"mne_sample_evoked: unexpected conditions {unknown}; expected {list(CONDITIONS)}")
    ids = [CONDITIONS[ev.comment][0] for ev in evokeds]
    da = _from_io([ev.copy().pick(picks) for ev in evokeds], ids)
    if da is None:
        da = evoked_to_container(evokeds, ids, picks=picks)
    if "ch_unit" not in da.coords and "ch_type" in da.coords:
        da = da.assign_coords(ch_unit=("channel", np.array([_UNITS.get(str(t), "") for t in da["ch_type"].values])))
    validate(da, "evoked")

    stimuli = xr.DataArray(
        np.array([CONDITIONS[ev.comment][1] for ev in evokeds]), dims=("stimulus",),
        coords={"stimulus": ids, "modality": ("stimulus", [i.split("/")[0] for i in ids]),
                "side": ("stimulus", [i.split("/")[1] for i in ids])},
        attrs={"description": "text descriptions of the four conditions"},
    )
    events = mne.read_events(paths["test-eve.fif"], verbose="error")
    extras = {"events": xr.DataArray(events, dims=("event", "field"),
                                     coords={"field": ["sample", "previous", "id"]},
                                     attrs={"event_id": "1=auditory/left, 2=auditory/right, 3=visual/left, "
                                                        "4=visual/right, 5=smiley, 32=button"})}
    if noise_cov:
        cov = mne.read_cov(paths["test-cov.fif"], verbose="error")
        names = [n for n in da["channel"].values.tolist() if n in cov.ch_names]
        cov = cov.copy().pick_channels(names, ordered=True) if hasattr(cov, "pick_channels") else cov
        idx = [cov.ch_names.index(n) for n in names]
        mat = np.asarray(cov.data)[np.ix_(idx, idx)]
        extras["noise_cov"] = xr.DataArray(mat, dims=("channel", "channel2"),
                                           coords={"channel": names, "channel2": names},
                                           attrs={"nfree": int(cov["nfree"])})
    return DatasetBundle(name=card.name, card=card, brain={"meeg": da}, stimuli=stimuli, extras=extras)
