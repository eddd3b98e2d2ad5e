"""Random index sets for permutation and bootstrap tests, drawn in batches as tensors."""

from __future__ import annotations

import itertools

import numpy as np
import torch

from ._utils import generator

__all__ = ["permutation_indices", "bootstrap_indices", "bootstrap_counts", "sign_flips", "indices_to_counts",
           "circular_shifts", "block_permutation_indices", "phase_randomize", "autocorrelation", "autocorrelation_length"]


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


# ----------------------------------------------------------------------------- nulls that keep autocorrelation
def circular_shifts(n: int, n_permutations: int, *, min_shift: int = 1, seed=None, device=None) -> torch.Tensor:
    """Circular shifts of ``range(n)``: row ``b`` is ``(arange(n) + k_b) % n`` with ``min_shift <= k_b <= n - min_shift``.

    Shifting one time series against another keeps the autocorrelation of both, so a statistic of the pair
    (a held-out correlation) gets a valid null when the series are stationary. Shifts are drawn without
    replacement while there are enough distinct ones (``n - 2 * min_shift + 1``), with replacement after.

    Parameters
    ----------
    n : int
        Number of time points.
    n_permutations : int
    min_shift : int
        Smallest shift (in samples) in either direction; set it to at least the autocorrelation length so that
        no shifted pair overlaps the original one.
    seed, device : optional

    Returns
    -------
    indices : LongTensor, shape (n_permutations, n)

    Examples
    --------
    >>> import neurobridge as nb
    >>> nb.stats.circular_shifts(6, 2, min_shift=2, seed=0).shape
    torch.Size([2, 6])
    """
    n = _check_n(n, "n", 2)
    n_permutations = _check_n(n_permutations, "n_permutations")
    min_shift = _check_n(min_shift, "min_shift")
    n_distinct = n - 2 * min_shift + 1
    if n_distinct < 1:
        raise ValueError(f"circular shifts of {n} samples by at least min_shift={min_shift} in either direction do "
                         f"not exist; need n >= 2 * min_shift (use a smaller min_shift / gap or more samples)")
    g = generator(seed)
    if n_permutations <= n_distinct:
        k = torch.randperm(n_distinct, generator=g)[:n_permutations]
    else:
        k = torch.randint(0, n_distinct, (n_permutations,), generator=g)
    shifts = k + min_shift
    idx = (torch.arange(n)[None, :] + shifts[:, None]) % n
    return idx.to(device) if device is not None else idx


def block_permutation_indices(n: int, n_permutations: int, *, block: int, seed=None, device=None) -> torch.Tensor:
    """Permutations of contiguous blocks of ``block`` samples (the last block may be shorter).

    The order inside each block is kept, so the autocorrelation within blocks survives; with blocks at least
    as long as the autocorrelation length the null keeps the series' temporal structure (Politis & Romano's
    non-overlapping block scheme). A random offset moves the block boundaries in each row.

    Parameters
    ----------
    n : int
    n_permutations : int
    block : int
        Block length in samples (>= 1; at most ``n // 2`` so that there are two blocks to permute).
    seed, device : optional

    Returns
    -------
    indices : LongTensor, shape (n_permutations, n)

    Examples
    --------
    >>> import neurobridge as nb
    >>> idx = nb.stats.block_permutation_indices(8, 3, block=4, seed=0)
    >>> sorted(idx[0].tolist()) == list(range(8))
    True
    """
    n = _check_n(n, "n", 2)
    n_permutations = _check_n(n_permutations, "n_permutations")
    block = _check_n(block, "block")
    if block > n // 2:
        raise ValueError(f"block={block} leaves fewer than 2 blocks of {n} samples to permute; use block <= {n // 2}")
    g = generator(seed)
    rows = []
    for _ in range(n_permutations):
        offset = int(torch.randint(0, block, (1,), generator=g))
        rolled = (torch.arange(n) + offset) % n
        blocks = list(torch.split(rolled, block))
        order = torch.randperm(len(blocks), generator=g)
        rows.append(torch.cat([blocks[i] for i in order.tolist()]))
    idx = torch.stack(rows)
    return idx.to(device) if device is not None else idx


def phase_randomize(x, n_surrogates: int, *, dim: int = 0, seed=None) -> torch.Tensor:
    """Surrogate series with the power spectrum of ``x`` and random Fourier phases (Theiler et al. 1992).

    The same random phases are applied to every series along the other dims, so the cross-correlations
    between them (voxels, channels) are kept too; the mean is kept (phase of the zero frequency) and the
    Nyquist component of an even length stays real.

    Parameters
    ----------
    x : array or Tensor
        Series along ``dim`` (time).
    n_surrogates : int
    dim : int
        The time axis of ``x``.
    seed : optional

    Returns
    -------
    Tensor, shape (n_surrogates, *x.shape)

    Examples
    --------
    >>> import torch, neurobridge as nb
    >>> x = torch.randn(64, 3, dtype=torch.float64)
    >>> s = nb.stats.phase_randomize(x, 2, seed=0)
    >>> bool(torch.allclose(torch.fft.rfft(s[0], dim=0).abs(), torch.fft.rfft(x, dim=0).abs()))
    True
    """
    n_surrogates = _check_n(n_surrogates, "n_surrogates")
    t = torch.as_tensor(x)
    if not t.is_floating_point():
        t = t.to(torch.float64)
    t = t.movedim(dim, 0)
    n = t.shape[0]
    if n < 4:
        raise ValueError(f"phase randomisation needs at least 4 time points, got {n}")
    spec = torch.fft.rfft(t, dim=0)
    g = generator(seed)
    m = spec.shape[0]
    phases = torch.rand(n_surrogates, m, generator=g, dtype=t.dtype) * (2 * torch.pi)
    phases[:, 0] = 0
    if n % 2 == 0:
        phases[:, -1] = 0
    rot = torch.polar(torch.ones_like(phases), phases).to(spec.dtype).to(t.device)
    rot = rot.reshape(n_surrogates, m, *[1] * (t.ndim - 1))
    out = torch.fft.irfft(spec.unsqueeze(0) * rot, n=n, dim=1)
    return out.movedim(1, dim + 1)


def autocorrelation(x, *, dim: int = 0, max_lag: int | None = None) -> torch.Tensor:
    """Sample autocorrelation function along ``dim``, averaged over the other dims (standardised series).

    Parameters
    ----------
    x : array or Tensor
    dim : int
        The time axis.
    max_lag : int, optional
        Largest lag returned (default ``n // 2``).

    Returns
    -------
    Tensor, shape (max_lag + 1,)
        ``acf[0] == 1``.

    Examples
    --------
    >>> import numpy as np, neurobridge as nb
    >>> rng = np.random.default_rng(0); e = rng.normal(size=5000); x = np.zeros(5000)
    >>> for t in range(1, 5000): x[t] = 0.9 * x[t - 1] + e[t]
    >>> round(float(nb.stats.autocorrelation(x)[1]), 1)
    0.9
    """
    t = torch.as_tensor(x)
    if not t.is_floating_point():
        t = t.to(torch.float64)
    t = t.movedim(dim, 0).reshape(t.shape[dim], -1)
    n = t.shape[0]
    if n < 3:
        raise ValueError(f"an autocorrelation needs at least 3 time points, got {n}")
    max_lag = n // 2 if max_lag is None else min(int(max_lag), n - 1)
    t = t - t.mean(0)
    sd = t.std(0)
    t = t[:, sd > 0] / sd[sd > 0]
    if t.shape[1] == 0:
        return torch.cat([torch.ones(1, dtype=t.dtype), torch.zeros(max_lag, dtype=t.dtype)])
    f = torch.fft.rfft(t, n=2 * n, dim=0)
    ac = torch.fft.irfft(f * f.conj(), n=2 * n, dim=0)[: max_lag + 1]
    ac = ac / ac[0]
    return ac.mean(1)


def autocorrelation_length(*series, dim: int = 0, threshold: float = 0.01, max_lag: int | None = None) -> int:
    """Smallest lag at which the product of the series' autocorrelations falls below ``threshold``.

    Two independent series with autocorrelations ``rho_x`` and ``rho_y`` have sample cross-products that stay
    correlated over ``rho_x(k) * rho_y(k)`` (Bartlett): beyond this lag, samples of a training set no longer
    carry information about a held-out sample. Used as the default gap between training and validation blocks
    and the smallest circular shift of time-series nulls.

    Parameters
    ----------
    *series : arrays or Tensors
        One or more (time, ...) arrays (features and targets); one series is squared.
    dim : int
    threshold : float
        In (0, 1).
    max_lag : int, optional

    Returns
    -------
    int
        The lag (>= 1); ``max_lag`` when the product never falls below ``threshold``.

    Examples
    --------
    >>> import numpy as np, neurobridge as nb
    >>> rng = np.random.default_rng(0); e = rng.normal(size=(4000, 4)); x = np.zeros_like(e)
    >>> for t in range(1, 4000): x[t] = 0.9 * x[t - 1] + e[t]
    >>> nb.stats.autocorrelation_length(x) in range(18, 27)   # 0.81 ** k < 0.01 at k = 22
    True
    """
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    if not series:
        raise ValueError("autocorrelation_length needs at least one series")
    acfs = [autocorrelation(s, dim=dim, max_lag=max_lag) for s in series]
    if len(acfs) == 1:
        acfs = acfs * 2
    m = min(len(a) for a in acfs)
    prod = torch.ones(m, dtype=torch.float64)
    for a in acfs:
        prod = prod * a[:m].to(torch.float64)
    below = torch.nonzero(prod.abs() < threshold)
    return int(below[0]) if len(below) else m - 1
