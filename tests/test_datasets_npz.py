"""The generic .npz format for the user's own data (issue 3)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gkd.datasets import load_npz, make_synthetic_motion, save_npz


def test_round_trip(tmp_path):
    data = make_synthetic_motion(3, n_subjects=2, per_subject=2, n_landmarks=5)
    data.landmark_groups = {"front": [0, 1], "back": [4]}
    save_npz(data, tmp_path / "d.npz")
    back = load_npz(tmp_path / "d.npz")
    np.testing.assert_array_equal(back.sequences, data.sequences)
    np.testing.assert_array_equal(back.lengths, data.lengths)
    np.testing.assert_array_equal(back.labels, data.labels)
    np.testing.assert_array_equal(back.subjects, data.subjects)
    assert back.class_names == data.class_names
    assert back.landmark_names == data.landmark_names
    assert back.landmark_groups == {"front": [0, 1], "back": [4]}
    assert back.source == f"npz:{tmp_path / 'd.npz'}"


def test_the_documented_example(tmp_path, monkeypatch):
    # The five lines from data/FORMATS.md and the npz module docstring, verbatim.
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    seqs = [rng.normal(size=(t, 7, 3)) for t in (5, 9, 3)]
    ys = [1, 0, 1]
    lengths = np.array([len(s) for s in seqs])
    X = np.zeros((len(seqs), lengths.max(), *seqs[0].shape[1:]), dtype=np.float32)
    for i, s in enumerate(seqs):
        X[i, : len(s)] = s
    np.savez_compressed("mine.npz", X=X, lengths=lengths, labels=np.array(ys))
    data = load_npz(Path("mine.npz"))
    assert data.sequences.shape == (3, 9, 7, 3)
    np.testing.assert_array_equal(data.lengths, [5, 9, 3])
    assert data.class_names == ["class_0", "class_1"]
    assert data.landmark_names[6] == "landmark_6"
    np.testing.assert_array_equal(data.subjects, 0)
    np.testing.assert_allclose(data.sequences[2, :3], seqs[2], rtol=1e-6)


def write(path: Path, **arrays) -> Path:
    base = {
        "X": np.ones((2, 4, 3, 3), np.float32),
        "lengths": np.array([4, 4]),
        "labels": np.array([0, 1]),
    }
    base.update(arrays)
    np.savez(path, **{k: v for k, v in base.items() if v is not None})
    return path


@pytest.mark.parametrize(
    ("arrays", "error", "message"),
    [
        ({"X": None}, ValueError, "array 'X' is missing"),
        ({"lengths": None}, ValueError, "array 'lengths' is missing"),
        ({"subjects": np.array([1, 2])}, ValueError, "unknown array 'subjects'"),
        ({"X": np.ones((2, 4, 9), np.float32)}, ValueError, r"X has shape \(2, 4, 9\)"),
        ({"X": np.ones((2, 4, 3, 3), np.int64)}, TypeError, "X has dtype int64"),
        ({"lengths": np.array([4, 5])}, ValueError, r"lengths\[1\] = 5 is outside 1..4"),
        ({"lengths": np.array([0, 4])}, ValueError, r"lengths\[0\] = 0"),
        ({"lengths": np.array([4, 4, 4])}, ValueError, r"lengths has shape \(3,\)"),
        ({"labels": np.array([0.0, 1.0])}, TypeError, "labels has dtype float64"),
        ({"labels": np.array([0, -1])}, ValueError, r"labels\[1\] = -1"),
        ({"class_names": np.array(["only"])}, ValueError, r"labels\[1\] = 1 is outside 0..0"),
        ({"subject": np.array([1])}, ValueError, r"subject has shape \(1,\)"),
        ({"landmark_names": np.array(["a", "b"])}, ValueError, "landmark_names has 2 entries"),
        ({"landmark_names": np.array([1, 2, 3])}, TypeError, "landmark_names has shape"),
        ({"group_hand": np.array([0, 3])}, ValueError, r"group_hand\[1\] = 3 is outside 0..2"),
        ({"group_hand": np.array([], np.int64)}, ValueError, "group_hand must be a non-empty"),
    ],
)
def test_bad_arrays_are_named(tmp_path, arrays, error, message):
    path = write(tmp_path / "bad.npz", **arrays)
    with pytest.raises(error, match=f"bad.npz: {message}"):
        load_npz(path)


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_value_is_located(tmp_path, value):
    x = np.ones((2, 4, 3, 3), np.float32)
    x[1, 2, 0, 1] = value
    match = r"bad.npz: X\[1, 2, 0, 1\] \(landmark 0 'landmark_0', y\) is (nan|inf)"
    with pytest.raises(ValueError, match=match):
        load_npz(write(tmp_path / "bad.npz", X=x))


def test_padding_must_be_zero(tmp_path):
    path = write(tmp_path / "bad.npz", lengths=np.array([4, 2]))
    with pytest.raises(ValueError, match=r"bad.npz: X\[1, 2\] is past lengths\[1\] = 2"):
        load_npz(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.npz does not exist; expected one .npz"):
        load_npz(tmp_path / "absent.npz")


def test_pickled_strings_are_refused(tmp_path):
    path = write(tmp_path / "bad.npz", class_names=np.array(["a", "b"], dtype=object))
    with pytest.raises(ValueError, match="bad.npz: cannot be read: it holds Python objects"):
        load_npz(path)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "npy"])
def test_truncated_or_corrupt_file(tmp_path, damage):
    path = write(tmp_path / "bad.npz")
    content = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(content[: len(content) // 2])
    elif damage == "garbage":
        path.write_bytes(b"\x01" * 300)
    else:
        np.save(tmp_path / "plain.npy", np.ones(3))
        path.write_bytes((tmp_path / "plain.npy").read_bytes())
    with pytest.raises(ValueError, match="bad.npz: cannot be read.*truncated or corrupt"):
        load_npz(path)
