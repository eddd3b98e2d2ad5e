"""Decoding scores reduced in torch over the sample axis, batched over any leading dims.

Classification scorers take predicted class codes ``(..., n)`` (accuracy, balanced accuracy) or scores
``(..., n, k)`` (ROC AUC: ``k == 1`` is the positive-class score of a binary problem, ``k == n_classes`` one
score per class, one-vs-rest); regression scorers take predictions ``(..., n, k)`` against ``y`` ``(n, k)``.
Each gives the same number as its scikit-learn namesake on every slice.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["CLASSIFICATION_SCORINGS", "REGRESSION_SCORINGS", "score", "chance_level"]

CLASSIFICATION_SCORINGS = ("accuracy", "balanced_accuracy", "roc_auc")
REGRESSION_SCORINGS = ("r2", "r")


def _accuracy(codes: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (codes == y).sum(-1, dtype=torch.float64) / codes.shape[-1]


def _balanced_accuracy(codes: torch.Tensor, y: torch.Tensor, n_classes: int) -> torch.Tensor:
    dtype = torch.float64
    # sklearn: mean recall over the classes present in y_true
    onehot = torch.nn.functional.one_hot(y, n_classes).to(dtype)  # (n, K)
    counts = onehot.sum(0)
    present = counts > 0
    correct = (codes == y).to(dtype)  # (..., n)
    recall = (correct @ onehot[:, present]) / counts[present]
    return recall.mean(-1)


def _auc_binary(s: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """Mann-Whitney AUC of scores ``s`` (..., n) for the positives ``pos`` (n,), ties counted 1/2.

    One sort per slice; the average rank of a run of tied scores comes from running max/min of the run
    boundaries (linear), not from searches into the sorted scores."""
    srt, order = s.sort(-1)
    p = pos.to(s.dtype)[order]  # positives in sorted order
    n = s.shape[-1]
    ar = torch.arange(n, device=s.device)
    new = torch.ones(srt.shape, dtype=torch.bool, device=s.device)
    new[..., 1:] = srt[..., 1:] != srt[..., :-1]  # a run of equal scores starts here
    if bool(new.all()):
        rank = (ar + 1).to(s.dtype)
    else:
        first = torch.where(new, ar, torch.zeros_like(ar)).cummax(-1).values
        last_flag = torch.ones_like(new)
        last_flag[..., :-1] = new[..., 1:]  # a run ends here
        last = torch.where(last_flag, ar, torch.full_like(ar, n - 1)).flip(-1).cummin(-1).values.flip(-1)
        rank = (first + last + 2).to(s.dtype) / 2  # average 1-based rank of the run
    n_pos = pos.sum().to(s.dtype)
    n_neg = pos.numel() - n_pos
    return ((rank * p).sum(-1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def _roc_auc(scores: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if scores.shape[-1] == 1:
        return _auc_binary(scores[..., 0], y == 1)
    present = torch.unique(y).tolist()
    return torch.stack([_auc_binary(scores[..., k], y == k) for k in present], -1).mean(-1)


def _r2(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # sklearn r2_score, multioutput="uniform_average", force_finite=True
    yc = y - y.mean(0)
    sst = yc.square().sum(0)
    sse = (pred - y).square().sum(-2)
    ok = sst > 0
    safe = torch.where(ok, sst, torch.ones_like(sst))
    r2 = torch.where(ok, 1 - sse / safe, torch.where(sse == 0, torch.ones_like(sse), torch.zeros_like(sse)))
    return r2.mean(-1)


def _pearson(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    pc = pred - pred.mean(-2, keepdim=True)
    yc = y - y.mean(0)
    num = (pc * yc).sum(-2)
    den = (pc.square().sum(-2) * yc.square().sum(0)).sqrt()
    r = torch.where(den > 0, num / torch.where(den > 0, den, torch.ones_like(den)), torch.zeros_like(num))
    return r.mean(-1)


def score(scoring: str, resp: torch.Tensor, y: torch.Tensor, n_classes: int = 0) -> torch.Tensor:
    """Score responses ``resp`` against ``y``, reducing the sample axis.

    Parameters
    ----------
    scoring : {"accuracy", "balanced_accuracy", "roc_auc", "r2", "r"}
    resp : tensor
        Predicted class codes ``(..., n)`` (accuracy, balanced accuracy), class scores ``(..., n, k)``
        (roc_auc) or predictions ``(..., n, k)`` (r2, r).
    y : tensor
        Class codes ``(n,)`` (int64) or targets ``(n, k)``.
    n_classes : int
        Number of classes (classification).

    Returns
    -------
    tensor, shape ``resp.shape[:-1]`` (codes) or ``resp.shape[:-2]``

    Examples
    --------
    >>> y = torch.tensor([0, 0, 1, 1])
    >>> float(score("accuracy", torch.tensor([0, 1, 1, 1]), y))
    0.75
    >>> float(score("roc_auc", torch.tensor([[0.1], [0.4], [0.35], [0.8]]), y))
    0.75
    """
    if scoring == "accuracy":
        return _accuracy(resp, y)
    if scoring == "balanced_accuracy":
        return _balanced_accuracy(resp, y, n_classes)
    if scoring == "roc_auc":
        return _roc_auc(resp, y)
    if scoring == "r2":
        return _r2(resp, y)
    if scoring == "r":
        return _pearson(resp, y)
    raise ValueError(f"scoring must be one of {CLASSIFICATION_SCORINGS + REGRESSION_SCORINGS}, got {scoring!r}")


def chance_level(scoring: str, codes: np.ndarray | None = None) -> float:
    """The score of a decoder that learned nothing, from the label distribution.

    Accuracy: the proportion of the most frequent class (what predicting it always scores); balanced
    accuracy: ``1 / n_classes``; ROC AUC: 0.5; r and R2: 0.

    Held-out scores of a decoder whose predictions do not depend on the labels average to these values for
    balanced accuracy and ROC AUC, whatever the class proportions, and for accuracy when the classes are
    balanced. For accuracy on unbalanced classes the majority rate is only an upper reference: a decoder
    that learned nothing rarely always guesses the commonest class and scores less on average (guessing in
    proportion to the classes scores ``sum(p_c ** 2)``), so compare unbalanced designs with balanced accuracy
    or ROC AUC, or against a permutation null.

    Examples
    --------
    >>> chance_level("accuracy", np.array([0, 0, 0, 1]))
    0.75
    >>> chance_level("balanced_accuracy", np.array([0, 0, 0, 1]))
    0.5
    """
    if scoring == "accuracy":
        counts = np.bincount(np.asarray(codes))
        return float(counts.max() / counts.sum())
    if scoring == "balanced_accuracy":
        return 1.0 / len(np.unique(codes))
    if scoring == "roc_auc":
        return 0.5
    return 0.0
