"""AttentionReadout: per-voxel learned attention over tokens, trained with early stopping.

References: a planted simulation in which every voxel reads one known token through a linear map (the
attention must peak at that token, and held-out r approach the oracle r of the noise-free signal; RidgeCV on
the flattened tokens is the baseline); a manual torch training loop (torch.optim.AdamW, the same
initialisation and split) for early stopping and the restored best epoch; fit_encoding's scores against a
hand-written outer cross-validation with make_folds and the same scoring function.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import xarray as xr
from sklearn.base import clone

import neurobridge as nb
from neurobridge.core import SchemaError
from neurobridge.encoding import AttentionReadout, RidgeCV, correlation_score, make_folds
from neurobridge.encoding._attention import (
    _AttentionModule,
    _ridge_init,
    _token_screen,
    _validation_split,
)


def _planted(n=200, n_tokens=8, n_features=4, n_voxels=16, snr=2.0, seed=0):
    """Voxel v reads token v % n_tokens through its own weights; signal variance 1, noise variance 1 / snr."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_tokens, n_features))
    token = np.arange(n_voxels) % n_tokens
    beta = rng.normal(size=(n_voxels, n_features))
    signal = np.einsum("nvf,vf->nv", X[:, token, :], beta)
    signal /= signal.std(0)
    Y = signal + rng.normal(size=signal.shape) / np.sqrt(snr)
    return X, Y, signal, token


def _r(a, b):
    return correlation_score(torch.as_tensor(a), torch.as_tensor(b)).numpy()


def test_planted_token_is_localised_and_held_out_r_near_oracle():
    X, Y, S, token = _planted(n=260, n_tokens=8, n_features=4, n_voxels=16)
    tr, te = slice(0, 200), slice(200, None)
    m = AttentionReadout(lr=0.03, random_state=0, progress=False).fit(X[tr], Y[tr])
    peak = m.attention_.argmax(1)
    assert m.attention_.shape == (16, 8)
    np.testing.assert_allclose(m.attention_.sum(1), 1, atol=1e-5)
    assert (peak == token).mean() >= 0.9
    r_att = _r(Y[te], m.predict(X[te])).mean()
    r_oracle = _r(Y[te], S[te]).mean()  # the noise-free signal: the best any model can do
    ridge = RidgeCV(alphas=np.logspace(-2, 4, 13)).fit(X[tr].reshape(200, -1), Y[tr])
    r_ridge = _r(Y[te], ridge.predict(X[te].reshape(60, -1))).mean()
    print(f"held-out r: attention {r_att:.3f}, ridge on flattened tokens {r_ridge:.3f}, oracle {r_oracle:.3f}")
    assert r_att > r_oracle - 0.05
    assert r_att > r_ridge  # 4 + 16 + 8 weights per voxel against ridge's 32, on the true model


def test_random_init_also_localises_with_few_tokens():
    X, Y, _, token = _planted(n=200, n_tokens=4, n_features=3, n_voxels=8, seed=1)
    m = AttentionReadout(init="random", lr=0.05, patience=None, max_epochs=150, progress=False).fit(X, Y)
    assert (m.attention_.argmax(1) == token).mean() >= 0.9
    assert m.attention_.max(1).min() > 0.5


@pytest.mark.slow
def test_planted_many_tokens_beats_ridge():
    X, Y, S, token = _planted(n=600, n_tokens=49, n_features=8, n_voxels=40, seed=2)
    tr, te = slice(0, 400), slice(400, None)
    m = AttentionReadout(lr=0.03, progress=False).fit(X[tr], Y[tr])
    assert (m.attention_.argmax(1) == token).mean() >= 0.95
    r_att, r_oracle = _r(Y[te], m.predict(X[te])).mean(), _r(Y[te], S[te]).mean()
    ridge = RidgeCV(alphas=np.logspace(-2, 4, 13)).fit(X[tr].reshape(400, -1), Y[tr])
    r_ridge = _r(Y[te], ridge.predict(X[te].reshape(200, -1))).mean()
    print(f"49 tokens: attention {r_att:.3f}, ridge {r_ridge:.3f}, oracle {r_oracle:.3f}")
    assert r_att > r_oracle - 0.03 and r_att > r_ridge + 0.1


def test_early_stopping_restores_best_epoch_as_a_manual_loop():
    X, Y, _, _ = _planted(n=60, n_tokens=4, n_features=6, n_voxels=5, snr=0.3, seed=3)
    kw = dict(lr=0.05, weight_decay=1e-3, val_fraction=0.25, random_state=4, progress=False)
    m = AttentionReadout(patience=5, max_epochs=400, **kw).fit(X, Y)
    assert m.n_epochs_ < 400  # noisy and small: it overfits, so it stopped early
    assert m.n_epochs_ == m.best_epoch_ + 5 + 1
    assert m.best_epoch_ == int(np.argmin(m.val_loss_))
    # the manual loop: same split, standardisation and initialisation, torch's own AdamW, keep the best state
    rng = np.random.default_rng(4)
    tr, va = _validation_split(60, 0.25, None, rng)
    np.testing.assert_array_equal(tr, m.train_indices_)
    gen = torch.Generator().manual_seed(int(rng.integers(2**63 - 1)))
    Xt, Yt = torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(Y, dtype=torch.float32)
    mx, sx = Xt[tr].mean((0, 1)), Xt[tr].std((0, 1))
    Xs, Ys = (Xt - mx) / sx, (Yt - Yt[tr].mean(0)) / Yt[tr].std(0)
    net = _AttentionModule(4, 6, 5, 1, 16, True, gen).float()
    _ridge_init(net, *_token_screen(Xs[tr], Ys[tr], None))
    opt = torch.optim.AdamW(net.parameters(), lr=0.05, weight_decay=1e-3)
    losses, best, best_state = [], np.inf, None
    for _ in range(m.n_epochs_):
        opt.zero_grad()
        ((net(Xs[tr]) - Ys[tr]).square().mean()).backward()
        opt.step()
        with torch.no_grad():
            losses.append(float((net(Xs[va]) - Ys[va]).square().mean()))
        if losses[-1] < best:
            best, best_state = losses[-1], copy.deepcopy(net.state_dict())
    np.testing.assert_allclose(m.val_loss_, losses, rtol=1e-4)
    assert int(np.argmin(losses)) == m.best_epoch_
    for name, value in best_state.items():
        torch.testing.assert_close(m.module_.state_dict()[name], value, rtol=1e-4, atol=1e-5)
    # restored: the validation loss of the returned model is the best one, not the last one
    pred = m.predict(X[va])
    val_mse = (((pred - Y[va]) / Y[tr].std(0, ddof=1)) ** 2).mean()
    np.testing.assert_allclose(val_mse, m.val_loss_.min(), rtol=1e-4)
    assert m.val_loss_[-1] > m.val_loss_.min()


def test_deterministic_under_seed():
    X, Y, _, _ = _planted(n=80, n_tokens=4, n_features=3, n_voxels=4, seed=5)
    kw = dict(lr=0.05, max_epochs=12, batch_size=20, progress=False)
    a = AttentionReadout(random_state=7, **kw).fit(X, Y)
    b = AttentionReadout(random_state=7, **kw).fit(X, Y)
    c = AttentionReadout(random_state=8, **kw).fit(X, Y)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    np.testing.assert_array_equal(a.attention_, b.attention_)
    np.testing.assert_array_equal(a.val_loss_, b.val_loss_)
    assert not np.array_equal(a.val_indices_, c.val_indices_)
    assert not np.allclose(a.predict(X), c.predict(X))


def test_fit_encoding_scores_like_a_manual_outer_cv():
    X, Y, _, token = _planted(n=60, n_tokens=4, n_features=3, n_voxels=4, seed=6)
    ids = [f"s{i}" for i in range(60)]
    feats = nb.core.activations(X, stimulus=ids)  # (stimulus, token, unit)
    brain = nb.core.fmri_responses(Y, stimulus=ids, dim="stimulus")
    est = AttentionReadout(n_tokens=4, lr=0.05, max_epochs=40, progress=False)
    res = nb.encoding.fit_encoding(feats, brain, estimator=est, cv=3, scoring="correlation", progress=False)
    assert res.score.dims == ("voxel",) and res.attrs["estimator"] == "AttentionReadout"
    manual = []
    for tr, va in make_folds(60, 3):
        m = clone(est).fit(X[tr].reshape(len(tr), -1), Y[tr])  # token-major flattening, as fit_encoding's
        manual.append(_r(Y[va], m.predict(X[va].reshape(len(va), -1))))
    np.testing.assert_allclose(res.score.values, np.mean(manual, 0), rtol=1e-5, atol=1e-6)
    ridge = nb.encoding.fit_encoding(feats, brain, cv=3, scoring="correlation", progress=False)
    print(f"fit_encoding r: attention {float(res.score.mean()):.3f}, ridge {float(ridge.score.mean()):.3f}")
    assert float(res.score.mean()) > 0.6
    assert np.isfinite(res.inner_score.values).all()  # best_score_: the validation R^2 at the best epoch


def test_labelled_and_flattened_inputs_agree():
    X, Y, _, _ = _planted(n=60, n_tokens=3, n_features=2, n_voxels=3, seed=7)
    kw = dict(lr=0.05, max_epochs=20, progress=False)
    ref = AttentionReadout(**kw).fit(X, Y)
    flat = AttentionReadout(n_tokens=3, **kw).fit(X.reshape(60, 6), Y)
    da = xr.DataArray(X, dims=("stimulus", "space", "unit")).transpose("unit", "stimulus", "space")
    lab = AttentionReadout(**kw).fit(da, Y)
    for m in (flat, lab):
        np.testing.assert_allclose(m.predict(X), ref.predict(X), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(flat.predict(X.reshape(60, 6)), ref.predict(X), rtol=1e-5, atol=1e-6)
    att = ref.attention(X, average_heads=False)
    assert att.shape == (60, 3, 1, 3) and ref.attention(X).shape == (60, 3, 3)
    np.testing.assert_allclose(ref.attention(X).mean(0), ref.attention_, atol=1e-6)


def test_tensor_in_tensor_out_and_one_target():
    X, Y, _, _ = _planted(n=50, n_tokens=3, n_features=2, n_voxels=2, seed=8)
    m = AttentionReadout(max_epochs=10, progress=False).fit(torch.as_tensor(X), torch.as_tensor(Y[:, 0]))
    pred = m.predict(torch.as_tensor(X))
    assert isinstance(pred, torch.Tensor) and pred.shape == (50,) and pred.dtype == torch.float64
    assert isinstance(m.best_score_, float)
    assert m.predict(X.astype(np.float32)).dtype == np.float32


def test_groups_stay_whole_in_the_validation_split():
    X, Y, _, _ = _planted(n=60, n_tokens=3, n_features=2, n_voxels=2, seed=9)
    groups = np.repeat(np.arange(20), 3)
    m = AttentionReadout(max_epochs=5, progress=False).fit(X, Y, groups=groups)
    assert not set(groups[m.train_indices_]) & set(groups[m.val_indices_])
    assert len(np.unique(groups[m.val_indices_])) == 4


def test_progress_bar_shows_the_validation_loss(capsys):
    X, Y, _, _ = _planted(n=40, n_tokens=2, n_features=2, n_voxels=2, seed=10)
    AttentionReadout(max_epochs=3, progress=True).fit(X, Y)
    assert "val_loss=" in capsys.readouterr().err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    X, Y, _, _ = _planted(n=80, n_tokens=4, n_features=3, n_voxels=4, seed=12)
    kw = dict(lr=0.05, max_epochs=20, progress=False)
    Xt, Yt = torch.as_tensor(X), torch.as_tensor(Y)  # float64: the two devices agree to rounding
    cpu = AttentionReadout(**kw).fit(Xt, Yt)
    gpu = AttentionReadout(**kw).fit(Xt.cuda(), Yt.cuda())
    pred = gpu.predict(Xt.cuda())
    assert pred.is_cuda and gpu.attention_.is_cuda
    torch.testing.assert_close(pred.cpu(), cpu.predict(Xt), rtol=1e-6, atol=1e-8)
    out = AttentionReadout(device="cuda", **kw).fit(X, Y).predict(X)  # numpy in: float32 on the GPU, numpy out
    assert isinstance(out, np.ndarray)
    np.testing.assert_allclose(out, cpu.predict(X), rtol=0, atol=0.05 * Y.std())


def test_bad_inputs():
    X, Y, _, _ = _planted(n=40, n_tokens=3, n_features=2, n_voxels=2, seed=11)
    m = AttentionReadout(max_epochs=2, progress=False)
    with pytest.raises(ValueError, match="n_tokens=..."):
        m.fit(X.reshape(40, 6), Y)
    with pytest.raises(ValueError, match="not a multiple of n_tokens=4"):
        AttentionReadout(n_tokens=4).fit(X.reshape(40, 6), Y)
    with pytest.raises(ValueError, match="expected n_tokens=2"):
        AttentionReadout(n_tokens=2).fit(X, Y)
    with pytest.raises(ValueError, match="got shape"):
        m.fit(X[..., None], Y)
    Xn = X.copy()
    Xn[3, 1, 0] = np.nan
    with pytest.raises(SchemaError, match="non-finite"):
        m.fit(Xn, Y)
    with pytest.raises(ValueError, match="n_samples=40"):
        m.fit(X, Y[:30])
    with pytest.raises(ValueError, match="at least 1 and 2"):
        m.fit(X[:2], Y[:2])
    with pytest.raises(ValueError, match="init='random'"):
        m.fit(X[:4], Y[:4])
    AttentionReadout(init="random", max_epochs=2, progress=False).fit(X[:4], Y[:4])
    with pytest.raises(ValueError, match="'token' or 'space'"):
        m.fit(xr.DataArray(X, dims=("stimulus", "time", "unit")), Y)
    for bad in (dict(val_fraction=0.0), dict(val_fraction=1.0), dict(patience=0), dict(lr=-1.0), dict(n_heads=0),
                dict(max_epochs=1.5), dict(init="zeros"), dict(weight_decay=-1.0), dict(batch_size=0)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            AttentionReadout(**bad).fit(X, Y)
    fitted = AttentionReadout(max_epochs=2, progress=False).fit(X, Y)
    with pytest.raises(ValueError, match="expected n_tokens=3"):
        fitted.predict(X[:, :2])
    with pytest.raises(ValueError, match="fitted on 3 x 2"):
        fitted.attention(X[:, :, :1])
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        AttentionReadout().predict(X)
    with pytest.raises(AttributeError, match="no linear coef_"):
        _ = fitted.coef_


def test_token_structured_features_flatten_token_major_whatever_their_dim_order():
    """fit_encoding flattens (stimulus, unit, token) and (stimulus, token, unit) features the same way (token-major),
    so AttentionReadout(n_tokens=...) reads the same columns from both."""
    from neurobridge.encoding._labelled import _stack_units

    rng = np.random.default_rng(0)
    a = xr.DataArray(rng.normal(size=(5, 3, 4)), dims=("stimulus", "token", "unit"),
                     coords={"stimulus": list("abcde"), "token": [0, 1, 2], "unit": [0, 1, 2, 3]})
    b = a.transpose("stimulus", "unit", "token")
    np.testing.assert_array_equal(_stack_units(a, "stimulus").values, _stack_units(b, "stimulus").values)
    np.testing.assert_array_equal(_stack_units(b, "stimulus").values.reshape(5, 3, 4), a.values)
