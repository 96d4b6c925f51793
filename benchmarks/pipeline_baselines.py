"""The baselines of benchmarks/pipeline.py: the same work without the service, measured in the same run.

For e-mail, the floor of the I/O itself (`email_floor`): the same messages fetched from the same Dovecot
with aioimaplib and one acknowledgement-sized reply each sent to the same SMTP server with aiosmtplib, no
database. For the webhooks, the bare Starlette route of benchmarks/wechat_webhook.py (`bare_baseline`:
uvicorn, one aiosqlite INSERT + COMMIT per request) under the same burst as ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import shutil
import signal
import tempfile
import time
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.policy import default
from email.utils import make_msgid, parseaddr
from pathlib import Path

import aiosmtplib
import httpx

from benchmarks.common import ROOT
from benchmarks.pipeline_load import Item, Request, burst
from benchmarks.pipeline_report import Baseline
from benchmarks.pipeline_service import free_port
from benchmarks.pipeline_sinks import FLOOR_FROM
from benchmarks.wechat_webhook import pushes
from benchmarks.wechat_webhook import serve as bare_serve
from channels.mail.imap_connection import ImapConnection
from tests.channels.mail.dovecot import Dovecot

ACK_SIZED = (ROOT / "core" / "templates" / "zh" / "ack.txt.j2").read_text(encoding="utf-8")


async def email_floor(server: Dovecot, smtp_port: int, batch: int = 100) -> float:
    """The floor: fetch every message, send one acknowledgement-sized reply each over one SMTP connection,
    nothing else; when it began (the replies are timed by the SMTP server)."""
    headers = BytesHeaderParser(policy=default)
    began = time.time()
    imap = ImapConnection(server.account(), timeout=30)
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=smtp_port, use_tls=False, start_tls=False, timeout=30)
    await imap.open()
    await smtp.connect()
    try:
        await imap.select()
        uids = await imap.search("ALL")
        for start in range(0, len(uids), batch):
            for _, _, raw in await imap.fetch(uids[start : start + batch]):
                head = headers.parsebytes(raw)
                to = parseaddr(str(head["From"]))[1]
                reply = EmailMessage()
                reply["From"], reply["To"] = FLOOR_FROM, to
                reply["Subject"] = f"Re: [TS-000000-00000] {head['Subject']}"
                reply["In-Reply-To"] = str(head["Message-ID"])
                reply["Message-ID"] = make_msgid(domain="bench.invalid")
                reply.set_content(ACK_SIZED)
                reply.add_alternative(f"<html><body><pre>{ACK_SIZED}</pre></body></html>", "html")
                await smtp.send_message(reply, sender=FLOOR_FROM, recipients=[to])
    finally:
        with contextlib.suppress(Exception):
            await smtp.quit()
        await imap.close()
    return began


async def bare_baseline(backend: str, n: int, concurrency: int, texts: list[str], root: Path) -> Baseline:
    """benchmarks/wechat_webhook.py's server (its bare route: one aiosqlite INSERT + COMMIT per request),
    under the same burst as ours."""
    port = free_port()
    directory = Path(tempfile.mkdtemp(prefix="complaintbot-pipeline-bare-", dir=root))
    process = multiprocessing.get_context("spawn").Process(
        target=_bare_server, args=(port, str(directory)), daemon=True
    )
    process.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=2) as client:
            for _ in range(600):
                if not process.is_alive():
                    raise RuntimeError("the bare route's server died")
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/healthz")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError("the bare route's server did not answer in 60 s")
        jobs = [(Item("bare", ""), p) for p in _bare_requests(40, 0, texts)]
        await burst(port, jobs, 4)  # warm-up
        items = [Item("bare", "") for _ in range(n)]
        began, ended = await burst(
            port, list(zip(items, _bare_requests(n, 40, texts), strict=True)), concurrency
        )
    finally:
        process.terminate()
        process.join(10)
        shutil.rmtree(directory, ignore_errors=True)
    latencies = [
        item.answered - item.handed for item in items if item.answered is not None and item.status == 200
    ]
    return Baseline(
        "webhooks",
        backend,
        f"bare route (aiosqlite insert), {concurrency} conc.",
        n,
        n / (ended - began),
        latencies,
        ended - began,
    )


def _bare_server(port: int, directory: str) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it terminates us
    bare_serve(port, directory)


def _bare_requests(count: int, start: int, texts: list[str]) -> list[Request]:
    return [
        Request("POST", p.target, (("Content-Type", "text/xml"),), p.body)
        for p in pushes("bare", count, texts, start)
    ]
