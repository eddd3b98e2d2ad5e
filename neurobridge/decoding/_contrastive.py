"""A contrastive linear decoder (brain -> model embedding), trained with the symmetric CLIP InfoNCE loss.

The decoder is a linear map ``z = x W + b`` of a brain response ``x`` into the space of a model's embedding
``e``, fitted so that each response is nearer (in cosine similarity) to the embedding of its own stimulus than
to the embeddings of the other stimuli of a batch: the CLIP loss of Radford et al. (2021), used to decode
MEG into image embeddings by Defossez et al. (2023) and Benchetrit, Banville & King (2023), here with a linear
brain module. Where ridge regression fits the embedding's values (squared error), the contrastive decoder
fits only what retrieval needs: the direction of the prediction relative to the other candidates, so the
scale of the brain response or of its noise no longer weighs on the fit.

:func:`info_nce_loss` is the loss (a pure function on tensors); :class:`ContrastiveDecoder` is a
scikit-learn-style estimator (``fit(X, Y)`` / ``predict(X)``) over it, and
``nb.decoding.retrieval(..., decoder="contrastive")`` runs it under the same folds and retrieval metrics as the
ridge decoder so that the two compare directly.
"""

from __future__ import annotations

import contextlib
import logging
import math

import numpy as np
import torch

from ..core import cpu_threads, progress_bar, resolve_device
from ..encoding._estimators import _LinearBase
from ..stats._utils import generator
from ._inputs import SMALL_ELEMENTS

__all__ = ["ContrastiveDecoder", "info_nce_loss"]

logger = logging.getLogger("neurobridge")

_MAX_LOGIT_SCALE = 100.0  # CLIP's clamp of the learnable inverse temperature
_MIN_IMPROVEMENT = 1e-4  # relative decrease of the validation loss that counts as an improvement


def info_nce_loss(brain: torch.Tensor, target: torch.Tensor, temperature: float | torch.Tensor = 0.1, *,
                  same: torch.Tensor | None = None, symmetric: bool = True) -> torch.Tensor:
    """The CLIP InfoNCE loss of paired rows: each brain row must pick out its own target row, and (symmetric)
    each target row its own brain row, by cosine similarity.

    With ``s_ij = cos(brain_i, target_j) / temperature``, the loss is
    ``-1/n sum_i log softmax_j(s_ij)[i]`` (brain -> target), averaged with the same loss over the columns
    (target -> brain) when ``symmetric``: the mean of the two cross-entropies of ``s`` and ``s.T`` against the
    diagonal, as in Radford et al. (2021).

    Parameters
    ----------
    brain, target : tensor, shape (n, d)
        Row ``i`` of each belongs to one sample (``n >= 2``). Rows are L2-normalised inside; a zero row has
        similarity 0 with everything.
    temperature : float or 0-d tensor
        Divides the cosine similarities (> 0; a tensor carries gradients, e.g. a learnable temperature).
    same : tensor of int, shape (n,), optional
        Stimulus code of each row: rows ``j != i`` with the code of ``i`` (repetitions of one stimulus) are left
        out of the candidates of ``i`` instead of counting as negatives.
    symmetric : bool
        Average the brain -> target and target -> brain losses (default, CLIP); ``False``: brain -> target only.

    Returns
    -------
    tensor, 0-d
        The mean loss, in ``brain``'s dtype; ``log(n)`` for similarities that carry nothing (all equal).

    Examples
    --------
    >>> import torch
    >>> from neurobridge.decoding import info_nce_loss
    >>> e = torch.eye(3, dtype=torch.float64)
    >>> round(info_nce_loss(e, e, 1.0).item(), 4)  # -log(e / (e + 2)): each row is nearest its own
    0.5514
    >>> round(info_nce_loss(torch.ones(3, 3), e, 1.0).item(), 4)  # no information: log(3)
    1.0986
    """
    if brain.ndim != 2 or target.ndim != 2 or brain.shape != target.shape:
        raise ValueError(f"brain and target must both be 2-d (n, d) with the same shape, got {tuple(brain.shape)} "
                         f"and {tuple(target.shape)}; row i of each belongs to sample i")
    n = brain.shape[0]
    if n < 2:
        raise ValueError(f"the contrastive loss needs at least 2 pairs (one positive, one negative), got {n}")
    if not isinstance(temperature, torch.Tensor) and not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    b = torch.nn.functional.normalize(brain, dim=1)
    t = torch.nn.functional.normalize(target.to(brain.dtype), dim=1)
    logits = (b @ t.T) / temperature
    if same is not None:
        same = torch.as_tensor(same, device=brain.device)
        if same.shape != (n,):
            raise ValueError(f"same must hold one stimulus code per row, shape ({n},), got {tuple(same.shape)}")
        clash = (same[:, None] == same[None, :]) & ~torch.eye(n, dtype=torch.bool, device=brain.device)
        logits = logits.masked_fill(clash, float("-inf"))
    # log_softmax, not logsumexp: the same values, and several times faster on CPU
    loss = -torch.log_softmax(logits, dim=1).diagonal().mean()
    if symmetric:
        loss = 0.5 * (loss - torch.log_softmax(logits, dim=0).diagonal().mean())
    return loss


class _AdamW:
    """The AdamW update of :class:`torch.optim.AdamW` (betas 0.9, 0.999, eps 1e-8, no amsgrad), written out: the
    same trajectory (``tests/decoding/test_contrastive.py`` checks it step by step), without the seconds that
    constructing a ``torch.optim`` optimiser takes on its first use in a process (it imports ``torch._dynamo``),
    which would dominate a decoder fitted in a fraction of a second."""

    def __init__(self, params: list[tuple[torch.Tensor, float]], lr: float, betas=(0.9, 0.999), eps: float = 1e-8):
        self.params = params  # (tensor, weight decay)
        self.lr, self.betas, self.eps = lr, betas, eps
        self.t = 0
        self.m = [torch.zeros_like(p) for p, _ in params]
        self.v = [torch.zeros_like(p) for p, _ in params]

    def zero_grad(self) -> None:
        for p, _ in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        self.t += 1
        b1, b2 = self.betas
        c1, c2 = 1 - b1 ** self.t, math.sqrt(1 - b2 ** self.t)
        for (p, wd), m, v in zip(self.params, self.m, self.v, strict=True):
            if p.grad is None:
                continue
            g = p.grad
            if wd:
                p.mul_(1 - self.lr * wd)
            m.lerp_(g, 1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            p.addcdiv_(m, (v.sqrt() / c2).add_(self.eps), value=-self.lr / c1)


def _check_params(est: ContrastiveDecoder) -> None:
    def positive(name, integer=False, allow_zero=False):
        v = getattr(est, name)
        ok_type = isinstance(v, (int, np.integer)) if integer else isinstance(v, (int, float, np.floating, np.integer))
        if isinstance(v, bool) or not ok_type or not (v >= 0 if allow_zero else v > 0) or not math.isfinite(v):
            kind = "an integer" if integer else "a number"
            bound = ">= 0" if allow_zero else "> 0"
            raise ValueError(f"{name} must be {kind} {bound}, got {v!r}")

    positive("temperature")
    positive("lr")
    positive("weight_decay", allow_zero=True)
    positive("max_epochs", integer=True)
    positive("batch_size", integer=True)
    positive("patience", integer=True)
    if est.batch_size < 2:
        raise ValueError(f"batch_size must be >= 2 (a batch needs negatives), got {est.batch_size}")
    v = est.val_fraction
    if isinstance(v, bool) or not isinstance(v, (int, float, np.floating)) or not 0 <= v < 1:
        raise ValueError(f"val_fraction must be in [0, 1) (0: no early stopping), got {v!r}")


class ContrastiveDecoder(_LinearBase):
    """Linear decoder from brain responses to a model's embedding, trained with the symmetric CLIP InfoNCE loss.

    ``fit(X, Y)`` learns ``z = X @ coef_ + intercept_`` (features standardised inside, the map folded back to the
    raw features) so that ``cos(z_i, t(Y_i))`` exceeds ``cos(z_i, t(Y_j))`` for the other stimuli ``j`` of a
    batch, with ``t(Y) = (Y - target_mean_) @ target_projection_`` the decoder's target space
    (:meth:`transform_target`; the identity when ``center_target=False`` and ``project_target=False``). Adam with
    decoupled weight decay (AdamW) on the maps, minibatches of ``batch_size`` pairs, early stopping on the loss
    of a held-out set of stimuli (the weights of its best epoch are kept), deterministic under ``random_state``.

    Rows of ``Y`` that are equal are one stimulus (repeated trials): they share a validation split and are never
    each other's negatives.

    Parameters
    ----------
    temperature : float
        The temperature dividing the cosine similarities (> 0), its starting value when ``learn_temperature``.
    learn_temperature : bool
        Learn the temperature with the maps (CLIP: its log inverse, capped at an inverse of 100) or keep it fixed.
    lr : float
        Adam learning rate.
    weight_decay : float
        Decoupled weight decay (AdamW) of the linear maps (not of the intercept or the temperature).
    max_epochs : int
        Passes over the training pairs at most.
    batch_size : int
        Pairs per minibatch (>= 2), the candidates of each InfoNCE term; capped at the number of training pairs.
        The pairs are split into ``n_train // batch_size`` nearly equal batches, so none is smaller.
    patience : int
        Epochs without a decrease of the validation loss (by a relative 1e-4) before training stops.
    val_fraction : float
        Fraction of the training stimuli held out for early stopping (at least 2 stimuli); 0 trains for
        ``max_epochs`` on all of them.
    center_target : bool
        Subtract the mean embedding of the training stimuli before comparing (so that the direction shared by
        every embedding, large in most networks, does not dominate the cosines).
    project_target : bool
        Also learn a square linear map of the (centred) embedding, CLIP's second tower, started at the
        identity: it may reweight the embedding dims that the brain does not carry.
    random_state : int, optional
        Seed of the initial weights, the validation split and the batch order (``None``: fresh entropy).
    device : str, optional
        Torch device of the fit (default: the input tensor's, else ``nb.config_context(device=...)``, else CPU).
    progress : bool, optional
        Progress bar over the epochs (``None``: automatic).

    Attributes
    ----------
    coef_ : array or tensor, shape (n_targets, n_features)
        The linear map of the raw features (numpy after a numpy fit, a tensor after a tensor fit).
    intercept_ : array or tensor, shape (n_targets,)
    target_mean_ : tensor, shape (n_targets,)
        The mean subtracted from the embedding (zeros when ``center_target=False``).
    target_projection_ : tensor, shape (n_targets, n_targets)
        The learned target map (the identity when ``project_target=False``).
    temperature_ : float
        The temperature of the kept epoch.
    n_epochs_, best_epoch_ : int
        Epochs run, and the (1-based) epoch whose weights were kept (``max_epochs`` without validation).
    train_loss_, val_loss_ : ndarray, shape (n_epochs_,)
        Mean training loss and validation loss per epoch (``val_loss_`` empty without validation).

    Examples
    --------
    >>> import numpy as np
    >>> from neurobridge.decoding import ContrastiveDecoder
    >>> rng = np.random.default_rng(0)
    >>> E = rng.normal(size=(200, 8))  # a model's embedding of 200 stimuli
    >>> X = E @ rng.normal(size=(8, 30)) + rng.normal(size=(200, 30))  # responses that carry it
    >>> dec = ContrastiveDecoder(random_state=0).fit(X[:150], E[:150])
    >>> dec.predict(X[150:]).shape
    (50, 8)
    >>> bool(dec.score(X[150:], E[150:]) > 0.9)  # rank accuracy among the 50 held-out stimuli
    True
    """

    def __init__(self, temperature: float = 0.1, learn_temperature: bool = True, lr: float = 0.1,
                 weight_decay: float = 0.0, max_epochs: int = 300, batch_size: int = 128, patience: int = 10,
                 val_fraction: float = 0.2, center_target: bool = True, project_target: bool = False,
                 random_state: int | None = None, device: str | None = None, progress: bool | None = None):
        self.temperature = temperature
        self.learn_temperature = learn_temperature
        self.lr = lr
        self.weight_decay = weight_decay
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.patience = patience
        self.val_fraction = val_fraction
        self.center_target = center_target
        self.project_target = project_target
        self.random_state = random_state
        self.device = device
        self.progress = progress

    # ------------------------------------------------------------------------------------------- fit
    def fit(self, X, y):
        """Fit the decoder on pairs ``(X[i], y[i])``.

        Parameters
        ----------
        X : array or tensor, shape (n_samples, n_features)
            Brain responses (trials or stimuli).
        y : array or tensor, shape (n_samples, n_targets)
            The embedding of each sample's stimulus (``n_targets >= 2``); equal rows are one stimulus.

        Returns
        -------
        self
        """
        _check_params(self)
        Xt, Yt = self._validate_fit(X, y)
        if self._one_d or Yt.shape[1] < 2:
            raise ValueError(f"y must be 2-d (n_samples, n_targets) with n_targets >= 2: cosine similarity in a "
                             f"{Yt.shape[1]}-d space only sees the sign; got shape {tuple(np.shape(y))}")
        dev = resolve_device(Xt, self.device)
        Xt, Yt = Xt.to(dev), Yt.to(device=dev, dtype=Xt.dtype)
        small = min(int(self.batch_size), Xt.shape[0]) * Xt.shape[1] * max(Yt.shape[1], 1) < SMALL_ELEMENTS
        # tiny steps lose more to thread synchronisation than they gain (as the other decoders)
        with cpu_threads(1, dev) if small else contextlib.nullcontext():
            self._train(Xt, Yt, dev)
        return self

    def _train(self, Xt: torch.Tensor, Yt: torch.Tensor, dev: torch.device) -> None:
        gen = generator(self.random_state)
        stim, codes = torch.unique(Yt, dim=0, return_inverse=True)  # equal rows: one stimulus
        n_stim = stim.shape[0]
        repeated = n_stim < len(codes)
        if n_stim < 2:
            raise ValueError(f"y holds {n_stim} distinct embedding: a contrastive fit needs at least 2 stimuli")
        n_val = int(round(self.val_fraction * n_stim)) if self.val_fraction > 0 else 0
        if self.val_fraction > 0 and (n_val < 2 or n_stim - n_val < 2):
            raise ValueError(f"val_fraction={self.val_fraction} of {n_stim} stimuli leaves {n_val} for validation "
                             f"and {n_stim - n_val} for training; each needs at least 2: raise val_fraction, pass "
                             "more stimuli, or val_fraction=0 (no early stopping)")
        order = torch.randperm(n_stim, generator=gen).to(dev)
        is_val = torch.zeros(n_stim, dtype=torch.bool, device=dev)
        is_val[order[:n_val]] = True
        tr = torch.nonzero(~is_val[codes]).flatten()
        va = torch.nonzero(is_val[codes]).flatten()
        tr_stim = torch.nonzero(~is_val).flatten()

        mean = Xt[tr].mean(0)
        sd = Xt[tr].std(0, correction=0)
        sd = torch.where(sd > 0, sd, torch.ones_like(sd))
        Xs = (Xt - mean) / sd
        t_mean = stim[tr_stim].mean(0) if self.center_target else torch.zeros_like(stim[0])
        Yc = Yt - t_mean
        p, d = Xs.shape[1], Yc.shape[1]

        W = (torch.randn(p, d, generator=gen, dtype=Xs.dtype) / math.sqrt(p)).to(dev).requires_grad_()
        b = torch.zeros(d, dtype=Xs.dtype, device=dev, requires_grad=True)
        G = torch.eye(d, dtype=Xs.dtype, device=dev, requires_grad=bool(self.project_target))
        log_scale = torch.tensor(-math.log(self.temperature), dtype=Xs.dtype, device=dev,
                                 requires_grad=bool(self.learn_temperature))
        decayed = [W] + ([G] if self.project_target else [])
        free = [b] + ([log_scale] if self.learn_temperature else [])
        opt = _AdamW([(t, float(self.weight_decay)) for t in decayed] + [(t, 0.0) for t in free], float(self.lr))
        max_scale = math.log(_MAX_LOGIT_SCALE)

        def loss_of(rows):
            z = Xs[rows] @ W + b
            t = Yc[rows] @ G if self.project_target else Yc[rows]
            return info_nce_loss(z, t, torch.exp(-log_scale), same=codes[rows] if repeated else None)

        n_tr = len(tr)
        n_batches = max(1, n_tr // min(int(self.batch_size), n_tr))
        best, best_epoch, stale = math.inf, 0, 0
        best_state = None
        train_hist, val_hist = [], []
        epochs = progress_bar(range(int(self.max_epochs)), desc="contrastive", progress=self.progress, unit="epoch")
        for epoch in epochs:
            perm = tr[torch.randperm(n_tr, generator=gen).to(dev)]
            total = 0.0
            for rows in torch.tensor_split(perm, n_batches):
                opt.zero_grad()
                loss = loss_of(rows)
                loss.backward()
                opt.step()
                if self.learn_temperature:
                    with torch.no_grad():
                        log_scale.clamp_(max=max_scale)
                total += float(loss.detach()) * len(rows)
            train_hist.append(total / n_tr)
            if n_val:
                with torch.no_grad():
                    v = float(loss_of(va))
                val_hist.append(v)
                if best_state is None or v < best - _MIN_IMPROVEMENT * abs(best):
                    best, best_epoch, stale = v, epoch + 1, 0
                    best_state = [t.detach().clone() for t in (W, b, G, log_scale)]
                else:
                    stale += 1
                    if stale >= self.patience:
                        break
        epochs.close()
        if best_state is not None:
            W_k, b_k, G_k, ls_k = best_state
        else:
            W_k, b_k, G_k, ls_k = (t.detach() for t in (W, b, G, log_scale))
            best_epoch = len(train_hist)
        coef = W_k / sd[:, None]
        intercept = b_k - (mean / sd) @ W_k
        self._store_linear(coef, intercept)
        self.target_mean_ = t_mean.detach()
        self.target_projection_ = G_k.detach()
        self.temperature_ = float(torch.exp(-ls_k))
        self.n_epochs_ = len(train_hist)
        self.best_epoch_ = int(best_epoch)
        self.train_loss_ = np.asarray(train_hist)
        self.val_loss_ = np.asarray(val_hist)
        logger.debug("contrastive decoder: %d epochs, kept epoch %d, temperature %.4g", self.n_epochs_,
                     self.best_epoch_, self.temperature_)

    # ------------------------------------------------------------------------------------ target space
    def transform_target(self, y):
        """Embeddings in the decoder's target space, ``(y - target_mean_) @ target_projection_``: the candidates
        that :meth:`predict`'s outputs are compared with.

        Parameters
        ----------
        y : array or tensor, shape (n, n_targets)

        Returns
        -------
        array or tensor, shape (n, n_targets)
            numpy for numpy input, a tensor on ``y``'s device for tensor input.
        """
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self)
        as_torch = isinstance(y, torch.Tensor)
        Y = y if as_torch else torch.as_tensor(np.asarray(y, dtype=float))
        Y = Y.to(device=self._coef_t.device, dtype=self._coef_t.dtype)
        if Y.ndim != 2 or Y.shape[1] != self.target_mean_.shape[0]:
            raise ValueError(f"y must be 2-d with {self.target_mean_.shape[0]} columns (the fitted embedding "
                             f"dims), got shape {tuple(Y.shape)}")
        out = (Y - self.target_mean_) @ self.target_projection_
        return out.to(y.device) if as_torch else out.detach().cpu().numpy()

    def score(self, X, y, sample_weight=None) -> float:
        """Rank accuracy of retrieving each row of ``y`` among all rows of ``y`` from ``predict(X)`` by cosine
        similarity in the target space (1 perfect, 0.5 chance), as :func:`neurobridge.decoding.retrieval_scores`.
        """
        from ._retrieval import retrieval_scores

        if sample_weight is not None:
            raise ValueError("sample_weight is not supported by ContrastiveDecoder.score")
        pred = self.predict(X)
        target = self.transform_target(y)
        return float(retrieval_scores(torch.as_tensor(pred), torch.as_tensor(target, dtype=torch.as_tensor(
            pred).dtype), metric="cosine", top_k=1).rank_accuracy)
