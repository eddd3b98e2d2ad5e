"""Simulated brain data with a known answer: encoding, RSA and sparse-coding ground truths.

Conventions shared by the simulators
------------------------------------
* ``random_state`` (int, ``None`` or ``numpy.random.Generator``) makes every draw reproducible.
* Noise is Gaussian with unit variance per trial and target; the signal is scaled by ``sqrt(snr)``, so
  ``snr`` is the ratio of stimulus-driven variance (across stimuli) to noise variance of one trial.
* For a target with signal variance ``s`` and noise variance 1:

  - ``explainable_variance = s / (s + 1)``: the fraction of single-trial variance (across stimuli) driven by
    the stimulus, which is also the expected correlation between two repetitions (split-half reliability
    for ``n_repeats=2``);
  - ``noise_ceiling = s / (s + 1 / n_repeats)``: the largest R² (squared correlation) any model can reach
    when predicting the response averaged over the ``n_repeats`` repetitions; equal to the Spearman-Brown
    corrected split-half reliability.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd
import xarray as xr

from neurobridge.core import (
    SchemaError,
    activations,
    check_finite,
    check_unique,
    eeg_epochs,
    fmri_responses,
    fmri_timeseries,
    rdm,
    validate,
)

__all__ = [
    "SimulatedEncoding", "SimulatedRSA", "SimulatedSparseCodes",
    "simulate_encoding", "simulate_rsa", "simulate_sparse_codes",
]

logger = logging.getLogger("neurobridge")


# ----------------------------------------------------------------------------------------------- helpers
def _rng(random_state) -> np.random.Generator:
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(0, 2**31 - 1))
    return np.random.default_rng(random_state)


def _as_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _one_space(x, name: str, stim_ids) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """-> (values (stimulus, unit), stimulus ids, unit ids)."""
    if isinstance(x, xr.DataArray):
        if "stimulus" not in x.dims:
            raise SchemaError(f"features {name!r}: expected a 'stimulus' dim, found dims {x.dims}; build features "
                              "with nb.core.activations(values, stimulus=ids)")
        other = [d for d in x.dims if d != "stimulus"]
        if len(other) != 1:
            raise SchemaError(f"features {name!r}: expected dims (stimulus, unit), found {x.dims}; pool extra dims "
                              "first (e.g. da.mean('token'))")
        x = x.transpose("stimulus", other[0])
        ids = np.asarray(x["stimulus"].values)
        units = np.asarray(x[other[0]].values) if other[0] in x.coords else np.arange(x.shape[1])
        vals = _as_numpy(x.data).astype(np.float64)
    else:
        vals = _as_numpy(x).astype(np.float64)
        if vals.ndim != 2:
            raise SchemaError(f"features {name!r}: expected a 2-d (stimulus, unit) array, found shape {vals.shape}")
        ids = np.asarray(stim_ids) if stim_ids is not None else np.array([f"stim{i:04d}" for i in range(vals.shape[0])])
        if ids.shape[0] != vals.shape[0]:
            raise SchemaError(f"features {name!r}: {vals.shape[0]} rows but {ids.shape[0]} stimulus ids")
        units = np.arange(vals.shape[1])
    check_unique(ids, owner=f"features {name!r}")
    check_finite(vals, f"features {name!r}")
    return vals, ids, units


def _feature_spaces(features, stimulus) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, np.ndarray]]:
    """Normalise every accepted feature input to {space: (stimulus, unit) array} with shared stimulus ids."""
    if hasattr(xr, "DataTree") and isinstance(features, xr.DataTree):
        spaces = {}
        for node in features.subtree:
            path = node.path.strip("/")
            if path == "stats" or path.startswith("stats/") or not (node.has_data and node.ds.data_vars):
                continue  # nb.extract's per-layer statistics are not feature spaces
            dvars = node.ds.data_vars
            var = dvars["activations"] if "activations" in dvars else next(iter(dvars.values()))
            spaces[path or node.name or "root"] = var
        features = spaces
    if isinstance(features, xr.Dataset):
        features = dict(features.data_vars)
    if isinstance(features, xr.DataArray) and "layer" in features.dims:
        features = {str(k): features.sel(layer=k).drop_vars("layer", errors="ignore") for k in features["layer"].values}
    if not isinstance(features, Mapping):
        name = "features"
        if isinstance(features, xr.DataArray):
            name = str(features.attrs.get("layer") or features.name or "features")
        features = {name: features}
    if not features:
        raise SchemaError("features: got no feature space; pass a (stimulus, unit) DataArray or array")
    out, units, ids0 = {}, {}, None
    for name, x in features.items():
        vals, ids, u = _one_space(x, str(name), stimulus)
        if ids0 is None:
            ids0 = ids
        elif not np.array_equal(ids, ids0):
            if set(ids.tolist()) != set(ids0.tolist()):
                raise SchemaError(f"features {name!r}: stimulus ids differ from the first feature space; every "
                                  "space must describe the same stimuli")
            order = pd.Index(ids).get_indexer(ids0)
            vals = vals[order]
        if vals.shape[0] < 3:
            raise SchemaError(f"features {name!r}: need at least 3 stimuli, found {vals.shape[0]}")
        out[str(name)] = vals
        units[str(name)] = u
    return out, np.asarray(ids0), units


def _zscore(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(0)
    sd = x.std(0)
    sd[sd == 0] = 1.0
    return x / sd


def _snr_per_target(snr, n: int, name: str = "voxel") -> np.ndarray:
    s = np.broadcast_to(np.asarray(snr, dtype=np.float64), (n,)).copy() if np.ndim(snr) == 0 else np.asarray(snr, dtype=np.float64)
    if s.shape != (n,):
        raise SchemaError(f"snr: expected a scalar or one value per {name} ({n}), found shape {s.shape}")
    if np.any(s < 0) or not np.all(np.isfinite(s)):
        raise SchemaError("snr must be finite and >= 0 (0 gives pure-noise targets)")
    return s


def _temporal_kernels(times: np.ndarray, n_components: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth evoked-like kernels (n_components, n_times): damped oscillations starting after 50 ms."""
    lat = np.linspace(0.08, 0.3, n_components) + rng.uniform(-0.02, 0.02, n_components)
    width = rng.uniform(0.03, 0.06, n_components)
    freq = rng.uniform(4.0, 8.0, n_components)
    h = np.exp(-0.5 * ((times[None] - lat[:, None]) / width[:, None]) ** 2) * np.cos(
        2 * np.pi * freq[:, None] * (times[None] - lat[:, None]))
    h[:, times < 0] = 0.0
    norm = np.linalg.norm(h, axis=1, keepdims=True)
    norm[norm == 0] = 1.0
    return h / norm


# ------------------------------------------------------------------------------------------- encoding
class SimulatedEncoding(NamedTuple):
    """Simulated responses to real or random features, with the ground truth that generated them.

    Targets are ``voxel`` for ``kind="fmri"`` and ``(channel, time)`` for ``kind="eeg"``.
    """

    responses: xr.DataArray
    """Single-trial responses: ``fmri_responses`` ``(trial, voxel)`` or ``eeg_epochs`` ``(trial, channel, time)``;
    repetitions share a ``stimulus`` id; ``repetition`` (and ``run``) coords on ``trial``; ``true_space`` coord
    on ``voxel`` (fMRI)."""
    signal: xr.DataArray
    """Noise-free responses, ``(stimulus, voxel)`` or ``(stimulus, channel, time)``."""
    weights: xr.DataArray
    """True weights on the standardised features (:attr:`features`): ``(unit, voxel)`` for fMRI (zero outside a
    voxel's true space); for EEG the TRF ``(unit, channel, time)`` (epochs) or ``(lag, unit, channel)``
    (continuous features). ``signal = features @ weights`` exactly."""
    noise_ceiling: xr.DataArray
    """True noise ceiling per target: ``s / (s + 1/n_repeats)``, the best achievable R² on
    repetition-averaged data."""
    explainable_variance: xr.DataArray
    """True single-trial explainable variance per target: ``s / (s + 1)``."""
    features: xr.DataArray
    """The features used, z-scored per unit over stimuli (or time), concatenated over spaces: ``(stimulus,
    unit)`` with a ``space`` coord on ``unit`` (``(time, unit)`` for continuous features)."""
    timeseries: xr.DataArray | None = None
    """fMRI only, ``timeseries=True``: BOLD ``fmri_timeseries`` ``(time, voxel)``, runs concatenated, with a
    ``run`` coord on ``time``; trial amplitudes are :attr:`responses` convolved with nilearn's HRF."""
    events: pd.DataFrame | None = None
    """fMRI only, ``timeseries=True``: one row per trial with ``onset`` (s, on the ``time`` axis of
    :attr:`timeseries`), ``duration``, ``trial_type`` (stimulus id), ``run``, ``trial``."""


def simulate_encoding(
    features, n_voxels: int = 100, snr=1.0, *, n_repeats: int = 2, kind: str = "fmri",
    true_space: str | Sequence[str] | None = None, stimulus: Sequence | None = None,
    timeseries: bool = False, n_runs: int | None = None, tr: float = 2.0, isi: float = 4.0,
    hrf_model: str = "glover", scan_noise: float = 0.5,
    n_channels: int = 32, n_components: int = 3, sfreq: float = 100.0, tmin: float = -0.1, tmax: float = 0.5,
    trf_tmax: float = 0.4, random_state=None,
) -> SimulatedEncoding:
    """Simulate brain responses to a feature matrix with known weights, noise ceiling and explainable variance.

    Parameters
    ----------
    features : DataArray, array, mapping, Dataset or DataTree
        ``(stimulus, unit)`` activations (one feature space), or several spaces (e.g. layers) as a mapping /
        Dataset / DataTree / DataArray with a ``layer`` dim, all over the same stimuli. For ``kind="eeg"`` a
        DataArray with dims ``(time, unit)`` (e.g. a speech envelope) simulates continuous EEG with a TRF.
    n_voxels : int
        Number of fMRI voxels (``kind="fmri"``).
    snr : float or array
        Signal-to-noise variance ratio per target (scalar, or one per voxel / per channel); 0 gives pure noise.
        For EEG, the ratio of the channel's signal variance (averaged over the epoch) to the noise variance.
    n_repeats : int
        Repetitions of each stimulus (independent noise).
    kind : {"fmri", "eeg"}
    true_space : str or sequence of str, optional
        The feature space that drives each voxel: one name for all voxels, or one per voxel. Default: voxels
        split into equal contiguous blocks over the spaces, in order.
    stimulus : sequence, optional
        Stimulus ids when ``features`` is a bare array (default ``stim0000``...).
    timeseries : bool
        fMRI: also return BOLD time series and the events table.
    n_runs : int, optional
        fMRI time series: number of runs (default ``n_repeats``: one repetition of every stimulus per run,
        shuffled).
    tr, isi, hrf_model, scan_noise : float, float, str, float
        fMRI time series: repetition time (s), inter-stimulus interval (s), nilearn HRF model, and the standard
        deviation of white scanner noise added to the BOLD signal.
    n_channels, n_components : int
        EEG: number of channels and of latent sources (each a spatial pattern times a temporal kernel).
    sfreq, tmin, tmax : float
        EEG epochs: sampling rate (Hz) and epoch window (s). For continuous features, ``sfreq`` is taken from
        the features' ``time`` coordinate.
    trf_tmax : float
        Continuous EEG: TRF length in seconds (lags 0..trf_tmax).
    random_state : int, Generator or None

    Returns
    -------
    SimulatedEncoding
        ``responses``, ``signal``, ``weights``, ``noise_ceiling``, ``explainable_variance``, ``features``,
        ``timeseries``, ``events`` (see :class:`SimulatedEncoding`).

    Notes
    -----
    fMRI: ``signal[:, v] = sqrt(snr_v) * Z_s @ w_v`` with ``Z_s`` the z-scored features of voxel ``v``'s
    true space and ``w_v`` Gaussian, rescaled so the signal has unit variance over stimuli before the
    ``sqrt(snr_v)`` factor; each trial adds N(0, 1) noise. Hence ``explainable_variance = snr / (1 + snr)``
    and ``noise_ceiling = snr / (snr + 1 / n_repeats)`` exactly.

    Examples
    --------
    >>> import numpy as np, neurobridge as nb
    >>> X = np.random.default_rng(0).normal(size=(50, 20))
    >>> sim = nb.datasets.simulate_encoding(X, n_voxels=10, snr=1.0, n_repeats=2, random_state=0)
    >>> sim.responses.dims, sim.responses.sizes["trial"]
    (('trial', 'voxel'), 100)
    >>> float(sim.noise_ceiling[0])
    0.6666666666666666
    """
    if kind not in ("fmri", "eeg"):
        raise ValueError(f"kind must be 'fmri' or 'eeg', got {kind!r}")
    if int(n_repeats) < 1:
        raise ValueError(f"n_repeats must be >= 1, got {n_repeats}")
    rng = _rng(random_state)
    if kind == "eeg" and isinstance(features, xr.DataArray) and "time" in features.dims and "stimulus" not in features.dims:
        return _simulate_continuous_eeg(features, snr, n_repeats=int(n_repeats), n_channels=n_channels,
                                        n_components=n_components, trf_tmax=trf_tmax, rng=rng)
    spaces, ids, units = _feature_spaces(features, stimulus)
    if kind == "eeg":
        return _simulate_eeg_epochs(spaces, ids, units, snr, n_repeats=int(n_repeats), n_channels=n_channels,
                                    n_components=n_components, sfreq=sfreq, tmin=tmin, tmax=tmax, rng=rng)
    names = list(spaces)
    n_voxels = int(n_voxels)
    if n_voxels < 1:
        raise ValueError(f"n_voxels must be >= 1, got {n_voxels}")
    if true_space is None:
        assign = np.array([names[v * len(names) // n_voxels] for v in range(n_voxels)])
    elif isinstance(true_space, str):
        assign = np.array([true_space] * n_voxels)
    else:
        assign = np.asarray(true_space).astype(str)
        if assign.shape != (n_voxels,):
            raise SchemaError(f"true_space: expected one space name per voxel ({n_voxels}), found {assign.shape}")
    bad = sorted(set(assign.tolist()) - set(names))
    if bad:
        raise SchemaError(f"true_space names {bad} are not feature spaces; available: {names}")
    s = _snr_per_target(snr, n_voxels)
    n_stim = ids.shape[0]

    z = {k: _zscore(v) for k, v in spaces.items()}
    offsets = np.cumsum([0] + [z[k].shape[1] for k in names])
    W = np.zeros((offsets[-1], n_voxels))
    signal = np.zeros((n_stim, n_voxels))
    for i, name in enumerate(names):
        cols = np.flatnonzero(assign == name)
        if cols.size == 0:
            continue
        w = rng.standard_normal((z[name].shape[1], cols.size))
        sig = z[name] @ w
        sd = sig.std(0)
        if np.any(sd == 0):
            raise SchemaError(f"features {name!r} are constant over stimuli; cannot drive voxels with them")
        w = w / sd * np.sqrt(s[cols])
        W[offsets[i]:offsets[i + 1], cols] = w
        signal[:, cols] = z[name] @ w
    feat = np.concatenate([z[k] for k in names], axis=1)
    unit_ids, space_coord = _unit_ids(names, units)

    noise = rng.standard_normal((n_repeats, n_stim, n_voxels))
    trials = (signal[None] + noise).reshape(n_repeats * n_stim, n_voxels)
    rep = np.repeat(np.arange(n_repeats), n_stim)
    vcoords = {"true_space": assign, "snr": s}
    responses = fmri_responses(trials, stimulus=np.tile(ids, n_repeats), voxel_coords=vcoords,
                               trial_coords={"repetition": rep}, attrs={"source": "nb.datasets.simulate_encoding"})
    sig_da = fmri_responses(signal, stimulus=ids, dim="stimulus", voxel_coords=vcoords,
                            attrs={"source": "nb.datasets.simulate_encoding", "description": "noise-free signal"})
    feat_da = activations(feat, stimulus=ids, unit=unit_ids, coords={"space": ("unit", space_coord)},
                          attrs={"description": "z-scored features"})
    w_da = xr.DataArray(W, dims=("unit", "voxel"), coords={"unit": unit_ids, "space": ("unit", space_coord),
                                                           "voxel": np.arange(n_voxels), "true_space": ("voxel", assign)})
    ceil, ev = _ceilings(s, n_repeats)
    ceil_da = xr.DataArray(ceil, dims="voxel", coords={"voxel": np.arange(n_voxels), "true_space": ("voxel", assign)},
                           name="noise_ceiling")
    ev_da = xr.DataArray(ev, dims="voxel", coords=ceil_da.coords, name="explainable_variance")
    ts, events = (None, None)
    if timeseries:
        ts, events = _bold(trials, np.tile(ids, n_repeats), rep, n_runs or n_repeats, tr, isi, hrf_model,
                           scan_noise, vcoords, rng)
        responses = responses.assign_coords(run=("trial", events.sort_values("trial")["run"].to_numpy()))
    return SimulatedEncoding(responses, sig_da, w_da, ceil_da, ev_da, feat_da, ts, events)


def _ceilings(signal_var: np.ndarray, n_repeats: int) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(signal_var, dtype=np.float64)
    return s / (s + 1.0 / n_repeats), s / (s + 1.0)


def _unit_ids(names: list[str], units: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    if len(names) == 1:
        u = units[names[0]]
        return np.asarray(u), np.array([names[0]] * len(u))
    ids = np.concatenate([[f"{n}:{u}" for u in units[n]] for n in names])
    space = np.concatenate([[n] * len(units[n]) for n in names])
    return ids, space


def _bold(trials, stim, rep, n_runs, tr, isi, hrf_model, scan_noise, vcoords, rng):
    from nilearn.glm.first_level import compute_regressor

    n_trials, n_vox = trials.shape
    if n_runs < 1 or n_runs > n_trials:
        raise ValueError(f"n_runs must be between 1 and the number of trials ({n_trials}), got {n_runs}")
    order = np.concatenate([rng.permutation(np.flatnonzero(rep == r)) for r in np.unique(rep)])
    runs = np.array_split(order, n_runs)
    lead, tail = 6.0, 24.0
    blocks, run_coord, times, rows = [], [], [], []
    t0 = 0.0
    for r, idx in enumerate(runs):
        duration = lead + len(idx) * isi + tail
        n_scans = int(np.ceil(duration / tr))
        frame_times = np.arange(n_scans) * tr
        onsets = lead + np.arange(len(idx)) * isi
        design = np.empty((n_scans, len(idx)))
        for j, onset in enumerate(onsets):
            reg, _ = compute_regressor(np.array([[onset], [1.0], [1.0]]), hrf_model, frame_times)
            design[:, j] = reg[:, 0]
        bold = design @ trials[idx] + scan_noise * rng.standard_normal((n_scans, n_vox))
        blocks.append(bold)
        run_coord.append(np.full(n_scans, r))
        times.append(t0 + frame_times)
        rows.extend({"onset": t0 + o, "duration": 1.0, "trial_type": str(stim[i]), "run": r, "trial": int(i)}
                    for o, i in zip(onsets, idx, strict=True))
        t0 += n_scans * tr
    ts = fmri_timeseries(np.concatenate(blocks), tr=tr, frame_times=np.concatenate(times), voxel_coords=vcoords,
                         attrs={"source": "nb.datasets.simulate_encoding", "hrf_model": hrf_model})
    ts = ts.assign_coords(run=("time", np.concatenate(run_coord)))
    return ts, pd.DataFrame(rows)


def _simulate_eeg_epochs(spaces, ids, units, snr, *, n_repeats, n_channels, n_components, sfreq, tmin, tmax, rng):
    names = list(spaces)
    if len(names) != 1:
        raise SchemaError(f"kind='eeg' takes one feature space, got {len(names)} ({names}); pick one layer")
    name = names[0]
    z = _zscore(spaces[name])
    n_stim = z.shape[0]
    times = tmin + np.arange(int(round((tmax - tmin) * sfreq)) + 1) / sfreq
    h = _temporal_kernels(times, n_components, rng)  # (k, t)
    a = rng.standard_normal((n_components, n_channels))  # spatial patterns
    b = rng.standard_normal((z.shape[1], n_components))
    lat = z @ b
    sd = lat.std(0)
    if np.any(sd == 0):
        raise SchemaError(f"features {name!r} are constant over stimuli; cannot drive responses")
    b = b / sd
    trf = np.einsum("uk,kc,kt->uct", b, a, h)
    signal = np.einsum("su,uct->sct", z, trf)
    snr_c = _snr_per_target(snr, n_channels, "channel")
    var = signal.var(0).mean(1)  # per channel, mean over the epoch
    scale = np.sqrt(snr_c / np.where(var > 0, var, 1.0))
    trf = trf * scale[None, :, None]
    signal = signal * scale[None, :, None]
    noise = rng.standard_normal((n_repeats, n_stim, n_channels, times.size))
    trials = (signal[None] + noise).reshape(n_repeats * n_stim, n_channels, times.size)
    ch = np.array([f"EEG{i:03d}" for i in range(n_channels)])
    responses = eeg_epochs(trials, stimulus=np.tile(ids, n_repeats), ch_names=ch, times=times, sfreq=sfreq,
                           trial_coords={"repetition": np.repeat(np.arange(n_repeats), n_stim)},
                           attrs={"source": "nb.datasets.simulate_encoding", "units": "a.u."})
    coords = {"stimulus": ids, "channel": ch, "time": times}
    sig_da = xr.DataArray(signal, dims=("stimulus", "channel", "time"), coords=coords, name="signal")
    unit_ids, space = _unit_ids(names, units)
    w_da = xr.DataArray(trf, dims=("unit", "channel", "time"),
                        coords={"unit": unit_ids, "space": ("unit", space), "channel": ch, "time": times}, name="trf")
    ceil, ev = _ceilings(signal.var(0), n_repeats)
    cc = {"channel": ch, "time": times}
    feat_da = activations(z, stimulus=ids, unit=unit_ids, coords={"space": ("unit", space)})
    return SimulatedEncoding(responses, sig_da, w_da, xr.DataArray(ceil, dims=("channel", "time"), coords=cc),
                             xr.DataArray(ev, dims=("channel", "time"), coords=cc), feat_da)


def _simulate_continuous_eeg(features: xr.DataArray, snr, *, n_repeats, n_channels, n_components, trf_tmax, rng):
    from scipy.signal import lfilter

    others = [d for d in features.dims if d != "time"]
    if len(others) > 1:
        raise SchemaError(f"continuous features: expected dims (time, unit), found {features.dims}")
    f = features.transpose("time", *others)
    x = _as_numpy(f.data).astype(np.float64)
    if x.ndim == 1:
        x = x[:, None]
    check_finite(x, "features")
    t = np.asarray(f["time"].values, dtype=float)
    sfreq = float(f.attrs.get("sfreq") or 1.0 / np.median(np.diff(t)))
    z = _zscore(x)
    lags = np.arange(int(round(trf_tmax * sfreq)) + 1) / sfreq
    h = _temporal_kernels(lags + 1e-9, n_components, rng)  # (k, lag), causal
    a = rng.standard_normal((n_components, n_channels))
    b = rng.standard_normal((z.shape[1], n_components))
    src = np.stack([lfilter(h[k], [1.0], z @ b[:, k]) for k in range(n_components)], axis=1)  # (time, k)
    signal = src @ a  # (time, channel)
    snr_c = _snr_per_target(snr, n_channels, "channel")
    var = signal.var(0)
    scale = np.sqrt(snr_c / np.where(var > 0, var, 1.0))
    signal = signal * scale
    trf = np.einsum("uk,kc,kl->luc", b, a * scale[None], h)
    noise = rng.standard_normal((n_repeats, n_channels, t.size))
    trials = signal.T[None] + noise
    ch = np.array([f"EEG{i:03d}" for i in range(n_channels)])
    stim_id = str(features.name or features.attrs.get("stimulus", "continuous"))
    responses = eeg_epochs(trials, stimulus=[stim_id] * n_repeats, ch_names=ch, times=t, sfreq=sfreq,
                           trial_coords={"repetition": np.arange(n_repeats)},
                           attrs={"source": "nb.datasets.simulate_encoding", "units": "a.u."})
    units = np.asarray(f[others[0]].values) if others and others[0] in f.coords else np.arange(z.shape[1])
    sig_da = xr.DataArray(signal, dims=("time", "channel"), coords={"time": t, "channel": ch}, name="signal")
    w_da = xr.DataArray(trf, dims=("lag", "unit", "channel"), coords={"lag": lags, "unit": units, "channel": ch},
                        name="trf", attrs={"sfreq": sfreq})
    ceil, ev = _ceilings(signal.var(0), n_repeats)
    feat_da = xr.DataArray(z, dims=("time", "unit"), coords={"time": t, "unit": units}, attrs={"sfreq": sfreq})
    return SimulatedEncoding(responses, sig_da, w_da, xr.DataArray(ceil, dims="channel", coords={"channel": ch}),
                             xr.DataArray(ev, dims="channel", coords={"channel": ch}), feat_da)


# ------------------------------------------------------------------------------------------------ RSA
class SimulatedRSA(NamedTuple):
    """Subjects' patterns with a planted representational geometry."""

    patterns: xr.DataArray
    """``(subject, trial, voxel)`` patterns; ``stimulus`` and ``repetition`` coords on ``trial``."""
    true_rdm: xr.DataArray
    """rdm ``(stimulus, stimulus2)``: squared Euclidean distance per voxel between noise-free patterns,
    the same for every subject."""
    embedding: xr.DataArray
    """``(stimulus, dim)`` coordinates whose squared Euclidean distances are ``true_rdm * n_voxels``."""


def simulate_rsa(
    rdm_or_features=None, *, n_stimuli: int = 24, n_categories: int = 4, n_subjects: int = 8,
    n_voxels: int = 100, n_repeats: int = 2, noise: float = 1.0, distance: float = 1.0,
    stimulus: Sequence | None = None, random_state=None,
) -> SimulatedRSA:
    """Simulate subjects' response patterns with a known representational geometry.

    Parameters
    ----------
    rdm_or_features : rdm DataArray, (n, n) array, (stimulus, unit) activations, or None
        The geometry to plant. A square matrix is read as squared distances and embedded by classical MDS
        (negative eigenvalues dropped, so a non-Euclidean RDM is planted as its nearest Euclidean version);
        a (stimulus, unit) matrix is used as coordinates. ``None`` draws ``n_stimuli`` stimuli around
        ``n_categories`` category centres (a ``category`` coord is added).
    n_subjects, n_voxels, n_repeats : int
    noise : float
        Standard deviation of the Gaussian noise per voxel and trial.
    distance : float
        Mean off-diagonal value of ``true_rdm`` (sets signal strength relative to ``noise``).
    stimulus : sequence, optional
        Stimulus ids when the geometry is a bare array.
    random_state : int, Generator or None

    Returns
    -------
    SimulatedRSA
        ``patterns`` (subject, trial, voxel), ``true_rdm`` and ``embedding``. Each subject's noise-free
        patterns are ``embedding @ Q_s`` with ``Q_s`` a random matrix with orthonormal rows, so every subject
        has exactly the planted geometry. The expected squared Euclidean distance per voxel between
        repetition-averaged patterns is ``true_rdm + 2 * noise**2 / n_repeats`` off the diagonal;
        cross-validated distances are unbiased.

    Examples
    --------
    >>> import neurobridge as nb
    >>> sim = nb.datasets.simulate_rsa(n_stimuli=12, n_subjects=3, n_voxels=50, random_state=0)
    >>> sim.patterns.dims, sim.true_rdm.shape
    (('subject', 'trial', 'voxel'), (12, 12))
    """
    rng = _rng(random_state)
    extra: dict = {}
    if rdm_or_features is None:
        if n_stimuli < n_categories or n_categories < 1:
            raise ValueError(f"need n_stimuli >= n_categories >= 1, got {n_stimuli} and {n_categories}")
        cat = np.arange(n_stimuli) % n_categories
        centres = rng.standard_normal((n_categories, n_stimuli))
        emb = centres[cat] + 0.5 * rng.standard_normal((n_stimuli, n_stimuli))
        ids = np.asarray(stimulus) if stimulus is not None else np.array([f"stim{i:03d}" for i in range(n_stimuli)])
        extra["category"] = ("stimulus", cat)
    else:
        arr = rdm_or_features
        square = (isinstance(arr, xr.DataArray) and "stimulus2" in arr.dims) or (
            not isinstance(arr, xr.DataArray) and np.ndim(arr) == 2 and np.shape(arr)[0] == np.shape(arr)[1]
            and np.allclose(_as_numpy(arr), _as_numpy(arr).T) and np.allclose(np.diag(_as_numpy(arr)), 0))
        if square:
            D = _as_numpy(arr).astype(np.float64)
            if isinstance(arr, xr.DataArray):
                validate(arr, "rdm")
                if arr.ndim != 2:
                    raise SchemaError(f"simulate_rsa: expected one (stimulus, stimulus2) RDM, found dims {arr.dims}; "
                                      "select or average the leading dims first")
                ids = np.asarray(arr["stimulus"].values)
            else:
                ids = np.asarray(stimulus) if stimulus is not None else np.array([f"stim{i:03d}" for i in range(D.shape[0])])
            check_finite(D, "rdm")
            n = D.shape[0]
            J = np.eye(n) - 1.0 / n
            B = -0.5 * J @ D @ J
            lam, V = np.linalg.eigh((B + B.T) / 2)
            keep = lam > lam.max() * 1e-10
            emb = V[:, keep] * np.sqrt(lam[keep])
        else:
            vals, ids, _ = _one_space(arr, "features", stimulus)
            emb = vals
    emb = emb - emb.mean(0)
    n, d = emb.shape
    if d > n_voxels:  # keep the leading principal axes so the geometry fits in n_voxels dims
        U, S, _ = np.linalg.svd(emb, full_matrices=False)
        emb = U[:, :n_voxels] * S[:n_voxels]
        logger.warning("simulate_rsa: geometry has %d dims > n_voxels=%d; keeping the top %d principal dims",
                       d, n_voxels, n_voxels)
        d = n_voxels
    sq = ((emb[:, None] - emb[None]) ** 2).sum(-1)
    mean_off = sq[~np.eye(n, dtype=bool)].mean()
    if mean_off <= 0:
        raise SchemaError("simulate_rsa: the planted geometry has all stimuli identical (zero distances)")
    emb = emb * np.sqrt(distance * n_voxels / mean_off)
    true = ((emb[:, None] - emb[None]) ** 2).sum(-1) / n_voxels
    pats = np.empty((n_subjects, n_repeats * n, n_voxels))
    for s in range(n_subjects):
        Q, _ = np.linalg.qr(rng.standard_normal((n_voxels, d)))  # (n_voxels, d) orthonormal columns
        clean = emb @ Q.T
        pats[s] = np.tile(clean, (n_repeats, 1)) + noise * rng.standard_normal((n_repeats * n, n_voxels))
    patterns = xr.DataArray(
        pats, dims=("subject", "trial", "voxel"),
        coords={"subject": [f"sub{s:02d}" for s in range(n_subjects)], "trial": np.arange(n_repeats * n),
                "voxel": np.arange(n_voxels), "stimulus": ("trial", np.tile(ids, n_repeats)),
                "repetition": ("trial", np.repeat(np.arange(n_repeats), n)),
                **{k: ("trial", np.tile(v[1], n_repeats)) for k, v in extra.items()}},
        attrs={"modality": "fmri", "source": "nb.datasets.simulate_rsa", "noise": float(noise)})
    true_da = rdm(true, stimulus=ids, metric="sqeuclidean_per_voxel", coords=extra or None,
                  attrs={"source": "nb.datasets.simulate_rsa"})
    emb_da = xr.DataArray(emb, dims=("stimulus", "dim"), coords={"stimulus": ids, **extra})
    return SimulatedRSA(patterns, true_da, emb_da)


# ------------------------------------------------------------------------------------------ sparse codes
class SimulatedSparseCodes(NamedTuple):
    """Data generated from a known dictionary with k-sparse codes: ``data = codes @ dictionary + noise``."""

    data: xr.DataArray
    """activations ``(stimulus, unit)``."""
    dictionary: xr.DataArray
    """``(latent, unit)``, rows of unit L2 norm."""
    codes: xr.DataArray
    """``(stimulus, latent)``, exactly ``k`` non-zeros per row."""


def simulate_sparse_codes(
    n_samples: int = 1000, n_units: int = 64, n_latents: int = 256, k: int = 4, *, noise: float = 0.0,
    nonnegative: bool = True, zipf_exponent: float = 0.0, magnitude: tuple[float, float] = (0.5, 1.5),
    random_state=None,
) -> SimulatedSparseCodes:
    """Simulate activations from an overcomplete dictionary with k-sparse codes (ground truth for SAEs).

    Parameters
    ----------
    n_samples, n_units, n_latents, k : int
        Samples, data dimension, dictionary size (overcomplete when ``n_latents > n_units``) and active
        latents per sample.
    noise : float
        Standard deviation of Gaussian noise added to every entry.
    nonnegative : bool
        Codes are non-negative (as after a ReLU); otherwise signs are random.
    zipf_exponent : float
        Latent ``i`` is active with probability proportional to ``(i + 1) ** -zipf_exponent`` (0: uniform),
        mimicking the heavy-tailed feature frequencies seen in real networks.
    magnitude : (float, float)
        Active code magnitudes are uniform on this interval.
    random_state : int, Generator or None

    Returns
    -------
    SimulatedSparseCodes
        ``data`` (stimulus, unit), ``dictionary`` (latent, unit), ``codes`` (stimulus, latent).

    Examples
    --------
    >>> import neurobridge as nb
    >>> sim = nb.datasets.simulate_sparse_codes(100, 16, 64, k=3, random_state=0)
    >>> int((sim.codes != 0).sum("latent").max())
    3
    """
    if not 1 <= k <= n_latents:
        raise ValueError(f"need 1 <= k <= n_latents, got k={k}, n_latents={n_latents}")
    if n_samples < 1 or n_units < 1:
        raise ValueError(f"n_samples and n_units must be >= 1, got {n_samples}, {n_units}")
    lo, hi = magnitude
    if not 0 <= lo <= hi:
        raise ValueError(f"magnitude must be (low, high) with 0 <= low <= high, got {magnitude}")
    rng = _rng(random_state)
    D = rng.standard_normal((n_latents, n_units))
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    logp = -float(zipf_exponent) * np.log(np.arange(1, n_latents + 1))
    gumbel = rng.gumbel(size=(n_samples, n_latents))
    active = np.argpartition(-(logp[None] + gumbel), k - 1, axis=1)[:, :k]  # k distinct latents, without replacement
    codes = np.zeros((n_samples, n_latents))
    mags = rng.uniform(lo, hi, size=(n_samples, k))
    if lo == 0:
        mags[mags == 0] = hi or 1.0
    if not nonnegative:
        mags *= rng.choice([-1.0, 1.0], size=(n_samples, k))
    np.put_along_axis(codes, active, mags, axis=1)
    data = codes @ D + noise * rng.standard_normal((n_samples, n_units))
    ids = np.array([f"s{i:06d}" for i in range(n_samples)])
    data_da = activations(data, stimulus=ids, attrs={"source": "nb.datasets.simulate_sparse_codes", "k": int(k),
                                                     "noise": float(noise)})
    dict_da = xr.DataArray(D, dims=("latent", "unit"), coords={"latent": np.arange(n_latents), "unit": np.arange(n_units)},
                           name="dictionary")
    codes_da = xr.DataArray(codes, dims=("stimulus", "latent"), coords={"stimulus": ids, "latent": np.arange(n_latents)},
                            name="codes")
    return SimulatedSparseCodes(data_da, dict_da, codes_da)
