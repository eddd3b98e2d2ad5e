"""Cross-subject alignment: Procrustes hyperalignment and the shared response model.

References: scipy.linalg.orthogonal_procrustes (each Procrustes step, and pairwise rotations between subjects),
planted orthogonal rotations between simulated subjects, brainiak.funcalign.srm.SRM (same initialisation; it
differs from the published EM only by a 0.001 jitter on the diagonal before each SVD), a float64 numpy
transcription of the published EM (Chen et al. 2015 / brainiak, without the jitter), and leave-one-subject-out
decoding on simulated data (sklearn NearestCentroid), which must improve over unaligned voxels.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
import xarray as xr
from sklearn.neighbors import NearestCentroid

import neurobridge as nb
from neurobridge.core import SchemaError
from neurobridge.encoding._alignment import _procrustes


def _orth(rng, v, k):
    return np.linalg.qr(rng.normal(size=(v, k)))[0]


def _rotated_subjects(n=100, k=8, n_sub=4, noise=0.1, seed=0):
    rng = np.random.default_rng(seed)
    s = rng.normal(size=(n, k))
    qs = [_orth(rng, k, k) for _ in range(n_sub)]
    return s, qs, [s @ q + noise * rng.normal(size=(n, k)) for q in qs]


def test_procrustes_step_matches_scipy():
    rng = np.random.default_rng(0)
    for v, k in [(6, 6), (9, 5), (4, 7)]:
        x, t = rng.normal(size=(30, v)), rng.normal(size=(30, k))
        ours = _procrustes(torch.as_tensor(x), torch.as_tensor(t)).numpy()
        if v == k:
            np.testing.assert_allclose(ours, scipy.linalg.orthogonal_procrustes(x, t)[0], atol=1e-12)
        # the semi-orthogonal optimum: U V^T of svd(x^T t), orthonormal columns (v >= k) or rows (v < k)
        u, _, vh = np.linalg.svd(x.T @ t, full_matrices=False)
        np.testing.assert_allclose(ours, u @ vh, atol=1e-12)


@pytest.mark.parametrize("noise", [0.0, 0.1])
def test_hyperalignment_recovers_planted_rotations(noise):
    s, qs, xs = _rotated_subjects(noise=noise)
    with nb.config_context(dtype="float64"):
        ha = nb.encoding.Hyperalignment(n_iter=2).fit([x[:80] for x in xs])
    rs = ha.transforms_
    for r in rs:
        np.testing.assert_allclose(r.T @ r, np.eye(8), atol=1e-10)
    for i in range(1, 4):
        truth = qs[i].T @ qs[0]  # maps subject i's voxels onto subject 0's
        ours = rs[i] @ rs[0].T
        ref = scipy.linalg.orthogonal_procrustes(xs[i][:80], xs[0][:80])[0]
        if noise == 0:
            np.testing.assert_allclose(ours, truth, atol=1e-10)
            np.testing.assert_allclose(ref, truth, atol=1e-10)
        else:
            err, err_ref = np.linalg.norm(ours - truth), np.linalg.norm(ref - truth)
            assert err < 0.1 and err < 1.5 * err_ref + 0.01, (err, err_ref)
    # held-out samples land on the same common-space points in every subject
    held = ha.transform([x[80:] for x in xs])
    assert max(np.abs(h - held[0]).max() for h in held) < (1e-10 if noise == 0 else 0.6)


def _srm_data(n=80, k=5, voxels=(30, 40, 25, 50), noise=0.5, seed=0):
    rng = np.random.default_rng(seed)
    s = rng.normal(size=(n, k))
    ws = [_orth(rng, v, k) for v in voxels]
    xs = [s @ w.T + noise * rng.normal(size=(n, v)) for w, v in zip(ws, voxels, strict=True)]
    return s, ws, [x - x.mean(0) for x in xs]


def _srm_numpy(xs, k, n_iter, init):
    """Float64 numpy transcription of the probabilistic SRM EM (brainiak's SRM._srm, data as (n, voxels))."""
    n = xs[0].shape[0]
    w = [wi.copy() for wi in init]
    rho2, sigma_s = np.ones(len(xs)), np.eye(k)
    trace_xtx = np.array([np.sum(x ** 2) for x in xs])
    for _ in range(n_iter):
        rho0 = (1 / rho2).sum()
        inv_sigma_s = np.linalg.inv(sigma_s)
        inv_sigma_s_rhos = np.linalg.inv(inv_sigma_s + rho0 * np.eye(k))
        wt_invpsi_x = sum(wi.T @ x.T / r for wi, x, r in zip(w, xs, rho2, strict=True))  # (k, n)
        shared = sigma_s @ (np.eye(k) - rho0 * inv_sigma_s_rhos) @ wt_invpsi_x
        sigma_s = inv_sigma_s_rhos + shared @ shared.T / n
        trace_sigma_s = n * np.trace(sigma_s)
        for i, x in enumerate(xs):
            a = x.T @ shared.T
            u, _, vh = np.linalg.svd(a, full_matrices=False)
            w[i] = u @ vh
            rho2[i] = (trace_xtx[i] - 2 * np.sum(w[i] * a) + trace_sigma_s) / (n * x.shape[1])
    return w, shared.T, sigma_s, rho2


def test_srm_matches_numpy_transcription_of_em():
    _, _, xs = _srm_data()
    rng = np.random.default_rng(5)
    init = [_orth(rng, x.shape[1], 5) for x in xs]
    res = nb.encoding.fit_srm([torch.as_tensor(x) for x in xs], 5, n_iter=15, init=init)
    w, shared, sigma_s, rho2 = _srm_numpy(xs, 5, 15, init)
    for a, b in zip(res.w, w, strict=True):
        np.testing.assert_allclose(a.numpy(), b, atol=1e-9)
    np.testing.assert_allclose(res.shared.numpy(), shared, atol=1e-9)
    np.testing.assert_allclose(res.sigma_s.numpy(), sigma_s, atol=1e-9)
    np.testing.assert_allclose(res.rho2.numpy(), rho2, rtol=1e-9)
    ll = res.log_likelihood.numpy()
    assert (np.diff(ll) > -1e-8 * np.abs(ll[1:])).all()  # EM never lowers the likelihood


def test_srm_matches_brainiak():
    try:
        from brainiak.funcalign.srm import SRM
    except Exception as err:  # ImportError, or mpi4py without an MPI library
        pytest.skip(f"brainiak unavailable: {err}")
    _, _, xs = _srm_data()
    ref = SRM(n_iter=10, features=5, rand_seed=3).fit([x.T for x in xs])
    ours = nb.encoding.fit_srm([torch.as_tensor(x) for x in xs], 5, n_iter=10, random_state=3)
    # one iteration from the same start: identical (brainiak's jitter only enters the W update)
    one = SRM(n_iter=1, features=5, rand_seed=3).fit([x.T for x in xs])
    first = nb.encoding.fit_srm([torch.as_tensor(x) for x in xs], 5, n_iter=1, random_state=3)
    np.testing.assert_allclose(first.shared.numpy(), one.s_.T, atol=1e-12)
    # after 10 iterations the 0.001 diagonal jitter brainiak adds before each SVD leaves differences ~1e-4
    for a, b in zip(ours.w, ref.w_, strict=True):
        np.testing.assert_allclose(a.numpy(), b, atol=2e-3)
    np.testing.assert_allclose(ours.shared.numpy(), ref.s_.T, atol=2e-3)
    np.testing.assert_allclose(ours.rho2.numpy(), ref.rho2_, rtol=1e-4)
    # reconstruction quality of each subject from the shared response agrees to 1e-6
    for x, a, b in zip(xs, ours.w, ref.w_, strict=True):
        e_ours = np.linalg.norm(x - ours.shared.numpy() @ a.numpy().T) / np.linalg.norm(x)
        e_ref = np.linalg.norm(x - ref.s_.T @ b.T) / np.linalg.norm(x)
        assert abs(e_ours - e_ref) < 1e-6
    # transform of new samples: brainiak's W_i^T x (it does not remove a mean; our data are centred)
    srm = nb.encoding.SharedResponseModel(n_features=5, n_iter=10, random_state=3)
    with nb.config_context(dtype="float64"):
        srm.fit(xs)
    for z, zr in zip(srm.transform(xs), ref.transform([x.T for x in xs]), strict=True):
        np.testing.assert_allclose(z, zr.T, atol=5e-3)


def test_srm_recovers_planted_shared_response():
    s, ws, xs = _srm_data(n=120, noise=0.3)
    with nb.config_context(dtype="float64"):
        srm = nb.encoding.SharedResponseModel(n_features=5, n_iter=20).fit([x[:100] for x in xs])
    # the estimated shared response spans the planted one: canonical correlations ~1
    q1, q2 = np.linalg.qr(srm.shared_)[0], np.linalg.qr(s[:100] - s[:100].mean(0))[0]
    assert np.linalg.svd(q1.T @ q2, compute_uv=False).min() > 0.97  # noise 0.3 over 4 subjects: ~0.98
    # W_i spans the planted subject subspace as well as the oracle W_i fitted to the true shared response does
    for w_est, w, x in zip(srm.transforms_, ws, xs, strict=True):
        u, _, vh = np.linalg.svd(x[:100].T @ s[:100], full_matrices=False)
        oracle = u @ vh  # (v, k): the best orthonormal map given the planted s
        ours_cc = np.linalg.svd(w_est.T @ w, compute_uv=False).min()
        oracle_cc = np.linalg.svd(oracle.T @ w, compute_uv=False).min()
        assert ours_cc > oracle_cc - 0.05 and ours_cc > 0.85, (ours_cc, oracle_cc)
    held = srm.transform([x[100:] for x in xs])
    for h in held[1:]:  # W_i^T x = s + W_i^T e: subjects agree up to noise, corr <= 1 / (1 + 0.3^2) = 0.92
        assert np.corrcoef(h.ravel(), held[0].ravel())[0, 1] > 0.85


def _decoding_brains(n_sub=5, v=20, k=10, n_train=100, seed=0):
    rng = np.random.default_rng(seed)
    means = 1.5 * rng.normal(size=(4, k))
    labels = np.repeat(np.arange(4), 10)
    s = np.vstack([rng.normal(size=(n_train, k)), means[labels] + 0.7 * rng.normal(size=(40, k))])
    ids = [f"train{i}" for i in range(n_train)] + [f"test{i}" for i in range(40)]
    brains = {}
    for j in range(n_sub):
        x = s @ _orth(rng, v, k).T + 0.3 * rng.normal(size=(len(ids), v))
        brains[f"sub{j}"] = xr.DataArray(x, dims=("stimulus", "voxel"), coords={"stimulus": ids})
    return brains, ids[:n_train], ids[n_train:], labels


def _loso_accuracy(data: dict, test_ids, labels) -> float:
    acc = []
    for left in data:
        xtr = np.vstack([data[s] for s in data if s != left])
        ytr = np.tile(labels, len(data) - 1)
        acc.append((NearestCentroid().fit(xtr, ytr).predict(data[left]) == labels).mean())
    return float(np.mean(acc))


@pytest.mark.parametrize("method", ["procrustes", "srm"])
def test_loso_decoding_improves_after_alignment(method):
    brains, train_ids, test_ids, labels = _decoding_brains()
    res = nb.encoding.align_subjects(brains, method=method, train=train_ids, n_features=10 if method == "srm" else None)
    aligned = {s: res.aligned.sel(subject=s, stimulus=test_ids).values for s in brains}
    raw = {s: brains[s].sel(stimulus=test_ids).values for s in brains}
    acc_aligned, acc_raw = _loso_accuracy(aligned, test_ids, labels), _loso_accuracy(raw, test_ids, labels)
    assert acc_aligned > 0.9 and acc_aligned > acc_raw + 0.3, (acc_aligned, acc_raw)


def test_align_subjects_fits_on_training_stimuli_only():
    brains, train_ids, test_ids, _ = _decoding_brains(n_sub=3)
    a = nb.encoding.align_subjects(brains, method="srm", train=train_ids, n_features=6)
    changed = {s: da.where(da["stimulus"].isin(train_ids), 100.0) for s, da in brains.items()}
    b = nb.encoding.align_subjects(changed, method="srm", train=train_ids, n_features=6)
    xr.testing.assert_allclose(a.template, b.template)
    xr.testing.assert_allclose(a.aligned.sel(stimulus=train_ids), b.aligned.sel(stimulus=train_ids))
    assert not np.allclose(a.aligned.sel(stimulus=test_ids), b.aligned.sel(stimulus=test_ids))
    assert a.aligned["train"].sel(stimulus=train_ids).all() and not a.aligned["train"].sel(stimulus=test_ids).any()
    assert a.template.dims == ("stimulus", "feature") and a.template.sizes["stimulus"] == len(train_ids)
    assert a.aligned.attrs["method"] == "srm" and a.aligned.sizes["feature"] == 6


def test_align_subjects_joins_on_stimulus_and_differing_voxels():
    rng = np.random.default_rng(1)
    s = rng.normal(size=(30, 4))
    ids = np.array([f"s{i}" for i in range(30)])
    a = xr.DataArray(s @ _orth(rng, 12, 4).T, dims=("stimulus", "voxel"), coords={"stimulus": ids})
    # subject b: another voxel count, dim named 'channel', lacks the last 5 stimuli, in a shuffled order
    order = rng.permutation(25)
    b = xr.DataArray((s @ _orth(rng, 7, 4).T)[order], dims=("stimulus", "channel"), coords={"stimulus": ids[order]})
    res = nb.encoding.align_subjects({"a": a, "b": b}, method="srm", train=ids[:20], n_features=4,
                                     standardize=False)
    assert res.aligned.sizes == {"subject": 2, "stimulus": 30, "feature": 4}
    assert np.isnan(res.aligned.sel(subject="b", stimulus=ids[25:])).all()
    za, zb = res.aligned.sel(subject="a", stimulus=ids[20:25]), res.aligned.sel(subject="b", stimulus=ids[20:25])
    np.testing.assert_allclose(za, zb, atol=1e-3)  # noiseless: the same held-out stimuli coincide


def test_alignment_errors():
    brains, train_ids, _, _ = _decoding_brains(n_sub=2)
    f = nb.encoding.align_subjects
    disjoint = {"a": brains["sub0"], "b": brains["sub1"].assign_coords(stimulus=[f"x{i}" for i in range(140)])}
    with pytest.raises(SchemaError, match="share no stimulus"):
        f(disjoint)
    with pytest.raises(SchemaError, match="disjoint"):
        f(disjoint, train=train_ids)
    partial = {"a": brains["sub0"], "b": brains["sub1"].isel(stimulus=slice(5, None))}
    with pytest.raises(SchemaError, match="lacks 5 of the 100"):
        f(partial, train=train_ids)
    trials = brains["sub0"].rename(stimulus="trial").assign_coords(stimulus=("trial", brains["sub0"]["stimulus"].values))
    with pytest.raises(SchemaError, match="average_repetitions"):
        f({"a": trials, "b": brains["sub1"]})
    with pytest.raises(ValueError, match="n_features applies"):
        f(brains, n_features=3)
    with pytest.raises(ValueError, match="smallest subject's voxel count"):
        f(brains, method="srm", n_features=30)
    with pytest.raises(ValueError, match="method must be"):
        f(brains, method="ica")
    with pytest.raises(ValueError, match="at least 2"):
        f({"a": brains["sub0"]})
    with pytest.raises(TypeError, match="one DataArray per subject"):
        f(brains["sub0"])
    bad = brains["sub1"].copy()
    bad[3, 2] = np.nan
    with pytest.raises(SchemaError, match="non-finite"):
        f({"a": brains["sub0"], "b": bad})
    ha = nb.encoding.Hyperalignment().fit([np.ones((10, 3)) + np.eye(10, 3), np.eye(10, 3)])
    with pytest.raises(ValueError, match="expected"):
        ha.transform([np.ones((4, 3)), np.ones((4, 5))])
    with pytest.raises(ValueError, match="same samples"):
        nb.encoding.Hyperalignment().fit([np.ones((10, 3)), np.ones((9, 3))])
    with pytest.raises(ValueError, match="exceeds the 10 training samples"):
        nb.encoding.SharedResponseModel(n_features=12).fit([np.eye(10, 20), np.eye(10, 20)])
