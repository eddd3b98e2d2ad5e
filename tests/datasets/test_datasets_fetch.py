"""Finding files, downloading with pooch (from a local HTTP server), offline and checksum errors."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import shutil
import threading
from pathlib import Path

import pytest

import neurobridge as nb
from neurobridge.datasets import CARDS, ChecksumError, DatasetNotFoundError, _fetch

NAME = "mne_sample_evoked"
SMALL = "test-eve.fif"  # 543 bytes


@pytest.fixture
def mirror(data_dir) -> Path:
    folder = data_dir / NAME
    if not (folder / SMALL).is_file():
        pytest.skip(f"{NAME} not mirrored")
    return folder


@pytest.fixture
def http_folder(tmp_path):
    """Serve a temporary folder over HTTP on localhost; yields (folder, base_url)."""
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def _local_card(monkeypatch, base_url: str):
    card = CARDS[NAME]
    files = tuple(dataclasses.replace(f, url=base_url + f.name) for f in card.files)
    monkeypatch.setitem(CARDS, NAME, dataclasses.replace(card, files=files))
    return CARDS[NAME]


def test_data_root_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("NEUROBRIDGE_DATA", str(tmp_path / "env"))
    assert nb.datasets.data_root(tmp_path / "arg") == tmp_path / "arg"
    assert nb.datasets.data_root() == tmp_path / "env"
    monkeypatch.delenv("NEUROBRIDGE_DATA")
    import platformdirs

    monkeypatch.setattr(platformdirs, "user_cache_dir", lambda appname: str(tmp_path / "cache" / appname))
    assert nb.datasets.data_root() == tmp_path / "cache" / "neurobridge" / "datasets"
    assert nb.datasets.dataset_dir(NAME) == tmp_path / "cache" / "neurobridge" / "datasets" / NAME


def test_dataset_folder_itself_accepted(mirror):
    assert nb.datasets.dataset_dir(NAME, mirror) == mirror
    assert nb.datasets.dataset_dir(NAME, mirror.parent) == mirror
    paths = nb.datasets.fetch(NAME, data_dir=mirror, files=[SMALL], download=False)
    assert paths[SMALL] == mirror / SMALL


def test_offline_error_names_files_urls_and_folder(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        nb.datasets.load("kriegeskorte92", data_dir=tmp_path, download=False)
    msg = str(info.value)
    folder = tmp_path / "kriegeskorte92"
    assert str(folder) in msg
    for f in CARDS["kriegeskorte92"].files:
        assert f.name in msg and f.url in msg
    assert isinstance(info.value, FileNotFoundError)


def test_network_failure_becomes_offline_error(tmp_path, monkeypatch):
    import pooch

    def no_network(*args, **kwargs):
        raise ConnectionError("Name or service not known")

    monkeypatch.setattr(pooch, "retrieve", no_network)
    with pytest.raises(DatasetNotFoundError, match="download failed: ConnectionError") as info:
        nb.datasets.fetch(NAME, data_dir=tmp_path, files=[SMALL], progress=False)
    assert CARDS[NAME].files[2].url in str(info.value)
    assert not (tmp_path / NAME).exists()  # no empty folder left behind


def test_corrupted_local_file_is_refused(mirror, tmp_path):
    folder = tmp_path / NAME
    folder.mkdir()
    for f in CARDS[NAME].files:
        shutil.copy(mirror / f.name, folder / f.name)
    data = bytearray((folder / "test-ave.fif.gz").read_bytes())
    data[1000] ^= 0xFF
    (folder / "test-ave.fif.gz").write_bytes(bytes(data))
    statuses = {s.name: s.status for s in nb.datasets.verify(NAME, data_dir=tmp_path)}
    assert statuses == {"test-ave.fif.gz": "bad checksum", "test-cov.fif": "ok", SMALL: "ok"}
    with pytest.raises(ChecksumError, match="test-ave.fif.gz") as info:
        nb.datasets.load(NAME, data_dir=tmp_path)
    assert CARDS[NAME].files[0].sha256 in str(info.value)
    assert "Delete it" in str(info.value)
    # the corrupted file is left in place (never silently replaced or used)
    assert (folder / "test-ave.fif.gz").read_bytes() == bytes(data)


def test_download_with_pooch_into_cache(mirror, http_folder, tmp_path, monkeypatch):
    served, base = http_folder
    for f in CARDS[NAME].files:
        shutil.copy(mirror / f.name, served / f.name)
    _local_card(monkeypatch, base)
    monkeypatch.setenv("NEUROBRIDGE_DATA", str(tmp_path / "cache"))
    paths = nb.datasets.fetch(NAME, progress=False)
    assert set(paths) == {f.name for f in CARDS[NAME].files}
    assert all(p.parent == tmp_path / "cache" / NAME for p in paths.values())
    assert [s.status for s in nb.datasets.verify(NAME)] == ["ok"] * 3
    ds = nb.datasets.load(NAME, progress=False, picks="eeg")
    assert ds.brain["meeg"].sizes == {"stimulus": 4, "channel": 60, "time": 421}
    assert set(ds.brain["meeg"]["ch_type"].values.tolist()) == {"eeg"}


def test_download_with_wrong_checksum_is_rejected(mirror, http_folder, tmp_path, monkeypatch):
    served, base = http_folder
    (served / SMALL).write_bytes((mirror / SMALL).read_bytes()[:-1] + b"\x00")
    _local_card(monkeypatch, base)
    with pytest.raises(ChecksumError, match="does not match"):
        nb.datasets.fetch(NAME, data_dir=tmp_path, files=[SMALL], progress=False)
    assert not (tmp_path / NAME / SMALL).exists()


def test_unknown_file_name(tmp_path):
    with pytest.raises(KeyError, match="unknown file"):
        nb.datasets.fetch(NAME, data_dir=tmp_path, files=["nope.fif"])


def test_sha256_memo_sees_changes(tmp_path):
    p = tmp_path / "x.bin"
    p.write_bytes(b"abc")
    first = _fetch.sha256sum(p)
    assert first == hashlib.sha256(b"abc").hexdigest()
    p.write_bytes(b"abcd")
    assert _fetch.sha256sum(p) == hashlib.sha256(b"abcd").hexdigest() != first


@pytest.mark.network
@pytest.mark.parametrize("name", sorted(n for n, c in CARDS.items() if c.files))
def test_real_urls_download_and_verify(name, tmp_path):
    paths = nb.datasets.fetch(name, data_dir=tmp_path, progress=False)
    assert set(paths) == {f.name for f in CARDS[name].files}
    assert all(s.status == "ok" for s in nb.datasets.verify(name, data_dir=tmp_path))
