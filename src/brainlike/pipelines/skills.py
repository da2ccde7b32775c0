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
        """Run the analysis of ``config``."""
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
    cr = result.crossings
    if len(cr):
        c90 = cr[(cr["method"] == "theorem14") & (cr["level"] == 0.9)].sort_values("kprime")
        text += ("Theorem 14 guarantees 90 % competent at (solved directly, theory_crossings): " + ", ".join(
            f"k'={r.kprime}: {r.n_params:.2g}" + (f" ({r.scale_factor:.0f}x)" if r.kprime > 1 else "")
            for r in c90.itertuples()) + ". ")
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
        """Run the analysis of ``config``."""
        cfg = config.skillmix.model_copy(update={"output_dir": context.output / "skillmix",
                                                 "progress": context.progress and config.skillmix.progress})
        result = run_skillmix(cfg)
        tables = result.tables()
        failed, message = result.n_problems, result.failure_message()
        section = Section("Skill-Mix", _skillmix_summary(result), list(result.figures().items()),
                          [(k, v) for k, v in tables.items() if ("summary" in k or "agreement" in k) and len(v)])
        return AnalysisOutput(tables=tables, sections=[section], failures=failed, message=message,
                              files=[result.output_dir / "records.jsonl"])


def _skillmix_summary(result) -> str:
    """One paragraph for the report: the paper's three metrics by k (mean and CI), failures, agreement."""
    s = result.summary
    lines = []
    for (grader, k), d in s[s["metric"].isin(["full_marks", "all_skills", "skill_fraction"])].groupby(
            ["grader", "k"], sort=True):
        parts = [f"{r.paper_name} {r.mean:.2f} [{r.ci_low:.2f}, {r.ci_high:.2f}]" for r in d.itertuples()
                 if r.mean == r.mean]
        lines.append(f"grader {grader}, k={k}: " + ("; ".join(parts) if parts else "nothing gradable"))
    cfg = result.config
    checks = "checked in code" if cfg.code_checks else "left to the grader"
    text = (f"Skill-Mix (Yu et al. 2023): {result.items['item_id'].nunique()} draws of skills and topic, "
            f"{'with' if cfg.revise else 'without'} the self-revision round, {cfg.n_generations} generation "
            f"round(s) per draw (best kept per metric), {cfg.n_gradings} grading round(s) per grader; "
            f"sentence limit and skill names {checks}. {int(cfg.confidence * 100)} % CIs (Wilson "
            "for ratios, bootstrap over items for Skill Fraction). " + " | ".join(lines))
    a = result.agreement
    if len(a):
        text += " Agreement between gradings (Cohen's kappa): " + "; ".join(
            f"{r.grading_a} vs {r.grading_b} {r.kappa:.2f} [{r.kappa_ci_low:.2f}, {r.kappa_ci_high:.2f}]"
            for r in a.head(6).itertuples()) + ("; ..." if len(a) > 6 else "") + "."
    if result.n_problems:
        text += f" FAILED: {result.failure_message()}."
    return text


SKILL_THEORY = SkillTheory()
SKILLMIX = SkillMix()
