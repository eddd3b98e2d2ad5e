"""The shared input checks: one wording per problem, whatever the array kind."""

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

import neurobridge as nb
from neurobridge.core import SchemaError, check_finite, check_unique


@pytest.mark.parametrize("kind", ["numpy", "torch", "xarray", "dask"])
def test_check_finite_names_count_and_first_position_for_every_array_kind(kind):
    values = np.zeros((3, 4))
    values[1, 2] = np.nan
    values[2, 0] = np.inf
    x = {"numpy": values, "torch": torch.from_numpy(values),
         "xarray": xr.DataArray(values, dims=("trial", "channel")),
         "dask": xr.DataArray(da.from_array(values, chunks=2), dims=("trial", "channel"))}[kind]
    where = "trial=1, channel=2" if kind in ("xarray", "dask") else r"index \(1, 2\)"
    with pytest.raises(SchemaError, match=rf"^brain contains 2 non-finite value\(s\) \(NaN or inf\), first at {where}; drop"):
        check_finite(x, "brain")
    with pytest.raises(ValueError, match="; impute them"):  # SchemaError is a ValueError; fix= replaces the advice
        check_finite(x, "brain", fix="impute them")


def test_check_finite_passes_finite_values_whose_sum_overflows_and_non_float_data():
    huge = np.full(10, 1e308)  # the fast path's sum is inf; the exact test must still pass them
    check_finite(huge)
    check_finite(torch.full((10,), 3e38, dtype=torch.float32))
    check_finite(np.array([1, 2, 3]))
    check_finite(np.array(["a", "b"]))
    check_finite(np.empty((0, 3)))


def test_check_unique_names_the_duplicates_and_treats_rows_as_ids():
    check_unique(["a", "b", "c"])
    with pytest.raises(SchemaError, match=r"^features: duplicated stimulus ids \['a', 'b'\]; average repetitions"):
        check_unique(pd.Index(["a", "b", "a", "b", "a"]), owner="features")
    check_unique(np.array([[0, 0, 1], [0, 1, 0]]), "voxel indices (i, j, k)")
    with pytest.raises(SchemaError, match=r"duplicated voxel indices \(i, j, k\) \[\(0, 0, 1\)\]; drop them"):
        check_unique(np.array([[0, 0, 1], [0, 1, 0], [0, 0, 1]]), "voxel indices (i, j, k)", fix="drop them")


def test_entry_points_share_the_wording():
    """The factories, the schemas and align raise the same sentence for the same problem."""
    brain = xr.DataArray(np.ones((3, 2)), dims=("stimulus", "voxel"), coords={"stimulus": ["a", "a", "b"]})
    with pytest.raises(SchemaError, match=r"duplicated stimulus ids on dim 'stimulus' \['a'\]"):
        nb.core.validate(brain, "fmri_responses")
    with pytest.raises(SchemaError, match=r"duplicated stimulus ids"):
        nb.core.activations(np.ones((3, 2)), stimulus=["a", "a", "b"])
    bad = xr.DataArray(np.array([[1.0, np.nan]]), dims=("stimulus", "voxel"), coords={"stimulus": ["a"]})
    with pytest.raises(SchemaError, match=r"fmri_responses contains 1 non-finite value\(s\).*stimulus=0, voxel=1"):
        nb.core.validate(bad, "fmri_responses")
