"""Text out of the bytes learners' mail programs write: declared, undeclared and mislabelled charsets in
bodies, and raw 8-bit bytes and RFC 2047 encoded words in headers. Pure functions, never raising."""

from __future__ import annotations

import base64
import binascii
import codecs
import re
from email.message import Message

# GB18030 is a superset of GB2312 and GBK: senders label GBK text "gb2312" (Outlook, Foxmail, old
# webmail), and reading it as GB18030 keeps the characters GB2312 lacks (喆, 堃, 镕: often in names).
# Big5 mail from Windows is really cp950, which adds the ETEN characters; HKSCS adds Hong Kong's.
_FAMILIES = {
    "gb2312": ("gb18030",),
    "gbk": ("gb18030",),
    "gb18030": ("gb18030",),
    "big5": ("cp950", "big5hkscs"),
    "cp950": ("cp950", "big5hkscs"),
    "big5hkscs": ("big5hkscs", "cp950"),
}
# Labels that mail programs put on everything; Chinese text under them is common, Western text rare.
_WESTERN = frozenset({"ascii", "iso8859-1", "cp1252"})
_ALIASES = {"gb_2312-80": "gb2312", "chinese": "gb2312", "x-gbk": "gbk", "x-euc-cn": "gb2312"}
# Python codecs that are not charsets: a hostile label must not run them over a learner's bytes.
_NOT_CHARSETS = frozenset({"unicode-escape", "raw-unicode-escape", "idna", "punycode", "undefined"})
# A GBK reading of text that is really Big5 (or Latin-1) is full of rare characters; real simplified
# Chinese, even with a few GBK-only names in it, is almost all in GB2312's 6763 common ones.
_COMMON_SHARE = 0.8
_SAMPLE = 64 * 1024  # characters of a body that the guesses look at
_ENCODED_WORD = re.compile(r"=\?([A-Za-z0-9_.:+*-]+)\?([BbQq])\?([\x21-\x3e\x40-\x7e]*)\?=")
_CHINESE = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")  # ideographs and punctuation
_NOT_TOKEN = re.compile(r"[^a-z0-9!#$&^_.+/-]")  # RFC 2045 token characters, and the "/"
_REPLACED = re.compile("\ufffd+")  # one bad byte sequence, however many bytes long
_UNSAFE = re.compile(r"[\ud800-\udfff]")
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def codec_for(label: str | None) -> str | None:
    """Python's codec for a MIME charset label, or None when the label names no usable charset."""
    name = (label or "").strip().strip("\"'").lower()
    if not name or len(name) > 40:
        return None
    for candidate in (_ALIASES.get(name, name), name.removeprefix("x-")):
        try:
            codec = codecs.lookup(candidate).name
        except (LookupError, ValueError):
            continue
        return None if codec in _NOT_CHARSETS else codec
    return None


def decode_bytes(data: bytes, label: str | None) -> tuple[str, str | None]:
    """The text of a body (or a header word) and, when it was not read as declared, a note saying how."""
    if data.startswith(codecs.BOM_UTF8):
        data, label = data[3:], "utf-8"  # a byte-order mark outranks any label
    codec = codec_for(label)
    western = codec in _WESTERN
    if (codec is None or western) and data.isascii():  # not for others: UTF-16 can be all ASCII bytes
        return data.decode("ascii"), None
    declared = () if codec is None or western else _FAMILIES.get(codec, (codec,))
    for name in declared:
        text = _strict(data, name)
        if text is not None:
            return text, None
    said = f"declared {label or 'no charset'}"
    found = _valid_reading(data, declared, western)
    if found is not None:
        return found[0], f"{said}, read as {found[1]}"
    if western:
        return _lenient(data, codec or "latin-1"), None
    # Valid in nothing: the reading with the fewest bad bytes (a mail cut inside a character).
    readings = [_lenient(data, name) for name in dict.fromkeys((*declared, "utf-8", "gb18030", "cp950"))]
    return min(readings, key=lambda text: len(_REPLACED.findall(text))), f"{said}, bad bytes replaced"


def _valid_reading(data: bytes, declared: tuple[str, ...], western: bool) -> tuple[str, str] | None:
    """UTF-8 when the bytes are UTF-8 (other text almost never is), then GBK that reads as common
    simplified Chinese, then the declared charset with a stray bad byte, then Big5, then any GBK."""
    text = _strict(data, "utf-8")
    if text is not None:
        return text, "utf-8"
    gb = _strict(data, "gb18030")
    if gb is not None and _common_share(gb[:_SAMPLE]) >= _COMMON_SHARE:
        return gb, "gb18030"
    if not western:
        name = declared[0] if declared else "utf-8"
        nearly = _lenient(data, name)
        # A damaged byte or a character cut in two must not turn the whole text into Big5.
        bad = nearly.count("\ufffd")
        if bad * 20 <= len(nearly) and len(_REPLACED.findall(nearly)) <= max(1, len(nearly) // 100):
            return nearly, f"{name} with bad bytes replaced"
    big5 = _strict(data, "cp950")
    # Under a Western label the Latin-1 reading stays unless the text reads clearly as Chinese.
    if big5 is not None and (not western or _looks_chinese(big5[:_SAMPLE])):
        return big5, "big5"
    if gb is not None and not western:
        return gb, "gb18030"
    return None


def _common_share(text: str) -> float:
    """The share of the non-ASCII characters that are among GB2312's."""
    wide = len(text) - len(text.encode("ascii", "ignore"))
    if not wide:
        return 1.0
    uncommon = len(text) - len(text.encode("gb2312", "ignore").decode("gb2312"))
    return (wide - uncommon) / wide


def _looks_chinese(text: str) -> bool:
    wide = len(text) - len(text.encode("ascii", "ignore"))
    return bool(wide) and len(_CHINESE.findall(text)) / wide >= _COMMON_SHARE


def _strict(data: bytes, codec: str) -> str | None:
    try:
        return data.decode(codec)
    except (UnicodeError, LookupError):
        return None


def _lenient(data: bytes, codec: str) -> str:
    try:
        return data.decode(codec, "replace")
    except (UnicodeError, LookupError):
        return data.decode("utf-8", "replace")


def as_bytes(value: str) -> bytes:
    """A header value back into the bytes the sender wrote: the parser keeps 8-bit bytes as surrogate
    escapes, and RFC 2231 parameters arrive as Latin-1 characters."""
    try:
        return value.encode("latin-1", "surrogateescape")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogateescape")


def unbytes(value: str) -> str:
    """A raw header value with any 8-bit bytes in it (UTF-8, or GBK from older Chinese mailers) read."""
    if value.isascii():
        return value
    return decode_bytes(as_bytes(value), None)[0]


def decode_words(value: str) -> str:
    """RFC 2047 encoded words decoded, whatever their charset label says; a word that cannot be
    decoded stays as written. Words of one charset are joined before decoding, because some mailers
    split a character's bytes between two words."""
    pieces: list[str | tuple[bytes, str]] = []
    end = 0
    for match in _ENCODED_WORD.finditer(value):
        between = value[end : match.start()]
        joined = bool(pieces) and isinstance(pieces[-1], tuple) and not between.strip()
        if not joined and between:
            pieces.append(between)  # whitespace between two encoded words is not text (RFC 2047 §6.2)
        end = match.end()
        data = _word_bytes(match.group(2).lower(), match.group(3))
        if data is None:
            pieces.append(match.group(0))
            continue
        label = match.group(1).split("*")[0]  # RFC 2231 adds "*language" to the charset
        last = pieces[-1] if pieces else None
        if isinstance(last, tuple) and last[1] == label.lower():
            pieces[-1] = (last[0] + data, last[1])
        else:
            pieces.append((data, label.lower()))
    pieces.append(value[end:])
    return "".join(p if isinstance(p, str) else decode_bytes(p[0], p[1])[0] for p in pieces)


def _word_bytes(encoding: str, word: str) -> bytes | None:
    if encoding == "q":
        return binascii.a2b_qp(word.encode("ascii"), header=True)
    try:  # missing padding is common and harmless
        return base64.b64decode(word + "=" * (-len(word) % 4))
    except (binascii.Error, ValueError):
        return None


def header_text(value: str) -> str:
    """A raw header value as readable one-line text."""
    return clean(" ".join(decode_words(unbytes(value)).split()))


def header(msg: Message, name: str) -> str | None:
    """The first `name` header as readable text, or None when absent or blank."""
    value = msg.get(name)
    if value is None:
        return None
    return header_text(str(value)) or None


def clean(text: str) -> str:
    """Text that any database and JSON encoder accept: no lone surrogates, no control characters
    other than line breaks and tabs (PostgreSQL refuses NUL)."""
    return _CONTROLS.sub("", _UNSAFE.sub("\ufffd", text.replace("\r\n", "\n").replace("\r", "\n")))


def param(part: Message, name: str, header_name: str = "content-type") -> str | None:
    """A MIME parameter as text, or None: RFC 2231 (`filename*=gb2312''%D6%D0`), RFC 2047 inside quotes
    (`filename="=?gb2312?B?…?="`, which Chinese mailers write though the RFC forbids it), raw bytes."""
    value = part.get_param(name, None, header_name)
    if value is None:
        return None
    if isinstance(value, tuple):
        charset, _language, text = value
        return clean(" ".join(decode_bytes(as_bytes(str(text)), charset or None)[0].split())) or None
    return header_text(str(value)) or None


def content_type(part: Message) -> str:
    """The part's MIME type, lower case, without the stray bytes a damaged header can hold."""
    return _NOT_TOKEN.sub("", part.get_content_type())
