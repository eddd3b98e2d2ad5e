"""Streaming zarr writer with resume, and :func:`open_store`.

Store layout (``path.zarr``)::

    zarr.json                 root attrs: layers, model, pooling, batch_size, stats, compress, complete, fingerprint
                              (JSON: weights digest, preprocess, layers, settings; see _fingerprint.py), ...
    stimulus                  all stimulus ids, written when the store is created
    .neurobridge_progress.npz the commit record: number of committed rows, layer names, running statistics
                              (the ``stats`` node is built from them on read), int8 errors
    <layer>/activations       (stimulus, unit) or (stimulus, token|space, unit); float32, or int8 codes
    <layer>/scale             (block, unit) float32 int8 scales, one row per written batch (compress="int8")
    <layer>/token_mask        (stimulus, token) bool when a padded token dim is kept

Chunks along ``stimulus`` are exactly one batch, so writing a batch never touches the chunks of rows already
committed. A batch is committed by atomically replacing the progress file (write to a temporary file, then
``os.replace``) *after* its arrays are written: a process killed at any point leaves committed rows intact, and a
rerun rewrites the rows after the last commit. Readers trust only the committed rows.

A rerun resumes only when its fingerprint equals the store's (else a ValueError names what differs); a store
without one (written before fingerprints) resumes with a UserWarning when its recorded model name, pooling,
compression, stats flag and layers match. A commit record that cannot be read raises a ValueError naming the file;
deleting the record makes the next run rewrite every row.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
import xarray as xr

from ._fingerprint import differences
from ._stats import RunningStats

__all__ = ["ZarrSink", "open_store"]

logger = logging.getLogger("neurobridge")

_PROGRESS = ".neurobridge_progress.npz"
_MARK = "neurobridge_extract"


@contextlib.contextmanager
def _quiet():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have a Zarr V3 specification.*")
        warnings.filterwarnings("ignore", message=".*Consolidated metadata.*")
        warnings.filterwarnings("ignore", message=".*not recognized as a component of a Zarr hierarchy.*")
        warnings.filterwarnings("ignore", category=UserWarning, module="zarr")
        yield


_META_KEYS = ("committed", "names", "kinds", "tokens", "err")


def _damaged(path: Path, what: str, err: BaseException | str) -> ValueError:
    reason = f"{type(err).__name__}: {err}" if isinstance(err, BaseException) else err
    return ValueError(
        f"the {what} of the extraction store {path} cannot be read ({reason}); the store cannot say which rows "
        f"are complete. Delete the store folder {path} and extract again (or pass a new store= path), or delete "
        f"just {path / _PROGRESS} and rerun nb.extract.activations with the same store= and settings to rewrite "
        "every row into it")


def _read_progress(path: Path) -> dict | None:
    """The commit record, or ``None`` when there is none yet; ValueError naming the file when it is damaged."""
    f = path / _PROGRESS
    if not f.exists():
        return None
    what = f"commit record {f}"
    try:
        with np.load(f, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
        meta = json.loads(str(data.pop("meta")))
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as err:
        raise _damaged(path, what, err) from err
    if not isinstance(meta, dict) or any(k not in meta for k in _META_KEYS):
        raise _damaged(path, what, f"it lacks the fields {[k for k in _META_KEYS if k not in meta]}"
                       if isinstance(meta, dict) else "its metadata is not a JSON object")
    return {"meta": meta, "arrays": data}


def _write_progress(path: Path, meta: dict, arrays: dict[str, np.ndarray]) -> None:
    tmp = path / (_PROGRESS + ".tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, meta=np.asarray(json.dumps(meta)), **arrays)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path / _PROGRESS)


def _ids_equal(a: np.ndarray, b: np.ndarray) -> bool:
    return len(a) == len(b) and bool(np.array_equal(np.asarray(a).astype(str), np.asarray(b).astype(str)))


class ZarrSink:
    """Writes each batch to a zarr store as it is computed and commits it atomically."""

    def __init__(self, path, *, ids: np.ndarray, names: list[str], attrs: dict, batch_size: int, top_k: int,
                 stats: bool, fingerprint: dict):
        import zarr

        self._zarr = zarr
        self.path = Path(path)
        self.ids = np.asarray(ids)
        self.n = len(self.ids)
        self.attrs = dict(attrs)
        self.batch_size = int(batch_size)
        self.top_k = int(top_k)
        self.stats = bool(stats)
        self.names: list[str] | None = None
        self.committed = 0
        self.running: dict[str, RunningStats] | None = {} if stats else None
        self.err: dict[str, list[float]] = {}
        self.kinds: dict[str, str] = {}
        self.tokens: dict[str, int] = {}
        self.arrays: dict[str, dict] = {}
        self.complete = False
        self.fingerprint = fingerprint
        if self.path.exists():
            self._resume(names)
        else:
            self._create()

    # -- creation and resume --------------------------------------------------------------------------------
    def _create(self) -> None:
        root = xr.Dataset(coords={"stimulus": self.ids})
        root.attrs = {_MARK: 1, "complete": 0, "batch_size": self.batch_size, "stats": int(self.stats),
                      "n_stimuli": self.n, "fingerprint": json.dumps(self.fingerprint, sort_keys=True),
                      **{k: v for k, v in self.attrs.items()}}
        with _quiet():
            root.to_zarr(self.path, mode="w", consolidated=False)

    def _resume(self, names: list[str]) -> None:
        zarr = self._zarr
        if not (self.path / "zarr.json").exists() and not (self.path / ".zgroup").exists():
            raise FileExistsError(f"{self.path} exists but is not a zarr store; pass a new path to store=")
        group = zarr.open_group(str(self.path), mode="r")
        sattrs = dict(group.attrs)
        if int(sattrs.get(_MARK, 0)) != 1:
            raise FileExistsError(f"{self.path} is a zarr store but not an extraction store written by "
                                  "nb.extract.activations; pass a new path to store=")
        with _quiet():
            stored_ids = np.asarray(xr.open_zarr(self.path, consolidated=False)["stimulus"].values)
        if not _ids_equal(stored_ids, self.ids):
            raise ValueError(f"the store {self.path} was written for {len(stored_ids)} other stimuli (first ids "
                             f"{stored_ids[:3].tolist()}) than the {self.n} given (first {self.ids[:3].tolist()}); "
                             "resume with the same stimuli in the same order, or pass a new store path")
        legacy = "fingerprint" not in sattrs
        if legacy:
            self._check_legacy(sattrs)
        else:
            try:
                stored = json.loads(str(sattrs["fingerprint"]))
                if not isinstance(stored, dict):
                    raise ValueError("not a JSON object")
            except ValueError as err:
                raise _damaged(self.path, f"fingerprint (root attribute 'fingerprint' in {self.path / 'zarr.json'})",
                               err) from err
            diffs = differences(stored, self.fingerprint)
            if diffs:
                raise ValueError(
                    f"the store {self.path} was written by another extraction than this call asks for: "
                    f"{'; '.join(diffs)}. Resuming would mix rows of two extractions. Resume with the same model "
                    f"(weights), preprocessing, layers and settings; or pass a new store= path; or delete {self.path} "
                    "to extract again")
        stored_bs = int(sattrs["batch_size"])
        if stored_bs != self.batch_size:
            logger.info("resuming %s with its batch size %d (asked for %d)", self.path, stored_bs, self.batch_size)
            self.batch_size = stored_bs
        self.complete = bool(int(sattrs.get("complete", 0)))
        prog = _read_progress(self.path)
        if legacy:
            self._check_legacy_layers(prog, names)
            warnings.warn(
                f"the store {self.path} was written by an older neurobridge without a fingerprint: its model name, "
                "pooling, compression, statistics and layers match this call, but its weights and preprocessing "
                f"cannot be checked. If they may differ, delete {self.path} (or pass a new store= path) and extract "
                "again", UserWarning, stacklevel=4)
        if prog is None:  # nothing committed yet (or the record was deleted): start again from the first row
            if self.complete:
                self._zarr.open_group(str(self.path), mode="r+").attrs["complete"] = 0
                self.complete = False
            return
        meta, arrays = prog["meta"], prog["arrays"]
        self.committed = int(meta["committed"])
        stored_names = list(meta["names"])
        # with a fingerprint the requested layers are the same; the store may hold fewer (layers that did not run)
        if not set(stored_names) <= set(names):
            raise self._layers_error(stored_names, names)
        self.names = stored_names
        self.kinds = dict(meta["kinds"])
        self.tokens = {k: int(v) for k, v in meta["tokens"].items()}
        self.err = {k: list(v) for k, v in meta["err"].items()}
        if self.stats:
            try:
                # stores written before the sparsity statistics lack their fields: resumed without them
                self.running = {
                    name: RunningStats.from_state(
                        {f: arrays[f"{i}/{f}"] for f in RunningStats.FIELDS if f"{i}/{f}" in arrays}, self.top_k)
                    for i, name in enumerate(self.names)
                }
            except KeyError as err:
                raise _damaged(self.path, f"commit record {self.path / _PROGRESS}",
                               f"no running statistics {err} for the layers {self.names}") from err
        logger.info("resuming extraction into %s at stimulus %d of %d", self.path, self.committed, self.n)

    def _layers_error(self, stored_names: list[str], names: list[str]) -> ValueError:
        return ValueError(f"layers: the store {self.path} holds {stored_names}, this call asks {list(names)}; "
                          f"pass layers={stored_names} to resume, or a new store= path (or delete {self.path}) to "
                          "extract other layers")

    def _check_legacy_layers(self, prog: dict | None, names: list[str]) -> None:
        """Without a fingerprint the layers asked are unknown: the layers held must be exactly those asked now."""
        if prog is not None and list(prog["meta"]["names"]) != list(names):
            raise self._layers_error(list(prog["meta"]["names"]), names)

    def _check_legacy(self, sattrs: dict) -> None:
        """A store written before fingerprints: check what its attributes hold and warn about the rest."""
        for key in ("model", "pooling", "compress"):
            if str(sattrs.get(key, "")) != str(self.attrs.get(key, "")):
                raise ValueError(f"the store {self.path} was written with {key}={sattrs.get(key)!r} but this run uses "
                                 f"{key}={self.attrs.get(key)!r}; use the same settings to resume, or a new store path")
        if bool(int(sattrs.get("stats", 0))) != self.stats:
            raise ValueError(f"the store {self.path} was written with stats={bool(int(sattrs.get('stats', 0)))}; "
                             "resume with the same stats= setting, or a new store path")

    def start_row(self) -> int:
        return self.n if self.complete else self.committed

    # -- writing --------------------------------------------------------------------------------------------
    def _array(self, name: str, var: str):
        handles = self.arrays.setdefault(name, {})
        if var not in handles:
            handles[var] = self._zarr.open_array(str(self.path / name / var), mode="r+")
        return handles[var]

    def _create_layer(self, name: str, out) -> None:
        values = out.values
        int8 = out.codes is not None
        group = self._zarr.open_group(str(self.path), mode="a").create_group(name, overwrite=True)
        if values.ndim == 2:
            dims: tuple[str, ...] = ("stimulus", "unit")
        else:
            dims = ("stimulus", "space" if out.kind == "space" else "token", "unit")
        shape = (self.n, *values.shape[1:])
        chunks = (self.batch_size, *values.shape[1:])
        handles = self.arrays[name] = {}
        with _quiet():
            handles["activations"] = group.create_array(
                "activations", shape=shape, chunks=chunks, dtype="int8" if int8 else "float32", fill_value=0,
                dimension_names=dims)
            if values.ndim == 3 and out.token_mask is not None:
                handles["token_mask"] = group.create_array(
                    "token_mask", shape=shape[:2], chunks=chunks[:2], dtype="bool", fill_value=False,
                    dimension_names=dims[:2])
            if int8:
                n_blocks = -(-self.n // self.batch_size)
                handles["scale"] = group.create_array(
                    "scale", shape=(n_blocks, shape[-1]), chunks=(1, shape[-1]), dtype="float32", fill_value=1.0,
                    dimension_names=("block", "unit"))
        group.attrs.update({"layer": name, "model": str(self.attrs.get("model", "")), "kind": out.kind,
                            "int8": int(int8)})
        self.kinds[name] = out.kind
        if values.ndim == 3:
            self.tokens[name] = values.shape[1]

    def _grow_tokens(self, name: str, n_tokens: int) -> None:
        """Widen the token dim of a layer (text with pooling='none'/'word': later batches may be longer).

        Only array metadata changes (atomically); rows already written keep their chunks and read the new
        positions as the fill value 0 / False."""
        for var in ("activations", "token_mask"):
            arr = self._array(name, var)
            arr.resize((arr.shape[0], n_tokens, *arr.shape[2:]))
        self.tokens[name] = n_tokens

    def write(self, row0: int, outputs: dict, running) -> None:
        if self.names is None:
            self.names = list(outputs)
        if running is not None:
            self.running = running
        for name in self.names:
            out = outputs[name]
            if name not in self.kinds:
                self._create_layer(name, out)
            values = out.codes if out.codes is not None else out.values
            b = values.shape[0]
            rows = slice(row0, row0 + b)
            if values.ndim == 3:
                t = values.shape[1]
                if t > self.tokens[name]:
                    if out.kind != "token":
                        raise ValueError(f"layer {name!r}: spatial size changed between batches "
                                         f"({self.tokens[name]} -> {t}); use pooling='mean'")
                    self._grow_tokens(name, t)
                full_t = self.tokens[name]
                if t < full_t:
                    pad = np.zeros((b, full_t, values.shape[2]), dtype=values.dtype)
                    pad[:, :t] = values
                    values = pad
                if out.token_mask is not None:
                    m = np.zeros((b, full_t), dtype=bool)
                    m[:, :t] = out.token_mask
                    self._array(name, "token_mask")[rows] = m
            self._array(name, "activations")[rows] = values
            if out.codes is not None:
                self._array(name, "scale")[row0 // self.batch_size] = out.scale
            e = self.err.setdefault(name, [0.0, 0.0])
            e[0] += out.sq_err
            e[1] += out.sq_norm
        self.committed = row0 + len(next(iter(outputs.values())).values)
        self._commit()

    def _commit(self) -> None:
        meta = {"committed": self.committed, "names": self.names, "kinds": self.kinds, "tokens": self.tokens,
                "err": self.err, "n": self.n}
        arrays = {}
        if self.running:
            for i, name in enumerate(self.names):
                for f, v in self.running[name].state().items():
                    arrays[f"{i}/{f}"] = v
        _write_progress(self.path, meta, arrays)

    # -- completion -----------------------------------------------------------------------------------------
    def finish(self) -> xr.DataTree:
        zarr = self._zarr
        if not self.complete:
            if self.names is None:
                raise RuntimeError(f"nothing was written to {self.path}")
            for name in self.names:
                e = self.err.get(name)
                if e and e[1] > 0:
                    g = zarr.open_group(str(self.path / name), mode="r+")
                    g.attrs["int8_rel_error"] = float(np.sqrt(e[0] / e[1]))
            root = zarr.open_group(str(self.path), mode="r+")
            root.attrs.update({"layers": list(self.names), "complete": 1})
            self.complete = True
        return open_store(self.path)


def _dequantize(ds: xr.Dataset, batch_size: int) -> xr.Dataset:
    """``codes * scale[row // batch_size]``; the stimulus chunks are whole batches, so chunk i uses scale row i."""
    codes = ds["activations"]
    scale = np.asarray(ds["scale"].values, dtype=np.float32)
    data = codes.data
    if hasattr(data, "map_blocks") and all(c == batch_size for c in data.chunks[0][:-1]):
        shape = (-1,) + (1,) * (codes.ndim - 2) + (scale.shape[1],)

        def block(c, block_id=None):
            return c.astype(np.float32) * scale[block_id[0]].reshape(shape[1:])[None]

        values = data.map_blocks(block, dtype=np.float32)
    else:
        rows = np.arange(codes.sizes["stimulus"]) // batch_size
        s = scale[rows].reshape(len(rows), *([1] * (codes.ndim - 2)), scale.shape[1])
        values = np.asarray(data, dtype=np.float32) * s
    out = ds.drop_vars(["scale", "activations"])
    out = out.drop_dims("block", errors="ignore")
    out["activations"] = (codes.dims, values)
    return out


def open_store(path: str | os.PathLike, *, chunks: dict | None = None) -> xr.DataTree:
    """Read an extraction store written by :func:`activations` with ``store=``, lazily (dask).

    Only committed rows are returned (a store from an interrupted run holds a prefix of the stimuli), int8 codes
    are dequantised, and the ``stats`` node holds the statistics of the committed rows.

    Parameters
    ----------
    path : path-like
        The ``.zarr`` folder.
    chunks : dict, optional
        Dask chunks (default: the store's, one batch per chunk).

    Returns
    -------
    xr.DataTree
        The layout of :func:`activations`; root attrs add ``complete`` (0/1) and ``n_committed``.

    Examples
    --------
    >>> import torch, tempfile, neurobridge as nb
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 4))
    >>> p = tempfile.mkdtemp() + "/acts.zarr"
    >>> _ = nb.extract.activations(net, torch.randn(6, 3), store=p, batch_size=4, progress=False)
    >>> nb.extract.open_store(p)["0"]["activations"].shape
    (6, 4)
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no extraction store at {path}; extract with nb.extract.activations(..., store=path)")
    with _quiet():
        tree = xr.open_datatree(path, engine="zarr", chunks={} if chunks is None else chunks, consolidated=False)
    attrs = dict(tree.attrs)
    if int(attrs.get(_MARK, 0)) != 1:
        raise ValueError(f"{path} is not an extraction store written by nb.extract.activations")
    prog = _read_progress(path)
    committed = int(prog["meta"]["committed"]) if prog else 0
    names = list(prog["meta"]["names"]) if prog else []
    batch_size = int(attrs["batch_size"])
    ids = np.asarray(tree["stimulus"].values) if "stimulus" in tree.coords else None
    root_attrs = {"layers": names, "model": attrs.get("model", ""), "pooling": attrs.get("pooling", ""),
                  "complete": int(attrs.get("complete", 0)), "n_committed": committed}
    for key in ("compress", "project_seed"):
        if key in attrs:
            root_attrs[key] = attrs[key]
    nodes: dict[str, xr.Dataset] = {"/": xr.Dataset(attrs=root_attrs)}
    for name in names:
        ds = tree[name].to_dataset(inherit=True).isel(stimulus=slice(0, committed))
        if int(ds.attrs.get("int8", 0)):
            ds = _dequantize(ds, batch_size)
        for dim in ("unit", "token", "space"):
            if dim in ds.dims and dim not in ds.coords:
                ds = ds.assign_coords({dim: np.arange(ds.sizes[dim])})
        layer_attrs = {k: v for k, v in ds.attrs.items() if k not in ("int8", "kind")}
        ds.attrs = {**{k: root_attrs[k] for k in ("model", "pooling")}, **layer_attrs, "layer": name}
        if "token_mask" in ds:
            ds["token_mask"] = ds["token_mask"].astype(bool)
        ds["activations"].attrs = {"modality": "activations", "layer": name, "model": root_attrs["model"]}
        nodes[name] = ds
    if int(attrs.get("stats", 0)) and names and prog is not None and committed:
        arrays = prog["arrays"]
        for i, name in enumerate(names):
            state = {f: arrays[f"{i}/{f}"] for f in RunningStats.FIELDS if f"{i}/{f}" in arrays}
            rs = RunningStats.from_state(state, 0)
            nodes[f"stats/{name}"] = rs.to_dataset(ids, layer=name, model=str(root_attrs["model"]))
    return xr.DataTree.from_dict(nodes)

