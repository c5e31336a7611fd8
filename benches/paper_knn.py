"""Issue 7: where the paper's UTD-MHAD 1-NN accuracy (31.9 %) comes from, and what a correct one is.

Paper protocol: subjects 6-8 are the queries (322 sequences), subjects 1-5 the references (539;
gkd's train and validation splits together, since the paper had no validation split). For each
combination of the two published defects, the loader layout (``paper-scrambled`` or the real
``frames``) and the frame cost (``procrustes-paper`` or the correct ``procrustes``), it computes
the full 322 x 539 engine matrix and prints the 1-NN accuracy (label of the nearest reference).

With ``--paper-queries N`` it also recomputes N random query rows of the published combination
with :func:`gkd.paper.published_distances` (the published NumPy/LAPACK arithmetic, slow: about
3.1-3.3 µs per frame pair, ~8 s per query row) and compares them with the engine's rows.

Usage::

    python benches/paper_knn.py --threads 2
    python benches/paper_knn.py --threads 2 --published-only --paper-queries 96 --seed 0
    python benches/paper_knn.py --threads 2 --published-only --paper-queries 322  # all, ~45 min

This is a measurement script, not a test; docs/paper-reproduction.md records its output.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import gkd.paper
from gkd.datasets import load_mhad
from gkd.datasets.mhad import Layout
from gkd.distances import Metric, cross


def paper_protocol(
    layout: Layout,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Queries and references of the paper protocol as plain arrays.

    Returns
    -------
    tuple of numpy.ndarray
        ``(queries, query_lengths, query_labels, references, reference_lengths,
        reference_labels)``; the references are gkd's train then validation split.
    """
    splits = load_mhad(protocol="paper", layout=layout)
    references = (splits.train, splits.validation)
    return (
        splits.test.sequences,
        splits.test.lengths,
        splits.test.labels,
        np.concatenate([r.sequences for r in references]),
        np.concatenate([r.lengths for r in references]),
        np.concatenate([r.labels for r in references]),
    )


def nearest_labels(distances: np.ndarray, reference_labels: np.ndarray) -> np.ndarray:
    """1-NN prediction: the label of each row's nearest reference (first one on exact ties)."""
    return reference_labels[np.argmin(distances, axis=1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="engine threads (default all)")
    parser.add_argument(
        "--paper-queries",
        type=int,
        default=0,
        help="query rows to recompute with gkd.paper.published_distances (slow; 0 = none)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for choosing those rows")
    parser.add_argument(
        "--published-only",
        action="store_true",
        help="compute only the published combination (scrambled frames, paper cost)",
    )
    args = parser.parse_args()

    combos: list[tuple[Layout, Metric, str]] = [
        ("paper-scrambled", "procrustes-paper", "published: scrambled frames, paper cost"),
        ("frames", "procrustes-paper", "real frames, paper cost"),
        ("paper-scrambled", "procrustes", "scrambled frames, correct cost"),
        ("frames", "procrustes", "corrected pipeline: real frames, correct cost"),
    ]
    if args.published_only:
        combos = combos[:1]
    published: dict[str, np.ndarray] = {}
    print(f"{'layout':16} {'metric':17} {'1-NN acc':>9} {'seconds':>8}  meaning")
    for layout, metric, meaning in combos:
        queries, lq, yq, references, lr, yr = paper_protocol(layout)
        start = time.perf_counter()
        distances = cross(
            queries,
            references,
            lengths_a=lq,
            lengths_b=lr,
            metric=metric,
            threads=args.threads,
        )
        seconds = time.perf_counter() - start
        accuracy = float(np.mean(nearest_labels(distances, yr) == yq))
        print(f"{layout:16} {metric:17} {100 * accuracy:8.2f}% {seconds:8.1f}  {meaning}")
        if layout == "paper-scrambled" and metric == "procrustes-paper":
            published = {"distances": distances, "lq": lq, "lr": lr, "yq": yq, "yr": yr}
            published.update(queries=queries, references=references)
    print(f"({len(published['yq'])} queries x {len(published['yr'])} references)")

    if args.paper_queries > 0:
        compare_with_compat_mode(published, args.paper_queries, args.seed)


def compare_with_compat_mode(published: dict[str, np.ndarray], n_rows: int, seed: int) -> None:
    """Recomputes ``n_rows`` random query rows with gkd.paper and compares them with the engine."""
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(published["yq"]), size=n_rows, replace=False))
    start = time.perf_counter()
    compat = gkd.paper.published_distances(
        published["queries"][rows],
        published["references"],
        lengths_a=published["lq"][rows],
        lengths_b=published["lr"],
        progress=sys.stderr.isatty(),
    )
    seconds = time.perf_counter() - start
    frame_pairs = float(np.sum(published["lq"][rows]) * np.sum(published["lr"]))
    engine = published["distances"][rows]
    errors = np.abs(engine - compat) / compat
    yq, yr = published["yq"][rows], published["yr"]
    by_engine, by_compat = nearest_labels(engine, yr), nearest_labels(compat, yr)
    same_neighbour = np.argmin(engine, axis=1) == np.argmin(compat, axis=1)
    print(f"\ngkd.paper on {n_rows} random query rows (seed {seed}) x {len(yr)} references:")
    print(f"  time {seconds:.0f} s, {1e6 * seconds / frame_pairs:.2f} µs per frame pair")
    print(
        f"  engine vs gkd.paper relative difference: median {100 * np.median(errors):.4f}%, "
        f"largest {100 * errors.max():.2f}%"
    )
    print(
        f"  same nearest reference: {int(same_neighbour.sum())}/{n_rows}; same 1-NN label: "
        f"{int(np.sum(by_engine == by_compat))}/{n_rows}"
    )
    print(
        f"  1-NN accuracy on these rows: engine {100 * np.mean(by_engine == yq):.2f}%, "
        f"gkd.paper {100 * np.mean(by_compat == yq):.2f}%"
    )


if __name__ == "__main__":
    main()
