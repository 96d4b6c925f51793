"""The classification rules compiled for scanning: every keyword of every role in one keyword set.

A keyword may name a category and play severity roles at once ("着火" is a safety word and a word of the
buildings' category); the text is scanned once and each hit is handed to every role it plays.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from core.classification.groups import GroupPatterns
from core.classification.keywords import KeywordSet
from core.classification.rules import ClassificationRules

__all__ = [
    "CONTACT", "DAMAGE", "DATUM", "DISCLOSURE", "FIXTURE", "GROUP", "LEAK", "OWN_DEALINGS", "PRACTICE",
    "SAFETY", "THIRD_PARTY", "THREAT",
    "Matcher", "matcher",
]  # fmt: skip

# Roles a keyword plays besides naming a category (one keyword may play several).
THREAT, GROUP, SAFETY, LEAK, DATUM, DISCLOSURE = (
    "threat",
    "group",
    "safety",
    "leak",
    "datum",
    "disclosure",
)
THIRD_PARTY, CONTACT, OWN_DEALINGS = "third party", "contact", "own dealings"
PRACTICE, FIXTURE, DAMAGE = "practice", "fixture", "damage"


@dataclass(frozen=True)
class Matcher:
    words: KeywordSet  # every keyword of every role: the text is scanned once
    roles: dict[str, tuple[str, ...]]  # keyword -> the categories and roles it plays
    categories: tuple[tuple[str, dict[str, float]], ...]  # category -> keyword -> weight
    groups: GroupPatterns
    hotlines: re.Pattern[str] | None  # the threat keywords that are numbers
    # Someone other than the writer saying something: "我老公说", "my sister says", "someone else in my class
    # said" (severity._theirs leaves out the one spoken to: "我跟老公说", "I told my husband").
    others_said: re.Pattern[str] | None = None


def matcher(rules: ClassificationRules) -> Matcher:
    # By identity first: hashing the rules' long keyword tuples on every complaint costs more than a
    # cache lookup should. By value second: every load of the same policy (a test's, a reload) shares
    # one matcher, whose hundreds of patterns take a good part of a second to build.
    cached = _by_identity.get(id(rules))
    if cached is None or cached[0] is not rules:
        if len(_by_identity) >= 64:
            _by_identity.clear()
        cached = _by_identity[id(rules)] = (rules, _build_matcher(rules))
    return cached[1]


_by_identity: dict[int, tuple[ClassificationRules, Matcher]] = {}


@lru_cache(maxsize=8)
def _build_matcher(rules: ClassificationRules) -> Matcher:
    roles: dict[str, list[str]] = {}
    categories = []
    for rule in rules.category_rules:
        categories.append((rule.name, dict(rule.weighted)))
        for keyword, _ in rule.weighted:
            roles.setdefault(keyword, []).append(rule.name)
    for role, words in (
        (THREAT, rules.threat_keywords), (GROUP, rules.group_keywords), (SAFETY, rules.safety_keywords),
        (LEAK, rules.data_leak_keywords), (DATUM, rules.personal_data_words),
        (DISCLOSURE, rules.disclosure_words), (THIRD_PARTY, rules.third_party_words),
        (CONTACT, rules.contact_words), (OWN_DEALINGS, rules.own_dealings_words),
        (PRACTICE, rules.practice_words), (FIXTURE, rules.fixture_words), (DAMAGE, rules.damage_words),
    ):  # fmt: skip
        for keyword in dict.fromkeys(word.strip() for word in words):
            roles.setdefault(keyword, []).append(role)
    numbers = sorted({kw.strip() for kw in rules.threat_keywords if kw.strip().isdigit()}, key=len)[::-1]
    return Matcher(
        words=KeywordSet(roles),
        roles={keyword: tuple(found) for keyword, found in roles.items()},
        categories=tuple(categories),
        groups=GroupPatterns.build(rules),
        hotlines=re.compile(rf"(?<![0-9])(?:{'|'.join(numbers)})(?![0-9])") if numbers else None,
        others_said=_others_said(rules),
    )


# How far the word of saying may stand after the person: "someone else in my class said".
_SAID_REACH = 30


def _others_said(rules: ClassificationRules) -> re.Pattern[str] | None:
    if not rules.threat_others or not rules.threat_said:
        return None
    others, said = (
        "|".join(_word(w) for w in sorted({w.strip().lower() for w in words}, key=len, reverse=True))
        for words in (rules.threat_others, rules.threat_said)
    )
    return re.compile(rf"(?:{others}).{{0,{_SAID_REACH}}}?(?:{said})")


def _word(word: str) -> str:
    """A word of the text: an English one whole ("mum", not the start of "minimum"); a Chinese one not inside
    a longer word ("别人" in "别人家" is a house, "朋友" in "朋友圈" a feed)."""
    pattern = r"\s+".join(map(re.escape, word.split()))
    return rf"(?<![a-z]){pattern}(?![a-z])" if word.isascii() else rf"{pattern}(?![家圈])"
