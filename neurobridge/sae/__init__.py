"""Sparse autoencoders on model activations (and any ``(sample, unit)`` data): ``neurobridge.sae``.

What exists
-----------
* Variants: **TopK** (:class:`TopKConfig`) and **BatchTopK** (:class:`BatchTopKConfig`, with the learned
  inference threshold), one frozen config dataclass per variant, saved with the weights.
* :class:`SAE`: encoder ``W_enc, b_enc``, pre-bias ``b_dec``, unit-norm decoder ``W_dec``; ``encode`` returns a
  :class:`SparseCode` ``(values, indices)``, ``decode`` is a gather of the active decoder rows through
  :func:`neurobridge.kernels.topk_decode.topk_decode` (Triton on CUDA, torch reference on CPU), and the encoder's
  weight gradient is sparse too (``topk_encode``): no ``(batch, n_latents)`` gradient is ever formed.
* :func:`train_sae` on in-memory activations (DataArray ``(stimulus|token, unit)``, numpy, torch): Adam, LR
  warm-up and linear decay, decoder-gradient projection and renormalisation, AuxK loss on dead latents with
  dead-latent tracking over a token window, pre-bias from the geometric median, input normalisation,
  deterministic under a seed, progress bar with loss / L0 / dead fraction; returns ``(sae, history)``.
* :func:`evaluate`: MSE, FVU, L0, dead and dense latent fractions and the per-latent density.
* :meth:`SAE.save` / :func:`load_sae`: safetensors weights + JSON config, with the variant checked on load.

Not yet (issue 13)
------------------
ReLU + L1, JumpReLU and Matryoshka variants; streaming from zarr activation stores or from a live model,
several layers per run, checkpoint / resume; downstream loss recovered; semi-NMF / NMF; loading SAELens or
sparsify checkpoints; the sklearn ``SparseDictionary`` transformer; analyses against brain data (latents as
encoding features, latent -> voxel maps, top-activating stimuli); the tutorial.

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

from ._config import BatchTopKConfig, TopKConfig
from ._model import SAE, SparseCode, load_sae
from ._train import SAEEvaluation, TrainResult, evaluate, train_sae

__all__ = ["TopKConfig", "BatchTopKConfig", "SAE", "SparseCode", "load_sae", "train_sae", "evaluate",
           "TrainResult", "SAEEvaluation"]
