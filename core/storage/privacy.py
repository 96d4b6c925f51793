"""Learners' personal data: encrypted at rest, found by blind index, masked on screen (POLICY.md §7)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import unicodedata
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from core.storage.contact_kinds import EMAIL, PHONE

__all__ = [
    "PrivacyKeyError",
    "Vault",
    "generate_key",
    "mask",
    "mask_email",
    "mask_name",
    "mask_phone",
    "normalize",
]

_DECRYPT_FAILED = "cannot decrypt personal data: wrong [privacy] key?"
TOKEN_START = "gAAAAA"  # every Fernet token: version byte 0x80, then a timestamp that starts with zeros
# HKDF "info": binds the derived key to this one use, so the blind-index key never equals a Fernet key.
_BLIND_INDEX_INFO = b"complaintbot/blind-index/v1"
# A mainland mobile (11 digits, 1[3-9]...) behind its country code, written +86, 0086 or 86.
_CN_MOBILE_WITH_CC = re.compile(r"(?:0086|86)(1[3-9][0-9]{9})")


class PrivacyKeyError(ValueError):
    """No usable [privacy] key, or stored data that the configured keys cannot decrypt."""


def generate_key() -> str:
    """A new random Fernet key, as the url-safe base64 text that goes into the [privacy] keys list."""
    return Fernet.generate_key().decode("ascii")


class Vault:
    """Encrypts personal data with the first key; decrypts with any key, so keys can be rotated."""

    def __init__(self, keys: Sequence[str]) -> None:
        # A lone string is a Sequence[str] too; without this check each character would be "a key".
        if isinstance(keys, str):
            raise PrivacyKeyError("[privacy] keys must be a list of keys, not a single string")
        if not keys:
            raise PrivacyKeyError(
                "[privacy] keys is empty: at least one key is needed to store personal data"
            )
        fernets: list[Fernet] = []
        for number, key in enumerate(keys, start=1):
            try:
                fernets.append(Fernet(key.strip()))
            except (ValueError, TypeError, AttributeError):
                # Never echo the key: it is a secret and this message ends up in logs.
                raise PrivacyKeyError(
                    f"[privacy] key #{number} of {len(keys)} is malformed: "
                    "expected a Fernet key (32 bytes, url-safe base64)"
                ) from None
        self._fernet = MultiFernet(fernets)
        # The blind-index key comes from the LAST (oldest) key, not the first: rotation puts a new key in
        # front, and every stored index must stay valid. Retiring that oldest key means recomputing every
        # stored index with the new last key before it is removed from the list.
        self._oldest = base64.urlsafe_b64decode(keys[-1].strip())
        self._index_key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=_BLIND_INDEX_INFO
        ).derive(self._oldest)

    def derived_key(self, purpose: str) -> bytes:
        """A secret of its own for `purpose` (e.g. unguessable Message-IDs), from the same oldest key as
        the blind index, so it stays the same while keys are rotated in front of it."""
        info = f"complaintbot/{purpose}/v1".encode()
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(self._oldest)

    def encrypt(self, value: str) -> str:
        return self._fernet.encrypt(value.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token).decode("utf-8")
        except (InvalidToken, ValueError, TypeError):
            # ValueError/TypeError: a token that is not even ASCII/bytes is as unreadable as a bad one.
            raise PrivacyKeyError(_DECRYPT_FAILED) from None

    def encrypt_opt(self, value: str | None) -> str | None:
        return None if value is None else self.encrypt(value)

    def decrypt_opt(self, token: str | None) -> str | None:
        return None if token is None else self.decrypt(token)

    def reveal(self, value: str) -> str:
        """A stored text that is encrypted, decrypted; one stored in clear (written before it was
        encrypted, or a placeholder such as "(erased)") as it is."""
        if not value.startswith(TOKEN_START):
            return value
        try:
            return self.decrypt(value)
        except PrivacyKeyError:
            return value  # clear text that happens to start like a token

    def rotate(self, token: str) -> str:
        """Re-encrypt ``token`` with the first key (MultiFernet keeps its original timestamp)."""
        try:
            return self._fernet.rotate(token).decode("ascii")
        except (InvalidToken, ValueError, TypeError):
            raise PrivacyKeyError(_DECRYPT_FAILED) from None

    def blind_index(self, kind: str, value: str) -> str:
        """Keyed HMAC-SHA256 (hex) of the normalised value, to look rows up without decrypting them all."""
        kind = _kind(kind)
        normal = normalize(kind, value)
        if not normal:
            # An empty value would share one index with every other empty value: a lookup by it could
            # link a learner to a stranger's complaints.
            raise ValueError(f"nothing to index: empty {kind}")
        kind_bytes = kind.encode("utf-8")
        # Length-prefixing the kind keeps ("ab", "c") and ("a", "bc") apart.
        message = len(kind_bytes).to_bytes(2, "big") + kind_bytes + normal.encode("utf-8")
        return hmac.new(self._index_key, message, hashlib.sha256).hexdigest()


def _kind(kind: str) -> str:
    return kind.strip().lower()


def normalize(kind: str, value: str) -> str:
    """Canonical form for comparison and blind indexes: phone digits, lower-case e-mail, else stripped."""
    kind = _kind(kind)
    if kind == PHONE:
        # NFKC first: full-width digits typed with a Chinese IME become ASCII.
        digits = "".join(ch for ch in unicodedata.normalize("NFKC", value) if "0" <= ch <= "9")
        mobile = _CN_MOBILE_WITH_CC.fullmatch(digits)
        return mobile.group(1) if mobile else digits
    if kind == EMAIL:
        return value.strip().lower()
    return value.strip()


def _mask_generic(value: str) -> str:
    value = value.strip()
    return value[:1] + "***" if value else ""


def mask_phone(phone: str) -> str:
    """Shows staff enough to recognise a number: "138****8000"; short numbers only "****12"."""
    if not phone.strip():
        return ""
    digits = normalize(PHONE, phone)
    if len(digits) >= 11:
        # A fixed four stars also hide how long the number is.
        return f"{digits[:3]}****{digits[-4:]}"
    if len(digits) > 4:
        return f"****{digits[-2:]}"
    # Two visible digits of a 3-4 digit number would give most of it away.
    return "****"


def mask_email(email: str) -> str:
    """Keep the first character and the domain: "li.ming@example.com" -> "l***@example.com"."""
    email = email.strip()
    local, at, domain = email.rpartition("@")
    if not at:
        return _mask_generic(email)
    return f"{local[:1]}***@{domain}"


def mask_name(name: str) -> str:
    """Each word keeps its first character, one star per hidden one: "王小明" -> "王**"."""
    words = name.split()
    if not words:
        return ""
    # One-character words ("明 李") would otherwise be shown whole: after the first, they become "*".
    first, rest = words[0], words[1:]
    masked = [first[0] + "*" * max(len(first) - 1, 1 if not rest else 0)]
    masked += [word[0] + "*" * (len(word) - 1) if len(word) > 1 else "*" for word in rest]
    return " ".join(masked)


def mask(kind: str, value: str) -> str:
    """Masked value for staff screens: phone, email and name by their own rules, else first char + "***"."""
    kind = _kind(kind)
    if kind == PHONE:
        return mask_phone(value)
    if kind == EMAIL:
        return mask_email(value)
    if kind == "name":
        return mask_name(value)
    return _mask_generic(value)


# A mainland mobile number as learners type it (optionally +86, spaces or dashes between groups), and
# anything shaped like an e-mail address. Digits glued to other digits are not a phone number.
# Chinese keyboards often type full-width digits and signs (１３８－…, ＋８６): \d matches any digit.
_PHONE_IN_TEXT = re.compile(
    r"(?<!\d)(?:(?:[+＋]|00|００)?[8８][6６][\s\-－]?)?[1１][3-9３-９]\d(?:[\s\-－]?\d){8}(?!\d)"
)
_EMAIL_IN_TEXT = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def redact(text: str) -> str:
    """Free text fit for staff chats: phone numbers and e-mail addresses in it masked."""
    text = _PHONE_IN_TEXT.sub(lambda m: mask_phone(m.group(0)), text)
    return _EMAIL_IN_TEXT.sub(lambda m: mask_email(m.group(0)), text)
