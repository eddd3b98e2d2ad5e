"""Matplotlib figures: layer profiles with noise-ceiling bands, layer x time maps and RDMs.

matplotlib is imported when a function is called, not at import.

Examples
--------
>>> import numpy as np, xarray as xr, neurobridge as nb
>>> da = xr.DataArray([0.1, 0.3, 0.2], dims="layer", coords={"layer": ["a", "b", "c"]})
>>> ax = nb.plotting.plot_layer_profile(da, title="toy")
"""

from ._profiles import plot_layer_profile, plot_layer_time
from ._rdm import plot_rdm, plot_rdms
from ._reliability import plot_subsample_reliability
from ._sparsity import plot_sparsity

__all__ = ["plot_layer_profile", "plot_layer_time", "plot_rdm", "plot_rdms", "plot_subsample_reliability",
           "plot_sparsity"]
