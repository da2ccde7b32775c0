"""Skill-Mix harness: lists, draws, grading parser, intervals, HTTP client/server with faults, resumable runs."""
from __future__ import annotations

import json
import re
import socket
import string
import urllib.request

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from brainlike.analyses.skills import (
    ChatServer,
    ClientConfig,
    ClientError,
    Fault,
    HFChatClient,
    OpenAIChatClient,
    ScriptedClient,
    SkillMixConfig,
    bootstrap_interval,
    count_sentences,
    draw_items,
    generation_messages,
    load_skills,
    load_topics,
    parse_grade,
    run_skillmix,
    summarize_scores,
    wilson_interval,
)
from brainlike.analyses.skills.grading import extract_answer, grading_messages
from brainlike.errors import BrainlikeError

RUBRIC = {"topic", "sentence_limit", "makes_sense"}


# --------------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def hf_client(stories260k):
    return HFChatClient(stories260k)


@pytest.fixture(scope="module")
def hf_server(hf_client):
    """An OpenAI-compatible server on 127.0.0.1 backed by the real stories260k model."""
    with ChatServer(hf_client, model_name="stories260k") as srv:
        yield srv


@pytest.fixture()
def scripted_server():
    servers = []

    def make(fn, name="scripted"):
        srv = ChatServer(ScriptedClient(fn, name=name)).start()
        servers.append(srv)
        return srv

    yield make
    for s in servers:
        s.stop()


def _client_cfg(url: str, **kw) -> ClientConfig:
    base = dict(kind="openai", base_url=url, model="m", max_tokens=24, timeout_s=20.0, max_retries=2, backoff_s=0.02)
    base.update(kw)
    return ClientConfig(**base)


def _skills_in_grade_prompt(messages) -> list[str]:
    prompt = messages[-1]["content"]
    return [s for s in re.findall(r'"([^"]+)": 0 or 1', prompt) if s not in RUBRIC]


# ---------------------------------------------------------------------------------------------- lists, draws
def test_shipped_skill_and_topic_lists():
    skills, topics = load_skills(), load_topics()
    assert len(skills) >= 40 and len(topics) >= 40
    assert len({s.name.lower() for s in skills}) == len(skills)
    assert all(len(s.definition) > 15 and s.example for s in skills)
    assert len({t.lower() for t in topics}) == len(topics)


def test_malformed_lists_name_the_line(tmp_path):
    bad = tmp_path / "skills.txt"
    bad.write_text("# comment\nmetaphor | a comparison | ex\nsimile\n")
    with pytest.raises(BrainlikeError, match="line 3"):
        load_skills(bad)
    bad.write_text("metaphor | a comparison\nMetaphor | again\n")
    with pytest.raises(BrainlikeError, match="line 2.*line 1"):
        load_skills(bad)
    with pytest.raises(BrainlikeError, match="not found"):
        load_topics(tmp_path / "missing.txt")
    tabs = tmp_path / "tabs.txt"
    tabs.write_text("metaphor\tcalling one thing another\tTime is a thief.\n")
    assert load_skills(tabs)[0].example == "Time is a thief."


def test_draws_are_seeded_distinct_extendable_and_uniform():
    skills, topics = load_skills(), load_topics()
    a = draw_items(skills, topics, [1, 2, 3], 10, seed=3)
    assert a == draw_items(skills, topics, [1, 2, 3], 10, seed=3)
    assert a != draw_items(skills, topics, [1, 2, 3], 10, seed=4)
    assert [i for i in a if i.k == 2] == draw_items(skills, topics, [2], 10, seed=3)   # k streams independent
    assert draw_items(skills, topics, [3], 20, seed=3)[:10] == [i for i in a if i.k == 3]   # extendable
    assert all(len(set(i.skill_names)) == i.k for i in a)
    many = draw_items(skills, topics, [3], 3000, seed=0)
    counts = pd.Series([n for i in many for n in i.skill_names]).value_counts().reindex(
        [s.name for s in skills], fill_value=0)
    assert stats.chisquare(counts.to_numpy()).pvalue > 1e-3
    with pytest.raises(BrainlikeError, match="k=99"):
        draw_items(skills, topics, [99], 1)


def test_prompts_carry_skills_topic_and_limit():
    skills, topics = load_skills(), load_topics()
    item = draw_items(skills, topics, [3], 1, seed=1)[0]
    user = generation_messages(item, 2)[-1]["content"]
    assert all(s.name in user and s.definition in user for s in item.skills)
    assert item.topic in user and "at most 2 sentences" in user
    g = grading_messages("Some text.", [(s.name, s.definition) for s in item.skills], item.topic, 2)
    assert _skills_in_grade_prompt(g) == item.skill_names


# ---------------------------------------------------------------------------------------------- grading parser
NAMES = ["metaphor", "self-serving bias", "red herring"]
CASES = {
    "plain": ('{"skills": {"metaphor": 1, "self-serving bias": 0, "red herring": 1}, "topic": 1, '
              '"sentence_limit": 0, "makes_sense": 1}', [1, 0, 1], (1, 0, 1), "json"),
    "fenced_prose_case": ('Sure! Here is my grade:\n```json\n{"skills": {"Metaphor": 1, "Self serving bias": 1, '
                          '"red-herring": 0}, "topic": 1, "sentence_limit": 1, "makes_sense": 1}\n```\nBye',
                          [1, 1, 0], (1, 1, 1), "json"),
    "python_quotes_trailing_commas": ("{'skills': {'metaphor': True, 'self-serving bias': False, 'red herring': "
                                      "'yes',}, 'topic': 'yes', 'sentence_limit': 1, 'makes_sense': 0,}",
                                      [1, 0, 1], (1, 1, 0), "json-repaired"),
    "unquoted_keys": ("{skills: {metaphor: 1, self-serving bias: 0, red herring: 1}, topic: 1, sentence_limit: 1, "
                      "makes_sense: 1}", [1, 0, 1], (1, 1, 1), "json-repaired"),
    "flat_aliases": ('{"metaphor": "used", "self-serving bias": "not used", "red herring": 1, "on topic": true, '
                     '"length": 1, "coherent": "no"}', [1, 0, 1], (1, 1, 0), "json"),
    "list_of_objects": ('{"skills": [{"skill": "metaphor", "used": 1}, {"skill": "self-serving bias", "used": 0}, '
                        '{"name": "red herring", "score": 1}], "topic": 1, "sentence_limit": 1, "makes_sense": 1}',
                        [1, 0, 1], (1, 1, 1), "json"),
    "lines": ("Points:\n- Metaphor: 1\n- self-serving bias: 0 (not present)\n- red herring: yes, clearly\n"
              "- topic: 1\n- sentence limit: 1/1\n- makes sense: 1 point", [1, 0, 1], (1, 1, 1), "lines"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_parse_grade_accepts_common_formats(case):
    text, skills, (topic, limit, sense), method = CASES[case]
    g = parse_grade(text, NAMES)
    assert not g.ungradable, g.reason
    assert [g.skill_points[n] for n in NAMES] == skills
    assert (g.topic, g.sentence_limit, g.makes_sense) == (topic, limit, sense)
    assert g.method == method


@pytest.mark.parametrize("text,reason", [
    ('{"skills": {"metaphor": 1}, "topic": 1, "sentence_limit": 1, "makes_sense": 1}', "self-serving bias"),
    ('{"skills": {"metaphor": 1, "self-serving bias": 0, "red herring": "maybe"}, "topic": 1, '
     '"sentence_limit": 1, "makes_sense": 1}', "red herring"),
    ('{"skills": {"metaphor": 1, "self-serving bias": 0, "red herring": 7}, "topic": 1, "sentence_limit": 1}',
     "makes_sense"),
    ("Once upon a time there was a little dog named Tim. He was happy.", "no JSON"),
    ("", "empty"),
    ('{"skills": {"metaphor": 1, "self-serving', "no JSON"),
])
def test_parse_grade_marks_incomplete_answers_ungradable(text, reason):
    g = parse_grade(text, NAMES)
    assert g.ungradable
    assert reason in g.reason


def test_parse_grade_never_raises_on_junk():
    rng = np.random.default_rng(0)
    alphabet = list(string.printable) + ['{"', '": ', "1", "yes", "metaphor", "}", "[", "]", ":"]
    for _ in range(300):
        text = "".join(rng.choice(alphabet, size=rng.integers(0, 60)))
        g = parse_grade(text, NAMES)
        assert g.ungradable == any(v is None for v in [*g.skill_points.values(), g.topic, g.sentence_limit,
                                                          g.makes_sense])


def test_sentences_and_answer_extraction():
    assert count_sentences("Dr. Smith sailed home. He slept! Did he? Yes") == 4
    assert count_sentences("") == 0
    assert extract_answer("Answer: The sea is a mirror.\nExplanation: metaphor.") == "The sea is a mirror."
    assert extract_answer("no marker here") == "no marker here"
    assert extract_answer("Answer: Bees hum. **Explanation:** a simile.") == "Bees hum."


# ---------------------------------------------------------------------------------------------- intervals
def test_wilson_interval_matches_scipy():
    for s, n in [(0, 5), (3, 10), (10, 10), (47, 120)]:
        ci = stats.binomtest(s, n).proportion_ci(confidence_level=0.95, method="wilson")
        assert wilson_interval(s, n) == pytest.approx((ci.low, ci.high), abs=1e-9)
    assert np.isnan(wilson_interval(0, 0)[0])


def test_bootstrap_interval_against_scipy():
    x = np.random.default_rng(1).uniform(size=60)
    lo, hi = bootstrap_interval(x, n_boot=4000, seed=0)
    ref = stats.bootstrap((x,), np.mean, n_resamples=4000, method="percentile", random_state=0).confidence_interval
    assert lo < x.mean() < hi
    assert lo == pytest.approx(ref.low, abs=0.01) and hi == pytest.approx(ref.high, abs=0.01)
    assert bootstrap_interval(x, seed=5) == bootstrap_interval(x, seed=5)


def test_summary_counts_and_ungradable_policy():
    items = pd.DataFrame({"generator": "g", "grader": "r", "k": [1, 1, 1, 2], "status": ["done"] * 3 + ["error"],
                          "ungradable": [False, False, True, True], "full_marks": [1.0, 0.0, np.nan, np.nan],
                          "all_skills": [1.0, 1.0, np.nan, np.nan], "score": [1.0, 0.5, np.nan, np.nan],
                          "skill_fraction": [1.0, 1.0, np.nan, np.nan]})
    s = summarize_scores(items).set_index(["k", "metric"])
    assert s.loc[(1, "full_marks"), "mean"] == 0.5 and s.loc[(1, "full_marks"), "n"] == 2
    assert s.loc[(1, "full_marks"), "n_ungradable"] == 1 and s.loc[(2, "score"), "n_error"] == 1
    z = summarize_scores(items, ungradable_as_zero=True).set_index(["k", "metric"])
    assert z.loc[(1, "full_marks"), "mean"] == pytest.approx(1 / 3) and z.loc[(1, "full_marks"), "n"] == 3


# --------------------------------------------------------------------------------------- HTTP client + server
def _echo(messages):
    return "echo: " + messages[-1]["content"]


def test_client_retries_server_errors_with_backoff(scripted_server):
    srv = scripted_server(_echo)
    srv.add_faults(Fault("error", status=500), Fault("error", status=503))
    c = OpenAIChatClient(srv.base_url, "m", timeout_s=5, max_retries=3, backoff_s=0.05)
    r = c.chat([{"role": "user", "content": "hi"}], max_tokens=5)
    assert r.text == "echo: hi" and r.attempts == 3
    assert r.latency_s >= 0.05 + 0.1                 # slept 0.05 then 0.1 s between attempts
    assert [q.status for q in srv.requests] == [500, 503, 200]


def test_client_timeout_then_retry(scripted_server):
    srv = scripted_server(_echo)
    srv.add_faults(Fault("delay", seconds=1.5))
    c = OpenAIChatClient(srv.base_url, "m", timeout_s=0.4, max_retries=2, backoff_s=0.01)
    r = c.chat([{"role": "user", "content": "slow"}])
    assert r.text == "echo: slow" and r.attempts == 2


def test_client_retries_garbage_body_and_gives_up(scripted_server):
    srv = scripted_server(_echo)
    srv.add_faults(Fault("garbage"))
    c = OpenAIChatClient(srv.base_url, "m", timeout_s=5, max_retries=1, backoff_s=0.01)
    assert c.chat([{"role": "user", "content": "x"}]).attempts == 2
    srv.add_faults(*[Fault("error", status=500)] * 2)
    with pytest.raises(ClientError, match="HTTP 500.*2 attempts"):
        c.chat([{"role": "user", "content": "x"}])
    srv.clear()
    srv.add_faults(Fault("error", status=400))                     # client errors are not retried
    with pytest.raises(ClientError, match="HTTP 400"):
        c.chat([{"role": "user", "content": "x"}])
    assert len(srv.requests) == 1
    with pytest.raises(ClientError, match="HTTP 400.*messages"):  # the server validates requests
        c.chat([])


def test_client_connection_refused():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    c = OpenAIChatClient(f"http://127.0.0.1:{port}/v1", "m", timeout_s=1, max_retries=1, backoff_s=0.01)
    with pytest.raises(ClientError, match="cannot reach|connection"):
        c.chat([{"role": "user", "content": "x"}])
    with pytest.raises(ClientError, match="base_url"):
        OpenAIChatClient("127.0.0.1:8080", "m")


def test_server_speaks_openai_protocol(hf_server):
    c = OpenAIChatClient(hf_server.base_url, "stories260k", timeout_s=30)
    assert c.list_models() == ["stories260k"]
    req = urllib.request.Request(hf_server.base_url + "/chat/completions", method="POST",
                                 data=json.dumps({"model": "x", "messages": [{"role": "user", "content": "Once"}],
                                                  "max_tokens": 8}).encode(),
                                 headers={"Content-Type": "application/json"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(req, timeout=30) as resp:
        body = json.loads(resp.read())
    assert body["object"] == "chat.completion" and body["model"] == "stories260k"
    assert isinstance(body["choices"][0]["message"]["content"], str)
    assert body["usage"]["completion_tokens"] <= 8


def test_hf_client_is_deterministic_and_truncates(hf_client):
    msgs = [{"role": "user", "content": "Tell me about a cat."}]
    a = hf_client.chat(msgs, max_tokens=12)
    assert a.text == hf_client.chat(msgs, max_tokens=12).text and a.text.strip()
    assert a.usage["completion_tokens"] <= 12
    long = [{"role": "user", "content": "word " * 2000}]
    r = hf_client.chat(long, max_tokens=8)
    assert r.usage["prompt_tokens"] <= hf_client.max_context - 8


# ------------------------------------------------------------------------------------------- Skill-Mix runs
def test_skillmix_run_against_real_local_server(hf_server, tmp_path):
    """k in {1, 2, 3} end to end over HTTP with a real (tiny) model as generator and grader; then resume."""
    before = hf_server.n_chat_requests
    cfg = SkillMixConfig(generator=_client_cfg(hf_server.base_url, model="stories260k"), ks=[1, 2, 3],
                         n_per_k=2, output_dir=tmp_path, progress=False, seed=7, revise=False, code_checks=False)
    first = draw_items(load_skills(), load_topics(), [1], 1, seed=7)[0]
    # the 2nd request (grading of k1-0000) gets a valid grade with prose around it instead of the model's text
    hf_server.add_faults(Fault("delay", seconds=0.0), Fault("text", text="Grade: " + json.dumps(
        {"skills": {first.skill_names[0]: 1}, "topic": 1, "sentence_limit": 0, "makes_sense": 1}) + " Done."))
    res = run_skillmix(cfg)
    assert hf_server.n_chat_requests - before == 12          # 6 generations + 6 gradings
    items = res.items
    first_row = items.set_index("item_id").loc["k1-0000"]
    assert not first_row["ungradable"] and first_row["score"] == pytest.approx(3 / 4)
    assert sorted(items["item_id"]) == ["k1-0000", "k1-0001", "k2-0000", "k2-0001", "k3-0000", "k3-0001"]
    assert (items["status"] == "done").all()
    assert items["response"].str.len().gt(0).all() and items["grade_response"].str.len().gt(0).all()
    assert items["prompt"].str.contains("Answer:").all() and items["grade_prompt"].str.contains("JSON").all()
    # junk grader output is parsed without crashing; whatever is not complete is marked ungradable
    assert (items["ungradable"] == items["score"].isna()).all()
    s = res.summary
    assert sorted(s["k"].unique()) == [1, 2, 3] and (s["n_items"] == 2).all()
    assert set(s["metric"]) == {"full_marks", "all_skills", "score", "skill_fraction"}
    for name in ("records.jsonl", "items.parquet", "skill_points.parquet", "summary.parquet", "config.json"):
        assert (tmp_path / name).exists()
    assert len((tmp_path / "records.jsonl").read_text().strip().splitlines()) == 6
    back = pd.read_parquet(tmp_path / "items.parquet")
    assert list(back["item_id"]) == list(items["item_id"]) and list(back["skills"][0]) == items["skills"][0]
    assert len(pd.read_parquet(tmp_path / "skill_points.parquet")) == 1 * 2 + 2 * 2 + 3 * 2
    again = run_skillmix(cfg)
    assert (again.n_reused, again.n_new) == (6, 0)
    assert hf_server.n_chat_requests - before == 12          # nothing redone
    paths = res.save_figures()
    assert sorted(p.name for p in paths) == ["skillmix_scores.png", "skillmix_skill_usage.png"]
    assert all(p.stat().st_size > 1000 for p in paths)


def _planted_grader(calls: list):
    """Gives full marks except: the first skill of every k=3 item fails; the 2nd call's answer is malformed."""

    def grade(messages):
        calls.append(messages)
        names = _skills_in_grade_prompt(messages)
        if len(calls) == 2:
            return "I think this text is rather good {but not JSON"
        pts = {n: int(not (len(names) == 3 and i == 0)) for i, n in enumerate(names)}
        return "Here you go:\n" + json.dumps({"skills": pts, "topic": 1, "sentence_limit": 1, "makes_sense": 1})

    return grade


def test_skillmix_planted_grades_faults_and_intervals(hf_server, scripted_server, tmp_path):
    calls: list = []
    grader_srv = scripted_server(_planted_grader(calls), name="planted-grader")
    grader_srv.add_faults(Fault("error", status=500), Fault("garbage"))     # first grading needs 3 attempts
    cfg = SkillMixConfig(generator=_client_cfg(hf_server.base_url), grader=_client_cfg(grader_srv.base_url),
                         ks=[1, 2, 3], n_per_k=2, output_dir=tmp_path, progress=False, revise=False,
                         code_checks=False)
    res = run_skillmix(cfg)
    it = res.items.set_index("item_id")
    assert it.loc["k1-0000", "grade_attempts"] == 3 and it.loc["k1-0001", "grade_attempts"] == 1
    assert bool(it.loc["k1-0001", "ungradable"]) and "JSON" in it.loc["k1-0001", "ungradable_reason"]
    s = res.summary.set_index(["k", "metric"])
    assert s.loc[(1, "full_marks"), "n"] == 1 and s.loc[(1, "full_marks"), "n_ungradable"] == 1
    assert s.loc[(2, "full_marks"), "mean"] == 1.0 and s.loc[(3, "full_marks"), "mean"] == 0.0
    assert s.loc[(3, "skill_fraction"), "mean"] == pytest.approx(2 / 3)
    assert s.loc[(3, "score"), "mean"] == pytest.approx(5 / 6)
    ci = stats.binomtest(2, 2).proportion_ci(method="wilson")
    assert (s.loc[(2, "full_marks"), "ci_low"], s.loc[(2, "full_marks"), "ci_high"]) == pytest.approx(
        (ci.low, ci.high))
    sp = res.skill_points
    k3 = sp[(sp["k"] == 3)]
    assert k3.groupby("item_id")["used"].apply(list).tolist() == [[0.0, 1.0, 1.0]] * 2


def test_interrupted_run_resumes_without_redoing_items(hf_server, tmp_path):
    n = {"calls": 0}

    def flaky(messages):
        n["calls"] += 1
        if n["calls"] == 3:
            raise KeyboardInterrupt
        names = _skills_in_grade_prompt(messages)
        return json.dumps({"skills": {x: 1 for x in names}, "topic": 1, "sentence_limit": 1, "makes_sense": 1})

    grader = ScriptedClient(flaky, name="scripted-grader")
    cfg = SkillMixConfig(generator=_client_cfg(hf_server.base_url), ks=[1, 2, 3], n_per_k=2, output_dir=tmp_path,
                         progress=False, revise=False, code_checks=False)
    with pytest.raises(KeyboardInterrupt):
        run_skillmix(cfg, grader=grader)
    assert len((tmp_path / "records.jsonl").read_text().strip().splitlines()) == 2
    with open(tmp_path / "records.jsonl", "a") as fh:          # a torn line, as if killed mid-write
        fh.write('{"item_key": "abc", "trunc')
    before = hf_server.n_chat_requests
    res = run_skillmix(cfg, grader=grader)
    assert (res.n_reused, res.n_new) == (2, 4)
    assert hf_server.n_chat_requests - before == 4             # only the unfinished items were generated
    assert (res.items["status"] == "done").all() and len(res.items) == 6
    assert (res.summary.query("metric == 'full_marks'")["mean"] == 1.0).all()


def test_failed_items_are_kept_and_retried_next_run(scripted_server, tmp_path):
    srv = scripted_server(lambda m: "Answer: Bees hum like engines.\nExplanation: simile.", name="gen")
    grader = ScriptedClient(lambda m: json.dumps({"skills": {x: 1 for x in _skills_in_grade_prompt(m)},
                                                  "topic": 1, "sentence_limit": 1, "makes_sense": 1}))
    srv.add_faults(*[Fault("error", status=502)] * 2)          # the first item's generation fails twice
    cfg = SkillMixConfig(generator=_client_cfg(srv.base_url, max_retries=1), ks=[1, 2], n_per_k=2,
                         output_dir=tmp_path, progress=False)
    res = run_skillmix(cfg, grader=grader)
    it = res.items.set_index("item_id")
    assert it.loc["k1-0000", "status"] == "error" and "generation failed" in it.loc["k1-0000", "error"]
    assert (it.drop("k1-0000")["status"] == "done").all()
    assert res.summary.set_index(["k", "metric"]).loc[(1, "score"), "n_error"] == 1
    assert it.loc["k1-0001", "answer"] == "Bees hum like engines."
    res2 = run_skillmix(cfg, grader=grader)
    assert (res2.n_reused, res2.n_new) == (3, 1) and (res2.items["status"] == "done").all()


def test_config_validation():
    with pytest.raises(ValueError, match="base_url"):
        ClientConfig(kind="openai")
    with pytest.raises(ValueError, match="ks"):
        SkillMixConfig(generator=ClientConfig(kind="hf", model="stories260k"), ks=[0, 2])
    cfg = SkillMixConfig.model_validate({"generator": {"kind": "openai", "base_url": "http://127.0.0.1:1/v1"},
                                         "ks": [3, 1]})
    assert cfg.ks == [1, 3] and cfg.grader is None


def test_example_spec_validates():
    from pathlib import Path

    import yaml

    from brainlike.analyses.skills import TheoryConfig

    examples = Path(__file__).resolve().parents[1] / "examples"
    theory = TheoryConfig.model_validate(yaml.safe_load((examples / "skill_theory.yaml").read_text())["theory"])
    sm = SkillMixConfig.model_validate(yaml.safe_load((examples / "skillmix.yaml").read_text())["skillmix"])
    assert theory.kprimes == [1, 2, 3] and sm.ks == [1, 2, 3]
    assert sm.grader is not None and sm.grader.api_key_env == "GRADER_API_KEY"


# ------------------------------------------------------------------------ the protocol: revision, rules, graders
def test_skill_name_rule_and_sentence_rule():
    from brainlike.analyses.skills.grading import named_skills

    text = ("Her Metaphorical speech was ironic; red-herrings and puns everywhere. He threw a punch at a "
            "simile-free wall.")
    assert named_skills(text, ["metaphor", "irony", "red herring", "pun", "simile", "hyperbole", "straw man"]) == [
        "metaphor", "irony", "red herring", "pun", "simile"]
    assert named_skills("A punchline, similar stories, a strawman.", ["pun", "simile", "straw man"]) == []
    assert named_skills("Two self serving biases.", ["self-serving bias", "confirmation bias"]) == ["self-serving bias"]
    assert count_sentences("Mr. Smith paid 3.5 dollars... Then he left! Did he? (Yes.)") == 4
    assert count_sentences("One sentence without a final stop") == 1 and count_sentences("  ") == 0


def test_paper_metrics_of_one_item():
    """Yu et al.: Full Marks = all k+3 points; All Skills = all k skill points and >= 2 of the 3 others; Skill
    Fraction = skill points / k when all 3 others are earned, else 0."""
    from brainlike.analyses.skills.grading import ParsedGrade, item_scores

    def sc(skills, topic, limit, sense):
        return item_scores(ParsedGrade(dict(enumerate(skills)), topic, limit, sense, ungradable=False), len(skills))

    full = sc([1, 1, 1], 1, 1, 1)
    assert (full.full_marks, full.all_skills, full.skill_fraction, full.score) == (1.0, 1.0, 1.0, 1.0)
    one_off = sc([1, 1, 1], 1, 0, 1)
    assert (one_off.full_marks, one_off.all_skills, one_off.skill_fraction) == (0.0, 1.0, 0.0)
    two_off = sc([1, 1, 1], 0, 0, 1)
    assert (two_off.all_skills, two_off.skill_fraction) == (0.0, 0.0)
    partial = sc([1, 0, 1], 1, 1, 1)
    assert (partial.full_marks, partial.all_skills, partial.skill_fraction) == (0.0, 0.0, pytest.approx(2 / 3))
    assert partial.score == pytest.approx(5 / 6)


def _full_grade(messages):
    names = _skills_in_grade_prompt(messages)
    return json.dumps({"skills": {x: 1 for x in names}, "topic": 1, "sentence_limit": 1, "makes_sense": 1})


def test_revision_round_and_rules_checked_in_code(scripted_server, tmp_path):
    """The generator's first answer breaks the rules; the revision is graded. Revised answers that still name a
    skill or exceed the limit lose that point although the (lenient) grader gave it."""
    seen = []

    def generate(messages):
        seen.append(messages)
        if len(messages) == 2:                                    # first round
            return "Answer: Too long. Far too long. Way too long.\nExplanation: none."
        assert messages[2]["role"] == "assistant" and "Way too long" in messages[2]["content"]
        assert "Check your answer" in messages[-1]["content"]
        item = messages[1]["content"]
        skill = re.search(r"illustrates all of the following skills?: ([^.]+)\.", item).group(1).split(", ")[0]
        topic = re.search(r"text about (.+?) that illustrates", item).group(1)
        if len(topic) % 2 == 0:                                   # keeps naming the skill
            return f"Answer: A {skill} about it.\nExplanation: it is a {skill}."
        return "Answer: Bees hum like small engines in the garden.\nExplanation: ok."

    srv = scripted_server(generate, name="gen")
    cfg = SkillMixConfig(generator=_client_cfg(srv.base_url), ks=[1, 2], n_per_k=6, output_dir=tmp_path,
                         progress=False, topics_file=None)
    res = run_skillmix(cfg, grader=ScriptedClient(_full_grade, name="lenient"))
    it = res.items.set_index("item_id")
    assert len(seen) == 2 * 12                                     # a generation and a revision per item
    assert it["first_answer"].str.contains("Too long").all() and not it["answer"].str.contains("Too long").any()
    named = it["named_skills"].apply(len) > 0
    assert (named == (it["topic"].str.len() % 2 == 0)).all() and 0 < named.sum() < len(named)
    assert (it.loc[named, "full_marks"] == 0).all() and (it.loc[~named, "full_marks"] == 1).all()
    assert (it["grader_sentence_limit_point"] == 1).all() and (it["sentence_limit_point"] == 1).all()
    sp = res.skill_points
    first = sp.groupby("item_id").head(1).set_index("item_id")
    assert (first.loc[named[named].index, "used"] == 0).all() and bool(first.loc[named[named].index, "named"].all())
    # no revision: the over-long first answers are graded and lose the sentence point in code, not by the grader
    res2 = run_skillmix(cfg.model_copy(update={"revise": False, "output_dir": tmp_path / "norev"}),
                        grader=ScriptedClient(_full_grade, name="lenient"))
    it2 = res2.items
    assert (it2["n_sentences"] == 3).all()
    limit = it2["max_sentences"] < 3
    assert (it2.loc[limit, "sentence_limit_point"] == 0).all() and (it2.loc[limit, "full_marks"] == 0).all()
    assert (it2["grader_sentence_limit_point"] == 1).all()
    off = run_skillmix(cfg.model_copy(update={"revise": False, "code_checks": False,
                                              "output_dir": tmp_path / "nocheck"}),
                       grader=ScriptedClient(_full_grade, name="lenient"))
    assert (off.items["full_marks"] == 1).all()


def test_several_graders_rounds_majority_and_agreement(scripted_server, tmp_path):
    """A consistent grader agrees with itself (kappa 1); a coin-flipping one does not (kappa near 0, also
    against the consistent one); an item's points are the majority over rounds."""
    from sklearn.metrics import cohen_kappa_score

    gen = scripted_server(lambda m: "Answer: Bees hum like small engines.\nExplanation: ok.", name="gen")
    calls: dict = {}

    def consistent(messages):
        names = _skills_in_grade_prompt(messages)
        h = sum(map(ord, messages[-1]["content"]))
        pts = {x: (h >> i) & 1 for i, x in enumerate(names)}
        return json.dumps({"skills": pts, "topic": (h >> 5) & 1, "sentence_limit": 1, "makes_sense": (h >> 6) & 1})

    def coin(messages):
        prompt = messages[-1]["content"]
        calls[prompt] = calls.get(prompt, 0) + 1
        rng = np.random.default_rng([sum(map(ord, prompt)), calls[prompt]])
        names = _skills_in_grade_prompt(messages)
        p = rng.integers(0, 2, len(names) + 3)
        return json.dumps({"skills": {x: int(v) for x, v in zip(names, p)}, "topic": int(p[-3]),
                           "sentence_limit": int(p[-2]), "makes_sense": int(p[-1])})

    cfg = SkillMixConfig(generator=_client_cfg(gen.base_url), ks=[2, 3], n_per_k=10, output_dir=tmp_path,
                         progress=False, n_gradings=3, code_checks=False, n_boot=400)
    res = run_skillmix(cfg, grader=[ScriptedClient(consistent, name="consistent"), ScriptedClient(coin, name="coin")])
    g = res.gradings
    assert len(g) == 20 * 2 * 3 and set(g["grader"]) == {"consistent", "coin"}
    assert len(res.items) == 20 * 2 and set(res.summary["grader"]) == {"consistent", "coin"}
    a = res.agreement.set_index(["grading_a", "grading_b"])
    assert len(a) == 15                                             # 6 gradings, all pairs
    same = a.loc[("consistent/0", "consistent/1")]
    assert same["kappa"] == 1.0 and same["percent_agreement"] == 1.0 and same["kind"] == "same grader"
    for pair in [("coin/0", "coin/1"), ("coin/1", "coin/2"), ("coin/0", "consistent/0")]:
        row = a.loc[pair]
        assert abs(row["kappa"]) < 0.25 and row["kappa_ci_low"] < row["kappa"] < row["kappa_ci_high"], (pair, row)
    # kappa against scikit-learn on the pooled points
    c0 = g[(g["grader"] == "coin") & (g["round"] == 0)].set_index("item_key")["points"]
    c1 = g[(g["grader"] == "coin") & (g["round"] == 1)].set_index("item_key")["points"]
    x = np.concatenate([c0[k] for k in c0.index])
    y = np.concatenate([c1[k] for k in c0.index])
    assert a.loc[("coin/0", "coin/1"), "kappa"] == pytest.approx(cohen_kappa_score(x, y))
    # majority over the coin's three rounds
    key = c0.index[0]
    rounds = np.stack([np.asarray(g[(g["grader"] == "coin") & (g["item_key"] == key) & (g["round"] == r)]["points"]
                                  .iloc[0]) for r in range(3)])
    majority = (rounds.mean(axis=0) > 0.5).astype(int)
    row = res.items[(res.items["grader"] == "coin") & (res.items["item_key"] == key)].iloc[0]
    assert row["points"] == majority.sum() and row["topic_point"] == majority[-3]


def test_agreement_kappa_matches_sklearn_and_its_ci_is_calibrated():
    """Planted agreement is recovered (kappa of a grader that copies 80 % of points and guesses the rest is
    0.8 within its CI); under the null (independent gradings) the 95 % CI covers 0 at about the nominal rate."""
    from sklearn.metrics import cohen_kappa_score

    from brainlike.analyses.skills.agreement import _bootstrap_kappa, fast_kappa, grading_agreement

    rng = np.random.default_rng(0)
    for _ in range(20):
        a, b = rng.integers(0, 2, 50), rng.integers(0, 2, 50)
        assert fast_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b))
    pairs = [(rng.integers(0, 2, 6), rng.integers(0, 2, 6)) for _ in range(12)]
    one = _bootstrap_kappa(pairs, 1, np.random.default_rng(5))[0]       # the vectorised replicate ...
    idx = np.random.default_rng(5).integers(0, 12, size=(1, 12))[0]      # ... is the kappa of the resample
    assert one == pytest.approx(cohen_kappa_score(np.concatenate([pairs[i][0] for i in idx]),
                                                  np.concatenate([pairs[i][1] for i in idx])))

    def table(copy_p, n_items=40, k=3, seed=0):
        r = np.random.default_rng(seed)
        rows = []
        for i in range(n_items):
            x = r.integers(0, 2, k + 3)
            y = np.where(r.random(k + 3) < copy_p, x, r.integers(0, 2, k + 3))
            rows += [{"item_key": f"i{i}", "grader": "a", "round": 0, "ungradable": False, "points": list(x)},
                     {"item_key": f"i{i}", "grader": "b", "round": 0, "ungradable": False, "points": list(y)}]
        rows.append({"item_key": "bad", "grader": "a", "round": 0, "ungradable": True, "points": []})
        return pd.DataFrame(rows)

    planted = grading_agreement(table(0.8), n_boot=300).iloc[0]
    assert planted["kind"] == "between graders" and planted["n_items"] == 40 and planted["n_points"] == 240
    assert planted["kappa_ci_low"] < 0.8 < planted["kappa_ci_high"] and planted["kappa"] > 0.6
    covered = [(lambda r: r["kappa_ci_low"] < 0 < r["kappa_ci_high"])(
        grading_agreement(table(0.0, seed=s), n_boot=300, seed=s).iloc[0]) for s in range(40)]
    assert 0.85 <= np.mean(covered) <= 1.0


@pytest.mark.slow
def test_ungradable_items_make_brainlike_run_fail(scripted_server, tmp_path):
    """Items no grader can grade are counted and the run exits 1 with 'N of M ... ungradable' and why."""
    import yaml
    from typer.testing import CliRunner

    from brainlike.cli import app

    n = {"i": 0}

    def sometimes_junk(messages):
        n["i"] += 1
        return "I cannot grade this." if n["i"] % 2 == 0 else _full_grade(messages)

    gen = scripted_server(lambda m: "Answer: Bees hum like small engines.\nExplanation: ok.", name="gen")
    grd = scripted_server(sometimes_junk, name="junky")
    spec = {"analysis": "skillmix", "name": "t", "output": str(tmp_path / "out"),
            "skillmix": {"generator": {"kind": "openai", "base_url": gen.base_url, "model": "g", "max_retries": 0},
                         "grader": {"kind": "openai", "base_url": grd.base_url, "model": "j", "max_retries": 0},
                         "ks": [1], "n_per_k": 4, "revise": False}}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(spec))
    res = CliRunner().invoke(app, ["run", str(tmp_path / "s.yaml")])
    assert res.exit_code == 1, res.output
    assert "2 of 4 graded Skill-Mix items were ungradable" in " ".join(res.output.split()), res.output
    spec["skillmix"]["fail_on_ungradable"] = False
    spec["output"] = str(tmp_path / "out2")
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(spec))
    n["i"] = 0
    assert CliRunner().invoke(app, ["run", str(tmp_path / "s.yaml")]).exit_code == 0


# ------------------------------------------- checked against the authors' reference code (issue 20, item 4)
def test_skill_name_rule_whole_words_without_false_positives():
    """'irons' is about irons, not irony; inflections and derivations of the name itself still count."""
    from brainlike.analyses.skills.grading import named_skills

    for text in ("She irons shirts.", "Ironing boards and iron gates.", "The Punic wars.", "A punchline.",
                 "Similar stories.", "He ironed it."):
        assert named_skills(text, ["irony", "verbal irony", "pun", "simile"]) == [], text
    for text, name in (("Such ironies!", "irony"), ("How ironic.", "irony"), ("Verbal ironies abound.", "verbal irony"),
                       ("Punning again.", "pun"), ("A hyperbolic claim.", "hyperbole"),
                       ("Two fallacies.", "fallacy"),
                       ("A slippery-slopes argument.", "slippery slope"), ("METAPHORICALLY speaking.", "metaphor")):
        assert named_skills(text, [name]) == [name], text
    # as in the reference code, only the name before a parenthesis counts
    assert named_skills("Was that a complex question?", ["complex question (loaded question)"]) == [
        "complex question (loaded question)"]
    assert named_skills("A loaded question.", ["complex question (loaded question)"]) == []


def test_generation_rounds_best_of_and_counted_sentence_limit(tmp_path):
    """Skill-Mix's reference code generates each draw several times and keeps each metric's maximum; its
    sentence point is the counted one, whatever the grader said."""
    tries: dict[str, int] = {}

    def generate(messages):
        key = messages[1]["content"]
        if len(messages) == 2:
            tries[key] = tries.get(key, 0) + 1
        t = tries[key]
        skill = re.search(r"illustrates all of the following skills?: ([^.]+)\.", key).group(1).split(", ")[0]
        if t == 1:
            return f"Answer: A {skill} about it.\nExplanation: it names the skill."
        if t == 2:
            return "Answer: Too long. Far too long. Way too long.\nExplanation: over the limit."
        return "Answer: Bees hum like small engines.\nExplanation: ok."

    def strict_on_length(messages):          # the grader always denies the sentence point
        names = _skills_in_grade_prompt(messages)
        return json.dumps({"skills": {x: 1 for x in names}, "topic": 1, "sentence_limit": 0, "makes_sense": 1})

    base = SkillMixConfig(generator=_client_cfg("http://127.0.0.1:9/v1"), ks=[1, 2], n_per_k=3, progress=False,
                          output_dir=tmp_path / "one", n_boot=200)
    one = run_skillmix(base, generator=ScriptedClient(generate, name="gen"),
                       grader=ScriptedClient(strict_on_length, name="strict"))
    assert (one.items["generation"] == 0).all() and (one.items["full_marks"] == 0).all()    # first tries name
    tries.clear()
    cfg = base.model_copy(update={"n_generations": 3, "output_dir": tmp_path / "three"})
    res = run_skillmix(cfg, generator=ScriptedClient(generate, name="gen"),
                       grader=ScriptedClient(strict_on_length, name="strict"))
    it = res.items
    assert len(it) == 6 * 3 and sorted(it["generation"].unique()) == [0, 1, 2]
    by_gen = it.groupby("generation")["full_marks"].mean()
    assert list(by_gen) == [0.0, 0.0, 1.0]                                 # named / too long / fine
    assert (it["grader_sentence_limit_point"] == 0).all()
    assert (it.loc[it["generation"] == 2, "sentence_limit_point"] == 1).all()     # counted: 1 sentence is fine
    assert (it.loc[it["generation"] == 1, "sentence_limit_point"] == 0).all()
    s = res.summary.set_index(["k", "metric"])
    for k in (1, 2):
        assert s.loc[(k, "full_marks"), "mean"] == 1.0 and s.loc[(k, "full_marks"), "n"] == 3   # best of 3
        assert s.loc[(k, "skill_fraction"), "mean"] == 1.0
    # raising n_generations keeps the rounds already done
    tries.clear()
    more = run_skillmix(base.model_copy(update={"n_generations": 2}), generator=ScriptedClient(generate, name="gen"),
                        grader=ScriptedClient(strict_on_length, name="strict"))
    assert more.n_reused == 6 and more.n_new == 6


def test_generation_rounds_at_temperature_zero_warn(scripted_server, tmp_path):
    srv = scripted_server(lambda m: "Answer: Bees hum.\nExplanation: ok.", name="gen")
    cfg = SkillMixConfig(generator=_client_cfg(srv.base_url), ks=[1], n_per_k=1, n_generations=2, progress=False,
                         output_dir=tmp_path, n_boot=100)
    with pytest.warns(UserWarning, match="temperature 0"):
        res = run_skillmix(cfg, grader=ScriptedClient(_full_grade, name="g"))
    assert list(res.items["answer"]) == ["Bees hum."] * 2          # both rounds gave the same text
