"""Preprocessing callables: raw stimuli (uint8 images, strings) -> model input.

They are frozen dataclasses (picklable, comparable, printable) so a :class:`LoadedModel` says exactly how it
feeds its network.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from neurobridge.core import check_finite

__all__ = ["ImagePreprocess", "HFImagePreprocess", "PixelValues", "TextPreprocess", "as_image_list", "as_text_list"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_IMAGE_DIMS = ("stimulus", "height", "width", "color")


def _image_to_float(img: Any, index: int) -> np.ndarray:
    """One image -> float32 (H, W, 3) array in [0, 1]."""
    if isinstance(img, torch.Tensor):
        img = img.detach().cpu().numpy()
    arr = np.asarray(img)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise ValueError(
            f"image {index} has shape {arr.shape}; expected (height, width, 3) RGB (or (height, width) grey, "
            "(height, width, 4) RGBA); channels go last"
        )
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    arr = arr[:, :, :3]
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"image {index} is empty (shape {arr.shape})")
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"image {index} has dtype {arr.dtype}; expected uint8 in [0, 255] or float in [0, 1]")
    arr = arr.astype(np.float32)
    check_finite(arr, f"image {index}", fix="clean or drop it before preprocessing")
    if np.issubdtype(np.asarray(img).dtype, np.integer):
        if arr.min() < 0 or arr.max() > 255:
            raise ValueError(f"image {index} has integer values outside [0, 255]; pass uint8 images")
        return arr / 255.0
    if arr.min() < 0 or arr.max() > 1:
        raise ValueError(
            f"image {index} is floating point with values in [{arr.min():.3g}, {arr.max():.3g}]; float images "
            "must lie in [0, 1]: divide by 255 or pass uint8"
        )
    return arr


def as_image_list(images: Any) -> list[np.ndarray]:
    """A batch of images -> list of float32 (H, W, 3) arrays in [0, 1].

    Parameters
    ----------
    images : array-like, xr.DataArray or sequence of images
        A 4-D array (stimulus, height, width, color), an ``xr.DataArray`` with dims
        ``("stimulus", "height", "width", "color")`` (any order), or a sequence of (height, width[, 3])
        images (numpy arrays, tensors, PIL images), possibly of different sizes. uint8 values are in
        [0, 255], float values in [0, 1].

    Returns
    -------
    list of np.ndarray

    Examples
    --------
    >>> [im.shape for im in as_image_list(np.zeros((2, 8, 6, 3), np.uint8))]
    [(8, 6, 3), (8, 6, 3)]
    """
    if hasattr(images, "dims") and hasattr(images, "transpose"):  # xr.DataArray
        missing = [d for d in _IMAGE_DIMS if d not in images.dims]
        if missing or images.ndim != 4:
            raise ValueError(
                f"an image DataArray needs dims {_IMAGE_DIMS}, got {tuple(images.dims)}; rename its dims "
                "(da.rename(...)) or pass a (stimulus, height, width, color) numpy array"
            )
        images = images.transpose(*_IMAGE_DIMS).values
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    if isinstance(images, np.ndarray):
        if images.ndim == 3 and images.shape[-1] in (3, 4):
            raise ValueError(
                f"got one {images.ndim}-D array of shape {images.shape}; pass a batch: images[None] for a single "
                "RGB image, or a list of images"
            )
        if images.ndim not in (3, 4):
            raise ValueError(
                f"expected a batch of images of shape (stimulus, height, width, 3), got shape {images.shape}"
            )
        images = list(images)
    elif isinstance(images, (str, bytes)) or not isinstance(images, Sequence):
        raise TypeError(
            f"expected a batch of images (4-D array, xr.DataArray or list of arrays), got {type(images).__name__}"
        )
    if len(images) == 0:
        raise ValueError("got an empty batch of images")
    return [_image_to_float(img, i) for i, img in enumerate(images)]


def as_text_list(texts: Any) -> list[str]:
    """A batch of strings (list, tuple, numpy or xarray of str) -> list of str.

    Examples
    --------
    >>> as_text_list(np.array(["a cat", "a dog"]))
    ['a cat', 'a dog']
    """
    if isinstance(texts, str):
        raise TypeError(f"expected a batch of strings, got a single string {texts!r}; wrap it in a list: [{texts!r}]")
    if hasattr(texts, "dims") and hasattr(texts, "values"):
        texts = texts.values
    if isinstance(texts, np.ndarray):
        if texts.ndim != 1:
            raise ValueError(f"expected a 1-D batch of strings, got an array of shape {texts.shape}")
        texts = texts.tolist()
    if not isinstance(texts, Sequence):
        raise TypeError(f"expected a batch of strings (list of str), got {type(texts).__name__}")
    if len(texts) == 0:
        raise ValueError("got an empty batch of strings")
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        raise TypeError(
            f"expected strings, but item {bad[0]} is {type(texts[bad[0]]).__name__} ({texts[bad[0]]!r}); "
            "convert the stimuli to str first"
        )
    return list(texts)


@dataclass(frozen=True)
class ImagePreprocess:
    """Batch of RGB images -> normalised ``(stimulus, 3, size, size)`` float32 tensor.

    Each image is scaled to [0, 1] (uint8 / 255), resized with bilinear antialiased interpolation and
    normalised as ``(x - mean) / std`` per channel.

    Examples
    --------
    >>> prep = ImagePreprocess(size=32)
    >>> prep(np.zeros((2, 40, 50, 3), np.uint8)).shape
    torch.Size([2, 3, 32, 32])
    """

    size: int = 224
    """Output height and width in pixels."""
    crop: bool = False
    """``False``: resize the whole image to ``size`` x ``size`` (non-square images are squashed, nothing is
    lost). ``True``: resize the shorter side to ``size / crop_fraction`` and take the central square of ``size``
    (the usual ImageNet evaluation transform)."""
    crop_fraction: float = 1.0
    """With ``crop=True``, the fraction of the shorter side kept (torchvision models use 0.875: 256 -> 224)."""
    mean: tuple[float, float, float] = IMAGENET_MEAN
    """Per-channel mean subtracted from [0, 1] pixel values."""
    std: tuple[float, float, float] = IMAGENET_STD
    """Per-channel divisor applied after subtracting ``mean``."""

    def __call__(self, images: Any) -> torch.Tensor:
        """Preprocess a batch (see :func:`as_image_list` for accepted inputs)."""
        batch = []
        for img in as_image_list(images):
            x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None]
            h, w = x.shape[-2:]
            if self.crop:
                short = self.size / self.crop_fraction
                nh, nw = max(self.size, round(h * short / min(h, w))), max(self.size, round(w * short / min(h, w)))
                x = F.interpolate(x, size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
                top, left = (nh - self.size) // 2, (nw - self.size) // 2
                x = x[..., top:top + self.size, left:left + self.size]
            else:
                x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True, align_corners=False)
            batch.append(x)
        out = torch.cat(batch)
        mean = torch.tensor(self.mean, dtype=out.dtype).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=out.dtype).view(1, 3, 1, 1)
        return (out - mean) / std


@dataclass(frozen=True, eq=False)
class HFImagePreprocess:
    """Batch of RGB images -> ``{"pixel_values": tensor}`` through a saved Hugging Face image processor.

    Examples
    --------
    >>> prep = HFImagePreprocess(processor)  # doctest: +SKIP
    >>> prep(images)["pixel_values"].shape  # doctest: +SKIP
    torch.Size([4, 3, 224, 224])
    """

    processor: Any = field(repr=False)
    """A ``transformers`` image processor (``AutoImageProcessor.from_pretrained(path)``)."""

    def __call__(self, images: Any) -> dict[str, torch.Tensor]:
        """Preprocess a batch (see :func:`as_image_list` for accepted inputs)."""
        imgs = [np.clip(np.rint(im * 255), 0, 255).astype(np.uint8) for im in as_image_list(images)]
        out = self.processor(images=imgs, return_tensors="pt")
        return {k: v for k, v in out.items() if isinstance(v, torch.Tensor)}


@dataclass(frozen=True)
class PixelValues:
    """Wrap an image preprocessor's tensor as ``{"pixel_values": tensor}`` (the keyword HF vision models take).

    Examples
    --------
    >>> PixelValues(ImagePreprocess(size=8))(np.zeros((1, 8, 8, 3), np.uint8))["pixel_values"].shape
    torch.Size([1, 3, 8, 8])
    """

    inner: ImagePreprocess
    """The image preprocessing."""

    def __call__(self, images: Any) -> dict[str, torch.Tensor]:
        """Preprocess a batch (see :func:`as_image_list` for accepted inputs)."""
        return {"pixel_values": self.inner(images)}


@dataclass(frozen=True, eq=False)
class TextPreprocess:
    """Batch of strings -> dict of ``input_ids``, ``attention_mask`` (...) tensors, padded and truncated.

    Examples
    --------
    >>> prep = TextPreprocess(tokenizer, max_length=256)  # doctest: +SKIP
    >>> prep(["a cat", "a small dog"])["input_ids"].shape  # doctest: +SKIP
    torch.Size([2, 5])
    """

    tokenizer: Any = field(repr=False)
    """A ``transformers`` tokenizer with a pad token."""
    max_length: int | None = None
    """Longest sequence in tokens (longer texts are truncated); ``None`` uses the tokenizer's limit."""

    def __call__(self, texts: Any) -> dict[str, torch.Tensor]:
        """Tokenise a batch (list of str, or a numpy / xarray array of str)."""
        enc = self.tokenizer(
            as_text_list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        return dict(enc.items())
