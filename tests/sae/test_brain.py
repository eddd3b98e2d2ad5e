"""neurobridge.sae against brain data (issue 13, capability 6): latent codes, latents as encoding features, latent ->
voxel maps, top-activating stimuli, selectivity to stimulus labels, SAEs trained on brain responses.

References: planted truth from ``nb.datasets.simulate_sparse_codes`` (voxels driven by chosen latents, labels made
from one latent's activity, brain responses made from a known dictionary); ``fit_encoding`` run on its own with the
same cv (identical scores prove identical folds); ``np.corrcoef``; ``sklearn.linear_model.Ridge``;
``sklearn.metrics.roc_auc_score``; a float64 numpy d'; ``np.argsort(kind="stable")``; brute-force permutation loops.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr
from sklearn.linear_model import Ridge
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import KFold

import neurobridge as nb
from neurobridge.core import SchemaError
from neurobridge.sae import (
    SAE,
    TopKConfig,
    brain_sae_input,
    latent_brain_map,
    latent_codes,
    latent_encoding,
    latent_patterns,
    latent_selectivity,
    top_stimuli,
    train_brain_sae,
    train_sae,
)
from neurobridge.sae._brain import dprime, pearson_matrix, rank_auc, stable_top

PLANTED = [3, 7, 11, 19]  # the latents that drive voxels 0-3


@pytest.fixture(scope="module")
def sim():
    return nb.datasets.simulate_sparse_codes(2000, 16, 24, k=2, random_state=0)


@pytest.fixture(scope="module")
def trained(sim):
    """A TopK SAE that recovers the planted dictionary (100% of atoms at cosine > 0.9; ~1 s on one thread)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        sae, _ = train_sae(sim.data, TopKConfig(n_latents=48, k=2), epochs=10, batch_size=128, lr=1e-2,
                           progress=False)
    finally:
        torch.set_num_threads(n)
    return sae


def _match(W_dec: torch.Tensor, dictionary: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each true atom: the best-matching SAE latent and its cosine."""
    W = W_dec.detach().to(torch.float64).numpy()
    W = W / np.linalg.norm(W, axis=1, keepdims=True)
    D = dictionary / np.linalg.norm(dictionary, axis=1, keepdims=True)
    cos = D @ W.T
    return cos.argmax(1), cos.max(1)


def _pairwise_auc(y: np.ndarray, X: np.ndarray) -> np.ndarray:
    """AUC by its definition, per column: P(x_pos > x_neg) + P(x_pos == x_neg) / 2 over all pairs."""
    a, b = X[y][:, None, :], X[~y][None, :, :]
    return ((a > b) + 0.5 * (a == b)).mean((0, 1))


def _planted_brain(sim, n: int = 600, noise: float = 0.05, seed: int = 1, **kw):
    """``(stimulus, voxel)`` responses of the first ``n`` stimuli: voxel v is planted latent PLANTED[v] + noise."""
    rng = np.random.default_rng(seed)
    codes = sim.codes.values[:n]
    Y = codes[:, PLANTED] + noise * rng.standard_normal((n, len(PLANTED)))
    ijk = {"i": np.arange(len(PLANTED)), "j": np.zeros(len(PLANTED), int), "k": np.zeros(len(PLANTED), int)}
    return nb.core.fmri_responses(Y, stimulus=sim.data["stimulus"].values[:n], dim="stimulus", voxel_coords=ijk,
                                  attrs={"affine": np.eye(4).ravel().tolist(), "shape": [len(PLANTED), 1, 1]}, **kw)


# -- pure numerics against references ---------------------------------------------------------------------------

def test_pearson_matrix_matches_corrcoef():
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(50, 4)), rng.normal(size=(50, 3))
    X[:, 2] = 1.5  # constant: NaN row
    r = pearson_matrix(torch.from_numpy(X), torch.from_numpy(Y)).numpy()
    ok = [0, 1, 3]
    ref = np.corrcoef(X[:, ok].T, Y.T)[:3, 3:]
    np.testing.assert_allclose(r[ok], ref, atol=1e-12)
    assert np.isnan(r[2]).all()


def test_rank_auc_and_dprime_match_references():
    from scipy.stats import rankdata

    rng = np.random.default_rng(1)
    X = np.round(rng.normal(size=(40, 5)), 1)  # ties
    X[:, 4] = np.maximum(X[:, 4], 0)  # many zeros, as latents
    y = rng.random(40) < 0.4
    auc = rank_auc(torch.from_numpy(rankdata(X, axis=0)), torch.from_numpy(y)).numpy()
    np.testing.assert_allclose(auc, [roc_auc_score(y, X[:, j]) for j in range(5)], atol=1e-12)
    d = dprime(torch.from_numpy(X), torch.from_numpy(y)).numpy()
    a, b = X[y], X[~y]
    ref = (a.mean(0) - b.mean(0)) / np.sqrt((a.var(0, ddof=1) + b.var(0, ddof=1)) / 2)
    np.testing.assert_allclose(d, ref, rtol=1e-10)
    # several label vectors at once (the permutation path) give the same as one at a time
    Y2 = torch.from_numpy(np.stack([y, np.roll(y, 3)]))
    np.testing.assert_allclose(dprime(torch.from_numpy(X), Y2).numpy()[1],
                               dprime(torch.from_numpy(X), Y2[1]).numpy(), rtol=1e-12)


def test_stable_top_matches_stable_argsort():
    rng = np.random.default_rng(2)
    X = np.maximum(np.round(rng.normal(size=(300, 37)), 1), 0).astype(np.float32)  # ties and zeros
    v, i = stable_top(torch.from_numpy(X), 12, chunk=8)
    ref = np.argsort(-X, axis=0, kind="stable")[:12].T
    np.testing.assert_array_equal(i.numpy(), ref)
    np.testing.assert_array_equal(v.numpy(), np.take_along_axis(X, ref.T, 0).T)


# -- latent codes ------------------------------------------------------------------------------------------------

def test_latent_codes_equal_the_sparse_code_and_keep_labels(sim, trained):
    acts = sim.data.assign_coords(group=("stimulus", np.arange(2000) % 3))
    z = latent_codes(trained, acts, batch_size=333)
    with torch.no_grad():
        ref = trained.encode(torch.from_numpy(sim.data.values.astype(np.float32))).to_dense(48).numpy()
    np.testing.assert_array_equal(z.values, ref)
    assert z.dims == ("stimulus", "latent") and z.dtype == np.float32
    np.testing.assert_array_equal(z["stimulus"].values, sim.data["stimulus"].values)
    np.testing.assert_array_equal(z["group"].values, np.arange(2000) % 3)
    assert z.attrs["variant"] == "topk" and z.attrs["n_latents"] == 48
    # a fitted SparseDictionary gives the same codes
    sd = nb.sae.SparseDictionary()
    sd.model_ = trained
    np.testing.assert_array_equal(latent_codes(sd, acts).values, ref)


def test_latent_codes_pool_over_tokens_with_mask(sim, trained):
    X = sim.data.values[:60].reshape(20, 3, 16).astype(np.float32)  # 20 stimuli x 3 tokens
    acts = nb.core.activations(X, stimulus=[f"s{i}" for i in range(20)], dims=("stimulus", "token", "unit"))
    mask = np.ones((20, 3), bool)
    mask[::2, 2] = False  # padded last token of every other stimulus
    with torch.no_grad():
        dense = trained.encode(torch.from_numpy(X.reshape(60, 16))).to_dense(48).numpy().reshape(20, 3, 48)
    full = latent_codes(trained, acts)
    assert full.dims == ("stimulus", "token", "latent")
    np.testing.assert_array_equal(full.values, dense)
    np.testing.assert_array_equal(latent_codes(trained, acts, pool="max").values, dense.max(1))
    masked = np.where(mask[..., None], dense, 0.0)
    mx = latent_codes(trained, acts, pool="max", mask=mask)
    np.testing.assert_allclose(mx.values, masked.max(1), rtol=1e-6)
    mn = latent_codes(trained, xr.Dataset({"activations": acts, "token_mask": (("stimulus", "token"), mask)}),
                      pool="mean")
    np.testing.assert_allclose(mn.values, masked.sum(1) / mask.sum(1)[:, None], rtol=1e-6)
    assert mn.dims == ("stimulus", "latent") and mn.attrs["pool"] == "mean"


def test_latent_codes_bad_input(sim, trained):
    with pytest.raises(TypeError, match="SAE, SemiNMF"):
        latent_codes(object(), sim.data)
    with pytest.raises(TypeError, match="xr.DataArray"):
        latent_codes(trained, sim.data.values)
    with pytest.raises(ValueError, match="d_in=16"):
        latent_codes(trained, sim.data.isel(unit=slice(0, 8)))
    with pytest.raises(ValueError, match="'unit' dim|name the feature dim"):
        latent_codes(trained, sim.data.rename(unit="feature"))
    with pytest.raises(ValueError, match="pool"):
        latent_codes(trained, sim.data, pool="sum")
    bad = sim.data.copy()
    bad[3, 2] = np.nan
    with pytest.raises(SchemaError, match="non-finite"):
        latent_codes(trained, bad)


# -- (a) latents as encoding features ------------------------------------------------------------------------------

def test_latent_encoding_uses_the_same_folds_as_the_raw_fit(sim, trained):
    brain = _planted_brain(sim)
    acts = sim.data.isel(stimulus=slice(0, 600))
    kw = dict(scoring="correlation", alphas=[0.1, 10.0, 1000.0], progress=False)
    res = latent_encoding(trained, acts, brain, cv=5, **kw)
    assert res.score.dims == ("features", "voxel")
    assert res.features.values.tolist() == ["units", "latents"]
    # the same numbers as fit_encoding on each feature set with cv=5: the same folds, fold by fold
    ref_u = nb.encoding.fit_encoding(acts, brain, cv=5, **kw)
    ref_l = nb.encoding.fit_encoding(latent_codes(trained, acts).rename(latent="unit"), brain, cv=5, **kw)
    np.testing.assert_allclose(res.score_fold.sel(features="units"), ref_u.score_fold, atol=1e-12)
    np.testing.assert_allclose(res.score_fold.sel(features="latents"), ref_l.score_fold, atol=1e-12)
    np.testing.assert_array_equal(res.alpha.sel(features="latents"), ref_l.alpha)
    folds = nb.encoding.make_folds(600, 5)
    expect = np.empty(600, int)
    for f, (_, va) in enumerate(folds):
        expect[va] = f
    np.testing.assert_array_equal(res.validation_fold.values, expect)
    np.testing.assert_array_equal(res.stimulus_of_sample.values, acts["stimulus"].values)
    # planted truth: each voxel follows one dictionary atom, which the SAE latents encode almost one to one,
    # while the 16 raw units mix all 24 atoms linearly
    assert (res.score.sel(features="latents") > 0.9).all()
    assert (res.difference > 0.03).all() and float(res.difference.mean()) > 0.1
    np.testing.assert_allclose(res.difference, res.score.sel(features="latents") - res.score.sel(features="units"))
    assert res.attrs["n_units"] == 16 and res.attrs["n_latents"] == 48 and res.attrs["n_folds"] == 5


def test_latent_encoding_grouped_trials_and_shuffled_splitter(sim):
    # trials: 2 repetitions per stimulus; folds grouped by stimulus, made once and shared
    base = _planted_brain(sim, n=200)
    trials = xr.concat([base, base + 0.05], dim="stimulus").rename(stimulus="trial_stim")
    ids = np.tile(base["stimulus"].values, 2)
    brain = nb.core.fmri_responses(trials.values, stimulus=ids)
    acts = sim.data.isel(stimulus=slice(0, 200))
    codes = sim.codes.isel(stimulus=slice(0, 200))  # the true codes: a perfect dictionary
    res = latent_encoding(codes, acts, brain, cv=4, alphas=[1.0], progress=False)
    vf = res.validation_fold.values
    stim = res.stimulus_of_sample.values
    np.testing.assert_array_equal(stim, ids)
    for s in np.unique(stim):
        assert len(set(vf[stim == s])) == 1  # repetitions never straddle folds
    ref = nb.encoding.make_folds(400, 4, groups=ids)
    for f, (_, va) in enumerate(ref):
        assert (vf[va] == f).all()
    assert (res.score.sel(features="latents") > 0.97).all()
    # a shuffling splitter is called once: both fits see its one set of folds
    cv = KFold(5, shuffle=True, random_state=3)
    res2 = latent_encoding(codes, acts, base, cv=cv, alphas=[1.0], progress=False)
    ref_l = nb.encoding.fit_encoding(codes.rename(latent="unit"), base, cv=KFold(5, shuffle=True, random_state=3),
                                     alphas=[1.0], scoring="correlation", progress=False)
    np.testing.assert_allclose(res2.score_fold.sel(features="latents"), ref_l.score_fold, atol=1e-12)


def test_latent_encoding_bad_input(sim, trained):
    brain = _planted_brain(sim, n=100)
    acts = sim.data.isel(stimulus=slice(0, 100))
    other = sim.codes.isel(stimulus=slice(100, 200))
    with pytest.raises(ValueError, match="not the same ones"):
        latent_encoding(other, acts, brain, progress=False)
    with pytest.raises(ValueError, match="scoring"):
        latent_encoding(trained, acts, brain, scoring="mse", progress=False)
    nan_brain = brain.copy()
    nan_brain[0, 0] = np.nan
    with pytest.raises(SchemaError, match="non-finite"):
        latent_encoding(trained, acts, nan_brain, progress=False)
    tokens = nb.core.activations(np.zeros((100, 2, 16)), stimulus=acts["stimulus"].values)
    with pytest.raises(ValueError, match="pool"):
        latent_encoding(sim.codes.isel(stimulus=slice(0, 100)), tokens, brain, progress=False)


# -- (b) latent -> voxel maps ----------------------------------------------------------------------------------------

def test_latent_brain_map_recovers_which_latent_drives_which_voxel(sim, trained):
    brain = _planted_brain(sim, noise=0.3)
    # with the true codes as latents: the argmax latent of every voxel is the planted one; values = np.corrcoef
    true = sim.codes.isel(stimulus=slice(0, 600))
    m = latent_brain_map(true, brain)
    assert m.dims == ("latent", "voxel") and m.name == "correlation"
    assert m.argmax("latent").values.tolist() == PLANTED
    ref = np.corrcoef(true.values.T, brain.values.T)[:24, 24:]
    np.testing.assert_allclose(m.values, ref, atol=1e-12)
    np.testing.assert_array_equal(m["i"].values, brain["i"].values)  # the voxel coords come along
    img = nb.io.to_nifti(m)  # (latent, voxel) -> a 4-D image, one volume per latent
    assert img.shape == (4, 1, 1, 24)
    np.testing.assert_allclose(img.get_fdata()[:, 0, 0, :].T, m.values, atol=1e-6)
    # with a trained SAE: the map finds the latent that learned the planted atom
    z = latent_codes(trained, sim.data.isel(stimulus=slice(0, 600)))
    best, cos = _match(trained.W_dec, sim.dictionary.values)
    assert (cos[PLANTED] > 0.9).all()
    assert latent_brain_map(z, brain).argmax("latent").values.tolist() == best[PLANTED].tolist()
    w = latent_brain_map(z, brain, method="weights", alphas=[1.0])
    assert w.name == "weight" and abs(w).argmax("latent").values.tolist() == best[PLANTED].tolist()


def test_latent_brain_map_weights_match_sklearn_ridge(sim):
    brain = _planted_brain(sim, n=300, noise=0.3)
    z = sim.codes.isel(stimulus=slice(0, 300)).copy()
    z[:, 5] = 0.0  # a dead latent: weight 0, correlation NaN
    with nb.config_context(dtype="float64"):
        w = latent_brain_map(z, brain, method="weights", alphas=[3.0])
    X = z.values.astype(float)
    sd = X.std(0)
    Xz = np.where(sd > 0, (X - X.mean(0)) / np.where(sd > 0, sd, 1), 0)
    ref = Ridge(alpha=3.0).fit(Xz, brain.values).coef_.T
    np.testing.assert_allclose(w.values, ref, rtol=1e-8, atol=1e-12)
    assert (w.sel(latent=5) == 0).all()
    assert latent_brain_map(z, brain).sel(latent=5).isnull().all()


def test_latent_brain_map_bad_input(sim):
    brain = _planted_brain(sim, n=50)
    z = sim.codes.isel(stimulus=slice(0, 50))
    with pytest.raises(ValueError, match="method"):
        latent_brain_map(z, brain, method="lasso")
    with pytest.raises(TypeError, match="xr.DataArray"):
        latent_brain_map(z.values, brain)
    with pytest.raises(ValueError, match="dims"):
        latent_brain_map(z.expand_dims(token=2), brain)
    with pytest.raises(SchemaError, match="stimulus"):
        latent_brain_map(z.assign_coords(stimulus=[f"x{i}" for i in range(50)]), brain)


# -- (c) top-activating stimuli ------------------------------------------------------------------------------------

def test_top_stimuli_equals_numpy_argsort(sim, trained):
    acts = sim.data.isel(stimulus=slice(0, 500)).assign_coords(category=("stimulus", np.arange(500) % 4))
    z = latent_codes(trained, acts)
    top = top_stimuli(z, 7)
    ref = np.argsort(-z.values, axis=0, kind="stable")[:7].T  # (latent, rank)
    np.testing.assert_array_equal(top["index"].values, ref)
    np.testing.assert_array_equal(top["stimulus"].values, acts["stimulus"].values[ref])
    np.testing.assert_array_equal(top["category"].values, (np.arange(500) % 4)[ref])
    np.testing.assert_array_equal(top["activation"].values, np.take_along_axis(z.values, ref.T, 0).T)
    assert top.activation.dims == ("latent", "rank")
    sub = top_stimuli(z, 3, latent=[5, 2])
    assert sub.latent.values.tolist() == [5, 2]
    np.testing.assert_array_equal(sub["index"].values, ref[[5, 2], :3])
    with pytest.raises(ValueError, match="n must be"):
        top_stimuli(z, 501)
    with pytest.raises(ValueError, match="n must be"):
        top_stimuli(z, 0)


def test_top_stimuli_on_stacked_samples_carries_the_levels():
    rng = np.random.default_rng(0)
    z = xr.DataArray(rng.random((3, 5, 4)), dims=("stimulus", "time", "latent"),
                     coords={"stimulus": list("abc"), "time": np.arange(5) * 0.1, "latent": np.arange(4)})
    flat = z.stack(sample=("stimulus", "time")).transpose("sample", "latent")
    top = top_stimuli(flat, 2)
    ref = np.argsort(-flat.values, axis=0, kind="stable")[:2].T
    np.testing.assert_array_equal(top["stimulus"].values, flat["stimulus"].values[ref])
    np.testing.assert_allclose(top["time"].values, flat["time"].values[ref])
    assert "sample" not in top.coords


# -- (d) selectivity ---------------------------------------------------------------------------------------------------

def test_latent_selectivity_recovers_the_planted_latent(sim):
    z = sim.codes.isel(stimulus=slice(0, 400))
    label = z.sel(latent=13).values > 0  # the label is "latent 13 is active"
    zl = z.assign_coords(animate=("stimulus", label))
    sel = latent_selectivity(zl, "animate", n_permutations=199, seed=0)
    assert sel.selectivity.dims == ("latent",)
    assert int(sel.selectivity.argmax("latent")) == 13 and float(sel.selectivity.sel(latent=13)) == 1.0
    np.testing.assert_allclose(sel.selectivity, [roc_auc_score(label, z.values[:, j]) for j in range(24)], atol=1e-12)
    assert float(sel.pvalue.sel(latent=13)) == pytest.approx(1 / 200)
    assert int(sel.n_positive) == label.sum() and sel.attrs["metric"] == "auc"
    # brute-force reference of the p-values: the same permutations, the pairwise AUC, two-sided about 0.5
    perms = nb.stats.permutation_indices(400, 199, seed=0).numpy()
    obs = np.abs(sel.selectivity.values - 0.5)
    exceed = np.ones(24)
    for p in perms:
        exceed += np.abs(_pairwise_auc(label[p], z.values) - 0.5) >= obs - 1e-12
    np.testing.assert_allclose(sel.pvalue.values, exceed / 200)
    many = latent_selectivity(zl, "animate", n_permutations=1999, seed=0)
    assert float(many.pvalue.sel(latent=13)) == pytest.approx(1 / 2000)
    assert bool(many.significant.sel(latent=13))  # survives FDR over the 24 latents
    # d' against the float64 closed form
    d = latent_selectivity(zl, "animate", metric="dprime")
    a, b = z.values[label], z.values[~label]
    ref = (a.mean(0) - b.mean(0)) / np.sqrt((a.var(0, ddof=1) + b.var(0, ddof=1)) / 2)
    np.testing.assert_allclose(d.selectivity.values, ref, rtol=1e-10)
    assert int(d.selectivity.argmax("latent")) == 13


def test_latent_selectivity_one_vs_rest_and_positive(sim):
    z = sim.codes.isel(stimulus=slice(0, 300))
    cls = np.array(["face", "body", "object"])[np.arange(300) % 3]
    sel = latent_selectivity(z, cls)
    assert sel.selectivity.dims == ("latent", "label")
    assert set(sel.label.values.tolist()) == {"face", "body", "object"}
    for c in ("face", "body", "object"):
        ref = [roc_auc_score(cls == c, z.values[:, j]) for j in range(24)]
        np.testing.assert_allclose(sel.selectivity.sel(label=c), ref, atol=1e-12)
    one = latent_selectivity(z, cls, positive="body")
    assert one.selectivity.dims == ("latent",) and one.positive.item() == "body"
    np.testing.assert_allclose(one.selectivity, sel.selectivity.sel(label="body"))


def test_latent_selectivity_permutes_stimuli_not_trials(sim):
    # 2 trials per stimulus: labels belong to stimuli, so the null relabels whole stimuli
    z1 = sim.codes.isel(stimulus=slice(0, 60)).values
    ids = np.tile(sim.data["stimulus"].values[:60], 2)
    label = np.tile(z1[:, 4] > 0, 2)
    zt = xr.DataArray(np.concatenate([z1, z1 * 0.9]), dims=("trial", "latent"),
                      coords={"trial": np.arange(120), "stimulus": ("trial", ids), "latent": np.arange(24)})
    sel = latent_selectivity(zt, label, n_permutations=99, seed=1)
    perms = nb.stats.permutation_indices(60, 99, seed=1).numpy()
    lab_s = z1[:, 4] > 0
    obs = np.abs(sel.selectivity.values - 0.5)
    exceed = np.ones(24)
    codes = np.tile(np.arange(60), 2)
    for p in perms:
        exceed += np.abs(_pairwise_auc(lab_s[p][codes], zt.values) - 0.5) >= obs - 1e-12
    np.testing.assert_allclose(sel.pvalue.values, exceed / 100)
    with pytest.raises(ValueError, match="vary within"):
        latent_selectivity(zt, np.arange(120) < 60, n_permutations=9)


def test_latent_selectivity_bad_input(sim):
    z = sim.codes.isel(stimulus=slice(0, 40))
    with pytest.raises(ValueError, match="coordinate"):
        latent_selectivity(z, "animate")
    with pytest.raises(ValueError, match="one label per"):
        latent_selectivity(z, np.zeros(39, bool))
    with pytest.raises(ValueError, match="one class"):
        latent_selectivity(z, np.zeros(40, bool))
    with pytest.raises(ValueError, match="metric"):
        latent_selectivity(z, np.arange(40) % 2 == 0, metric="accuracy")
    with pytest.raises(ValueError, match="positive"):
        latent_selectivity(z, np.array(["a", "b"] * 20), positive="c")
    with pytest.raises(ValueError, match="fewer than 2"):
        latent_selectivity(z, np.arange(40) == 0, metric="dprime")
    with pytest.raises(ValueError, match="missing"):
        latent_selectivity(z, np.array(["a", None] * 20, dtype=object))
    nan = z.copy()
    nan[0, 0] = np.nan
    with pytest.raises(SchemaError, match="non-finite"):
        latent_selectivity(nan, np.arange(40) % 2 == 0)


# -- (e) SAEs on brain responses ----------------------------------------------------------------------------------

def test_train_brain_sae_recovers_voxel_patterns(sim):
    # voxel responses built from a known dictionary of 24 voxel patterns (2 active per trial)
    scale = np.linspace(0.5, 3.0, 16)  # voxels of different scales: standardising undoes them, patterns redo them
    brain = nb.core.fmri_responses(sim.data.values * scale, stimulus=sim.data["stimulus"].values,
                                   voxel_coords={"roi": np.repeat(["V1", "IT"], 8)})
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        res = train_brain_sae(brain, TopKConfig(n_latents=48, k=2), epochs=10, batch_size=128, lr=1e-2,
                              progress=False)
    finally:
        torch.set_num_threads(n)
    assert res.latents.dims == ("trial", "latent") and res.patterns.dims == ("latent", "voxel")
    np.testing.assert_array_equal(res.latents["stimulus"].values, brain["stimulus"].values)
    np.testing.assert_array_equal(res.patterns["roi"].values, brain["roi"].values)
    _, cos = _match(torch.from_numpy(res.patterns.values), sim.dictionary.values * scale)
    assert (cos > 0.9).mean() >= 0.9  # the planted patterns, in the brain's units
    np.testing.assert_allclose(res.inputs.mean("trial"), 0, atol=1e-5)
    np.testing.assert_allclose(res.inputs.std("trial"), 1, atol=1e-4)


def test_brain_sae_input_flattens_channels_x_time_and_patterns_unflatten():
    rng = np.random.default_rng(0)
    ep = nb.core.eeg_epochs(rng.normal(size=(30, 3, 5)), sfreq=100.0, stimulus=np.repeat(np.arange(10), 3))
    x = brain_sae_input(ep, standardize=False)
    assert x.dims == ("trial", "unit") and x.sizes["unit"] == 15
    assert x.attrs["sae_unit_dims"] == ["channel", "time"]
    np.testing.assert_array_equal(x.values, ep.values.reshape(30, 15).astype(np.float32))
    sae = SAE(TopKConfig(n_latents=6, k=2, d_in=15))
    W = torch.randn(6, 15)
    with torch.no_grad():
        sae.W_dec.copy_(W)
        sae.input_scale.fill_(2.0)
    pat = latent_patterns(sae, x)
    assert pat.dims == ("latent", "channel", "time")
    np.testing.assert_allclose(pat.values, (W.double().numpy() / 2.0).reshape(6, 3, 5), rtol=1e-6)
    np.testing.assert_array_equal(pat["channel"].values, ep["channel"].values)
    # standardised: patterns come back in the brain's units
    xs = brain_sae_input(ep)
    scale = ep.values.reshape(30, 15).std(0)
    np.testing.assert_allclose(latent_patterns(sae, xs).values.reshape(6, 15), W.double().numpy() / 2 * scale,
                               rtol=1e-5)
    z = latent_codes(sae, xs)
    np.testing.assert_array_equal(z["stimulus"].values, ep["stimulus"].values)


def test_brain_sae_input_stimulus_x_time_samples():
    rng = np.random.default_rng(1)
    ev = xr.DataArray(rng.normal(size=(4, 6, 10)), dims=("stimulus", "channel", "time"),
                      coords={"stimulus": ["aud/l", "aud/r", "vis/l", "vis/r"], "channel": [f"c{i}" for i in range(6)],
                              "time": np.arange(10) / 100, "nave": ("stimulus", [3, 6, 6, 6])})
    x = brain_sae_input(ev, sample_dims=("stimulus", "time"))
    assert x.dims == ("sample", "unit") and x.sizes["sample"] == 40
    ref = ev.values.transpose(0, 2, 1).reshape(40, 6)
    np.testing.assert_allclose(x.values, (ref - ref.mean(0)) / ref.std(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(x["unit"].values, ev["channel"].values)
    sae = SAE(TopKConfig(n_latents=8, k=2, d_in=6))
    z = latent_codes(sae, x)
    back = z.unstack("sample")
    assert set(back.dims) == {"stimulus", "time", "latent"}
    assert latent_patterns(sae, x).dims == ("latent", "channel")
    sel = latent_selectivity(z, np.char.startswith(z["stimulus"].values.astype(str), "aud"), n_permutations=5)
    assert sel.selectivity.dims == ("latent",)  # permutations relabel the 4 stimuli, not the 40 samples


def test_brain_sae_input_bad_input():
    ep = nb.core.eeg_epochs(np.zeros((4, 2, 3)), sfreq=100.0, stimulus=list("abcd"))
    with pytest.raises(ValueError, match="every dim"):
        brain_sae_input(ep, sample_dims=("trial", "channel", "time"))
    with pytest.raises(ValueError, match="distinct dims"):
        brain_sae_input(ep, sample_dims="voxel")
    with pytest.raises(ValueError, match="none of the sample dims"):
        brain_sae_input(xr.DataArray(np.zeros((3, 2)), dims=("a", "b")))
    with pytest.raises(ValueError, match="sample"):
        brain_sae_input(ep.isel(trial=[0]))
    with pytest.raises(TypeError, match="DataArray"):
        brain_sae_input(np.zeros((4, 3)))
    bad = ep.copy()
    bad[0, 0, 0] = np.inf
    with pytest.raises(SchemaError, match="non-finite"):
        brain_sae_input(bad)
    with pytest.raises(ValueError, match="brain_sae_input"):
        latent_patterns(SAE(TopKConfig(n_latents=4, k=1, d_in=6)), ep)
    x = brain_sae_input(ep.isel(time=[0, 1]) + np.arange(4)[:, None, None])
    with pytest.raises(ValueError, match="d_in"):
        latent_patterns(SAE(TopKConfig(n_latents=4, k=1, d_in=6)), x)
