"""The scenarios of benchmarks/pipeline.py, each on a fresh database and a fresh service.

`email_burst` (a waiting mailbox, with or without staff desks), `webhooks` (WeChat, voicemail and
Telegram bursts), `steady` (all four channels at once, at a steady rate) and `intake_scenario`
(benchmarks/intake.py's own measurement). Each adds to the run's `Results`: rows, baselines, the
service's own view, notes and targets.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from wechatpy.crypto import WeChatCrypto

from benchmarks.intake import bench as intake_bench
from benchmarks.intake import build as intake_steps
from benchmarks.intake import databases as intake_databases
from benchmarks.intake import report as intake_report
from benchmarks.pipeline_baselines import bare_baseline, email_floor
from benchmarks.pipeline_load import (
    Appender,
    Item,
    Pool,
    Request,
    burst,
    learner_mail,
    mail_id,
    match_acks,
    passive_ack,
    steady_sender,
    telegram_request,
    voicemail_request,
    wechat_request,
)
from benchmarks.pipeline_report import (
    INTAKE_TARGET,
    PASS,
    WECHAT_P99_TARGET_S,
    Baseline,
    Results,
    ServiceRun,
    quantile,
    row_of,
    secs,
)
from benchmarks.pipeline_service import (
    DOVECOTS,
    Service,
    Setup,
    UnseenWatch,
    free_port,
    log_findings,
    mails_committed,
    outbox_rows,
    parse_metrics,
)
from benchmarks.pipeline_sinks import Sinks
from benchmarks.wechat_webhook import AES_KEY, APP_ID, TOKEN
from core.rules.policy import parse_policy
from core.storage.privacy import Vault, generate_key, redact
from tests.channels.mail.dovecot import Dovecot


@dataclass
class Run:
    args: argparse.Namespace
    sinks: Sinks
    root: Path
    texts: list[str]
    results: Results = field(default_factory=Results)

    def workdir(self, backend: str, scenario: str) -> Path:
        path = self.root / f"{backend}-{scenario}"
        path.mkdir(parents=True, exist_ok=True)
        return path


async def wait_acks(
    sinks: Sinks, want: dict[tuple[str, str], int], within: float, stall: float = 45.0, linger: float = 1.5
) -> bool:
    """Until the stand-ins have `want` deliveries of each (channel, kind), nothing new came for `stall`
    seconds, or `within`; then `linger` more seconds for late duplicates. Whether all came."""
    began = last_change = time.time()
    seen = -1
    while True:
        counts = await sinks.counts()
        if all(counts[key] >= n for key, n in want.items()):
            await asyncio.sleep(linger)
            return True
        total = sum(counts[key] for key in want)
        now = time.time()
        if total != seen:
            seen, last_change = total, now
        if now - last_change > stall or now - began > within:
            got = ", ".join(f"{c}/{k}: {counts[(c, k)]} of {n}" for (c, k), n in want.items())
            print(f"  stopped waiting after {now - began:.0f} s ({got})")
            return False
        await asyncio.sleep(0.1)


def keep_log(log: Path, to: Path) -> None:
    to.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(log, to)


async def finish_service(run: Run, service: Service, scenario: str, backend: str, url: str) -> None:
    """Scrape /metrics, stop the service (SIGTERM), count the outbox, read the log."""
    exposition = ""
    try:
        exposition = await service.scrape()
    except (httpx.HTTPError, OSError) as exc:
        print(f"  /metrics failed: {exc}")
    finally:
        service.stop()
    outbox = await outbox_rows(url)
    log = service.text()
    said, findings = log_findings(log)
    if run.args.keep_logs:
        keep_log(service.log, Path(run.args.keep_logs) / f"{backend}-{scenario}.log")
    run.results.services.append(
        ServiceRun(
            scenario,
            backend,
            parse_metrics(exposition),
            outbox,
            said,
            findings,
            service.exit_code,
            service.stop_seconds,
        )
    )
    print(f"  service stopped: exit {service.exit_code} in {service.stop_seconds:.1f} s after SIGTERM")


async def email_burst(run: Run, backend: str, url: str, workdir: Path, desks: bool) -> None:
    scenario = "email-desk" if desks else "email-nodesk"
    n, rng = run.args.n, random.Random(run.args.seed)
    mails = [learner_mail(i, scenario[6:], rng.choice(run.texts), rng) for i in range(n)]
    server = Dovecot()
    DOVECOTS.add(server)
    try:
        server.start()
        await asyncio.to_thread(server.append, (raw for _, raw in mails))
        # The floor first, on the same mailbox (BODY.PEEK: the messages stay unseen for the service).
        await run.sinks.clear()
        began = await email_floor(server, run.sinks.smtp_port)
        await wait_acks(run.sinks, {("floor", "floor"): n}, within=60, linger=0)
        floor = [d.at - began for d in await run.sinks.report() if d.channel == "floor"]
        await run.sinks.clear()
        setup = Setup(run.sinks, free_port(), url, workdir / "var", mailbox=server, desks=desks)
        service = Service(workdir, setup)
        watch = UnseenWatch(server)
        watch.start()
        items = [Item("email", a.lower(), ref=mail_id(scenario[6:], i)) for i, (a, _) in enumerate(mails)]
        try:
            started = service.start()
            for item in items:
                item.handed = started  # waiting in the mailbox when the service starts
            ready = await service.ready()
            print(f"  {scenario}: service up {ready - started:.2f} s after its start; waiting for {n} acks")
            await wait_acks(run.sinks, {("email", "ack"): n}, within=120 + n * 0.2)
            await finish_service(run, service, scenario, backend, url)
        finally:
            service.stop()
            watch.stop()
        deliveries = await run.sinks.report()
        match_acks(items, deliveries, "email")
        committed = mails_committed(service.text())
        for item in items:
            item.committed = committed.get(redact(item.ref))
        row = row_of(scenario, backend, "email", items, started)
        seen = watch.all_seen()
        row.per_s = n / (seen - service.ready_at) if seen and seen > service.ready_at else None
        run.results.rows.append(row)
        staff = sum(1 for d in deliveries if d.kind == "staff")
        to_learners = sum(1 for d in deliveries if d.channel == "email" and d.kind == "learner")
        flagged = (
            f"all {n} flagged \\Seen {seen - started:.2f} s after it"
            if seen
            else f"not all {n} flagged \\Seen"
        )
        run.results.notes.append(
            f"{backend} {scenario}: service up {service.ready_at - started:.2f} s after its start; {flagged};"
            f" SMTP got {row.n - (row.missing or 0)} acknowledged learners, {to_learners} other mails to"
            f" learners, {staff} staff desk mails"
        )
        floor_last = max(floor) if floor else 0.0
        run.results.baselines.append(
            Baseline(
                scenario,
                backend,
                "e-mail floor (IMAP fetch + SMTP, no db)",
                len(floor),
                len(floor) / floor_last if floor_last else 0.0,
                floor,
                floor_last,
                ours_per_s=(n - (row.missing or 0)) / row.last if row.last else None,
                ours_p99=quantile(row.acks, 0.99),
                ours_last=row.last,
            )
        )
        print(f"  {scenario}: " + " ".join(row.cells()[3:]))
    finally:
        server.close()
        DOVECOTS.discard(server)


async def webhooks(run: Run, backend: str, url: str, workdir: Path) -> None:
    n, concurrency, texts = run.args.n, run.args.concurrency, run.texts
    bare = await bare_baseline(backend, n, concurrency, texts, run.root)
    await run.sinks.clear()
    setup = Setup(run.sinks, free_port(), url, workdir / "var", webhooks=True)
    service = Service(workdir, setup)
    crypto = WeChatCrypto(TOKEN, AES_KEY, APP_ID)
    wechat = [Item("wechat", "") for _ in range(n)]
    voicemail = [Item("voicemail", "") for _ in range(n)]
    telegram = [Item("telegram", str(6_000_000_000 + i)) for i in range(n)]
    phases: dict[str, tuple[float, float]] = {}
    try:
        started = service.start()
        ready = await service.ready()
        print(f"  webhooks: service up {ready - started:.2f} s after its start")
        jobs = [(item, wechat_request(item, texts, 100_000 + i)) for i, item in enumerate(wechat)]
        phases["wechat"] = await burst(setup.port, jobs, concurrency)
        passive = sum(passive_ack(item, crypto) for item in wechat)
        if passive < n:  # the rest goes as customer-service messages
            await wait_acks(run.sinks, {("wechat", "ack"): n - passive}, within=60 + n * 0.1)
        jobs = [(item, voicemail_request(item, texts[i % len(texts)], i)) for i, item in enumerate(voicemail)]
        phases["voicemail"] = await burst(setup.port, jobs, concurrency)
        jobs = [
            (item, telegram_request(item, texts[i % len(texts)], 1000 + i)) for i, item in enumerate(telegram)
        ]
        phases["telegram"] = await burst(setup.port, jobs, concurrency)
        # Telegram: about 30 messages a second per bot (PTB's limiter), the questions included.
        await wait_acks(run.sinks, {("telegram", "ack"): n}, within=120 + n * 0.2)
        await finish_service(run, service, "webhooks", backend, url)
    finally:
        service.stop()
    deliveries = await run.sinks.report()
    for item in wechat:
        if passive_ack(item, crypto):
            item.acks.append(item.answered or 0.0)
    match_acks(wechat, deliveries, "wechat")
    match_acks(telegram, deliveries, "telegram")
    for item in telegram:
        item.committed = item.answered if item.status == 200 else None
    rows = [
        row_of("webhooks", backend, "wechat", wechat, phases["wechat"][0]),
        row_of("webhooks", backend, "voicemail", voicemail, phases["voicemail"][0], acked=False),
        row_of("webhooks", backend, "telegram", telegram, phases["telegram"][0]),
    ]
    run.results.rows += rows
    for row in rows:
        print(f"  webhooks/{row.channel}: " + " ".join(row.cells()[3:]))
    warm = [
        item.answered - item.handed for item in wechat[concurrency:] if item.answered and item.status == 200
    ]
    ours = rows[0]
    bare.ours_per_s, bare.ours_p99 = ours.per_s, quantile(ours.responses, 0.99)
    run.results.baselines.append(bare)
    p99, warm_p99 = quantile(ours.responses, 0.99), quantile(warm, 0.99)
    if p99 is not None:
        verdict = PASS[p99 < WECHAT_P99_TARGET_S]
        run.results.targets.append(
            f"{backend}: WeChat webhook p99 < {WECHAT_P99_TARGET_S * 1000:.0f} ms at {concurrency}"
            f" concurrent: {p99 * 1000:,.0f} ms {verdict}  (without the first {concurrency} requests,"
            f" which meet the cold start: {secs(warm_p99)};"
            f" bare route p99 {secs(quantile(bare.latencies, 0.99))};"
            f" passive replies {passive}/{n})"
        )
    lane = sorted((d.at, d.kind) for d in deliveries if d.channel == "telegram" and d.kind != "staff")
    last_ack = max((at for at, kind in lane if kind == "ack"), default=None)
    others = sum(1 for at, kind in lane if kind == "learner" and last_ack is not None and at < last_ack)
    run.results.notes.append(
        f"{backend} webhooks: Telegram sent {others} other messages to learners (follow-up questions) on"
        f" the learners' lane before its last acknowledgement; {len(lane)} messages to learners in all"
    )
    run.results.notes.append(
        f"{backend} webhooks: WeChat acks in the HTTP response {passive}/{n}; staff messages to the"
        f" Telegram staff chat during the run: {sum(1 for d in deliveries if d.kind == 'staff')}"
        f" (Telegram paces a group at 20 a minute)"
    )


async def steady(run: Run, backend: str, url: str, workdir: Path) -> None:
    rate, seconds, texts = run.args.rate, run.args.seconds, run.texts
    total = max(1, round(rate * seconds))
    channels = ("wechat", "telegram", "email", "voicemail")
    rng = random.Random(run.args.seed + 1)
    server = Dovecot()
    DOVECOTS.add(server)
    appender: Appender | None = None
    pool: Pool | None = None
    try:
        server.start()
        await run.sinks.clear()
        setup = Setup(run.sinks, free_port(), url, workdir / "var", mailbox=server, webhooks=True)
        service = Service(workdir, setup)
        items: dict[str, list[Item]] = {name: [] for name in channels}
        plan: list[tuple[float, Item, Callable[[], object]]] = []
        for k in range(total):
            channel, text_ = channels[k % len(channels)], texts[k % len(texts)]
            item = Item(channel, "")
            items[channel].append(item)
            plan.append((k / rate, item, steady_sender(item, k, text_, texts, rng)))
        try:
            started = service.start()
            await service.ready()
            print(
                f"  steady: service up {service.ready_at - started:.2f} s after its start; {total} complaints"
            )
            appender, pool = Appender(server), Pool(setup.port)
            # Steady state: one untimed complaint first, which loads what the first one loads (jieba).
            await pool.send(Item("wechat", ""), wechat_request(Item("wechat", ""), texts, 199_999))
            tasks: list[asyncio.Task[None]] = []
            began = time.time()
            for offset, item, send in plan:
                delay = began + offset - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                job = send()
                if isinstance(job, bytes):
                    tasks.append(asyncio.create_task(appender.append(item, job)))
                else:
                    assert isinstance(job, Request)
                    tasks.append(asyncio.create_task(pool.send(item, job)))
            await asyncio.gather(*tasks)
            load_seconds = time.time() - began
            crypto = WeChatCrypto(TOKEN, AES_KEY, APP_ID)
            passive = [item for item in items["wechat"] if passive_ack(item, crypto)]
            want = {
                ("email", "ack"): len(items["email"]),
                ("telegram", "ack"): len(items["telegram"]),
                ("wechat", "ack"): len(items["wechat"]) - len(passive),
            }
            await wait_acks(run.sinks, {key: n for key, n in want.items() if n}, within=120 + total * 0.2)
            await finish_service(run, service, "steady", backend, url)
        finally:
            service.stop()
        deliveries = await run.sinks.report()
        for item in passive:
            item.acks.append(item.answered or 0.0)
        for channel in ("wechat", "telegram", "email"):
            match_acks(items[channel], deliveries, channel)
        committed = mails_committed(service.text())
        for item in items["email"]:
            item.committed = committed.get(redact(item.ref))
        for item in items["telegram"]:
            item.committed = item.answered if item.status == 200 else None
        for channel in channels:
            row = row_of("steady", backend, channel, items[channel], began, acked=channel != "voicemail")
            row.per_s = len(items[channel]) / load_seconds  # offered and taken at the steady rate
            run.results.rows.append(row)
            print(f"  steady/{channel}: " + " ".join(row.cells()[3:]))
        run.results.notes.append(
            f"{backend} steady: {total} complaints at {rate:g}/s over {load_seconds:.1f} s, in turn over"
            f" {', '.join(channels)}; WeChat acks in the HTTP response {len(passive)}/{len(items['wechat'])}"
        )
    finally:
        if appender is not None:
            appender.close()
        if pool is not None:
            pool.close()
        server.close()
        DOVECOTS.discard(server)


async def intake_scenario(run: Run, backend: str) -> None:
    """benchmarks/intake.py at --concurrency callers, its own table and targets."""
    n = 200 if run.args.quick else run.args.n
    options = argparse.Namespace(n=n, concurrency=run.args.concurrency, warmup=50, seed=20261123)
    steps = intake_steps(options.warmup + n, options.seed, parse_policy(), Vault([generate_key()]))
    async with intake_databases(backend) as urls:
        if not urls:
            return
        timings = await intake_bench(backend, urls, steps, options)
    print(f"  intake ({backend}, benchmarks/intake.py at concurrency {options.concurrency}):", end="")
    intake_report(timings)
    ours, raw = timings[0], timings[1]
    run.results.baselines.append(
        Baseline(
            "intake",
            backend,
            f"raw driver (benchmarks/intake.py), {options.concurrency} conc.",
            len(raw.latencies),
            raw.per_s,
            list(raw.latencies),
            raw.seconds,
            ours_per_s=ours.per_s,
            ours_p99=quantile(ours.latencies, 0.99),
        )
    )
    if backend == "sqlite":
        run.results.targets.append(
            f"{backend}: intake >= {INTAKE_TARGET:,.0f} complaints/s through Intake, {options.concurrency}"
            f" concurrent callers: {ours.per_s:,.0f}/s {PASS[ours.per_s >= INTAKE_TARGET]}"
            f" (raw driver {raw.per_s:,.0f}/s, ratio {ours.per_s / raw.per_s:.0%})"
        )
