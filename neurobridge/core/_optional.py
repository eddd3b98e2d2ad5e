"""One place to import optional dependencies, with an install hint when they are missing."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["optional_import"]


def optional_import(name: str, *, extra: str | None = None, purpose: str | None = None) -> ModuleType:
    """Import an optional dependency or raise an ``ImportError`` that says how to install it.

    Parameters
    ----------
    name : str
        Module name, e.g. ``"transformers"`` or ``"rsatoolbox.rdm"``.
    extra : str, optional
        The ``neurobridge`` extra that installs it (``"models"``, ``"gpu"``, ``"dev"``).
    purpose : str, optional
        What the module is needed for, added to the error message.

    Returns
    -------
    module : ModuleType

    Examples
    --------
    >>> np = optional_import("numpy")
    >>> np.__name__
    'numpy'
    """
    try:
        return importlib.import_module(name)
    except ImportError as err:
        top = name.split(".")[0]
        what = f" for {purpose}" if purpose else ""
        hint = (
            f"pip install 'neurobridge[{extra}]'" if extra else f"pip install {top.replace('_', '-')}"
        )
        raise ImportError(f"{name!r} is required{what} but could not be imported ({err}); install it with: {hint}") from err
