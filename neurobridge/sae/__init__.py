"""Sparse autoencoders and sparse coding on model activations (and any ``(sample, unit)`` data): ``neurobridge.sae``.

What exists
-----------
* Variants, one frozen config dataclass each (base :class:`SAEConfig`), saved with the weights:
  **TopK** (:class:`TopKConfig`), **BatchTopK** (:class:`BatchTopKConfig`, with the learned inference threshold),
  **Matryoshka-BatchTopK** (:class:`MatryoshkaBatchTopKConfig`: nested dictionary prefixes, each reconstructing
  the input, loss summed over the prefixes), **ReLU + L1** (:class:`ReLUConfig`: Anthropic's April 2024 update,
  the L1 penalty weighted by the decoder row norms, coefficient warm-up, gradient clipping, decoder norm left
  free) and **JumpReLU** (:class:`JumpReLUConfig`: per-latent thresholds trained through the straight-through
  pseudo-derivatives of a rectangle-kernel density estimate, an L0 penalty; :mod:`._functional`).
* :class:`SAE`: encoder ``W_enc, b_enc``, pre-bias ``b_dec``, decoder ``W_dec`` (unit-norm rows except ReLU);
  ``encode`` returns a :class:`SparseCode` ``(values, indices)``, ``decode`` is a gather of the active decoder
  rows through :func:`neurobridge.kernels.topk_decode.topk_decode` (Triton on CUDA, torch reference on CPU). For
  the TopK variants the encoder's weight gradient is sparse too (``topk_encode``); ReLU / JumpReLU training forms
  the dense pre-activations and decodes through the sparse gather once the code is sparse enough (dense matmul
  before), both exact.
* :func:`train_sae` on in-memory activations (DataArray ``(stimulus|token, unit)``, numpy, torch): Adam, LR
  warm-up and linear decay, decoder-gradient projection and renormalisation, AuxK loss on dead latents with
  dead-latent tracking over a token window, pre-bias from the geometric median, input normalisation, sparsity
  coefficient warm-up, deterministic under a seed, progress bar with loss / L0 / dead fraction; returns
  ``(sae, history)``.
* Sparse coding by matrix factorisation: :func:`fit_nmf` with :class:`SemiNMFConfig` (semi-NMF, Ding, Li & Jordan
  2010: signed dictionary, non-negative codes) or :class:`NMFConfig` (NMF for non-negative inputs, Lee & Seung
  multiplicative updates); the fitted :class:`SemiNMF` / :class:`NMF` have the SAE's ``encode`` / ``decode`` /
  ``save`` and work with :func:`evaluate` and :func:`load_sae`.
* :func:`evaluate`: MSE, FVU, L0, dead and dense latent fractions and the per-latent density.
* :meth:`SAE.save` / :func:`load_sae`: safetensors weights + JSON config, with the variant checked on load.
* :class:`SparseDictionary`: any of the above as a scikit-learn transformer (``fit`` / ``transform`` /
  ``inverse_transform``), e.g. in a Pipeline before :class:`neurobridge.encoding.RidgeCV`.
* Brains (:mod:`._brain`): :func:`latent_codes` (dense codes as a labelled ``(stimulus, latent)`` DataArray, pooled
  over tokens if asked); :func:`latent_encoding` (``fit_encoding`` on the latents and on the raw units with the same
  outer folds: held-out r per voxel / channel for both); :func:`latent_brain_map` (``(latent, voxel|channel...)``
  correlations or ridge weights, ready for ``nb.io.to_nifti`` / topomaps); :func:`top_stimuli` (top-activating
  stimuli per latent with their labels); :func:`latent_selectivity` (AUC or d' for a stimulus label, permutation
  p-values over stimuli, FDR); SAEs on brain responses: :func:`brain_sae_input` (voxels, or channels x time, as
  units; stimulus x time as samples), :func:`latent_patterns` (decoder rows in the brain's dims and units),
  :func:`train_brain_sae`.

Planted-dictionary recovery (``nb.datasets.simulate_sparse_codes``, 64 atoms in 32 dims, 3 active, 256 latents,
625 steps; fraction of atoms matched at cosine > 0.9, tests/sae): TopK 100%, BatchTopK 98-100%,
Matryoshka-BatchTopK 97-98%, ReLU + L1 100% (but L0 ~18, not 3), JumpReLU 95-97% (with thresholds and bandwidth
set near the data's scale; from the paper's 0.001 defaults it needs ~3x the steps). Details in
``tests/sae/test_variants.py``. Semi-NMF / NMF are fits, not dictionary learners: exact on low-rank data, with no
sparsity pressure on the codes (their L0 is near ``n_latents`` unless ``zero_tol`` is raised).

Not yet (issue 13)
------------------
Streaming from zarr activation stores or from a live model, several layers per run, checkpoint / resume;
downstream loss recovered; loading SAELens or sparsify checkpoints.

Examples
--------
>>> import neurobridge as nb
>>> sim = nb.datasets.simulate_sparse_codes(1000, 16, 32, k=2, random_state=0)
>>> sae, history = nb.sae.train_sae(sim.data, nb.sae.TopKConfig(n_latents=64, k=2), epochs=5,
...                                 batch_size=250, lr=3e-3, progress=False)
>>> ev = nb.sae.evaluate(sae, sim.data)
>>> ev.l0 <= 2 and ev.fvu < 0.5
True
"""

from ._brain import (
    BrainSAE,
    brain_sae_input,
    latent_brain_map,
    latent_codes,
    latent_encoding,
    latent_patterns,
    latent_selectivity,
    top_stimuli,
    train_brain_sae,
)
from ._config import (
    BatchTopKConfig,
    JumpReLUConfig,
    MatryoshkaBatchTopKConfig,
    NMFConfig,
    ReLUConfig,
    SAEConfig,
    SemiNMFConfig,
    TopKConfig,
)
from ._model import SAE, SparseCode, load_sae
from ._nmf import NMF, NMFResult, SemiNMF, fit_nmf
from ._sklearn import SparseDictionary
from ._train import SAEEvaluation, TrainResult, evaluate, train_sae

__all__ = ["SAEConfig", "TopKConfig", "BatchTopKConfig", "MatryoshkaBatchTopKConfig", "ReLUConfig", "JumpReLUConfig",
           "SemiNMFConfig", "NMFConfig", "SAE", "SparseCode", "load_sae", "train_sae", "evaluate", "TrainResult",
           "SAEEvaluation", "SemiNMF", "NMF", "NMFResult", "fit_nmf", "SparseDictionary",
           "latent_codes", "latent_encoding", "latent_brain_map", "top_stimuli", "latent_selectivity",
           "brain_sae_input", "latent_patterns", "train_brain_sae", "BrainSAE"]
