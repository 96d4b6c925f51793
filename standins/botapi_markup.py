"""Telegram's text formatting as the Bot API applies it: parse modes, entities, trimming, keyboards.

Used by the Bot API stand-in (:mod:`standins.botapi`) so that a message the bot could
not send to the real Telegram (an unescaped ``<`` in an HTML card, a ``.`` in MarkdownV2, an empty
text, a ``callback_data`` over 64 bytes) fails here too, with Telegram's own error text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

MAX_TEXT_LENGTH = 4096
MAX_CALLBACK_DATA_BYTES = 64


class MarkupError(Exception):
    """A request Telegram refuses with 400; ``str(exc)`` is the full description."""


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit of Telegram's entity offsets."""
    return len(text.encode("utf-16-le")) // 2


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8"))


def _parse_error(detail: str) -> MarkupError:
    return MarkupError(f"Bad Request: can't parse entities: {detail}")


class _Builder:
    """Collects rendered text and entities with UTF-16 offsets."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.pos = 0
        self.entities: list[dict[str, Any]] = []

    def add(self, text: str) -> None:
        self.parts.append(text)
        self.pos += utf16_len(text)

    def entity(self, kind: str, start: int, **extra: Any) -> None:
        if self.pos > start:
            self.entities.append({"type": kind, "offset": start, "length": self.pos - start, **extra})

    def result(self) -> tuple[str, list[dict[str, Any]]]:
        self.entities.sort(key=lambda e: (e["offset"], -e["length"]))
        return "".join(self.parts), self.entities


# --- HTML -----------------------------------------------------------------------------------------

_HTML_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_TAG_RE = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)((?:\s+[^<>]*?)?)\s*(/?)>")
_ENTITY_RE = re.compile(r"&(#[0-9]+|#x[0-9a-fA-F]+|lt|gt|amp|quot);")
_ATTR_RE = re.compile(r"""([a-zA-Z-]+)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""")
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}


def _render_html(text: str) -> tuple[str, list[dict[str, Any]]]:
    out = _Builder()
    stack: list[tuple[str, int, dict[str, str]]] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "<":
            match = _TAG_RE.match(text, i)
            if match is None:
                raise _parse_error(f"Unexpected end of name token at byte offset {_byte_offset(text, i)}")
            closing, tag, raw_attrs, self_closing = match.groups()
            tag = tag.lower()
            if tag not in _HTML_TAGS:
                raise _parse_error(f'Unsupported start tag "{tag}" at byte offset {_byte_offset(text, i)}')
            if closing:
                if not stack or stack[-1][0] != tag:
                    raise _parse_error(
                        f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"'
                        if stack
                        else f'Unmatched end tag at byte offset {_byte_offset(text, i)}, expected "{tag}"'
                    )
                _close_html(out, *stack.pop())
            else:
                attrs = {
                    m.group(1).lower(): next(g for g in m.groups()[1:] if g is not None) or ""
                    for m in _ATTR_RE.finditer(raw_attrs)
                }
                if tag == "span" and attrs.get("class") != "tg-spoiler":
                    raise _parse_error(f'Unsupported start tag "span" at byte offset {_byte_offset(text, i)}')
                if self_closing:
                    _close_html(out, tag, out.pos, attrs)
                else:
                    stack.append((tag, out.pos, attrs))
            i = match.end()
        elif char == "&":
            match = _ENTITY_RE.match(text, i)
            if match is None:
                out.add("&")
                i += 1
                continue
            name = match.group(1)
            if name.startswith("#x"):
                out.add(chr(int(name[2:], 16)))
            elif name.startswith("#"):
                out.add(chr(int(name[1:])))
            else:
                out.add(_NAMED[name])
            i = match.end()
        else:
            j = i + 1
            while j < len(text) and text[j] not in "<&":
                j += 1
            out.add(text[i:j])
            i = j
    if stack:
        raise _parse_error(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    return out.result()


def _close_html(out: _Builder, tag: str, start: int, attrs: Mapping[str, str]) -> None:
    kind = _HTML_TAGS[tag]
    if kind == "text_link":
        href = attrs.get("href", "")
        if href:
            out.entity(kind, start, url=href)
    elif kind == "custom_emoji":
        out.entity(kind, start, custom_emoji_id=attrs.get("emoji-id", ""))
    elif kind == "pre" and "language" in attrs:
        out.entity(kind, start, language=attrs["language"])
    else:
        out.entity(kind, start)


# --- MarkdownV2 and legacy Markdown --------------------------------------------------------------

_MDV2_RESERVED = set("_*[]()~`>#+-=|{}.!")
_MDV2_KIND_NAMES = {
    "bold": "Bold",
    "italic": "Italic",
    "underline": "Underline",
    "strikethrough": "Strikethrough",
    "spoiler": "Spoiler",
    "text_link": "TextUrl",
}


def _render_markdown_v2(text: str) -> tuple[str, list[dict[str, Any]]]:
    out = _Builder()
    stack: list[tuple[str, int, int]] = []  # kind, output position, source index
    i = 0
    n = len(text)

    def toggle(kind: str, width: int) -> None:
        nonlocal i
        if stack and stack[-1][0] == kind:
            _, start, _ = stack.pop()
            out.entity(kind, start)
        elif any(entry[0] == kind for entry in stack):
            inner = stack[-1]
            raise _parse_error(
                f"Can't find end of {_MDV2_KIND_NAMES[inner[0]]} entity at byte offset "
                f"{_byte_offset(text, inner[2])}"
            )
        else:
            stack.append((kind, out.pos, i))
        i += width

    while i < n:
        char = text[i]
        if char == "\\":
            if i + 1 >= n:
                raise _parse_error("Character '\\' is reserved and must be escaped with the preceding '\\'")
            out.add(text[i + 1])
            i += 2
        elif char == "`":
            fence = 3 if text.startswith("```", i) else 1
            content_start = i + fence
            j = content_start
            chunk: list[str] = []
            while j < n and not text.startswith("`" * fence, j):
                if text[j] == "\\" and j + 1 < n:
                    chunk.append(text[j + 1])
                    j += 2
                else:
                    chunk.append(text[j])
                    j += 1
            if j >= n:
                kind = "Pre" if fence == 3 else "Code"
                raise _parse_error(f"Can't find end of {kind} entity at byte offset {_byte_offset(text, i)}")
            body = "".join(chunk)
            start = out.pos
            if fence == 3:
                language = ""
                if "\n" in body:
                    first, rest = body.split("\n", 1)
                    if first and " " not in first:
                        language, body = first, rest
                out.add(body)
                if language:
                    out.entity("pre", start, language=language)
                else:
                    out.entity("pre", start)
            else:
                out.add(body)
                out.entity("code", start)
            i = j + fence
        elif char == "*":
            toggle("bold", 1)
        elif char == "_":
            if text.startswith("__", i) and not (stack and stack[-1][0] == "italic"):
                toggle("underline", 2)
            else:
                toggle("italic", 1)
        elif char == "~":
            toggle("strikethrough", 1)
        elif char == "|" and text.startswith("||", i):
            toggle("spoiler", 2)
        elif char == "[":
            stack.append(("text_link", out.pos, i))
            i += 1
        elif char == "]" and stack and stack[-1][0] == "text_link":
            if not text.startswith("(", i + 1):
                raise _parse_error("Character ']' is reserved and must be escaped with the preceding '\\'")
            j = i + 2
            url: list[str] = []
            while j < n and text[j] != ")":
                if text[j] == "\\" and j + 1 < n:
                    url.append(text[j + 1])
                    j += 2
                else:
                    url.append(text[j])
                    j += 1
            if j >= n:
                raise _parse_error(f"Can't find end of a url at byte offset {_byte_offset(text, i + 1)}")
            _, start, _ = stack.pop()
            out.entity("text_link", start, url="".join(url))
            i = j + 1
        elif char == ">" and (i == 0 or text[i - 1] == "\n"):
            i += 1  # block quotation marker; the quote itself is not modelled as an entity
        elif char in _MDV2_RESERVED:
            raise _parse_error(f"Character '{char}' is reserved and must be escaped with the preceding '\\'")
        else:
            j = i + 1
            while j < n and text[j] not in _MDV2_RESERVED and text[j] not in "\\|":
                j += 1
            out.add(text[i:j])
            i = j
    if stack:
        kind, _, source = stack[-1]
        raise _parse_error(
            f"Can't find end of {_MDV2_KIND_NAMES[kind]} entity at byte offset {_byte_offset(text, source)}"
        )
    return out.result()


_LEGACY_MARKERS = {"*": "bold", "_": "italic"}


def _render_markdown(text: str) -> tuple[str, list[dict[str, Any]]]:
    out = _Builder()
    i = 0
    n = len(text)
    while i < n:
        char = text[i]
        if char == "\\" and i + 1 < n and text[i + 1] in "_*`[":
            out.add(text[i + 1])
            i += 2
        elif char in _LEGACY_MARKERS or char == "`":
            fence = "```" if text.startswith("```", i) else char
            end = text.find(fence, i + len(fence))
            if end < 0:
                raise _parse_error(
                    f"Can't find end of the entity starting at byte offset {_byte_offset(text, i)}"
                )
            start = out.pos
            out.add(text[i + len(fence) : end])
            kind = "pre" if fence == "```" else "code" if fence == "`" else _LEGACY_MARKERS[char]
            out.entity(kind, start)
            i = end + len(fence)
        elif char == "[":
            close = text.find("](", i)
            end = text.find(")", close + 2) if close >= 0 else -1
            if close < 0 or end < 0:
                raise _parse_error(
                    f"Can't find end of the entity starting at byte offset {_byte_offset(text, i)}"
                )
            start = out.pos
            out.add(text[i + 1 : close])
            out.entity("text_link", start, url=text[close + 2 : end])
            i = end + 1
        else:
            out.add(char)
            i += 1
    return out.result()


def _strip(text: str, entities: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """Telegram trims leading and trailing white space from a message text, moving entities along."""
    stripped = text.lstrip()
    shift = utf16_len(text) - utf16_len(stripped)
    stripped = stripped.rstrip()
    end = utf16_len(stripped)
    kept: list[dict[str, Any]] = []
    for entity in entities:
        start = max(entity["offset"] - shift, 0)
        stop = min(entity["offset"] + entity["length"] - shift, end)
        if stop > start:
            kept.append({**entity, "offset": start, "length": stop - start})
    return stripped, kept


def render_text(
    text: object, parse_mode: object = None, entities: object = None
) -> tuple[str, list[dict[str, Any]]]:
    """The text and entities Telegram stores for ``text`` sent with ``parse_mode`` or ``entities``.

    Raises :class:`MarkupError` with Telegram's description when Telegram would refuse the text.
    """
    if not isinstance(text, str) or not text.strip():
        raise MarkupError("Bad Request: message text is empty")
    mode = str(parse_mode).lower() if parse_mode else ""
    if mode == "html":
        rendered, found = _render_html(text)
    elif mode == "markdownv2":
        rendered, found = _render_markdown_v2(text)
    elif mode == "markdown":
        rendered, found = _render_markdown(text)
    elif mode:
        raise MarkupError(f"Bad Request: unsupported parse_mode {parse_mode}")
    elif entities is not None:
        if not isinstance(entities, list) or not all(isinstance(e, dict) for e in entities):
            raise MarkupError("Bad Request: can't parse entities JSON object")
        rendered, found = text, [dict(e) for e in entities]
    else:
        rendered, found = text, []
    rendered, found = _strip(rendered, found)
    if not rendered:
        raise MarkupError("Bad Request: message text is empty")
    if utf16_len(rendered) > MAX_TEXT_LENGTH:
        raise MarkupError("Bad Request: message is too long")
    return rendered, found


def command_entities(text: str) -> list[dict[str, Any]]:
    """The ``bot_command`` entity Telegram marks at the start of a text such as ``/claim@bot TS-1``."""
    match = re.match(r"/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,64})?", text)
    if match is None:
        return []
    return [{"type": "bot_command", "offset": 0, "length": utf16_len(match.group(0))}]


# --- keyboards ------------------------------------------------------------------------------------

_INLINE_ACTIONS = (
    "url",
    "callback_data",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)


def check_reply_markup(markup: object, *, inline_only: bool = False) -> dict[str, Any] | None:
    """Validate ``reply_markup`` as Telegram does; return it when it is an inline keyboard.

    Telegram echoes only inline keyboards in the Message it returns; reply keyboards, keyboard
    removal and force-reply are accepted but not part of the message.
    """
    if markup is None:
        return None
    if not isinstance(markup, dict):
        raise MarkupError("Bad Request: can't parse reply keyboard markup JSON object")
    if "inline_keyboard" not in markup:
        if inline_only:
            raise MarkupError("Bad Request: inline keyboard expected")
        if not any(key in markup for key in ("keyboard", "remove_keyboard", "force_reply")):
            raise MarkupError("Bad Request: can't parse reply keyboard markup JSON object")
        return None
    rows = markup["inline_keyboard"]
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise MarkupError(
            'Bad Request: can\'t parse inline keyboard button: field "inline_keyboard" '
            "must be an Array of Arrays"
        )
    for row in rows:
        for button in row:
            if not isinstance(button, dict) or not isinstance(button.get("text"), str):
                raise MarkupError(
                    "Bad Request: can't parse inline keyboard button: Text buttons are "
                    "unallowed in the inline keyboard"
                )
            if not button["text"]:
                raise MarkupError("Bad Request: text must be non-empty")
            actions = [key for key in _INLINE_ACTIONS if key in button]
            if not actions:
                raise MarkupError(
                    "Bad Request: can't parse inline keyboard button: Text buttons are "
                    "unallowed in the inline keyboard"
                )
            if "callback_data" in button:
                data = button["callback_data"]
                if not isinstance(data, str) or not 1 <= len(data.encode("utf-8")) <= MAX_CALLBACK_DATA_BYTES:
                    raise MarkupError("Bad Request: BUTTON_DATA_INVALID")
            if "url" in button:
                url = button["url"]
                if not isinstance(url, str) or not re.match(r"(https?|tg)://\S+$", url):
                    raise MarkupError(
                        f"Bad Request: inline keyboard button URL '{url}' is invalid: Wrong HTTP URL"
                    )
    return {"inline_keyboard": [[dict(button) for button in row] for row in rows]}
