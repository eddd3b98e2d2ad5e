"""nb.io.trial_betas (LSA/LSS through nilearn's FirstLevelModel) on simulated BOLD with planted betas."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import neurobridge as nb
from neurobridge.core import SchemaError

nib = pytest.importorskip("nibabel")
fl = pytest.importorskip("nilearn.glm.first_level")

TR, N_SCANS, N_TRIALS, SHAPE = 1.0, 240, 24, (5, 4, 3)


@pytest.fixture(scope="module")
def sim():
    """BOLD = per-trial regressors (glover HRF) @ planted betas + baseline + noise, on a 5x4x3 grid."""
    rng = np.random.default_rng(0)
    onsets = 6.0 + np.arange(N_TRIALS) * 9.0 + rng.uniform(0, 2, N_TRIALS)
    events = pd.DataFrame({
        "onset": onsets, "duration": 1.0,
        "trial_type": np.where(np.arange(N_TRIALS) % 2, "animal", "object"),
        "stimulus": [f"img{i % 8}" for i in range(N_TRIALS)],
        "run": 1,
    })
    names = [f"t{i:03d}" for i in range(N_TRIALS)]
    frame_times = np.arange(N_SCANS) * TR
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        X = fl.make_first_level_design_matrix(frame_times, events[["onset", "duration"]].assign(trial_type=names),
                                              hrf_model="glover", drift_model=None)[names].to_numpy()
    n_vox = int(np.prod(SHAPE))
    betas = rng.normal(1.0, 1.0, (N_TRIALS, n_vox))
    bold = X @ betas + 100.0 + rng.normal(0, 0.15, (N_SCANS, n_vox))
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    affine[:3, 3] = [-6.0, -4.0, 2.0]
    img = nib.Nifti1Image(bold.T.reshape(*SHAPE, N_SCANS).astype(np.float32), affine)
    mask = nib.Nifti1Image(np.ones(SHAPE, np.uint8), affine)
    return dict(img=img, mask=mask, events=events, betas=betas, X=X, bold=bold)


def _fit(sim, method, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return nb.io.trial_betas(sim["img"], sim["events"], TR, method=method, mask=sim["mask"],
                                 drift_model=None, noise_model="ols", signal_scaling=False, **kw)


@pytest.mark.parametrize("method", ["lsa", "lss"])
def test_recovers_planted_betas(sim, method):
    da = _fit(sim, method)
    nb.core.validate(da, "fmri_responses")
    assert da.dims == ("trial", "voxel") and da.sizes["trial"] == N_TRIALS
    assert da.stimulus.values.tolist() == sim["events"].stimulus.tolist()
    assert da.trial_type.values.tolist() == sim["events"].trial_type.tolist()
    np.testing.assert_array_equal(da.onset.values, sim["events"].onset.values)
    assert da.attrs["method"] == method and da.attrs["tr"] == TR
    # voxel order is C order over the mask: voxel v sits at unravel_index(v, SHAPE)
    ijk = np.column_stack([da.i, da.j, da.k])
    np.testing.assert_array_equal(ijk, np.argwhere(np.ones(SHAPE, bool)))
    truth = sim["betas"]
    r = [np.corrcoef(da.values[:, v], truth[:, v])[0, 1] for v in range(truth.shape[1])]
    assert np.median(r) > 0.9, np.median(r)
    # betas map back to a 4-D image, one volume per trial
    img = nb.io.to_nifti(da)
    assert img.shape == (*SHAPE, N_TRIALS)
    np.testing.assert_allclose(img.get_fdata()[1, 2, 0], da.values[:, np.ravel_multi_index((1, 2, 0), SHAPE)])


def test_lsa_matches_closed_form_ols(sim):
    """LSA with OLS and no scaling equals the float64 least-squares solution on the same design."""
    da = _fit(sim, "lsa")
    X = np.column_stack([sim["X"], np.ones(N_SCANS)])
    ref = np.linalg.lstsq(X, sim["img"].get_fdata().reshape(-1, N_SCANS).T, rcond=None)[0][:N_TRIALS]
    np.testing.assert_allclose(da.values, ref, rtol=1e-4, atol=1e-4)


def test_lss_matches_closed_form_ols(sim):
    """LSS: trial i is one regressor, the other trials are grouped by trial_type (two regressors)."""
    da = _fit(sim, "lss")
    Y = sim["img"].get_fdata().reshape(-1, N_SCANS).T
    types = sim["events"].trial_type.to_numpy()
    for i in (0, 7, N_TRIALS - 1):
        others = [sim["X"][:, (types == t) & (np.arange(N_TRIALS) != i)].sum(axis=1) for t in ("object", "animal")]
        X = np.column_stack([sim["X"][:, i], *others, np.ones(N_SCANS)])
        ref = np.linalg.lstsq(X, Y, rcond=None)[0][0]
        np.testing.assert_allclose(da.values[i], ref, rtol=1e-4, atol=1e-4)


def test_stimulus_falls_back_to_trial_type_and_align(sim):
    events = sim["events"].drop(columns="stimulus")
    da = nb.io.trial_betas(sim["img"], events, TR, mask=sim["mask"], noise_model="ols", drift_model=None)
    assert da.stimulus.values.tolist() == events.trial_type.tolist()
    acts = nb.core.activations(np.eye(2), stimulus=["animal", "object"])
    aligned = nb.core.align(da, acts)
    assert aligned.features.sizes["trial"] == N_TRIALS


def test_bad_events_raise(sim, tmp_path):
    ev = sim["events"]
    with pytest.raises(SchemaError, match="lack column"):
        nb.io.trial_betas(sim["img"], ev.drop(columns="onset"), TR, mask=sim["mask"])
    with pytest.raises(SchemaError, match="neither a 'stimulus' nor a 'trial_type'"):
        nb.io.trial_betas(sim["img"], ev.drop(columns=["stimulus", "trial_type"]), TR, mask=sim["mask"])
    bad = ev.copy()
    bad.loc[3, "onset"] = np.nan
    with pytest.raises(SchemaError, match="NaN/inf"):
        nb.io.trial_betas(sim["img"], bad, TR, mask=sim["mask"])
    with pytest.raises(SchemaError, match="after the end of the run"):
        nb.io.trial_betas(sim["img"], ev.assign(onset=ev.onset * 10), TR, mask=sim["mask"])
    with pytest.raises(SchemaError, match="4-D image"):
        nb.io.trial_betas(sim["mask"], ev, TR)
    other = nib.Nifti1Image(np.ones((5, 4, 4), np.uint8), sim["mask"].affine)
    with pytest.raises(SchemaError, match="different voxel grid"):
        nb.io.trial_betas(sim["img"], ev, TR, mask=other)
    with pytest.raises(FileNotFoundError, match="missing_bold"):
        nb.io.trial_betas(tmp_path / "missing_bold.nii.gz", ev, TR)
    with pytest.raises(ValueError, match="'lsa' or 'lss'"):
        nb.io.trial_betas(sim["img"], ev, TR, method="lsx")


def test_lss_matches_nilearn_first_level_refits(sim):
    """LSS (data masked once) equals refitting nilearn's FirstLevelModel per trial, with nilearn's defaults
    (AR(1) noise, cosine drift, percent-signal scaling) and confounds."""
    rng = np.random.default_rng(3)
    confounds = pd.DataFrame({"motion_x": rng.normal(size=N_SCANS), "motion_y": rng.normal(size=N_SCANS)})
    ev = sim["events"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        da = nb.io.trial_betas(sim["img"], ev, TR, method="lss", mask=sim["mask"], confounds=confounds)
        codes = pd.factorize(ev.trial_type)[0]
        for i in (0, 5, N_TRIALS - 1):
            labels = np.array([f"other{c}" for c in codes], dtype=object)
            labels[i] = "target"
            glm = fl.FirstLevelModel(t_r=TR, mask_img=sim["mask"], minimize_memory=True).fit(
                sim["img"], events=ev[["onset", "duration"]].assign(trial_type=labels), confounds=[confounds])
            ref = glm.masker_.transform(glm.compute_contrast("target", output_type="effect_size")).ravel()
            np.testing.assert_allclose(da.values[i], ref, rtol=1e-5, atol=1e-5)


def test_lsa_matches_nilearn_contrasts(sim):
    """LSA betas equal nilearn's compute_contrast effect-size maps (AR(1), cosine drift, scaling)."""
    ev = sim["events"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        da = nb.io.trial_betas(sim["img"], ev, TR, method="lsa", mask=sim["mask"])
        names = [f"tr{i:03d}" for i in range(N_TRIALS)]
        glm = fl.FirstLevelModel(t_r=TR, mask_img=sim["mask"]).fit(
            sim["img"], events=ev[["onset", "duration"]].assign(trial_type=names))
    for i in (0, 11, N_TRIALS - 1):
        ref = glm.masker_.transform(glm.compute_contrast(names[i], output_type="effect_size")).ravel()
        np.testing.assert_allclose(da.values[i], ref, rtol=1e-5, atol=1e-5)


def test_single_slice_bold_falls_back_to_varying_voxels():
    """nilearn computes an empty mask for a single slice; trial_betas uses the varying voxels and says so."""
    rng = np.random.default_rng(0)
    data = (rng.normal(size=(10, 10, 1, 40)) + 100).astype("float32")
    data[:2] = 0
    bold = nib.Nifti1Image(data, np.diag([3.0, 3.0, 3.0, 1.0]))
    ev = pd.DataFrame({"onset": [4.0, 20.0, 40.0], "duration": 1.0, "trial_type": ["a", "b", "a"]})
    with pytest.warns(UserWarning, match=r"trial_betas: no brain mask .*all 80 non-constant voxels.*Pass mask="):
        betas = nb.io.trial_betas(bold, ev, tr=2.0, noise_model="ols")
    assert betas.sizes == {"trial": 3, "voxel": 80}
    mask = nib.Nifti1Image((data.std(axis=3) > 0).astype("uint8"), bold.affine)
    xr.testing.assert_identical(betas, nb.io.trial_betas(bold, ev, tr=2.0, noise_model="ols", mask=mask))
