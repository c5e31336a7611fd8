"""The generic format for the user's own data: one ``.npz`` file (see ``data/FORMATS.md``).

=================  ==============  ========================================================
array              shape, dtype    meaning
=================  ==============  ========================================================
X                  (N, T, L, 3)    float landmark coordinates, zero after ``lengths[i]``
lengths            (N,) int        valid frames per sequence, 1..T
labels             (N,) int        class indices 0..C-1
subject            (N,) int        optional subject / signer ids (default: all 0)
class_names        (C,) str        optional (default ``class_0`` .. up to the largest label)
landmark_names     (L,) str        optional (default ``landmark_0`` ..)
group_<name>       (k,) int        optional landmark groups, e.g. ``group_left_hand``
=================  ==============  ========================================================

Example, from a list of (T_i, L, 3) arrays ``seqs`` and a list of int labels ``ys``::

    import numpy as np
    lengths = np.array([len(s) for s in seqs])
    X = np.zeros((len(seqs), lengths.max(), *seqs[0].shape[1:]), dtype=np.float32)
    for i, s in enumerate(seqs):
        X[i, : len(s)] = s
    np.savez_compressed("mine.npz", X=X, lengths=lengths, labels=np.array(ys))
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .base import MotionDataset, check_values, read_npz

REQUIRED = ("X", "lengths", "labels")
OPTIONAL = ("subject", "class_names", "landmark_names")
GROUP_PREFIX = "group_"

_FORMAT = (
    "expected one .npz with X (N, T, L, 3) float, lengths (N,) int, labels (N,) int and "
    "optionally subject (N,) int, class_names (C,) str, landmark_names (L,) str, group_<name> "
    "(k,) int (see data/FORMATS.md)"
)


def _names(value: np.ndarray, *, path: Path, key: str, count: int | None) -> list[str]:
    if value.ndim != 1 or value.dtype.kind not in "US":
        raise TypeError(f"{path}: {key} has shape {value.shape} dtype {value.dtype}; {_FORMAT}")
    names = [str(v) for v in value]
    if count is not None and len(names) != count:
        raise ValueError(f"{path}: {key} has {len(names)} entries; expected {count}")
    return names


def load_npz(path: Path) -> MotionDataset:
    """Load a dataset in the generic ``.npz`` format (see the module docstring).

    Parameters
    ----------
    path : Path
        The ``.npz`` file.

    Returns
    -------
    MotionDataset
        ``source`` is ``"npz:<path>"``; sequences become float32.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the file is truncated or corrupt, an array is missing, unknown or has the wrong shape,
        a value is NaN or inf, padding is not zero, or a length or label is out of range (the
        message names the file, the array and the index).
    TypeError
        If an array has the wrong dtype.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; {_FORMAT}")
    arrays = read_npz(path)
    for key in REQUIRED:
        if key not in arrays:
            raise ValueError(f"{path}: array {key!r} is missing; {_FORMAT}")
    for key in arrays:
        if key not in REQUIRED + OPTIONAL and not key.startswith(GROUP_PREFIX):
            raise ValueError(f"{path}: unknown array {key!r}; {_FORMAT}")
    x = arrays["X"]
    if x.ndim != 4 or x.shape[3] != 3:
        raise ValueError(f"{path}: X has shape {x.shape}; expected (N, T, L, 3)")
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"{path}: X has dtype {x.dtype}; expected float32 or float64")
    n, t_max, n_landmarks = x.shape[:3]
    for key in ("lengths", "labels", "subject"):
        if key not in arrays:
            continue
        value = arrays[key]
        if value.shape != (n,):
            raise ValueError(f"{path}: {key} has shape {value.shape}; expected ({n},) like X")
        if n and not np.issubdtype(value.dtype, np.integer):
            raise TypeError(f"{path}: {key} has dtype {value.dtype}; expected integers")
    lengths = arrays["lengths"].astype(np.int64)
    labels = arrays["labels"].astype(np.int64)
    bad = (lengths < 1) | (lengths > t_max)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{path}: lengths[{i}] = {lengths[i]} is outside 1..{t_max}")
    if "class_names" in arrays:
        class_names = _names(arrays["class_names"], path=path, key="class_names", count=None)
    else:
        class_names = [f"class_{k}" for k in range(int(labels.max(initial=0)) + 1)]
    bad = (labels < 0) | (labels >= len(class_names))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{path}: labels[{i}] = {labels[i]} is outside 0..{len(class_names) - 1} "
            f"({len(class_names)} class names)"
        )
    if "landmark_names" in arrays:
        landmark_names = _names(
            arrays["landmark_names"], path=path, key="landmark_names", count=n_landmarks
        )
    else:
        landmark_names = [f"landmark_{j}" for j in range(n_landmarks)]
    groups = {}
    for key, value in arrays.items():
        if not key.startswith(GROUP_PREFIX):
            continue
        if value.ndim != 1 or not np.issubdtype(value.dtype, np.integer) or value.size == 0:
            raise ValueError(f"{path}: {key} must be a non-empty (k,) int array of landmarks")
        bad = (value < 0) | (value >= n_landmarks)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{path}: {key}[{i}] = {value[i]} is outside 0..{n_landmarks - 1}")
        groups[key[len(GROUP_PREFIX) :]] = [int(j) for j in value]
    check_values(x, lengths, where=str(path), landmark_names=landmark_names)
    subjects = arrays["subject"] if "subject" in arrays else np.zeros(n, dtype=np.int64)
    return MotionDataset(
        sequences=x,
        lengths=lengths,
        labels=labels,
        class_names=class_names,
        subjects=subjects,
        landmark_names=landmark_names,
        source=f"npz:{path}",
        landmark_groups=groups,
    )


def save_npz(dataset: MotionDataset, path: Path) -> None:
    """Write ``dataset`` in the generic ``.npz`` format (compressed).

    Parameters
    ----------
    dataset : MotionDataset
        What to write; its ``source`` is not stored.
    path : Path
        Output file (NumPy adds ``.npz`` if the name lacks it).
    """
    groups: dict[str, Any] = {
        f"{GROUP_PREFIX}{name}": np.asarray(members, dtype=np.int64)
        for name, members in dataset.landmark_groups.items()
    }
    np.savez_compressed(
        Path(path).expanduser(),
        X=np.asarray(dataset.sequences, dtype=np.float32),
        lengths=dataset.lengths,
        labels=dataset.labels,
        subject=dataset.subjects,
        class_names=np.array(dataset.class_names, dtype=str),
        landmark_names=np.array(dataset.landmark_names, dtype=str),
        **groups,
    )
