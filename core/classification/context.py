"""What a complaint says that does not count toward its severity, sentence by sentence.

A learner writes around the point: a matter that is closed ("上回被盗刷的事你们已经报警处理了，钱也追回来了"),
a threat in jest ("崩得我都想报警了，笑死"), the price of a course that is not in dispute ("课程价格1980我
觉得还行"). Each is recognised by cue words of the policy file, within one sentence, so that the rest of the
complaint is judged on its own.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from opencc_purepy import OpenCC

from core.classification.keywords import CJK
from core.classification.rules import ClassificationRules

__all__ = ["jest_sentences", "simplified", "without_closed_matters", "without_waived_amounts"]

# A sentence ends at a stop, a question or exclamation mark, a semicolon or a line break.
_SENTENCE_END = re.compile(r"[。！？!?;；\n]+|\.(?:\s+|$)")
_CLAUSE_END = re.compile(r"[。！？!?;；\n，,]+|\.(?:\s+|$)")


@lru_cache(maxsize=1)
def _converter() -> OpenCC:
    return OpenCC("t2s")


def simplified(text: str) -> str:
    """The text in simplified characters: the keyword lists are written in them, learners in Hong Kong,
    Taiwan and abroad write "學費", "退費", "幾個人"."""
    if not CJK.search(text):
        return text
    return str(_converter().convert(text))


def _sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence, its closing punctuation included."""
    return _spans(text, _SENTENCE_END)


def _spans(text: str, ends: re.Pattern[str]) -> list[tuple[int, int]]:
    spans, start = [], 0
    for match in ends.finditer(text):
        spans.append((start, match.end()))
        start = match.end()
    if start < len(text):
        spans.append((start, len(text)))
    return spans


def _has(sentence: str, cues: Sequence[str]) -> str | None:
    return next((cue for cue in cues if cue.lower() in sentence), None)


def without_closed_matters(text: str, rules: ClassificationRules) -> tuple[str, list[str]]:
    """The text without its sentences about a matter already closed: a past cue and a settled cue, and
    nothing saying it is still open ("上次说已经处理了，结果还没退" stays). The complaint is what remains;
    when nothing remains, the text is kept whole."""
    if not rules.settled_cues or not rules.past_cues:
        return text, []
    rest, reasons = _without_closed(text, _sentences(text), rules)
    if not rest.strip():
        # One sentence that closes a matter and raises another ("上次漏电的事已经处理了，这次是插座不够用"):
        # its clauses are judged instead.
        rest, reasons = _without_closed(text, _spans(text, _CLAUSE_END), rules)
    if not rest.strip():
        return text, []
    return rest, reasons


def _without_closed(
    text: str, spans: list[tuple[int, int]], rules: ClassificationRules
) -> tuple[str, list[str]]:
    """The text with the spans about a closed matter blanked, and why."""
    lowered = text.lower()
    kept, reasons = [], []
    for start, end in spans:
        sentence = lowered[start:end]
        settled, past = _has(sentence, rules.settled_cues), _has(sentence, rules.past_cues)
        if settled and past and not _has(sentence, rules.unsettled_cues):
            reasons.append(f"a closed matter ({past!r}, {settled!r}) left out")
            kept.append(" " * (end - start))
        else:
            kept.append(text[start:end])
    return "".join(kept), reasons


def without_waived_amounts(text: str, rules: ClassificationRules) -> str:
    """The text with the sentences blanked in which the learner says an amount is not at stake: a price
    found fair, a course someone else paid for ("my employer covered it", "一分没花"). What a contrast
    after the waiver brings up stays: "钱也退了一半，剩下的1500还没退", "fair until you added 1500"."""
    if not rules.amount_waivers:
        return text
    lowered = text.lower()
    parts = []
    for start, end in _sentences(text):
        sentence = lowered[start:end]
        at = _waiver(sentence, rules.amount_waivers)
        if at is None:
            parts.append(text[start:end])
            continue
        turn = _CONTRAST.search(sentence, at)
        upto = start + (turn.start() if turn else len(sentence))
        parts.append(" " * (upto - start) + text[upto:end])
    return "".join(parts)


# After a waiver, these bring up another sum: "…，但…", "剩下的…", "还差…", "but…", "until you added…".
_CONTRAST = re.compile(
    r"但|可是|可|不过|却|剩下|剩余|还差|还有|另外|另收|又收|又要|(?<![a-z])(?:but|until|except|however|only|then)(?![a-z])"
)


# Right before a waiver, these turn it round: "谁能接受", "不觉得值", "还没全额到账", "无法接受";
# "not worth it", "wasn't fair", "hardly a fair price".
_TURNED = frozenset("不没无谁难怎")
_TURNED_EN = re.compile(
    r"(?:\bnot|n't|\bnever|\bhardly|\bno longer|\bnobody|\bno one|\bfar from)\s+(?:[a-z']+\s+){0,4}$"
)
# A waiver someone else claims ("客服说已经到账", "they told me it was refunded") or the learner then denies
# ("…到账，可我卡里根本没有") waives nothing.
_REPORTED = re.compile(r"(?:说|说是|称|(?<![a-z])(?:said|says|told me|claim\w*))\s*$")
_DENIED = re.compile(
    r"[^。.!！?？;；]{0,16}?(?:根本没|没有到|没到账|没收到|还没|并没|(?<![a-z])(?:never|not|hasn't|didn't|haven't)\s+"
    r"(?:arrived|received|come|came|got|shown|in my))"
)
# A waiver asked ("学费能接受吗？", "is that a fair price?") waives nothing: its clause ends in a question.
_ASKED = re.compile(r"[^，,。.!！;；]*?(?:[?？]|[吗么呢][。.?？]?\s*$)")


def _waiver(sentence: str, cues: Sequence[str]) -> int | None:
    """Where a waiver said as such ends in the sentence: not one a negation or a question turns round,
    someone else claims or the learner then denies."""
    for cue in cues:
        at = sentence.find(cue.lower())
        while at >= 0:
            end = at + len(cue)
            turned = _TURNED.intersection(sentence[max(at - 2, 0) : at]) or _TURNED_EN.search(
                sentence, max(at - 40, 0), at
            )
            disowned = _REPORTED.search(sentence, max(at - 6, 0), at) or _DENIED.match(sentence, end)
            if not turned and not disowned and not _ASKED.match(sentence, end):
                return end
            at = sentence.find(cue.lower(), at + 1)
    return None


def jest_sentences(text: str, rules: ClassificationRules) -> list[tuple[int, int, str]]:
    """(start, end, cue) of the sentences said in jest ("哈哈", "开玩笑", "lol"): a threat in them is not
    meant. Not those that say it is no joke ("我不是开玩笑")."""
    if not rules.jest_cues:
        return []
    lowered = text.lower()
    found = []
    for start, end in _sentences(text):
        sentence = lowered[start:end]
        cue = _has(sentence, rules.jest_cues)
        if cue and not _has(sentence, rules.earnest_cues):
            found.append((start, end, cue))
    return found
