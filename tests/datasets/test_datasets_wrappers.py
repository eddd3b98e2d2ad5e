"""Wrappers over MNE / nilearn / OSF downloaders: conversion tested on small files in the real formats."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import threading
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.io

import neurobridge as nb
from neurobridge.core import validate
from neurobridge.datasets import ChecksumError, DatasetNotFoundError
from neurobridge.datasets import _wrappers as W

mne = pytest.importorskip("mne")
nib = pytest.importorskip("nibabel")


# ------------------------------------------------------------------------------------------- kiloword
def _write_kiloword(folder: Path, n: int = 6) -> pd.DataFrame:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    names = ["Fz", "Cz", "Pz", "Oz", "C3", "C4"]
    info = mne.create_info(names, 50.0, "eeg")
    meta = pd.DataFrame({"WORD": [f"word{i}" for i in range(n)], "Concreteness": rng.uniform(1, 7, n),
                         "WordFrequency": rng.uniform(0, 4, n), "NumberOfLetters": rng.integers(3, 9, n)})
    events = np.c_[np.arange(n) * 100, np.zeros(n, int), np.arange(1, n + 1)]
    ep = mne.EpochsArray(rng.normal(size=(n, 6, 52)) * 1e-6, info, events=events, tmin=-0.1, metadata=meta,
                         verbose="error")
    ep.save(folder / "kword_metadata-epo.fif", overwrite=True, verbose="error")
    return meta


def test_kiloword_conversion(tmp_path):
    meta = _write_kiloword(tmp_path / "kiloword" / "MNE-kiloword-data")
    ds = nb.datasets.load("kiloword", data_dir=tmp_path, download=False)
    ev = validate(ds.brain["eeg"], "evoked")
    assert ev.dims == ("stimulus", "channel", "time") and ev.shape == (6, 6, 52)
    assert ev["stimulus"].values.tolist() == meta["WORD"].tolist()
    ref = mne.read_epochs(tmp_path / "kiloword" / "MNE-kiloword-data" / "kword_metadata-epo.fif", verbose="error")
    np.testing.assert_allclose(ev.values, ref.get_data())
    np.testing.assert_allclose(ev["time"].values, ref.times)
    st = ds.stimuli
    assert st.values.tolist() == meta["WORD"].tolist() and st["stimulus"].values.tolist() == meta["WORD"].tolist()
    np.testing.assert_allclose(st["Concreteness"].values, meta["Concreteness"].values)


def test_kiloword_offline_error(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        nb.datasets.load("kiloword", data_dir=tmp_path, download=False)
    msg = str(info.value)
    assert str(tmp_path / "kiloword" / "MNE-kiloword-data") in msg and "mne.datasets.kiloword" in msg


def test_offline_download_failure_is_reported(tmp_path, monkeypatch):
    def boom(**kwargs):
        raise ConnectionError("no route to host")

    monkeypatch.setattr(mne.datasets.kiloword, "data_path", boom)
    with pytest.raises(DatasetNotFoundError, match="ConnectionError"):
        nb.datasets.load("kiloword", data_dir=tmp_path, download=True)


# --------------------------------------------------------------------------------- visual_92_categories
def _write_visual92(folder: Path, labels: pd.DataFrame, runs=(0, 1), triggers=(1, 2, 3, 50, 92)) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    labels.to_csv(folder / "visual_stimuli.csv", index=False)
    rng = np.random.default_rng(1)
    info = mne.create_info(["MEG 0113", "MEG 0112", "MEG 0111", "STI101"], 1000.0, ["grad", "grad", "mag", "stim"])
    for r in runs:
        n = 1000 * (len(triggers) + 2)
        data = rng.normal(size=(4, n)) * 1e-12
        data[3] = 0
        for i, t in enumerate(triggers):
            data[3, 1000 * (i + 1): 1000 * (i + 1) + 10] = t
        raw = mne.io.RawArray(data, info, verbose="error")
        raw.save(folder / f"sample_subject_{r}_tsss_mc.fif", overwrite=True, verbose="error")


def _v92_labels(k92_stimuli=None) -> pd.DataFrame:
    if k92_stimuli is not None:
        cat = k92_stimuli["category"].values
        flags = {k: k92_stimuli[k].values.astype(int) for k in ("human", "face", "animal", "natural")}
    else:
        cat = np.array(["human face" if i % 2 else "natural inanimate" for i in range(92)])
        flags = {k: np.arange(92) % 2 for k in ("human", "face", "animal", "natural")}
    return pd.DataFrame({"trigger": np.arange(92), "condition": cat, **flags})


def test_visual92_conversion_without_images(tmp_path):
    folder = tmp_path / "MNE-visual_92_categories-data"
    labels = _v92_labels()
    _write_visual92(folder, labels)
    ds = W.read_visual_92_categories(folder, runs=(0, 1), tmin=-0.1, tmax=0.3, picks="meg")
    ep = validate(ds.brain["meg"], "eeg_epochs")
    assert ep.sizes["trial"] == 10 and ep.sizes["channel"] == 3 and ep.sizes["time"] == 401
    assert ep["stimulus"].values.tolist() == ["img00", "img01", "img02", "img49", "img91"] * 2
    assert ep["run"].values.tolist() == [0] * 5 + [1] * 5
    assert ep["category"].values.tolist()[:2] == ["natural inanimate", "human face"]
    assert ds.stimuli.dims == ("stimulus",) and ds.stimuli.sizes["stimulus"] == 92
    # against mne directly: first epoch of trigger 50 in run 0
    raw = mne.io.read_raw_fif(folder / "sample_subject_0_tsss_mc.fif", verbose="error")
    onset = 4000
    np.testing.assert_allclose(ep.isel(trial=3).values, raw.get_data(picks="meg", start=onset - 100, stop=onset + 301))


def test_visual92_pairs_kriegeskorte_images(tmp_path, data_dir):
    k92 = nb.datasets.load("kriegeskorte92", data_dir=data_dir, progress=False)
    root = tmp_path / "root"
    (root / "kriegeskorte92").mkdir(parents=True)
    for f in nb.datasets.info("kriegeskorte92").files:
        (root / "kriegeskorte92" / f.name).symlink_to(data_dir / "kriegeskorte92" / f.name)
    _write_visual92(root / "visual_92_categories" / "MNE-visual_92_categories-data", _v92_labels(k92.stimuli),
                    runs=(0,))
    ds = nb.datasets.load("visual_92_categories", data_dir=root, download=False, runs=(0,))
    assert ds.stimuli.shape == (92, 175, 175, 3) and ds.stimuli.dtype == np.uint8
    np.testing.assert_array_equal(ds.stimuli.values, k92.stimuli.values)
    assert set(ds.brain["meg"]["stimulus"].values) <= set(k92.brain["hit"]["stimulus"].values)
    # labels that disagree with the images: no pairing, category labels instead
    bad = _v92_labels()
    bad.to_csv(root / "visual_92_categories" / "MNE-visual_92_categories-data" / "visual_stimuli.csv", index=False)
    ds2 = nb.datasets.load("visual_92_categories", data_dir=root, download=False, runs=(0,))
    assert ds2.stimuli.dims == ("stimulus",)


# ------------------------------------------------------------------------------------------------ mTRF
def _write_mtrf(folder: Path, n: int = 128 * 10) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2)
    mat = {"EEG": rng.normal(size=(n, 128)), "spectrogram": np.abs(rng.normal(size=(n, 16))),
           "Fs": np.array([[128]])}
    mat["envelope"] = mat["spectrogram"].mean(1, keepdims=True)
    scipy.io.savemat(folder / "speech_data.mat", mat)
    return mat


def test_mtrf_conversion(tmp_path):
    mat = _write_mtrf(tmp_path / "mtrf" / "mTRF_1.5")
    ds = nb.datasets.load("mtrf", data_dir=tmp_path, download=False)
    eeg = validate(ds.brain["eeg"], "eeg_raw")
    assert eeg.shape == (128, 1280) and eeg.attrs["sfreq"] == 128.0
    assert eeg["channel"].values[0] == "A1" and eeg["channel"].values[-1] == "D32"
    assert np.isfinite(eeg["pos_x"].values).all()
    np.testing.assert_allclose(eeg.values, mat["EEG"].T)
    env = ds.extras["envelope"]
    assert env.dims == ("time", "unit") and env.shape == (1280, 1)
    np.testing.assert_allclose(env["time"].values, eeg["time"].values)
    assert ds.extras["spectrogram"].shape == (1280, 16)
    # the envelope drives the simulator's continuous (TRF) mode directly
    sim = nb.datasets.simulate_encoding(env, kind="eeg", n_channels=4, random_state=0)
    assert sim.responses.sizes["time"] == 1280
    half = W.read_mtrf(tmp_path / "mtrf" / "mTRF_1.5" / "speech_data.mat", decim=2)
    assert half.brain["eeg"].attrs["sfreq"] == 64.0 and half.brain["eeg"].sizes["time"] == 640


# ----------------------------------------------------------------------------------------------- Haxby
_HAXBY_BLOCK = ["rest"] * 3 + ["face"] * 4 + ["rest"] * 2 + ["house"] * 4 + ["rest"] * 3


def _nifti(path: Path, data, affine=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(data, dtype=np.float32), np.eye(4) if affine is None else affine), path)


def _write_haxby(root: Path, subject: int = 2) -> tuple[np.ndarray, list[str], np.ndarray]:
    base = root / "haxby2001"
    sub = base / f"subj{subject}"
    labels = _HAXBY_BLOCK * 2
    runs = np.repeat([0, 1], len(_HAXBY_BLOCK))
    rng = np.random.default_rng(3)
    bold = rng.normal(size=(5, 5, 5, len(labels)))
    face = np.array([lab == "face" for lab in labels], float)
    bold[1:3, 1:3, 1:3] += 5 * np.roll(face, 2)  # face voxels respond 2 volumes after face onsets
    _nifti(sub / "bold.nii.gz", bold)
    vt = np.zeros((5, 5, 5))
    vt[1:4, 1:4, 1:4] = 1
    for name in ("mask4_vt.nii.gz", "mask8b_face_vt.nii.gz", "mask8b_house_vt.nii.gz", "mask8_face_vt.nii.gz",
                 "mask8_house_vt.nii.gz", "anat.nii.gz"):
        _nifti(sub / name, vt)
    _nifti(base / "mask.nii.gz", np.ones((5, 5, 5)))
    (base / "MD5SUMS").write_text("")
    pd.DataFrame({"labels": labels, "chunks": runs}).to_csv(sub / "labels.txt", sep=" ", index=False)
    from PIL import Image

    for folder, n in (("faces", 3), ("houses", 2), ("controls/faces", 1)):
        d = base / "stimuli" / folder
        d.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (40 + i, 30), dtype=np.uint8), "L").save(d / f"{i}.jpg")
    (base / "stimuli" / "README").write_text("stimuli")
    return bold, labels, runs


def test_haxby_through_nilearn_fetcher(tmp_path):
    bold, labels, runs = _write_haxby(tmp_path / "haxby")
    ds = nb.datasets.load("haxby", data_dir=tmp_path, download=False, image_size=(32, 32))
    ts = validate(ds.brain["bold"], "fmri_timeseries")
    assert ts.shape == (32, 27) and ts.attrs["tr"] == 2.5
    assert ts["label"].values.tolist() == labels and ts["run"].values.tolist() == runs.tolist()
    blocks = validate(ds.brain["blocks"], "fmri_responses")
    assert blocks["stimulus"].values.tolist() == ["face", "house", "face", "house"]
    assert blocks["run"].values.tolist() == [0, 0, 1, 1]
    # block mean of the volumes 2 after the block, computed by hand in voxel (1, 1, 1)
    v = int(np.flatnonzero((ts["i"].values == 1) & (ts["j"].values == 1) & (ts["k"].values == 1))[0])
    np.testing.assert_allclose(blocks.values[0, v], bold[1, 1, 1, 5:9].mean(), rtol=1e-5)
    assert float(blocks.sel(trial=blocks["stimulus"] == "face").values[:, v].mean()) > 3
    assert ds.stimuli.values.tolist() == ["face", "house"]
    imgs = ds.extras["images"]
    assert imgs.shape == (5, 32, 32, 3) and imgs.dtype == np.uint8
    assert imgs["category"].values.tolist() == ["face"] * 3 + ["house"] * 2
    assert ds.stimuli["n_images"].values.tolist() == [3, 2]


def test_haxby_offline_and_bad_mask(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="fetch_haxby"):
        nb.datasets.load("haxby", data_dir=tmp_path, download=False)
    with pytest.raises(ValueError, match="mask must be one of"):
        nb.datasets.load("haxby", data_dir=tmp_path, mask="v1")


# -------------------------------------------------------------------------------------------- Miyawaki
def _write_miyawaki(root: Path, n_vol: int = 10):
    from nilearn.datasets.func import miyawaki2008_file_mask

    base = root / "miyawaki2008"
    rng = np.random.default_rng(4)
    patterns = {}
    for design, n in (("figure", 12), ("random", 20)):
        for r in range(1, n + 1):
            a = rng.integers(0, 2, (10, 10))
            b = np.eye(10, dtype=int) if design == "figure" else rng.integers(0, 2, (10, 10))
            lab = np.full((n_vol, 100), -1)
            lab[2:5] = a.ravel(order="F")
            lab[5:8] = b.ravel(order="F")
            name = f"data_{design}_run{r:02d}"
            (base / "label").mkdir(parents=True, exist_ok=True)
            np.savetxt(base / "label" / f"{name}_label.csv", lab, fmt="%d", delimiter=",")
            data = rng.normal(size=(3, 3, 3, n_vol)) * 0.01
            # voxel (0,0,0) carries pixel (0,0) of the image shown 2 volumes earlier
            for t in range(2, 8):
                data[0, 0, 0, t + 2] = lab[t, 0]
            _nifti(base / "func" / f"{name}.nii.gz", data)
            patterns[name] = (a, b)
    for m in miyawaki2008_file_mask():
        _nifti(base / "mask" / m, np.ones((3, 3, 3)))
    _nifti(base / "bg.nii.gz", np.ones((3, 3, 3)))
    return patterns


def test_miyawaki_through_nilearn_fetcher(tmp_path):
    patterns = _write_miyawaki(tmp_path / "miyawaki2008")
    ds = nb.datasets.load("miyawaki2008", data_dir=tmp_path, download=False, runs="random", standardize=False)
    resp = validate(ds.brain["responses"], "fmri_responses")
    assert resp.sizes["trial"] == 20 * 6 and resp.sizes["voxel"] == 27
    assert set(resp["design"].values.tolist()) == {"random"}
    assert resp["volume"].values[:6].tolist() == [2, 3, 4, 5, 6, 7]
    st = ds.stimuli
    assert st.dims == ("stimulus", "height", "width") and st.dtype == np.uint8
    a, b = patterns["data_random_run01"]
    first = st.sel(stimulus=resp["stimulus"].values[0]).values
    np.testing.assert_array_equal(first, a)
    # the shift pairs each image with the volume 2 TRs later: voxel 0 equals pixel (0, 0)
    px = np.array([st.sel(stimulus=s).values[0, 0] for s in resp["stimulus"].values])
    np.testing.assert_allclose(resp.isel(voxel=0).values, px, atol=1e-6)
    # 3 volumes per image share its (content-hash) id
    assert (pd.Series(resp["stimulus"].values).value_counts() == 3).all()
    fig = nb.datasets.load("miyawaki2008", data_dir=tmp_path, download=False, runs="figure")
    ids = fig.brain["responses"]["stimulus"].values
    eye = W._pattern_id(np.eye(10, dtype=int))
    assert (ids == eye).sum() == 12 * 3  # the repeated figure shares one id across runs


# ----------------------------------------------------------------------------------------- THINGS-EEG2
def _write_things(folder: Path, n_img=4, n_rep=3) -> dict:
    from PIL import Image

    rng = np.random.default_rng(5)
    concepts = [f"{i + 1:05d}_concept{i}" for i in range(n_img)]
    files = [f"concept{i}_01b.jpg" for i in range(n_img)]
    chans = ["Pz", "P3", "P7", "O1", "Oz", "O2"]
    data = rng.normal(size=(n_img, n_rep, len(chans), 10))
    d = {"preprocessed_eeg_data": data, "ch_names": chans, "times": np.round(np.arange(-0.2, 0.8, 0.1), 2)}
    (folder / "sub-01").mkdir(parents=True, exist_ok=True)
    np.save(folder / "sub-01" / "preprocessed_eeg_test.npy", d, allow_pickle=True)
    meta = {"test_img_files": files, "test_img_concepts": concepts, "train_img_files": [], "train_img_concepts": []}
    np.save(folder / "image_metadata.npy", meta, allow_pickle=True)
    for c, f in zip(concepts, files, strict=True):
        (folder / "test_images" / c).mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(folder / "test_images" / c / f)
    return d


def test_things_eeg2_conversion(tmp_path):
    d = _write_things(tmp_path / "things_eeg2")
    ds = nb.datasets.load("things_eeg2", data_dir=tmp_path, download=False)
    ep = validate(ds.brain["eeg"], "eeg_epochs")
    assert ep.shape == (12, 6, 10) and ep.attrs["sfreq"] == pytest.approx(10.0)
    assert ep["stimulus"].values.tolist()[:4] == ["concept0_01b"] * 3 + ["concept1_01b"]
    assert ep["repetition"].values.tolist()[:4] == [0, 1, 2, 0]
    np.testing.assert_allclose(ep.values.reshape(4, 3, 6, 10), d["preprocessed_eeg_data"])
    assert ds.stimuli.shape == (4, 20, 20, 3) and ds.stimuli["concept"].values[0] == "00001_concept0"
    paths = W.read_things_eeg2(tmp_path / "things_eeg2", load_images=False).stimuli
    assert paths.dims == ("stimulus",) and paths.values[0].endswith("test_images/00001_concept0/concept0_01b.jpg")
    with pytest.raises(ValueError, match="partition"):
        W.read_things_eeg2(tmp_path / "things_eeg2", partition="val")


@pytest.fixture
def fake_osf(tmp_path, monkeypatch):
    """A local stand-in for the OSF API: listing pages (with pagination and a folder) and downloads."""
    served = tmp_path / "osf"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("NEUROBRIDGE_OSF_API", base + "/v2")
    yield served, base
    server.shutdown()
    server.server_close()


def _file_entry(base: str, name: str, path: Path, sha: str | None = None):
    digest = sha or hashlib.sha256(path.read_bytes()).hexdigest()
    return {"attributes": {"name": name, "kind": "file", "size": path.stat().st_size,
                           "extra": {"hashes": {"sha256": digest}}},
            "links": {"download": f"{base}/files/{path.name}"}}


def _serve_things(served: Path, base: str, tmp_path: Path, corrupt: bool = False):
    src = tmp_path / "src"
    _write_things(src)
    files = served / "files"
    files.mkdir()
    with zipfile.ZipFile(files / "sub-01.zip", "w") as zf:
        zf.write(src / "sub-01" / "preprocessed_eeg_test.npy", "sub-01/preprocessed_eeg_test.npy")
    with zipfile.ZipFile(files / "test_images.zip", "w") as zf:
        for p in (src / "test_images").rglob("*.jpg"):
            zf.write(p, str(p.relative_to(src)))
    (files / "image_metadata.npy").write_bytes((src / "image_metadata.npy").read_bytes())
    pre = served / "v2" / "nodes" / "anp5v" / "files" / "osfstorage"
    pre.mkdir(parents=True)
    # page 1 has a folder and a link to page 2, which holds the subject zip
    (pre / "index.html").write_text(json.dumps({
        "data": [{"attributes": {"name": "docs", "kind": "folder"},
                  "relationships": {"files": {"links": {"related": {"href": f"{base}/v2/docs/"}}}}}],
        "links": {"next": f"{base}/v2/page2/"}}))
    (served / "v2" / "page2").mkdir(parents=True)
    sha = "0" * 64 if corrupt else None
    (served / "v2" / "page2" / "index.html").write_text(json.dumps(
        {"data": [_file_entry(base, "sub-01.zip", files / "sub-01.zip", sha)], "links": {"next": None}}))
    (served / "v2" / "docs").mkdir(parents=True)
    (served / "v2" / "docs" / "index.html").write_text(json.dumps({"data": [], "links": {}}))
    img = served / "v2" / "nodes" / "y63gw" / "files" / "osfstorage"
    img.mkdir(parents=True)
    (img / "index.html").write_text(json.dumps({"data": [
        _file_entry(base, "image_metadata.npy", files / "image_metadata.npy"),
        _file_entry(base, "test_images.zip", files / "test_images.zip")], "links": {"next": None}}))


def test_osf_listing_and_download(fake_osf, tmp_path):
    served, base = fake_osf
    _serve_things(served, base, tmp_path)
    listing = W.osf_listing("anp5v")
    assert set(listing) == {"sub-01.zip"} and listing["sub-01.zip"]["url"].endswith("/files/sub-01.zip")
    ds = nb.datasets.load("things_eeg2", data_dir=tmp_path / "data", progress=False)
    assert ds.brain["eeg"].sizes["trial"] == 12 and ds.stimuli.shape == (4, 20, 20, 3)
    assert (tmp_path / "data" / "things_eeg2" / "sub-01" / "preprocessed_eeg_test.npy").exists()


def test_osf_download_checksum_mismatch(fake_osf, tmp_path):
    served, base = fake_osf
    _serve_things(served, base, tmp_path, corrupt=True)
    with pytest.raises(ChecksumError, match="sub-01.zip"):
        nb.datasets.load("things_eeg2", data_dir=tmp_path / "data", progress=False)
    assert not (tmp_path / "data" / "things_eeg2" / "sub-01.zip").exists()


def test_things_offline(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="image_metadata.npy"):
        nb.datasets.load("things_eeg2", data_dir=tmp_path, download=False)


# ------------------------------------------------------------------------------------ real downloads
@pytest.mark.network
@pytest.mark.parametrize("name, check", [
    ("kiloword", lambda ds: ds.brain["eeg"].sizes["stimulus"] == 960),
    ("mtrf", lambda ds: ds.brain["eeg"].sizes["channel"] == 128),
    ("haxby", lambda ds: ds.brain["blocks"].sizes["voxel"] > 0 and ds.stimuli.sizes["stimulus"] == 8),
    ("miyawaki2008", lambda ds: ds.stimuli.sizes["height"] == 10),
    ("things_eeg2", lambda ds: ds.brain["eeg"].sizes["trial"] == 200 * 80),
])
def test_real_download(name, check):
    ds = nb.datasets.load(name, progress=False)
    assert check(ds)
    for da in ds.brain.values():
        assert da.size > 0


@pytest.mark.network
def test_real_download_visual92():
    ds = nb.datasets.load("visual_92_categories", runs=(0,), progress=False)
    assert ds.brain["meg"].sizes["channel"] == 306
    assert ds.stimuli.sizes["stimulus"] == 92
