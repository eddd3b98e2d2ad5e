"""Held-out layer selection: choose the best layer on one split, score it on the other.

Picking the layer with the best score and reporting that same score is optimistic: with noisy data the
maximum over layers is biased upwards even when no layer relates to the brain. The benchmark therefore
chooses the layer on one part of the data (a subset of stimuli, subjects or time points) and reports the
score of the chosen layer on the disjoint rest, averaged over several splits.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

__all__ = ["HeldOutSelection", "select_layer_heldout", "half_splits", "subject_splits"]


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


def select_layer_heldout(
    select_scores: np.ndarray, test_scores: np.ndarray, layers: Sequence[str]
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

    Returns
    -------
    HeldOutSelection

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
    return HeldOutSelection(float(np.nanmean(split_scores)), layers[best], frequency, chosen, split_scores)


def half_splits(n: int, n_splits: int, *, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Random halvings of ``n`` items into (selection, test) index arrays; each halving is used both ways.

    Parameters
    ----------
    n : int
        Number of items (stimuli or time points); at least 4.
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
