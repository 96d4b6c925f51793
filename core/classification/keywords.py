"""Finding a policy's keywords in a complaint, with where they occur.

Chinese keywords are looked up among jieba tokens, so "退费" does not fire inside an unrelated
longer word; other keywords match whole words, case-insensitively, a trailing "*" standing for
any ending. Positions let the classifier look at the clause around a hit (negation, counts).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jieba  # type: ignore[import-untyped, unused-ignore]

__all__ = ["CJK", "Hit", "KeywordSet", "Text", "segment"]

CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_PASSIVE = frozenset("被遭")


@dataclass(frozen=True)
class Hit:
    keyword: str
    start: int
    end: int


@dataclass(frozen=True)
class Text:
    """A complaint's text, its lower-case form and its Chinese tokens with their offsets."""

    raw: str
    lowered: str
    tokens: tuple[tuple[str, int], ...]


class KeywordSet:
    """One list of keywords: Chinese ones looked up among tokens, the rest by regex."""

    def __init__(self, keywords: Iterable[str]) -> None:
        unique = list(dict.fromkeys(kw.strip() for kw in keywords))
        self.chinese = frozenset(kw for kw in unique if CJK.search(kw))
        self._longest = max((len(kw) for kw in self.chinese), default=0)
        # Keywords by the stem of their first word: one scan of the text for every stem finds the few
        # keywords worth a regex (with hundreds of keywords, testing each one costs more than the cut).
        self._by_stem: dict[str, list[tuple[str, re.Pattern[str]]]] = {}
        for kw in unique:
            if kw not in self.chinese:
                stem = kw.split()[0].rstrip("*").lower()
                self._by_stem.setdefault(stem, []).append((kw, _latin_pattern(kw)))
        stems = sorted(self._by_stem, key=len, reverse=True)
        self._stems = re.compile("|".join(map(re.escape, stems))) if stems else None
        # A scan that finds "classroom" does not also report "class" inside it.
        self._inside = {stem: [other for other in stems if other != stem and other in stem] for stem in stems}

    def find(self, text: Text) -> list[Hit]:
        """Every occurrence of a keyword, in text order."""
        hits = []
        for token, start in text.tokens:
            if token in self.chinese:
                hits.append(Hit(token, start, start + len(token)))
            elif token[:1] in _PASSIVE and token[1:] in self.chinese:
                # jieba keeps a passive whole ("被扣", "被骂"), hiding the keyword after the marker.
                hits.append(Hit(token[1:], start + 1, start + len(token)))
            elif len(token) > 2 and CJK.match(token):
                hits += self._inside_word(token, start)
        if self._stems is not None:
            found: set[str] = set()
            for match in self._stems.finditer(text.lowered):
                found.add(match.group())
                found.update(self._inside[match.group()])
            for stem in found:
                for keyword, pattern in self._by_stem[stem]:
                    hits += [Hit(keyword, m.start(), m.end()) for m in pattern.finditer(text.raw)]
        hits.sort(key=lambda hit: hit.start)
        return hits

    def _inside_word(self, token: str, start: int) -> list[Hit]:
        """Keywords of two or more characters inside a longer dictionary word: jieba keeps "老师上课" and
        "课本上" whole, hiding "老师", "上课", "课本" (a search engine's sub-word cut). Single characters
        never match inside a word: "师" is not found in "老师"."""
        found, at = [], 0
        while at < len(token) - 1:
            for size in range(min(self._longest, len(token) - at - (at == 0)), 1, -1):
                piece = token[at : at + size]
                if piece in self.chinese:
                    found.append(Hit(piece, start + at, start + at + size))
                    at += size
                    break
            else:
                at += 1
        return found


def _latin_pattern(keyword: str) -> re.Pattern[str]:
    # Each word is escaped (keywords are data: "c++" must not become a regex); words of a phrase
    # may be split by any whitespace.
    words = []
    for word in keyword.split():
        stem = word.rstrip("*")
        words.append(re.escape(stem) + ("[a-z]*" if word.endswith("*") else ""))
    return re.compile(r"(?<![0-9a-z])" + r"\s+".join(words) + r"(?![0-9a-z])", re.IGNORECASE)


def segment(text: str, lowered: str, words: frozenset[str]) -> Text:
    if not CJK.search(text):
        return Text(text, lowered, ())
    # HMM off: it glues unknown neighbours into new words ("李老师"), hiding keywords; it never
    # finds a keyword the dictionary would miss, as every keyword is in the dictionary.
    tokens, at = [], 0
    for token in _tokenizer_for(words).cut(text, HMM=False):
        tokens.append((token, at))
        at += len(token)
    return Text(text, lowered, tuple(tokens))


# jieba's dictionary takes about a second to load, so it is loaded once, on the first Chinese
# complaint, not at import.
_jieba_lock = threading.Lock()
_base_tokenizer: Any = None


@lru_cache(maxsize=4)
def _tokenizer_for(words: frozenset[str]) -> Any:
    """A tokenizer whose dictionary also holds `words`.

    One per keyword set, because a word added to jieba's dictionary changes how the text around
    it is cut: the keywords of one set of rules (an old policy, a test's) must not hide those of
    another.
    """
    global _base_tokenizer
    with _jieba_lock:
        if _base_tokenizer is None:
            jieba.setLogLevel(logging.WARNING)
            base = jieba.Tokenizer()
            base.initialize()
            _base_tokenizer = base
        tokenizer = jieba.Tokenizer()
        # Copying the loaded dictionary takes milliseconds where loading it again takes a second.
        # FREQ / total / initialized are jieba's own (0.42) fields: initialize() sets exactly these.
        tokenizer.FREQ, tokenizer.total = dict(_base_tokenizer.FREQ), _base_tokenizer.total
        tokenizer.initialized = True
    for word in sorted(words):  # sorted: the same cut whatever order the set iterates in
        # Without this, jieba may cut a multi-character keyword ("乱收费") into pieces.
        tokenizer.add_word(word)
    return tokenizer
