"""pool_stats: the torch reference against a float64 numpy closed form, Triton parity (interpreter, CUDA), dispatch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import neurobridge as nb
from neurobridge.kernels import pool_stats as ps_mod
from neurobridge.kernels.pool_stats import pool_stats
from neurobridge.kernels.pool_stats.reference import pool_stats as reference

HERE = Path(__file__).parent


def _closed_form(x: np.ndarray, mask: np.ndarray, pooling: str):
    """float64 numpy version of the spec, one row and one unit at a time where it matters."""
    b, t, u = x.shape
    valid = mask.astype(bool)
    flat = x[valid]  # (n_valid, u)
    out = {"count": flat.shape[0], "mean": flat.mean(0), "var": flat.var(0), "absmax": np.abs(flat).max(0),
           "n_zero": (flat == 0).sum(0), "n_pos": (flat > 0).sum(0)}
    pooled = np.zeros((b, u))
    for i in range(b):
        rows = x[i][valid[i]]
        idx = np.flatnonzero(valid[i])
        if pooling == "mean":
            pooled[i] = rows.mean(0)
        elif pooling == "max":
            pooled[i] = rows.max(0)
        elif pooling == "first":
            pooled[i] = x[i, idx[0]]
        elif pooling == "last":
            pooled[i] = x[i, idx[-1]]
    out["pooled"] = pooled
    out["row_argmax"] = np.array([[np.flatnonzero(valid[i])[np.argmax(np.abs(x[i][valid[i]][:, j]))]
                                    for j in range(u)] for i in range(b)])
    return out


@pytest.mark.parametrize("pooling", ["mean", "max", "first", "last"])
@pytest.mark.parametrize("padding", ["right", "left", "random"])
def test_reference_matches_float64_closed_form(pooling, padding):
    rng = np.random.default_rng(0)
    b, t, u = 4, 9, 6
    x = rng.normal(size=(b, t, u)) * 2 + 1
    x[0, 1, :2] = 0.0
    mask = np.ones((b, t), dtype=int)
    if padding == "right":
        mask[1, 5:] = 0
    elif padding == "left":
        mask[2, :4] = 0
    else:
        mask = (rng.random((b, t)) > 0.4).astype(int)
        mask[:, 3] = 1
    r = reference(torch.tensor(x, dtype=torch.float32), torch.tensor(mask), pooling=pooling)
    want = _closed_form(x, mask, pooling)
    assert int(r.count) == want["count"]
    np.testing.assert_allclose(r.mean.numpy(), want["mean"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(r.m2.numpy() / want["count"], want["var"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(r.absmax.numpy(), want["absmax"], rtol=1e-6)
    np.testing.assert_array_equal(r.n_zero.numpy(), want["n_zero"])
    np.testing.assert_array_equal(r.n_pos.numpy(), want["n_pos"])
    np.testing.assert_allclose(r.pooled.numpy(), want["pooled"], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(r.row_argmax.numpy(), want["row_argmax"])


def test_reference_int8_codes_reconstruct_within_half_a_step():
    x = torch.randn(16, 3, 10, generator=torch.Generator().manual_seed(1))
    r = reference(x, pooling="mean", int8=True)
    deq = r.codes.float() * r.scale
    step = r.scale
    assert r.codes.dtype == torch.int8
    assert torch.all((deq - r.pooled).abs() <= step / 2 + 1e-6)
    np.testing.assert_allclose(r.scale.numpy(), r.pooled.abs().amax(0).numpy() / 127, rtol=1e-6)
    assert int(r.codes.abs().max()) == 127


def test_reference_no_mask_and_empty_rows():
    x = torch.randn(2, 4, 3)
    r = reference(x, torch.zeros(2, 4, dtype=torch.bool), pooling="max")
    assert int(r.count) == 0
    assert torch.all(r.pooled == 0) and torch.all(r.absmax == 0)
    r2 = reference(x, None, pooling="mean")
    torch.testing.assert_close(r2.pooled, x.mean(1))


def test_bf16_input_is_computed_in_float32_and_cast_back():
    x = torch.randn(3, 8, 5)
    r16 = reference(x.to(torch.bfloat16), pooling="mean")
    r32 = reference(x.to(torch.bfloat16).float(), pooling="mean")
    assert r16.pooled.dtype == torch.bfloat16 and r16.mean.dtype == torch.float32
    torch.testing.assert_close(r16.mean, r32.mean)
    torch.testing.assert_close(r16.pooled, r32.pooled.to(torch.bfloat16))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"x": torch.zeros(2, 3)}, "batch, tokens, units"),
        ({"x": torch.zeros(2, 3, 4, dtype=torch.int64)}, "floating"),
        ({"x": torch.zeros(2, 3, 4), "mask": torch.ones(2, 4)}, "mask has shape"),
        ({"x": torch.zeros(2, 3, 4), "pooling": "median"}, "pooling must be one of"),
        ({"x": torch.zeros(2, 3, 4), "pooling": "none", "int8": True}, "needs pooled features"),
    ],
)
def test_bad_input_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        pool_stats(**kwargs)


def test_dispatch_and_info(monkeypatch):
    monkeypatch.delenv("NEUROBRIDGE_KERNELS", raising=False)
    assert ps_mod.implementation(torch.zeros(1))[0] == "reference"
    info = nb.kernels.info("cpu")
    assert info["pool_stats"].implementation == "reference"
    assert "CUDA" in info["pool_stats"].reason
    pool_stats(torch.zeros(1, 1, 1))
    assert nb.kernels.info("cpu")["pool_stats"].last_used == "reference"
    monkeypatch.setenv("NEUROBRIDGE_KERNELS", "reference")
    assert nb.kernels.info("cuda")["pool_stats"].implementation == "reference"
    monkeypatch.setenv("NEUROBRIDGE_KERNELS", "triton")
    assert nb.kernels.info("cpu")["pool_stats"].implementation == "triton"
    monkeypatch.setenv("NEUROBRIDGE_KERNELS", "fast")
    with pytest.raises(ValueError, match="NEUROBRIDGE_KERNELS"):
        nb.kernels.info("cpu")


@pytest.fixture(scope="module")
def interpreter_results():
    """All interpreter cases in one fresh process (TRITON_INTERPRET must be set before triton is imported)."""
    env = dict(os.environ, TRITON_INTERPRET="1")
    proc = subprocess.run([sys.executable, str(HERE / "_pool_stats_interpret.py")], capture_output=True, text=True,
                          env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


@pytest.mark.parametrize("case", range(10))
def test_triton_interpreter_parity(interpreter_results, case):
    r = interpreter_results[case]
    for field in ("pooled", "mean", "m2", "absmax", "n_zero", "n_pos", "row_absmax", "scale"):
        if r.get(field) is not None:
            assert r[field] < 1e-5, (field, r)
    for field in ("count", "row_argmax"):
        assert r[field] == 0, (field, r)
    if r.get("codes") is not None:
        assert r["codes"] <= 1 and r["codes_frac_equal"] > 0.99, r
    assert all(v for k, v in r.items() if k.endswith("_dtype")), r


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("pooling", ["mean", "max", "first", "last", "none"])
def test_cuda_parity(dtype, pooling):
    g = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(8, 77, 300, device="cuda", generator=g).to(dtype)
    mask = (torch.rand(8, 77, device="cuda", generator=g) > 0.2).long()
    mask[:, 0] = 1
    assert ps_mod.implementation(x, mask)[0] == "triton"
    int8 = pooling != "none"
    got = pool_stats(x, mask, pooling=pooling, int8=int8)
    want = reference(x, mask, pooling=pooling, int8=int8)
    tol = 1e-2 if dtype != torch.float32 else 1e-4
    if want.pooled is not None:
        torch.testing.assert_close(got.pooled.float(), want.pooled.float(), rtol=tol, atol=tol)
    for f in ("mean", "absmax", "n_zero", "n_pos", "row_absmax"):
        torch.testing.assert_close(getattr(got, f), getattr(want, f), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(got.m2, want.m2, rtol=1e-3, atol=1e-3)
    assert int(got.count) == int(want.count)
    if int8:
        assert (got.codes.long() - want.codes.long()).abs().max() <= 1
