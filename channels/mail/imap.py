"""The complaint mailbox over IMAP (aioimaplib): read, take in, and only then mark done.

Messages are fetched with `BODY.PEEK[]`, which sets no flag; one gets `\\Seen` (or moves to `done_folder`)
only after intake committed it, so a crash anywhere leaves it unseen and the repeat is a no-op (intake
dedupes on the Message-ID). A pass takes the unseen messages and any above the last UID taken (a person
may have read one first); after a UIDVALIDITY change the whole folder is read once. Every network wait
is bounded and a dropped link fails the command at once; `run()` reconnects with backoff and jitter,
waits in IDLE where the server has it, else polls, and holds a lease so that one instance reads.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import aioimaplib

from channels.mail.imap_connection import HEADER_ITEMS, ImapAccount, ImapConnection, ImapError
from channels.mail.parse import BATCH_BYTES, MAX_BYTES
from channels.mail.prepared import Mail, MailReport, prepare_off_loop
from channels.mail.read_loop import ReadLease, keep_reading, pause
from channels.mail.reader import MailReader
from core.storage.state import get_state, hold_lease, set_state

log = logging.getLogger(__name__)
_EXPECTED = (ImapError, aioimaplib.AioImapException, OSError, TimeoutError)  # logged without a traceback


class ImapSource:
    def __init__(
        self,
        account: ImapAccount,
        reader: MailReader,
        *,
        holder: str | None = None,
        clock: Callable[[], datetime] | None = None,
        poll_seconds: float = 60.0,
        idle: bool = True,
        timeout: float = 30.0,
        batch: int = 100,
        batch_bytes: int = BATCH_BYTES,
        max_bytes: int = MAX_BYTES,
        lease_ttl: timedelta = timedelta(seconds=90),
    ) -> None:
        self.account, self.reader, self.sessions = account, reader, reader.core.sessions
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.clock = clock or (lambda: datetime.now(UTC))
        self.poll_seconds, self.idle, self.timeout, self.batch = poll_seconds, idle, timeout, batch
        self.lease_ttl = lease_ttl
        self.batch_bytes, self.max_bytes = batch_bytes, max_bytes
        self.state_key = _key("email:imap:", account.name)
        self.lease = _key("email:imap-reader:", account.name)
        self.connection: ImapConnection | None = None
        self._renew: Callable[[], Awaitable[bool]] | None = None  # set by run(): the lease, kept
        self._stop: asyncio.Event | None = None  # set by run(): a long pass ends at a batch's end

    async def fetch_once(self, now: datetime) -> MailReport:
        """One pass: take every waiting message; stops early (and reports `left`) when intake fails."""
        connection = await self._connected()
        uidvalidity, uidnext = await connection.select()
        last = await self._last_uid(uidvalidity, uidnext, now)
        unseen = await connection.search("UNSEEN")
        above = [uid for uid in await connection.search(f"UID {last + 1}:*") if uid > last]
        uids = sorted(set(unseen) | set(above))
        report = MailReport()
        for start in range(0, len(uids), self.batch):
            if start and self._stop is not None and self._stop.is_set():
                report.left += len(uids) - start  # shutting down: the rest is read at the next start
                break
            if start and self._renew is not None and not await self._renew():
                # A long backlog pass outlived the lease: another instance may read now; stop here.
                report.left += len(uids) - start
                break
            chunk = uids[start : start + self.batch]
            sizes = await connection.sizes(chunk)
            done = 0
            for group, oversize in _groups(chunk, sizes, self.batch_bytes, self.max_bytes):
                part, missing = await self._take(connection, group, sizes if oversize else None, now)
                report.add(part)
                done += len(group)
                # Not done and not gone (another instance moved it away): waiting for the next pass.
                reached = missing[0] - 1 if missing else group[-1]
                if reached > last:
                    last = reached
                    await set_state(self.sessions, self.state_key, f"{uidvalidity}:{last}", now)
                if missing:  # intake is failing: the rest waits for the next pass, after a backoff
                    report.left += len(uids) - start - done
                    return report
        return report

    async def _take(
        self, connection: ImapConnection, uids: list[int], oversize: dict[int, int] | None, now: datetime
    ) -> tuple[MailReport, list[int]]:
        """Fetch and take in one group of messages; what was done, and the UIDs left waiting. An
        oversize mail (`oversize`: the sizes) is kept for staff from its header alone, never downloaded."""
        if oversize is None:
            fetched = await connection.fetch(uids)
            mails = [await prepare_off_loop(str(u), raw, at or now) for u, at, raw in fetched]
        else:
            fetched = await connection.fetch(uids, HEADER_ITEMS)
            mails = [_too_large(u, head, oversize.get(u, 0), self.max_bytes) for u, _, head in fetched]
        part = await self.reader.take_all(mails, now)
        if part.done:
            await self.mark_done([int(ref) for ref in part.done])
        return part, sorted({uid for uid, _, _ in fetched} - {int(ref) for ref in part.done})

    async def mark_done(self, uids: list[int]) -> None:
        """Flag (or move) messages whose intake has committed."""
        assert self.connection is not None
        await self.connection.mark_done(uids)

    async def run(self, stop: asyncio.Event) -> None:
        """Read until `stop` is set; reconnect with backoff and jitter whatever fails."""
        wait = min(self.poll_seconds, self.lease_ttl.total_seconds() / 3)  # the lease is renewed in time

        async def step() -> bool:
            report = await self.fetch_once(self.clock())
            if report.left:
                return False
            if report.taken or report.kept:
                # Mail that arrived during this pass was announced to its commands, not to an IDLE
                # that starts afterwards: look again at once rather than wait for the next push. (Not
                # after mere repeats: a mailbox that cannot keep `\Seen` would be read again and again.)
                return True
            if self.idle and self.connection is not None and self.connection.has("IDLE"):
                await self.connection.idle(stop, wait)
            else:
                await pause(stop, wait)
            return True

        lease = ReadLease(self.sessions, self.lease, self.holder, self.lease_ttl, self.clock)

        async def renew() -> bool:  # between batches of one pass, so a long pass keeps the lease
            return await hold_lease(self.sessions, self.lease, self.holder, self.clock(), self.lease_ttl)

        self._renew, self._stop = renew, stop
        name = f"imap {self.account.name}"
        await keep_reading(name, step, stop, reset=self.close, expected=_EXPECTED, lease=lease)

    async def close(self) -> None:
        connection, self.connection = self.connection, None
        if connection is not None:
            await connection.close()

    async def _connected(self) -> ImapConnection:
        if self.connection is not None and self.connection.lost.is_set():
            await self.close()
        if self.connection is None:
            self.connection = ImapConnection(self.account, self.timeout)
            try:
                await self.connection.open()
            except BaseException:
                await self.close()
                raise
        return self.connection

    async def _last_uid(self, uidvalidity: int, uidnext: int, now: datetime) -> int:
        stored = await get_state(self.sessions, self.state_key)
        known, _, last = (stored or "").partition(":")
        if known == str(uidvalidity):
            return int(last)
        if stored is not None:  # the old UIDs mean nothing now: read it all, repeats are recognised
            log.warning("imap %s: UIDVALIDITY now %s (was %s)", self.account.name, uidvalidity, known)
        # A mailbox new to us: its history is not ours to take, only what is unseen.
        first = 0 if stored is not None else uidnext - 1
        await set_state(self.sessions, self.state_key, f"{uidvalidity}:{first}", now)
        return first


def _groups(
    uids: list[int], sizes: dict[int, int], limit: int, max_bytes: int
) -> list[tuple[list[int], bool]]:
    """`uids` in order, cut into runs of at most `limit` bytes to fetch at once; a run of oversize
    mail (over `max_bytes`) is marked True: only its headers are fetched."""
    groups: list[tuple[list[int], bool]] = []
    total = 0
    for uid in uids:
        size = sizes.get(uid, 0)
        oversize = size > max_bytes
        if groups and groups[-1][1] == oversize and (oversize or total + size <= limit):
            groups[-1][0].append(uid)
            total += size
        else:
            groups.append(([uid], oversize))
            total = size
    return groups


def _too_large(uid: int, head: bytes, size: int, max_bytes: int) -> Mail:
    reason = (
        f"{size} bytes, over the limit of {max_bytes}: kept from its header (the mail stays on the server)"
    )
    return Mail(str(uid), head, None, reason)


def _key(prefix: str, name: str) -> str:
    # The state and lease columns hold 100 characters; a long account name is hashed to fit.
    if len(prefix + name) <= 100:
        return prefix + name
    return prefix + hashlib.sha256(name.encode()).hexdigest()[:40]
