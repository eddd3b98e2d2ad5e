"""nb.io.read_bids on a BIDS tree written by mne-bids from the real BrainVision fixture."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import neurobridge as nb
from neurobridge.core import SchemaError

mne = pytest.importorskip("mne")
mne_bids = pytest.importorskip("mne_bids")
mne.set_log_level("error")

EVENT_ID = {"Stimulus/S253": 253, "Stimulus/S255": 255, "Event/254": 254}
BIDS_ID = {"S253": 253, "S255": 255, "E254": 254}


@pytest.fixture(scope="module")
def bids_root(data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("bids")
    raw = mne.io.read_raw_brainvision(data_dir / "io_fixtures" / "test.vhdr")
    events, _ = mne.events_from_annotations(raw, event_id=EVENT_ID)
    raw.set_annotations(None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for run in ("1", "2"):
            path = mne_bids.BIDSPath(subject="01", task="images", run=run, root=root, datatype="eeg")
            mne_bids.write_raw_bids(raw, path, events=events, event_id=BIDS_ID, overwrite=True, verbose=False)
            # a stimulus column, as BIDS datasets have (stim_file / stimulus): one image per event
            tsv = path.copy().update(suffix="events", extension=".tsv")
            table = pd.read_csv(tsv.fpath, sep="\t")
            table["stimulus"] = [f"img{i % 4}.png" for i in range(len(table))]
            table.to_csv(tsv.fpath, sep="\t", index=False, na_rep="n/a")
    return root, raw, events


def test_read_bids_epochs_match_mne(bids_root):
    root, raw, events = bids_root
    da = nb.io.read_bids(root, "01", "images", run=1, stimulus="stimulus", tmin=-0.1, tmax=0.2)
    nb.core.validate(da, "eeg_epochs")
    assert da.stimulus.values.tolist() == [f"img{i % 4}.png" for i in range(len(events))]
    assert da.trial_type.values.tolist() == da.event_name.values.tolist()
    inv = {v: k for k, v in BIDS_ID.items()}
    assert da.event_name.values.tolist() == [inv[c] for c in events[:, 2]]
    assert da.attrs["bids_subject"] == "01" and da.attrs["source"].startswith("sub-01_task-images_run-1")
    # the same epochs built directly with mne from the original file
    ref = mne.Epochs(raw, events, tmin=-0.1, tmax=0.2, baseline=None, preload=True)
    np.testing.assert_allclose(da.values, ref.get_data(), rtol=1e-6, atol=1e-12)
    np.testing.assert_array_equal(da.time.values, ref.times)
    assert da.channel.values.tolist() == ref.ch_names
    # default stimulus is the event name (trial_type); a subset of trial types
    default = nb.io.read_bids(root, "01", "images", run="2", tmin=-0.1, tmax=0.2, event_id=["S255"])
    assert set(default.stimulus.values.tolist()) == {"S255"}
    assert default.sizes["trial"] == int((events[:, 2] == 255).sum())
    # epochs go back to mne with their metadata
    back = nb.io.to_mne(da)
    assert back.metadata["stimulus"].tolist() == da.stimulus.values.tolist()


def test_read_bids_raw(bids_root):
    root, raw, _ = bids_root
    da = nb.io.read_bids(root, "01", "images", run=1, tmin=None, tmax=None)
    nb.core.validate(da, "eeg_raw")
    np.testing.assert_allclose(da.values, raw.get_data(), rtol=1e-6, atol=1e-12)
    assert len(da.attrs["annot_onset"]) == 10


def test_read_bids_errors(bids_root, tmp_path):
    root, _, _ = bids_root
    with pytest.raises(FileNotFoundError, match="BIDS root not found"):
        nb.io.read_bids(tmp_path / "nope", "01", "images")
    with pytest.raises(FileNotFoundError, match=r"subjects found: \['01'\], tasks found: \['images'\]"):
        nb.io.read_bids(root, "02", "images", run=1)
    with pytest.raises(FileNotFoundError, match="no eeg recording"):
        nb.io.read_bids(root, "01", "faces", run=1)
    with pytest.raises(SchemaError, match="pass session=... and/or run=..."):
        nb.io.read_bids(root, "01", "images")
    with pytest.raises(SchemaError, match="unknown trial types"):
        nb.io.read_bids(root, "01", "images", run=1, event_id=["S999"])
    with pytest.raises(SchemaError, match="neither 'event' nor a metadata column"):
        nb.io.read_bids(root, "01", "images", run=1, stimulus="stim_file")
