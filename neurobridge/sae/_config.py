"""SAE configurations: one frozen dataclass per variant, saved with the weights."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

__all__ = ["TopKConfig", "BatchTopKConfig", "CONFIGS", "config_from_dict"]


@dataclass(frozen=True)
class TopKConfig:
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
        for name in ("n_latents", "k"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{type(self).__name__}: {name} must be a positive int, got {value!r}")
        if self.k > self.n_latents:
            raise ValueError(f"{type(self).__name__}: k={self.k} > n_latents={self.n_latents}; an input cannot "
                             "have more active latents than there are latents: lower k or raise n_latents")
        if self.d_in is not None and (not isinstance(self.d_in, int) or self.d_in < 1):
            raise ValueError(f"{type(self).__name__}: d_in must be a positive int or None, got {self.d_in!r}")
        if self.k_aux is not None and (not isinstance(self.k_aux, int) or self.k_aux < 1):
            raise ValueError(f"{type(self).__name__}: k_aux must be a positive int or None, got {self.k_aux!r}")
        if not self.aux_coef >= 0:
            raise ValueError(f"{type(self).__name__}: aux_coef must be >= 0, got {self.aux_coef!r}")
        if not isinstance(self.dead_tokens, int) or self.dead_tokens < 1:
            raise ValueError(f"{type(self).__name__}: dead_tokens must be a positive int, got {self.dead_tokens!r}")

    @property
    def aux_k(self) -> int | None:
        """The AuxK latent count in use: ``k_aux``, else ``d_in // 2`` (``None`` while ``d_in`` is unknown)."""
        if self.k_aux is not None:
            return self.k_aux
        return None if self.d_in is None else max(1, self.d_in // 2)

    def to_dict(self) -> dict:
        """The fields and the variant name, JSON-ready (inverse: :func:`config_from_dict`)."""
        return {"variant": self.variant, **dataclasses.asdict(self)}


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
            raise ValueError(f"BatchTopKConfig: threshold_momentum must be in [0, 1), got {self.threshold_momentum!r}")


CONFIGS: dict[str, type[TopKConfig]] = {c.variant: c for c in (TopKConfig, BatchTopKConfig)}
"""Variant name -> config class."""


def config_from_dict(d: dict) -> TopKConfig:
    """Rebuild a config saved by :meth:`TopKConfig.to_dict`.

    Examples
    --------
    >>> config_from_dict(BatchTopKConfig(n_latents=8, k=2).to_dict())
    BatchTopKConfig(n_latents=8, k=2, d_in=None, k_aux=None, aux_coef=0.03125, dead_tokens=10000000, normalize=True, threshold_momentum=0.99)
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
