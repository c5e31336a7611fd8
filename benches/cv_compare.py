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
    python benches/cv_compare.py --table docs/cv/judged.json

``--table`` prints the summary table in docs/results.md of every comparison the index lists.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Comparison:
    """A variant's paired fold × seed scores against a baseline's, each the mean of 3 speeds."""

    baseline: list[float]
    variant: list[float]

    @property
    def differences(self) -> list[float]:
        return [b - a for a, b in zip(self.baseline, self.variant, strict=True)]

    @property
    def gain(self) -> float:
        return sum(self.differences) / len(self.differences)

    @property
    def standard_error(self) -> float:
        diffs = self.differences
        n = len(diffs)
        if n < 2:
            return math.nan
        mean = sum(diffs) / n
        return math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1) / n)

    @property
    def won(self) -> int:
        return sum(d > 0 for d in self.differences)

    @property
    def tied(self) -> int:
        return sum(d == 0 for d in self.differences)

    @property
    def clears_rule(self) -> bool:
        """The rule: adopt only a win by more than twice the standard error."""
        return self.gain > 2 * self.standard_error


def compare(
    baseline: list[Path], variant: list[Path], method: str, variant_method: str | None = None
) -> tuple[Comparison, list[str], list[str]]:
    """Pair the variant's scores with the baseline's; also the variant names each side holds."""
    base, base_names = speed_means(baseline, method)
    new, new_names = speed_means(variant, variant_method or method)
    if len(base) != len(new):
        raise SystemExit(
            f"the baseline has {len(base)} fold × seed scores and the variant {len(new)}: "
            "give both the same seeds in the same order"
        )
    return Comparison(base, new), base_names, new_names


def _signed(value: float, digits: int) -> str:
    """``+0.31`` or ``−1.18`` (a true minus sign, as the docs write it)."""
    return f"{value:+.{digits}f}".replace("-", "−")


def judged_table(index: Path) -> str:
    """The markdown summary of every comparison listed in ``index`` (docs/cv/judged.json)."""
    folder = index.parent
    lines = [
        "| Session | Change | Student | Baseline → variant | Gain (SE) | Won | Clears the rule |",
        "|---:|---|---|---:|---:|---|---|",
    ]
    for entry in json.loads(index.read_text())["changes"]:
        student = entry.get("student", "distilled")
        method = entry.get("method", student)
        sides = [
            [folder / f"{entry[side]}-{seeds}.jsonl" for seeds in ("0-1", "2-3")]
            for side in ("baseline", "variant")
        ]
        result, _, _ = compare(*sides, method, entry.get("variant_method"))
        n = len(result.differences)
        won = f"{result.won} of {n}" + (f", {result.tied} tied" if result.tied else "")
        lines.append(
            f"| {entry['session']} | {entry['change']} | {student} | "
            f"{sum(result.baseline) / n:.1f} → {sum(result.variant) / n:.1f} | "
            f"{_signed(result.gain, 2)} ({result.standard_error:.2f}) | {won} | "
            f"{'**yes**' if result.clears_rule else 'no'} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--baseline", type=Path, nargs="+")
    parser.add_argument("--variant", type=Path, nargs="+")
    parser.add_argument(
        "--method",
        default="distilled",
        help="direct or distilled; for --refit-check lines a model: selected, refit, refit*1.5",
    )
    parser.add_argument(
        "--variant-method", default=None, help="the variant side's method (default: --method)"
    )
    parser.add_argument(
        "--table",
        type=Path,
        default=None,
        help="print the summary table of every comparison this index lists (docs/cv/judged.json)",
    )
    args = parser.parse_args()
    if args.table:
        print(judged_table(args.table))
        return
    if not (args.baseline and args.variant):
        parser.error("give --baseline and --variant files, or --table")

    result, base_names, new_names = compare(
        args.baseline, args.variant, args.method, args.variant_method
    )
    n = len(result.differences)
    compared = f"{args.variant_method or args.method} vs {args.method}"
    print(f"{compared}, mean over x1 / x1.25 / x0.8, {n} fold x seed pairs")
    print(f"baseline {', '.join(dict.fromkeys(base_names))}: {sum(result.baseline) / n:.1f}")
    print(f"variant  {', '.join(dict.fromkeys(new_names))}: {sum(result.variant) / n:.1f}")
    print(
        f"difference {result.gain:+.2f} (SE {result.standard_error:.2f}), "
        f"won {result.won} of {n}, {result.tied} tied"
    )
    verdict = "adopt" if result.clears_rule else "keep the baseline"
    print(f"rule (win by more than 2 SE): {verdict}")


if __name__ == "__main__":
    main()
