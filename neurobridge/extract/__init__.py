"""Activations from any torch model: hooks, adapters, pooling, statistics, streaming zarr writer.

Entry points: :func:`activations` (extract), :func:`list_layers` (what can be hooked), :func:`report`
(activation statistics, massive activations), :func:`open_store` (read a store written with ``store=``) and
:class:`Compress` (int8 / random-projection storage).

Tree layout (the contract other subsystems rely on)
---------------------------------------------------
``activations(...)`` returns an ``xr.DataTree``::

    /                       attrs: layers (list of layer names, depth order), model (str), pooling (str)
    /<layer name>           one node per layer, named by the module name (e.g. "encoder.layer.3")
        activations         dims (stimulus, unit); (stimulus, token|space, unit) for pooling="none"/"word"
                            attrs: layer, model, modality="activations"
        token_mask          (stimulus, token) bool, only when a token dim is kept and padded
    /stats/<layer name>     optional (stats=True): per-unit count, mean, var, absmax, frac_zero, frac_pos
                            (dim unit) and the top-k magnitudes top_value/top_unit/top_token/top_stimulus
                            (dim rank)

``tree[layer]["activations"]`` is a valid ``nb.core`` activations container (``stimulus`` index), so
``nb.core.align(brain, tree[layer]["activations"])`` works directly.

Examples
--------
>>> import torch, neurobridge as nb
>>> net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU())
>>> tree = nb.extract.activations(net, torch.randn(5, 3), progress=False)
>>> tree["1"]["activations"].shape
(5, 8)
"""

from ._compress import Compress
from ._extract import POOLINGS, activations
from ._layers import list_layers
from ._sparsity import sparsity
from ._stats import report
from ._store import open_store

__all__ = ["activations", "list_layers", "report", "open_store", "Compress", "POOLINGS", "sparsity"]
