"""Extraction benchmarks (BENCHMARKS.md E1/E2): hook overhead vs a bare forward, peak memory vs collect-then-stack.

E1  vision: EfficientNet-Lite0 (real weights), N images, 8 blocks, mean-pooled, streamed to zarr.
E2  text:   small GPT-2 config (random weights), ~20k tokens, all residual streams (h.*), tokens kept
            (pooling="none"), int8 per-unit, streamed to zarr.
K1  kernel: pool_stats reference (torch) vs Triton on CUDA (only with --device cuda).

Compared on the same model, stimuli, batch size and thread settings, in one process, interleaved:
  bare    the model's forward pass over every batch, nothing kept
  naive   forward hooks that keep every batch's full layer outputs in a list, then stack (and pool)
  ours    nb.extract.activations(..., store=tmp.zarr)
Peak memory is the peak RSS of a fresh subprocess per configuration. Correctness is checked in the same run
(ours vs naive, max relative difference). Expected shape: time(ours)/time(bare) close to 1; peak RSS of ours
flat in the number of stimuli, naive growing linearly.

Usage: python benchmarks/extraction.py [--quick] [--device cpu|cuda] [--out table.csv] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

E1_LAYERS = [f"blocks.{i}" for i in range(1, 16, 2)]


# ---------------------------------------------------------------------------------------------- workloads
def e1_workload(n: int):
    from skimage import data

    import neurobridge as nb

    model = nb.models.load("efficientnet_lite0")
    photos = [data.chelsea(), data.astronaut(), data.coffee(), data.rocket(), data.coins(), data.camera()]
    photos = [np.repeat(p[..., None], 3, 2) if p.ndim == 2 else p[..., :3] for p in photos]
    rng = np.random.default_rng(0)
    imgs = np.empty((n, 160, 160, 3), dtype=np.uint8)
    for i in range(n):
        p = photos[i % len(photos)]
        y, x = rng.integers(0, p.shape[0] - 160), rng.integers(0, p.shape[1] - 160)
        imgs[i] = p[y:y + 160, x:x + 160]
    kwargs = dict(layers=E1_LAYERS, pooling="mean")
    return model, imgs, [f"img{i:05d}" for i in range(n)], kwargs, n


def e2_workload(n_tokens: int):
    from transformers import GPT2Config, GPT2Model

    torch.manual_seed(0)
    cfg = GPT2Config(n_layer=6, n_embd=256, n_head=4, vocab_size=4096, n_positions=128)
    module = GPT2Model(cfg).eval()
    seq = 64
    n = max(1, n_tokens // seq)
    rng = np.random.default_rng(0)
    ids = torch.as_tensor(rng.integers(0, cfg.vocab_size, size=(n, seq)), dtype=torch.int64)
    kwargs = dict(layers="h.*", pooling="none", compress="int8")
    return module, ids, list(range(n)), kwargs, n * seq


def _batch_size(workload: str, quick: bool) -> int:
    return 16 if (workload == "E1" and quick) else 32


def _workload(name: str, quick: bool, scale: int = 1):
    if name == "E1":
        return e1_workload((32 if quick else 500) * scale)
    return e2_workload((2048 if quick else 20000) * scale)


# ------------------------------------------------------------------------------------------------- tools
def run_bare(model, stimuli, batch_size, device):
    """The model's forward over every batch; nothing kept."""
    import neurobridge as nb

    ctx = nb.extract._inputs.model_context(model, device=device)
    with ctx.activated(), torch.inference_mode():
        for i in range(0, len(stimuli), batch_size):
            batch = nb.extract._inputs.prepare_batch(ctx, stimuli[i:i + batch_size], word_level=False)
            ctx.forward(batch.inputs)
    return None


def run_naive(model, stimuli, batch_size, device, layers, pooling):
    """Hooks keep every batch's full outputs in lists; stack at the end, then pool (what people often write)."""
    import neurobridge as nb

    ctx = nb.extract._inputs.model_context(model, device=device)
    mods = dict(ctx.module.named_modules())
    names = nb.extract._layers.resolve_layers(ctx.module, layers)
    kept: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    handles = [mods[n].register_forward_hook(
        lambda m, i, o, n=n: kept[n].append(nb.extract._layers.first_tensor(o).detach().cpu())) for n in names]
    try:
        with ctx.activated(), torch.inference_mode():
            for i in range(0, len(stimuli), batch_size):
                batch = nb.extract._inputs.prepare_batch(ctx, stimuli[i:i + batch_size], word_level=False)
                ctx.forward(batch.inputs)
    finally:
        for h in handles:
            h.remove()
    out = {}
    for n in names:
        x = torch.cat(kept.pop(n))
        if pooling == "mean":
            x = x.mean((2, 3)) if x.ndim == 4 else x.mean(1) if x.ndim == 3 else x
        out[n] = x.numpy()
    return out


def run_ours(model, stimuli, ids, batch_size, device, kwargs, store):
    import neurobridge as nb

    if store is not None and Path(store).exists():
        shutil.rmtree(store)
    tree = nb.extract.activations(model, stimuli, stimulus=ids, batch_size=batch_size, device=device,
                                  store=store, progress=False, **kwargs)
    return tree


# ------------------------------------------------------------------------------------------- measurement
def _time(fn):
    t0 = time.perf_counter()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - t0, out


def timing(workload: str, quick: bool, device: str, repeats: int, tmp: Path) -> list[dict]:
    model, stimuli, ids, kwargs, items = _workload(workload, quick)
    bs = _batch_size(workload, quick)
    store = tmp / f"{workload}_time.zarr"
    tools = {
        "bare": lambda: run_bare(model, stimuli, bs, device),
        "naive": lambda: run_naive(model, stimuli, bs, device, kwargs["layers"], kwargs["pooling"]),
        "ours": lambda: run_ours(model, stimuli, ids, bs, device, kwargs, store),
    }
    for fn in tools.values():  # warm up
        fn()
    times: dict[str, list[float]] = {k: [] for k in tools}
    outputs = {}
    for _ in range(repeats):  # interleaved A B C A B C ...
        for name, fn in tools.items():
            dt, out = _time(fn)
            times[name].append(dt)
            outputs[name] = out
    # correctness: ours (read back from the store, dequantised) vs naive (float32, full)
    tree, naive = outputs["ours"], outputs["naive"]
    worst = 0.0
    for layer in tree.attrs["layers"]:
        a = np.asarray(tree[layer]["activations"].values, dtype=np.float64)
        b = naive[layer].astype(np.float64)
        if a.ndim == 3 and b.ndim == 3 and a.shape != b.shape:  # ours pads tokens to the longest sequence
            b = b[:, : a.shape[1]]
        worst = max(worst, float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12)))
    expected_err = 0.01 if kwargs.get("compress") == "int8" else 1e-5
    rows = []
    bare_med = statistics.median(times["bare"])
    for name, ts in times.items():
        med = statistics.median(ts)
        rows.append({
            "workload": workload, "what": "time", "tool": name, "items": items, "median_s": med, "min_s": min(ts),
            "max_s": max(ts), "items_per_s": items / med, "ratio_vs_bare": med / bare_med,
            "max_rel_diff_vs_naive": worst if name == "ours" else float("nan"),
            "correct": (worst <= expected_err) if name == "ours" else True,
        })
    return rows


def _rss_mb(field: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS counter (VmHWM) so the peak covers only what follows (Linux)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _child(args) -> None:
    """Run one configuration in this (fresh) process and print its peak RSS during the extraction."""
    import gc

    torch.set_num_threads(args.threads)
    model, stimuli, ids, kwargs, items = _workload(args.workload, args.quick, args.scale)
    gc.collect()
    reset = _reset_peak()
    setup = _rss_mb("VmRSS")
    t0 = time.perf_counter()
    bs = _batch_size(args.workload, args.quick)
    if args.child == "bare":
        run_bare(model, stimuli, bs, args.device)
    elif args.child == "naive":
        run_naive(model, stimuli, bs, args.device, kwargs["layers"], kwargs["pooling"])
    else:
        run_ours(model, stimuli, ids, bs, args.device, kwargs, args.store)
    dt = time.perf_counter() - t0
    peak = _rss_mb("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"peak_mb": peak, "setup_mb": setup, "seconds": dt, "items": items}))


def memory(workload: str, quick: bool, device: str, threads: int, tmp: Path) -> list[dict]:
    rows = []
    configs = [("bare", 1)] + [(tool, scale) for scale in ((1, 4) if quick else (1, 10)) for tool in ("naive", "ours")]
    for tool, scale in configs:
        cmd = [sys.executable, __file__, "--child", tool, "--workload", workload, "--scale", str(scale),
               "--device", device, "--threads", str(threads), "--store", str(tmp / f"{workload}_{scale}.zarr")]
        if quick:
            cmd.append("--quick")
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"child {tool} failed:\n{proc.stderr[-3000:]}")
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append({"workload": workload, "what": "peak_rss", "tool": tool, "items": res["items"],
                     "setup_mb": res["setup_mb"], "peak_mb": res["peak_mb"],
                     "extra_mb": res["peak_mb"] - res["setup_mb"]})
    for n_items in sorted({r["items"] for r in rows}):
        sub = {r["tool"]: r for r in rows if r["items"] == n_items}
        if "naive" in sub and "ours" in sub:
            for r in sub.values():
                r["ratio_naive_over_ours"] = sub["naive"]["extra_mb"] / max(sub["ours"]["extra_mb"], 1e-3)
    return rows


def kernel_rows(device: str, quick: bool) -> list[dict]:
    """pool_stats reference vs Triton (CUDA) on a (batch, tokens, units) block: GB/s of input read."""
    from neurobridge.kernels.pool_stats import reference
    from neurobridge.kernels.pool_stats import triton as tri  # noqa: F401  (imports triton)

    b, t, u = (8, 128, 768) if quick else (64, 512, 1024)
    x = torch.randn(b, t, u, device=device)
    mask = (torch.rand(b, t, device=device) > 0.1).long()
    gb = x.numel() * x.element_size() / 1e9
    fns = {"reference": lambda: reference.pool_stats(x, mask, int8=True),
           "triton": lambda: tri.pool_stats(x, mask, int8=True)}
    times = {k: [] for k in fns}
    for fn in fns.values():
        fn()
    for _ in range(10):
        for k, fn in fns.items():
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            fn()
            torch.cuda.synchronize()
            times[k].append(time.perf_counter() - t0)
    a, r = fns["reference"](), fns["triton"]()
    diff = float((a.pooled - r.pooled).abs().max())
    ref_med = statistics.median(times["reference"])
    return [{"workload": "K1", "what": "time", "tool": k, "items": b, "median_s": statistics.median(v),
             "min_s": min(v), "max_s": max(v), "gb_per_s": gb / statistics.median(v),
             "ratio_vs_bare": statistics.median(v) / ref_med, "max_rel_diff_vs_naive": diff} for k, v in times.items()]


def _markdown(rows: list[dict], cols: list[str]) -> str:
    def fmt(v):
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes (seconds), for CI smoke runs")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", help="write the tables as CSV")
    ap.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--workloads", default="E1,E2")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--workload", help=argparse.SUPPRESS)
    ap.add_argument("--scale", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--store", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args)
        return
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(args.threads)
    threadpool_limits(args.threads)
    repeats = args.repeats or 3
    print(f"threads: torch={torch.get_num_threads()} blas={args.threads}; device={args.device}; "
          f"quick={args.quick}; repeats={repeats}")
    tmp = Path(tempfile.mkdtemp(prefix="nb_bench_extract_"))
    rows: list[dict] = []
    try:
        for w in args.workloads.split(","):
            t_rows = timing(w, args.quick, args.device, repeats, tmp)
            rows += t_rows
            print(f"\n## {w}: time (interleaved, {repeats} repeats)\n")
            print(_markdown(t_rows, ["tool", "items", "median_s", "min_s", "max_s", "items_per_s", "ratio_vs_bare",
                                     "max_rel_diff_vs_naive", "correct"]))
            if not all(r["correct"] for r in t_rows):
                print("\n**FAILURE: ours differs from the naive extraction beyond tolerance**")
            m_rows = memory(w, args.quick, args.device, args.threads, tmp)
            rows += m_rows
            print(f"\n## {w}: peak RSS (fresh subprocess per row)\n")
            print(_markdown(m_rows, ["tool", "items", "setup_mb", "peak_mb", "extra_mb", "ratio_naive_over_ours"]))
            print("\nextra_mb = peak RSS during the extraction minus RSS before it; expected: ours flat in items, "
                  "naive growing linearly")
        if args.device.startswith("cuda"):
            k_rows = kernel_rows(args.device, args.quick)
            rows += k_rows
            print("\n## K1: pool_stats reference vs Triton\n")
            print(_markdown(k_rows, ["tool", "median_s", "min_s", "max_s", "gb_per_s", "ratio_vs_bare",
                                     "max_rel_diff_vs_naive"]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.out:
        import pandas as pd

        pd.DataFrame(rows).to_csv(args.out, index=False)
        print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
