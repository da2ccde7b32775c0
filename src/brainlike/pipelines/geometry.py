"""The ``geometry`` analysis (Cosentino & Shekkizhar 2024).

Attention density, intrinsic dimension of MLP inputs and linear-region bounds per layer, with and without context,
beside reasoning accuracy.
"""
from __future__ import annotations

from typing import Literal

from brainlike.analyses.geometry import GeometryConfig, run_geometry
from brainlike.config import RunConfig
from brainlike.pipelines import AnalysisOutput, RunContext, Section


class GeometrySpec(RunConfig, GeometryConfig):
    """``analysis: geometry``: the fields of :class:`~brainlike.analyses.geometry.GeometryConfig` at top level."""

    analysis: Literal["geometry"] = "geometry"
    name: str = "geometry"
    output: str = "brainlike-out/geometry"


class Geometry:
    """The ``geometry`` analysis plugin."""

    Config = GeometrySpec
    title = "representation geometry with and without context"

    def run(self, config: GeometrySpec, context: RunContext) -> AnalysisOutput:
        """Run the analysis of ``config``."""
        fields = {k: getattr(config, k) for k in GeometryConfig.model_fields}
        result = run_geometry(GeometryConfig(**{**fields, "progress": context.progress and config.progress}))
        if config.task == "arithmetic":
            return self._task_output(result, config)
        tables = {f"geometry_{name}": getattr(result, name) for name in result.TABLES}
        tables["geometry_accuracy_summary"] = result.accuracy_summary()
        shown = {"accuracy by condition": result.accuracy_summary(), "intrinsic dimension": result.intrinsic_dimension,
                 "linear regions (log10 bound)": result.linear_regions}
        text = ("Attention graph density and intrinsic dimension (TwoNN, MLE) of the MLP input per layer, for each "
                "context condition." + (" Notes: " + "; ".join(result.notes) if result.notes else ""))
        section = Section("Geometry per layer", text, list(result.figures().items()),
                          [(k, v) for k, v in shown.items() if len(v)])
        return AnalysisOutput(tables=tables, sections=[section], subtitle=", ".join(config.models))

    @staticmethod
    def _task_output(result, config: GeometrySpec) -> AnalysisOutput:
        """Tables and report section of ``task: arithmetic`` (context → late-layer ID → accuracy)."""
        tables = {f"geometry_task_{name}": getattr(result, name) for name in result.TABLES}
        summary = result.accuracy_summary
        overall = summary[summary["difficulty"] == -1] if len(summary) else summary
        late = result.layers
        if len(late):
            late = late[late["measure"].str.startswith("id_") & (late["relative_layer"] > config.late_from)]
            late = late.groupby(["model", "condition", "measure"], sort=False)[["estimate", "ci_low", "ci_high"]]\
                .mean().reset_index()
        patterns = result.activation_patterns
        if len(patterns):
            patterns = patterns[patterns["condition"] == patterns["condition"].iloc[0]]
        lines = [v for v in result.verdicts["verdict"]] + [v for v in result.verdicts.get("attention_verdict", [])] \
            + list(result.notes)
        text = ("Generated arithmetic problems (difficulty 0 = bare sums, 1-3 = word-problem steps, answers checked "
                "exactly as the first integer of the greedy continuation) with k worked examples as context, "
                "against length-matched controls (irrelevant text, examples with wrong answers). Intrinsic "
                "dimension (TwoNN, MLE) of the MLP inputs over the question tokens only, with bootstrap 95% CIs "
                "over questions; nulls: question-wise swap of conditions (ID), exact McNemar (accuracy), "
                "permutation across conditions (correlation). Attention density is tested length-free: the "
                "question tokens' effective density after k examples against the length-matched controls "
                "(sign-flip null), and its difference against the ID difference across those contrasts. "
                + " ".join(lines))
        shown = {"accuracy (all difficulties, Wilson 95% CI, chance)": overall,
                 "accuracy by difficulty": summary[summary["difficulty"] >= 0] if len(summary) else summary,
                 "the chain: effects with CIs and nulls": result.chain,
                 "late-layer intrinsic dimension (mean of per-layer estimates and CI bounds)": late,
                 "distinct activation patterns of the real MLP vs the Zaslavsky bound": patterns,
                 "models": result.models}
        section = Section("Geometry on a task the models can solve", text, list(result.figures().items()),
                          [(k, v) for k, v in shown.items() if len(v)])
        return AnalysisOutput(tables=tables, sections=[section], subtitle=", ".join(config.models))


GEOMETRY = Geometry()
