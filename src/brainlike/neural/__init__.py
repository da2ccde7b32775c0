"""Neural recordings: datasets, alignment to the stimulus, simulators and loaders."""
from brainlike.neural.bids import (
    BIDSRecording,
    PereiraData,
    load_bids_fmri,
    load_bids_fmri_runs,
    load_lebel_responses,
    load_pereira2018,
    read_word_timings,
    stimulus_onset_from_events,
)
from brainlike.neural.dataset import NeuralDataset
from brainlike.neural.fmri import (
    FMRIDesign,
    concatenate_runs,
    fmri_design,
    fmri_design_layers,
    fmri_responses,
    lanczos_downsample,
    make_delayed,
)
from brainlike.neural.ieeg import high_gamma_envelope, load_bids_ieeg
from brainlike.neural.simulate import RegionSpec, SimulationResult, default_regions, simulate_ecog, simulate_fmri
from brainlike.neural.stats import (
    block_bootstrap_ci,
    fdr_correction,
    fold_labels,
    inter_subject_correlation,
    isc_ceiling,
    permutation_test,
    split_half_reliability,
)
from brainlike.neural.word_locked import word_locked_responses

__all__ = [
    "BIDSRecording",
    "FMRIDesign",
    "NeuralDataset",
    "PereiraData",
    "RegionSpec",
    "SimulationResult",
    "block_bootstrap_ci",
    "concatenate_runs",
    "default_regions",
    "fdr_correction",
    "fmri_design",
    "fmri_design_layers",
    "fmri_responses",
    "fold_labels",
    "high_gamma_envelope",
    "inter_subject_correlation",
    "isc_ceiling",
    "lanczos_downsample",
    "load_bids_fmri",
    "load_bids_fmri_runs",
    "load_bids_ieeg",
    "load_lebel_responses",
    "load_pereira2018",
    "make_delayed",
    "permutation_test",
    "read_word_timings",
    "simulate_ecog",
    "simulate_fmri",
    "split_half_reliability",
    "stimulus_onset_from_events",
    "word_locked_responses",
]
