"""Labelled API: fit_encoding, layer_sweep, noise ceilings, variance partitioning, on planted ground truth."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import neurobridge as nb
from neurobridge.core import SchemaError
from neurobridge.encoding import (
    RidgeCV,
    fit_encoding,
    layer_sweep,
    noise_ceiling,
    normalized_score,
    prepare_design,
    variance_partitioning,
)

ALPHAS = np.logspace(-2, 4, 7)


def _planted(n_stim=120, n_units=8, n_vox=10, n_rep=2, noise=1.0, seed=0):
    """Stimulus features, per-voxel weights, and trials = signal + noise, with voxel coords i/j/k."""
    rng = np.random.default_rng(seed)
    F = rng.standard_normal((n_stim, n_units))
    W = rng.standard_normal((n_units, n_vox)) / np.sqrt(n_units)
    signal = F @ W  # unit variance per voxel
    ids = np.array([f"s{i:03d}" for i in range(n_stim)])
    trials = np.tile(np.arange(n_stim), n_rep)
    Y = signal[trials] + noise * rng.standard_normal((len(trials), n_vox))
    feats = nb.core.activations(F, stimulus=ids)
    brain = nb.core.fmri_responses(Y, stimulus=ids[trials], voxel_coords={"i": np.arange(n_vox), "j": np.zeros(n_vox, int),
                                                                          "k": np.zeros(n_vox, int)},
                                   trial_coords={"run": np.repeat(np.arange(n_rep), n_stim)},
                                   attrs={"affine": np.eye(4).ravel().tolist(), "shape": [n_vox, 1, 1]})
    return feats, brain, signal


def test_fit_encoding_recovers_planted_scores_and_keeps_coords():
    feats, brain, signal = _planted(noise=1.0)
    res = fit_encoding(feats, brain, alphas=ALPHAS, progress=False)
    assert res.score.dims == ("voxel",)
    for c in ("i", "j", "k"):
        np.testing.assert_array_equal(res[c].values, brain[c].values)
    # single-trial true R^2 = var(signal) / (var(signal) + var(noise))
    truth = signal.var(0) / (signal.var(0) + 1.0)
    assert np.abs(res.score.values - truth).mean() < 0.07
    assert res.alpha.dims == ("fold", "voxel")
    img = nb.io.to_nifti(res.score)
    assert img.shape == (10, 1, 1)
    np.testing.assert_allclose(np.asarray(img.dataobj)[:, 0, 0], res.score.values, rtol=1e-6)


def test_scores_approach_ceiling_as_samples_grow():
    gaps = []
    for n_stim in (40, 160, 640):
        feats, brain, _ = _planted(n_stim=n_stim, n_units=20, noise=1.0, seed=1)
        res = fit_encoding(feats, brain, alphas=ALPHAS, scoring="correlation", progress=False)
        ceiling = noise_ceiling(brain, n_average=1)
        gaps.append(float((ceiling.r - res.score).mean()))
    assert gaps[0] > gaps[1] > gaps[2]
    assert gaps[2] < 0.05


def test_repetitions_never_straddle_folds():
    feats, brain, _ = _planted(n_rep=3)
    d = prepare_design(feats, brain)
    np.testing.assert_array_equal(d.groups, brain.stimulus.values)
    folds = nb.encoding.make_folds(len(d.X), 5, d.groups)
    for tr, va in folds:
        assert not set(d.groups[tr]) & set(d.groups[va])
    # a grouping that splits a stimulus's repetitions is refused
    with pytest.raises(ValueError, match="repetitions in several groups"):
        fit_encoding(feats, brain, groups="run", progress=False)


def test_repeated_trials_without_grouping_inflate_scores_with_leaky_folds():
    """Leaky folds (repetitions on both sides) overfit noise: the grouped default does not."""
    feats, brain, _ = _planted(n_stim=60, n_units=50, noise=2.0, n_rep=2, seed=3)
    grouped = fit_encoding(feats, brain, alphas=ALPHAS, progress=False)
    ids = brain.stimulus.values
    from sklearn.model_selection import KFold

    with pytest.raises(ValueError, match="appear in both training and validation"):
        fit_encoding(feats, brain, cv=KFold(5, shuffle=True, random_state=0), progress=False)
    assert float(grouped.score.mean()) < 0.3
    assert len(np.unique(ids)) == 60


def test_mismatched_stimulus_ids():
    feats, brain, _ = _planted()
    other = feats.assign_coords(stimulus=[f"x{i}" for i in range(feats.sizes["stimulus"])])
    with pytest.raises(SchemaError, match="share 0 stimulus id"):
        fit_encoding(other, brain, progress=False)
    dup = feats.assign_coords(stimulus=["s000"] * feats.sizes["stimulus"])
    with pytest.raises(SchemaError, match="duplicated stimulus ids"):
        fit_encoding(dup, brain, progress=False)


def test_nan_brain_and_too_few_samples():
    feats, brain, _ = _planted(n_stim=20)
    bad = brain.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        fit_encoding(feats, bad, progress=False)
    small = brain.isel(trial=slice(0, 4))
    with pytest.raises(ValueError, match="cv=5 folds needs at least 5 samples, found n_samples=4"):
        fit_encoding(feats, small, progress=False)


def test_weights_predictions_and_permutations():
    feats, brain, _ = _planted(n_stim=80, noise=0.5)
    null = brain.copy(data=np.random.default_rng(5).standard_normal(brain.shape))
    brain2 = xr.concat([brain, null.assign_coords(voxel=null.voxel + 10)], dim="voxel")
    res = fit_encoding(feats, brain2, alphas=ALPHAS, return_weights=True, return_predictions=True,
                       n_permutations=49, average_repetitions=True, progress=False)
    assert res.weights.dims == ("unit", "voxel") and res.weights.shape == (8, 20)
    assert res.prediction.dims == ("stimulus", "voxel")
    assert (res.pvalue[:10] <= 0.02).all()
    assert res.significant[:10].all() and res.significant[10:].sum() <= 2
    # weights equal a direct RidgeCV fit on the averaged data
    avg = nb.core.average_repetitions(brain2)
    direct = RidgeCV(alphas=ALPHAS).fit(feats.sel(stimulus=avg.stimulus).values, avg.values)
    np.testing.assert_allclose(res.weights.values, direct.coef_.T, rtol=1e-4, atol=1e-5)


def test_epochs_give_channel_by_time_scores():
    rng = np.random.default_rng(0)
    n_stim, n_ch, n_t = 60, 3, 4
    F = rng.standard_normal((n_stim, 5))
    resp = np.einsum("su,uct->sct", F, rng.standard_normal((5, n_ch, n_t)))
    resp[:, :, 0] = 0.0  # baseline: no information
    ids = np.arange(n_stim)
    ep = nb.core.eeg_epochs(resp + 0.3 * rng.standard_normal(resp.shape), stimulus=ids, sfreq=100.0, tmin=-0.01)
    res = fit_encoding(nb.core.activations(F, stimulus=ids), ep, alphas=ALPHAS, progress=False)
    assert res.score.dims == ("channel", "time")
    assert (res.score.isel(time=0) < 0.1).all() and (res.score.isel(time=slice(1, None)) > 0.8).all()


def test_continuous_fmri_time_series():
    rng = np.random.default_rng(0)
    n = 300
    F = rng.standard_normal((n, 4))
    Y = F @ rng.standard_normal((4, 6)) + 0.5 * rng.standard_normal((n, 6))
    ts = nb.core.fmri_timeseries(Y, tr=2.0)
    f = xr.DataArray(F, dims=("time", "unit"), coords={"time": ts.time.values})
    res = fit_encoding(f, ts, alphas=ALPHAS, progress=False)
    assert res.attrs["sample_dim"] == "time" and (res.score > 0.7).all()


def _tree(acts: dict, ids):
    nodes = {"/": xr.Dataset(attrs={"layers": list(acts)})}
    for k, v in acts.items():
        nodes[k] = xr.Dataset({"activations": nb.core.activations(v, stimulus=ids, layer=k)})
    return xr.DataTree.from_dict(nodes)


def test_layer_sweep_finds_planted_layers_on_training_folds():
    rng = np.random.default_rng(0)
    n, ids = 150, np.arange(150)
    acts = {f"block{i}": rng.standard_normal((n, 10)) for i in range(3)}
    Y = np.empty((n, 6))
    Y[:, :3] = acts["block0"] @ rng.standard_normal((10, 3))
    Y[:, 3:] = acts["block2"] @ rng.standard_normal((10, 3))
    Y += 2.0 * rng.standard_normal(Y.shape)
    brain = nb.core.fmri_responses(Y, stimulus=ids, dim="stimulus")
    res = layer_sweep(_tree(acts, ids), brain, alphas=ALPHAS, progress=False)
    assert res.score.dims == ("layer", "voxel")
    assert res.best_layer.values.tolist() == ["block0"] * 3 + ["block2"] * 3
    # held-out score of the selected layer equals the true layer's score when selection is right
    np.testing.assert_allclose(res.best_score[:3], res.score.sel(layer="block0")[:3], rtol=1e-6)
    assert res.selected.dims == ("fold", "voxel")


def test_layer_sweep_selection_is_not_optimistic_on_noise():
    """With pure-noise targets, picking the best of many layers on held-out data would be biased upwards;
    selection on training folds gives a held-out score no better than a typical layer."""
    rng = np.random.default_rng(1)
    n, ids = 80, np.arange(80)
    acts = {f"l{i}": rng.standard_normal((n, 10)) for i in range(6)}
    brain = nb.core.fmri_responses(rng.standard_normal((n, 30)), stimulus=ids, dim="stimulus")
    res = layer_sweep(_tree(acts, ids), brain, alphas=ALPHAS, scoring="correlation", progress=False)
    peeking = float(res.score.max("layer").mean())
    honest = float(res.best_score.mean())
    assert honest < peeking - 0.02
    assert abs(honest) < 0.1


def test_layer_sweep_rejects_bad_trees():
    ids = np.arange(20)
    tree = xr.DataTree.from_dict({"/": xr.Dataset(attrs={"layers": ["a", "b"]}),
                                  "a": xr.Dataset({"activations": nb.core.activations(np.ones((20, 2)), stimulus=ids)})})
    brain = nb.core.fmri_responses(np.ones((20, 2)), stimulus=ids, dim="stimulus")
    with pytest.raises(SchemaError, match="lacks nodes"):
        layer_sweep(tree, brain, progress=False)


# -------------------------------------------------------------------------------------------- ceilings
@pytest.mark.parametrize("method", ["split_half", "ncsnr"])
def test_noise_ceiling_matches_planted_reliability(method):
    rng = np.random.default_rng(0)
    n_stim, n_rep, n_vox = 400, 4, 12
    sd_signal = np.linspace(0.3, 2.0, n_vox)
    S = rng.standard_normal((n_stim, n_vox)) * sd_signal
    trials = np.tile(np.arange(n_stim), n_rep)
    Y = S[trials] + rng.standard_normal((len(trials), n_vox))
    brain = nb.core.fmri_responses(Y, stimulus=trials)
    var_signal = S.var(0)  # realised signal variance
    for n_avg in (1, n_rep):
        truth = var_signal / (var_signal + 1.0 / n_avg)
        nc = noise_ceiling(brain, method=method, n_average=n_avg, n_splits=20)
        np.testing.assert_allclose(nc.r2.values, truth, atol=0.06)
    assert ("ncsnr" in nc) == (method == "ncsnr")
    if method == "ncsnr":
        np.testing.assert_allclose(nc.ncsnr.values, np.sqrt(var_signal), rtol=0.1, atol=0.05)


def test_normalized_score_and_ceiling_errors():
    feats, brain, signal = _planted(n_stim=200, n_rep=4, noise=1.0)
    res = fit_encoding(feats, brain, alphas=ALPHAS, progress=False)
    nc = noise_ceiling(brain, n_average=1)
    norm = normalized_score(res.score, nc)
    assert abs(float(norm.mean()) - 1.0) < 0.15  # a linear model of the planted kind reaches the ceiling
    with pytest.raises(SchemaError, match="repeated trials"):
        noise_ceiling(nb.core.average_repetitions(brain))
    with pytest.raises(SchemaError, match="shown at least twice"):
        noise_ceiling(brain.isel(trial=slice(0, 200)))


def test_variance_partitioning_recovers_unique_and_shared():
    rng = np.random.default_rng(0)
    n, ids = 600, np.arange(600)
    shared = rng.standard_normal((n, 1))
    A = np.hstack([rng.standard_normal((n, 3)), shared])
    B = np.hstack([rng.standard_normal((n, 3)), shared])
    # signal variance: 1 from A's own part, 1 from B's own part, 1 shared; noise variance 1
    y = A[:, :3] @ np.full(3, 1 / np.sqrt(3)) + B[:, :3] @ np.full(3, 1 / np.sqrt(3)) + shared[:, 0]
    Y = y[:, None] + rng.standard_normal((n, 4))
    feats = {"a": nb.core.activations(A, stimulus=ids), "b": nb.core.activations(B, stimulus=ids)}
    vp = variance_partitioning(feats, nb.core.fmri_responses(Y, stimulus=ids, dim="stimulus"), alphas=ALPHAS,
                               progress=False)
    part = vp.partition.mean("voxel")
    np.testing.assert_allclose(part.sel(region="unique:a"), 0.25, atol=0.05)
    np.testing.assert_allclose(part.sel(region="unique:b"), 0.25, atol=0.05)
    np.testing.assert_allclose(part.sel(region="shared:a&b"), 0.25, atol=0.05)
    # the regions add up to the joint model's R^2
    np.testing.assert_allclose(vp.partition.sum("region"), vp.r2.sel(model="a+b"), atol=1e-9)


def test_recovery_on_simulate_encoding_with_banded_ridge():
    """nb.datasets.simulate_encoding states the true explainable variance and the true space of each voxel."""
    rng = np.random.default_rng(0)
    errors = []
    for n_stim in (60, 240):
        ids = np.arange(n_stim)
        spaces = {"a": nb.core.activations(rng.standard_normal((n_stim, 12)), stimulus=ids),
                  "b": nb.core.activations(rng.standard_normal((n_stim, 12)), stimulus=ids)}
        sim = nb.datasets.simulate_encoding(spaces, n_voxels=20, snr=1.0, n_repeats=2, random_state=0)
        res = fit_encoding(spaces, sim.responses, estimator=RidgeCV(alphas=ALPHAS), progress=False)
        errors.append(float(np.abs(res.score - sim.explainable_variance.values).mean()))
    assert errors[1] < errors[0] and errors[1] < 0.06
    d = prepare_design(spaces, sim.responses)
    m = nb.encoding.BandedRidgeCV(alphas=ALPHAS, feature_spaces=d.feature_spaces, n_iter=6, random_state=0).fit(
        d.X, d.Y, groups=d.groups)
    picked = np.array(["a", "b"])[m.gamma_.argmax(0)]
    assert (picked == sim.responses.true_space.values).mean() >= 0.9


def test_continuous_eeg_and_transposed_brain():
    rng = np.random.default_rng(0)
    n = 400
    F = rng.standard_normal((n, 3))
    eeg = nb.core.eeg_raw((F @ rng.standard_normal((3, 5))).T + 0.3 * rng.standard_normal((5, n)), sfreq=100.0)
    f = xr.DataArray(F, dims=("time", "unit"), coords={"time": eeg.time.values})
    res = fit_encoding(f, eeg, alphas=ALPHAS, progress=False)
    assert res.score.dims == ("channel",) and (res.score > 0.8).all()
    feats, brain, _ = _planted(n_stim=60)
    a = fit_encoding(feats, brain, alphas=ALPHAS, progress=False)
    b = fit_encoding(feats, brain.transpose("voxel", "trial"), alphas=ALPHAS, progress=False)
    np.testing.assert_allclose(a.score.values, b.score.values, rtol=1e-5)
