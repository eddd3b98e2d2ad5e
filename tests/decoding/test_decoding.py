"""Decoding beyond the score agreement of test_agreement.py: Haufe patterns against MNE, held-out scores under
planted nulls shaped like real data, labelled outputs, bad input, and the generic path's threads."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from scipy import stats
from scipy.ndimage import gaussian_filter1d
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.linear_model import LogisticRegression, Ridge, RidgeClassifier
from sklearn.metrics import r2_score
from sklearn.model_selection import (
    GroupKFold,
    KFold,
    StratifiedGroupKFold,
    StratifiedKFold,
    cross_val_score,
)
from sklearn.pipeline import make_pipeline

import neurobridge as nb

mne_decoding = pytest.importorskip("mne.decoding")


def _ids(n, prefix="s"):
    return [f"{prefix}{i}" for i in range(n)]


def _labelled_data(n=60, p=6, t=4, n_classes=2, seed=0, offset=3.0):
    """Correlated channels, class effects growing over time, and an offset (the origin must not matter)."""
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) % n_classes)
    X = (rng.normal(size=(n, t, p)) @ rng.normal(size=(p, p))).transpose(0, 2, 1) + offset
    for c in range(n_classes):
        X[y == c] += rng.normal(size=(p, 1)) * np.linspace(0.2, 1.0, t)
    return X, y


# ------------------------------------------------------------------------------------------------ patterns
def _mne_patterns(est, X, y):
    """``get_coef(..., "patterns_", inverse_transform=True)`` of a SlidingEstimator over LinearModel: (k, p, T).

    MNE applies ``inverse_transform`` only to pipelines, so LinearModel sits in a one-step pipeline (nothing to
    invert: the patterns of LinearModel itself); get_coef returns (p, k, T) for several columns."""
    sl = mne_decoding.SlidingEstimator(make_pipeline(mne_decoding.LinearModel(est)), verbose=False).fit(X, y)
    ref = mne_decoding.get_coef(sl, "patterns_", inverse_transform=True)
    return ref.transpose(1, 0, 2) if ref.ndim == 3 else ref


PATTERN_ESTIMATORS = {
    "ridge": (lambda: RidgeClassifier(alpha=1.0), "ridge"),
    "ridge_alpha": (lambda: RidgeClassifier(alpha=7.5), RidgeClassifier(alpha=7.5)),
    "lda": (lambda: LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto"), "lda"),
    "lda_fixed": (lambda: LinearDiscriminantAnalysis(solver="lsqr", shrinkage=0.3),
                  LinearDiscriminantAnalysis(solver="lsqr", shrinkage=0.3)),
    # saga keeps LogisticRegression on the generic path (the batched one takes lbfgs/newton solvers)
    "logistic_generic": (lambda: LogisticRegression(C=0.5, solver="saga", tol=1e-10, max_iter=10000),
                         LogisticRegression(C=0.5, solver="saga", tol=1e-10, max_iter=10000)),
}


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("name", list(PATTERN_ESTIMATORS))
def test_patterns_match_mne_linear_model(name, n_classes):
    X, y = _labelled_data(n_classes=n_classes, seed=n_classes)
    make_sk, ours = PATTERN_ESTIMATORS[name]
    labels = np.array(["car", "face", "house"])[y]
    brain = nb.core.eeg_epochs(X, stimulus=_ids(len(X)), sfreq=100.0, trial_coords={"category": labels})
    ref = _mne_patterns(make_sk(), X, labels)
    with nb.config_context(dtype="float64"):
        A = nb.decoding.patterns(brain, "category", estimator=ours)
    scale = np.abs(ref).max()
    if n_classes == 2:
        assert A.dims == ("channel", "time")
    else:  # one pattern per class, in the order of the classes
        assert A.dims == ("class", "channel", "time")
        assert A["class"].values.tolist() == sorted(set(labels)) == A.attrs["classes"]
    np.testing.assert_allclose(A.values, ref, atol=1e-9 * scale, rtol=1e-7)
    np.testing.assert_array_equal(A["channel"].values, brain["channel"].values)
    np.testing.assert_array_equal(A["time"].values, brain["time"].values)
    if name != "logistic_generic":  # the default float32 agrees with float64
        np.testing.assert_allclose(nb.decoding.patterns(brain, "category", estimator=ours).values, ref,
                                   atol=1e-4 * scale)


def test_patterns_multioutput_regression_match_mne():
    rng = np.random.default_rng(7)
    n, p, T = 50, 5, 3
    X = rng.normal(size=(n, p, T)) @ np.diag([1.0, 2.0, 0.5]) + 1.5
    Y = X[:, :2, 1] @ rng.normal(size=(2, 3)) + 0.3 * rng.normal(size=(n, 3))
    Y[:, 2] += 0.8 * Y[:, 0]  # correlated outputs: the pseudo-inverse of cov(Y) matters
    brain = nb.core.eeg_epochs(X, stimulus=_ids(n), sfreq=100.0)
    emb = xr.DataArray(Y, dims=("trial", "embedding"), coords={"embedding": ["e0", "e1", "e2"]})
    # MNE's SlidingEstimator takes 1-d targets only: LinearModel per time point (Haufe with cov(Y)^+)
    ref = np.stack([mne_decoding.LinearModel(Ridge(alpha=2.0)).fit(X[:, :, t], Y).patterns_ for t in range(T)], -1)
    ref1 = np.stack([mne_decoding.LinearModel(Ridge(alpha=2.0)).fit(X[:, :, t], Y[:, 0]).patterns_
                     for t in range(T)], -1)
    with nb.config_context(dtype="float64"):
        A = nb.decoding.patterns(brain, emb, estimator=Ridge(alpha=2.0))
        A_plain = nb.decoding.patterns(brain, Y, estimator=Ridge(alpha=2.0))
        A1 = nb.decoding.patterns(brain, Y[:, 0], estimator=Ridge(alpha=2.0))
    assert A.dims == ("embedding", "channel", "time")
    assert A["embedding"].values.tolist() == ["e0", "e1", "e2"]
    assert A_plain.dims == ("output", "channel", "time")
    np.testing.assert_allclose(A.values, ref, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(A_plain.values, ref, rtol=1e-8, atol=1e-12)
    assert A1.dims == ("channel", "time")
    np.testing.assert_allclose(A1.values, ref1, rtol=1e-8, atol=1e-12)


def test_patterns_fmri_dim_none_match_mne():
    rng = np.random.default_rng(8)
    n, p = 40, 12
    y = np.repeat([0, 1], n // 2)
    X = rng.normal(size=(n, p)) + 0.8 * np.outer(y, rng.normal(size=p)) + 2.0
    brain = nb.core.fmri_responses(X, stimulus=_ids(n), voxel_coords={"roi": np.repeat(["V1", "LO"], p // 2)})
    with nb.config_context(dtype="float64"):
        A = nb.decoding.patterns(brain, y, dim=None, estimator="lda")
    ref = mne_decoding.LinearModel(LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto")).fit(X, y).patterns_
    assert A.dims == ("voxel",)
    np.testing.assert_array_equal(A["roi"].values, brain["roi"].values)
    np.testing.assert_allclose(A.values, ref, rtol=1e-8, atol=1e-12)


# ----------------------------------------------------------------------------------------- planted nulls
N_NULLS = 200


def _smooth(x, sigma=3.0):
    return gaussian_filter1d(x, sigma, axis=-1, mode="reflect")


def _null_epochs(rng, n, p, T, mix):
    """M/EEG-like epochs: smooth sources shared across channels through ``mix``, plus smooth channel noise."""
    shared = _smooth(rng.normal(size=(n, mix.shape[1], T)))
    return np.einsum("pk,nkt->npt", mix, shared) + 0.5 * _smooth(rng.normal(size=(n, p, T)))


def _binomial_p(acc_folds: np.ndarray, fold_sizes, chance: float) -> float:
    """One-sided binomial test of the pooled held-out correct count (trials taken as independent)."""
    n_correct = int(round(float(np.dot(acc_folds, fold_sizes))))
    return stats.binomtest(n_correct, int(np.sum(fold_sizes)), chance, alternative="greater").pvalue


@pytest.mark.parametrize("estimator", ["ridge", "lda"])
def test_null_smooth_epochs_score_at_chance_with_sane_false_positives(estimator):
    """Labels independent of temporally smooth, channel-correlated epochs: held-out accuracy sits at the
    computed chance level, and a one-sided binomial test at a pre-chosen time point has a sane false-positive
    rate."""
    rng = np.random.default_rng(10)
    n, p, T = 40, 8, 20
    mix = rng.normal(size=(p, 3))
    X0 = _null_epochs(rng, n, p, T, mix)
    lag1 = np.corrcoef(X0[..., :-1].ravel(), X0[..., 1:].ravel())[0, 1]
    assert lag1 > 0.9  # the null has the temporal smoothness of real epochs
    means, pvals = [], []
    for _ in range(N_NULLS):
        y = rng.permutation(np.repeat(["left", "right"], n // 2))
        brain = nb.core.eeg_epochs(_null_epochs(rng, n, p, T, mix), stimulus=_ids(n), sfreq=100.0)
        s = nb.decoding.sliding(brain, y, estimator=estimator, keep_folds=True)
        chance = s.attrs["chance"]
        means.append(float(s.mean()))
        pvals.append(_binomial_p(s.values[:, T // 2], [n // 5] * 5, chance))
    assert s.attrs["path"] == f"batched {estimator}" and chance == 0.5
    means = np.asarray(means)
    se = means.std(ddof=1) / np.sqrt(N_NULLS)
    assert se < 0.005
    assert abs(means.mean() - chance) < 0.015, (means.mean(), se)
    # Nominal size of this (discrete) test is P(Binom(40, .5) >= 26) = 0.040; held-out predictions of one fold
    # share a model, so the pooled count is over-dispersed and the test runs ~2x hot (0.07-0.09 seen), far from
    # the near-1 rate of a leak (test below). A calibrated test needs a permutation null.
    fpr = float(np.mean(np.asarray(pvals) < 0.05))
    assert 0.01 <= fpr <= 0.13, fpr


def test_null_unbalanced_classes_chance_levels():
    """Unbalanced 3 classes under the null: balanced accuracy averages to 1/K; plain accuracy averages
    below its reported chance (the majority rate), which is the score of always guessing the commonest
    class."""
    rng = np.random.default_rng(11)
    n, p, T = 45, 8, 10
    base = np.repeat(["a", "b", "c"], [25, 12, 8])
    mix = rng.normal(size=(p, 3))
    res: dict[str, list] = {"accuracy": [], "balanced_accuracy": []}
    chance = {}
    for _ in range(N_NULLS):
        y = rng.permutation(base)
        brain = nb.core.eeg_epochs(_null_epochs(rng, n, p, T, mix), stimulus=_ids(n), sfreq=100.0)
        for scoring, vals in res.items():
            s = nb.decoding.sliding(brain, y, scoring=scoring)
            vals.append(float(s.mean()))
            chance[scoring] = s.attrs["chance"]
    assert chance["balanced_accuracy"] == pytest.approx(1 / 3)
    assert chance["accuracy"] == pytest.approx(25 / 45)
    bal, acc = np.asarray(res["balanced_accuracy"]), np.asarray(res["accuracy"])
    assert abs(bal.mean() - 1 / 3) < 0.015, bal.mean()
    assert acc.mean() < chance["accuracy"] - 0.03, acc.mean()
    assert acc.mean() > np.sum((np.array([25, 12, 8]) / 45) ** 2)  # better than guessing by the class rates


def _few_stimuli_null(rng, n_stim, reps, p, T, mix):
    """A stimulus-specific evoked response, the same on every repeat, plus smooth trial noise; labels are
    assigned to stimuli at random, so they are independent of the data."""
    stim = np.repeat(np.arange(n_stim), reps)
    X = _smooth(rng.normal(size=(n_stim, p, T)))[stim] + _null_epochs(rng, n_stim * reps, p, T, mix)
    y = rng.permutation(np.repeat(["animate", "inanimate"], n_stim // 2))[stim]
    brain = nb.core.eeg_epochs(X, stimulus=[f"img{s}" for s in stim], sfreq=100.0)
    return brain, y, stim


def test_null_few_stimuli_grouped_folds_score_at_chance():
    """8 stimuli x 5 repeats, folds by stimulus (stratified): at chance, every repeat of a stimulus in one fold."""
    rng = np.random.default_rng(12)
    n_stim, reps, p, T = 8, 5, 8, 20
    mix = rng.normal(size=(p, 3))
    cv = StratifiedGroupKFold(4)
    means = []
    for i in range(N_NULLS):
        brain, y, stim = _few_stimuli_null(rng, n_stim, reps, p, T, mix)
        s = nb.decoding.sliding(brain, y, groups="stimulus", cv=cv, keep_folds=True)
        means.append(float(s.mean()))
        if i < N_NULLS // 4:  # an int cv with groups and labels is this splitter too
            d = nb.decoding.sliding(brain, y, groups="stimulus", cv=4, keep_folds=True)
            np.testing.assert_array_equal(d.values, s.values)
    for tr, te in cv.split(np.zeros(len(y)), y, stim):  # the folds used: no stimulus straddles them
        assert not set(stim[tr]) & set(stim[te])
    means = np.asarray(means)
    assert s.attrs["chance"] == 0.5 and s.sizes["fold"] == 4
    assert abs(means.mean() - 0.5) < 0.02, (means.mean(), means.std() / np.sqrt(N_NULLS))


def test_null_few_stimuli_leak_without_groups():
    """The same nulls decoded with trial-wise folds: repeats of a stimulus in both training and test let the
    decoder recall each stimulus's arbitrary label, so scores and false positives inflate. Grouped folds that
    ignore the labels (GroupKFold) err the other way: a test fold holding stimuli of one class leaves that
    class scarce in training, and the decoder predicts the other one."""
    rng = np.random.default_rng(13)
    n_stim, reps, p, T = 8, 5, 8, 20
    n = n_stim * reps
    mix = rng.normal(size=(p, 3))
    leaky, pvals, unstratified = [], [], []
    for i in range(N_NULLS):
        brain, y, _ = _few_stimuli_null(rng, n_stim, reps, p, T, mix)
        s = nb.decoding.sliding(brain, y, keep_folds=True)  # StratifiedKFold(5): 8 test trials per fold
        leaky.append(float(s.mean()))
        pvals.append(_binomial_p(s.values[:, T // 2], [n // 5] * 5, s.attrs["chance"]))
        if i < N_NULLS // 2:
            unstratified.append(float(nb.decoding.sliding(brain, y, groups="stimulus", cv=GroupKFold(4)).mean()))
    assert np.mean(leaky) > 0.6, np.mean(leaky)
    assert np.mean(np.asarray(pvals) < 0.05) > 0.3
    assert np.mean(unstratified) < 0.46, np.mean(unstratified)


# ------------------------------------------------------------------------------------------ labelled outputs
def test_meeg_outputs_are_labelled():
    X, y = _labelled_data(n=45, p=5, t=6, n_classes=3, seed=20)
    labels = np.array(["car", "face", "house"])[y]
    labels[:5] = "face"  # unbalanced
    brain = nb.core.eeg_epochs(X, stimulus=_ids(45), sfreq=250.0, tmin=-0.008, trial_coords={"category": labels})
    brain = brain.assign_coords(sample=("time", np.arange(6) - 2))
    brain["time"].attrs["units"] = "s"
    s = nb.decoding.sliding(brain, "category")
    kf = nb.decoding.sliding(brain, "category", keep_folds=True, cv=StratifiedKFold(5))
    gen = nb.decoding.generalizing(brain, "category", scoring="balanced_accuracy")
    gen_kf = nb.decoding.generalizing(brain, "category", scoring="balanced_accuracy", keep_folds=True)
    assert s.dims == ("time",) and kf.dims == ("fold", "time")
    np.testing.assert_array_equal(s["time"].values, brain["time"].values)
    np.testing.assert_array_equal(s["sample"].values, brain["sample"].values)
    assert s["time"].attrs["units"] == "s"
    np.testing.assert_array_equal(kf["fold"].values, np.arange(5))
    np.testing.assert_allclose(kf.mean("fold").values, s.values, atol=1e-12)
    assert gen.dims == ("time", "time2") and gen_kf.dims == ("fold", "time", "time2")
    np.testing.assert_array_equal(gen["time2"].values, brain["time"].values)
    np.testing.assert_array_equal(gen["sample2"].values, brain["sample"].values)
    assert gen["sample2"].dims == ("time2",)
    np.testing.assert_allclose(gen_kf.mean("fold").values, gen.values, atol=1e-12)
    classes, counts = np.unique(labels, return_counts=True)
    assert s.attrs["classes"] == classes.tolist()
    assert s.attrs["class_counts"] == counts.tolist()
    assert s.attrs["chance"] == pytest.approx(counts.max() / counts.sum())
    assert gen.attrs["chance"] == pytest.approx(1 / 3)
    assert s.attrs["task"] == "classification" and s.attrs["n_folds"] == 5 and s.attrs["sample_dim"] == "trial"
    assert gen.attrs["train_dim"] == "time" and gen.attrs["test_dim"] == "time2"
    assert s.name == "accuracy" and gen.name == "balanced_accuracy"
    # reference: the same folds in scikit-learn at each time point
    ref = [cross_val_score(RidgeClassifier(), X[:, :, t], labels, cv=StratifiedKFold(5)).mean() for t in range(6)]
    np.testing.assert_allclose(s.values, ref, atol=1e-12)


def test_fmri_and_activations_dim_none():
    rng = np.random.default_rng(21)
    n, p = 40, 15
    y = np.repeat(["face", "house"], n // 2)
    X = rng.normal(size=(n, p)) + 0.7 * np.outer(y == "face", rng.normal(size=p))
    fmri = nb.core.fmri_responses(X, stimulus=_ids(n), trial_coords={"category": y})
    acts = nb.core.activations(X, stimulus=_ids(n), layer="fc1", model="toy")
    lda = LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto")
    with nb.config_context(dtype="float64"):
        one = nb.decoding.sliding(fmri, "category", dim=None, estimator="lda")
        folds = nb.decoding.sliding(fmri, "category", dim=None, estimator="lda", keep_folds=True)
        a = nb.decoding.sliding(acts, y, dim=None, estimator="lda", scoring="roc_auc", keep_folds=True)
    ref = cross_val_score(lda, X, y, cv=StratifiedKFold(5))
    ref_auc = cross_val_score(lda, X, y, cv=StratifiedKFold(5), scoring="roc_auc")
    assert one.dims == () and folds.dims == ("fold",)
    assert float(one) == pytest.approx(ref.mean(), abs=1e-12)
    np.testing.assert_allclose(folds.values, ref, atol=1e-12)
    assert a.dims == ("fold",) and a.attrs["sample_dim"] == "stimulus" and a.attrs["chance"] == 0.5
    np.testing.assert_allclose(a.values, ref_auc, atol=1e-12)
    with pytest.raises(ValueError, match="dim=None"):
        nb.decoding.sliding(fmri, "category")  # no time dim: say how to decode from all voxels


def test_continuous_and_embedding_targets_match_sklearn():
    rng = np.random.default_rng(22)
    n, p, T = 50, 6, 4
    Y = rng.normal(size=(n, 2))
    X = rng.normal(size=(n, p, T))
    X[:, :, 1:3] += (Y @ rng.normal(size=(2, p)))[:, :, None]  # the embedding is decodable at t = 1, 2 only
    brain = nb.core.eeg_epochs(X, stimulus=_ids(n), sfreq=100.0)
    emb = xr.DataArray(Y, dims=("trial", "embedding"), coords={"trial": brain["trial"].values})
    cv = KFold(5)
    with nb.config_context(dtype="float64"):
        r2_1 = nb.decoding.sliding(brain, Y[:, 0], cv=cv, keep_folds=True)
        r2_2 = nb.decoding.sliding(brain, emb, cv=cv, keep_folds=True)
        r_2 = nb.decoding.sliding(brain, emb, cv=cv, scoring="r", keep_folds=True)
        gen = nb.decoding.generalizing(brain, emb, cv=cv, keep_folds=True)
        mean = nb.decoding.sliding(brain, emb, cv=cv)
    assert r2_2.attrs["task"] == "regression" and r2_2.name == "r2" and r2_2.attrs["chance"] == 0.0
    assert "classes" not in r2_2.attrs
    for f, (tr, te) in enumerate(cv.split(X)):
        for t in range(T):
            m1 = Ridge(alpha=1.0).fit(X[tr, :, t], Y[tr, 0])
            m2 = Ridge(alpha=1.0).fit(X[tr, :, t], Y[tr])
            pred = m2.predict(X[te, :, t])
            assert r2_1.values[f, t] == pytest.approx(r2_score(Y[te, 0], m1.predict(X[te, :, t])), abs=1e-10)
            assert r2_2.values[f, t] == pytest.approx(r2_score(Y[te], pred), abs=1e-10)
            r = np.mean([stats.pearsonr(pred[:, j], Y[te, j])[0] for j in range(2)])
            assert r_2.values[f, t] == pytest.approx(r, abs=1e-10)
            for t2 in range(T):
                assert gen.values[f, t, t2] == pytest.approx(r2_score(Y[te], m2.predict(X[te, :, t2])), abs=1e-10)
    np.testing.assert_allclose(mean.values, r2_2.mean("fold").values, atol=1e-12)
    assert mean.values[1:3].min() > 0.3 > mean.values[[0, 3]].max()  # the planted window


# ----------------------------------------------------------------------------------------------- bad input
def _bad_input_brain():
    rng = np.random.default_rng(30)
    y = np.repeat(["a", "b"], 10)
    brain = nb.core.eeg_epochs(rng.normal(size=(20, 4, 3)), stimulus=_ids(20), sfreq=100.0,
                               trial_coords={"category": y, "run": np.repeat(np.arange(4), 5)})
    return brain, y


def _with_value(brain, value):
    data = brain.values.copy()
    data[3, 1, 2] = value
    return brain.copy(data=data)


BAD_INPUTS = {
    "nan": (lambda b, y: nb.decoding.sliding(_with_value(b, np.nan), y), r"brain contains 1 non-finite.*dropna"),
    "inf": (lambda b, y: nb.decoding.generalizing(_with_value(b, np.inf), y),
            r"non-finite.*trial=3, channel=1, time=2.*drop those trials"),
    "nan_patterns": (lambda b, y: nb.decoding.patterns(_with_value(b, np.nan), y), "non-finite.*dropna"),
    "nan_target": (lambda b, y: nb.decoding.sliding(b, np.r_[np.nan, np.arange(19.0)]),
                   r"target contains 1 non-finite.*drop the trials without a target"),
    "length": (lambda b, y: nb.decoding.sliding(b, y[:-1]),
               r"target has 19 values but brain has 20 samples along 'trial'; pass one target per trial"),
    "one_class": (lambda b, y: nb.decoding.sliding(b, np.repeat("a", 20)),
                  r"only one class.*at least two classes"),
    "one_class_patterns": (lambda b, y: nb.decoding.patterns(b, np.repeat("a", 20)), "only one class"),
    "fewer_than_folds": (lambda b, y: nb.decoding.sliding(b.isel(trial=[0, 1, 10, 11]), y[[0, 1, 10, 11]]),
                         r"cv=5 folds need at least 5 trials, found 4; use fewer folds"),
    "fewer_than_splitter": (lambda b, y: nb.decoding.sliding(b.isel(trial=slice(7, 13)), y[7:13],
                                                             cv=StratifiedKFold(10)),
                            r"10 splits needs at least 10 trials, found 6; use fewer folds"),
    "fewer_groups": (lambda b, y: nb.decoding.sliding(b, y, groups="run", cv=5),
                     r"at least 5 distinct groups, found 4; use fewer folds"),
    "unknown_scoring": (lambda b, y: nb.decoding.sliding(b, y, scoring="acc"),
                        r"scoring='acc' is not a known scoring; for labels use one of .*'accuracy'"),
    "roc_auc_regression": (lambda b, y: nb.decoding.sliding(b, np.linspace(0, 1, 20), scoring="roc_auc"),
                           r"'roc_auc' does not apply to a continuous target; use one of \('r2', 'r'\)"),
    "r2_labels": (lambda b, y: nb.decoding.sliding(b, y, scoring="r2"),
                  r"'r2' does not apply to labels; use one of .*or pass numeric values"),
    "generalizing_dim_none": (lambda b, y: nb.decoding.generalizing(b, y, dim=None),
                              r"generalizing needs a dim.*dim='time'.*sliding\(\.\.\., dim=None\)"),
    "missing_coord": (lambda b, y: nb.decoding.sliding(b, "condition"),
                      r"target='condition' is not a coordinate of brain.*pass the name of a coordinate on 'trial'"),
    "missing_coord_patterns": (lambda b, y: nb.decoding.patterns(b, "condition"), "not a coordinate of brain"),
    "missing_dim": (lambda b, y: nb.decoding.sliding(b, y, dim="times"),
                    r"dim='times' is not a dim of brain.*dim=None"),
    "missing_groups": (lambda b, y: nb.decoding.sliding(b, y, groups="session"),
                       r"groups='session' is not a coordinate on 'trial'"),
    "straddling_folds": (lambda b, y: nb.decoding.sliding(b, y, groups="run", cv=StratifiedKFold(5)),
                         r"appear in both training and validation.*GroupKFold"),
    "class_missing_from_training": (lambda b, y: nb.decoding.sliding(b, y, cv=[(np.arange(10), np.arange(10, 20))]),
                                    r"missing from the training part of fold 0.*stratified folds"),
    "regressor_on_labels": (lambda b, y: nb.decoding.sliding(b, y, estimator=Ridge()),
                            r"Ridge is a regressor, but the target holds labels.*pass a classifier"),
    "classifier_on_floats": (lambda b, y: nb.decoding.sliding(b, np.linspace(0, 1, 20),
                                                              estimator=LogisticRegression()),
                             r"classifier, but the target is continuous.*pass class labels.*or a regressor"),
    "lda_on_floats": (lambda b, y: nb.decoding.sliding(b, np.linspace(0, 1, 20), estimator="lda"),
                      r"'lda' classifies labels.*estimator='ridge'"),
    "patterns_pipeline": (lambda b, y: nb.decoding.patterns(b, y, estimator=make_pipeline(RidgeClassifier())),
                          r"patterns need the linear decoder itself.*pass the final estimator"),
    "misaligned_embedding": (lambda b, y: nb.decoding.sliding(
        b, xr.DataArray(np.ones((20, 2)), dims=("trial", "e"), coords={"trial": np.arange(20)[::-1]})),
        r"label 'trial' differently; align them first"),
}


@pytest.mark.filterwarnings("ignore:The groups parameter is ignored")
@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_raises_naming_the_fix(case):
    brain, y = _bad_input_brain()
    call, match = BAD_INPUTS[case]
    with pytest.raises((ValueError, TypeError), match=match):
        call(brain, y)


def test_nan_error_is_a_schema_error():
    brain, y = _bad_input_brain()
    with pytest.raises(nb.core.SchemaError):
        nb.decoding.sliding(_with_value(brain, np.nan), y)


# ------------------------------------------------------------------------------------------ generic path
def test_generic_path_threads_give_identical_results():
    X, y = _labelled_data(n=40, p=4, t=4, n_classes=3, seed=40)
    brain = nb.core.eeg_epochs(X, stimulus=_ids(40), sfreq=100.0)
    est = LogisticRegression(C=0.3, solver="saga", max_iter=2000)  # saga: the generic path
    kw = dict(estimator=est, keep_folds=True, progress=False)
    one = nb.decoding.sliding(brain, y, n_jobs=1, **kw)
    two = nb.decoding.sliding(brain, y, n_jobs=2, **kw)
    gen1 = nb.decoding.generalizing(brain, y, scoring="roc_auc", n_jobs=1, **kw)
    gen2 = nb.decoding.generalizing(brain, y, scoring="roc_auc", n_jobs=2, **kw)
    Y = X[:, 0, :2] + 0.1 * np.arange(40)[:, None]
    reg1 = nb.decoding.sliding(brain, Y, estimator=Ridge(solver="lsqr"), scoring="r", n_jobs=1, progress=False)
    reg2 = nb.decoding.sliding(brain, Y, estimator=Ridge(solver="lsqr"), scoring="r", n_jobs=2, progress=False)
    assert one.attrs["path"] == gen1.attrs["path"] == reg1.attrs["path"] == "generic"
    xr.testing.assert_identical(one, two)
    xr.testing.assert_identical(gen1, gen2)
    xr.testing.assert_identical(reg1, reg2)
    # and the numbers are scikit-learn's on the same folds
    for f, (tr, te) in enumerate(StratifiedKFold(5).split(X[:, :, 0], y)):
        for t in range(4):
            assert one.values[f, t] == pytest.approx(est.fit(X[tr, :, t], y[tr]).score(X[te, :, t], y[te]),
                                                     abs=1e-12)
