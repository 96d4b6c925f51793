"""The suite on a machine whose PostgreSQL answers but refuses us: the SQLite tests still run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_a_postgres_that_refuses_the_login_skips_only_its_own_tests(tmp_path: Path) -> None:
    probe = tmp_path / "test_probe.py"
    probe.write_text(
        "from core.context import CoreContext\n\n"
        "async def test_numbers(core: CoreContext) -> None:\n"
        "    assert core.prefix\n",
        encoding="utf-8",
    )
    # A role that does not exist: the server answers on its port and refuses the login.
    env = {
        **os.environ,
        "COMPLAINTBOT_TEST_POSTGRES_URL": "postgresql+asyncpg://no_such_role@127.0.0.1:5432/x",
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-rs",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(ROOT),
            "-c",
            str(ROOT / "pyproject.toml"),
            "-p",
            "tests.conftest",
            str(probe),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "1 passed, 1 skipped" in out, out
    assert "refused the tests" in out and "no_such_role" in out, out
