"""`complaintbot demo`: its options here, the story in `bot.demo`, loaded only when asked for (the stand-ins,
Rich and the story would otherwise slow down every other command's start)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def demo_command(
    lang: Annotated[str, typer.Option("--lang", help="zh or en: the staff chat's language")] = "zh",
    speed: Annotated[
        float,
        typer.Option("--speed", help="how fast the story is told: 2 is twice as fast, 0 without pauses"),
    ] = 1.0,
    keep: Annotated[
        Path | None,
        typer.Option(
            "--keep", help="a new directory to keep the database and config in, to look at afterwards"
        ),
    ] = None,
    svg: Annotated[Path | None, typer.Option("--svg", help="also save the screen as an SVG picture")] = None,
) -> None:
    """Watch the whole story offline in about a minute: complaints on four channels, staff at work, the
    clock moved forward for reminders and escalations, the month's report."""
    from bot.demo import run_demo

    run_demo(lang, speed, keep, svg)
