"""What every `complaintbot` command shares: settings, the application, one-line errors."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import typer
from rich.console import Console

from bot.app import Application, build
from bot.config import ConfigError, Settings, load_settings
from bot.errors import USER_ERRORS, explain
from core.privacy.keycheck import check_key
from core.storage.db import current_revision
from core.storage.redaction import install

T = TypeVar("T")

# Learners' words reach the terminal: whatever holds data is printed as Text or with markup=False, and
# :emoji: codes stay as typed.
out = Console(emoji=False)


LOG_LEVELS = ("debug", "info", "warning", "error")
# Libraries that say at INFO what only a developer needs (apscheduler: a line per pass of every job).
CHATTY_LOGGERS = ("apscheduler", "alembic", "fontTools", "watchfiles", "aiosqlite", "asyncio")


class State:
    config: Path | None = None
    log_level: str | None = None  # --log-level / --verbose: wins over [logging] level
    settings: Settings | None = None  # the last loaded: whose database an error is about


def fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=2)


def guarded(work: Callable[[], T]) -> T:
    try:
        return work()
    except USER_ERRORS as exc:
        message = explain(exc, State.settings, State.config)
        if message is None:
            raise  # a bug: its traceback is what a fix needs
        raise fail(message) from None


def settings() -> Settings:
    State.settings = guarded(lambda: load_settings(State.config))
    if State.log_level is None:
        configure_logging(State.settings.logging.level)
    return State.settings


def configure_logging(level: str) -> None:
    """The root level, and the chatty libraries one step quieter unless debugging."""
    logging.getLogger().setLevel(level.upper())
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if level == "debug" else logging.WARNING)
    # httpx logs every request URL at INFO, and a Bot API URL contains the bot's token: never.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def with_app(
    action: Callable[[Application], Awaitable[T]], *, create_key: bool = False, migrated: bool = True
) -> T:
    async def main() -> T:
        application = build(settings(), create_key=create_key)
        remove_redaction = install(application.core.redact)  # what the command logs, as `run` does
        for notice in application.notices:  # e.g. a privacy key was just generated: the operator must know
            typer.echo(notice, err=True)
        try:
            if migrated and await current_revision(application.engine) is None:
                raise ConfigError("the database has no tables yet: run `complaintbot db upgrade` first")
            if migrated:
                await check_key(application.core.sessions, application.core.vault, datetime.now(UTC))
            return await action(application)
        finally:
            await application.close()
            remove_redaction()

    return guarded(lambda: asyncio.run(main()))
