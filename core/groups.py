"""Several learners sharing a complaint, told by how they are counted rather than by fixed phrases.

Three forms, all built from the policy's word lists:
- a count of people followed by a marker of a shared act: "十几个同学都…", "二十多个家长都被…",
  "20 people have complained"; "of us" / "of my …" marks itself: "15 of us";
- a quantifier before people, with a marker after it as for a count: "不少同学都…", "many students have…";
  "most of my classmates", "quite a few of us" mark themselves ("很多人推荐我来" is no shared complaint);
- a collective of ours with "都" right after it: "我们这个班的学员基本上都…", "我们宿舍的都…" (not
  "我们班的老师都…": only people words and a few adverbs may stand between).
A class size ("一个班塞了四十多个人") has no marker, and fewer than `group_min_people` is not a group.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from core.amounts import chinese_number
from core.classify_rules import ClassificationRules
from core.keywords import CJK

__all__ = ["GroupPatterns", "find_group"]

_EN_NUMBERS = {
    "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
    "eleven": 11, "twelve": 12, "fifteen": 15, "twenty": 20, "thirty": 30, "a dozen": 12, "dozens": 24,
}  # fmt: skip
_ZH_COUNT = r"[0-9]+|[一二两三四五六七八九十几百]+"
_MARKER_REACH = 12  # characters after the count where the marker may stand, in the same clause
_CLAUSE_END = re.compile(r"[，,。！？!?;；:：\n]|\.\s")
# "15 of us", "most of my classmates", "20 of the class" say who shares it; "a lot of students" does not.
_SELF_MARKED = re.compile(r"of\s+(?:us|my|our|the\s+class)(?![a-z])|all\s+[0-9]+\s")
_ADVERBS = "(?:基本上|基本|几乎|差不多|大多|全|也)?"


@dataclass(frozen=True)
class GroupPatterns:
    counts: tuple[re.Pattern[str], ...]  # each with the groups "who" and, for a number, "n"
    collective: re.Pattern[str] | None

    @classmethod
    def build(cls, rules: ClassificationRules) -> GroupPatterns:
        zh_people = _alternatives(w for w in rules.people_words if CJK.search(w))
        en_people = _alternatives(w for w in rules.people_words if not CJK.search(w))
        en_nouns = _alternatives(
            w for w in rules.people_words if not CJK.search(w) and not w.startswith("of ")
        )
        zh_quantifiers = _alternatives(w for w in rules.group_quantifiers if CJK.search(w))
        en_quantifiers = _alternatives(w for w in rules.group_quantifiers if not CJK.search(w))
        counts = []
        if zh_people:
            counts.append(rf"(?P<n>{_ZH_COUNT})\s*(?:多|来|余)?\s*(?:个|名|位)?\s*(?P<who>{zh_people})")
            if zh_quantifiers:
                counts.append(rf"(?:{zh_quantifiers})\s*的?\s*(?:个|名|位)?\s*(?P<who>{zh_people})")
        if en_people:
            numbers = _alternatives(_EN_NUMBERS)
            counts.append(rf"(?<![0-9a-z])(?P<n>[0-9]+|{numbers})\s+(?P<who>{en_people})(?![a-z])")
        if en_quantifiers and en_nouns:
            counts.append(
                rf"(?<![a-z])(?:{en_quantifiers})\s+(?P<who>of\s+(?:us(?![a-z])|(?:my|our)\s+(?:{en_nouns}))"
                rf"|(?:of\s+(?:the\s+)?)?(?:{en_nouns})(?![a-z]))"
            )
        if en_nouns:  # "all 25 students": everyone of a counted group
            counts.append(rf"(?<![a-z])(?P<who>all\s+[0-9]+\s+(?:{en_nouns}))(?![a-z])")
        collectives = _alternatives(w for w in rules.group_collectives if CJK.search(w))
        collective = None
        if collectives and zh_people:
            collective = re.compile(
                rf"(?:我们|咱们)[这那]?[个一]?(?:{collectives})的?(?:{zh_people})?{_ADVERBS}都"
            )
        return cls(tuple(re.compile(pattern) for pattern in counts), collective)


def find_group(text: str, rules: ClassificationRules, patterns: GroupPatterns) -> str | None:
    """The words that show several learners share the complaint, or None. `text` is lower-cased."""
    for pattern in patterns.counts:
        for m in pattern.finditer(text):
            if m.groupdict().get("n") and _count_value(m.group("n")) < rules.group_min_people:
                continue
            tail = _CLAUSE_END.split(text[m.end() : m.end() + _MARKER_REACH], maxsplit=1)[0]
            if _SELF_MARKED.match(m.group("who")) or any(
                marker.lower() in tail for marker in rules.group_markers
            ):
                return m.group().strip()
    found = patterns.collective.search(text) if patterns.collective is not None else None
    return found.group().strip() if found else None


def _count_value(number: str) -> int:
    if number in _EN_NUMBERS:
        return _EN_NUMBERS[number]
    value = chinese_number(number.replace("几", "三"))  # "十几", "几十": a handful at least
    return int(value) if value is not None else 0


def _alternatives(words: Iterable[str]) -> str:
    # Longest first, so "of the class" is tried before "of the"; a phrase matches with any spacing.
    unique = sorted({w.strip().lower() for w in words}, key=len, reverse=True)
    return "|".join(r"\s+".join(map(re.escape, w.split())) for w in unique)
