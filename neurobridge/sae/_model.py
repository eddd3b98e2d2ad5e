"""The SAE module (TopK, BatchTopK, Matryoshka-BatchTopK, ReLU + L1, JumpReLU), its sparse code, the training-step
numerics, and save / load."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
import xarray as xr
from torch import nn

from neurobridge.core import check_finite
from neurobridge.kernels.topk_decode import topk_decode, topk_encode

from ._config import (
    NMF_CONFIGS,
    SAE_CONFIGS,
    BatchTopKConfig,
    JumpReLUConfig,
    MatryoshkaBatchTopKConfig,
    ReLUConfig,
    SAEConfig,
    TopKConfig,
    config_from_dict,
)
from ._functional import decoder_norm_l1, jumprelu, step

__all__ = ["SAE", "SparseCode", "StepOutput", "load_sae", "as_matrix", "save_module"]

FORMAT_VERSION = 1
_WEIGHTS = "sae.safetensors"
_CONFIG = "config.json"
_FIX_NAN = "drop or impute the rows with non-finite activations first (e.g. X[np.isfinite(X).all(1)])"


def as_matrix(activations, name: str = "activations") -> tuple[torch.Tensor, str | None]:
    """``(samples, unit)`` activations as a 2-D tensor, and the name of the sample dim (DataArray input).

    A DataArray must have a ``unit`` dim and one other (``stimulus``, ``token``, ...); numpy arrays and tensors
    must be 2-D. Non-finite values raise (:func:`neurobridge.core.check_finite`).

    Examples
    --------
    >>> X, dim = as_matrix(xr.DataArray(np.ones((3, 2)), dims=("token", "unit")))
    >>> tuple(X.shape), dim
    ((3, 2), 'token')
    """
    dim = None
    if isinstance(activations, xr.DataArray):
        if "unit" not in activations.dims or activations.ndim != 2:
            raise ValueError(f"{name}: expected a DataArray with dims (stimulus|token, unit), got dims "
                             f"{activations.dims}; pool or stack the other dims first, e.g. "
                             "da.stack(sample=('stimulus', 'token')).transpose('sample', 'unit')")
        activations = activations.transpose(..., "unit")
        dim = activations.dims[0]
        data = activations.data
        if hasattr(data, "compute"):
            data = data.compute()
        activations = np.asarray(data)
    if isinstance(activations, np.ndarray):
        if not np.issubdtype(activations.dtype, np.floating):
            activations = activations.astype(np.float32)
        activations = torch.from_numpy(activations)
    if not isinstance(activations, torch.Tensor):
        raise TypeError(f"{name}: expected a DataArray, numpy array or torch tensor, got {type(activations).__name__}")
    if activations.ndim != 2:
        raise ValueError(f"{name}: expected 2-D (samples, units) activations, got shape {tuple(activations.shape)}; "
                         "reshape to (n_samples, n_units) (e.g. x.reshape(-1, x.shape[-1]))")
    if not activations.is_floating_point():
        activations = activations.float()
    check_finite(activations, name, fix=_FIX_NAN)
    return activations, dim


class SparseCode(NamedTuple):
    """A sparse code: row ``b`` has value ``values[b, j]`` at latent ``indices[b, j]``.

    Padded entries (BatchTopK rows with fewer active latents than the widest row) have value 0.
    """

    values: torch.Tensor
    """``(batch, k)`` non-negative latent activations."""
    indices: torch.Tensor
    """``(batch, k)`` int64 latent indices."""

    def to_dense(self, n_latents: int) -> torch.Tensor:
        """The code as a dense ``(batch, n_latents)`` tensor.

        Examples
        --------
        >>> SparseCode(torch.tensor([[2.0]]), torch.tensor([[1]])).to_dense(3).tolist()
        [[0.0, 2.0, 0.0]]
        """
        out = torch.zeros(self.values.shape[0], n_latents, dtype=self.values.dtype, device=self.values.device)
        return out.scatter_add_(1, self.indices, self.values)


class StepOutput(NamedTuple):
    """What one training forward pass returns (all in normalised input units)."""

    loss: torch.Tensor
    """Scalar: what is minimised (see :meth:`SAE.training_step`)."""
    fvu: torch.Tensor
    """Scalar: squared error / total variance of the batch."""
    auxk: torch.Tensor
    """Scalar: AuxK loss (0 when no latent is dead)."""
    code: SparseCode
    """The batch's sparse code."""
    x_hat: torch.Tensor
    """``(batch, d_in)`` reconstruction."""
    sparsity: torch.Tensor | None = None
    """Scalar: the sparsity penalty before its coefficient: the decoder-norm-weighted L1 (ReLU), the mean L0
    (JumpReLU), 0 (TopK variants)."""


def _pad_mask_code(pre: torch.Tensor, keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the kept entries of ``pre`` (``keep`` a boolean mask), padded to the widest row, and the padding mask."""
    counts = keep.sum(1)
    width = max(1, int(counts.max())) if keep.shape[0] else 1
    idx = pre.masked_fill(~keep, -math.inf).topk(width, dim=1, sorted=True).indices
    valid = torch.arange(width, device=pre.device)[None, :] < counts[:, None]
    return idx, valid


_SPARSE_DECODE_RATIO = 8
"""Dense-activation variants (ReLU, JumpReLU) decode with the sparse gather when the widest row of the code has at
most ``n_latents / _SPARSE_DECODE_RATIO`` active latents, else with a dense matmul (both exact)."""


class SAE(nn.Module):
    """A sparse autoencoder: TopK, BatchTopK, Matryoshka-BatchTopK, ReLU (+ decoder-norm-weighted L1) or JumpReLU.

    ``encode``: pre-activations ``z = W_enc (s x - b_dec) + b_enc``, then the variant's selection: the top ``k``
    of ``relu(z)`` per input (TopK), the top ``batch * k`` of the batch or those above the learned threshold
    (BatchTopK, Matryoshka), ``relu(z) > 0`` (ReLU), ``z > theta_i`` per latent (JumpReLU); ``decode``:
    ``code -> (code @ W_dec + b_dec) / s`` through :func:`neurobridge.kernels.topk_decode.topk_decode` (a gather of
    the active decoder rows). ``s`` is the input scale (1 unless ``config.normalize``), ``b_dec`` the pre-bias.

    Parameters
    ----------
    config : TopKConfig, BatchTopKConfig, MatryoshkaBatchTopKConfig, ReLUConfig or JumpReLUConfig
        With ``d_in`` set.
    seed : int
        Seed of the initialisation: decoder rows uniform on the unit sphere (ReLU: scaled to
        ``config.init_decoder_norm``), encoder = decoder (tied init), biases zero; JumpReLU thresholds at
        ``config.threshold_init``.
    device, dtype : optional
        Of the parameters (default CPU, float32).

    Attributes
    ----------
    W_enc : nn.Parameter, shape (n_latents, d_in)
    b_enc : nn.Parameter, shape (n_latents,)
    W_dec : nn.Parameter, shape (n_latents, d_in)
        Unit-norm rows (kept so during training by gradient projection and renormalisation), except for ReLU.
    b_dec : nn.Parameter, shape (d_in,)
    log_threshold : nn.Parameter, shape (n_latents,)
        JumpReLU only: log of the per-latent threshold in normalised units (see :attr:`jump_threshold`).
    input_scale : buffer, scalar
    threshold : buffer, scalar
        BatchTopK / Matryoshka inference threshold (``-1``: not learned yet, batch selection is used); TopK
        variants only.
    tokens_since_fired : buffer, shape (n_latents,), int64
        Training tokens since each latent was last active (dead-latent tracking).

    Examples
    --------
    >>> sae = SAE(TopKConfig(n_latents=32, k=4, d_in=8))
    >>> code = sae.encode(torch.randn(5, 8))
    >>> code.values.shape, sae.decode(code).shape
    (torch.Size([5, 4]), torch.Size([5, 8]))
    """

    def __init__(self, config: SAEConfig, *, seed: int = 0, device=None, dtype: torch.dtype = torch.float32):
        super().__init__()
        if not isinstance(config, SAE_CONFIGS):
            hint = (" (semi-NMF / NMF is fitted by nb.sae.fit_nmf, not an SAE)"
                    if isinstance(config, NMF_CONFIGS) else "")
            raise TypeError(f"SAE: config must be a TopKConfig, BatchTopKConfig, MatryoshkaBatchTopKConfig, "
                            f"ReLUConfig or JumpReLUConfig, got {type(config).__name__}{hint}")
        if config.d_in is None:
            raise ValueError("SAE: config.d_in is None; set it (dataclasses.replace(config, d_in=...)) or let "
                             "nb.sae.train_sae take it from the data")
        self.config = config
        n, d = config.n_latents, config.d_in
        g = torch.Generator().manual_seed(int(seed))
        W = torch.randn(n, d, generator=g, dtype=torch.float64)
        W /= W.norm(dim=1, keepdim=True)
        if isinstance(config, ReLUConfig):
            W *= config.init_decoder_norm
        kw = dict(device=device, dtype=dtype)
        self.W_dec = nn.Parameter(W.to(**kw))
        self.W_enc = nn.Parameter(W.to(**kw).clone())
        self.b_enc = nn.Parameter(torch.zeros(n, **kw))
        self.b_dec = nn.Parameter(torch.zeros(d, **kw))
        if isinstance(config, JumpReLUConfig):
            init = math.log(config.threshold_init * self._unit)
            self.log_threshold = nn.Parameter(torch.full((n,), init, **kw))
        self.register_buffer("input_scale", torch.ones((), **kw))
        if isinstance(config, TopKConfig):
            self.register_buffer("threshold", torch.full((), -1.0, **kw))
        self.register_buffer("tokens_since_fired", torch.zeros(n, dtype=torch.int64, device=device))

    # -- helpers ---------------------------------------------------------------------------------------------------
    @property
    def _unit(self) -> float:
        """The paper's unit of JumpReLU thresholds and bandwidths in normalised units: ``sqrt(d_in)``."""
        return math.sqrt(self.config.d_in)

    @property
    def unit_norm_decoder(self) -> bool:
        """Whether training keeps the decoder rows at unit norm (all variants but ReLU + L1)."""
        return not isinstance(self.config, ReLUConfig)

    @property
    def jump_threshold(self) -> torch.Tensor:
        """JumpReLU: the per-latent thresholds ``exp(log_threshold)``, shape ``(n_latents,)``, in normalised units
        (``sqrt(d_in)`` times the paper's units); other variants have no such attribute."""
        return self.log_threshold.exp()

    @property
    def bandwidth(self) -> float:
        """JumpReLU: the kernel bandwidth in normalised units (``config.bandwidth * sqrt(d_in)``)."""
        return self.config.bandwidth * self._unit

    def _check_input(self, x) -> torch.Tensor:
        x, _ = as_matrix(x, "SAE input")
        d = self.config.d_in
        if x.ndim != 2 or x.shape[1] != d:
            raise ValueError(f"SAE: expected input of shape (batch, d_in={d}), got {tuple(x.shape)}; this SAE was "
                             f"trained on {d}-dimensional activations: pass the same layer (and pooling) it was "
                             "trained on, or train a new SAE on these")
        return x.to(device=self.W_enc.device, dtype=self.W_enc.dtype)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Inputs in the SAE's units: ``x * input_scale`` (shape ``(batch, d_in)``)."""
        return self._check_input(x) * self.input_scale

    def _pre(self, xn: torch.Tensor) -> torch.Tensor:
        """Dense pre-activations, ``(batch, n_latents)``, no autograd: ``relu(W_enc (xn - b_dec) + b_enc)``
        (JumpReLU: without the relu)."""
        with torch.no_grad():
            z = F.linear(xn - self.b_dec, self.W_enc, self.b_enc)
            return z if isinstance(self.config, JumpReLUConfig) else F.relu(z)

    def _select(self, pre: torch.Tensor, *, batch_mode: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Active indices ``(batch, width)`` and a padding mask (``None``: all valid)."""
        cfg = self.config
        if isinstance(cfg, ReLUConfig):
            return _pad_mask_code(pre, pre > 0)
        if isinstance(cfg, JumpReLUConfig):
            with torch.no_grad():
                return _pad_mask_code(pre, pre > self.jump_threshold)
        k = cfg.k
        if not isinstance(cfg, BatchTopKConfig):
            return pre.topk(k, dim=1, sorted=False).indices, None
        if batch_mode or float(self.threshold) < 0:
            flat = pre.flatten()
            m = min(flat.numel(), k * pre.shape[0])
            keep = torch.zeros_like(flat, dtype=torch.bool)
            keep[flat.topk(m, sorted=False).indices] = True
            keep = keep.view_as(pre) & (pre > 0)
        else:
            keep = pre > self.threshold
        return _pad_mask_code(pre, keep)

    def _values(self, xn: torch.Tensor, idx: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
        v = F.relu(topk_encode(xn - self.b_dec, idx, self.W_enc, self.b_enc))
        return v if valid is None else v * valid

    # -- public ----------------------------------------------------------------------------------------------------
    def encode(self, x) -> SparseCode:
        """Sparse code of ``x`` (shape ``(batch, d_in)``, in input units).

        ``x`` may be a tensor, a numpy array or a DataArray with dims ``(stimulus|token, unit)``; non-finite values
        and a ``d_in`` other than the SAE's raise.

        TopK: the ``k`` largest latents per row. BatchTopK / Matryoshka: the latents above the learned threshold
        (the batch's ``batch * k`` largest while training or before a threshold is learned). ReLU: the positive
        latents. JumpReLU: the latents above their own threshold. Rows are padded to the widest row with zeros.
        Differentiable w.r.t. the encoder parameters (sparse gradients via ``topk_encode``).

        Examples
        --------
        >>> sae = SAE(TopKConfig(n_latents=16, k=2, d_in=4))
        >>> int((sae.encode(torch.randn(3, 4)).values > 0).sum(1).max()) <= 2
        True
        """
        xn = self.normalize(x)
        pre = self._pre(xn)
        idx, valid = self._select(pre, batch_mode=self.training)
        return SparseCode(self._values(xn, idx, valid), idx)

    def decode(self, code: SparseCode) -> torch.Tensor:
        """Reconstruction ``(batch, d_in)`` in input units from a :class:`SparseCode`.

        Examples
        --------
        >>> sae = SAE(TopKConfig(n_latents=16, k=2, d_in=4))
        >>> x_hat = sae.decode(SparseCode(torch.tensor([[1.0, 0.0]]), torch.tensor([[3, 5]])))
        >>> torch.allclose(x_hat[0], sae.W_dec[3].detach())
        True
        """
        values, indices = code
        return topk_decode(values, indices, self.W_dec, self.b_dec) / self.input_scale

    def forward(self, x) -> torch.Tensor:
        """Reconstruction of ``x``: ``decode(encode(x))``, shape ``(batch, d_in)``."""
        return self.decode(self.encode(x))

    def training_step(self, xn: torch.Tensor, *, sparsity_scale: float = 1.0) -> StepOutput:
        """Loss of one batch of normalised inputs ``xn`` (``(batch, d_in)``; see :meth:`normalize`).

        TopK / BatchTopK: FVU of the reconstruction plus ``aux_coef`` times the AuxK loss: the ``aux_k`` dead
        latents (no activity for ``dead_tokens`` tokens) with the largest pre-activations reconstruct the residual,
        normalised by the batch's total variance and scaled by ``min(n_dead / aux_k, 1)`` (Gao et al. 2024).
        Matryoshka: the FVU summed over the prefixes ``config.prefix_sizes`` (each reconstructing from the code
        restricted to its latents), plus AuxK. ReLU: ``mean ||xn - x_hat||^2 + l1_coef * decoder_norm_l1``.
        JumpReLU: ``mean ||xn - x_hat||^2 / d_in + sparsity_coef * mean L0`` with the pseudo-derivatives of
        :mod:`neurobridge.sae._functional`. ``sparsity_scale`` multiplies the sparsity coefficient (warm-up).
        """
        if isinstance(self.config, TopKConfig):
            return self._step_topk(xn)
        return self._step_dense(xn, float(sparsity_scale))

    def _track(self, active: torch.Tensor, n_tokens: int) -> None:
        self.tokens_since_fired += n_tokens
        self.tokens_since_fired[active] = 0

    def _step_topk(self, xn: torch.Tensor) -> StepOutput:
        cfg = self.config
        pre = self._pre(xn)
        idx, valid = self._select(pre, batch_mode=True)
        values = self._values(xn, idx, valid)
        x_hat = topk_decode(values, idx, self.W_dec, self.b_dec)
        total_var = (xn - xn.mean(0)).square().sum().clamp_min(torch.finfo(xn.dtype).tiny)
        resid = xn - x_hat
        fvu = resid.square().sum() / total_var
        recon = fvu
        if isinstance(cfg, MatryoshkaBatchTopKConfig):
            for m in cfg.prefix_sizes[:-1]:
                x_m = topk_decode(values * (idx < m), idx, self.W_dec, self.b_dec)
                recon = recon + (xn - x_m).square().sum() / total_var
        auxk = torch.zeros((), dtype=xn.dtype, device=xn.device)
        dead = torch.nonzero(self.tokens_since_fired >= cfg.dead_tokens).flatten()
        if dead.numel() and cfg.aux_coef > 0:
            k_full = cfg.aux_k
            k_aux = min(k_full, dead.numel())
            sub = pre.index_select(1, dead).topk(k_aux, dim=1, sorted=False).indices
            aux_idx = dead[sub]
            aux_values = F.relu(topk_encode(xn - self.b_dec, aux_idx, self.W_enc, self.b_enc))
            e_hat = topk_decode(aux_values, aux_idx, self.W_dec)
            auxk = min(dead.numel() / k_full, 1.0) * (e_hat - resid.detach()).square().sum() / total_var
        loss = recon + cfg.aux_coef * auxk
        with torch.no_grad():
            active = idx[values > 0]
            self._track(active, xn.shape[0])
            if isinstance(cfg, BatchTopKConfig) and active.numel():
                low = values[values > 0].min()
                if float(self.threshold) < 0:
                    self.threshold.copy_(low)
                else:
                    m = cfg.threshold_momentum
                    self.threshold.mul_(m).add_((1 - m) * low)
        return StepOutput(loss, fvu.detach(), auxk.detach(), SparseCode(values.detach(), idx), x_hat.detach(),
                          torch.zeros((), dtype=xn.dtype, device=xn.device))

    def _decode_activations(self, f: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """``f @ W_dec + b_dec`` for dense activations ``f`` (autograd), through the sparse gather of the entries in
        ``keep`` (a superset of the nonzero entries, and of every entry whose gradient matters) when sparse enough."""
        width = int(keep.sum(1).max()) if keep.shape[0] else 0
        if width * _SPARSE_DECODE_RATIO <= self.config.n_latents:
            idx, valid = _pad_mask_code(f.detach(), keep)
            return topk_decode(f.gather(1, idx) * valid, idx, self.W_dec, self.b_dec)
        return f @ self.W_dec + self.b_dec

    def _step_dense(self, xn: torch.Tensor, sparsity_scale: float) -> StepOutput:
        cfg = self.config
        z = F.linear(xn - self.b_dec, self.W_enc, self.b_enc)
        if isinstance(cfg, ReLUConfig):
            f = F.relu(z)
            keep = f.detach() > 0
            sparsity = decoder_norm_l1(f, self.W_dec)
            coef = cfg.l1_coef
        else:
            theta, eps = self.jump_threshold, self.bandwidth
            f = jumprelu(z, theta, eps)
            sparsity = step(z, theta, eps).sum(1).mean()
            coef = cfg.sparsity_coef
            with torch.no_grad():  # the entries inside the kernel window carry the threshold's gradient
                keep = (z > theta) | ((z - theta).abs() < eps / 2)
        x_hat = self._decode_activations(f, keep)
        sq = (xn - x_hat).square().sum(1).mean()
        recon = sq if isinstance(cfg, ReLUConfig) else sq / cfg.d_in
        loss = recon + (sparsity_scale * coef) * sparsity
        with torch.no_grad():
            total_var = (xn - xn.mean(0)).square().sum().clamp_min(torch.finfo(xn.dtype).tiny)
            fvu = sq * xn.shape[0] / total_var
            fd = f.detach()
            idx, valid = _pad_mask_code(fd, fd > 0)
            values = fd.gather(1, idx) * valid
            self._track(idx[values > 0], xn.shape[0])
        return StepOutput(loss, fvu, torch.zeros((), dtype=xn.dtype, device=xn.device), SparseCode(values, idx),
                          x_hat.detach(), sparsity.detach())

    @torch.no_grad()
    def project_decoder_grad(self) -> None:
        """Remove from ``W_dec.grad`` its component parallel to each (unit-norm) decoder row."""
        if self.W_dec.grad is not None:
            W = self.W_dec
            self.W_dec.grad -= (self.W_dec.grad * W).sum(1, keepdim=True) * W

    @torch.no_grad()
    def normalize_decoder(self) -> None:
        """Rescale every decoder row to unit norm."""
        self.W_dec /= self.W_dec.norm(dim=1, keepdim=True).clamp_min(torch.finfo(self.W_dec.dtype).tiny)

    def dead_latents(self) -> torch.Tensor:
        """Boolean ``(n_latents,)``: no activity for ``config.dead_tokens`` training tokens."""
        return self.tokens_since_fired >= self.config.dead_tokens

    # -- save / load -----------------------------------------------------------------------------------------------
    def save(self, path) -> Path:
        """Write ``config.json`` and ``sae.safetensors`` into the folder ``path`` (created); returns it.

        Examples
        --------
        >>> import tempfile
        >>> sae = SAE(TopKConfig(n_latents=16, k=2, d_in=4))
        >>> folder = sae.save(tempfile.mkdtemp())
        >>> sorted(p.name for p in folder.iterdir())
        ['config.json', 'sae.safetensors']
        """
        return save_module(self, path)


def save_module(module: nn.Module, path) -> Path:
    """Write ``module.config`` as ``config.json`` and the state dict as ``sae.safetensors`` into the folder ``path``."""
    from safetensors.torch import save_file

    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}
    save_file(tensors, str(folder / _WEIGHTS))
    dtype = next(v.dtype for v in module.state_dict().values() if v.is_floating_point())
    meta = {"format_version": FORMAT_VERSION, "library": "neurobridge", "config": module.config.to_dict(),
            "dtype": str(dtype).removeprefix("torch.")}
    (folder / _CONFIG).write_text(json.dumps(meta, indent=2) + "\n")
    return folder


def load_sae(path, *, variant: str | None = None, device=None):
    """Load an SAE (or a semi-NMF / NMF model) written by :meth:`SAE.save` (:meth:`SemiNMF.save`).

    Parameters
    ----------
    path : str or Path
        The folder with ``config.json`` and ``sae.safetensors``.
    variant : {"topk", "batchtopk", "matryoshka_batchtopk", "relu", "jumprelu", "seminmf", "nmf"}, optional
        The variant you expect; a checkpoint of another variant raises. Default: whatever was saved.
    device : optional
        Where to put the parameters.

    Returns
    -------
    SAE, SemiNMF or NMF
        As the config saved with the weights says.

    Examples
    --------
    >>> import tempfile
    >>> folder = SAE(TopKConfig(n_latents=16, k=2, d_in=4)).save(tempfile.mkdtemp())
    >>> load_sae(folder).config.k
    2
    >>> load_sae(folder, variant="batchtopk")
    Traceback (most recent call last):
    ...
    ValueError: ... is a 'topk' SAE (TopKConfig), not 'batchtopk'; load it with variant='topk' (or variant=None), or train a 'batchtopk' SAE
    """
    from safetensors.torch import load_file

    folder = Path(path)
    cfg_file, weights_file = folder / _CONFIG, folder / _WEIGHTS
    missing = [p.name for p in (cfg_file, weights_file) if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"load_sae: {folder} has no {' or '.join(missing)}; pass the folder that "
                                "SAE.save(...) wrote")
    try:
        meta = json.loads(cfg_file.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"load_sae: {cfg_file} is not valid JSON ({err}); the file is corrupted or truncated: "
                         "save the SAE again") from err
    if not isinstance(meta, dict) or meta.get("library") != "neurobridge" or "config" not in meta:
        raise ValueError(f"load_sae: {cfg_file} was not written by neurobridge's SAE.save (no 'config' entry)")
    if int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise ValueError(f"load_sae: {folder} has format version {meta['format_version']}, this neurobridge reads "
                         f"up to {FORMAT_VERSION}; upgrade neurobridge")
    config = config_from_dict(meta["config"])
    if variant is not None and variant != config.variant:
        raise ValueError(f"load_sae: the checkpoint at {folder} is a {config.variant!r} SAE "
                         f"({type(config).__name__}), not {variant!r}; load it with variant={config.variant!r} "
                         f"(or variant=None), or train a {variant!r} SAE")
    try:
        tensors = load_file(str(weights_file))
    except Exception as err:  # safetensors raises its own SafetensorError (and OSError / ValueError) on bad bytes
        raise ValueError(f"load_sae: {weights_file} is not a readable safetensors file ({type(err).__name__}: {err}); "
                         "the file is corrupted or truncated: save the SAE again") from err
    dtype = getattr(torch, meta.get("dtype", "float32"))
    if isinstance(config, NMF_CONFIGS):
        from ._nmf import model_class

        sae = model_class(config)(config, device=device, dtype=dtype)
    else:
        sae = SAE(config, device=device, dtype=dtype)
    want = {k: tuple(v.shape) for k, v in sae.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in tensors.items()}
    if want != got:
        diff = sorted(k for k in set(want) | set(got) if want.get(k) != got.get(k))
        raise ValueError(f"load_sae: {weights_file} does not match its config.json: tensors {diff} have shapes "
                         f"{[got.get(k) for k in diff]}, the config implies {[want.get(k) for k in diff]}; "
                         "the folder mixes files of two SAEs: save the SAE again")
    sae.load_state_dict(tensors)
    return sae
