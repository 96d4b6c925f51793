"""Outbox lanes: a lane that cannot deliver never holds up another, a recipient's messages leave in the
order written, unreachable destinations are parked (not retried in a loop), and a crash mid-batch loses
nothing and delivers nothing twice where the channel recognises its own messages."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from datetime import timedelta

from sqlalchemy import select

from channels.fake import FakeChannel
from core.context import CoreContext
from core.delivery.dispatch import Dispatcher
from core.delivery.outbox import (
    DEAD,
    PARKED,
    PENDING,
    SENDING,
    SENT,
    NotConfiguredError,
    PacedError,
    TemporarySendError,
    enqueue,
)
from core.delivery.queue import HELD
from core.delivery.record import RetryPolicy
from core.intake.intake import Intake
from core.messages import OutboundMessage, SendResult
from core.storage.delivery_models import OutboxRow
from core.tickets.queries import get_ticket
from core.tickets.views import ticket_view
from tests.conftest import at
from tests.core.test_outbox import Killed

NOW = at("2026-11-23 10:00")
TEACHING = "老师上课总是迟到，讲课照本宣科，教学质量很差"
REFUND = "我要退费，交了5000元，机构一直拖着不退"  # major: a card for finance and the managers' alert


async def _rows(core: CoreContext, channel: str | None = None) -> list[OutboxRow]:
    query = select(OutboxRow).order_by(OutboxRow.id)
    if channel is not None:
        query = query.where(OutboxRow.channel == channel)
    async with core.sessions() as session:
        return list(await session.scalars(query))


async def _complaints(intake: Intake, channel: FakeChannel, count: int, concurrency: int = 50) -> None:
    """`count` learners complain, `concurrency` of them at a time (intake commits them in groups)."""
    limit = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with limit:
            text = REFUND if i % 10 == 0 else TEACHING
            await intake.receive(channel.message(f"chat-{i}", f"{text} {i}", NOW), NOW)

    await asyncio.gather(*(one(i) for i in range(count)))


class Unreachable:
    """A staff sink with nowhere to send (no chat configured), counting what it was asked."""

    def __init__(self) -> None:
        self.asked: list[OutboundMessage] = []

    async def send(self, message: OutboundMessage) -> SendResult:
        self.asked.append(message)
        raise NotConfiguredError(f"no staff chat configured for {message.recipient!r}")


class Down:
    """A staff sink whose server is down."""

    def __init__(self) -> None:
        self.asked: list[OutboundMessage] = []

    async def send(self, message: OutboundMessage) -> SendResult:
        self.asked.append(message)
        raise TemporarySendError("connection refused")


async def test_a_thousand_complaints_with_a_broken_staff_sink_are_all_acknowledged(
    core: CoreContext, intake: Intake, learner_channel: FakeChannel
) -> None:
    await _complaints(intake, learner_channel, 1000)
    unreachable = Unreachable()
    dispatcher = Dispatcher(core.sessions, core.vault, {"telegram": learner_channel, "staff": unreachable})
    await dispatcher.drain(NOW)
    kinds = Counter(m.kind for m in learner_channel.sent)
    assert kinds["ack"] == 1000 and kinds["ask"] == 1000  # every learner: the number, then the question
    staff = await _rows(core, "staff")
    assert {row.status for row in staff} == {PARKED} and all(row.attempts == 0 for row in staff)
    # One try per unreachable recipient; the rest waited behind it without a try of their own.
    assert len(unreachable.asked) == len({row.recipient_key for row in staff})
    assert sorted(m.recipient for m in unreachable.asked) == ["finance", "managers", "teaching"]

    # Further passes leave them alone: parked rows are not retried every few seconds.
    await dispatcher.drain(NOW + timedelta(hours=1))
    assert len(unreachable.asked) == 3


async def test_a_staff_server_that_is_down_slows_only_its_own_lane(
    core: CoreContext, intake: Intake, learner_channel: FakeChannel
) -> None:
    await _complaints(intake, learner_channel, 60)
    down = Down()
    dispatcher = Dispatcher(core.sessions, core.vault, {"telegram": learner_channel, "staff": down})
    await dispatcher.drain(NOW)
    assert Counter(m.kind for m in learner_channel.sent) == {"ack": 60, "ask": 60}
    staff = await _rows(core, "staff")
    # Each department's first message was tried once and waits for its retry; the others wait behind it.
    tried = [row for row in staff if row.attempts == 1]
    assert len(tried) == len(down.asked) == len({row.recipient_key for row in staff})
    assert all(row.status == PENDING and row.next_attempt_at > NOW for row in tried)
    assert all(row.status == PENDING and row.attempts == 0 for row in staff if row not in tried)


class Recorder:
    """Delivers, remembering the order; the listed keys fail temporarily once."""

    def __init__(self, channel: FakeChannel, fail_once: set[str]) -> None:
        self.channel, self.fail_once = channel, set(fail_once)

    async def send(self, message: OutboundMessage) -> SendResult:
        if message.key in self.fail_once:
            self.fail_once.discard(message.key)
            raise TemporarySendError("timeout")
        return await self.channel.send(message)


async def test_a_recipients_messages_leave_in_the_order_written_and_a_failure_holds_back_only_theirs(
    core: CoreContext, intake: Intake, learner_channel: FakeChannel
) -> None:
    for i in range(2):
        await intake.receive(learner_channel.message(f"chat-{i}", TEACHING, NOW), NOW)
    async with core.sessions() as session, session.begin():
        for i in range(3):  # staff replies queued right behind the acknowledgement and the question
            enqueue(
                session,
                core.vault,
                key=f"reply-{i}",
                channel="telegram",
                recipient="chat-0",
                kind="reply",
                text=f"reply {i}",
                now=NOW,
            )
    rows = await _rows(core, "telegram")
    first_ack = next(r.key for r in rows if r.recipient_key == rows[0].recipient_key and r.kind == "ack")
    sender = Recorder(learner_channel, {first_ack})
    dispatcher = Dispatcher(
        core.sessions, core.vault, {"telegram": sender}, retry=RetryPolicy(base_delay=timedelta(seconds=10))
    )
    await dispatcher.drain(NOW)
    # chat-0's acknowledgement failed: nothing of chat-0's went; chat-1 got everything, in order.
    assert learner_channel.texts_to("chat-0") == []
    assert [m.kind for m in learner_channel.sent if m.recipient == "chat-1"] == ["ack", "ask"]
    held = {r.key: r for r in await _rows(core, "telegram") if r.recipient_key == rows[0].recipient_key}
    assert all(r.attempts == 0 for k, r in held.items() if k != first_ack)

    await dispatcher.drain(NOW + timedelta(minutes=1))
    assert [m.kind for m in learner_channel.sent if m.recipient == "chat-0"] == [
        "ack",
        "ask",
        "reply",
        "reply",
        "reply",
    ]
    assert learner_channel.texts_to("chat-0")[2:] == ["reply 0", "reply 1", "reply 2"]


async def test_a_dead_message_no_longer_holds_back_the_later_ones(
    core: CoreContext, intake: Intake, learner_channel: FakeChannel
) -> None:
    await intake.receive(learner_channel.message("chat-1", TEACHING, NOW), NOW)
    learner_channel.fail_next = [TemporarySendError("timeout")] * 2
    dispatcher = Dispatcher(
        core.sessions, core.vault, {"telegram": learner_channel}, retry=RetryPolicy(max_attempts=2)
    )
    await dispatcher.drain(NOW)
    await dispatcher.drain(NOW + timedelta(hours=1))
    rows = {r.kind: r for r in await _rows(core, "telegram")}
    assert (rows["ack"].status, rows["ask"].status) == (DEAD, SENT)
    assert [m.kind for m in learner_channel.sent] == ["ask"]


class Configurable:
    """A staff sink that reaches only the departments configured so far."""

    def __init__(self, channel: FakeChannel, reachable: set[str]) -> None:
        self.channel, self.reachable, self.asked = channel, set(reachable), 0

    async def send(self, message: OutboundMessage) -> SendResult:
        self.asked += 1
        if message.recipient not in self.reachable:
            raise NotConfiguredError(f"no Telegram chat configured for {message.recipient!r}")
        return await self.channel.send(message)


async def test_parked_messages_are_shown_and_leave_in_order_once_their_destination_is_configured(
    core: CoreContext, intake: Intake, learner_channel: FakeChannel, staff_channel: FakeChannel
) -> None:
    fees = "我要退费，交了500元，机构一直拖着不退。"  # finance; not major: no managers' alert
    first = await intake.receive(learner_channel.message("chat-1", fees, NOW), NOW)
    await intake.receive(learner_channel.message("chat-2", TEACHING, NOW), NOW)
    sink = Configurable(staff_channel, {"teaching"})
    senders = {"telegram": learner_channel, "staff": sink}
    await Dispatcher(core.sessions, core.vault, senders).drain(NOW)
    assert [m.recipient for m in staff_channel.sent] == ["teaching"]
    # A later notice to finance is parked behind the card without being tried.
    later = await intake.receive(learner_channel.message("chat-1", "课程是会计班", NOW), NOW)
    assert later.ticket_number == first.ticket_number
    asked = sink.asked
    await Dispatcher(core.sessions, core.vault, senders).drain(NOW + timedelta(minutes=1))
    assert sink.asked == asked
    finance = [r for r in await _rows(core, "staff") if r.status == PARKED]
    assert [r.kind for r in finance] == ["card", "notice-staff"] and {r.attempts for r in finance} == {0}
    async with core.sessions() as session:
        view = await ticket_view(core, session, await get_ticket(session, first.ticket_number), NOW)
    card = next(o for o in view["outbox"] if o["kind"] == "card")
    assert card["status"] == "parked" and "no Telegram chat configured for 'finance'" in card["last_error"]

    # Restarted with finance's chat configured: released, card first, then the notice.
    sink.reachable.add("finance")
    restarted = Dispatcher(core.sessions, core.vault, senders)
    await restarted.prepare(NOW + timedelta(minutes=2))
    await restarted.drain(NOW + timedelta(minutes=2))
    assert [(m.recipient, m.kind) for m in staff_channel.sent][1:] == [
        ("finance", "card"),
        ("finance", "notice-staff"),
    ]


async def test_a_channel_with_no_sender_waits_untouched_and_is_shown(
    core: CoreContext, intake: Intake, learner_channel: FakeChannel, staff_channel: FakeChannel
) -> None:
    await intake.receive(learner_channel.message("chat-1", TEACHING, NOW), NOW)
    dispatcher = Dispatcher(core.sessions, core.vault, {"telegram": learner_channel})
    await dispatcher.prepare(NOW)
    await dispatcher.drain(NOW + timedelta(hours=1))
    states = {s.lane: s for s in await dispatcher.states(NOW + timedelta(hours=1))}
    # Not tried, not parked (another instance may have a sender for it), and said why.
    assert states["staff"].counts == {PENDING: 1} and not states["staff"].configured
    assert states["staff"].reasons == ["no sender for channel 'staff' is configured"]
    assert states["staff"].oldest_due is None  # not late: nobody here can send it
    assert states["telegram"].counts == {} and states["telegram"].oldest_due is None
    # An instance with a staff sink sends it as it is.
    await Dispatcher(core.sessions, core.vault, {"staff": staff_channel}).drain(NOW + timedelta(hours=1))
    assert [m.kind for m in staff_channel.sent] == ["card"]


async def test_paced_messages_come_back_without_using_an_attempt(
    core: CoreContext, intake: Intake, learner_channel: FakeChannel
) -> None:
    await intake.receive(learner_channel.message("chat-1", TEACHING, NOW), NOW)
    learner_channel.fail_next = [PacedError("20 a minute", 3.0)]
    dispatcher = Dispatcher(core.sessions, core.vault, {"telegram": learner_channel})
    await dispatcher.drain(NOW)
    ack = next(r for r in await _rows(core, "telegram") if r.kind == "ack")
    assert (ack.status, ack.attempts, ack.last_error) == (PENDING, 0, None)
    assert ack.next_attempt_at == NOW + timedelta(seconds=3)
    await dispatcher.drain(NOW + timedelta(seconds=3))
    assert [m.kind for m in learner_channel.sent] == ["ack", "ask"]


class Platform:
    """A platform that recognises a message it already has by its key (an e-mail client and the
    Message-ID, an API with an idempotency key): what the learner sees is one message per key."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.shown: dict[str, OutboundMessage] = {}

    def take(self, message: OutboundMessage) -> None:
        self.calls.append(message.key)
        self.shown.setdefault(message.key, message)


class DiesMidBatch:
    """Delivers `survive` messages, then the process is killed in the middle of the batch."""

    def __init__(self, platform: Platform, survive: int) -> None:
        self.platform, self.survive = platform, survive

    async def send(self, message: OutboundMessage) -> SendResult:
        if len(self.platform.calls) >= self.survive:
            raise Killed  # nothing of this pass is recorded
        self.platform.take(message)
        return SendResult(external_ref=message.key)


class Delivers:
    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    async def send(self, message: OutboundMessage) -> SendResult:
        self.platform.take(message)
        return SendResult(external_ref=message.key)


async def test_a_crash_in_the_middle_of_a_batch_loses_nothing_and_shows_nothing_twice(
    core: CoreContext, intake: Intake, learner_channel: FakeChannel
) -> None:
    await _complaints(intake, learner_channel, 10)
    platform = Platform()
    retry = RetryPolicy(lease=timedelta(seconds=120))
    crashing = Dispatcher(
        core.sessions, core.vault, {"telegram": DiesMidBatch(platform, 5)}, retry=retry, concurrency=1
    )
    with contextlib.suppress(Killed):
        await crashing.run_lane("telegram", NOW)
    assert len(platform.calls) == 5
    restarted = Dispatcher(core.sessions, core.vault, {"telegram": Delivers(platform)}, retry=retry)
    await restarted.drain(NOW + timedelta(seconds=60))  # the dead process's lease still holds its rows
    assert len(platform.calls) == 5
    await restarted.drain(NOW + timedelta(seconds=121))
    rows = await _rows(core, "telegram")
    assert {r.status for r in rows} == {SENT} and len(rows) == 20
    assert set(platform.shown) == {r.key for r in rows}  # nothing lost
    # The five delivered before the crash went once more, under the same key: shown once.
    assert sorted(Counter(platform.calls).values()) == [1] * 15 + [2] * 5
    per_learner: dict[str, list[str]] = {}
    for key in platform.calls:
        per_learner.setdefault(platform.shown[key].recipient, []).append(platform.shown[key].kind)
    assert all(kinds[-1] == "ask" and "ask" not in kinds[:-1] for kinds in per_learner.values())


class Slow:
    """Each send takes a minute of the pass's time (a server that answers only at its timeout)."""

    def __init__(self, channel: FakeChannel, clock: list[float]) -> None:
        self.channel, self.clock = channel, clock

    async def send(self, message: OutboundMessage) -> SendResult:
        self.clock[0] += 60.0
        return await self.channel.send(message)


async def test_a_pass_ends_within_its_lease_and_leaves_the_rest_untried(
    core: CoreContext, intake: Intake, learner_channel: FakeChannel
) -> None:
    await _complaints(intake, learner_channel, 5)
    clock = [0.0]
    retry = RetryPolicy(lease=timedelta(seconds=120))
    dispatcher = Dispatcher(
        core.sessions,
        core.vault,
        {"telegram": Slow(learner_channel, clock)},
        retry=retry,
        concurrency=1,
        timer=lambda: clock[0],
    )
    await dispatcher.run_lane("telegram", NOW)
    # No send starts after half the lease (60 s): the first two started at 0 s and 60 s; the other three
    # were not started, nor counted.
    assert len(learner_channel.sent) == 2
    rows = [r for r in await _rows(core, "telegram") if r.kind == "ack"]
    assert sorted((r.status, r.attempts) for r in rows) == [(PENDING, 0)] * 3 + [(SENT, 1)] * 2
    await dispatcher.drain(NOW)
    assert Counter(m.kind for m in learner_channel.sent) == {"ack": 5, "ask": 5}


async def test_acknowledgements_go_first_and_each_learner_still_hears_in_order(
    core: CoreContext, intake: Intake, learner_channel: FakeChannel
) -> None:
    for i in range(10):
        await intake.receive(learner_channel.message(f"chat-{i}", TEACHING, NOW), NOW)
    dispatcher = Dispatcher(core.sessions, core.vault, {"telegram": learner_channel}, batch=4, concurrency=1)
    await dispatcher.drain(NOW)
    sent = [(m.recipient, m.kind) for m in learner_channel.sent]
    last_ack = max(i for i, (_, kind) in enumerate(sent) if kind == "ack")
    # Ten numbers out before most questions: only a quarter of each pass is kept for the rest.
    assert [kind for _, kind in sent[: last_ack + 1]].count("ask") <= 3
    for i in range(10):
        assert [kind for who, kind in sent if who == f"chat-{i}"] == ["ack", "ask"]


async def test_messages_held_behind_a_parked_one_follow_it_once_it_is_sent(
    core: CoreContext, intake: Intake, learner_channel: FakeChannel, staff_channel: FakeChannel
) -> None:
    """The parked card is given another chance on its own (released while the notice behind it was
    being claimed, say): once it is sent, the held notice goes after it without waiting to be released."""
    fees = "我要退费，交了500元，机构一直拖着不退。"
    await intake.receive(learner_channel.message("chat-1", fees, NOW), NOW)
    sink = Configurable(staff_channel, set())
    await Dispatcher(core.sessions, core.vault, {"staff": sink}).drain(NOW)
    await intake.receive(learner_channel.message("chat-1", "课程是会计班", NOW), NOW)
    await Dispatcher(core.sessions, core.vault, {"staff": sink}).drain(NOW)
    card, notice = await _rows(core, "staff")
    assert (card.status, notice.status, notice.last_error) == (PARKED, PARKED, HELD)
    async with core.sessions() as session, session.begin():
        (await session.get_one(OutboxRow, card.id)).status = PENDING
    sink.reachable.add("finance")
    await Dispatcher(core.sessions, core.vault, {"staff": sink}).drain(NOW)
    assert [m.kind for m in staff_channel.sent] == ["card", "notice-staff"]


class Hangs:
    """A platform that never answers (and a client without a timeout of its own)."""

    async def send(self, message: OutboundMessage) -> SendResult:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_a_send_still_running_near_the_end_of_its_lease_is_given_up(
    core: CoreContext, intake: Intake, learner_channel: FakeChannel
) -> None:
    await intake.receive(learner_channel.message("chat-1", TEACHING, NOW), NOW)
    retry = RetryPolicy(lease=timedelta(milliseconds=300))  # another instance may take it after that
    dispatcher = Dispatcher(core.sessions, core.vault, {"telegram": Hangs()}, retry=retry)
    async with asyncio.timeout(60):  # a guard: without the pass's own limit this would never return
        await dispatcher.run_lane("telegram", NOW)
    ack = next(r for r in await _rows(core, "telegram") if r.kind == "ack")
    assert (ack.status, ack.attempts) == (PENDING, 1)
    assert "no answer from the platform before the row's lease ran out" in (ack.last_error or "")


class Gated:
    """Sends that wait for the test's word, counting the ones under way."""

    def __init__(self, channel: FakeChannel) -> None:
        self.channel, self.started, self.release = channel, 0, asyncio.Event()
        self.all_started = asyncio.Event()

    async def send(self, message: OutboundMessage) -> SendResult:
        self.started += 1
        if self.started == 4:
            self.all_started.set()
        await self.release.wait()
        return await self.channel.send(message)


async def test_a_stop_in_the_middle_of_a_pass_starts_no_more_sends_and_records_the_ones_made(
    core: CoreContext, intake: Intake, learner_channel: FakeChannel
) -> None:
    await _complaints(intake, learner_channel, 20)
    gated = Gated(learner_channel)
    dispatcher = Dispatcher(core.sessions, core.vault, {"telegram": gated}, concurrency=4)
    stopping = asyncio.Event()
    running = asyncio.create_task(dispatcher.run_lane("telegram", NOW, stopping=stopping.is_set))
    async with asyncio.timeout(60):
        await gated.all_started.wait()  # four sends under way, sixteen waiting for a place
    stopping.set()
    gated.release.set()
    await running
    rows = [r for r in await _rows(core, "telegram") if r.kind == "ack"]
    sent = [r for r in rows if r.status == SENT]
    assert len(sent) == len(learner_channel.sent) == 4  # recorded: none goes again after its lease
    assert sorted((r.status, r.attempts) for r in rows if r.status != SENT) == [(PENDING, 0)] * 16


class TwoNeverAnswer:
    """Delivers to everyone but chat-0 and chat-1, whose sends never come back."""

    def __init__(self, channel: FakeChannel, expected: int) -> None:
        self.channel, self.expected, self.delivered = channel, expected, asyncio.Event()

    async def send(self, message: OutboundMessage) -> SendResult:
        if message.recipient in ("chat-0", "chat-1"):
            await asyncio.Event().wait()
        result = await self.channel.send(message)
        if len(self.channel.sent) == self.expected:
            self.delivered.set()
        return result


async def test_a_pass_cancelled_in_the_middle_records_the_sends_that_finished(
    core: CoreContext, intake: Intake, learner_channel: FakeChannel
) -> None:
    await _complaints(intake, learner_channel, 6)
    sender = TwoNeverAnswer(learner_channel, expected=4)
    dispatcher = Dispatcher(core.sessions, core.vault, {"telegram": sender}, concurrency=6)
    running = asyncio.create_task(dispatcher.run_lane("telegram", NOW))
    async with asyncio.timeout(60):
        await sender.delivered.wait()
    running.cancel()  # the service stops and its grace is over
    with contextlib.suppress(asyncio.CancelledError):
        await running
    statuses = sorted(r.status for r in await _rows(core, "telegram") if r.kind == "ack")
    # The four delivered are recorded as sent; the two cut short wait for their lease, to go again.
    assert statuses == [SENDING, SENDING, SENT, SENT, SENT, SENT]
