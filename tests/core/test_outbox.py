"""The outbox: sent once committed, retried with backoff, dead after N tries, never lost in a crash."""

from __future__ import annotations

import asyncio
import contextlib
import random
from datetime import timedelta

import pytest
from sqlalchemy import select

from channels.fake import FakeChannel
from core.context import CoreContext
from core.delivery.dispatch import Dispatcher
from core.delivery.outbox import DEAD, PENDING, SENT, PermanentSendError, TemporarySendError
from core.delivery.record import RetryPolicy
from core.intake.intake import Intake
from core.messages import OutboundMessage, SendResult
from core.storage.delivery_models import OutboxRow
from core.tickets.queries import get_ticket
from core.tickets.views import ticket_view
from tests.conftest import at

NOW = at("2026-11-23 10:00")


async def _rows(core: CoreContext) -> list[OutboxRow]:
    async with core.sessions() as session:
        return list(await session.scalars(select(OutboxRow).order_by(OutboxRow.id)))


async def test_nothing_is_sent_unless_the_intake_commits(
    core: CoreContext,
    intake: Intake,
    dispatcher: Dispatcher,
    learner_channel: FakeChannel,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(core.templates, "render", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(RuntimeError):
        await intake.receive(learner_channel.message("chat-1", "老师迟到", NOW), NOW)
    assert await _rows(core) == []
    assert (await dispatcher.drain(NOW)).handled == 0 and learner_channel.sent == []


class FlakySender:
    """Fails the first `failures` attempts of every message, as a platform with an outage would."""

    def __init__(self, channel: FakeChannel, failures: int) -> None:
        self.channel, self.failures, self.tries = channel, failures, dict[str, int]()

    async def send(self, message: OutboundMessage) -> SendResult:
        self.tries[message.key] = self.tries.get(message.key, 0) + 1
        if self.tries[message.key] <= self.failures:
            raise TemporarySendError("502 Bad Gateway")
        return await self.channel.send(message)


async def test_temporary_failures_retry_with_growing_backoff_then_succeed(
    core: CoreContext, intake: Intake, learner_channel: FakeChannel
) -> None:
    flaky = FlakySender(learner_channel, failures=3)
    dispatcher = Dispatcher(
        core.sessions,
        core.vault,
        {"telegram": flaky},
        retry=RetryPolicy(max_attempts=5),
        rng=random.Random(7),
    )
    await intake.receive(learner_channel.message("chat-1", "老师迟到", NOW), NOW)
    when, delays = NOW, []
    for _ in range(3):
        await dispatcher.run_once(when)
        ack = next(r for r in await _rows(core) if r.kind == "ack")
        assert (ack.status, ack.last_error) == (PENDING, "502 Bad Gateway")
        delays.append(ack.next_attempt_at - when)
        # Not due before its time: a pass just before it sends nothing.
        await dispatcher.run_once(ack.next_attempt_at - timedelta(milliseconds=1))
        assert flaky.tries[ack.key] == len(delays)
        when = ack.next_attempt_at
    await dispatcher.drain(when + timedelta(hours=1))
    ack = next(r for r in await _rows(core) if r.kind == "ack")
    assert (ack.status, ack.attempts, ack.last_error) == (SENT, 4, None)
    assert delays == sorted(delays) and delays[0] >= timedelta(seconds=2.5) and delays[2] >= 2 * delays[0]
    assert learner_channel.texts_to("chat-1")[0].startswith("【投诉接收确认】")
    # The staff channel has no sender in this dispatcher: its rows wait untouched, not dead.
    card = next(r for r in await _rows(core) if r.kind == "card")
    assert (card.status, card.attempts) == (PENDING, 0)


async def test_retry_after_from_the_platform_is_honoured(
    core: CoreContext, intake: Intake, learner_channel: FakeChannel
) -> None:
    dispatcher = Dispatcher(core.sessions, core.vault, {"telegram": learner_channel}, rng=random.Random(1))
    await intake.receive(learner_channel.message("chat-1", "老师迟到", NOW), NOW)
    learner_channel.fail_next = [TemporarySendError("429 Too Many Requests", retry_after=600)]
    await dispatcher.run_once(NOW)
    ack = next(r for r in await _rows(core) if r.kind == "ack")
    assert ack.next_attempt_at >= NOW + timedelta(seconds=600)


class ScriptedSender:
    """Raises the scripted errors for each kind of message in turn, then delivers."""

    def __init__(self, channel: FakeChannel, script: dict[str, list[Exception]]) -> None:
        self.channel, self.script = channel, script

    async def send(self, message: OutboundMessage) -> SendResult:
        errors = self.script.get(message.kind, [])
        if errors:
            raise errors.pop(0)
        return await self.channel.send(message)


async def test_dead_after_max_attempts_and_permanent_errors_are_shown_on_the_ticket(
    core: CoreContext, intake: Intake, learner_channel: FakeChannel
) -> None:
    sender = ScriptedSender(
        learner_channel,
        {
            "ack": [TemporarySendError("timeout")] * 5,
            "ask": [PermanentSendError("bot was blocked by the user")],
        },
    )
    dispatcher = Dispatcher(
        core.sessions,
        core.vault,
        {"telegram": sender},
        retry=RetryPolicy(max_attempts=3, base_delay=timedelta(seconds=1)),
    )
    result = await intake.receive(learner_channel.message("chat-1", "老师迟到", NOW), NOW)
    when = NOW
    for _ in range(6):
        await dispatcher.run_once(when)
        when += timedelta(minutes=10)
    rows = {r.kind: r for r in await _rows(core)}
    assert (rows["ack"].status, rows["ack"].attempts, rows["ack"].last_error) == (DEAD, 3, "timeout")
    assert (rows["ask"].status, rows["ask"].attempts) == (DEAD, 1)
    assert rows["ask"].last_error == "bot was blocked by the user"
    assert learner_channel.sent == []
    async with core.sessions() as session:
        view = await ticket_view(core, session, await get_ticket(session, result.ticket_number), when)
    shown = {(o["kind"], o["status"], o["last_error"]) for o in view["outbox"]}
    assert ("ack", "dead", "timeout") in shown
    # The acknowledgement was never delivered, so its clock stays open (the sweep will flag it).
    assert next(c for c in view["clocks"] if c["stage"] == "acknowledge")["met_at"] is None


class Killed(BaseException):
    """The process is killed (SIGKILL, power cut): nothing after this point runs, nothing is recorded."""


class CrashAfterSend:
    """Delivers the message, then dies before the dispatcher can record it (a killed process)."""

    def __init__(self, channel: FakeChannel) -> None:
        self.channel = channel

    async def send(self, message: OutboundMessage) -> SendResult:
        await self.channel.send(message)
        raise Killed


async def test_killed_between_send_and_mark_the_message_is_not_lost(
    core: CoreContext, intake: Intake, learner_channel: FakeChannel
) -> None:
    retry = RetryPolicy(lease=timedelta(seconds=120))
    await intake.receive(learner_channel.message("chat-1", "老师迟到", NOW), NOW)
    crashing = Dispatcher(
        core.sessions, core.vault, {"telegram": CrashAfterSend(learner_channel)}, retry=retry, concurrency=1
    )
    with pytest.raises(Killed):
        await crashing.run_once(NOW)
    rows = [r for r in await _rows(core) if r.channel == "telegram"]
    assert all(r.status in ("sending", PENDING) for r in rows)  # nothing recorded as sent

    restarted = Dispatcher(core.sessions, core.vault, {"telegram": learner_channel}, retry=retry)
    # While the dead process's lease runs, nobody else takes its rows (no double send in normal operation).
    await restarted.drain(NOW + timedelta(seconds=60))
    claimed_by_dead = [r for r in await _rows(core) if r.status == "sending"]
    assert claimed_by_dead, "the crashed row should still be leased"
    await restarted.drain(NOW + timedelta(seconds=121))
    rows = [r for r in await _rows(core) if r.channel == "telegram"]
    assert all(r.status == SENT for r in rows)
    keys = [m.key for m in learner_channel.sent]
    ack_key = next(r.key for r in rows if r.kind == "ack")
    # Delivered, at most once more than needed, and always under the same idempotency key.
    assert 1 <= keys.count(ack_key) <= 2
    assert set(keys) == {r.key for r in rows}


async def test_two_dispatchers_never_send_one_row_twice(
    core: CoreContext, intake: Intake, learner_channel: FakeChannel, staff_channel: FakeChannel
) -> None:
    for i in range(30):
        await intake.receive(learner_channel.message(f"chat-{i}", f"老师迟到 {i}", NOW), NOW)
    senders = {"telegram": learner_channel, "staff": staff_channel}
    one = Dispatcher(core.sessions, core.vault, senders, batch=7)
    two = Dispatcher(core.sessions, core.vault, senders, batch=7)
    await asyncio.gather(one.drain(NOW), two.drain(NOW))
    sent_keys = [m.key for m in learner_channel.sent + staff_channel.sent]
    assert len(sent_keys) == len(set(sent_keys)) == len(await _rows(core))


class SlowThenFail:
    """Delivers, but so slowly that the lease runs out first, and then reports a failure."""

    def __init__(self, channel: FakeChannel) -> None:
        self.channel = channel
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def send(self, message: OutboundMessage) -> SendResult:
        await self.channel.send(message)
        self.started.set()
        await self.release.wait()
        raise TemporarySendError("timed out waiting for the platform's answer")


async def test_a_sender_whose_lease_ran_out_cannot_undo_the_result_of_the_one_that_took_over(
    core: CoreContext, intake: Intake, learner_channel: FakeChannel
) -> None:
    await intake.receive(learner_channel.message("chat-1", "老师迟到", NOW), NOW)
    retry = RetryPolicy(lease=timedelta(seconds=30))
    slow = SlowThenFail(learner_channel)
    first = Dispatcher(core.sessions, core.vault, {"telegram": slow}, retry=retry, concurrency=1, batch=1)
    running = asyncio.create_task(first.run_once(NOW))
    await slow.started.wait()
    # The first dispatcher is still waiting on the platform when its lease runs out.
    second = Dispatcher(core.sessions, core.vault, {"telegram": learner_channel}, retry=retry)
    await second.drain(NOW + timedelta(seconds=31))
    slow.release.set()
    await running
    rows = [r for r in await _rows(core) if r.channel == "telegram"]
    assert all(r.status == SENT for r in rows), [(r.kind, r.status, r.last_error) for r in rows]
    ack_key = next(r.key for r in rows if r.kind == "ack")
    # Sent by the slow one and by the one that took over; never a third time.
    await second.drain(NOW + timedelta(hours=2))
    assert [m.key for m in learner_channel.sent].count(ack_key) == 2


async def test_a_row_whose_sender_always_dies_ends_dead_not_resent_forever(
    core: CoreContext, intake: Intake, learner_channel: FakeChannel
) -> None:
    await intake.receive(learner_channel.message("chat-1", "老师迟到", NOW), NOW)
    retry = RetryPolicy(max_attempts=3, lease=timedelta(seconds=60))
    when = NOW
    for _ in range(5):
        crashing = Dispatcher(
            core.sessions, core.vault, {"telegram": CrashAfterSend(learner_channel)}, retry=retry
        )
        with contextlib.suppress(Killed):
            await crashing.run_once(when)
        when += timedelta(seconds=61)
    ack = next(r for r in await _rows(core) if r.kind == "ack")
    assert (ack.status, ack.attempts) == (DEAD, 3)
    assert ack.last_error is not None and "never finished" in ack.last_error
