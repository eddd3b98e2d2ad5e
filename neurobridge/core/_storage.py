"""Saving and loading containers to zarr (default) and netCDF with exact round trips.

A DataArray is stored as a one-variable Dataset plus a marker attribute, so ``load`` gives back the same
type; a DataTree is stored group by group. Attribute lists and numpy scalars are normalised so that values,
coords, attrs and dtypes come back as they went in.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ._checks import check_unique
from ._schemas import ATTR_TYPES, SchemaError

__all__ = ["save", "load", "StoreError"]

logger = logging.getLogger("neurobridge")

_TYPE_ATTR = "_neurobridge_type"
_NAME_ATTR = "_neurobridge_name"
_LIST_ATTR = "_neurobridge_list_attrs"
_DEFAULT_NAME = "__xarray_dataarray_variable__"
_FORMATS = {".zarr": "zarr", ".nc": "netcdf", ".nc4": "netcdf", ".netcdf": "netcdf", ".h5": "netcdf"}


@contextlib.contextmanager
def _quiet_zarr():
    """Silence zarr-v3 notices about fixed-width string dtypes and consolidated metadata (both round-trip)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have a Zarr V3 specification.*")
        warnings.filterwarnings("ignore", message=".*Consolidated metadata.*")
        yield


def _format(path: Path, fmt: str | None) -> str:
    if fmt is not None:
        if fmt not in ("zarr", "netcdf"):
            raise ValueError(f"format must be 'zarr' or 'netcdf', got {fmt!r}")
        return fmt
    return _FORMATS.get(path.suffix.lower(), "zarr")


def _encode_attrs(attrs: dict, where: str) -> dict:
    out, lists = {}, []
    for key, value in attrs.items():
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, bool):
            value = int(value)
        if isinstance(value, tuple | list | np.ndarray):
            value = [v.item() if isinstance(v, np.generic) else v for v in list(value)]
            if not all(isinstance(v, ATTR_TYPES) and not isinstance(v, bool) for v in value):
                raise SchemaError(f"{where}: attribute {key!r} holds {value!r}; attrs hold only str/int/float or lists "
                                  "of them, move structured values into coords")
            lists.append(key)
        elif value is None:
            continue
        elif not isinstance(value, ATTR_TYPES):
            raise SchemaError(f"{where}: attribute {key!r} has type {type(value).__name__}; attrs hold only "
                              "str/int/float or lists of them, convert it (e.g. str(value)) or move it into coords")
        out[key] = value
    if lists:
        out[_LIST_ATTR] = ",".join(lists)
    return out


def _decode_attrs(attrs: dict) -> dict:
    lists = set(filter(None, str(attrs.get(_LIST_ATTR, "")).split(",")))
    out = {}
    for key, value in attrs.items():
        if key in (_LIST_ATTR, _TYPE_ATTR, _NAME_ATTR):
            continue
        if isinstance(value, np.ndarray):
            value = value.tolist()
        elif isinstance(value, np.generic):
            value = value.item()
        if key in lists and not isinstance(value, list):
            value = [value]
        out[key] = value
    return out


def _prepare(ds: xr.Dataset, where: str, fmt: str = "netcdf") -> xr.Dataset:
    """Encode attrs and object arrays; for zarr, strings become variable-length so that appends may be longer."""
    ds = ds.copy(deep=False)
    ds.attrs = _encode_attrs(ds.attrs, where)
    for name, var in ds.variables.items():
        var.attrs = _encode_attrs(var.attrs, f"{where}/{name}")
        if var.dtype == object:
            sample = var.values.ravel()[:1]
            if len(sample) and not isinstance(sample[0], str):
                raise SchemaError(f"{where}: variable {name!r} holds Python objects of type {type(sample[0]).__name__}; "
                                  "store numbers or strings")
            ds[name] = var.astype(str)
    if fmt == "zarr":
        for name in list(ds.variables):
            if ds[name].dtype.kind == "U":
                ds[name] = ds[name].astype(object)
    for name in ds.variables:
        for key in ("chunks", "preferred_chunks", "compressors", "filters", "serializer", "compressor"):
            ds[name].encoding.pop(key, None)
    return ds


def _restore(ds: xr.Dataset) -> xr.Dataset:
    ds.attrs = _decode_attrs(ds.attrs) | {k: v for k, v in ds.attrs.items() if k in (_TYPE_ATTR, _NAME_ATTR)}
    for var in ds.variables.values():
        var.attrs = _decode_attrs(var.attrs)
    for name in list(ds.variables):
        if ds[name].dtype.kind in "OT":  # variable-length strings (zarr) back to numpy's fixed-width str
            ds[name] = ds[name].copy(data=_as_str(ds[name].values))
    return ds


def _to_dataset(obj: xr.DataArray) -> xr.Dataset:
    name = obj.name if obj.name is not None else _DEFAULT_NAME
    ds = obj.to_dataset(name=name, promote_attrs=False)
    ds[name].attrs = dict(obj.attrs)
    ds.attrs = {_TYPE_ATTR: "DataArray", _NAME_ATTR: str(name) if obj.name is not None else ""}
    return ds


class StoreError(OSError):
    """A path given to :func:`load` (or appended to) is not a readable neurobridge store: not a store, or corrupt."""


# what reading a damaged store raises (zarr's errors are ValueErrors, numcodecs' RuntimeErrors, HDF5's OSErrors);
# TypeError/AttributeError stay out: they are bugs, not damage
_READ_ERRORS = (OSError, ValueError, RuntimeError, KeyError, IndexError, EOFError)
_STORE_MARKERS = ("zarr.json", ".zgroup", ".zattrs", ".zmetadata")


def _check_is_store(path: Path, fmt: str) -> None:
    """Refuse, before zarr/netCDF4 see it, a path that cannot be a store written by :func:`save`."""
    if fmt == "zarr":
        if not path.is_dir():
            raise StoreError(f"{path} is not a neurobridge store: a zarr store is a folder, this is a file; pass the "
                             "folder nb.save wrote, or format='netcdf' if it is a netCDF file")
        if not any((path / m).is_file() for m in _STORE_MARKERS):
            what = "the folder is empty" if not any(path.iterdir()) else "the folder has no zarr metadata (zarr.json)"
            raise StoreError(f"{path} is not a neurobridge store ({what}); pass the folder nb.save wrote, or "
                             "re-create the store with nb.save(obj, path, overwrite=True)")
    elif path.is_dir():
        raise StoreError(f"{path} is a folder, not a netCDF file; pass format='zarr' if it is a zarr store")


def _unreadable(path: Path, err: Exception) -> StoreError:
    return StoreError(
        f"cannot read the store at {path}: {type(err).__name__}: {err}. The store is corrupt or incomplete (a damaged "
        "chunk or metadata file, an interrupted write or copy); re-create it by re-running the nb.save(...) that "
        "wrote it, with overwrite=True, or restore it from a backup")


def _as_str(x: np.ndarray) -> np.ndarray:
    """Fixed-width str of any string array (numpy's StringDType, object, bytes or str)."""
    return np.asarray(x).astype(object).astype(str)


def _values_equal(a: np.ndarray, b: np.ndarray) -> bool:
    if a.shape != b.shape:
        return False
    if np.issubdtype(a.dtype, np.floating) and np.issubdtype(b.dtype, np.floating):
        return bool(np.allclose(a, b, rtol=1e-9, atol=1e-12, equal_nan=True))
    if a.dtype.kind in "USOT" or b.dtype.kind in "USOT":
        return bool(np.array_equal(_as_str(a), _as_str(b)))
    return bool(np.array_equal(a, b))


def _differences(a: np.ndarray, b: np.ndarray, n: int = 5) -> str:
    """Where two equal-shape label arrays differ: the first positions and both values."""
    a, b = a.ravel(), b.ravel()
    if np.issubdtype(a.dtype, np.floating) and np.issubdtype(b.dtype, np.floating):
        diff = ~np.isclose(a, b, rtol=1e-9, atol=1e-12, equal_nan=True)
    else:
        diff = _as_str(a) != _as_str(b)
    pos = np.flatnonzero(diff)[:n]
    return (f"at positions {pos.tolist()} the store has {a[pos].tolist()} and the new data "
            f"{b[pos].tolist()} ({int(diff.sum())} of {a.size} differ)")


def _cast_like(name: str, new: xr.DataArray, old: xr.DataArray, path: Path, dim: str) -> xr.DataArray:
    """The new variable in the store's dtype, when that loses nothing; else a SchemaError."""
    if new.dtype == old.dtype:
        return new
    if new.dtype.kind in "USOT" and old.dtype.kind in "USOT":
        if old.dtype.kind in "OT":  # variable-length strings in the store: any length fits
            return new
        longest = max((len(str(v)) for v in new.values.ravel()), default=0)
        if longest <= old.dtype.itemsize // (4 if old.dtype.kind == "U" else 1):
            return new.astype(old.dtype)
        raise SchemaError(
            f"cannot append: {name!r} holds strings of up to {longest} characters but the store {path} keeps it as "
            f"fixed-width strings of dtype {old.dtype} (as long as its longest value when it was created); nothing "
            f"was written. Shorten the new values, or re-save the whole store: "
            f"nb.save(xr.concat([nb.load(path), new], {dim!r}), path, overwrite=True)")
    if np.can_cast(new.dtype, old.dtype, casting="safe"):
        return new.astype(old.dtype)
    raise SchemaError(
        f"cannot append: variable {name!r} is {new.dtype} in the new data but {old.dtype} in the store {path}; "
        f"writing would cast it and lose precision, so nothing was written. Convert it first "
        f"(new.astype({str(old.dtype)!r})) or save it to a separate store")


def _attrs_differ(new: dict, old: dict) -> list[str]:
    new, old = _decode_attrs(new), _decode_attrs(old)
    skip = {"coordinates", "_FillValue"}
    out = []
    for key in sorted((set(new) | set(old)) - skip):
        a, b = new.get(key), old.get(key)
        if isinstance(a, float) and isinstance(b, float) and np.isclose(a, b, rtol=1e-12, atol=0):
            continue
        if a != b:
            out.append(f"{key!r}: store {b!r}, new data {a!r}")
    return out


def _check_append(path: Path, ds: xr.Dataset, dim: str) -> xr.Dataset:
    """Everything an append could get wrong, checked against the store before a byte is written."""
    if dim not in ("trial", "stimulus"):
        raise ValueError(f"append_dim must be 'trial' or 'stimulus', got {dim!r}")
    if dim not in ds.dims:
        raise SchemaError(f"cannot append along {dim!r}: the new data has dims {tuple(ds.dims)}")
    _check_is_store(path, "zarr")
    try:
        with _quiet_zarr():
            old = xr.open_zarr(path, chunks=None)
    except _READ_ERRORS as err:
        raise _unreadable(path, err) from err
    if dim not in old.dims:
        raise SchemaError(f"cannot append along {dim!r}: the store at {path} has dims {tuple(old.dims)}")
    if dim == "stimulus":
        check_unique(_as_str(ds["stimulus"].values), "stimulus ids", owner="the data to append",
                     fix="nothing was written; appending along 'stimulus' needs one row per stimulus (average "
                         "repetitions with nb.core.average_repetitions, or append along 'trial')")
    for name in ds.data_vars:
        if name not in old.data_vars:
            raise SchemaError(f"cannot append: variable {name!r} is not in the store {path} (it has {list(old.data_vars)})")
    missing = [n for n in old.data_vars if n not in ds.data_vars]
    if missing:
        raise SchemaError(f"cannot append: the store {path} has variable(s) {missing} that the new data lacks; every "
                          f"variable must grow along {dim!r} together, so nothing was written (add them, or save the "
                          "new data to a separate store)")
    grows = [n for n in ds.variables if dim in ds[n].dims]
    store_grows = [n for n in old.variables if dim in old[n].dims]
    lacking = [n for n in store_grows if n not in ds.variables]
    if lacking:
        raise SchemaError(f"cannot append: the store {path} has coordinate(s) {lacking} along {dim!r} that the new "
                          f"data lacks; add them (e.g. new.assign_coords({lacking[0]}=({dim!r}, values))) so that every "
                          "row stays labelled. Nothing was written")
    extra = [n for n in grows if n not in old.variables]
    if extra:
        raise SchemaError(f"cannot append: the new data has coordinate(s) {extra} along {dim!r} that the store {path} "
                          f"lacks (it has {store_grows}); drop them (new.drop_vars({extra})) or re-save the whole "
                          "store with them. Nothing was written")
    for name in grows:
        new, ref = ds[name], old[name]
        if set(new.dims) != set(ref.dims):
            raise SchemaError(f"cannot append: {name!r} has dims {new.dims} in the new data but {ref.dims} in the "
                              f"store {path}; the dims must match")
        for d in new.dims:
            if d != dim and ds.sizes[d] != old.sizes[d]:
                raise SchemaError(f"cannot append: dim {d!r} has size {ds.sizes[d]} in the new data but "
                                  f"{old.sizes[d]} in the store {path}; the non-appended dims must match")
        new = _cast_like(name, new.transpose(*ref.dims), ref, path, dim)
        diff = _attrs_differ(new.attrs, ref.attrs)
        if diff:
            raise SchemaError(f"cannot append: the attrs of {name!r} differ from the store {path} ({'; '.join(diff)}); "
                              "the store keeps one set of attrs, so the new part would be described wrongly. Nothing "
                              "was written; make the attrs agree if the data are comparable (e.g. new.attrs = "
                              "nb.load(path).attrs), or save to a separate store")
        ds[name] = new
    for name in ds.coords:
        if dim in ds[name].dims:
            continue
        if name not in old.variables:
            raise SchemaError(f"cannot append: the new data has coordinate {name!r} that the store {path} lacks; the "
                              f"store would drop it. Drop it (new.drop_vars({name!r})) or re-save the whole store. "
                              "Nothing was written")
        a, b = old[name].values, ds[name].values
        if old[name].dims != ds[name].dims or not _values_equal(a, b):
            where = (_differences(a, b) if a.shape == b.shape else f"the store has shape {a.shape}, the new data {b.shape}")
            dims = ", ".join(repr(d) for d in ds[name].dims)
            if name in ds.dims:
                fix = (f"if they are the same {name!r} labels in another order, reorder the new data "
                       f"(new.sel({name}=nb.load(path)[{name!r}].values))")
            else:
                fix = (f"if they describe the same {dims} (e.g. rounding), use the store's values "
                       f"(new.assign_coords({name}=nb.load(path)[{name!r}]))")
            raise SchemaError(
                f"cannot append: coordinate {name!r} (dim {dims}) has different labels in the new data than in the "
                f"store {path}: {where}. The store keeps one set of labels for dims other than {dim!r}, so the new "
                f"part would be mislabelled; nothing was written. {fix[0].upper() + fix[1:]}; otherwise save it to "
                "a separate store")
    user_attrs = {k: v for k, v in ds.attrs.items() if k not in (_TYPE_ATTR, _NAME_ATTR)}
    store_attrs = {k: v for k, v in old.attrs.items() if k not in (_TYPE_ATTR, _NAME_ATTR)}
    diff = _attrs_differ(user_attrs, store_attrs)
    if diff:
        raise SchemaError(f"cannot append: the attrs differ from the store {path} ({'; '.join(diff)}); nothing was "
                          "written. Make them agree (new.attrs = nb.load(path).attrs) or save to a separate store")
    ds.attrs = dict(old.attrs)  # the store's attrs (incl. its type marker) stay as they are
    if dim == "stimulus":
        clash = pd.Index(_as_str(old["stimulus"].values)).intersection(pd.Index(_as_str(ds["stimulus"].values)))
        if len(clash):
            raise SchemaError(f"cannot append: stimulus ids already in the store {path}: {clash[:5].tolist()}; "
                              "nothing was written. Appending along 'stimulus' needs new ids (use dim 'trial' for "
                              "repetitions, or drop them: new.drop_sel(stimulus=[...]))")
    elif "trial" in ds.coords and "trial" in old.coords and np.issubdtype(old["trial"].dtype, np.integer):
        start = int(old["trial"].values.max()) + 1 if old.sizes["trial"] else 0
        if np.issubdtype(ds["trial"].dtype, np.integer) and ds["trial"].values.min() < start:
            ds = ds.assign_coords(trial=np.arange(start, start + ds.sizes["trial"]).astype(old["trial"].dtype))
    return ds


def save(
    obj: xr.DataArray | xr.Dataset | xr.DataTree, path: str | os.PathLike, *, format: str | None = None,
    append_dim: str | None = None, overwrite: bool = False,
) -> Path:
    """Write a DataArray, Dataset or DataTree to zarr (default) or netCDF.

    Parameters
    ----------
    obj : xr.DataArray, xr.Dataset or xr.DataTree
    path : path-like
        ``*.zarr`` for zarr, ``*.nc`` for netCDF (other suffixes default to zarr).
    format : {"zarr", "netcdf"}, optional
        Overrides the suffix.
    append_dim : {"trial", "stimulus"}, optional
        Append to an existing zarr store along this dim (integer ``trial`` indices continue from the store's).
        The store is checked before anything is written, and a bad append raises :class:`SchemaError` leaving
        the store unchanged: stimulus ids already in the store or repeated in the new part (along
        ``"stimulus"``); labels of the other dims (``unit``, ``channel``, ``time``, ...) that differ from the
        store's; variables or coords along the appended dim that only one side has; other dims, sizes or
        attrs; a dtype that would lose precision (or strings longer than the store's fixed width).
    overwrite : bool
        Replace an existing store. Without it, an existing path raises ``FileExistsError``.

    Returns
    -------
    Path of the written store.

    Raises
    ------
    SchemaError
        A bad append (see ``append_dim``) or attrs that cannot be stored.
    StoreError
        (an ``OSError``) ``path`` exists but is not a readable store (appending to an empty folder, a corrupt store).

    Examples
    --------
    >>> import neurobridge as nb, tempfile, numpy as np
    >>> acts = nb.core.activations(np.ones((2, 3)), stimulus=["a", "b"])
    >>> p = nb.save(acts, tempfile.mkdtemp() + "/acts.zarr")
    >>> nb.load(p).identical(acts)
    True
    >>> _ = nb.save(nb.core.activations(np.zeros((1, 3)), stimulus=["c"]), p, append_dim="stimulus")
    >>> nb.load(p).stimulus.values.tolist()
    ['a', 'b', 'c']
    >>> nb.save(nb.core.activations(np.zeros((1, 3)), stimulus=["a"]), p, append_dim="stimulus")
    Traceback (most recent call last):
    ...
    neurobridge.core._schemas.SchemaError: cannot append: stimulus ids already in the store ...acts.zarr: ['a']; ...
    """
    path = Path(path)
    fmt = _format(path, format)
    where = str(path)
    if isinstance(obj, xr.DataTree):
        if append_dim is not None:
            raise ValueError("appending is supported for DataArray and Dataset, not DataTree; save each node separately")
        tree = obj.copy()
        for node in tree.subtree:
            node.dataset = _prepare(node.to_dataset(inherit=False), f"{where}:{node.path}", fmt)
        tree.attrs[_TYPE_ATTR] = "DataTree"
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
        if path.exists():
            _remove(path)
        if fmt == "zarr":
            with _quiet_zarr():
                tree.to_zarr(path, mode="w")
        else:
            tree.to_netcdf(path, mode="w")
        return path
    if isinstance(obj, xr.DataArray):
        ds = _to_dataset(obj)
    elif isinstance(obj, xr.Dataset):
        ds = obj.copy(deep=False)
        ds.attrs = dict(obj.attrs) | {_TYPE_ATTR: "Dataset"}
    else:
        raise TypeError(f"save takes an xr.DataArray, xr.Dataset or xr.DataTree, got {type(obj).__name__}")
    ds = _prepare(ds, where, fmt)
    if append_dim is not None:
        if fmt != "zarr":
            raise ValueError("appending needs a zarr store; save to a path ending in .zarr")
        if not path.exists():
            if append_dim == "stimulus" and "stimulus" in ds.coords:
                check_unique(_as_str(ds["stimulus"].values), "stimulus ids", owner="the data to append",
                             fix="nothing was written; appending along 'stimulus' needs one row per stimulus (average "
                                 "repetitions with nb.core.average_repetitions, or append along 'trial')")
            with _quiet_zarr():
                ds.to_zarr(path, mode="w")
            return path
        ds = _check_append(path, ds, append_dim)
        ds = ds.drop_vars([n for n in ds.coords if append_dim not in ds[n].dims])
        with _quiet_zarr():
            ds.to_zarr(path, append_dim=append_dim)
        return path
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it or append_dim=... to extend it")
    if fmt == "zarr":
        with _quiet_zarr():
            ds.to_zarr(path, mode="w")
    else:
        if path.exists():
            _remove(path)
        ds.to_netcdf(path)
    return path


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()


def load(path: str | os.PathLike, *, chunks: int | str | dict | None = None, format: str | None = None):
    """Read what :func:`save` wrote, as the same type (DataArray, Dataset or DataTree).

    Parameters
    ----------
    path : path-like
    chunks : None, "auto", int or dict
        ``None`` (default) reads the values into memory; anything else returns lazy dask-backed arrays with
        those chunks (``{}`` uses the store's own chunking), for data larger than memory or a dask cluster.
    format : {"zarr", "netcdf"}, optional

    Raises
    ------
    FileNotFoundError
        Nothing at ``path``.
    StoreError
        (an ``OSError``) ``path`` is not a neurobridge store (an empty folder, a folder without zarr metadata,
        a file that is not netCDF) or is corrupt (a damaged chunk or metadata file, a truncated netCDF file);
        the message names the path and says to re-create the store. With ``chunks`` set, values are only read
        at compute time, so a damaged chunk is reported by zarr then.

    Examples
    --------
    >>> import neurobridge as nb, tempfile, numpy as np
    >>> acts = nb.core.activations(np.ones((2, 3)), stimulus=["a", "b"])
    >>> p = nb.save(acts, tempfile.mkdtemp() + "/acts.nc")
    >>> nb.load(p, chunks={}).chunks is not None
    True
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no store at {path}; check the path (zarr stores are folders ending in .zarr)")
    fmt = _format(path, format)
    _check_is_store(path, fmt)
    try:
        with _quiet_zarr():
            return _read(path, "zarr" if fmt == "zarr" else None, chunks)
    except (StoreError, SchemaError):
        raise
    except _READ_ERRORS as err:  # zarr, numcodecs, netCDF4/HDF5 and json each raise their own kinds
        raise _unreadable(path, err) from err


def _read(path: Path, engine: str | None, chunks):
    kind = _peek_type(path, engine)
    if kind == "DataTree":
        tree = xr.open_datatree(path, engine=engine, chunks=chunks)
        if chunks is None:
            tree = tree.load()
        for node in tree.subtree:
            node.dataset = _restore(node.to_dataset(inherit=False))
        tree.attrs.pop(_TYPE_ATTR, None)
        return tree
    ds = xr.open_dataset(path, engine=engine, chunks=chunks)
    if chunks is None:
        ds = ds.load()
        ds.close()
    ds = _restore(ds)
    for name in ds.variables:
        ds[name].encoding = {}
    kind = ds.attrs.pop(_TYPE_ATTR, "Dataset")
    name = ds.attrs.pop(_NAME_ATTR, "")
    if kind == "DataArray":
        (var,) = list(ds.data_vars)
        da = ds[var]
        da.name = name or None
        return da
    return ds


def _peek_type(path: Path, engine: str | None) -> str:
    if engine == "zarr":
        import zarr

        return str(zarr.open_group(str(path), mode="r").attrs.get(_TYPE_ATTR, "Dataset"))
    with xr.open_dataset(path) as ds:
        kind = ds.attrs.get(_TYPE_ATTR)
    if kind is None:
        return "DataTree" if _nc_has_groups(path) else "Dataset"
    return str(kind)


def _nc_has_groups(path: Path) -> bool:
    try:
        import netCDF4

        with netCDF4.Dataset(path) as f:
            return bool(f.groups)
    except (ImportError, OSError):
        return False
