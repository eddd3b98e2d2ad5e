"""Noise ceilings from repeated presentations, ceiling-normalised scores, variance partitioning."""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import numpy as np
import pandas as pd
import xarray as xr

from ..core import SchemaError, check_finite, stimulus_ids

__all__ = ["noise_ceiling", "normalized_score", "variance_partitioning"]


def _trials_by_stimulus(brain: xr.DataArray):
    if "trial" not in brain.dims:
        raise SchemaError(f"noise ceilings need repeated trials: a 'trial' dim with a 'stimulus' coordinate, found "
                          f"dims {tuple(brain.dims)}; pass the single-trial responses, not their average")
    check_finite(brain, "brain")
    ids = stimulus_ids(brain)
    codes, uniques = pd.factorize(ids)
    counts = np.bincount(codes)
    keep = np.flatnonzero(counts >= 2)
    if len(keep) < 3:
        raise SchemaError(f"noise ceilings need >= 3 stimuli shown at least twice, found {len(keep)} "
                          f"(repetitions per stimulus: min {counts.min()}, max {counts.max()})")
    other = [d for d in brain.dims if d != "trial"]
    Y = np.asarray(brain.transpose("trial", *other).values, dtype=float).reshape(brain.sizes["trial"], -1)
    template = brain.isel(trial=0, drop=True).transpose(*other)
    template = template.drop_vars([c for c in template.coords if c not in template.dims and
                                   not set(template[c].dims) <= set(other)])
    return Y, codes, keep, counts, template


def _spearman_brown(r, factor):
    return factor * r / (1 + (factor - 1) * r)


def noise_ceiling(brain: xr.DataArray, *, method: str = "split_half", n_average: float | None = None,
                  n_splits: int = 50, random_state=0) -> xr.Dataset:
    """Noise ceiling of every voxel/channel from repeated presentations of the same stimuli.

    * ``"split_half"``: repetitions of each stimulus are split at random into two halves, the half
      means are correlated across stimuli (averaged over ``n_splits`` splits), and the Spearman-Brown
      formula extrapolates that reliability from half the repetitions to ``n_average``.
    * ``"ncsnr"``: noise-ceiling SNR (Allen et al. 2022): noise variance = mean within-stimulus variance,
      signal variance = total variance - noise variance, ``ncsnr = sd_signal / sd_noise``, and the
      explainable fraction for means of ``n`` trials is ``ncsnr^2 / (ncsnr^2 + 1/n)``.

    Parameters
    ----------
    brain : xr.DataArray
        Single-trial responses with dim ``trial`` and a ``stimulus`` coordinate (e.g. ``(trial, voxel)``
        or ``(trial, channel, time)``).
    method : {"split_half", "ncsnr"}
    n_average : float, optional
        Number of trials averaged in the data the model predicts: 1 for single-trial targets, the number
        of repetitions (default) for stimulus means.
    n_splits : int
        Random split-halves (split_half only).
    random_state : int

    Returns
    -------
    xr.Dataset
        Over the brain's non-trial dims: ``r2`` (explainable variance fraction, the ceiling of R^2),
        ``r`` (its square root, the ceiling of Pearson r), and ``split_half_r`` or ``ncsnr``.

    Examples
    --------
    >>> import neurobridge as nb
    >>> rng = np.random.default_rng(0); s = rng.normal(size=(50, 4))
    >>> b = nb.core.fmri_responses(np.vstack([s, s, s, s]) + rng.normal(size=(200, 4)), stimulus=np.tile(np.arange(50), 4))
    >>> nc = noise_ceiling(b, n_average=1)
    >>> bool(abs(float(nc.r2.mean()) - 0.5) < 0.1)  # signal and noise variance are equal
    True
    """
    Y, codes, keep, counts, template = _trials_by_stimulus(brain)
    k = float(np.median(counts[keep]))
    n_avg = k if n_average is None else float(n_average)
    if n_avg <= 0:
        raise ValueError(f"n_average must be > 0, got {n_average}")
    data = {}
    if method == "split_half":
        rng = np.random.default_rng(random_state)
        members = [np.flatnonzero(codes == c) for c in keep]
        rs = []
        for _ in range(n_splits):
            a = np.empty((len(keep), Y.shape[1]))
            b = np.empty_like(a)
            for i, m in enumerate(members):
                perm = rng.permutation(m)
                h = len(perm) // 2
                a[i] = Y[perm[:h]].mean(0)
                b[i] = Y[perm[h: 2 * h]].mean(0)
            a -= a.mean(0)
            b -= b.mean(0)
            den = np.sqrt((a**2).sum(0) * (b**2).sum(0))
            rs.append(np.where(den > 0, (a * b).sum(0) / np.where(den > 0, den, 1), 0.0))
        r_half = np.mean(rs, axis=0)
        half = np.floor(k / 2)
        r2 = _spearman_brown(r_half, n_avg / half)
        data["split_half_r"] = r_half
    elif method == "ncsnr":
        noise_var = np.zeros(Y.shape[1])
        dof = 0
        for c in keep:
            m = Y[codes == c]
            noise_var += ((m - m.mean(0)) ** 2).sum(0)
            dof += len(m) - 1
        noise_var /= dof
        sel = np.isin(codes, keep)
        total_var = Y[sel].var(0, ddof=1)
        signal_var = np.clip(total_var - noise_var, 0, None)
        ncsnr = np.sqrt(signal_var) / np.sqrt(np.where(noise_var > 0, noise_var, np.nan))
        r2 = ncsnr**2 / (ncsnr**2 + 1.0 / n_avg)
        data["ncsnr"] = ncsnr
    else:
        raise ValueError(f"method must be 'split_half' or 'ncsnr', got {method!r}")
    data["r2"] = r2
    data["r"] = np.sqrt(np.clip(r2, 0, None))
    out = {}
    for name, v in data.items():
        out[name] = template.copy(data=np.asarray(v).reshape(template.shape)).rename(name)
    return xr.Dataset(out, attrs={"method": method, "n_average": n_avg, "n_repetitions": k})


def normalized_score(score: xr.DataArray, ceiling: xr.Dataset | xr.DataArray, *, metric: str | None = None,
                     min_ceiling: float = 1e-3) -> xr.DataArray:
    """Score divided by the noise ceiling of the same metric (NaN where the ceiling is below ``min_ceiling``).

    Parameters
    ----------
    score : xr.DataArray
        E.g. ``fit_encoding(...).score`` (attr ``metric`` "r2" or "correlation").
    ceiling : xr.Dataset from :func:`noise_ceiling`, or a DataArray of ceilings
    metric : {"r2", "correlation"}, optional
        Default: ``score.attrs["metric"]``.
    min_ceiling : float

    Examples
    --------
    >>> s = xr.DataArray([0.2, 0.1], dims="voxel")
    >>> c = xr.Dataset({"r2": ("voxel", [0.4, 0.0]), "r": ("voxel", [0.63, 0.0])})
    >>> normalized_score(s, c, metric="r2").values.tolist()
    [0.5, nan]
    """
    if isinstance(ceiling, xr.Dataset):
        metric = metric or score.attrs.get("metric", "r2")
        key = {"r2": "r2", "correlation": "r", "r": "r"}.get(metric)
        if key is None:
            raise ValueError(f"metric must be 'r2' or 'correlation', got {metric!r}")
        ceiling = ceiling[key]
    ceiling = ceiling.reset_coords(drop=True) if isinstance(ceiling, xr.DataArray) else ceiling
    out = score / ceiling.where(ceiling >= min_ceiling)
    out.attrs = {**score.attrs, "normalized": "noise ceiling"}
    return out.rename("normalized_score")


def variance_partitioning(features: Mapping[str, xr.DataArray], brain: xr.DataArray, *, estimator=None,
                          **fit_kwargs) -> xr.Dataset:
    """Unique and shared variance of every feature space (set-theoretic partitioning of held-out R^2).

    Fits one cross-validated model per non-empty subset of the feature spaces (2 spaces: 3 models; 3
    spaces: 7) and solves for the Venn regions by inclusion-exclusion: the region shared by exactly the
    spaces in ``S`` (and none of the others, ``C``) is
    ``sum_{T subset of S, T non-empty} (-1)^(|T|+1) R2(C | T) - R2(C)``. With two spaces:
    ``unique A = R2(A+B) - R2(B)``, ``shared = R2(A) + R2(B) - R2(A+B)``.

    Parameters
    ----------
    features : mapping name -> xr.DataArray (stimulus, unit)
    brain : xr.DataArray
    estimator : sklearn regressor, optional
        Default: ``RidgeCV`` on the concatenated spaces.
    **fit_kwargs
        Passed to :func:`fit_encoding` (``cv``, ``groups``, ``alphas``, ...); scoring is R^2.

    Returns
    -------
    xr.Dataset
        ``r2`` (model, ...) held-out R^2 of each subset model (labels like ``"a+b"``), ``partition``
        (region, ...) with regions ``"unique:a"``, ``"shared:a&b"``, ..., and ``unique`` (space, ...).

    Examples
    --------
    >>> import neurobridge as nb
    >>> rng = np.random.default_rng(0); ids = np.arange(200)
    >>> fa, fb = rng.normal(size=(200, 3)), rng.normal(size=(200, 3))
    >>> y = fa @ np.ones((3, 2)) + fb @ np.ones((3, 2)) + rng.normal(size=(200, 2))
    >>> feats = {"a": nb.core.activations(fa, stimulus=ids), "b": nb.core.activations(fb, stimulus=ids)}
    >>> vp = variance_partitioning(feats, nb.core.fmri_responses(y, stimulus=ids, dim="stimulus"), progress=False)
    >>> vp.partition.region.values.tolist()
    ['unique:a', 'unique:b', 'shared:a&b']
    """
    from ._estimators import RidgeCV
    from ._labelled import fit_encoding

    names = list(features)
    if len(names) < 2:
        raise ValueError(f"variance partitioning needs >= 2 feature spaces, got {names}")
    if len(names) > 5:
        raise ValueError(f"variance partitioning of {len(names)} spaces needs {2 ** len(names) - 1} models; use <= 5")
    fit_kwargs.pop("scoring", None)
    est = estimator
    if est is None:
        est = RidgeCV(alphas=fit_kwargs.pop("alphas")) if "alphas" in fit_kwargs else RidgeCV()
    r2 = {}
    labels = []
    for size in range(1, len(names) + 1):
        for combo in itertools.combinations(names, size):
            sub = {k: features[k] for k in combo}
            res = fit_encoding(sub, brain, estimator=est, scoring="r2", **fit_kwargs)
            r2[frozenset(combo)] = res.score
            labels.append("+".join(combo))
    template = next(iter(r2.values()))
    explained = xr.concat([r2[frozenset(lbl.split("+"))] for lbl in labels], dim="model").assign_coords(model=labels)
    regions, values = [], []
    allset = frozenset(names)
    for size in range(1, len(names) + 1):
        for S in itertools.combinations(names, size):
            S = frozenset(S)
            comp = allset - S
            total = -r2[comp] if comp else xr.zeros_like(template)
            for tsize in range(1, len(S) + 1):
                for T in itertools.combinations(sorted(S), tsize):
                    total = total + (-1) ** (len(T) + 1) * r2[comp | frozenset(T)]
            ordered = [n for n in names if n in S]
            regions.append(("unique:" if len(S) == 1 else "shared:") + "&".join(ordered))
            values.append(total)
    partition = xr.concat(values, dim="region").assign_coords(region=regions)
    unique = partition.sel(region=[f"unique:{n}" for n in names]).assign_coords(region=names).rename(region="space")
    return xr.Dataset({"r2": explained, "partition": partition, "unique": unique}, attrs={"spaces": names})
