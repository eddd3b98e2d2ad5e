"""Streaming to zarr: same values as in memory, resume, a real SIGKILL mid-run, flat peak memory, int8 on disk."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from _extract_helpers import WideMLP, minilm_dir, mlp_inputs, tiny_gpt2

import neurobridge as nb
from neurobridge.extract._store import _PROGRESS

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
    state = {"fail_at": 3}

    def preprocess(batch):  # the same function in both runs: the store's fingerprint covers preprocess
        seen.append(len(batch))
        if state["fail_at"] is not None and len(seen) == state["fail_at"]:
            raise RuntimeError("interrupted")
        return torch.as_tensor(np.asarray(batch))

    path = tmp_path / "r.zarr"
    with pytest.raises(RuntimeError, match="interrupted"):
        nb.extract.activations(net, x, "layers.*", batch_size=10, progress=False, store=path, preprocess=preprocess)
    partial = nb.extract.open_store(path)
    assert partial.attrs["complete"] == 0 and partial.attrs["n_committed"] == 20
    ref = nb.extract.activations(net, x, "layers.*", batch_size=10, progress=False)
    np.testing.assert_array_equal(partial["layers.1"]["activations"].values, ref["layers.1"]["activations"].values[:20])
    assert int(partial["stats"]["layers.1"]["count"].values[0]) == 20
    seen.clear()
    state["fail_at"] = None
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


class Interruptible:
    """A preprocess that raises in its ``fail_at``-th call (1-based), as a crash would.

    ``fail_at`` and the call count are private, so they are not part of the store's fingerprint: a rerun with
    ``Interruptible()`` resumes a store written by ``Interruptible(fail_at=3)``; ``scale`` is public and is."""

    def __init__(self, fail_at: int | None = None, scale: float = 1.0):
        self._fail_at, self._calls, self.scale = fail_at, 0, scale

    def __call__(self, batch):
        self._calls += 1
        if self._calls == self._fail_at:
            raise RuntimeError("interrupted")
        return self.scale * torch.as_tensor(np.asarray(batch))


_BASE = {"net": WideMLP(width=8, n_layers=3), "layers": "layers.0", "pooling": "mean", "preprocess": Interruptible(),
         "top_k": 10, "stats": True, "compress": None}


def _extract(path, x, fail_at=None, **change):
    kw = {**_BASE, **change}
    pre = kw.pop("preprocess")
    if fail_at is not None:
        pre = Interruptible(fail_at=fail_at, scale=pre.scale)
    return nb.extract.activations(kw.pop("net"), x, kw.pop("layers"), batch_size=10, progress=False, store=path,
                                  preprocess=pre, **kw)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"net": WideMLP(width=8, n_layers=3, seed=1)},
         r"weights differ: same architecture \(parameter names, shapes and dtypes\) but other values"),
        ({"net": WideMLP(width=16, n_layers=3)}, r"weights differ: the store's model has 6 tensors"),
        ({"layers": "layers.*"},
         r"layers: store has \['layers.0'\], call asks \['layers.0', 'layers.1', 'layers.2'\]"),
        ({"pooling": "max"}, r"pooling: store has 'mean', call asks 'max'"),
        ({"preprocess": Interruptible(scale=2.0)}, r"preprocess: store has .*Interruptible .*\(scale=1.0\), call asks "
                                                   r".*Interruptible .*\(scale=2.0\)"),
        ({"top_k": 3}, r"top_k: store has 10, call asks 3"),
        ({"stats": False}, r"stats: store has True, call asks False"),
        ({"compress": "int8"}, r"compress: store has '', call asks 'int8'"),
    ],
    ids=["other-weights", "other-architecture", "more-layers", "pooling", "preprocess", "top_k", "stats", "int8"],
)
def test_resume_refuses_another_extraction_naming_what_differs(tmp_path, change, match):
    """Same model class and stimuli, other weights / layers / settings: refused, naming the difference and the fix,
    and the store is left as it was (interrupted or complete)."""
    x = mlp_inputs(40)
    path = tmp_path / "f.zarr"
    with pytest.raises(RuntimeError, match="interrupted"):
        _extract(path, x, fail_at=3)
    before = nb.extract.open_store(path)["layers.0"]["activations"].values
    with pytest.raises(ValueError, match=match) as info:
        _extract(path, x, **change)
    assert str(path) in str(info.value) and "new store= path" in str(info.value)
    after = nb.extract.open_store(path)
    assert after.attrs["n_committed"] == 20 and after.attrs["layers"] == ["layers.0"]
    np.testing.assert_array_equal(after["layers.0"]["activations"].values, before)
    _extract(path, x)  # the same call completes it...
    with pytest.raises(ValueError, match=match):  # ...and a complete store refuses the other call too
        _extract(path, x, **change)


def test_resume_with_same_everything_equals_an_uninterrupted_run(tmp_path):
    """A fresh but identical model object and preprocess resume the store; rows and statistics equal a run that
    was never interrupted, bit for bit."""
    x = mlp_inputs(40)
    with pytest.raises(RuntimeError, match="interrupted"):
        _extract(tmp_path / "a.zarr", x, fail_at=3, layers="layers.*")
    assert nb.extract.open_store(tmp_path / "a.zarr").attrs["n_committed"] == 20
    resumed = _extract(tmp_path / "a.zarr", x, layers="layers.*", net=WideMLP(width=8, n_layers=3),
                       preprocess=Interruptible())
    whole = _extract(tmp_path / "b.zarr", x, layers="layers.*")
    layers = ["layers.0", "layers.1", "layers.2"]
    assert resumed.attrs["complete"] == 1 and resumed.attrs["n_committed"] == 40
    _same_tree(resumed, whole, layers)
    for layer in layers:
        for var in ("count", "mean", "var", "absmax", "top_value", "top_stimulus"):
            np.testing.assert_array_equal(resumed["stats"][layer][var].values, whole["stats"][layer][var].values)


def test_store_without_fingerprint_resumes_with_a_warning(tmp_path):
    """Stores written before fingerprints (no 'fingerprint' root attr): accepted with a UserWarning when the model
    name, pooling and layers match; a layer list that differs is refused (it used to be silently narrowed)."""
    import zarr

    x = mlp_inputs(40)
    path = tmp_path / "old.zarr"
    with pytest.raises(RuntimeError, match="interrupted"):
        _extract(path, x, fail_at=3, layers="layers.*")
    root = zarr.open_group(str(path), mode="r+")
    root.attrs.pop("fingerprint") if hasattr(root.attrs, "pop") else root.attrs.__delitem__("fingerprint")
    assert "fingerprint" not in dict(zarr.open_group(str(path), mode="r").attrs)
    with pytest.raises(ValueError, match=r"layers: the store .* holds \['layers.0', 'layers.1', 'layers.2'\], "
                                         r"this call asks \['layers.0'\]; pass layers="):
        _extract(path, x, layers="layers.0")
    with pytest.warns(UserWarning, match="without a fingerprint.*weights and preprocessing cannot be checked"):
        done = _extract(path, x, layers="layers.*")
    _same_tree(done, _extract(tmp_path / "ref.zarr", x, layers="layers.*"), ["layers.0", "layers.1", "layers.2"])


def _truncate(f: Path) -> None:
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])


def _bad_json(f: Path) -> None:
    with np.load(f) as z:
        arrays = {k: z[k] for k in z.files if k != "meta"}
    with open(f, "wb") as fh:
        np.savez(fh, meta=np.asarray('{"committed": 20, "names": ["layers.0"'), **arrays)


@pytest.mark.parametrize("damage", [_truncate, _bad_json, lambda f: f.write_bytes(b"")], ids=["truncated", "json",
                                                                                             "empty"])
def test_damaged_commit_record_names_the_file_and_the_fix(tmp_path, damage):
    x = mlp_inputs(40)
    path = tmp_path / "c.zarr"
    with pytest.raises(RuntimeError, match="interrupted"):
        _extract(path, x, fail_at=3)
    record = path / _PROGRESS
    damage(record)
    for call in (lambda: _extract(path, x), lambda: nb.extract.open_store(path)):
        with pytest.raises(ValueError, match="commit record") as info:
            call()
        msg = str(info.value)
        assert str(record) in msg and f"Delete the store folder {path}" in msg and f"delete just {record}" in msg
    record.unlink()  # the fix the message gives: every row is written again
    done = _extract(path, x)
    assert done.attrs["complete"] == 1 and done.attrs["n_committed"] == 40
    _same_tree(done, _extract(tmp_path / "ref.zarr", x), ["layers.0"])


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


@pytest.mark.parametrize(
    ("point", "committed"),
    [("mid_batch", 60), ("after_arrays", 60), ("after_commit", 70)],
)
def test_killed_process_leaves_readable_store_and_rerun_completes(tmp_path, point, committed):
    """SIGKILL a real extraction at an exact point of batch 6 (rows 60..69), read the store, rerun.

    The worker kills itself right after layer 0's rows of batch 6 are written (``mid_batch``), after all of batch 6's
    arrays but before its commit record (``after_arrays``), or right after its commit record replaced the previous
    one (``after_commit``). The committed rows must be exactly those of the commits that completed, equal to the
    reference, and a rerun must add exactly the missing rows. A writer that committed a batch before writing its
    rows would show batch 6 as committed but holding zeros at ``after_commit``."""
    n, path = 100, tmp_path / "k.zarr"
    proc = subprocess.run([sys.executable, str(WORKER), "kill", str(path), str(n), point, "6"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, f"the worker was not killed: {proc.stderr[-2000:]}"
    partial = nb.extract.open_store(path)
    assert partial.attrs["complete"] == 0 and partial.attrs["n_committed"] == committed
    net = WideMLP(width=64, n_layers=2)
    x = mlp_inputs(n)
    ref = nb.extract.activations(net, x, "layers.*", batch_size=10, progress=False)
    for layer in ("layers.0", "layers.1"):
        np.testing.assert_array_equal(partial[layer]["activations"].values,
                                      ref[layer]["activations"].values[:committed])
        assert int(partial["stats"][layer]["count"].values[0]) == committed
    rerun_rows: list[int] = []
    # the worker ran without preprocess (a counting one would be another preprocess): count at the model instead
    net.register_forward_pre_hook(lambda _m, args: rerun_rows.append(len(args[0])))
    done = nb.extract.activations(net, x, "layers.*", batch_size=10, progress=False, store=path)
    assert sum(rerun_rows) == n - committed  # exactly the rows after the last commit were computed again
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


def test_loaded_model_fingerprint_is_stable_across_loads_and_sees_preprocess_settings(tmp_path):
    """Two loads of the real MiniLM (new objects, same weights) resume the same store; a TextPreprocess with another
    max_length (other rows for long texts) is refused."""
    import dataclasses

    words = ["a cat", "the dog sat", "brains", "a longer sentence here", "x"]
    path = tmp_path / "m.zarr"
    first = nb.extract.activations(nb.models.load("minilm"), words, "encoder.layer.0", batch_size=2,
                                   progress=False, store=path)
    again = nb.models.load("minilm")
    second = nb.extract.activations(again, words, "encoder.layer.0", batch_size=2, progress=False, store=path)
    _same_tree(second, first, ["encoder.layer.0"])
    other = dataclasses.replace(again.preprocess, max_length=8)
    with pytest.raises(ValueError, match=r"preprocess: store has .*max_length=256\), call asks .*max_length=8\)"):
        nb.extract.activations(again, words, "encoder.layer.0", preprocess=other, progress=False, store=path)
