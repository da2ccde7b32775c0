"""The ``organization`` analysis (Sun et al.

2024): MLP neuron sub-groups → temporal patterns → fixed regressors of fMRI encoding → the functional network each
pattern maps onto.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from brainlike.analyses.organization import OrganizationConfig, run_organization
from brainlike.config import RunConfig, resolve_stimulus
from brainlike.errors import BrainlikeError
from brainlike.fileio import atomic_write
from brainlike.pipelines import AnalysisOutput, RunContext, Section


def _inside(root: Path, *parts: str) -> Path:
    """``root / parts``, refusing any path that would leave ``root``."""
    path = root.joinpath(*parts)
    if root.resolve() not in path.resolve().parents:
        raise BrainlikeError(f"refusing to write {path}: it is outside the output folder {root}")
    return path


class OrganizationSpec(RunConfig, OrganizationConfig):
    """``analysis: organization``: the fields of :class:`OrganizationConfig` at top level."""

    analysis: Literal["organization"] = "organization"
    name: str = "organization"
    output: str = "brainlike-out/organization"


class Organization:
    """The ``organization`` analysis plugin: tables to the store, t-maps under ``<output>/maps``."""

    Config = OrganizationSpec
    title = "functional organization of artificial neurons"

    def run(self, config: OrganizationSpec, context: RunContext) -> AnalysisOutput:
        """Run the analysis of ``config``."""
        fields = {k: getattr(config, k) for k in OrganizationConfig.model_fields}
        cfg = OrganizationConfig(**fields)
        # the real recording brings its own words (the story its listeners heard), never the spec's stimulus
        stimulus = None if cfg.data.kind == "brennan2016" else resolve_stimulus(config.stimulus, seed=config.seed)
        result = run_organization(cfg, stimulus=stimulus, progress=context.progress)
        tables = {f"organization_{name}": df for name, df in result.tables().items() if len(df)}
        files, stems = [], result.file_stems()  # a model given as a folder path gets a safe file name
        if result.data.is_volume:
            for name, m in result.models.items():
                for k in range(len(m.glm.t)):
                    img = result.data.to_image(m.glm.t[k])
                    path = _inside(context.output, "maps", f"{stems[name]}_pattern{k}_t.nii.gz")
                    files.append(atomic_write(path, lambda p, img=img: img.to_filename(str(p))))
        figures = []
        for key, fig in result.figures().items():  # figure names become file names: model names made safe
            model = max((n for n in result.models if key.endswith("_" + n)), key=len, default=None)
            figures.append((key if model is None else key[: -len(model)] + stems[model], fig))
        shown = result.tables()
        if "roi_effects" in shown:  # the real ROI recording: per-subject GLMs, refitted shift null
            text = ("Representative temporal patterns of MLP neurons as fixed HRF regressors of every subject's ROI "
                    "time courses (controls: word rate, sound power): the ROI each pattern maps to (z against "
                    "refitted circular shifts of the patterns, Bonferroni over ROIs, FDR over patterns), its "
                    "consistency across subjects (bootstrap CI, chance by the shifts), diversity and stability "
                    "with chance levels, the K/alpha sweep, the depth of the assigned patterns' neurons (metrics: "
                    "assigned_depth, permutation p) and patterns fitted per third of the blocks (layer_groups). "
                    "Random-weight twins are the baseline.")
        else:
            text = ("Representative temporal patterns of MLP neurons, their maps and the functional network each is "
                    f"assigned to ({config.networks.null} null, FDR).")
        section = Section("Patterns and networks", text, figures,
                          [(k, shown[k]) for k in ("assignments", "metrics", "consistency", "sweep", "layer_groups",
                                                   "recovery") if k in shown and len(shown[k])])
        return AnalysisOutput(tables=tables, sections=[section], subtitle=", ".join(config.models), files=files)


ORGANIZATION = Organization()
