"""RSA speed benchmark against rsatoolbox (workloads S1-S3 of ../shared/BENCHMARKS.md).

S1  time-resolved RSA: correlation RDMs at every time point, Spearman against a model RDM
    (rsatoolbox: calc_rdm_movie + compare), plus a permutation null where nb.rsa provides one. The RDM
    rows time exactly what a user calls, ``nb.rsa.rdm(evoked)`` on the float64 (stimulus, channel, time)
    DataArray, labelled result included: the default (float32, square (time, stimulus, stimulus2)),
    ``condensed=True`` (time, pair) and ``dtype="float64"``, each with its peak RSS above the data and
    imports, measured in a fresh process per tool (``--no-memory`` skips those runs).
S2  crossnobis RDMs for many ROIs, conditions x runs (rsatoolbox: calc_rdm(method="crossnobis") per ROI).
S3  volume searchlight with model comparison, 10,164 centres with 123-voxel spheres, 100 conditions
    (rsatoolbox: get_volume_searchlight + get_searchlight_RDMs + compare).

Protocol: same data and thread settings for both tools in one process; each tool is warmed up once,
then the tools are interleaved (A B A B ...) for ``--repeats`` rounds; medians, min and max are
reported with the ratio rsatoolbox / neurobridge, and every timed output is checked against
rsatoolbox's (max absolute difference). Run ``python benchmarks/rsa.py --quick`` for a smoke run, and
``python benchmarks/rsa.py --workloads S1 --repeats 5`` for the S1 numbers of the README.
"""

from __future__ import annotations

import argparse
import csv
import logging
import resource
import statistics
import sys
import time
import warnings
from collections.abc import Callable

import numpy as np
import torch
import xarray as xr
from _common import interleave  # benchmarks/ is the script's folder, first on sys.path

import neurobridge as nb

warnings.filterwarnings("ignore")
logging.getLogger("rsatoolbox").setLevel(logging.ERROR)


def gemm_rate(dtype: torch.dtype, device: str, n: int = 2048) -> float:
    a = torch.randn(n, n, dtype=dtype, device=device)
    b = torch.randn(n, n, dtype=dtype, device=device)
    a @ b
    best = np.inf
    for _ in range(3):
        t = time.perf_counter()
        a @ b
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def row(workload: str, step: str, times: dict, anchor: str, ours: str, diff: float, tol: float,
        flops: float | None = None, gemm: float | None = None) -> dict:
    """One table row: ``times[anchor]`` against ``times[ours]`` (medians, min, max, ratio, agreement)."""
    ta, to = times[anchor], times[ours]
    med_a, med_o = statistics.median(ta), statistics.median(to)
    out = {
        "workload": workload, "step": step,
        "rsatoolbox_median_s": med_a, "rsatoolbox_min_s": min(ta), "rsatoolbox_max_s": max(ta),
        "neurobridge_median_s": med_o, "neurobridge_min_s": min(to), "neurobridge_max_s": max(to),
        "speedup": med_a / med_o, "max_abs_diff": diff, "agrees": bool(diff <= tol),
        "gflops": (flops / med_o / 1e9) if flops else float("nan"),
        "frac_gemm": (flops / med_o / 1e9 / gemm) if (flops and gemm) else float("nan"),
        "rsatoolbox_peak_mib": float("nan"), "neurobridge_peak_mib": float("nan"),
    }
    print(f"  {workload} {step}: rsatoolbox {med_a:.3g} s, neurobridge {med_o:.3g} s, {med_a / med_o:.1f}x, "
          f"max diff {diff:.2g}", file=sys.stderr, flush=True)
    return out


# ----------------------------------------------------------------------------------------- S1
def s1_data(quick: bool) -> dict:
    """S1's evoked responses (float64, dims (stimulus, channel, time)) for both tools, and the model RDM."""
    from rsatoolbox.data import TemporalDataset
    from rsatoolbox.rdm import RDMs

    n_stim, n_ch, n_t = (200, 32, 20) if quick else (1000, 64, 200)
    rng = np.random.default_rng(0)
    feats = rng.standard_normal((n_stim, 10))
    gain = np.sin(np.linspace(0, np.pi, n_t))
    x = (feats @ rng.standard_normal((10, n_ch)))[:, :, None] * gain + rng.standard_normal((n_stim, n_ch, n_t))
    times_s = np.arange(n_t) / 100.0
    model_vec = nb.rsa.condensed_tensor(torch.cdist(torch.as_tensor(feats[:, :5]), torch.as_tensor(feats[:, :5]))).numpy()
    stim = np.arange(n_stim)
    return {"size": (n_stim, n_ch, n_t), "stim": stim, "model_vec": model_vec, "model_rdms": RDMs(model_vec[None]),
            "ds": TemporalDataset(x, obs_descriptors={"stimulus": stim}, time_descriptors={"time": times_s}),
            "brain": nb.core.evoked(x, stimulus=stim, times=times_s),
            "model": nb.rsa.from_condensed(model_vec, stimulus=stim)}


def s1_rdm_tools(data: dict, dev: str, state: dict) -> dict[str, Callable[[], object]]:
    """The RDM step of S1 as each tool's user calls it. Ours: ``nb.rsa.rdm`` on the float64 DataArray,
    labelled result included (float32 by default; square, condensed, and float64 on request)."""
    from rsatoolbox.rdm import calc_rdm_movie

    def rsa_rdms():
        state["movie"] = calc_rdm_movie(data["ds"], method="correlation", descriptor="stimulus")
        return state["movie"].dissimilarities

    def nb_rdms():
        with nb.config_context(device=dev):
            return nb.rsa.rdm(data["brain"], metric="correlation")

    def nb_rdms_condensed():
        with nb.config_context(device=dev):
            r = nb.rsa.rdm(data["brain"], metric="correlation", condensed=True)
        state["vec"] = torch.as_tensor(r.values, device=dev)
        return r

    def nb_rdms_64():
        with nb.config_context(device=dev):
            return nb.rsa.rdm(data["brain"], metric="correlation", dtype="float64")

    return {"rsatoolbox": rsa_rdms, "nb square": nb_rdms, "nb condensed": nb_rdms_condensed,
            "nb square float64": nb_rdms_64}


def _rss_mib(field: str) -> float | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def probe(spec: str, args) -> None:
    """Child process of :func:`peak_memory`: build the data, reset the peak-RSS mark, run one call, print JSON."""
    import json

    workload, name = spec.split(":", 1)
    assert workload == "s1", spec
    data = s1_data(args.quick)
    fn = s1_rdm_tools(data, args.device, {})[name]
    before = _rss_mib("VmRSS")
    try:  # Linux: "5" resets the peak-RSS mark (VmHWM) to the current RSS, so data building does not count
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        exact = True
    except OSError:
        exact = False
    fn()
    peak = _rss_mib("VmHWM") if exact else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    cuda = torch.cuda.max_memory_allocated() / 2**20 if args.device.startswith("cuda") else float("nan")
    print(json.dumps({"before_mib": before if before is not None else float("nan"), "peak_mib": peak,
                      "cuda_peak_mib": cuda}))


def peak_memory(workload: str, name: str, args) -> dict:
    """Peak RSS of one call of ``name`` in a fresh process (BENCHMARKS.md: tracemalloc is blind to torch)."""
    import json
    import subprocess

    cmd = [sys.executable, __file__, "--probe", f"{workload}:{name}", "--device", args.device,
           "--threads", str(args.threads), *(["--quick"] if args.quick else [])]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def s1(args, gemm32) -> list[dict]:
    from rsatoolbox.rdm import calc_rdm_movie
    from rsatoolbox.rdm import compare as rsa_compare

    data = s1_data(args.quick)
    n_stim, n_ch, n_t = data["size"]
    stim, ds, brain, model, model_rdms = data["stim"], data["ds"], data["brain"], data["model"], data["model_rdms"]
    dev = args.device
    mv = torch.as_tensor(data["model_vec"], dtype=torch.float32, device=dev)
    state = {}
    tools = s1_rdm_tools(data, dev, state)

    out = []
    t, o = interleave(tools, args.repeats, dev)
    ref = o["rsatoolbox"]
    flops = 2.0 * n_t * n_stim * n_stim * n_ch
    iu, ju = np.triu_indices(n_stim, k=1)
    assert o["nb square"].dims == ("time", "stimulus", "stimulus2") and o["nb condensed"].dims == ("time", "pair")
    # tolerances: float32 distances (1 - r of unit-norm float32 patterns) carry ~1e-6 of rounding, float64 ~1e-14
    checks = {"nb square": (o["nb square"].values[:, iu, ju], 1e-5, "float32 (default), square"),
              "nb condensed": (o["nb condensed"].values, 1e-5, "float32, condensed=True")}
    checks["nb square float64"] = (o["nb square float64"].values[:, iu, ju], 1e-10, 'dtype="float64", square')
    del o
    mem = {}
    if not args.no_memory:
        mem = {name: peak_memory("s1", name, args) for name in tools}
    for name, (vals, tol, what) in checks.items():
        diff = float(np.abs(vals - ref).max())
        r = row("S1", f"nb.rsa.rdm, float64 DataArray {n_stim}x{n_ch}x{n_t} correlation, {what}", t, "rsatoolbox",
                name, diff, tol, flops, gemm32)
        if mem:
            r["rsatoolbox_peak_mib"] = mem["rsatoolbox"]["peak_mib"] - mem["rsatoolbox"]["before_mib"]
            r["neurobridge_peak_mib"] = mem[name]["peak_mib"] - mem[name]["before_mib"]
            print(f"    peak RSS above data + imports (fresh process): rsatoolbox {r['rsatoolbox_peak_mib']:.0f} MiB, "
                  f"neurobridge {r['neurobridge_peak_mib']:.0f} MiB", file=sys.stderr, flush=True)
        out.append(r)
    del checks

    def rsa_spear():
        return rsa_compare(model_rdms, state["movie"], method="spearman")[0]

    def nb_spear():
        return nb.rsa.compare_vectors(state["vec"], mv, "spearman")

    def rsa_total():
        return rsa_compare(model_rdms, calc_rdm_movie(ds, method="correlation", descriptor="stimulus"),
                           method="spearman")[0]

    def nb_total():
        with nb.config_context(device=dev):
            return nb.rsa.time_resolved_rsa(brain, model, method="spearman", progress=False).values

    t, o = interleave({"rsatoolbox": rsa_spear, "neurobridge": nb_spear}, args.repeats, dev)
    diff = float(np.abs(o["neurobridge"].cpu().numpy() - o["rsatoolbox"]).max())
    out.append(row("S1", "Spearman vs model", t, "rsatoolbox", "neurobridge", diff, 1e-4))
    spear_rsa = statistics.median(t["rsatoolbox"])
    if not args.no_total:
        t, o = interleave({"rsatoolbox": rsa_total, "neurobridge": nb_total}, args.repeats, dev)
        diff = float(np.abs(np.asarray(o["neurobridge"]) - o["rsatoolbox"]).max())
        out.append(row("S1", "time_resolved_rsa (RDMs + Spearman, labelled)", t, "rsatoolbox", "neurobridge", diff,
                       1e-4))
    if hasattr(nb.rsa, "rdm_permutation_test") and not args.no_permutations:
        # rsatoolbox has no batched permutation test: one permutation costs one compare() of all time points,
        # so its time is extrapolated as n_permutations x its Spearman median (marked in the step name)
        n_perm = 100 if args.quick else 1000
        brain_rdms = nb.rsa.from_condensed(state["vec"].cpu().numpy(), stimulus=stim, dims=("time",))

        def nb_perm():
            with nb.config_context(device=dev):
                return nb.rsa.rdm_permutation_test(brain_rdms, model, n_permutations=n_perm, seed=0, progress=False)

        times_nb = []
        nb_perm()
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            nb_perm()
            times_nb.append(time.perf_counter() - t0)
        est = [n_perm * spear_rsa]
        out.append(row("S1", f"{n_perm}-permutation null (rsatoolbox extrapolated: n_perm x compare)",
                       {"rsatoolbox": est, "neurobridge": times_nb}, "rsatoolbox", "neurobridge", 0.0, 1.0))
    return out


# ----------------------------------------------------------------------------------------- S2
def s2(args, gemm32) -> list[dict]:
    from rsatoolbox.data import Dataset
    from rsatoolbox.rdm import calc_rdm

    n_roi, n_vox, n_cond, n_run = (4, 500, 30, 4) if args.quick else (args.s2_rois, 5000, 100, 8)
    rng = np.random.default_rng(1)
    cond = np.tile(np.arange(n_cond), n_run)
    run = np.repeat(np.arange(n_run), n_cond)
    signal = rng.standard_normal((n_roi, n_cond, n_vox)).astype(np.float32)
    data = signal[:, cond] + rng.standard_normal((n_roi, n_cond * n_run, n_vox), dtype=np.float32)
    datasets = [Dataset(data[r].astype(np.float64), obs_descriptors={"cond": cond, "run": run}) for r in range(n_roi)]
    da = xr.DataArray(data, dims=("roi", "trial", "voxel"),
                      coords={"trial": np.arange(len(cond)), "stimulus": ("trial", cond), "run": ("trial", run)})
    dev = args.device

    def rsa():
        return np.stack([calc_rdm(d, method="crossnobis", descriptor="cond", cv_descriptor="run").dissimilarities[0]
                         for d in datasets])

    def ours():
        with nb.config_context(device=dev):
            r = nb.rsa.rdm(da, metric="crossnobis", cv_dim="run")
        return nb.rsa.to_condensed(r).values

    t, o = interleave({"rsatoolbox": rsa, "neurobridge": ours}, args.repeats, dev)
    ref = o["rsatoolbox"]
    diff = float(np.abs(o["neurobridge"] - ref).max() / np.abs(ref).max())
    flops = 2.0 * n_roi * n_run * n_cond * n_cond * n_vox
    return [row("S2", f"crossnobis {n_roi} ROIs x {n_vox} vox, {n_cond} cond x {n_run} runs (rel. diff)", t,
                "rsatoolbox", "neurobridge", diff, 1e-4, flops, gemm32)]


# ----------------------------------------------------------------------------------------- S3
def s3(args, gemm32) -> list[dict]:
    import contextlib
    import io

    from rsatoolbox.rdm import RDMs
    from rsatoolbox.rdm import compare as rsa_compare
    from rsatoolbox.util import searchlight as rsl

    # centres fill an inner block and every sphere (radius 3 voxels, inclusive: 123 voxels) lies inside the volume,
    # so the spheres have the issue's ~120 voxels; the volume's outer 3-voxel shell is data but no centres
    inner, n_cond = ((10, 10, 8), 40) if args.quick else ((22, 22, 21), 100)
    shape = tuple(s + 6 for s in inner)
    rng = np.random.default_rng(2)
    ijk = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), -1).reshape(-1, 3)
    n_vox = len(ijk)
    feats = rng.standard_normal((n_cond, 5))
    data = rng.standard_normal((n_cond, n_vox))
    region = (ijk[:, 0] < shape[0] // 2)
    data[:, region] += feats @ rng.standard_normal((5, int(region.sum())))
    model_vec = nb.rsa.condensed_tensor(torch.cdist(torch.as_tensor(feats), torch.as_tensor(feats))).numpy()
    mask = np.zeros(shape)
    mask[3:-3, 3:-3, 3:-3] = 1
    centre_idx = np.flatnonzero(mask.reshape(-1))
    betas = nb.core.fmri_responses(data, stimulus=np.arange(n_cond), dim="stimulus",
                                   voxel_coords={"i": ijk[:, 0], "j": ijk[:, 1], "k": ijk[:, 2]})
    model = nb.rsa.from_condensed(model_vec, stimulus=np.arange(n_cond))
    dev = args.device
    out = []
    k_mean = 0.0
    for method, rsa_method in (("pearson", "corr"), ("spearman", "spearman")):
        def rsa(rsa_method=rsa_method):
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                # strict < 3.1 voxels: the same 123-voxel spheres as our inclusive radius 3
                centers, neighbors = rsl.get_volume_searchlight(mask, radius=3.1, threshold=0.0)
                sl = rsl.get_searchlight_RDMs(data, centers, neighbors, np.arange(n_cond), method="correlation",
                                              verbose=False)
            res = np.full(n_vox, np.nan)
            res[centers] = rsa_compare(RDMs(model_vec[None]), sl, method=rsa_method)[0]
            return res[centre_idx]

        def ours(method=method):
            nonlocal k_mean
            with nb.config_context(device=dev):
                r = nb.rsa.searchlight(betas, model, radius=3.0, method=method, centers=centre_idx, progress=False)
            k_mean = float(r["n_features"].mean())
            return r.values

        t, o = interleave({"rsatoolbox": rsa, "neurobridge": ours}, args.repeats, dev)
        diff = float(np.nanmax(np.abs(o["neurobridge"] - o["rsatoolbox"])))
        flops = 2.0 * len(centre_idx) * n_cond * n_cond * k_mean
        out.append(row("S3", f"searchlight {len(centre_idx)} centres ({k_mean:.0f} vox), {n_cond} cond, {method}", t,
                       "rsatoolbox", "neurobridge", diff, 1e-4, flops, gemm32))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes (seconds), for CI smoke runs")
    ap.add_argument("--device", default="cpu", help="torch device for neurobridge (cpu, cuda)")
    ap.add_argument("--threads", type=int, default=2, help="threads for torch and BLAS (both tools)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workloads", default="S1,S2,S3")
    ap.add_argument("--out", help="write the table as CSV here")
    ap.add_argument("--no-permutations", action="store_true", help="skip the S1 permutation null")
    ap.add_argument("--no-total", action="store_true", help="skip S1's labelled end-to-end pair (RDMs + Spearman)")
    ap.add_argument("--s2-rois", type=int, default=50, help="ROIs in S2 (time is linear in it for both tools)")
    ap.add_argument("--no-memory", action="store_true",
                    help="skip S1's peak-memory runs (one fresh process per tool and configuration)")
    ap.add_argument("--probe", help=argparse.SUPPRESS)  # internal: one peak-memory measurement (see peak_memory)
    args = ap.parse_args(argv)
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(args.threads)
    limits = threadpool_limits(args.threads)
    if args.probe:
        probe(args.probe, args)
        return 0
    gemm32 = gemm_rate(torch.float32, args.device)
    gemm64 = gemm_rate(torch.float64, args.device)
    from importlib.metadata import version

    print(f"# RSA benchmark ({'quick' if args.quick else 'full'}): torch {torch.__version__} on {args.device}, "
          f"rsatoolbox {version('rsatoolbox')}, threads torch={torch.get_num_threads()} blas={args.threads}; "
          f"measured GEMM fp32 {gemm32:.1f} GFLOP/s, fp64 {gemm64:.1f} GFLOP/s; repeats={args.repeats} interleaved\n")
    rows: list[dict] = []
    fns = {"S1": s1, "S2": s2, "S3": s3}
    for w in args.workloads.split(","):
        rows += fns[w.strip()](args, gemm32)  # each row is also printed to stderr as it finishes
    del limits
    cols = ["workload", "step", "rsatoolbox_median_s", "neurobridge_median_s", "speedup", "max_abs_diff", "agrees",
            "gflops", "frac_gemm", "rsatoolbox_peak_mib", "neurobridge_peak_mib", "rsatoolbox_min_s",
            "rsatoolbox_max_s", "neurobridge_min_s", "neurobridge_max_s"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(f"{r[c]:.4g}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS of this process (both tools): {peak:.0f} MiB")
    bad = [r for r in rows if not r["agrees"]]
    if bad:
        print("FAILED: outputs disagree with rsatoolbox for: " + ", ".join(f"{r['workload']} {r['step']}" for r in bad))
    if args.out:
        with open(args.out, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=cols)
            w.writeheader()
            w.writerows({c: r[c] for c in cols} for r in rows)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
