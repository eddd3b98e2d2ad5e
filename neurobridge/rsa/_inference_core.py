"""Tensor-level RSA inference: noise ceilings, bootstrap model evaluation and permutation nulls.

Conventions: condensed RDM vectors in ``pdist`` order on the last axis; data ``(subject, *lead, n_pairs)``,
models ``(model, n_pairs)``. Bootstrap samples are given as *counts* (how often each stimulus / subject
was drawn), which makes duplicated stimuli exact and cheap: a stimulus drawn ``c_i`` times and another
drawn ``c_j`` times contribute their dissimilarity ``c_i * c_j`` times, and the dissimilarities between
copies of one stimulus are excluded -- exactly rsatoolbox's ``subsample_pattern`` (which sets them to NaN)
followed by its NaN-aware comparisons -- while every statistic stays a weighted sum over the original
``n_pairs`` entries. Rank-based methods use weighted mid-ranks (the ranks of the expanded vector).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch

from ..core import check_finite, cpu_threads, progress_bar, side_by_side
from ._compare import COMPARE_METHODS, compare_vectors, n_from_pairs, rank

_DROP_STIMULI = "drop the affected stimuli first"

__all__ = ["BootstrapEvaluation", "noise_ceiling_vectors", "bootstrap_evaluations", "permutation_null"]

_LINEAR = ("pearson", "cosine")
_RANKED = ("spearman", "rho-a")
_WHITENED = ("corr_cov", "cosine_cov")
_SLOW = ("kendall", "tau-b")


def _check_method(method: str) -> None:
    if method not in COMPARE_METHODS:
        raise ValueError(f"unknown comparison method {method!r}; expected one of {list(COMPARE_METHODS)}")


# ------------------------------------------------------------------------------------ noise ceiling
def _pool_transform(v: torch.Tensor, method: str) -> torch.Tensor:
    """rsatoolbox's ``pool_rdm`` normalisation of each RDM vector before averaging."""
    if method in ("cosine", "cosine_cov"):
        return v / torch.sqrt((v**2).mean(-1, keepdim=True))
    if method in ("pearson", "corr_cov"):
        c = v - v.mean(-1, keepdim=True)
        return c / torch.sqrt((c**2).mean(-1, keepdim=True))
    return rank(v)


def noise_ceiling_vectors(data: torch.Tensor, method: str = "spearman", *, cov=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Leave-one-subject-out lower and upper bounds of the noise ceiling.

    The upper bound compares each subject's RDM with the average of all subjects' RDMs (normalised the
    way that suits ``method``: ranks for rank correlations, z-scores for correlations, unit RMS for
    cosines), the lower bound with the average of the other subjects; both are averaged over subjects.
    Identical to rsatoolbox's ``boot_noise_ceiling`` for every method.

    Parameters
    ----------
    data : Tensor, shape (n_subjects, ..., n_pairs)
        Condensed RDMs; the middle dims (time, ROI, ...) broadcast.
    method : str
        A comparison method of :func:`neurobridge.rsa.compare_vectors`.
    cov : optional
        Stimulus covariance for the whitened methods.

    Returns
    -------
    (lower, upper) : Tensors of shape ``data.shape[1:-1]``

    Examples
    --------
    >>> import torch
    >>> d = torch.rand(5, 45, dtype=torch.float64)
    >>> lo, up = noise_ceiling_vectors(d, "spearman")
    >>> bool(lo <= up)
    True
    """
    _check_method(method)
    if data.ndim < 2:
        raise ValueError(f"data must have shape (n_subjects, ..., n_pairs), got {tuple(data.shape)}")
    s = data.shape[0]
    if s < 2:
        raise ValueError(f"a leave-one-subject-out noise ceiling needs at least 2 subjects, got {s}")
    check_finite(data, "data RDMs", fix=_DROP_STIMULI)
    z = _pool_transform(data, method)
    total = z.sum(0)
    upper = compare_vectors(total / s, data, method, cov=cov).mean(0)
    loo = (total.unsqueeze(0) - z) / (s - 1)
    lower = compare_vectors(loo, data, method, cov=cov).mean(0)
    return lower, upper


# ------------------------------------------------------------------------------------ weighted ranks
# The weighted mid-rank of entry p is  sum(w over entries < x_p) + (sum(w over entries tied with x_p) + 1) / 2,
# i.e. its rank in the expanded vector where entry q appears w_q times (scipy.stats.rankdata of that vector).
# With the tie groups of a row known (group id per entry, groups numbered in increasing value), one
# bootstrap step is a scatter-add of the weights into groups, a cumsum over groups and a gather.

def _group_ids(x: torch.Tensor) -> torch.Tensor:
    """Tie-group id of every entry (0 = smallest value) along the last axis, shape of x."""
    flat = x.reshape(-1, x.shape[-1])
    keys = None
    if flat.device.type == "cpu" and flat.shape[-1] < 2**31:
        keys = _int_keys(flat)
    if keys is not None:
        # pack (key, index) into one int64: numpy's SIMD integer sort is several times faster than torch.sort
        packed = (keys << 32) | torch.arange(flat.shape[-1], dtype=torch.int64)
        srt = torch.from_numpy(np.sort(packed.numpy(), axis=-1))
        skeys, order = srt >> 32, srt & 0xFFFFFFFF
    else:
        skeys, order = torch.sort(flat, dim=-1)
    new = torch.zeros_like(order)
    new[:, 1:] = (skeys[:, 1:] != skeys[:, :-1]).long()
    gid_sorted = torch.cumsum(new, -1)
    gid = torch.empty_like(gid_sorted)
    gid.scatter_(-1, order, gid_sorted)
    return gid.reshape(x.shape)


def _int_keys(flat: torch.Tensor) -> torch.Tensor | None:
    """Exact order-preserving int32-range keys: 2x the values when they are half-integers (sums of ranks),
    the float bits for float32; None otherwise (float64 data is sorted as is)."""
    twice = flat * 2
    if bool((twice == torch.round(twice)).all()) and float(twice.abs().max()) < 2**30:
        return twice.to(torch.int64)
    if flat.dtype == torch.float32:
        bits = (flat + 0.0).contiguous().view(torch.int32)
        return (bits ^ ((bits >> 31) & 0x7FFFFFFF)).to(torch.int64)
    return None


def _wrank_groups(gid: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Weighted mid-ranks from tie-group ids gid (..., P) and weights w broadcastable to gid."""
    wexp = w.expand(gid.shape)
    gsum = torch.zeros(gid.shape, dtype=w.dtype, device=w.device)
    gsum.scatter_add_(-1, gid, wexp)
    val = torch.cumsum(gsum, -1) - gsum * 0.5 + 0.5
    return torch.gather(val, -1, gid)


def _np_sorted_groups(flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sort rows of non-negative half-integers (sums of ranks) with numpy's integer sort.

    Returns (order, tie-group id in sorted order). The keys are exact: the float32 bit pattern of a
    non-negative float32 is order-preserving, and half-integers below 2**23 are exact in float32."""
    p = flat.shape[-1]
    vmax = float(flat.max()) if flat.numel() else 0.0
    if vmax < 2**22 and float(flat.min()) >= 0:
        keys = flat.to(torch.float32).contiguous().numpy().view(np.int32).astype(np.int64)
    else:
        keys = (flat.double() * 2).numpy().astype(np.int64)
    keys <<= 32
    keys |= np.arange(p, dtype=np.int64)
    keys.sort(axis=-1)
    order = keys & 0xFFFFFFFF
    keys >>= 32
    gid = np.zeros(keys.shape, dtype=np.int64)
    np.cumsum(keys[:, 1:] != keys[:, :-1], axis=-1, out=gid[:, 1:])
    return torch.from_numpy(order), torch.from_numpy(gid)


def _sorted_wranks(x: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Weighted mid-ranks of rows of x (non-negative half-integers: sums of ranks) in *sorted* order:
    (order, ranks_sorted, weights_sorted), all (R, P).

    Working in sorted order keeps the group scatter/gather sequential in memory (much faster on CPU);
    callers gather their partner vectors with ``order`` instead of scattering the ranks back."""
    flat = x.reshape(-1, x.shape[-1])
    p = flat.shape[-1]
    if flat.device.type == "cpu" and p < 2**31:
        order, gid = _np_sorted_groups(flat)
    else:
        skeys, order = torch.sort(flat, dim=-1)
        gid = torch.zeros_like(order)
        torch.cumsum(skeys[:, 1:] != skeys[:, :-1], dim=-1, out=gid[:, 1:])
    ws = torch.gather(w.expand(x.shape).reshape(flat.shape), -1, order)
    return order, _wrank_groups(gid, ws), ws


# ------------------------------------------------------------------------------------ bootstrap
class BootstrapEvaluation(NamedTuple):
    """Model evaluations and noise ceilings on each bootstrap sample (NaN for unusable samples)."""

    evaluations: torch.Tensor
    """Shape (n_bootstraps, n_models, ...): mean over the sampled subjects of the model-data similarity."""
    lower: torch.Tensor | None
    """Shape (n_bootstraps, ...): lower bound of the noise ceiling on each sample."""
    upper: torch.Tensor | None
    """Shape (n_bootstraps, ...): upper bound of the noise ceiling on each sample."""


def _counts_to_sorted_indices(counts: torch.Tensor) -> torch.Tensor:
    n_draw = int(counts[0].sum())
    cum = torch.cumsum(counts, 1)
    ar = torch.arange(n_draw, device=counts.device).expand(counts.shape[0], n_draw).contiguous()
    return torch.searchsorted(cum, ar, right=True)


def _ceiling_weights(u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pooling weights from subject counts u (b, S): all subjects (b, S), leave-one-out (b, S, S), present."""
    tot = u.sum(1, keepdim=True)
    a_all = u / tot
    rest = (tot - u).unsqueeze(-1)  # (b, S, 1)
    loo = u.unsqueeze(1).expand(-1, u.shape[1], -1).clone()  # (b, s, t)
    loo.diagonal(dim1=1, dim2=2).zero_()
    single = rest <= 0  # only one distinct subject drawn: rsatoolbox pools all of them
    loo = torch.where(single, u.unsqueeze(1), loo) / torch.where(single, tot.unsqueeze(-1), rest)
    present = (u > 0).to(u.dtype)
    return a_all, loo, present


def _gram_ceilings(gram: torch.Tensor, scale: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Ceilings from within-subject Gram matrices.

    gram (b, L, S, S): inner products of the (centred/whitened) subject vectors under the sample's weights;
    scale (b, L, S): each subject's pooling normaliser; u (b, S) subject counts.
    """
    a_all, loo, present = _ceiling_weights(u)
    gn = gram / scale.unsqueeze(-1)  # row t scaled: <z_t, d_s>
    diag = torch.sqrt(gram.diagonal(dim1=-2, dim2=-1).clamp(min=0))  # (b, L, S)
    gzz = gn / scale.unsqueeze(-2)  # <z_t, z_t'>
    # upper: pool = sum_t a_t z_t
    a = a_all.unsqueeze(1)  # (b, 1, S)
    num = torch.einsum("bt,blts->bls", a_all, gn)
    pool_norm = torch.sqrt(torch.einsum("bxt,blts,bxs->blx", a, gzz, a).clamp(min=0))  # (b, L, 1)
    up = num / (pool_norm * diag)
    # lower: pool_{-s} = sum_t loo[s, t] z_t
    num_l = torch.einsum("bst,blts->bls", loo, gn)
    norm_l = torch.sqrt(torch.einsum("bst,bltr,bsr->bls", loo, gzz, loo).clamp(min=0))
    lo = num_l / (norm_l * diag)
    w = present.unsqueeze(1) / present.sum(1).reshape(-1, 1, 1)
    return (lo * w).sum(-1), (up * w).sum(-1)


def _gram_eval(cross: torch.Tensor, vm: torch.Tensor, vd: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Evaluations from model-data inner products cross (b, K, S, L) and squared norms vm (b, K), vd (b, S, L)."""
    den = torch.sqrt(vm.clamp(min=0)).reshape(*vm.shape, 1, 1) * torch.sqrt(vd.clamp(min=0)).unsqueeze(1)
    sim = torch.where(den > 0, cross / torch.where(den > 0, den, torch.ones_like(den)), torch.zeros_like(cross))
    return torch.einsum("bksl,bs->bkl", sim, u / u.sum(1, keepdim=True))


def _whiten_expanded(sq: torch.Tensor, idx: torch.Tensor, center: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """rsatoolbox's ``_cov_weighting`` of expanded RDMs with the copies of a stimulus masked out.

    sq (R, n, n) square RDMs; idx (b, m) resampled stimuli. Returns the whitened matrices (b, R, m, m) whose
    Frobenius inner products over the valid entries equal rsatoolbox's whitened inner products, and the
    mask of valid entries (b, m, m).
    """
    b, m = idx.shape
    e = sq[:, idx[:, :, None], idx[:, None, :]].transpose(0, 1)  # (b, R, m, m)
    off = idx[:, :, None] != idx[:, None, :]  # valid off-diagonal entries
    offf = off.to(sq.dtype).unsqueeze(1)
    if center:
        n_valid = offf.sum((-1, -2), keepdim=True)
        e = e - (e * offf).sum((-1, -2), keepdim=True) / n_valid
    g = -0.5 * e * offf
    deg = off.sum(-1).to(sq.dtype)  # (b, m)
    mmat = 0.5 * (torch.diag_embed(deg) + off.to(sq.dtype)) + torch.eye(m, dtype=sq.dtype, device=sq.device)
    rsum = g.sum(-1)  # (b, R, m)
    chol = torch.linalg.cholesky(mmat)  # M = I + (diag(deg) + A) / 2 is symmetric positive definite
    uvec = torch.cholesky_solve(rsum.transpose(1, 2), chol).transpose(1, 2)  # (b, R, m)
    gc = (g - 0.5 * (uvec.unsqueeze(-1) + uvec.unsqueeze(-2))) * offf
    gc = gc - torch.diag_embed(uvec)
    valid = off | torch.eye(m, dtype=torch.bool, device=sq.device)
    return gc, valid


def _default_batch(rows: int, n_pairs: int, factor: float = 3.0) -> int:
    return max(1, min(1000, int(4e7 // max(1.0, rows * n_pairs * factor))))


def bootstrap_evaluations(
    data: torch.Tensor, models: torch.Tensor, method: str = "spearman", *, stimulus_counts=None,
    subject_counts=None, noise_ceiling: bool = True, stimulus_groups=None, batch_size: int | None = None,
    progress: bool | None = None,
) -> BootstrapEvaluation:
    """Evaluate models on bootstrap samples of stimuli, subjects or both, vectorised over samples.

    Reproduces rsatoolbox's ``eval_bootstrap_pattern`` (``stimulus_counts``), ``eval_bootstrap_rdm``
    (``subject_counts``) and ``eval_bootstrap`` (both) sample by sample: the model evaluation is the mean
    over the sampled subjects (with repeats) of the similarity between the resampled model and data
    RDMs, and the noise ceiling is the leave-one-subject-out ceiling of the sample.

    Parameters
    ----------
    data : Tensor, shape (n_subjects, ..., n_pairs)
        Data RDMs (condensed); middle dims (time, ROI) broadcast.
    models : Tensor, shape (n_models, n_pairs)
    method : str
        ``spearman``, ``pearson``, ``cosine``, ``rho-a``, ``corr_cov``, ``cosine_cov`` (vectorised) or
        ``kendall``/``tau-b`` (one sample at a time).
    stimulus_counts : LongTensor, shape (n_bootstraps, n_stimuli), optional
        How often each stimulus is drawn in each sample (:func:`neurobridge.stats.bootstrap_counts`,
        or :func:`neurobridge.stats.indices_to_counts` of explicit indices).
    subject_counts : LongTensor, shape (n_bootstraps, n_subjects), optional
        How often each subject is drawn.
    noise_ceiling : bool
        Also compute the ceiling of every sample.
    stimulus_groups : sequence, optional
        Group label per stimulus when groups were resampled together: a sample is usable when it holds
        at least 3 distinct groups (rsatoolbox's rule), else 3 distinct stimuli.
    batch_size : int, optional
        Samples per vectorised step (default from the problem size).
    progress : bool, optional
        Progress bar ``bootstrap`` counting resamples (it reaches ``n_bootstraps``, whatever the batch size):
        ``True``/``False``; ``None`` (default, automatic) shows it only when someone watches
        (:func:`neurobridge.core.progress_enabled`).

    Returns
    -------
    BootstrapEvaluation

    Examples
    --------
    >>> import torch, neurobridge as nb
    >>> data, models = torch.rand(4, 45, dtype=torch.float64), torch.rand(2, 45, dtype=torch.float64)
    >>> counts = nb.stats.bootstrap_counts(10, 100, seed=0)
    >>> bootstrap_evaluations(data, models, stimulus_counts=counts).evaluations.shape
    torch.Size([100, 2])
    """
    _check_method(method)
    if data.ndim < 2 or models.ndim != 2 or data.shape[-1] != models.shape[-1]:
        raise ValueError(f"expected data (n_subjects, ..., n_pairs) and models (n_models, n_pairs) with the same "
                         f"n_pairs; got {tuple(data.shape)} and {tuple(models.shape)}")
    check_finite(data, "data RDMs", fix=_DROP_STIMULI)
    check_finite(models, "model RDMs", fix=_DROP_STIMULI)
    dev, dtype = data.device, data.dtype
    models = models.to(dev, dtype)
    s, p = data.shape[0], data.shape[-1]
    lead = tuple(data.shape[1:-1])
    n_lead = math.prod(lead)
    n = n_from_pairs(p)
    d = data.reshape(s, n_lead, p)
    k = models.shape[0]
    n_boot = None
    if stimulus_counts is not None:
        stimulus_counts = torch.as_tensor(stimulus_counts).to(dev).long()
        if stimulus_counts.ndim != 2 or stimulus_counts.shape[1] != n:
            raise ValueError(f"stimulus_counts must have shape (n_bootstraps, {n}), got {tuple(stimulus_counts.shape)}")
        n_boot = stimulus_counts.shape[0]
    if subject_counts is not None:
        subject_counts = torch.as_tensor(subject_counts).to(dev).long()
        if subject_counts.ndim != 2 or subject_counts.shape[1] != s:
            raise ValueError(f"subject_counts must have shape (n_bootstraps, {s}), got {tuple(subject_counts.shape)}")
        if n_boot is not None and subject_counts.shape[0] != n_boot:
            raise ValueError("stimulus_counts and subject_counts must have the same number of bootstrap samples")
        n_boot = subject_counts.shape[0]
    if n_boot is None:
        n_boot = 1
    if noise_ceiling and s < 2:
        raise ValueError("the noise ceiling needs at least 2 subjects; pass noise_ceiling=False")
    rows = s * n_lead + k
    if method in _LINEAR:  # per-sample temporaries are (S x L x (S + K)) inner products plus one weight row
        bs = batch_size or max(1, min(1000, int(2e7 // (s * n_lead * (s + k) + p))))
    elif method in _WHITENED:
        bs = batch_size or _default_batch(rows, n * n, 2.0)
    else:  # ranks of every row and pooled row per sample; small batches stay in cache
        bs = batch_size or max(1, int(1e6 // (rows * p * 2)))
    ii, jj = torch.triu_indices(n, n, offset=1, device=dev)

    group_ids = None
    if stimulus_groups is not None:
        labels = np.asarray(stimulus_groups)
        if labels.shape != (n,):
            raise ValueError(f"stimulus_groups must have one label per stimulus ({n}), got shape {labels.shape}")
        inv = np.unique(labels, return_inverse=True)[1]
        group_ids, n_groups = torch.as_tensor(inv, device=dev).reshape(1, -1), int(inv.max()) + 1
    pre_d = pre_m = None
    if method in _RANKED:
        pre_d, pre_m = _group_ids(d.reshape(-1, p)), _group_ids(models)
    sq = None
    if method in _WHITENED:
        sq = torch.zeros(rows, n, n, dtype=dtype, device=dev)
        allv = torch.cat([d.reshape(-1, p), models])
        sq[:, ii, jj] = allv
        sq[:, jj, ii] = allv
    starts = range(0, n_boot, bs)
    # Many small per-batch ops: up to 7x slower with 2 threads each. Instead, each batch runs single-threaded
    # and independent batches run side by side, one per core (the ops release the GIL).
    n_workers = min(torch.get_num_threads(), len(starts)) if dev.type == "cpu" else 1
    with cpu_threads(1, dev):
        return _bootstrap_loop(d, models, method, stimulus_counts, subject_counts, noise_ceiling, group_ids,
                               n_groups if group_ids is not None else 0, pre_d, pre_m, sq, starts, bs, n_boot,
                               lead, progress, n_workers)


def _bootstrap_loop(d, models, method, stimulus_counts, subject_counts, noise_ceiling, group_ids, n_groups,
                    pre_d, pre_m, sq, starts, bs, n_boot, lead, progress, n_workers=1) -> BootstrapEvaluation:
    dev, dtype = d.device, d.dtype
    s, n_lead, p = d.shape
    k = models.shape[0]
    n = n_from_pairs(p)
    ii, jj = torch.triu_indices(n, n, offset=1, device=dev)

    def one(st):
        b = min(bs, n_boot - st)
        c = stimulus_counts[st:st + b] if stimulus_counts is not None else None
        u = (subject_counts[st:st + b] if subject_counts is not None
             else torch.ones(b, s, dtype=torch.long, device=dev)).to(dtype)
        w = (c[:, ii] * c[:, jj]).to(dtype) if c is not None else torch.ones(b, p, dtype=dtype, device=dev)
        if c is None:
            ok = torch.ones(b, dtype=torch.bool, device=dev)
        elif group_ids is None:
            ok = (c > 0).sum(1) >= 3
        else:
            present = torch.zeros(b, n_groups, dtype=torch.long, device=dev)
            present.scatter_add_(1, group_ids.expand(b, -1), (c > 0).long())
            ok = (present > 0).sum(1) >= 3
        if method in _SLOW:
            ev, lo, up = _slow_batch(d, models, method, c, u, noise_ceiling)
        elif method in _RANKED:
            ev, lo, up = _ranked_batch(d, models, method, w, u, pre_d, pre_m, noise_ceiling)
        else:
            ev, lo, up = _gram_batch(d, models, method, w, u, c, sq, noise_ceiling)
        nan = torch.tensor(float("nan"), dtype=dtype, device=dev)
        ev = torch.where(ok.reshape(-1, 1, 1), ev, nan)
        if noise_ceiling:
            lo, up = torch.where(ok.reshape(-1, 1), lo, nan), torch.where(ok.reshape(-1, 1), up, nan)
        return ev, lo, up

    results = side_by_side(one, starts, n_workers, progress=progress, desc="bootstrap",
                           sizes=[min(bs, n_boot - st) for st in starts], unit="resample")
    evals, lows, ups = zip(*results, strict=True)
    ev = torch.cat(evals).reshape(n_boot, k, *lead)
    lo = torch.cat(lows).reshape(n_boot, *lead) if noise_ceiling else None
    up = torch.cat(ups).reshape(n_boot, *lead) if noise_ceiling else None
    return BootstrapEvaluation(ev, lo, up)


def _gram_batch(d, models, method, w, u, c, sq, noise_ceiling):
    """Linear (pearson, cosine) and whitened methods through weighted inner products."""
    s, n_lead, p = d.shape
    k = models.shape[0]
    b = w.shape[0]
    nw = w.sum(1)  # (b,)
    dm = d.reshape(s * n_lead, p)
    # weighted first and second moments of every vector (the pooling normalisers)
    s1d = (w @ dm.T).reshape(b, s, n_lead)
    s2d = (w @ dm.square().T).reshape(b, s, n_lead)
    centered = method in ("pearson", "corr_cov")
    if centered:
        mean_d = s1d / nw.reshape(-1, 1, 1)
        scale = torch.sqrt((s2d / nw.reshape(-1, 1, 1) - mean_d**2).clamp(min=0))
    else:
        scale = torch.sqrt(s2d / nw.reshape(-1, 1, 1))
    if method in _LINEAR:
        s1m = w @ models.T  # (b, K)
        s2m = w @ (models * models).T
        cross = torch.einsum("bp,kp,lp->bkl", w, models, dm).reshape(b, k, s, n_lead)
        gram = torch.einsum("bp,slp,tlp->blst", w, d, d) if noise_ceiling else None
        if centered:
            mean_m = s1m / nw.reshape(-1, 1)
            cross = cross - nw.reshape(-1, 1, 1, 1) * mean_m.reshape(b, k, 1, 1) * mean_d.unsqueeze(1)
            vm = s2m - nw.reshape(-1, 1) * mean_m**2
            vd = s2d - nw.reshape(-1, 1, 1) * mean_d**2
            if gram is not None:
                md = mean_d.transpose(1, 2)  # (b, L, S)
                gram = gram - nw.reshape(-1, 1, 1, 1) * md.unsqueeze(-1) * md.unsqueeze(-2)
        else:
            vm, vd = s2m, s2d
    else:
        idx = (_counts_to_sorted_indices(c) if c is not None
               else torch.arange(sq.shape[-1], device=d.device).expand(b, -1))
        gc, _ = _whiten_expanded(sq, idx, center=centered)  # (b, R, m, m)
        flat = gc.flatten(-2)
        fd = flat[:, :s * n_lead].reshape(b, s, n_lead, -1)
        fm = flat[:, s * n_lead:]
        cross = torch.einsum("bkq,bslq->bksl", fm, fd)
        vm = (fm * fm).sum(-1)
        vd = (fd * fd).sum(-1)
        gram = torch.einsum("bslq,btlq->blst", fd, fd) if noise_ceiling else None
    ev = _gram_eval(cross, vm, vd, u)
    if not noise_ceiling:
        return ev, None, None
    lo, up = _gram_ceilings(gram, scale.transpose(1, 2), u)
    return ev, lo, up


def _ranked_batch(d, models, method, w, u, pre_d, pre_m, noise_ceiling):
    """Spearman / rho-a: weighted ranks of the expanded vectors, pooled ranks re-ranked per sample."""
    s, n_lead, p = d.shape
    b = w.shape[0]
    nw = w.sum(1).reshape(-1, 1, 1)
    mid = (nw + 1) / 2
    rd = _wrank_groups(pre_d.unsqueeze(0).expand(b, -1, -1), w.unsqueeze(1)).reshape(b, s, n_lead, p)
    rm = _wrank_groups(pre_m.unsqueeze(0).expand(b, -1, -1), w.unsqueeze(1))  # (b, K, P)
    rdc = rd - mid.unsqueeze(-1)
    rmc = rm - mid
    wd = rdc * w.reshape(b, 1, 1, p)
    cross = torch.einsum("bkp,bslp->bksl", rmc, wd)
    if method == "spearman":
        vm = (rmc * rmc * w.unsqueeze(1)).sum(-1)
        vd = (rdc * wd).sum(-1)
        ev = _gram_eval(cross, vm, vd, u)
    else:
        const = 12.0 / (nw.reshape(-1) ** 3 - nw.reshape(-1))
        ev = torch.einsum("bksl,bs->bkl", cross, u / u.sum(1, keepdim=True)) * const.reshape(-1, 1, 1)
    if not noise_ceiling:
        return ev, None, None
    present = (u > 0).to(u.dtype)
    # sums of half-integer ranks with integer counts are exact, so tied pooled ranks stay tied (as in
    # rsatoolbox's mean over the sampled RDMs) -- divide only at the end
    total = torch.einsum("bs,bslp->blp", u, rd)
    tot = u.sum(1).reshape(-1, 1, 1)
    # ranks are invariant to the positive divisor of the mean: rank the exact sums
    single = (tot - u.unsqueeze(-1)).unsqueeze(-1) <= 0  # (b, S, 1, 1): one distinct subject drawn
    loo_sum = torch.where(single, total.unsqueeze(1), total.unsqueeze(1) - u.reshape(b, s, 1, 1) * rd)
    # upper bound: one pooled row per sample and lead index; scatter its ranks back
    order, rs, _ = _sorted_wranks(total, w.reshape(b, 1, p))
    rp = torch.empty_like(rs).scatter_(-1, order, rs).reshape(b, n_lead, p) - mid  # (b, L, P)
    num_up = torch.einsum("blp,bslp->bsl", rp, wd)
    # lower bound: one pooled row per subject; gather each subject's weighted ranks into its pool's order
    order, rs, ws = _sorted_wranks(loo_sum, w.reshape(b, 1, 1, p))
    rs = rs - mid.reshape(b, 1).expand(b, s * n_lead).reshape(-1, 1)
    wds = torch.gather(wd.reshape(-1, p), -1, order)
    num_lo = (rs * wds).sum(-1).reshape(b, s, n_lead)
    if method == "spearman":  # vd: the subjects' weighted rank variances, from the evaluation above
        vp = (rp * rp * w.reshape(b, 1, p)).sum(-1).unsqueeze(1)
        vpl = (rs * rs * ws).sum(-1).reshape(b, s, n_lead)
        up = num_up / torch.sqrt(vp * vd)
        lo = num_lo / torch.sqrt(vpl * vd)
    else:
        const = (12.0 / (nw**3 - nw)).reshape(-1, 1, 1)
        up, lo = num_up * const, num_lo * const
    wt = (present / present.sum(1, keepdim=True)).unsqueeze(-1)
    return ev, (lo * wt).sum(1), (up * wt).sum(1)


def _slow_batch(d, models, method, c, u, noise_ceiling):
    """Kendall's taus: materialise each sample (as rsatoolbox does) and compare with compare_vectors."""
    s, n_lead, p = d.shape
    b = u.shape[0]
    n = n_from_pairs(p)
    evs, los, ups = [], [], []
    for r in range(b):
        if c is not None:
            idx = torch.repeat_interleave(torch.arange(n, device=d.device), c[r])
            m = idx.numel()
            a_i, a_j = torch.triu_indices(m, m, offset=1, device=d.device)
            keep = idx[a_i] != idx[a_j]
            x, y = idx[a_i][keep], idx[a_j][keep]
            lo_ix, hi_ix = torch.minimum(x, y), torch.maximum(x, y)
            cond = lo_ix * n - lo_ix * (lo_ix + 1) // 2 + (hi_ix - lo_ix - 1)
            dd, mm = d[..., cond], models[:, cond]
        else:
            dd, mm = d, models
        subj = torch.repeat_interleave(torch.arange(s, device=d.device), u[r].long())
        rows = dd[subj]  # sampled subject rows with repeats
        ev = compare_vectors(mm.reshape(-1, 1, 1, mm.shape[-1]), rows.unsqueeze(0), method).mean(1)
        evs.append(ev)
        if noise_ceiling:
            z = rank(rows)
            uniq = torch.unique(subj)
            total = z.sum(0)
            up = compare_vectors(total / len(subj), rows, method)
            lows, upps = [], []
            for t in uniq.tolist():
                mine = subj == t
                others = ~mine
                pool = z[others].mean(0) if bool(others.any()) else total / len(subj)
                lows.append(compare_vectors(pool, rows[mine], method).mean(0))
                upps.append(up[mine].mean(0))
            los.append(torch.stack(lows).mean(0))
            ups.append(torch.stack(upps).mean(0))
    ev = torch.stack(evs)
    if not noise_ceiling:
        return ev, None, None
    return ev, torch.stack(los), torch.stack(ups)


# ------------------------------------------------------------------------------------ permutation null
def _gatherable(v: torch.Tensor, method: str) -> tuple[torch.Tensor, str]:
    """Features F with sim(x, perm(y)) = <F_x, perm(F_y)> (up to a constant) and how to permute them."""
    if method in ("spearman", "pearson", "cosine"):
        f = rank(v) if method == "spearman" else v
        if method != "cosine":
            f = f - f.mean(-1, keepdim=True)
        return f / torch.linalg.vector_norm(f, dim=-1, keepdim=True), "pairs"
    if method == "rho-a":
        pp = v.shape[-1]
        f = rank(v)
        return (f - f.mean(-1, keepdim=True)) * math.sqrt(12.0 / (pp**3 - pp)), "pairs"
    if method in _WHITENED:
        n = n_from_pairs(v.shape[-1])
        if method == "corr_cov":
            v = v - v.mean(-1, keepdim=True)
        ii, jj = torch.triu_indices(n, n, offset=1, device=v.device)
        g = torch.zeros(*v.shape[:-1], n, n, dtype=v.dtype, device=v.device)
        g[..., ii, jj] = -0.5 * v
        g[..., jj, ii] = -0.5 * v
        rm = g.mean(-1, keepdim=True)
        g = g - rm - rm.transpose(-1, -2) + rm.mean(-2, keepdim=True)
        f = g.flatten(-2)
        return f / torch.linalg.vector_norm(f, dim=-1, keepdim=True), "square"
    raise ValueError(method)


def permutation_null(x: torch.Tensor, y: torch.Tensor, method: str = "spearman", *, permutations: torch.Tensor,
                     batch_size: int | None = None, progress: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Similarity of every ``x`` with every ``y`` under random relabelling of ``y``'s stimuli.

    Parameters
    ----------
    x : Tensor, shape (Lx, n_pairs)
        Condensed RDMs kept fixed (e.g. brain RDMs over time).
    y : Tensor, shape (Ly, n_pairs)
        Condensed RDMs whose stimulus labels are permuted (e.g. model RDMs).
    method : str
        Comparison method (``cov`` is not supported here).
    permutations : LongTensor, shape (n_permutations, n_stimuli)
    batch_size : int, optional
    progress : bool, optional
        Progress bar counting permutations: ``True``/``False``; ``None`` (default, automatic) shows it only
        when someone watches (:func:`neurobridge.core.progress_enabled`).

    Returns
    -------
    (observed, null) : Tensors of shape (Ly, Lx) and (n_permutations, Ly, Lx)

    Examples
    --------
    >>> import torch, neurobridge as nb
    >>> x, y = torch.rand(3, 45, dtype=torch.float64), torch.rand(1, 45, dtype=torch.float64)
    >>> obs, null = permutation_null(x, y, permutations=nb.stats.permutation_indices(10, 50, seed=0))
    >>> null.shape
    torch.Size([50, 1, 3])
    """
    _check_method(method)
    p = x.shape[-1]
    n = n_from_pairs(p)
    perms = permutations.to(x.device).long()
    if perms.ndim != 2 or perms.shape[1] != n:
        raise ValueError(f"permutations must have shape (n_permutations, {n}), got {tuple(perms.shape)}")
    observed = compare_vectors(y.unsqueeze(1), x.unsqueeze(0), method)
    n_perm = perms.shape[0]
    if method in _SLOW:
        out = []
        ii, jj = torch.triu_indices(n, n, offset=1, device=x.device)
        for q in progress_bar(perms, desc="permutations", progress=progress, unit="permutation"):
            a, c = q[ii], q[jj]
            lo, hi = torch.minimum(a, c), torch.maximum(a, c)
            idx = lo * n - lo * (lo + 1) // 2 + (hi - lo - 1)
            out.append(compare_vectors(y[:, idx].unsqueeze(1), x.unsqueeze(0), method))
        return observed, torch.stack(out)
    fx, kind = _gatherable(x, method)
    fy, _ = _gatherable(y, method)
    if kind == "pairs":
        ii, jj = torch.triu_indices(n, n, offset=1, device=x.device)
    bs = batch_size or max(1, int(2e7 // max(1, fx.shape[-1] * max(1, y.shape[0]))))
    out = []
    with progress_bar(total=n_perm, desc="permutations", progress=progress, unit="permutation") as bar:
        for st in range(0, n_perm, bs):
            q = perms[st:st + bs]
            if kind == "pairs":
                a, c = q[:, ii], q[:, jj]
                lo, hi = torch.minimum(a, c), torch.maximum(a, c)
                idx = lo * n - lo * (lo + 1) // 2 + (hi - lo - 1)
            else:
                idx = (q[:, :, None] * n + q[:, None, :]).flatten(1)
            fyp = fy[:, idx]  # (Ly, b, F)
            out.append((fyp.reshape(-1, fyp.shape[-1]) @ fx.T).reshape(fy.shape[0], q.shape[0], -1).transpose(0, 1))
            bar.update(q.shape[0])
    return observed, torch.cat(out)
