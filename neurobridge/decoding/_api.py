"""Labelled entry points: time-resolved decoding, temporal generalisation, activation patterns."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
import xarray as xr

from ..core import cpu_threads, resolve_device, resolve_dtype, side_by_side
from ._inputs import SMALL_ELEMENTS, Problem, Spec, make_cv_folds, prepare
from ._linear import (
    _CHUNK_BYTES,
    decisions_generalizing,
    decisions_sliding,
    fit_linear,
    fit_logistic,
    haufe_patterns,
)
from ._scoring import chance_level, score

__all__ = ["sliding", "generalizing", "patterns"]


# ------------------------------------------------------------------------------------------ responses
def _linear_response(D: torch.Tensor, scoring: str, kind: str, classification: bool) -> torch.Tensor:
    """Decision values (..., n, k) -> what ``scoring`` needs (see :func:`score`)."""
    if not classification:
        return D
    if scoring == "roc_auc":
        if D.shape[-1] > 1 and kind in ("lda", "logistic"):  # predict_proba, as scikit-learn's 'roc_auc_ovr'
            return torch.softmax(D, -1)
        return D
    if D.shape[-1] == 1:
        return (D[..., 0] > 0).long()
    return _argmax_last(D)


def _argmax_last(D: torch.Tensor) -> torch.Tensor:
    """``D.argmax(-1)`` (first maximum on ties, as numpy and scikit-learn's ``predict``). For a few classes, a
    running comparison over them: torch's CPU argmax over a last dim of 4 took 40% of a generalisation run."""
    k = D.shape[-1]
    if k > 16:
        return D.argmax(-1)
    best, idx = D[..., 0], torch.zeros(D.shape[:-1], dtype=torch.long, device=D.device)
    for c in range(1, k):
        better = D[..., c] > best
        idx = torch.where(better, c, idx)
        best = torch.maximum(best, D[..., c])
    return idx


def _sklearn_response(model, X: np.ndarray, scoring: str, classification: bool, dtype, device) -> torch.Tensor:
    if not classification:
        pred = np.asarray(model.predict(X), dtype=float)
        return torch.as_tensor(pred.reshape(len(X), -1), dtype=dtype, device=device)
    if scoring == "roc_auc":
        binary = len(model.classes_) == 2
        if binary and hasattr(model, "decision_function"):
            s = np.asarray(model.decision_function(X)).reshape(len(X), -1)
        elif hasattr(model, "predict_proba"):
            s = np.asarray(model.predict_proba(X))
            s = s[:, 1:] if binary else s
        else:
            s = np.asarray(model.decision_function(X)).reshape(len(X), -1)
        return torch.as_tensor(s, dtype=dtype, device=device)
    return torch.as_tensor(np.asarray(model.predict(X)).astype(np.int64), device=device)


# ------------------------------------------------------------------------------------------ logistic
def _logistic_spec(estimator) -> Spec | None:
    """The batched logistic path for ``"logistic"`` and for a ``LogisticRegression`` whose objective it minimises
    (L2 penalty, finite C, intercept, a solver of the full objective: lbfgs, newton-cg, newton-cholesky, and the
    multinomial loss for several classes); ``None`` for anything else."""
    from sklearn.linear_model import LogisticRegression

    if isinstance(estimator, str):
        return Spec("logistic", 0.0, None, LogisticRegression(), "logistic") if estimator.lower() == "logistic" \
            else None
    if type(estimator) is not LogisticRegression:
        return None
    prm = estimator.get_params(deep=False)
    penalty = prm.get("penalty", "l2")
    l1_ratio = prm.get("l1_ratio")
    l2 = penalty == "l2" or (penalty == "deprecated" and (l1_ratio is None or l1_ratio == 0))
    C = prm.get("C", 1.0)
    exact = (l2 and np.ndim(C) == 0 and 0 < float(C) < np.inf and prm.get("fit_intercept", True)
             and not prm.get("dual", False) and prm.get("solver", "lbfgs") in ("lbfgs", "newton-cg", "newton-cholesky")
             and prm.get("multi_class", "auto") in ("auto", "deprecated")  # older scikit-learn's "multinomial"
             # fits two classes by a softmax of two penalised rows: another objective
             and (prm.get("class_weight") is None or prm.get("class_weight") == "balanced"
                  or isinstance(prm.get("class_weight"), dict)))
    return Spec("logistic", 0.0, None, estimator, repr(estimator)) if exact else None


def _prepare(brain, target, dim, sample_dim, groups, estimator, scoring):
    """:func:`prepare`, with logistic regression routed to the batched path."""
    spec = _logistic_spec(estimator)
    if spec is None:
        return prepare(brain, target, dim, sample_dim, groups, estimator, scoring)
    problem, _, scoring = prepare(brain, target, dim, sample_dim, groups, spec.estimator, scoring)
    return problem, spec, scoring


def _fit_logistic(problem: Problem, spec: Spec, X: torch.Tensor, masks: torch.Tensor, stacklevel: int = 2):
    """Batched logistic regressions of every fit (row of ``masks``), with the estimator's C, class_weight, tol and
    max_iter; a ConvergenceWarning, as scikit-learn's, for fits that did not reach tol (``stacklevel`` frames up:
    the user's call)."""
    prm = spec.estimator.get_params(deep=False)
    weights = masks.to(X.dtype)
    cw = prm.get("class_weight")
    if cw is not None:
        from sklearn.utils.class_weight import compute_class_weight

        labels = problem.classes[problem.y]
        for f in range(len(masks)):
            tr = masks[f].cpu().numpy()
            per_class = compute_class_weight(cw, classes=problem.classes, y=labels[tr])
            weights[f] *= torch.as_tensor(per_class[problem.y], dtype=X.dtype, device=X.device)
    fit = fit_logistic(X, torch.as_tensor(problem.y, device=X.device), weights, n_classes=len(problem.classes),
                       C=float(prm["C"]), tol=float(prm.get("tol", 1e-4)), max_iter=int(prm.get("max_iter", 100)))
    if not bool(fit.converged.all()):
        from sklearn.exceptions import ConvergenceWarning

        bad = int((~fit.converged).sum())
        warnings.warn(f"logistic regression did not converge for {bad} of {fit.converged.numel()} fits (fold x "
                      f"{problem.dim or 'fit'}) within max_iter={prm.get('max_iter', 100)} Newton iterations "
                      f"(largest scaled gradient {float(fit.grad_max.max()):.2g} > tol={prm.get('tol', 1e-4):g}); "
                      "increase max_iter, scale the data (z-score each channel, e.g. brain / brain.std('trial')) "
                      "or use a smaller C", ConvergenceWarning, stacklevel=stacklevel + 1)
    return fit.models


# ------------------------------------------------------------------------------------------ the paths
def _targets_tensor(problem: Problem, spec: Spec, dtype, device) -> torch.Tensor:
    if spec.kind == "lda":
        return torch.as_tensor(problem.y, device=device)
    if problem.classification:  # RidgeClassifier: LabelBinarizer(neg_label=-1); one column when binary
        n_cls = len(problem.classes)
        Y = -torch.ones(len(problem.y), n_cls, dtype=dtype, device=device)
        Y[torch.arange(len(problem.y)), torch.as_tensor(problem.y)] = 1.0
        return Y[:, 1:] if n_cls == 2 else Y
    return torch.as_tensor(problem.y, dtype=dtype, device=device)


def _centred(problem: Problem, dtype, device) -> tuple[torch.Tensor, torch.Tensor]:
    X = torch.as_tensor(problem.X, dtype=dtype, device=device).permute(2, 0, 1).contiguous()  # (T, n, p)
    g = X.mean(1)
    X -= g[:, None, :]
    return X, g


def _fast(problem: Problem, spec: Spec, folds, scoring: str, generalize: bool, device) -> np.ndarray:
    """Scores (fold, T) or (fold, T, T) of the batched linear decoders."""
    if problem.X.size < SMALL_ELEMENTS:
        with cpu_threads(1, device):
            return _fast_impl(problem, spec, folds, scoring, generalize, device)
    return _fast_impl(problem, spec, folds, scoring, generalize, device)


def _fast_impl(problem: Problem, spec: Spec, folds, scoring: str, generalize: bool, device) -> np.ndarray:
    dtype = resolve_dtype(None)
    X, g = _centred(problem, dtype, device)
    T, n, _ = X.shape
    masks = torch.zeros(len(folds), n, dtype=torch.bool, device=device)
    for f, (tr, _) in enumerate(folds):
        masks[f, torch.as_tensor(tr, device=device)] = True
    Yfit = None if spec.kind == "logistic" else _targets_tensor(problem, spec, dtype, device)
    n_cls = 0 if problem.classification is False else len(problem.classes)
    if spec.kind == "logistic":
        models = _fit_logistic(problem, spec, X, masks, stacklevel=5)  # _fast_impl, _fast, _run, sliding, user
    else:
        models = fit_linear(spec.kind, X, Yfit, masks, alpha=spec.alpha, shrinkage=spec.shrinkage, n_classes=n_cls)
    k = models.coef.shape[-1]
    y_all = torch.as_tensor(problem.y, device=device) if problem.classification else \
        torch.as_tensor(problem.y, dtype=dtype, device=device)
    out = np.empty((len(folds), T, T) if generalize else (len(folds), T))
    for f, (_, va) in enumerate(folds):
        va_t = torch.as_tensor(va, device=device)
        Xv, yv = X[:, va_t], y_all[va_t]
        if not generalize:
            D = decisions_sliding(models, f, Xv)
            out[f] = score(scoring, _linear_response(D, scoring, spec.kind, problem.classification), yv,
                           n_cls).cpu().numpy()
            continue
        chunk = max(1, int(_CHUNK_BYTES // (3 * T * len(va) * k * X.element_size())))
        for start in range(0, T, chunk):
            sl = slice(start, min(T, start + chunk))
            D = decisions_generalizing(models, f, Xv, g, sl)
            out[f, sl] = score(scoring, _linear_response(D, scoring, spec.kind, problem.classification), yv,
                               n_cls).cpu().numpy()
    return out


def _generic(problem: Problem, spec: Spec, folds, scoring: str, generalize: bool, n_jobs, progress) -> np.ndarray:
    from sklearn.base import clone
    from threadpoolctl import threadpool_limits

    X = problem.X
    n, p, T = X.shape
    dtype = torch.float64
    y_fit = problem.y if problem.classification or problem.y.shape[1] > 1 else problem.y[:, 0]
    y_score = torch.as_tensor(problem.y) if problem.classification else torch.as_tensor(problem.y, dtype=dtype)
    n_cls = len(problem.classes) if problem.classification else 0
    # every test set once, all test time points stacked: (T * n_val, p), shared read-only by the workers
    tests = [np.ascontiguousarray(X[va].transpose(2, 0, 1).reshape(T * len(va), p)) if generalize else None
             for _, va in folds]

    def run(task):
        f, t = task
        tr, va = folds[f]
        model = clone(spec.estimator).fit(X[tr, :, t], y_fit[tr])
        yv = y_score[torch.as_tensor(va)]
        if not generalize:
            resp = _sklearn_response(model, X[va, :, t], scoring, problem.classification, dtype, "cpu")
            return float(score(scoring, resp, yv, n_cls))
        resp = _sklearn_response(model, tests[f], scoring, problem.classification, dtype, "cpu")
        resp = resp.reshape(T, len(va), *resp.shape[1:])
        return score(scoring, resp, yv, n_cls).numpy()

    tasks = [(f, t) for f in range(len(folds)) for t in range(T)]
    workers = int(n_jobs) if n_jobs is not None else torch.get_num_threads()
    if workers < 1:
        raise ValueError(f"n_jobs must be >= 1 or None (all cores), got {n_jobs!r}")
    with threadpool_limits(1), cpu_threads(1):
        res = side_by_side(run, tasks, workers, progress=progress,
                           desc="generalizing" if generalize else "sliding", unit="fit")
    return np.asarray(res, dtype=float).reshape((len(folds), T, T) if generalize else (len(folds), T))


# ---------------------------------------------------------------------------------------------- output
def _dim_coords(brain: xr.DataArray, dim: str, suffix: str = "") -> dict:
    out = {}
    for name, c in brain.coords.items():
        if c.dims == (dim,):
            out[f"{name}{suffix}"] = (f"{dim}{suffix}", c.values, c.attrs)
    return out


def _attrs(problem: Problem, spec: Spec, scoring: str, cv, folds) -> dict:
    attrs: dict[str, Any] = {
        "scoring": scoring,
        "estimator": spec.name,
        "cv": repr(cv) if not isinstance(cv, (list, tuple)) else f"{len(folds)} given folds",
        "n_folds": len(folds),
        "task": "classification" if problem.classification else "regression",
        "chance": chance_level(scoring, problem.y if problem.classification else None),
        "sample_dim": problem.sample_dim,
        "path": "generic" if spec.kind == "generic" else f"batched {spec.kind}",
    }
    if problem.classification:
        attrs["classes"] = [str(c) for c in problem.classes]
        attrs["class_counts"] = np.bincount(problem.y).astype(int).tolist()
    return attrs


def _run(brain, target, dim, estimator, cv, groups, scoring, keep_folds, sample_dim, n_jobs, device, progress,
         generalize: bool) -> xr.DataArray:
    if generalize and dim is None:
        raise ValueError("generalizing needs a dim to train and test along (e.g. dim='time'); for a single "
                         "score without one use nb.decoding.sliding(..., dim=None)")
    problem, spec, scoring = _prepare(brain, target, dim, sample_dim, groups, estimator, scoring)
    folds = make_cv_folds(problem, cv)
    dev = resolve_device(None, device)
    if spec.kind == "generic":
        scores = _generic(problem, spec, folds, scoring, generalize, n_jobs, progress)
    else:
        scores = _fast(problem, spec, folds, scoring, generalize, dev)
    attrs = _attrs(problem, spec, scoring, cv, folds)
    if dim is None:
        data, dims, coords = scores[:, 0], ("fold",), {}
    elif generalize:
        data, dims = scores, ("fold", dim, f"{dim}2")
        coords = {**_dim_coords(brain, dim), **_dim_coords(brain, dim, "2")}
        attrs.update(train_dim=dim, test_dim=f"{dim}2")
    else:
        data, dims, coords = scores, ("fold", dim), _dim_coords(brain, dim)
    if keep_folds:
        coords["fold"] = ("fold", np.arange(len(folds)))
    else:
        data, dims = data.mean(0), dims[1:]
    coords = {k: xr.Variable(v[0], v[1], attrs=v[2]) if isinstance(v, tuple) and len(v) == 3 else v
              for k, v in coords.items()}
    return xr.DataArray(data, dims=dims, coords=coords, name=scoring, attrs=attrs)


_COMMON_DOC = """
    Parameters
    ----------
    brain : xr.DataArray
        Samples along ``trial`` (or ``stimulus``, or ``sample_dim``), the decoded-over dim ``dim``, and any
        feature dims (``channel``, ``voxel``, ``unit``; several are flattened together): M/EEG
        ``(trial, channel, time)``, fMRI ``(trial, voxel)`` with ``dim=None``, activations ``(stimulus, unit)``.
    target : str, array or xr.DataArray
        One value per sample: the name of a coordinate on the sample dim, or the values. Labels (strings,
        integers, booleans) are classified; floats (or a 2-d ``(sample, output)`` array such as an embedding)
        are regressed.
    dim : str or None
        The dim to decode at each point of (default ``"time"``).
    estimator : "ridge", "lda", "logistic" or a scikit-learn estimator / Pipeline
        ``"ridge"`` (default): ``RidgeClassifier(alpha=1)`` for labels, ``Ridge(alpha=1)`` for continuous
        targets; ``"lda"``: ``LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto")``; ``"logistic"``:
        ``LogisticRegression()`` (L2, ``C=1``). These, and the equal scikit-learn instances
        (``Ridge``/``RidgeClassifier`` with a scalar alpha and an exact solver,
        ``LinearDiscriminantAnalysis(solver="lsqr")`` with any shrinkage, ``LogisticRegression`` with the L2
        penalty, a finite ``C``, an intercept, any ``class_weight``, and the lbfgs, newton-cg or
        newton-cholesky solver), run on the batched torch path: every time point and fold in one batched solve,
        every prediction in batched GEMMs, scores reduced in torch, with the same predictions as scikit-learn
        on each time point (closed forms to rounding; logistic regression is minimised by batched truncated
        Newton to the estimator's ``tol`` on the same gradient as scikit-learn's, with ``max_iter`` bounding
        the Newton iterations and a ``ConvergenceWarning`` for fits that did not get there; the two
        iterative solvers stop near, not at, the same point: the same accuracy to about 0.01 at the default
        ``tol``, the same scores at a tight one). Any other estimator runs on the generic path: cloned and
        fitted per fold and time point on ``n_jobs`` threads over the shared data.
    cv : int, scikit-learn splitter or list of (train, test) index pairs
        An int gives ``StratifiedKFold(cv)`` for labels and ``KFold(cv)`` otherwise (as ``check_cv``, so as
        ``mne.decoding.cross_val_multiscore``); with ``groups``, ``StratifiedGroupKFold(cv)`` for labels (no
        group in two folds, classes balanced across folds: ``GroupKFold`` ignores the labels, and with few groups
        its test folds can hold one class, biasing null scores below chance) and ``GroupKFold(cv)`` otherwise.
        Default 5.
    groups : str or array, optional
        Group of each sample (run, session; or a coordinate name): no group is split across train and test.
    scoring : {"accuracy", "balanced_accuracy", "roc_auc"} for labels, {"r2", "r"} for continuous targets
        Default ``"accuracy"`` / ``"r2"`` (the estimator's own ``score``). ``roc_auc`` is the binary AUC of the
        decision function, or for several classes the macro one-vs-rest AUC of ``predict_proba`` (LDA, and
        generic estimators that have it) or of the decision function (ridge). ``r`` is Pearson's
        correlation; several outputs are averaged (uniformly, as ``r2_score``).
    keep_folds : bool
        Keep a ``fold`` dim instead of averaging the folds.
    sample_dim : str, optional
        Default: ``trial`` if present, else ``stimulus``.
    n_jobs : int, optional
        Threads of the generic path (default: torch's thread count). The batched path ignores it.
    device : str, optional
        Device of the batched path (default: ``nb.config_context(device=...)``, else CPU); its dtype follows
        ``nb.config_context(dtype=...)`` (float32 by default).
    progress : bool, optional
        Progress bar of the generic path (``None``: automatic, see :func:`neurobridge.core.progress_enabled`).
"""


def sliding(brain: xr.DataArray, target, dim: str | None = "time", *, estimator: Any = "ridge", cv: Any = 5,
            groups=None, scoring: str | None = None, keep_folds: bool = False, sample_dim: str | None = None,
            n_jobs: int | None = None, device: str | None = None, progress: bool | None = None) -> xr.DataArray:
    """Cross-validated decoding at every point of ``dim`` (time-resolved decoding).

    The labelled equivalent of ``cross_val_multiscore(SlidingEstimator(estimator), X, y, cv=cv)``: one decoder
    per time point, trained and tested on the same time point, scores averaged over folds.
    {common}
    Returns
    -------
    xr.DataArray
        Scores over ``dim`` (with its coords), plus ``fold`` with ``keep_folds``; a 0-d (or ``fold``) array
        when ``dim=None``. Attrs: ``scoring``, ``estimator``, ``cv``, ``n_folds``, ``task``, ``chance`` (from
        the label distribution: the majority-class proportion for accuracy, ``1 / n_classes`` for balanced
        accuracy, 0.5 for AUC, 0 for r and R2; with unbalanced classes a decoder that learned nothing scores
        below the accuracy one, see :func:`chance_level`), ``classes`` and ``class_counts``, ``path``.

    Raises
    ------
    ValueError
        ``dim`` not in ``brain``, a target of the wrong length, one class only, a class missing from a training
        fold, fewer samples than folds, NaN or inf in ``brain`` (a ``SchemaError``), a scoring that does not
        fit the target; each message names the fix.

    Examples
    --------
    >>> import numpy as np, neurobridge as nb
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([0, 1], 20)
    >>> X = rng.normal(size=(40, 8, 5)); X[y == 1, 0, 2:] += 4.0
    >>> epochs = nb.core.eeg_epochs(X, stimulus=y, sfreq=100.0)
    >>> scores = nb.decoding.sliding(epochs, y, estimator="lda")
    >>> scores.dims, scores.attrs["chance"]
    (('time',), 0.5)
    >>> (scores.values[2:] > 0.8).all(), (scores.values[:2] < 0.8).all()
    (np.True_, np.True_)
    """
    return _run(brain, target, dim, estimator, cv, groups, scoring, keep_folds, sample_dim, n_jobs, device,
                progress, generalize=False)


def generalizing(brain: xr.DataArray, target, dim: str = "time", *, estimator: Any = "ridge", cv: Any = 5,
                 groups=None, scoring: str | None = None, keep_folds: bool = False, sample_dim: str | None = None,
                 n_jobs: int | None = None, device: str | None = None,
                 progress: bool | None = None) -> xr.DataArray:
    """Temporal generalisation: train at each point of ``dim``, test at every point (King & Dehaene 2014).

    The labelled equivalent of ``cross_val_multiscore(GeneralizingEstimator(estimator), X, y, cv=cv)``. On the
    batched path all ``(time, time2)`` predictions of a fold come from one GEMM of the test data at every time
    point with the weights of every training time point (in memory-planned chunks).
    {common}
    Returns
    -------
    xr.DataArray
        Scores over ``(dim, dim + "2")``: training time along ``time``, testing time along ``time2`` (both with
        the coords of ``dim``, the second's names suffixed with ``2``), plus ``fold`` with ``keep_folds``.
        Attrs as :func:`sliding`, and ``train_dim``, ``test_dim``.

    Examples
    --------
    >>> import numpy as np, neurobridge as nb
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat(["a", "b"], 20)
    >>> X = rng.normal(size=(40, 8, 4)); X[y == "b", 0, 1:] += 4.0
    >>> gen = nb.decoding.generalizing(nb.core.eeg_epochs(X, stimulus=y, sfreq=100.0), y)
    >>> gen.dims, gen.shape
    (('time', 'time2'), (4, 4))
    >>> bool(gen.values[1, 3] > 0.8), bool(gen.values[0, 3] < 0.8)
    (True, True)
    """
    return _run(brain, target, dim, estimator, cv, groups, scoring, keep_folds, sample_dim, n_jobs, device,
                progress, generalize=True)


sliding.__doc__ = sliding.__doc__.replace("{common}", _COMMON_DOC)
generalizing.__doc__ = generalizing.__doc__.replace("{common}", _COMMON_DOC)


def patterns(brain: xr.DataArray, target, dim: str | None = "time", *, estimator: Any = "ridge",
             sample_dim: str | None = None, device: str | None = None) -> xr.DataArray:
    """Haufe et al. (2014) activation patterns of a linear decoder fitted on all samples at each point of ``dim``.

    ``A = cov(X) W`` per time point (``W`` the decoder's weights, ``cov`` with ``ddof=1``), times the
    pseudo-inverse of the targets' covariance for multi-output regression: the same numbers as
    ``get_coef(SlidingEstimator(LinearModel(estimator)).fit(X, y), "patterns_", inverse_transform=True)`` in
    MNE. Unlike the weights, patterns show where the decoded information is in the data (a weight can be large
    on a channel that only cancels noise).

    Parameters
    ----------
    brain, target, dim, sample_dim, device
        As :func:`sliding`.
    estimator : "ridge", "lda", "logistic" or a linear scikit-learn estimator
        As :func:`sliding`; a generic estimator must expose ``coef_`` of shape ``(k, n_features)`` or
        ``(n_features,)`` (not a Pipeline: scale the data first).

    Returns
    -------
    xr.DataArray
        Over the feature dims and ``dim`` (``(channel, time)``; ``(voxel,)`` with ``dim=None``), led by a
        ``class`` dim for more than two classes (one pattern per class, one-vs-rest weights) or by the target's
        output dim for a multi-output regression. Coords of ``brain`` kept; attrs name the estimator.

    Examples
    --------
    >>> import numpy as np, neurobridge as nb
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([0, 1], 30)
    >>> X = rng.normal(size=(60, 4, 3)); X[y == 1, 2] += 1.5
    >>> A = nb.decoding.patterns(nb.core.eeg_epochs(X, stimulus=y, sfreq=100.0), y, estimator="lda")
    >>> A.dims, int(abs(A).argmax("channel")[0])
    (('channel', 'time'), 2)
    """
    problem, spec, _ = _prepare(brain, target, dim, sample_dim, None, estimator, None)
    dev = resolve_device(None, device)
    dtype = resolve_dtype(None)
    X, g = _centred(problem, dtype, dev)
    T, n, p = X.shape
    n_cls = len(problem.classes) if problem.classification else 0
    Yfit = None
    if spec.kind == "generic":
        from sklearn.base import clone

        if hasattr(spec.estimator, "steps"):
            raise TypeError(f"patterns need the linear decoder itself, got a {type(spec.estimator).__name__}: its "
                            "weights would be in the coordinates of its transformed data; scale brain first (e.g. "
                            "divide by its standard deviation over trials) and pass the final estimator")
        coefs = []
        y_fit = problem.y if problem.classification or problem.y.shape[1] > 1 else problem.y[:, 0]
        for t in range(T):
            m = clone(spec.estimator).fit(problem.X[:, :, t], y_fit)
            if not hasattr(m, "coef_"):
                raise TypeError(f"patterns need a linear decoder with coef_, got {type(m).__name__}; use "
                                "estimator='ridge' or 'lda', or a linear scikit-learn estimator")
            coefs.append(np.atleast_2d(np.asarray(m.coef_)).T)
        W = torch.as_tensor(np.stack(coefs), dtype=dtype, device=dev)[None]
        from ._linear import LinearModels

        models = LinearModels(W, torch.zeros(1, T, W.shape[-1], dtype=dtype, device=dev))
    elif spec.kind == "logistic":
        models = _fit_logistic(problem, spec, X, torch.ones(1, n, dtype=torch.bool, device=dev), stacklevel=2)
    else:
        masks = torch.ones(1, n, dtype=torch.bool, device=dev)
        Yfit = _targets_tensor(problem, spec, dtype, dev)
        # origin=g: the weights of the uncentred data, as scikit-learn's (LDA's per-class coef_ depend on it)
        models = fit_linear(spec.kind, X, Yfit, masks, alpha=spec.alpha, shrinkage=spec.shrinkage, n_classes=n_cls,
                            origin=g)
    Ycov = None
    if not problem.classification and problem.y.shape[1] > 1:
        Ycov = torch.as_tensor(problem.y, dtype=dtype, device=dev)
    A = haufe_patterns(models, X, Ycov).cpu().numpy()  # (T, p, k)
    k = A.shape[-1]
    shape = tuple(brain.sizes[d] for d in problem.feature_dims)
    A = A.transpose(2, 1, 0).reshape(k, *shape, T)  # (k, *features, T)
    dims = list(problem.feature_dims) + ([dim] if dim is not None else [])
    coords = {name: c for name, c in brain.coords.items() if set(c.dims) <= set(dims) and c.dims}
    if k > 1:
        if problem.classification:
            extra, labels = "class", [c for c in problem.classes]
        else:
            extra = problem.target_dims[1] if problem.target_dims else "output"
            labels = problem.target_coords.values if problem.target_coords is not None else np.arange(k)
        dims = [extra, *dims]
        coords[extra] = (extra, np.asarray(labels))
        data = A if dim is not None else A[..., 0]
    else:
        data = A[0] if dim is not None else A[0, ..., 0]
    attrs = {key: v for key, v in brain.attrs.items() if isinstance(v, (str, int, float, list))}
    attrs.update(estimator=spec.name, quantity="Haufe activation patterns")
    if problem.classification:
        attrs["classes"] = [str(c) for c in problem.classes]
    return xr.DataArray(data, dims=dims, coords=coords, name="patterns", attrs=attrs)
