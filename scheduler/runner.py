"""APScheduler decides *when* each duty runs; what a duty does, and that it is done once, comes
from the database rows it claims. Each duty is `async (now) -> object`, given the time explicitly."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler

log = logging.getLogger(__name__)

Duty = Callable[[datetime], Awaitable[object]]


@dataclass(frozen=True)
class Schedule:
    name: str
    duty: Duty
    every_seconds: float


def utc_now() -> datetime:
    return datetime.now(UTC)


class Scheduler:
    def __init__(self, schedules: list[Schedule], clock: Callable[[], datetime] = utc_now) -> None:
        # In-memory job store only: a shared job store would run jobs twice (APScheduler's FAQ).
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        self._clock = clock
        for schedule in schedules:
            self._scheduler.add_job(
                self._run,
                "interval",
                seconds=schedule.every_seconds,
                args=[schedule],
                id=schedule.name,
                max_instances=1,
                coalesce=True,
                next_run_time=clock(),
            )

    async def _run(self, schedule: Schedule) -> None:
        try:
            await schedule.duty(self._clock())
        except asyncio.CancelledError:
            # The service stops in the middle of a pass (drawing the monthly report takes seconds):
            # every duty is idempotent and keyed, so the next start simply does it again.
            log.info("duty %s stopped with the service; the next pass does it again", schedule.name)
        except Exception:  # one failed pass must not stop the schedule; the next pass retries
            log.exception("duty %s failed", schedule.name)

    def run_soon(self, name: str) -> None:
        """Bring a duty forward (e.g. the outbox right after a complaint is committed)."""
        job = self._scheduler.get_job(name)
        if job is not None:
            job.modify(next_run_time=self._clock())

    def start(self) -> None:
        self._scheduler.start()

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
