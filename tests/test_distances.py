"""The distance engine (gkd.distances) against the NumPy reference, its properties, and bad input.

Sizes are small on purpose: the reference costs tens of microseconds per frame pair.
"""

from __future__ import annotations

import math
import os
import signal
import threading
from pathlib import Path

import numpy as np
import pytest
import reference as ref
from hypothesis import given, settings
from hypothesis import strategies as st

from gkd.distances import HandParams, cross, pairwise

METRICS = ("procrustes", "procrustes-sum", "hand", "procrustes-paper")
SYMMETRIC_METRICS = ("procrustes", "procrustes-sum", "hand")
RTOL = 1e-9
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "utd_mhad_skeleton.npz"

PROPERTY_SETTINGS = settings(max_examples=25, deadline=None)


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random proper rotation (QR of a Gaussian matrix, signs fixed)."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def assert_matches(engine: np.ndarray, expected: np.ndarray) -> None:
    """Engine output equals the reference to 1e-9 relative (zeros to 1e-12 absolute)."""
    assert engine.dtype == np.float64
    assert engine.shape == expected.shape
    np.testing.assert_allclose(engine, expected, rtol=RTOL, atol=1e-12)


def reference_cross(a: np.ndarray, b: np.ndarray, **options: object) -> np.ndarray:
    """The reference's cross(), with the engine's HandParams unpacked into sigma keywords."""
    hand = options.pop("hand", None)
    if isinstance(hand, HandParams):
        options.update(
            sigma_shape=hand.sigma_shape,
            sigma_angle=hand.sigma_angle,
            sigma_wrist=hand.sigma_wrist,
            wrist_margin=hand.wrist_margin,
        )
    return ref.cross(a, b, **options)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def random_pair() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Two small random sets of sequences, ``(3, 7, 6, 3)`` and ``(2, 6, 6, 3)``, with lengths."""
    rng = np.random.default_rng(7)
    a = rng.normal(size=(3, 7, 6, 3))
    b = rng.normal(size=(2, 6, 6, 3))
    return a, b, np.array([7, 4, 1]), np.array([3, 6])


@pytest.fixture(scope="module")
def skeletons() -> tuple[np.ndarray, np.ndarray]:
    """Four real UTD-MHAD sequences (float32, cut to 30 frames) and their lengths."""
    rows = [0, 100, 400, 800]
    try:
        from gkd.datasets import load_mhad_all

        data = load_mhad_all()
        x, lengths = data.sequences[rows], data.lengths[rows]
    except ImportError:
        if not SHARED_DATA.exists():
            pytest.skip(f"no bundled UTD-MHAD loader (gkd.datasets) and no {SHARED_DATA}")
        with np.load(SHARED_DATA) as raw:
            x, lengths = raw["X"][rows], raw["lengths"][rows]
    return np.ascontiguousarray(x[:, :30]), np.minimum(lengths, 30).astype(np.int64)


# --- parity with the reference -----------------------------------------------------------------


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("band", [None, 0, 2])
@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("use_lengths", [False, True])
def test_cross_matches_reference_on_random_data(
    random_pair: tuple[np.ndarray, ...],
    metric: str,
    band: int | None,
    normalize: bool,
    use_lengths: bool,
) -> None:
    a, b, lengths_a, lengths_b = random_pair
    lengths = {"lengths_a": lengths_a, "lengths_b": lengths_b} if use_lengths else {}
    options = {"metric": metric, "band": band, "normalize": normalize}
    assert_matches(cross(a, b, **lengths, **options), ref.cross(a, b, **lengths, **options))


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("band", [None, 3])
def test_pairwise_matches_reference_on_skeletons(
    skeletons: tuple[np.ndarray, np.ndarray], metric: str, band: int | None
) -> None:
    x, lengths = skeletons
    expected = ref.cross(x, x, lengths_a=lengths, lengths_b=lengths, metric=metric, band=band)
    got = pairwise(x, lengths=lengths, metric=metric, band=band)
    # pairwise defines the diagonal as exactly zero (for the asymmetric "procrustes-paper" it
    # computes both orders of each pair).
    np.fill_diagonal(expected, 0.0)
    assert_matches(got, expected)


def test_cross_matches_reference_with_hand_params(random_pair: tuple[np.ndarray, ...]) -> None:
    a, b, lengths_a, lengths_b = random_pair
    hand = HandParams(sigma_shape=0.3, sigma_angle=2.5, sigma_wrist=0.7, wrist_margin=0.5)
    options = {"lengths_a": lengths_a, "lengths_b": lengths_b, "metric": "hand", "hand": hand}
    assert_matches(cross(a, b, **options), reference_cross(a, b, **options))


def with_missing_frames(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Sequences with missing frames: all-zero blocks, a constant frame, runs of them."""
    a = rng.normal(size=(3, 8, 5, 3))
    b = rng.normal(size=(2, 7, 5, 3))
    a[0, 2:5] = 0.0
    a[1, 0] = 0.0
    a[2] = 0.0  # an entirely missing sequence
    b[0, 3] = np.array([0.3, -1.0, 2.0])  # all landmarks at one point, not the origin
    b[1, 1:6] = 0.0
    return a, b


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("missing_cost", [None, 0.75, 0.0])
def test_missing_frames_match_reference(
    metric: str, normalize: bool, missing_cost: float | None
) -> None:
    # Zero-cost runs give many equal-cost paths: normalize=True then depends on the tie rule
    # (the shortest of the cheapest paths), which this checks.
    a, b = with_missing_frames(np.random.default_rng(11))
    options = {"metric": metric, "normalize": normalize, "missing_cost": missing_cost}
    assert_matches(cross(a, b, **options), ref.cross(a, b, **options))


def test_missing_against_missing_is_free() -> None:
    x = np.zeros((2, 4, 5, 3))
    x[1, :, :] = np.array([1.0, 2.0, 3.0])
    assert np.array_equal(pairwise(x), np.zeros((2, 2)))


def test_float32_input_matches_reference(random_pair: tuple[np.ndarray, ...]) -> None:
    a, b, lengths_a, lengths_b = random_pair
    a32, b32 = a.astype(np.float32), b.astype(np.float32)
    lengths = {"lengths_a": lengths_a, "lengths_b": lengths_b}
    got = cross(a32, b32, **lengths)
    assert_matches(got, ref.cross(a32.astype(np.float64), b32.astype(np.float64), **lengths))
    assert_matches(got, cross(a32.astype(np.float64), b32.astype(np.float64), **lengths))
    # one input of each type
    assert_matches(got, cross(a32, b32.astype(np.float64), **lengths))
    assert_matches(got, cross(a32.astype(np.float64), b32, **lengths))


def test_flat_landmark_axis_is_accepted(random_pair: tuple[np.ndarray, ...]) -> None:
    a, b, lengths_a, lengths_b = random_pair
    lengths = {"lengths_a": lengths_a, "lengths_b": lengths_b, "metric": "hand"}
    flat = cross(a.reshape(3, 7, 18), b.reshape(2, 6, 18), **lengths)
    assert np.array_equal(flat, cross(a, b, **lengths))
    assert np.array_equal(pairwise(a.reshape(3, 7, 18)), pairwise(a))


def test_padding_past_lengths_is_never_read(random_pair: tuple[np.ndarray, ...]) -> None:
    a, b, lengths_a, lengths_b = random_pair
    dirty = a.copy()
    for i, n in enumerate(lengths_a):
        dirty[i, n:] = np.nan
    lengths = {"lengths_a": lengths_a, "lengths_b": lengths_b}
    assert np.array_equal(cross(dirty, b, **lengths), cross(a, b, **lengths))
    assert np.array_equal(pairwise(dirty, lengths=lengths_a), pairwise(a, lengths=lengths_a))


# --- properties --------------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    scale=st.floats(0.01, 100.0),
    shift=st.tuples(*[st.floats(-50.0, 50.0)] * 3),
    which=st.integers(0, 2),
)
def test_procrustes_ignores_rotation_scale_translation(
    seed: int, scale: float, shift: tuple[float, float, float], which: int
) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(3, 6, 7, 3))
    y = rng.normal(size=(2, 5, 7, 3))
    moved = x.copy()
    rotation = random_rotation(rng)
    moved[which] = scale * x[which] @ rotation + np.array(shift)
    before = cross(x, y)
    after = cross(moved, y)
    np.testing.assert_allclose(after, before, rtol=RTOL, atol=0)
    # The transformed copy is at distance ~0 from the original.
    assert cross(x[which : which + 1], moved[which : which + 1])[0, 0] < 1e-6


@PROPERTY_SETTINGS
@given(seed=st.integers(0, 2**32 - 1), metric=st.sampled_from(SYMMETRIC_METRICS))
def test_pairwise_is_symmetric_with_zero_diagonal_and_equals_cross(seed: int, metric: str) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(4, 6, 5, 3))
    lengths = rng.integers(1, 7, size=4)
    d = pairwise(x, lengths=lengths, metric=metric)
    assert np.array_equal(d, d.T)
    assert np.all(np.diag(d) == 0.0)
    full = cross(x, x, lengths_a=lengths, lengths_b=lengths, metric=metric)
    off = ~np.eye(4, dtype=bool)
    # cross and pairwise put different pairs side by side in the kernel's lanes, and Newton
    # steps until every lane of a batch has converged, so the last bits may differ
    # (hypothesis found 1.8e-12 relative with the hand metric).
    np.testing.assert_allclose(full[off], d[off], rtol=1e-10, atol=0)
    assert np.all(np.abs(np.diag(full)) < 1e-6)


@PROPERTY_SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    metric=st.sampled_from(METRICS),
    band=st.one_of(st.none(), st.integers(0, 4)),
    normalize=st.booleans(),
)
def test_thread_count_does_not_change_results(
    seed: int, metric: str, band: int | None, normalize: bool
) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(9, 8, 4, 3))
    y = rng.normal(size=(5, 6, 4, 3))
    options = {"metric": metric, "band": band, "normalize": normalize}
    assert np.array_equal(cross(x, y, threads=1, **options), cross(x, y, threads=2, **options))
    assert np.array_equal(pairwise(x, threads=1, **options), pairwise(x, threads=2, **options))


def test_progress_callback_counts_every_pair(random_pair: tuple[np.ndarray, ...]) -> None:
    a, b, _, _ = random_pair
    calls: list[tuple[int, int]] = []
    cross(a, b, progress=lambda done, total: calls.append((done, total)))
    assert calls, "the progress callback was never called"
    assert all(total == 6 for _, total in calls)
    assert calls[-1][0] == 6
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)


# --- bad input ---------------------------------------------------------------------------------


@pytest.fixture
def good() -> np.ndarray:
    return np.random.default_rng(3).normal(size=(2, 4, 5, 3))


@pytest.mark.parametrize("shape", [(6,), (2, 12), (2, 4, 5, 3, 1)])
def test_wrong_rank_is_rejected(shape: tuple[int, ...]) -> None:
    bad = np.random.default_rng(0).normal(size=shape)
    with pytest.raises(ValueError, match="dimension|rank|shape|ndim"):
        pairwise(bad)


@pytest.mark.parametrize("shape", [(2, 4, 5, 2), (2, 4, 5, 4), (2, 4, 16)])
def test_last_axis_must_be_coordinates(shape: tuple[int, ...]) -> None:
    bad = np.random.default_rng(0).normal(size=shape)
    with pytest.raises(ValueError, match="3"):
        pairwise(bad)


def test_landmark_counts_must_agree(good: np.ndarray) -> None:
    with pytest.raises(ValueError, match="landmark"):
        cross(good, good[:, :, :4])


@pytest.mark.parametrize("metric", METRICS)
def test_too_few_landmarks_for_the_metric(metric: str) -> None:
    bad = np.random.default_rng(0).normal(size=(2, 4, 2, 3))
    with pytest.raises(ValueError, match="landmark"):
        pairwise(bad, metric=metric)


@pytest.mark.parametrize("lengths", [[0, 4], [4, 5], [-1, 2], [4], [4, 4, 4], [[4, 4]]])
def test_lengths_outside_range_or_wrong_shape(good: np.ndarray, lengths: list[int]) -> None:
    with pytest.raises(ValueError, match="length"):
        pairwise(good, lengths=np.array(lengths))
    with pytest.raises(ValueError, match="length"):
        cross(good, good, lengths_b=np.array(lengths))


def test_fractional_lengths_are_rejected(good: np.ndarray) -> None:
    with pytest.raises((TypeError, ValueError), match="length"):
        pairwise(good, lengths=np.array([2.5, 3.0]))


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_frame_is_named(good: np.ndarray, value: float) -> None:
    bad = good.copy()
    bad[1, 2, 3, 0] = value
    with pytest.raises(ValueError, match=r"sequence 1\b.*frame 2\b") as info:
        cross(good, bad)
    assert "b" in str(info.value).split(":")[0]
    with pytest.raises(ValueError, match=r"sequence 1\b.*frame 2\b"):
        pairwise(bad)
    # The same value past the sequence's length is never read.
    assert np.isfinite(cross(good, bad, lengths_b=np.array([4, 2]))).all()


def test_unknown_metric(good: np.ndarray) -> None:
    with pytest.raises(ValueError, match="euclid"):
        pairwise(good, metric="euclid")  # type: ignore[arg-type]


def test_negative_band(good: np.ndarray) -> None:
    with pytest.raises(ValueError, match="band"):
        pairwise(good, band=-1)


@pytest.mark.parametrize("field", ["sigma_shape", "sigma_angle", "sigma_wrist"])
@pytest.mark.parametrize("value", [0.0, -1.0, math.nan])
def test_hand_sigmas_must_be_positive(good: np.ndarray, field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        pairwise(good, metric="hand", hand=HandParams(**{field: value}))


def test_enormous_output_is_refused_before_allocating() -> None:
    # 400,000 x 400,000 float64 = 1.28 TB; the input itself is small.
    x = np.random.default_rng(0).normal(size=(400_000, 1, 3, 3)).astype(np.float32)
    with pytest.raises((ValueError, MemoryError), match=r"[GT]i?B"):
        pairwise(x)
    with pytest.raises((ValueError, MemoryError), match=r"[GT]i?B"):
        cross(x, x)


# --- cancellation ------------------------------------------------------------------------------


def test_progress_raising_keyboard_interrupt_cancels(random_pair: tuple[np.ndarray, ...]) -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(300, 60, 21, 3))
    seen: list[int] = []

    def interrupt(done: int, total: int) -> None:
        seen.append(done)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pairwise(x, threads=1, progress=interrupt)
    assert len(seen) == 1
    assert seen[0] < 300 * 299 // 2
    # The engine is usable afterwards and its results are whole.
    a, b, _, _ = random_pair
    assert_matches(cross(a, b), ref.cross(a, b))


def test_sigint_cancels_a_long_run(ctrl_c_enabled: None) -> None:
    # About a minute of single-thread work if not cancelled; SIGINT arrives once it runs.
    rng = np.random.default_rng(6)
    x = rng.normal(size=(600, 100, 21, 3))
    started = threading.Event()
    last: list[tuple[int, int]] = []

    def progress(done: int, total: int) -> None:
        last.append((done, total))
        started.set()

    def interrupt() -> None:
        if started.wait(timeout=30):
            os.kill(os.getpid(), signal.SIGINT)

    sender = threading.Thread(target=interrupt)
    sender.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            pairwise(x, threads=1, progress=progress)
    finally:
        sender.join()
    assert started.is_set()
    done, total = last[-1]
    assert done < total
