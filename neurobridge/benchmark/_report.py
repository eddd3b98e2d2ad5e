"""Benchmark outputs: scores.nc, leaderboard.csv/.md, PNG figures and a self-contained report.html."""

from __future__ import annotations

import base64
import html
import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ._runner import combine, split_pieces

__all__ = ["write_outputs", "leaderboard", "leaderboard_markdown", "read_scores"]

logger = logging.getLogger("neurobridge")

SCORES, CSV, MD, HTML, PROVENANCE = "scores.nc", "leaderboard.csv", "leaderboard.md", "report.html", "provenance.json"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "x"


def read_scores(out: str | os.PathLike) -> xr.Dataset:
    """Load ``scores.nc`` from a benchmark output folder.

    Examples
    --------
    >>> read_scores("neurobridge-results/2026-01-01T000000")  # doctest: +SKIP
    """
    path = Path(out) / SCORES
    if not path.is_file():
        raise FileNotFoundError(f"no {SCORES} in {out}; run `neurobridge benchmark --out {out}` first")
    with xr.open_dataset(path) as ds:
        ds = ds.load()
    for name in list(ds.data_vars) + list(ds.coords):
        if ds[name].dtype.kind in "OSU":
            ds[name] = ds[name].astype(str)
    return ds


def leaderboard(scores: xr.Dataset) -> pd.DataFrame:
    """One row per (model, benchmark): held-out selected layer, held-out score, ceiling-normalised score, CI.

    Parameters
    ----------
    scores : xr.Dataset
        From :func:`neurobridge.benchmark.run` (or ``scores.nc``).

    Returns
    -------
    pandas.DataFrame
        Columns ``model, benchmark, selected_layer, heldout_score, normalised_score, ci_low, ci_high,
        ceiling_lower, ceiling_upper, best_layer, best_score, n_layers, n_stimuli, selection, demo``; sorted by
        benchmark then held-out score (best first). ``ci_low``/``ci_high`` are the bootstrap CI of the selected
        layer's score; ``best_*`` are the in-sample (optimistic) maximum of the profile.

    Examples
    --------
    >>> lb = leaderboard(scores)  # doctest: +SKIP
    >>> lb.columns[:3].tolist()  # doctest: +SKIP
    ['model', 'benchmark', 'selected_layer']
    """
    rows = []
    for (m, b), p in split_pieces(scores).items():
        rows.append({
            "model": m, "benchmark": b, "selected_layer": str(p["selected_layer"].values),
            "heldout_score": float(p["heldout_score"]), "normalised_score": float(p["heldout_normalised_score"]),
            "ci_low": float(p["selected_ci_low"]), "ci_high": float(p["selected_ci_high"]),
            "ceiling_lower": float(p["ceiling_lower"]), "ceiling_upper": float(p["ceiling_upper"]),
            "best_layer": str(p["best_layer"].values), "best_score": float(p["best_score"]),
            "n_layers": int(p.sizes.get("layer", 0)), "n_stimuli": int(p["n_stimuli"]),
            "selection": str(p["selection_rule"].values), "demo": bool(int(p["demo"]) > 0),
        })
    cols = ["model", "benchmark", "selected_layer", "heldout_score", "normalised_score", "ci_low", "ci_high",
            "ceiling_lower", "ceiling_upper", "best_layer", "best_score", "n_layers", "n_stimuli", "selection", "demo"]
    df = pd.DataFrame(rows, columns=cols)
    if len(df):
        df = df.sort_values(["benchmark", "heldout_score"], ascending=[True, False], kind="stable")
    return df.reset_index(drop=True)


def _fmt(x, digits=3) -> str:
    if isinstance(x, float | np.floating):
        return "n/a" if not np.isfinite(x) else f"{x:.{digits}f}"
    return str(x)


def leaderboard_markdown(df: pd.DataFrame) -> str:
    """The leaderboard as a markdown table (no extra dependency).

    Examples
    --------
    >>> import pandas as pd
    >>> print(leaderboard_markdown(pd.DataFrame({"model": ["m"], "heldout_score": [0.25]})))
    | model | heldout_score |
    | --- | --- |
    | m | 0.250 |
    """
    cols = [c for c in df.columns if c != "selection"]
    lines = ["| " + " | ".join(cols) + " |", "| " + " | ".join("---" for _ in cols) + " |"]
    for _, row in df.iterrows():
        lines.append("| " + " | ".join(_fmt(row[c]).replace("|", "/") for c in cols) + " |")
    return "\n".join(lines)


def _md_document(df: pd.DataFrame, scores: xr.Dataset) -> str:
    out = ["# neurobridge benchmark leaderboard", "",
           "Held-out layer selection: the reported layer is chosen on one split of the data and its score is "
           "measured on the other (the rule per benchmark is below); `best_score` is the in-sample maximum "
           "over layers, which is optimistic. `normalised_score` = held-out score / lower noise ceiling. "
           "`ci_low`/`ci_high`: bootstrap CI of the selected layer's score.", "", leaderboard_markdown(df), ""]
    rules = dict(zip(df["benchmark"], df["selection"], strict=False))
    if rules:
        out += ["## Layer selection", ""] + [f"- **{b}**: {r}" for b, r in rules.items()] + [""]
    demos = sorted(set(df.loc[df["demo"], "benchmark"]))
    if demos:
        out += [f"Pipeline demonstrations (not scientific results): {', '.join(demos)}.", ""]
    return "\n".join(out)


# --------------------------------------------------------------------------------------------- figures


def _figures(scores: xr.Dataset, out: Path, extras: Mapping, titles: Mapping[str, str]) -> list[Path]:
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "module://matplotlib_inline.backend_inline") and \
            not os.environ.get("DISPLAY"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from neurobridge import plotting

    written = []
    for b in scores["benchmark"].values.tolist():
        sub = scores.sel(benchmark=b)
        present = [m for m in sub["model"].values.tolist() if str(sub["selected_layer"].sel(model=m).values)]
        if not present:
            continue
        sub = sub.sel(model=present)
        keep = np.isfinite(sub["depth"].values).any(axis=0) & np.isfinite(sub["score"].values).any(axis=0)
        sub = sub.isel(layer=np.flatnonzero(keep))
        ax = plotting.plot_layer_profile(sub[["score", "ci_low", "ci_high", "depth", "selected_layer",
                                              "ceiling_lower", "ceiling_upper"]],
                                         title=titles.get(b, b), ylabel=str(sub["metric"].values.ravel()[0]))
        path = out / f"profile_{_safe(b)}.png"
        ax.figure.savefig(path, dpi=110)
        plt.close(ax.figure)
        written.append(path)
        if "score_time" in sub:
            for m in present:
                st = sub["score_time"].sel(model=m)
                if not np.isfinite(st.values).any():
                    continue
                keep_t = np.isfinite(st.values).any(axis=0)
                st = st.isel(time=np.flatnonzero(keep_t))
                d = sub["depth"].sel(model=m).values
                order = np.flatnonzero(np.isfinite(d))[np.argsort(d[np.isfinite(d)], kind="stable")]
                ax = plotting.plot_layer_time(st.isel(layer=order), title=f"{m} on {b}")
                path = out / f"layer_time_{_safe(b)}__{_safe(m)}.png"
                ax.figure.savefig(path, dpi=110)
                plt.close(ax.figure)
                written.append(path)
    for (m, b), ex in extras.items():
        if not ex or "model_rdms" not in ex:
            continue
        sel = str(scores["selected_layer"].sel(model=m, benchmark=b).values)
        brain = ex["brain_rdm"]
        if "time" in brain.dims:  # time-resolved: show the RDM at the selected layer's peak time
            st = scores["score_time"].sel(model=m, benchmark=b, layer=sel)
            brain = brain.sel(time=float(st["time"].values[int(np.nanargmax(st.values))]))
        fig = _rdm_figure(brain, ex["model_rdms"].sel(layer=sel), f"brain ({b})", f"{m}: {sel}")
        path = out / f"rdm_{_safe(b)}__{_safe(m)}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def _rdm_figure(brain: xr.DataArray, model_rdm: xr.DataArray, brain_title: str, model_title: str):
    """Brain and model RDM side by side, each with a colour bar; the model panel borrows the brain's
    ``category`` labels (model RDMs carry only stimulus ids) so both are labelled alike."""
    from neurobridge import plotting

    if "category" in brain.coords and "category" not in model_rdm.coords:
        labels = brain["category"].sel(stimulus=model_rdm["stimulus"].values).values
        model_rdm = model_rdm.assign_coords(category=("stimulus", labels))
    return plotting.plot_rdms({brain_title: brain, model_title: model_rdm}, ncols=2)


# --------------------------------------------------------------------------------------------- html


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(path.name)}"/>' \
           f"<figcaption>{html.escape(path.name)}</figcaption></figure>"


def _html(df: pd.DataFrame, scores: xr.Dataset, runs: list[dict], out: Path) -> str:
    e = html.escape
    table = df.drop(columns=["selection"]).to_html(index=False, float_format=lambda x: f"{x:.3f}", na_rep="n/a",
                                                   border=0, classes="lb")
    benches: dict[str, dict] = {}
    for r in runs:
        benches.update(r.get("benchmarks", {}))
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>neurobridge benchmark report</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em;color:#222}"
        "table{border-collapse:collapse;font-size:13px}td,th{padding:3px 8px;border-bottom:1px solid #ddd}"
        "img{max-width:100%}figure{display:inline-block;margin:6px}figcaption{font-size:11px;color:#666}"
        ".demo{background:#fff3cd;padding:6px}code,pre{background:#f5f5f5}</style></head><body>",
        "<h1>neurobridge benchmark report</h1>",
        "<h2>Leaderboard</h2>",
        "<p><b>Layer selection is held out</b>: for every model and benchmark the reported layer is chosen on one "
        "split of the data and scored on the other (rule per benchmark below), so the held-out score is not "
        "inflated by picking the best of many layers. <code>best_score</code> is the in-sample maximum of the "
        "profile, shown for reference. <code>normalised_score</code> = held-out score / lower bound of the "
        "noise ceiling; CIs are bootstrap intervals of the selected layer's score.</p>",
        table,
    ]
    for b in scores["benchmark"].values.tolist():
        info = benches.get(b, {})
        parts.append(f"<h2>{e(b)}</h2>")
        if info.get("description"):
            parts.append(f"<p>{e(info['description'])}</p>")
        if info.get("demo"):
            parts.append("<p class='demo'>Pipeline demonstration: the numbers below show that the pipeline runs "
                         "end to end; they are not a scientific result.</p>")
        rule = df.loc[df["benchmark"] == b, "selection"]
        if len(rule):
            parts.append(f"<p><b>Held-out layer selection:</b> {e(str(rule.iloc[0]))}.</p>")
        if info.get("citation"):
            parts.append(f"<p><small>Data: {e(info['citation'])}</small></p>")
        for extra in info.get("info", {}).items():
            parts.append(f"<p><small>{e(extra[0])}: {e(extra[1])}</small></p>")
        for pattern in (f"profile_{_safe(b)}.png", f"layer_time_{_safe(b)}__*.png", f"rdm_{_safe(b)}__*.png"):
            for path in sorted(out.glob(pattern)):
                parts.append(_img(path))
    parts.append("<h2>Provenance</h2>")
    for i, r in enumerate(runs, 1):
        parts.append(f"<h3>Run {i}: {e(r.get('started', ''))}</h3><ul>")
        parts.append(f"<li>command: <code>{e(str(r.get('command', '')))}</code></li>")
        parts.append(f"<li>wall time: {r.get('wall_time_s', float('nan')):.1f} s; device: {e(str(r.get('device')))}"
                     f"; platform: {e(str(r.get('platform')))}</li>")
        parts.append(f"<li>bootstrap resamples: {r.get('n_bootstrap')}; seed: {r.get('seed')}</li>")
        for name, m in r.get("models", {}).items():
            parts.append(f"<li>model <b>{e(name)}</b>: spec <code>{e(str(m.get('spec')))}</code>, "
                         f"{m.get('parameters', 0):,} parameters, {m.get('modality')}, layers: "
                         f"{e(', '.join(m.get('layers', [])))}</li>")
        for name, skipped in r.get("skipped_layers", {}).items():
            for layer, why in skipped.items():
                parts.append(f"<li>skipped layer {e(layer)} of {e(name)}: {e(why)}</li>")
        for name, bi in r.get("benchmarks", {}).items():
            files = "".join(f"<br><code>{e(f)}</code> sha256 <code>{e(h)}</code>"
                            for f, h in bi.get("data_files", {}).items())
            parts.append(f"<li>benchmark <b>{e(name)}</b> (dataset {e(bi.get('dataset', ''))}){files}</li>")
        parts.append("<li>versions: " + e(", ".join(f"{k} {v}" for k, v in r.get("versions", {}).items())) + "</li>")
        parts.append("</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)


# --------------------------------------------------------------------------------------------- all


def write_outputs(scores: xr.Dataset, out: str | os.PathLike, provenance: Mapping, *, extras: Mapping | None = None,
                  benchmarks: Sequence = (), figures: bool = True) -> xr.Dataset:
    """Write (or extend) a benchmark output folder; returns the merged scores.

    Existing ``scores.nc`` results are kept; a (model, benchmark) pair present in ``scores`` replaces the old
    one. ``provenance.json`` keeps one entry per run.

    Examples
    --------
    >>> merged = write_outputs(scores, "results", provenance)  # doctest: +SKIP
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder")
    out.mkdir(parents=True, exist_ok=True)
    pieces = {}
    runs: list[dict] = []
    if (out / SCORES).is_file():
        old = read_scores(out)
        pieces.update(split_pieces(old))
        logger.info("extending the results in %s (%d model x benchmark entries)", out, len(pieces))
    if (out / PROVENANCE).is_file():
        runs = list(json.loads((out / PROVENANCE).read_text()).get("runs", []))
    new = split_pieces(scores)
    pieces.update(new)
    merged = combine(pieces)
    merged.attrs.update(scores.attrs)
    runs.append(dict(provenance))
    tmp = out / (SCORES + ".tmp")
    merged.to_netcdf(tmp)
    os.replace(tmp, out / SCORES)
    (out / PROVENANCE).write_text(json.dumps({"runs": runs}, indent=2, default=str))
    df = leaderboard(merged)
    df.to_csv(out / CSV, index=False, float_format="%.6g")
    (out / MD).write_text(_md_document(df, merged))
    if figures:
        titles = {getattr(b, "name", str(b)): getattr(b, "name", str(b)) for b in benchmarks}
        _figures(merged, out, extras or {}, titles)
        (out / HTML).write_text(_html(df, merged, runs, out))
    return merged
