"""What benchmarks/pipeline.py found, and its report: figures, result records, tables and targets.

A `Row` is one channel of one scenario end to end (made from the load's items by `row_of`), a `Baseline`
the same work without the service, a `ServiceRun` the service's own view (its /metrics, its outbox, its
log); `Results` holds them all with the targets and notes, and `report` prints them as tables.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from benchmarks.pipeline_load import Item
from benchmarks.pipeline_service import Histogram, Metrics

EMAIL_TARGET_S, ACK_P99_TARGET_S, WECHAT_P99_TARGET_S, INTAKE_TARGET = 10.0, 2.0, 0.100, 1000.0
PASS = ("MISS", "PASS")


# -- figures -------------------------------------------------------------------------------------------------


def quantile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def secs(value: float | None) -> str:
    if value is None:
        return "-"
    if math.isinf(value):
        return ">300s"
    return f"{value * 1000:.0f}ms" if value < 1 else f"{value:.2f}s"


@dataclass
class Row:
    """One channel of one scenario, end to end."""

    scenario: str
    backend: str
    channel: str
    n: int
    per_s: float | None  # intake rate
    responses: list[float]  # webhooks: request sent to response complete
    acks: list[float]  # receipt to first acknowledgement out
    last: float | None  # phase start to the last first-acknowledgement
    missing: int | None  # None: no acknowledgement expected (voicemail)
    duplicates: int | None
    bad: int = 0  # webhooks: non-2xx or no response
    after_commit: list[float] = field(default_factory=list)  # commit (seen from outside) to first ack

    def cells(self) -> list[str]:
        rate = f"{self.per_s:,.0f}" if self.per_s is not None else "-"
        missing = "-" if self.missing is None else str(self.missing)
        dup = "-" if self.duplicates is None else str(self.duplicates)
        return [
            self.scenario,
            self.backend,
            self.channel,
            str(self.n),
            rate,
            secs(quantile(self.responses, 0.5)),
            secs(quantile(self.responses, 0.99)),
            secs(quantile(self.acks, 0.5)),
            secs(quantile(self.acks, 0.99)),
            secs(max(self.acks) if self.acks else None),
            secs(self.last),
            secs(quantile(self.after_commit, 0.5)),
            secs(quantile(self.after_commit, 0.99)),
            missing,
            dup,
            str(self.bad),
        ]


@dataclass
class Baseline:
    scenario: str
    backend: str
    what: str
    n: int
    per_s: float
    latencies: list[float]
    last: float
    ours_per_s: float | None = None
    ours_p99: float | None = None
    ours_last: float | None = None


@dataclass
class ServiceRun:
    scenario: str
    backend: str
    metrics: Metrics
    outbox: dict[str, str]
    said: list[str]
    findings: list[str]
    exit_code: int | None
    stop_seconds: float


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    baselines: list[Baseline] = field(default_factory=list)
    services: list[ServiceRun] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def row_of(
    scenario: str, backend: str, channel: str, items: Sequence[Item], start: float | None, acked: bool = True
) -> Row:
    """`start`: when the phase began (the service's start for a waiting mailbox, else the first request)."""
    firsts = [(item, min(item.acks)) for item in items if item.acks]
    responses = [
        item.answered - item.handed for item in items if item.answered is not None and item.status > 0
    ]
    answered = [item.answered for item in items if item.answered is not None]
    per_s = None
    if answered and start is not None:
        per_s = len(items) / max(max(answered) - start, 1e-9)
    return Row(
        scenario,
        backend,
        channel,
        len(items),
        per_s,
        responses,
        [at - item.handed for item, at in firsts],
        max(at for _, at in firsts) - start if firsts and start is not None else None,
        sum(1 for item in items if not item.acks) if acked else None,
        sum(1 for item in items if len(item.acks) > 1) if acked else None,
        sum(1 for item in items if item.answered is not None and not 200 <= item.status < 300),
        [at - item.committed for item, at in firsts if item.committed is not None],
    )


# -- the report ----------------------------------------------------------------------------------------------


def table(header: Sequence[str], rows: Iterable[Sequence[str]], left: int = 3) -> None:
    rows = [list(r) for r in rows]
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=False)]
    for line in [list(header), *rows]:
        cells = [
            c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths, strict=False))
        ]
        print("  ".join(cells).rstrip())


def _times(ours: float | None, base: float | None) -> str:
    return f"{ours / base:,.1f}x" if ours is not None and base else "-"


def report(results: Results, args: argparse.Namespace) -> None:
    print(
        "\n== end to end (latency from receipt: request sent / mail appended / the service's start for"
        " a waiting mailbox)"
    )
    table(
        [
            "scenario",
            "backend",
            "channel",
            "n",
            "intake/s",
            "resp p50",
            "resp p99",
            "ack p50",
            "ack p99",
            "ack max",
            "last ack",
            "commit>ack p50",
            "p99",
            "missing",
            "dup",
            "non-2xx",
        ],
        (row.cells() for row in results.rows),
    )
    print(
        "  intake/s: e-mail burst = n / (all flagged \\Seen - service answering /healthz); webhook burst"
        " = n / (last response - first request); steady = the offered rate. last ack: from the"
        " service's start (e-mail burst) or the phase's first request. commit>ack: from the commit as"
        " seen outside (e-mail: the service's log line for the message; Telegram: its 2xx) to the"
        " acknowledgement. voicemail: intake only (no written channel)."
    )
    print("\n== the service's own view (/metrics at the end: bucket upper bounds; outbox after SIGTERM)")
    lines = []
    for s in results.services:
        for channel in sorted(set(s.metrics.ack) | set(s.metrics.intake)):
            ack, intake = s.metrics.ack.get(channel, Histogram()), s.metrics.intake.get(channel, Histogram())
            lines.append(
                [
                    s.scenario,
                    s.backend,
                    channel,
                    f"{ack.count:.0f}",
                    f"<={secs(ack.bound(0.5))}",
                    f"<={secs(ack.bound(0.99))}",
                    f"{intake.count:.0f}",
                    f"<={secs(intake.bound(0.5))}",
                    f"<={secs(intake.bound(0.99))}",
                ]
            )
    table(
        [
            "scenario",
            "backend",
            "channel",
            "acks",
            "ack-after-commit p50",
            "p99",
            "intakes",
            "intake p50",
            "p99",
        ],
        lines,
    )
    for s in results.services:
        print(f"  {s.backend} {s.scenario}: exit {s.exit_code}, stopped {s.stop_seconds:.1f} s after SIGTERM")
        results_line = ", ".join(
            f"{lane} {result}={n:.0f}" for (lane, result), n in sorted(s.metrics.results.items())
        )
        print(f"    outbox results: {results_line or '-'}")
        for lane, counts in sorted(s.outbox.items()):
            print(f"    outbox {lane}: {counts}")
        for line in s.said:
            print(f"    said: {line}")
        if s.findings:
            print("    warnings/errors in its log:")
            for line in s.findings:
                print(f"    {line}")
        else:
            print("    no warning or error in its log")
    print("\n== baselines, same run")
    table(
        [
            "scenario",
            "backend",
            "baseline",
            "n",
            "per_s",
            "p50",
            "p99",
            "max",
            "last",
            "ours per_s",
            "ours p99",
            "ours last",
            "rate ratio",
            "p99 ours/base",
        ],
        (
            [
                b.scenario,
                b.backend,
                b.what,
                str(b.n),
                f"{b.per_s:,.0f}",
                secs(quantile(b.latencies, 0.5)),
                secs(quantile(b.latencies, 0.99)),
                secs(max(b.latencies) if b.latencies else None),
                secs(b.last),
                f"{b.ours_per_s:,.0f}" if b.ours_per_s is not None else "-",
                secs(b.ours_p99),
                secs(b.ours_last),
                f"{b.ours_per_s / b.per_s:.1%}" if b.ours_per_s and b.per_s else "-",
                _times(b.ours_p99, quantile(b.latencies, 0.99)),
            ]
            for b in results.baselines
        ),
    )
    print(
        "  e-mail: per_s = replies / time to the last one; ours = acknowledgements / time from the"
        " service's start to the last one. bare route: per_s and p99 of responses; ours = WeChat's."
        " intake: complaints/s."
    )
    if results.notes:
        print("\n== notes")
        for note in results.notes:
            print(f"  {note}")
    print("\n== targets (reported, never fatal)")
    for line in results.targets:
        print(f"  {line}")
    if not any("intake >=" in t for t in results.targets):
        print(
            f"  intake >= {INTAKE_TARGET:,.0f} complaints/s with {args.concurrency} concurrent callers:"
            " not run here; `--scenario intake --backend sqlite`, or `.venv/bin/python"
            f" benchmarks/intake.py --backend sqlite --concurrency {args.concurrency}`"
        )


def email_targets(results: Results, n: int) -> None:
    for row in results.rows:
        if row.backend != "sqlite" or not row.scenario.startswith("email-"):
            continue
        scale = "" if n == 1000 else f" (here n={n}; the target is for 1,000)"
        ok = row.last is not None and row.last <= EMAIL_TARGET_S and row.missing == 0
        results.targets.append(
            f"sqlite {row.scenario}: {n} waiting e-mails all acknowledged within {EMAIL_TARGET_S:.0f} s of"
            f" the service's start: last at {secs(row.last)}, {row.missing} missing {PASS[ok]}{scale}"
        )
        outside = quantile(row.after_commit, 0.99)
        ok = outside is not None and outside <= ACK_P99_TARGET_S
        results.targets.append(
            f"sqlite {row.scenario}: acknowledgement p99 <= {ACK_P99_TARGET_S:.0f} s after commit during the"
            f" burst (commit = the service's log line, {len(row.after_commit)} matched): {secs(outside)}"
            f" {PASS[ok]}"
        )
        service = next(
            (s for s in results.services if s.scenario == row.scenario and s.backend == "sqlite"), None
        )
        p99 = service.metrics.ack.get("email", Histogram()).bound(0.99) if service else None
        ok = p99 is not None and p99 <= ACK_P99_TARGET_S
        results.targets.append(
            f"sqlite {row.scenario}: the same by the service's own histogram"
            f" (complaintbot_acknowledgement_seconds): <= {secs(p99)} {PASS[ok]}"
        )
