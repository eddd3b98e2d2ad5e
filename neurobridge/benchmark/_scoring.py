"""Scoring one model's layers against one benchmark: per-layer profile, ceiling, CIs, held-out selection.

The result of scoring is a *piece*: an ``xr.Dataset`` over ``layer`` (and ``time`` for time-resolved data)
with per-layer variables and scalar per-(model, benchmark) variables; the runner stacks pieces into the
``(model, benchmark, layer[, time])`` scores.

What the inference in a piece means (RSA benchmarks):

- ``heldout_score``: the chosen layer's score on held-out halves of the stimuli (or subjects), averaged over
  splits; unbiased for the chosen layer, 0 on average for a model unrelated to the brain when stimuli are split
  (time-resolved data included: time points are never split, see :mod:`._selection`).
- ``heldout_p``: one-sided permutation p-value of ``heldout_score`` under "no layer relates to the brain" (the
  brain data's stimuli relabelled, the selection redone on every permutation): exact, so its false-positive rate
  is the nominal one for any number of stimuli, time points or subjects.
- ``ci_low``/``ci_high`` (per layer): pointwise 95% bootstrap intervals of each layer's score, valid for a layer
  fixed in advance, not for the best of the profile.
- ``selected_ci_low``/``_high``: a simultaneous 95% band over all layers (:func:`simultaneous_ci`), so it covers
  the selected layer's score although the layer was chosen from the same data; as calibrated as the bootstrap
  variance it is built from. With fewer than 10 stimuli there is no bootstrap and these are NaN.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import xarray as xr

from ._registry import Benchmark, BenchmarkData
from ._selection import (
    MIN_HALF,
    HeldOutSelection,
    half_splits,
    select_layer_heldout,
    subject_splits,
)

__all__ = ["score_benchmark", "check_layers", "UnusableLayersError", "target_rdm", "stimulus_ids", "simultaneous_ci"]

logger = logging.getLogger("neurobridge")

_FEATURE_DIMS = ("voxel", "channel", "unit", "neuron", "electrode", "vertex", "feature")

# scalar variables of a piece and their fill value when a (model, benchmark) pair is absent
SCALARS = {
    "heldout_score": np.nan, "heldout_p": np.nan, "heldout_normalised_score": np.nan, "selected_layer": "",
    "selected_ci_low": np.nan, "selected_ci_high": np.nan, "ceiling_lower": np.nan, "ceiling_upper": np.nan,
    "best_layer": "", "best_score": np.nan, "n_stimuli": -1, "n_subjects": -1, "n_splits": -1, "selection_rule": "",
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


def _square_values(rdm: xr.DataArray, lead: list[str], ids: list) -> np.ndarray:
    """Values of an RDM as ``(*lead, n, n)`` in the stimulus order ``ids`` (dims in ``lead`` absent: size 1)."""
    if "stimulus2" in rdm.coords and not np.array_equal(rdm["stimulus2"].values, rdm["stimulus"].values):
        rdm = rdm.sel(stimulus2=rdm["stimulus"].values)
    if not np.array_equal(rdm["stimulus"].values, np.asarray(ids, dtype=rdm["stimulus"].dtype)):
        rdm = rdm.sel(stimulus=ids, stimulus2=ids)
    for d in lead:
        if d not in rdm.dims:
            rdm = rdm.expand_dims(d)
    return np.asarray(rdm.transpose(*lead, "stimulus", "stimulus2").values, dtype=np.float32)  # as rsa.compare


def _split_scores(model: np.ndarray, brain: np.ndarray, idx: np.ndarray, perms: np.ndarray,
                  method: str) -> np.ndarray:
    """RDM similarity on the stimuli ``idx`` of every layer with the brain RDMs relabelled by each permutation.

    ``model`` (L, n, n), ``brain`` (S, T, n, n), ``idx`` (k,) stimulus indices, ``perms`` (P, n) with the
    identity first. Returns (P, L, S, T): layer ``l`` on stimuli ``idx`` against the brain's responses to
    stimuli ``perm[idx]``. Permutations that send ``idx`` to the same set of brain stimuli share one ranking of
    that set's dissimilarities (with few stimuli most do), so Spearman correlations cost one ranking per set.
    """
    import torch

    from neurobridge import rsa

    k = len(idx)
    iu, ju = np.triu_indices(k, 1)
    x = torch.as_tensor(model[:, idx[iu], idx[ju]])  # (L, pairs)
    n_layers, n_pairs = x.shape
    n_sub, n_time = brain.shape[:2]
    bt = torch.as_tensor(brain)
    # Spearman = Pearson of (average) ranks, and Pearson = dot product of centred unit vectors: both are prepared
    # once per set of brain stimuli (centring and scaling do not depend on the order of the entries)
    direct = method in ("spearman", "pearson")
    if direct:
        x = _unit_centred(rsa.rank(x) if method == "spearman" else x)
    chunk = max(1, int(2**22 // max(1, n_sub * n_time * n_pairs)))  # bound the (S, T, chunk, pairs) gathers
    out = []
    for start in range(0, len(perms), chunk):
        where = perms[start:start + chunk][:, idx]  # (c, k): brain stimulus shown in each half position
        sets, inv = np.unique(np.sort(where, axis=1), axis=0, return_inverse=True)
        y_sets = bt[:, :, torch.as_tensor(sets[:, iu]), torch.as_tensor(sets[:, ju])]  # (S, T, U, pairs)
        if direct:
            y_sets = _unit_centred(rsa.rank(y_sets) if method == "spearman" else y_sets)
        # the pair (i, j) of half positions is the pair (pos[i], pos[j]) of the sorted set: its condensed index
        pos = np.argsort(np.argsort(where, axis=1), axis=1)
        lo, hi = np.minimum(pos[:, iu], pos[:, ju]), np.maximum(pos[:, iu], pos[:, ju])
        cond = lo * k - lo * (lo + 1) // 2 + (hi - lo - 1)  # (c, pairs)
        y = y_sets[:, :, torch.as_tensor(inv.reshape(-1))[:, None], torch.as_tensor(cond)]  # (S, T, c, pairs)
        if direct:
            sim = torch.einsum("lp,stcp->clst", x, y)
        else:
            sim = rsa.compare_vectors(x.reshape(n_layers, 1, 1, 1, n_pairs), y.unsqueeze(0), method).permute(3, 0, 1, 2)
        out.append(sim.cpu().numpy())
    return np.concatenate(out, axis=0)


def _unit_centred(v):
    """Centre and scale to unit norm along the last axis (a constant vector stays 0, as in rsa.compare)."""
    import torch

    from neurobridge.core import check_finite

    check_finite(v, "an RDM", fix="drop the affected stimuli first")
    v = v - v.mean(-1, keepdim=True)
    norm = torch.linalg.vector_norm(v, dim=-1, keepdim=True)
    return v / torch.where(norm > 0, norm, torch.ones_like(norm))


def _nanmean(x: np.ndarray, axis) -> np.ndarray:
    ok = np.isfinite(x)
    n = ok.sum(axis=axis)
    return np.where(n > 0, np.where(ok, x, 0.0).sum(axis=axis) / np.maximum(n, 1), np.nan)


def _rsa_heldout(bench: Benchmark, mrdm: xr.DataArray, brain: xr.DataArray, layers: list[str], n_subjects: int,
                 seed: int, profile: np.ndarray) -> tuple[HeldOutSelection, int]:
    """Held-out layer selection of an RSA benchmark over halves of stimuli or subjects, with its p-value.

    The selection and test scores are computed for the observed brain RDMs and for ``bench.n_permutations``
    relabellings of their stimuli (one permutation for all subjects and time points, the same splits), so the
    held-out score's null distribution includes the selection. Time-resolved scores are averaged over the
    benchmark's window before selecting.
    """
    from neurobridge.stats import permutation_indices

    ids = list(mrdm["stimulus"].values.tolist())
    n_stim = len(ids)
    if "time" in brain.dims:
        brain = brain.isel(time=_window(bench, brain["time"].values))
    model = _square_values(mrdm, ["layer"], ids)
    sq = _square_values(brain, ["subject", "time"], ids)  # (S, T, n, n)
    perms = np.arange(n_stim)[None]
    if bench.n_permutations > 0:
        perms = np.concatenate([perms, permutation_indices(n_stim, bench.n_permutations, seed=seed).numpy()])
    if bench.split == "subject":
        if n_subjects < 2:
            raise ValueError(f"benchmark {bench.name!r} splits subjects but the brain data have {n_subjects}")
        per_subject = _nanmean(_split_scores(model, sq, np.arange(n_stim), perms, bench.compare), axis=3)  # P,L,S
        splits = subject_splits(n_subjects, max_splits=bench.n_splits, seed=seed)
        sel = np.stack([_nanmean(per_subject[:, :, a], axis=2) for a, _ in splits], axis=1)  # (P, splits, L)
        test = np.stack([_nanmean(per_subject[:, :, b], axis=2) for _, b in splits], axis=1)
    else:
        if n_stim < 2 * MIN_HALF:
            logger.warning("%s: %d stimuli are too few to split into halves of %d or more; no held-out layer "
                           "selection (the in-sample best layer is shown, with no held-out score)", bench.name,
                           n_stim, MIN_HALF)
            best = int(np.nanargmax(profile))
            return HeldOutSelection(np.nan, layers[best], np.full(len(layers), np.nan), np.empty(0, int),
                                    np.empty(0)), 0
        splits = half_splits(n_stim, bench.n_splits, seed=seed)[: bench.n_splits]
        cache: dict[bytes, np.ndarray] = {}

        def half(idx):
            key = idx.tobytes()
            if key not in cache:
                cache[key] = _nanmean(_split_scores(model, sq, idx, perms, bench.compare), axis=(2, 3))  # (P, L)
            return cache[key]
        sel = np.stack([half(a) for a, _ in splits], axis=1)
        test = np.stack([half(b) for _, b in splits], axis=1)
    null = {"select_null": sel[1:], "test_null": test[1:]} if len(perms) > 1 else {}
    return select_layer_heldout(sel[0], test[0], layers, **null), len(splits)


def simultaneous_ci(samples: np.ndarray, estimate: np.ndarray, level: float = 0.95, *,
                    se: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Simultaneous (max-|t|) bootstrap confidence band over layers, valid for a layer chosen from the data.

    ``estimate[l] +- q * se[l]``, with ``q`` the ``level`` quantile over bootstrap samples of
    ``max_l |samples[:, l] - estimate[l]| / se[l]``: all layers are covered together with probability ``level``
    (as far as the bootstrap is right), so whichever layer a selection rule picks is covered too. A pointwise
    interval of the best of several layers is not: under the null it excludes 0 far more often than 1 - level.

    Parameters
    ----------
    samples : array, shape (n_bootstraps, n_layers)
        Bootstrap samples of each layer's score (NaN samples ignored).
    estimate : array, shape (n_layers,)
        Each layer's score on the data.
    level : float
        Coverage of the band.
    se : array, shape (n_layers,), optional
        Standard errors (default: the standard deviation of ``samples``); pass corrected ones to use them.

    Returns
    -------
    low, high : arrays, shape (n_layers,)

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> boot = rng.normal(size=(2000, 10))
    >>> low, high = simultaneous_ci(boot, np.zeros(10))
    >>> bool(2.6 < high[0] < 3.0)  # wider than the pointwise 1.96 for 10 independent layers
    True
    """
    samples = np.asarray(samples, dtype=float)
    estimate = np.asarray(estimate, dtype=float)
    if samples.ndim != 2 or samples.shape[1:] != estimate.shape:
        raise ValueError(f"samples must be (n_bootstraps, n_layers) and estimate (n_layers,); got {samples.shape} "
                         f"and {estimate.shape}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if se is None:
        ok = np.isfinite(samples)
        n = ok.sum(axis=0)
        mean = np.where(ok, samples, 0.0).sum(axis=0) / np.maximum(n, 1)
        se = np.sqrt(np.where(ok, (samples - mean) ** 2, 0.0).sum(axis=0) / np.maximum(n - 1, 1))
        se = np.where(n >= 2, se, np.nan)
    se = np.asarray(se, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.abs(samples - estimate) / np.where(se > 0, se, np.nan)
    t = np.where(np.isfinite(t), t, -np.inf).max(axis=1)
    t = t[np.isfinite(t)]
    if t.size == 0:
        return np.full(estimate.shape, np.nan), np.full(estimate.shape, np.nan)
    q = float(np.quantile(t, level))
    return estimate - q * se, estimate + q * se


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
    selected_ci = None
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
        selected_ci = simultaneous_ci(b, profile.values.astype(float))
        what = "stimuli and subjects" if over == "both" else "stimuli"
        ci_method = (f"95% bootstrap percentile interval over {what} ({n_bootstrap} resamples, "
                     f"nb.rsa.evaluate_models) per layer; the selected layer's CI is a simultaneous 95% band over "
                     f"the {len(layers)} layers (max-|t| bootstrap), valid after choosing the layer")
    elif n_bootstrap > 0:
        logger.info("%s: %d stimuli are too few for a stimulus bootstrap; no CI", bench.name, n_stim)

    # held-out layer selection (and its permutation p-value), on stimuli or subjects; never on time points
    held, n_splits = _rsa_heldout(bench, mrdm, brain, layers, n_subjects, seed, profile.values.astype(float))

    ds = _piece(bench, layers, profile.values.astype(float), ci_low, ci_high, lower, upper, held, n_splits,
                n_stim, n_subjects, ci_method, selected_ci=selected_ci)
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
           ci_method, selected_ci=None) -> xr.Dataset:
    layers = list(layers)
    j = layers.index(held.selected_layer)
    sel_low, sel_high = (ci_low, ci_high) if selected_ci is None else selected_ci
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
            "heldout_p": float(held.pvalue),
            "heldout_normalised_score": float(held_norm),
            "selected_layer": held.selected_layer,
            "selected_ci_low": float(np.asarray(sel_low, float)[j]),
            "selected_ci_high": float(np.asarray(sel_high, float)[j]),
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
        (and ``score_time`` for time-resolved data) plus scalars ``heldout_score``, ``heldout_p`` (RSA with
        ``bench.n_permutations > 0``, else NaN), ``selected_layer``, ``selected_ci_low``/``_high``,
        ``ceiling_lower``/``ceiling_upper``, ... (their meaning: the module docstring).
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
