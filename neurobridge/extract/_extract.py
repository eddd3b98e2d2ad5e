"""The extraction loop: hooks, pooling through the fused kernel, statistics, and the sinks (memory or zarr)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import xarray as xr

from ..core import activations as _activations_factory
from ..core import check_finite, progress_bar
from ._compress import Compress, as_compress, projection_matrix, quantize
from ._inputs import Batch, as_stimuli, model_context, prepare_batch
from ._layers import first_tensor, resolve_layers
from ._stats import RunningStats

__all__ = ["activations", "POOLINGS"]

logger = logging.getLogger("neurobridge")

POOLINGS = ("mean", "max", "last", "cls", "none", "word")
_KERNEL_POOLING = {"mean": "mean", "max": "max", "last": "last", "cls": "first", "none": "none", "word": "none"}


class _StopForward(Exception):
    """Raised by the last hook to skip the rest of the forward pass."""


class LayerOutput:
    """What one layer produced for one batch, already on the CPU."""

    __slots__ = ("values", "token_mask", "codes", "scale", "kind", "sq_err", "sq_norm")

    def __init__(self, values, token_mask, codes, scale, kind, sq_err=0.0, sq_norm=0.0):
        self.values = values
        self.token_mask = token_mask
        self.codes = codes
        self.scale = scale
        self.kind = kind
        self.sq_err = sq_err
        self.sq_norm = sq_norm


def _as_btu(t: torch.Tensor, mask: torch.Tensor | None, name: str, n_batch: int):
    if t.ndim == 0 or t.shape[0] != n_batch:
        raise ValueError(f"layer {name!r} output has shape {tuple(t.shape)}, whose first axis is not the batch "
                         f"({n_batch}); hook a module that returns batch-first outputs (e.g. batch_first=True)")
    if t.ndim == 2:
        return "vector", t[:, None, :], None
    if t.ndim == 3:
        m = mask if mask is not None and tuple(mask.shape) == tuple(t.shape[:2]) else None
        return "token", t, (m.to(t.device) if m is not None else None)
    if t.ndim == 4:
        return "space", t.flatten(2).transpose(1, 2), None
    raise ValueError(f"layer {name!r} output has {t.ndim} dims {tuple(t.shape)}; expected (batch, units), "
                     "(batch, tokens, units) or (batch, channels, height, width); pick another layer")


def _word_pool(x: torch.Tensor, word_ids: torch.Tensor, n_words: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Average the sub-word tokens of each word: ``(B, T, U)`` -> ``(B, W, U)`` and a ``(B, W)`` word mask."""
    b, _, u = x.shape
    w = word_ids.to(x.device)
    idx = torch.where(w >= 0, w, n_words)
    xf = x.to(torch.float32)
    sums = torch.zeros(b, n_words + 1, u, dtype=torch.float32, device=x.device)
    sums.scatter_add_(1, idx[..., None].expand(-1, -1, u), xf)
    counts = torch.zeros(b, n_words + 1, dtype=torch.float32, device=x.device)
    counts.scatter_add_(1, idx, torch.ones_like(idx, dtype=torch.float32))
    counts = counts[:, :n_words]
    return sums[:, :n_words] / counts.clamp_min(1.0)[..., None], counts > 0


class _Runner:
    """Holds the per-batch state the hooks need and turns raw layer outputs into :class:`LayerOutput`."""

    def __init__(self, names, pooling, comp: Compress | None, stats: dict | None, device, top_k: int = 10):
        self.top_k = top_k
        self.names = names
        self.pooling = pooling
        self.comp = comp
        self.stats = stats
        self.device = device
        self.proj: dict[str, torch.Tensor] = {}
        self.kinds: dict[str, str] = {}
        self.batch: Batch | None = None
        self.row0 = 0
        self.n_batch = 0
        self.outputs: dict[str, LayerOutput] = {}
        self.ids: np.ndarray | None = None

    def hook(self, name: str) -> Callable:
        def _hook(_module, _inputs, output):
            if name in self.outputs:  # a module applied several times per forward (weight sharing): first call
                return
            t = first_tensor(output)
            if t is None:
                raise ValueError(f"layer {name!r} returned {type(output).__name__} with no tensor; pick another layer")
            self.outputs[name] = self.process(name, t.detach())
            if len(self.outputs) == len(self.names):
                raise _StopForward
        return _hook

    def check_finite(self, name: str, ps) -> None:
        """NaN/inf in a layer's valid positions, found from the per-unit mean and max |x| of the batch (padding
        is masked out of both, so a model's NaN in padded positions is not an error)."""
        lo, hi = self.row0, self.row0 + self.n_batch - 1
        where = f"stimuli {lo}..{hi}"
        if self.ids is not None:
            first, last = self.ids[[lo, hi]].tolist()
            where += f" (ids {first!r}..{last!r})"
        both = torch.stack([ps.mean, ps.absmax]).cpu().numpy()
        for row, label in ((both[0], "mean"), (both[1], "max |x|")):
            check_finite(xr.DataArray(row, dims="unit"), f"layer {name!r} (per-unit {label} over {where})",
                         fix="the layer produced NaN or inf activations; check the inputs and the model's dtype "
                             "(float16 overflows above 65504: run the model in float32 or bfloat16)")

    def process(self, name: str, t: torch.Tensor) -> LayerOutput:
        from neurobridge.kernels.pool_stats import pool_stats

        batch = self.batch
        kind, x, mask = _as_btu(t, batch.mask, name, self.n_batch)
        if not x.is_floating_point():
            x = x.float()
        pooling = self.pooling
        if kind != "token" and pooling in ("last", "cls", "word"):
            if kind == "vector":
                pooling = "mean"
            else:
                raise ValueError(f"pooling={self.pooling!r} needs token outputs but layer {name!r} gives spatial maps "
                                 f"{tuple(t.shape)}; use pooling='mean', 'max' or 'none'")
        prev = self.kinds.setdefault(name, kind)
        if prev != kind:
            raise ValueError(f"layer {name!r} changed output kind between batches ({prev} -> {kind})")
        comp = self.comp
        fused_int8 = bool(comp and comp.int8 and not comp.project and pooling not in ("none", "word"))
        ps = pool_stats(x, mask, pooling=_KERNEL_POOLING[pooling], int8=fused_int8)
        self.check_finite(name, ps)
        if self.stats is not None:
            if name not in self.stats:
                self.stats[name] = RunningStats(x.shape[-1], self.top_k)
            self.stats[name].update(ps, self.row0, x, mask)
        token_mask = None
        if pooling == "none" and kind != "vector":
            values = x
            if kind == "token":
                token_mask = (mask != 0) if mask is not None else torch.ones(x.shape[:2], dtype=torch.bool)
        elif pooling == "word" and kind == "token":
            if batch.word_ids is None or batch.word_ids.shape[1] != x.shape[1]:
                raise ValueError(f"pooling='word': layer {name!r} has {x.shape[1]} tokens but the tokenizer gives "
                                 f"{None if batch.word_ids is None else batch.word_ids.shape[1]}; hook a token layer")
            values, token_mask = _word_pool(x, batch.word_ids, batch.n_words)
        elif pooling in ("none", "word"):
            values = x[:, 0]
        else:
            values = ps.pooled
        values = values.to(torch.float32)
        codes = scale = None
        sq_err = sq_norm = 0.0
        if comp is not None:
            if comp.project:
                r = self.proj.get(name)
                if r is None:
                    r = projection_matrix(values.shape[-1], comp.project, seed=comp.seed, layer=name,
                                          device=values.device)
                    self.proj[name] = r
                values = values @ r
            if comp.int8:
                if fused_int8:
                    codes, scale = ps.codes, ps.scale
                else:
                    codes, scale = quantize(values)
                deq = codes.to(torch.float32) * scale
                sq_err = float(((values - deq) ** 2).sum())
                sq_norm = float((values**2).sum())
                codes, scale = codes.cpu().numpy(), scale.cpu().numpy()
                values = deq
        values = values.cpu().numpy()
        if token_mask is not None:
            token_mask = token_mask.cpu().numpy()
        return LayerOutput(values, token_mask, codes, scale, kind, sq_err, sq_norm)


class _MemorySink:
    """Keeps every batch in memory and builds the tree at the end."""

    def __init__(self, n: int):
        self.n = n
        self.parts: dict[str, list[tuple[int, LayerOutput]]] = {}
        self.err: dict[str, list[float]] = {}

    def start_row(self) -> int:
        return 0

    def write(self, row0: int, outputs: dict[str, LayerOutput], stats) -> None:
        for name, out in outputs.items():
            self.parts.setdefault(name, []).append((row0, out))
            e = self.err.setdefault(name, [0.0, 0.0])
            e[0] += out.sq_err
            e[1] += out.sq_norm

    def layer_arrays(self, name: str):
        parts = self.parts[name]
        vals = [o.values for _, o in parts]
        if vals[0].ndim == 2:
            return np.concatenate(vals), None
        t_max = max(v.shape[1] for v in vals)
        arr = np.zeros((self.n, t_max, vals[0].shape[2]), dtype=np.float32)
        mask = np.zeros((self.n, t_max), dtype=bool)
        for row0, o in parts:
            b, t = o.values.shape[:2]
            arr[row0:row0 + b, :t] = o.values
            mask[row0:row0 + b, :t] = o.token_mask if o.token_mask is not None else True
        has_mask = any(o.token_mask is not None for _, o in parts)
        return arr, (mask if has_mask else None)


def _layer_dataset(name: str, arr, token_mask, ids, kind: str, attrs: dict) -> xr.Dataset:
    if arr.ndim == 2:
        dims = ("stimulus", "unit")
    else:
        dims = ("stimulus", "space" if kind == "space" else "token", "unit")
    da = _activations_factory(arr, stimulus=ids, dims=dims, layer=name, model=attrs["model"])
    da.attrs.pop("modality", None)
    da.attrs = {"modality": "activations", **da.attrs}
    ds = xr.Dataset({"activations": da})
    if dims[1] in ("token", "space"):
        ds = ds.assign_coords({dims[1]: np.arange(arr.shape[1])})
    if token_mask is not None:
        ds["token_mask"] = (("stimulus", dims[1]), np.asarray(token_mask, dtype=bool))
    ds.attrs = dict(attrs, layer=name)
    return ds


def _check_pooling(pooling: str | None) -> str:
    if pooling is None:
        return "none"
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    return pooling


def activations(
    model: Any,
    stimuli: Any,
    layers: str | Sequence[str] | None = None,
    *,
    pooling: str | None = "mean",
    batch_size: int = 32,
    device: str | torch.device | None = None,
    store: str | os.PathLike | None = None,
    progress: bool | None = None,
    stats: bool = True,
    preprocess: Callable | None = None,
    tokenizer: Any = None,
    stimulus: Sequence | None = None,
    compress: str | int | Compress | None = None,
    top_k: int = 10,
) -> xr.DataTree:
    """Extract activations of ``layers`` of ``model`` for every stimulus, pooled, as a DataTree.

    Parameters
    ----------
    model : LoadedModel or torch.nn.Module
        From :func:`neurobridge.models.load`, or any module (then pass ``preprocess`` or give it model inputs).
    stimuli : xr.DataArray or sequence
        A DataArray with a ``stimulus`` dim (uint8 images ``(stimulus, height, width, color)`` or strings
        ``(stimulus,)``), or a sequence (list of strings, array, tensor of model inputs) with ``stimulus=`` ids.
    layers : str or sequence of str, optional
        Module names or glob patterns (``"encoder.layer.*"``); ``None`` uses ``model.default_layers``, else every
        leaf module. Nodes come in the module's registration (depth) order. A module applied several times in one
        forward pass (weight sharing) gives the output of its first call.
    pooling : {"mean", "max", "last", "cls", "none", "word"}
        Over tokens (masked by the attention mask) or spatial positions. ``last``: last non-pad token; ``cls``:
        first valid token; ``none`` (or ``None``): keep the ``token``/``space`` dim (padded, with a ``token_mask``);
        ``word``: average the sub-word tokens of each word (dim ``token`` indexes words; needs a fast tokenizer).
        Outputs of shape ``(batch, units)`` are kept as they are.
    batch_size : int
        Stimuli per forward pass (also the zarr chunk along ``stimulus``).
    device : str or torch.device, optional
        Where the forward pass runs; default the model's device. The model is moved back afterwards.
    store : path-like, optional
        A ``.zarr`` folder: every batch is written as it is computed (memory does not grow with the number of
        stimuli), and a rerun on the same store resumes after the stimuli already written. The returned tree is
        then lazy (dask) over the store; read it again with :func:`open_store`.

        The store records a fingerprint of what makes its rows: a SHA-256 of the model's weights (state dict;
        about 3.5 s per billion float32 parameters on one CPU core), the model class, the preprocess callable
        and tokenizer (described by their code and settings), the layers as asked, ``pooling``, ``compress``,
        ``stats`` and ``top_k``. A rerun that differs in any of them is refused with a ``ValueError`` naming what
        differs (e.g. ``weights differ``, ``layers: store has ['a'], call asks ['a', 'b']``), also once the store is
        complete: pass the same settings, a new store path, or delete the store. Stimuli are matched by id and
        order (not by content); the device and library versions are not part of the fingerprint. A store
        written before fingerprints existed is resumed only when its model name, pooling, compression, stats
        and layers match, with a ``UserWarning`` that its weights and preprocessing cannot be checked. A damaged
        commit record (``.neurobridge_progress.npz``) raises a ``ValueError`` naming the file: delete it to
        rewrite every row, or delete the store.
    progress : bool, optional
        Show a tqdm progress bar; ``None`` (default): only when someone watches (a terminal or Jupyter), see
        :func:`neurobridge.core.progress_bar`.
    stats : bool
        Compute per-unit statistics and the top-``top_k`` magnitudes in the same pass (``stats`` node), over every
        valid token / spatial position of the layer's raw units (before pooling and compression); with them the
        sparsity and quantisation statistics of :func:`sparsity` (``|x|`` histograms, near-zero counts, CETT,
        int8/fp8 errors).
    preprocess : callable, optional
        Batch of raw stimuli -> model input (tensor, tuple, or dict of tensors); overrides the model's.
    tokenizer : optional
        HF tokenizer for text stimuli (attention masks, word pooling); overrides the model's.
    stimulus : sequence, optional
        Stimulus ids when ``stimuli`` is a sequence (default: the strings themselves, else ``0..n-1``).
    compress : {None, "int8"}, int or Compress
        ``"int8"``: per-unit int8 codes with per-batch scales (dequantised on read; ``int8_rel_error`` attr);
        an int ``d``: Gaussian random projection of the units to ``d`` dims; ``Compress(...)`` for both.
    top_k : int
        Number of largest magnitudes kept per layer.

    Returns
    -------
    xr.DataTree
        Root attrs ``layers`` (names in order), ``model``, ``pooling``. One child per layer, named by the module
        name, whose dataset holds ``activations`` with dims ``(stimulus, unit)`` (``(stimulus, token|space,
        unit)`` for ``pooling="none"``/``"word"``) and attrs ``layer``, ``model``. With ``stats=True`` a
        ``stats`` child holds one node per layer (see :func:`report`).

    Examples
    --------
    >>> import torch, neurobridge as nb
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    >>> tree = nb.extract.activations(net, torch.randn(10, 3), layers="*", progress=False)
    >>> tree.attrs["layers"], tree["2"]["activations"].dims
    (['0', '1', '2'], ('stimulus', 'unit'))
    """
    pooling = _check_pooling(pooling)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    comp = as_compress(compress)
    ctx = model_context(model, preprocess=preprocess, tokenizer=tokenizer, device=device)
    stim = as_stimuli(stimuli, stimulus)
    names = resolve_layers(ctx.module, layers, ctx.default_layers)
    given = [layers] if isinstance(layers, str) else list(layers or [])
    explicit = set(names) & set(given)
    n = len(stim)
    attrs = {"model": ctx.name, "pooling": pooling}
    if comp is not None:
        attrs["compress"] = ("int8" if comp.int8 else "") + (f"+project{comp.project}" if comp.project else "")
        if comp.project:
            attrs["project_seed"] = comp.seed
    if store is not None:
        from ._fingerprint import fingerprint
        from ._store import ZarrSink

        fp = fingerprint(ctx, names, pooling=pooling, compress=attrs.get("compress", ""),
                         project_seed=attrs.get("project_seed"), stats=stats, top_k=top_k)
        sink = ZarrSink(store, ids=stim.ids, names=names, attrs=attrs, batch_size=batch_size, top_k=top_k,
                        stats=stats, fingerprint=fp)
        batch_size = sink.batch_size
        if sink.names is not None:
            names = list(sink.names)
            explicit = set(names)
    else:
        sink = _MemorySink(n)
    start = sink.start_row()
    running: dict[str, RunningStats] | None = None
    if stats:
        running = getattr(sink, "running", None) or {}
    runner = _Runner(names, pooling, comp, running, ctx.device, top_k)
    runner.ids = stim.ids
    modules = dict(ctx.module.named_modules())
    handles = []
    bar = progress_bar(total=n, initial=start, progress=progress, desc=f"extract {ctx.name}", unit="stim")
    try:
        for name in names:
            handles.append(modules[name].register_forward_hook(runner.hook(name)))
        with ctx.activated(), torch.inference_mode():
            for row0 in range(start, n, batch_size):
                raw = stim.batch(row0, min(row0 + batch_size, n))
                batch = prepare_batch(ctx, raw, word_level=pooling == "word")
                runner.batch, runner.row0, runner.n_batch, runner.outputs = batch, row0, len(raw), {}
                try:
                    ctx.forward(batch.inputs)
                except _StopForward:
                    pass
                missing = [name for name in names if name not in runner.outputs]
                if missing:
                    if row0 != start or set(missing) & explicit or len(missing) == len(names):
                        raise RuntimeError(f"layers {missing} did not run during the forward pass; pick layers that "
                                           "the model calls (see nb.extract.list_layers(model))")
                    logger.info("skipping layers that did not run in the forward pass: %s", missing)
                    names = [name for name in names if name not in missing]
                    runner.names = names
                sink.write(row0, runner.outputs, running)
                runner.outputs = {}
                runner.batch = None
                bar.update(len(raw))
    finally:
        for h in handles:
            h.remove()
        bar.close()
    return _finish(sink, stim.ids, names, runner, running, attrs, pooling)


def _finish(sink, ids, names, runner, running, attrs, pooling) -> xr.DataTree:
    if hasattr(sink, "finish"):
        return sink.finish()
    root = xr.Dataset(attrs={"layers": list(names), **attrs})
    nodes: dict[str, xr.Dataset] = {"/": root}
    for name in names:
        arr, mask = sink.layer_arrays(name)
        layer_attrs = dict(attrs)
        err = sink.err.get(name)
        if err and err[1] > 0:
            layer_attrs["int8_rel_error"] = float(np.sqrt(err[0] / err[1]))
        nodes[name] = _layer_dataset(name, arr, mask, ids, runner.kinds[name], layer_attrs)
    if running is not None:
        for name in names:
            nodes[f"stats/{name}"] = running[name].to_dataset(ids, layer=name, model=attrs["model"])
    return xr.DataTree.from_dict(nodes)
