"""Brain-like functional organization within language models (Sun et al. 2024, arXiv 2410.19542).

Sub-groups of MLP neurons (sparse dictionary learning over their temporal responses to a story) are
mapped onto functional brain networks through a voxel-wise GLM. See ``docs/organization.md``.
"""
from brainlike.analyses.organization.brain import BrainData
from brainlike.analyses.organization.glm import GLMResult, design_matrix, fit_glm, hrf_regressors
from brainlike.analyses.organization.networks import NetworkAtlas, load_atlas, match_networks, overlap_scores
from brainlike.analyses.organization.patterns import PatternLearner, PatternResult
from brainlike.analyses.organization.run import (
    ModelOrganization,
    OrganizationConfig,
    OrganizationResult,
    run_organization,
)
from brainlike.analyses.organization.simulate import SimulatedOrganization, plant_groups, simulate_network_fmri
from brainlike.analyses.organization.timecourses import iter_timecourses, normalize_timecourses, tr_matrix

__all__ = ["BrainData", "GLMResult", "ModelOrganization", "NetworkAtlas", "OrganizationConfig",
           "OrganizationResult", "PatternLearner", "PatternResult", "SimulatedOrganization", "design_matrix",
           "fit_glm", "hrf_regressors", "iter_timecourses", "load_atlas", "match_networks",
           "normalize_timecourses", "overlap_scores", "plant_groups", "run_organization",
           "simulate_network_fmri", "tr_matrix"]
