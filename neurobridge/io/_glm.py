"""Single-trial fMRI responses (betas) through nilearn's first-level GLM: LSA and LSS."""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from neurobridge.core import SchemaError, optional_import, progress_bar
from neurobridge.core import fmri_responses as _fmri_responses

from ._nifti import (
    _automatic_mask,
    _grid,
    _grid_error,
    _header_tr,
    _same_grid,
    load_img,
    voxel_coords,
)

__all__ = ["trial_betas"]

logger = logging.getLogger("neurobridge")

_TARGET = "nbtarget"


def _check_events(events, n_scans: int, tr: float) -> pd.DataFrame:
    if isinstance(events, str) or hasattr(events, "__fspath__"):
        from pathlib import Path

        path = Path(events)
        if not path.exists():
            raise FileNotFoundError(f"events file not found: {path}")
        events = pd.read_csv(path, sep="\t" if path.suffix in (".tsv", ".txt") else ",")
    if not isinstance(events, pd.DataFrame):
        raise TypeError(f"events must be a pandas DataFrame (onset, duration, trial_type|stimulus), got {type(events).__name__}")
    missing = [c for c in ("onset", "duration") if c not in events.columns]
    if missing:
        raise SchemaError(f"events lack column(s) {missing}; expected onset and duration (s) plus trial_type or stimulus "
                          f"(found {list(events.columns)})")
    if "trial_type" not in events.columns and "stimulus" not in events.columns:
        raise SchemaError("events have neither a 'stimulus' nor a 'trial_type' column; add one naming each trial's stimulus")
    if len(events) == 0:
        raise SchemaError("events table is empty; nothing to estimate")
    ev = events.reset_index(drop=True).copy()
    for col in ("onset", "duration"):
        vals = pd.to_numeric(ev[col], errors="coerce").to_numpy(dtype=float)
        if not np.all(np.isfinite(vals)):
            bad = np.flatnonzero(~np.isfinite(vals))[:5].tolist()
            raise SchemaError(f"events column {col!r} has NaN/inf or non-numbers at rows {bad}; fix or drop those rows")
        ev[col] = vals
    end = n_scans * tr
    late = np.flatnonzero(ev["onset"].to_numpy() >= end)
    if len(late):
        raise SchemaError(f"{len(late)} event(s) start after the end of the run ({end:g} s = {n_scans} scans x TR {tr:g} s), "
                          f"rows {late[:5].tolist()}; check the TR and that onsets are in seconds")
    return ev


def trial_betas(
    bold_img, events: pd.DataFrame, tr: float | None = None, *, method: str = "lsa", mask=None,
    hrf_model: str = "glover", drift_model: str | None = "cosine", high_pass: float = 0.01,
    noise_model: str = "ar1", signal_scaling: int | bool = 0, confounds: pd.DataFrame | None = None, smoothing_fwhm: float | None = None,
    dtype=np.float32, progress: bool | None = None,
) -> xr.DataArray:
    """Estimate one response (beta) per trial with nilearn's ``FirstLevelModel``.

    Parameters
    ----------
    bold_img : path or nibabel 4-D image
        One run of BOLD data.
    events : pandas.DataFrame or path to a .tsv
        One row per trial: ``onset`` and ``duration`` (s), and ``stimulus`` and/or ``trial_type``.
    tr : float, optional
        Repetition time (s); default from the header.
    method : {"lsa", "lss"}
        ``"lsa"`` (least-squares-all): one GLM with a regressor per trial. ``"lss"`` (least-squares-separate,
        Mumford et al. 2012): one GLM per trial, with the trial as one regressor and the other trials
        grouped by ``trial_type`` (or ``stimulus``).
    mask : path or nibabel image, optional
        Brain mask on the BOLD grid. Default: the mask nilearn's ``FirstLevelModel`` computes from the data;
        where that is empty (a single-slice or partial-coverage acquisition, e.g. shape ``(X, Y, 1, T)``),
        every voxel that varies over time, with a ``UserWarning`` saying so. Pass ``mask=`` to choose.
    hrf_model, drift_model, high_pass, noise_model, signal_scaling, confounds, smoothing_fwhm
        Passed to ``FirstLevelModel`` / ``fit``. With nilearn's default ``signal_scaling=0`` the betas are in
        percent signal change; ``signal_scaling=False`` keeps the data's units.
    dtype : numpy dtype
        Data type of the betas.
    progress : bool, optional
        Progress bar over the LSS trials (LSA is a single fit): ``True``/``False``; ``None`` (default,
        automatic) shows it only when someone watches: stderr is a terminal or Jupyter, and ``TQDM_DISABLE``
        is unset (:func:`neurobridge.core.progress_enabled`; ``nb.config_context(progress=...)`` sets the
        default).

    Returns
    -------
    xr.DataArray
        ``fmri_responses`` with dims ``(trial, voxel)``: ``stimulus`` coord from the ``stimulus`` column
        (else ``trial_type``), the other event columns as trial coords, voxel coords ``i, j, k, x, y, z``,
        attrs ``tr``, ``method``, ``hrf_model``, ``affine``, ``shape``.

    Raises
    ------
    SchemaError
        Missing event columns, NaN onsets, events after the end of the run, 3-D image.

    Examples
    --------
    >>> import nibabel as nib, numpy as np, pandas as pd
    >>> bold = nib.Nifti1Image(np.random.rand(3, 3, 3, 40).astype("float32") + 100, np.eye(4))
    >>> ev = pd.DataFrame({"onset": [4.0, 20.0], "duration": 1.0, "trial_type": ["a", "b"]})
    >>> betas = trial_betas(bold, ev, tr=2.0, mask=nib.Nifti1Image(np.ones((3, 3, 3), "uint8"), np.eye(4)),
    ...                     noise_model="ols")
    >>> betas.dims, betas.stimulus.values.tolist()
    (('trial', 'voxel'), ['a', 'b'])
    """
    fl = optional_import("nilearn.glm.first_level", purpose="single-trial betas")
    if method not in ("lsa", "lss"):
        raise ValueError(f"method must be 'lsa' or 'lss', got {method!r}")
    img = load_img(bold_img)
    if len(img.shape) != 4:
        raise SchemaError(f"bold_img must be a 4-D image (x, y, z, time), got shape {img.shape}")
    n_scans = int(img.shape[3])
    if tr is None:
        tr = _header_tr(img)
        if tr is None:
            raise SchemaError("the BOLD header has no TR; pass tr=... in seconds")
    tr = float(tr)
    if mask is None:
        mask = _automatic_mask(img, "trial_betas")  # nilearn's EPI mask, or every non-constant voxel (warns)
    else:
        mimg = load_img(mask)
        if not _same_grid(_grid(mimg), _grid(img)):
            raise _grid_error("mask", _grid(mimg), _grid(img),
                              "resample it with nilearn.image.resample_to_img(mask, bold, interpolation='nearest')")
    ev = _check_events(events, n_scans, tr)
    stim_col = "stimulus" if "stimulus" in ev.columns else "trial_type"
    groups = ev["trial_type"] if "trial_type" in ev.columns else ev["stimulus"]
    group_codes = pd.factorize(groups.astype(str))[0]
    n = len(ev)
    names = [f"trial{i:05d}" for i in range(n)]
    conf = [confounds] if confounds is not None else None

    def fit(design):
        with warnings.catch_warnings():
            # nilearn notes that it uses the given mask instead of computing one: expected here
            warnings.filterwarnings("ignore", message=".*Generation of a mask has been requested.*")
            return model().fit(img, events=design, confounds=conf)

    def model():
        return fl.FirstLevelModel(t_r=tr, mask_img=mask, hrf_model=hrf_model, drift_model=drift_model,
                                  high_pass=high_pass, noise_model=noise_model, signal_scaling=signal_scaling, smoothing_fwhm=smoothing_fwhm,
                                  minimize_memory=True)

    base = ev[["onset", "duration"]].copy()
    betas: list[np.ndarray] = []
    if method == "lsa":
        design = base.assign(trial_type=names)
        glm = fit(design)
        betas.extend(_effects(glm, names))
    else:
        glm = None
        fast = _lss_engine(fl)
        Y = None
        for i in progress_bar(range(n), desc="lss trials", progress=progress, unit="trial"):
            labels = np.array([f"other{c:04d}" for c in group_codes], dtype=object)
            labels[i] = _TARGET
            design = base.assign(trial_type=labels)
            if glm is None or fast is None:
                # nilearn's FirstLevelModel end to end (masking, scaling, design, GLM, contrast)
                glm = fit(design)
                betas.extend(_effects(glm, [_TARGET]))
                continue
            if Y is None:
                # the same steps as FirstLevelModel.fit, with the data masked and scaled once for all trials
                Y = glm.masker_.transform(img)
                if signal_scaling is not False:
                    Y, _ = fast["mean_scaling"](Y, signal_scaling)
            X = fl.make_first_level_design_matrix(
                np.linspace(0.0, (n_scans - 1) * tr, n_scans), design, hrf_model=hrf_model, drift_model=drift_model, high_pass=high_pass,
                add_regs=None if confounds is None else np.asarray(confounds, dtype=float),
                add_reg_names=None if confounds is None else _confound_names(confounds))
            glm_labels, results = fl.run_glm(Y, X.to_numpy(), noise_model=noise_model)
            con = (X.columns == _TARGET).astype(float)
            betas.append(np.asarray(fast["compute_contrast"](glm_labels, results, con, stat_type="t").effect_size())
                         .reshape(-1))
    data = np.stack(betas).astype(dtype)
    masker = glm.masker_
    mimg = load_img(masker.mask_img_)
    shape, affine = _grid(mimg)
    keep = np.asanyarray(mimg.dataobj).reshape(shape) != 0
    if keep.sum() != data.shape[1]:
        raise RuntimeError(f"GLM returned {data.shape[1]} voxels but its mask has {int(keep.sum())}")
    trial_coords: dict[str, Any] = {}
    for col in ev.columns:
        if col == "stimulus":
            continue
        vals = ev[col].to_numpy()
        trial_coords[str(col)] = np.array([str(v) for v in vals]) if vals.dtype == object else vals
    stim = ev[stim_col].to_numpy()
    stim = np.array([str(v) for v in stim]) if stim.dtype == object else stim
    attrs = {"tr": tr, "method": method, "hrf_model": str(hrf_model), "noise_model": noise_model,
             "affine": [float(v) for v in affine.ravel()], "shape": list(shape),
             "source": str(getattr(img, "get_filename", lambda: None)() or "nibabel image")}
    return _fmri_responses(data, stimulus=stim, voxel_coords=voxel_coords(np.argwhere(keep), affine),
                           trial_coords=trial_coords, attrs=attrs)


def _lss_engine(fl) -> dict | None:
    """nilearn pieces for LSS without re-masking the data for every trial (None: refit FirstLevelModel)."""
    try:
        from nilearn.glm import compute_contrast
        from nilearn.glm.first_level.first_level import mean_scaling
    except ImportError:  # pragma: no cover - older/newer nilearn layouts
        return None
    if not hasattr(fl, "run_glm"):
        return None
    return {"compute_contrast": compute_contrast, "mean_scaling": mean_scaling}


def _confound_names(confounds) -> list[str]:
    if isinstance(confounds, pd.DataFrame):
        return [str(c) for c in confounds.columns]
    return [f"confound_{i}" for i in range(np.asarray(confounds).shape[1])]


def _effects(glm, names: list[str]) -> np.ndarray:
    """Effect sizes (betas) of design columns ``names`` of a fitted one-run ``FirstLevelModel``: (n_names, n_voxels).

    The effect of a unit contrast on column j is row j of the GLM parameters ``theta`` of each voxel group, which
    is what ``compute_contrast(..., output_type="effect_size")`` computes one column at a time.
    """
    columns = list(glm.design_matrices_[0].columns)
    missing = [n for n in names if n not in columns]
    if missing:
        raise RuntimeError(f"design matrix lacks columns {missing[:5]}")
    idx = [columns.index(n) for n in names]
    labels = np.asarray(glm.labels_[0])
    out = np.empty((len(names), labels.shape[0]), dtype=np.float64)
    for label, result in glm.results_[0].items():
        sel = labels == label
        out[:, sel] = np.asarray(result.theta)[idx]
    return out
