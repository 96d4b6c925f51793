"""The voicemail channel inside `complaintbot run`: the spool, the webhook, or both. Nothing is sent
back to a voicemail: staff call the caller (the call-back clock), so it brings no sender."""

from __future__ import annotations

import asyncio
import contextlib

from starlette.routing import BaseRoute

from channels.base import Channel, ChannelError, Offer, Started
from channels.voicemail.capabilities import CAPABILITIES
from channels.voicemail.config import VoicemailConfig
from channels.voicemail.spool import SpoolInbox
from channels.voicemail.webhook import voicemail_webhook


class VoicemailChannel(Channel):
    name = "voicemail"
    capabilities = CAPABILITIES
    config_model = VoicemailConfig
    config: VoicemailConfig

    def __init__(self, config: VoicemailConfig) -> None:
        super().__init__(config)
        self.spool: SpoolInbox | None = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self, offer: Offer) -> Started:
        """The webhook route when a secret or Twilio token is set; the spool loop when a directory is."""
        config = self.config
        routes: list[BaseRoute] = []
        parts: list[str] = []
        if config.secret or config.twilio_auth_token:
            routes.append(
                voicemail_webhook(
                    offer.intake,
                    offer.core,
                    secret=config.secret,
                    twilio_auth_token=config.twilio_auth_token,
                    public_url=config.public_url,
                )
            )
            parts.append("POST /voicemail" + (" (+ Twilio)" if config.twilio_auth_token else ""))
        if config.spool_dir is not None:
            spool = SpoolInbox(config.spool_dir, offer.intake, offer.core, polling=config.polling)
            try:
                spool.ensure_dirs()  # a directory that cannot be made is an error at start, not a silent skip
            except OSError as exc:
                raise ChannelError(str(exc)) from exc
            self.spool = spool
            self._task = asyncio.create_task(spool.run(self._stop), name="voicemail-spool")
            parts.append(f"spool {config.spool_dir}" + (" (polling)" if config.polling else ""))
        return Started(", ".join(parts), routes=routes)

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
