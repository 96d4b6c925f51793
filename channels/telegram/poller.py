"""Long polling: fetch updates, hand each to the handler, move the offset only after it committed.

A restart re-reads nothing that was handled (the offset is in the database, written after each
update's own transaction) and loses nothing (an update whose handling failed is fetched again). A
crash between the handler's commit and the offset write re-delivers that one update, which intake's
dedupe turns into a no-op. With several instances, a lease lets only one of them poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from telegram.error import TelegramError

from channels.telegram.sender import TelegramBot
from core.storage.state import get_state, hold_lease, release_lease, set_state

log = logging.getLogger(__name__)

OFFSET_KEY = "telegram:offset"
LEASE = "telegram:poller"
ALLOWED_UPDATES = ["message", "callback_query"]

Handler = Callable[[Mapping[str, Any]], Awaitable[None]]
GiveUp = Callable[[Mapping[str, Any], Exception], Awaitable[None]]


class TelegramPoller:
    def __init__(
        self,
        bot: TelegramBot,
        sessions: async_sessionmaker[AsyncSession],
        handle: Handler,
        *,
        holder: str,
        clock: Callable[[], datetime],
        poll_timeout: int = 25,
        lease_ttl: timedelta = timedelta(seconds=90),
        give_up: GiveUp | None = None,
        max_failures: int = 5,
    ) -> None:
        self.bot = bot
        self.sessions = sessions
        self.handle = handle
        self.holder = holder
        self.clock = clock
        self.poll_timeout = poll_timeout
        self.lease_ttl = lease_ttl
        # One update that always fails must not block every later one: after `max_failures` tries it
        # is handed to `give_up` (kept raw for staff) and the offset moves on.
        self.give_up = give_up
        self.max_failures = max_failures
        self._failures: dict[int, int] = {}

    async def poll_once(self) -> int | None:
        """One getUpdates round; the number of updates handled, or None when another instance polls."""
        if not await hold_lease(self.sessions, LEASE, self.holder, self.clock(), self.lease_ttl):
            return None
        offset = int(await get_state(self.sessions, OFFSET_KEY) or 0)
        updates = await self.bot.get_updates(
            offset=offset or None, timeout=self.poll_timeout, allowed_updates=ALLOWED_UPDATES
        )
        for update in updates:
            raw = update.to_dict()
            try:
                # Handled and committed first; a failure raises here and the offset stays before it.
                await self.handle(raw)
            except Exception as exc:
                tries = self._failures[update.update_id] = self._failures.get(update.update_id, 0) + 1
                if self.give_up is None or tries < self.max_failures:
                    raise
                log.error(
                    "telegram update %s failed %d times; kept for staff: %s", update.update_id, tries, exc
                )
                await self.give_up(raw, exc)
            self._failures.pop(update.update_id, None)
            await set_state(self.sessions, OFFSET_KEY, str(update.update_id + 1), self.clock())
        return len(updates)

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until `stop` is set, backing off with jitter while Telegram or the database fails."""
        try:
            await self._loop(stop)
        finally:  # also when cancelled on shutdown: another instance may take over at once
            await release_lease(self.sessions, LEASE, self.holder, self.clock())

    async def _loop(self, stop: asyncio.Event) -> None:
        failures = 0
        while not stop.is_set():
            try:
                handled = await self.poll_once()
                failures = 0
                if handled is None:  # another instance holds the lease: look again later
                    await _wait(stop, self.lease_ttl.total_seconds() / 3)
            except Exception as exc:  # Telegram, the network or the database: the loop must go on
                failures += 1
                delay = min(60.0, 2.0**failures) * (0.5 + random.random() / 2)
                expected = isinstance(exc, TelegramError | OSError)
                log.warning(
                    "telegram polling failed (%s); retrying in %.1fs", exc, delay, exc_info=not expected
                )
                await _wait(stop, delay)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
