"""Multiple-comparison corrections: false discovery rate and the max-statistic (FWER) correction."""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

import torch

from ._utils import like, to_tensor

__all__ = ["FDRResult", "fdr", "bonferroni", "max_statistic"]


class FDRResult(NamedTuple):
    """Result of :func:`fdr`."""

    reject: Any
    """Boolean mask (same shape and kind as the p-values): ``True`` where the null is rejected."""
    pvalues: Any
    """FDR-adjusted p-values (q-values), same shape and kind as the input."""


def _check_p(p: torch.Tensor) -> None:
    if p.numel() and (bool((p < 0).any()) or bool((p > 1).any())):
        raise ValueError(f"p-values must lie in [0, 1]; found values in [{float(p.min()):.3g}, {float(p.max()):.3g}]")


def fdr(pvals, alpha: float = 0.05, *, method: Literal["bh", "by"] = "bh") -> FDRResult:
    """False discovery rate correction over all entries of ``pvals``.

    Parameters
    ----------
    pvals : array-like, tensor or DataArray
        P-values, any shape; the whole array is one family of tests.
    alpha : float
        FDR level.
    method : {"bh", "by"}
        Benjamini-Hochberg (independent or positively dependent tests) or Benjamini-Yekutieli
        (arbitrary dependence).

    Returns
    -------
    FDRResult
        ``reject`` (bool) and adjusted ``pvalues``, of the same shape and kind (numpy, torch, DataArray) as
        the input. Matches ``mne.stats.fdr_correction`` and ``scipy.stats.false_discovery_control``.

    Examples
    --------
    >>> import numpy as np, neurobridge as nb
    >>> res = nb.stats.fdr(np.array([0.001, 0.01, 0.03, 0.5]), alpha=0.05)
    >>> res.reject.tolist()
    [True, True, True, False]
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if method not in ("bh", "by"):
        raise ValueError(f"method must be 'bh' or 'by', got {method!r}")
    p = to_tensor(pvals, name="pvals")
    _check_p(p)
    flat = p.reshape(-1).to(torch.float64)
    m = flat.numel()
    if m == 0:
        return FDRResult(like(torch.zeros_like(p, dtype=torch.bool), pvals), like(p, pvals))
    order = torch.argsort(flat)
    ranks = torch.arange(1, m + 1, dtype=torch.float64, device=flat.device)
    scale = float(torch.sum(1.0 / ranks)) if method == "by" else 1.0
    adj_sorted = flat[order] * m * scale / ranks
    adj_sorted = torch.flip(torch.cummin(torch.flip(adj_sorted, [0]), 0).values, [0]).clamp(max=1.0)
    adj = torch.empty_like(flat)
    adj[order] = adj_sorted
    adj = adj.reshape(p.shape).to(p.dtype)
    reject = adj <= alpha
    return FDRResult(like(reject, pvals), like(adj, pvals))


def bonferroni(pvals, alpha: float = 0.05) -> FDRResult:
    """Bonferroni (family-wise error) correction over all entries of ``pvals``.

    Returns
    -------
    FDRResult
        ``reject`` and adjusted ``pvalues`` (``min(1, p * m)``), same kind as the input.

    Examples
    --------
    >>> import numpy as np, neurobridge as nb
    >>> nb.stats.bonferroni(np.array([0.01, 0.2])).pvalues.tolist()
    [0.02, 0.4]
    """
    p = to_tensor(pvals, name="pvals")
    _check_p(p)
    adj = (p * max(p.numel(), 1)).clamp(max=1.0)
    return FDRResult(like(adj <= alpha, pvals), like(adj, pvals))


def max_statistic(observed, null, *, alternative: Literal["greater", "less", "two-sided"] = "two-sided"):
    """Family-wise corrected p-values from the null distribution of the maximum statistic.

    Each permutation contributes the maximum over all tests (time points, layers, ...); an observed value's
    corrected p-value is the fraction of permutation maxima at least as large, counting the observed data
    as one permutation: ``(1 + #{max_null >= obs}) / (1 + n_permutations)``.

    Parameters
    ----------
    observed : array-like, shape (...)
        Observed statistics.
    null : array-like, shape (n_permutations, ...)
        Statistics under the null, same trailing shape as ``observed``.
    alternative : {"greater", "less", "two-sided"}
        ``"two-sided"`` uses absolute values.

    Returns
    -------
    pvalues : same kind and shape as ``observed``

    Examples
    --------
    >>> import numpy as np, neurobridge as nb
    >>> null = np.random.default_rng(0).normal(size=(999, 50))
    >>> p = nb.stats.max_statistic(np.r_[5.0, np.zeros(49)], null)
    >>> float(p[0]) < 0.01, float(p[1]) > 0.5
    (True, True)
    """
    obs = to_tensor(observed, name="observed")
    nul = to_tensor(null, name="null").to(obs.device)
    if tuple(nul.shape[1:]) != tuple(obs.shape):
        raise ValueError(f"null must have shape (n_permutations, *observed.shape) = (n, {tuple(obs.shape)}); "
                         f"got {tuple(nul.shape)}")
    obs_s, nul_s = _orient(obs, nul, alternative)
    maxima = nul_s.reshape(nul_s.shape[0], -1).amax(dim=1)
    count = (maxima.reshape(-1, *[1] * obs.ndim) >= obs_s.unsqueeze(0) - _tol(obs_s)).sum(0)
    p = (count + 1).to(torch.float64) / (nul.shape[0] + 1)
    return like(p, observed)


def _orient(obs: torch.Tensor, null: torch.Tensor, alternative: str):
    if alternative == "greater":
        return obs, null
    if alternative == "less":
        return -obs, -null
    if alternative == "two-sided":
        return obs.abs(), null.abs()
    raise ValueError(f"alternative must be 'greater', 'less' or 'two-sided', got {alternative!r}")


def _tol(x: torch.Tensor) -> torch.Tensor:
    """Relative tolerance so that ties computed in different orders count as ties."""
    eps = 1e-12 if x.dtype == torch.float64 else 1e-6
    return eps * x.abs().clamp(min=1.0)
