"""The story `complaintbot demo` tells against the running service: four learners complain on four
channels, staff work the tickets from the staff chat, the clock is moved forward for the reminders,
the escalations and the month's report.

Every step acts as the outside world does (a Telegram update, a signed WeChat push, a mail in the
mailbox, a transcript in the voicemail spool) and then waits for what the service must do in return,
read from the database, so a slow machine makes the story slower, never different. The only sleeps
are the reader's pauses (`Screen.beat`) and the short polls of `until`.
"""

from __future__ import annotations

import asyncio
import json
import mailbox
import os
import time
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import httpx
from sqlalchemy import and_, func, or_, select
from wechatpy.utils import WeChatSigner

from bot.demo_screen import Screen, Watcher
from bot.service import Running
from core.context import CoreContext
from core.models import Clock, Ticket
from core.models_delivery import OutboxRow
from core.outbox import PENDING, SENDING
from core.staff import add_staff
from core.ticket_views import ticket_view
from scheduler.monthly_report import nth_working_day
from scheduler.sweep import sweep
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

SCENES = {
    "zh": (
        "一、学员从四个渠道投诉",
        "二、工作人员在群里认领、回复、给方案、办结",
        "三、时间快进：提醒、一级和二级督办",
        "四、月报",
    ),
    "en": (
        "1. Learners complain on four channels",
        "2. Staff claim, reply, plan and resolve in the staff chat",
        "3. Time moves forward: a reminder, level 1 and level 2",
        "4. The month's report",
    ),
}


@dataclass
class World:
    """The stand-ins the service talks to, and the places the demo writes into as the outside world."""

    botapi: BotApiServer
    wechat: WechatApiServer
    maildir: Path
    spool: Path
    mailbox_address: str


@dataclass
class Story:
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

    # -- the story --------------------------------------------------------------------------------

    async def tell(self) -> None:
        titles = SCENES[self.lang]
        async with self.core.sessions() as session, session.begin():
            for name, department, role, telegram_id in STAFF:
                await add_staff(
                    session,
                    name=name,
                    department=department,
                    role=role,
                    now=datetime.now(UTC),
                    telegram_id=str(telegram_id),
                )
        self.screen.names |= {str(LI_MING): "李明", ZHANG_WEI: "张伟", ANNA: "Anna Smith"}
        self.screen.names |= {str(telegram_id): name for name, _, _, telegram_id in STAFF}
        self.screen.staff_names |= {name for name, _, _, _ in STAFF}
        self.screen.staff_chats |= {STAFF_CHAT: "staff chat", MANAGERS_CHAT: "managers' chat"}
        self.screen.staff_chats |= {chat: f"{key} chat" for key, chat in DEPARTMENT_CHATS.items()}
        self.screen.header("learners", "staff")
        await self.complaints(titles[0])
        await self.staff_work(titles[1])
        await self.time_moves(titles[2])
        await self.month_report(titles[3])

    async def complaints(self, title: str) -> None:
        self.screen.scene(title)
        await self.telegram("李明", LI_MING, "老师上课总是迟到，讲课照本宣科，教学质量很差，要求更换老师。")
        await self.opened("li", "telegram")
        await self.screen.beat()
        await self.wechat("张伟", "退费申请提交三个月了还没到账，客服一直推脱，请尽快退款。", 7000000001)
        await self.opened("zhang", "wechat")
        await self.screen.beat()
        self.mail(
            "Anna Smith",
            ANNA,
            "Complaint about the front desk",
            "The receptionist was rude when I asked to change my class time, and nobody called me back.",
        )
        await self.opened("anna", "email")
        await self.screen.beat()
        self.voicemail(
            CALLER, "你好，我孩子的课表两周里改了三次，都没人提前通知，请给我回个电话。", "vm-0001"
        )
        await self.opened("caller", "voicemail")
        await self.screen.beat()
        await self.show_clocks()

    async def show_clocks(self) -> None:
        """The open SLA clocks of every ticket, as `tickets show` has them."""
        lines = []
        async with self.core.sessions() as session:
            for number in self.numbers.values():
                ticket = await session.scalar(select(Ticket).where(Ticket.number == number))
                assert ticket is not None
                view = await ticket_view(self.core, session, ticket, self.screen_now())
                due = [c for c in view["clocks"] if not c["met_at"]]
                shown = ", ".join(f"{c['stage']} {c['due_at'][5:16].replace('T', ' ')}" for c in due[:2])
                lines.append(f"⏱ {number} {view['department']}: {shown or '—'}")
        self.screen.note("\n".join(lines))

    async def staff_work(self, title: str) -> None:
        self.screen.scene(title)
        li, zhang, caller = self.numbers["li"], self.numbers["zhang"], self.numbers["caller"]
        await self.staff("王老师", TEACHER, f"/claim {li}")
        await self.status_is(li, "investigating")
        await self.staff("王老师", TEACHER, f"/reply {li} 李同学您好，我们正在核实上课情况，今天内答复您。")
        await self.settled()
        await self.screen.beat()
        await self.staff("王老师", TEACHER, f"/plan {li} 下周起更换任课老师，并免费补课两次。")
        await self.status_is(li, "awaiting_agreement")
        await self.screen.beat()
        await self.telegram("李明", LI_MING, "同意")
        await self.status_is(li, "executing")
        await self.staff("王老师", TEACHER, f"/resolve {li} 已更换任课老师，补课安排在本周六上午。")
        await self.status_is(li, "awaiting_confirmation")
        await self.screen.beat()
        await self.telegram("李明", LI_MING, "/confirm")
        await self.status_is(li, "follow_up")
        await self.press("李明", LI_MING, LI_MING, "⭐", f"rate:{li}:5")
        await self.status_is(li, "closed")
        await self.screen.beat()

        await self.staff("陈会计", ACCOUNTANT, f"/claim {zhang}")
        await self.status_is(zhang, "investigating")
        await self.staff("陈会计", ACCOUNTANT, f"/resolve {zhang} 退款已提交银行，三个工作日内到账。")
        await self.status_is(zhang, "awaiting_confirmation")
        await self.screen.beat()
        await self.wechat("张伟", "确认", 7000000002)
        await self.status_is(zhang, "follow_up")
        await self.wechat("张伟", "1 说了三天，钱还是没到", 7000000003)
        await self.status_is(zhang, "investigating")
        await self.screen.beat()
        await self.wechat("张伟", "申请上级复核", 7000000004)

        async def appealed() -> bool:
            async with self.core.sessions() as session:
                parent = await self.ticket(zhang)
                return bool(await session.scalar(select(Ticket.id).where(Ticket.parent_id == parent.id)))

        await self.until(appealed, f"the second instance of {zhang}")
        await self.screen.beat()

        await self.staff("孙老师", FRONT_DESK, f"/claim {caller}")
        await self.status_is(caller, "investigating")
        await self.staff("孙老师", FRONT_DESK, f"/called {caller} 已回电家长，说明了排课变更原因并道歉。")

        async def called_back() -> bool:
            async with self.core.sessions() as session:
                ticket = await self.ticket(caller)
                open_callback = await session.scalar(
                    select(Clock.id).where(
                        Clock.ticket_id == ticket.id, Clock.stage == "callback", Clock.met_at.is_(None)
                    )
                )
            return open_callback is None

        await self.until(called_back, f"the call-back of {caller} to be recorded")
        await self.screen.beat()

    async def time_moves(self, title: str) -> None:
        """Nobody took Anna's complaint: each sweep runs at the moment its clock next needs one."""
        self.screen.scene(title)
        anna = await self.ticket(self.numbers["anna"])
        for _ in range(8):
            async with self.core.sessions() as session:
                clock = (
                    await session.scalars(
                        select(Clock)
                        .where(Clock.ticket_id == anna.id, Clock.next_check_at.is_not(None))
                        .order_by(Clock.next_check_at)
                        .limit(1)
                    )
                ).first()
                level = await session.scalar(
                    select(func.max(Clock.escalation_level)).where(Clock.ticket_id == anna.id)
                )
            if clock is None or clock.next_check_at is None or (level or 0) >= 2:
                break
            await self.sweep(clock.next_check_at, f"{anna.number} {clock.stage}")
        await self.show_clocks()

    async def sweep(self, when: datetime, why: str) -> None:
        self.screen.time_jump(why, when)
        await sweep(self.core, when)
        await self.running.application.dispatcher.drain(when)
        await self.settled()
        await self.screen.beat(1.5)

    async def month_report(self, title: str) -> None:
        """The month's report goes to the managers on the policy's working day of the next month."""
        self.screen.scene(title)
        self.watcher.documents = True
        calendar, policy = self.core.calendar, self.core.policy.report
        local = self.screen_now().astimezone(calendar.tz)
        year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
        day: date = nth_working_day(calendar, year, month, policy.working_day)
        when = datetime.combine(day, policy.at, tzinfo=calendar.tz) + timedelta(minutes=1)
        await self.sweep(when, f"{year}-{month:02d}")
