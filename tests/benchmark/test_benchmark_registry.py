"""Benchmark registry: register, lookup with suggestions, dataset names, TOML files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import neurobridge as nb
from neurobridge.benchmark import (
    Benchmark,
    from_toml,
    get,
    make_data,
    register,
    resolve,
    unregister,
)


def _rdm(n=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, n))
    x = (x + x.T) / 2
    np.fill_diagonal(x, 0)
    return nb.core.rdm(x, stimulus=[f"s{i}" for i in range(n)])


def test_builtins_and_defaults():
    names = nb.benchmark.available()
    for name in ("kriegeskorte92-hit-rsa", "kriegeskorte92-mit-rsa", "mne-sample-meg-rsa", "simulated-fmri-encoding"):
        assert name in names
    assert [b.name for b in resolve(None)] == list(nb.benchmark.DEFAULT_BENCHMARKS)
    assert get("mne-sample-meg-rsa").demo and get("mne-sample-meg-rsa").modality == "text"
    assert get("simulated-fmri-encoding").metric == "encoding"
    assert [b.name for b in resolve("kriegeskorte92")] == ["kriegeskorte92-hit-rsa", "kriegeskorte92-mit-rsa"]


def test_unknown_names_get_close_matches():
    with pytest.raises(ValueError, match="did you mean 'mne-sample-meg-rsa'"):
        get("mne-sampel-meg-rsa")
    with pytest.raises(ValueError, match="unknown benchmark 'zzz'; available"):
        resolve(["kriegeskorte92-mit-rsa", "zzz"])


def test_register_by_name_and_duplicates():
    brain = _rdm()
    b = register("unit-test-rsa", brain, [f"text {i}" for i in range(6)], modality="text", split="stimulus")
    try:
        assert get("unit-test-rsa") is b
        data = b.data(None)
        assert data.stimuli.dims == ("stimulus",) and data.stimuli["stimulus"].values.tolist() == \
            brain["stimulus"].values.tolist()
        with pytest.raises(ValueError, match="already registered"):
            register("unit-test-rsa", brain, list("abcdef"))
        register("unit-test-rsa", brain, list("abcdef"), overwrite=True)
    finally:
        unregister("unit-test-rsa")
    assert "unit-test-rsa" not in nb.benchmark.available()
    with pytest.raises(ValueError, match="pass the brain data and the stimuli"):
        register("x", brain)


def test_make_data_checks_stimuli_against_brain_ids():
    brain = _rdm(4)
    with pytest.raises(ValueError, match="3 stimuli for 4 unique stimulus ids"):
        make_data(brain, ["a", "b", "c"])
    images = np.zeros((4, 8, 8, 3), np.uint8)
    assert make_data(brain, images).stimuli.dims == ("stimulus", "height", "width", "color")
    partial = xr.DataArray(images[:3], dims=("stimulus", "height", "width", "color"),
                           coords={"stimulus": ["s0", "s1", "s2"]})
    with pytest.raises(ValueError, match=r"1 stimulus id\(s\) of the brain data have no stimulus"):
        make_data(brain, partial)
    with pytest.raises(ValueError, match="'stimulus' dim or a 'stimulus' coordinate"):
        make_data(xr.DataArray(np.zeros((3, 3)), dims=("a", "b")), ["x", "y", "z"])


def test_toml_benchmark_from_files(tmp_path):
    brain = _rdm(5)
    nb.save(brain, tmp_path / "brain.nc")
    (tmp_path / "stim.txt").write_text("\n".join(f"sentence {i}" for i in range(5)) + "\n")
    (tmp_path / "lab.toml").write_text(
        '[benchmark]\nname = "lab-text-rsa"\nbrain = "brain.nc"\nstimuli = "stim.txt"\nmodality = "text"\n'
        'split = "stimulus"\nn_splits = 4\ndescription = "my lab"\n')
    b = resolve(str(tmp_path / "lab.toml"))[0]
    try:
        assert (b.name, b.modality, b.n_splits, b.description) == ("lab-text-rsa", "text", 4, "my lab")
        data = b.data(None)
        np.testing.assert_allclose(data.target.values, brain.values)
        assert data.stimuli.values.tolist() == [f"sentence {i}" for i in range(5)]
        assert set(data.files) == {str(tmp_path / "brain.nc"), str(tmp_path / "stim.txt")}
        assert all(len(h) == 64 for h in data.files.values())
        for path, digest in data.files.items():  # sha256 of the file's bytes (pooch.file_hash)
            assert digest == hashlib.sha256(Path(path).read_bytes()).hexdigest()
        assert not hasattr(nb.benchmark._registry, "_sha256")  # no hand-written hashing next to pooch's
        assert "lab-text-rsa" in nb.benchmark.available()
    finally:
        unregister("lab-text-rsa")


def test_toml_images_folder(tmp_path):
    from PIL import Image

    brain = _rdm(4)
    nb.save(brain, tmp_path / "brain.nc")
    (tmp_path / "imgs").mkdir()
    for i in range(4):
        Image.fromarray(np.full((6, 6, 3), 40 * i, np.uint8)).save(tmp_path / "imgs" / f"s{i}.png")
    (tmp_path / "b.toml").write_text('[benchmark]\nname = "img-toy"\nbrain = "brain.nc"\nstimuli = "imgs"\n')
    b = from_toml(tmp_path / "b.toml", register_it=False)
    stim = b.data(None).stimuli
    assert stim.dims == ("stimulus", "height", "width", "color")
    assert stim.sel(stimulus="s3").values.max() == 120


@pytest.mark.parametrize("text, match", [
    ('[benchmark]\nbrain = "x.nc"\n', "needs a 'name'"),
    ('[benchmark]\nname = "a"\nbrain = "x.nc"\n', "'stimuli' is missing"),
    ('[benchmark]\nname = "a"\n', "set 'brain' and 'stimuli'"),
    ('[benchmark]\nname = "a"\nbrain = "x"\nstimuli = "y"\ncolour = 1\n', r"unknown key\(s\) \['colour'\]"),
    ('[benchmark]\nname = "a"\nbrain = "x"\nstimuli = "y"\nsplit = "voxel"\n', "split must be one of"),
    ('[benchmark\nname = ', "not valid TOML"),
])
def test_toml_errors(tmp_path, text, match):
    (tmp_path / "b.toml").write_text(text)
    with pytest.raises(ValueError, match=match):
        from_toml(tmp_path / "b.toml", register_it=False)


def test_toml_missing_files_are_named(tmp_path):
    (tmp_path / "b.toml").write_text('[benchmark]\nname = "a"\nbrain = "nothere.nc"\nstimuli = "s.txt"\n')
    b = from_toml(tmp_path / "b.toml", register_it=False)
    with pytest.raises(FileNotFoundError, match="nothere.nc"):
        b.data(None)
    with pytest.raises(FileNotFoundError, match="not found"):
        from_toml(tmp_path / "missing.toml")


def test_toml_packaged_dataset_target(tmp_path):
    (tmp_path / "b.toml").write_text('[benchmark]\nname = "k92-mit-again"\ndataset = "kriegeskorte92"\n'
                                     'target = "mit"\nsplit = "stimulus"\n')
    b = from_toml(tmp_path / "b.toml", register_it=False)
    assert isinstance(b, Benchmark) and b.dataset == "kriegeskorte92"
