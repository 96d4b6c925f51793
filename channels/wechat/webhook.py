"""`GET/POST /wechat`: WeChat's server verification and message push, answered passively inside 5 s.

In order, for a push: the signature over (token, timestamp, nonce) and a fresh timestamp (403 otherwise,
nothing read); with an EncodingAESKey configured, encryption (`encrypt_type=aes`: safe or compatible mode)
is required (403), since a plaintext body is covered by no signature at all; the body, at most `MAX_BYTES`
(413); no document type or entity before any parsing (400, nothing stored); the `msg_signature` over the
ciphertext and our app id inside it (403); the same refusal for the decrypted XML. Authentic XML we
cannot use is kept raw for staff (`core.intake.receive`) and answered `success`. Without a key, plaintext mode
(and compatible mode's plaintext copy) is read as it comes.

A learner's message goes through intake, or is a learner's command (查询进度, 新投诉:
`core.intake.receive`); the response is the passive reply carrying the acknowledgement or the command's answer
(`passive.claim_for_reply`), encrypted when a key is configured; one too long for a single message goes
from the outbox in parts instead. WeChat gives up on a response after 5 s
and retries up to three times, so: intake runs as a task of its own, shared by every delivery of the
same MsgId that arrives while it runs (a retry waits for the first and answers the same); a delivery
that waits `reply_timeout` (4 s) in vain answers `success` while the task goes on, and the
acknowledgement it queued goes out as a customer-service message through the outbox. A retry that
arrives later meets intake's dedupe, which hands back the same ticket and acknowledgement.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from channels.http import BodyTooLarge, read_body
from channels.wechat.capabilities import TEXT_LIMIT
from channels.wechat.parse import (
    MAX_BYTES,
    BadXml,
    Complaint,
    OtherEvent,
    Subscribed,
    UnsafeXml,
    Unusable,
    WeChatPush,
    parse_push,
    read_xml,
)
from channels.wechat.passive import claim_for_reply, release_hold, text_reply
from channels.wechat.security import Envelope, Forbidden, Undecryptable, fresh, signature_ok
from core.context import CoreContext
from core.delivery.record import DeliveryObserver
from core.intake.intake import Intake, IntakeResult
from core.intake.receive import Aside, Kept, receive_or_keep
from core.messages import InboundMessage

log = logging.getLogger(__name__)

SUCCESS = "success"  # WeChat's "received, nothing to say": no retry, no error shown to the learner
REPLY_TIMEOUT_S = 4.0  # WeChat waits 5 s; the rest is for the claim and the response's way back
REPLY_HOLD_MARGIN_S = 1.0  # past the reply timeout, for the claim: then the outbox may take the row


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Flight:
    """Intake of one MsgId while it runs, and until when someone waits for its reply."""

    deadline: float  # loop time; a retry that joins pushes it back
    task: asyncio.Task[IntakeResult | None] = field(init=False)
    began: float = 0.0  # loop time intake began: the acknowledgement's latency counts from it


class WeChatWebhook:
    """The routes' state: the configuration and the messages in flight (one process's; instances sharing
    PostgreSQL meet in intake's dedupe instead)."""

    def __init__(
        self,
        intake: Intake,
        core: CoreContext,
        *,
        token: str,
        app_id: str,
        encoding_aes_key: str | None = None,
        clock: Callable[[], datetime] = _utc_now,
        reply_timeout: float = REPLY_TIMEOUT_S,
        locale: str = "zh",
        observer: DeliveryObserver | None = None,
    ) -> None:
        if not token:
            raise ValueError("a WeChat webhook needs channels.wechat.token")
        self.core = core
        self.token = token
        self.envelope = Envelope(token, encoding_aes_key, app_id) if encoding_aes_key else None
        self.clock = clock
        self.reply_timeout = reply_timeout
        self.locale = locale
        self.observer = observer  # told of acknowledgements the response carries (the outbox never sees them)
        self._intake = intake
        self._flights: dict[str, _Flight] = {}

    def routes(self, path: str = "/wechat") -> list[Route]:
        return [Route(path, self.verify, methods=["GET"]), Route(path, self.push, methods=["POST"])]

    async def wait_idle(self) -> None:
        """Until every intake still running behind a `success` has finished (shutdown, tests)."""
        while self._flights:
            await asyncio.gather(*(f.task for f in list(self._flights.values())), return_exceptions=True)

    async def verify(self, request: Request) -> Response:
        """WeChat checks the server URL: echo `echostr` when the signature is ours."""
        if not self._authentic(request.query_params, self.clock()):
            return PlainTextResponse("forbidden", status_code=403)
        echo = request.query_params.get("echostr")
        if echo is None:
            return PlainTextResponse("echostr missing", status_code=400)
        return PlainTextResponse(echo)

    async def push(self, request: Request) -> Response:
        now, query = self.clock(), request.query_params
        if not self._authentic(query, now):
            return PlainTextResponse("forbidden", status_code=403)
        if self.envelope is not None and query.get("encrypt_type", "").lower() != "aes":
            # With a key configured WeChat encrypts every push (safe or compatible mode); a plaintext one
            # proves nothing about its body, only about its URL, which anyone who saw it could reuse.
            log.warning("wechat push refused: not encrypted, although encoding_aes_key is configured")
            return PlainTextResponse("forbidden", status_code=403)
        try:
            body = await read_body(request, MAX_BYTES)
        except BodyTooLarge:
            return PlainTextResponse("body too large", status_code=413)
        try:
            fields = self._fields(body, query)
            content = await self._handle(fields, body, now)
        except UnsafeXml as exc:
            log.warning("wechat push refused: %s", exc)
            return PlainTextResponse("refused", status_code=400)
        except Forbidden as exc:
            log.warning("wechat push refused: %s", exc)
            return PlainTextResponse("forbidden", status_code=403)
        except Exception:  # the database, most likely: nothing committed, WeChat may try again
            log.exception("wechat push failed; answered 500")
            return PlainTextResponse("error", status_code=500)
        if content is None or isinstance(fields, Unusable):
            return PlainTextResponse(SUCCESS)
        account, open_id = str(fields.get("ToUserName", "")), str(fields.get("FromUserName", ""))
        reply = text_reply(account, open_id, content, now)
        if self.envelope is not None:
            reply = self.envelope.seal(reply, query.get("nonce", ""), str(int(now.timestamp())))
        return Response(reply, media_type="application/xml")

    def _authentic(self, query: Mapping[str, str], now: datetime) -> bool:
        timestamp, nonce = query.get("timestamp", ""), query.get("nonce", "")
        return fresh(timestamp, now) and signature_ok(
            query.get("signature", ""), self.token, timestamp, nonce
        )

    def _fields(self, body: bytes, query: Mapping[str, str]) -> dict[str, Any] | Unusable:
        """The push's fields, opened from the envelope in safe and compatible mode."""
        try:
            outer = read_xml(body)
            if self.envelope is None:
                if "MsgType" not in outer and "Encrypt" in outer:
                    # Safe mode with no encoding_aes_key configured here: kept for staff, the operator told.
                    return Unusable("encrypted push, but no encoding_aes_key is configured", _digest(body))
                return outer  # plaintext mode, or compatible mode read from its plaintext copy
            timestamp, nonce = query.get("timestamp", ""), query.get("nonce", "")
            plain = self.envelope.open(outer, query.get("msg_signature", ""), timestamp, nonce)
            return read_xml(plain)  # the decrypted XML is refused on the same terms as a plaintext body
        except (Undecryptable, BadXml) as exc:
            return Unusable(str(exc), _digest(body))

    async def _handle(self, fields: dict[str, Any] | Unusable, body: bytes, now: datetime) -> str | None:
        """The passive reply's text, or None for `success`."""
        push: WeChatPush = fields if isinstance(fields, Unusable) else parse_push(fields, received_at=now)
        if isinstance(push, Complaint):
            # The acknowledgement waits for this response, which carries it if intake is quick enough;
            # past the hold the outbox sends it as a customer-service message.
            hold = now + timedelta(seconds=self.reply_timeout + REPLY_HOLD_MARGIN_S)
            return await self._complaint(replace(push.message, reply_inline_until=hold), now)
        if isinstance(push, Subscribed):
            return self.core.templates.render(self.locale, "wechat_welcome.txt")
        if isinstance(push, OtherEvent):
            return None  # nothing a learner said; nothing to keep
        # Authentic (signed) but of no use to intake: kept raw, once per key, and staff are told.
        await receive_or_keep(self._intake, Aside("wechat", push.key, body, push.reason), now)
        return None

    async def _complaint(self, message: InboundMessage, now: datetime) -> str | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.reply_timeout
        flight = self._flights.get(message.external_id)
        if flight is None:
            flight = _Flight(deadline)
            flight.task = asyncio.create_task(self._receive(message, now, flight))
            self._flights[message.external_id] = flight
            flight.task.add_done_callback(partial(self._landed, message.external_id))
        else:  # WeChat's retry while the first delivery is still in intake: answer what it answers
            flight.deadline = max(flight.deadline, deadline)
        try:
            result = await asyncio.wait_for(asyncio.shield(flight.task), self.reply_timeout)
        except TimeoutError:
            log.warning("wechat %s: no commit in %.1f s: success", message.external_id, self.reply_timeout)
            return None
        if result is None or not result.reply_keys:
            return None
        if not TEXT_LIMIT.fits(result.replies[0]):
            # Too long for one message: the outbox sends it in parts, as customer-service messages, now.
            await release_hold(self.core, result.reply_keys[0], now)
            return None
        # One message fits in a passive reply: the first, the acknowledgement. A follow-up question
        # stays in the outbox for the customer-service API.
        claimed = await claim_for_reply(self.core, result.reply_keys[0], now)
        if claimed and result.created and self.observer is not None:
            waited = timedelta(seconds=loop.time() - flight.began)
            self.observer.delivered("wechat", "ack", "sent", waited)
        return result.replies[0] if claimed else None

    async def _receive(self, message: InboundMessage, now: datetime, flight: _Flight) -> IntakeResult | None:
        received: IntakeResult | None
        try:
            flight.began = asyncio.get_running_loop().time()
            taken = await receive_or_keep(self._intake, message, now)
            received = None if isinstance(taken, Kept) else taken  # kept aside for staff: done with
            if received is not None:
                again = " (redelivery)" if received.duplicate else ""
                log.info("ticket %s: wechat %s%s", received.ticket_number, message.external_id, again)
        except Exception as exc:
            if asyncio.get_running_loop().time() >= flight.deadline:
                await self._rescue(message, exc, now)  # WeChat heard `success`: it will not send it again
            raise
        if (
            received is not None
            and received.reply_keys
            and asyncio.get_running_loop().time() >= flight.deadline
        ):
            # WeChat heard `success`: no response carries the acknowledgement, the outbox sends it now.
            await release_hold(self.core, received.reply_keys[0], now)
        return received

    async def _rescue(self, message: InboundMessage, exc: Exception, now: datetime) -> None:
        log.error("wechat %s failed after `success` was answered: %r", message.external_id, exc)
        raw = json.dumps({"text": message.text, "raw": message.raw}, ensure_ascii=False, default=str)
        try:
            aside = Aside("wechat", message.external_id, raw, f"intake failed: {exc!r}")
            await receive_or_keep(self._intake, aside, now)
        except Exception:  # personal data stays out of the log: this message is lost, and we say so
            log.exception("wechat %s: could not be kept either; the message is lost", message.external_id)

    def _landed(self, key: str, task: asyncio.Task[IntakeResult | None]) -> None:
        flight = self._flights.get(key)
        if flight is not None and flight.task is task:
            del self._flights[key]
        if not task.cancelled():
            task.exception()  # retrieved here: waiters got it already, or `_receive` logged it


def _digest(body: bytes) -> str:
    return f"xml:{hashlib.sha256(body).hexdigest()}"


def wechat_routes(
    intake: Intake,
    core: CoreContext,
    *,
    token: str,
    app_id: str,
    encoding_aes_key: str | None = None,
    clock: Callable[[], datetime] = _utc_now,
    reply_timeout: float = REPLY_TIMEOUT_S,
    path: str = "/wechat",
) -> list[Route]:
    """`GET` and `POST` on `path`; use `WeChatWebhook` itself to wait for intakes still running."""
    webhook = WeChatWebhook(
        intake,
        core,
        token=token,
        app_id=app_id,
        encoding_aes_key=encoding_aes_key,
        clock=clock,
        reply_timeout=reply_timeout,
    )
    return webhook.routes(path)
