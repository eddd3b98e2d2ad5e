"""Conversions shared by the statistics functions: array-likes in, the same kind out."""

from __future__ import annotations

import numpy as np
import torch
import xarray as xr

from ..core import as_tensor, check_finite

__all__: list[str] = []


def to_tensor(x, *, dtype=torch.float64, name: str = "x", allow_nan: bool = False) -> torch.Tensor:
    """A floating tensor from numpy / torch / xarray / lists; checks for non-finite values."""
    t = as_tensor(x, dtype=dtype) if not (isinstance(x, torch.Tensor) and x.is_floating_point()) else x
    if not allow_nan:
        check_finite(t, name, fix="remove or impute them before testing")
    return t


def like(result: torch.Tensor, template):
    """Return ``result`` as the kind of ``template``: numpy array, torch tensor or DataArray (coords kept)."""
    if isinstance(template, torch.Tensor):
        return result
    arr = result.detach().cpu().numpy()
    if isinstance(template, xr.DataArray):
        return template.copy(data=arr.reshape(template.shape))
    return arr


def generator(seed) -> torch.Generator:
    """A CPU ``torch.Generator`` from ``None`` (fresh entropy), an int, a numpy Generator or a torch Generator."""
    if isinstance(seed, torch.Generator):
        return seed
    g = torch.Generator()
    if seed is None:
        g.seed()
    elif isinstance(seed, np.random.Generator):
        g.manual_seed(int(seed.integers(0, 2**63 - 1)))
    else:
        g.manual_seed(int(seed))
    return g
