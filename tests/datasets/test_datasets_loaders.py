"""The real loaders: shapes, validation and agreement with the source files read independently."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io
from scipy.spatial.distance import squareform

import neurobridge as nb
from neurobridge.core import validate


@pytest.fixture(scope="module")
def k92(data_dir):
    return nb.datasets.load("kriegeskorte92", data_dir=data_dir, progress=False)


@pytest.fixture(scope="module")
def sample(data_dir):
    return nb.datasets.load("mne_sample_evoked", data_dir=data_dir, progress=False, noise_cov=True)


def test_kriegeskorte92_shapes_and_validation(k92):
    assert k92.name == "kriegeskorte92" and k92.card.name == "kriegeskorte92"
    st = k92.stimuli
    assert st.dims == ("stimulus", "height", "width", "color")
    assert st.shape == (92, 175, 175, 3) and st.dtype == np.uint8
    ids = [f"img{i:02d}" for i in range(92)]
    assert st["stimulus"].values.tolist() == ids
    hit = validate(k92.brain["hit"], "rdm")
    assert hit.dims == ("subject", "session", "stimulus", "stimulus2") and hit.shape == (4, 2, 92, 92)
    assert hit["subject"].values.tolist() == ["BE", "KO", "SN", "TI"]
    assert hit["session"].values.tolist() == [1, 2]
    mit = validate(k92.brain["mit"], "rdm")
    assert mit.dims == ("stimulus", "stimulus2")
    assert k92.extras["models"].sizes == {"model": 8, "stimulus": 92, "stimulus2": 92}
    assert k92.extras["behaviour"].sizes == {"subject": 16, "stimulus": 92, "stimulus2": 92}
    for da in [*k92.brain.values(), *k92.extras.values()]:
        validate(da, "rdm")
        assert da["stimulus"].values.tolist() == ids and da["stimulus2"].values.tolist() == ids
        vals = da.values
        np.testing.assert_allclose(vals, np.swapaxes(vals, -1, -2))
        np.testing.assert_allclose(np.diagonal(vals, axis1=-2, axis2=-1), 0)


def test_kriegeskorte92_mean_hit_equals_fig1(k92):
    mean = k92.brain["hit"].mean(("subject", "session"))
    np.testing.assert_allclose(mean.values, k92.extras["hit_fig1"].values, atol=1e-6)


def test_kriegeskorte92_mit_in_pdist_order(k92):
    # the model file holds the same monkey-IT RDM as a square matrix: an independent check of pdist order
    np.testing.assert_allclose(k92.brain["mit"].values, k92.extras["models"].sel(model="monkeyIT").values)


def test_kriegeskorte92_against_raw_mat(k92, data_dir):
    folder = data_dir / "kriegeskorte92"
    sup = scipy.io.loadmat(folder / "Kriegeskorte_Neuron2008_supplementalData.mat")
    objs = sup["stimuli_92objs"][0]
    for i in (0, 37, 91):
        np.testing.assert_array_equal(k92.stimuli[i].values, objs[i]["image"])
        assert k92.stimuli["category"].values[i] == objs[i]["category"][0]
        assert bool(k92.stimuli["face"].values[i]) == bool(objs[i]["face"][0, 0])
    cats = k92.stimuli["category"].to_series().value_counts().to_dict()
    assert cats == {"natural inanimate": 23, "artificial inanimate": 21, "human bodypart": 12, "human face": 12,
                    "nonhuman bodypart": 12, "nonhuman face": 12}
    assert int(k92.stimuli["animal"].sum()) == 48 and int(k92.stimuli["face"].sum()) == 24
    brain = scipy.io.loadmat(folder / "92_brainRDMs.mat")["RDMs"]
    np.testing.assert_allclose(k92.brain["hit"].sel(subject="SN", session=2).values, brain[0, 2, 1]["RDM"])
    v = sup["RDMs_mIT_hIT_fig1"][0, 0]["RDM"].ravel()
    np.testing.assert_allclose(squareform(k92.brain["mit"].values, checks=False), v)


def test_mne_sample_evoked(sample, data_dir):
    import mne

    ev = sample.brain["meeg"]
    validate(ev, "evoked")
    assert ev.dims == ("stimulus", "channel", "time") and ev.shape == (4, 366, 421)
    assert ev["stimulus"].values.tolist() == ["auditory/left", "auditory/right", "visual/left", "visual/right"]
    assert ev["nave"].values.tolist() == [3, 6, 6, 6]
    assert ev.attrs["sfreq"] == pytest.approx(600.614990234375)
    types = ev["ch_type"].to_series().value_counts().to_dict()
    assert types == {"grad": 204, "mag": 102, "eeg": 60}
    ref = mne.read_evokeds(data_dir / "mne_sample_evoked" / "test-ave.fif.gz", verbose="error")
    for i, e in enumerate(ref):
        e = e.pick("data")
        np.testing.assert_allclose(ev.isel(stimulus=i).values, e.data)
        np.testing.assert_allclose(ev["time"].values, e.times)
        assert ev["channel"].values.tolist() == e.ch_names
    st = sample.stimuli
    assert st.dims == ("stimulus",) and st.dtype.kind == "U"
    assert st["stimulus"].values.tolist() == ev["stimulus"].values.tolist()
    assert "left ear" in str(st.sel(stimulus="auditory/left").values)
    assert "checkerboard" in str(st.sel(stimulus="visual/right").values)
    assert st["modality"].values.tolist() == ["auditory", "auditory", "visual", "visual"]
    events = sample.extras["events"]
    assert events.dims == ("event", "field") and set(np.unique(events.sel(field="id").values)) >= {1, 2, 3, 4}
    cov = sample.extras["noise_cov"]
    assert cov.shape == (366, 366)
    np.testing.assert_allclose(cov.values, cov.values.T)



def test_kriegeskorte92_rdms_carry_category(k92):
    for da in [*k92.brain.values(), *k92.extras.values()]:
        assert da["category"].values.tolist() == k92.stimuli["category"].values.tolist()
