"""Encoding models: features -> brain.

Pure ridge solvers on torch tensors (:data:`RIDGE_SOLVERS`), thin scikit-learn estimators over them
(:class:`Ridge`, :class:`RidgeCV`, :class:`KernelRidgeCV`, :class:`BandedRidgeCV`), design transformers
(:class:`TimeDelayer`, :class:`HRFConvolver`), and labelled entry points that align on ``stimulus`` and
return ``xr.Dataset`` results over the brain's dims (:func:`fit_encoding`, :func:`layer_sweep`,
:func:`fit_trf`, :func:`noise_ceiling`, :func:`variance_partitioning`).

Examples
--------
>>> import numpy as np, neurobridge as nb
>>> X = np.random.default_rng(0).normal(size=(60, 4)); Y = X @ np.ones((4, 3))
>>> nb.encoding.RidgeCV(alphas=[0.1, 1.0]).fit(X, Y).alpha_.shape
(3,)
"""

from ._alignment import (
    Hyperalignment,
    HyperalignmentResult,
    SharedResponseModel,
    SRMResult,
    SubjectAlignment,
    align_subjects,
    fit_srm,
    hyperalign,
)
from ._attention import AttentionReadout
from ._ceiling import noise_ceiling, normalized_score, variance_partitioning
from ._cv import check_folds, make_folds
from ._delays import HRFConvolver, TimeDelayer, delay_features
from ._distributed import fit_encoding_distributed, layer_sweep_distributed
from ._estimators import BandedRidgeCV, KernelRidgeCV, Ridge, RidgeCV, correlation_score, r2_score
from ._labelled import Design, fit_encoding, layer_sweep, prepare_design
from ._solvers import (
    DEFAULT_ALPHAS,
    RIDGE_SOLVERS,
    BandedRidgeCVResult,
    KernelRidgeCVResult,
    RidgeCVResult,
    RidgeResult,
    dirichlet_candidates,
    solve_banded_ridge_cv,
    solve_kernel_ridge_cv,
    solve_ridge,
    solve_ridge_cv,
    solve_ridge_loo,
)
from ._trf import fit_trf

__all__ = [
    "fit_encoding", "layer_sweep", "fit_trf", "noise_ceiling", "normalized_score", "variance_partitioning",
    "Design", "prepare_design", "fit_encoding_distributed", "layer_sweep_distributed",
    "make_folds", "check_folds", "TimeDelayer", "HRFConvolver", "delay_features",
    "Ridge", "RidgeCV", "KernelRidgeCV", "BandedRidgeCV", "r2_score", "correlation_score",
    "DEFAULT_ALPHAS", "RIDGE_SOLVERS", "RidgeResult", "RidgeCVResult", "KernelRidgeCVResult", "BandedRidgeCVResult",
    "dirichlet_candidates", "solve_ridge", "solve_ridge_cv", "solve_ridge_loo", "solve_kernel_ridge_cv",
    "solve_banded_ridge_cv",
    "align_subjects", "hyperalign", "fit_srm", "Hyperalignment", "SharedResponseModel", "HyperalignmentResult",
    "SRMResult", "SubjectAlignment",
    "AttentionReadout",
]
