"""Representation geometry (Cosentino & Shekkizhar 2024) for any Hugging Face model.

Cosentino & Shekkizhar 2024: "Reasoning in Large Language Models: A Geometric Perspective", arXiv 2407.02678.

* :mod:`.attention` — attention matrices as graphs: density (thresholded), entropy, effective density.
* :mod:`.modules` / :mod:`.capture` — find every block's MLP, capture its input with pre-hooks.
* :mod:`.intrinsic_dimension` — TwoNN / MLE (scikit-dimension) and manifolds of known dimension.
* :mod:`.linear_regions` — the bound ``sum_{i<=d} C(n, i)`` on the regions an MLP of width ``n`` carves.
* :mod:`.questions` — question set, prompts with/without context, exact-match accuracy.
* :mod:`.experiment` — :func:`run_geometry` (:class:`GeometryConfig` → :class:`GeometryResult`).
* :mod:`.plots` — figures from the result tables.
"""
from brainlike.analyses.geometry.attention import (
    ATTENTION_MEASURES,
    allowed_mask,
    attention_density,
    attention_entropy,
    attention_graph_stats,
    row_entropy,
)
from brainlike.analyses.geometry.capture import PromptCapture, PromptSetGeometry, capture_prompt, measure_prompts
from brainlike.analyses.geometry.experiment import GeometryConfig, GeometryResult, run_geometry, summarize_attention
from brainlike.analyses.geometry.intrinsic_dimension import (
    ESTIMATORS,
    estimate_intrinsic_dimension,
    linear_subspace,
    prepare_points,
    sphere,
    swiss_roll,
)
from brainlike.analyses.geometry.linear_regions import (
    count_activation_patterns,
    grid_points,
    integer_dimension,
    linear_region_bound,
    log10_linear_region_bound,
)
from brainlike.analyses.geometry.modules import attention_heads, mlp_modules, mlp_width, transformer_blocks
from brainlike.analyses.geometry.plots import (
    plot_attention_density,
    plot_attention_heads,
    plot_context_accuracy,
    plot_context_effect,
    plot_intrinsic_dimension,
    plot_linear_regions,
)
from brainlike.analyses.geometry.questions import (
    CONDITIONS,
    Question,
    build_prompt,
    exact_match,
    generate_answer,
    load_questions,
    normalize_answer,
)

__all__ = [
    "ATTENTION_MEASURES", "CONDITIONS", "ESTIMATORS", "GeometryConfig", "GeometryResult", "PromptCapture",
    "PromptSetGeometry", "Question", "allowed_mask", "attention_density", "attention_entropy",
    "attention_graph_stats", "attention_heads", "build_prompt", "capture_prompt", "count_activation_patterns",
    "estimate_intrinsic_dimension", "exact_match", "generate_answer", "grid_points", "integer_dimension",
    "linear_region_bound", "linear_subspace", "load_questions", "log10_linear_region_bound", "measure_prompts",
    "mlp_modules", "mlp_width", "normalize_answer", "plot_attention_density", "plot_attention_heads",
    "plot_context_accuracy", "plot_context_effect", "plot_intrinsic_dimension", "plot_linear_regions",
    "prepare_points", "row_entropy", "run_geometry", "sphere", "summarize_attention", "swiss_roll",
    "transformer_blocks",
]
