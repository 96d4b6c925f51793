"""Judging a reading of mail text: the share of its characters that are the common ones of its script
(GB2312's 6763, Big5's level 1, kana and JIS level 1, KS X 1001 Hangul), and whether Western text reads
as words."""

from __future__ import annotations

import re

COMMON_SHARE = 0.8  # of a reading's non-ASCII characters that must be its script's common ones
_RUN = re.compile(r"[^\x00-\x7f\s]{3,}")  # three non-ASCII characters in a row: not a Western word
# Two of them with no ASCII letter on either side ("8000 »ò 139": 或 in GBK) are not one either.
_LONE_PAIR = re.compile(r"(?<![A-Za-z])[^\x00-\x7f\s]{2}(?![A-Za-z])")
# Latin-1 symbols that Western text hardly uses but Big5 and GBK bytes read as Latin-1 are full of.
_ODD = frozenset("¤¦¨¯´¸¹²³¼½¾µ¶¬ª×÷¢¥")
# What Western text holds besides ASCII: letters and the punctuation of cp1252 and Latin-1.
_WESTERN_CHARS = re.compile(r"[\u00a0-\u017f\u2013-\u201e\u2022\u2026\u2039\u203a\u20ac\u2122]")
_KANA = re.compile(r"[\u3040-\u30ff]")
_HANGUL = re.compile(r"[\uac00-\ud7a3]")


def sparse(text: str) -> bool:
    """Whether accented letters are the minority that they are in any Western word of some length."""
    letters = [ch for ch in text if not ch.isspace()]
    return sum(1 for ch in letters if ord(ch) > 0x7F) <= 0.35 * len(letters)


def common_share(text: str, codec: str) -> float:
    """The share of the non-ASCII characters that are common characters of the codec's script."""
    wide = [ch for ch in text if ord(ch) > 0x7F]
    if not wide:
        return 1.0
    return sum(1 for ch in wide if _common(ch, codec)) / len(wide)


def _common(ch: str, codec: str) -> bool:
    if codec == "gb18030":
        code = _code(ch, "gb2312")
        # Punctuation, numerals, full-width forms and the 6763 hanzi; not the kana, Greek, Cyrillic and
        # box rows, where Big5's commonest characters land when read as GB2312.
        return code is not None and (code >> 8 <= 0xA3 or code >> 8 >= 0xB0)
    if codec.startswith(("cp950", "big5")):
        code = _code(ch, "cp950")
        # Big5's symbols and its 5401 level-1 characters; level 2 is where mis-readings land.
        return code is not None and (0xA140 <= code <= 0xA3BF or 0xA440 <= code <= 0xC67E)
    if codec in ("cp932", "shift_jis_2004"):
        code = _code(ch, "cp932")
        # Kana, JIS symbols and the 2965 level-1 kanji; not the half-width kana single bytes.
        return bool(_KANA.match(ch)) or (
            code is not None and (0x8140 <= code <= 0x84BE or 0x889F <= code <= 0x9872)
        )
    if codec == "cp949":
        code = _code(ch, "cp949")  # KS X 1001's 2350 syllables, not Unified Hangul's additions
        return bool(_HANGUL.match(ch)) and code is not None and code >> 8 >= 0xB0 and code & 0xFF >= 0xA1
    return True


def gb2312_share(text: str) -> float:
    """The share of the non-ASCII characters that GB2312 has at all: a declared GB label is doubted
    only when its reading is mostly outside it."""
    wide = [ch for ch in text if ord(ch) > 0x7F]
    return sum(1 for ch in wide if _encodes(ch, "gb2312")) / len(wide) if wide else 1.0


def plausible_as(text: str, script: str) -> bool:
    if script != "western":
        return common_share(text, script) >= COMMON_SHARE
    wide = [ch for ch in text if ord(ch) > 0x7F]
    # Western text has its accents between ASCII letters; CJK bytes read as Latin-1 are runs of them.
    if not all(_WESTERN_CHARS.match(ch) for ch in wide) or _RUN.search(text) or _LONE_PAIR.search(text):
        return False
    return sum(1 for ch in wide if ch in _ODD) * 4 <= len(wide)


def _encodes(ch: str, codec: str) -> bool:
    try:
        ch.encode(codec)
    except UnicodeError:
        return False
    return True


def _code(ch: str, codec: str) -> int | None:
    try:
        data = ch.encode(codec)
    except UnicodeError:
        return None
    return int.from_bytes(data, "big") if len(data) == 2 else None
