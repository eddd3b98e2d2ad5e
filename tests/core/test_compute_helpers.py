"""Shared compute helpers of neurobridge.core: eigh_many, all_finite, Workspace, cpu_threads."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neurobridge.core import Workspace, all_finite, cpu_threads, eigh_many


def _sym(n, seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n + 5, n, generator=g, dtype=dtype)
    return a.T @ a


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_eigh_many_equals_eigh_one_by_one(dtype):
    mats = [_sym(n, s, dtype) for s, n in enumerate([40, 40, 7, 63, 1])]
    before = torch.get_num_threads()
    out = eigh_many(mats)
    assert torch.get_num_threads() == before  # the single-thread scope is restored
    assert len(out) == len(mats)
    for m, (lam, vec) in zip(mats, out, strict=True):
        ref = np.linalg.eigvalsh(m.double().numpy())
        tol = 1e-10 if dtype == torch.float64 else 1e-4
        np.testing.assert_allclose(lam.double().numpy(), ref, rtol=tol, atol=tol * ref.max())
        # eigenvectors reconstruct the matrix (signs are arbitrary)
        rec = (vec * lam) @ vec.T
        np.testing.assert_allclose(rec.double().numpy(), m.double().numpy(), atol=tol * float(m.abs().max()) * 10)
    assert eigh_many([]) == []


def test_eigh_many_single_threaded_scope():
    with cpu_threads(1):
        (lam, _), = eigh_many([_sym(5, 0)])
        assert torch.get_num_threads() == 1
    np.testing.assert_allclose(lam.numpy(), np.linalg.eigvalsh(_sym(5, 0).numpy()), rtol=1e-10)


def test_all_finite():
    assert all_finite(torch.ones(10))
    assert all_finite(torch.tensor([3e38, 3e38, 1.0]))  # the sum overflows: the exact test decides
    assert not all_finite(torch.tensor([1.0, float("nan")]))
    assert not all_finite(torch.tensor([1.0, float("inf"), -float("inf")]))  # inf - inf = nan, still caught
    assert not all_finite(torch.tensor([[1.0], [-float("inf")]], dtype=torch.float64))
    assert all_finite(torch.empty(0))
    assert all_finite(torch.arange(5))  # integers are always finite


def test_workspace_reuses_and_grows():
    ws = Workspace(torch.float32)
    a = ws("buf", (4, 5))
    b = ws("buf", (2, 3))
    assert a.data_ptr() == b.data_ptr() and b.shape == (2, 3) and b.is_contiguous()
    c = ws("buf", (10, 10))  # larger: a new buffer
    assert c.shape == (10, 10) and c.numel() == 100
    d = ws("other", (3,), dtype=torch.int64)
    assert d.dtype == torch.int64 and d.data_ptr() != c.data_ptr()
    e = ws("other", (3,))  # same name, new dtype: a new buffer of that dtype
    assert e.dtype == torch.float32


def test_side_by_side_keeps_order_and_uses_threads():
    import threading
    import time

    from neurobridge.core import side_by_side

    seen = set()

    def slow_square(v):
        seen.add(threading.get_ident())
        time.sleep(0.01 * (5 - v))  # later items finish first: the output must still be in input order
        return v * v

    assert side_by_side(slow_square, list(range(5)), n_workers=3) == [0, 1, 4, 9, 16]
    assert len(seen) > 1
    seen.clear()
    assert side_by_side(slow_square, [2, 3], n_workers=1) == [4, 9]
    assert seen == {threading.get_ident()}  # one worker: in the calling thread
