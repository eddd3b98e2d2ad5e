"""``SparseDictionary``: an SAE (or semi-NMF / NMF) as a scikit-learn transformer, for Pipelines."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from ._config import NMF_CONFIGS, SAE_CONFIGS, SAEConfig, TopKConfig
from ._model import SparseCode
from ._nmf import fit_nmf
from ._train import train_sae

__all__ = ["SparseDictionary"]


class SparseDictionary(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """A sparse dictionary (any SAE variant, semi-NMF or NMF) as a scikit-learn transformer.

    ``fit`` trains with :func:`~neurobridge.sae.train_sae` (SAE configs) or :func:`~neurobridge.sae.fit_nmf`
    (semi-NMF / NMF configs); ``transform`` returns the dense code ``(n_samples, n_latents)`` (the SAE's
    ``encode``), ``inverse_transform`` the reconstruction (its ``decode``). Use it in a Pipeline before
    :class:`neurobridge.encoding.RidgeCV` to predict brain responses from latents.

    Parameters
    ----------
    config : SAEConfig, optional
        :class:`TopKConfig`, :class:`BatchTopKConfig`, :class:`MatryoshkaBatchTopKConfig`, :class:`ReLUConfig`,
        :class:`JumpReLUConfig`, :class:`SemiNMFConfig` or :class:`NMFConfig` (``d_in`` may be ``None``).
        Default: ``TopKConfig(n_latents=4 * n_features, k=max(1, min(32, n_features // 4)))``.
    n_tokens, epochs, batch_size, lr : optional
        Passed to :func:`~neurobridge.sae.train_sae` (SAE configs).
    n_iter : int
        Iterations of :func:`~neurobridge.sae.fit_nmf` (semi-NMF / NMF configs).
    seed : int
        Seeds the initialisation and the data order.
    device : str, optional
        Where to train (default CPU).
    progress : bool
        Progress bar while fitting.

    Attributes
    ----------
    model_ : SAE, SemiNMF or NMF
        The fitted model.
    history_ : xr.Dataset
        Its training history.
    components_ : ndarray, shape (n_latents, n_features)
        The dictionary (decoder rows), in input units (scikit-learn's decomposition convention).
    n_features_in_ : int

    Examples
    --------
    >>> import neurobridge as nb
    >>> from sklearn.pipeline import make_pipeline
    >>> sim = nb.datasets.simulate_sparse_codes(400, 16, 32, k=2, random_state=0)
    >>> X = sim.data.values; y = sim.codes.values[:, :3]
    >>> pipe = make_pipeline(SparseDictionary(nb.sae.TopKConfig(n_latents=64, k=2), epochs=5, batch_size=100,
    ...                                       lr=3e-3), nb.encoding.RidgeCV(alphas=[0.1, 1.0, 10.0]))
    >>> pipe.fit(X, y)[0].transform(X).shape
    (400, 64)
    """

    def __init__(self, config: SAEConfig | None = None, *, n_tokens: int | None = None, epochs: float = 1.0,
                 batch_size: int = 4096, lr: float | None = None, n_iter: int = 200, seed: int = 0,
                 device: str | None = None, progress: bool = False):
        self.config = config
        self.n_tokens = n_tokens
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.n_iter = n_iter
        self.seed = seed
        self.device = device
        self.progress = progress

    def _config(self, n_features: int) -> SAEConfig:
        cfg = self.config
        if cfg is None:
            return TopKConfig(n_latents=4 * n_features, k=max(1, min(32, n_features // 4)))
        if not isinstance(cfg, (*SAE_CONFIGS, *NMF_CONFIGS)):
            raise TypeError(f"SparseDictionary: config must be an SAE or NMF config (nb.sae.TopKConfig, ..., "
                            f"nb.sae.SemiNMFConfig), got {type(cfg).__name__}")
        return cfg

    def fit(self, X, y=None):
        """Fit the dictionary on ``X`` (n_samples, n_features); ``y`` is ignored. Returns self."""
        X = validate_data(self, X, dtype=[np.float64, np.float32])
        X = np.array(X, copy=not X.flags.writeable)
        cfg = self._config(X.shape[1])
        if isinstance(cfg, NMF_CONFIGS):
            model, _, history = fit_nmf(X, cfg, n_iter=self.n_iter, seed=self.seed, device=self.device,
                                        progress=self.progress)
        else:
            model, history = train_sae(X, cfg, n_tokens=self.n_tokens, epochs=self.epochs,
                                       batch_size=self.batch_size, lr=self.lr, seed=self.seed, device=self.device,
                                       progress=self.progress)
        self.model_ = model
        self.history_ = history
        W = model.W_dec.detach().double()
        scale = getattr(model, "input_scale", None)
        self.components_ = (W / (1.0 if scale is None else float(scale))).cpu().numpy()
        self._n_features_out = model.config.n_latents
        return self

    def transform(self, X) -> np.ndarray:
        """Dense codes ``(n_samples, n_latents)`` of ``X`` (in ``X``'s float dtype)."""
        check_is_fitted(self, "model_")
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        X = np.array(X, copy=not X.flags.writeable)
        n_lat = self.model_.config.n_latents
        out = np.zeros((X.shape[0], n_lat), dtype=X.dtype)
        with torch.no_grad():
            for s in range(0, X.shape[0], 4096):
                code = self.model_.encode(X[s:s + 4096])
                out[s:s + 4096] = code.to_dense(n_lat).cpu().numpy()
        return out

    def inverse_transform(self, X) -> np.ndarray:
        """Reconstructions ``(n_samples, n_features)`` from dense codes ``X`` (n_samples, n_latents)."""
        check_is_fitted(self, "model_")
        Z = np.asarray(X)
        n_lat = self.model_.config.n_latents
        if Z.ndim != 2 or Z.shape[1] != n_lat:
            raise ValueError(f"SparseDictionary.inverse_transform: expected codes of shape (n_samples, {n_lat}), got "
                             f"{Z.shape}; pass the output of transform")
        dtype = Z.dtype if Z.dtype in (np.float32, np.float64) else np.float64
        ref = self.model_.W_dec
        Zt = torch.as_tensor(np.ascontiguousarray(Z), dtype=ref.dtype, device=ref.device)
        idx = torch.arange(n_lat, device=ref.device).expand(Zt.shape[0], n_lat)
        with torch.no_grad():
            out = self.model_.decode(SparseCode(Zt, idx))
        return out.cpu().numpy().astype(dtype, copy=False)
