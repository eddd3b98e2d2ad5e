"""What :func:`neurobridge.models.load` returns: a model with what it takes to feed it stimuli."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch

__all__ = ["LoadedModel"]


class LoadedModel(NamedTuple):
    """A torch model ready for :func:`neurobridge.extract.activations`."""

    name: str
    """Canonical spec the model was loaded from (registry name, HF id, ``file.py:build_fn``)."""
    module: torch.nn.Module
    """The network, in eval mode."""
    preprocess: Callable[[Sequence[Any]], Any] | None
    """Turns a batch of raw stimuli (uint8 HxWx3 images, strings) into the model's input (a tensor or a
    dict of tensors for HF models); ``None`` when stimuli are already model inputs."""
    modality: str
    """``"vision"``, ``"text"`` or ``"other"``."""
    tokenizer: Any = None
    """HF tokenizer for text models (used for attention masks and word-level pooling)."""
    default_layers: tuple[str, ...] = ()
    """Glob patterns of the layers worth comparing with brain data (e.g. ``("blocks.*",)``), in depth order;
    empty means every leaf module."""
