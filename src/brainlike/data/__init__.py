"""Texts shipped with the package (public domain), for demos and tests."""
from __future__ import annotations

from importlib.resources import files


def default_story() -> str:
    """Aesop's fables retold in plain English (public domain), about 1,000 words."""
    return files("brainlike.data").joinpath("aesop.txt").read_text(encoding="utf-8")
