"""Layer profiles (score per layer with CI and noise-ceiling band) and layer x time maps."""

from __future__ import annotations

import numpy as np
import xarray as xr

__all__ = ["plot_layer_profile", "plot_layer_time"]


def _plt():
    from neurobridge.core import optional_import

    return optional_import("matplotlib.pyplot", purpose="plotting")


def _as_dataset(scores) -> xr.Dataset:
    if isinstance(scores, xr.DataArray):
        return scores.rename("score").to_dataset()
    if isinstance(scores, xr.Dataset):
        if "score" not in scores:
            raise ValueError(f"scores Dataset needs a 'score' variable; it has {list(scores.data_vars)}")
        return scores
    raise TypeError(f"scores must be an xr.DataArray or xr.Dataset, got {type(scores).__name__}")


def _scalar(ds: xr.Dataset, name: str) -> float:
    if name not in ds:
        return np.nan
    vals = np.asarray(ds[name].values, dtype=float).ravel()
    vals = vals[np.isfinite(vals)]
    return float(vals[0]) if len(vals) else np.nan


def plot_layer_profile(scores: xr.DataArray | xr.Dataset, *, ax=None, title: str | None = None,
                       ylabel: str = "score", relative_depth: bool | None = None):
    """Score per layer, with CI band, noise-ceiling band and the held-out selected layer marked.

    Parameters
    ----------
    scores : xr.DataArray or xr.Dataset
        ``score`` over ``layer`` (optionally also ``model``); a Dataset may add ``ci_low``/``ci_high``
        (same dims), ``ceiling_lower``/``ceiling_upper`` (scalars, drawn as a grey band), ``depth``
        (layer order per model) and ``selected_layer`` (per model, marked with a star), e.g.
        ``scores.sel(benchmark=name)`` from :func:`neurobridge.benchmark.run`.
    ax : matplotlib Axes, optional
    title, ylabel : str
    relative_depth : bool, optional
        x axis as fraction of depth (0..1) instead of layer names; default when models have different layers.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> da = xr.DataArray([0.1, 0.3, 0.2], dims="layer", coords={"layer": ["a", "b", "c"]})
    >>> ax = plot_layer_profile(da)
    >>> [t.get_text() for t in ax.get_xticklabels()]
    ['a', 'b', 'c']
    """
    plt = _plt()
    ds = _as_dataset(scores)
    if "layer" not in ds["score"].dims:
        raise ValueError(f"score needs a 'layer' dim, found {ds['score'].dims}")
    extra = [d for d in ds["score"].dims if d not in ("layer", "model")]
    if extra:
        raise ValueError(f"select one value of {extra} first (e.g. scores.sel(benchmark=...)); "
                         "layer x time scores go to plot_layer_time")
    if "model" not in ds["score"].dims:
        ds = ds.expand_dims(model=[str(ds.attrs.get("model", ""))])
        for v in ("ceiling_lower", "ceiling_upper"):
            if v in ds and "model" in ds[v].dims:
                ds[v] = ds[v].isel(model=0)
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.8))
    models = ds["model"].values.tolist()
    per_model = []
    for m in models:
        d = ds.sel(model=m)
        score = d["score"].values.astype(float)
        depth = d["depth"].values.astype(float) if "depth" in d else np.arange(len(score), dtype=float)
        keep = np.isfinite(score) & np.isfinite(depth)
        order = np.flatnonzero(keep)[np.argsort(depth[keep], kind="stable")]
        per_model.append((m, d, order))
    layer_sets = {tuple(d["layer"].values[o].tolist()) for _, d, o in per_model}
    if relative_depth is None:
        relative_depth = len(layer_sets) > 1
    for i, (m, d, order) in enumerate(per_model):
        names = d["layer"].values[order].tolist()
        n = len(order)
        x = np.linspace(0, 1, n) if relative_depth else np.arange(n)
        y = d["score"].values[order].astype(float)
        color = f"C{i}"
        label = m or None
        ax.plot(x, y, "o-", color=color, label=label, ms=4)
        if "ci_low" in d and "ci_high" in d:
            lo, hi = d["ci_low"].values[order].astype(float), d["ci_high"].values[order].astype(float)
            if np.isfinite(lo).any():
                ax.fill_between(x, lo, hi, color=color, alpha=0.2, lw=0)
        if "selected_layer" in d:
            sel = str(np.asarray(d["selected_layer"].values).ravel()[0])
            if sel in names:
                j = names.index(sel)
                ax.plot(x[j], y[j], marker="*", ms=14, color=color, mec="k", ls="none",
                        label=f"held-out choice ({sel})" if len(models) == 1 else None)
        if not relative_depth:
            ax.set_xticks(x)
            ax.set_xticklabels(names, rotation=60, ha="right", fontsize=8)
    lo, hi = _scalar(ds, "ceiling_lower"), _scalar(ds, "ceiling_upper")
    if np.isfinite(lo) and np.isfinite(hi):
        ax.axhspan(lo, hi, color="0.6", alpha=0.35, lw=0, label="noise ceiling")
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xlabel("relative depth" if relative_depth else "layer")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if len(models) > 1 or (np.isfinite(lo) and np.isfinite(hi)) or "selected_layer" in ds:
        ax.legend(fontsize=8, loc="best")
    ax.figure.tight_layout()
    return ax


def plot_layer_time(score_time: xr.DataArray, *, ax=None, title: str | None = None, cmap: str = "RdBu_r",
                    label: str = "score"):
    """Layer x time map of a time-resolved score (e.g. RSA of M/EEG against each layer).

    Parameters
    ----------
    score_time : xr.DataArray
        Dims ``(layer, time)`` (time in seconds); layers with no finite value are dropped.
    ax : matplotlib Axes, optional
    title : str, optional
    cmap : str
        Diverging colour map centred on 0.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> st = xr.DataArray(np.random.default_rng(0).normal(size=(3, 20)), dims=("layer", "time"),
    ...                   coords={"layer": ["a", "b", "c"], "time": np.linspace(-0.1, 0.5, 20)})
    >>> ax = plot_layer_time(st)
    >>> ax.get_ylabel()
    'layer'
    """
    plt = _plt()
    if not isinstance(score_time, xr.DataArray) or set(score_time.dims) != {"layer", "time"}:
        dims = getattr(score_time, "dims", None)
        raise ValueError(f"plot_layer_time needs a DataArray with dims ('layer', 'time'), got {dims}")
    st = score_time.transpose("layer", "time")
    keep = np.isfinite(st.values).any(axis=1)
    st = st.isel(layer=np.flatnonzero(keep))
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 0.3 * st.sizes["layer"] + 1.8))
    t = st["time"].values.astype(float)
    vmax = float(np.nanmax(np.abs(st.values))) if np.isfinite(st.values).any() else 1.0
    dt = (t[1] - t[0]) if len(t) > 1 else 1.0
    im = ax.imshow(st.values, aspect="auto", origin="lower", cmap=cmap, vmin=-vmax, vmax=vmax,
                   extent=(t[0] - dt / 2, t[-1] + dt / 2, -0.5, st.sizes["layer"] - 0.5), interpolation="nearest")
    ax.set_yticks(np.arange(st.sizes["layer"]))
    ax.set_yticklabels([str(v) for v in st["layer"].values], fontsize=7)
    ax.axvline(0, color="k", lw=0.6, ls="--")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("layer")
    ax.figure.colorbar(im, ax=ax, label=label)
    if title:
        ax.set_title(title)
    ax.figure.tight_layout()
    return ax
