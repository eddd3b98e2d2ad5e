"""Representational dissimilarity matrices as images."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import xarray as xr

from ._profiles import _plt

__all__ = ["plot_rdm", "plot_rdms"]


def _rank_transform(values: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    out = np.full(values.shape, np.nan)
    iu = np.triu_indices(values.shape[0], 1)
    upper = values[iu]
    ok = np.isfinite(upper)
    if ok.any():
        ranks = np.full(upper.shape, np.nan)
        ranks[ok] = (rankdata(upper[ok]) - 1) / max(ok.sum() - 1, 1)
        out[iu] = ranks
        out[(iu[1], iu[0])] = ranks
    np.fill_diagonal(out, 0.0)
    return out


MAX_TICKS = 24
"""Most tick labels per axis: more stimuli (or category runs) than this are labelled every k-th."""


def _runs(values: np.ndarray) -> list[tuple[int, int]]:
    """``(start, stop)`` of each run of equal consecutive values."""
    cuts = np.flatnonzero(values[1:] != values[:-1]) + 1
    edges = [0, *cuts.tolist(), len(values)]
    return list(zip(edges[:-1], edges[1:], strict=False))


def _thinned(n: int, max_ticks: int) -> np.ndarray:
    """Every k-th position, k the smallest step that shows at most ``max_ticks`` labels."""
    return np.arange(0, n, max(1, int(np.ceil(n / max(max_ticks, 1)))))


def _colorbar_label(rdm: xr.DataArray, rank: bool) -> str:
    metric = rdm.attrs.get("metric")
    base = f"{metric} dissimilarity" if isinstance(metric, str) and metric else "dissimilarity"
    return f"{base} (percentile)" if rank else base


def _group_coord(rdm: xr.DataArray, groups: str | None) -> str | None:
    if groups is None:
        return None
    if groups == "auto":
        return "category" if "category" in rdm.coords and rdm["category"].dims == ("stimulus",) else None
    if groups not in rdm.coords:
        raise ValueError(f"rdm has no coordinate {groups!r} to label groups; coordinates: {list(rdm.coords)}; "
                         "pass groups=None or attach one with rdm.assign_coords({name}=('stimulus', labels))")
    if rdm[groups].dims != ("stimulus",):
        raise ValueError(f"coordinate {groups!r} has dims {rdm[groups].dims}; groups need a coordinate on "
                         "'stimulus' only")
    return groups


def plot_rdm(rdm: xr.DataArray, *, ax=None, rank: bool = True, title: str | None = None, colorbar: bool = True,
             cmap: str = "viridis", groups: str | None = "auto", max_ticks: int = MAX_TICKS):
    """Show one RDM as an image, with a colour bar and category (or stimulus) labels.

    Parameters
    ----------
    rdm : xr.DataArray
        Dims ``(stimulus, stimulus2)``.
    ax : matplotlib Axes, optional
    rank : bool
        Show percentiles of the dissimilarities (rank-transformed upper triangle, as in Kriegeskorte et al.
        2008), which makes RDMs on different scales comparable.
    title : str, optional
    colorbar : bool
        Draw a colour bar labelled with the RDM's ``metric`` attribute (e.g. "correlation dissimilarity
        (percentile)").
    cmap : str
    groups : str or None
        Name of a coordinate on ``stimulus`` (e.g. ``"category"``). Runs of equal values are separated by white
        lines and labelled at their centres on both axes. ``"auto"`` (default) uses ``category`` when the RDM
        has it (the packaged datasets attach it, e.g. kriegeskorte92: human face, nonhuman bodypart, ...);
        ``None`` labels stimuli only.
    max_ticks : int
        At most this many labels per axis: stimulus ids (when there are no groups, or more runs than this)
        are shown every k-th.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import numpy as np, neurobridge as nb
    >>> r = nb.core.rdm(np.abs(np.subtract.outer(np.arange(4.0), np.arange(4.0))), stimulus=list("abcd"),
    ...                 coords={"category": ("stimulus", ["face", "face", "body", "body"])})
    >>> ax = plot_rdm(r, title="toy")
    >>> ax.get_title(), [t.get_text() for t in ax.get_yticklabels()]
    ('toy', ['face', 'body'])
    """
    plt = _plt()
    if not isinstance(rdm, xr.DataArray) or set(rdm.dims) != {"stimulus", "stimulus2"}:
        dims = getattr(rdm, "dims", None)
        raise ValueError(f"plot_rdm needs a DataArray with dims ('stimulus', 'stimulus2'), got {dims}; "
                         "select one RDM first (e.g. rdm.isel(subject=0) or rdm.mean('subject'))")
    rdm = rdm.transpose("stimulus", "stimulus2")
    values = rdm.values.astype(float)
    shown = _rank_transform(values) if rank else values
    if ax is None:
        _, ax = plt.subplots(figsize=(4.6, 3.8))
    im = ax.imshow(shown, cmap=cmap, interpolation="nearest")
    n = values.shape[0]
    group = _group_coord(rdm, groups)
    runs = _runs(np.asarray(rdm[group].values)) if group is not None else []
    same_order = np.array_equal(np.asarray(rdm["stimulus"].values), np.asarray(rdm["stimulus2"].values))
    if group is not None and len(runs) <= max_ticks:
        names = np.asarray(rdm[group].values)
        centres = [(a + b - 1) / 2 for a, b in runs]
        labels = [str(names[a]) for a, _ in runs]
        ax.set_yticks(centres, labels, fontsize=7)
        ax.set_xticks(centres if same_order else [], labels if same_order else [], rotation=90, fontsize=7)
        ax.tick_params(length=0)
        for a, _ in runs[1:]:
            ax.axhline(a - 0.5, color="w", lw=0.6)
            if same_order:
                ax.axvline(a - 0.5, color="w", lw=0.6)
    else:
        rows, cols = _thinned(n, max_ticks), _thinned(values.shape[1], max_ticks)
        ax.set_yticks(rows, [str(v) for v in rdm["stimulus"].values[rows]], fontsize=7)
        ax.set_xticks(cols, [str(v) for v in rdm["stimulus2"].values[cols]], rotation=90, fontsize=7)
    if colorbar:
        cb = ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        cb.set_label(_colorbar_label(rdm, rank), fontsize=8)
        cb.ax.tick_params(labelsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def plot_rdms(rdms: Mapping[str, xr.DataArray] | xr.DataArray, *, dim: str | None = None, ncols: int = 4,
              rank: bool = True, suptitle: str | None = None, colorbar: bool = True, groups: str | None = "auto"):
    """Show several RDMs side by side, each with its colour bar and category labels (see :func:`plot_rdm`).

    Parameters
    ----------
    rdms : mapping title -> DataArray, or DataArray
        RDMs with dims ``(stimulus, stimulus2)``; a DataArray with one more dim (``layer``, ``subject``,
        ``time``...) is split along it (``dim`` names it when there are several).
    ncols : int
        Panels per row.
    rank : bool
        Rank-transform each RDM (see :func:`plot_rdm`).
    suptitle : str, optional
    colorbar : bool
        A colour bar per panel, labelled with that RDM's metric.
    groups : str or None
        Coordinate whose runs label the axes (``"auto"``: ``category`` where present), as in :func:`plot_rdm`.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np, neurobridge as nb
    >>> r = nb.core.rdm(np.random.default_rng(0).random((2, 4, 4)), dims=("layer",), stimulus=list("abcd"))
    >>> len(plot_rdms(r).axes) >= 2
    True
    """
    plt = _plt()
    if isinstance(rdms, xr.DataArray):
        lead = [d for d in rdms.dims if d not in ("stimulus", "stimulus2")]
        if dim is None:
            if len(lead) != 1:
                raise ValueError(f"plot_rdms: pass dim= to split RDMs with leading dims {lead}")
            dim = lead[0]
        rdms = {f"{dim}={v}": rdms.sel({dim: v}) for v in rdms[dim].values.tolist()}
    items = list(rdms.items())
    if not items:
        raise ValueError("plot_rdms: no RDM to show")
    ncols = max(1, min(ncols, len(items)))
    nrows = int(np.ceil(len(items) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.4 * ncols, 3.9 * nrows), squeeze=False)
    for ax, (name, r) in zip(axes.ravel(), items, strict=False):
        plot_rdm(r, ax=ax, rank=rank, title=str(name), colorbar=colorbar, groups=groups)
    for ax in axes.ravel()[len(items):]:
        ax.set_axis_off()
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig
