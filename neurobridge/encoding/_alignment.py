"""Cross-subject functional alignment: Procrustes hyperalignment and the shared response model.

Both map each subject's responses ``(stimulus, voxel_i)`` (voxel counts may differ) into one common space
``(stimulus, feature)`` with an orthonormal transform per subject, fitted on training stimuli that every
subject saw and then applied to held-out stimuli, so encoding, decoding and RSA can pool or transfer across
subjects.

- :func:`hyperalign` / :class:`Hyperalignment`: the iterative Procrustes procedure of Haxby et al. (2011,
  Neuron 72:404), as in PyMVPA: subjects are rotated one by one onto a running template, re-aligned to the
  mean of the others, and finally to the mean of all.
- :func:`fit_srm` / :class:`SharedResponseModel`: the probabilistic shared response model of Chen et al.
  (2015, NeurIPS), fitted by the EM algorithm of brainiak's ``brainiak.funcalign.srm.SRM`` (initialised the
  same way, so a seed gives brainiak's starting point).
- :func:`align_subjects`: the labelled entry point on a dict of per-subject DataArrays, joined on ``stimulus``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Literal, NamedTuple

import numpy as np
import pandas as pd
import torch
import xarray as xr
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from ..core import SchemaError, as_tensor, check_finite, check_unique, stimulus_ids

__all__ = [
    "HyperalignmentResult", "SRMResult", "SubjectAlignment", "hyperalign", "fit_srm", "Hyperalignment",
    "SharedResponseModel", "align_subjects",
]

logger = logging.getLogger("neurobridge")


class HyperalignmentResult(NamedTuple):
    """Transforms and template of Procrustes hyperalignment."""

    transforms: list[torch.Tensor]
    """Per subject, ``(n_voxels_i, n_features)``: ``X_i @ R_i`` is subject i in the common space."""
    template: torch.Tensor
    """``(n_samples, n_features)``: the mean of the aligned subjects (the common space of the training data)."""


class SRMResult(NamedTuple):
    """Parameters of a fitted probabilistic shared response model."""

    w: list[torch.Tensor]
    """Per subject, ``(n_voxels_i, n_features)`` with orthonormal columns: ``X_i ~ S W_i^T``."""
    shared: torch.Tensor
    """``(n_samples, n_features)``: posterior mean of the shared response from the last E-step."""
    sigma_s: torch.Tensor
    """``(n_features, n_features)``: covariance of the shared response."""
    rho2: torch.Tensor
    """``(n_subjects,)``: noise variance per subject."""
    log_likelihood: torch.Tensor
    """``(n_iter,)``: log-likelihood (up to a constant) of the parameters each E-step starts from."""


def _as_list(Xs, name: str = "X") -> list:
    if isinstance(Xs, Mapping):
        Xs = list(Xs.values())
    if isinstance(Xs, (np.ndarray, torch.Tensor)) and Xs.ndim == 3:
        Xs = list(Xs)
    if not isinstance(Xs, Sequence) or isinstance(Xs, str):
        raise TypeError(f"{name} must be a list of per-subject arrays (n_samples, n_voxels_i), got {type(Xs).__name__}")
    return list(Xs)


def _tensors(Xs, *, dtype=None, device=None, min_subjects: int = 2, name: str = "X") -> list[torch.Tensor]:
    Xs = _as_list(Xs, name)
    if len(Xs) < min_subjects:
        raise ValueError(f"{name} holds {len(Xs)} subject(s); alignment needs at least {min_subjects}")
    first = as_tensor(Xs[0], dtype=dtype, device=device)
    out = []
    for i, x in enumerate(Xs):
        t = as_tensor(x, dtype=first.dtype, device=first.device)
        if t.ndim != 2:
            raise ValueError(f"{name}[{i}] must be 2-d (n_samples, n_voxels), got shape {tuple(t.shape)}")
        check_finite(t, f"{name}[{i}]")
        out.append(t)
    n = {t.shape[0] for t in out}
    if len(n) > 1:
        raise ValueError(f"every subject needs the same samples (rows) in the same order, found row counts "
                         f"{[t.shape[0] for t in out]}; select the shared stimuli first (nb.encoding.align_subjects "
                         "joins on 'stimulus')")
    return out


def _procrustes(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``R`` with orthonormal columns (or rows) minimising ``||x R - target||_F``: ``U V^T`` of ``svd(x^T target)``."""
    u, _, vh = torch.linalg.svd(x.T @ target, full_matrices=False)
    return u @ vh


def hyperalign(Xs: Sequence, *, n_iter: int = 1, reference: int = 0) -> HyperalignmentResult:
    """Procrustes hyperalignment of several subjects to a common template (Haxby et al. 2011).

    Level 1: the template starts as subject ``reference``; each other subject is rotated onto it
    (orthogonal Procrustes) and the template becomes the mean of itself and the rotated subject. Level 2
    (``n_iter`` passes): each subject is rotated onto the mean of the others' aligned data. Level 3: each
    subject is rotated onto the mean of all aligned subjects, giving the final transforms. The common space
    has the reference subject's number of voxels. Pass centred (or z-scored) data.

    Parameters
    ----------
    Xs : sequence of arrays or tensors, each ``(n_samples, n_voxels_i)``
        The same samples (stimuli or time points) in every subject, in the same order.
    n_iter : int
        Level-2 passes (PyMVPA's ``level2_niter``, default 1).
    reference : int
        The subject whose data start the template and whose voxel count is the common dimension.

    Returns
    -------
    HyperalignmentResult
        ``transforms`` (list of ``(n_voxels_i, n_features)``) and ``template`` ``(n_samples, n_features)``.

    Examples
    --------
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> s = torch.randn(30, 4, generator=g, dtype=torch.float64)
    >>> q = torch.linalg.qr(torch.randn(4, 4, generator=g, dtype=torch.float64))[0]
    >>> res = hyperalign([s, s @ q])
    >>> bool(torch.allclose(s @ q @ res.transforms[1], s @ res.transforms[0]))
    True
    """
    xs = _tensors(Xs, name="Xs")
    if int(n_iter) != n_iter or n_iter < 0:
        raise ValueError(f"n_iter must be an integer >= 0, got {n_iter!r}")
    n_sub = len(xs)
    if not -n_sub <= reference < n_sub:
        raise ValueError(f"reference must index one of the {n_sub} subjects, got {reference!r}")
    reference %= n_sub
    template = xs[reference].clone()
    mapped: list[torch.Tensor] = [xs[reference]] * n_sub
    for i in range(n_sub):  # level 1
        if i == reference:
            continue
        mapped[i] = xs[i] @ _procrustes(xs[i], template)
        template = (template + mapped[i]) / 2
    for _ in range(int(n_iter)):  # level 2
        total = torch.stack(mapped).sum(0)
        for i in range(n_sub):
            others = (total - mapped[i]) / (n_sub - 1)
            mapped[i] = xs[i] @ _procrustes(xs[i], others)
    template = torch.stack(mapped).mean(0)
    transforms = [_procrustes(x, template) for x in xs]  # level 3
    template = torch.stack([x @ r for x, r in zip(xs, transforms, strict=True)]).mean(0)
    return HyperalignmentResult(transforms, template)


def _srm_init(voxels: Sequence[int], n_features: int, random_state, dtype, device) -> list[torch.Tensor]:
    """Random orthonormal ``W_i`` drawn as brainiak's ``_init_w_transforms`` does (same seed, same matrices)."""
    rs = random_state if isinstance(random_state, np.random.RandomState) else np.random.RandomState(random_state)
    states = [np.random.RandomState(rs.randint(2 ** 32, dtype=np.int64)) for _ in voxels]
    out = []
    for v, st in zip(voxels, states, strict=True):
        q, _ = np.linalg.qr(st.random_sample((v, n_features)))
        out.append(torch.as_tensor(q, dtype=dtype, device=device))
    return out


def _inv_spd(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse and log-determinant of a symmetric positive definite matrix via Cholesky."""
    c = torch.linalg.cholesky(a)
    return torch.cholesky_inverse(c), 2 * torch.log(torch.diagonal(c)).sum()


def fit_srm(Xs: Sequence, n_features: int, *, n_iter: int = 10, random_state=0, init: Sequence | None = None) -> SRMResult:
    """Fit the probabilistic shared response model by EM (Chen et al. 2015).

    Model: ``x_it = W_i s_t + e_it`` with ``W_i^T W_i = I``, ``s_t ~ N(0, Sigma_s)``, ``e_it ~ N(0, rho_i^2 I)``.
    E-step: posterior mean of the shared response given the current parameters; M-step: ``Sigma_s``, each
    ``W_i`` (an orthogonal Procrustes problem) and each ``rho_i^2`` in closed form, as in brainiak's ``SRM``.
    Pass centred data (the model has no mean; :class:`SharedResponseModel` centres for you).

    Parameters
    ----------
    Xs : sequence of arrays or tensors, each ``(n_samples, n_voxels_i)``
        The same samples in every subject, in the same order; ``n_voxels_i >= n_features``.
    n_features : int
        Dimension of the shared space (``<= n_samples``).
    n_iter : int
        EM iterations (brainiak's default: 10).
    random_state : int, numpy RandomState or None
        Seed of the random orthonormal initial ``W_i`` (brainiak's ``rand_seed``).
    init : sequence of arrays, optional
        Initial ``W_i`` ``(n_voxels_i, n_features)`` instead of the random ones.

    Returns
    -------
    SRMResult

    Examples
    --------
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> s = torch.randn(40, 3, generator=g, dtype=torch.float64)
    >>> ws = [torch.linalg.qr(torch.randn(10, 3, generator=g, dtype=torch.float64))[0] for _ in range(3)]
    >>> res = fit_srm([s @ w.T for w in ws], 3, n_iter=20)
    >>> [tuple(w.shape) for w in res.w], tuple(res.shared.shape)
    ([(10, 3), (10, 3), (10, 3)], (40, 3))
    """
    xs = _tensors(Xs, name="Xs")
    n, k = xs[0].shape[0], n_features
    if int(k) != k or k < 1:
        raise ValueError(f"n_features must be an integer >= 1, got {n_features!r}")
    if int(n_iter) != n_iter or n_iter < 1:
        raise ValueError(f"n_iter must be an integer >= 1, got {n_iter!r}")
    voxels = [x.shape[1] for x in xs]
    if k > n:
        raise ValueError(f"n_features={k} exceeds the {n} training samples; use n_features <= {n}")
    if k > min(voxels):
        raise ValueError(f"n_features={k} exceeds the smallest subject's voxel count {min(voxels)}; use "
                         f"n_features <= {min(voxels)}")
    dt, dev = xs[0].dtype, xs[0].device
    if init is None:
        w = _srm_init(voxels, k, random_state, dt, dev)
    else:
        w = [as_tensor(wi, dtype=dt, device=dev) for wi in _as_list(init, "init")]
        if [tuple(wi.shape) for wi in w] != [(v, k) for v in voxels]:
            raise ValueError(f"init shapes {[tuple(wi.shape) for wi in w]} do not match "
                             f"{[(v, k) for v in voxels]} (n_voxels_i, n_features)")
    trace_xtx = torch.stack([(x * x).sum() for x in xs])
    vox = torch.tensor(voxels, dtype=dt, device=dev)
    rho2 = torch.ones(len(xs), dtype=dt, device=dev)
    sigma_s = torch.eye(k, dtype=dt, device=dev)
    eye = torch.eye(k, dtype=dt, device=dev)
    loglik = torch.empty(int(n_iter), dtype=dt, device=dev)
    shared = torch.zeros(n, k, dtype=dt, device=dev)
    for it in range(int(n_iter)):
        # E-step: posterior mean of the shared response
        rho0 = (1 / rho2).sum()
        inv_sigma_s, logdet_s = _inv_spd(sigma_s)
        inv_sigma_s_rhos, logdet_sr = _inv_spd(inv_sigma_s + rho0 * eye)
        wt_invpsi_x = sum(x @ wi / r for x, wi, r in zip(xs, w, rho2, strict=True))  # (n, k)
        trace_xt_invpsi_x = (trace_xtx / rho2).sum()
        log_det = logdet_sr + (torch.log(rho2) * vox).sum() + logdet_s
        loglik[it] = (-0.5 * n * log_det - 0.5 * trace_xt_invpsi_x
                      + 0.5 * (wt_invpsi_x @ inv_sigma_s_rhos * wt_invpsi_x).sum())
        shared = wt_invpsi_x @ (sigma_s @ (eye - rho0 * inv_sigma_s_rhos)).T
        # M-step
        sigma_s = inv_sigma_s_rhos + shared.T @ shared / n
        sigma_s = (sigma_s + sigma_s.T) / 2
        trace_sigma_s = n * torch.trace(sigma_s)
        new_rho2 = torch.empty_like(rho2)
        for i, x in enumerate(xs):
            a = x.T @ shared  # (v_i, k)
            u, _, vh = torch.linalg.svd(a, full_matrices=False)
            w[i] = u @ vh
            new_rho2[i] = (trace_xtx[i] - 2 * (w[i] * a).sum() + trace_sigma_s) / (n * voxels[i])
        rho2 = new_rho2
    return SRMResult(w, shared, sigma_s, rho2, loglik)


class _AlignmentBase(TransformerMixin, BaseEstimator):
    """Centring, validation and the per-subject transform shared by the alignment estimators."""

    def _prepare_fit(self, X) -> list[torch.Tensor]:
        xs = _tensors(X)
        self._torch = isinstance(_as_list(X)[0], torch.Tensor)
        self._mean_t = [x.mean(0) for x in xs]
        self.n_subjects_ = len(xs)
        self.n_voxels_ = [int(x.shape[1]) for x in xs]
        return [x - m for x, m in zip(xs, self._mean_t, strict=True)]

    def _out(self, t: torch.Tensor):
        return t if self._torch else t.detach().cpu().numpy()

    def transform(self, X) -> list:
        """Map each subject's data ``(n_samples_i, n_voxels_i)`` (any samples, e.g. held-out stimuli) into the
        common space ``(n_samples_i, n_features)``: centred with the training means, times the subject's
        transform. Returns a list (numpy arrays, or tensors for tensor input)."""
        check_is_fitted(self, "transforms_")
        xs = _as_list(X)
        if len(xs) != self.n_subjects_:
            raise ValueError(f"X holds {len(xs)} subjects, the alignment was fitted on {self.n_subjects_}; pass "
                             "them in the training order")
        ref = self._transforms_t[0]
        out = []
        for i, x in enumerate(xs):
            t = as_tensor(x, dtype=ref.dtype, device=ref.device)
            if t.ndim != 2 or t.shape[1] != self.n_voxels_[i]:
                raise ValueError(f"X[{i}] has shape {tuple(t.shape)}, expected (n_samples, {self.n_voxels_[i]}) "
                                 "as in training (same voxels, same order)")
            check_finite(t, f"X[{i}]")
            out.append(self._out((t - self._mean_t[i]) @ self._transforms_t[i]))
        return out


class Hyperalignment(_AlignmentBase):
    """Procrustes hyperalignment (Haxby et al. 2011) as a scikit-learn style transformer on lists of subjects.

    Parameters
    ----------
    n_iter : int
        Level-2 passes of :func:`hyperalign`.
    reference : int
        Subject that starts the template; the common space has its voxel count.

    Attributes
    ----------
    transforms_ : list of arrays ``(n_voxels_i, n_features)``
    template_ : array ``(n_samples, n_features)``, the aligned training data averaged over subjects
    mean_ : list of arrays ``(n_voxels_i,)``, training means removed before mapping
    n_features_ : int

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> s = rng.normal(size=(50, 5))
    >>> q = np.linalg.qr(rng.normal(size=(5, 5)))[0]
    >>> ha = Hyperalignment().fit([s[:40], s[:40] @ q])
    >>> a, b = ha.transform([s[40:], s[40:] @ q])  # held-out samples
    >>> bool(np.allclose(a, b, atol=1e-4))
    True
    """

    def __init__(self, n_iter: int = 1, reference: int = 0):
        self.n_iter = n_iter
        self.reference = reference

    def fit(self, X, y=None):
        """Fit on a list of subjects ``(n_samples, n_voxels_i)`` with the same samples in the same order."""
        xs = self._prepare_fit(X)
        res = hyperalign(xs, n_iter=self.n_iter, reference=self.reference)
        self._transforms_t = res.transforms
        self.transforms_ = [self._out(r) for r in res.transforms]
        self.template_ = self._out(res.template)
        self.mean_ = [self._out(m) for m in self._mean_t]
        self.n_features_ = int(res.template.shape[1])
        return self


class SharedResponseModel(_AlignmentBase):
    """Probabilistic shared response model (Chen et al. 2015) as a scikit-learn style transformer.

    The EM of :func:`fit_srm` on centred training data; :meth:`transform` maps any samples of each subject
    with ``W_i^T (x - mean_i)``.

    Parameters
    ----------
    n_features : int
        Dimension of the shared space.
    n_iter : int
        EM iterations.
    random_state : int, numpy RandomState or None
        Seed of the initial orthonormal ``W_i`` (brainiak's ``rand_seed``: the same seed gives the same start).

    Attributes
    ----------
    transforms_ : list of arrays ``(n_voxels_i, n_features)``, the ``W_i``
    shared_ : array ``(n_samples, n_features)``, the shared response of the training samples
    sigma_s_ : array ``(n_features, n_features)``
    rho2_ : array ``(n_subjects,)``
    log_likelihood_ : array ``(n_iter,)``
    mean_ : list of arrays ``(n_voxels_i,)``
    n_features_ : int

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> s = rng.normal(size=(60, 3))
    >>> X = [s @ np.linalg.qr(rng.normal(size=(v, 3)))[0].T + 0.1 * rng.normal(size=(60, v)) for v in (8, 12)]
    >>> srm = SharedResponseModel(n_features=3, n_iter=10).fit([x[:50] for x in X])
    >>> [z.shape for z in srm.transform([x[50:] for x in X])]
    [(10, 3), (10, 3)]
    """

    def __init__(self, n_features: int = 10, n_iter: int = 10, random_state=0):
        self.n_features = n_features
        self.n_iter = n_iter
        self.random_state = random_state

    def fit(self, X, y=None):
        """Fit on a list of subjects ``(n_samples, n_voxels_i)`` with the same samples in the same order."""
        xs = self._prepare_fit(X)
        res = fit_srm(xs, self.n_features, n_iter=self.n_iter, random_state=self.random_state)
        self._transforms_t = res.w
        self.transforms_ = [self._out(w) for w in res.w]
        self.shared_ = self._out(res.shared)
        self.sigma_s_ = self._out(res.sigma_s)
        self.rho2_ = self._out(res.rho2)
        self.log_likelihood_ = self._out(res.log_likelihood)
        self.mean_ = [self._out(m) for m in self._mean_t]
        self.n_features_ = int(self.n_features)
        return self


class SubjectAlignment(NamedTuple):
    """Subjects mapped into a common space by :func:`align_subjects`."""

    aligned: xr.DataArray
    """``(subject, stimulus, feature)`` for every stimulus of any subject (NaN where a subject lacks one),
    coordinate ``train`` (bool, on ``stimulus``) marks the stimuli the alignment was fitted on."""
    template: xr.DataArray
    """``(stimulus, feature)`` over the training stimuli: the hyperalignment template or the SRM shared response."""
    estimator: Hyperalignment | SharedResponseModel
    """The fitted estimator (its ``transform`` maps new samples; inputs standardised as in ``attrs``)."""


def _subjects(brains) -> tuple[list, list[xr.DataArray]]:
    if isinstance(brains, xr.DataArray):
        raise TypeError("brains must hold one DataArray per subject (voxel counts may differ): pass a dict "
                        "{subject: da}, e.g. {s: da.sel(subject=s) for s in da['subject'].values}")
    if isinstance(brains, Mapping):
        names, das = list(brains), list(brains.values())
    elif isinstance(brains, Sequence) and not isinstance(brains, str):
        das = list(brains)
        names = [da.coords["subject"].item() if isinstance(da, xr.DataArray) and "subject" in da.coords
                 and da["subject"].ndim == 0 else i for i, da in enumerate(das)]
    else:
        raise TypeError(f"brains must be a dict or list of per-subject xr.DataArray, got {type(brains).__name__}")
    if len(das) < 2:
        raise ValueError(f"brains holds {len(das)} subject(s); alignment needs at least 2")
    for name, da in zip(names, das, strict=True):
        if not isinstance(da, xr.DataArray):
            raise TypeError(f"subject {name!r} is a {type(da).__name__}, expected an xr.DataArray (stimulus, voxel)")
        if "trial" in da.dims:
            raise SchemaError(f"subject {name!r} has a 'trial' dim; alignment works on one response per stimulus: "
                              "average repetitions first with nb.core.average_repetitions(da)")
        if "stimulus" not in da.dims or da.ndim != 2:
            raise SchemaError(f"subject {name!r} has dims {tuple(da.dims)}, expected 2-d ('stimulus', voxel dim)")
        stimulus_ids(da)
        check_unique(da.indexes["stimulus"], owner=f"subject {name!r}")
        check_finite(da, f"subject {name!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"subject names must be unique, got {names}")
    return names, das


def _training_ids(names, das, train) -> np.ndarray:
    if train is None:
        shared = das[0].indexes["stimulus"]
        for da in das[1:]:
            shared = shared[shared.isin(da.indexes["stimulus"])]
        if len(shared) == 0:
            raise SchemaError(
                "the subjects share no stimulus, so there is nothing to align on; alignment is fitted on training "
                "stimuli that every subject saw (e.g. a common movie or image set): give each subject the same "
                "ids for those stimuli and pass train=[those ids]")
        logger.info("align_subjects: fitting on the %d stimuli shared by all subjects (no held-out stimuli); "
                    "pass train=... to hold some out", len(shared))
        return np.asarray(shared)
    ids = pd.unique(np.asarray(train).ravel())
    for name, da in zip(names, das, strict=True):
        missing = pd.Index(ids).difference(da.indexes["stimulus"])
        if len(missing) == len(ids):
            raise SchemaError(f"subject {name!r} has none of the {len(ids)} training stimuli (disjoint stimulus "
                              "ids); alignment needs the same training stimuli in every subject: pass train= ids "
                              "that every subject saw, or relabel the shared stimuli with common ids")
        if len(missing):
            raise SchemaError(f"subject {name!r} lacks {len(missing)} of the {len(ids)} training stimuli, e.g. "
                              f"{missing[:5].tolist()}; pass train= ids that every subject saw (their intersection)")
    return ids


def align_subjects(
    brains: Mapping[str, xr.DataArray] | Sequence[xr.DataArray],
    *,
    method: Literal["procrustes", "srm"] = "procrustes",
    train: Sequence | np.ndarray | None = None,
    n_features: int | None = None,
    n_iter: int | None = None,
    reference: int = 0,
    standardize: bool = True,
    random_state=0,
) -> SubjectAlignment:
    """Align subjects' responses into one common space, fitted on training stimuli, applied to all stimuli.

    Parameters
    ----------
    brains : dict of subject -> xr.DataArray, or list of them
        Per subject, ``(stimulus, voxel)`` responses (any name for the voxel dim; counts may differ).
    method : {"procrustes", "srm"}
        Procrustes hyperalignment (:func:`hyperalign`; common space = the reference subject's voxels) or the
        shared response model (:func:`fit_srm`).
    train : sequence of stimulus ids, optional
        Stimuli to fit on; every subject must have all of them. Default: the stimuli all subjects share (then
        nothing is held out). The other stimuli are only transformed.
    n_features : int, optional
        SRM dimension (default ``min(50, n_train, smallest voxel count)``); not used by Procrustes.
    n_iter : int, optional
        Level-2 passes (Procrustes, default 1) or EM iterations (SRM, default 10).
    reference : int
        Procrustes reference subject (position in ``brains``).
    standardize : bool
        z-score each voxel with its training-stimulus mean and SD before fitting and transforming (Haxby et
        al.); otherwise only the training mean is removed.
    random_state : int, optional
        SRM initialisation seed.

    Returns
    -------
    SubjectAlignment
        ``aligned`` ``(subject, stimulus, feature)`` with a ``train`` coordinate, ``template`` and ``estimator``.

    Raises
    ------
    SchemaError
        A subject without a ``stimulus`` dim or with repetitions, duplicated ids, or training stimuli missing
        from a subject (disjoint stimulus sets).

    Examples
    --------
    >>> import numpy as np, xarray as xr, neurobridge as nb
    >>> rng = np.random.default_rng(0)
    >>> s = rng.normal(size=(30, 4))
    >>> brains = {f"s{i}": xr.DataArray(s @ np.linalg.qr(rng.normal(size=(4, 4)))[0], dims=("stimulus", "voxel"),
    ...                                 coords={"stimulus": np.arange(30)}) for i in range(3)}
    >>> res = nb.encoding.align_subjects(brains, train=np.arange(20))
    >>> res.aligned.dims, int(res.aligned["train"].sum())
    (('subject', 'stimulus', 'feature'), 20)
    """
    if method not in ("procrustes", "srm"):
        raise ValueError(f"method must be 'procrustes' or 'srm', got {method!r}")
    names, das = _subjects(brains)
    train_ids = _training_ids(names, das, train)
    if len(train_ids) < 2:
        raise ValueError(f"alignment needs at least 2 training stimuli, got {len(train_ids)}")
    xs_train, xs_all, stds = [], [], []
    for da in das:
        vdim = next(d for d in da.dims if d != "stimulus")
        values = da.transpose("stimulus", vdim).values.astype(float)
        tr = values[da.indexes["stimulus"].get_indexer(train_ids)]
        mu = tr.mean(0)
        sd = tr.std(0, ddof=1) if standardize else np.ones_like(mu)
        sd = np.where(sd > 0, sd, 1.0)
        xs_train.append((tr - mu) / sd)
        xs_all.append((values - mu) / sd)
        stds.append(sd)
    if method == "procrustes":
        if n_features is not None:
            raise ValueError("n_features applies to method='srm'; Procrustes hyperalignment works in the reference "
                             "subject's voxel space (choose it with reference=...)")
        est = Hyperalignment(n_iter=1 if n_iter is None else n_iter, reference=reference).fit(xs_train)
        template = est.template_
    else:
        k = n_features if n_features is not None else min(50, len(train_ids), *(x.shape[1] for x in xs_train))
        est = SharedResponseModel(n_features=k, n_iter=10 if n_iter is None else n_iter,
                                  random_state=random_state).fit(xs_train)
        template = est.shared_
    # held-out stimuli get the training standardisation above and the training transforms
    mapped = est.transform(xs_all)
    all_ids = pd.unique(np.concatenate([np.asarray(da.indexes["stimulus"]) for da in das]))
    k = est.n_features_
    out = np.full((len(das), len(all_ids), k), np.nan)
    index = pd.Index(all_ids)
    for i, (da, z) in enumerate(zip(das, mapped, strict=True)):
        out[i, index.get_indexer(da.indexes["stimulus"])] = np.asarray(z)
    feature = np.arange(k)
    attrs = {"method": method, "standardize": int(bool(standardize)), "n_features": int(k)}
    if method == "procrustes":
        attrs["reference"] = str(names[reference % len(names)])
    aligned = xr.DataArray(out, dims=("subject", "stimulus", "feature"),
                           coords={"subject": names, "stimulus": all_ids, "feature": feature,
                                   "train": ("stimulus", index.isin(train_ids))},
                           name="aligned", attrs=attrs)
    tmpl = xr.DataArray(np.asarray(template), dims=("stimulus", "feature"),
                        coords={"stimulus": train_ids, "feature": feature}, name="template", attrs=attrs)
    return SubjectAlignment(aligned, tmpl, est)
