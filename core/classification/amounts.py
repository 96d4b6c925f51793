"""Money amounts mentioned in a complaint, in yuan.

A number counts only when something ties it to money: a currency sign or word next to it
(¥, RMB, CNY, 人民币 before; 元, 块, yuan, RMB, ... after), a Chinese magnitude (万, 千) that
learners use for money without saying 元 ("两万"), or paying right before it ("交了5800",
"paid 5000"). Phone numbers, dates, durations and course codes carry no such marker, so they
are never mistaken for amounts.
"""

from __future__ import annotations

import re
import unicodedata
from decimal import Decimal

from core.classification.amount_words import instalment_totals, with_digits

__all__ = ["chinese_number", "parse_amounts"]

_DIGITS = {
    "零": 0, "〇": 0, "一": 1, "壹": 1, "二": 2, "贰": 2, "貳": 2, "两": 2, "兩": 2, "俩": 2,
    "三": 3, "叁": 3, "參": 3, "四": 4, "肆": 4, "五": 5, "伍": 5, "六": 6, "陆": 6, "陸": 6,
    "七": 7, "柒": 7, "八": 8, "捌": 8, "九": 9, "玖": 9,
}  # fmt: skip
_SMALL_UNITS = {"十": 10, "拾": 10, "百": 100, "佰": 100, "千": 1000, "仟": 1000}
_BIG_UNITS = {"万": 10**4, "萬": 10**4, "亿": 10**8, "億": 10**8}
_ZERO = frozenset("零〇")
_CN_CHARS = "".join([*_DIGITS, *_SMALL_UNITS, *_BIG_UNITS])
# Chinese magnitudes that make a bare number an amount: nobody says "两万" of anything
# but money in a complaint, unless a measure word follows (see _NOT_MONEY_AFTER).
_MONEY_MAGNITUDES = frozenset("千仟万萬亿億")

_ARABIC = r"[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]+)?|[0-9]+(?:\.[0-9]+)?"
_UNIT_CHARS = "".join([*_SMALL_UNITS, *_BIG_UNITS])
# Arabic digits join a following Chinese numeral only through a unit ("2万8", "1.5万"): in
# "定金¥600一直没退" the "一" starts a new word, and "600一" is not 6001.
_NUMERAL = re.compile(
    rf"(?:{_ARABIC})(?:[{_UNIT_CHARS}](?:{_ARABIC}|[{_CN_CHARS}])*)?|[{_CN_CHARS}](?:{_ARABIC}|[{_CN_CHARS}])*"
)
_ARABIC_ONLY = re.compile(_ARABIC)
_PIECE = re.compile(r"[0-9]+(?:\.[0-9]+)?|.", re.S)
_PREFIX = re.compile(r"(?:¥|(?<![A-Za-z])(?:RMB|CNY)|人民币)\s*$", re.I)
# "2k" or "3 thousand" is money only next to a currency word: "2k words" is not.
_MULTIPLIER = re.compile(r"\s*(?P<mult>[kw]|thousand|grand)(?![A-Za-z])", re.I)
_MULTIPLIERS = {"k": 1000, "w": 10**4, "thousand": 1000, "grand": 1000}
# "1w2" is how a phone keyboard writes 1万2 (12000).
_W_WITH_DIGIT = re.compile(r"(?<=[0-9])[wW](?=[0-9](?![0-9]))")
_SUFFIX = re.compile(r"\s*(?:多|余|来)?\s*(?:元|块|圆|人民币|(?:RMB|CNY|yuan|kuai)(?![A-Za-z]))", re.I)
_APPROX = re.compile(r"多|余|来")
_NOT_MONEY_AFTER = frozenset(
    "字个人名位次遍步米里公克斤本页题道词句行条张天年月日周小分秒倍份件所家户号级期节课届批门科春夏秋冬季版"
)
# A number right after paying, or right before "学费", is money even without 元: learners write
# "交了5800" and "19800的学费". Only from 100 up, so "一共3" of anything stays out, and not when a
# unit, another currency or the rest of a date follows.
_PAID_BEFORE = re.compile(
    r"(?:交了|付了|花了|交的|付的|报了|买了|续了|充了|学费|费用|花费|一共|总共|共计|(?:课|班)(?:一年|一学期|每年|每学期)"
    r"|(?<![A-Za-z])paid)\s*(?:是|为|了)?\s*$",
    re.I,
)
_FEE_AFTER = re.compile(r"\s*的?(?:学费|培训费|报名费|费用)")
_NOT_MONEY_WORDS = re.compile(
    r"\s*(?:\$|(?:usd|us|dollars?|euros?|eur|pounds?|gbp|hkd|times?|days?|weeks?|months?|years?|hours?"
    r"|minutes?|lessons?|classes|students?|people|words?|pages?|km|kg)(?![A-Za-z])|[-/:][0-9])",
    re.I,
)
_MIN_CONTEXT_AMOUNT = 100
# Money words near a bare number ("charged 4,200", "tuition went up by 2000", "多付的1280", "8k的学费",
# "15k"): within the same sentence, this far before or after it.
_MONEY_WORDS = re.compile(
    r"学费|费|钱|交|付|退|扣|收|贷|价|款|每期|卡里|卡上|划走|(?<![a-z])(?:tuition|fees?|charg\w*|paid|pay\w*|price\w*"
    r"|costs?|refund\w*|loans?|deposit|money|spent|spend\w*|dropped|wasted|owe\w*|installments?|instalments?"
    r"|contract|back|card|bank|statement|took|taken|all[ -]in|in total|total|keep\w*|kept|return\w*"
    r")(?![a-z])",
    re.I,
)
# A shorthand ("8k的课程", "15k on this bootcamp") priced a course: what else would be counted in thousands?
_COURSE_WORDS = re.compile(
    r"课|班|培训|营|(?<![a-z])(?:course|bootcamp|camp|class|program+e?|training)(?![a-z])", re.I
)
_CONTEXT_BEFORE, _CONTEXT_AFTER = 60, 20
_SENTENCE_END = re.compile(r"[。！？!?;；\n]|\.\s")
# A bare year after "in", "from", "since" ... is a date, not a sum ("the textbook is from 2018").
_YEAR = re.compile(r"(?:19[5-9][0-9]|20[0-9]{2})")
_YEAR_BEFORE = re.compile(
    r"(?:(?<![a-z])(?:in|from|since|until|till|before|after|of|year)\s+|在|从|自)$", re.I
)
# A bare number right after one of these names something: a phone's last digits, an extension, a learner's
# or a room's number.
_LABEL_BEFORE = re.compile(
    r"(?:尾号|分机|分机号|工号|学号|编号|座号|房号|教室|电话|手机|号码|订单号|单号|"
    r"(?<![a-z])(?:ext|extension|room|no|number|id|order|ticket|student (?:id|no|number))\.?\s*(?:#|no\.?)?)"
    r"\s*(?:是|为|:|：|#)?\s*$",
    re.I,
)
# Nobody pays a school this much: such a "sum" is an ID or a slip of the keyboard, and keeping
# it would overflow the ticket's money column.
_MAX_AMOUNT = Decimal(10**10)


def parse_amounts(text: str) -> list[Decimal]:
    """Every money amount in `text`, in yuan, in the order they appear."""
    # NFKC turns full-width digits, letters and ￥ into their ASCII forms.
    text = with_digits(_W_WITH_DIGIT.sub("万", unicodedata.normalize("NFKC", text)))
    amounts: list[Decimal] = []
    for match in _NUMERAL.finditer(text):
        numeral, start, end = match.group(), match.start(), match.end()
        value = chinese_number(numeral)
        if value is None or value <= 0:
            continue
        has_prefix = _PREFIX.search(text, max(0, start - 8), start) is not None
        pure_arabic = _ARABIC_ONLY.fullmatch(numeral) is not None
        if not has_prefix and start > 0 and text[start - 1].isascii() and text[start - 1].isalpha():
            continue  # part of a code such as HSK5 or C2000
        multiplier = _MULTIPLIER.match(text, end) if pure_arabic else None
        after = multiplier.end() if multiplier else end
        has_suffix = _SUFFIX.match(text, after) is not None
        if multiplier:
            value *= _MULTIPLIERS[multiplier.group("mult").lower()]
        if has_prefix or has_suffix:
            pass
        elif multiplier:
            # "8k的学费", "15k" after a refund: a shorthand is money only among money words.
            if _measure_follows(text, after) or not (
                _money_nearby(text, start, after, _CONTEXT_BEFORE)
                or _money_nearby(text, start, after, _CONTEXT_BEFORE, _COURSE_WORDS)
            ):
                continue
        elif not (
            _is_paid(text, start, end, value)
            or _is_bare_money(numeral, text, end)
            or (pure_arabic and _is_bare_sum(numeral, text, start, end, value))
        ):
            continue
        if value < _MAX_AMOUNT:
            amounts.append(_whole(value))
    amounts += [_whole(total) for total in instalment_totals(text, chinese_number) if total < _MAX_AMOUNT]
    return amounts


def _is_paid(text: str, start: int, end: int, value: Decimal) -> bool:
    if value < _MIN_CONTEXT_AMOUNT or _measure_follows(text, end):
        return False
    return _PAID_BEFORE.search(text, max(0, start - 8), start) is not None or bool(
        _FEE_AFTER.match(text, end)
    )


def _is_bare_sum(numeral: str, text: str, start: int, end: int, value: Decimal) -> bool:
    """A plain number of 1000 or more among money words: "charged 4,200", "多付的1280"."""
    # "1,850." ends a sentence; "1.5.2" is a version number.
    decimal = text[end : end + 1] == "." and text[end + 1 : end + 2].isdigit()
    if value < 1000 or _measure_follows(text, end) or text[end : end + 1] == "%" or decimal:
        return False
    if "," not in numeral and (len(numeral) > 7 or numeral.startswith("0")):
        return False  # a phone number, an order or ID number
    if _YEAR.fullmatch(numeral) and _YEAR_BEFORE.search(text, max(0, start - 8), start):
        return False
    if _LABEL_BEFORE.search(text, max(0, start - 12), start):
        return False  # "尾号3365", "学号2023", "room 1203": a number that names, not a sum
    return _money_nearby(text, start, end, _CONTEXT_BEFORE)


def _money_nearby(text: str, start: int, end: int, reach: int, words: re.Pattern[str] = _MONEY_WORDS) -> bool:
    before = text[max(0, start - reach) : start]
    ends = list(_SENTENCE_END.finditer(before))
    if ends:
        before = before[ends[-1].end() :]
    after = _SENTENCE_END.split(text[end : end + _CONTEXT_AFTER], maxsplit=1)[0]
    return words.search(before) is not None or words.search(after) is not None


def _is_bare_money(numeral: str, text: str, end: int) -> bool:
    if not _MONEY_MAGNITUDES.intersection(numeral):
        return False
    first = numeral[0]
    # "千万别报" (by all means don't), "万一" (in case), "十万火急": a magnitude with no digit before it.
    if not (first.isdigit() or (first in _DIGITS and first not in _ZERO)):
        return False
    following = text[end : end + 1]
    return not _measure_follows(text, end) and not (following.isascii() and following.isalpha())


def _measure_follows(text: str, end: int) -> bool:
    following = text[end : end + 2]
    if _APPROX.match(following):
        following = following[1:]
    return following[:1] in _NOT_MONEY_AFTER or _NOT_MONEY_WORDS.match(text, end) is not None


def chinese_number(numeral: str) -> Decimal | None:
    """The value of a numeral written with Arabic digits, Chinese digits and units, or both.

    "一千五百" = 1500, "一千五" = 1500, "两万五" = 25000, "1.5万" = 15000, "三四千" = 4000 (a range:
    the upper end), "二零二六" = 2026. None if it is not a number at all.
    """
    pieces = _PIECE.findall(numeral.replace(",", ""))
    if not pieces:
        return None
    if not any(piece in _SMALL_UNITS or piece in _BIG_UNITS for piece in pieces):
        digits = [str(_DIGITS[p]) if p in _DIGITS else p for p in pieces]
        return Decimal("".join(digits)) if all(_is_arabic(d) for d in digits) else None
    total = section = Decimal(0)
    pending: Decimal | None = None
    last_unit: int | None = None
    right_after_unit = False
    abbreviated = False
    for piece in pieces:
        if piece in _ZERO:
            right_after_unit = False
        elif piece in _DIGITS or _is_arabic(piece):
            digit = Decimal(_DIGITS[piece]) if piece in _DIGITS else Decimal(piece)
            # Two digits in a row before a unit ("三四千") name a range.
            pending = digit if pending is None else max(pending, digit)
            abbreviated = right_after_unit
            right_after_unit = False
        elif piece in _SMALL_UNITS:
            section += (pending if pending is not None else 1) * _SMALL_UNITS[piece]
            pending, last_unit, right_after_unit = None, _SMALL_UNITS[piece], True
        elif piece in _BIG_UNITS:
            unit = _BIG_UNITS[piece]
            amount = section + (pending if pending is not None else (0 if section or total else 1))
            total = (total + amount) * unit if unit > 10**4 else total + amount * unit
            section, pending, last_unit, right_after_unit = Decimal(0), None, unit, True
        else:
            return None
    if pending is not None:
        # "一千五" means 1500 and "两万五" 25000: a last digit right after a unit of 100 or more
        # counts in the next unit down.
        if abbreviated and last_unit is not None and last_unit >= 100:
            pending *= Decimal(last_unit) / 10
        section += pending
    return total + section


def _is_arabic(piece: str) -> bool:
    return piece[:1].isdigit() and piece[:1].isascii()


def _whole(value: Decimal) -> Decimal:
    return value.quantize(Decimal(1)) if value == value.to_integral_value() else value
