# ruff: noqa: NPY002  (rsatoolbox draws from the legacy global numpy RNG; the same indices are re-drawn)
"""RSA inference benchmark against rsatoolbox (workload S4 and the permutation null of S1, ../shared/BENCHMARKS.md).

S4a  bootstrap model evaluation over stimuli (rsatoolbox ``eval_bootstrap_pattern``): 1000 bootstraps,
     5 models, 8 subjects, 92 conditions, with the noise ceiling of every sample.
S4b  the same at 200 conditions x 20 subjects.
S1n  the 1000-permutation null of time-resolved RSA: 1000 stimuli, 200 time points, Spearman of every
     brain RDM against a model RDM whose stimulus labels are permuted (rsatoolbox has no batched
     equivalent: one ``compare`` of the permuted model against all time points per permutation).

rsatoolbox evaluates one bootstrap / permutation after another, so its cost is linear in their number:
it is timed on ``--anchor-samples`` of them (interleaved with ours, repeated) and its median is scaled to
the full count; the script says so in the table. Correctness in the same run: neurobridge is run on the
very bootstrap indices / permutations rsatoolbox drew and the outputs are compared (max abs difference).

Usage: ``python benchmarks/rsa_inference.py [--quick] [--device cuda] [--threads 2] [--out table.csv]``.
"""

from __future__ import annotations

import argparse
import csv
import logging
import statistics
import sys
import time
import warnings

import numpy as np
import torch

import neurobridge as nb
from neurobridge.rsa import bootstrap_evaluations, permutation_null

warnings.filterwarnings("ignore")
logging.getLogger("rsatoolbox").setLevel(logging.ERROR)

RT_NAME = {"spearman": "spearman", "pearson": "corr", "cosine": "cosine", "rho-a": "rho-a"}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _timed(fn, device):
    _sync(device)
    t = time.perf_counter()
    out = fn()
    _sync(device)
    return time.perf_counter() - t, out


def _interleave(anchor, ours, repeats: int, device: str):
    """Warm both up, then time them alternately; returns (anchor times, our times, last outputs of each)."""
    _, ref = _timed(anchor, device)
    _, mine = _timed(ours, device)
    t_anchor, t_ours = [], []
    for _ in range(repeats):
        t, ref = _timed(anchor, device)
        t_anchor.append(t)
        t, mine = _timed(ours, device)
        t_ours.append(t)
    return t_anchor, t_ours, ref, mine


def s4(n_cond: int, n_subj: int, n_models: int, n_boot: int, anchor_boot: int, repeats: int, method: str,
       device: str, dtype: torch.dtype) -> dict:
    import rsatoolbox
    from rsatoolbox.inference import eval_bootstrap_pattern

    rng = np.random.default_rng(0)
    p = n_cond * (n_cond - 1) // 2
    truth = rng.random(p)
    data = np.abs(truth + rng.normal(0, 0.5, (n_subj, p)))
    models = np.abs(truth + rng.normal(0, 1.0, (n_models, p)))
    rd = rsatoolbox.rdm.RDMs(data)
    mods = [rsatoolbox.model.ModelFixed(f"m{k}", models[k]) for k in range(n_models)]
    dt = torch.tensor(data, dtype=dtype, device=device)
    mt = torch.tensor(models, dtype=dtype, device=device)

    def anchor():
        np.random.seed(1)
        return eval_bootstrap_pattern(mods, rd, method=RT_NAME[method], N=anchor_boot)

    np.random.seed(1)
    anchor_idx = np.stack([np.random.randint(0, n_cond, n_cond) for _ in range(anchor_boot)])
    anchor_counts = nb.stats.indices_to_counts(anchor_idx, n_cond).to(device)
    full_counts = nb.stats.bootstrap_counts(n_cond, n_boot, seed=0).to(device)

    def ours_same():
        return bootstrap_evaluations(dt, mt, method, stimulus_counts=anchor_counts)

    def ours_full():
        return bootstrap_evaluations(dt, mt, method, stimulus_counts=full_counts)

    _timed(ours_same, device)  # warm-up of the same-indices run, then the timed pair interleaved
    t_anchor, t_ours, ref, _ = _interleave(anchor, ours_full, repeats, device)
    _, same = _timed(ours_same, device)
    diff_eval = float(np.nanmax(np.abs(same.evaluations.double().cpu().numpy() - ref.evaluations)))
    nc = np.stack([same.lower.double().cpu().numpy(), same.upper.double().cpu().numpy()])
    diff_nc = float(np.nanmax(np.abs(nc - ref.noise_ceiling)))
    scale = n_boot / anchor_boot
    med_a = statistics.median(t_anchor) * scale
    med_o = statistics.median(t_ours)
    return {
        "workload": f"S4 {n_cond} cond x {n_subj} subj x {n_models} models, {n_boot} bootstraps ({method})",
        "rsatoolbox_s": med_a, "rsatoolbox_note": f"median of {repeats} x {anchor_boot} bootstraps, scaled x{scale:g}",
        "rsatoolbox_min_s": min(t_anchor) * scale, "rsatoolbox_max_s": max(t_anchor) * scale,
        "neurobridge_s": med_o, "neurobridge_min_s": min(t_ours), "neurobridge_max_s": max(t_ours),
        "speedup": med_a / med_o, "max_abs_diff": max(diff_eval, diff_nc),
        "agrees": bool(max(diff_eval, diff_nc) <= (1e-6 if dtype == torch.float64 else 1e-4)),
        "rate": f"{n_boot / med_o:.0f} bootstraps/s",
    }


def s1_null(n_stim: int, n_chan: int, n_time: int, n_perm: int, anchor_perm: int, repeats: int, device: str,
            dtype: torch.dtype) -> dict:
    import rsatoolbox

    rng = np.random.default_rng(0)
    x = rng.normal(size=(n_time, n_stim, n_chan)).astype(np.float32)
    xt = torch.tensor(x, dtype=dtype, device=device)
    xc = xt - xt.mean(-1, keepdim=True)
    xc = xc / torch.linalg.vector_norm(xc, dim=-1, keepdim=True)
    ii, jj = torch.triu_indices(n_stim, n_stim, offset=1, device=device)
    brain = torch.stack([(1 - xc[t] @ xc[t].T)[ii, jj] for t in range(n_time)])  # correlation distance
    feats = rng.normal(size=(n_stim, 16))
    model = torch.tensor(((feats[:, None] - feats[None]) ** 2).sum(-1), dtype=dtype, device=device)[ii, jj][None]
    perms = nb.stats.permutation_indices(n_stim, n_perm, seed=0)
    brain_rt = rsatoolbox.rdm.RDMs(brain.double().cpu().numpy())
    model_np = model[0].double().cpu().numpy()
    iu = np.triu_indices(n_stim, 1)
    sq = np.zeros((n_stim, n_stim))
    sq[iu] = model_np
    sq = sq + sq.T

    def anchor():
        out = []
        for q in perms[:anchor_perm].numpy():
            out.append(rsatoolbox.rdm.compare(rsatoolbox.rdm.RDMs(sq[np.ix_(q, q)][iu][None]), brain_rt, "spearman")[0])
        return np.stack(out)

    def ours():
        return permutation_null(brain, model, "spearman", permutations=perms)

    t_anchor, t_ours, ref, (obs, null) = _interleave(anchor, ours, repeats, device)
    diff = float(np.max(np.abs(null[:anchor_perm, 0].double().cpu().numpy() - ref)))
    scale = n_perm / anchor_perm
    med_a, med_o = statistics.median(t_anchor) * scale, statistics.median(t_ours)
    p = n_stim * (n_stim - 1) // 2
    return {
        "workload": f"S1 null: {n_stim} stim x {n_time} times, {n_perm} permutations (spearman)",
        "rsatoolbox_s": med_a, "rsatoolbox_note": f"median of {repeats} x {anchor_perm} permutations, scaled x{scale:g}",
        "rsatoolbox_min_s": min(t_anchor) * scale, "rsatoolbox_max_s": max(t_anchor) * scale,
        "neurobridge_s": med_o, "neurobridge_min_s": min(t_ours), "neurobridge_max_s": max(t_ours),
        "speedup": med_a / med_o, "max_abs_diff": diff,
        "agrees": bool(diff <= (1e-6 if dtype == torch.float64 else 1e-4)),
        "rate": f"{2 * n_perm * p * n_time / med_o / 1e9:.1f} GFLOP/s in the null GEMM",
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes, seconds (CI smoke run)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--method", default="spearman", choices=sorted(RT_NAME))
    ap.add_argument("--only", default="S4a,S4b,S1n", help="comma-separated workloads")
    ap.add_argument("--out", help="write the table as CSV")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from threadpoolctl import threadpool_limits

    threadpool_limits(args.threads)
    dtype = getattr(torch, args.dtype)
    print(f"threads: torch {torch.get_num_threads()}, BLAS {args.threads}; device {args.device}; dtype {args.dtype}",
          file=sys.stderr)
    cols = ["workload", "rsatoolbox_s", "neurobridge_s", "speedup", "max_abs_diff", "agrees", "rate", "rsatoolbox_note"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols), flush=True)
    rows = []

    def emit(r: dict) -> None:  # print each row as soon as it is measured
        rows.append(r)
        cells = [f"{r[c]:.3g}" if isinstance(r[c], float) else str(r[c]) for c in cols]
        print("| " + " | ".join(cells) + " |", flush=True)

    with nb.config_context(progress=False):
        only = set(args.only.split(","))
        if args.quick:
            if "S4a" in only:
                emit(s4(30, 6, 3, 200, 5, 2, args.method, args.device, dtype))
            if "S1n" in only:
                emit(s1_null(100, 16, 20, 200, 2, 2, args.device, dtype))
        else:
            if "S4a" in only:
                emit(s4(92, 8, 5, 1000, 30, args.repeats, args.method, args.device, dtype))
            if "S4b" in only:
                emit(s4(200, 20, 5, 1000, 3, args.repeats, args.method, args.device, dtype))
            if "S1n" in only:
                emit(s1_null(1000, 64, 200, 1000, 1, args.repeats, args.device, dtype))
    if any(not r["agrees"] for r in rows):
        print("FAILURE: some outputs differ from rsatoolbox beyond tolerance", file=sys.stderr)
    if args.out:
        with open(args.out, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)


if __name__ == "__main__":
    main()
