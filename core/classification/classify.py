"""Complaint category and severity (POLICY.md §3), from weighted rules in the policy file.

A category scores the weights of its keywords found in the complaint (jieba tokens for Chinese,
whole words for English); the highest score wins, and a lead smaller than `min_margin` is not
trusted (the ticket goes to learner services to check). Severity is the rules' (core.classification.severity).
With the policy's `model` on, a small model shipped in the package (core.classification.model) decides the
category where the rules guess and makes a complaint major where the rules see nothing major
(core.classification.mix). Every decision carries its reasons: keywords and rules, or the model's features.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from decimal import Decimal

from core.classification.amounts import parse_amounts
from core.classification.context import simplified, without_closed_matters, without_waived_amounts
from core.classification.keywords import CJK, Hit, segment
from core.classification.matcher import DAMAGE, FIXTURE, PRACTICE, SAFETY, Matcher
from core.classification.matcher import matcher as compiled
from core.classification.mix import MODEL_REASON, with_model
from core.classification.model import Model, load_model, normalise
from core.classification.rules import ClassificationRules, rules_from_policy
from core.classification.severity import GENERAL, MAJOR, SEVERITY_REASONS, rule_severity, without_hotlines

__all__ = [
    "DATA_LEAK_CATEGORY",
    "GENERAL",
    "MAJOR",
    "Classification",
    "ClassificationRules",
    "classify",
    "detect_language",
    "parse_amounts",
    "prepared",
    "rules_from_policy",
    "why",
]

# POLICY.md §3 files personal-data leaks under "other" whatever else the complaint says.
DATA_LEAK_CATEGORY = "other"

_LATIN_LETTER = re.compile(r"[A-Za-z]")
# A Chinese complaint often names an app, a course code or "HSK"; an English one sometimes
# quotes a teacher's Chinese name. A CJK character carries about as much as a whole English
# word, so a quarter of the letters being CJK already makes the text Chinese.
_ZH_SHARE = 0.25


@dataclass(frozen=True)
class Classification:
    category: str
    severity: str
    language: str
    amount_yuan: Decimal | None
    data_leak: bool
    reasons: tuple[str, ...]
    # False when no category led clearly: staff should check the category.
    confident: bool = True


def detect_language(text: str) -> str:
    """The text's language: "zh" when CJK characters are a meaningful share of its letters, else "en"."""
    cjk = len(CJK.findall(text))
    latin = len(_LATIN_LETTER.findall(unicodedata.normalize("NFKC", text)))
    if cjk + latin == 0:
        return "zh"  # the schools' language when there is nothing to tell by
    return "zh" if cjk / (cjk + latin) >= _ZH_SHARE else "en"


def prepared(text: str, rules: ClassificationRules) -> tuple[str, list[str]]:
    """The text the rules and the model read, and the closed matters left out of it."""
    # NFKC folds full-width letters and digits; phones type ’ where keywords have '.
    raw = simplified(unicodedata.normalize("NFKC", text).replace("\u2019", "'"))
    # What is left of the complaint once a matter it says is closed is taken out.
    return without_closed_matters(raw, rules)


def classify(text: str, rules: ClassificationRules, model: Model | None = None) -> Classification:
    """Category, severity and the reasons for both, from the complaint's text. With `rules.model`, the
    model shipped with the package (or `model`, when given) weighs in where the rules are unsure."""
    raw, closed = prepared(text, rules)
    matcher = compiled(rules)
    doc = segment(raw, raw.lower(), matcher.words.chinese)
    hits: dict[str, list[Hit]] = {}
    for hit in matcher.words.find(doc):
        for role in matcher.roles[hit.keyword]:
            hits.setdefault(role, []).append(hit)
    reasons: list[str] = list(closed)
    amounts = parse_amounts(without_hotlines(without_waived_amounts(raw, rules), matcher))
    amount = max(amounts) if amounts else None
    category, confident = _category(hits, rules, matcher, reasons, amount is not None)

    severity, leaks = rule_severity(doc, hits, amount, rules, matcher, reasons)
    # The model can change a guessed category or a general severity; a clear category that is already major
    # it could only override, at model_override (above 1: never): then it is not asked.
    undecided = not confident or severity != MAJOR or rules.model_override <= 1
    if rules.model and undecided and (model := model or load_model()) is not None:
        opinion = model.opinion(normalise(raw))
        category, confident, severity = with_model(category, confident, severity, opinion, rules, reasons)
    if leaks:
        category, severity, confident = DATA_LEAK_CATEGORY, MAJOR, True
        reasons += [f"{leak} -> {DATA_LEAK_CATEGORY}, {MAJOR}" for leak in leaks]

    return Classification(
        category=category,
        severity=severity,
        language=detect_language(text),
        amount_yuan=amount,
        data_leak=bool(leaks),
        reasons=tuple(reasons),
        confident=confident,
    )


def why(result: Classification, limit: int = 300) -> str:
    """One line for staff: the words that decided the category, and what made the severity."""
    suffix = f" -> {result.category}"
    words = [
        r[len("keyword ") : -len(suffix)]
        for r in result.reasons
        if r.startswith("keyword ") and r.endswith(suffix)
    ]
    model = next((r for r in result.reasons if r.startswith(MODEL_REASON)), None)
    if model is not None:  # the model chose the category: its strongest words say why
        line = f"{result.category}: {model[len(MODEL_REASON) :]}"
    else:
        line = f"{result.category}: {', '.join(words[:6]) or 'no keyword'}"
    if not result.confident:
        line += " (a guess)"
    severity = list(dict.fromkeys(r for r in result.reasons if r.startswith(SEVERITY_REASONS)))
    line += f"; {result.severity}" + (f": {', '.join(severity)}" if severity else "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _moved_to_practice(
    hits: dict[str, list[Hit]], rules: ClassificationRules, matcher: Matcher, reasons: list[str]
) -> dict[str, float]:
    """The safety and damage words that weigh for the practice category, by weight, when a practice place or
    machine is named: "实训室电焊机漏电" is broken lab equipment (teaching), not the buildings' wiring."""
    places = hits.get(PRACTICE)
    if rules.practice_category is None or not places or hits.get(FIXTURE):
        return {}
    found = {hit.keyword for kind in (SAFETY, DAMAGE) for hit in hits.get(kind, ())}
    if not found:
        return {}
    # Each word keeps the heaviest weight it had for any category ("broken" weighs 3 for the buildings').
    weights = {kw: max((w[kw] for _, w in matcher.categories if kw in w), default=1.0) for kw in found}
    words = ", ".join(sorted(found))
    reasons.append(f"practice equipment ({places[0].keyword}): {words} -> {rules.practice_category}")
    return weights


def _category(
    hits: dict[str, list[Hit]],
    rules: ClassificationRules,
    matcher: Matcher,
    reasons: list[str],
    has_amount: bool,
) -> tuple[str, bool]:
    scores: list[tuple[str, float]] = []
    moved = _moved_to_practice(hits, rules, matcher, reasons)
    for name, weights in matcher.categories:
        counts: dict[str, int] = {}
        for hit in hits.get(name, ()):
            if hit.keyword not in moved or name == rules.practice_category:
                counts[hit.keyword] = counts.get(hit.keyword, 0) + 1
        weights = {**weights, **moved} if name == rules.practice_category else weights
        if name == rules.practice_category:
            for keyword in moved.keys() - counts.keys():
                counts[keyword] = 1
        for keyword, n in counts.items():
            weight = weights[keyword]
            shown = "" if weight == 1 else f" ({weight:g})"
            reasons.append(f"keyword {keyword}{f' x{n}' if n > 1 else ''}{shown} -> {name}")
        score = sum(weights[kw] * n for kw, n in counts.items())
        if has_amount and name == rules.amount_category and rules.amount_weight:
            score += rules.amount_weight
            reasons.append(f"an amount of money ({rules.amount_weight:g}) -> {name}")
        scores.append((name, score))
    category, best = rules.default_category, 0.0
    for name, score in scores:
        if score > best:  # strictly more: ties stay with the earlier category
            category, best = name, score
    if best == 0:
        reasons.append(f"no category keyword -> {category}, please check")
        return category, False
    runner_up = max((score for name, score in scores if name != category), default=0.0)
    if best - runner_up < rules.min_margin:
        others = [f"{name} {score:g}" for name, score in scores if name != category and score == runner_up]
        reasons.append(f"close call ({category} {best:g} vs {', '.join(others)}) -> {category}, please check")
        return category, False
    return category, True
