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

_register(DatasetCard(
    name="kiloword",
    title="Kiloword: ERPs to 960 visually presented English words",
    description=(
        "EEG event-related potentials (averaged over 75 participants) to 960 printed English words, one ERP "
        "per word, with lexical metadata (concreteness, frequency, orthographic distance, length ...). "
        "Fetched by MNE-Python. brain['eeg'] is an evoked container (stimulus=word, channel, time)."
    ),
    citation=(
        "Dufau S, Grainger J, Midgley KJ, Holcomb PJ (2015). A thousand words are worth a picture: snapshots of "
        "printed-word processing in an event-related potential megastudy. Psychological Science 26(12):1887-1897."
    ),
    license="as distributed by MNE-Python's dataset fetcher (see the MNE datasets documentation)",
    modality="eeg",
    stimulus_type="words",
    loader="_wrappers:load_kiloword",
    fetcher="mne.datasets.kiloword.data_path",
    source="https://mne.tools/stable/documentation/datasets.html#kiloword-dataset",
))

_register(DatasetCard(
    name="visual_92_categories",
    title="MEG responses to the 92 object images (Cichy et al. 2014)",
    description=(
        "306-channel MEG of one participant viewing the 92 object images of Kriegeskorte et al. (2008), 4 runs. "
        "Fetched by MNE-Python (~6 GB); epochs with stimulus ids img00..img91 matching kriegeskorte92, whose "
        "images are attached as stimuli when available."
    ),
    citation=(
        "Cichy RM, Pantazis D, Oliva A (2014). Resolving human object recognition in space and time. "
        "Nature Neuroscience 17(3):455-462."
    ),
    license="as distributed by MNE-Python's dataset fetcher (see the MNE datasets documentation)",
    modality="meg",
    stimulus_type="images",
    loader="_wrappers:load_visual_92_categories",
    fetcher="mne.datasets.visual_92_categories.data_path",
    source="https://mne.tools/stable/documentation/datasets.html#visual-92-object-categories",
    options={"runs": (0, 1, 2, 3), "tmin": -0.1, "tmax": 0.5, "picks": "meg", "decim": 1, "images": True},
))

_register(DatasetCard(
    name="mtrf",
    title="mTRF speech EEG: 2 minutes of 128-channel EEG to natural speech",
    description=(
        "128-channel BioSemi EEG (128 Hz) recorded while a participant listened to 120 s of natural speech, "
        "with the speech envelope and a 16-band spectrogram on the same time axis (mTRF toolbox 1.5 example "
        "data). Fetched by MNE-Python."
    ),
    citation=(
        "Crosse MJ, Di Liberto GM, Bednar A, Lalor EC (2016). The multivariate temporal response function (mTRF) "
        "toolbox. Front Hum Neurosci 10:604. Lalor EC, Foxe JJ (2010). Neural responses to uninterrupted natural "
        "speech can be extracted with precise temporal resolution. Eur J Neurosci 31:189-193."
    ),
    license="as distributed by MNE-Python's dataset fetcher (mTRF toolbox example data)",
    modality="eeg",
    stimulus_type="speech",
    loader="_wrappers:load_mtrf",
    fetcher="mne.datasets.mtrf.data_path",
    source="https://mne.tools/stable/documentation/datasets.html#mtrf-dataset",
    options={"decim": 1},
))

_register(DatasetCard(
    name="haxby",
    title="Haxby et al. (2001): fMRI of 8 object categories, with the stimulus images",
    description=(
        "Block-design fMRI (TR 2.5 s, 12 runs) of subjects viewing faces, houses, cats, bottles, scissors, shoes, "
        "chairs and scrambled pictures. Fetched by nilearn. Returns the masked BOLD time series with labels, "
        "block-averaged responses per category and the exemplar images."
    ),
    citation=(
        "Haxby JV, Gobbini MI, Furey ML, Ishai A, Schouten JL, Pietrini P (2001). Distributed and overlapping "
        "representations of faces and objects in ventral temporal cortex. Science 293:2425-2430."
    ),
    license="as distributed by PyMVPA / nilearn (see the source page)",
    modality="fmri",
    stimulus_type="images",
    loader="_wrappers:load_haxby",
    fetcher="nilearn.datasets.fetch_haxby",
    source="http://data.pymvpa.org/datasets/haxby2001/",
    options={"subject": 2, "mask": "vt", "lag": 2, "images": True, "image_size": (128, 128)},
))

_register(DatasetCard(
    name="miyawaki2008",
    title="Miyawaki et al. (2008): fMRI of 10x10 binary contrast patterns (visual image reconstruction)",
    description=(
        "Early visual cortex fMRI (TR 2 s) to random 10x10 checkerboard patches (20 runs) and geometric "
        "figures/letters (12 runs). Fetched by nilearn. Returns per-volume responses (shifted for the "
        "haemodynamic delay, rest removed) and the binary images as stimuli."
    ),
    citation=(
        "Miyawaki Y, Uchida H, Yamashita O, Sato MA, Morito Y, Tanabe HC, Sadato N, Kamitani Y (2008). Visual image "
        "reconstruction from human brain activity using a combination of multiscale local image decoders. "
        "Neuron 60(5):915-929."
    ),
    license="as distributed on NITRC / by nilearn (see the source page)",
    modality="fmri",
    stimulus_type="images",
    loader="_wrappers:load_miyawaki2008",
    fetcher="nilearn.datasets.fetch_miyawaki2008",
    source="https://www.nitrc.org/projects/brainliner/",
    options={"runs": "all", "shift": 2, "standardize": True},
))

_register(DatasetCard(
    name="things_eeg2",
    title="THINGS-EEG2: 64-channel EEG to 16,740 object images (preprocessed, 17 posterior channels)",
    description=(
        "Preprocessed EEG (100 Hz, -0.2..0.8 s, 17 occipito-parietal channels) of 10 participants viewing THINGS "
        "images in rapid serial presentation: a training partition (16,540 images x 4 repetitions) and a test "
        "partition (200 images x 80 repetitions). Downloaded from its public OSF projects (anp5v: preprocessed "
        "EEG; y63gw: images and metadata), checked against the SHA-256 that OSF reports."
    ),
    citation=(
        "Gifford AT, Dwivedi K, Roig G, Cichy RM (2022). A large and rich EEG dataset for modeling human visual "
        "object recognition. NeuroImage 264:119754."
    ),
    license="EEG data: CC-BY 4.0 (OSF); images: THINGS database terms (research use) -- check the OSF pages",
    modality="eeg",
    stimulus_type="images",
    loader="_wrappers:load_things_eeg2",
    fetcher="OSF API (osf.io/anp5v, osf.io/y63gw)",
    source="https://osf.io/3jk45/",
    options={"subject": 1, "partition": "test", "load_images": None, "image_size": None},
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
