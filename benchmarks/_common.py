"""What the benchmark scripts share: interleaved timing (../shared/BENCHMARKS.md protocol) and the table."""

from __future__ import annotations

import csv
import time
from collections.abc import Callable

import torch


def interleave(tools: dict[str, Callable[[], object]], repeats: int, device: str) -> tuple[dict, dict]:
    """Warm up each tool once, then run them interleaved (A B A B ...) ``repeats`` times; returns the timings
    (seconds per tool) and each tool's last output."""
    outputs = {name: fn() for name, fn in tools.items()}
    times: dict[str, list[float]] = {name: [] for name in tools}
    for _ in range(repeats):
        for name, fn in tools.items():
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            t = time.perf_counter()
            outputs[name] = fn()
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - t)
    return times, outputs


def print_table(rows: list[dict], out: str | None = None) -> None:
    """Rows as a markdown table on stdout, and as CSV at ``out`` when given (nothing for no rows)."""
    if not rows:
        return
    cols = list(rows[0])
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(f"{r[c]:.4g}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |")
    if out:
        with open(out, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=cols)
            w.writeheader()
            w.writerows(rows)
