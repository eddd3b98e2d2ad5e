"""Layer names: glob selection, hook outputs, and :func:`list_layers`."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch

__all__ = ["list_layers", "resolve_layers", "first_tensor"]


def _named(module: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    return [(name, m) for name, m in module.named_modules() if name]


def _leaves(module: torch.nn.Module) -> list[str]:
    return [name for name, m in _named(module) if not any(True for _ in m.children())]


def _glob_regex(pattern: str) -> re.Pattern:
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^.]*")
        elif c == "?":
            out.append("[^.]")
        elif c == "[":
            j = pattern.find("]", i)
            if j < 0:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1:j]
                out.append("[^" + re.escape(body[1:]) + "]" if body.startswith("!") else "[" + re.escape(body) + "]")
                i = j
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z")


def resolve_layers(module: torch.nn.Module, layers: str | Sequence[str] | None,
                   default: Sequence[str] = ()) -> list[str]:
    """Module names selected by exact names or glob patterns, in the module's registration (depth) order.

    In patterns ``*`` matches within one level of the dotted name (``"encoder.layer.*"`` selects the blocks, not
    their children), ``**`` matches across levels, ``?`` one character and ``[0-3]`` a set. ``None`` uses the
    ``default`` patterns, else every leaf module.
    """
    names = [n for n, _ in _named(module)]
    if layers is None:
        if not default:
            return _leaves(module)
        layers = list(default)
    if isinstance(layers, str):
        layers = [layers]
    if not len(layers):
        raise ValueError("layers is empty; pass layer names or glob patterns, e.g. layers=['encoder.layer.*']")
    chosen: set[str] = set()
    for pattern in layers:
        if not isinstance(pattern, str):
            raise TypeError(f"layers must be names or glob patterns (str), got {type(pattern).__name__}")
        rx = _glob_regex(pattern)
        hits = [pattern] if pattern in names else [n for n in names if rx.match(n)]
        if not hits:
            close = difflib.get_close_matches(pattern, names, n=5)
            hint = f" Close names: {close}." if close else ""
            raise ValueError(f"layer {pattern!r} matches no module of {type(module).__name__}.{hint} "
                             "List the hookable names with nb.extract.list_layers(model).")
        chosen.update(hits)
    out = [n for n in names if n in chosen]
    if "stats" in out:
        raise ValueError("a layer named 'stats' would clash with the tree's 'stats' node; select its children "
                         "instead or rename the module")
    return out


def first_tensor(output: Any) -> torch.Tensor | None:
    """The activation tensor in a module's output: the tensor itself, the first tensor of a tuple/list, or for a
    mapping (HF ``ModelOutput``, sentence-transformers features) ``sentence_embedding``, ``last_hidden_state`` or
    ``token_embeddings``, else its first floating tensor."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, Mapping):
        for key in ("sentence_embedding", "last_hidden_state", "token_embeddings"):
            if isinstance(output.get(key), torch.Tensor):
                return output[key]
        for value in output.values():
            t = first_tensor(value)
            if t is not None and t.is_floating_point():
                return t
        return None
    if isinstance(output, tuple | list):
        for value in output:
            t = first_tensor(value)
            if t is not None:
                return t
    return None


def list_layers(model: Any, sample: Any = None, *, preprocess=None, tokenizer=None, device=None):
    """The hookable module names of ``model``, with the output shape each produces on a sample input.

    Parameters
    ----------
    model : LoadedModel or torch.nn.Module
    sample : optional
        One batch of raw stimuli (a list of strings, a ``(n, height, width, 3)`` uint8 array, or model input).
        Default: ``["a sample sentence"]`` for text models and one grey 224 x 224 image for vision models;
        required for other modules.
    preprocess, tokenizer : optional
        As in :func:`activations`, for bare modules.

    Returns
    -------
    pandas.DataFrame
        One row per module (registration order): ``layer``, ``type``, ``shape`` (output shape on the sample,
        ``None`` when the module did not run), ``leaf``, ``default`` (selected by ``layers=None``).

    Examples
    --------
    >>> import torch, neurobridge as nb
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU())
    >>> nb.extract.list_layers(net, torch.zeros(2, 3))[["layer", "shape"]].values.tolist()
    [['0', (2, 4)], ['1', (2, 4)]]
    """
    import pandas as pd

    from ._inputs import model_context, prepare_batch

    ctx = model_context(model, preprocess=preprocess, tokenizer=tokenizer, device=device)
    if sample is None:
        if ctx.modality == "text":
            sample = ["a sample sentence"]
        elif ctx.modality == "vision":
            import numpy as np

            sample = np.full((1, 224, 224, 3), 128, dtype=np.uint8)
        else:
            raise ValueError(f"list_layers: pass sample=... (one batch of inputs) for a {type(ctx.module).__name__} "
                             "that is not a text or vision model")
    named = _named(ctx.module)
    shapes: dict[str, tuple[int, ...]] = {}
    handles = []

    def make_hook(name):
        def hook(_module, _inputs, output):
            t = first_tensor(output)
            if t is not None and name not in shapes:
                shapes[name] = tuple(t.shape)
        return hook

    default = set(resolve_layers(ctx.module, None, ctx.default_layers))
    try:
        for name, m in named:
            handles.append(m.register_forward_hook(make_hook(name)))
        with ctx.activated(), torch.inference_mode():
            batch = prepare_batch(ctx, sample, word_level=False)
            ctx.forward(batch.inputs)
    finally:
        for h in handles:
            h.remove()
    leaves = set(_leaves(ctx.module))
    return pd.DataFrame({
        "layer": [n for n, _ in named],
        "type": [type(m).__name__ for _, m in named],
        "shape": [shapes.get(n) for n, _ in named],
        "leaf": [n in leaves for n, _ in named],
        "default": [n in default for n, _ in named],
    })
