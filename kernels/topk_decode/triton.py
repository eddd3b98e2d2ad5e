"""Triton implementation of the three sparse primitives of ``topk_decode``; see ``reference.py`` for the spec.

* ``spmm`` (the decode): one program per (row, block of ``d``) gathers the row's ``k`` dictionary rows and
  accumulates ``values * row`` in registers; one write per output element.
* ``sddmm`` (gradient w.r.t. the values, and the sparse encode): one program per (row, block of ``k``) loads a
  ``BLOCK_K x BLOCK_D`` tile of gathered dictionary rows per step over ``d`` and reduces it against the row of
  ``g``.
* ``spmm_t`` (gradient w.r.t. the dictionary): the ``batch * k`` entries are sorted by latent in torch (stable,
  so the summation order is fixed and the result deterministic, without atomics); one program per (active latent,
  block of ``d``) sums its entries and writes its row once. Inactive rows stay zero and are never visited.

Values are loaded in their dtype and converted to the accumulation dtype (float32, or float64 when an input is
float64) for all arithmetic; results are written in that dtype and cast by the caller.
"""

from __future__ import annotations

import types

import torch
import triton
import triton.language as tl

__all__ = ["spmm", "sddmm", "spmm_t", "TRITON_OPS"]


@triton.jit
def _spmm_kernel(v_ptr, i_ptr, w_ptr, out_ptr, K, D, svb, svk, sib, sik, swn, swd,
                 BLOCK_D: tl.constexpr, ACC: tl.constexpr):
    b = tl.program_id(0).to(tl.int64)
    offs = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    m = offs < D
    acc = tl.zeros((BLOCK_D,), dtype=ACC)
    for j in range(0, K):
        idx = tl.load(i_ptr + b * sib + j * sik).to(tl.int64)
        v = tl.load(v_ptr + b * svb + j * svk).to(ACC)
        row = tl.load(w_ptr + idx * swn + offs * swd, mask=m, other=0.0).to(ACC)
        acc += v * row
    tl.store(out_ptr + b * D + offs, acc, mask=m)


@triton.jit
def _sddmm_kernel(g_ptr, i_ptr, w_ptr, out_ptr, K, D, sgb, sgd, sib, sik, swn, swd,
                  BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr, ACC: tl.constexpr):
    b = tl.program_id(0).to(tl.int64)
    offs_k = tl.program_id(1) * BLOCK_K + tl.arange(0, BLOCK_K)
    mk = offs_k < K
    idx = tl.load(i_ptr + b * sib + offs_k * sik, mask=mk, other=0).to(tl.int64)
    acc = tl.zeros((BLOCK_K,), dtype=ACC)
    for d0 in range(0, D, BLOCK_D):
        offs_d = d0 + tl.arange(0, BLOCK_D)
        md = offs_d < D
        g = tl.load(g_ptr + b * sgb + offs_d * sgd, mask=md, other=0.0).to(ACC)
        w = tl.load(w_ptr + idx[:, None] * swn + offs_d[None, :] * swd, mask=mk[:, None] & md[None, :],
                    other=0.0).to(ACC)
        acc += tl.sum(w * g[None, :], axis=1)
    tl.store(out_ptr + b * K + offs_k, acc, mask=mk)


@triton.jit
def _spmm_t_kernel(v_ptr, rows_ptr, start_ptr, lat_ptr, g_ptr, out_ptr, D, sgb, sgd,
                   BLOCK_D: tl.constexpr, ACC: tl.constexpr):
    u = tl.program_id(0)
    offs = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    m = offs < D
    lat = tl.load(lat_ptr + u).to(tl.int64)
    start = tl.load(start_ptr + u)
    end = tl.load(start_ptr + u + 1)
    acc = tl.zeros((BLOCK_D,), dtype=ACC)
    for p in range(start, end):
        r = tl.load(rows_ptr + p).to(tl.int64)
        v = tl.load(v_ptr + p).to(ACC)
        g = tl.load(g_ptr + r * sgb + offs * sgd, mask=m, other=0.0).to(ACC)
        acc += v * g
    tl.store(out_ptr + lat * D + offs, acc, mask=m)


def _acc(*tensors: torch.Tensor) -> tuple[torch.dtype, object]:
    if any(t.dtype == torch.float64 for t in tensors):
        return torch.float64, tl.float64
    return torch.float32, tl.float32


def _block_d(d: int) -> int:
    return min(128, triton.next_power_of_2(max(d, 1)))


def spmm(values: torch.Tensor, indices: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """Triton version of :func:`reference.spmm` (same arguments and result)."""
    batch, k = indices.shape
    d = W.shape[1]
    dt, acc = _acc(values, W)
    out = torch.empty(batch, d, dtype=dt, device=W.device)
    if batch == 0 or d == 0:
        return out
    if k == 0:
        return out.zero_()
    block_d = _block_d(d)
    _spmm_kernel[(batch, triton.cdiv(d, block_d))](
        values, indices, W, out, k, d, *values.stride(), *indices.stride(), *W.stride(), BLOCK_D=block_d, ACC=acc)
    return out


def sddmm(g: torch.Tensor, indices: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """Triton version of :func:`reference.sddmm` (same arguments and result)."""
    batch, k = indices.shape
    d = W.shape[1]
    dt, acc = _acc(g, W)
    out = torch.empty(batch, k, dtype=dt, device=W.device)
    if batch == 0 or k == 0:
        return out
    if d == 0:
        return out.zero_()
    block_k = min(32, triton.next_power_of_2(k))
    block_d = min(128, triton.next_power_of_2(d))
    _sddmm_kernel[(batch, triton.cdiv(k, block_k))](
        g, indices, W, out, k, d, *g.stride(), *indices.stride(), *W.stride(),
        BLOCK_K=block_k, BLOCK_D=block_d, ACC=acc)
    return out


def spmm_t(values: torch.Tensor, indices: torch.Tensor, g: torch.Tensor, n: int) -> torch.Tensor:
    """Triton version of :func:`reference.spmm_t` (same arguments and result)."""
    batch, k = indices.shape
    d = g.shape[1]
    dt, acc = _acc(values, g)
    out = torch.zeros(n, d, dtype=dt, device=g.device)
    if batch * k == 0 or d == 0:
        return out
    flat = indices.reshape(-1).long()
    order = torch.argsort(flat, stable=True)
    latents, counts = torch.unique_consecutive(flat[order], return_counts=True)
    starts = torch.zeros(latents.numel() + 1, dtype=torch.int64, device=g.device)
    torch.cumsum(counts, 0, out=starts[1:])
    rows = torch.div(order, k, rounding_mode="floor")
    vals = values.reshape(-1)[order].contiguous()
    block_d = _block_d(d)
    _spmm_t_kernel[(latents.numel(), triton.cdiv(d, block_d))](
        vals, rows, starts, latents, g, out, d, *g.stride(), BLOCK_D=block_d, ACC=acc)
    return out


TRITON_OPS = types.SimpleNamespace(spmm=spmm, sddmm=sddmm, spmm_t=spmm_t, name="triton")
"""The three primitives, under the names of ``reference.REFERENCE_OPS``."""
