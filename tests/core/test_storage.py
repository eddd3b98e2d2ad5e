"""Storage round trips to real zarr stores and netCDF files; appends; lazy loading on a dask cluster."""

import warnings

import numpy as np
import pytest
import xarray as xr

import neurobridge as nb
from neurobridge.core import SchemaError


def _epochs(ids, seed=0, tmin=-0.01):
    rng = np.random.default_rng(seed)
    ch_pos = np.random.default_rng(99).normal(size=(3, 3))  # the same montage for every part of a store
    return nb.core.eeg_epochs(
        rng.normal(size=(len(ids), 3, 5)).astype(np.float32), stimulus=ids, sfreq=100.0, tmin=tmin,
        ch_types=["eeg", "eeg", "eog"], ch_pos=ch_pos, trial_coords={"run": np.arange(len(ids)) % 2},
        attrs={"bads": ["ch001"], "source": "simulated"},
    )


def _snapshot(store):
    """Every file of a store and its bytes: a refused append must leave them all as they were."""
    return {f.relative_to(store).as_posix(): f.read_bytes() for f in sorted(store.rglob("*")) if f.is_file()}


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


def test_append_refuses_duplicated_stimulus_ids_before_writing(tmp_path):
    path = tmp_path / "acts.zarr"
    acts = nb.core.activations(np.arange(6.0).reshape(2, 3), stimulus=["a", "b"])
    nb.save(acts, path)
    before = _snapshot(path)
    twice = nb.core.activations(np.zeros((2, 3)), stimulus=["c", "d"]).assign_coords(stimulus=["c", "c"])
    with pytest.raises(SchemaError, match=r"(?s)the data to append: duplicated stimulus ids \['c'\].*nothing was written"):
        nb.save(twice, path, append_dim="stimulus")
    with pytest.raises(SchemaError, match=r"stimulus ids already in the store .*acts.zarr.*\['a'\].*trial"):
        nb.save(nb.core.activations(np.zeros((2, 3)), stimulus=["e", "a"]), path, append_dim="stimulus")
    assert _snapshot(path) == before
    xr.testing.assert_identical(nb.load(path), acts)
    # a store created by an append is checked too
    with pytest.raises(SchemaError, match="duplicated"):
        nb.save(twice, tmp_path / "new.zarr", append_dim="stimulus")
    assert not (tmp_path / "new.zarr").exists()


def test_append_refuses_other_labels_on_the_kept_dims(tmp_path):
    path = tmp_path / "acts.zarr"
    acts = nb.core.activations(np.arange(6.0).reshape(2, 3), stimulus=["a", "b"])
    nb.save(acts, path)
    before = _snapshot(path)
    relabelled = nb.core.activations(np.zeros((1, 3)), stimulus=["c"]).assign_coords(unit=[5, 6, 7])
    with pytest.raises(SchemaError, match=r"(?s)coordinate 'unit' \(dim 'unit'\) has different labels.*store has "
                                          r"\[0, 1, 2\] and the new data \[5, 6, 7\].*new.sel\(unit="):
        nb.save(relabelled, path, append_dim="stimulus")
    assert _snapshot(path) == before
    xr.testing.assert_identical(nb.load(path), acts)

    ep_path = tmp_path / "ep.zarr"
    first = _epochs(["a", "b"])
    nb.save(first, ep_path)
    before = _snapshot(ep_path)
    renamed = _epochs(["c", "d"], seed=1).assign_coords(channel=["Fz", "Cz", "EOG"])
    with pytest.raises(SchemaError, match=r"coordinate 'channel' .* store has \['ch000', 'ch001', 'ch002'\] and the "
                                          r"new data \['Fz', 'Cz', 'EOG'\]"):
        nb.save(renamed, ep_path, append_dim="trial")
    with pytest.raises(SchemaError, match=r"coordinate 'time' \(dim 'time'\) has different labels"):
        nb.save(_epochs(["c", "d"], seed=1, tmin=0.0), ep_path, append_dim="trial")
    assert _snapshot(ep_path) == before
    xr.testing.assert_identical(nb.load(ep_path), first)
    # the same labels in another order are named as such
    shuffled = _epochs(["c", "d"], seed=1).isel(channel=[2, 0, 1])
    with pytest.raises(SchemaError, match=r"reorder the new data \(new.sel\(channel="):
        nb.save(shuffled, ep_path, append_dim="trial")
    nb.save(shuffled.sel(channel=first.channel.values), ep_path, append_dim="trial")
    assert nb.load(ep_path).sizes["trial"] == 4


def test_append_refuses_structure_that_would_corrupt_the_store(tmp_path):
    ep_path = tmp_path / "ep.zarr"
    first = _epochs(["a", "b"])
    nb.save(first, ep_path)
    before = _snapshot(ep_path)
    second = _epochs(["c", "d"], seed=1)
    with pytest.raises(SchemaError, match=r"coordinate\(s\) \['run'\] along 'trial' that the new data lacks"):
        nb.save(second.drop_vars("run"), ep_path, append_dim="trial")
    with pytest.raises(SchemaError, match=r"coordinate\(s\) \['block'\] along 'trial' that the store .* lacks"):
        nb.save(second.assign_coords(block=("trial", [1, 1])), ep_path, append_dim="trial")
    with pytest.raises(SchemaError, match="is float64 in the new data but float32 in the store.*astype"):
        nb.save(second.astype(np.float64), ep_path, append_dim="trial")
    other_rate = second.copy()
    other_rate.attrs["sfreq"] = 250.0
    with pytest.raises(SchemaError, match=r"attrs .* differ .*'sfreq': store 100.0, new data 250.0"):
        nb.save(other_rate, ep_path, append_dim="trial")
    with pytest.raises(SchemaError, match=r"new data has coordinate 'site'"):
        nb.save(second.assign_coords(site=("channel", ["l", "r", "l"])), ep_path, append_dim="trial")
    assert _snapshot(ep_path) == before
    xr.testing.assert_identical(nb.load(ep_path), first)
    # lossless differences are fine: dim order, and longer ids (strings are stored with variable length)
    nb.save(second.assign_coords(stimulus=("trial", ["a-much-longer-id", "d"])).transpose("channel", "time", "trial"),
            ep_path, append_dim="trial")
    back = nb.load(ep_path)
    assert back.stimulus.values.tolist() == ["a", "b", "a-much-longer-id", "d"]
    np.testing.assert_array_equal(back.values[2:], second.values)
    assert back.channel.dtype == first.channel.dtype

    ds_path = tmp_path / "ds.zarr"
    ds = xr.Dataset({"a": (("stimulus", "unit"), np.zeros((2, 3))), "b": ("stimulus", np.zeros(2))},
                    coords={"stimulus": ["x", "y"]})
    nb.save(ds, ds_path)
    before = _snapshot(ds_path)
    with pytest.raises(SchemaError, match=r"has variable\(s\) \['b'\] that the new data lacks"):
        nb.save(ds[["a"]].assign_coords(stimulus=["z", "w"]), ds_path, append_dim="stimulus")
    assert _snapshot(ds_path) == before
    xr.testing.assert_identical(nb.load(ds_path), ds)


def test_append_to_a_fixed_width_string_store_names_the_limit(tmp_path):
    # stores written by xarray itself (or older neurobridge) keep fixed-width strings
    path = tmp_path / "old.zarr"
    ds = xr.Dataset({"v": ("stimulus", np.zeros(2))}, coords={"stimulus": np.array(["a", "b"])})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.to_zarr(path, mode="w")
    before = _snapshot(path)
    longer = xr.Dataset({"v": ("stimulus", np.ones(1))}, coords={"stimulus": ["ccc"]})
    with pytest.raises(SchemaError, match=r"strings of up to 3 characters .* <U1 .*overwrite=True"):
        nb.save(longer, path, append_dim="stimulus")
    assert _snapshot(path) == before
    nb.save(xr.Dataset({"v": ("stimulus", np.ones(1))}, coords={"stimulus": ["c"]}), path, append_dim="stimulus")
    assert nb.load(path).stimulus.values.tolist() == ["a", "b", "c"]


def test_corrupt_or_empty_stores_are_named(tmp_path):
    acts = nb.core.activations(np.random.default_rng(0).normal(size=(20, 30)), stimulus=[f"s{i}" for i in range(20)])
    path = nb.save(acts, tmp_path / "acts.zarr")
    chunks = [f for f in (path / "__xarray_dataarray_variable__").rglob("*") if f.is_file() and f.name != "zarr.json"]
    assert chunks
    chunks[0].write_bytes(b"not a zstd frame" * 8)
    with pytest.raises(nb.core._storage.StoreError, match=r"(?s)cannot read the store at .*acts.zarr.*corrupt.*"
                                                          r"re-create it .*overwrite=True"):
        nb.load(path)
    (path / "zarr.json").write_text("{not json")
    with pytest.raises(nb.core._storage.StoreError, match="cannot read the store at .*acts.zarr"):
        nb.load(path)
    empty = tmp_path / "empty.zarr"
    empty.mkdir()
    with pytest.raises(nb.core._storage.StoreError, match=r"empty.zarr is not a neurobridge store \(the folder is empty\)"):
        nb.load(empty)
    with pytest.raises(OSError, match="not a neurobridge store"):
        nb.save(acts, empty, append_dim="stimulus")
    assert not any(empty.iterdir())
    nc = nb.save(acts, tmp_path / "acts.nc")
    (tmp_path / "cut.nc").write_bytes(nc.read_bytes()[: nc.stat().st_size // 2])
    with pytest.raises(OSError, match=r"cannot read the store at .*cut.nc.*re-create"):
        nb.load(tmp_path / "cut.nc")


def test_string_variables_round_trip_with_their_dtype(tmp_path):
    ds = xr.Dataset({"label": ("stimulus", np.array(["cat", "a dog"])), "score": ("stimulus", [1.0, 2.0])},
                    coords={"stimulus": ["s1", "s2"], "category": ("stimulus", np.array(["animal", "animal"]))})
    for suffix in ("zarr", "nc"):
        back = nb.load(nb.save(ds, tmp_path / f"ds.{suffix}"))
        xr.testing.assert_identical(back, ds)
        assert back["label"].dtype == ds["label"].dtype and back["category"].dtype == ds["category"].dtype
