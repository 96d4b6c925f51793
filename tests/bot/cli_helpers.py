"""Running the installed `complaintbot` script as an operator does: a real process, its own directory."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path


def _script() -> str:
    beside = Path(sys.executable).parent / "complaintbot"
    if beside.exists():
        return str(beside)
    found = shutil.which("complaintbot")
    assert found, "the complaintbot console script is not installed (pip install -e '.[test]')"
    return found


SCRIPT = _script()
Result = subprocess.CompletedProcess[str]


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any COMPLAINTBOT_* variable, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("COMPLAINTBOT_")}
    env.update(extra)
    return env


@dataclass(frozen=True)
class Call:
    cwd: Path
    args: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)


def complaintbot(cwd: Path, *args: str, env: Mapping[str, str] | None = None) -> Result:
    return subprocess.run(
        [SCRIPT, *args],
        cwd=cwd,
        env=clean_env(**(env or {})),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def complaintbot_many(calls: Mapping[str, Call]) -> dict[str, Result]:
    """Independent calls side by side: each process start costs about a second of imports."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(complaintbot, c.cwd, *c.args, env=c.env) for name, c in calls.items()}
        return {name: future.result() for name, future in futures.items()}


def one_error_line(result: Result) -> str:
    """The single line a refused command prints on stderr (after checking it is one line, no traceback)."""
    assert result.returncode != 0, result
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert result.stdout == "", result.stdout
    return lines[0]


def migrated(database: Path) -> bool:
    """The file is an SQLite database that Alembic has migrated."""
    if not database.is_file():
        return False
    with closing(sqlite3.connect(database)) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "alembic_version" not in tables:
            return False
        return bool(conn.execute("SELECT count(*) FROM alembic_version").fetchone()[0] == 1)
