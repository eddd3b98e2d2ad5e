"""Checking and preparing the inputs of the decoding entry points: brain, target, estimator, folds."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import xarray as xr

from ..core import SchemaError, check_finite
from ._scoring import CLASSIFICATION_SCORINGS, REGRESSION_SCORINGS

_SAMPLE_DIMS = ("trial", "stimulus")
_NAN_FIX = ("drop those trials (brain.dropna('trial', how='any')), interpolate them, or mark the bad channels "
            "and drop them before decoding")


SMALL_ELEMENTS = 1 << 20
"""Below this many values the decoding computations run on one CPU thread: the solves and GEMMs are then tiny
(a batch of 6 x 6 Choleskys took 2-7 ms with two threads on a shared machine, 25 us with one), and permutation
tests run them thousands of times."""


class Problem(NamedTuple):
    X: np.ndarray  # (n, p, T) values; T = 1 when dim is None
    sample_dim: str
    feature_dims: tuple[str, ...]
    dim: str | None
    classification: bool
    y: np.ndarray  # int64 codes (n,) or float targets (n, k)
    classes: np.ndarray | None
    target_dims: tuple[str, ...]  # (sample_dim, name) of a multi-column target, for labels of patterns
    target_coords: Any
    groups: np.ndarray | None


class Spec(NamedTuple):
    kind: str  # "ridge", "lda" or "generic"
    alpha: float
    shrinkage: Any
    estimator: Any  # the scikit-learn estimator (generic path; the LogisticRegression of the batched logistic path)
    name: str


def _is_classifier(est) -> bool:
    from sklearn.base import is_classifier

    return bool(is_classifier(est))


def resolve_estimator(estimator, classification: bool | None) -> Spec:
    """Map ``estimator`` to the fast linear path when it is one of ours or an exactly equivalent scikit-learn
    estimator; everything else runs on the generic (per time point) path."""
    if isinstance(estimator, str):
        name = estimator.lower()
        if name == "ridge":
            return Spec("ridge", 1.0, None, None, "ridge")
        if name == "lda":
            if classification is False:
                raise ValueError("estimator='lda' classifies labels, but the target is continuous; use "
                                 "estimator='ridge' for continuous targets (or pass class labels)")
            return Spec("lda", 0.0, "auto", None, "lda")
        raise ValueError(f"estimator must be 'ridge', 'lda', 'logistic' or a scikit-learn estimator, "
                         f"got {estimator!r}")
    if not (hasattr(estimator, "fit") and hasattr(estimator, "get_params")):
        raise TypeError(f"estimator must be 'ridge', 'lda', 'logistic' or a scikit-learn estimator (with fit and "
                        "get_params), "
                        f"got {type(estimator).__name__}")
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.linear_model import Ridge, RidgeClassifier

    name = repr(estimator)
    prm = estimator.get_params(deep=False)
    if type(estimator) in (Ridge, RidgeClassifier):
        exact = (prm.get("fit_intercept", True) and not prm.get("positive", False)
                 and prm.get("solver", "auto") in ("auto", "cholesky", "svd")
                 and np.ndim(prm.get("alpha", 1.0)) == 0 and prm.get("class_weight") is None
                 and float(prm.get("alpha", 1.0)) > 0)
        if exact:
            return Spec("ridge", float(prm["alpha"]), None, None, name)
    if type(estimator) is LinearDiscriminantAnalysis:
        sh = prm.get("shrinkage")
        if (prm.get("solver") == "lsqr" and prm.get("priors") is None and prm.get("covariance_estimator") is None
                and (sh is None or sh == "auto" or isinstance(sh, (int, float)))):
            return Spec("lda", 0.0, sh, None, name)
    return Spec("generic", 0.0, None, estimator, name)


def _target_values(brain: xr.DataArray, target, sample_dim: str) -> tuple[np.ndarray, tuple, Any]:
    n = brain.sizes[sample_dim]
    dims: tuple = ()
    coords = None
    if isinstance(target, str):
        if target not in brain.coords:
            raise ValueError(f"target={target!r} is not a coordinate of brain (coords: {list(brain.coords)}); pass "
                             f"the name of a coordinate on {sample_dim!r} or the labels themselves")
        coord = brain.coords[target]
        if coord.dims != (sample_dim,):
            raise ValueError(f"target coordinate {target!r} has dims {coord.dims}; it must lie along "
                             f"{sample_dim!r} only (one label per {sample_dim})")
        values = coord.values
    elif isinstance(target, xr.DataArray):
        if target.ndim == 0 or (target.dims[0] != sample_dim and target.ndim > 0 and sample_dim in target.dims):
            target = target.transpose(sample_dim, ...)
        if target.ndim == 2:
            dims, coords = target.dims, target.coords.get(target.dims[1])
        if (sample_dim in target.indexes and sample_dim in brain.indexes and target.sizes.get(sample_dim) == n
                and not target.indexes[sample_dim].equals(brain.indexes[sample_dim])):
            raise ValueError(f"target and brain label {sample_dim!r} differently; align them first, e.g. "
                             f"target.sel({sample_dim}=brain[{sample_dim!r}])")
        values = target.values
    else:
        values = np.asarray(target)
    if values.ndim == 0 or values.shape[0] != n:
        got = "a scalar" if values.ndim == 0 else f"{values.shape[0]} values"
        raise ValueError(f"target has {got} but brain has {n} samples along {sample_dim!r}; pass one target per "
                         f"{sample_dim} (e.g. the name of a coordinate on {sample_dim!r})")
    if values.ndim > 2:
        raise ValueError(f"target must be 1-d (labels or values) or 2-d ({sample_dim}, output), got shape "
                         f"{values.shape}")
    return values, dims, coords


def _preview(values: np.ndarray) -> str:
    flat = np.ravel(values)
    head = ", ".join(repr(v.item() if hasattr(v, "item") else v) for v in flat[:3])
    return f"{head}, ..." if flat.size > 3 else head


def _is_labels(values: np.ndarray) -> bool:
    from sklearn.utils.multiclass import type_of_target

    if values.ndim == 2:
        return False
    if values.dtype.kind in "OUSb":
        return True
    return type_of_target(values) in ("binary", "multiclass")


def group_labels(brain: xr.DataArray, groups, sample_dim: str) -> np.ndarray | None:
    """``groups`` (``None``, the name of a coordinate on ``sample_dim``, or one label per sample) as an array of
    one label per sample, checked."""
    if groups is None:
        return None
    if isinstance(groups, str):
        if groups not in brain.coords or brain.coords[groups].dims != (sample_dim,):
            raise ValueError(f"groups={groups!r} is not a coordinate on {sample_dim!r}; pass one group label per "
                             f"{sample_dim} or the name of such a coordinate")
        groups = brain.coords[groups].values
    groups = np.asarray(groups)
    if groups.shape != (brain.sizes[sample_dim],):
        raise ValueError(f"groups must have one label per {sample_dim} ({brain.sizes[sample_dim]}), got shape "
                         f"{groups.shape}")
    return groups


def prepare(brain, target, dim: str | None, sample_dim: str | None, groups, estimator, scoring) -> tuple:
    """Check everything and return ``(Problem, Spec, scoring)``."""
    if not isinstance(brain, xr.DataArray):
        raise TypeError(f"brain must be a labelled xarray.DataArray, got {type(brain).__name__}; build one with "
                        "nb.io.from_mne(epochs), nb.core.eeg_epochs(...), nb.core.fmri_responses(...) or "
                        "nb.core.activations(...)")
    if sample_dim is None:
        sample_dim = next((d for d in _SAMPLE_DIMS if d in brain.dims), None)
        if sample_dim is None:
            raise SchemaError(f"brain has dims {brain.dims} but no 'trial' or 'stimulus' dim to decode over; pass "
                              "sample_dim=... naming the dim of the samples")
    elif sample_dim not in brain.dims:
        raise SchemaError(f"sample_dim={sample_dim!r} is not a dim of brain {brain.dims}; pass one of them")
    if dim is not None and dim not in brain.dims:
        raise SchemaError(f"dim={dim!r} is not a dim of brain {brain.dims}; pass dim=one of "
                          f"{[d for d in brain.dims if d != sample_dim]} to decode at each of its points, or "
                          "dim=None to decode from all features at once (fMRI, activations)")
    if dim == sample_dim:
        raise ValueError(f"dim={dim!r} is the sample dim; decode over another dim (e.g. dim='time')")
    feature_dims = tuple(d for d in brain.dims if d not in (sample_dim, dim))
    if not feature_dims:
        raise SchemaError(f"brain has no feature dim besides {sample_dim!r} and {dim!r} (dims {brain.dims}); "
                          "decoding needs features such as 'channel', 'voxel' or 'unit'")
    check_finite(brain, "brain", fix=_NAN_FIX)
    values, tdims, tcoords = _target_values(brain, target, sample_dim)
    if values.dtype.kind == "f":
        check_finite(values, "target", fix=f"drop the {sample_dim}s without a target (the same ones from brain, "
                     f"e.g. brain.isel({sample_dim}=keep))")
    spec_hint = None
    if not isinstance(estimator, str) and hasattr(estimator, "fit"):
        spec_hint = _is_classifier(estimator)
    labels = _is_labels(values)
    if spec_hint is False and labels and values.dtype.kind in "OUS":
        raise ValueError(f"estimator {type(estimator).__name__} is a regressor, but the target holds labels "
                         f"({_preview(values)}); pass a classifier (or estimator='ridge' / 'lda', which classify "
                         "labels), or numeric target values to regress")
    if spec_hint is True and not labels:
        raise ValueError(f"estimator {type(estimator).__name__} is a classifier, but the target is continuous "
                         f"({_preview(values)}, shape {values.shape}); pass class labels (strings or integers), or a "
                         "regressor (estimator='ridge' or a scikit-learn regressor) for continuous targets")
    classification = labels if spec_hint is None else spec_hint
    spec = resolve_estimator(estimator, classification)
    if spec.kind == "lda":
        classification = True
    classes = None
    if classification:
        if values.ndim != 1:
            raise ValueError(f"classification needs one label per {sample_dim}, got a target of shape {values.shape}")
        classes, codes = np.unique(values, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(f"target has only one class ({classes.tolist()!r}); decoding needs at least two "
                             "classes: check the labels or the trial selection")
        y = codes.astype(np.int64)
    else:
        y = np.asarray(values, dtype=float)
        check_finite(y, "target", fix=f"drop the {sample_dim}s without a target value")
        if y.ndim == 1:
            y = y[:, None]
    if scoring is None:
        scoring = "accuracy" if classification else "r2"
    allowed = CLASSIFICATION_SCORINGS if classification else REGRESSION_SCORINGS
    task = "labels" if classification else "a continuous target"
    if scoring not in CLASSIFICATION_SCORINGS + REGRESSION_SCORINGS:
        raise ValueError(f"scoring={scoring!r} is not a known scoring; for {task} use one of {allowed}")
    if scoring not in allowed:
        other = ("pass numeric values to regress them" if classification else
                 "pass class labels (strings or integers) to classify")
        raise ValueError(f"scoring={scoring!r} does not apply to {task}; use one of {allowed}, or {other}")
    groups = group_labels(brain, groups, sample_dim)
    order = (sample_dim, *feature_dims) + ((dim,) if dim is not None else ())
    arr = np.asarray(brain.transpose(*order).values)
    n = arr.shape[0]
    p = int(np.prod([brain.sizes[d] for d in feature_dims]))
    X = arr.reshape(n, p, -1)
    if X.dtype.kind not in "fc":
        X = X.astype(float)
    return Problem(X, sample_dim, feature_dims, dim, classification, y, classes, tdims, tcoords, groups), spec, scoring


def make_cv_folds(problem: Problem, cv) -> list[tuple[np.ndarray, np.ndarray]]:
    """Folds as scikit-learn's ``check_cv`` makes them (stratified K-fold for labels, K-fold otherwise,
    with ``groups``: StratifiedGroupKFold for labels, GroupKFold otherwise), checked: enough samples, no group straddling, every class in every training
    set."""
    from sklearn.model_selection import GroupKFold, KFold, StratifiedGroupKFold, StratifiedKFold

    from ..encoding import check_folds

    n = problem.X.shape[0]
    sd = problem.sample_dim
    groups = problem.groups
    if isinstance(cv, (int, np.integer)) and not isinstance(cv, bool):
        k = int(cv)
        if k < 2:
            raise ValueError(f"cv must be >= 2 folds, got cv={k}")
        if n < k:
            raise ValueError(f"cv={k} folds need at least {k} {sd}s, found {n}; use fewer folds (cv=...) or more "
                             f"{sd}s")
        if groups is not None:
            n_groups = len(np.unique(groups))
            if n_groups < k:
                raise ValueError(f"cv={k} grouped folds need at least {k} distinct groups, found {n_groups}; use "
                                 "fewer folds (cv=...) or more groups")
            # labels: GroupKFold ignores them, so with few groups a test fold can hold one class and a null
            # scores below chance (0.42 for 0.5 measured on 8 stimuli x 5 repeats); stratified groups do not
            splitter = StratifiedGroupKFold(k) if problem.classification else GroupKFold(k)
        elif problem.classification:
            least = np.bincount(problem.y).min()
            if least < 2:
                cls = problem.classes[np.argmin(np.bincount(problem.y))]
                raise ValueError(f"class {cls!r} has {least} {sd}; with cv={k} it would be missing from a training "
                                 f"fold: every class needs at least 2 {sd}s (ideally >= cv): drop the rare class or "
                                 "collect more trials")
            splitter = StratifiedKFold(k)
        else:
            splitter = KFold(k)
    else:
        splitter = cv
    if hasattr(splitter, "split"):
        n_splits = splitter.get_n_splits(np.zeros((n, 1)), problem.y if problem.classification else None, groups)
        if isinstance(n_splits, (int, np.integer)) and n < n_splits:
            raise ValueError(f"cv with {n_splits} splits needs at least {n_splits} {sd}s, found {n}; use fewer "
                             "folds or more samples")
        import warnings

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The least populated class")
            folds = list(splitter.split(np.zeros((n, 1)), problem.y if problem.classification else None, groups))
    elif isinstance(splitter, (list, tuple)):
        folds = list(splitter)
    else:
        raise ValueError(f"cv must be an int, a scikit-learn splitter or a list of (train, test) index pairs, got "
                         f"{cv!r}")
    folds = check_folds(folds, n, groups)
    if problem.classification:
        n_cls = len(problem.classes)
        for i, (tr, _) in enumerate(folds):
            present = np.unique(problem.y[tr])
            if len(present) < n_cls:
                missing = [problem.classes[c] for c in range(n_cls) if c not in present]
                raise ValueError(f"class(es) {missing!r} missing from the training part of fold {i}; every class "
                                 "needs trials in every training set: use stratified folds (cv=int, the default, "
                                 "or StratifiedKFold/StratifiedGroupKFold), fewer folds, or drop the rare class")
    return folds
