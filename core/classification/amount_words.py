"""Amounts as learners write them in words and in instalments.

- English number words become digits before amounts are read: "eighteen hundred", "three thousand two
  hundred yuan", "five grand" are 1800, 3200 and 5 grand;
- "两个多w", "三个w" are 万 written on a phone keyboard; "好几千", "大几万" are at least 一千, 一万;
- a sum paid every month or instalment, with the number of months, instalments or years in the same
  sentence, is what the learner owes in all: "每个月还八百多，要还两年", "399 a month for twelve months".
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal

__all__ = ["instalment_totals", "with_digits"]

_UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30,
    "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
}  # fmt: skip
_SCALES = {"hundred": 100, "thousand": 1000}
_WORD = "|".join(sorted([*_UNITS, *_SCALES], key=len, reverse=True))
_FIRST = "|".join(sorted(_UNITS, key=len, reverse=True))
# A run of number words ("three thousand two hundred", "twenty-five hundred", "a thousand"), starting with
# a number, not a scale: in "3 thousand" the digits are already there.
_RUN = re.compile(
    rf"(?<![a-z])(?:{_FIRST}|a(?=\s+(?:hundred|thousand)))"
    rf"(?:[\s-]+(?:and[\s-]+)?(?:{_WORD})(?![a-z]))*(?![a-z])",
    re.I,
)
# "好几千", "大几万": some thousands, so at least one.
_SOME = re.compile(r"[好大]?几(?=[千万])")
# "两个多w", "三个w": a count of 万.
_GE_W = re.compile(r"(?<=[一二两三四五六七八九十几0-9])个(多|半)?\s*[wW](?![A-Za-z])")

_COUNT = r"[0-9]+|[一二两三四五六七八九十]+|" + "|".join(_UNITS)
# A sum per period: "每个月八百多", "每期六百", "一期七百多", "月供1200"; "399 a month", "600 per month",
# "200 monthly".
_NUMBER = r"[0-9][0-9,]*(?:\.[0-9]+)?|[一二两三四五六七八九十百千万零]+"
_PER_PERIOD = re.compile(
    # "一期" is an instalment ("一期五百"), not the first phase of a course ("一期的课程1980").
    rf"(?:每个?月|每期|一期(?![的课班])|月供|每月)[^，,。！？!?0-9一二两三四五六七八九十]{{0,4}}(?P<zh>{_NUMBER})"
    rf"|(?<![0-9.])(?P<en>[0-9][0-9,]*(?:\.[0-9]+)?)\s*(?:yuan|rmb|kuai)?\s*(?:a|per|/|each)\s*(?:month|instal+ment)",
    re.I,
)
# How many periods: "要还两年", "分了12期", "12个月", "twelve-month", "for 24 months", "two years".
_PERIODS = re.compile(
    rf"(?P<n>{_COUNT})\s*(?:-|\s)?(?P<unit>年|个月|期|months?|years?|instal+ments?)(?![a-z])", re.I
)
_SENTENCE_END = re.compile(r"[。！？!?;；\n]|\.\s")


def with_digits(text: str) -> str:
    """The text with English number words in digits, "两个多w" as "两万多" and "好几千" as "一千"."""
    text = _SOME.sub("一", text)
    text = _GE_W.sub(lambda m: "万" + (m.group(1) or ""), text)
    return _RUN.sub(_number_of, text)


def _number_of(match: re.Match[str]) -> str:
    words = [w for w in re.split(r"[\s-]+", match.group().lower()) if w and w != "and"]
    total = current = 0
    for word in words:
        if word == "a":
            current = 1
        elif word in _UNITS:
            current += _UNITS[word]
        elif word == "hundred":
            current = (current or 1) * 100
        else:  # thousand
            total += (current or 1) * 1000
            current = 0
    return str(total + current)


def instalment_totals(text: str, number: Callable[[str], Decimal | None]) -> list[Decimal]:
    """What a learner pays in all when a sum per month or instalment and the number of them are in one
    sentence. `text` has had with_digits applied; `number` reads a numeral ("八百", "1,200")."""
    totals = []
    start = 0
    for end_match in [*_SENTENCE_END.finditer(text), None]:
        end = end_match.end() if end_match else len(text)
        sentence = text[start:end]
        start = end
        per = _PER_PERIOD.search(sentence)
        if not per:
            continue
        amount = number((per.group("zh") or per.group("en")).replace(",", ""))
        periods = [p for p in _PERIODS.finditer(sentence) if not (per.start() <= p.start() < per.end())]
        if amount is None or not periods:
            continue
        n = _count(periods[0].group("n"), number)
        if periods[0].group("unit").lower().startswith(("年", "year")):
            n *= 12
        if n > 1:
            totals.append(amount * n)
    return totals


def _count(word: str, number: Callable[[str], Decimal | None]) -> int:
    if word.lower() in _UNITS:
        return _UNITS[word.lower()]
    value = number(word)
    return int(value) if value is not None else 0
