"""Storage round trips to real zarr stores and netCDF files; appends; lazy loading on a dask cluster."""

import numpy as np
import pytest
import xarray as xr

import neurobridge as nb
from neurobridge.core import SchemaError


def _epochs(ids, seed=0):
    rng = np.random.default_rng(seed)
    return nb.core.eeg_epochs(
        rng.normal(size=(len(ids), 3, 5)).astype(np.float32), stimulus=ids, sfreq=100.0, tmin=-0.01,
        ch_types=["eeg", "eeg", "eog"], ch_pos=rng.normal(size=(3, 3)), trial_coords={"run": np.arange(len(ids)) % 2},
        attrs={"bads": ["ch001"], "source": "simulated"},
    )


@pytest.mark.parametrize("suffix", ["zarr", "nc"])
def test_dataarray_round_trip_exact(tmp_path, suffix):
    ep = _epochs(["a", "b", "a"]).rename("eeg")
    path = nb.save(ep, tmp_path / f"ep.{suffix}")
    back = nb.load(path)
    assert isinstance(back, xr.DataArray)
    xr.testing.assert_identical(back, ep)
    assert back.dtype == np.float32 and back.attrs["bads"] == ["ch001"]
    for name in ep.coords:
        assert back[name].dtype == ep[name].dtype, name
    unnamed = ep.rename(None)
    back = nb.load(nb.save(unnamed, tmp_path / f"unnamed.{suffix}"))
    assert back.name is None and back.identical(unnamed)


@pytest.mark.parametrize("suffix", ["zarr", "nc"])
def test_dataset_and_datatree_round_trip(tmp_path, suffix):
    ds = xr.Dataset({"score": ("voxel", np.arange(4.0)), "alpha": ("voxel", np.ones(4))},
                    coords={"voxel": np.arange(4)}, attrs={"metric": "r", "alphas": [0.1, 1.0]})
    back = nb.load(nb.save(ds, tmp_path / f"ds.{suffix}"))
    xr.testing.assert_identical(back, ds)
    a1 = nb.core.activations(np.ones((2, 3)), stimulus=["x", "y"], layer="blocks.0")
    a2 = nb.core.activations(np.zeros((2, 5)), stimulus=["x", "y"], layer="blocks.1")
    tree = xr.DataTree.from_dict({"blocks.0": a1.to_dataset(name="activations"),
                                  "blocks.1": a2.to_dataset(name="activations")})
    tree.attrs["layers"] = ["blocks.0", "blocks.1"]
    back = nb.load(nb.save(tree, tmp_path / f"tree.{suffix}"))
    assert isinstance(back, xr.DataTree)
    xr.testing.assert_identical(back, tree)


def test_append_along_trial_and_stimulus(tmp_path):
    path = tmp_path / "ep.zarr"
    first, second = _epochs(["a", "b"], seed=0), _epochs(["a", "c"], seed=1)
    nb.save(first, path, append_dim="trial")
    nb.save(second, path, append_dim="trial")
    back = nb.load(path)
    np.testing.assert_array_equal(back.values, np.concatenate([first.values, second.values]))
    assert back.trial.values.tolist() == [0, 1, 2, 3]  # trial numbers continue
    assert back.stimulus.values.tolist() == ["a", "b", "a", "c"]

    acts_path = tmp_path / "acts.zarr"
    nb.save(nb.core.activations(np.ones((2, 3)), stimulus=["a", "b"]), acts_path)
    nb.save(nb.core.activations(np.zeros((1, 3)), stimulus=["c"]), acts_path, append_dim="stimulus")
    assert nb.load(acts_path).stimulus.values.tolist() == ["a", "b", "c"]


def test_bad_appends_are_refused_and_lose_no_data(tmp_path):
    path = tmp_path / "acts.zarr"
    acts = nb.core.activations(np.arange(6.0).reshape(2, 3), stimulus=["a", "b"])
    nb.save(acts, path)
    with pytest.raises(SchemaError, match=r"stimulus ids already in the store.*\['b'\]"):
        nb.save(nb.core.activations(np.zeros((2, 3)), stimulus=["b", "c"]), path, append_dim="stimulus")
    with pytest.raises(SchemaError, match="dim 'unit' has size 4 in the new data but 3"):
        nb.save(nb.core.activations(np.zeros((1, 4)), stimulus=["z"]), path, append_dim="stimulus")
    xr.testing.assert_identical(nb.load(path), acts)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        nb.save(acts, path)
    with pytest.raises(ValueError, match="needs a zarr store"):
        nb.save(acts, tmp_path / "a.nc", append_dim="stimulus")


def test_attrs_are_normalised_or_refused(tmp_path):
    acts = nb.core.activations(np.ones((2, 2)), stimulus=["a", "b"])
    acts.attrs.update(flag=True, n=np.int64(3), dims_used=("a", "b"))
    back = nb.load(nb.save(acts, tmp_path / "a.zarr"))
    assert back.attrs["flag"] == 1 and back.attrs["n"] == 3 and back.attrs["dims_used"] == ["a", "b"]
    acts.attrs["info"] = {"nested": 1}
    with pytest.raises(SchemaError, match="attribute 'info' has type dict"):
        nb.save(acts, tmp_path / "b.zarr")
    assert not (tmp_path / "b.zarr").exists()


def test_missing_store_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no store at .*nothing.zarr"):
        nb.load(tmp_path / "nothing.zarr")


def test_lazy_load_computes_on_a_local_cluster(tmp_path):
    distributed = pytest.importorskip("distributed")
    rng = np.random.default_rng(0)
    ts = nb.core.fmri_timeseries(rng.normal(size=(200, 50)), tr=2.0)
    path = nb.save(ts.chunk({"time": 50}), tmp_path / "bold.zarr")
    lazy = nb.load(path, chunks={})
    assert lazy.chunks is not None and lazy.chunks[0] == (50, 50, 50, 50)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            distributed.Client(cluster):
        mean = lazy.mean("time").compute()
    np.testing.assert_allclose(mean.values, ts.values.mean(0))
    assert lazy.attrs["tr"] == 2.0
