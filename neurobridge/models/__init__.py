"""Model registry (name -> loader) and built-in architectures for offline weights.

Examples
--------
>>> import neurobridge as nb
>>> nb.models.list()
['efficientnet_lite0', 'minilm']
>>> lm = nb.models.load("efficientnet_lite0")
>>> lm.module(lm.preprocess(np.zeros((1, 224, 224, 3), np.uint8))).shape  # doctest: +SKIP
torch.Size([1, 1000])
"""

from ._base import LoadedModel
from ._efficientnet import EfficientNetLite, efficientnet_lite0
from ._hf import load_hf
from ._preprocess import HFImagePreprocess, ImagePreprocess, PixelValues, TextPreprocess
from ._registry import (
    MODELS,
    ModelBuildError,
    ModelSpecError,
    load,
    load_efficientnet_lite0,
    load_minilm,
    minilm_path,
    register,
)
from ._registry import list_models as list  # noqa: A004 (the brief's public name: nb.models.list())

__all__ = [
    "LoadedModel", "MODELS", "load", "list", "register", "ModelSpecError", "ModelBuildError", "load_hf",
    "load_efficientnet_lite0", "load_minilm", "minilm_path", "EfficientNetLite", "efficientnet_lite0",
    "ImagePreprocess", "HFImagePreprocess", "PixelValues", "TextPreprocess",
]
