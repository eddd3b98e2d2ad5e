"""Encoding over target chunks on dask.distributed: the design is decomposed once, scattered, and every worker
fits its chunk of voxels/channels against the shared decompositions.

How a call finds its cluster (dask's own conventions, no global switch, no pool of ours):

1. ``client=`` a :class:`distributed.Client` (or a ``Cluster``, or a scheduler address such as
   ``"tcp://10.0.0.5:8786"``, which is connected to and closed afterwards);
2. else the active client (``distributed.get_client()``: the last ``Client(...)`` made, or the one of a
   ``with client.as_current():`` block);
3. else dask's config ``scheduler-address`` (``DASK_SCHEDULER_ADDRESS``), connected to and closed afterwards;
4. else a ``LocalCluster`` of this machine (one single-threaded worker process per core), created for the
   call and closed when it returns.

A scheduler that cannot be reached raises :class:`ConnectionError` naming the address and the fix.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import torch
import xarray as xr

from ..core import (
    SchemaError,
    as_tensor,
    check_finite,
    optional_import,
    progress_enabled,
)
from ..core._storage import _TYPE_ATTR, _prepare, _quiet_zarr, load
from ._cv import make_folds
from ._labelled import (
    _SCORES,
    _brain_sample_dim,
    _default_estimator,
    _inner_cv,
    _inner_gap,
    _layers_of,
    prepare_design,
    resolve_gap,
)
from ._memory import threads_for
from ._solvers import (
    DEFAULT_ALPHAS,
    _alphas,
    _fold_fits,
    _select_and_refit,
    _work,
    fold_fit_scores,
)

__all__ = ["fit_encoding_distributed", "layer_sweep_distributed"]

logger = logging.getLogger("neurobridge")

_BLOCK_BYTES = 64 * 2**20
"""Default size of one chunk of brain data (float64, all samples) when the brain is not dask-backed."""


# --------------------------------------------------------------------------------------------- the plan
class _FoldPlan(NamedTuple):
    """One outer fold (or the refit on all samples), decomposed once for every chunk of targets."""

    tr: torch.Tensor  # rows of the design used for training
    va: torch.Tensor | None  # held-out rows (None for the refit of the weights)
    Xva: torch.Tensor | None  # (n_val, p) held-out design
    alphas: torch.Tensor  # (n_alphas,)
    fits: list  # inner folds of the training set, as _solvers._fold_fits returns them
    perm: torch.Tensor | None
    full: tuple  # (_Decomp of the training design, its column means): the refit at the chosen alphas


class _Plan:
    """What every worker needs (scattered once); a plain class so that ``client.scatter`` keeps it whole."""

    def __init__(self, rows, layers, weights, scoring, est, dtype, sweep: bool):
        self.rows = rows  # design row -> row of the brain chunk
        self.layers = layers  # per layer (one for fit_encoding): the _FoldPlan of every outer fold
        self.weights = weights  # _FoldPlan of all samples, or None
        self.scoring = scoring
        self.dtype = dtype  # of the solves: the client's nb.config_context dtype, as fit_encoding's
        self.sweep = sweep  # layer_sweep's outputs (layer selection) instead of fit_encoding's
        self.fit_intercept = est.fit_intercept
        self.method = est.method
        self.alpha_per_target = est.alpha_per_target
        self.n_targets_batch = est.n_targets_batch

    def n_rows_out(self) -> int:
        n_layers, k = len(self.layers), len(self.layers[0])
        if self.sweep:  # score (layer), alpha (layer x fold), best_layer, best_score, selected (fold)
            return n_layers + n_layers * k + 2 + k
        p = 0 if self.weights is None else self.weights.full[0].V.shape[0]
        return 1 + 3 * k + p  # score, score_fold (fold), alpha (fold), inner_score (fold), weights (unit)


def _fold_plan(X: torch.Tensor, tr, va, est, groups) -> _FoldPlan:
    """Decompose the training part of one outer fold as ``RidgeCV(...).fit`` would (same inner folds)."""
    Xtr = X[torch.as_tensor(tr)]
    inner = make_folds(len(tr), est.cv, groups)
    fits, perm, full = _fold_fits(Xtr, inner, fit_intercept=est.fit_intercept, method=est.method, with_full=True)
    dec, xm = full
    full = (dec._replace(Qs=None), xm)  # Qs maps new samples to the dual basis: not needed for the refit
    return _FoldPlan(torch.as_tensor(tr), None if va is None else torch.as_tensor(va),
                     None if va is None else X[torch.as_tensor(va)], _alphas(est.alphas, X), fits, perm, full)


def _outer_plans(design, folds, est, gap_n: int, return_weights: bool):
    """Every decomposition of the cross-validation of one design (outer folds with their inner folds and refits,
    and the final refit for the weights), as ``_labelled._crossval_impl`` and ``fit_encoding`` make them."""
    X = as_tensor(design.X, device="cpu")  # in the configured dtype, as RidgeCV.fit converts it
    n, p = design.X.shape
    plans = []
    with threads_for(_work(n, p, 1, 13, 6 * len(folds)), torch.device("cpu")):
        for tr, va in folds:
            if design.groups is not None:
                ng = len(np.unique(design.groups[tr]))
                plans.append(_fold_plan(X, tr, va, _inner_cv(est, max(2, min(5, ng))), design.groups[tr]))
            else:
                plans.append(_fold_plan(X, tr, va, _inner_gap(est, tr, gap_n), None))
        weights = _fold_plan(X, np.arange(n), None, est, design.groups) if return_weights else None
    return plans, weights, X.dtype


# ------------------------------------------------------------------------------------- on the workers
def _cv_scores(fits, perm, Y: torch.Tensor, alphas: torch.Tensor, *, fit_intercept: bool, scoring: str,
               n_targets_batch: int | None) -> torch.Tensor:
    """Validation scores (n_alphas, n_targets) of precomputed inner folds: the same target loop as
    ``_solvers._kfold_scores`` (so the same alphas), without a progress bar on the workers."""
    return fold_fit_scores(fits, perm, Y, alphas, fit_intercept=fit_intercept, scoring=scoring,
                           n_targets_batch=n_targets_batch, progress=False)


def _fit_fold(f: _FoldPlan, Ytr: torch.Tensor, plan: _Plan):
    """``RidgeCV.fit`` of one training set against its shared decompositions: alphas, scores, weights."""
    scores = _cv_scores(f.fits, f.perm, Ytr, f.alphas, fit_intercept=plan.fit_intercept, scoring=plan.scoring,
                        n_targets_batch=plan.n_targets_batch)
    p = f.full[0].V.shape[0]
    shape_only = torch.zeros((), dtype=Ytr.dtype).expand(Ytr.shape[0], p)  # only sizes the batches
    return _select_and_refit(shape_only, Ytr, f.alphas, scores, plan.fit_intercept, plan.method,
                             plan.alpha_per_target, True, plan.n_targets_batch, f.full)


def _crossval_chunk(Y: torch.Tensor, Y64: torch.Tensor, folds, plan: _Plan):
    """Held-out scores, alphas and inner scores (n_folds, n_targets) of one layer, as ``_crossval_impl``."""
    score_fn = _SCORES[plan.scoring]
    shape = (len(folds), Y.shape[1])
    fs, fa, fi = np.empty(shape), np.empty(shape), np.empty(shape)
    for i, f in enumerate(folds):
        res = _fit_fold(f, Y[f.tr], plan)
        pred = torch.addmm(res.intercept[None, :], f.Xva, res.coef)  # as RidgeCV.predict, scored in float64
        fs[i] = score_fn(Y64[f.va], pred.to(torch.float64)).numpy()
        fa[i] = res.alpha.numpy()
        fi[i] = res.best_score.numpy()
    return fs, fa, fi


def _fit_block(block: np.ndarray, plan: _Plan) -> np.ndarray:
    """One chunk of targets (all brain samples x chunk) -> the stacked output rows x chunk (``_Plan.n_rows_out``)."""
    Y64 = torch.as_tensor(np.asarray(block, dtype=np.float64)[plan.rows])
    check_finite(Y64, "brain", fix="drop or interpolate them first (e.g. brain.dropna(...)); the chunk was not fit")
    f0 = plan.layers[0][0]
    work = _work(Y64.shape[0], f0.full[0].V.shape[0], Y64.shape[1], len(f0.alphas),
                 6 * len(plan.layers[0]) * len(plan.layers))
    with threads_for(work, torch.device("cpu")):  # small chunks single-threaded, as fit_encoding's solves
        Y = Y64.to(plan.dtype)
        results = [_crossval_chunk(Y, Y64, folds, plan) for folds in plan.layers]
        if not plan.sweep:
            fs, fa, fi = results[0]
            rows = [fs.mean(0)[None], fs, fa, fi]
            if plan.weights is not None:
                rows.append(_fit_fold(plan.weights, Y, plan).coef.numpy())
            return np.concatenate(rows)
    S = np.stack([r[0] for r in results])  # (layer, fold, target), as layer_sweep
    inner = np.stack([r[2] for r in results])
    sel = inner.argmax(0)  # (fold, target), chosen on training folds only
    best_held = np.take_along_axis(S, sel[None], 0)[0].mean(0)
    counts = np.stack([(sel == i).sum(0) for i in range(len(results))])
    alphas = np.concatenate([r[1] for r in results])
    return np.concatenate([S.mean(1), alphas, counts.argmax(0)[None], best_held[None], sel]).astype(np.float64)


def _acf_block(block: np.ndarray, rows: np.ndarray, max_lag: int) -> np.ndarray:
    """Sum of the autocorrelation functions of the non-constant targets of a chunk, and their number."""
    from ..stats import autocorrelation

    y = torch.as_tensor(np.asarray(block, dtype=np.float64)[rows])
    c = y - y.mean(0)
    n_valid = int((c.std(0) > 0).sum())
    out = np.zeros((max_lag + 2, 1))
    if n_valid:
        out[:-1, 0] = autocorrelation(y, max_lag=max_lag).numpy() * n_valid
        out[-1, 0] = n_valid
    return out


# ------------------------------------------------------------------------------------------ the client
def _connect(distributed, address: str, where: str):
    """A Client of the scheduler at ``address``, or a ConnectionError that says how to get one."""
    import dask

    timeout = dask.config.get("distributed.comm.timeouts.connect")
    try:
        return distributed.Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError) as err:
        raise ConnectionError(
            f"could not reach the dask scheduler at {address!r} ({where}) within {timeout}: {err}. Start one "
            f"there (`dask scheduler`, then `dask worker {address}` on each machine), check the address, port and "
            "firewall, or pass client=None with no scheduler-address configured to use a LocalCluster of this "
            "machine") from err


def _resolve_client(client, need_lasting: bool):
    """``(client, close)``: the client to use and what to close afterwards (see the module docstring)."""
    import dask

    distributed = optional_import("distributed", purpose="fit_encoding_distributed")
    if isinstance(client, distributed.Client):
        return client, []
    if isinstance(client, distributed.deploy.Cluster):
        c = distributed.Client(client, set_as_default=False)
        return c, [c]
    if isinstance(client, (str, os.PathLike)):
        c = _connect(distributed, str(client), "client=")
        return c, [c]
    if client is not None:
        raise TypeError(f"client must be a distributed.Client, a Cluster, a scheduler address or None, "
                        f"got {type(client).__name__}")
    try:
        return distributed.get_client(), []
    except ValueError:
        pass
    address = dask.config.get("scheduler-address", None)
    if address:
        c = _connect(distributed, str(address), "dask config 'scheduler-address'")
        return c, [c]
    if need_lasting:
        raise ValueError("compute=False returns results that are computed later on a cluster, but no client is "
                         "active and none was given; pass client=distributed.Client(...) (or create one first), "
                         "or use compute=True / store=...")
    logger.info("no dask client active: starting a LocalCluster for this call")
    cluster = distributed.LocalCluster(processes=True, threads_per_worker=1, dashboard_address=":0")
    c = distributed.Client(cluster, set_as_default=False)
    return c, [c, cluster]


def _targets(brain: xr.DataArray, dim: str, chunk_targets: int | None, n_rows: int):
    """The brain as a (n_rows, n_targets) dask array in target chunks, and the chunking it used."""
    import dask.array as da

    tdims = [d for d in brain.dims if d != dim]
    bt = brain.transpose(dim, *tdims)
    data = bt.data
    if not tdims:
        data = data[:, None]
    shape = data.shape[1:]
    rest = math.prod(shape[1:])
    if chunk_targets is not None:
        if isinstance(chunk_targets, bool) or int(chunk_targets) != chunk_targets or chunk_targets < 1:
            raise ValueError(f"chunk_targets must be a positive number of targets, got {chunk_targets!r}")
        c1 = max(1, int(chunk_targets) // rest)
    elif isinstance(data, da.Array) and tdims:
        c1 = int(data.chunks[1][0])
    else:
        c1 = max(1, _BLOCK_BYTES // (8 * n_rows * rest))
    c1 = min(c1, shape[0])
    if not isinstance(data, da.Array):  # one graph key per chunk, so that a worker is sent only its chunks
        arr = np.asarray(data)
        data = da.concatenate([da.from_array(arr[:, i: i + c1], chunks=-1) for i in range(0, shape[0], c1)], axis=1)
    data = data.rechunk((n_rows, c1, *shape[1:]))
    return bt, data.reshape(n_rows, math.prod(shape)), c1 * rest


def _probe(brain: xr.DataArray, dim: str) -> xr.DataArray:
    """The brain's sample axis (its coords and attrs) with the row number as the only target: aligning it with
    ``prepare_design`` gives the rows of the brain in design order, without reading the brain."""
    coords = {k: (dim, np.asarray(v.values)) for k, v in brain.coords.items() if v.dims == (dim,)}
    return xr.DataArray(np.arange(brain.sizes[dim], dtype=float), dims=(dim,), coords=coords,
                        attrs=dict(brain.attrs))


def _template_coords(bt: xr.DataArray, dim: str) -> dict:
    return {k: (v.dims, np.asarray(v.values), v.attrs) for k, v in bt.coords.items() if dim not in v.dims}


def _lazy(values, tdims, tshape, coords, name, lead=(), attrs=None) -> xr.DataArray:
    shape = tuple(len(v) for _, v in lead) + tuple(tshape)
    c = {k: v for k, v in coords.items() if all(d in tdims for d in v[0])}
    for d, v in lead:
        c[d] = v
    return xr.DataArray(values.reshape(shape), dims=(*[d for d, _ in lead], *tdims), coords=c, name=name,
                        attrs=dict(attrs or {}))


def _gap(designs, gap, Y2, rows, client) -> int:
    """:func:`resolve_gap` of the whole brain (the largest over designs, as ``layer_sweep``): for ``"auto"`` on
    time series, the autocorrelation of the targets is reduced over chunks on the cluster, then combined with each
    design's features as :func:`neurobridge.stats.autocorrelation_length` does (threshold 0.01)."""
    d0 = designs[0]
    if not (isinstance(gap, str) and gap == "auto" and d0.sample_dim == "time" and d0.groups is None):
        return max(resolve_gap(d, gap) for d in designs)  # the targets are not read on these paths
    from ..stats import autocorrelation

    n = d0.X.shape[0]
    max_lag = min(n // 4, n - 1)
    parts = Y2.map_blocks(_acf_block, rows, max_lag, chunks=((max_lag + 2,), (1,) * Y2.numblocks[1]),
                          meta=np.empty((0, 0)))
    sums = client.compute(parts.sum(axis=1)).result()
    acf_y = torch.as_tensor((sums[:-1] / sums[-1]) if sums[-1] else np.r_[1.0, np.zeros(max_lag)])
    out = 0
    for d in designs:
        acf_x = autocorrelation(d.X, max_lag=n // 4).to(torch.float64)
        m = min(len(acf_x), len(acf_y))
        below = torch.nonzero((acf_x[:m] * acf_y[:m]).abs() < 0.01)
        out = max(out, int(below[0]) if len(below) else m - 1)
    return out


def _wait(client, collection, progress: bool | None):
    fut = client.compute(collection)
    if progress_enabled(progress):
        from distributed import progress as dask_progress

        dask_progress(fut)
    return fut.result()


def _check_common(brain, scoring: str, store, overwrite: bool) -> Path | None:
    if scoring not in _SCORES:
        raise ValueError(f"scoring must be 'r2' or 'correlation', got {scoring!r}")
    if not isinstance(brain, xr.DataArray):
        raise TypeError(f"brain must be an xr.DataArray, got {type(brain).__name__}; "
                        "load a store lazily with nb.load(path, chunks={})")
    path = None if store is None else Path(store)
    if path is not None and path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it, or another store=")
    return path


def _run(feature_sets: list, brain: xr.DataArray, build, *, client, chunk_targets, cv, groups, scoring, alphas,
         average_repetitions, gap, path, compute, progress, return_weights=False, sweep=False):
    """Align, resolve the client, decompose once, scatter, map the chunks, and return / store what ``build`` makes
    of the stacked output rows ``build(out, k, tdims, tshape, coords, bt, designs, gap_n, est)``."""
    if _brain_sample_dim(brain) == "trial" and average_repetitions:
        from ..core import average_repetitions as _avg

        brain = _avg(brain)  # lazy for a dask-backed brain
    dim = _brain_sample_dim(brain)
    probe = _probe(brain, dim)
    designs = [prepare_design(f, probe, groups=groups) for f in feature_sets]
    rows = designs[0].Y[:, 0].astype(np.int64)
    for i, d in enumerate(designs[1:], 1):
        if not np.array_equal(d.Y[:, 0], designs[0].Y[:, 0]):
            raise SchemaError(f"layer {i} covers different stimuli than layer 0; every layer must have "
                              "activations for the same stimuli")
    bt, Y2, chunk = _targets(brain, dim, chunk_targets, brain.sizes[dim])
    client, to_close = _resolve_client(client, need_lasting=not compute and path is None)
    try:
        gap_n = _gap(designs, gap, Y2, rows, client)
        folds = make_folds(designs[0].X.shape[0], cv, designs[0].groups, gap=gap_n)
        est = _default_estimator(designs[0], alphas, scoring)
        layers, dtype, weights = [], None, None
        for d in designs:
            plans, weights, dtype = _outer_plans(d, folds, est, gap_n, return_weights)
            layers.append(plans)
        plan = _Plan(rows, layers, weights, scoring, est, dtype, sweep)
        shared = client.scatter([plan], broadcast=True, hash=False)[0]
        out = Y2.map_blocks(_fit_block, shared, chunks=((plan.n_rows_out(),), Y2.chunks[1]), meta=np.empty((0, 0)),
                            name=f"fit-encoding-{shared.key}")
        tdims = [d for d in bt.dims if d != dim]
        tshape = tuple(bt.sizes[d] for d in tdims)
        ds = build(out, len(folds), tdims, tshape, _template_coords(bt, dim), bt, designs, gap_n, est)
        logger.info("fitting %d targets in %d chunks of %d on %s", Y2.shape[1], Y2.numblocks[1], chunk, client)
        if path is not None:
            prepared = ds.copy()
            prepared.attrs[_TYPE_ATTR] = "Dataset"
            prepared = _prepare(prepared, str(path), "zarr")
            with _quiet_zarr():
                delayed = prepared.to_zarr(path, mode="w", compute=False)
            _wait(client, delayed, progress)
            return load(path, chunks={})
        if not compute:
            return ds
        return _wait(client, ds, progress)
    finally:
        for obj in to_close:
            obj.close()


def fit_encoding_distributed(
    features, brain: xr.DataArray, *, client=None, chunk_targets: int | None = None, cv=5, groups=None,
    scoring: str = "r2", alphas=DEFAULT_ALPHAS, average_repetitions: bool = False, return_weights: bool = False,
    gap: int | Literal["auto"] | None = "auto", store: str | os.PathLike | None = None, overwrite: bool = False,
    compute: bool = True, progress: bool | None = None,
) -> xr.Dataset:
    """:func:`fit_encoding` on a dask.distributed cluster, chunk of targets by chunk of targets.

    The features are aligned with the brain's sample coords (the brain is not read for that), every
    decomposition of the cross-validation (each outer fold's inner folds and refit, and the final refit for
    ``weights``) is computed once here and scattered to every worker (``client.scatter(..., broadcast=True)``);
    each task then reads one chunk of targets (all samples) and fits it against those decompositions. These are
    the solves of :func:`fit_encoding` with its default :class:`RidgeCV`, in the same dtype (the caller's
    ``nb.config_context``), so the results agree to round-off (~1e-15 in float64).

    Parameters
    ----------
    features : xr.DataArray (stimulus, unit) or (time, unit)
        One feature space (banded ridge over a mapping of spaces runs in :func:`fit_encoding`).
    brain : xr.DataArray
        As :func:`fit_encoding`, dask-backed (``nb.load("bold.zarr", chunks={})``) or in memory.
    client : distributed.Client, Cluster, scheduler address or None
        Where to run. ``None``: the active client, else dask's ``scheduler-address`` config, else a LocalCluster
        created for this call and closed afterwards. An address that cannot be reached raises
        ``ConnectionError``.
    chunk_targets : int, optional
        Targets per task (rounded down to whole rows of the first target dim). Default: the brain's own dask
        chunks along its first target dim, or about 64 MiB of float64 per chunk for an in-memory brain. A worker
        holds the scattered decompositions (about ``n_folds x (inner folds + 1)`` times the design: 25x for 5 x 5
        folds) and, per task, its chunk (all samples, float64) and its outputs.
    cv, groups, scoring, alphas, average_repetitions, return_weights, gap
        As :func:`fit_encoding`.
    store : path, optional
        Write the results straight into this zarr store, chunk by chunk from the workers (a task run again after
        a worker died rewrites the same region), and return them lazily read from it (``nb.load(store,
        chunks={})``). Must be reachable by every worker (a shared file system on a real cluster).
    overwrite : bool
        Replace an existing ``store``.
    compute : bool
        ``True`` (default): compute and return the results in memory. ``False``: return them as lazy
        dask-backed arrays (the client must stay open until they are computed). Ignored with ``store``.
    progress : bool, optional
        Show dask's progress bar (:func:`distributed.progress`) while the chunks run; ``None``: when someone
        watches (:func:`neurobridge.core.progress_enabled`). The dashboard of the client shows the tasks too.

    Returns
    -------
    xr.Dataset
        ``score``, ``score_fold``, ``alpha``, ``inner_score`` (and ``weights``) as :func:`fit_encoding`.

    Raises
    ------
    ConnectionError
        The scheduler at the given or configured address cannot be reached.

    Examples
    --------
    >>> import numpy as np, neurobridge as nb
    >>> from distributed import Client
    >>> rng = np.random.default_rng(0)
    >>> f = nb.core.activations(rng.normal(size=(40, 5)), stimulus=np.arange(40))
    >>> b = nb.core.fmri_responses(f.values @ rng.normal(size=(5, 6)), stimulus=np.arange(40), dim="stimulus")
    >>> with Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None) as client:
    ...     res = fit_encoding_distributed(f, b.chunk(voxel=3), client=client, alphas=[1e-3, 1.0], progress=False)
    >>> bool((res.score > 0.9).all()), res.score.dims
    (True, ('voxel',))
    """
    path = _check_common(brain, scoring, store, overwrite)
    if not isinstance(features, xr.DataArray):
        raise TypeError(f"features must be one xr.DataArray (stimulus|time, unit), got {type(features).__name__}; "
                        "banded ridge over several feature spaces runs in memory with nb.encoding.fit_encoding")

    def build(out, k, tdims, tshape, coords, bt, designs, gap_n, est):
        fold = [("fold", np.arange(k))]
        a = bt.attrs
        data = {
            "score": _lazy(out[0], tdims, tshape, coords, "score", attrs=a),
            "score_fold": _lazy(out[1: 1 + k], tdims, tshape, coords, "score_fold", fold, a),
            "alpha": _lazy(out[1 + k: 1 + 2 * k], tdims, tshape, coords, "alpha", fold, a),
            "inner_score": _lazy(out[1 + 2 * k: 1 + 3 * k], tdims, tshape, coords, "inner_score", fold, a),
        }
        data["score"].attrs.update(metric=scoring, n_folds=k)
        d = designs[0]
        if return_weights:
            data["weights"] = _lazy(out[1 + 3 * k:], tdims, tshape, coords, "weights",
                                    [("unit", d.unit_index.values)], a)
        return xr.Dataset(data, attrs={"metric": scoring, "n_samples": int(d.X.shape[0]),
                                       "n_features": int(d.X.shape[1]), "estimator": type(est).__name__,
                                       "sample_dim": d.sample_dim, "gap": gap_n})

    return _run([features], brain, build, client=client, chunk_targets=chunk_targets, cv=cv, groups=groups,
                scoring=scoring, alphas=alphas, average_repetitions=average_repetitions, gap=gap, path=path,
                compute=compute, progress=progress, return_weights=return_weights)


def layer_sweep_distributed(
    tree: xr.DataTree, brain: xr.DataArray, *, layers=None, client=None, chunk_targets: int | None = None, cv=5,
    groups=None, scoring: str = "r2", alphas=DEFAULT_ALPHAS, average_repetitions: bool = False,
    gap: int | Literal["auto"] | None = "auto", store: str | os.PathLike | None = None, overwrite: bool = False,
    compute: bool = True, progress: bool | None = None,
) -> xr.Dataset:
    """:func:`layer_sweep` on a dask.distributed cluster, chunk of targets by chunk of targets.

    The decompositions of every layer's design are made once and scattered (memory: the sum over layers of
    what :func:`fit_encoding_distributed` scatters for one); each task fits all layers to its chunk of targets
    and selects the best layer per target on the training folds, as :func:`layer_sweep`.

    Parameters
    ----------
    tree : xr.DataTree
        As :func:`layer_sweep` (one child per layer with variable ``activations``).
    brain : xr.DataArray
        Dask-backed or in memory.
    layers, cv, groups, scoring, alphas, average_repetitions, gap
        As :func:`layer_sweep`.
    client, chunk_targets, store, overwrite, compute, progress
        As :func:`fit_encoding_distributed`.

    Returns
    -------
    xr.Dataset
        ``score`` (layer, ...), ``alpha`` (layer, fold, ...), ``best_layer``, ``best_score``, ``selected``
        (fold, ...), as :func:`layer_sweep`.

    Examples
    --------
    >>> import numpy as np, xarray as xr, neurobridge as nb
    >>> from distributed import Client
    >>> rng = np.random.default_rng(0); ids = np.arange(40)
    >>> acts = {f"l{i}": rng.normal(size=(40, 4)) for i in range(2)}
    >>> tree = xr.DataTree.from_dict({"/": xr.Dataset(attrs={"layers": ["l0", "l1"]}),
    ...     **{k: xr.Dataset({"activations": nb.core.activations(v, stimulus=ids)}) for k, v in acts.items()}})
    >>> brain = nb.core.fmri_responses(acts["l1"] @ rng.normal(size=(4, 3)), stimulus=ids, dim="stimulus")
    >>> with Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None) as client:
    ...     res = layer_sweep_distributed(tree, brain, client=client, alphas=[1e-2, 1.0], progress=False)
    >>> res.best_layer.values.tolist()
    ['l1', 'l1', 'l1']
    """
    path = _check_common(brain, scoring, store, overwrite)
    if not isinstance(tree, xr.DataTree):
        raise TypeError(f"tree must be an xr.DataTree of layers, got {type(tree).__name__}; "
                        "build it with nb.extract.activations(...)")
    names = [str(n) for n in layers] if layers is not None else _layers_of(tree)
    missing = [n for n in names if n not in tree.children]
    if missing:
        raise SchemaError(f"layers {missing[:5]} not in the tree; layers: {list(tree.children)[:10]}")

    def build(out, k, tdims, tshape, coords, bt, designs, gap_n, est):
        n_l = len(names)
        label = np.asarray(names)
        pick = (lambda idx: label[idx.astype(np.int64)])  # noqa: E731
        lay, fold = [("layer", label)], [("fold", np.arange(k))]
        best = out[n_l + n_l * k].map_blocks(pick, dtype=label.dtype)
        selected = out[n_l + n_l * k + 2:].map_blocks(pick, dtype=label.dtype)
        a = bt.attrs
        return xr.Dataset({
            "score": _lazy(out[:n_l], tdims, tshape, coords, "score", lay, a),
            "alpha": _lazy(out[n_l: n_l + n_l * k].reshape(n_l, k, -1), tdims, tshape, coords, "alpha", lay + fold,
                           a),
            "best_layer": _lazy(best, tdims, tshape, coords, "best_layer", attrs=a),
            "best_score": _lazy(out[n_l + n_l * k + 1], tdims, tshape, coords, "best_score", attrs=a),
            "selected": _lazy(selected, tdims, tshape, coords, "selected", fold, a),
        }, attrs={"metric": scoring, "n_folds": k, "layers": names, "gap": gap_n})

    return _run([tree[n]["activations"] for n in names], brain, build, client=client, chunk_targets=chunk_targets,
                cv=cv, groups=groups, scoring=scoring, alphas=alphas, average_repetitions=average_repetitions,
                gap=gap, path=path, compute=compute, progress=progress, sweep=True)
