"""One-pass per-unit activation statistics, the top-k ("massive") activations, sparsity, and :func:`report`."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import xarray as xr

from . import _sparsity as _sp

__all__ = ["RunningStats", "report"]


class RunningStats:
    """Per-unit count/mean/M2/max|x|/zeros/positives merged over batches (Chan et al.), plus a top-k list and the
    sparsity/quantisation state of :mod:`neurobridge.extract._sparsity` (``|x|`` histograms, near-zero counts, CETT
    sums, quantisation errors), all of a size independent of the number of stimuli.

    The top-k holds the largest magnitudes over (stimulus, unit) pairs, each pair represented by its largest
    |x| over tokens/positions (so one entry per stimulus and unit) with that token's index.
    """

    FIELDS = ("count", "mean", "m2", "absmax", "n_zero", "n_pos", "top_value", "top_unit", "top_token", "top_row",
              "hist", "n_small", "cett_sum", "cett_count", "quant_sq_err", "sq_norm")
    SPARSITY_FIELDS = ("hist", "n_small", "cett_sum", "cett_count", "quant_sq_err", "sq_norm")
    """State that a record written before the sparsity statistics lacks (then they are left out)."""

    def __init__(self, n_units: int, k: int = 10):
        self.k = int(k)
        self.count = 0
        self.mean = np.zeros(n_units)
        self.m2 = np.zeros(n_units)
        self.absmax = np.zeros(n_units)
        self.n_zero = np.zeros(n_units)
        self.n_pos = np.zeros(n_units)
        self.top_value = np.zeros(0)
        self.top_unit = np.zeros(0, dtype=np.int64)
        self.top_token = np.zeros(0, dtype=np.int64)
        self.top_row = np.zeros(0, dtype=np.int64)
        self.hist: np.ndarray | None = np.zeros((n_units, _sp.N_BINS), dtype=np.int64)
        self.n_small = np.zeros((len(_sp.NEAR_ZERO_EPS), n_units), dtype=np.int64)
        self.cett_sum = np.zeros(_sp.N_BINS)
        self.cett_count = 0
        self.quant_sq_err = np.zeros(len(_sp.QUANT_FORMATS))
        self.sq_norm = 0.0

    def update(self, ps, row_offset: int, x: torch.Tensor | None = None, mask: torch.Tensor | None = None) -> None:
        """Merge the statistics of one :class:`PoolStats` whose rows start at global row ``row_offset``, and the
        sparsity statistics of the batch's raw ``(batch, tokens, units)`` values ``x`` (valid where ``mask``)."""
        n_b = int(ps.count)
        if n_b == 0:
            return
        if x is not None and self.hist is not None:
            if not (self.hist.flags.writeable and self.hist.flags.c_contiguous and self.hist.dtype == np.int64):
                self.hist = np.array(self.hist, dtype=np.int64)  # a state read from a file
            b = _sp.batch_sparsity(x, mask, hist_out=self.hist)
            self.n_small += b.n_small.numpy()
            self.cett_sum += b.cett_sum.numpy()
            self.cett_count += int(b.cett_count)
            self.quant_sq_err += b.quant_sq_err.numpy()
            self.sq_norm += float(b.sq_norm)
        mean_b = ps.mean.detach().to("cpu", torch.float64).numpy()
        m2_b = ps.m2.detach().to("cpu", torch.float64).numpy()
        n = self.count + n_b
        delta = mean_b - self.mean
        self.mean = self.mean + delta * (n_b / n)
        self.m2 = self.m2 + m2_b + delta**2 * (self.count * n_b / n)
        self.count = n
        self.absmax = np.maximum(self.absmax, ps.absmax.detach().cpu().double().numpy())
        self.n_zero += ps.n_zero.detach().cpu().double().numpy()
        self.n_pos += ps.n_pos.detach().cpu().double().numpy()
        ra = ps.row_absmax
        k = min(self.k, ra.numel())
        if k:
            vals, flat = ra.reshape(-1).topk(k)
            vals, flat = vals.cpu().double().numpy(), flat.cpu().numpy()
            rows, units = np.divmod(flat, ra.shape[1])
            tokens = ps.row_argmax.reshape(-1)[torch.as_tensor(flat, device=ra.device)].cpu().numpy()
            keep = vals >= 0
            self._merge_top(vals[keep], units[keep], tokens[keep], rows[keep] + row_offset)

    def _merge_top(self, vals, units, tokens, rows) -> None:
        v = np.concatenate([self.top_value, vals])
        u = np.concatenate([self.top_unit, units])
        t = np.concatenate([self.top_token, tokens])
        r = np.concatenate([self.top_row, rows])
        order = np.lexsort((u, r, -v))[: self.k]
        self.top_value, self.top_unit, self.top_token, self.top_row = v[order], u[order], t[order], r[order]

    def state(self) -> dict[str, np.ndarray]:
        """Arrays to persist (resume); without the sparsity fields when this state has none."""
        skip = self.SPARSITY_FIELDS if self.hist is None else ()
        return {f: np.asarray(getattr(self, f)) for f in self.FIELDS if f not in skip}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray], k: int) -> RunningStats:
        """Rebuild from :meth:`state`; a state without the sparsity fields gives none (and updates add none)."""
        out = cls(len(state["mean"]), k)
        for f in cls.FIELDS:
            if f in state:
                setattr(out, f, np.asarray(state[f]))
        if any(f not in state for f in cls.SPARSITY_FIELDS):
            out.hist = None
        else:
            out.cett_count = int(out.cett_count)
            out.sq_norm = float(out.sq_norm)
        out.count = int(out.count)
        return out

    def to_dataset(self, stimulus_ids: np.ndarray, *, layer: str, model: str, unit=None) -> xr.Dataset:
        """Per-unit statistics (dim ``unit``) and the top-k (dim ``rank``) as an ``xr.Dataset``."""
        n_units = len(self.mean)
        count = float(self.count)
        var = self.m2 / count if count else np.full(n_units, np.nan)
        denom = count if count else np.nan
        units = np.arange(n_units) if unit is None else np.asarray(unit)
        ds = xr.Dataset(
            {
                "count": ("unit", np.full(n_units, self.count, dtype=np.int64)),
                "mean": ("unit", self.mean),
                "var": ("unit", var),
                "absmax": ("unit", self.absmax),
                "frac_zero": ("unit", self.n_zero / denom),
                "frac_pos": ("unit", self.n_pos / denom),
                "top_value": ("rank", self.top_value),
                "top_unit": ("rank", units[self.top_unit] if len(self.top_unit) else self.top_unit),
                "top_token": ("rank", self.top_token),
                "top_stimulus": ("rank", np.asarray(stimulus_ids)[self.top_row] if len(self.top_row)
                                 else np.asarray(stimulus_ids)[:0]),
            },
            coords={"unit": units, "rank": np.arange(len(self.top_value))},
            attrs={"layer": layer, "model": model},
        )
        if self.hist is not None:
            ds = ds.assign(self._sparsity_vars(denom)).assign_coords(
                bin=np.append(_sp.EDGES, np.inf), eps=np.asarray(_sp.NEAR_ZERO_EPS),
                format=list(_sp.QUANT_FORMATS), percentile=np.asarray(_sp.PERCENTILES))
        return ds

    def _sparsity_vars(self, denom: float) -> dict:
        err = np.sqrt(self.quant_sq_err / self.sq_norm) if self.sq_norm > 0 else np.full(len(self.quant_sq_err), np.nan)
        curve = self.cett_sum / self.cett_count if self.cett_count else np.full(_sp.N_BINS, np.nan)
        return {
            "hist": (("unit", "bin"), self.hist.copy()),
            "frac_near_zero": (("eps", "unit"), self.n_small / denom),
            "cett_curve": ("bin", curve),
            "cett_count": ((), np.int64(self.cett_count)),
            "quant_rel_error": ("format", err),
            "abs_percentile": (("unit", "percentile"),
                               _sp.unit_percentiles(self.hist, self.n_zero, self.absmax, _sp.PERCENTILES)),
        }


def report(tree: xr.DataTree, *, threshold: float = 100.0, eps: float | Sequence[float] | None = None,
           cett: float | Sequence[float] = (0.2,), lazy: float = 0.01):
    """Summarise the activation statistics of an extraction: one row per layer, massive activations flagged,
    activation sparsity and quantisation errors.

    Parameters
    ----------
    tree : xr.DataTree
        The result of :func:`activations` with ``stats=True`` (it has a ``stats`` node).
    threshold : float
        A layer carries *massive activations* when its largest magnitude is at least ``threshold`` times the
        typical magnitude (the median over units of the root mean square), as in Sun et al. (2024).
    eps, cett, lazy
        Near-zero thresholds, target CETT values in (0, 1) and the lazy-unit rate, as in :func:`sparsity`.

    Returns
    -------
    pandas.DataFrame
        Index ``layer`` (depth order). Columns: ``n_units``, ``count`` (positions per unit), ``mean``, ``std``
        (root mean of per-unit variances), ``typical`` (median per-unit RMS), ``absmax``, ``frac_zero``,
        ``frac_pos``, ``top_value``, ``top_unit``, ``top_token``, ``top_stimulus``, ``ratio``
        (``top_value / typical``), ``n_massive_units`` (units whose max |x| exceeds ``threshold * typical``),
        ``massive`` (bool), and ``int8_rel_error`` (of the stored values) when the extraction was compressed.
        From :func:`sparsity` (NaN for statistics written without them): ``frac_abs_le_<eps>`` per ``eps``,
        ``cett<c>_threshold`` and ``cett<c>_activation_ratio`` per target ``c``, ``frac_active``,
        ``frac_dead_units``, ``frac_lazy_units``, ``abs_p99.9`` (of |x| over the layer) and
        ``quant_<format>_rel_error`` (raw activations, per-unit absmax scale per batch) for int8 and fp8_e4m3.

    Examples
    --------
    >>> import torch, neurobridge as nb
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU())
    >>> tree = nb.extract.activations(net, torch.randn(8, 3), progress=False)
    >>> nb.extract.report(tree).index.tolist()
    ['0', '1']
    """
    import pandas as pd

    if "stats" not in tree.children:
        raise ValueError("the tree has no 'stats' node; extract with nb.extract.activations(..., stats=True)")
    layers = list(tree.attrs.get("layers", [n for n in tree.children if n != "stats"]))
    extra = _sparsity_columns(tree, layers, eps=eps, cett=cett, lazy=lazy)
    rows = []
    for layer in layers:
        if layer not in tree["stats"].children:
            raise ValueError(f"the stats node has no entry for layer {layer!r}; re-run the extraction with stats=True")
        ds = tree["stats"][layer].to_dataset()
        mean, var = np.asarray(ds["mean"].values), np.asarray(ds["var"].values)
        rms = np.sqrt(mean**2 + var)
        typical = float(np.median(rms)) if rms.size else float("nan")
        has_top = ds.sizes.get("rank", 0) > 0
        top = float(ds["top_value"].values[0]) if has_top else float("nan")
        ratio = top / typical if typical > 0 else float("inf")
        absmax = np.asarray(ds["absmax"].values)
        row = {
            "layer": layer,
            "n_units": int(ds.sizes["unit"]),
            "count": int(ds["count"].values[0]) if ds.sizes["unit"] else 0,
            "mean": float(mean.mean()),
            "std": float(np.sqrt(var.mean())),
            "typical": typical,
            "absmax": float(absmax.max()) if absmax.size else float("nan"),
            "frac_zero": float(ds["frac_zero"].values.mean()),
            "frac_pos": float(ds["frac_pos"].values.mean()),
            "top_value": top,
            "top_unit": ds["top_unit"].values[0].item() if has_top else None,
            "top_token": int(ds["top_token"].values[0]) if has_top else None,
            "top_stimulus": ds["top_stimulus"].values[0].item() if has_top else None,
            "ratio": ratio,
            "n_massive_units": int((absmax >= threshold * typical).sum()) if typical > 0 else 0,
            "massive": bool(ratio >= threshold),
        }
        node = tree[layer] if layer in tree.children else None
        if node is not None and "int8_rel_error" in node.attrs:
            row["int8_rel_error"] = float(node.attrs["int8_rel_error"])
        row.update(extra.get(layer, {}))
        rows.append(row)
    return pd.DataFrame(rows).set_index("layer")


def _sparsity_columns(tree: xr.DataTree, layers: list[str], *, eps, cett, lazy) -> dict[str, dict]:
    """The :func:`report` columns from :func:`sparsity`, per layer (NaN where the stats lack them)."""
    eps_v = _sp._check_eps(eps)
    cett_v = _sp._check_fraction(cett, "cett", low_open=True, high_open=True, example="(0.1, 0.2)")
    _sp._check_fraction(lazy, "lazy", low_open=False, high_open=True, example="0.01")
    names = ([f"frac_abs_le_{e:g}" for e in eps_v]
             + [f"cett{c:g}_{k}" for c in cett_v for k in ("threshold", "activation_ratio")]
             + ["frac_active", "frac_dead_units", "frac_lazy_units", "abs_p99.9"]
             + [f"quant_{f}_rel_error" for f in _sp.QUANT_FORMATS])
    stats = tree["stats"]
    if not all(layer in stats.children and "hist" in stats[layer].dataset for layer in layers):
        return {layer: dict.fromkeys(names, float("nan")) for layer in layers}
    sp = _sp.sparsity(tree, eps=eps_v, cett=cett_v, lazy=lazy, percentiles=(99.9,))
    out = {}
    for layer in layers:
        d = sp.sel(layer=layer)
        vals = (list(d["frac_near_zero"].values)
                + [v for c in range(len(cett_v)) for v in (d["cett_threshold"].values[c],
                                                         d["activation_ratio"].values[c])]
                + [d["frac_active"].item(), d["frac_dead_units"].item(), d["frac_lazy_units"].item(),
                   d["abs_percentile"].values[0]]
                + list(d["quant_rel_error"].values))
        out[layer] = {k: float(v) for k, v in zip(names, vals, strict=True)}
    return out
