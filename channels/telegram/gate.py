"""Webhook updates in order per chat, and never stuck: what long polling gets for free.

Telegram pushes webhook updates over several connections at once, so two messages a learner sent a
second apart may be handled side by side and committed the wrong way round ("/new" after the text it
was meant for). Here one chat's updates are handled one at a time, and when several wait, the lowest
`update_id` (Telegram's own order) goes first. And an update that keeps failing is not answered 500 for
ever (Telegram would redeliver it for a day and hold back the chat): after `max_failures` tries it is
kept raw for staff (`give_up`) and answered 200, as the poller does.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

Handler = Callable[[Mapping[str, Any]], Awaitable[None]]
GiveUp = Callable[[Mapping[str, Any], Exception], Awaitable[None]]
_REMEMBERED = 10_000  # failing updates counted at once; the oldest count is forgotten past this


@dataclass
class _Chat:
    busy: bool = False
    waiting: list[tuple[int, int, asyncio.Future[None]]] = field(default_factory=list)


def chat_of(update: Mapping[str, Any]) -> object:
    """The chat an update belongs to (a learner's private chat, a staff group), else its own id."""
    for kind in ("message", "edited_message", "channel_post"):
        body = update.get(kind)
        if isinstance(body, Mapping) and isinstance(body.get("chat"), Mapping):
            return body["chat"].get("id")
    query = update.get("callback_query")
    if isinstance(query, Mapping):
        message = query.get("message")
        if isinstance(message, Mapping) and isinstance(message.get("chat"), Mapping):
            return message["chat"].get("id")
        if isinstance(query.get("from"), Mapping):
            return query["from"].get("id")
    return ("update", update.get("update_id"))


class UpdateGate:
    def __init__(self, handle: Handler, give_up: GiveUp | None = None, *, max_failures: int = 5) -> None:
        self.handle = handle
        self.give_up = give_up
        self.max_failures = max_failures
        self._chats: dict[object, _Chat] = {}
        self._failures: dict[object, int] = {}
        self._order = itertools.count()  # ties (no update_id) keep their arrival order

    async def __call__(self, update: Mapping[str, Any]) -> None:
        """Handle one update in its chat's turn. Returns when it is done with (handled, or kept for
        staff after too many tries); raises when Telegram should deliver it again."""
        chat = chat_of(update)
        update_id = update.get("update_id")
        await self._turn(chat, update_id if isinstance(update_id, int) else -1)
        try:
            await self._handle(update, update_id)
        finally:
            self._release(chat)

    async def _handle(self, update: Mapping[str, Any], update_id: object) -> None:
        try:
            await self.handle(update)
        except Exception as exc:
            tries = self._failures.pop(update_id, 0) + 1
            if self.give_up is None or tries < self.max_failures:
                if len(self._failures) >= _REMEMBERED:
                    self._failures.pop(next(iter(self._failures)))
                self._failures[update_id] = tries
                raise
            log.error("telegram update %s failed %d times; kept for staff: %s", update_id, tries, exc)
            await self.give_up(update, exc)
        else:
            self._failures.pop(update_id, None)

    async def _turn(self, chat: object, update_id: int) -> None:
        state = self._chats.setdefault(chat, _Chat())
        if not state.busy:
            state.busy = True
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (update_id, next(self._order), turn)
        heapq.heappush(state.waiting, entry)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self._release(chat)  # the turn was handed to us just as we were cancelled: pass it on
            elif entry in state.waiting:
                state.waiting.remove(entry)
                heapq.heapify(state.waiting)
            raise

    def _release(self, chat: object) -> None:
        state = self._chats[chat]
        while state.waiting:
            _, _, turn = heapq.heappop(state.waiting)
            if not turn.done():
                turn.set_result(None)  # handed over: the chat stays busy
                return
        del self._chats[chat]
