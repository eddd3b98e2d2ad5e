"""Every estimator passes scikit-learn's estimator checks."""

from __future__ import annotations

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from neurobridge.encoding import BandedRidgeCV, KernelRidgeCV, Ridge, RidgeCV

ESTIMATORS = [
    Ridge(),
    RidgeCV(alphas=[0.1, 1.0, 10.0]),
    RidgeCV(alphas=[0.1, 1.0, 10.0], cv="loo"),
    KernelRidgeCV(alphas=[0.1, 1.0, 10.0]),
    BandedRidgeCV(alphas=[0.1, 1.0, 10.0], n_iter=3, random_state=0),
]
MORE = [  # same code paths with other options: slower tier
    RidgeCV(alphas=[0.1, 1.0, 10.0], cv="gcv"),
    KernelRidgeCV(alphas=[0.1, 1.0], kernel="rbf"),
    KernelRidgeCV(alphas=[0.1, 1.0], kernel="polynomial", degree=2),
]


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compatible(estimator, check):
    check(estimator)


@pytest.mark.slow
@parametrize_with_checks(MORE)
def test_sklearn_compatible_variants(estimator, check):
    check(estimator)
