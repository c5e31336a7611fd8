"""Issue 7: the compatibility mode reproduces the paper's published UTD-MHAD distances.

The published numbers come from the paper's scrambled loader (``layout="paper-scrambled"``) and its
transposed-rotation Procrustes cost. 24 x 24 of them are kept in
../shared/reference/paper_utd_mhad_teacher.npz; the tests that need them skip when it is absent.

Two implementations emulate the published cost:

* the engine's ``metric="procrustes-paper"`` (closed form, fast) agrees with the published code
  wherever the rotation is unique, but not on frame pairs whose cross-covariance is rank-1 (many
  in the scrambled layout), where the published value depends on which of the equally good
  rotations LAPACK's SVD returned: median error 0.04 %, largest 7.2 % on the 576 published values;
* :func:`gkd.paper.published_distances` makes the published NumPy/LAPACK calls (slow) and
  reproduces all 576 values within 1.1 %.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import reference as ref

import gkd.paper as paper
from gkd.datasets import load_mhad_all
from gkd.distances import cross

PUBLISHED = (
    Path(__file__).resolve().parents[2] / "shared" / "reference" / "paper_utd_mhad_teacher.npz"
)


@pytest.fixture(scope="module")
def published() -> dict[str, np.ndarray]:
    if not PUBLISHED.exists():
        pytest.skip(f"published distances not available: {PUBLISHED} is absent")
    with np.load(PUBLISHED) as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope="module")
def scrambled() -> tuple[np.ndarray, np.ndarray]:
    data = load_mhad_all(layout="paper-scrambled")
    return data.sequences, data.lengths


def relative_errors(got: np.ndarray, expected: np.ndarray) -> np.ndarray:
    return np.abs(got - expected) / np.abs(expected)


def published_pairs(
    published: dict[str, np.ndarray], scrambled: tuple[np.ndarray, np.ndarray]
) -> dict[str, np.ndarray]:
    """Query and reference sequences of the 24 x 24 published distances, as cross() takes them."""
    x, lengths = scrambled
    queries, references = published["query_index"], published["reference_index"]
    return {
        "a": x[queries],
        "b": x[references],
        "lengths_a": lengths[queries],
        "lengths_b": lengths[references],
    }


def test_engine_reproduces_published_distances_but_for_rank_deficient_frames(
    published: dict[str, np.ndarray], scrambled: tuple[np.ndarray, np.ndarray]
) -> None:
    got = cross(**published_pairs(published, scrambled), metric="procrustes-paper")
    errors = relative_errors(got, published["published_distance"])
    assert np.median(errors) < 1e-3, f"median relative error {np.median(errors):.2e}"
    # Known difference, not hidden: the largest error is 7.2 % (limit for gkd.paper: 2 %). It
    # comes from frame pairs where the published rotation is LAPACK's arbitrary pick among
    # equally good ones (the test below pins this down); the bound only catches regressions.
    assert errors.max() < 0.1, f"largest relative error {errors.max():.2e}"


def test_compat_mode_reproduces_all_published_distances(
    published: dict[str, np.ndarray], scrambled: tuple[np.ndarray, np.ndarray]
) -> None:
    # The slow part of this file (~3 million LAPACK SVDs, about 10 s on one core).
    got = paper.published_distances(**published_pairs(published, scrambled))
    errors = relative_errors(got, published["published_distance"])
    # The published run used the original float64 values, the bundled data is float32.
    assert np.median(errors) < 1e-3, f"median relative error {np.median(errors):.2e}"
    assert errors.max() < 2e-2, f"largest relative error {errors.max():.2e}"


def spectra(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Singular values ``(Ta, Tb, 3)`` of the published cross-covariance of every frame pair."""
    x, y = paper.normalise_frames(a), paper.normalise_frames(b)
    return np.linalg.svd(paper.cross_covariances(x, y), compute_uv=False)


def test_engine_and_compat_mode_differ_only_where_the_rotation_is_not_unique(
    published: dict[str, np.ndarray], scrambled: tuple[np.ndarray, np.ndarray]
) -> None:
    # Every valid frame of two published queries against every valid frame of two references.
    x, lengths = scrambled
    a = np.concatenate([x[i, : lengths[i]] for i in published["query_index"][:2]])
    b = np.concatenate([x[j, : lengths[j]] for j in published["reference_index"][:2]])
    by_compat = paper.frame_costs(paper.normalise_frames(a), paper.normalise_frames(b))
    # One-frame sequences: the engine's DTW distance is then its frame cost.
    by_engine = cross(a[:, None], b[:, None], metric="procrustes-paper")
    s = spectra(a, b)
    zero = s[..., 0] == 0  # a degenerate (all-zero) frame: the published zero shape
    gap = (s[..., 1] - s[..., 2]) / np.where(zero, 1.0, s[..., 0])
    separated = ~zero & (gap > 1e-3)
    # Numerically rank-1: s2 and s3 vanish next to s1. At exact rank 1 every rotation about the
    # dominant axis is optimal and LAPACK picks one from rounding noise; within ~1e-6 of rank 1
    # the engine's closed form (a root of a quartic) resolves the rotation only to about
    # sqrt(machine epsilon) / s2, so it cannot follow LAPACK there either.
    rank_one = ~zero & (s[..., 1] <= 1e-6 * s[..., 0])
    difference = np.abs(by_engine - by_compat)

    assert separated.sum() > 0.25 * s[..., 0].size  # the check below is not vacuous
    assert difference[separated | zero].max() < 1e-9
    # Every difference beyond the closed form's rounding is on a numerically rank-1 pair ...
    assert np.all(rank_one[difference > 1e-5])
    # ... and there the two really differ: that is where the engine's 7.2 % comes from.
    assert difference[rank_one].max() > 0.1


def test_cross_covariances_are_bitwise_the_published_per_pair_products(
    scrambled: tuple[np.ndarray, np.ndarray],
) -> None:
    # LAPACK's pick on rank-1 matrices follows their rounding noise: the batched products must
    # round exactly as the published ``X0.T @ Y0`` did, frame pair by frame pair.
    x, lengths = scrambled
    a = paper.normalise_frames(x[0, : lengths[0]])
    b = paper.normalise_frames(x[500, : lengths[500]])
    batched = paper.cross_covariances(a, b)
    for i in range(0, len(a), 7):
        for j in range(len(b)):
            assert np.array_equal(batched[i, j], a[i].T @ b[j]), (i, j)


def test_reference_confirms_the_published_distances(
    published: dict[str, np.ndarray], scrambled: tuple[np.ndarray, np.ndarray]
) -> None:
    # The independent NumPy reference (slow): the three shortest queries against the three
    # shortest references (9 of the 576 pairs). It rounds differently from the published code
    # (no 1e-15 in the scale), so it picks other rotations on rank-1 frames, yet stays within 1 %.
    x, lengths = scrambled
    queries, references = published["query_index"], published["reference_index"]
    rows = np.argsort(lengths[queries], kind="stable")[:3]
    cols = np.argsort(lengths[references], kind="stable")[:3]
    a, b = x[queries[rows]], x[references[cols]]
    options = {"lengths_a": lengths[queries[rows]], "lengths_b": lengths[references[cols]]}
    expected = published["published_distance"][np.ix_(rows, cols)]
    by_reference = ref.cross(
        a.astype(np.float64), b.astype(np.float64), metric="procrustes-paper", **options
    )
    assert relative_errors(by_reference, expected).max() < 1e-2
    assert relative_errors(paper.published_distances(a, b, **options), expected).max() < 1e-2


def test_compat_frame_cost_is_the_reference_cost_where_the_rotation_is_unique(
    scrambled: tuple[np.ndarray, np.ndarray],
) -> None:
    # Checks the conventions (transposed rotation, reflection fix, per-landmark sum, zero shapes)
    # against the reference's paper_rotation / frame_cost.
    x, lengths = scrambled
    a, b = x[3, : lengths[3]], x[700, : lengths[700]]
    by_compat = paper.frame_costs(paper.normalise_frames(a), paper.normalise_frames(b))
    by_reference = ref.cost_matrix(
        a.astype(np.float64), b.astype(np.float64), metric="procrustes-paper"
    )
    s = spectra(a, b)
    unique = (s[..., 0] == 0) | (s[..., 1] - s[..., 2] > 1e-3 * s[..., 0])
    assert unique.sum() > 0.25 * unique.size
    np.testing.assert_allclose(by_compat[unique], by_reference[unique], rtol=0, atol=1e-9)


def test_compat_mode_on_real_frames_is_the_engine() -> None:
    # On the real (unscrambled) frames no cross-covariance is rank-deficient: the two agree.
    data = load_mhad_all()
    rows, cols = [0, 400], [401, 860]
    options = {"lengths_a": data.lengths[rows], "lengths_b": data.lengths[cols]}
    a, b = data.sequences[rows], data.sequences[cols]
    np.testing.assert_allclose(
        paper.published_distances(a, b, **options),
        cross(a, b, metric="procrustes-paper", **options),
        rtol=1e-9,
    )


@pytest.mark.parametrize("normalize", [False, True])
def test_compat_dtw_is_the_reference_dtw(normalize: bool) -> None:
    # Small integer costs make many equal-cost paths: the tie rule (shortest path) matters.
    rng = np.random.default_rng(7)
    for n_a in (1, 2, 5, 9):
        n_b = 8
        costs = rng.integers(0, 3, size=(6, n_a, n_b)).astype(np.float64)
        lengths = np.array([1, 2, 3, 5, 7, 8])
        got = paper.dtw(costs, lengths, normalize=normalize)
        expected = [
            ref.dtw(c[:, :length], normalize=normalize)
            for c, length in zip(costs, lengths, strict=True)
        ]
        np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_published_distances_reports_progress_and_respects_lengths() -> None:
    rng = np.random.default_rng(3)
    a = rng.normal(size=(2, 6, 4, 3))
    b = rng.normal(size=(3, 5, 12))  # (N, T, L*3) is accepted as well
    calls: list[tuple[int, int]] = []
    got = paper.published_distances(
        a, b, lengths_a=[6, 2], lengths_b=[5, 1, 3], progress=lambda d, t: calls.append((d, t))
    )
    assert calls == [(3, 6), (6, 6)]
    frames_b = b.reshape(3, 5, 4, 3)
    for i, length_a in enumerate([6, 2]):
        for j, length_b in enumerate([5, 1, 3]):
            costs = paper.frame_costs(
                paper.normalise_frames(a[i, :length_a]),
                paper.normalise_frames(frames_b[j, :length_b]),
            )
            assert got[i, j] == paper.dtw(costs[None])[0]
    # Frames past the lengths are never read.
    a[1, 2:] = np.nan
    np.testing.assert_array_equal(
        paper.published_distances(a, b, lengths_a=[6, 2], lengths_b=[5, 1, 3]), got
    )


def test_published_distances_rejects_bad_input() -> None:
    x = np.zeros((2, 4, 5, 3))
    with pytest.raises(ValueError, match="same number of landmarks"):
        paper.published_distances(x, np.zeros((2, 4, 6, 3)))
    with pytest.raises(ValueError, match="lengths for b"):
        paper.published_distances(x, x, lengths_b=[1, 5])
    with pytest.raises(TypeError, match="float32 or float64"):
        paper.published_distances(x.astype(np.complex128), x)
    with pytest.raises(ValueError, match="frames has shape"):
        paper.normalise_frames(np.zeros((4, 5)))
    with pytest.raises(ValueError, match="lengths must be"):
        paper.dtw(np.zeros((2, 3, 3)), [1, 4])


def test_corrected_pipeline_differs_from_the_published_one(
    published: dict[str, np.ndarray],
) -> None:
    # Our default path (real frames, proper rotation) is not the published computation.
    data = load_mhad_all()
    queries, references = published["query_index"][:4], published["reference_index"][:4]
    got = cross(
        data.sequences[queries],
        data.sequences[references],
        lengths_a=data.lengths[queries],
        lengths_b=data.lengths[references],
        metric="procrustes-sum",
    )
    errors = relative_errors(got, published["published_distance"][:4, :4])
    assert np.median(errors) > 0.05
