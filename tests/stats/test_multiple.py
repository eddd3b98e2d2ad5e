"""FDR, Bonferroni and max-statistic corrections against mne / scipy / a direct loop."""

from __future__ import annotations

import mne
import numpy as np
import pytest
import scipy.stats
import torch
import xarray as xr

import neurobridge as nb


@pytest.mark.parametrize("method, mne_method", [("bh", "indep"), ("by", "negcorr")])
def test_fdr_matches_mne_and_scipy(method, mne_method):
    p = np.random.default_rng(0).uniform(size=(20, 30)) ** 3
    res = nb.stats.fdr(p, alpha=0.05, method=method)
    reject, padj = mne.stats.fdr_correction(p, alpha=0.05, method=mne_method)
    np.testing.assert_allclose(res.pvalues, padj, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(res.reject, reject)
    sp = scipy.stats.false_discovery_control(p.ravel(), method=method)
    np.testing.assert_allclose(res.pvalues.ravel(), sp, atol=1e-12)


def test_fdr_keeps_kind():
    p = xr.DataArray(np.array([[0.001, 0.5], [0.02, 0.04]]), dims=("layer", "time"), coords={"time": [0.1, 0.2]})
    res = nb.stats.fdr(p)
    assert isinstance(res.pvalues, xr.DataArray) and res.pvalues.dims == ("layer", "time")
    assert res.reject.dtype == bool
    t = nb.stats.fdr(torch.tensor([0.01, 0.9]))
    assert isinstance(t.pvalues, torch.Tensor)


@pytest.mark.parametrize("bad", [[0.1, np.nan], [0.1, 1.5], [-0.1, 0.2]])
def test_fdr_rejects_bad_input(bad):
    with pytest.raises(ValueError, match="non-finite|must lie"):
        nb.stats.fdr(np.array(bad))
    with pytest.raises(ValueError, match="alpha"):
        nb.stats.fdr(np.array([0.1]), alpha=2)


def test_bonferroni():
    res = nb.stats.bonferroni(np.array([0.01, 0.02, 0.5]))
    np.testing.assert_allclose(res.pvalues, [0.03, 0.06, 1.0])
    assert res.reject.tolist() == [True, False, False]


@pytest.mark.parametrize("alternative", ["greater", "less", "two-sided"])
def test_max_statistic_matches_loop(alternative):
    rng = np.random.default_rng(1)
    null = rng.normal(size=(199, 4, 5))
    obs = rng.normal(size=(4, 5)) * 2
    p = nb.stats.max_statistic(obs, null, alternative=alternative)
    f = {"greater": lambda v: v, "less": lambda v: -v, "two-sided": np.abs}[alternative]
    maxima = f(null).reshape(199, -1).max(1)
    expected = np.array([(1 + np.sum(maxima >= f(o))) / 200 for o in obs.ravel()]).reshape(4, 5)
    np.testing.assert_allclose(p, expected)
    with pytest.raises(ValueError, match="null must have shape"):
        nb.stats.max_statistic(obs, null[:, :3])
