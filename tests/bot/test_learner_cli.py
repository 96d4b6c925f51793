"""`complaintbot learner forget` as an operator uses it: the installed script, a real SQLite file."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path

import pytest

from bot.app import channel_book
from core.context import CoreContext
from core.intake.intake import Intake
from core.rules.policy import parse_policy
from core.rules.templates import Templates
from core.storage.db import create_engine, session_factory
from core.storage.privacy import Vault, generate_key
from tests.bot.cli_helpers import SCRIPT, Result, clean_env, complaintbot, one_error_line
from tests.conftest import DEPARTMENTS, at
from tests.core.erasure_story import LI, WANG, Person, everything, tell


def forget(cwd: Path, env: dict[str, str], *args: str) -> Result:
    """Without a terminal, as from a script or CI: stdin is not a tty."""
    return subprocess.run(
        [SCRIPT, "learner", "forget", *args],
        cwd=cwd,
        env=clean_env(**env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def forget_at_a_terminal(cwd: Path, env: dict[str, str], number: str, answer: str) -> Result:
    """At a terminal: stdin is a pseudo-terminal on which the operator types `answer`."""
    master, slave = os.openpty()
    try:
        process = subprocess.Popen(
            [SCRIPT, "learner", "forget", number],
            cwd=cwd,
            env=clean_env(**env),
            stdin=slave,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        os.close(slave)
        os.write(master, f"{answer}\n".encode())
        stdout, stderr = process.communicate(timeout=60)
    finally:
        os.close(master)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


class Site:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.key = generate_key()
        self.env = {"COMPLAINTBOT_PRIVACY__KEY": self.key}
        self.url = f"sqlite+aiosqlite:///{directory / 'var' / 'complaintbot.db'}"

    def seed(self, person: Person) -> tuple[list[str], str]:
        """`person`'s complaints written through the core: (their numbers, everything in the database)."""
        return self._run(person)

    def read(self) -> str:
        return self._run(None)[1]

    def _run(self, person: Person | None) -> tuple[list[str], str]:

        async def main() -> tuple[list[str], str]:
            engine = create_engine(self.url)
            core = CoreContext(
                sessions=session_factory(engine),
                policy=parse_policy(),
                vault=Vault([self.key]),
                templates=Templates(),
                channels=channel_book(),
                department_names=DEPARTMENTS,
            )
            try:
                numbers = []
                if person is not None:
                    numbers = (await tell(core, Intake(core), person, at("2026-11-23 10:00"))).numbers
                return numbers, await everything(core)
            finally:
                await core.close()
                await engine.dispose()

        return asyncio.run(main())


@pytest.fixture
def site(tmp_path: Path) -> Site:
    site = Site(tmp_path)
    assert complaintbot(tmp_path, "db", "upgrade", env=site.env).returncode == 0
    return site


def test_forget_with_yes_erases_the_learner_and_says_what_it_did(site: Site) -> None:
    numbers, _ = site.seed(LI)
    site.seed(WANG)

    done = forget(site.directory, site.env, numbers[1], "--yes", "--json")

    assert done.returncode == 0, done.stderr
    view = json.loads(done.stdout)
    assert view["erased"] and view["learner_erased"] and view["tickets"] == numbers
    assert view["open_tickets"] == numbers  # open tickets do not stop an erasure; they are listed
    assert view["messages"] > 0 and view["outbox_rows"] > 0
    dump = site.read()
    assert [needle for needle in LI.plain() if needle in dump] == []
    assert WANG.name in dump and WANG.phone in dump
    shown = complaintbot(site.directory, "tickets", "show", numbers[0], "--json", env=site.env)
    assert [e["action"] for e in json.loads(shown.stdout)["events"]][-1] == "erased"

    again = forget(site.directory, site.env, numbers[0], "--yes")
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith(f"nothing to erase: the learner of {numbers[0]} was erased")


def test_without_yes_and_without_a_terminal_nothing_is_erased(site: Site) -> None:
    numbers, before = site.seed(LI)
    refused = forget(site.directory, site.env, numbers[0])
    line = one_error_line(refused)
    assert line.startswith("error: not erasing") and "--yes" in line
    assert site.read() == before


def test_at_a_terminal_the_operator_confirms_the_identity_check(site: Site) -> None:
    numbers, before = site.seed(LI)
    declined = forget_at_a_terminal(site.directory, site.env, numbers[0], "n")
    assert declined.returncode != 0 and "not confirmed: nothing erased" in declined.stderr
    # The operator is shown whom they are about to erase, masked, and asked about the identity check.
    assert "李*" in declined.stderr and "138****5678" in declined.stderr and "verified" in declined.stderr
    assert LI.name not in declined.stderr and LI.phone not in declined.stderr
    assert site.read() == before

    confirmed = forget_at_a_terminal(site.directory, site.env, numbers[0], "y")
    assert confirmed.returncode == 0, confirmed.stderr
    assert confirmed.stdout.startswith(f"erased: 2 ticket(s) {numbers[0]}, {numbers[1]}")
    assert f"still open, for staff to close: {numbers[0]}, {numbers[1]}" in confirmed.stdout
    assert LI.name not in site.read()


@pytest.mark.parametrize(
    ("number", "says"),
    [
        ("TS-261122-00072", "check digit"),  # mistyped: refused, never matched to another learner
        ("TS-261122-00071", "no ticket TS-261122-00071"),
        ("hello", "TS-"),
    ],
)
def test_a_bad_or_unknown_number_is_one_line(site: Site, number: str, says: str) -> None:
    assert says in one_error_line(forget(site.directory, site.env, number, "--yes"))
