"""Retrieval decoding: brain -> model embedding, scored by identifying each held-out stimulus among candidates.

A ridge decoder (the solvers of :mod:`neurobridge.encoding`, alpha by inner cross-validation) maps brain
responses to a model's embedding of the stimuli; each held-out stimulus's predicted embedding is compared
with the embeddings of the candidate stimuli:

* **top-k accuracy**: its own embedding is among the ``k`` nearest candidates (chance ``k / n_candidates``);
* **rank accuracy**: ``1 - (rank - 1) / (n_candidates - 1)`` with ``rank`` the position of its own embedding
  among the candidates (1 = nearest), averaged over queries: 1 is perfect, 0.5 chance;
* **2-vs-2 accuracy** (Mitchell et al. 2008): for every pair ``(i, j)`` of held-out stimuli (held out by the
  same fold in :func:`retrieval`), correct when ``d(p_i, e_i) + d(p_j, e_j) < d(p_i, e_j) + d(p_j, e_i)``;
  chance 0.5.

Ties (equal distances, to a tolerance of 16 machine epsilons of the largest distance) count as a random
tie-break would on average: a top-k hit counts the fraction of the tied positions within ``k``, the rank is
the mid-rank of the tie, a tied 2-vs-2 pair counts 1/2. A decoder that predicts the same vector for every
stimulus therefore scores exactly chance, not above it.

:func:`retrieval_scores` computes the three metrics on any predictions (any decoder's); :func:`retrieval`
is the labelled cross-validated entry point; ``retrieval(..., decoder="contrastive")`` swaps the ridge decoder for
the CLIP-style :class:`~neurobridge.decoding.ContrastiveDecoder` under the same folds, candidates and metrics.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch
import xarray as xr

from ..core import (
    SchemaError,
    align,
    as_tensor,
    check_finite,
    check_unique,
    cpu_threads,
    progress_bar,
    resolve_device,
    resolve_dtype,
    stimulus_ids,
)
from ._inputs import SMALL_ELEMENTS, group_labels

__all__ = ["retrieval", "retrieval_scores", "RetrievalScores", "METRICS"]

logger = logging.getLogger("neurobridge")

METRICS = ("correlation", "cosine", "euclidean")
"""Distances between predicted and candidate embeddings, as :func:`scipy.spatial.distance.cdist` names them:
``1 - Pearson r`` of the two vectors, ``1 - cosine similarity``, and the Euclidean distance."""

CANDIDATES = ("test", "all")
_TIE_EPS = 16
_CHUNK_ELEMENTS = 1 << 22


class RetrievalScores(NamedTuple):
    """Retrieval metrics of predictions against their targets (row ``i`` of each belongs to one stimulus)."""

    top_k: torch.Tensor
    """(len(k),) float64: fraction of queries whose own target is among the ``k`` nearest candidates."""
    rank_accuracy: torch.Tensor
    """() float64: mean of ``1 - (rank - 1) / (n_candidates - 1)``; 1 is perfect, 0.5 chance."""
    two_vs_two: torch.Tensor
    """() float64: 2-vs-2 accuracy over all pairs of queries; 0.5 chance."""
    rank: torch.Tensor
    """(n,) float64: 1-based (mid-)rank of each query's own target among the candidates."""
    k: tuple[int, ...]
    """The ``k`` of ``top_k``."""
    n_candidates: int
    """Candidates per query."""


# ------------------------------------------------------------------------------------------------ metrics
def _check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise ValueError(f"metric={metric!r} is not a retrieval metric; use one of {METRICS}")
    return metric


def _check_top_k(top_k) -> tuple[int, ...]:
    ks = (top_k,) if np.ndim(top_k) == 0 else tuple(top_k)
    if not ks:
        raise ValueError("top_k is empty; pass one k or several, e.g. top_k=(1, 5)")
    out = []
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"top_k must hold integers >= 1, got {top_k!r}")
        out.append(int(k))
    if len(set(out)) != len(out):
        raise ValueError(f"top_k has repeated values {list(top_k)!r}; pass each k once")
    return tuple(out)


def _check_k_fits(ks: tuple[int, ...], n_candidates: int, where: str, fix: str) -> None:
    if max(ks) > n_candidates:
        raise ValueError(f"top_k={max(ks)} exceeds the {n_candidates} candidates {where}; {fix}")


def pairwise_distances(A: torch.Tensor, B: torch.Tensor, metric: str) -> torch.Tensor:
    """Distances ``(n_a, n_b)`` between the rows of ``A`` and ``B`` (``metric`` one of :data:`METRICS`).

    A row of zero variance (correlation) or zero norm (cosine) is at distance 1 from everything: it carries
    no direction.

    Examples
    --------
    >>> A = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    >>> pairwise_distances(A, A, "cosine").tolist()
    [[0.0, 1.0], [1.0, 0.0]]
    """
    if metric == "euclidean":
        return torch.cdist(A, B, compute_mode="donot_use_mm_for_euclid_dist")
    if metric == "correlation":
        A = A - A.mean(1, keepdim=True)
        B = B - B.mean(1, keepdim=True)

    def unit(M):
        norm = torch.linalg.vector_norm(M, dim=1, keepdim=True)
        return torch.where(norm > 0, M / torch.where(norm > 0, norm, torch.ones_like(norm)), torch.zeros_like(M))

    return 1.0 - unit(A) @ unit(B).T


def _tolerance(D: torch.Tensor) -> float:
    scale = float(D.abs().max()) if D.numel() else 0.0
    return _TIE_EPS * torch.finfo(D.dtype).eps * max(scale, torch.finfo(D.dtype).tiny)


def _query_stats(D: torch.Tensor, truth: torch.Tensor, ks: tuple[int, ...], tol: float):
    """Per query (row of ``D``, own candidate ``truth``): top-k hits (q, len(ks)) and 1-based mid-ranks (q,),
    float64, in row chunks so that no more than a few million comparisons are held at once."""
    q, c = D.shape
    k_t = torch.as_tensor(ks, dtype=torch.float64, device=D.device)
    hits, ranks = [], []
    step = max(1, _CHUNK_ELEMENTS // max(c, 1))
    for s in range(0, q, step):
        Dc = D[s:s + step]
        dt = Dc.gather(1, truth[s:s + step, None])
        better = (Dc < dt - tol).sum(1, dtype=torch.float64)
        tied = ((Dc - dt).abs() <= tol).sum(1, dtype=torch.float64) - 1  # the own candidate is not a tie
        # own candidate uniformly placed among the tied positions better + 1 ... better + tied + 1
        hits.append(((k_t[None, :] - better[:, None]) / (tied[:, None] + 1)).clamp_(0, 1))
        ranks.append(1 + better + tied / 2)
    return torch.cat(hits), torch.cat(ranks)


def _pair_sums(D: torch.Tensor, rows: torch.Tensor, tol: float) -> torch.Tensor:
    """2-vs-2 outcomes summed over partners ``j != i`` for each ``i`` in ``rows`` of the square ``D`` (own
    candidate on the diagonal), float64 (ties 1/2)."""
    n = D.shape[0]
    diag = D.diagonal()
    out = []
    step = max(1, _CHUNK_ELEMENTS // max(n, 1))
    for s in range(0, len(rows), step):
        r = rows[s:s + step]
        same = diag[r][:, None] + diag[None, :]  # d(p_i, e_i) + d(p_j, e_j)
        cross = D[r] + D[:, r].T  # d(p_i, e_j) + d(p_j, e_i)
        win = (same < cross - 2 * tol).to(torch.float64) + 0.5 * ((same - cross).abs() <= 2 * tol).to(torch.float64)
        win[torch.arange(len(r), device=D.device), r] = 0.0
        out.append(win.sum(1))
    return torch.cat(out)


def retrieval_scores(pred, target, *, metric: str = "correlation", top_k: int | Sequence[int] = (1, 5)
                     ) -> RetrievalScores:
    """Top-k, rank and 2-vs-2 accuracy of predicted embeddings against their targets, among all targets.

    Query ``i`` is ``pred[i]``; its own candidate is ``target[i]``, and every row of ``target`` is a candidate.
    Use it to score any decoder's held-out predictions the way :func:`retrieval` scores its own.

    Parameters
    ----------
    pred, target : tensor or array, shape (n, d)
        Predicted and true embeddings, row ``i`` of both for stimulus ``i`` (``n >= 2``). Computation runs on
        ``pred``'s device, in its dtype for a floating tensor, else in the configured dtype (float32 by default,
        ``nb.config_context(dtype="float64")``).
    metric : {"correlation", "cosine", "euclidean"}
        Distance between a prediction and a candidate (see :data:`METRICS`).
    top_k : int or sequence of int
        The ``k`` of top-k accuracy, each at most ``n``.

    Returns
    -------
    RetrievalScores
        ``top_k`` (one per ``k``), ``rank_accuracy``, ``two_vs_two`` (0-d) and the per-query ``rank``, float64.
        Chance levels: ``k / n``, 0.5 and 0.5. Ties count as a random tie-break would on average (see the
        module docstring), so a constant prediction scores exactly chance.

    Raises
    ------
    ValueError
        Shapes that differ or are not 2-d, fewer than 2 rows, NaN or inf (a ``SchemaError``), an unknown metric,
        ``k`` larger than ``n``.

    Examples
    --------
    >>> import torch, neurobridge as nb
    >>> target = torch.eye(4)
    >>> pred = target[[0, 1, 3, 2]]  # the last two swapped: for them, 1 candidate nearer, 2 tied with their own
    >>> s = nb.decoding.retrieval_scores(pred, target, metric="cosine", top_k=(1, 2))
    >>> s.rank.tolist(), [round(v, 3) for v in s.top_k.tolist()]
    ([1.0, 1.0, 3.0, 3.0], [0.5, 0.667])
    >>> round(float(s.rank_accuracy), 3), round(float(s.two_vs_two), 3)  # 5 of the 6 pairs right
    (0.667, 0.833)
    """
    metric = _check_metric(metric)
    ks = _check_top_k(top_k)
    P = as_tensor(pred)
    E = as_tensor(target, device=P.device, dtype=P.dtype)
    if P.ndim != 2 or E.ndim != 2 or P.shape != E.shape:
        raise ValueError(f"pred and target must both be 2-d (n, d) with the same shape, got {tuple(P.shape)} and "
                         f"{tuple(E.shape)}; row i of each is stimulus i")
    n = P.shape[0]
    if n < 2:
        raise ValueError(f"retrieval needs at least 2 stimuli to choose among, got {n}")
    check_finite(P, "pred")
    check_finite(E, "target")
    _check_k_fits(ks, n, "", "pass top_k values <= the number of stimuli")
    small = n * n * P.shape[1] < SMALL_ELEMENTS  # tiny GEMMs lose more to thread synchronisation than they gain
    with cpu_threads(1, P.device) if small else contextlib.nullcontext():
        D = pairwise_distances(P, E, metric)
        tol = _tolerance(D)
        idx = torch.arange(n, device=D.device)
        hits, rank = _query_stats(D, idx, ks, tol)
        pairs = _pair_sums(D, idx, tol)
    return RetrievalScores(hits.mean(0), 1 - ((rank - 1) / (n - 1)).mean(), pairs.sum() / (n * (n - 1)), rank,
                           ks, n)


# ---------------------------------------------------------------------------------------------- inputs
_BRAIN_NAN_FIX = ("drop those samples (brain.dropna(...)), interpolate them, or drop the bad channels/voxels "
                  "before decoding")
_EMB_NAN_FIX = "drop the stimuli without a valid embedding (from brain too) or recompute them"


def _prepare(brain, embedding, sample_dim: str):
    if not isinstance(brain, xr.DataArray):
        raise TypeError(f"brain must be a labelled xarray.DataArray, got {type(brain).__name__}; build one with "
                        "nb.core.fmri_responses(...), nb.core.eeg_epochs(...) or nb.io.from_mne(...)")
    if not isinstance(embedding, xr.DataArray):
        raise TypeError(f"embedding must be an xarray.DataArray with dims ('stimulus', <dim>), got "
                        f"{type(embedding).__name__}; build one with nb.core.activations(values, stimulus=ids)")
    if sample_dim not in brain.dims:
        hint = ("pass sample_dim='trial' to decode single trials (repetitions of a stimulus stay in one fold), or "
                "average them first with nb.core.average_repetitions(brain)") if "trial" in brain.dims else \
            f"pass sample_dim= one of {brain.dims}"
        raise SchemaError(f"sample_dim={sample_dim!r} is not a dim of brain {brain.dims}; {hint}")
    if "stimulus" not in brain.coords or brain.coords["stimulus"].dims != (sample_dim,):
        raise SchemaError(f"brain has no 'stimulus' coordinate along {sample_dim!r}; assign the stimulus id of "
                          f"each sample: brain.assign_coords(stimulus=({sample_dim!r}, ids))")
    if brain.ndim < 2:
        raise SchemaError(f"brain has no feature dim besides {sample_dim!r} (dims {brain.dims}); retrieval needs "
                          "features such as 'voxel', 'channel' or 'unit'")
    if "stimulus" not in embedding.dims or embedding.ndim != 2:
        raise SchemaError(f"embedding must be 2-d with a 'stimulus' dim, ('stimulus', <dim>), got dims "
                          f"{embedding.dims}; select one layer / flatten the rest, e.g. "
                          "embedding.stack(unit=[...]), or build it with nb.core.activations(values, stimulus=ids)")
    edim = next(d for d in embedding.dims if d != "stimulus")
    embedding = embedding.transpose("stimulus", edim)
    check_unique(embedding.indexes["stimulus"] if "stimulus" in embedding.indexes else stimulus_ids(embedding),
                 owner="embedding", fix="give each stimulus one row (average repeated rows with "
                 "embedding.groupby('stimulus').mean()) or drop the duplicates")
    ids = stimulus_ids(brain)
    if sample_dim == "stimulus":
        check_unique(ids, owner="brain", fix="for repeated presentations use a 'trial' dim with sample_dim='trial' "
                     "(repetitions then stay in one fold), or average them with nb.core.average_repetitions(brain)")
    emb_ids = pd.Index(stimulus_ids(embedding))
    missing = pd.Index(pd.unique(np.asarray(ids)))
    missing = missing[~missing.isin(emb_ids)]
    if len(missing):
        raise SchemaError(
            f"{len(missing)} stimulus id(s) of brain have no embedding, e.g. {missing[:5].tolist()} (embedding ids, "
            f"first 5: {emb_ids[:5].tolist()}); every decoded stimulus needs an embedding: check both use the same "
            f"ids (names vs integers, case, file extensions), or keep the shared stimuli first, e.g. "
            f"brain.isel({sample_dim}=np.isin(brain['stimulus'], embedding['stimulus']))")
    check_finite(brain, "brain", fix=_BRAIN_NAN_FIX)
    check_finite(embedding, "embedding", fix=_EMB_NAN_FIX)
    if sample_dim == "stimulus":
        brain_a, emb_a = align(brain, embedding, min_stimuli=1)
    else:  # brain may carry its samples along any dim: align works on 'trial'
        renamed = brain.rename({sample_dim: "trial"}) if sample_dim != "trial" else brain
        brain_a, emb_a = align(renamed, embedding, min_stimuli=1, expand=False)
        brain_a = brain_a.rename({"trial": sample_dim}) if sample_dim != "trial" else brain_a
    stim = pd.Index(np.asarray(emb_a["stimulus"].values))
    codes = stim.get_indexer(np.asarray(stimulus_ids(brain_a)))
    X = np.asarray(brain_a.transpose(sample_dim, ...).values).reshape(brain_a.sizes[sample_dim], -1)
    E = np.asarray(emb_a.values)
    return X, E, codes, emb_a, edim


def _groups(brain: xr.DataArray, groups, sample_dim: str, codes: np.ndarray):
    if groups is None:
        return codes if sample_dim != "stimulus" else None
    return group_labels(brain, groups, sample_dim)


def _folds(n: int, n_stim: int, cv, groups, codes: np.ndarray, sample_dim: str):
    from ..encoding import make_folds

    if isinstance(cv, (int, np.integer)) and not isinstance(cv, bool) and n_stim < cv:
        raise ValueError(f"cv={int(cv)} folds need at least {int(cv)} stimuli (each fold holds some out), found "
                         f"{n_stim}; use fewer folds (cv=...) or more stimuli")
    folds = make_folds(n, cv, groups)
    for i, (tr, va) in enumerate(folds):
        both = np.intersect1d(codes[tr], codes[va])
        if both.size:
            raise ValueError(
                f"fold {i} has {both.size} stimulus(es) in both its training and its test {sample_dim}s: retrieval "
                "is zero-shot, a held-out stimulus must never be trained on; keep the repetitions of a stimulus "
                "in one fold: leave groups=None (the stimulus ids) or pass groups in which every stimulus lies "
                "within one group (e.g. runs only if each stimulus is shown in one run)")
    return folds


def _inner_cv(inner_cv, groups_tr, n_tr: int):
    if not (isinstance(inner_cv, (int, np.integer)) and not isinstance(inner_cv, bool)):
        return inner_cv
    units = len(np.unique(groups_tr)) if groups_tr is not None else n_tr
    k = min(int(inner_cv), units)
    if k < 2:
        raise ValueError(f"the training part of a fold has {units} stimuli/groups, too few to choose alpha by "
                         "inner cross-validation; use fewer outer folds (cv=...) or more stimuli")
    return k


def _put_stimulus_means(P: torch.Tensor, pred: torch.Tensor, codes: torch.Tensor, held) -> None:
    """Write into ``P`` (n_stimuli, d) the mean over its trials of each held-out stimulus' predictions."""
    sums = torch.zeros_like(P).index_add_(0, codes, pred)
    counts = torch.zeros(P.shape[0], dtype=P.dtype, device=P.device).index_add_(
        0, codes, torch.ones_like(codes, dtype=P.dtype))
    held = torch.as_tensor(held, device=P.device)
    P[held] = sums[held] / counts[held, None]


def _fit_predict(X_np, E_np, codes, grp, folds, alpha_grid, inner_cv, alpha_per_target, dev, progress):
    """Held-out predicted embeddings ``(n_stimuli, d)`` (trials of a test stimulus averaged) and the chosen
    alphas per fold ``[(d,), ...]``."""
    from ..encoding import solve_ridge_cv

    dtype = resolve_dtype(None)
    X = torch.as_tensor(X_np, dtype=dtype, device=dev)
    E = torch.as_tensor(E_np, dtype=dtype, device=dev)
    codes_t = torch.as_tensor(codes, device=dev)
    P = torch.zeros_like(E)
    alpha_chosen = []
    for tr, va in progress_bar(folds, desc="retrieval", progress=progress, unit="fold"):
        g_tr = grp[tr] if grp is not None else None
        tr_t, va_t = torch.as_tensor(tr, device=dev), torch.as_tensor(va, device=dev)
        res = solve_ridge_cv(X[tr_t], E[codes_t[tr_t]], alpha_grid, folds=_inner_cv(inner_cv, g_tr, len(tr)),
                             groups=g_tr, alpha_per_target=alpha_per_target, progress=False)
        pred = torch.addmm(res.intercept[None, :], X[va_t], res.coef)  # (test samples, d)
        _put_stimulus_means(P, pred, codes_t[va_t], np.unique(codes[va]))
        alpha_chosen.append(res.alpha.detach().cpu().numpy().astype(float))
    return P, alpha_chosen


DECODERS = ("ridge", "contrastive")


def _resolve_decoder(decoder, alphas, alpha_per_target):
    """``None`` for the ridge decoder, else the (unfitted) :class:`ContrastiveDecoder` to clone per fold."""
    from ._contrastive import ContrastiveDecoder

    if isinstance(decoder, str):
        if decoder not in DECODERS:
            raise ValueError(f"decoder={decoder!r}: use one of {DECODERS} or a ContrastiveDecoder(...) instance")
        if decoder == "ridge":
            return None
        decoder = ContrastiveDecoder(random_state=0)
    elif not isinstance(decoder, ContrastiveDecoder):
        raise TypeError(f"decoder must be 'ridge', 'contrastive' or a nb.decoding.ContrastiveDecoder, got "
                        f"{type(decoder).__name__}")
    if alphas is not None or alpha_per_target:
        raise ValueError("alphas and alpha_per_target choose the ridge penalty, but decoder is contrastive; drop "
                         "them (the contrastive decoder is regularised by early stopping and weight_decay), or use "
                         "decoder='ridge'")
    return decoder


def _fit_predict_contrastive(X_np, E_np, codes, folds, decoder, dev, progress):
    """Held-out predictions ``(n_stimuli, d)`` of a contrastive decoder fitted per fold (trials of a test
    stimulus averaged), the candidates of each fold in that fold's target space ``[(n_stimuli, d), ...]``, and
    the fitted temperature and epochs run per fold."""
    from sklearn.base import clone

    dtype = resolve_dtype(None)
    X = torch.as_tensor(X_np, dtype=dtype, device=dev)
    E = torch.as_tensor(E_np, dtype=dtype, device=dev)
    codes_t = torch.as_tensor(codes, device=dev)
    P = torch.zeros_like(E)
    cands, temperature, n_epochs = [], [], []
    for tr, va in progress_bar(folds, desc="retrieval (contrastive)", progress=progress, unit="fold"):
        tr_t, va_t = torch.as_tensor(tr, device=dev), torch.as_tensor(va, device=dev)
        model = clone(decoder)
        if model.progress is None:
            model.set_params(progress=False)  # one bar, over the folds
        model.fit(X[tr_t], E[codes_t[tr_t]])
        pred = model.predict(X[va_t]).to(device=dev, dtype=dtype)
        _put_stimulus_means(P, pred, codes_t[va_t], np.unique(codes[va]))
        cands.append(model.transform_target(E).to(device=dev, dtype=dtype))
        temperature.append(model.temperature_)
        n_epochs.append(model.n_epochs_)
    return P, cands, np.asarray(temperature, dtype=float), np.asarray(n_epochs, dtype=np.int64)


def _fold_scores(P: torch.Tensor, E_np: np.ndarray, test_stims, n_cand, candidates: str, metric: str, ks,
                 E_folds=None):
    """Per fold: summed top-k hits (fold, len(ks)), summed rank accuracies, summed 2-vs-2 outcomes, the number
    of queries and of (ordered) pairs, and the top-k chance (fold, len(ks)). ``E_folds``: the candidates of each
    fold (a decoder's own target space, fitted per fold) instead of ``E_np`` for all."""
    dev = P.device
    E = torch.as_tensor(E_np, dtype=P.dtype, device=dev)
    n_f = len(test_stims)
    hits = np.zeros((n_f, len(ks)))
    rank_sum = np.zeros(n_f)
    pair_sum = np.zeros(n_f)
    n_q = np.array([len(t) for t in test_stims], dtype=float)
    n_pairs = np.zeros(n_f)
    chance_k = np.zeros((n_f, len(ks)))
    D_all = tol_all = None
    if candidates == "all" and E_folds is None:
        D_all = pairwise_distances(P, E, metric)
        tol_all = _tolerance(D_all)
    for f, held_np in enumerate(test_stims):
        held = torch.as_tensor(held_np, device=dev)
        if E_folds is not None:
            E = E_folds[f]
            if candidates == "all":
                D_all = torch.zeros((P.shape[0], E.shape[0]), dtype=P.dtype, device=dev)
                D_all[held] = pairwise_distances(P[held], E, metric)
                tol_all = _tolerance(D_all[held])
        if candidates == "test":
            D = pairwise_distances(P[held], E[held], metric)
            tol = _tolerance(D)
            rows = torch.arange(len(held_np), device=dev)
            h, r = _query_stats(D, rows, ks, tol)
            pairs = _pair_sums(D, rows, tol)
        else:
            h, r = _query_stats(D_all[held], held, ks, tol_all)
            # 2-vs-2 pairs both held out by one fold (as with "test"): a pair across folds would compare each
            # prediction with an embedding its decoder was fitted to, far below 0.5 under the null
            pairs = _pair_sums(D_all[held][:, held], torch.arange(len(held_np), device=dev), tol_all) \
                if len(held_np) > 1 else None
        if pairs is None:  # no pair held out together (only with candidates="all")
            pairs = torch.zeros(0, dtype=torch.float64)
        c = n_cand[f]
        hits[f] = h.sum(0).cpu().numpy()
        rank_sum[f] = float((1 - (r - 1) / (c - 1)).sum())
        pair_sum[f] = float(pairs.sum())
        n_pairs[f] = len(held_np) * (len(held_np) - 1)
        chance_k[f] = np.minimum(np.asarray(ks, dtype=float) / c, 1.0)
    return hits, rank_sum, pair_sum, n_q, n_pairs, chance_k


# --------------------------------------------------------------------------------------------- the entry
def retrieval(brain: xr.DataArray, embedding: xr.DataArray, *, sample_dim: str = "stimulus", cv: Any = 5,
              groups=None, decoder: Any = "ridge", alphas: Sequence[float] | None = None, metric: str = "correlation",
              top_k: int | Sequence[int] = (1, 5), candidates: str = "test", keep_folds: bool = False,
              inner_cv: Any = 5, alpha_per_target: bool = False, device: str | None = None,
              progress: bool | None = None) -> xr.Dataset:
    """Zero-shot retrieval decoding: ridge from brain to a model's embedding, scored among candidate stimuli.

    For each outer fold, a ridge regression from the brain features to the embedding is fitted on the training
    stimuli (alpha from an inner cross-validation, :func:`neurobridge.encoding.solve_ridge_cv`) and predicts the
    embedding of each held-out stimulus, which has never been trained on. Each prediction is then ranked among
    the candidate embeddings: top-k accuracy, rank accuracy and 2-vs-2 accuracy (Mitchell et al. 2008), as
    :func:`retrieval_scores` defines them. With ``decoder="contrastive"`` a
    :class:`~neurobridge.decoding.ContrastiveDecoder` (CLIP InfoNCE, Benchetrit, Banville & King 2023) is fitted
    instead, on the same folds, and scored by the same metrics among the same candidates, so the two compare
    directly.

    Parameters
    ----------
    brain : xr.DataArray
        ``(stimulus, voxel | channel | unit ...)``: one response per stimulus (repetitions averaged), or single
        trials ``(trial, ...)`` with a ``stimulus`` coordinate and ``sample_dim="trial"``. All dims other than
        ``sample_dim`` are features (flattened together: ``(trial, channel, time)`` decodes from every channel
        and time point at once).
    embedding : xr.DataArray
        ``(stimulus, <dim>)``: the model's embedding of every stimulus of ``brain`` (e.g.
        ``nb.core.activations(values, stimulus=ids)``), matched on the ``stimulus`` ids; embeddings of
        stimuli that ``brain`` lacks are left out.
    sample_dim : str
        The dim of the samples, ``"stimulus"`` (default) or ``"trial"``. With trials, a held-out stimulus's
        prediction is the mean of its trials' predictions (the prediction of the averaged response).
    cv : int, scikit-learn splitter or list of (train, test) index pairs
        Outer folds over the samples: an int gives contiguous K-fold over stimuli (no shuffling), or with
        ``groups`` ``GroupKFold``; default 5. A stimulus may never be in the training and the test part of one
        fold (checked).
    groups : str or array, optional
        Group of each sample (or a coordinate name) kept within one fold. Default: none for stimuli, the
        stimulus ids for trials (the repetitions of a stimulus are held out together).
    decoder : {"ridge", "contrastive"} or ContrastiveDecoder
        ``"ridge"`` (default): ridge regression, alpha by inner cross-validation. ``"contrastive"``:
        ``ContrastiveDecoder(random_state=0)``, or pass a configured ``ContrastiveDecoder(...)`` (cloned per
        fold). It is fitted on each training set (its own validation split of the training stimuli for early
        stopping) and compared with the candidates in its target space
        (:meth:`~neurobridge.decoding.ContrastiveDecoder.transform_target`: the embedding less the training
        mean, projected when ``project_target=True``). Its predictions carry a direction, not a scale: use the
        ``"correlation"`` or ``"cosine"`` metric with it. ``alphas``, ``inner_cv`` and ``alpha_per_target`` are
        ridge options (``alphas``/``alpha_per_target`` refused, ``inner_cv`` ignored).
    alphas : sequence of float, optional
        Ridge grid (default :data:`neurobridge.encoding.DEFAULT_ALPHAS`, 1e-3 ... 1e7).
    metric : {"correlation", "cosine", "euclidean"}
        Distance between predicted and candidate embeddings (default correlation distance).
    top_k : int or sequence of int
        The ``k`` of top-k accuracy (default 1 and 5); each at most the number of candidates.
    candidates : {"test", "all"}
        ``"test"`` (default): each prediction is ranked among the held-out stimuli of its own fold, none of which
        the decoder saw (the zero-shot identification of the literature; ``n_candidates`` is the size of the
        test fold). The chance levels are then exact: under a random pairing of brain and embedding the scores
        average ``k / n_candidates``, 0.5 and 0.5. ``"all"``: ranked among every stimulus, so the training
        stimuli of the fold, which the decoder was fitted to, are distractors too. Its chance levels are only
        nominal: seen and unseen candidates are not exchangeable, and a decoder that learned nothing can score
        above or below them (in a 20-stimulus, 4-fold null, top-1 averaged 0.065 for a nominal 0.05 and rank
        accuracy 0.46); test it by permutation (shuffle the pairing and rerun) rather than against the attrs.
        2-vs-2 uses the pairs held out by one fold either way.
    keep_folds : bool
        Keep a ``fold`` dim on the scores instead of pooling the folds.
    inner_cv : int, splitter or list of folds
        Folds of the inner cross-validation that chooses alpha on each training set (contiguous K-fold, grouped
        with ``groups``; default 5, fewer when a training set has fewer stimuli or groups).
    alpha_per_target : bool
        One alpha for the whole embedding (default: the best mean R2 over its dims, as scikit-learn's
        ``RidgeCV``) or one per embedding dim.
    device : str, optional
        Torch device of the fits and scores (default: ``nb.config_context(device=...)``, else CPU), in the
        configured dtype (float32 by default).
    progress : bool, optional
        Progress bar over the folds (``None``: automatic, see :func:`neurobridge.core.progress_enabled`).

    Returns
    -------
    xr.Dataset
        ``top_<k>`` for each ``k``, ``rank_accuracy`` and ``two_vs_two``: 0-d, pooled over the folds (the
        mean over all queries, and over all within-fold pairs for 2-vs-2), or over ``fold`` with ``keep_folds``; each with
        its ``chance`` attr. ``alpha``: the chosen alpha per ``fold`` (and embedding dim with
        ``alpha_per_target``); with the contrastive decoder ``temperature`` and ``n_epochs`` per ``fold``
        instead. ``prediction``: the held-out predicted embedding ``(stimulus, <dim>)`` of every
        stimulus (in each fold's target space for the contrastive decoder), with a ``test_fold`` coordinate
        (score other metrics with :func:`retrieval_scores`). Attrs:
        ``metric``, ``candidates``, ``n_candidates`` (an int, or a list per fold when test folds differ in
        size), ``chance_<score>`` for every score (``k / n_candidates`` for top-k, averaged over queries; 0.5
        for rank and 2-vs-2), ``top_k``, ``alphas`` (the grid; ridge only), ``n_folds``, ``n_stimuli``, ``cv``,
        ``sample_dim``, ``decoder`` (``"ridge"`` or ``"contrastive"``), ``estimator``.

    Raises
    ------
    ValueError
        NaN or inf in brain or embedding, brain stimuli without an embedding, duplicated stimulus ids (each a
        ``SchemaError``), fewer stimuli than folds, a stimulus in the training and the test part of a fold,
        ``top_k`` larger than the number of candidates, an unknown metric or decoder, ridge options with the
        contrastive decoder; each message names the fix.

    Examples
    --------
    >>> import numpy as np, neurobridge as nb
    >>> rng = np.random.default_rng(0)
    >>> ids = [f"img{i}" for i in range(50)]
    >>> emb = nb.core.activations(rng.normal(size=(50, 8)), stimulus=ids)  # a model's embedding
    >>> responses = emb.values @ rng.normal(size=(8, 30)) + 5 * rng.normal(size=(50, 30))  # voxels encode it
    >>> brain = nb.core.fmri_responses(responses, stimulus=ids, dim="stimulus")
    >>> res = nb.decoding.retrieval(brain, emb, cv=5, top_k=(1, 5))
    >>> res.attrs["n_candidates"], res.attrs["chance_top_1"], res.attrs["chance_top_5"]
    (10, 0.1, 0.5)
    >>> bool(res["top_1"] > 0.3), bool(res["rank_accuracy"] > 0.8), bool(res["two_vs_two"] > 0.9)
    (True, True, True)
    >>> ctr = nb.decoding.retrieval(brain, emb, cv=5, top_k=(1, 5), decoder="contrastive")  # same folds, metrics
    >>> ctr.attrs["decoder"], bool(ctr["rank_accuracy"] > 0.8), ctr["temperature"].dims
    ('contrastive', True, ('fold',))
    """
    from ..encoding import DEFAULT_ALPHAS

    metric = _check_metric(metric)
    ks = _check_top_k(top_k)
    if candidates not in CANDIDATES:
        raise ValueError(f"candidates={candidates!r}: use 'test' (the held-out stimuli of each fold) or 'all' "
                         "(every stimulus)")
    contrastive = _resolve_decoder(decoder, alphas, alpha_per_target)
    X_np, E_np, codes, emb_a, edim = _prepare(brain, embedding, sample_dim)
    n, n_stim = X_np.shape[0], E_np.shape[0]
    grp = _groups(brain, groups, sample_dim, codes)
    folds = _folds(n, n_stim, cv, grp, codes, sample_dim)
    test_stims = [np.unique(codes[va]) for _, va in folds]
    n_cand = [len(t) for t in test_stims] if candidates == "test" else [n_stim] * len(folds)
    if candidates == "test":
        small = int(np.argmin(n_cand))
        if n_cand[small] < 2:
            raise ValueError(f"fold {small} holds out {n_cand[small]} stimulus: ranking needs at least 2 "
                             "candidates per fold; use fewer folds (cv=...) or candidates='all'")
        _check_k_fits(ks, n_cand[small], f"of fold {small} (candidates='test': the held-out stimuli of the fold)",
                      "use smaller top_k, fewer folds (cv=...) so test folds are larger, or candidates='all'")
    else:
        _check_k_fits(ks, n_stim, "(all stimuli)", "use smaller top_k")
    alpha_grid = DEFAULT_ALPHAS if alphas is None else alphas

    dev = resolve_device(None, device)
    # small problems lose more to thread synchronisation than they gain (nulls run this hundreds of times)
    threads = cpu_threads(1, dev) if X_np.size * len(folds) < SMALL_ELEMENTS else contextlib.nullcontext()
    with threads:
        if contrastive is None:
            P, alpha_chosen = _fit_predict(X_np, E_np, codes, grp, folds, alpha_grid, inner_cv, alpha_per_target,
                                           dev, progress)
            E_folds = None
        else:
            P, E_folds, temperature, n_epochs = _fit_predict_contrastive(X_np, E_np, codes, folds, contrastive, dev,
                                                                         progress)
        hits, rank_sum, pair_sum, n_q, n_pairs, chance_k = _fold_scores(P, E_np, test_stims, n_cand, candidates,
                                                                        metric, ks, E_folds)

    names = [f"top_{k}" for k in ks] + ["rank_accuracy", "two_vs_two"]
    chance = {f"top_{k}": float((chance_k[:, i] * n_q).sum() / n_q.sum()) for i, k in enumerate(ks)}
    chance.update(rank_accuracy=0.5, two_vs_two=0.5)
    if n_pairs.sum() == 0:
        warnings.warn("2-vs-2 needs pairs of stimuli held out by the same fold, but every fold holds out one: "
                      "two_vs_two is NaN; use fewer folds (cv=...) for it", RuntimeWarning, stacklevel=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        pair_fold = np.where(n_pairs > 0, pair_sum / np.maximum(n_pairs, 1), np.nan)
        pair_pooled = pair_sum.sum() / n_pairs.sum() if n_pairs.sum() else np.nan
    if keep_folds:
        per = np.column_stack([hits / n_q[:, None], rank_sum / n_q, pair_fold])
        values = {name: (("fold",), per[:, i]) for i, name in enumerate(names)}
    else:
        pooled = [*(hits.sum(0) / n_q.sum()), rank_sum.sum() / n_q.sum(), pair_pooled]
        values = {name: ((), float(v)) for name, v in zip(names, pooled, strict=True)}
    data_vars = {name: xr.Variable(dims, v, attrs={"chance": chance[name]}) for name, (dims, v) in values.items()}
    n_f = len(folds)
    if contrastive is not None:
        data_vars["temperature"] = xr.Variable(("fold",), temperature)
        data_vars["n_epochs"] = xr.Variable(("fold",), n_epochs)
    elif alpha_per_target:
        data_vars["alpha"] = xr.Variable(("fold", edim), np.stack(alpha_chosen))  # (fold, d)
    else:
        data_vars["alpha"] = xr.Variable(("fold",), np.stack(alpha_chosen)[:, 0])
    test_fold = np.empty(n_stim, dtype=np.int64)
    for f, held_np in enumerate(test_stims):
        test_fold[held_np] = f
    data_vars["prediction"] = xr.Variable(("stimulus", edim), P.detach().cpu().numpy())
    coords = {name: c for name, c in emb_a.coords.items() if set(c.dims) <= {"stimulus", edim}}
    coords["test_fold"] = ("stimulus", test_fold)
    coords["fold"] = ("fold", np.arange(n_f))
    attrs: dict[str, Any] = {
        "metric": metric,
        "candidates": candidates,
        "n_candidates": int(n_cand[0]) if len(set(n_cand)) == 1 else [int(c) for c in n_cand],
        **{f"chance_{name}": chance[name] for name in names},
        "top_k": list(ks),
        "n_folds": n_f,
        "n_stimuli": int(n_stim),
        "cv": repr(cv) if not isinstance(cv, (list, tuple)) else f"{n_f} given folds",
        "sample_dim": sample_dim,
        "decoder": "ridge" if contrastive is None else "contrastive",
        "estimator": ("ridge (alpha by inner cv, " + ("per embedding dim)" if alpha_per_target else "shared)"))
        if contrastive is None else repr(contrastive),
    }
    if contrastive is None:
        attrs["alphas"] = [float(a) for a in np.atleast_1d(np.asarray(alpha_grid, dtype=float))]
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)
