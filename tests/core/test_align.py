"""Alignment on the stimulus coordinate, checked against plain numpy bookkeeping."""

import numpy as np
import pytest

import neurobridge as nb
from neurobridge.core import SchemaError


@pytest.fixture
def brain():
    rng = np.random.default_rng(1)
    ids = np.array(["c", "a", "b", "a", "c", "d"])
    return nb.core.fmri_responses(rng.normal(size=(6, 4)), stimulus=ids, trial_coords={"run": [0, 0, 0, 1, 1, 1]})


@pytest.fixture
def features():
    rng = np.random.default_rng(2)
    return nb.core.activations(rng.normal(size=(4, 3)), stimulus=["a", "b", "c", "e"])


def test_average_repetitions_matches_numpy(brain):
    avg = nb.core.average_repetitions(brain)
    ids = brain.stimulus.values
    assert avg.stimulus.values.tolist() == ["c", "a", "b", "d"]  # first appearance
    for s in avg.stimulus.values:
        np.testing.assert_allclose(avg.sel(stimulus=s).values, brain.values[ids == s].mean(0))
    assert avg.n_repetitions.values.tolist() == [2, 2, 1, 1]
    assert "run" not in avg.coords  # varies within a stimulus
    assert nb.core.validate(avg, "fmri_responses") is avg
    sorted_avg = nb.core.average_repetitions(brain, keep_order=False)
    assert sorted_avg.stimulus.values.tolist() == ["a", "b", "c", "d"]
    # xarray's own groupby gives the same numbers
    ref = brain.groupby("stimulus").mean()
    np.testing.assert_allclose(sorted_avg.values, ref.transpose("stimulus", "voxel").values)


def test_align_trials_expands_features(brain, features):
    out = nb.core.align(brain, features)
    assert out.brain.sizes["trial"] == 5  # 'd' has no features
    assert out.features.dims == ("trial", "unit")
    for t in range(5):
        s = out.brain.stimulus.values[t]
        np.testing.assert_array_equal(out.features.values[t], features.sel(stimulus=s).values)
    np.testing.assert_array_equal(out.features.trial.values, out.brain.trial.values)
    # same result through the accessor
    assert out.features.identical(brain.nb.align(features).features)


def test_align_stimulus_level_follows_brain_order(brain, features):
    avg = nb.core.average_repetitions(brain)
    out = nb.core.align(avg, features)
    assert out.brain.stimulus.values.tolist() == ["c", "a", "b"]
    assert out.features.stimulus.values.tolist() == ["c", "a", "b"]


def test_align_errors_list_missing_ids(brain, features):
    other = features.assign_coords(stimulus=["x1", "x2", "x3", "x4"])
    with pytest.raises(SchemaError, match=r"share 0 stimulus id.*only in brain.*'a'.*only in features.*'x1'"):
        nb.core.align(brain, other)
    dup = features.copy()
    dup = dup.assign_coords(stimulus=["a", "a", "b", "c"])
    with pytest.raises(SchemaError, match="duplicated stimulus ids"):
        nb.core.align(brain, dup)
    with pytest.raises(SchemaError, match="no 'stimulus' coordinate"):
        nb.core.align(brain.drop_vars("stimulus"), features)


def test_expand_to_trials_requires_all_ids(brain, features):
    with pytest.raises(SchemaError, match=r"lack 1 stimulus id.*\['d'\]"):
        nb.core.expand_to_trials(features, brain)


def test_config_context_and_as_tensor():
    import torch

    x = np.ones((2, 2))
    assert nb.core.as_tensor(x).dtype == torch.float32
    with nb.config_context(dtype="float64"):
        assert nb.core.as_tensor(x).dtype == torch.float64
        with nb.config_context(dtype=torch.float32):
            assert nb.core.get_config().dtype == "float32"
        assert nb.core.get_config().dtype == "float64"
    assert nb.core.get_config().dtype == "float32"
    t = torch.ones(2, dtype=torch.float64)
    assert nb.core.as_tensor(t).dtype == torch.float64  # a tensor keeps its dtype
    da = nb.core.activations(np.arange(6.0).reshape(2, 3), stimulus=["a", "b"])
    assert da.nb.to_torch().shape == (2, 3)
    reversed_view = da.isel(stimulus=slice(None, None, -1))  # negative numpy strides
    np.testing.assert_array_equal(nb.core.as_tensor(reversed_view).numpy(), da.values[::-1])
    with pytest.raises(ValueError, match="dtype must be one of"):
        with nb.config_context(dtype="int8"):
            pass


def test_optional_import_hint():
    with pytest.raises(ImportError, match=r"pip install 'neurobridge\[models\]'"):
        nb.core.optional_import("surely_not_a_module_xyz", extra="models")


def test_cpu_threads_scopes_and_restores_the_thread_count():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with nb.core.cpu_threads(1):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with pytest.raises(RuntimeError), nb.core.cpu_threads(1):
            raise RuntimeError("restored even on errors")
        assert torch.get_num_threads() == 2
        with nb.core.cpu_threads(1, "meta"):  # not a CPU device: untouched
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
