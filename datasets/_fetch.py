"""Finding, verifying and downloading dataset files.

Files live in ``<root>/<dataset>/<file>``, where ``<root>`` is the ``data_dir=`` argument, else
``$NEUROBRIDGE_DATA``, else the user cache (``platformdirs.user_cache_dir("neurobridge")/datasets``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from neurobridge.core import progress_enabled

from ._cards import DatasetCard, DatasetFile, get_card

__all__ = [
    "DatasetNotFoundError", "ChecksumError", "FileStatus", "data_root", "dataset_dir", "fetch", "verify",
    "sha256sum",
]

logger = logging.getLogger("neurobridge")

ENV_VAR = "NEUROBRIDGE_DATA"


class DatasetNotFoundError(FileNotFoundError):
    """Files of a dataset are missing and could not be downloaded."""


class ChecksumError(ValueError):
    """A dataset file does not have the expected SHA-256 digest."""


class FileStatus(NamedTuple):
    """Result of checking one file (see :func:`verify`)."""

    name: str
    """File name."""
    path: Path
    """Where the file is (or would be)."""
    status: str
    """``"ok"``, ``"missing"``, ``"bad checksum"`` or ``"unverified"`` (no reference checksum)."""
    expected: str | None
    """Expected SHA-256."""
    found: str | None
    """SHA-256 of the file on disk, ``None`` when missing."""


def data_root(data_dir: str | os.PathLike | None = None) -> Path:
    """The folder that holds one sub-folder per dataset.

    ``data_dir`` if given, else ``$NEUROBRIDGE_DATA``, else the user cache.

    Examples
    --------
    >>> data_root("/tmp/nbdata").as_posix()
    '/tmp/nbdata'
    """
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("neurobridge")) / "datasets"


def dataset_dir(name: str, data_dir: str | os.PathLike | None = None) -> Path:
    """The folder of dataset ``name``: ``<root>/<name>``.

    If ``data_dir`` is itself a dataset folder (it holds the dataset's files but no ``<name>`` sub-folder),
    it is used as is.

    Examples
    --------
    >>> dataset_dir("kriegeskorte92", "/tmp/nbdata").as_posix()
    '/tmp/nbdata/kriegeskorte92'
    """
    root = data_root(data_dir)
    sub = root / name
    if data_dir is not None and not sub.is_dir() and root.is_dir():
        card = get_card(name)
        if card.files and any((root / f.name).is_file() for f in card.files):
            return root
    return sub


_HASH_CACHE: dict[tuple[str, int, int], str] = {}


def sha256sum(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of a file, by ``pooch.file_hash`` (memoised on path, size and modification time).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x"; _ = p.write_bytes(b"abc")
    >>> sha256sum(p)[:16]
    'ba7816bf8f01cfea'
    """
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _HASH_CACHE:
        import pooch

        _HASH_CACHE[key] = pooch.file_hash(str(path), alg="sha256")
    return _HASH_CACHE[key]


def _status(folder: Path, f: DatasetFile) -> FileStatus:
    path = folder / f.name
    if not path.is_file():
        return FileStatus(f.name, path, "missing", f.sha256, None)
    found = sha256sum(path)
    if f.sha256 is None:
        return FileStatus(f.name, path, "unverified", None, found)
    return FileStatus(f.name, path, "ok" if found == f.sha256.lower() else "bad checksum", f.sha256, found)


def _select(card: DatasetCard, files: Sequence[str] | None) -> list[DatasetFile]:
    if files is None:
        return list(card.files)
    known = {f.name: f for f in card.files}
    unknown = [n for n in files if n not in known]
    if unknown:
        raise KeyError(f"{card.name}: unknown file(s) {unknown}; the card lists {sorted(known)}")
    return [known[n] for n in files]


def verify(name: str, *, data_dir: str | os.PathLike | None = None, files: Sequence[str] | None = None
           ) -> list[FileStatus]:
    """Check the files of a dataset against the checksums on its card, without downloading.

    Parameters
    ----------
    name : str
        Dataset name (see :func:`neurobridge.datasets.list`).
    data_dir : path, optional
        Root data folder (default ``$NEUROBRIDGE_DATA`` or the user cache).
    files : sequence of str, optional
        Only these files (default: all files on the card).

    Returns
    -------
    list of FileStatus
        One entry per file with ``status`` ``"ok"``, ``"missing"``, ``"bad checksum"`` or ``"unverified"``.

    Examples
    --------
    >>> import neurobridge as nb
    >>> [s.status for s in nb.datasets.verify("kriegeskorte92", data_dir="/nonexistent")][:1]
    ['missing']
    """
    card = get_card(name)
    folder = dataset_dir(name, data_dir)
    return [_status(folder, f) for f in _select(card, files)]


def _bad_checksum_error(card: DatasetCard, st: FileStatus) -> ChecksumError:
    return ChecksumError(
        f"{card.name}: file {st.path} has SHA-256 {st.found} but the card expects {st.expected}; the file is "
        f"corrupted or a different version and will not be used. Delete it and run "
        f"`neurobridge datasets fetch {card.name}` (or nb.datasets.fetch({card.name!r})) to download it again"
    )


def _download(card: DatasetCard, f: DatasetFile, folder: Path, progress: bool | None) -> Path:
    import pooch

    folder.mkdir(parents=True, exist_ok=True)
    known = f"sha256:{f.sha256}" if f.sha256 else None
    logger.info("downloading %s from %s to %s", f.name, f.url, folder)
    path = pooch.retrieve(f.url, known_hash=known, fname=f.name, path=folder, progressbar=progress_enabled(progress))
    if f.sha256 is None:
        logger.warning("%s: %s has no reference checksum on the card; downloaded file has SHA-256 %s",
                       card.name, f.name, sha256sum(path))
    return Path(path)


def fetch(name: str, *, data_dir: str | os.PathLike | None = None, files: Sequence[str] | None = None,
          download: bool = True, progress: bool | None = None) -> dict[str, Path]:
    """Make sure the files of a dataset are present and intact; download missing ones.

    Files are looked up in ``<root>/<name>/`` (see :func:`data_root`). Present files are checked against
    the card's SHA-256; a mismatch raises :class:`ChecksumError` and the file is never used. Missing files
    are downloaded with pooch (checksum verified, progress bar unless ``progress=False``).

    Parameters
    ----------
    name : str
        Dataset name.
    data_dir : path, optional
        Root data folder (the one that contains ``<name>/``); default ``$NEUROBRIDGE_DATA`` or the user cache.
    files : sequence of str, optional
        Only these files (default all).
    download : bool
        If False, never download: missing files raise :class:`DatasetNotFoundError` at once.
    progress : bool, optional
        Download progress bar: ``True``/``False``; ``None`` (default) shows it when someone watches (a terminal
        or Jupyter, ``TQDM_DISABLE`` unset; :func:`neurobridge.core.progress_enabled`).

    Returns
    -------
    dict
        File name -> path.

    Raises
    ------
    DatasetNotFoundError
        (a ``FileNotFoundError``) when files are missing and cannot be downloaded (offline); the message
        names the files, their URLs and the folder to put them in.
    ChecksumError
        (a ``ValueError``) when a file's checksum does not match.

    Examples
    --------
    >>> import neurobridge as nb
    >>> paths = nb.datasets.fetch("kriegeskorte92")  # doctest: +SKIP
    >>> sorted(paths)[:1]  # doctest: +SKIP
    ['92_behavRDMs.mat']
    """
    card = get_card(name)
    if not card.files:
        raise ValueError(f"{name}: files are fetched by {card.fetcher or 'its loader'}, not by neurobridge's "
                         f"fetcher; use nb.datasets.load({name!r}) (it calls {card.fetcher or 'the loader'})")
    folder = dataset_dir(name, data_dir)
    out: dict[str, Path] = {}
    missing: list[DatasetFile] = []
    for f in _select(card, files):
        st = _status(folder, f)
        if st.status == "bad checksum":
            raise _bad_checksum_error(card, st)
        if st.status == "missing":
            missing.append(f)
        else:
            out[f.name] = st.path
    if not missing:
        return out
    reason = "downloads disabled (download=False)"
    failed: list[DatasetFile] = []
    existed = folder.exists()
    if download:
        for i, f in enumerate(missing):
            try:
                out[f.name] = _download(card, f, folder, progress)
            except ValueError as err:  # pooch: hash mismatch after download
                if "hash" in str(err).lower():
                    raise ChecksumError(f"{card.name}: the file downloaded from {f.url} does not match the card's "
                                        f"SHA-256 {f.sha256} ({err}); it was not kept. The source may have "
                                        "changed: report it, or place a verified copy in "
                                        f"{folder}") from err
                raise
            except Exception as err:  # network errors of any flavour (requests, OSError, ...)
                reason = f"download failed: {type(err).__name__}: {err}"
                failed = missing[i:]
                break
    else:
        failed = missing
    if failed:
        if not existed and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()  # leave no empty folder behind after a failed download
        listing = "; ".join(f"{f.name} (from {f.url})" for f in failed)
        raise DatasetNotFoundError(
            f"{card.name}: {len(failed)} file(s) missing in {folder} and not downloaded ({reason}): {listing}. "
            f"Download them by hand into {folder}, or set data_dir=... / ${ENV_VAR} to a folder that contains "
            f"'{card.name}/' with these files"
        )
    return out
