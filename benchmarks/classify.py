"""How well the classifier does on our labelled corpus, and how fast it is on one core.

    .venv/bin/python benchmarks/classify.py [--split dev|test|test2|test3|test4|all] [--worst 10]
                                            [--seconds 3] [--policy FILE]

The corpus is benchmarks/data/complaints.jsonl (see its README): a `dev` part that rules are tuned on and
four test parts that are only reported, `test` (from the first batch of complaints), `test2` (from the
second batch, written after the rules of the first), `test3` (from the third, written after the rules of
the first two and worded away from their keywords) and `test4` (batches 13 and 14, everyday traffic written
after the rules and the model were last fitted, and never fitted to). For each part: category accuracy
overall and per language, per-category precision and recall, major recall, general complaints flagged
major, the confusion matrix and the worst errors (a major complaint filed general first, then wrong
categories). Throughput is one process classifying the whole corpus over and over, after a warm-up
(jieba's dictionary is loaded once).
With the policy's model on (`[classification] model`), each part also shows the rules alone on one line,
measured in the same run, and throughput is measured for both. Targets (on every test part) are printed
beside the figures, never fatal.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # benchmarks/ is not installed

from core.classification.classify import Classification, ClassificationRules, classify  # noqa: E402
from core.classification.rules import rules_of  # noqa: E402
from core.rules.policy import load_policy  # noqa: E402

CORPUS = ROOT / "benchmarks" / "data" / "complaints.jsonl"
CATEGORIES = ("teaching", "service", "fees", "other")
SPLITS = ("dev", "test", "test2", "test3", "test4")
TARGETS = {"category": 0.93, "major recall": 0.97, "general flagged major": 0.05, "per second": 2000}


@dataclass(frozen=True)
class Example:
    id: str
    split: str
    lang: str
    category: str
    severity: str
    text: str
    batch: int = 1


@dataclass(frozen=True)
class Outcome:
    example: Example
    got: Classification

    @property
    def category_right(self) -> bool:
        return self.got.category == self.example.category


def load_corpus(path: Path = CORPUS) -> list[Example]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [Example(**json.loads(line)) for line in lines if line.strip()]


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:5.1f} % ({part}/{whole})" if whole else "  n/a"


def summary(outcomes: list[Outcome]) -> str:
    """Category accuracy, major recall and general flagged major on one line."""
    major = [o for o in outcomes if o.example.severity == "major"]
    general = [o for o in outcomes if o.example.severity == "general"]
    return (
        f"category {_pct(sum(o.category_right for o in outcomes), len(outcomes))}, "
        f"major recall {_pct(sum(o.got.severity == 'major' for o in major), len(major))}, "
        f"general flagged major {_pct(sum(o.got.severity == 'major' for o in general), len(general))}"
    )


def report(name: str, outcomes: list[Outcome], worst: int, baseline: list[Outcome] | None = None) -> None:
    print(f"\n== {name}: {len(outcomes)} complaints ==")
    if baseline is not None:
        print(f"rules alone (baseline)   {summary(baseline)}")
        print(f"rules and model          {summary(outcomes)}\n")
    right = sum(o.category_right for o in outcomes)
    print(f"category accuracy        {_pct(right, len(outcomes))}   target >= {TARGETS['category']:.0%}")
    for lang in ("zh", "en"):
        mine = [o for o in outcomes if o.example.lang == lang]
        print(f"  {lang}                     {_pct(sum(o.category_right for o in mine), len(mine))}")
    major = [o for o in outcomes if o.example.severity == "major"]
    general = [o for o in outcomes if o.example.severity == "general"]
    caught = sum(o.got.severity == "major" for o in major)
    flagged = sum(o.got.severity == "major" for o in general)
    print(f"major recall             {_pct(caught, len(major))}   target >= {TARGETS['major recall']:.0%}")
    print(
        f"general flagged major    {_pct(flagged, len(general))}   "
        f"target <= {TARGETS['general flagged major']:.0%}"
    )
    print("\ncategory     precision          recall")
    for category in CATEGORIES:
        predicted = [o for o in outcomes if o.got.category == category]
        actual = [o for o in outcomes if o.example.category == category]
        print(
            f"{category:<12} {_pct(sum(o.category_right for o in predicted), len(predicted)):<18} "
            f"{_pct(sum(o.category_right for o in actual), len(actual))}"
        )
    print("\nconfusion (rows: label, columns: classified)")
    cells = Counter((o.example.category, o.got.category) for o in outcomes)
    print(" " * 12 + "".join(f"{c:>10}" for c in CATEGORIES))
    for label in CATEGORIES:
        print(f"{label:<12}" + "".join(f"{cells[(label, c)]:>10}" for c in CATEGORIES))
    missed = [o for o in major if o.got.severity != "major"]
    wrong = [o for o in outcomes if not o.category_right and o not in missed]
    over = [o for o in general if o.got.severity == "major"]
    errors = (missed + wrong + over)[:worst]
    if errors:
        print(f"\nworst errors (major missed, then category, then general flagged major; {worst} at most)")
    for o in errors:
        ex, got = o.example, o.got
        print(
            f"- {ex.id} [{ex.category}/{ex.severity} -> {got.category}/{got.severity}] {ex.text[:90]}\n"
            f"    why: {'; '.join(got.reasons)[:200] or '-'}"
        )


def throughput(examples: list[Example], rules: ClassificationRules, seconds: float) -> tuple[float, float]:
    """Classifications per second of this process's CPU time and of wall time: on a machine shared with
    other work, the first is what one core of our own does."""
    for example in examples:  # warm-up: jieba's dictionary, the compiled rules
        classify(example.text, rules)
    done, start, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds:
        for example in examples:
            classify(example.text, rules)
        done += len(examples)
    return done / (time.process_time() - cpu), done / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--split", choices=(*SPLITS, "all"), default="all")
    parser.add_argument("--worst", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--policy", type=Path, default=None, help="a policy file (default: the built-in one)")
    args = parser.parse_args(argv)
    rules = rules_of(load_policy(args.policy))
    # The same policy without the model: the baseline every figure is shown beside.
    alone = replace(rules, model=False) if rules.model else None
    examples = load_corpus()
    splits = SPLITS if args.split == "all" else (args.split,)
    for split in splits:
        part = [e for e in examples if e.split == split]
        baseline = [Outcome(e, classify(e.text, alone)) for e in part] if alone else None
        report(split, [Outcome(e, classify(e.text, rules)) for e in part], args.worst, baseline)
    if args.seconds > 0:
        for label, measured in (("", rules), (" rules alone", alone)):
            if measured is None:
                continue
            cpu, wall = throughput(examples, measured, args.seconds)
            print(
                f"\nthroughput{label} (one core) {cpu:,.0f} classifications per CPU second ({wall:,.0f} per "
                f"second of wall time)   target >= {TARGETS['per second']:,}"
            )


if __name__ == "__main__":
    main()
