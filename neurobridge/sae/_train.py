"""Training (``train_sae``) and evaluation (``evaluate``) of SAEs on in-memory activations."""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import NamedTuple

import numpy as np
import torch
import xarray as xr

from neurobridge.core import progress_bar

from ._config import NMF_CONFIGS, SAE_CONFIGS, JumpReLUConfig, ReLUConfig, SAEConfig
from ._model import SAE, as_matrix
from ._nmf import SemiNMF

__all__ = ["train_sae", "evaluate", "TrainResult", "SAEEvaluation", "as_matrix", "geometric_median"]

log = logging.getLogger("neurobridge")


def geometric_median(X: torch.Tensor, *, n_iter: int = 50, tol: float = 1e-6) -> torch.Tensor:
    """Geometric median of the rows of ``X`` (Weiszfeld iterations, float64), shape ``(d,)``.

    Examples
    --------
    >>> X = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [100.0, 100.0]])
    >>> geometric_median(X).round(decimals=2).tolist()  # robust to the outlier (the mean is 25.25)
    [0.5, 0.5]
    """
    Xd = X.to(torch.float64)
    m = Xd.mean(0)
    for _ in range(n_iter):
        w = 1.0 / (Xd - m).norm(dim=1).clamp_min(1e-12)
        new = (w[:, None] * Xd).sum(0) / w.sum()
        if (new - m).norm() <= tol * (1 + m.norm()):
            m = new
            break
        m = new
    return m.to(X.dtype)


class TrainResult(NamedTuple):
    """What :func:`train_sae` returns."""

    sae: SAE
    """The trained SAE (in eval mode)."""
    history: xr.Dataset
    """Per-step ``loss``, ``fvu``, ``auxk``, ``sparsity`` (the penalty before its coefficient), ``sparsity_coef``
    (the coefficient in use, after warm-up), ``l0``, ``dead_fraction`` and ``lr`` over dim ``step``."""


def _lr_factor(step: int, n_steps: int, warmup: int, decay: int) -> float:
    f = 1.0
    if warmup and step < warmup:
        f = (step + 1) / warmup
    if decay and step >= n_steps - decay:
        f = min(f, (n_steps - step) / decay)
    return f


def train_sae(
    activations, config: SAEConfig, *, n_tokens: int | None = None, epochs: float = 1.0, batch_size: int = 4096,
    lr: float | None = None, warmup_steps: int | None = None, decay_fraction: float = 0.2, seed: int = 0,
    device: str | torch.device | None = None, progress: bool | None = None,
) -> TrainResult:
    """Train an SAE (TopK, BatchTopK, Matryoshka-BatchTopK, ReLU + L1 or JumpReLU) on in-memory activations.

    As the anchors train (Gao et al. 2024; SAELens; sparsify): decoder rows kept at unit norm with the gradient
    component parallel to each row removed before every Adam step (all variants but ReLU, whose decoder-norm-
    weighted penalty makes the norm free; its gradients are clipped to ``config.max_grad_norm`` instead, as in
    Anthropic's April 2024 update), encoder initialised to the decoder, pre-bias ``b_dec`` initialised to the
    geometric median of (up to 4096) inputs, inputs scaled to mean squared norm ``d_in`` (``config.normalize``),
    AuxK loss on latents dead for ``config.dead_tokens`` tokens (TopK variants), the sparsity coefficient of
    ReLU / JumpReLU warmed up linearly over ``config.l1_warmup_fraction`` / ``config.sparsity_warmup_fraction`` of
    the steps, learning rate warmed up linearly and decayed linearly to 0 over the last ``decay_fraction`` of
    steps. Batches are drawn from a fresh random permutation each epoch. Deterministic under ``seed`` on a given
    machine and thread count. Semi-NMF / NMF configs are fitted by :func:`~neurobridge.sae.fit_nmf` instead.

    Parameters
    ----------
    activations : xr.DataArray (stimulus|token, unit), np.ndarray or torch.Tensor (samples, units)
    config : TopKConfig, BatchTopKConfig, MatryoshkaBatchTopKConfig, ReLUConfig or JumpReLUConfig
        ``d_in=None`` is filled from the data; a different ``d_in`` raises.
    n_tokens : int, optional
        Training tokens (inputs) in all; default ``epochs * n_samples``.
    epochs : float
        Passes over the data when ``n_tokens`` is not given.
    batch_size : int
        Inputs per step, at least 2 (capped at the number of samples).
    lr : float, optional
        Peak Adam learning rate; default ``2e-4 / sqrt(n_latents / 2**14)`` (Gao et al.'s scaling law).
    warmup_steps : int, optional
        Linear warm-up; default ``min(1000, 5%)`` of the steps.
    decay_fraction : float
        Final fraction of the steps over which the learning rate decays linearly to 0.
    seed : int
        Seeds the initialisation and the data order.
    device : str or torch.device, optional
        Default: the device of a tensor input, else CPU.
    progress : bool, optional
        Progress bar with loss / L0 / dead fraction (default automatic, see
        :func:`neurobridge.core.progress_enabled`).

    Returns
    -------
    TrainResult
        ``(sae, history)``.

    Raises
    ------
    SchemaError
        Non-finite activations.
    ValueError
        Wrong shapes, ``config.d_in`` not the data's, fewer than 2 samples, bad hyper-parameters.

    Examples
    --------
    >>> import neurobridge as nb
    >>> sim = nb.datasets.simulate_sparse_codes(512, 16, 32, k=2, random_state=0)
    >>> sae, history = nb.sae.train_sae(sim.data, nb.sae.TopKConfig(n_latents=64, k=2), epochs=4,
    ...                                 batch_size=128, progress=False)
    >>> sae.config.d_in, history.sizes["step"]
    (16, 16)
    >>> bool(history.fvu[-1] < history.fvu[0])
    True
    """
    X, _ = as_matrix(activations)
    if device is None:
        device = X.device
    n, d = X.shape
    if n < 2:
        raise ValueError(f"train_sae: activations have {n} sample(s); training needs at least 2 (the FVU loss divides "
                         "by the variance of each batch): pass more samples")
    if isinstance(config, NMF_CONFIGS):
        raise TypeError(f"train_sae: {type(config).__name__} is not an SAE; fit it with nb.sae.fit_nmf(activations, "
                        "config)")
    if not isinstance(config, SAE_CONFIGS):
        raise TypeError(f"train_sae: config must be a TopKConfig, BatchTopKConfig, MatryoshkaBatchTopKConfig, "
                        f"ReLUConfig or JumpReLUConfig, got {type(config).__name__}")
    if config.d_in is None:
        config = dataclasses.replace(config, d_in=int(d))
    elif config.d_in != d:
        raise ValueError(f"train_sae: config.d_in={config.d_in} but the activations have {d} units; pass "
                         f"d_in={d} (or d_in=None to take it from the data), or the layer the config was made for")
    if batch_size < 2:
        raise ValueError(f"train_sae: batch_size must be >= 2 (the FVU loss divides by the variance of each batch), "
                         f"got {batch_size}; pass batch_size=2 or more")
    batch_size = min(int(batch_size), n)
    total = int(n_tokens) if n_tokens is not None else int(math.ceil(epochs * n))
    if total < 1:
        raise ValueError(f"train_sae: nothing to train on (n_tokens={n_tokens}, epochs={epochs})")
    if not 0 <= decay_fraction <= 1:
        raise ValueError(f"train_sae: decay_fraction must be in [0, 1], got {decay_fraction}")
    n_steps = max(1, math.ceil(total / batch_size))
    warmup = min(1000, max(1, n_steps // 20)) if warmup_steps is None else int(warmup_steps)
    decay = int(round(decay_fraction * n_steps))
    if lr is None:
        lr = 2e-4 / math.sqrt(config.n_latents / 2**14)
    warm_fraction = (config.l1_warmup_fraction if isinstance(config, ReLUConfig) else
                     config.sparsity_warmup_fraction if isinstance(config, JumpReLUConfig) else 0.0)
    sparsity_warmup = int(round(warm_fraction * n_steps))
    coef = (config.l1_coef if isinstance(config, ReLUConfig) else
            config.sparsity_coef if isinstance(config, JumpReLUConfig) else 0.0)
    clip = config.max_grad_norm if isinstance(config, ReLUConfig) else None

    sae = SAE(config, seed=seed, device=device).train()
    X = X.to(device=device, dtype=sae.W_enc.dtype)
    gen = torch.Generator().manual_seed(int(seed) + 1)
    sample = X[torch.randperm(n, generator=gen)[:4096].to(X.device)]
    with torch.no_grad():
        if config.normalize:
            ms = sample.square().sum(1).mean()
            sae.input_scale.fill_(math.sqrt(d / float(ms)) if float(ms) > 0 else 1.0)
        sae.b_dec.copy_(geometric_median(sample * sae.input_scale))

    opt = torch.optim.Adam(sae.parameters(), lr=lr)
    keys = ("loss", "fvu", "auxk", "sparsity", "sparsity_coef", "l0", "dead_fraction", "lr")
    hist = {key: np.zeros(n_steps) for key in keys}
    perm = torch.randperm(n, generator=gen).to(X.device)
    pos = 0
    with progress_bar(total=n_steps, desc=f"train_sae ({config.variant})", unit="step", progress=progress) as bar:
        for step in range(n_steps):
            if pos + batch_size > n:  # a new epoch: a fresh permutation, the tail of the old one first
                perm = torch.cat([perm[pos:], torch.randperm(n, generator=gen).to(X.device)])
                pos = 0
            xb = X[perm[pos:pos + batch_size]] * sae.input_scale
            pos += batch_size
            f = _lr_factor(step, n_steps, warmup, decay)
            for group in opt.param_groups:
                group["lr"] = lr * f
            s = min(1.0, (step + 1) / sparsity_warmup) if sparsity_warmup else 1.0
            out = sae.training_step(xb, sparsity_scale=s)
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            if sae.unit_norm_decoder:
                sae.project_decoder_grad()
            if clip is not None:
                torch.nn.utils.clip_grad_norm_(sae.parameters(), clip)
            opt.step()
            if sae.unit_norm_decoder:
                sae.normalize_decoder()
            l0 = float((out.code.values > 0).sum()) / xb.shape[0]
            dead = float(sae.dead_latents().float().mean())
            for key, value in (("loss", float(out.loss.detach())), ("fvu", float(out.fvu)), ("auxk", float(out.auxk)),
                               ("sparsity", float(out.sparsity)), ("sparsity_coef", coef * s), ("l0", l0),
                               ("dead_fraction", dead), ("lr", lr * f)):
                hist[key][step] = value
            if bar.disable is False and (step % 10 == 0 or step == n_steps - 1):
                bar.set_postfix(loss=f"{hist['loss'][step]:.4f}", L0=f"{l0:.1f}", dead=f"{dead:.3f}", refresh=False)
            bar.update(1)
    log.info("train_sae: %d steps of %d tokens, final FVU %.4f, L0 %.1f, dead %.3f", n_steps, batch_size,
             hist["fvu"][-1], hist["l0"][-1], hist["dead_fraction"][-1])
    history = xr.Dataset({key: ("step", value) for key, value in hist.items()},
                         coords={"step": np.arange(n_steps), "tokens": ("step", (np.arange(n_steps) + 1) * batch_size)},
                         attrs={"variant": config.variant, "batch_size": batch_size, "seed": int(seed)})
    return TrainResult(sae.eval(), history)


class SAEEvaluation(NamedTuple):
    """What :func:`evaluate` returns (in input units)."""

    mse: float
    """Mean squared reconstruction error per element."""
    fvu: float
    """Fraction of variance unexplained: squared error / squared deviation from the mean, summed over the data."""
    l0: float
    """Mean number of active latents per input."""
    dead_fraction: float
    """Fraction of latents never active on the data."""
    dense_fraction: float
    """Fraction of latents active on more than ``dense_threshold`` of the inputs."""
    density: xr.DataArray
    """``(latent,)`` fraction of inputs on which each latent is active (histogram it for the density plot)."""


@torch.no_grad()
def evaluate(sae: SAE | SemiNMF, activations, *, batch_size: int = 4096, dense_threshold: float = 0.1) -> SAEEvaluation:
    """Reconstruction quality and sparsity of ``sae`` (an SAE, or a semi-NMF / NMF model) on activations.

    Parameters
    ----------
    sae : SAE, SemiNMF or NMF
        Anything with ``encode`` -> :class:`SparseCode` and ``decode``.
    activations : xr.DataArray (stimulus|token, unit), np.ndarray or torch.Tensor (samples, units)
    batch_size : int
        Inputs encoded at once.
    dense_threshold : float
        A latent active on more than this fraction of inputs counts as dense.

    Returns
    -------
    SAEEvaluation

    Examples
    --------
    >>> import neurobridge as nb
    >>> sim = nb.datasets.simulate_sparse_codes(256, 8, 16, k=2, random_state=0)
    >>> sae = nb.sae.SAE(nb.sae.TopKConfig(n_latents=32, k=2, d_in=8))
    >>> ev = nb.sae.evaluate(sae, sim.data)
    >>> ev.l0 <= 2, ev.density.dims
    (True, ('latent',))
    """
    X, _ = as_matrix(activations)
    was_training = sae.training
    sae.eval()
    n_lat = sae.config.n_latents
    counts = torch.zeros(n_lat, dtype=torch.float64)
    sse = 0.0
    active_total = 0.0
    n = X.shape[0]
    if n == 0:
        raise ValueError("evaluate: no samples in activations")
    mean = X.to(torch.float64).mean(0)
    sst = float((X.to(torch.float64) - mean).square().sum())
    try:
        for s in range(0, n, batch_size):
            xb = sae._check_input(X[s:s + batch_size])
            code = sae.encode(xb)
            x_hat = sae.decode(code)
            sse += float((xb.to(torch.float64) - x_hat.to(torch.float64)).square().sum())
            active = code.indices[code.values > 0].cpu()
            active_total += active.numel()
            counts += torch.bincount(active, minlength=n_lat).to(torch.float64)
    finally:
        sae.train(was_training)
    density = (counts / n).numpy()
    return SAEEvaluation(
        mse=sse / (n * X.shape[1]), fvu=sse / sst if sst > 0 else float("nan"), l0=active_total / n,
        dead_fraction=float((density == 0).mean()), dense_fraction=float((density > dense_threshold).mean()),
        density=xr.DataArray(density, dims="latent", coords={"latent": np.arange(n_lat)}, name="density"),
    )
