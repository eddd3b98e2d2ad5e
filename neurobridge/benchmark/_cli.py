"""``neurobridge benchmark``: score models against brain benchmarks from the command line."""

from __future__ import annotations

import argparse
import datetime as _dt
import sys
from pathlib import Path

__all__ = ["add_parser", "run"]

_EPILOG = """examples:
  neurobridge benchmark                                   # efficientnet_lite0 on kriegeskorte92 (hIT + mIT RSA)
  neurobridge benchmark --model my_net.py:build --out results/
  neurobridge benchmark --model minilm --benchmark mne-sample-meg-rsa
  neurobridge benchmark --benchmark my_lab.toml --layers 'blocks.*'
  neurobridge benchmark --list

errors print one line on stderr (exit status 2 for a bad argument, 1 otherwise); --debug adds the traceback.
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``benchmark`` subcommand to the ``neurobridge`` parser."""
    p = subparsers.add_parser(
        "benchmark", help="score a model against brain data (RSA / encoding), with a leaderboard and report",
        description="Score models against brain benchmarks: per-layer profiles with noise ceilings and bootstrap "
                    "CIs, held-out layer selection, scores.nc, leaderboard.csv/.md, figures and report.html. "
                    "A second model in the same --out extends the leaderboard.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", dest="models", action="extend", nargs="+", metavar="SPEC",
                   help="model spec: registry name (efficientnet_lite0, minilm), HF id or folder, torchvision:<name>, "
                        "or path/to/file.py:build_fn (default: efficientnet_lite0)")
    p.add_argument("--benchmark", dest="benchmarks", action="extend", nargs="+", metavar="NAME",
                   help="benchmark name, dataset name (all its benchmarks) or .toml file "
                        "(default: kriegeskorte92-hit-rsa kriegeskorte92-mit-rsa)")
    p.add_argument("--layers", action="extend", nargs="+", metavar="GLOB",
                   help="layer names or glob patterns (default: the model's default layers)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: the configured device or cpu)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="output folder (default: ./neurobridge-results/<timestamp>); an existing one is extended")
    p.add_argument("--data-dir", default=None, metavar="DIR",
                   help="folder holding the datasets (default: $NEUROBRIDGE_DATA, else the user cache)")
    p.add_argument("--n-bootstrap", type=int, default=1000, metavar="N", help="bootstrap resamples for CIs (0: none)")
    p.add_argument("--seed", type=int, default=0, help="seed of bootstraps and held-out splits")
    p.add_argument("--batch-size", type=int, default=32, help="stimuli per forward pass")
    p.add_argument("--no-download", action="store_true", help="never download data; fail with where to put files")
    p.add_argument("--no-figures", action="store_true", help="skip PNG figures and report.html")
    p.add_argument("--quiet", action="store_true", help="no progress bars (default: bars when stderr is a terminal, none in logs)")
    p.add_argument("--list", action="store_true", help="list the available benchmarks and exit")
    return p


def _default_out() -> Path:
    stamp = _dt.datetime.now().strftime("%Y-%m-%dT%H%M%S")
    return Path("neurobridge-results") / stamp


def _summary(df, out: Path, wall: float) -> str:
    lines = [f"\nneurobridge benchmark: results in {out} ({wall:.0f} s)", ""]
    head = f"{'model':<24} {'benchmark':<26} {'layer (held out)':<18} {'score':>7} {'95% CI':>17} {'/ceiling':>9}"
    lines += [head, "-" * len(head)]

    def f(x):
        return "   n/a" if x != x else f"{x:6.3f}"
    for _, r in df.iterrows():
        ci = "n/a" if r.ci_low != r.ci_low else f"[{r.ci_low:.3f}, {r.ci_high:.3f}]"
        lines.append(f"{str(r.model)[:24]:<24} {str(r.benchmark)[:26]:<26} {str(r.selected_layer)[:18]:<18} "
                     f"{f(r.heldout_score):>7} {ci:>17} {f(r.normalised_score):>9}" + ("  (demo)" if r.demo else ""))
    lines += ["", f"report: {out / 'report.html'}   leaderboard: {out / 'leaderboard.md'}"]
    return "\n".join(lines)


def _check_device(device: str | None) -> None:
    """Refuse an unusable ``--device`` before any data or model is loaded."""
    from neurobridge.cli import CommandError
    from neurobridge.models._registry import _device_problem

    problem = _device_problem(device)
    if problem is not None:
        raise CommandError(f"--device {device}: {problem}; use --device cpu")


def _check_benchmarks(names) -> None:
    """Resolve ``--benchmark`` up front: an unknown name or a broken .toml is a usage error (exit status 2)."""
    from neurobridge.cli import CommandError

    from . import _registry

    try:
        _registry.resolve(names)
    except (ValueError, KeyError, FileNotFoundError) as err:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        raise CommandError(f"--benchmark: {msg}") from err


def run(args: argparse.Namespace) -> int:
    """Run ``neurobridge benchmark`` with parsed arguments; returns the exit status.

    The device and the benchmark names are checked before anything is loaded; errors are raised for
    :func:`neurobridge.cli.main` to print as one line (:class:`neurobridge.cli.CommandError` carries the exit
    status of usage errors).
    """
    import time

    from . import _registry
    from ._report import leaderboard
    from ._runner import run as run_benchmark

    if args.list:
        for name in _registry.available():
            b = _registry.get(name)
            print(f"{name:<28} {b.metric:<9} {b.description}")
        return 0
    _check_device(args.device)
    _check_benchmarks(args.benchmarks)
    out = Path(args.out) if args.out else _default_out()
    t0 = time.perf_counter()
    scores = run_benchmark(
        args.models, args.benchmarks, layers=args.layers, device=args.device, out=out, data_dir=args.data_dir,
        n_bootstrap=args.n_bootstrap, seed=args.seed, batch_size=args.batch_size, download=not args.no_download,
        figures=not args.no_figures, progress=False if args.quiet else None)
    print(_summary(leaderboard(scores), out, time.perf_counter() - t0), file=sys.stdout)
    return 0
