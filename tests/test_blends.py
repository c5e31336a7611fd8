"""Blends of two training sequences (gkd.blends) against the student's own preprocessing.

The reference normalises and resamples with :func:`gkd.student.preprocess` and
:func:`gkd.student.resample_frames` (torch), which the blends reimplement in NumPy: a blend has
to be what the student would make of its two sources.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gkd.blends import blend_sequences
from gkd.datasets import MotionDataset
from gkd.student import Preprocessing, preprocess, resample_frames
from gkd.teacher import soft_targets


def _dataset(lengths: list[int], seed: int = 0, landmarks: int = 4) -> MotionDataset:
    """Random walks of ``landmarks`` points, of the given lengths, noise in the padding."""
    rng = np.random.default_rng(seed)
    x = np.cumsum(rng.normal(size=(len(lengths), max(lengths), landmarks, 3)), axis=1)
    x = x * rng.uniform(0.5, 3.0, size=(len(lengths), 1, 1, 1)) + rng.normal(size=(1, 1, 1, 3))
    return MotionDataset(
        sequences=x.astype(np.float32),
        lengths=np.array(lengths),
        labels=np.arange(len(lengths)) % 3,
        class_names=["a", "b", "c"],
        subjects=np.arange(len(lengths)) + 1,
        landmark_names=[f"p{k}" for k in range(landmarks)],
        source="test",
    )


def _student_view(points: np.ndarray, centre: tuple[int, ...], frames: int) -> np.ndarray:
    """(T, L, 3) centred and scaled by the student's preprocessing, resampled to ``frames``."""
    batch = torch.from_numpy(points.astype(np.float64).reshape(1, len(points), -1))
    valid = torch.zeros(batch.shape[:2], dtype=torch.bool)
    normalised = preprocess(batch, valid, Preprocessing(centre_landmarks=centre))
    if frames != len(points):
        normalised = resample_frames(normalised, valid, frames)
    return normalised.numpy().reshape(frames, *points.shape[1:])


@pytest.mark.parametrize("centre", [(), (1,), (0, 2)])
def test_matches_the_students_view_of_its_sources(centre: tuple[int, ...]) -> None:
    data = _dataset([7, 12, 3, 9, 5])
    blends = blend_sequences(data, 12, seed=4, centre_landmarks=centre)
    assert blends.dataset.sequences.shape == (12, 12, 4, 3)
    assert blends.dataset.sequences.dtype == np.float32
    for row, ((i, j), w) in enumerate(zip(blends.sources, blends.weights, strict=True)):
        n = data.lengths[i]
        one = _student_view(data.sequences[i, :n], centre, n)
        other = _student_view(data.sequences[j, : data.lengths[j]], centre, n)
        expected = w * one + (1 - w) * other
        np.testing.assert_allclose(blends.dataset.sequences[row, :n], expected, atol=1e-5)
        assert not blends.dataset.sequences[row, n:].any()  # padding zero, whatever it held


def test_keeps_the_first_sources_length_label_and_subject() -> None:
    data = _dataset([7, 12, 3, 9, 5, 4])
    blends = blend_sequences(data, 40, seed=1, low=0.7)
    first, second = blends.sources.T
    assert (first != second).all()
    assert ((blends.weights >= 0.7) & (blends.weights <= 1.0)).all()
    np.testing.assert_array_equal(blends.dataset.lengths, data.lengths[first])
    np.testing.assert_array_equal(blends.dataset.labels, data.labels[first])
    np.testing.assert_array_equal(blends.dataset.subjects, data.subjects[first])
    assert blends.dataset.class_names == data.class_names


def test_weight_one_is_the_first_source_alone() -> None:
    data = _dataset([6, 8, 5])
    blends = blend_sequences(data, 5, seed=2, low=1.0)
    for row, i in enumerate(blends.sources[:, 0]):
        n = data.lengths[i]
        expected = _student_view(data.sequences[i, :n], (), n)
        np.testing.assert_allclose(blends.dataset.sequences[row, :n], expected, atol=1e-5)


def test_blends_ignore_where_and_how_big_each_source_is() -> None:
    data = _dataset([6, 8, 5, 7])
    moved = data.sequences.copy()
    moved[1] = moved[1] * 4.0 + np.array([10.0, -3.0, 2.0], dtype=np.float32)
    moved_data = MotionDataset(**{**data.__dict__, "sequences": moved})
    a = blend_sequences(data, 20, seed=5)
    b = blend_sequences(moved_data, 20, seed=5)
    np.testing.assert_allclose(a.dataset.sequences, b.dataset.sequences, atol=1e-4)


def test_same_seed_same_blends_other_seed_others() -> None:
    data = _dataset([6, 8, 5, 7])
    a, b = blend_sequences(data, 10, seed=3), blend_sequences(data, 10, seed=3)
    np.testing.assert_array_equal(a.dataset.sequences, b.dataset.sequences)
    np.testing.assert_array_equal(a.sources, b.sources)
    c = blend_sequences(data, 10, seed=4)
    assert not np.array_equal(a.dataset.sequences, c.dataset.sequences)


def test_exclude_masks_each_blends_sources_in_the_targets() -> None:
    data = _dataset([6, 8, 5, 7, 4])
    blends = blend_sequences(data, 6, seed=0)
    mask = blends.exclude(len(data))
    assert mask.shape == (6, 5) and mask.sum() == 12
    assert mask[np.arange(6), blends.sources[:, 0]].all()
    assert mask[np.arange(6), blends.sources[:, 1]].all()
    # A blend's target puts nothing on its sources, even at distance zero.
    distances = np.ones((6, 5))
    distances[np.arange(6), blends.sources[:, 0]] = 0.0
    targets = soft_targets(
        distances, data.labels, n_classes=3, temperature=0.1, normalization="none", exclude=mask
    )
    np.testing.assert_allclose(targets.sum(axis=1), 1.0)
    for row, (i, j) in enumerate(blends.sources):
        others = np.delete(np.arange(5), [i, j])
        expected = np.bincount(data.labels[others], minlength=3) / len(others)
        np.testing.assert_allclose(targets[row], expected, atol=1e-12)
    with pytest.raises(ValueError, match="only 3 references"):
        blends.exclude(3)


def test_no_blends() -> None:
    blends = blend_sequences(_dataset([6]), 0, seed=0)
    assert len(blends.dataset) == 0 and blends.sources.shape == (0, 2)


@pytest.mark.parametrize(
    ("count", "kwargs", "message"),
    [
        (-1, {}, "count must be an integer >= 0"),
        (2.5, {}, "count must be an integer >= 0"),
        (3, {"low": 0.4}, r"low must be in \[0.5, 1\]"),
        (3, {"low": 1.5}, r"low must be in \[0.5, 1\]"),
        (3, {"centre_landmarks": (4,)}, r"centre_landmarks \[4\] do not exist"),
    ],
)
def test_bad_arguments_are_named(count, kwargs, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        blend_sequences(_dataset([6, 8]), count, seed=0, **kwargs)


def test_one_sequence_cannot_be_blended() -> None:
    with pytest.raises(ValueError, match="at least two sequences, the dataset has 1"):
        blend_sequences(_dataset([6]), 2, seed=0)
