"""Inference on decoding scores: label-permutation tests with cluster and max-statistic correction over time
(and over ``(time, time2)``), and group-level sign-flip tests across subjects.

The permutation null reruns the whole cross-validated decoder on permuted labels (the folds re-made for each
permutation, as scikit-learn's ``permutation_test_score`` does), so what it tests is the pipeline the observed
score came from. Which permutations are exchangeable depends on the design, and the function picks them from
``groups``:

* no groups: labels permuted over all samples;
* groups whose samples all share one label (repeats of a stimulus, with labels assigned per stimulus): the
  labels of whole groups are permuted, since repeats of a stimulus are not independent samples and swapping
  labels within a stimulus would change nothing;
* other groups (runs, sessions): labels permuted within each group, keeping each run's class balance.

Corrections: the pointwise p-values are uncorrected; ``pvalue_max`` controls the family-wise error over the
grid by the maximum statistic, and ``pvalue_cluster`` by cluster mass (``nb.stats.cluster_test``). Both use the
score standardised by the null's mean and standard deviation at each point, so points with noisier nulls
(fewer test trials, edges of an epoch) do not dominate.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import xarray as xr

from ..core import resolve_device
from ..core._progress import progress_bar
from ..stats import cluster_test, max_statistic, pvalue
from ._api import _dim_coords, _fast, _generic, _prepare
from ._inputs import make_cv_folds
from ._scoring import chance_level

__all__ = ["permutation_test", "group_test"]


def _permutation_scheme(y: np.ndarray, groups: np.ndarray | None) -> tuple[str, list[np.ndarray] | None]:
    """``"all"``, ``"between groups"`` (labels constant within every group) or ``"within groups"``, and the
    member indices of each group."""
    if groups is None:
        return "all", None
    _, inv = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(inv == g) for g in range(inv.max() + 1)]
    rows = y if y.ndim == 1 else y.reshape(len(y), -1)
    constant = all((rows[m] == rows[m[0]]).all() for m in members)
    return ("between groups" if constant else "within groups"), members


def _permuted(y: np.ndarray, scheme: str, members, rng: np.random.Generator) -> np.ndarray:
    if scheme == "all":
        return y[rng.permutation(len(y))]
    out = y.copy()
    if scheme == "within groups":
        for m in members:
            out[m] = y[m[rng.permutation(len(m))]]
        return out
    # between groups: group g takes the label of group order[g]; groups of unequal size keep their own size
    order = rng.permutation(len(members))
    for g, m in enumerate(members):
        out[m] = y[members[order[g]][0]]
    return out


def permutation_test(brain: xr.DataArray, target, dim: str | None = "time", *, estimator: Any = "ridge",
                     cv: Any = 5, groups=None, scoring: str | None = None, generalize: bool = False,
                     n_permutations: int = 1000, alternative: str = "greater", cluster_threshold: float | None = None,
                     sample_dim: str | None = None, seed=None, n_jobs: int | None = None, device: str | None = None,
                     progress: bool | None = None) -> xr.Dataset:
    """Label-permutation test of cross-validated decoding scores, corrected over ``dim`` (or ``(dim, dim2)``).

    Runs :func:`sliding` (or :func:`generalizing` with ``generalize=True``) on the data, then on
    ``n_permutations`` relabellings chosen by the design (module docstring: over all samples, between groups
    whose samples share a label, or within groups), with the folds re-made each time.

    Parameters
    ----------
    brain, target, dim, estimator, cv, groups, scoring, sample_dim, n_jobs, device
        As :func:`sliding`.
    generalize : bool
        Test the temporal-generalisation matrix instead of the diagonal.
    n_permutations : int
        Relabellings (the observed labelling counts as one more, so the smallest p-value is
        ``1 / (n_permutations + 1)``).
    alternative : {"greater", "two-sided", "less"}
        ``"greater"``: decoding above chance (the usual question).
    cluster_threshold : float, optional
        Cluster-forming threshold on the standardised score (null-mean-centred, divided by the null's standard
        deviation at each point). Default: the normal quantile of 0.95 (one-sided) or 0.975 (two-sided).
    seed : int or numpy Generator, optional
    progress : bool, optional
        Progress bar over permutations (default: when someone watches).

    Returns
    -------
    xr.Dataset
        Over ``dim`` (``(dim, dim2)`` with ``generalize``; scalars with ``dim=None``): ``score`` (observed, mean
        over folds), ``null_mean`` and ``null_std`` (of the permuted scores), ``pvalue`` (pointwise,
        uncorrected), ``pvalue_max`` (family-wise, maximum statistic), ``pvalue_cluster`` (family-wise, cluster
        mass; 1 outside clusters) and
        ``cluster`` (0 outside clusters, else the cluster number in ``attrs["cluster_pvalues"]`` order, from
        1). Attrs: ``chance``, ``scheme``, ``n_permutations``, ``alternative``, ``cluster_threshold``,
        ``cluster_pvalues``, ``scoring``, ``estimator``.

    Raises
    ------
    ValueError
        ``n_permutations < 1``, an unknown ``alternative``, and every error of :func:`sliding`.

    Examples
    --------
    >>> import numpy as np, neurobridge as nb
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat(["a", "b"], 20)
    >>> X = rng.normal(size=(40, 6, 12)); X[y == "b", 0, 4:8] += 2.0
    >>> res = nb.decoding.permutation_test(nb.core.eeg_epochs(X, stimulus=y, sfreq=100.0), y,
    ...                                    n_permutations=99, seed=0, progress=False)
    >>> sorted(res.data_vars)
    ['cluster', 'null_mean', 'null_std', 'pvalue', 'pvalue_cluster', 'pvalue_max', 'score']
    >>> bool(res.pvalue_cluster[4:8].max() <= 0.05), bool(res.pvalue_cluster[:3].min() == 1.0)
    (True, True)
    """
    if alternative not in ("greater", "less", "two-sided"):
        raise ValueError(f"alternative must be 'greater', 'less' or 'two-sided', got {alternative!r}")
    if int(n_permutations) < 1:
        raise ValueError(f"n_permutations must be >= 1, got {n_permutations!r} (1000 is usual; 99 for a quick look)")
    if generalize and dim is None:
        raise ValueError("generalize=True needs a dim to train and test along (e.g. dim='time')")
    problem, spec, scoring = _prepare(brain, target, dim, sample_dim, groups, estimator, scoring)
    dev = resolve_device(None, device)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)

    def run(prob) -> np.ndarray:
        folds = make_cv_folds(prob, cv)
        if spec.kind == "generic":
            s = _generic(prob, spec, folds, scoring, generalize, n_jobs, False)
        else:
            s = _fast(prob, spec, folds, scoring, generalize, dev)
        return s.mean(0)

    observed = run(problem)
    scheme, members = _permutation_scheme(problem.y, problem.groups)
    null = np.empty((int(n_permutations), *observed.shape))
    with progress_bar(total=int(n_permutations), desc="permutations", unit="perm", progress=progress) as bar:
        for i in range(int(n_permutations)):
            null[i] = run(problem._replace(y=_permuted(problem.y, scheme, members, rng)))
            bar.update(1)
    chance = chance_level(scoring, problem.y if problem.classification else None)

    if dim is None:  # one score
        observed, null = observed.reshape(()), null.reshape(-1)
    p_point = np.asarray(pvalue(observed, null, alternative=alternative))
    # standardise with the mean and spread of all labellings, the observed one included: a symmetric function
    # of the labellings keeps them exchangeable, so the corrected tests stay exact (a null-only estimate from
    # few permutations is not, and inflated the family-wise error to 10-16% with 19 permutations)
    every = np.concatenate([observed[None], null])
    mean, std = every.mean(0), every.std(0, ddof=1)
    safe = np.where(std > 0, std, 1.0)
    z_obs, z_null = (observed - mean) / safe, (null - mean) / safe
    p_max = np.asarray(max_statistic(z_obs, z_null, alternative=alternative))
    if cluster_threshold is None:
        from scipy.stats import norm

        cluster_threshold = float(norm.ppf(0.975 if alternative == "two-sided" else 0.95))
    if alternative == "less":  # cluster_test looks for clusters above the threshold: flip the sign
        z_obs_c, z_null_c, alt_c = -z_obs, -z_null, "greater"
    else:
        z_obs_c, z_null_c, alt_c = z_obs, z_null, alternative
    if observed.ndim == 0:
        cl_p, cl_map, cl_pvalues = p_max.copy(), np.zeros((), dtype=np.int64), []
    else:
        res = cluster_test(torch.as_tensor(z_obs_c), torch.as_tensor(z_null_c), float(cluster_threshold),
                           alternative=alt_c)
        cl_p = np.asarray(res.pvalue, dtype=float)
        cl_map = np.zeros(observed.shape, dtype=np.int64)
        for c, mask in enumerate(res.clusters, start=1):
            cl_map[np.asarray(mask)] = c
        cl_pvalues = [float(v) for v in np.asarray(res.cluster_pvalues)]

    if dim is None:
        dims, coords = (), {}
    elif generalize:
        dims, coords = (dim, f"{dim}2"), {**_dim_coords(brain, dim), **_dim_coords(brain, dim, "2")}
    else:
        dims, coords = (dim,), _dim_coords(brain, dim)
    coords = {k: xr.Variable(v[0], v[1], attrs=v[2]) for k, v in coords.items()}
    data = {"score": observed, "null_mean": null.mean(0),
            "null_std": null.std(0, ddof=1) if len(null) > 1 else np.zeros_like(observed), "pvalue": p_point, "pvalue_max": p_max,
            "pvalue_cluster": cl_p, "cluster": cl_map}
    attrs = {"chance": chance, "scheme": scheme, "n_permutations": int(n_permutations), "alternative": alternative,
             "cluster_threshold": float(cluster_threshold), "cluster_pvalues": cl_pvalues, "scoring": scoring,
             "estimator": spec.name, "generalize": bool(generalize)}
    return xr.Dataset({k: (dims, np.asarray(v)) for k, v in data.items()}, coords=coords, attrs=attrs)


def group_test(scores: xr.DataArray, dim: str = "subject", *, chance: float | None = None, n_permutations: int = 10000,
               alternative: str = "greater", threshold: float | None = None, seed=None) -> xr.Dataset:
    """Group-level test of decoding scores across subjects: sign flips of ``score - chance``, cluster-corrected.

    Each subject's curve (or generalisation matrix) minus chance is symmetric around zero under the null that
    nobody decodes above chance, so flipping whole curves' signs is exact (``nb.stats.cluster_permutation_test``
    with the one-sample t statistic, as ``mne.stats.permutation_cluster_1samp_test``).

    Parameters
    ----------
    scores : xr.DataArray
        Scores with a ``dim`` of subjects (e.g. ``xr.concat([nb.decoding.sliding(...) for ...], "subject")``).
    dim : str
        The subjects' dim.
    chance : float, optional
        Default: ``scores.attrs["chance"]`` (set by :func:`sliding`).
    n_permutations : int
        Sign flips (all ``2 ** n_subjects`` when fewer; the test is then exact).
    alternative, threshold, seed
        As ``nb.stats.cluster_permutation_test`` (``threshold`` on the t statistic; default from the t
        distribution at 0.05).

    Returns
    -------
    xr.Dataset
        Over the other dims of ``scores``: ``mean`` (across subjects), ``t``, ``pvalue_cluster`` and ``cluster``;
        attrs ``chance``, ``n_subjects``, ``cluster_pvalues``.

    Examples
    --------
    >>> import numpy as np, xarray as xr, neurobridge as nb
    >>> rng = np.random.default_rng(0)
    >>> s = 0.5 + 0.05 * rng.normal(size=(12, 30)); s[:, 10:20] += 0.1
    >>> scores = xr.DataArray(s, dims=("subject", "time"), attrs={"chance": 0.5})
    >>> res = nb.decoding.group_test(scores, seed=0)
    >>> bool(res.pvalue_cluster[10:20].max() < 0.05), bool(res.pvalue_cluster[:8].min() == 1.0)
    (True, True)
    """
    from ..stats import cluster_permutation_test

    if not isinstance(scores, xr.DataArray) or dim not in scores.dims:
        raise ValueError(f"scores must be a DataArray with a {dim!r} dim of subjects (got "
                         f"{getattr(scores, 'dims', type(scores).__name__)}); concatenate the subjects' scores with "
                         f"xr.concat([...], {dim!r})")
    if chance is None:
        if "chance" not in scores.attrs:
            raise ValueError("scores have no 'chance' attr; pass chance=... (0.5 for ROC AUC, 1/n_classes for "
                             "balanced accuracy, 0 for r and R2)")
        chance = float(scores.attrs["chance"])
    n_sub = scores.sizes[dim]
    if n_sub < 2:
        raise ValueError(f"a group test needs at least 2 subjects along {dim!r}, found {n_sub}")
    x = scores.transpose(dim, ...) - chance
    res = cluster_permutation_test(torch.as_tensor(np.asarray(x.values, dtype=float)), dim=0, threshold=threshold,
                                   n_permutations=n_permutations, alternative=alternative, seed=seed)
    rest = [d for d in x.dims if d != dim]
    cl_map = np.zeros(x.shape[1:], dtype=np.int64)
    for c, mask in enumerate(res.clusters, start=1):
        cl_map[np.asarray(mask)] = c
    coords = {k: v for k, v in scores.coords.items() if dim not in v.dims}
    return xr.Dataset({"mean": (rest, scores.mean(dim).values), "t": (rest, np.asarray(res.statistic)),
                       "pvalue_cluster": (rest, np.asarray(res.pvalue, dtype=float)), "cluster": (rest, cl_map)},
                      coords=coords, attrs={"chance": chance, "n_subjects": int(n_sub), "alternative": alternative,
                                            "cluster_pvalues": [float(v) for v in np.asarray(res.cluster_pvalues)]})
