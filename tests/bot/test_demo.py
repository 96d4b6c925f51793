"""`complaintbot demo` tells the whole story: checked from the database it leaves behind (`--keep`),
not from the screen."""

from __future__ import annotations

import re
import sqlite3
import subprocess
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from tests.bot.cli_helpers import SCRIPT, clean_env


def test_the_demo_runs_the_whole_story_and_keeps_its_database(tmp_path: Path) -> None:
    kept, picture = tmp_path / "kept", tmp_path / "demo.svg"
    elsewhere = tmp_path / "production.db"
    # A database the operator configured for the real service: the demo must not touch it.
    env = clean_env(COMPLAINTBOT_DATABASE__URL=f"sqlite+aiosqlite:///{elsewhere}")
    done = subprocess.run(
        [SCRIPT, "demo", "--speed", "0", "--lang", "en", "--keep", str(kept), "--svg", str(picture)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,  # a bound for a very busy machine; the story itself takes seconds
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert not elsewhere.exists()
    assert "<svg" in picture.read_text(encoding="utf-8")
    # The managers' monthly report arrives as a file the screen names.
    assert re.search(r"📎 report-\d{4}-\d{2}\.pdf", done.stdout), done.stdout[-3000:]

    with closing(sqlite3.connect(kept / "complaintbot.db")) as db:
        tickets = {
            channel: (number, status, satisfaction, ticket_id)
            for ticket_id, number, channel, status, satisfaction in db.execute(
                "SELECT id, number, channel, status, satisfaction FROM tickets WHERE parent_id IS NULL"
            )
        }
        assert set(tickets) == {"telegram", "wechat", "email", "voicemail"}

        def events(channel: str, action: str) -> list[str]:
            ticket_id = tickets[channel][3]
            return [
                detail
                for (detail,) in db.execute(
                    "SELECT detail FROM events WHERE ticket_id = ? AND action = ? ORDER BY id",
                    (ticket_id, action),
                )
            ]

        # Every learner with a written channel got the acknowledgement with their number.
        acks = dict(db.execute("SELECT channel, status FROM outbox WHERE kind = 'ack'").fetchall())
        assert acks == {"telegram": "sent", "wechat": "sent", "email": "sent"}
        # Telegram: claimed, answered, planned, agreed, resolved, confirmed and rated 5.
        assert tickets["telegram"][1:3] == ("closed", 5)
        assert events("telegram", "plan") and events("telegram", "resolve")
        # WeChat: rated 1, reopened, and the second instance opened for compliance.
        assert tickets["wechat"][1:3] == ("investigating", 1)
        [(department,)] = db.execute(
            "SELECT department FROM tickets WHERE parent_id = ?", (tickets["wechat"][3],)
        ).fetchall()
        assert department == "compliance"
        # The voicemail was called back.
        assert events("voicemail", "called")
        # Nobody took the e-mail: with time moved forward, a reminder, then level 1 and level 2.
        assert tickets["email"][1] == "routed"
        assert events("email", "reminded")
        levels = events("email", "escalated")
        assert any("level 1" in d for d in levels) and any("level 2" in d for d in levels)
        # The month's report went to the managers.
        first = datetime.fromisoformat(db.execute("SELECT MIN(created_at) FROM tickets").fetchone()[0])
        month = first.replace(tzinfo=UTC).astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m")
        assert db.execute(
            "SELECT status FROM outbox WHERE kind = 'report' AND key = ?", (f"report:{month}",)
        ).fetchone() == ("sent",)

    listed = subprocess.run(
        [SCRIPT, "--config", str(kept / "complaintbot.toml"), "tickets", "list", "--status", "all", "--json"],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    assert tickets["email"][0] in listed.stdout
