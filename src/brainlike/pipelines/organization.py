"""The ``organization`` analysis (Sun et al. 2024): MLP neuron sub-groups → temporal patterns → fixed
regressors of fMRI encoding → the functional network each pattern maps onto."""
from __future__ import annotations

import re
from typing import Literal

from brainlike.analyses.organization import OrganizationConfig, run_organization
from brainlike.config import RunConfig, resolve_stimulus
from brainlike.fileio import atomic_write
from brainlike.pipelines import AnalysisOutput, RunContext, Section

_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]")


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
        fields = {k: getattr(config, k) for k in OrganizationConfig.model_fields}
        cfg = OrganizationConfig(**fields)
        result = run_organization(cfg, stimulus=resolve_stimulus(config.stimulus, seed=config.seed),
                                  progress=context.progress)
        tables = {f"organization_{name}": df for name, df in result.tables().items() if len(df)}
        files = []
        if result.data.is_volume:
            for i, (name, m) in enumerate(result.models.items()):
                stem = _UNSAFE.sub("_", name).strip("._") or f"model{i}"
                for k in range(len(m.glm.t)):
                    img = result.data.to_image(m.glm.t[k])
                    path = context.output / "maps" / f"{i:02d}-{stem}_pattern{k}_t.nii.gz"
                    files.append(atomic_write(path, lambda p, img=img: img.to_filename(str(p))))
        shown = result.tables()
        section = Section("Patterns and networks", "Representative temporal patterns of MLP neurons, their maps "
                          "and the functional network each is assigned to (permutation null, FDR).",
                          list(result.figures().items()),
                          [(k, shown[k]) for k in ("assignments", "metrics", "consistency", "recovery")
                           if k in shown and len(shown[k])])
        return AnalysisOutput(tables=tables, sections=[section], subtitle=", ".join(config.models), files=files)


ORGANIZATION = Organization()
