"""Canned replies: a department's stored answers, in Chinese and English, with the ticket's fields.

Managers add and edit them from chat (`/canned set`) or in `canned.toml` in the templates directory:

    [teaching.late]
    zh = "您好，{{ number }} 已收到，我们会在 {{ due }} 前联系您。"
    en = "Hello, we have {{ number }} and will contact you by {{ due }}."

The file is read whenever replies are listed or used; an entry in it replaces the stored one when the
entry is new or changed in the file since it was last taken in, so the latest edit wins, from chat
or from the file. How often
each is used is counted: a card offers its department's most used ones as buttons.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from core.context import CoreContext
from core.storage.record_models import CannedReply

FILE_NAME = "canned.toml"
KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,29}$")
FIELDS = ("number", "due", "stage", "department", "category", "status")
ON_CARD = 3  # buttons a card offers
# Written from chat, so a text fills in named fields and does nothing else: no template language,
# whose loops and arithmetic could hold the event loop or build a reply of any size.
_FIELD = re.compile(r"\{\{\s*([A-Za-z_]\w*)\s*\}\}")
_SYNTAX = re.compile(r"\{\{|\{%|\{#")
MAX_TEXT = 4096  # a Telegram message's length


class CannedError(ValueError):
    """A canned reply that cannot be stored or used as written; the message says why."""


@dataclass(frozen=True)
class TicketFields:
    number: str
    due: str
    stage: str
    department: str
    category: str
    status: str


def parse_key(text: str) -> str | None:
    """The key of `#key` (the whole text), or None when the text is no canned-reply reference."""
    text = text.strip()
    if not text.startswith("#") or not KEY.match(text[1:].lower()):
        return None
    return text[1:].lower()


def top_query(department: str) -> Any:
    """The department's most used replies, for the card's buttons (sync or async session alike)."""
    return (
        select(CannedReply.key)
        .where(CannedReply.department == department)
        .order_by(CannedReply.uses.desc(), CannedReply.key)
        .limit(ON_CARD)
    )


def _file(core: CoreContext) -> Path | None:
    folder = core.templates.override_dir
    path = folder / FILE_NAME if folder is not None else None
    return path if path is not None and path.is_file() else None


def _entries(path: Path) -> dict[tuple[str, str], dict[str, str]]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CannedError(f"{path}: cannot be read: {exc}") from None
    entries = {}
    for department, replies in data.items():
        if not isinstance(replies, dict):
            raise CannedError(f"{path}: [{department}] must hold tables of replies ([{department}.key])")
        for key, texts in replies.items():
            if not KEY.match(key) or not isinstance(texts, dict):
                raise CannedError(
                    f"{path}: [{department}.{key}]: a key of a-z, 0-9, - and _ with zh/en texts"
                )
            entries[(department, key)] = {lang: str(texts[lang]) for lang in ("zh", "en") if lang in texts}
    return entries


async def sync_file(core: CoreContext, session: AsyncSession, now: datetime) -> None:
    """Take in the file's entries that are new or changed since they were last taken in."""
    path = _file(core)
    if path is None:
        return
    for (department, key), texts in _entries(path).items():
        row = await _row(session, department, key)
        if row is not None and row.file_texts == texts:
            continue  # as taken in before (and perhaps edited from chat since)
        for text in texts.values():
            check(text)
        if row is None:
            row = await _new_row(session, department, key, now, "file")
            if row.file_texts == texts:
                continue  # another instance took it in just now
        row.text_zh, row.text_en, row.file_texts = texts.get("zh"), texts.get("en"), texts
        row.updated_at, row.updated_by = now, "file"


async def _row(session: AsyncSession, department: str, key: str) -> CannedReply | None:
    return await session.scalar(
        select(CannedReply).where(CannedReply.department == department, CannedReply.key == key)
    )


def _fields_list() -> str:
    return ", ".join("{{ " + f + " }}" for f in FIELDS)


async def _new_row(session: AsyncSession, department: str, key: str, now: datetime, by: str) -> CannedReply:
    """The row of (department, key), inserted unless another instance inserted it meanwhile: one
    statement, so that two instances starting together both go on instead of one failing on the
    unique constraint."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    await session.execute(
        dialect.insert(CannedReply)
        .values(department=department, key=key, uses=0, updated_at=now, updated_by=by)
        .on_conflict_do_nothing(index_elements=[CannedReply.department, CannedReply.key])
    )
    row = await _row(session, department, key)
    assert row is not None  # inserted, or there already
    return row


def check(text: str) -> None:
    """Refuse a text that names a field we do not have, uses any other template syntax, or is longer
    than a message may be, before it is stored."""
    if len(text) > MAX_TEXT:
        raise CannedError(f"the text is {len(text)} characters long; at most {MAX_TEXT}")
    for match in _FIELD.finditer(text):
        if match.group(1) not in FIELDS:
            raise CannedError(f"no field {match.group(1)!r}: the fields are {_fields_list()}")
    stripped = _FIELD.sub("", text)
    other = _SYNTAX.search(stripped)
    if other is not None:
        snippet = stripped[other.start() : other.start() + 40]
        end = min((snippet.find(c) + 2 for c in ("}}", "%}", "#}") if c in snippet), default=len(snippet))
        fields = _fields_list()
        raise CannedError(f"{snippet[:end]!r} cannot be filled in: a text only names fields, {fields}")


def render(text: str, fields: TicketFields) -> str:
    """The text with its fields filled in (checked first: it may have been stored or edited in the
    file before these rules)."""
    check(text)
    values = fields.__dict__
    filled = _FIELD.sub(lambda m: str(values[m.group(1)]), text).strip()
    if len(filled) > MAX_TEXT:
        raise CannedError(f"filled in, the text is {len(filled)} characters long; at most {MAX_TEXT}")
    return filled


async def replies(
    core: CoreContext, session: AsyncSession, department: str | None, now: datetime
) -> list[CannedReply]:
    """A department's replies (None: every department's), most used first."""
    await sync_file(core, session, now)
    query = select(CannedReply).order_by(CannedReply.department, CannedReply.uses.desc(), CannedReply.key)
    if department is not None:
        query = query.where(CannedReply.department == department)
    return list(await session.scalars(query))


async def fill(
    core: CoreContext,
    session: AsyncSession,
    department: str,
    key: str,
    locale: str,
    fields: TicketFields,
    now: datetime,
) -> str:
    """The reply `#key` of the department in the learner's language (else the other), filled in, and
    counted as used."""
    await sync_file(core, session, now)
    row = await _row(session, department, key)
    if row is None:
        known = [r.key for r in await replies(core, session, department, now)]
        listed = ", ".join(f"#{k}" for k in known) if known else "none yet (a manager adds them: /canned set)"
        raise CannedError(f"no canned reply #{key} in {department}; there are: {listed}")
    text = (row.text_en or row.text_zh) if locale == "en" else (row.text_zh or row.text_en)
    if not text:
        raise CannedError(f"#{key} of {department} has no text")
    try:
        filled = render(text, fields)
    except CannedError as exc:
        raise CannedError(f"#{key} of {department} cannot be filled in: {exc}") from None
    # Counted in the database: two replies sent at once both count.
    await session.execute(
        update(CannedReply).where(CannedReply.id == row.id).values(uses=CannedReply.uses + 1)
    )
    return filled


async def store(
    core: CoreContext,
    session: AsyncSession,
    department: str,
    key: str,
    locale: str,
    text: str,
    by: str,
    now: datetime,
) -> CannedReply:
    """Add or change one language of a reply (`/canned set`)."""
    if not KEY.match(key):
        raise CannedError(f"#{key}: a key is 1-30 of a-z, 0-9, - and _")
    if locale not in ("zh", "en"):
        raise CannedError(f"the language is zh or en, not {locale!r}")
    if not text.strip():
        raise CannedError("the reply's text is missing")
    check(text)
    await sync_file(core, session, now)
    row = await _row(session, department, key)
    if row is None:
        row = await _new_row(session, department, key, now, by)
    setattr(row, f"text_{locale}", text.strip())
    row.updated_at, row.updated_by = now, by
    return row


async def remove(core: CoreContext, session: AsyncSession, department: str, key: str) -> bool:
    """Remove a reply (`/canned remove`); one in `canned.toml` is refused, as the next reading of the
    file would bring it back."""
    path = _file(core)
    if path is not None and (department, key) in _entries(path):
        raise CannedError(f"#{key} of {department} is in {path}: remove it there")
    row = await _row(session, department, key)
    if row is None:
        return False
    await session.delete(row)
    return True
