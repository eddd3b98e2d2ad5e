"""nb.models registry and spec resolution: names, files, zoo packages and errors."""

from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path

import numpy as np
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
    with pytest.raises(AttributeError, match="did you mean build_model") as info:
        nb.models.load(f"{f}:build_modl")
    assert isinstance(info.value, nb.models.ModelSpecError) and info.value.spec == f"{f}:build_modl"
    assert str(info.value).startswith(f"model spec '{f}:build_modl': nets.py has no function 'build_modl'")
    with pytest.raises(TypeError, match="expected a torch.nn.Module") as info:
        nb.models.load(f"{f}:not_a_model")
    assert isinstance(info.value, nb.models.ModelBuildError) and "not_a_model() returned str" in str(info.value)
    with pytest.raises(FileNotFoundError, match="does not exist") as info:
        nb.models.load(f"{tmp_path / 'missing.py'}:build")
    assert isinstance(info.value, nb.models.ModelSpecError)
    with pytest.raises(nb.models.ModelSpecError, match="no function"):
        nb.models.load(str(f))
    with pytest.raises(nb.models.ModelSpecError, match="not a function name"):
        nb.models.load(f"{f}:1bad")


def test_file_spec_failures_name_the_spec(tmp_path):
    f = _write(tmp_path / "lab_nets.py", """
        import torch

        def raises(pretrained=True):
            raise ValueError("checkpoint\\nis corrupt")

        def forgets_return():
            net = torch.nn.Identity()
    """)
    with pytest.raises(nb.models.ModelBuildError) as info:
        nb.models.load(f"{f}:raises")
    err = info.value
    assert err.spec == f"{f}:raises" and isinstance(err.__cause__, ValueError)  # the user's traceback is kept
    assert err.reason == f"raises() raised ValueError: checkpoint is corrupt; fix the function in {f}"
    with pytest.raises(TypeError, match=r"forgets_return\(\) returned None \(is a return statement missing\?\)"):
        nb.models.load(f"{f}:forgets_return")
    broken = _write(tmp_path / "broken.py", "import torch\nnet = torch.nn.Linear(2)\n")
    with pytest.raises(nb.models.ModelBuildError, match="importing broken.py raised TypeError") as info:
        nb.models.load(f"{broken}:build")
    assert isinstance(info.value.__cause__, TypeError)


def test_unusable_device_is_refused_before_building(tmp_path):
    from neurobridge.models._registry import _device_problem

    assert _device_problem(None) is None and _device_problem("cpu") is None
    assert _device_problem("gpu").startswith("not a torch device")
    if not torch.cuda.is_available():
        assert _device_problem("cuda") == (
            f"no CUDA device is available (torch {torch.__version__} is built without CUDA)"
            if torch.version.cuda is None else f"no CUDA device is available (torch {torch.__version__} found no GPU)")
        with pytest.raises(ValueError, match="device 'cuda': no CUDA device is available.*use device='cpu'"):
            nb.models.load("efficientnet_lite0", device="cuda")
    else:
        n = torch.cuda.device_count()
        assert _device_problem(f"cuda:{n}").startswith(f"there {'is' if n == 1 else 'are'} only {n} CUDA")


def test_missing_relative_directory():
    with pytest.raises(FileNotFoundError, match="does not exist"):
        nb.models.load("./no_such_model_dir")


def _fake_package(monkeypatch, name, **attrs):
    import importlib.machinery
    import sys
    import types

    mod = types.ModuleType(name)
    mod.__spec__ = importlib.machinery.ModuleSpec(name, None)
    for k, v in attrs.items():
        setattr(mod, k, v)
    monkeypatch.setitem(sys.modules, name, mod)
    return mod


def test_torchvision_glue_with_stand_in_package(monkeypatch):
    # torchvision is not installed here: a stand-in with its model-zoo API checks how load() drives it
    from types import SimpleNamespace

    transforms = SimpleNamespace(crop_size=[192], resize_size=[240], mean=[0.5, 0.4, 0.3], std=[0.2, 0.2, 0.2])
    weights = SimpleNamespace(transforms=lambda: transforms)
    built = []

    def get_model(name, weights=None):
        built.append((name, weights))
        return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Dropout(), torch.nn.Flatten())

    zoo = SimpleNamespace(
        list_models=lambda: ["resnet18", "resnet50"],
        get_model_weights=lambda name: SimpleNamespace(DEFAULT=weights),
        get_model=get_model,
    )
    _fake_package(monkeypatch, "torchvision", models=zoo)
    lm = nb.models.load("torchvision:resnet18")
    assert lm.name == "torchvision:resnet18" and lm.modality == "vision"
    assert built == [("resnet18", weights)]
    assert lm.default_layers == ("0", "2")  # top-level children, dropout left out
    prep = lm.preprocess
    assert (prep.size, prep.crop, prep.crop_fraction) == (192, True, 0.8)
    assert prep.mean == (0.5, 0.4, 0.3)
    assert prep([np.zeros((300, 400, 3), np.uint8)]).shape == (1, 3, 192, 192)
    lm = nb.models.load("resnet50", pretrained=False)  # bare zoo names resolve when torchvision is present
    assert built[-1] == ("resnet50", None) and lm.preprocess.size == 224
    with pytest.raises(ValueError, match="did you mean resnet18"):
        nb.models.load("torchvision:resnet19")


def test_timm_glue_with_stand_in_package(monkeypatch):
    from types import SimpleNamespace

    made = []

    def create_model(name, pretrained=True):
        made.append((name, pretrained))
        return torch.nn.Sequential(torch.nn.Conv2d(3, 2, 1))

    data = SimpleNamespace(
        resolve_data_config=lambda args, model: {"input_size": (3, 160, 160), "crop_pct": 0.9,
                                                 "mean": (0.1, 0.2, 0.3), "std": (0.5, 0.5, 0.5)}
    )
    _fake_package(monkeypatch, "timm", create_model=create_model, data=data, list_models=lambda: ["vit_tiny"])
    lm = nb.models.load("timm:vit_tiny", pretrained=False)
    assert made == [("vit_tiny", False)] and lm.name == "timm:vit_tiny"
    assert (lm.preprocess.size, lm.preprocess.crop_fraction, lm.preprocess.mean) == (160, 0.9, (0.1, 0.2, 0.3))
