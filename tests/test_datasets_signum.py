"""SIGNUM folders (issue 3), exercised on synthetic folders in the same layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gkd.datasets import (
    SIGNUM_GROUPS,
    SIGNUM_LANDMARKS,
    load_signum,
    make_synthetic_signum,
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return make_synthetic_signum(tmp_path_factory.mktemp("signum"), seed=3)


@pytest.fixture
def copy(folder, tmp_path) -> Path:
    """A private copy of the synthetic folder that a test may damage."""
    for path in folder.iterdir():
        (tmp_path / path.name).write_bytes(path.read_bytes())
    return tmp_path


def test_loads_the_layout(folder):
    splits = load_signum(folder)
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (96, 48, 48)
    train = splits.train
    assert train.sequences.shape == (96, 80, 75, 3)
    assert isinstance(train.sequences, np.memmap)  # float32 files stay mapped
    assert train.source == "signum"
    assert train.class_names[:2] == ["SYNTH_00", "SYNTH_01"] and train.n_classes == 12
    assert set(train.subjects.tolist()) == {1, 2, 3, 4}
    assert set(splits.validation.subjects.tolist()) == {5, 6}
    assert set(splits.test.subjects.tolist()) == {7, 8}
    assert train.landmark_names == list(SIGNUM_LANDMARKS)
    assert train.landmark_names[0] == "nose" and train.landmark_names[33] == "left_hand_wrist"
    assert train.landmark_names[74] == "right_hand_pinky_tip"
    assert train.landmark_groups == SIGNUM_GROUPS
    assert len(train.select_landmarks("hands").landmark_names) == 42


def test_values_come_through_unchanged(folder):
    splits = load_signum(folder, mmap=False)
    x = np.load(folder / "X_val.npy")
    np.testing.assert_array_equal(splits.validation.sequences.reshape(48, 80, 225), x)
    np.testing.assert_array_equal(splits.validation.labels, np.load(folder / "y_val.npy"))
    assert not isinstance(splits.validation.sequences, np.memmap)


def test_lengths_trim_trailing_empty_frames_only(folder):
    train = load_signum(folder).train
    x = np.load(folder / "X_train.npy")
    frame_present = x.any(axis=2)
    assert (train.lengths < 80).any() and (train.lengths == 80).any()
    for i, n in enumerate(train.lengths):
        assert frame_present[i, n - 1] and not frame_present[i, n:].any()
    untrimmed = load_signum(folder, trim=False).train
    np.testing.assert_array_equal(untrimmed.lengths, 80)


def test_missing_hands_stay_all_zero_blocks(folder):
    train = load_signum(folder).train
    valid = np.arange(80)[None, :] < train.lengths[:, None]
    for group in ("left_hand", "right_hand"):
        block = train.sequences[:, :, SIGNUM_GROUPS[group]]  # (N, T, 21, 3)
        zero = np.all(block == 0, axis=(2, 3)) & valid
        assert zero.any(), f"the synthetic data should miss the {group} sometimes"
        # A present hand is a real shape: its landmarks never coincide.
        present = block[valid & ~zero]
        assert np.all(np.ptp(present, axis=1).max(axis=1) > 0)
    pose = train.sequences[:, :, SIGNUM_GROUPS["pose"]]
    assert not np.any(np.all(pose == 0, axis=(2, 3)) & valid)


def test_without_signers_or_glosses(copy):
    for split in ("train", "val", "test"):
        (copy / f"signers_{split}.npy").unlink()
    (copy / "glosses.txt").rename(copy / "classes.txt")
    splits = load_signum(copy)
    assert set(splits.train.subjects.tolist()) == {-1}
    assert set(splits.validation.subjects.tolist()) == {-2}
    assert set(splits.test.subjects.tolist()) == {-3}
    assert splits.train.class_names[0] == "SYNTH_00"
    (copy / "classes.txt").unlink()
    assert load_signum(copy).train.class_names[:2] == ["gloss_0", "gloss_1"]


def test_synthetic_classes_are_learnable(folder):
    # 1-NN on the wrists' paths relative to the shoulders beats chance (1/12) by far, across
    # signers: the classes differ in motion, the signers in position, scale and rotation.
    splits = load_signum(folder)

    def features(data):
        pose = data.select_landmarks("pose").resample(16).sequences
        names = data.select_landmarks("pose").landmark_names
        left, right = names.index("left_shoulder"), names.index("right_shoulder")
        centre = (pose[:, :, left] + pose[:, :, right])[:, :, None] / 2
        width = np.linalg.norm(pose[:, :, left] - pose[:, :, right], axis=-1)[..., None, None]
        wrists = pose[:, :, [names.index("left_wrist"), names.index("right_wrist")]]
        return ((wrists - centre) / width).reshape(len(data), -1)

    train, test = features(splits.train), features(splits.test)
    distances = ((test[:, None] - train[None]) ** 2).sum(-1)
    predicted = splits.train.labels[np.argmin(distances, axis=1)]
    assert np.mean(predicted == splits.test.labels) > 0.8


def test_synthetic_is_deterministic(tmp_path):
    a = make_synthetic_signum(tmp_path / "a", n_classes=3, signers=(1, 1, 1), seed=5)
    b = make_synthetic_signum(tmp_path / "b", n_classes=3, signers=(1, 1, 1), seed=5)
    for name in ("X_train.npy", "y_test.npy", "signers_val.npy"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    with pytest.raises(ValueError, match="frames"):
        make_synthetic_signum(tmp_path / "c", frames=4)


def test_missing_folder_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        load_signum(tmp_path / "nowhere")
    message = str(info.value)
    command = f"gkd-run signum --data {tmp_path / 'nowhere'}"
    for needed in ("X_train.npy", "MediaPipe Holistic", "SIGNUM", "Munich", command):
        assert needed in message


def test_missing_file_is_named(copy):
    (copy / "y_val.npy").unlink()
    with pytest.raises(FileNotFoundError, match="lacks y_val.npy.*gkd-run signum --data"):
        load_signum(copy)


def save(path: Path, array: np.ndarray) -> None:
    np.save(path, array)


@pytest.mark.parametrize(
    ("damage", "error", "message"),
    [
        (lambda d: save(d / "X_val.npy", np.zeros((48, 80, 224), np.float32)), ValueError,
         r"X_val.npy: X has shape \(48, 80, 224\)"),
        (lambda d: save(d / "X_val.npy", np.zeros((48, 80, 225), np.int16)), TypeError,
         "X_val.npy: X has dtype int16"),
        (lambda d: save(d / "y_val.npy", np.zeros(48, np.float64)), TypeError,
         "y_val.npy: y has dtype float64"),
        (lambda d: save(d / "y_val.npy", np.zeros((48, 1), np.int64)), ValueError,
         r"y_val.npy: y has shape \(48, 1\)"),
        (lambda d: save(d / "y_test.npy", np.zeros(47, np.int64)), ValueError,
         "X_test.npy holds 48 sequences but .*y_test.npy holds 47"),
        (lambda d: save(d / "y_test.npy", np.full(48, -2)), ValueError,
         r"y_test.npy: y\[0\] = -2"),
        (lambda d: save(d / "y_train.npy", np.arange(96) % 13), ValueError,
         r"y_train.npy: y\[12\] = 12 but the gloss file names only 12 classes"),
        (lambda d: save(d / "signers_val.npy", np.ones(5, np.int64)), ValueError,
         r"signers_val.npy: signers has shape \(5,\)"),
        (lambda d: save(d / "signers_val.npy", np.ones(48)), TypeError,
         "signers_val.npy: signers has dtype float64"),
        (lambda d: save(d / "signers_val.npy", np.ones(48, np.int64)), ValueError,
         "train and validation share subject 1"),
        (lambda d: save(d / "y_val.npy", np.array([0] * 48, dtype=object)), ValueError,
         "y_val.npy: cannot be read: it holds Python objects"),
        (lambda d: (d / "glosses.txt").write_text("A\n\nC\n"), ValueError,
         r"glosses.txt: line 2 \(label 1\) is empty"),
    ],
)  # fmt: skip
def test_bad_arrays_are_named(copy, damage, error, message):
    damage(copy)
    with pytest.raises(error, match=message):
        load_signum(copy)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("mmap", [True, False])
def test_non_finite_values_are_located(copy, value, mmap):
    x = np.load(copy / "X_test.npy")
    x[17, 42, 100] = value
    np.save(copy / "X_test.npy", x)
    expected = r"X_test.npy: X\[17, 42, 100\] \(landmark 33 'left_hand_wrist', y\) is -?(nan|inf)"
    with pytest.raises(ValueError, match=expected):
        load_signum(copy, mmap=mmap)


def test_all_zero_sequence(copy):
    x = np.load(copy / "X_train.npy")
    x[5] = 0
    np.save(copy / "X_train.npy", x)
    with pytest.raises(ValueError, match=r"X_train.npy: X\[5\] is all zeros.*trim=False"):
        load_signum(copy)
    assert load_signum(copy, trim=False).train.lengths[5] == 80


@pytest.mark.parametrize("mmap", [True, False])
@pytest.mark.parametrize("name", ["X_train.npy", "y_val.npy"])
def test_truncated_file(copy, mmap, name):
    content = (copy / name).read_bytes()
    (copy / name).write_bytes(content[: len(content) - 1000 if name[0] == "X" else 140])
    with pytest.raises(ValueError, match=f"{name}: cannot be read.*truncated or corrupt"):
        load_signum(copy, mmap=mmap)


@pytest.mark.parametrize("content", [b"", b"garbage" * 50, b"PK\x03\x04" + b"\x00" * 60])
def test_corrupt_file(copy, content):
    (copy / "X_val.npy").write_bytes(content)
    with pytest.raises(ValueError, match=r"X_val.npy: .*corrupt"):
        load_signum(copy)


def test_float64_and_four_dimensional_files_are_accepted(copy):
    x = np.load(copy / "X_val.npy")
    np.save(copy / "X_val.npy", x.astype(np.float64).reshape(48, 80, 75, 3))
    validation = load_signum(copy).validation
    assert validation.sequences.dtype == np.float32
    np.testing.assert_array_equal(validation.sequences.reshape(48, 80, 225), x)
