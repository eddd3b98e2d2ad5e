"""``nb.benchmark.run``: load models and benchmark data, extract, score, stack and (optionally) write outputs."""

from __future__ import annotations

import datetime as _dt
import logging
import os
import platform
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from ._registry import _LOADER_OPTIONS, Benchmark, BenchmarkData, resolve
from ._scoring import SCALARS, check_layers, score_benchmark, stimulus_ids

__all__ = ["run", "combine", "DEFAULT_MODEL"]

logger = logging.getLogger("neurobridge")

DEFAULT_MODEL = "efficientnet_lite0"


def _model_specs(models) -> dict[str, Any]:
    from neurobridge.models import LoadedModel

    if models is None:
        return {DEFAULT_MODEL: DEFAULT_MODEL}
    if isinstance(models, str | os.PathLike | LoadedModel):
        models = [models]
    if isinstance(models, Mapping):
        out = dict(models)
    else:
        out = {}
        for m in models:
            label = m.name if isinstance(m, LoadedModel) else os.fspath(m)
            if label in out:
                raise ValueError(f"model {label!r} is given twice; pass a dict {{label: model}} to name variants")
            out[label] = m
    if not out:
        raise ValueError("no model given; pass a model spec such as 'efficientnet_lite0'")
    for label in out:
        if not isinstance(label, str) or not label:
            raise ValueError(f"model labels must be non-empty strings, got {label!r}")
    return out


def _load_model(spec, device):
    from neurobridge import models
    from neurobridge.models import LoadedModel

    if isinstance(spec, LoadedModel):
        return spec
    if not isinstance(spec, str | os.PathLike):
        raise TypeError(f"a model is a spec string or an nb.models.LoadedModel, got {type(spec).__name__}")
    return models.load(os.fspath(spec), device=device)


def _layer_acts(tree: xr.DataTree) -> dict[str, xr.DataArray]:
    names = list(tree.attrs.get("layers", [])) or list(tree.children)
    out = {}
    for name in names:
        node = tree[name] if name in tree.children else None
        if node is None:  # node names may be sanitised; find the child whose layer attr matches
            node = next((c for c in tree.children.values() if c.attrs.get("layer") == name
                         or c.ds.get("activations", xr.DataArray()).attrs.get("layer") == name), None)
            if node is None:
                raise KeyError(f"activation tree has no node for layer {name!r}; nodes: {list(tree.children)}")
        out[name] = node["activations"]
    return out


def _pool_extra(acts: dict[str, xr.DataArray]) -> dict[str, xr.DataArray]:
    out = {}
    for name, da in acts.items():
        extra = [d for d in da.dims if d not in ("stimulus", "unit")]
        if extra:
            logger.info("layer %r: averaging activations over %s", name, extra)
            da = da.mean(extra)
        out[name] = da.transpose("stimulus", "unit")
    return out


def _stimuli_key(data: BenchmarkData) -> tuple:
    """Identity of a stimulus set (ids, shape and a digest of the values): benchmarks that share stimuli share
    one extraction."""
    import hashlib

    stim = data.stimuli
    values = stim.values if isinstance(stim, xr.DataArray) else np.asarray(stim, dtype=object)
    ids = tuple(map(str, stimulus_ids(stim))) if isinstance(stim, xr.DataArray) else ()
    try:
        digest = hashlib.sha1(np.ascontiguousarray(values).tobytes()).hexdigest() if values.dtype != object else \
            hashlib.sha1("\x00".join(map(str, values.ravel().tolist())).encode()).hexdigest()
    except (TypeError, ValueError):
        return ("id", id(stim))
    return ids, values.shape, str(values.dtype), digest


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": sys.version.split()[0]}
    for pkg in ("neurobridge", "torch", "numpy", "scipy", "xarray", "scikit-learn", "mne", "pandas", "matplotlib",
                "transformers", "rsatoolbox"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def _device_name(device) -> str:
    import torch

    dev = torch.device(device) if device is not None else torch.device("cpu")
    if dev.type == "cuda" and torch.cuda.is_available():
        return f"{dev} ({torch.cuda.get_device_name(dev)})"
    return f"{dev} ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, " \
           f"torch threads {torch.get_num_threads()})"


def combine(pieces: Mapping[tuple[str, str], xr.Dataset]) -> xr.Dataset:
    """Stack per-(model, benchmark) pieces into one Dataset over ``(model, benchmark, layer[, time])``.

    Layers are the union over models (NaN where a model lacks a layer); ``depth`` ``(model, layer)`` keeps each
    model's layer order.

    Examples
    --------
    >>> import xarray as xr
    >>> p = xr.Dataset({"score": ("layer", [0.1, 0.2]), "depth": ("layer", [0.0, 1.0])}, coords={"layer": ["a", "b"]})
    >>> combine({("m", "b"): p}).score.dims
    ('model', 'benchmark', 'layer')
    """
    if not pieces:
        raise ValueError("nothing to combine")
    models = list(dict.fromkeys(m for m, _ in pieces))
    benches = list(dict.fromkeys(b for _, b in pieces))
    fill = {k: v for k, v in SCALARS.items()}
    rows = []
    for m in models:
        cols = []
        for b in benches:
            p = pieces.get((m, b))
            if p is None:
                p = xr.Dataset({k: v for k, v in fill.items()})
            cols.append(p)
        rows.append(xr.concat(cols, dim=xr.DataArray(benches, dims="benchmark", name="benchmark"), join="outer",
                              fill_value=fill, data_vars="all", coords="different", compat="equals"))
    ds = xr.concat(rows, dim=xr.DataArray(models, dims="model", name="model"), join="outer", fill_value=fill,
                   data_vars="all", coords="different", compat="equals")
    if "depth" in ds:  # depth is a property of (model, layer)
        ds["depth"] = ds["depth"].max("benchmark", skipna=True)
    order = ["model", "benchmark", "layer", "time"]
    for name in list(ds.data_vars):
        dims = [d for d in order if d in ds[name].dims]
        ds[name] = ds[name].transpose(*dims)
        if ds[name].dtype == object:
            ds[name] = ds[name].fillna("").astype(str)
    return ds


def split_pieces(ds: xr.Dataset) -> dict[tuple[str, str], xr.Dataset]:
    """Inverse of :func:`combine`: the per-(model, benchmark) pieces of a scores Dataset (absent pairs skipped).

    Examples
    --------
    >>> import xarray as xr
    >>> p = xr.Dataset({"score": ("layer", [0.1, 0.2]), "depth": ("layer", [0.0, 1.0]), "selected_layer": "a"},
    ...                coords={"layer": ["a", "b"]})
    >>> list(split_pieces(combine({("m", "b"): p})))
    [('m', 'b')]
    """
    out = {}
    for m in ds["model"].values.tolist():
        for b in ds["benchmark"].values.tolist():
            p = ds.sel(model=m, benchmark=b, drop=True)
            if "selected_layer" in p and str(p["selected_layer"].values) == "":
                continue
            if "layer" in p.dims:
                keep = np.isfinite(p["depth"].values) & np.isfinite(p["score"].values)
                p = p.isel(layer=np.flatnonzero(keep))
                p = p.isel(layer=np.argsort(p["depth"].values, kind="stable"))
            if "time" in p.dims and "score_time" in p:
                keep_t = np.isfinite(p["score_time"].values).any(axis=0)
                p = p.isel(time=np.flatnonzero(keep_t)) if keep_t.any() else p.drop_dims("time")
            out[(m, b)] = p
    return out


def run(
    models: str | Sequence | Mapping | None = None,
    benchmarks: str | Sequence | None = None,
    *,
    layers: Sequence[str] | None = None,
    device: str | None = None,
    out: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
    batch_size: int = 32,
    download: bool = True,
    figures: bool = True,
    progress: bool | None = None,
) -> xr.Dataset:
    """Score models against brain benchmarks: per-layer profiles, ceilings, CIs and held-out layer selection.

    Parameters
    ----------
    models : str, LoadedModel, sequence of them, or dict label -> spec, optional
        Model specs as in :func:`neurobridge.models.load` (registry name, HF id, ``torchvision:<name>``,
        ``path/to/file.py:build_fn``) or loaded models. Default ``"efficientnet_lite0"``. A dict names
        variants, e.g. ``{"trained": "efficientnet_lite0", "random": nb.models.load(..., pretrained=False)}``.
    benchmarks : str or sequence, optional
        Benchmark names (:func:`available`), dataset names (all their benchmarks), ``.toml`` files or
        :class:`Benchmark` objects. Default: ``kriegeskorte92-hit-rsa`` and ``kriegeskorte92-mit-rsa``.
    layers : sequence of str, optional
        Layer names or glob patterns; default each model's ``default_layers``.
    device : str, optional
        Where the model runs (``"cpu"``, ``"cuda"``).
    out : path, optional
        Folder for ``scores.nc``, ``leaderboard.csv``/``.md``, figures and ``report.html``. If it already holds
        results, they are extended (same model and benchmark: replaced). ``None`` writes nothing.
    data_dir : path, optional
        Root of the data folders (default ``$NEUROBRIDGE_DATA``, else the user cache).
    n_bootstrap : int
        Bootstrap resamples for the per-layer confidence intervals (0 disables them).
    seed : int
        Seed of the bootstraps and of the held-out splits.
    batch_size : int
        Stimuli per forward pass.
    download : bool
        Download missing dataset files (False: fail at once with where to put them).
    figures : bool
        Write PNG figures and ``report.html`` with ``out``.
    progress : bool, optional
        Progress bars per stage (data, scoring, extraction, bootstrap resamples): ``True``/``False``; ``None``
        (default, automatic) shows them only when someone watches: stderr is a terminal or Jupyter, and
        ``TQDM_DISABLE`` is unset (:func:`neurobridge.core.progress_enabled`). In a CI log or a redirected
        script: none unless ``progress=True``, and then a few lines per stage, not a frame per step.

    Returns
    -------
    xr.Dataset
        Dims ``(model, benchmark, layer[, time])``: ``score``, ``ci_low``, ``ci_high``, ``normalised_score``,
        ``selection_frequency``, ``depth``; per (model, benchmark): ``heldout_score``,
        ``heldout_normalised_score``, ``selected_layer``, ``ceiling_lower``, ``ceiling_upper`` ...; ``attrs``
        hold the run's provenance.

    Raises
    ------
    ValueError
        Unknown model or benchmark (with close matches), a model of the wrong modality, or no usable layer.
    FileNotFoundError
        Dataset files missing offline (the message says where to put them).

    Examples
    --------
    >>> import neurobridge as nb
    >>> scores = nb.benchmark.run("efficientnet_lite0", "kriegeskorte92-mit-rsa", n_bootstrap=100)  # doctest: +SKIP
    >>> str(scores.selected_layer.sel(model="efficientnet_lite0", benchmark="kriegeskorte92-mit-rsa").values)  # doctest: +SKIP
    'blocks.12'
    """
    from neurobridge import extract
    from neurobridge.core import progress_bar, progress_enabled

    t0 = time.perf_counter()
    started = _dt.datetime.now(_dt.UTC)
    benches = resolve(benchmarks)
    specs = _model_specs(models)
    if n_bootstrap < 0:
        raise ValueError(f"n_bootstrap must be >= 0, got {n_bootstrap}")
    progress = progress_enabled(progress)  # decided once: every stage and loader follows the same answer

    # stage 1: data (fail early, before loading any model); one load per dataset
    data: dict[str, BenchmarkData] = {}
    bundles: dict = {}
    for bench in progress_bar(benches, desc="load data", progress=progress, unit="benchmark"):
        data[bench.name] = _load_data(bench, data_dir, download, progress, bundles)

    pieces: dict[tuple[str, str], xr.Dataset] = {}
    extras: dict[tuple[str, str], dict] = {}
    model_info: dict[str, dict] = {}
    skipped: dict[str, dict[str, str]] = {}
    bar = progress_bar(total=len(specs) * len(benches), desc="score", progress=progress, unit="benchmark", leave=True)
    for label, spec in specs.items():
        model = _load_model(spec, device)
        model_info[label] = {"spec": spec if isinstance(spec, str) else model.name, "loaded_as": model.name,
                             "modality": model.modality,
                             "parameters": int(sum(p.numel() for p in model.module.parameters()))}
        want = list(layers) if layers else (list(model.default_layers) or None)
        cache: dict[tuple, dict[str, xr.DataArray]] = {}
        for bench in benches:
            d = data[bench.name]
            _check_modality(bench, model, label)
            key = _stimuli_key(d)
            if key not in cache:
                logger.info("extracting %s on %s stimuli", label, bench.dataset or bench.name)
                try:
                    tree = extract.activations(model, d.stimuli, want, batch_size=batch_size, device=device,
                                               progress=progress, stats=False)
                except (RuntimeError, TypeError) as err:
                    if model.preprocess is not None:
                        raise
                    raise TypeError(
                        f"model {label!r} has no preprocess, so it received the raw stimuli of {bench.name!r} "
                        f"({_describe(d.stimuli)}) and failed: {err}. Return a LoadedModel with a preprocess "
                        "from your build function, e.g. LoadedModel(name, net, nb.models.ImagePreprocess(size=224), "
                        "'vision')") from err
                acts = _pool_extra(_layer_acts(tree))
                cache[key] = acts
            acts = cache[key]
            bad = check_layers(acts, label, needs_correlation=bench.metric == "rsa" and
                               bench.rdm_metric == "correlation")
            skipped.setdefault(label, {}).update(bad)
            usable = {k: v for k, v in acts.items() if k not in bad}
            bar.set_postfix_str(f"{label} on {bench.name}")
            piece, ex = score_benchmark(bench, d, usable, n_bootstrap=n_bootstrap, seed=seed, progress=progress)
            bar.update(1)
            logger.info("%s on %s: held-out layer %s, score %.3f", label, bench.name,
                        str(piece["selected_layer"].values), float(piece["heldout_score"]))
            pieces[(label, bench.name)] = piece
            extras[(label, bench.name)] = ex
            model_info[label]["layers"] = list(acts)

    bar.close()
    ds = combine(pieces)
    wall = time.perf_counter() - t0
    provenance = {
        "started": started.isoformat(timespec="seconds"),
        "wall_time_s": round(wall, 2),
        "command": " ".join(sys.argv) if sys.argv and "neurobridge" in Path(sys.argv[0]).name else "nb.benchmark.run",
        "device": _device_name(device),
        "platform": platform.platform(),
        "versions": _versions(),
        "models": model_info,
        "skipped_layers": skipped,
        "benchmarks": {b.name: {"dataset": b.dataset, "description": b.description, "citation": b.citation,
                                "demo": b.demo,
                                "data_files": dict(data[b.name].files), "info": {k: str(v) for k, v in
                                                                                 data[b.name].info.items()}}
                       for b in benches},
        "n_bootstrap": n_bootstrap,
        "seed": seed,
    }
    ds.attrs.update({"title": "neurobridge benchmark scores", "neurobridge_version": provenance["versions"].get(
        "neurobridge", ""), "created": provenance["started"], "normalisation": "score / ceiling_lower",
        "layer_selection": "held out: " + "; ".join(
            f"{b}: {next((r for r in ds['selection_rule'].sel(benchmark=b).values.tolist() if r), '')}"
            for b in ds["benchmark"].values.tolist())})
    if out is not None:
        from ._report import write_outputs

        ds = write_outputs(ds, out, provenance, extras=extras, benchmarks=benches, figures=figures)
    return ds


def _load_data(bench: Benchmark, data_dir, download: bool, progress: bool, cache: dict) -> BenchmarkData:
    try:
        d = _call_loader(bench, data_dir, download, progress, cache)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"benchmark {bench.name!r} needs data that is not available: {err}") from err
    if not isinstance(d, BenchmarkData):
        raise TypeError(f"benchmark {bench.name!r}: its data loader returned {type(d).__name__}, expected BenchmarkData")
    return d


def _call_loader(bench: Benchmark, data_dir, download: bool, progress: bool, cache: dict) -> BenchmarkData:
    token = _LOADER_OPTIONS.set({"download": download, "progress": progress, "cache": cache})
    try:
        return bench.data(Path(data_dir) if data_dir is not None else None)
    finally:
        _LOADER_OPTIONS.reset(token)


def _describe(stimuli) -> str:
    if isinstance(stimuli, xr.DataArray):
        return f"{stimuli.dtype} array with dims {dict(stimuli.sizes)}"
    return type(stimuli).__name__


def _check_modality(bench: Benchmark, model, label: str) -> None:
    if model.modality in ("other",) or bench.modality == "other" or model.modality == bench.modality:
        return
    raise ValueError(f"model {label!r} is a {model.modality} model but benchmark {bench.name!r} shows "
                     f"{bench.modality} stimuli; pick a {bench.modality} model or another benchmark")
