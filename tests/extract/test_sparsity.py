"""Streaming sparsity / quantisation statistics of the extraction pass (nb.extract.sparsity, report, plot_sparsity).

References: exact numpy computations on the full stored activations (pooling="none") of a small random GPT-2
(counts exactly, CETT curve at the bin edges to float rounding, CETT thresholds / quantiles within one histogram
bin, activation ratios within their exact bounds), a direct torch quantise -> dequantise per batch, and planted
dead / lazy units and a planted two-scale CETT.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _extract_helpers import WideMLP, minilm_dir, mlp_inputs, tiny_gpt2

import neurobridge as nb
from neurobridge.extract import _sparsity as sp
from neurobridge.extract._stats import RunningStats

TEXTS = ["the cat sat on the mat", "a dog", "unbelievable tokenization of representational geometry", "hi",
         "neurons fire rarely in deep networks", "the brain", "sparse coding and lazy neurons in transformers",
         "one more sentence about activations"]
LOG2_BIN = float(np.log2(sp.MAX_BIN_RATIO))  # one histogram bin, at most


@pytest.fixture(scope="module")
def gpt_run():
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(minilm_dir())
    gpt = tiny_gpt2(tok.vocab_size)
    layers = ["h.0.mlp.act", "h.1.mlp.act", "h.1"]
    tree = nb.extract.activations(gpt, TEXTS, layers, tokenizer=tok, pooling="none", batch_size=3, progress=False)
    layers = list(tree.attrs["layers"])  # depth order
    valid = {}
    for layer in layers:
        acts = tree[layer]["activations"].values  # (stimulus, token, unit) float32, exactly what the stats saw
        mask = tree[layer]["token_mask"].values
        valid[layer] = [acts[i][mask[i]] for i in range(len(TEXTS))]  # per stimulus (tokens, unit)
    return tree, layers, valid


def _exact_cett_curve(v: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """mean over positions of ||a[|a| <= e]|| / ||a||, float64, for every edge e."""
    a = np.abs(v.astype(np.float64))
    sq = a**2
    tot = sq.sum(1)
    keep = tot > 0
    return np.array([np.sqrt((sq * (a <= e)).sum(1)[keep] / tot[keep]).mean() for e in edges])


def _exact_cett_threshold(v: np.ndarray, c: float) -> tuple[float, float]:
    """Smallest |a| whose dropping (with everything below) exceeds CETT c, and the fraction kept (>= it)."""
    a = np.abs(v.astype(np.float64))
    cand = np.unique(a)
    lo, hi = 0, len(cand) - 1  # binary search of the monotone curve: first candidate with CETT > c
    while lo < hi:
        mid = (lo + hi) // 2
        if _exact_cett_curve(v, cand[mid:mid + 1])[0] > c:
            hi = mid
        else:
            lo = mid + 1
    return float(cand[lo]), float((a >= cand[lo]).mean())


def test_streaming_statistics_equal_exact_numpy_on_tiny_gpt2(gpt_run):
    tree, layers, valid = gpt_run
    for layer in layers:
        v = np.concatenate(valid[layer]).astype(np.float64)  # (positions, unit)
        a = np.abs(v)
        st = tree["stats"][layer]
        count = int(st["count"].values[0])
        assert count == v.shape[0]
        # histogram counts: exact, with the float32 edges (EDGES[i-1] < |a| <= EDGES[i])
        idx = np.searchsorted(sp.EDGES, a.astype(np.float32).astype(np.float64), side="left")
        want = np.stack([np.bincount(idx[:, u], minlength=sp.N_BINS) for u in range(v.shape[1])])
        np.testing.assert_array_equal(st["hist"].values, want)
        # near-zero counts at the recorded eps: exact
        for j, e in enumerate(sp.NEAR_ZERO_EPS):
            n = np.rint(st["frac_near_zero"].values[j] * count)
            np.testing.assert_array_equal(n, (a <= np.float32(e)).sum(0))
        # CETT curve at the edges: exact up to float rounding
        np.testing.assert_allclose(st["cett_curve"].values[:-1], _exact_cett_curve(v, sp.EDGES), rtol=1e-5,
                                   atol=1e-7)
        # per-unit percentiles (numpy inverted_cdf): within one bin (relative error < MAX_BIN_RATIO - 1)
        q = np.percentile(a, sp.PERCENTILES, axis=0, method="inverted_cdf").T
        got = st["abs_percentile"].values
        big = q > 2.0**-20
        assert np.all(np.abs(np.log2(got[big] / q[big])) <= LOG2_BIN + 1e-9)
        np.testing.assert_allclose(got[:, -1][q[:, -1] == a.max(0)], a.max(0)[q[:, -1] == a.max(0)], rtol=1e-6)


def test_cett_threshold_and_activation_ratio_against_brute_force(gpt_run):
    tree, layers, valid = gpt_run
    cetts = (0.05, 0.2, 0.5)
    ds = nb.extract.sparsity(tree, cett=cetts)
    for layer in layers:
        v = np.concatenate(valid[layer])
        for c in cetts:
            t_exact, r_exact = _exact_cett_threshold(v, c)
            d = ds.sel(layer=layer, cett=c)
            assert float(d["activation_ratio_low"]) - 1e-12 <= r_exact <= float(d["activation_ratio_high"]) + 1e-12
            # the threshold lies in the bin that holds the exact one: relative error < MAX_BIN_RATIO - 1
            assert abs(np.log2(float(d["cett_threshold"]) / t_exact)) <= LOG2_BIN + 1e-9
            assert abs(float(d["activation_ratio"]) - r_exact) <= float(d["activation_ratio_high"] -
                                                                        d["activation_ratio_low"]) + 1e-12
            assert float(d["cett_sparsity"]) == pytest.approx(1 - float(d["activation_ratio"]))
    # GELU (mlp.act) layers: the near-zero fraction at eps not recorded is bracketed by the bin counts
    v = np.abs(np.concatenate(valid["h.0.mlp.act"]).astype(np.float64))
    e = 0.05
    got = float(nb.extract.sparsity(tree, eps=[0.0, e, 1e-3]).sel(layer="h.0.mlp.act", eps=e)["frac_near_zero"])
    i = np.searchsorted(sp.EDGES, e)
    assert (v <= sp.EDGES[i - 1]).mean() <= got <= (v <= sp.EDGES[i]).mean()
    assert abs(got - (v <= e).mean()) < 0.02


def test_quantisation_error_equals_direct_torch_per_batch(gpt_run):
    tree, layers, valid = gpt_run
    ds = nb.extract.sparsity(tree)
    for layer in layers:
        err = dict.fromkeys(("int8", "fp8_e4m3"), 0.0)
        norm = 0.0
        for start in range(0, len(TEXTS), 3):  # batch_size=3: one per-unit absmax scale per batch
            x = torch.from_numpy(np.concatenate(valid[layer][start:start + 3]))
            amax = x.abs().amax(0)
            s8 = torch.where(amax > 0, amax / 127, torch.ones_like(amax))
            q = x / s8
            q8 = (torch.sign(q) * torch.floor(q.abs() + 0.5)).clamp(-127, 127)
            err["int8"] += float(((x - q8 * s8).double() ** 2).sum())
            s = torch.where(amax > 0, amax / 448.0, torch.ones_like(amax))
            deq = (x / s).clamp(-448.0, 448.0).to(torch.float8_e4m3fn).float() * s
            err["fp8_e4m3"] += float(((x - deq).double() ** 2).sum())
            norm += float((x.double() ** 2).sum())
        for fmt, e in err.items():
            assert float(ds["quant_rel_error"].sel(layer=layer, format=fmt)) == pytest.approx(np.sqrt(e / norm),
                                                                                              rel=1e-5)
        rel = ds["quant_rel_error"].sel(layer=layer)
        assert 0 < float(rel.sel(format="int8")) < float(rel.sel(format="fp8_e4m3")) < 0.1


def test_planted_dead_and_lazy_units_and_report_columns():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 8)).astype(np.float32)
    x[:, 0:2] = -np.abs(x[:, 0:2]) - 0.1  # dead: never positive
    x[:, 2] = -1.0
    x[3, 2] = 2.0  # active in 1 of 200 positions (rate 0.005)
    x[:, 3] = -1.0
    x[:10, 3] = 1.5  # active in 10 of 200 (rate 0.05)
    net = torch.nn.Sequential(torch.nn.Identity(), torch.nn.ReLU())
    tree = nb.extract.activations(net, x, "1", batch_size=64, progress=False)
    ds = nb.extract.sparsity(tree, lazy=0.01)
    d = ds.sel(layer="1")
    assert float(d["frac_dead_units"]) == 2 / 8
    assert float(d["frac_lazy_units"]) == 3 / 8
    assert float(nb.extract.sparsity(tree, lazy=0.1).sel(layer="1")["frac_lazy_units"]) == 4 / 8
    relu = np.maximum(x, 0)
    assert float(d["frac_active"]) == pytest.approx((relu > 0).mean())
    assert float(d["frac_zero"]) == pytest.approx((relu == 0).mean())
    rep = nb.extract.report(tree, cett=(0.1, 0.2), lazy=0.1)
    assert rep.loc["1", "frac_lazy_units"] == 4 / 8 and rep.loc["1", "frac_dead_units"] == 2 / 8
    for col in ("frac_abs_le_0.001", "cett0.1_threshold", "cett0.2_activation_ratio", "abs_p99.9",
                "quant_int8_rel_error", "quant_fp8_e4m3_rel_error"):
        assert np.isfinite(rep.loc["1", col]), col
    assert rep.loc["1", "frac_abs_le_0.001"] == pytest.approx((relu <= 1e-3).mean())


def test_planted_two_scale_cett_threshold_sits_at_the_large_values():
    # every position: 6 entries of 0.01 and 4 of 1.0 -> dropping the small ones is CETT sqrt(6e-4 / 4.0006) = 0.0122
    x = np.tile(np.array([0.01] * 6 + [1.0] * 4, dtype=np.float32), (20, 1))
    x *= np.where(np.random.default_rng(1).random(x.shape) < 0.5, -1, 1).astype(np.float32)
    tree = nb.extract.activations(torch.nn.Sequential(torch.nn.Identity()), x, "0", progress=False)
    d = nb.extract.sparsity(tree, cett=(0.01, 0.2)).sel(layer="0")
    # c = 0.2: the exact ratio 0.4 lies within the exact bounds; the threshold is in the bin of 1.0
    assert float(d["activation_ratio_low"].sel(cett=0.2)) <= 0.4 <= float(d["activation_ratio_high"].sel(cett=0.2))
    assert abs(np.log2(float(d["cett_threshold"].sel(cett=0.2)))) <= LOG2_BIN
    # c = 0.01 < 0.0122: even the small entries must stay; threshold in the bin of 0.01, all kept
    assert float(d["activation_ratio_high"].sel(cett=0.01)) == 1.0
    assert abs(np.log2(float(d["cett_threshold"].sel(cett=0.01)) / 0.01)) <= LOG2_BIN
    curve = float(d["cett_curve"].sel(threshold=sp.EDGES[np.searchsorted(sp.EDGES, np.float32(0.01))]))
    assert curve == pytest.approx(np.sqrt(6e-4 / (6e-4 + 4.0)), rel=1e-5)


def test_unit_percentiles_match_numpy_within_one_bin():
    rng = np.random.default_rng(2)
    v = np.exp(rng.normal(0, 4, size=(3000, 3))).astype(np.float32)  # magnitudes over ~ 1e-7 .. 1e7
    v[:300, 0] = 0.0
    b = sp.batch_sparsity(torch.from_numpy(v)[:, None, :])
    q = (0.0, 5.0, 10.0, 50.0, 99.0, 99.9, 100.0)
    got = sp.unit_percentiles(b.hist.numpy(), (v == 0).sum(0), v.max(0), q)
    want = np.percentile(v.astype(np.float64), q, axis=0, method="inverted_cdf").T
    assert got[0, 0] == 0 and got[0, 1] == 0  # inside the exact zeros of unit 0
    big = want > 2.0**-20
    assert np.all(np.abs(np.log2(got[big] / want[big])) <= LOG2_BIN + 1e-9)
    assert np.all(np.abs(got[~big] - want[~big]) <= 2.0**-20)
    np.testing.assert_allclose(got[:, -1], v.max(0))
    for rows in (slice(None), slice(0, 50)):  # hist_out: dense add (>= N_BINS positions) and sparse add (fewer)
        h = np.ones((3, sp.N_BINS), dtype=np.int64)
        out = sp.batch_sparsity(torch.from_numpy(v[rows])[:, None, :], hist_out=h)
        assert out.hist is None
        np.testing.assert_array_equal(h - 1, sp.batch_sparsity(torch.from_numpy(v[rows])[:, None, :]).hist.numpy())


def _fail_at_third_batch():
    """A preprocess class whose instances share a call count and raise on the third batch (an interrupted run)."""

    class Fail:
        calls = 0

        def __call__(self, batch):
            Fail.calls += 1
            if Fail.calls == 3:
                raise RuntimeError("interrupted")
            return torch.as_tensor(np.asarray(batch))

    return Fail


def test_store_round_trip_and_resume_keep_the_sparsity_state(tmp_path):
    net = WideMLP(width=16, n_layers=2)
    x = mlp_inputs(30)
    mem = nb.extract.sparsity(nb.extract.activations(net, x, "layers.*", batch_size=10, progress=False))

    Fail = _fail_at_third_batch()

    path = tmp_path / "s.zarr"
    with pytest.raises(RuntimeError, match="interrupted"):
        nb.extract.activations(net, x, "layers.*", batch_size=10, progress=False, store=path, preprocess=Fail())
    done = nb.extract.activations(net, x, "layers.*", batch_size=10, progress=False, store=path, preprocess=Fail())
    for tree in (done, nb.extract.open_store(path)):
        got = nb.extract.sparsity(tree)
        for var in ("frac_near_zero", "cett_curve", "activation_ratio", "quant_rel_error", "abs_percentile"):
            np.testing.assert_allclose(got[var].values, mem[var].values, rtol=1e-12, err_msg=var)
        np.testing.assert_array_equal(tree["stats"]["layers.1"]["hist"].values,
                                      nb.extract.activations(net, x, "layers.*", batch_size=10, progress=False)[
                                          "stats"]["layers.1"]["hist"].values)


def test_state_without_sparsity_fields_reports_nan_and_sparsity_says_why():
    tree = nb.extract.activations(torch.nn.Sequential(torch.nn.Linear(3, 4)), torch.randn(6, 3), progress=False)
    rs = RunningStats(4)
    old = {f: v for f, v in rs.state().items() if f not in RunningStats.SPARSITY_FIELDS}
    legacy = RunningStats.from_state(old, 10)
    assert legacy.hist is None and set(legacy.state()) == set(old)
    ds = legacy.to_dataset(np.arange(6), layer="0", model="m")
    assert "hist" not in ds
    tree["stats/0"] = ds
    rep = nb.extract.report(tree)
    assert np.isnan(rep.loc["0", "cett0.2_activation_ratio"]) and np.isfinite(rep.loc["0", "absmax"])
    with pytest.raises(ValueError, match="no sparsity statistics .*extract again"):
        nb.extract.sparsity(tree)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"cett": 0.0}, r"cett must lie in \(0, 1\), got \[0.0\]"),
        ({"cett": (0.2, 1.0)}, r"cett must lie in \(0, 1\), got \[1.0\]"),
        ({"cett": -0.1}, r"cett must lie in \(0, 1\)"),
        ({"cett": float("nan")}, r"cett must lie in \(0, 1\)"),
        ({"cett": ()}, r"cett must be a number or a non-empty"),
        ({"lazy": 1.0}, r"lazy must lie in \[0, 1\)"),
        ({"lazy": -0.5}, r"lazy must lie in \[0, 1\)"),
        ({"eps": -1e-3}, r"eps must be finite thresholds >= 0"),
        ({"eps": [0.1, float("inf")]}, r"eps must be finite thresholds >= 0"),
        ({"percentiles": 101}, r"percentiles must lie in \[0, 100\]"),
    ],
)
def test_bad_parameters_give_clear_errors(kw, match):
    tree = nb.extract.activations(torch.nn.Sequential(torch.nn.Linear(3, 4)), torch.randn(6, 3), progress=False)
    with pytest.raises(ValueError, match=match):
        nb.extract.sparsity(tree, **kw)
    if "percentiles" not in kw:
        with pytest.raises(ValueError, match=match):
            nb.extract.report(tree, **kw)


def test_no_stats_node_and_bad_plot_input_errors():
    tree = nb.extract.activations(torch.nn.Sequential(torch.nn.Linear(3, 4)), torch.randn(6, 3), stats=False,
                                  progress=False)
    with pytest.raises(ValueError, match=r"stats=True"):
        nb.extract.sparsity(tree)
    with pytest.raises(TypeError, match="DataTree"):
        nb.plotting.plot_sparsity(np.zeros(3))
    with pytest.raises(ValueError, match="lacks"):
        nb.plotting.plot_sparsity(nb.extract.sparsity(nb.extract.activations(
            torch.nn.Sequential(torch.nn.Linear(3, 4)), torch.randn(6, 3), progress=False)).drop_vars("absmax"))


def test_plot_sparsity_draws_every_layer(gpt_run):
    tree, layers, _ = gpt_run
    fig = nb.plotting.plot_sparsity(tree, cett=(0.1, 0.2), title="tiny GPT-2")
    axes = fig.axes
    assert len(axes) == 6 and fig._suptitle.get_text() == "tiny GPT-2"
    assert [t.get_text() for t in axes[0].get_xticklabels()] == [name[2:] for name in layers]  # "h." dropped
    assert len(axes[2].get_lines()) == len(layers) + 2  # one curve per layer and a marker line per CETT
    ds = nb.extract.sparsity(tree, cett=(0.1, 0.2))
    np.testing.assert_allclose(axes[5].get_lines()[0].get_ydata(), ds["quant_rel_error"].sel(format="int8").values)
    import matplotlib.pyplot as plt

    plt.close(fig)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_batch_statistics_equal_cpu():
    x = torch.randn(6, 50, 300, generator=torch.Generator().manual_seed(0)) ** 3
    mask = torch.ones(6, 50, dtype=torch.long)
    mask[2, 30:] = 0
    for sub in (x, x[..., :40]):  # dense and sorted CETT paths
        cpu, gpu = sp.batch_sparsity(sub, mask), sp.batch_sparsity(sub.cuda(), mask.cuda())
        np.testing.assert_array_equal(gpu.hist.numpy(), cpu.hist.numpy())
        np.testing.assert_array_equal(gpu.n_small.numpy(), cpu.n_small.numpy())
        np.testing.assert_allclose(gpu.cett_sum.numpy(), cpu.cett_sum.numpy(), rtol=1e-5)
        np.testing.assert_allclose(gpu.quant_sq_err.numpy(), cpu.quant_sq_err.numpy(), rtol=1e-5)


def test_a_store_written_before_the_sparsity_statistics_still_resumes_and_opens(tmp_path):
    """A commit record without the sparsity fields (stores written before them) resumes and opens without them."""
    from neurobridge.extract._store import _read_progress, _write_progress

    net = WideMLP(width=16, n_layers=2)
    x = mlp_inputs(30)

    Fail = _fail_at_third_batch()

    path = tmp_path / "old.zarr"
    with pytest.raises(RuntimeError, match="interrupted"):
        nb.extract.activations(net, x, "layers.*", batch_size=10, progress=False, store=path, preprocess=Fail())
    prog = _read_progress(path)
    old = {k: v for k, v in prog["arrays"].items() if k.split("/")[-1] not in RunningStats.SPARSITY_FIELDS}
    assert len(old) < len(prog["arrays"])
    _write_progress(path, prog["meta"], old)
    done = nb.extract.activations(net, x, "layers.*", batch_size=10, progress=False, store=path, preprocess=Fail())
    for tree in (done, nb.extract.open_store(path)):
        assert "hist" not in tree["stats"]["layers.1"].dataset
        rep = nb.extract.report(tree)
        assert np.isnan(rep["cett0.2_activation_ratio"]).all() and np.isfinite(rep["absmax"]).all()
