"""Blends of two training sequences, for the teacher to label.

A blend is ``w * one + (1 - w) * another`` of two different training sequences, with ``w``
uniform in ``[low, 1]``. Both are first centred and scaled as the student's input (mean of the
centre landmarks over the valid frames, then RMS 1), so bodies of any size and position blend,
and the second is resampled to the first one's length. The blend keeps the first one's length,
label and subject, since the first is always the larger part.

Why: Beyer et al. (Knowledge distillation: a good teacher is patient and consistent, CVPR 2022)
get the most from distillation when the student learns the teacher's output on inputs where it
says more than a label can, blends among them. The teacher's target for a blend comes from its
distances to the training sequences other than its two sources (:meth:`Blends.exclude`), as a
training sequence's own target leaves itself out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from gkd.datasets import MotionDataset

__all__ = ["Blends", "blend_sequences"]


@dataclass(frozen=True)
class Blends:
    """Blended sequences and where they came from.

    Attributes
    ----------
    dataset : MotionDataset
        The blends, each with its first source's length, label and subject; zero at padding.
    sources : np.ndarray of int64, shape (n, 2)
        Rows of the source dataset: the first (weight ``w``) and second (``1 - w``) source.
    weights : np.ndarray of float64, shape (n,)
        Each blend's ``w``.
    """

    dataset: MotionDataset
    sources: NDArray[np.int64]
    weights: NDArray[np.float64]

    def exclude(self, n_references: int) -> NDArray[np.bool_]:
        """(n, n_references) mask for :func:`gkd.teacher.soft_targets`: each blend's sources.

        Passed as ``exclude`` with the source dataset as the references, so that a blend's
        target does not lean on the sequences it was made of.
        """
        if self.sources.size and int(self.sources.max()) >= n_references:
            raise ValueError(
                f"the blends' sources reach row {int(self.sources.max())}, but there are "
                f"only {n_references} references"
            )
        mask = np.zeros((len(self.sources), n_references), dtype=bool)
        rows = np.arange(len(self.sources))
        mask[rows, self.sources[:, 0]] = True
        mask[rows, self.sources[:, 1]] = True
        return mask


def _normalised(points: np.ndarray, centre_landmarks: Sequence[int]) -> np.ndarray:
    """(T, L, 3) centred on the centre landmarks' mean over all frames, then RMS 1."""
    landmarks = list(centre_landmarks) or list(range(points.shape[1]))
    centred = points - points[:, landmarks].mean(axis=(0, 1))
    rms = np.sqrt(np.square(centred).sum() / (points.shape[0] * points.shape[1]))
    return centred / max(float(rms), 1e-6)  # a sequence of one repeated point stays finite


def _resampled(points: np.ndarray, frames: int) -> np.ndarray:
    """(T, L, 3) linearly interpolated to ``frames`` evenly spaced times over the same span."""
    where = np.linspace(0.0, len(points) - 1, frames)
    below = np.floor(where).astype(np.int64)
    above = np.minimum(below + 1, len(points) - 1)
    fraction = (where - below)[:, None, None]
    return points[below] + (points[above] - points[below]) * fraction


def blend_sequences(
    dataset: MotionDataset,
    count: int,
    *,
    seed: int,
    low: float = 0.5,
    centre_landmarks: Sequence[int] = (),
) -> Blends:
    """``count`` blends of two different sequences of ``dataset`` (see the module docstring).

    Parameters
    ----------
    dataset : MotionDataset
        The sequences to blend: the training set. At least two when ``count`` > 0.
    count : int
        How many blends (>= 0); pairs are drawn with replacement.
    seed : int
        Seed of the draws of pairs and weights; the same seed gives the same blends.
    low : float, default 0.5
        Smallest weight of the first source, in [0.5, 1]: the blend takes the first source's
        label, so that source must be at least half of it.
    centre_landmarks : sequence of int, default ()
        Landmarks whose mean is the centre point (the student's
        ``Preprocessing.centre_landmarks``); empty means all landmarks.

    Returns
    -------
    Blends
        The blends as a dataset (float32, ``dataset``'s padded frame count), their source rows
        and weights.

    Raises
    ------
    ValueError
        If ``count`` or ``low`` is out of range, ``dataset`` has fewer than two sequences to
        blend, or a centre landmark does not exist.
    """
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
        raise ValueError(f"count must be an integer >= 0, got {count!r}")
    if not 0.5 <= low <= 1.0:
        raise ValueError(
            f"low must be in [0.5, 1] (the first source gives the blend its label), got {low!r}"
        )
    if count and len(dataset) < 2:
        raise ValueError(f"blending needs at least two sequences, the dataset has {len(dataset)}")
    bad = [i for i in centre_landmarks if not 0 <= i < dataset.n_landmarks]
    if bad:
        raise ValueError(
            f"centre_landmarks {bad} do not exist: the dataset has {dataset.n_landmarks} landmarks"
        )
    rng = np.random.default_rng(seed)
    n_sequences = max(len(dataset), 2)  # count 0: nothing is drawn, from any dataset
    first = rng.integers(n_sequences, size=count)
    # A different second source: shift by 1 .. N-1 places.
    second = (first + rng.integers(1, n_sequences, size=count)) % n_sequences
    weights = rng.uniform(low, 1.0, size=count)
    shape = (count, dataset.max_frames, dataset.n_landmarks, 3)
    sequences = np.zeros(shape, dtype=np.float32)
    for row, (i, j, w) in enumerate(zip(first, second, weights, strict=True)):
        n = int(dataset.lengths[i])
        one = _normalised(dataset.sequences[i, :n].astype(np.float64), centre_landmarks)
        other = dataset.sequences[j, : dataset.lengths[j]].astype(np.float64)
        other = _resampled(_normalised(other, centre_landmarks), n)
        sequences[row, :n] = w * one + (1.0 - w) * other
    blended = replace(
        dataset,
        sequences=sequences,
        lengths=dataset.lengths[first].copy(),
        labels=dataset.labels[first].copy(),
        subjects=dataset.subjects[first].copy(),
    )
    return Blends(blended, np.stack([first, second], axis=1).astype(np.int64), weights)
