"""neurobridge: bridge brain data and model data.

Subpackages are imported on first use (``nb.rsa``, ``nb.encoding``, ...), so ``import neurobridge`` is fast
and has no side effects.

Examples
--------
>>> import neurobridge as nb
>>> with nb.config_context(dtype="float64"):
...     pass
"""

from __future__ import annotations

import importlib

from . import core
from .core import config_context, load, save

__version__ = "0.1.0"

_SUBPACKAGES = {
    "io", "extract", "models", "encoding", "decoding", "rsa", "sae", "stats", "benchmark", "plotting",
    "kernels", "datasets",
}

__all__ = ["core", "config_context", "load", "save", "__version__", *sorted(_SUBPACKAGES)]

def __getattr__(name: str):
    if name in _SUBPACKAGES:
        module = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'neurobridge' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _SUBPACKAGES)
