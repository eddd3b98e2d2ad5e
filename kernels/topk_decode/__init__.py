"""Top-k sparse decode (and its transpose, the sparse encode at active latents), differentiable.

``topk_decode(values, indices, W_dec, b_dec)[b] = sum_j values[b, j] * W_dec[indices[b, j]] + b_dec``: the decoder
of a TopK / BatchTopK sparse autoencoder, computed as a gather of ``k`` dictionary rows per input instead of a dense
``(batch, n_latents) @ (n_latents, d)`` product. Its backward touches only the active rows: the gradient w.r.t.
the values is the dot of ``grad_out`` with the ``k`` gathered rows, the gradient w.r.t. ``W_dec`` a scatter-add
into the active rows. ``topk_encode`` is the transpose (pre-activations of the active latents only), with the same
primitives in its backward; an SAE uses it to make the encoder's weight gradient sparse as well.

Dispatch per call (DESIGN.md §5): the Triton kernels run when every tensor is on CUDA and triton imports;
otherwise the torch reference runs. ``NEUROBRIDGE_KERNELS=reference`` forces the reference and
``NEUROBRIDGE_KERNELS=triton`` forces Triton (e.g. on CPU tensors under ``TRITON_INTERPRET=1``, for tests).
The specification, dtypes and accumulation rules are in ``reference.py``.

Examples
--------
>>> import torch
>>> from neurobridge.kernels.topk_decode import topk_decode
>>> W = torch.eye(4, requires_grad=True)
>>> out = topk_decode(torch.tensor([[1.0, 2.0]]), torch.tensor([[0, 3]]), W)
>>> out.tolist()
[[1.0, 0.0, 0.0, 2.0]]
>>> out.sum().backward()
>>> W.grad.sum(1).tolist()  # only the two active rows get a gradient
[4.0, 0.0, 0.0, 8.0]
"""

from __future__ import annotations

import torch

from .._dispatch import choose_implementation
from .reference import REFERENCE_OPS, TopKDecode, TopKEncode, check_code

__all__ = ["topk_decode", "topk_encode", "implementation"]

_last_used: str | None = None


def implementation(*tensors: torch.Tensor | None, device: str | torch.device | None = None) -> tuple[str, str]:
    """Which implementation a call on these tensors (or on ``device``) would use, and why.

    Returns
    -------
    (name, reason) : tuple of str
        ``name`` is ``"triton"`` or ``"reference"``.

    Examples
    --------
    >>> implementation(torch.zeros(1, 1), device="cpu")[0] in ("reference", "triton")
    True
    """
    return choose_implementation(*tensors, device=device)


def _ops(*tensors):
    global _last_used
    name, _ = implementation(*tensors)
    _last_used = name
    if name == "triton":
        from .triton import TRITON_OPS

        return TRITON_OPS
    return REFERENCE_OPS


def topk_decode(values: torch.Tensor, indices: torch.Tensor, W_dec: torch.Tensor,
                b_dec: torch.Tensor | None = None) -> torch.Tensor:
    """Sparse decode ``out[b] = sum_j values[b, j] * W_dec[indices[b, j]] + b_dec``, differentiable.

    Parameters
    ----------
    values : torch.Tensor, shape (batch, k)
        Latent activations of the active latents (zeros are allowed: they add nothing and their index gets no
        gradient contribution beyond zero).
    indices : torch.Tensor, shape (batch, k), int64 or int32
        Active latents, in ``[0, n_latents)``; an index may repeat within a row (repeats add up).
    W_dec : torch.Tensor, shape (n_latents, d)
        Decoder dictionary, one row per latent.
    b_dec : torch.Tensor, shape (d,), optional
        Decoder bias.

    Returns
    -------
    torch.Tensor, shape (batch, d)
        In the promoted dtype of ``values`` and ``W_dec``; accumulated in float32 (float64 for float64 inputs).
        Gradients flow to ``values``, ``W_dec`` and ``b_dec`` (only the active rows of ``W_dec`` get nonzero
        gradient).

    Raises
    ------
    ValueError
        Mismatched shapes, non-integer indices, indices outside ``[0, n_latents)``, tensors on several devices.

    Examples
    --------
    >>> W = torch.randn(1024, 8)
    >>> values, indices = torch.rand(5, 3), torch.randint(0, 1024, (5, 3))
    >>> dense = torch.zeros(5, 1024).scatter_add_(1, indices, values)
    >>> torch.allclose(topk_decode(values, indices, W), dense @ W, atol=1e-5)
    True
    """
    check_code(values, indices, W_dec, b_dec, op="topk_decode")
    return TopKDecode.apply(values, indices, W_dec, b_dec, _ops(values, indices, W_dec, b_dec))


def topk_encode(x: torch.Tensor, indices: torch.Tensor, W_enc: torch.Tensor,
                b_enc: torch.Tensor | None = None) -> torch.Tensor:
    """Encoder pre-activations at the active latents only: ``out[b, j] = x[b] . W_enc[indices[b, j]] + b_enc[...]``.

    The transpose of :func:`topk_decode`. The selection of ``indices`` (top-k) is not differentiable; given it,
    this is the part of ``x @ W_enc.T + b_enc`` that a TopK SAE's loss depends on, and its backward is sparse:
    ``W_enc`` gets a gradient in the active rows only, ``x`` gets ``topk_decode(grad, indices, W_enc)``.

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
    >>> x, W, b = torch.randn(4, 8), torch.randn(32, 8), torch.randn(32)
    >>> pre = x @ W.T + b
    >>> idx = pre.topk(3, dim=1).indices
    >>> torch.allclose(topk_encode(x, idx, W, b), pre.gather(1, idx), atol=1e-5)
    True
    """
    check_code(x, indices, W_enc, b_enc, op="topk_encode", first="x")
    return TopKEncode.apply(x, indices, W_enc, b_enc, _ops(x, indices, W_enc, b_enc))
