"""The far ends of complaintbot's outgoing traffic for benchmarks/pipeline.py, in a process of their own.

One process (started with `Sinks`) serves the three stand-ins the service sends to: the SMTP server
(standins/smtp.py, aiosmtpd in its own thread), the Telegram Bot API
(standins/botapi.py) and the WeChat API (standins/wechatapi.py), both on
this process's event loop. So neither the service nor the load generator pays for them, and their
clocks are the wall clock (`time.time()`), comparable with the load's. Each message is recorded when
it arrives, as a `Delivery`: which channel, to whom, and whether it is an acknowledgement:

- e-mail: to a learner (not a desk at `DESK_DOMAIN`) and threaded (In-Reply-To); confirmed afterwards
  by the acknowledgement's first line in the text part (`report`);
- Telegram: `sendMessage` to a private chat (positive id) whose text starts with the first line of the
  acknowledgement template; negative ids are staff chats;
- WeChat: a customer-service message (or a template message) whose text starts the same way.

The parent talks to it over a pipe: `clear`, `counts` (while waiting), `report` (after a scenario).
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import multiprocessing
import re
import signal
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from multiprocessing.connection import Connection
from typing import Any

ACK_MARKS = ("【投诉接收确认】", "Complaint received")  # first lines of core/templates/*/ack.txt.j2
DESK_DOMAIN = "desk.school.example.cn"  # the staff desks' addresses ([departments.<key>] email)
FLOOR_FROM = "floor@bench.invalid"  # envelope sender of the e-mail baseline's replies
_IN_REPLY_TO = re.compile(rb"^In-Reply-To:[ \t]*(<[^>\r\n]+>)", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class Delivery:
    at: float  # time.time() when the stand-in had it
    channel: str  # email | telegram | wechat | floor (the e-mail baseline's replies)
    to: str  # learner address, chat id, openid, or a desk address
    kind: str  # ack | learner (anything else to a learner) | staff | floor
    ref: str = ""  # e-mail: the In-Reply-To it carries


def is_ack(text: str) -> bool:
    return text.lstrip().startswith(ACK_MARKS)


# -- the process -----------------------------------------------------------------------------------------


def run_sinks(conn: Connection, token: str, app_id: str, app_secret: str) -> None:
    """The child's entry point (multiprocessing, spawn). Ctrl-C is the parent's to handle: it stops us."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    asyncio.run(_serve(conn, token, app_id, app_secret))


async def _serve(conn: Connection, token: str, app_id: str, app_secret: str) -> None:
    # Imported here: the parent does not need the stand-ins' dependencies (aiosmtpd) to import this module.
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import SMTP, Envelope, Session

    from standins.botapi import BotApiServer, JSONDict
    from standins.smtp import Recorder, free_port
    from standins.wechatapi import WechatApiServer

    log: list[Delivery] = []
    mails: dict[int, bytes] = {}  # index in `log` -> the raw mail, for the check in `report`

    @dataclass
    class TimedRecorder(Recorder):
        async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
            answer = await super().handle_DATA(server, session, envelope)
            at = time.time()
            if not answer.startswith("250"):
                return answer
            content = envelope.original_content or b""
            head = content.split(b"\r\n\r\n", 1)[0]
            found = _IN_REPLY_TO.search(head)
            ref = found[1].decode("ascii", "replace") if found else ""
            for rcpt in envelope.rcpt_tos:
                if str(envelope.mail_from) == FLOOR_FROM:
                    kind, channel = "floor", "floor"
                elif rcpt.lower().endswith("@" + DESK_DOMAIN):
                    kind, channel = "staff", "email"
                else:
                    kind, channel = ("ack" if ref else "learner"), "email"
                if kind == "ack":
                    mails[len(log)] = content
                log.append(Delivery(at, channel, rcpt.lower(), kind, ref))
            return answer

    class TimedWechatApi(WechatApiServer):
        def _custom(self, query: dict[str, str], body: JSONDict) -> JSONDict:
            answer = super()._custom(query, body)  # raises for a refused call: not delivered
            text = str(body.get("text", {}).get("content", ""))
            log.append(Delivery(time.time(), "wechat", str(body.get("touser")), _learner_kind(text)))
            return answer

        def _template(self, query: dict[str, str], body: JSONDict) -> JSONDict:
            answer = super()._template(query, body)
            log.append(Delivery(time.time(), "wechat", str(body.get("touser")), "learner"))
            return answer

    controller = Controller(TimedRecorder(), hostname="127.0.0.1", port=free_port())
    controller.start()
    botapi = BotApiServer(token=token)
    send_message = botapi._handlers["sendmessage"]

    async def timed_send_message(params: JSONDict) -> Any:
        result = await send_message(params)  # raises BotApiError for a refused call: not delivered
        chat = params.get("chat_id")
        text = str(params.get("text", ""))
        kind = "staff" if isinstance(chat, int) and chat < 0 else _learner_kind(text)
        log.append(Delivery(time.time(), "telegram", str(chat), kind))
        return result

    botapi.register_method("sendMessage", timed_send_message)
    wechat = TimedWechatApi(app_id=app_id, app_secret=app_secret)
    await botapi.start()
    await wechat.start()
    loop = asyncio.get_running_loop()
    try:
        conn.send({"smtp_port": controller.port, "botapi": botapi.base_url, "wechat": wechat.url})
        while True:
            command = await loop.run_in_executor(None, conn.recv)
            if command == "clear":
                log.clear()
                mails.clear()
                conn.send(True)
            elif command == "counts":
                conn.send(Counter((d.channel, d.kind) for d in list(log)))
            elif command == "report":
                conn.send(_checked(list(log), mails))
            else:  # "stop"
                conn.send(True)
                break
    finally:
        await wechat.stop()
        await botapi.stop()
        controller.stop()


def _learner_kind(text: str) -> str:
    return "ack" if is_ack(text) else "learner"


def _checked(log: list[Delivery], mails: dict[int, bytes]) -> list[Delivery]:
    """Threaded mail to a learner counts as an acknowledgement only if its text is one."""
    out = []
    for index, delivery in enumerate(log):
        raw = mails.get(index)
        if raw is not None:
            parsed = email.message_from_bytes(raw, policy=email.policy.default)
            body = parsed.get_body(("plain",)) if isinstance(parsed, EmailMessage) else None
            text = body.get_content() if isinstance(body, EmailMessage) else ""
            if not is_ack(str(text)):
                delivery = Delivery(delivery.at, delivery.channel, delivery.to, "learner", delivery.ref)
        out.append(delivery)
    return out


# -- the parent's side ------------------------------------------------------------------------------------


@dataclass
class Sinks:
    """Start with `running()`; the stand-ins' addresses are then `smtp_port`, `botapi`, `wechat`."""

    token: str
    app_id: str
    app_secret: str
    smtp_port: int = 0
    botapi: str = ""  # [channels.telegram] base_url
    wechat: str = ""  # [channels.wechat] api_base_url
    _conn: Connection | None = None
    _process: multiprocessing.process.BaseProcess | None = field(default=None, repr=False)

    @contextlib.contextmanager
    def running(self) -> Iterator[Sinks]:
        context = multiprocessing.get_context("spawn")
        ours, theirs = context.Pipe()
        process = context.Process(
            target=run_sinks,
            args=(theirs, self.token, self.app_id, self.app_secret),
            name="pipeline-sinks",
            daemon=True,
        )
        process.start()
        self._conn, self._process = ours, process
        try:
            for _ in range(600):
                if ours.poll(0.1) or not process.is_alive():
                    break
            if not ours.poll():
                raise RuntimeError(f"the stand-ins' process did not start (exit code {process.exitcode})")
            where = ours.recv()
            self.smtp_port, self.botapi, self.wechat = where["smtp_port"], where["botapi"], where["wechat"]
            yield self
        finally:
            with contextlib.suppress(Exception):
                if process.is_alive():
                    ours.send("stop")
                    if ours.poll(10):
                        ours.recv()
            process.join(10)
            if process.is_alive():
                process.terminate()
                process.join(5)

    def _ask(self, command: str) -> Any:
        assert self._conn is not None and self._process is not None
        self._conn.send(command)
        if not self._conn.poll(120):
            raise RuntimeError(f"the stand-ins did not answer {command!r}")
        return self._conn.recv()

    async def clear(self) -> None:
        await asyncio.to_thread(self._ask, "clear")

    async def counts(self) -> Counter[tuple[str, str]]:
        counts: Counter[tuple[str, str]] = await asyncio.to_thread(self._ask, "counts")
        return counts

    async def report(self) -> list[Delivery]:
        deliveries: list[Delivery] = await asyncio.to_thread(self._ask, "report")
        return deliveries
