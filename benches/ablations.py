"""Ablations on UTD-MHAD (issue 7): what each design choice of the pipeline is worth.

Each variant changes one thing from the defaults and runs the whole experiment (teacher,
k-NN with k chosen on validation, direct transformer, distilled student) with the same seeds.
The defaults were fixed before any of these runs (by cross-validation on training subjects,
``benches/tune_mhad.py``); the test scores below choose nothing. Variants:

- ``default``: as ``gkd-run mhad``;
- ``T=<t>``: another fixed soft-target temperature; ``T=auto``: the candidate with the lowest
  validation cross-entropy (``--temperature auto``);
- ``no-leave-one-out``: training targets keep each sample's own zero distance (the paper's);
- ``dtw-normalised``: DTW divided by the warping-path length (teacher and k-NN change too);
- ``no-augmentation``: students trained without rotation, scale and time-warp augmentation;
- ``no-distances``: students see coordinates only, without pairwise landmark distances;
- ``no-refit``: students selected on validation, not retrained on train + validation;
- ``frame-positions``: students' tokens at their frame index, not scaled to the length.

Usage::

    python benches/ablations.py --protocol paper --seeds 0 --out runs/ablations-paper.md
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

from gkd.datasets import load_mhad_all
from gkd.experiment import DIRECT, DISTILLED, KNN, MHAD_TEACHER, run_mhad
from gkd.student import Preprocessing

# Variant -> (TeacherConfig changes, TrainConfig changes, run_mhad options).
VARIANTS: dict[str, tuple[dict[str, object], dict[str, object], dict[str, object]]] = {
    "default": ({}, {}, {}),
    "T=auto": ({"temperature": None}, {}, {}),
    "T=0.01": ({"temperature": 0.01}, {}, {}),
    "T=0.05": ({"temperature": 0.05}, {}, {}),
    "T=0.2": ({"temperature": 0.2}, {}, {}),
    "T=1": ({"temperature": 1.0}, {}, {}),
    "no-leave-one-out": ({"leave_one_out": False}, {}, {}),
    "dtw-normalised": ({"normalize": True}, {}, {}),
    "no-augmentation": ({}, {"augment": False}, {}),
    # A dict as "preprocessing": overrides of the default Preprocessing.for_landmarks.
    "no-distances": ({}, {"preprocessing": {"distances": False}}, {}),
    "no-refit": ({}, {}, {"refit": False}),
    "frame-positions": ({}, {"positions": "frame"}, {}),
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--protocol", choices=["paper", "cross-subject"], default="paper")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all)")
    parser.add_argument("--cache-dir", type=Path, default=Path("runs/cache"))
    parser.add_argument("--out", type=Path, default=Path("runs/ablations.md"))
    args = parser.parse_args()

    lines = [
        f"UTD-MHAD, {args.protocol} protocol, seeds {args.seeds}: test accuracy (%), seed mean",
        "",
        "| Variant | k | T | k-NN | Transformer (direct) | Student (distilled) | s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    records = []
    for name in args.variants:
        teacher_changes, train_changes, options = VARIANTS[name]
        overrides = train_changes.get("preprocessing")
        if isinstance(overrides, dict):
            names = load_mhad_all().landmark_names
            chosen = Preprocessing.for_landmarks(names, **overrides)
            train_changes = {**train_changes, "preprocessing": chosen}
        start = time.perf_counter()
        result = run_mhad(
            protocol=args.protocol,
            seeds=args.seeds,
            teacher=dataclasses.replace(MHAD_TEACHER, **teacher_changes),  # type: ignore[arg-type]
            train_config=train_changes or None,
            cache_dir=args.cache_dir,
            threads=args.threads,
            **options,  # type: ignore[arg-type]
        )
        seconds = time.perf_counter() - start
        acc = {m: 100 * s["accuracy"]["mean"] for m, s in result.summary.items()}
        knn, direct, distilled = acc[KNN], acc[DIRECT], acc[DISTILLED]
        lines.append(
            f"| {name} | {result.k} | {result.temperature:g} | {knn:.1f} | {direct:.1f} | "
            f"{distilled:.1f} | {seconds:.0f} |"
        )
        per_run = {
            method: [
                {key: run.get(key) for key in ("seed", "accuracy", "best_epoch")} for run in runs
            ]
            for method, runs in result.runs.items()
        }
        records.append(
            {
                "variant": name,
                "k": result.k,
                "temperature": result.temperature,
                "accuracy": acc,
                "runs": per_run,
            }
        )
        print(lines[-1], flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    args.out.with_suffix(".json").write_text(json.dumps(records, indent=2))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
