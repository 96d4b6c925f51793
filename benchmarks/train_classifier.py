"""Train the classifier's model (core/classification/model.json) from the corpus's `dev` part, and
nothing else.

    .venv/bin/python benchmarks/train_classifier.py [--corrections FILE ...] [--folds 5] [--no-write]

A logistic regression over core.classification.model's features: a softmax over the categories and a separate
"major or not", with an L2 penalty, fitted by full-batch Adam on a dense 0/1 matrix (numpy, here only: at
run time the weights are dictionary lookups). Features seen in fewer than `--min-count` complaints are
left out; weights too small to matter are dropped from the file.

Before writing, it measures what the model adds to the rules without looking at any test part: each of
`--folds` parts of `dev` is classified by a model trained on the others (out of fold), and the rules
alone, the model alone and the two together (at the policy's thresholds and a few others) are compared,
on the whole of `dev`, on batch 1 (the ordinary mix), on batches 4 and 5 (the hard cases), on batches 6
and 7 (ordinary traffic the rules were never fitted to), on batches 8 to 12 (the latest ordinary traffic)
and on batches 15 and 16 (written last).

Corrections exported by `complaintbot classify export` add labelled examples: a category correction
teaches the category only, a severity correction "major or not" only.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # benchmarks/ is not installed

from benchmarks.classify import CATEGORIES, load_corpus  # noqa: E402
from core.classification.classify import classify, prepared  # noqa: E402
from core.classification.mix import with_model  # noqa: E402
from core.classification.model import FORMAT, MODEL_FILE, Model, Opinion, features, normalise  # noqa: E402
from core.classification.rules import ClassificationRules, rules_of  # noqa: E402
from core.rules.policy import load_policy  # noqa: E402


@dataclass(frozen=True)
class Sample:
    text: str  # as the model reads it (core.classification.model.normalise)
    category: int | None  # index in CATEGORIES, None when not labelled
    major: float | None


def samples(rules: ClassificationRules, corrections: Sequence[Path]) -> tuple[list[Sample], list[str]]:
    found, ids = [], []
    for example in load_corpus():
        if example.split == "dev":
            text = normalise(prepared(example.text, rules)[0])
            found.append(Sample(text, CATEGORIES.index(example.category), float(example.severity == "major")))
            ids.append(example.id)
    for path in corrections:
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line) if line.strip() else None
            if not row or not row.get("text"):
                continue
            text = normalise(prepared(row["text"], rules)[0])
            if row["field"] == "category" and row["corrected"] in CATEGORIES:
                found.append(Sample(text, CATEGORIES.index(row["corrected"]), None))
            elif row["field"] == "severity" and row["corrected"] in ("general", "major"):
                found.append(Sample(text, None, float(row["corrected"] == "major")))
            ids.append(f"correction {row.get('ticket')}")
    return found, ids


def fit(train: Sequence[Sample], min_count: int, l2: float, steps: int) -> Model:
    counts: dict[str, int] = {}
    sets = [features(sample.text) for sample in train]
    for found in sets:
        for feature in found:
            counts[feature] = counts.get(feature, 0) + 1
    vocabulary = sorted(f for f, n in counts.items() if n >= min_count)
    index = {f: i for i, f in enumerate(vocabulary)}
    x = np.zeros((len(train), len(vocabulary)), dtype=np.float32)
    for row, found in enumerate(sets):
        x[row, [index[f] for f in found if f in index]] = 1.0
    k = len(CATEGORIES)
    y = np.zeros((len(train), k), dtype=np.float32)
    has_category = np.array([s.category is not None for s in train], dtype=np.float32)
    for row, sample in enumerate(train):
        if sample.category is not None:
            y[row, sample.category] = 1.0
    major = np.array([s.major or 0.0 for s in train], dtype=np.float32)
    has_major = np.array([s.major is not None for s in train], dtype=np.float32)
    w = np.zeros((len(vocabulary), k + 1), dtype=np.float32)
    b = np.zeros(k + 1, dtype=np.float32)
    m_w, v_w, m_b, v_b = np.zeros_like(w), np.zeros_like(w), np.zeros_like(b), np.zeros_like(b)
    rate, beta1, beta2 = 0.05, 0.9, 0.999
    for step in range(1, steps + 1):
        z = x @ w + b
        logits = z[:, :k] - z[:, :k].max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        q = 1 / (1 + np.exp(-z[:, k]))
        grad = np.empty_like(z)
        grad[:, :k] = (p - y) * has_category[:, None] / max(has_category.sum(), 1)
        grad[:, k] = (q - major) * has_major / max(has_major.sum(), 1)
        g_w = x.T @ grad + l2 * w
        g_b = grad.sum(axis=0)
        for g, m, v, param in ((g_w, m_w, v_w, w), (g_b, m_b, v_b, b)):
            m *= beta1
            m += (1 - beta1) * g
            v *= beta2
            v += (1 - beta2) * g * g
            param -= rate * (m / (1 - beta1**step)) / (np.sqrt(v / (1 - beta2**step)) + 1e-8)
    weights = {
        feature: tuple(round(float(value), 4) for value in w[i])
        for feature, i in index.items()
        if float(np.abs(w[i]).max()) >= 0.01
    }
    return Model(CATEGORIES, tuple(round(float(v), 4) for v in b), weights, "")


def evaluate(name: str, rows: Sequence[tuple[str, str, str, str]]) -> str:
    """rows: (label category, label severity, got category, got severity)."""
    right = sum(a == c for a, _, c, _ in rows)
    majors = [r for r in rows if r[1] == "major"]
    generals = [r for r in rows if r[1] == "general"]
    caught = sum(r[3] == "major" for r in majors)
    flagged = sum(r[3] == "major" for r in generals)
    recall, over = 100 * caught / max(len(majors), 1), 100 * flagged / max(len(generals), 1)
    return (
        f"{name:<44} category {100 * right / len(rows):5.1f} %   major recall {recall:5.1f} %   "
        f"general->major {over:4.1f} %"
    )


def cross_validate(
    rules: ClassificationRules, data: Sequence[Sample], ids: Sequence[str], args: argparse.Namespace
) -> None:
    corpus = {e.id: e for e in load_corpus()}
    dev = [i for i, name in enumerate(ids) if name in corpus]
    folds = [dev[f :: args.folds] for f in range(args.folds)]
    opinions: dict[int, Opinion] = {}
    for fold in folds:
        held = set(fold)
        model = fit([s for i, s in enumerate(data) if i not in held], args.min_count, args.l2, args.steps)
        for i in fold:
            opinions[i] = model.opinion(data[i].text)
    alone = replace(rules, model=False)
    by_rules = {i: classify(corpus[ids[i]].text, alone) for i in dev}
    settings: list[tuple[str, tuple[float, float, float] | None]] = [("rules alone", None)]
    settings += [
        (f"rules+model sure {sure:g} override {override:g} major {major:g}", (sure, override, major))
        for sure, override, major in args.grid
    ]
    # Batch 1 is the ordinary mix (a quarter major); the later batches aim at the hard cases (half major).
    parts = (
        ("dev", ("",)),
        ("batch 1 of dev (the ordinary mix)", ("c",)),
        ("batches 4 and 5 of dev (the hard cases)", ("d", "e")),
        # Written after the rules were fitted to batches 4 and 5, never fitted themselves.
        ("batches 6 and 7 of dev (ordinary traffic, not fitted by the rules)", ("f", "g")),
        # The latest ordinary traffic; the rules were fitted to what batches 8 to 12 showed them.
        ("batches 8 to 12 of dev (ordinary traffic)", ("h", "i", "j", "k", "l")),
        # Batches 15 and 16: easy-to-miss majors, English and category boundaries.
        ("batches 15 and 16 of dev", ("o", "p")),
    )
    for part, prefixes in parts:
        chosen = [i for i in dev if ids[i].startswith(prefixes)]
        print(f"\n{part}, out of fold ({len(chosen)} complaints):")
        rows = []
        for i in chosen:
            example, opinion = corpus[ids[i]], opinions[i]
            major = "major" if opinion.major >= rules.model_major else "general"
            rows.append((example.category, example.severity, opinion.category, major))
        print(evaluate(f"model alone (major {rules.model_major:g})", rows))
        for name, setting in settings:
            rows = []
            for i in chosen:
                example, got = corpus[ids[i]], by_rules[i]
                category, severity = got.category, got.severity
                if setting is not None and not got.data_leak:  # a leak decides both, as in classify()
                    sure, override, major_at = setting
                    mixed = replace(
                        rules, model_category_sure=sure, model_override=override, model_major=major_at
                    )
                    category, _, severity = with_model(
                        category, got.confident, severity, opinions[i], mixed, []
                    )
                rows.append((example.category, example.severity, category, severity))
            print(evaluate(name, rows))


def _grid(text: str) -> list[tuple[float, float, float]]:
    """sure:override:major,..."""
    settings = []
    for item in text.split(","):
        values = [float(v) for v in item.split(":")]
        if len(values) != 3:
            raise argparse.ArgumentTypeError(f"{item!r}: sure:override:major")
        sure, override, major = values
        settings.append((sure, override, major))
    return settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corrections", type=Path, nargs="*", default=[], help="`classify export` files")
    parser.add_argument("--folds", type=int, default=5, help="0: no out-of-fold comparison")
    parser.add_argument("--min-count", type=int, default=1)
    parser.add_argument("--l2", type=float, default=0.001)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument(
        "--grid",
        type=_grid,
        default=_grid("0.5:1.01:0.7,0.5:0.7:0.65,0.5:0.7:0.7,0.5:0.7:0.75"),
        help="combinations to compare, sure:override:major,...",
    )
    parser.add_argument("--out", type=Path, default=MODEL_FILE)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    rules = rules_of(load_policy(None))
    data, ids = samples(rules, args.corrections)
    if args.folds > 1:
        cross_validate(rules, data, ids, args)
    if args.no_write:
        return
    model = fit(data, args.min_count, args.l2, args.steps)
    extra = f" and {len(args.corrections)} correction file(s)" if args.corrections else ""
    write(model, args.out, f"{len(ids)} examples: the corpus's dev part{extra}")
    print(f"\n{len(model.weights)} features written to {args.out} ({args.out.stat().st_size:,} bytes)")


def write(model: Model, path: Path, trained_on: str) -> None:
    document = {
        "format": FORMAT,
        "trained_on": trained_on,
        "categories": list(model.categories),
        "bias": list(model.bias),
        "weights": {f: list(w) for f, w in sorted(model.weights.items())},
    }
    path.write_text(json.dumps(document, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
