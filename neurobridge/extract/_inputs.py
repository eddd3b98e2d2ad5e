"""Adapters: from a model (LoadedModel or bare module) and raw stimuli to model inputs, masks and word ids."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
import xarray as xr

from ..core import SchemaError, check_unique

__all__ = ["ModelContext", "model_context", "Stimuli", "as_stimuli", "Batch", "prepare_batch"]


def _is_sentence_transformer(module: torch.nn.Module) -> bool:
    return any(c.__name__ == "SentenceTransformer" for c in type(module).__mro__)


@dataclass
class ModelContext:
    """Everything needed to run a model on raw stimuli."""

    name: str
    module: torch.nn.Module
    preprocess: Callable | None
    tokenizer: Any
    modality: str
    default_layers: tuple[str, ...]
    device: torch.device
    sentence_transformer: bool = False

    @contextlib.contextmanager
    def activated(self) -> Iterator[None]:
        """Eval mode on the target device for the duration; training flags and device restored afterwards."""
        module = self.module
        flags = {m: m.training for m in module.modules()}
        original = _module_device(module)
        moved = original is not None and original != self.device
        try:
            if moved:
                module.to(self.device)
            module.eval()
            yield
        finally:
            for m, flag in flags.items():
                m.training = flag
            if moved:
                module.to(original)

    def forward(self, inputs: Any) -> Any:
        inputs = _to_device(inputs, self.device)
        if isinstance(inputs, Mapping):
            if self.sentence_transformer:
                return self.module(dict(inputs))
            return self.module(**inputs)
        if isinstance(inputs, tuple | list):
            return self.module(*inputs)
        return self.module(inputs)


def _module_device(module: torch.nn.Module) -> torch.device | None:
    for p in module.parameters():
        return p.device
    for b in module.buffers():
        return b.device
    return None


def _to_device(x: Any, device: torch.device) -> Any:
    if isinstance(x, torch.Tensor):
        return x.to(device, non_blocking=True)
    if isinstance(x, Mapping):
        return {k: _to_device(v, device) for k, v in x.items()}
    if isinstance(x, tuple | list):
        return type(x)(_to_device(v, device) for v in x)
    return x


def model_context(model: Any, *, preprocess: Callable | None = None, tokenizer: Any = None,
                  device: str | torch.device | None = None) -> ModelContext:
    """Unpack a :class:`~neurobridge.models.LoadedModel` or a bare ``nn.Module`` (explicit arguments win)."""
    if isinstance(model, torch.nn.Module):
        module, name, modality, default = model, type(model).__name__, None, ()
        pre, tok = None, None
    elif hasattr(model, "module") and isinstance(getattr(model, "module", None), torch.nn.Module):
        module, name = model.module, str(model.name)
        modality, default = getattr(model, "modality", None), tuple(getattr(model, "default_layers", ()) or ())
        pre, tok = getattr(model, "preprocess", None), getattr(model, "tokenizer", None)
    else:
        raise TypeError(f"model must be a neurobridge LoadedModel (nb.models.load(...)) or a torch.nn.Module, "
                        f"got {type(model).__name__}")
    st = _is_sentence_transformer(module)
    pre = preprocess if preprocess is not None else pre
    tok = tokenizer if tokenizer is not None else tok
    if tok is None and st:
        tok = getattr(module, "tokenizer", None)
    if modality is None:
        modality = "text" if tok is not None else "other"
    if device is None:
        dev = _module_device(module) or torch.device("cpu")
    else:
        dev = torch.device(device)
    return ModelContext(name, module, pre, tok, modality, default, dev, st)


class Stimuli(NamedTuple):
    """Raw stimuli with their ids; ``batch(i, j)`` returns the raw stimuli ``i:j``."""

    ids: np.ndarray
    data: Any
    kind: str
    """``"text"``, ``"array"`` (numeric numpy/xarray), ``"tensor"`` or ``"objects"``."""

    def __len__(self) -> int:
        return len(self.ids)

    def batch(self, start: int, stop: int) -> Any:
        if isinstance(self.data, xr.DataArray):
            values = self.data.isel(stimulus=slice(start, stop)).values
            return [str(v) for v in values] if self.kind == "text" else values
        part = self.data[start:stop]
        if self.kind == "text":
            return [str(v) for v in part]
        return part


def as_stimuli(stimuli: Any, stimulus: Sequence | None = None) -> Stimuli:
    """Normalise ``stimuli`` (DataArray with a ``stimulus`` dim, or a sequence + ids) and check the ids."""
    if isinstance(stimuli, xr.DataArray):
        if "stimulus" not in stimuli.dims:
            raise SchemaError(f"stimuli has dims {stimuli.dims} but no 'stimulus' dim; rename the dim of the stimuli "
                              "(e.g. da.rename(image='stimulus')) or pass a sequence with stimulus=ids")
        if stimuli.dims[0] != "stimulus":
            stimuli = stimuli.transpose("stimulus", ...)
        ids = np.asarray(stimuli["stimulus"].values) if "stimulus" in stimuli.coords else None
        if stimulus is not None:
            ids = np.asarray(stimulus)
        if ids is None:
            ids = np.arange(stimuli.sizes["stimulus"])
        dtype = stimuli.dtype
        kind = "text" if dtype.kind in "USO" else "array"
        data = stimuli
        n = stimuli.sizes["stimulus"]
    else:
        if isinstance(stimuli, str):
            raise TypeError("stimuli is a single string; pass a list of strings, e.g. ['cat', 'dog']")
        if isinstance(stimuli, torch.Tensor):
            data, kind = stimuli, "tensor"
        elif isinstance(stimuli, np.ndarray):
            data = stimuli
            kind = "text" if stimuli.dtype.kind in "US" or stimuli.dtype == object and stimuli.size and isinstance(
                stimuli.flat[0], str) else "array"
        elif isinstance(stimuli, Sequence):
            data = list(stimuli)
            kind = "text" if data and all(isinstance(s, str) for s in data) else "objects"
            if kind == "objects" and data and all(isinstance(s, np.ndarray) for s in data):
                shapes = {s.shape for s in data}
                if len(shapes) == 1:
                    data, kind = np.stack(data), "array"
        else:
            raise TypeError(f"stimuli must be an xr.DataArray with a 'stimulus' dim or a sequence (list of strings, "
                            f"array, tensor), got {type(stimuli).__name__}")
        n = len(data)
        if stimulus is not None:
            ids = np.asarray(stimulus)
        elif kind == "text":
            ids = np.asarray(data)
        else:
            ids = np.arange(n)
    if n == 0:
        raise ValueError("stimuli is empty; pass at least one stimulus")
    if ids.ndim != 1 or len(ids) != n:
        raise SchemaError(f"stimulus has {len(ids) if ids.ndim == 1 else ids.shape} ids but there are {n} stimuli; "
                          "pass one id per stimulus")
    if ids.dtype == object:
        ids = ids.astype(str)
    check_unique(ids, "stimulus ids", owner="stimuli",
                 fix="each stimulus needs a unique id (pass stimulus=[...] with unique ids)")
    return Stimuli(ids, data, kind)


class Batch(NamedTuple):
    """Model inputs for one batch, with the token mask and (for word pooling) word ids."""

    inputs: Any
    mask: torch.Tensor | None
    word_ids: torch.Tensor | None
    """``(batch, tokens)`` int64 word index of each token, -1 for special/pad tokens."""
    n_words: int


def _default_tensor(raw: Any) -> Any:
    """Stimuli that are already model input: tensors as they are; uint8 ``(n, h, w, 3)`` images -> float
    ``(n, 3, h, w)`` in [0, 1]; other integer arrays -> int64 (token ids); floating arrays -> float32."""
    if isinstance(raw, torch.Tensor):
        return raw
    arr = np.asarray(raw)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"cannot turn stimuli of dtype {arr.dtype} into a tensor; pass preprocess=... "
                        "(a callable from a batch of stimuli to the model's input)")
    if arr.dtype == np.uint8 and arr.ndim == 4 and arr.shape[-1] in (1, 3):
        return torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2).float().div_(255.0)
    if arr.dtype.kind in "biu":
        return torch.as_tensor(arr, dtype=torch.int64)
    return torch.as_tensor(arr, dtype=torch.float32)


def prepare_batch(ctx: ModelContext, raw: Any, *, word_level: bool) -> Batch:
    """Preprocess one batch of raw stimuli; find the attention mask and (optionally) word ids."""
    if ctx.preprocess is not None:
        inputs = ctx.preprocess(raw)
    elif ctx.sentence_transformer and isinstance(raw, list):
        fn = getattr(ctx.module, "preprocess", None) or ctx.module.tokenize
        inputs = fn(raw)
    elif ctx.tokenizer is not None and isinstance(raw, list) and all(isinstance(s, str) for s in raw):
        inputs = ctx.tokenizer(raw, padding=True, truncation=True, return_tensors="pt")
    elif isinstance(raw, list) and raw and all(isinstance(s, str) for s in raw):
        raise TypeError(f"text stimuli need a tokenizer or preprocess for {type(ctx.module).__name__}; pass "
                        "tokenizer=AutoTokenizer.from_pretrained(...) or preprocess=..., or load the model with "
                        "nb.models.load(...)")
    else:
        inputs = _default_tensor(raw)
    mask = None
    if isinstance(inputs, Mapping) and isinstance(inputs.get("attention_mask"), torch.Tensor):
        mask = inputs["attention_mask"]
    word_ids, n_words = None, 0
    if word_level:
        if ctx.tokenizer is None or not (isinstance(raw, list) and all(isinstance(s, str) for s in raw)):
            raise ValueError("pooling='word' needs text stimuli and a (fast) tokenizer; pass tokenizer=... or use "
                             "pooling='mean'")
        # tokenise exactly as the model input was (same truncation limit), so word ids line up with tokens
        max_length = getattr(ctx.preprocess, "max_length", None)
        enc = ctx.tokenizer(raw, padding=True, truncation=True, max_length=max_length)
        rows = []
        for i in range(len(raw)):
            try:
                wids = enc.word_ids(i)
            except (ValueError, AttributeError) as err:
                raise ValueError("pooling='word' needs a fast tokenizer (with word_ids()); load it with "
                                 "AutoTokenizer.from_pretrained(..., use_fast=True)") from err
            rows.append([-1 if w is None else int(w) for w in wids])
        word_ids = torch.tensor(rows, dtype=torch.int64)
        if mask is not None and tuple(word_ids.shape) != tuple(mask.shape):
            raise ValueError(f"pooling='word': the tokenizer gives {tuple(word_ids.shape)} tokens but the model input "
                             f"has {tuple(mask.shape)}; make preprocess use the same tokenizer and padding")
        n_words = int(word_ids.max()) + 1 if word_ids.numel() else 0
    return Batch(inputs, mask, word_ids, n_words)
