"""Issue 16.1: encoding inference on autocorrelated time series (fMRI at TR 2 s, continuous M/EEG).

Unrelated AR(1) features and targets at phi 0.97 used to score held-out r = +0.07-0.09 with 27-36% permutation
false positives: contiguous folds without a gap let the fit follow the drift across fold boundaries, and the
permutation null shuffled time points. These tests fail on that code (gap=None, null="permutation").
"""

import numpy as np
import pytest
import torch
import xarray as xr
from scipy.signal import lfilter

import neurobridge as nb


def _ar(rng, n, k, phi):
    return lfilter([1.0], [1.0, -phi], rng.normal(size=(n, k)), axis=0)


def _null_fits(phi=0.97, n_datasets=3, **kw):
    rng = np.random.default_rng(0)
    out = []
    for r in range(n_datasets):
        feats = xr.DataArray(_ar(rng, 400, 10, phi), dims=("time", "unit"), coords={"time": np.arange(400) * 2.0})
        brain = nb.core.fmri_timeseries(_ar(rng, 400, 300, phi), tr=2.0)
        out.append(nb.encoding.fit_encoding(feats, brain, scoring="correlation", n_permutations=99, random_state=r,
                                            progress=False, **kw))
    return out


def test_unrelated_autocorrelated_series_score_zero_and_are_not_significant():
    fits = _null_fits()
    mean_r = float(np.mean([f.score.mean() for f in fits]))
    fpr = float(np.mean([(f.pvalue <= 0.05).mean() for f in fits]))
    assert abs(mean_r) < 0.02, mean_r
    assert 0.02 <= fpr <= 0.09, fpr  # 900 voxel tests, correlated within a dataset through the shared features
    assert sum(int(f.significant.sum()) for f in fits) <= 9
    assert all(f.attrs["gap"] >= 20 and f.attrs["null"] == "circular" for f in fits)


def test_the_old_defaults_fail_on_the_same_nulls():
    """What the defaults fix: no gap and shuffled time points."""
    fits = _null_fits(n_datasets=2, gap=None, null="permutation")
    assert float(np.mean([f.score.mean() for f in fits])) > 0.04
    assert float(np.mean([(f.pvalue <= 0.05).mean() for f in fits])) > 0.15


def test_planted_effect_on_autocorrelated_series_is_found():
    rng = np.random.default_rng(1)
    X = _ar(rng, 400, 5, 0.9)
    Y = X @ rng.normal(size=(5, 20)) + _ar(rng, 400, 20, 0.9)
    feats = xr.DataArray(X, dims=("time", "unit"), coords={"time": np.arange(400) * 2.0})
    res = nb.encoding.fit_encoding(feats, nb.core.fmri_timeseries(Y, tr=2.0), scoring="correlation",
                                   n_permutations=99, progress=False)
    assert float(res.score.mean()) > 0.2
    assert float((res.pvalue <= 0.05).mean()) > 0.8  # power, with an effective n far below 400


@pytest.mark.parametrize("null", ["block", "phase"])
def test_other_time_series_nulls_hold_their_level(null):
    fits = _null_fits(phi=0.9, n_datasets=2, null=null)
    fpr = float(np.mean([(f.pvalue <= 0.05).mean() for f in fits]))
    assert 0.01 <= fpr <= 0.10, fpr


def test_stimulus_locked_data_keep_permutations_and_no_gap():
    rng = np.random.default_rng(0)
    f = nb.core.activations(rng.normal(size=(40, 4)), stimulus=np.arange(40))
    b = nb.core.fmri_responses(rng.normal(size=(40, 3)), stimulus=np.arange(40), dim="stimulus")
    res = nb.encoding.fit_encoding(f, b, n_permutations=9, progress=False)
    assert res.attrs["gap"] == 0 and res.attrs["null"] == "permutation"
    with pytest.raises(ValueError, match="continuous"):
        nb.encoding.fit_encoding(f, b, n_permutations=9, null="circular", progress=False)
    with pytest.raises(ValueError, match="null must be"):
        nb.encoding.fit_encoding(f, b, null="shuffle", progress=False)
    with pytest.raises(ValueError, match="gap"):
        nb.encoding.fit_encoding(f, b, gap=-1, progress=False)


def test_make_folds_gap_purges_training_samples_near_validation():
    folds = nb.encoding.make_folds(100, 5, gap=7)
    for tr, va in folds:
        dist = np.abs(tr[:, None] - va[None, :]).min(1)
        assert dist.min() > 7
        assert len(tr) == 100 - len(va) - 7 * (int(va.min() > 0) + int(va.max() < 99))
    # inner folds of a training set keep its two pieces apart (positions are the original time indices)
    tr = folds[2][0]
    inner = nb.encoding.make_folds(len(tr), 3, gap=7, positions=tr)
    for itr, iva in inner:
        assert np.abs(tr[itr][:, None] - tr[iva][None, :]).min() > 7
    with pytest.raises(ValueError, match="gap of 45"):
        nb.encoding.make_folds(100, 5, gap=45)


def test_inner_alpha_selection_gets_the_gap():
    from neurobridge.encoding._labelled import _inner_gap

    est = _inner_gap(nb.encoding.RidgeCV(cv=3), np.arange(50, 150), 5)
    assert isinstance(est.cv, list) and len(est.cv) == 3
    for tr, va in est.cv:
        assert np.abs(tr[:, None] - va[None, :]).min() > 5


def test_fit_trf_gap_covers_the_lags():
    rng = np.random.default_rng(0)
    env = rng.normal(size=2000)
    eeg = np.stack([np.convolve(env, [0, 0.5, 1.0, 0.5])[:2000]]) + 0.5 * rng.normal(size=(1, 2000))
    res = nb.encoding.fit_trf(xr.DataArray(env, dims="time"), nb.core.eeg_raw(eeg, sfreq=100.0), tmin=0.0,
                              tmax=0.1, alphas=[1e-2, 1.0], progress=False)
    assert res.attrs["gap"] >= 10  # the largest lag, 0.1 s at 100 Hz, plus the autocorrelation length
    assert float(res.score.min()) > 0.8


# ------------------------------------------------------------------ the resampling schemes (nb.stats)
def test_autocorrelation_of_ar1_matches_phi_to_the_k():
    rng = np.random.default_rng(0)
    x = _ar(rng, 20000, 3, 0.8)
    acf = nb.stats.autocorrelation(x, max_lag=5).numpy()
    np.testing.assert_allclose(acf, 0.8 ** np.arange(6), atol=0.03)
    # the product of two AR(1) at 0.9 falls below 0.01 at k = log(0.01) / log(0.81) = 21.8
    assert nb.stats.autocorrelation_length(_ar(rng, 20000, 4, 0.9), _ar(rng, 20000, 4, 0.9)) in range(19, 26)
    with pytest.raises(ValueError, match="threshold"):
        nb.stats.autocorrelation_length(x, threshold=1.5)


def test_circular_shifts_are_distinct_and_respect_min_shift():
    idx = nb.stats.circular_shifts(50, 30, min_shift=10, seed=0)
    shifts = idx[:, 0].numpy()
    assert len(set(shifts.tolist())) == 30 and shifts.min() >= 10 and shifts.max() <= 40
    assert torch.equal(idx, (torch.arange(50) + idx[:, :1]) % 50)
    with pytest.raises(ValueError, match="min_shift"):
        nb.stats.circular_shifts(10, 5, min_shift=6)


def test_block_permutations_keep_blocks_whole():
    idx = nb.stats.block_permutation_indices(40, 20, block=8, seed=0).numpy()
    for row in idx:
        assert sorted(row.tolist()) == list(range(40))
        steps = np.diff(row)
        assert np.sum((steps != 1) & (steps != -39)) <= 40 // 8 + 1  # breaks only between blocks
    with pytest.raises(ValueError, match="block"):
        nb.stats.block_permutation_indices(10, 2, block=6)


def test_phase_surrogates_keep_spectrum_and_cross_spectrum():
    rng = np.random.default_rng(0)
    x = torch.as_tensor(_ar(rng, 256, 3, 0.7))
    s = nb.stats.phase_randomize(x, 4, seed=1)
    fx, fs = torch.fft.rfft(x, dim=0), torch.fft.rfft(s, dim=1)
    torch.testing.assert_close(fs.abs(), fx.abs().expand_as(fs), rtol=1e-9, atol=1e-9)
    cross_x = fx[:, 0] * fx[:, 1].conj()
    cross_s = fs[:, :, 0] * fs[:, :, 1].conj()
    torch.testing.assert_close(cross_s, cross_x.expand_as(cross_s), rtol=1e-8, atol=1e-8)
    torch.testing.assert_close(s.mean(1), x.mean(0).expand(4, 3))
    assert not torch.allclose(s[0], x)
