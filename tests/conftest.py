"""Shared fixtures. Tests never touch the network: HF_HUB_OFFLINE is forced here."""
from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """A fresh brainlike cache per test session (never the user's ~/.cache)."""
    path = tmp_path_factory.mktemp("brainlike-cache")
    old = os.environ.get("BRAINLIKE_CACHE")
    os.environ["BRAINLIKE_CACHE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("BRAINLIKE_CACHE", None)
    else:
        os.environ["BRAINLIKE_CACHE"] = old


@pytest.fixture(scope="session")
def shared_data() -> Path:
    from brainlike.models.registry import shared_data_dir

    path = shared_data_dir()
    if path is None:
        pytest.skip("../shared/data not present (set BRAINLIKE_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def stories260k(shared_data):
    from brainlike.models import load_model

    return load_model("stories260k")


@pytest.fixture(scope="session")
def smollm2():
    """SmolLM2-135M from the PyPI package (always available offline)."""
    from brainlike.models import load_model

    return load_model("smollm2-135m")


@pytest.fixture(scope="session")
def minilm():
    from brainlike.models import load_model

    return load_model("minilm-l6")


@pytest.fixture(scope="session")
def story_text() -> str:
    from brainlike.data import default_story

    return default_story()
