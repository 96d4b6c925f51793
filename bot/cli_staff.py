"""`complaintbot staff`: the staff directory (who may act on tickets, where, with which role)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from bot.app import Application
from bot.cli_base import out, with_app
from core.tickets.staff import add_or_restore_staff, list_staff, remove_staff

staff_app = typer.Typer(help="The staff directory.", no_args_is_help=True)


def _row(staff: Any) -> dict[str, Any]:
    return {
        "id": staff.id,
        "name": staff.name,
        "department": staff.department,
        "role": staff.role,
        "telegram_id": staff.telegram_id,
        "email": staff.email,
        "wecom_id": staff.wecom_id,
        "active": staff.active,
    }


@staff_app.command("add")
def staff_add(
    name: Annotated[str, typer.Option("--name", help="display name")],
    department: Annotated[
        str, typer.Option("--department", help="service|teaching|finance|academic|compliance")
    ],
    role: Annotated[str, typer.Option("--role", help="staff|head|manager")],
    telegram_id: Annotated[str | None, typer.Option("--telegram-id", help="numeric Telegram user id")] = None,
    email: Annotated[
        str | None, typer.Option("--email", help="their e-mail address (alerts, notes by mail)")
    ] = None,
    wecom_id: Annotated[str | None, typer.Option("--wecom-id", help="their WeCom user id")] = None,
) -> None:
    """Register a staff member; one who was removed is restored, with their history."""
    now = datetime.now(UTC)

    async def action(application: Application) -> tuple[dict[str, Any], bool]:
        async with application.core.sessions() as session, session.begin():
            departments = tuple(application.core.department_names)
            staff, restored = await add_or_restore_staff(
                session,
                name=name,
                department=department,
                role=role,
                now=now,
                telegram_id=telegram_id,
                email=email,
                wecom_id=wecom_id,
                departments=departments,
            )
            return _row(staff), restored

    row, restored = with_app(action)
    did = "restored (with their history)" if restored else "added"
    out.print(f"{did} #{row['id']} {row['name']} ({row['department']}/{row['role']})", markup=False)


@staff_app.command("list")
def staff_list(
    as_json: Annotated[bool, typer.Option("--json", help="stable JSON output")] = False,
    include_removed: Annotated[bool, typer.Option("--all", help="include removed staff")] = False,
) -> None:
    """List the staff directory."""

    async def action(application: Application) -> list[dict[str, Any]]:
        async with application.core.sessions() as session:
            return [_row(s) for s in await list_staff(session, include_removed=include_removed)]

    rows = with_app(action)
    if as_json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    table = Table("id", "name", "department", "role", "telegram", "email", "active")
    for r in rows:
        table.add_row(
            str(r["id"]),
            r["name"],
            r["department"],
            r["role"],
            r["telegram_id"] or "",
            r["email"] or "",
            "yes" if r["active"] else "removed",
        )
    out.print(table)


@staff_app.command("remove")
def staff_remove(staff_id: Annotated[int, typer.Argument(help="the id shown by `staff list`")]) -> None:
    """Remove a staff member: they can no longer act; what they did stays attributed to them."""

    async def action(application: Application) -> dict[str, Any]:
        async with application.core.sessions() as session, session.begin():
            return _row(await remove_staff(session, staff_id))

    row = with_app(action)
    out.print(f"removed #{row['id']} {row['name']}", markup=False)
