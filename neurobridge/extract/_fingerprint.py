"""What identifies the rows of an extraction store: model weights, preprocessing, layers and settings.

:func:`fingerprint` describes one ``activations(..., store=...)`` call as a JSON-able dict; the store keeps it and a
resumed call must give the same one (:func:`differences` says what differs, in words). It covers everything that
changes the rows:

- ``weights``: a SHA-256 over the model's ``state_dict`` (parameters and persistent buffers), fed tensor by tensor
  in their order with each name, shape and dtype (``structure`` holds the digest of the names/shapes/dtypes alone,
  so a message can say whether the architecture or only the values differ). CPU tensors are hashed in place;
  CUDA tensors are copied to the host in 64 MiB pieces, so the extra memory stays flat. Tied tensors are hashed
  once. Measured on one core of the 2-core CPU machine: 0.85 s for 1 GiB (269M float32 parameters), 0.13 s
  for MiniLM (22.7M), i.e. about 3.5 s per billion float32 parameters, paid once per call with ``store=`` (never
  for in-memory extraction). The CUDA path (piecewise copy to the host) has not been timed on a GPU.
- ``module``: the model class (``package.Class``); ``model``: its neurobridge name.
- ``preprocess`` / ``tokenizer``: a description of the callable and the tokenizer (see :func:`describe`).
- ``layers`` (as resolved from the call, before layers that did not run are dropped), ``pooling``, ``compress``,
  ``project_seed``, ``stats`` and ``top_k`` (the running statistics keep ``top_k`` entries).

Not covered: the stimuli themselves (the store checks their ids and order, not their pixels or text), the device
(CPU and CUDA rows differ by float rounding only) and library versions.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
import json
import re
from typing import Any

import numpy as np
import torch

__all__ = ["fingerprint", "differences", "describe", "weights_digest", "FINGERPRINT_VERSION"]

FINGERPRINT_VERSION = 1
_CHUNK = 64 * 2**20
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
_SIMPLE = (type(None), bool, int, float, str)


def _tensor_bytes(t: torch.Tensor):
    """The bytes of ``t`` in row-major order, as host buffers of at most ``_CHUNK`` bytes."""
    t = t.detach()
    if t.device.type == "meta":
        return
    try:
        flat = t.contiguous().reshape(-1).view(torch.uint8) if t.numel() else t.new_empty(0, dtype=torch.uint8)
    except (RuntimeError, TypeError, NotImplementedError):  # sparse or quantized tensors: hash a dense copy
        data = t.cpu()
        data = data.to_dense() if data.is_sparse else data
        data = data.int_repr() if data.is_quantized else data
        yield data.contiguous().numpy().tobytes()
        return
    if flat.device.type == "cpu":
        yield flat.numpy()
        return
    for start in range(0, flat.numel(), _CHUNK):
        yield flat[start:start + _CHUNK].cpu().numpy()


def weights_digest(module: torch.nn.Module) -> dict:
    """SHA-256 of ``module.state_dict()`` (names, shapes, dtypes and bytes) and a digest of the structure alone.

    Returns
    -------
    dict
        ``digest`` and ``structure`` (hex), ``n_tensors``, ``n_values`` (total entries), ``dtypes`` (sorted).

    Examples
    --------
    >>> import torch
    >>> a, b = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    >>> weights_digest(a)["structure"] == weights_digest(b)["structure"]
    True
    >>> weights_digest(a)["digest"] == weights_digest(b)["digest"]
    False
    """
    full, structure = hashlib.sha256(), hashlib.sha256()
    seen: dict[tuple, str] = {}
    n_values, dtypes = 0, set()
    state = module.state_dict(keep_vars=True)
    for name, t in state.items():
        if not isinstance(t, torch.Tensor):
            head = f"{name}|object|{describe(t)}\n".encode()
            full.update(head)
            structure.update(head)
            continue
        head = f"{name}|{tuple(t.shape)}|{t.dtype}\n".encode()
        full.update(head)
        structure.update(head)
        n_values += t.numel()
        dtypes.add(str(t.dtype).replace("torch.", ""))
        key = (t.device, t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), tuple(t.stride()),
               t.dtype) if t.device.type != "meta" else None
        if key is not None and key in seen:  # tied weights: the same memory under two names
            full.update(f"same as {seen[key]}\n".encode())
            continue
        if key is not None:
            seen[key] = name
        for piece in _tensor_bytes(t):
            full.update(piece)
    return {"digest": full.hexdigest(), "structure": structure.hexdigest(), "n_tensors": len(state),
            "n_values": int(n_values), "dtypes": sorted(dtypes)}


def _code_digest(code) -> str:
    h = hashlib.sha256()

    def feed(c):
        h.update(c.co_code)
        h.update(repr(c.co_names).encode())
        for const in c.co_consts:
            if inspect.iscode(const):
                feed(const)
            else:
                h.update(repr(const).encode())

    feed(code)
    return h.hexdigest()[:16]


def _is_tokenizer(obj) -> bool:
    return hasattr(obj, "get_vocab") and hasattr(obj, "name_or_path") and callable(obj)


def _describe_tokenizer(tok) -> str:
    try:
        vocab = tok.get_vocab()
        vocab_digest = hashlib.sha256(json.dumps(sorted(vocab.items())).encode()).hexdigest()[:16]
    except Exception:  # noqa: BLE001 - a tokenizer without a readable vocabulary is described by its settings
        vocab_digest = "?"
    # not name_or_path: the same tokenizer read from another folder is the same tokenizer
    fields = {k: getattr(tok, k, None) for k in ("model_max_length", "padding_side", "truncation_side")}
    fields["n_vocab"] = len(tok) if hasattr(tok, "__len__") else None
    inner = ", ".join(f"{k}={v!r}" for k, v in fields.items())
    return f"{type(tok).__name__}({inner}, vocab={vocab_digest})"


def describe(obj: Any, _depth: int = 0) -> str:
    """A stable text description of a preprocess callable, tokenizer or setting (no memory addresses).

    Plain values are their ``repr``; a function is its qualified name and a digest of its code (and of its
    defaults and of the simple values it closes over); ``functools.partial`` adds its arguments; a dataclass
    lists its fields; a tokenizer gives its name, limits and a digest of its vocabulary; another object gives its
    own ``repr`` if its class defines one, else its class, the digest of its ``__call__`` and its public
    attributes holding plain values. So editing a preprocess function, or changing an image size or
    ``max_length``, changes the description.

    Examples
    --------
    >>> describe(None), describe((224, "bilinear"))
    ('None', "(224, 'bilinear')")
    >>> def prep(x, size=224): return x
    >>> describe(prep) == describe(prep), describe(prep).startswith("function ")
    (True, True)
    """
    if _depth > 4:
        return type(obj).__qualname__
    d = _depth + 1
    if isinstance(obj, _SIMPLE):
        return repr(obj)
    if isinstance(obj, tuple | list):
        inner = ", ".join(describe(v, d) for v in obj)
        return f"({inner}{',' if len(obj) == 1 else ''})" if isinstance(obj, tuple) else f"[{inner}]"
    if isinstance(obj, dict):
        return "{" + ", ".join(f"{describe(k, d)}: {describe(v, d)}" for k, v in sorted(obj.items(), key=str)) + "}"
    if isinstance(obj, np.ndarray | torch.Tensor):
        arr = obj.detach().cpu().numpy() if isinstance(obj, torch.Tensor) else obj
        arr = np.ascontiguousarray(arr)
        digest = hashlib.sha256(arr.tobytes()).hexdigest()[:16] if arr.dtype != object else describe(arr.tolist(), d)
        return f"array(shape={arr.shape}, dtype={arr.dtype}, sha256={digest})"
    if isinstance(obj, functools.partial):
        return f"partial({describe(obj.func, d)}, args={describe(obj.args, d)}, kwargs={describe(obj.keywords, d)})"
    if inspect.ismethod(obj):
        func = obj.__func__
        return f"method {func.__qualname__}#{_code_digest(func.__code__)} of {describe(obj.__self__, d)}"
    if inspect.isfunction(obj):
        parts = [f"function {obj.__module__}.{obj.__qualname__}#{_code_digest(obj.__code__)}"]
        if obj.__defaults__:
            parts.append(f"defaults={describe(obj.__defaults__, d)}")
        if obj.__kwdefaults__:
            parts.append(f"kwdefaults={describe(obj.__kwdefaults__, d)}")
        cells = []
        for var, cell in zip(obj.__code__.co_freevars, obj.__closure__ or (), strict=False):
            try:
                value = cell.cell_contents
            except ValueError:  # an empty cell
                continue
            if isinstance(value, _SIMPLE) or inspect.isfunction(value) or inspect.ismethod(value) \
                    or dataclasses.is_dataclass(value) or _is_tokenizer(value):
                cells.append(f"{var}={describe(value, d)}")
        if cells:
            parts.append("closure(" + ", ".join(cells) + ")")
        return " ".join(parts)
    if inspect.isbuiltin(obj) or isinstance(obj, type):
        return f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', repr(obj))}"
    if _is_tokenizer(obj):
        return _describe_tokenizer(obj)
    if dataclasses.is_dataclass(obj):
        fields = ", ".join(f"{f.name}={describe(getattr(obj, f.name), d)}" for f in dataclasses.fields(obj))
        return f"{type(obj).__module__}.{type(obj).__qualname__}({fields})"
    if isinstance(obj, torch.nn.Module):
        return f"{type(obj).__module__}.{type(obj).__qualname__} weights={weights_digest(obj)['digest'][:16]}"
    cls = type(obj)
    if cls.__repr__ is not object.__repr__:
        return _ADDRESS.sub("", repr(obj))
    call = inspect.getattr_static(cls, "__call__", None)
    parts = [f"{cls.__module__}.{cls.__qualname__}"]
    if inspect.isfunction(call):
        parts.append(f"__call__#{_code_digest(call.__code__)}")
    attrs = {k: v for k, v in sorted(vars(obj).items()) if not k.startswith("_") and isinstance(v, (*_SIMPLE, tuple))}
    if attrs:
        parts.append("(" + ", ".join(f"{k}={describe(v, d)}" for k, v in attrs.items()) + ")")
    return " ".join(parts)


def fingerprint(ctx, layers: list[str], *, pooling: str, compress: str, project_seed: int | None, stats: bool,
                top_k: int) -> dict:
    """The identity of one extraction call (a JSON-able dict; see the module docstring for what it covers)."""
    module = ctx.module
    return {
        "version": FINGERPRINT_VERSION,
        "model": str(ctx.name),
        "module": f"{type(module).__module__}.{type(module).__qualname__}",
        "weights": weights_digest(module),
        "preprocess": describe(ctx.preprocess),
        "tokenizer": describe(ctx.tokenizer),
        "layers": list(layers),
        "pooling": pooling,
        "compress": compress,
        "project_seed": project_seed,
        "stats": bool(stats),
        "top_k": int(top_k) if stats else None,
    }


_DESCRIPTIONS = ("preprocess", "tokenizer", "module")


def _shown(key: str, a, b, n: int = 160) -> tuple[str, str]:
    """Both values as text; long descriptions are cut to the part around their first difference."""
    ta, tb = [v if key in _DESCRIPTIONS and isinstance(v, str) else repr(v) for v in (a, b)]
    if len(ta) <= n and len(tb) <= n:
        return ta, tb
    p = next((i for i, (x, y) in enumerate(zip(ta, tb, strict=False)) if x != y), min(len(ta), len(tb)))
    start = max(0, p - n // 3)

    def cut(t):
        return ("..." if start else "") + t[start:start + n] + ("..." if len(t) > start + n else "")

    return cut(ta), cut(tb)


def differences(stored: dict, current: dict) -> list[str]:
    """What differs between the fingerprint a store holds and the one of this call, one phrase per difference.

    Examples
    --------
    >>> differences({"pooling": "mean", "layers": ["a"]}, {"pooling": "max", "layers": ["a", "b"]})
    ["layers: store has ['a'], call asks ['a', 'b']", "pooling: store has 'mean', call asks 'max'"]
    """
    out = []
    if stored.get("version") != current.get("version"):
        return [f"the store's fingerprint has version {stored.get('version')!r}, this neurobridge writes "
                f"{current.get('version')!r}"]
    sw, cw = stored.get("weights"), current.get("weights")
    if isinstance(sw, dict) and isinstance(cw, dict) and sw.get("digest") != cw.get("digest"):
        if sw.get("structure") != cw.get("structure"):
            out.append(f"weights differ: the store's model has {sw.get('n_tensors')} tensors with "
                       f"{sw.get('n_values')} values ({', '.join(sw.get('dtypes', []))}), this model has "
                       f"{cw.get('n_tensors')} with {cw.get('n_values')} ({', '.join(cw.get('dtypes', []))}) or "
                       "other names/shapes")
        else:
            out.append("weights differ: same architecture (parameter names, shapes and dtypes) but other values "
                       f"(store sha256 {str(sw.get('digest'))[:12]}..., this model {str(cw.get('digest'))[:12]}...)")
    for key in sorted(set(stored) | set(current)):
        if key in ("version", "weights"):
            continue
        a, b = stored.get(key), current.get(key)
        if a != b:
            ta, tb = _shown(key, a, b)
            out.append(f"{key}: store has {ta}, call asks {tb}")
    return out
