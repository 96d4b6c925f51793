"""Text out of the bytes learners' mail programs write: declared, undeclared and mislabelled charsets in
bodies, and raw 8-bit bytes and RFC 2047 encoded words in headers. Pure functions, never raising."""

from __future__ import annotations

import base64
import binascii
import re
from email.message import Message

from channels.mail.charsets import codec_for as codec_for
from channels.mail.charsets import decode_bytes as decode_bytes
from channels.mail.charsets import decode_header_bytes

# An encoded word as `policy.default` takes it: text with spaces in it (some Outlook versions) and raw
# 8-bit bytes in it (old Eudora), right against other text; up to the first "?=".
_ENCODED_WORD = re.compile(r"=\?([^?\s]{1,60})\?([BbQq])\?([^?]*?)\?=")
_NOT_TOKEN = re.compile(r"[^a-z0-9!#$&^_.+/-]")  # RFC 2045 token characters, and the "/"
_UNSAFE = re.compile(r"[\ud800-\udfff]")
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def as_bytes(value: str) -> bytes:
    """A header value back into the bytes the sender wrote: the parser keeps 8-bit bytes as surrogate
    escapes, and RFC 2231 parameters arrive as Latin-1 characters."""
    try:
        return value.encode("latin-1", "surrogateescape")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogateescape")


def unbytes(value: str, fallback: str | None = None) -> str:
    """A raw header value with any 8-bit bytes in it read: UTF-8 when they are UTF-8, else in the
    charset the message declares for its body (a raw Latin-1 "ü" under a Latin-1 body; GBK from older
    Chinese mailers), else as guessed. `policy.default` shows U+FFFD for them."""
    if value.isascii():
        return value
    return decode_header_bytes(as_bytes(value), fallback)


def decode_words(value: str, fallback: str | None = None) -> str:
    """RFC 2047 encoded words decoded as `policy.default` finds them, whatever their charset label
    says; raw 8-bit text between them read by `unbytes`; a word that cannot be decoded stays as written.
    Words of one charset are joined before decoding, because some mailers split a character's bytes
    between two words."""
    pieces: list[str | tuple[bytes, str]] = []
    end = 0
    for match in _ENCODED_WORD.finditer(value):
        between = value[end : match.start()]
        joined = bool(pieces) and isinstance(pieces[-1], tuple) and not between.strip()
        if not joined and between:
            pieces.append(unbytes(between, fallback))  # whitespace between two words is not text (§6.2)
        end = match.end()
        data = _word_bytes(match.group(2).lower(), match.group(3))
        if data is None:
            pieces.append(unbytes(match.group(0), fallback))
            continue
        label = match.group(1).split("*")[0]  # RFC 2231 adds "*language" to the charset
        last = pieces[-1] if pieces else None
        if isinstance(last, tuple) and last[1] == label.lower():
            pieces[-1] = (last[0] + data, last[1])
        else:
            pieces.append((data, label.lower()))
    pieces.append(unbytes(value[end:], fallback))
    return "".join(p if isinstance(p, str) else decode_bytes(p[0], p[1])[0] for p in pieces)


def _word_bytes(encoding: str, word: str) -> bytes | None:
    data = as_bytes(word)  # an 8-bit byte inside a word stands for itself
    if encoding == "q":
        return binascii.a2b_qp(data, header=True)
    try:  # missing padding is common and harmless
        data = b"".join(data.split())
        return base64.b64decode(data + b"=" * (-len(data) % 4))
    except (binascii.Error, ValueError):
        return None


def header_text(value: str, fallback: str | None = None) -> str:
    """A raw header value as readable one-line text; `fallback` is the charset for raw 8-bit bytes."""
    return clean(" ".join(decode_words(value, fallback).split()))


def header(msg: Message, name: str) -> str | None:
    """The first `name` header as readable text, or None when absent or blank."""
    value = msg.get(name)
    if value is None:
        return None
    return header_text(str(value), body_charset(msg)) or None


def body_charset(msg: Message) -> str | None:
    """The charset the message declares for its text, which its raw 8-bit header bytes are most
    likely in too."""
    for part in msg.walk():
        if part.get_content_maintype() in ("text", "multipart"):
            label = part.get_param("charset")
            if isinstance(label, str) and label.isascii():
                return label
    return None


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
    return header_text(str(value), body_charset(part)) or None


def content_type(part: Message) -> str:
    """The part's MIME type, lower case, without the stray bytes a damaged header can hold."""
    return _NOT_TOKEN.sub("", part.get_content_type())
