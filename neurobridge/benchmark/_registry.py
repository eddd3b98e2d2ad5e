"""Benchmark definitions: dataset + metric + ceiling + layer-selection rule, and the registry of them."""

from __future__ import annotations

import contextvars
import difflib
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import xarray as xr

__all__ = [
    "Benchmark", "BenchmarkData", "register", "get", "available", "resolve", "from_toml", "unregister",
    "DEFAULT_BENCHMARKS",
]

logger = logging.getLogger("neurobridge")

METRICS = ("rsa", "encoding")
SPLITS = ("stimulus", "subject")
CEILINGS = ("auto", "subject", "none")
MODALITIES = ("vision", "text", "other")

DEFAULT_BENCHMARKS = ("kriegeskorte92-hit-rsa", "kriegeskorte92-mit-rsa")


class BenchmarkData(NamedTuple):
    """What a benchmark's loader returns."""

    stimuli: Any
    """Stimuli in the form the model's ``preprocess`` takes, with a ``stimulus`` dim (e.g. uint8 images
    ``(stimulus, height, width, color)`` or strings ``(stimulus,)``)."""
    target: xr.DataArray
    """Brain data: RDMs ``([subject,] [time,] stimulus, stimulus2)`` for RSA, or responses
    ``(trial|stimulus, voxel|channel [, time])`` (RSA computes their RDMs; encoding fits them)."""
    files: Mapping[str, str] = {}
    """Data files used, name -> sha256 (for the report's provenance)."""
    info: Mapping[str, Any] = {}
    """Extra facts shown in the report (e.g. ``{"true_layer": "blocks.4"}`` for simulated data)."""


@dataclass(frozen=True)
class Benchmark:
    """A benchmark: brain data, the metric that scores a layer against it, its ceiling and the selection rule.

    Examples
    --------
    >>> import numpy as np, xarray as xr, neurobridge as nb
    >>> rdm = nb.core.rdm(np.ones((5, 5)) - np.eye(5), stimulus=list("abcde"))
    >>> b = Benchmark("toy-rsa", data=lambda data_dir: BenchmarkData(list("abcde"), rdm))
    >>> b.metric, b.split
    ('rsa', 'stimulus')
    """

    name: str
    """Unique name, ``<dataset>-<target>-<metric>`` by convention."""
    data: Callable[[Path | None], BenchmarkData]
    """Loader: ``data(data_dir) -> BenchmarkData``; called once per run."""
    metric: str = "rsa"
    """``"rsa"`` (model RDM vs brain RDM) or ``"encoding"`` (cross-validated ridge from features to responses)."""
    dataset: str = ""
    """Name of the dataset the brain data come from (``neurobridge datasets info NAME``)."""
    description: str = ""
    """One line shown in listings and the report."""
    modality: str = "vision"
    """Stimulus modality; a model of another modality is refused with a clear error."""
    rdm_metric: str = "correlation"
    """Distance used for model RDMs (and brain RDMs computed from responses)."""
    compare: str = "spearman"
    """RDM comparison (``nb.rsa.compare`` method)."""
    ceiling: str = "auto"
    """``"subject"``: leave-one-subject-out noise ceiling (needs a ``subject`` dim); ``"auto"``: that when the
    target has several subjects, the simulator's ceiling for simulated data, else none; ``"none"``."""
    split: str = "stimulus"
    """What held-out layer selection splits: ``"stimulus"`` (random halves of the stimuli; the held-out score
    generalises to new stimuli and is 0 on average for an unrelated model) or ``"subject"`` (halves of subjects;
    generalises to new subjects for the same stimuli). Time-resolved data split stimuli too: time samples are not
    independent (see :mod:`neurobridge.benchmark._selection`), so ``"time"`` is refused. With fewer than 6
    stimuli no stimulus split is possible: the in-sample best layer is shown and the held-out score is NaN."""
    n_splits: int = 20
    """Number of (selection, test) splits averaged for the held-out score."""
    n_permutations: int = 199
    """RSA only: stimulus permutations of the brain data for ``heldout_p``, the p-value of the held-out score under
    "no layer relates to the brain" (the whole selection is redone on each permutation, so the test is exact for
    any number of them; the smallest p is ``1 / (n_permutations + 1)``). The cost grows with permutations x splits
    x stimuli^2 x subjects x time points; 0 skips the test."""
    feature_dim: str | None = None
    """Dim of brain features when the target holds responses (``voxel``, ``channel``); inferred when ``None``."""
    time_window: tuple[float, float] | None = None
    """For time-resolved targets: the window (s) averaged into a layer's summary score (default: all times >= 0)."""
    demo: bool = False
    """Marks a pipeline demonstration whose numbers are not a scientific result (shown in the report)."""
    citation: str = ""
    """Reference for the brain data."""
    options: Mapping[str, Any] = field(default_factory=dict)
    """Metric options, e.g. ``{"alphas": [...], "cv": 5}`` for encoding."""

    def __post_init__(self):
        if self.metric not in METRICS:
            raise ValueError(f"benchmark {self.name!r}: metric must be one of {METRICS}, got {self.metric!r}")
        if self.split == "time":
            raise ValueError(f"benchmark {self.name!r}: split='time' is no longer supported: samples of a smooth time "
                             "axis (alternate or blocked) share noise and the brain's stimulus geometry, so a layer "
                             "chosen on some time points is not held out from the others (on null M/EEG the "
                             "'held-out' score equalled the in-sample maximum). Use split='stimulus' (halves of the "
                             "stimuli, any number of time points) or split='subject'")
        if self.split not in SPLITS:
            raise ValueError(f"benchmark {self.name!r}: split must be one of {SPLITS}, got {self.split!r}")
        if self.ceiling not in CEILINGS:
            raise ValueError(f"benchmark {self.name!r}: ceiling must be one of {CEILINGS}, got {self.ceiling!r}")
        if self.modality not in MODALITIES:
            raise ValueError(f"benchmark {self.name!r}: modality must be one of {MODALITIES}, got {self.modality!r}")
        if not self.name or any(c.isspace() for c in self.name):
            raise ValueError(f"benchmark name must be a non-empty string without spaces, got {self.name!r}")
        if self.n_splits < 1:
            raise ValueError(f"benchmark {self.name!r}: n_splits must be >= 1, got {self.n_splits}")
        if self.n_permutations < 0:
            raise ValueError(f"benchmark {self.name!r}: n_permutations must be >= 0 (0: no p-value), got "
                             f"{self.n_permutations}")

    @property
    def selection_rule(self) -> str:
        """One sentence saying how the reported layer is chosen (quoted in the report)."""
        return self.describe_selection(self.n_splits)

    def describe_selection(self, n_splits: int) -> str:
        """The selection rule with the number of splits actually used.

        Examples
        --------
        >>> Benchmark("x", data=lambda d: None, split="subject").describe_selection(6)
        'best layer chosen on half of the subjects and scored on the other subjects; mean over 6 splits'
        """
        if self.metric == "encoding":
            return ("best layer chosen by inner cross-validation on the training stimuli of each outer fold and "
                    f"scored on that fold's held-out stimuli (nested cross-validation); mean over {n_splits} folds")
        if n_splits == 0:
            return ("no held-out selection (too few stimuli for halves of 3 or more): the layer shown is the in-sample "
                    "best, its score is optimistic, and no held-out score is reported")
        what = {"stimulus": "a random half of the stimuli", "subject": "half of the subjects"}[self.split]
        rest = {"stimulus": "the other half", "subject": "the other subjects"}[self.split]
        return f"best layer chosen on {what} and scored on {rest}; mean over {n_splits} split{'s' if n_splits > 1 else ''}"


_REGISTRY: dict[str, Benchmark] = {}
_LOADER_OPTIONS: contextvars.ContextVar[dict | None] = contextvars.ContextVar("neurobridge_loader_options",
                                                                           default=None)
"""Options of the current run passed to packaged dataset loaders (``download``, ``progress``)."""


def register(
    benchmark: Benchmark | str,
    brain: xr.DataArray | None = None,
    stimuli: Any = None,
    *,
    overwrite: bool = False,
    **options: Any,
) -> Benchmark:
    """Register a benchmark so ``run(..., benchmarks=[name])`` and ``neurobridge benchmark`` find it.

    Parameters
    ----------
    benchmark : Benchmark or str
        A ready :class:`Benchmark`, or the name of a new one built from ``brain`` and ``stimuli``.
    brain : xr.DataArray, optional
        With a name: the brain data (RDMs with dims ``([subject,] [time,] stimulus, stimulus2)``, or responses
        with dims ``(trial|stimulus, voxel|channel [, time])`` and a ``stimulus`` coordinate).
    stimuli : array-like or xr.DataArray, optional
        With a name: the stimuli, one per stimulus id of ``brain`` (an ``xr.DataArray`` with a ``stimulus``
        dim, or a sequence in the order of ``brain``'s ``stimulus`` coordinate).
    overwrite : bool
        Replace a registered benchmark of the same name (else that is an error).
    **options
        Other :class:`Benchmark` fields (``metric``, ``modality``, ``split``, ``ceiling``, ...).

    Returns
    -------
    Benchmark

    Examples
    --------
    >>> import numpy as np, neurobridge as nb
    >>> rng = np.random.default_rng(0)
    >>> brain = nb.core.rdm(rng.random((2, 6, 6)), dims=("subject",), stimulus=list("abcdef"))
    >>> b = nb.benchmark.register("lab-v4-rsa", brain, rng.random((6, 8, 8, 3)), modality="vision")
    >>> "lab-v4-rsa" in nb.benchmark.available()
    True
    >>> nb.benchmark.unregister("lab-v4-rsa")
    """
    if isinstance(benchmark, str):
        if brain is None or stimuli is None:
            raise ValueError(f"register({benchmark!r}, brain, stimuli): pass the brain data and the stimuli, "
                             "or a ready nb.benchmark.Benchmark")
        data = make_data(brain, stimuli)
        benchmark = Benchmark(benchmark, data=lambda data_dir, _d=data: _d, **options)
    elif options or brain is not None or stimuli is not None:
        raise ValueError("register(Benchmark(...)) takes no brain/stimuli/options; set them on the Benchmark")
    if benchmark.name in _REGISTRY and not overwrite:
        raise ValueError(f"a benchmark named {benchmark.name!r} is already registered; "
                         "pick another name or pass overwrite=True")
    _REGISTRY[benchmark.name] = benchmark
    return benchmark


def unregister(name: str) -> None:
    """Remove a registered benchmark (built-ins too, until the next import).

    Examples
    --------
    >>> unregister("no-such-benchmark")
    """
    _REGISTRY.pop(name, None)


def available() -> list[str]:
    """Names of the registered benchmarks.

    Examples
    --------
    >>> "kriegeskorte92-hit-rsa" in available()
    True
    """
    return sorted(_REGISTRY)


def _unknown(name: str) -> ValueError:
    names = available()
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(map(repr, close))}? " if close else ""
    return ValueError(f"unknown benchmark {name!r}; {hint}available: {', '.join(names)} "
                      "(or a dataset name, or a .toml benchmark file)")


def get(name: str) -> Benchmark:
    """The registered benchmark called ``name``.

    Raises
    ------
    ValueError
        Unknown name; the message suggests close matches.

    Examples
    --------
    >>> get("kriegeskorte92-mit-rsa").dataset
    'kriegeskorte92'
    """
    if name not in _REGISTRY:
        raise _unknown(name)
    return _REGISTRY[name]


def resolve(names: str | Benchmark | list | tuple | None) -> list[Benchmark]:
    """Turn names, dataset names, ``.toml`` paths or Benchmarks into a list of Benchmarks (duplicates dropped).

    A dataset name (``"kriegeskorte92"``) selects every registered benchmark on that dataset.

    Examples
    --------
    >>> [b.name for b in resolve("kriegeskorte92")]
    ['kriegeskorte92-hit-rsa', 'kriegeskorte92-mit-rsa']
    """
    if names is None:
        names = list(DEFAULT_BENCHMARKS)
    if isinstance(names, str | Benchmark | os.PathLike):
        names = [names]
    out: dict[str, Benchmark] = {}
    for item in names:
        if isinstance(item, Benchmark):
            out[item.name] = item
            continue
        text = os.fspath(item)
        if text.endswith(".toml"):
            b = from_toml(text)
            out[b.name] = b
        elif text in _REGISTRY:
            out[text] = _REGISTRY[text]
        else:
            matches = [b for b in _REGISTRY.values() if b.dataset == text]
            if not matches:
                raise _unknown(text)
            out.update({b.name: b for b in sorted(matches, key=lambda b: b.name)})
    if not out:
        raise ValueError("no benchmark selected; pass at least one name (see nb.benchmark.available())")
    return list(out.values())


# --------------------------------------------------------------------------------------------- user data


def _stimulus_dim_of(brain: xr.DataArray) -> tuple[str, np.ndarray]:
    if "stimulus" in brain.dims:
        return "stimulus", np.asarray(brain["stimulus"].values)
    if "trial" in brain.dims and "stimulus" in brain.coords:
        return "trial", np.asarray(brain["stimulus"].values)
    raise ValueError(f"brain data need a 'stimulus' dim or a 'stimulus' coordinate on 'trial'; found dims "
                     f"{tuple(brain.dims)}; build them with nb.core.rdm / fmri_responses / evoked(stimulus=...)")


def make_data(brain: xr.DataArray, stimuli: Any, files: Mapping[str, str] | None = None,
              info: Mapping[str, Any] | None = None) -> BenchmarkData:
    """Check user brain data and stimuli and pair them as :class:`BenchmarkData`.

    Examples
    --------
    >>> import numpy as np, neurobridge as nb
    >>> brain = nb.core.rdm(np.ones((3, 3)) - np.eye(3), stimulus=["a", "b", "c"])
    >>> make_data(brain, ["x", "y", "z"]).stimuli.dims
    ('stimulus',)
    """
    if not isinstance(brain, xr.DataArray):
        raise ValueError(f"brain must be an xr.DataArray, got {type(brain).__name__}")
    _, ids = _stimulus_dim_of(brain)
    unique = list(dict.fromkeys(ids.tolist()))
    if isinstance(stimuli, xr.DataArray):
        if "stimulus" not in stimuli.dims:
            raise ValueError(f"stimuli need a 'stimulus' dim, found dims {tuple(stimuli.dims)}")
        missing = sorted(set(unique) - set(stimuli["stimulus"].values.tolist()))
        if missing:
            raise ValueError(f"{len(missing)} stimulus id(s) of the brain data have no stimulus, e.g. {missing[:5]}; "
                             "give one stimulus per id")
        stim = stimuli
    else:
        if isinstance(stimuli, str):
            raise ValueError("stimuli must be a sequence (one per stimulus), not a single string")
        values = np.asarray(stimuli) if not isinstance(stimuli, list | tuple) or not all(
            isinstance(s, str) for s in stimuli) else np.asarray(list(stimuli), dtype=object)
        if len(values) != len(unique):
            raise ValueError(f"{len(values)} stimuli for {len(unique)} unique stimulus ids in the brain data; pass "
                             "one stimulus per id, in the order of the ids (or an xr.DataArray with a 'stimulus' dim)")
        dims = ("stimulus",) + tuple({3: ("height", "width"), 4: ("height", "width", "color")}.get(values.ndim, (
            f"dim_{i}" for i in range(1, values.ndim))))
        if values.ndim == 3:
            values = values[..., None].repeat(3, axis=-1)
            dims = ("stimulus", "height", "width", "color")
        stim = xr.DataArray(values, dims=dims[: values.ndim], coords={"stimulus": unique})
    return BenchmarkData(stim, brain, dict(files or {}), dict(info or {}))


# --------------------------------------------------------------------------------------------- TOML


def _load_container(path: Path) -> xr.DataArray:
    from neurobridge.core import load

    obj = load(path)
    if isinstance(obj, xr.Dataset):
        names = list(obj.data_vars)
        if len(names) != 1:
            raise ValueError(f"{path} holds {len(names)} variables {names}; store one DataArray per file")
        obj = obj[names[0]]
    if not isinstance(obj, xr.DataArray):
        raise ValueError(f"{path} holds a {type(obj).__name__}, expected a DataArray")
    return obj


def _load_stimuli(path: Path, ids: list) -> Any:
    if path.suffix in (".nc", ".zarr", ".nc4"):
        return _load_container(path)
    if path.suffix in (".txt", ".tsv"):
        lines = [ln.rstrip("\n") for ln in path.read_text().splitlines() if ln.strip()]
        return lines
    if path.is_dir():
        from PIL import Image

        images = []
        for sid in ids:
            hits = sorted(p for p in path.iterdir() if p.stem == str(sid))
            if not hits:
                raise FileNotFoundError(f"no image named {sid}.* in {path}; name image files after stimulus ids")
            images.append(np.asarray(Image.open(hits[0]).convert("RGB")))
        shapes = {im.shape for im in images}
        if len(shapes) > 1:
            raise ValueError(f"images in {path} have different sizes {sorted(shapes)}; resize them to one size")
        return xr.DataArray(np.stack(images), dims=("stimulus", "height", "width", "color"), coords={"stimulus": ids})
    raise ValueError(f"cannot read stimuli from {path}: use a .nc/.zarr DataArray, a .txt file (one text per line, "
                     "in stimulus order) or a folder of images named <stimulus id>.<ext>")


def from_toml(path: str | os.PathLike, *, register_it: bool = True) -> Benchmark:
    """Build (and register) a benchmark from a small TOML file.

    The file has a ``[benchmark]`` table: ``name``, ``brain`` (path to a DataArray saved with ``nb.save``:
    RDMs or responses), ``stimuli`` (a saved DataArray with a ``stimulus`` dim, a ``.txt`` file with one
    text per line, or a folder of images named ``<stimulus id>.<ext>``), and optionally any
    :class:`Benchmark` field (``metric``, ``modality``, ``split``, ``ceiling``, ``n_splits``, ``description``,
    ...). Paths are relative to the TOML file. Alternatively ``dataset`` + ``target`` use a packaged
    dataset (``dataset = "kriegeskorte92"``, ``target = "hit"``).

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np, neurobridge as nb
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = nb.save(nb.core.rdm(np.ones((3, 3)) - np.eye(3), stimulus=list("abc")), d / "brain.nc")
    >>> _ = (d / "stim.txt").write_text("a cat\\na dog\\na car\\n")
    >>> _ = (d / "b.toml").write_text('[benchmark]\\nname = "toy"\\nbrain = "brain.nc"\\nstimuli = "stim.txt"\\nmodality = "text"\\n')
    >>> from_toml(d / "b.toml", register_it=False).modality
    'text'
    """
    import tomllib

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"benchmark file {path} not found")
    with path.open("rb") as fh:
        try:
            doc = tomllib.load(fh)
        except tomllib.TOMLDecodeError as err:
            raise ValueError(f"{path} is not valid TOML: {err}") from err
    table = dict(doc.get("benchmark", doc))
    if "name" not in table:
        raise ValueError(f"{path}: the [benchmark] table needs a 'name'")
    fields = set(Benchmark.__dataclass_fields__) - {"data", "name"}
    name = table.pop("name")
    brain_file, stim_file = table.pop("brain", None), table.pop("stimuli", None)
    dataset, target = table.pop("dataset", None), table.pop("target", None)
    unknown = set(table) - fields
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {sorted(unknown)} in [benchmark]; allowed: name, brain, stimuli, "
                         f"dataset, target, {', '.join(sorted(fields))}")
    if "time_window" in table:
        table["time_window"] = tuple(table["time_window"])
    base = path.parent
    if brain_file is not None:
        if stim_file is None:
            raise ValueError(f"{path}: 'brain' is set but 'stimuli' is missing")

        def data(data_dir, _b=base / brain_file, _s=base / stim_file):
            import pooch

            for p in (_b, _s):
                if not p.exists():
                    raise FileNotFoundError(f"{p} (named in {path}) does not exist")
            brain = _load_container(_b)
            _, ids = _stimulus_dim_of(brain)
            stim = _load_stimuli(_s, list(dict.fromkeys(ids.tolist())))
            files = {str(p): pooch.file_hash(str(p), alg="sha256") for p in (_b, _s) if p.is_file()}
            return make_data(brain, stim, files)
    elif dataset is not None:
        if target is None:
            raise ValueError(f"{path}: with 'dataset', set 'target' (a key of the dataset's brain data)")
        table.setdefault("dataset", dataset)

        def data(data_dir, _name=dataset, _key=target):
            return _dataset_data(_name, _key, data_dir)
    else:
        raise ValueError(f"{path}: set 'brain' and 'stimuli' (files), or 'dataset' and 'target'")
    bench = Benchmark(name, data=data, **table)
    if register_it:
        register(bench, overwrite=True)
    return bench


# --------------------------------------------------------------------------------------------- built-ins


def _card_files(bundle) -> dict[str, str]:
    card = getattr(bundle, "card", None)
    files = getattr(card, "files", ()) or ()
    return {f.name: f.sha256 or "" for f in files}


def _load_bundle(name: str, data_dir):
    """``nb.datasets.load`` with the run's options, loaded once per run (benchmarks on one dataset share it)."""
    from neurobridge import datasets

    opts = dict(_LOADER_OPTIONS.get() or {})
    cache = opts.pop("cache", None)
    key = (name, str(data_dir))
    if cache is not None and key in cache:
        return cache[key]
    bundle = datasets.load(name, data_dir=data_dir, **opts)
    if cache is not None:
        cache[key] = bundle
    return bundle


def _dataset_data(name: str, key: str, data_dir) -> BenchmarkData:
    bundle = _load_bundle(name, data_dir)
    if key not in bundle.brain:
        raise ValueError(f"dataset {name!r} has no brain data {key!r}; it has {sorted(bundle.brain)}")
    return BenchmarkData(bundle.stimuli, bundle.brain[key], _card_files(bundle), {})


def _kriegeskorte(key: str):
    def data(data_dir):
        out = _dataset_data("kriegeskorte92", key, data_dir)
        target = out.target
        if "session" in target.dims:  # one RDM per subject: average the two sessions
            target = target.mean("session", keep_attrs=True)
        return out._replace(target=target)
    return data


def _mne_sample(data_dir):
    out = _dataset_data("mne_sample_evoked", "meeg", data_dir)
    ev = out.target
    if "ch_type" in ev.coords:  # keep the MEG channels and put gradiometers and magnetometers on one scale
        meg = np.isin(ev["ch_type"].values, ["grad", "mag"])
        if meg.any():
            ev = ev.isel(channel=np.flatnonzero(meg))
        scale = ev.groupby("ch_type").map(lambda x: x / float(np.sqrt((x ** 2).mean())))
        ev = scale.transpose(*ev.dims)
    return out._replace(target=ev)


SIMULATED_TRUE_LAYER = "blocks.10"
"""The EfficientNet-Lite0 layer whose features drive every voxel of ``simulated-fmri-encoding``."""


def _simulated(data_dir):
    from neurobridge import datasets, extract, models

    model = models.load("efficientnet_lite0")
    bundle = _load_bundle("kriegeskorte92", data_dir)
    tree = extract.activations(model, bundle.stimuli, [SIMULATED_TRUE_LAYER], progress=False, stats=False)
    sim = datasets.simulate_encoding({SIMULATED_TRUE_LAYER: tree[SIMULATED_TRUE_LAYER]["activations"]},
                                     n_voxels=100, snr=1.0, n_repeats=2, random_state=0)
    info = {"true_layer": SIMULATED_TRUE_LAYER, "voxels": "100 (signal-to-noise ratio 1, 2 repetitions)",
            "true_noise_ceiling": f"{float(sim.noise_ceiling.mean()):.3f} (R2 of repetition means)"}
    return BenchmarkData(bundle.stimuli, sim.responses, _card_files(bundle), info)


_BUILTINS = [
    Benchmark(
        "kriegeskorte92-hit-rsa", data=_kriegeskorte("hit"), dataset="kriegeskorte92", split="subject",
        description="human IT fMRI (4 subjects, sessions averaged), 92 objects: RSA with the leave-one-subject-out "
                    "noise ceiling and bootstrap CIs over stimuli and subjects",
        citation="Kriegeskorte et al. (2008) Neuron 60(6)"),
    Benchmark(
        "kriegeskorte92-mit-rsa", data=_kriegeskorte("mit"), dataset="kriegeskorte92", split="stimulus",
        description="monkey IT (674 neurons), 92 objects: RSA with bootstrap CIs over stimuli (one RDM: no ceiling)",
        citation="Kiani et al. (2007) J Neurophysiol 97; Kriegeskorte et al. (2008) Neuron 60(6)"),
    Benchmark(
        "mne-sample-meg-rsa", data=_mne_sample, dataset="mne_sample_evoked", modality="text", split="stimulus",
        time_window=(0.0, 0.5), demo=True,
        description="time-resolved RSA of MNE sample MEG (4 conditions) against a text model of the condition "
                    "descriptions: a pipeline demonstration, not a scientific result (4 conditions = 6 pairs, too "
                    "few for held-out layer selection: the in-sample best layer is shown)",
        citation="Gramfort et al. (2013) Front Neurosci 7:267"),
    Benchmark(
        "simulated-fmri-encoding", data=_simulated, dataset="simulated", metric="encoding", split="stimulus",
        options={"cv": 5, "scoring": "r2", "average_repetitions": True},
        description="encoding (cross-validated ridge) of simulated voxels generated from EfficientNet-Lite0 "
                    "features of the 92 images, each voxel driven by one known layer",
        citation="simulated with nb.datasets.simulate_encoding"),
]
for _b in _BUILTINS:
    register(_b)
