"""Bytes into text when the charset label is right, wrong or missing, as mail from the whole world comes.

A label that decodes cleanly and reads as text wins. A different reading is a repair for a label that is
wrong or missing, and it is judged on the whole text: the share of a reading's characters that are the
common ones of its script (GB2312's 6763, Big5's level 1, kana and JIS level 1, KS X 1001 Hangul), and
for Western text whether it reads as words; where two readings stay plausible, a real detector
(charset-normalizer) decides on a text long enough for it. Pure functions, never raising.
"""

from __future__ import annotations

import codecs
import re

from charset_normalizer import from_bytes

from channels.mail.charset_judging import COMMON_SHARE, common_share, gb2312_share, plausible_as, sparse
from channels.mail.charset_readings import decode_lenient, decode_strict, iso2022jp_text, western_text

# GB18030 is a superset of GB2312 and GBK: senders label GBK text "gb2312" (Outlook, Foxmail, old
# webmail), and reading it as GB18030 keeps the characters GB2312 lacks (喆, 堃, 镕: often in names).
# Big5 mail from Windows is really cp950, which adds the ETEN characters; HKSCS adds Hong Kong's.
# Japanese and Korean mail is likewise written by Windows in its supersets (NEC and IBM extensions
# such as ①, Unified Hangul).
_FAMILIES = {
    "gb2312": ("gb18030",),
    "gbk": ("gb18030",),
    "gb18030": ("gb18030",),
    "big5": ("cp950", "big5hkscs"),
    "cp950": ("cp950", "big5hkscs"),
    "big5hkscs": ("big5hkscs", "cp950"),
    "shift_jis": ("cp932", "shift_jis_2004"),
    "cp932": ("cp932", "shift_jis_2004"),
    "shift_jis_2004": ("shift_jis_2004", "cp932"),
    "euc_jp": ("euc_jp", "euc_jis_2004"),
    "euc_kr": ("cp949",),
    "cp949": ("cp949",),
}
_GB = frozenset({"gb2312", "gbk", "gb18030"})
_JIS = frozenset({"iso2022_jp", "iso2022_jp_1", "iso2022_jp_2", "iso2022_jp_ext", "iso2022_jp_3"})
# Labels that mail programs put on everything, Chinese text included; their text must read as words.
_LATIN = frozenset({"ascii", "latin_1", "iso8859_15", "cp1252", "iso8859_2", "cp1250"})
_ALIASES = {
    "gb_2312-80": "gb2312",
    "chinese": "gb2312",
    "x-gbk": "gbk",
    "x-euc-cn": "gb2312",
    "x-sjis": "shift_jis",
    "windows-31j": "cp932",
    "x-euc-jp": "euc_jp",
    "ks_c_5601-1987": "euc_kr",
    "x-mac-roman": "mac_roman",
    "iso-8859-8-i": "iso8859_8",  # Hebrew in logical order: the same bytes
    "iso-8859-6-i": "iso8859_6",
    "iso-10646-ucs-2": "utf_16_be",
}
_WINDOWS = re.compile(r"^(?:x-)?(?:windows|cp|ms)[-_]?(\d{3,4})$")  # "windows-874", "cp-850", "ms936"
# Python codecs that are not charsets: a hostile label must not run them over a learner's bytes.
_NOT_CHARSETS = frozenset({"unicode_escape", "raw_unicode_escape", "idna", "punycode", "undefined"})
_SAMPLE = 64 * 1024  # characters of a body that the guesses look at
_DETECTOR_MIN = 24  # non-ASCII bytes below which a detector's verdict is noise
_REPLACED = re.compile("\ufffd+")  # one bad byte sequence, however many bytes long
# What the detector chooses among when nothing else reads: the charsets of the mail of the world.
_DETECTABLE = ("gb18030", "cp950", "cp932", "cp949", "cp1251", "koi8_r", "cp1253")


def codec_for(label: str | None) -> str | None:
    """Python's codec for a MIME charset label, or None when the label names no usable charset."""
    name = (label or "").strip().strip("\"'").lower()
    if not name or len(name) > 40:
        return None
    numbered = _WINDOWS.match(name)
    if numbered:
        name = "gbk" if numbered.group(1) == "936" else f"cp{numbered.group(1)}"
    for candidate in (_ALIASES.get(name, name), name.removeprefix("x-")):
        try:
            codec = codecs.lookup(candidate).name.replace("-", "_")
        except (LookupError, ValueError):
            continue
        return None if codec in _NOT_CHARSETS else _canonical(codec)
    return None


def _canonical(codec: str) -> str:
    return {"iso8859_1": "latin_1", "us_ascii": "ascii"}.get(codec, codec)


def decode_bytes(data: bytes, label: str | None) -> tuple[str, str | None]:
    """The text of a body (or a header word) and, when it was not read as declared, a note saying how."""
    if data.startswith(codecs.BOM_UTF8):
        data, label = data[3:], "utf-8"  # a byte-order mark outranks any label
    codec = codec_for(label)
    latin = codec is None or codec in _LATIN
    if latin and data.isascii():  # not for others: UTF-16 can be all ASCII bytes
        if b"\x1b$" in data:  # ISO-2022-JP is 7-bit: its escapes give it away when unlabelled
            text = iso2022jp_text(data)
            if text is not None:
                return text, None if codec is None else f"declared {label}, read as iso-2022-jp"
        return data.decode("ascii"), None
    said = f"declared {label or 'no charset'}"
    if codec in _JIS:
        text = iso2022jp_text(data)
        if text is not None:
            return text, None
    if codec is not None and not latin:
        for name in _FAMILIES.get(codec, (codec,)):
            text = decode_strict(data, name)
            if text is None:
                continue
            if codec in _GB and gb2312_share(text[:_SAMPLE]) < COMMON_SHARE:
                # A "gb2312" label on Shift_JIS, Big5 or UTF-8 text still decodes, as rare hanzi.
                found = _guess(data, exclude="gb18030")
                if found is not None and found[1] != "cp1252":
                    return found[0], f"{said}, read as {found[1]}"
            return text, None
    if codec is not None and codec in _LATIN:
        text = western_text(data, codec)
        # A declared Western charset that reads as Western words wins; UTF-8 bytes under a Western
        # label do not read as words ("MÃ¼ller") but pass the test, so UTF-8 comes first.
        utf8 = decode_strict(data, "utf-8")
        if utf8 is not None and not _short_gbk(data, utf8):
            return utf8, f"{said}, read as utf-8"
        if plausible_as(text[:_SAMPLE], "western"):
            return text, None
        found = _guess(data)
        if found is not None and found[1] != "cp1252":
            return found[0], f"{said}, read as {found[1]}"
        return text, None
    found = _guess(data)
    if found is not None:
        return found[0], f"{said}, read as {found[1]}"
    declared = _FAMILIES.get(codec, (codec,)) if codec else ("utf-8",)
    nearly = decode_lenient(data, declared[0])
    bad = nearly.count("\ufffd")
    # A damaged byte or a character cut in two must not turn the whole text into another charset.
    if bad * 20 <= len(nearly) and len(_REPLACED.findall(nearly)) <= max(1, len(nearly) // 100):
        return nearly, f"{said}, {declared[0]} with bad bytes replaced"
    found = _detected(data) or _any(data, "gb18030")
    if found is not None:
        return found[0], f"{said}, read as {found[1]}"
    # Valid in nothing: the reading with the fewest bad bytes (a mail cut inside a character).
    names = (*declared, "utf-8", "gb18030", "cp950", "cp932", "cp949")
    readings = [decode_lenient(data, name) for name in dict.fromkeys(names)]
    return min(readings, key=lambda text: len(_REPLACED.findall(text))), f"{said}, bad bytes replaced"


def decode_header_bytes(data: bytes, fallback: str | None) -> str:
    """Raw 8-bit header bytes: UTF-8 when they are UTF-8 (today's mailers), else in `fallback`, the
    charset the message declares for its body, as `decode_bytes` reads it."""
    utf8 = decode_strict(data, "utf-8")
    if utf8 is not None and not _short_gbk(data, utf8):
        return utf8
    return decode_bytes(data, fallback)[0]


def _guess(data: bytes, exclude: str = "") -> tuple[str, str] | None:
    """The plausible reading of unlabelled (or mislabelled) bytes: UTF-8 when they are UTF-8 (other
    text almost never is), Western text when its accents sit between ASCII letters, else the CJK
    reading with the largest share of common characters: simplified and traditional Chinese,
    Japanese, Korean in that order when they tie, unless the detector says otherwise on a text long
    enough for it."""
    utf8 = decode_strict(data, "utf-8")
    if utf8 is not None and not _short_gbk(data, utf8):
        return utf8, "utf-8"
    western = western_text(data, "cp1252")
    plausible = plausible_as(western[:_SAMPLE], "western")
    if plausible and sparse(western[:_SAMPLE]):
        return western, "cp1252"
    shares: dict[str, tuple[float, str]] = {}
    for name in ("gb18030", "cp950", "cp932", "cp949"):
        text = decode_strict(data, name) if name != exclude else None
        if text is not None:
            shares[name] = (common_share(text[:_SAMPLE], name), text)
    # Korean read as GB2312 is all common hanzi, and some Chinese read as KS X 1001 mostly Hangul: of
    # the plausible readings only those as good as the best stay.
    best_share = max((share for share, _ in shares.values()), default=0.0)
    readings = {
        name: text
        for name, (share, text) in shares.items()
        if share >= COMMON_SHARE and share >= best_share - 0.02
    }
    if len(readings) > 1 and _wide_bytes(data) >= _DETECTOR_MIN:
        best = from_bytes(data[:_SAMPLE], cp_isolation=list(readings)).best()
        if best is not None and best.encoding in readings:
            return readings[best.encoding], best.encoding
    if readings:
        name, text = next(iter(readings.items()))
        return text, name
    # Dense accents ("Ça", "Öl") are still Western when no other reading holds.
    return (western, "cp1252") if plausible else None


def _short_gbk(data: bytes, utf8: str) -> bool:
    """A few GBK characters can be valid UTF-8 too, as Cyrillic, Armenian or IPA letters ("谢谢" as
    "лл", "学员" as "ѧԱ"): in a short text of only such letters, common Chinese is the likelier reading."""
    wide = [ch for ch in utf8 if ord(ch) > 0x7F]
    if not 1 <= len(wide) <= 8 or any(ord(ch) < 0x180 or ord(ch) > 0x7FF for ch in wide):
        return False
    gb = decode_strict(data, "gb18030")
    return gb is not None and common_share(gb, "gb18030") == 1.0


def _detected(data: bytes) -> tuple[str, str] | None:
    """No CJK or Western reading is plausible: Cyrillic, Greek, Hebrew... for the detector to say,
    on a text long enough for it."""
    if _wide_bytes(data) < _DETECTOR_MIN:
        return None
    best = from_bytes(data[:_SAMPLE], cp_isolation=list(_DETECTABLE)).best()
    return _any(data, best.encoding) if best is not None else None


def _any(data: bytes, codec: str) -> tuple[str, str] | None:
    text = decode_strict(data, codec)
    return (text, codec) if text is not None else None


_HIGH = bytes(range(0x80, 0x100))


def _wide_bytes(data: bytes) -> int:
    return len(data) - len(data.translate(None, _HIGH))
