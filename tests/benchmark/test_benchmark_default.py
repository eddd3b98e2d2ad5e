"""The default run (``neurobridge benchmark`` with no arguments): efficientnet_lite0 on kriegeskorte92.

One session-scoped run of the real command is shared by every test here.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from neurobridge.benchmark import read_scores
from neurobridge.cli import main

MODEL = "efficientnet_lite0"
HIT, MIT = "kriegeskorte92-hit-rsa", "kriegeskorte92-mit-rsa"

# one worker runs the shared default run (pytest -n 2 --dist loadgroup)
pytestmark = pytest.mark.xdist_group("benchmark_default_run")


@pytest.fixture(scope="session")
def default_run(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("default_run") / "results"
    rc = main(["benchmark", "--out", str(out), "--quiet", "--data-dir", str(data_dir)])
    assert rc == 0
    return out, read_scores(out)


def _profile(scores, bench):
    s = scores.sel(model=MODEL, benchmark=bench)
    depth = s["depth"].values
    order = np.flatnonzero(np.isfinite(depth))[np.argsort(depth[np.isfinite(depth)])]
    return s["layer"].values[order].tolist(), s["score"].values[order]


def test_profile_rises_then_falls_with_peak_in_later_blocks(default_run):
    _, scores = default_run
    layers, mit = _profile(scores, MIT)
    assert layers[0] == "stem" and layers[-1] == "head" and len(layers) == 18
    peak = int(np.argmax(mit))
    # the known pattern: correlation with monkey IT peaks around rho 0.3-0.45 in the later blocks
    assert 0.3 <= mit[peak] <= 0.5
    assert layers[peak] in {f"blocks.{i}" for i in range(9, 16)}
    assert mit[peak] > mit[0] + 0.15  # rises ...
    assert mit[peak] > mit[-1] + 0.1  # ... then falls
    assert np.mean(mit[:6]) < np.mean(mit[9:15])
    _, hit = _profile(scores, HIT)
    assert np.argmax(hit) >= 9 and hit.max() > hit[0] + 0.05


def test_heldout_selection_ceiling_and_cis(default_run):
    _, scores = default_run
    for bench in (HIT, MIT):
        s = scores.sel(model=MODEL, benchmark=bench)
        sel = str(s["selected_layer"].values)
        assert sel.startswith("blocks.") and int(sel.split(".")[1]) >= 9
        assert float(s["heldout_score"]) <= float(s["best_score"]) + 0.05
        ok = np.isfinite(s["score"].values)
        assert np.all(s["ci_low"].values[ok] <= s["score"].values[ok])
        assert np.all(s["score"].values[ok] <= s["ci_high"].values[ok])
    hit = scores.sel(model=MODEL, benchmark=HIT)
    lo, up = float(hit["ceiling_lower"]), float(hit["ceiling_upper"])
    assert 0 < lo < up < 1
    assert float(hit["heldout_score"]) < up
    assert float(hit["heldout_normalised_score"]) == pytest.approx(float(hit["heldout_score"]) / lo)
    assert np.isnan(float(scores.sel(model=MODEL, benchmark=MIT)["ceiling_lower"]))  # one RDM: no ceiling
    # all 6 halvings of the 4 subjects
    assert str(hit["selection_rule"].values).startswith("best layer chosen on half of the subjects")
    assert str(hit["selection_rule"].values).endswith("mean over 6 splits") and int(hit["n_splits"]) == 6


def test_output_files(default_run, data_dir):
    out, scores = default_run
    assert scores["score"].dims == ("model", "benchmark", "layer")
    for v in ("score", "ci_low", "ci_high", "normalised_score", "heldout_score", "selected_layer",
              "ceiling_lower", "ceiling_upper"):
        assert v in scores
    lb = pd.read_csv(out / "leaderboard.csv")
    assert sorted(lb["benchmark"]) == [HIT, MIT] and set(lb["model"]) == {MODEL}
    assert {"selected_layer", "heldout_score", "normalised_score", "ci_low", "ci_high"} <= set(lb.columns)
    row = lb.set_index("benchmark").loc[MIT]
    assert row["heldout_score"] == pytest.approx(float(scores.sel(model=MODEL, benchmark=MIT)["heldout_score"]))
    md = (out / "leaderboard.md").read_text()
    assert md.count(f"| {MODEL} |") == 2 and "Held-out layer selection" in md
    for name in (f"profile_{HIT}.png", f"profile_{MIT}.png", f"rdm_{MIT}__{MODEL}.png"):
        assert (out / name).stat().st_size > 5000, name
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64") >= 4
    assert "Held-out layer selection" in html and "half of the subjects" in html
    prov = json.loads((out / "provenance.json").read_text())["runs"][0]
    assert prov["models"][MODEL]["parameters"] > 3_000_000
    assert prov["wall_time_s"] > 0 and "torch" in prov["versions"] and prov["device"].startswith("cpu")
    # data checksums in the provenance are those of the files actually read
    files = prov["benchmarks"][MIT]["data_files"]
    path = data_dir / "kriegeskorte92" / "92_brainRDMs.mat"
    assert files["92_brainRDMs.mat"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert files["92_brainRDMs.mat"] in html
