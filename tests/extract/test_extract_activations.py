"""nb.extract.activations on a custom module, small random GPT-2 / ViT, MiniLM and EfficientNet-Lite0."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr
from _extract_helpers import ConvTokenNet, WideMLP, minilm_dir, tiny_gpt2, tiny_vit

import neurobridge as nb
from neurobridge.core import SchemaError

WORDS = ["cat", "dog", "unbelievable", "a longer sentence about the brain", "hi", "the", "representational",
         "tokenization matters"]


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, size=(7, 6, 5, 3), dtype=np.uint8)
    return xr.DataArray(data, dims=("stimulus", "height", "width", "color"),
                        coords={"stimulus": [f"img{i}" for i in range(7)]})


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(minilm_dir())


def _to_input(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(images)).permute(0, 3, 1, 2).float() / 255.0


def test_custom_module_all_poolings_match_manual_forward(images):
    net = ConvTokenNet().eval()
    x = _to_input(images.values)
    with torch.no_grad():
        conv = net.conv(x).double().numpy()  # (B, C, H, W)
        tok = net.proj(torch.relu(net.conv(x)).flatten(2).transpose(1, 2)).double().numpy()  # (B, HW, U)
        head = net(x).double().numpy()
    tree = nb.extract.activations(net, images, ["conv", "proj", "head"], batch_size=3, progress=False)
    assert tree.attrs["layers"] == ["conv", "proj", "head"]
    assert tree.attrs["pooling"] == "mean" and tree.attrs["model"] == "ConvTokenNet"
    np.testing.assert_allclose(tree["conv"]["activations"].values, conv.mean((2, 3)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(tree["proj"]["activations"].values, tok.mean(1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(tree["head"]["activations"].values, head, rtol=1e-5, atol=1e-6)
    acts = tree["proj"]["activations"]
    assert acts.dims == ("stimulus", "unit") and acts.attrs["layer"] == "proj"
    assert acts["stimulus"].values.tolist() == images["stimulus"].values.tolist()
    nb.core.validate(acts, "activations")

    for pooling, want in [("max", tok.max(1)), ("last", tok[:, -1]), ("cls", tok[:, 0])]:
        t = nb.extract.activations(net, images, "proj", pooling=pooling, batch_size=4, progress=False)
        np.testing.assert_allclose(t["proj"]["activations"].values, want, rtol=1e-5, atol=1e-6)
    t = nb.extract.activations(net, images, ["conv", "proj"], pooling="none", batch_size=4, progress=False)
    assert t["conv"]["activations"].dims == ("stimulus", "space", "unit")
    np.testing.assert_allclose(t["conv"]["activations"].values, conv.reshape(7, 4, -1).transpose(0, 2, 1),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(t["proj"]["activations"].values, tok, rtol=1e-5, atol=1e-6)
    t = nb.extract.activations(net, images, "conv", pooling="max", progress=False)
    np.testing.assert_allclose(t["conv"]["activations"].values, conv.max((2, 3)), rtol=1e-5, atol=1e-6)


def test_stats_match_float64_closed_form_and_top_k_brute_force(images):
    net = ConvTokenNet().eval()
    x = _to_input(images.values)
    with torch.no_grad():
        tok = net.proj(torch.relu(net.conv(x)).flatten(2).transpose(1, 2)).double().numpy()
    tree = nb.extract.activations(net, images, "proj", batch_size=2, progress=False, top_k=5)
    st = tree["stats"]["proj"]
    flat = tok.reshape(-1, tok.shape[-1])
    np.testing.assert_array_equal(st["count"].values, flat.shape[0])
    np.testing.assert_allclose(st["mean"].values, flat.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(st["var"].values, flat.var(0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(st["absmax"].values, np.abs(flat).max(0), rtol=1e-6)
    np.testing.assert_allclose(st["frac_pos"].values, (flat > 0).mean(0))
    np.testing.assert_allclose(st["frac_zero"].values, (flat == 0).mean(0))
    per_pair = np.abs(tok).max(1)  # (stimulus, unit): max over tokens
    order = np.argsort(-per_pair, axis=None)[:5]
    s_idx, u_idx = np.unravel_index(order, per_pair.shape)
    np.testing.assert_allclose(st["top_value"].values, per_pair[s_idx, u_idx], rtol=1e-6)
    np.testing.assert_array_equal(st["top_unit"].values, u_idx)
    np.testing.assert_array_equal(st["top_stimulus"].values, images["stimulus"].values[s_idx])
    np.testing.assert_array_equal(st["top_token"].values, np.abs(tok).argmax(1)[s_idx, u_idx])


class _Massive(torch.nn.Module):
    """Planted massive activation: unit 3 of token 2 of stimulus 5 is 1000x the rest, in layer 'b' only."""

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Identity()
        self.b = torch.nn.Identity()

    def forward(self, x):
        h = self.a(x)
        spike = torch.zeros_like(h)
        spike[:, 2, 3] = 1000.0 * (x[:, 0, 0] > 100).float()
        return self.b(h + spike)


def test_report_flags_planted_massive_activation():
    x = torch.randn(9, 4, 8, generator=torch.Generator().manual_seed(0))
    x[5, 0, 0] = 200.0  # marks stimulus 5 (also a large value in layer 'a': 200 vs typical ~1)
    x[[0, 1, 2, 3, 4, 6, 7, 8], 0, 0] = 0.5
    tree = nb.extract.activations(_Massive(), x, ["a", "b"], stimulus=[f"s{i}" for i in range(9)], batch_size=4,
                                  progress=False)
    rep = nb.extract.report(tree, threshold=500)
    assert rep.index.tolist() == ["a", "b"]
    assert not rep.loc["a", "massive"] and rep.loc["b", "massive"]
    assert rep.loc["b", "top_unit"] == 3 and rep.loc["b", "top_token"] == 2 and rep.loc["b", "top_stimulus"] == "s5"
    assert rep.loc["b", "top_value"] == pytest.approx(1000.0 + float(x[5, 2, 3]), rel=1e-6)
    assert rep.loc["b", "n_massive_units"] == 1
    with pytest.raises(ValueError, match="stats=True"):
        nb.extract.report(nb.extract.activations(_Massive(), x, "a", stats=False, progress=False))


def test_gpt2_masked_pooling_is_padding_invariant(tokenizer):
    gpt = tiny_gpt2(tokenizer.vocab_size)
    kw = dict(layers="h.*", tokenizer=tokenizer, progress=False)
    singles = {}
    for pooling in ("mean", "last"):
        padded = nb.extract.activations(gpt, WORDS, pooling=pooling, batch_size=4, **kw)
        single = singles[pooling] = nb.extract.activations(gpt, WORDS, pooling=pooling, batch_size=1, **kw)
        assert padded.attrs["layers"] == ["h.0", "h.1"]
        for layer in ("h.0", "h.1"):
            np.testing.assert_allclose(padded[layer]["activations"].values, single[layer]["activations"].values,
                                       rtol=1e-4, atol=1e-5, err_msg=pooling)
    # last = hidden state at the last real token, from a manual forward on one unpadded stimulus
    enc = tokenizer([WORDS[3]], return_tensors="pt")
    with torch.no_grad():
        hs = gpt(**enc, output_hidden_states=True).hidden_states
    np.testing.assert_allclose(singles["last"]["h.0"]["activations"].sel(stimulus=WORDS[3]).values,
                               hs[1][0, -1].numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(singles["mean"]["h.0"]["activations"].sel(stimulus=WORDS[3]).values,
                               hs[1][0].mean(0).numpy(), rtol=1e-4, atol=1e-5)


def test_pooling_none_keeps_tokens_with_mask(tokenizer):
    gpt = tiny_gpt2(tokenizer.vocab_size)
    tree = nb.extract.activations(gpt, WORDS, "h.1", tokenizer=tokenizer, pooling=None, batch_size=3,
                                  progress=False)
    acts, mask = tree["h.1"]["activations"], tree["h.1"]["token_mask"]
    assert acts.dims == ("stimulus", "token", "unit")
    n_tok = [len(tokenizer(w)["input_ids"]) for w in WORDS]
    assert mask.sum("token").values.tolist() == n_tok
    assert acts.sizes["token"] == max(n_tok)
    mean = nb.extract.activations(gpt, WORDS, "h.1", tokenizer=tokenizer, batch_size=3, progress=False)
    masked_mean = (acts * mask).sum("token") / mask.sum("token")
    np.testing.assert_allclose(masked_mean.values, mean["h.1"]["activations"].values, rtol=1e-5, atol=1e-6)


def test_vit_cls_pooling_matches_hidden_states():
    vit = tiny_vit()
    rng = np.random.default_rng(1)
    imgs = rng.integers(0, 256, size=(5, 32, 32, 3), dtype=np.uint8)

    def preprocess(batch):
        return {"pixel_values": _to_input(batch)}

    tree = nb.extract.activations(vit, imgs, "layers.*", pooling="cls", preprocess=preprocess, batch_size=2,
                                  stimulus=list("abcde"), progress=False)
    with torch.no_grad():
        hs = vit(pixel_values=_to_input(imgs), output_hidden_states=True).hidden_states
    for i in range(2):
        np.testing.assert_allclose(tree[f"layers.{i}"]["activations"].values, hs[i + 1][:, 0].numpy(),
                                   rtol=1e-4, atol=1e-5)


def test_minilm_real_weights_reproduce_sentence_transformers():
    from sentence_transformers import SentenceTransformer

    model = nb.models.load("minilm")
    tree = nb.extract.activations(model, WORDS, batch_size=3, progress=False)
    assert tree.attrs["layers"][0] == "embeddings" and tree.attrs["layers"][-1] == "encoder.layer.5"
    last = tree["encoder.layer.5"]["activations"].values
    st = SentenceTransformer(minilm_dir(), device="cpu")
    emb = st.encode(WORDS, convert_to_numpy=True)
    np.testing.assert_allclose(last / np.linalg.norm(last, axis=1, keepdims=True), emb, atol=2e-5)
    # the sentence-transformers adapter: the Normalize module's output is the embedding itself
    tree2 = nb.extract.activations(st, WORDS, "2", batch_size=3, progress=False)
    np.testing.assert_allclose(tree2["2"]["activations"].values, emb, atol=1e-6)
    tree3 = nb.extract.activations(st, WORDS, "0.model.encoder.layer.5", batch_size=3, progress=False)
    np.testing.assert_allclose(tree3["0.model.encoder.layer.5"]["activations"].values, last, atol=1e-5)


def test_word_pooling_averages_sub_word_tokens(tokenizer):
    model = nb.models.load("minilm")
    sentences = ["unbelievable tokenization", "the cat sat", "hyperparameters"]
    tree = nb.extract.activations(model, sentences, "encoder.layer.2", pooling="word", batch_size=2,
                                  progress=False)
    acts, mask = tree["encoder.layer.2"]["activations"], tree["encoder.layer.2"]["token_mask"]
    assert acts.dims == ("stimulus", "token", "unit")
    assert mask.sum("token").values.tolist() == [2, 3, 1]
    for i, s in enumerate(sentences):
        enc = tokenizer([s], return_tensors="pt")
        with torch.no_grad():
            hs = model.module(**enc, output_hidden_states=True).hidden_states[3][0].numpy()
        wids = enc.word_ids(0)
        for w in range(int(mask[i].sum())):
            want = hs[[j for j, v in enumerate(wids) if v == w]].mean(0)
            np.testing.assert_allclose(acts.values[i, w], want, rtol=1e-4, atol=1e-5)


def test_word_pooling_on_texts_longer_than_the_model_limit():
    model = nb.models.load("minilm")
    long_text = " ".join(["word"] * 400)  # 400 words: MiniLM's preprocess truncates at 256 tokens
    tree = nb.extract.activations(model, [long_text, "short text"], "encoder.layer.0", pooling="word",
                                  progress=False)
    mask = tree["encoder.layer.0"]["token_mask"]
    # 256 tokens minus [CLS] and [SEP], one token per word: the kept words are exactly those the model saw
    assert mask.sum("token").values.tolist() == [254, 2]


def test_efficientnet_blocks_real_weights():
    model = nb.models.load("efficientnet_lite0")
    from skimage import data

    imgs = np.stack([data.chelsea()[:300, :300], data.astronaut()[:300, :300], data.coffee()[:300, :300]])
    tree = nb.extract.activations(model, imgs, ["blocks.0", "blocks.15", "head"], stimulus=["cat", "astro", "coffee"],
                                  batch_size=2, progress=False)
    pre = model.preprocess(imgs)
    with torch.no_grad():
        feats = {}
        hooks = [model.module.get_submodule(n).register_forward_hook(
            lambda m, i, o, n=n: feats.__setitem__(n, o)) for n in ("blocks.0", "blocks.15", "head")]
        model.module(pre)
        for h in hooks:
            h.remove()
    for name, out in feats.items():
        want = out.mean((2, 3)) if out.ndim == 4 else out
        np.testing.assert_allclose(tree[name]["activations"].values, want.numpy(), rtol=1e-4, atol=1e-4)
    assert not any(m._forward_hooks for m in model.module.modules())
    shapes = nb.extract.list_layers(model).set_index("layer")["shape"]  # default sample: one grey image
    assert shapes["blocks.15"] == (1, 320, 7, 7) and shapes["head"][:2] == (1, 1280)


def test_hooks_removed_and_state_restored_on_exception():
    net = WideMLP(width=16)
    net.train()
    calls = []

    def bad_preprocess(batch):
        calls.append(len(batch))
        if len(calls) == 2:
            raise RuntimeError("boom in preprocess")
        return torch.as_tensor(batch)

    with pytest.raises(RuntimeError, match="boom"):
        nb.extract.activations(net, np.zeros((10, 8), np.float32), "layers.*", preprocess=bad_preprocess,
                               batch_size=4, progress=False)
    assert all(not m._forward_hooks for m in net.modules())
    assert net.training and all(m.training for m in net.modules())

    class Exploding(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Linear(2, 2)
            self.b = torch.nn.Linear(2, 2)

        def forward(self, x):
            self.a(x)
            raise ValueError("model exploded")

    ex = Exploding()
    with pytest.raises(ValueError, match="exploded"):
        nb.extract.activations(ex, torch.zeros(3, 2), ["a", "b"], progress=False)
    assert not ex.a._forward_hooks and not ex.b._forward_hooks


def test_outputs_are_cpu_numpy_and_no_grad_kept():
    """The forward pass records no autograd graph although the parameters require grad (seen from a hook)."""
    net = WideMLP(width=8)
    assert all(p.requires_grad for p in net.parameters())
    seen = []

    def probe(_module, _inputs, output):
        seen.append({"inference_mode": torch.is_inference_mode_enabled(), "grad_enabled": torch.is_grad_enabled(),
                     "requires_grad": output.requires_grad, "grad_fn": output.grad_fn})

    handle = net.layers[0].register_forward_hook(probe)
    try:
        tree = nb.extract.activations(net, torch.randn(5, 8), "layers.0", batch_size=2, progress=False)
    finally:
        handle.remove()
    assert len(seen) == 3  # one forward per batch
    for s in seen:
        assert not s["grad_enabled"], s  # inference_mode (what the code uses) or no_grad: no graph either way
        assert not s["requires_grad"] and s["grad_fn"] is None, s
    assert torch.is_grad_enabled() and not torch.is_inference_mode_enabled()  # restored after the call
    assert isinstance(tree["layers.0"]["activations"].data, np.ndarray)
    assert all(p.grad is None for p in net.parameters())


def test_list_layers_shapes_and_defaults(tokenizer):
    df = nb.extract.list_layers(ConvTokenNet(), torch.zeros(2, 3, 5, 5))
    assert df["layer"].tolist() == ["conv", "proj", "head"]
    assert df.set_index("layer")["shape"].to_dict() == {"conv": (2, 4, 5, 5), "proj": (2, 25, 6), "head": (2, 2)}
    model = nb.models.load("minilm")
    df = nb.extract.list_layers(model).set_index("layer")
    assert df.loc["encoder.layer.3", "default"] and not df.loc["encoder.layer.3.attention", "default"]
    assert df.loc["encoder.layer.3", "shape"][-1] == 384
    assert not any(m._forward_hooks for m in model.module.modules())


def test_glob_star_stays_within_one_level():
    model = nb.models.load("minilm")
    tree = nb.extract.activations(model, ["cat"], "encoder.layer.[0-1]", progress=False, stats=False)
    assert tree.attrs["layers"] == ["encoder.layer.0", "encoder.layer.1"]
    tree = nb.extract.activations(model, ["cat"], "encoder.layer.1.**.dense", progress=False, stats=False)
    assert tree.attrs["layers"] == ["encoder.layer.1.attention.output.dense", "encoder.layer.1.intermediate.dense",
                                    "encoder.layer.1.output.dense"]
    assert "stats" not in tree.children


def test_int8_and_projection_compression():
    net = WideMLP(width=64)
    x = torch.randn(40, 8, generator=torch.Generator().manual_seed(0))
    full = nb.extract.activations(net, x, "layers.1", batch_size=16, progress=False)
    q = nb.extract.activations(net, x, "layers.1", batch_size=16, progress=False, compress="int8")
    a, b = full["layers.1"]["activations"].values, q["layers.1"]["activations"].values
    err = np.sqrt(((a - b) ** 2).sum() / (a**2).sum())
    assert q["layers.1"].attrs["int8_rel_error"] == pytest.approx(err, rel=1e-4)
    assert 0 < err < 0.01
    for start in range(0, 40, 16):  # per-batch, per-unit scales: error at most half a step
        block = a[start:start + 16]
        step = np.abs(block).max(0) / 127
        assert np.all(np.abs(block - b[start:start + 16]) <= step / 2 + 1e-6)
    p = nb.extract.activations(net, x, "layers.1", batch_size=16, progress=False,
                               compress=nb.extract.Compress(project=512, seed=3))
    r = nb.extract._compress.projection_matrix(64, 512, seed=3, layer="layers.1").numpy()
    np.testing.assert_allclose(p["layers.1"]["activations"].values, a @ r, rtol=1e-4, atol=1e-5)
    from scipy.spatial.distance import pdist

    ratio = pdist(p["layers.1"]["activations"].values) / pdist(a)
    assert abs(np.median(ratio) - 1) < 0.1


def test_stimulus_ids_from_dataarray_and_sequences():
    net = WideMLP(width=4)
    x = np.random.default_rng(0).normal(size=(3, 8)).astype(np.float32)
    da = xr.DataArray(x, dims=("stimulus", "feature"), coords={"stimulus": ["x", "y", "z"]})
    assert nb.extract.activations(net, da, "layers.0", progress=False)["layers.0"]["stimulus"].values.tolist() == [
        "x", "y", "z"]
    t = nb.extract.activations(net, list(x), "layers.0", stimulus=[10, 20, 30], progress=False)
    assert t["layers.0"]["stimulus"].values.tolist() == [10, 20, 30]


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda net, x: nb.extract.activations(net, x, "layers.0", stimulus=[1, 1, 2, 3, 4]), SchemaError,
         "duplicated stimulus ids"),
        (lambda net, x: nb.extract.activations(net, x, "layers.0", stimulus=[1, 2]), SchemaError, "one id per"),
        (lambda net, x: nb.extract.activations(net, x, "layer.0"), ValueError, "Close names"),
        (lambda net, x: nb.extract.activations(net, x, "layers.0", pooling="median"), ValueError,
         "pooling must be one of"),
        (lambda net, x: nb.extract.activations(net, x, "layers.0", batch_size=0), ValueError, "batch_size"),
        (lambda net, x: nb.extract.activations(net, xr.DataArray(x.numpy(), dims=("image", "f")), "layers.0"),
         SchemaError, "no 'stimulus' dim"),
        (lambda net, x: nb.extract.activations(net, ["a", "b"], "layers.0"), TypeError, "tokenizer"),
        (lambda net, x: nb.extract.activations(net, x * float("nan"), "layers.0"), ValueError, "NaN"),
        (lambda net, x: nb.extract.activations("resnet", x), TypeError, "LoadedModel"),
        (lambda net, x: nb.extract.activations(net, x, "layers.0", compress="int4"), ValueError, "compress"),
        (lambda net, x: nb.extract.activations(ConvTokenNet(), torch.zeros(2, 3, 4, 4), "conv", pooling="cls"),
         ValueError, "needs token outputs"),
    ],
)
def test_bad_input_errors(call, exc, match):
    net = WideMLP(width=4)
    with pytest.raises(exc, match=match):
        call(net, torch.randn(5, 8))


def test_shared_module_called_twice_gives_its_first_call():
    class Twice(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(3, 3)

        def forward(self, x):
            return self.lin(self.lin(x))

    net = Twice()
    x = torch.randn(2, 3)
    tree = nb.extract.activations(net, x, "lin", progress=False)
    with torch.no_grad():
        np.testing.assert_allclose(tree["lin"]["activations"].values, net.lin(x).numpy(), rtol=1e-6)
    assert not net.lin._forward_hooks


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_extraction_matches_cpu_and_model_stays_on_cpu():
    net = ConvTokenNet().eval()
    x = torch.rand(6, 3, 5, 5)
    cpu = nb.extract.activations(net, x, ["conv", "proj"], progress=False, batch_size=4)
    gpu = nb.extract.activations(net, x, ["conv", "proj"], progress=False, batch_size=4, device="cuda")
    assert next(net.parameters()).device.type == "cpu"
    assert nb.kernels.info("cuda")["pool_stats"].last_used == "triton"
    for layer in ("conv", "proj"):
        np.testing.assert_allclose(gpu[layer]["activations"].values, cpu[layer]["activations"].values,
                                   rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(gpu["stats"][layer]["var"].values, cpu["stats"][layer]["var"].values,
                                   rtol=1e-3, atol=1e-6)


def test_nan_error_names_the_layer_and_the_stimuli():
    net = WideMLP(width=4)
    x = torch.randn(6, 8)
    x[3, 0] = float("nan")
    with pytest.raises(SchemaError, match=r"layer 'layers.0' \(per-unit mean over stimuli 2..3 \(ids 'b'..'c'\)\) "
                                          r"contains 4 non-finite value\(s\).*first at unit=0.*model's dtype"):
        nb.extract.activations(net, x, "layers.0", stimulus=list("zabcde"), batch_size=2, progress=False)


def test_progress_default_shows_no_bar_off_a_terminal(capsys):
    """progress=None (the default) follows nb.core.progress_bar: no bar when stderr is not a terminal (pytest's
    capture is not one), a bar when asked for."""
    net = WideMLP(width=4)
    x = torch.randn(6, 8)
    nb.extract.activations(net, x, "layers.0", batch_size=2)
    assert "extract WideMLP" not in capsys.readouterr().err
    nb.extract.activations(net, x, "layers.0", batch_size=2, progress=True)
    assert "extract WideMLP" in capsys.readouterr().err
    with nb.config_context(progress=True):
        nb.extract.activations(net, x, "layers.0", batch_size=2)
    assert "extract WideMLP" in capsys.readouterr().err
