"""Plain NumPy reference for gkd's frame costs and DTW: the oracle the engine is tested against.

Slow on purpose and written to be read: one explicit 3 x 3 SVD per frame pair (with the reflection
fix), and one full DTW table per sequence pair. Nothing here imports gkd, so the reference can be
checked on its own (``tests/test_distances_reference.py``) before it is used to check the engine.

Definitions (the interface contract and issue 2):

* A frame is ``L`` landmarks x 3 coordinates. It is *missing* when all its landmarks coincide
  (for example the all-zero block MediaPipe writes when a hand is not detected). Missing vs missing
  costs 0; missing vs present costs ``missing_cost``.
* ``"procrustes"``: centre each frame on its centroid, scale to unit Frobenius norm; the cost is the
  smallest ``||X - Y R||_F`` over proper rotations ``R`` (``det R = +1``).
* ``"procrustes-sum"``: the same optimal rotation; the cost is the sum over landmarks of the
  Euclidean distance between ``X`` and ``Y R``.
* ``"hand"``: landmark 0 (the wrist) is the anchor; landmarks ``1..L-1`` relative to it, scaled to
  unit Frobenius norm. ``f1`` = Frobenius residual after the optimal proper rotation, ``f2`` = the
  squared angle of that rotation, ``f3`` = distance between the two raw wrists; the cost is
  ``f1/sigma_shape + f2/sigma_angle + max(f3 - wrist_margin, 0)**2 / sigma_wrist``.
* ``"procrustes-paper"``: the paper's published code, defects included: ``A = X^T Y = U S V^T``,
  ``R = U V^T`` (the *transpose* of the optimal rotation), flipping the last row of ``V^T`` when
  ``det R < 0``; the cost is the sum over landmarks of the norms of the rows of ``X - Y R``.
  The published code scales by ``1 / (norm + 1e-15)``, so a missing frame becomes the zero shape
  and costs the sum of the other frame's landmark norms; that is what ``missing_cost=None`` does
  for this metric (the scrambled UTD-MHAD layout of issue 7 contains such all-zero frames).
* DTW: steps (1, 0), (0, 1), (1, 1); the distance is the total cost of the cheapest path from the
  first to the last cell. A Sakoe-Chiba band of half-width ``band`` keeps cells with
  ``|i - j| <= max(band, |Ta - Tb|)``. With ``normalize=True`` the distance is divided by the
  number of cells on the best path; among paths of equal total cost the shortest one is best.
* Motion (``with_motion``): a sequence's frame ``t`` of ``L`` landmarks becomes ``2L``: the
  landmarks, then each moved ``lead`` frames ahead along its velocity, ``x[t] + lead * v[t]``,
  where ``v[t] = (x[t+1] - x[t-1]) / 2`` inside the sequence, ``x[1] - x[0]`` at its first frame,
  ``x[T-1] - x[T-2]`` at its last, and zero when it has one frame.
"""

from __future__ import annotations

import math

import numpy as np

METRICS = ("procrustes", "procrustes-sum", "hand", "procrustes-paper")

# The paper's hand-cost constants (sigma_1, sigma_2, sigma_3 and the wrist margin delta).
SIGMA_SHAPE = 0.5110750971721483
SIGMA_ANGLE = 1.6964131956660402
SIGMA_WRIST = 0.1190637305732086
WRIST_MARGIN = 0.20439801800608812


def is_missing(frame: np.ndarray) -> bool:
    """Whether all landmarks of one ``(L, 3)`` frame coincide (a missing / degenerate frame)."""
    return bool(np.all(frame == frame[0]))


def normalise(frame: np.ndarray, metric: str) -> np.ndarray:
    """Translate and scale one present ``(L, 3)`` frame as ``metric`` prescribes.

    Returns the centred frame at unit Frobenius norm, or for ``"hand"`` the ``(L - 1, 3)``
    landmarks relative to the wrist (landmark 0) at unit Frobenius norm.
    """
    frame = np.asarray(frame, dtype=np.float64)
    # "hand" anchors on the wrist (landmark 0); the others centre on the centroid.
    shape = frame[1:] - frame[0] if metric == "hand" else frame - frame.mean(axis=0)
    return shape / np.linalg.norm(shape)


def optimal_rotation(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The proper rotation ``R`` (3 x 3, ``det R = +1``) that minimises ``||x - y R||_F``.

    Kabsch: with ``y^T x = U S V^T``, ``R = U D V^T`` where ``D = diag(1, 1, sign det(U V^T))``
    turns an improper solution (a reflection) into the best proper one.
    """
    u, _, vt = np.linalg.svd(y.T @ x)
    d = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    return u @ d @ vt


def rotation_angle(rotation: np.ndarray) -> float:
    """The angle (radians, in [0, pi]) of a 3 x 3 rotation matrix, from its trace."""
    cosine = (np.trace(rotation) - 1.0) / 2.0
    return float(np.arccos(np.clip(cosine, -1.0, 1.0)))


def paper_rotation(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The rotation the paper's published code applies to ``y`` (the transpose of the optimum)."""
    u, _, vt = np.linalg.svd(x.T @ y)
    rotation = u @ vt
    if np.linalg.det(rotation) < 0:
        vt[-1, :] *= -1
        rotation = u @ vt
    return rotation


def default_missing_cost(
    metric: str,
    n_landmarks: int,
    *,
    sigma_shape: float = SIGMA_SHAPE,
    sigma_angle: float = SIGMA_ANGLE,
) -> float:
    """The contract's default cost of a missing frame against a present one.

    The largest value the metric takes on present frames: the residual after the optimal rotation
    is at most ``sqrt(2)`` for unit-norm frames, so a sum of ``L`` per-landmark norms is at most
    ``sqrt(2 L)`` (Cauchy-Schwarz), and a rotation angle is at most ``pi``. For ``"hand"`` the wrist
    term is unbounded and left out here; tests pass the engine's documented value explicitly.
    ``"procrustes-paper"`` gets ``2 sqrt(L)`` here, but :func:`frame_cost` with
    ``missing_cost=None`` emulates the published code for it instead (see the module docstring).
    """
    if metric == "procrustes":
        return math.sqrt(2.0)
    if metric == "procrustes-sum":
        return math.sqrt(2.0 * n_landmarks)
    if metric == "procrustes-paper":
        # The transposed rotation is not optimal: the residual can reach 2, so 2 sqrt(L).
        return 2.0 * math.sqrt(n_landmarks)
    if metric == "hand":
        return math.sqrt(2.0) / sigma_shape + math.pi**2 / sigma_angle
    raise ValueError(f"unknown metric {metric!r}")


def frame_cost(
    frame_a: np.ndarray,
    frame_b: np.ndarray,
    *,
    metric: str = "procrustes",
    missing_cost: float | None = None,
    sigma_shape: float = SIGMA_SHAPE,
    sigma_angle: float = SIGMA_ANGLE,
    sigma_wrist: float = SIGMA_WRIST,
    wrist_margin: float = WRIST_MARGIN,
) -> float:
    """The cost between two ``(L, 3)`` frames under ``metric`` (see the module docstring).

    ``missing_cost=None`` means :func:`default_missing_cost`.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}")
    frame_a = np.asarray(frame_a, dtype=np.float64)
    frame_b = np.asarray(frame_b, dtype=np.float64)
    missing_a, missing_b = is_missing(frame_a), is_missing(frame_b)
    if missing_a and missing_b:
        return 0.0
    if missing_a or missing_b:
        if metric == "procrustes-paper" and missing_cost is None:
            # Published code: the missing frame is the zero shape, rotations keep row norms.
            present = frame_b if missing_a else frame_a
            return float(np.sum(np.linalg.norm(normalise(present, metric), axis=1)))
        if missing_cost is None:
            missing_cost = default_missing_cost(
                metric, len(frame_a), sigma_shape=sigma_shape, sigma_angle=sigma_angle
            )
        return float(missing_cost)

    x = normalise(frame_a, metric)
    y = normalise(frame_b, metric)
    if metric == "procrustes-paper":
        residual = x - y @ paper_rotation(x, y)
        return float(np.sum(np.linalg.norm(residual, axis=1)))

    rotation = optimal_rotation(x, y)
    residual = x - y @ rotation
    if metric == "procrustes":
        return float(np.linalg.norm(residual))
    if metric == "procrustes-sum":
        return float(np.sum(np.linalg.norm(residual, axis=1)))
    # "hand"
    f1 = float(np.linalg.norm(residual))
    f2 = rotation_angle(rotation) ** 2
    f3 = float(np.linalg.norm(frame_a[0] - frame_b[0]))
    return f1 / sigma_shape + f2 / sigma_angle + max(f3 - wrist_margin, 0.0) ** 2 / sigma_wrist


def cost_matrix(seq_a: np.ndarray, seq_b: np.ndarray, **options: float | str | None) -> np.ndarray:
    """All frame costs ``C[i, j] = frame_cost(seq_a[i], seq_b[j])`` for ``(T, L, 3)`` sequences."""
    costs = np.empty((len(seq_a), len(seq_b)))
    for i, frame_a in enumerate(seq_a):
        for j, frame_b in enumerate(seq_b):
            costs[i, j] = frame_cost(frame_a, frame_b, **options)  # type: ignore[arg-type]
    return costs


def dtw(costs: np.ndarray, *, band: int | None = None, normalize: bool = False) -> float:
    """DTW over a full ``(Ta, Tb)`` cost matrix: an explicit table of (total cost, path length).

    Each cell keeps the best (cheapest, then shortest) path reaching it; comparing the pairs
    lexicographically is exact because every step adds the same (cost, 1) to all candidates.
    """
    n_a, n_b = costs.shape
    width = None if band is None else max(band, abs(n_a - n_b))
    best: list[list[tuple[float, int] | None]] = [[None] * n_b for _ in range(n_a)]
    for i in range(n_a):
        for j in range(n_b):
            if width is not None and abs(i - j) > width:
                continue  # outside the Sakoe-Chiba band
            if i == 0 and j == 0:
                best[i][j] = (float(costs[0, 0]), 1)
                continue
            predecessors = []
            if i > 0:
                predecessors.append(best[i - 1][j])
            if j > 0:
                predecessors.append(best[i][j - 1])
            if i > 0 and j > 0:
                predecessors.append(best[i - 1][j - 1])
            reachable = [p for p in predecessors if p is not None]
            total, length = min(reachable)
            best[i][j] = (total + float(costs[i, j]), length + 1)
    final = best[n_a - 1][n_b - 1]
    assert final is not None  # the widened band always contains a path
    total, length = final
    return total / length if normalize else total


def distance(
    seq_a: np.ndarray,
    seq_b: np.ndarray,
    *,
    band: int | None = None,
    normalize: bool = False,
    **options: float | str | None,
) -> float:
    """Frame-cost DTW distance between two ``(T, L, 3)`` sequences (already cut to length)."""
    return dtw(cost_matrix(seq_a, seq_b, **options), band=band, normalize=normalize)


def with_motion(sequence: np.ndarray, lead: float) -> np.ndarray:
    """One ``(T, L, 3)`` sequence (cut to length) as ``(T, 2L, 3)``: landmarks, then motion."""
    sequence = np.asarray(sequence, dtype=np.float64)
    n_frames = len(sequence)
    out = []
    for t in range(n_frames):
        if n_frames == 1:
            velocity = np.zeros_like(sequence[t])
        elif t == 0:
            velocity = sequence[1] - sequence[0]
        elif t == n_frames - 1:
            velocity = sequence[t] - sequence[t - 1]
        else:
            velocity = (sequence[t + 1] - sequence[t - 1]) / 2
        out.append(np.concatenate([sequence[t], sequence[t] + lead * velocity]))
    return np.stack(out)


def as_frames(x: np.ndarray) -> np.ndarray:
    """View ``(N, T, L*3)`` input as ``(N, T, L, 3)``; ``(N, T, L, 3)`` passes unchanged."""
    x = np.asarray(x)
    return x.reshape(*x.shape[:2], -1, 3) if x.ndim == 3 else x


def cross(
    a: np.ndarray,
    b: np.ndarray,
    *,
    lengths_a: np.ndarray | None = None,
    lengths_b: np.ndarray | None = None,
    band: int | None = None,
    normalize: bool = False,
    **options: float | str | None,
) -> np.ndarray:
    """Distances between every sequence of ``a`` and every sequence of ``b`` -> ``(N, M)``.

    ``a`` is ``(N, T, L, 3)`` or ``(N, T, L*3)``; frames past ``lengths_a[i]`` are ignored.
    """
    a, b = as_frames(a), as_frames(b)
    lengths_a = np.full(len(a), a.shape[1]) if lengths_a is None else np.asarray(lengths_a)
    lengths_b = np.full(len(b), b.shape[1]) if lengths_b is None else np.asarray(lengths_b)
    out = np.empty((len(a), len(b)))
    for i in range(len(a)):
        for j in range(len(b)):
            out[i, j] = distance(
                a[i, : lengths_a[i]],
                b[j, : lengths_b[j]],
                band=band,
                normalize=normalize,
                **options,
            )
    return out
