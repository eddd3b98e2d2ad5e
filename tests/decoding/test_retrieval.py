"""Retrieval decoding (brain -> embedding): the metrics against a brute-force float64 reference (loops, scipy's
distances and average ranks), the ridge predictions against scikit-learn on the same folds, a planted encoding
recovered far above chance, shuffled pairings at chance, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr
from scipy.ndimage import gaussian_filter1d
from scipy.spatial.distance import cdist
from scipy.stats import rankdata
from sklearn.linear_model import RidgeCV as SkRidgeCV
from sklearn.model_selection import KFold

import neurobridge as nb
from neurobridge.decoding._retrieval import pairwise_distances

METRICS = ("correlation", "cosine", "euclidean")
ALPHAS = (0.1, 1.0, 10.0, 100.0, 1000.0)


def _ids(n, prefix="s"):
    return [f"{prefix}{i}" for i in range(n)]


# --------------------------------------------------------------------------------- brute-force reference
def _dist(a, b, metric):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if metric == "euclidean":
        return float(np.sqrt(sum((x - y) ** 2 for x, y in zip(a, b, strict=True))))
    if metric == "correlation":
        a, b = a - a.mean(), b - b.mean()
    na, nb_ = np.sqrt((a * a).sum()), np.sqrt((b * b).sum())
    if na == 0 or nb_ == 0:
        return 1.0
    return float(1.0 - sum(x * y for x, y in zip(a, b, strict=True)) / (na * nb_))


def _brute(pred, target, metric, ks):
    """Top-k (expected under a random tie-break), mid-ranks, rank accuracy and 2-vs-2, with loops."""
    n = len(pred)
    D = np.array([[_dist(pred[i], target[j], metric) for j in range(n)] for i in range(n)])
    ranks = np.array([rankdata(D[i], method="average")[i] for i in range(n)])
    hits = np.zeros(len(ks))
    for i in range(n):
        better = sum(D[i, j] < D[i, i] for j in range(n))
        tied = sum(D[i, j] == D[i, i] for j in range(n) if j != i)
        positions = range(better + 1, better + tied + 2)  # where the own candidate may land
        for q, k in enumerate(ks):
            hits[q] += sum(pos <= k for pos in positions) / (tied + 1)
    wins, pairs = 0.0, 0
    for i in range(n):
        for j in range(i + 1, n):
            same, cross = D[i, i] + D[j, j], D[i, j] + D[j, i]
            wins += 1.0 if same < cross else 0.5 if same == cross else 0.0
            pairs += 1
    return dict(top_k=hits / n, rank=ranks, rank_accuracy=float(np.mean(1 - (ranks - 1) / (n - 1))),
                two_vs_two=wins / pairs, D=D)


def _assert_matches(ours, ref, atol=1e-12):
    np.testing.assert_allclose(ours.top_k.numpy(), ref["top_k"], atol=atol)
    np.testing.assert_allclose(ours.rank.numpy(), ref["rank"], atol=atol)
    np.testing.assert_allclose(float(ours.rank_accuracy), ref["rank_accuracy"], atol=atol)
    np.testing.assert_allclose(float(ours.two_vs_two), ref["two_vs_two"], atol=atol)


# ------------------------------------------------------------------------------------------------ metrics
@pytest.mark.parametrize("metric", METRICS)
def test_distances_match_scipy_cdist(metric):
    rng = np.random.default_rng(0)
    A, B = rng.normal(size=(7, 5)) + 1.0, rng.normal(size=(9, 5))
    D = pairwise_distances(torch.as_tensor(A), torch.as_tensor(B), metric).numpy()
    np.testing.assert_allclose(D, cdist(A, B, metric), atol=1e-12)


@pytest.mark.parametrize("metric", METRICS)
def test_scores_match_brute_force(metric):
    rng = np.random.default_rng(1)
    target = rng.normal(size=(15, 6))
    pred = 0.6 * target + rng.normal(size=(15, 6))  # informative but far from perfect
    ks = (1, 3, 15)
    ref = _brute(pred, target, metric, ks)
    _assert_matches(nb.decoding.retrieval_scores(torch.as_tensor(pred), torch.as_tensor(target), metric=metric,
                                                 top_k=ks), ref)
    assert 0.2 < ref["top_k"][1] < 1.0 and ref["top_k"][2] == 1.0  # the case is not degenerate
    # numpy input runs in the configured dtype: float32 by default, float64 on request
    default = nb.decoding.retrieval_scores(pred, target, metric=metric, top_k=ks)
    _assert_matches(default, ref, atol=1e-5)
    with nb.config_context(dtype="float64"):
        _assert_matches(nb.decoding.retrieval_scores(pred, target, metric=metric, top_k=ks), ref)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("metric", METRICS)
def test_scores_with_ties_match_brute_force(metric, dtype):
    """Duplicated candidates and duplicated predictions tie exactly in the reference; ours must find the same
    ties in float32 too (a GEMM need not round duplicated columns alike)."""
    rng = np.random.default_rng(2)
    target = rng.normal(size=(12, 40))
    target[5] = target[2]
    target[9] = target[2]
    target[11] = target[0]
    pred = target + 0.8 * rng.normal(size=target.shape)
    pred[7] = pred[3]
    pred[10] = target[2]  # exactly on a candidate that two others duplicate
    ks = (1, 2, 4)
    ref = _brute(pred, target, metric, ks)
    assert (ref["rank"] % 1 != 0).any()  # mid-ranks of ties are exercised
    ours = nb.decoding.retrieval_scores(torch.as_tensor(pred, dtype=dtype), torch.as_tensor(target, dtype=dtype),
                                        metric=metric, top_k=ks)
    _assert_matches(ours, ref, atol=1e-12 if dtype == torch.float64 else 1e-6)


def test_scores_with_integer_ties_euclidean():
    """Small integer vectors: many exactly equal Euclidean distances between different vectors."""
    rng = np.random.default_rng(3)
    target = rng.integers(-2, 3, size=(20, 3)).astype(float)
    pred = rng.integers(-2, 3, size=(20, 3)).astype(float)
    ref = _brute(pred, target, "euclidean", (1, 3))
    assert (ref["rank"] % 1 != 0).sum() >= 5
    ours = nb.decoding.retrieval_scores(torch.as_tensor(pred), torch.as_tensor(target), metric="euclidean",
                                        top_k=(1, 3))
    _assert_matches(ours, ref)


@pytest.mark.parametrize("metric", METRICS)
def test_constant_prediction_scores_exactly_chance(metric):
    """A decoder that predicts one vector for every stimulus ties every candidate: exactly chance, not above."""
    rng = np.random.default_rng(4)
    target = rng.normal(size=(10, 5))
    pred = np.tile(rng.normal(size=5), (10, 1))
    s = nb.decoding.retrieval_scores(pred, target, metric=metric, top_k=(1, 3))
    ref = _brute(pred, target, metric, (1, 3))
    if metric == "euclidean":  # distances differ per candidate, but equally for every query
        _assert_matches(s, ref, atol=1e-6)
    np.testing.assert_allclose(s.two_vs_two.item(), 0.5, atol=1e-12)
    if metric != "euclidean":  # all candidates at the same distance
        np.testing.assert_allclose(s.top_k.numpy(), [0.1, 0.3], atol=1e-12)
        np.testing.assert_allclose(s.rank_accuracy.item(), 0.5, atol=1e-12)
    # zero-variance / zero-norm predictions carry no direction: distance 1 to everything, chance again
    if metric != "euclidean":
        flat = np.zeros_like(pred) + (1.0 if metric == "correlation" else 0.0)
        s0 = nb.decoding.retrieval_scores(flat, target, metric=metric, top_k=1)
        assert s0.top_k.item() == pytest.approx(0.1) and s0.two_vs_two.item() == pytest.approx(0.5)


def test_perfect_predictions_score_one():
    target = np.random.default_rng(5).normal(size=(8, 4))
    for metric in METRICS:
        s = nb.decoding.retrieval_scores(target, target, metric=metric, top_k=(1, 8))
        assert s.top_k.tolist() == [1.0, 1.0] and s.rank_accuracy.item() == 1.0 and s.two_vs_two.item() == 1.0
        assert s.n_candidates == 8 and s.k == (1, 8)


def test_score_null_is_chance_over_many_shuffles():
    """Random pairings at the metric level: means at k/n, 0.5, 0.5 within 4 standard errors (500 nulls)."""
    rng = np.random.default_rng(6)
    n, n_null = 10, 500
    target = gaussian_filter1d(rng.normal(size=(n, 30)), 2.0, axis=0)  # strongly correlated candidates
    pred = target + 0.3 * rng.normal(size=target.shape)
    out = np.array([[*s.top_k.tolist(), s.rank_accuracy.item(), s.two_vs_two.item()] for s in (
        nb.decoding.retrieval_scores(pred[rng.permutation(n)], target, top_k=(1, 3)) for _ in range(n_null))])
    se = out.std(0) / np.sqrt(n_null)
    np.testing.assert_array_less(np.abs(out.mean(0) - [0.1, 0.3, 0.5, 0.5]), 4 * se)


def test_row_chunks_give_the_same_scores(monkeypatch):
    """Large candidate sets are compared in row chunks: forcing chunks of a few rows changes nothing."""
    import neurobridge.decoding._retrieval as mod

    rng = np.random.default_rng(7)
    target = rng.normal(size=(37, 5))
    pred = target + rng.normal(size=target.shape)
    whole = nb.decoding.retrieval_scores(pred, target, top_k=(1, 4))
    monkeypatch.setattr(mod, "_CHUNK_ELEMENTS", 3 * 37)
    chunked = nb.decoding.retrieval_scores(pred, target, top_k=(1, 4))
    for a, b in zip(whole[:4], chunked[:4], strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


# ------------------------------------------------------------------------------------------------- ridge
def _planted(n=40, d=6, p=25, noise=1.0, seed=0, ids=None):
    rng = np.random.default_rng(seed)
    E = rng.normal(size=(n, d))
    X = E @ rng.normal(size=(d, p)) + noise * rng.normal(size=(n, p)) + 3.0
    ids = ids if ids is not None else _ids(n)
    return (nb.core.fmri_responses(X, stimulus=ids, dim="stimulus"),
            nb.core.activations(E, stimulus=ids))


def _explicit_folds(n, k, seed=0):
    return [(tr, va) for tr, va in KFold(k, shuffle=True, random_state=seed).split(np.zeros(n))]


def test_predictions_match_sklearn_ridgecv_on_the_same_folds():
    brain, emb = _planted(n=40, noise=2.0)
    X, E = brain.values, emb.values
    folds = _explicit_folds(40, 4)
    with nb.config_context(dtype="float64"):
        res = nb.decoding.retrieval(brain, emb, cv=folds, alphas=ALPHAS, inner_cv=5, top_k=(1, 3))
    chosen = set()
    for f, (tr, va) in enumerate(folds):
        inner = nb.encoding.make_folds(len(tr), 5)  # the inner folds: contiguous K-fold of the training set
        sk = SkRidgeCV(alphas=ALPHAS, cv=inner).fit(X[tr], E[tr])
        assert res["alpha"].values[f] == sk.alpha_
        chosen.add(sk.alpha_)
        np.testing.assert_allclose(res["prediction"].values[va], sk.predict(X[va]), rtol=1e-9, atol=1e-10)
        assert (res["test_fold"].values[va] == f).all()
    assert res.attrs["alphas"] == list(ALPHAS)
    assert chosen - {ALPHAS[0], ALPHAS[-1]}  # an interior alpha: the inner CV really chose


def test_alpha_per_target_matches_sklearn_per_column():
    rng = np.random.default_rng(1)
    brain, emb = _planted(n=36, d=3, noise=1.0, seed=1)
    X = brain.values
    E = emb.values * np.array([1.0, 0.05, 3.0])  # unequal signal-to-noise per dim: different alphas
    E[:, 1] += rng.normal(size=36)
    emb = emb.copy(data=E)
    folds = _explicit_folds(36, 3, seed=1)
    with nb.config_context(dtype="float64"):
        res = nb.decoding.retrieval(brain, emb, cv=folds, alphas=ALPHAS, alpha_per_target=True, top_k=1)
    assert res["alpha"].dims == ("fold", "unit")
    for f, (tr, va) in enumerate(folds):
        inner = nb.encoding.make_folds(len(tr), 5)
        for j in range(3):
            sk = SkRidgeCV(alphas=ALPHAS, cv=inner).fit(X[tr], E[tr, j])
            assert res["alpha"].values[f, j] == sk.alpha_
            np.testing.assert_allclose(res["prediction"].values[va, j], sk.predict(X[va]), rtol=1e-9, atol=1e-10)
    assert len(np.unique(res["alpha"].values)) > 1


def test_trials_predictions_are_sklearn_means_and_repeats_stay_together():
    rng = np.random.default_rng(2)
    n_stim, reps = 20, 3
    _, emb = _planted(n=n_stim, seed=2)
    M = rng.normal(size=(6, 15))
    stim = np.repeat(np.arange(n_stim), reps)
    rng.shuffle(stim)  # repetitions interleaved in the trial order
    X = emb.values[stim] @ M + 2.0 * rng.normal(size=(len(stim), 15))
    ids = np.array(_ids(n_stim))[stim]
    brain = nb.core.fmri_responses(X, stimulus=ids)
    with nb.config_context(dtype="float64"):
        res = nb.decoding.retrieval(brain, emb, sample_dim="trial", alphas=ALPHAS, top_k=(1, 2))
    # default: GroupKFold over the stimulus ids (outer) and over the training stimuli (inner)
    order = list(res["stimulus"].values)
    codes = np.array([order.index(s) for s in ids])
    folds = nb.encoding.make_folds(len(stim), 5, groups=codes)
    for f, (tr, va) in enumerate(folds):
        assert not set(codes[tr]) & set(codes[va])
        inner = nb.encoding.make_folds(len(tr), 5, groups=codes[tr])
        sk = SkRidgeCV(alphas=ALPHAS, cv=inner).fit(X[tr], emb.sel(stimulus=ids[tr]).values)
        assert res["alpha"].values[f] == sk.alpha_
        pred = sk.predict(X[va])
        for c in np.unique(codes[va]):
            np.testing.assert_allclose(res["prediction"].values[c], pred[codes[va] == c].mean(0), rtol=1e-9,
                                       atol=1e-10)
            assert res["test_fold"].values[c] == f
    assert res["top_1"] > 0.5


@pytest.mark.parametrize("candidates", ["test", "all"])
def test_dataset_scores_equal_retrieval_scores_of_its_predictions(candidates):
    """The pooled and per-fold scores are the metrics of the held-out predictions (per test fold, or all
    stimuli as candidates), with uneven test folds weighted by their queries (pairs for 2-vs-2)."""
    brain, emb = _planted(n=23, noise=3.0, seed=3)  # 23 = 5 + 6 + 6 + 6: uneven folds
    with nb.config_context(dtype="float64"):
        res = nb.decoding.retrieval(brain, emb, cv=4, alphas=ALPHAS, top_k=(1, 2), candidates=candidates,
                                    metric="cosine")
        per = nb.decoding.retrieval(brain, emb, cv=4, alphas=ALPHAS, top_k=(1, 2), candidates=candidates,
                                    metric="cosine", keep_folds=True)
    P, E, fold = res["prediction"].values, emb.values, res["test_fold"].values
    refs = [_brute(P[fold == f], E[fold == f], "cosine", (1, 2)) for f in range(4)]  # within each test fold
    sizes = np.array([(fold == f).sum() for f in range(4)])
    assert sorted(sizes) == [5, 6, 6, 6]
    w, pairs = sizes / sizes.sum(), sizes * (sizes - 1) / (sizes * (sizes - 1)).sum()
    for f, r in enumerate(refs):  # 2-vs-2 over the pairs of one test fold, whatever the candidates
        assert per["two_vs_two"].values[f] == pytest.approx(r["two_vs_two"], abs=1e-12)
    assert res["two_vs_two"].item() == pytest.approx(sum(pi * r["two_vs_two"] for pi, r in zip(pairs, refs, strict=True)),
                                                      abs=1e-12)
    if candidates == "test":
        assert res.attrs["n_candidates"] == sizes.tolist()
        for f, r in enumerate(refs):
            assert per["top_1"].values[f] == pytest.approx(r["top_k"][0], abs=1e-12)
            assert per["rank_accuracy"].values[f] == pytest.approx(r["rank_accuracy"], abs=1e-12)
        assert res["top_2"].item() == pytest.approx(sum(wi * r["top_k"][1] for wi, r in zip(w, refs, strict=True)), abs=1e-12)
        assert res.attrs["chance_top_1"] == pytest.approx((w / sizes).sum())
    else:  # each held-out prediction among all 23 embeddings
        ref = _brute(P, E, "cosine", (1, 2))
        assert res.attrs["n_candidates"] == 23 and res.attrs["chance_top_2"] == pytest.approx(2 / 23)
        np.testing.assert_allclose([res["top_1"].item(), res["top_2"].item()], ref["top_k"], atol=1e-12)
        assert res["rank_accuracy"].item() == pytest.approx(ref["rank_accuracy"], abs=1e-12)
        for f in range(4):
            assert per["top_1"].values[f] == pytest.approx(
                np.mean([ref["rank"][i] == 1 for i in np.flatnonzero(fold == f)]), abs=1e-12)
    assert per["top_1"].dims == ("fold",) and res["top_1"].dims == ()
    assert res["top_1"].attrs["chance"] == res.attrs["chance_top_1"]
    assert res["rank_accuracy"].attrs["chance"] == 0.5 == res.attrs["chance_two_vs_two"]


# ----------------------------------------------------------------------------------- planted and nulls
@pytest.mark.parametrize("metric", METRICS)
def test_planted_embedding_is_retrieved_far_above_chance(metric):
    brain, emb = _planted(n=60, d=8, p=40, noise=2.0, seed=4)
    res = nb.decoding.retrieval(brain, emb, metric=metric, cv=5, top_k=(1, 5))
    assert res.attrs["n_candidates"] == 12
    assert res["top_1"] > 5 * res.attrs["chance_top_1"]
    assert res["top_5"] > 0.9 and res["rank_accuracy"] > 0.9 and res["two_vs_two"] > 0.95
    # the same brain against another stimulus order of the embedding: the pairing is what is decoded
    perm = np.random.default_rng(0).permutation(60)
    shuffled = emb.copy(data=emb.values[perm])
    null = nb.decoding.retrieval(brain, shuffled, metric=metric, cv=5, top_k=(1, 5))
    assert null["rank_accuracy"] < 0.65


def test_planted_eeg_trials_decode_from_channels_and_times():
    """Single M/EEG trials (trial, channel, time) with repetitions: all channels and times are the features."""
    rng = np.random.default_rng(10)
    n_stim, reps = 30, 2
    E = rng.normal(size=(n_stim, 5))
    stim = np.tile(np.arange(n_stim), reps)
    X = np.einsum("nd,dct->nct", E[stim], rng.normal(size=(5, 8, 6))) + 2.0 * rng.normal(size=(len(stim), 8, 6))
    ids = np.array(_ids(n_stim))
    epochs = nb.core.eeg_epochs(X, stimulus=ids[stim], sfreq=100.0)
    res = nb.decoding.retrieval(epochs, nb.core.activations(E, stimulus=ids), sample_dim="trial", top_k=(1, 3))
    assert res.attrs["n_candidates"] == 6 and res.sizes["stimulus"] == n_stim
    assert res["top_1"] > 0.6 and res["two_vs_two"] > 0.9


def _null_scores(brain, emb, n_null, seed, **kw):
    """Scores of ``n_null`` random pairings of brain responses and embeddings (brain rows permuted)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_null):
        sh = brain.copy(data=brain.values[rng.permutation(brain.shape[0])])
        res = nb.decoding.retrieval(sh, emb, **kw)
        out.append([res[v].item() for v in res.data_vars if v not in ("alpha", "prediction")])
        chance = [res[v].attrs["chance"] for v in res.data_vars if v not in ("alpha", "prediction")]
    return np.array(out), np.array(chance)


def _assert_at_chance(out, chance, max_abs):
    mean, se = out.mean(0), out.std(0) / np.sqrt(len(out))
    np.testing.assert_array_less(np.abs(mean - chance), 4 * se + 1e-12)
    np.testing.assert_array_less(np.abs(mean - chance), max_abs)


def test_null_at_chance_with_few_stimuli():
    """12 stimuli, 3 folds of 4 candidates: 200 shuffled pairings average k/4, 0.5 and 0.5."""
    brain, emb = _planted(n=12, d=4, p=10, noise=1.0, seed=5)
    out, chance = _null_scores(brain, emb, 200, seed=0, cv=3, top_k=(1, 2), alphas=ALPHAS[::2], inner_cv=3)
    np.testing.assert_allclose(chance, [0.25, 0.5, 0.5, 0.5])
    _assert_at_chance(out, chance, max_abs=0.04)


def test_null_at_chance_with_smooth_correlated_embeddings():
    """Embeddings that vary smoothly along the stimulus order (neighbours nearly alike, contiguous folds) and a
    brain with its own smooth structure: shuffled pairings still average chance."""
    rng = np.random.default_rng(6)
    n = 24
    E = gaussian_filter1d(rng.normal(size=(n, 10)), 3.0, axis=0) + 0.5 * rng.normal(size=10)
    X = gaussian_filter1d(rng.normal(size=(n, 20)), 2.0, axis=0) + 0.2 * rng.normal(size=(n, 20))
    assert np.corrcoef(E)[np.arange(n - 1), np.arange(1, n)].mean() > 0.9  # neighbours nearly alike
    ids = _ids(n)
    brain = nb.core.fmri_responses(X, stimulus=ids, dim="stimulus")
    emb = nb.core.activations(E, stimulus=ids)
    out, chance = _null_scores(brain, emb, 200, seed=1, cv=3, top_k=(1, 3), alphas=ALPHAS[::2], inner_cv=3)
    np.testing.assert_allclose(chance, [1 / 8, 3 / 8, 0.5, 0.5])
    _assert_at_chance(out, chance, max_abs=0.03)


def test_all_candidates_share_the_within_fold_two_vs_two():
    """candidates='all' ranks among every stimulus, but its 2-vs-2 pairs are those of one test fold (a pair
    across folds compares predictions with embeddings their decoders were fitted to): the same as 'test'."""
    brain, emb = _planted(n=20, noise=3.0, seed=7)
    test = nb.decoding.retrieval(brain, emb, cv=4, top_k=1, keep_folds=True)
    every = nb.decoding.retrieval(brain, emb, cv=4, top_k=1, keep_folds=True, candidates="all")
    np.testing.assert_allclose(every["two_vs_two"].values, test["two_vs_two"].values, atol=1e-12)
    np.testing.assert_allclose(every["prediction"].values, test["prediction"].values, atol=0)
    assert every.attrs["n_candidates"] == 20 and test.attrs["n_candidates"] == 5
    assert every["top_1"].attrs["chance"] == 0.05 and test["top_1"].attrs["chance"] == 0.2


# ---------------------------------------------------------------------------------------------- bad input
def test_nan_in_brain_or_embedding_is_refused():
    brain, emb = _planted(n=20)
    bad = brain.copy(data=brain.values.copy())
    bad.values[3, 2] = np.nan
    with pytest.raises(ValueError, match=r"brain contains 1 non-finite value.*stimulus=3, voxel=2.*drop"):
        nb.decoding.retrieval(bad, emb)
    bad_e = emb.copy(data=emb.values.copy())
    bad_e.values[0, 0] = np.inf
    with pytest.raises(ValueError, match=r"embedding contains 1 non-finite.*without a valid embedding"):
        nb.decoding.retrieval(brain, bad_e)
    with pytest.raises(ValueError, match="pred contains 1 non-finite"):
        nb.decoding.retrieval_scores(bad.values, brain.values)


def test_mismatched_stimulus_ids_are_refused():
    brain, emb = _planted(n=20)
    other = emb.assign_coords(stimulus=_ids(20, prefix="img"))
    with pytest.raises(ValueError, match=r"20 stimulus id\(s\) of brain have no embedding.*same ids"):
        nb.decoding.retrieval(brain, other)
    partial = emb.isel(stimulus=slice(0, 18))
    with pytest.raises(ValueError, match=r"2 stimulus id\(s\) of brain have no embedding, e.g. \['s18', 's19'\]"):
        nb.decoding.retrieval(brain, partial)
    # extra embeddings (stimuli the brain lacks) are left out; the order of the embedding does not matter
    extra = xr.concat([emb, _planted(n=25, ids=_ids(25, "x"))[1].isel(stimulus=slice(0, 5))], "stimulus")
    ref = nb.decoding.retrieval(brain, emb, top_k=1)
    res = nb.decoding.retrieval(brain, extra.isel(stimulus=np.random.default_rng(0).permutation(25)), top_k=1)
    assert res.attrs["n_stimuli"] == 20 and list(res["stimulus"].values) == _ids(20)
    np.testing.assert_allclose(res["prediction"].values, ref["prediction"].values, rtol=1e-5, atol=1e-6)


def test_duplicated_stimulus_ids_are_refused():
    brain, emb = _planted(n=20)
    dup = emb.assign_coords(stimulus=_ids(19) + ["s0"])
    with pytest.raises(ValueError, match=r"embedding: duplicated stimulus ids \['s0'\]; give each stimulus one row"):
        nb.decoding.retrieval(brain, dup)
    bdup = brain.assign_coords(stimulus=_ids(19) + ["s0"])
    with pytest.raises(ValueError, match=r"brain: duplicated stimulus ids \['s0'\].*sample_dim='trial'"):
        nb.decoding.retrieval(bdup, emb)


def test_fewer_stimuli_than_folds_and_top_k_beyond_candidates_are_refused():
    brain, emb = _planted(n=4)
    with pytest.raises(ValueError, match="cv=5 folds need at least 5 stimuli.*found 4; use fewer folds"):
        nb.decoding.retrieval(brain, emb, cv=5)
    brain, emb = _planted(n=12)
    with pytest.raises(ValueError, match=r"top_k=5 exceeds the 3 candidates of fold .*candidates='all'"):
        nb.decoding.retrieval(brain, emb, cv=4, top_k=(1, 5))
    with pytest.raises(ValueError, match=r"top_k=13 exceeds the 12 candidates \(all stimuli\)"):
        nb.decoding.retrieval(brain, emb, cv=4, top_k=13, candidates="all")
    with pytest.raises(ValueError, match="fold 0 holds out 1 stimulus.*at least 2 candidates"):
        nb.decoding.retrieval(brain, emb, cv=12, top_k=1)
    with pytest.warns(RuntimeWarning, match="2-vs-2 needs pairs of stimuli held out by the same fold"):
        loo = nb.decoding.retrieval(brain, emb, cv=12, top_k=(1, 5), candidates="all")  # leave-one-out is fine
    assert loo.attrs["n_candidates"] == 12 and np.isnan(loo["two_vs_two"].item())
    assert np.isfinite(loo["top_5"].item()) and np.isfinite(loo["rank_accuracy"].item())
    with pytest.raises(ValueError, match="top_k=4 exceeds the 3 candidates"):
        nb.decoding.retrieval_scores(np.eye(3), np.eye(3), top_k=(1, 4))


def test_other_bad_input_is_refused():
    brain, emb = _planted(n=20)
    with pytest.raises(ValueError, match="metric='cityblock' is not a retrieval metric"):
        nb.decoding.retrieval(brain, emb, metric="cityblock")
    with pytest.raises(ValueError, match="candidates='train'"):
        nb.decoding.retrieval(brain, emb, candidates="train")
    with pytest.raises(ValueError, match="top_k must hold integers >= 1"):
        nb.decoding.retrieval(brain, emb, top_k=(0, 1))
    with pytest.raises(TypeError, match="embedding must be an xarray.DataArray"):
        nb.decoding.retrieval(brain, emb.values)
    with pytest.raises(ValueError, match=r"embedding must be 2-d with a 'stimulus' dim"):
        nb.decoding.retrieval(brain, emb.expand_dims(layer=2).transpose("stimulus", ...))
    with pytest.raises(ValueError, match="same shape"):
        nb.decoding.retrieval_scores(np.ones((4, 3)), np.ones((5, 3)))
    trials = nb.core.fmri_responses(np.zeros((6, 3)), stimulus=list("abcabc"))
    with pytest.raises(ValueError, match="sample_dim='stimulus' is not a dim.*sample_dim='trial'.*average_repetitions"):
        nb.decoding.retrieval(trials, emb)


def test_groups_that_split_a_stimulus_are_refused():
    """Runs as groups while each stimulus is shown in every run: a test stimulus would be trained on."""
    rng = np.random.default_rng(8)
    _, emb = _planted(n=10)
    ids = _ids(10) * 3
    brain = nb.core.fmri_responses(rng.normal(size=(30, 8)), stimulus=ids,
                                   trial_coords={"run": np.repeat([0, 1, 2], 10)})
    with pytest.raises(ValueError, match="zero-shot.*keep the repetitions of a stimulus in one fold"):
        nb.decoding.retrieval(brain, emb, sample_dim="trial", groups="run", cv=3, top_k=1)
    res = nb.decoding.retrieval(brain, emb, sample_dim="trial", cv=5, top_k=1)  # default groups: the stimuli
    assert res.attrs["n_candidates"] == 2 and res.sizes["stimulus"] == 10


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    brain, emb = _planted(n=200, d=16, p=300, noise=3.0, seed=9)
    with nb.config_context(dtype="float64"):
        cpu = nb.decoding.retrieval(brain, emb, alphas=ALPHAS, top_k=(1, 5), candidates="all")
        gpu = nb.decoding.retrieval(brain, emb, alphas=ALPHAS, top_k=(1, 5), candidates="all", device="cuda")
    np.testing.assert_allclose(gpu["prediction"].values, cpu["prediction"].values, rtol=1e-7, atol=1e-9)
    for v in ("top_1", "top_5", "rank_accuracy", "two_vs_two", "alpha"):
        np.testing.assert_allclose(gpu[v].values, cpu[v].values, atol=1e-9)
