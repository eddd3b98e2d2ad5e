"""Statistics shared by all analyses: permutation and bootstrap tests, confidence intervals, multiple comparisons.

Everything is vectorised over batches of permutations/bootstraps in torch, so it runs on CPU or CUDA.

Examples
--------
>>> import numpy as np, neurobridge as nb
>>> nb.stats.fdr(np.array([0.001, 0.2]), alpha=0.05).reject.tolist()
[True, False]
"""

from ._cluster import ClusterResult, cluster_permutation_test, cluster_test, label_clusters
from ._multiple import FDRResult, bonferroni, fdr, max_statistic
from ._reliability import subsample_reliability
from ._resample import (
    autocorrelation,
    autocorrelation_length,
    block_permutation_indices,
    bootstrap_counts,
    bootstrap_indices,
    circular_shifts,
    indices_to_counts,
    permutation_indices,
    phase_randomize,
    sign_flips,
)
from ._tests import (
    BootstrapResult,
    ConfidenceInterval,
    PermutationResult,
    bootstrap,
    confidence_interval,
    pairwise_bootstrap_test,
    permutation_test,
    pvalue,
    sign_flip_test,
)

__all__ = [
    "FDRResult", "fdr", "bonferroni", "max_statistic",
    "permutation_indices", "bootstrap_indices", "bootstrap_counts", "indices_to_counts", "sign_flips",
    "circular_shifts", "block_permutation_indices", "phase_randomize", "autocorrelation", "autocorrelation_length",
    "PermutationResult", "BootstrapResult", "ConfidenceInterval", "pvalue", "confidence_interval",
    "permutation_test", "bootstrap", "sign_flip_test", "pairwise_bootstrap_test",
    "ClusterResult", "label_clusters", "cluster_test", "cluster_permutation_test",
    "subsample_reliability",
]
