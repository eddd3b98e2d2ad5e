"""Cross-validation folds: K-fold, grouped K-fold, checks that groups never straddle folds."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["make_folds", "check_folds", "purge"]

Fold = tuple[np.ndarray, np.ndarray]


def make_folds(n_samples: int, cv: Any = 5, groups: Sequence | np.ndarray | None = None, *, gap: int = 0,
               positions: np.ndarray | None = None) -> list[Fold]:
    """Train/validation index pairs for ``n_samples`` samples.

    For time series, ``gap`` leaves out of each training set the samples within ``gap`` samples of any of its
    validation samples (purging): an autocorrelated series lets a fit follow the drift across a fold
    boundary otherwise, and held-out scores of unrelated series come out positive.

    Parameters
    ----------
    n_samples : int
    cv : int, sklearn splitter, or iterable of (train, val) index pairs
        An int gives contiguous K-fold (no shuffling: safe for time series) or, with ``groups``,
        ``GroupKFold`` (every group in exactly one validation fold).
    groups : array, shape (n_samples,), optional
        Group label per sample (run, session, or stimulus id for repeated presentations).
    gap : int
        Samples left out on each side of every validation block (0: none). Use
        :func:`neurobridge.stats.autocorrelation_length` of features and targets (plus the largest delay of a
        delayed design); :func:`fit_encoding` does so by default for ``(time, ...)`` data.
    positions : array, shape (n_samples,), optional
        Time index of every sample, for the gap (default ``arange(n_samples)``): inner folds of a training set
        pass the original indices, so its pieces on either side of the outer validation block stay apart.

    Returns
    -------
    folds : list of (train, val) int64 arrays

    Raises
    ------
    ValueError
        Too few samples or groups for ``cv`` folds, empty folds, or a group in both the train and the
        validation part of a fold.

    Examples
    --------
    >>> [len(v) for _, v in make_folds(10, 5)]
    [2, 2, 2, 2, 2]
    >>> make_folds(10, 5, gap=2)[1][0].tolist()   # validation [2, 3]: training drops 0-1 and 4-5
    [6, 7, 8, 9]
    """
    n_samples = int(n_samples)
    if groups is not None:
        groups = np.asarray(groups)
        if groups.shape != (n_samples,):
            raise ValueError(f"groups must have one label per sample ({n_samples}), got shape {groups.shape}")
    if isinstance(cv, (int, np.integer)) and not isinstance(cv, bool):
        k = int(cv)
        if k < 2:
            raise ValueError(f"cv must be >= 2 folds, got cv={k}")
        if groups is None:
            if n_samples < k:
                raise ValueError(f"cross-validation with cv={k} folds needs at least {k} samples, found "
                                 f"n_samples={n_samples}; use fewer folds (cv=...) or more samples")
            bounds = np.linspace(0, n_samples, k + 1).round().astype(int)
            idx = np.arange(n_samples)
            folds = [(np.concatenate([idx[: bounds[i]], idx[bounds[i + 1]:]]), idx[bounds[i]: bounds[i + 1]])
                     for i in range(k)]
        else:
            codes, uniques = pd.factorize(groups)
            if len(uniques) < k:
                raise ValueError(f"grouped cross-validation with cv={k} folds needs at least {k} distinct groups, "
                                 f"found {len(uniques)} (n_samples={n_samples}); use fewer folds or more groups")
            from sklearn.model_selection import GroupKFold

            folds = [(np.asarray(tr), np.asarray(va)) for tr, va in GroupKFold(k).split(np.zeros(n_samples), groups=codes)]
    elif hasattr(cv, "split"):
        if groups is None:
            n_splits = cv.get_n_splits()
            if isinstance(n_splits, (int, np.integer)) and n_samples < n_splits:
                raise ValueError(f"cross-validation with {n_splits} splits needs at least {n_splits} samples, "
                                 f"found n_samples={n_samples}; use fewer folds or more samples")
        folds = [(np.asarray(tr), np.asarray(va)) for tr, va in cv.split(np.zeros((n_samples, 1)), groups=groups)]
    elif isinstance(cv, Iterable) and not isinstance(cv, (str, bytes)):
        folds = [(np.asarray(tr), np.asarray(va)) for tr, va in cv]
    else:
        raise ValueError(f"cv must be an int, a scikit-learn splitter or a list of (train, val) index pairs, got {cv!r}")
    gap = int(gap)
    if gap < 0:
        raise ValueError(f"gap must be >= 0 samples, got {gap}")
    if gap:
        folds = purge(folds, gap, positions if positions is not None else np.arange(n_samples))
    return check_folds(folds, n_samples, groups)


def purge(folds: list[Fold], gap: int, positions: np.ndarray) -> list[Fold]:
    """Drop from each training set the samples within ``gap`` positions of a validation sample.

    Examples
    --------
    >>> purge([(np.array([0, 1, 2, 5, 6]), np.array([3, 4]))], 1, np.arange(7))[0][0].tolist()
    [0, 1, 6]
    """
    positions = np.asarray(positions)
    out = []
    for i, (tr, va) in enumerate(folds):
        tr, va = np.asarray(tr), np.asarray(va)
        pv = np.sort(positions[va])
        pt = positions[tr]
        j = np.clip(np.searchsorted(pv, pt), 1, len(pv) - 1) if len(pv) > 1 else np.zeros(len(pt), dtype=int)
        near = np.minimum(np.abs(pt - pv[j - 1 if len(pv) > 1 else 0]), np.abs(pt - pv[j]))
        keep = tr[near > gap]
        if len(keep) < 2:
            raise ValueError(f"fold {i}: a gap of {gap} samples on each side of its validation block leaves "
                             f"{len(keep)} training samples (of {len(tr)}); use fewer folds, a smaller gap= or a "
                             "longer recording")
        out.append((keep, va))
    return out


def check_folds(folds: list[Fold], n_samples: int, groups=None) -> list[Fold]:
    """Validate folds: integer indices in range, nothing empty, groups not straddling train and validation.

    Examples
    --------
    >>> folds = check_folds([(np.array([0, 1]), np.array([2, 3]))], 4)
    >>> len(folds)
    1
    """
    if not folds:
        raise ValueError("cv produced no folds")
    out = []
    for i, (tr, va) in enumerate(folds):
        tr = np.asarray(tr)
        va = np.asarray(va)
        if tr.dtype == bool:
            tr = np.flatnonzero(tr)
        if va.dtype == bool:
            va = np.flatnonzero(va)
        tr = tr.astype(np.int64)
        va = va.astype(np.int64)
        if len(tr) < 2 or len(va) < 1:
            raise ValueError(f"fold {i} has {len(tr)} training and {len(va)} validation samples; every fold needs "
                             f">= 2 training samples and >= 1 validation sample (n_samples={n_samples}); use fewer folds")
        if tr.min() < 0 or va.min() < 0 or tr.max() >= n_samples or va.max() >= n_samples:
            raise ValueError(f"fold {i} has indices outside [0, {n_samples})")
        if np.intersect1d(tr, va).size:
            raise ValueError(f"fold {i} uses the same samples for training and validation")
        if groups is not None:
            straddle = np.intersect1d(np.asarray(groups)[tr], np.asarray(groups)[va])
            if straddle.size:
                raise ValueError(
                    f"fold {i}: group(s) {straddle[:5].tolist()} appear in both training and validation samples; "
                    "repetitions of a stimulus (or samples of a run) must stay in one fold: build folds with "
                    "GroupKFold / make_folds(n, cv, groups=...) instead")
        out.append((tr, va))
    return out
