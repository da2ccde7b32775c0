"""The context experiment.

Attention density, MLP-input intrinsic dimension and linear-region bounds per layer, for the same questions with and
without added context, next to the model's exact-match accuracy.

Entry point: :func:`run_geometry` with a :class:`GeometryConfig` → :class:`GeometryResult` (tidy tables).

Intrinsic dimension is estimated per (model, condition, layer) on the pooled MLP inputs of all prompts of
that condition (every token of every prompt, or only the shared question tokens with
``token_scope="question"``), de-duplicated (in causal models, tokens with identical prefixes such as
``<s> Question:`` give identical vectors) and subsampled with ``seed`` to the *same* number of points in
every condition and layer of a model (the smallest available, at most ``max_points``), because the
estimates depend on the number of points.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from brainlike.analyses.geometry.attention import ATTENTION_MEASURES
from brainlike.analyses.geometry.capture import measure_prompts
from brainlike.analyses.geometry.intrinsic_dimension import MIN_POINTS, estimate_intrinsic_dimension, prepare_points
from brainlike.analyses.geometry.linear_regions import integer_dimension, log10_linear_region_bound
from brainlike.analyses.geometry.modules import attention_heads, mlp_modules, mlp_width
from brainlike.analyses.geometry.questions import Question, build_prompt, exact_match, generate_answer, load_questions
from brainlike.config import RUN_FIELDS, read_yaml_mapping, validate_config
from brainlike.errors import BrainlikeError
from brainlike.models.loading import LoadedModel, load_model


class GeometryConfig(BaseModel):
    """Settings of the geometry / context experiment (all have defaults; unknown keys are errors).

    Attributes
    ----------
    models : list[str]
        registered names, local folders or hub ids.
    questions : str | None
        a JSON / JSON-lines questions file (see :func:`load_questions`); ``None`` = built-in set.
    n_questions : int | None
        use a seeded random subset of this many questions (``None`` = all).
    conditions : list[Literal['none', 'passage', 'fewshot']]
        context variants among ``none``, ``passage``, ``fewshot``.
    n_shots : int
        solved examples in the ``fewshot`` prefix.
    density_threshold : float
        absolute attention weight above which an entry is an edge.
    relative_threshold : float
        edge when the weight is at least this multiple of its row's uniform weight.
    estimators : list[Literal['twonn', 'mle']]
        intrinsic-dimension estimators (``twonn``, ``mle``).
    mle_neighbors : int
        neighbourhood size of the MLE estimator.
    max_points : int
        most points per intrinsic-dimension estimate.
    token_scope : Literal['all', 'question'] | None
        pool ``all`` tokens of each prompt, or only the tokens of the ``question`` text (the same
        text in every condition; template words and context excluded).
    region_rounding : Literal['ceil', 'round', 'floor']
        how a fractional dimension becomes the integer ``d`` of the region bound.
    accuracy : bool
        greedy-generate answers and score exact match (causal models only).
    max_new_tokens : int
        tokens generated per answer.
    dtype, device : Literal['float32', 'float16', 'bfloat16'] and str
        model loading.
    mlp_path : str | None
        dotted MLP module template (``"model.layers.{i}.mlp"``) for unknown architectures.
    seed : int
        seeds question subsets, few-shot picks and point subsamples.
    progress : bool
        show progress bars.
    task : Literal['questions', 'arithmetic']
        ``questions`` (the question set above, ``conditions``) or ``arithmetic`` (generated problems
        with ``shots`` worked examples and length-matched ``controls``; see
        :mod:`brainlike.analyses.geometry.reasoning`). ``n_questions`` is then the number of generated
        problems (default 100) and ``token_scope`` defaults to ``question``.
    shots : list[int]
        worked examples per context (arithmetic task).
    controls : list[Literal['irrelevant', 'shuffled']]
        length-matched control contexts for each ``shots > 0``: ``irrelevant`` (neutral text of
        the same token length), ``shuffled`` (the same examples with wrong answers).
    difficulties : list[int]
        difficulty levels of the generated problems (0 = bare sums, 1-3 = word-problem steps).
    n_bootstrap : int
        bootstrap draws over questions for the CIs (permutation nulls use half as many, >= 20).
    late_from : float
        layers with relative depth above this are the "late" layers of the chain.
    tokens_per_question : int
        question tokens per question in each intrinsic-dimension estimate (arithmetic
        task; the same in the point estimate, the bootstrap draws and every condition).
    batch_size : int
        prompts per right-padded forward pass (arithmetic task, causal models; 1 = one at a time). Each
        prompt still gets the numbers of its own pass (see :func:`capture_batch`).
    """

    model_config = ConfigDict(extra="forbid")

    models: list[str] = Field(default_factory=lambda: ["stories260k"], min_length=1)
    questions: str | None = None
    n_questions: int | None = Field(default=None, ge=2)
    conditions: list[Literal["none", "passage", "fewshot"]] = Field(
        default_factory=lambda: ["none", "passage", "fewshot"], min_length=1)
    n_shots: int = Field(default=3, ge=1)
    density_threshold: float = Field(default=0.01, ge=0.0, lt=1.0)
    relative_threshold: float = Field(default=1.0, gt=0.0)
    estimators: list[Literal["twonn", "mle"]] = Field(default_factory=lambda: ["twonn", "mle"], min_length=1)
    mle_neighbors: int = Field(default=20, ge=3)
    max_points: int = Field(default=2000, ge=MIN_POINTS)
    token_scope: Literal["all", "question"] | None = None
    region_rounding: Literal["ceil", "round", "floor"] = "ceil"
    accuracy: bool = True
    max_new_tokens: int = Field(default=5, ge=1, le=64)
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    device: str = "cpu"
    mlp_path: str | None = None
    seed: int = 0
    progress: bool = True
    task: Literal["questions", "arithmetic"] = "questions"
    shots: list[int] = Field(default_factory=lambda: [0, 1, 2, 4, 8], min_length=1)
    controls: list[Literal["irrelevant", "shuffled"]] = Field(default_factory=lambda: ["irrelevant", "shuffled"])
    difficulties: list[int] = Field(default_factory=lambda: [0, 1, 2, 3], min_length=1)
    n_bootstrap: int = Field(default=100, ge=10)
    late_from: float = Field(default=2 / 3, ge=0.0, lt=1.0)
    tokens_per_question: int = Field(default=4, ge=1)
    batch_size: int = Field(default=8, ge=1)

    @field_validator("shots")
    @classmethod
    def _shots(cls, value: list[int]) -> list[int]:
        if any(k < 0 or k > 8 for k in value):
            raise ValueError(f"shots must be between 0 and 8, got {value}")
        return sorted(set(value))

    @field_validator("difficulties")
    @classmethod
    def _difficulties(cls, value: list[int]) -> list[int]:
        if any(d not in (0, 1, 2, 3) for d in value):
            raise ValueError(f"difficulties must be among 0, 1, 2, 3, got {value}")
        return sorted(set(value))

    @property
    def scope(self) -> str:
        """The token scope in effect: ``token_scope``, or its default for the task."""
        return self.token_scope or ("question" if self.task == "arithmetic" else "all")

    @field_validator("conditions", "estimators", "models", "controls")
    @classmethod
    def _unique(cls, value: list) -> list:
        if len(set(value)) != len(value):
            raise ValueError(f"entries must be unique, got {value}")
        return value

    @classmethod
    def parse(cls, data: GeometryConfig | dict | str | Path) -> GeometryConfig:
        """A config from itself, a dict, or a YAML file (flat, or under a top-level ``geometry:`` key).

        Raises
        ------
        BrainlikeError
            the file is missing or a setting is invalid (the message names it).
        """
        if isinstance(data, GeometryConfig):
            return data
        source = "geometry config"
        if isinstance(data, (str, Path)):
            source = str(data)
            data = read_yaml_mapping(Path(data).expanduser())
        if not isinstance(data, dict):
            raise BrainlikeError(f"{source}: expected a mapping of settings")
        if set(data) == {"geometry"}:
            data = data["geometry"]
        # a `brainlike run` spec's own fields
        data = {k: v for k, v in data.items() if k not in RUN_FIELDS or k in cls.model_fields}
        return validate_config(cls, data, source=source, what="geometry config")


@dataclass
class GeometryResult:
    """Tidy tables of the geometry experiment (one row per observation).

    Attributes
    ----------
    attention_prompts : pd.DataFrame
        one row per (model, condition, question, layer, head): ``model, condition,
        question_id, layer, relative_layer, head, n_tokens, density, relative_density, entropy`` (nats)
        ``, normalized_entropy, effective_density``.
    attention : pd.DataFrame
        the same measures averaged over prompts, one row per (model, condition, layer, head),
        plus ``n_prompts``.
    intrinsic_dimension : pd.DataFrame
        one row per (model, condition, layer, estimator): ``intrinsic_dimension``
        (dimensions), ``n_points``, ``ambient_dim`` (hidden size), ``token_scope``.
    linear_regions : pd.DataFrame
        one row per (model, condition, layer, estimator): ``intrinsic_dimension``,
        ``dim_used`` (integer d), ``width`` (MLP units n), ``log10_regions`` (log10 of
        sum_{i<=d} C(n, i)), ``log10_regions_ambient`` (d = hidden size), ``log10_regions_max`` (n log10 2).
    accuracy : pd.DataFrame
        one row per (model, condition, question): ``category, n_tokens, answer, generated,
        correct`` (causal models only).
    models : pd.DataFrame
        one row per model: ``kind, n_layers, n_heads, hidden_size, mlp_width, fingerprint``.
    config : dict
        the settings used (JSON-serialisable dict).
    notes : list[str]
        human-readable remarks (e.g. accuracy skipped for encoders).
    """

    attention_prompts: pd.DataFrame
    attention: pd.DataFrame
    intrinsic_dimension: pd.DataFrame
    linear_regions: pd.DataFrame
    accuracy: pd.DataFrame
    models: pd.DataFrame
    config: dict
    notes: list[str] = field(default_factory=list)

    TABLES = ("attention_prompts", "attention", "intrinsic_dimension", "linear_regions", "accuracy", "models")

    def accuracy_summary(self) -> pd.DataFrame:
        """One row per (model, condition): ``n_questions, n_correct, accuracy`` (share correct)."""
        if self.accuracy.empty:
            return pd.DataFrame(columns=["model", "condition", "n_questions", "n_correct", "accuracy"])
        g = self.accuracy.groupby(["model", "condition"], sort=False)["correct"]
        return pd.DataFrame({"n_questions": g.size(), "n_correct": g.sum().astype(int),
                             "accuracy": g.mean().astype(float)}).reset_index()

    def layer_measures(self) -> pd.DataFrame:
        """Long table of per-layer measures: one row per (model, condition, layer, measure): ``value``.

        Measures: the attention measures averaged over heads and prompts, ``id_<estimator>`` and
        ``log10_regions_<estimator>``.
        """
        keys = ["model", "condition", "layer", "relative_layer"]
        att = self.attention.groupby(keys, sort=False)[list(ATTENTION_MEASURES)].mean().reset_index()
        parts = [att.melt(id_vars=keys, var_name="measure", value_name="value")]
        for table, column, prefix in ((self.intrinsic_dimension, "intrinsic_dimension", "id_"),
                                      (self.linear_regions, "log10_regions", "log10_regions_")):
            if not table.empty:
                t = table[keys + ["estimator", column]].rename(columns={column: "value"})
                t["measure"] = prefix + t.pop("estimator")
                parts.append(t)
        return pd.concat(parts, ignore_index=True)

    def context_effect(self, baseline: str = "none") -> pd.DataFrame:
        """Change of every per-layer measure with context.

        One row per (model, condition ≠ baseline, layer, measure): ``value``, ``baseline_value``, ``change`` (value −
        baseline_value).
        """
        long = self.layer_measures()
        if baseline not in set(long["condition"]):
            raise BrainlikeError(f"baseline condition {baseline!r} was not run (conditions: "
                                 f"{sorted(set(long['condition']))})")
        keys = ["model", "layer", "relative_layer", "measure"]
        base = long[long["condition"] == baseline][keys + ["value"]].rename(columns={"value": "baseline_value"})
        out = long[long["condition"] != baseline].merge(base, on=keys, how="inner")
        out["change"] = out["value"] - out["baseline_value"]
        return out.reset_index(drop=True)

    def figures(self) -> dict:
        """The standard figures: ``{name: matplotlib Figure}``."""
        from brainlike.analyses.geometry import plots

        figs = {"attention_density": plots.plot_attention_density(self.attention),
                "attention_effective_density": plots.plot_attention_density(self.attention,
                                                                            measure="effective_density"),
                "intrinsic_dimension": plots.plot_intrinsic_dimension(self.intrinsic_dimension),
                "linear_regions": plots.plot_linear_regions(self.linear_regions)}
        if not self.accuracy.empty:
            figs["accuracy"] = plots.plot_context_accuracy(self.accuracy)
        return figs

    def save(self, folder: str | Path) -> Path:
        """Write every table as ``<name>.parquet`` and ``config.json`` (settings + notes) into ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name in self.TABLES:
            getattr(self, name).to_parquet(folder / f"{name}.parquet", index=False)
        (folder / "config.json").write_text(json.dumps({"config": self.config, "notes": self.notes}, indent=2))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> GeometryResult:
        """Read a result written by :meth:`save`."""
        folder = Path(folder)
        if not (folder / "config.json").exists():
            raise BrainlikeError(f"{folder} holds no saved geometry result (config.json missing)")
        meta = json.loads((folder / "config.json").read_text())
        tables = {name: pd.read_parquet(folder / f"{name}.parquet") for name in cls.TABLES}
        return cls(**tables, config=meta["config"], notes=list(meta.get("notes", [])))


def summarize_attention(prompts_table: pd.DataFrame) -> pd.DataFrame:
    """Average the per-prompt attention measures over prompts.

    One row per (model, condition, layer, head) with the mean of every measure and ``n_prompts``.
    """
    keys = ["model", "condition", "layer", "relative_layer", "head"]
    g = prompts_table.groupby(keys, sort=False)
    out = g[list(ATTENTION_MEASURES)].mean()
    out["n_prompts"] = g.size()
    return out.reset_index()


def _select_questions(config: GeometryConfig) -> list[Question]:
    questions = load_questions(config.questions)
    if config.n_questions is not None and config.n_questions < len(questions):
        rng = np.random.default_rng(config.seed)
        keep = np.sort(rng.choice(len(questions), size=config.n_questions, replace=False))
        # few-shot examples are drawn from the whole set, so a subset keeps its prompts
        return [questions[i] for i in keep] + [q for i, q in enumerate(questions) if i not in set(keep)]
    return questions


def _run_model(lm: LoadedModel, config: GeometryConfig, questions: list[Question], n_asked: int,
               notes: list[str]) -> dict[str, pd.DataFrame]:
    modules = mlp_modules(lm.model, lm.n_layers, config.mlp_path)
    width = mlp_width(modules[0], lm.hidden_size, lm.model.config)
    n_heads = attention_heads(lm.model)
    asked = questions[:n_asked]
    attention, points = [], {}
    for condition in config.conditions:
        built = [build_prompt(questions, i, condition, config.n_shots, config.seed) for i in range(n_asked)]
        spans = [s for _, s in built] if config.scope == "question" else None
        geo = measure_prompts(lm, [p for p, _ in built], scope_spans=spans, threshold=config.density_threshold,
                              relative_threshold=config.relative_threshold, mlp_path=config.mlp_path,
                              progress=config.progress, desc=f"{lm.name} {condition}")
        t = geo.attention
        t.insert(0, "question_id", [asked[p].id for p in t["prompt"]])
        t.insert(0, "condition", condition)
        t.insert(0, "model", lm.name)
        t["relative_layer"] = t["layer"] / lm.n_layers
        attention.append(t.drop(columns="prompt"))
        points[condition] = [prepare_points(x, None, config.seed) for x in geo.points]

    n_common = min(config.max_points, min(len(x) for pts in points.values() for x in pts))
    if n_common < MIN_POINTS:
        raise BrainlikeError(f"{lm.name}: only {n_common} distinct token vectors in some condition/layer; "
                             f"intrinsic dimension needs {MIN_POINTS} (use more questions or token_scope='all')")
    id_rows, region_rows = [], []
    for condition, per_layer in points.items():
        for layer, X in enumerate(per_layer, start=1):
            for est in config.estimators:
                d = estimate_intrinsic_dimension(X, est, max_points=n_common, seed=config.seed + layer,
                                                 deduplicate=False, n_neighbors=config.mle_neighbors)
                base = {"model": lm.name, "condition": condition, "layer": layer,
                        "relative_layer": layer / lm.n_layers, "estimator": est}
                id_rows.append({**base, "intrinsic_dimension": d, "n_points": n_common,
                                "ambient_dim": lm.hidden_size, "token_scope": config.scope})
                dim_used = min(integer_dimension(d, config.region_rounding), width)
                region_rows.append({**base, "intrinsic_dimension": d, "dim_used": dim_used, "width": width,
                                    "log10_regions": log10_linear_region_bound(width, d, config.region_rounding),
                                    "log10_regions_ambient": log10_linear_region_bound(width, lm.hidden_size),
                                    "log10_regions_max": width * float(np.log10(2.0))})

    acc_rows = []
    if config.accuracy and lm.kind == "causal":
        for condition in config.conditions:
            for i, q in enumerate(asked):
                prompt, _ = build_prompt(questions, i, condition, config.n_shots, config.seed)
                generated = generate_answer(lm, prompt, config.max_new_tokens)
                acc_rows.append({"model": lm.name, "condition": condition, "question_id": q.id,
                                 "category": q.category, "n_tokens": len(lm.tokenizer(prompt)["input_ids"]),
                                 "answer": q.answer, "generated": generated,
                                 "correct": exact_match(generated, q.answers)})
    elif config.accuracy:
        notes.append(f"{lm.name} is an encoder: no answers generated, accuracy not measured")
    model_row = {"model": lm.name, "kind": lm.kind, "n_layers": lm.n_layers, "n_heads": n_heads,
                 "hidden_size": lm.hidden_size, "mlp_width": width, "fingerprint": lm.fingerprint}
    return {"attention_prompts": pd.concat(attention, ignore_index=True), "intrinsic_dimension": pd.DataFrame(id_rows),
            "linear_regions": pd.DataFrame(region_rows), "accuracy": pd.DataFrame(acc_rows),
            "models": pd.DataFrame([model_row])}


_ACCURACY_COLUMNS = ["model", "condition", "question_id", "category", "n_tokens", "answer", "generated", "correct"]


def run_geometry(config: GeometryConfig | dict | str | Path,
                 models: dict[str, LoadedModel] | None = None):
    """Run the geometry / context experiment for every model of ``config``.

    Parameters
    ----------
    config : GeometryConfig | dict | str | Path
        a :class:`GeometryConfig`, a dict of its fields, or a YAML file.
    models : dict[str, LoadedModel] | None
        already loaded models by name (optional; others are loaded with eager attention).

    Returns
    -------
    GeometryResult or TaskGeometryResult
        :class:`GeometryResult` with per-layer tables for every condition, or for ``task: arithmetic`` a
        :class:`~brainlike.analyses.geometry.reasoning.TaskGeometryResult`.
    """
    config = GeometryConfig.parse(config)
    if config.task == "arithmetic":
        from brainlike.analyses.geometry.reasoning import run_arithmetic_geometry

        return run_arithmetic_geometry(config, models)
    questions = _select_questions(config)
    n_asked = config.n_questions or len(questions)
    notes: list[str] = []
    parts: dict[str, list[pd.DataFrame]] = {}
    for name in config.models:
        lm = (models or {}).get(name) or load_model(name, dtype=config.dtype, device=config.device,
                                                    attn_implementation="eager")
        for key, table in _run_model(lm, config, questions, n_asked, notes).items():
            parts.setdefault(key, []).append(table)
    tables = {k: pd.concat([t for t in v if not t.empty] or [pd.DataFrame()], ignore_index=True)
              for k, v in parts.items()}
    if tables["accuracy"].empty:
        tables["accuracy"] = pd.DataFrame(columns=_ACCURACY_COLUMNS)
    return GeometryResult(attention_prompts=tables["attention_prompts"],
                          attention=summarize_attention(tables["attention_prompts"]),
                          intrinsic_dimension=tables["intrinsic_dimension"], linear_regions=tables["linear_regions"],
                          accuracy=tables["accuracy"], models=tables["models"],
                          config=config.model_dump(mode="json"), notes=notes)
