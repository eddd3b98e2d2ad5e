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

from ._schemas import ATTR_TYPES, SchemaError

__all__ = ["save", "load"]

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


def _prepare(ds: xr.Dataset, where: str) -> xr.Dataset:
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
    for name in ds.variables:
        for key in ("chunks", "preferred_chunks", "compressors", "filters", "serializer", "compressor"):
            ds[name].encoding.pop(key, None)
    return ds


def _restore(ds: xr.Dataset) -> xr.Dataset:
    ds.attrs = _decode_attrs(ds.attrs) | {k: v for k, v in ds.attrs.items() if k in (_TYPE_ATTR, _NAME_ATTR)}
    for var in ds.variables.values():
        var.attrs = _decode_attrs(var.attrs)
    return ds


def _to_dataset(obj: xr.DataArray) -> xr.Dataset:
    name = obj.name if obj.name is not None else _DEFAULT_NAME
    ds = obj.to_dataset(name=name, promote_attrs=False)
    ds[name].attrs = dict(obj.attrs)
    ds.attrs = {_TYPE_ATTR: "DataArray", _NAME_ATTR: str(name) if obj.name is not None else ""}
    return ds


def _check_append(path: Path, ds: xr.Dataset, dim: str) -> xr.Dataset:
    if dim not in ("trial", "stimulus"):
        raise ValueError(f"append_dim must be 'trial' or 'stimulus', got {dim!r}")
    if dim not in ds.dims:
        raise SchemaError(f"cannot append along {dim!r}: the new data has dims {tuple(ds.dims)}")
    old = xr.open_zarr(path, chunks=None)
    ds.attrs = dict(old.attrs)  # the store's attrs (incl. its type marker) stay as they are
    if dim not in old.dims:
        raise SchemaError(f"cannot append along {dim!r}: the store at {path} has dims {tuple(old.dims)}")
    for name in ds.data_vars:
        if name not in old.data_vars:
            raise SchemaError(f"cannot append: variable {name!r} is not in the store {path} (it has {list(old.data_vars)})")
        other = [d for d in ds[name].dims if d != dim]
        for d in other:
            if ds.sizes[d] != old.sizes.get(d):
                raise SchemaError(f"cannot append: dim {d!r} has size {ds.sizes[d]} in the new data but "
                                  f"{old.sizes.get(d)} in the store {path}; the non-appended dims must match")
    if dim == "stimulus":
        clash = pd.Index(old["stimulus"].values).intersection(pd.Index(ds["stimulus"].values))
        if len(clash):
            raise SchemaError(f"cannot append: stimulus ids already in the store {path}: {clash[:5].tolist()}; "
                              "appending along 'stimulus' needs new ids (use dim 'trial' for repetitions)")
    elif "trial" in ds.coords and "trial" in old.coords and np.issubdtype(old["trial"].dtype, np.integer):
        start = int(old["trial"].values.max()) + 1 if old.sizes["trial"] else 0
        if np.issubdtype(ds["trial"].dtype, np.integer) and ds["trial"].values.min() < start:
            ds = ds.assign_coords(trial=np.arange(start, start + ds.sizes["trial"]))
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
        Append to an existing zarr store along this dim (new stimulus ids must not be in the store yet;
        integer ``trial`` indices continue from the store's). The store is checked before anything is written.
    overwrite : bool
        Replace an existing store. Without it, an existing path raises ``FileExistsError``.

    Returns
    -------
    Path of the written store.

    Examples
    --------
    >>> import neurobridge as nb, tempfile, numpy as np
    >>> acts = nb.core.activations(np.ones((2, 3)), stimulus=["a", "b"])
    >>> p = nb.save(acts, tempfile.mkdtemp() + "/acts.zarr")
    >>> nb.load(p).identical(acts)
    True
    """
    path = Path(path)
    fmt = _format(path, format)
    where = str(path)
    if isinstance(obj, xr.DataTree):
        if append_dim is not None:
            raise ValueError("appending is supported for DataArray and Dataset, not DataTree; save each node separately")
        tree = obj.copy()
        for node in tree.subtree:
            node.dataset = _prepare(node.to_dataset(inherit=False), f"{where}:{node.path}")
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
    ds = _prepare(ds, where)
    if append_dim is not None:
        if fmt != "zarr":
            raise ValueError("appending needs a zarr store; save to a path ending in .zarr")
        if not path.exists():
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
    engine = "zarr" if fmt == "zarr" else None
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
