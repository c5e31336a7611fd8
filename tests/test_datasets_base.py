"""MotionDataset, DatasetSplits, batches and resampling (issue 3)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gkd.datasets import (
    DatasetSplits,
    MotionDataset,
    check_values,
    make_synthetic_motion,
    split_dataset,
)


def small(lengths=(3, 5, 2, 4), *, landmarks: int = 4, groups=None) -> MotionDataset:
    """Sequences whose value encodes (row, frame, landmark, coordinate), zero after lengths."""
    n, t_max = len(lengths), max(lengths)
    i, t, j, c = np.meshgrid(
        np.arange(n), np.arange(t_max), np.arange(landmarks), np.arange(3), indexing="ij"
    )
    x = (1000 * (i + 1) + 100 * t + 10 * j + c).astype(np.float32)
    x[t >= np.asarray(lengths)[:, None, None, None]] = 0
    return MotionDataset(
        sequences=x,
        lengths=np.array(lengths),
        labels=np.arange(n) % 2,
        class_names=["a", "b"],
        subjects=np.arange(n) + 1,
        landmark_names=[f"p{k}" for k in range(landmarks)],
        source="test",
        landmark_groups=groups if groups is not None else {"first": [0, 1], "last": [3]},
    )


def build(x: np.ndarray, lengths, *, groups=None) -> MotionDataset:
    """A dataset around given sequences, one subject per row, labels 0."""
    n = len(x)
    return MotionDataset(
        sequences=x,
        lengths=np.asarray(lengths),
        labels=np.zeros(n, dtype=np.int64),
        class_names=["only"],
        subjects=np.arange(n),
        landmark_names=[f"p{k}" for k in range(x.shape[2])],
        source="test",
        landmark_groups=groups or {},
    )


def test_properties_and_repr():
    data = small()
    assert len(data) == 4
    assert (data.n_classes, data.n_landmarks, data.max_frames) == (2, 4, 5)
    assert data.lengths.dtype == np.int64 and data.labels.dtype == np.int64
    assert "sequences=4" in repr(data) and "source='test'" in repr(data)


def test_float64_sequences_become_float32():
    data = small()
    again = MotionDataset(
        sequences=data.sequences.astype(np.float64),
        lengths=data.lengths,
        labels=data.labels,
        class_names=data.class_names,
        subjects=data.subjects,
        landmark_names=data.landmark_names,
        source="test",
    )
    assert again.sequences.dtype == np.float32
    np.testing.assert_array_equal(again.sequences, data.sequences)


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ({"sequences": np.zeros((4, 5, 4))}, ValueError, r"sequences has shape \(4, 5, 4\)"),
        ({"sequences": np.zeros((4, 5, 4, 3), dtype=np.int32)}, TypeError, "dtype int32"),
        ({"lengths": np.array([3, 5, 0, 4])}, ValueError, r"lengths\[2\] = 0 is outside 1..5"),
        ({"lengths": np.array([3, 6, 2, 4])}, ValueError, r"lengths\[1\] = 6"),
        ({"lengths": np.array([3, 5, 2])}, ValueError, r"lengths has shape \(3,\)"),
        ({"lengths": np.array([3.0, 5, 2, 4])}, TypeError, "lengths has dtype float64"),
        ({"labels": np.array([0, 1, 2, 0])}, ValueError, r"labels\[2\] = 2 is outside 0..1"),
        ({"labels": np.array([0, -1, 1, 0])}, ValueError, r"labels\[1\] = -1"),
        ({"subjects": np.array([1, 2])}, ValueError, "subjects has shape"),
        ({"landmark_names": ["a"]}, ValueError, "1 landmark names for 4 landmarks"),
        ({"landmark_groups": {"bad": [0, 4]}}, ValueError, "landmark group 'bad'"),
    ],
)
def test_constructor_rejects_bad_fields(change, error, message):
    data = small()
    fields = {
        "sequences": data.sequences,
        "lengths": data.lengths,
        "labels": data.labels,
        "class_names": data.class_names,
        "subjects": data.subjects,
        "landmark_names": data.landmark_names,
        "source": "test",
        "landmark_groups": data.landmark_groups,
    }
    fields.update(change)
    with pytest.raises(error, match=message):
        MotionDataset(**fields)


def test_subset_by_rows_mask_and_slice():
    data = small()
    rows = data.subset([2, 0])
    np.testing.assert_array_equal(rows.sequences, data.sequences[[2, 0]])
    np.testing.assert_array_equal(rows.lengths, [2, 3])
    np.testing.assert_array_equal(rows.subjects, [3, 1])
    masked = data.subset(np.array([True, False, False, True]))
    np.testing.assert_array_equal(masked.subjects, [1, 4])
    assert len(data.subset(slice(1, 3))) == 2
    assert len(data.subset([])) == 0
    with pytest.raises(ValueError, match="boolean index"):
        data.subset(np.array([True, False]))
    with pytest.raises(TypeError, match="float64"):
        data.subset(np.array([0.5]))


def test_split_by_subjects():
    data = small()
    inside, outside = data.split_by_subjects([2, 4])
    np.testing.assert_array_equal(inside.subjects, [2, 4])
    np.testing.assert_array_equal(outside.subjects, [1, 3])
    with pytest.raises(ValueError, match="subject 9 has no sequence"):
        data.split_by_subjects([9])


def test_select_landmarks_by_group_and_name():
    data = small()
    first = data.select_landmarks("first")
    np.testing.assert_array_equal(first.sequences, data.sequences[:, :, [0, 1]])
    assert first.landmark_names == ["p0", "p1"]
    assert first.landmark_groups == {"first": [0, 1]}  # "last" was not kept
    mixed = data.select_landmarks(["last", "p0", "first"])
    assert mixed.landmark_names == ["p3", "p0", "p1"]
    assert mixed.landmark_groups == {"first": [1, 2], "last": [0]}
    with pytest.raises(ValueError, match="'nope' is neither a landmark group"):
        data.select_landmarks("nope")
    with pytest.raises(ValueError, match="at least one"):
        data.select_landmarks([])


def test_resample_stretches_each_sequence_over_its_own_frames():
    # Frame values grow linearly in t, so linear interpolation must be exact.
    data = small()
    out = data.resample(9)
    assert out.sequences.shape == (4, 9, 4, 3)
    np.testing.assert_array_equal(out.lengths, 9)
    for i, length in enumerate(data.lengths):
        t = np.linspace(0, length - 1, 9)
        expected = 1000 * (i + 1) + 100 * t[:, None, None] + data.sequences[0, 0][None] % 100
        np.testing.assert_allclose(out.sequences[i], expected, rtol=1e-6)


def test_resample_to_one_frame_and_from_one_frame():
    data = small(lengths=(1, 3))
    one = data.resample(1)
    np.testing.assert_array_equal(one.sequences[:, 0], data.sequences[:, 0])
    many = data.resample(4)
    np.testing.assert_array_equal(many.sequences[0], np.repeat(data.sequences[0, :1], 4, axis=0))
    with pytest.raises(ValueError, match="at least 1"):
        data.resample(0)


def test_resample_never_blends_a_missing_block_with_a_present_one():
    x = small(lengths=(5,)).sequences.copy()
    x[0, 2, 2:] = 0.0  # the "hand" is undetected in frame 2
    out = (
        build(x, [5], groups={"hand": [2, 3]}).resample(9).sequences[0]
    )  # positions 0, 0.5, 1, ..., 4
    hand = out[:, 2:]
    # Positions 1.5 and 2.5 neighbour the missing frame: copied from the nearer frame, never
    # a shrunken hand between zero and a real one.
    for k, position in enumerate(np.linspace(0, 4, 9)):
        if 1 < position < 3:
            nearest = x[0, int(np.floor(position + 0.5)), 2:]
            np.testing.assert_array_equal(hand[k], nearest)
    np.testing.assert_array_equal(hand[4], 0.0)  # position 2: still missing
    # The other landmarks are interpolated as usual.
    np.testing.assert_allclose(out[3, :2], (x[0, 1, :2] + x[0, 2, :2]) / 2)


@settings(max_examples=40, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 12), min_size=1, max_size=5),
    frames=st.integers(1, 20),
)
def test_resample_keeps_end_frames_and_value_range(lengths, frames):
    x = np.zeros((len(lengths), max(lengths), 3, 3), dtype=np.float32)
    rng = np.random.default_rng(frames)
    for i, n in enumerate(lengths):
        x[i, :n] = rng.normal(size=(n, 3, 3))
    out = build(x, lengths).resample(frames)
    for i, n in enumerate(lengths):
        np.testing.assert_allclose(out.sequences[i, 0], x[i, 0], atol=1e-6)
        if frames > 1:
            np.testing.assert_allclose(out.sequences[i, -1], x[i, n - 1], atol=1e-6)
        assert out.sequences[i].min() >= x[i, :n].min() - 1e-5
        assert out.sequences[i].max() <= x[i, :n].max() + 1e-5


def test_batches_pad_to_the_longest_in_the_batch():
    data = small()
    batches = list(data.batches(3))
    assert [len(b.index) for b in batches] == [3, 1]
    first = batches[0]
    assert first.inputs.shape == (3, 5, 12) and first.inputs.dtype == torch.float32
    assert first.padding_mask.dtype == torch.bool
    np.testing.assert_array_equal(first.index.numpy(), [0, 1, 2])
    np.testing.assert_array_equal(first.labels.numpy(), data.labels[:3])
    expected_mask = np.arange(5)[None, :] >= np.array([3, 5, 2])[:, None]
    np.testing.assert_array_equal(first.padding_mask.numpy(), expected_mask)
    np.testing.assert_array_equal(first.inputs.numpy(), data.sequences[:3].reshape(3, 5, 12))
    last = batches[1]
    assert last.inputs.shape == (1, 4, 12)  # T_batch = 4, not 5
    assert not last.padding_mask.any()


def test_batches_shuffle_with_seed_and_device():
    data = make_synthetic_motion(3, n_subjects=2, per_subject=2)
    one = [b.index.tolist() for b in data.batches(5, shuffle=True, seed=7, device="cpu")]
    two = [b.index.tolist() for b in data.batches(5, shuffle=True, seed=7)]
    assert one == two
    flat = sorted(i for batch in one for i in batch)
    assert flat == list(range(len(data)))
    assert sum(one, []) != list(range(len(data)))
    batch = next(data.batches(4, device=torch.device("cpu")))
    assert batch.inputs.device.type == "cpu"
    for b in data.batches(4, shuffle=True, seed=1):
        np.testing.assert_array_equal(b.labels.numpy(), data.labels[b.index.numpy()])
    with pytest.raises(ValueError, match="batch_size"):
        next(data.batches(0))


def test_splits_reject_shared_subjects_and_mismatched_classes():
    data = small()
    a, b = data.subset([0, 1]), data.subset([2, 3])
    DatasetSplits(train=a, validation=b, test=data.subset([]))
    with pytest.raises(ValueError, match="share subject 1"):
        DatasetSplits(train=a, validation=data.subset([0]), test=b)
    other = build(b.sequences, b.lengths)
    other.landmark_names = a.landmark_names
    with pytest.raises(ValueError, match="different class names"):
        DatasetSplits(train=a, validation=other, test=data.subset([]))


def test_split_dataset_by_subject():
    data = make_synthetic_motion(2, n_subjects=5, per_subject=1)
    splits = split_dataset(data, test_subjects=[4, 5])
    assert set(splits.test.subjects) == {4, 5}
    assert set(splits.validation.subjects) == {3}  # the last training subject
    assert set(splits.train.subjects) == {1, 2}
    splits = split_dataset(data, test_subjects=[5], validation_subjects=[1, 2])
    assert set(splits.train.subjects) == {3, 4}
    with pytest.raises(ValueError, match="validation subject 5 is not a training subject"):
        split_dataset(data, test_subjects=[5], validation_subjects=[5])
    with pytest.raises(ValueError, match="proper subset"):
        split_dataset(data, test_subjects=[5], validation_subjects=[1, 2, 3, 4])
    with pytest.raises(ValueError, match="cannot carve"):
        split_dataset(data, test_subjects=[2, 3, 4, 5])


def test_check_values_names_the_first_bad_index():
    x = np.zeros((3, 4, 2, 3), dtype=np.float32)
    lengths = np.array([4, 2, 3])
    check_values(x, lengths, where="f.npy")
    x[1, 3, 0, 1] = 1.0
    with pytest.raises(ValueError, match=r"f.npy: X\[1, 3\] is past lengths\[1\] = 2"):
        check_values(x, lengths, where="f.npy")
    check_values(x, None, where="f.npy")  # padding not checked without lengths
    x[2, 0, 1, 2] = np.inf
    with pytest.raises(ValueError, match=r"f.npy: X\[2, 0, 1, 2\] is inf"):
        check_values(x, None, where="f.npy")


def test_synthetic_motion_is_deterministic_and_padded():
    a = make_synthetic_motion(3, n_subjects=2, per_subject=2, seed=4)
    b = make_synthetic_motion(3, n_subjects=2, per_subject=2, seed=4)
    np.testing.assert_array_equal(a.sequences, b.sequences)
    assert len(a) == 12 and a.n_classes == 3 and set(a.subjects) == {1, 2}
    check_values(a.sequences, a.lengths, where="synthetic")
    assert a.lengths.min() >= 12 and a.lengths.max() <= 24
    with pytest.raises(ValueError, match="min_frames"):
        make_synthetic_motion(2, min_frames=5, max_frames=4)
