"""The context experiment once on SmolLM2-135M (30 layers, GGUF), with two questions."""
from __future__ import annotations

import json

import numpy as np
import pytest

from brainlike.analyses.geometry import load_questions, run_geometry

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.mark.slow
def test_smollm2_context_experiment(smollm2, tmp_path):
    keep = {"capital-france", "spider-legs"}
    items = [{"id": q.id, "question": q.question, "answer": q.answer, "aliases": list(q.aliases),
              "passage": q.passage, "category": q.category,
              "examples": [{"question": a, "answer": b} for a, b in q.examples]}
             for q in load_questions() if q.id in keep]
    path = tmp_path / "two.json"
    path.write_text(json.dumps(items))
    r = run_geometry({"models": ["smollm2-135m"], "questions": str(path), "conditions": ["none", "fewshot"],
                      "progress": False}, models={"smollm2-135m": smollm2})
    model = r.models.iloc[0]
    assert (model["n_layers"], model["n_heads"], model["hidden_size"], model["mlp_width"]) == (30, 9, 576, 1536)
    assert len(r.attention) == 2 * 30 * 9 and (r.attention["n_prompts"] == 2).all()
    ids = r.intrinsic_dimension
    assert len(ids) == 2 * 30 * 2 and set(ids["layer"]) == set(range(1, 31))
    assert np.isfinite(ids["intrinsic_dimension"]).all() and (ids["intrinsic_dimension"] > 0).all()
    assert ids["n_points"].iloc[0] >= 20
    # causal attention spreads over more keys with a longer prompt: the thresholded density falls
    dens = r.attention.groupby("condition")["density"].mean()
    assert dens["fewshot"] < dens["none"]
    # the instruct model answers only after solved examples (greedy, exact match)
    acc = r.accuracy.groupby("condition")["correct"].mean()
    assert len(r.accuracy) == 4
    assert acc["fewshot"] > acc["none"]
