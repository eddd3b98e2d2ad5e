"""Fused pooling + per-unit statistics (+ int8 codes) over ``(batch, tokens, units)`` activations.

Dispatch per call (DESIGN.md §5): the Triton kernel runs when every tensor is on CUDA and triton imports;
otherwise the torch reference runs. ``NEUROBRIDGE_KERNELS=reference`` forces the reference and
``NEUROBRIDGE_KERNELS=triton`` forces Triton (e.g. on CPU tensors under ``TRITON_INTERPRET=1``, for tests).

Examples
--------
>>> import torch
>>> from neurobridge.kernels.pool_stats import pool_stats
>>> r = pool_stats(torch.ones(2, 3, 4), torch.tensor([[1, 1, 0], [1, 0, 0]]), pooling="mean")
>>> r.pooled.shape, int(r.count)
(torch.Size([2, 4]), 3)
"""

from __future__ import annotations

import torch

from .._dispatch import choose_implementation
from .reference import POOLINGS, PoolStats, _check
from .reference import pool_stats as _reference

__all__ = ["pool_stats", "PoolStats", "POOLINGS", "implementation"]

_last_used: str | None = None


def implementation(*tensors: torch.Tensor | None, device: str | torch.device | None = None) -> tuple[str, str]:
    """Which implementation a call on these tensors (or on ``device``) would use, and why.

    Returns
    -------
    (name, reason) : tuple of str
        ``name`` is ``"triton"`` or ``"reference"``.

    Examples
    --------
    >>> implementation(torch.zeros(1, 1, 1))[0] in ("reference", "triton")
    True
    """
    return choose_implementation(*tensors, device=device)


def pool_stats(
    x: torch.Tensor, mask: torch.Tensor | None = None, *, pooling: str = "mean", int8: bool = False
) -> PoolStats:
    """One pass over ``(batch, tokens, units)`` activations: pooled features and per-unit statistics.

    Parameters
    ----------
    x : torch.Tensor, shape (batch, tokens, units)
        Any float dtype (bf16/fp16 are computed in float32) and any strides.
    mask : torch.Tensor, shape (batch, tokens), optional
        Nonzero marks valid tokens.
    pooling : {"mean", "max", "first", "last", "none"}
    int8 : bool
        Also return per-unit int8 codes and scales of the pooled features.

    Returns
    -------
    PoolStats
        See :class:`PoolStats` for the fields.

    Examples
    --------
    >>> r = pool_stats(torch.randn(4, 5, 8), pooling="max", int8=True)
    >>> r.codes.dtype, r.scale.shape
    (torch.int8, torch.Size([8]))
    """
    global _last_used
    _check(x, mask, pooling)
    name, _ = implementation(x, mask)
    _last_used = name
    if name == "triton":
        from .triton import pool_stats as _triton

        return _triton(x, mask, pooling=pooling, int8=int8)
    return _reference(x, mask, pooling=pooling, int8=int8)
