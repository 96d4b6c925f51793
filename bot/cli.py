"""The `complaintbot` command line. Bad input: one line on stderr and a non-zero exit."""

from __future__ import annotations

import asyncio
import logging
import os
import tomllib
from datetime import UTC, datetime
from importlib import resources
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Annotated, TypeVar

import typer
import typer.core
import typer.main

from bot.app import Application, build
from bot.cli_base import LOG_LEVELS, State, configure_logging, fail, guarded, out, settings, with_app
from bot.cli_classify import classify_app
from bot.cli_demo import demo_command
from bot.cli_learner import learner_app
from bot.cli_privacy import privacy_app
from bot.cli_report import credit_command, report_command
from bot.cli_staff import staff_app
from bot.cli_sweep import sweep_command
from bot.cli_tickets import tickets_app
from bot.cli_usage import Context, one_line_usage_errors
from bot.config import PrivacyConfig, ServiceConfig
from bot.errors import os_reason
from core.privacy.keycheck import check_key
from core.privacy.rekey import seal_clear_text
from core.rules.policy import DEFAULT_POLICY_TEXT
from core.storage.db import upgrade
from core.storage.privacy import generate_key

T = TypeVar("T")
# The order an operator meets them in; any command not named here comes after, as registered.
COMMAND_ORDER = (
    "init", "run", "demo", "tickets", "staff", "sweep", "report", "credit",
    "learner", "privacy", "classify", "db",
)  # fmt: skip


class _InOrder(typer.core.TyperGroup):
    def list_commands(self, ctx: Context) -> list[str]:
        def place(name: str) -> int:
            return COMMAND_ORDER.index(name) if name in COMMAND_ORDER else len(COMMAND_ORDER)

        return sorted(super().list_commands(ctx), key=place)


app = typer.Typer(
    cls=_InOrder,
    help="complaintbot: learners' complaints from every channel, on one SLA engine.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,  # plain help: no `<bool>` after every flag, and help texts printed as written
)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(tickets_app, name="tickets")
app.add_typer(staff_app, name="staff")
app.add_typer(learner_app, name="learner")
app.add_typer(privacy_app, name="privacy")
app.add_typer(classify_app, name="classify")
app.command("demo")(demo_command)
app.command("sweep")(sweep_command)
app.command("report")(report_command)
app.command("credit")(credit_command)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"complaintbot {package_version('complaintbot')}")
        raise typer.Exit()


@app.callback()
def main_options(
    config: Annotated[
        Path | None,
        typer.Option("--config", help="config file (default: $COMPLAINTBOT_CONFIG or ./complaintbot.toml)"),
    ] = None,
    log_level: Annotated[
        str | None,
        typer.Option(
            "--log-level",
            metavar="LEVEL",
            help="debug, info, warning or error (default: the config's [logging] level, else info)",
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="the same as --log-level debug")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_show_version, is_eager=True, help="print the version and exit"),
    ] = False,
) -> None:
    State.config = config
    if log_level is not None and log_level.lower() not in LOG_LEVELS:
        raise fail(f"unknown --log-level {log_level!r}: use {', '.join(LOG_LEVELS)}")
    State.log_level = "debug" if verbose else (log_level.lower() if log_level else None)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    configure_logging(State.log_level or "info")  # the config's level, once read, unless given here


@app.command()
def init(
    directory: Annotated[Path, typer.Option("--dir", help="where to write the files")] = Path("."),
    force: Annotated[bool, typer.Option("--force", help="overwrite existing files")] = False,
) -> None:
    """Write a commented example config and policy file, and create the database."""
    config_file, policy_file = directory / "complaintbot.toml", directory / "policy.toml"
    for path in (config_file, policy_file):
        if path.exists() and not force:
            raise fail(f"{path} exists; use --force to overwrite it")
    example = resources.files("bot").joinpath("example_config.toml").read_text(encoding="utf-8")
    if directory.exists() and not directory.is_dir():
        raise fail(f"{directory} is not a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise fail(f"cannot create {directory}: {os_reason(exc)}") from None
    # A key that data may already be written with is never replaced: --force keeps it.
    key = ",".join(_existing_keys(config_file)) or generate_key()
    for path, text in (
        (config_file, example.replace("@PRIVACY_KEY@", key)),
        (policy_file, DEFAULT_POLICY_TEXT),
    ):
        # The config holds the privacy key: created readable by its owner only, never for a moment more.
        mode = 0o600 if path == config_file else 0o644
        try:
            with os.fdopen(
                os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "w", encoding="utf-8"
            ) as f:
                f.write(text)
            path.chmod(mode)  # an existing file (--force) keeps its old mode through O_CREAT
        except OSError as exc:
            raise fail(f"cannot write {path}: {os_reason(exc)}") from None
    State.config = config_file
    loaded = settings()
    # Relative paths in the config are relative to where the service runs; init writes for `directory`.
    loaded.service.var_dir = directory / loaded.service.var_dir
    if loaded.policy.file is not None:
        loaded.policy.file = directory / loaded.policy.file

    async def main() -> None:
        application = build(loaded, create_key=False)
        try:
            await upgrade(application.engine)
            await check_key(application.core.sessions, application.core.vault, datetime.now(UTC))
        finally:
            await application.close()

    guarded(lambda: asyncio.run(main()))
    out.print(
        f"wrote {config_file} and {policy_file}; database ready at {loaded.database_shown()}",
        soft_wrap=True,
        markup=False,
    )


def _existing_keys(config_file: Path) -> list[str]:
    """The privacy keys an existing config file names, or its service's key file holds (none: a new
    install). Read from the file alone: a key given by environment variable stays out of the file."""
    if not config_file.exists():
        return []
    try:
        data = tomllib.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise fail(f"{config_file} exists but cannot be read ({exc}): move it away to start afresh") from None
    keys = PrivacyConfig(key=data.get("privacy", {}).get("key")).keys()
    var_dir = Path(str(data.get("service", {}).get("var_dir", ServiceConfig().var_dir)))
    key_file = (var_dir if var_dir.is_absolute() else config_file.parent / var_dir) / "privacy.key"
    if not keys and key_file.exists():
        keys = [k.strip() for k in key_file.read_text(encoding="ascii").split(",") if k.strip()]
    return keys


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending database migrations."""

    async def action(application: Application) -> None:
        await upgrade(application.engine)
        await check_key(application.core.sessions, application.core.vault, datetime.now(UTC))
        # Texts earlier versions stored in clear (summaries, outbox messages): encrypted, once.
        await seal_clear_text(application.core.sessions, application.core.vault, datetime.now(UTC))

    with_app(action, create_key=True, migrated=False)
    out.print("database is up to date")


@app.command()
def run() -> None:
    """Run the service: web routes, channels, outbox and scheduler."""
    from bot.service import serve

    guarded(lambda: asyncio.run(serve(settings())))


def main() -> None:
    one_line_usage_errors(typer.main.get_command(app), "complaintbot")
