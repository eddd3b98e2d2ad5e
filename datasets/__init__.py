"""Dataset cards, loaders with download and cache, and ground-truth simulators (DESIGN.md §6).

Real data
---------
``nb.datasets.list()`` names the datasets, ``nb.datasets.info(name)`` returns a card (description, citation,
license, files with URL and SHA-256) and ``nb.datasets.load(name)`` returns a :class:`DatasetBundle`:
brain data as validated containers, the stimuli (images as uint8 arrays, or words/sentences) whose
``stimulus`` ids match the brain data, extras, and the card.

Files are looked up in ``data_dir=`` (the folder that contains ``<name>/``), else ``$NEUROBRIDGE_DATA``, else
the user cache (platformdirs); missing files are downloaded with pooch and checked against their SHA-256.
Offline, :class:`DatasetNotFoundError` names the missing files, their URLs and the folder to put them in; a
file with a wrong checksum raises :class:`ChecksumError` and is never used.

Simulators
----------
:func:`simulate_encoding`, :func:`simulate_rsa` and :func:`simulate_sparse_codes` produce data with a known
answer (weights, noise ceilings, geometry, dictionary) from real or random features.

Examples
--------
>>> import neurobridge as nb
>>> "kriegeskorte92" in nb.datasets.list()
True
>>> ds = nb.datasets.load("kriegeskorte92")  # doctest: +SKIP
>>> ds.stimuli.shape  # doctest: +SKIP
(92, 175, 175, 3)
"""

# This folder is only ever ``neurobridge.datasets`` (DESIGN.md §2). When the repository root is on
# ``sys.path`` (a script, notebook or ``python -m`` started there), ``import datasets`` finds this file first
# and would shadow the PyPI package ``datasets`` (Hugging Face datasets, imported by sae-lens and transformers' examples). Imported under that
# name, this file hands the import over to the real package (or fails as if the folder were not there)
# before any of its own code runs.
if __name__ != "neurobridge.datasets":
    import importlib.machinery
    import importlib.util
    import os
    import sys

    _root = os.path.realpath(os.path.join(os.path.dirname(__file__), os.pardir))
    _path = [p for p in sys.path if isinstance(p, str) and os.path.realpath(p or os.curdir) != _root]
    _spec = importlib.machinery.PathFinder.find_spec(__name__, _path)
    if _spec is None or _spec.loader is None:
        raise ModuleNotFoundError(f"No module named {__name__!r}", name=__name__)
    _module = importlib.util.module_from_spec(_spec)
    sys.modules[__name__] = _module  # what ``import datasets`` returns once this file ends
    _spec.loader.exec_module(_module)
else:
    from ._bundle import DatasetBundle
    from ._cards import CARDS, DatasetCard, DatasetFile
    from ._fetch import (
        ChecksumError,
        DatasetNotFoundError,
        FileStatus,
        data_root,
        dataset_dir,
        fetch,
        verify,
    )
    from ._registry import info, list_datasets, load
    from ._simulate import (
        SimulatedEncoding,
        SimulatedRSA,
        SimulatedSparseCodes,
        simulate_encoding,
        simulate_rsa,
        simulate_sparse_codes,
    )

    list = list_datasets  # noqa: A001 - ``nb.datasets.list()`` is the documented entry point

    __all__ = [
        "list", "list_datasets", "info", "load", "fetch", "verify", "data_root", "dataset_dir",
        "DatasetBundle", "DatasetCard", "DatasetFile", "FileStatus", "CARDS",
        "DatasetNotFoundError", "ChecksumError",
        "simulate_encoding", "simulate_rsa", "simulate_sparse_codes",
        "SimulatedEncoding", "SimulatedRSA", "SimulatedSparseCodes",
    ]
