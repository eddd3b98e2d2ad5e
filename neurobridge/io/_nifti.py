"""Bridge between NIfTI images (nibabel / nilearn) and neurobridge containers.

Voxels are a flat ``voxel`` dim with coordinates ``i, j, k`` (array indices) and ``x, y, z`` (mm, through
the affine), plus ``roi`` when a labels atlas is given. The grid travels as attrs ``affine`` (16 floats,
row-major) and ``shape`` (3 ints), so :func:`to_nifti` rebuilds the image without a template.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from neurobridge.core import SchemaError, check_finite, check_unique, optional_import
from neurobridge.core import fmri_responses as _fmri_responses
from neurobridge.core import fmri_timeseries as _fmri_timeseries

__all__ = ["from_nifti", "to_nifti", "voxel_coords", "load_img"]

logger = logging.getLogger("neurobridge")

_GRID_ATOL = 1e-4  # mm; affines that differ by less are the same grid


def _nib():
    return optional_import("nibabel", purpose="NIfTI images")


def load_img(img) -> Any:
    """Load a NIfTI image from a path, or return a nibabel image unchanged.

    Raises
    ------
    FileNotFoundError
        Naming the missing path.

    Examples
    --------
    >>> import nibabel as nib, numpy as np
    >>> load_img(nib.Nifti1Image(np.zeros((2, 2, 2)), np.eye(4))).shape
    (2, 2, 2)
    """
    nib = _nib()
    if isinstance(img, str | os.PathLike):
        path = Path(img)
        if not path.exists():
            raise FileNotFoundError(f"NIfTI file not found: {path}; check the path (absolute: {path.resolve()})")
        return nib.load(str(path))
    if hasattr(img, "affine") and hasattr(img, "dataobj"):
        return img
    raise TypeError(f"expected a NIfTI path or a nibabel image, got {type(img).__name__}")


def _grid(img) -> tuple[tuple[int, int, int], np.ndarray]:
    return tuple(int(s) for s in img.shape[:3]), np.asarray(img.affine, dtype=float)


def _same_grid(a, b) -> bool:
    sa, aa = a
    sb, ab = b
    return sa == sb and np.allclose(aa, ab, atol=_GRID_ATOL, rtol=0)


def _describe_grid(grid) -> str:
    shape, affine = grid
    vox = tuple(round(float(v), 4) for v in _nib().affines.voxel_sizes(affine))
    return f"shape {shape}, voxel size {vox} mm, affine\n{np.round(affine, 4)}"


def _grid_error(what: str, found, expected, fix: str) -> SchemaError:
    return SchemaError(
        f"{what} is on a different voxel grid: shape {found[0]} with affine\n{np.round(found[1], 4)}\n"
        f"but the image has shape {expected[0]} with affine\n{np.round(expected[1], 4)}\n{fix}"
    )


def voxel_coords(ijk: np.ndarray, affine: np.ndarray) -> dict[str, np.ndarray]:
    """Coordinates ``i, j, k`` (int) and ``x, y, z`` (mm) of voxels given as an (n, 3) index array.

    Examples
    --------
    >>> c = voxel_coords(np.array([[1, 2, 3]]), np.diag([2.0, 2.0, 2.0, 1.0]))
    >>> c["x"].tolist(), c["k"].tolist()
    ([2.0], [3])
    """
    nib = _nib()
    ijk = np.asarray(ijk, dtype=np.int64).reshape(-1, 3)
    xyz = nib.affines.apply_affine(np.asarray(affine, dtype=float), ijk)
    return {"i": ijk[:, 0], "j": ijk[:, 1], "k": ijk[:, 2], "x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2]}


def _stack(imgs, dtype) -> tuple[np.ndarray, Any, str, bool]:
    """Data (x, y, z, n) of one image or a list of images, its reference image, source and whether 3-D."""
    if isinstance(imgs, str | os.PathLike) or hasattr(imgs, "dataobj"):
        img = load_img(imgs)
        data = img.get_fdata(dtype=dtype)
        source = Path(imgs).name if isinstance(imgs, str | os.PathLike) else (
            Path(img.get_filename()).name if img.get_filename() else "nibabel image")
        if data.ndim == 3:
            return data[..., None], img, source, True
        if data.ndim != 4:
            raise SchemaError(f"expected a 3-D or 4-D image, got shape {data.shape}; squeeze extra dims first")
        return data, img, source, False
    if isinstance(imgs, Sequence) and len(imgs) > 0:
        parts, ref, grid = [], None, None
        for n, item in enumerate(imgs):
            img = load_img(item)
            if ref is None:
                ref, grid = img, _grid(img)
            elif not _same_grid(_grid(img), grid):
                raise _grid_error(f"image {n} of the list", _grid(img), grid,
                                  "resample it with nilearn.image.resample_to_img(img, first_img)")
            d = img.get_fdata(dtype=dtype)
            if d.ndim not in (3, 4):
                raise SchemaError(f"image {n} of the list has shape {d.shape}; expected 3-D or 4-D images")
            parts.append(d[..., None] if d.ndim == 3 else d)
        name = imgs[0]
        source = Path(name).name if isinstance(name, str | os.PathLike) else f"{len(imgs)} nibabel images"
        return np.concatenate(parts, axis=3), ref, source, False
    raise TypeError(f"imgs must be a NIfTI path, a nibabel image or a non-empty list of them, got {type(imgs).__name__}")


def _header_tr(img) -> float | None:
    zooms = img.header.get_zooms()
    if len(zooms) < 4 or not zooms[3] or zooms[3] <= 0:
        return None
    tr = float(zooms[3])
    try:
        unit = img.header.get_xyzt_units()[1]
    except Exception:  # noqa: BLE001  (non-NIfTI headers)
        unit = "sec"
    tr = {"msec": tr / 1e3, "usec": tr / 1e6}.get(unit, tr)
    if tr > 100:
        logger.warning("header TR is %g s, which looks like milliseconds; pass tr=... to override", tr)
    return tr


def _is_masker(obj) -> bool:
    return hasattr(obj, "transform") and hasattr(obj, "fit") and not hasattr(obj, "dataobj")


def _roi_names(values: np.ndarray, labels) -> np.ndarray:
    if labels is None:
        return values
    if isinstance(labels, Mapping):
        missing = [int(v) for v in values if int(v) not in labels]
        if missing:
            raise SchemaError(f"labels lacks names for atlas values {sorted(set(missing))[:10]}; "
                              "give a name for every non-zero label")
        return np.array([str(labels[int(v)]) for v in values])
    seq = list(labels)
    bad = [int(v) for v in values if not 0 <= int(v) < len(seq)]
    if bad:
        raise SchemaError(f"labels has {len(seq)} names (index = label value, 0 = background) but the atlas "
                          f"has values up to {max(bad)}; pass a name per value or a {{value: name}} mapping")
    return np.array([str(seq[int(v)]) for v in values])


def from_nifti(
    imgs, mask=None, *, stimulus: Sequence | None = None, tr: float | None = None, labels=None,
    reduce: str | None = None, dim: str = "trial", trial_coords: Mapping | None = None, dtype=np.float32,
) -> xr.DataArray:
    """Read NIfTI image(s) into a ``(time|trial|stimulus) x voxel`` container.

    Parameters
    ----------
    imgs : path, nibabel image, or list of them
        A 4-D image (volumes along the 4th axis), or 3-D/4-D images concatenated along the 4th axis.
    mask : None, path, nibabel image or fitted/unfitted nilearn masker
        ``None`` keeps every voxel of the grid. A binary image keeps its non-zero voxels (extracted by
        ``nilearn.masking.apply_mask``). A labels image (integer values, several non-zero labels, e.g. an
        atlas) keeps labelled voxels and adds a ``roi`` coordinate. A ``NiftiMasker`` is applied with its own
        settings (coords from ``mask_img_``); a ``NiftiLabelsMasker`` gives ROI signals (dim ``roi``). The mask
        must be on the image's grid. An unfitted masker without ``mask_img`` computes its mask from the data;
        where that mask comes out empty (single-slice or partial-coverage acquisitions, e.g. shape
        ``(X, Y, 1, T)``, defeat nilearn's EPI mask), every finite voxel that varies over time (non-zero for a
        3-D image) is used instead and a ``UserWarning`` says so: pass a binary ``mask=`` image (or a masker
        with ``mask_img``) to choose the voxels yourself.
    stimulus : sequence, optional
        One id per volume: gives ``fmri_responses`` (dim ``dim``) instead of ``fmri_timeseries``.
    tr : float, optional
        Repetition time in seconds (default: from the header). Needed for time series.
    labels : mapping or sequence, optional
        ROI names of the atlas values (``{value: name}`` or a list indexed by value).
    reduce : {None, "mean"}
        ``"mean"`` averages the voxels of each atlas ROI (by nilearn's ``NiftiLabelsMasker``): dim ``roi``
        instead of ``voxel``, with coords ``label``, ``n_voxels`` and centroid ``x, y, z``.
    dim : {"trial", "stimulus"}
        First dim for responses.
    trial_coords : mapping, optional
        More per-volume labels for responses.
    dtype : numpy dtype
        Data type of the values (float32 by default; float64 for scaled high-precision data).

    Returns
    -------
    xr.DataArray
        ``fmri_timeseries`` (time, voxel), ``fmri_responses`` (trial|stimulus, voxel), or ``(voxel,)`` for a
        single 3-D image without ``stimulus``; ``roi`` replaces ``voxel`` with ``reduce="mean"``. Voxel
        coords ``i, j, k, x, y, z`` (and ``roi``); attrs ``affine`` (16 floats), ``shape`` (3 ints),
        ``tr``, ``source``.

    Raises
    ------
    SchemaError
        Mask or list images on another voxel grid, NaN/inf inside the mask, wrong number of stimulus ids.
    FileNotFoundError
        A path that does not exist.

    Examples
    --------
    >>> import nibabel as nib, numpy as np
    >>> img = nib.Nifti1Image(np.random.rand(4, 4, 4, 10).astype("float32"), np.eye(4))
    >>> ts = from_nifti(img, tr=2.0)
    >>> ts.dims, ts.sizes["voxel"]
    (('time', 'voxel'), 64)
    """
    if reduce not in (None, "mean"):
        raise ValueError(f"reduce must be None or 'mean', got {reduce!r}")
    if _is_masker(mask):
        return _from_masker(mask, imgs, stimulus=stimulus, tr=tr, dim=dim, trial_coords=trial_coords, labels=labels,
                            dtype=dtype)
    data, ref, source, is_3d = _stack(imgs, dtype)
    grid = _grid(ref)
    shape, affine = grid
    n_vol = data.shape[3]
    roi_values = None
    if mask is None:
        keep = np.ones(shape, dtype=bool)
    else:
        mimg = load_img(mask)
        if len(mimg.shape) > 3 and not (len(mimg.shape) == 4 and mimg.shape[3] == 1):
            raise SchemaError(f"mask must be a 3-D image, got shape {mimg.shape}")
        if not _same_grid(_grid(mimg), grid):
            raise _grid_error("mask", _grid(mimg), grid,
                              "resample it first: nilearn.image.resample_to_img(mask, img, interpolation='nearest')")
        mdata = np.asanyarray(mimg.dataobj).reshape(shape)
        check_finite(mdata, "mask", fix="use a binary (0/1) or integer labels image")
        nonzero = np.unique(mdata[mdata != 0])
        is_atlas = labels is not None or len(nonzero) > 1
        if is_atlas and not np.allclose(nonzero, np.round(nonzero)):
            raise SchemaError("mask has several non-integer values; pass a binary mask or an integer labels atlas "
                              "(threshold probabilistic maps first, e.g. nilearn.image.math_img('img > 0.5', img=...))")
        keep = mdata != 0
        if is_atlas:
            roi_values = np.round(mdata[keep]).astype(np.int64)
        if not keep.any():
            raise SchemaError("mask selects no voxel (all zeros); check the mask image")
    if reduce == "mean" and roi_values is None:
        raise SchemaError("reduce='mean' needs a labels atlas as mask (integer image with one value per ROI)")
    ijk = np.argwhere(keep)  # C order, the order of nilearn's masked signals
    nib = _nib()
    image = nib.Nifti1Image(data, affine)
    attrs: dict[str, Any] = {"affine": [float(v) for v in affine.ravel()], "shape": list(shape), "source": source}
    if reduce == "mean":
        # ROI means by nilearn's NiftiLabelsMasker (float64 sums); NaN/inf must not be zeroed silently
        inside = data[keep]
        check_finite(xr.DataArray(inside.T, dims=("volume", "voxel")), "image data inside the mask")
        atlas = np.zeros(shape, dtype=np.int32)
        atlas[keep] = roi_values
        values, coords = _labels_signals(image, nib.Nifti1Image(atlas, affine), labels)
        values = values.astype(dtype, copy=False)
    else:
        coords = voxel_coords(ijk, affine)
        if roi_values is not None:
            coords["roi"] = _roi_names(roi_values, labels)
        if mask is None:
            values = data.reshape(-1, n_vol).T  # every voxel of the grid, C order
        else:
            masking = optional_import("nilearn.masking", purpose="masking NIfTI images")
            # NaN/inf are kept (ensure_finite=False) so that the container's own check names them
            values = np.atleast_2d(masking.apply_mask(image, nib.Nifti1Image(keep.astype(np.uint8), affine), dtype=dtype,
                                                      ensure_finite=False))
    return _finish(values, coords, attrs, stimulus=stimulus, tr=tr, ref=ref, is_3d=is_3d, dim=dim,
                   trial_coords=trial_coords, n_vol=n_vol, feature="roi" if reduce == "mean" else "voxel")


def _roi_stats(ldata: np.ndarray, affine: np.ndarray, uniq: np.ndarray, labels) -> dict[str, np.ndarray]:
    """Coords of the ROIs of a labels volume: name, label value, voxel count and centroid (mm)."""
    nib = _nib()
    lab = np.round(ldata[ldata != 0]).astype(np.int64)
    xyz = nib.affines.apply_affine(affine, np.argwhere(ldata != 0))
    inv = np.searchsorted(uniq, lab)
    counts = np.bincount(inv, minlength=len(uniq)).astype(np.int64)
    cent = np.stack([np.bincount(inv, weights=xyz[:, n], minlength=len(uniq)) for n in range(3)], axis=1)
    cent /= np.maximum(counts, 1)[:, None]
    return {"roi": _roi_names(uniq, labels), "label": uniq.astype(np.int64), "n_voxels": counts,
            "x": cent[:, 0], "y": cent[:, 1], "z": cent[:, 2]}


def _labels_signals(image, atlas_img, labels) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Mean signal of each atlas ROI, (n_vol, n_roi), by nilearn's NiftiLabelsMasker, and the ROI coords.

    The caller checks that the values inside the atlas are finite (nilearn would zero NaN silently).
    """
    maskers = optional_import("nilearn.maskers", purpose="ROI means")
    masker = maskers.NiftiLabelsMasker(labels_img=atlas_img, strategy="mean", standardize=None)
    with warnings.catch_warnings():
        # the caller checked the values inside the atlas; NaN outside it (zeroed by nilearn) are never averaged
        warnings.filterwarnings("ignore", message=".*Non-finite values detected.*")
        values = np.atleast_2d(np.asarray(masker.fit_transform(image)))
    ldata = np.asanyarray(atlas_img.dataobj)
    uniq = np.unique(np.round(ldata[ldata != 0]).astype(np.int64))
    if values.shape[1] != len(uniq):
        raise SchemaError(f"nilearn returned {values.shape[1]} ROI signals for {len(uniq)} atlas labels; "
                          "check the atlas (integer labels, 0 = background)")
    return values, _roi_stats(ldata, np.asarray(atlas_img.affine, dtype=float), uniq, labels)


def _finish(values, coords, attrs, *, stimulus, tr, ref, is_3d, dim, trial_coords, n_vol, feature):
    if feature == "roi":
        tmp_coords = {k: v for k, v in coords.items() if k != "roi"}
    else:
        tmp_coords = coords
    if stimulus is not None:
        ids = np.asarray(stimulus)
        if ids.ndim != 1 or len(ids) != n_vol:
            raise SchemaError(f"stimulus has {ids.size} ids but the image has {n_vol} volume(s); pass one id per volume")
        da = _fmri_responses(values, stimulus=ids, dim=dim, voxel_coords=tmp_coords, trial_coords=trial_coords,
                             attrs=attrs)
    elif is_3d:
        check_finite(xr.DataArray(values[0], dims="voxel"), "image data")
        da = xr.DataArray(values[0], dims=("voxel",), coords={"voxel": np.arange(values.shape[1]),
                                                              **{k: ("voxel", v) for k, v in tmp_coords.items()}},
                          attrs={"modality": "fmri", **attrs})
    else:
        tr = float(tr) if tr is not None else _header_tr(ref)
        if tr is None:
            raise SchemaError("the image header has no TR (pixdim[4] is 0); pass tr=... in seconds, "
                              "or stimulus=... if the volumes are per-trial responses")
        da = _fmri_timeseries(values, tr=tr, voxel_coords=tmp_coords, attrs=attrs)
    if feature == "roi":
        da = da.rename(voxel="roi").assign_coords(roi=coords["roi"])
    return da


def _from_masker(masker, imgs, *, stimulus, tr, dim, trial_coords, labels, dtype):
    if isinstance(imgs, str | os.PathLike) or hasattr(imgs, "dataobj"):
        image = load_img(imgs)
        source = Path(imgs).name if isinstance(imgs, str | os.PathLike) else "nibabel image"
    elif isinstance(imgs, Sequence) and len(imgs) > 0:
        image = optional_import("nilearn.image", purpose="maskers").concat_imgs([load_img(i) for i in imgs])
        source = f"{len(imgs)} images"
    else:
        raise TypeError(f"imgs must be a NIfTI path, a nibabel image or a non-empty list of them, got {type(imgs).__name__}")
    is_3d = len(image.shape) == 3
    if not hasattr(masker, "mask_img_") and not hasattr(masker, "labels_img_"):
        given = getattr(masker, "mask_img", None) is not None or getattr(masker, "labels_img", None) is not None
        masker = masker.fit() if given else _fit_masker(masker, image)
    values = np.atleast_2d(np.asarray(masker.transform(image), dtype=dtype))
    n_vol = values.shape[0]
    if hasattr(masker, "labels_img_"):
        limg = load_img(masker.labels_img_)
        shape, affine = _grid(limg)
        ldata = np.asanyarray(limg.dataobj).reshape(shape)
        region_ids = getattr(masker, "region_ids_", None)
        if isinstance(region_ids, Mapping):
            uniq = np.array([int(v) for k, v in region_ids.items() if k != "background"], dtype=np.int64)
        else:
            uniq = np.unique(np.round(ldata[ldata != 0]).astype(np.int64))
        if len(uniq) != values.shape[1]:
            raise SchemaError(f"the labels masker returned {values.shape[1]} signals for {len(uniq)} atlas labels; "
                              "pass the labels image as mask=... instead")
        coords = _roi_stats(ldata, affine, uniq, labels)
        feature = "roi"
    else:
        mimg = load_img(masker.mask_img_)
        shape, affine = _grid(mimg)
        keep = np.asanyarray(mimg.dataobj).reshape(shape) != 0
        if keep.sum() != values.shape[1]:
            raise SchemaError(f"masker returned {values.shape[1]} voxels but its mask has {int(keep.sum())}")
        coords = voxel_coords(np.argwhere(keep), affine)
        feature = "voxel"
    attrs = {"affine": [float(v) for v in affine.ravel()], "shape": list(shape), "source": source}
    if tr is None:
        tr = _header_tr(image) if len(image.shape) == 4 else None
    return _finish(values, coords, attrs, stimulus=stimulus, tr=tr, ref=image, is_3d=is_3d, dim=dim,
                   trial_coords=trial_coords, n_vol=n_vol, feature=feature)


# how nilearn says that the mask it computed is empty (a ValueError from load_mask_img, a MaskWarning)
_EMPTY_MASK = ("mask is invalid as it is empty", "masks all data", "computed an empty mask")


def _fallback_mask(img, who: str, reason: str, stacklevel: int):
    """Every finite voxel that varies over time (4-D) or is non-zero (3-D), with a warning saying so."""
    nib = _nib()
    data = np.asanyarray(img.dataobj)
    if data.ndim == 4 and data.shape[3] > 1:
        keep = np.isfinite(data).all(axis=3) & (np.ptp(np.nan_to_num(data), axis=3) > 0)
        what = "non-constant"
    else:
        data = data.reshape(data.shape[:3])
        keep = np.isfinite(data) & (data != 0)
        what = "non-zero"
    if not keep.any():
        raise SchemaError(f"{who}: no brain mask can be computed for this image of shape {img.shape} ({reason}) and "
                          f"no voxel is {what}; pass mask=<binary image on the image's grid> (or a fitted masker)")
    warnings.warn(
        f"{who}: no brain mask could be computed for this image of shape {tuple(img.shape)} ({reason}, as happens "
        f"with single-slice or partial-coverage acquisitions), so all {int(keep.sum())} {what} voxels are "
        "used instead. Pass mask=<binary image on the image's grid> (or a fitted masker) to choose the voxels "
        "yourself", UserWarning, stacklevel=stacklevel)
    return nib.Nifti1Image(keep.astype(np.uint8), img.affine)


def _is_empty_mask_error(err: Exception) -> bool:
    return any(s in str(err).lower() for s in _EMPTY_MASK)


def _fit_masker(masker, image):
    """Fit a masker that computes its own mask; where that mask comes out empty, fall back (see _fallback_mask)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Computed an empty mask.*")
        try:
            fitted = masker.fit(image)
            mask_img = getattr(fitted, "mask_img_", None)
            if mask_img is None or np.any(np.asanyarray(load_img(mask_img).dataobj)):
                return fitted
        except ValueError as err:
            if not _is_empty_mask_error(err):
                raise
        reason = f"the mask the masker computes (mask_strategy={getattr(masker, 'mask_strategy', '?')!r}) is empty"
    from sklearn.base import clone

    return clone(masker).set_params(mask_img=_fallback_mask(image, "from_nifti", reason, stacklevel=5)).fit()


def _automatic_mask(img, who: str = "trial_betas"):
    """The brain mask nilearn's ``FirstLevelModel`` computes for one run (``compute_multi_epi_mask``), or, where
    that is empty (single-slice or partial-coverage acquisitions), every non-constant voxel, with a warning."""
    masking = optional_import("nilearn.masking", purpose="brain masks")
    img = load_img(img)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Computed an empty mask.*")
        try:
            mask = masking.compute_multi_epi_mask([img])
            if np.any(np.asanyarray(mask.dataobj)):
                return mask
        except ValueError as err:
            if not _is_empty_mask_error(err):
                raise
    return _fallback_mask(img, who, "nilearn's EPI mask (compute_epi_mask) is empty", stacklevel=4)


def _attrs_grid(da: xr.DataArray):
    """The grid in the attrs that from_nifti writes, or None when they are absent."""
    if "affine" not in da.attrs or "shape" not in da.attrs:
        return None
    aff = np.asarray(da.attrs["affine"], dtype=float)
    shp = list(np.atleast_1d(da.attrs["shape"]))
    if aff.size != 16 or len(shp) != 3:
        raise SchemaError(f"attrs 'affine' must hold 16 floats and 'shape' 3 ints, found {aff.size} and {len(shp)}")
    return tuple(int(s) for s in shp), aff.reshape(4, 4)


_LIKE_FIX = ("Resample the data onto the like= grid first (e.g. nilearn.image.resample_to_img(nb.io.to_nifti(da), "
             "like)), or pass the like= image the data came from (or like=None to use the data's own grid attrs)")


def _grid_from(da: xr.DataArray, like) -> tuple[tuple[int, int, int], np.ndarray, Any]:
    own = _attrs_grid(da)
    if like is not None:
        img = load_img(like)
        grid = _grid(img)
        if own is not None and not _same_grid(own, grid):
            raise SchemaError(f"like= is on a different voxel grid than the data: like has {_describe_grid(grid)}\n"
                              f"but the data (attrs 'affine' and 'shape', as written by nb.io.from_nifti) has "
                              f"{_describe_grid(own)}\n{_LIKE_FIX}")
        if own is None and all(c in da.coords for c in "xyzijk"):
            # no grid attrs: the voxels' mm coords must be where like's affine puts their indices
            ijk = np.column_stack([np.asarray(da[c].values, dtype=float) for c in "ijk"])
            found = np.column_stack([np.asarray(da[c].values, dtype=float) for c in "xyz"])
            expected = _nib().affines.apply_affine(grid[1], ijk)
            atol = 1e-3 + _GRID_ATOL * (np.abs(ijk).max() if len(ijk) else 0)
            off = np.flatnonzero(~np.isclose(found, expected, rtol=0, atol=atol).all(axis=1))
            if len(off):
                n = off[0]
                raise SchemaError(
                    f"like= is on a different voxel grid than the data: voxel (i, j, k) = {tuple(int(v) for v in ijk[n])} "
                    f"is at (x, y, z) = {tuple(np.round(found[n], 3).tolist())} mm in the data but at "
                    f"{tuple(np.round(expected[n], 3).tolist())} mm through like's affine ({len(off)} of {len(ijk)} "
                    f"voxels disagree); like has {_describe_grid(grid)}\n{_LIKE_FIX}")
        return grid[0], grid[1], img.header
    if own is None:
        raise SchemaError("to_nifti needs the voxel grid: attrs 'affine' (16 floats) and 'shape' (3 ints) as written "
                          "by nb.io.from_nifti, or like=<reference image>")
    return own[0], own[1], None


def to_nifti(da: xr.DataArray, like=None, *, fill: float = 0.0):
    """Rebuild a NIfTI image from a container with a ``voxel`` dim.

    Parameters
    ----------
    da : xr.DataArray
        Dims ``(voxel,)`` -> 3-D image, or ``(<dim>, voxel)`` (time, trial, stimulus, ...) -> 4-D image.
        Needs voxel coords ``i, j, k``; scores from analyses that keep them (e.g. over ``voxel``) work too.
    like : path or nibabel image, optional
        Reference image for the grid (affine, shape, header); default: attrs ``affine`` and ``shape``. It must
        be the grid the data are on: its affine (not only its shape) is compared with attrs ``affine`` (or,
        without those attrs, with the voxels' ``x, y, z`` coords), and another grid raises ``SchemaError``;
        resample first (``nilearn.image.resample_to_img``) to map data onto another grid.
    fill : float
        Value of voxels outside the data (default 0).

    Returns
    -------
    nibabel.Nifti1Image

    Raises
    ------
    SchemaError
        No ``voxel`` dim or ``i, j, k`` coords, more than two dims, unknown grid, ``like`` on another grid
        (other shape or affine: both are named), indices outside the grid, duplicated voxels.

    Examples
    --------
    >>> import nibabel as nib, numpy as np
    >>> img = nib.Nifti1Image(np.arange(8.0).reshape(2, 2, 2), np.eye(4))
    >>> np.array_equal(to_nifti(from_nifti(img)).get_fdata(), img.get_fdata())
    True
    """
    nib = _nib()
    if not isinstance(da, xr.DataArray):
        raise TypeError(f"to_nifti expects an xr.DataArray, got {type(da).__name__}")
    if "voxel" not in da.dims:
        hint = " (ROI averages cannot be mapped back voxel-wise; broadcast them over the atlas first)" if "roi" in da.dims else ""
        raise SchemaError(f"to_nifti needs a 'voxel' dim, found dims {tuple(da.dims)}{hint}")
    if da.ndim > 2:
        raise SchemaError(f"to_nifti maps at most 2 dims (<dim>, voxel), found {tuple(da.dims)}; "
                          "select or average the others first, e.g. da.mean('fold')")
    missing = [c for c in "ijk" if c not in da.coords]
    if missing:
        raise SchemaError(f"to_nifti needs voxel coords i, j, k (missing {missing}); build the data with "
                          "nb.io.from_nifti or keep the voxel coords through the analysis")
    shape, affine, header = _grid_from(da, like)
    ijk = np.column_stack([np.asarray(da[c].values, dtype=np.int64) for c in "ijk"])
    if len(ijk) and ((ijk < 0).any() or (ijk >= np.array(shape)).any()):
        raise SchemaError(f"voxel indices fall outside the grid of shape {shape}; pass the like= image the data came from")
    check_unique(ijk, "voxel indices (i, j, k)", owner="to_nifti",
                 fix="each voxel may appear once; average duplicates first (e.g. da.groupby(...).mean())")
    other = [d for d in da.dims if d != "voxel"]
    values = np.asarray(da.transpose(*other, "voxel").values)
    dtype = values.dtype if np.issubdtype(values.dtype, np.floating) else np.float32
    if other:
        vol = np.full((*shape, values.shape[0]), fill, dtype=dtype)
        vol[ijk[:, 0], ijk[:, 1], ijk[:, 2], :] = values.T
    else:
        vol = np.full(shape, fill, dtype=dtype)
        vol[ijk[:, 0], ijk[:, 1], ijk[:, 2]] = values
    img = nib.Nifti1Image(vol, affine)
    img.header.set_xyzt_units("mm", "sec")
    if header is not None:
        img.header.set_zooms(tuple(header.get_zooms()[:3]) + img.header.get_zooms()[3:])
    if other and "tr" in da.attrs:
        img.header.set_zooms(img.header.get_zooms()[:3] + (float(da.attrs["tr"]),))
    return img
