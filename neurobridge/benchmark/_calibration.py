"""Null calibration of the benchmark's held-out layer selection on time-resolved (M/EEG-like) data.

:func:`simulate_null_meeg` draws a benchmark where no layer relates to the brain: random activations per layer,
and responses whose noise is smoothed over time like filtered MEG, with (optionally) a stimulus geometry that
persists after stimulus onset and is shared by all subjects, as real evoked responses have.
:func:`null_calibration` scores many such nulls with :func:`score_benchmark` and reports the mean held-out score
(0 for an honest selection), the optimism of the in-sample best layer, and the false-positive rates of the
held-out p-value and of the selected layer's confidence interval. ``benchmarks/calibration.py`` calls it.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import xarray as xr

from ._registry import Benchmark, BenchmarkData
from ._scoring import score_benchmark

__all__ = ["NullCalibration", "simulate_null_meeg", "null_calibration"]


class NullCalibration(NamedTuple):
    """Held-out scores and false-positive rates of one benchmark design over simulated nulls."""

    n_nulls: int
    """Number of simulated null datasets."""
    mean_heldout: float
    """Mean held-out score over the nulls (an honest selection gives 0)."""
    se_heldout: float
    """Standard error of ``mean_heldout`` (std over nulls / sqrt(n_nulls))."""
    mean_best: float
    """Mean in-sample best score over layers (the optimism held-out selection removes)."""
    false_positive_rate: float
    """Fraction of nulls with ``heldout_p <= alpha`` (NaN without permutations)."""
    fpr_interval: tuple[float, float]
    """95% Clopper-Pearson interval of ``false_positive_rate``."""
    ci_false_positive_rate: float
    """Fraction of nulls whose selected-layer CI (``selected_ci_low``/``_high``) excludes 0 (NaN without CIs)."""
    alpha: float
    """Level of the tests."""
    heldout: np.ndarray
    """Held-out score per null, shape (n_nulls,)."""
    pvalues: np.ndarray
    """``heldout_p`` per null, shape (n_nulls,)."""


def simulate_null_meeg(
    seed: int, *, n_stimuli: int = 8, n_layers: int = 10, n_units: int = 50, n_channels: int = 32,
    n_subjects: int = 1, sfreq: float = 200.0, tmin: float = -0.1, tmax: float = 0.5, smoothing: float = 0.02,
    geometry: float = 1.0,
) -> tuple[dict[str, xr.DataArray], xr.DataArray]:
    """A time-resolved RSA benchmark with no relation between any layer and the brain.

    Parameters
    ----------
    seed : int
        Seed of the draw.
    n_stimuli, n_layers, n_units, n_channels, n_subjects : int
        Sizes. Each layer's activations are independent standard normal ``(stimulus, unit)``.
    sfreq, tmin, tmax : float
        Sampling rate (Hz) and time span (s) of the responses.
    smoothing : float
        Standard deviation (s) of the Gaussian that smooths the white noise over time (filtered MEG: ~20 ms).
    geometry : float
        Amplitude (in noise standard deviations) of a stimulus-specific channel pattern present from 0 s on,
        shared by all subjects: a brain geometry that persists over time and is unrelated to the model.

    Returns
    -------
    acts : dict layer -> DataArray ``(stimulus, unit)``
    brain : DataArray
        ``(stimulus, channel, time)`` evoked responses (one subject), or RDMs
        ``(subject, time, stimulus, stimulus2)`` (correlation distance) for several subjects.

    Examples
    --------
    >>> acts, brain = simulate_null_meeg(0, n_stimuli=6, n_layers=2, sfreq=20.0)
    >>> sorted(acts), brain.dims
    (['L0', 'L1'], ('stimulus', 'channel', 'time'))
    """
    from scipy.ndimage import gaussian_filter1d

    from neurobridge import core, rsa

    if n_stimuli < 3 or n_layers < 1 or n_subjects < 1:
        raise ValueError(f"need n_stimuli >= 3, n_layers >= 1 and n_subjects >= 1; got {n_stimuli}, {n_layers} and "
                         f"{n_subjects}")
    rng = np.random.default_rng(seed)
    ids = [f"s{i:02d}" for i in range(n_stimuli)]
    acts = {f"L{k}": core.activations(rng.normal(size=(n_stimuli, n_units)), stimulus=ids) for k in range(n_layers)}
    times = np.arange(int(round((tmax - tmin) * sfreq)) + 1) / sfreq + tmin
    shape = (n_subjects, n_stimuli, n_channels, len(times))
    x = gaussian_filter1d(rng.normal(size=shape), smoothing * sfreq, axis=-1) if smoothing > 0 else \
        rng.normal(size=shape)
    x /= x.std()
    if geometry:
        pattern = rng.normal(size=(n_stimuli, n_channels))
        x[..., times >= 0] += geometry * pattern[None, :, :, None]
    if n_subjects == 1:
        return acts, core.evoked(x[0], stimulus=ids, times=times)
    da = xr.DataArray(x, dims=("subject", "stimulus", "channel", "time"),
                      coords={"subject": [f"sub{i}" for i in range(n_subjects)], "stimulus": ids, "time": times})
    return acts, rsa.rdm(da, sample_dim="stimulus", feature_dim="channel")


def null_calibration(
    n_nulls: int = 200, *, alpha: float = 0.05, split: str = "stimulus", n_splits: int = 20,
    n_permutations: int = 199, n_bootstrap: int = 0, time_window: tuple[float, float] = (0.0, 0.5), seed: int = 0,
    progress: bool | None = False, **simulate,
) -> NullCalibration:
    """Score ``n_nulls`` simulated null M/EEG benchmarks and summarise the held-out selection's calibration.

    Parameters
    ----------
    n_nulls : int
        Number of nulls (>= 200 for a false-positive rate to within about +-3%).
    alpha : float
        Level at which ``heldout_p`` and the selected layer's CI are counted as false positives (the CI is the
        benchmark's 95% interval, so its rate is meaningful at ``alpha=0.05``).
    split, n_splits, n_permutations, time_window
        The benchmark's fields (:class:`Benchmark`).
    n_bootstrap : int
        Bootstrap resamples for the CIs (0: none; CIs need >= 10 stimuli).
    seed : int
        Null ``i`` is drawn and scored with seed ``seed + i``.
    progress : bool, optional
        A bar over nulls.
    **simulate
        Passed to :func:`simulate_null_meeg` (``n_stimuli``, ``n_subjects``, ``geometry``, ``smoothing``, ...).

    Returns
    -------
    NullCalibration

    Examples
    --------
    >>> cal = null_calibration(2, n_permutations=9, n_splits=2, n_stimuli=6, n_layers=2, sfreq=20.0)
    >>> cal.n_nulls, cal.heldout.shape, bool(0 < cal.pvalues.min() <= 1)
    (2, (2,), True)
    """
    import logging

    from scipy.stats import binomtest

    from neurobridge.core import progress_bar

    if n_nulls < 1:
        raise ValueError(f"n_nulls must be >= 1, got {n_nulls}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    bench = Benchmark("null-calibration", data=lambda data_dir: None, split=split, n_splits=n_splits,
                      n_permutations=n_permutations, time_window=time_window, ceiling="none")
    held, best, pvals, ci_out = (np.full(n_nulls, np.nan) for _ in range(4))
    log = logging.getLogger("neurobridge")
    level = log.level
    log.setLevel(max(level, logging.ERROR))  # one "no CI" / "too few stimuli" line per null is noise here
    try:
        for i in progress_bar(range(n_nulls), desc="null calibration", progress=progress, unit="null"):
            acts, brain = simulate_null_meeg(seed + i, **simulate)
            piece, _ = score_benchmark(bench, BenchmarkData(None, brain), acts, n_bootstrap=n_bootstrap,
                                       seed=seed + i, progress=False)
            held[i], best[i], pvals[i] = (float(piece[v]) for v in ("heldout_score", "best_score", "heldout_p"))
            lo, hi = float(piece["selected_ci_low"]), float(piece["selected_ci_high"])
            ci_out[i] = np.nan if not np.isfinite(lo) else float(lo > 0 or hi < 0)
    finally:
        log.setLevel(level)
    tested = np.isfinite(pvals)
    k, n = int((pvals[tested] <= alpha).sum()), int(tested.sum())
    fpr = k / n if n else np.nan
    interval = tuple(float(v) for v in binomtest(k, n).proportion_ci(0.95, method="exact")) if n else (np.nan, np.nan)
    ok = np.isfinite(held)
    se = float(held[ok].std(ddof=1) / np.sqrt(ok.sum())) if ok.sum() > 1 else np.nan
    with_ci = np.isfinite(ci_out)
    return NullCalibration(n_nulls, float(np.mean(held[ok])) if ok.any() else np.nan, se, float(np.nanmean(best)),
                           float(fpr), interval, float(ci_out[with_ci].mean()) if with_ci.any() else np.nan,
                           float(alpha), held, pvals)
