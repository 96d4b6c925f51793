"""The voicemail spool: a Maildir-style directory of transcript files (INTERFACES.md).

A producer writes into `tmp/` and renames into `new/`. We claim a file by renaming it to
`tmp/claimed.<instance>.<claim time in ms>.<name>`: rename is atomic, so of two instances (or two
processes) sharing the directory exactly one wins, and the claim time travels in the name, so no
`utime` is needed (which would need the file to be ours; the producer usually owns it). A file moves to
`cur/<name>` only after intake committed its message, so a crash at any point leaves a claim that
another pass takes over once it is `stale_after` seconds old; intake's dedupe turns the repeat into
a no-op. Unusable files go to `failed/<name>` with `failed/<name>.reason`, and staff are told.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from watchfiles import Change, awatch

from channels.voicemail.parse import MAX_BYTES, VoicemailError, parse_transcript
from core.context import CoreContext
from core.intake.intake import Intake
from core.intake.receive import Aside, Kept, receive_or_keep

log = logging.getLogger(__name__)

CLAIMED = "claimed"
_PREFIX_KEPT = 64 * 1024  # of an oversized file, what is kept for staff to see what it was
_GIVE_UP_PASS = 3  # transient failures in a row: the database is down, the rest of the pass would fail too

Outcome = Literal["taken", "duplicate", "failed", "gone"]


@dataclass
class SpoolReport:
    """What one pass did; files another instance took are in none of the counts."""

    taken: int = 0  # committed as a new message (a new ticket or one continued)
    duplicates: int = 0  # already received (a redelivery, or a claim repeated after a crash)
    failed: int = 0  # moved to failed/, staff told
    left: int = 0  # left for a later pass after a transient error (database down)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _arrival(change: Change, path: str) -> bool:
    # Our own renames out of new/ are deletions; waking for them would only cost an empty pass.
    return change == Change.added and not os.path.basename(path).startswith(".")


class SpoolInbox:
    def __init__(
        self,
        directory: Path,
        intake: Intake,
        core: CoreContext,
        *,
        clock: Callable[[], datetime] = _utc_now,
        stale_after: float = 300,
        polling: bool = False,
        rescan: float = 30,
    ) -> None:
        self.directory = directory
        self.tmp, self.new, self.cur, self.failed = (directory / d for d in ("tmp", "new", "cur", "failed"))
        self.intake = intake
        self.core = core
        self.clock = clock
        self.stale_after = stale_after
        self.polling = polling  # inotify is missing on some network and container file systems
        self.rescan = rescan  # the full scan that catches what the watcher missed
        self.token = uuid.uuid4().hex[:12]  # this instance's mark on the files it claims
        self._pass = asyncio.Lock()  # one pass at a time, so our own claims are never in progress

    def ensure_dirs(self) -> None:
        for sub in (self.tmp, self.new, self.cur, self.failed):
            sub.mkdir(parents=True, exist_ok=True)

    async def scan_once(self, now: datetime) -> SpoolReport:
        """Claim and process every waiting file once: stale claims first, then new/ oldest first."""
        async with self._pass:
            report = SpoolReport()
            batch = self._stale_claims(now) + self._arrivals()
            failures = 0
            for index, (path, name) in enumerate(batch):
                try:
                    outcome = await self._take(path, name, now)
                except Exception as exc:  # the database or the disk: the claim stays for a retry
                    failures += 1
                    report.left += 1
                    log.warning("voicemail spool: %s left for a retry: %s", name, exc, exc_info=True)
                    if failures >= _GIVE_UP_PASS:
                        report.left += len(batch) - index - 1
                        break
                    continue
                failures = 0
                if outcome == "taken":
                    report.taken += 1
                elif outcome == "duplicate":
                    report.duplicates += 1
                elif outcome == "failed":
                    report.failed += 1
            return report

    async def run(self, stop: asyncio.Event) -> None:
        """Process the backlog, then each arrival within a second, until `stop` is set."""
        self.ensure_dirs()
        wake = asyncio.Event()
        halt = asyncio.Event()  # not `stop`: awatch sets the event it is given when it is cancelled
        # Started before the first pass, so nothing that arrives during the backlog is missed.
        watcher = asyncio.create_task(self._watch(wake, halt))
        try:
            failures = 0
            while not stop.is_set():
                wake.clear()  # arrivals during the pass wake the next one
                try:
                    report = await self.scan_once(self.clock())
                    trouble = report.left > 0
                except Exception as exc:  # the spool directory itself (unmounted, permissions)
                    log.error("voicemail spool %s cannot be scanned: %s", self.directory, exc, exc_info=True)
                    trouble = True
                failures = failures + 1 if trouble else 0
                if failures:  # back off; new arrivals wait too, or they would hammer a database that is down
                    await _first(stop, None, min(self.rescan, 2.0**failures) * (0.5 + random.random() / 2))
                else:
                    await _first(stop, wake, self.rescan)
        finally:
            halt.set()
            await watcher

    async def _watch(self, wake: asyncio.Event, halt: asyncio.Event) -> None:
        polling = self.polling
        while not halt.is_set():
            try:
                async for _ in awatch(
                    self.new,
                    watch_filter=_arrival,
                    debounce=100,
                    step=50,
                    stop_event=halt,
                    force_polling=True if polling else None,  # None: watchfiles' own detection
                    poll_delay_ms=200,
                    recursive=False,
                ):
                    wake.set()
                return
            except Exception as exc:
                if polling:
                    log.error("voicemail spool: cannot watch %s (%s); scanning only", self.new, exc)
                    return
                log.warning("voicemail spool: no file events (%s); polling %s instead", exc, self.new)
                polling = True

    def _stale_claims(self, now: datetime) -> list[tuple[Path, str]]:
        """Claims left by a crashed instance, and our own that a transient error left behind."""
        limit = _stamp(now) - int(self.stale_after * 1000)
        found: list[tuple[int, str, Path]] = []
        for entry in os.scandir(self.tmp):
            parts = entry.name.split(".", 3)  # claimed, instance, stamp, name
            if len(parts) != 4 or parts[0] != CLAIMED or not parts[2].isdigit() or not parts[3]:
                continue  # a producer's file being written
            if parts[1] == self.token or int(parts[2]) < limit:
                found.append((int(parts[2]), parts[3], Path(entry.path)))
        return [(path, name) for _, name, path in sorted(found)]

    def _arrivals(self) -> list[tuple[Path, str]]:
        found: list[tuple[int, str, Path]] = []
        for entry in os.scandir(self.new):
            if entry.name.startswith("."):
                continue
            try:
                if entry.is_file():
                    found.append((entry.stat().st_mtime_ns, entry.name, Path(entry.path)))
            except FileNotFoundError:  # another instance claimed it meanwhile
                continue
        # Arrival order, so that a caller's second voicemail follows the first into its ticket.
        return [(path, name) for _, name, path in sorted(found)]

    async def _take(self, path: Path, name: str, now: datetime) -> Outcome:
        claimed = self.tmp / f"{CLAIMED}.{self.token}.{_stamp(now)}.{name}"
        try:
            os.rename(path, claimed)
            body, too_big = _read(claimed)
        except FileNotFoundError:
            return "gone"  # another instance won the rename
        if too_big:
            return await self._fail(claimed, name, body, too_big, now)
        try:
            message = parse_transcript(body)
        except VoicemailError as exc:
            return await self._fail(claimed, name, body, str(exc), now)
        except Exception as exc:  # a bug in parsing would repeat on every pass: staff see the file instead
            log.exception("voicemail spool: parsing %s failed unexpectedly", name)
            return await self._fail(claimed, name, body, f"could not be parsed: {exc!r}", now)
        result = await receive_or_keep(self.intake, message, now)
        if isinstance(result, Kept):  # an id reused: kept as unparsed, staff told
            _write_reason(self.failed, name, self.core.redact(result.reason))
            _move(claimed, self.failed / name)
            log.warning("voicemail spool: %s moved to failed/: %s", name, result)
            return "failed"
        # Only now, with the message committed, may the file leave its claim.
        _move(claimed, self.cur / name)
        log.info(
            "voicemail spool: %s (%s) -> %s%s",
            name,
            message.external_id,
            result.ticket_number,
            " (already received)" if result.duplicate else "",
        )
        return "duplicate" if result.duplicate else "taken"

    async def _fail(self, claimed: Path, name: str, raw: bytes, reason: str, now: datetime) -> Outcome:
        # Row and reason file first: a crash before the move repeats all of it harmlessly.
        # Keyed by name and content: a repeat of this file is kept once, another file reusing the name too.
        key = f"spool:{name}:{hashlib.sha256(raw).hexdigest()[:16]}"
        reason = self.core.redact(reason)  # the reason file is stored in clear, beside the raw file
        await receive_or_keep(self.intake, Aside("voicemail", key, raw, reason), now)
        _write_reason(self.failed, name, reason)
        _move(claimed, self.failed / name)
        log.warning("voicemail spool: %s moved to failed/: %s", name, reason)
        return "failed"


def _stamp(now: datetime) -> int:
    return int(now.timestamp() * 1000)


def _read(path: Path) -> tuple[bytes, str | None]:
    """The file's bytes; for a file over the limit only a prefix, with the reason."""
    with path.open("rb") as file:
        size = os.fstat(file.fileno()).st_size
        if size > MAX_BYTES:  # never read a huge file whole
            return file.read(_PREFIX_KEPT), f"{size} bytes, over the limit of {MAX_BYTES}"
        body = file.read(MAX_BYTES + 1)  # + 1: a file still growing is caught too
    if len(body) > MAX_BYTES:
        return body[:_PREFIX_KEPT], f"more than {MAX_BYTES} bytes, over the limit"
    return body, None


def _write_reason(failed: Path, name: str, reason: str) -> None:
    (failed / f"{name}.reason").write_text(reason + "\n", encoding="utf-8")


def _move(claimed: Path, target: Path) -> None:
    try:
        os.rename(claimed, target)
    except FileNotFoundError:  # a stale-claim takeover finished it first; its result is the same
        log.info("voicemail spool: %s was already moved by another instance", claimed.name)


async def _first(stop: asyncio.Event, wake: asyncio.Event | None, seconds: float) -> None:
    """Wait until `stop` or `wake` is set, or `seconds` pass."""
    waiters = [asyncio.create_task(event.wait()) for event in (stop, wake) if event is not None]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
