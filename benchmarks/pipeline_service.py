"""The service under test for benchmarks/pipeline.py: `complaintbot --config … run` as a subprocess.

Its generated config (`Setup`: which channels, where the mailbox and the stand-ins are, the secrets the
load signs with), the process (`Service`: started, waited for on /healthz, scraped, stopped with SIGTERM,
its stdout and stderr in service.log), and what is read from outside afterwards or meanwhile: its log
(e-mail commits, warnings and errors grouped), its /metrics (histograms as bucket bounds), the outbox
counted in its database, and the mailbox's UNSEEN count (`UnseenWatch`). Whatever was started (services,
Dovecots) is stopped at exit, whatever happens.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from benchmarks.pipeline_sinks import DESK_DOMAIN, Sinks
from benchmarks.wechat_webhook import AES_KEY, APP_ID, TOKEN
from bot.config import DEFAULT_DEPARTMENTS
from core.storage.db import create_engine
from core.storage.privacy import generate_key
from tests.channels.mail.dovecot import Dovecot

# The service's accounts, in its config; the load (pipeline_load) signs with the same secrets.
MAILBOX = "complaints@school.example.cn"
AUTHSERV_ID = "mx.school.example"  # the receiving server whose Authentication-Results the service trusts
WECHAT_SECRET = "pipeline-app-secret"
TELEGRAM_TOKEN = "7000001:AAbenchPipelineToken_x"
TELEGRAM_SECRET = "pipeline-webhook-secret"
STAFF_CHAT = -1001000000001
VOICEMAIL_SECRET = "pipeline-voicemail-secret"
LIVE: set[subprocess.Popen[bytes]] = set()  # services still running: killed at exit whatever happens
DOVECOTS: set[Dovecot] = set()


@atexit.register
def _leftovers() -> None:
    for process in list(LIVE):
        with contextlib.suppress(ProcessLookupError):
            process.kill()
    for server in list(DOVECOTS):
        server.close()


# -- the service ---------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _toml(value: str | int | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if isinstance(value, int) else json.dumps(value)  # JSON strings are TOML strings


@dataclass
class Setup:
    """Which channels a service run has, and where the things it talks to are."""

    sinks: Sinks
    port: int
    url: str
    var_dir: Path
    mailbox: Dovecot | None = None
    desks: bool = False
    webhooks: bool = False

    def config(self) -> str:
        sections: dict[str, dict[str, str | int | bool]] = {
            "service": {"var_dir": str(self.var_dir)},
            "database": {"url": self.url},
            "web": {"host": "127.0.0.1", "port": self.port},
            "privacy": {"key": generate_key()},
        }
        if self.mailbox is not None:
            sections["channels.email"] = {
                "imap_host": self.mailbox.host,
                "imap_port": self.mailbox.port,
                "imap_user": self.mailbox.user,
                "imap_password": self.mailbox.password,
                "imap_tls": False,
                "smtp_host": "127.0.0.1",
                "smtp_port": self.sinks.smtp_port,
                "smtp_tls": "none",
                "from_address": MAILBOX,
                "authserv_id": AUTHSERV_ID,
            }
        if self.webhooks:
            sections["channels.telegram"] = {
                "token": TELEGRAM_TOKEN,
                "base_url": self.sinks.botapi,
                "mode": "webhook",
                "webhook_url": f"http://127.0.0.1:{self.port}/telegram",
                "webhook_secret": TELEGRAM_SECRET,
                "staff_chat_id": STAFF_CHAT,
            }
            sections["channels.wechat"] = {
                "token": TOKEN,
                "app_id": APP_ID,
                "app_secret": WECHAT_SECRET,
                "encoding_aes_key": AES_KEY,
                "api_base_url": self.sinks.wechat,
            }
            sections["channels.voicemail"] = {"secret": VOICEMAIL_SECRET}
        for key in DEFAULT_DEPARTMENTS:
            if self.desks:
                sections[f"departments.{key}"] = {"email": f"{key}@{DESK_DOMAIN}"}
        return "".join(
            f"[{name}]\n" + "".join(f"{key} = {_toml(value)}\n" for key, value in values.items()) + "\n"
            for name, values in sections.items()
        )


def _command() -> list[str]:
    script = Path(sys.executable).with_name("complaintbot")
    return [str(script)] if script.exists() else [sys.executable, "-c", "from bot.cli import main; main()"]


class Service:
    """`complaintbot --config … run` in a directory of its own; stdout and stderr into service.log."""

    def __init__(self, workdir: Path, setup: Setup) -> None:
        self.workdir, self.port = workdir, setup.port
        self.config = workdir / "complaintbot.toml"
        self.config.write_text(setup.config(), encoding="utf-8")
        self.log = workdir / "service.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.started = self.ready_at = 0.0
        self.exit_code: int | None = None
        self.stop_seconds = 0.0

    def start(self) -> float:
        env = {k: v for k, v in os.environ.items() if not k.startswith("COMPLAINTBOT_")}
        with self.log.open("wb") as out:
            self.started = time.time()
            self.process = subprocess.Popen(
                [*_command(), "--config", str(self.config), "run"],
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # Ctrl-C reaches us, and we stop it with SIGTERM
            )
        LIVE.add(self.process)
        return self.started

    async def ready(self, within: float = 120.0) -> float:
        """When /healthz first answered 200."""
        assert self.process is not None
        deadline = time.time() + within
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}", timeout=2) as client:
            while time.time() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"the service exited with {self.process.returncode}:\n{self.tail()}")
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/healthz")).status_code == 200:
                        self.ready_at = time.time()
                        return self.ready_at
                await asyncio.sleep(0.05)
        raise RuntimeError(f"the service did not answer /healthz in {within:.0f} s:\n{self.tail()}")

    async def scrape(self) -> str:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}", timeout=30) as client:
            response = await client.get("/metrics")
            response.raise_for_status()
            return response.text

    def stop(self, timeout: float = 30.0) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        began = time.time()
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                print(f"  the service did not stop {timeout:.0f} s after SIGTERM: killed")
                process.kill()
                process.wait(10)
        self.exit_code, self.stop_seconds = process.returncode, time.time() - began
        LIVE.discard(process)

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""

    def tail(self) -> str:
        return "\n".join(self.text().splitlines()[-30:])


_TAKEN = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) INFO channels\.mail\.reader: e-mail \S+ \((<[^>]+>)\) -> "
)


def mails_committed(log: str) -> dict[str, float]:
    """Message-ID, as the log masks it (`core.storage.privacy.redact`: `<p***@…>`; `mail_id` puts what
    tells the
    mails apart after the @) -> when the service logged its intake (right after the commit; local time)."""
    found = {}
    for line in log.splitlines():
        if m := _TAKEN.match(line):
            found[m[3]] = time.mktime(time.strptime(m[1], "%Y-%m-%d %H:%M:%S")) + int(m[2]) / 1000
    return found


_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (WARNING|ERROR|CRITICAL) ([\w.]+): (.*)$")
_UVICORN_LINE = re.compile(r"^(WARNING|ERROR|CRITICAL):\s+(.*)$")


def log_findings(log: str) -> tuple[list[str], list[str]]:
    """What the service said at start (its own lines), and its warnings and errors grouped, most frequent
    first (numbers, ticket numbers and hex ids folded so that one kind of line counts once)."""
    said, found = [], Counter[tuple[str, str]]()
    tracebacks = 0
    for line in log.splitlines():
        if line.startswith("Traceback"):
            tracebacks += 1
        if m := _LOG_LINE.match(line):
            level, logger, message = m.groups()
        elif m := _UVICORN_LINE.match(line):
            (level, message), logger = m.groups(), "uvicorn"
        else:
            if re.match(r"^(database|channel|staff chats|outbox|web|no \[privacy\])", line):
                said.append(line)
            continue
        message = re.sub(r"\b[0-9a-f]{16,}\b", "<hex>", message)
        message = re.sub(r"\d+", "N", message)
        found[(level, f"{logger}: {message[:150]}")] += 1
    lines = [f"{n:>6} x {level} {what}" for (level, what), n in found.most_common(10)]
    if len(found) > 10:
        lines.append(f"{'':>6}   … and {len(found) - 10} other kinds of warning/error line")
    if tracebacks:
        lines.append(f"{tracebacks:>6} x Traceback")
    return said, lines


# -- metrics and the database afterwards ---------------------------------------------------------------------


@dataclass
class Histogram:
    buckets: list[tuple[float, float]] = field(default_factory=list)  # (le, cumulative count)
    count: float = 0.0
    total: float = 0.0

    def bound(self, q: float) -> float | None:
        """The upper bound of the bucket holding the q-quantile (`inf` past the last bucket)."""
        if not self.count:
            return None
        for le, cumulative in sorted(self.buckets):
            if cumulative >= q * self.count:
                return le
        return math.inf


@dataclass
class Metrics:
    ack: dict[str, Histogram] = field(default_factory=dict)
    intake: dict[str, Histogram] = field(default_factory=dict)
    results: dict[tuple[str, str], float] = field(default_factory=dict)  # (lane, result) -> count


def parse_metrics(exposition: str) -> Metrics:
    metrics = Metrics()
    for family in text_string_to_metric_families(exposition):
        if family.name == "complaintbot_outbox_results":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    key = (sample.labels["channel"], sample.labels["result"])
                    metrics.results[key] = metrics.results.get(key, 0.0) + sample.value
            continue
        target = {
            "complaintbot_acknowledgement_seconds": metrics.ack,
            "complaintbot_intake_seconds": metrics.intake,
        }.get(family.name)
        if target is None:
            continue
        for sample in family.samples:
            histogram = target.setdefault(sample.labels["channel"], Histogram())
            if sample.name.endswith("_bucket"):
                histogram.buckets.append((float(sample.labels["le"]), sample.value))
            elif sample.name.endswith("_count"):
                histogram.count = sample.value
            elif sample.name.endswith("_sum"):
                histogram.total = sample.value
    return metrics


async def outbox_rows(url: str) -> dict[str, str]:
    """Per lane, after the service stopped: `kind status=count …` (passive: WeChat's passive replies)."""
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                text(
                    "SELECT channel, kind, status, count(*),"
                    " sum(CASE WHEN external_ref = 'wechat:passive-reply' THEN 1 ELSE 0 END)"
                    " FROM outbox GROUP BY channel, kind, status ORDER BY channel, kind, status"
                )
            )
            lanes: dict[str, list[str]] = defaultdict(list)
            for channel, kind, status, count, passive in rows:
                extra = f" ({passive} passive)" if passive else ""
                lanes[channel].append(f"{kind} {status}={count}{extra}")
    finally:
        await engine.dispose()
    return {lane: ", ".join(parts) for lane, parts in lanes.items()}


# -- the mailbox, watched from outside -----------------------------------------------------------------------


class UnseenWatch:
    """Polls the mailbox's UNSEEN count (the service flags a message \\Seen after its commit), to time
    the intake of a burst from outside."""

    def __init__(self, server: Dovecot, every: float = 0.1) -> None:
        self.server, self.every = server, every
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="unseen-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        with contextlib.suppress(Exception), self.server.session() as client:
            while not self._stop.is_set():
                _, data = client.status("INBOX", "(UNSEEN)")
                found = (
                    re.search(rb"UNSEEN (\d+)", data[0] or b"")
                    if data and isinstance(data[0], bytes)
                    else None
                )
                if found:
                    self.samples.append((time.time(), int(found[1])))
                self._stop.wait(self.every)

    def all_seen(self) -> float | None:
        return next((at for at, unseen in self.samples if unseen == 0), None)
