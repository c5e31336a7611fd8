"""SIGNUM-scale teacher cost on synthetic data of SIGNUM's shape (issue 7).

SIGNUM's training split holds 6,300 sequences of 80 frames; the teacher compares each hand
(21 MediaPipe landmarks, wrist first) with the ``hand`` metric and sums the two matrices.
This script times, on synthetic data of exactly that shape (not SIGNUM results):

1. a block of ``--block`` training sequences against itself, both hands, and extrapolates
   to the full 6,300 × 6,300 train × train matrix (each unordered pair once);
2. per-sample k-NN: one query against all 6,300 references, both hands, plus the vote,
   median over ``--queries`` queries after a warm-up.

``--full DIR`` instead computes the whole 6,300 × 6,300 matrix, both hands, through the
distance cache in DIR, the path ``gkd-run signum`` takes (blocks on disk, progress, Ctrl-C
keeps finished blocks, a rerun resumes); the time it prints covers only what that run computed.

Usage::

    python benches/signum_scale.py                 # block 1000, all cores
    python benches/signum_scale.py --block 300 --threads 1
    python benches/signum_scale.py --full runs/signum-cache   # one to two hours on 2 cores
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

import gkd
from gkd.cache import DistanceCache

TRAIN = 6300
FRAMES = 80
LANDMARKS = 21


def synthetic_hands(n: int, *, seed: int = 0, missing: float = 0.05) -> np.ndarray:
    """``(n, 80, 2, 21, 3)`` float32: two moving hands per frame, some frames undetected."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 1.0, FRAMES)[None, :, None, None, None]
    base = rng.normal(scale=0.04, size=(n, 1, 2, LANDMARKS, 3))
    wobble = rng.normal(scale=0.01, size=(n, 1, 2, LANDMARKS, 3))
    phase = rng.uniform(0, 2 * np.pi, size=(n, 1, 2, 1, 1))
    wrist = rng.uniform(0.3, 0.7, size=(n, 1, 2, 1, 3))
    hands = base + wobble * np.sin(2 * np.pi * t * 2 + phase) + wrist + 0.1 * t
    hands[rng.random((n, FRAMES, 2)) < missing] = 0.0
    return hands.astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--block", type=int, default=1000, help="training sequences in the timed block"
    )
    parser.add_argument(
        "--queries", type=int, default=5, help="queries for the per-sample k-NN time"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="worker threads (default: all cores)"
    )
    parser.add_argument(
        "--full",
        type=Path,
        default=None,
        metavar="DIR",
        help="compute the whole train x train matrix through a distance cache in DIR",
    )
    args = parser.parse_args()

    train = synthetic_hands(TRAIN)
    if args.full:
        full_matrix(train, args.full, args.threads)
        return
    block = train[: args.block]
    start = time.perf_counter()
    for hand in range(2):
        gkd.pairwise(block[:, :, hand], metric="hand", threads=args.threads)
    block_s = time.perf_counter() - start
    pairs_block = args.block * (args.block - 1) / 2
    pairs_full = TRAIN * (TRAIN - 1) / 2
    full_s = block_s * pairs_full / pairs_block
    print(f"train x train, both hands: {args.block}-sequence block in {block_s:.1f} s")
    print(f"  extrapolated to {TRAIN} x {TRAIN}: {full_s:.0f} s = {full_s / 3600:.2f} h")
    print(f"  {block_s / (2 * pairs_block * FRAMES * FRAMES) * 1e9:.1f} ns per frame pair (wall)")

    labels = np.arange(TRAIN) % 450
    queries = synthetic_hands(args.queries + 1, seed=1)

    def classify(q: np.ndarray) -> int:
        d = sum(
            gkd.cross(q[None, :, h], train[:, :, h], metric="hand", threads=args.threads)
            for h in range(2)
        )
        return int(gkd.knn_predict(d, labels, k=1)[0])

    classify(queries[0])  # warm-up
    times = []
    for q in queries[1:]:
        start = time.perf_counter()
        classify(q)
        times.append(time.perf_counter() - start)
    ms = statistics.median(times) * 1e3
    print(f"per-sample k-NN against {TRAIN} references, both hands: {ms:.0f} ms")
    print(f"  median of {args.queries} queries after a warm-up")
    print(f"  the paper reports 3.6e6 ms per sample: {3.6e6 / ms:,.0f} x faster")


def full_matrix(train: np.ndarray, cache_dir: Path, threads: int | None) -> None:
    """Both hands' train × train matrices through the distance cache, timed, then checked."""
    cache = DistanceCache(cache_dir)
    total = None
    start = time.perf_counter()
    for hand in range(2):
        shown = [-1]

        def report(done: int, pairs: int, hand: int = hand, shown: list[int] = shown) -> None:
            percent = 100 * done // max(pairs, 1)
            if percent // 5 > shown[0]:  # every 5 %
                shown[0] = percent // 5
                elapsed = time.perf_counter() - start
                print(f"hand {hand}: {percent} % ({elapsed:.0f} s)", file=sys.stderr, flush=True)

        matrix = cache.pairwise(train[:, :, hand], metric="hand", threads=threads, progress=report)
        total = matrix if total is None else total + matrix
    seconds = time.perf_counter() - start
    assert total is not None
    print(f"train x train, both hands, {TRAIN} x {TRAIN}: {seconds:.0f} s = {seconds / 3600:.2f} h")
    print("  (only what this run computed: blocks already in the cache are read, not timed)")
    off_diagonal = total[~np.eye(TRAIN, dtype=bool)]
    print(
        f"  symmetric: {np.array_equal(total, total.T)}, zero diagonal: "
        f"{not np.diagonal(total).any()}, finite: {np.isfinite(total).all()}, "
        f"off-diagonal min {off_diagonal.min():.4g} max {off_diagonal.max():.4g}"
    )


if __name__ == "__main__":
    main()
