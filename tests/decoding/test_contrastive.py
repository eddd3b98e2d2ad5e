"""The contrastive (CLIP InfoNCE) linear decoder: the loss against a float64 closed form and the cross-entropy
formulation, planted retrieval against ridge on the same folds and metrics (close in a linear-Gaussian world,
better where the brain carries the embedding through scale distortions, heavy-tailed noise or alongside
embedding dims it does not encode), determinism, early stopping, and bad input."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

import neurobridge as nb
from neurobridge.decoding import ContrastiveDecoder, info_nce_loss

FAST = dict(random_state=0, max_epochs=40)


def _ids(n):
    return [f"s{i}" for i in range(n)]


def _planted(n=150, d=8, p=40, noise=4.0, seed=0, kind="gauss"):
    """brain = embedding @ mixing (+ distortions) + noise, as labelled containers."""
    rng = np.random.default_rng(seed)
    E = rng.normal(size=(n, d))
    S = E @ rng.normal(size=(d, p))
    N = rng.normal(size=(n, p))
    if kind == "scale":  # each stimulus's response has its own gain (log-normal)
        S = S * np.exp(rng.normal(size=(n, 1)))
    if kind == "heavy":  # heavy-tailed noise (Student t, 1.5 degrees of freedom)
        N = rng.standard_t(1.5, size=(n, p))
    if kind == "unencoded":  # 4 embedding dims of large variance that the brain does not carry
        E = np.concatenate([E, 3.0 * rng.normal(size=(n, 4))], 1)
    ids = _ids(n)
    return (nb.core.fmri_responses(S + noise * N, stimulus=ids, dim="stimulus"),
            nb.core.activations(E, stimulus=ids))


# ---------------------------------------------------------------------------------------------------- loss
def _closed_form(B, T, tau, same=None, symmetric=True):
    """Float64 InfoNCE with loops: s_ij = cos(b_i, t_j) / tau over the candidates j allowed for i."""
    B, T = np.asarray(B, dtype=np.float64), np.asarray(T, dtype=np.float64)
    n = len(B)
    cos = np.array([[B[i] @ T[j] / (np.linalg.norm(B[i]) * np.linalg.norm(T[j])) for j in range(n)]
                    for i in range(n)])
    s = cos / tau
    ok = np.ones((n, n), dtype=bool) if same is None else \
        (np.asarray(same)[:, None] != np.asarray(same)[None, :]) | np.eye(n, dtype=bool)
    rows = np.mean([-s[i, i] + math.log(sum(math.exp(s[i, j]) for j in range(n) if ok[i, j])) for i in range(n)])
    cols = np.mean([-s[j, j] + math.log(sum(math.exp(s[i, j]) for i in range(n) if ok[i, j])) for j in range(n)])
    return 0.5 * (rows + cols) if symmetric else rows


def test_loss_matches_float64_closed_form_and_cross_entropy():
    rng = np.random.default_rng(0)
    B, T = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    Bt, Tt = torch.as_tensor(B), torch.as_tensor(T)
    for tau in (1.0, 0.07):
        ours = info_nce_loss(Bt, Tt, tau)
        assert ours.dtype == torch.float64
        np.testing.assert_allclose(ours.item(), _closed_form(B, T, tau), rtol=1e-12)
        # CLIP's formulation: cross-entropy of the logits and of their transpose against the diagonal
        logits = F.normalize(Bt, dim=1) @ F.normalize(Tt, dim=1).T / tau
        labels = torch.arange(5)
        ce = 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))
        np.testing.assert_allclose(ours.item(), ce.item(), rtol=1e-12)
        one_way = info_nce_loss(Bt, Tt, tau, symmetric=False)
        np.testing.assert_allclose(one_way.item(), F.cross_entropy(logits, labels).item(), rtol=1e-12)
        np.testing.assert_allclose(one_way.item(), _closed_form(B, T, tau, symmetric=False), rtol=1e-12)
    # repetitions of a stimulus are not each other's negatives
    same = torch.tensor([0, 1, 0, 2, 1])
    np.testing.assert_allclose(info_nce_loss(Bt, Tt, 0.5, same=same).item(),
                               _closed_form(B, T, 0.5, same=same.numpy()), rtol=1e-12)
    assert not np.isclose(info_nce_loss(Bt, Tt, 0.5, same=same).item(), info_nce_loss(Bt, Tt, 0.5).item())
    # scale invariance of the cosine, and log(n) when the similarities carry nothing
    np.testing.assert_allclose(info_nce_loss(3.0 * Bt, 0.1 * Tt, 0.5).item(), info_nce_loss(Bt, Tt, 0.5).item(),
                               rtol=1e-12)
    np.testing.assert_allclose(info_nce_loss(torch.zeros(5, 3, dtype=torch.float64), Tt, 0.3).item(), math.log(5),
                               rtol=1e-12)  # a zero row: similarity 0 with every candidate


def test_loss_gradients_match_finite_differences():
    g = torch.Generator().manual_seed(1)
    B = torch.randn(6, 4, dtype=torch.float64, generator=g, requires_grad=True)
    T = torch.randn(6, 4, dtype=torch.float64, generator=g, requires_grad=True)
    tau = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    same = torch.tensor([0, 0, 1, 2, 3, 1])
    assert torch.autograd.gradcheck(lambda b, t, s: info_nce_loss(b, t, s, same=same), (B, T, tau), fast_mode=True)


# --------------------------------------------------------------------------------------------- estimator
def test_fit_predict_shapes_types_and_the_folded_linear_map():
    rng = np.random.default_rng(2)
    E = rng.normal(size=(60, 5))
    X = E @ rng.normal(size=(5, 12)) + rng.normal(size=(60, 12))
    dec = ContrastiveDecoder(**FAST).fit(X, E)
    pred = dec.predict(X)
    assert isinstance(pred, np.ndarray) and pred.shape == (60, 5) and dec.coef_.shape == (5, 12)
    np.testing.assert_allclose(pred, X @ dec.coef_.T + dec.intercept_, rtol=1e-4, atol=1e-4)
    # the features are standardised inside: rescaling and shifting them leaves the predictions unchanged
    scale, shift = rng.uniform(0.01, 100, size=12), rng.normal(size=12) * 50
    with nb.config_context(dtype="float64"):
        a = ContrastiveDecoder(**FAST).fit(X, E).predict(X)
        b = ContrastiveDecoder(**FAST).fit(X * scale + shift, E).predict(X * scale + shift)
    np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-8)
    # tensors in, tensors out
    dec_t = ContrastiveDecoder(**FAST).fit(torch.as_tensor(X), torch.as_tensor(E))
    out = dec_t.predict(torch.as_tensor(X[:4]))
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float64 and out.shape == (4, 5)
    assert isinstance(dec_t.transform_target(torch.as_tensor(E)), torch.Tensor)
    # the target space: the embedding less the training mean (no projection by default)
    np.testing.assert_allclose(dec.transform_target(E), E - dec.target_mean_.numpy(), rtol=1e-5, atol=1e-6)
    assert np.abs(dec.target_mean_.numpy()).max() > 0
    assert ContrastiveDecoder(**FAST, center_target=False).fit(X, E).target_mean_.abs().max() == 0
    assert 0.5 < dec.score(X, E) <= 1.0


def test_deterministic_under_a_seed():
    brain, emb = _planted(n=80, seed=3)
    X, E = brain.values, emb.values
    a = ContrastiveDecoder(random_state=5, max_epochs=30).fit(X, E)
    b = ContrastiveDecoder(random_state=5, max_epochs=30).fit(X, E)
    c = ContrastiveDecoder(random_state=6, max_epochs=30).fit(X, E)
    np.testing.assert_array_equal(a.coef_, b.coef_)
    np.testing.assert_array_equal(a.val_loss_, b.val_loss_)
    assert a.temperature_ == b.temperature_ and a.best_epoch_ == b.best_epoch_
    assert not np.allclose(a.coef_, c.coef_)
    r1 = nb.decoding.retrieval(brain, emb, decoder=ContrastiveDecoder(**FAST), cv=3, top_k=(1, 5))
    r2 = nb.decoding.retrieval(brain, emb, decoder=ContrastiveDecoder(**FAST), cv=3, top_k=(1, 5))
    np.testing.assert_array_equal(r1["prediction"].values, r2["prediction"].values)
    assert r1["top_1"].item() == r2["top_1"].item()


def test_early_stopping_keeps_the_best_epoch():
    rng = np.random.default_rng(4)
    E = rng.normal(size=(80, 6))
    X = rng.normal(size=(80, 40))  # no relation: the validation loss rises as the decoder overfits
    dec = ContrastiveDecoder(random_state=0, patience=5, max_epochs=200).fit(X, E)
    assert dec.n_epochs_ < 60 and dec.n_epochs_ == dec.best_epoch_ + 5
    assert len(dec.val_loss_) == len(dec.train_loss_) == dec.n_epochs_
    assert dec.val_loss_[dec.best_epoch_ - 1] == dec.val_loss_.min()
    assert dec.train_loss_[-1] < dec.train_loss_[0]  # training still went on improving the training loss
    # the kept weights are those of the best epoch: a run stopped there ends with the same weights
    stopped = ContrastiveDecoder(random_state=0, patience=5, max_epochs=dec.best_epoch_).fit(X, E)
    np.testing.assert_array_equal(stopped.coef_, dec.coef_)
    assert stopped.temperature_ == dec.temperature_
    # no validation: all epochs, the last weights
    full = ContrastiveDecoder(random_state=0, val_fraction=0, max_epochs=7).fit(X, E)
    assert full.n_epochs_ == full.best_epoch_ == 7 and full.val_loss_.size == 0


def test_temperature_fixed_learned_and_capped():
    brain, emb = _planted(n=60, seed=5)
    X, E = brain.values, emb.values
    fixed = ContrastiveDecoder(random_state=0, max_epochs=20, temperature=0.2, learn_temperature=False).fit(X, E)
    assert fixed.temperature_ == pytest.approx(0.2, rel=1e-6)
    learned = ContrastiveDecoder(random_state=0, max_epochs=20, temperature=0.2).fit(X, E)
    assert abs(learned.temperature_ - 0.2) > 1e-3
    capped = ContrastiveDecoder(random_state=0, max_epochs=3, temperature=1e-4, val_fraction=0).fit(X, E)
    assert capped.temperature_ >= 0.01 * (1 - 1e-6)  # CLIP's cap: an inverse temperature of at most 100


def test_repeated_trials_are_not_negatives_of_each_other():
    """Three identical trials per stimulus: with repetitions masked out of the negatives, a perfectly decodable
    brain drives the loss near 0; counted as negatives, three tied candidates would keep it above log(3)."""
    rng = np.random.default_rng(6)
    E = rng.normal(size=(30, 6))
    rows = np.repeat(np.arange(30), 3)
    X = E[rows] @ rng.normal(size=(6, 10))
    dec = ContrastiveDecoder(random_state=0, val_fraction=0, max_epochs=150, batch_size=90).fit(X, E[rows])
    assert dec.train_loss_[-1] < 0.3 < math.log(3)
    unmasked = info_nce_loss(torch.as_tensor(dec.predict(X)), torch.as_tensor(dec.transform_target(E[rows])),
                             dec.temperature_)
    assert unmasked.item() > math.log(3) - 0.01


def test_project_target_learns_the_second_tower():
    brain, emb = _planted(n=100, kind="unencoded", noise=3.0, seed=7)
    dec = ContrastiveDecoder(random_state=0, project_target=True).fit(brain.values, emb.values)
    G = dec.target_projection_.numpy()
    assert G.shape == (12, 12) and not np.allclose(G, np.eye(12))
    # the dims the brain does not carry are scaled down relative to those it carries
    assert np.linalg.norm(G[8:], axis=1).mean() < 0.7 * np.linalg.norm(G[:8], axis=1).mean()
    np.testing.assert_allclose(dec.transform_target(emb.values), (emb.values - dec.target_mean_.numpy()) @ G,
                               rtol=1e-4, atol=1e-5)


def test_sklearn_api():
    dec = ContrastiveDecoder(lr=0.05, patience=3)
    assert clone(dec).get_params()["lr"] == 0.05 and dec.set_params(batch_size=16).batch_size == 16
    with pytest.raises(NotFittedError):
        dec.predict(np.zeros((2, 3)))
    rng = np.random.default_rng(8)
    fitted = ContrastiveDecoder(**FAST).fit(rng.normal(size=(20, 3)), rng.normal(size=(20, 4)))
    back = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(back.predict(np.ones((2, 3))), fitted.predict(np.ones((2, 3))))


# ------------------------------------------------------------------------------------- planted retrieval
def test_planted_retrieval_close_to_ridge():
    """A linear-Gaussian brain (ridge's own model): the contrastive decoder comes close to ridge on the same
    folds and candidates (30 per fold), both far above chance; a shuffled pairing falls to chance."""
    brain, emb = _planted(n=150, d=8, p=40, noise=4.0, seed=0)
    ridge = nb.decoding.retrieval(brain, emb, cv=5, top_k=(1, 5))
    ctr = nb.decoding.retrieval(brain, emb, cv=5, top_k=(1, 5), decoder="contrastive")
    assert ctr.attrs["n_candidates"] == ridge.attrs["n_candidates"] == 30
    assert ctr.attrs["decoder"] == "contrastive" and ridge.attrs["decoder"] == "ridge"
    assert ctr["top_1"] > 10 * ctr.attrs["chance_top_1"] and ctr["top_5"] > 0.85
    assert ctr["top_1"] > ridge["top_1"] - 0.1 and ctr["top_5"] > ridge["top_5"] - 0.06
    assert ctr["two_vs_two"] > ridge["two_vs_two"] - 0.02 and ctr["rank_accuracy"] > ridge["rank_accuracy"] - 0.03
    assert ctr["temperature"].dims == ("fold",) and (ctr["n_epochs"] >= 1).all() and "alpha" not in ctr
    shuffled = emb.copy(data=emb.values[np.random.default_rng(0).permutation(150)])
    null = nb.decoding.retrieval(brain, shuffled, cv=5, top_k=(1, 5), decoder="contrastive")
    assert null["rank_accuracy"] < 0.6 and null["top_1"] < 0.1


def test_retrieval_scores_are_those_of_the_same_metrics_on_each_fold():
    """The Dataset's scores are retrieval_scores of the held-out predictions against the candidates in each
    fold's target space: the decoder refitted on a fold's training stimuli gives those predictions exactly."""
    brain, emb = _planted(n=60, seed=9)
    dec = ContrastiveDecoder(random_state=3, max_epochs=30)
    per = nb.decoding.retrieval(brain, emb, cv=3, top_k=(1, 2), decoder=dec, keep_folds=True, metric="cosine")
    X, E = brain.values.astype(np.float32), emb.values.astype(np.float32)
    fold = per["test_fold"].values
    for f in range(3):
        te = np.flatnonzero(fold == f)
        model = clone(dec).fit(torch.as_tensor(X[fold != f]), torch.as_tensor(E[fold != f]))
        pred = model.predict(torch.as_tensor(X[te]))
        np.testing.assert_allclose(per["prediction"].values[te], pred.numpy(), rtol=1e-5, atol=1e-6)
        s = nb.decoding.retrieval_scores(pred, model.transform_target(torch.as_tensor(E[te])), metric="cosine",
                                         top_k=(1, 2))
        assert per["top_1"].values[f] == pytest.approx(s.top_k[0].item(), abs=1e-9)
        assert per["top_2"].values[f] == pytest.approx(s.top_k[1].item(), abs=1e-9)
        assert per["rank_accuracy"].values[f] == pytest.approx(s.rank_accuracy.item(), abs=1e-6)
        assert per["two_vs_two"].values[f] == pytest.approx(s.two_vs_two.item(), abs=1e-6)
        assert per["temperature"].values[f] == model.temperature_
    every = nb.decoding.retrieval(brain, emb, cv=3, top_k=1, decoder=dec, keep_folds=True, metric="cosine",
                                  candidates="all")
    np.testing.assert_allclose(every["two_vs_two"].values, per["two_vs_two"].values, atol=1e-12)
    assert every.attrs["n_candidates"] == 60 and (every["top_1"].values <= per["top_1"].values + 1e-12).all()


def test_projection_beats_ridge_when_the_embedding_has_dims_the_brain_lacks():
    """Four high-variance embedding dims that the brain does not carry swamp the distances among candidates;
    the contrastive decoder with a learned target projection (CLIP's second tower) discounts them, which no
    brain -> embedding regression can do."""
    brain, emb = _planted(n=150, d=8, p=40, noise=3.0, seed=0, kind="unencoded")
    ridge = nb.decoding.retrieval(brain, emb, cv=5, top_k=(1, 5))
    ridge_each = nb.decoding.retrieval(brain, emb, cv=5, top_k=(1, 5), alpha_per_target=True)
    proj = nb.decoding.retrieval(brain, emb, cv=5, top_k=(1, 5),
                                 decoder=ContrastiveDecoder(random_state=0, project_target=True))
    best_ridge = max(ridge["top_1"].item(), ridge_each["top_1"].item())
    assert proj["top_1"] > best_ridge + 0.2 and proj["top_5"] > 0.9


def test_trials_decode_with_repetitions_held_out_together():
    rng = np.random.default_rng(10)
    n_stim, reps = 40, 3
    E = rng.normal(size=(n_stim, 6))
    stim = np.tile(np.arange(n_stim), reps)
    X = E[stim] @ rng.normal(size=(6, 20)) + 2.0 * rng.normal(size=(len(stim), 20))
    ids = np.array(_ids(n_stim))
    brain = nb.core.fmri_responses(X, stimulus=ids[stim])
    res = nb.decoding.retrieval(brain, nb.core.activations(E, stimulus=ids), sample_dim="trial", top_k=(1, 3),
                                decoder=ContrastiveDecoder(random_state=0, max_epochs=60))
    assert res.attrs["n_candidates"] == 8 and res.sizes["stimulus"] == n_stim
    assert res["top_1"] > 0.7 and res["two_vs_two"] > 0.95


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["scale", "heavy"])
def test_beats_ridge_under_scale_distortion_and_heavy_tailed_noise(kind):
    """300 stimuli (60 candidates per fold), 5 simulations each: a log-normal gain per stimulus, or Student-t
    (1.5 d.o.f.) noise. Squared error weighs the large responses; the cosine does not. Seen: scale 0.909 vs
    0.873 top-1, heavy 0.576 vs 0.416 (ridge's varying from 0.10 to 0.60 across simulations)."""
    diffs = []
    for seed in range(5):
        brain, emb = _planted(n=300, d=16, p=60, noise=2.0, seed=seed, kind=kind)
        ridge = nb.decoding.retrieval(brain, emb, cv=5, top_k=(1, 5))
        ctr = nb.decoding.retrieval(brain, emb, cv=5, top_k=(1, 5), decoder="contrastive")
        diffs.append(ctr["top_1"].item() - ridge["top_1"].item())
    assert np.mean(diffs) > 0.02 and np.mean(np.array(diffs) > 0) >= 0.6, diffs


# ---------------------------------------------------------------------------------------------- bad input
def test_bad_parameters_are_refused():
    X, E = np.random.default_rng(11).normal(size=(20, 3)), np.random.default_rng(12).normal(size=(20, 4))
    for kw, msg in [(dict(temperature=0.0), "temperature must be a number > 0"),
                    (dict(lr=-1.0), "lr must be a number > 0"),
                    (dict(weight_decay=-0.1), "weight_decay must be a number >= 0"),
                    (dict(max_epochs=0), "max_epochs must be an integer > 0"),
                    (dict(patience=1.5), "patience must be an integer > 0"),
                    (dict(batch_size=1), r"batch_size must be >= 2"),
                    (dict(val_fraction=1.0), r"val_fraction must be in \[0, 1\)"),
                    (dict(temperature=float("nan")), "temperature must be a number > 0")]:
        with pytest.raises(ValueError, match=msg):
            ContrastiveDecoder(**kw).fit(X, E)
    with pytest.raises(ValueError, match="leaves 1 for validation.*val_fraction=0"):
        ContrastiveDecoder(val_fraction=0.05).fit(X, E)


def test_bad_data_is_refused():
    rng = np.random.default_rng(13)
    X, E = rng.normal(size=(20, 3)), rng.normal(size=(20, 4))
    bad = X.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        ContrastiveDecoder().fit(bad, E)
    with pytest.raises(ValueError, match="X contains 1 non-finite"):
        ContrastiveDecoder().fit(torch.as_tensor(bad), torch.as_tensor(E))
    with pytest.raises(ValueError, match="n_targets >= 2"):
        ContrastiveDecoder().fit(X, E[:, 0])
    with pytest.raises(ValueError, match="n_targets >= 2"):
        ContrastiveDecoder().fit(X, E[:, :1])
    with pytest.raises(ValueError, match="inconsistent numbers of samples|different numbers of samples"):
        ContrastiveDecoder().fit(X, E[:10])
    with pytest.raises(ValueError, match="1 distinct embedding"):
        ContrastiveDecoder(val_fraction=0).fit(X, np.ones((20, 4)))
    dec = ContrastiveDecoder(**FAST).fit(X, E)
    with pytest.raises(ValueError, match="expecting 3 features"):
        dec.predict(np.ones((2, 5)))
    with pytest.raises(ValueError, match="4 columns"):
        dec.transform_target(np.ones((2, 3)))
    # the loss
    with pytest.raises(ValueError, match="same shape"):
        info_nce_loss(torch.ones(3, 2), torch.ones(4, 2))
    with pytest.raises(ValueError, match="at least 2 pairs"):
        info_nce_loss(torch.ones(1, 2), torch.ones(1, 2))
    with pytest.raises(ValueError, match="temperature must be > 0"):
        info_nce_loss(torch.ones(3, 2), torch.ones(3, 2), 0.0)
    with pytest.raises(ValueError, match=r"one stimulus code per row, shape \(3,\)"):
        info_nce_loss(torch.ones(3, 2), torch.ones(3, 2), same=torch.tensor([0, 1]))


def test_retrieval_decoder_option_is_checked():
    brain, emb = _planted(n=20)
    with pytest.raises(ValueError, match=r"decoder='lasso'.*\('ridge', 'contrastive'\)"):
        nb.decoding.retrieval(brain, emb, decoder="lasso")
    with pytest.raises(TypeError, match="decoder must be 'ridge', 'contrastive' or a nb.decoding.ContrastiveDecoder"):
        nb.decoding.retrieval(brain, emb, decoder=object())
    with pytest.raises(ValueError, match="alphas and alpha_per_target choose the ridge penalty"):
        nb.decoding.retrieval(brain, emb, decoder="contrastive", alphas=[1.0])
    with pytest.raises(ValueError, match="alphas and alpha_per_target"):
        nb.decoding.retrieval(brain, emb, decoder="contrastive", alpha_per_target=True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    brain, emb = _planted(n=100, seed=14)
    X, E = torch.as_tensor(brain.values), torch.as_tensor(emb.values)
    kw = dict(random_state=0, max_epochs=15, val_fraction=0)
    cpu = ContrastiveDecoder(**kw).fit(X, E)
    gpu = ContrastiveDecoder(**kw, device="cuda").fit(X, E)
    assert gpu.coef_.device.type == "cuda"
    np.testing.assert_allclose(gpu.coef_.cpu().numpy(), cpu.coef_.numpy(), rtol=1e-6, atol=1e-8)
    res = nb.decoding.retrieval(brain, emb, decoder=ContrastiveDecoder(**kw), device="cuda", cv=4)
    ref = nb.decoding.retrieval(brain, emb, decoder=ContrastiveDecoder(**kw), cv=4)
    np.testing.assert_allclose(res["prediction"].values, ref["prediction"].values, rtol=1e-3, atol=1e-4)


def test_adamw_first_step_closed_form():
    """From a zero state, Adam's first step is ``-lr * g / (|g| + eps)`` after the decoupled decay ``p (1 - lr wd)``."""
    from neurobridge.decoding._contrastive import _AdamW

    p0 = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    grad = torch.tensor([0.3, -1e-3, 0.0, 4.0], dtype=torch.float64)
    for wd in (0.0, 0.2):
        p = p0.clone().requires_grad_()
        p.grad = grad.clone()
        _AdamW([(p, wd)], 0.1).step()
        expected = p0.numpy() * (1 - 0.1 * wd) - 0.1 * grad.numpy() / (np.abs(grad.numpy()) + 1e-8)
        np.testing.assert_allclose(p.detach().numpy(), expected, rtol=1e-12, atol=1e-15)


@pytest.mark.slow  # constructing a torch.optim optimiser first imports torch._dynamo: seconds
def test_adamw_update_matches_torch_optim():
    """The decoder's written-out AdamW follows torch.optim.AdamW step by step (float64, with and without decay)."""
    from neurobridge.decoding._contrastive import _AdamW

    g = torch.Generator().manual_seed(15)
    X, Y = torch.randn(30, 5, dtype=torch.float64, generator=g), torch.randn(30, 3, dtype=torch.float64, generator=g)
    W0 = torch.randn(5, 3, dtype=torch.float64, generator=g)
    b0 = torch.randn(3, dtype=torch.float64, generator=g)
    runs = []
    for ours in (True, False):
        W, b = W0.clone().requires_grad_(), b0.clone().requires_grad_()
        opt = _AdamW([(W, 0.3), (b, 0.0)], 0.05) if ours else torch.optim.AdamW(
            [{"params": [W], "weight_decay": 0.3}, {"params": [b], "weight_decay": 0.0}], lr=0.05)
        for _ in range(25):
            opt.zero_grad()
            info_nce_loss(X @ W + b, Y, 0.2).backward()
            opt.step()
        runs.append((W.detach(), b.detach()))
    np.testing.assert_allclose(runs[0][0].numpy(), runs[1][0].numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(runs[0][1].numpy(), runs[1][1].numpy(), rtol=1e-12, atol=1e-14)
    assert not torch.allclose(runs[0][0], W0)
