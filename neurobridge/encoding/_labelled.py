"""Labelled entry points: align features and brain data, cross-validate, return xr.Datasets over the brain's dims."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd
import torch
import xarray as xr
from sklearn.base import clone

from ..core import SchemaError, align, check_finite, progress_bar, resolve_device, stimulus_ids
from ._cv import make_folds
from ._estimators import BandedRidgeCV, RidgeCV, correlation_score, r2_score
from ._memory import threads_for
from ._solvers import DEFAULT_ALPHAS, _work

__all__ = ["fit_encoding", "layer_sweep", "Design", "prepare_design"]

logger = logging.getLogger("neurobridge")

_SAMPLE_DIMS = ("trial", "stimulus", "time")
_SCORES = {"r2": r2_score, "correlation": correlation_score}


class Design(NamedTuple):
    """Features and brain data as matrices, with what is needed to put results back on the brain's dims."""

    X: np.ndarray
    """(n_samples, n_features)."""
    Y: np.ndarray
    """(n_samples, n_targets)."""
    sample_dim: str
    """``trial``, ``stimulus`` or ``time``."""
    target_template: xr.DataArray
    """One sample of the brain data (sample dim dropped): dims, coords and attrs of the targets."""
    groups: np.ndarray | None
    """Group of every sample for the folds (stimulus ids for repeated trials)."""
    feature_spaces: list[int] | None
    """Sizes of the feature spaces when features were given as a mapping."""
    unit_index: pd.Index
    """Labels of the feature columns."""


def _features_matrix(features, sample_dim: str) -> tuple[xr.DataArray, list[int] | None, list[str] | None]:
    """One (sample, unit) DataArray from a DataArray or a mapping name -> DataArray (feature spaces)."""
    if isinstance(features, Mapping):
        parts, sizes, names = [], [], []
        for name, da in features.items():
            da2 = _stack_units(da, sample_dim)
            parts.append(da2.assign_coords(unit=[f"{name}:{u}" for u in da2["unit"].values]))
            sizes.append(da2.sizes["unit"])
            names.append(str(name))
        if not parts:
            raise ValueError("features mapping is empty")
        joined = xr.concat(parts, dim="unit", join="inner", coords="minimal", compat="override")
        return joined, sizes, names
    if not isinstance(features, xr.DataArray):
        raise TypeError(f"features must be an xr.DataArray or a mapping of them, got {type(features).__name__}; "
                        "build one with nb.core.activations(data, stimulus=...)")
    return _stack_units(features, sample_dim), None, None


def _stack_units(da: xr.DataArray, sample_dim: str) -> xr.DataArray:
    if sample_dim not in da.dims:
        raise SchemaError(f"features need a {sample_dim!r} dim to match the brain data, found dims {tuple(da.dims)}")
    other = [d for d in da.dims if d != sample_dim]
    if not other:
        return da.expand_dims(unit=[0], axis=1)
    if other == ["unit"]:
        out = da.transpose(sample_dim, "unit")
        return out if "unit" in out.indexes else out.assign_coords(unit=np.arange(out.sizes["unit"]))
    # token/space dims before `unit`, whatever the DataArray's order: columns are token-major, as the token-
    # structured estimators (AttentionReadout(n_tokens=...)) read them
    other = [d for d in other if d != "unit"] + (["unit"] if "unit" in other else [])
    stacked = da.stack(_u=other).transpose(sample_dim, "_u")
    labels = ["/".join(map(str, v)) if isinstance(v, tuple) else str(v) for v in stacked["_u"].values]
    stacked = stacked.drop_vars([c for c in stacked.coords if "_u" in stacked[c].dims or c in other])
    return stacked.rename(_u="unit").assign_coords(unit=labels)


def _brain_sample_dim(brain: xr.DataArray) -> str:
    if "stimulus" in brain.dims:
        return "stimulus"
    if "trial" in brain.dims:
        return "trial"
    if "time" in brain.dims:
        return "time"
    raise SchemaError(f"brain needs a 'trial', 'stimulus' or 'time' dim, found {tuple(brain.dims)}; "
                      "build it with nb.core.fmri_responses / eeg_epochs / eeg_raw / fmri_timeseries")


def prepare_design(features, brain: xr.DataArray, *, groups=None, average_repetitions: bool = False) -> Design:
    """Align features and brain data and flatten them into ``X`` (samples x features) and ``Y`` (samples x targets).

    Stimulus-locked data (``trial`` or ``stimulus`` dim) are joined on ``stimulus`` with
    :func:`nb.core.align`; continuous data (``time`` dim on both) on ``time``. Every brain dim other than
    the sample dim becomes a target (voxels, channels, and the time points of epochs).

    Parameters
    ----------
    features : xr.DataArray (stimulus|time, unit) or mapping name -> DataArray (feature spaces)
    brain : xr.DataArray
    groups : str or array, optional
        Name of a coordinate on the sample dim (``"run"``) or one label per sample. Repeated trials of a
        stimulus are always grouped by stimulus.
    average_repetitions : bool
        Average trials of the same stimulus first.

    Returns
    -------
    Design

    Examples
    --------
    >>> import neurobridge as nb
    >>> f = nb.core.activations(np.random.rand(3, 4), stimulus=list("abc"))
    >>> b = nb.core.fmri_responses(np.random.rand(6, 5), stimulus=list("abcabc"))
    >>> d = prepare_design(f, b)
    >>> d.X.shape, d.Y.shape, d.groups.tolist()
    ((6, 4), (6, 5), ['a', 'b', 'c', 'a', 'b', 'c'])
    """
    if not isinstance(brain, xr.DataArray):
        raise TypeError(f"brain must be an xr.DataArray, got {type(brain).__name__}")
    check_finite(brain, "brain")
    dim = _brain_sample_dim(brain)
    if dim == "trial" and average_repetitions:
        from ..core import average_repetitions as _avg

        brain = _avg(brain)
        dim = "stimulus"
    group_values = None
    if isinstance(groups, str):
        if groups not in brain.coords or brain[groups].dims != (dim,):
            raise SchemaError(f"groups={groups!r} must name a coordinate on brain dim {dim!r}; "
                              f"coords on it: {[c for c in brain.coords if brain[c].dims == (dim,)]}")
        group_values = np.asarray(brain[groups].values)
    if dim in ("trial", "stimulus"):
        fdim = "stimulus"
        feats, sizes, _ = _features_matrix(features, fdim)
        check_finite(feats, "features")
        if groups is not None and not isinstance(groups, str):
            g = np.asarray(groups)
            if g.shape != (brain.sizes[dim],):
                raise ValueError(f"groups must have one label per {dim} ({brain.sizes[dim]}), got shape {g.shape}")
            brain = brain.assign_coords(_groups=(dim, g))
        al = align(brain, feats)
        b, f = al.brain, al.features
        if "_groups" in b.coords:
            group_values = np.asarray(b["_groups"].values)
            b = b.drop_vars("_groups")
        elif isinstance(groups, str):
            group_values = np.asarray(b[groups].values)
        ids = stimulus_ids(b)
        if dim == "trial" and pd.Index(ids).has_duplicates:
            if group_values is None:
                group_values = ids
            else:  # a group label must contain all repetitions of each stimulus
                per_stim = pd.Series(group_values).groupby(pd.Series(ids)).nunique()
                split = per_stim[per_stim > 1]
                if len(split):
                    raise ValueError(f"stimuli {split.index[:5].tolist()} have repetitions in several groups; "
                                     "repetitions of a stimulus would straddle folds: group by stimulus "
                                     "(groups=None) or average repetitions first")
        fmat = f.transpose(dim, "unit")
    else:
        feats, sizes, _ = _features_matrix(features, "time")
        check_finite(feats, "features")
        if feats.sizes["time"] == brain.sizes["time"]:
            b, fmat = brain, feats
        else:
            b, fmat = xr.align(brain, feats, join="inner", exclude=[d for d in brain.dims if d != "time"])
            if b.sizes["time"] < 3:
                raise SchemaError(f"brain ({brain.sizes['time']} samples) and features ({feats.sizes['time']}) share "
                                  f"{b.sizes['time']} time points; resample the features to the brain's time axis")
        if groups is not None and not isinstance(groups, str):
            group_values = np.asarray(groups)
    sample = dim
    target_dims = [d for d in b.dims if d != sample]
    bt = b.transpose(sample, *target_dims)
    Y = np.asarray(bt.values, dtype=float).reshape(bt.shape[0], -1)
    X = np.asarray(fmat.values, dtype=float)
    template = bt.isel({sample: 0}, drop=True)
    return Design(X, Y, sample, template, group_values, sizes, fmat.indexes["unit"])


def _unflatten(values: np.ndarray, template: xr.DataArray, name: str, lead: Sequence[tuple[str, Any]] = ()) -> xr.DataArray:
    """(..., n_targets) -> DataArray with the template's dims and coords (and leading dims)."""
    shape = tuple(len(v) for _, v in lead) + template.shape
    coords = {k: v for k, v in template.coords.items()}
    for d, v in lead:
        coords[d] = v
    return xr.DataArray(np.asarray(values).reshape(shape), dims=(*[d for d, _ in lead], *template.dims),
                        coords=coords, name=name, attrs=dict(template.attrs))


def _fit_supports_groups(est) -> bool:
    try:
        return "groups" in inspect.signature(est.fit).parameters
    except (TypeError, ValueError):
        return False


def _default_estimator(design: Design, alphas, scoring_cv: str):
    if design.feature_spaces is not None and len(design.feature_spaces) > 1:
        return BandedRidgeCV(alphas=alphas, feature_spaces=design.feature_spaces, n_iter=20, random_state=0,
                             scoring=scoring_cv)
    return RidgeCV(alphas=alphas, scoring=scoring_cv)


def _inner_cv(est, n_inner: int):
    if hasattr(est, "cv") and isinstance(est.cv, (int, np.integer)) and est.cv > n_inner:
        return clone(est).set_params(cv=n_inner)
    return clone(est)


def _crossval(design: Design, estimator, folds, score_fn, progress: bool | None, gap: int = 0):
    """Held-out predictions and per-fold scores (n_folds, n_targets), alphas per fold when available."""
    n, p = design.X.shape
    work = _work(n, p, design.Y.shape[1], 13, 6 * len(folds) * getattr(estimator, "n_iter", 1))
    with threads_for(work, resolve_device(None)):
        return _crossval_impl(design, estimator, folds, score_fn, progress, gap)


def _inner_gap(est, tr: np.ndarray, gap: int):
    """The estimator with inner folds that keep ``gap`` samples (in the original time order) off each side."""
    cv = getattr(est, "cv", None)
    if not gap or not isinstance(cv, (int, np.integer)) or isinstance(cv, bool):
        return est
    return clone(est).set_params(cv=make_folds(len(tr), int(cv), gap=gap, positions=tr))


def _crossval_impl(design: Design, estimator, folds, score_fn, progress: bool | None, gap: int = 0):
    Y = torch.as_tensor(design.Y)
    preds = np.zeros_like(design.Y)
    fold_scores, fold_alphas, inner_scores = [], [], []
    with_groups = _fit_supports_groups(estimator)
    for tr, va in progress_bar(folds, desc="outer folds", progress=progress, unit="fold"):
        est = clone(estimator)
        Xtr, Ytr = design.X[tr], design.Y[tr]
        if with_groups and design.groups is not None:
            ng = len(np.unique(design.groups[tr]))
            est = _inner_cv(est, max(2, min(5, ng)))
            est.fit(Xtr, Ytr, groups=design.groups[tr])
        else:
            est = _inner_gap(est, tr, gap)
            est.fit(Xtr, Ytr)
        pred = np.asarray(est.predict(design.X[va]), dtype=float).reshape(len(va), -1)
        preds[va] = pred
        fold_scores.append(score_fn(Y[va], torch.as_tensor(pred)).numpy())
        alpha = getattr(est, "alpha_", None)
        fold_alphas.append(np.broadcast_to(np.asarray(alpha, dtype=float), (design.Y.shape[1],)) if alpha is not None
                           else np.full(design.Y.shape[1], np.nan))
        bs = getattr(est, "best_score_", None)
        inner_scores.append(np.broadcast_to(np.asarray(bs, dtype=float), (design.Y.shape[1],)) if bs is not None
                            else np.full(design.Y.shape[1], np.nan))
    return preds, np.stack(fold_scores), np.stack(fold_alphas), np.stack(inner_scores)


_NULLS = ("auto", "permutation", "circular", "block", "phase")


def resolve_gap(design: Design, gap, *, delays: int = 0) -> int:
    """The gap (samples) between training and validation blocks: ``"auto"`` gives the autocorrelation length
    of features x targets (:func:`neurobridge.stats.autocorrelation_length`) plus the largest delay for
    continuous ``(time, ...)`` data split into contiguous folds, else 0."""
    if gap is None:
        return 0
    if isinstance(gap, str):
        if gap != "auto":
            raise ValueError(f"gap must be 'auto', None or a number of samples, got {gap!r}")
        if design.sample_dim != "time" or design.groups is not None:
            return 0
        from ..stats import autocorrelation_length

        n = design.X.shape[0]
        return int(autocorrelation_length(design.X, design.Y, max_lag=n // 4)) + int(delays)
    if int(gap) != gap or gap < 0:
        raise ValueError(f"gap must be a non-negative number of samples, got {gap!r}")
    return int(gap)


def resolve_null(design: Design, null: str) -> str:
    """``"auto"``: circular shifts for continuous ``(time, ...)`` data, else permutations of samples (groups)."""
    if null not in _NULLS:
        raise ValueError(f"null must be one of {_NULLS}, got {null!r}")
    if null == "auto":
        return "circular" if design.sample_dim == "time" else "permutation"
    if null != "permutation" and design.sample_dim != "time":
        raise ValueError(f"null={null!r} is for continuous (time, ...) recordings; stimulus-locked data "
                         f"(dim {design.sample_dim!r}) take null='permutation'")
    return null


def _permutation_pvalues(design: Design, preds: np.ndarray, folds, score_fn, n_permutations: int, random_state,
                         null: str = "permutation", min_shift: int = 1):
    """P-values of the pooled held-out score under a null that keeps the data's dependence structure.

    ``permutation``: predictions of whole groups (stimuli with repetitions, runs) are exchanged.
    ``circular``: the predicted series is shifted circularly against the recorded one by at least
    ``min_shift`` samples; ``block``: blocks of ``min_shift`` samples are permuted; ``phase``: the recorded
    series is replaced by phase-randomised surrogates (same spectrum and cross-spectra across targets).
    """
    from ..stats import block_permutation_indices, circular_shifts, phase_randomize

    rng = np.random.default_rng(random_state)
    Yt = torch.as_tensor(design.Y)
    P = torch.as_tensor(preds)
    observed = score_fn(Yt, P)
    exceed = torch.ones_like(observed)
    n = len(preds)
    if null in ("circular", "block"):
        min_shift = max(1, min(int(min_shift), n // 2))
        seed = int(rng.integers(2**31))
        idx = (circular_shifts(n, n_permutations, min_shift=min_shift, seed=seed) if null == "circular"
               else block_permutation_indices(n, n_permutations, block=min_shift, seed=seed))
        for row in idx:
            exceed += (score_fn(Yt, P[row]) >= observed).to(exceed.dtype)
        return (exceed / (n_permutations + 1)).numpy(), observed.numpy()
    if null == "phase":
        for _ in range(n_permutations):
            surrogate = phase_randomize(Yt, 1, seed=int(rng.integers(2**31)))[0]
            exceed += (score_fn(surrogate, P) >= observed).to(exceed.dtype)
        return (exceed / (n_permutations + 1)).numpy(), observed.numpy()
    if design.groups is not None:
        codes, uniques = pd.factorize(design.groups)
    else:
        codes, uniques = np.arange(len(preds)), np.arange(len(preds))
    counts = np.bincount(codes)
    if len(np.unique(counts)) > 1:
        raise ValueError("permutation p-values with groups need groups of equal size (e.g. the same number "
                         "of repetitions per stimulus); average repetitions first (average_repetitions=True)")
    order = np.argsort(codes, kind="stable")
    blocks = order.reshape(len(uniques), -1)  # samples of each group
    for _ in range(n_permutations):
        target = np.empty(len(order), dtype=np.int64)
        # sample blocks[g, j] gets the prediction of the sample at the same place in another group
        target[blocks.reshape(-1)] = blocks[rng.permutation(len(uniques))].reshape(-1)
        null_score = score_fn(Yt, P[torch.as_tensor(target)])
        exceed += (null_score >= observed).to(exceed.dtype)
    return (exceed / (n_permutations + 1)).numpy(), observed.numpy()


def fit_encoding(
    features, brain: xr.DataArray, *, estimator=None, cv=5, groups=None, scoring: str = "r2",
    alphas=DEFAULT_ALPHAS, average_repetitions: bool = False, return_weights: bool = False,
    return_predictions: bool = False, n_permutations: int = 0, fdr_alpha: float = 0.05, random_state=0,
    gap: int | Literal["auto"] | None = "auto", null: str = "auto", progress: bool | None = None,
) -> xr.Dataset:
    """Cross-validated encoding model from features to every voxel/channel (and time point) of ``brain``.

    Features and brain are aligned on ``stimulus`` (trials with repetitions are fine: folds are grouped by
    stimulus so repetitions never straddle folds) or, for continuous recordings, on ``time`` (contiguous
    folds). In each outer fold the estimator (default :class:`RidgeCV`, or :class:`BandedRidgeCV` when
    ``features`` is a mapping of feature spaces) chooses its alphas by inner grouped cross-validation on the
    training part only, then predicts the held-out part.

    Parameters
    ----------
    features : xr.DataArray (stimulus, unit) / (time, unit), or mapping name -> DataArray
        Stimulus features; a mapping gives one feature space per entry (banded ridge).
    brain : xr.DataArray
        ``(trial|stimulus, voxel)``, ``(trial, channel, time)``, ``(time, voxel)`` or ``(channel, time)``.
    estimator : sklearn regressor, optional
        Any regressor (``fit(X, Y[, groups])``/``predict``); default ``RidgeCV(alphas)``.
    cv : int, splitter or list of (train, val)
        Outer folds (grouped by stimulus for repeated trials, contiguous for time series).
    groups : str or array, optional
        Coordinate name (``"run"``) or labels on the sample dim for grouped folds.
    scoring : {"r2", "correlation"}
        Held-out score (averaged over outer folds) in ``score``; also used for alpha selection.
    alphas : array
        Candidate alphas of the default estimator.
    average_repetitions : bool
        Average repeated trials first (targets are then stimulus means).
    return_weights : bool
        Refit on all samples and return ``weights`` (unit x targets).
    return_predictions : bool
        Return the cross-validated ``prediction`` with the brain's dims.
    n_permutations : int
        If > 0, p-values of the pooled held-out score (``pvalue``) under the ``null`` and FDR-corrected
        ``pvalue_fdr`` / ``significant`` via :func:`nb.stats.fdr`.
    fdr_alpha : float
    random_state : int
    gap : int, "auto" or None
        Samples left out of the training set on each side of every validation block (and of every inner
        alpha-selection block). ``"auto"`` (default): for continuous ``(time, ...)`` data in contiguous folds,
        the lag beyond which features x targets stop being autocorrelated
        (:func:`neurobridge.stats.autocorrelation_length`, product of the two autocorrelations < 0.01);
        0 for stimulus-locked data and for folds grouped by run. Without it, slow drifts (fMRI at TR 2 s,
        filtered M/EEG) leak across fold boundaries: unrelated AR(1) series at phi 0.97 score r = +0.09.
    null : {"auto", "permutation", "circular", "block", "phase"}
        The null of ``n_permutations``. ``"auto"`` (default): ``"circular"`` shifts of the predicted series
        against the recorded one (by at least the gap) for continuous ``(time, ...)`` data, which keep the
        autocorrelation of both; ``"permutation"`` of samples (whole stimuli / groups) for stimulus-locked
        data, which are exchangeable. ``"block"`` permutes blocks of gap length, ``"phase"`` uses
        phase-randomised surrogates of the recording. Shuffling time points of an autocorrelated series
        destroys the structure that produced the score: 36% false positives at p <= 0.05 for AR(1) at 0.97.
    progress : bool, optional
        Progress bar over the outer folds: ``True``/``False``; ``None`` (default, automatic) shows it only
        when someone watches: stderr is a terminal or Jupyter, and ``TQDM_DISABLE`` is unset
        (:func:`neurobridge.core.progress_enabled`; ``nb.config_context(progress=...)`` sets the default).
        :func:`layer_sweep` shows one bar over layers instead.

    Returns
    -------
    xr.Dataset
        Over the brain's target dims with its coords and attrs: ``score`` (mean held-out score),
        ``score_fold`` (fold, ...), ``alpha`` (fold, ...), ``inner_score`` (fold, ...: validation score of
        the chosen alpha on the training folds), optionally ``weights``, ``prediction``, ``pvalue``.

    Examples
    --------
    >>> import neurobridge as nb
    >>> rng = np.random.default_rng(0)
    >>> f = nb.core.activations(rng.normal(size=(40, 5)), stimulus=np.arange(40))
    >>> b = nb.core.fmri_responses(f.values @ rng.normal(size=(5, 3)), stimulus=np.arange(40), dim="stimulus")
    >>> res = fit_encoding(f, b, alphas=[1e-3, 1.0], progress=False)
    >>> res.score.dims, bool((res.score > 0.9).all())
    (('voxel',), True)
    """
    if scoring not in _SCORES:
        raise ValueError(f"scoring must be 'r2' or 'correlation', got {scoring!r}")
    design = prepare_design(features, brain, groups=groups, average_repetitions=average_repetitions)
    n = design.X.shape[0]
    null = resolve_null(design, null)
    gap_n = resolve_gap(design, gap)
    folds = make_folds(n, cv, design.groups, gap=gap_n)
    est = estimator if estimator is not None else _default_estimator(design, alphas, scoring)
    preds, fold_scores, fold_alphas, inner = _crossval(design, est, folds, _SCORES[scoring], progress, gap_n)
    fold_lead = [("fold", np.arange(len(folds)))]
    tpl = design.target_template
    data = {
        "score": _unflatten(fold_scores.mean(0), tpl, "score"),
        "score_fold": _unflatten(fold_scores, tpl, "score_fold", fold_lead),
        "alpha": _unflatten(fold_alphas, tpl, "alpha", fold_lead),
        "inner_score": _unflatten(inner, tpl, "inner_score", fold_lead),
    }
    data["score"].attrs.update(metric=scoring, n_folds=len(folds))
    if return_predictions:
        shape_lead = [(design.sample_dim, np.arange(n))]
        data["prediction"] = _unflatten(preds, tpl, "prediction", shape_lead)
    if n_permutations > 0:
        from ..stats import fdr

        p, pooled = _permutation_pvalues(design, preds, folds, _SCORES[scoring], n_permutations, random_state,
                                         null=null, min_shift=max(gap_n, 1))
        data["pooled_score"] = _unflatten(pooled, tpl, "pooled_score")
        data["pvalue"] = _unflatten(p, tpl, "pvalue")
        res = fdr(p, alpha=fdr_alpha)
        data["pvalue_fdr"] = _unflatten(np.asarray(res.pvalues), tpl, "pvalue_fdr")
        data["significant"] = _unflatten(np.asarray(res.reject), tpl, "significant")
    if return_weights:
        full = clone(est)
        if _fit_supports_groups(full) and design.groups is not None:
            full.fit(design.X, design.Y, groups=design.groups)
        else:
            full.fit(design.X, design.Y)
        coef = np.asarray(full.coef_, dtype=float).reshape(design.Y.shape[1], -1).T  # (unit, targets)
        data["weights"] = _unflatten(coef, tpl, "weights", [("unit", design.unit_index.values)])
    attrs = {"metric": scoring, "n_samples": int(n), "n_features": int(design.X.shape[1]),
             "estimator": type(est).__name__, "sample_dim": design.sample_dim, "gap": gap_n}
    if n_permutations > 0:
        attrs["null"] = null
    ds = xr.Dataset(data, attrs=attrs)
    return ds


def _layers_of(tree: xr.DataTree) -> list[str]:
    names = tree.attrs.get("layers")
    if names is None:
        names = [k for k in tree.children]
    names = [str(n) for n in (names if isinstance(names, (list, tuple, np.ndarray)) else [names])]
    missing = [n for n in names if n not in tree.children or "activations" not in tree[n].dataset]
    if missing:
        raise SchemaError(f"activation tree lacks nodes with an 'activations' variable for layers {missing[:5]}; "
                          "build it with nb.extract.activations(...) (root attr 'layers', one node per layer)")
    if not names:
        raise SchemaError("activation tree has no layers")
    return names


def layer_sweep(
    tree: xr.DataTree, brain: xr.DataArray, *, layers: Sequence[str] | None = None, estimator=None, cv=5,
    groups=None, scoring: str = "r2", alphas=DEFAULT_ALPHAS, average_repetitions: bool = False,
    gap: int | Literal["auto"] | None = "auto", progress: bool | None = None,
) -> xr.Dataset:
    """Encoding score of every layer of an activation tree, and the best layer per target chosen without peeking.

    For each outer fold and layer, the estimator is fit on the training part (inner CV picks alpha and
    gives an inner validation score); the held-out part is predicted. The best layer of a target is the
    one with the highest *inner* score in that fold, so ``best_score`` (its held-out score, averaged
    over folds) is an unbiased estimate of what layer selection achieves.

    Parameters
    ----------
    tree : xr.DataTree
        Root attr ``layers`` (ordered names) and one child per layer with variable ``activations``
        ``(stimulus, unit)``, as written by ``nb.extract.activations``.
    brain : xr.DataArray
    layers : sequence of str, optional
        Subset of layers (default: all, in the tree's order).
    estimator, cv, groups, scoring, alphas, average_repetitions, gap, progress
        As :func:`fit_encoding` (the gap of ``"auto"`` is the largest over layers).

    Returns
    -------
    xr.Dataset
        ``score`` (layer, ...) held-out score per layer, ``alpha`` (layer, fold, ...), ``best_layer`` (...)
        the layer chosen most often on training folds, ``best_score`` (...) held-out score of the layer
        chosen in each fold, ``selected`` (fold, ...) the layer chosen per fold.

    Examples
    --------
    >>> import neurobridge as nb
    >>> rng = np.random.default_rng(0); ids = np.arange(40)
    >>> acts = {f"l{i}": rng.normal(size=(40, 4)) for i in range(2)}
    >>> tree = xr.DataTree.from_dict({"/": xr.Dataset(attrs={"layers": ["l0", "l1"]}),
    ...     **{k: xr.Dataset({"activations": nb.core.activations(v, stimulus=ids)}) for k, v in acts.items()}})
    >>> brain = nb.core.fmri_responses(acts["l1"] @ rng.normal(size=(4, 3)), stimulus=ids, dim="stimulus")
    >>> res = layer_sweep(tree, brain, alphas=[1e-2, 1.0], progress=False)
    >>> res.best_layer.values.tolist()
    ['l1', 'l1', 'l1']
    """
    if scoring not in _SCORES:
        raise ValueError(f"scoring must be 'r2' or 'correlation', got {scoring!r}")
    names = list(layers) if layers is not None else _layers_of(tree)
    designs = {}
    for name in names:
        if name not in tree.children:
            raise SchemaError(f"layer {name!r} not in the tree; layers: {list(tree.children)[:10]}")
        designs[name] = prepare_design(tree[name]["activations"], brain, groups=groups,
                                       average_repetitions=average_repetitions)
    first = designs[names[0]]
    for name, d in designs.items():
        if d.Y.shape != first.Y.shape or not np.array_equal(d.Y, first.Y):
            raise SchemaError(f"layer {name!r} covers different stimuli than layer {names[0]!r}; "
                              "every layer must have activations for the same stimuli")
    gap_n = max(resolve_gap(d, gap) for d in designs.values())
    folds = make_folds(first.X.shape[0], cv, first.groups, gap=gap_n)
    scores, inner, alphas_out = [], [], []
    for name in progress_bar(names, desc="layers", progress=progress, unit="layer"):
        est = estimator if estimator is not None else RidgeCV(alphas=alphas, scoring=scoring)
        _, fs, fa, fi = _crossval(designs[name], est, folds, _SCORES[scoring], False, gap_n)
        scores.append(fs)
        inner.append(fi)
        alphas_out.append(fa)
    S = np.stack(scores)  # (layer, fold, target)
    inner_arr = np.stack(inner)
    if np.isnan(inner_arr).any():
        raise ValueError("layer selection needs an estimator with an inner validation score (best_score_), "
                         "such as RidgeCV / BandedRidgeCV")
    sel = inner_arr.argmax(0)  # (fold, target), chosen on training folds only
    best_held = np.take_along_axis(S, sel[None], 0)[0].mean(0)
    counts = np.stack([(sel == i).sum(0) for i in range(len(names))])  # (layer, target)
    best_layer = np.asarray(names, dtype=object)[counts.argmax(0)]
    tpl = first.target_template
    lay = [("layer", np.asarray(names))]
    fold = [("fold", np.arange(len(folds)))]
    ds = xr.Dataset({
        "score": _unflatten(S.mean(1), tpl, "score", lay),
        "alpha": _unflatten(np.stack(alphas_out), tpl, "alpha", lay + fold),
        "best_layer": _unflatten(best_layer.astype(str), tpl, "best_layer"),
        "best_score": _unflatten(best_held, tpl, "best_score"),
        "selected": _unflatten(np.asarray(names)[sel], tpl, "selected", fold),
    }, attrs={"metric": scoring, "n_folds": len(folds), "layers": names, "gap": gap_n})
    return ds

