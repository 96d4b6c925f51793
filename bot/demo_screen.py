"""What `complaintbot demo` shows: the learners' conversations and the staff chat side by side, a row per
message with the service's clock, and what the stand-ins received from the bot as it arrives.

Every learner's or bot's text is printed as Text, never as markup. The screen only shows: the story's
outcome is in the database, and the stand-ins are read, not changed.
"""

from __future__ import annotations

import asyncio
import email.policy
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from email.message import EmailMessage
from typing import Any

from rich.console import Console
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from standins.botapi import BotApiServer
from standins.smtp import Recorder
from standins.wechatapi import WechatApiServer

LEARNER_STYLE, BOT_STYLE, STAFF_STYLE, NOTE_STYLE = "cyan", "green", "magenta", "dim"
MAX_LINES = 6  # of one message: enough to read a card or an acknowledgement, not a wall of text


def _cut(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return "\n".join(lines[:MAX_LINES]) + ("\n…" if len(lines) > MAX_LINES else "")


@dataclass
class Screen:
    console: Console
    tz: tzinfo
    speed: float = 1.0
    # The service's time once the story moves it forward; until then the wall clock's.
    moved_to: datetime | None = None
    # Who is who at the stand-ins: chat ids, openids and addresses to the names shown.
    names: dict[str, str] = field(default_factory=dict)
    staff_chats: dict[int, str] = field(default_factory=dict)
    staff_names: set[str] = field(default_factory=set)

    async def beat(self, seconds: float = 1.0) -> None:
        """A pause for the reader; nothing waits on it (every step waits for what it needs)."""
        if self.speed > 0 and seconds / self.speed >= 0.01:
            await asyncio.sleep(seconds / self.speed)

    def scene(self, title: str) -> None:
        self.console.print()
        self.console.print(Rule(Text(title, style="bold"), align="left"))

    def note(self, text: str) -> None:
        self.console.print(Text(text, style=NOTE_STYLE))

    def now(self) -> datetime:
        return self.moved_to or datetime.now(self.tz)

    def time_jump(self, text: str, now: datetime) -> None:
        self.moved_to = now
        self.console.print(Text(f"⏩ {text} → {self._when(now, full=True)}", style="bold yellow"))

    def learner(self, who: str, channel: str, text: str) -> None:
        self._row(Text.assemble((f"{who} via {channel}\n", f"bold {LEARNER_STYLE}"), text), None)

    def to_learner(self, who: str, channel: str, text: str) -> None:
        self._row(Text.assemble((f"bot → {who} ({channel})\n", f"bold {BOT_STYLE}"), _cut(text)), None)

    def staff(self, who: str, chat: str, text: str) -> None:
        self._row(None, Text.assemble((f"{who} in {chat}\n", f"bold {STAFF_STYLE}"), text))

    def to_staff(self, chat: str, text: str) -> None:
        self._row(None, Text.assemble((f"bot → {chat}\n", f"bold {BOT_STYLE}"), _cut(text)))

    def _when(self, at: datetime, *, full: bool = False) -> str:
        local = at.astimezone(self.tz)
        return local.strftime("%a %m-%d %H:%M" if full else "%m-%d %H:%M")

    def _row(self, left: Text | None, right: Text | None) -> None:
        grid = Table.grid(expand=True, padding=(0, 1))
        grid.add_column(width=11, style=NOTE_STYLE)
        grid.add_column(ratio=1, overflow="fold")
        grid.add_column(ratio=1, overflow="fold")
        grid.add_row(Text(self._when(self.now())), left or Text(""), right or Text(""))
        self.console.print(grid)

    def header(self, left: str, right: str) -> None:
        grid = Table.grid(expand=True, padding=(0, 1))
        grid.add_column(width=11)
        grid.add_column(ratio=1, overflow="fold")
        grid.add_column(ratio=1, overflow="fold")
        grid.add_row(
            Text("clock", style="bold"),
            Text(left, style="bold underline"),
            Text(right, style="bold underline"),
        )
        self.console.print(grid)


@dataclass
class Watcher:
    """Shows what the bot sent to the stand-ins since the last look, each once."""

    screen: Screen
    botapi: BotApiServer
    wechat: WechatApiServer
    smtp: Recorder
    desk_domain: str
    # The service's own scheduler sends last month's report on its day, about a month this throwaway
    # database has no complaints in: documents are shown once the story turns to its own report.
    documents: bool = False
    _seen: dict[str, int] = field(default_factory=lambda: {"telegram": 0, "wechat": 0, "email": 0})

    def show_new(self) -> None:
        calls = self.botapi.calls
        for call in calls[self._seen["telegram"] :]:
            if call.ok and (
                call.method == "sendMessage" or (call.method == "sendDocument" and self.documents)
            ):
                self._telegram(call.params, call.method)
        self._seen["telegram"] = len(calls)
        custom = self.wechat.custom_messages
        for body in custom[self._seen["wechat"] :]:
            text = str(body.get("text", {}).get("content", ""))
            self.screen.to_learner(self._name(str(body.get("touser"))), "WeChat", text)
        self._seen["wechat"] = len(custom)
        received = self.smtp.received
        for mail in received[self._seen["email"] :]:
            self._mail(mail.rcpt_tos, mail.content)
        self._seen["email"] = len(received)

    def _name(self, key: str) -> str:
        return self.screen.names.get(key, key)

    def _telegram(self, params: dict[str, Any], method: str) -> None:
        chat = params.get("chat_id")
        text = str(params.get("text") or params.get("caption") or "")
        if method == "sendDocument":
            text = f"📎 {self._document_name(params)}\n{text}"
        if isinstance(chat, int) and chat in self.screen.staff_chats:
            self.screen.to_staff(self.screen.staff_chats[chat], text)
        elif self._name(str(chat)) in self.screen.staff_names:  # a private word to a staff member
            self.screen.to_staff(f"{self._name(str(chat))} (private)", text)
        else:
            self.screen.to_learner(self._name(str(chat)), "Telegram", text)

    @staticmethod
    def _document_name(params: dict[str, Any]) -> str:
        document = params.get("document")
        # The stand-in records an uploaded file as a mapping (its filename, type and size).
        name = document.get("filename") if isinstance(document, dict) else getattr(document, "filename", None)
        return str(name or "document")

    def _mail(self, rcpt_tos: list[str], content: bytes) -> None:
        parsed = email.message_from_bytes(content, policy=email.policy.default)
        body = parsed.get_body(("plain",)) if isinstance(parsed, EmailMessage) else None
        text = body.get_content() if isinstance(body, EmailMessage) else ""
        subject = str(parsed.get("Subject", ""))
        for rcpt in rcpt_tos:
            if rcpt.lower().endswith("@" + self.desk_domain):
                self.screen.to_staff(rcpt, f"{subject}\n{text}")
            else:
                self.screen.to_learner(self._name(rcpt.lower()), "e-mail", f"{subject}\n{text}")
