"""`complaintbot report` (the month's KPI report, as JSON or as PDF + PNG charts) and `complaintbot
credit` (the quarter's credit grades)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from bot.app import Application
from bot.cli_base import fail, out, with_app
from core.reports.credit import QuarterGrades, quarter_grades
from core.reports.figures import month_figures
from core.reports.periods import (
    PeriodError,
    month_period,
    previous_month,
    previous_quarter,
    quarter_period,
)


def report_command(
    month: Annotated[
        str | None, typer.Option("--month", help="YYYY-MM (default: the month before this one)")
    ] = None,
    department: Annotated[str | None, typer.Option("--department", help="one department's key")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="the figures as stable JSON")] = False,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="write the PDF and the PNG charts into this directory")
    ] = None,
) -> None:
    """The month's report: complaints, deadlines, handling times, satisfaction, follow-ups."""
    now = datetime.now(UTC)

    async def action(application: Application) -> dict[str, Any]:
        core = application.core
        tz = core.calendar.tz
        try:
            period = month_period(month, tz) if month is not None else previous_month(now, tz)
        except PeriodError as exc:
            raise fail(str(exc)) from None
        if department is not None and department not in core.department_names:
            known = ", ".join(sorted(core.department_names))
            raise fail(f"unknown --department {department!r}: use one of {known}")
        async with core.sessions() as session:
            return await month_figures(session, core.policy, period, now, department=department)

    figures = with_app(action)
    if out_dir is not None:
        from core.reports.drawing import FontMissing  # matplotlib only when drawing
        from core.reports.pdf import render_report

        try:
            rendered = render_report(figures, out_dir, now)
        except FontMissing as exc:
            raise fail(str(exc)) from None
        except OSError as exc:
            raise fail(f"cannot write the report into {out_dir}: {exc.strerror}") from None
        if not as_json:
            out.print(f"wrote {rendered.pdf} and {len(rendered.pngs)} charts", markup=False, soft_wrap=True)
    if as_json:
        print(json.dumps(figures, ensure_ascii=False, indent=2))
    elif out_dir is None:
        from core.reports.summary import summary_lines

        for line in summary_lines(figures):
            out.print(line, markup=False)


def credit_command(
    quarter: Annotated[
        str | None, typer.Option("--quarter", help="YYYYQn (default: the quarter before this one)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="grades and their inputs as stable JSON")] = False,
) -> None:
    """Credit grades A–D per department and staff member; a finished quarter's are kept and acted on once."""
    now = datetime.now(UTC)

    async def action(application: Application) -> QuarterGrades:
        core = application.core
        tz = core.calendar.tz
        try:
            period = quarter_period(quarter, tz) if quarter is not None else previous_quarter(now, tz)
        except PeriodError as exc:
            raise fail(str(exc)) from None
        return await quarter_grades(core, period, now)

    result = with_app(action)
    if as_json:
        data = {
            "schema_version": 1,
            "quarter": result.quarter,
            "final": result.final,
            "grades": [grade.as_json() for grade in result.grades],
        }
        print(json.dumps(data, ensure_ascii=False, indent=2))
        return
    state = "kept" if result.final else "provisional: the quarter is not over"
    out.print(f"credit grades {result.quarter} ({state})", markup=False)
    table = Table("kind", "name", "department", "grade", "score", "previous", "repaired")
    for grade in result.grades:
        table.add_row(
            Text(grade.kind),
            Text(grade.name),
            Text(grade.department),
            Text(grade.grade),
            Text("" if grade.score is None else f"{grade.score:.1f}"),
            Text(grade.previous_grade or ""),
            Text("yes" if grade.repaired else ""),
        )
    out.print(table)
