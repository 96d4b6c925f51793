"""The managers' daily digest, and `complaintbot sweep` as operators run it (the real command)."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

from sqlalchemy import select

from channels.fake import FakeChannel
from core.context import CoreContext
from core.delivery.outbox import payload_text
from core.intake.intake import Intake
from core.storage.delivery_models import OutboxRow
from scheduler import digest
from tests.bot.cli_helpers import SCRIPT, clean_env
from tests.conftest import at

TEACHING = "老师上课总是迟到，讲课照本宣科，教学质量很差"
FEES = "退费申请三个月了还没到账"


async def test_the_digest_goes_out_once_a_day_after_its_time(core: CoreContext, intake: Intake) -> None:
    channel = FakeChannel("telegram")
    for i, text in enumerate((TEACHING, TEACHING, FEES)):
        await intake.receive(channel.message(f"80{i}", text, at("2026-11-23 10:00")), at("2026-11-23 10:00"))
    assert (await digest.run(core, at("2026-11-24 08:29"), False)).actions == []
    dry = await digest.run(core, at("2026-11-24 08:31"), True)
    assert dry.actions and await _digests(core) == []
    runs = await asyncio.gather(*(digest.run(core, at("2026-11-24 08:31"), False) for _ in range(2)))
    assert sum(r.count for r in runs) == 1
    assert (await digest.run(core, at("2026-11-24 10:00"), False)).actions == []
    # A service that only comes up in the evening does not send the morning's digest at night.
    assert (await digest.run(core, at("2026-11-25 21:30"), True)).actions == []
    [row] = await _digests(core)
    assert core.vault.decrypt(row.recipient_enc) == "managers"
    text = payload_text(core.vault, row.payload)
    # Yesterday's tickets are new, and past their claim deadline by this morning.
    assert "教学部：新增 2（24 小时），处理中 2，超时 2" in text, text
    assert "财务部" in text
    assert len(await _digests(core)) == 1
    await digest.run(core, at("2026-11-25 08:30"), False)
    assert len(await _digests(core)) == 2  # the next day's


async def _digests(core: CoreContext) -> list[OutboxRow]:
    async with core.sessions() as session:
        return list(await session.scalars(select(OutboxRow).where(OutboxRow.key.like("digest:%"))))


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SCRIPT, *args], cwd=cwd, env=clean_env(), capture_output=True, text=True)


def test_sweep_dry_run_then_for_real_and_overdue_agrees(tmp_path: Path) -> None:
    assert _cli(tmp_path, "db", "upgrade").returncode == 0
    # A complaint logged through the real stack: the CLI has no intake, so use a tiny script.
    script = (
        "import asyncio\n"
        "from bot.app import build\nfrom bot.config import load_settings\n"
        "from channels.fake import FakeChannel\nfrom tests.conftest import at\n"
        "async def main():\n"
        "    app = build(load_settings(None), create_key=False)\n"
        "    m = FakeChannel('telegram').message('7001', '老师上课总是迟到', at('2026-11-23 10:00'))\n"
        "    r = await app.intake.receive(m, at('2026-11-23 10:00'))\n"
        "    print(r.ticket_number)\n"
        "    await app.close()\n"
        "asyncio.run(main())\n"
    )
    made = subprocess.run(
        [str(Path(SCRIPT).parent / "python"), "-c", script],
        cwd=tmp_path,
        env=clean_env(PYTHONPATH=str(Path(__file__).resolve().parents[2])),
        capture_output=True,
        text=True,
    )
    assert made.returncode == 0, made.stderr
    number = made.stdout.strip()
    dry = _cli(tmp_path, "sweep", "--at", "2026-11-23T11:05", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    duties = {d["duty"]: d for d in json.loads(dry.stdout)["duties"]}
    assert any(number in line and "level 1" in line for line in duties["escalation"]["actions"])
    overdue = json.loads(
        _cli(tmp_path, "tickets", "list", "--status", "overdue", "--at", "2026-11-23T11:05", "--json").stdout
    )
    assert [t["number"] for t in overdue["tickets"]] == [number] and overdue["total"] == 1
    shown = json.loads(_cli(tmp_path, "tickets", "show", number, "--json").stdout)
    assert not any(e["action"] == "escalated" for e in shown["events"])  # the dry run wrote nothing
    real = _cli(tmp_path, "sweep", "--at", "2026-11-23T11:05")
    assert real.returncode == 0 and "escalation: did" in real.stdout and number in real.stdout
    again = _cli(tmp_path, "sweep", "--at", "2026-11-23T11:05")
    assert "escalation: did 0" in again.stdout
    shown = json.loads(_cli(tmp_path, "tickets", "show", number, "--json").stdout)
    assert [e["action"] for e in shown["events"]].count("escalated") >= 1
    bad = _cli(tmp_path, "sweep", "--at", "tomorrow")
    assert bad.returncode != 0 and "--at 'tomorrow' is not an ISO-8601 time" in bad.stderr
