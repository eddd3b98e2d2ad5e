"""Activation functions with straight-through pseudo-derivatives (JumpReLU SAEs) and the sparsity penalties.

JumpReLU (Rajamanoharan et al. 2024): ``jumprelu(z, theta) = z * H(z - theta)`` and the step ``H(z - theta)``
are piecewise constant in ``theta``; their pseudo-derivatives w.r.t. ``theta`` are those of a rectangle-kernel
density estimate of bandwidth ``eps``:

* ``d jumprelu / d theta = -(theta / eps) * K((z - theta) / eps)``;
* ``d H / d theta = -(1 / eps) * K((z - theta) / eps)``,

with ``K(u) = 1{|u| < 1/2}``. ``jumprelu`` passes the ordinary gradient ``H(z - theta)`` to ``z``; ``step`` passes
none to ``z``. Equivalently, they are the exact ``theta``-derivatives of the kernel-smoothed functions
``H_eps(s) = clip(s / eps + 1/2, 0, 1)`` (for the step) and of a jump smoothed over the window
``|z - theta| < eps / 2`` (for ``jumprelu``), which is what the tests check by finite differences.
"""

from __future__ import annotations

import torch

__all__ = ["rectangle", "jumprelu", "step", "decoder_norm_l1"]


def rectangle(u: torch.Tensor) -> torch.Tensor:
    """The rectangle kernel ``K(u) = 1{-1/2 < u < 1/2}`` in ``u``'s dtype.

    Examples
    --------
    >>> rectangle(torch.tensor([-1.0, -0.25, 0.0, 0.5])).tolist()
    [0.0, 1.0, 1.0, 0.0]
    """
    return ((u > -0.5) & (u < 0.5)).to(u.dtype)


def _threshold_grad(grad: torch.Tensor, weight: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    g = grad * weight
    # sum over the broadcast (batch) dims, back to threshold's shape
    while g.ndim > threshold.ndim:
        g = g.sum(0)
    for dim, size in enumerate(threshold.shape):
        if size == 1 and g.shape[dim] != 1:
            g = g.sum(dim, keepdim=True)
    return g


class _JumpReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z, threshold, bandwidth):
        ctx.save_for_backward(z, threshold)
        ctx.bandwidth = bandwidth
        return z * (z > threshold).to(z.dtype)

    @staticmethod
    def backward(ctx, grad):
        z, threshold = ctx.saved_tensors
        eps = ctx.bandwidth
        gz = grad * (z > threshold).to(grad.dtype) if ctx.needs_input_grad[0] else None
        gt = None
        if ctx.needs_input_grad[1]:
            gt = _threshold_grad(grad, -(threshold / eps) * rectangle((z - threshold) / eps), threshold)
        return gz, gt, None


class _Step(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z, threshold, bandwidth):
        ctx.save_for_backward(z, threshold)
        ctx.bandwidth = bandwidth
        return (z > threshold).to(z.dtype)

    @staticmethod
    def backward(ctx, grad):
        z, threshold = ctx.saved_tensors
        eps = ctx.bandwidth
        gz = torch.zeros_like(z) if ctx.needs_input_grad[0] else None
        gt = None
        if ctx.needs_input_grad[1]:
            gt = _threshold_grad(grad, -(1.0 / eps) * rectangle((z - threshold) / eps), threshold)
        return gz, gt, None


def _check_bandwidth(bandwidth: float) -> float:
    bandwidth = float(bandwidth)
    if not bandwidth > 0:
        raise ValueError(f"bandwidth must be > 0 (the width of the kernel of the pseudo-derivative), got {bandwidth}")
    return bandwidth


def jumprelu(z: torch.Tensor, threshold: torch.Tensor, bandwidth: float) -> torch.Tensor:
    """JumpReLU ``z * H(z - threshold)`` with the straight-through pseudo-derivative for ``threshold``.

    Parameters
    ----------
    z : torch.Tensor, shape (..., n_latents)
        Pre-activations.
    threshold : torch.Tensor, shape (n_latents,) (broadcast against ``z``)
        Positive thresholds.
    bandwidth : float
        Kernel width ``eps`` of the pseudo-derivative ``-(threshold / eps) * K((z - threshold) / eps)``.

    Returns
    -------
    torch.Tensor, shape of ``z``

    Examples
    --------
    >>> t = torch.tensor([1.0], requires_grad=True)
    >>> out = jumprelu(torch.tensor([[0.98], [1.5], [0.2]]), t, 0.1)
    >>> out.flatten().tolist()
    [0.0, 1.5, 0.0]
    >>> out.sum().backward(); t.grad.tolist()  # only z = 0.98 lies in the window |z - t| < 0.05
    [-10.0]
    """
    return _JumpReLU.apply(z, threshold, _check_bandwidth(bandwidth))


def step(z: torch.Tensor, threshold: torch.Tensor, bandwidth: float) -> torch.Tensor:
    """Heaviside step ``H(z - threshold)`` (1 where ``z > threshold``) with the pseudo-derivative
    ``-(1 / eps) * K((z - threshold) / eps)`` for ``threshold`` and none for ``z``: the L0 term of a JumpReLU SAE.

    Examples
    --------
    >>> t = torch.tensor([1.0], requires_grad=True)
    >>> out = step(torch.tensor([[0.98], [1.5], [1.04]]), t, 0.1)
    >>> out.flatten().tolist()
    [0.0, 1.0, 1.0]
    >>> out.sum().backward(); t.grad.tolist()  # two of the three are in the window: 2 * -(1 / 0.1)
    [-20.0]
    """
    return _Step.apply(z, threshold, _check_bandwidth(bandwidth))


def decoder_norm_l1(f: torch.Tensor, W_dec: torch.Tensor) -> torch.Tensor:
    """The decoder-norm-weighted L1 penalty ``mean_b sum_i f[b, i] * ||W_dec[i]||`` (Anthropic's April 2024 update).

    Parameters
    ----------
    f : torch.Tensor, shape (batch, n_latents)
        Non-negative latent activations.
    W_dec : torch.Tensor, shape (n_latents, d)
        Decoder rows.

    Examples
    --------
    >>> W = torch.tensor([[3.0, 4.0], [0.0, 2.0]])  # row norms 5 and 2
    >>> decoder_norm_l1(torch.tensor([[1.0, 0.0], [1.0, 2.0]]), W).item()  # (5 + (5 + 4)) / 2
    7.0
    """
    return (f * W_dec.norm(dim=1)).sum(-1).mean()
