"""SAE latents against brain data: latent codes as labelled arrays, latents as encoding features, latent -> voxel /
channel maps, top-activating stimuli, selectivity to stimulus labels, and SAEs trained on brain responses.

Numerics are pure torch / numpy functions (``pearson_matrix``, ``rank_auc``, ``dprime``, ``stable_top``); the
public functions are thin labelled entry points over them and over :func:`neurobridge.encoding.fit_encoding`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd
import torch
import xarray as xr

from neurobridge.core import check_finite, stimulus_ids
from neurobridge.encoding import DEFAULT_ALPHAS, RidgeCV, fit_encoding, make_folds, prepare_design
from neurobridge.encoding._labelled import _unflatten, resolve_gap

from ._config import NMF_CONFIGS
from ._model import as_matrix

__all__ = ["latent_codes", "latent_encoding", "latent_brain_map", "top_stimuli", "latent_selectivity",
           "brain_sae_input", "latent_patterns", "train_brain_sae", "BrainSAE",
           "pearson_matrix", "rank_auc", "dprime", "stable_top"]

_POOLS = (None, "max", "mean")
_METRICS = ("auc", "dprime")


# -- pure numerics ---------------------------------------------------------------------------------------------------

def pearson_matrix(X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of every column of ``X`` (n, p) with every column of ``Y`` (n, t), shape ``(p, t)``.

    Computed in float64; a constant column (e.g. a latent that never fires) gives NaN in its row / column.

    Examples
    --------
    >>> X = torch.tensor([[0.0, 1.0], [1.0, 1.0], [2.0, 1.0]])
    >>> pearson_matrix(X, torch.tensor([[0.0], [1.0], [3.0]])).round(decimals=4).tolist()
    [[0.982], [nan]]
    """
    X = X.to(torch.float64)
    Y = Y.to(device=X.device, dtype=torch.float64)
    Xc = X - X.mean(0)
    Yc = Y - Y.mean(0)
    xs = Xc.square().sum(0).sqrt()
    ys = Yc.square().sum(0).sqrt()
    num = Xc.T @ Yc
    den = xs[:, None] * ys[None, :]
    return torch.where(den > 0, num / torch.where(den > 0, den, torch.ones_like(den)),
                       torch.full_like(num, float("nan")))


def _ranks(X: torch.Tensor) -> torch.Tensor:
    """1-based ranks of every column of ``X`` (n, p), ties given their average rank (float64)."""
    from scipy.stats import rankdata

    return torch.from_numpy(rankdata(X.detach().cpu().numpy(), axis=0, method="average")).to(torch.float64)


def rank_auc(ranks: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """ROC AUC (Mann-Whitney U / n1 n0, ties counted 1/2) from column ranks, for one or many label vectors.

    Parameters
    ----------
    ranks : tensor, shape (n, p)
        Average ranks of each column (``scipy.stats.rankdata(X, axis=0)``); labels can be permuted without ranking
        again, which makes permutation nulls one matrix product.
    positive : bool tensor, shape (n,) or (m, n)
        The positive samples (``m`` label vectors with the same number of positives).

    Returns
    -------
    tensor, shape (p,) or (m, p)

    Examples
    --------
    >>> r = torch.tensor([[1.0], [2.5], [2.5], [4.0]])    # ranks of scores 0, 1, 1, 2
    >>> rank_auc(r, torch.tensor([False, True, False, True])).tolist()  # sklearn.metrics.roc_auc_score: 0.875
    [0.875]
    """
    ranks = ranks.to(torch.float64)
    pos = positive.to(device=ranks.device, dtype=torch.float64)
    n1 = pos.sum(-1, keepdim=True)
    n0 = pos.shape[-1] - n1
    return (pos @ ranks - n1 * (n1 + 1) / 2) / (n1 * n0)


def dprime(X: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """Sensitivity index ``(mean_1 - mean_0) / sqrt((var_1 + var_0) / 2)`` (variances with ``ddof=1``) per column.

    Parameters
    ----------
    X : tensor, shape (n, p)
    positive : bool tensor, shape (n,) or (m, n)
        Positive samples; each class needs >= 2 samples. A column constant in both classes gives NaN.

    Returns
    -------
    tensor, shape (p,) or (m, p), float64

    Examples
    --------
    >>> X = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    >>> dprime(X, torch.tensor([False, False, True, True])).round(decimals=6).tolist()  # (2.5 - 0.5) / sqrt(0.5)
    [2.828427]
    """
    X = X.to(torch.float64)
    pos = positive.to(device=X.device, dtype=torch.float64)
    neg = 1.0 - pos
    n1 = pos.sum(-1, keepdim=True)
    n0 = neg.sum(-1, keepdim=True)
    s1, s0 = pos @ X, neg @ X
    q1, q0 = pos @ X.square(), neg @ X.square()
    m1, m0 = s1 / n1, s0 / n0
    v1 = ((q1 - n1 * m1.square()) / (n1 - 1)).clamp_min(0)
    v0 = ((q0 - n0 * m0.square()) / (n0 - 1)).clamp_min(0)
    sd = ((v1 + v0) / 2).sqrt()
    diff = m1 - m0
    scale = X.abs().amax(0).clamp_min(1e-300)  # rounding of the one-pass variance: treat ~0 spread as 0
    ok = sd > 1e-12 * scale
    return torch.where(ok, diff / torch.where(ok, sd, torch.ones_like(sd)), torch.full_like(diff, float("nan")))


def stable_top(X: torch.Tensor, n: int, *, chunk: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``n`` largest entries of every column of ``X`` (samples, p), largest first, ties in sample order.

    The same as ``np.argsort(-X, axis=0, kind="stable")[:n]``; columns are sorted in chunks of ``chunk``.

    Returns
    -------
    values, indices : tensors, shape (p, n)

    Examples
    --------
    >>> v, i = stable_top(torch.tensor([[1.0], [3.0], [3.0], [2.0]]), 3)
    >>> i.tolist(), v.tolist()
    ([[1, 2, 3]], [[3.0, 3.0, 2.0]])
    """
    vals, idxs = [], []
    for s in range(0, X.shape[1], chunk):
        v, i = torch.sort(X[:, s:s + chunk].T, dim=1, descending=True, stable=True)
        vals.append(v[:, :n])
        idxs.append(i[:, :n])
    if not vals:
        return X.new_zeros((0, n)), torch.zeros((0, n), dtype=torch.int64)
    return torch.cat(vals), torch.cat(idxs)


# -- latent codes ----------------------------------------------------------------------------------------------------

def _model_of(sae, who: str):
    model = getattr(sae, "model_", sae)  # a fitted SparseDictionary wraps the model
    if not (hasattr(model, "encode") and hasattr(getattr(model, "config", None), "n_latents")):
        raise TypeError(f"{who}: expected an SAE, SemiNMF, NMF (nb.sae.train_sae / fit_nmf) or a fitted "
                        f"nb.sae.SparseDictionary, got {type(sae).__name__}")
    return model


def _unpack_activations(activations, mask):
    """A DataArray of activations and an optional token mask from a DataArray, a Dataset or a DataTree node."""
    if isinstance(activations, xr.DataTree):
        activations = activations.to_dataset()
    if isinstance(activations, xr.Dataset):
        if "activations" not in activations:
            raise ValueError(f"expected a Dataset with an 'activations' variable (an nb.extract.activations node), "
                             f"found variables {list(activations.data_vars)}")
        if mask is None and "token_mask" in activations:
            mask = activations["token_mask"]
        activations = activations["activations"]
    if not isinstance(activations, xr.DataArray):
        raise TypeError(f"expected activations as an xr.DataArray with a 'unit' dim (e.g. nb.core.activations(X, "
                        f"stimulus=ids)), got {type(activations).__name__}")
    if "unit" not in activations.dims or activations.ndim < 2:
        raise ValueError(f"expected activations with dims (stimulus|token|trial|sample, ..., unit), got dims "
                         f"{activations.dims}; name the feature dim 'unit' (da.rename(...)) or prepare brain data "
                         "with nb.sae.brain_sae_input")
    return activations, mask


def latent_codes(
    sae, activations, *, pool: Literal["max", "mean"] | None = None, mask=None, batch_size: int = 4096,
) -> xr.DataArray:
    """Dense latent codes of ``sae`` on labelled activations, with the activations' sample coords kept.

    Parameters
    ----------
    sae : SAE, SemiNMF, NMF or fitted SparseDictionary
    activations : xr.DataArray, xr.Dataset or xr.DataTree node
        Dims ``(sample_dim, [token dims ...], unit)``: ``(stimulus, unit)``, ``(trial, unit)``, ``(stimulus, space,
        unit)`` before pooling, the output of :func:`brain_sae_input`, ... Every entry along the token dims is
        encoded on its own. A Dataset / DataTree node of :func:`neurobridge.extract.activations` gives its
        ``activations`` and, if present, ``token_mask``.
    pool : {None, "max", "mean"}
        Pool the codes over the token dims (``max`` is the usual per-stimulus latent activation for top-activating
        stimuli); ignored when there are none.
    mask : bool array-like or DataArray over the sample and token dims, optional
        Valid tokens (padded ones are left out of the pooling and get code 0).
    batch_size : int
        Inputs encoded at once.

    Returns
    -------
    xr.DataArray
        ``(sample_dim, [token dims], latent)`` float32 (token dims dropped by ``pool``), named ``latents``, with
        every coordinate of the activations that is not on ``unit`` (``stimulus``, ``category``, a MultiIndex
        ``sample``, ...), ``latent`` = 0..n_latents-1, attrs ``variant``, ``n_latents`` (and the activations'
        ``layer`` / ``model``).

    Raises
    ------
    TypeError
        Not a fitted model, or activations not a DataArray.
    ValueError
        No ``unit`` dim, a unit count other than the SAE's ``d_in``, an unknown ``pool``.
    SchemaError
        Non-finite activations.

    Examples
    --------
    >>> import neurobridge as nb
    >>> sim = nb.datasets.simulate_sparse_codes(200, 8, 16, k=2, random_state=0)
    >>> sae = nb.sae.SAE(nb.sae.TopKConfig(n_latents=32, k=2, d_in=8))
    >>> z = nb.sae.latent_codes(sae, sim.data)
    >>> z.dims, z.sizes["latent"], int((z > 0).sum("latent").max())
    (('stimulus', 'latent'), 32, 2)
    """
    model = _model_of(sae, "latent_codes")
    activations, mask = _unpack_activations(activations, mask)
    if pool not in _POOLS:
        raise ValueError(f"latent_codes: pool must be None, 'max' or 'mean', got {pool!r}")
    if int(batch_size) < 1:
        raise ValueError(f"latent_codes: batch_size must be >= 1, got {batch_size}")
    d_in = int(model.config.d_in)
    if activations.sizes["unit"] != d_in:
        raise ValueError(f"latent_codes: activations have {activations.sizes['unit']} units but the SAE has d_in="
                         f"{d_in}; pass the layer (and pooling) the SAE was trained on")
    da = activations.transpose(..., "unit")
    lead = da.dims[:-1]
    X, _ = as_matrix(np.asarray(da.data).reshape(-1, d_in), "activations")
    n_lat = int(model.config.n_latents)
    out = np.zeros((X.shape[0], n_lat), dtype=np.float32)
    with torch.no_grad():
        for s in range(0, X.shape[0], int(batch_size)):
            code = model.encode(X[s:s + int(batch_size)])
            out[s:s + int(batch_size)] = code.to_dense(n_lat).float().cpu().numpy()
    template = da.isel(unit=0, drop=True)
    codes = xr.DataArray(out.reshape(*template.shape, n_lat), dims=(*lead, "latent"), coords=template.coords,
                         name="latents")
    codes = codes.assign_coords(latent=np.arange(n_lat))
    token_dims = list(lead[1:])
    if mask is not None and token_dims:
        m = mask if isinstance(mask, xr.DataArray) else xr.DataArray(np.asarray(mask), dims=lead[:np.ndim(mask)])
        m = m.astype(bool)
        missing = [d for d in m.dims if d not in lead]
        if missing:
            raise ValueError(f"latent_codes: mask has dims {m.dims}, expected dims among {lead}")
        m = m.drop_vars([c for c in m.coords if c not in m.dims], errors="ignore")
        codes = codes.where(m, 0.0)
    if pool is not None and token_dims:
        if pool == "max":
            codes = codes.max(token_dims)
        elif mask is not None:
            count = m.sum([d for d in token_dims if d in m.dims]).clip(min=1)
            codes = codes.sum(token_dims) / count
        else:
            codes = codes.mean(token_dims)
        codes = codes.astype(np.float32)
    attrs = {k: v for k, v in activations.attrs.items() if k in ("layer", "model", "modality", "source")}
    attrs.update(variant=str(getattr(model.config, "variant", type(model).__name__)), n_latents=n_lat)
    if pool is not None and token_dims:
        attrs["pool"] = pool
    codes.attrs = attrs
    codes.name = "latents"
    return codes


def _check_latents(latents, who: str) -> tuple[xr.DataArray, str]:
    """A ``(sample_dim, latent)`` DataArray and its sample dim."""
    if not isinstance(latents, xr.DataArray):
        raise TypeError(f"{who}: expected latents as an xr.DataArray with dims (stimulus|trial|sample, latent) "
                        f"(nb.sae.latent_codes), got {type(latents).__name__}")
    if "latent" not in latents.dims or latents.ndim != 2:
        raise ValueError(f"{who}: expected latents with dims (stimulus|trial|sample, latent), got dims "
                         f"{latents.dims}; pool the token dims first (nb.sae.latent_codes(..., pool='max'))")
    latents = latents.transpose(..., "latent")
    check_finite(latents, "latents")
    return latents, latents.dims[0]


def _as_units(latents: xr.DataArray) -> xr.DataArray:
    """Latent codes as ``unit`` features for the encoding entry points (latent labels kept as unit labels)."""
    out = latents.drop_vars([c for c in latents.coords if latents[c].dims == ("latent",) and c != "latent"])
    return out.rename(latent="unit")


# -- (a) latents as encoding features ---------------------------------------------------------------------------------

def _aligned_sample_labels(brain: xr.DataArray, features: xr.DataArray, n: int, average_repetitions: bool):
    """Stimulus ids of the rows of :func:`prepare_design` (brain order, stimuli with features), or None."""
    if "stimulus" not in brain.coords or not ({"trial", "stimulus"} & set(brain.dims)):
        return None
    from neurobridge.core import average_repetitions as _avg

    b = _avg(brain) if (average_repetitions and "trial" in brain.dims) else brain
    ids = stimulus_ids(b)
    ids = ids[pd.Index(stimulus_ids(features)).get_indexer(ids) >= 0]
    return ids if len(ids) == n else None


def latent_encoding(
    sae, activations, brain: xr.DataArray, *, cv=5, groups=None, scoring: str = "correlation",
    alphas=DEFAULT_ALPHAS, estimator=None, average_repetitions: bool = False, gap: int | str | None = "auto",
    n_permutations: int = 0, fdr_alpha: float = 0.05, random_state=0, pool: Literal["max", "mean"] | None = None,
    progress: bool | None = None,
) -> xr.Dataset:
    """Encoding models of ``brain`` from SAE latents and from the raw units they encode, on the same folds.

    The latent codes (:func:`latent_codes`) and the raw activations are both fitted with
    :func:`neurobridge.encoding.fit_encoding`, with one list of outer folds made once from the raw-unit design
    (grouped by stimulus for repeated trials, contiguous with the same gap for time series) and passed to both, so
    every held-out score compares the two feature sets on exactly the same held-out samples.

    Parameters
    ----------
    sae : SAE, SemiNMF, NMF, fitted SparseDictionary, or xr.DataArray
        The model, or its latent codes ``(stimulus|time, latent)`` already computed from ``activations``.
    activations : xr.DataArray
        The raw units, ``(stimulus, unit)`` or ``(time, unit)`` (``(stimulus, token dims, unit)`` with ``pool``).
    brain : xr.DataArray
        ``(trial|stimulus, voxel)``, ``(trial, channel, time)``, ``(time, voxel)``, ... as for ``fit_encoding``.
    cv, groups, scoring, alphas, estimator, average_repetitions, gap, n_permutations, fdr_alpha, random_state, progress
        As for :func:`neurobridge.encoding.fit_encoding` (``scoring`` defaults to ``"correlation"``: held-out r).
        ``gap="auto"`` is resolved once from the raw units (and the brain) and used for both fits.
    pool : {None, "max", "mean"}
        Pool token dims of ``activations`` (the raw units and the codes alike) to one vector per stimulus.

    Returns
    -------
    xr.Dataset
        Over the brain's target dims (with its coords and attrs) and ``features = ["units", "latents"]``:
        ``score`` (features, ...), ``score_fold`` / ``alpha`` / ``inner_score`` (features, fold, ...),
        ``difference`` (latents minus units), ``validation_fold`` (the outer fold of every sample row, with the
        ``stimulus`` ids of the rows when the data are stimulus-locked), and with ``n_permutations`` ``pvalue``,
        ``pvalue_fdr``, ``significant``, ``pooled_score`` (features, ...). Attrs ``metric``, ``n_folds``,
        ``n_units``, ``n_latents``, ``gap``.

    Raises
    ------
    ValueError
        Latent codes over other stimuli than the activations, bad ``scoring``, folds that do not fit the data.

    Examples
    --------
    >>> import neurobridge as nb
    >>> sim = nb.datasets.simulate_sparse_codes(200, 8, 16, k=2, random_state=0)
    >>> brain = nb.core.fmri_responses(sim.codes.values[:, :3], stimulus=sim.data["stimulus"].values, dim="stimulus")
    >>> sae = nb.sae.SAE(nb.sae.TopKConfig(n_latents=32, k=2, d_in=8))
    >>> res = nb.sae.latent_encoding(sae, sim.data, brain, alphas=[0.1, 10.0], progress=False)
    >>> res.score.dims, res.features.values.tolist()
    (('features', 'voxel'), ['units', 'latents'])
    """
    if isinstance(sae, xr.DataArray):
        codes, _ = _check_latents(sae, "latent_encoding")
    else:
        codes = latent_codes(sae, activations, pool=pool)
    raw, _ = _unpack_activations(activations, None)
    if pool is not None and raw.ndim > 2:
        token_dims = [d for d in raw.dims[1:] if d != "unit"]
        raw = raw.max(token_dims) if pool == "max" else raw.mean(token_dims)
    if raw.ndim != 2:
        raise ValueError(f"latent_encoding: raw activations have dims {raw.dims}; pass pool='max' or 'mean' to pool "
                         "the token dims, or pool them first")
    sdim = raw.transpose(..., "unit").dims[0]
    if sdim not in codes.dims:
        raise ValueError(f"latent_encoding: latents have dims {codes.dims} but the activations' samples are along "
                         f"{sdim!r}; compute the latents from these activations (nb.sae.latent_codes)")
    if sdim == "stimulus":
        a_ids, c_ids = pd.Index(stimulus_ids(raw)), pd.Index(stimulus_ids(codes))
        if not a_ids.sort_values().equals(c_ids.sort_values()):
            raise ValueError(f"latent_encoding: the latents cover {len(c_ids)} stimuli and the activations "
                             f"{len(a_ids)}, not the same ones; compute the latents from these activations")
    elif raw.sizes[sdim] != codes.sizes[sdim]:
        raise ValueError(f"latent_encoding: latents have {codes.sizes[sdim]} samples along {sdim!r}, the "
                         f"activations {raw.sizes[sdim]}; compute the latents from these activations")
    design = prepare_design(raw, brain, groups=groups, average_repetitions=average_repetitions)
    n = design.X.shape[0]
    gap_n = resolve_gap(design, gap)
    folds = make_folds(n, cv, design.groups, gap=gap_n)
    common = dict(estimator=estimator, cv=folds, groups=groups, scoring=scoring, alphas=alphas,
                  average_repetitions=average_repetitions, gap=gap_n, n_permutations=n_permutations,
                  fdr_alpha=fdr_alpha, random_state=random_state, progress=progress)
    res_units = fit_encoding(raw, brain, **common)
    res_latents = fit_encoding(_as_units(codes), brain, **common)
    keep = [v for v in res_units.data_vars if v in res_latents.data_vars and v not in ("weights", "prediction")]
    features = xr.DataArray(["units", "latents"], dims="features", name="features")
    ds = xr.concat([res_units[keep], res_latents[keep]], dim=features, coords="minimal", compat="override",
                   join="override", combine_attrs="override")
    ds["difference"] = ds["score"].sel(features="latents", drop=True) - ds["score"].sel(features="units", drop=True)
    ds["difference"].attrs = {"description": "held-out score of the latents minus that of the raw units"}
    fold_of = np.full(n, -1, dtype=np.int64)
    for f, (_, va) in enumerate(folds):
        fold_of[va] = f
    sample_coords = {"sample": np.arange(n)}
    labels = _aligned_sample_labels(brain, raw, n, average_repetitions) if design.sample_dim != "time" else None
    if labels is not None:
        sample_coords["stimulus_of_sample"] = ("sample", labels)
    ds["validation_fold"] = xr.DataArray(fold_of, dims="sample", coords=sample_coords)
    ds.attrs = {**res_units.attrs, "n_units": int(design.X.shape[1]), "n_latents": int(codes.sizes["latent"]),
                "n_folds": len(folds), "gap": int(gap_n)}
    ds.attrs.pop("n_features", None)
    return ds


# -- (b) latent -> voxel / channel maps ---------------------------------------------------------------------------

def latent_brain_map(
    latents: xr.DataArray, brain: xr.DataArray, *, method: Literal["correlation", "weights"] = "correlation",
    average_repetitions: bool = True, alphas=DEFAULT_ALPHAS, groups=None,
) -> xr.DataArray:
    """Which latents go with which voxels / channels: a ``(latent, <brain target dims>)`` map.

    Parameters
    ----------
    latents : xr.DataArray (stimulus|time, latent)
        From :func:`latent_codes`.
    brain : xr.DataArray
        As for :func:`neurobridge.encoding.fit_encoding`; aligned with the latents on ``stimulus`` (or ``time``).
    method : {"correlation", "weights"}
        ``"correlation"``: Pearson r of every latent with every target over the samples (NaN for a latent that is
        constant, e.g. dead, on them). ``"weights"``: the weights of one ridge model from all latents (z-scored,
        so weights compare across latents; dead latents get 0) to every target, fitted on all samples with the
        alpha of each target chosen by 5-fold (grouped) cross-validation: the unique contribution of each latent.
    average_repetitions : bool
        Average repeated trials of a stimulus first (default).
    alphas : array
        Candidate alphas (``method="weights"``).
    groups : str or array, optional
        Groups for the alpha-selection folds, as for ``fit_encoding``.

    Returns
    -------
    xr.DataArray
        Dims ``("latent", *target dims)`` with the brain's target coords and attrs (voxel ``i, j, k`` and the grid
        attrs for :func:`neurobridge.io.to_nifti`, channel positions for topomaps); name ``correlation`` or
        ``weight``; attr ``method``.

    Examples
    --------
    >>> import neurobridge as nb
    >>> sim = nb.datasets.simulate_sparse_codes(300, 8, 16, k=2, random_state=0)
    >>> brain = nb.core.fmri_responses(sim.codes.values[:, [4, 9]], stimulus=sim.data["stimulus"].values,
    ...                                dim="stimulus")
    >>> m = nb.sae.latent_brain_map(sim.codes, brain)
    >>> m.dims, m.argmax("latent").values.tolist()
    (('latent', 'voxel'), [4, 9])
    """
    latents, sdim = _check_latents(latents, "latent_brain_map")
    if method not in ("correlation", "weights"):
        raise ValueError(f"latent_brain_map: method must be 'correlation' or 'weights', got {method!r}")
    labels = latents["latent"].values if "latent" in latents.coords else np.arange(latents.sizes["latent"])
    if sdim not in ("stimulus", "time"):
        raise ValueError(f"latent_brain_map: latents must be over 'stimulus' (or 'time'), got dim {sdim!r}; "
                         "compute them from (stimulus, unit) activations")
    design = prepare_design(_as_units(latents), brain, groups=groups, average_repetitions=average_repetitions)
    X = torch.from_numpy(design.X)
    Y = torch.from_numpy(design.Y)
    if X.shape[0] < 3:
        raise ValueError(f"latent_brain_map: {X.shape[0]} shared samples; need at least 3")
    if method == "correlation":
        values = pearson_matrix(X, Y).numpy()
        name = "correlation"
    else:
        sd = X.std(0, correction=0)
        Xz = torch.where(sd > 0, (X - X.mean(0)) / torch.where(sd > 0, sd, torch.ones_like(sd)), torch.zeros_like(X))
        est = RidgeCV(alphas=alphas, cv=min(5, X.shape[0]))
        if design.groups is not None:
            ng = len(np.unique(design.groups))
            est.set_params(cv=max(2, min(5, ng)))
            est.fit(Xz.numpy(), design.Y, groups=design.groups)
        else:
            est.fit(Xz.numpy(), design.Y)
        values = np.asarray(est.coef_, dtype=float).reshape(design.Y.shape[1], -1).T
        values[~(sd > 0).numpy()] = 0.0  # constant (dead) latents: exactly 0, not solver round-off
        name = "weight"
    out = _unflatten(values, design.target_template, name, [("latent", labels)])
    out.attrs["method"] = method
    return out


# -- (c) top-activating stimuli ----------------------------------------------------------------------------------

def top_stimuli(latents: xr.DataArray, n: int = 9, *, latent: Sequence | None = None) -> xr.Dataset:
    """The ``n`` samples (stimuli, trials, time points) on which each latent is most active, with their labels.

    Parameters
    ----------
    latents : xr.DataArray (stimulus|trial|sample, latent)
        From :func:`latent_codes` (pool token dims first, e.g. ``pool="max"``).
    n : int
        How many per latent (at most the number of samples).
    latent : sequence, optional
        Latent labels to report (default all).

    Returns
    -------
    xr.Dataset
        Dims ``(latent, rank)``: ``activation`` (largest first; ties in sample order, as
        ``np.argsort(-x, kind="stable")``), ``index`` (position along the sample dim), and as coordinates every
        1-D coordinate of the sample dim at those positions (``stimulus`` ids, ``category``, ``time``, ...). A
        latent active on fewer than ``n`` samples has ``activation`` 0 in the remaining ranks.

    Examples
    --------
    >>> z = xr.DataArray([[0.0, 1.0], [2.0, 0.0], [1.0, 3.0]], dims=("stimulus", "latent"),
    ...                  coords={"stimulus": ["a", "b", "c"], "latent": [0, 1]})
    >>> top = top_stimuli(z, 2)
    >>> top.stimulus.values.tolist(), top.activation.values.tolist()
    ([['b', 'c'], ['c', 'a']], [[2.0, 1.0], [3.0, 1.0]])
    """
    latents, sdim = _check_latents(latents, "top_stimuli")
    if latent is not None:
        latents = latents.sel(latent=list(latent))
    n_samples = latents.sizes[sdim]
    if not 1 <= int(n) <= n_samples:
        raise ValueError(f"top_stimuli: n must be in [1, {n_samples}] (the number of samples), got {n}")
    n = int(n)
    values, index = stable_top(torch.from_numpy(np.asarray(latents.values)), n)
    idx = index.numpy()
    labels = latents["latent"].values if "latent" in latents.coords else np.arange(latents.sizes["latent"])
    coords: dict[str, Any] = {"latent": labels, "rank": np.arange(n)}
    index_names = set(latents.xindexes.get_all_coords(sdim)) if sdim in latents.xindexes else set()
    for name, coord in latents.coords.items():
        if coord.dims != (sdim,):
            continue
        vals = np.asarray(coord.values)
        if name == sdim and len(index_names) > 1:  # a MultiIndex: its levels come as their own coords
            continue
        coords[name] = (("latent", "rank"), vals[idx])
    return xr.Dataset({"activation": (("latent", "rank"), values.numpy()), "index": (("latent", "rank"), idx)},
                      coords=coords, attrs={"sample_dim": sdim, **{k: v for k, v in latents.attrs.items()
                                                                    if k in ("variant", "layer", "model")}})


# -- (d) selectivity to stimulus labels --------------------------------------------------------------------------

def _labels_of(latents: xr.DataArray, sdim: str, labels, name: str) -> np.ndarray:
    if isinstance(labels, str):
        if labels not in latents.coords or latents[labels].dims != (sdim,):
            on = [c for c in latents.coords if latents[c].dims == (sdim,)]
            raise ValueError(f"{name}: labels={labels!r} must name a coordinate on dim {sdim!r}; coordinates on it: "
                             f"{on}; or pass one label per sample")
        values = np.asarray(latents[labels].values)
    else:
        values = np.asarray(labels.values if isinstance(labels, xr.DataArray) else labels)
        if values.shape != (latents.sizes[sdim],):
            raise ValueError(f"{name}: expected one label per {sdim} ({latents.sizes[sdim]}), got shape {values.shape}")
    if pd.isna(pd.Series(values)).any():
        raise ValueError(f"{name}: labels contain missing values; drop those samples first")
    return values


def _default_groups(latents: xr.DataArray, sdim: str, groups) -> np.ndarray | None:
    if groups is None:
        if "stimulus" in latents.coords and latents["stimulus"].dims == (sdim,) and sdim != "stimulus":
            ids = np.asarray(latents["stimulus"].values)
            return ids if pd.Index(ids).has_duplicates else None
        return None
    if isinstance(groups, str):
        if groups not in latents.coords or latents[groups].dims != (sdim,):
            raise ValueError(f"latent_selectivity: groups={groups!r} must name a coordinate on dim {sdim!r}")
        return np.asarray(latents[groups].values)
    g = np.asarray(groups)
    if g.shape != (latents.sizes[sdim],):
        raise ValueError(f"latent_selectivity: expected one group per {sdim} ({latents.sizes[sdim]}), got {g.shape}")
    return g


def latent_selectivity(
    latents: xr.DataArray, labels, *, positive=None, metric: Literal["auc", "dprime"] = "auc",
    n_permutations: int = 0, groups=None, seed=0, fdr_alpha: float = 0.05,
) -> xr.Dataset:
    """How selective each latent is for a stimulus label: ROC AUC or d' of its activation, class vs rest.

    Parameters
    ----------
    latents : xr.DataArray (stimulus|trial|sample, latent)
        From :func:`latent_codes`.
    labels : str or array-like
        A coordinate on the sample dim (``"animal"``, ``"category"``) or one label per sample.
    positive : optional
        The class tested against the rest. Default: ``True`` for boolean labels, else every class in turn
        (one-vs-rest, a ``label`` dim).
    metric : {"auc", "dprime"}
        ``"auc"``: P(activation on a positive > on a negative), ties 1/2 (as ``sklearn.metrics.roc_auc_score``;
        0.5 = no selectivity, 1 = fires only for the class). ``"dprime"``: ``(mean_1 - mean_0) /
        sqrt((var_1 + var_0) / 2)``.
    n_permutations : int
        If > 0, two-sided permutation p-values (AUC against 0.5, d' against 0) from relabelling the samples (or the
        groups: labels must then be constant within each group), FDR-corrected over latents and labels.
    groups : str or array, optional
        Exchangeable units of the permutations; default the ``stimulus`` ids when the samples repeat stimuli
        (trials, or stimulus x time samples of :func:`brain_sae_input`), else the samples.
    seed : int
    fdr_alpha : float

    Returns
    -------
    xr.Dataset
        ``selectivity`` (latent[, label]) and, with permutations, ``pvalue``, ``pvalue_fdr``, ``significant``;
        ``n_positive`` (per label); attrs ``metric``, ``n_permutations``. A latent constant on the samples (dead)
        has AUC 0.5 and d' NaN.

    Examples
    --------
    >>> z = xr.DataArray([[0.0, 1.0], [0.0, 2.0], [3.0, 0.0], [2.0, 0.0]], dims=("stimulus", "latent"),
    ...                  coords={"stimulus": list("abcd"), "animal": ("stimulus", [False, False, True, True])})
    >>> latent_selectivity(z, "animal").selectivity.values.tolist()
    [1.0, 0.0]
    """
    latents, sdim = _check_latents(latents, "latent_selectivity")
    if metric not in _METRICS:
        raise ValueError(f"latent_selectivity: metric must be 'auc' or 'dprime', got {metric!r}")
    if int(n_permutations) < 0:
        raise ValueError(f"latent_selectivity: n_permutations must be >= 0, got {n_permutations}")
    values = _labels_of(latents, sdim, labels, "latent_selectivity")
    classes = pd.unique(values)
    if positive is None:
        if values.dtype == bool or set(classes.tolist()) <= {True, False}:
            positive = True
            tested = [True]
        else:
            tested = list(classes)
    else:
        if positive not in set(classes.tolist()):
            raise ValueError(f"latent_selectivity: positive={positive!r} is not among the labels {classes.tolist()}")
        tested = [positive]
    if len(classes) < 2:
        raise ValueError(f"latent_selectivity: labels have one class ({classes.tolist()}); need at least 2")
    pos = torch.from_numpy(np.stack([values == c for c in tested]))  # (n_classes, n)
    counts = pos.sum(1)
    need = 2 if metric == "dprime" else 1
    bad = [(c, int(k)) for c, k in zip(tested, counts.tolist(), strict=True)
           if k < need or pos.shape[1] - k < need]
    if bad:
        raise ValueError(f"latent_selectivity: classes {bad[:5]} (class, count) have fewer than {need} samples in "
                         f"the class or in the rest; {metric} needs {need} on each side")
    X = torch.from_numpy(np.asarray(latents.values, dtype=np.float64))
    if metric == "auc":
        R = _ranks(X)

        def stat(p):
            return rank_auc(R, p)
        center = 0.5
    else:
        def stat(p):
            return dprime(X, p)
        center = 0.0
    obs = stat(pos)  # (n_classes, latent)
    data: dict[str, Any] = {}
    lab_coords: dict[str, Any] = {"latent": latents["latent"].values}
    n_perm = int(n_permutations)
    if n_perm:
        from neurobridge.stats import fdr, permutation_indices

        g = _default_groups(latents, sdim, groups)
        if g is None:
            codes_g, n_g = np.arange(len(values)), len(values)
        else:
            codes_g, uniq = pd.factorize(g)
            n_g = len(uniq)
        gpos = np.zeros((len(tested), n_g), dtype=bool)
        for j in range(len(tested)):
            per = pd.Series(pos[j].numpy()).groupby(codes_g).agg(["min", "max"])
            if (per["min"] != per["max"]).any():
                raise ValueError("latent_selectivity: labels vary within a permutation group (a stimulus); pass "
                                 "groups= with units the labels are constant in, or groups=np.arange(n)")
            gpos[j] = per["max"].to_numpy()
        perms = permutation_indices(n_g, n_perm, seed=seed).numpy()
        exceed = torch.zeros_like(obs)
        valid = torch.zeros_like(obs)
        dev = (obs - center).abs()
        tol = 1e-12 * dev.clamp_min(1.0)
        for s in range(0, n_perm, 256):
            block = perms[s:s + 256]  # (b, n_groups)
            for j in range(len(tested)):
                null = (stat(torch.from_numpy(gpos[j][block][:, codes_g])) - center).abs()  # (b, latent)
                exceed[j] += (null >= dev[j] - tol[j]).sum(0).to(exceed.dtype)
                valid[j] += (~torch.isnan(null)).sum(0).to(valid.dtype)  # d' of a constant permuted class: NaN
        p = ((exceed + 1) / (valid + 1)).numpy()
        p = np.where(np.isnan(obs.numpy()), np.nan, p)
        finite = np.isfinite(p)
        p_fdr = np.full_like(p, np.nan)
        sig = np.zeros(p.shape, dtype=bool)
        if finite.any():
            res = fdr(p[finite], alpha=fdr_alpha)
            p_fdr[finite] = np.asarray(res.pvalues)
            sig[finite] = np.asarray(res.reject)
        data.update(pvalue=p, pvalue_fdr=p_fdr, significant=sig)
    one = positive is not None and len(tested) == 1
    dims = ("latent",) if one else ("latent", "label")
    out = {}
    for key, val in (("selectivity", obs.numpy()), *data.items()):
        arr = np.asarray(val)[0] if one else np.asarray(val).T
        out[key] = (dims, arr)
    coords = dict(lab_coords)
    if one:
        coords["n_positive"] = int(counts[0])
        coords["positive"] = tested[0]
    else:
        coords["label"] = np.asarray(tested)
        coords["n_positive"] = ("label", counts.numpy())
    attrs = {"metric": metric, "n_permutations": n_perm, "sample_dim": sdim}
    if isinstance(labels, str):
        attrs["labels"] = labels
    return xr.Dataset(out, coords=coords, attrs=attrs)


# -- (e) SAEs trained on brain responses --------------------------------------------------------------------------

_SAMPLE_DEFAULT = ("trial", "stimulus", "time")


def brain_sae_input(brain: xr.DataArray, *, sample_dims: str | Sequence[str] | None = None,
                    standardize: bool = True) -> xr.DataArray:
    """Brain responses as SAE inputs: a ``(sample, unit)`` DataArray with the brain's labels kept.

    Parameters
    ----------
    brain : xr.DataArray
        ``(trial|stimulus, voxel)``, ``(trial, channel, time)``, ``(stimulus, channel, time)``, ``(time, voxel)``,
        ``(channel, time)``, ...
    sample_dims : str or sequence of str, optional
        The dims whose entries are samples; every other dim is flattened into ``unit``. Default: the first of
        ``trial``, ``stimulus``, ``time`` present (so epochs give channels x time per trial). Several dims (e.g.
        ``("stimulus", "time")``: one sample per stimulus and time point, channels as units) are stacked into a
        ``sample`` MultiIndex (``latents.unstack("sample")`` puts them back).
    standardize : bool
        Z-score every unit over the samples (voxels / channels of different scales, e.g. MEG gradiometers and
        magnetometers, then count alike); a constant unit is centred only. The means and scales are kept as
        ``unit_mean`` / ``unit_scale`` coords (used by :func:`latent_patterns`).

    Returns
    -------
    xr.DataArray
        ``(sample_dim, unit)`` float; a single feature dim is renamed to ``unit`` (its coords, e.g. voxel ``i, j,
        k``, kept on ``unit``), several form a ``unit`` MultiIndex; attrs of the brain plus ``sae_sample_dims``
        and ``sae_unit_dims`` (the dims to restore).

    Raises
    ------
    ValueError
        Unknown dims, no feature dim left, fewer than 2 samples.
    SchemaError
        Non-finite values.

    Examples
    --------
    >>> import neurobridge as nb
    >>> ep = nb.core.eeg_epochs(np.random.default_rng(0).normal(size=(6, 3, 5)), sfreq=100.0,
    ...                         stimulus=list("abcabc"))
    >>> x = nb.sae.brain_sae_input(ep)
    >>> x.dims, x.sizes["unit"], x.attrs["sae_unit_dims"]
    (('trial', 'unit'), 15, ['channel', 'time'])
    """
    if not isinstance(brain, xr.DataArray):
        raise TypeError(f"brain_sae_input: expected an xr.DataArray, got {type(brain).__name__}")
    if sample_dims is None:
        found = [d for d in _SAMPLE_DEFAULT if d in brain.dims]
        if not found:
            raise ValueError(f"brain_sae_input: brain has none of the sample dims {_SAMPLE_DEFAULT} (dims "
                             f"{brain.dims}); pass sample_dims=...")
        sample_dims = [found[0]]
    elif isinstance(sample_dims, str):
        sample_dims = [sample_dims]
    sample_dims = list(sample_dims)
    unknown = [d for d in sample_dims if d not in brain.dims]
    if unknown or not sample_dims or len(set(sample_dims)) != len(sample_dims):
        raise ValueError(f"brain_sae_input: sample_dims {sample_dims} must be distinct dims of brain {brain.dims}")
    unit_dims = [d for d in brain.dims if d not in sample_dims]
    if not unit_dims:
        raise ValueError(f"brain_sae_input: every dim of brain {brain.dims} is a sample dim; leave at least one "
                         "(voxel, channel, ...) as the SAE's units")
    if "unit" in brain.dims or (len(sample_dims) > 1 and "sample" in brain.dims):
        raise ValueError(f"brain_sae_input: brain already has a 'unit' or 'sample' dim ({brain.dims}); rename it")
    check_finite(brain, "brain")
    da = brain
    if len(sample_dims) > 1:
        da = da.stack(sample=sample_dims)
        sdim = "sample"
    else:
        sdim = sample_dims[0]
    da = da.stack(unit=unit_dims) if len(unit_dims) > 1 else da.rename({unit_dims[0]: "unit"})
    da = da.transpose(sdim, "unit")
    if da.sizes[sdim] < 2:
        raise ValueError(f"brain_sae_input: {da.sizes[sdim]} sample(s) along {sdim!r}; an SAE needs many samples "
                         "(use sample_dims=('stimulus', 'time') to make every time point a sample)")
    values = np.asarray(da.values, dtype=np.float64)
    attrs = {**brain.attrs, "sae_sample_dims": list(sample_dims), "sae_unit_dims": list(unit_dims)}
    if standardize:
        mean = values.mean(0)
        scale = values.std(0)
        scale = np.where(scale > 0, scale, 1.0)
        values = (values - mean) / scale
        da = da.copy(data=values.astype(np.float32)).assign_coords(unit_mean=("unit", mean),
                                                                     unit_scale=("unit", scale))
    else:
        da = da.copy(data=values.astype(np.float32))
    da.attrs = attrs
    da.name = "sae_input"
    return da


def latent_patterns(sae, sae_input: xr.DataArray) -> xr.DataArray:
    """The brain pattern each latent writes: its decoder row, in the brain's units and dims.

    Parameters
    ----------
    sae : SAE, SemiNMF, NMF or fitted SparseDictionary
        Trained on ``sae_input``.
    sae_input : xr.DataArray
        From :func:`brain_sae_input` (its ``unit`` coords and ``unit_scale`` undo the flattening and scaling).

    Returns
    -------
    xr.DataArray
        ``(latent, *unit dims)``, e.g. ``(latent, voxel)`` with the voxel coords (ready for
        :func:`neurobridge.io.to_nifti`) or ``(latent, channel, time)``: the change of the reconstruction per unit
        of latent activation (times ``unit_scale`` when standardised), named ``pattern``.

    Examples
    --------
    >>> import neurobridge as nb
    >>> b = nb.core.fmri_responses(np.random.default_rng(0).normal(size=(20, 4)), stimulus=np.arange(20))
    >>> x = nb.sae.brain_sae_input(b)
    >>> sae = nb.sae.SAE(nb.sae.TopKConfig(n_latents=8, k=2, d_in=4))
    >>> nb.sae.latent_patterns(sae, x).dims
    ('latent', 'voxel')
    """
    model = _model_of(sae, "latent_patterns")
    if not isinstance(sae_input, xr.DataArray) or "unit" not in sae_input.dims or "sae_unit_dims" not in sae_input.attrs:
        raise ValueError("latent_patterns: sae_input must be the output of nb.sae.brain_sae_input (a DataArray with "
                         "a 'unit' dim and attr 'sae_unit_dims')")
    d_in = int(model.config.d_in)
    if sae_input.sizes["unit"] != d_in:
        raise ValueError(f"latent_patterns: sae_input has {sae_input.sizes['unit']} units, the SAE d_in={d_in}")
    W = model.W_dec.detach().to(torch.float64).cpu().numpy()
    scale = getattr(model, "input_scale", None)
    W = W / (1.0 if scale is None else float(scale))
    if "unit_scale" in sae_input.coords:
        W = W * np.asarray(sae_input["unit_scale"].values)[None, :]
    unit_coords = {k: c for k, c in sae_input.coords.items() if c.dims == ("unit",) and k not in ("unit_mean",
                                                                                                   "unit_scale")}
    pattern = xr.DataArray(W, dims=("latent", "unit"), coords={**unit_coords, "latent": np.arange(W.shape[0])},
                           name="pattern", attrs={k: v for k, v in sae_input.attrs.items()
                                                  if k not in ("sae_sample_dims", "sae_unit_dims")})
    unit_dims = list(sae_input.attrs["sae_unit_dims"])
    if len(unit_dims) > 1:
        pattern = pattern.unstack("unit").transpose("latent", *unit_dims)
    else:
        pattern = pattern.rename(unit=unit_dims[0])
    return pattern


class BrainSAE(NamedTuple):
    """What :func:`train_brain_sae` returns."""

    sae: Any
    """The trained SAE (or semi-NMF / NMF model)."""
    history: xr.Dataset
    """Training history (see :func:`neurobridge.sae.train_sae` / :func:`neurobridge.sae.fit_nmf`)."""
    inputs: xr.DataArray
    """The SAE inputs from :func:`brain_sae_input` ``(sample_dim, unit)``."""
    latents: xr.DataArray
    """``(sample_dim, latent)`` codes with the brain's sample coords (``stimulus``, ``time``, ...; a ``sample``
    MultiIndex for several sample dims: ``latents.unstack("sample")``)."""
    patterns: xr.DataArray
    """``(latent, *unit dims)`` decoder patterns in the brain's units (:func:`latent_patterns`)."""


def train_brain_sae(brain: xr.DataArray, config, *, sample_dims: str | Sequence[str] | None = None,
                    standardize: bool = True, **train_kwargs: Any) -> BrainSAE:
    """Train an SAE (or semi-NMF / NMF) on brain responses themselves: voxels, or channels x time, as its units.

    :func:`brain_sae_input`, then :func:`neurobridge.sae.train_sae` (or :func:`neurobridge.sae.fit_nmf` for a
    semi-NMF / NMF config), then :func:`latent_codes` and :func:`latent_patterns`.

    Parameters
    ----------
    brain : xr.DataArray
    config : an SAE config (TopKConfig, ...) or SemiNMFConfig / NMFConfig
    sample_dims, standardize
        As for :func:`brain_sae_input`.
    **train_kwargs
        Passed on to ``train_sae`` (``epochs``, ``n_tokens``, ``batch_size``, ``lr``, ``seed``, ``device``,
        ``progress``) or ``fit_nmf`` (``n_iter``, ``seed``, ...).

    Returns
    -------
    BrainSAE
        ``(sae, history, inputs, latents, patterns)``.

    Examples
    --------
    >>> import neurobridge as nb
    >>> b = nb.core.fmri_responses(np.random.default_rng(0).normal(size=(64, 6)), stimulus=np.arange(64))
    >>> res = nb.sae.train_brain_sae(b, nb.sae.TopKConfig(n_latents=12, k=2), epochs=2, batch_size=32,
    ...                              progress=False)
    >>> res.latents.dims, res.patterns.dims, res.latents["stimulus"].shape
    (('trial', 'latent'), ('latent', 'voxel'), (64,))
    """
    from ._nmf import fit_nmf
    from ._train import train_sae

    inputs = brain_sae_input(brain, sample_dims=sample_dims, standardize=standardize)
    if isinstance(config, NMF_CONFIGS):
        model, _, history = fit_nmf(inputs, config, **train_kwargs)
    else:
        model, history = train_sae(inputs, config, **train_kwargs)
    latents = latent_codes(model, inputs)
    return BrainSAE(model, history, inputs, latents, latent_patterns(model, inputs))
