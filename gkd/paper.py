"""Compatibility mode: the paper's published Procrustes-DTW arithmetic, run faithfully in NumPy.

**Use this only to reproduce the published UTD-MHAD numbers (issue 7); it is not a distance to
use.** gkd's own metrics live in :mod:`gkd.distances`.

Why a NumPy copy when the engine has ``metric="procrustes-paper"``: the engine emulates the
published frame cost in closed form (transposed rotation, per-landmark norm sum, degenerate frames
as zero shapes) and agrees with the published code wherever the rotation is unique. It is not
unique on many frame pairs of the scrambled layout (``load_mhad_all(layout="paper-scrambled")``):
its padding zeros fill whole runs of value slots, and two centred frames whose non-zero slots do not
overlap (or a frame with a single non-zero slot) have a cross-covariance that is rank-1 up to
rounding; about 13 % of random scrambled frame pairs do, and none of the real frames. Every rotation
about the dominant axis is then equally good, and the published value depends on which one LAPACK's
``dgesdd`` (through ``numpy.linalg.svd``) happens to return from the rounding noise. The
per-landmark norm sum is not invariant to that free rotation, so the engine's choice can change
such a frame cost by up to ~0.9 and a sequence distance by several per cent (27 % at worst on the
paper's 322 x 539 matrix, where 2 queries get another nearest reference; 1-NN accuracy 31.99 %
either way). This module makes the same calls as the published code, on bit-identical inputs
where NumPy allows it (see :func:`cross_covariances`), so it inherits LAPACK's choices.

It is slow: one LAPACK SVD per frame pair, about 3.1-3.3 µs per frame pair on one core of the
development machine (two 68-frame sequences: ~15 ms; one query against the paper's 539
references: ~8 s; the paper's 322 x 539 matrix: 42 min). The engine's ``procrustes-paper``
computes that matrix in 2-4 minutes on two threads.

The published frame cost, for frames ``X`` and ``Y`` (``L x 3``):

1. centre each on its centroid and divide by ``‖·‖_F + 1e-15`` (a frame whose landmarks all
   coincide becomes the zero shape);
2. ``A = Xᵀ Y = U S Vᵀ`` (``numpy.linalg.svd``), ``R = U Vᵀ``; when ``det R < 0`` the last row of
   ``Vᵀ`` is negated and ``R = U Vᵀ`` recomputed. This ``R`` is the transpose of the rotation that
   best maps ``Y`` onto ``X``;
3. the cost is ``Σ_l ‖X_l − (Y R)_l‖`` over the landmark rows.

DTW over the frame costs uses steps (1, 0), (0, 1), (1, 1) and sums the costs on the cheapest path,
as the published code and :func:`gkd.cross` do.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from gkd.distances import ProgressCallback, _progress, _sequences

__all__ = [
    "cross_covariances",
    "dtw",
    "frame_costs",
    "normalise_frames",
    "published_distances",
]

# The published code divides by (norm + EPSILON), which turns a degenerate frame into zeros.
EPSILON = 1e-15

# Reference sequences per DTW batch in published_distances.
_DTW_BLOCK = 64


def normalise_frames(frames: ArrayLike) -> NDArray[np.float64]:
    """Centre and scale frames exactly as the published code does.

    Each frame is centred on its centroid and divided by its Frobenius norm plus ``1e-15``, one
    frame at a time with the same NumPy calls as the published code, so the results are bitwise
    those it computed from the same float64 input.

    Parameters
    ----------
    frames : array_like
        ``(T, L, 3)`` frames (converted to float64).

    Returns
    -------
    numpy.ndarray
        float64 ``(T, L, 3)``; a frame whose landmarks all coincide becomes all zeros.

    Raises
    ------
    ValueError
        If ``frames`` is not ``(T, L, 3)``.
    """
    array = np.asarray(frames, dtype=np.float64)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"frames has shape {array.shape}; expected (T, L, 3)")
    out = np.empty_like(array)
    for t, frame in enumerate(array):
        # Per frame on purpose: np.linalg.norm of a 2-D frame is a BLAS dot, whose rounding a
        # batched sum of squares would not reproduce.
        centred = frame - frame.mean(axis=0)
        out[t] = centred / (np.linalg.norm(centred) + EPSILON)
    return out


def cross_covariances(x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.float64]:
    """All frame cross-covariances ``A[i, j] = x[i]ᵀ y[j]`` at once.

    ``numpy.matmul`` over broadcast stacks gives bitwise the values of the published per-pair
    ``X0.T @ Y0`` (checked in the tests); ``numpy.einsum`` rounds differently in the last bits,
    which is enough to change LAPACK's choice of rotation on rank-deficient pairs.

    Parameters
    ----------
    x, y : numpy.ndarray
        Normalised frames, float64 ``(Ta, L, 3)`` and ``(Tb, L, 3)``
        (see :func:`normalise_frames`).

    Returns
    -------
    numpy.ndarray
        float64 ``(Ta, Tb, 3, 3)``.
    """
    return np.matmul(np.swapaxes(x, 1, 2)[:, None], y[None])


def frame_costs(x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.float64]:
    """The published frame cost between every frame of ``x`` and every frame of ``y``.

    Parameters
    ----------
    x, y : numpy.ndarray
        Normalised frames, float64 ``(Ta, L, 3)`` and ``(Tb, L, 3)``
        (see :func:`normalise_frames`).

    Returns
    -------
    numpy.ndarray
        float64 ``(Ta, Tb)``: ``C[i, j] = Σ_l ‖x[i]_l − (y[j] R_ij)_l‖`` with ``R_ij`` the
        published (transposed, det-fixed) rotation from ``numpy.linalg.svd``.

    Raises
    ------
    ValueError
        If the shapes do not match.
    """
    if x.ndim != 3 or y.ndim != 3 or x.shape[1:] != y.shape[1:] or x.shape[2] != 3:
        raise ValueError(
            f"x and y must be normalised frames (T, L, 3) with the same L, got {x.shape} and "
            f"{y.shape}"
        )
    u, _, vt = np.linalg.svd(cross_covariances(x, y))
    rotation = u @ vt
    # The published reflection fix: negate the last row of Vᵀ, then recompute U Vᵀ.
    improper = np.linalg.det(rotation) < 0
    if improper.any():
        vt[improper, -1, :] *= -1
        rotation[improper] = u[improper] @ vt[improper]
    residual = x[:, None] - y[None] @ rotation
    return np.linalg.norm(residual, axis=-1).sum(axis=-1)


def dtw(
    costs: NDArray[np.float64],
    lengths: ArrayLike | None = None,
    *,
    normalize: bool = False,
) -> NDArray[np.float64]:
    """DTW over a stack of cost matrices, vectorised over anti-diagonals.

    Steps (1, 0), (0, 1), (1, 1); the distance is the total cost of the cheapest path from cell
    (0, 0) to cell (Ta − 1, Tb − 1); among paths of equal cost the one with fewer cells is kept,
    as in :func:`gkd.cross`, which matters only with ``normalize``.

    Parameters
    ----------
    costs : numpy.ndarray
        float64 ``(K, Ta, Tb)``: K cost matrices sharing the first sequence's length ``Ta``.
    lengths : array_like of int, optional
        ``(K,)`` second-sequence lengths in ``[1, Tb]``; columns past them are never read.
        Default ``Tb`` for all.
    normalize : bool
        Divide each distance by the number of cells on its best path.

    Returns
    -------
    numpy.ndarray
        float64 ``(K,)``.

    Raises
    ------
    ValueError
        If ``costs`` is not 3-D with at least one frame per axis, or ``lengths`` is unusable.
    """
    costs = np.asarray(costs, dtype=np.float64)
    if costs.ndim != 3 or costs.shape[1] < 1 or costs.shape[2] < 1:
        raise ValueError(f"costs has shape {costs.shape}; expected (K, Ta, Tb) with Ta, Tb >= 1")
    k, n_a, n_b = costs.shape
    ends = np.full(k, n_b, dtype=np.int64) if lengths is None else np.asarray(lengths)
    if ends.shape != (k,) or ends.dtype.kind not in "iu" or np.any((ends < 1) | (ends > n_b)):
        raise ValueError(f"lengths must be {k} integers in [1, {n_b}], got {ends!r}")
    # Tables with a border row and column of +inf, as in the published code; cell (0, 0) of the
    # border is the path's origin. Cells past a sequence's length hold garbage nobody reads:
    # a cell only depends on cells above and to its left.
    total = np.full((k, n_a + 1, n_b + 1), np.inf)
    cells = np.zeros((k, n_a + 1, n_b + 1), dtype=np.int64)
    total[:, 0, 0] = 0.0
    for diagonal in range(2, n_a + n_b + 1):
        i = np.arange(max(1, diagonal - n_b), min(n_a, diagonal - 1) + 1)
        j = diagonal - i
        candidates = np.stack(
            (total[:, i - 1, j], total[:, i, j - 1], total[:, i - 1, j - 1])
        )  # (3, K, n)
        steps = np.stack((cells[:, i - 1, j], cells[:, i, j - 1], cells[:, i - 1, j - 1]))
        best = candidates.min(axis=0)
        # Ties in cost go to the shortest path (lexicographic minimum of (cost, cells)).
        shortest = np.where(candidates == best, steps, np.iinfo(np.int64).max).min(axis=0)
        total[:, i, j] = best + costs[:, i - 1, j - 1]
        cells[:, i, j] = shortest + 1
    rows = np.arange(k)
    result = total[rows, n_a, ends]
    return result / cells[rows, n_a, ends] if normalize else result


def published_distances(
    a: ArrayLike,
    b: ArrayLike,
    *,
    lengths_a: ArrayLike | None = None,
    lengths_b: ArrayLike | None = None,
    normalize: bool = False,
    progress: bool | ProgressCallback | None = None,
) -> NDArray[np.float64]:
    """Procrustes-DTW distances as the paper's published code computed them (slow).

    A compatibility function for reproducing the published UTD-MHAD numbers (issue 7); see the
    module docstring for the arithmetic and why it exists next to the engine's
    ``metric="procrustes-paper"``. Feed it ``load_mhad_all(layout="paper-scrambled")`` sequences
    to get what the paper got. Each frame pair costs one LAPACK SVD: expect about 3.1-3.3 µs per
    frame pair on one core, e.g. ~15 ms for two 68-frame sequences.

    Parameters
    ----------
    a, b : array_like
        Sequences ``(N, T, L, 3)`` or ``(N, T, L·3)``, float32 or float64 (computed in float64,
        as the published code did), with the same L.
    lengths_a, lengths_b : array_like of int, optional
        Valid frames per sequence, in ``[1, T]``; default T. Frames past them are never read.
    normalize : bool
        Divide each distance by its warping path's length (the published code did not).
    progress : bool or callable, optional
        ``True`` draws a progress bar on stderr; a callable receives
        ``(pairs_done, pairs_total)`` after each row of ``a``.

    Returns
    -------
    numpy.ndarray
        float64 ``(N_a, N_b)``; row i holds the distances from ``a[i]`` (the published code's
        test sequence, its ``X``) to every sequence of ``b`` (its training sequences, ``Y``).
        The cost is not symmetric: the order of ``a`` and ``b`` matters.

    Raises
    ------
    ValueError
        If a shape or length is unusable (the message names the array and sequence).
    TypeError
        If an input is not a real-valued array.
    """
    xa, la = _sequences(a, lengths_a, "a")
    xb, lb = _sequences(b, lengths_b, "b")
    if xa.shape[2] != xb.shape[2]:
        raise ValueError(
            f"a and b must have the same number of landmarks, got {xa.shape[2]} and {xb.shape[2]}"
        )
    shapes_b = [normalise_frames(xb[j, : lb[j]]) for j in range(len(xb))]
    width = xb.shape[1]
    out = np.empty((len(xa), len(xb)))
    with _progress(progress, len(xa) * len(xb)) as callback:
        for i in range(len(xa)):
            x = normalise_frames(xa[i, : la[i]])
            # DTW runs on blocks of cost matrices, which bounds memory for long reference lists.
            for start in range(0, len(xb), _DTW_BLOCK):
                block = range(start, min(start + _DTW_BLOCK, len(xb)))
                costs = np.zeros((len(block), len(x), width))
                for k, j in enumerate(block):
                    costs[k, :, : lb[j]] = frame_costs(x, shapes_b[j])
                out[i, block.start : block.stop] = dtw(
                    costs, lb[block.start : block.stop], normalize=normalize
                )
            if callback is not None:
                callback((i + 1) * len(xb), len(xa) * len(xb))
    return out
