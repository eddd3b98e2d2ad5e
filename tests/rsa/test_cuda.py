"""CUDA runs match CPU (skipped without a GPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

import neurobridge as nb

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_rdm_compare_and_maps_on_cuda_match_cpu():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((30, 8, 6))
    ep = nb.core.eeg_epochs(x, stimulus=np.arange(30) % 10, sfreq=100.0)
    acts = xr.DataArray(rng.standard_normal((2, 10, 5)), dims=("layer", "stimulus", "unit"),
                        coords={"stimulus": np.arange(10)})
    models = nb.rsa.rdm(acts, dtype="float64")
    for method in ("spearman", "kendall", "cosine_cov"):
        cpu = nb.rsa.time_resolved_rsa(ep, models, method=method, dtype="float64", progress=False)
        gpu = nb.rsa.time_resolved_rsa(ep, models, method=method, dtype="float64", device="cuda", progress=False)
        np.testing.assert_allclose(gpu.values, cpu.values, atol=1e-10)
    r_cpu = nb.rsa.rdm(ep, metric="euclidean", dtype="float64")
    r_gpu = nb.rsa.rdm(ep, metric="euclidean", dtype="float64", device="cuda")
    np.testing.assert_allclose(r_gpu.values, r_cpu.values, atol=1e-10)
    v = torch.randn(4, 45, dtype=torch.float64, device="cuda")
    np.testing.assert_array_equal(nb.rsa.rank(v).cpu().numpy(), nb.rsa.rank(v.cpu()).numpy())
