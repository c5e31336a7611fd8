"""SIGNUM (German Sign Language) as MediaPipe Holistic landmarks, in the layout the paper used.

SIGNUM cannot be shipped with gkd; the user brings a folder::

    X_train.npy  y_train.npy   (N, 80, 225) float, (N,) int   signers 1-14
    X_val.npy    y_val.npy                                    signers 15-18
    X_test.npy   y_test.npy                                   signers 19-25
    glosses.txt  (optional; or classes.txt) one gloss name per line, line k = label k
    signers_train.npy, signers_val.npy, signers_test.npy  (optional) (N,) int signer ids

Each frame holds 75 landmarks x (x, y, z): 33 pose, then 21 left-hand, then 21 right-hand
landmarks. A hand block that is all zero means MediaPipe did not detect that hand; it stays zero
so the engine treats it as a missing frame, never as a shape.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import READ_ERRORS, DatasetSplits, MotionDataset, check_values, unreadable

POSE_LANDMARKS: tuple[str, ...] = (
    "nose",
    "left_eye_inner",
    "left_eye",
    "left_eye_outer",
    "right_eye_inner",
    "right_eye",
    "right_eye_outer",
    "left_ear",
    "right_ear",
    "mouth_left",
    "mouth_right",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_pinky",
    "right_pinky",
    "left_index",
    "right_index",
    "left_thumb",
    "right_thumb",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
    "left_heel",
    "right_heel",
    "left_foot_index",
    "right_foot_index",
)

HAND_LANDMARKS: tuple[str, ...] = (
    "wrist",
    "thumb_cmc",
    "thumb_mcp",
    "thumb_ip",
    "thumb_tip",
    "index_finger_mcp",
    "index_finger_pip",
    "index_finger_dip",
    "index_finger_tip",
    "middle_finger_mcp",
    "middle_finger_pip",
    "middle_finger_dip",
    "middle_finger_tip",
    "ring_finger_mcp",
    "ring_finger_pip",
    "ring_finger_dip",
    "ring_finger_tip",
    "pinky_mcp",
    "pinky_pip",
    "pinky_dip",
    "pinky_tip",
)

SIGNUM_LANDMARKS: tuple[str, ...] = (
    *POSE_LANDMARKS,
    *(f"left_hand_{name}" for name in HAND_LANDMARKS),
    *(f"right_hand_{name}" for name in HAND_LANDMARKS),
)

_POSE = list(range(33))
_LEFT = list(range(33, 54))
_RIGHT = list(range(54, 75))
SIGNUM_GROUPS: dict[str, list[int]] = {
    "pose": _POSE,
    "left_hand": _LEFT,
    "right_hand": _RIGHT,
    "hands": _LEFT + _RIGHT,
}

SPLITS = {"train": "train", "validation": "val", "test": "test"}  # DatasetSplits field -> file
GLOSS_FILES = ("glosses.txt", "classes.txt")
# Without signers_*.npy the files carry no signer ids: one negative id per split.
SPLIT_SUBJECT = {"train": -1, "validation": -2, "test": -3}

_HOW_TO = (
    "Expected a folder with X_train.npy, y_train.npy, X_val.npy, y_val.npy, X_test.npy, "
    "y_test.npy: X is (N, 80, 225) float (MediaPipe Holistic per frame: 33 pose, 21 left-hand, "
    "21 right-hand landmarks, each x, y, z), y is (N,) int gloss labels 0..449; optional "
    "glosses.txt with one gloss name per line. SIGNUM itself (the SIGNUM database of German "
    "Sign Language, Technical University of Munich / RWTH Aachen) must be obtained from its "
    "authors; extract landmarks from its videos with MediaPipe Holistic into this layout "
    "(signers 1-14 train, 15-18 val, 19-25 test), then run: gkd-run signum --data {folder}"
)

_NPY_MAGIC = b"\x93NUMPY"


def _load_npy(path: Path, *, mmap: bool) -> np.ndarray:
    """Read one .npy file, turning every way it can be broken into a ValueError naming it."""
    with path.open("rb") as f:
        magic = f.read(len(_NPY_MAGIC))
    if magic != _NPY_MAGIC:
        kind = "a .npz archive" if magic.startswith(b"PK") else "not a .npy file"
        raise ValueError(f"{path}: {kind} (no NumPy .npy header); the file is corrupt")
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except READ_ERRORS as exc:
        raise unreadable(path, exc) from exc


def _read_glosses(folder: Path) -> list[str] | None:
    for name in GLOSS_FILES:
        path = folder / name
        if path.is_file():
            lines = path.read_text(encoding="utf-8").splitlines()
            while lines and not lines[-1].strip():
                lines.pop()
            names = [line.strip() for line in lines]
            if not names:
                raise ValueError(f"{path}: no gloss names; expected one name per line")
            for k, gloss in enumerate(names):
                if not gloss:
                    raise ValueError(f"{path}: line {k + 1} (label {k}) is empty")
            return names
    return None


def _valid_lengths(x: np.ndarray, *, where: str) -> np.ndarray:
    """Frames up to the last one with any non-zero value, per sequence (trailing zero frames
    are padding: not even the pose was detected)."""
    n, t_max = x.shape[:2]
    lengths = np.empty(n, dtype=np.int64)
    step = max(1, (1 << 23) // max(1, t_max * x.shape[2]))
    for start in range(0, n, step):
        present = np.any(x[start : start + step] != 0, axis=2)  # (rows, T)
        last = t_max - np.argmax(present[:, ::-1], axis=1)
        empty = ~present.any(axis=1)
        if empty.any():
            i = start + int(np.flatnonzero(empty)[0])
            raise ValueError(
                f"{where}: X[{i}] is all zeros (no landmark in any frame); remove it, or load "
                "with trim=False to keep it as 80 missing frames"
            )
        lengths[start : start + step] = last
    return lengths


def _load_split(
    folder: Path, suffix: str, *, mmap: bool, trim: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    x_path, y_path = folder / f"X_{suffix}.npy", folder / f"y_{suffix}.npy"
    x = _load_npy(x_path, mmap=mmap)
    y = _load_npy(y_path, mmap=False)
    if x.ndim == 4 and x.shape[2:] == (75, 3):
        x = x.reshape(x.shape[0], x.shape[1], 225)
    if x.ndim != 3 or x.shape[2] != 225 or x.shape[1] < 1:
        raise ValueError(
            f"{x_path}: X has shape {x.shape}; expected (N, frames, 225) = 75 landmarks x 3"
        )
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"{x_path}: X has dtype {x.dtype}; expected float32 or float64")
    if y.ndim != 1:
        raise ValueError(f"{y_path}: y has shape {y.shape}; expected (N,)")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"{y_path}: y has dtype {y.dtype}; expected integer labels")
    if y.shape[0] != x.shape[0]:
        raise ValueError(
            f"{x_path} holds {x.shape[0]} sequences but {y_path} holds {y.shape[0]} labels"
        )
    negative = y < 0
    if negative.any():
        i = int(np.flatnonzero(negative)[0])
        raise ValueError(f"{y_path}: y[{i}] = {int(y[i])}; labels must be 0 or more")
    signers = None
    s_path = folder / f"signers_{suffix}.npy"
    if s_path.is_file():
        signers = _load_npy(s_path, mmap=False)
        if signers.shape != y.shape:
            raise ValueError(
                f"{s_path}: signers has shape {signers.shape}; expected {y.shape} like {y_path}"
            )
        if signers.size and not np.issubdtype(signers.dtype, np.integer):
            raise TypeError(f"{s_path}: signers has dtype {signers.dtype}; expected integers")
    check_values(x, None, where=str(x_path), landmark_names=SIGNUM_LANDMARKS)
    if trim:
        lengths = _valid_lengths(x, where=str(x_path))
    else:
        lengths = np.full(x.shape[0], x.shape[1], dtype=np.int64)
    return x, y.astype(np.int64), lengths, signers


def load_signum(folder: Path, *, mmap: bool = True, trim: bool = True) -> DatasetSplits:
    """Load a SIGNUM folder in the paper's layout (see the module docstring).

    Parameters
    ----------
    folder : Path
        Folder with ``X_{train,val,test}.npy`` and ``y_{train,val,test}.npy``; optionally
        ``glosses.txt`` (else ``classes.txt``; line k names label k) and
        ``signers_{train,val,test}.npy``.
    mmap : bool
        Memory-map the X files instead of reading them. Only float32 files stay mapped; other
        float dtypes are converted to float32 in memory.
    trim : bool
        Treat trailing frames in which every value is zero (nothing detected, i.e. padding) as
        past the sequence's end, so ``lengths`` may be below 80. False keeps all 80 frames as the
        paper did. Zero hand blocks inside a sequence are kept as missing frames either way.

    Returns
    -------
    DatasetSplits
        ``train`` / ``validation`` / ``test`` from the train / val / test files; 75 landmarks
        with groups ``"pose"``, ``"left_hand"``, ``"right_hand"``, ``"hands"``. Class names
        come from the gloss file, else ``"gloss_<k>"`` for k up to the largest label. Subjects
        come from ``signers_*.npy``; without them each split gets one negative id (train -1,
        validation -2, test -3): SIGNUM's files carry no signer ids, and its splits are by
        signer.

    Raises
    ------
    FileNotFoundError
        If the folder or one of the six files is missing (the message says what to download and
        how to lay it out).
    ValueError
        If a file is truncated or corrupt, an array has the wrong shape, X and y disagree in
        count, a value is NaN or inf, a label is out of range, or a sequence is all zero.
    TypeError
        If X is not floating point, or y or signers are not integers.
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(
            f"SIGNUM folder {folder} does not exist. {_HOW_TO.format(folder=folder)}"
        )
    needed = [f"{a}_{s}.npy" for s in SPLITS.values() for a in ("X", "y")]
    missing = [name for name in needed if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{folder} lacks {', '.join(missing)}. {_HOW_TO.format(folder=folder)}"
        )
    glosses = _read_glosses(folder)
    parts = {
        field: _load_split(folder, suffix, mmap=mmap, trim=trim) for field, suffix in SPLITS.items()
    }
    if glosses is None:
        top = max((int(y.max()) for _, y, _, _ in parts.values() if y.size), default=0)
        class_names = [f"gloss_{k}" for k in range(top + 1)]
    else:
        class_names = glosses
        for field, (_, y, _, _) in parts.items():
            over = y >= len(glosses)
            if over.any():
                i = int(np.flatnonzero(over)[0])
                raise ValueError(
                    f"{folder / f'y_{SPLITS[field]}.npy'}: y[{i}] = {int(y[i])} but the gloss "
                    f"file names only {len(glosses)} classes (0..{len(glosses) - 1})"
                )
    datasets = {}
    for field, (x, y, lengths, signers) in parts.items():
        subjects = np.full(y.shape, SPLIT_SUBJECT[field]) if signers is None else signers
        datasets[field] = MotionDataset(
            sequences=x.reshape(x.shape[0], x.shape[1], 75, 3),
            lengths=lengths,
            labels=y,
            class_names=class_names,
            subjects=subjects,
            landmark_names=list(SIGNUM_LANDMARKS),
            source="signum",
            landmark_groups={k: list(v) for k, v in SIGNUM_GROUPS.items()},
        )
    return DatasetSplits(**datasets)
