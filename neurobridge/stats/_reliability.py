"""Reliability of any brain-model score when stimuli and/or neurons are subsampled, and of the model ranking.

A score (RSA, CKA, an encoding r, a decoding accuracy) measured on a finite set of stimuli and recorded units is
one draw of a random variable. :func:`subsample_reliability` re-evaluates it on random subsets of the stimuli
and/or of the brain's units at several fractions, giving its distribution per fraction and model, and measures
how reproducible the ranking of the models is: the Spearman correlation of the model scores on two disjoint
halves of the stimuli, and that correlation stepped up to the full subset with the Spearman-Brown formula.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
import xarray as xr

from ..core import SchemaError, check_unique, progress_bar, stimulus_ids
from ._utils import generator

__all__ = ["subsample_reliability"]

logger = logging.getLogger("neurobridge")

_FEATURE_DIMS = ("voxel", "channel", "unit", "neuron", "electrode", "vertex", "feature")


def _as_scalar(value: Any, model: str) -> float:
    """The float a score callable returned, or a clear error when it is not one number."""
    if isinstance(value, xr.Dataset):
        raise TypeError(f"score returned an xr.Dataset for model {model!r}; return one number, e.g. "
                        "lambda b, m: float(nb.encoding.fit_encoding(m, b)['score'].mean())")
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, xr.DataArray):
        value = value.values
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"score must return a number, got {type(value).__name__} for model {model!r}; "
                        "wrap it to return a float, e.g. lambda b, m: float(...)") from None
    if arr.ndim != 0:
        raise ValueError(f"score returned an array of shape {arr.shape} for model {model!r}, expected one number "
                         "per call; reduce it inside the callable (e.g. .mean('voxel') or float(...))")
    return float(arr)


def _check_fractions(fractions) -> np.ndarray:
    fr = np.asarray(fractions, dtype=float).ravel()
    if fr.size == 0:
        raise ValueError("fractions is empty; pass e.g. fractions=(0.25, 0.5, 1.0)")
    bad = fr[~((fr > 0) & (fr <= 1))]
    if bad.size:
        raise ValueError(f"fractions must lie in (0, 1], found {bad.tolist()}; a fraction is the share of "
                         "stimuli (or units) kept, e.g. fractions=(0.25, 0.5, 1.0)")
    return np.unique(fr)


def _sample_dim(brain: xr.DataArray) -> str:
    if "stimulus" in brain.dims:
        return "stimulus"
    if "trial" in brain.dims and "stimulus" in brain.coords and brain["stimulus"].dims == ("trial",):
        return "trial"
    raise SchemaError(f"brain needs a 'stimulus' dim or a 'stimulus' coordinate on dim 'trial', found dims "
                      f"{tuple(brain.dims)}; build it with a nb.core factory or assign_coords(stimulus=...)")


def _feature_dim(brain: xr.DataArray, sample_dim: str) -> str:
    others = [d for d in brain.dims if d not in (sample_dim, "stimulus2")]
    if len(others) == 1:
        return others[0]
    known = [d for d in others if d in _FEATURE_DIMS]
    if len(known) == 1:
        return known[0]
    if not others:
        raise ValueError(f"brain has no unit dim to subsample (dims {tuple(brain.dims)}); use over='stimulus'")
    raise ValueError(f"cannot tell which dim of brain holds the units among {others}; name it, "
                     f"e.g. over=('stimulus', {others[0]!r})")


def _parse_over(over, brain: xr.DataArray, sample_dim: str) -> tuple[bool, str | None]:
    names = [over] if isinstance(over, str) else list(over)
    if names == ["both"]:
        return True, _feature_dim(brain, sample_dim)
    allowed = [d for d in brain.dims if d not in (sample_dim, "stimulus", "stimulus2")]
    stim, feat = False, None
    for name in names:
        if name == "stimulus":
            stim = True
        elif name in allowed and feat is None:
            feat = name
        else:
            raise ValueError(f"over must be 'stimulus', 'both', a unit dim of brain ({allowed}) or a pair "
                             f"('stimulus', dim), got {over!r}")
    return stim, feat


def _models_dict(models) -> dict[str, xr.DataArray]:
    if isinstance(models, xr.DataArray):
        models = {str(models.name) if models.name is not None else "model": models}
    if not isinstance(models, Mapping) or not models:
        raise TypeError(f"models must be an xr.DataArray or a non-empty dict of name -> xr.DataArray, got "
                        f"{type(models).__name__}")
    out = {}
    for name, da in models.items():
        if not isinstance(da, xr.DataArray):
            raise TypeError(f"model {name!r} is a {type(da).__name__}, expected an xr.DataArray with a 'stimulus' dim")
        if "stimulus" not in da.dims:
            raise SchemaError(f"model {name!r} has dims {tuple(da.dims)}, expected a 'stimulus' dim (one row per "
                              "unique stimulus); average repetitions first with nb.core.average_repetitions")
        check_unique(da.indexes["stimulus"], owner=f"model {name!r}")
        out[str(name)] = da
    return out


def _positions(da: xr.DataArray, shared: np.ndarray, name: str) -> dict[str, np.ndarray]:
    """Positions of the shared stimuli on ``stimulus`` and, for RDMs, on ``stimulus2`` (subset together)."""
    pos = {"stimulus": da.indexes["stimulus"].get_indexer(shared)}
    if "stimulus2" in da.dims:
        p2 = da.indexes["stimulus2"].get_indexer(shared) if "stimulus2" in da.indexes else np.full(len(shared), -1)
        if (p2 < 0).any():
            raise SchemaError(f"{name} is square over ('stimulus', 'stimulus2') but 'stimulus2' lacks some of its "
                              "stimulus ids; label both axes with the same ids (nb.core.rdm does)")
        pos["stimulus2"] = p2
    return pos


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman correlation of two score vectors over models; NaN when undefined (ties of all, NaN)."""
    if len(a) < 2 or not (np.isfinite(a).all() and np.isfinite(b).all()):
        return np.nan
    ra = pd.Series(a).rank().to_numpy() - (len(a) + 1) / 2  # average ranks of ties, as scipy.stats.rankdata
    rb = pd.Series(b).rank().to_numpy() - (len(b) + 1) / 2
    den = np.sqrt((ra @ ra) * (rb @ rb))
    return float(ra @ rb / den) if den > 0 else np.nan


def subsample_reliability(
    score: Callable[[xr.DataArray, xr.DataArray], Any],
    brain: xr.DataArray,
    models: xr.DataArray | Mapping[str, xr.DataArray],
    *,
    fractions: Sequence[float] = (0.25, 0.5, 0.75, 1.0),
    over: str | Sequence[str] = "stimulus",
    n_repeats: int = 20,
    split_half: bool = True,
    min_stimuli: int = 3,
    level: float = 0.95,
    seed=None,
    progress: bool | None = None,
) -> xr.Dataset:
    """Distribution of any brain-model score under subsampling of stimuli and/or units, and ranking reliability.

    For each fraction ``f`` and repeat, a random ``round(f * n)`` of the stimuli (and/or of the brain's units)
    is drawn without replacement, the same subset for every model, and ``score(brain_subset, model_subset)``
    is evaluated per model. The subset is then split into two disjoint random halves of stimuli and every model
    is scored on each; the Spearman correlation of the model scores across the halves is the split-half
    reliability of the ranking, and ``2 r / (1 + r)`` (Spearman-Brown) estimates it at the subset's full size.

    Parameters
    ----------
    score : callable
        ``score(brain, model) -> number`` (a float, a 0-d array/tensor/DataArray), e.g.
        ``lambda b, m: nb.rsa.compare(nb.rsa.rdm(b), nb.rsa.rdm(m))`` or
        ``lambda b, m: nb.rsa.cka(b, m)``. It receives labelled subsets with all coords kept.
    brain : xr.DataArray
        Brain data with a ``stimulus`` dim, or a ``trial`` dim with a ``stimulus`` coordinate (all trials of a
        drawn stimulus are kept), and a unit dim (``voxel``, ``channel``, ``neuron``...). An RDM
        ``(..., stimulus, stimulus2)`` is subset on both axes.
    models : xr.DataArray or dict of str -> xr.DataArray
        Model features (or RDMs) with a ``stimulus`` dim; several models share each subset. Stimuli are those
        of ``brain`` that every model has, in ``brain``'s order.
    fractions : sequence of float in (0, 1]
        Shares of stimuli (and/or units) kept.
    over : str or pair of str
        What is subsampled: ``"stimulus"``, a unit dim of ``brain`` (e.g. ``"voxel"``), or both
        (``"both"``, or ``("stimulus", "voxel")``). Model units are never subsampled.
    n_repeats : int
        Random subsets per fraction. A fraction that keeps everything is scored once (deterministic scores
        give zero spread there); its split halves are still drawn ``n_repeats`` times.
    split_half : bool
        Also compute the split-half reliability of the model ranking (needs two or more models; three times
        the score calls).
    min_stimuli : int
        Fewest stimuli a score may see; a fraction below it raises, a half below it gives NaN.
    level : float
        Level of the central interval ``ci_low``/``ci_high`` of the score distribution.
    seed : int, numpy Generator or torch Generator, optional
        Randomness of the subsets.
    progress : bool, optional
        Progress bar (default: automatic).

    Returns
    -------
    xr.Dataset
        ``score`` (model, fraction, repeat); ``score_mean``, ``score_std`` (ddof=1), ``ci_low``, ``ci_high``
        (model, fraction); with ``split_half``: ``ranking_split_half`` (fraction, repeat),
        ``ranking_reliability`` (mean split-half r) and ``ranking_reliability_sb`` (Spearman-Brown) over
        ``fraction``. Coords ``n_stimuli``, ``n_units`` and ``n_half`` on ``fraction``; attrs ``over``,
        ``unit_dim``, ``n_repeats``, ``level``.

    Raises
    ------
    ValueError
        A fraction outside (0, 1], a fraction that keeps fewer than ``min_stimuli`` stimuli or no unit, a bad
        ``over``, or a score that returns an array.
    TypeError
        A score that returns something that is not a number.

    Examples
    --------
    >>> import numpy as np, xarray as xr, neurobridge as nb
    >>> rng = np.random.default_rng(0)
    >>> z = rng.normal(size=(40, 1))
    >>> brain = xr.DataArray(z + rng.normal(size=(40, 5)), dims=("stimulus", "voxel"),
    ...                      coords={"stimulus": np.arange(40)})
    >>> models = {f"m{k}": xr.DataArray(z + k * rng.normal(size=(40, 1)), dims=("stimulus", "unit"),
    ...                                 coords={"stimulus": np.arange(40)}) for k in (1, 3)}
    >>> r = lambda b, m: np.corrcoef(b.mean("voxel"), m[:, 0])[0, 1]
    >>> res = nb.stats.subsample_reliability(r, brain, models, fractions=(0.5, 1.0), n_repeats=5, seed=0)
    >>> res["score"].dims
    ('model', 'fraction', 'repeat')
    >>> res["n_stimuli"].values.tolist()
    [20, 40]
    """
    if not callable(score):
        raise TypeError(f"score must be a callable score(brain, model) -> float, got {type(score).__name__}")
    if not isinstance(brain, xr.DataArray):
        raise TypeError(f"brain must be an xr.DataArray, got {type(brain).__name__}")
    fr = _check_fractions(fractions)
    if int(n_repeats) != n_repeats or n_repeats < 1:
        raise ValueError(f"n_repeats must be an integer >= 1, got {n_repeats!r}")
    if int(min_stimuli) != min_stimuli or min_stimuli < 1:
        raise ValueError(f"min_stimuli must be an integer >= 1, got {min_stimuli!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level!r}")
    n_repeats, min_stimuli = int(n_repeats), int(min_stimuli)
    mods = _models_dict(models)
    sdim = _sample_dim(brain)
    sub_stim, udim = _parse_over(over, brain, sdim)

    ids = pd.unique(np.asarray(stimulus_ids(brain)))
    keep = np.ones(len(ids), bool)
    for da in mods.values():
        keep &= pd.Index(ids).isin(da.indexes["stimulus"])
    if (~keep).any():
        logger.info("subsample_reliability: %d brain stimuli missing from some model are dropped", int((~keep).sum()))
    shared = ids[keep]
    n_stim = len(shared)
    if n_stim < min_stimuli:
        raise SchemaError(f"brain and models share {n_stim} stimuli, need at least min_stimuli={min_stimuli}; "
                          "check that they use the same stimulus ids")
    model_pos = {m: _positions(da, shared, f"model {m!r}") for m, da in mods.items()}
    if sdim == "stimulus":
        check_unique(brain.indexes["stimulus"], owner="brain",
                     fix="use dim 'trial' for repetitions or average them with nb.core.average_repetitions")
        brain_pos = _positions(brain, shared, "brain")
        trial_code = None
    else:
        trial_code = pd.Index(shared).get_indexer(np.asarray(stimulus_ids(brain)))
    n_units = brain.sizes[udim] if udim is not None else None

    n_sub = np.array([int(round(f * n_stim)) if sub_stim else n_stim for f in fr])
    for f, k in zip(fr, n_sub, strict=True):
        if k < min_stimuli:
            raise ValueError(f"fraction {f:g} of {n_stim} stimuli keeps {k}, fewer than min_stimuli={min_stimuli}; "
                             f"use fractions >= {min_stimuli / n_stim:.3g} or lower min_stimuli")
    u_sub = np.array([int(round(f * n_units)) for f in fr]) if udim is not None else np.full(len(fr), -1)
    if udim is not None and (u_sub < 1).any():
        f = fr[np.argmax(u_sub < 1)]
        raise ValueError(f"fraction {f:g} of {n_units} {udim}s keeps none; use fractions >= {1 / n_units:.3g}")
    n_half = n_sub // 2
    names = list(mods)
    do_half = split_half and len(names) >= 2
    if split_half and not do_half:
        logger.info("subsample_reliability: one model, no ranking to assess; split halves skipped")
    if do_half and (n_half < min_stimuli).any():
        logger.warning("subsample_reliability: halves of %s stimuli are below min_stimuli=%d; their ranking "
                       "reliability is NaN", n_sub[n_half < min_stimuli].tolist(), min_stimuli)

    def subset(stim_idx: np.ndarray, unit_idx: np.ndarray | None):
        if sdim == "stimulus":
            b = brain.isel({d: p[stim_idx] for d, p in brain_pos.items()})
        else:
            b = brain.isel(trial=np.flatnonzero(np.isin(trial_code, stim_idx)))
        if unit_idx is not None:
            b = b.isel({udim: unit_idx})
        return b

    def evaluate(stim_idx: np.ndarray, unit_idx: np.ndarray | None) -> np.ndarray:
        b = subset(stim_idx, unit_idx)
        return np.array([_as_scalar(score(b, mods[m].isel({d: p[stim_idx] for d, p in model_pos[m].items()})), m)
                         for m in names])

    g = generator(seed)
    scores = np.full((len(names), len(fr), n_repeats), np.nan)
    halves = np.full((len(fr), n_repeats), np.nan)
    all_stim = np.arange(n_stim)
    with progress_bar(total=len(fr) * n_repeats, desc="subsample reliability", progress=progress,
                      unit="subset") as bar:
        for j in range(len(fr)):
            full = n_sub[j] == n_stim and (udim is None or u_sub[j] == n_units)
            for r in range(n_repeats):
                stim_idx = np.sort(torch.randperm(n_stim, generator=g)[: n_sub[j]].numpy()) if sub_stim else all_stim
                unit_idx = (np.sort(torch.randperm(n_units, generator=g)[: u_sub[j]].numpy())
                            if udim is not None else None)
                if not full or r == 0:
                    scores[:, j, r] = evaluate(stim_idx, unit_idx)
                else:
                    scores[:, j, r] = scores[:, j, 0]
                if do_half and n_half[j] >= min_stimuli:
                    perm = stim_idx[torch.randperm(len(stim_idx), generator=g).numpy()]
                    a = evaluate(np.sort(perm[: n_half[j]]), unit_idx)
                    b = evaluate(np.sort(perm[n_half[j]: 2 * n_half[j]]), unit_idx)
                    halves[j, r] = _spearman(a, b)
                bar.update(1)

    coords = {"model": names, "fraction": fr, "repeat": np.arange(n_repeats),
              "n_stimuli": ("fraction", n_sub), "n_half": ("fraction", n_half)}
    if udim is not None:
        coords["n_units"] = ("fraction", u_sub)
    tail = (1 - level) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        std = np.std(scores, axis=-1, ddof=1) if n_repeats > 1 else np.full(scores.shape[:2], np.nan)
        data = {
            "score": (("model", "fraction", "repeat"), scores),
            "score_mean": (("model", "fraction"), scores.mean(-1)),
            "score_std": (("model", "fraction"), std),
            "ci_low": (("model", "fraction"), np.quantile(scores, tail, axis=-1)),
            "ci_high": (("model", "fraction"), np.quantile(scores, 1 - tail, axis=-1)),
        }
        if do_half:
            rel = np.array([np.nanmean(h) if np.isfinite(h).any() else np.nan for h in halves])
            data["ranking_split_half"] = (("fraction", "repeat"), halves)
            data["ranking_reliability"] = ("fraction", rel)
            data["ranking_reliability_sb"] = ("fraction", 2 * rel / (1 + rel))
    over_names = (["stimulus"] if sub_stim else []) + ([udim] if udim is not None else [])
    attrs = {"over": ",".join(over_names), "unit_dim": udim or "", "n_repeats": n_repeats, "level": float(level)}
    return xr.Dataset(data, coords=coords, attrs=attrs)
