"""Hugging Face ``transformers`` models from a local directory or the HF cache (offline-friendly)."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from torch import nn

from ..core import optional_import
from ._base import LoadedModel
from ._preprocess import HFImagePreprocess, ImagePreprocess, PixelValues, TextPreprocess

__all__ = ["load_hf", "hf_default_layers"]

logger = logging.getLogger("neurobridge")

_N_LAYER_ATTRS = ("num_hidden_layers", "n_layer", "num_layers")
_MAX_POS_ATTRS = ("max_position_embeddings", "n_positions")


def _transformers():
    return optional_import("transformers", extra="models", purpose="Hugging Face models")


def _config_value(config: Any, names: tuple[str, ...]) -> Any:
    for n in names:
        v = getattr(config, n, None)
        if isinstance(v, int):
            return v
    return None


def hf_default_layers(module: nn.Module, config: Any) -> tuple[str, ...]:
    """The embedding module (when named ``embeddings``) and the repeated transformer layers, as globs.

    The layer stack is the first ``nn.ModuleList`` whose length equals the configured number of layers
    (``encoder.layer`` for BERT/ViT, ``h`` for GPT-2, ``layers`` for Llama-like models).

    Examples
    --------
    >>> hf_default_layers(bert_model, bert_model.config)  # doctest: +SKIP
    ('embeddings', 'encoder.layer.*')
    """
    n_layers = _config_value(config, _N_LAYER_ATTRS)
    stacks = [
        name for name, m in module.named_modules()
        if isinstance(m, nn.ModuleList) and name and (n_layers is None or len(m) == n_layers)
    ]
    if not stacks:
        return ()
    children = dict(module.named_children())
    emb = ("embeddings",) if "embeddings" in children else ()
    return (*emb, f"{stacks[0]}.*")


_TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "spiece.model", "tokenizer.model",
    "sentencepiece.bpe.model",
)


def _has_tokenizer_files(source: str, path: Path | None) -> bool:
    # transformers 5 builds an empty tokenizer when none was saved: only load one that exists
    if path is not None:
        return any((path / f).is_file() for f in _TOKENIZER_FILES)
    hub = optional_import("huggingface_hub")
    return any(isinstance(hub.try_to_load_from_cache(source, f), str) for f in _TOKENIZER_FILES)


def _is_vision(config: Any) -> bool:
    return hasattr(config, "num_channels") and hasattr(config, "image_size") and not hasattr(config, "vocab_size")


def _sentence_max_length(path: Path) -> int | None:
    cfg = path / "sentence_bert_config.json"
    if cfg.is_file():
        value = json.loads(cfg.read_text()).get("max_seq_length")
        return int(value) if value else None
    return None


def _text_preprocess(tokenizer: Any, config: Any, path: Path | None) -> TextPreprocess:
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError(
                f"the tokenizer of {getattr(config, '_name_or_path', 'this model')!r} has neither a pad nor an eos "
                "token, so batches cannot be padded; set tokenizer.pad_token = ... and build LoadedModel yourself"
            )
        tokenizer.pad_token = tokenizer.eos_token
    limits = [
        v for v in (
            _sentence_max_length(path) if path is not None else None,
            _config_value(config, _MAX_POS_ATTRS),
            tokenizer.model_max_length if tokenizer.model_max_length < 10**9 else None,
        ) if v
    ]
    return TextPreprocess(tokenizer, max_length=min(limits) if limits else None)


@contextlib.contextmanager
def _quiet(transformers: Any) -> Iterator[None]:
    """Silence transformers' weight-loading progress bar (library code prints nothing)."""
    tf_logging = transformers.utils.logging
    was_on = tf_logging.is_progress_bar_enabled()
    tf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            tf_logging.enable_progress_bar()


def load_hf(spec: str, *, pretrained: bool = True, name: str | None = None) -> LoadedModel:
    """Load a ``transformers`` model (``AutoModel``, no task head) with its tokenizer or image processor.

    Parameters
    ----------
    spec : str
        A local directory saved with ``save_pretrained`` or a model id in the HF cache (``"gpt2"``,
        ``"google/vit-base-patch16-224"``). With ``HF_HUB_OFFLINE=1`` nothing is downloaded.
    pretrained : bool
        ``False`` builds the same architecture from its config with random weights.
    name : str, optional
        Name recorded in the result (default ``spec``).

    Returns
    -------
    LoadedModel
        Text models preprocess ``list[str]`` with the tokenizer (padding with the eos token when the tokenizer
        has no pad token); vision models preprocess uint8 images with the saved image processor, else with
        :class:`ImagePreprocess` at the configured ``image_size`` and mean = std = 0.5 (the ViT convention).

    Raises
    ------
    OSError
        No config could be read: not a saved directory, or an id neither in the cache nor downloadable (offline).
        The error is a :class:`~neurobridge.models.ModelSpecError` naming the spec and the fix.

    Examples
    --------
    >>> lm = load_hf("path/to/saved_gpt2")  # doctest: +SKIP
    >>> lm.preprocess(["a cat"])["input_ids"].shape  # doctest: +SKIP
    torch.Size([1, 2])
    """
    transformers = _transformers()
    local = Path(spec).expanduser()
    path = local if local.is_dir() else None
    source = str(path) if path is not None else spec
    try:
        config = transformers.AutoConfig.from_pretrained(source)
    except (OSError, ValueError) as err:
        raise _not_loadable(spec, path, err) from err
    if pretrained:
        with _quiet(transformers):
            module = transformers.AutoModel.from_pretrained(source)
    else:
        module = transformers.AutoModel.from_config(config)
    module.eval()

    tokenizer = None
    if _is_vision(config):
        modality = "vision"
        try:
            processor = transformers.AutoImageProcessor.from_pretrained(source)
            preprocess: Any = HFImagePreprocess(processor)
        except (OSError, ValueError):
            size = config.image_size if isinstance(config.image_size, int) else int(config.image_size[0])
            logger.info("no image processor saved for %s; using resize to %d and mean = std = 0.5", spec, size)
            preprocess = PixelValues(ImagePreprocess(size=size, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)))
    else:
        if _has_tokenizer_files(source, path):
            try:
                tokenizer = transformers.AutoTokenizer.from_pretrained(source)
            except (OSError, ValueError, TypeError) as err:
                logger.warning("cannot load the tokenizer of %s (%s)", spec, err)
        if tokenizer is None:
            logger.warning("no tokenizer for %s: preprocess is None, pass model inputs yourself", spec)
        if tokenizer is not None:
            modality = "text"
            preprocess = _text_preprocess(tokenizer, config, path)
        else:
            modality = "other"
            preprocess = None
    return LoadedModel(
        name=name or spec,
        module=module,
        preprocess=preprocess,
        modality=modality,
        tokenizer=tokenizer,
        default_layers=hf_default_layers(module, config),
    )


def _offline() -> bool:
    try:
        return bool(optional_import("huggingface_hub").constants.HF_HUB_OFFLINE)
    except Exception:  # noqa: BLE001 (no or an unusual huggingface_hub: read the variable ourselves)
        import os

        return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _not_loadable(spec: str, path: Path | None, err: BaseException) -> OSError:
    """The one-line error for a model whose config cannot be read: where we looked and how to fix it."""
    from ._registry import _one_line, _SpecOSError

    detail = _one_line(err)
    if path is not None:
        reason = (f"the directory {path} has no valid config.json ({detail[:200]}); pass a directory saved with "
                  "model.save_pretrained(dir)")
    elif _offline():
        reason = ("not a local directory and not in the Hugging Face cache, and downloads are off "
                  f"(HF_HUB_OFFLINE=1); download it once while online with `hf download {spec}`, or pass a "
                  "directory saved with model.save_pretrained(dir)")
    else:
        reason = (f"not a local directory or a model on the Hugging Face Hub that could be fetched ({detail[:200]}); "
                  f"check the id (huggingface.co/{spec}), or pass a directory saved with model.save_pretrained(dir)")
    return _SpecOSError(spec, f"cannot load it as a Hugging Face model: {reason}")


def in_hf_cache(repo_id: str) -> bool:
    """Whether ``repo_id`` has a ``config.json`` in the local Hugging Face cache (no network)."""
    try:
        hub = optional_import("huggingface_hub")
        found = hub.try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # noqa: BLE001 (malformed ids raise various validation errors)
        return False
    return isinstance(found, str)
