"""The loop every mail source runs: one pass, then the wait for more mail; backoff with jitter on
failure, optionally under a database lease so that one instance reads."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.storage.state import hold_lease, release_lease

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReadLease:
    """A database lease: of several instances, the one holding it reads the mailbox."""

    sessions: async_sessionmaker[AsyncSession]
    name: str
    holder: str
    ttl: timedelta  # the step must come back within a third of it, so the lease is renewed in time
    clock: Callable[[], datetime]


async def keep_reading(
    what: str,
    step: Callable[[], Awaitable[bool]],
    stop: asyncio.Event,
    *,
    reset: Callable[[], Awaitable[None]] | None = None,
    expected: tuple[type[BaseException], ...] = (),
    lease: ReadLease | None = None,
) -> None:
    """Run a source's `step` (one pass, then the wait for more mail) until `stop` is set. A step that
    fails or reports trouble (False: intake failed) is retried after an exponential backoff with
    jitter, so that instances do not hammer a server or a database that is down all at once. `reset`
    drops what the source holds (its connection) after an error, while another instance holds the
    lease, and at the end."""
    failures = 0
    try:
        while not stop.is_set():
            try:
                if lease is not None and not await hold_lease(
                    lease.sessions, lease.name, lease.holder, lease.clock(), lease.ttl
                ):
                    if reset is not None:
                        await reset()
                    await pause(stop, lease.ttl.total_seconds() / 3)
                    continue
                healthy = await step()
            except Exception as exc:  # the server, the network, the disk or the database: go on
                healthy = False
                log.warning(
                    "%s failed (%s)", what, exc or type(exc).__name__, exc_info=not isinstance(exc, expected)
                )
                if reset is not None:
                    await reset()
            failures = 0 if healthy else failures + 1
            if failures:
                await pause(stop, min(60.0, 2.0 ** (failures - 1)) * (0.5 + random.random() / 2))
    finally:  # also when cancelled on shutdown: another instance may take over at once
        if reset is not None:
            await reset()
        if lease is not None:
            with contextlib.suppress(Exception):
                await release_lease(lease.sessions, lease.name, lease.holder, lease.clock())


async def pause(stop: asyncio.Event, seconds: float) -> None:
    """Wait `seconds`, or less when `stop` is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
