"""How long one message may be on a channel, and a long text split (or shortened) to fit.

Platforms count differently: Telegram 4,096 characters as UTF-16 code units (an emoji outside the
basic plane counts two), WeChat customer-service messages and WeCom robots 2,048 bytes of UTF-8 (a
Chinese character is three). A split keeps the text's order, never cuts inside a character (nor
between a character and its combining marks, or inside an emoji sequence), and prefers a paragraph
break, then a line break, then a sentence's end, then a space, to a cut in the middle of a word.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

Unit = Literal["chars", "utf16", "utf8"]
ELLIPSIS = "…"
# A boundary is taken only if the part before it is at least this share of the room: otherwise a
# paragraph break near the start would leave a part of two words.
_MIN_SHARE = 0.5
_SENTENCE_END = re.compile(r"[。！？；!?;](?:[”’」』）)\"']*)|[.:](?=\s)")


@dataclass(frozen=True)
class TextLimit:
    """At most `size` units of `unit` in one message."""

    size: int
    unit: Unit = "chars"

    def measure(self, text: str) -> int:
        if self.unit == "utf8":
            return len(text.encode("utf-8"))
        if self.unit == "utf16":
            return len(text.encode("utf-16-le")) // 2
        return len(text)

    def fits(self, text: str) -> bool:
        return self.measure(text) <= self.size

    def cost(self, char: str) -> int:
        if self.unit == "utf8":
            return len(char.encode("utf-8"))
        if self.unit == "utf16":
            return 2 if ord(char) > 0xFFFF else 1
        return 1

    def __str__(self) -> str:
        return f"{self.size} {'characters' if self.unit != 'utf8' else 'bytes'}"


def _room(text: str, limit: TextLimit, size: int | None = None) -> int:
    """How many characters of `text`, from its start, fit in `size` (default: the limit's)."""
    budget = limit.size if size is None else size
    used = 0
    for index, char in enumerate(text):
        used += limit.cost(char)
        if used > budget:
            return index
    return len(text)


def _joins(before: str, after: str) -> bool:
    """Whether a cut between these two characters would split what is read as one character."""
    return (
        unicodedata.combining(after) > 0
        or after in "\u200d\u20e3"
        or "\ufe00" <= after <= "\ufe0f"
        or "\U0001f3fb" <= after <= "\U0001f3ff"  # skin tones
        or before == "\u200d"
        or (before == "\r" and after == "\n")
    )


def _safe(text: str, cut: int) -> int:
    """`cut`, moved back to where no character sequence is split."""
    while 0 < cut < len(text) and _joins(text[cut - 1], text[cut]):
        cut -= 1
    return cut


def _boundary(text: str, room: int) -> int:
    """Where to end a part of `text` that may hold `room` characters: the best boundary in it."""
    window = text[:room]
    floor = max(1, int(room * _MIN_SHARE))
    finders: tuple[Callable[[], int], ...] = (
        lambda: window.rfind("\n\n"),
        lambda: window.rfind("\n"),
        lambda: max((m.end() for m in _SENTENCE_END.finditer(window)), default=-1),
        lambda: max(window.rfind(" "), window.rfind("\u3000"), window.rfind("\t")),
    )
    for finder in finders:  # in order of preference; each looked for only if the one before failed
        found = finder()
        if found >= floor:
            return found
    cut = _safe(text, room)
    return cut if cut > 0 else room  # a "character" longer than a whole message is cut all the same


def split_spans(text: str, limit: TextLimit) -> list[tuple[int, int]]:
    """The parts of `text` as (start, end) offsets, in order, each within `limit` once stripped of
    the white space at its ends; the white space between parts belongs to none."""
    spans: list[tuple[int, int]] = []
    start = 0
    while start < len(text):
        while start < len(text) and text[start].isspace():
            start += 1
        if start >= len(text):
            break
        rest = text[start:]
        if limit.fits(rest.rstrip()):
            spans.append((start, start + len(rest.rstrip())))
            break
        room = max(1, _room(rest, limit))
        end = _boundary(rest, room)
        part = rest[:end].rstrip()
        spans.append((start, start + len(part)))
        start += end
    return spans


def split_text(text: str, limit: TextLimit) -> list[str]:
    """`text` in parts that each fit `limit` (one part when it fits already; none when it is blank)."""
    return [text[start:end] for start, end in split_spans(text, limit)]


def shorten(text: str, limit: TextLimit) -> str:
    """`text` within `limit`, cut at a character boundary and ending in "…" when it had to be cut
    (for what cannot go in parts: a card edited in place, a caption)."""
    if limit.fits(text):
        return text
    room = _room(text, limit, limit.size - limit.measure(ELLIPSIS))
    return text[: _safe(text, room)].rstrip() + ELLIPSIS
