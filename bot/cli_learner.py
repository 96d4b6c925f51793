"""`complaintbot learner forget NUMBER`: erase a learner's personal data on request (POLICY.md §7).

The operator names one of the learner's tickets; every ticket of that learner is erased. They are
shown what will be erased (masked, enough to compare with the person asking) and must confirm that
they verified the learner's identity. Without a terminal to ask on (a script, CI) nothing happens
unless `--yes` says the identity was verified. Open tickets do not stop an erasure: the learner's
right does not wait for the school's backlog. They are listed, stay open, and staff close them.
"""

from __future__ import annotations

import getpass
import json
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.app import Application
from bot.cli_base import fail, out, with_app
from core.context import CoreContext
from core.privacy.erasure import ErasureReport, erase_learner, lock_conflict
from core.storage.models import Learner, LearnerIdentity, Ticket
from core.storage.privacy import mask
from core.tickets.queries import get_ticket
from core.tickets.workflow import CLOSED

learner_app = typer.Typer(help="Learners' personal data.", no_args_is_help=True)


@dataclass(frozen=True)
class Preview:
    number: str
    who: str  # masked
    tickets: list[str]
    open_tickets: list[str]
    erased_at: datetime | None
    done: bool  # nothing left to erase

    def text(self) -> str:
        lines = [
            f"{self.number}: learner {self.who}, {len(self.tickets)} ticket(s): {', '.join(self.tickets)}"
        ]
        if self.open_tickets:
            lines.append(
                f"still open: {', '.join(self.open_tickets)} — they stay open for staff to close; "
                "nobody can be written to once erased"
            )
        return "\n".join(lines)


@learner_app.command("forget")
def learner_forget(
    number: Annotated[str, typer.Argument(help="one of the learner's ticket numbers")],
    yes: Annotated[
        bool, typer.Option("--yes", help="the learner's identity is verified: do not ask")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="stable JSON output")] = False,
) -> None:
    """Erase a learner's personal data from all their tickets, keeping the statistics."""
    actor = f"operator:{getpass.getuser()}"
    reason = "learner's request; identity verified by the operator" + (" (--yes)" if yes else "")

    async def action(application: Application) -> tuple[Preview, ErasureReport | None]:
        core = application.core
        async with core.sessions() as session:
            preview = await _preview(core, session, await get_ticket(session, number, core.prefix))
        if preview.done:
            return preview, None
        # Asked with no transaction open: on SQLite an open write transaction would hold the whole
        # database for as long as the operator thinks.
        if not yes:
            _confirm(preview)
        attempt = 1
        while True:
            try:
                async with core.sessions() as session, session.begin():
                    ticket = await get_ticket(session, number, core.prefix)
                    learner = await session.get_one(Learner, ticket.learner_id)
                    now = datetime.now(UTC)
                    return preview, await erase_learner(core, session, learner, now, actor, reason)
            except DBAPIError as exc:
                # The retention duty was erasing the same learner: ours was rolled back whole.
                if attempt == 3 or not lock_conflict(exc):
                    raise
                attempt += 1

    preview, report = with_app(action)
    view = _view(preview, report)
    if as_json:
        print(json.dumps(view, ensure_ascii=False, indent=2))
        return
    if report is None:
        erased_at = preview.erased_at.isoformat() if preview.erased_at else "earlier"
        out.print(
            f"nothing to erase: the learner of {preview.number} was erased {erased_at}",
            markup=False,
            soft_wrap=True,
        )
        return
    out.print(
        f"erased: {len(report.tickets)} ticket(s) {', '.join(report.tickets) or '-'}, "
        f"{report.scrubbed.messages} message(s), {report.scrubbed.outbox_rows} outbox row(s), "
        f"{len(report.scrubbed.files_removed)} file(s); learner's contact data "
        + ("erased" if report.learner_erased else "already erased"),
        markup=False,
        soft_wrap=True,
    )
    if report.open_tickets:
        out.print(
            f"still open, for staff to close: {', '.join(report.open_tickets)}", markup=False, soft_wrap=True
        )
    for path in report.scrubbed.files_left:
        typer.echo(f"warning: could not remove {path}: remove it by hand", err=True)


async def _preview(core: CoreContext, session: AsyncSession, ticket: Ticket) -> Preview:
    learner = await session.get_one(Learner, ticket.learner_id)
    tickets = list(
        await session.scalars(select(Ticket).where(Ticket.learner_id == learner.id).order_by(Ticket.id))
    )
    channels = await session.scalars(
        select(LearnerIdentity.channel).where(LearnerIdentity.learner_id == learner.id)
    )
    # Masked, as staff see learners: enough to compare with the person asking, no more.
    who = [
        mask(kind, core.vault.decrypt(token))
        for kind, token in (
            ("name", learner.name_enc),
            ("phone", learner.phone_enc),
            ("email", learner.email_enc),
        )
        if token
    ]
    shown = sorted(set(channels))
    if shown:
        who.append(f"on {', '.join(shown)}")
    return Preview(
        number=ticket.number,
        who=" ".join(who) or "(no contact data left)",
        tickets=[t.number for t in tickets],
        open_tickets=[t.number for t in tickets if t.status != CLOSED],
        erased_at=learner.erased_at,
        done=learner.erased_at is not None and all(t.anonymized_at is not None for t in tickets),
    )


def _confirm(preview: Preview) -> None:
    if sys.stdin is None or not sys.stdin.isatty():
        raise fail(
            f"not erasing {preview.number}'s learner without confirmation and there is no terminal to ask: "
            "verify the learner's identity, then run again with --yes"
        )
    typer.echo(preview.text(), err=True)
    # Asked on stderr and read from stdin by hand: typer.confirm writes part of its prompt to stdout,
    # which must hold only the result (or the JSON).
    typer.echo(
        "Have you verified the identity of the person asking, and erase this learner's personal data "
        "for good? [y/N]: ",
        err=True,
        nl=False,
    )
    if sys.stdin.readline().strip().lower() not in ("y", "yes"):
        raise fail("not confirmed: nothing erased")


def _view(preview: Preview, report: ErasureReport | None) -> dict[str, Any]:
    return {
        "number": preview.number,
        "erased": report is not None and report.changed,
        "learner_erased": report is not None and report.learner_erased,
        "tickets": report.tickets if report else [],
        "open_tickets": report.open_tickets if report else preview.open_tickets,
        "messages": report.scrubbed.messages if report else 0,
        "outbox_rows": report.scrubbed.outbox_rows if report else 0,
        "files_removed": len(report.scrubbed.files_removed) if report else 0,
        "files_left": report.scrubbed.files_left if report else [],
    }
