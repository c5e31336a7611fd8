"""Self-tests of the NumPy reference (tests/reference.py): the oracle is checked before it is used.

Nothing here needs the compiled engine.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import reference as ref


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random proper rotation (QR of a Gaussian matrix, signs fixed)."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def rotation_about_z(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20260701)


# --- frame costs -------------------------------------------------------------------------------


@pytest.mark.parametrize("metric", ["procrustes", "procrustes-sum"])
def test_frame_cost_ignores_rotation_scale_translation_of_one_frame(
    rng: np.random.Generator, metric: str
) -> None:
    a, b = rng.normal(size=(2, 21, 3))
    moved = 3.7 * b @ random_rotation(rng) + rng.normal(size=3)
    assert ref.frame_cost(a, moved, metric=metric) == pytest.approx(
        ref.frame_cost(a, b, metric=metric), rel=1e-12
    )


@pytest.mark.parametrize("metric", ["procrustes", "procrustes-sum"])
def test_frame_cost_is_symmetric(rng: np.random.Generator, metric: str) -> None:
    a, b = rng.normal(size=(2, 15, 3))
    assert ref.frame_cost(a, b, metric=metric) == pytest.approx(
        ref.frame_cost(b, a, metric=metric), rel=1e-12
    )


@pytest.mark.parametrize("metric", ["procrustes", "procrustes-sum", "hand", "procrustes-paper"])
def test_identical_frames_cost_nothing(rng: np.random.Generator, metric: str) -> None:
    a = rng.normal(size=(21, 3))
    assert ref.frame_cost(a, a.copy(), metric=metric) == pytest.approx(0.0, abs=1e-7)


def test_procrustes_residual_matches_signed_singular_values(rng: np.random.Generator) -> None:
    # ||X - Y R||^2 = 2 - 2 (s1 + s2 + sign(det) s3) for unit-norm X, Y (Kabsch / Umeyama).
    for _ in range(20):
        a, b = rng.normal(size=(2, 10, 3))
        x, y = ref.normalise(a, "procrustes"), ref.normalise(b, "procrustes")
        covariance = y.T @ x
        s = np.linalg.svd(covariance, compute_uv=False)
        signed = s[0] + s[1] + np.sign(np.linalg.det(covariance)) * s[2]
        expected = math.sqrt(max(2.0 - 2.0 * signed, 0.0))
        assert ref.frame_cost(a, b, metric="procrustes") == pytest.approx(expected, rel=1e-10)


def test_optimal_rotation_is_proper_even_for_a_mirror_image(rng: np.random.Generator) -> None:
    a = rng.normal(size=(12, 3))
    mirrored = a * np.array([1.0, 1.0, -1.0])
    x, y = ref.normalise(a, "procrustes"), ref.normalise(mirrored, "procrustes")
    rotation = ref.optimal_rotation(x, y)
    assert np.linalg.det(rotation) == pytest.approx(1.0)
    assert rotation @ rotation.T == pytest.approx(np.eye(3), abs=1e-12)
    # A reflection would fit exactly; the proper rotation cannot.
    best = ref.frame_cost(a, mirrored, metric="procrustes")
    assert best > 0.05
    # No random proper rotation beats the optimum.
    for _ in range(200):
        other = float(np.linalg.norm(x - y @ random_rotation(rng)))
        assert other >= best - 1e-12


def test_costs_stay_within_the_default_missing_costs(rng: np.random.Generator) -> None:
    for _ in range(50):
        a, b = rng.normal(size=(2, 21, 3))
        assert ref.frame_cost(a, b, metric="procrustes") <= math.sqrt(2.0) + 1e-12
        assert ref.frame_cost(a, b, metric="procrustes-sum") <= math.sqrt(2.0 * 21) + 1e-12
        assert ref.frame_cost(a, b, metric="procrustes-paper") <= 2.0 * math.sqrt(21) + 1e-12


def test_hand_cost_terms(rng: np.random.Generator) -> None:
    hand = rng.normal(size=(21, 3))
    wrist = hand[0]
    angle = 0.7
    # Rotating about the wrist leaves only the angle term.
    turned = wrist + (hand - wrist) @ rotation_about_z(angle)
    assert ref.frame_cost(hand, turned, metric="hand") == pytest.approx(
        angle**2 / ref.SIGMA_ANGLE, rel=1e-9
    )
    # Moving the whole hand by more than the margin adds the wrist term only.
    shift = ref.WRIST_MARGIN + 0.1
    moved = hand + np.array([0.0, shift, 0.0])
    assert ref.frame_cost(hand, moved, metric="hand") == pytest.approx(
        0.1**2 / ref.SIGMA_WRIST, rel=1e-9
    )
    # Within the margin the wrist term is zero; scaling about the wrist changes nothing.
    near = wrist + 2.5 * (hand - wrist) + np.array([ref.WRIST_MARGIN * 0.9, 0.0, 0.0])
    assert ref.frame_cost(hand, near, metric="hand") == pytest.approx(0.0, abs=1e-7)
    # All three terms with custom constants.
    custom = {"sigma_shape": 2.0, "sigma_angle": 3.0, "sigma_wrist": 5.0, "wrist_margin": 0.0}
    other = rng.normal(size=(21, 3))
    x, y = ref.normalise(hand, "hand"), ref.normalise(other, "hand")
    rotation = ref.optimal_rotation(x, y)
    f1 = float(np.linalg.norm(x - y @ rotation))
    f2 = ref.rotation_angle(rotation) ** 2
    f3 = float(np.linalg.norm(hand[0] - other[0]))
    expected = f1 / 2.0 + f2 / 3.0 + f3**2 / 5.0
    assert ref.frame_cost(hand, other, metric="hand", **custom) == pytest.approx(expected)


def test_rotation_angle_of_known_rotations() -> None:
    for angle in (0.0, 0.3, 1.5, 3.0, math.pi):
        assert ref.rotation_angle(rotation_about_z(angle)) == pytest.approx(angle, abs=1e-7)


def test_paper_rotation_is_the_transpose_of_the_optimum(rng: np.random.Generator) -> None:
    a, b = rng.normal(size=(2, 20, 3))
    x, y = ref.normalise(a, "procrustes"), ref.normalise(b, "procrustes")
    assert ref.paper_rotation(x, y) == pytest.approx(ref.optimal_rotation(x, y).T, abs=1e-12)


def test_paper_cost_is_not_rotation_invariant(rng: np.random.Generator) -> None:
    # The defect issue 7 describes: a rotated copy of a frame is far from the frame.
    a = rng.normal(size=(20, 3))
    turned = a @ random_rotation(rng)
    assert ref.frame_cost(a, turned, metric="procrustes-sum") == pytest.approx(0.0, abs=1e-7)
    assert ref.frame_cost(a, turned, metric="procrustes-paper") > 0.1


# --- missing frames ----------------------------------------------------------------------------


@pytest.mark.parametrize("metric", ["procrustes", "procrustes-sum", "hand"])
def test_missing_frames_use_the_missing_cost(rng: np.random.Generator, metric: str) -> None:
    present = rng.normal(size=(21, 3))
    zeros = np.zeros((21, 3))
    constant = np.tile(rng.normal(size=3), (21, 1))
    assert ref.is_missing(zeros)
    assert ref.is_missing(constant)
    assert not ref.is_missing(present)
    assert ref.frame_cost(zeros, constant, metric=metric) == 0.0
    default = ref.default_missing_cost(metric, 21)
    assert ref.frame_cost(zeros, present, metric=metric) == default
    assert ref.frame_cost(present, constant, metric=metric) == default
    assert ref.frame_cost(present, zeros, metric=metric, missing_cost=0.25) == 0.25


def test_default_missing_costs() -> None:
    assert ref.default_missing_cost("procrustes", 21) == math.sqrt(2.0)
    assert ref.default_missing_cost("procrustes-sum", 21) == math.sqrt(42.0)
    assert ref.default_missing_cost("procrustes-paper", 21) == 2.0 * math.sqrt(21.0)
    assert ref.default_missing_cost("hand", 21) == pytest.approx(
        math.sqrt(2.0) / ref.SIGMA_SHAPE + math.pi**2 / ref.SIGMA_ANGLE
    )
    with pytest.raises(ValueError, match="unknown metric"):
        ref.default_missing_cost("euclid", 21)


def test_paper_missing_frame_is_the_zero_shape(rng: np.random.Generator) -> None:
    present = rng.normal(size=(20, 3))
    zeros = np.zeros((20, 3))
    landmark_norms = np.linalg.norm(ref.normalise(present, "procrustes-paper"), axis=1).sum()
    assert ref.frame_cost(zeros, present, metric="procrustes-paper") == pytest.approx(
        landmark_norms, rel=1e-12
    )
    assert ref.frame_cost(present, zeros, metric="procrustes-paper") == pytest.approx(
        landmark_norms, rel=1e-12
    )
    assert ref.frame_cost(zeros, zeros, metric="procrustes-paper") == 0.0
    assert ref.frame_cost(zeros, present, metric="procrustes-paper", missing_cost=1.5) == 1.5


# --- DTW ---------------------------------------------------------------------------------------


def test_dtw_hand_computed_table() -> None:
    costs = np.array(
        [
            [1.0, 2.0, 6.0],
            [3.0, 1.0, 1.0],
            [5.0, 4.0, 1.0],
            [2.0, 7.0, 2.0],
        ]
    )
    # Cumulative table (cost, cells):
    #   1/1  3/2  9/3
    #   4/2  2/2  3/3
    #   9/3  6/3  3/3
    #  11/4 13/4  5/4
    assert ref.dtw(costs) == 5.0
    assert ref.dtw(costs, normalize=True) == 5.0 / 4
    assert ref.dtw(costs.T) == 5.0


def test_dtw_band_forbids_the_detour() -> None:
    costs = np.array([[0.0, 0.0, 9.0], [9.0, 9.0, 0.0], [9.0, 9.0, 0.0]])
    assert ref.dtw(costs) == 0.0  # (0,0) (0,1) (1,2) (2,2)
    assert ref.dtw(costs, band=1) == 0.0
    assert ref.dtw(costs, band=0) == 9.0  # the diagonal only


def test_dtw_band_is_widened_to_the_length_difference() -> None:
    costs = np.arange(8.0).reshape(2, 4)
    # Width max(0, 2) = 2: (0,0) (0,1) (0,2) (1,3) is allowed, (1,1) and (1,2) too.
    assert ref.dtw(costs, band=0) == ref.dtw(costs) == 0 + 1 + 2 + 7


def test_dtw_ties_go_to_the_shorter_path() -> None:
    costs = np.array([[1.0, 0.0], [0.0, 1.0]])
    # Diagonal: 2 over 2 cells; around the corner: 2 over 3 cells. Same total, shorter wins.
    assert ref.dtw(costs) == 2.0
    assert ref.dtw(costs, normalize=True) == 1.0


def test_dtw_single_frames() -> None:
    assert ref.dtw(np.array([[2.5]])) == 2.5
    assert ref.dtw(np.array([[1.0, 2.0, 3.0]]), normalize=True) == 2.0
    assert ref.dtw(np.array([[1.0], [2.0]]), band=0) == 3.0


def test_cross_respects_lengths_and_flat_layout(rng: np.random.Generator) -> None:
    a = rng.normal(size=(2, 5, 6, 3))
    b = rng.normal(size=(3, 4, 6, 3))
    a[0, 3:] = np.nan  # past lengths_a[0]: never read
    lengths_a, lengths_b = np.array([3, 5]), np.array([4, 1, 2])
    out = ref.cross(a, b.reshape(3, 4, 18), lengths_a=lengths_a, lengths_b=lengths_b)
    assert out.shape == (2, 3)
    assert np.isfinite(out).all()
    assert out[0, 1] == pytest.approx(ref.distance(a[0, :3], b[1, :1]))
    assert out[1, 2] == pytest.approx(ref.distance(a[1], b[2, :2]))


def test_distance_to_a_transformed_copy_is_zero(rng: np.random.Generator) -> None:
    seq = rng.normal(size=(6, 8, 3))
    moved = 0.5 * seq @ random_rotation(rng) + 2.0
    assert ref.distance(seq, moved, metric="procrustes") == pytest.approx(0.0, abs=1e-6)


def test_motion_of_a_steady_movement_is_the_pose_lead_frames_ahead(
    rng: np.random.Generator,
) -> None:
    start, step = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    path = start + np.arange(5)[:, None, None] * step  # every landmark at constant velocity
    out = ref.with_motion(path, 2.5)
    assert out.shape == (5, 8, 3)
    np.testing.assert_array_equal(out[:, :4], path)
    # central and one-sided differences alike give the step, so the end frames extrapolate too
    ahead = start + (np.arange(5) + 2.5)[:, None, None] * step
    np.testing.assert_allclose(out[:, 4:], ahead, rtol=1e-12, atol=1e-12)
    # one frame has no motion
    np.testing.assert_array_equal(ref.with_motion(path[:1], 2.5)[0, 4:], path[0])
