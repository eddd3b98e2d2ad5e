"""Datasets downloaded by MNE's, nilearn's or OSF's own machinery, converted to neurobridge containers.

Each loader has two halves: the fetch (the other library's downloader, into ``<root>/<name>/``) and a
``read_*`` function that converts the files on disk. The ``read_*`` functions are what the tests exercise
on small files written in the real formats; the fetchers only run with network access.
"""

from __future__ import annotations

import json
import logging
import os
import re
import urllib.request
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from neurobridge.core import (
    SchemaError,
    eeg_epochs,
    eeg_raw,
    fmri_responses,
    progress_enabled,
    validate,
)

from ._bundle import DatasetBundle
from ._cards import get_card
from ._fetch import ChecksumError, DatasetNotFoundError, dataset_dir, sha256sum

__all__ = [
    "load_kiloword", "read_kiloword", "load_visual_92_categories", "read_visual_92_categories", "load_mtrf",
    "read_mtrf", "load_haxby", "read_haxby", "load_miyawaki2008", "read_miyawaki2008", "load_things_eeg2",
    "read_things_eeg2", "osf_listing",
]

logger = logging.getLogger("neurobridge")


def _not_found(name: str, folder: Path, what: str, err: Exception | None = None) -> DatasetNotFoundError:
    card = get_card(name)
    reason = f" ({type(err).__name__}: {err})" if err is not None else ""
    return DatasetNotFoundError(
        f"{name}: {what} not found in {folder} and not downloaded{reason}. It is fetched by {card.fetcher} from "
        f"{card.source}; run it with network access (nb.datasets.load({name!r}, download=True)), or put the "
        f"files it creates under {folder} and point data_dir=... / $NEUROBRIDGE_DATA at {folder.parent}"
    )


def _mne_path(name: str, module, folder_name: str, probe: str, data_dir, download: bool) -> Path:
    folder = dataset_dir(name, data_dir)
    expected = folder / folder_name
    if not (expected / probe).exists():
        if not download:
            raise _not_found(name, expected, probe)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            module.data_path(path=str(folder), download=True, update_path=False, verbose="error")
        except Exception as err:  # noqa: BLE001 - network errors of any kind
            raise _not_found(name, expected, probe, err) from err
        if not (expected / probe).exists():
            raise _not_found(name, expected, probe)
    return expected


def _images_to_array(paths: Sequence[str | os.PathLike], size: tuple[int, int] | None) -> np.ndarray:
    from PIL import Image

    out = []
    for p in paths:
        with Image.open(p) as im:
            im = im.convert("RGB")
            if size is None:
                size = im.size
            if im.size != tuple(size):
                im = im.resize(tuple(size), Image.BILINEAR)
            out.append(np.asarray(im, dtype=np.uint8))
    return np.stack(out)


# ------------------------------------------------------------------------------------------- kiloword
def read_kiloword(path: str | os.PathLike) -> DatasetBundle:
    """Convert ``kword_metadata-epo.fif`` (MNE kiloword) into an evoked container and word stimuli.

    Returns
    -------
    DatasetBundle
        ``brain["eeg"]``: evoked ``(stimulus, channel, time)``, one ERP (averaged over participants) per word;
        ``stimuli``: the words, with the metadata columns (``Concreteness``, ``WordFrequency`` ...) as coords.
    """
    import mne

    from neurobridge.io import from_mne

    epochs = mne.read_epochs(path, preload=True, verbose="error")
    if epochs.metadata is None or "WORD" not in epochs.metadata.columns:
        raise ValueError(f"{path}: expected epochs with a metadata column 'WORD' (the kiloword format)")
    words = epochs.metadata["WORD"].astype(str).to_numpy()
    if len(set(words)) != len(words):
        raise SchemaError("kiloword: duplicated words in the metadata; expected one ERP per word")
    da = from_mne(epochs, stimulus="WORD")
    da = da.swap_dims(trial="stimulus").drop_vars("trial")
    da.attrs["description"] = "ERPs averaged over participants, one per word (Dufau et al. 2015)"
    validate(da, "evoked")
    meta = {c: ("stimulus", epochs.metadata[c].to_numpy()) for c in epochs.metadata.columns if c != "WORD"}
    stimuli = xr.DataArray(words, dims="stimulus", coords={"stimulus": words, **meta},
                           attrs={"description": "visually presented English words"})
    card = get_card("kiloword")
    return DatasetBundle(name=card.name, card=card, brain={"eeg": da}, stimuli=stimuli)


def load_kiloword(*, data_dir=None, download: bool = True, progress: bool | None = None) -> DatasetBundle:
    """Load the kiloword ERPs (960 words) via ``mne.datasets.kiloword``; see :func:`read_kiloword`."""
    import mne

    folder = _mne_path("kiloword", mne.datasets.kiloword, "MNE-kiloword-data", "kword_metadata-epo.fif",
                       data_dir, download)
    return read_kiloword(folder / "kword_metadata-epo.fif")


# -------------------------------------------------------------------------------- visual_92_categories
_V92_IDS = np.array([f"img{i:02d}" for i in range(92)])


def read_visual_92_categories(folder: str | os.PathLike, *, runs: Sequence[int] = (0, 1, 2, 3), tmin: float = -0.1,
                              tmax: float = 0.5, picks="meg", decim: int = 1, baseline=None,
                              images: np.ndarray | None = None) -> DatasetBundle:
    """Convert the MNE visual_92_categories files (Cichy et al. 2014) into epochs and stimuli.

    Parameters
    ----------
    folder : path
        ``MNE-visual_92_categories-data`` with ``visual_stimuli.csv`` and ``sample_subject_{run}_tsss_mc.fif``.
    runs : sequence of int
        Which ``sample_subject_{run}_tsss_mc.fif`` files to read and concatenate.
    tmin, tmax, picks, decim, baseline
        Passed to ``mne.Epochs``.
    images : uint8 array (92, H, W, 3), optional
        The 92 images (same order as the triggers); used as stimuli when given.

    Returns
    -------
    DatasetBundle
        ``brain["meg"]``: eeg_epochs ``(trial, channel, time)`` with stimulus ids ``img00`` .. ``img91``
        (trigger - 1, the same ids and order as ``kriegeskorte92``) and coords ``category``, ``human``,
        ``face``, ``animal``, ``natural``, ``run``; ``stimuli``: the images when available, else the
        category labels.
    """
    import mne

    from neurobridge.io import from_mne

    folder = Path(folder)
    conds = pd.read_csv(folder / "visual_stimuli.csv")
    if conds.shape[1] < 6:
        raise ValueError(f"{folder / 'visual_stimuli.csv'}: expected columns trigger, condition, human, face, animal, "
                         f"natural; found {list(conds.columns)}")
    trig = conds.iloc[:, 0].astype(int).to_numpy()
    labels = conds.iloc[:, 1].astype(str).to_numpy()
    flags = {c: conds[c].astype(bool).to_numpy() for c in conds.columns[2:6]}
    event_id = {f"img{t:02d}": int(t) + 1 for t in trig}
    raws = []
    for r in runs:
        fname = folder / f"sample_subject_{int(r)}_tsss_mc.fif"
        if not fname.exists():
            raise FileNotFoundError(f"visual_92_categories: {fname} not found; runs must be within 0..3")
        raws.append(mne.io.read_raw_fif(fname, verbose="error", on_split_missing="ignore"))
    run_of_sample = np.concatenate([np.full(raw.n_times, i) for i, raw in zip(runs, raws, strict=True)])
    raw = mne.concatenate_raws(raws, verbose="error") if len(raws) > 1 else raws[0]
    events = mne.find_events(raw, min_duration=0.002, verbose="error")
    events = events[np.isin(events[:, 2], list(event_id.values()))]
    if len(events) == 0:
        raise ValueError(f"visual_92_categories: no stimulus triggers (1..92) found in runs {list(runs)}")
    present = {k: v for k, v in event_id.items() if v in set(events[:, 2].tolist())}
    epochs = mne.Epochs(raw, events, event_id=present, tmin=tmin, tmax=tmax, baseline=baseline, picks=picks,
                        decim=decim, preload=True, verbose="error")
    da = from_mne(epochs, stimulus="event")
    idx = np.searchsorted(trig, np.asarray(epochs.events[:, 2]) - 1)
    samples = np.asarray(epochs.events[:, 0]) - raw.first_samp
    da = da.assign_coords(category=("trial", labels[idx]), run=("trial", run_of_sample[samples]),
                          **{k: ("trial", v[idx]) for k, v in flags.items()})
    validate(da, "eeg_epochs")
    meta = {"category": ("stimulus", labels), **{k: ("stimulus", v) for k, v in flags.items()}}
    ids = np.array([f"img{t:02d}" for t in trig])
    if images is not None:
        stimuli = xr.DataArray(images, dims=("stimulus", "height", "width", "color"),
                               coords={"stimulus": ids, **meta}, attrs={"source": "kriegeskorte92 images"})
    else:
        stimuli = xr.DataArray(labels, dims="stimulus", coords={"stimulus": ids, **meta},
                               attrs={"description": "category labels (images: load kriegeskorte92)"})
    card = get_card("visual_92_categories")
    return DatasetBundle(name=card.name, card=card, brain={"meg": da}, stimuli=stimuli,
                         extras={"conditions": xr.DataArray(trig, dims="stimulus", coords={"stimulus": ids},
                                                            name="trigger")})


def _k92_images_matching(labels_csv: pd.DataFrame, data_dir, download: bool, progress: bool | None):
    """The kriegeskorte92 images if their labels agree with the csv, else None (with a warning)."""
    from ._fetch import fetch
    from ._kriegeskorte92 import read_stimuli

    try:
        path = fetch("kriegeskorte92", data_dir=data_dir, files=["Kriegeskorte_Neuron2008_supplementalData.mat"],
                     download=download, progress=progress)["Kriegeskorte_Neuron2008_supplementalData.mat"]
    except (DatasetNotFoundError, ChecksumError) as err:
        logger.warning("visual_92_categories: images unavailable (%s); stimuli are category labels", err)
        return None
    st = read_stimuli(path)
    trig = labels_csv.iloc[:, 0].astype(int).to_numpy()
    if not np.array_equal(st["category"].values[trig], labels_csv.iloc[:, 1].astype(str).to_numpy()):
        logger.warning("visual_92_categories: csv labels do not match the kriegeskorte92 images; not pairing them")
        return None
    return st.values[trig]


def load_visual_92_categories(*, data_dir=None, download: bool = True, progress: bool | None = None,
                              runs: Sequence[int] = (0, 1, 2, 3), tmin: float = -0.1, tmax: float = 0.5,
                              picks="meg", decim: int = 1, baseline=None, images: bool = True) -> DatasetBundle:
    """Load the 92-image MEG data via ``mne.datasets.visual_92_categories``, paired with the 92 images.

    The images come from the ``kriegeskorte92`` files (the same stimulus set and order); see
    :func:`read_visual_92_categories` for the returned arrays.
    """
    import mne

    folder = _mne_path("visual_92_categories", mne.datasets.visual_92_categories, "MNE-visual_92_categories-data",
                       "visual_stimuli.csv", data_dir, download)
    imgs = None
    if images:
        imgs = _k92_images_matching(pd.read_csv(folder / "visual_stimuli.csv"), data_dir, download, progress)
    return read_visual_92_categories(folder, runs=runs, tmin=tmin, tmax=tmax, picks=picks, decim=decim,
                                     baseline=baseline, images=imgs)


# ------------------------------------------------------------------------------------------------ mTRF
def read_mtrf(path: str | os.PathLike, *, decim: int = 1) -> DatasetBundle:
    """Convert mTRF 1.5 ``speech_data.mat`` (Lalor & Foxe 2010) into continuous EEG and speech features.

    Returns
    -------
    DatasetBundle
        ``brain["eeg"]``: eeg_raw ``(channel, time)``, 128 BioSemi channels with standard positions;
        ``stimuli``: one stimulus ``"speech"`` (a text description); ``extras["envelope"]`` ``(time, unit)``
        broadband envelope and ``extras["spectrogram"]`` ``(time, unit)`` 16-band spectrogram, on the same time
        axis as the EEG (ready for TRFs and :func:`simulate_encoding`).
    """
    import mne
    import scipy.io

    mat = scipy.io.loadmat(path)
    missing = [k for k in ("EEG", "envelope", "Fs") if k not in mat]
    if missing:
        raise ValueError(f"{path}: missing variables {missing}; expected the mTRF 1.5 speech_data.mat "
                         "(EEG, spectrogram, envelope, Fs)")
    sfreq = float(np.asarray(mat["Fs"]).ravel()[0])
    eeg = np.asarray(mat["EEG"], dtype=np.float64).T
    env = np.asarray(mat["envelope"], dtype=np.float64).T
    spec = np.asarray(mat["spectrogram"], dtype=np.float64).T if "spectrogram" in mat else None
    if decim > 1:
        eeg = mne.filter.resample(eeg, down=decim, method="polyphase", verbose="error")
        env = mne.filter.resample(env, down=decim, method="polyphase", verbose="error")
        spec = None if spec is None else mne.filter.resample(spec, down=decim, method="polyphase", verbose="error")
        sfreq /= decim
    n_ch = eeg.shape[0]
    montage = mne.channels.make_standard_montage("biosemi128")
    if n_ch == len(montage.ch_names):
        names = montage.ch_names
        pos_dict = montage.get_positions()["ch_pos"]
        pos = np.array([pos_dict[n] for n in names])
    else:
        names, pos = [f"EEG{i:03d}" for i in range(n_ch)], None
    da = eeg_raw(eeg, sfreq=sfreq, ch_names=names, ch_types=["eeg"] * n_ch, ch_pos=pos,
                 attrs={"units": "a.u. (as distributed)", "source": "mTRF 1.5 speech_data.mat", "stimulus": "speech"})
    t = da["time"].values
    extras = {"envelope": xr.DataArray(env.T, dims=("time", "unit"), coords={"time": t, "unit": ["envelope"]},
                                       name="speech", attrs={"sfreq": sfreq})}
    if spec is not None:
        extras["spectrogram"] = xr.DataArray(spec.T, dims=("time", "unit"),
                                             coords={"time": t, "unit": np.arange(spec.shape[0])},
                                             name="speech", attrs={"sfreq": sfreq,
                                                                   "description": "16 log-spaced bands 100-4000 Hz"})
    stimuli = xr.DataArray(["120 s of natural speech (a male speaker reading), heard by the participant"],
                           dims="stimulus", coords={"stimulus": ["speech"]})
    card = get_card("mtrf")
    return DatasetBundle(name=card.name, card=card, brain={"eeg": da}, stimuli=stimuli, extras=extras)


def load_mtrf(*, data_dir=None, download: bool = True, progress: bool | None = None, decim: int = 1) -> DatasetBundle:
    """Load the mTRF speech EEG via ``mne.datasets.mtrf``; see :func:`read_mtrf`."""
    import mne

    folder = _mne_path("mtrf", mne.datasets.mtrf, "mTRF_1.5", "speech_data.mat", data_dir, download)
    return read_mtrf(folder / "speech_data.mat", decim=decim)


# ----------------------------------------------------------------------------------------------- Haxby
_HAXBY_TR = 2.5


def _category_of_folder(folder: str, labels: Sequence[str]) -> str | None:
    f = folder.lower()
    for lab in labels:
        if f in (lab, lab + "s", lab + "es") or f.rstrip("s") == lab.rstrip("s"):
            return lab
    return None


def _blocks(labels: np.ndarray, runs: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of contiguous non-rest blocks of one label within one run."""
    out, start = [], 0
    for i in range(1, len(labels) + 1):
        if i == len(labels) or labels[i] != labels[start] or runs[i] != runs[start]:
            if labels[start] != "rest":
                out.append((start, i))
            start = i
    return out


def read_haxby(func, session_target, mask, *, stimuli: dict | None = None, lag: int = 2,
               image_size: tuple[int, int] | None = (128, 128), tr: float = _HAXBY_TR) -> DatasetBundle:
    """Convert one Haxby et al. (2001) subject (nilearn ``fetch_haxby`` files) into containers.

    Parameters
    ----------
    func, session_target, mask : path
        The 4-D BOLD image, the ``labels.txt`` (columns ``labels chunks``) and a mask on the BOLD grid.
    stimuli : dict, optional
        nilearn's ``stimuli`` tree (folder -> image paths); the exemplar images are returned in
        ``extras["images"]``.
    lag : int
        Volumes by which the block responses are shifted to account for the haemodynamic delay.
    image_size : (int, int) or None
        Resize the exemplar images (they vary in size) to this (width, height).

    Returns
    -------
    DatasetBundle
        ``brain["bold"]``: fmri_timeseries ``(time, voxel)`` with ``label`` and ``run`` coords on ``time``;
        ``brain["blocks"]``: fmri_responses ``(trial, voxel)``, the mean of each category block (shifted by
        ``lag`` volumes), stimulus ids = category labels, ``run`` coord;
        ``stimuli``: the 8 category names; ``extras["images"]``: uint8 ``(image, height, width, color)`` with a
        ``category`` coord (when stimuli were fetched).
    """
    from neurobridge.io import from_nifti

    target = pd.read_csv(session_target, sep=r"\s+")
    if not {"labels", "chunks"} <= set(target.columns):
        raise ValueError(f"{session_target}: expected columns 'labels chunks', found {list(target.columns)}")
    ts = from_nifti(func, mask=mask, tr=tr)
    if ts.sizes["time"] != len(target):
        raise SchemaError(f"haxby: {ts.sizes['time']} volumes but {len(target)} rows in {session_target}")
    labels = target["labels"].astype(str).to_numpy()
    runs = target["chunks"].astype(int).to_numpy()
    ts = ts.assign_coords(label=("time", labels), run=("time", runs))
    vals = np.asarray(ts.values, dtype=np.float64)
    rows, ids, brun, onset = [], [], [], []
    for a, b in _blocks(labels, runs):
        sel = np.arange(a, b) + lag
        sel = sel[(sel < len(labels)) & (runs[np.clip(sel, 0, len(runs) - 1)] == runs[a])]
        if sel.size == 0:
            continue
        rows.append(vals[sel].mean(0))
        ids.append(labels[a])
        brun.append(runs[a])
        onset.append(float(ts["time"].values[a]))
    vcoords = {k: ts[k].values for k in ("i", "j", "k", "x", "y", "z") if k in ts.coords}
    blocks = fmri_responses(np.stack(rows), stimulus=ids, voxel_coords=vcoords,
                            trial_coords={"run": np.array(brun), "onset": np.array(onset)},
                            attrs={"source": "haxby2001", "lag_volumes": int(lag), "tr": float(tr)})
    cats = sorted(set(labels.tolist()) - {"rest"})
    extras: dict[str, xr.DataArray] = {}
    n_images = np.zeros(len(cats), dtype=int)
    if stimuli:
        paths, pcats = [], []
        for folder, files in stimuli.items():
            lab = _category_of_folder(folder, cats)
            if lab is None or not isinstance(files, (list, tuple)):
                continue  # e.g. the nested 'controls' folder
            paths.extend(files)
            pcats.extend([lab] * len(files))
        if paths:
            arr = _images_to_array(paths, image_size)
            extras["images"] = xr.DataArray(arr, dims=("image", "height", "width", "color"),
                                            coords={"category": ("image", np.array(pcats)),
                                                    "file": ("image", np.array([Path(p).name for p in paths]))})
            n_images = np.array([pcats.count(c) for c in cats])
    stim = xr.DataArray(np.array(cats), dims="stimulus", coords={"stimulus": cats, "n_images": ("stimulus", n_images)},
                        attrs={"description": "object categories (grayscale photographs)"})
    card = get_card("haxby")
    return DatasetBundle(name=card.name, card=card, brain={"bold": ts, "blocks": blocks}, stimuli=stim, extras=extras)


_HAXBY_MASKS = {"vt": "mask_vt", "face": "mask_face", "house": "mask_house", "face_little": "mask_face_little",
                "house_little": "mask_house_little", "brain": "mask"}


def load_haxby(*, data_dir=None, download: bool = True, progress: bool | None = None, subject: int = 2, mask: str = "vt",
               lag: int = 2, images: bool = True, image_size: tuple[int, int] | None = (128, 128)) -> DatasetBundle:
    """Load one subject of Haxby et al. (2001) via ``nilearn.datasets.fetch_haxby``; see :func:`read_haxby`.

    ``mask`` is one of ``"vt"`` (ventral temporal, default), ``"face"``, ``"house"``, ``"face_little"``,
    ``"house_little"`` or ``"brain"``.
    """
    from nilearn.datasets import fetch_haxby

    if mask not in _HAXBY_MASKS:
        raise ValueError(f"mask must be one of {sorted(_HAXBY_MASKS)}, got {mask!r}")
    folder = dataset_dir("haxby", data_dir)
    if not download and not (folder / "haxby2001" / f"subj{int(subject)}" / "bold.nii.gz").exists():
        raise _not_found("haxby", folder / "haxby2001", f"subj{int(subject)}/bold.nii.gz")
    try:
        b = fetch_haxby(data_dir=str(folder), subjects=(int(subject),), fetch_stimuli=images, verbose=0)
    except Exception as err:  # noqa: BLE001
        raise _not_found("haxby", folder / "haxby2001", f"subject {subject}", err) from err
    key = _HAXBY_MASKS[mask]
    mask_path = b[key] if key == "mask" else b[key][0]
    return read_haxby(b.func[0], b.session_target[0], mask_path, stimuli=b.get("stimuli") if images else None,
                      lag=lag, image_size=image_size)


# -------------------------------------------------------------------------------------------- Miyawaki
def _pattern_id(img: np.ndarray) -> str:
    bits = np.packbits(img.astype(bool).ravel())
    return "p" + bits.tobytes().hex()


def read_miyawaki2008(func: Sequence, label: Sequence, mask, *, shift: int = 2, standardize: bool = True,
                      tr: float = 2.0) -> DatasetBundle:
    """Convert Miyawaki et al. (2008) runs (nilearn ``fetch_miyawaki2008`` files) into responses and images.

    Parameters
    ----------
    func, label : sequences of paths
        BOLD runs and their label csv files (one row per volume, 100 values of a 10x10 binary image in
        column-major order, -1 for rest).
    mask : path
        Mask on the BOLD grid.
    shift : int
        Volumes between a stimulus and the response used for it (haemodynamic delay).
    standardize : bool
        Linearly detrend and z-score every voxel within each run (as in nilearn's examples).

    Returns
    -------
    DatasetBundle
        ``brain["responses"]``: fmri_responses ``(trial, voxel)``, one trial per stimulus volume (rest removed),
        with ``run``, ``design`` ("random"/"figure") and ``volume`` coords; stimulus ids are content hashes of
        the 10x10 images (identical images share an id). ``stimuli``: uint8 ``(stimulus, height, width)`` binary
        (0/1) images.
    """
    from scipy.signal import detrend

    from neurobridge.io import from_nifti

    if len(func) != len(label):
        raise ValueError(f"miyawaki2008: {len(func)} BOLD runs but {len(label)} label files")
    rows, ids, run_c, design_c, vol_c, images = [], [], [], [], [], {}
    vcoords = None
    for r, (f, lab) in enumerate(zip(func, label, strict=True)):
        ts = from_nifti(f, mask=mask, tr=tr)
        y = np.loadtxt(lab, dtype=int, delimiter=",").reshape(-1, 10, 10, order="F")
        x = np.asarray(ts.values, dtype=np.float64)
        if standardize:
            x = detrend(x, axis=0)
            sd = x.std(0)
            x = x / np.where(sd > 0, sd, 1.0)
        n = min(len(y), x.shape[0] - shift)
        design = "figure" if "figure" in Path(str(lab)).name else "random"
        for t in range(n):
            if y[t, 0, 0] == -1:
                continue
            pid = _pattern_id(y[t])
            images.setdefault(pid, y[t].astype(np.uint8))
            rows.append(x[t + shift])
            ids.append(pid)
            run_c.append(r)
            design_c.append(design)
            vol_c.append(t)
        if vcoords is None:
            vcoords = {k: ts[k].values for k in ("i", "j", "k", "x", "y", "z") if k in ts.coords}
    if not rows:
        raise ValueError("miyawaki2008: no stimulus volumes found (all labels are rest)")
    resp = fmri_responses(np.stack(rows), stimulus=ids, voxel_coords=vcoords,
                          trial_coords={"run": np.array(run_c), "design": np.array(design_c), "volume": np.array(vol_c)},
                          attrs={"source": "miyawaki2008", "shift_volumes": int(shift), "tr": float(tr)})
    keys = list(images)
    stimuli = xr.DataArray(np.stack([images[k] for k in keys]), dims=("stimulus", "height", "width"),
                           coords={"stimulus": keys}, attrs={"description": "10x10 binary contrast patterns"})
    card = get_card("miyawaki2008")
    return DatasetBundle(name=card.name, card=card, brain={"responses": resp}, stimuli=stimuli)


def load_miyawaki2008(*, data_dir=None, download: bool = True, progress: bool | None = None, runs: str = "all",
                      shift: int = 2, standardize: bool = True) -> DatasetBundle:
    """Load Miyawaki et al. (2008) via ``nilearn.datasets.fetch_miyawaki2008``; see :func:`read_miyawaki2008`.

    ``runs``: ``"random"`` (20 random-pattern runs, usually for training), ``"figure"`` (12 runs of
    geometric shapes and letters) or ``"all"``.
    """
    from nilearn.datasets import fetch_miyawaki2008

    if runs not in ("all", "random", "figure"):
        raise ValueError(f"runs must be 'all', 'random' or 'figure', got {runs!r}")
    folder = dataset_dir("miyawaki2008", data_dir)
    if not download and not (folder / "miyawaki2008" / "func" / "data_random_run01.nii.gz").exists():
        raise _not_found("miyawaki2008", folder / "miyawaki2008", "func/data_random_run01.nii.gz")
    try:
        b = fetch_miyawaki2008(data_dir=str(folder), verbose=0)
    except Exception as err:  # noqa: BLE001
        raise _not_found("miyawaki2008", folder / "miyawaki2008", "the runs", err) from err
    pairs = [(f, lab) for f, lab in zip(b.func, b.label, strict=True)
             if runs == "all" or f"data_{runs}_" in Path(str(f)).name]
    return read_miyawaki2008([p[0] for p in pairs], [p[1] for p in pairs], b.mask, shift=shift,
                             standardize=standardize)


# ----------------------------------------------------------------------------------------- THINGS-EEG2
OSF_API = "https://api.osf.io/v2"
THINGS_EEG2_NODES = {"preprocessed": "anp5v", "images": "y63gw"}


def osf_listing(node: str, *, api: str | None = None, max_depth: int = 2) -> dict[str, dict]:
    """Files of an OSF project's storage: path -> ``{"url", "sha256", "md5", "size"}``.

    Uses the public OSF API (``/v2/nodes/<node>/files/osfstorage/``), following pagination and folders.

    Examples
    --------
    >>> files = osf_listing("anp5v")  # doctest: +SKIP
    >>> sorted(files)[:1]  # doctest: +SKIP
    ['sub-01.zip']
    """
    base = (api or os.environ.get("NEUROBRIDGE_OSF_API") or OSF_API).rstrip("/")
    out: dict[str, dict] = {}

    def walk(url: str, prefix: str, depth: int) -> None:
        while url:
            with urllib.request.urlopen(url, timeout=30) as resp:  # noqa: S310 - public https API
                page = json.load(resp)
            for item in page.get("data", []):
                attrs = item.get("attributes", {})
                name = attrs.get("name", "")
                if attrs.get("kind") == "folder":
                    if depth < max_depth:
                        href = item.get("relationships", {}).get("files", {}).get("links", {}).get(
                            "related", {}).get("href")
                        if href:
                            walk(href, prefix + name + "/", depth + 1)
                    continue
                hashes = (attrs.get("extra") or {}).get("hashes") or {}
                out[prefix + name] = {"url": item.get("links", {}).get("download"), "sha256": hashes.get("sha256"),
                                      "md5": hashes.get("md5"), "size": attrs.get("size")}
            url = (page.get("links") or {}).get("next")

    walk(f"{base}/nodes/{node}/files/osfstorage/", "", 0)
    return out


def _osf_get(listing: dict[str, dict], name: str, folder: Path, progress: bool | None, node: str) -> Path:
    import pooch

    target = folder / name
    entry = listing.get(name)
    if entry is None:
        raise DatasetNotFoundError(f"things_eeg2: OSF project {node} has no file {name!r}; it lists "
                                   f"{sorted(listing)[:20]}")
    if target.exists():
        if entry.get("sha256") and sha256sum(target) != entry["sha256"]:
            raise ChecksumError(f"things_eeg2: {target} has SHA-256 {sha256sum(target)} but OSF lists "
                                f"{entry['sha256']}; delete it and load again")
        return target
    known = f"sha256:{entry['sha256']}" if entry.get("sha256") else (f"md5:{entry['md5']}" if entry.get("md5") else None)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        path = pooch.retrieve(entry["url"], known_hash=known, fname=name, path=folder, progressbar=progress_enabled(progress))
    except ValueError as err:
        if "hash" in str(err).lower():
            raise ChecksumError(f"things_eeg2: {name} downloaded from {entry['url']} does not match the checksum "
                                f"OSF lists ({known}); it was not kept ({err})") from err
        raise
    return Path(path)


def _unzip_once(path: Path, dest: Path) -> None:
    marker = dest / f".{path.name}.extracted"
    if marker.exists():
        return
    with zipfile.ZipFile(path) as zf:
        zf.extractall(dest)
    marker.write_text("ok")


def read_things_eeg2(folder: str | os.PathLike, *, subject: int = 1, partition: str = "test",
                     load_images: bool | None = None, image_size: tuple[int, int] | None = None) -> DatasetBundle:
    """Convert THINGS-EEG2 (Gifford et al. 2022) preprocessed files into epochs and image stimuli.

    Expects ``sub-XX/preprocessed_eeg_{training,test}.npy`` (pickled dicts with ``preprocessed_eeg_data``
    ``(image, repetition, channel, time)``, ``ch_names``, ``times``), ``image_metadata.npy`` (dict with
    ``{train,test}_img_files`` and ``{train,test}_img_concepts``) and, for images,
    ``{training,test}_images/<concept>/<file>``.

    Returns
    -------
    DatasetBundle
        ``brain["eeg"]``: eeg_epochs ``(trial, channel, time)``, trials = image x repetition (``repetition``
        coord); stimulus ids = image file stems (e.g. ``aardvark_01b``) with a ``concept`` coord.
        ``stimuli``: uint8 ``(stimulus, height, width, color)`` images when ``load_images`` (default: for the
        200-image test partition only), else the image paths (str).
    """
    folder = Path(folder)
    part = {"test": "test", "training": "training", "train": "training"}.get(partition)
    if part is None:
        raise ValueError(f"partition must be 'test' or 'training', got {partition!r}")
    short = "test" if part == "test" else "train"
    eeg_path = folder / f"sub-{int(subject):02d}" / f"preprocessed_eeg_{part}.npy"
    if not eeg_path.exists():
        raise FileNotFoundError(f"things_eeg2: {eeg_path} not found")
    d = np.load(eeg_path, allow_pickle=True).item()
    data = np.asarray(d["preprocessed_eeg_data"])
    if data.ndim != 4:
        raise SchemaError(f"{eeg_path}: expected (image, repetition, channel, time) data, found shape {data.shape}")
    meta = np.load(folder / "image_metadata.npy", allow_pickle=True).item()
    files = np.asarray(meta[f"{short}_img_files"]).astype(str)
    concepts = np.asarray(meta[f"{short}_img_concepts"]).astype(str)
    if len(files) != data.shape[0]:
        raise SchemaError(f"things_eeg2: {data.shape[0]} image conditions in the EEG but {len(files)} "
                          f"{short} images in image_metadata.npy")
    ids = np.array([Path(f).stem for f in files])
    n_img, n_rep, n_ch, n_t = data.shape
    times = np.asarray(d["times"], dtype=float)
    da = eeg_epochs(data.reshape(n_img * n_rep, n_ch, n_t), stimulus=np.repeat(ids, n_rep),
                    ch_names=list(d["ch_names"]), times=times, sfreq=float(round(1 / np.median(np.diff(times)), 6)),
                    trial_coords={"repetition": np.tile(np.arange(n_rep), n_img),
                                  "concept": np.repeat(concepts, n_rep)},
                    attrs={"source": "THINGS-EEG2 preprocessed", "subject": int(subject), "partition": part,
                           "units": "z-scored (as distributed)"})
    if load_images is None:
        load_images = part == "test"
    img_root = folder / f"{part}_images"
    paths = [img_root / c / f for c, f in zip(concepts, files, strict=True)]
    coords = {"stimulus": ids, "concept": ("stimulus", concepts)}
    if load_images:
        missing = [p for p in paths if not p.exists()]
        if missing:
            raise FileNotFoundError(f"things_eeg2: {len(missing)} images missing under {img_root}, e.g. {missing[0]}")
        stimuli = xr.DataArray(_images_to_array(paths, image_size), dims=("stimulus", "height", "width", "color"),
                               coords=coords)
    else:
        stimuli = xr.DataArray(np.array([str(p) for p in paths]), dims="stimulus", coords=coords,
                               attrs={"description": "image file paths"})
    card = get_card("things_eeg2")
    return DatasetBundle(name=card.name, card=card, brain={"eeg": da}, stimuli=stimuli)


def load_things_eeg2(*, data_dir=None, download: bool = True, progress: bool | None = None, subject: int = 1,
                     partition: str = "test", load_images: bool | None = None,
                     image_size: tuple[int, int] | None = None) -> DatasetBundle:
    """Load THINGS-EEG2 preprocessed EEG of one subject from its public OSF projects; see :func:`read_things_eeg2`.

    Downloads ``sub-XX.zip`` from OSF project ``anp5v`` and ``image_metadata.npy`` plus the image archive of
    the partition from ``y63gw``, verified against the SHA-256 that OSF reports.
    """
    folder = dataset_dir("things_eeg2", data_dir)
    part = "test" if partition == "test" else "training"
    need = [folder / f"sub-{int(subject):02d}" / f"preprocessed_eeg_{part}.npy", folder / "image_metadata.npy"]
    want_images = (part == "test") if load_images is None else load_images
    if want_images:
        need.append(folder / f"{part}_images")
    if not all(p.exists() for p in need):
        if not download:
            raise _not_found("things_eeg2", folder, ", ".join(str(p.relative_to(folder)) for p in need))
        try:
            pre = osf_listing(THINGS_EEG2_NODES["preprocessed"])
            img = osf_listing(THINGS_EEG2_NODES["images"])
            if not need[0].exists():
                name = next((n for n in pre if re.fullmatch(rf"(.*/)?sub-{int(subject):02d}\.zip", n)), None)
                if name is None:
                    raise DatasetNotFoundError(f"no sub-{int(subject):02d}.zip in OSF project anp5v")
                _unzip_once(_osf_get(pre, name, folder, progress, "anp5v"), folder)
            if not need[1].exists():
                _osf_get(img, "image_metadata.npy", folder, progress, "y63gw")
            if want_images and not need[2].exists():
                _unzip_once(_osf_get(img, f"{part}_images.zip", folder, progress, "y63gw"), folder)
        except ChecksumError:
            raise
        except Exception as err:  # noqa: BLE001
            raise _not_found("things_eeg2", folder, "the preprocessed EEG / images", err) from err
    return read_things_eeg2(folder, subject=subject, partition=partition, load_images=load_images,
                            image_size=image_size)
