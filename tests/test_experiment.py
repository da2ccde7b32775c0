"""`brainlike run` on a small zoo: store, analyses, planted ordering, HTML report in headless Chromium."""
import os
import shutil

import pytest

from brainlike.errors import BrainlikeError
from brainlike.pipelines.alignment import run_experiment
from brainlike.report.html import Section, check_in_browser, write_report
from brainlike.spec import load_spec, parse_spec

pytestmark = pytest.mark.slow


def _chromium_or_skip():
    if shutil.which("chromium") is None:
        if os.environ.get("CI"):
            pytest.fail("chromium must be installed in CI (.ci/run installs it)")
        pytest.skip("chromium not installed")


def test_spec_errors_name_the_field(tmp_path):
    with pytest.raises(BrainlikeError, match="encoding.n_splits"):
        parse_spec({"models": ["stories260k"], "encoding": {"n_splits": 1}})
    with pytest.raises(BrainlikeError, match="planted"):
        parse_spec({"models": ["stories260k"], "dataset": {"planted": {"gpt9": 1.0}}})
    with pytest.raises(BrainlikeError, match="bogus"):
        parse_spec({"models": ["stories260k"], "bogus": 1})
    assert load_spec("examples/zoo.yaml").models[2].name == "smollm2-135m"


def test_small_zoo_recovers_planted_ordering(tmp_path, shared_data):
    spec = parse_spec({
        "name": "mini-zoo", "output": str(tmp_path / "out"), "models": ["stories260k", "minilm-l6"],
        "stimulus": {"n_words": 600},
        "dataset": {"subjects": 1, "channels_per_region": 10, "planted": {"minilm-l6": 1.0, "stories260k": 0.0},
                    "snr": [0.5, 2.0]},
        "encoding": {"n_permutations": 100, "inner_splits": 3},
        "analyses": {"capability": {"corpus": "shared:inaugural-2009", "max_bytes": 2000},
                     "context": {"windows": [0, 8]}},
    })
    res = run_experiment(spec, progress=False)
    bs = res.tables["brain_scores"].set_index("model")
    assert bs.loc["minilm-l6", "brain_score"] > bs.loc["stories260k", "brain_score"]
    hier = res.tables["hierarchy"].set_index("model")
    assert hier.loc["minilm-l6", "rho"] > 0.3  # later regions ↔ deeper layers, as planted
    # the store answers SQL, and a second run skips finished pieces
    q = res.store.query("SELECT model, count(*) AS n FROM scores GROUP BY model ORDER BY model")
    assert list(q["model"]) == ["minilm-l6", "stories260k"]
    mtime = next((tmp_path / "out" / "results" / "scores").rglob("*.parquet")).stat().st_mtime_ns
    run_experiment(spec, progress=False)
    assert next((tmp_path / "out" / "results" / "scores").rglob("*.parquet")).stat().st_mtime_ns == mtime
    assert set(res.tables["context"]["context"]) == {0, 8}
    _chromium_or_skip()
    check = check_in_browser(res.report)
    assert check["figures"] >= 5 and check["broken"] == 0
    assert check["tables"] >= 5 and check["empty_tables"] == 0
    assert check["errors"] == [] and check["console_errors"] == []


def test_browser_check_detects_script_errors(tmp_path):
    _chromium_or_skip()
    path = write_report([Section("x", "y")], tmp_path / "r.html")
    path.write_text(path.read_text().replace("</body>", "<script>notAFunction();</script></body>"))
    check = check_in_browser(path)
    assert check["errors"] or check["console_errors"]
