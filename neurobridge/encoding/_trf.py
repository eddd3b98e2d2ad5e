"""Temporal response functions (TRF) for continuous M/EEG: lagged ridge from stimulus features to channels."""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..core import SchemaError, check_finite
from ._cv import make_folds
from ._delays import TimeDelayer
from ._estimators import RidgeCV
from ._labelled import _SCORES, Design, _crossval, resolve_gap
from ._solvers import DEFAULT_ALPHAS

__all__ = ["fit_trf"]


def _as_time_first(da: xr.DataArray, name: str) -> xr.DataArray:
    if "time" not in da.dims:
        raise SchemaError(f"{name} needs a 'time' dim, found {tuple(da.dims)}")
    if da.ndim == 1:
        da = da.expand_dims({"feature" if name == "stimulus" else "channel": [0]}, axis=1)
    if da.ndim != 2:
        raise SchemaError(f"{name} must be 2-d (time x {'feature' if name == 'stimulus' else 'channel'}), "
                          f"found dims {tuple(da.dims)}")
    return da.transpose("time", ...)


def fit_trf(stimulus: xr.DataArray, response: xr.DataArray, *, tmin: float, tmax: float, sfreq: float | None = None,
            alphas=DEFAULT_ALPHAS, cv: int = 5, scoring: str = "correlation", fill: str = "zero",
            gap: int | str | None = "auto", progress: bool | None = None) -> xr.Dataset:
    """Temporal response function: ridge on time-lagged stimulus features, per channel.

    Folds are contiguous blocks of time (never LOO/GCV: neighbouring samples are autocorrelated) with a gap
    on each side of every validation block, the alpha of each channel is chosen by inner contiguous K-fold
    (with the same gap) on the training blocks, and the held-out score is averaged over outer folds. Weights
    come from a final fit on all samples.

    Parameters
    ----------
    stimulus : xr.DataArray, dims (time[, feature])
        Stimulus features (envelope, word-onset embeddings, ...) at the response's sampling rate.
    response : xr.DataArray, dims (channel, time) or (time, channel)
        Continuous M/EEG, e.g. ``nb.core.eeg_raw`` or ``nb.io.from_mne(raw)``.
    tmin, tmax : float
        Lag range in seconds (positive lags: the response follows the stimulus).
    sfreq : float, optional
        Sampling rate (default: ``response.attrs["sfreq"]``).
    alphas : array
    cv : int
        Number of contiguous outer (and inner) folds.
    scoring : {"correlation", "r2"}
    fill : {"zero", "mean"}
        Padding of the lagged design (MNE uses "mean" when fitting an intercept).
    gap : int, "auto" or None
        Samples dropped from training on each side of a validation block. ``"auto"`` (default): the
        autocorrelation length of stimulus x response (:func:`neurobridge.stats.autocorrelation_length`) plus
        the largest lag, so no lagged training row overlaps a held-out one.
    progress : bool, optional

    Returns
    -------
    xr.Dataset
        ``weights`` (lag, feature, channel), ``score`` (channel) held-out, ``score_fold`` and ``alpha``
        (fold, channel), ``alpha_full`` (channel) of the final fit; ``lag`` in seconds.

    Examples
    --------
    >>> import neurobridge as nb
    >>> rng = np.random.default_rng(0); env = rng.normal(size=2000)
    >>> eeg = np.stack([np.convolve(env, [0, 0.5, 1.0, 0.5])[:2000]]) + 0.5 * rng.normal(size=(1, 2000))
    >>> res = fit_trf(xr.DataArray(env, dims="time"), nb.core.eeg_raw(eeg, sfreq=100.0), tmin=0.0, tmax=0.05,
    ...               alphas=[1e-2, 1.0, 100.0], progress=False)
    >>> int(res.weights.isel(feature=0, channel=0).argmax("lag")), bool(res.score > 0.8)
    (2, True)
    """
    if scoring not in _SCORES:
        raise ValueError(f"scoring must be 'r2' or 'correlation', got {scoring!r}")
    resp = _as_time_first(response, "response")
    stim = _as_time_first(stimulus, "stimulus")
    check_finite(resp, "response")
    check_finite(stim, "stimulus")
    if stim.sizes["time"] != resp.sizes["time"]:
        raise SchemaError(f"stimulus has {stim.sizes['time']} time points but response has {resp.sizes['time']}; "
                          "resample the stimulus features to the response's sampling rate and length")
    if sfreq is None:
        sfreq = resp.attrs.get("sfreq")
        if sfreq is None:
            raise SchemaError("response has no 'sfreq' attr; pass sfreq=...")
    sfreq = float(sfreq)
    delayer = TimeDelayer(tmin=tmin, tmax=tmax, sfreq=sfreq, fill=fill)
    X = delayer.fit_transform(np.asarray(stim.values, dtype=float))
    Y = np.asarray(resp.values, dtype=float)
    n = len(Y)
    inner_cv = max(2, min(int(cv), 5))
    est = RidgeCV(alphas=alphas, cv=inner_cv, scoring=scoring)
    tdim = resp.dims[1]
    template = resp.isel(time=0, drop=True)
    design = Design(np.asarray(stim.values, dtype=float).reshape(n, -1), Y, "time", template, None, None, None)
    gap_n = resolve_gap(design, gap, delays=int(np.abs(delayer.delays_).max()))
    design = design._replace(X=X)
    folds = make_folds(n, cv, gap=gap_n)
    _, fold_scores, fold_alphas, _ = _crossval(design, est, folds, _SCORES[scoring], progress, gap_n)
    full = RidgeCV(alphas=alphas, cv=make_folds(n, inner_cv, gap=gap_n) if gap_n else inner_cv,
                   scoring=scoring).fit(X, Y)
    n_feat = stim.sizes[stim.dims[1]]
    lags = delayer.lags_
    W = np.asarray(full.coef_, dtype=float).reshape(Y.shape[1], n_feat, len(lags))  # (channel, feature, lag)
    fdim = stim.dims[1]
    coords = {"lag": lags, "feature": np.asarray(stim[fdim].values) if fdim in stim.coords else np.arange(n_feat)}
    coords.update({k: v for k, v in template.coords.items()})
    weights = xr.DataArray(W.transpose(2, 1, 0), dims=("lag", "feature", tdim), coords=coords, name="weights",
                           attrs={"units": "response units per stimulus unit", "sfreq": sfreq})
    fold = np.arange(len(folds))
    ds = xr.Dataset({
        "weights": weights,
        "score": template.copy(data=fold_scores.mean(0)).rename("score"),
        "score_fold": xr.DataArray(fold_scores, dims=("fold", tdim), coords={"fold": fold, **template.coords}),
        "alpha": xr.DataArray(fold_alphas, dims=("fold", tdim), coords={"fold": fold, **template.coords}),
        "alpha_full": template.copy(data=np.asarray(full.alpha_, dtype=float).reshape(-1)).rename("alpha_full"),
    }, attrs={"metric": scoring, "tmin": float(tmin), "tmax": float(tmax), "sfreq": sfreq, "gap": gap_n})
    ds["score"].attrs = {"metric": scoring}
    return ds
