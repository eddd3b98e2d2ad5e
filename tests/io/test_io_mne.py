"""nb.io.from_mne / to_mne on the real MNE sample evoked file and the BrainVision/EDF/BDF fixtures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import neurobridge as nb
from neurobridge.core import SchemaError

mne = pytest.importorskip("mne")
mne.set_log_level("error")


@pytest.fixture(scope="module")
def evokeds(data_dir):
    return mne.read_evokeds(data_dir / "mne_sample_evoked" / "test-ave.fif.gz")


def _assert_same_channels(a_info, b_info, full_loc=True):
    assert a_info["ch_names"] == b_info["ch_names"]
    assert a_info.get_channel_types() == b_info.get_channel_types()
    assert a_info["sfreq"] == b_info["sfreq"]
    for ca, cb in zip(a_info["chs"], b_info["chs"], strict=True):
        loc_a, loc_b = (ca["loc"], cb["loc"]) if full_loc else (ca["loc"][:3], cb["loc"][:3])
        np.testing.assert_array_equal(loc_a, loc_b)
        for key in ("kind", "coil_type", "unit", "coord_frame"):
            assert int(ca[key]) == int(cb[key]), (ca["ch_name"], key)


# ----------------------------------------------------------------------------------------- sample evoked (MEG+EEG)


def test_evoked_list_container(evokeds):
    da = nb.io.from_mne(evokeds)
    nb.core.validate(da, "evoked")
    assert da.dims == ("condition", "channel", "time")
    assert da.condition.values.tolist() == [ev.comment for ev in evokeds]
    assert da.nave.values.tolist() == [ev.nave for ev in evokeds]
    assert da.attrs["modality"] == "meeg"
    assert da.attrs["sfreq"] == evokeds[0].info["sfreq"]
    assert da.attrs["source"] == "test-ave.fif.gz"
    np.testing.assert_array_equal(da.time.values, evokeds[0].times)
    np.testing.assert_array_equal(da.values, np.stack([ev.data for ev in evokeds]))
    # positions are info['chs'][i]['loc'][:3], types are mne's
    locs = np.array([ch["loc"][:3] for ch in evokeds[0].info["chs"]])
    np.testing.assert_array_equal(np.column_stack([da.pos_x, da.pos_y, da.pos_z]), locs)
    assert da.ch_type.values.tolist() == evokeds[0].get_channel_types()
    assert set(da.ch_type.values.tolist()) >= {"mag", "grad", "eeg"}


def test_evoked_round_trip_exact(evokeds):
    back = nb.io.to_mne(nb.io.from_mne(evokeds))
    assert isinstance(back, list) and len(back) == len(evokeds)
    for ev, rb in zip(evokeds, back, strict=True):
        np.testing.assert_array_equal(rb.data, ev.data)
        np.testing.assert_array_equal(rb.times, ev.times)
        assert rb.comment == ev.comment and rb.nave == ev.nave
        _assert_same_channels(ev.info, rb.info)
        np.testing.assert_array_equal(rb.info["dev_head_t"]["trans"], ev.info["dev_head_t"]["trans"])


def test_evoked_round_trip_through_storage(evokeds, tmp_path):
    da = nb.io.from_mne(evokeds)
    for name in ("ev.zarr", "ev.nc"):
        nb.save(da, tmp_path / name)
        loaded = nb.load(tmp_path / name)
        xr.testing.assert_identical(loaded.load(), da)
        back = nb.io.to_mne(loaded)
        np.testing.assert_array_equal(back[2].data, evokeds[2].data)
        _assert_same_channels(evokeds[2].info, back[2].info)


def test_single_evoked_and_stimulus_dim(evokeds):
    one = nb.io.from_mne(evokeds[1])
    assert one.sizes["condition"] == 1 and one.condition.values.tolist() == ["Right Auditory"]
    stim = nb.io.from_mne(evokeds, stimulus=["al", "ar", "vl", "vr"])
    nb.core.validate(stim, "evoked")
    assert stim.dims[0] == "stimulus" and stim.condition.values.tolist() == [ev.comment for ev in evokeds]
    acts = nb.core.activations(np.random.default_rng(0).normal(size=(3, 5)), stimulus=["vr", "al", "zz"])
    aligned = nb.core.align(stim, acts)
    assert aligned.brain.stimulus.values.tolist() == ["al", "vr"]
    back = nb.io.to_mne(stim)
    assert [b.comment for b in back] == [ev.comment for ev in evokeds]


@pytest.mark.filterwarnings("ignore:Projection vector")
def test_epochs_from_evoked_info_with_metadata(evokeds):
    """Epochs built on the real MEG+EEG Info: metadata, event names and info= round trip."""
    info = evokeds[0].info
    rng = np.random.default_rng(1)
    n = 6
    data = rng.normal(scale=1e-12, size=(n, len(info["ch_names"]), 30))
    events = np.column_stack([np.arange(n) * 100, np.zeros(n, int), [1, 2, 1, 3, 2, 3]])
    meta = pd.DataFrame({"word": ["dog", "cat", "dog", "car", "cat", "car"], "rt": rng.uniform(0.3, 0.9, n)})
    ep = mne.EpochsArray(data, info, events=events, tmin=-0.05, event_id={"a": 1, "b": 2, "c": 3}, metadata=meta)
    da = nb.io.from_mne(ep, stimulus="word")
    assert da.stimulus.values.tolist() == meta.word.tolist()
    assert da.event_name.values.tolist() == ["a", "b", "a", "c", "b", "c"]
    np.testing.assert_array_equal(da.rt.values, meta.rt.values)
    assert nb.io.from_mne(ep).stimulus.values.tolist() == ["a", "b", "a", "c", "b", "c"]
    assert nb.io.from_mne(ep, stimulus=list("uvwxyz")).stimulus.values.tolist() == list("uvwxyz")
    for back in (nb.io.to_mne(da), nb.io.to_mne(da, info=info)):
        np.testing.assert_array_equal(back.get_data(), ep.get_data())
        np.testing.assert_array_equal(back.times, ep.times)
        np.testing.assert_array_equal(back.events, ep.events)
        assert back.event_id == ep.event_id
        pd.testing.assert_frame_equal(back.metadata.reset_index(drop=True), meta)
        _assert_same_channels(ep.info, back.info)
    # info= with channels in another order / subset picks in the data's order
    sub = da.isel(channel=[5, 0, 3])
    back = nb.io.to_mne(sub, info=info)
    assert back.ch_names == [info["ch_names"][i] for i in (5, 0, 3)]
    # accessor forwards to nb.io.to_mne
    np.testing.assert_array_equal(da.nb.to_mne().get_data(), ep.get_data())


# ------------------------------------------------------------------------------------- BrainVision / EDF / BDF files


def _read(data_dir, name):
    raw = mne.io.read_raw(data_dir / "io_fixtures" / name, preload=True)
    raw.set_montage("standard_1020", on_missing="ignore", match_case=False)
    return raw


@pytest.mark.parametrize("name", ["test.vhdr", "test.edf", "test.bdf"])
def test_raw_round_trip_files(data_dir, name):
    raw = _read(data_dir, name)
    da = nb.io.from_mne(raw)
    nb.core.validate(da, "eeg_raw")
    assert da.attrs["source"] == name.replace(".vhdr", ".eeg")
    assert np.isfinite(da.pos_x.values).sum() > 0  # the montage gave real positions
    back = nb.io.to_mne(da)
    np.testing.assert_array_equal(back.get_data(), raw.get_data())
    np.testing.assert_array_equal(back.times, raw.times)
    _assert_same_channels(raw.info, back.info, full_loc=False)
    if len(raw.annotations):
        e1, d1 = mne.events_from_annotations(raw)
        e2, d2 = mne.events_from_annotations(back)
        np.testing.assert_array_equal(e1, e2)
        assert d1 == d2


@pytest.mark.parametrize("name", ["test.vhdr", "test.edf", "test.bdf"])
def test_epochs_round_trip_files(data_dir, name):
    raw = _read(data_dir, name)
    if name == "test.vhdr":
        events, event_id = mne.events_from_annotations(raw, event_id={"Stimulus/S253": 253, "Stimulus/S255": 255,
                                                                      "Event/254": 254})
    else:
        events = mne.find_events(raw, shortest_event=1)
        event_id = {f"code{c}": int(c) for c in np.unique(events[:, 2])}
    ep = mne.Epochs(raw, events, event_id=event_id, tmin=-0.05, tmax=0.1, baseline=None, preload=True)
    assert len(ep) >= 1
    da = nb.io.from_mne(ep)
    nb.core.validate(da, "eeg_epochs")
    inv = {v: k for k, v in event_id.items()}
    assert da.stimulus.values.tolist() == [inv[c] for c in ep.events[:, 2]]
    np.testing.assert_array_equal(da.event.values, ep.events[:, 2])
    back = nb.io.to_mne(da)
    np.testing.assert_array_equal(back.get_data(), ep.get_data())
    np.testing.assert_array_equal(back.times, ep.times)
    np.testing.assert_array_equal(back.events, ep.events)
    assert back.event_id == ep.event_id
    _assert_same_channels(ep.info, back.info, full_loc=False)
    # averaging repetitions of the real epochs equals mne's per-condition average
    avg = nb.core.average_repetitions(da)
    for cond in avg.stimulus.values:
        np.testing.assert_allclose(avg.sel(stimulus=cond).values, ep[cond].average(picks="all").data, rtol=1e-12)


# --------------------------------------------------------------------------------------------------- bad inputs


def test_nan_in_epochs_raises():
    info = mne.create_info(["Cz", "Pz"], 100.0, "eeg")
    data = np.zeros((2, 2, 5))
    data[1, 0, 3] = np.nan
    ep = mne.EpochsArray(data, info, events=np.array([[0, 0, 1], [10, 0, 1]]))
    with pytest.raises(SchemaError, match="non-finite"):
        nb.io.from_mne(ep)
    raw = mne.io.RawArray(np.array([[0.0, np.inf, 1.0]]), mne.create_info(["Cz"], 10.0, "eeg"))
    with pytest.raises(SchemaError, match="non-finite"):
        nb.io.from_mne(raw)


def test_bad_stimulus_and_evoked_inputs(evokeds):
    info = mne.create_info(["Cz", "Pz"], 100.0, "eeg")
    ep = mne.EpochsArray(np.zeros((2, 2, 5)), info, events=np.array([[0, 0, 1], [10, 0, 2]]))
    with pytest.raises(SchemaError, match="neither 'event' nor a metadata column"):
        nb.io.from_mne(ep, stimulus="word")
    with pytest.raises(SchemaError, match="one id per epoch"):
        nb.io.from_mne(ep, stimulus=["a", "b", "c"])
    with pytest.raises(SchemaError, match="duplicated stimulus ids"):
        nb.io.from_mne(evokeds, stimulus=["a", "a", "b", "c"])
    with pytest.raises(SchemaError, match="different channels"):
        nb.io.from_mne([evokeds[0], evokeds[1].copy().pick(evokeds[1].ch_names[:10])])
    with pytest.raises(SchemaError, match="different times"):
        nb.io.from_mne([evokeds[0], evokeds[1].copy().crop(0, 0.2)])
    with pytest.raises(TypeError, match="mne Raw, Epochs, Evoked"):
        nb.io.from_mne(np.zeros((2, 3)))


def test_to_mne_bad_inputs(evokeds):
    da = nb.io.from_mne(evokeds)
    with pytest.raises(SchemaError, match="expected dims"):
        nb.io.to_mne(da.transpose("time", "channel", "condition"))
    with pytest.raises(SchemaError, match="expected dims"):
        nb.io.to_mne(da.isel(channel=0))
    epochs = nb.core.eeg_epochs(np.zeros((2, 2, 5)), stimulus=["a", "b"], ch_names=["Cz", "Pz"], sfreq=100.0)
    with pytest.raises(SchemaError, match="no 'stimulus' coordinate"):
        nb.io.to_mne(epochs.drop_vars("stimulus"))
    bad = epochs.copy(data=np.where(np.arange(5) == 2, np.nan, 0.0) * np.ones((2, 2, 1)))
    with pytest.raises(SchemaError, match="non-finite"):
        nb.io.to_mne(bad)
    no_sfreq = epochs.copy()
    del no_sfreq.attrs["sfreq"]
    with pytest.raises(SchemaError, match="sfreq"):
        nb.io.to_mne(no_sfreq)
    other = mne.create_info(["Cz", "Oz"], 100.0, "eeg")
    with pytest.raises(SchemaError, match="info lacks 1 channel"):
        nb.io.to_mne(epochs, info=other)
    with pytest.raises(SchemaError, match="sfreq 250.0"):
        nb.io.to_mne(epochs, info=mne.create_info(["Cz", "Pz"], 250.0, "eeg"))
    irregular = epochs.assign_coords(time=[0.0, 0.01, 0.02, 0.05, 0.06])
    with pytest.raises(SchemaError, match="not regularly sampled"):
        nb.io.to_mne(irregular)


def test_epochs_with_metadata_through_zarr(data_dir, tmp_path):
    """Real EDF epochs with metadata survive nb.save/nb.load and go back to mne unchanged."""
    raw = _read(data_dir, "test.edf")
    events = mne.find_events(raw, shortest_event=1)
    meta = pd.DataFrame({"word": [f"w{i % 3}" for i in range(len(events))], "trial_index": np.arange(len(events))})
    ep = mne.Epochs(raw, events, event_id={"a": 4096, "b": 4100}, tmin=-0.02, tmax=0.05, baseline=(None, 0),
                    metadata=meta, preload=True)
    da = nb.io.from_mne(ep, stimulus="word")
    assert da.attrs["baseline"] == [-0.01953125, 0.0]
    nb.save(da, tmp_path / "ep.zarr")
    loaded = nb.load(tmp_path / "ep.zarr")
    xr.testing.assert_identical(loaded.load(), da)
    back = nb.io.to_mne(loaded)
    np.testing.assert_array_equal(back.get_data(), ep.get_data())
    np.testing.assert_array_equal(back.events, ep.events)
    pd.testing.assert_frame_equal(back.metadata.reset_index(drop=True), ep.metadata.reset_index(drop=True))
    # repetitions of each word average like pandas groupby on the metadata
    avg = nb.core.average_repetitions(da)
    for word in ("w0", "w1", "w2"):
        np.testing.assert_allclose(avg.sel(stimulus=word).values, ep.get_data()[meta.word == word].mean(0))
    # ... and go to mne as Evoked with nave = number of repetitions, equal to mne's own averages
    evs = nb.io.to_mne(avg)
    for ev in evs:
        ref = ep[ep.metadata.word == ev.comment].average(picks="all")
        assert ev.nave == ref.nave
        np.testing.assert_allclose(ev.data, ref.data, rtol=1e-12)
