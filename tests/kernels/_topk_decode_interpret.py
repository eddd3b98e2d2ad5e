"""Run in a fresh process: Triton (TRITON_INTERPRET=1, CPU) vs the torch reference of topk_decode / topk_encode.

Prints one JSON object per case with the max differences (relative to the largest reference value) of the
forward output and of every gradient. The environment variable must be set before triton is imported, which is
why this runs as a script and not inside the pytest process.
"""

import os

os.environ["TRITON_INTERPRET"] = "1"

import json  # noqa: E402
import sys  # noqa: E402

import torch  # noqa: E402

from neurobridge.kernels.topk_decode import reference as ref  # noqa: E402
from neurobridge.kernels.topk_decode import triton as tri  # noqa: E402

CASES = [
    # (batch, k, d, n_latents, dtype, bias, variant)
    (4, 8, 64, 50, "float32", True, "plain"),
    (3, 1, 130, 20, "float32", True, "plain"),  # k = 1, d not a multiple of the block (128)
    (5, 6, 33, 7, "float32", False, "repeats"),  # repeated indices within rows
    (2, 40, 17, 300, "float32", True, "plain"),  # k above the k-block (32)
    (3, 5, 1, 9, "float32", True, "plain"),  # d = 1
    (4, 4, 70, 16, "float32", True, "transposed_w"),  # strided dictionary (a transposed view), int32 indices
    (4, 8, 96, 64, "bfloat16", True, "plain"),
    (3, 3, 129, 10, "bfloat16", False, "repeats"),
    (3, 4, 20, 12, "float64", True, "plain"),
    (0, 4, 20, 12, "float32", True, "plain"),  # empty batch
]


def make(case, seed):
    b, k, d, n, dtype, bias, variant = case
    g = torch.Generator().manual_seed(seed)
    dt = getattr(torch, dtype)
    if variant == "transposed_w":
        W = torch.randn(d, n, generator=g).to(dt).T
        idx = torch.randint(0, n, (b, k), generator=g).to(torch.int32)
    else:
        W = torch.randn(n, d, generator=g).to(dt)
        idx = torch.randint(0, n, (b, k), generator=g)
    if variant == "repeats" and b:
        idx[:, 1] = idx[:, 0]
        idx[0, :] = idx[0, 0]
    v = torch.randn(b, k, generator=g).to(dt)
    bb = torch.randn(d if bias else 0, generator=g).to(dt) if bias else None
    x = torch.randn(b, d, generator=g).to(dt)
    be = torch.randn(n, generator=g).to(dt) if bias else None
    go = torch.randn(b, d, generator=g).to(dt)
    gv = torch.randn(b, k, generator=g).to(dt)
    return v, idx, W, bb, x, be, go, gv


def run(fn, inputs, grad):
    leaves = [t.detach().clone().requires_grad_(True) if t is not None and t.is_floating_point() else t
              for t in inputs]
    out = fn(*leaves)
    out.backward(grad)
    grads = [t.grad if t is not None and t.is_floating_point() else None for t in leaves]
    return out.detach(), grads


def diff(a, b):
    if a is None or b is None:
        return None if a is None and b is None else "missing"
    if a.numel() == 0:
        return 0.0 if a.shape == b.shape else "shape"
    scale = a.double().abs().max().clamp_min(1.0)
    return float((a.double() - b.double()).abs().max() / scale)


def main():
    results = []
    for i, case in enumerate(CASES):
        v, idx, W, bb, x, be, go, gv = make(case, i)
        r = {"case": i, "dtype": case[4]}
        for op, inputs, grad in (("decode", (v, idx, W, bb), go), ("encode", (x, idx, W, be), gv)):
            F = ref.TopKDecode if op == "decode" else ref.TopKEncode
            a_out, a_grads = run(lambda *t, F=F: F.apply(*t, ref.REFERENCE_OPS), inputs, grad)
            b_out, b_grads = run(lambda *t, F=F: F.apply(*t, tri.TRITON_OPS), inputs, grad)
            r[f"{op}_out"] = diff(a_out, b_out)
            r[f"{op}_out_dtype"] = a_out.dtype == b_out.dtype and a_out.shape == b_out.shape
            for name, ga, gb in zip(("first", "idx", "W", "bias"), a_grads, b_grads, strict=True):
                if name != "idx":
                    r[f"{op}_grad_{name}"] = diff(ga, gb)
        results.append(r)
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
