"""Skill emergence: the Arora–Goyal (2023) random skill-graph theory and the Skill-Mix evaluation (Yu et al. 2023).

Entry points (pydantic config in, dataclass of tidy tables out):

* :func:`run_theory` (:class:`TheoryConfig` -> :class:`TheoryResult`): scaling law -> excess loss -> fraction
  of text pieces failed -> fraction of skills and of ``k'``-tuples of skills the model is competent on, by
  closed-form bounds and Monte Carlo on explicit random graphs, as the model scale grows.
* :func:`run_skillmix` (:class:`SkillMixConfig` -> :class:`SkillMixResult`): random draws of ``k`` skills and a
  topic, generation and grading through a local Hugging Face model or any OpenAI-compatible endpoint, scores
  by ``k`` with confidence intervals; resumable.

See docs/skills.md.
"""
from brainlike.analyses.skills.aggregate import bootstrap_interval, summarize_scores, wilson_interval
from brainlike.analyses.skills.bounds import (
    adversarial_concentration,
    competence_bound,
    entropy,
    kl_bernoulli,
    markov_bound,
    noncompetent_bound,
    random_failure_competence,
    theorem14_noncompetent_bound,
)
from brainlike.analyses.skills.clients import (
    ChatClient,
    ChatResponse,
    ClientConfig,
    ClientError,
    HFChatClient,
    OpenAIChatClient,
    ScriptedClient,
    make_client,
)
from brainlike.analyses.skills.crossings import competence_crossings, n_params_at_theta, theta_at_competence
from brainlike.analyses.skills.grading import ParsedGrade, count_sentences, grading_messages, parse_grade
from brainlike.analyses.skills.graph import SkillGraph, random_skill_graph, simulate_competence
from brainlike.analyses.skills.plots import (
    plot_competence_curves,
    plot_emergence,
    plot_scaling_fit,
    plot_skill_usage,
    plot_skillmix_scores,
)
from brainlike.analyses.skills.scaling import (
    CHINCHILLA,
    ScalingLaw,
    ScalingLawFit,
    failure_fraction,
    fit_scaling_law,
    scale_for_excess_ratio,
)
from brainlike.analyses.skills.server import ChatServer, Fault, serve
from brainlike.analyses.skills.skillmix import (
    Skill,
    SkillMixConfig,
    SkillMixItem,
    SkillMixResult,
    draw_items,
    generation_messages,
    load_skills,
    load_topics,
    run_skillmix,
)
from brainlike.analyses.skills.theory import ScalingPoint, TheoryConfig, TheoryResult, competence_curves, run_theory

__all__ = [
    "CHINCHILLA", "ChatClient", "ChatResponse", "ChatServer", "ClientConfig", "ClientError", "Fault", "HFChatClient",
    "OpenAIChatClient", "ParsedGrade", "ScalingLaw", "ScalingLawFit", "ScalingPoint", "ScriptedClient", "Skill",
    "SkillGraph", "SkillMixConfig", "SkillMixItem", "SkillMixResult", "TheoryConfig", "TheoryResult",
    "adversarial_concentration", "bootstrap_interval", "competence_bound", "competence_crossings", "competence_curves",
    "count_sentences",
    "draw_items", "entropy", "failure_fraction", "fit_scaling_law", "generation_messages", "grading_messages",
    "kl_bernoulli", "load_skills", "load_topics", "make_client", "markov_bound",
    "n_params_at_theta", "noncompetent_bound",
    "parse_grade", "plot_competence_curves", "plot_emergence", "plot_scaling_fit", "plot_skill_usage",
    "plot_skillmix_scores", "random_failure_competence", "random_skill_graph", "run_skillmix", "run_theory",
    "scale_for_excess_ratio", "serve", "simulate_competence", "summarize_scores", "theorem14_noncompetent_bound",
    "theta_at_competence", "wilson_interval",
]
