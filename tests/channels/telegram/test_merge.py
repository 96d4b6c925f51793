"""Merging tickets from the staff chat, through the real client and the Bot API stand-in: a learner who
complained on WeChat and then by e-mail (the WeChat API stand-in, a real SMTP server) ends with one
ticket, told once per channel which number to keep; `/unmerge` while nothing new has happened; who
may merge; the merged number keeps working.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from channels.fake import FakeChannel
from channels.mail.sender import MailSender, SmtpServer
from channels.wechat.api import SharedAccessToken, WechatClient, token_fetcher
from channels.wechat.sender import WechatSender
from core.delivery.dispatch import Dispatcher
from core.delivery.outbox import Sender
from core.intake.intake import Intake
from core.storage.models import Clock, Event, Message, Ticket
from core.storage.numbers import find_ticket_numbers
from core.tickets.queries import get_ticket
from core.tickets.views import ticket_view
from standins.smtp import SmtpStandIn, run_smtp
from standins.wechatapi import WechatApiServer
from tests.channels.telegram.test_staff_commands import (
    CASHIER,
    HEAD,
    LEARNER,
    MANAGER,
    MANAGERS_CHAT,
    STAFF_CHAT,
    TEACHER,
    TEACHING,
    TEACHING_CHAT,
    Rig,
)

APP_ID, SECRET = "wx-test-app", "test-secret"
OPENID, ADDRESS, PHONE = "oLearner-0001", "li.ming@example.com", "13812348000"
OTHER_OPENID = "oLearner-0002"
WECHAT_TEXT = "王老师上课总是迟到，讲课照本宣科，教学质量很差"
MAIL_TEXT = "老师上课迟到的问题还没解决，教学质量太差了。电话 13812348000"


@dataclasses.dataclass
class Desk:
    rig: Rig
    wechat: WechatApiServer
    smtp: SmtpStandIn
    intake: Intake
    ids: Iterator[int] = dataclasses.field(default_factory=itertools.count)

    async def wechat_complaint(
        self, text: str = WECHAT_TEXT, openid: str = OPENID, phone: str | None = PHONE
    ) -> str:
        message = FakeChannel("wechat").message(
            openid, text, self.rig.now, external_id=f"wx-{next(self.ids)}", phone=phone
        )
        result = await self.intake.receive(message, self.rig.now)
        await self.rig.round()
        return result.ticket_number

    async def mail(self, text: str = MAIL_TEXT, subject: str = "投诉", **fields: object) -> str:
        message = FakeChannel("email").message(
            ADDRESS,
            text,
            self.rig.now,
            external_id=f"<mail-{next(self.ids)}@example.com>",
            email=ADDRESS,
            phone=PHONE,
            subject=subject,
            **fields,
        )
        result = await self.intake.receive(message, self.rig.now)
        await self.rig.round()
        return result.ticket_number

    def wechat_texts(self) -> list[str]:
        return [m["text"]["content"] for m in self.wechat.custom_messages if m["touser"] == OPENID]

    def mails(self) -> list[str]:
        return [str(r.message().get_body(("plain",)).get_content()) for r in self.smtp.recorder.received]

    async def press(self, chat_id: int, user_id: int, data: str, number: str) -> str:
        """Press the button `data` on the card of `number`; what the bot says in the chat."""
        card = next(
            m
            for m in self.rig.botapi.messages_to(chat_id)
            if number in m.get("text", "") and "reply_markup" in m
        )
        buttons = [b["callback_data"] for row in card["reply_markup"]["inline_keyboard"] for b in row]
        assert data in buttons, buttons
        before = len(self.rig.botapi.texts_to(chat_id))
        self.rig.botapi.callback(chat_id, user_id, card["message_id"], data)
        await self.rig.round()
        return "\n".join(self.rig.botapi.texts_to(chat_id)[before:])


@pytest.fixture
def smtp() -> Iterator[SmtpStandIn]:
    with run_smtp() as server:
        yield server


@pytest.fixture
async def desk(rig: Rig, smtp: SmtpStandIn) -> AsyncIterator[Desk]:
    async with WechatApiServer(APP_ID, SECRET, template_ids=()) as wechat:
        fetch = token_fetcher(APP_ID, SECRET, wechat.url)
        token = SharedAccessToken(rig.core.sessions, APP_ID, fetch, clock=lambda: rig.now, wait=0.01)
        mail = MailSender(
            SmtpServer(smtp.host, smtp.port, security="none", timeout=5),
            "complaints@school.example.cn",
            clock=lambda: rig.now,
        )
        senders: dict[str, Sender] = {
            **rig.dispatcher.senders,
            "wechat": WechatSender(WechatClient(APP_ID, SECRET, wechat.url), token),
            "email": mail,
        }
        rig.dispatcher = Dispatcher(rig.core.sessions, rig.core.vault, senders)
        yield Desk(rig, wechat, smtp, Intake(rig.core))
        await mail.close()


async def _ticket(desk: Desk, number: str) -> Ticket:
    return await desk.rig.ticket(number)


async def _clocks(desk: Desk, number: str) -> dict[str, Clock]:
    async with desk.rig.core.sessions() as session:
        ticket = await get_ticket(session, number)
        rows = await session.scalars(select(Clock).where(Clock.ticket_id == ticket.id).order_by(Clock.id))
        return {c.stage: c for c in rows}


async def test_a_learner_on_wechat_and_by_email_ends_with_one_ticket(desk: Desk) -> None:
    kept = await desk.wechat_complaint()
    assert any(kept in t for t in desk.wechat_texts())  # the WeChat acknowledgement
    desk.rig.clock[0] += timedelta(hours=1)
    merged = await desk.mail()
    assert merged != kept and any(merged in m for m in desk.mails())  # the e-mail acknowledgement
    kept_clocks = {s: (c.started_at, c.due_at, c.met_at) for s, c in (await _clocks(desk, kept)).items()}

    # The second complaint's card points the first out, with a button that merges it there.
    card = next(t for t in desk.rig.botapi.texts_to(TEACHING_CHAT) if merged in t and "🆕" in t)
    assert f"可能与 {kept} 是同一件事" in card
    said = await desk.press(TEACHING_CHAT, TEACHER, f"merge:{kept} {merged}", merged)
    assert f"{merged} merged into {kept} by 王老师" in said

    gone, carried = await _ticket(desk, merged), await _ticket(desk, kept)
    assert gone.status == "closed" and gone.merged_into_id == carried.id
    # Both clocks of the merged ticket stopped; the kept ticket's are as they were (it is the older).
    assert all(c.met_at is not None for c in (await _clocks(desk, merged)).values())
    after = {s: (c.started_at, c.due_at, c.met_at) for s, c in (await _clocks(desk, kept)).items()}
    assert after == kept_clocks
    async with desk.rig.core.sessions() as session:
        view = await ticket_view(desk.rig.core, session, carried, desk.rig.now)
        old_view = await ticket_view(desk.rig.core, session, gone, desk.rig.now)
    learner_said = [m["text"] for m in view["messages"] if m["direction"] == "in"]
    assert learner_said[0].startswith("王老师上课总是迟到") and learner_said[1].startswith("老师上课迟到")
    assert {m["channel"] for m in view["messages"] if m["direction"] == "in"} == {"wechat", "email"}
    assert view["merged"] == [merged] and old_view["merged_into"] == kept
    # The audit trail keeps both first contacts: both "received" events, and the merge says whose.
    actions = [e["action"] for e in view["events"]]
    assert actions.count("received") == 2 and "merged" in actions
    merge_event = next(e for e in view["events"] if e["action"] == "merged")
    assert merged in merge_event["detail"] and "first contact service" in merge_event["detail"]
    assert "王老师" in merge_event["actor"]

    # Told once on each channel, which number to keep.
    keep = f"请保留编号 {kept}"
    assert sum(keep in t for t in desk.wechat_texts()) == 1
    assert sum(keep in m for m in desk.mails()) == 1

    # Pressed again on an old screen: refused, nothing sent twice.
    card_id = next(m["message_id"] for m in desk.rig.botapi.messages_to(TEACHING_CHAT) if merged in m["text"])
    desk.rig.botapi.callback(TEACHING_CHAT, TEACHER, card_id, f"merge:{kept} {merged}")
    await desk.rig.round()
    assert f"{merged} was merged into {kept} already" in desk.rig.botapi.texts_to(TEACHING_CHAT)[-1]
    assert sum(keep in t for t in desk.wechat_texts()) == 1 and sum(keep in m for m in desk.mails()) == 1

    # The merged number keeps working: the learner's mail that names it joins the kept ticket.
    desk.rig.clock[0] += timedelta(minutes=10)
    assert await desk.mail(f"关于 {merged}，请尽快处理", subject=f"Re: [{merged}]") == kept
    assert await desk.rig.tickets() == 2  # and no third ticket
    show = await desk.rig.say(TEACHING_CHAT, TEACHER, f"/show {merged}")
    assert f"merged into {kept}" in show
    # A move on the merged number acts on the kept ticket.
    assert f"✅ {kept}: claim by 王老师" in await desk.rig.say(TEACHING_CHAT, TEACHER, f"/claim {merged}")


async def test_unmerge_puts_everything_back_while_nothing_new_happened(desk: Desk) -> None:
    kept = await desk.wechat_complaint()
    desk.rig.clock[0] += timedelta(minutes=30)
    merged = await desk.mail()
    before = await _clocks(desk, merged)
    said = await desk.rig.say(TEACHING_CHAT, TEACHER, f"/merge {kept} {merged}")
    assert said.startswith("✅")

    said = await desk.rig.say(TEACHING_CHAT, TEACHER, f"/unmerge {merged}")
    assert said.startswith("✅") and f"{merged} is separate from {kept}" in said
    gone = await _ticket(desk, merged)
    assert gone.status == "routed" and gone.merged_into_id is None and gone.closed_at is None
    after = await _clocks(desk, merged)
    assert {s: (c.due_at, c.met_at) for s, c in after.items()} == {
        s: (c.due_at, c.met_at) for s, c in before.items()
    }
    async with desk.rig.core.sessions() as session:
        inbound = await session.scalars(
            select(Message.channel).where(Message.ticket_id == gone.id, Message.direction == "in")
        )
        assert list(inbound) == ["email"]
    # The learner hears of the correction once per channel, too.
    assert sum("分别处理" in t for t in desk.wechat_texts()) == 1
    assert sum("分别处理" in m for m in desk.mails()) == 1

    # Merged again, then the learner writes: the merge can no longer be undone.
    assert (await desk.rig.say(TEACHING_CHAT, TEACHER, f"/merge {kept} {merged}")).startswith("✅")
    await desk.wechat_complaint(f"{kept} 还有补充：希望换老师")
    refused = await desk.rig.say(TEACHING_CHAT, TEACHER, f"/unmerge {merged}")
    assert refused.startswith("⚠️") and "can no longer be undone" in refused
    assert (await _ticket(desk, merged)).status == "closed"


async def test_the_earliest_entry_and_the_tighter_deadline_win(desk: Desk) -> None:
    older = await desk.wechat_complaint()
    desk.rig.clock[0] += timedelta(hours=2)
    newer = await desk.mail()
    old_clocks, new_clocks = await _clocks(desk, older), await _clocks(desk, newer)
    # Kept: the newer one. It takes the older one's entry time and its earlier claim deadline.
    assert (await desk.rig.say(TEACHING_CHAT, HEAD, f"/merge {newer} {older}")).startswith("✅")
    merged_clocks = await _clocks(desk, newer)
    assert merged_clocks["entry"].started_at == old_clocks["entry"].started_at
    assert merged_clocks["claim"].due_at == old_clocks["claim"].due_at < new_clocks["claim"].due_at
    assert (await _ticket(desk, newer)).created_at == (await _ticket(desk, older)).created_at


async def test_who_may_merge(desk: Desk) -> None:
    first = await desk.wechat_complaint()
    other = await desk.wechat_complaint("老师讲课太快，根本听不懂，教学质量差", OTHER_OPENID, phone=None)
    mine = await desk.mail()

    refused = await desk.rig.say(STAFF_CHAT, CASHIER, f"/merge {first} {mine}")
    assert refused.startswith("⛔") and "belongs to the teaching department" in refused
    # Two learners' complaints: a manager's decision, and audited as such.
    refused = await desk.rig.say(TEACHING_CHAT, TEACHER, f"/merge {first} {other}")
    assert refused.startswith("⛔") and "only a manager" in refused
    assert (await _ticket(desk, other)).merged_into_id is None
    said = await desk.rig.say(MANAGERS_CHAT, MANAGER, f"/merge {first} {other}")
    assert said.startswith("✅")
    # Only the learner whose number changes is told (once), not the other learner.
    other_told = [t for t in desk.wechat.custom_messages if "请保留编号" in t["text"]["content"]]
    assert [m["touser"] for m in other_told] == [OTHER_OPENID]
    events = await desk.rig.events(first, "merged")
    assert len(events) == 1 and "two different learners, merged by a manager" in (events[0].detail or "")
    assert "陈经理" in events[0].actor

    bad = await desk.rig.say(TEACHING_CHAT, TEACHER, f"/merge {first} {first}")
    assert bad.startswith("⚠️") and "cannot be merged into itself" in bad
    bad = await desk.rig.say(TEACHING_CHAT, TEACHER, f"/merge {first} {other}")
    assert bad.startswith("⚠️") and "already" in bad
    assert (await desk.rig.say(TEACHING_CHAT, TEACHER, f"/merge {first}")).startswith("⚠️ type /merge")
    async with desk.rig.core.sessions() as session:
        merges = await session.scalars(select(Event).where(Event.action == "merged_into"))
        assert len(list(merges)) == 1


async def _merged_on_telegram(rig: Rig) -> tuple[str, str]:
    """A Telegram learner's complaint and, after `/new`, a second one, merged into the first by the
    teacher: (the kept number, the merged number)."""
    first = await rig.complain(LEARNER, TEACHING)
    rig.botapi.learner_message(LEARNER, "/new")
    await rig.round()
    said_before = len(rig.botapi.texts_to(LEARNER))
    rig.botapi.learner_message(LEARNER, "老师讲课太快，根本听不懂，教学质量差")
    await rig.round()
    second = next(str(n) for t in rig.botapi.texts_to(LEARNER)[said_before:] for n in find_ticket_numbers(t))
    assert second != first
    assert (await rig.say(TEACHING_CHAT, TEACHER, f"/merge {first} {second}")).startswith("✅")
    return first, second


async def test_status_tells_the_learner_which_number_to_use(desk: Desk) -> None:
    rig = desk.rig
    first, second = await _merged_on_telegram(rig)
    assert sum(f"请保留编号 {first}" in t for t in rig.botapi.texts_to(LEARNER)) == 1
    rig.botapi.learner_message(LEARNER, "/status")
    await rig.round()
    assert (
        f"{second}" in rig.botapi.texts_to(LEARNER)[-1]
        and f"已合并到 {first}" in rig.botapi.texts_to(LEARNER)[-1]
    )


async def test_an_act_on_the_merged_number_is_about_the_kept_ticket(desk: Desk) -> None:
    rig = desk.rig
    first, second = await _merged_on_telegram(rig)

    # Naming the merged number, the learner objects: the merged ticket stays closed (no staff command
    # reaches it any more), and the objection is on the complaint's own ticket.
    rig.botapi.learner_message(LEARNER, f"{second} 不接受")
    await rig.round()
    merged = await _ticket(desk, second)
    assert merged.status == "closed" and merged.merged_into_id is not None
    assert {c.stage for c in (await _clocks(desk, second)).values() if c.met_at is None} == set()
    async with rig.core.sessions() as session:
        kept = await get_ticket(session, first)
        texts = await session.scalars(select(Message.id).where(Message.ticket_id == kept.id))
        assert len(list(texts)) >= 3  # both complaints and the objection's message
