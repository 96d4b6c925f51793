"""`complaintbot classify export`: staff corrections of category and severity as labelled examples."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from bot.app import Application
from bot.cli_base import fail, with_app
from bot.errors import os_reason
from core.tickets.corrections import export_rows

classify_app = typer.Typer(help="The classifier and what staff taught it.", no_args_is_help=True)


@classify_app.command("export")
def classify_export(
    out_file: Annotated[
        Path | None, typer.Option("--out", help="write JSON Lines here (default: standard output)")
    ] = None,
) -> None:
    """Every staff correction (/transfer, /severity) as one JSON line: the ticket, the field, what the
    classifier said and what staff corrected it to, the masked text and the classifier's findings in it."""

    async def action(application: Application) -> list[dict[str, Any]]:
        async with application.core.sessions() as session:
            return await export_rows(session, application.core.vault)

    rows = with_app(action)
    lines = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    if out_file is None:
        typer.echo(lines, nl=False)
        return
    try:
        out_file.write_text(lines, encoding="utf-8")
    except OSError as exc:
        raise fail(f"cannot write {out_file}: {os_reason(exc)}") from None
    typer.echo(f"{len(rows)} correction(s) written to {out_file}", err=True)
