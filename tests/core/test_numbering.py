"""Ticket numbers are allocated atomically: concurrent writers get distinct numbers with no gaps."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from core.context import CoreContext
from core.intake.intake import Intake
from core.storage.models import Ticket
from core.storage.numbers import TicketNumber
from tests.conftest import Database
from tests.core.intake_worker import writer

ROOT = Path(__file__).resolve().parents[2]


async def _numbers(core: CoreContext) -> list[TicketNumber]:
    async with core.sessions() as session:
        return [TicketNumber.parse(n) for n in await session.scalars(select(Ticket.number))]


def _assert_gapless(numbers: list[TicketNumber], expected: int) -> None:
    assert len(numbers) == expected
    assert len({str(n) for n in numbers}) == expected, "duplicate ticket numbers"
    assert sorted(n.sequence for n in numbers) == list(range(1, expected + 1)), "gap in the day's sequence"


async def test_eight_concurrent_writers_get_2000_distinct_gapless_numbers(
    db: Database, core: CoreContext, intake: Intake, privacy_key: str
) -> None:
    if db.backend == "sqlite":
        await asyncio.gather(*(writer(intake, "w", w, 250) for w in range(8)))
    else:
        # Half the writers in another process with its own engine and pool.
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        other = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.core.intake_worker",
            db.url,
            privacy_key,
            "4",
            "250",
            "p2",
            cwd=ROOT,
            env=env,
            stderr=subprocess.PIPE,
        )
        await asyncio.gather(*(writer(intake, "p1", w, 250) for w in range(4)))
        _, stderr = await asyncio.wait_for(other.communicate(), timeout=240)
        assert other.returncode == 0, stderr.decode()[-2000:]
    _assert_gapless(await _numbers(core), 2000)


async def test_failed_intake_leaves_no_gap(
    core: CoreContext, intake: Intake, monkeypatch: pytest.MonkeyPatch
) -> None:
    await writer(intake, "a", 0, 3)

    def broken(locale: str, name: str, **context: object) -> str:
        raise RuntimeError("template store unavailable")

    # A failure after the number was taken (rendering comes later in the transaction).
    monkeypatch.setattr(core.templates, "render", broken)
    with pytest.raises(RuntimeError):
        await writer(intake, "b", 0, 1)
    monkeypatch.undo()
    await writer(intake, "c", 0, 2)
    _assert_gapless(await _numbers(core), 5)
