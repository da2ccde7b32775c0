"""Output folders: nothing is written outside the output folder; read-only / file-as-parent folders (output,
demo, feature cache, organization, skills) fail at once with one clear sentence, not a PermissionError.

We run as root, so read-only folders are simulated: ``os.open`` / ``os.mkdir`` raise PermissionError for
every path under the folder (the same error a read-only folder gives), or a file stands where a parent
folder should be. Commands go through typer's CliRunner.
"""
from __future__ import annotations

import errno
import os
import shutil
import socket
from pathlib import Path

import pandas as pd
import pytest
import yaml

from brainlike.errors import BrainlikeError
from brainlike.fileio import TMP_MARK, ensure_writable_dir

pytestmark = pytest.mark.usefixtures("single_thread")




@pytest.fixture()
def readonly(monkeypatch):
    """``readonly(folder)``: creating or opening for writing anything under ``folder`` raises PermissionError."""
    real_open, real_mkdir = os.open, os.mkdir
    frozen: list[Path] = []

    def under(path) -> bool:
        p = Path(os.fsdecode(path)).absolute()
        return any(p == f or f in p.parents for f in frozen)

    def fake_open(path, flags, *a, **kw):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and under(path):
            raise PermissionError(errno.EACCES, "Permission denied", os.fsdecode(path))
        return real_open(path, flags, *a, **kw)

    def fake_mkdir(path, *a, **kw):
        if under(path):
            raise PermissionError(errno.EACCES, "Permission denied", os.fsdecode(path))
        return real_mkdir(path, *a, **kw)

    monkeypatch.setattr(os, "open", fake_open)
    monkeypatch.setattr(os, "mkdir", fake_mkdir)

    def freeze(folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        frozen.append(folder.absolute())
        return folder

    return freeze


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_ensure_writable_dir(tmp_path, readonly):
    out = ensure_writable_dir(tmp_path / "a" / "b")
    assert out.is_dir() and not [p for p in out.iterdir()]     # the probe file is gone
    (tmp_path / "file").write_text("x")
    with pytest.raises(BrainlikeError, match="is a file"):
        ensure_writable_dir(tmp_path / "file" / "out", "demo output folder")
    ro = readonly(tmp_path / "ro")
    with pytest.raises(BrainlikeError, match=rf"cannot write in the skills output folder {ro}: permission denied"):
        ensure_writable_dir(ro, "skills output folder")
    with pytest.raises(BrainlikeError, match="cannot create the output folder .*permission denied"):
        ensure_writable_dir(ro / "sub")
    assert not any(TMP_MARK in p.name for p in tmp_path.rglob("*"))


# ------------------------------------------------------------------------------------------------ organization
def _org_spec(tmp_path: Path, model: str, output: Path | None) -> Path:
    spec = {"models": [model], "stimulus": {"source": "builtin:aesop", "n_words": 150},
            "patterns": {"n_patterns": 3, "n_epochs": 3}, "networks": {"n_permutations": 60},
            "consistency": {"seeds": [], "halves": False},
            "data": {"kind": "simulated", "n_groups": 2, "n_networks": 3, "seed": 0}}
    if output is not None:
        spec["output"] = str(output)
    path = tmp_path / "org.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.mark.slow
def test_organization_with_a_model_folder_writes_only_inside_out(tmp_path, shared_data, monkeypatch, run_cli):
    model = tmp_path / "models" / "stories260k"
    shutil.copytree(shared_data / "models" / "stories260k", model)
    monkeypatch.setenv("BRAINLIKE_CACHE", str(tmp_path / "cache"))
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    spec_out, out = tmp_path / "spec-out", tmp_path / "out"
    spec = _org_spec(tmp_path, str(model), spec_out)
    before = _tree(tmp_path)
    code, text, exc = run_cli("organization", spec, "--out", out)
    assert code == 0, (text, exc)
    new = _tree(tmp_path) - before
    outside = {p for p in new if not p.startswith(("out", "cache"))}
    assert outside == set()                                  # not next to the model, not the spec's output:
    assert not spec_out.exists() and not list(work.iterdir())  # ... once, in --out only
    maps = sorted(p.name for p in (out / "maps").iterdir())
    stem = str(model).strip("/").replace("/", "_")
    assert maps == [f"{stem}_pattern{k}_t.nii.gz" for k in range(3)]
    import nibabel as nib

    img = nib.load(out / "maps" / maps[0])
    assert img.shape == (12, 12, 12) and float(abs(img.get_fdata()).max()) > 0
    figs = {p.name for p in (out / "figures").iterdir()}
    assert f"patterns_{stem}.png" in figs and "metrics.png" in figs
    assert (out / "report.html").exists() and (out / "spec.yaml").exists()
    # without --out the spec's output folder is the one
    code, text, exc = run_cli("organization", spec)
    assert code == 0, (text, exc)
    assert sorted(p.name for p in (spec_out / "maps").iterdir()) == maps
    assert not (work / "brainlike-out").exists()


def test_organization_read_only_out_fails_before_any_model_runs(tmp_path, readonly, monkeypatch, run_cli):
    import brainlike.analyses.organization as org

    def never(*a, **kw):
        raise AssertionError("the analysis ran although its output folder is read-only")

    monkeypatch.setattr(org, "run_organization", never)
    ro = readonly(tmp_path / "ro")
    code, text, exc = run_cli("organization", _org_spec(tmp_path, "stories260k", None), "--out", ro / "org")
    assert code == 2 and not isinstance(exc, (PermissionError, AssertionError))
    assert f"cannot create the run output folder {ro / 'org'}: permission denied" in text
    (tmp_path / "afile").write_text("x")
    code, text, _ = run_cli("organization", _org_spec(tmp_path, "stories260k", None), "--out", tmp_path / "afile" / "o")
    assert code == 2 and "is a file" in text


def test_organization_api_writes_nothing(tmp_path, shared_data, monkeypatch):
    """run_organization computes; only `brainlike run` (the runner) writes, below its output folder."""
    from brainlike.analyses.organization import run_organization

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BRAINLIKE_CACHE", str(tmp_path / "cache"))
    cfg = yaml.safe_load(_org_spec(tmp_path, "stories260k", None).read_text())
    before = _tree(tmp_path)
    run_organization(cfg, progress=False)
    assert {p for p in _tree(tmp_path) - before if not p.startswith("cache")} == set()


def test_organization_save_refuses_paths_outside_out(tmp_path):
    from brainlike.analyses.organization.run import _file_stems
    from brainlike.pipelines.organization import _inside

    stems = _file_stems(["/abs/model", "abs/model", "../../etc", "a b/c:d"])
    assert stems["/abs/model"] == "abs_model" and stems["abs/model"].startswith("abs_model-")
    assert stems["../../etc"] == "etc" and stems["a b/c:d"] == "a_b_c_d"
    assert all("/" not in s for s in stems.values())
    with pytest.raises(BrainlikeError, match="outside the output folder"):
        _inside(tmp_path / "out", "maps", "../../x.nii.gz")


# ------------------------------------------------------------------------------------------------ skills
def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _skills_spec(tmp_path: Path, **skillmix) -> Path:
    mix = {"generator": {"kind": "openai", "base_url": f"http://127.0.0.1:{_dead_port()}/v1", "model": "m",
                         "timeout_s": 1, "max_retries": 0, "backoff_s": 0},
           "ks": [1, 2], "n_per_k": 2, "progress": False, "n_boot": 100, **skillmix}
    path = tmp_path / "skills.yaml"
    path.write_text(yaml.safe_dump({"analysis": "skillmix", "skillmix": mix}))
    return path


def test_skillmix_with_an_unreachable_endpoint_exits_nonzero(tmp_path, run_cli):
    out = tmp_path / "out"
    code, text, exc = run_cli("skillmix", _skills_spec(tmp_path, stop_after_failures=0), "--out", out)
    assert code == 1, (text, exc)
    assert "done" not in text.split("error:")[0]
    assert "4 of 4 Skill-Mix items failed (4x generation failed: cannot reach http://127.0.0.1:" in text
    assert "Connection refused" in text and "run the same command again" in text
    items = pd.read_parquet(out / "skillmix" / "items.parquet")
    assert (items["status"] == "error").all() and len(items) == 4   # the log is kept for the rerun
    assert _tree(tmp_path) - {"skills.yaml"} <= {p for p in _tree(tmp_path) if p.startswith("out")}


def test_skillmix_stops_early_on_a_dead_endpoint(tmp_path, run_cli):
    code, text, exc = run_cli("skillmix", _skills_spec(tmp_path, n_per_k=10, stop_after_failures=3), "--out",
                              tmp_path / "out")
    assert code == 2, (text, exc)
    assert "stopped the Skill-Mix run after 3 failed items in a row (17 of 20 not tried)" in text
    assert "cannot reach" in text and "Traceback" not in text
    records = (tmp_path / "out" / "skillmix" / "records.jsonl").read_text().splitlines()
    assert len(records) == 3


def test_skillmix_partial_failures_are_counted(tmp_path):
    from brainlike.analyses.skills import ChatServer, Fault, ScriptedClient, run_skillmix

    with ChatServer(ScriptedClient(lambda m: "Answer: Bees hum.\nExplanation: x.")) as srv:
        srv.add_faults(Fault("error", status=400))        # a client error is not retried: one item fails
        grader = ScriptedClient(lambda m: '{"skills": {}, "topic": 1, "sentence_limit": 1, "makes_sense": 1}')
        res = run_skillmix({"generator": {"kind": "openai", "base_url": srv.base_url, "max_retries": 0},
                            "ks": [1], "n_per_k": 3, "output_dir": str(tmp_path), "progress": False,
                            "n_boot": 100}, grader=grader)
    assert res.n_failed == 1
    assert res.failure_message().startswith("1 of 3 Skill-Mix items failed (1x generation failed: HTTP 400")


def test_skills_bad_settings_are_one_sentence(tmp_path, run_cli):
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump({"analysis": "skillmix", "skillmix": {"generator": {"kind": "openai"}, "ks": [0]}}))
    code, text, exc = run_cli("skillmix", spec, "--out", tmp_path / "out")
    assert code == 2 and "invalid skillmix spec" in text and "skillmix.generator" in text
    assert "skillmix.ks" in text and not isinstance(exc, ValueError)


def test_skills_read_only_out(tmp_path, readonly, run_cli):
    ro = readonly(tmp_path / "ro")
    code, text, exc = run_cli("skillmix", _skills_spec(tmp_path), "--out", ro)
    assert code == 2 and not isinstance(exc, PermissionError)
    assert f"cannot write in the run output folder {ro}: permission denied" in text
    spec = tmp_path / "theory.yaml"
    spec.write_text(yaml.safe_dump({"analysis": "skill-theory", "theory": {"n_scales": 4, "simulate": False}}))
    code, text, _ = run_cli("skill-theory", spec, "--out", ro / "sub")
    assert code == 2 and "cannot create the run output folder" in text
    from brainlike.analyses.skills import run_theory

    with pytest.raises(BrainlikeError, match="skill-theory output folder"):
        run_theory({"n_scales": 4, "simulate": False, "kprimes": [1], "progress": False}).save(ro / "theory")


# ------------------------------------------------------------------------------------------- demo and cache
def test_demo_read_only_out_fails_before_loading_the_model(tmp_path, readonly, monkeypatch, run_cli):
    import brainlike.models as models

    monkeypatch.setattr(models, "load_model", lambda *a, **k: (_ for _ in ()).throw(AssertionError("loaded")))
    ro = readonly(tmp_path / "ro")
    code, text, exc = run_cli("demo", "--out", ro)
    assert code == 2 and not isinstance(exc, (PermissionError, AssertionError))
    assert f"cannot write in the demo output folder {ro}: permission denied" in text


def test_feature_cache_folder_that_cannot_be_written(tmp_path, monkeypatch, run_cli, readonly, shared_data):
    stim = tmp_path / "s.tsv"
    stim.write_text("word\tonset\toffset\nthe\t0.0\t0.2\ncat\t0.3\t0.5\n")
    (tmp_path / "afile").write_text("x")
    monkeypatch.setenv("BRAINLIKE_CACHE", str(tmp_path / "afile" / "cache"))
    model = shared_data / "models" / "stories260k"
    code, text, exc = run_cli("extract", model, stim, "--out", tmp_path / "f.safetensors")
    assert code == 2 and not isinstance(exc, OSError)
    assert "as the feature cache folder (set $BRAINLIKE_CACHE to a writable folder): it (or a folder above it) " \
           "is a file" in text
    ro = readonly(tmp_path / "rocache")
    monkeypatch.setenv("BRAINLIKE_CACHE", str(ro))
    code, text, exc = run_cli("extract", model, stim, "--out", tmp_path / "f.safetensors")
    assert code == 2 and not isinstance(exc, OSError)
    assert "feature cache folder" in text and "permission denied" in text
    assert not (tmp_path / "f.safetensors").exists()
