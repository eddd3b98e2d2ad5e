"""TimeDelayer / TRF against MNE, HRFConvolver against nilearn, fit_trf on a planted response function."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import neurobridge as nb
from neurobridge.core import SchemaError
from neurobridge.encoding import HRFConvolver, Ridge, TimeDelayer, delay_features, fit_trf

SFREQ = 100.0


def _planted_trf(n=3000, n_feat=2, n_ch=3, noise=0.5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, n_feat))
    lags = np.arange(-2, 11)  # samples: -20 ms .. 100 ms
    lag_s = lags / SFREQ
    true = np.exp(-((lag_s[:, None, None] - 0.05) ** 2) / (2 * 0.015**2)) * rng.standard_normal((1, n_feat, n_ch))
    Xd = delay_features(X, lags)  # (n, n_feat * n_lags), feature-major
    W = true.transpose(1, 0, 2).reshape(n_feat * len(lags), n_ch)
    Y = Xd @ W + noise * rng.standard_normal((n, n_ch))
    return X, Y, true, lags


@pytest.mark.parametrize("fill", ["zero", "mean"])
def test_delays_match_mne(fill):
    from mne.decoding.receptive_field import _delay_time_series, _reshape_for_est

    X = np.random.default_rng(0).standard_normal((50, 3))
    ours = TimeDelayer(tmin=-0.03, tmax=0.05, sfreq=SFREQ, fill=fill).fit_transform(X)
    ref = _reshape_for_est(_delay_time_series(X[:, None, :], -0.03, 0.05, SFREQ, fill_mean=fill == "mean"))
    np.testing.assert_allclose(ours, ref, rtol=1e-12)


@pytest.mark.parametrize("fit_intercept", [False, True])
def test_trf_weights_match_receptive_field(fit_intercept):
    from mne.decoding import ReceptiveField
    from sklearn.linear_model import Ridge as SkRidge

    X, Y, _, lags = _planted_trf(n=1500)
    tmin, tmax = lags[0] / SFREQ, lags[-1] / SFREQ
    rf = ReceptiveField(tmin, tmax, SFREQ, estimator=SkRidge(alpha=10.0, fit_intercept=fit_intercept),
                        fit_intercept=fit_intercept).fit(X, Y)
    fill = "mean" if fit_intercept else "zero"
    Xd = TimeDelayer(tmin=tmin, tmax=tmax, sfreq=SFREQ, fill=fill).fit_transform(X)
    with nb.config_context(dtype="float64"):
        ours = Ridge(alpha=10.0, fit_intercept=fit_intercept).fit(Xd, Y)
    np.testing.assert_allclose(ours.coef_.reshape(rf.coef_.shape), rf.coef_, rtol=1e-6, atol=1e-10)


def test_trf_matches_time_delaying_ridge_and_truth():
    """MNE's TimeDelayingRidge (autocorrelation form, edge-corrected) and ours agree up to edge effects."""
    from mne.decoding import ReceptiveField

    X, Y, true, lags = _planted_trf(n=6000)
    tmin, tmax = lags[0] / SFREQ, lags[-1] / SFREQ
    rf = ReceptiveField(tmin, tmax, SFREQ, estimator=1.0, fit_intercept=True).fit(X, Y)
    stim = xr.DataArray(X, dims=("time", "feature"))
    eeg = nb.core.eeg_raw(Y.T, sfreq=SFREQ)
    res = fit_trf(stim, eeg, tmin=tmin, tmax=tmax, alphas=[1.0], progress=False)
    ours = res.weights.transpose("channel", "feature", "lag").values
    assert np.abs(ours - rf.coef_).max() < 0.02 * np.abs(rf.coef_).max()
    assert np.abs(ours - true.transpose(2, 1, 0)).max() < 0.05 * np.abs(true).max()
    np.testing.assert_allclose(res.lag.values, lags / SFREQ)


def test_fit_trf_recovers_peak_and_scores():
    X, Y, true, lags = _planted_trf(n=3000, noise=1.0)
    res = fit_trf(xr.DataArray(X, dims=("time", "feature"), coords={"feature": ["env", "onset"]}),
                  nb.core.eeg_raw(Y.T, sfreq=SFREQ, ch_names=["Fz", "Cz", "Pz"]),
                  tmin=-0.02, tmax=0.1, alphas=np.logspace(-1, 4, 6), progress=False)
    assert res.weights.dims == ("lag", "feature", "channel")
    assert res.weights.feature.values.tolist() == ["env", "onset"]
    peak = res.lag.values[np.abs(res.weights).argmax("lag").values]
    np.testing.assert_allclose(peak, 0.05, atol=0.011)
    # held-out correlation close to the best achievable (signal sd / total sd)
    best = np.sqrt(1 - 1.0 / Y.var(0))  # noise variance is 1
    np.testing.assert_allclose(res.score.values, best, atol=0.05)


def test_fit_trf_errors():
    X, Y, _, _ = _planted_trf(n=200)
    eeg = nb.core.eeg_raw(Y.T, sfreq=SFREQ)
    with pytest.raises(SchemaError, match="time points"):
        fit_trf(xr.DataArray(X[:-5], dims=("time", "feature")), eeg, tmin=0, tmax=0.05)
    with pytest.raises(SchemaError, match="needs a 'time' dim"):
        fit_trf(xr.DataArray(X, dims=("sample", "feature")), eeg, tmin=0, tmax=0.05)
    Xn = X.copy()
    Xn[10, 0] = np.inf
    with pytest.raises(ValueError, match="non-finite"):
        fit_trf(xr.DataArray(Xn, dims=("time", "feature")), eeg, tmin=0, tmax=0.05)
    with pytest.raises(ValueError, match="tmin"):
        TimeDelayer(tmin=0.1, tmax=0.0).fit(X)


@pytest.mark.parametrize("hrf_model", ["glover", "spm", "spm + derivative"])
def test_hrf_convolver_matches_nilearn_compute_regressor(hrf_model):
    from nilearn.glm.first_level import compute_regressor

    tr, n_scans, sfreq = 2.0, 60, 10.0
    onsets = np.array([10.0, 31.0, 52.5, 80.0])
    x = np.zeros((int(n_scans * tr * sfreq), 1))
    x[(onsets * sfreq).astype(int), 0] = 1.0  # impulses of one sample
    ours = HRFConvolver(tr=tr, sfreq=sfreq, hrf_model=hrf_model, oversampling=20, n_scans=n_scans).fit_transform(x)
    cond = np.vstack([onsets, np.full(len(onsets), 1 / sfreq), np.ones(len(onsets))])
    ref, _ = compute_regressor(cond, hrf_model, np.arange(n_scans) * tr, oversampling=20)
    assert ours.shape == ref.shape
    for j in range(ref.shape[1]):
        r = np.corrcoef(ours[:, j], ref[:, j])[0, 1]
        assert r > 0.99, (j, r)
    # same shape and timing; the scale of nilearn's regressor is per unit duration
    np.testing.assert_array_equal(ours[:, 0].argmax(), ref[:, 0].argmax())


def test_hrf_convolver_at_tr_keeps_length_and_peaks_late():
    x = np.zeros((50, 2))
    x[10, 0] = 1.0
    x[20, 1] = 1.0
    y = HRFConvolver(tr=1.0).fit_transform(x)
    assert y.shape == (50, 2)
    assert 14 <= y[:, 0].argmax() <= 16 and 24 <= y[:, 1].argmax() <= 26
    with pytest.raises(ValueError, match="hrf_model"):
        HRFConvolver(hrf_model="boxcar").fit(x)
