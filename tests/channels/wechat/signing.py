"""WeChat's signing and message encryption, written from the documentation (消息加解密接入指引), for tests.

Deliberately independent of wechatpy and of `channels.wechat`: the webhook is tested against the algorithm
as WeChat documents it, not against itself.
- `signature` = hex SHA-1 of token, timestamp and nonce, sorted as strings and concatenated;
- `msg_signature` = the same over token, timestamp, nonce and the `Encrypt` text;
- `Encrypt` = base64 of AES-256-CBC, key = base64decode(EncodingAESKey + "="), IV = the key's first 16 bytes,
  over 16 random bytes + the XML's length (4 bytes, big-endian) + the XML + the app id, PKCS#7-padded to 32.
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from tests.channels.wechat import recorded

TOKEN = "complaintbot-test-token"
APP_ID = "wx5823bf96d3bd56c7"
ENCODING_AES_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"  # 43 characters, as WeChat shows it
ACCOUNT = "gh_0123456789ab"  # our account's original id, ToUserName of every push
BLOCK = 32


def sha1_signature(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def _key(encoding_aes_key: str) -> bytes:
    return base64.b64decode(encoding_aes_key + "=")


def encrypt(xml: str, *, app_id: str = APP_ID, encoding_aes_key: str = ENCODING_AES_KEY) -> str:
    data = xml.encode()
    plain = os.urandom(16) + struct.pack(">I", len(data)) + data + app_id.encode()
    pad = BLOCK - len(plain) % BLOCK
    plain += bytes([pad]) * pad
    key = _key(encoding_aes_key)
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()


def decrypt(encrypted: str, *, encoding_aes_key: str = ENCODING_AES_KEY) -> tuple[str, str]:
    """(xml, app id) of an `Encrypt` text."""
    key = _key(encoding_aes_key)
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    plain = decryptor.update(base64.b64decode(encrypted)) + decryptor.finalize()
    pad = plain[-1]
    assert 1 <= pad <= BLOCK and plain.endswith(bytes([pad]) * pad), "bad PKCS#7 padding"
    content = plain[16:-pad]
    (length,) = struct.unpack(">I", content[:4])
    return content[4 : 4 + length].decode(), content[4 + length :].decode()


@dataclass(frozen=True)
class Signed:
    params: dict[str, str]
    body: bytes


def push(
    xml: str,
    mode: str,
    *,
    timestamp: int,
    nonce: str = "1320562132",
    token: str = TOKEN,
    app_id: str = APP_ID,
    open_id: str = "oLearner",
) -> Signed:
    """A push as WeChat sends it in `mode` (plaintext | compatible | safe)."""
    ts = str(timestamp)
    params = {
        "signature": sha1_signature(token, ts, nonce),
        "timestamp": ts,
        "nonce": nonce,
        "openid": open_id,
    }
    if mode == "plaintext":
        return Signed(params, xml.encode())
    encrypted = encrypt(xml, app_id=app_id)
    params |= {"encrypt_type": "aes", "msg_signature": sha1_signature(token, ts, nonce, encrypted)}
    envelope = f"<Encrypt><![CDATA[{encrypted}]]></Encrypt>"
    if mode == "compatible":  # the plaintext fields and the ciphertext side by side
        return Signed(params, xml.replace("</xml>", f"{envelope}</xml>").encode())
    assert mode == "safe", mode
    return Signed(params, f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName>{envelope}</xml>".encode())


def open_reply(body: str, *, token: str = TOKEN) -> str:
    """The XML inside an encrypted passive reply, after checking its MsgSignature and app id."""
    root = ET.fromstring(body)
    encrypted = root.findtext("Encrypt") or ""
    timestamp, nonce = root.findtext("TimeStamp") or "", root.findtext("Nonce") or ""
    assert root.findtext("MsgSignature") == sha1_signature(token, timestamp, nonce, encrypted)
    xml, app_id = decrypt(encrypted)
    assert app_id == APP_ID
    return xml


def text_xml(content: str, *, msg_id: str = "1234567890123456", open_id: str = "oLearner", at: int) -> str:
    """The recorded text message (`recorded`), from `open_id`, saying `content`."""
    return recorded.push("text", FromUserName=open_id, CreateTime=at, Content=content, MsgId=msg_id)
