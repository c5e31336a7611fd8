"""End-to-end speed of the gkd engine against the plain NumPy reference, on the same pairs.

Prints, in one run: nanoseconds per frame pair per core for the engine on 1 and 2 threads, the
NumPy reference's cost per frame pair (timed on a few sequence pairs of the same data), the
engine/reference ratio per pair on one thread, and the 2-thread over 1-thread speed-up.

Usage::

    python benches/compare.py                      # 64 sequences x 80 frames x 21 landmarks
    python benches/compare.py --metric hand --sequences 32 --reference-pairs 3

Timings are medians over ``--repeats`` runs; this is a measurement script, not a test.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

import gkd.distances as engine

# The reference lives with the tests (it is their oracle); import it from there.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import reference  # noqa: E402


def hand_like_sequences(
    n: int, frames: int, landmarks: int, *, rng: np.random.Generator
) -> np.ndarray:
    """Synthetic hand-like motion, ``(n, frames, landmarks, 3)`` float32.

    Each sequence is a random base shape of a few centimetres that turns slowly, drifts and
    jitters, so consecutive frames are similar (as in real motion) but no two are equal.
    """
    out = np.empty((n, frames, landmarks, 3))
    t = np.linspace(0.0, 1.0, frames)
    for i in range(n):
        base = rng.normal(scale=0.04, size=(landmarks, 3))
        base[0] = 0.0  # wrist at the origin of the base shape
        axis = rng.normal(size=3)
        axis /= np.linalg.norm(axis)
        angles = rng.uniform(0.5, 2.5) * np.sin(2 * np.pi * rng.uniform(0.5, 2.0) * t)
        drift = np.cumsum(rng.normal(scale=0.005, size=(frames, 3)), axis=0)
        for k in range(frames):
            rotation = _rotation(axis, float(angles[k]))
            jitter = rng.normal(scale=0.002, size=(landmarks, 3))
            out[i, k] = (base + jitter) @ rotation.T + drift[k] + np.array([0.5, 0.5, 0.0])
    return out.astype(np.float32)


def _rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues' formula: rotation by ``angle`` radians about the unit vector ``axis``."""
    k = np.array([[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]], [-axis[1], axis[0], 0.0]])
    return np.eye(3) + np.sin(angle) * k + (1.0 - np.cos(angle)) * (k @ k)


def median_seconds(run: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``repeats`` calls of ``run`` (after one untimed warm-up call)."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    """Run the comparison and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=64, help="sequences (all pairs)")
    parser.add_argument("--frames", type=int, default=80, help="frames per sequence")
    parser.add_argument("--landmarks", type=int, default=21, help="landmarks per frame")
    parser.add_argument("--metric", default="procrustes", choices=reference.METRICS)
    parser.add_argument("--band", type=int, default=None, help="Sakoe-Chiba half-width")
    parser.add_argument("--repeats", type=int, default=5, help="timed engine runs (median)")
    parser.add_argument(
        "--reference-pairs",
        type=int,
        default=2,
        help="sequence pairs timed with the NumPy reference (it costs ~30-40 us per frame pair)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    x = hand_like_sequences(args.sequences, args.frames, args.landmarks, rng=rng)
    n, frames = args.sequences, args.frames
    pairs = n * (n - 1) // 2
    frame_pairs = pairs * frames * frames
    options = {"metric": args.metric, "band": args.band}

    seconds = {}
    results = {}
    for threads in (1, 2):

        def run(threads: int = threads) -> None:
            results[threads] = engine.pairwise(x, threads=threads, **options)

        seconds[threads] = median_seconds(run, args.repeats)
    if not np.array_equal(results[1], results[2]):
        raise SystemExit("engine results differ between 1 and 2 threads")

    # The reference on the first few pairs of the same data, checked against the engine.
    x64 = x.astype(np.float64)
    ref_pairs = [(0, j) for j in range(1, 1 + args.reference_pairs)]
    start = time.perf_counter()
    ref_values = [reference.distance(x64[i], x64[j], **options) for i, j in ref_pairs]
    ref_seconds = time.perf_counter() - start
    ref_ns = ref_seconds * 1e9 / (len(ref_pairs) * frames * frames)
    engine_values = [results[1][i, j] for i, j in ref_pairs]
    worst = max(abs(e - r) / abs(r) for e, r in zip(engine_values, ref_values, strict=True))

    ns_1 = seconds[1] * 1e9 / frame_pairs
    ns_2_per_core = seconds[2] * 2 * 1e9 / frame_pairs
    print(
        f"gkd engine vs NumPy reference: metric {args.metric!r}, band {args.band}, "
        f"{n} sequences x {frames} frames x {args.landmarks} landmarks "
        f"({pairs} pairs, {frame_pairs:,} frame pairs); median of {args.repeats} runs"
    )
    rows = [
        ("engine, 1 thread", f"{seconds[1] * 1e3:.1f} ms", f"{ns_1:.1f}"),
        ("engine, 2 threads", f"{seconds[2] * 1e3:.1f} ms", f"{ns_2_per_core:.1f}"),
        (
            f"NumPy reference ({len(ref_pairs)} pairs)",
            f"{ref_seconds * 1e3:.1f} ms",
            f"{ref_ns:.1f}",
        ),
    ]
    print(f"{'':<28} {'wall':>12} {'ns / frame pair / core':>24}")
    for name, wall, per_pair in rows:
        print(f"{name:<28} {wall:>12} {per_pair:>24}")
    print(f"reference / engine per pair, 1 thread: {ref_ns / ns_1:,.0f}x")
    print(f"2 threads over 1 thread:               {seconds[1] / seconds[2]:.2f}x")
    print(f"engine vs reference, largest relative difference: {worst:.1e}")


if __name__ == "__main__":
    main()
