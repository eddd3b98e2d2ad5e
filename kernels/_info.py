"""``neurobridge.kernels.info``: which implementation each kernel op uses."""

from __future__ import annotations

import importlib
import pkgutil
from typing import NamedTuple

import torch

__all__ = ["info", "KernelInfo"]


class KernelInfo(NamedTuple):
    """Which implementation an op uses and why."""

    implementation: str
    """``"triton"`` or ``"reference"``."""
    reason: str
    """Why that implementation is chosen (device, triton availability, ``NEUROBRIDGE_KERNELS``)."""
    last_used: str | None
    """The implementation the op's last call in this process ran (``None`` if not called yet)."""


def _ops() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(importlib.import_module(__package__).__path__) if m.ispkg)


def info(device: str | torch.device | None = None) -> dict[str, KernelInfo]:
    """Which implementation each kernel op uses on ``device``.

    Parameters
    ----------
    device : str or torch.device, optional
        Default: ``"cuda"`` when a CUDA device is available, else ``"cpu"``.

    Returns
    -------
    dict
        Op name -> :class:`KernelInfo`.

    Examples
    --------
    >>> import neurobridge as nb
    >>> sorted(nb.kernels.info("cpu"))[:1]
    ['pool_stats']
    """
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    out = {}
    for name in _ops():
        mod = importlib.import_module(f"{__package__}.{name}")
        choose = getattr(mod, "implementation", None)
        if choose is None:
            continue
        impl, reason = choose(device=device)
        out[name] = KernelInfo(impl, reason, getattr(mod, "_last_used", None))
    return out

