"""Loader for the Kriegeskorte et al. (2008) 92-image data (rsatoolbox ``demos/92imageData``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from neurobridge.core import SchemaError, rdm, validate

from ._bundle import DatasetBundle
from ._cards import get_card
from ._fetch import fetch

__all__ = ["load_kriegeskorte92", "STIMULUS_IDS", "SUBJECTS"]

STIMULUS_IDS = np.array([f"img{i:02d}" for i in range(92)])
"""Stimulus ids: ``img00`` .. ``img91``, the order of ``stimuli_92objs`` in the supplemental file."""
SUBJECTS = ("BE", "KO", "SN", "TI")


def _str(x) -> str:
    arr = np.asarray(x).ravel()
    return str(arr[0]) if arr.size else ""


def _loadmat(path: Path) -> dict:
    import scipy.io

    try:
        return scipy.io.loadmat(path)
    except Exception as err:  # noqa: BLE001 - re-raised with context
        raise ValueError(f"could not read {path} as a MATLAB file ({err}); delete it and fetch it again") from err


def _field(mat: dict, key: str, path: Path):
    if key not in mat:
        raise ValueError(f"{path.name}: expected variable {key!r}, found {sorted(k for k in mat if not k.startswith('__'))}")
    return mat[key]


def _squares(structs, path: Path) -> tuple[np.ndarray, list[str]]:
    mats, names = [], []
    for s in np.asarray(structs).ravel():
        m = np.asarray(s["RDM"], dtype=np.float64)
        if m.ndim == 2 and 1 in m.shape:  # condensed (pdist order)
            from scipy.spatial.distance import squareform

            m = squareform(m.ravel(), checks=False)
        if m.shape != (92, 92):
            raise ValueError(f"{path.name}: expected 92x92 RDMs, found {m.shape} for {_str(s['name'])!r}")
        mats.append(m)
        names.append(_str(s["name"]))
    return np.stack(mats), names


def read_stimuli(path: Path) -> xr.DataArray:
    """The 92 images with labels from ``Kriegeskorte_Neuron2008_supplementalData.mat``."""
    mat = _loadmat(path)
    objs = np.asarray(_field(mat, "stimuli_92objs", path)).ravel()
    if objs.shape[0] != 92:
        raise ValueError(f"{path.name}: expected 92 stimuli, found {objs.shape[0]}")
    images = np.stack([np.asarray(o["image"], dtype=np.uint8) for o in objs])
    if images.shape[1:] != (175, 175, 3):
        raise ValueError(f"{path.name}: expected 175x175x3 images, found {images.shape[1:]}")
    coords: dict = {"stimulus": STIMULUS_IDS.copy(),
                    "category": ("stimulus", np.array([_str(o["category"]) for o in objs]))}
    for key in ("human", "face", "animal", "natural"):
        coords[key] = ("stimulus", np.array([bool(np.asarray(o[key]).ravel()[0]) for o in objs]))
    if "categoryVectors" in mat and "categoryLabels" in mat:
        vec = np.asarray(mat["categoryVectors"]).astype(bool)
        labels = [_str(x) for x in np.asarray(mat["categoryLabels"]).ravel()]
        for j, lab in enumerate(labels):
            coords[f"is_{lab}"] = ("stimulus", vec[:, j])
    return xr.DataArray(images, dims=("stimulus", "height", "width", "color"), coords=coords,
                        attrs={"source": "Kriegeskorte et al. 2008", "description": "92 object images, RGB uint8"})


def _rdm(values, *, dims=(), coords=None, attrs=None) -> xr.DataArray:
    return rdm(values, stimulus=STIMULUS_IDS, dims=dims, coords=coords, metric="correlation", attrs=attrs)


def load_kriegeskorte92(*, data_dir=None, download: bool = True, progress: bool | None = None) -> DatasetBundle:
    """Load the 92-image data: images, human-IT, monkey-IT, model and behavioural RDMs.

    Returns
    -------
    DatasetBundle
        - ``brain["hit"]``: rdm, dims ``(subject, session, stimulus, stimulus2)``, 4 x 2 x 92 x 92
          (subjects BE, KO, SN, TI; sessions 1, 2), 1 - Pearson r over 316 IT voxels.
        - ``brain["mit"]``: rdm ``(stimulus, stimulus2)``, monkey IT, 674 neurons (Kiani et al. 2007).
        - ``stimuli``: uint8 ``(stimulus, height, width, color)`` 92 x 175 x 175 x 3 with coords
          ``category``, ``human``, ``face``, ``animal``, ``natural`` (bool) and ``is_<label>`` for the
          12 category vectors.
        - ``extras["hit_fig1"]``: the group human-IT RDM of figure 1 (the mean of the 8 ``hit`` RDMs).
        - ``extras["models"]``: rdm ``(model, stimulus, stimulus2)``, 8 model RDMs.
        - ``extras["behaviour"]``: rdm ``(subject, stimulus, stimulus2)``, 16 similarity-judgement RDMs.

        Stimulus ids are ``"img00"`` .. ``"img91"`` everywhere; every RDM also carries the ``category`` coord on
        ``stimulus``.
    """
    card = get_card("kriegeskorte92")
    paths = fetch(card.name, data_dir=data_dir, download=download, progress=progress)
    supp = paths["Kriegeskorte_Neuron2008_supplementalData.mat"]
    stimuli = read_stimuli(supp)

    mat = _loadmat(supp)
    fig1, fig1_names = _squares(_field(mat, "RDMs_mIT_hIT_fig1", supp), supp)
    by_name = dict(zip(fig1_names, fig1, strict=True))
    mit_key = next((n for n in fig1_names if n.startswith("mIT")), None)
    hit_key = next((n for n in fig1_names if n.startswith("hIT")), None)
    if mit_key is None or hit_key is None:
        raise ValueError(f"{supp.name}: expected mIT and hIT RDMs in RDMs_mIT_hIT_fig1, found {fig1_names}")
    mit = _rdm(by_name[mit_key], attrs={"source": "Kiani et al. 2007", "modality": "electrophysiology",
                                          "description": mit_key})
    hit_fig1 = _rdm(by_name[hit_key], attrs={"source": "Kriegeskorte et al. 2008", "modality": "fmri",
                                             "description": hit_key})

    bpath = paths["92_brainRDMs.mat"]
    brain_structs = np.asarray(_field(_loadmat(bpath), "RDMs", bpath))
    if brain_structs.shape[-2:] != (4, 2):
        raise ValueError(f"{bpath.name}: expected 4 subjects x 2 sessions of RDMs, found shape {brain_structs.shape}")
    hit_vals = np.empty((4, 2, 92, 92))
    for s in range(4):
        vals, names = _squares(brain_structs[..., s, :].ravel(), bpath)
        for j in range(2):
            if SUBJECTS[s] not in names[j] or f"Session: {j + 1}" not in names[j]:
                raise ValueError(f"{bpath.name}: expected subject {SUBJECTS[s]} session {j + 1}, found {names[j]!r}")
        hit_vals[s] = vals
    hit = _rdm(hit_vals, dims=("subject", "session"), coords={"subject": list(SUBJECTS), "session": [1, 2]},
               attrs={"source": "Kriegeskorte et al. 2008", "modality": "fmri", "roi": "hIT (316 voxels)"})

    mpath = paths["92_modelRDMs.mat"]
    mvals, mnames = _squares(_field(_loadmat(mpath), "Models", mpath), mpath)
    models = _rdm(mvals, dims=("model",), coords={"model": mnames})

    hpath = paths["92_behavRDMs.mat"]
    hvals, hnames = _squares(_field(_loadmat(hpath), "rdms_behav_92", hpath), hpath)
    behaviour = _rdm(hvals, dims=("subject",), coords={"subject": [n.split("|")[-1].strip() for n in hnames]},
                     attrs={"description": "similarity judgements (Mur et al. 2013)"})

    labels = {"category": ("stimulus", stimuli["category"].values)}
    hit, mit, hit_fig1, models, behaviour = (da.assign_coords(labels) for da in (hit, mit, hit_fig1, models, behaviour))
    for da in (hit, mit, hit_fig1, models, behaviour):
        validate(da, "rdm")
    if not np.array_equal(stimuli["stimulus"].values, hit["stimulus"].values):
        raise SchemaError("kriegeskorte92: stimulus ids of images and RDMs differ")  # pragma: no cover
    return DatasetBundle(name=card.name, card=card, brain={"hit": hit, "mit": mit}, stimuli=stimuli,
                         extras={"hit_fig1": hit_fig1, "models": models, "behaviour": behaviour})
