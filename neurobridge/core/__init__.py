"""Vocabulary of neurobridge: schemas, factories, alignment, the ``nb`` accessor, storage and config.

Examples
--------
>>> import numpy as np, neurobridge as nb
>>> brain = nb.core.fmri_responses(np.random.rand(6, 10), stimulus=list("abcabc"))
>>> acts = nb.core.activations(np.random.rand(3, 4), stimulus=list("abc"))
>>> nb.core.align(brain, acts).features.dims
('trial', 'unit')
"""

from . import _accessor  # noqa: F401  (registers the .nb accessor)
from ._align import Aligned, align, average_repetitions, expand_to_trials, stimulus_ids
from ._checks import check_finite, check_unique
from ._config import (
    Config,
    Workspace,
    all_finite,
    as_tensor,
    config_context,
    cpu_threads,
    eigh_many,
    get_config,
    resolve_device,
    resolve_dtype,
    side_by_side,
)
from ._factories import (
    activations,
    eeg_epochs,
    eeg_raw,
    evoked,
    fmri_responses,
    fmri_timeseries,
    rdm,
)
from ._optional import optional_import
from ._progress import progress_bar, progress_enabled
from ._schemas import SCHEMAS, SchemaError, validate
from ._storage import StoreError, load, save

__all__ = [
    "Aligned", "align", "average_repetitions", "expand_to_trials", "stimulus_ids",
    "Config", "Workspace", "all_finite", "as_tensor", "config_context", "cpu_threads", "eigh_many", "get_config", "resolve_device", "resolve_dtype",
    "side_by_side",
    "activations", "eeg_epochs", "eeg_raw", "evoked", "fmri_responses", "fmri_timeseries", "rdm",
    "optional_import", "progress_bar", "progress_enabled", "SCHEMAS", "SchemaError", "check_finite", "check_unique", "validate", "load", "save", "StoreError",
]
