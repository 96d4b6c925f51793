"""`complaintbot run`: the web app, the outbox dispatcher and the scheduler in one process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import uvicorn
from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import Application, build
from bot.channel_run import start_channels
from bot.config import Settings
from bot.web import create_app
from core.classification.classify import classify
from core.delivery.queue import LaneState
from core.privacy.keycheck import check_key
from core.privacy.rekey import seal_clear_text
from core.storage.db import outbox_signal, upgrade
from core.storage.redaction import install
from core.tickets import canned
from scheduler.delivery import Delivery
from scheduler.runner import Schedule, Scheduler
from scheduler.sweep import sweep

log = logging.getLogger(__name__)
SWEEP_EVERY_SECONDS = 60.0


def utc_now() -> datetime:
    return datetime.now(UTC)


async def _address(server: uvicorn.Server) -> str | None:
    """The web app's address once it answers (the port the system chose for port 0), None if it stopped
    first."""
    while not server.started:
        if server.should_exit:
            return None
        await asyncio.sleep(0.05)  # uvicorn offers no event for this
    host, port = server.servers[0].sockets[0].getsockname()[:2]
    return f"http://{host}:{port}"


async def _tell(story: Story, server: uvicorn.Server, application: Application) -> None:
    """Run `story` once the web app answers, then stop the service."""
    try:
        address = await _address(server)
        if address is not None:
            await story(Running(application, address))
    finally:
        server.should_exit = True


async def _announce(server: uvicorn.Server, say: Callable[[str], None]) -> None:
    """With `[web] port = 0` the system picks the port: say which once it is bound."""
    address = await _address(server)
    if address is not None:
        say(f"web: {address} (/healthz, /metrics)")


def listen_dsn(engine: AsyncEngine) -> str | None:
    """Where to LISTEN for the other instances' commits: PostgreSQL only (SQLite has one process)."""
    if engine.dialect.name != "postgresql":
        return None
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


def outbox_report(states: list[LaneState]) -> list[str]:
    """What `run` says of the outbox at start: messages waiting per lane, and why parked ones wait."""
    lines = []
    for state in states:
        waiting = {status: n for status, n in state.counts.items() if n and status != "dead"}
        if not waiting:
            continue
        counts = ", ".join(f"{n} {status}" for status, n in sorted(waiting.items()))
        reasons = "; ".join(state.reasons[:3])
        lines.append(f"outbox {state.lane}: {counts}" + (f" ({reasons})" if reasons else ""))
    return lines


class _Server(uvicorn.Server):
    """uvicorn re-raises SIGINT/SIGTERM after its own shutdown, which cancels our clean-up mid-way (SIGINT)
    or kills the process before it runs (SIGTERM); `serve` handles the signals itself instead."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass(frozen=True)
class Running:
    """The service once it answers: what a story told against it (`complaintbot demo`) may use."""

    application: Application
    web_url: str  # where the web routes answer (a port of 0 in the config: the one given)


Story = Callable[[Running], Awaitable[None]]


async def serve(settings: Settings, *, story: Story | None = None, console: Console | None = None) -> None:
    """Run until SIGINT/SIGTERM, or with `story` until the story ends (its error is raised here)."""
    console = console or Console(stderr=True, soft_wrap=True)  # one line per notice, whatever the width
    application = build(settings, create_key=True)
    # Every log line from here on, uvicorn's included (they go through our handlers: `log_config=None`).
    remove_redaction = install(application.core.redact)

    def say(line: str, style: str | None = None) -> None:
        """A line for the operator's terminal: redacted like the log (a platform's refusal may quote a
        token or an address)."""
        console.print(application.core.redact(line), style=style, markup=False)

    for notice in application.notices:
        say(notice, "yellow")
    try:
        await upgrade(application.engine)
        await check_key(application.core.sessions, application.core.vault, datetime.now(UTC))
        await seal_clear_text(application.core.sessions, application.core.vault, datetime.now(UTC))
        say(f"database: {settings.database_shown()} (migrated)")
        # jieba's dictionary and the policy's keyword patterns take a second or two to load: before the
        # first complaint, not inside WeChat's 5 s passive-reply window.
        await asyncio.to_thread(classify, "老师 teacher", application.core.rules)
        channels = await start_channels(application, say)
        if "staff" not in application.dispatcher.senders:
            say("staff chats: none configured; staff cards and alerts are parked until one is")
        core = application.core
        now = utc_now()
        dispatcher = application.dispatcher
        await dispatcher.prepare(now)  # a new configuration: parked messages get another chance
        try:  # the templates directory's canned replies, for the cards' buttons from the first ticket on
            async with core.sessions() as session, session.begin():
                await canned.sync_file(core, session, now)
        except canned.CannedError as exc:
            say(f"canned replies: {exc}")
        for line in outbox_report(await dispatcher.states(now)):
            say(line)

        async def duties(now: datetime) -> object:
            return await sweep(core, now)

        # Reminders and escalations are minute-grained: a sweep a minute is punctual enough.
        scheduler = Scheduler([Schedule("sweep", duties, SWEEP_EVERY_SECONDS)])
        delivery = Delivery(
            dispatcher, outbox_signal(core.sessions), listen_dsn=listen_dsn(application.engine)
        )
        stop_delivery = asyncio.Event()
        delivering = asyncio.create_task(delivery.run(stop_delivery), name="outbox")
        scheduler.start()
        try:
            web = create_app(core, channels.routes, dispatcher=dispatcher, metrics=application.metrics)
            level = logging.getLogger().getEffectiveLevel()  # [logging] level, --log-level
            web_config = uvicorn.Config(
                web,
                host=settings.web.host,
                port=settings.web.port,
                log_level=level,
                # uvicorn's own handlers would bypass the redaction (and print query strings).
                log_config=None,
                lifespan="off",
            )
            server = _Server(web_config)
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, server.handle_exit, sig, None)
            announcing = None
            if settings.web.port:
                say(f"web: http://{settings.web.host}:{settings.web.port} (/healthz, /metrics)")
            else:
                announcing = asyncio.create_task(_announce(server, say))
            telling = asyncio.create_task(_tell(story, server, application)) if story else None
            try:
                await server.serve()
            finally:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(sig)
                for task in (telling, announcing):  # stopped by a signal: the story ends too
                    if task is not None and not task.done():
                        task.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await task
            if telling is not None:
                telling.result()  # the story's own error, if it had one
        finally:
            scheduler.shutdown()
            # What comes in stops first; the outbox then gets a moment to send what it committed.
            await channels.stop()
            stop_delivery.set()
            await delivering
            await channels.close()
            for sender in dispatcher.senders.values():
                close = getattr(sender, "close", None)
                if close is not None:  # pooled connections (SMTP)
                    await close()
    finally:
        await application.close()
        remove_redaction()
