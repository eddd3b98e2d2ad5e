"""Reference implementation (pure torch) of the top-k sparse decode and its transpose: the specification.

A k-sparse code is a pair ``(values, indices)`` of shape ``(batch, k)``: row ``b`` has value ``values[b, j]`` at
latent ``indices[b, j]`` (an index may repeat within a row; repeats add up). With a dictionary ``W`` of shape
``(n_latents, d)`` (one row per latent) the three sparse primitives are

* ``spmm(values, indices, W)[b] = sum_j values[b, j] * W[indices[b, j]]``  -- the decode, ``(batch, d)``;
* ``sddmm(g, indices, W)[b, j] = g[b] . W[indices[b, j]]``  -- dots at the active indices only, ``(batch, k)``;
* ``spmm_t(values, indices, g, n)[l] = sum_{(b, j): indices[b, j] = l} values[b, j] * g[b]``  -- the transpose
  scatter-add, ``(n, d)``, nonzero only in the active rows.

They compose into two differentiable ops (``torch.autograd.Function``) whose backward passes touch only the
active rows:

* ``topk_decode(values, indices, W_dec, b_dec) = spmm(values, indices, W_dec) + b_dec``; grads: values
  ``sddmm(grad, indices, W_dec)``, W_dec ``spmm_t(values, indices, grad)``, b_dec ``grad.sum(0)``.
* ``topk_encode(x, indices, W_enc, b_enc) = sddmm(x, indices, W_enc) + b_enc[indices]`` (pre-activations of the
  active latents only); grads: x ``spmm(grad, indices, W_enc)``, W_enc ``spmm_t(grad, indices, x)``, b_enc the
  scatter-add of ``grad`` into the active latents.

Arithmetic is float32 (float64 when any input is float64); results are cast back to the promoted input dtype, and
each gradient to its input's dtype. The Triton implementation (``triton.py``) provides the same three primitives.
"""

from __future__ import annotations

import types

import torch
import torch.nn.functional as F

__all__ = ["spmm", "sddmm", "spmm_t", "topk_decode", "topk_encode", "TopKDecode", "TopKEncode", "check_code"]


def _compute_dtype(*tensors: torch.Tensor | None) -> torch.dtype:
    return torch.float64 if any(t is not None and t.dtype == torch.float64 for t in tensors) else torch.float32


def spmm(values: torch.Tensor, indices: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """Decode: ``out[b] = sum_j values[b, j] * W[indices[b, j]]``, float32/64 ``(batch, d)``.

    Examples
    --------
    >>> W = torch.eye(3)
    >>> spmm(torch.tensor([[2.0, 1.0]]), torch.tensor([[0, 2]]), W).tolist()
    [[2.0, 0.0, 1.0]]
    """
    dt = _compute_dtype(values, W)
    return F.embedding_bag(indices.long(), W.to(dt), per_sample_weights=values.to(dt), mode="sum")


def _sddmm_chunked(g: torch.Tensor, indices: torch.Tensor, W: torch.Tensor, rows: int = 16) -> torch.Tensor:
    out = torch.empty(indices.shape, dtype=g.dtype, device=g.device)
    for s in range(0, indices.shape[0], rows):
        out[s:s + rows] = torch.linalg.vecdot(W[indices[s:s + rows]], g[s:s + rows, None, :])
    return out


def sddmm(g: torch.Tensor, indices: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """Dots at the active indices only: ``out[b, j] = g[b] . W[indices[b, j]]``, float32/64 ``(batch, k)``.

    Nothing of size ``batch x n_latents`` is formed.

    Examples
    --------
    >>> W = torch.arange(6.0).reshape(3, 2)
    >>> sddmm(torch.tensor([[1.0, 1.0]]), torch.tensor([[2, 0]]), W).tolist()
    [[9.0, 1.0]]
    """
    dt = _compute_dtype(g, W)
    g, W = g.to(dt), W.to(dt)
    batch, k = indices.shape
    idx = indices.long()
    if batch * k == 0:
        return torch.zeros(batch, k, dtype=dt, device=g.device)
    op = getattr(torch.ops.aten, "_embedding_bag_per_sample_weights_backward", None)
    if op is not None:  # the vector-Jacobian product of embedding_bag w.r.t. its weights is exactly this gathered dot
        try:
            offsets = torch.arange(0, batch * k, k, device=g.device)
            bag = torch.arange(batch, device=g.device).repeat_interleave(k)
            return op(g, W, idx.reshape(-1), offsets, bag, 0, -1).view(batch, k)
        except (RuntimeError, TypeError):  # pragma: no cover - another torch signature: use the plain version
            pass
    return _sddmm_chunked(g, idx, W)


def spmm_t(values: torch.Tensor, indices: torch.Tensor, g: torch.Tensor, n: int) -> torch.Tensor:
    """Transpose scatter-add: ``out[l] = sum over (b, j) with indices[b, j] == l of values[b, j] * g[b]``.

    Returns a float32/64 ``(n, d)`` tensor, zero outside the active rows. Computed as an ``embedding_bag`` over
    the entries sorted by latent (one bag per latent), so nothing of size ``batch x k x d`` is formed.

    Examples
    --------
    >>> g = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    >>> spmm_t(torch.tensor([[1.0], [10.0]]), torch.tensor([[1], [1]]), g, 3).tolist()
    [[0.0, 0.0], [31.0, 42.0], [0.0, 0.0]]
    """
    dt = _compute_dtype(values, g)
    batch, k = indices.shape
    flat = indices.reshape(-1).long()
    order = torch.argsort(flat, stable=True)
    rows = torch.div(order, k, rounding_mode="floor")
    counts = torch.bincount(flat, minlength=n)
    offsets = torch.cumsum(counts, 0) - counts
    weights = values.reshape(-1).to(dt)[order]
    return F.embedding_bag(rows, g.to(dt), offsets, per_sample_weights=weights, mode="sum")


REFERENCE_OPS = types.SimpleNamespace(spmm=spmm, sddmm=sddmm, spmm_t=spmm_t, name="reference")
"""The three primitives of this implementation (``triton.py`` provides a namespace with the same names)."""


def check_code(values: torch.Tensor, indices: torch.Tensor, W: torch.Tensor, bias: torch.Tensor | None,
               *, op: str, first: str = "values") -> None:
    """Shapes, dtypes and index range of a sparse code ``(values, indices)`` against a dictionary ``W``."""
    if not isinstance(W, torch.Tensor) or W.ndim != 2:
        shape = tuple(W.shape) if isinstance(W, torch.Tensor) else type(W).__name__
        raise ValueError(f"{op}: expected a dictionary of shape (n_latents, d), got {shape}; store one row per "
                         "latent (transpose a (d, n_latents) matrix with W.T)")
    if not isinstance(indices, torch.Tensor) or indices.ndim != 2:
        shape = tuple(indices.shape) if isinstance(indices, torch.Tensor) else type(indices).__name__
        raise ValueError(f"{op}: expected indices of shape (batch, k), got {shape}; flatten leading dims first "
                         "(indices.reshape(-1, k))")
    if indices.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"{op}: indices must be int64 or int32, got {indices.dtype}; convert with indices.long()")
    if first == "values":
        if tuple(values.shape) != tuple(indices.shape):
            raise ValueError(f"{op}: values has shape {tuple(values.shape)} but indices has "
                             f"{tuple(indices.shape)}; pass one value per index")
    elif values.ndim != 2 or values.shape[0] != indices.shape[0] or values.shape[1] != W.shape[1]:
        raise ValueError(f"{op}: {first} has shape {tuple(values.shape)}, expected (batch, d) = "
                         f"({indices.shape[0]}, {W.shape[1]}) to match indices and the dictionary")
    for name, t in ((first, values), ("W", W), ("bias", bias)):
        if t is not None and not t.is_floating_point():
            raise ValueError(f"{op}: {name} must be floating, got {t.dtype}; convert with .float()")
    if bias is not None:
        want = W.shape[1] if op == "topk_decode" else W.shape[0]
        if bias.ndim != 1 or bias.shape[0] != want:
            raise ValueError(f"{op}: bias has shape {tuple(bias.shape)}, expected ({want},)")
    n = W.shape[0]
    if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= n):
        raise ValueError(f"{op}: indices must lie in [0, {n}) (the dictionary has {n} rows), found "
                         f"[{int(indices.min())}, {int(indices.max())}]; check that the code and the dictionary "
                         "belong to the same SAE")
    devices = {t.device for t in (values, indices, W, bias) if t is not None}
    if len(devices) > 1:
        raise ValueError(f"{op}: tensors are on different devices {sorted(map(str, devices))}; move them to one")


class TopKDecode(torch.autograd.Function):
    """``spmm(values, indices, W_dec) + b_dec`` with the sparse backward (see the module docstring)."""

    @staticmethod
    def forward(ctx, values, indices, W_dec, b_dec, ops):
        out_dtype = torch.promote_types(values.dtype, W_dec.dtype)
        out = ops.spmm(values, indices, W_dec)
        if b_dec is not None:
            out = out + b_dec.to(out.dtype)
        ctx.save_for_backward(values, indices, W_dec)
        ctx.ops, ctx.has_bias = ops, b_dec is not None
        ctx.bias_dtype = b_dec.dtype if b_dec is not None else None
        return out.to(out_dtype)

    @staticmethod
    def backward(ctx, grad_out):
        values, indices, W_dec = ctx.saved_tensors
        ops = ctx.ops
        g_values = g_W = g_b = None
        if ctx.needs_input_grad[0]:
            g_values = ops.sddmm(grad_out, indices, W_dec).to(values.dtype)
        if ctx.needs_input_grad[2]:
            g_W = ops.spmm_t(values, indices, grad_out, W_dec.shape[0]).to(W_dec.dtype)
        if ctx.has_bias and ctx.needs_input_grad[3]:
            g_b = grad_out.sum(0, dtype=_compute_dtype(grad_out)).to(ctx.bias_dtype)
        return g_values, None, g_W, g_b, None


class TopKEncode(torch.autograd.Function):
    """``sddmm(x, indices, W_enc) + b_enc[indices]`` with the sparse backward (see the module docstring)."""

    @staticmethod
    def forward(ctx, x, indices, W_enc, b_enc, ops):
        out_dtype = torch.promote_types(x.dtype, W_enc.dtype)
        out = ops.sddmm(x, indices, W_enc)
        if b_enc is not None:
            out = out + b_enc.to(out.dtype)[indices.long()]
        ctx.save_for_backward(x, indices, W_enc)
        ctx.ops, ctx.has_bias = ops, b_enc is not None
        ctx.bias_dtype = b_enc.dtype if b_enc is not None else None
        return out.to(out_dtype)

    @staticmethod
    def backward(ctx, grad_out):
        x, indices, W_enc = ctx.saved_tensors
        ops = ctx.ops
        g_x = g_W = g_b = None
        if ctx.needs_input_grad[0]:
            g_x = ops.spmm(grad_out, indices, W_enc).to(x.dtype)
        if ctx.needs_input_grad[2]:
            g_W = ops.spmm_t(grad_out, indices, x, W_enc.shape[0]).to(W_enc.dtype)
        if ctx.has_bias and ctx.needs_input_grad[3]:
            dt = _compute_dtype(grad_out)
            g_b = torch.zeros(W_enc.shape[0], dtype=dt, device=grad_out.device)
            g_b.index_add_(0, indices.reshape(-1).long(), grad_out.reshape(-1).to(dt))
            g_b = g_b.to(ctx.bias_dtype)
        return g_x, None, g_W, g_b, None


def topk_decode(values: torch.Tensor, indices: torch.Tensor, W_dec: torch.Tensor,
                b_dec: torch.Tensor | None = None) -> torch.Tensor:
    """Reference sparse decode ``out[b] = sum_j values[b, j] * W_dec[indices[b, j]] + b_dec`` (differentiable).

    Parameters
    ----------
    values : torch.Tensor, shape (batch, k)
    indices : torch.Tensor, shape (batch, k), int64 or int32
    W_dec : torch.Tensor, shape (n_latents, d)
    b_dec : torch.Tensor, shape (d,), optional

    Returns
    -------
    torch.Tensor, shape (batch, d)

    Examples
    --------
    >>> W = torch.eye(4)
    >>> topk_decode(torch.tensor([[1.0, 2.0]]), torch.tensor([[3, 3]]), W).tolist()
    [[0.0, 0.0, 0.0, 3.0]]
    """
    check_code(values, indices, W_dec, b_dec, op="topk_decode")
    return TopKDecode.apply(values, indices, W_dec, b_dec, REFERENCE_OPS)


def topk_encode(x: torch.Tensor, indices: torch.Tensor, W_enc: torch.Tensor,
                b_enc: torch.Tensor | None = None) -> torch.Tensor:
    """Reference encode at the active latents only: ``out[b, j] = x[b] . W_enc[indices[b, j]] + b_enc[indices[b, j]]``.

    Parameters
    ----------
    x : torch.Tensor, shape (batch, d)
    indices : torch.Tensor, shape (batch, k), int64 or int32
    W_enc : torch.Tensor, shape (n_latents, d)
        One row per latent (the layout of ``torch.nn.Linear(d, n_latents).weight``).
    b_enc : torch.Tensor, shape (n_latents,), optional

    Returns
    -------
    torch.Tensor, shape (batch, k)

    Examples
    --------
    >>> W = torch.eye(3)
    >>> topk_encode(torch.tensor([[5.0, 6.0, 7.0]]), torch.tensor([[2, 0]]), W).tolist()
    [[7.0, 5.0]]
    """
    check_code(x, indices, W_enc, b_enc, op="topk_encode", first="x")
    return TopKEncode.apply(x, indices, W_enc, b_enc, REFERENCE_OPS)
