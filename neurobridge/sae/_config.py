"""SAE and sparse-coding configurations: one frozen dataclass per variant, saved with the weights."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import ClassVar

__all__ = ["SAEConfig", "TopKConfig", "BatchTopKConfig", "MatryoshkaBatchTopKConfig", "ReLUConfig", "JumpReLUConfig",
           "SemiNMFConfig", "NMFConfig", "CONFIGS", "SAE_CONFIGS", "NMF_CONFIGS", "config_from_dict"]


def _positive_int(cfg, name: str) -> None:
    value = getattr(cfg, name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{type(cfg).__name__}: {name} must be a positive int, got {value!r}")


def _optional_positive_int(cfg, name: str) -> None:
    value = getattr(cfg, name)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise ValueError(f"{type(cfg).__name__}: {name} must be a positive int or None, got {value!r}")


def _number(cfg, name: str, *, low: float = 0.0, high: float = math.inf, low_open: bool = False,
            high_open: bool = False, hint: str = "") -> None:
    value = getattr(cfg, name)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        lo, hi = ("(" if low_open else "[") + f"{low:g}", f"{high:g}" + (")" if high_open else "]")
        raise ValueError(f"{type(cfg).__name__}: {name} must be a finite number in {lo}, {hi}, got {value!r}{hint}")


@dataclass(frozen=True)
class SAEConfig:
    """Base of the per-variant configurations (use a subclass: :class:`TopKConfig`, :class:`ReLUConfig`, ...).

    Every config is a frozen dataclass with a class-level ``variant`` name; :meth:`to_dict` and
    :func:`config_from_dict` write and read it as JSON next to the weights.

    Examples
    --------
    >>> issubclass(TopKConfig, SAEConfig), TopKConfig.variant
    (True, 'topk')
    """

    variant: ClassVar[str] = ""

    def _check_common(self) -> None:
        _positive_int(self, "n_latents")
        _optional_positive_int(self, "d_in")
        if hasattr(self, "dead_tokens"):
            _positive_int(self, "dead_tokens")

    def to_dict(self) -> dict:
        """The fields and the variant name, JSON-ready (inverse: :func:`config_from_dict`).

        Examples
        --------
        >>> TopKConfig(n_latents=8, k=2).to_dict()["variant"]
        'topk'
        """
        d = dataclasses.asdict(self)
        return {"variant": self.variant, **{k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}}


@dataclass(frozen=True)
class TopKConfig(SAEConfig):
    """A TopK sparse autoencoder (Gao et al. 2024): each input keeps its ``k`` largest latents.

    Examples
    --------
    >>> cfg = TopKConfig(n_latents=64, k=4, d_in=16)
    >>> cfg.variant, cfg.aux_k
    ('topk', 8)
    """

    variant: ClassVar[str] = "topk"

    n_latents: int
    """Number of latents (dictionary size), e.g. ``16 * d_in``."""
    k: int = 32
    """Active latents per input (L0 of the code)."""
    d_in: int | None = None
    """Input dimension; ``None``: taken from the data by :func:`~neurobridge.sae.train_sae`."""
    k_aux: int | None = None
    """Latents used by the AuxK loss (the dead latents with the largest pre-activations); ``None``: ``d_in // 2``."""
    aux_coef: float = 1 / 32
    """Weight of the AuxK loss (reconstruction of the residual by dead latents) in the training loss."""
    dead_tokens: int = 10_000_000
    """A latent that has not fired for this many training tokens counts as dead (tracked over a token window)."""
    normalize: bool = True
    """Scale inputs by one factor so that their mean squared norm is ``d_in`` (estimated at the start of training,
    saved with the weights, undone by ``decode``)."""

    def __post_init__(self):
        self._check_common()
        _positive_int(self, "k")
        if self.k > self.n_latents:
            raise ValueError(f"{type(self).__name__}: k={self.k} > n_latents={self.n_latents}; an input cannot "
                             "have more active latents than there are latents: lower k or raise n_latents")
        _optional_positive_int(self, "k_aux")
        if not self.aux_coef >= 0:
            raise ValueError(f"{type(self).__name__}: aux_coef must be >= 0, got {self.aux_coef!r}")

    @property
    def aux_k(self) -> int | None:
        """The AuxK latent count in use: ``k_aux``, else ``d_in // 2`` (``None`` while ``d_in`` is unknown)."""
        if self.k_aux is not None:
            return self.k_aux
        return None if self.d_in is None else max(1, self.d_in // 2)


@dataclass(frozen=True)
class BatchTopKConfig(TopKConfig):
    """A BatchTopK sparse autoencoder (Bussmann et al. 2024): a batch of ``B`` inputs keeps its ``B * k`` largest
    latents in all, so L0 varies per input with mean ``k``. Outside training, a latent is active when its
    pre-activation exceeds a threshold learned during training (a running mean of the smallest kept activation).

    Examples
    --------
    >>> BatchTopKConfig(n_latents=64, k=4).variant
    'batchtopk'
    """

    variant: ClassVar[str] = "batchtopk"

    threshold_momentum: float = 0.99
    """Momentum of the running mean of the smallest kept activation per batch (the inference threshold)."""

    def __post_init__(self):
        super().__post_init__()
        if not 0 <= self.threshold_momentum < 1:
            raise ValueError(f"{type(self).__name__}: threshold_momentum must be in [0, 1), got "
                             f"{self.threshold_momentum!r}")


def _default_prefixes(n_latents: int, k: int) -> tuple[int, ...]:
    sizes = sorted({n_latents // 2**j for j in range(5)})
    return tuple(s for s in sizes if s >= k)


@dataclass(frozen=True)
class MatryoshkaBatchTopKConfig(BatchTopKConfig):
    """A Matryoshka BatchTopK sparse autoencoder (Bussmann et al. 2025; Nabeshima 2024).

    The code is the BatchTopK code over all latents; during training every prefix ``0 .. m`` of the dictionary
    (``m`` in :attr:`prefix_sizes`) reconstructs the input on its own from the code restricted to it, and the loss
    is the sum of the prefix FVUs (plus AuxK). Early latents are pushed to carry general, frequent features and
    later ones their refinements (less feature absorption). Inference is that of BatchTopK.

    Examples
    --------
    >>> MatryoshkaBatchTopKConfig(n_latents=256, k=4).prefix_sizes
    (16, 32, 64, 128, 256)
    >>> MatryoshkaBatchTopKConfig(n_latents=256, k=4, prefix_sizes=(64, 128)).prefix_sizes  # the full size is added
    (64, 128, 256)
    """

    variant: ClassVar[str] = "matryoshka_batchtopk"

    prefix_sizes: tuple[int, ...] | None = None
    """Strictly increasing prefix sizes, each ``>= k``; the full dictionary ``n_latents`` is appended when missing.
    ``None``: ``n_latents / 16, / 8, / 4, / 2, / 1`` (those ``>= k``)."""

    def __post_init__(self):
        super().__post_init__()
        name = type(self).__name__
        sizes = self.prefix_sizes
        if sizes is None:
            sizes = _default_prefixes(self.n_latents, self.k)
        if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__iter__"):
            raise ValueError(f"{name}: prefix_sizes must be a sequence of ints, got {sizes!r}")
        sizes = tuple(sizes)
        if not all(isinstance(s, int) and not isinstance(s, bool) for s in sizes):
            raise ValueError(f"{name}: prefix_sizes must be ints, got {sizes!r}")
        if not sizes or sizes[-1] != self.n_latents:
            sizes = sizes + (self.n_latents,)
        if any(b <= a for a, b in zip(sizes[:-1], sizes[1:], strict=True)):
            raise ValueError(f"{name}: prefix_sizes must be strictly increasing and at most n_latents="
                             f"{self.n_latents}, got {tuple(self.prefix_sizes)}; e.g. prefix_sizes="
                             f"{_default_prefixes(self.n_latents, self.k)}")
        if sizes[0] < self.k:
            raise ValueError(f"{name}: the smallest prefix ({sizes[0]}) is smaller than k={self.k}; a prefix needs "
                             "at least k latents: drop it or lower k")
        object.__setattr__(self, "prefix_sizes", sizes)


@dataclass(frozen=True)
class ReLUConfig(SAEConfig):
    """A ReLU sparse autoencoder with the decoder-norm-weighted L1 penalty (Anthropic's "April update", Conerly et
    al. 2024).

    Training loss per input (in normalised units, see :attr:`normalize`):
    ``||x - x_hat||^2 + l1_coef * sum_i f_i(x) * ||W_dec[i]||``, with ``f = relu(W_enc (x - b_dec) + b_enc)``.
    The penalty is invariant to moving scale between ``f_i`` and ``W_dec[i]``, so the decoder rows are **not**
    forced to unit norm (they start at norm :attr:`init_decoder_norm` and are trained freely), as in the April
    update. ``l1_coef`` ramps up linearly from 0 over the first :attr:`l1_warmup_fraction` of the training steps
    and gradients are clipped to norm :attr:`max_grad_norm`. No AuxK loss (the April update uses none); dead
    latents are tracked for the record. The encoder sees ``x - b_dec`` as in the other variants (the April update
    feeds ``x``: the same model up to a reparametrisation of ``b_enc``).

    Examples
    --------
    >>> ReLUConfig(n_latents=64, l1_coef=2.0).variant
    'relu'
    """

    variant: ClassVar[str] = "relu"

    n_latents: int
    """Number of latents (dictionary size)."""
    d_in: int | None = None
    """Input dimension; ``None``: taken from the data by :func:`~neurobridge.sae.train_sae`."""
    l1_coef: float = 5.0
    """Weight ``lambda`` of the decoder-norm-weighted L1 penalty (the April update's value is about 5 for
    inputs normalised to mean squared norm ``d_in``; larger is sparser)."""
    l1_warmup_fraction: float = 0.05
    """Fraction of the training steps over which ``l1_coef`` rises linearly from 0 (the April update: 5%)."""
    init_decoder_norm: float = 0.1
    """Norm of the decoder rows at initialisation (random directions; the encoder starts as the decoder)."""
    max_grad_norm: float | None = 1.0
    """Clip the global gradient norm to this before each step (``None``: no clipping)."""
    dead_tokens: int = 10_000_000
    """A latent that has not fired for this many training tokens counts as dead (tracked, not resampled)."""
    normalize: bool = True
    """Scale inputs by one factor so that their mean squared norm is ``d_in`` (saved, undone by ``decode``)."""

    def __post_init__(self):
        self._check_common()
        _number(self, "l1_coef")
        _number(self, "l1_warmup_fraction", high=1.0)
        _number(self, "init_decoder_norm", low_open=True)
        if self.max_grad_norm is not None:
            _number(self, "max_grad_norm", low_open=True, hint="; pass None for no clipping")


@dataclass(frozen=True)
class JumpReLUConfig(SAEConfig):
    """A JumpReLU sparse autoencoder (Rajamanoharan et al. 2024, "Jumping Ahead").

    ``f_i = z_i * H(z_i - theta_i)`` with ``z = W_enc (x - b_dec) + b_enc`` and a learned per-latent threshold
    ``theta = exp(log_threshold)``; the loss is ``||x - x_hat||^2 + sparsity_coef * ||f||_0`` in the paper's units
    (inputs with mean squared norm 1). The step function ``H`` has no useful gradient, so the threshold is trained
    with the straight-through pseudo-derivatives of a rectangle kernel density estimate of bandwidth ``eps``:
    ``d f_i / d theta_i = -(theta_i / eps) K((z_i - theta_i) / eps)`` and
    ``d H(z_i - theta_i) / d theta_i = -(1 / eps) K((z_i - theta_i) / eps)`` with ``K(u) = 1{|u| < 1/2}``; the
    gradient w.r.t. ``z`` is the ordinary one of ``z H(z - theta)`` (none through the L0 term). Decoder rows are
    kept at unit norm (as in the paper's and Gemma Scope's training), so ``theta`` and ``eps`` act on the same scale
    for every latent.

    Units: the SAE normalises inputs to mean squared norm ``d_in`` (:attr:`normalize`), ``sqrt(d_in)`` times the
    paper's; :attr:`bandwidth` and :attr:`threshold_init` are given in the paper's units and multiplied by
    ``sqrt(d_in)`` inside, and the reconstruction term is divided by ``d_in``, so the paper's hyper-parameters
    carry over unchanged.

    Examples
    --------
    >>> JumpReLUConfig(n_latents=64, sparsity_coef=1e-2).variant
    'jumprelu'
    """

    variant: ClassVar[str] = "jumprelu"

    n_latents: int
    """Number of latents (dictionary size)."""
    d_in: int | None = None
    """Input dimension; ``None``: taken from the data by :func:`~neurobridge.sae.train_sae`."""
    sparsity_coef: float = 1e-3
    """Weight ``lambda`` of the L0 penalty (mean active latents per input); larger is sparser."""
    bandwidth: float = 0.001
    """Width ``eps`` of the rectangle kernel of the pseudo-derivatives, in the paper's units (paper: 0.001)."""
    threshold_init: float = 0.001
    """Initial threshold of every latent, in the paper's units (paper: 0.001)."""
    sparsity_warmup_fraction: float = 0.0
    """Fraction of the training steps over which ``sparsity_coef`` rises linearly from 0 (Gemma Scope warms it
    up; 0: no warm-up)."""
    dead_tokens: int = 10_000_000
    """A latent that has not fired for this many training tokens counts as dead (tracked, not resampled)."""
    normalize: bool = True
    """Scale inputs by one factor so that their mean squared norm is ``d_in`` (saved, undone by ``decode``)."""

    def __post_init__(self):
        self._check_common()
        _number(self, "sparsity_coef")
        _number(self, "bandwidth", low_open=True)
        _number(self, "threshold_init", low_open=True)
        _number(self, "sparsity_warmup_fraction", high=1.0)


@dataclass(frozen=True)
class SemiNMFConfig(SAEConfig):
    """Semi-non-negative matrix factorisation ``X ~ G W`` with codes ``G >= 0`` and a signed dictionary ``W``
    (Ding, Li & Jordan 2010), fitted by :func:`~neurobridge.sae.fit_nmf`; a sparse-coding alternative to an SAE
    with the same ``encode`` / ``decode`` / :func:`~neurobridge.sae.evaluate` interface.

    Examples
    --------
    >>> SemiNMFConfig(n_latents=8).variant
    'seminmf'
    """

    variant: ClassVar[str] = "seminmf"

    n_latents: int
    """Rank of the factorisation (number of dictionary rows)."""
    d_in: int | None = None
    """Input dimension; ``None``: taken from the data by :func:`~neurobridge.sae.fit_nmf`."""
    transform_iter: int = 200
    """Multiplicative updates of the codes (dictionary fixed) that ``encode`` runs on new inputs."""
    zero_tol: float = 1e-6
    """Multiplicative updates shrink codes towards 0 without reaching it: ``encode`` sets entries below
    ``zero_tol`` times the row's largest entry to exactly 0 (what L0 and the sparse code count)."""

    def __post_init__(self):
        self._check_common()
        _positive_int(self, "transform_iter")
        _number(self, "zero_tol", high=1.0, high_open=True)


@dataclass(frozen=True)
class NMFConfig(SemiNMFConfig):
    """Non-negative matrix factorisation ``X ~ G W`` with ``G, W >= 0`` for non-negative inputs, by Lee & Seung's
    multiplicative updates for the squared error (scikit-learn's ``NMF(solver="mu")``), fitted by
    :func:`~neurobridge.sae.fit_nmf`.

    Examples
    --------
    >>> NMFConfig(n_latents=8).variant
    'nmf'
    """

    variant: ClassVar[str] = "nmf"


SAE_CONFIGS: tuple[type[SAEConfig], ...] = (TopKConfig, ReLUConfig, JumpReLUConfig)
"""Config classes (with their subclasses) that build an :class:`~neurobridge.sae.SAE`."""
NMF_CONFIGS: tuple[type[SAEConfig], ...] = (SemiNMFConfig,)
"""Config classes (with their subclasses) fitted by :func:`~neurobridge.sae.fit_nmf`."""

CONFIGS: dict[str, type[SAEConfig]] = {c.variant: c for c in (
    TopKConfig, BatchTopKConfig, MatryoshkaBatchTopKConfig, ReLUConfig, JumpReLUConfig, SemiNMFConfig, NMFConfig)}
"""Variant name -> config class."""


def config_from_dict(d: dict) -> SAEConfig:
    """Rebuild a config saved by :meth:`SAEConfig.to_dict`.

    Examples
    --------
    >>> config_from_dict(BatchTopKConfig(n_latents=8, k=2).to_dict())
    BatchTopKConfig(n_latents=8, k=2, d_in=None, k_aux=None, aux_coef=0.03125, dead_tokens=10000000, normalize=True, threshold_momentum=0.99)
    >>> config_from_dict(MatryoshkaBatchTopKConfig(n_latents=64, k=2).to_dict()).prefix_sizes
    (4, 8, 16, 32, 64)
    """
    d = dict(d)
    variant = d.pop("variant", None)
    if variant not in CONFIGS:
        raise ValueError(f"unknown SAE variant {variant!r}; known: {sorted(CONFIGS)}")
    cls = CONFIGS[variant]
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ValueError(f"{cls.__name__} has no fields {unknown}; the checkpoint was written by a newer "
                         "neurobridge: upgrade neurobridge to load it")
    return cls(**d)
