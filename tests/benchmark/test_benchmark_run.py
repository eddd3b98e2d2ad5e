"""``nb.benchmark.run`` end to end on a tiny registered benchmark with a custom ``file.py:build_fn`` model."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from _benchmark_helpers import planted_rdms

import neurobridge as nb
from neurobridge.benchmark import UnusableLayersError


@pytest.fixture
def tiny_bench(tiny_model_file, random_images):
    """A benchmark whose brain RDMs are planted from layer '2' of the tiny CNN (4 subjects)."""
    model = nb.models.load(f"{tiny_model_file}:build")
    tree = nb.extract.activations(model, random_images, progress=False, stats=False)
    acts = {k: tree[k]["activations"] for k in tree.attrs["layers"]}
    brain = planted_rdms(acts, "2", n_subjects=4, noise=1.0)
    bench = nb.benchmark.register("tiny-rsa", brain, random_images, split="stimulus", n_splits=6, overwrite=True)
    yield bench
    nb.benchmark.unregister("tiny-rsa")


def test_custom_model_from_file_spec_writes_every_output(tmp_path, tiny_model_file, tiny_bench):
    spec = f"{tiny_model_file}:build"
    out = tmp_path / "res"
    scores = nb.benchmark.run(spec, "tiny-rsa", out=out, n_bootstrap=50, progress=False)
    assert scores["score"].dims == ("model", "benchmark", "layer")
    assert str(scores["selected_layer"].sel(model=spec, benchmark="tiny-rsa").values) == "2"
    for name in ("scores.nc", "leaderboard.csv", "leaderboard.md", "report.html", "provenance.json",
                 "profile_tiny-rsa.png"):
        assert (out / name).is_file(), name
    assert list(out.glob("rdm_tiny-rsa__*.png"))
    on_disk = nb.benchmark.read_scores(out)
    np.testing.assert_allclose(on_disk["score"].values, scores["score"].values)
    lb = pd.read_csv(out / "leaderboard.csv", dtype={"selected_layer": str, "best_layer": str})
    assert lb.shape[0] == 1 and lb.loc[0, "selected_layer"] == "2"
    assert lb.loc[0, "ci_low"] <= lb.loc[0, "heldout_score"] + 0.2 and lb.loc[0, "ci_low"] < lb.loc[0, "ci_high"]
    # ceiling bounds ordered; normalised score = held-out / lower ceiling
    assert lb.loc[0, "ceiling_lower"] <= lb.loc[0, "ceiling_upper"]
    assert lb.loc[0, "normalised_score"] == pytest.approx(lb.loc[0, "heldout_score"] / lb.loc[0, "ceiling_lower"],
                                                          rel=1e-4)
    html = (out / "report.html").read_text()
    assert "Held-out layer selection" in html and "random half of the stimuli" in html
    assert "data:image/png;base64" in html and "parameters" in html and "wall time" in html
    md = (out / "leaderboard.md").read_text()
    assert "| model |" in md and "tiny-rsa" in md


def test_second_model_extends_the_leaderboard(tmp_path, tiny_model_file, tiny_bench):
    out = tmp_path / "res"
    spec = f"{tiny_model_file}:build"
    nb.benchmark.run({"tiny": spec}, "tiny-rsa", out=out, n_bootstrap=0, progress=False, figures=False)
    untrained = nb.models.load(spec)
    for p in untrained.module.parameters():  # a different model: re-randomised weights
        p.data.normal_(generator=__import__("torch").Generator().manual_seed(5))
    nb.benchmark.run({"shuffled": untrained}, "tiny-rsa", out=out, n_bootstrap=0, progress=False, figures=False)
    lb = pd.read_csv(out / "leaderboard.csv")
    assert sorted(lb["model"]) == ["shuffled", "tiny"]
    assert lb.set_index("model").loc["tiny", "heldout_score"] > lb.set_index("model").loc["shuffled", "heldout_score"]
    runs = json.loads((out / "provenance.json").read_text())["runs"]
    assert len(runs) == 2 and set(runs[1]["models"]) == {"shuffled"}
    # rerunning a model replaces its row instead of duplicating it
    nb.benchmark.run({"tiny": spec}, "tiny-rsa", out=out, n_bootstrap=0, progress=False, figures=False)
    assert len(pd.read_csv(out / "leaderboard.csv")) == 2
    assert nb.benchmark.read_scores(out).sizes["model"] == 2


def test_model_without_usable_layers_says_which_and_why(tiny_model_file, tiny_bench):
    with pytest.raises(UnusableLayersError, match=r"layer '1': its activations are identical for all 24 stimuli"):
        nb.benchmark.run(f"{tiny_model_file}:dead", "tiny-rsa", n_bootstrap=0, progress=False)


def test_unusable_layers_are_skipped_and_reported(tmp_path, tiny_model_file, tiny_bench, caplog):
    out = tmp_path / "res"
    with caplog.at_level("WARNING", logger="neurobridge"):
        scores = nb.benchmark.run({"pd": f"{tiny_model_file}:partly_dead"}, "tiny-rsa", out=out, n_bootstrap=0,
                                  progress=False)
    assert "skipping layer '3'" in caplog.text
    s = scores.sel(model="pd", benchmark="tiny-rsa")
    assert np.isfinite(float(s["score"].sel(layer="1"))) and "3" not in s["layer"].values
    prov = json.loads((out / "provenance.json").read_text())["runs"][0]
    assert "identical for all 24 stimuli" in prov["skipped_layers"]["pd"]["3"]
    assert "skipped layer 3 of pd" in (out / "report.html").read_text()


def test_bare_module_from_file_is_benchmarked(tiny_model_file, tiny_bench):
    # build_fn may return a plain nn.Module: images reach it as float (n, 3, h, w) in [0, 1]
    scores = nb.benchmark.run({"bare": f"{tiny_model_file}:bare"}, "tiny-rsa", n_bootstrap=0, progress=False)
    assert scores["layer"].values.tolist() == ["0", "1"]
    assert np.isfinite(scores["score"].values).all()


def test_unknown_model_suggests_close_names(tiny_bench):
    with pytest.raises(ValueError, match="efficientnet_lite0"):
        nb.benchmark.run("efficientnet_lte0", "tiny-rsa", progress=False)


def test_unknown_benchmark_suggests_close_names():
    with pytest.raises(ValueError, match="did you mean 'kriegeskorte92-hit-rsa'"):
        nb.benchmark.run("efficientnet_lite0", "kriegeskorte92-hit-rssa", progress=False)


def test_offline_without_data_says_where_to_put_files(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        nb.benchmark.run("efficientnet_lite0", "kriegeskorte92-mit-rsa", data_dir=tmp_path, download=False,
                         progress=False)
    msg = str(info.value)
    assert str(tmp_path / "kriegeskorte92") in msg and "92_brainRDMs.mat" in msg


def test_wrong_modality_is_refused(tiny_model_file):
    ids = ["a cat", "a dog", "a car", "a cup", "a hat"]
    brain = nb.core.rdm(np.random.default_rng(0).random((5, 5)), stimulus=ids)
    brain = (brain + brain.transpose("stimulus", "stimulus2").values) / 2
    brain = brain.copy(data=brain.values * (1 - np.eye(5)))
    nb.benchmark.register("text-toy", brain, ids, modality="text", overwrite=True)
    try:
        with pytest.raises(ValueError, match="vision model but benchmark 'text-toy' shows text"):
            nb.benchmark.run(f"{tiny_model_file}:build", "text-toy", progress=False)
    finally:
        nb.benchmark.unregister("text-toy")


def test_combine_and_split_round_trip_with_different_layers():
    p1 = xr.Dataset({"score": ("layer", [0.1, 0.2]), "depth": ("layer", [0.0, 1.0]), "selected_layer": "b",
                     "heldout_score": 0.15}, coords={"layer": ["a", "b"]})
    p2 = xr.Dataset({"score": ("layer", [0.3, 0.1, 0.0]), "depth": ("layer", [0.0, 1.0, 2.0]),
                     "selected_layer": "x", "heldout_score": 0.25}, coords={"layer": ["x", "y", "z"]})
    ds = nb.benchmark.combine({("m1", "b1"): p1, ("m2", "b1"): p2})
    assert ds.sizes["layer"] == 5 and np.isnan(ds["score"].sel(model="m1", layer="x"))
    back = nb.benchmark.split_pieces(ds)
    assert back[("m2", "b1")]["layer"].values.tolist() == ["x", "y", "z"]
    np.testing.assert_allclose(back[("m1", "b1")]["score"].values, [0.1, 0.2])
    # a time-resolved piece next to a static one: score_time only where it exists; netCDF round trip
    p3 = p1.assign(score_time=(("layer", "time"), np.arange(6.0).reshape(2, 3))).assign_coords(time=[0, 0.1, 0.2])
    ds = nb.benchmark.combine({("m1", "meg"): p3, ("m1", "b1"): p1, ("m2", "b1"): p2})
    assert ds["score_time"].dims == ("model", "benchmark", "layer", "time")
    back = nb.benchmark.split_pieces(ds)
    assert "time" not in back[("m1", "b1")].dims and str(back[("m1", "b1")]["selected_layer"].values) == "b"
    np.testing.assert_allclose(back[("m1", "meg")]["score_time"].values, np.arange(6.0).reshape(2, 3))
    assert ("m2", "meg") not in back
