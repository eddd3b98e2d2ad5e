"""Smoke runs of the side-by-side benchmark scripts (``--quick``: small sizes, every tool, the in-run
correctness checks against the anchors). Slow tier: ~3 minutes in all on 2 cores."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.parametrize("script", ["encoding", "rsa", "rsa_inference", "extraction", "decoding", "sae", "calibration"])
def test_benchmark_script_quick(script, tmp_path):
    out = tmp_path / "table.csv"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / f"{script}.py"), "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "FAILURE" not in proc.stdout + proc.stderr
    assert out.exists() and out.stat().st_size > 0
