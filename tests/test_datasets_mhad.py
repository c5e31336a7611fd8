"""The bundled UTD-MHAD data and its loaders (issue 3; the scrambled layout of issue 7)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from gkd.datasets import bundled_data_path, check_values, load_mhad, load_mhad_all

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "utd_mhad_skeleton.npz"


@pytest.fixture(scope="module")
def mhad():
    return load_mhad_all()


def test_counts_labels_and_names(mhad):
    assert mhad.sequences.shape == (861, 125, 20, 3)
    assert mhad.sequences.dtype == np.float32
    assert mhad.source == "utd-mhad"
    # 32 sequences per action, 31 for actions 8, 23 and 27 (labels 7, 22, 26).
    expected = np.full(27, 32)
    expected[[7, 22, 26]] = 31
    np.testing.assert_array_equal(np.bincount(mhad.labels), expected)
    assert sorted(set(mhad.subjects.tolist())) == list(range(1, 9))
    assert mhad.n_classes == 27
    assert mhad.class_names[0] == "right arm swipe to the left"
    assert mhad.class_names[26] == "squat (two arms stretch out)"
    assert mhad.landmark_names[:4] == ["head", "shoulder_center", "spine", "hip_center"]
    assert mhad.landmark_names[19] == "right_foot"
    assert mhad.landmark_groups["right_arm"] == [8, 9, 10, 11]
    # Rows are sorted by (action, subject): labels never decrease.
    assert np.all(np.diff(mhad.labels) >= 0)


def test_values_match_the_documented_statistics(mhad):
    assert (mhad.lengths.min(), mhad.lengths.max(), mhad.lengths.sum()) == (41, 125, 58299)
    check_values(mhad.sequences, mhad.lengths, where="utd_mhad.npz")
    frames = mhad.sequences[np.arange(125)[None, :] < mhad.lengths[:, None]]
    assert not np.any(np.all(frames == 0, axis=(1, 2)))
    np.testing.assert_allclose(frames.min(axis=(0, 1)), [-0.79, -1.46, 1.77], atol=0.01)
    np.testing.assert_allclose(frames.max(axis=(0, 1)), [0.78, 1.02, 4.05], atol=0.01)
    head_to_hip = np.linalg.norm(frames[:, 0] - frames[:, 3], axis=1)
    assert np.median(head_to_hip) == pytest.approx(0.59, abs=0.01)


@pytest.mark.skipif(not SHARED.exists(), reason="the team's padded archive is not available")
def test_bit_identical_to_the_padded_archive(mhad):
    with np.load(SHARED) as source:
        np.testing.assert_array_equal(mhad.sequences, source["X"])
        np.testing.assert_array_equal(mhad.lengths, source["lengths"])
        np.testing.assert_array_equal(mhad.labels, source["action"] - 1)
        np.testing.assert_array_equal(mhad.subjects, source["subject"])


@pytest.mark.parametrize(
    ("protocol", "train", "validation", "test"),
    [
        ("paper", {1, 2, 3, 4}, {5}, {6, 7, 8}),
        ("cross-subject", {1, 3, 5}, {7}, {2, 4, 6, 8}),
    ],
)
def test_protocols(protocol, train, validation, test):
    splits = load_mhad(protocol=protocol)
    assert set(splits.train.subjects.tolist()) == train
    assert set(splits.validation.subjects.tolist()) == validation
    assert set(splits.test.subjects.tolist()) == test
    assert len(splits.train) + len(splits.validation) + len(splits.test) == 861


def test_paper_protocol_sizes_match_the_published_matrix():
    # The published test x train matrix is 322 x 539 (subjects 6-8 x 1-5).
    splits = load_mhad(protocol="paper")
    assert len(splits.test) == 322
    assert len(splits.train) + len(splits.validation) == 539


def test_validation_subjects_option():
    splits = load_mhad(protocol="cross-subject", validation_subjects=[1, 3])
    assert set(splits.validation.subjects.tolist()) == {1, 3}
    assert set(splits.train.subjects.tolist()) == {5, 7}
    with pytest.raises(ValueError, match="validation subject 6 is not a training subject"):
        load_mhad(protocol="paper", validation_subjects=[6])
    with pytest.raises(ValueError, match="proper subset"):
        load_mhad(protocol="paper", validation_subjects=[1, 2, 3, 4, 5])


def test_unknown_protocol_and_layout():
    with pytest.raises(ValueError, match="protocol must be one of"):
        load_mhad(protocol="odd-even")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="layout must be"):
        load_mhad_all(layout="transposed")  # type: ignore[arg-type]


def scrambled_by_formula(frames: np.ndarray, length: int) -> np.ndarray:
    """Element by element: row r, slot k of the published loader's input is flat position
    p = 60 r + k of the (60, 125) channels x frames buffer, i.e. channel p // 125 at frame
    p % 125 (zero past the sequence's end)."""
    out = np.zeros((length, 60), dtype=np.float32)
    for r in range(length):
        for k in range(60):
            channel, frame = divmod(60 * r + k, 125)
            if frame < length:
                out[r, k] = frames[frame, channel // 3, channel % 3]
    return out.reshape(length, 20, 3)


def test_paper_scrambled_layout(mhad):
    scrambled = load_mhad_all(layout="paper-scrambled")
    assert scrambled.source == "utd-mhad:paper-scrambled"
    np.testing.assert_array_equal(scrambled.lengths, mhad.lengths)
    np.testing.assert_array_equal(scrambled.labels, mhad.labels)
    assert scrambled.landmark_groups == {}
    check_values(scrambled.sequences, scrambled.lengths, where="scrambled")
    for i in (0, int(np.argmin(mhad.lengths)), int(np.argmax(mhad.lengths)), 500):
        n = int(mhad.lengths[i])
        expected = scrambled_by_formula(mhad.sequences[i], n)
        np.testing.assert_array_equal(scrambled.sequences[i, :n], expected)
    # Frame 0 starts like the real frame 0 of joint 0 only in its first value (x of the head
    # at time 0); the next slot is already the head's x at time 1.
    assert scrambled.sequences[0, 0, 0, 0] == mhad.sequences[0, 0, 0, 0]
    assert scrambled.sequences[0, 0, 0, 1] == mhad.sequences[0, 1, 0, 0]


def test_data_dir_override(monkeypatch, tmp_path):
    real = bundled_data_path()
    monkeypatch.setenv("GKD_DATA_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="GKD_DATA_DIR=.* is set but"):
        load_mhad_all()
    shutil.copy(real, tmp_path / "utd_mhad.npz")
    assert bundled_data_path() == tmp_path / "utd_mhad.npz"
    assert len(load_mhad_all()) == 861


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_bundled_file(monkeypatch, tmp_path, damage):
    content = bundled_data_path().read_bytes()
    broken = content[: len(content) // 2] if damage == "truncate" else b"\x00" * 1000
    (tmp_path / "utd_mhad.npz").write_bytes(broken)
    monkeypatch.setenv("GKD_DATA_DIR", str(tmp_path))
    with pytest.raises(ValueError, match="utd_mhad.npz: cannot be read"):
        load_mhad_all()
