"""Dataset cards: what each dataset is, where its files come from, and which loader reads it."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["DatasetFile", "DatasetCard", "CARDS", "get_card"]

_RSATOOLBOX = "https://raw.githubusercontent.com/rsagroup/rsatoolbox/f1f83cadb7243492a1aae7460466e0f0140b20ac/demos/92imageData/"
_MNE = "https://raw.githubusercontent.com/mne-tools/mne-python/8aa8dec45a522363be02cba78d0856442b208067/mne/io/tests/data/"


@dataclass(frozen=True)
class DatasetFile:
    """One file of a dataset, with where to download it and its checksum."""

    name: str
    """File name inside the dataset folder (``<data root>/<dataset>/<name>``)."""
    url: str
    """Public URL the file is downloaded from."""
    sha256: str | None
    """Expected SHA-256 hex digest; ``None`` when no reference checksum is known (the file is then
    downloaded without verification and its digest is logged)."""
    size: int | None = None
    """Size in bytes, when known (shown by ``neurobridge datasets info``)."""
    description: str = ""
    """What the file holds."""


@dataclass(frozen=True)
class DatasetCard:
    """Everything known about one dataset: provenance, license, files and loader."""

    name: str
    """Registry name, used with :func:`neurobridge.datasets.load`."""
    title: str
    """One-line title."""
    description: str
    """What the data are and what :func:`load` returns."""
    citation: str
    """Reference(s) to cite when using the data."""
    license: str
    """License of the data files."""
    modality: str
    """``"fmri"``, ``"meg"``, ``"eeg"``, ``"meeg"``, ``"electrophysiology+fmri"`` ..."""
    stimulus_type: str
    """``"images"``, ``"words"``, ``"text"``, ``"speech"`` ..."""
    loader: str
    """Dotted path ``module:function`` of the loader, relative to ``neurobridge.datasets``."""
    files: tuple[DatasetFile, ...] = ()
    """Files handled by neurobridge's own fetcher (URL + checksum)."""
    fetcher: str = ""
    """For datasets downloaded by another library (MNE, nilearn), the function that fetches them."""
    source: str = ""
    """Home page of the data."""
    options: dict = field(default_factory=dict)
    """Loader keyword options with their defaults, as documentation."""

    @property
    def file_names(self) -> tuple[str, ...]:
        """Names of the files in :attr:`files`."""
        return tuple(f.name for f in self.files)

    def to_dict(self) -> dict:
        """Plain-dict view (for printing and JSON).

        Examples
        --------
        >>> from neurobridge.datasets import info
        >>> info("kriegeskorte92").to_dict()["modality"]
        'fmri+electrophysiology'
        """
        return {
            "name": self.name, "title": self.title, "description": self.description, "citation": self.citation,
            "license": self.license, "modality": self.modality, "stimulus_type": self.stimulus_type,
            "loader": self.loader, "fetcher": self.fetcher, "source": self.source, "options": dict(self.options),
            "files": [{"name": f.name, "url": f.url, "sha256": f.sha256, "size": f.size,
                       "description": f.description} for f in self.files],
        }


CARDS: dict[str, DatasetCard] = {}


def _register(card: DatasetCard) -> DatasetCard:
    CARDS[card.name] = card
    return card


_register(DatasetCard(
    name="kriegeskorte92",
    title="92 object images with human-IT fMRI, monkey-IT, model and behavioural RDMs",
    description=(
        "The 92 object images (175x175 RGB) of Kriegeskorte et al. (2008) with category labels; human IT fMRI "
        "RDMs for 4 subjects x 2 sessions (1-r correlation distance, 316 voxels); the monkey IT RDM (674 "
        "neurons, Kiani et al. 2007); 8 model RDMs and 16 behavioural similarity-judgement RDMs. "
        "Stimulus ids are 'img00'..'img91' in the order of the original stimulus struct."
    ),
    citation=(
        "Kriegeskorte N, Mur M, Ruff DA, Kiani R, Bodurka J, Esteky H, Tanaka K, Bandettini PA (2008). Matching "
        "categorical object representations in inferior temporal cortex of man and monkey. Neuron 60(6):1126-1141. "
        "Kiani R, Esteky H, Mirpour K, Tanaka K (2007). Object category structure in response patterns of neuronal "
        "population in monkey inferior temporal cortex. J Neurophysiol 97:4296-4309."
    ),
    license="MIT (rsatoolbox repository); images redistributed for research",
    modality="fmri+electrophysiology",
    stimulus_type="images",
    loader="_kriegeskorte92:load_kriegeskorte92",
    source="https://github.com/rsagroup/rsatoolbox/tree/main/demos/92imageData",
    files=(
        DatasetFile("Kriegeskorte_Neuron2008_supplementalData.mat", _RSATOOLBOX + "Kriegeskorte_Neuron2008_supplementalData.mat",
                    "06f21214399a5d43dc264eed19a7f4b8daf11c8622a59eec3e106064ce5e3504", 3603779,
                    "stimuli_92objs (images + labels), categoryVectors, RDMs_mIT_hIT_fig1 (pdist order)"),
        DatasetFile("92_brainRDMs.mat", _RSATOOLBOX + "92_brainRDMs.mat",
                    "1743f90a15e895798a94318649e80e1123a7e5943a1703fa1dd7c31ea5780b7c", 224663,
                    "human IT RDMs, subjects BE/KO/SN/TI x sessions 1-2"),
        DatasetFile("92_modelRDMs.mat", _RSATOOLBOX + "92_modelRDMs.mat",
                    "e1d2b58bb2f9508bc13da4c81b94d1ab07823b25ed30b9563bd9d6d730c2a00a", 333004,
                    "8 model RDMs"),
        DatasetFile("92_behavRDMs.mat", _RSATOOLBOX + "92_behavRDMs.mat",
                    "7a8e118c144c3840adeeeef6ea0706a0be2b3e80df719af15fbb56fc62562f5f", 982719,
                    "16 behavioural similarity-judgement RDMs"),
    ),
))

_register(DatasetCard(
    name="mne_sample_evoked",
    title="MNE 'sample' subject: 4-condition evoked MEG+EEG",
    description=(
        "Averaged MEG (204 gradiometers, 102 magnetometers) and EEG (60) responses of the MNE 'sample' subject to "
        "left/right auditory tones and left/right visual checkerboards; 600.6 Hz, -0.2..0.5 s. Stimulus ids are "
        "'auditory/left', 'auditory/right', 'visual/left', 'visual/right'; stimuli are short text descriptions."
    ),
    citation=(
        "Gramfort A, Luessi M, Larson E, et al. (2013). MEG and EEG data analysis with MNE-Python. "
        "Front Neurosci 7:267."
    ),
    license="BSD-3-Clause (MNE-Python test data)",
    modality="meeg",
    stimulus_type="text",
    loader="_mne_sample:load_mne_sample_evoked",
    source="https://github.com/mne-tools/mne-python/tree/main/mne/io/tests/data",
    files=(
        DatasetFile("test-ave.fif.gz", _MNE + "test-ave.fif.gz",
                    "b2401bd644324f887f718ef1a4feb08367b3211a43c347651b9d2d6fd91e7701", 2338877,
                    "Evoked: 4 conditions, 376 channels (366 MEG/EEG), 421 samples"),
        DatasetFile("test-cov.fif", _MNE + "test-cov.fif",
                    "5d667f9087102ac72f79972d1b176b211a86e80f291cbec182a3cad3a0af651e", 547234,
                    "366x366 noise covariance"),
        DatasetFile("test-eve.fif", _MNE + "test-eve.fif",
                    "64925d0e981990132b48ab1274651d80085524b67d76eca177f4faa70f13e3e5", 543,
                    "events (1-4 = LA/RA/LV/RV)"),
    ),
    options={"picks": "data (MEG+EEG channels)", "noise_cov": False},
))


def get_card(name: str) -> DatasetCard:
    """The card registered under ``name``; ``KeyError`` listing the known names otherwise.

    Examples
    --------
    >>> get_card("mne_sample_evoked").modality
    'meeg'
    """
    try:
        return CARDS[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; known datasets: {sorted(CARDS)} "
                       "(see nb.datasets.list())") from None
