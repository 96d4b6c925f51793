"""Who sent a push, and its safe-mode envelope: WeChat's signatures and AES encryption, via wechatpy.

wechatpy does the cryptography; the comparisons are ours, in constant time (wechatpy compares with `!=`),
and so is the refusal of stale timestamps: a signature covers the timestamp, so a captured request can
only be replayed while its timestamp is fresh.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import struct
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from wechatpy.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidAppIdException
from wechatpy.utils import WeChatSigner

MAX_SKEW_S = 5 * 60  # WeChat's servers keep good time; older is a replay, newer a clock to fix


class Forbidden(Exception):
    """Not from WeChat for this account: 403, nothing read further, nothing stored."""


class Undecryptable(Exception):
    """Signed by WeChat, but the ciphertext does not open with our key: kept for staff (a key to fix)."""


def sign(*parts: str) -> str:
    """WeChat's signature: SHA-1 of the parts sorted and joined (token, timestamp, nonce[, Encrypt])."""
    signer = WeChatSigner()
    signer.add_data(*parts)
    return str(signer.signature)


def signature_ok(given: str, *parts: str) -> bool:
    return hmac.compare_digest(sign(*parts).encode(), given.strip().lower().encode())


def fresh(timestamp: str, now: datetime) -> bool:
    """Unix seconds within `MAX_SKEW_S` of now, either side."""
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        return False
    return abs(now.timestamp() - int(timestamp)) <= MAX_SKEW_S


def check_aes_key(encoding_aes_key: str) -> None:
    """The EncodingAESKey: 43 characters of base64 that decode (with "=" added) to a 32-byte AES key."""
    try:
        key = base64.b64decode(encoding_aes_key + "=", validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(encoding_aes_key) != 43 or len(key) != 32:
        raise ValueError("channels.wechat.encoding_aes_key must be the 43 characters WeChat shows")


class Envelope:
    """Safe mode: open a push's `Encrypt` field, seal a passive reply."""

    def __init__(self, token: str, encoding_aes_key: str, app_id: str) -> None:
        check_aes_key(encoding_aes_key)
        self.token = token
        self._crypto = WeChatCrypto(token, encoding_aes_key, app_id)

    def open(self, fields: Mapping[str, Any], msg_signature: str, timestamp: str, nonce: str) -> bytes:
        """The plaintext XML. `Forbidden` for a wrong msg_signature or another account's app id."""
        encrypt = fields.get("Encrypt")
        if not isinstance(encrypt, str) or not encrypt:
            raise Forbidden("encrypted push without an Encrypt field")
        expected = sign(self.token, timestamp, nonce, encrypt)
        if not hmac.compare_digest(expected.encode(), msg_signature.strip().lower().encode()):
            raise Forbidden("wrong msg_signature")
        try:
            # Given the signature it computes itself: the check that counts is the constant-time one above.
            plain = self._crypto.decrypt_message({"Encrypt": encrypt}, expected, timestamp, nonce)
        except InvalidAppIdException:
            raise Forbidden("encrypted for another app id") from None
        except (ValueError, TypeError, IndexError, struct.error) as exc:  # base64, padding, length, UTF-8
            raise Undecryptable(f"cannot decrypt: {type(exc).__name__}: {exc}") from None
        return str(plain).encode("utf-8")

    def seal(self, reply_xml: str, nonce: str, timestamp: str) -> str:
        return str(self._crypto.encrypt_message(reply_xml, nonce, timestamp))
