"""Bridges between neurobridge containers and MNE (Raw/Epochs/Evoked), nilearn/nibabel (NIfTI) and BIDS.

Examples
--------
>>> import mne, numpy as np, neurobridge as nb
>>> info = mne.create_info(["Cz", "Pz"], 100.0, "eeg")
>>> raw = mne.io.RawArray(np.zeros((2, 50)), info, verbose=False)
>>> nb.io.from_mne(raw).dims
('channel', 'time')
"""

from ._bids import read_bids
from ._glm import trial_betas
from ._mne import channel_info, from_mne, to_mne
from ._nifti import from_nifti, load_img, to_nifti, voxel_coords

__all__ = ["from_mne", "to_mne", "channel_info", "from_nifti", "to_nifti", "load_img", "voxel_coords",
           "trial_betas", "read_bids"]
