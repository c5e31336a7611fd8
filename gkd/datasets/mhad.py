"""UTD-MHAD Kinect skeletons, bundled with gkd (27 actions, 8 subjects, 861 sequences).

Citation: C. Chen, R. Jafari, N. Kehtarnavaz, "UTD-MHAD: A Multimodal Dataset for Human Action
Recognition Utilizing a Depth Camera and a Wearable Inertial Sensor", ICIP 2015. Provenance and
the file format are described in ``data/README.md``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import numpy as np

from .base import DatasetSplits, MotionDataset, read_npz, split_dataset

Protocol = Literal["paper", "cross-subject"]
Layout = Literal["frames", "paper-scrambled"]

BUNDLED_FILE = "utd_mhad.npz"
DATA_DIR_ENV = "GKD_DATA_DIR"
MAX_FRAMES = 125

# (training subjects, test subjects)
PROTOCOLS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "paper": ((1, 2, 3, 4, 5), (6, 7, 8)),
    "cross-subject": ((1, 3, 5, 7), (2, 4, 6, 8)),
}

# Kinect v1 joints by body part (indices into the dataset's joint order).
MHAD_GROUPS: dict[str, list[int]] = {
    "torso": [0, 1, 2, 3],
    "left_arm": [4, 5, 6, 7],
    "right_arm": [8, 9, 10, 11],
    "left_leg": [12, 13, 14, 15],
    "right_leg": [16, 17, 18, 19],
    "arms": list(range(4, 12)),
    "legs": list(range(12, 20)),
}


def bundled_data_path() -> Path:
    """Locate the bundled UTD-MHAD file.

    Looked up in order: ``$GKD_DATA_DIR/utd_mhad.npz``; ``gkd/data/`` inside the installed
    package (a link to the repository's ``data/`` in a source checkout); the repository's
    ``data/`` next to the ``gkd`` folder.

    Returns
    -------
    Path
        The file.

    Raises
    ------
    FileNotFoundError
        If ``GKD_DATA_DIR`` is set but lacks the file, or no location has it.
    """
    override = os.environ.get(DATA_DIR_ENV)
    if override:
        path = Path(override).expanduser() / BUNDLED_FILE
        if not path.is_file():
            raise FileNotFoundError(
                f"{DATA_DIR_ENV}={override} is set but {path} does not exist; point "
                f"{DATA_DIR_ENV} at a folder holding {BUNDLED_FILE} (the repository's data/ "
                "folder) or unset it to use the copy installed with gkd"
            )
        return path
    # gkd/data is the package's data folder (a link to data/ in a checkout, a copy in a wheel).
    package = Path(__file__).resolve().parents[1] / "data" / BUNDLED_FILE
    repository = Path(__file__).resolve().parents[2] / "data" / BUNDLED_FILE
    for path in (package, repository):
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"the bundled UTD-MHAD file {BUNDLED_FILE} was found neither at {package} nor at "
        f"{repository}; reinstall gkd, or set {DATA_DIR_ENV} to a folder that holds it"
    )


def _read_bundled(path: Path) -> dict[str, np.ndarray]:
    arrays = read_npz(path)
    expected = ("byte_planes", "lengths", "action", "subject", "trial", "joint_names")
    for key in (*expected, "action_names", "format_version"):
        if key not in arrays:
            raise ValueError(f"{path}: array {key!r} is missing; expected a gkd UTD-MHAD file")
    if int(arrays["format_version"]) != 1:
        raise ValueError(f"{path}: format_version {int(arrays['format_version'])} is not 1")
    lengths = arrays["lengths"].astype(np.int64)
    planes = arrays["byte_planes"]
    if planes.shape != (4, 60, int(lengths.sum())) or planes.dtype != np.uint8:
        raise ValueError(
            f"{path}: byte_planes has shape {planes.shape} {planes.dtype}; expected "
            f"(4, 60, {int(lengths.sum())}) uint8"
        )
    return arrays


def _decode_frames(planes: np.ndarray) -> np.ndarray:
    """(4, 60, F) byte planes -> (F, 60) float32 frames (see data/encode_utd_mhad.py)."""
    channels = np.ascontiguousarray(np.moveaxis(planes, 0, -1)).view("<f4")[..., 0]  # (60, F)
    return np.ascontiguousarray(channels.T).astype(np.float32, copy=False)


def _paper_scramble(frames: np.ndarray, length: int) -> np.ndarray:
    """The published loader's frames for one sequence.

    It stored the sequence channel-major, (60, 125) with channel = joint * 3 + coordinate and
    zeros after ``length``, then read it with ``reshape(125, 60)`` instead of a transpose, so
    "frame" r holds the flat values r*60 .. r*60+59 of that buffer: a mix of channels and time
    steps. Only the first ``length`` such rows were used, each as (20, 3).
    """
    channels = np.zeros((60, MAX_FRAMES), dtype=np.float32)
    channels[:, :length] = frames[:length].reshape(length, 60).T
    out = np.zeros((MAX_FRAMES, 20, 3), dtype=np.float32)
    out[:length] = channels.reshape(MAX_FRAMES, 60)[:length].reshape(length, 20, 3)
    return out


def load_mhad_all(*, layout: Layout = "frames") -> MotionDataset:
    """Load all 861 UTD-MHAD skeleton sequences bundled with gkd.

    Parameters
    ----------
    layout : {"frames", "paper-scrambled"}
        ``"frames"``: the real frames, (T, 20 joints, 3) in metres. ``"paper-scrambled"``:
        compatibility mode that rebuilds what the paper's published loader fed its models
        (``reshape(125, 60)`` of a channels x frames array, so each "frame" mixes channels and
        time steps). Use it only to reproduce the published numbers.

    Returns
    -------
    MotionDataset
        ``sequences`` (861, 125, 20, 3) float32, rows sorted by (action, subject, trial);
        ``labels`` = action - 1 (0..26) with the dataset's action names; ``subjects`` 1..8;
        ``source`` ``"utd-mhad"`` (or ``"utd-mhad:paper-scrambled"``).

    Raises
    ------
    FileNotFoundError
        If the bundled file cannot be found (see :func:`bundled_data_path`).
    ValueError
        If ``layout`` is unknown, or the bundled file is corrupt.
    """
    if layout not in ("frames", "paper-scrambled"):
        raise ValueError(f"layout must be 'frames' or 'paper-scrambled', got {layout!r}")
    arrays = _read_bundled(bundled_data_path())
    lengths = arrays["lengths"].astype(np.int64)
    frames = _decode_frames(arrays["byte_planes"]).reshape(-1, 20, 3)
    n = lengths.size
    sequences = np.zeros((n, MAX_FRAMES, 20, 3), dtype=np.float32)
    # Boolean assignment fills valid frames row by row, the order they were concatenated in.
    sequences[np.arange(MAX_FRAMES)[None, :] < lengths[:, None]] = frames
    joint_names = [str(j) for j in arrays["joint_names"]]
    groups = MHAD_GROUPS
    source = "utd-mhad"
    if layout == "paper-scrambled":
        sequences = np.stack([_paper_scramble(sequences[i], int(lengths[i])) for i in range(n)])
        # Scrambled slots are not joints: no names that would suggest otherwise.
        joint_names = [f"slot_{j}" for j in range(20)]
        groups = {}
        source = "utd-mhad:paper-scrambled"
    return MotionDataset(
        sequences=sequences,
        lengths=lengths,
        labels=arrays["action"].astype(np.int64) - 1,
        class_names=[str(a) for a in arrays["action_names"]],
        subjects=arrays["subject"].astype(np.int64),
        landmark_names=joint_names,
        source=source,
        landmark_groups={k: list(v) for k, v in groups.items()},
    )


def load_mhad(
    *,
    protocol: Protocol = "paper",
    validation_subjects: Iterable[int] | None = None,
    layout: Layout = "frames",
) -> DatasetSplits:
    """Load UTD-MHAD split by subject.

    Parameters
    ----------
    protocol : {"paper", "cross-subject"}
        ``"paper"``: subjects 1-5 train, 6-8 test (as the paper). ``"cross-subject"``: subjects
        1, 3, 5, 7 train, 2, 4, 6, 8 test (the standard protocol in the literature).
    validation_subjects : Iterable[int] | None
        Training subjects held out for every choice; None takes the last training subject (5
        for ``"paper"``, 7 for ``"cross-subject"``).
    layout : {"frames", "paper-scrambled"}
        See :func:`load_mhad_all`.

    Returns
    -------
    DatasetSplits
        ``train``, ``validation`` and ``test``, disjoint in subjects.

    Raises
    ------
    ValueError
        If the protocol or layout is unknown, or a validation subject is not a training subject
        (or is all of them).
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {sorted(PROTOCOLS)}, got {protocol!r}")
    _, test_subjects = PROTOCOLS[protocol]
    return split_dataset(
        load_mhad_all(layout=layout),
        test_subjects=test_subjects,
        validation_subjects=validation_subjects,
    )
