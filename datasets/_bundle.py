"""What :func:`neurobridge.datasets.load` returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import xarray as xr

from ._cards import DatasetCard

__all__ = ["DatasetBundle"]


@dataclass(frozen=True)
class DatasetBundle:
    """Brain data, the stimuli that evoked it, extras, and the dataset card.

    Every array that has a ``stimulus`` dim or coordinate uses the same stimulus ids as :attr:`stimuli`,
    so ``xr.align(bundle.brain[key], activations, join="inner")`` pairs them.
    """

    name: str
    """Registry name of the dataset."""
    card: DatasetCard
    """The dataset card (provenance, license, files)."""
    brain: dict[str, xr.DataArray]
    """Brain data as validated containers (``rdm``, ``evoked``, ``eeg_epochs``, ``fmri_timeseries`` ...)."""
    stimuli: xr.DataArray
    """Stimuli with a ``stimulus`` dim: uint8 images ``(stimulus, height, width, color)`` or strings
    ``(stimulus,)``; labels and metadata are coordinates on ``stimulus``."""
    extras: dict[str, xr.DataArray] = field(default_factory=dict)
    """Other arrays (model RDMs, behavioural RDMs, envelopes, events ...)."""

    def __repr__(self) -> str:
        def fmt(d: dict) -> str:
            return ", ".join(f"{k}: {dict(v.sizes)}" for k, v in d.items()) or "-"

        return (f"DatasetBundle({self.name!r}; brain: {fmt(self.brain)}; stimuli: {dict(self.stimuli.sizes)} "
                f"{self.stimuli.dtype}; extras: {fmt(self.extras)})")
