"""Schemas and factories: every container kind validates, every listed bad input fails clearly."""

import numpy as np
import pytest
import xarray as xr

import neurobridge as nb
from neurobridge.core import SchemaError


def _epochs(n=6, **kw):
    rng = np.random.default_rng(0)
    return nb.core.eeg_epochs(rng.normal(size=(n, 3, 5)), stimulus=list("abc") * (n // 3), sfreq=100.0, **kw)


def test_factories_build_valid_containers():
    rng = np.random.default_rng(0)
    raw = nb.core.eeg_raw(rng.normal(size=(2, 50)), sfreq=50.0, ch_names=["Cz", "Pz"], ch_types=["eeg", "eeg"])
    assert raw.dims == ("channel", "time") and raw.attrs["sfreq"] == 50.0
    np.testing.assert_allclose(np.diff(raw.time.values), 1 / 50.0)
    ep = _epochs(ch_pos=np.eye(3))
    assert ep.dims == ("trial", "channel", "time")
    assert ep.stimulus.dims == ("trial",) and ep["pos_x"].values.tolist() == [1.0, 0.0, 0.0]
    ev = nb.core.evoked(rng.normal(size=(2, 3, 4)), stimulus=["a", "b"], times=[0.0, 0.1, 0.2, 0.3])
    assert ev.dims == ("stimulus", "channel", "time") and ev.attrs["sfreq"] == pytest.approx(10.0)
    ts = nb.core.fmri_timeseries(rng.normal(size=(10, 4)), tr=2.0, voxel_coords={"x": np.arange(4.0)})
    assert ts.time.values[-1] == 18.0 and "x" in ts.coords
    fr = nb.core.fmri_responses(rng.normal(size=(3, 4)), stimulus=["a", "b", "c"], dim="stimulus")
    assert fr.dims == ("stimulus", "voxel")
    acts = nb.core.activations(rng.normal(size=(3, 2, 4)), stimulus=["a", "b", "c"], layer="l1")
    assert acts.dims == ("stimulus", "token", "unit")
    r = nb.core.rdm(np.zeros((2, 3, 3)), dims=("subject",), stimulus=["a", "b", "c"])
    assert r.dims == ("subject", "stimulus", "stimulus2")
    for da, kind in [(raw, "eeg_raw"), (ep, "eeg_epochs"), (ev, "evoked"), (ts, "fmri_timeseries"),
                     (fr, "fmri_responses"), (acts, "activations"), (r, "rdm")]:
        assert da.nb.validate(kind) is da


def test_missing_stimulus_coord_is_named():
    ep = _epochs().drop_vars("stimulus")
    with pytest.raises(SchemaError, match="no 'stimulus' coordinate on dim 'trial'.*assign_coords"):
        nb.core.validate(ep, "eeg_epochs")


def test_wrong_dims_and_order():
    ep = _epochs()
    with pytest.raises(SchemaError, match=r"expected dims \(trial x channel x time\)"):
        nb.core.validate(ep.rename(channel="sensor"), "eeg_epochs")
    with pytest.raises(SchemaError, match="transpose"):
        nb.core.validate(ep.transpose("channel", "trial", "time"), "eeg_epochs")
    with pytest.raises(SchemaError, match="unexpected dims"):
        nb.core.validate(ep.expand_dims(run=2), "eeg_epochs")
    with pytest.raises(SchemaError, match="3-d array"):
        nb.core.eeg_epochs(np.zeros((2, 3)), stimulus=["a", "b"], sfreq=10.0)
    with pytest.raises(SchemaError, match="stimulus has 3 entries but dim 'trial' has 2"):
        nb.core.eeg_epochs(np.zeros((2, 3, 4)), stimulus=["a", "b", "c"], sfreq=10.0)


def test_nan_and_inf_are_located():
    data = np.zeros((3, 4))
    data[1, 2] = np.inf
    with pytest.raises(SchemaError, match="1 non-finite value.*first at stimulus=1, voxel=2"):
        nb.core.fmri_responses(data, stimulus=["a", "b", "c"], dim="stimulus")


def test_duplicated_stimulus_dim_rejected():
    with pytest.raises(SchemaError, match=r"duplicated stimulus ids on dim 'stimulus' \['a'\].*average_repetitions"):
        nb.core.activations(np.zeros((3, 2)), stimulus=["a", "b", "a"])


def test_attrs_time_and_square_checks():
    ep = _epochs()
    with pytest.raises(SchemaError, match="attribute 'info' has type dict"):
        nb.core.validate(ep.assign_attrs(info={"a": 1}), "eeg_epochs")
    with pytest.raises(SchemaError, match="missing attribute 'sfreq'"):
        nb.core.validate(ep.assign_attrs(sfreq=None).drop_attrs(), "eeg_epochs")
    with pytest.raises(SchemaError, match="not strictly increasing"):
        nb.core.validate(ep.assign_coords(time=ep.time.values[::-1]), "eeg_epochs")
    with pytest.raises(SchemaError, match="square"):
        nb.core.rdm(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="unknown container kind"):
        nb.core.validate(ep, "eeg")
    with pytest.raises(SchemaError, match="expected an xr.DataArray, got ndarray"):
        nb.core.validate(np.zeros(3), "rdm")


def test_channel_names_unique():
    with pytest.raises(SchemaError, match=r"duplicated channel names \[.Cz.\]"):
        nb.core.eeg_raw(np.zeros((2, 5)), sfreq=1.0, ch_names=["Cz", "Cz"])


def test_dask_backed_container_validates_lazily_unless_asked():
    da = nb.core.fmri_responses(np.ones((4, 3)), stimulus=list("abcd"), dim="stimulus").chunk({"stimulus": 2})
    bad = da.where(da.voxel != 1)  # NaNs, still lazy
    assert nb.core.validate(bad, "fmri_responses", check_values=False) is bad
    with pytest.raises(SchemaError, match="non-finite"):
        nb.core.validate(bad, "fmri_responses")
    assert isinstance(bad.data, type(da.data))


def test_validate_rejects_non_numeric_stimulus_layout():
    da = xr.DataArray(np.zeros((2, 3)), dims=("trial", "voxel"),
                      coords={"stimulus": (("trial", "voxel"), np.zeros((2, 3)))})
    with pytest.raises(SchemaError, match=r"coordinate 'stimulus' has dims \('trial', 'voxel'\)"):
        nb.core.validate(da, "fmri_responses")


def test_roi_averaged_fmri_is_a_valid_container():
    roi = nb.core.fmri_responses(np.zeros((2, 3)), stimulus=["a", "b"]).rename(voxel="roi")
    assert nb.core.validate(roi, "fmri_responses") is roi
    with pytest.raises(SchemaError, match=r"expected dims \(trial\|stimulus x voxel\|roi\)"):
        nb.core.validate(roi.expand_dims(voxel=1).transpose("trial", "voxel", "roi"), "fmri_responses")
