"""The compiled rank kernels (Spearman / rho-a of many RDMs against fixed models) against scipy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from neurobridge.rsa._compare import _prepare
from neurobridge.rsa._rank_kernels import max_pairs, rank_dot_matrices, rank_dot_rows


def _rho_a(x, m):
    n = len(x)
    rx, rm = stats.rankdata(x), stats.rankdata(m)
    return 12 * np.sum((rx - rx.mean()) * (rm - rm.mean())) / (n**3 - n)


def _reference(rows, models, method):
    fn = (lambda a, b: stats.spearmanr(a, b).statistic) if method == "spearman" else _rho_a
    return np.array([[fn(r, m) for m in models] for r in rows])


def _hard_rows(rng, n, dtype):
    """Rows that exercise every branch: plain values, exact ties (pairs, long runs, a constant row), and
    distinct values closer together than the kernel's quantisation step (runs of equal keys to re-sort)."""
    rows = [rng.standard_normal(n)]
    r = rng.standard_normal(n)
    r[rng.integers(0, n, n // 5)] = r[0]  # one large group of exact ties (a long run: Shell sort's wide gaps)
    r[1:n // 2] = r[n // 2]
    rows.append(r)
    rows.append(np.round(rng.standard_normal(n) * 3) / 3)  # many tie groups of every size
    rows.append(np.full(n, 0.25))  # all tied: rsatoolbox and scipy give nan, we give 0 (see below)
    base = np.array(1.0, dtype)
    close = base + np.arange(n) * np.finfo(dtype).eps  # distinct but within one quantisation step...
    close[-1] = 3.0  # ...of a row whose range is set by one far value
    rows.append(rng.permutation(close))
    tiny = rng.permutation(close)
    tiny[: n // 3] = tiny[n // 3]  # exact ties inside a run of equal keys
    rows.append(tiny)
    rows.append(-np.abs(rng.standard_normal(n)))  # negative values
    return np.stack(rows).astype(dtype)


@pytest.mark.filterwarnings("ignore::scipy.stats.ConstantInputWarning")  # scipy on the constant row
@pytest.mark.parametrize("method", ["spearman", "rho-a"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [3, 10, 4950])
def test_rank_dot_rows_equals_scipy(method, dtype, n):
    rng = np.random.default_rng(n)
    rows = _hard_rows(rng, n, dtype)
    models = np.stack([rng.standard_normal(n), np.round(rng.standard_normal(n)), rng.permutation(n)])
    prepared = _prepare(torch.as_tensor(models), method)
    out = rank_dot_rows(torch.as_tensor(rows), prepared, method).double().numpy()
    ref = _reference(rows, models, method)
    constant = ~np.isfinite(ref)
    assert constant[3].all() == (method == "spearman")  # undefined for scipy's spearman; rho-a is 0 there
    tol = 1e-12 if dtype == np.float64 else 1e-6  # the result is returned in the input dtype
    np.testing.assert_allclose(out[~constant], ref[~constant], atol=tol, rtol=0)
    np.testing.assert_array_equal(out[constant], 0.0)  # as _prepare's zero vector: a constant RDM scores 0


def test_rank_dot_rows_threads_and_the_largest_rows():
    rng = np.random.default_rng(0)
    x = torch.as_tensor(rng.standard_normal((40, 300)))
    prepared = _prepare(torch.as_tensor(rng.standard_normal((2, 300))), "spearman")
    a = rank_dot_rows(x, prepared, "spearman", threads=1)
    b = rank_dot_rows(x, prepared, "spearman", threads=2)
    assert torch.equal(a, b)  # rows are independent: splitting them changes nothing
    big = rng.standard_normal((2, max_pairs()))  # 16 value bits: the fewest the kernels take
    big[1, ::7] = big[1, 3]
    m = rng.standard_normal(max_pairs())
    out = rank_dot_rows(torch.as_tensor(big), _prepare(torch.as_tensor(m[None]), "spearman"), "spearman")
    np.testing.assert_allclose(out[:, 0].numpy(), _reference(big, m[None], "spearman")[:, 0], atol=1e-12)


def test_rank_dot_rows_survives_non_finite_values():
    """The public functions reject NaN and inf before this point; the kernel itself must still never index
    out of bounds with them (its keys are clamped), whatever it returns."""
    x = torch.tensor([[np.nan, 1.0, 2.0, np.inf, -np.inf, 0.5], [np.nan] * 6])
    prepared = _prepare(torch.arange(6.0)[None], "spearman")
    assert rank_dot_rows(x, prepared, "spearman").shape == (2, 1)


@pytest.mark.parametrize("metric", ["correlation", "cosine", "euclidean"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rank_dot_matrices_equals_the_condensed_path(metric, dtype):
    """The fused kernel forms each distance with the same float operations as _sphere_matrices +
    _condensed_distances, so its ranks, ties included, are those of the condensed rows."""
    from neurobridge.core import Workspace
    from neurobridge.rsa._maps import _condensed_distances, _sphere_matrices, _sphere_products

    rng = np.random.default_rng(1)
    n, p = 12, 30
    xt = torch.as_tensor(np.round(rng.standard_normal((1, p + 1, n)) * 2) / 2, dtype=dtype)  # coarse: ties
    xt[:, -1] = 0  # the padding row
    idx = torch.as_tensor(np.sort(rng.integers(0, p + 1, (25, 9)), axis=1))
    idx[:, 0] = torch.arange(25) % p  # at least one real feature per neighbourhood
    k = (idx < p).sum(-1).to(dtype)
    prepared = _prepare(torch.as_tensor(rng.standard_normal((3, n * (n - 1) // 2))), "spearman")
    ws = Workspace(dtype, torch.device("cpu"))
    try:
        prods, scale = _sphere_products(xt, idx, k, metric, ws)
    except ValueError:  # a constant pattern for correlation/cosine: not this test's subject
        pytest.skip("random neighbourhood with a constant pattern")
    fused = rank_dot_matrices(prods[0], scale[0], k, metric, prepared, "spearman")
    iu, ju = torch.triu_indices(n, n, offset=1)
    vec = _condensed_distances(_sphere_matrices(xt, idx, k, metric, Workspace(dtype, torch.device("cpu"))), metric,
                               iu * n + ju, ws)
    ref = rank_dot_rows(vec[0], prepared, "spearman")
    assert torch.equal(fused, ref)
