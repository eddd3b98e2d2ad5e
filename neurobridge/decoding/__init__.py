"""Decoding: brain -> labels or values, at every time point, and across time points.

What is here
------------
* :func:`sliding` -- time-resolved decoding: one cross-validated decoder per point of ``dim`` (the labelled
  ``cross_val_multiscore(SlidingEstimator(...))`` of MNE), for M/EEG ``(trial, channel, time)``, fMRI
  ``(trial, voxel)`` (``dim=None``) and activations ``(stimulus, unit)``; labels (accuracy, balanced
  accuracy, ROC AUC one-vs-rest) or continuous targets / embeddings (R2, Pearson r).
* :func:`generalizing` -- temporal generalisation, train at ``time`` and test at ``time2``.
* :func:`patterns` -- Haufe et al. (2014) activation patterns of the linear decoders, labelled
  ``(channel, time)``.
* :func:`retrieval` -- zero-shot retrieval decoding (brain -> model embedding): cross-validated ridge with
  alpha by inner CV, held-out predictions scored by top-k, rank and 2-vs-2 accuracy (Mitchell et al. 2008)
  among candidate stimuli; :func:`retrieval_scores` scores any decoder's predictions the same way.
  ``decoder="contrastive"`` (:class:`ContrastiveDecoder`) trains a linear decoder with the symmetric CLIP
  InfoNCE loss instead (Benchetrit, Banville & King 2023), scored on the same folds and candidates.
* :func:`permutation_test` -- label permutations that follow the design (all samples, whole stimuli, or within
  runs), the cross-validated decoder rerun on each, family-wise corrected over ``time`` or ``(time, time2)``
  by cluster mass and by the maximum statistic; :func:`group_test` -- sign flips of subjects' curves,
  cluster-corrected (calibrated: 3-7% family-wise false positives at alpha 0.05 on smooth and few-stimuli
  nulls, ``tests/decoding/test_inference.py``).
* A batched torch path for the linear decoders ``"ridge"`` (``RidgeClassifier`` / ``Ridge``), ``"lda"``
  (shrinkage LDA, Ledoit-Wolf, ``solver="lsqr"``) and ``"logistic"`` (``LogisticRegression`` with the L2 penalty:
  batched truncated Newton on scikit-learn's objective): every time point and fold in one batched solve,
  every ``(time, time2)`` prediction in batched GEMMs, scores reduced in torch, on CPU or GPU, with the
  predictions of scikit-learn on each time point. Any other scikit-learn estimator or Pipeline runs on the
  generic path (per fold and time point, on threads sharing the data).
* Folds as scikit-learn/MNE make them (``StratifiedKFold`` for labels), any splitter or ``groups=``; chance
  levels from the label distribution in the result's attrs.

Not yet (issue 12)
------------------
Alpha selection for the batched ridge (a fixed alpha per call today), searchlight/ROI maps, the decoding benchmark kind
of ``neurobridge benchmark``, and nilearn brain maps of patterns (topomaps: ``mne.EvokedArray`` of the
patterns, as ``tutorials/07_decoding.ipynb`` shows).

Examples
--------
>>> import numpy as np, neurobridge as nb
>>> rng = np.random.default_rng(0)
>>> y = np.repeat(["face", "house"], 20)
>>> X = rng.normal(size=(40, 6, 3)); X[y == "face", 1, 1:] += 4.0
>>> nb.decoding.sliding(nb.core.eeg_epochs(X, stimulus=y, sfreq=100.0), y).round(1).values.tolist()
[0.6, 0.9, 1.0]
"""

from ._api import generalizing, patterns, sliding
from ._contrastive import ContrastiveDecoder, info_nce_loss
from ._inference import group_test, permutation_test
from ._retrieval import RetrievalScores, retrieval, retrieval_scores
from ._scoring import chance_level

__all__ = ["sliding", "generalizing", "patterns", "chance_level", "retrieval", "retrieval_scores", "RetrievalScores",
           "permutation_test", "group_test", "ContrastiveDecoder", "info_nce_loss"]
