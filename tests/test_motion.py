"""Frames that carry their motion (gkd.with_motion, TeacherConfig.lead) against the reference."""

from __future__ import annotations

import numpy as np
import pytest
import reference as ref
from hypothesis import given, settings
from hypothesis import strategies as st
from test_distances import RTOL, random_rotation

from gkd.distances import cross, pairwise, with_motion
from gkd.experiment import TeacherConfig


@pytest.fixture(scope="module")
def sequences() -> tuple[np.ndarray, np.ndarray]:
    """Four random ``(9, 5, 3)`` sequences of lengths 9, 4, 2 and 1, padded with noise."""
    rng = np.random.default_rng(11)
    return rng.normal(size=(4, 9, 5, 3)), np.array([9, 4, 2, 1])


@pytest.mark.parametrize("lead", [0.0, 1.0, 7.5])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_matches_reference(sequences: tuple[np.ndarray, np.ndarray], lead: float, dtype) -> None:
    x, lengths = sequences
    out = with_motion(x.astype(dtype), lengths=lengths, lead=lead)
    assert out.shape == (4, 9, 10, 3) and out.dtype == dtype
    for row, n in enumerate(lengths):
        expected = ref.with_motion(x[row, :n].astype(dtype), lead)
        np.testing.assert_allclose(out[row, :n], expected, rtol=1e-5 if dtype == np.float32 else 0)
        assert not out[row, n:].any()  # past the length: zero, whatever the padding held


def test_flat_landmark_axis_and_default_lengths(sequences: tuple[np.ndarray, np.ndarray]) -> None:
    x, _ = sequences
    flat = with_motion(x.reshape(4, 9, 15), lead=2.0)
    np.testing.assert_array_equal(flat, with_motion(x, lead=2.0))
    np.testing.assert_allclose(flat[0], ref.with_motion(x[0], 2.0), rtol=1e-12)


def test_engine_on_motion_frames_matches_reference(
    sequences: tuple[np.ndarray, np.ndarray],
) -> None:
    x, lengths = sequences
    engine = pairwise(with_motion(x, lengths=lengths, lead=3.0), lengths=lengths)
    moving = [ref.with_motion(x[row, :n], 3.0) for row, n in enumerate(lengths)]
    expected = np.array([[ref.distance(a, b) for b in moving] for a in moving])
    np.testing.assert_allclose(engine, expected, rtol=RTOL, atol=1e-12)


def test_motion_tells_a_pause_from_a_movement() -> None:
    """Poses alone cannot: DTW maps each held frame onto the one pose it repeats."""
    rng = np.random.default_rng(3)
    path = np.cumsum(rng.normal(size=(6, 5, 3)), axis=0)  # five landmarks wandering
    held = np.repeat(path, 2, axis=0)  # the same poses, each held for two frames
    moving = np.zeros_like(held)
    moving[:6] = path
    both = np.stack([moving, held])
    lengths = np.array([6, 12])
    poses_only = pairwise(both, lengths=lengths)[0, 1]
    with_velocity = pairwise(with_motion(both, lengths=lengths, lead=2.0), lengths=lengths)[0, 1]
    assert poses_only < 1e-6
    assert with_velocity > 0.1


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    scale=st.floats(0.1, 10.0),
    shift=st.tuples(*[st.floats(-5.0, 5.0)] * 3),
)
def test_invariant_to_rotation_scale_translation_of_a_sequence(
    seed: int, scale: float, shift: tuple[float, float, float]
) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(3, 6, 5, 3))
    moved = x.copy()
    moved[0] = scale * x[0] @ random_rotation(rng) + np.array(shift)
    before = pairwise(with_motion(x, lead=4.0))
    after = pairwise(with_motion(moved, lead=4.0))
    np.testing.assert_allclose(after, before, rtol=1e-7, atol=1e-9)
    copies = with_motion(np.stack([x[0], moved[0]]), lead=4.0)
    assert cross(copies[:1], copies[1:])[0, 0] < 1e-6
    # symmetric with a zero diagonal, as without motion
    np.testing.assert_allclose(before, before.T, rtol=0, atol=0)
    assert not np.diag(before).any()


@pytest.mark.parametrize("lead", [-1.0, np.inf, np.nan])
def test_lead_must_be_finite_and_not_negative(lead: float) -> None:
    with pytest.raises(ValueError, match="lead"):
        with_motion(np.zeros((1, 2, 3, 3)), lead=lead)
    with pytest.raises(ValueError, match="lead"):
        TeacherConfig(lead=lead)


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_value_is_named(sequences: tuple[np.ndarray, np.ndarray], value: float) -> None:
    x, lengths = sequences
    bad = x.copy()
    bad[1, 3, 2, 0] = value
    with pytest.raises(ValueError, match=r"queries: sequence 1, frame 3\b"):
        with_motion(bad, lengths=lengths, lead=1.0, name="queries")
    # past the sequence's length it is never read, and the result there is zero
    bad[1, 3, 2, 0], bad[1, 5, 2, 0] = x[1, 3, 2, 0], value
    out = with_motion(bad, lengths=lengths, lead=1.0)
    assert np.isfinite(out[1, :4]).all() and not out[1, 4:].any()


def test_shape_and_length_errors_name_the_input() -> None:
    with pytest.raises(ValueError, match=r"queries has shape \(2, 3, 4\)"):
        with_motion(np.zeros((2, 3, 4)), lead=1.0, name="queries")
    with pytest.raises(ValueError, match="lengths for x: sequence 1 has length 5"):
        with_motion(np.zeros((2, 3, 4, 3)), lengths=np.array([1, 5]), lead=1.0)


def test_teacher_keeps_motion_to_the_procrustes_costs() -> None:
    for metric in ("procrustes", "procrustes-sum"):
        assert TeacherConfig(metric=metric, lead=10).lead == 10.0
    for metric in ("hand", "procrustes-paper"):
        with pytest.raises(ValueError, match=f"lead is for the procrustes.*not '{metric}'"):
            TeacherConfig(metric=metric, lead=10)
    x, lengths = np.ones((2, 3, 4, 3)), np.array([3, 2])
    assert TeacherConfig().frames(x, lengths) is x  # off: the landmarks as they are
    np.testing.assert_array_equal(
        TeacherConfig(lead=2).frames(x, lengths), with_motion(x, lengths=lengths, lead=2)
    )
