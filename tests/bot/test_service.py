"""`complaintbot run` as an operator starts it: no config, port from the environment, stopped by a signal."""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import stat
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet

from bot.app import channel_book
from channels.fake import FakeChannel
from core.context import CoreContext
from core.intake.intake import Intake
from core.rules.policy import parse_policy
from core.rules.templates import Templates
from core.storage.db import create_engine, session_factory
from core.storage.privacy import Vault
from tests.bot.cli_helpers import SCRIPT, clean_env, complaintbot

# Bounds for a machine doing other work: they catch a service that never starts or never stops on
# SIGTERM; they do not time it.
START_TIMEOUT = 90.0
OPENID = "oLVPpjqs9BhvzwPj5A-vTYAX3GLc"
WECHAT_QUERY = {"signature": "9f3c0e1d2b", "timestamp": "1700000000", "nonce": "4711", "openid": OPENID}
STOP_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Stopped:
    returncode: int
    stdout: str
    stderr: str
    health: httpx.Response
    metrics: httpx.Response
    stop_seconds: float


def run_service(directory: Path, stop_with: signal.Signals) -> Stopped:
    """Start `complaintbot run`, wait until /healthz answers, fetch /metrics, then stop it with a signal."""
    port = free_port()
    out, err = directory / "run.out", directory / "run.err"
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen(
            [SCRIPT, "run"],
            cwd=directory,
            stdout=stdout,
            stderr=stderr,
            env=clean_env(COMPLAINTBOT_WEB__PORT=str(port)),
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + START_TIMEOUT
            health: httpx.Response | None = None
            while time.monotonic() < deadline and process.poll() is None:
                try:
                    health = httpx.get(f"{base}/healthz", timeout=2)
                    if health.status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
            assert health is not None and health.status_code == 200, (
                f"no healthy service within {START_TIMEOUT}s (exit {process.poll()}): {err.read_text()}"
            )
            metrics = httpx.get(f"{base}/metrics", timeout=5)
            # What WeChat's pushes look like in an access log (no WeChat configured here: 404).
            httpx.get(f"{base}/wechat", params=WECHAT_QUERY, timeout=5)
            started = time.monotonic()
            process.send_signal(stop_with)
            returncode = process.wait(timeout=STOP_TIMEOUT)
            stop_seconds = time.monotonic() - started
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    return Stopped(returncode, out.read_text(), err.read_text(), health, metrics, stop_seconds)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("service")


@pytest.fixture(scope="module")
def first_run(site: Path) -> Stopped:
    return run_service(site, signal.SIGINT)


def test_run_serves_health_and_metrics(first_run: Stopped) -> None:
    assert first_run.health.json()["status"] == "ok"
    assert first_run.metrics.status_code == 200
    assert "complaintbot_" in first_run.metrics.text


def test_the_access_log_shows_requests_without_their_query_strings(first_run: Stopped) -> None:
    assert '"GET /wechat HTTP/1.1" 404' in first_run.stderr
    assert '"GET /healthz HTTP/1.1" 200' in first_run.stderr
    for value in WECHAT_QUERY.values():
        assert value not in first_run.stderr + first_run.stdout


def test_run_says_which_channels_it_skipped_and_why(first_run: Stopped) -> None:
    said = first_run.stdout + first_run.stderr
    for channel in ("telegram", "wechat", "email", "voicemail"):
        lines = [line for line in said.splitlines() if f"{channel}: skipped" in line]
        assert lines, f"nothing said about {channel}:\n{said}"
    telegram = next(line for line in said.splitlines() if "telegram: skipped" in line)
    assert "token" in telegram  # the reason, not just the verdict


def test_run_generates_a_privacy_key_and_says_so(first_run: Stopped, site: Path) -> None:
    key_file = site / "var" / "privacy.key"
    assert key_file.is_file()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    Fernet(key_file.read_text(encoding="ascii").strip())
    notice = [line for line in first_run.stderr.splitlines() if "privacy.key" in line]
    assert len(notice) == 1 and "generated" in notice[0], first_run.stderr
    assert "[privacy]" in notice[0]  # the section name survives the terminal's markup


def test_sigint_stops_the_service_cleanly(first_run: Stopped) -> None:
    assert first_run.stop_seconds < STOP_TIMEOUT
    assert first_run.returncode == 0, first_run.stderr
    assert "Traceback" not in first_run.stderr


def test_second_run_keeps_the_key_and_sigterm_stops_it(first_run: Stopped, site: Path) -> None:
    key_file = site / "var" / "privacy.key"
    key_before = key_file.read_bytes()
    second = run_service(site, signal.SIGTERM)
    assert key_file.read_bytes() == key_before  # a new key would make the stored data unreadable
    assert "generated" not in second.stderr
    assert second.health.json()["status"] == "ok"
    # SIGTERM (systemd, docker stop) is a normal stop: the service shuts down and exits 0.
    assert second.returncode == 0, second.stderr
    assert second.stop_seconds < STOP_TIMEOUT
    assert "Traceback" not in second.stderr


def test_run_reports_what_waits_in_the_outbox_and_why(first_run: Stopped, site: Path) -> None:
    """A complaint taken in while no channel was configured: its messages wait, untouched, and `run`,
    `/metrics` and `tickets show` say where and why."""
    key = (site / "var" / "privacy.key").read_text(encoding="ascii").strip()

    async def complain() -> str:
        engine = create_engine(f"sqlite+aiosqlite:///{site / 'var' / 'complaintbot.db'}")
        core = CoreContext(
            sessions=session_factory(engine),
            policy=parse_policy(),
            vault=Vault([key]),
            templates=Templates(),
            channels=channel_book(),
        )
        try:
            now = datetime.now(UTC)
            message = FakeChannel("telegram").message("5001", "老师上课总是迟到", now)
            return (await Intake(core).receive(message, now)).ticket_number
        finally:
            await core.close()
            await engine.dispose()

    number = asyncio.run(complain())
    third = run_service(site, signal.SIGTERM)
    said = third.stdout + third.stderr
    assert "outbox staff: 1 pending (no sender for channel 'staff' is configured)" in said, said
    assert "outbox telegram: 2 pending (no sender for channel 'telegram' is configured)" in said
    assert 'complaintbot_outbox_messages{channel="staff",status="pending"} 1.0' in third.metrics.text
    assert third.returncode == 0, third.stderr
    shown = " ".join(complaintbot(site, "tickets", "show", number).stdout.split())  # however it wraps
    assert "not delivered" in shown and "card via staff: pending after 0 attempt(s)" in shown, shown


def test_with_port_zero_run_says_the_port_the_system_chose(tmp_path: Path) -> None:
    err = tmp_path / "run.err"
    with err.open("w") as stderr:
        process = subprocess.Popen(
            [SCRIPT, "run"],
            cwd=tmp_path,
            stdout=stderr,
            stderr=stderr,
            env=clean_env(COMPLAINTBOT_WEB__PORT="0"),
        )
        try:
            deadline, said = time.monotonic() + START_TIMEOUT, None
            while said is None and time.monotonic() < deadline and process.poll() is None:
                said = re.search(r"web: (http://127\.0\.0\.1:(\d+)) \(/healthz, /metrics\)", err.read_text())
                time.sleep(0.1)
            assert said is not None, f"no web line within {START_TIMEOUT}s: {err.read_text()}"
            assert int(said.group(2)) > 0
            # The address it says is where it answers.
            assert httpx.get(f"{said.group(1)}/healthz", timeout=5).json()["status"] == "ok"
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=STOP_TIMEOUT) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert "127.0.0.1:0 " not in err.read_text()
