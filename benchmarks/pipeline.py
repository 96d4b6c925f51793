"""End to end through `complaintbot run`: a complaint handed to the service until its acknowledgement left.

    .venv/bin/python benchmarks/pipeline.py [--n 1000] [--backend sqlite|postgres|all]
        [--scenario email-desk,email-nodesk,webhooks,steady,intake] [--rate 20] [--seconds 20]
        [--concurrency 50] [--quick] [--keep-logs DIR]

The default (SQLite, every scenario, 1,000 complaints a burst) takes about five minutes on the shared
2-core machine, most of it waiting for Telegram's 30 messages a second; `--backend all` adds PostgreSQL.

What it measures: the product's promise "an acknowledgement within seconds", as the learner feels it. The
real service runs as a subprocess (`complaintbot --config … run`, stderr kept in a temp file and
summarised) with a generated config on a throwaway, migrated database (a SQLite file; PostgreSQL on
COMPLAINTBOT_TEST_POSTGRES_URL or 127.0.0.1:5432, a database made and dropped here, skipped with a line
when no server answers). Everything it talks to is real and runs outside it: a Dovecot (Debian's
dovecot-imapd; tests/channels/mail/dovecot.py) holds the complaint mailbox, and one process of its own
(benchmarks/pipeline_sinks.py) serves the SMTP server (aiosmtpd), the Telegram Bot API and the WeChat
API stand-ins of the tests, recording when each message arrives (wall clock, as the load does).

Scenarios (each on a fresh database and a fresh service):
  - email-desk:   --n learners' e-mails (each a new complaint: Chinese and English, plain or with HTML,
                  from tests/core/data/complaints.jsonl) APPENDed to the mailbox before the service
                  starts; e-mail is the only channel and every department has a staff desk address
                  (`[departments.<key>] email`), so staff cards go out by SMTP beside the
                  acknowledgements. Latency counts from the service's start.
  - email-nodesk: the same with no desk: staff cards have nowhere to go and are parked.
  - webhooks:     WeChat (safe mode, signed and encrypted pushes built by benchmarks/wechat_webhook.py;
                  the acknowledgement is the passive reply in the HTTP response, else the stand-in's
                  customer-service message), then voicemail (`POST /voicemail`, HMAC-signed; callers
                  have no written channel, so only intake is measured: 2xx after the commit), then
                  Telegram (webhook mode, `POST /telegram`; acknowledged when the Bot API stand-in gets
                  `sendMessage` for that chat), each --n requests at --concurrency (50) as soon as the
                  service is up. A Telegram staff chat takes the staff cards (paced 20 a minute, as
                  Telegram does). Latency counts from each request's sending.
  - steady:       all four channels at once, --rate complaints a second spread over them in turn for
                  --seconds (e-mail APPENDed as it goes, read through IMAP IDLE), after one untimed
                  complaint that pays the cold start (jieba's dictionary).
  - intake:       benchmarks/intake.py's own measurement (its functions, imported) at --concurrency
                  callers: `Intake.receive` against its raw-driver baseline.
Acknowledgements are counted per complaint: each must get exactly one; missing and duplicates are
printed. Latency is from receipt (the request sent, the mail appended; for a waiting mailbox the
service's start) to the acknowledgement leaving the process (received by the SMTP server or the Bot
API stand-in, or the HTTP response carrying it), and also from the commit as seen from outside (an
e-mail's commit is the service's own log line for it, written right after; Telegram's is its 2xx). At
the end of each service run /metrics is scraped: `complaintbot_acknowledgement_seconds` (the service's
own "commit to sent", per channel) and `complaintbot_intake_seconds`, as bucket bounds, and the
database's outbox is counted by lane, kind and status after the service stopped (SIGTERM). Warnings,
errors and tracebacks in the service's log (stdout and stderr, kept in a temp file; `--keep-logs`
copies them) are counted and shown grouped.

Baselines, in the same run, right before the scenario they belong to: for e-mail the floor of the I/O
itself (the same messages fetched from the same Dovecot with aioimaplib, `BODY.PEEK[]` in batches of
100, and one acknowledgement-sized reply each sent to the same SMTP server with aiosmtplib over one kept
connection, no database); for the webhooks the bare Starlette route of benchmarks/wechat_webhook.py
(uvicorn, one aiosqlite INSERT + COMMIT per request) under the same burst. The targets are printed with
PASS/MISS and are never fatal. --quick runs 100 complaints and 5 s of steady load, as a smoke test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the stand-ins and the Dovecot helper live with the tests, not installed

from benchmarks.common import complaint_texts, throwaway_database  # noqa: E402
from benchmarks.pipeline_report import Results, email_targets, report  # noqa: E402
from benchmarks.pipeline_scenarios import Run, email_burst, intake_scenario, steady, webhooks  # noqa: E402
from benchmarks.pipeline_service import LIVE, TELEGRAM_TOKEN, WECHAT_SECRET  # noqa: E402
from benchmarks.pipeline_sinks import Sinks  # noqa: E402
from benchmarks.wechat_webhook import APP_ID  # noqa: E402
from tests.channels.mail.dovecot import MISSING  # noqa: E402

SCENARIOS = ("email-desk", "email-nodesk", "webhooks", "steady", "intake")


async def amain(args: argparse.Namespace) -> Results:
    backends = ("sqlite", "postgres") if args.backend == "all" else (args.backend,)
    results = Results()
    root = Path(tempfile.mkdtemp(prefix="complaintbot-pipeline-"))
    sinks = Sinks(TELEGRAM_TOKEN, APP_ID, WECHAT_SECRET)
    try:
        with sinks.running():
            run = Run(args, sinks, root, complaint_texts(), results)
            for backend in backends:
                for scenario in args.scenarios:
                    print(f"{backend} {scenario} (load average {os.getloadavg()[0]:.2f})", flush=True)
                    if scenario == "intake":
                        await intake_scenario(run, backend)
                        continue
                    workdir = run.workdir(backend, scenario)
                    async with throwaway_database(
                        backend, scenario, prefix="complaintbot_pipeline", directory=workdir
                    ) as url:
                        if url is None:
                            break
                        try:
                            if scenario.startswith("email-"):
                                await email_burst(run, backend, url, workdir, desks=scenario == "email-desk")
                            elif scenario == "webhooks":
                                await webhooks(run, backend, url, workdir)
                            else:
                                await steady(run, backend, url, workdir)
                        except Exception as exc:  # the next scenario may still run; the report says so
                            print(f"  {backend} {scenario} FAILED: {type(exc).__name__}: {exc}")
                            results.notes.append(f"{backend} {scenario}: FAILED: {type(exc).__name__}: {exc}")
    finally:
        for process in list(LIVE):
            process.terminate()
        shutil.rmtree(root, ignore_errors=True)
    return results


def code_state() -> str:
    """The commit measured, and any uncommitted change to the product (the benchmark itself left out)."""
    try:
        head = subprocess.run(
            ["git", "-C", str(ROOT), "log", "-1", "--format=%h %cd", "--date=iso"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.split("\n")
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git)"
    changed = [line[3:] for line in status if line.strip()]
    return head + (f", uncommitted changes in {', '.join(changed)}" if changed else ", clean")


def main() -> None:
    parser = argparse.ArgumentParser(
        description="complaintbot run, end to end: complaint in, acknowledgement out."
    )
    parser.add_argument(
        "--n", type=int, default=None, help="complaints per burst (default 1000; --quick 100)"
    )
    parser.add_argument("--backend", choices=("sqlite", "postgres", "all"), default="sqlite")
    parser.add_argument(
        "--scenario", default="all", help=f"comma-separated, of {', '.join(SCENARIOS)} (default all)"
    )
    parser.add_argument(
        "--rate", type=float, default=20.0, help="steady: complaints a second, all channels (default 20)"
    )
    parser.add_argument(
        "--seconds", type=float, default=None, help="steady: how long (default 20; --quick 5)"
    )
    parser.add_argument("--concurrency", type=int, default=50, help="webhook bursts and intake (default 50)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: --n 100, --seconds 5")
    parser.add_argument("--seed", type=int, default=20261123, help="workload seed")
    parser.add_argument("--keep-logs", metavar="DIR", help="copy each service log there")
    args = parser.parse_args()
    args.n = args.n if args.n is not None else (100 if args.quick else 1000)
    args.seconds = args.seconds if args.seconds is not None else (5.0 if args.quick else 20.0)
    args.scenarios = (
        list(SCENARIOS) if args.scenario == "all" else [s.strip() for s in args.scenario.split(",")]
    )
    unknown = [s for s in args.scenarios if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    if args.n < 1 or args.rate <= 0 or args.seconds <= 0 or args.concurrency < 1:
        parser.error("--n, --rate, --seconds and --concurrency must be positive")
    if MISSING and any(s in args.scenarios for s in ("email-desk", "email-nodesk", "steady")):
        parser.exit(1, f"{MISSING}\n")
    load_before = os.getloadavg()
    began = time.time()
    code = code_state()
    print(f"code: {code}", flush=True)
    try:
        results = asyncio.run(amain(args))
    except KeyboardInterrupt:
        print("\ninterrupted: everything started was stopped")
        raise SystemExit(130) from None
    email_targets(results, args.n)
    report(results, args)
    if code_state() != code:
        print(f"\nWARNING: the code changed during the run: now {code_state()}")
    load = os.getloadavg()
    print(
        f"\nload average (1/5/15 min) {load_before[0]:.2f}/{load_before[1]:.2f}/{load_before[2]:.2f} before,"
        f" {load[0]:.2f}/{load[1]:.2f}/{load[2]:.2f} after, on {os.cpu_count()} CPUs; whole run"
        f" {time.time() - began:.0f} s"
    )


if __name__ == "__main__":
    main()
