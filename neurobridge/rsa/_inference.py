"""RSA inference: model evaluation with bootstrap CIs, permutation tests and noise ceilings.

The labelled entry points here take RDM DataArrays (``nb.rsa.rdm`` / ``nb.core.rdm``) and return
``xr.Dataset`` results; the numerics are the tensor functions of ``_inference_core`` (re-exported) and the
shared machinery of :mod:`neurobridge.stats`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import numpy as np
import torch
import xarray as xr

from ..core import SchemaError, check_unique, resolve_device, resolve_dtype
from ..stats import (
    bootstrap_counts,
    confidence_interval,
    indices_to_counts,
    max_statistic,
    permutation_indices,
    sign_flip_test,
)
from ..stats import pvalue as _pvalue
from ..stats._utils import generator
from ._compare import compare_vectors
from ._inference_core import (
    BootstrapEvaluation,
    _check_method,
    bootstrap_evaluations,
    noise_ceiling_vectors,
    permutation_null,
)
from ._labelled import rdm_vectors
from ._rdm import _lead_coords

__all__ = [
    "noise_ceiling", "evaluate_models", "rdm_permutation_test",
    "BootstrapEvaluation", "bootstrap_evaluations", "noise_ceiling_vectors", "permutation_null",
]

Over = Literal["stimulus", "subject", "both"]


def _dtype_device(dtype, device):
    return resolve_dtype(dtype), resolve_device(None, device)


def _check_rdm(da, name: str) -> xr.DataArray:
    if not isinstance(da, xr.DataArray) or "stimulus" not in da.dims or "stimulus2" not in da.dims:
        got = da.dims if isinstance(da, xr.DataArray) else type(da).__name__
        raise SchemaError(f"{name} must be an RDM DataArray with dims (..., 'stimulus', 'stimulus2') (from "
                          f"nb.rsa.rdm or nb.core.rdm); got {got}")
    check_unique(da["stimulus"].values, owner=name,
                 fix="an RDM has one row per unique stimulus: average repetitions before computing the RDM "
                     "(nb.core.average_repetitions), or use stimulus_groups= to bootstrap groups of conditions together")
    return da


def _subject_dim_first(data: xr.DataArray, subject_dim: str, need: bool) -> tuple[xr.DataArray, list[str]]:
    if subject_dim not in data.dims:
        if need:
            raise SchemaError(f"data has no {subject_dim!r} dim (dims {data.dims}); noise ceilings and subject "
                              f"bootstraps need one RDM per subject. Pass subject_dim=... naming it (stack "
                              f"several dims with data.stack({subject_dim}=('subject', 'session')))")
        data = data.expand_dims({subject_dim: 1})
    lead = [d for d in data.dims if d not in (subject_dim, "stimulus", "stimulus2")]
    return data.transpose(subject_dim, *lead, "stimulus", "stimulus2"), lead


def noise_ceiling(
    data: xr.DataArray, method: str = "spearman", *, subject_dim: str = "subject", cov=None,
    dtype: str | torch.dtype | None = "float64", device: str | torch.device | None = None,
) -> xr.Dataset:
    """Leave-one-subject-out noise ceiling (lower and upper bound) of RDM comparisons.

    The upper bound is the mean similarity of each subject's RDM to the average RDM of all subjects
    (an over-estimate of the best possible model's performance), the lower bound the mean similarity to
    the average of the *other* subjects. Averages use the normalisation suited to ``method`` (ranks for
    rank correlations, z-scores for correlations, unit RMS for cosines), exactly as rsatoolbox's
    ``boot_noise_ceiling``, for every comparison method.

    Parameters
    ----------
    data : xr.DataArray
        RDMs ``(subject, ..., stimulus, stimulus2)``; other dims (time, ROI) broadcast.
    method : str
        Comparison method (see :func:`neurobridge.rsa.compare_vectors`).
    subject_dim : str
        The dim holding one RDM per subject.
    cov : array, optional
        Stimulus covariance for the whitened methods.
    dtype, device : optional
        Computation dtype (float64 by default) and device.

    Returns
    -------
    xr.Dataset
        ``lower`` and ``upper`` over the non-subject leading dims.

    Examples
    --------
    >>> import numpy as np, neurobridge as nb
    >>> x = np.random.default_rng(0).normal(size=(6, 10))
    >>> rdms = nb.core.rdm(np.stack([np.abs(np.subtract.outer(v, v)) for v in x]), dims=("subject",))
    >>> nc = nb.rsa.noise_ceiling(rdms, "pearson")
    >>> bool(nc.lower <= nc.upper)
    True
    """
    _check_method(method)
    data = _check_rdm(data, "data")
    data, lead = _subject_dim_first(data, subject_dim, need=True)
    dt, dev = _dtype_device(dtype, device)
    v, _, _ = rdm_vectors(data, dims=[subject_dim, *lead], dtype=dt, device=dev)
    lower, upper = noise_ceiling_vectors(v, method, cov=cov.values if isinstance(cov, xr.DataArray) else cov)
    coords = _lead_coords(data, lead)
    mk = lambda t: xr.DataArray(t.cpu().numpy(), dims=lead, coords=coords)  # noqa: E731
    return xr.Dataset({"lower": mk(lower), "upper": mk(upper)}, attrs={"method": method})


def _models_tensor(models, ids, model_dim: str, dt, dev) -> tuple[torch.Tensor, list]:
    if isinstance(models, Mapping):
        names = list(models)
        vecs = [rdm_vectors(_check_rdm(models[k], f"models[{k!r}]"), stimulus=ids, dtype=dt, device=dev)[0]
                for k in names]
        if any(v.ndim != 1 for v in vecs):
            raise SchemaError("each model in the mapping must be a single RDM (stimulus, stimulus2)")
        return torch.stack(vecs), names
    models = _check_rdm(models, "models")
    extra = [d for d in models.dims if d not in ("stimulus", "stimulus2")]
    if not extra:
        v = rdm_vectors(models, stimulus=ids, dtype=dt, device=dev)[0]
        return v[None], [str(models.name or "model")]
    if extra != [model_dim]:
        raise SchemaError(f"models must have dims ({model_dim!r}, 'stimulus', 'stimulus2'), got {models.dims}; "
                          f"pass model_dim=... or a dict of single RDMs")
    v = rdm_vectors(models, stimulus=ids, dims=[model_dim], dtype=dt, device=dev)[0]
    names = list(models[model_dim].values) if model_dim in models.coords else list(range(models.sizes[model_dim]))
    return v, names


def _pairwise_p(samples: torch.Tensor) -> torch.Tensor:
    """rsatoolbox's bootstrap pair test, vectorised over trailing dims: samples (B, K, ...) -> (K, K, ...)."""
    ok = ~torch.isnan(samples).any(1, keepdim=True)
    a, b = samples[:, :, None], samples[:, None, :]
    ok2 = ok[:, :, None] & ok[:, None, :]
    nb_ = ok.sum(0).squeeze(0).to(samples.dtype)
    less = ((a < b) & ok2).sum(0).to(samples.dtype)
    ties = ((a == b) & ok2).sum(0).to(samples.dtype)
    prop = less / (nb_ - ties).clamp(min=1)
    prop = torch.minimum(prop, 1 - prop) * 2
    prop = (nb_ - 1) / nb_ * prop + 1 / nb_
    k = samples.shape[1]
    eye = torch.eye(k, dtype=torch.bool).reshape(k, k, *[1] * (samples.ndim - 2))
    return torch.where(eye, torch.ones_like(prop), prop)


def _boot_sd(samples: torch.Tensor, n: int) -> torch.Tensor:
    """Bootstrap standard deviation (NaN samples dropped), corrected by n / (n - 1) as rsatoolbox."""
    ok = ~torch.isnan(samples)
    m = torch.where(ok, samples, 0).sum(0) / ok.sum(0)
    var = torch.where(ok, (samples - m) ** 2, 0).sum(0) / (ok.sum(0) - 1)
    return torch.sqrt((var * n / max(n - 1, 1)).clamp(min=torch.finfo(samples.dtype).eps))


def _t_sf(t: torch.Tensor, dof: int) -> torch.Tensor:
    import scipy.stats

    return torch.as_tensor(scipy.stats.t.sf(t.cpu().numpy(), max(dof, 1)), dtype=t.dtype, device=t.device)


def evaluate_models(
    data: xr.DataArray, models, method: str = "spearman", *, over: Over | None = "stimulus",
    n_bootstraps: int = 1000, level: float = 0.95, subject_dim: str = "subject", model_dim: str = "model",
    noise_ceiling: bool = True, test: Literal["t", "bootstrap"] = "t", stimulus_groups=None,
    indices: Mapping | None = None, seed=None,
    batch_size: int | None = None, dtype: str | torch.dtype | None = "float64",
    device: str | torch.device | None = None, progress: bool | None = None,
) -> xr.Dataset:
    """Evaluate model RDMs against data RDMs with bootstrap confidence intervals and noise ceilings.

    The evaluation of a model is its similarity to each subject's RDM, averaged over subjects. Its
    uncertainty comes from bootstrap resampling of stimuli (generalisation to new stimuli), subjects
    (to new subjects) or both, exactly as rsatoolbox's ``eval_bootstrap_pattern``, ``eval_bootstrap_rdm``
    and ``eval_bootstrap``: a stimulus drawn several times appears several times in the resampled RDMs and
    the dissimilarities between its copies are left out. All samples are computed in vectorised batches.

    Parameters
    ----------
    data : xr.DataArray
        Data RDMs ``(subject, ..., stimulus, stimulus2)``; other leading dims (time, ROI) broadcast.
    models : xr.DataArray or mapping
        Model RDMs ``(model, stimulus, stimulus2)``, a single RDM, or ``{name: rdm}``. Stimuli are matched
        to ``data`` by id.
    method : str
        Comparison method: spearman, pearson, kendall (tau-a), tau-b, rho-a, cosine, corr_cov, cosine_cov.
    over : {"stimulus", "subject", "both"} or None
        What to resample; ``None`` evaluates on the data once (p-values then come from sign-flip tests
        over subjects).
    n_bootstraps : int
    level : float
        Level of the percentile confidence intervals.
    subject_dim, model_dim : str
        Dim names of the subjects in ``data`` and of the models.
    noise_ceiling : bool
        Compute the noise ceiling (needs at least 2 subjects).
    test : {"t", "bootstrap"}
        How bootstrap p-values are computed. ``"t"`` (rsatoolbox's default): t-tests with the bootstrap
        variance, corrected by ``n / (n - 1)`` and ``n - 1`` degrees of freedom (``n`` = subjects, stimuli,
        or the smaller of the two), which are calibrated for small ``n``. ``"bootstrap"``: the fraction of
        samples on the other side (rsatoolbox's ``test_type="bootstrap"``), anti-conservative for few
        subjects.
    stimulus_groups : str or sequence, optional
        Resample groups of stimuli together: the name of a coordinate on ``stimulus`` or one label per
        stimulus (rsatoolbox's ``pattern_descriptor``).
    indices : mapping, optional
        Explicit bootstrap draws, ``{"stimulus": (B, n) ints, "subject": (B, S) ints}`` (indices into the
        data's stimulus / subject order), e.g. to reproduce another tool's samples.
    seed : int or Generator, optional
    batch_size : int, optional
        Bootstrap samples per vectorised step.
    dtype, device : optional
        float64 by default (exact agreement with rsatoolbox); float32 is faster.
    progress : bool, optional

    Returns
    -------
    xr.Dataset
        ``evaluation`` (model, ...), ``evaluation_subject`` (model, subject, ...), ``noise_ceiling_lower``
        / ``_upper`` (...), and with a bootstrap: ``bootstrap`` (bootstrap, model, ...) samples,
        ``noise_ceiling_lower_bootstrap`` / ``_upper_bootstrap``, ``ci_low`` / ``ci_high`` and ``se``
        (model, ...), ``p_zero`` (one-sided, evaluation <= 0), ``p_noise_ceiling`` (evaluation >= lower
        bound), ``p_pairwise`` (model, model2, ...: two-sided paired comparisons of the models on the same
        samples), ``difference_ci_low`` / ``_high`` (model, model2, ...). Without a bootstrap the p-values
        come from exact/random sign-flip tests over subjects.

    Examples
    --------
    >>> import numpy as np, neurobridge as nb
    >>> rng = np.random.default_rng(0)
    >>> sym = lambda m: (m + m.T) * (1 - np.eye(len(m)))
    >>> truth = sym(rng.random((12, 12)))
    >>> data = nb.core.rdm(np.stack([sym(truth + rng.random((12, 12)) * 0.5) for _ in range(5)]), dims=("subject",))
    >>> models = nb.core.rdm(np.stack([truth, sym(rng.random((12, 12)))]), dims=("model",))
    >>> res = nb.rsa.evaluate_models(data, models, n_bootstraps=100, seed=0, progress=False)
    >>> res.evaluation.dims, bool(res.evaluation[0] > res.evaluation[1])
    (('model',), True)
    """
    _check_method(method)
    if over not in ("stimulus", "subject", "both", None):
        raise ValueError(f"over must be 'stimulus', 'subject', 'both' or None, got {over!r}")
    data = _check_rdm(data, "data")
    need_subjects = noise_ceiling or over in ("subject", "both")
    data, lead = _subject_dim_first(data, subject_dim, need=need_subjects)
    dt, dev = _dtype_device(dtype, device)
    v, _, ids = rdm_vectors(data, dims=[subject_dim, *lead], dtype=dt, device=dev)
    m, names = _models_tensor(models, ids, model_dim, dt, dev)
    s, n = v.shape[0], len(ids)
    if n < 3:
        raise SchemaError(f"need at least 3 stimuli to compare RDMs, got {n}")
    if noise_ceiling and s < 2:
        raise SchemaError(f"the noise ceiling needs at least 2 subjects, data has {s}; pass noise_ceiling=False")
    lead_shape = tuple(v.shape[1:-1])
    # fixed evaluation on the full data
    per_subject = compare_vectors(m.reshape(m.shape[0], 1, *[1] * len(lead_shape), m.shape[-1]), v.unsqueeze(0),
                                  method)  # (K, S, ...)
    evaluation = per_subject.mean(1)
    coords = _lead_coords(data, lead)
    model_coord = {model_dim: names}
    out = {
        "evaluation": xr.DataArray(evaluation.cpu().numpy(), dims=[model_dim, *lead], coords={**coords, **model_coord}),
        "evaluation_subject": xr.DataArray(per_subject.cpu().numpy(), dims=[model_dim, subject_dim, *lead],
                                           coords={**coords, **model_coord, subject_dim: data[subject_dim].values}),
    }
    if noise_ceiling:
        lo, up = noise_ceiling_vectors(v, method)
        out["noise_ceiling_lower"] = xr.DataArray(lo.cpu().numpy(), dims=lead, coords=coords)
        out["noise_ceiling_upper"] = xr.DataArray(up.cpu().numpy(), dims=lead, coords=coords)
    attrs = {"method": method, "over": str(over), "level": float(level)}
    mm = {model_dim: names, f"{model_dim}2": names}
    if over is None:
        if s < 2:
            raise SchemaError("p-values without a bootstrap need at least 2 subjects (sign-flip tests)")
        pz = sign_flip_test(per_subject, dim=1, alternative="greater", seed=seed).pvalue
        diffs = per_subject[:, None] - per_subject[None, :]  # (K, K, S, ...)
        pp = sign_flip_test(diffs, dim=2, seed=seed).pvalue
        pp = torch.where(torch.eye(len(names), dtype=torch.bool).reshape(len(names), len(names),
                                                                          *[1] * len(lead_shape)),
                         torch.ones_like(pp), torch.nan_to_num(pp, nan=1.0))
        out["p_zero"] = xr.DataArray(pz.cpu().numpy(), dims=[model_dim, *lead], coords={**coords, **model_coord})
        out["p_pairwise"] = xr.DataArray(pp.cpu().numpy(), dims=[model_dim, f"{model_dim}2", *lead],
                                         coords={**coords, **mm})
        return xr.Dataset(out, attrs=attrs)

    # bootstrap samples as counts
    g = generator(seed)
    stim_counts = subj_counts = None
    indices = dict(indices or {})
    groups = stimulus_groups
    if isinstance(groups, str):
        if groups not in data.coords or data[groups].dims != ("stimulus",):
            raise SchemaError(f"stimulus_groups={groups!r} is not a coordinate on 'stimulus' of data")
        groups = data[groups].values
    if over in ("stimulus", "both"):
        if "stimulus" in indices:
            stim_counts = indices_to_counts(indices["stimulus"], n)
        else:
            stim_counts = bootstrap_counts(n, n_bootstraps, groups=groups, seed=g)
    if over in ("subject", "both"):
        if s < 2:
            raise SchemaError(f"a subject bootstrap needs at least 2 subjects, data has {s}")
        subj_counts = (indices_to_counts(indices["subject"], s) if "subject" in indices
                       else bootstrap_counts(s, n_bootstraps, seed=g))
    res = bootstrap_evaluations(v, m, method, stimulus_counts=stim_counts, subject_counts=subj_counts,
                                noise_ceiling=noise_ceiling, stimulus_groups=groups, batch_size=batch_size,
                                progress=progress)
    boot = res.evaluations  # (B, K, ...)
    n_valid = int((~torch.isnan(boot[:, 0].reshape(boot.shape[0], -1)[:, 0])).sum())
    if n_valid < 2:
        raise ValueError("fewer than 2 usable bootstrap samples (each needs at least 3 distinct stimuli); "
                         "use more stimuli or more bootstraps")
    ci = confidence_interval(boot, level, dim=0)
    okb = ~torch.isnan(boot)
    mean = torch.where(okb, boot, 0).sum(0) / okb.sum(0)
    se = torch.sqrt(torch.where(okb, (boot - mean) ** 2, 0).sum(0) / (okb.sum(0) - 1))
    diffs = boot[:, :, None] - boot[:, None, :]
    if test not in ("t", "bootstrap"):
        raise ValueError(f"test must be 't' or 'bootstrap', got {test!r}")
    n_eff = {"stimulus": n, "subject": s, "both": min(n, s)}[over]
    if test == "bootstrap":
        p_zero = ((boot <= 0) & okb).sum(0).to(boot.dtype).add(1) / okb.sum(0)
        p_pair = _pairwise_p(boot)
    else:
        p_zero = _t_sf(evaluation / _boot_sd(boot, n_eff), n_eff - 1)
        p_pair = 2 * _t_sf((evaluation[:, None] - evaluation[None, :]).abs() / _boot_sd(diffs, n_eff), n_eff - 1)
        k = len(names)
        p_pair = torch.where(torch.eye(k, dtype=torch.bool).reshape(k, k, *[1] * len(lead_shape)),
                             torch.ones_like(p_pair), p_pair)
    dci = confidence_interval(diffs, level, dim=0)
    bdims = ["bootstrap", model_dim, *lead]
    out.update({
        "bootstrap": xr.DataArray(boot.cpu().numpy(), dims=bdims, coords={**coords, **model_coord}),
        "ci_low": xr.DataArray(ci.low.cpu().numpy(), dims=bdims[1:], coords={**coords, **model_coord}),
        "ci_high": xr.DataArray(ci.high.cpu().numpy(), dims=bdims[1:], coords={**coords, **model_coord}),
        "se": xr.DataArray(se.cpu().numpy(), dims=bdims[1:], coords={**coords, **model_coord}),
        "p_zero": xr.DataArray(p_zero.cpu().numpy(), dims=bdims[1:], coords={**coords, **model_coord}),
        "p_pairwise": xr.DataArray(p_pair.cpu().numpy(), dims=[model_dim, f"{model_dim}2", *lead],
                                   coords={**coords, **mm}),
        "difference_ci_low": xr.DataArray(dci.low.cpu().numpy(), dims=[model_dim, f"{model_dim}2", *lead],
                                          coords={**coords, **mm}),
        "difference_ci_high": xr.DataArray(dci.high.cpu().numpy(), dims=[model_dim, f"{model_dim}2", *lead],
                                           coords={**coords, **mm}),
    })
    if noise_ceiling:
        out["noise_ceiling_lower_bootstrap"] = xr.DataArray(res.lower.cpu().numpy(), dims=["bootstrap", *lead],
                                                            coords=coords)
        out["noise_ceiling_upper_bootstrap"] = xr.DataArray(res.upper.cpu().numpy(), dims=["bootstrap", *lead],
                                                            coords=coords)
        if test == "bootstrap":
            below = ((res.lower.unsqueeze(1) - boot) <= 0) & okb
            p_nc = (below.sum(0).to(boot.dtype) + 1) / okb.sum(0)
        else:
            gap = boot - res.lower.unsqueeze(1)
            p_nc = 2 * _t_sf((evaluation - lo.unsqueeze(0)).abs() / _boot_sd(gap, n_eff), n_eff - 1)
        out["p_noise_ceiling"] = xr.DataArray(p_nc.cpu().numpy(), dims=bdims[1:], coords={**coords, **model_coord})
    attrs["test"] = test
    return xr.Dataset(out, attrs=attrs)


def rdm_permutation_test(
    a: xr.DataArray, b: xr.DataArray, method: str = "spearman", *, n_permutations: int = 1000,
    alternative: Literal["greater", "less", "two-sided"] = "greater", seed=None, indices=None,
    batch_size: int | None = None, dtype: str | torch.dtype | None = None,
    device: str | torch.device | None = None, progress: bool | None = None,
) -> xr.Dataset:
    """Permutation test of RDM similarity: relabel the stimuli of ``b`` at random.

    Every RDM of ``a`` (e.g. a brain RDM per time point) is compared with every RDM of ``b`` (e.g. model
    RDMs per layer) under the same permutations, so the null maps can be corrected for multiple
    comparisons over time/layers (``pvalue_max``; or :func:`neurobridge.stats.cluster_test` on ``null``).
    Vectorised: for rank and linear methods the permuted comparisons are one matrix product per batch.

    Parameters
    ----------
    a, b : xr.DataArray
        RDMs ``(..., stimulus, stimulus2)`` over the same stimuli (matched by id); their leading dims must
        be different (the result is their outer product, ``b``'s dims first).
    method : str
        Comparison method (no ``cov``).
    n_permutations : int
    alternative : {"greater", "less", "two-sided"}
    seed : int or Generator, optional
    indices : (n_permutations, n_stimuli) ints, optional
        Explicit permutations of ``b``'s stimuli (in ``a``'s stimulus order).
    batch_size, dtype, device, progress : optional

    Returns
    -------
    xr.Dataset
        ``similarity`` and ``pvalue`` (uncorrected), ``pvalue_max`` (family-wise corrected over all
        entries with the max statistic), ``null`` (permutation, ...).

    Examples
    --------
    >>> import numpy as np, neurobridge as nb
    >>> x = np.random.default_rng(0).normal(size=(20, 5))
    >>> r = nb.core.rdm(((x[:, None] - x[None]) ** 2).sum(-1), stimulus=np.arange(20))
    >>> res = nb.rsa.rdm_permutation_test(r, r, n_permutations=200, seed=0, progress=False)
    >>> float(res.pvalue) < 0.01
    True
    """
    _check_method(method)
    a, b = _check_rdm(a, "a"), _check_rdm(b, "b")
    lead_a = [d for d in a.dims if d not in ("stimulus", "stimulus2")]
    lead_b = [d for d in b.dims if d not in ("stimulus", "stimulus2")]
    shared = set(lead_a) & set(lead_b)
    if shared:
        raise SchemaError(f"a and b share the dims {sorted(shared)}; the permutation test compares every RDM of a "
                          "with every RDM of b -- select or rename one of them")
    dt, dev = _dtype_device(dtype, device)
    va, _, ids = rdm_vectors(a, dims=lead_a, dtype=dt, device=dev)
    vb, _, _ = rdm_vectors(b, stimulus=ids, dims=lead_b, dtype=dt, device=dev)
    n = len(ids)
    perms = (torch.as_tensor(np.asarray(indices)) if indices is not None
             else permutation_indices(n, n_permutations, seed=seed))
    sa, sb = tuple(va.shape[:-1]), tuple(vb.shape[:-1])
    obs, null = permutation_null(va.reshape(-1, va.shape[-1]), vb.reshape(-1, vb.shape[-1]), method,
                                 permutations=perms, batch_size=batch_size, progress=progress)
    obs = obs.reshape((*sb, *sa))
    null = null.reshape((-1, *sb, *sa))
    p = _pvalue(obs, null, alternative=alternative)
    pmax = max_statistic(obs, null, alternative=alternative)
    dims = [*lead_b, *lead_a]
    coords = {**_lead_coords(b, lead_b), **_lead_coords(a, lead_a)}
    mk = lambda t, d=dims: xr.DataArray(t.cpu().numpy(), dims=d, coords=coords)  # noqa: E731
    return xr.Dataset({"similarity": mk(obs), "pvalue": mk(p), "pvalue_max": mk(pmax),
                       "null": mk(null, ["permutation", *dims])},
                      attrs={"method": method, "alternative": alternative, "n_permutations": int(perms.shape[0])})
