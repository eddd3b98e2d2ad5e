"""Dataset cards, the registry and the checksums of the mirrored files."""

from __future__ import annotations

import hashlib

import pytest

import neurobridge as nb
from neurobridge.datasets import CARDS, DatasetCard


def test_list_and_info():
    names = nb.datasets.list()
    assert names == sorted(CARDS)
    assert {"kriegeskorte92", "mne_sample_evoked"} <= set(names)
    for name in names:
        card = nb.datasets.info(name)
        assert isinstance(card, DatasetCard) and card.name == name
        for field in ("title", "description", "citation", "license", "modality", "stimulus_type", "loader"):
            assert getattr(card, field), f"{name}: empty {field}"
        assert card.files or card.fetcher, f"{name}: neither files nor an external fetcher"
        for f in card.files:
            assert f.url.startswith("https://"), f.url
        d = card.to_dict()
        assert d["name"] == name and len(d["files"]) == len(card.files)


def test_unknown_name_lists_known():
    with pytest.raises(KeyError, match="kriegeskorte92"):
        nb.datasets.info("no_such_dataset")
    with pytest.raises(KeyError, match="unknown dataset"):
        nb.datasets.load("no_such_dataset")


def test_card_urls_point_at_public_repositories():
    k = nb.datasets.info("kriegeskorte92")
    assert all("github" in f.url and "rsagroup/rsatoolbox" in f.url and "demos/92imageData/" in f.url for f in k.files)
    m = nb.datasets.info("mne_sample_evoked")
    assert all("mne-tools/mne-python" in f.url and "mne/io/tests/data/" in f.url for f in m.files)


def _sha256sums(folder):
    out = {}
    for line in (folder / "SHA256SUMS").read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            out[name.strip().lstrip("*")] = digest
    return out


@pytest.mark.parametrize("name", sorted(n for n, c in CARDS.items() if c.files))
def test_card_files_verify_against_mirror(name, data_dir):
    folder = data_dir / name
    if not folder.is_dir():
        pytest.skip(f"{name} is not mirrored in {data_dir}")
    card = nb.datasets.info(name)
    sums = _sha256sums(folder)
    for f in card.files:
        assert f.sha256 == sums[f.name], f"{name}/{f.name}: card checksum differs from the mirror's SHA256SUMS"
        data = (folder / f.name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == f.sha256
        if f.size is not None:
            assert len(data) == f.size
    statuses = nb.datasets.verify(name, data_dir=data_dir)
    assert [s.status for s in statuses] == ["ok"] * len(card.files)


def test_unknown_loader_option_is_named(data_dir):
    with pytest.raises(TypeError, match="unknown option.*'pics'.*picks"):
        nb.datasets.load("mne_sample_evoked", data_dir=data_dir, pics="eeg")
