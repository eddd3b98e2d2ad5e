"""``list``, ``info`` and ``load``: the public entry points over the dataset cards."""

from __future__ import annotations

import builtins
import importlib
import inspect
import os

from ._bundle import DatasetBundle
from ._cards import CARDS, DatasetCard, get_card

__all__ = ["list_datasets", "info", "load"]


def list_datasets() -> builtins.list[str]:
    """Names of the registered datasets, sorted.

    Exposed as ``nb.datasets.list()``.

    Examples
    --------
    >>> import neurobridge as nb
    >>> "kriegeskorte92" in nb.datasets.list()
    True
    """
    return sorted(CARDS)


def info(name: str) -> DatasetCard:
    """The card of dataset ``name``: description, citation, license, modality, files (URL, sha256), loader.

    Examples
    --------
    >>> import neurobridge as nb
    >>> nb.datasets.info("kriegeskorte92").stimulus_type
    'images'
    """
    return get_card(name)


def load(name: str, *, data_dir: str | os.PathLike | None = None, **options) -> DatasetBundle:
    """Load a dataset: brain data as validated containers, the stimuli, extras and the card.

    Files are looked up in ``data_dir`` (the folder that contains ``<name>/``), else ``$NEUROBRIDGE_DATA``,
    else the user cache; missing files are downloaded with a checksum check (``download=False`` to forbid).

    Parameters
    ----------
    name : str
        Dataset name, see :func:`list_datasets` (``nb.datasets.list()``).
    data_dir : path, optional
        Root data folder.
    **options
        Loader options (see ``nb.datasets.info(name).options`` and the loader's docstring), e.g.
        ``download=False``, ``progress=False``, ``picks="eeg"`` for ``mne_sample_evoked``.

    Returns
    -------
    DatasetBundle
        ``name``, ``card``, ``brain`` (dict of containers), ``stimuli`` (DataArray with a ``stimulus`` dim),
        ``extras`` (dict of DataArrays).

    Raises
    ------
    KeyError
        Unknown dataset name.
    DatasetNotFoundError
        Files missing and not downloadable (offline): the message names files, URLs and folder.
    ChecksumError
        A file on disk does not match its checksum.

    Examples
    --------
    >>> import neurobridge as nb
    >>> ds = nb.datasets.load("kriegeskorte92")  # doctest: +SKIP
    >>> ds.stimuli.shape, ds.brain["hit"].dims  # doctest: +SKIP
    ((92, 175, 175, 3), ('subject', 'session', 'stimulus', 'stimulus2'))
    """
    card = get_card(name)
    module, func = card.loader.split(":")
    loader = getattr(importlib.import_module(f"{__package__}.{module}"), func)
    accepted = [p for p in inspect.signature(loader).parameters if p != "data_dir"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise TypeError(f"nb.datasets.load({name!r}): unknown option(s) {unknown}; this loader accepts "
                        f"{accepted} (see nb.datasets.info({name!r}).options and the loader's docstring)")
    return loader(data_dir=data_dir, **options)
