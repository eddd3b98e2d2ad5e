"""Random index sets for permutation and bootstrap tests, drawn in batches as tensors."""

from __future__ import annotations

import itertools

import numpy as np
import torch

from ._utils import generator

__all__ = ["permutation_indices", "bootstrap_indices", "bootstrap_counts", "sign_flips", "indices_to_counts"]


def _check_n(n: int, what: str, minimum: int = 1) -> int:
    if int(n) != n or n < minimum:
        raise ValueError(f"{what} must be an integer >= {minimum}, got {n!r}")
    return int(n)


def permutation_indices(n: int, n_permutations: int, *, seed=None, device=None) -> torch.Tensor:
    """Random permutations of ``range(n)``.

    Parameters
    ----------
    n : int
        Number of items (e.g. stimuli).
    n_permutations : int
        Number of permutations (rows).
    seed : int, numpy Generator or torch Generator, optional
        Randomness; the same seed gives the same permutations on every device.
    device : str or torch.device, optional
        Where to put the result (drawn on CPU for reproducibility).

    Returns
    -------
    indices : LongTensor, shape (n_permutations, n)

    Examples
    --------
    >>> import neurobridge as nb
    >>> nb.stats.permutation_indices(5, 3, seed=0).sort(dim=1).values.tolist()[0]
    [0, 1, 2, 3, 4]
    """
    n = _check_n(n, "n")
    n_permutations = _check_n(n_permutations, "n_permutations")
    g = generator(seed)
    idx = torch.argsort(torch.rand(n_permutations, n, generator=g), dim=1)
    return idx.to(device) if device is not None else idx


def bootstrap_indices(n: int, n_bootstraps: int, *, seed=None, sort: bool = True, device=None) -> torch.Tensor:
    """Indices of bootstrap samples: ``n`` draws with replacement from ``range(n)`` per row.

    Parameters
    ----------
    n : int
        Number of items (stimuli or subjects).
    n_bootstraps : int
        Number of bootstrap samples (rows).
    seed : int, numpy Generator or torch Generator, optional
        Randomness.
    sort : bool
        Sort each row (as rsatoolbox does when it subsamples patterns); statistics of RDMs do not depend on
        the order.
    device : str or torch.device, optional

    Returns
    -------
    indices : LongTensor, shape (n_bootstraps, n)

    Examples
    --------
    >>> import neurobridge as nb
    >>> nb.stats.bootstrap_indices(4, 2, seed=0).shape
    torch.Size([2, 4])
    """
    n = _check_n(n, "n")
    n_bootstraps = _check_n(n_bootstraps, "n_bootstraps")
    g = generator(seed)
    idx = torch.randint(0, n, (n_bootstraps, n), generator=g)
    if sort:
        idx = idx.sort(dim=1).values
    return idx.to(device) if device is not None else idx


def indices_to_counts(indices, n: int) -> torch.Tensor:
    """How often each item appears in each resample.

    Parameters
    ----------
    indices : int array-like, shape (n_resamples, k)
        Resampled item indices (values in ``range(n)``), e.g. from :func:`bootstrap_indices` or
        reproduced from another tool's random stream.
    n : int
        Number of items.

    Returns
    -------
    counts : LongTensor, shape (n_resamples, n)

    Examples
    --------
    >>> import neurobridge as nb
    >>> nb.stats.indices_to_counts([[0, 0, 2]], 3).tolist()
    [[2, 0, 1]]
    """
    idx = torch.as_tensor(np.asarray(indices) if not isinstance(indices, torch.Tensor) else indices)
    if idx.ndim == 1:
        idx = idx[None]
    if idx.ndim != 2 or idx.dtype.is_floating_point:
        raise ValueError(f"indices must be an integer array of shape (n_resamples, k), got {tuple(idx.shape)} "
                         f"{idx.dtype}")
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= n):
        raise ValueError(f"indices must lie in [0, {n - 1}], found [{int(idx.min())}, {int(idx.max())}]")
    counts = torch.zeros(idx.shape[0], n, dtype=torch.long, device=idx.device)
    counts.scatter_add_(1, idx.long(), torch.ones_like(idx, dtype=torch.long))
    return counts


def bootstrap_counts(n: int, n_bootstraps: int, *, groups=None, seed=None, device=None) -> torch.Tensor:
    """Bootstrap samples as counts: how often each item is drawn, optionally drawing whole groups.

    With ``groups`` (one label per item, e.g. the stimulus id of each condition, or the category),
    unique groups are drawn with replacement and every item of a drawn group is included once per draw,
    exactly as rsatoolbox's ``pattern_descriptor`` grouping.

    Parameters
    ----------
    n : int
        Number of items.
    n_bootstraps : int
        Number of bootstrap samples.
    groups : sequence, optional
        Group label per item (length ``n``).
    seed : int or Generator, optional
    device : optional

    Returns
    -------
    counts : LongTensor, shape (n_bootstraps, n)

    Examples
    --------
    >>> import neurobridge as nb
    >>> c = nb.stats.bootstrap_counts(4, 3, groups=["a", "a", "b", "b"], seed=1)
    >>> bool((c[:, 0] == c[:, 1]).all()), c.sum(1).tolist()
    (True, [4, 4, 4])
    """
    n = _check_n(n, "n")
    if groups is None:
        counts = indices_to_counts(bootstrap_indices(n, n_bootstraps, seed=seed, sort=False), n)
    else:
        labels = np.asarray(groups)
        if labels.shape != (n,):
            raise ValueError(f"groups must have one label per item (length {n}), got shape {labels.shape}")
        _, inverse = np.unique(labels, return_inverse=True)
        n_groups = int(inverse.max()) + 1
        gcounts = indices_to_counts(bootstrap_indices(n_groups, n_bootstraps, seed=seed, sort=False), n_groups)
        counts = gcounts[:, torch.as_tensor(inverse, dtype=torch.long)]
    return counts.to(device) if device is not None else counts


def sign_flips(n: int, n_permutations: int, *, seed=None, exact: bool | None = None, device=None,
               dtype=torch.float64) -> torch.Tensor:
    """Sign-flip patterns for one-sample / paired permutation tests.

    Parameters
    ----------
    n : int
        Number of observations (e.g. subjects).
    n_permutations : int
        Number of random flip patterns; ignored when ``exact``.
    seed : int or Generator, optional
    exact : bool, optional
        Enumerate all ``2**n`` patterns (the first is all ``+1``, the identity). Default: when
        ``2**n <= n_permutations``.
    device, dtype : optional

    Returns
    -------
    flips : Tensor of +1/-1, shape (n_patterns, n)

    Examples
    --------
    >>> import neurobridge as nb
    >>> nb.stats.sign_flips(3, 1000).shape
    torch.Size([8, 3])
    """
    n = _check_n(n, "n")
    if exact is None:
        exact = n <= 20 and 2**n <= n_permutations
    if exact:
        if n > 20:
            raise ValueError(f"exact sign flips enumerate 2**n patterns; n={n} is too large, pass exact=False")
        pats = torch.tensor(list(itertools.product([1.0, -1.0], repeat=n)), dtype=dtype)
    else:
        g = generator(seed)
        pats = torch.randint(0, 2, (_check_n(n_permutations, "n_permutations"), n), generator=g).to(dtype) * 2 - 1
    return pats.to(device) if device is not None else pats
