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
from ._compare import compare_vectors, n_from_pairs
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


_RANKED = ("spearman", "rho-a", "kendall", "tau-b")
_UNCENTERED = ("cosine", "cosine_cov")


def _pair_influence(v: torch.Tensor, m: torch.Tensor, method: str) -> torch.Tensor:
    """Influence of every stimulus pair on the comparison of each model with each data RDM.

    ``v`` (..., N) data and ``m`` (K, N) model vectors -> (K, ..., N): the derivative of the weighted
    correlation (cosine for the ``cosine*`` methods) with respect to the weight of each pair, so that
    ``compare(w) - compare(1) ~ sum_p (w_p - 1) * influence_p``. Rank methods use the correlation of the ranks
    and the ``*_cov`` methods the plain one: a first-order description of how pairs enter, which is all the
    variance correction needs.
    """
    from ._compare import rank

    x = m.reshape(m.shape[0], *[1] * (v.ndim - 1), m.shape[-1])
    y = v.unsqueeze(0)
    if method in _RANKED:
        x, y = rank(x), rank(y)
    if method not in _UNCENTERED:
        x, y = x - x.mean(-1, keepdim=True), y - y.mean(-1, keepdim=True)
    x = x / torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp(min=torch.finfo(x.dtype).tiny)
    y = y / torch.linalg.vector_norm(y, dim=-1, keepdim=True).clamp(min=torch.finfo(y.dtype).tiny)
    c = (x * y).sum(-1, keepdim=True)
    return x * y - c / 2 * (x * x + y * y)


def _pair_part(influence: torch.Tensor) -> torch.Tensor:
    """Covariance over models of the pair-level part of the influences: (K, ..., N) -> (K, K, ...).

    The pair part is what is left of the influence matrix after its stimulus (row) effects are removed
    (U-centring, as for distance covariance); ``sum_p c_p^a c_p^b`` is its contribution to the variance of the
    comparisons over new stimuli.
    """
    from ._rdm import square_tensor

    n = n_from_pairs(influence.shape[-1])
    h = square_tensor(influence)
    rows = h.sum(-1)
    total = rows.sum(-1, keepdim=True)[..., None]
    c = h - (rows[..., :, None] + rows[..., None, :]) / (n - 2) + total / ((n - 1) * (n - 2))
    c = c * (1 - torch.eye(n, dtype=c.dtype, device=c.device))
    return torch.einsum("a...ij,b...ij->ab...", c, c) / 2


def _boot_cov(samples: torch.Tensor) -> torch.Tensor:
    """Covariance over dim 1 of bootstrap samples (B, K, ...) -> (K, K, ...), unusable (NaN) samples dropped."""
    okb = (~torch.isnan(samples)).reshape(samples.shape[0], -1).all(1)
    t = samples[okb]
    if t.shape[0] < 3:
        raise ValueError("fewer than 3 usable bootstrap samples; use more stimuli or more bootstraps")
    d = t - t.mean(0)
    return torch.einsum("ba...,bc...->ac...", d, d) / (t.shape[0] - 1)

def _contrasts(cov: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Variance of each entry (K, ...) and of each pairwise difference (K, K, ...) from covariances (K, K, ...)."""
    dv = torch.diagonal(cov, 0, 0, 1).movedim(-1, 0)
    return dv, dv[:, None] + dv[None, :] - 2 * cov


def _clip(v: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    return torch.minimum(torch.maximum(v, low), high).clamp(min=torch.finfo(v.dtype).tiny)

def _rescale(x: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """Bootstrap samples (B, ...) shrunk around their mean to the variance ``var`` (...), keeping their shape."""
    ok = ~torch.isnan(x)
    mean = torch.where(ok, x, 0).sum(0) / ok.sum(0)
    return mean + (x - mean) * torch.sqrt(var / _var(x).clamp(min=torch.finfo(x.dtype).tiny))


def _rescaled_samples(boot, diffs, gap, v, m, method, stim_counts, groups, per_subject, batch_size, both: bool):
    """Samples of the evaluations, their differences and noise-ceiling gaps with the corrected variance.

    A comparison of RDMs is, to first order, a sum over stimulus pairs of pair influences, which split into
    stimulus effects (rows of the influence matrix) and a pair part ``P``. Over new stimuli its variance is
    ``A + P``; resampling stimuli weights pair ``(i, j)`` by ``m_i m_j`` (``m`` the counts), so the bootstrap
    counts the pair part three times (``A + 3P``: twice through the resampled rows, once through the product of
    the counts; Schuett et al. 2023 describe this inflation and correct the two-factor bootstrap for it). The
    corrected variance is the bootstrap variance less ``2P``, with ``P`` computed from the data's pair
    influences (:func:`_pair_influence`), clipped to ``[bootstrap / 3, bootstrap]``.

    ``over="both"``: the stimulus part comes from a stimulus bootstrap of each subject's evaluations, the subject
    part from the spread of the subjects' evaluations, and their overlap (stimulus x subject interactions and
    pair x subject noise, which both contain) is removed: ``V = V_stim + V_subj - (mean_j V_stim,j - V_stim) /
    (S - 1)``, clipped to ``[max(V_stim, V_subj), bootstrap]``. Noise-ceiling gaps are scaled like the
    evaluation.
    """
    k = boot.shape[1]
    vb, pb = _contrasts(_boot_cov(boot))
    infl = _pair_influence(v, m, method)  # (K, S, ..., N)
    if not both:
        cov = _boot_cov(boot) - 2 * _pair_part(infl.mean(1))
        var, pair = _contrasts(cov)
        var, pair = _clip(var, vb / 3, vb), _clip(pair, pb / 3, pb)
    else:
        s = per_subject.shape[1]
        ps = bootstrap_evaluations(v.unsqueeze(0), m, method, stimulus_counts=stim_counts, noise_ceiling=False,
                                   stimulus_groups=groups, batch_size=batch_size, progress=False).evaluations
        # ps: (B, K, S, ...), the subjects ride along as a broadcast dim
        (vsb, psb), (vwb, pwb) = _contrasts(_boot_cov(ps.mean(2))), _contrasts(_boot_cov(ps))
        vsc, psc = _contrasts(_boot_cov(ps.mean(2)) - 2 * _pair_part(infl.mean(1)))
        vsc, psc = _clip(vsc, vsb / 3, vsb), _clip(psc, psb / 3, psb)
        vw, pw = _contrasts(_boot_cov(ps) - 2 * _pair_part(infl))
        vw, pw = _clip(vw, vwb / 3, vwb).mean(1), _clip(pw, pwb / 3, pwb).mean(2)
        d = per_subject - per_subject.mean(1, keepdim=True)
        vj, pj = _contrasts(torch.einsum("as...,cs...->ac...", d, d) / (s - 1) / s)
        var = _clip(vsc + vj - (vw - vsc) / (s - 1), torch.maximum(vsc, vj), vb)
        pair = _clip(psc + pj - (pw - psc) / (s - 1), torch.maximum(psc, pj), pb)
    eye = torch.eye(k, dtype=torch.bool, device=boot.device).reshape(k, k, *[1] * (boot.ndim - 2))
    out_diffs = torch.where(eye, diffs, _rescale(diffs, torch.where(eye, torch.ones_like(pair), pair)))
    gap_out = None if gap is None else _rescale(gap, var / vb.clamp(min=torch.finfo(vb.dtype).tiny) * _var(gap))
    return _rescale(boot, var), out_diffs, gap_out

def _var(x: torch.Tensor) -> torch.Tensor:
    ok = ~torch.isnan(x)
    mean = torch.where(ok, x, 0).sum(0) / ok.sum(0)
    return torch.where(ok, (x - mean) ** 2, 0).sum(0) / (ok.sum(0) - 1).clamp(min=1)


def _t_sf(t: torch.Tensor, dof: int) -> torch.Tensor:
    import scipy.stats

    return torch.as_tensor(scipy.stats.t.sf(t.cpu().numpy(), max(dof, 1)), dtype=t.dtype, device=t.device)


def evaluate_models(
    data: xr.DataArray, models, method: str = "spearman", *, over: Over | None = "stimulus",
    n_bootstraps: int = 1000, level: float = 0.95, subject_dim: str = "subject", model_dim: str = "model",
    noise_ceiling: bool = True, test: Literal["t", "bootstrap"] = "t",
    variance: Literal["corrected", "bootstrap"] = "corrected", stimulus_groups=None,
    indices: Mapping | None = None, seed=None,
    batch_size: int | None = None, dtype: str | torch.dtype | None = "float64",
    device: str | torch.device | None = None, progress: bool | None = None,
) -> xr.Dataset:
    """Evaluate model RDMs against data RDMs with bootstrap confidence intervals and noise ceilings.

    The evaluation of a model is its similarity to each subject's RDM, averaged over subjects. Its
    uncertainty comes from bootstrap resampling of stimuli (generalisation to new stimuli), subjects
    (to new subjects) or both, drawn as rsatoolbox's ``eval_bootstrap_pattern``, ``eval_bootstrap_rdm``
    and ``eval_bootstrap`` draw them: a stimulus drawn several times appears several times in the resampled
    RDMs and the dissimilarities between its copies are left out. All samples are computed in vectorised
    batches.

    Resampling stimuli weights every stimulus pair by the product of its stimuli's counts, which counts the
    pair-level variance of an RDM comparison three times: rsatoolbox's standard errors over stimuli are
    ~1.6-2x the true spread over new stimuli, and its tests reject ~0-1% of nulls at 0.05 (Schuett et al. 2023,
    eLife 12:e82566, describe and correct this inflation). By default (``variance="corrected"``) the variance
    of every evaluation, model difference and noise-ceiling gap is the bootstrap variance less twice the
    pair-level part computed from the data's pair influences, and the two-factor bootstrap (``over="both"``)
    removes the stimulus x subject overlap too; the ``bootstrap`` samples are then shrunk around their mean to
    that variance, so CIs, SEs and p-values all come from it. On nulls with new stimuli (20-92 stimuli, 4-16
    subjects, Pearson and Spearman) the corrected SE is within 15% of the true spread and tests reject 3-7% at
    0.05 (``benchmarks/calibration.py``). ``variance="bootstrap"`` keeps rsatoolbox's samples unchanged.

    Which to use: ``over="stimulus"`` to generalise to new stimuli of the same subjects, ``over="subject"``
    (plain bootstrap; correct as it is) to new subjects seeing these stimuli, ``over="both"`` to both; when
    the stimuli are a fixed set (not a sample), use ``over="subject"`` or ``over=None`` (sign-flip tests).

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
    variance : {"corrected", "bootstrap"}
        ``"corrected"`` (default): the bootstrap variance over stimuli less the pair-level inflation (see
        above; only for ``over="stimulus"``/``"both"`` without ``stimulus_groups``). ``"bootstrap"``:
        rsatoolbox's samples as drawn (conservative over stimuli).
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
        come from exact/random sign-flip tests over subjects. ``attrs["variance"]`` says which variance was used.

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
    if test not in ("t", "bootstrap"):
        raise ValueError(f"test must be 't' or 'bootstrap', got {test!r}")
    if variance not in ("corrected", "bootstrap"):
        raise ValueError(f"variance must be 'corrected' (Schuett et al. 2023) or 'bootstrap' (rsatoolbox), "
                         f"got {variance!r}")
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
    okb = ~torch.isnan(boot)
    diffs = boot[:, :, None] - boot[:, None, :]
    n_eff = {"stimulus": n, "subject": s, "both": min(n, s)}[over]
    k = len(names)
    eye = torch.eye(k, dtype=torch.bool).reshape(k, k, *[1] * len(lead_shape))
    gap = boot - res.lower.unsqueeze(1) if noise_ceiling else None
    if variance == "corrected" and over != "subject" and groups is None:
        boot, diffs, gap = _rescaled_samples(boot, diffs, gap, v, m, method, stim_counts, groups, per_subject,
                                             batch_size, both=over == "both")
        okb = ~torch.isnan(boot)
    ci = confidence_interval(boot, level, dim=0)
    mean = torch.where(okb, boot, 0).sum(0) / okb.sum(0)
    se = torch.sqrt(torch.where(okb, (boot - mean) ** 2, 0).sum(0) / (okb.sum(0) - 1))
    if test == "bootstrap":
        p_zero = ((boot <= 0) & okb).sum(0).to(boot.dtype).add(1) / okb.sum(0)
        p_pair = _pairwise_p(boot)
    else:
        p_zero = _t_sf(evaluation / _boot_sd(boot, n_eff), n_eff - 1)
        p_pair = 2 * _t_sf((evaluation[:, None] - evaluation[None, :]).abs() / _boot_sd(diffs, n_eff), n_eff - 1)
        p_pair = torch.where(eye, torch.ones_like(p_pair), p_pair)
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
            below = (gap >= 0) & okb
            p_nc = (below.sum(0).to(boot.dtype) + 1) / okb.sum(0)
        else:
            p_nc = 2 * _t_sf((evaluation - lo.unsqueeze(0)).abs() / _boot_sd(gap, n_eff), n_eff - 1)
        out["p_noise_ceiling"] = xr.DataArray(p_nc.cpu().numpy(), dims=bdims[1:], coords={**coords, **model_coord})
    attrs["test"] = test
    attrs["variance"] = variance if over != "subject" and groups is None else "bootstrap"
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
