"""Semi-NMF and NMF as sparse-coding alternatives to an SAE, with the same ``encode`` / ``decode`` interface.

Both factorise inputs ``X`` (``(n_samples, d_in)``) as ``X ~ G W`` with non-negative codes ``G``
(``(n_samples, n_latents)``) and a dictionary ``W`` (``(n_latents, d_in)``, one row per latent, the layout of an
SAE's ``W_dec``). In the papers' notation ``X_paper = X^T ~ F G^T`` with ``F = W^T``.

* **Semi-NMF** (Ding, Li & Jordan 2010, "Convex and semi-nonnegative matrix factorizations", section 3): ``W`` is
  signed, so any real activations can be factorised. Each iteration sets the dictionary to its least-squares
  value ``W = (G^T G)^{-1} G^T X`` and then updates the codes multiplicatively,
  ``G <- G * sqrt(([X W^T]^+ + G [W W^T]^-) / ([X W^T]^- + G [W W^T]^+))`` with ``A^+ = max(A, 0)`` and
  ``A^- = max(-A, 0)``; the paper initialises ``G`` from k-means (cluster indicators + 0.2).
* **NMF** (Lee & Seung 2001) for non-negative inputs, ``W >= 0`` too: each iteration updates the codes
  ``G <- G * (X W^T) / (G W W^T)`` and then the dictionary ``W <- W * (G^T X) / (G^T G W)``, the order and the
  zero-denominator guard of scikit-learn's ``NMF(solver="mu")``.

``encode`` of new inputs runs the same code update with the dictionary fixed (a non-negative least-squares problem,
convex, to which the multiplicative updates converge), then zeroes the entries below ``config.zero_tol`` times the
row's largest one.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import xarray as xr
from torch import nn

from neurobridge.core import progress_bar
from neurobridge.kernels.topk_decode import topk_decode

from ._config import NMF_CONFIGS, NMFConfig, SemiNMFConfig
from ._model import SparseCode, _pad_mask_code, as_matrix, save_module

__all__ = ["SemiNMF", "NMF", "NMFResult", "fit_nmf", "seminmf_dictionary", "seminmf_update_codes",
           "nmf_update_codes", "nmf_update_dictionary", "model_class"]

log = logging.getLogger("neurobridge")

_EPS = float(np.finfo(np.float32).eps)
"""Replaces a zero denominator of a multiplicative update (scikit-learn's guard)."""


def _guard(den: torch.Tensor) -> torch.Tensor:
    return torch.where(den == 0, torch.full_like(den, _EPS), den)


# -- update rules (pure functions) -------------------------------------------------------------------------------

def seminmf_dictionary(X: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
    """Semi-NMF dictionary step: the least-squares ``W = (G^T G)^{-1} G^T X``, shape ``(n_latents, d_in)``
    (Ding et al. 2010, eq. 8, ``F = X G (G^T G)^{-1}`` in their orientation).

    Examples
    --------
    >>> G = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]], dtype=torch.float64)
    >>> W = torch.tensor([[1.0, -1.0], [0.5, 2.0]], dtype=torch.float64)
    >>> torch.allclose(seminmf_dictionary(G @ W, G), W)
    True
    """
    GtG = G.T @ G
    GtX = G.T @ X
    W, info = torch.linalg.solve_ex(GtG, GtX)
    if int(info) != 0 or not torch.isfinite(W).all():  # a code column died: least squares of the rank-deficient G
        W = torch.linalg.lstsq(G.cpu(), X.cpu()).solution.to(X.device)
    return W


def seminmf_update_codes(X: torch.Tensor, G: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """Semi-NMF code step ``G * sqrt(([X W^T]^+ + G [W W^T]^-) / ([X W^T]^- + G [W W^T]^+))`` (Ding et al. 2010,
    eq. 9), shape ``(n_samples, n_latents)``; keeps ``G >= 0`` and does not increase ``||X - G W||``.

    Examples
    --------
    >>> W = torch.eye(2, dtype=torch.float64)
    >>> X = torch.tensor([[2.0, -1.0]], dtype=torch.float64)
    >>> G = torch.ones(1, 2, dtype=torch.float64)
    >>> for _ in range(60):
    ...     G = seminmf_update_codes(X, G, W)
    >>> G.round(decimals=4).tolist()  # the non-negative least-squares code of X
    [[2.0, 0.0]]
    """
    XW = X @ W.T
    WW = W @ W.T
    num = XW.clamp_min(0) + G @ (-WW).clamp_min(0)
    den = (-XW).clamp_min(0) + G @ WW.clamp_min(0)
    return G * torch.sqrt(num / _guard(den))


def nmf_update_codes(X: torch.Tensor, G: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """NMF code step ``G * (X W^T) / (G W W^T)`` (Lee & Seung 2001), shape ``(n_samples, n_latents)``.

    Examples
    --------
    >>> W = torch.tensor([[1.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    >>> X = torch.tensor([[3.0, 1.0]], dtype=torch.float64)  # = 2 * W[0] + 1 * W[1]
    >>> G = torch.ones(1, 2, dtype=torch.float64)
    >>> for _ in range(300):
    ...     G = nmf_update_codes(X, G, W)
    >>> G.round(decimals=3).tolist()
    [[2.0, 1.0]]
    """
    return G * (X @ W.T) / _guard(G @ (W @ W.T))


def nmf_update_dictionary(X: torch.Tensor, G: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """NMF dictionary step ``W * (G^T X) / (G^T G W)`` (Lee & Seung 2001), shape ``(n_latents, d_in)``.

    Examples
    --------
    >>> G = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    >>> X = G @ torch.tensor([[1.0, 2.0], [3.0, 0.5]], dtype=torch.float64)
    >>> W = torch.ones(2, 2, dtype=torch.float64)
    >>> for _ in range(300):
    ...     W = nmf_update_dictionary(X, G, W)
    >>> W.round(decimals=3).tolist()
    [[1.0, 2.0], [3.0, 0.5]]
    """
    return W * (G.T @ X) / _guard((G.T @ G) @ W)


# -- the models ----------------------------------------------------------------------------------------------------

class SemiNMF(nn.Module):
    """A fitted semi-NMF ``X ~ G W`` (codes ``G >= 0``, signed dictionary ``W``) with an SAE's interface.

    Made by :func:`fit_nmf`; ``encode`` solves for non-negative codes of new inputs with the dictionary fixed,
    ``decode`` is ``code @ W_dec`` (a sparse gather through :func:`neurobridge.kernels.topk_decode.topk_decode`),
    so :func:`~neurobridge.sae.evaluate`, :meth:`save` and :func:`~neurobridge.sae.load_sae` work as for an SAE.

    Parameters
    ----------
    config : SemiNMFConfig
        With ``d_in`` set.
    device, dtype : optional
        Of the dictionary (default CPU, float32).

    Attributes
    ----------
    W_dec : buffer, shape (n_latents, d_in)
        The dictionary (zeros until fitted).

    Examples
    --------
    >>> import neurobridge as nb
    >>> sim = nb.datasets.simulate_sparse_codes(200, 8, 4, k=1, random_state=0)
    >>> model, codes, history = nb.sae.fit_nmf(sim.data, nb.sae.SemiNMFConfig(n_latents=4), progress=False)
    >>> bool(nb.sae.evaluate(model, sim.data).fvu < 1e-3)
    True
    """

    _nonnegative = False

    def __init__(self, config: SemiNMFConfig, *, device=None, dtype: torch.dtype = torch.float32):
        super().__init__()
        name = type(self).__name__
        if not isinstance(config, NMF_CONFIGS) or model_class(config) is not type(self):
            want = "NMFConfig" if self._nonnegative else "SemiNMFConfig"
            raise TypeError(f"{name}: config must be a {want}, got {type(config).__name__}")
        if config.d_in is None:
            raise ValueError(f"{name}: config.d_in is None; set it (dataclasses.replace(config, d_in=...)) or let "
                             "nb.sae.fit_nmf take it from the data")
        self.config = config
        self.register_buffer("W_dec", torch.zeros(config.n_latents, config.d_in, device=device, dtype=dtype))

    def _check_input(self, x) -> torch.Tensor:
        name = type(self).__name__
        x, _ = as_matrix(x, f"{name} input")
        d = self.config.d_in
        if x.shape[1] != d:
            raise ValueError(f"{name}: expected input of shape (batch, d_in={d}), got {tuple(x.shape)}; pass the "
                             f"same {d}-dimensional activations it was fitted on, or fit a new one on these")
        if self._nonnegative:
            _check_nonnegative(x, f"{name} input")
        return x.to(device=self.W_dec.device, dtype=self.W_dec.dtype)

    def _update_codes(self, X: torch.Tensor, G: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
        return seminmf_update_codes(X, G, W)

    @torch.no_grad()
    def codes(self, x, *, n_iter: int | None = None) -> torch.Tensor:
        """Dense non-negative codes ``(batch, n_latents)`` of ``x`` with the dictionary fixed.

        Starts from the clipped least-squares code plus a small positive offset (multiplicative updates cannot
        leave 0) and runs ``n_iter`` (default ``config.transform_iter``) code updates; no ``zero_tol`` applied.

        Examples
        --------
        >>> model = SemiNMF(SemiNMFConfig(n_latents=2, d_in=2))
        >>> _ = model.W_dec.copy_(torch.eye(2))
        >>> model.codes(torch.tensor([[2.0, -1.0]])).round(decimals=3).tolist()
        [[2.0, 0.0]]
        """
        X = self._check_input(x)
        W = self.W_dec
        start = (X @ torch.linalg.pinv(W)).clamp_min(0)
        G = start + 0.1 * start.mean(1, keepdim=True) + torch.finfo(X.dtype).eps
        for _ in range(int(self.config.transform_iter if n_iter is None else n_iter)):
            G = self._update_codes(X, G, W)
        return G

    def encode(self, x) -> SparseCode:
        """Sparse code of ``x`` (shape ``(batch, d_in)``): :meth:`codes` with entries below ``config.zero_tol``
        times the row maximum set to 0, packed as a :class:`SparseCode` padded to the widest row.

        Examples
        --------
        >>> model = SemiNMF(SemiNMFConfig(n_latents=2, d_in=2))
        >>> _ = model.W_dec.copy_(torch.eye(2))
        >>> code = model.encode(torch.tensor([[2.0, -1.0]]))
        >>> code.indices.tolist(), code.values.round(decimals=3).tolist()
        ([[0]], [[2.0]])
        """
        G = self.codes(x)
        keep = G > self.config.zero_tol * G.amax(1, keepdim=True)
        idx, valid = _pad_mask_code(G, keep)
        return SparseCode(G.gather(1, idx) * valid, idx)

    def decode(self, code: SparseCode) -> torch.Tensor:
        """Reconstruction ``code @ W_dec``, shape ``(batch, d_in)``.

        Examples
        --------
        >>> model = SemiNMF(SemiNMFConfig(n_latents=2, d_in=2))
        >>> model.decode(SparseCode(torch.tensor([[1.0]]), torch.tensor([[0]]))).tolist()
        [[0.0, 0.0]]
        """
        values, indices = code
        return topk_decode(values, indices, self.W_dec)

    def forward(self, x) -> torch.Tensor:
        """Reconstruction of ``x``: ``decode(encode(x))``."""
        return self.decode(self.encode(x))

    def save(self, path) -> Path:
        """Write ``config.json`` and ``sae.safetensors`` into the folder ``path`` (read by
        :func:`~neurobridge.sae.load_sae`); returns it.

        Examples
        --------
        >>> import tempfile
        >>> folder = SemiNMF(SemiNMFConfig(n_latents=2, d_in=3)).save(tempfile.mkdtemp())
        >>> sorted(p.name for p in folder.iterdir())
        ['config.json', 'sae.safetensors']
        """
        return save_module(self, path)


class NMF(SemiNMF):
    """A fitted NMF ``X ~ G W`` with ``G, W >= 0`` for non-negative inputs (Lee & Seung 2001), with an SAE's
    interface (see :class:`SemiNMF`); inputs with negative entries raise.

    Examples
    --------
    >>> import neurobridge as nb
    >>> X = np.abs(np.random.default_rng(0).normal(size=(50, 6)))
    >>> model, codes, history = nb.sae.fit_nmf(X, nb.sae.NMFConfig(n_latents=6), n_iter=500, progress=False)
    >>> bool((model.W_dec >= 0).all()), bool(history.fvu[-1] < history.fvu[0])
    (True, True)
    """

    _nonnegative = True

    def _update_codes(self, X: torch.Tensor, G: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
        return nmf_update_codes(X, G, W)


def model_class(config: SemiNMFConfig) -> type[SemiNMF]:
    """The model class of a sparse-coding config: :class:`NMF` for :class:`NMFConfig`, else :class:`SemiNMF`.

    Examples
    --------
    >>> model_class(NMFConfig(n_latents=2)).__name__
    'NMF'
    """
    return NMF if isinstance(config, NMFConfig) else SemiNMF


def _check_nonnegative(X: torch.Tensor, name: str) -> None:
    if X.numel() and float(X.min()) < 0:
        flat = int(torch.argmin(X))
        where = (flat // X.shape[1], flat % X.shape[1])
        raise ValueError(f"{name}: NMF needs non-negative inputs, found {int((X < 0).sum())} negative value(s), the "
                         f"smallest {float(X.min()):.4g} at index {where}; use nb.sae.SemiNMFConfig (signed "
                         "dictionary) for signed activations, or shift / rectify them first")


# -- fitting -------------------------------------------------------------------------------------------------------

class NMFResult(NamedTuple):
    """What :func:`fit_nmf` returns."""

    model: SemiNMF
    """The fitted :class:`SemiNMF` or :class:`NMF` (in eval mode)."""
    codes: torch.Tensor
    """``(n_samples, n_latents)`` the fitted non-negative codes ``G`` of the training inputs."""
    history: xr.Dataset
    """Per-iteration ``error`` (Frobenius norm of ``X - G W``) and ``fvu`` over dim ``iteration``; attrs
    ``converged`` (1 if ``tol`` stopped it) and ``n_iter``."""


def _nndsvda(X: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """NNDSVD initialisation (Boutsidis & Gallopoulos 2008) with zeros filled by the mean of ``X`` ("nndsvda", the
    default of scikit-learn's NMF), from an exact SVD."""
    Xd = X.double()
    U, S, Vh = torch.linalg.svd(Xd, full_matrices=False)
    n, d = X.shape
    G = torch.zeros(n, k, dtype=torch.float64, device=X.device)
    W = torch.zeros(k, d, dtype=torch.float64, device=X.device)
    for j in range(min(k, S.numel())):
        x, y = U[:, j], Vh[j]
        if j == 0:
            u, v, sigma = x.abs(), y.abs(), 1.0
        else:
            xp, yp, xn, yn = x.clamp_min(0), y.clamp_min(0), (-x).clamp_min(0), (-y).clamp_min(0)
            mp, mn = float(xp.norm() * yp.norm()), float(xn.norm() * yn.norm())
            if mp > mn:
                u, v, sigma = xp / xp.norm(), yp / yp.norm(), mp
            else:
                u, v, sigma = xn / xn.norm().clamp_min(1e-300), yn / yn.norm().clamp_min(1e-300), mn
        lam = float(torch.sqrt(S[j] * sigma))
        G[:, j], W[j] = lam * u, lam * v
    eps = 1e-6
    avg = float(Xd.mean())
    G[G < eps] = avg
    W[W < eps] = avg
    return G.to(X), W.to(X)


def _init_codes(X: torch.Tensor, config, init, seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    n, d = X.shape
    k = config.n_latents
    name = "fit_nmf"
    nonneg = isinstance(config, NMFConfig)
    if isinstance(init, str):
        if init == "kmeans":
            if nonneg:
                raise ValueError(f"{name}: init='kmeans' is the semi-NMF initialisation; NMF takes init='random' "
                                 "or (G0, W0)")
            from sklearn.cluster import KMeans

            labels = KMeans(n_clusters=k, n_init=1, random_state=int(seed)).fit(X.cpu().double().numpy()).labels_
            G = torch.full((n, k), 0.2, dtype=X.dtype, device=X.device)
            G[torch.arange(n, device=X.device), torch.as_tensor(labels, device=X.device).long()] += 1.0
            return G, None
        if init == "nndsvda":
            if not nonneg:
                raise ValueError(f"{name}: init='nndsvda' is an NMF initialisation; semi-NMF takes 'kmeans' or "
                                 "'random'")
            return _nndsvda(X, k)
        if init == "random":
            g = torch.Generator().manual_seed(int(seed))
            if not nonneg:
                return torch.rand(n, k, generator=g, dtype=torch.float64).to(X), None
            avg = float(np.sqrt(max(float(X.double().mean()), 0.0) / k)) or 1.0  # scikit-learn's random init
            W = avg * torch.randn(k, d, generator=g, dtype=torch.float64).abs()
            G = avg * torch.randn(n, k, generator=g, dtype=torch.float64).abs()
            return G.to(X), W.to(X)
        raise ValueError(f"{name}: unknown init {init!r}; use 'kmeans' or 'random' (semi-NMF), 'nndsvda' or 'random' "
                         "(NMF), or arrays: G0 (semi-NMF) / (G0, W0) (NMF)")
    if nonneg:
        if not (isinstance(init, (tuple, list)) and len(init) == 2):
            raise ValueError(f"{name}: an NMF init must be 'nndsvda', 'random' or a pair (G0, W0) of non-negative arrays of "
                             f"shapes ({n}, {k}) and ({k}, {d}), got {type(init).__name__}")
        G, W = (torch.as_tensor(np.asarray(a) if not isinstance(a, torch.Tensor) else a).to(X) for a in init)
    else:
        G, W = torch.as_tensor(np.asarray(init) if not isinstance(init, torch.Tensor) else init).to(X), None
    if tuple(G.shape) != (n, k) or (W is not None and tuple(W.shape) != (k, d)):
        got = tuple(G.shape) if W is None else (tuple(G.shape), tuple(W.shape))
        want = (n, k) if W is None else ((n, k), (k, d))
        raise ValueError(f"{name}: init has shape {got}, expected {want} (n_samples, n_latents) / (n_latents, d_in)")
    for a in (G, W):
        if a is not None and not (torch.isfinite(a).all() and (a >= 0).all()):
            raise ValueError(f"{name}: init must be finite and non-negative (multiplicative updates keep signs)")
    return G, W


def fit_nmf(
    activations, config: SemiNMFConfig, *, n_iter: int = 200, tol: float = 1e-4, init=None, seed: int = 0,
    dtype: torch.dtype = torch.float32, device: str | torch.device | None = None, progress: bool | None = None,
) -> NMFResult:
    """Fit a semi-NMF (signed inputs) or an NMF (non-negative inputs) ``X ~ G W`` by multiplicative updates.

    Parameters
    ----------
    activations : xr.DataArray (stimulus|token, unit), np.ndarray or torch.Tensor (samples, units)
    config : SemiNMFConfig or NMFConfig
        ``d_in=None`` is filled from the data; a different ``d_in`` raises.
    n_iter : int
        Maximum iterations (one dictionary and one code update each).
    tol : float
        Stop when an iteration lowers the error by less than ``tol`` times the initial error (scikit-learn's
        criterion, tested every iteration); 0 runs all ``n_iter``.
    init : {"kmeans", "random", "nndsvda"}, array or (array, array), optional
        Semi-NMF: ``"kmeans"`` (default; the paper's k-means cluster indicators + 0.2), ``"random"`` (uniform
        codes), or an array ``G0`` ``(n_samples, n_latents)``. NMF: ``"random"`` (scikit-learn's scaled
        half-normal init), ``"nndsvda"`` (default; scikit-learn's default, NNDSVD with zeros set to the mean) or a
        pair ``(G0, W0)``. Initial values must be non-negative.
    seed : int
        Seeds the initialisation.
    dtype : torch.dtype
        Of the computation and the model (float32; float64 for references).
    device : optional
        Default: the device of a tensor input, else CPU.
    progress : bool, optional
        Progress bar over iterations.

    Returns
    -------
    NMFResult
        ``(model, codes, history)``.

    Raises
    ------
    SchemaError
        Non-finite activations.
    ValueError
        Negative inputs for NMF, fewer samples than ``n_latents`` (semi-NMF), ``d_in`` not the data's, bad init.

    Examples
    --------
    >>> import neurobridge as nb
    >>> sim = nb.datasets.simulate_sparse_codes(300, 16, 6, k=2, random_state=0)
    >>> model, codes, history = nb.sae.fit_nmf(sim.data, nb.sae.SemiNMFConfig(n_latents=6), progress=False)
    >>> tuple(codes.shape), bool((codes >= 0).all()), bool(history.fvu[-1] < 1e-2)
    ((300, 6), True, True)
    """
    import dataclasses

    if not isinstance(config, NMF_CONFIGS):
        raise TypeError(f"fit_nmf: config must be a SemiNMFConfig or NMFConfig, got {type(config).__name__}; "
                        "train SAE configs with nb.sae.train_sae")
    X, _ = as_matrix(activations)
    n, d = X.shape
    if config.d_in is None:
        config = dataclasses.replace(config, d_in=int(d))
    elif config.d_in != d:
        raise ValueError(f"fit_nmf: config.d_in={config.d_in} but the activations have {d} units; pass d_in={d} "
                         "(or d_in=None to take it from the data)")
    nonneg = isinstance(config, NMFConfig)
    if n < 1:
        raise ValueError("fit_nmf: activations have 0 samples")
    if not nonneg and n < config.n_latents:
        raise ValueError(f"fit_nmf: semi-NMF of rank n_latents={config.n_latents} needs at least as many samples, "
                         f"got n_samples={n}; lower n_latents or pass more samples")
    if not (isinstance(n_iter, int) and n_iter >= 1):
        raise ValueError(f"fit_nmf: n_iter must be a positive int, got {n_iter!r}")
    if not tol >= 0:
        raise ValueError(f"fit_nmf: tol must be >= 0, got {tol!r}")
    device = X.device if device is None else torch.device(device)
    X = X.to(device=device, dtype=dtype)
    if nonneg:
        _check_nonnegative(X, "fit_nmf: activations")
    G, W = _init_codes(X, config, ("nndsvda" if nonneg else "kmeans") if init is None else init, seed)

    sst = float((X.double() - X.double().mean(0)).square().sum())
    errors = []

    def error(G, W):
        return float((X - G @ W).double().square().sum().sqrt())

    if nonneg:
        err0 = error(G, W)
    else:
        W = seminmf_dictionary(X, G)
        err0 = error(G, W)
    prev, converged = err0, False
    with progress_bar(total=n_iter, desc=f"fit_nmf ({config.variant})", unit="it", progress=progress) as bar:
        for _ in range(n_iter):
            if nonneg:
                G = nmf_update_codes(X, G, W)
                W = nmf_update_dictionary(X, G, W)
            else:
                W = seminmf_dictionary(X, G)
                G = seminmf_update_codes(X, G, W)
            err = error(G, W)
            errors.append(err)
            bar.update(1)
            if tol > 0 and err0 > 0 and (prev - err) / err0 < tol:
                converged = True
                break
            prev = err
    model = model_class(config)(config, device=device, dtype=dtype)
    model.W_dec.copy_(W)
    e = np.asarray(errors)
    log.info("fit_nmf: %d iterations of %s, final FVU %.4g", len(e), config.variant, e[-1] ** 2 / sst if sst else 0)
    history = xr.Dataset({"error": ("iteration", e), "fvu": ("iteration", e**2 / sst if sst > 0 else e * np.nan)},
                         coords={"iteration": np.arange(1, len(e) + 1)},
                         attrs={"variant": config.variant, "converged": int(converged), "n_iter": len(e),
                                "seed": int(seed)})
    return NMFResult(model.eval(), G, history)
