"""`complaintbot demo`: the whole story offline, on this machine, with no credentials.

The service is `run`'s own (`bot.service.serve`) on a throwaway SQLite database, its configuration a
file like any operator's; the platforms are the local stand-ins of `standins/` (the Telegram Bot API, the
WeChat API, an SMTP server), the complaint mailbox a Maildir and the hotline's voicemail a spool
directory. `--keep DIR` leaves all of it behind, to look at with `tickets list` and `tickets show`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console
from rich.table import Column, Table
from rich.text import Text
from sqlalchemy import select

from bot.cli_base import State, configure_logging, fail, guarded
from bot.config import load_settings
from bot.demo_screen import Screen, Watcher
from bot.demo_stage import DEPARTMENT_CHATS, DESK_DOMAIN, WECHAT_TOKEN, World
from bot.demo_story import Story
from bot.service import Running, serve
from core.storage.models import Ticket
from core.storage.privacy import generate_key
from standins.botapi import BotApiServer
from standins.smtp import Recorder, run_smtp
from standins.wechatapi import WechatApiServer

BOT_TOKEN = "7000000001:demo-token-not-a-real-one"
WECHAT_APP_ID, WECHAT_SECRET = "wxdemo0000000001", "demo-app-secret"
MAILBOX = "complaints@school.example.cn"
INTRO = {
    "zh": "complaintbot 演示：真实的服务，本机的 Telegram、微信、邮件和语音信箱替身，"
    "一次性的 SQLite 数据库。",
    "en": "complaintbot demo: the real service, local stand-ins of Telegram, WeChat, e-mail and voicemail, "
    "a throwaway SQLite database.",
}


def run_demo(lang: str, speed: float, keep: Path | None, svg: Path | None) -> None:
    """Watch the whole story offline in about a minute: complaints on four channels, staff at work, the
    clock moved forward for reminders and escalations, the month's report."""
    if lang not in ("zh", "en"):
        raise fail(f"unknown --lang {lang!r}: use zh or en")
    if speed < 0:
        raise fail(f"--speed {speed} is negative: use 1 for the normal pace, 0 for no pauses")
    if keep is not None and keep.exists() and (not keep.is_dir() or any(keep.iterdir())):
        raise fail(f"--keep {keep}: not an empty directory; name a new one")
    console = Console(record=svg is not None, emoji=False, highlight=False)
    with _directory(keep) as directory:
        guarded(lambda: asyncio.run(_main(directory, lang, speed, console)))
        if keep is not None:
            config = directory / "complaintbot.toml"
            console.print()
            console.print(Text(f"kept in {directory}: look with"))
            console.print(Text(f"  complaintbot --config {config} tickets list --status all"))
            console.print(Text(f"  complaintbot --config {config} tickets show NUMBER"))
    if svg is not None:
        try:
            console.save_svg(str(svg), title="complaintbot demo")
        except OSError as exc:
            raise fail(f"cannot write {svg}: {exc.strerror}") from None


@contextlib.contextmanager
def _directory(keep: Path | None) -> Iterator[Path]:
    if keep is not None:
        try:
            keep.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise fail(f"cannot create {keep}: {exc.strerror}") from None
        yield keep.resolve()
        return
    with tempfile.TemporaryDirectory(prefix="complaintbot-demo-") as name:
        yield Path(name)


@contextlib.contextmanager
def _no_environment_overrides() -> Iterator[None]:
    """The demo's config is the whole truth: a COMPLAINTBOT_DATABASE__URL meant for the real service
    must not point the demo at the real database."""
    saved = {name: value for name, value in os.environ.items() if name.upper().startswith("COMPLAINTBOT_")}
    for name in saved:
        del os.environ[name]
    try:
        yield
    finally:
        os.environ.update(saved)


def _toml(value: object) -> str:
    """A TOML basic string: a path with a quote or a backslash in it must not break the config."""
    return json.dumps(str(value), ensure_ascii=False)


def write_config(directory: Path, lang: str, botapi: str, wechat: str, smtp_port: int) -> Path:
    config = directory / "complaintbot.toml"
    departments = "".join(
        f"[departments.{key}]\ntelegram_chat_id = {chat}\n\n" for key, chat in DEPARTMENT_CHATS.items()
    )
    text = f"""# Written by `complaintbot demo`: the service against local stand-ins of every platform.
[service]
var_dir = {_toml(directory / "var")}

[database]
url = {_toml(f"sqlite+aiosqlite:///{directory / 'complaintbot.db'}")}

[web]
port = 0  # any free port

[privacy]
key = "{generate_key()}"

[staff]
locale = "{lang}"

[channels.telegram]
token = "{BOT_TOKEN}"
base_url = "{botapi}"
staff_chat_id = -1000
manager_chat_id = -1009

{departments}
[channels.wechat]
token = "{WECHAT_TOKEN}"
app_id = "{WECHAT_APP_ID}"
app_secret = "{WECHAT_SECRET}"
api_base_url = "{wechat}"

[channels.email]
maildir = {_toml(directory / "mailbox")}
imap_poll_seconds = 0.2
smtp_host = "127.0.0.1"
smtp_port = {smtp_port}
smtp_tls = "none"
from_address = "{MAILBOX}"

[channels.voicemail]
spool_dir = {_toml(directory / "voicemail")}
"""
    config.write_text(text, encoding="utf-8")
    config.chmod(0o600)  # it holds the privacy key
    return config


async def _main(directory: Path, lang: str, speed: float, console: Console) -> None:
    # The screen is the demo's output: the service's own log would only interleave with it.
    if State.log_level is None:  # unless asked for with --log-level
        configure_logging("error")
    console.print(Text(INTRO[lang], style="bold"))
    recorder = Recorder()
    with run_smtp(recorder) as smtp, _no_environment_overrides():
        async with (
            BotApiServer(token=BOT_TOKEN, bot_username="complaintbot_demo_bot") as botapi,
            WechatApiServer(app_id=WECHAT_APP_ID, app_secret=WECHAT_SECRET) as wechat,
        ):
            config = write_config(directory, lang, botapi.base_url, wechat.url, smtp.port)
            settings = load_settings(config)
            world = World(botapi, wechat, directory / "mailbox", directory / "voicemail", MAILBOX)

            async def story(running: Running) -> None:
                tz = running.application.core.calendar.tz
                screen = Screen(console, tz, speed=speed)
                watcher = Watcher(screen, botapi, wechat, recorder, DESK_DOMAIN)
                told = Story(running, world, screen, watcher, lang)
                await told.tell()
                await _epilogue(running, console)

            await serve(settings, story=story, console=Console(stderr=True, quiet=True))


async def _epilogue(running: Running, console: Console) -> None:
    """Where every ticket ended, from the database."""
    table = Table(
        Column("number", no_wrap=True),
        "channel",
        "department",
        "status",
        "score",
        "second instance of",
        title="tickets",
    )
    async with running.application.core.sessions() as session:
        tickets = (await session.scalars(select(Ticket).order_by(Ticket.id))).all()
        numbers = {t.id: t.number for t in tickets}
        for t in tickets:
            table.add_row(
                Text(t.number),
                Text(t.channel),
                Text(t.department),
                Text(t.status),
                Text(str(t.satisfaction or "")),
                Text(numbers.get(t.parent_id, "") if t.parent_id else ""),
            )
    console.print()
    console.print(table)
