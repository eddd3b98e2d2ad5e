"""nb.models registry and spec resolution: names, files, zoo packages and errors."""

from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path

import pytest
import torch

import neurobridge as nb
from neurobridge.models import LoadedModel


@pytest.fixture
def clean_registry():
    before = dict(nb.models.MODELS)
    yield
    nb.models.MODELS.clear()
    nb.models.MODELS.update(before)


def test_list_has_builtins():
    names = nb.models.list()
    assert {"efficientnet_lite0", "minilm"} <= set(names)
    assert names == sorted(names)


def test_register_and_load(clean_registry):
    calls = []

    def loader(pretrained=True):
        calls.append(pretrained)
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU())

    nb.models.register("tiny", loader)
    assert "tiny" in nb.models.list()
    lm = nb.models.load("tiny", pretrained=False, device="cpu")
    assert calls == [False]
    assert isinstance(lm, LoadedModel) and lm.name == "tiny" and lm.modality == "other" and lm.preprocess is None
    assert not lm.module.training
    with pytest.raises(ValueError, match="already registered"):
        nb.models.register("tiny", loader)
    nb.models.register("tiny", lambda: LoadedModel("tiny", torch.nn.Identity(), None, "other"), overwrite=True)
    assert isinstance(nb.models.load("tiny").module, torch.nn.Identity)


@pytest.mark.parametrize("name", ["", "a/b", "file.py:fn", 3])
def test_register_bad_names(name, clean_registry):
    with pytest.raises(ValueError, match="registry names"):
        nb.models.register(name, lambda: torch.nn.Identity())


def test_register_not_callable(clean_registry):
    with pytest.raises(TypeError, match="callable"):
        nb.models.register("x_not_callable", "resnet")
    with pytest.raises(TypeError, match="register a function instead"):
        nb.models.register("x_module", torch.nn.Identity())
    assert "x_module" not in nb.models.list()


def test_loader_returning_junk(clean_registry):
    nb.models.register("junk", lambda: 42)
    with pytest.raises(TypeError, match="expected a torch.nn.Module or a LoadedModel"):
        nb.models.load("junk")


@pytest.mark.parametrize(
    "spec,suggestion",
    [("efficientnet_lite", "efficientnet_lite0"), ("EfficientNet-Lite0", "efficientnet_lite0"), ("MiniLM-L6", "minilm")],
)
def test_unknown_name_suggests_close_matches(spec, suggestion):
    with pytest.raises(ValueError, match=f"Did you mean '{suggestion}'"):
        nb.models.load(spec)


def test_unknown_name_without_match_lists_spec_forms():
    with pytest.raises(ValueError, match="path/to/file.py:build_fn") as info:
        nb.models.load("zzqqxx")
    assert "Did you mean" not in str(info.value)


@pytest.mark.parametrize("spec", ["", "   ", None, 3])
def test_bad_spec_type(spec):
    with pytest.raises(TypeError, match="non-empty string"):
        nb.models.load(spec)


@pytest.mark.parametrize("package", ["torchvision", "timm"])
def test_zoo_without_package_gives_install_hint(package):
    if importlib.util.find_spec(package) is not None:
        pytest.skip(f"{package} is installed")
    with pytest.raises(ImportError, match=f"pip install {package}"):
        nb.models.load(f"{package}:resnet18")


def _write(path: Path, body: str) -> Path:
    path.write_text(textwrap.dedent(body))
    return path


def test_file_spec_module(tmp_path):
    f = _write(tmp_path / "my_net.py", """
        import torch

        def build():
            torch.manual_seed(1)
            return torch.nn.Sequential(torch.nn.Linear(5, 2))

        def build_pretrained(pretrained=True):
            net = build()
            if not pretrained:
                torch.nn.init.zeros_(net[0].weight)
            return net
    """)
    lm = nb.models.load(f"{f}:build")
    assert lm.name == f"{f}:build" and lm.modality == "other" and not lm.module.training
    torch.manual_seed(1)
    torch.testing.assert_close(lm.module[0].weight, torch.nn.Linear(5, 2).weight)
    rand = nb.models.load(f"{f}:build_pretrained", pretrained=False)
    assert torch.count_nonzero(rand.module[0].weight) == 0
    assert torch.count_nonzero(nb.models.load(f"{f}:build_pretrained").module[0].weight) > 0


def test_file_spec_loaded_model(tmp_path):
    f = _write(tmp_path / "with_prep.py", """
        import torch
        from neurobridge.models import LoadedModel

        def prep(xs):
            return torch.as_tensor(xs, dtype=torch.float32)

        def build():
            return LoadedModel("custom", torch.nn.Linear(2, 2), prep, "other", default_layers=("",))
    """)
    lm = nb.models.load(f"{f}:build")
    assert lm.name == "custom" and lm.preprocess([[1, 2]]).shape == (1, 2)


def test_file_spec_errors(tmp_path):
    f = _write(tmp_path / "nets.py", """
        import torch

        def build_model():
            return torch.nn.Identity()

        def not_a_model():
            return "nope"
    """)
    with pytest.raises(AttributeError, match="did you mean build_model"):
        nb.models.load(f"{f}:build_modl")
    with pytest.raises(TypeError, match="expected a torch.nn.Module"):
        nb.models.load(f"{f}:not_a_model")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        nb.models.load(f"{tmp_path / 'missing.py'}:build")
    with pytest.raises(ValueError, match="no function"):
        nb.models.load(str(f))
    with pytest.raises(ValueError, match="not a function name"):
        nb.models.load(f"{f}:1bad")


def test_missing_relative_directory():
    with pytest.raises(FileNotFoundError, match="does not exist"):
        nb.models.load("./no_such_model_dir")
