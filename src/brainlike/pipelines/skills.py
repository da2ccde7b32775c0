"""The ``skill-theory`` (Arora & Goyal 2023) and ``skillmix`` (Yu et al. 2023) analyses."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from brainlike.analyses.skills import run_skillmix, run_theory
from brainlike.analyses.skills.skillmix import SkillMixConfig
from brainlike.analyses.skills.theory import TheoryConfig
from brainlike.config import RunConfig
from brainlike.pipelines import AnalysisOutput, RunContext, Section


class SkillTheorySpec(RunConfig):
    """``analysis: skill-theory`` with the theory's settings under ``theory:``."""

    analysis: Literal["skill-theory"] = "skill-theory"
    name: str = "skill-theory"
    output: str = "brainlike-out/skill-theory"
    theory: TheoryConfig = Field(default_factory=TheoryConfig)


class SkillTheory:
    """The ``skill-theory`` analysis plugin."""

    Config = SkillTheorySpec
    title = "skill emergence under scaling laws (theory)"

    def run(self, config: SkillTheorySpec, context: RunContext) -> AnalysisOutput:
        theory = config.theory.model_copy(update={"progress": context.progress and config.theory.progress})
        result = run_theory(theory)
        tables = {f"skill_{k}": v for k, v in result.tables().items()}
        section = Section("Skill emergence (theory)", _theory_summary(result),
                          list(result.figures().items()), [(k, v) for k, v in result.tables().items() if len(v)])
        return AnalysisOutput(tables=tables, sections=[section])


def _theory_summary(result) -> str:
    """One paragraph for the report: where the paper's Theorem 14 guarantees 10 % of skills / tuples."""
    th = result.thresholds
    t14 = th[th["method"] == "theorem14"].set_index("kprime")["n_params_10"]
    parts = [f"k'={kp}: {n:.2g}" for kp, n in t14.items() if n == n]
    text = ("Competence on skills and k'-tuples of skills as model scale grows (Arora & Goyal 2023): the paper's "
            "worst-case guarantee (Theorem 14), our union bound, the exact random-failure formula and Monte Carlo "
            "on explicit random skill graphs. ")
    if parts:
        text += "Parameters at which Theorem 14 guarantees 10 % competent: " + ", ".join(parts) + ". "
    fs = result.finite_size
    if len(fs):
        big = fs[fs["n_pieces"] == fs["n_pieces"].max()]
        lead = big["log10_lead_10"].abs().max()
        text += (f"Finite size: with independent failures, tuples reach 10 % at most {lead:.3f} decades before "
                 f"single skills on {int(big['n_pieces'].iloc[0]):,} pieces (see theory_finite_size).")
    return text


class SkillMixSpec(RunConfig):
    """``analysis: skillmix`` with the evaluation's settings under ``skillmix:``.

    ``skillmix.output_dir`` is ignored: the log of finished items (``records.jsonl``, for resume) lives in
    ``<output>/skillmix``.
    """

    analysis: Literal["skillmix"] = "skillmix"
    name: str = "skillmix"
    output: str = "brainlike-out/skillmix"
    skillmix: SkillMixConfig


class SkillMix:
    """The ``skillmix`` analysis plugin; items that failed make the run fail (after the others are saved)."""

    Config = SkillMixSpec
    title = "Skill-Mix evaluation"

    def run(self, config: SkillMixSpec, context: RunContext) -> AnalysisOutput:
        cfg = config.skillmix.model_copy(update={"output_dir": context.output / "skillmix",
                                                 "progress": context.progress and config.skillmix.progress})
        result = run_skillmix(cfg)
        tables = result.tables()
        failed, message = result.n_failed, result.failure_message()
        section = Section("Skill-Mix", "Scores by k with confidence intervals.", list(result.figures().items()),
                          [(k, v) for k, v in tables.items() if "summary" in k and len(v)])
        return AnalysisOutput(tables=tables, sections=[section], failures=failed, message=message,
                              files=[result.output_dir / "records.jsonl"])


SKILL_THEORY = SkillTheory()
SKILLMIX = SkillMix()
