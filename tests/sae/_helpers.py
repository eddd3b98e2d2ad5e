"""Helpers shared by the SAE tests."""

from __future__ import annotations

import torch

from neurobridge.sae import SAE


def state(sae: SAE) -> dict[str, torch.Tensor]:
    """A detached copy of the SAE's parameters and buffers."""
    return {k: v.detach().clone() for k, v in sae.state_dict().items()}


def assert_same_state(a: SAE, b: SAE) -> None:
    """Bit-identical state dicts (same keys, dtypes and values)."""
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert sa[key].dtype == sb[key].dtype, key
        assert torch.equal(sa[key], sb[key]), key
