"""Comparing RDMs: rank transforms and batched comparison of condensed RDM vectors.

All functions here are pure torch: they take tensors of condensed RDM vectors (scipy ``pdist``
order, last axis) and broadcast over every leading axis. The labelled entry point
:func:`neurobridge.rsa.compare` (in ``_api``) wraps :func:`compare_vectors`.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from neurobridge.core import check_finite

__all__ = ["rank", "compare_vectors", "COMPARE_METHODS", "n_from_pairs"]

COMPARE_METHODS = ("spearman", "pearson", "kendall", "tau-b", "rho-a", "cosine", "corr_cov", "cosine_cov")
"""Names accepted by :func:`compare_vectors`: ``kendall`` is Kendall's tau-a (no tie correction, as
recommended for RSA by Nili et al. 2014; rsatoolbox's ``"tau-a"``), ``tau-b`` is the tie-corrected tau
(scipy's default; rsatoolbox's ``"kendall"``); ``corr_cov``/``cosine_cov`` are the whitened pearson and
cosine similarities of rsatoolbox (Diedrichsen et al. 2021)."""


def n_from_pairs(n_pairs: int) -> int:
    """Number of stimuli ``n`` with ``n * (n - 1) / 2 == n_pairs``; raises if there is none.

    Examples
    --------
    >>> n_from_pairs(4186)
    92
    """
    n = int(round((1 + math.sqrt(1 + 8 * n_pairs)) / 2))
    if n * (n - 1) // 2 != n_pairs:
        raise ValueError(f"a condensed RDM vector has n*(n-1)/2 entries; {n_pairs} is not such a number")
    return n


# ----------------------------------------------------------------------------------------------- ranks
_RANK_BLOCK_ELEMENTS = 2**18
"""Entries ranked together (up to 64 rows): their int64 keys (2 MB) stay in cache; long rows (a
1000-stimulus RDM has 499,500 entries) go one at a time."""


def _average_tied(svals: np.ndarray, pos: np.ndarray, dtype) -> np.ndarray:
    """Average ranks (1-based) of one sorted row ``svals`` that has ties."""
    n = len(svals)
    new = np.ones(n, dtype=bool)
    new[1:] = svals[1:] != svals[:-1]
    start = np.maximum.accumulate(np.where(new, pos, 0))
    last = np.ones(n, dtype=bool)
    last[:-1] = new[1:]
    end = np.minimum.accumulate(np.where(last, pos, n - 1)[::-1])[::-1]
    return (start + end).astype(dtype) / 2 + 1


def _rank_rows_numpy(x: np.ndarray, out: np.ndarray) -> None:
    """Average ranks of each row of a C-contiguous 2-d float array into ``out`` (numpy, one thread).

    float32 values and their positions are packed into one int64 key (order-preserving int32 of the
    value in the high half, the column in the low half), so one SIMD sort per row yields the permutation;
    blocks of rows go through each step together, ties included (no Python work per row), in reused
    buffers. float64 rows use a stable argsort, one row at a time.
    """
    n = x.shape[1]
    pos = np.arange(n, dtype=np.int64)
    ranks_plain = (pos + 1).astype(out.dtype)[None, :]
    if x.dtype != np.float32 or n >= 2**31:
        for r in range(x.shape[0]):
            perm = np.argsort(x[r], kind="stable")
            svals = x[r][perm]
            if (svals[1:] == svals[:-1]).any():
                out[r][perm] = _average_tied(svals, pos, out.dtype)
            else:
                out[r][perm] = ranks_plain[0]
        return
    bsz = max(1, min(64, _RANK_BLOCK_ELEMENTS // max(n, 1), x.shape[0]))
    offsets = (np.arange(bsz, dtype=np.int64) * n)[:, None]  # flat scatter: 6x faster than put_along_axis
    tiled = np.broadcast_to(ranks_plain, (bsz, n)).reshape(-1)
    v32 = np.empty((bsz, n), np.float32)
    tmp = np.empty((bsz, n), np.int32)
    key = np.empty((bsz, n), np.int64)
    hi = np.empty((bsz, n), np.int64)
    for s in range(0, x.shape[0], bsz):
        m = min(bsz, x.shape[0] - s)
        xb, ob = x[s:s + m], out[s:s + m]
        vb, tb, kb, hb = v32[:m], tmp[:m], key[:m], hi[:m]
        ib = xb.view(np.int32)
        if ib.min() < 0:  # negative values or -0.0 (distances rarely have any: then 4 passes are skipped)
            np.add(xb, np.float32(0.0), out=vb)  # + 0.0 merges -0.0 into 0.0
            ib = vb.view(np.int32)
            np.right_shift(ib, 31, out=tb)  # order-preserving int32: flip the magnitude bits of negatives
            np.bitwise_and(tb, 0x7FFFFFFF, out=tb)
            np.bitwise_xor(ib, tb, out=tb)
            ib = tb
        np.left_shift(ib, 32, out=kb, dtype=np.int64)  # the bits of a non-negative float32 sort as int32
        np.bitwise_or(kb, pos, out=kb)
        kb.sort(axis=1)
        np.right_shift(kb, 32, out=hb)  # sorted values (as keys)
        eq = hb[:, 1:] == hb[:, :-1]  # ties between neighbours in sorted order
        np.bitwise_and(kb, 0xFFFFFFFF, out=kb)  # the permutation
        if ob.flags.c_contiguous:
            np.add(kb, offsets[:m], out=hb)  # flat indices (hb is free again)
            ob.reshape(-1)[hb.reshape(-1)] = tiled[: m * n]
        else:
            np.put_along_axis(ob, kb, ranks_plain, axis=1)
        if eq.any():  # float32 RDMs have a few ties per row: fix them all at once, not row by row
            _average_ties(ob, kb, eq)


def _average_ties(ob: np.ndarray, perm: np.ndarray, eq: np.ndarray) -> None:
    """Give tied entries their average rank: ``eq[r, k]`` says sorted positions k and k + 1 of row r tie;
    ``perm`` maps sorted positions to columns; ``ob`` holds the plain ranks ``k + 1``."""
    r_i, k_i = np.nonzero(eq)
    flat = r_i * (eq.shape[1] + 1) + k_i
    first = np.ones(len(flat), dtype=bool)
    first[1:] = flat[1:] != flat[:-1] + 1  # a run of ties starts here
    last = np.ones(len(flat), dtype=bool)
    last[:-1] = first[1:]
    avg = (k_i[first] + k_i[last] + 1) / 2 + 1  # positions k_first .. k_last + 1, 1-based
    vals = avg[np.cumsum(first) - 1].astype(ob.dtype)
    ob[r_i, perm[r_i, k_i]] = vals
    ob[r_i, perm[r_i, k_i + 1]] = vals


def _rank_numpy(x2: np.ndarray) -> np.ndarray:
    out = np.empty(x2.shape, dtype=x2.dtype)
    n_workers = max(1, min(torch.get_num_threads(), 8))
    if x2.shape[0] < 2 or x2.size < 1_000_000 or n_workers == 1:
        _rank_rows_numpy(x2, out)
        return out
    blocks = np.array_split(np.arange(x2.shape[0]), min(n_workers, x2.shape[0]))
    with ThreadPoolExecutor(len(blocks)) as pool:
        list(pool.map(lambda b: _rank_rows_numpy(x2[b[0]:b[-1] + 1], out[b[0]:b[-1] + 1]), blocks))
    return out


def _rank_torch(x2: torch.Tensor) -> torch.Tensor:
    n = x2.shape[-1]
    skeys, perm = torch.sort(x2, dim=-1, stable=True)
    pos = torch.arange(n, device=x2.device, dtype=torch.int64).expand_as(perm)
    new = torch.ones_like(perm, dtype=torch.bool)
    new[:, 1:] = skeys[:, 1:] != skeys[:, :-1]
    if bool(new.all()):
        ranks_sorted = (pos + 1).to(x2.dtype)
    else:
        start = torch.cummax(torch.where(new, pos, torch.zeros_like(pos)), dim=-1).values
        last = torch.ones_like(new)
        last[:, :-1] = new[:, 1:]
        end = torch.flip(torch.cummin(torch.flip(torch.where(last, pos, torch.full_like(pos, n - 1)), [-1]),
                                      dim=-1).values, [-1])
        ranks_sorted = (start + end).to(x2.dtype) / 2 + 1
    out = torch.empty_like(x2)
    out.scatter_(-1, perm, ranks_sorted)
    return out


def rank(x: torch.Tensor) -> torch.Tensor:
    """Ranks along the last axis, 1-based, ties get their average rank (``scipy.stats.rankdata``).

    On CPU the rows are ranked with numpy's SIMD sort (float32 values and their positions packed into
    one int64 key), in threads over row blocks; on CUDA with ``torch.sort``.

    Parameters
    ----------
    x : torch.Tensor, shape (..., n)
        Finite values (float32 or float64; integers are converted to float64).

    Returns
    -------
    torch.Tensor, shape (..., n)
        Ranks in ``x``'s floating dtype (float64 for integer input), on ``x``'s device.

    Examples
    --------
    >>> rank(torch.tensor([3.0, 1.0, 3.0, 2.0])).tolist()
    [3.5, 1.0, 3.5, 2.0]
    """
    if not x.is_floating_point():
        x = x.to(torch.float64)
    shape = x.shape
    n = shape[-1]
    if n == 0 or x.numel() == 0:
        return x.clone()
    x2 = x.detach().reshape(-1, n)
    if x2.device.type == "cpu" and x2.dtype in (torch.float32, torch.float64):
        return torch.from_numpy(_rank_numpy(np.ascontiguousarray(x2.numpy()))).reshape(shape)
    return _rank_torch(x2.contiguous()).reshape(shape)


# ------------------------------------------------------------------------------------------- helpers
def _pair_index(n: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    i, j = torch.triu_indices(n, n, offset=1, device=device)
    return i, j


def _center(v: torch.Tensor) -> torch.Tensor:
    return v - v.mean(-1, keepdim=True)


def _unit(v: torch.Tensor) -> torch.Tensor:
    """Scale to unit norm along the last axis; zero vectors stay zero (rsatoolbox gives 0 similarity)."""
    norm = torch.linalg.vector_norm(v, dim=-1, keepdim=True)
    return torch.where(norm > 0, v / torch.where(norm > 0, norm, torch.ones_like(norm)), torch.zeros_like(v))


def _pairwise_dot(xf: torch.Tensor, yf: torch.Tensor) -> torch.Tensor:
    """Sum over the last axis of ``xf * yf`` with broadcasting of the leading axes, GEMM when it pays."""
    lead = torch.broadcast_shapes(xf.shape[:-1], yf.shape[:-1])
    n = xf.shape[-1]
    bx = math.prod(xf.shape[:-1])
    by = math.prod(yf.shape[:-1])
    bout = math.prod(lead)
    if bx * by <= 4 * max(bout, 1) or bx == 1 or by == 1:
        # cross product of the two batches with one GEMM, then pick the broadcast pairs
        cross = xf.reshape(bx, n) @ yf.reshape(by, n).T
        ix = torch.arange(bx, device=xf.device).reshape(xf.shape[:-1]).expand(lead)
        iy = torch.arange(by, device=xf.device).reshape(yf.shape[:-1]).expand(lead)
        return cross[ix, iy]
    return (xf * yf).sum(-1)


def _as_pair(x, y) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(np.asarray(x))
    if not isinstance(y, torch.Tensor):
        y = torch.as_tensor(np.asarray(y), device=x.device)
    if not x.is_floating_point():
        x = x.to(torch.float64)
    dtype = torch.promote_types(x.dtype, y.dtype if y.is_floating_point() else x.dtype)
    x, y = x.to(dtype), y.to(device=x.device, dtype=dtype)
    if x.shape[-1] != y.shape[-1]:
        raise ValueError(f"condensed RDM vectors differ in length: {x.shape[-1]} vs {y.shape[-1]} entries; "
                         "the RDMs must be over the same stimuli (align them first)")
    try:
        torch.broadcast_shapes(x.shape[:-1], y.shape[:-1])
    except RuntimeError as err:
        raise ValueError(f"leading shapes {tuple(x.shape[:-1])} and {tuple(y.shape[:-1])} do not broadcast") from err
    check_finite(x, "the first RDM vector", fix="drop the affected stimuli or fill the entries first")
    check_finite(y, "the second RDM vector", fix="drop the affected stimuli or fill the entries first")
    return x, y


# ---------------------------------------------------------------------------------------- kendall
def _kendall_gemm(xf: torch.Tensor, yf: torch.Tensor, variant: str) -> torch.Tensor:
    """Kendall's tau as inner products of pair-sign vectors, blocked over rows (one GEMM per block).

    ``sum_{i != j} sign(x_i - x_j) sign(y_i - y_j) = 2 (concordant - discordant)``; signs are exact in
    float32 and block sums stay below 2^24, so the result is exact after accumulation in float64.
    """
    n = xf.shape[-1]
    bx, by = xf.shape[0], yf.shape[0]
    work = torch.float32
    rows = max(1, min(n, int(16_000_000 // max(1, (bx + by) * n))))
    num = torch.zeros(bx, by, dtype=torch.float64, device=xf.device)
    nx = torch.zeros(bx, dtype=torch.float64, device=xf.device)
    ny = torch.zeros(by, dtype=torch.float64, device=xf.device)
    for s in range(0, n, rows):
        e = min(n, s + rows)
        sx = torch.sign(xf[:, s:e, None] - xf[:, None, :]).to(work).reshape(bx, -1)
        sy = torch.sign(yf[:, s:e, None] - yf[:, None, :]).to(work).reshape(by, -1)
        num += (sx @ sy.T).double()
        nx += (sx * sx).sum(-1).double()
        ny += (sy * sy).sum(-1).double()
    if variant == "kendall":
        out = num / (n * (n - 1))
    else:
        den = torch.sqrt(nx[:, None] * ny[None, :])
        out = torch.where(den > 0, num / torch.where(den > 0, den, torch.ones_like(den)),
                          torch.full_like(num, float("nan")))
    return out.to(xf.dtype)


def _kendall_scipy(xf: torch.Tensor, yf: torch.Tensor, variant: str) -> torch.Tensor:
    """O(n log n) per pair through scipy (tau-b, converted to tau-a exactly with the tie counts)."""
    from scipy import stats

    xn, yn = xf.cpu().double().numpy(), yf.cpu().double().numpy()
    n = xn.shape[-1]
    n0 = n * (n - 1) / 2

    def ties(v):
        _, c = np.unique(v, return_counts=True)
        return float((c * (c - 1) / 2).sum())

    tx = [ties(v) for v in xn]
    ty = [ties(v) for v in yn]
    out = np.empty((len(xn), len(yn)))
    for a, va in enumerate(xn):
        for b, vb in enumerate(yn):
            tau_b = stats.kendalltau(va, vb).statistic
            if variant == "tau-b":
                out[a, b] = tau_b
            else:
                den = math.sqrt((n0 - tx[a]) * (n0 - ty[b]))
                out[a, b] = 0.0 if den == 0 else tau_b * den / n0
    return torch.as_tensor(out, dtype=xf.dtype, device=xf.device)


def _kendall(x: torch.Tensor, y: torch.Tensor, variant: str) -> torch.Tensor:
    lead = torch.broadcast_shapes(x.shape[:-1], y.shape[:-1])
    n = x.shape[-1]
    xf, yf = x.reshape(-1, n), y.reshape(-1, n)
    bx, by = xf.shape[0], yf.shape[0]
    # rough CPU cost model: O(n^2) sign blocks + GEMM vs scipy's O(n log n) per pair
    cost_gemm = n * n * (bx + by) * 4e-8 + n * n * bx * by * 4e-11
    cost_scipy = bx * by * n * math.log2(max(n, 2)) * 6e-7
    if x.device.type != "cpu" or (cost_gemm <= cost_scipy and n * n * (bx + by) <= 5e11):
        cross = _kendall_gemm(xf, yf, variant)
    else:
        cross = _kendall_scipy(xf, yf, variant)
    ix = torch.arange(xf.shape[0], device=x.device).reshape(x.shape[:-1]).expand(lead)
    iy = torch.arange(yf.shape[0], device=x.device).reshape(y.shape[:-1]).expand(lead)
    return cross[ix, iy]


# -------------------------------------------------------------------------------- whitened methods
def _row_sums(v: torch.Tensor, n: int) -> torch.Tensor:
    """Row sums of the square symmetric matrices with zero diagonal whose condensed form is ``v``."""
    i, j = _pair_index(n, v.device)
    out = torch.zeros(*v.shape[:-1], n, dtype=v.dtype, device=v.device)
    out.index_add_(-1, i, v)
    out.index_add_(-1, j, v)
    return out


def _square(v: torch.Tensor, n: int, diag: torch.Tensor | None = None) -> torch.Tensor:
    i, j = _pair_index(n, v.device)
    m = torch.zeros(*v.shape[:-1], n, n, dtype=v.dtype, device=v.device)
    m[..., i, j] = v
    m[..., j, i] = v
    if diag is not None:
        m.diagonal(dim1=-2, dim2=-1).copy_(diag)
    return m


def _centered_kernel(v: torch.Tensor, n: int) -> torch.Tensor:
    """Double-centred second-moment matrices ``H (-D/2) H`` from condensed distances."""
    g = -0.5 * _square(v, n)
    rm = g.mean(-1, keepdim=True)
    return g - rm - rm.transpose(-1, -2) + rm.mean(-2, keepdim=True)


def _rdm_entry_covariance(n: int, sigma: torch.Tensor) -> torch.Tensor:
    """rsatoolbox's covariance of RDM entries: ``(C Sigma C^T) o (C Sigma C^T)`` for the pairwise contrasts C."""
    i, j = _pair_index(n, sigma.device)
    if sigma.ndim == 1:
        sigma = torch.diag(sigma)
    # xi[p, q] = (e_i - e_j)^T Sigma (e_k - e_l) for p = (i, j), q = (k, l)
    xi = sigma[i][:, i] - sigma[i][:, j] - sigma[j][:, i] + sigma[j][:, j]
    return xi * xi


def _whitened(x: torch.Tensor, y: torch.Tensor, cov, center: bool) -> torch.Tensor:
    n_pairs = x.shape[-1]
    n = n_from_pairs(n_pairs)
    if center:
        x, y = _center(x), _center(y)
    if cov is None:
        # <H G1 H, H G2 H>_F with G = -D/2, written on condensed vectors (no n x n matrices):
        # = 1/2 d1.d2 - (2/n) r1.r2 + s1 s2 / n^2, r = row sums of G, s = sum of G
        def feats(v):
            r = -0.5 * _row_sums(v, n)
            s = -v.sum(-1, keepdim=True)
            return v, r, s

        vx, rx, sx = feats(x)
        vy, ry, sy = feats(y)

        def form(a, ra, sa, b, rb, sb):
            return (0.5 * _pairwise_dot(a, b) - (2.0 / n) * _pairwise_dot(ra, rb)
                    + _pairwise_dot(sa, sb) / n**2)

        num = form(vx, rx, sx, vy, ry, sy)
        nxx = (0.5 * (vx * vx).sum(-1) - (2.0 / n) * (rx * rx).sum(-1) + (sx * sx).sum(-1) / n**2)
        nyy = (0.5 * (vy * vy).sum(-1) - (2.0 / n) * (ry * ry).sum(-1) + (sy * sy).sum(-1) / n**2)
        den = torch.sqrt(nxx.clamp_min(0))
        den = _pairwise_dot(den[..., None], torch.sqrt(nyy.clamp_min(0))[..., None])
        return torch.where(den > 0, num / torch.where(den > 0, den, torch.ones_like(den)), torch.zeros_like(num))
    cov = torch.as_tensor(np.asarray(cov) if not isinstance(cov, torch.Tensor) else cov).to(x.device, x.dtype)
    if cov.ndim == 1:
        if cov.shape[0] != n:
            raise ValueError(f"cov as a vector holds the variance of each of the {n} stimuli; got {cov.shape[0]} values")
        if not bool((cov > 0).all()):
            raise ValueError("cov (stimulus variances) must be positive")
        s = torch.sqrt(cov)
        gx = _centered_kernel(x, n) / (s[:, None] * s[None, :])
        gy = _centered_kernel(y, n) / (s[:, None] * s[None, :])
        return _pairwise_dot(_unit(gx.flatten(-2)), _unit(gy.flatten(-2)))
    if cov.ndim == 2 and cov.shape == (n, n) and n != n_pairs:
        v = _rdm_entry_covariance(n, cov)
    elif cov.ndim == 2 and cov.shape == (n_pairs, n_pairs):
        v = cov
    else:
        raise ValueError(f"cov must be the stimulus covariance, shape ({n},) or ({n}, {n}), or the covariance of "
                         f"the RDM entries, shape ({n_pairs}, {n_pairs}); got {tuple(cov.shape)}")
    if n_pairs > 20_000:
        raise ValueError(f"whitening with a full covariance needs a {n_pairs} x {n_pairs} solve; use cov=None or a "
                         "diagonal (1-d) stimulus covariance for this many stimuli")
    # inner products x^T V^-1 y through a Cholesky factor: whiten both sides once
    chol = torch.linalg.cholesky(v)
    wx = torch.linalg.solve_triangular(chol, x.reshape(-1, n_pairs).T, upper=False).T.reshape(x.shape)
    wy = torch.linalg.solve_triangular(chol, y.reshape(-1, n_pairs).T, upper=False).T.reshape(y.shape)
    return _pairwise_dot(_unit(wx), _unit(wy))


def _prepare(v: torch.Tensor, method: str) -> torch.Tensor:
    """Transform vectors so that ``method`` is a plain inner product (spearman, pearson, cosine, rho-a)."""
    n = v.shape[-1]
    if method == "cosine":
        return _unit(v)
    if method == "pearson":
        return _unit(_center(v))
    if method in RANK_METHODS:
        r = rank(v)  # a fresh tensor: centre and scale in place (average ranks always sum to n(n+1)/2)
        r.sub_((n + 1) / 2)
        if method == "rho-a":
            return r.mul_(math.sqrt(12.0 / (n**3 - n)))
        norm = torch.linalg.vector_norm(r, dim=-1, keepdim=True)
        return r.div_(torch.where(norm > 0, norm, torch.ones_like(norm)))
    raise ValueError(f"method {method!r} is not an inner product of transformed vectors")


DOT_METHODS = ("spearman", "pearson", "cosine", "rho-a")
RANK_METHODS = ("spearman", "rho-a")


# ---------------------------------------------------------------------------------------- public
def compare_vectors(x, y, method: str = "spearman", *, cov=None) -> torch.Tensor:
    """Similarity of condensed RDM vectors, broadcasting over the leading axes.

    Parameters
    ----------
    x, y : torch.Tensor (or array-like), shapes (..., n_pairs)
        Condensed RDMs (``scipy.spatial.distance.pdist`` order). The leading shapes broadcast, so
        ``x`` of shape (1, T, n_pairs) against ``y`` of shape (L, 1, n_pairs) gives an (L, T) map.
    method : str
        One of :data:`COMPARE_METHODS`:

        - ``"spearman"``: Pearson correlation of ranks (ties averaged, as scipy).
        - ``"pearson"``: Pearson correlation.
        - ``"kendall"``: Kendall's tau-a, ``(concordant - discordant) / (n (n-1) / 2)``.
        - ``"tau-b"``: Kendall's tau-b (``scipy.stats.kendalltau``).
        - ``"rho-a"``: Spearman's rho-a, ``12 * sum(rc_x * rc_y) / (n^3 - n)`` of centred ranks.
        - ``"cosine"``: cosine similarity (0 when a vector is all zeros).
        - ``"cosine_cov"`` / ``"corr_cov"``: whitened cosine / Pearson similarity with the covariance of
          RDM entries as in rsatoolbox (``corr_cov`` centres the vectors first).
    cov : array or tensor, optional
        For the whitened methods only: ``None`` (rsatoolbox's default: independent, equal-variance
        pattern estimates, computed as a centred-kernel alignment), the stimulus covariance
        (``sigma_k`` in rsatoolbox; shape (n,) for a diagonal, or (n, n)), or the covariance of the RDM
        entries itself, shape (n_pairs, n_pairs).

    Returns
    -------
    torch.Tensor, shape broadcast(x.shape[:-1], y.shape[:-1])
        In the promoted floating dtype of the inputs, on ``x``'s device.

    Examples
    --------
    >>> x = torch.tensor([[0.1, 0.5, 0.3]], dtype=torch.float64)
    >>> y = torch.tensor([[1.0, 3.0, 2.0], [3.0, 2.0, 1.0]], dtype=torch.float64)
    >>> [round(v, 6) for v in compare_vectors(x, y, "spearman").tolist()]
    [1.0, -0.5]
    """
    if method not in COMPARE_METHODS:
        raise ValueError(f"unknown comparison method {method!r}; expected one of {list(COMPARE_METHODS)}")
    x, y = _as_pair(x, y)
    n = x.shape[-1]
    if n < 2:
        raise ValueError(f"need at least 2 RDM entries (3 stimuli) to compare, got {n}")
    if cov is not None and method not in ("corr_cov", "cosine_cov"):
        raise ValueError(f"cov= is only used by 'corr_cov' and 'cosine_cov', not {method!r}")
    if method in DOT_METHODS:
        return _pairwise_dot(_prepare(x, method), _prepare(y, method))
    if method in ("kendall", "tau-b"):
        return _kendall(x, y, method)
    return _whitened(x, y, cov, center=(method == "corr_cov"))
