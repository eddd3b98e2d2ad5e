"""When progress bars show (one rule: call > config_context > TQDM_DISABLE > terminal/Jupyter) and what they count.

The subprocess tests run real neurobridge work in a fresh interpreter with stderr piped (as in CI or a script
whose output goes to a log) or attached to a real pseudo-terminal (``pty``, as when a person watches).
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
import torch
import xarray as xr

import neurobridge as nb
from neurobridge.core import progress_bar, progress_enabled, side_by_side

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal (pty)")

_FRAME = re.compile(r"(?P<desc>[\w -]+): +\d+%\|[^|]*\| (?P<n>\d+)/(?P<total>\d+) ")


def _frames(err: str, desc: str) -> list[tuple[int, int]]:
    """(n, total) of every frame of the bar ``desc`` in captured stderr text."""
    out = []
    for piece in re.split(r"[\r\n]", err):
        m = _FRAME.search(piece)
        if m and m["desc"].strip() == desc:
            out.append((int(m["n"]), int(m["total"])))
    return out


# ------------------------------------------------------------------------------------------------ the rule


def _tqdm_reads_disable(value: str) -> bool:
    """tqdm's own reading of ``TQDM_DISABLE=value`` (its ``envwrap``), the reference for rule 3."""
    from tqdm.utils import envwrap

    def f(disable=False):
        return disable

    return bool(envwrap("tqdm")(f)())


@contextlib.contextmanager
def _terminal_stderr():
    """A real pseudo-terminal as sys.stderr (someone watching), inside the test body: pytest's own capture
    puts its stream back between fixture setup and the test call."""
    import pty

    master, slave = pty.openpty()
    f = os.fdopen(slave, "w")
    old, sys.stderr = sys.stderr, f
    try:
        yield f
    finally:
        sys.stderr = old
        f.close()
        os.close(master)


@posix_only
@pytest.mark.parametrize("value", ["1", "0", "true", "False", "no", ""])
def test_tqdm_disable_is_read_as_tqdm_reads_it(monkeypatch, value):
    monkeypatch.setenv("TQDM_DISABLE", value)
    with _terminal_stderr():
        assert progress_enabled(None) is (not _tqdm_reads_disable(value))
        # an explicit choice and config_context both win over the environment
        assert progress_enabled(True) is True
        with nb.config_context(progress=True):
            assert progress_enabled(None) is True


@posix_only
def test_call_beats_config_beats_terminal(monkeypatch):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    with _terminal_stderr():
        assert progress_enabled(None) is True  # a terminal: someone watches
        with nb.config_context(progress=False):
            assert progress_enabled(None) is False
            assert progress_enabled(True) is True
        assert progress_enabled(False) is False


def test_no_bar_by_default_when_stderr_is_not_a_terminal(monkeypatch, capsys):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    assert progress_enabled(None) is False
    with nb.config_context(progress=True):
        assert progress_enabled(None) is True


def test_forced_bar_in_a_log_refreshes_rarely_and_keeps_its_last_line(monkeypatch, capsys):
    for name in ("TQDM_MININTERVAL", "TQDM_MAXINTERVAL", "TQDM_LEAVE"):
        monkeypatch.delenv(name, raising=False)
    with progress_bar(total=5, desc="demo", progress=True) as bar:
        assert (bar.disable, bar.mininterval, bar.maxinterval, bar.leave) == (False, 30.0, 30.0, True)
        bar.update(5)
    assert _frames(capsys.readouterr().err, "demo")[-1] == (5, 5)


@posix_only
def test_bar_on_a_terminal_keeps_tqdm_defaults(monkeypatch):
    for name in ("TQDM_MININTERVAL", "TQDM_MAXINTERVAL", "TQDM_LEAVE", "TQDM_DISABLE"):
        monkeypatch.delenv(name, raising=False)
    with _terminal_stderr(), progress_bar(total=2, desc="demo") as bar:
        assert (bar.disable, bar.mininterval, bar.leave) == (False, 0.1, False)


# ----------------------------------------------------------------------------- what bars count (totals)


def test_bootstrap_bar_counts_resamples_not_batches(capsys):
    x = torch.randn(30, generator=torch.Generator().manual_seed(0))
    nb.stats.bootstrap(lambda i: x[i].mean(1), 30, n_bootstraps=250, batch_size=40, seed=0, progress=True)
    frames = _frames(capsys.readouterr().err, "bootstrap")
    assert frames and {t for _, t in frames} == {250}  # batches would be ceil(250 / 40) = 7
    assert frames[-1] == (250, 250)


def test_permutation_bar_counts_permutations(capsys):
    x = torch.arange(12.0)
    nb.stats.permutation_test(lambda p: x[p][:, :4].mean(1), 12, n_permutations=130, batch_size=50, seed=0,
                              progress=True)
    assert _frames(capsys.readouterr().err, "permutations")[-1] == (130, 130)


def _subject_rdms(n_stim=20, n_sub=3, seed=0):
    rng = np.random.default_rng(seed)
    ids = [f"s{i:02d}" for i in range(n_stim)]
    feats = rng.normal(size=(n_stim, 6))
    base = 1.0 - np.corrcoef(feats)
    out = []
    for _ in range(n_sub):
        e = rng.normal(size=(n_stim, n_stim))
        r = base + 0.5 * (e + e.T)
        np.fill_diagonal(r, 0.0)
        out.append(r)
    brain = nb.core.rdm(np.stack(out), dims=("subject",), stimulus=ids, coords={"subject": ["a", "b", "c"][:n_sub]})
    acts = {f"L{k}": nb.core.activations(rng.normal(size=(n_stim, 8)) + (feats @ rng.normal(size=(6, 8))) * k,
                                         stimulus=ids) for k in range(3)}
    return brain, acts


def test_rsa_bootstrap_bar_counts_resamples_whatever_the_batch(capsys):
    brain, acts = _subject_rdms()
    models = nb.rsa.rdm(xr.concat([acts[k] for k in acts], dim=xr.DataArray(list(acts), dims="model")),
                        sample_dim="stimulus", feature_dim="unit")
    nb.rsa.evaluate_models(brain, models, "spearman", over="both", n_bootstraps=300, batch_size=7, seed=0,
                           noise_ceiling=False, progress=True)
    frames = _frames(capsys.readouterr().err, "bootstrap")
    assert frames and {t for _, t in frames} == {300}  # batches would be ceil(300 / 7) = 43
    assert frames[-1] == (300, 300)


def test_rdm_permutation_bar_counts_permutations(capsys):
    brain, acts = _subject_rdms()
    model = nb.rsa.rdm(acts["L1"], sample_dim="stimulus", feature_dim="unit")
    nb.rsa.rdm_permutation_test(brain.mean("subject"), model, "pearson", n_permutations=120, batch_size=50,
                                seed=0, progress=True)
    assert _frames(capsys.readouterr().err, "permutations")[-1] == (120, 120)


def test_benchmark_bootstrap_bar_reaches_the_resamples_in_provenance(capsys):
    from neurobridge.benchmark import Benchmark, BenchmarkData, score_benchmark

    brain, acts = _subject_rdms()
    piece, _ = score_benchmark(Benchmark("toy", data=lambda d: None, split="stimulus", n_splits=2),
                               BenchmarkData(None, brain), acts, n_bootstrap=1000, seed=0, progress=True)
    recorded = int(re.search(r"\((\d+) resamples", str(piece["ci_method"].values))[1])
    frames = _frames(capsys.readouterr().err, "bootstrap")
    assert recorded == 1000
    assert frames and {t for _, t in frames} == {recorded}  # was 200 (batches of 5)
    assert frames[-1] == (recorded, recorded)


def test_searchlight_bar_counts_centres(capsys):
    ijk = np.stack(np.meshgrid(range(4), range(4), range(3), indexing="ij"), -1).reshape(-1, 3)
    rng = np.random.default_rng(0)
    betas = nb.core.fmri_responses(rng.normal(size=(8, 48)), stimulus=range(8), dim="stimulus",
                                   voxel_coords={"i": ijk[:, 0], "j": ijk[:, 1], "k": ijk[:, 2]})
    model = nb.rsa.rdm(xr.DataArray(rng.random((8, 3)), dims=("stimulus", "unit"), coords={"stimulus": range(8)}))
    for method in ("spearman", "kendall"):  # side by side on the cores / the plain batch loop
        nb.rsa.searchlight(betas, model, radius=1.5, method=method, batch_size=10, progress=True)
        frames = _frames(capsys.readouterr().err, "searchlight")
        assert frames and {t for _, t in frames} == {48}, method
        assert frames[-1] == (48, 48), method


def test_side_by_side_counts_the_steps_each_item_stands_for(capsys):
    assert side_by_side(lambda v: v + 1, [0, 10, 20], 2, sizes=[4, 4, 2], desc="work", progress=True) == [1, 11, 21]
    assert _frames(capsys.readouterr().err, "work")[-1] == (10, 10)
    with pytest.raises(ValueError, match="one count per item"):
        side_by_side(lambda v: v, [1, 2], 1, sizes=[1])


# ------------------------------------------------------------------ real processes: pipe and terminal

_SCRIPT = textwrap.dedent('''
    import sys, time, torch, neurobridge as nb

    def stat(p):
        if SLOW:
            time.sleep(0.005)
        return p[:, :3].float().mean(1)

    def case(name, **kw):
        global SLOW
        SLOW = kw.pop("slow", False)
        sys.stderr.write(f"@@{name}@@\\n"); sys.stderr.flush()
        nb.stats.permutation_test(stat, 20, n_permutations=300, batch_size=1, seed=0, **kw)
        sys.stderr.write("@@end@@\\n"); sys.stderr.flush()

    for name in sys.argv[1:]:
        if name == "config_false":
            with nb.config_context(progress=False):
                case(name)
        elif name == "config_true":
            with nb.config_context(progress=True):
                case(name)
        elif name == "forced":
            case(name, progress=True, slow=True)
        elif name == "off":
            case(name, progress=False)
        else:
            case(name)
''')


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TQDM_")}
    env.update(extra)
    return env


def _segments(err: str) -> dict[str, str]:
    return dict(re.findall(r"@@(\w+)@@\r?\n(.*?)@@end@@", err, flags=re.S))


def _run_piped(cases, **env) -> dict[str, str]:
    proc = subprocess.run([sys.executable, "-c", _SCRIPT, *cases], capture_output=True, env=_env(**env),
                          timeout=300, check=False)  # stderr is a pipe, as in CI
    err = proc.stderr.decode(errors="replace")  # bytes: text mode would turn every "\r" into "\n"
    assert proc.returncode == 0, err[-2000:]
    return _segments(err)


def _run_on_terminal(cases, **env) -> dict[str, str]:
    """Run the script with stderr on a real pseudo-terminal (100 columns); what it wrote there."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    chunks: list[bytes] = []

    def drain():
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO once the child has closed the terminal
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        proc = subprocess.Popen([sys.executable, "-c", _SCRIPT, *cases], stderr=slave, stdout=subprocess.DEVNULL,
                                env=_env(**env))
    finally:
        os.close(slave)
    rc = proc.wait(timeout=300)
    reader.join(timeout=30)
    os.close(master)
    err = b"".join(chunks).decode(errors="replace")
    assert rc == 0, err[-2000:]
    return _segments(err)


def test_script_with_piped_stderr_prints_no_bar_unless_asked_and_then_few_frames():
    seg = _run_piped(["default", "config_true", "forced"])
    assert set(seg) == {"default", "config_true", "forced"}
    assert "permutations" not in seg["default"] and "\r" not in seg["default"]
    assert _frames(seg["config_true"], "permutations")[-1] == (300, 300)
    # 300 steps over > 1.5 s: a refresh every 0.1 s (tqdm's default) would write 15+ frames into the log
    forced = seg["forced"]
    assert _frames(forced, "permutations")[-1] == (300, 300)
    assert len(_frames(forced, "permutations")) <= 3 and forced.count("\r") <= 3, forced
    assert forced.endswith("\n")  # the final count stays on its own line


@posix_only
def test_terminal_shows_a_bar_by_default_and_config_or_call_turn_it_off():
    seg = _run_on_terminal(["default", "config_false", "off"])
    assert set(seg) == {"default", "config_false", "off"}
    assert _frames(seg["default"], "permutations")[-1][1] == 300
    assert "permutations" not in seg["config_false"]
    assert "permutations" not in seg["off"]


@posix_only
def test_tqdm_disable_hides_bars_on_a_terminal_but_an_explicit_request_wins():
    seg = _run_on_terminal(["default", "forced", "config_true"], TQDM_DISABLE="1", TQDM_MININTERVAL="60")
    assert set(seg) == {"default", "forced", "config_true"}
    assert "permutations" not in seg["default"]
    assert _frames(seg["config_true"], "permutations")[-1][1] == 300
    # progress=True beats TQDM_DISABLE; TQDM_MININTERVAL=60 reaches tqdm: no refresh during the > 1.5 s run
    forced = seg["forced"]
    assert _frames(forced, "permutations")[-1][1] == 300
    assert len(_frames(forced, "permutations")) <= 3, forced
