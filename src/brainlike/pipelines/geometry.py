"""The ``geometry`` analysis (Cosentino & Shekkizhar 2024): attention density, intrinsic dimension of MLP
inputs and linear-region bounds per layer, with and without context, beside reasoning accuracy."""
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
        fields = {k: getattr(config, k) for k in GeometryConfig.model_fields}
        result = run_geometry(GeometryConfig(**{**fields, "progress": context.progress and config.progress}))
        tables = {f"geometry_{name}": getattr(result, name) for name in result.TABLES}
        tables["geometry_accuracy_summary"] = result.accuracy_summary()
        shown = {"accuracy by condition": result.accuracy_summary(), "intrinsic dimension": result.intrinsic_dimension,
                 "linear regions (log10 bound)": result.linear_regions}
        text = ("Attention graph density and intrinsic dimension (TwoNN, MLE) of the MLP input per layer, for each "
                "context condition." + (" Notes: " + "; ".join(result.notes) if result.notes else ""))
        section = Section("Geometry per layer", text, list(result.figures().items()),
                          [(k, v) for k, v in shown.items() if len(v)])
        return AnalysisOutput(tables=tables, sections=[section], subtitle=", ".join(config.models))


GEOMETRY = Geometry()
