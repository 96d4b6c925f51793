"""The story `complaintbot demo` tells against the running service: four learners complain on four
channels, staff work the tickets from the staff chat, the clock is moved forward for the reminders,
the escalations and the month's report.

Every step acts as the outside world does (`bot.demo_stage`) and then waits for what the service must
do in return, read from the database, so a slow machine makes the story slower, never different. The
only sleeps are the reader's pauses (`Screen.beat`) and the short polls of `until`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import func, select

from bot.demo_stage import (
    ACCOUNTANT,
    ANNA,
    CALLER,
    DEPARTMENT_CHATS,
    FRONT_DESK,
    LI_MING,
    MANAGERS_CHAT,
    STAFF,
    STAFF_CHAT,
    TEACHER,
    ZHANG_WEI,
    Stage,
)
from core.storage.models import Clock, Ticket
from core.tickets.staff import add_staff
from core.tickets.views import ticket_view
from scheduler.monthly_report import nth_working_day
from scheduler.sweep import sweep

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


class Story(Stage):
    """The four scenes, told one after another on the stage."""

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
            CALLER, "你好，我打了三次前台电话都没人接，留言也没人回，请给我回个电话。", "vm-0001"
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
        await self.staff("孙老师", FRONT_DESK, f"/called {caller} 已回电家长，为前台漏接电话道歉。")

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
