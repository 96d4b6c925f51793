"""A Maildir directory as the complaint mailbox (`maildir = PATH`), as a local delivery agent fills it.

A message waits while it has no `S` (seen) flag, in new/ or in cur/ (a mail client may have moved it
there unread). Only after intake committed it is it renamed to `cur/<unique>:2,<flags>S`: a rename,
atomic, so a crash before it leaves the message waiting and the repeat is a no-op (intake dedupes on
the Message-ID, else a hash of the bytes). Two instances sharing the directory may both take a
message; dedupe keeps one ticket and the second rename finds the file gone, which is fine.

The stdlib's `mailbox.Maildir` lays the directory out; on Python 3.11 it can change flags only by
rewriting the whole message, hence the rename here.
"""

from __future__ import annotations

import asyncio
import logging
import mailbox
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from channels.mail.parse import BATCH_BYTES, MAX_BYTES
from channels.mail.prepared import Mail, MailReport, prepare_off_loop
from channels.mail.read_loop import keep_reading, pause
from channels.mail.reader import MailReader

log = logging.getLogger(__name__)
_PREFIX_KEPT = 64 * 1024  # of an oversized message, what is kept for staff to see what it was


def _utc_now() -> datetime:
    return datetime.now(UTC)


class MaildirSource:
    def __init__(
        self,
        directory: Path,
        reader: MailReader,
        *,
        clock: Callable[[], datetime] = _utc_now,
        poll_seconds: float = 5.0,
        batch: int = 100,
        batch_bytes: int = BATCH_BYTES,
    ) -> None:
        self.directory = Path(directory)
        self.reader = reader
        self.clock = clock
        self.poll_seconds = poll_seconds
        self.batch, self.batch_bytes = batch, batch_bytes
        self.colon = mailbox.Maildir.colon
        self._stop: asyncio.Event | None = None  # set by run(): a long pass ends at a batch's end

    def ensure_dirs(self) -> None:
        mailbox.Maildir(self.directory, create=True)

    async def fetch_once(self, now: datetime) -> MailReport:
        """Take every waiting message once, oldest first; stops early when intake fails."""
        self.ensure_dirs()
        waiting = self._waiting()
        report = MailReport()
        start = 0
        for group in batches(waiting, self.batch, self.batch_bytes):
            if start and self._stop is not None and self._stop.is_set():
                report.left += len(waiting) - start  # shutting down: the rest is read at the next start
                break
            paths = {path.name: path for path in group}
            mails = [mail for mail in [await self._read(path) for path in paths.values()] if mail is not None]
            part = await self.reader.take_all(mails, now)
            for name in part.done:  # committed: only now may it leave the waiting ones
                self.mark_done(paths[name])
            report.add(part)
            if part.left:
                report.left += len(waiting) - start - len(paths)
                break
            start += len(paths)
        return report

    async def run(self, stop: asyncio.Event) -> None:
        """Take what waits, then look again every `poll_seconds`, until `stop` is set."""

        async def step() -> bool:
            report = await self.fetch_once(self.clock())
            if report.left:
                return False
            if not (report.taken or report.kept):  # something new came: look again at once
                await pause(stop, self.poll_seconds)
            return True

        self._stop = stop
        await keep_reading(f"maildir {self.directory}", step, stop, expected=(OSError,))

    def _waiting(self) -> list[tuple[Path, int]]:
        """The messages not yet taken, with their sizes, in arrival order."""
        found: list[tuple[int, str, Path, int]] = []
        for sub in ("new", "cur"):
            for entry in os.scandir(self.directory / sub):
                if entry.name.startswith(".") or "S" in self._flags(entry.name):
                    continue
                try:
                    if entry.is_file():
                        stat = entry.stat()
                        found.append((stat.st_mtime_ns, entry.name, Path(entry.path), stat.st_size))
                except FileNotFoundError:  # taken by another instance meanwhile
                    continue
        # Arrival order, so that a learner's second message follows the first into its ticket.
        return [(path, size) for _, _, path, size in sorted(found)]

    async def _read(self, path: Path) -> Mail | None:
        try:
            with path.open("rb") as file:
                arrived = datetime.fromtimestamp(os.fstat(file.fileno()).st_mtime, UTC)
                raw = file.read(MAX_BYTES + 1)  # never read a huge file whole
        except FileNotFoundError:
            return None  # another instance marked it meanwhile
        if len(raw) > MAX_BYTES:
            return Mail(path.name, raw[:_PREFIX_KEPT], None, f"more than {MAX_BYTES} bytes, over the limit")
        return await prepare_off_loop(path.name, raw, arrived)

    def _flags(self, name: str) -> str:
        _, _, info = name.partition(self.colon)
        return info[2:] if info.startswith("2,") else ""

    def mark_done(self, path: Path) -> None:
        """Flag a message whose intake has committed: renamed into cur/ with the S flag."""
        unique = path.name.partition(self.colon)[0]
        flags = "".join(sorted(set(self._flags(path.name)) | {"S"}))
        try:
            os.rename(path, self.directory / "cur" / f"{unique}{self.colon}2,{flags}")
        except FileNotFoundError:  # another instance marked it first; the result is the same
            log.info("maildir: %s was already marked by another instance", path.name)


def batches(waiting: list[tuple[Path, int]], count: int, limit: int) -> list[list[Path]]:
    """`waiting` (paths and sizes) in order, in batches of at most `count` messages and `limit` bytes:
    what is read into memory at once. A larger message (read up to MAX_BYTES) comes alone."""
    found: list[list[Path]] = []
    total = 0
    for path, size in waiting:
        size = min(size, MAX_BYTES + 1)
        if found and len(found[-1]) < count and total + size <= limit:
            found[-1].append(path)
            total += size
        else:
            found.append([path])
            total = size
    return found
