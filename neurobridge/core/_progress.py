"""Progress bars for long work: one rule for when they show, one factory for all of them.

Whether a bar shows, first rule that applies:

1. ``progress=True`` / ``progress=False`` passed to the call;
2. ``nb.config_context(progress=...)``;
3. ``TQDM_DISABLE`` set to a true value in the environment (tqdm's own setting) -> no bar;
4. otherwise a bar when a person is watching: stderr is a terminal, or the code runs in a Jupyter kernel.
   In scripts whose output goes to a file or a CI log, no bar (no carriage-return frames in logs).

A bar that is asked for (rule 1 or 2) while stderr is not a terminal refreshes at most every 30 s, so a
log gets a handful of lines per stage instead of thousands of frames. Every other ``TQDM_*`` setting
(``TQDM_MININTERVAL``, ``TQDM_NCOLS``, ...) reaches tqdm unchanged.
"""

from __future__ import annotations

import os
import sys

__all__ = ["progress_enabled", "progress_bar"]

_LOG_MININTERVAL = 30.0
"""Seconds between refreshes of a bar written to a file or pipe rather than a terminal."""


def _env_disabled() -> bool:
    value = os.environ.get("TQDM_DISABLE", "").strip().lower()
    return value not in ("", "0", "false", "no", "off", "none")


def _in_jupyter() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    ip = getattr(shell, "get_ipython", lambda: None)()
    return ip is not None and "IPKernelApp" in getattr(ip, "config", {})


def _stderr_is_tty() -> bool:
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


def progress_enabled(progress: bool | None = None) -> bool:
    """Whether a progress bar shows for a call that got ``progress=progress`` (rules in the module docstring).

    Examples
    --------
    >>> progress_enabled(False), progress_enabled(True)
    (False, True)
    >>> import neurobridge as nb
    >>> with nb.config_context(progress=False):
    ...     progress_enabled(None)
    False
    """
    if progress is not None:
        return bool(progress)
    from ._config import get_config

    configured = get_config().progress
    if configured is not None:
        return bool(configured)
    if _env_disabled():
        return False
    return _stderr_is_tty() or _in_jupyter()


def progress_bar(iterable=None, *, total: int | None = None, desc: str | None = None,
                 progress: bool | None = None, unit: str = "it", initial: int = 0, leave: bool = False):
    """A tqdm bar (``tqdm.auto``, so a widget in Jupyter) that shows only when :func:`progress_enabled`.

    Use it as tqdm: wrap an iterable, or call ``.update(n)`` inside a ``with`` block. ``total`` is the count
    the bar reaches, and must be the number of steps the work really takes.

    Examples
    --------
    >>> sum(progress_bar(range(4), desc="demo", progress=False))
    6
    >>> with progress_bar(total=3, progress=False) as bar:
    ...     bar.update(3)
    """
    from tqdm.auto import tqdm

    enabled = progress_enabled(progress)
    kwargs = {}
    if enabled and not (_stderr_is_tty() or _in_jupyter()):
        kwargs["mininterval"] = float(os.environ.get("TQDM_MININTERVAL", _LOG_MININTERVAL))
    # tqdm applies TQDM_* environment defaults only to arguments not passed; ``disable`` is always decided here.
    return tqdm(iterable, total=total, desc=desc, disable=not enabled, unit=unit, initial=initial, leave=leave,
                **kwargs)
