"""The command line's own mistakes, said as every other error is: one line, with what to do.

Typer hands a usage error (an unknown option, a missing argument, a value out of range) to click, which
prints a box or four lines; here it is `error: No such option: --bogus Did you mean --json? (see
`complaintbot tickets list --help`)`. Help shows what each value is (`--at TIME`), not a type name.
"""

from __future__ import annotations

import typer
from typer.core import TyperOption

try:  # typer from 0.2x carries its own copy of click
    from typer._click.core import Command, Context
    from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover - older typer, on click itself
    from click.core import Command, Context  # type: ignore[assignment]
    from click.exceptions import ClickException, NoArgsIsHelpError, UsageError  # type: ignore[assignment]

__all__ = ["Command", "Context", "one_line_usage_errors"]

# What an option's value is, in help: `--at TIME`, not `--at <str>`; otherwise the option's name.
METAVARS = {"at": "TIME", "config": "PATH", "directory": "DIR", "out_dir": "DIR", "keep": "DIR"}


def name_values(command: Command) -> None:
    for param in command.params:
        if isinstance(param, TyperOption) and not param.is_flag and param.metavar is None:
            name = param.name or ""
            param.metavar = METAVARS.get(name, name.upper())
    for sub in getattr(command, "commands", {}).values():
        name_values(sub)


def one_line_usage_errors(command: Command, prog_name: str) -> None:
    """Run `command` as the program; exits with its code."""
    name_values(command)
    try:
        code = command.main(prog_name=prog_name, standalone_mode=False)
    except NoArgsIsHelpError as exc:  # `complaintbot tickets`: the help it asked for
        typer.echo(exc.ctx.get_help() if exc.ctx else exc.format_message())
        raise SystemExit(0) from None
    except UsageError as exc:
        where = exc.ctx.command_path if exc.ctx else prog_name
        message = " ".join(exc.format_message().split())
        typer.echo(f"error: {message} (see `{where} --help`)", err=True)
        raise SystemExit(2) from None
    except ClickException as exc:
        typer.echo(f"error: {' '.join(exc.format_message().split())}", err=True)
        raise SystemExit(exc.exit_code) from None
    except typer.Abort:
        typer.echo("aborted", err=True)
        raise SystemExit(1) from None
    raise SystemExit(code if isinstance(code, int) else 0)
