"""Small synthetic data sets for tests and demos. Their numbers are never SIGNUM or UTD-MHAD
results.

:func:`make_synthetic_signum` writes a folder in SIGNUM's layout (MediaPipe Holistic, 75
landmarks, 80 frames) whose classes differ in hand paths, finger curls and wrist rotation, with
signer variation in position, scale and rotation, undetected-hand frames and padded short
sequences. :func:`make_synthetic_motion` returns a small generic :class:`MotionDataset`.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from .base import MotionDataset

# Hand in its own frame (units of hand size, wrist at the origin, fingers along +y, palm facing
# -z). Thumb CMC/MCP and the four finger MCPs are fixed; later joints follow the bent segments.
_THUMB_BASE = np.array([[0.25, 0.15, 0.0], [0.45, 0.30, 0.0]])
_FINGER_MCP = np.array(
    [[0.20, 0.80, 0.0], [0.05, 0.85, 0.0], [-0.10, 0.80, 0.0], [-0.25, 0.70, 0.0]]
)
_FINGER_SEGMENTS = (0.35, 0.25, 0.20)
_THUMB_SEGMENTS = (0.22, 0.18)

# Pose template in image coordinates (x right, y down), the person facing the camera.
_POSE_FIXED = {
    0: (0.50, 0.25),
    1: (0.515, 0.23),
    2: (0.525, 0.23),
    3: (0.535, 0.23),
    4: (0.485, 0.23),
    5: (0.475, 0.23),
    6: (0.465, 0.23),
    7: (0.56, 0.24),
    8: (0.44, 0.24),
    9: (0.515, 0.28),
    10: (0.485, 0.28),
    11: (0.62, 0.40),
    12: (0.38, 0.40),
    23: (0.57, 0.75),
    24: (0.43, 0.75),
    25: (0.57, 1.00),
    26: (0.43, 1.00),
    27: (0.57, 1.25),
    28: (0.43, 1.25),
    29: (0.57, 1.28),
    30: (0.43, 1.28),
    31: (0.57, 1.30),
    32: (0.43, 1.30),
}
_REST = {"left": np.array([0.60, 0.72]), "right": np.array([0.40, 0.72])}
_HAND_SIZE = 0.09


class _Signer(NamedTuple):
    scale: float
    angle: float  # radians, in the picture plane
    shift: np.ndarray  # (2,) in image coordinates


def _rotation_z(angle: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotations about z by ``angle`` (radians)."""
    c, s = np.cos(angle), np.sin(angle)
    zero, one = np.zeros_like(angle), np.ones_like(angle)
    return np.stack(
        [np.stack([c, -s, zero], -1), np.stack([s, c, zero], -1), np.stack([zero, zero, one], -1)],
        -2,
    )


def _chain(start: np.ndarray, direction: np.ndarray, segments: tuple[float, ...], bend: float):
    """Points of a finger bending towards the palm (-z) by ``bend`` radians per joint."""
    points, point = [], start
    for k, length in enumerate(segments, start=1):
        step = np.cos(k * bend) * direction + np.sin(k * bend) * np.array([0.0, 0.0, -1.0])
        point = point + length * step
        points.append(point)
    return points


def _hand_shape(curls: np.ndarray) -> np.ndarray:
    """(21, 3) MediaPipe hand landmarks for five curls in [0, 1] (thumb first)."""
    bend = np.deg2rad(75.0) * curls
    thumb_dir = np.array([0.6, 0.8, 0.0])
    points = [np.zeros(3), *_THUMB_BASE]
    points += _chain(_THUMB_BASE[1], thumb_dir, _THUMB_SEGMENTS, bend[0])
    for f, mcp in enumerate(_FINGER_MCP):
        direction = np.array([0.15 * mcp[0], 1.0, 0.0])
        direction /= np.linalg.norm(direction)
        points += [mcp, *_chain(mcp, direction, _FINGER_SEGMENTS, bend[f + 1])]
    return np.asarray(points)


def _class_params(rng: np.random.Generator, n_classes: int) -> list[dict[str, np.ndarray]]:
    params = []
    for c in range(n_classes):
        two_handed = c % 2 == 1
        params.append(
            {
                "two_handed": np.array(two_handed),
                "centre": rng.uniform([-0.06, -0.22], [0.08, -0.05]),  # from the rest pose
                "amplitude": rng.uniform(0.03, 0.10, size=2),
                "frequency": rng.choice([0.5, 1.0, 1.5, 2.0], size=2),
                "phase": rng.uniform(0, 2 * np.pi, size=2),
                "curl_right": rng.uniform(0, 1, size=5),
                "curl_left": rng.uniform(0, 1, size=5),
                "roll": rng.uniform(-0.8, 0.8, size=2),  # wrist rotation: base, amplitude
            }
        )
    return params


def _sign(
    rng: np.random.Generator,
    p: dict[str, np.ndarray],
    *,
    n: int,
    frames: int,
    signer: _Signer,
    missing_rate: float,
) -> np.ndarray:
    """One (frames, 75, 3) sequence lasting ``n`` frames (zero after)."""
    gamma = rng.uniform(0.85, 1.15)
    s = np.linspace(0.0, 1.0, n) ** gamma  # signer / repetition speed
    envelope = np.sin(np.pi * s)[:, None]  # hands leave the rest pose and come back
    jitter = rng.uniform(0.9, 1.1, size=2)
    phase = p["phase"] + rng.normal(0, 0.15, size=2)
    wave = np.sin(2 * np.pi * p["frequency"] * s[:, None] + phase)
    out = np.zeros((frames, 75, 3))
    pose = np.zeros((n, 33, 3))
    for j, (x, y) in _POSE_FIXED.items():
        pose[:, j, :2] = (x, y)
    for side, wrist_pose, elbow_pose, shoulder, first, sign in (
        ("right", 16, 14, 12, 54, 1.0),
        ("left", 15, 13, 11, 33, -1.0),
    ):
        active = side == "right" or bool(p["two_handed"])
        offset = p["centre"] * np.array([sign, 1.0])
        path = offset + p["amplitude"] * jitter * wave * np.array([sign, 1.0])
        wrist = _REST[side] + (envelope * path if active else 0.01 * wave)
        roll = p["roll"][0] + p["roll"][1] * np.sin(2 * np.pi * p["frequency"][0] * s)
        shape = _hand_shape(p[f"curl_{side}"]) * np.array([-sign, 1.0, 1.0]) * _HAND_SIZE
        rotated = np.einsum("tij,lj->tli", _rotation_z(sign * roll * float(active)), shape)
        hand = rotated + np.concatenate([wrist, np.zeros((n, 1))], axis=1)[:, None, :]
        out[:n, first : first + 21] = hand
        pose[:, wrist_pose, :2] = wrist
        pose[:, elbow_pose, :2] = (pose[:, shoulder, :2] + wrist) / 2 + [-sign * 0.05, 0.08]
        # Pose pinky, index and thumb sit on the hand's MCPs and thumb tip.
        for pose_left, hand_j in ((17, 17), (19, 5), (21, 4)):
            pose[:, pose_left + (1 if side == "right" else 0)] = hand[:, hand_j]
    out[:n, :33] = pose
    # The signer's build and place in the picture: scale and rotate about the body centre.
    centre = np.array([0.5, 0.6, 0.0])
    rotation = _rotation_z(np.array(signer.angle))
    moved = (out[:n] - centre) @ rotation.T * signer.scale + centre
    moved[..., :2] += signer.shift
    out[:n] = moved + rng.normal(0, 0.002, size=moved.shape)
    for first, rate in ((33, missing_rate * (1 if p["two_handed"] else 3)), (54, missing_rate)):
        # Undetected hands come in runs of frames; their block is exactly zero.
        for _ in range(rng.poisson(rate * n / 4)):
            start = int(rng.integers(0, n))
            out[start : start + int(rng.integers(1, 8)), first : first + 21] = 0.0
    return out


def make_synthetic_signum(
    folder: Path,
    *,
    n_classes: int = 12,
    signers: tuple[int, int, int] = (4, 2, 2),
    repetitions: int = 2,
    frames: int = 80,
    missing_rate: float = 0.1,
    short_fraction: float = 0.25,
    seed: int = 0,
    write_signers: bool = True,
    write_glosses: bool = True,
) -> Path:
    """Write a small synthetic data set in SIGNUM's folder layout (for tests and demos).

    Parameters
    ----------
    folder : Path
        Created if needed; ``X_{train,val,test}.npy`` (float32, (N, frames, 225)) and
        ``y_{train,val,test}.npy`` (int64) are written into it.
    n_classes : int
        Number of glosses. Odd classes are two-handed; even ones leave the left hand resting.
    signers : tuple[int, int, int]
        Signers in train, validation and test; ids run 1, 2, ... across the three splits.
    repetitions : int
        Repetitions of every gloss by every signer.
    frames : int
        Frames per stored sequence.
    missing_rate : float
        About the fraction of frames in which a hand is undetected (all-zero block); resting
        left hands are missed three times as often.
    short_fraction : float
        Fraction of sequences that end early and are zero-padded to ``frames``.
    seed : int
        Seed; the same arguments give the same files.
    write_signers : bool
        Also write ``signers_{train,val,test}.npy``.
    write_glosses : bool
        Also write ``glosses.txt`` (``SYNTH_00``, ``SYNTH_01``, ...).

    Returns
    -------
    Path
        ``folder``.

    Raises
    ------
    ValueError
        If a count is below 1 or ``frames`` < 8.
    """
    if len(signers) != 3 or min(signers) < 1 or n_classes < 1 or repetitions < 1:
        raise ValueError("n_classes, repetitions and each of the three signer counts must be >= 1")
    if frames < 8:
        raise ValueError(f"frames must be at least 8, got {frames}")
    folder = Path(folder).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    params = _class_params(rng, n_classes)
    first_id = 1
    for suffix, count in zip(("train", "val", "test"), signers, strict=True):
        xs, ys, ids = [], [], []
        for signer_id in range(first_id, first_id + count):
            signer = _Signer(
                scale=rng.uniform(0.85, 1.15),
                angle=rng.uniform(-0.15, 0.15),
                shift=rng.uniform(-0.05, 0.05, size=2),
            )
            for c in range(n_classes):
                for _ in range(repetitions):
                    short = rng.random() < short_fraction
                    n = int(rng.integers(int(0.7 * frames), frames)) if short else frames
                    xs.append(
                        _sign(rng, params[c], n=n, frames=frames, signer=signer,
                              missing_rate=missing_rate)
                    )  # fmt: skip
                    ys.append(c)
                    ids.append(signer_id)
        first_id += count
        np.save(
            folder / f"X_{suffix}.npy",
            np.stack(xs).reshape(len(xs), frames, 225).astype(np.float32),
        )
        np.save(folder / f"y_{suffix}.npy", np.array(ys, dtype=np.int64))
        if write_signers:
            np.save(folder / f"signers_{suffix}.npy", np.array(ids, dtype=np.int64))
    if write_glosses:
        names = "".join(f"SYNTH_{c:02d}\n" for c in range(n_classes))
        (folder / "glosses.txt").write_text(names, encoding="utf-8")
    return folder


def make_synthetic_motion(
    n_classes: int = 4,
    *,
    n_subjects: int = 4,
    per_subject: int = 3,
    n_landmarks: int = 8,
    min_frames: int = 12,
    max_frames: int = 24,
    noise: float = 0.01,
    seed: int = 0,
) -> MotionDataset:
    """A small generic dataset whose classes differ in how the landmarks move.

    Every class oscillates a shared body shape with its own per-landmark amplitudes, frequency
    and phases; every subject sees it rotated (about z), scaled and shifted.
    Lengths vary, so batches carry padding.

    Parameters
    ----------
    n_classes : int
        Number of classes C.
    n_subjects : int
        Subjects, ids 1..n_subjects.
    per_subject : int
        Sequences per class per subject.
    n_landmarks : int
        Landmarks L per frame.
    min_frames, max_frames : int
        Range of sequence lengths; ``sequences`` is padded to ``max_frames``.
    noise : float
        Standard deviation of per-coordinate noise.
    seed : int
        Seed; the same arguments give the same data.

    Returns
    -------
    MotionDataset
        N = n_classes * n_subjects * per_subject sequences, ``source`` ``"synthetic"``.

    Raises
    ------
    ValueError
        If a count is below 1 or the frame range is empty.
    """
    if min(n_classes, n_subjects, per_subject, n_landmarks) < 1:
        raise ValueError("n_classes, n_subjects, per_subject and n_landmarks must be >= 1")
    if not 1 <= min_frames <= max_frames:
        raise ValueError(f"need 1 <= min_frames <= max_frames, got {min_frames}, {max_frames}")
    rng = np.random.default_rng(seed)
    body = rng.normal(0.0, 0.3, size=(n_landmarks, 3))
    amplitude = rng.uniform(0.05, 0.3, size=(n_classes, n_landmarks, 3))
    frequency = rng.uniform(0.5, 2.0, size=n_classes)
    phase = rng.uniform(0, 2 * np.pi, size=(n_classes, n_landmarks, 3))
    n = n_classes * n_subjects * per_subject
    sequences = np.zeros((n, max_frames, n_landmarks, 3), dtype=np.float32)
    lengths, labels, subjects = [], [], []
    row = 0
    for subject in range(1, n_subjects + 1):
        turn = _rotation_z(np.array(rng.uniform(-0.4, 0.4)))
        scale, shift = rng.uniform(0.9, 1.1), rng.normal(0.0, 0.2, size=3)
        for c in range(n_classes):
            for _ in range(per_subject):
                length = int(rng.integers(min_frames, max_frames + 1))
                s = np.linspace(0.0, 1.0, length)[:, None, None]
                motion = body + amplitude[c] * np.sin(2 * np.pi * frequency[c] * s + phase[c])
                motion = motion @ turn.T * scale + shift
                motion += rng.normal(0.0, noise, size=motion.shape)
                sequences[row, :length] = motion
                lengths.append(length)
                labels.append(c)
                subjects.append(subject)
                row += 1
    return MotionDataset(
        sequences=sequences,
        lengths=np.array(lengths),
        labels=np.array(labels),
        class_names=[f"class_{c}" for c in range(n_classes)],
        subjects=np.array(subjects),
        landmark_names=[f"landmark_{j}" for j in range(n_landmarks)],
        source="synthetic",
        landmark_groups={},
    )
