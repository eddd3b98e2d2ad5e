"""nb.io.from_nifti / to_nifti on nibabel's example 4D image and nilearn's bundled MNI template."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import xarray as xr

import neurobridge as nb
from neurobridge.core import SchemaError

nib = pytest.importorskip("nibabel")
nilearn_datasets = pytest.importorskip("nilearn.datasets")
nilearn_image = pytest.importorskip("nilearn.image")


@pytest.fixture(scope="module")
def example4d():
    from nibabel.testing import data_path

    path = os.path.join(data_path, "example4d.nii.gz")
    return path, nib.load(path)


@pytest.fixture(scope="module")
def mni():
    return nilearn_datasets.load_mni152_template(resolution=2), nilearn_datasets.load_mni152_brain_mask(resolution=2)


@pytest.fixture(scope="module")
def mask_on_example(example4d, mni):
    _, img = example4d
    return nilearn_image.resample_to_img(mni[1], nilearn_image.index_img(img, 0), interpolation="nearest",
                                         force_resample=True, copy_header=True)


def _octant_atlas(mask_img):
    """A labels atlas from the MNI mask: 8 ROIs (octants around the centre of mass)."""
    data = mask_img.get_fdata() > 0
    ijk = np.argwhere(data)
    xyz = nib.affines.apply_affine(mask_img.affine, ijk)
    centre = xyz.mean(axis=0)
    code = 1 + (xyz[:, 0] > centre[0]) + 2 * (xyz[:, 1] > centre[1]) + 4 * (xyz[:, 2] > centre[2])
    labels = np.zeros(data.shape, dtype=np.int16)
    labels[tuple(ijk.T)] = code
    return nib.Nifti1Image(labels, mask_img.affine)


def test_example4d_round_trip_exact(example4d):
    path, img = example4d
    ts = nb.io.from_nifti(path, tr=2.0)
    nb.core.validate(ts, "fmri_timeseries")
    assert ts.dims == ("time", "voxel") and ts.sizes == {"time": 2, "voxel": int(np.prod(img.shape[:3]))}
    assert ts.attrs["tr"] == 2.0 and ts.attrs["source"] == "example4d.nii.gz"
    np.testing.assert_array_equal(ts.time.values, [0.0, 2.0])
    # coordinates: indices and mm through the affine
    v = 12345
    ijk = [int(ts.i[v]), int(ts.j[v]), int(ts.k[v])]
    np.testing.assert_allclose([ts.x[v], ts.y[v], ts.z[v]], nib.affines.apply_affine(img.affine, ijk))
    np.testing.assert_array_equal(ts.isel(voxel=v).values, img.get_fdata()[tuple(ijk)])
    back = nb.io.to_nifti(ts)
    assert back.shape == img.shape
    np.testing.assert_array_equal(back.affine, img.affine)
    np.testing.assert_array_equal(back.get_fdata(), img.get_fdata())
    assert back.header.get_zooms()[3] == 2.0
    # also through a file, the accessor and like=
    back2 = ts.nb.to_nifti(like=path)
    np.testing.assert_array_equal(back2.get_fdata(), img.get_fdata())


def test_example4d_with_resampled_mni_mask(example4d, mask_on_example, tmp_path):
    path, img = example4d
    keep = mask_on_example.get_fdata() > 0
    ts = nb.io.from_nifti(img, mask=mask_on_example, tr=2.0)
    assert ts.sizes["voxel"] == int(keep.sum()) > 1000
    # nilearn's NiftiMasker gives the same values in the same voxel order
    from nilearn.maskers import NiftiMasker

    ref = NiftiMasker(mask_img=mask_on_example, standardize=None).fit_transform(img)
    np.testing.assert_array_equal(ts.values, ref.astype(np.float32))
    back = nb.io.to_nifti(ts)
    np.testing.assert_array_equal(back.get_fdata()[keep], img.get_fdata()[keep])
    assert np.all(back.get_fdata()[~keep] == 0)
    # passing the masker itself gives the same container
    via_masker = nb.io.from_nifti(img, mask=NiftiMasker(mask_img=mask_on_example, standardize=None), tr=2.0)
    xr.testing.assert_identical(via_masker.drop_attrs(), ts.drop_attrs())
    # storage keeps everything needed to rebuild the image
    nb.save(ts, tmp_path / "ts.nc")
    reloaded = nb.load(tmp_path / "ts.nc")
    np.testing.assert_array_equal(nb.io.to_nifti(reloaded).get_fdata(), back.get_fdata())


def test_mni_template_round_trip_exact(mni, tmp_path):
    template, mask = mni
    keep = mask.get_fdata() > 0
    vol = nb.io.from_nifti(template, mask=mask)
    assert vol.dims == ("voxel",) and vol.sizes["voxel"] == int(keep.sum())
    from nilearn.maskers import NiftiMasker

    via_masker = nb.io.from_nifti(template, mask=NiftiMasker(mask_img=mask, standardize=None))
    np.testing.assert_array_equal(via_masker.values, vol.values)
    back = nb.io.to_nifti(vol)
    np.testing.assert_array_equal(back.affine, template.affine)
    np.testing.assert_array_equal(back.get_fdata()[keep], template.get_fdata()[keep])
    # trials from a list of 3-D images (written to disk) -> fmri_responses
    paths = []
    for n in range(3):
        img = nib.Nifti1Image((template.get_fdata() * (n + 1)).astype(np.float32), template.affine)
        paths.append(tmp_path / f"beta{n}.nii.gz")
        img.to_filename(paths[-1])
    resp = nb.io.from_nifti(paths, mask=mask, stimulus=["a", "b", "a"], trial_coords={"run": [1, 1, 2]})
    nb.core.validate(resp, "fmri_responses")
    assert resp.stimulus.values.tolist() == ["a", "b", "a"] and resp.run.values.tolist() == [1, 1, 2]
    np.testing.assert_allclose(resp.isel(trial=2).values, 3 * vol.values, rtol=1e-6)
    avg = nb.core.average_repetitions(resp)
    np.testing.assert_allclose(avg.sel(stimulus="a").values, 2 * vol.values, rtol=1e-6)
    back4d = nb.io.to_nifti(resp)
    assert back4d.shape == (*template.shape, 3)
    np.testing.assert_allclose(back4d.get_fdata()[..., 1][keep], 2 * template.get_fdata()[keep], rtol=1e-6)


def test_atlas_roi_coords_and_means(mni):
    template, mask = mni
    atlas = _octant_atlas(mask)
    names = {i: f"oct{i}" for i in range(1, 9)}
    data = np.stack([template.get_fdata() * s for s in (1.0, 0.5, 2.0)], axis=-1).astype(np.float32)
    img = nib.Nifti1Image(data, template.affine)
    vox = nb.io.from_nifti(img, mask=atlas, stimulus=["x", "y", "z"], labels=names)
    assert set(vox.roi.values.tolist()) == set(names.values())
    roi = nb.io.from_nifti(img, mask=atlas, stimulus=["x", "y", "z"], labels=names, reduce="mean")
    assert roi.dims == ("trial", "roi") and roi.roi.values.tolist() == [names[i] for i in range(1, 9)]
    # reference: float64 closed form, and nilearn's NiftiLabelsMasker (which computes our means)
    from nilearn.maskers import NiftiLabelsMasker

    lab = atlas.get_fdata()
    exact = np.stack([data[lab == i].astype(np.float64).mean(axis=0) for i in range(1, 9)], axis=1)
    np.testing.assert_allclose(roi.values, exact, rtol=1e-6)
    ref = NiftiLabelsMasker(labels_img=atlas, strategy="mean", standardize=None).fit_transform(img)
    np.testing.assert_allclose(roi.values, ref, rtol=1e-6)
    # centroids: the mean mm position of each ROI's voxels
    ijk = np.argwhere(lab == 3)
    np.testing.assert_allclose([roi.x[2], roi.y[2], roi.z[2]], nib.affines.apply_affine(atlas.affine, ijk).mean(0))
    np.testing.assert_array_equal(roi.n_voxels.values,
                                  [int((atlas.get_fdata() == i).sum()) for i in range(1, 9)])
    # and the groupby over the voxel-wise roi coord agrees
    np.testing.assert_allclose(vox.astype(np.float64).groupby("roi").mean().sel(roi=roi.roi.values).values, roi.values, rtol=1e-5)
    # the labels masker route gives the same ROI signals
    via = nb.io.from_nifti(img, mask=NiftiLabelsMasker(labels_img=atlas, strategy="mean", standardize=None), stimulus=["x", "y", "z"],
                           labels=names)
    np.testing.assert_allclose(via.values, ref, rtol=1e-6)
    assert via.roi.values.tolist() == roi.roi.values.tolist()


def test_mismatched_grids_raise(example4d, mni, tmp_path):
    path, img = example4d
    with pytest.raises(SchemaError, match="(?s)different voxel grid.*resample_to_img"):
        nb.io.from_nifti(img, mask=mni[1], tr=2.0)
    shifted = nib.Nifti1Image(np.ones(img.shape[:3], np.uint8), np.asarray(img.affine) + np.array([[0, 0, 0, 3.0]] + [[0] * 4] * 3))
    with pytest.raises(SchemaError, match="different voxel grid"):
        nb.io.from_nifti(img, mask=shifted, tr=2.0)
    a = nib.Nifti1Image(np.zeros((4, 4, 4), np.float32), np.eye(4))
    b = nib.Nifti1Image(np.zeros((4, 4, 5), np.float32), np.eye(4))
    with pytest.raises(SchemaError, match="image 1 of the list"):
        nb.io.from_nifti([a, b], stimulus=["s1", "s2"])
    ts = nb.io.from_nifti(path, tr=2.0)
    with pytest.raises(SchemaError, match="different voxel grid"):
        nb.io.to_nifti(ts, like=mni[0])


def test_bad_inputs_raise(example4d, tmp_path):
    path, img = example4d
    with pytest.raises(FileNotFoundError, match="no_such.nii.gz"):
        nb.io.from_nifti(tmp_path / "no_such.nii.gz")
    data = np.ones((3, 3, 3, 4), np.float32)
    data[1, 1, 1, 2] = np.nan
    with pytest.raises(SchemaError, match="non-finite"):
        nb.io.from_nifti(nib.Nifti1Image(data, np.eye(4)), tr=1.0)
    # NaN outside the mask is fine
    mask = np.ones((3, 3, 3), np.uint8)
    mask[1, 1, 1] = 0
    ok = nb.io.from_nifti(nib.Nifti1Image(data, np.eye(4)), mask=nib.Nifti1Image(mask, np.eye(4)), tr=1.0)
    assert ok.sizes["voxel"] == 26
    no_tr = nib.Nifti1Image(np.ones((2, 2, 2, 3), np.float32), np.eye(4))
    no_tr.header.set_zooms((1.0, 1.0, 1.0, 0.0))
    with pytest.raises(SchemaError, match="no TR"):
        nb.io.from_nifti(no_tr)
    with pytest.raises(SchemaError, match="one id per volume"):
        nb.io.from_nifti(path, stimulus=["a", "b", "c"])
    with pytest.raises(SchemaError, match="duplicated stimulus ids"):
        nb.io.from_nifti(path, stimulus=["a", "a"], dim="stimulus")
    with pytest.raises(SchemaError, match="labels atlas"):
        nb.io.from_nifti(path, tr=2.0, reduce="mean")
    with pytest.raises(SchemaError, match="selects no voxel"):
        nb.io.from_nifti(path, mask=nib.Nifti1Image(np.zeros(img.shape[:3], np.uint8), img.affine), tr=2.0)
    ts = nb.io.from_nifti(path, tr=2.0).isel(voxel=slice(0, 50))
    with pytest.raises(SchemaError, match="voxel coords i, j, k"):
        nb.io.to_nifti(ts.drop_vars("k"))
    with pytest.raises(SchemaError, match="needs a 'voxel' dim"):
        nb.io.to_nifti(ts.rename(voxel="unit"))
    with pytest.raises(SchemaError, match="at most 2 dims"):
        nb.io.to_nifti(ts.expand_dims(fold=2))
    no_grid = ts.copy()
    no_grid.attrs = {"tr": 2.0}
    with pytest.raises(SchemaError, match="affine.*shape"):
        nb.io.to_nifti(no_grid)
    outside = ts.assign_coords(i=("voxel", ts.i.values + 1000))
    with pytest.raises(SchemaError, match="outside the grid"):
        nb.io.to_nifti(outside)


hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=25, deadline=None)
@given(shape=st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(1, 6)), n_vol=st.integers(1, 4),
       seed=st.integers(0, 2**16), rotate=st.booleans())
def test_round_trip_property(shape, n_vol, seed, rotate):
    """Any grid, oblique or not, any mask: values inside the mask and the affine come back exactly."""
    rng = np.random.default_rng(seed)
    affine = np.eye(4)
    affine[:3, :3] = np.diag(rng.uniform(0.5, 4.0, 3)) * rng.choice([-1, 1], 3)
    if rotate:
        q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        affine[:3, :3] = q @ affine[:3, :3]
    affine[:3, 3] = rng.uniform(-100, 100, 3)
    data = rng.normal(size=(*shape, n_vol)).astype(np.float32)
    keep = rng.random(shape) < 0.6
    keep.flat[0] = True
    img = nib.Nifti1Image(data, affine)
    mask = nib.Nifti1Image(keep.astype(np.uint8), affine)
    da = nb.io.from_nifti(img, mask=mask, stimulus=[f"s{i}" for i in range(n_vol)])
    assert da.sizes["voxel"] == int(keep.sum())
    # x, y, z are the affine applied to i, j, k
    ijk = np.column_stack([da.i, da.j, da.k])
    np.testing.assert_allclose(np.column_stack([da.x, da.y, da.z]), ijk @ affine[:3, :3].T + affine[:3, 3])
    back = nb.io.to_nifti(da)
    np.testing.assert_array_equal(back.affine, img.affine)
    np.testing.assert_array_equal(back.get_fdata()[keep], data[keep])
    assert np.all(back.get_fdata()[~keep] == 0)


def test_atlas_bad_inputs_raise():
    affine = np.eye(4)
    img = nib.Nifti1Image(np.ones((3, 3, 3, 2), np.float32), affine)
    prob = nib.Nifti1Image(np.linspace(0, 1, 27).reshape(3, 3, 3).astype(np.float32), affine)
    with pytest.raises(SchemaError, match="non-integer values"):
        nb.io.from_nifti(img, mask=prob, tr=1.0)
    atlas = nib.Nifti1Image(np.repeat([0, 1, 2], 9).reshape(3, 3, 3).astype(np.int16), affine)
    with pytest.raises(SchemaError, match="lacks names for atlas values \\[2\\]"):
        nb.io.from_nifti(img, mask=atlas, tr=1.0, labels={1: "V1"})
    with pytest.raises(SchemaError, match="index = label value"):
        nb.io.from_nifti(img, mask=atlas, tr=1.0, labels=["background", "V1"])
    with pytest.raises(ValueError, match="reduce must be None or 'mean'"):
        nb.io.from_nifti(img, mask=atlas, tr=1.0, reduce="median")
    roi = nb.io.from_nifti(img, mask=atlas, tr=1.0, labels=["background", "V1", "V2"], reduce="mean")
    assert roi.dims == ("time", "roi") and roi.roi.values.tolist() == ["V1", "V2"]
    assert roi.n_voxels.values.tolist() == [9, 9]
    with pytest.raises(SchemaError, match="ROI averages cannot be mapped back"):
        nb.io.to_nifti(roi)


def test_masked_values_are_nilearns_apply_mask(example4d, mask_on_example):
    """The voxel values are nilearn.masking.apply_mask's, in its order, for float32 and float64."""
    from nilearn.masking import apply_mask

    _, img = example4d
    for dtype in (np.float32, np.float64):
        ts = nb.io.from_nifti(img, mask=mask_on_example, tr=2.0, dtype=dtype)
        ref = apply_mask(img, mask_on_example, dtype=dtype)
        assert ts.dtype == dtype
        np.testing.assert_array_equal(ts.values, ref)
    keep = mask_on_example.get_fdata() > 0
    np.testing.assert_array_equal(np.column_stack([ts.i, ts.j, ts.k]), np.argwhere(keep))


def test_to_nifti_refuses_like_on_another_affine(example4d):
    """Same shape, other voxel size: the data would be written with the wrong affine."""
    path, img = example4d
    ts = nb.io.from_nifti(path, tr=2.0).isel(voxel=slice(0, 500))
    coarse = nib.Nifti1Image(np.zeros(img.shape[:3], np.float32), img.affine @ np.diag([1.5, 1.5, 1.5, 1.0]))
    with pytest.raises(SchemaError, match=r"(?s)like= is on a different voxel grid than the data: like has shape "
                                          r"\(128, 96, 24\), voxel size \(3.0, 3.0, 3.3\) mm.*the data .* voxel size "
                                          r"\(2.0, 2.0, 2.2\) mm.*resample_to_img"):
        nb.io.to_nifti(ts, like=coarse)
    # without grid attrs, the voxels' x, y, z are compared with like's affine
    bare = ts.copy()
    bare.attrs = {"tr": 2.0}
    with pytest.raises(SchemaError, match=r"(?s)like= is on a different voxel grid.*voxel \(i, j, k\) = \(0, 0, 1\).*"
                                          r"499 of 500 voxels disagree.*resample_to_img"):
        nb.io.to_nifti(bare, like=coarse)
    # the grid the data came from is accepted, with or without attrs
    for da in (ts, bare):
        back = nb.io.to_nifti(da, like=img)
        np.testing.assert_array_equal(back.affine, img.affine)
        np.testing.assert_array_equal(back.get_fdata()[tuple(np.column_stack([ts.i, ts.j, ts.k]).T)],
                                      ts.values.T)


def test_duplicated_voxels_are_refused(example4d):
    ts = nb.io.from_nifti(example4d[0], tr=2.0).isel(voxel=[0, 1, 1])
    with pytest.raises(SchemaError, match=r"duplicated voxel indices \(i, j, k\) \[\(0, 0, 1\)\]"):
        nb.io.to_nifti(ts)


@pytest.fixture(scope="module")
def single_slice(example4d):
    """One axial slice of nibabel's example 4D image: nilearn's EPI mask of it is empty."""
    _, img = example4d
    return img.slicer[:, :, 10:11, :]


def test_single_slice_masker_falls_back_to_varying_voxels(single_slice):
    from nilearn.maskers import NiftiMasker

    data = single_slice.get_fdata()
    varying = data.std(axis=3) > 0
    assert single_slice.shape == (128, 96, 1, 2) and 0 < varying.sum() < varying.size
    with pytest.warns(UserWarning, match=r"(?s)from_nifti: no brain mask could be computed .*\(128, 96, 1, 2\).*"
                                         rf"all {int(varying.sum())} non-constant voxels are used.*Pass mask="):
        ts = nb.io.from_nifti(single_slice, mask=NiftiMasker(mask_strategy="epi", standardize=None), tr=2.0)
    assert ts.sizes == {"time": 2, "voxel": int(varying.sum())}
    np.testing.assert_array_equal(np.column_stack([ts.i, ts.j, ts.k]), np.argwhere(varying))
    np.testing.assert_array_equal(ts.values, data[varying].T.astype(np.float32))
    # an explicit mask is used as given, without a warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        explicit = nb.io.from_nifti(single_slice, mask=nib.Nifti1Image(varying.astype(np.uint8), single_slice.affine),
                                    tr=2.0)
    xr.testing.assert_identical(explicit.drop_attrs(), ts.drop_attrs())


def test_automatic_mask_is_first_level_models_or_falls_back(example4d, single_slice):
    """_automatic_mask (for trial_betas' mask=None) is the mask FirstLevelModel computes, or the fallback."""
    from nilearn.glm.first_level import FirstLevelModel
    from nilearn.masking import compute_multi_epi_mask

    _, img = example4d
    mask = nb.io._nifti._automatic_mask(img)
    np.testing.assert_array_equal(mask.get_fdata(), compute_multi_epi_mask([img]).get_fdata())
    import pandas as pd

    events = pd.DataFrame({"onset": [0.0], "duration": [1.0], "trial_type": ["a"]})
    with np.errstate(divide="ignore", invalid="ignore"):  # a 2-scan GLM: only its mask matters here
        flm = FirstLevelModel(t_r=2.0, drift_model=None, noise_model="ols", minimize_memory=True).fit(img, events=events)
    np.testing.assert_array_equal(mask.get_fdata(), flm.masker_.mask_img_.get_fdata())
    with pytest.warns(UserWarning, match=r"trial_betas: no brain mask .*non-constant voxels.*Pass mask="):
        fallback = nb.io._nifti._automatic_mask(single_slice)
    np.testing.assert_array_equal(fallback.get_fdata() > 0, single_slice.get_fdata().std(axis=3) > 0)
    constant = nib.Nifti1Image(np.ones((4, 4, 1, 3), np.float32), np.eye(4))
    with pytest.raises(SchemaError, match=r"no voxel is non-constant; pass mask="):
        nb.io._nifti._automatic_mask(constant)
