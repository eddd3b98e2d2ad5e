"""Held-out layer selection: the pure logic against a loop reference, and the splits."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from neurobridge.benchmark import half_splits, select_layer_heldout, subject_splits


def _reference(sel, test):
    chosen = [int(np.argmax(row)) for row in sel]
    return chosen, float(np.mean([test[i, c] for i, c in enumerate(chosen)]))


def test_select_layer_heldout_matches_loop_reference():
    rng = np.random.default_rng(0)
    sel, test = rng.normal(size=(15, 6)), rng.normal(size=(15, 6))
    out = select_layer_heldout(sel, test, [f"l{i}" for i in range(6)])
    chosen, score = _reference(sel, test)
    assert out.chosen.tolist() == chosen
    assert out.heldout_score == pytest.approx(score)
    assert out.frequency.sum() == pytest.approx(1.0)
    counts = np.bincount(chosen, minlength=6)
    assert counts[int(out.selected_layer[1:])] == counts.max()


def test_heldout_score_is_the_test_score_not_the_selection_maximum():
    # the layer looking best on the selection split is mediocre on the test split: held-out reports that
    sel = np.array([[0.9, 0.1, 0.2]])
    test = np.array([[0.05, 0.8, 0.3]])
    out = select_layer_heldout(sel, test, ["a", "b", "c"])
    assert out.selected_layer == "a"
    assert out.heldout_score == pytest.approx(0.05)


def test_selection_removes_the_optimism_of_the_max_under_the_null():
    # every layer has true score 0; the in-sample max over 10 noisy layers is biased upwards, held-out is not
    rng = np.random.default_rng(1)
    n_rep, n_layers = 400, 10
    sel = rng.normal(scale=0.1, size=(n_rep, n_layers))
    test = rng.normal(scale=0.1, size=(n_rep, n_layers))
    out = select_layer_heldout(sel, test, [str(i) for i in range(n_layers)])
    assert sel.max(axis=1).mean() > 0.1  # E[max of 10 N(0, .1)] ~ 0.15
    assert abs(out.heldout_score) < 0.02


def test_ties_in_frequency_go_to_the_better_heldout_layer():
    sel = np.array([[1.0, 0.0], [0.0, 1.0]])
    test = np.array([[0.1, 0.0], [0.0, 0.5]])
    assert select_layer_heldout(sel, test, ["a", "b"]).selected_layer == "b"


def test_nan_layers_are_never_chosen():
    sel = np.array([[np.nan, 0.2], [np.nan, 0.1]])
    out = select_layer_heldout(sel, sel, ["dead", "ok"])
    assert out.chosen.tolist() == [1, 1]


def test_selection_errors():
    with pytest.raises(ValueError, match="n_splits, n_layers"):
        select_layer_heldout(np.zeros((2, 3)), np.zeros((3, 2)), ["a", "b", "c"])
    with pytest.raises(ValueError, match="no layer has a finite"):
        select_layer_heldout(np.full((1, 2), np.nan), np.zeros((1, 2)), ["a", "b"])
    with pytest.raises(ValueError, match="2 layer names"):
        select_layer_heldout(np.zeros((1, 3)), np.zeros((1, 3)), ["a", "b"])


def test_half_splits_are_disjoint_halves_used_both_ways():
    splits = half_splits(11, 6, seed=3)
    assert len(splits) == 6
    for a, b in splits:
        assert len(np.intersect1d(a, b)) == 0
        assert sorted(np.concatenate([a, b]).tolist()) == list(range(11))
        assert abs(len(a) - len(b)) <= 1
    for (a1, b1), (a2, b2) in zip(splits[0::2], splits[1::2], strict=True):
        assert np.array_equal(a1, b2) and np.array_equal(b1, a2)
    assert [a.tolist() for a, _ in half_splits(11, 6, seed=3)] == [a.tolist() for a, _ in splits]
    with pytest.raises(ValueError, match="at least 4"):
        half_splits(3, 2)


def test_subject_splits_enumerate_all_halves():
    splits = subject_splits(4)
    assert [tuple(a) for a, _ in splits] == list(itertools.combinations(range(4), 2))
    assert all(sorted([*a, *b]) == [0, 1, 2, 3] for a, b in splits)
    assert len(subject_splits(12, max_splits=7)) == 7
    with pytest.raises(ValueError, match="at least 2 subjects"):
        subject_splits(1)
