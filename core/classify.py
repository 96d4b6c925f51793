"""Complaint category and severity (POLICY.md §3), from keywords in the policy file.

Chinese keywords are matched on jieba tokens, so "退费" does not fire inside an unrelated
longer word; English keywords match whole words, case-insensitively. The keyword lists are
the product and live in the policy file, never here.
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any

import jieba  # type: ignore[import-untyped, unused-ignore]

from core.amounts import parse_amounts

__all__ = [
    "DATA_LEAK_CATEGORY",
    "GENERAL",
    "MAJOR",
    "Classification",
    "ClassificationRules",
    "classify",
    "detect_language",
    "parse_amounts",
    "rules_from_policy",
]

GENERAL = "general"
MAJOR = "major"
# POLICY.md §3 files personal-data leaks under "other" whatever else the complaint says.
DATA_LEAK_CATEGORY = "other"

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN_LETTER = re.compile(r"[A-Za-z]")
# A Chinese complaint often names an app, a course code or "HSK"; an English one sometimes
# quotes a teacher's Chinese name. A CJK character carries about as much as a whole English
# word, so a quarter of the letters being CJK already makes the text Chinese.
_ZH_SHARE = 0.25


@dataclass(frozen=True)
class ClassificationRules:
    categories: tuple[tuple[str, tuple[str, ...]], ...]
    default_category: str
    major_amount_yuan: Decimal
    threat_keywords: tuple[str, ...]
    data_leak_keywords: tuple[str, ...]

    def __post_init__(self) -> None:
        keywords = [kw for _, kws in self.categories for kw in kws]
        keywords += [*self.threat_keywords, *self.data_leak_keywords]
        blank = [kw for kw in keywords if not kw.strip() or kw.strip() == "*"]
        if blank:
            # A blank keyword would match every complaint.
            raise ValueError(f"blank keyword in the classification rules: {blank[0]!r}")
        if self.major_amount_yuan < 0:
            raise ValueError(f"major_amount_yuan must not be negative, got {self.major_amount_yuan}")


@dataclass(frozen=True)
class Classification:
    category: str
    severity: str
    language: str
    amount_yuan: Decimal | None
    data_leak: bool
    reasons: tuple[str, ...]


def detect_language(text: str) -> str:
    """The text's language: "zh" when CJK characters are a meaningful share of its letters, else "en"."""
    cjk = len(_CJK.findall(text))
    latin = len(_LATIN_LETTER.findall(unicodedata.normalize("NFKC", text)))
    if cjk + latin == 0:
        return "zh"  # the schools' language when there is nothing to tell by
    return "zh" if cjk / (cjk + latin) >= _ZH_SHARE else "en"


def classify(text: str, rules: ClassificationRules) -> Classification:
    """Category, severity and the reasons for both, from the complaint's text."""
    # NFKC folds full-width letters and digits; phones type ’ where keywords have '.
    text = unicodedata.normalize("NFKC", text).replace("\u2019", "'")
    matcher = _matcher(rules)
    tokens = _segment(text, matcher.chinese_words) if _CJK.search(text) else []
    reasons: list[str] = []

    hits_by_category: list[tuple[str, int]] = []
    for category, keywords in matcher.categories:
        hits = keywords.count(text, tokens)
        reasons += [f"keyword {kw}{_times(n)} -> {category}" for kw, n in hits.items()]
        hits_by_category.append((category, sum(hits.values())))
    category, best = rules.default_category, 0
    for name, total in hits_by_category:
        if total > best:  # strictly more: ties stay with the earlier category
            category, best = name, total
    if best == 0:
        reasons.append(f"no category keyword -> {category}")
    else:
        tied = [name for name, total in hits_by_category if total == best and name != category]
        if tied:
            reasons.append(f"tie ({best} hits) with {', '.join(tied)} -> {category} comes first")

    severity = GENERAL
    amounts = parse_amounts(text)
    amount = max(amounts) if amounts else None
    if amount is not None and amount >= rules.major_amount_yuan:
        severity = MAJOR
        reasons.append(f"amount {amount} yuan >= {rules.major_amount_yuan}")
    threats = matcher.threats.count(text, tokens)
    if threats:
        severity = MAJOR
        reasons += [f"threat: {kw}" for kw in threats]
    leaks = matcher.data_leaks.count(text, tokens)
    if leaks:
        category, severity = DATA_LEAK_CATEGORY, MAJOR
        reasons += [f"data leak: {kw} -> {DATA_LEAK_CATEGORY}, {MAJOR}" for kw in leaks]

    return Classification(
        category=category,
        severity=severity,
        language=detect_language(text),
        amount_yuan=amount,
        data_leak=bool(leaks),
        reasons=tuple(reasons),
    )


def rules_from_policy(policy: Mapping[str, Any]) -> ClassificationRules:
    """The rules from the policy file's [classification] and [severity] tables (parsed TOML).

    Raises KeyError for a missing key and TypeError / ValueError for a wrong shape.
    """
    classification = policy["classification"]
    severity = policy["severity"]
    categories_table = classification["categories"]
    if not isinstance(categories_table, Mapping) or not categories_table:
        raise TypeError("classification.categories must be a non-empty table of categories")
    categories: list[tuple[str, tuple[str, ...]]] = []
    for name, table in categories_table.items():
        keywords = table.get("keywords") if isinstance(table, Mapping) else None
        categories.append((str(name), _keywords(keywords, f"classification.categories.{name}.keywords")))
    default_category = classification["default_category"]
    if default_category not in categories_table:
        raise ValueError(f"classification.default_category {default_category!r} is not a category")
    amount = severity["major_amount_yuan"]
    if isinstance(amount, bool) or not isinstance(amount, int | float):
        raise TypeError(f"severity.major_amount_yuan must be a number, got {amount!r}")
    return ClassificationRules(
        categories=tuple(categories),
        default_category=str(default_category),
        # str() first: Decimal(0.1) would carry the float's binary error.
        major_amount_yuan=Decimal(str(amount)),
        threat_keywords=_keywords(severity["threat_keywords"], "severity.threat_keywords"),
        data_leak_keywords=_keywords(severity["data_leak_keywords"], "severity.data_leak_keywords"),
    )


def _keywords(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(kw, str) for kw in value):
        raise TypeError(f"{where} must be a list of strings")
    return tuple(value)


def _times(n: int) -> str:
    return f" x{n}" if n > 1 else ""


class _KeywordSet:
    """One list of keywords: Chinese ones looked up among tokens, the rest by regex."""

    def __init__(self, keywords: Iterable[str]) -> None:
        unique = list(dict.fromkeys(kw.strip() for kw in keywords))
        self.chinese = frozenset(kw for kw in unique if _CJK.search(kw))
        # The stem of a keyword's first word must occur in the text for the regex to match: a cheap
        # substring test skips most of the hundreds of patterns (all of them for Chinese text).
        self.latin = [
            (kw, kw.split()[0].rstrip("*").lower(), _latin_pattern(kw))
            for kw in unique
            if kw not in self.chinese
        ]

    def count(self, text: str, tokens: Sequence[str]) -> Counter[str]:
        """How often each keyword occurs, keyed by keyword, in first-seen order."""
        hits: Counter[str] = Counter(token for token in tokens if token in self.chinese)
        lowered = text.lower()
        for keyword, stem, pattern in self.latin:
            if stem not in lowered:
                continue
            n = len(pattern.findall(text))
            if n:
                hits[keyword] += n
        return hits


def _latin_pattern(keyword: str) -> re.Pattern[str]:
    # Each word is escaped (keywords are data: "c++" must not become a regex); a trailing
    # "*" is the one wildcard the policy file may use, for endings: "refund*" covers
    # refunds, refunded, refunding. Words of a phrase may be split by any whitespace.
    words = []
    for word in keyword.split():
        stem = word.rstrip("*")
        words.append(re.escape(stem) + ("[a-z]*" if word.endswith("*") else ""))
    return re.compile(r"(?<![0-9a-z])" + r"\s+".join(words) + r"(?![0-9a-z])", re.IGNORECASE)


@dataclass(frozen=True)
class _Matcher:
    categories: tuple[tuple[str, _KeywordSet], ...]
    threats: _KeywordSet
    data_leaks: _KeywordSet
    chinese_words: frozenset[str]


@lru_cache(maxsize=8)
def _matcher(rules: ClassificationRules) -> _Matcher:
    categories = tuple((name, _KeywordSet(keywords)) for name, keywords in rules.categories)
    threats = _KeywordSet(rules.threat_keywords)
    data_leaks = _KeywordSet(rules.data_leak_keywords)
    chinese_words = frozenset().union(
        threats.chinese, data_leaks.chinese, *(keywords.chinese for _, keywords in categories)
    )
    return _Matcher(categories, threats, data_leaks, chinese_words)


# jieba's dictionary takes about a second to load, so it is loaded once, on the first Chinese
# complaint, not at import.
_jieba_lock = threading.Lock()
_base_tokenizer: Any = None


def _segment(text: str, words: frozenset[str]) -> list[str]:
    # HMM off: it glues unknown neighbours into new words ("李老师"), hiding keywords; it never
    # finds a keyword the dictionary would miss, as every keyword is in the dictionary.
    tokens: list[str] = _tokenizer_for(words).lcut(text, HMM=False)
    return tokens


@lru_cache(maxsize=4)
def _tokenizer_for(words: frozenset[str]) -> Any:
    """A tokenizer whose dictionary also holds `words`.

    One per keyword set, because a word added to jieba's dictionary changes how the text around
    it is cut: the keywords of one set of rules (an old policy, a test's) must not hide those of
    another.
    """
    global _base_tokenizer
    with _jieba_lock:
        if _base_tokenizer is None:
            jieba.setLogLevel(logging.WARNING)
            base = jieba.Tokenizer()
            base.initialize()
            _base_tokenizer = base
        tokenizer = jieba.Tokenizer()
        # Copying the loaded dictionary takes milliseconds where loading it again takes a second.
        # FREQ / total / initialized are jieba's own (0.42) fields: initialize() sets exactly these.
        tokenizer.FREQ, tokenizer.total = dict(_base_tokenizer.FREQ), _base_tokenizer.total
        tokenizer.initialized = True
    for word in sorted(words):  # sorted: the same cut whatever order the set iterates in
        # Without this, jieba may cut a multi-character keyword ("乱收费") into pieces.
        tokenizer.add_word(word)
    return tokenizer
