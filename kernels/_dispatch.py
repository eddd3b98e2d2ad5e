"""The per-call dispatch rule every kernel op shares (DESIGN.md §5): Triton when every tensor is on CUDA and
triton imports, else the torch reference; ``NEUROBRIDGE_KERNELS=reference|triton`` forces one."""

from __future__ import annotations

import importlib
import os

import torch

__all__ = ["choose_implementation"]


def _triton_importable() -> tuple[bool, str]:
    try:
        importlib.import_module("triton")
    except ImportError as err:  # pragma: no cover - triton is a dev/gpu dependency
        return False, f"triton does not import ({err})"
    return True, ""


def choose_implementation(*tensors: torch.Tensor | None, device: str | torch.device | None = None) -> tuple[str, str]:
    """``("triton" | "reference", reason)`` for a call on ``tensors`` (``None`` entries ignored) or on ``device``.

    Examples
    --------
    >>> choose_implementation(torch.zeros(1), device="cpu")[0] in ("reference", "triton")
    True
    """
    forced = os.environ.get("NEUROBRIDGE_KERNELS", "").strip().lower()
    if forced == "reference":
        return "reference", "forced by NEUROBRIDGE_KERNELS=reference"
    ok, why = _triton_importable()
    if forced == "triton":
        if not ok:
            raise ImportError(f"NEUROBRIDGE_KERNELS=triton but {why}; install triton or unset NEUROBRIDGE_KERNELS")
        return "triton", "forced by NEUROBRIDGE_KERNELS=triton"
    if forced not in ("", "auto"):
        raise ValueError(f"NEUROBRIDGE_KERNELS must be 'reference', 'triton' or unset, got {forced!r}")
    devices = [t.device for t in tensors if t is not None]
    if device is not None:
        devices.append(torch.device(device))
    if not devices or any(d.type != "cuda" for d in devices):
        return "reference", "tensors are not all on CUDA"
    if not ok:
        return "reference", why
    return "triton", "all tensors on CUDA and triton imports"
