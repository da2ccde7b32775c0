"""The encoding package's modules import each other in one direction only (issue 16, item 6)."""
from __future__ import annotations

import ast
import importlib
import pathlib

import brainlike.encoding as encoding

PKG = pathlib.Path(encoding.__file__).parent
#: Allowed layer of every module: a module may import only modules of a lower layer.
LAYERS = {"validation": 0, "metrics": 0, "threads": 1, "folds": 1, "backends": 2, "spectral": 3, "options": 3,
          "estimators": 4, "cv": 5}


def _encoding_imports(path: pathlib.Path) -> set[str]:
    """Modules of brainlike.encoding imported anywhere in ``path`` (function bodies included)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            if name.startswith("brainlike.encoding."):
                out.add(name.split(".")[2])
    return out


def test_every_module_is_layered_and_imports_only_downwards() -> None:
    modules = {p.stem for p in PKG.glob("*.py")} - {"__init__"}
    assert modules == set(LAYERS), "add new encoding modules to LAYERS"
    for mod in modules:
        deps = _encoding_imports(PKG / f"{mod}.py") - {mod}
        assert deps <= set(LAYERS), (mod, deps)
        upward = {d for d in deps if LAYERS[d] >= LAYERS[mod]}
        assert not upward, f"brainlike.encoding.{mod} imports {sorted(upward)} (same or higher layer)"


def test_public_exports_are_stable() -> None:
    for name in ("RidgeCV", "BandedRidgeCV", "DEFAULT_ALPHAS", "cross_validated_encoding", "contiguous_folds",
                 "EncodingResult", "pearson_r", "r2_score", "get_backend", "available_backends", "Backend",
                 "EncodingError"):
        assert name in encoding.__all__ and hasattr(encoding, name)
    # the pre-split homes of the names other code may use still work
    assert importlib.import_module("brainlike.encoding.cv").contiguous_folds is encoding.contiguous_folds
    assert importlib.import_module("brainlike.encoding.backends").EncodingError is encoding.EncodingError
