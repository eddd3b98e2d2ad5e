"""Hugging Face models from local directories: small random GPT-2 (text) and ViT (vision)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data

import neurobridge as nb

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

WORDS = ["<unk>", "<eos>", "the", "cat", "sat", "on", "mat", "a", "dog", "ran"]


def _word_tokenizer():
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    # an eos token but no pad token, like GPT-2's
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", eos_token="<eos>")


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory):
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(n_layer=2, n_embd=32, n_head=2, n_positions=16, vocab_size=len(WORDS))
    model = transformers.GPT2LMHeadModel(cfg).eval()
    path = tmp_path_factory.mktemp("gpt2")
    model.save_pretrained(path)
    _word_tokenizer().save_pretrained(path)
    return path, model


@pytest.fixture(scope="module")
def vit_dir(tmp_path_factory):
    torch.manual_seed(0)
    cfg = transformers.ViTConfig(
        image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64
    )
    model = transformers.ViTModel(cfg).eval()
    path = tmp_path_factory.mktemp("vit")
    model.save_pretrained(path)
    return path, model


def test_gpt2_from_directory(gpt2_dir):
    path, ref = gpt2_dir
    lm = nb.models.load(str(path))
    assert lm.name == str(path) and lm.modality == "text"
    assert lm.default_layers == ("h.*",)
    assert lm.tokenizer.pad_token == "<eos>"  # set from eos when missing
    assert not lm.module.training
    # the saved weights came back (AutoModel drops the LM head)
    for k, v in lm.module.state_dict().items():
        torch.testing.assert_close(v, ref.transformer.state_dict()[k], rtol=0, atol=0)
    batch = lm.preprocess(["the cat sat on the mat", "a dog ran"])
    assert batch["input_ids"].tolist()[1] == [7, 8, 9, 1, 1, 1]  # right-padded with eos
    assert batch["attention_mask"].tolist()[1] == [1, 1, 1, 0, 0, 0]
    with torch.inference_mode():
        out = lm.module(**batch).last_hidden_state
        ref_out = ref.transformer(**batch).last_hidden_state
    torch.testing.assert_close(out, ref_out)
    assert lm.preprocess(["the " * 50])["input_ids"].shape[1] == 16  # truncated at n_positions


def test_gpt2_random_init_and_hf_prefix(gpt2_dir):
    path, ref = gpt2_dir
    lm = nb.models.load(f"hf:{path}", pretrained=False)
    assert lm.default_layers == ("h.*",)
    assert not torch.allclose(lm.module.wte.weight, ref.transformer.wte.weight)


def test_vit_default_preprocess_matches_vit_processor(vit_dir):
    path, ref = vit_dir
    lm = nb.models.load(path)  # a Path works too
    assert lm.modality == "vision" and lm.tokenizer is None
    # transformers 5 names ViT's stack 'layers' (4.x: 'encoder.layer')
    assert lm.default_layers[0] == "embeddings" and lm.default_layers[1] in ("layers.*", "encoder.layer.*")
    stack = lm.module.get_submodule(lm.default_layers[1][:-2])
    assert isinstance(stack, torch.nn.ModuleList) and len(stack) == 3
    imgs = [data.chelsea(), data.coffee()]
    batch = lm.preprocess(imgs)
    assert set(batch) == {"pixel_values"} and batch["pixel_values"].shape == (2, 3, 32, 32)
    proc = transformers.ViTImageProcessor(size={"height": 32, "width": 32})
    expected = proc(images=imgs, return_tensors="pt")["pixel_values"]
    # same resize (bilinear, antialiased), scale and mean = std = 0.5; PIL rounds to uint8 on the way
    assert (batch["pixel_values"] - expected).abs().max() < 0.03
    with torch.inference_mode():
        out = lm.module(**batch).last_hidden_state
        ref_out = ref(**batch).last_hidden_state
    assert out.shape == (2, 17, 32)
    torch.testing.assert_close(out, ref_out)


def test_vit_saved_image_processor_is_used(vit_dir, tmp_path):
    path, ref = vit_dir
    ref.save_pretrained(tmp_path)
    proc = transformers.ViTImageProcessor(size={"height": 32, "width": 32}, image_mean=[0.2] * 3, image_std=[0.3] * 3)
    proc.save_pretrained(tmp_path)
    lm = nb.models.load(str(tmp_path))
    img = np.stack([data.astronaut()[::8, ::8]])
    torch.testing.assert_close(lm.preprocess(img)["pixel_values"], proc(images=list(img), return_tensors="pt")["pixel_values"])


def test_directory_without_tokenizer_is_other(tmp_path):
    cfg = transformers.BertConfig(
        vocab_size=20, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32
    )
    transformers.BertModel(cfg).save_pretrained(tmp_path)
    lm = nb.models.load(str(tmp_path))
    assert lm.preprocess is None and lm.modality == "other"
    assert lm.default_layers == ("embeddings", "encoder.layer.*")


def test_uncached_hf_id_error():
    with pytest.raises(OSError, match="not in the Hugging Face cache"):
        nb.models.load("neurobridge-test/no-such-model")


def test_directory_without_config_error(tmp_path):
    with pytest.raises(OSError, match="no valid config.json"):
        nb.models.load(str(tmp_path))
