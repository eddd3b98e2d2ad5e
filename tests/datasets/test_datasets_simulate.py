"""Simulators: stated statistics against planted ground truth and trusted references."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import neurobridge as nb
from neurobridge.core import SchemaError, validate


def _colcorr(a, b):
    a = a - a.mean(0)
    b = b - b.mean(0)
    return (a * b).sum(0) / np.sqrt((a * a).sum(0) * (b * b).sum(0))


@pytest.fixture(scope="module")
def X():
    return np.random.default_rng(0).normal(size=(120, 30))


# ------------------------------------------------------------------------------------------- encoding
def test_encoding_containers_and_exact_identities(X):
    acts = nb.core.activations(X, stimulus=[f"w{i}" for i in range(120)], layer="L3")
    sim = nb.datasets.simulate_encoding(acts, n_voxels=40, snr=2.0, n_repeats=3, random_state=0)
    validate(sim.responses, "fmri_responses")
    assert sim.responses.dims == ("trial", "voxel") and sim.responses.sizes == {"trial": 360, "voxel": 40}
    assert sorted(set(sim.responses["stimulus"].values.tolist())) == sorted(acts["stimulus"].values.tolist())
    assert np.bincount(sim.responses["repetition"].values).tolist() == [120, 120, 120]
    # signal = z-scored features @ true weights, exactly
    z = (X - X.mean(0)) / X.std(0)
    np.testing.assert_allclose(sim.features.values, z)
    np.testing.assert_allclose(sim.signal.values, z @ sim.weights.values, atol=1e-10)
    # signal variance over stimuli is snr; closed-form ceilings
    np.testing.assert_allclose(sim.signal.values.var(0), 2.0)
    np.testing.assert_allclose(sim.explainable_variance.values, 2 / 3)
    np.testing.assert_allclose(sim.noise_ceiling.values, 2 / (2 + 1 / 3))
    # noise = responses - signal has unit variance
    noise = sim.responses.values - sim.signal.sel(stimulus=sim.responses["stimulus"]).values
    assert abs(noise.var() - 1.0) < 4 * np.sqrt(2 / noise.size)


def test_split_half_reliability_matches_true_explainable_variance(X):
    snr = np.linspace(0.05, 3.0, 300)
    sim = nb.datasets.simulate_encoding(X, n_voxels=300, snr=snr, n_repeats=2, random_state=1)
    r = sim.responses
    emp = _colcorr(r.sel(trial=r["repetition"] == 0).values, r.sel(trial=r["repetition"] == 1).values)
    true = sim.explainable_variance.values
    # per-voxel sampling error of a correlation over 120 stimuli is ~ (1 - rho^2) / sqrt(119) <= 0.092
    se = (1 - true**2) / np.sqrt(119)
    assert abs(np.mean(emp - true)) < 4 * np.sqrt(np.sum(se**2)) / len(se) + 0.01
    assert np.mean(np.abs(emp - true) < 4 * se) > 0.97
    assert np.corrcoef(emp, true)[0, 1] > 0.9


def test_noise_ceiling_over_repeated_draws(X):
    # one voxel config, 30 independent draws: Spearman-Brown split-half and the R^2 of the true signal on
    # the repetition average both estimate noise_ceiling = s / (s + 1/n_repeats)
    sb, r2 = [], []
    for seed in range(30):
        sim = nb.datasets.simulate_encoding(X, n_voxels=20, snr=0.5, n_repeats=4, random_state=seed)
        R = sim.responses.values.reshape(4, 120, 20)
        rh = _colcorr(R[:2].mean(0), R[2:].mean(0))
        sb.append(2 * rh / (1 + rh))
        r2.append(_colcorr(sim.signal.values, R.mean(0)) ** 2)
    true = 0.5 / (0.5 + 1 / 4)
    assert sim.noise_ceiling.values[0] == pytest.approx(true)
    sb, r2 = np.concatenate(sb), np.concatenate(r2)
    assert abs(sb.mean() - true) < 4 * sb.std() / np.sqrt(sb.size) + 0.01
    assert abs(r2.mean() - true) < 4 * r2.std() / np.sqrt(r2.size) + 0.01


def test_planted_true_space_wins():
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import cross_val_predict

    rng = np.random.default_rng(3)
    spaces = {"early": rng.normal(size=(150, 20)), "late": rng.normal(size=(150, 20))}
    ids = [f"s{i}" for i in range(150)]
    feats = {k: nb.core.activations(v, stimulus=ids, layer=k) for k, v in spaces.items()}
    sim = nb.datasets.simulate_encoding(feats, n_voxels=20, snr=2.0, n_repeats=2, random_state=0)
    assert sim.responses["true_space"].values.tolist() == ["early"] * 10 + ["late"] * 10
    assert set(sim.weights["space"].values.tolist()) == {"early", "late"}
    y = nb.core.average_repetitions(sim.responses).sel(stimulus=ids).values
    scores = {}
    for name, x in spaces.items():
        pred = cross_val_predict(RidgeCV(alphas=np.logspace(-2, 4, 13)), x, y, cv=5)
        scores[name] = _colcorr(pred, y)
    winner = np.where(scores["early"] > scores["late"], "early", "late")
    assert (winner == sim.responses["true_space"].values).all()
    # weights are zero outside each voxel's true space
    w = sim.weights
    assert float(abs(w.sel(unit=w["space"] == "late").isel(voxel=slice(0, 10))).max()) == 0.0


def test_true_space_options_and_datatree(X):
    tree = xr.DataTree.from_dict({
        "a": xr.Dataset({"acts": nb.core.activations(X[:, :10], stimulus=np.arange(120))}),
        "b": xr.Dataset({"acts": nb.core.activations(X[::-1, 10:], stimulus=np.arange(120)[::-1])}),
        "stats/a": xr.Dataset({"mean": ("unit", np.zeros(10))}),  # nb.extract's statistics: not a feature space
    })
    sim = nb.datasets.simulate_encoding(tree, n_voxels=6, true_space=["b", "a", "b", "a", "b", "a"], random_state=0)
    assert sim.responses["true_space"].values.tolist() == ["b", "a"] * 3
    # stimuli of space b were reordered to match space a
    np.testing.assert_allclose(sim.features.sel(unit=sim.features["space"] == "b").values,
                               ((X[:, 10:] - X[:, 10:].mean(0)) / X[:, 10:].std(0)))
    with pytest.raises(SchemaError, match="not feature spaces"):
        nb.datasets.simulate_encoding(tree, n_voxels=2, true_space="c")


def test_zero_snr_voxels_are_pure_noise(X):
    sim = nb.datasets.simulate_encoding(X, n_voxels=4, snr=[0, 0, 1, 1], random_state=0)
    assert np.all(sim.signal.values[:, :2] == 0)
    np.testing.assert_allclose(sim.noise_ceiling.values, [0, 0, 2 / 3, 2 / 3])


def test_deterministic(X):
    a = nb.datasets.simulate_encoding(X, n_voxels=5, random_state=7)
    b = nb.datasets.simulate_encoding(X, n_voxels=5, random_state=7)
    c = nb.datasets.simulate_encoding(X, n_voxels=5, random_state=8)
    xr.testing.assert_identical(a.responses, b.responses)
    xr.testing.assert_identical(a.weights, b.weights)
    assert not np.allclose(a.responses.values, c.responses.values)


def test_encoding_bad_input(X):
    bad = X.copy()
    bad[3, 2] = np.nan
    with pytest.raises(SchemaError, match="non-finite"):
        nb.datasets.simulate_encoding(bad, n_voxels=3)
    with pytest.raises(SchemaError, match="duplicated stimulus ids"):
        dup = xr.DataArray(X, dims=("stimulus", "unit"), coords={"stimulus": ["a", "b"] * 60})
        nb.datasets.simulate_encoding(dup, n_voxels=3)
    with pytest.raises(SchemaError, match="'stimulus' dim"):
        nb.datasets.simulate_encoding(xr.DataArray(X, dims=("trial", "unit")), n_voxels=3)
    with pytest.raises(SchemaError, match="one value per voxel"):
        nb.datasets.simulate_encoding(X, n_voxels=3, snr=[1.0, 2.0])
    with pytest.raises(SchemaError, match=">= 0"):
        nb.datasets.simulate_encoding(X, n_voxels=2, snr=-1)
    with pytest.raises(SchemaError, match="2-d"):
        nb.datasets.simulate_encoding(X[:, :, None], n_voxels=2)
    with pytest.raises(SchemaError, match="at least 3 stimuli"):
        nb.datasets.simulate_encoding(X[:2], n_voxels=2)
    with pytest.raises(ValueError, match="kind"):
        nb.datasets.simulate_encoding(X, kind="ecog")


def test_bold_timeseries_glm_recovers_trial_amplitudes(X):
    """An LSA GLM built by nilearn from the returned events recovers the trial responses."""
    from nilearn.glm.first_level import make_first_level_design_matrix

    sim = nb.datasets.simulate_encoding(X[:30], n_voxels=8, snr=1.0, n_repeats=2, timeseries=True, tr=2.0,
                                        isi=6.0, scan_noise=0.005, random_state=0)
    ts, ev = sim.timeseries, sim.events
    validate(ts, "fmri_timeseries")
    assert set(np.unique(ts["run"].values)) == {0, 1} and len(ev) == 60
    assert (ev.groupby("run")["trial_type"].nunique() == 30).all()
    betas = np.empty((60, 8))
    for run in (0, 1):
        sel = ts["run"].values == run
        frame_times = ts["time"].values[sel]
        rows = ev[ev["run"] == run].assign(trial_type=lambda d: "t" + d["trial"].astype(str))
        dm = make_first_level_design_matrix(frame_times, rows[["onset", "duration", "trial_type"]],
                                            hrf_model="glover", drift_model=None)
        b = np.linalg.lstsq(dm.values, ts.values[sel], rcond=None)[0]
        for col, trial in zip(dm.columns, dm.columns, strict=True):
            if col.startswith("t"):
                betas[int(trial[1:])] = b[list(dm.columns).index(col)]
    np.testing.assert_allclose(betas, sim.responses.values, atol=0.05)


def test_eeg_epochs_trf_and_ceiling(X):
    sim = nb.datasets.simulate_encoding(X, kind="eeg", snr=1.0, n_repeats=2, n_channels=16, sfreq=100.0,
                                        tmin=-0.1, tmax=0.5, random_state=0)
    validate(sim.responses, "eeg_epochs")
    assert sim.responses.sizes == {"trial": 240, "channel": 16, "time": 61}
    assert sim.weights.dims == ("unit", "channel", "time")
    np.testing.assert_allclose(sim.signal.values, np.einsum("su,uct->sct", sim.features.values, sim.weights.values),
                               atol=1e-10)
    # snr is the channel's signal variance over stimuli averaged over the epoch
    np.testing.assert_allclose(sim.signal.values.var(0).mean(1), 1.0)
    assert np.all(sim.signal.sel(time=slice(None, -0.01)).values == 0)  # nothing before stimulus onset
    R = sim.responses.values.reshape(2, 120, 16, 61)
    emp = _colcorr(R[0].reshape(120, -1), R[1].reshape(120, -1))
    true = sim.explainable_variance.values.ravel()
    strong = true > 0.3
    assert abs(np.mean(emp[strong] - true[strong])) < 0.03


def test_continuous_eeg_matches_convolution_and_mne_trf():
    from mne.decoding import ReceptiveField
    from scipy.signal import convolve

    rng = np.random.default_rng(0)
    sfreq = 64.0
    env = np.abs(rng.normal(size=(64 * 120, 1)))
    feats = xr.DataArray(env, dims=("time", "unit"), coords={"time": np.arange(env.shape[0]) / sfreq}, name="speech")
    sim = nb.datasets.simulate_encoding(feats, kind="eeg", snr=4.0, n_repeats=1, n_channels=4, trf_tmax=0.25,
                                        random_state=0)
    validate(sim.responses, "eeg_epochs")
    assert sim.responses["stimulus"].values.tolist() == ["speech"]
    trf = sim.weights.values  # (lag, unit, channel)
    ref = np.stack([convolve(sim.features.values[:, 0], trf[:, 0, c])[: env.shape[0]] for c in range(4)], axis=1)
    np.testing.assert_allclose(sim.signal.values, ref, atol=1e-8)
    np.testing.assert_allclose(sim.signal.values.var(0), 4.0)
    rf = ReceptiveField(0.0, 0.25, sfreq, estimator=1e-3, scoring="r2")
    rf.fit(sim.features.values, sim.responses.values[0].T)
    est = rf.coef_[:, 0, :].T  # (lag, channel)
    assert np.corrcoef(est.ravel(), trf[:, 0, :].ravel())[0, 1] > 0.95


# ------------------------------------------------------------------------------------------------ RSA
def test_rsa_geometry_and_distance_bias():
    sim = nb.datasets.simulate_rsa(n_stimuli=16, n_categories=4, n_subjects=6, n_voxels=60, n_repeats=2, noise=1.0,
                                   distance=1.0, random_state=0)
    validate(sim.true_rdm, "rdm")
    off = ~np.eye(16, dtype=bool)
    assert sim.true_rdm.values[off].mean() == pytest.approx(1.0)
    assert sim.patterns.dims == ("subject", "trial", "voxel") and sim.patterns.shape == (6, 32, 60)
    # noise-free patterns embed the geometry exactly: squared distance per voxel of the embedding
    emb = sim.embedding.values
    sq = ((emb[:, None] - emb[None]) ** 2).sum(-1) / 60
    np.testing.assert_allclose(sq, sim.true_rdm.values)
    # naive squared Euclidean on repetition means is biased by 2 sigma^2 / n_repeats (closed form)
    means = sim.patterns.groupby("stimulus").mean("trial").sel(stimulus=sim.true_rdm["stimulus"]).values
    naive = ((means[:, :, None] - means[:, None]) ** 2).mean(-1).mean(0)
    expected = sim.true_rdm.values + 2 * 1.0**2 / 2
    diff = naive[off] - expected[off]
    assert abs(diff.mean()) < 4 * diff.std() / np.sqrt(diff.size // 2) + 0.02  # unbiased after the 2 sigma^2/n term
    assert np.corrcoef(naive[off], expected[off])[0, 1] > 0.8


def test_rsa_crossnobis_unbiased_against_rsatoolbox():
    rsd = pytest.importorskip("rsatoolbox.data")
    rsr = pytest.importorskip("rsatoolbox.rdm")
    sim = nb.datasets.simulate_rsa(n_stimuli=12, n_subjects=8, n_voxels=80, n_repeats=4, noise=1.0, random_state=1)
    ests = []
    for s in range(8):
        p = sim.patterns.isel(subject=s)
        ds = rsd.Dataset(p.values, obs_descriptors={"stim": p["stimulus"].values, "run": p["repetition"].values})
        r = rsr.calc_rdm(ds, method="crossnobis", descriptor="stim", cv_descriptor="run")
        order = [list(r.pattern_descriptors["stim"]).index(i) for i in sim.true_rdm["stimulus"].values]
        ests.append(r.get_matrices()[0][np.ix_(order, order)])
    est = np.mean(ests, 0)
    off = ~np.eye(12, dtype=bool)
    true = sim.true_rdm.values
    assert abs(est[off].mean() - true[off].mean()) < 0.1
    assert np.corrcoef(est[off], true[off])[0, 1] > 0.9


def test_rsa_plants_a_given_rdm():
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(10, 4))
    D = ((pts[:, None] - pts[None]) ** 2).sum(-1)
    ids = [f"x{i}" for i in range(10)]
    sim = nb.datasets.simulate_rsa(nb.core.rdm(D, stimulus=ids), n_subjects=2, n_voxels=20, distance=2.0,
                                   random_state=0)
    np.testing.assert_allclose(sim.true_rdm.values, D * 2.0 / D[~np.eye(10, dtype=bool)].mean(), rtol=1e-8)
    assert sim.true_rdm["stimulus"].values.tolist() == ids
    a = nb.datasets.simulate_rsa(pts, n_subjects=2, n_voxels=20, random_state=0)
    assert np.corrcoef(a.true_rdm.values.ravel(), D.ravel())[0, 1] > 0.999
    with pytest.raises(SchemaError, match="one \\(stimulus, stimulus2\\) RDM"):
        nb.datasets.simulate_rsa(nb.core.rdm(np.stack([D, D]), dims=("subject",), stimulus=ids))


# -------------------------------------------------------------------------------------- sparse codes
def test_sparse_codes_structure():
    sim = nb.datasets.simulate_sparse_codes(2000, 32, 128, k=5, noise=0.1, random_state=0)
    validate(sim.data, "activations")
    assert sim.data.shape == (2000, 32) and sim.dictionary.shape == (128, 32) and sim.codes.shape == (2000, 128)
    np.testing.assert_allclose(np.linalg.norm(sim.dictionary.values, axis=1), 1.0)
    nnz = (sim.codes.values != 0).sum(1)
    assert (nnz == 5).all() and (sim.codes.values >= 0).all()
    resid = sim.data.values - sim.codes.values @ sim.dictionary.values
    assert resid.std() == pytest.approx(0.1, rel=0.02)
    active = sim.codes.values[sim.codes.values != 0]
    assert active.min() >= 0.5 and active.max() <= 1.5


def test_sparse_codes_zipf_frequencies_and_signs():
    sim = nb.datasets.simulate_sparse_codes(4000, 16, 64, k=2, zipf_exponent=1.0, nonnegative=False, random_state=0)
    freq = (sim.codes.values != 0).mean(0)
    assert freq[:4].mean() > 4 * freq[-16:].mean()
    assert (sim.codes.values < 0).any() and (sim.codes.values > 0).any()


def test_sparse_codes_recoverable_by_omp():
    from sklearn.linear_model import orthogonal_mp

    sim = nb.datasets.simulate_sparse_codes(200, 64, 256, k=3, noise=0.0, random_state=0)
    est = orthogonal_mp(sim.dictionary.values.T, sim.data.values.T, n_nonzero_coefs=3).T
    same_support = ((est != 0) == (sim.codes.values != 0)).all(1)
    assert same_support.mean() > 0.95


def test_sparse_codes_deterministic_and_errors():
    a = nb.datasets.simulate_sparse_codes(50, 8, 16, k=2, random_state=3)
    b = nb.datasets.simulate_sparse_codes(50, 8, 16, k=2, random_state=3)
    np.testing.assert_array_equal(a.data.values, b.data.values)
    with pytest.raises(ValueError, match="k <= n_latents"):
        nb.datasets.simulate_sparse_codes(10, 4, 8, k=9)
    with pytest.raises(ValueError, match="magnitude"):
        nb.datasets.simulate_sparse_codes(10, 4, 8, k=2, magnitude=(2.0, 1.0))
