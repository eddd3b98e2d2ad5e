"""Streaming activation sparsity and quantisation statistics of the extraction pass, and :func:`sparsity`.

What one batch adds (:func:`batch_sparsity`, over the valid positions of a layer's raw ``(batch, tokens, units)``
output), merged by :class:`~neurobridge.extract._stats.RunningStats` into a state whose size does not depend on the
number of stimuli:

- ``hist`` ``(unit, bin)``: counts of ``|a|`` in log-linear bins: 8 per octave, upper edges
  ``2**e * (1 + j / 8)`` for ``e = -20 .. 19``, ``j = 0 .. 7``, and ``2**20`` (``2**-20 ~ 1e-6`` to ``2**20 ~ 1e6``;
  every edge is exact in float32, and a value's bin comes from the exponent and top 3 mantissa bits of its float32
  bits, as in HdrHistogram). Bin 0 is ``[0, 2**-20]`` (exact zeros and tiny values), bin ``i`` is
  ``(edge[i-1], edge[i]]`` and the last bin is ``(2**20, inf)``. Such a grid bounds the *relative* error of every
  quantile read from it (as in DDSketch, Masson et al. 2019): a value is known to within one bin, a factor of at
  most ``MAX_BIN_RATIO = 9 / 8``.
- ``n_small`` ``(eps, unit)``: exact counts of ``|a| <= eps`` at :data:`NEAR_ZERO_EPS` (eps rounded to float32).
- ``cett_sum`` ``(bin,)`` and ``cett_count``: for every position ``p`` with a nonzero activation vector ``a_p``,
  ``sqrt(sum(a_p[|a_p| <= e]**2) / sum(a_p**2))`` at each upper edge ``e``, summed over positions, and the number
  of such positions. Their ratio is the mean CETT curve (below), exact at the edges.
- ``quant_sq_err`` ``(format,)`` and ``sq_norm``: squared error of quantise -> dequantise of the batch in each of
  :data:`QUANT_FORMATS`, one per-unit absmax scale per batch (the blocks of the ``compress="int8"`` store), and the
  squared norm of the values.

CETT (Luo et al. 2024, "Sparsing Law"; Zhang et al. 2024, "ReLU^2 wins"): a neuron ``i`` of a position is dropped
when the norm of its contribution ``|a_i| * ||W_out[:, i]||`` is below a threshold ``t``; CETT(t) is the norm of the
dropped contributions over the norm of the layer output, averaged over positions; the per-layer ``t`` is found by
binary search so that CETT(t) reaches a target ``c`` (e.g. 0.2), i.e. ``t_c`` is the smallest magnitude that must be
kept (dropping every ``|a| < t_c`` gives CETT <= c, dropping also ``|a| = t_c`` exceeds it). The activation ratio is
the fraction of (position, neuron) pairs kept, ``frac(|a| >= t_c)``, and the sparsity is one minus it (the paper's
PPL-p% sparsity is this at the ``c`` that raises perplexity by p%). Here the hooked layer's own output is the
"output" (identity read-out, ``W_out = I``): CETT(t) = ``mean_p ||a_p[|a_p| <= t]|| / ||a_p||``, which needs no
weights and is exact at the bin edges. With the weights of a following linear layer (the paper's FFN ``W_out``) the
norms would include its column norms and cross terms; that is not computed. The PPL-p% calibration of ``c`` needs
pruned forward passes and is not done: pass ``c``.

From the edges: if ``e_lo < e_hi`` are the consecutive edges with CETT(e_lo) <= c < CETT(e_hi), then ``t_c`` lies
in ``(e_lo, e_hi]`` (the reported threshold is interpolated there, log-linearly in ``t`` against CETT: relative
error below ``MAX_BIN_RATIO - 1 = 12.5%``), and the exact activation ratio lies in ``[frac(|a| > e_hi),
frac(|a| > e_lo)]``; both bounds are exact counts (``activation_ratio_low/high``). The reported ratio interpolates
linearly between them, which assumes the magnitudes in that bin are spread over it; when they are point masses
(e.g. one repeated value) the exact ratio can sit at a bound.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
import xarray as xr

__all__ = ["sparsity", "batch_sparsity", "SparsityBatch", "unit_percentiles", "EDGES", "N_BINS", "NEAR_ZERO_EPS",
           "QUANT_FORMATS", "PERCENTILES", "BINS_PER_OCTAVE", "MAX_BIN_RATIO"]

BINS_PER_OCTAVE = 8
"""Histogram resolution: bins per octave (3 mantissa bits)."""
MAX_BIN_RATIO = 1.125
"""Largest ratio of consecutive edges (``(1 + 1/8) / 1``, at the start of each octave)."""
_LOG2_LO, _LOG2_HI = -20, 20
EDGES = np.append(
    [2.0**e * (1 + j / BINS_PER_OCTAVE) for e in range(_LOG2_LO, _LOG2_HI) for j in range(BINS_PER_OCTAVE)],
    2.0**_LOG2_HI)
"""Upper edges of the ``|a|`` histogram bins (exact float32 values); the last bin ``(EDGES[-1], inf)`` has none."""
N_BINS = len(EDGES) + 1
_CODE0 = (127 + _LOG2_LO) * BINS_PER_OCTAVE - 1  # (float32 bits of EDGES[0]) >> 20, minus one
NEAR_ZERO_EPS = (1e-6, 1e-3, 1e-2, 1e-1)
"""Thresholds at which ``|a| <= eps`` is counted exactly in the extraction pass."""
QUANT_FORMATS = ("int8", "fp8_e4m3")
"""Formats of the quantisation error report (fp8 via ``torch.float8_e4m3fn``)."""
PERCENTILES = (50.0, 90.0, 99.0, 99.9, 99.99)
"""Percentiles of ``|a|`` per unit in the ``stats`` node (``abs_percentile``)."""
_FP8 = {"fp8_e4m3": ("float8_e4m3fn", 448.0)}
_SORT_BELOW_UNITS = 192  # CETT by sorting each position's units below this many units, by dense bins above
_DENSE_CELLS = 1 << 22  # positions x bins per chunk of the dense CETT pass


class SparsityBatch(NamedTuple):
    """What one batch of ``(positions, units)`` values adds to the running sparsity state (torch tensors)."""

    hist: torch.Tensor | None
    """``(units, N_BINS)`` int64 counts of ``|a|`` per bin (``None`` when added into ``hist_out``)."""
    n_small: torch.Tensor
    """``(len(NEAR_ZERO_EPS), units)`` int64 counts of ``|a| <= eps``."""
    cett_sum: torch.Tensor
    """``(N_BINS,)`` float64 sum over positions of the CETT at each upper edge (the last bin: 1)."""
    cett_count: int
    """Positions with a nonzero activation vector (those that enter ``cett_sum``)."""
    quant_sq_err: torch.Tensor
    """``(len(QUANT_FORMATS),)`` float64 squared quantisation error (NaN for a format torch lacks)."""
    sq_norm: float
    """Sum of squared values."""


def _bins(a: torch.Tensor) -> torch.Tensor:
    """Bin of every ``|a|`` (float32, >= 0): ``EDGES[i-1] < |a| <= EDGES[i]``, from the float32 bits (int32)."""
    bits = a.contiguous().view(torch.int32)
    return ((bits - 1) >> 20).sub_(_CODE0).clamp_(0, N_BINS - 1)


def _sort_rows(a: torch.Tensor) -> torch.Tensor:
    """Each row of ``|a|`` sorted ascending: nonnegative float32 sort as their int32 bits; on the CPU numpy's SIMD
    sort of short rows is 10-30x faster than torch's."""
    bits = a.contiguous().view(torch.int32)
    if bits.device.type == "cpu":
        return torch.from_numpy(np.sort(bits.numpy(), axis=1)).view(torch.float32)
    return bits.sort(1)[0].view(torch.float32)


def _cett_sum(a: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Sum over rows of ``sqrt(energy(|a| <= edge) / energy)`` at every upper edge, and the rows with energy."""
    p, u = a.shape
    out = torch.zeros(N_BINS, dtype=torch.float64, device=a.device)
    if u < _SORT_BELOW_UNITS:  # sort each row: telescoping increments of sqrt(cumulative energy) per bin
        s = _sort_rows(a)
        cum = s.square().cumsum_(1)
        total = cum[:, -1:]
        keep = total[:, 0] > 0
        n_keep = int(keep.sum())
        if n_keep < p:
            cum, total, s = cum[keep], total[keep], s[keep]
        r = cum.mul_(1.0 / total).sqrt_()
        inc = torch.diff(r, dim=1, prepend=torch.zeros_like(r[:, :1]))
        out += torch.bincount(_bins(s).reshape(-1), weights=inc.reshape(-1).double(), minlength=N_BINS).cumsum(0)
        return out, n_keep
    count = 0
    step = max(1, _DENSE_CELLS // N_BINS)
    for lo in range(0, p, step):  # energy per (row, bin), cumulated over bins
        ac, ic = a[lo:lo + step], idx[lo:lo + step].long()
        e = torch.zeros(ac.shape[0], N_BINS, dtype=torch.float32, device=a.device)
        e.scatter_add_(1, ic, ac * ac)
        cum = e.cumsum_(1)
        total = cum[:, -1:]
        keep = total[:, 0] > 0
        out += (cum[keep] / total[keep]).sqrt_().sum(0, dtype=torch.float64)
        count += int(keep.sum())
    return out, count


def _count_small(a: torch.Tensor) -> torch.Tensor:
    """``(len(NEAR_ZERO_EPS), units)`` counts of ``|a| <= eps`` (eps in float32); numpy's column sums on the CPU."""
    eps = np.asarray(NEAR_ZERO_EPS, dtype=np.float32)
    if a.device.type == "cpu":
        an = a.numpy()
        return torch.from_numpy(np.stack([(an <= e).sum(0, dtype=np.int64) for e in eps]).reshape(len(eps), -1))
    return torch.stack([(a <= float(e)).sum(0) for e in eps]).reshape(len(eps), -1)


def _quant_sq_err(a: torch.Tensor) -> torch.Tensor:
    """Squared error of quantise -> dequantise with per-unit (column) absmax scales, for each format, from ``|v|``
    (the formats are symmetric). int8: ``scale = absmax / 127``, round half away from zero, as
    :func:`neurobridge.kernels.pool_stats.reference.quantize_int8`; fp8: ``scale = absmax / max``, round to nearest
    even (torch's cast)."""
    amax = a.amax(0)
    errs = []
    for fmt in QUANT_FORMATS:
        fmax = 127.0 if fmt == "int8" else _FP8[fmt][1]
        dtype = None if fmt == "int8" else getattr(torch, _FP8[fmt][0], None)
        if fmt != "int8" and dtype is None:
            errs.append(float("nan"))
            continue
        scale = torch.where(amax > 0, amax / fmax, torch.ones_like(amax))
        q = a / scale
        if fmt == "int8":
            q -= torch.floor(q + 0.5)
        else:
            q -= q.clamp(max=fmax).to(dtype).to(torch.float32)
        errs.append(float(q.mul_(scale).square_().sum(dtype=torch.float64)))
    return torch.tensor(errs, dtype=torch.float64)


def batch_sparsity(x: torch.Tensor, mask: torch.Tensor | None = None, *,
                   hist_out: np.ndarray | None = None) -> SparsityBatch:
    """Histogram, near-zero counts, CETT sums and quantisation errors of one batch of activations.

    Parameters
    ----------
    x : torch.Tensor, shape (batch, tokens, units)
        Any float dtype (computed in float32), on any device.
    mask : torch.Tensor, shape (batch, tokens), optional
        Nonzero marks the valid positions (the others are left out); default all valid.
    hist_out : np.ndarray, shape (units, N_BINS), int64, optional
        Add the histogram counts into this array in place (then ``hist`` is ``None``): with fewer positions than
        bins, only the counted cells are touched instead of a dense ``(units, N_BINS)`` batch histogram.

    Returns
    -------
    SparsityBatch

    Examples
    --------
    >>> import torch
    >>> b = batch_sparsity(torch.tensor([[[0.0, 0.5, -2.0]]]))
    >>> b.hist.sum(1).tolist(), b.n_small[:, 0].tolist(), b.cett_count
    ([1, 1, 1], [1, 1, 1, 1], 1)
    """
    u = x.shape[-1]
    v = (x.reshape(-1, u) if mask is None else x[mask != 0]).to(torch.float32)
    copied = v.untyped_storage().data_ptr() != x.untyped_storage().data_ptr()
    a = v.abs_() if copied else v.abs()  # never write into the layer's output
    idx = _bins(a)
    keys = (idx + torch.arange(u, device=a.device, dtype=torch.int32)[None, :] * N_BINS).reshape(-1)
    if hist_out is not None and a.shape[0] < N_BINS:  # sparse: add one per (unit, bin) key, in place
        flat = torch.from_numpy(hist_out).view(-1)  # shares memory with hist_out
        flat.index_add_(0, keys.cpu(), torch.ones(1, dtype=torch.int64).expand(len(keys)))
        hist = None
    else:
        hist = torch.bincount(keys, minlength=u * N_BINS).reshape(u, N_BINS).cpu()
        if hist_out is not None:
            hist_out += hist.numpy()
            hist = None
    n_small = _count_small(a).cpu()
    if a.shape[0] == 0:
        return SparsityBatch(hist, n_small, torch.zeros(N_BINS, dtype=torch.float64), 0,
                             torch.zeros(len(QUANT_FORMATS), dtype=torch.float64), 0.0)
    cett, count = _cett_sum(a, idx)
    sq_norm = float(a.square().sum(dtype=torch.float64))
    return SparsityBatch(hist, n_small, cett.cpu(), count, _quant_sq_err(a), sq_norm)


# --- reading the state -----------------------------------------------------------------------------------------

def _lower_upper(i: np.ndarray, absmax) -> tuple[np.ndarray, np.ndarray]:
    """Bounds of bins ``i``: (0 or the previous edge, the edge or ``absmax`` for the last bin; capped at absmax)."""
    lo = np.where(i > 0, EDGES[np.clip(i - 1, 0, len(EDGES) - 1)], 0.0)
    hi = np.where(i < len(EDGES), EDGES[np.clip(i, 0, len(EDGES) - 1)], np.inf)
    hi = np.minimum(hi, absmax)
    return lo, np.maximum(hi, lo)


def unit_percentiles(hist: np.ndarray, n_zero: np.ndarray, absmax: np.ndarray, q: Sequence[float]) -> np.ndarray:
    """Percentiles ``q`` (0..100) of ``|a|`` per row of a histogram, as numpy's ``method="inverted_cdf"``.

    The ``k = ceil(q / 100 * n)``-th smallest value (``k >= 1``) is located in its bin exactly; within the bin it is
    interpolated geometrically (linearly in bin 0 after its ``n_zero`` zeros, which give 0 exactly). The exact value
    lies in the same bin, so the relative error is below ``MAX_BIN_RATIO - 1 = 12.5%`` for values above ``2**-20``
    (absolute error below ``2**-20`` in bin 0); ``q = 100`` gives ``absmax`` exactly.

    Parameters
    ----------
    hist : np.ndarray, shape (rows, N_BINS)
    n_zero : np.ndarray, shape (rows,)
        Exact zeros per row (they sit in bin 0).
    absmax : np.ndarray, shape (rows,)
    q : sequence of float

    Returns
    -------
    np.ndarray, shape (rows, len(q))
        NaN for rows with no values.

    Examples
    --------
    >>> import torch
    >>> b = batch_sparsity(torch.tensor([[0.0], [1.0], [3.0]])[:, None, :])
    >>> unit_percentiles(b.hist.numpy(), [1], [3.0], [0, 100]).tolist()
    [[0.0, 3.0]]
    """
    hist = np.asarray(hist, dtype=np.float64)
    n_zero = np.asarray(n_zero, dtype=np.float64)
    absmax = np.asarray(absmax, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    n = hist.sum(1)
    cum = np.cumsum(hist, 1)
    out = np.full((hist.shape[0], len(q)), np.nan)
    for j, qj in enumerate(q):
        k = np.maximum(np.ceil(n * (qj / 100.0)), 1.0)  # numpy's inverted_cdf rank
        i = (cum < k[:, None]).sum(1)  # first bin whose cumulative count reaches k
        ok = n > 0
        i = np.minimum(i, N_BINS - 1)
        rows = np.arange(len(i))
        before = np.where(i > 0, cum[rows, np.maximum(i - 1, 0)], 0.0)
        h = hist[rows, i]
        lo, hi = _lower_upper(i, absmax)
        f = np.where(h > 0, (k - before) / np.where(h > 0, h, 1.0), 1.0)
        geo = lo * (hi / np.where(lo > 0, lo, 1.0)) ** f
        tiny = h - n_zero  # bin 0: zeros first, then values in (0, 2**-20]
        f0 = np.where(tiny > 0, (k - n_zero) / np.where(tiny > 0, tiny, 1.0), 0.0)
        first = np.where(k <= n_zero, 0.0, hi * f0)
        val = np.where(i == 0, first, geo)
        out[ok, j] = np.minimum(val, absmax)[ok]
    return out


def _check_fraction(values, name: str, *, low_open: bool, high_open: bool, example: str) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(values, dtype=np.float64))
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a number or a non-empty 1-d sequence of numbers, got {values!r}")
    lo_bad = arr <= 0 if low_open else arr < 0
    hi_bad = arr >= 1 if high_open else arr > 1
    bad = ~np.isfinite(arr) | lo_bad | hi_bad
    if bad.any():
        interval = ("(" if low_open else "[") + "0, 1" + (")" if high_open else "]")
        raise ValueError(f"{name} must lie in {interval}, got {arr[bad].tolist()}; pass e.g. {name}={example}")
    return arr


def _check_eps(eps) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(NEAR_ZERO_EPS if eps is None else eps, dtype=np.float64))
    if arr.ndim != 1 or arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"eps must be finite thresholds >= 0 on |activation| (e.g. eps={NEAR_ZERO_EPS}), got {eps!r}")
    return arr


def _check_percentiles(percentiles) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(percentiles, dtype=np.float64))
    if arr.ndim != 1 or arr.size == 0 or not np.all(np.isfinite(arr)) or np.any((arr < 0) | (arr > 100)):
        raise ValueError(f"percentiles must lie in [0, 100] (e.g. percentiles=(99.0, 99.9)), got {percentiles!r}")
    return arr


def _near_zero(hist_total: np.ndarray, n_small_total: np.ndarray, n_zero: float, count: float, absmax: float,
               eps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``frac(|a| <= eps)``: exact at 0, at NEAR_ZERO_EPS, at the edges and above absmax; else interpolated
    log-linearly within the bin holding eps (linearly in bin 0, after the zeros)."""
    cum = np.concatenate([[0.0], np.cumsum(hist_total)])  # cum[i + 1] = count(|a| <= EDGES[i])
    recorded = np.asarray(NEAR_ZERO_EPS, dtype=np.float32).astype(np.float64)
    out, exact = np.empty(len(eps)), np.zeros(len(eps), dtype=bool)
    for j, e in enumerate(eps.astype(np.float32).astype(np.float64)):
        i = int(np.searchsorted(EDGES, e, side="left"))  # EDGES[i-1] < e <= EDGES[i]
        exact[j] = True
        if e == 0:
            out[j] = n_zero
        elif e in recorded:
            out[j] = n_small_total[int(np.flatnonzero(recorded == e)[0])]
        elif e >= absmax:
            out[j] = count
        elif i < len(EDGES) and EDGES[i] == e:
            out[j] = cum[i + 1]
        else:
            exact[j] = False
            lo = EDGES[i - 1] if i > 0 else 0.0
            hi = EDGES[i] if i < len(EDGES) else absmax
            if i == 0:  # zeros, then the tiny values spread over (0, 2**-20]
                out[j] = n_zero + (cum[1] - n_zero) * e / hi
            else:
                out[j] = cum[i] + (cum[i + 1] - cum[i]) * math.log(e / lo) / math.log(hi / lo)
    return (out / count if count else np.full(len(eps), np.nan)), exact


def _cett(curve: np.ndarray, ratio: np.ndarray, frac_nonzero: float, absmax: float, c: float):
    """Threshold, activation ratio and its exact bounds at target CETT ``c`` (see the module docstring)."""
    i = int(np.argmax(curve > c))  # curve[-1] == 1 > c
    m_lo = curve[i - 1] if i > 0 else 0.0
    r_lo = ratio[i - 1] if i > 0 else frac_nonzero  # frac(|a| > lower edge); above 0: the nonzero fraction
    e_lo = EDGES[i - 1] if i > 0 else 0.0
    e_hi = EDGES[i] if i < len(EDGES) else max(absmax, EDGES[-1])
    w = (c - m_lo) / (curve[i] - m_lo) if curve[i] > m_lo else 0.0
    thr = e_lo * (e_hi / e_lo) ** w if e_lo > 0 else w * e_hi
    return thr, r_lo + w * (ratio[i] - r_lo), ratio[i], r_lo


def _require(ds: xr.Dataset, layer: str) -> None:
    if "hist" not in ds:
        raise ValueError(f"the stats node of layer {layer!r} has no sparsity statistics (written by an older "
                         "neurobridge); extract again with nb.extract.activations(..., stats=True)")


def sparsity(tree: xr.DataTree, *, eps: float | Sequence[float] | None = None,
             cett: float | Sequence[float] = (0.2,), lazy: float = 0.01,
             percentiles: float | Sequence[float] = (99.0, 99.9)) -> xr.Dataset:
    """Activation sparsity and quantisation metrics per layer, from the statistics of one extraction pass.

    Parameters
    ----------
    tree : xr.DataTree
        The result of :func:`activations` (or :func:`open_store`) with ``stats=True``.
    eps : float or sequence of float, optional
        Thresholds for the near-zero fractions ``frac(|a| <= eps)`` (default :data:`NEAR_ZERO_EPS`). Exact at 0,
        at :data:`NEAR_ZERO_EPS` and at the histogram edges; elsewhere interpolated (log-linearly) within the
        ``|a|`` bin holding ``eps``, whose count bounds the error (coordinate ``near_zero_exact`` says which).
    cett : float or sequence of float
        Target CETT values in (0, 1): the per-layer threshold drops the smallest activations until they carry this
        fraction of the norm of each position's activation vector (averaged over positions; see
        :mod:`neurobridge.extract._sparsity` for the definition and the error bounds).
    lazy : float
        A unit is *lazy* when it is positive (activated, for ReLU/GELU layers) in at most this fraction of
        positions, in [0, 1) ("The lazy neuron phenomenon", Li et al. 2023); *dead* units are never positive.
    percentiles : float or sequence of float
        Percentiles (0..100) of ``|a|`` over all units of the layer (``abs_percentile``).

    Returns
    -------
    xr.Dataset
        Dim ``layer`` (depth order) and:

        - ``frac_near_zero`` ``(layer, eps)``: fraction of activations with ``|a| <= eps``; ``frac_zero``: ``a == 0``.
        - ``cett_threshold`` (the smallest kept magnitude ``t_c``, within one bin), ``activation_ratio`` (fraction
          kept, interpolated), ``activation_ratio_low`` /
          ``activation_ratio_high`` (exact bounds of the exact ratio), ``cett_sparsity`` (``1 - activation_ratio``),
          all ``(layer, cett)``.
        - ``frac_active`` (positive entries: Li et al.'s "% nonzero" after a ReLU), ``frac_dead_units``,
          ``frac_lazy_units`` ``(layer,)``.
        - ``quant_rel_error`` ``(layer, format)``: relative RMS error ``||a - deq(q(a))|| / ||a||`` with one per-unit
          absmax scale per extraction batch (int8: symmetric, ``absmax / 127``, round half away from zero; fp8 e4m3:
          ``absmax / 448``, round to nearest even), over the raw activations.
        - ``absmax`` ``(layer,)`` and ``abs_percentile`` ``(layer, percentile)`` of ``|a|`` over the layer.
        - ``cett_curve`` and ``activation_ratio_curve`` ``(layer, threshold)``: mean CETT and ``frac(|a| > t)``
          when every ``|a| <= t`` is dropped, at the histogram edges ``t`` (exact).

    Examples
    --------
    >>> import torch, neurobridge as nb
    >>> _ = torch.manual_seed(0)
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.ReLU())
    >>> tree = nb.extract.activations(net, torch.randn(20, 3), progress=False)
    >>> ds = nb.extract.sparsity(tree, cett=0.2)
    >>> ds["activation_ratio"].dims, bool((ds["frac_zero"] > 0.2).sel(layer="1"))
    (('layer', 'cett'), True)
    """
    cett = _check_fraction(cett, "cett", low_open=True, high_open=True, example="(0.1, 0.2)")
    lazy = float(_check_fraction(lazy, "lazy", low_open=False, high_open=True, example="0.01")[0])
    eps = _check_eps(eps)
    percentiles = _check_percentiles(percentiles)
    if "stats" not in tree.children:
        raise ValueError("the tree has no 'stats' node; extract with nb.extract.activations(..., stats=True)")
    layers = list(tree.attrs.get("layers", [n for n in tree.children if n != "stats"]))
    rows: dict[str, list] = {k: [] for k in ("frac_near_zero", "near_zero_exact", "frac_zero", "cett_threshold",
                                             "activation_ratio", "activation_ratio_low", "activation_ratio_high",
                                             "frac_active", "frac_dead_units", "frac_lazy_units", "quant_rel_error",
                                             "absmax", "abs_percentile", "cett_curve", "activation_ratio_curve")}
    for layer in layers:
        if layer not in tree["stats"].children:
            raise ValueError(f"the stats node has no entry for layer {layer!r}; re-run the extraction with stats=True")
        ds = tree["stats"][layer].to_dataset()
        _require(ds, layer)
        count = float(ds["count"].values[0]) if ds.sizes["unit"] else 0.0
        n_units = ds.sizes["unit"]
        total = count * n_units
        hist_total = np.asarray(ds["hist"].values, dtype=np.float64).sum(0)
        n_zero_u = np.rint(np.asarray(ds["frac_zero"].values) * count)
        n_small = np.rint(np.asarray(ds["frac_near_zero"].values) * count).sum(1)
        absmax = float(np.asarray(ds["absmax"].values).max()) if n_units else np.nan
        near, exact = _near_zero(hist_total, n_small, float(n_zero_u.sum()), total, absmax, eps)
        curve = np.asarray(ds["cett_curve"].values, dtype=np.float64)
        ratio = 1.0 - np.cumsum(hist_total) / total if total else np.full(N_BINS, np.nan)
        frac_nonzero = 1.0 - n_zero_u.sum() / total if total else np.nan
        out = np.array([_cett(curve, ratio, frac_nonzero, absmax, c) for c in cett]) if total and int(
            ds["cett_count"].values) else np.full((len(cett), 4), np.nan)
        freq = np.asarray(ds["frac_pos"].values)
        rows["frac_near_zero"].append(near)
        rows["near_zero_exact"].append(exact)
        rows["frac_zero"].append(n_zero_u.sum() / total if total else np.nan)
        for k, col in zip(("cett_threshold", "activation_ratio", "activation_ratio_low", "activation_ratio_high"),
                          out.T, strict=True):
            rows[k].append(col)
        rows["frac_active"].append(float(freq.mean()) if n_units else np.nan)
        rows["frac_dead_units"].append(float((freq == 0).mean()) if n_units else np.nan)
        rows["frac_lazy_units"].append(float((freq <= lazy).mean()) if n_units else np.nan)
        rows["quant_rel_error"].append(np.asarray(ds["quant_rel_error"].values, dtype=np.float64))
        rows["absmax"].append(absmax)
        rows["abs_percentile"].append(unit_percentiles(hist_total[None], [n_zero_u.sum()], [absmax], percentiles)[0])
        rows["cett_curve"].append(curve[:-1])
        rows["activation_ratio_curve"].append(ratio[:-1])
    exact_any = np.all(np.asarray(rows.pop("near_zero_exact")).reshape(len(layers), len(eps)), axis=0) if layers \
        else np.zeros(len(eps), dtype=bool)
    shape = {"eps": len(eps), "cett": len(cett), "format": len(QUANT_FORMATS), "percentile": len(percentiles),
             "threshold": len(EDGES)}
    dims = {"frac_near_zero": ("layer", "eps"), "frac_zero": ("layer",), "cett_threshold": ("layer", "cett"),
            "activation_ratio": ("layer", "cett"), "activation_ratio_low": ("layer", "cett"),
            "activation_ratio_high": ("layer", "cett"), "frac_active": ("layer",), "frac_dead_units": ("layer",),
            "frac_lazy_units": ("layer",), "quant_rel_error": ("layer", "format"), "absmax": ("layer",),
            "abs_percentile": ("layer", "percentile"), "cett_curve": ("layer", "threshold"),
            "activation_ratio_curve": ("layer", "threshold")}
    data = {k: (dims[k], np.asarray(v, dtype=np.float64).reshape((len(layers),) + tuple(shape[d] for d in dims[k][1:])))
            for k, v in rows.items()}
    out = xr.Dataset(data, coords={"layer": layers, "eps": eps, "near_zero_exact": ("eps", exact_any), "cett": cett,
                                   "format": list(QUANT_FORMATS), "percentile": percentiles, "threshold": EDGES},
                     attrs={"model": str(tree.attrs.get("model", "")), "lazy": lazy,
                            "bins_per_octave": BINS_PER_OCTAVE,
                            "cett_definition": "mean over positions of ||a[|a| <= threshold]|| / ||a|| (identity "
                                               "read-out), threshold per layer at the target CETT"})
    out["cett_sparsity"] = 1.0 - out["activation_ratio"]
    return out
