"""Scoring one model's layers against one benchmark: per-layer profile, ceiling, CIs, held-out selection.

The result of scoring is a *piece*: an ``xr.Dataset`` over ``layer`` (and ``time`` for time-resolved data)
with per-layer variables and scalar per-(model, benchmark) variables; the runner stacks pieces into the
``(model, benchmark, layer[, time])`` scores.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import xarray as xr

from ._registry import Benchmark, BenchmarkData
from ._selection import half_splits, select_layer_heldout, subject_splits

__all__ = ["score_benchmark", "check_layers", "UnusableLayersError", "target_rdm", "stimulus_ids"]

logger = logging.getLogger("neurobridge")

_FEATURE_DIMS = ("voxel", "channel", "unit", "neuron", "electrode", "vertex", "feature")

# scalar variables of a piece and their fill value when a (model, benchmark) pair is absent
SCALARS = {
    "heldout_score": np.nan, "heldout_normalised_score": np.nan, "selected_layer": "", "selected_ci_low": np.nan,
    "selected_ci_high": np.nan, "ceiling_lower": np.nan, "ceiling_upper": np.nan, "best_layer": "",
    "best_score": np.nan, "n_stimuli": -1, "n_subjects": -1, "n_splits": -1, "selection_rule": "",
    "metric": "", "ci_method": "", "demo": -1,
}
LAYER_VARS = ("score", "ci_low", "ci_high", "normalised_score", "selection_frequency", "depth")


class UnusableLayersError(ValueError):
    """No layer of the model produced usable activations for the benchmark's stimuli."""


# --------------------------------------------------------------------------------------------- checks


def stimulus_ids(target: xr.DataArray) -> list:
    """Unique stimulus ids of brain data, in order (``stimulus`` dim, or ``stimulus`` coord on ``trial``)."""
    if "stimulus" in target.dims:
        return list(target["stimulus"].values.tolist())
    if "stimulus" in target.coords:
        return list(dict.fromkeys(target["stimulus"].values.tolist()))
    raise ValueError(f"brain data have no 'stimulus' dim or coordinate (dims {tuple(target.dims)})")


def _why_unusable(da: xr.DataArray, needs_correlation: bool) -> str | None:
    values = np.asarray(da.values, dtype=float)
    if values.size == 0 or da.sizes.get("unit", 0) == 0:
        return "it has no units"
    finite = np.isfinite(values)
    if not finite.all():
        return f"{int((~finite).sum())} of {values.size} values are NaN or inf"
    flat = values.reshape(values.shape[0], -1)
    if np.ptp(flat, axis=0).max() == 0:
        return f"its activations are identical for all {flat.shape[0]} stimuli (zero variance across stimuli)"
    if needs_correlation:
        const = np.flatnonzero(np.ptp(flat, axis=1) == 0)
        if len(const):
            ids = da["stimulus"].values[const[:3]].tolist()
            return (f"{len(const)} stimulus/stimuli (e.g. {ids}) give the same value in every unit, so the "
                    "correlation distance is undefined")
    return None


def check_layers(acts: Mapping[str, xr.DataArray], model: str, *, needs_correlation: bool = True) -> dict[str, str]:
    """Find layers whose activations cannot be scored; raise if none is usable.

    Parameters
    ----------
    acts : mapping layer -> DataArray ``(stimulus, unit)``
    model : str
        Model name, for messages.
    needs_correlation : bool
        Also reject layers where some stimulus has constant activations (correlation distance undefined).

    Returns
    -------
    dict
        ``{layer: reason}`` for the unusable layers (logged as warnings; the runner drops them).

    Raises
    ------
    UnusableLayersError
        Every layer is unusable; the message lists each layer and why.

    Examples
    --------
    >>> import numpy as np, neurobridge as nb
    >>> ok = nb.core.activations(np.random.default_rng(0).random((4, 3)), stimulus=list("abcd"))
    >>> flat = nb.core.activations(np.ones((4, 3)), stimulus=list("abcd"))
    >>> check_layers({"conv": ok, "relu": flat}, "toy")
    {'relu': 'its activations are identical for all 4 stimuli (zero variance across stimuli)'}
    """
    bad = {}
    for name, da in acts.items():
        why = _why_unusable(da, needs_correlation)
        if why is not None:
            bad[name] = why
    if bad and len(bad) == len(acts):
        lines = "; ".join(f"layer {k!r}: {v}" for k, v in bad.items())
        raise UnusableLayersError(
            f"model {model!r}: no layer produced usable activations ({lines}). Check the model's preprocessing and "
            "its input modality, or pick other layers with --layers / layers=[...]")
    for k, v in bad.items():
        logger.warning("model %r: skipping layer %r: %s", model, k, v)
    return bad


# --------------------------------------------------------------------------------------------- RSA


def _feature_dim(da: xr.DataArray, bench: Benchmark) -> str:
    if bench.feature_dim is not None:
        if bench.feature_dim not in da.dims:
            raise ValueError(f"benchmark {bench.name!r}: feature_dim {bench.feature_dim!r} is not a dim of the brain "
                             f"data {tuple(da.dims)}")
        return bench.feature_dim
    for d in _FEATURE_DIMS:
        if d in da.dims:
            return d
    raise ValueError(f"benchmark {bench.name!r}: cannot tell the feature dim of brain data with dims {tuple(da.dims)}; "
                     f"set feature_dim= to one of them")


def target_rdm(bench: Benchmark, target: xr.DataArray) -> xr.DataArray:
    """The brain RDMs ``([subject,] [time,] stimulus, stimulus2)`` of a benchmark's target.

    Responses (``trial``/``stimulus`` x features) are averaged over repetitions and turned into RDMs with the
    benchmark's ``rdm_metric``; RDMs pass through.
    """
    from neurobridge import core, rsa

    if "stimulus2" in target.dims:
        return target
    da = target
    if "stimulus" not in da.dims:
        da = core.average_repetitions(da)
    return rsa.rdm(da, sample_dim="stimulus", feature_dim=_feature_dim(da, bench), metric=bench.rdm_metric)


def _sub(rdm: xr.DataArray, idx: np.ndarray) -> xr.DataArray:
    return rdm.isel(stimulus=idx, stimulus2=idx)


def _window(bench: Benchmark, times: np.ndarray) -> np.ndarray:
    lo, hi = bench.time_window if bench.time_window is not None else (0.0, np.inf)
    mask = (times >= lo) & (times <= hi)
    if not mask.any():
        raise ValueError(f"benchmark {bench.name!r}: no time point in the window {bench.time_window} "
                         f"(data span {times.min():.3f}..{times.max():.3f} s)")
    return mask


def _summary(scores: xr.DataArray, bench: Benchmark) -> xr.DataArray:
    """Mean over subjects, then over the benchmark's time window."""
    if "subject" in scores.dims:
        scores = scores.mean("subject")
    if "time" in scores.dims:
        scores = scores.isel(time=_window(bench, scores["time"].values)).mean("time")
    return scores


def _score_rsa(bench: Benchmark, target: xr.DataArray, acts: Mapping[str, xr.DataArray], *, n_bootstrap: int,
               seed: int, progress: bool | None) -> tuple[xr.Dataset, dict]:
    from neurobridge import rsa

    brain = target_rdm(bench, target)
    ids = list(brain["stimulus"].values.tolist())
    layers = list(acts)
    model_rdms = []
    for name in layers:
        a = acts[name]
        missing = sorted(set(map(str, ids)) - set(map(str, a["stimulus"].values.tolist())))
        if missing:
            raise ValueError(f"activations of layer {name!r} lack {len(missing)} of the benchmark's stimuli "
                             f"(e.g. {missing[:3]}); extract them for all stimuli of {bench.name!r}")
        a = a.sel(stimulus=ids)
        model_rdms.append(rsa.rdm(a, sample_dim="stimulus", feature_dim="unit", metric=bench.rdm_metric))
    mrdm = xr.concat(model_rdms, dim=xr.DataArray(layers, dims="layer", name="layer"), coords="minimal",
                     compat="override", join="override")
    full = rsa.compare(mrdm, brain, method=bench.compare)  # (layer, [subject], [time])
    profile = _summary(full, bench)

    # ceiling (leave one subject out)
    n_subjects = int(brain.sizes.get("subject", 1))
    lower = upper = np.nan
    ceiling_time = None
    if bench.ceiling != "none" and n_subjects >= 2:
        ceil = rsa.noise_ceiling(brain, bench.compare, subject_dim="subject")
        lo_da, up_da = ceil["lower"], ceil["upper"]
        if "time" in lo_da.dims:
            ceiling_time = (lo_da, up_da)
            lo_da, up_da = _summary(lo_da, bench), _summary(up_da, bench)
        lower, upper = float(lo_da), float(up_da)
    elif bench.ceiling == "subject":
        raise ValueError(f"benchmark {bench.name!r} asks for a subject noise ceiling but its brain data have "
                         f"{n_subjects} subject(s); use ceiling='none' or provide a 'subject' dim")

    # bootstrap CIs of the per-layer profile (of the time-window mean for time-resolved data)
    ci_low = ci_high = np.full(len(layers), np.nan)
    ci_method = "none"
    n_stim = len(ids)
    if n_bootstrap > 0 and n_stim >= 10:
        over = "both" if n_subjects >= 2 else "stimulus"
        ev = rsa.evaluate_models(brain, mrdm, bench.compare, over=over, n_bootstraps=n_bootstrap,
                                 model_dim="layer", noise_ceiling=False, seed=seed, progress=progress,
                                 dtype="float32")
        boot = _summary(ev["bootstrap"], bench)  # time-window mean (no subject dim here)
        b = boot.transpose("bootstrap", "layer").values
        ci_low, ci_high = np.nanpercentile(b, 2.5, axis=0), np.nanpercentile(b, 97.5, axis=0)
        what = "stimuli and subjects" if over == "both" else "stimuli"
        ci_method = f"95% bootstrap percentile interval over {what} ({n_bootstrap} resamples, nb.rsa.evaluate_models)"
    elif n_bootstrap > 0:
        logger.info("%s: %d stimuli are too few for a stimulus bootstrap; no CI", bench.name, n_stim)

    # held-out layer selection
    if bench.split == "subject":
        if n_subjects < 2:
            raise ValueError(f"benchmark {bench.name!r} splits subjects but the brain data have {n_subjects}")
        per_subject = full
        if "time" in per_subject.dims:
            per_subject = per_subject.isel(time=_window(bench, per_subject["time"].values)).mean("time")
        per_subject = per_subject.transpose("layer", "subject").values
        splits = subject_splits(n_subjects, max_splits=bench.n_splits, seed=seed)
        sel = np.stack([per_subject[:, a].mean(1) for a, _ in splits])
        test = np.stack([per_subject[:, b].mean(1) for _, b in splits])
    elif bench.split == "stimulus":
        splits = half_splits(n_stim, bench.n_splits, seed=seed)[: bench.n_splits]
        sel, test = [], []
        cache: dict[bytes, np.ndarray] = {}

        def half_score(idx):
            key = idx.tobytes()
            if key not in cache:
                cache[key] = _summary(rsa.compare(_sub(mrdm, idx), _sub(brain, idx), method=bench.compare),
                                      bench).values
            return cache[key]
        for a, b in splits:
            sel.append(half_score(a))
            test.append(half_score(b))
        sel, test = np.stack(sel), np.stack(test)
    else:  # time
        if "time" not in full.dims:
            raise ValueError(f"benchmark {bench.name!r} splits time but its brain data have no 'time' dim")
        prof_t = full.mean("subject") if "subject" in full.dims else full
        idx = np.flatnonzero(_window(bench, prof_t["time"].values))
        if len(idx) < 2:
            raise ValueError(f"benchmark {bench.name!r}: need at least 2 time points in the window to split time")
        even, odd = idx[0::2], idx[1::2]
        vals = prof_t.transpose("layer", "time").values
        splits = [(even, odd), (odd, even)][: max(1, bench.n_splits)]
        sel = np.stack([vals[:, a].mean(1) for a, _ in splits])
        test = np.stack([vals[:, b].mean(1) for _, b in splits])
    held = select_layer_heldout(sel, test, layers)

    ds = _piece(bench, layers, profile.values.astype(float), ci_low, ci_high, lower, upper, held, len(splits),
                n_stim, n_subjects, ci_method)
    if "time" in full.dims:
        st = full.mean("subject") if "subject" in full.dims else full
        ds["score_time"] = st.transpose("layer", "time").drop_vars(
            [c for c in st.coords if c not in ("layer", "time")]).astype(float)
        if ceiling_time is not None:
            ds["ceiling_lower_time"] = ceiling_time[0].astype(float)
            ds["ceiling_upper_time"] = ceiling_time[1].astype(float)
    extras = {"model_rdms": mrdm, "brain_rdm": brain.mean("subject") if "subject" in brain.dims else brain}
    return ds, extras


# --------------------------------------------------------------------------------------------- encoding


def _score_encoding(bench: Benchmark, target: xr.DataArray, acts: Mapping[str, xr.DataArray], *, n_bootstrap: int,
                    seed: int, progress: bool | None) -> tuple[xr.Dataset, dict]:
    from neurobridge import encoding

    layers = list(acts)
    feature_dim = _feature_dim(target, bench)
    from sklearn.model_selection import KFold

    opts = {"cv": 5, "scoring": "r2", "average_repetitions": "trial" in target.dims, **dict(bench.options)}
    opts.setdefault("progress", False)
    if isinstance(opts["cv"], int):  # shuffled folds: stimulus order is often by category
        opts["cv"] = KFold(opts["cv"], shuffle=True, random_state=seed)
    n_stim = len(stimulus_ids(target))

    def _reduce(da):
        other = [d for d in da.dims if d not in ("fold", feature_dim)]
        return da.mean(other) if other else da  # e.g. time

    scores, outer, inner = [], [], []
    for name in layers:
        res = encoding.fit_encoding(acts[name], target, **opts)
        scores.append(_reduce(res["score"]))
        outer.append(_reduce(res["score_fold"]))
        inner.append(_reduce(res["inner_score"]))
    full = xr.concat(scores, dim=xr.DataArray(layers, dims="layer", name="layer"), coords="minimal",
                     compat="override", join="override").transpose("layer", feature_dim)
    profile = full.mean(feature_dim).values.astype(float)

    # bootstrap over targets (voxels/channels) of the mean score
    ci_low = ci_high = np.full(len(layers), np.nan)
    ci_method = "none"
    if n_bootstrap > 0:
        rng = np.random.default_rng(seed)
        vals = full.values
        n_vox = vals.shape[1]
        idx = rng.integers(0, n_vox, size=(n_bootstrap, n_vox))
        boot = np.nanmean(vals[:, idx], axis=2)  # (layer, bootstrap)
        ci_low, ci_high = np.nanpercentile(boot, 2.5, axis=1), np.nanpercentile(boot, 97.5, axis=1)
        ci_method = f"95% bootstrap percentile interval over {feature_dim}s ({n_bootstrap} resamples)"

    # ceiling: explainable variance of the (repetition-averaged) data from split halves of repetitions
    lower = upper = np.nan
    reps = None
    if "trial" in target.dims:
        _, counts = np.unique(np.asarray(target["stimulus"].values).astype(str), return_counts=True)
        reps = int(np.median(counts))
    if bench.ceiling != "none" and reps is not None and reps >= 2:
        n_avg = reps if opts.get("average_repetitions") else 1
        nc = encoding.noise_ceiling(target, method="split_half", n_average=n_avg, random_state=seed)
        key = "r2" if opts.get("scoring", "r2") == "r2" else "r"
        value = nc[key]
        other = [d for d in value.dims if d != feature_dim]
        value = value.mean(other) if other else value
        lower = upper = float(value.mean())

    # held-out selection, nested in the outer folds: the layer with the best inner-CV score on a fold's training
    # stimuli is scored on that fold's held-out stimuli (the same folds for every layer)
    sel = np.stack([f.mean(feature_dim).values for f in inner]).T  # (fold, layer)
    test = np.stack([f.mean(feature_dim).values for f in outer]).T
    held = select_layer_heldout(sel, test, layers)
    splits = range(sel.shape[0])
    ds = _piece(bench, layers, profile, ci_low, ci_high, lower, upper, held, len(splits), n_stim,
                int(target.sizes.get("subject", 1)), ci_method)
    return ds, {}


# --------------------------------------------------------------------------------------------- assembly


def _piece(bench, layers, profile, ci_low, ci_high, lower, upper, held, n_splits, n_stim, n_subjects,
           ci_method) -> xr.Dataset:
    layers = list(layers)
    j = layers.index(held.selected_layer)
    best = int(np.nanargmax(profile))
    with np.errstate(invalid="ignore", divide="ignore"):
        norm = profile / lower if np.isfinite(lower) and lower > 0 else np.full(len(layers), np.nan)
        held_norm = held.heldout_score / lower if np.isfinite(lower) and lower > 0 else np.nan
    coords = {"layer": layers}
    ds = xr.Dataset(
        {
            "score": ("layer", np.asarray(profile, float)),
            "ci_low": ("layer", np.asarray(ci_low, float)),
            "ci_high": ("layer", np.asarray(ci_high, float)),
            "normalised_score": ("layer", np.asarray(norm, float)),
            "selection_frequency": ("layer", np.asarray(held.frequency, float)),
            "depth": ("layer", np.arange(len(layers), dtype=float)),
            "heldout_score": held.heldout_score,
            "heldout_normalised_score": float(held_norm),
            "selected_layer": held.selected_layer,
            "selected_ci_low": float(np.asarray(ci_low, float)[j]),
            "selected_ci_high": float(np.asarray(ci_high, float)[j]),
            "ceiling_lower": float(lower),
            "ceiling_upper": float(upper),
            "best_layer": layers[best],
            "best_score": float(profile[best]),
            "n_stimuli": int(n_stim),
            "n_subjects": int(n_subjects),
            "n_splits": int(n_splits),
            "selection_rule": bench.describe_selection(int(n_splits)),
            "metric": f"RSA: {bench.compare} of {bench.rdm_metric}-distance RDMs" if bench.metric == "rsa"
            else "encoding: cross-validated ridge, mean held-out score",
            "ci_method": ci_method,
            "demo": int(bench.demo),
        },
        coords=coords,
    )
    return ds


def score_benchmark(bench: Benchmark, data: BenchmarkData, acts: Mapping[str, xr.DataArray], *,
                    n_bootstrap: int = 1000, seed: int = 0, progress: bool | None = None) -> tuple[xr.Dataset, dict]:
    """Score every layer of one model on one benchmark.

    Parameters
    ----------
    bench : Benchmark
    data : BenchmarkData
        From ``bench.data(data_dir)``.
    acts : mapping layer -> DataArray ``(stimulus, unit)``
        Usable layers, in depth order.
    n_bootstrap : int
        Bootstrap resamples for the per-layer CIs (0: none).
    seed : int
        Seed of bootstraps and splits.
    progress : bool, optional
        Bar of the RSA bootstrap, counting resamples up to ``n_bootstrap`` (the count the CI method records):
        ``True``/``False``; ``None`` (default, automatic) shows it only when someone watches
        (:func:`neurobridge.core.progress_enabled`).

    Returns
    -------
    piece : xr.Dataset
        Per-layer ``score``, ``ci_low``, ``ci_high``, ``normalised_score``, ``selection_frequency``, ``depth``
        (and ``score_time`` for time-resolved data) plus scalars ``heldout_score``, ``selected_layer``,
        ``ceiling_lower``/``ceiling_upper``, ...
    extras : dict
        In-memory extras for figures (``model_rdms``, ``brain_rdm`` for RSA).

    Examples
    --------
    >>> import numpy as np, neurobridge as nb  # doctest: +SKIP
    >>> piece, _ = score_benchmark(nb.benchmark.get("kriegeskorte92-mit-rsa"), data, acts)  # doctest: +SKIP
    """
    if not acts:
        raise UnusableLayersError(f"benchmark {bench.name!r}: no layers to score")
    fn = _score_rsa if bench.metric == "rsa" else _score_encoding
    return fn(bench, data.target, acts, n_bootstrap=n_bootstrap, seed=seed, progress=progress)
