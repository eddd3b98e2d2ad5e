"""Attention-readout encoder: learned per-target queries attend over token / patch activations.

The transformer brain encoders (e.g. Adeli et al. 2023, "Predicting brain activity using Transformers") route
each voxel's readout through attention over the image patches, so a voxel learns *where* to read (its
receptive field, or the patches of its preferred category) as well as *what*. :class:`AttentionReadout` is the
small version of that readout, as a scikit-learn regressor that :func:`neurobridge.encoding.fit_encoding` scores
with the same outer cross-validation as ridge.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import pandas as pd
import torch
import xarray as xr
from sklearn.base import BaseEstimator, MultiOutputMixin, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from ..core import as_tensor, check_finite, progress_bar, resolve_device, resolve_dtype
from ._cv import make_folds
from ._estimators import r2_score
from ._memory import threads_for
from ._solvers import DEFAULT_ALPHAS, solve_ridge_cv

__all__ = ["AttentionReadout"]

_TOKEN_DIMS = ("token", "space")
_CHUNK_ELEMENTS = 2**24  # (samples x targets x heads x tokens) elements per forward chunk (~64 MB in float32)


class _AttentionModule(torch.nn.Module):
    """``y[b, v] = sum_h sum_t a[b, v, h, t] * (w[v, h] . x[b, t]) + bias[v]``, with attention
    ``a[b, v, h, :] = softmax_t(q[v, h] . (x[b, t] @ key[:, h]) / sqrt(d) + pos[v, h, t])``."""

    def __init__(self, n_tokens: int, n_features: int, n_targets: int, n_heads: int, key_dim: int,
                 positional: bool, generator: torch.Generator):
        super().__init__()

        def randn(*shape, scale=1.0):
            return torch.nn.Parameter(scale * torch.randn(*shape, generator=generator, dtype=torch.float64))

        self.key = randn(n_features, n_heads, key_dim, scale=1 / math.sqrt(n_features))
        self.query = randn(n_targets, n_heads, key_dim, scale=0.1)
        self.pos = (torch.nn.Parameter(torch.zeros(n_targets, n_heads, n_tokens, dtype=torch.float64))
                    if positional else None)
        self.readout = randn(n_targets, n_heads, n_features, scale=0.1 / math.sqrt(n_features))
        self.bias = torch.nn.Parameter(torch.zeros(n_targets, dtype=torch.float64))
        self.scale = 1 / math.sqrt(key_dim)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, F) -> attention weights (B, V, H, T), summing to 1 over tokens."""
        k = torch.einsum("btf,fhd->bthd", x, self.key)
        logits = torch.einsum("bthd,vhd->bvht", k, self.query) * self.scale
        if self.pos is not None:
            logits = logits + self.pos
        return torch.softmax(logits, dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, F) -> predictions (B, V)."""
        values = torch.einsum("btf,vhf->bvht", x, self.readout)  # every token read out by every target's weights
        return (self.attention(x) * values).sum((2, 3)) + self.bias


class _AdamW:
    """AdamW as ``torch.optim.AdamW`` (defaults: betas (0.9, 0.999), eps 1e-8, no amsgrad), step for step.

    Written out because the first ``torch.optim`` optimiser of a process imports ``torch._dynamo`` (about 5 s);
    tests/encoding/test_attention.py checks it against ``torch.optim.AdamW``.
    """

    def __init__(self, params, lr: float, weight_decay: float, betas=(0.9, 0.999), eps: float = 1e-8):
        self.params = [p for p in params if p.requires_grad]
        self.lr, self.weight_decay, self.betas, self.eps = lr, weight_decay, betas, eps
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]
        self.t = 0

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        self.t += 1
        b1, b2 = self.betas
        c1, c2 = 1 - b1**self.t, math.sqrt(1 - b2**self.t)
        for p, m, v in zip(self.params, self.m, self.v, strict=True):
            if p.grad is None:
                continue
            p.mul_(1 - self.lr * self.weight_decay)
            m.lerp_(p.grad, 1 - b1)
            v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
            p.addcdiv_(m, (v.sqrt() / c2).add_(self.eps), value=-self.lr / c1)


def _token_screen(Xs: torch.Tensor, Ys: torch.Tensor, groups) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-validated ridge R^2 of every token alone (tokens, targets), and every target's ridge weights
    (targets, features) from its best token."""
    n = Xs.shape[0]
    n_groups = n if groups is None else len(np.unique(groups))
    if n_groups < 4:
        raise ValueError(f"init='ridge' cross-validates per-token ridge fits on the training part, which has "
                         f"{n_groups} {'samples' if groups is None else 'groups'}; it needs at least 4: use more "
                         "samples, a smaller val_fraction, or init='random'")
    folds = make_folds(n, min(5, n_groups // 2), groups)
    scores, w = [], None
    for t in range(Xs.shape[1]):
        res = solve_ridge_cv(Xs[:, t, :], Ys, DEFAULT_ALPHAS, folds, fit_intercept=True, progress=False)
        if w is None:
            w = res.coef.T.clone()
        else:
            better = res.best_score > torch.stack(scores).max(0).values
            w[better] = res.coef.T[better]
        scores.append(res.best_score)
    return torch.stack(scores), w


def _ridge_init(module: _AttentionModule, scores: torch.Tensor, w: torch.Tensor) -> None:
    """Start each target's attention at its tokens' cross-validated R^2 (normalised; 1% of the best for tokens
    that predict nothing) and its readout at the ridge weights ``w`` (targets, features) of its best token."""
    s = scores.T.clamp_min(0)  # (targets, tokens)
    eps = 0.01 * s.max(1, keepdim=True).values + 1e-8
    n_heads = module.readout.shape[1]
    with torch.no_grad():
        if module.pos is not None:
            module.pos.copy_(torch.log(s + eps)[:, None, :].expand_as(module.pos).to(module.pos))
        module.readout.copy_((w / n_heads)[:, None, :].expand_as(module.readout).to(module.readout))


def _validation_split(n: int, val_fraction: float, groups, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) indices: ``val_fraction`` of the samples (of the groups, kept whole) held out at random."""
    if groups is None:
        codes = np.arange(n)
    else:
        g = np.asarray(groups)
        if g.shape != (n,):
            raise ValueError(f"groups must have one label per sample ({n}), got shape {g.shape}")
        codes = pd.factorize(g)[0]
    n_groups = int(codes.max()) + 1
    n_val = int(round(val_fraction * n_groups))
    if n_val < 1 or n_groups - n_val < 2:
        what = "samples" if groups is None else "groups"
        raise ValueError(f"val_fraction={val_fraction} of {n_groups} {what} leaves {n_val} for validation and "
                         f"{n_groups - n_val} for training; early stopping needs at least 1 and 2: use more "
                         "samples or change val_fraction")
    val_groups = np.zeros(n_groups, dtype=bool)
    val_groups[rng.permutation(n_groups)[:n_val]] = True
    is_val = val_groups[codes]
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


class AttentionReadout(MultiOutputMixin, RegressorMixin, BaseEstimator):
    """Encoding model from token / patch activations to many targets through learned per-target attention.

    For every target ``v`` (voxel, channel) and head ``h`` a learned query ``q[v, h]`` attends over the tokens
    of a stimulus: ``a[v, h, t] = softmax_t(q[v, h] . W_k[h]^T x[t] / sqrt(key_dim) + p[v, h, t])``, with a key
    projection ``W_k`` shared by all targets (content: *what* a token shows) and, with ``positional``, a learned
    logit per target and token position (*where*: a receptive field over patches, as the relative position
    biases of vision transformers). The target is read out of its attended tokens by its own linear weights:
    ``y[v] = sum_h sum_t a[v, h, t] (w[v, h] . x[t]) + b[v]``.

    Features (per feature, over samples and tokens) and targets are standardised on the training samples.
    Training minimises the mean squared error with AdamW (Adam with decoupled weight decay), full batch by
    default, and stops early: ``val_fraction`` of the training samples (of the ``groups``, kept whole) are held
    out, and the weights of the epoch with the lowest validation loss are restored. With ``init="ridge"`` the
    positional logits start at the log of each token's own cross-validated ridge R^2 for the target (so the
    attention starts on the tokens that predict it) and the readout at the ridge weights of the best token;
    from a uniform start the gradient that should move attention to the right token is diluted ``n_tokens``
    times and drowned by sampling noise once there are many tokens.

    Use it with :func:`neurobridge.encoding.fit_encoding` like any regressor: pass features with dims
    ``("stimulus", "token", "unit")`` (or ``"space"``; extract with ``pooling="none"``) in that order and
    ``n_tokens=``, since ``fit_encoding`` flattens them token-major. Scores then come from the same outer
    cross-validation (and :func:`noise_ceiling` / :func:`normalized_score`) as ridge; ``return_weights`` is not
    available (there is no ``coef_``).

    Parameters
    ----------
    n_heads : int
        Attention heads per target.
    key_dim : int
        Size of queries and keys of the content attention.
    n_tokens : int, optional
        Tokens per sample when ``X`` comes flattened as ``(n_samples, n_tokens * n_features)``, token-major (all
        features of token 0, then token 1, ...), as :func:`fit_encoding` passes ``(stimulus, token, unit)``
        features. Not needed for 3-d or labelled ``X``.
    positional : bool
        Learn a per-target logit for every token position (needed to localise when token contents are
        exchangeable); ``False`` leaves content attention only.
    init : {"ridge", "random"}
        Start of the positional logits and readout: from per-token ridge fits (on the training part) or
        uniform attention and small random readouts.
    lr : float
        AdamW learning rate.
    max_epochs : int
        Most passes over the training samples.
    patience : int or None
        Stop after this many epochs without a lower validation loss; ``None`` trains ``max_epochs`` (the best
        epoch is still restored).
    val_fraction : float
        Fraction of the training samples (or groups) held out for early stopping, in (0, 1).
    weight_decay : float
        Decoupled weight decay of AdamW, on all weights.
    batch_size : int, optional
        Samples per optimisation step, shuffled every epoch; ``None`` (default): one full-batch step per epoch.
    random_state : int, numpy Generator or None
        Seeds the initialisation, the validation split and the shuffling; an int gives identical fits.
    device : str or torch.device, optional
        Where to train; default the tensor's device, else the configured one (``nb.config_context``).
    progress : bool, optional
        tqdm bar over epochs showing the validation loss; ``None``: only when someone watches.

    Attributes
    ----------
    module_ : torch.nn.Module
        The fitted network (best epoch), on ``device``, in the configured dtype.
    attention_ : array, shape (n_targets, n_tokens)
        Attention of every target over tokens, averaged over heads and the training samples.
    best_epoch_ : int
        Epoch (from 0) of the lowest validation loss, whose weights were restored.
    n_epochs_ : int
        Epochs trained.
    train_loss_, val_loss_ : array, shape (n_epochs_,)
        Mean squared error (standardised targets) per epoch: training (before the epoch's last step) and
        validation (after it).
    best_score_ : array, shape (n_targets,)
        Validation R^2 of every target at the best epoch (the inner score :func:`layer_sweep` selects on).
    train_indices_, val_indices_ : arrays
        The split of the training samples used for early stopping.
    n_tokens_, n_token_features_, n_features_in_ : int
        Tokens, features per token, and their product.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(60, 4, 3))                  # (stimulus, token, feature)
    >>> Y = X[:, [0, 3], :] @ np.ones(3)                 # target 0 reads token 0, target 1 token 3
    >>> m = AttentionReadout(lr=0.05, max_epochs=60, progress=False).fit(X, Y)
    >>> m.attention_.argmax(1).tolist()
    [0, 3]
    """

    def __init__(self, n_heads: int = 1, *, key_dim: int = 16, n_tokens: int | None = None, positional: bool = True,
                 init: str = "ridge", lr: float = 1e-2, max_epochs: int = 500, patience: int | None = 20,
                 val_fraction: float = 0.2, weight_decay: float = 1e-4, batch_size: int | None = None,
                 random_state=0, device: str | torch.device | None = None, progress: bool | None = None):
        self.n_heads = n_heads
        self.key_dim = key_dim
        self.n_tokens = n_tokens
        self.positional = positional
        self.init = init
        self.lr = lr
        self.max_epochs = max_epochs
        self.patience = patience
        self.val_fraction = val_fraction
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.random_state = random_state
        self.device = device
        self.progress = progress

    @property
    def coef_(self):
        """Not defined: the readout is not linear in the features (``fit_encoding(return_weights=True)`` needs it)."""
        raise AttributeError("AttentionReadout has no linear coef_; its weights are attention_ (per-target maps "
                             "over tokens) and module_ (the fitted torch module); use return_weights=False")

    # ------------------------------------------------------------------------------------------ inputs
    def _check_params(self) -> None:
        def whole(name, low):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {v!r}")

        whole("n_heads", 1)
        whole("key_dim", 1)
        whole("max_epochs", 1)
        if self.n_tokens is not None:
            whole("n_tokens", 1)
        if self.patience is not None:
            whole("patience", 1)
        if self.batch_size is not None:
            whole("batch_size", 1)
        if self.init not in ("ridge", "random"):
            raise ValueError(f"init must be 'ridge' or 'random', got {self.init!r}")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if not (isinstance(self.weight_decay, (int, float)) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be a number >= 0, got {self.weight_decay!r}")
        if not (isinstance(self.val_fraction, (int, float)) and 0 < self.val_fraction < 1):
            raise ValueError(f"val_fraction must be in (0, 1) (the share of training samples held out for early "
                             f"stopping), got {self.val_fraction!r}")

    def _tokens(self, X, fitting: bool) -> tuple[torch.Tensor, bool, Any]:
        """X as a (n_samples, n_tokens, n_features) tensor; whether the input was a tensor; its numpy dtype."""
        if isinstance(X, xr.DataArray):
            X = _labelled_tokens(X)
        as_torch = isinstance(X, torch.Tensor)
        np_dtype = None
        if not as_torch:
            arr = np.asarray(X)
            if arr.dtype.kind not in "fiub":
                raise TypeError(f"X must hold numbers, got dtype {arr.dtype}")
            np_dtype = arr.dtype if arr.dtype.kind == "f" else np.dtype(np.float64)
            X = arr
        shape = tuple(X.shape)
        n_tok = self.n_tokens if fitting else self.n_tokens_
        if len(shape) == 2:
            if n_tok is None:
                raise ValueError(f"X is 2-d {shape}; AttentionReadout needs tokens: pass X as (n_samples, n_tokens, "
                                 "n_features), a DataArray with a 'token' or 'space' dim, or flattened token-major "
                                 "features with AttentionReadout(n_tokens=...)")
            if shape[1] % n_tok:
                raise ValueError(f"X has {shape[1]} columns, not a multiple of n_tokens={n_tok}; flattened X must "
                                 "be (n_samples, n_tokens * n_features)")
            X = X.reshape(shape[0], n_tok, shape[1] // n_tok)
        elif len(shape) == 3:
            if n_tok is not None and shape[1] != n_tok:
                raise ValueError(f"X has {shape[1]} tokens (axis 1), expected n_tokens={n_tok}")
        else:
            raise ValueError(f"X must be (n_samples, n_tokens, n_features) or flattened (n_samples, n_tokens * "
                             f"n_features), got shape {shape}")
        if X.shape[0] < 1 or X.shape[2] < 1:
            raise ValueError(f"X has an empty axis: shape {tuple(X.shape)}")
        if not fitting and tuple(X.shape[1:]) != (self.n_tokens_, self.n_token_features_):
            raise ValueError(f"X has {X.shape[1]} tokens x {X.shape[2]} features, but {type(self).__name__} was "
                             f"fitted on {self.n_tokens_} x {self.n_token_features_}")
        check_finite(X, "X")
        if fitting:
            device = resolve_device(X, self.device)
            dtype = resolve_dtype(X.dtype if as_torch and X.is_floating_point() else None)
        else:
            device, dtype = self._device, self._dtype
        return as_tensor(X, device=device, dtype=dtype), as_torch, np_dtype

    def _out(self, t: torch.Tensor, as_torch: bool, np_dtype):
        if as_torch:
            return t
        out = t.detach().cpu().numpy()
        return out.astype(np_dtype, copy=False) if np_dtype is not None else out

    def _standardised(self, Xt: torch.Tensor) -> torch.Tensor:
        return (Xt - self._x_mean) / self._x_std

    def _chunks(self, n: int) -> list[slice]:
        step = max(1, _CHUNK_ELEMENTS // max(1, self._n_targets * self.n_heads * self.n_tokens_))
        return [slice(i, min(i + step, n)) for i in range(0, n, step)]

    # -------------------------------------------------------------------------------------------- fit
    def fit(self, X, y, groups=None):
        """Fit on ``X`` (n_samples, n_tokens, n_features) (or flattened with ``n_tokens``, or a labelled
        ``(sample, token|space, unit)`` DataArray) and ``y`` (n_samples[, n_targets]); ``groups`` keep samples
        together in the early-stopping split (stimulus ids of repeated trials). Returns self."""
        self._check_params()
        Xt, self._torch, _ = self._tokens(X, fitting=True)
        n, n_tok, n_feat = Xt.shape
        Yt = as_tensor(y if isinstance(y, torch.Tensor) else np.asarray(y, dtype=float), device=Xt.device,
                       dtype=Xt.dtype)
        if Yt.ndim not in (1, 2) or Yt.shape[0] != n:
            raise ValueError(f"y must be (n_samples,) or (n_samples, n_targets) with n_samples={n} as X, got shape "
                             f"{tuple(Yt.shape)}")
        check_finite(Yt, "y")
        self._one_d = Yt.ndim == 1
        Yt = Yt[:, None] if self._one_d else Yt
        if Yt.shape[1] < 1:
            raise ValueError("y has no targets (shape (n_samples, 0))")
        self.n_tokens_, self.n_token_features_ = int(n_tok), int(n_feat)
        self.n_features_in_ = int(n_tok * n_feat)
        self._n_targets = int(Yt.shape[1])
        self._device, self._dtype = Xt.device, Xt.dtype
        # planned for 100 epochs, a typical early-stopped run
        with threads_for(self._flops(n) * min(int(self.max_epochs), 100), Xt.device):
            self._fit(Xt, Yt, groups)
        return self

    def _flops(self, n: int) -> float:
        """Rough floating-point operations of one training pass (forward and backward) over ``n`` samples."""
        return 6.0 * n * self.n_tokens_ * self._n_targets * self.n_heads * (self.n_token_features_ + self.key_dim)

    def _fit(self, Xt: torch.Tensor, Yt: torch.Tensor, groups) -> None:
        n, n_tok, n_feat = Xt.shape
        rng = np.random.default_rng(self.random_state)
        tr, va = _validation_split(n, float(self.val_fraction), groups, rng)
        self.train_indices_, self.val_indices_ = tr, va
        generator = torch.Generator().manual_seed(int(rng.integers(2**63 - 1)))
        tr_t, va_t = torch.as_tensor(tr, device=Xt.device), torch.as_tensor(va, device=Xt.device)
        self._x_mean = Xt[tr_t].mean((0, 1))
        self._x_std = Xt[tr_t].std((0, 1)).clamp_min(1e-12)
        self._y_mean = Yt[tr_t].mean(0)
        self._y_std = Yt[tr_t].std(0).clamp_min(1e-12)
        Xs = self._standardised(Xt)
        Ys = (Yt - self._y_mean) / self._y_std

        module = _AttentionModule(n_tok, n_feat, self._n_targets, int(self.n_heads), int(self.key_dim),
                                  bool(self.positional), generator).to(device=Xt.device, dtype=Xt.dtype)
        Xtr, Ytr, Xva, Yva = Xs[tr_t], Ys[tr_t], Xs[va_t], Ys[va_t]
        if self.init == "ridge":
            g_tr = None if groups is None else np.asarray(groups)[tr]
            _ridge_init(module, *_token_screen(Xtr, Ytr, g_tr))
        opt = _AdamW(module.parameters(), lr=float(self.lr), weight_decay=float(self.weight_decay))
        train_loss, val_loss = [], []
        best, best_epoch, best_state, wait = math.inf, -1, None, 0
        bar = progress_bar(total=int(self.max_epochs), desc="attention readout", unit="epoch", progress=self.progress)
        with bar:
            for epoch in range(int(self.max_epochs)):
                module.train()
                train_loss.append(self._epoch(module, opt, Xtr, Ytr, generator))
                module.eval()
                with torch.no_grad():
                    loss = self._mse(module, Xva, Yva)
                val_loss.append(loss)
                if loss < best:
                    best, best_epoch, wait = loss, epoch, 0
                    best_state = copy.deepcopy(module.state_dict())
                else:
                    wait += 1
                bar.update(1)
                bar.set_postfix(val_loss=f"{loss:.4g}", best=f"{best:.4g}", refresh=False)
                if self.patience is not None and wait >= self.patience:
                    break
        if best_state is None:  # the validation loss was never finite
            raise ValueError("training diverged (non-finite validation loss from the first epoch); lower lr")
        module.load_state_dict(best_state)
        module.eval()
        self.module_ = module
        self.train_loss_ = np.asarray(train_loss)
        self.val_loss_ = np.asarray(val_loss)
        self.best_epoch_ = best_epoch
        self.n_epochs_ = len(val_loss)
        score = r2_score(Yva, self._forward(Xva))
        self.best_score_ = float(score[0]) if self._one_d else self._out(score, self._torch, None)
        att = self._attention(Xs).mean((0, 2))  # (targets, tokens)
        self.attention_ = self._out(att, self._torch, None)

    def _forward(self, Xs: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([self.module_(Xs[s]) for s in self._chunks(len(Xs))])

    def _mse(self, module, Xs: torch.Tensor, Ys: torch.Tensor) -> float:
        total = sum(float((module(Xs[s]) - Ys[s]).square().sum()) for s in self._chunks(len(Xs)))
        return total / Ys.numel()

    def _epoch(self, module, opt, Xs: torch.Tensor, Ys: torch.Tensor, generator: torch.Generator) -> float:
        """One pass: a full-batch step (gradients accumulated over memory chunks) or shuffled mini-batches."""
        n = len(Xs)
        if self.batch_size is None or self.batch_size >= n:
            batches = [torch.arange(n, device=Xs.device)]
        else:
            order = torch.randperm(n, generator=generator).to(Xs.device)
            batches = list(order.split(int(self.batch_size)))
        total = 0.0
        for idx in batches:
            opt.zero_grad()
            xb, yb = Xs[idx], Ys[idx]
            denom = yb.numel()
            for s in self._chunks(len(idx)):
                loss = (module(xb[s]) - yb[s]).square().sum() / denom
                loss.backward()
                total += float(loss.detach()) * denom
            opt.step()
        return total / Ys.numel()

    # ---------------------------------------------------------------------------------------- predict
    def predict(self, X):
        """Predict targets, shape (n_samples, n_targets) (or (n_samples,) after a 1-d fit); X as in :meth:`fit`.

        Returns numpy for numpy input and a tensor on the model's device for tensor input.
        """
        check_is_fitted(self, "module_")
        Xt, as_torch, np_dtype = self._tokens(X, fitting=False)
        with threads_for(self._flops(len(Xt)) / 3, Xt.device):
            pred = self._forward(self._standardised(Xt)) * self._y_std + self._y_mean
        if self._one_d:
            pred = pred[:, 0]
        return self._out(pred, as_torch, np_dtype)

    def _attention(self, Xs: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([self.module_.attention(Xs[s]) for s in self._chunks(len(Xs))])

    def attention(self, X, *, average_heads: bool = True):
        """Attention of every target over the tokens of every sample of ``X`` (as in :meth:`fit`).

        Parameters
        ----------
        X : array, tensor or DataArray
        average_heads : bool
            Average over heads (default) or keep them.

        Returns
        -------
        array or tensor
            ``(n_samples, n_targets, n_tokens)``, or ``(n_samples, n_targets, n_heads, n_tokens)``; sums to 1
            over tokens.

        Examples
        --------
        >>> rng = np.random.default_rng(0); X = rng.normal(size=(40, 3, 2))
        >>> m = AttentionReadout(max_epochs=5, progress=False).fit(X, X[:, 1, 0])
        >>> m.attention(X).shape, m.attention(X, average_heads=False).shape
        ((40, 1, 3), (40, 1, 1, 3))
        """
        check_is_fitted(self, "module_")
        Xt, as_torch, np_dtype = self._tokens(X, fitting=False)
        with threads_for(self._flops(len(Xt)) / 3, Xt.device):
            att = self._attention(self._standardised(Xt))
        if average_heads:
            att = att.mean(2)
        return self._out(att, as_torch, np_dtype)


def _labelled_tokens(X: xr.DataArray) -> np.ndarray:
    """A ``(sample, token|space, unit)`` DataArray, in any dim order, as a (sample, token, unit) array."""
    tok = [d for d in X.dims if d in _TOKEN_DIMS]
    if len(tok) != 1 or X.ndim != 3:
        raise ValueError(f"a labelled X needs 3 dims, one of them 'token' or 'space' (plus the sample dim and "
                         f"'unit'), found dims {tuple(X.dims)}; extract with pooling='none' to keep tokens")
    unit = "unit" if "unit" in X.dims else None
    rest = [d for d in X.dims if d not in (tok[0], unit)]
    if unit is None:
        if "stimulus" not in rest:
            raise ValueError(f"cannot tell the sample dim from the feature dim in {tuple(X.dims)}; name the "
                             "features 'unit'")
        unit = next(d for d in rest if d != "stimulus")
        rest = ["stimulus"]
    data = X.transpose(rest[0], tok[0], unit).data
    return np.asarray(data.compute() if hasattr(data, "compute") else data)
