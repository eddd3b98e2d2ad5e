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


def plot_rdm(rdm: xr.DataArray, *, ax=None, rank: bool = True, title: str | None = None, colorbar: bool = True,
             cmap: str = "viridis", groups: str | None = None):
    """Show one RDM as an image.

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
    cmap : str
    groups : str, optional
        Name of a coordinate on ``stimulus`` (e.g. ``"category"``) whose changes are marked by lines.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import numpy as np, neurobridge as nb
    >>> r = nb.core.rdm(np.abs(np.subtract.outer(np.arange(4.0), np.arange(4.0))), stimulus=list("abcd"))
    >>> ax = plot_rdm(r, title="toy")
    >>> ax.get_title()
    'toy'
    """
    plt = _plt()
    if not isinstance(rdm, xr.DataArray) or set(rdm.dims) != {"stimulus", "stimulus2"}:
        dims = getattr(rdm, "dims", None)
        raise ValueError(f"plot_rdm needs a DataArray with dims ('stimulus', 'stimulus2'), got {dims}; "
                         "select one RDM first (e.g. rdm.isel(subject=0) or rdm.mean('subject'))")
    values = rdm.transpose("stimulus", "stimulus2").values.astype(float)
    shown = _rank_transform(values) if rank else values
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 3.6))
    im = ax.imshow(shown, cmap=cmap, interpolation="nearest")
    n = values.shape[0]
    if n <= 12:
        labels = [str(v) for v in rdm["stimulus"].values]
        ax.set_xticks(range(n))
        ax.set_xticklabels(labels, rotation=90, fontsize=7)
        ax.set_yticks(range(n))
        ax.set_yticklabels(labels, fontsize=7)
    else:
        ax.set_xticks([])
        ax.set_yticks([])
    if groups is not None:
        if groups not in rdm.coords:
            raise ValueError(f"rdm has no coordinate {groups!r} to mark groups; coordinates: {list(rdm.coords)}")
        g = np.asarray(rdm[groups].values)
        for k in np.flatnonzero(g[1:] != g[:-1]):
            ax.axhline(k + 0.5, color="w", lw=0.6)
            ax.axvline(k + 0.5, color="w", lw=0.6)
    if colorbar:
        ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04,
                           label="dissimilarity (percentile)" if rank else "dissimilarity")
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def plot_rdms(rdms: Mapping[str, xr.DataArray] | xr.DataArray, *, dim: str | None = None, ncols: int = 4,
              rank: bool = True, suptitle: str | None = None):
    """Show several RDMs side by side.

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
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 3.0 * nrows), squeeze=False)
    for ax, (name, r) in zip(axes.ravel(), items, strict=False):
        plot_rdm(r, ax=ax, rank=rank, title=str(name), colorbar=False)
    for ax in axes.ravel()[len(items):]:
        ax.set_axis_off()
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig
