"""Compiled (numba) CPU kernels for rank comparisons of many RDMs against a few fixed model RDMs.

Spearman's rho (and rho-a) of a brain RDM against a model only needs ``sum_i rank_i w_i`` for the centred
model ranks ``w`` and the tie count of the brain RDM: the ranks themselves never have to be stored. Per
row, the values are quantised to ``32 - b`` bits (``2**b >= n``) over their own range and packed with
their position into one ``uint32`` key, sorted by an LSD radix sort on the value bits (two passes of at most
11 bits, buffers in L1), and scanned once. Quantisation is monotone, so it can only merge values, never
swap them: the few runs of equal keys (dozens per 5000-entry row) are re-sorted on the exact values,
which also finds the exact ties and their average ranks. Results equal ``pearson(rankdata(x), rankdata(m))``
(scipy) up to float64 rounding.

A row of 4950 entries (100 conditions) takes ~27 us on one core (~33 us when the kernel also forms the
distances from inner products), against ~70 us for numpy's SIMD sort of packed int64 keys plus the rank
scatter and a GEMM. Rows are split over threads (the kernels release the
GIL). Imported lazily: importing numba costs a fraction of a second, and the kernels compile on first use
(cached on disk afterwards).

:func:`distances_from_gram` is the finishing pass of ``_rdm.rdm_tensor`` on the CPU: distances from the
inner products of one GEMM, symmetrised and written in place (square RDMs) or into condensed vectors, in
64 x 64 tiles so that the transposed reads stay in L1. On 200 RDMs of 1000 stimuli (float32, 2 threads)
it takes ~0.15 s, where the torch expression ``0.5 * (d + d.mT)`` took ~3.5 s (strided reads of 800 MB).
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
import torch

__all__ = ["rank_dot_rows", "rank_dot_matrices", "max_pairs", "distances_from_gram"]

_DIGIT_BITS = 11
"""Bits per radix pass: two passes sort up to 22 value bits with 2048-entry histograms (L1-resident)."""

_MIN_VALUE_BITS = 16
"""Fewer value bits than this (more than 2**16 pairs, i.e. over 362 conditions) and the runs of merged
values grow long; callers use the general rank path there (see :func:`max_pairs`)."""

_GAPS = (44842, 19930, 8858, 3937, 1750, 701, 301, 132, 57, 23, 10, 4, 1)
"""Shell sort gaps for runs of equal keys: Ciura's sequence, extended by x2.25 up to ``max_pairs()``."""


def max_pairs() -> int:
    """Largest condensed length the kernels take (value bits >= ``_MIN_VALUE_BITS``)."""
    return 1 << (32 - _MIN_VALUE_BITS)


@numba.njit(nogil=True, cache=True, fastmath=True)
def _minmax(v):
    mn = v[0]
    mx = v[0]
    for t in range(1, v.shape[0]):
        mn = min(mn, v[t])
        mx = max(mx, v[t])
    return mn, mx


@numba.njit(nogil=True, cache=True)
def _sort_keys(v, ka, kb, h_lo, h_hi, ib, d_lo, d_hi):
    """Radix-sort ``(q(v_t) << ib) | t`` into ``ka`` (``kb`` is scratch): q quantises v monotonically onto
    ``[0, 2**(d_lo + d_hi))`` over [min(v), max(v)]."""
    n = v.shape[0]
    vb = d_lo + d_hi
    qmax = float((1 << vb) - 1)
    mn, mx = _minmax(v)
    span = float(mx) - float(mn)
    scale = qmax / span if span > 0 else 0.0
    lo_mask = np.uint32((1 << d_lo) - 1)
    h_lo[:] = 0
    h_hi[:] = 0
    fmn = float(mn)
    for t in range(n):
        qf = (float(v[t]) - fmn) * scale
        if not qf > 0.0:  # also catches NaN: keys must stay in range whatever the input
            qf = 0.0
        if qf > qmax:
            qf = qmax
        q = np.uint32(np.int32(qf))
        ka[t] = (q << ib) | np.uint32(t)
        h_lo[q & lo_mask] += 1
        h_hi[q >> d_lo] += 1
    s = 0
    for b in range(h_lo.shape[0]):
        c = h_lo[b]
        h_lo[b] = s
        s += c
    s = 0
    for b in range(h_hi.shape[0]):
        c = h_hi[b]
        h_hi[b] = s
        s += c
    for t in range(n):  # stable passes: low digit, then high digit
        key = ka[t]
        d = (key >> ib) & lo_mask
        kb[h_lo[d]] = key
        h_lo[d] += 1
    for t in range(n):
        key = kb[t]
        d = key >> (ib + d_lo)
        ka[h_hi[d]] = key
        h_hi[d] += 1


@numba.njit(nogil=True, cache=True)
def _sort_run(v, ka, k0, k1, mask, obuf):
    """Columns of sorted positions k0..k1-1 (equal quantised keys) into ``obuf[:k1 - k0]``, ordered by the
    exact values: Shell sort (Ciura's gaps), which is insertion sort for the usual runs of 2-3 entries and
    stays fast on the long runs of heavily tied data. Order among equal values does not matter (they share
    their average rank)."""
    n_run = k1 - k0
    for t in range(n_run):
        obuf[t] = ka[k0 + t] & mask
    for gap in _GAPS:
        if gap >= n_run:
            continue
        for a in range(gap, n_run):
            c = obuf[a]
            val = v[c]
            b = a
            while b >= gap and v[obuf[b - gap]] > val:
                obuf[b] = obuf[b - gap]
                b -= gap
            obuf[b] = c


@numba.njit(nogil=True, cache=True)
def _rank_dot(v, ka, ib, w, acc, obuf, coll):
    """``acc[m] = sum_i rank(v)_i w[m, i]`` (average ranks, 1-based) from the sorted keys ``ka``; returns
    ``sum (t^3 - t)`` over the groups of exactly tied values."""
    n = v.shape[0]
    mask = np.uint32((1 << ib) - 1)
    for m in range(w.shape[0]):
        wm = w[m]
        a0 = 0.0
        a1 = 0.0
        a2 = 0.0
        a3 = 0.0
        k = 0
        while k + 4 <= n:  # four partial sums: the additions do not wait on each other
            a0 += (k + 1.0) * wm[ka[k] & mask]
            a1 += (k + 2.0) * wm[ka[k + 1] & mask]
            a2 += (k + 3.0) * wm[ka[k + 2] & mask]
            a3 += (k + 4.0) * wm[ka[k + 3] & mask]
            k += 4
        while k < n:
            a0 += (k + 1.0) * wm[ka[k] & mask]
            k += 1
        acc[m] = (a0 + a1) + (a2 + a3)
    # positions whose quantised key equals the previous one (branch-free append)
    nc = 0
    prev = ka[0] >> ib
    for k in range(1, n):
        q = ka[k] >> ib
        coll[nc] = k
        nc += q == prev
        prev = q
    ties = 0.0
    j = 0
    while j < nc:  # one run of equal keys: sorted positions k0..k1-1
        e = j + 1
        while e < nc and coll[e] == coll[e - 1] + 1:
            e += 1
        k0 = coll[j] - 1
        k1 = coll[e - 1] + 1
        j = e
        _sort_run(v, ka, k0, k1, mask, obuf)
        n_run = k1 - k0
        for t in range(n_run):  # undo the plain ranks of the run, then add the exact ones
            c0 = ka[k0 + t] & mask
            for m in range(w.shape[0]):
                acc[m] -= (k0 + 1.0 + t) * w[m, c0]
        a = 0
        while a < n_run:
            b = a + 1
            va = v[obuf[a]]
            while b < n_run and v[obuf[b]] == va:
                b += 1
            r = k0 + (a + b + 1) * 0.5  # average of the 1-based positions k0 + a + 1 .. k0 + b
            g = b - a
            if g > 1:
                ties += g * g * g - g
            for t in range(a, b):
                c = obuf[t]
                for m in range(w.shape[0]):
                    acc[m] += r * w[m, c]
            a = b
    return ties


@numba.njit(nogil=True, cache=True)
def _finish(acc, ties, n, spearman, out_row):
    """Spearman: divide by the norm of the centred ranks, ``sqrt((n^3 - n - ties) / 12)`` (0 when every
    value ties, as for any constant vector); rho-a: scale by ``sqrt(12 / (n^3 - n))``."""
    full = (float(n) ** 3 - n) / 12.0
    if spearman:
        den = full - ties / 12.0
        f = 1.0 / math.sqrt(den) if den > 0 else 0.0
    else:
        f = 1.0 / math.sqrt(full)
    for m in range(acc.shape[0]):
        out_row[m] = acc[m] * f


@numba.njit(nogil=True, cache=True)
def _digits(n):
    ib = 1
    while (1 << ib) < n:
        ib += 1
    vb = min(32 - ib, 2 * _DIGIT_BITS)
    d_lo = vb // 2
    return ib, d_lo, vb - d_lo


@numba.njit(nogil=True, cache=True)
def _scratch(n, n_models):
    """Digit layout and the per-thread buffers for rows of ``n`` values (all L1/L2-sized for n ~ 5000)."""
    ib, d_lo, d_hi = _digits(n)
    return (ib, d_lo, d_hi, np.empty(n, np.uint32), np.empty(n, np.uint32), np.empty(1 << d_lo, np.int64),
            np.empty(1 << d_hi, np.int64), np.empty(n, np.uint32), np.empty(n, np.int64),
            np.empty(n_models, np.float64))


@numba.njit(nogil=True, cache=True)
def _rank_row(v, scratch, w, spearman, out_row):
    """Spearman (or rho-a) of the values ``v`` with each prepared model row of ``w``, into ``out_row``."""
    ib, d_lo, d_hi, ka, kb, h_lo, h_hi, obuf, coll, acc = scratch
    _sort_keys(v, ka, kb, h_lo, h_hi, ib, d_lo, d_hi)
    ties = _rank_dot(v, ka, ib, w, acc, obuf, coll)
    _finish(acc, ties, v.shape[0], spearman, out_row)


@numba.njit(nogil=True, cache=True)
def _rows_kernel(x, w, spearman, out):
    scratch = _scratch(x.shape[1], w.shape[0])
    for r in range(x.shape[0]):
        _rank_row(x[r], scratch, w, spearman, out[r])


@numba.njit(nogil=True, cache=True)
def _matrices_kernel(p, a, b, euclidean, w, spearman, out):
    """As ``_rows_kernel`` on the upper triangles of (R, n, n) matrices, turned into distances on the fly
    with the same float operations as ``_maps._sphere_matrices`` + ``_condensed_distances``: correlation and
    cosine ``1 - (p_ij a_i) a_j`` (``a`` inverse norms), euclidean ``(-2 p_ij + a_i + a_j) / b`` (``a`` sums
    of squares, ``b`` feature counts)."""
    n_rows, n_cond, _ = p.shape
    n = n_cond * (n_cond - 1) // 2
    scratch = _scratch(n, w.shape[0])
    v = np.empty(n, p.dtype)
    one = p.dtype.type(1.0)
    m2 = p.dtype.type(-2.0)
    for r in range(n_rows):
        t = 0
        ar = a[r]
        br = b[r]
        for i in range(n_cond - 1):
            pi = p[r, i]
            ai = ar[i]
            off = t - i - 1  # v[off + j] for j > i: no loop-carried index, so the loop vectorises
            if euclidean:
                for j in range(i + 1, n_cond):
                    v[off + j] = (pi[j] * m2 + ai + ar[j]) / br
            else:
                for j in range(i + 1, n_cond):
                    v[off + j] = one - pi[j] * ai * ar[j]
            t += n_cond - 1 - i
        _rank_row(v, scratch, w, spearman, out[r])


def _split(n_rows: int, threads: int | None, fn, *arrays_by_rows) -> None:
    """Run ``fn(*row_slices)`` over contiguous row blocks, one per thread (default: torch's thread count); the
    kernels release the GIL."""
    n_workers = max(1, min(threads or torch.get_num_threads(), n_rows // 16 or 1))
    if n_workers == 1:
        fn(*arrays_by_rows)
        return
    bounds = np.linspace(0, n_rows, n_workers + 1).astype(int)
    with ThreadPoolExecutor(n_workers) as pool:
        list(pool.map(lambda i: fn(*(arr[bounds[i]:bounds[i + 1]] for arr in arrays_by_rows)), range(n_workers)))


def _model_weights(prepared: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(prepared.detach().cpu().numpy(), dtype=np.float64)


def rank_dot_rows(x: torch.Tensor, prepared: torch.Tensor, method: str, *, threads: int | None = None) -> torch.Tensor:
    """Spearman (or rho-a) of each row of ``x`` (R, n) with each model (M, n), given the models prepared by
    ``_compare._prepare`` (centred ranks, unit norm for Spearman). Returns (R, M) in x's dtype."""
    xs = np.ascontiguousarray(x.detach().numpy())
    out = np.empty((xs.shape[0], prepared.shape[0]), np.float64)
    w = _model_weights(prepared)
    spearman = method == "spearman"
    _split(xs.shape[0], threads, lambda xb, ob: _rows_kernel(xb, w, spearman, ob), xs, out)
    return torch.from_numpy(out).to(x.dtype)


def rank_dot_matrices(p: torch.Tensor, a: torch.Tensor, b: torch.Tensor | None, metric: str,
                      prepared: torch.Tensor, method: str, *, threads: int | None = None) -> torch.Tensor:
    """As :func:`rank_dot_rows` on the distances of (R, n, n) matrices (see ``_matrices_kernel``)."""
    pn = p.detach().numpy()
    an = a.detach().numpy()
    euclidean = metric == "euclidean"
    bn = (b.detach().numpy() if euclidean else np.ones(pn.shape[0], pn.dtype)).astype(pn.dtype)
    out = np.empty((pn.shape[0], prepared.shape[0]), np.float64)
    w = _model_weights(prepared)
    spearman = method == "spearman"
    _split(pn.shape[0], threads, lambda pb, ab, bb, ob: _matrices_kernel(pb, ab, bb, euclidean, w, spearman, ob),
           pn, an, bn, out)
    return torch.from_numpy(out).to(p.dtype)


# --------------------------------------------------------------------- distances from inner products
_TILE = 64
"""Rows per task and columns per tile of :func:`_distance_tasks`: a 64 x 64 tile and its transpose
(16 KiB each in float32) stay in L1 while both are read."""


@numba.njit(nogil=True, cache=True)
def _distance_tasks(k, diag, scale, one_minus, tasks, cond, bad):
    """Distances of the row blocks ``tasks[s] = (b, i0, i1)`` of the (B, n, n) inner products ``k``.

    ``one_minus``: ``d_ij = 1 - (k_ij + k_ji) / 2``; else ``d_ij = (k_ii + k_jj - k_ij - k_ji) * scale[b]``
    (``diag`` holds the k_ii, read before any are overwritten). Each pair i < j is read and written by the
    task owning row i only, so tasks can run in any order, on any thread. ``cond`` of shape (B, n_pairs)
    receives the condensed vectors (``pdist`` order); with zero rows, ``k`` itself becomes the symmetric
    square RDMs with an exact zero diagonal. ``bad[s]`` is 0 unless a distance of task ``s`` is NaN or
    inf (it accumulates ``d * 0``)."""
    n = k.shape[1]
    square = cond.shape[0] == 0
    one = k.dtype.type(1.0)
    half = k.dtype.type(0.5)
    zero = k.dtype.type(0.0)
    for s in range(tasks.shape[0]):
        b = tasks[s, 0]
        i0 = tasks[s, 1]
        i1 = tasks[s, 2]
        kb = k[b]
        db = diag[b]
        f = k.dtype.type(scale[b])
        acc = zero
        for j0 in range(i0, n, _TILE):
            j1 = min(j0 + _TILE, n)
            for i in range(i0, min(i1, j1)):
                js = max(j0, i + 1)
                di = db[i]
                if square:
                    for j in range(js, j1):
                        if one_minus:
                            v = one - half * (kb[i, j] + kb[j, i])
                        else:
                            v = (di + db[j] - kb[i, j] - kb[j, i]) * f
                        kb[i, j] = v
                        kb[j, i] = v
                        acc += v * zero
                else:
                    off = i * n - (i * (i + 1)) // 2 - i - 1  # cond[b, off + j] is pair (i, j)
                    cb = cond[b]
                    for j in range(js, j1):
                        if one_minus:
                            v = one - half * (kb[i, j] + kb[j, i])
                        else:
                            v = (di + db[j] - kb[i, j] - kb[j, i]) * f
                        cb[off + j] = v
                        acc += v * zero
        if square:
            for i in range(i0, i1):
                kb[i, i] = zero
        bad[s] = acc


def distances_from_gram(k: np.ndarray, scale: np.ndarray, one_minus: bool, cond: np.ndarray | None = None, *,
                        threads: int | None = None) -> bool:
    """RDMs from inner products ``k`` (B, n, n), C-contiguous float32/float64, over threads.

    ``one_minus``: ``1 - (k_ij + k_ji) / 2`` (correlation, cosine on unit-norm patterns); else
    ``(k_ii + k_jj - k_ij - k_ji) * scale[b]`` (euclidean, mahalanobis, crossnobis, poisson; ``scale`` (B,)
    is 1 / n_features). With ``cond`` (B, n_pairs) the condensed vectors go there and ``k`` is left as it
    is; without, ``k`` is overwritten by the symmetric square RDMs (exact zero diagonal). Returns whether
    every distance is finite.

    Examples
    --------
    >>> k = np.array([[[1.0, 0.5], [0.3, 1.0]]])  # inner products of two unit-norm patterns
    >>> distances_from_gram(k, np.ones(1), True), k[0].tolist()
    (True, [[0.0, 0.6], [0.6, 0.0]])
    """
    n_b, n, _ = k.shape
    diag = np.ascontiguousarray(np.diagonal(k, axis1=1, axis2=2))
    starts = np.arange(0, n, _TILE)
    tasks = np.empty((n_b * len(starts), 3), np.int64)
    tasks[:, 0] = np.repeat(np.arange(n_b), len(starts))
    tasks[:, 1] = np.tile(starts, n_b)
    tasks[:, 2] = np.minimum(tasks[:, 1] + _TILE, n)
    bad = np.zeros(len(tasks), k.dtype)
    c = cond if cond is not None else np.empty((0, 0), k.dtype)
    scale = np.ascontiguousarray(np.broadcast_to(np.asarray(scale, np.float64), (n_b,)))
    n_workers = max(1, min(threads or torch.get_num_threads(), len(tasks)))
    if n_workers == 1:
        _distance_tasks(k, diag, scale, one_minus, tasks, c, bad)
    else:  # interleaved tasks: rows near the top of a matrix hold more pairs than those near the bottom
        with ThreadPoolExecutor(n_workers) as pool:
            list(pool.map(lambda w: _distance_tasks(k, diag, scale, one_minus, tasks[w::n_workers], c,
                                                    bad[w::n_workers]), range(n_workers)))
    return bool((bad == 0).all())
