"""Secrets and personal identifiers out of logs and stored errors: one `Redactor`, fed with the config.

What a platform or library says when it fails is not ours to word: httpx names the URL it called
(`…/cgi-bin/token?…&secret=<app secret>`), requests names it with `?access_token=…`, a server quotes the
address it refused. So every error text is passed through the redactor before it is stored
(`outbox.last_error`, an unparsed input's reason) and every log record through `RedactingFilter` before a
handler writes it. It replaces:

- each configured secret (bot tokens, app secrets, passwords, webhook and HMAC secrets, keys), as given
  and URL-encoded, by `[secret]`;
- the value of query parameters that carry credentials or identifiers (`secret`, `access_token`, `key`,
  `token`, `password`, `signature`, `openid`…), by `***`, so an access token fetched at run time, which
  no configuration names, is hidden too;
- anything shaped like a Telegram bot token or a WeChat OpenID (`o` and 27 more characters);
- mainland mobile numbers and e-mail addresses, masked as staff screens show them (`core.storage.privacy`).

The access log (uvicorn's `uvicorn.access`) keeps the method, path and status of a request and loses its
query string: WeChat puts the learner's OpenID and the request's signature there.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from urllib.parse import quote, quote_plus

from core.storage.privacy import redact as mask_personal

__all__ = ["SECRET", "RedactingFilter", "Redactor", "install", "path_only"]

SECRET = "[secret]"
HIDDEN = "***"
# Shorter values are no secret worth the name, and replacing them everywhere would garble the logs.
MIN_SECRET_LENGTH = 4
_QUERY_SECRET = re.compile(
    r"(?i)([?&;](?:secret|appsecret|app_secret|access_token|token|key|password|passwd|pwd|signature"
    r"|msg_signature|openid|echostr|auth|api_key|apikey)=)[^&#\s'\"<>]+"
)
# `<bot id>:<35 characters>`, in a Bot API URL (`/bot<token>/sendMessage`) or anywhere else.
_BOT_TOKEN = re.compile(r"(?<![0-9])[0-9]{5,}:[A-Za-z0-9_-]{30,}")
# An Official Account's OpenID: 28 characters of URL-safe base64, the first an "o".
_OPENID = re.compile(r"(?<![A-Za-z0-9_-])o[A-Za-z0-9_-]{27}(?![A-Za-z0-9_-])")
_ACCESS_LOGGER = "uvicorn.access"


class Redactor:
    """`redactor(text)`: the text with the configured secrets and personal identifiers hidden."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        forms: set[str] = set()
        for secret in secrets:
            value = (secret or "").strip()
            if len(value) >= MIN_SECRET_LENGTH:
                forms.update({value, quote(value, safe=""), quote_plus(value, safe="")})
        # Longest first: a secret that contains another is replaced whole.
        ordered = sorted(forms, key=len, reverse=True)
        self._secrets = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __call__(self, text: str) -> str:
        if self._secrets is not None:
            text = self._secrets.sub(SECRET, text)
        text = _QUERY_SECRET.sub(lambda m: m.group(1) + HIDDEN, text)
        text = _BOT_TOKEN.sub(SECRET, text)
        text = _OPENID.sub(lambda m: "o" + HIDDEN + m.group(0)[-4:], text)
        return mask_personal(text)


def path_only(target: str) -> str:
    """A request target without its query string (`/wechat?signature=…` -> `/wechat`)."""
    return target.split("?", 1)[0]


class RedactingFilter(logging.Filter):
    """Rewrites each record a handler is about to write: its message, traceback and stack redacted.

    Attached to handlers, not loggers: a logger's filter never sees what its children propagate.
    """

    def __init__(self, redact: Callable[[str], str]) -> None:
        super().__init__()
        self.redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if record.name == _ACCESS_LOGGER and isinstance(args, tuple) and len(args) == 5:
            # (client, method, target, HTTP version, status): uvicorn's own formatter unpacks the tuple.
            client, method, target, version, status = args
            if isinstance(target, str):
                target = self.redact(path_only(target))
            record.args = (client, method, target, version, status)
        else:
            try:
                message = record.getMessage()
            except (TypeError, ValueError):  # arguments that do not fit the format: shown as they are
                message = f"{record.msg} {args!r}"
            record.msg, record.args = self.redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


def install(redact: Callable[[str], str], logger: logging.Logger | None = None) -> Callable[[], None]:
    """Put a `RedactingFilter` on every handler of `logger` (the root logger), in place of one put there
    before; returns what takes it off again."""
    handlers = list((logger or logging.getLogger()).handlers)
    redacting = RedactingFilter(redact)
    for handler in handlers:
        for old in [f for f in handler.filters if isinstance(f, RedactingFilter)]:
            handler.removeFilter(old)
        handler.addFilter(redacting)

    def remove() -> None:
        for handler in handlers:
            handler.removeFilter(redacting)

    return remove
