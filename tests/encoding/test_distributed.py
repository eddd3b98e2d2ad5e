"""fit_encoding_distributed on a LocalCluster of 2 single-threaded worker processes (one cluster per module):
identical to the in-memory nb.encoding.fit_encoding, decompositions never made on the workers, zarr output,
a worker process killed mid-run, and the errors a user meets."""

from __future__ import annotations

import logging
import os

import dask
import numpy as np
import pytest
import torch
import xarray as xr

import neurobridge as nb
from neurobridge.encoding import _distributed as dist
from neurobridge.encoding._distributed import fit_encoding_distributed, layer_sweep_distributed

distributed = pytest.importorskip("distributed")
pytestmark = pytest.mark.xdist_group("distributed_cluster")  # one cluster for the module under pytest -n

ALPHAS = [0.1, 1.0, 10.0, 100.0, 1000.0]
F64 = torch.float64


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None,
                                  silence_logs=logging.CRITICAL) as cl:
        with distributed.Client(cl, set_as_default=False) as client:
            client.run(lambda: bool(__import__("neurobridge.encoding._distributed")))  # both import at once
            yield cl, client


@pytest.fixture()
def client(cluster):
    return cluster[1]


def _max_diff(a: xr.Dataset, b: xr.Dataset) -> float:
    assert set(a.data_vars) == set(b.data_vars)
    for v in a.data_vars:
        assert a[v].dims == b[v].dims, v
        for c in b[v].coords:
            np.testing.assert_array_equal(a[v][c].values, b[v][c].values)
    return max(float(np.abs(a[v].values - b[v].values).max()) for v in a.data_vars)


def _fmri(rng, n=60, p=6, t=200, dim="stimulus"):
    f = nb.core.activations(rng.normal(size=(n, p)), stimulus=np.arange(n))
    W = rng.normal(size=(p, t)) * rng.uniform(0, 1, t)
    b = nb.core.fmri_responses(f.values @ W + rng.normal(size=(n, t)), stimulus=np.arange(n), dim=dim)
    return f, b


def _cases(rng, tmp_path):
    """(features, brain given to the distributed fit, the same brain in memory, options) per container kind."""
    f, b = _fmri(rng)
    path = nb.save(b, tmp_path / "bold.zarr")
    yield "zarr", f, nb.load(path, chunks={}), b, dict(chunk_targets=64, return_weights=True)
    # repeated trials (folds grouped by stimulus), in-memory brain, correlation scoring
    f2 = nb.core.activations(rng.normal(size=(24, 4)), stimulus=np.arange(24))
    ids = np.tile(np.arange(24), 3)
    b2 = nb.core.fmri_responses(f2.values[ids] @ rng.normal(size=(4, 50)) + rng.normal(size=(72, 50)), stimulus=ids)
    yield "repeats", f2, b2, b2, dict(chunk_targets=16, scoring="correlation", cv=4)
    yield "averaged", f2, b2.chunk(voxel=20), b2, dict(average_repetitions=True)  # averaged lazily
    # epochs: two target dims (channel x time)
    ep = nb.core.eeg_epochs(rng.normal(size=(72, 5, 6)) + f2.values[ids, :1, None], stimulus=ids, sfreq=100.0)
    yield "epochs", f2, ep.chunk(channel=2), ep, dict(return_weights=True)
    # continuous recording: contiguous folds with the autocorrelation gap ("auto")
    n = 240
    e = rng.normal(size=(n, 3))
    x = np.zeros_like(e)
    for i in range(1, n):
        x[i] = 0.8 * x[i - 1] + e[i]
    ts_f = nb.core.activations(x, stimulus=np.arange(n)).rename(stimulus="time").assign_coords(time=np.arange(n) * 2.0)
    y = x @ rng.normal(size=(3, 30)) + rng.normal(size=(n, 30))
    ts = nb.core.fmri_timeseries(y, tr=2.0)
    yield "timeseries", ts_f, ts.chunk(voxel=10), ts, dict(gap="auto")


def test_identical_to_fit_encoding_float64(client, tmp_path):
    rng = np.random.default_rng(0)
    for name, f, lazy, mem, kw in _cases(rng, tmp_path):
        with nb.config_context(dtype=F64):
            res = fit_encoding_distributed(f, lazy, client=client, alphas=ALPHAS, progress=False, **kw)
            kw.pop("chunk_targets", None)
            ref = nb.encoding.fit_encoding(f, mem, alphas=ALPHAS, progress=False, **kw)
        assert _max_diff(res, ref) < 1e-10, name
        assert res.attrs == ref.attrs, name
        assert res.score.attrs == ref.score.attrs, name
        if name == "timeseries":
            assert res.attrs["gap"] > 0  # the autocorrelation gap, reduced over chunks, as fit_encoding's
        assert len(np.unique(res.alpha.values)) > 1, name  # alphas differ across targets: selection is tested


def test_layer_sweep_identical(client, tmp_path):
    rng = np.random.default_rng(8)
    ids = np.tile(np.arange(30), 2)  # repeated trials: folds grouped by stimulus
    acts = {f"l{i}": rng.normal(size=(30, 3 + i)) for i in range(3)}
    tree = xr.DataTree.from_dict({"/": xr.Dataset(attrs={"layers": list(acts)}), **{
        k: xr.Dataset({"activations": nb.core.activations(v, stimulus=np.arange(30))}) for k, v in acts.items()}})
    drive = np.concatenate([acts["l0"][:, :2], acts["l2"][:, :2]], 1)[ids] @ rng.normal(size=(4, 60))
    b = nb.core.fmri_responses(drive * rng.uniform(0, 1, 60) + rng.normal(size=(60, 60)), stimulus=ids)
    lazy = nb.load(nb.save(b, tmp_path / "bold.zarr"), chunks={})
    with nb.config_context(dtype=F64):
        res = layer_sweep_distributed(tree, lazy, client=client, chunk_targets=25, alphas=ALPHAS, progress=False)
        ref = nb.encoding.layer_sweep(tree, b, alphas=ALPHAS, progress=False)
    for v in ("best_layer", "selected"):
        np.testing.assert_array_equal(res[v].values, ref[v].values)
    num = ["score", "alpha", "best_score"]
    assert _max_diff(res[num], ref[num]) < 1e-10
    assert res.attrs == ref.attrs
    assert len(np.unique(ref.best_layer.values)) > 1  # the selection differs across targets
    with pytest.raises(nb.core.SchemaError, match="not in the tree"):
        layer_sweep_distributed(tree, b, layers=["l9"], client=client, progress=False)


def test_decomposed_once_on_the_client_never_on_workers(client, tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    f, b = _fmri(rng, t=160)
    calls = []
    real = dist._fold_fits
    monkeypatch.setattr(dist, "_fold_fits", lambda *a, **k: calls.append(1) or real(*a, **k))

    def forbid(on: bool):
        import torch as t

        if on:
            t.linalg._eigh_saved = t.linalg.eigh

            def fail(*_, **__):
                raise RuntimeError("a worker decomposed the design")
            t.linalg.eigh = t.linalg.svd = fail
        else:
            t.linalg.eigh = t.linalg._eigh_saved
        return True

    client.run(forbid, True)
    try:
        res = fit_encoding_distributed(f, b.chunk(voxel=20), client=client, alphas=ALPHAS, return_weights=True,
                                       progress=False)
    finally:
        client.run(forbid, False)
    assert len(calls) == 5 + 1  # one per outer fold and one for the weights, for 8 chunks of targets
    ref = nb.encoding.fit_encoding(f, b, alphas=ALPHAS, return_weights=True, progress=False)
    assert _max_diff(res, ref) < 1e-5  # default float32: same solves, GEMMs blocked differently


def test_store_and_lazy_results(client, tmp_path):
    rng = np.random.default_rng(2)
    f, b = _fmri(rng, t=120)
    lazy = nb.load(nb.save(b, tmp_path / "bold.zarr"), chunks={})
    out = tmp_path / "scores.zarr"
    with nb.config_context(dtype=F64):
        res = fit_encoding_distributed(f, lazy, client=client, chunk_targets=50, alphas=ALPHAS, store=out,
                                       progress=False)
        ref = nb.encoding.fit_encoding(f, b, alphas=ALPHAS, progress=False)
        assert res.score.chunks is not None  # read back lazily from the store
        assert _max_diff(res.compute(), ref) < 1e-10
        assert _max_diff(nb.load(out), ref) < 1e-10
        with pytest.raises(FileExistsError, match="overwrite=True"):
            fit_encoding_distributed(f, lazy, client=client, alphas=ALPHAS, store=out, progress=False)
        later = fit_encoding_distributed(f, lazy, client=client, alphas=ALPHAS, compute=False, progress=False)
        assert later.score.chunks is not None
        assert _max_diff(later.compute(scheduler=client), ref) < 1e-10


def test_active_client_is_used_and_dask_shows_progress(client, monkeypatch, capsys):
    rng = np.random.default_rng(3)
    f, b = _fmri(rng, n=40, t=30)

    def no_cluster(*_, **__):
        raise AssertionError("a LocalCluster was started although a client is active")

    monkeypatch.setattr(distributed, "LocalCluster", no_cluster)
    with client.as_current():
        res = fit_encoding_distributed(f, b.chunk(voxel=15), alphas=ALPHAS, progress=True)
    assert res.score.shape == (30,)
    assert "100% Completed" in capsys.readouterr().out  # distributed.progress over the chunk tasks


def test_unreachable_scheduler_says_where_and_how():
    rng = np.random.default_rng(4)
    f, b = _fmri(rng, n=30, t=5)
    with dask.config.set({"distributed.comm.timeouts.connect": "0.5s"}):
        with pytest.raises(ConnectionError, match=r"tcp://127\.0\.0\.1:1.*dask scheduler"):
            fit_encoding_distributed(f, b, client="tcp://127.0.0.1:1", alphas=ALPHAS, progress=False)
        if distributed.client._get_global_client() is None:  # dask's own config, when no client is active
            with dask.config.set({"scheduler-address": "tcp://127.0.0.1:1"}):
                with pytest.raises(ConnectionError, match="scheduler-address"):
                    fit_encoding_distributed(f, b, alphas=ALPHAS, progress=False)
            with pytest.raises(ValueError, match="compute=False"):
                fit_encoding_distributed(f, b, alphas=ALPHAS, compute=False, progress=False)


def test_bad_inputs(client):
    rng = np.random.default_rng(5)
    f, b = _fmri(rng, n=30, t=8)
    with pytest.raises(TypeError, match="fit_encoding"):
        fit_encoding_distributed({"a": f, "b": f}, b, client=client, progress=False)
    with pytest.raises(TypeError, match="xr.DataArray"):
        fit_encoding_distributed(f, b.values, client=client, progress=False)
    with pytest.raises(ValueError, match="chunk_targets"):
        fit_encoding_distributed(f, b, client=client, chunk_targets=0, progress=False)
    with pytest.raises(ValueError, match="scoring"):
        fit_encoding_distributed(f, b, client=client, scoring="mse", progress=False)
    with pytest.raises(TypeError, match="client"):
        fit_encoding_distributed(f, b, client=3, progress=False)
    bad = b.copy(data=b.values.copy())
    bad[3, 5] = np.nan
    with pytest.raises(nb.core.SchemaError, match="brain contains 1 non-finite"):  # raised on a worker
        fit_encoding_distributed(f, bad.chunk(voxel=4), client=client, alphas=ALPHAS, progress=False)


def test_worker_killed_mid_run(cluster, tmp_path):
    """SIGKILL of the worker process running chunk 4 of 10: the job completes on the survivor (and the restarted
    worker), the results equal the in-memory fit, and the store has every voxel exactly once."""
    cl, client = cluster
    rng = np.random.default_rng(6)
    f, b = _fmri(rng, t=400)
    lazy = nb.load(nb.save(b, tmp_path / "bold.zarr"), chunks={}).chunk(voxel=40)
    marker = str(tmp_path / "killed")

    def die_once(x, block_info=None):
        import os as _os
        import signal

        if block_info[None]["chunk-location"][1] == 4 and not _os.path.exists(marker):
            open(marker, "w").close()
            _os.kill(_os.getpid(), signal.SIGKILL)
        return x

    doomed = lazy.copy(data=lazy.data.map_blocks(die_once, dtype=lazy.dtype))
    before = set(client.scheduler_info()["workers"])
    out = tmp_path / "scores.zarr"
    with nb.config_context(dtype=F64):
        res = fit_encoding_distributed(f, doomed, client=client, alphas=ALPHAS, store=out, progress=False)
        ref = nb.encoding.fit_encoding(f, b, alphas=ALPHAS, progress=False)
    assert os.path.exists(marker)  # the worker did die (SIGKILL does not return)
    assert set(client.scheduler_info()["workers"]) != before
    stored = nb.load(out)
    assert stored.sizes["voxel"] == 400 and not stored.indexes["voxel"].has_duplicates
    np.testing.assert_array_equal(stored["voxel"].values, b["voxel"].values)
    assert _max_diff(stored, ref) < 1e-10
    assert _max_diff(res.compute(), ref) < 1e-10


@pytest.mark.slow
def test_local_cluster_when_no_client():
    if distributed.client._get_global_client() is not None:
        pytest.skip("a client is active in this process")
    rng = np.random.default_rng(7)
    f, b = _fmri(rng, n=40, t=20)
    res = fit_encoding_distributed(f, b.chunk(voxel=10), alphas=ALPHAS, progress=False)
    ref = nb.encoding.fit_encoding(f, b, alphas=ALPHAS, progress=False)
    assert _max_diff(res, ref) < 1e-5
    assert distributed.client._get_global_client() is None  # the call's cluster and client are closed
