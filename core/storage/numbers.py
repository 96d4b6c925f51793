"""Ticket numbers such as ``TS-261122-00071``: prefix, YYMMDD, daily sequence, Damm check digit.

Only the pure part lives here; allocating the daily sequence is the database's job. The check digit exists
so that a mistyped number is refused instead of being matched to another learner's complaint.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

__all__ = [
    "InvalidTicketNumber",
    "TicketNumber",
    "damm_check_digit",
    "damm_valid",
    "find_ticket_numbers",
]

# The standard Damm table, a weakly totally anti-symmetric quasigroup of order 10 (H. M. Damm, 2004).
# With it every single-digit substitution and every adjacent transposition changes the check digit.
_DAMM: tuple[tuple[int, ...], ...] = (
    (0, 3, 1, 7, 5, 9, 8, 6, 4, 2),
    (7, 0, 9, 2, 1, 5, 4, 8, 6, 3),
    (4, 2, 0, 6, 8, 7, 1, 3, 5, 9),
    (1, 7, 5, 0, 9, 8, 3, 4, 2, 6),
    (6, 1, 2, 3, 0, 4, 5, 9, 7, 8),
    (3, 6, 7, 4, 2, 0, 9, 5, 8, 1),
    (5, 8, 6, 9, 7, 2, 0, 1, 3, 4),
    (8, 9, 4, 5, 3, 6, 2, 0, 1, 7),
    (9, 4, 3, 8, 6, 1, 7, 2, 0, 5),
    (2, 5, 8, 1, 4, 3, 6, 7, 9, 0),
)

_ASCII_DIGITS = re.compile(r"[0-9]+")
_MIN_SEQUENCE_DIGITS = 4
# Dashes that phones, Chinese IMEs and word processors put where the learner meant "-". NFKC already folds
# the full-width one (U+FF0D); the rest have no compatibility mapping and are folded by hand.
_DASHES = str.maketrans(dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d", "-"))


class InvalidTicketNumber(ValueError):
    """Text that is not a valid ticket number; the message names the text and what is wrong with it."""


def _damm_interim(digits: str) -> int:
    # ASCII only: str.isdigit() would let "²" or "٣" through, and the table is indexed by 0-9.
    if not _ASCII_DIGITS.fullmatch(digits):
        raise ValueError(f"Damm check digit needs one or more ASCII digits, got {digits!r}")
    interim = 0
    for ch in digits:
        interim = _DAMM[interim][ord(ch) - ord("0")]
    return interim


def damm_check_digit(digits: str) -> str:
    """The Damm check digit of ``digits``; ValueError if empty or not all ASCII digits."""
    return str(_damm_interim(digits))


def damm_valid(digits_with_check: str) -> bool:
    """True if the last digit is the Damm check digit of the others (False for non-digit input)."""
    # A payload followed by its own check digit always runs the table back to 0. At least two digits are
    # required, because an empty payload has no check digit (damm_check_digit("") raises).
    if len(digits_with_check) < 2:
        return False
    try:
        return _damm_interim(digits_with_check) == 0
    except ValueError:
        return False


def _fold(text: str) -> str:
    # NFKC turns full-width letters, digits and hyphens (typed with a Chinese IME) into ASCII.
    return unicodedata.normalize("NFKC", text).translate(_DASHES)


@lru_cache(maxsize=32)
def _pattern(prefix: str) -> re.Pattern[str]:
    # The look-behind stops "XTS-..." matching prefix "TS"; the look-ahead stops a match inside a longer
    # digit run. [A-Za-z0-9] rather than \w, so that Chinese text may touch the number: "编号TS-...".
    return re.compile(
        rf"(?<![A-Za-z0-9]){re.escape(_fold(prefix))}-([0-9]{{6}})-([0-9]{{{_MIN_SEQUENCE_DIGITS + 1},}})"
        r"(?![0-9])",
        re.IGNORECASE,
    )


def _shown(text: str) -> str:
    # Error messages quote the learner's input, which may be long; keep log lines short.
    return text if len(text) <= 40 else text[:39] + "…"


@dataclass(frozen=True, order=True)
class TicketNumber:
    """One ticket number; ordering is by prefix, then day, then sequence."""

    prefix: str
    day: date
    sequence: int

    def __post_init__(self) -> None:
        # Refuse here anything __str__ could not write so that parse() reads it back identically.
        if not self.prefix or any(ch.isspace() for ch in self.prefix):
            raise ValueError(f"ticket prefix must be non-empty and without spaces, got {self.prefix!r}")
        if not 2000 <= self.day.year <= 2099:
            raise ValueError(f"ticket day {self.day.isoformat()} does not fit the YYMMDD form")
        if self.sequence < 0:
            raise ValueError(f"ticket sequence must not be negative, got {self.sequence}")

    @property
    def _payload(self) -> str:
        return f"{self.day:%y%m%d}{self.sequence:0{_MIN_SEQUENCE_DIGITS}d}"

    @property
    def check_digit(self) -> str:
        return damm_check_digit(self._payload)

    def __str__(self) -> str:
        seq = f"{self.sequence:0{_MIN_SEQUENCE_DIGITS}d}"
        return f"{self.prefix}-{self.day:%y%m%d}-{seq}{self.check_digit}"

    @classmethod
    def parse(cls, text: str, prefix: str = "TS") -> TicketNumber:
        """Read one ticket number; raises InvalidTicketNumber. The result carries ``prefix`` as given."""
        shown = _shown(text.strip())
        match = _pattern(prefix).fullmatch(_fold(text.strip()))
        if match is None:
            raise InvalidTicketNumber(f"{shown}: not a ticket number of the form {prefix}-YYMMDD-NNNNC")
        return cls._from_match(match, prefix, shown)

    @classmethod
    def _from_match(cls, match: re.Match[str], prefix: str, shown: str) -> TicketNumber:
        day_digits, tail = match.group(1), match.group(2)
        sequence_digits = tail[:-1]
        try:
            day = date(2000 + int(day_digits[:2]), int(day_digits[2:4]), int(day_digits[4:]))
        except ValueError:
            raise InvalidTicketNumber(f"{shown}: bad date {day_digits}") from None
        if not damm_valid(day_digits + tail):
            raise InvalidTicketNumber(f"{shown}: wrong check digit")
        if len(sequence_digits) > _MIN_SEQUENCE_DIGITS and sequence_digits.startswith("0"):
            # The bot never writes "TS-261122-000071"; accepting it would let two spellings (with different
            # check digits) name one ticket, and str(parse(x)) would no longer give x back.
            raise InvalidTicketNumber(f"{shown}: sequence has extra leading zeros")
        return cls(prefix, day, int(sequence_digits))


def find_ticket_numbers(text: str, prefix: str = "TS") -> list[TicketNumber]:
    """Every valid ticket number mentioned in free text, in order of first mention, without repeats.

    Numbers with a bad date or a wrong check digit are skipped: a typo must not point at somebody else's
    complaint. Full-width letters, digits and hyphens count as their ASCII forms.
    """
    found: list[TicketNumber] = []
    for match in _pattern(prefix).finditer(_fold(text)):
        try:
            number = TicketNumber._from_match(match, prefix, _shown(match.group(0)))
        except InvalidTicketNumber:
            continue
        if number not in found:
            found.append(number)
    return found
