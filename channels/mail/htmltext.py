"""HTML mail as the plain text a person would read in it: lines, paragraphs, list items, the text of
links (with the address when it is not the text), quotes marked with "> " so that `quotes` can trim
them like plain-text ones. Scripts, styles and Outlook's hidden markup are dropped."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

_SKIPPED = frozenset({"script", "style", "title", "template", "noscript", "head", "xml"})
_BLOCKS = frozenset(
    {
        "address", "article", "aside", "center", "dd", "div", "dl", "dt", "fieldset", "figure", "footer",
        "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "main", "nav", "p", "section",
        "table", "tbody", "thead", "tfoot", "tr", "ul", "ol", "pre", "blockquote", "li",
    }
)  # fmt: skip
_HEAD_CONTENT = frozenset({"meta", "link", "base", "title", "style", "script", "noscript", "template", "xml"})
_SPACES = re.compile(r"[ \t\r\n\f\v]+")  # not \xa0: a line holding only &nbsp; is a blank line
_BLANK_RUNS = re.compile(r"\n{3,}")
_SCRIPT_START = re.compile(r"<(script|style)\b", re.IGNORECASE)
_SCRIPT_END = {name: re.compile(f"</{name}", re.IGNORECASE) for name in ("script", "style")}
_UNCLOSED = re.compile(r"<(?=[^<>]*(?:<|\Z))")
_TAG = re.compile(r"<[^<>]*>")


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self.line: list[str] = []
        self.skipping: list[str] = []
        self.quote_depth = 0
        self.pre_depth = 0
        self.lists: list[int | None] = []  # an <ol>'s next number, None for <ul>
        self.bullet = ""  # the current list item's "- " or "2. ", written before its text
        self.links: list[tuple[str, int]] = []  # href, and where its text starts in `line`

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED:
            # <head> is only skipped until <body>: a mail without </head> must not lose its text.
            self.skipping.append(tag)
            return
        if tag == "body" or (tag not in _HEAD_CONTENT and "head" in self.skipping):
            self.skipping = [t for t in self.skipping if t != "head"]
        if self.skipping:
            return
        if tag == "br":
            self.flush(keep_empty=True)
        elif tag in _BLOCKS:
            self.flush()
        if tag == "blockquote":
            self.quote_depth += 1
        elif tag == "pre":
            self.pre_depth += 1
        elif tag in ("ul", "ol"):
            self.lists.append(1 if tag == "ol" else None)
        elif tag == "li":
            self.bullet = self.next_bullet()
        elif tag in ("td", "th") and self.line:
            self.line.append("  ")
        elif tag == "a":
            self.links.append((dict(attrs).get("href") or "", len(self.line)))

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED:
            if tag in self.skipping:
                del self.skipping[len(self.skipping) - 1 - self.skipping[::-1].index(tag) :]
            return
        if self.skipping:
            return
        if tag in _BLOCKS:
            self.flush()
        if tag == "blockquote":
            self.quote_depth = max(0, self.quote_depth - 1)
        elif tag == "pre":
            self.pre_depth = max(0, self.pre_depth - 1)
        elif tag in ("ul", "ol") and self.lists:
            self.lists.pop()
        elif tag == "a" and self.links:
            href, start = self.links.pop()
            shown = "".join(self.line[start:]).strip()
            # Learners link evidence (a cloud-drive folder, a video): staff need the address itself.
            if shown and href.startswith(("http://", "https://")) and href not in shown:
                self.line.append(f" ({href})")

    def handle_data(self, data: str) -> None:
        if "head" in self.skipping and data.strip():  # text in <head>: a browser shows it as the body
            self.skipping = [t for t in self.skipping if t != "head"]
        if self.skipping:
            return
        if self.pre_depth:
            lines = data.split("\n")
            for part in lines[:-1]:
                self.line.append(part)
                self.flush(keep_empty=True)
            self.line.append(lines[-1])
        else:
            self.line.append(_SPACES.sub(" ", data))

    def next_bullet(self) -> str:
        indent = "  " * max(0, len(self.lists) - 1)
        if self.lists and self.lists[-1] is not None:
            number = self.lists[-1]
            self.lists[-1] = number + 1
            return f"{indent}{number}. "
        return f"{indent}- "

    def flush(self, keep_empty: bool = False) -> None:
        text = "".join(self.line)
        self.line = []
        # Drop a link's start position that this flush has emptied: its text went into the last line.
        self.links = [(href, 0) for href, _ in self.links]
        if not self.pre_depth:
            text = text.strip(" ")
        if text or keep_empty or self.bullet:
            self.lines.append("> " * self.quote_depth + self.bullet + text)
        self.bullet = ""


def html_to_text(markup: str) -> str:
    """The readable text of an HTML body."""
    markup = _defused(markup)
    reader = _Reader()
    try:
        reader.feed(markup)
        reader.close()
    except AssertionError:
        # html.parser still asserts on some malformed declarations ("<!DOCTYPE [", "<![x["); the
        # words matter more than the layout, so fall back to dropping the tags.
        words = _TAG.sub(" ", _without_scripts(markup))
        return _normalise(html.unescape(_SPACES.sub(" ", words)))
    reader.flush()
    return _normalise("\n".join(reader.lines))


def _defused(markup: str) -> str:
    """Markup that html.parser reads in linear time. Before Python 3.13.4 it takes quadratic time on
    unterminated comments and tags, which a hostile mail can hold by the megabyte: comments go (an
    unterminated one loses only its "<!--"), and a "<" that no ">" closes before the next "<" is text."""
    kept: list[str] = []
    position = 0
    while (start := markup.find("<!--", position)) >= 0:
        kept.append(markup[position:start])
        end = markup.find("-->", start + 4)
        if end < 0:  # and no later comment is terminated either
            position = len(markup)
            kept.append(markup[start + 4 :].replace("<!--", ""))
        else:
            position = end + 3
    kept.append(markup[position:])
    return _UNCLOSED.sub("&lt;", "".join(kept))


def _without_scripts(markup: str) -> str:
    kept: list[str] = []
    position = 0
    while (opening := _SCRIPT_START.search(markup, position)) is not None:
        kept.append(markup[position : opening.start()])
        closing = _SCRIPT_END[opening.group(1).lower()].search(markup, opening.end())
        if closing is None:
            return "".join(kept)
        position = closing.start()
    kept.append(markup[position:])
    return "".join(kept)


def _normalise(text: str) -> str:
    lines = [line.replace("\xa0", " ").rstrip() for line in text.split("\n")]
    return _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip()
