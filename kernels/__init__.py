"""Kernels (``neurobridge.kernels``): reference (torch) and Triton implementations, dispatched per call.

Each op is a folder (DESIGN.md §5): ``reference.py`` (pure torch, the specification), ``triton.py`` (imported only
when used) and ``__init__.py`` (the public function, which dispatches). :func:`info` says which implementation each
op uses on a device.

Examples
--------
>>> import neurobridge as nb
>>> nb.kernels.info(device="cpu")["pool_stats"].implementation
'reference'
"""

# This folder is only ever ``neurobridge.kernels`` (DESIGN.md §2). When the repository root is on
# ``sys.path`` (a script, notebook or ``python -m`` started there), ``import kernels`` finds this file first
# and would shadow the PyPI package ``kernels`` (imported by transformers). Imported under that
# name, this file hands the import over to the real package (or fails as if the folder were not there)
# before any of its own code runs.
if __name__ != "neurobridge.kernels":
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
    sys.modules[__name__] = _module  # what ``import kernels`` returns once this file ends
    _spec.loader.exec_module(_module)
else:
    from ._info import KernelInfo, info

    __all__ = ["info", "KernelInfo"]
