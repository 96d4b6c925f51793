"""The demo's stage: its cast (learners, staff and their chats), the stand-ins the service talks to, the
outside world's acts (a Telegram update, a signed WeChat push, a mail in the mailbox, a transcript in the
voicemail spool) and the waits for what the service must do in return, read from the database."""

from __future__ import annotations

import asyncio
import json
import mailbox
import os
import time
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import httpx
from sqlalchemy import and_, func, or_, select
from wechatpy.utils import WeChatSigner

from bot.demo_screen import Screen, Watcher
from bot.service import Running
from core.context import CoreContext
from core.delivery.outbox import PENDING, SENDING
from core.storage.delivery_models import OutboxRow
from core.storage.models import Ticket
from standins.botapi import BotApiServer
from standins.wechatapi import WechatApiServer

WAIT_SECONDS = 180.0  # a bound on one step's wait, for a machine far busier than any reasonable one
STAFF_CHAT, MANAGERS_CHAT = -1000, -1009
# Each department's own staff chat (Telegram allows a bot 20 messages a minute in one group).
DEPARTMENT_CHATS = {"teaching": -1001, "finance": -1002, "service": -1003, "compliance": -1004}
LI_MING, TEACHER, ACCOUNTANT, FRONT_DESK, HEAD, MANAGER = 5001, 9001, 9002, 9003, 9004, 9005
ZHANG_WEI = "oZhangWei-demo"
ANNA = "anna.smith@example.org"
CALLER = "+8613812345678"
DESK_DOMAIN = "desk.school.example.cn"
WECHAT_TOKEN = "demo-wechat-token"
STAFF = (  # name, department, role, Telegram id
    ("王老师", "teaching", "staff", TEACHER),
    ("陈会计", "finance", "staff", ACCOUNTANT),
    ("孙老师", "service", "staff", FRONT_DESK),
    ("刘主任", "service", "head", HEAD),
    ("周校长", "service", "manager", MANAGER),
)


@dataclass
class World:
    """The stand-ins the service talks to, and the places the demo writes into as the outside world."""

    botapi: BotApiServer
    wechat: WechatApiServer
    maildir: Path
    spool: Path
    mailbox_address: str


@dataclass
class Stage:
    """Where the story is told: the running service, its world, the screen, and the tickets so far."""

    running: Running
    world: World
    screen: Screen
    watcher: Watcher
    lang: str
    numbers: dict[str, str] = field(default_factory=dict)  # learner -> ticket number

    @property
    def core(self) -> CoreContext:
        return self.running.application.core

    # -- waiting -------------------------------------------------------------------------------------

    async def until(self, check: Callable[[], Awaitable[bool]], what: str) -> None:
        """Wait until `check()` holds, showing what the bot sends meanwhile."""
        deadline = time.monotonic() + WAIT_SECONDS
        while not await check():
            self.watcher.show_new()
            if time.monotonic() > deadline:
                raise TimeoutError(f"the demo waited {WAIT_SECONDS:.0f} s in vain for {what}")
            await asyncio.sleep(0.05)
        await self.settled()

    async def settled(self) -> None:
        """Wait until the outbox has sent what is due now and sends nothing more, then show it."""

        async def nothing_due() -> bool:
            async with self.core.sessions() as session:
                due = await session.scalar(
                    select(func.count())
                    .select_from(OutboxRow)
                    .where(
                        or_(
                            and_(OutboxRow.status == PENDING, OutboxRow.next_attempt_at <= self.screen_now()),
                            OutboxRow.status == SENDING,
                        )
                    )
                )
            return not due

        deadline = time.monotonic() + WAIT_SECONDS
        while not await nothing_due():
            if time.monotonic() > deadline:
                raise TimeoutError(f"the demo waited {WAIT_SECONDS:.0f} s in vain for the outbox")
            await asyncio.sleep(0.05)
        await asyncio.sleep(0)  # let a stand-in finish recording the last request it answered
        self.watcher.show_new()

    def screen_now(self) -> datetime:
        return self.screen.now()

    async def ticket(self, number: str) -> Ticket:
        async with self.core.sessions() as session:
            found = await session.scalar(select(Ticket).where(Ticket.number == number))
        assert found is not None, number
        return found

    async def newest(self, channel: str) -> str | None:
        async with self.core.sessions() as session:
            return await session.scalar(
                select(Ticket.number).where(Ticket.channel == channel).order_by(Ticket.id.desc()).limit(1)
            )

    async def status_is(self, number: str, *statuses: str) -> None:
        async def check() -> bool:
            return (await self.ticket(number)).status in statuses

        await self.until(check, f"{number} to be {' or '.join(statuses)}")

    async def opened(self, key: str, channel: str) -> str:
        async def check() -> bool:
            number = await self.newest(channel)
            if number is None:
                return False
            self.numbers[key] = number
            return True

        await self.until(check, f"the {channel} complaint's ticket")
        return self.numbers[key]

    # -- the outside world's acts -------------------------------------------------------------------

    async def telegram(self, who: str, user: int, text: str) -> None:
        self.screen.learner(who, "Telegram", text)
        update = self.world.botapi.learner_message(user, text, first_name=who)
        await self.world.botapi.wait_confirmed(update["update_id"], timeout=WAIT_SECONDS)

    async def staff(self, who: str, user: int, text: str) -> None:
        [department] = [d for name, d, _, _ in STAFF if name == who]
        chat = DEPARTMENT_CHATS[department]
        self.screen.staff(who, f"{department} chat", text)
        update = self.world.botapi.group_message(chat, user, text, first_name=who, title=department)
        await self.world.botapi.wait_confirmed(update["update_id"], timeout=WAIT_SECONDS)

    async def press(self, who: str, user: int, chat: int, text: str, button: str) -> None:
        """`who` presses the button whose callback data starts with `button` on the last message with one."""
        for message in reversed(self.world.botapi.messages_to(chat)):
            for row in message.get("reply_markup", {}).get("inline_keyboard", []):
                for key in row:
                    if str(key.get("callback_data", "")).startswith(button):
                        self.screen.learner(who, "Telegram", f"{text} [{key['text']}]")
                        update = self.world.botapi.callback(
                            chat, user, message["message_id"], key["callback_data"]
                        )
                        await self.world.botapi.wait_confirmed(update["update_id"], timeout=WAIT_SECONDS)
                        return
        raise LookupError(f"no button {button!r} in chat {chat}")

    async def wechat(self, who: str, text: str, msg_id: int) -> None:
        """A push as WeChat sends it in plaintext mode; the passive reply is shown as the bot's answer."""
        self.screen.learner(who, "WeChat", text)
        timestamp, nonce = str(int(time.time())), f"{msg_id}"
        signer = WeChatSigner()
        signer.add_data(WECHAT_TOKEN, timestamp, nonce)
        root = ET.Element("xml")
        for tag, value in (
            ("ToUserName", "gh_school_demo"),
            ("FromUserName", ZHANG_WEI),
            ("CreateTime", timestamp),
            ("MsgType", "text"),
            ("Content", text),
            ("MsgId", str(msg_id)),
        ):
            ET.SubElement(root, tag).text = value
        async with httpx.AsyncClient(base_url=self.running.web_url, timeout=WAIT_SECONDS) as client:
            answer = await client.post(
                "/wechat",
                params={"signature": signer.signature, "timestamp": timestamp, "nonce": nonce},
                content=ET.tostring(root, encoding="utf-8"),
            )
        answer.raise_for_status()
        if answer.text.strip().startswith("<xml>"):
            content = ET.fromstring(answer.text).findtext("Content")
            if content:
                self.screen.to_learner(who, "WeChat", content)

    def mail(self, who: str, address: str, subject: str, text: str) -> None:
        self.screen.learner(who, "e-mail", f"{subject}\n{text}")
        message = EmailMessage()
        message["From"] = f"{who} <{address}>"
        message["To"] = self.world.mailbox_address
        message["Subject"] = subject
        message["Message-ID"] = make_msgid(domain="example.org")
        message.set_content(text)
        mailbox.Maildir(self.world.maildir, create=True).add(message)  # as a delivery agent would

    def voicemail(self, caller: str, transcript: str, external_id: str) -> None:
        self.screen.learner(f"☎ {caller[:-4]}****", "voicemail", transcript)
        payload = {
            "schema_version": 1,
            "source": "demo-pbx",
            "external_id": external_id,
            "caller": caller,
            "received_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "transcript": transcript,
            "transcript_status": "completed",
            "duration_s": 41,
            "language": "zh",
        }
        for sub in ("tmp", "new"):
            (self.world.spool / sub).mkdir(parents=True, exist_ok=True)
        tmp = self.world.spool / "tmp" / f"{external_id}.json"
        tmp.write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, self.world.spool / "new" / tmp.name)  # the producer's rename: the file is whole
