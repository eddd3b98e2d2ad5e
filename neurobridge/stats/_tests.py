"""Permutation and bootstrap machinery: p-values from nulls, confidence intervals, batched resampling loops."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal, NamedTuple

import torch

from ..core import progress_bar
from ._multiple import _orient, _tol
from ._resample import bootstrap_indices, permutation_indices, sign_flips
from ._utils import like, to_tensor

__all__ = [
    "PermutationResult", "BootstrapResult", "ConfidenceInterval", "pvalue", "confidence_interval",
    "permutation_test", "bootstrap", "sign_flip_test", "pairwise_bootstrap_test",
]

Alternative = Literal["greater", "less", "two-sided"]


class PermutationResult(NamedTuple):
    """Result of a permutation test."""

    statistic: Any
    """Observed statistic, shape (...)."""
    pvalue: Any
    """P-value per entry of ``statistic`` (uncorrected; see :func:`max_statistic`, :func:`fdr`)."""
    null: Any
    """Statistics under the null, shape (n_permutations, ...)."""


class ConfidenceInterval(NamedTuple):
    """Lower and upper bounds of a confidence interval."""

    low: Any
    high: Any


class BootstrapResult(NamedTuple):
    """Result of :func:`bootstrap`."""

    estimate: Any
    """Statistic on the original data, shape (...)."""
    samples: Any
    """Statistic on each bootstrap sample, shape (n_bootstraps, ...)."""
    ci: ConfidenceInterval
    """Percentile confidence interval, each bound shape (...)."""
    se: Any
    """Bootstrap standard error (std over samples, ddof=1)."""


def pvalue(observed, null, *, alternative: Alternative = "two-sided", includes_observed: bool = False):
    """P-value of an observed statistic given samples of its null distribution.

    ``(1 + #{null >= observed}) / (1 + n_null)`` (the observed data counted as one permutation), or
    ``#{null >= observed} / n_null`` when the null already contains the identity permutation (exact tests).
    ``"two-sided"`` compares absolute values (for symmetric nulls, e.g. sign flips). NaN null samples
    (degenerate resamples) are dropped.

    Parameters
    ----------
    observed : array-like, shape (...)
    null : array-like, shape (n_null, ...)
    alternative : {"greater", "less", "two-sided"}
    includes_observed : bool
        Whether ``null`` is an exhaustive set that includes the identity permutation.

    Returns
    -------
    p : same kind and shape as ``observed``

    Examples
    --------
    >>> import numpy as np, neurobridge as nb
    >>> float(nb.stats.pvalue(3.0, np.arange(99.0) / 99, alternative="greater"))
    0.01
    """
    obs = to_tensor(observed, name="observed", allow_nan=True)
    nul = to_tensor(null, name="null", allow_nan=True).to(obs.device)
    if tuple(nul.shape[1:]) != tuple(obs.shape):
        raise ValueError(f"null must have shape (n_null, *observed.shape) = (n, {tuple(obs.shape)}); got "
                         f"{tuple(nul.shape)}")
    obs_s, nul_s = _orient(obs, nul, alternative)
    valid = ~torch.isnan(nul_s)
    count = ((nul_s >= obs_s.unsqueeze(0) - _tol(obs_s)) & valid).sum(0).to(torch.float64)
    n = valid.sum(0).to(torch.float64)
    p = count / n if includes_observed else (count + 1) / (n + 1)
    p = torch.where(torch.isnan(obs), torch.full_like(p, float("nan")), p)
    return like(p, observed)


def confidence_interval(samples, level: float = 0.95, *, dim: int = 0) -> ConfidenceInterval:
    """Percentile confidence interval from bootstrap samples (NaN samples ignored).

    Parameters
    ----------
    samples : array-like
        Bootstrap distribution.
    level : float
        Coverage, e.g. 0.95.
    dim : int
        Axis of the samples.

    Returns
    -------
    ConfidenceInterval
        ``low`` and ``high`` (linear interpolation, as ``numpy.percentile``).

    Examples
    --------
    >>> import numpy as np, neurobridge as nb
    >>> ci = nb.stats.confidence_interval(np.arange(101.0), 0.9)
    >>> round(float(ci.low), 6), round(float(ci.high), 6)
    (5.0, 95.0)
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    s = to_tensor(samples, name="samples", allow_nan=True)
    q = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=s.dtype, device=s.device)
    bounds = torch.nanquantile(s, q, dim=dim)
    lo, hi = bounds[0], bounds[1]
    if isinstance(samples, torch.Tensor):
        return ConfidenceInterval(lo, hi)
    return ConfidenceInterval(lo.cpu().numpy(), hi.cpu().numpy())


def _batches(n: int, batch_size: int, progress: bool | None, desc: str, unit: str):
    """Start of each batch of ``n`` resamples, under a bar that counts resamples (reaching ``n``), not batches."""
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be a positive number of resamples per call, got {batch_size}")
    with progress_bar(total=n, desc=desc, progress=progress, unit=unit) as bar:
        for s in range(0, n, batch_size):
            yield s
            bar.update(min(batch_size, n - s))


def permutation_test(
    statistic: Callable[[torch.Tensor], torch.Tensor], n: int, *, n_permutations: int = 1000,
    alternative: Alternative = "two-sided", seed=None, batch_size: int = 100, indices=None,
    progress: bool | None = None,
) -> PermutationResult:
    """Permutation test of a vectorised statistic of ``n`` exchangeable items.

    Parameters
    ----------
    statistic : callable
        ``statistic(perm)`` takes a LongTensor of permutations, shape (batch, n), and returns the
        statistic for each, shape (batch, ...). The identity permutation gives the observed value.
    n : int
        Number of exchangeable items (e.g. stimuli).
    n_permutations : int
        Number of random permutations.
    alternative : {"greater", "less", "two-sided"}
    seed : int or Generator, optional
    batch_size : int
        Permutations evaluated per call of ``statistic``.
    indices : LongTensor, shape (n_permutations, n), optional
        Explicit permutations (overrides ``n_permutations`` and ``seed``).
    progress : bool, optional
        Progress bar counting permutations: ``True``/``False``; ``None`` (default, automatic) shows it only
        when someone watches: stderr is a terminal or Jupyter, and ``TQDM_DISABLE`` is unset
        (:func:`neurobridge.core.progress_enabled`; ``nb.config_context(progress=...)`` sets the default).

    Returns
    -------
    PermutationResult
        Tensors ``statistic`` (...), ``pvalue`` (...) and ``null`` (n_permutations, ...).

    Examples
    --------
    >>> import torch, neurobridge as nb
    >>> x = torch.arange(20.0); y = x + torch.randn(20, generator=torch.Generator().manual_seed(0))
    >>> res = nb.stats.permutation_test(lambda p: torch.stack([torch.corrcoef(torch.stack([x, y[q]]))[0, 1]
    ...                                  for q in p]), 20, n_permutations=200, seed=0)
    >>> float(res.pvalue) < 0.01
    True
    """
    perms = permutation_indices(n, n_permutations, seed=seed) if indices is None else torch.as_tensor(indices)
    if perms.ndim != 2 or perms.shape[1] != n:
        raise ValueError(f"indices must have shape (n_permutations, {n}), got {tuple(perms.shape)}")
    observed = statistic(torch.arange(n)[None])[0]
    chunks = [statistic(perms[s:s + batch_size]) for s in _batches(perms.shape[0], batch_size, progress,
                                                                    "permutations", "permutation")]
    null = torch.cat(chunks, 0)
    p = pvalue(observed, null, alternative=alternative)
    return PermutationResult(observed, p, null)


def bootstrap(
    statistic: Callable[..., torch.Tensor], n: int | Mapping[str, int], *, n_bootstraps: int = 1000,
    level: float = 0.95, seed=None, batch_size: int = 100, indices=None, progress: bool | None = None,
) -> BootstrapResult:
    """Bootstrap a vectorised statistic over one or several independently resampled factors.

    Parameters
    ----------
    statistic : callable
        With ``n`` an int: ``statistic(idx)`` with idx a LongTensor (batch, n) of resampled items.
        With ``n`` a mapping such as ``{"subject": 8, "stimulus": 92}`` (bootstrap over both):
        ``statistic(subject=idx_s, stimulus=idx_c)``. Returns shape (batch, ...). Rows of ``arange(n)``
        give the estimate on the original data.
    n : int or mapping of str to int
        Number of items per resampled factor.
    n_bootstraps : int
    level : float
        Confidence level of the percentile interval.
    seed : int or Generator, optional
    batch_size : int
    indices : LongTensor or mapping of them, optional
        Explicit bootstrap indices, shape (n_bootstraps, n) per factor (reproduces another tool's draws).
    progress : bool, optional
        Progress bar counting resamples (it reaches ``n_bootstraps``): ``True``/``False``; ``None``
        (default, automatic) shows it only when someone watches (:func:`neurobridge.core.progress_enabled`).

    Returns
    -------
    BootstrapResult

    Examples
    --------
    >>> import torch, neurobridge as nb
    >>> x = torch.randn(50, generator=torch.Generator().manual_seed(0))
    >>> res = nb.stats.bootstrap(lambda i: x[i].mean(1), 50, n_bootstraps=500, seed=0)
    >>> bool(res.ci.low < x.mean() < res.ci.high)
    True
    """
    from ._utils import generator

    sizes = {"": n} if not isinstance(n, Mapping) else dict(n)
    g = generator(seed)
    if indices is None:
        idx = {k: bootstrap_indices(v, n_bootstraps, seed=g) for k, v in sizes.items()}
    else:
        idx = {"": torch.as_tensor(indices)} if not isinstance(indices, Mapping) else {
            k: torch.as_tensor(v) for k, v in indices.items()}
        if set(idx) != set(sizes):
            raise ValueError(f"indices must be given for the factors {sorted(sizes)}, got {sorted(idx)}")
    n_boot = {v.shape[0] for v in idx.values()}
    if len(n_boot) != 1:
        raise ValueError(f"all factors need the same number of bootstrap samples, got {sorted(n_boot)}")
    n_boot = n_boot.pop()

    def call(rows: dict[str, torch.Tensor]) -> torch.Tensor:
        return statistic(rows[""]) if "" in rows else statistic(**rows)

    estimate = call({k: torch.arange(v)[None] for k, v in sizes.items()})[0]
    chunks = [call({k: v[s:s + batch_size] for k, v in idx.items()})
              for s in _batches(n_boot, batch_size, progress, "bootstrap", "resample")]
    samples = torch.cat(chunks, 0)
    ci = confidence_interval(samples, level, dim=0)
    ok = ~torch.isnan(samples)
    mean = torch.where(ok, samples, 0).sum(0) / ok.sum(0)
    se = torch.sqrt(torch.where(ok, (samples - mean) ** 2, 0).sum(0) / (ok.sum(0) - 1))
    return BootstrapResult(estimate, samples, ci, se)


def sign_flip_test(
    x, *, dim: int | str = 0, statistic: Literal["t", "mean"] = "t", n_permutations: int = 10000,
    alternative: Alternative = "two-sided", seed=None, exact: bool | None = None, batch_size: int = 1000,
) -> PermutationResult:
    """One-sample (or paired, on differences) permutation test by flipping signs of observations.

    Tests whether the mean of ``x`` over ``dim`` (e.g. subjects) differs from zero, for every entry of
    the other dims at once (e.g. every time point), with one shared set of flips so that the null can
    feed :func:`max_statistic` or :func:`cluster_test`.

    Parameters
    ----------
    x : array-like, tensor or DataArray
        Observations; ``dim`` indexes the exchangeable units (subjects).
    dim : int or str
        Axis (or DataArray dim name) of the observations.
    statistic : {"t", "mean"}
        One-sample t statistic (ddof=1) or mean.
    n_permutations : int
        Random flip patterns; when ``2**n <= n_permutations`` all patterns are enumerated (exact test).
    alternative : {"greater", "less", "two-sided"}
    seed, exact, batch_size : optional

    Returns
    -------
    PermutationResult
        ``statistic`` and ``pvalue`` shaped like ``x`` without ``dim`` (DataArray in, DataArray out);
        ``null`` a tensor (n_patterns, ...).

    Examples
    --------
    >>> import numpy as np, neurobridge as nb
    >>> x = np.random.default_rng(0).normal(0.8, 1, size=(12, 3))
    >>> res = nb.stats.sign_flip_test(x, dim=0)
    >>> res.pvalue.shape
    (3,)
    """
    import xarray as xr

    template = None
    if isinstance(x, xr.DataArray):
        if isinstance(dim, str):
            if dim not in x.dims:
                raise ValueError(f"dim {dim!r} not in the data's dims {x.dims}")
            x = x.transpose(dim, ...)
        template = x.isel({x.dims[0]: 0}, drop=True)
        t = to_tensor(x, name="x")
        axis = 0
    else:
        if isinstance(dim, str):
            raise ValueError("dim must be an int unless x is a DataArray")
        t = to_tensor(x, name="x")
        axis = dim
    t = torch.movedim(t, axis, 0)
    n = t.shape[0]
    if n < 2:
        raise ValueError(f"need at least 2 observations along dim {dim!r} for a sign-flip test, got {n}")
    rest = t.shape[1:]
    flat = t.reshape(n, -1)
    flips = sign_flips(n, n_permutations, seed=seed, exact=exact, dtype=flat.dtype, device=flat.device)
    exhaustive = flips.shape[0] == 2**n and (exact or exact is None) and bool((flips[0] == 1).all())

    def stat(means: torch.Tensor) -> torch.Tensor:
        if statistic == "mean":
            return means
        ss = (flat**2).sum(0)
        var = (ss - n * means**2).clamp(min=0) / (n - 1)
        return means / torch.sqrt(var / n)

    if statistic not in ("t", "mean"):
        raise ValueError(f"statistic must be 't' or 'mean', got {statistic!r}")
    observed = stat(flat.mean(0, keepdim=True))[0]
    null = torch.cat([stat(flips[s:s + batch_size] @ flat / n) for s in range(0, flips.shape[0], batch_size)])
    p = pvalue(observed, null, alternative=alternative, includes_observed=exhaustive)
    observed, p = observed.reshape(rest), p.reshape(rest)
    null = null.reshape(-1, *rest)
    if template is not None:
        return PermutationResult(template.copy(data=observed.numpy()), template.copy(data=p.numpy()), null)
    if isinstance(x, torch.Tensor):
        return PermutationResult(observed, p, null)
    return PermutationResult(observed.numpy(), p.numpy(), null)


def pairwise_bootstrap_test(samples, *, dim: int = 0):
    """Two-sided bootstrap p-values for every pair of quantities from their joint bootstrap samples.

    ``p[i, j]`` is twice the smaller fraction of samples in which ``i < j`` or ``i > j`` (ties excluded),
    shrunk as ``(n - 1) / n * p + 1 / n`` like rsatoolbox's ``bootstrap_pair_tests``; the diagonal is 1.

    Parameters
    ----------
    samples : array-like, shape (n_bootstraps, n_quantities)
        Joint bootstrap samples (e.g. model evaluations from the same resamples).
    dim : int
        Axis of the bootstrap samples.

    Returns
    -------
    p : array, shape (n_quantities, n_quantities)

    Examples
    --------
    >>> import numpy as np, neurobridge as nb
    >>> s = np.random.default_rng(0).normal([0.0, 1.0], 0.1, size=(1000, 2))
    >>> float(nb.stats.pairwise_bootstrap_test(s)[0, 1])
    0.001
    """
    s = to_tensor(samples, name="samples", allow_nan=True)
    s = torch.movedim(s, dim, 0)
    s = s[~torch.isnan(s).any(dim=1)]
    nb_ = s.shape[0]
    if nb_ == 0:
        raise ValueError("no bootstrap sample without NaN; cannot compare")
    less = (s[:, :, None] < s[:, None, :]).sum(0).to(torch.float64)
    ties = (s[:, :, None] == s[:, None, :]).sum(0).to(torch.float64)
    prop = less / (nb_ - ties).clamp(min=1)
    prop = torch.minimum(prop, 1 - prop) * 2
    prop = (nb_ - 1) / nb_ * prop + 1 / nb_
    prop.fill_diagonal_(1.0)
    return prop if isinstance(samples, torch.Tensor) else prop.numpy()
