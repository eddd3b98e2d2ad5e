"""Reading EEG/MEG from a BIDS dataset (through mne-bids) into neurobridge containers."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from neurobridge.core import SchemaError, optional_import

from ._mne import from_mne

__all__ = ["read_bids"]

logger = logging.getLogger("neurobridge")


def _available(mne_bids, root: Path, entity: str) -> list[str]:
    try:
        return list(mne_bids.get_entity_vals(root, entity))
    except Exception:  # noqa: BLE001  (listing is only for the error message)
        return []


def read_bids(
    root: str | os.PathLike, subject: str, task: str, *, session: str | None = None, run: str | int | None = None,
    datatype: str = "eeg", stimulus: str | Sequence = "event", tmin: float | None = -0.2, tmax: float | None = 0.5,
    baseline: tuple | None = None, event_id: Sequence[str] | Mapping[str, int] | None = None,
    reject_by_annotation: bool = True,
) -> xr.DataArray:
    """Read one EEG/MEG recording of a BIDS dataset into ``eeg_epochs`` (or ``eeg_raw``).

    Parameters
    ----------
    root : path
        BIDS root folder.
    subject, task : str
        BIDS entities (without the ``sub-``/``task-`` prefix).
    session, run : str or int, optional
        BIDS entities, when the dataset has them.
    datatype : {"eeg", "meg", "ieeg"}
        BIDS datatype folder.
    stimulus : str or sequence
        ``"event"`` (the ``trial_type`` of each event, default), a column of ``*_events.tsv`` (e.g.
        ``"stimulus"`` or ``"stim_file"``), or one id per epoch.
    tmin, tmax : float or None
        Epoch window in seconds around each event; both ``None`` returns the continuous ``eeg_raw``.
    baseline : tuple, optional
        Baseline interval passed to ``mne.Epochs`` (default: none applied).
    event_id : sequence of str or mapping, optional
        Only epoch these trial types (default: all events of ``*_events.tsv``).
    reject_by_annotation : bool
        Drop epochs overlapping ``BAD_*`` annotations (passed to ``mne.Epochs``).

    Returns
    -------
    xr.DataArray
        ``eeg_epochs`` (trial, channel, time) with trial coords ``event``, ``event_name``, ``sample`` and the
        columns of ``*_events.tsv``; or ``eeg_raw`` when ``tmin`` and ``tmax`` are None. Attr ``source`` names
        the BIDS file; ``bids_subject``, ``bids_task`` (and session/run) are kept as attrs.

    Raises
    ------
    FileNotFoundError
        The root or the recording does not exist (the message lists the subjects and tasks found).
    SchemaError
        No events to epoch, unknown trial types or stimulus column.

    Examples
    --------
    >>> epochs = read_bids("ds000117", subject="01", task="facerecognition", datatype="meg")  # doctest: +SKIP
    """
    mne = optional_import("mne", purpose="BIDS reading")
    mne_bids = optional_import("mne_bids", purpose="BIDS reading")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"BIDS root not found: {root}; pass the folder that holds dataset_description.json")
    run = str(run) if isinstance(run, int) else run
    path = mne_bids.BIDSPath(root=root, subject=subject, session=session, task=task, run=run, datatype=datatype)
    readable = set(optional_import("mne_bids.config").reader)
    matches = [m for m in path.match() if m.suffix == datatype and m.extension in readable] \
        if (root / f"sub-{subject}").exists() else []
    if not matches:
        subs = _available(mne_bids, root, "subject")
        tasks = _available(mne_bids, root, "task")
        raise FileNotFoundError(
            f"no {datatype} recording for sub-{subject} task-{task}"
            f"{f' ses-{session}' if session else ''}{f' run-{run}' if run else ''} under {root}; "
            f"subjects found: {subs}, tasks found: {tasks}; check subject/task/session/run/datatype")
    if len(matches) > 1:
        raise SchemaError(f"{len(matches)} recordings match ({[m.basename for m in matches][:5]}); "
                          "pass session=... and/or run=... to pick one")
    bids_path = matches[0]
    raw, event_dict = mne_bids.read_raw_bids(bids_path, return_event_dict=True, verbose=False)
    attrs = {"source": bids_path.basename, "bids_subject": str(subject), "bids_task": str(task)}
    if session:
        attrs["bids_session"] = str(session)
    if run:
        attrs["bids_run"] = str(run)
    if tmin is None and tmax is None:
        da = from_mne(raw)
        da.attrs.update(attrs)
        return da
    if not event_dict:
        raise SchemaError(f"{bids_path.basename} has no events (*_events.tsv) to epoch; "
                          "pass tmin=None, tmax=None for the continuous recording")
    if event_id is not None:
        names = list(event_id) if not isinstance(event_id, Mapping) else list(event_id.keys())
        unknown = [n for n in names if n not in event_dict]
        if unknown:
            raise SchemaError(f"unknown trial types {unknown}; the events file has {sorted(event_dict)}")
        event_dict = {n: event_dict[n] for n in names}
    events, used = mne.events_from_annotations(raw, event_id=event_dict, verbose=False)
    if len(events) == 0:
        raise SchemaError(f"no events of types {sorted(event_dict)} in {bids_path.basename}")
    metadata = _events_metadata(bids_path, raw, events, used)
    epochs = mne.Epochs(raw, events, event_id=used, tmin=tmin, tmax=tmax, baseline=baseline, metadata=metadata,
                        preload=True, reject_by_annotation=reject_by_annotation, on_missing="ignore", verbose=False)
    if len(epochs) == 0:
        raise SchemaError(f"all {len(events)} epochs were dropped (outside the recording or in BAD annotations); "
                          "shorten tmin/tmax or pass reject_by_annotation=False")
    da = from_mne(epochs, stimulus=stimulus)
    da.attrs.update(attrs)
    return da


def _events_metadata(bids_path, raw, events: np.ndarray, used: Mapping[str, int]) -> pd.DataFrame | None:
    """Rows of ``*_events.tsv`` matching ``events`` (by sample and trial type), or None if they do not match."""
    tsv = bids_path.copy().update(suffix="events", extension=".tsv", datatype=bids_path.datatype)
    if not Path(tsv.fpath).exists():
        return None
    table = pd.read_csv(tsv.fpath, sep="\t", na_values="n/a", keep_default_na=False)
    if "onset" not in table.columns or "trial_type" not in table.columns:
        return None
    sfreq = raw.info["sfreq"]
    samples = np.round(table["onset"].to_numpy(dtype=float) * sfreq).astype(np.int64) + raw.first_samp
    names = table["trial_type"].astype(str).to_numpy()
    inv = {v: k for k, v in used.items()}
    rows = []
    taken: set[int] = set()
    for sample, code in events[:, [0, 2]]:
        hit = np.flatnonzero((np.abs(samples - sample) <= 1) & (names == inv[int(code)]))
        hit = [h for h in hit if h not in taken]
        if not hit:
            logger.info("events.tsv rows do not match the annotations; epochs get no metadata")
            return None
        taken.add(hit[0])
        rows.append(hit[0])
    meta = table.iloc[rows].reset_index(drop=True)
    drop = [c for c in ("onset", "duration", "sample", "value") if c in meta.columns]
    meta = meta.drop(columns=drop)
    return meta if len(meta.columns) else None
