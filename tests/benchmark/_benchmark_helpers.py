"""Helpers shared by the benchmark tests (imported by name; the test folder is on sys.path)."""

from __future__ import annotations

import numpy as np

import neurobridge as nb


def planted_features(n_stim=40, n_layers=5, n_units=30, seed=0):
    """Random per-layer features (independent layers) as a dict layer -> activations."""
    rng = np.random.default_rng(seed)
    ids = [f"s{i:02d}" for i in range(n_stim)]
    return {f"L{k}": nb.core.activations(rng.normal(size=(n_stim, n_units)), stimulus=ids)
            for k in range(n_layers)}


def planted_rdms(acts, layer, n_subjects=4, noise=0.6, seed=1, shared_noise=0.0):
    """Subject RDMs = the correlation-distance RDM of ``acts[layer]`` + independent symmetric noise."""
    rng = np.random.default_rng(seed)
    a = acts[layer].values
    base = 1.0 - np.corrcoef(a)
    n = base.shape[0]
    out = []
    shared = rng.normal(size=(n, n))
    for _ in range(n_subjects):
        e = rng.normal(size=(n, n))
        e = (e + e.T) / 2 + shared_noise * (shared + shared.T) / 2
        r = base + noise * base.std() * e
        np.fill_diagonal(r, 0.0)
        out.append(r)
    ids = acts[layer]["stimulus"].values
    return nb.core.rdm(np.stack(out), dims=("subject",), stimulus=ids,
                       coords={"subject": [f"sub{i}" for i in range(n_subjects)]})
