"""Shared fixtures: the real-data mirror and offline settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

_DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _data_root() -> Path | None:
    root = Path(os.environ.get("NEUROBRIDGE_DATA", _DEFAULT_DATA))
    return root if root.is_dir() else None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """``$NEUROBRIDGE_DATA`` (default ``../shared/data``); tests using it skip when it is absent."""
    root = _data_root()
    if root is None:
        pytest.skip("real-data mirror not found: set NEUROBRIDGE_DATA to ../shared/data")
    return root


_REPORTED = ("torch", "numpy", "scipy", "xarray", "zarr", "scikit-learn", "mne", "nilearn", "transformers",
             "kernels", "datasets", "rsatoolbox", "himalaya", "dask", "triton")


def pytest_report_header(config):
    """The versions that matter, at the top of every run: a red CI run after upstream releases shows them."""
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for name in _REPORTED:
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            found.append(f"{name} (absent)")
    return "neurobridge deps: " + ", ".join(found)


def pytest_collection_modifyitems(config, items):
    """Tests marked ``network`` need real downloads: run them only with NEUROBRIDGE_NETWORK=1."""
    if os.environ.get("NEUROBRIDGE_NETWORK") == "1":
        return
    skip = pytest.mark.skip(reason="needs network downloads; set NEUROBRIDGE_NETWORK=1 to run")
    for item in items:
        if "network" in item.keywords:
            item.add_marker(skip)
