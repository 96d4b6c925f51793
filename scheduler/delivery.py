"""When the outbox is sent: continuously, each lane on its own, woken by every commit that queued a message.

A lane drains while it has anything to send and sleeps only when it has nothing: until a commit wakes
it (`core.storage.wakeup`, in this process; PostgreSQL `LISTEN/NOTIFY` from the other instances), or until its
next row is due (a retry's time, a lease running out), or at the latest `safety_net` seconds. A wake-up
that arrives during a pass is kept for the next one, so none is lost. Now and then parked rows are given
another chance, and a lane whose oldest due message has waited more than a minute is reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import asyncpg

from core.delivery.dispatch import Dispatcher
from core.delivery.queue import LaneState
from core.storage.wakeup import CHANNEL, OutboxSignal

log = logging.getLogger(__name__)

SAFETY_NET_S = 30.0  # the longest a lane sleeps without being woken
RECHECK_PARKED_S = 600.0  # how often parked rows get another chance (a recipient configured meanwhile)
LATE_AFTER = timedelta(minutes=1)  # a lane whose oldest due row waited this long is reported
_MIN_SLEEP_S = 0.01


def utc_now() -> datetime:
    return datetime.now(UTC)


class Delivery:
    def __init__(
        self,
        dispatcher: Dispatcher,
        signal: OutboxSignal,
        *,
        clock: Callable[[], datetime] = utc_now,
        listen_dsn: str | None = None,  # PostgreSQL: hear the other instances' commits
        safety_net: float = SAFETY_NET_S,
        recheck_parked: float = RECHECK_PARKED_S,
    ) -> None:
        self.dispatcher = dispatcher
        self.signal = signal
        self.clock = clock
        self.listen_dsn = listen_dsn
        self.safety_net = safety_net
        self.recheck_parked = recheck_parked
        self._events: dict[str, asyncio.Event] = {}
        # Set once every lane has made its first pass (and the listener, if any, listens): from then on
        # only a wake-up, a due time or the safety net starts a pass.
        self.ready = asyncio.Event()
        self._settled: set[str] = set()

    def wake(self) -> None:
        for event in self._events.values():
            event.set()

    async def run(self, stop: asyncio.Event, grace: float = 5.0) -> None:
        """Until `stop` is set; a pass under way then gets `grace` seconds to record what it sent."""
        self._events = {lane: asyncio.Event() for lane in self.dispatcher.lanes}
        self._settled = set(self._events) | ({"listener"} if self.listen_dsn is not None else set())
        self._mark_ready(None)
        unsubscribe = self.signal.subscribe(self.wake)
        tasks = [asyncio.create_task(self._lane(lane, stop), name=f"outbox-{lane}") for lane in self._events]
        tasks.append(asyncio.create_task(self._housekeeping(stop), name="outbox-housekeeping"))
        if self.listen_dsn is not None:
            tasks.append(asyncio.create_task(self._listen(self.listen_dsn, stop), name="outbox-listen"))
        try:
            await stop.wait()
        finally:
            unsubscribe()
            stop.set()
            self.wake()
            _, running = await asyncio.wait(tasks, timeout=grace)
            for task in running:  # a send that hangs: its lease runs out and the row is sent again later
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _lane(self, lane: str, stop: asyncio.Event) -> None:
        event = self._events[lane]
        failures = 0
        while not stop.is_set():
            event.clear()  # a wake-up from here on means another pass
            try:
                report = await self.dispatcher.run_lane(lane, self.clock(), self.clock, stop.is_set)
                failures = 0
                if report.handled:
                    continue  # drain while anything is due
                due = await self.dispatcher.next_due(lane)
            except Exception:  # the database is down or a bug: the lane keeps trying, slower
                failures += 1
                delay = min(self.safety_net, 0.5 * 2**failures)
                log.warning("outbox lane %s: pass failed; again in %.1f s", lane, delay, exc_info=True)
                await _wait(stop, None, delay)
                continue
            timeout = self.safety_net
            if due is not None:
                timeout = min(max((due - self.clock()).total_seconds(), _MIN_SLEEP_S), self.safety_net)
            self._mark_ready(lane)
            await _wait(stop, event, timeout)

    def _mark_ready(self, part: str | None) -> None:
        self._settled.discard(part or "")
        if not self._settled:
            self.ready.set()

    async def _housekeeping(self, stop: asyncio.Event) -> None:
        """The safety net, parked rows' second chances, and warnings about late lanes."""
        loop = asyncio.get_running_loop()
        next_recheck = loop.time() + self.recheck_parked
        while not await _wait(stop, None, self.safety_net):
            self.wake()
            try:
                if loop.time() >= next_recheck:
                    next_recheck = loop.time() + self.recheck_parked
                    if await self.dispatcher.release_parked(self.clock()):
                        self.wake()
                await self.report_late(self.clock())
            except Exception:
                log.warning("outbox housekeeping failed; again in %.0f s", self.safety_net, exc_info=True)

    async def report_late(self, now: datetime) -> list[LaneState]:
        """Log a warning for each lane whose oldest due message has waited longer than `LATE_AFTER` (a
        channel with no sender here is shown at start, not warned about every half minute)."""
        late = [
            state
            for state in await self.dispatcher.states(now)
            if state.oldest_due is not None and state.oldest_due > LATE_AFTER
        ]
        for state in late:
            log.warning(
                "outbox lane %s is late: its oldest due message has waited %d s (%s)",
                state.lane,
                state.oldest_due.total_seconds() if state.oldest_due else 0,
                ", ".join(f"{n} {status}" for status, n in sorted(state.counts.items())),
            )
        return late

    async def _listen(self, dsn: str, stop: asyncio.Event) -> None:
        """`LISTEN` for other instances' commits; reconnects with backoff, and wakes every lane after
        each (re)connection, for what was committed while nobody listened."""
        failures = 0
        while not stop.is_set():
            lost = asyncio.Event()
            try:
                connection = await asyncpg.connect(dsn, timeout=10)
            except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                failures += 1
                log.warning("outbox: cannot listen for other instances (%s); retrying", type(exc).__name__)
                await _wait(stop, None, min(self.safety_net, 2.0**failures))
                continue
            failures = 0
            try:
                connection.add_termination_listener(lambda _connection, lost=lost: lost.set())
                await connection.add_listener(CHANNEL, lambda *_args: self.wake())
                self.wake()
                self._mark_ready("listener")
                await _wait(stop, lost, None)
            finally:
                with contextlib.suppress(Exception):
                    await connection.close(timeout=2)


async def _wait(stop: asyncio.Event, event: asyncio.Event | None, seconds: float | None) -> bool:
    """Until `stop`, `event` or `seconds` (None: no limit); whether `stop` is set."""
    waiters = [asyncio.ensure_future(stop.wait())]
    if event is not None:
        waiters.append(asyncio.ensure_future(event.wait()))
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
    return stop.is_set()
