"""Storage compression of activations: per-unit int8 quantisation and Gaussian random projection."""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import torch

__all__ = ["Compress", "as_compress", "projection_matrix", "quantize", "dequantize"]


@dataclass(frozen=True)
class Compress:
    """How activations are compressed before they are stored.

    Examples
    --------
    >>> Compress(int8=True, project=256).project
    256
    """

    int8: bool = False
    """Per-unit symmetric int8 codes with float32 scales, one scale per unit and written batch (block)."""
    project: int | None = None
    """Project the units onto this many random Gaussian directions (Johnson-Lindenstrauss), before int8."""
    seed: int = 0
    """Seed of the projection matrices (one per layer, derived from the seed and the layer name)."""

    def __post_init__(self):
        if self.project is not None and (not isinstance(self.project, int) or self.project < 1):
            raise ValueError(f"Compress.project must be a positive int (number of dims), got {self.project!r}")


def as_compress(compress) -> Compress | None:
    """``None``, ``"int8"``, an int ``d`` (random projection to ``d`` dims) or a :class:`Compress`."""
    if compress is None or isinstance(compress, Compress):
        return compress
    if isinstance(compress, str):
        if compress == "int8":
            return Compress(int8=True)
        raise ValueError(f"compress must be None, 'int8', an int (random projection dims) or nb.extract.Compress(...), "
                         f"got {compress!r}")
    if isinstance(compress, int) and not isinstance(compress, bool):
        return Compress(project=compress)
    raise TypeError(f"compress must be None, 'int8', an int or nb.extract.Compress(...), got {type(compress).__name__}")


def projection_matrix(n_units: int, d: int, *, seed: int, layer: str, device=None) -> torch.Tensor:
    """``(n_units, d)`` Gaussian matrix with entries N(0, 1/d): ``x @ R`` preserves distances in expectation."""
    gen = torch.Generator().manual_seed((int(seed) * 1_000_003 + zlib.crc32(layer.encode())) % (2**63))
    r = torch.randn(n_units, d, generator=gen, dtype=torch.float32) / d**0.5
    return r.to(device) if device is not None else r


def quantize(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-unit (last axis) int8 codes and scales of ``(..., units)`` values (scale = max |v| / 127)."""
    from neurobridge.kernels.pool_stats.reference import quantize_int8

    flat = values.reshape(-1, values.shape[-1])
    codes, scale = quantize_int8(flat)
    return codes.reshape(values.shape), scale


def dequantize(codes, scale):
    """``codes * scale`` in float32 (numpy or torch; ``scale`` broadcasts over the last axis)."""
    return codes.astype("float32") * scale if hasattr(codes, "astype") else codes.float() * scale
