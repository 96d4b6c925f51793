"""The load of benchmarks/pipeline.py: what learners and platforms send, and how it reaches the service.

Per channel, a complaint as an `Item` (what was handed over, and the acknowledgements that came of it) and
what carries it: a learner's e-mail (APPENDed to the mailbox), a WeChat push (signed and encrypted, as
benchmarks/wechat_webhook.py builds them), a Telegram update, a voicemail transcript (HMAC-signed). The
webhooks go over a lean HTTP/1.1 client of our own: a burst over kept-alive connections (`burst`), or the
steady load's pool (`Pool`); e-mail is APPENDed one at a time on a kept IMAP session (`Appender`).
`steady_sender` is the steady mix: what the load does for complaint k when its time comes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import imaplib
import json
import random
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr
from urllib.parse import parse_qs, urlsplit

from wechatpy.crypto import WeChatCrypto

from benchmarks.pipeline_service import AUTHSERV_ID, MAILBOX, TELEGRAM_SECRET, VOICEMAIL_SECRET
from benchmarks.pipeline_sinks import Delivery, is_ack
from benchmarks.wechat_webhook import pushes
from tests.channels.mail.dovecot import Dovecot

NAMES = ("李明", "王芳", "张伟", "陈静", "Emily Carter", "James Wong", None)


# -- what is sent, and what came of it -----------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    body: bytes


@dataclass
class Item:
    """One complaint as the load handed it over, and every acknowledgement that left for it."""

    channel: str  # email | wechat | telegram | voicemail
    key: str  # where its acknowledgement goes: address, openid, chat id ("" for voicemail)
    handed: float = 0.0  # time.time(): request sent, mail appended (burst e-mail: the service's start)
    answered: float | None = None  # webhooks: when the HTTP response was complete
    status: int = 0  # HTTP status (-1: no response)
    body: bytes = b""  # WeChat: the response, checked afterwards for the encrypted acknowledgement
    ref: str = ""  # e-mail: its Message-ID
    committed: float | None = None  # its commit: the service's log line (e-mail), the 2xx (Telegram)
    acks: list[float] = field(default_factory=list)


def learner_mail(i: int, tag: str, text: str, rng: random.Random) -> tuple[str, bytes]:
    """A new learner's complaint e-mail, as a mail client writes it; (their address, the raw message).
    Its Message-ID is `mail_id(tag, i)`."""
    domain = rng.choice(("163.com", "qq.com", "gmail.com", "outlook.com"))
    address = f"learner-{tag}-{i}@{domain}"
    name = rng.choice(NAMES)
    mail = EmailMessage()
    mail["From"] = formataddr((name, address)) if name else address
    mail["To"] = MAILBOX
    mail["Subject"] = rng.choice(("投诉", "关于课程的投诉", "Complaint"))
    mail["Date"] = format_datetime(datetime.now(UTC))
    mail["Message-ID"] = mail_id(tag, i)
    # What the school's receiving server prepends (the service trusts its authserv-id).
    mail["Authentication-Results"] = f"{AUTHSERV_ID}; dmarc=pass header.from={domain}"
    mail.set_content(f"{text}\n\n-- \n{name or address}\n")
    if rng.random() < 0.4:  # webmail sends an HTML part too
        mail.add_alternative(
            f"<html><body><p>{text}</p><p>-- <br>{name or address}</p></body></html>", "html"
        )
    return address, mail.as_bytes(policy=SMTP)


def mail_id(tag: str, i: int) -> str:
    # The service's log masks addresses, Message-IDs included, to their first letter and domain: the
    # tag and number go in the domain, so the log line of each mail's intake can still be found.
    return f"<pipeline@{tag}-{i}.mail.example>"


def wechat_request(item: Item, texts: list[str], number: int) -> Request:
    push = pushes("wechat", 1, texts, number)[0]  # signed now, encrypted, a new learner each
    item.key = parse_qs(urlsplit(push.target).query)["openid"][0]
    return Request("POST", push.target, (("Content-Type", "text/xml"),), push.body)


def telegram_request(item: Item, text: str, update_id: int) -> Request:
    user_id = int(item.key)
    english = text.isascii()
    person = {
        "id": user_id,
        "is_bot": False,
        "first_name": "Learner",
        "language_code": "en" if english else "zh",
    }
    message = {
        "message_id": 1,
        "from": person,
        "chat": {"id": user_id, "type": "private", "first_name": "Learner"},
        "date": int(time.time()),
        "text": text,
    }
    body = json.dumps({"update_id": update_id, "message": message}, ensure_ascii=False).encode()
    headers = (("Content-Type", "application/json"), ("X-Telegram-Bot-Api-Secret-Token", TELEGRAM_SECRET))
    return Request("POST", "/telegram", headers, body)


def voicemail_request(item: Item, text: str, number: int) -> Request:
    transcript = {
        "schema_version": 1,
        "source": "asterisk",
        "external_id": f"pipeline.{number}",
        "caller": f"+8613{number:09d}",
        "received_at": datetime.now(UTC).isoformat(),
        "transcript": text,
        "transcript_status": "completed",
        "duration_s": 37,
    }
    body = json.dumps(transcript, ensure_ascii=False).encode()
    stamp = str(int(time.time()))
    signature = hmac.new(VOICEMAIL_SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    headers = (
        ("Content-Type", "application/json"),
        ("X-Voicemail-Timestamp", stamp),
        ("X-Voicemail-Signature", signature),
    )
    return Request("POST", "/voicemail", headers, body)


def passive_ack(item: Item, crypto: WeChatCrypto) -> bool:
    """Whether the WeChat response carried this learner's acknowledgement (decrypted, checked)."""
    if item.status != 200 or b"<Encrypt>" not in item.body:
        return False
    try:
        outer = ET.fromstring(item.body)
        fields = [outer.findtext(name) or "" for name in ("MsgSignature", "TimeStamp", "Nonce")]
        inner = ET.fromstring(crypto.decrypt_message(item.body.decode(), *fields))
    except Exception:  # wechatpy raises its own exceptions for a bad signature or padding
        return False
    return inner.findtext("ToUserName") == item.key and is_ack(inner.findtext("Content") or "")


def match_acks(items: Iterable[Item], deliveries: Sequence[Delivery], channel: str) -> None:
    found: dict[str, list[float]] = defaultdict(list)
    for delivery in deliveries:
        if delivery.channel == channel and delivery.kind == "ack":
            found[delivery.to].append(delivery.at)
    for item in items:
        item.acks.extend(found.get(item.key, []))


# -- HTTP: a lean client of our own (see benchmarks/wechat_webhook.py, `_post`, for why not httpx) -----------


async def exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: Request
) -> tuple[int, bytes]:
    head = f"{request.method} {request.target} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in request.headers)
    writer.write(f"{head}Content-Length: {len(request.body)}\r\n\r\n".encode("latin-1") + request.body)
    lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    fields = {
        name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])
    }
    return int(lines[0].split()[1]), await reader.readexactly(int(fields.get("content-length", "0")))


async def burst(port: int, jobs: Sequence[tuple[Item, Request]], concurrency: int) -> tuple[float, float]:
    """Every request over `concurrency` kept-alive connections, each sending the next as soon as it has
    its answer; (began, ended)."""
    queue = list(reversed(jobs))

    async def worker() -> None:
        connection = await asyncio.open_connection("127.0.0.1", port)
        try:
            while queue:
                item, request = queue.pop()
                item.handed = time.time()
                try:
                    item.status, item.body = await exchange(*connection, request)
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    item.status = -1
                    connection[1].close()
                    connection = await asyncio.open_connection("127.0.0.1", port)
                item.answered = time.time()
        finally:
            connection[1].close()

    began = time.time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return began, time.time()


class Pool:
    """Kept-alive connections for the steady load: one per request in flight, reused afterwards while
    younger than uvicorn's keep-alive timeout (5 s)."""

    KEEP_S = 3.0

    def __init__(self, port: int) -> None:
        self.port = port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []

    async def _connection(self, fresh: bool) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bool]:
        while self.idle and not fresh:
            reader, writer, since = self.idle.pop()
            if time.monotonic() - since < self.KEEP_S:
                return reader, writer, True
            writer.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        return reader, writer, False

    async def send(self, item: Item, request: Request) -> None:
        item.handed = time.time()
        for attempt in (1, 2):
            reader, writer, reused = await self._connection(fresh=attempt == 2)
            try:
                item.status, item.body = await exchange(reader, writer, request)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                writer.close()
                if reused and attempt == 1:  # the server closed it while idle: it took nothing
                    continue
                item.status = -1
            else:
                self.idle.append((reader, writer, time.monotonic()))
            break
        item.answered = time.time()

    def close(self) -> None:
        for _, writer, _ in self.idle:
            writer.close()
        self.idle.clear()


# -- the mailbox side: e-mail APPENDed as it goes ------------------------------------------------------------


class Appender:
    """APPENDs one message at a time on a kept IMAP session, in a thread of its own (steady load)."""

    def __init__(self, server: Dovecot) -> None:
        self.server = server
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="appender")
        self._client: imaplib.IMAP4 | None = None
        self._session: contextlib.ExitStack | None = None

    def _append(self, raw: bytes) -> float:
        if self._client is None:
            self._session = contextlib.ExitStack()
            self._client = self._session.enter_context(self.server.session())
        status, _ = self._client.append("INBOX", "", None, raw)
        if status != "OK":
            raise RuntimeError(f"APPEND: {status}")
        return time.time()

    async def append(self, item: Item, raw: bytes) -> None:
        item.handed = await asyncio.get_running_loop().run_in_executor(self.executor, self._append, raw)

    def close(self) -> None:
        def _close() -> None:
            if self._session is not None:
                self._session.close()

        with contextlib.suppress(Exception):
            self.executor.submit(_close).result(10)
        self.executor.shutdown()


def steady_sender(
    item: Item, k: int, text_: str, texts: list[str], rng: random.Random
) -> Callable[[], object]:
    """What the steady load does for complaint `k` when its time comes: a request, or a mail to append."""
    if item.channel == "wechat":
        return lambda: wechat_request(item, texts, 200_000 + k)
    if item.channel == "telegram":
        item.key = str(6_500_000_000 + k)
        return lambda: telegram_request(item, text_, 50_000 + k)
    if item.channel == "voicemail":
        return lambda: voicemail_request(item, text_, 500_000 + k)
    address, raw = learner_mail(k, "steady", text_, rng)
    item.key, item.ref = address.lower(), mail_id("steady", k)
    return lambda: raw
