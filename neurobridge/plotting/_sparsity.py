"""Activation sparsity and quantisation per layer of one model (from :func:`neurobridge.extract.sparsity`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

__all__ = ["plot_sparsity"]

_NEEDED = ("frac_near_zero", "frac_zero", "activation_ratio", "activation_ratio_low", "activation_ratio_high",
           "cett_curve", "activation_ratio_curve", "frac_active", "frac_dead_units", "frac_lazy_units",
           "abs_percentile", "absmax", "quant_rel_error")


def _plt():
    from neurobridge.core import optional_import

    return optional_import("matplotlib.pyplot", purpose="plotting")


def _short(layers: list[str]) -> list[str]:
    """Layer names without the dotted prefix they all share (``encoder.layer.3.output`` -> ``3.output``)."""
    parts = [name.split(".") for name in layers]
    n = 0
    while len(layers) > 1 and all(len(p) > n + 1 and p[n] == parts[0][n] for p in parts):
        n += 1
    return [".".join(p[n:]) for p in parts]


def _layer_axis(ax, layers: list[str]) -> None:
    step = max(1, len(layers) // 12)
    ticks = list(range(0, len(layers), step))
    names = _short(layers)
    ax.set_xticks(ticks)
    ax.set_xticklabels([names[i] for i in ticks], rotation=60, ha="right", fontsize=7)
    ax.set_xlabel("layer")


def plot_sparsity(stats: xr.DataTree | xr.Dataset, *, cett: float | Sequence[float] = (0.2,),
                  eps: float | Sequence[float] | None = None, lazy: float = 0.01, title: str | None = None,
                  fig=None):
    """Six panels per layer of one model: near-zero fractions, CETT activation ratio, the activation-ratio vs CETT
    curve of every layer, lazy/dead units, percentiles of ``|a|`` and int8/fp8 quantisation errors.

    Parameters
    ----------
    stats : xr.DataTree or xr.Dataset
        An extraction tree with ``stats`` (passed to :func:`neurobridge.extract.sparsity` with ``cett``, ``eps``,
        ``lazy``), or the Dataset that function returns.
    cett, eps, lazy
        As in :func:`neurobridge.extract.sparsity` (used only for a tree).
    title : str, optional
        Figure title; default the model name.
    fig : matplotlib Figure, optional
        Drawn into (cleared first); default a new 13 x 7 inch figure.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import torch, neurobridge as nb
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.ReLU(), torch.nn.Linear(16, 8))
    >>> tree = nb.extract.activations(net, torch.randn(30, 3), layers="*", progress=False)
    >>> fig = nb.plotting.plot_sparsity(tree)
    >>> len(fig.axes)
    6
    """
    plt = _plt()
    if isinstance(stats, xr.DataTree):
        from neurobridge.extract import sparsity

        ds = sparsity(stats, cett=cett, eps=eps, lazy=lazy, percentiles=(99.0, 99.9, 99.99))
    elif isinstance(stats, xr.Dataset):
        missing = [v for v in _NEEDED if v not in stats]
        if missing:
            raise ValueError(f"stats Dataset lacks {missing}; pass the result of nb.extract.sparsity(tree) or the tree")
        ds = stats
    else:
        raise TypeError(f"stats must be an extraction xr.DataTree or the xr.Dataset of nb.extract.sparsity, got "
                        f"{type(stats).__name__}")
    layers = [str(v) for v in ds["layer"].values]
    if not layers:
        raise ValueError("stats has no layers to plot")
    x = np.arange(len(layers))
    if fig is None:
        fig = plt.figure(figsize=(13, 7))
    else:
        fig.clear()
    axes = fig.subplots(2, 3).ravel()

    ax = axes[0]
    ax.plot(x, ds["frac_zero"].values, "k-o", ms=3, label="a = 0")
    for e in ds["eps"].values:
        ax.plot(x, ds["frac_near_zero"].sel(eps=e).values, "-o", ms=3, label=f"|a| <= {e:g}")
    ax.set(title="near-zero activations", ylabel="fraction", ylim=(-0.02, 1.02))
    ax.legend(fontsize=7)

    ax = axes[1]
    for c in ds["cett"].values:
        mid = ds["activation_ratio"].sel(cett=c).values
        lo, hi = ds["activation_ratio_low"].sel(cett=c).values, ds["activation_ratio_high"].sel(cett=c).values
        ax.errorbar(x, mid, yerr=[mid - lo, hi - mid], fmt="-o", ms=3, capsize=2, label=f"CETT {c:g}")
    ax.set(title="CETT activation ratio (kept)", ylabel="activation ratio", ylim=(-0.02, 1.02))
    ax.legend(fontsize=7)

    ax = axes[2]
    colors = plt.get_cmap("viridis")(np.linspace(0, 1, len(layers)))
    short = _short(layers)
    for i, layer in enumerate(layers):
        ax.plot(ds["cett_curve"].sel(layer=layer).values, ds["activation_ratio_curve"].sel(layer=layer).values,
                color=colors[i], lw=1, label=short[i] if i in (0, len(layers) - 1) else None)
    for c in ds["cett"].values:
        ax.axvline(c, color="grey", ls=":", lw=1)
    ax.set(title="activation ratio vs CETT", xlabel="CETT (norm fraction dropped)", ylabel="activation ratio",
           xlim=(0, 1), ylim=(-0.02, 1.02))
    ax.legend(fontsize=7, title="depth", title_fontsize=7)

    ax = axes[3]
    lazy_rate = ds.attrs.get("lazy", "")
    ax.plot(x, ds["frac_active"].values, "-o", ms=3, label="active entries (a > 0)")
    ax.plot(x, ds["frac_lazy_units"].values, "-s", ms=3, label=f"lazy units (active <= {lazy_rate})")
    ax.plot(x, ds["frac_dead_units"].values, "-^", ms=3, label="dead units (never active)")
    ax.set(title="lazy neurons", ylabel="fraction", ylim=(-0.02, 1.02))
    ax.legend(fontsize=7)

    ax = axes[4]
    for p in ds["percentile"].values:
        ax.plot(x, ds["abs_percentile"].sel(percentile=p).values, "-o", ms=3, label=f"p{p:g}")
    ax.plot(x, ds["absmax"].values, "k-o", ms=3, label="absmax")
    ax.set(title="|a| percentiles (layer)", ylabel="|a|", yscale="log")
    ax.legend(fontsize=7)

    ax = axes[5]
    for f in ds["format"].values:
        ax.plot(x, ds["quant_rel_error"].sel(format=f).values, "-o", ms=3, label=str(f))
    ax.set(title="quantisation error (per-unit absmax)", ylabel="relative RMS error", yscale="log")
    ax.legend(fontsize=7)

    for i in (0, 1, 3, 4, 5):
        _layer_axis(axes[i], layers)
    fig.suptitle(title if title is not None else str(ds.attrs.get("model", "")))
    fig.tight_layout()
    return fig
