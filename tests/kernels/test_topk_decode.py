"""topk_decode / topk_encode: the torch reference against a dense float64 closed form and gradcheck, Triton
parity (interpreter, CUDA), dispatch, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import neurobridge as nb
from neurobridge.kernels import topk_decode as td_mod
from neurobridge.kernels.topk_decode import reference as ref
from neurobridge.kernels.topk_decode import topk_decode, topk_encode

HERE = Path(__file__).parent


def _code(batch, k, n, d, *, repeats=False, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, n, (batch, k), generator=g)
    if repeats:
        idx[:, -1] = idx[:, 0]
        idx[0, :] = idx[0, 0]
    return (torch.randn(batch, k, generator=g, dtype=dtype), idx, torch.randn(n, d, generator=g, dtype=dtype),
            torch.randn(d, generator=g, dtype=dtype))


def _dense(values, idx, n):
    """values scattered into a dense (batch, n_latents) matrix (repeats add up)."""
    return torch.zeros(values.shape[0], n, dtype=values.dtype).scatter_add(1, idx, values)


@pytest.mark.parametrize(("batch", "k", "n", "d", "repeats"),
                         [(6, 4, 50, 9, False), (5, 1, 20, 3, False), (7, 5, 11, 130, True), (3, 40, 300, 17, False)])
def test_reference_decode_matches_dense_float64_closed_form(batch, k, n, d, repeats):
    values, idx, W, b = _code(batch, k, n, d, repeats=repeats)
    g = torch.randn(batch, d, dtype=torch.float64)
    leaves = [t.clone().requires_grad_() for t in (values, W, b)]
    out = ref.topk_decode(leaves[0], idx, leaves[1], leaves[2])
    out.backward(g)
    S = _dense(values, idx, n)
    torch.testing.assert_close(out, S @ W + b, rtol=1e-12, atol=1e-12)
    # closed-form gradients of <g, S W + b>: dS = g W^T (read at the active entries), dW = S^T g, db = sum g
    torch.testing.assert_close(leaves[0].grad, (g @ W.T).gather(1, idx), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(leaves[1].grad, S.T @ g, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(leaves[2].grad, g.sum(0), rtol=1e-12, atol=1e-12)
    inactive = torch.ones(n, dtype=torch.bool)
    inactive[idx.unique()] = False
    assert torch.all(leaves[1].grad[inactive] == 0)  # only active rows get a gradient


@pytest.mark.parametrize("repeats", [False, True])
def test_reference_encode_matches_dense_float64_closed_form(repeats):
    batch, k, n, d = 6, 4, 30, 7
    _, idx, W, _ = _code(batch, k, n, d, repeats=repeats, seed=1)
    x, b = torch.randn(batch, d, dtype=torch.float64), torch.randn(n, dtype=torch.float64)
    g = torch.randn(batch, k, dtype=torch.float64)
    leaves = [t.clone().requires_grad_() for t in (x, W, b)]
    out = ref.topk_encode(leaves[0], idx, leaves[1], leaves[2])
    out.backward(g)
    pre = x @ W.T + b
    torch.testing.assert_close(out, pre.gather(1, idx), rtol=1e-12, atol=1e-12)
    G = _dense(g, idx, n)  # the gradient of the dense pre-activations
    torch.testing.assert_close(leaves[0].grad, G @ W, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(leaves[1].grad, G.T @ x, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(leaves[2].grad, G.sum(0), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("repeats", [False, True])
def test_reference_gradcheck_float64(repeats):
    values, idx, W, b = _code(4, 3, 8, 5, repeats=repeats, seed=2)
    inputs = tuple(t.requires_grad_() for t in (values, W, b))
    assert torch.autograd.gradcheck(lambda v, w, bb: ref.topk_decode(v, idx, w, bb), inputs)
    x = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    be = torch.randn(8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda xx, w, bb: ref.topk_encode(xx, idx, w, bb), (x, W, be))


def test_sddmm_plain_fallback_matches_fast_path():
    values, idx, W, _ = _code(9, 5, 40, 13, repeats=True, seed=3, dtype=torch.float32)
    g = torch.randn(9, 13)
    torch.testing.assert_close(ref._sddmm_chunked(g, idx, W, rows=4), ref.sddmm(g, idx, W), rtol=1e-5, atol=1e-5)


def test_mixed_and_low_precision_dtypes():
    values, idx, W, b = _code(5, 3, 16, 8, seed=4, dtype=torch.float32)
    out = topk_decode(values, idx, W.bfloat16(), b.bfloat16())
    assert out.dtype == torch.float32  # promoted
    out16 = topk_decode(values.bfloat16(), idx, W.bfloat16())
    assert out16.dtype == torch.bfloat16
    want = topk_decode(values.bfloat16().float(), idx, W.bfloat16().float())
    torch.testing.assert_close(out16, want.bfloat16())
    W16 = W.bfloat16().requires_grad_()
    topk_decode(values.bfloat16(), idx, W16).sum().backward()
    assert W16.grad.dtype == torch.bfloat16
    # int32 indices and strided (transposed) dictionaries
    Wt = torch.randn(8, 16).T
    torch.testing.assert_close(topk_decode(values, idx.int(), Wt), topk_decode(values, idx, Wt.contiguous()))


def test_empty_batch_and_zero_values():
    W = torch.randn(10, 4, requires_grad=True)
    out = topk_decode(torch.zeros(0, 3), torch.zeros(0, 3, dtype=torch.long), W)
    assert out.shape == (0, 4)
    out = topk_decode(torch.zeros(2, 3), torch.tensor([[1, 2, 3], [4, 5, 6]]), W)
    assert torch.all(out == 0)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.long), torch.zeros(5)), "n_latents, d"),
        ((torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(5, 4)), "int64 or int32"),
        ((torch.zeros(2, 3), torch.zeros(6, dtype=torch.long), torch.zeros(5, 4)), "batch, k"),
        ((torch.zeros(2, 2), torch.zeros(2, 3, dtype=torch.long), torch.zeros(5, 4)), "one value per index"),
        ((torch.zeros(2, 3), torch.full((2, 3), 5), torch.zeros(5, 4)), r"\[0, 5\)"),
        ((torch.zeros(2, 3), torch.full((2, 3), -1), torch.zeros(5, 4)), "same SAE"),
        ((torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.long), torch.zeros(5, 4), torch.zeros(5)), r"\(4,\)"),
        ((torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 3, dtype=torch.long), torch.zeros(5, 4)), "floating"),
    ],
)
def test_bad_input_errors(args, match):
    with pytest.raises(ValueError, match=match):
        topk_decode(*args)


def test_encode_bad_input_errors():
    with pytest.raises(ValueError, match=r"expected \(batch, d\) = \(2, 4\)"):
        topk_encode(torch.zeros(2, 5), torch.zeros(2, 3, dtype=torch.long), torch.zeros(7, 4))
    with pytest.raises(ValueError, match=r"\(7,\)"):
        topk_encode(torch.zeros(2, 4), torch.zeros(2, 3, dtype=torch.long), torch.zeros(7, 4), torch.zeros(4))


def test_dispatch_and_info(monkeypatch):
    monkeypatch.delenv("NEUROBRIDGE_KERNELS", raising=False)
    assert td_mod.implementation(torch.zeros(1))[0] == "reference"
    info = nb.kernels.info("cpu")
    assert info["topk_decode"].implementation == "reference"
    assert "CUDA" in info["topk_decode"].reason
    topk_decode(torch.ones(1, 1), torch.zeros(1, 1, dtype=torch.long), torch.ones(2, 3))
    assert nb.kernels.info("cpu")["topk_decode"].last_used == "reference"
    monkeypatch.setenv("NEUROBRIDGE_KERNELS", "reference")
    assert nb.kernels.info("cuda")["topk_decode"].implementation == "reference"
    monkeypatch.setenv("NEUROBRIDGE_KERNELS", "triton")
    assert nb.kernels.info("cpu")["topk_decode"].implementation == "triton"
    monkeypatch.setenv("NEUROBRIDGE_KERNELS", "fast")
    with pytest.raises(ValueError, match="NEUROBRIDGE_KERNELS"):
        td_mod.implementation(torch.zeros(1))


N_CASES = 10


@pytest.fixture(scope="module")
def interpreter_results():
    """All interpreter cases in one fresh process (TRITON_INTERPRET must be set before triton is imported)."""
    pytest.importorskip("triton")
    env = dict(os.environ, TRITON_INTERPRET="1")
    proc = subprocess.run([sys.executable, str(HERE / "_topk_decode_interpret.py")], capture_output=True,
                          text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


@pytest.mark.parametrize("case", range(N_CASES))
def test_triton_interpreter_parity(interpreter_results, case):
    r = interpreter_results[case]
    assert len(interpreter_results) == N_CASES
    tol = {"float32": 1e-5, "bfloat16": 1e-2, "float64": 1e-12}[r["dtype"]]
    for key, value in r.items():
        if key in ("case", "dtype") or value is None:
            continue
        if key.endswith("_dtype"):
            assert value is True, (key, r)
        else:
            assert isinstance(value, float) and value <= tol, (key, r)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("op", ["decode", "encode"])
def test_cuda_parity(dtype, op):
    g = torch.Generator(device="cuda").manual_seed(0)
    batch, k, n, d = 256, 64, 4096, 300
    idx = torch.randint(0, n, (batch, k), device="cuda", generator=g)
    idx[:, 1] = idx[:, 0]
    W = torch.randn(n, d, device="cuda", generator=g).to(dtype)
    first = torch.randn(batch, k if op == "decode" else d, device="cuda", generator=g).to(dtype)
    bias = torch.randn(d if op == "decode" else n, device="cuda", generator=g).to(dtype)
    assert td_mod.implementation(first, idx, W, bias)[0] == "triton"
    fn = topk_decode if op == "decode" else topk_encode
    fref = ref.topk_decode if op == "decode" else ref.topk_encode
    results = []
    for f in (fn, fref):
        leaves = [t.clone().requires_grad_() for t in (first, W, bias)]
        out = f(leaves[0], idx, leaves[1], leaves[2])
        out.float().square().sum().backward()
        results.append([out] + [t.grad for t in leaves])
    assert td_mod._last_used == "triton"
    tol = 1e-2 if dtype == torch.bfloat16 else 1e-4
    for a, b in zip(*results, strict=True):
        scale = b.float().abs().max().clamp_min(1.0)
        assert float((a.float() - b.float()).abs().max() / scale) < tol
