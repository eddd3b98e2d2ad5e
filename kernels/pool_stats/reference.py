"""Reference implementation (pure torch) of the fused pooling + statistics + int8 pass: the specification.

Input ``x`` has shape ``(batch, tokens, units)`` (any float dtype, any strides) and ``mask`` shape
``(batch, tokens)`` (nonzero = valid position). Everything is computed in float32; the pooled features are cast
back to ``x.dtype``. Statistics cover the valid positions of the whole batch, per unit.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = ["PoolStats", "POOLINGS", "pool_stats", "pool_index", "merge_rows", "quantize_int8"]

POOLINGS = ("mean", "max", "first", "last", "none")


class PoolStats(NamedTuple):
    """What one fused pass over a ``(batch, tokens, units)`` block returns."""

    pooled: torch.Tensor | None
    """``(batch, units)`` pooled features in ``x.dtype`` (``None`` for ``pooling="none"``). Rows with no valid
    position pool to 0."""
    count: torch.Tensor
    """Scalar int64: number of valid positions in the batch (the same for every unit)."""
    mean: torch.Tensor
    """``(units,)`` float32 mean over valid positions."""
    m2: torch.Tensor
    """``(units,)`` float32 sum of squared deviations from ``mean`` (variance = ``m2 / count``)."""
    absmax: torch.Tensor
    """``(units,)`` float32 max |x| over valid positions (0 when there are none)."""
    n_zero: torch.Tensor
    """``(units,)`` float32 number of valid positions where x == 0."""
    n_pos: torch.Tensor
    """``(units,)`` float32 number of valid positions where x > 0."""
    row_absmax: torch.Tensor
    """``(batch, units)`` float32 max |x| over the valid tokens of each row (-1 for rows with none)."""
    row_argmax: torch.Tensor
    """``(batch, units)`` int64 token index of ``row_absmax`` (first one on ties)."""
    codes: torch.Tensor | None = None
    """``(batch, units)`` int8 codes of ``pooled`` when ``int8=True``: ``pooled ~= codes * scale``."""
    scale: torch.Tensor | None = None
    """``(units,)`` float32 per-unit scale: max |pooled| over the batch / 127 (1 where that is 0)."""


def _check(x: torch.Tensor, mask: torch.Tensor | None, pooling: str) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 3:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"pool_stats: expected x of shape (batch, tokens, units), got {shape}; "
                         "add a tokens axis of length 1 with x[:, None] for (batch, units) input")
    if not x.is_floating_point():
        raise ValueError(f"pool_stats: expected a floating x, got dtype {x.dtype}; convert with x.float()")
    if mask is not None and tuple(mask.shape) != tuple(x.shape[:2]):
        raise ValueError(f"pool_stats: mask has shape {tuple(mask.shape)} but x has (batch, tokens) = "
                         f"{tuple(x.shape[:2])}; pass one mask entry per token")
    if pooling not in POOLINGS:
        raise ValueError(f"pool_stats: pooling must be one of {POOLINGS}, got {pooling!r}")


def pool_index(mask: torch.Tensor | None, batch: int, tokens: int, pooling: str, device) -> torch.Tensor:
    """Token index used by ``first``/``last`` pooling: first/last valid token of each row (0 if none)."""
    if mask is None:
        value = 0 if pooling == "first" else tokens - 1
        return torch.full((batch,), value, dtype=torch.int64, device=device)
    valid = mask != 0
    pos = torch.arange(tokens, device=mask.device)
    if pooling == "first":
        idx = torch.where(valid, pos, tokens).amin(1)
        return torch.where(idx == tokens, 0, idx).to(torch.int64)
    return torch.where(valid, pos, -1).amax(1).clamp_min(0).to(torch.int64)


def merge_rows(count_b: torch.Tensor, mean_b: torch.Tensor, m2_b: torch.Tensor):
    """Merge per-row ``(batch, units)`` means and M2 with per-row counts ``(batch,)`` (Chan et al.)."""
    n_b = count_b.to(torch.float32)
    n = n_b.sum()
    denom = n.clamp_min(1.0)
    mean = (n_b[:, None] * mean_b).sum(0) / denom
    m2 = m2_b.sum(0) + (n_b[:, None] * (mean_b - mean) ** 2).sum(0)
    return n.to(torch.int64), mean, m2


def quantize_int8(pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-unit symmetric int8 codes of ``(rows, units)`` values: ``scale = max|v| / 127``, round half away from 0."""
    v = pooled.to(torch.float32)
    amax = v.abs().amax(0)
    scale = torch.where(amax > 0, amax / 127.0, torch.ones_like(amax))
    q = v / scale
    q = torch.sign(q) * torch.floor(q.abs() + 0.5)
    return q.clamp(-127, 127).to(torch.int8), scale


def pool_stats(
    x: torch.Tensor, mask: torch.Tensor | None = None, *, pooling: str = "mean", int8: bool = False
) -> PoolStats:
    """Pool ``(batch, tokens, units)`` activations over valid tokens and compute per-unit statistics.

    Parameters
    ----------
    x : torch.Tensor, shape (batch, tokens, units)
    mask : torch.Tensor, shape (batch, tokens), optional
        Nonzero marks valid tokens (e.g. an attention mask); default all valid.
    pooling : {"mean", "max", "first", "last", "none"}
        ``first``/``last``: the first/last valid token of each row.
    int8 : bool
        Also return per-unit int8 codes of the pooled features.

    Returns
    -------
    PoolStats

    Examples
    --------
    >>> x = torch.arange(12.0).reshape(1, 3, 4)
    >>> r = pool_stats(x, torch.tensor([[1, 1, 0]]))
    >>> r.pooled.tolist(), int(r.count)
    ([[2.0, 3.0, 4.0, 5.0]], 2)
    """
    _check(x, mask, pooling)
    batch, tokens, units = x.shape
    xf = x.to(torch.float32)
    # Written to keep at most two (batch, tokens, units) float temporaries alive at once (in-place ops), since
    # this runs on every hooked layer output.
    if mask is None:
        valid = None
        n_b = torch.full((batch,), tokens, dtype=torch.int64, device=x.device)
    else:
        valid = mask != 0
        n_b = valid.sum(1)
    n = n_b.sum()
    row_sum = None
    if valid is None:
        if batch * tokens:
            var, mean = torch.var_mean(xf, dim=(0, 1), correction=0)  # one fused pass
            m2 = var * float(batch * tokens)
        else:
            mean = m2 = torch.zeros(units, dtype=torch.float32, device=x.device)
    else:
        vf = valid.to(torch.float32)[..., None]
        row_sum = (xf * vf).sum(1)
        mean = row_sum.sum(0) / n.clamp_min(1).to(torch.float32)
        d = xf - mean
        d.mul_(vf)
        m2 = d.square_().sum((0, 1))
        del d
    ax = xf.abs()
    if valid is not None:
        ax.masked_fill_(~valid[..., None], -1.0)
    if tokens:
        row_absmax, row_argmax = ax.max(1)  # indices of the first maximum
    else:
        row_absmax = torch.full((batch, units), -1.0, device=x.device)
        row_argmax = torch.zeros((batch, units), dtype=torch.int64, device=x.device)
    del ax
    absmax = row_absmax.amax(0).clamp_min(0.0) if batch else torch.zeros_like(mean)
    zero, pos = xf == 0, xf > 0
    if valid is not None:
        zero &= valid[..., None]
        pos &= valid[..., None]
    n_zero = zero.sum((0, 1)).to(torch.float32)
    n_pos = pos.sum((0, 1)).to(torch.float32)
    del zero, pos
    pooled = None
    if pooling == "mean":
        row_sum = xf.sum(1) if row_sum is None else row_sum
        pooled = row_sum / n_b.clamp_min(1).to(torch.float32)[:, None]
    elif pooling == "max":
        pooled = (xf if valid is None else xf.masked_fill(~valid[..., None], -torch.inf)).amax(1)
        pooled = torch.where(n_b[:, None] > 0, pooled, torch.zeros_like(pooled))
    elif pooling in ("first", "last"):
        idx = pool_index(mask, batch, tokens, pooling, x.device)
        pooled = xf[torch.arange(batch, device=x.device), idx]
    codes = scale = None
    if int8:
        if pooled is None:
            raise ValueError("pool_stats: int8=True needs pooled features; use a pooling other than 'none'")
        codes, scale = quantize_int8(pooled)
    if pooled is not None:
        pooled = pooled.to(x.dtype)
    return PoolStats(pooled, n.to(torch.int64), mean, m2, absmax, n_zero, n_pos, row_absmax, row_argmax, codes, scale)
