"""Sending to learners on WeChat: customer-service messages, with a template message as fallback.

A customer-service message (`message/custom/send`) may reach a learner only within 48 hours of their
last message to the Official Account (45015 after that), and only a few times without an answer
(45047). Either way the reply cannot arrive as one: with `[channels.wechat] template_id` configured a
template message tells the learner instead; without it the row ends dead with the reason, which staff
see on the ticket (`tickets show`), and they reach the learner another way.

Errors, as the outbox wants them:
- a refused token (40001 invalid, 40014 malformed, 42001 expired): the shared token is refreshed once
  and the message sent once more; refused again, it is a `TemporarySendError`;
- -1 (system busy), HTTP errors, timeouts, refused connections, 45009 (the account's daily API quota),
  40037 (a wrong `template_id`): `TemporarySendError`, the outbox tries again later;
- anything else (40003 bad OpenID, 43004 the learner unfollowed...): `PermanentSendError` with WeChat's
  own words.

A text takes at most 2,048 bytes of UTF-8 (45002 past that): the dispatcher sends a longer one in parts
(`text_limit`). When the fallback template goes instead of a part, it stands for the whole message
(`SendResult.whole`): the learner is not sent a template for each part.

WeChat has no idempotency key for these messages: a retry after a crash between the send and its record
sends once more, as DESIGN.md allows.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from wechatpy.exceptions import WeChatClientException

from channels.wechat.api import SharedAccessToken, WechatClient
from channels.wechat.capabilities import TEXT_LIMIT
from core.delivery.outbox import PermanentSendError, TemporarySendError
from core.delivery.parts import WHOLE_TEXT
from core.messages import OutboundMessage, SendResult

log = logging.getLogger(__name__)

T = TypeVar("T")

TOKEN_REFUSED = frozenset({40001, 40014, 42001})
BUSY = -1
API_QUOTA = 45009
BAD_TEMPLATE = 40037
OUTSIDE_WINDOW, OVER_QUOTA = 45015, 45047
WINDOW_REASONS = {
    OUTSIDE_WINDOW: "outside WeChat's 48-hour window: the learner must write first, "
    "or configure a template message",
    OVER_QUOTA: "over WeChat's limit of customer-service messages without an answer (45047): "
    "the learner must write first, or configure a template message",
}
TEMPLATE_REMARK_LIMIT = 200  # characters of the text the fallback carries; WeChat cuts longer values

# keyword2 of the fallback template: what the message is, in the learner's words.
TEMPLATE_STATUS = {"ack": "已受理", "ask": "待补充信息", "reply": "已回复", "notice": "处理进展"}


class WindowClosedError(PermanentSendError):
    """The learner cannot be reached by customer-service message now (45015 or 45047)."""

    def __init__(self, errcode: int) -> None:
        super().__init__(WINDOW_REASONS[errcode])
        self.errcode = errcode


def _refusal(exc: Any, what: str) -> TemporarySendError | PermanentSendError:
    """A wechatpy error as the outbox's error; `errcode` is None for an HTTP error status."""
    code, text = exc.errcode, exc.errmsg
    if code is None:
        status = getattr(exc.response, "status_code", "?")
        return TemporarySendError(f"WeChat API answered HTTP {status} to the {what}")
    if code in WINDOW_REASONS:
        return WindowClosedError(code)
    if code == BUSY:
        return TemporarySendError(f"WeChat is busy (-1 {text}): the {what} will be tried again")
    if code == BAD_TEMPLATE:  # a configuration fault: once `template_id` is fixed, the message goes out
        return TemporarySendError(
            f"WeChat refused the template ({code} {text}): check [channels.wechat] template_id"
        )
    if code == API_QUOTA:
        # The daily quota of the account resets at midnight; retrying sooner only spends calls.
        return TemporarySendError(f"WeChat API quota reached (45009 {text})", retry_after=3600)
    return PermanentSendError(f"WeChat refused the {what} ({code} {text})")


def template_data(message: OutboundMessage) -> dict[str, dict[str, str]]:
    """The fallback template's fields: first (a heading), keyword1 (the ticket number), keyword2 (what
    kind of message it is, see `TEMPLATE_STATUS`), remark (the start of the text). A template with
    these four fields is chosen in the Official Account's template library (e.g. "投诉处理进度通知")."""
    # A part of a long text stands for all of it: the template starts where the text starts.
    text = str(message.meta.get(WHOLE_TEXT) or message.text).strip()
    if len(text) > TEMPLATE_REMARK_LIMIT:
        text = text[: TEMPLATE_REMARK_LIMIT - 1] + "…"
    return {
        "first": {"value": "您的投诉有新的消息"},
        "keyword1": {"value": message.ticket_number or "-"},
        "keyword2": {"value": TEMPLATE_STATUS.get(message.kind, "处理中")},
        "remark": {"value": text},
    }


class WechatSender:
    """The `wechat` channel: messages to a learner of the Official Account (recipient = their OpenID).

    Several instances (in one process or many sharing the database) share one access token through
    `token`. A message sent as the fallback template reports `external_ref = "template:<msgid>"`, so
    the outbox row shows how it went out.
    """

    def __init__(
        self, client: WechatClient, token: SharedAccessToken, *, template_id: str | None = None
    ) -> None:
        self.client = client
        self.token = token
        self.template_id = template_id
        self.text_limit = TEXT_LIMIT

    async def send(self, message: OutboundMessage) -> SendResult:
        openid = message.recipient.strip()
        if not openid:
            raise PermanentSendError("no WeChat OpenID to send to")
        try:
            await self._with_token(
                lambda token: self.client.send_text(token, openid, message.text), "message"
            )
            return SendResult()
        except WindowClosedError as closed:
            if not self.template_id:
                raise
            log.info(
                "wechat %s (%s): %s; sending the template message instead",
                message.key,
                message.ticket_number or "-",
                closed,
            )
            template_id = self.template_id
        answer = await self._with_token(
            lambda token: self.client.send_template(token, openid, template_id, template_data(message)),
            "template message",
        )
        return SendResult(external_ref=f"template:{answer.get('msgid', '')}", whole=True)

    async def _with_token(self, call: Callable[[str], Awaitable[T]], what: str) -> T:
        """Make `call` with the shared token; once more with a fresh one if WeChat refused the token."""
        token = await self.token.get()
        try:
            return await call(token)
        except WeChatClientException as exc:
            if exc.errcode not in TOKEN_REFUSED:
                raise _refusal(exc, what) from exc
            log.info("WeChat refused the access token (%s): refreshing it", exc.errcode)
        except OSError as exc:  # requests' errors: refused connection, timeout, TLS
            raise TemporarySendError(f"WeChat API unreachable: {type(exc).__name__}: {exc}") from exc
        token = await self.token.refresh(token)
        try:
            return await call(token)
        except WeChatClientException as exc:
            if exc.errcode in TOKEN_REFUSED:
                raise TemporarySendError(
                    f"WeChat refused a freshly fetched access token ({exc.errcode} {exc.errmsg})"
                ) from exc
            raise _refusal(exc, what) from exc
        except OSError as exc:
            raise TemporarySendError(f"WeChat API unreachable: {type(exc).__name__}: {exc}") from exc
