"""Who to wake when a commit has written outbox rows: the dispatcher, at once, whoever committed.

Every writer of outbox rows marks its session (`written`); a commit of a marked session fires the
session's `OutboxSignal` (carried in `Session.info`, put there by `core.storage.db.session_factory`), from any
thread. On PostgreSQL the same commit also sends `NOTIFY complaintbot_outbox`, inside the transaction,
so the other instances sharing the database hear of it when (and only when) it is committed.

The hook sits on the commit itself rather than in each caller: a staff command, a sweep, a learner's
answer and intake all queue messages, and none of them may leave an acknowledgement waiting for a timer.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

CHANNEL = "complaintbot_outbox"  # the PostgreSQL notification channel
SIGNAL = "complaintbot.outbox_signal"  # Session.info key: the OutboxSignal of this session's database
_WRITTEN = "complaintbot.outbox_written"  # Session.info key: this transaction wrote outbox rows


class OutboxSignal:
    """Callbacks to run after a commit that wrote outbox rows, each on its own event loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listeners: list[tuple[asyncio.AbstractEventLoop, Callable[[], None]]] = []

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Run `callback` on the running loop after every such commit; returns the unsubscriber."""
        entry = (asyncio.get_running_loop(), callback)
        with self._lock:
            self._listeners.append(entry)

        def unsubscribe() -> None:
            with self._lock:
                if entry in self._listeners:
                    self._listeners.remove(entry)

        return unsubscribe

    def fire(self) -> None:
        """Safe from any thread (the SQLite writer commits in its own)."""
        with self._lock:
            listeners = list(self._listeners)
        for loop, callback in listeners:
            if loop.is_closed():
                continue
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:
                callback()
            else:
                loop.call_soon_threadsafe(callback)


def written(session: Session | AsyncSession) -> None:
    """Mark the session's transaction as one that queued messages (see the module docstring)."""
    session.info[_WRITTEN] = True


@event.listens_for(Session, "before_commit")
def _notify_others(session: Session) -> None:
    if session.in_nested_transaction() or not session.info.get(_WRITTEN) or SIGNAL not in session.info:
        return
    bind: Any = session.get_bind()
    if bind.dialect.name == "postgresql":
        # Transactional: delivered to the listeners of every instance at commit, never before it.
        session.connection().exec_driver_sql(f"NOTIFY {CHANNEL}")


@event.listens_for(Session, "after_commit")
def _wake(session: Session) -> None:
    # Releasing a savepoint "commits" too; only the end of the outer transaction makes rows visible.
    if session.in_nested_transaction() or not session.info.pop(_WRITTEN, False):
        return
    signal = session.info.get(SIGNAL)
    if isinstance(signal, OutboxSignal):
        signal.fire()
