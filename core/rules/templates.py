"""Texts the bot sends, from Jinja2 templates an operator can edit: one folder per locale.

The packaged templates are the defaults; a folder given in the configuration (`[templates] dir`,
`<dir>/<locale>/<name>.j2`) overrides any of them file by file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    PackageLoader,
    StrictUndefined,
    TemplateNotFound,
)

LOCALES = ("zh", "en")


class Templates:
    def __init__(self, override_dir: Path | None = None) -> None:
        self.override_dir = override_dir  # also where `canned.toml` (core.tickets.canned) is kept
        loaders: list[FileSystemLoader | PackageLoader] = []
        if override_dir is not None:
            loaders.append(FileSystemLoader(str(override_dir)))
        loaders.append(PackageLoader("core", "templates"))
        # Plain text for chat platforms: no HTML escaping; a missing variable is an error, not a blank.
        self.env = Environment(
            loader=ChoiceLoader(loaders),
            autoescape=False,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
            # Templates are read once per process: no file-system check on every render (restart to reload).
            auto_reload=False,
        )

    def render(self, locale: str, name: str, **context: Any) -> str:
        locale = locale if locale in LOCALES else LOCALES[0]
        try:
            template = self.env.get_template(f"{locale}/{name}.j2")
        except TemplateNotFound:
            template = self.env.get_template(f"{LOCALES[0]}/{name}.j2")
        return template.render(locale=locale, **context).strip()
