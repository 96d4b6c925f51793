"""`complaintbot privacy new-key | rotate`: retiring a privacy key without losing a byte.

Put a new key in front of the old one (`[privacy] key = "NEW,OLD"`), stop the service, run `rotate`,
then remove the old key from the config: every command refuses to start with a config that still
lists it last (the database now knows the new key's fingerprint).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from sqlalchemy import select

from bot.app import Application, privacy_keys
from bot.cli_base import fail, out, with_app
from core.privacy.rekey import new_vault, rotate
from core.storage.delivery_models import Lease
from core.storage.privacy import generate_key

privacy_app = typer.Typer(help="The privacy keys.", no_args_is_help=True)


@privacy_app.command("new-key")
def privacy_new_key() -> None:
    """Print a fresh key, to put in front of the others in [privacy] key."""
    print(generate_key())


@privacy_app.command("rotate")
def privacy_rotate(
    yes: Annotated[bool, typer.Option("--yes", help="the service is stopped and the keys backed up")] = False,
) -> None:
    """Re-encrypt and re-index everything under the first key, so the others can be removed."""

    async def action(application: Application) -> str:
        keys, _ = privacy_keys(application.settings, create=False)
        new_vault(keys)  # refuses one key, before anything is asked or changed
        now = datetime.now(UTC)
        async with application.core.sessions() as session:
            held = list(await session.scalars(select(Lease.name).where(Lease.until > now)))
        if held:
            raise fail(f"the service seems to be running (it holds {', '.join(held)}): stop it first")
        if not yes and not typer.confirm(
            f"re-encrypt everything under the first of {len(keys)} keys? the old ones can be removed after",
            default=False,
        ):
            raise fail("nothing changed")
        done = await rotate(application.core.sessions, application.core.vault, keys, now)
        tables = ", ".join(f"{name} {count}" for name, count in done.tables.items())
        left = (
            f"; {done.unmatched} message sender index(es) had no identity and were left"
            if done.unmatched
            else ""
        )
        return (
            f"rotated: {done.tokens} value(s) re-encrypted, {done.indexes} index(es) recomputed "
            f"({tables}){left}. Now remove every key but the first from [privacy] key"
        )

    out.print(with_app(action), markup=False, soft_wrap=True)
