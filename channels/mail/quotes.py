"""The new words of a reply, without the earlier mail it quotes.

Mail programs mark the quoted original in one of three ways, all handled here:
- a header line and "> " before every quoted line (Gmail, Apple Mail, Thunderbird, 163, and HTML
  `<blockquote>`, which `htmltext` turns into "> " lines);
- a separator line and the original below it, unmarked ("-----Original Message-----", QQ Mail's
  "------------------ 原始邮件 ------------------", 163's "---- 回复的原邮件 ----");
- a block of the original's headers, unmarked (Outlook, Foxmail: "From:/发件人:" then "Sent:/发送时间:",
  "To:/收件人:", "Subject:/主题:").
"""

from __future__ import annotations

import re

_SEPARATOR = re.compile(
    r"^[-_=—\s]{2,}(?:原始邮件|原始郵件|邮件原件|郵件原件|原邮件|回复的原邮件"
    r"|Original(?: Message)?|Replied Message|Reply Message)"
    r"[-_=—\s]{2,}$",
    re.IGNORECASE,
)
_RULE = re.compile(r"^[_\-—]{8,}$")  # Outlook's line of underscores above the header block
# The same block as Outlook writes it in German, French, Spanish, Russian and Japanese.
_FROM = re.compile(r"^\**\s*(?:From|发件人|寄件者|寄件人|Von|De|От|差出人)\s*\**\s*[:：]", re.IGNORECASE)
_FIELD = re.compile(
    r"^\**\s*(?:Sent|Date|To|Cc|Subject|发送时间|发件时间|日期|时间|收件人|收件者|抄送|副本|主题|主旨|寄件日期"
    r"|Gesendet|Datum|An|Betreff|Envoyé|Date|À|Objet|Enviado|Para|Asunto|Отправлено|Дата|Кому|Тема"
    r"|送信日時|宛先|件名)"
    r"\s*\**\s*[:：]",
    re.IGNORECASE,
)
# "On Sat, Nov 22, 2026 at 9:15 PM A <a@x> wrote:", "在 2026年11月22日 21:15，A <a@x> 写道：",
# Gmail in Chinese: "A <a@x> 于2026年11月22日周六 21:15写道：", and the same in the languages of the
# world ("Am … schrieb A:", "Le … a écrit :", "… написал(а):", Japanese Gmail's "2026年11月22日(日)
# 21:15 A <a@x>:" and Apple Mail's "…のメール:"). A header may be wrapped onto two lines.
_VERBS = (
    r"(?:wrote|writes|wrote the following|schrieb|a écrit|escribió|ha scritto|schreef|skrev|kirjoitti"
    r"|napisał(?:\(a\))?|написал(?:\(а\)|а)?|пишет|写道|寫道|のメール|のメッセージ|書きました)"
)
_ATTRIBUTION = re.compile(_VERBS + r"\s*[:：]$", re.IGNORECASE)
_VERB = re.compile(_VERBS, re.IGNORECASE)
# "Am … schrieb A <a@x>:", and Gmail's "Вс, 22 нояб. 2026 г. в 21:15, A <a@x>:" with no verb at all.
_ADDRESSED = re.compile(r"<\s*[^<>\s]+@[^<>\s]+\s*>\s*[:：]$")
_DATE_FIRST = re.compile(r"^(?:\d|\w{1,4}\.?,\s*\d)")
_ATTRIBUTION_START = re.compile(
    r"^(?:(?:On|Am|Le|El|Il|Op|Den|Em|W dniu)\s|\d|在|於|\S.*[@于])", re.IGNORECASE
)
_HEADER_WINDOW = 6  # how far below "From:" the original's other header lines may be
_ATTRIBUTION_MAX = 300


def trim_quoted(text: str) -> tuple[str, bool]:
    """The new text of a reply, and whether anything quoted was removed. When removing the quote
    would leave nothing (a forward without a word, a learner who wrote inside the quote), the whole
    text is kept: something is always better than nothing for staff."""
    lines = text.split("\n")
    cut, drop = _quote_start(lines)
    kept = [
        line
        for i, line in enumerate(lines[:cut])
        if i not in drop and not line.lstrip().startswith((">", "＞"))
    ]
    new = "\n".join(kept).strip()
    if not new:
        return text.strip(), False
    return new, len(kept) != len(lines)


def _quote_start(lines: list[str]) -> tuple[int, set[int]]:
    """Where the quoted original begins (everything from there goes), and the lines of an attribution
    header to drop when the quote under it is marked with ">" and the learner's text may follow it."""
    for i, line in enumerate(lines):
        stripped = line.strip()
        if _SEPARATOR.match(stripped):
            return i, set()
        if _FROM.match(stripped) and _header_block(lines, i):
            return _above_rule(lines, i), set()
        attribution = _attribution(lines, i)
        if attribution:
            following = next((s.strip() for s in lines[i + len(attribution) :] if s.strip()), "")
            if following.startswith((">", "＞")):
                return len(lines), attribution  # bottom-posting stays: only ">" lines go
            return i, set()
    return len(lines), set()


def _header_block(lines: list[str], start: int) -> bool:
    below = lines[start + 1 : start + 1 + _HEADER_WINDOW]
    return sum(1 for line in below if _FIELD.match(line.strip())) >= 2


def _above_rule(lines: list[str], start: int) -> int:
    above = start - 1
    while above >= 0 and not lines[above].strip():
        above -= 1
    return above if above >= 0 and _RULE.match(lines[above].strip()) else start


def _attribution(lines: list[str], start: int) -> set[int]:
    first = lines[start].strip()
    if not first or first.startswith((">", "＞")) or not _ATTRIBUTION_START.match(first):
        return set()
    if _is_attribution(first):
        return {start}
    if start + 1 < len(lines) and _is_attribution(first + " " + lines[start + 1].strip()):
        return {start, start + 1}
    return set()


def _is_attribution(line: str) -> bool:
    if len(line) > _ATTRIBUTION_MAX:
        return False
    if _ATTRIBUTION.search(line):
        return True
    return bool(_ADDRESSED.search(line)) and bool(_VERB.search(line) or _DATE_FIRST.match(line))
