"""Cluster-based permutation inference over a grid (time, or layer x time), batched over permutations."""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

import numpy as np
import torch

from ._tests import Alternative, sign_flip_test
from ._utils import to_tensor

__all__ = ["ClusterResult", "label_clusters", "cluster_test", "cluster_permutation_test"]


class ClusterResult(NamedTuple):
    """Result of a cluster-based permutation test."""

    statistic: Any
    """Observed statistic map (the grid), same kind as the input."""
    clusters: list
    """One boolean mask (grid shape, numpy) per observed cluster, ordered by first element."""
    cluster_stats: np.ndarray
    """Cluster mass (sum of the statistic in the cluster) per observed cluster."""
    cluster_pvalues: np.ndarray
    """FWER-corrected p-value per observed cluster."""
    pvalue: Any
    """Per-element map: the p-value of the cluster the element belongs to, 1 outside clusters."""
    null: torch.Tensor
    """Maximum cluster mass under each permutation (the identity first when exact), shape (n_permutations,)."""


def _run_ids(mask: torch.Tensor) -> torch.Tensor:
    """Id of each run of True along the last axis (unique over the whole batch); -1 outside runs."""
    flat = mask.reshape(-1, mask.shape[-1])
    prev = torch.nn.functional.pad(flat[:, :-1], (1, 0), value=False)
    starts = flat & ~prev
    ids = torch.cumsum(starts.reshape(-1).long(), 0).reshape(flat.shape) - 1
    return torch.where(flat, ids, torch.full_like(ids, -1)).reshape(mask.shape)


def label_clusters(mask) -> torch.Tensor:
    """Connected components of ``True`` entries on a grid, for a batch of grids at once.

    Neighbours are the face neighbours of the grid (like ``scipy.ndimage.label``'s default structure):
    consecutive time points, and in ``(layer, time)`` grids also the same time in adjacent layers.

    Parameters
    ----------
    mask : bool array-like, shape (batch, *grid)

    Returns
    -------
    labels : LongTensor, shape (batch, *grid)
        0 outside clusters; inside, a positive id shared by the elements of one component (ids are not
        consecutive).

    Examples
    --------
    >>> import torch, neurobridge as nb
    >>> nb.stats.label_clusters(torch.tensor([[1, 1, 0, 1]]).bool())[0].tolist()
    [2, 2, 0, 4]
    """
    m = torch.as_tensor(np.asarray(mask) if not isinstance(mask, torch.Tensor) else mask).bool()
    if m.ndim < 2:
        raise ValueError(f"mask must have shape (batch, *grid), got {tuple(m.shape)}")
    numel = m[0].numel()
    lin = torch.arange(1, numel + 1, device=m.device).reshape(m.shape[1:]).expand_as(m)
    labels = torch.where(m, lin, torch.zeros_like(lin))
    runs = _run_ids(m)
    n_runs = int(runs.max()) + 1 if m.any() else 0
    run_flat = runs.reshape(-1)
    inside = run_flat >= 0

    def run_max(lab: torch.Tensor) -> torch.Tensor:
        if n_runs == 0:
            return lab
        best = torch.zeros(n_runs, dtype=lab.dtype, device=lab.device)
        best.scatter_reduce_(0, run_flat[inside], lab.reshape(-1)[inside], reduce="amax")
        out = lab.reshape(-1).clone()
        out[inside] = best[run_flat[inside]]
        return out.reshape(lab.shape)

    labels = run_max(labels)
    grid_axes = list(range(1, m.ndim - 1))  # axes other than the last (already merged by runs)
    while grid_axes:
        new = labels
        for ax in grid_axes:
            for shift in (1, -1):
                nb_ = torch.roll(labels, shift, dims=ax)
                edge = [slice(None)] * m.ndim
                edge[ax] = 0 if shift == 1 else -1
                nb_[tuple(edge)] = 0
                new = torch.maximum(new, nb_)
        new = torch.where(m, new, torch.zeros_like(new))
        new = run_max(new)
        if torch.equal(new, labels):
            break
        labels = new
    return labels


def _cluster_sums(stat: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels and per-label sums (batch, numel + 1) of ``stat`` over clusters of ``mask``."""
    labels = label_clusters(mask)
    b = stat.shape[0]
    sums = torch.zeros(b, stat[0].numel() + 1, dtype=stat.dtype, device=stat.device)
    sums.scatter_add_(1, labels.reshape(b, -1), torch.where(mask, stat, torch.zeros_like(stat)).reshape(b, -1))
    return labels, sums


def _max_cluster(stat: torch.Tensor, threshold: float, alternative: str) -> torch.Tensor:
    out = torch.zeros(stat.shape[0], dtype=stat.dtype, device=stat.device)
    if alternative in ("greater", "two-sided"):
        _, s = _cluster_sums(stat, stat > threshold)
        out = torch.maximum(out, s.amax(1))
    if alternative in ("less", "two-sided"):
        _, s = _cluster_sums(stat, stat < -threshold)
        out = torch.maximum(out, (-s).amax(1))
    return out


def cluster_test(
    observed, null, threshold: float, *, alternative: Alternative = "two-sided",
    includes_observed: bool = False, batch_size: int = 256,
) -> ClusterResult:
    """Cluster-mass permutation test from an observed statistic map and null maps.

    Elements beyond ``threshold`` (``> threshold``, ``< -threshold`` or both) form clusters of grid
    neighbours; a cluster's mass is the sum of the statistic in it. Each null map contributes its largest
    cluster mass (0 when it has no cluster), and an observed cluster's p-value is the fraction of null
    maxima at least as large (absolute masses for two-sided tests), which controls the family-wise error
    over the whole grid. Same definition as ``mne.stats.permutation_cluster_1samp_test`` (``t_power=1``).

    Parameters
    ----------
    observed : array-like, shape grid (e.g. (time,) or (layer, time))
    null : array-like, shape (n_permutations, *grid)
    threshold : float
        Cluster-forming threshold (positive; used as ``-threshold`` for negative clusters).
    alternative : {"greater", "less", "two-sided"}
    includes_observed : bool
        ``null`` is an exhaustive set that already contains the observed (identity) map; otherwise the
        observed map is added to the null.
    batch_size : int
        Null maps labelled at once.

    Returns
    -------
    ClusterResult

    Examples
    --------
    >>> import numpy as np, neurobridge as nb
    >>> rng = np.random.default_rng(0)
    >>> obs = np.r_[np.zeros(20), np.full(10, 4.0), np.zeros(20)]
    >>> res = nb.stats.cluster_test(obs, rng.normal(size=(200, 50)), threshold=2.0)
    >>> len(res.clusters), bool(res.cluster_pvalues[0] < 0.01)
    (1, True)
    """
    obs = to_tensor(observed, name="observed")
    nul = to_tensor(null, name="null").to(obs.device, obs.dtype)
    if tuple(nul.shape[1:]) != tuple(obs.shape):
        raise ValueError(f"null must have shape (n_permutations, *observed.shape) = (n, {tuple(obs.shape)}); "
                         f"got {tuple(nul.shape)}")
    if obs.ndim == 0:
        raise ValueError("observed must be a map with at least one dim (e.g. time)")
    if threshold < 0:
        raise ValueError(f"threshold must be >= 0 (it is mirrored for negative clusters), got {threshold}")
    if alternative not in ("greater", "less", "two-sided"):
        raise ValueError(f"alternative must be 'greater', 'less' or 'two-sided', got {alternative!r}")
    null_max = torch.cat([_max_cluster(nul[s:s + batch_size], threshold, alternative)
                          for s in range(0, nul.shape[0], batch_size)])
    clusters, stats = [], []
    for sign, use in ((1.0, alternative in ("greater", "two-sided")), (-1.0, alternative in ("less", "two-sided"))):
        if not use:
            continue
        mask = (sign * obs > threshold)[None]
        labels, sums = _cluster_sums(obs[None], mask)
        for lab in torch.unique(labels[labels > 0]).tolist():
            cmask = (labels[0] == lab).cpu().numpy()
            clusters.append(cmask)
            stats.append(float(sums[0, lab]))
    order = sorted(range(len(clusters)), key=lambda i: (np.flatnonzero(clusters[i].ravel())[0], -stats[i]))
    clusters = [clusters[i] for i in order]
    stats_arr = np.array([stats[i] for i in order], dtype=float)
    h0 = null_max.cpu().numpy()
    if not includes_observed:
        obs_max = float(np.abs(stats_arr).max()) if len(stats_arr) else 0.0
        h0 = np.r_[obs_max, h0]
    tol = 1e-12 if obs.dtype == torch.float64 else 1e-6
    pvals = np.array([np.mean(h0 >= abs(s) - tol * max(1.0, abs(s))) for s in stats_arr], dtype=float)
    pmap = np.ones(tuple(obs.shape))
    for cmask, p in zip(clusters, pvals, strict=True):
        pmap[cmask] = p
    stat_out, p_out = _wrap(obs, observed), _wrap(torch.from_numpy(pmap), observed)
    return ClusterResult(stat_out, clusters, stats_arr, pvals, p_out, torch.from_numpy(h0))


def _wrap(t: torch.Tensor, template):
    import xarray as xr

    if isinstance(template, torch.Tensor):
        return t
    arr = t.detach().cpu().numpy()
    if isinstance(template, xr.DataArray):
        return template.copy(data=arr)
    return arr


def cluster_permutation_test(
    x, *, dim: int | str = 0, threshold: float | None = None, n_permutations: int = 1024,
    alternative: Alternative = "two-sided", seed=None, exact: bool | None = None,
    statistic: Literal["t", "mean"] = "t",
) -> ClusterResult:
    """One-sample cluster-based permutation test (sign flips of subjects) over time or layer x time.

    Parameters
    ----------
    x : array-like or DataArray, shape (subject, *grid)
        Per-subject maps, e.g. RSA correlation time courses minus chance.
    dim : int or str
        The subject dim.
    threshold : float, optional
        Cluster-forming threshold on the statistic; default the t value of p = 0.05 (two-sided halves it
        per tail), as MNE.
    n_permutations : int
        Random sign-flip patterns; all ``2**n_subjects`` when that is not more (exact test).
    alternative : {"greater", "less", "two-sided"}
    seed, exact, statistic : optional

    Returns
    -------
    ClusterResult

    Examples
    --------
    >>> import numpy as np, neurobridge as nb
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(10, 60)); x[:, 20:35] += 1.5
    >>> res = nb.stats.cluster_permutation_test(x, dim=0, seed=0)
    >>> bool(res.pvalue[25] < 0.05), bool(res.pvalue[5] == 1)
    (True, True)
    """
    import scipy.stats

    res = sign_flip_test(x, dim=dim, statistic=statistic, n_permutations=n_permutations,
                         alternative=alternative, seed=seed, exact=exact)
    n = res.null.shape[0]
    n_sub = (x.sizes[dim] if isinstance(dim, str) else np.shape(x)[dim]) if hasattr(x, "sizes") else np.shape(x)[dim]
    if threshold is None:
        if statistic != "t":
            raise ValueError("pass threshold=... when statistic='mean'")
        q = 0.975 if alternative == "two-sided" else 0.95
        threshold = float(scipy.stats.t.ppf(q, n_sub - 1))
    exhaustive = n == 2**n_sub
    return cluster_test(res.statistic, res.null, threshold, alternative=alternative, includes_observed=exhaustive)
