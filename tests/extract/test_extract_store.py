"""Streaming to zarr: same values as in memory, resume, a real SIGKILL mid-run, flat peak memory, int8 on disk."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from _extract_helpers import WideMLP, minilm_dir, mlp_inputs, tiny_gpt2

import neurobridge as nb
from neurobridge.extract._store import _PROGRESS, _read_progress

HERE = Path(__file__).parent
WORKER = HERE / "_extract_store_worker.py"


def _same_tree(got, want, layers, atol=0.0):
    assert list(got.attrs["layers"]) == list(layers)
    for layer in layers:
        a, b = got[layer]["activations"], want[layer]["activations"]
        assert a.dims == b.dims
        np.testing.assert_array_equal(a["stimulus"].values, b["stimulus"].values)
        np.testing.assert_allclose(a.values, b.values, rtol=0, atol=atol)


def test_store_matches_memory_and_is_lazy(tmp_path):
    net = WideMLP(width=32, n_layers=3)
    x = mlp_inputs(50)
    ids = [f"s{i:02d}" for i in range(50)]
    mem = nb.extract.activations(net, x, "layers.*", stimulus=ids, batch_size=16, progress=False)
    st = nb.extract.activations(net, x, "layers.*", stimulus=ids, batch_size=16, progress=False,
                                store=tmp_path / "a.zarr")
    assert st["layers.0"]["activations"].chunks is not None  # dask-backed, read from disk on demand
    _same_tree(st, mem, ["layers.0", "layers.1", "layers.2"])
    for layer in ("layers.0", "layers.2"):
        for var in ("count", "mean", "var", "absmax", "frac_pos", "top_value", "top_stimulus"):
            np.testing.assert_allclose(st["stats"][layer][var].values.astype(float) if var != "top_stimulus" else 0,
                                       mem["stats"][layer][var].values.astype(float) if var != "top_stimulus" else 0,
                                       rtol=1e-10)
        assert st["stats"][layer]["top_stimulus"].values.tolist() == mem["stats"][layer]["top_stimulus"].values.tolist()
    assert st.attrs["complete"] == 1 and st.attrs["n_committed"] == 50
    again = nb.extract.open_store(tmp_path / "a.zarr")
    _same_tree(again, mem, ["layers.0", "layers.1", "layers.2"])
    assert nb.extract.report(again).index.tolist() == ["layers.0", "layers.1", "layers.2"]


def test_resume_after_exception_skips_written_stimuli(tmp_path):
    net = WideMLP(width=16)
    x = mlp_inputs(45)
    seen: list[int] = []

    def preprocess(batch, fail_at=None):
        seen.append(len(batch))
        if fail_at is not None and len(seen) == fail_at:
            raise RuntimeError("interrupted")
        return torch.as_tensor(np.asarray(batch))

    path = tmp_path / "r.zarr"
    with pytest.raises(RuntimeError, match="interrupted"):
        nb.extract.activations(net, x, "layers.*", batch_size=10, progress=False, store=path,
                               preprocess=lambda b: preprocess(b, fail_at=3))
    partial = nb.extract.open_store(path)
    assert partial.attrs["complete"] == 0 and partial.attrs["n_committed"] == 20
    ref = nb.extract.activations(net, x, "layers.*", batch_size=10, progress=False)
    np.testing.assert_array_equal(partial["layers.1"]["activations"].values, ref["layers.1"]["activations"].values[:20])
    assert int(partial["stats"]["layers.1"]["count"].values[0]) == 20
    seen.clear()
    done = nb.extract.activations(net, x, "layers.*", batch_size=10, progress=False, store=path,
                                  preprocess=preprocess)
    assert sum(seen) == 25  # only the stimuli not yet written were run
    _same_tree(done, ref, ["layers.0", "layers.1"])
    np.testing.assert_allclose(done["stats"]["layers.1"]["mean"].values, ref["stats"]["layers.1"]["mean"].values,
                               rtol=1e-10)
    assert int(done["stats"]["layers.1"]["count"].values[0]) == 45
    seen.clear()
    nb.extract.activations(net, x, "layers.*", batch_size=10, progress=False, store=path, preprocess=preprocess)
    assert seen == []  # complete: nothing is recomputed


def test_resume_refuses_other_stimuli_or_settings(tmp_path):
    net = WideMLP(width=8)
    x = mlp_inputs(12)
    path = tmp_path / "e.zarr"
    nb.extract.activations(net, x, "layers.*", batch_size=5, progress=False, store=path)
    with pytest.raises(ValueError, match="same stimuli"):
        nb.extract.activations(net, x, "layers.*", stimulus=np.arange(12) + 1, progress=False, store=path)
    with pytest.raises(ValueError, match="pooling"):
        nb.extract.activations(net, x, "layers.*", pooling="max", progress=False, store=path)
    (tmp_path / "junk").mkdir()
    with pytest.raises(FileExistsError, match="not a zarr store"):
        nb.extract.activations(net, x, "layers.*", progress=False, store=tmp_path / "junk")


def test_killed_process_leaves_readable_store_and_rerun_completes(tmp_path):
    """SIGKILL a real extraction mid-run, read the store, rerun: no duplicated or missing stimuli."""
    n, path = 400, tmp_path / "k.zarr"
    proc = subprocess.Popen([sys.executable, str(WORKER), "store", str(path), str(n), "0.03"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    committed = 0
    deadline = time.time() + 120
    try:
        while time.time() < deadline and proc.poll() is None:
            if (path / _PROGRESS).exists():
                committed = int(_read_progress(path)["meta"]["committed"])
                if committed >= 60:
                    break
            time.sleep(0.01)
        time.sleep(float(np.random.default_rng().uniform(0, 0.05)))  # land anywhere in a batch
        assert proc.poll() is None, f"worker ended before the kill: {proc.stderr.read().decode()[-2000:]}"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    partial = nb.extract.open_store(path)
    k = partial.attrs["n_committed"]
    assert partial.attrs["complete"] == 0 and 60 <= k < n and k % 10 == 0
    net = WideMLP(width=64, n_layers=2)
    x = mlp_inputs(n)
    ref = nb.extract.activations(net, x, "layers.*", batch_size=10, progress=False)
    for layer in ("layers.0", "layers.1"):
        np.testing.assert_array_equal(partial[layer]["activations"].values, ref[layer]["activations"].values[:k])
    done = nb.extract.activations(net, x, "layers.*", batch_size=10, progress=False, store=path)
    ids = done["layers.1"]["stimulus"].values
    assert len(ids) == n and len(np.unique(ids)) == n
    _same_tree(done, ref, ["layers.0", "layers.1"])
    assert int(done["stats"]["layers.1"]["count"].values[0]) == n
    np.testing.assert_allclose(done["stats"]["layers.1"]["var"].values, ref["stats"]["layers.1"]["var"].values,
                               rtol=1e-8)


def _peaks(runs: list[tuple[str, Path, int]]) -> list[dict]:
    """Peak RSS of fresh worker processes (run side by side: each measures only itself)."""
    procs = [subprocess.Popen([sys.executable, str(WORKER), mode, str(path), str(n)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for mode, path, n in runs]
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=300)
        assert p.returncode == 0, stderr[-3000:]
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out


def test_peak_memory_flat_in_number_of_stimuli(tmp_path):
    small, large = _peaks([("store", tmp_path / "small.zarr", 1000), ("store", tmp_path / "large.zarr", 10000)])
    assert large["rows"] == 10000 and small["rows"] == 1000
    # 10x the stimuli (140 MiB more activations) may cost at most a tenth of that in peak memory
    assert large["peak_mb"] - small["peak_mb"] < 0.1 * (large["data_mb"] - small["data_mb"]), (small, large)


@pytest.mark.slow
def test_peak_memory_check_detects_in_memory_growth(tmp_path):
    """The same measurement on the in-memory path grows by at least the data size (so the check above can fail)."""
    large, naive = _peaks([("store", tmp_path / "large.zarr", 10000), ("memory", tmp_path / "unused", 10000)])
    assert naive["peak_mb"] - large["peak_mb"] > 0.8 * large["data_mb"], (naive, large)


def test_text_tokens_grow_across_batches_in_store(tmp_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(minilm_dir())
    gpt = tiny_gpt2(tok.vocab_size)
    words = ["a", "b", "c", "a much longer sentence with many tokens", "d", "e", "medium length one"]
    kw = dict(layers="h.1", tokenizer=tok, batch_size=3, progress=False, pooling="none")
    mem = nb.extract.activations(gpt, words, **kw)
    st = nb.extract.activations(gpt, words, **kw, store=tmp_path / "t.zarr")
    a, b = st["h.1"]["activations"], mem["h.1"]["activations"]
    assert a.sizes["token"] == b.sizes["token"]
    np.testing.assert_allclose(a.values, b.values, atol=0)
    np.testing.assert_array_equal(st["h.1"]["token_mask"].values, mem["h.1"]["token_mask"].values)


def test_int8_store_holds_int8_codes_and_dequantises_on_read(tmp_path):
    import zarr

    net = WideMLP(width=64)
    x = mlp_inputs(30)
    path = tmp_path / "q.zarr"
    mem = nb.extract.activations(net, x, "layers.*", batch_size=8, progress=False, compress="int8")
    st = nb.extract.activations(net, x, "layers.*", batch_size=8, progress=False, compress="int8", store=path)
    assert zarr.open_array(str(path / "layers.1" / "activations"), mode="r").dtype == np.int8
    assert st["layers.1"]["activations"].dtype == np.float32
    _same_tree(st, mem, ["layers.0", "layers.1"], atol=1e-7)
    assert st["layers.1"].attrs["int8_rel_error"] == pytest.approx(mem["layers.1"].attrs["int8_rel_error"])
    assert nb.extract.report(st)["int8_rel_error"].between(0, 0.01).all()
