"""Design transformers: time-lagged copies of features (TRF/FIR) and HRF convolution to BOLD."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from ..core import optional_import

__all__ = ["TimeDelayer", "HRFConvolver", "delay_features"]


def delay_features(X, delays, *, fill: str = "zero"):
    """Stack time-shifted copies of ``X``: column ``f * n_delays + d`` holds feature ``f`` at lag ``delays[d]``.

    A positive delay ``d`` puts ``X[t - d]`` at row ``t`` (the stimulus precedes the response), as
    ``mne.decoding.ReceptiveField``; rows without a source sample get 0 (``fill="zero"``) or the feature
    mean (``fill="mean"``, what MNE does when it fits an intercept).

    Parameters
    ----------
    X : array or tensor, shape (n_times, n_features)
    delays : sequence of int
        Lags in samples.
    fill : {"zero", "mean"}

    Returns
    -------
    array or tensor, shape (n_times, n_features * n_delays)

    Examples
    --------
    >>> delay_features(np.arange(4.0)[:, None], [0, 1]).tolist()
    [[0.0, 0.0], [1.0, 0.0], [2.0, 1.0], [3.0, 2.0]]
    """
    delays = [int(d) for d in delays]
    is_torch = isinstance(X, torch.Tensor)
    lib = torch if is_torch else np
    n, p = X.shape
    out = (torch.zeros((n, p, len(delays)), dtype=X.dtype, device=X.device) if is_torch
           else np.zeros((n, p, len(delays)), dtype=X.dtype))
    mean = X.mean(0)
    for j, d in enumerate(delays):
        if fill == "mean":
            out[:, :, j] = mean
        elif fill != "zero":
            raise ValueError(f"fill must be 'zero' or 'mean', got {fill!r}")
        if abs(d) >= n:
            continue
        if d > 0:
            src, dst = X[:-d], slice(d, None)
        elif d < 0:
            src, dst = X[-d:], slice(None, d)
        else:
            src, dst = X, slice(None)
        out[dst, :, j] = src + ((mean - src.mean(0)) if fill == "mean" else 0)
    return out.reshape(n, p * len(delays)) if is_torch else lib.reshape(out, (n, p * len(delays)))


class TimeDelayer(TransformerMixin, BaseEstimator):
    """Lagged design for temporal response functions (TRF) and FIR models.

    Parameters
    ----------
    tmin, tmax : float
        Lag range in seconds (inclusive); positive lags model responses that follow the stimulus.
    sfreq : float
        Sampling rate of the features in Hz (lags in samples are ``round(t * sfreq)``).
    delays : sequence of int, optional
        Explicit lags in samples (override ``tmin``/``tmax``).
    fill : {"zero", "mean"}
        Value for rows before the first (after the last) sample.

    Attributes
    ----------
    delays_ : ndarray of int, lags in samples
    lags_ : ndarray of float, lags in seconds
    n_features_in_ : int

    Examples
    --------
    >>> TimeDelayer(tmin=0.0, tmax=0.2, sfreq=10.0).fit_transform(np.ones((5, 2))).shape
    (5, 6)
    """

    def __init__(self, tmin: float = 0.0, tmax: float = 4.0, sfreq: float = 1.0, *, delays=None, fill: str = "zero"):
        self.tmin = tmin
        self.tmax = tmax
        self.sfreq = sfreq
        self.delays = delays
        self.fill = fill

    def fit(self, X, y=None):
        """Record the number of features and the lags; returns self."""
        if isinstance(X, torch.Tensor):
            self.n_features_in_ = int(X.shape[1])
        else:
            validate_data(self, X, dtype=[np.float64, np.float32])
        if self.delays is not None:
            d = np.asarray(self.delays, dtype=int).ravel()
        else:
            if self.tmin > self.tmax:
                raise ValueError(f"tmin ({self.tmin}) must be <= tmax ({self.tmax})")
            d = np.arange(int(np.round(self.tmin * self.sfreq)), int(np.round(self.tmax * self.sfreq)) + 1)
        if len(d) == 0:
            raise ValueError("no delays: pass delays=[...] or tmin <= tmax")
        self.delays_ = d
        self.lags_ = d / float(self.sfreq)
        return self

    def transform(self, X):
        """Lagged copies, shape (n_times, n_features * n_delays), feature-major (as MNE's coef_ layout)."""
        check_is_fitted(self)
        if isinstance(X, torch.Tensor):
            if X.ndim != 2 or X.shape[1] != self.n_features_in_:
                raise ValueError(f"X has {X.shape[-1]} features, but TimeDelayer is expecting "
                                 f"{self.n_features_in_} features as input")
        else:
            X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        return delay_features(X, self.delays_, fill=self.fill)

    def get_feature_names_out(self, input_features=None):
        """Names ``<feature>_lag<d>``."""
        check_is_fitted(self)
        names = input_features if input_features is not None else [f"x{i}" for i in range(self.n_features_in_)]
        return np.asarray([f"{f}_lag{d}" for f in names for d in self.delays_], dtype=object)


class HRFConvolver(TransformerMixin, BaseEstimator):
    """Features to predicted BOLD: convolve with a nilearn HRF and resample to the scanner's TR.

    Feature time series sampled at ``sfreq`` (or already at the TR when ``sfreq`` is None) are held
    constant between samples on a fine grid (``tr / oversampling``), convolved with the HRF there, and
    sampled at the frame times ``0, tr, 2 tr, ...``.

    Parameters
    ----------
    tr : float
        Repetition time in seconds.
    sfreq : float, optional
        Sampling rate of the features in Hz; None means one row per TR.
    hrf_model : {"glover", "spm", "glover + derivative", "spm + derivative"}
        nilearn HRF; ``+ derivative`` appends the temporal derivative regressors.
    oversampling : int
        Fine-grid points per TR.
    n_scans : int, optional
        Number of frames (default: all frames covered by the features).

    Attributes
    ----------
    n_features_in_ : int
    hrf_ : ndarray, the HRF kernel(s) on the fine grid

    Examples
    --------
    >>> x = np.zeros((40, 1)); x[5] = 1.0
    >>> y = HRFConvolver(tr=2.0).fit_transform(x)
    >>> int(np.argmax(y[:, 0]))  # peak ~5 s (2-3 TRs) after the event
    8
    """

    def __init__(self, tr: float = 2.0, *, sfreq: float | None = None, hrf_model: str = "glover",
                 oversampling: int = 16, n_scans: int | None = None):
        self.tr = tr
        self.sfreq = sfreq
        self.hrf_model = hrf_model
        self.oversampling = oversampling
        self.n_scans = n_scans

    def fit(self, X, y=None):
        """Build the HRF kernel; returns self."""
        validate_data(self, np.asarray(X) if isinstance(X, torch.Tensor) else X, dtype=[np.float64, np.float32])
        hm = optional_import("nilearn.glm.first_level.hemodynamic_models", purpose="HRF convolution")
        models = {"glover": [hm.glover_hrf], "spm": [hm.spm_hrf],
                  "glover + derivative": [hm.glover_hrf, hm.glover_time_derivative],
                  "spm + derivative": [hm.spm_hrf, hm.spm_time_derivative]}
        if self.hrf_model not in models:
            raise ValueError(f"hrf_model must be one of {sorted(models)}, got {self.hrf_model!r}")
        if self.tr <= 0 or self.oversampling < 1:
            raise ValueError(f"tr must be > 0 and oversampling >= 1, got tr={self.tr}, oversampling={self.oversampling}")
        self.hrf_ = np.stack([f(self.tr, oversampling=self.oversampling) for f in models[self.hrf_model]])
        return self

    def transform(self, X):
        """Predicted BOLD regressors, shape (n_scans, n_features * n_hrf)."""
        check_is_fitted(self)
        is_torch = isinstance(X, torch.Tensor)
        Xn = validate_data(self, X.detach().cpu().numpy() if is_torch else X, reset=False,
                           dtype=[np.float64, np.float32])
        dt = self.tr / self.oversampling
        n = Xn.shape[0]
        duration = n * self.tr if self.sfreq is None else n / float(self.sfreq)
        n_fine = int(np.ceil(duration / dt))
        t_fine = np.arange(n_fine) * dt
        src = np.minimum((t_fine / (self.tr if self.sfreq is None else 1.0 / self.sfreq)).astype(int), n - 1)
        fine = Xn[src]  # zero-order hold
        n_scans = self.n_scans if self.n_scans is not None else int(np.floor(duration / self.tr + 1e-9))
        frames = np.minimum(np.round(np.arange(n_scans) * self.oversampling).astype(int), n_fine - 1)
        out = []
        from scipy.signal import oaconvolve

        for k in self.hrf_:  # nilearn kernels sum to 1: the scale does not depend on the oversampling
            conv = oaconvolve(fine, k[:, None], axes=0)[:n_fine]
            out.append(conv[frames])
        res = np.stack(out, axis=-1).reshape(n_scans, -1).astype(Xn.dtype, copy=False)
        return torch.as_tensor(res, device=X.device) if is_torch else res
