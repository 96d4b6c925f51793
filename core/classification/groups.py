"""Several learners sharing a complaint, told by how they are counted rather than by fixed phrases.

Three forms, all built from the policy's word lists:
- a count of people followed by a marker of a shared act: "十几个同学都…", "二十多个家长都被…",
  "20 people have complained"; "of us" / "of my …" marks itself: "15 of us";
- a quantifier before people, with a marker after it as for a count: "不少同学都…", "many students have…";
  "most of my classmates", "quite a few of us" mark themselves ("很多人推荐我来" is no shared complaint);
- a collective of ours with "都" (or "没一个") right after it: "我们这个班的学员基本上都…", "我们宿舍的都…",
  "咱们这期学员没一个…" (not "我们班的老师都…": only people words and a few adverbs may stand between);
  a whole collective's people: "整个周末班的学员都…", "整层楼的人都…";
- a count or quantifier that "我们" / "other" places the writer in marks itself: "我们几个女生", "对我们好几个
  同学…", "6 other people", "four other classmates"; so does a whole collective: "our whole evening group";
  "half the class" is a quantifier of a collective, needing a marker as a count does.
A class size ("一个班塞了四十多个人") has no marker, and fewer than `group_min_people` is not a group.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from core.classification.amounts import chinese_number
from core.classification.keywords import CJK
from core.classification.rules import ClassificationRules

__all__ = ["GroupPatterns", "find_group"]

_EN_NUMBERS = {
    "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
    "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
    "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50,
    "a dozen": 12, "dozens": 24,
}  # fmt: skip
# "15 of us", "most of my classmates", "20 of the class", "all nine" say who shares it; "a lot of students"
# does not.
_SELF_MARKED = re.compile(
    rf"of\s+(?:us|my|our|the\s+class)(?![a-z])|all\s+(?:[0-9]+|{'|'.join(_EN_NUMBERS)})(?:\s|$)"
)
_ZH_COUNT = r"[0-9]+|[一二两三四五六七八九十几百]+"
_MARKER_REACH = 12  # characters after the count where the marker may stand, in the same clause
_CLAUSE_END = re.compile(r"[，,。！？!?;；:：\n]|\.\s")
_ADVERBS = "(?:基本上|基本|几乎|差不多|大多|全|也)?"
_ALL_OR_NONE = "(?:都|全都|没有?一个|没有?人)"
# "我们几个女生", "我们班好几个同学", "我和另外四个人", "我们这一期三十来号人", "同期的十一个人", "me and a
# bunch of others": the writer is one of those counted. Right before the count only: "我们班有四十个人"
# states a class size.
_OURS = r"(?:(?:我们|咱们)(?:另外|其他|其余)?|另外|其余|(?<![a-z])me\s+and)"
# Between a measure word and the people counted, what they did: "五六个要转的同学", not "3个月的学员".
_WHO_DID = r"(?:(?![月天年周节课小星])[\u4e00-\u9fff]{1,5}的)?"
# A count stressed as a lower bound is of those who share the complaint: "至少五个人", "at least six
# children".
_AT_LEAST = re.compile(r"(?:至少|起码|(?<![a-z])(?:at least|as many as|no fewer than))\s*$")
_RANGE = re.compile(r"([一二三四五六七八九])[一二三四五六七八九](?=十|百|个|$)")


@dataclass(frozen=True)
class GroupPatterns:
    counts: tuple[re.Pattern[str], ...]  # each with the groups "who" and, for a number, "n"
    collective: re.Pattern[str] | None
    whole: re.Pattern[str] | None = None  # "our whole evening group": marks itself
    part: re.Pattern[str] | None = None  # "half the class": needs a marker
    ours: re.Pattern[str] = re.compile(rf"{_OURS}\s*$")

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
            counts.append(rf"(?P<n>{_ZH_COUNT})\s*(?:多|来|余)?\s*(?:个|名|位|号)?\s*(?P<who>{zh_people})")
            counts.append(rf"(?P<n>{_ZH_COUNT})\s*(?:多|来|余)?\s*(?:个|名|位){_WHO_DID}(?P<who>{zh_people})")
            # "我们三个都…", "我们仨一起": the people word left out after "我们".
            counts.append(rf"(?P<who>我们|咱们)(?P<n>{_ZH_COUNT}|仨)\s*(?:个|位|名)?(?=\s*(?:都|也|全|一起))")
            if zh_quantifiers:
                counts.append(rf"(?:{zh_quantifiers})\s*的?\s*(?:个|名|位)?\s*(?P<who>{zh_people})")
        if en_people:
            numbers = _alternatives(_EN_NUMBERS)
            counts.append(
                rf"(?<![0-9a-z])(?P<n>[0-9]+|{numbers})\s+(?P<other>other\s+)?(?P<who>{en_people})(?![a-z])"
            )
        if en_quantifiers and en_nouns:
            counts.append(
                rf"(?<![a-z])(?:{en_quantifiers})\s+(?P<who>of\s+(?:us(?![a-z])|(?:my|our)\s+(?:{en_nouns}))"
                rf"|(?:of\s+)?(?:the\s+)?(?:{en_nouns})(?![a-z]))"
            )
            # "18 of the 20 people in my class": a part counted out of a whole.
            counts.append(
                rf"(?<![0-9a-z])(?P<n>[0-9]+|{numbers})\s+of\s+(?:the\s+|my\s+|our\s+)?(?:[0-9]+|{numbers})\s+"
                rf"(?P<part>(?:other\s+)?(?:{en_people}))(?![a-z])"
            )
        if en_nouns:  # "all 25 students": everyone of a counted group
            counts.append(rf"(?<![a-z])(?P<who>all\s+[0-9]+\s+(?:{en_nouns}))(?![a-z])")
        if en_people:  # "all nine have been taught…": everyone of a group counted before
            numbers = _alternatives(_EN_NUMBERS)
            counts.append(
                rf"(?<![a-z])(?P<who>all\s+(?:[0-9]+|{numbers}))\s+(?=(?:have|had|are|were)(?![a-z]))"
            )
        collectives = _alternatives(w for w in rules.group_collectives if CJK.search(w))
        en_collectives = _alternatives(w for w in rules.group_collectives if not CJK.search(w))
        collective = whole = part = None
        ours = re.compile(rf"{_OURS}\s*$")
        if collectives and zh_people:
            collective = re.compile(
                rf"(?:(?:(?:我们|咱们)[这那]?[个一]?(?:{collectives})的?(?:{zh_people})?"
                # "这期学员几乎都…", "那期的人基本都…": without 我们, only with the people named.
                rf"|[这那][个一]?(?:{collectives})的?(?:{zh_people})"
                rf"|(?:整个|整)[\u4e00-\u9fff]{{0,4}}?(?:{collectives})的?(?:{zh_people})"
                rf"|同一?(?:{collectives})(?:(?:进来|报名|入学|上课)?的(?:{zh_people})?|(?:{zh_people}))"
                rf"){_ADVERBS}{_ALL_OR_NONE}"
                # "整个周末班的课都停了", "整个实验班一学期…": a whole class, named by what it is; not the
                # course the writer signed up for ("我报的是整个暑假班") nor its length ("整个培训班下来").
                rf"|(?<!报的是)(?<!报了)整个[\u4e00-\u9fff]{{1,4}}?班(?![主级长]|下来|结束|期间)"
                # "整整一个班的进度都落下了": a whole collective, counted as one.
                rf"|(?:整整|一整)[一个]{{0,2}}(?:{collectives}))"
            )
            # "我们这一期三十来号人", "同期的十一个人": the writer's collective right before a count.
            ours = re.compile(
                rf"(?:{_OURS}|(?:我们|咱们)[这那]?[一个]?(?:{collectives})的?|同一?(?:{collectives})的)\s*$"
            )
        if en_collectives:
            # "our whole evening group", "the entire Saturday cohort", "nobody in the Tuesday night cohort":
            # a word or two may describe it.
            whole = re.compile(
                rf"(?<![a-z])(?:whole|entire"
                rf"|(?:nobody|no one|everyone|everybody|none)\s+(?:in|of)\s+(?:the|our|my))"
                rf"\s+(?:[a-z0-9-]+\s+){{0,2}}?(?:{en_collectives})(?![a-z])"
            )
            if en_quantifiers:
                part = re.compile(
                    rf"(?<![a-z])(?:{en_quantifiers})\s+(?:of\s+)?(?:the|my|our)\s+(?:{en_collectives})(?![a-z])"
                )
        return cls(tuple(re.compile(pattern) for pattern in counts), collective, whole, part, ours)


def find_group(text: str, rules: ClassificationRules, patterns: GroupPatterns) -> str | None:
    """The words that show several learners share the complaint, or None. `text` is lower-cased."""
    for pattern in patterns.counts:
        for m in pattern.finditer(text):
            # "two other mums": the writer's side is one more.
            others = 1 if m.groupdict().get("other") else 0
            if m.groupdict().get("n") and _count_value(m.group("n")) + others < rules.group_min_people:
                continue
            ours = m.groupdict().get("other") or patterns.ours.search(text, max(0, m.start() - 10), m.start())
            # "the seven others in my level", "我们仨": the writer is one of them.
            ours = ours or m.groupdict().get("part") or m.groupdict().get("who") in ("others", "我们", "咱们")
            ours = ours or _stressed(text, m.start())
            if ours or _SELF_MARKED.match(m.group("who")) or _marked(text, m.end(), rules):
                return m.group().strip()
    for whole in (patterns.collective, patterns.whole):
        found = whole.search(text) if whole is not None else None
        if found:
            return found.group().strip()
    if patterns.part is not None:
        for m in patterns.part.finditer(text):
            if _marked(text, m.end(), rules):
                return m.group().strip()
    return None


def _stressed(text: str, start: int) -> bool:
    """A count stressed as a lower bound ("至少五个人都被踢了"), unless it is a class's size
    ("我们班至少三十个人", "at least 30 students in the room")."""
    before = text[max(0, start - 14) : start]
    if not _AT_LEAST.search(before) or _ASKED_OF.search(text[max(0, start - 24) : start]):
        return False
    return not _SIZE_OF.search(before + text[start : start + 24])


_SIZE_OF = re.compile(r"班(?!主任)|教室|(?<![a-z])(?:class|room|group)(?![a-z])")
# The staff asked ("我问了至少三个人", "I've talked to at least three people"): not learners sharing it.
_ASKED_OF = re.compile(
    r"(?:问了|问过|找了|找过|打给|咨询了|联系了|(?<![a-z])(?:talked to|spoke to|spoken to|asked|called|"
    r"emailed|contacted|rang))\s*(?:了|过)?\s*(?:至少|起码|at least)\s*$"
)


def _marked(text: str, end: int, rules: ClassificationRules) -> bool:
    """A marker of a shared act in the clause right after a count: "都", "被", " have", " failed"."""
    # "several parents in the Saturday art class have…": the marker after where they are.
    where = _WHERE.match(text, end)
    end = where.end() if where else end
    tail = _CLAUSE_END.split(text[end : end + _MARKER_REACH], maxsplit=1)[0]
    return any(marker.lower() in tail for marker in rules.group_markers)


_WHERE = re.compile(
    r"\s+(?:in|from|at)\s+(?:the|our|my|this|his|her)\s+(?:[a-z0-9'-]+\s+){0,3}?"
    r"(?:class|group|cohort|course|batch|level|programme|program)(?![a-z])"
)


def _count_value(number: str) -> int:
    if number in _EN_NUMBERS:
        return _EN_NUMBERS[number]
    if number == "仨":
        return 3
    # "十几", "几十": a handful at least; "五六", "七八十": a range, its lower end.
    value = chinese_number(_RANGE.sub(r"\1", number.replace("几", "三")))
    return int(value) if value is not None else 0


def _alternatives(words: Iterable[str]) -> str:
    # Longest first, so "of the class" is tried before "of the"; a phrase matches with any spacing.
    unique = sorted({w.strip().lower() for w in words}, key=len, reverse=True)
    return "|".join(r"\s+".join(map(re.escape, w.split())) for w in unique)
