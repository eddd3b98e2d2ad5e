"""Score distributions under subsampling and the reliability of the model ranking (from subsample_reliability)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from ._profiles import _plt

__all__ = ["plot_subsample_reliability"]


def plot_subsample_reliability(result: xr.Dataset, *, axes=None, x: str = "fraction", title: str | None = None,
                               ylabel: str = "score"):
    """Score per subsampling fraction (mean and central interval per model) and the ranking reliability.

    Parameters
    ----------
    result : xr.Dataset
        The output of :func:`neurobridge.stats.subsample_reliability`: ``score_mean``, ``ci_low``,
        ``ci_high`` over ``(model, fraction)``; optionally ``ranking_reliability`` and
        ``ranking_reliability_sb`` over ``fraction`` (then a second panel is drawn).
    axes : matplotlib Axes or sequence of two Axes, optional
        Where to draw: one Axes for the scores, a second one for the ranking reliability.
    x : str
        The x axis: ``"fraction"`` or a coordinate on ``fraction`` such as ``"n_stimuli"`` or ``"n_units"``.
    title, ylabel : str, optional

    Returns
    -------
    numpy.ndarray of matplotlib Axes
        One Axes, or two when the ranking reliability is present.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> fr = [0.5, 1.0]
    >>> res = xr.Dataset({"score_mean": (("model", "fraction"), [[0.2, 0.3], [0.4, 0.5]]),
    ...                   "ci_low": (("model", "fraction"), [[0.1, 0.3], [0.3, 0.5]]),
    ...                   "ci_high": (("model", "fraction"), [[0.3, 0.3], [0.5, 0.5]]),
    ...                   "ranking_reliability": ("fraction", [0.5, 0.8]),
    ...                   "ranking_reliability_sb": ("fraction", [0.67, 0.89])},
    ...                  coords={"model": ["a", "b"], "fraction": fr})
    >>> axes = plot_subsample_reliability(res)
    >>> len(axes), [t.get_text() for t in axes[0].get_legend().get_texts()]
    (2, ['a', 'b'])
    """
    plt = _plt()
    if not isinstance(result, xr.Dataset):
        raise TypeError(f"result must be the xr.Dataset from nb.stats.subsample_reliability, got {type(result).__name__}")
    missing = [v for v in ("score_mean", "ci_low", "ci_high") if v not in result]
    if missing:
        raise ValueError(f"result lacks {missing}; pass the Dataset returned by nb.stats.subsample_reliability")
    if x != "fraction" and (x not in result.coords or result[x].dims != ("fraction",)):
        options = ["fraction"] + [c for c in result.coords if result[c].dims == ("fraction",) and c != "fraction"]
        raise ValueError(f"x must be one of {options}, got {x!r}")
    has_rank = "ranking_reliability" in result
    n_panels = 2 if has_rank else 1
    if axes is None:
        wide = 1.8 if result.sizes.get("model", 0) > 4 else 0.6
        _, axes = plt.subplots(1, n_panels, figsize=(4.2 * n_panels + wide, 3.6), squeeze=False)
        axes = axes[0]
    axes = np.atleast_1d(np.asarray(axes, dtype=object))
    if len(axes) < n_panels:
        raise ValueError(f"this result needs {n_panels} Axes (scores, ranking reliability), got {len(axes)}")
    xs = np.asarray(result[x].values, dtype=float)
    ax = axes[0]
    mean = result["score_mean"].transpose("model", "fraction")
    for i, m in enumerate(mean["model"].values.tolist()):
        color = f"C{i % 10}"
        ax.plot(xs, mean.sel(model=m).values, "o-", color=color, ms=4, label=str(m))
        ax.fill_between(xs, result["ci_low"].sel(model=m).values, result["ci_high"].sel(model=m).values,
                        color=color, alpha=0.2, lw=0)
    ax.set_xlabel(x.replace("_", " "))
    ax.set_ylabel(ylabel)
    level = result.attrs.get("level")
    ax.set_title(f"{ylabel} under subsampling" + (f" ({100 * float(level):g}% interval)" if level else ""),
                 fontsize=10)
    if mean.sizes["model"] > 4:  # many models: the legend goes outside, right of the scores
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    else:
        ax.legend(fontsize=8, loc="best")
    if has_rank:
        ax2 = axes[1]
        ax2.plot(xs, result["ranking_reliability"].values, "o-", color="k", ms=4, label="split-half r")
        if "ranking_reliability_sb" in result:
            ax2.plot(xs, result["ranking_reliability_sb"].values, "s--", color="C3", ms=4,
                     label="Spearman-Brown")
        ax2.axhline(0, color="0.5", lw=0.5)
        ax2.set_ylim(min(-0.1, float(np.nanmin(result["ranking_reliability"].values, initial=0)) - 0.05), 1.05)
        ax2.set_xlabel(x.replace("_", " "))
        ax2.set_ylabel("ranking reliability (Spearman)")
        ax2.set_title("reliability of the model ranking", fontsize=10)
        ax2.legend(fontsize=8, loc="lower right")
    if title:
        axes[0].figure.suptitle(title)
    axes[0].figure.tight_layout()
    return axes[:n_panels]
