"""``neurobridge datasets list | info | fetch | verify``."""

from __future__ import annotations

import json
import shutil

from neurobridge.cli import main
from neurobridge.datasets import CARDS


def test_list(capsys):
    assert main(["datasets", "list"]) == 0
    out = capsys.readouterr().out
    for name in CARDS:
        assert name in out


def test_info_text_and_json(capsys):
    assert main(["datasets", "info", "kriegeskorte92"]) == 0
    out = capsys.readouterr().out
    assert "Kriegeskorte" in out and "92_brainRDMs.mat" in out and CARDS["kriegeskorte92"].files[1].sha256 in out
    assert main(["datasets", "info", "mne_sample_evoked", "--json"]) == 0
    card = json.loads(capsys.readouterr().out)
    assert card["name"] == "mne_sample_evoked" and len(card["files"]) == 3


def test_unknown_dataset_is_an_error(capsys):
    assert main(["datasets", "info", "nope"]) == 1
    assert "unknown dataset" in capsys.readouterr().err


def test_verify_ok_missing_and_corrupt(data_dir, tmp_path, capsys):
    assert main(["datasets", "verify", "kriegeskorte92", "--data-dir", str(data_dir)]) == 0
    assert capsys.readouterr().out.count("ok") == 4
    assert main(["datasets", "verify", "mne_sample_evoked", "--data-dir", str(tmp_path)]) == 1
    assert "missing" in capsys.readouterr().out
    folder = tmp_path / "mne_sample_evoked"
    folder.mkdir()
    for f in CARDS["mne_sample_evoked"].files:
        shutil.copy(data_dir / "mne_sample_evoked" / f.name, folder / f.name)
    with open(folder / "test-eve.fif", "ab") as fh:
        fh.write(b"x")
    assert main(["datasets", "verify", "mne_sample_evoked", "--data-dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "bad checksum" in out and "expected" in out


def test_fetch_present_and_offline(data_dir, tmp_path, capsys, monkeypatch):
    assert main(["datasets", "fetch", "kriegeskorte92", "--data-dir", str(data_dir), "--no-progress"]) == 0
    assert capsys.readouterr().out.count("ok ") == 4
    import pooch

    def no_network(*a, **k):
        raise ConnectionError("offline")

    monkeypatch.setattr(pooch, "retrieve", no_network)
    assert main(["datasets", "fetch", "kriegeskorte92", "--data-dir", str(tmp_path), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "missing" in err and str(tmp_path / "kriegeskorte92") in err


def test_wrapper_datasets_verify_and_fetch(tmp_path, capsys, monkeypatch):
    assert main(["datasets", "verify", "kiloword", "--data-dir", str(tmp_path)]) == 1
    assert "missing" in capsys.readouterr().out
    import mne

    def boom(**kwargs):
        raise ConnectionError("offline")

    monkeypatch.setattr(mne.datasets.kiloword, "data_path", boom)
    assert main(["datasets", "fetch", "kiloword", "--data-dir", str(tmp_path), "--no-progress"]) == 1
    assert "mne.datasets.kiloword" in capsys.readouterr().err
