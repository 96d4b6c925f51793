"""Staff cards and alerts through WeCom group robots, for schools whose staff live in WeCom.

A group robot is a webhook: `POST <robot_url>?key=<key>` with `{"msgtype": "markdown", ...}` or
`{"msgtype": "text", ...}`. It can only post: no buttons, no edits, no replies, so staff act on the
tickets from the CLI (or Telegram) and a WeCom group reads as a feed of the desk's news.

Limits of the robot: markdown content 4,096 bytes, text content 2,048 bytes (UTF-8), 20 messages a
minute per robot. A longer text goes in parts (the dispatcher splits it, `text_limit`); a card or an
alert, which WeCom shows as markdown, is cut on a character boundary and ends with "…". The rate is kept
before each post (a message over it is paced: due again in 3 s); if WeCom still answers 45009, the
message waits a minute in the outbox.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from typing import Any

import httpx
from aiolimiter import AsyncLimiter

from core.delivery.outbox import (
    LaneLimits,
    NotConfiguredError,
    PacedError,
    PermanentSendError,
    TemporarySendError,
)
from core.messages import OutboundMessage, SendResult
from core.text_limits import TextLimit

DEFAULT_ROBOT_URL = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send"
MARKDOWN_LIMIT = 4096
TEXT_LIMIT = 2048
RATE_LIMITED = 45009  # 20 messages a minute per robot
ROBOT_RATE, ROBOT_PERIOD_S = 20, 60.0
BAD_KEY = 93000  # "invalid webhook url": the key is wrong or the robot was removed from its group
BUSY = -1
ELLIPSIS = "…"

# Kinds shown as markdown with a heading (their first line in bold); alerts in WeCom's warning colour.
MARKDOWN_KINDS = frozenset({"card", "card-edit", "alert"})


def cut(text: str, limit: int) -> str:
    """`text` within `limit` UTF-8 bytes: cut on a character boundary, ending with "…" when cut."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    room = limit - len(ELLIPSIS.encode("utf-8"))
    # errors="ignore" drops the partial character the byte cut may have left at the end.
    return data[:room].decode("utf-8", errors="ignore").rstrip() + ELLIPSIS


def _markdown(message: OutboundMessage) -> str:
    head, _, body = message.text.strip().partition("\n")
    if message.kind == "alert":
        head = f'<font color="warning">{head}</font>'
    lines = [f"**{head}**"] if head else []
    # Each line of the body as a quote: WeCom's markdown keeps their breaks and indents them as a block.
    lines += [f"> {line}" if line.strip() else ">" for line in body.splitlines()]
    return "\n".join(lines)


IMAGE_LIMIT = 2 * 1024 * 1024  # a robot's picture, before base64


def image_payload(content: bytes) -> dict[str, Any]:
    """A robot's picture message: the image in base64 with the MD5 of its bytes (WeCom checks it)."""
    if len(content) > IMAGE_LIMIT:
        raise PermanentSendError(f"a WeCom robot takes pictures up to 2 MB, this one is {len(content)} bytes")
    return {
        "msgtype": "image",
        "image": {
            "base64": base64.b64encode(content).decode("ascii"),
            "md5": hashlib.md5(content).hexdigest(),
        },
    }


def payload(message: OutboundMessage) -> dict[str, Any]:
    """The robot's JSON for a staff message: markdown for cards and alerts, text for the rest."""
    if message.kind in MARKDOWN_KINDS:
        return {"msgtype": "markdown", "markdown": {"content": cut(_markdown(message), MARKDOWN_LIMIT)}}
    return {"msgtype": "text", "text": {"content": cut(message.text.strip(), TEXT_LIMIT)}}


class WecomStaffSink:
    """The `staff` channel through WeCom group robots.

    `robots` maps a department key to its robot key (`[departments.<key>] wecom_robot_key`) and
    "managers" to the managers' robot (`[channels.wechat] wecom_managers_key`); a recipient without
    one goes to `default` (the first-contact department's robot), and with no robot at all the message
    waits (`TemporarySendError` naming what to configure), as on Telegram and e-mail.
    A card edit is not posted unless `card_updates` (a robot cannot edit: each edit would be a new
    post); a card reports `wecom:<key>` as its reference so that edits and follow-ups find it.
    """

    # Markdown (cards, alerts) has a limit of its own, twice the text's: cut there, never sent in parts,
    # each of which would read as an alert of its own.
    whole_kinds = MARKDOWN_KINDS

    def __init__(
        self,
        robots: Mapping[str, str],
        *,
        default: str | None = None,
        robot_url: str = DEFAULT_ROBOT_URL,
        card_updates: bool = False,
        timeout: float = 10.0,
    ) -> None:
        self.robots = dict(robots)
        self.default = default
        self.robot_url = robot_url
        self.card_updates = card_updates
        self.timeout = timeout
        self.limits = LaneLimits(batch=32, concurrency=4)
        self.text_limit = TextLimit(TEXT_LIMIT, "utf8")
        self._pacing: dict[str, AsyncLimiter] = {}  # per robot key

    async def send(self, message: OutboundMessage) -> SendResult:
        if message.kind == "card-edit" and not self.card_updates:
            return SendResult(external_ref=str(message.meta.get("card_ref") or "") or None)
        key = self.robots.get(message.recipient) or self.default
        if not key:
            where = "[channels.wechat] wecom_managers_key"
            if message.recipient != "managers":
                where = f"[departments.{message.recipient}] wecom_robot_key"
            raise NotConfiguredError(f"no WeCom robot for staff {message.recipient!r}: set {where}")
        limiter = self._pacing.setdefault(key, AsyncLimiter(ROBOT_RATE, ROBOT_PERIOD_S))
        if not limiter.has_capacity():  # its 20 a minute are used: back in 3 s, no attempt used
            raise PacedError("WeCom robot: 20 messages a minute", ROBOT_PERIOD_S / ROBOT_RATE)
        await limiter.acquire()
        await self.post(key, payload(message))
        for picture in [d for d in message.documents if d.mime in ("image/png", "image/jpeg")]:
            # A robot cannot post a PDF without WeCom's media upload; the report's overview picture
            # follows its summary instead (a retry repeats both: the text says which month it is).
            await limiter.acquire()
            await self.post(key, image_payload(picture.content))
        return SendResult(external_ref=f"wecom:{message.key}")

    async def post(self, key: str, body: Mapping[str, Any]) -> None:
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                response = await client.post(self.robot_url, params={"key": key}, json=body)
                response.raise_for_status()
                answer = response.json()
        except httpx.HTTPStatusError as exc:
            raise TemporarySendError(f"WeCom robot answered HTTP {exc.response.status_code}") from exc
        except (httpx.HTTPError, ValueError) as exc:  # timeouts, refused connections, no JSON
            raise TemporarySendError(f"WeCom robot unreachable: {type(exc).__name__}: {exc}") from exc
        code = int(answer.get("errcode", 0)) if isinstance(answer, dict) else 0
        if code == 0:
            return
        text = answer.get("errmsg", "")
        if code == RATE_LIMITED:
            raise TemporarySendError(f"WeCom robot rate limit (45009 {text})", retry_after=60)
        if code in (BUSY, BAD_KEY):
            # A wrong or removed robot key is fixed in the configuration: the message waits for it.
            raise TemporarySendError(f"WeCom robot refused ({code} {text}): check its wecom_robot_key")
        raise PermanentSendError(f"WeCom robot refused the message ({code} {text})")
