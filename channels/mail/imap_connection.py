"""One IMAP connection (aioimaplib) to the complaint mailbox: select, search, fetch without marking read,
mark done; every command bounded by a timeout and failed at once when the link drops."""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import aioimaplib

T = TypeVar("T")
FETCH_ITEMS = "(UID INTERNALDATE BODY.PEEK[])"  # PEEK: reading must not mark anything read
HEADER_ITEMS = "(UID INTERNALDATE BODY.PEEK[HEADER])"  # an oversize mail: what staff need to find it
SIZE_ITEMS = "(UID RFC822.SIZE)"
_FETCH_HEAD = re.compile(rb"^\d+ FETCH \(")
_UID = re.compile(rb"UID (\d+)")
_SIZE = re.compile(rb"RFC822\.SIZE (\d+)")
_INTERNALDATE = re.compile(rb'INTERNALDATE "([^"]+)"')
_CODE = re.compile(rb"\[(UIDVALIDITY|UIDNEXT) (\d+)\]")


class ImapError(Exception):
    """The server refused a command, stopped answering or went away."""


@dataclass(frozen=True)
class ImapAccount:
    host: str
    port: int = 993
    user: str = ""
    password: str = ""
    folder: str = "INBOX"
    tls: bool = True
    done_folder: str | None = None  # move taken messages there instead of flagging them \Seen
    ssl_context: ssl.SSLContext | None = None  # default: the system's trusted CAs

    @property
    def name(self) -> str:
        return f"{self.user}@{self.host}:{self.port}/{self.folder}"


class ImapConnection:
    """One logged-in connection; every call bounded by `timeout` and failed at once if the link drops."""

    def __init__(self, account: ImapAccount, timeout: float = 30.0) -> None:
        self.account = account
        self.timeout = timeout
        self.lost = asyncio.Event()  # the link is gone (or unusable): the connection must be dropped
        self._imap: Any = None

    async def open(self) -> None:
        account = self.account
        context = (account.ssl_context or ssl.create_default_context()) if account.tls else None
        self._imap = aioimaplib.IMAP4(account.host, account.port, timeout=self.timeout, ssl_context=context)
        # Unlike IMAP4_SSL's, the plain class can report a lost link (the connection is made after
        # this returns): without it a killed server would look like a slow one.
        self._imap.protocol.conn_lost_cb = lambda _: self.lost.set()
        await self._call(self._imap.wait_hello_from_server())
        _check(await self._call(self._imap.login(account.user, account.password)), "LOGIN")
        await self._call(self._imap.protocol.capability())  # after login: MOVE, IDLE, UIDPLUS
        if account.done_folder:
            await self._call(self._imap.create(account.done_folder))  # NO when it exists: fine

    def has(self, capability: str) -> bool:
        return bool(self._imap is not None and self._imap.has_capability(capability))

    async def select(self) -> tuple[int, int]:
        """Select the folder; its UIDVALIDITY and UIDNEXT."""
        response = _check(await self._call(self._imap.select(self.account.folder)), "SELECT")
        codes = {m[1]: int(m[2]) for line in response.lines if (m := _CODE.search(bytes(line)))}
        return codes.get(b"UIDVALIDITY", 0), codes.get(b"UIDNEXT", 1)

    async def search(self, criteria: str) -> list[int]:
        response = _check(await self._call(self._imap.uid_search(criteria, charset=None)), "SEARCH")
        return [int(word) for line in response.lines[:-1] for word in bytes(line).split() if word.isdigit()]

    async def sizes(self, uids: list[int]) -> dict[int, int]:
        """The size in bytes of each UID still there, asked before anything is downloaded."""
        response = _check(
            await self._call(self._imap.uid("fetch", ",".join(map(str, uids)), SIZE_ITEMS)), "FETCH"
        )
        found = {}
        for line in response.lines:
            if (
                isinstance(line, bytes | bytearray)
                and (uid := _UID.search(line))
                and (size := _SIZE.search(line))
            ):
                found[int(uid[1])] = int(size[1])
        return found

    async def fetch(
        self, uids: list[int], items: str = FETCH_ITEMS
    ) -> list[tuple[int, datetime | None, bytes]]:
        """(uid, INTERNALDATE, raw message — or its header, with `HEADER_ITEMS`) of each UID still
        there, by UID."""
        # aioimaplib's own timer fires after `timeout` without a byte; this bound is for a trickle.
        response = await self._call(
            self._imap.uid("fetch", ",".join(map(str, uids)), items), self.timeout * 10
        )
        _check(response, "FETCH")
        found: dict[int, tuple[int, datetime | None, bytes]] = {}
        uid, arrived, raw = 0, None, None
        for line in [*response.lines, b"0 FETCH ("]:  # the sentinel closes the last message
            if isinstance(line, bytearray):  # a literal: the message itself
                raw = bytes(line)
                continue
            if _FETCH_HEAD.match(line):
                if uid and raw is not None:  # without a body: a flag change another client made
                    found[uid] = (uid, arrived, raw)
                uid, arrived, raw = 0, None, None
            if m := _UID.search(line):  # some servers send UID and INTERNALDATE after the body
                uid = int(m[1])
            if m := _INTERNALDATE.search(line):
                arrived = _internaldate(m[1])
        return [found[uid] for uid in sorted(found)]

    async def mark_done(self, uids: list[int]) -> None:
        uid_set, folder = ",".join(map(str, uids)), self.account.done_folder
        if folder and self.has("MOVE"):
            _check(await self._call(self._imap.uid("move", uid_set, folder)), "MOVE")
            return
        if folder:
            _check(await self._call(self._imap.uid("copy", uid_set, folder)), "COPY")
        flags = r"(\Seen \Deleted)" if folder else r"(\Seen)"
        _check(await self._call(self._imap.uid("store", uid_set, "+FLAGS.SILENT", flags)), "STORE")
        if folder and self.has("UIDPLUS"):  # without it EXPUNGE could remove others' deletions too
            _check(await self._call(self._imap.uid("expunge", uid_set)), "EXPUNGE")

    async def idle(self, stop: asyncio.Event, seconds: float) -> None:
        """Wait in IDLE until the server reports a change, `stop` is set or `seconds` pass."""
        queue: asyncio.Queue[Any] = self._imap.protocol.idle_queue
        while not queue.empty():  # pushes of the last IDLE: the pass that followed has seen them
            queue.get_nowait()
        idle = await self._call(self._imap.idle_start(timeout=seconds + 60))
        waiters = [asyncio.ensure_future(w) for w in (queue.get(), stop.wait(), self.lost.wait())]
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        self._imap.idle_done()  # on a lost link: written nowhere, and the next line raises
        _check(await self._call(idle), "IDLE")

    async def close(self) -> None:
        """Log out politely if the link is up; drop it in any case."""
        imap, self._imap = self._imap, None
        if imap is not None and not self.lost.is_set():
            with contextlib.suppress(Exception):
                await self._call(imap.logout(), 2.0)
        if imap is not None and getattr(imap.protocol, "transport", None) is not None:
            imap.protocol.transport.close()

    async def _call(self, awaitable: Awaitable[T], seconds: float | None = None) -> T:
        """Await one command: its result, or ImapError when the link drops or `seconds` pass."""
        task = asyncio.ensure_future(awaitable)
        lost = asyncio.ensure_future(self.lost.wait())
        try:
            done, _ = await asyncio.wait(
                {task, lost}, timeout=seconds or self.timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            lost.cancel()
            if not task.done():
                task.cancel()
        if task in done and not isinstance(task.exception(), aioimaplib.CommandTimeout):
            return task.result()
        where, gone = f"{self.account.host}:{self.account.port}", self.lost.is_set()
        self.lost.set()  # a command left without its answer leaves the session unusable
        raise ImapError(f"connection to {where} lost" if gone else f"{where} timed out")


def _check(response: Any, what: str) -> Any:
    if response.result != "OK":
        detail = bytes(response.lines[-1]).decode(errors="replace") if response.lines else ""
        raise ImapError(f"{what}: {response.result} {detail}".strip())
    return response


def _internaldate(text: bytes) -> datetime | None:
    try:
        return datetime.strptime(text.decode().strip(), "%d-%b-%Y %H:%M:%S %z")
    except ValueError:
        return None
