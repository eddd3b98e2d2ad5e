"""Held-out layer selection: choose the best layer on one split, score it on the other.

Picking the layer with the best score and reporting that same score is optimistic: with noisy data the
maximum over layers is biased upwards even when no layer relates to the brain. The benchmark therefore
chooses the layer on one part of the data (half of the stimuli, or half of the subjects) and reports the
score of the chosen layer on the disjoint rest, averaged over several splits.

What may be split, and why not time
-----------------------------------
The held-out score is unbiased only when the test part is independent of the selection part under the
null. Disjoint halves of the stimuli are: if a layer's activations are unrelated to the brain, the pairs of
one half share no stimulus, no measurement noise and no model feature with the pairs of the other, so the
mean held-out score of an unrelated model is exactly 0 whatever the noise structure over time. Time points
of time-resolved (M/EEG) data are never independent in that sense: neighbouring samples share filtered
noise (alternate samples gave a held-out score equal to the in-sample maximum: +0.09 on 200 null data sets with 8
stimuli and smoothed noise, +0.17 with a persistent stimulus geometry), and even contiguous blocks separated by a
100 ms gap (5 x the 20 ms noise smoothing) share the brain's stimulus geometry, which persists for hundreds
of milliseconds (0.000 without it, +0.109 with it). Splitting time was therefore removed: time-resolved benchmarks
split stimuli (-0.002 +- 0.003 over 1000 such nulls) or subjects. Halves of subjects hold out subject noise but
not the stimuli, so they estimate how the chosen layer does on new subjects for the same stimuli; under a null
where all subjects share a stimulus geometry unrelated to the model the score stays above 0 (+0.063 with 16
stimuli, +0.011 with 92; see ``subject_splits``).

:func:`select_layer_heldout` also gives a permutation p-value of the held-out score: the whole selection is
repeated on the same splits after relabelling the brain data's stimuli (one permutation for every subject
and time point). Under the null that the brain data are unrelated to every layer, the permuted data are
distributed as the observed ones, so the test is exact (false-positive rate alpha) for any number of stimuli.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

__all__ = ["HeldOutSelection", "select_layer_heldout", "half_splits", "subject_splits", "MIN_HALF"]

MIN_HALF = 3
"""Fewest stimuli in a half of a stimulus split (3 stimuli = 3 pairs, the fewest an RDM correlation needs)."""


class HeldOutSelection(NamedTuple):
    """Outcome of held-out layer selection over several splits."""

    heldout_score: float
    """Mean over splits of the test-split score of the layer chosen on the selection split."""
    selected_layer: str
    """The layer chosen most often (ties go to the layer with the higher mean held-out score)."""
    frequency: np.ndarray
    """Fraction of splits in which each layer was chosen, shape (n_layers,)."""
    chosen: np.ndarray
    """Index of the chosen layer in each split, shape (n_splits,)."""
    split_scores: np.ndarray
    """Test-split score of the chosen layer in each split, shape (n_splits,)."""
    pvalue: float = float("nan")
    """One-sided permutation p-value of ``heldout_score`` (NaN without a null): ``(1 + #{null >= observed}) /
    (1 + n_permutations)``."""
    null: np.ndarray = np.empty(0)
    """Held-out score of each permuted dataset, shape (n_permutations,) (empty without a null)."""


def select_layer_heldout(
    select_scores: np.ndarray, test_scores: np.ndarray, layers: Sequence[str], *,
    select_null: np.ndarray | None = None, test_null: np.ndarray | None = None,
) -> HeldOutSelection:
    """Choose a layer per split on ``select_scores`` and report its ``test_scores``.

    Parameters
    ----------
    select_scores : array, shape (n_splits, n_layers)
        Score of every layer on the selection part of each split (NaN for unusable layers).
    test_scores : array, shape (n_splits, n_layers)
        Score of every layer on the disjoint test part of the same split.
    layers : sequence of str, length n_layers
        Layer names.
    select_null, test_null : array, shape (n_permutations, n_splits, n_layers), optional
        The same scores on null data (the brain data's stimuli relabelled, the same splits): the selection is
        redone on each and its held-out score forms the null distribution of ``pvalue``. Pass both or neither.

    Returns
    -------
    HeldOutSelection
        ``pvalue`` tests "no layer relates to the brain data" against "the held-out score is larger"; it is exact
        when the null data are exchangeable with the observed data under that hypothesis (stimulus relabelling
        of the brain data, with stimuli sampled independently of the model).

    Raises
    ------
    ValueError
        Shapes differ, no split, or every layer's selection score is NaN in some split.

    Examples
    --------
    >>> sel = np.array([[0.1, 0.5], [0.4, 0.2]])
    >>> test = np.array([[0.3, 0.2], [0.6, 0.1]])
    >>> out = select_layer_heldout(sel, test, ["a", "b"])
    >>> out.chosen.tolist(), round(out.heldout_score, 2)
    ([1, 0], 0.4)
    >>> rng = np.random.default_rng(0)
    >>> null = rng.normal(scale=0.1, size=(99, 2, 2))
    >>> round(select_layer_heldout(sel, test, ["a", "b"], select_null=null, test_null=null[:, ::-1]).pvalue, 2)
    0.01
    """
    select_scores = np.asarray(select_scores, dtype=float)
    test_scores = np.asarray(test_scores, dtype=float)
    layers = list(layers)
    if select_scores.ndim != 2 or select_scores.shape != test_scores.shape:
        raise ValueError(f"select_scores and test_scores must both be (n_splits, n_layers); got "
                         f"{select_scores.shape} and {test_scores.shape}")
    n_splits, n_layers = select_scores.shape
    if n_splits == 0:
        raise ValueError("held-out layer selection needs at least one split; got none")
    if n_layers != len(layers):
        raise ValueError(f"{len(layers)} layer names for {n_layers} columns of scores")
    bad = np.all(np.isnan(select_scores), axis=1)
    if bad.any():
        raise ValueError(f"no layer has a finite selection score in split {int(np.flatnonzero(bad)[0])}; "
                         "check that the layers produce usable activations")
    chosen = np.nanargmax(select_scores, axis=1)
    split_scores = test_scores[np.arange(n_splits), chosen]
    counts = np.bincount(chosen, minlength=n_layers)
    frequency = counts / n_splits
    # the most frequent choice; ties broken by the mean held-out score when chosen
    mean_when_chosen = np.full(n_layers, -np.inf)
    for j in np.flatnonzero(counts):
        mean_when_chosen[j] = np.nanmean(split_scores[chosen == j])
    best = max(range(n_layers), key=lambda j: (counts[j], mean_when_chosen[j]))
    observed = float(np.nanmean(split_scores))
    if (select_null is None) != (test_null is None):
        raise ValueError("pass both select_null and test_null (the null scores of both parts), or neither")
    if select_null is None:
        return HeldOutSelection(observed, layers[best], frequency, chosen, split_scores)
    null = _null_heldout(np.asarray(select_null, dtype=float), np.asarray(test_null, dtype=float),
                         (n_splits, n_layers))
    valid = np.isfinite(null)
    p = (1.0 + np.sum(null[valid] >= observed - 1e-12)) / (1.0 + valid.sum()) if np.isfinite(observed) else np.nan
    return HeldOutSelection(observed, layers[best], frequency, chosen, split_scores, float(p), null)


def _null_heldout(select_null: np.ndarray, test_null: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Held-out score of each null dataset: the selection of :func:`select_layer_heldout`, vectorised."""
    if select_null.ndim != 3 or select_null.shape != test_null.shape or select_null.shape[1:] != shape:
        raise ValueError(f"select_null and test_null must both be (n_permutations, {shape[0]}, {shape[1]}); got "
                         f"{select_null.shape} and {test_null.shape}")
    if select_null.shape[0] == 0:
        raise ValueError("select_null holds no permutation; pass None for no p-value")
    usable = ~np.all(np.isnan(select_null), axis=2)  # (n_permutations, n_splits)
    pick = np.argmax(np.where(np.isnan(select_null), -np.inf, select_null), axis=2)  # nanargmax without raising
    scores = np.take_along_axis(test_null, pick[..., None], axis=2)[..., 0]
    ok = usable & np.isfinite(scores)
    n = ok.sum(axis=1)
    total = np.where(ok, scores, 0.0).sum(axis=1)
    return np.where(n > 0, total / np.maximum(n, 1), np.nan)


def half_splits(n: int, n_splits: int, *, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Random halvings of ``n`` items into (selection, test) index arrays; each halving is used both ways.

    The items must be independent samples (stimuli), not neighbouring samples of a smooth series (time points):
    see the module docstring.

    Parameters
    ----------
    n : int
        Number of items (stimuli); at least 4 (an RDM correlation needs halves of at least :data:`MIN_HALF`).
    n_splits : int
        Number of (selection, test) pairs returned (rounded up to an even number).
    seed : int
        Seed of the random permutations.

    Examples
    --------
    >>> splits = half_splits(6, 2, seed=0)
    >>> [len(a) for a, b in splits], sorted(np.concatenate(splits[0]).tolist())
    ([3, 3], [0, 1, 2, 3, 4, 5])
    """
    if n < 4:
        raise ValueError(f"held-out selection over halves needs at least 4 items, got {n}")
    if n_splits < 1:
        raise ValueError(f"n_splits must be >= 1, got {n_splits}")
    rng = np.random.default_rng(seed)
    out: list[tuple[np.ndarray, np.ndarray]] = []
    while len(out) < n_splits:
        perm = rng.permutation(n)
        a, b = np.sort(perm[: n // 2]), np.sort(perm[n // 2:])
        out += [(a, b), (b, a)]
    return out


def subject_splits(n_subjects: int, *, max_splits: int = 20, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Every split of subjects into two halves (selection, test), or ``max_splits`` random ones.

    Held out over subjects only: both halves see the same stimuli, so the held-out score estimates the chosen
    layer's score on new subjects *for these stimuli*. A model unrelated to the brain still matches the
    geometry that all subjects share for these stimuli by chance, and the selection keeps that chance match
    (on null data sharing one geometry across 4 subjects: +0.063 with 16 stimuli, +0.011 with 92, against an
    in-sample best of +0.071 and +0.013); split stimuli to generalise to new stimuli. The permutation p-value of
    the held-out score stays exact with either split.

    Examples
    --------
    >>> [tuple(a.tolist()) for a, _ in subject_splits(4)]
    [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    """
    if n_subjects < 2:
        raise ValueError(f"splitting subjects needs at least 2 subjects, got {n_subjects}; "
                         "use split='stimulus' for group-level data")
    k = n_subjects // 2
    combos = list(itertools.combinations(range(n_subjects), k))
    if len(combos) > max_splits:
        rng = np.random.default_rng(seed)
        combos = [combos[i] for i in sorted(rng.choice(len(combos), max_splits, replace=False))]
    everyone = np.arange(n_subjects)
    return [(np.array(c), np.setdiff1d(everyone, c)) for c in combos]
