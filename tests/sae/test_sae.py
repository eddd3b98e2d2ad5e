"""neurobridge.sae: planted-dictionary recovery, ``evaluate`` against a float64 numpy recomputation, training-loss
gradients against a dense float64 autograd reference, decoder norm / gradient projection, determinism,
save / load, bad input and the accepted input types."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
import xarray as xr

import neurobridge as nb
from neurobridge.core import SchemaError
from neurobridge.sae import SAE, BatchTopKConfig, TopKConfig, evaluate, load_sae, train_sae

from ._helpers import assert_same_state as _assert_same_state

CONFIGS = {"topk": TopKConfig, "batchtopk": BatchTopKConfig}


def _recovery(W_dec: torch.Tensor, dictionary: np.ndarray) -> np.ndarray:
    """For each true atom, the cosine of its best-matching decoder row (float64)."""
    W = W_dec.detach().to(torch.float64).numpy()
    W = W / np.linalg.norm(W, axis=1, keepdims=True)
    D = dictionary / np.linalg.norm(dictionary, axis=1, keepdims=True)
    return (D @ W.T).max(axis=1)


@pytest.fixture(scope="module")
def small_sim():
    return nb.datasets.simulate_sparse_codes(600, 16, 32, k=2, random_state=0)


# -- 1. planted dictionary recovery ------------------------------------------------------------------------------

@pytest.mark.parametrize("variant", ["topk", "batchtopk"])
def test_recovers_planted_dictionary(variant):
    # 64 true unit-norm atoms in 32 dims, 3 active per sample, no noise; an SAE with 256 latents (4x the atoms).
    # Measured at this size: TopK 100% of atoms (seeds 0-7), BatchTopK 98.4-100% (seeds 0-7); ~1.5-2 s each.
    sim = nb.datasets.simulate_sparse_codes(4000, 32, 64, k=3, random_state=0)
    cfg = CONFIGS[variant](n_latents=256, k=3)
    sae, history = train_sae(sim.data, cfg, epochs=40, batch_size=256, lr=3e-3, seed=0, progress=False)
    best = _recovery(sae.W_dec, sim.dictionary.values)
    rate = float((best > 0.9).mean())
    assert rate >= 0.9, f"{variant}: {rate:.1%} of atoms recovered at cosine > 0.9 (median {np.median(best):.3f})"
    # the same metric on the untrained initialisation finds nothing: the criterion is not trivially met
    untrained = _recovery(SAE(sae.config, seed=0).W_dec, sim.dictionary.values)
    assert float((untrained > 0.9).mean()) < 0.05
    ev = evaluate(sae, sim.data)
    assert ev.fvu < 0.15
    assert history.fvu[-20:].mean() < history.fvu[:20].mean() / 5
    if variant == "topk":
        assert ev.l0 == 3
    else:  # the learned inference threshold keeps L0 near k
        assert 2.0 <= ev.l0 <= 4.0


# -- 2. evaluate against a float64 numpy recomputation -----------------------------------------------------------

@pytest.mark.parametrize("variant", ["topk", "batchtopk"])
def test_evaluate_matches_numpy_float64(small_sim, variant):
    cfg = CONFIGS[variant](n_latents=48, k=4)
    sae, _ = train_sae(small_sim.data, cfg, epochs=3, batch_size=100, lr=3e-3, seed=1, progress=False)
    with torch.no_grad():  # plant two always-active (dense) latents and ten that never fire (dead)
        sae.b_enc[:2] += 50.0
        sae.b_enc[2:12] = -1e3
    assert float(sae.input_scale) != 1.0  # the metrics are in input units: decode must undo the scale
    if variant == "batchtopk":
        assert float(sae.threshold) > 0  # evaluation uses the learned threshold
    X = small_sim.data.values
    ev = evaluate(sae, small_sim.data, batch_size=128)  # 600 = 4 * 128 + 88

    with torch.no_grad():
        code = sae.encode(torch.as_tensor(X, dtype=torch.float32))
    vals, idx = code.values.numpy().astype(np.float64), code.indices.numpy()
    n, n_lat = X.shape[0], cfg.n_latents
    Z = np.zeros((n, n_lat))
    np.add.at(Z, (np.repeat(np.arange(n), idx.shape[1]), idx.ravel()), vals.ravel())
    W = sae.W_dec.detach().numpy().astype(np.float64)
    b = sae.b_dec.detach().numpy().astype(np.float64)
    s = float(sae.input_scale)
    x_hat = (Z @ W + b) / s
    Xf = X.astype(np.float32).astype(np.float64)
    sse = ((Xf - x_hat) ** 2).sum()
    active = Z > 0
    density = active.mean(0)

    np.testing.assert_allclose(ev.mse, sse / X.size, rtol=1e-4)
    np.testing.assert_allclose(ev.fvu, sse / ((Xf - Xf.mean(0)) ** 2).sum(), rtol=1e-4)
    np.testing.assert_allclose(ev.l0, active.sum(1).mean(), rtol=1e-12)
    np.testing.assert_allclose(ev.density.values, density, rtol=1e-12)
    assert ev.dead_fraction == pytest.approx((density == 0).mean(), abs=1e-12)
    assert ev.dense_fraction == pytest.approx((density > 0.1).mean(), abs=1e-12)  # the documented default
    for dense_threshold in (0.0, 0.05, 0.3, np.median(density[density > 0])):
        got = evaluate(sae, X, batch_size=1000, dense_threshold=float(dense_threshold)).dense_fraction
        assert got == pytest.approx((density > dense_threshold).mean(), abs=1e-12), dense_threshold
    assert ev.density.dims == ("latent",) and list(ev.density.latent.values) == list(range(n_lat))
    # the planted latents come out as planted
    np.testing.assert_array_equal(ev.density.values[:2], 1.0)
    np.testing.assert_array_equal(ev.density.values[2:12], 0.0)
    assert ev.dead_fraction >= 10 / n_lat and ev.dense_fraction >= 2 / n_lat
    # decode through the sparse kernel agrees with the dense numpy reconstruction
    with torch.no_grad():
        np.testing.assert_allclose(sae.decode(code).numpy(), x_hat, rtol=1e-4, atol=1e-5)


# -- 3. gradients of the training loss against a dense float64 reference -----------------------------------------

def _dense_reference_loss(sae: SAE, xn: torch.Tensor, dead: torch.Tensor):
    """The training loss written densely in float64: dense W_dec, dense (Batch)TopK mask, dense AuxK mask."""
    cfg = sae.config
    p = {name: t.detach().to(torch.float64).clone().requires_grad_(True)
         for name, t in (("W_enc", sae.W_enc), ("b_enc", sae.b_enc), ("W_dec", sae.W_dec), ("b_dec", sae.b_dec))}
    x = xn.detach().to(torch.float64)
    pre = torch.relu((x - p["b_dec"]) @ p["W_enc"].T + p["b_enc"])
    P = pre.detach()
    if isinstance(cfg, BatchTopKConfig):
        flat = P.flatten()
        mask = torch.zeros_like(flat, dtype=torch.bool)
        mask[flat.topk(cfg.k * x.shape[0]).indices] = True
        mask = mask.view_as(P) & (P > 0)
    else:
        mask = torch.zeros_like(P, dtype=torch.bool).scatter_(1, P.topk(cfg.k, dim=1).indices, True)
    x_hat = (pre * mask) @ p["W_dec"] + p["b_dec"]
    total_var = ((x - x.mean(0)) ** 2).sum()
    fvu = ((x - x_hat) ** 2).sum() / total_var
    auxk = torch.zeros((), dtype=torch.float64)
    n_dead = int(dead.sum())
    if n_dead:
        k_aux = min(cfg.aux_k, n_dead)
        aux_sel = P.masked_fill(~dead[None, :], -torch.inf).topk(k_aux, dim=1).indices
        aux_mask = torch.zeros_like(P, dtype=torch.bool).scatter_(1, aux_sel, True)
        e_hat = (pre * aux_mask) @ p["W_dec"]
        auxk = min(n_dead / cfg.aux_k, 1.0) * ((e_hat - (x - x_hat).detach()) ** 2).sum() / total_var
    loss = fvu + cfg.aux_coef * auxk
    loss.backward()
    return loss.detach(), fvu.detach(), auxk.detach(), {name: t.grad for name, t in p.items()}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("n_dead", [0, 4, 15])  # no AuxK; fewer dead latents than aux_k (scaled); more than aux_k
@pytest.mark.parametrize("variant", ["topk", "batchtopk"])
def test_training_gradients_match_dense_float64_autograd(variant, n_dead, dtype):
    d, n_lat, batch = 12, 40, 16  # aux_k = d // 2 = 6
    cfg = CONFIGS[variant](n_latents=n_lat, k=3, d_in=d, dead_tokens=100, aux_coef=0.5)
    sae = SAE(cfg, seed=3, dtype=dtype).train()
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():  # untie and move every parameter off its initial value so each gradient term counts
        sae.W_enc.copy_(torch.randn(n_lat, d, generator=g, dtype=torch.float64).to(dtype) / d ** 0.5)
        sae.b_enc.copy_(0.1 * torch.randn(n_lat, generator=g, dtype=torch.float64).to(dtype))
        sae.b_dec.copy_(0.3 * torch.randn(d, generator=g, dtype=torch.float64).to(dtype))
        perm = torch.randperm(n_lat, generator=g)
        dead = torch.zeros(n_lat, dtype=torch.bool)
        dead[perm[:n_dead]] = True
        sae.tokens_since_fired[dead] = cfg.dead_tokens
    xn = torch.randn(batch, d, generator=g, dtype=torch.float64).to(dtype)
    ref_loss, ref_fvu, ref_auxk, ref_grad = _dense_reference_loss(sae, xn, dead)

    out = sae.training_step(xn)
    sae.zero_grad(set_to_none=True)
    out.loss.backward()
    rtol = 1e-10 if dtype == torch.float64 else 1e-4
    torch.testing.assert_close(out.loss.detach().double(), ref_loss, rtol=rtol, atol=0)
    torch.testing.assert_close(out.fvu.double(), ref_fvu, rtol=rtol, atol=0)
    torch.testing.assert_close(out.auxk.double(), ref_auxk, rtol=rtol, atol=1e-30)
    assert (float(ref_auxk) > 0) == (n_dead > 0)
    for name, ref in ref_grad.items():
        got = getattr(sae, name).grad
        assert got is not None and got.dtype == dtype, name
        torch.testing.assert_close(got.double(), ref, rtol=rtol, atol=rtol * float(ref.abs().max()), msg=name)
    # the decoder gradient is sparse: only the latents used by the code or by AuxK get one
    used = torch.zeros(n_lat, dtype=torch.bool)
    used[out.code.indices[out.code.values > 0]] = True
    assert torch.all(sae.W_dec.grad[~used & ~dead] == 0)


def test_batchtopk_threshold_is_running_mean_of_smallest_kept_activation():
    cfg = BatchTopKConfig(n_latents=40, k=3, d_in=12, threshold_momentum=0.9)
    sae = SAE(cfg, seed=0).train()
    g = torch.Generator().manual_seed(1)
    expected = None
    for _ in range(3):
        xn = torch.randn(16, 12, generator=g)
        with torch.no_grad():  # the smallest of the batch's 16 * 3 largest positive pre-activations
            pre = torch.relu((xn - sae.b_dec) @ sae.W_enc.T + sae.b_enc).flatten().double()
            low = float(pre.topk(16 * 3).values.min())
        out = sae.training_step(xn)
        assert int((out.code.values > 0).sum()) == 16 * 3
        expected = low if expected is None else 0.9 * expected + 0.1 * low
        assert float(sae.threshold) == pytest.approx(expected, rel=1e-5)
    # outside training, a latent is active exactly when its pre-activation exceeds the threshold
    sae.eval()
    x = torch.randn(1000, 12, generator=g)
    with torch.no_grad():
        code = sae.encode(x)
        pre = torch.relu((x - sae.b_dec) @ sae.W_enc.T + sae.b_enc)
    dense = code.to_dense(40)
    np.testing.assert_array_equal((dense > 0).numpy(), (pre > sae.threshold).numpy())
    torch.testing.assert_close(dense, pre * (pre > sae.threshold))


def test_dead_latent_tracking_counts_tokens_since_last_fired():
    cfg = TopKConfig(n_latents=40, k=3, d_in=12, dead_tokens=40)
    sae = SAE(cfg, seed=0).train()
    with torch.no_grad():  # only latents 0-5 can fire: rows with fewer than k positive ones pad with zeros
        sae.b_enc[6:] = -1e3
    g = torch.Generator().manual_seed(2)
    last_seen = np.full(40, -1)
    for step in range(4):
        out = sae.training_step(torch.randn(16, 12, generator=g))
        last_seen[np.unique(out.code.indices[out.code.values > 0].numpy())] = step
        assert bool((out.code.indices[out.code.values == 0] >= 6).any())  # zero-valued entries do occur
    expected = np.where(last_seen >= 0, (3 - last_seen) * 16, 4 * 16)
    np.testing.assert_array_equal(sae.tokens_since_fired.numpy(), expected)
    assert sae.dead_latents()[6:].all() and not sae.dead_latents()[:6].all()
    np.testing.assert_array_equal(sae.dead_latents().numpy(), expected >= 40)


def test_train_sae_initialisation_and_lr_schedule(small_sim):
    X = small_sim.data.values
    cfg = TopKConfig(n_latents=48, k=2)
    # lr=0: the weights stay at their initialisation, so it can be compared with references
    sae, history = train_sae(X, cfg, epochs=1, batch_size=100, lr=0.0, seed=4, progress=False)
    init = SAE(sae.config, seed=4)
    torch.testing.assert_close(sae.W_dec, init.W_dec, rtol=0, atol=1e-6)
    torch.testing.assert_close(sae.W_enc, init.W_dec, rtol=0, atol=1e-6)  # tied initialisation
    assert not torch.allclose(SAE(sae.config, seed=5).W_dec, init.W_dec, atol=0.1)
    # input scale: mean squared norm d_in after scaling
    s = float(sae.input_scale)
    assert ((X * s) ** 2).sum(1).mean() == pytest.approx(16, rel=1e-5)
    # pre-bias: the geometric median of the scaled inputs (scipy minimiser of the sum of distances, float64)
    from scipy.optimize import minimize

    Xs = X * s

    def total_distance(m):
        return np.linalg.norm(Xs - m, axis=1).sum()

    ref = minimize(total_distance, Xs.mean(0), method="BFGS", options={"gtol": 1e-10}).x
    b = sae.b_dec.detach().double().numpy()
    assert total_distance(b) <= total_distance(ref) * (1 + 1e-6)
    np.testing.assert_allclose(b, ref, atol=1e-5)
    assert np.linalg.norm(b - ref) < 0.2 * np.linalg.norm(Xs.mean(0) - ref)  # the median, not the mean
    unscaled, _ = train_sae(X, dataclasses.replace(cfg, normalize=False), epochs=1, batch_size=100, lr=0.0,
                            progress=False)
    assert float(unscaled.input_scale) == 1.0

    # the learning rate: linear warm-up over warmup_steps, linear decay to 0 over the last decay_fraction
    _, history = train_sae(X, cfg, n_tokens=40 * 15, batch_size=15, lr=1e-3, warmup_steps=5, decay_fraction=0.25,
                           progress=False)
    t = np.arange(40)
    expected = 1e-3 * np.minimum(np.minimum((t + 1) / 5, 1.0), np.where(t >= 30, (40 - t) / 10, 1.0))
    np.testing.assert_allclose(history.lr.values, expected, rtol=1e-12)
    np.testing.assert_array_equal(history.tokens.values, (t + 1) * 15)


# -- 4. unit-norm decoder and gradient projection ----------------------------------------------------------------

def test_project_decoder_grad_removes_the_parallel_component():
    cfg = TopKConfig(n_latents=40, k=3, d_in=12)
    sae = SAE(cfg, seed=0).train()
    xn = torch.randn(32, 12, generator=torch.Generator().manual_seed(0))
    sae.training_step(xn).loss.backward()
    G = sae.W_dec.grad.detach().double().clone()
    W = sae.W_dec.detach().double()
    assert float((G * W).sum(1).abs().max()) > 1e-3  # there is something to remove
    sae.project_decoder_grad()
    expected = G - (G * W).sum(1, keepdim=True) * W
    torch.testing.assert_close(sae.W_dec.grad.double(), expected, rtol=1e-5, atol=1e-7)
    parallel = (sae.W_dec.grad.double() * W).sum(1).abs()
    assert float(parallel.max()) <= 1e-6 * float(G.norm(dim=1).max())


@pytest.mark.parametrize("variant", ["topk", "batchtopk"])
def test_training_keeps_decoder_unit_norm_and_projects_its_gradient(small_sim, variant, monkeypatch):
    calls = []
    original = SAE.project_decoder_grad

    def spy(self):
        W = self.W_dec.detach().double()
        calls.append(float((W.norm(dim=1) - 1).abs().max()))  # the rows are unit-norm before every step
        original(self)
        parallel = (self.W_dec.grad.double() * W).sum(1).abs().max()
        assert float(parallel) <= 1e-5 * (1 + float(self.W_dec.grad.abs().max()))

    monkeypatch.setattr(SAE, "project_decoder_grad", spy)
    sae, history = train_sae(small_sim.data, CONFIGS[variant](n_latents=48, k=2), epochs=4, batch_size=100,
                             lr=1e-2, seed=0, progress=False)
    assert len(calls) == history.sizes["step"] == 24
    assert max(calls) < 1e-5
    norms = sae.W_dec.detach().double().norm(dim=1)
    torch.testing.assert_close(norms, torch.ones_like(norms), rtol=0, atol=1e-5)
    # the decoder did move (not a frozen decoder trivially at unit norm)
    assert float((sae.W_dec.detach() - SAE(sae.config, seed=0).W_dec.detach()).abs().max()) > 0.05


# -- 5. determinism ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("variant", ["topk", "batchtopk"])
def test_same_seed_bit_identical_different_seed_different(small_sim, variant):
    cfg = CONFIGS[variant](n_latents=48, k=2, dead_tokens=200)  # AuxK active too
    kw = dict(epochs=3, batch_size=64, lr=3e-3, progress=False)
    a, ha = train_sae(small_sim.data, cfg, seed=5, **kw)
    b, hb = train_sae(small_sim.data, cfg, seed=5, **kw)
    c, _ = train_sae(small_sim.data, cfg, seed=6, **kw)
    _assert_same_state(a, b)
    xr.testing.assert_identical(ha, hb)
    assert not torch.equal(a.W_dec, c.W_dec)
    assert not torch.equal(a.W_enc, c.W_enc)


# -- 6. save / load ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("variant", ["topk", "batchtopk"])
def test_save_load_roundtrip(small_sim, tmp_path, variant, dtype):
    sae, _ = train_sae(small_sim.data, CONFIGS[variant](n_latents=48, k=2), epochs=2, batch_size=100,
                       progress=False)
    if dtype == torch.float64:  # with values a float32 file could not hold
        sae = sae.to(torch.float64)
        with torch.no_grad():
            for p in sae.parameters():
                p.add_(1e-12 * torch.randn(p.shape, generator=torch.Generator().manual_seed(0), dtype=p.dtype))
    folder = sae.save(tmp_path / "sae")
    loaded = load_sae(folder)
    assert type(loaded.config) is type(sae.config) and loaded.config == sae.config
    assert loaded.config.d_in == 16
    _assert_same_state(sae, loaded)
    assert loaded.W_enc.dtype == dtype
    with torch.no_grad():
        c1, c2 = sae.eval().encode(small_sim.data), loaded.eval().encode(small_sim.data)
    assert torch.equal(c1.values, c2.values) and torch.equal(c1.indices, c2.indices)
    e1, e2 = evaluate(sae, small_sim.data), evaluate(loaded, small_sim.data)
    assert (e1.mse, e1.fvu, e1.l0) == (e2.mse, e2.fvu, e2.l0)
    xr.testing.assert_identical(e1.density, e2.density)
    assert load_sae(folder, variant=variant).config == sae.config
    if variant == "batchtopk":
        assert float(loaded.threshold) > 0 and float(loaded.threshold) == float(sae.threshold)


def test_load_wrong_variant_and_corrupted_files_raise(tmp_path):
    folder = SAE(TopKConfig(n_latents=16, k=2, d_in=4)).save(tmp_path / "a")
    with pytest.raises(ValueError, match=r"is a 'topk' SAE \(TopKConfig\), not 'batchtopk'"):
        load_sae(folder, variant="batchtopk")

    weights, cfg_file = folder / "sae.safetensors", folder / "config.json"
    good_weights, good_cfg = weights.read_bytes(), cfg_file.read_text()
    weights.write_bytes(good_weights[: len(good_weights) // 2])  # truncated
    with pytest.raises(ValueError, match=r"sae\.safetensors is not a readable safetensors file.*save the SAE again"):
        load_sae(folder)
    weights.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ValueError, match=r"not a readable safetensors file"):
        load_sae(folder)
    weights.write_bytes(good_weights)

    cfg_file.write_text(good_cfg[: len(good_cfg) // 2])
    with pytest.raises(ValueError, match=r"config\.json is not valid JSON"):
        load_sae(folder)
    meta = json.loads(good_cfg)
    meta["config"]["variant"] = "gated"
    cfg_file.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"unknown SAE variant 'gated'"):
        load_sae(folder)
    meta = json.loads(good_cfg)
    meta["config"]["n_latents"] = 32  # weights of another SAE
    cfg_file.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"does not match its config\.json"):
        load_sae(folder)
    cfg_file.write_text(json.dumps({"something": "else"}))
    with pytest.raises(ValueError, match=r"was not written by neurobridge"):
        load_sae(folder)
    weights.unlink()
    with pytest.raises(FileNotFoundError, match=r"has no sae\.safetensors"):
        load_sae(folder)


# -- 7. bad input ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["dataarray", "numpy", "torch"])
def test_nan_activations_raise(small_sim, kind):
    X = small_sim.data.copy()
    X[5, 3] = np.nan
    x = {"dataarray": X, "numpy": X.values, "torch": torch.as_tensor(X.values)}[kind]
    cfg = TopKConfig(n_latents=32, k=2)
    with pytest.raises(SchemaError, match=r"activations contains 1 non-finite value.*first at index \(5, 3\)"):
        train_sae(x, cfg, progress=False)
    sae = SAE(dataclasses.replace(cfg, d_in=16))
    with pytest.raises(SchemaError, match=r"activations contains 1 non-finite value"):
        evaluate(sae, x)
    with pytest.raises(SchemaError, match=r"SAE input contains 1 non-finite value"):
        sae.encode(x)


def test_k_larger_than_n_latents_raises():
    for cls in (TopKConfig, BatchTopKConfig):
        with pytest.raises(ValueError, match=r"k=9 > n_latents=8.*lower k or raise n_latents"):
            cls(n_latents=8, k=9)
    with pytest.raises(ValueError, match=r"k must be a positive int"):
        TopKConfig(n_latents=8, k=0)


def test_wrong_d_in_raises(small_sim):
    sae = SAE(TopKConfig(n_latents=32, k=2, d_in=16))
    with pytest.raises(ValueError, match=r"expected input of shape \(batch, d_in=16\), got \(5, 8\)"):
        sae.encode(torch.randn(5, 8))
    with pytest.raises(ValueError, match=r"expected input of shape \(batch, d_in=16\), got \(600, 8\)"):
        evaluate(sae, small_sim.data.isel(unit=slice(0, 8)))
    with pytest.raises(ValueError, match=r"config.d_in=12 but the activations have 16 units"):
        train_sae(small_sim.data, TopKConfig(n_latents=32, k=2, d_in=12), progress=False)
    with pytest.raises(ValueError, match=r"expected a DataArray with dims \(stimulus\|token, unit\)"):
        train_sae(small_sim.data.rename(unit="channel"), TopKConfig(n_latents=32, k=2), progress=False)


@pytest.mark.parametrize("variant", ["topk", "batchtopk"])
def test_too_few_samples_for_a_batch_raise(small_sim, variant):
    cfg = CONFIGS[variant](n_latents=32, k=2)
    X = small_sim.data.values
    with pytest.raises(ValueError, match=r"activations have 1 sample\(s\); training needs at least 2"):
        train_sae(X[:1], cfg, progress=False)
    with pytest.raises(ValueError, match=r"activations have 0 sample\(s\)"):
        train_sae(X[:0], cfg, progress=False)
    with pytest.raises(ValueError, match=r"batch_size must be >= 2.*got 1"):
        train_sae(X[:10], cfg, batch_size=1, progress=False)
    # two samples is enough, and a batch_size above the sample count is capped (documented)
    sae, history = train_sae(X[:2], cfg, batch_size=64, epochs=2, progress=False)
    assert history.attrs["batch_size"] == 2 and np.isfinite(history.loss.values).all()
    assert torch.isfinite(sae.W_dec).all()


# -- 8. input types ----------------------------------------------------------------------------------------------

def test_dataarray_numpy_and_torch_inputs_agree(small_sim):
    da = small_sim.data
    assert da.dims == ("stimulus", "unit")
    inputs = {
        "dataarray": da,
        "dataarray (unit, stimulus)": da.transpose("unit", "stimulus"),
        "dataarray (token, unit)": da.rename(stimulus="token"),
        "numpy float64": da.values,
        "numpy float32": da.values.astype(np.float32),
        "torch float32": torch.as_tensor(da.values, dtype=torch.float32),
        "torch float64": torch.as_tensor(da.values),
    }
    cfg = BatchTopKConfig(n_latents=32, k=2)
    kw = dict(epochs=2, batch_size=100, lr=3e-3, seed=2, progress=False)
    ref, ref_hist = train_sae(inputs["dataarray"], cfg, **kw)
    ref_ev = evaluate(ref, da)
    with torch.no_grad():
        ref_code = ref.encode(da)
    for name, x in inputs.items():
        sae, hist = train_sae(x, cfg, **kw)
        _assert_same_state(ref, sae)
        np.testing.assert_array_equal(hist.loss.values, ref_hist.loss.values, err_msg=name)
        ev = evaluate(ref, x)
        for field in ("mse", "fvu", "l0", "dead_fraction", "dense_fraction"):
            assert getattr(ev, field) == pytest.approx(getattr(ref_ev, field), rel=1e-6), (name, field)
        with torch.no_grad():
            code = ref.encode(x)
        assert torch.equal(code.indices, ref_code.indices), name
        torch.testing.assert_close(code.values, ref_code.values, rtol=1e-6, atol=1e-6, msg=name)
    # an integer array is accepted as float
    with torch.no_grad():
        assert ref.encode(np.ones((3, 16), dtype=np.int64)).values.dtype == torch.float32
