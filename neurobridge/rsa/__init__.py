"""Representational similarity analysis: RDMs, comparisons, similarity indices, searchlights, inference.

Examples
--------
>>> import numpy as np, xarray as xr, neurobridge as nb
>>> acts = nb.core.activations(np.random.rand(6, 10), stimulus=list("abcdef"))
>>> r = nb.rsa.rdm(acts, metric="correlation")
>>> round(float(nb.rsa.compare(r, r, method="spearman")), 6)
1.0
"""

from . import _compare, _inference, _kernel_analysis, _labelled, _maps, _rdm, _similarity, _topology
from ._compare import *  # noqa: F403
from ._inference import *  # noqa: F403
from ._kernel_analysis import *  # noqa: F403
from ._labelled import *  # noqa: F403
from ._maps import *  # noqa: F403
from ._rdm import *  # noqa: F403
from ._similarity import *  # noqa: F403
from ._topology import *  # noqa: F403

__all__: list[str] = [*_compare.__all__, *_rdm.__all__, *_labelled.__all__, *_similarity.__all__, *_maps.__all__,
                     *_inference.__all__, *_topology.__all__, *_kernel_analysis.__all__]
