"""k-NN votes and the teacher's soft targets (gkd.teacher)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from gkd.teacher import choose_k, knn_predict, soft_targets


def brute_force_knn(distances: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Loop reference: stable nearest-first order, majority vote, ties to the nearest class."""
    out = []
    for row in distances:
        order = sorted(range(len(row)), key=lambda j: (row[j], j))[:k]
        counts: dict[int, int] = {}
        for j in order:
            counts[int(labels[j])] = counts.get(int(labels[j]), 0) + 1
        best = max(counts.values())
        out.append(next(int(labels[j]) for j in order if counts[int(labels[j])] == best))
    return np.array(out)


def loop_soft_targets(
    distances: np.ndarray, labels: np.ndarray, n_classes: int, temperature: float
) -> np.ndarray:
    """Reference with raw distances: softmax over references, then a loop over classes."""
    out = np.zeros((len(distances), n_classes))
    for i, row in enumerate(distances):
        weights = np.exp(-(row - row.min()) / temperature)
        weights /= weights.sum()
        for c in range(n_classes):
            out[i, c] = weights[labels == c].sum()
    return out


# ---------------------------------------------------------------- soft targets


def test_soft_targets_hand_computed_global():
    distances = np.array([[1.0, 2.0, 3.0], [3.0, 1.0, 2.0]])
    labels = np.array([0, 1, 1])
    # Global min 1, max 3: d̃ = (d - 1) / 2. Row 0: d̃ = 0, 0.5, 1 with labels 0, 1, 1.
    e_half, e_one = np.exp(-0.5), np.exp(-1.0)
    row0 = np.array([1.0, e_half + e_one]) / (1.0 + e_half + e_one)
    # Row 1: d̃ = 1, 0, 0.5 -> class 0 gets e^-1, class 1 gets 1 + e^-0.5.
    row1 = np.array([e_one, 1.0 + e_half]) / (1.0 + e_half + e_one)
    got = soft_targets(distances, labels, n_classes=2, temperature=1.0)
    np.testing.assert_allclose(got, np.stack([row0, row1]), rtol=1e-12)


def test_soft_targets_hand_computed_row_and_temperature():
    distances = np.array([[2.0, 4.0, 6.0, 10.0]])
    labels = np.array([2, 0, 2, 1])
    # Per row: d̃ = (d - 2) / 8 = 0, 0.25, 0.5, 1; temperature 0.5 doubles the exponents.
    weights = np.exp(-np.array([0.0, 0.25, 0.5, 1.0]) / 0.5)
    expected = np.array([weights[1], weights[3], weights[0] + weights[2]]) / weights.sum()
    got = soft_targets(distances, labels, n_classes=3, temperature=0.5, normalization="row")
    np.testing.assert_allclose(got[0], expected, rtol=1e-12)


def test_soft_targets_match_loop_reference_without_normalisation():
    rng = np.random.default_rng(0)
    distances = rng.uniform(0, 5, size=(7, 11))
    labels = rng.integers(0, 4, size=11)
    got = soft_targets(distances, labels, n_classes=4, temperature=0.7, normalization="none")
    np.testing.assert_allclose(got, loop_soft_targets(distances, labels, 4, 0.7), rtol=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    distances=arrays(
        np.float64,
        st.tuples(st.integers(1, 6), st.integers(2, 8)),
        elements=st.floats(0, 1e6, allow_nan=False),
    ),
    temperature=st.floats(1e-3, 1e3),
    normalization=st.sampled_from(["global", "row", "none"]),
    seed=st.integers(0, 1000),
)
def test_soft_targets_are_distributions(distances, temperature, normalization, seed):
    labels = np.random.default_rng(seed).integers(0, 3, size=distances.shape[1])
    got = soft_targets(
        distances, labels, n_classes=3, temperature=temperature, normalization=normalization
    )
    assert got.shape == (distances.shape[0], 3)
    assert np.all(np.isfinite(got))
    assert np.all(got >= 0)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=1e-12)
    # A class with no reference gets no mass.
    for c in range(3):
        if not np.any(labels == c):
            assert np.all(got[:, c] == 0)


def test_soft_targets_stable_for_huge_distances_and_tiny_temperature():
    distances = np.array([[1e300, 5e299, 1e300]])
    got = soft_targets(
        distances, np.array([0, 1, 0]), n_classes=2, temperature=1e-6, normalization="none"
    )
    np.testing.assert_array_equal(got, [[0.0, 1.0]])


def test_leave_one_out_equals_deleting_the_own_column():
    rng = np.random.default_rng(1)
    points = rng.normal(size=(9, 2))
    distances = np.linalg.norm(points[:, None] - points[None], axis=-1)  # zero diagonal
    labels = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2])
    for normalization in ("row", "none"):
        got = soft_targets(
            distances,
            labels,
            n_classes=3,
            normalization=normalization,
            self_index=np.arange(9),
            temperature=0.3,
        )
        for i in range(9):
            others = np.delete(np.arange(9), i)
            alone = soft_targets(
                distances[i : i + 1, others],
                labels[others],
                n_classes=3,
                normalization=normalization,
                temperature=0.3,
            )
            np.testing.assert_allclose(got[i], alone[0], rtol=1e-12)


def test_leave_one_out_ignores_the_self_entry_and_stops_the_leak():
    # Sample 0 is far from everything of its own class: its own zero distance would dominate.
    distances = np.array(
        [
            [0.0, 9.0, 1.0],
            [9.0, 0.0, 9.0],
            [1.0, 9.0, 0.0],
        ]
    )
    labels = np.array([0, 0, 1])
    leaky = soft_targets(distances, labels, n_classes=2, normalization="none", temperature=0.5)
    assert leaky[0].argmax() == 0  # the label leaks through the self-distance
    fair = soft_targets(
        distances,
        labels,
        n_classes=2,
        normalization="none",
        temperature=0.5,
        self_index=np.arange(3),
    )
    assert fair[0].argmax() == 1
    changed = distances.copy()
    np.fill_diagonal(changed, 123.0)  # whatever sits on the own entry must not matter
    again = soft_targets(
        changed,
        labels,
        n_classes=2,
        normalization="none",
        temperature=0.5,
        self_index=np.arange(3),
    )
    np.testing.assert_array_equal(fair, again)
    # Also for global min-max: the own entries must not set the range.
    global_a = soft_targets(distances, labels, n_classes=2, self_index=np.arange(3))
    global_b = soft_targets(changed, labels, n_classes=2, self_index=np.arange(3))
    np.testing.assert_array_equal(global_a, global_b)


def test_exclude_mask_equals_deleting_the_columns():
    rng = np.random.default_rng(2)
    distances = rng.uniform(0, 3, size=(6, 8))
    labels = rng.integers(0, 3, size=8)
    query_subjects = np.array([1, 1, 2, 2, 3, 3])
    reference_subjects = np.array([1, 2, 3, 1, 2, 3, 1, 2])
    exclude = query_subjects[:, None] == reference_subjects[None, :]
    got = soft_targets(
        distances, labels, n_classes=3, normalization="row", temperature=0.4, exclude=exclude
    )
    nearest = knn_predict(distances, labels, k=3, exclude=exclude)
    for i in range(6):
        keep = ~exclude[i]
        alone = soft_targets(
            distances[i : i + 1, keep],
            labels[keep],
            n_classes=3,
            normalization="row",
            temperature=0.4,
        )
        np.testing.assert_allclose(got[i], alone[0], rtol=1e-12)
        assert nearest[i] == knn_predict(distances[i : i + 1, keep], labels[keep], k=3)[0]


def test_exclude_mask_combines_with_self_index_and_is_checked():
    distances = np.array([[0.0, 0.1, 0.2], [0.1, 0.0, 0.3], [0.2, 0.3, 0.0]])
    labels = np.array([0, 1, 2])
    exclude = np.zeros((3, 3), dtype=bool)
    exclude[0, 1] = True
    got = soft_targets(
        distances, labels, n_classes=3, k=1, self_index=np.arange(3), exclude=exclude
    )
    np.testing.assert_array_equal(got.argmax(axis=1), [2, 0, 0])
    with pytest.raises(ValueError, match="exclude must have the shape"):
        soft_targets(distances, labels, n_classes=3, exclude=exclude[:2])
    with pytest.raises(TypeError, match="boolean"):
        soft_targets(distances, labels, n_classes=3, exclude=exclude.astype(int))
    with pytest.raises(ValueError, match="nothing is left"):
        soft_targets(distances, labels, n_classes=3, exclude=np.ones((3, 3), dtype=bool))


def test_negative_self_index_means_no_own_entry():
    distances = np.array([[0.0, 1.0], [2.0, 0.5]])
    labels = np.array([0, 1])
    got = soft_targets(distances, labels, n_classes=2, self_index=np.array([0, -1]))
    assert got[0, 1] == pytest.approx(1.0)
    plain = soft_targets(distances[1:], labels, n_classes=2)
    # Row 1's targets differ only through the global range, which row 0's self entry leaves.
    assert got[1].argmax() == plain[0].argmax() == 1


def test_k_restriction_keeps_only_the_nearest():
    distances = np.array([[0.5, 0.1, 0.2, 0.9, 0.3]])
    labels = np.array([0, 1, 2, 3, 1])
    got = soft_targets(distances, labels, n_classes=4, k=2, normalization="none", temperature=1.0)
    # Nearest two: columns 1 (label 1) and 2 (label 2).
    assert got[0, 0] == 0 and got[0, 3] == 0
    expected = np.exp(-np.array([0.1, 0.2]))
    np.testing.assert_allclose(got[0, 1:3], expected / expected.sum(), rtol=1e-12)


def test_k_restriction_skips_the_own_entry():
    distances = np.array([[0.0, 0.3, 0.1], [0.3, 0.0, 0.2], [0.1, 0.2, 0.0]])
    labels = np.array([0, 1, 2])
    got = soft_targets(distances, labels, n_classes=3, k=1, self_index=np.arange(3))
    np.testing.assert_array_equal(got, [[0, 0, 1], [0, 0, 1], [1, 0, 0]])


def test_constant_distances_give_the_class_frequencies():
    got = soft_targets(np.ones((2, 4)), np.array([0, 0, 0, 1]), n_classes=2)
    np.testing.assert_allclose(got, [[0.75, 0.25], [0.75, 0.25]])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"distances": np.ones(3)}, "2-D"),
        ({"distances": np.array([[0.0, np.nan]])}, "finite"),
        ({"distances": np.array([[0.0, -1.0]])}, "non-negative"),
        ({"reference_labels": np.array([0, 1, 2])}, "shape"),
        ({"reference_labels": np.array([0, 5])}, "n_classes"),
        ({"temperature": 0.0}, "temperature"),
        ({"normalization": "max"}, "normalization"),
        ({"k": 3}, "k = 3"),
        ({"k": 0}, "positive"),
        ({"self_index": np.array([0, 2])}, "self_index"),
    ],
)
def test_soft_targets_reject_bad_input(kwargs, message):
    arguments = {
        "distances": np.array([[0.0, 1.0], [1.0, 0.0]]),
        "reference_labels": np.array([0, 1]),
        "n_classes": 2,
    }
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        soft_targets(arguments.pop("distances"), arguments.pop("reference_labels"), **arguments)


def test_self_index_must_leave_something():
    with pytest.raises(ValueError, match="nothing is left"):
        soft_targets(np.zeros((1, 1)), np.array([0]), n_classes=1, self_index=np.array([0]))


# ---------------------------------------------------------------- k-NN


def test_knn_simple_votes():
    distances = np.array([[0.1, 0.2, 0.3, 0.4], [0.9, 0.1, 0.2, 0.3]])
    labels = np.array([0, 1, 1, 0])
    np.testing.assert_array_equal(knn_predict(distances, labels, k=1), [0, 1])
    np.testing.assert_array_equal(knn_predict(distances, labels, k=3), [1, 1])


def test_knn_ties_are_deterministic():
    # Equal distances: the lower column wins; 1-1 votes: the class of the nearer neighbour.
    assert knn_predict(np.array([[0.5, 0.5]]), np.array([1, 0]), k=1)[0] == 1
    assert knn_predict(np.array([[0.2, 0.1]]), np.array([1, 0]), k=2)[0] == 0
    assert knn_predict(np.array([[0.1, 0.2]]), np.array([1, 0]), k=2)[0] == 1


def test_knn_distance_weighting():
    distances = np.array([[0.1, 0.5, 0.6]])
    labels = np.array([0, 1, 1])
    assert knn_predict(distances, labels, k=3)[0] == 1  # two votes beat one
    # 1/0.1 = 10 beats 1/0.5 + 1/0.6 = 3.67.
    assert knn_predict(distances, labels, k=3, weighting="distance")[0] == 0
    # An exact match decides alone.
    exact = np.array([[0.0, 1e-9, 1e-9]])
    assert knn_predict(exact, labels, k=3, weighting="distance")[0] == 0


def test_knn_leave_one_out():
    distances = np.array([[0.0, 0.3, 0.2], [0.3, 0.0, 0.4], [0.2, 0.4, 0.0]])
    labels = np.array([0, 1, 1])
    np.testing.assert_array_equal(knn_predict(distances, labels), [0, 1, 1])
    np.testing.assert_array_equal(
        knn_predict(distances, labels, self_index=np.arange(3)), [1, 0, 0]
    )


@settings(max_examples=40, deadline=None)
@given(
    distances=arrays(
        np.float64,
        st.tuples(st.integers(1, 5), st.integers(1, 9)),
        elements=st.sampled_from([0.0, 0.5, 1.0, 1.5, 2.0]),  # many ties on purpose
    ),
    k=st.integers(1, 9),
    seed=st.integers(0, 1000),
)
def test_knn_matches_brute_force(distances, k, seed):
    k = min(k, distances.shape[1])
    labels = np.random.default_rng(seed).integers(0, 3, size=distances.shape[1])
    got = knn_predict(distances, labels, k=k)
    np.testing.assert_array_equal(got, brute_force_knn(distances, labels, k))


def test_knn_rejects_bad_input():
    with pytest.raises(ValueError, match="k must be"):
        knn_predict(np.zeros((1, 2)), np.array([0, 1]), k=0)
    with pytest.raises(ValueError, match="only 1 references"):
        knn_predict(np.zeros((1, 2)), np.array([0, 1]), k=2, self_index=np.array([0]))
    with pytest.raises(ValueError, match="weighting"):
        knn_predict(np.zeros((1, 2)), np.array([0, 1]), weighting="rank")
    with pytest.raises(TypeError, match="integer"):
        knn_predict(np.zeros((1, 2)), np.array([0.0, 1.0]))


def test_choose_k_picks_the_best_and_the_smallest_on_ties():
    # Query 0 (class 0): nearest is class 1, then two of class 0 -> right from k = 3.
    distances = np.array([[0.1, 0.2, 0.3, 0.9, 1.0]])
    references = np.array([1, 0, 0, 1, 1])
    best, scores = choose_k(distances, references, np.array([0]), ks=(1, 3, 5, 9))
    assert scores == {1: 0.0, 3: 1.0, 5: 0.0}  # 9 > 5 references: skipped
    assert best == 3
    best, scores = choose_k(distances, references, np.array([1]), ks=(5, 1))
    assert scores == {1: 1.0, 5: 1.0}
    assert best == 1


def test_choose_k_agrees_with_knn_predict():
    rng = np.random.default_rng(3)
    distances = rng.uniform(size=(20, 30))
    references = rng.integers(0, 4, size=30)
    queries = rng.integers(0, 4, size=20)
    _, scores = choose_k(distances, references, queries, ks=(1, 2, 5, 7))
    for k, score in scores.items():
        predicted = knn_predict(distances, references, k=k, n_classes=4)
        assert score == pytest.approx(np.mean(predicted == queries))


def test_choose_k_needs_a_usable_k():
    with pytest.raises(ValueError, match="no k"):
        choose_k(np.zeros((1, 2)), np.array([0, 1]), np.array([0]), ks=(3, 5))
