"""neurobridge.sae variants beyond TopK / BatchTopK: ReLU + decoder-norm-weighted L1 (Anthropic's April 2024 update),
JumpReLU (Rajamanoharan et al. 2024) and Matryoshka-BatchTopK (Bussmann et al. 2025).

Checked here: the JumpReLU pseudo-derivatives against finite differences of the kernel-smoothed functions and of
the smoothed training loss; the ReLU L1 penalty and loss against a closed form; the Matryoshka loss and all
training gradients against dense float64 autograd; the sparse and dense decode paths against each other; the L1
warm-up and gradient clipping; planted-dictionary recovery; determinism; save / load; bad configurations.

Planted recovery rates measured (fraction of the true atoms whose best decoder row has cosine > 0.9; 1 thread):

* small problem (``simulate_sparse_codes(2000, 16, 24, k=2)``, 96 latents, 30 epochs of batch 128 = 469 steps;
  the fast tests): ReLU (``l1_coef=1``) 100% (seeds 0-4, L0 ~10.6), JumpReLU (``sparsity_coef=0.1``, thresholds
  from 0.1, bandwidth 0.2, lr 1e-2) 100% (seeds 0-4, L0 ~1.66), Matryoshka (prefixes 64 / 96, lr 1e-2) 92-100%
  (seeds 0-4, L0 ~1.97);
* the TopK / BatchTopK problem of ``test_sae.py`` (``simulate_sparse_codes(4000, 32, 64, k=3)``, 256 latents, 40
  epochs of batch 256 = 625 steps; the slow tests): ReLU 100% (seeds 0-2, L0 ~18), JumpReLU
  (``sparsity_coef=0.05``, bandwidth 0.1) 95-97% (seeds 0-2, L0 ~2.7), Matryoshka (prefixes 64 / 128 / 256)
  97-98% (seeds 0-2, L0 ~2.96).

ReLU finds every atom but its L0 stays well above the planted one (L1 shrinks activations; it does not zero all the
small ones). JumpReLU needs a bandwidth and initial thresholds near the data's scale to get there in this few
steps: with the paper's defaults (both 0.001, ``sparsity_coef=0.1``, lr 1e-2) the small problem gives 0% after 469
steps (L0 ~24: the thresholds have not moved yet) and 96-100% after 1563 (seeds 0-1).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import neurobridge as nb
from neurobridge.core import SchemaError
from neurobridge.sae import (
    SAE,
    BatchTopKConfig,
    JumpReLUConfig,
    MatryoshkaBatchTopKConfig,
    ReLUConfig,
    SemiNMFConfig,
    TopKConfig,
    _model,
    evaluate,
    load_sae,
    train_sae,
)
from neurobridge.sae._functional import decoder_norm_l1, jumprelu, step

from ._helpers import assert_same_state as _assert_same_state

# -- helpers ---------------------------------------------------------------------------------------------------------


def _recovery(W_dec: torch.Tensor, dictionary: np.ndarray) -> np.ndarray:
    """For each true atom, the cosine of its best-matching decoder row (float64)."""
    W = W_dec.detach().to(torch.float64).numpy()
    W = W / np.linalg.norm(W, axis=1, keepdims=True)
    D = dictionary / np.linalg.norm(dictionary, axis=1, keepdims=True)
    return (D @ W.T).max(axis=1)


def _perturbed(cfg, *, seed=3, dtype=torch.float64) -> SAE:
    """An SAE with every parameter moved off its initialisation (so each gradient term counts)."""
    sae = SAE(cfg, seed=seed, dtype=dtype).train()
    n, d = cfg.n_latents, cfg.d_in
    g = torch.Generator().manual_seed(seed + 10)
    with torch.no_grad():
        sae.W_enc.copy_(torch.randn(n, d, generator=g, dtype=torch.float64).to(dtype) / d ** 0.5)
        sae.b_enc.copy_(0.1 * torch.randn(n, generator=g, dtype=torch.float64).to(dtype))
        sae.b_dec.copy_(0.3 * torch.randn(d, generator=g, dtype=torch.float64).to(dtype))
        if isinstance(cfg, ReLUConfig):  # rows of different norms: the penalty weights them
            norms = 0.2 + torch.rand(n, 1, generator=g, dtype=torch.float64)
            sae.W_dec.copy_((torch.randn(n, d, generator=g, dtype=torch.float64) * norms / d ** 0.5).to(dtype))
        if isinstance(cfg, JumpReLUConfig):
            t = 0.3 + 0.4 * torch.rand(n, generator=g, dtype=torch.float64)
            sae.log_threshold.copy_(t.log().to(dtype))
    return sae


def _grads(sae: SAE) -> dict[str, torch.Tensor]:
    return {name: p.grad.detach().clone() for name, p in sae.named_parameters() if p.grad is not None}


SMALL = dict(n=2000, d=16, atoms=24, k=2)
VARIANT_CONFIGS = {
    "relu": lambda n: ReLUConfig(n_latents=n, l1_coef=1.0),
    "jumprelu": lambda n: JumpReLUConfig(n_latents=n, sparsity_coef=0.1, threshold_init=0.1, bandwidth=0.2),
    "matryoshka": lambda n: MatryoshkaBatchTopKConfig(n_latents=n, k=SMALL["k"], prefix_sizes=(2 * n // 3,)),
}
LR = {"relu": 3e-3, "jumprelu": 1e-2, "matryoshka": 1e-2}


@pytest.fixture(scope="module")
def small_sim():
    return nb.datasets.simulate_sparse_codes(600, 16, 32, k=2, random_state=0)


# -- 1. JumpReLU: pseudo-derivatives -------------------------------------------------------------------------------

def _smoothed_step(z, t, eps):
    """The step smoothed by the rectangle kernel: ``H_eps(s) = clip(s / eps + 1/2, 0, 1)``."""
    return ((z - t) / eps + 0.5).clamp(0, 1)


def _smoothed_jumprelu(z, t, eps):
    """JumpReLU with its jump at ``theta`` smoothed over the window ``|z - theta| < eps / 2``: continuous, equal to
    ``z H(z - theta)`` outside the window, with ``d / d theta = -theta / eps`` inside."""
    mid = z + ((z - eps / 2) ** 2 - t ** 2) / (2 * eps)
    s = z - t
    return torch.where(s >= eps / 2, z, torch.where(s <= -eps / 2, torch.zeros_like(z), mid))


def _central_fd(f, x0: torch.Tensor, h: float = 1e-6) -> torch.Tensor:
    out = torch.zeros_like(x0)
    for i in range(x0.numel()):
        e = torch.zeros_like(x0)
        e.view(-1)[i] = h
        out.view(-1)[i] = (f(x0 + e) - f(x0 - e)) / (2 * h)
    return out


def test_jumprelu_and_step_pseudo_derivatives_are_derivatives_of_the_kde_smoothed_functions():
    g = torch.Generator().manual_seed(0)
    B, n, eps = 300, 6, 0.3
    z = 2 * torch.randn(B, n, generator=g, dtype=torch.float64)
    theta0 = 0.5 + torch.rand(n, generator=g, dtype=torch.float64)
    c = torch.randn(B, n, generator=g, dtype=torch.float64)  # a linear outer loss sum(c * f)
    s = z - theta0
    assert bool(((s.abs() - eps / 2).abs() > 1e-4).all()) and bool((s.abs() > 1e-4).all())  # no kink within h
    in_window = (s.abs() < eps / 2).sum(0)
    assert int(in_window.min()) >= 3  # every latent has samples in the kernel window: the gradients are not 0

    # forward: exactly z H(z - theta) and H(z - theta); the smoothed versions agree outside the window
    t = theta0.clone().requires_grad_(True)
    zz = z.clone().requires_grad_(True)
    out_j = jumprelu(zz, t, eps)
    torch.testing.assert_close(out_j.detach(), z * (z > theta0), rtol=0, atol=0)
    outside = s.abs() >= eps / 2
    torch.testing.assert_close(_smoothed_jumprelu(z, theta0, eps)[outside], out_j.detach()[outside])
    (c * out_j).sum().backward()
    fd = _central_fd(lambda th: (c * _smoothed_jumprelu(z, th, eps)).sum(), theta0)
    torch.testing.assert_close(t.grad, fd, rtol=1e-7, atol=1e-8)
    torch.testing.assert_close(zz.grad, c * (z > theta0))  # the ordinary gradient to z (no STE on z)
    # the kernel window matters: a pseudo-derivative without the theta factor would not match
    assert not torch.allclose(t.grad / theta0, fd, rtol=0.1)

    t2 = theta0.clone().requires_grad_(True)
    zz2 = z.clone().requires_grad_(True)
    out_s = step(zz2, t2, eps)
    torch.testing.assert_close(out_s.detach(), (z > theta0).double(), rtol=0, atol=0)
    (c * out_s).sum().backward()
    fd = _central_fd(lambda th: (c * _smoothed_step(z, th, eps)).sum(), theta0)
    torch.testing.assert_close(t2.grad, fd, rtol=1e-7, atol=1e-8)
    torch.testing.assert_close(zz2.grad, torch.zeros_like(z))  # no gradient to z through the L0 term
    # -(1/eps) * (number of window samples weighted by c): the closed form of the rectangle kernel
    torch.testing.assert_close(t2.grad, -(c * (s.abs() < eps / 2)).sum(0) / eps)
    with pytest.raises(ValueError, match=r"bandwidth must be > 0"):
        step(z, theta0, 0.0)


def test_jumprelu_threshold_gradient_matches_finite_difference_of_the_smoothed_loss():
    d, n, B = 6, 10, 400
    cfg = JumpReLUConfig(n_latents=n, d_in=d, sparsity_coef=0.05, bandwidth=0.1, threshold_init=0.05)
    sae = _perturbed(cfg, seed=1)
    xn = torch.randn(B, d, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    scale = 0.7  # mid warm-up: the sparsity coefficient in use is 0.7 * sparsity_coef
    out = sae.training_step(xn, sparsity_scale=scale)
    sae.zero_grad(set_to_none=True)
    out.loss.backward()
    ste = sae.log_threshold.grad.detach().clone()
    eps = sae.bandwidth
    assert eps == pytest.approx(0.1 * d ** 0.5)  # the paper's units times sqrt(d_in)
    W, b = sae.W_dec.detach(), sae.b_dec.detach()
    with torch.no_grad():
        z = torch.nn.functional.linear(xn - b, sae.W_enc, sae.b_enc)
        th0 = sae.jump_threshold.clone()
        y0 = z * (z > th0)
    lt0 = sae.log_threshold.detach().clone()
    assert int(((z - th0).abs() < eps / 2).sum(0).min()) >= 5

    def loss(y, t):
        return ((xn - (y @ W + b)) ** 2).sum(1).mean() / d + scale * cfg.sparsity_coef * _smoothed_step(z, t, eps).sum(1).mean()

    # the training loss with theta entering only through the kernel-smoothed functions (the straight-through
    # estimator's model): its derivative in log(theta) is the STE gradient, exactly
    fd = _central_fd(lambda lt: loss(y0 + _smoothed_jumprelu(z, lt.exp(), eps) - _smoothed_jumprelu(z, th0, eps),
                                     lt.exp()), lt0)
    torch.testing.assert_close(ste, fd, rtol=1e-6, atol=1e-9)
    assert float(ste.abs().max()) > 1e-3
    # the fully smoothed loss (reconstruction from the smoothed activations too) differs by O(eps): close
    fd_full = _central_fd(lambda lt: loss(_smoothed_jumprelu(z, lt.exp(), eps), lt.exp()), lt0)
    assert float(torch.nn.functional.cosine_similarity(ste, fd_full, dim=0)) > 0.99
    assert float((ste - fd_full).abs().max()) < 0.1 * float(fd_full.abs().max())
    # the loss value itself: reconstruction / d_in + coefficient * mean L0
    expected = ((xn - (y0 @ W + b)) ** 2).sum(1).mean() / d + scale * cfg.sparsity_coef * (z > th0).double().sum(1).mean()
    torch.testing.assert_close(out.loss.detach(), expected)
    torch.testing.assert_close(out.sparsity, (z > th0).sum(1).double().mean())


def _dense_reference(sae: SAE, xn: torch.Tensor, sparsity_scale: float):
    """The ReLU / JumpReLU training loss written densely in float64 with plain autograd (no STE: the threshold
    gets no gradient here, everything else must match)."""
    cfg = sae.config
    p = {name: t.detach().to(torch.float64).clone().requires_grad_(True)
         for name, t in (("W_enc", sae.W_enc), ("b_enc", sae.b_enc), ("W_dec", sae.W_dec), ("b_dec", sae.b_dec))}
    x = xn.detach().to(torch.float64)
    z = (x - p["b_dec"]) @ p["W_enc"].T + p["b_enc"]
    if isinstance(cfg, ReLUConfig):
        f = torch.relu(z)
        penalty = (f * p["W_dec"].norm(dim=1)).sum(1).mean()
        coef, denom = cfg.l1_coef, 1.0
    else:
        theta = sae.jump_threshold.detach().double()
        f = z * (z > theta).double()
        penalty = (z.detach() > theta).double().sum(1).mean()
        coef, denom = cfg.sparsity_coef, cfg.d_in
    x_hat = f @ p["W_dec"] + p["b_dec"]
    loss = ((x - x_hat) ** 2).sum(1).mean() / denom + sparsity_scale * coef * penalty
    loss.backward()
    return loss.detach(), {name: t.grad for name, t in p.items()}


@pytest.mark.parametrize("path", ["sparse", "dense"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("variant", ["relu", "jumprelu"])
def test_dense_variant_gradients_match_dense_float64_autograd(variant, dtype, path, monkeypatch):
    d, n, B = 12, 64, 16
    cfg = (ReLUConfig(n_latents=n, d_in=d, l1_coef=0.7) if variant == "relu" else
           JumpReLUConfig(n_latents=n, d_in=d, sparsity_coef=0.05, bandwidth=0.05, threshold_init=0.1))
    sae = _perturbed(cfg, dtype=dtype)
    if variant == "relu":
        with torch.no_grad():
            sae.b_enc -= 0.6  # a sparse code, so that the sparse decode path is the one taken
    # force the decode path: ratio 0 -> always the sparse gather, a huge ratio -> always the dense matmul
    monkeypatch.setattr(_model, "_SPARSE_DECODE_RATIO", 0 if path == "sparse" else 10**9)
    xn = torch.randn(B, d, generator=torch.Generator().manual_seed(5), dtype=torch.float64).to(dtype)
    ref_loss, ref_grad = _dense_reference(sae, xn, 0.4)
    out = sae.training_step(xn, sparsity_scale=0.4)
    sae.zero_grad(set_to_none=True)
    out.loss.backward()
    rtol = 1e-10 if dtype == torch.float64 else 1e-4
    torch.testing.assert_close(out.loss.detach().double(), ref_loss, rtol=rtol, atol=0)
    for name, ref in ref_grad.items():
        got = getattr(sae, name).grad
        assert got is not None and got.dtype == dtype, name
        torch.testing.assert_close(got.double(), ref, rtol=rtol, atol=rtol * float(ref.abs().max()), msg=name)
    # the step's code and FVU are those of the dense activations
    with torch.no_grad():
        z = torch.nn.functional.linear(xn - sae.b_dec, sae.W_enc, sae.b_enc)
        f = torch.relu(z) if variant == "relu" else z * (z > sae.jump_threshold)
    torch.testing.assert_close(out.code.to_dense(n), f)
    resid = (xn - (f @ sae.W_dec.detach() + sae.b_dec.detach())).double()
    fvu = resid.square().sum() / (xn.double() - xn.double().mean(0)).square().sum()
    torch.testing.assert_close(out.fvu.double(), fvu, rtol=rtol, atol=0)


@pytest.mark.parametrize("variant", ["relu", "jumprelu"])
def test_sparse_and_dense_decode_paths_agree_exactly(variant, monkeypatch):
    d, n, B = 10, 80, 32
    cfg = (ReLUConfig(n_latents=n, d_in=d) if variant == "relu" else
           JumpReLUConfig(n_latents=n, d_in=d, sparsity_coef=0.1, bandwidth=0.1, threshold_init=0.1))
    xn = torch.randn(B, d, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    results = {}
    for path, ratio in (("sparse", 0), ("dense", 10**9)):
        monkeypatch.setattr(_model, "_SPARSE_DECODE_RATIO", ratio)
        sae = _perturbed(cfg)
        out = sae.training_step(xn)
        sae.zero_grad(set_to_none=True)
        out.loss.backward()
        results[path] = (out.loss.detach(), _grads(sae), out.x_hat)
    (l1, g1, x1), (l2, g2, x2) = results["sparse"], results["dense"]
    torch.testing.assert_close(l1, l2, rtol=1e-12, atol=0)
    torch.testing.assert_close(x1, x2, rtol=1e-12, atol=1e-14)
    assert g1.keys() == g2.keys() and ("log_threshold" in g1) == (variant == "jumprelu")
    for key in g1:
        torch.testing.assert_close(g1[key], g2[key], rtol=1e-10, atol=1e-13, msg=key)
    if variant == "jumprelu":
        assert float(g1["log_threshold"].abs().max()) > 0  # the window entries were gathered on the sparse path


# -- 2. ReLU + decoder-norm-weighted L1 ----------------------------------------------------------------------------

def test_relu_l1_penalty_and_loss_closed_form():
    cfg = ReLUConfig(n_latents=4, d_in=4, l1_coef=2.0, normalize=False)
    sae = SAE(cfg, dtype=torch.float64).train()
    with torch.no_grad():  # identity encoder, no biases, decoder rows e_i * c_i of norms c = 1, 2, 3, 4
        sae.W_enc.copy_(torch.eye(4, dtype=torch.float64))
        sae.b_enc.zero_()
        sae.b_dec.zero_()
        sae.W_dec.copy_(torch.diag(torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)))
    xn = torch.tensor([[1.0, 2.0, -1.0, 0.0], [0.5, 0.0, 3.0, -2.0]], dtype=torch.float64)
    # f = relu(x) = [[1, 2, 0, 0], [0.5, 0, 3, 0]]; penalty rows 1*1 + 2*2 = 5 and 0.5*1 + 3*3 = 9.5, mean 7.25
    # x_hat = f * c = [[1, 4, 0, 0], [0.5, 0, 9, 0]]; squared errors 0 + 4 + 1 = 5 and 36 + 4 = 40, mean 22.5
    out = sae.training_step(xn, sparsity_scale=0.5)
    assert float(out.sparsity) == pytest.approx(7.25, abs=1e-12)
    assert float(out.loss.detach()) == pytest.approx(22.5 + 0.5 * 2.0 * 7.25, abs=1e-12)
    f = torch.relu(xn)
    assert float(decoder_norm_l1(f, sae.W_dec.detach())) == pytest.approx(7.25, abs=1e-12)
    # a random case against numpy float64: mean_b sum_i f_bi ||W_i||
    rng = np.random.default_rng(0)
    F_, W = np.maximum(rng.normal(size=(7, 9)), 0), rng.normal(size=(9, 5)) * rng.uniform(0.1, 3, size=(9, 1))
    expected = (F_ * np.linalg.norm(W, axis=1)).sum(1).mean()
    assert float(decoder_norm_l1(torch.as_tensor(F_), torch.as_tensor(W))) == pytest.approx(expected, rel=1e-13)
    # the penalty is invariant to moving scale between f_i and the decoder row: shrinking a row does not pay
    assert float(decoder_norm_l1(torch.as_tensor(F_ * 2), torch.as_tensor(W / 2))) == pytest.approx(expected, rel=1e-13)


def test_relu_training_keeps_free_decoder_norms_warms_up_l1_and_clips(small_sim, monkeypatch):
    calls = []
    original = torch.nn.utils.clip_grad_norm_

    def spy(params, max_norm, *args, **kwargs):
        calls.append(max_norm)
        return original(params, max_norm, *args, **kwargs)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", spy)
    projected = []
    monkeypatch.setattr(SAE, "project_decoder_grad", lambda self: projected.append(1))
    cfg = ReLUConfig(n_latents=48, l1_coef=3.0, l1_warmup_fraction=0.25, max_grad_norm=0.5)
    sae, history = train_sae(small_sim.data, cfg, epochs=4, batch_size=60, lr=3e-3, progress=False)
    n_steps = history.sizes["step"]
    assert n_steps == 40 and calls == [0.5] * 40 and not projected  # clipped every step, never projected
    t = np.arange(n_steps)
    np.testing.assert_allclose(history.sparsity_coef.values, 3.0 * np.minimum(1.0, (t + 1) / 10), rtol=1e-12)
    init = SAE(sae.config, seed=0)
    np.testing.assert_allclose(init.W_dec.detach().norm(dim=1).numpy(), 0.1, rtol=1e-6)  # the April init norm
    norms = sae.W_dec.detach().norm(dim=1).numpy()
    assert norms.std() > 0.01 and abs(norms.mean() - 0.1) > 0.01  # trained freely, not renormalised
    assert (history.sparsity.values > 0).all() and np.isfinite(history.loss.values).all()
    # no clipping when max_grad_norm is None
    calls.clear()
    train_sae(small_sim.data, dataclasses.replace(cfg, max_grad_norm=None), epochs=1, batch_size=60, progress=False)
    assert calls == []


# -- 3. Matryoshka ---------------------------------------------------------------------------------------------------

def test_matryoshka_loss_and_gradients_match_dense_float64_reference():
    d, n, B = 12, 48, 16
    cfg = MatryoshkaBatchTopKConfig(n_latents=n, k=3, d_in=d, prefix_sizes=(6, 24), dead_tokens=100, aux_coef=0.5)
    assert cfg.prefix_sizes == (6, 24, 48)
    sae = _perturbed(cfg)
    with torch.no_grad():
        dead = torch.zeros(n, dtype=torch.bool)
        dead[torch.randperm(n, generator=torch.Generator().manual_seed(0))[:5]] = True
        sae.tokens_since_fired[dead] = cfg.dead_tokens
    xn = torch.randn(B, d, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    p = {name: getattr(sae, name).detach().clone().requires_grad_(True) for name in ("W_enc", "b_enc", "W_dec", "b_dec")}
    pre = torch.relu((xn - p["b_dec"]) @ p["W_enc"].T + p["b_enc"])
    P = pre.detach()
    flat = P.flatten()
    mask = torch.zeros_like(flat, dtype=torch.bool)
    mask[flat.topk(cfg.k * B).indices] = True
    mask = mask.view_as(P) & (P > 0)
    f = pre * mask
    total_var = ((xn - xn.mean(0)) ** 2).sum()
    latent = torch.arange(n)
    fvus = [((xn - ((f * (latent < m)) @ p["W_dec"] + p["b_dec"])) ** 2).sum() / total_var for m in cfg.prefix_sizes]
    resid = (xn - (f @ p["W_dec"] + p["b_dec"])).detach()
    aux_sel = P.masked_fill(~dead[None, :], -torch.inf).topk(min(cfg.aux_k, 5), dim=1).indices
    aux_mask = torch.zeros_like(P, dtype=torch.bool).scatter_(1, aux_sel, True)
    auxk = min(5 / cfg.aux_k, 1.0) * (((pre * aux_mask) @ p["W_dec"] - resid) ** 2).sum() / total_var
    ref = sum(fvus) + cfg.aux_coef * auxk
    ref.backward()

    out = sae.training_step(xn)
    sae.zero_grad(set_to_none=True)
    out.loss.backward()
    torch.testing.assert_close(out.loss.detach(), ref.detach(), rtol=1e-10, atol=0)
    torch.testing.assert_close(out.fvu, fvus[-1].detach(), rtol=1e-10, atol=0)  # reported: the full dictionary
    assert len({round(float(v.detach()), 6) for v in fvus}) == 3  # each prefix is a distinct term
    for name, t in p.items():
        torch.testing.assert_close(getattr(sae, name).grad, t.grad, rtol=1e-10,
                                   atol=1e-10 * float(t.grad.abs().max()), msg=name)


# -- 4. planted dictionary recovery ----------------------------------------------------------------------------------

def _train_planted(variant, sim, n_latents, *, epochs, batch_size, seed=0):
    cfg = VARIANT_CONFIGS[variant](n_latents)
    return train_sae(sim.data, cfg, epochs=epochs, batch_size=batch_size, lr=LR[variant], seed=seed, progress=False)


@pytest.mark.parametrize("variant", ["relu", "jumprelu", "matryoshka"])
def test_recovers_planted_dictionary_small(variant):
    # 24 unit-norm atoms in 16 dims, 2 active per sample; 96 latents (4x); 469 steps. Rates in the module docstring.
    sim = nb.datasets.simulate_sparse_codes(SMALL["n"], SMALL["d"], SMALL["atoms"], k=SMALL["k"], random_state=0)
    sae, history = _train_planted(variant, sim, 96, epochs=30, batch_size=128)
    best = _recovery(sae.W_dec, sim.dictionary.values)
    rate = float((best > 0.9).mean())
    assert rate >= 0.9, f"{variant}: {rate:.1%} of atoms recovered at cosine > 0.9 (median {np.median(best):.3f})"
    untrained = _recovery(SAE(sae.config, seed=0).W_dec, sim.dictionary.values)
    assert float((untrained > 0.9).mean()) < 0.05  # the criterion is not met by chance
    ev = evaluate(sae, sim.data)
    assert ev.fvu < (0.15 if variant != "jumprelu" else 0.2)
    if variant == "relu":
        assert ev.l0 < 20  # L1 sparsifies (from about half of the 96 latents at the start)
    else:
        assert 1.0 <= ev.l0 <= 3.0  # near the planted 2: thresholds learned (JumpReLU) / BatchTopK threshold


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("variant", ["relu", "jumprelu", "matryoshka"])
def test_recovers_planted_dictionary_at_the_topk_problem_size(variant, seed):
    sim = nb.datasets.simulate_sparse_codes(4000, 32, 64, k=3, random_state=0)
    cfg = {"relu": ReLUConfig(n_latents=256, l1_coef=1.0),
           "jumprelu": JumpReLUConfig(n_latents=256, sparsity_coef=0.05, threshold_init=0.1, bandwidth=0.1),
           "matryoshka": MatryoshkaBatchTopKConfig(n_latents=256, k=3, prefix_sizes=(64, 128))}[variant]
    sae, _ = train_sae(sim.data, cfg, epochs=40, batch_size=256, lr=LR[variant], seed=seed, progress=False)
    rate = float((_recovery(sae.W_dec, sim.dictionary.values) > 0.9).mean())
    assert rate >= 0.9, f"{variant} seed {seed}: {rate:.1%}"


# -- 5. JumpReLU inference, determinism, save / load --------------------------------------------------------------

def test_jumprelu_encode_keeps_exactly_the_latents_above_their_threshold():
    cfg = JumpReLUConfig(n_latents=40, d_in=12, threshold_init=0.2)
    sae = _perturbed(cfg, dtype=torch.float32).eval()
    x = torch.randn(500, 12, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        code = sae.encode(x)
        z = torch.nn.functional.linear(x * sae.input_scale - sae.b_dec, sae.W_enc, sae.b_enc)
        theta = sae.jump_threshold
    dense = code.to_dense(40)
    assert theta.std() > 0.05  # per-latent thresholds, not one
    np.testing.assert_array_equal((dense > 0).numpy(), (z > theta).numpy())
    torch.testing.assert_close(dense, z * (z > theta), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(SAE(cfg).jump_threshold.detach().numpy(), 0.2 * 12 ** 0.5, rtol=1e-6)
    with pytest.raises(AttributeError, match=r"has no attribute 'jump_threshold'"):
        _ = SAE(TopKConfig(n_latents=8, k=2, d_in=4)).jump_threshold


ALL = {"relu": ReLUConfig(n_latents=48, l1_coef=0.5),
       "jumprelu": JumpReLUConfig(n_latents=48, sparsity_coef=0.05, threshold_init=0.05, bandwidth=0.1),
       "matryoshka_batchtopk": MatryoshkaBatchTopKConfig(n_latents=48, k=2, prefix_sizes=(8, 24))}


@pytest.mark.parametrize("variant", sorted(ALL))
def test_same_seed_bit_identical_different_seed_different(small_sim, variant):
    kw = dict(epochs=2, batch_size=64, lr=3e-3, progress=False)
    a, ha = train_sae(small_sim.data, ALL[variant], seed=5, **kw)
    b, hb = train_sae(small_sim.data, ALL[variant], seed=5, **kw)
    c, _ = train_sae(small_sim.data, ALL[variant], seed=6, **kw)
    _assert_same_state(a, b)
    np.testing.assert_array_equal(ha.loss.values, hb.loss.values)
    assert not torch.equal(a.W_dec, c.W_dec)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("variant", sorted(ALL))
def test_save_load_roundtrip(small_sim, tmp_path, variant, dtype):
    sae, _ = train_sae(small_sim.data, ALL[variant], epochs=2, batch_size=100, lr=3e-3, progress=False)
    sae = sae.to(dtype)
    folder = sae.save(tmp_path / variant)
    loaded = load_sae(folder)
    assert type(loaded.config) is type(sae.config) and loaded.config == sae.config
    _assert_same_state(sae, loaded)
    assert loaded.W_enc.dtype == dtype
    if variant == "jumprelu":
        torch.testing.assert_close(loaded.jump_threshold, sae.jump_threshold, rtol=0, atol=0)
        assert not torch.allclose(loaded.jump_threshold, SAE(sae.config, dtype=dtype).jump_threshold)  # trained
    if variant == "relu":
        torch.testing.assert_close(loaded.W_dec.norm(dim=1), sae.W_dec.norm(dim=1), rtol=0, atol=0)
    if variant == "matryoshka_batchtopk":
        assert loaded.config.prefix_sizes == (8, 24, 48) and float(loaded.threshold) == float(sae.threshold) > 0
    with torch.no_grad():
        c1, c2 = sae.eval().encode(small_sim.data), loaded.eval().encode(small_sim.data)
    assert torch.equal(c1.values, c2.values) and torch.equal(c1.indices, c2.indices)
    e1, e2 = evaluate(sae, small_sim.data), evaluate(loaded, small_sim.data)
    assert (e1.mse, e1.fvu, e1.l0) == (e2.mse, e2.fvu, e2.l0)
    assert load_sae(folder, variant=variant).config == sae.config
    other = "relu" if variant != "relu" else "jumprelu"
    with pytest.raises(ValueError, match=rf"is a '{variant}' SAE \({type(sae.config).__name__}\), not '{other}'"):
        load_sae(folder, variant=other)


# -- 6. bad configurations and inputs --------------------------------------------------------------------------------

@pytest.mark.parametrize(("make", "match"), [
    (lambda: ReLUConfig(n_latents=0), r"ReLUConfig: n_latents must be a positive int, got 0"),
    (lambda: ReLUConfig(n_latents=8, l1_coef=-1.0), r"ReLUConfig: l1_coef must be a finite number in \[0, inf\]"),
    (lambda: ReLUConfig(n_latents=8, l1_coef=float("nan")), r"l1_coef must be a finite number"),
    (lambda: ReLUConfig(n_latents=8, l1_warmup_fraction=1.5), r"l1_warmup_fraction must be a finite number in \[0, 1\]"),
    (lambda: ReLUConfig(n_latents=8, init_decoder_norm=0.0), r"init_decoder_norm must be a finite number in \(0, inf\]"),
    (lambda: ReLUConfig(n_latents=8, max_grad_norm=0.0), r"max_grad_norm .*; pass None for no clipping"),
    (lambda: ReLUConfig(n_latents=8, dead_tokens=0), r"dead_tokens must be a positive int"),
    (lambda: JumpReLUConfig(n_latents=8, bandwidth=0.0), r"JumpReLUConfig: bandwidth must be a finite number in \(0"),
    (lambda: JumpReLUConfig(n_latents=8, threshold_init=-0.1), r"threshold_init must be a finite number in \(0"),
    (lambda: JumpReLUConfig(n_latents=8, sparsity_coef=-1.0), r"sparsity_coef must be a finite number in \[0"),
    (lambda: JumpReLUConfig(n_latents=8, d_in=0), r"d_in must be a positive int or None, got 0"),
    (lambda: JumpReLUConfig(n_latents=8, sparsity_warmup_fraction=2), r"sparsity_warmup_fraction must be"),
    (lambda: MatryoshkaBatchTopKConfig(n_latents=64, k=4, prefix_sizes=(32, 16)),
     r"prefix_sizes must be strictly increasing and at most n_latents=64, got \(32, 16\)"),
    (lambda: MatryoshkaBatchTopKConfig(n_latents=64, k=4, prefix_sizes=(16, 128)), r"strictly increasing and at most"),
    (lambda: MatryoshkaBatchTopKConfig(n_latents=64, k=4, prefix_sizes=(2, 32)),
     r"the smallest prefix \(2\) is smaller than k=4.*drop it or lower k"),
    (lambda: MatryoshkaBatchTopKConfig(n_latents=64, k=4, prefix_sizes=(16.5,)), r"prefix_sizes must be ints"),
    (lambda: MatryoshkaBatchTopKConfig(n_latents=64, k=4, prefix_sizes=16), r"must be a sequence of ints"),
    (lambda: MatryoshkaBatchTopKConfig(n_latents=8, k=9), r"k=9 > n_latents=8"),
    (lambda: MatryoshkaBatchTopKConfig(n_latents=8, k=2, threshold_momentum=1.0), r"threshold_momentum must be in"),
])
def test_bad_configs_raise_clear_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_configs_are_frozen_and_default_prefixes():
    cfg = ReLUConfig(n_latents=8)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.l1_coef = 1.0
    assert MatryoshkaBatchTopKConfig(n_latents=100, k=8).prefix_sizes == (12, 25, 50, 100)  # 6 < k dropped
    assert MatryoshkaBatchTopKConfig(n_latents=64, k=2, prefix_sizes=[16, 64]).prefix_sizes == (16, 64)
    assert isinstance(MatryoshkaBatchTopKConfig(n_latents=8, k=2), BatchTopKConfig)


def test_wrong_config_types_raise(small_sim):
    with pytest.raises(TypeError, match=r"SemiNMFConfig is not an SAE; fit it with nb.sae.fit_nmf"):
        train_sae(small_sim.data, SemiNMFConfig(n_latents=4), progress=False)
    with pytest.raises(TypeError, match=r"config must be a TopKConfig.*got dict"):
        train_sae(small_sim.data, {"n_latents": 4}, progress=False)
    with pytest.raises(TypeError, match=r"semi-NMF / NMF is fitted by nb.sae.fit_nmf"):
        SAE(SemiNMFConfig(n_latents=4, d_in=16))


@pytest.mark.parametrize("variant", sorted(ALL))
def test_nan_and_wrong_d_in_raise(small_sim, variant):
    X = small_sim.data.values.copy()
    X[3, 2] = np.inf
    with pytest.raises(SchemaError, match=r"activations contains 1 non-finite value.*first at index \(3, 2\)"):
        train_sae(X, ALL[variant], progress=False)
    sae = SAE(dataclasses.replace(ALL[variant], d_in=16))
    with pytest.raises(ValueError, match=r"expected input of shape \(batch, d_in=16\), got \(5, 8\)"):
        sae.encode(torch.randn(5, 8))
    with pytest.raises(ValueError, match=r"config.d_in=12 but the activations have 16 units"):
        train_sae(small_sim.data, dataclasses.replace(ALL[variant], d_in=12), progress=False)
