"""Readings of bytes as text: strict (None when invalid), lenient (bad bytes replaced), Western as browsers
read it (cp1252 under Latin-1 and ASCII labels), and ISO-2022-JP as Windows writes it."""

from __future__ import annotations

import re

# cp1252 where it defines the byte, Latin-1 (a C1 control) where it does not.
_CP1252 = {byte: bytes([byte]).decode("cp1252", "ignore") or chr(byte) for byte in range(0x80, 0xA0)}
_CP1252_TABLE = str.maketrans({chr(byte): text for byte, text in _CP1252.items()})


def western_text(data: bytes, codec: str) -> str:
    """Western text; ISO-8859-1 and ASCII labels are read as cp1252 (its quotes, dashes and €), as
    browsers do, since Windows programs write cp1252 under them."""
    if codec in ("latin_1", "ascii", "cp1252"):
        return data.decode("latin-1").translate(_CP1252_TABLE)
    return decode_lenient(data, codec)


# ISO-2022-JP switches with escapes between ASCII, JIS X 0201 and the two-byte JIS X 0208 table.
_JIS_ESCAPE = re.compile(rb"\x1b(\(B|\(J|\(I|\$@|\$B|\$\(D|\$\(O|\$\(Q)")


def iso2022jp_text(data: bytes) -> str | None:
    """ISO-2022-JP as Windows writes it (NEC and IBM extensions: ①, ㈱, Ⅲ): each JIS X 0208 pair
    moved to its Shift_JIS place and read as cp932, which holds them; Python's codecs refuse them."""
    strict = decode_strict(data, "iso2022_jp_2")
    if strict is not None:
        return strict
    out = bytearray()
    mode = b"(B"
    pos = 0
    for match in [*_JIS_ESCAPE.finditer(data), None]:
        end = match.start() if match is not None else len(data)
        chunk = data[pos:end]
        if mode == b"$(D":  # JIS X 0212 has no Shift_JIS places
            return None
        if mode.startswith(b"$"):
            at = 0
            while at < len(chunk):
                if chunk[at] in b"\r\n":  # a line break a broken mailer left in two-byte mode
                    out.append(chunk[at])
                    at += 1
                    continue
                j1, j2 = chunk[at], chunk[at + 1] if at + 1 < len(chunk) else 0
                if not (0x21 <= j1 <= 0x7E and 0x21 <= j2 <= 0x7E):
                    return None
                out += _to_sjis(j1, j2)
                at += 2
        elif mode == b"(I":
            out += bytes(byte + 0x80 for byte in chunk)
        else:
            out += chunk
        if match is not None:
            mode, pos = match.group(1), match.end()
    return decode_strict(bytes(out), "cp932")


def _to_sjis(j1: int, j2: int) -> bytes:
    s1 = (j1 + 1) // 2 + (0x70 if j1 <= 0x5E else 0xB0)
    s2 = j2 + (0x1F if j1 % 2 else 0x7E)
    if j1 % 2 and s2 >= 0x7F:
        s2 += 1
    return bytes((s1, s2))


def decode_strict(data: bytes, codec: str) -> str | None:
    try:
        return data.decode(codec)
    except (UnicodeError, LookupError):
        return None


def decode_lenient(data: bytes, codec: str) -> str:
    try:
        return data.decode(codec, "replace")
    except (UnicodeError, LookupError):
        return data.decode("utf-8", "replace")
