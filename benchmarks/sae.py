"""Sparse-autoencoder benchmarks: the top-k sparse decode against the dense decoder (issue 13).

K1  decoder forward + backward of a TopK SAE, ``out = sparse(values, indices) @ W_dec + b_dec`` with gradients
      for ``values``, ``W_dec`` and ``b_dec``: ``neurobridge.kernels.topk_decode`` (the torch gather reference on
      the CPU, Triton on CUDA) against the dense decoder that SAELens and most SAE code run (scatter the ``k``
      values into a ``(batch, n_latents)`` matrix, one GEMM; autograd). d_in 768, batch 4096, latents 16k / 64k,
      k 32 / 64, float32 on the CPU (bf16 with ``--device cuda``). The issue's CPU criterion: the gather wins at
      ``k / n_latents <= 1/256``.

Protocol (../shared/BENCHMARKS.md): same inputs, same process and threads; each variant warmed up once, then
interleaved for ``--repeats`` rounds; median, min, max and the ratio dense / sparse; outputs and all three
gradients checked against the dense result in the same run (max relative difference).

Not here yet (issue 13): training throughput against SAELens and sparsify (neither is installed by the dev
extra; both pull their own torch stacks), and the GPU numbers (no GPU has been lent to a session with this code).

Usage: python benchmarks/sae.py [--quick] [--device cpu|cuda] [--threads N] [--repeats N] [--out f.csv]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
from _common import print_table  # benchmarks/ is the script's folder, first on sys.path

from neurobridge.kernels.topk_decode import implementation, topk_decode


def dense_decode(values, indices, W_dec, b_dec):
    """The dense decoder: the sparse code scattered into (batch, n_latents), one GEMM."""
    z = torch.zeros(values.shape[0], W_dec.shape[0], dtype=values.dtype, device=values.device)
    return z.scatter(1, indices, values) @ W_dec + b_dec


def inputs(batch, n_latents, k, d, dtype, device, seed=0):
    g = torch.Generator(device="cpu").manual_seed(seed)
    W = (torch.randn(n_latents, d, generator=g) / d ** 0.5).to(device, dtype).requires_grad_()
    b = torch.zeros(d, device=device, dtype=dtype).requires_grad_()
    values = torch.rand(batch, k, generator=g).to(device, dtype).requires_grad_()
    # distinct indices per row, as a top-k gives them
    indices = torch.rand(batch, n_latents, generator=g).topk(k, dim=1).indices.to(device)
    grad_out = torch.randn(batch, d, generator=g).to(device, dtype)
    return values, indices, W, b, grad_out


def step(fn, values, indices, W, b, grad_out):
    for t in (values, W, b):
        t.grad = None
    out = fn(values, indices, W, b)
    out.backward(grad_out)
    return out.detach(), values.grad, W.grad, b.grad


def rel(a, b) -> float:
    return float((a.float() - b.float()).abs().max() / b.float().abs().max().clamp_min(1e-30))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    dtype = torch.bfloat16 if args.device.startswith("cuda") else torch.float32
    batch, d = (512, 256) if args.quick else (4096, 768)
    grid = [(4096, 16)] if args.quick else [(16384, 32), (16384, 64), (65536, 32), (65536, 64)]
    print(f"# SAE decode benchmark ({'quick' if args.quick else 'full'}): torch {torch.__version__} on "
          f"{args.device}, {dtype}, threads {args.threads}, batch {batch}, d_in {d}, repeats {args.repeats}; "
          f"sparse path: {implementation(device=args.device)[0]}", flush=True)
    rows = []
    for n_latents, k in grid:
        data = inputs(batch, n_latents, k, d, dtype, args.device)
        fns = {"dense": dense_decode, "topk_decode": topk_decode}
        outs = {name: step(fn, *data) for name, fn in fns.items()}  # warm-up, and the outputs checked below
        times = {name: [] for name in fns}
        for _ in range(args.repeats):
            for name, fn in fns.items():
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                step(fn, *data)
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()
                times[name].append(time.perf_counter() - t0)
        diff = max(rel(a, b) for a, b in zip(outs["topk_decode"], outs["dense"], strict=True))
        tol = 2e-2 if dtype == torch.bfloat16 else 1e-4
        med_d, med_s = statistics.median(times["dense"]), statistics.median(times["topk_decode"])
        r = {"n_latents": n_latents, "k": k, "k_over_latents": f"1/{n_latents // k}", "dense_median_s": med_d,
             "topk_decode_median_s": med_s, "speedup": med_d / med_s, "max_rel_diff": diff, "agrees": diff <= tol,
             "dense_min_s": min(times["dense"]), "dense_max_s": max(times["dense"]),
             "topk_decode_min_s": min(times["topk_decode"]), "topk_decode_max_s": max(times["topk_decode"])}
        print(f"  K1 latents {n_latents} k {k}: dense {med_d:.3g} s, topk_decode {med_s:.3g} s, {med_d / med_s:.1f}x, "
              f"max rel diff {diff:.2g}" + ("" if r["agrees"] else "  <-- DISAGREES"), file=sys.stderr, flush=True)
        rows.append(r)
        del data, outs
    print_table(rows, args.out)
    return 0 if all(r["agrees"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
