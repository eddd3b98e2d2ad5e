"""Benchmarks: score any torch model against brain data, with ceilings, CIs and held-out layer selection.

A benchmark is a dataset + a metric (RSA or encoding) + a noise ceiling + a layer-selection rule.
:func:`run` extracts each model's layers, scores every layer (the profile), chooses the reported layer on one
split of the data and scores it on the other (held out), and writes ``scores.nc``, ``leaderboard.csv``/``.md``,
figures and ``report.html`` to ``out``. The ``neurobridge benchmark`` command calls it.

Examples
--------
>>> import neurobridge as nb
>>> nb.benchmark.available()[:2]
['kriegeskorte92-hit-rsa', 'kriegeskorte92-mit-rsa']
>>> scores = nb.benchmark.run("efficientnet_lite0", out="results")  # doctest: +SKIP
"""

from ._registry import (
    DEFAULT_BENCHMARKS,
    Benchmark,
    BenchmarkData,
    available,
    from_toml,
    get,
    make_data,
    register,
    resolve,
    unregister,
)
from ._report import leaderboard, leaderboard_markdown, read_scores, write_outputs
from ._runner import DEFAULT_MODEL, combine, run, split_pieces
from ._scoring import UnusableLayersError, check_layers, score_benchmark
from ._selection import HeldOutSelection, half_splits, select_layer_heldout, subject_splits

__all__ = [
    "run", "Benchmark", "BenchmarkData", "register", "unregister", "get", "available", "resolve", "from_toml",
    "make_data", "DEFAULT_BENCHMARKS", "DEFAULT_MODEL", "leaderboard", "leaderboard_markdown", "read_scores",
    "write_outputs", "combine", "split_pieces", "score_benchmark", "check_layers", "UnusableLayersError",
    "HeldOutSelection", "select_layer_heldout", "half_splits", "subject_splits",
]
