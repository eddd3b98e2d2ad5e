"""Progress bars for long work: one rule for when they show, one factory for all of them.

Whether a bar shows, first rule that applies:

1. ``progress=True`` / ``progress=False`` passed to the call (wins over everything below, ``TQDM_DISABLE``
   included);
2. ``nb.config_context(progress=True/False)``;
3. ``TQDM_DISABLE`` set to a non-empty value in the environment -> no bar. This is how tqdm itself reads it
   (``bool(value)``), so ``TQDM_DISABLE=1`` and even ``TQDM_DISABLE=0`` hide every tqdm bar, ours and others';
   unset it (or set it empty) to get bars back;
4. otherwise a bar when a person is watching: stderr is a terminal, or the code runs in a Jupyter kernel.
   In scripts whose output goes to a file, a pipe or a CI log: no bar (no carriage-return frames in logs).

A bar that is asked for (rule 1 or 2) while stderr is not a terminal refreshes at most every 30 s (tqdm's
``mininterval`` and ``maxinterval``) and ends with its final count on a line of its own (``leave=True``), so a
log gets a few lines per stage instead of thousands of frames. Display settings in the environment win over
these defaults and reach tqdm unchanged: ``TQDM_MININTERVAL``, ``TQDM_MAXINTERVAL``, ``TQDM_LEAVE``,
``TQDM_NCOLS``, ``TQDM_ASCII``, ``TQDM_COLOUR``, ... (tqdm >= 4.66 reads every ``TQDM_<ARG>`` as the default of
``<arg>``). What a bar counts (``total``, ``desc``, ``unit``, ``initial``) and whether it shows are decided
here, per call.
"""

from __future__ import annotations

import os
import sys

__all__ = ["progress_enabled", "progress_bar"]

_LOG_INTERVAL = 30.0
"""Seconds between refreshes of a bar written to a file or pipe rather than a terminal."""


def _env_disabled() -> bool:
    """``TQDM_DISABLE`` as tqdm reads it: any non-empty value disables."""
    return bool(os.environ.get("TQDM_DISABLE", ""))


def _env_sets(name: str) -> bool:
    """Whether the environment sets tqdm's ``name`` argument (``TQDM_<NAME>``), which then wins over ours."""
    return f"TQDM_{name.upper()}" in os.environ


def _in_jupyter() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    try:
        ip = shell.get_ipython()
    except Exception:  # noqa: BLE001  (a half-imported or stubbed IPython)
        return False
    return ip is not None and "IPKernelApp" in getattr(ip, "config", {})


def _stderr_is_tty() -> bool:
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


def _watched() -> bool:
    return _stderr_is_tty() or _in_jupyter()


def progress_enabled(progress: bool | None = None) -> bool:
    """Whether a progress bar shows for a call that got ``progress=progress``.

    Parameters
    ----------
    progress : bool, optional
        ``True``/``False`` decides; ``None`` (automatic) defers to ``nb.config_context(progress=...)``, then
        to ``TQDM_DISABLE`` (any non-empty value hides bars), then shows a bar only when stderr is a terminal
        or the code runs in Jupyter (see the module docstring).

    Returns
    -------
    bool

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
    return _watched()


def progress_bar(iterable=None, *, total: int | None = None, desc: str | None = None,
                 progress: bool | None = None, unit: str = "it", initial: int = 0, leave: bool = False):
    """A tqdm bar (``tqdm.auto``, so a widget in Jupyter) that shows only when :func:`progress_enabled`.

    Use it as tqdm: wrap an iterable, or call ``.update(n)`` inside a ``with`` block.

    Parameters
    ----------
    iterable : iterable, optional
        Wrapped and yielded from unchanged.
    total : int, optional
        The count the bar reaches: the number of steps (in ``unit``) the work really takes, e.g. resamples,
        not batches of them. Default ``len(iterable)``.
    desc : str, optional
        What runs, shown before the bar.
    progress : bool, optional
        ``True``/``False`` shows/hides the bar; ``None`` (default, automatic) follows
        :func:`progress_enabled`.
    unit : str
        What one step is (``"resample"``, ``"stim"``...).
    initial : int
        Steps already done (resumed work).
    leave : bool
        Keep the finished bar on screen. A bar forced on while stderr is not a terminal always keeps its final
        line, unless ``TQDM_LEAVE`` says otherwise.

    Returns
    -------
    tqdm.tqdm
        Disabled (prints nothing; still iterates) when no bar should show.

    Examples
    --------
    >>> sum(progress_bar(range(4), desc="demo", progress=False))
    6
    >>> with progress_bar(total=3, progress=False) as bar:
    ...     _ = bar.update(3)
    """
    from tqdm.auto import tqdm

    enabled = progress_enabled(progress)
    kwargs: dict = {}
    if not _env_sets("leave"):
        kwargs["leave"] = leave
    if enabled and not _watched():  # a forced bar in a log: few refreshes, final count on its own line
        for name in ("mininterval", "maxinterval"):
            if not _env_sets(name):
                kwargs[name] = _LOG_INTERVAL
        if not _env_sets("leave"):
            kwargs["leave"] = True
    # tqdm takes TQDM_* environment values only for arguments not passed; ``disable`` is always decided here
    # (so progress=True beats TQDM_DISABLE).
    return tqdm(iterable, total=total, desc=desc, disable=not enabled, unit=unit, initial=initial, **kwargs)
