"""Scale-out of encoding on dask.distributed (issue 14), small-scale version for a 2-core machine.

Data: a float32 zarr store of n samples x t voxels (default 2,000 x 20,000, written in chunks of 1,000 voxels)
and p features (default 128), 5 outer folds, 13 alphas, per-target alpha; read lazily with
``nb.load(path, chunks={})``.

O  overhead at --overhead-targets (10k) targets: in-process ``nb.encoding.fit_encoding`` (store read into memory,
   1 and 2 torch threads) vs ``nb.encoding.fit_encoding_distributed`` on a LocalCluster of 1 and of 2
   single-threaded worker processes (2 GiB memory limit each), chunks of 1,000 targets. Same solves, so
   "dist 1 worker / in-process 1 thread" is the cost of the distributed path (decompose + scatter once,
   schedule, read chunks, gather); "2 workers / 1 worker" is the scaling of the chunked map.
S  scaling over targets (1k .. t) on 1 and 2 workers: time and peak RSS per worker (the workers' own system
   monitor, sampled every 100 ms; RSS of a worker includes torch and the scattered decompositions).

Protocol: the O tools interleaved (one warm-up each, then --repeats rounds), medians; every distributed result
is checked against the in-process scores in the same run (FAILURE printed if they differ). Threads pinned: one
torch thread per worker (dask's default), the in-process baselines with 1 or 2 threads.

Usage: python benchmarks/scale.py [--quick] [--samples N] [--features P] [--targets T] [--overhead-targets T]
                                  [--repeats R] [--out table.csv]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import interleave, print_table  # noqa: E402

ALPHAS = np.logspace(-2, 10, 13)
CHUNK = 1000


def make_store(path: Path, n: int, p: int, t: int, seed: int = 0):
    """Features with a decaying spectrum and voxels with a range of SNRs, written in voxel chunks."""
    import neurobridge as nb

    rng = np.random.default_rng(seed)
    X = (rng.standard_normal((n, p)) / np.sqrt(1.0 + np.arange(p) / 20.0)).astype(np.float32)
    W = rng.standard_normal((p, t)).astype(np.float32) * np.exp(rng.uniform(-4, 0, t)).astype(np.float32) / np.sqrt(p)
    Y = X @ W + rng.standard_normal((n, t)).astype(np.float32)
    feats = nb.core.activations(X, stimulus=np.arange(n))
    brain = nb.core.fmri_responses(Y, stimulus=np.arange(n), dim="stimulus")
    nb.save(brain.chunk(voxel=CHUNK), path)
    return feats


def tensor_bytes(obj, seen=None) -> int:
    """Bytes of the tensors inside a (nested) plan."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, (list, tuple)):
        return sum(tensor_bytes(o, seen) for o in obj)
    if hasattr(obj, "__dict__"):
        return sum(tensor_bytes(o, seen) for o in vars(obj).values())
    return 0


def _worker_peak(dask_worker, since: float) -> float:
    q = dask_worker.monitor.quantities
    mem = [m for t, m in zip(q["time"], q["memory"], strict=False) if t >= since]
    return max(mem) if mem else float(q["memory"][-1])


def peak_per_worker(client, since: float) -> float:
    """Largest peak RSS (GB) over the workers since ``since``."""
    return max(client.run(_worker_peak, since=since).values()) / 1e9


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--features", type=int, default=128)
    ap.add_argument("--targets", type=int, default=20000)
    ap.add_argument("--overhead-targets", type=int, default=10000)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--only", default="O,S", help="sections to run: O (overhead), S (scaling)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if args.quick:
        args.samples, args.features, args.targets, args.overhead_targets, args.repeats = 400, 32, 4000, 2000, 1

    import dask
    import distributed

    import neurobridge as nb
    from neurobridge.encoding import _distributed as D

    dask.config.set({"distributed.admin.system-monitor.interval": "100ms"})
    logging.getLogger("distributed").setLevel(logging.ERROR)
    n, p, T = args.samples, args.features, args.targets
    tmp = Path(tempfile.mkdtemp())
    store = tmp / "bold.zarr"
    t0 = time.perf_counter()
    feats = make_store(store, n, p, T)
    print(f"store: {n} samples x {T} voxels float32 ({n * T * 4 / 1e9:.2f} GB), {p} features, written in "
          f"{time.perf_counter() - t0:.1f} s; {torch.__version__}, dask {dask.__version__}")
    lazy = nb.load(store, chunks={})
    kw = dict(alphas=ALPHAS, progress=False)
    rows, failures = [], 0

    def check(res, ref, what, strict=True):
        nonlocal failures
        diff = float(np.abs(res.score.values - ref.score.values).max())
        if strict and diff > 1e-4:  # same float32 solves; other thread counts may pick other alphas on near-ties
            failures += 1
            print(f"FAILURE {what}: distributed scores differ from in-process by {diff:.2e}")
        return diff

    def in_process(t, threads):
        def run():
            torch.set_num_threads(threads)
            return nb.encoding.fit_encoding(feats, nb.load(store).isel(voxel=slice(0, t)), **kw)
        return run

    def dist(client, t):
        return lambda: nb.encoding.fit_encoding_distributed(feats, lazy.isel(voxel=slice(0, t)), client=client,
                                                            chunk_targets=CHUNK, **kw)

    clusters = {}
    for w in (1, 2):
        cl = distributed.LocalCluster(n_workers=w, threads_per_worker=1, processes=True, memory_limit="2GiB",
                                      dashboard_address=None, silence_logs=logging.ERROR)
        c = distributed.Client(cl, set_as_default=False)
        c.run(lambda: bool(__import__("neurobridge.encoding._distributed")))
        clusters[w] = (cl, c)

    # plan size: what is scattered once (decompositions of the 5 outer folds)
    design = nb.encoding.prepare_design(feats, D._probe(lazy, "stimulus"))
    folds = nb.encoding.make_folds(n, 5)
    est = D._default_estimator(design, ALPHAS, "r2")
    plans, _, _ = D._outer_plans(design, folds, est, 0, False)
    plan_gb = tensor_bytes(plans) / 1e9
    print(f"scattered decompositions: {plan_gb:.3f} GB ({plan_gb * 1e9 / (n * p * 4):.1f} x the float32 design)")

    # O: overhead at the overhead size, interleaved
    t_o = min(args.overhead_targets, T)
    only = set(args.only.upper().split(","))
    ref = None
    tools = {} if "O" not in only else {"in-process 1 thread": in_process(t_o, 1), "in-process 2 threads": in_process(t_o, 2),
             "distributed 1 worker": dist(clusters[1][1], t_o), "distributed 2 workers": dist(clusters[2][1], t_o)}
    if tools:
        times, outs = interleave(tools, args.repeats, "cpu")
        torch.set_num_threads(1)
        ref = outs["in-process 1 thread"]
        for stat, fn in (("median", statistics.median), ("min", min)):
            v = {k: fn(ts) for k, ts in times.items()}
            print(f"O ({stat} of {args.repeats}): overhead of the distributed path at {t_o} targets: "
                  f"{100 * (v['distributed 1 worker'] / v['in-process 1 thread'] - 1):+.1f}% (1 worker vs in-process, "
                  f"1 thread each); 2 workers vs 1 worker: {v['distributed 1 worker'] / v['distributed 2 workers']:.2f}x "
                  f"faster; 2 workers vs in-process 2 threads: "
                  f"{v['in-process 2 threads'] / v['distributed 2 workers']:.2f}x faster")
        base = statistics.median(times["in-process 1 thread"])
        for name, ts in times.items():
            rows.append({"section": "O", "tool": name, "targets": t_o, "median_s": statistics.median(ts),
                         "min_s": min(ts), "vs_in_process_1t": statistics.median(ts) / base,
                         "max_score_diff": check(outs[name], ref, name, strict=name.startswith("distributed")),
                         "peak_worker_gb": float("nan")})

    # S: scaling over targets
    sizes = [s for s in (1000, 2000, 5000, 10000, 20000, 50000, 100000, 200000) if s <= T]
    if args.quick:
        sizes = [1000, T]
    if "S" not in only:
        sizes = []
    refs = {}
    for w in (1, 2):
        c = clusters[w][1]
        for t in sizes:
            since = time.time()
            start = time.perf_counter()
            res = dist(c, t)()
            dt = time.perf_counter() - start
            peak = peak_per_worker(c, since)
            if t not in refs:
                refs[t] = in_process(t, 1)() if (t != t_o or ref is None) else ref
            rows.append({"section": "S", "tool": f"distributed {w} worker{'s' * (w > 1)}", "targets": t,
                         "median_s": dt, "min_s": dt, "vs_in_process_1t": float("nan"),
                         "max_score_diff": check(res, refs[t], f"S {w} workers {t} targets"),
                         "peak_worker_gb": peak})
            print(f"S: {w} worker(s), {t:>6} targets: {dt:7.2f} s, peak RSS per worker {peak:.2f} GB", flush=True)
    s1 = [r for r in rows if r["section"] == "S" and r["tool"] == "distributed 1 worker"]
    if len(s1) >= 2:
        slope = (s1[-1]["median_s"] - s1[0]["median_s"]) / (s1[-1]["targets"] - s1[0]["targets"]) * 1000
        print(f"per 1,000 targets on one worker: {slope:.2f} s (n={n}, p={p}, 5 folds x 5 inner, 13 alphas)")
    for cl, c in clusters.values():
        c.close()
        cl.close()
    print_table(rows, args.out)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
