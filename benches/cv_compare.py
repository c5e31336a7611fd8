"""Judge a cross-validated variant against a baseline by the rule in docs/results.md.

``benches/tune_mhad.py --stretch 1.25 0.8 --out F.jsonl`` writes one JSON line per variant with
every held-out score, fold by fold (subjects 1, 3, 5) and seed by seed within a fold. This
script pairs a variant's scores with the baseline's (same fold, same seed), averages each
student's score over the three playback speeds (×1, ×1.25, ×0.8), and prints the mean paired
difference, its standard error and how many pairs the variant won. The rule: a variant is
adopted only if it wins by more than twice that standard error.

Each side may be several files (the seeds are usually split over two lanes); their lines are
joined in the order given, so give both sides' files in the same seed order.

``tune_mhad.py --refit-check`` prints one line per fold and seed instead, with a score per
model (``selected``, ``refit``, ``refit*1.5``, ...). Name the models as methods to compare two
of them on the same lines: ``--method refit*1.5 --variant-method refit*2``.

Usage::

    python benches/cv_compare.py \\
        --baseline docs/cv/cv-local_warp-0.3-0-1.jsonl docs/cv/cv-local_warp-0.3-2-3.jsonl \\
        --variant runs/cv-V-0-1.jsonl runs/cv-V-2-3.jsonl
    python benches/cv_compare.py --baseline R-0-1.jsonl R-2-3.jsonl \\
        --variant R-0-1.jsonl R-2-3.jsonl --method 'refit*1.5' --variant-method 'refit*2'
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

SPEEDS = ("", "@x1.25", "@x0.8")


def speed_means(files: list[Path], method: str) -> tuple[list[float], list[str]]:
    """Per fold × seed, the held-out accuracy (%) averaged over the three speeds."""
    scores: list[float] = []
    names: list[str] = []
    students: set[str] = set()
    for path in files:
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            record = json.loads(line)
            if "refit_check" in record:  # one fold and seed per line, one score per model
                students.add(record.get("student", "distilled"))  # older lines: distilled only
                scores.append(100 * sum(_refit_score(path, record, method + s) for s in SPEEDS) / 3)
                names.append(method)
                continue
            columns = [record["all"].get(method + speed, []) for speed in SPEEDS]
            if not all(columns) or len({len(c) for c in columns}) != 1:
                raise SystemExit(
                    f"{path}: variant {record['variant']!r} lacks {method} scores at all three "
                    "speeds (run tune_mhad.py with --stretch 1.25 0.8)"
                )
            scores += [100 * sum(triple) / 3 for triple in zip(*columns, strict=True)]
            names.append(record["variant"])
    if len(students) > 1:
        raise SystemExit(
            f"{', '.join(map(str, files))} hold refit checks of {' and '.join(sorted(students))} "
            "students: give one student's lines per side"
        )
    return scores, names


def _refit_score(path: Path, record: dict, column: str) -> float:
    """One model's held-out accuracy (0-1) from a refit-check line, or a clear exit."""
    if column not in record:
        models = sorted(
            {key.split("@")[0] for key in record}
            - {"refit_check", "validation", "seed", "student", "epoch"}
        )
        raise SystemExit(
            f"{path}: no {column!r} score in the refit check of subject {record['refit_check']}, "
            f"seed {record['seed']} (its columns: {', '.join(models)}; --stretch 1.25 0.8 gives "
            "the @x speeds)"
        )
    return float(record[column])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--baseline", type=Path, nargs="+", required=True)
    parser.add_argument("--variant", type=Path, nargs="+", required=True)
    parser.add_argument(
        "--method",
        default="distilled",
        help="direct or distilled; for --refit-check lines a model: selected, refit, refit*1.5",
    )
    parser.add_argument(
        "--variant-method", default=None, help="the variant side's method (default: --method)"
    )
    args = parser.parse_args()

    base, base_names = speed_means(args.baseline, args.method)
    new, new_names = speed_means(args.variant, args.variant_method or args.method)
    if len(base) != len(new):
        raise SystemExit(
            f"the baseline has {len(base)} fold × seed scores and the variant {len(new)}: "
            "give both the same seeds in the same order"
        )
    diffs = [b - a for a, b in zip(base, new, strict=True)]
    n = len(diffs)
    mean = sum(diffs) / n
    se = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1) / n) if n > 1 else math.nan
    won = sum(d > 0 for d in diffs)
    ties = sum(d == 0 for d in diffs)
    compared = f"{args.variant_method or args.method} vs {args.method}"
    print(f"{compared}, mean over x1 / x1.25 / x0.8, {n} fold x seed pairs")
    print(f"baseline {', '.join(dict.fromkeys(base_names))}: {sum(base) / n:.1f}")
    print(f"variant  {', '.join(dict.fromkeys(new_names))}: {sum(new) / n:.1f}")
    print(f"difference {mean:+.2f} (SE {se:.2f}), won {won} of {n}, {ties} tied")
    verdict = "adopt" if mean > 2 * se else "keep the baseline"
    print(f"rule (win by more than 2 SE): {verdict}")


if __name__ == "__main__":
    main()
