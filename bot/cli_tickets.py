"""`complaintbot tickets list` and `tickets show`: tickets as staff and operators look them up, as a table
or as stable JSON (INTERFACES.md)."""

from __future__ import annotations

import getpass
import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.table import Column, Table
from rich.text import Text

from bot.app import Application
from bot.cli_base import fail, out, with_app
from bot.cli_sweep import parse_at
from core.tickets.moves import record_disclosure
from core.tickets.queries import LIST_FILTERS, count_tickets, get_ticket, list_tickets
from core.tickets.search import Query, SearchError, parse_query, search_listed
from core.tickets.views import summary_view, ticket_view

tickets_app = typer.Typer(help="Look at tickets.", no_args_is_help=True)


def _print_json(data: Any) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2))


def _search_query(search: str | None) -> Query | None:
    if search is None:
        return None
    try:
        return parse_query(search)
    except SearchError as exc:
        raise fail(f"--search: {exc}") from None


@tickets_app.command("list")
def tickets_list(
    status: Annotated[str, typer.Option(help=f"one of {', '.join(LIST_FILTERS)}")] = "open",
    as_json: Annotated[bool, typer.Option("--json", help="stable JSON output")] = False,
    at: Annotated[
        str | None, typer.Option("--at", help="as of this ISO-8601 time (default now), as `sweep --at`")
    ] = None,
    search: Annotated[
        str | None,
        typer.Option(help="words of the complaint, part of a number, or a phone tail (*8000, audited)"),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="at most this many, newest first")] = 50,
    offset: Annotated[int, typer.Option("--offset", min=0, help="skip this many (the next page)")] = 0,
) -> None:
    """List tickets, newest first, a page at a time: says how many more there are."""
    if status not in LIST_FILTERS:
        raise fail(f"unknown --status {status!r}: use {', '.join(LIST_FILTERS)}")
    query = _search_query(search)

    async def action(application: Application) -> tuple[list[dict[str, Any]], int, int | None]:
        now = parse_at(at, application.core.policy.calendar.timezone)
        scanned = None
        async with application.core.sessions() as session, session.begin():
            if query is None:
                total = await count_tickets(session, status, now)
                rows = await list_tickets(session, status, now, limit=limit, offset=offset)
            else:
                who = f"operator:{getpass.getuser()}"
                found = await search_listed(
                    application.core, session, query, status, now, who, limit=limit, offset=offset
                )
                total, rows, scanned = found.total, found.tickets, found.scanned
            return [await summary_view(application.core, session, t, now) for t in rows], total, scanned

    views, total, scanned = with_app(action)
    if as_json:
        data: dict[str, Any] = {"total": total, "offset": offset, "limit": limit, "tickets": views}
        if scanned is not None:  # `total` counts the matches among the newest `searched_newest` only
            data["searched_newest"] = scanned
        _print_json(data)
        return
    # The number is what staff copy into the next command: never cut it short, however narrow the terminal.
    number = Column("number", no_wrap=True, min_width=max((len(v["number"]) for v in views), default=6))
    table = Table(number, "status", "category", "severity", "department", "owner", "due", "summary")
    for v in views:
        due = f"{v['due_stage']} {v['due_at'][:16]}" if v["due_at"] else ""
        # Every cell is Text, never markup: a learner's summary must not be read as Rich markup. (Text, not
        # rich.markup.escape: an escaped cell that ends in a backslash would show the backslash doubled.)
        table.add_row(
            Text(v["number"]),
            Text(v["status"]),
            Text(v["category"]),
            Text(v["severity"]),
            Text(v["department"]),
            Text(v["owner"] or ""),
            Text(f"{due} OVERDUE", style="red") if v["overdue"] else Text(due),
            Text(v["summary"][:40]),
        )
    out.print(table)
    more = total - offset - len(views)
    if more > 0:
        out.print(
            f"… and {more} more of {total}: --offset {offset + len(views)} for the next page", markup=False
        )
    elif not views:
        out.print(f"no {status} tickets" if total == 0 else f"none past --offset {offset} ({total} in all)")
    if scanned is not None:
        out.print(f"(searched the newest {scanned} tickets: older ones were not read)", markup=False)


@tickets_app.command("show")
def tickets_show(
    number: str,
    as_json: Annotated[bool, typer.Option("--json", help="stable JSON output")] = False,
    full: Annotated[
        bool,
        typer.Option("--full", help="phone numbers and addresses unmasked (recorded in the audit trail)"),
    ] = False,
) -> None:
    """One ticket with its messages, clocks and events; personal data masked unless --full."""
    now = datetime.now(UTC)

    async def action(application: Application) -> dict[str, Any]:
        async with application.core.sessions() as session, session.begin():
            ticket = await get_ticket(session, number, application.core.prefix)
            if full:
                record_disclosure(
                    session, ticket, f"operator:{getpass.getuser()}", now, "tickets show --full"
                )
            return await ticket_view(application.core, session, ticket, now, full=full)

    view = with_app(action)
    if as_json:
        _print_json(view)
        return
    # Only the headings are markup; every value (the course is a learner's answer) is printed as text.
    out.print(
        Text.assemble(
            (view["number"], "bold"),
            f"  {view['status']}  {view['category']}/{view['severity']}  "
            f"{view['department']}  via {view['channel']}  owner: {view['owner'] or '-'}",
        )
    )
    if view["merged_into"]:  # its number leads there: that ticket carries the complaint on
        out.print(f"merged into {view['merged_into']}", markup=False)
    if view["merged"]:
        out.print(f"merged into this one: {', '.join(view['merged'])}", markup=False)
    out.print(
        f"first contact: {view['first_contact']}  course: {view['course'] or '-'}  "
        f"created {view['created_at']}",
        markup=False,
    )
    out.print("[bold]clocks[/bold]")
    for c in view["clocks"]:
        state = (
            f"met {c['met_at'][:16]}"
            if c["met_at"]
            else ("waits on learner" if c["waits_on_learner"] else "open")
        )
        out.print(
            f"  {c['stage']:<12} due {c['due_at'][:16]}  {state}  level {c['escalation_level']}",
            markup=False,
        )
    out.print("[bold]messages[/bold]")
    for m in view["messages"]:
        out.print(f"  {m['at'][:16]} {m['direction']:>3} {m['channel']}: {m['text'][:200]}", markup=False)
    out.print("[bold]events[/bold]")
    for e in view["events"]:
        out.print(f"  {e['at'][:16]} {e['actor']}: {e['action']} {e['detail'] or ''}", markup=False)
    undelivered = [o for o in view["outbox"] if o["status"] != "sent"]
    if undelivered:
        out.print("[bold]not delivered[/bold]")
        for o in undelivered:
            if o["status"] == "parked":  # nothing configured to reach it: it waits, untried
                state = f"parked until its destination is configured: {o['last_error'] or ''}"
            else:
                state = f"{o['status']} after {o['attempts']} attempt(s) {o['last_error'] or ''}"
            out.print(f"  {o['kind']} via {o['channel']}: {state}", markup=False)
