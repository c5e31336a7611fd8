"""Procrustes-DTW distance matrices: friendly validation and progress around the Rust engine.

Every frame is compared with every other after removing translation, scale and rotation (the
optimal proper rotation, found in closed form); dynamic time warping aligns the sequences in
time. The heavy lifting happens in ``gkd._core`` with the GIL released, on all cores.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import astuple, dataclass
from typing import Any, Literal, get_args

import numpy as np
from numpy.typing import ArrayLike, NDArray

from gkd import _core

Metric = Literal["procrustes", "procrustes-sum", "hand", "procrustes-paper"]
"""Frame costs the engine knows (see :func:`cross`)."""

METRICS: tuple[str, ...] = get_args(Metric)

MOTION_METRICS: tuple[str, ...] = ("procrustes", "procrustes-sum")
"""Metrics for frames that carry motion (:func:`with_motion`). Not ``hand``: a hand missing
from a frame (all zeros) would make its neighbours' velocities meaningless; not
``procrustes-paper``, which reproduces the paper's pose-only cost."""

ProgressCallback = Callable[[int, int], None]
"""Called as ``progress(pairs_done, pairs_total)`` about twenty times a second."""


@dataclass(frozen=True)
class HandParams:
    """Parameters of the paper's hand cost ``f1/σ1 + f2/σ2 + max(f3 − δ, 0)²/σ3``.

    The defaults are the values the paper fitted on SIGNUM (MediaPipe coordinates).

    Attributes
    ----------
    sigma_shape : float
        σ1, divides f1, the Frobenius residual of the wrist-relative unit-norm shapes after
        the optimal rotation.
    sigma_angle : float
        σ2, divides f2 = θ², the squared angle (radians) of that rotation.
    sigma_wrist : float
        σ3, divides the squared wrist distance beyond the margin.
    wrist_margin : float
        δ, the distance between the two raw wrists that costs nothing.
    """

    sigma_shape: float = 0.5110750971721483
    sigma_angle: float = 1.6964131956660402
    sigma_wrist: float = 0.1190637305732086
    wrist_margin: float = 0.20439801800608812

    def __post_init__(self) -> None:
        for name in ("sigma_shape", "sigma_angle", "sigma_wrist"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"HandParams.{name} must be a finite number > 0, got {value}")
        if not (math.isfinite(self.wrist_margin) and self.wrist_margin >= 0):
            raise ValueError(
                f"HandParams.wrist_margin must be a finite number >= 0, got {self.wrist_margin}"
            )


def max_frame_cost(metric: Metric, n_landmarks: int, *, hand: HandParams | None = None) -> float:
    """The largest cost ``metric`` gives two present frames: the default missing-frame cost.

    ``procrustes``: √2; ``procrustes-sum``: √(2L); ``procrustes-paper``: 2√L;
    ``hand``: √2/σ1 + π²/σ2 (a missing hand has no wrist, so the wrist term is left out).
    """
    _check_metric(metric)
    return _core.max_frame_cost(metric, n_landmarks, _hand_tuple(hand))


def cross(
    a: ArrayLike,
    b: ArrayLike,
    *,
    lengths_a: ArrayLike | None = None,
    lengths_b: ArrayLike | None = None,
    metric: Metric = "procrustes",
    band: int | None = None,
    normalize: bool = False,
    threads: int | None = None,
    progress: bool | ProgressCallback | None = None,
    missing_cost: float | None = None,
    hand: HandParams | None = None,
) -> NDArray[np.float64]:
    """Procrustes-DTW distance from every sequence of ``a`` to every sequence of ``b``.

    Parameters
    ----------
    a, b : array_like
        Sequences, shape ``(N, T, L, 3)`` (or ``(N, T, L·3)``), float32 or float64,
        zero-padded after each sequence's length. ``a`` and ``b`` may differ in N and T
        but not in L.
    lengths_a, lengths_b : array_like of int, optional
        Valid frames of each sequence, in ``[1, T]``; default T. Frames past a sequence's
        length are never read.
    metric : {"procrustes", "procrustes-sum", "hand", "procrustes-paper"}
        The frame cost. ``procrustes``: frames centred and scaled to unit Frobenius norm;
        the smallest residual ``‖X − R·Y‖_F`` over proper rotations. ``procrustes-sum``:
        the same alignment, the sum of per-landmark distances. ``hand``: the paper's hand
        cost (see :class:`HandParams`; landmark 0 is the wrist). ``procrustes-paper``:
        emulates the paper's published code (transposed rotation, per-landmark sum); not a
        distance to use, only to reproduce its numbers.
    band : int, optional
        Sakoe-Chiba half-width in frames; widened to ``|Ta − Tb|`` so a path always exists.
    normalize : bool
        Divide each distance by the length of its warping path.
    threads : int, optional
        Worker threads; default one per core.
    progress : bool or callable, optional
        ``True`` draws a progress bar on stderr; a callable receives ``(done, total)``.
    missing_cost : float, optional
        Cost of a missing frame (all landmarks at one point, e.g. MediaPipe's all-zero
        undetected hand) against a present one; missing against missing costs 0. Default:
        :func:`max_frame_cost`. ``procrustes-paper`` ignores it and does what the published
        code did: a degenerate frame becomes all zeros, costing the other frame's
        Σ per-landmark norms.
    hand : HandParams, optional
        Parameters of the ``hand`` metric.

    Returns
    -------
    numpy.ndarray
        float64, shape ``(N_a, N_b)``.

    Raises
    ------
    ValueError
        A shape, length, parameter or value is unusable (the message names the array,
        sequence and frame), or the result would not fit in memory.
    TypeError
        An input is not a real-valued array.
    KeyboardInterrupt
        Ctrl-C; the computation stops within about a second and returns nothing.
    """
    xa, la = _sequences(a, lengths_a, "a")
    xb, lb = _sequences(b, lengths_b, "b")
    if xa.shape[2] != xb.shape[2]:
        raise ValueError(
            f"a and b must have the same number of landmarks, got {xa.shape[2]} and {xb.shape[2]}"
        )
    options = _engine_options(metric, band, normalize, threads, missing_cost, hand)
    _check_memory(xa.shape[0], xb.shape[0], xa, xb)
    with _progress(progress, xa.shape[0] * xb.shape[0]) as callback:
        return _core.distance_matrix(xa, la, xb, lb, progress=callback, names=("a", "b"), **options)


def pairwise(
    x: ArrayLike,
    *,
    lengths: ArrayLike | None = None,
    metric: Metric = "procrustes",
    band: int | None = None,
    normalize: bool = False,
    threads: int | None = None,
    progress: bool | ProgressCallback | None = None,
    missing_cost: float | None = None,
    hand: HandParams | None = None,
) -> NDArray[np.float64]:
    """Procrustes-DTW distances between all sequences of ``x``.

    Each unordered pair is computed once and mirrored (every ordered pair for the asymmetric
    ``procrustes-paper``); the diagonal is zero. Parameters are those of :func:`cross`.

    Returns
    -------
    numpy.ndarray
        float64, shape ``(N, N)``, symmetric for every metric but ``procrustes-paper``.
    """
    xs, ls = _sequences(x, lengths, "x")
    options = _engine_options(metric, band, normalize, threads, missing_cost, hand)
    n = xs.shape[0]
    _check_memory(n, n, xs)
    pairs = n * (n - 1) if metric == "procrustes-paper" else n * (n - 1) // 2
    with _progress(progress, pairs) as callback:
        return _core.distance_matrix(xs, ls, progress=callback, names=("x", "x"), **options)


def with_motion(
    x: ArrayLike, *, lengths: ArrayLike | None = None, lead: float, name: str = "x"
) -> NDArray[np.floating]:
    """Each frame's landmarks followed by the same landmarks moved ``lead`` frames ahead.

    The Procrustes frame cost sees one pose at a time, so a pose held still and the same pose
    passed through at speed cost nothing to each other. With its velocity carried as ``L``
    more landmarks, ``x[t] + lead · v[t]``, one rotation, scale and translation align where
    each joint is and where it is heading, and the cost keeps every invariance it had.

    Parameters
    ----------
    x : array_like
        Sequences, shape ``(N, T, L, 3)`` (or ``(N, T, L·3)``), as for :func:`cross`.
    lengths : array_like of int, optional
        Valid frames of each sequence; default T. Frames past a length are zero in the
        result, whatever they held.
    lead : float
        Frames ahead, ``>= 0``. The velocity ``v[t]`` is the central difference
        ``(x[t+1] − x[t−1]) / 2``, one-sided at a sequence's first and last frames, zero for a
        sequence of one frame. A lead is a time at the data's frame rate: 10 frames (a third of
        a second at UTD-MHAD's 30 a second) won the teacher's check on its training subjects.
    name : str
        What error messages call ``x``.

    Returns
    -------
    numpy.ndarray
        Shape ``(N, T, 2L, 3)``, float32 or float64 as ``x`` (integers become float64).

    Raises
    ------
    ValueError
        A shape or length is unusable, ``lead`` is negative or not finite, or a valid frame
        holds a value that is not finite (the message names the sequence and frame).
    TypeError
        ``x`` is not a real-valued array.
    """
    check_lead(lead)
    points, valid = _sequences(x, lengths, name)
    in_sequence = np.arange(points.shape[1])[None, :] < valid[:, None]
    bad = in_sequence & ~np.isfinite(points).all(axis=(2, 3))
    if bad.any():
        row, frame = (int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{name}: sequence {row}, frame {frame} holds a value that is not finite")
    velocity = np.zeros_like(points)
    rows = np.flatnonzero(valid > 1)
    last = valid[rows] - 1
    with np.errstate(invalid="ignore", over="ignore"):  # padding may hold anything
        velocity[:, 1:-1] = (points[:, 2:] - points[:, :-2]) / 2
        velocity[rows, 0] = points[rows, 1] - points[rows, 0]
        velocity[rows, last] = points[rows, last] - points[rows, last - 1]
        out = np.concatenate([points, points + points.dtype.type(lead) * velocity], axis=2)
    out[~in_sequence] = 0  # padding, whatever it held, is zero in the result
    return out


def check_lead(lead: float, metric: str | None = None, *, what: str = "lead") -> None:
    """Refuses a motion lead that is negative or not finite, or one for a pose-only ``metric``.

    ``what`` names the setting in the message (``"--lead"``, ``"TeacherConfig.lead"``).
    """
    if not (math.isfinite(lead) and lead >= 0):
        raise ValueError(f"{what} must be a finite number of frames >= 0, got {lead}")
    if lead and metric is not None and metric not in MOTION_METRICS:
        raise ValueError(
            f"{what} is for the {' and '.join(MOTION_METRICS)} metrics, not {metric!r}"
        )


def _sequences(
    x: ArrayLike, lengths: ArrayLike | None, name: str
) -> tuple[NDArray[np.floating], NDArray[np.int64]]:
    """Checks one input and returns it as a C-contiguous (N, T, L, 3) array with lengths."""
    array = np.asarray(x)
    if array.dtype.kind in "iu":
        array = array.astype(np.float64)
    elif array.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name} must hold float32 or float64 values, got dtype {array.dtype}")
    if array.ndim == 3:
        if array.shape[2] % 3:
            raise ValueError(
                f"{name} has shape {array.shape}: a 3-D input must be (N, T, L*3) with the "
                f"last axis a multiple of 3"
            )
        array = array.reshape(array.shape[0], array.shape[1], array.shape[2] // 3, 3)
    if array.ndim != 4 or array.shape[3] != 3:
        raise ValueError(
            f"{name} has shape {array.shape}; expected (N, T, L, 3) or (N, T, L*3) with 3-D points"
        )
    n, t = array.shape[:2]
    if t < 1:
        raise ValueError(f"{name} has no frames (shape {array.shape})")
    if lengths is None:
        valid = np.full(n, t, dtype=np.int64)
    else:
        valid = np.asarray(lengths)
        if valid.shape != (n,):
            raise ValueError(
                f"lengths for {name} must have shape ({n},), one per sequence, got {valid.shape}"
            )
        if n and valid.dtype.kind not in "iu":
            raise TypeError(f"lengths for {name} must be integers, got dtype {valid.dtype}")
        valid = valid.astype(np.int64)
        bad = np.flatnonzero((valid < 1) | (valid > t))
        if bad.size:
            i = int(bad[0])
            raise ValueError(
                f"lengths for {name}: sequence {i} has length {int(valid[i])}, outside [1, {t}]"
            )
    return np.ascontiguousarray(array), valid


def _engine_options(
    metric: str,
    band: int | None,
    normalize: bool,
    threads: int | None,
    missing_cost: float | None,
    hand: HandParams | None,
) -> dict[str, Any]:
    """Checks the options shared by :func:`cross` and :func:`pairwise`, as engine keywords."""
    _check_metric(metric)
    if band is not None and (isinstance(band, bool) or not isinstance(band, int | np.integer)):
        raise TypeError(f"band must be an integer number of frames or None, got {band!r}")
    if band is not None and band < 0:
        raise ValueError(f"band must be >= 0 frames, got {band}")
    if threads is not None and (
        isinstance(threads, bool) or not isinstance(threads, int | np.integer) or threads < 1
    ):
        raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
    if missing_cost is not None and not (math.isfinite(missing_cost) and missing_cost >= 0):
        raise ValueError(f"missing_cost must be a finite number >= 0, got {missing_cost}")
    return {
        "metric": metric,
        "band": band,
        "normalize": bool(normalize),
        "threads": threads,
        "missing_cost": missing_cost,
        "hand": _hand_tuple(hand),
    }


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {', '.join(METRICS)}")


def _hand_tuple(hand: HandParams | None) -> tuple[float, float, float, float] | None:
    return None if hand is None else astuple(hand)


def _available_memory() -> int | None:
    """Bytes of memory available now, where the OS says; None where it does not."""
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _check_memory(n: int, m: int, *inputs: NDArray[np.floating]) -> None:
    """Refuses a computation whose result and working copies would not fit in memory."""
    result = n * m * 8
    # The engine keeps each input as float64 frames, padded to blocks of 8.
    frames = sum(x.shape[0] * (x.shape[1] + 8) * x.shape[2] * 3 * 8 for x in inputs)
    available = _available_memory()
    if available is not None and result + frames > available:
        gib = 2.0**30
        raise ValueError(
            f"the distance matrix needs {result / gib:.1f} GiB ({n} x {m} float64) plus "
            f"{frames / gib:.1f} GiB of normalised frames, but only {available / gib:.1f} GiB "
            f"of memory is available; compute it in blocks of rows (gkd-run distances does)"
        )


@contextmanager
def _progress(
    progress: bool | ProgressCallback | None, total: int
) -> Iterator[ProgressCallback | None]:
    """Turns the ``progress`` argument into the callback the engine calls."""
    if progress is None or progress is False:
        yield None
    elif progress is True:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        with Progress(
            TextColumn("Procrustes-DTW"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("pairs"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            transient=True,
        ) as bar:
            task = bar.add_task("pairs", total=total)
            yield lambda done, _total: bar.update(task, completed=done)
    elif callable(progress):
        yield progress
    else:
        raise TypeError(f"progress must be True, False, None or a callable, got {progress!r}")
