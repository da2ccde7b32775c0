r"""Questions with short answers, prompts with and without context, and exact-match accuracy.

Prompt formats (``condition``):

* ``none``:    ``Question: {question}\nAnswer:``
* ``passage``: ``{passage}\nQuestion: {question}\nAnswer:`` — a relevant passage that contains the answer.
* ``fewshot``: ``n_shots`` solved examples (``Question: …\nAnswer: …\n``), then the question. The
  question's own ``examples`` are used first; missing shots are filled with other questions of the same
  category (chosen with a seed, never the question itself). The built-in set gives every question three
  examples of its own that appear nowhere else, so pooled point clouds hold no repeated text.

The final ``Question: …\nAnswer:`` segment is identical in every condition; the character span of the
question text in it is returned with the prompt so that the same tokens can be compared across conditions.

Accuracy is exact match on the leading words: the first line of the greedy continuation is lower-cased,
punctuation becomes spaces, articles (a, an, the) are dropped, and the answer (or an alias) must equal the
first words of what is left (``" Paris."`` and ``" Paris is the capital"`` match ``Paris``).
"""
from __future__ import annotations

import json
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

import numpy as np
import torch

from brainlike.errors import BrainlikeError
from brainlike.models.loading import LoadedModel

#: Context conditions of the experiment.
CONDITIONS: tuple[str, ...] = ("none", "passage", "fewshot")

_ARTICLES = {"a", "an", "the"}


@dataclass(frozen=True)
class Question:
    """One question with a short answer.

    Attributes
    ----------
    id : str
        a unique label.
    question : str
        the question text.
    answer : str
        the canonical short answer (one or a few words).
    aliases : tuple[str, ...]
        other accepted answers (``"8"`` for ``"eight"``).
    passage : str | None
        a relevant passage for the ``passage`` condition (may be ``None``).
    category : str
        a label used to pick few-shot examples (``"fact"``, ``"arithmetic"``).
    examples : tuple[tuple[str, str], ...]
        solved ``(question, answer)`` pairs for this question's few-shot prefix.
    """

    id: str
    question: str
    answer: str
    aliases: tuple[str, ...] = field(default=())
    passage: str | None = None
    category: str = "general"
    examples: tuple[tuple[str, str], ...] = field(default=())

    @property
    def answers(self) -> tuple[str, ...]:
        """The accepted answers."""
        return (self.answer, *self.aliases)


def _parse(items: list, source: str) -> list[Question]:
    if not isinstance(items, list) or not items:
        raise BrainlikeError(f"{source}: expected a non-empty list of questions")
    out, seen = [], set()
    for i, item in enumerate(items):
        where = f"{source}: question {i + 1}"
        if not isinstance(item, dict):
            raise BrainlikeError(f"{where} is not an object with 'question' and 'answer'")
        missing = [k for k in ("question", "answer") if not str(item.get(k, "")).strip()]
        if missing:
            raise BrainlikeError(f"{where} lacks {', '.join(repr(m) for m in missing)}")
        qid = str(item.get("id") or f"q{i + 1:03d}")
        if qid in seen:
            raise BrainlikeError(f"{where}: duplicate id {qid!r}")
        seen.add(qid)
        aliases = item.get("aliases") or []
        if isinstance(aliases, str):
            aliases = [aliases]
        examples = []
        for e in item.get("examples") or []:
            pair = (e.get("question"), e.get("answer")) if isinstance(e, dict) else tuple(e) if isinstance(
                e, (list, tuple)) and len(e) == 2 else (None, None)
            if not all(isinstance(x, str) and x.strip() for x in pair):
                raise BrainlikeError(f"{where}: examples must be {{'question': ..., 'answer': ...}} objects, got {e!r}")
            examples.append((pair[0].strip(), pair[1].strip()))
        out.append(Question(qid, str(item["question"]).strip(), str(item["answer"]).strip(),
                            tuple(str(a) for a in aliases), (str(item["passage"]).strip() or None)
                            if item.get("passage") else None, str(item.get("category") or "general"),
                            tuple(examples)))
    return out


def load_questions(path: str | Path | None = None) -> list[Question]:
    """Questions from a JSON file (a list, or ``{"questions": [...]}``), a JSON-lines file, or the built-in set.

    (``path=None``: 24 factual and arithmetic questions with passages, ``data/geometry_questions.json``).

    Each item needs ``question`` and ``answer``; ``id``, ``aliases``, ``passage``, ``category`` and
    ``examples`` (a list of ``{"question": …, "answer": …}``) are optional.
    """
    if path is None:
        text, source = files("brainlike.data").joinpath("geometry_questions.json").read_text("utf-8"), "built-in"
    else:
        p = Path(path).expanduser()
        if not p.is_file():
            raise BrainlikeError(f"questions file not found: {p}")
        text, source = p.read_text(encoding="utf-8"), str(p)
    try:
        if str(path or "").endswith(".jsonl"):
            data = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BrainlikeError(f"{source} is not valid JSON: {exc}") from None
    if isinstance(data, dict):
        data = data.get("questions")
    return _parse(data, source)


def _fewshot(questions: Sequence[Question], index: int, n_shots: int, seed: int) -> list[tuple[str, str]]:
    target = questions[index]
    own = list(target.examples[:n_shots])
    if len(own) == n_shots:
        return own
    n_shots -= len(own)
    same = [i for i, q in enumerate(questions) if i != index and q.category == target.category]
    other = [i for i, q in enumerate(questions) if i != index and q.category != target.category]
    rng = np.random.default_rng([seed, index])
    pick = list(rng.permutation(same))[:n_shots]
    if len(pick) < n_shots:
        pick += list(rng.permutation(other))[: n_shots - len(pick)]
    return own + [(questions[i].question, questions[i].answer) for i in pick]


def build_prompt(
    questions: Sequence[Question],
    index: int,
    condition: str,
    n_shots: int = 3,
    seed: int = 0,
) -> tuple[str, tuple[int, int]]:
    """The prompt for ``questions[index]`` in ``condition`` and the ``(start, end)`` characters of its question.

    The question text in its final ``Question: …`` segment (the text shared by all conditions).
    """
    if condition not in CONDITIONS:
        raise BrainlikeError(f"unknown context condition {condition!r}; choose from {list(CONDITIONS)}")
    q = questions[index]
    tail = f"Question: {q.question}\nAnswer:"
    if condition == "none":
        prefix = ""
    elif condition == "passage":
        if not q.passage:
            raise BrainlikeError(f"question {q.id!r} has no passage for the 'passage' condition")
        prefix = q.passage + "\n"
    else:
        if n_shots < 1:
            raise BrainlikeError(f"n_shots must be >= 1 for the 'fewshot' condition, got {n_shots}")
        shots = _fewshot(questions, index, n_shots, seed)
        if len(shots) < n_shots:
            raise BrainlikeError(f"question {q.id!r}: only {len(shots)} few-shot examples available, {n_shots} asked")
        prefix = "".join(f"Question: {sq}\nAnswer: {sa}\n" for sq, sa in shots)
    start = len(prefix) + len("Question: ")
    return prefix + tail, (start, start + len(q.question))


def normalize_answer(text: str) -> list[str]:
    """Words of the first line of ``text``: lower-cased, punctuation removed, articles dropped."""
    line = text.strip().split("\n", 1)[0].lower()
    words = re.sub(r"[^\w\s]", " ", line).split()
    return [w for w in words if w not in _ARTICLES]


def exact_match(generated: str, answers: Sequence[str]) -> bool:
    """Whether the continuation starts with one of ``answers`` (after :func:`normalize_answer`)."""
    pred = normalize_answer(generated)
    for answer in answers:
        gold = normalize_answer(answer)
        if gold and pred[: len(gold)] == gold:
            return True
    return False


@torch.inference_mode()
def generate_answer(lm: LoadedModel, prompt: str, max_new_tokens: int = 5) -> str:
    """Greedy continuation of ``prompt`` (``max_new_tokens`` tokens, special tokens dropped).

    Raises
    ------
    BrainlikeError
        the model is not a causal language model (encoders cannot generate).
    """
    if lm.kind != "causal":
        raise BrainlikeError(f"{lm.name} is an encoder; only causal models generate answers")
    enc = lm.tokenizer(prompt, return_tensors="pt")
    device = next(lm.model.parameters()).device
    enc = {k: v.to(device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
    pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else lm.tokenizer.eos_token_id
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = lm.model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                                pad_token_id=pad)
    return lm.tokenizer.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
