"""Starting and stopping the voicemail channel inside `complaintbot run`: the spool, the webhook, or both."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from starlette.routing import BaseRoute

from bot.app import Application
from bot.config import Settings
from bot.voicemail_web import voicemail_webhook
from channels.voicemail.spool import SpoolInbox


@dataclass
class VoicemailRuntime:
    routes: list[BaseRoute]
    summary: str
    spool: SpoolInbox | None = None
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    async def close(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def start_voicemail(application: Application, settings: Settings) -> VoicemailRuntime:
    """The webhook route when a secret or Twilio token is set; the spool loop when a directory is."""
    config = settings.channels.voicemail
    routes: list[BaseRoute] = []
    parts: list[str] = []
    if config.secret or config.twilio_auth_token:
        routes.append(
            voicemail_webhook(
                application.intake,
                application.core,
                secret=config.secret,
                twilio_auth_token=config.twilio_auth_token,
                public_url=config.public_url,
            )
        )
        parts.append("POST /voicemail" + (" (+ Twilio)" if config.twilio_auth_token else ""))
    runtime = VoicemailRuntime(routes, "")
    if config.spool_dir is not None:
        spool = SpoolInbox(config.spool_dir, application.intake, application.core, polling=config.polling)
        spool.ensure_dirs()  # a directory that cannot be made is an error at start, not a silent skip
        runtime.spool = spool
        runtime._task = asyncio.create_task(spool.run(runtime._stop), name="voicemail-spool")
        parts.append(f"spool {config.spool_dir}" + (" (polling)" if config.polling else ""))
    runtime.summary = ", ".join(parts)
    return runtime
