"""Turning what an operator can fix into one line: our own refusals, and database and file errors.

Anything else is a bug and keeps its traceback: that is what a fix needs.
"""

from __future__ import annotations

import os
import traceback
from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, InvalidRequestError, NoSuchModuleError, OperationalError

from bot.config import ConfigError, Settings, config_path
from core.rules.policy import PolicyError
from core.storage.db import normalize_url
from core.storage.numbers import InvalidTicketNumber
from core.storage.privacy import PrivacyKeyError
from core.tickets.queries import TicketNotFound
from core.tickets.staff import StaffError
from core.tickets.workflow import WorkflowError

# Our own refusals: their message is the line to print.
OWN_ERRORS = (
    ConfigError,
    PolicyError,
    PrivacyKeyError,
    InvalidTicketNumber,
    TicketNotFound,
    WorkflowError,
    StaffError,
)
# What a configured database URL that cannot work raises, from parsing it to loading its driver.
URL_ERRORS = (ArgumentError, NoSuchModuleError, InvalidRequestError, ImportError, ValueError)
# Errors a user can cause; anything else is a bug and keeps its traceback. The ones that bugs can raise
# too (a SQL error with its statement, an ArgumentError while the URL is fine) are told apart by `explain`.
USER_ERRORS = (*OWN_ERRORS, *URL_ERRORS, DBAPIError, OperationalError, OSError)
DATABASE_MODULES = ("sqlalchemy.", "asyncpg", "aiosqlite", "core.storage.db")
SAMPLE_URLS = "e.g. postgresql://user:password@host/dbname or sqlite:///var/complaintbot.db"


def explain(exc: BaseException, settings: Settings | None, config: Path | None) -> str | None:
    """The one line for an error the user can fix, or None when `exc` is a bug."""
    if isinstance(exc, OWN_ERRORS):
        return str(exc)
    if isinstance(exc, URL_ERRORS):
        problem = database_url_problem(settings, config)
        if problem is not None:
            return problem
        # With a usable URL these come from our code, except a ValueError (bad input).
        return str(exc) if isinstance(exc, ValueError) else None
    database = database_shown(settings)
    if isinstance(exc, DBAPIError):
        reason = first_line(exc.orig)
        if exc.statement is None:  # raised while connecting: address, credentials, database name
            return f"cannot connect to the database {database}: {reason}"
        if isinstance(exc, OperationalError):  # e.g. the server went away, the file is locked
            return f"database error on {database}: {reason}"
        return None  # IntegrityError, ProgrammingError... with a statement: our SQL is wrong
    if isinstance(exc, OSError):
        reason = os_reason(exc)
        if raised_by_database_code(exc):
            if exc.filename:  # SQLite: its file or directory
                return f"cannot open the database {database}: {exc.filename}: {reason}"
            return f"cannot reach the database {database}: {reason}"
        return f"{exc.filename}: {reason}" if exc.filename else (str(exc) or type(exc).__name__)
    return None


def database_url_problem(settings: Settings | None, config: Path | None) -> str | None:
    """Why the configured database URL cannot work, or None if it can (as far as is checked here)."""
    if settings is None:
        return None
    raw = settings.database_url()
    try:
        url = make_url(raw)
        engine_url = make_url(normalize_url(raw))
    except (ArgumentError, ValueError):
        # Not parsed, so the password cannot be hidden: say where the URL came from instead of showing it.
        where = (
            "COMPLAINTBOT_DATABASE__URL"
            if any(name.upper() == "COMPLAINTBOT_DATABASE__URL" for name in os.environ)
            else f"[database] url in {config_path(config)}"
        )
        return f"{where} is not a valid database URL ({SAMPLE_URLS})"
    shown = hidden(url)
    try:
        dialect = engine_url.get_dialect()
    except NoSuchModuleError:
        return f"unknown database driver {url.drivername!r} in {shown}: use postgresql:// or sqlite:///"
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        return f"the database driver for {shown} is not installed ({exc})"
    if not dialect.is_async:
        return f"the database driver for {shown} does not support asyncio: use postgresql:// or sqlite:///"
    return None


def hidden(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def database_shown(settings: Settings | None) -> str:
    if settings is None:
        return "(unknown)"
    try:
        return settings.database_shown()
    except (ArgumentError, ValueError):
        return "(not a valid URL)"


def first_line(error: BaseException | None) -> str:
    text = str(error).strip() if error is not None else ""
    return text.splitlines()[0] if text else type(error).__name__


def os_reason(exc: OSError) -> str:
    """`connection refused`, `name or service not known`, `timed out`..."""
    if isinstance(exc, TimeoutError) and not exc.strerror:
        return "timed out"
    if exc.errno and exc.errno > 0 and isinstance(exc, ConnectionError):
        # asyncio's "Connect call failed ('127.0.0.1', 1)" says less than the errno does.
        text = os.strerror(exc.errno)
    else:
        text = exc.strerror or str(exc) or type(exc).__name__
    return text[:1].lower() + text[1:]


def raised_by_database_code(exc: BaseException) -> bool:
    """Raised while SQLAlchemy or a database driver ran: the network or the database file."""
    return any(
        frame.f_globals.get("__name__", "").startswith(DATABASE_MODULES)
        for frame, _ in traceback.walk_tb(exc.__traceback__)
    )
