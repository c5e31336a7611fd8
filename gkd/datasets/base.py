"""The one dataset type every source produces, its train/validation/test splits and batches."""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

if TYPE_CHECKING:
    import torch

# Rows per chunk when scanning large (possibly memory-mapped) arrays, so that a check never
# holds more than a few tens of MB of temporaries.
_CHUNK_VALUES = 1 << 23

# What np.load raises for a truncated or corrupt file.
READ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)


def unreadable(path: object, reason: object) -> ValueError:
    """The error for a file that cannot be read (raise it ``from`` the original exception)."""
    if "pickle" in str(reason):
        return ValueError(
            f"{path}: cannot be read: it holds Python objects (pickled data), which gkd never "
            "loads; store numbers as numeric arrays and names as np.array(names) (unicode)"
        )
    return ValueError(f"{path}: cannot be read ({reason}); the file is truncated or corrupt")


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` archive, read without pickle.

    Parameters
    ----------
    path : Path
        The archive.

    Returns
    -------
    dict[str, np.ndarray]

    Raises
    ------
    ValueError
        Naming the file, if it is not a zip archive, or is truncated or corrupt.
    """
    # Opened here, not by np.load, so that the handle is closed even when the zip is broken.
    with Path(path).open("rb") as handle:
        if handle.read(2) != b"PK":
            raise unreadable(path, "not an .npz (zip) archive")
        handle.seek(0)
        try:
            with np.load(handle, allow_pickle=False) as archive:
                return {key: archive[key] for key in archive.files}
        except READ_ERRORS as exc:
            raise unreadable(path, exc) from exc


class Batch(NamedTuple):
    """One mini-batch, ready for a PyTorch model.

    Attributes
    ----------
    inputs : torch.Tensor
        (B, T_batch, L * 3) float32; T_batch is the longest length in the batch.
    padding_mask : torch.Tensor
        (B, T_batch) bool, True where the frame is padding (past the sequence's length).
    labels : torch.Tensor
        (B,) int64 class indices.
    index : torch.Tensor
        (B,) int64 rows of the dataset the batch was drawn from.
    """

    inputs: torch.Tensor
    padding_mask: torch.Tensor
    labels: torch.Tensor
    index: torch.Tensor  # type: ignore[assignment]  # the contract's name; hides tuple.index


def _as_index_array(values: object, *, name: str, n: int) -> np.ndarray:
    """Return ``values`` as an int64 array of shape (n,), or raise naming ``name``."""
    array = np.asarray(values)
    if array.shape != (n,):
        raise ValueError(f"{name} has shape {array.shape}; expected ({n},), one per sequence")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"{name} has dtype {array.dtype}; expected integers")
    return array.astype(np.int64, copy=False)


def _first(mask: np.ndarray) -> int:
    """Index of the first True in a 1-D mask."""
    return int(np.flatnonzero(mask)[0])


@dataclass(eq=False)
class MotionDataset:
    """Motion sequences of landmarks with labels: the type every loader returns.

    Parameters
    ----------
    sequences : np.ndarray
        (N, T, L, 3) float32 landmark coordinates, zero after ``lengths[i]`` frames. Other
        floating dtypes are converted to float32; a float32 memory map is kept as it is.
    lengths : np.ndarray
        (N,) int64 number of valid frames, 1..T.
    labels : np.ndarray
        (N,) int64 class indices, 0..C-1.
    class_names : list[str]
        Length C.
    subjects : np.ndarray
        (N,) int64 subject (signer) ids. Negative ids mean "unknown, one id per split".
    landmark_names : list[str]
        Length L.
    source : str
        Where the data came from, e.g. ``"utd-mhad"``, ``"signum"``, ``"npz:/path/file.npz"``.
    landmark_groups : dict[str, list[int]]
        Named sets of landmark indices, e.g. ``{"left_hand": [33, ..., 53]}``.

    Raises
    ------
    TypeError
        If an array has a non-numeric dtype (sequences) or non-integer dtype (the others).
    ValueError
        If shapes disagree, or a length, label or landmark index is out of range.

    Notes
    -----
    The constructor checks shapes, dtypes and ranges, which is cheap; the loaders also check
    every value (finite, zero padding) once when they read a file.
    """

    sequences: np.ndarray
    lengths: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    subjects: np.ndarray
    landmark_names: list[str]
    source: str
    landmark_groups: dict[str, list[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        x = self.sequences
        if not isinstance(x, np.ndarray):
            x = np.asarray(x)
        if x.ndim != 4 or x.shape[3] != 3:
            raise ValueError(f"sequences has shape {x.shape}; expected (N, T, L, 3)")
        if not np.issubdtype(x.dtype, np.floating):
            raise TypeError(f"sequences has dtype {x.dtype}; expected float32")
        if x.dtype != np.float32:
            x = x.astype(np.float32)
        self.sequences = x
        n, t_max, n_landmarks = x.shape[:3]
        self.lengths = _as_index_array(self.lengths, name="lengths", n=n)
        self.labels = _as_index_array(self.labels, name="labels", n=n)
        self.subjects = _as_index_array(self.subjects, name="subjects", n=n)
        self.class_names = [str(c) for c in self.class_names]
        self.landmark_names = [str(c) for c in self.landmark_names]
        bad = (self.lengths < 1) | (self.lengths > t_max)
        if bad.any():
            i = _first(bad)
            raise ValueError(f"lengths[{i}] = {self.lengths[i]} is outside 1..{t_max}")
        n_classes = len(self.class_names)
        bad = (self.labels < 0) | (self.labels >= n_classes)
        if bad.any():
            i = _first(bad)
            raise ValueError(
                f"labels[{i}] = {self.labels[i]} is outside 0..{n_classes - 1} "
                f"({n_classes} class names)"
            )
        if len(self.landmark_names) != n_landmarks:
            raise ValueError(
                f"{len(self.landmark_names)} landmark names for {n_landmarks} landmarks"
            )
        groups: dict[str, list[int]] = {}
        for name, members in self.landmark_groups.items():
            idx = [int(j) for j in members]
            if not idx or min(idx) < 0 or max(idx) >= n_landmarks:
                raise ValueError(
                    f"landmark group {name!r} must list landmark indices in 0..{n_landmarks - 1}"
                )
            groups[str(name)] = idx
        self.landmark_groups = groups

    def __len__(self) -> int:
        return int(self.sequences.shape[0])

    def __repr__(self) -> str:
        subjects = np.unique(self.subjects).tolist()
        return (
            f"MotionDataset(source={self.source!r}, sequences={len(self)}, "
            f"max_frames={self.max_frames}, landmarks={self.n_landmarks}, "
            f"classes={self.n_classes}, subjects={subjects})"
        )

    @property
    def n_classes(self) -> int:
        """Number of classes C (``len(class_names)``)."""
        return len(self.class_names)

    @property
    def n_landmarks(self) -> int:
        """Number of landmarks L per frame."""
        return int(self.sequences.shape[2])

    @property
    def max_frames(self) -> int:
        """Padded length T of ``sequences``."""
        return int(self.sequences.shape[1])

    def _rows(self, index: np.ndarray | slice) -> MotionDataset:
        # dataclasses.replace re-runs the checks and copies names and groups afresh.
        return replace(
            self,
            sequences=self.sequences[index],
            lengths=self.lengths[index],
            labels=self.labels[index],
            subjects=self.subjects[index],
        )

    def subset(self, index: np.ndarray | Sequence[int] | slice) -> MotionDataset:
        """Return the sequences at ``index`` (row numbers, a boolean mask, or a slice).

        Parameters
        ----------
        index : np.ndarray | Sequence[int] | slice
            Rows to keep, in the order given, or a boolean mask of length N.

        Returns
        -------
        MotionDataset
            Same classes, landmarks and source.

        Raises
        ------
        ValueError
            If a boolean mask has the wrong length.
        IndexError
            If a row number is out of range.
        """
        if isinstance(index, slice):
            return self._rows(index)
        rows = np.asarray(index)
        if rows.dtype == bool:
            if rows.shape != (len(self),):
                raise ValueError(f"boolean index has shape {rows.shape}; expected ({len(self)},)")
            rows = np.flatnonzero(rows)
        elif rows.size == 0:
            rows = rows.astype(np.int64)
        elif not np.issubdtype(rows.dtype, np.integer):
            raise TypeError(f"index has dtype {rows.dtype}; expected integers or bool")
        return self._rows(rows)

    def split_by_subjects(self, subjects: Iterable[int]) -> tuple[MotionDataset, MotionDataset]:
        """Split into the sequences of ``subjects`` and all the others.

        Parameters
        ----------
        subjects : Iterable[int]
            Subject ids to put in the first part.

        Returns
        -------
        tuple[MotionDataset, MotionDataset]
            ``(inside, outside)``.

        Raises
        ------
        ValueError
            If one of ``subjects`` has no sequence in this dataset.
        """
        wanted = np.array(sorted({int(s) for s in subjects}), dtype=np.int64)
        present = np.unique(self.subjects)
        unknown = np.setdiff1d(wanted, present)
        if unknown.size:
            raise ValueError(
                f"subject {int(unknown[0])} has no sequence in this dataset "
                f"(subjects: {present.tolist()})"
            )
        inside = np.isin(self.subjects, wanted)
        return self.subset(inside), self.subset(~inside)

    def select_landmarks(self, group: str | Sequence[str]) -> MotionDataset:
        """Keep only some landmarks, chosen by group name(s) or landmark name(s).

        Parameters
        ----------
        group : str | Sequence[str]
            A name or several; each is looked up first among ``landmark_groups`` (e.g.
            ``"left_hand"``), then among ``landmark_names``. Landmarks keep the order in which
            the names list them; repeats are dropped.

        Returns
        -------
        MotionDataset
            Only the chosen landmarks. Groups whose every member was kept are carried over with
            new indices.

        Raises
        ------
        ValueError
            If a name is neither a group nor a landmark.
        """
        names = [group] if isinstance(group, str) else list(group)
        if not names:
            raise ValueError("select_landmarks needs at least one group or landmark name")
        chosen: list[int] = []
        for name in names:
            if name in self.landmark_groups:
                members = self.landmark_groups[name]
            elif name in self.landmark_names:
                members = [self.landmark_names.index(name)]
            else:
                raise ValueError(
                    f"{name!r} is neither a landmark group {sorted(self.landmark_groups)} "
                    f"nor a landmark name of {self.source!r}"
                )
            chosen.extend(j for j in members if j not in chosen)
        new_index = {old: new for new, old in enumerate(chosen)}
        groups = {
            name: [new_index[j] for j in members]
            for name, members in self.landmark_groups.items()
            if all(j in new_index for j in members)
        }
        return replace(
            self,
            sequences=self.sequences[:, :, chosen],
            landmark_names=[self.landmark_names[j] for j in chosen],
            landmark_groups=groups,
        )

    def _missing_blocks(self, x: np.ndarray) -> list[tuple[list[int], np.ndarray]]:
        """For the whole frame and each group: (members, (N, T) mask of degenerate blocks)."""
        blocks = [list(range(self.n_landmarks)), *self.landmark_groups.values()]
        out = []
        # A single landmark always "coincides" with itself: it cannot tell missing from present.
        for members in (b for b in blocks if len(b) > 1):
            part = x[:, :, members]
            # The engine's "missing" rule: all landmarks of the block coincide.
            missing = np.all(part.max(axis=2) == part.min(axis=2), axis=-1)
            out.append((members, missing))
        return out

    def resample(self, frames: int) -> MotionDataset:
        """Resample every sequence to ``frames`` frames by linear interpolation in time.

        Each sequence is stretched over its own valid frames (the first and last valid frames
        are kept). A missing block (all landmarks of the frame, or of a landmark group, at one
        point, e.g. an undetected hand) is never blended with a present one: where either
        neighbour is missing, the nearer frame is copied instead.

        Parameters
        ----------
        frames : int
            New length T' >= 1 of every sequence.

        Returns
        -------
        MotionDataset
            ``sequences`` (N, frames, L, 3), all ``lengths`` equal to ``frames``.

        Raises
        ------
        ValueError
            If ``frames`` < 1.
        """
        if int(frames) < 1:
            raise ValueError(f"frames must be at least 1, got {frames}")
        frames = int(frames)
        x = np.asarray(self.sequences)
        n = len(self)
        step = np.linspace(0.0, 1.0, frames) if frames > 1 else np.zeros(1)
        position = step[None, :] * (self.lengths[:, None] - 1)  # (N, T')
        lower = np.floor(position).astype(np.int64)
        upper = np.minimum(lower + 1, self.lengths[:, None] - 1)
        weight = (position - lower)[:, :, None, None].astype(np.float32)
        rows = np.arange(n)[:, None]
        a, b = x[rows, lower], x[rows, upper]  # (N, T', L, 3)
        out = (1.0 - weight) * a + weight * b
        nearest = np.where(weight < 0.5, a, b)
        for members, missing in self._missing_blocks(x):
            snap = missing[rows, lower] | missing[rows, upper]  # (N, T')
            if snap.any():
                part = out[:, :, members]
                part[snap] = nearest[:, :, members][snap]
                out[:, :, members] = part
        return replace(self, sequences=out, lengths=np.full(n, frames, dtype=np.int64))

    def batches(
        self,
        batch_size: int,
        *,
        shuffle: bool = False,
        seed: int | None = None,
        device: torch.device | str | None = None,
    ) -> Iterator[Batch]:
        """Yield mini-batches as PyTorch tensors with a padding mask.

        Parameters
        ----------
        batch_size : int
            Sequences per batch (the last batch may be smaller).
        shuffle : bool
            Visit the rows in a random order.
        seed : int | None
            Seed for the order when ``shuffle`` (None: a fresh random order).
        device : torch.device | str | None
            Where to put the tensors (None: CPU).

        Yields
        ------
        Batch
            ``inputs`` (B, T_batch, L*3) float32 with T_batch the longest length in the batch,
            ``padding_mask`` (B, T_batch) True on padding, ``labels``, ``index``.

        Raises
        ------
        ValueError
            If ``batch_size`` < 1.
        """
        import torch

        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        order = np.arange(len(self))
        if shuffle:
            order = np.random.default_rng(seed).permutation(len(self))
        width = self.n_landmarks * 3
        for start in range(0, len(self), int(batch_size)):
            rows = order[start : start + int(batch_size)]
            lengths = self.lengths[rows]
            t_batch = int(lengths.max())
            inputs = np.asarray(self.sequences[rows, :t_batch], dtype=np.float32)
            mask = np.arange(t_batch)[None, :] >= lengths[:, None]
            yield Batch(
                inputs=torch.from_numpy(inputs.reshape(len(rows), t_batch, width)).to(device),
                padding_mask=torch.from_numpy(mask).to(device),
                labels=torch.from_numpy(self.labels[rows].copy()).to(device),
                index=torch.from_numpy(rows.astype(np.int64)).to(device),
            )


@dataclass(eq=False)
class DatasetSplits:
    """Train, validation and test parts of one data set, disjoint in subjects.

    Every choice (k, temperature, epochs, model selection) is made on ``validation``; ``test``
    is read only for the final numbers.

    Parameters
    ----------
    train, validation, test : MotionDataset
        The three parts; they share class names and landmark names.

    Raises
    ------
    ValueError
        If two parts share a subject id or disagree on classes or landmarks.
    """

    train: MotionDataset
    validation: MotionDataset
    test: MotionDataset

    def __post_init__(self) -> None:
        parts = {"train": self.train, "validation": self.validation, "test": self.test}
        for name, part in parts.items():
            if part.class_names != self.train.class_names:
                raise ValueError(f"{name} and train have different class names")
            if part.landmark_names != self.train.landmark_names:
                raise ValueError(f"{name} and train have different landmark names")
        names = list(parts)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                shared = np.intersect1d(parts[a].subjects, parts[b].subjects)
                if shared.size:
                    raise ValueError(
                        f"{a} and {b} share subject {int(shared[0])}; "
                        "splits must be subject-independent"
                    )


def split_dataset(
    dataset: MotionDataset,
    *,
    test_subjects: Iterable[int],
    validation_subjects: Iterable[int] | None = None,
) -> DatasetSplits:
    """Split one dataset into train / validation / test by subject.

    Parameters
    ----------
    dataset : MotionDataset
        All sequences.
    test_subjects : Iterable[int]
        Subjects held out for the final numbers.
    validation_subjects : Iterable[int] | None
        Subjects carved from the remaining (training) subjects for every choice; None takes the
        largest training subject id.

    Returns
    -------
    DatasetSplits

    Raises
    ------
    ValueError
        If a subject is unknown, a validation subject is also a test subject, or no training
        subject would be left.
    """
    test_ids = sorted({int(s) for s in test_subjects})
    test, rest = dataset.split_by_subjects(test_ids)
    training_ids = np.unique(rest.subjects).tolist()
    if validation_subjects is None:
        if len(training_ids) < 2:
            raise ValueError(
                f"cannot carve a validation subject from training subjects {training_ids}"
            )
        validation_ids = [training_ids[-1]]
    else:
        validation_ids = sorted({int(s) for s in validation_subjects})
    for s in validation_ids:
        if s not in training_ids:
            raise ValueError(
                f"validation subject {s} is not a training subject (training: {training_ids})"
            )
    if not validation_ids or len(validation_ids) == len(training_ids):
        raise ValueError(
            f"validation subjects {validation_ids} must be a non-empty proper subset of the "
            f"training subjects {training_ids}"
        )
    validation, train = rest.split_by_subjects(validation_ids)
    return DatasetSplits(train=train, validation=validation, test=test)


def check_values(
    sequences: np.ndarray,
    lengths: np.ndarray | None,
    *,
    where: str,
    array: str = "X",
    landmark_names: Sequence[str] | None = None,
) -> None:
    """Check that every value is finite and, with ``lengths``, that padding is zero.

    Works in chunks of rows, so a memory-mapped array is scanned without being held in memory.

    Parameters
    ----------
    sequences : np.ndarray
        (N, T, ...) values.
    lengths : np.ndarray | None
        (N,) valid frames; None skips the padding check.
    where : str
        The file (or other origin) named in errors.
    array : str
        The array's name in errors.
    landmark_names : Sequence[str] | None
        Names to say which landmark and coordinate a bad value belongs to (the values after the
        first two axes are read as landmarks x 3 coordinates).

    Raises
    ------
    ValueError
        Naming the file, the array and the first bad index ``[i, t, ...]``.
    """
    n, t_max = sequences.shape[:2]
    per_row = max(1, int(np.prod(sequences.shape[1:])))
    step = max(1, _CHUNK_VALUES // per_row)
    for start in range(0, n, step):
        chunk = np.asarray(sequences[start : start + step])
        finite = np.isfinite(chunk)
        if not finite.all():
            bad = tuple(int(v) for v in np.argwhere(~finite)[0])
            bad = (bad[0] + start, *bad[1:])
            value = sequences[bad]
            what = ""
            if landmark_names is not None:
                k = int(np.ravel_multi_index(bad[2:], sequences.shape[2:]))
                what = f" (landmark {k // 3} {landmark_names[k // 3]!r}, {'xyz'[k % 3]})"
            raise ValueError(f"{where}: {array}{list(bad)}{what} is {value}; values must be finite")
        if lengths is None:
            continue
        padding = np.arange(t_max)[None, :] >= lengths[start : start + step, None]
        nonzero = padding & chunk.reshape(chunk.shape[0], t_max, -1).any(axis=2)
        if nonzero.any():
            i, t = (int(v) for v in np.argwhere(nonzero)[0])
            raise ValueError(
                f"{where}: {array}[{i + start}, {t}] is past lengths[{i + start}] = "
                f"{int(lengths[i + start])} but not zero; padding must be zero"
            )
