"""The geometric teacher: k-NN votes and soft targets from a distance matrix.

Everything here works on plain distance matrices, rows = queries and columns = references
(for example ``gkd.cross(test, train)`` or ``gkd.pairwise(train)``), so it does not depend on
how the distances were computed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "DEFAULT_TEMPERATURE",
    "MHAD_BLENDS",
    "MHAD_LEAD",
    "choose_k",
    "knn_predict",
    "soft_targets",
]

Weighting = Literal["uniform", "distance"]
Normalization = Literal["global", "row", "none"]

# Soft-target temperature on min-max scaled distances. Chosen by leave-one-subject-out
# cross-validation of the distilled student on UTD-MHAD subjects 1, 3 and 5 (training subjects
# of both protocols; benches/tune_mhad.py): 0.05-0.5 scored alike (88.6-89.2 %), 0.02 and
# the cross-entropy choice (0.005-0.01, near one-hot targets) 4-5 points lower (seed 0).
DEFAULT_TEMPERATURE = 0.1

# The teacher of `gkd-run mhad` (UTD-MHAD only: the lead is in frames at 30 frames a second, and
# neither fits the hand metric): frames that carry each landmark's motion 10 frames ahead, and
# two teacher-labelled blends of training sequences per training sequence for the distilled
# student. Together they raised the distilled student by 1.57 points (SE 0.74, 8 of 12 won) in
# the cross-validation on UTD-MHAD training subjects 1, 3, 5 (docs/results.md).
MHAD_LEAD = 10.0
MHAD_BLENDS = 2.0

# Rows handled at once by soft_targets: bounds the temporary (rows, M) float64 arrays.
_CHUNK_ROWS = 512


def _check_distances(distances: ArrayLike, name: str = "distances") -> np.ndarray:
    array = np.asarray(distances)
    if array.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D (queries, references) array, got shape {array.shape}"
        )
    if array.shape[1] == 0:
        raise ValueError(f"{name} has no reference columns (shape {array.shape})")
    if not np.issubdtype(array.dtype, np.floating) and not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"{name} must be a real numeric array, got dtype {array.dtype}")
    if not np.all(np.isfinite(array)):
        bad = np.argwhere(~np.isfinite(array))[0]
        raise ValueError(f"{name} must be finite; entry {tuple(int(i) for i in bad)} is not")
    if array.size and array.min() < 0:
        bad = np.unravel_index(int(np.argmin(array)), array.shape)
        raise ValueError(f"{name} must be non-negative; entry {tuple(int(i) for i in bad)} is < 0")
    return array


def _check_labels(
    labels: ArrayLike, n: int, name: str, n_classes: int | None
) -> tuple[np.ndarray, int]:
    array = np.asarray(labels)
    if array.ndim != 1 or array.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},), got {array.shape}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"{name} must hold integer class indices, got dtype {array.dtype}")
    array = array.astype(np.int64, copy=False)
    if array.size and array.min() < 0:
        raise ValueError(f"{name} must be >= 0; {name}[{int(np.argmin(array))}] is negative")
    if n_classes is None:
        n_classes = int(array.max()) + 1 if array.size else 0
    elif n_classes < 1:
        raise ValueError(f"n_classes must be >= 1, got {n_classes}")
    elif array.size and array.max() >= n_classes:
        i = int(np.argmax(array))
        raise ValueError(f"{name}[{i}] = {array[i]} is not below n_classes = {n_classes}")
    return array, n_classes


@dataclass(frozen=True)
class _LeftOut:
    """Entries a query may not use: its own (``self_index``) and any in ``exclude``."""

    self_index: np.ndarray | None
    exclude: np.ndarray | None
    n_refs: int

    def mask(self, rows: slice, n_rows: int) -> np.ndarray:
        """Boolean (rows, M) mask, True where the reference is left out."""
        if self.exclude is not None:
            mask = self.exclude[rows].copy()
        else:
            mask = np.zeros((n_rows, self.n_refs), dtype=bool)
        if self.self_index is not None:
            own = self.self_index[rows]
            keep = own >= 0  # a negative self_index means "this query has no own entry"
            mask[np.nonzero(keep)[0], own[keep]] = True
        return mask

    def usable(self, n_queries: int) -> np.ndarray:
        """Number of references each query may use, shape (Q,)."""
        counts = np.empty(n_queries, dtype=np.int64)
        for start in range(0, n_queries, _CHUNK_ROWS):
            rows = slice(start, min(start + _CHUNK_ROWS, n_queries))
            block = self.mask(rows, rows.stop - rows.start)
            counts[rows] = self.n_refs - block.sum(axis=1)
        return counts


def _check_left_out(
    self_index: ArrayLike | None, exclude: ArrayLike | None, n_queries: int, n_refs: int
) -> _LeftOut:
    own = None
    if self_index is not None:
        own = np.asarray(self_index)
        if own.ndim != 1 or own.shape[0] != n_queries:
            raise ValueError(f"self_index must have shape ({n_queries},), got {own.shape}")
        if own.size and not np.issubdtype(own.dtype, np.integer):
            raise TypeError(f"self_index must hold integer column indices, got dtype {own.dtype}")
        own = own.astype(np.int64, copy=False)
        if own.size and own.max() >= n_refs:
            i = int(np.argmax(own))
            raise ValueError(f"self_index[{i}] = {own[i]} is not a column (there are {n_refs})")
    mask = None
    if exclude is not None:
        mask = np.asarray(exclude)
        if mask.shape != (n_queries, n_refs):
            raise ValueError(
                f"exclude must have the shape of distances {(n_queries, n_refs)}, got {mask.shape}"
            )
        if mask.dtype != np.bool_:
            raise TypeError(f"exclude must be a boolean mask, got dtype {mask.dtype}")
    return _LeftOut(own, mask, n_refs)


def _sorted_neighbours(
    distances: np.ndarray, k: int, left_out: _LeftOut
) -> tuple[np.ndarray, np.ndarray]:
    """Columns and distances of each row's k nearest usable references, nearest first.

    Ties in distance go to the lower column index (stable sort), so results are deterministic.
    """
    n_queries = distances.shape[0]
    work = distances.astype(np.float64, copy=True)
    available = left_out.usable(n_queries)
    if n_queries and available.min() < k:
        i = int(np.argmin(available))
        raise ValueError(
            f"k = {k} neighbours requested but query {i} has only {int(available[i])} references"
        )
    work[left_out.mask(slice(None), n_queries)] = np.inf
    order = np.argsort(work, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(work, order, axis=1)


def _vote(
    neighbour_labels: np.ndarray,
    neighbour_distances: np.ndarray,
    n_classes: int,
    weighting: Weighting,
) -> np.ndarray:
    """Majority (or 1/d-weighted) vote; a tie goes to the tied class with the nearest member."""
    n_queries, k = neighbour_labels.shape
    rows = np.arange(n_queries)
    if weighting == "uniform":
        weights = np.ones((n_queries, k))
    else:
        exact = neighbour_distances == 0
        with np.errstate(divide="ignore"):
            weights = 1.0 / neighbour_distances
        # An exact match outweighs everything else: only the zero-distance neighbours vote.
        has_exact = exact.any(axis=1)
        weights[has_exact] = exact[has_exact].astype(np.float64)
    votes = np.zeros((n_queries, n_classes))
    first_rank = np.full((n_queries, n_classes), k, dtype=np.int64)
    for j in range(k - 1, -1, -1):  # descending, so the nearest rank is written last
        votes[rows, neighbour_labels[:, j]] += weights[:, j]
        first_rank[rows, neighbour_labels[:, j]] = j
    best = votes.max(axis=1, keepdims=True)
    tied = votes >= best * (1.0 - 1e-12)
    return np.argmin(np.where(tied, first_rank, k + 1), axis=1)


def knn_predict(
    distances: ArrayLike,
    reference_labels: ArrayLike,
    *,
    k: int = 1,
    weighting: Weighting = "uniform",
    n_classes: int | None = None,
    self_index: ArrayLike | None = None,
    exclude: ArrayLike | None = None,
) -> np.ndarray:
    """Predict each query's class by a vote of its k nearest references.

    Parameters
    ----------
    distances : array_like, shape (Q, M)
        Non-negative distances from Q queries (rows) to M references (columns).
    reference_labels : array_like of int, shape (M,)
        Class index of each reference.
    k : int, default 1
        Number of neighbours that vote.
    weighting : {"uniform", "distance"}, default "uniform"
        ``"uniform"``: one vote each; ``"distance"``: votes weighted by 1/d (a neighbour at
        distance 0 outweighs all others).
    n_classes : int, optional
        Number of classes; defaults to ``max(reference_labels) + 1``.
    self_index : array_like of int, shape (Q,), optional
        Column of each query's own entry, left out of the vote (leave-one-out on a
        train x train matrix); a negative value means the query has none.
    exclude : array_like of bool, shape (Q, M), optional
        True where a reference may not vote for that query, e.g. leave-subject-out with
        ``subjects_q[:, None] == subjects_m[None, :]``.

    Returns
    -------
    numpy.ndarray of int64, shape (Q,)
        Predicted class per query. Ties in distance go to the lower column; ties in votes go to
        the tied class whose member is nearest.

    Raises
    ------
    ValueError
        If shapes disagree, distances are negative or not finite, ``k`` is out of range or
        ``weighting`` is unknown.
    """
    d = _check_distances(distances)
    n_queries, n_refs = d.shape
    labels, n_classes = _check_labels(reference_labels, n_refs, "reference_labels", n_classes)
    _check_weighting(weighting)
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    left_out = _check_left_out(self_index, exclude, n_queries, n_refs)
    order, near = _sorted_neighbours(d, int(k), left_out)
    return _vote(labels[order], near, n_classes, weighting)


def _check_weighting(weighting: str) -> None:
    if weighting not in ("uniform", "distance"):
        raise ValueError(f"weighting must be 'uniform' or 'distance', got {weighting!r}")


def choose_k(
    distances: ArrayLike,
    reference_labels: ArrayLike,
    query_labels: ArrayLike,
    *,
    ks: Iterable[int] = (1, 3, 5, 7, 9, 11, 15),
    weighting: Weighting = "uniform",
    self_index: ArrayLike | None = None,
    exclude: ArrayLike | None = None,
) -> tuple[int, dict[int, float]]:
    """Choose the number of neighbours by accuracy on labelled queries (the validation split).

    Parameters
    ----------
    distances : array_like, shape (Q, M)
        Distances from the validation queries to the references.
    reference_labels : array_like of int, shape (M,)
        Class index of each reference.
    query_labels : array_like of int, shape (Q,)
        True class of each query.
    ks : iterable of int, default (1, 3, 5, 7, 9, 11, 15)
        Candidates; those larger than the number of usable references are skipped.
    weighting : {"uniform", "distance"}, default "uniform"
        Vote weighting, as in :func:`knn_predict`.
    self_index : array_like of int, shape (Q,), optional
        Own entry of each query, left out (leave-one-out), as in :func:`knn_predict`.
    exclude : array_like of bool, shape (Q, M), optional
        References left out per query, as in :func:`knn_predict`.

    Returns
    -------
    best_k : int
        The candidate with the highest accuracy; the smallest such k on a tie.
    accuracy : dict[int, float]
        Accuracy (0..1) of every evaluated k, in increasing k.

    Raises
    ------
    ValueError
        If there are no queries, no candidate is usable, or inputs are malformed.
    """
    d = _check_distances(distances)
    n_queries, n_refs = d.shape
    if n_queries == 0:
        raise ValueError("choose_k needs at least one query row in distances")
    ref_labels, n_classes = _check_labels(reference_labels, n_refs, "reference_labels", None)
    truth, _ = _check_labels(query_labels, n_queries, "query_labels", None)
    n_classes = max(n_classes, int(truth.max()) + 1)
    _check_weighting(weighting)
    left_out = _check_left_out(self_index, exclude, n_queries, n_refs)
    usable = int(left_out.usable(n_queries).min())
    candidates = sorted({int(k) for k in ks})
    if any(k < 1 for k in candidates):
        raise ValueError(f"ks must be positive integers, got {candidates}")
    candidates = [k for k in candidates if k <= usable]
    if not candidates:
        raise ValueError(f"no k in ks is <= the {usable} usable references")
    order, near = _sorted_neighbours(d, candidates[-1], left_out)
    neighbour_labels = ref_labels[order]
    scores: dict[int, float] = {}
    for k in candidates:
        predicted = _vote(neighbour_labels[:, :k], near[:, :k], n_classes, weighting)
        scores[k] = float(np.mean(predicted == truth))
    best = max(candidates, key=lambda k: (scores[k], -k))
    return best, scores


def soft_targets(
    distances: ArrayLike,
    reference_labels: ArrayLike,
    *,
    n_classes: int,
    temperature: float = DEFAULT_TEMPERATURE,
    normalization: Normalization = "global",
    self_index: ArrayLike | None = None,
    exclude: ArrayLike | None = None,
    k: int | None = None,
) -> np.ndarray:
    """Turn distances into class probabilities: the teacher's soft targets.

    For query i, ``p_example[i, j] = softmax_j(-d̃[i, j] / temperature)`` over the references j
    that are used, and ``p_class[i, c]`` is the sum of ``p_example[i, j]`` over the references of
    class c (a product with the one-hot label matrix). Computed with the log-sum-exp shift, so
    large distances or small temperatures do not overflow.

    Parameters
    ----------
    distances : array_like, shape (Q, M)
        Non-negative distances from Q queries to M references.
    reference_labels : array_like of int, shape (M,)
        Class index of each reference, in ``0 .. n_classes - 1``.
    n_classes : int
        Number of classes C.
    temperature : float, default DEFAULT_TEMPERATURE (0.1)
        Softmax temperature on the normalised distances; smaller is sharper. With global
        min-max normalisation, 1.0 gives nearly uniform targets; see ``DEFAULT_TEMPERATURE``
        for how 0.1 was chosen.
    normalization : {"global", "row", "none"}, default "global"
        How ``d̃`` is obtained: ``"global"`` min-max scales by the smallest and largest used
        entry of the whole matrix (the paper's choice), ``"row"`` by each row's own, ``"none"``
        uses the raw distances. Left-out entries never enter the minimum or maximum.
    self_index : array_like of int, shape (Q,), optional
        Column of each query's own entry (for a train x train matrix ``arange(N)``), which is
        left out: keeping its zero distance would leak the query's label into its target. A
        negative value means the query has no own entry.
    exclude : array_like of bool, shape (Q, M), optional
        Further entries to leave out, True where a reference may not be used for that query;
        e.g. leave-subject-out targets, ``subjects[:, None] == subjects[None, :]``, which
        describe how a sample looks from the other subjects only.
    k : int, optional
        Use only each query's k nearest references (after leaving out the entries above).

    Returns
    -------
    numpy.ndarray of float64, shape (Q, C)
        Soft targets; each row sums to 1.

    Raises
    ------
    ValueError
        If shapes disagree, distances are negative or not finite, ``temperature`` is not a
        positive finite number, ``normalization`` is unknown, ``k`` is out of range or a row
        is left with no reference.
    """
    d = _check_distances(distances)
    n_queries, n_refs = d.shape
    labels, n_classes = _check_labels(reference_labels, n_refs, "reference_labels", n_classes)
    if not np.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"temperature must be a positive finite number, got {temperature!r}")
    if normalization not in ("global", "row", "none"):
        raise ValueError(f"normalization must be 'global', 'row' or 'none', got {normalization!r}")
    left_out = _check_left_out(self_index, exclude, n_queries, n_refs)
    usable = int(left_out.usable(n_queries).min()) if n_queries else n_refs
    if usable < 1:
        raise ValueError("some query has every reference left out: nothing is left")
    if k is not None:
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
            raise ValueError(f"k must be a positive integer or None, got {k!r}")
        if k > usable:
            raise ValueError(f"k = {k} is more than the {usable} references a query can use")

    low = high = 0.0
    if normalization == "global":
        low, high = np.inf, -np.inf
        for start in range(0, n_queries, _CHUNK_ROWS):
            rows = slice(start, min(start + _CHUNK_ROWS, n_queries))
            block = d[rows].astype(np.float64)
            used = ~left_out.mask(rows, block.shape[0])
            low = min(low, float(block[used].min()))
            high = max(high, float(block[used].max()))

    one_hot = np.zeros((n_refs, n_classes))
    one_hot[np.arange(n_refs), labels] = 1.0
    out = np.empty((n_queries, n_classes))
    for start in range(0, n_queries, _CHUNK_ROWS):
        rows = slice(start, min(start + _CHUNK_ROWS, n_queries))
        block = d[rows].astype(np.float64)
        left = left_out.mask(rows, block.shape[0])
        unused = left
        if k is not None:
            ranked = np.argsort(np.where(left, np.inf, block), axis=1, kind="stable")
            unused = np.ones_like(left)
            np.put_along_axis(unused, ranked[:, :k], False, axis=1)
        if normalization == "global":
            scaled = (block - low) / (high - low) if high > low else np.zeros_like(block)
        elif normalization == "row":
            # Each row's range over all its usable entries, so k only truncates.
            masked = np.where(left, np.nan, block)
            row_low = np.nanmin(masked, axis=1, keepdims=True)
            row_span = np.nanmax(masked, axis=1, keepdims=True) - row_low
            safe_span = np.where(row_span > 0, row_span, 1.0)
            scaled = np.where(row_span > 0, (block - row_low) / safe_span, 0.0)
        else:
            scaled = block
        logits = np.where(unused, -np.inf, -scaled / temperature)
        logits -= logits.max(axis=1, keepdims=True)  # log-sum-exp shift: the best entry is 0
        weights = np.exp(logits)
        weights /= weights.sum(axis=1, keepdims=True)
        probs = weights @ one_hot
        out[rows] = probs / probs.sum(axis=1, keepdims=True)
    return out
