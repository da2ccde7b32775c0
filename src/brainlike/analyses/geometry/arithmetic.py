"""A generated, exactly checkable reasoning task: arithmetic items of graded difficulty.

Difficulty levels (all numbers are small non-negative integers, every running total stays >= 0):

* ``0``: a bare sum or difference, ``"What is 3 + 5?"`` (so that tiny models can score above zero);
* ``1``, ``2``, ``3``: word problems with that many add/subtract steps after a starting amount,
  ``"Tom has 3 apples. He gets 5 more. He gives away 2. How many apples does Tom have now?"``.

Items are generated with a seed. Every item has its own worked examples (solved items of the same
difficulty, made from a separate random stream, never equal to an asked item), so a ``k``-shot context is
the first ``k`` of them and contexts are nested (the 4-shot prefix starts the 8-shot one).

Answer checking (:func:`parse_integer`, :func:`check_answer`): the greedy continuation's first non-empty
line is searched for its first number. ``" 12."``, ``"12 apples"``, ``"The answer is 12"`` give 12;
``"-3"`` gives -3; ``"12.0"`` gives 12 but ``"3.5"`` gives no integer; number words (``"twelve"``) are
not parsed (the worked examples always answer in digits, so a model that learned the format writes
digits); no number at all is wrong. The answer is correct when the parsed integer equals the item's.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from brainlike.errors import BrainlikeError

#: Difficulty levels of the generator.
DIFFICULTIES: tuple[int, ...] = (0, 1, 2, 3)

_NAMES = ("Tom", "Anna", "Ben", "Lily", "Sam", "Mia", "Max", "Emma", "Leo", "Zoe", "Jack", "Ella")
_PRONOUNS = {"Tom": "He", "Ben": "He", "Sam": "He", "Max": "He", "Leo": "He", "Jack": "He",
             "Anna": "She", "Lily": "She", "Mia": "She", "Emma": "She", "Zoe": "She", "Ella": "She"}
_OBJECTS = ("apples", "pens", "stones", "cards", "books", "coins", "shells", "cups", "balls", "stamps")
_GAIN = ("gets {n} more", "finds {n} more", "buys {n} more")
_LOSS = ("gives away {n}", "loses {n}", "eats {n}")

#: Neutral text without numbers for the length-matched "irrelevant" control context.
FILLER = (
    "The river runs past the old mill and turns toward the hills. In spring the meadows are green and the "
    "birds come back from the south. A narrow path leads from the village to the forest, where tall pines "
    "stand close together. The baker opens his shop early, and the smell of bread fills the street. Children "
    "walk to school along the canal while the boats move slowly through the locks. On the market square an "
    "old clock tower chimes every hour. In the evening the lamps are lit and people sit outside the cafes. "
    "Clouds gather over the mountains before the rain, and the wind carries the scent of wet earth. The "
    "library keeps its windows open in summer, and readers sit in the shade of the courtyard. A cat sleeps "
    "on the warm stones of the bridge. Farther east, the fields of wheat bend in the breeze and a tractor "
    "hums along the edge of the road. ")

_NUMBER = re.compile(r"(?<![\d.])(-?\d+)(\.\d+)?")


@dataclass(frozen=True)
class ArithmeticItem:
    """One generated problem.

    Attributes
    ----------
    id : str
        unique label (``"d2-017"``).
    question : str
        the problem text.
    answer : int
        the exact integer answer.
    difficulty : int
        number of add/subtract steps after the start (0 = bare ``a + b``).
    examples : tuple[tuple[str, int], ...]
        solved ``(question, answer)`` items of the same difficulty, for few-shot contexts.
    """

    id: str
    question: str
    answer: int
    difficulty: int
    examples: tuple[tuple[str, int], ...] = ()


def _problem(rng: np.random.Generator, difficulty: int) -> tuple[str, int]:
    if difficulty == 0:
        a, b = (int(x) for x in rng.integers(1, 10, size=2))
        if rng.random() < 0.5:
            return f"What is {a} + {b}?", a + b
        a, b = max(a, b), min(a, b)
        return f"What is {a} - {b}?", a - b
    name = _NAMES[int(rng.integers(len(_NAMES)))]
    obj = _OBJECTS[int(rng.integers(len(_OBJECTS)))]
    total = int(rng.integers(2, 10))
    parts = [f"{name} has {total} {obj}."]
    for step in range(difficulty):
        if total >= 2 and rng.random() < 0.5:
            n = int(rng.integers(1, total + 1))
            phrase, total = _LOSS[int(rng.integers(len(_LOSS)))].format(n=n), total - n
        else:
            n = int(rng.integers(1, 10))
            phrase, total = _GAIN[int(rng.integers(len(_GAIN)))].format(n=n), total + n
        subject = _PRONOUNS[name] if step % 2 == 0 else "Then " + _PRONOUNS[name].lower()
        parts.append(f"{subject} {phrase}.")
    parts.append(f"How many {obj} does {name} have now?")
    return " ".join(parts), total


def generate_items(n_items: int, difficulties: Sequence[int] = DIFFICULTIES, seed: int = 0,
                   n_examples: int = 8) -> list[ArithmeticItem]:
    """``n_items`` distinct problems, the difficulties in turn, each with ``n_examples`` worked examples.

    Parameters
    ----------
    n_items : int
        number of asked items (>= 1).
    difficulties : Sequence[int]
        levels among :data:`DIFFICULTIES`, cycled through in order.
    seed : int
        seeds items and examples (examples come from a separate stream).
    n_examples : int
        worked examples per item (the most shots a context can use).

    Returns
    -------
    list[ArithmeticItem]
        Items in generation order. Asked questions are distinct; an item's examples are distinct and never
        an asked question (bare sums are few, so two items may share an example).
    """
    if n_items < 1:
        raise BrainlikeError(f"n_items must be >= 1, got {n_items}")
    bad = [d for d in difficulties if d not in DIFFICULTIES]
    if bad or not difficulties:
        raise BrainlikeError(f"difficulties must be a non-empty subset of {list(DIFFICULTIES)}, "
                             f"got {list(difficulties)}")
    rng, ex_rng = np.random.default_rng([seed, 0]), np.random.default_rng([seed, 1])

    def fresh(generator: np.random.Generator, difficulty: int, taken: set[str]) -> tuple[str, int]:
        for _ in range(10_000):
            q, a = _problem(generator, difficulty)
            if q not in taken:
                taken.add(q)
                return q, a
        raise BrainlikeError(f"cannot generate more distinct difficulty-{difficulty} problems; ask for fewer")

    asked_text: set[str] = set()
    asked = [(d, *fresh(rng, d, asked_text)) for d in (difficulties[i % len(difficulties)] for i in range(n_items))]
    items = []
    for i, (d, q, a) in enumerate(asked):
        taken = set(asked_text)  # examples: distinct within an item and never an asked question
        examples = tuple(fresh(ex_rng, d, taken) for _ in range(n_examples))
        items.append(ArithmeticItem(f"d{d}-{i:03d}", q, a, d, examples))
    return items


def parse_integer(text: str) -> int | None:
    """The first integer of the first non-empty line of ``text``, or ``None`` (see the module doc).

    ``"12."`` → 12, ``" -3"`` → -3, ``"12.0"`` → 12, ``"3.5"`` → None, ``"twelve"`` → None, ``""`` → None.
    """
    lines = [line for line in str(text).split("\n") if line.strip()]
    if not lines:
        return None
    match = _NUMBER.search(lines[0])
    if match is None:
        return None
    whole, frac = match.group(1), match.group(2)
    if frac and set(frac[1:]) != {"0"}:
        return None
    return int(whole)


def check_answer(generated: str, answer: int) -> bool:
    """Whether the first integer of the continuation (:func:`parse_integer`) equals ``answer``."""
    value = parse_integer(generated)
    return value is not None and value == int(answer)


def chance_rate(items: Sequence[ArithmeticItem]) -> float:
    """Accuracy of guessing.

    The probability that an answer drawn from the items' own answer distribution equals the true one, ``sum_v p_v^2`` (a
    guesser that knows which values occur).
    """
    if not items:
        raise BrainlikeError("no items")
    _, counts = np.unique([it.answer for it in items], return_counts=True)
    p = counts / counts.sum()
    return float(np.sum(p ** 2))


def examples_text(pairs: Sequence[tuple[str, int | str]]) -> str:
    r"""The few-shot prefix: ``"Question: …\nAnswer: …\n"`` per pair."""
    return "".join(f"Question: {q}\nAnswer: {a}\n" for q, a in pairs)


def shuffled_answers(item: ArithmeticItem, k: int, seed: int = 0) -> list[tuple[str, int]]:
    """The first ``k`` worked examples with wrong answers of the same kind.

    The answers rotated among the examples (``k >= 2``), each replaced by a different value where the rotation would
    keep it; for ``k = 1`` a different value near the true one. The text, and so the length, barely changes.
    """
    pairs = list(item.examples[:k])
    rng = np.random.default_rng([seed, k, sum(map(ord, item.id))])
    answers = [a for _, a in pairs]
    shift = int(rng.integers(1, k)) if k >= 2 else 0
    out = []
    for j, (q, a) in enumerate(pairs):
        wrong = answers[(j + shift) % k] if k >= 2 else a
        if wrong == a:
            wrong = a + 1 if a < 9 or rng.random() < 0.5 else a - 1
        out.append((q, wrong))
    return out


def build_context(item: ArithmeticItem, context: str, k: int, tokenizer=None, seed: int = 0) -> str:
    """The text before the final ``Question: …`` for ``context`` with ``k`` shots.

    Parameters
    ----------
    item : ArithmeticItem
        the asked item.
    context : str
        ``"examples"`` (the first ``k`` worked examples), ``"shuffled"`` (the same with wrong
        answers, :func:`shuffled_answers`) or ``"irrelevant"`` (:data:`FILLER` text cut to the same
        number of tokens as the ``k``-shot examples, per ``tokenizer``, ending in a newline).
    k : int
        number of shots (0 = no context for every kind).
    tokenizer : tokenizer, optional
        a Hugging Face tokenizer (needed for ``"irrelevant"``).
    seed : int
        seeds the shuffles and the filler's starting sentence.
    """
    if k < 0 or k > len(item.examples):
        raise BrainlikeError(f"item {item.id} has {len(item.examples)} worked examples; {k} shots asked")
    if k == 0:
        return ""
    if context == "examples":
        return examples_text(item.examples[:k])
    if context == "shuffled":
        return examples_text(shuffled_answers(item, k, seed))
    if context == "irrelevant":
        if tokenizer is None:
            raise BrainlikeError("the 'irrelevant' control needs the model's tokenizer to match lengths")
        target = len(tokenizer(examples_text(item.examples[:k]), add_special_tokens=False)["input_ids"])
        sentences = FILLER.split(". ")
        start = int(np.random.default_rng([seed, sum(map(ord, item.id))]).integers(len(sentences)))
        text = ". ".join(sentences[start:] + sentences[:start])
        ids = tokenizer((text + " ") * (target // 100 + 2), add_special_tokens=False)["input_ids"]
        return tokenizer.decode(ids[: max(target - 1, 1)]).strip() + "\n"
    raise BrainlikeError(f"unknown context {context!r}; choose 'examples', 'shuffled' or 'irrelevant'")


def build_task_prompt(item: ArithmeticItem, context: str, k: int, tokenizer=None,
                      seed: int = 0) -> tuple[str, tuple[int, int], str]:
    r"""The prompt ``{context}Question: {question}\nAnswer:``.

    The ``(start, end)`` characters of the question text in it, and the context text.
    """
    prefix = build_context(item, context, k, tokenizer, seed)
    start = len(prefix) + len("Question: ")
    return f"{prefix}Question: {item.question}\nAnswer:", (start, start + len(item.question)), prefix
