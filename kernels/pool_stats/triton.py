"""Triton implementation of the fused pooling + statistics (+ int8) pass; see ``reference.py`` for the spec.

One program per (row, block of units) streams the row's tokens once in tiles of ``BLOCK_T``: it accumulates the
masked sum / max for pooling, the tile mean and M2 merged into running per-unit moments (Chan et al.), max |x| with
its token, and the zero / positive counts. Per-row partial moments (``batch x units``, tiny next to the input) are
merged over rows in torch. A second small kernel turns the pooled features into per-unit int8 codes. Values are
loaded in their dtype and converted to float32 for all arithmetic (bf16 arithmetic is wrong under the interpreter);
pooled features are written in float32 (so int8 codes come from float32 values) and cast back to the input dtype.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .reference import PoolStats, merge_rows, pool_index

__all__ = ["pool_stats"]

_MODES = {"mean": 0, "max": 1, "first": 2, "last": 2, "none": 3}


@triton.jit
def _pool_stats_kernel(
    x_ptr, mask_ptr, idx_ptr, pooled_ptr, rcount_ptr, rmean_ptr, rm2_ptr, rabsmax_ptr, rargmax_ptr,
    rzero_ptr, rpos_ptr,
    T, U, sxb, sxt, sxu, smb, smt,
    MODE: tl.constexpr, HAS_MASK: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_U: tl.constexpr,
):
    b = tl.program_id(0)
    pu = tl.program_id(1)
    offs_u = pu * BLOCK_U + tl.arange(0, BLOCK_U)
    umask = offs_u < U
    n = tl.zeros((BLOCK_U,), dtype=tl.float32)
    mean = tl.zeros((BLOCK_U,), dtype=tl.float32)
    m2 = tl.zeros((BLOCK_U,), dtype=tl.float32)
    amax = tl.full((BLOCK_U,), -1.0, dtype=tl.float32)
    arg = tl.zeros((BLOCK_U,), dtype=tl.int32)
    nzero = tl.zeros((BLOCK_U,), dtype=tl.float32)
    npos = tl.zeros((BLOCK_U,), dtype=tl.float32)
    psum = tl.zeros((BLOCK_U,), dtype=tl.float32)
    pmax = tl.full((BLOCK_U,), float("-inf"), dtype=tl.float32)
    x_row = x_ptr + b * sxb
    for t0 in range(0, T, BLOCK_T):
        offs_t = t0 + tl.arange(0, BLOCK_T)
        valid_t = offs_t < T
        if HAS_MASK:
            m = tl.load(mask_ptr + b * smb + offs_t * smt, mask=valid_t, other=0)
            valid_t = valid_t & (m != 0)
        vf = valid_t.to(tl.float32)
        valid = valid_t[:, None] & umask[None, :]
        ptrs = x_row + offs_t[:, None] * sxt + offs_u[None, :] * sxu
        x = tl.load(ptrs, mask=valid, other=0.0).to(tl.float32)
        nt = tl.sum(vf, axis=0)
        tsum = tl.sum(x, axis=0)
        tmean = tsum / tl.maximum(nt, 1.0)
        d = (x - tmean[None, :]) * vf[:, None]
        tm2 = tl.sum(d * d, axis=0)
        ntot = n + nt
        w = nt / tl.maximum(ntot, 1.0)
        delta = tmean - mean
        mean = mean + delta * w
        m2 = m2 + tm2 + delta * delta * n * w
        n = ntot
        ax = tl.where(valid, tl.abs(x), -1.0)
        tmax = tl.max(ax, axis=0)
        targ = tl.argmax(ax, axis=0).to(tl.int32) + t0
        upd = tmax > amax
        amax = tl.where(upd, tmax, amax)
        arg = tl.where(upd, targ, arg)
        nzero += tl.sum(tl.where(valid & (x == 0.0), 1.0, 0.0), axis=0)
        npos += tl.sum(tl.where(x > 0.0, 1.0, 0.0), axis=0)
        psum += tsum
        if MODE == 1:
            pmax = tl.maximum(pmax, tl.max(tl.where(valid, x, float("-inf")), axis=0))
    out = b * U + offs_u
    if MODE == 0:
        pooled = psum / tl.maximum(n, 1.0)
        tl.store(pooled_ptr + out, pooled, mask=umask)
    elif MODE == 1:
        pooled = tl.where(n > 0, pmax, 0.0)
        tl.store(pooled_ptr + out, pooled, mask=umask)
    elif MODE == 2:
        t = tl.load(idx_ptr + b)
        v = tl.load(x_row + t * sxt + offs_u * sxu, mask=umask, other=0.0).to(tl.float32)
        tl.store(pooled_ptr + out, v, mask=umask)
    if pu == 0:
        tl.store(rcount_ptr + b, tl.max(n, axis=0))
    tl.store(rmean_ptr + out, mean, mask=umask)
    tl.store(rm2_ptr + out, m2, mask=umask)
    tl.store(rabsmax_ptr + out, amax, mask=umask)
    tl.store(rargmax_ptr + out, arg.to(tl.int64), mask=umask)
    tl.store(rzero_ptr + out, nzero, mask=umask)
    tl.store(rpos_ptr + out, npos, mask=umask)


@triton.jit
def _int8_kernel(p_ptr, codes_ptr, scale_ptr, B, U, BLOCK_U: tl.constexpr):
    pu = tl.program_id(0)
    offs_u = pu * BLOCK_U + tl.arange(0, BLOCK_U)
    umask = offs_u < U
    amax = tl.zeros((BLOCK_U,), dtype=tl.float32)
    for b in range(0, B):
        v = tl.load(p_ptr + b * U + offs_u, mask=umask, other=0.0).to(tl.float32)
        amax = tl.maximum(amax, tl.abs(v))
    scale = tl.where(amax > 0, amax / 127.0, 1.0)
    tl.store(scale_ptr + offs_u, scale, mask=umask)
    for b in range(0, B):
        v = tl.load(p_ptr + b * U + offs_u, mask=umask, other=0.0).to(tl.float32)
        q = v / scale
        aq = tl.floor(tl.abs(q) + 0.5)
        q = tl.where(q < 0, -aq, aq)
        q = tl.minimum(tl.maximum(q, -127.0), 127.0)
        tl.store(codes_ptr + b * U + offs_u, q.to(tl.int8), mask=umask)


def _blocks(tokens: int, units: int) -> tuple[int, int]:
    block_u = min(128, triton.next_power_of_2(max(units, 1)))
    block_t = min(32, triton.next_power_of_2(max(tokens, 1)))
    return block_t, block_u


def pool_stats(
    x: torch.Tensor, mask: torch.Tensor | None = None, *, pooling: str = "mean", int8: bool = False
) -> PoolStats:
    """Triton version of :func:`kernels.pool_stats.reference.pool_stats` (same arguments and results)."""
    batch, tokens, units = x.shape
    dev = x.device
    f32 = dict(dtype=torch.float32, device=dev)
    pooled = torch.empty(batch, units, **f32) if pooling != "none" else None
    rcount = torch.zeros(batch, **f32)
    rmean = torch.empty(batch, units, **f32)
    rm2 = torch.empty(batch, units, **f32)
    rabsmax = torch.empty(batch, units, **f32)
    rargmax = torch.empty(batch, units, dtype=torch.int64, device=dev)
    rzero = torch.empty(batch, units, **f32)
    rpos = torch.empty(batch, units, **f32)
    if mask is not None:
        if mask.dtype == torch.bool:
            mask = mask.to(torch.uint8)
        smb, smt = mask.stride()
    else:
        smb = smt = 0
    idx = pool_index(mask, batch, tokens, pooling, dev) if pooling in ("first", "last") else rcount
    block_t, block_u = _blocks(tokens, units)
    if batch and units:
        grid = (batch, triton.cdiv(units, block_u))
        _pool_stats_kernel[grid](
            x, mask if mask is not None else rcount, idx, pooled if pooled is not None else rmean,
            rcount, rmean, rm2, rabsmax, rargmax, rzero, rpos,
            tokens, units, *x.stride(), smb, smt,
            MODE=_MODES[pooling], HAS_MASK=mask is not None, BLOCK_T=block_t, BLOCK_U=block_u,
        )
    n, mean, m2 = merge_rows(rcount, rmean, rm2)
    absmax = rabsmax.amax(0).clamp_min(0.0) if batch else torch.zeros(units, **f32)
    codes = scale = None
    if int8:
        if pooled is None:
            raise ValueError("pool_stats: int8=True needs pooled features; use a pooling other than 'none'")
        p = pooled
        codes = torch.empty(batch, units, dtype=torch.int8, device=dev)
        scale = torch.empty(units, **f32)
        if units:
            _int8_kernel[(triton.cdiv(units, block_u),)](p, codes, scale, batch, units, BLOCK_U=block_u)
    if pooled is not None:
        pooled = pooled.to(x.dtype)
    return PoolStats(pooled, n, mean, m2, absmax, rzero.sum(0), rpos.sum(0), rabsmax, rargmax, codes, scale)
