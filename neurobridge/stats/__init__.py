"""Statistics shared by all analyses: permutation and bootstrap tests, confidence intervals, multiple comparisons.

Everything is vectorised over batches of permutations/bootstraps in torch, so it runs on CPU or CUDA.

Examples
--------
>>> import numpy as np, neurobridge as nb
>>> nb.stats.fdr(np.array([0.001, 0.2]), alpha=0.05).reject.tolist()
[True, False]
"""

from ._multiple import FDRResult, bonferroni, fdr, max_statistic

__all__ = ["FDRResult", "fdr", "bonferroni", "max_statistic"]
