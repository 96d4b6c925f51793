"""A small linear model of category and severity, shipped with the package, beside the rules.

Keyword rules fit the words they were written for; a learner's new wording slips past them. The model
reads the whole text instead: character n-grams (one to three characters of Chinese, two and three of
anything) and English words and word pairs, each worth a learnt weight per category and one for "major".
It is trained offline from the labelled corpus's development part (`benchmarks/train_classifier.py`) and
stored as a JSON file of weights in this package: nothing is downloaded or learnt at run time, and a
decision is a few hundred dictionary lookups. The features it weighs most are its "why".
"""

from __future__ import annotations

import itertools
import json
import math
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

__all__ = ["MODEL_FILE", "Model", "Opinion", "features", "load_model", "normalise"]

MODEL_FILE = Path(__file__).with_name("model.json")
FORMAT = 1

_CJK_CHAR = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_DIGIT = re.compile(r"[0-9]")
_SPACE = re.compile(r"\s+")
# English words; a single letter stays among the characters ("3w", "5k").
_LATIN_RUN = re.compile(r"[a-z']{2,}")
_PUNCTUATION = re.compile(r"[\s,.!?;:，。！？；：、…()（）\"'“”‘’]")
_WORD = re.compile(r"[a-z0]+(?:'[a-z]+)?")


def normalise(simplified_text: str) -> str:
    """Lower case, full-width folded, every digit a 0 ("6,500" and "3,200" read alike: the model learns
    that an amount is there, the amount parser reads it), runs of space one space."""
    text = unicodedata.normalize("NFKC", simplified_text).lower().replace("\u2019", "'")
    return _SPACE.sub(" ", _DIGIT.sub("0", text)).strip()


def features(text: str) -> set[str]:
    """The features of a normalised text (see `normalise`): characters and pairs and triples of characters
    outside English words ("退费", "0w", "00元"), English words, their first five letters (for the forms of
    a word and its typos: "refund", "refunded") and pairs of words."""
    found = set(_CJK_CHAR.findall(text))
    rest = _SPACE.sub(" ", _LATIN_RUN.sub(" ", text))
    found |= {rest[at : at + 2] for at in range(len(rest) - 1)}
    found |= {rest[at : at + 3] for at in range(len(rest) - 2)}
    words = _WORD.findall(text)
    found.update(["w:" + word for word in words])
    found.update(["p:" + word[:5] for word in words if len(word) > 5])
    found.update([f"w:{a} {b}" for a, b in itertools.pairwise(words)])
    return found


@dataclass(frozen=True)
class Opinion:
    """What the model makes of a complaint: a probability per category and of "major"; the features that
    weighed most for its category and for "major" are found when asked for (a reason names them)."""

    category: str
    probability: float
    probabilities: dict[str, float]
    major: float
    features: tuple[str, ...]  # the text's
    weights: dict[str, tuple[float, ...]]  # the model's

    @property
    def _known(self) -> list[tuple[str, tuple[float, ...]]]:
        return [(feature, self.weights[feature]) for feature in self.features if feature in self.weights]

    def category_words(self) -> tuple[str, ...]:
        """The features weighing most for the category and more for it than for any other."""
        top = list(self.probabilities).index(self.category)
        ranked = sorted(self._known, key=lambda item: item[1][top], reverse=True)
        found = [
            name
            for name, row in ranked
            if row[top] > 0 and all(row[top] > w for other, w in enumerate(row[:-1]) if other != top)
        ]
        return _telling(found)

    def major_words(self) -> tuple[str, ...]:
        """The features weighing most for "major"."""
        ranked = sorted(self._known, key=lambda item: item[1][-1], reverse=True)
        return _telling([name for name, row in ranked if row[-1] > 0])


def _telling(names: list[str]) -> tuple[str, ...]:
    """The first few features worth showing staff: words and runs of two or more characters, not single
    characters or pieces of punctuation ("贷款", not "贷" or "款，"), unless there is nothing else."""
    shown = [_shown(name) for name in names]
    telling = [text for text in shown if len(text) > 1 and not _PUNCTUATION.search(text)]
    return tuple((telling or shown)[:_SHOWN])


@dataclass(frozen=True)
class Model:
    categories: tuple[str, ...]
    bias: tuple[float, ...]  # one per category, then "major"
    weights: dict[str, tuple[float, ...]]  # feature -> one weight per category, then "major"
    trained_on: str

    def opinion(self, text: str) -> Opinion:
        """The model's opinion of a complaint's normalised text."""
        found = tuple(features(text))
        # map, filter, zip and sum run in C: a Python loop over the weights would cost as much as the rules.
        rows = list(filter(None, map(self.weights.get, found)))
        scores = [sum(column) for column in zip(self.bias, *rows, strict=True)]
        size = len(scores) - 1
        top = max(range(size), key=scores.__getitem__)
        exps = [math.exp(score - scores[top]) for score in scores[:size]]
        total = sum(exps)
        return Opinion(
            category=self.categories[top],
            probability=exps[top] / total,
            probabilities={name: exp / total for name, exp in zip(self.categories, exps, strict=True)},
            major=1 / (1 + math.exp(-scores[size])),
            features=found,
            weights=self.weights,
        )


# How many of the model's strongest features a reason names.
_SHOWN = 4


def _shown(feature: str) -> str:
    return feature[2:] + ("…" if feature.startswith("p:") else "") if feature[1:2] == ":" else feature


@lru_cache(maxsize=4)
def load_model(path: Path = MODEL_FILE) -> Model | None:
    """The model stored at `path`, or None when there is none (the rules then decide alone)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    if data.get("format") != FORMAT:
        raise ValueError(f"{path}: model format {data.get('format')!r}, expected {FORMAT}")
    categories = tuple(data["categories"])
    size = len(categories) + 1
    weights = {feature: tuple(map(float, row)) for feature, row in data["weights"].items()}
    if len(data["bias"]) != size or any(len(row) != size for row in weights.values()):
        raise ValueError(f"{path}: every weight row needs {size} numbers")
    return Model(categories, tuple(map(float, data["bias"])), weights, str(data.get("trained_on", "")))
