"""The student: a small transformer encoder over the frames of a motion sequence.

The model reads raw landmark coordinates, shape (B, T, L*3), with a padding mask (True where a
frame is padding). Input preprocessing is part of the model (see :class:`Preprocessing`), so a
checkpoint carries it and predictions after loading match the trained model exactly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch
from torch import nn

__all__ = [
    "MotionTransformer",
    "Preprocessing",
    "count_parameters",
    "preprocess",
    "resample_frames",
    "token_positions",
]

Centre = Literal["none", "sequence", "frame"]

# Largest skeleton that gets pairwise landmark distances by default: 32 landmarks give 496
# values a frame; SIGNUM's 42 hand landmarks would give 861, more than the model's width needs.
MAX_DISTANCE_LANDMARKS = 32


@dataclass(frozen=True)
class Preprocessing:
    """How raw coordinates become the student's input features.

    Parameters
    ----------
    centre : {"sequence", "frame", "none"}, default "sequence"
        Translation removed: ``"sequence"`` subtracts the centre point averaged over the valid
        frames (the body's own motion is kept), ``"frame"`` subtracts each frame's centre point
        (only posture is kept), ``"none"`` keeps camera coordinates.
    centre_landmarks : tuple of int, default ()
        Landmarks whose mean is the centre point (e.g. ``(3,)``, UTD-MHAD's hip centre); empty
        means the mean of all landmarks.
    scale : bool, default True
        Divide by the sequence's RMS distance of the landmarks from the centre point, which
        removes body size and distance to the camera.
    velocities : bool, default False
        Append first differences in time (zero at the first frame): the input width doubles.
    distances : bool, default False
        Append the distance between every pair of landmarks in each frame (after centring and
        scaling): ``L (L - 1) / 2`` values that do not change when the body turns, the
        rotation invariance the Procrustes teacher has. Meant for skeletons of tens of
        landmarks (UTD-MHAD's 20 give 190).
    frames : int, optional
        Resample every sequence to this many frames (linear interpolation, first and last
        frame kept) before anything else: a slow and a fast performer of the same action then
        give the same input, the speed invariance the DTW teacher has. None keeps the
        recorded frames.
    """

    centre: Centre = "sequence"
    centre_landmarks: tuple[int, ...] = field(default_factory=tuple)
    scale: bool = True
    velocities: bool = False
    distances: bool = False
    frames: int | None = None

    def __post_init__(self) -> None:
        if self.centre not in ("none", "sequence", "frame"):
            raise ValueError(
                f"Preprocessing.centre must be 'none', 'sequence' or 'frame', got {self.centre!r}"
            )
        object.__setattr__(self, "centre_landmarks", tuple(int(i) for i in self.centre_landmarks))
        if any(i < 0 for i in self.centre_landmarks):
            raise ValueError(f"centre_landmarks must be >= 0, got {self.centre_landmarks}")
        if self.frames is not None:
            if isinstance(self.frames, bool) or int(self.frames) != self.frames or self.frames < 2:
                raise ValueError(
                    f"Preprocessing.frames must be an integer >= 2, got {self.frames!r}"
                )
            object.__setattr__(self, "frames", int(self.frames))

    def n_features(self, n_inputs: int) -> int:
        """Width of the features made from ``n_inputs`` raw values per frame."""
        n_landmarks = n_inputs // 3
        pairs = n_landmarks * (n_landmarks - 1) // 2 if self.distances else 0
        return (2 * n_inputs if self.velocities else n_inputs) + pairs

    @classmethod
    def for_landmarks(cls, landmark_names: Sequence[str], **options: Any) -> Preprocessing:
        """The default preprocessing for a skeleton with these landmarks.

        Centred on the body's hip centre when there is one: ``hip_center`` (Kinect, UTD-MHAD)
        alone; ``left_hip`` and ``right_hip`` (MediaPipe pose) by their midpoint; otherwise the
        centroid of all landmarks. On UTD-MHAD the hip centre beat the centroid on the
        validation subject (by 4-6 points in two paired runs).

        Pairwise landmark distances are added for skeletons of up to
        ``MAX_DISTANCE_LANDMARKS`` landmarks (their number grows with the square of the
        landmark count): cross-validated on UTD-MHAD subjects 1, 3 and 5 (two seeds), they
        raised the distilled student from 87.4 to 90.0 % and the direct transformer from 84.1
        to 90.1 % (``benches/tune_mhad.py``).

        Parameters
        ----------
        landmark_names : sequence of str
            ``MotionDataset.landmark_names``.
        **options
            Other :class:`Preprocessing` fields; they override the choices above.
        """
        names = [name.lower() for name in landmark_names]
        if "hip_center" in names:
            centre: tuple[int, ...] = (names.index("hip_center"),)
        elif "left_hip" in names and "right_hip" in names:
            centre = (names.index("left_hip"), names.index("right_hip"))
        else:
            centre = ()
        chosen: dict[str, Any] = {
            "centre_landmarks": centre,
            "distances": 2 <= len(names) <= MAX_DISTANCE_LANDMARKS,
        }
        chosen.update(options)
        return cls(**chosen)

    def to_dict(self) -> dict[str, Any]:
        """Plain-type form, for checkpoints and JSON."""
        out = asdict(self)
        out["centre_landmarks"] = list(self.centre_landmarks)
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Preprocessing:
        """Inverse of :meth:`to_dict`."""
        return cls(
            centre=values["centre"],
            centre_landmarks=tuple(values["centre_landmarks"]),
            scale=bool(values["scale"]),
            velocities=bool(values["velocities"]),
            # Absent in older checkpoints:
            distances=bool(values.get("distances", False)),
            frames=values.get("frames"),
        )


def preprocess(
    inputs: torch.Tensor, padding_mask: torch.Tensor, preprocessing: Preprocessing
) -> torch.Tensor:
    """Apply :class:`Preprocessing` to a padded batch.

    Parameters
    ----------
    inputs : torch.Tensor, shape (B, T, L*3)
        Raw coordinates, landmark-major (x, y, z of landmark 0, then landmark 1, ...).
    padding_mask : torch.Tensor of bool, shape (B, T)
        True where a frame is padding; every sequence needs at least one valid frame.
    preprocessing : Preprocessing
        What to do.

    Returns
    -------
    torch.Tensor, shape (B, T, F)
        Features, ``F = preprocessing.n_features(L*3)``; zero at padded frames, and independent
        of the values stored there.

    Raises
    ------
    ValueError
        If the shapes disagree or a centre landmark does not exist.
    """
    if inputs.ndim != 3 or inputs.shape[-1] % 3:
        raise ValueError(f"inputs must have shape (B, T, L*3), got {tuple(inputs.shape)}")
    if padding_mask.shape != inputs.shape[:2]:
        raise ValueError(
            f"padding_mask must have shape {tuple(inputs.shape[:2])}, "
            f"got {tuple(padding_mask.shape)}"
        )
    batch, frames, width = inputs.shape
    n_landmarks = width // 3
    if preprocessing.centre_landmarks and max(preprocessing.centre_landmarks) >= n_landmarks:
        raise ValueError(
            f"centre_landmarks {preprocessing.centre_landmarks} need more than the "
            f"{n_landmarks} landmarks in inputs"
        )
    valid = (~padding_mask).to(inputs.dtype)[:, :, None, None]  # (B, T, 1, 1)
    points = inputs.reshape(batch, frames, n_landmarks, 3) * valid  # padding values never used
    n_valid = valid.sum(dim=1, keepdim=True).clamp_min(1.0)  # (B, 1, 1, 1)

    if preprocessing.centre != "none":
        landmarks = list(preprocessing.centre_landmarks) or list(range(n_landmarks))
        centre = points[:, :, landmarks].mean(dim=2, keepdim=True)  # (B, T, 1, 3)
        if preprocessing.centre == "sequence":
            centre = centre.sum(dim=1, keepdim=True) / n_valid  # mean over valid frames only
        points = (points - centre) * valid
    if preprocessing.scale:
        # RMS over valid frames and landmarks; clamped so a degenerate sequence stays finite.
        energy = points.square().sum(dim=(1, 2, 3), keepdim=True)
        rms = torch.sqrt(energy / (n_valid * n_landmarks)).clamp_min(1e-6)
        points = points / rms
    features = points.reshape(batch, frames, width)
    if preprocessing.velocities:
        deltas = torch.zeros_like(features)
        deltas[:, 1:] = features[:, 1:] - features[:, :-1]
        features = torch.cat([features, deltas], dim=-1)
    if preprocessing.distances:
        # cdist's kernel is several times faster than gathering the pairs and subtracting; its
        # matrix-product shortcut (taken above 25 points) loses small distances, so not that.
        first, second = torch.triu_indices(n_landmarks, n_landmarks, 1, device=inputs.device)
        per_frame = points.reshape(batch * frames, n_landmarks, 3)
        exact = "donot_use_mm_for_euclid_dist"
        gaps = torch.cdist(per_frame, per_frame, compute_mode=exact)[:, first, second]
        features = torch.cat([features, gaps.reshape(batch, frames, -1)], dim=-1)
    return features * valid[:, :, :, 0]


def resample_frames(inputs: torch.Tensor, padding_mask: torch.Tensor, frames: int) -> torch.Tensor:
    """Each sequence's valid frames linearly interpolated to ``frames`` frames.

    Parameters
    ----------
    inputs : torch.Tensor, shape (B, T, F)
        Padded batch; values at padded frames are never read.
    padding_mask : torch.Tensor of bool, shape (B, T)
        True where a frame is padding; the valid frames are a prefix of at least one frame.
    frames : int
        Frames of the output (>= 2). Output frame i sits at time ``i (n - 1) / (frames - 1)``
        of a sequence of n valid frames; a one-frame sequence is repeated.

    Returns
    -------
    torch.Tensor, shape (B, frames, F)
        No padding.
    """
    lengths = (~padding_mask).sum(dim=1).to(inputs.dtype)  # (B,)
    steps = torch.arange(frames, device=inputs.device, dtype=inputs.dtype) / (frames - 1)
    where = steps[None, :] * (lengths[:, None] - 1).clamp_min(0)  # (B, frames)
    below = where.floor().long()
    above = torch.minimum(below + 1, (lengths[:, None] - 1).long())
    fraction = (where - below.to(inputs.dtype))[:, :, None]
    width = inputs.shape[-1]
    lower = torch.gather(inputs, 1, below[:, :, None].expand(-1, -1, width))
    upper = torch.gather(inputs, 1, above[:, :, None].expand(-1, -1, width))
    return lower + (upper - lower) * fraction


Positions = Literal["frame", "relative"]

# Token positions a sequence spans under ``positions="relative"``, whatever its length: about
# the token count of a typical UTD-MHAD sequence (65 frames in two-frame tokens).
RELATIVE_SPAN = 32.0


def _sinusoidal_encoding(positions: torch.Tensor, d_model: int) -> torch.Tensor:
    """Vaswani et al. (2017) sine/cosine encoding of (possibly fractional) positions.

    ``positions`` of any shape (...,) give (..., d_model).
    """
    rate = torch.exp(
        torch.arange(0, d_model, 2, dtype=torch.float32, device=positions.device)
        * (-math.log(10000.0) / d_model)
    )
    angle = positions.to(torch.float32)[..., None] * rate
    encoding = torch.zeros(*positions.shape, d_model, device=positions.device)
    encoding[..., 0::2] = torch.sin(angle)
    encoding[..., 1::2] = torch.cos(angle[..., : d_model // 2])
    return encoding


def token_positions(padding_mask: torch.Tensor, positions: Positions) -> torch.Tensor:
    """Where each token sits in time, shape (B, T) float.

    ``"frame"``: its index. ``"relative"``: its index scaled so that every sequence's valid
    tokens span ``RELATIVE_SPAN`` positions, so the same action played slower or faster puts
    its phases at the same positions (the speed invariance the DTW teacher has).
    """
    index = torch.arange(padding_mask.shape[1], device=padding_mask.device, dtype=torch.float32)
    index = index[None, :].expand(padding_mask.shape)
    if positions == "frame":
        return index
    valid = (~padding_mask).sum(dim=1, keepdim=True).to(torch.float32)
    return index * (RELATIVE_SPAN / valid)


class MotionTransformer(nn.Module):
    """Transformer encoder classifier for padded landmark sequences.

    Frame features (see :class:`Preprocessing`) are projected to ``d_model``, given sinusoidal
    positions, passed through a pre-norm transformer encoder whose attention ignores padded
    frames, mean-pooled over the valid frames and classified by a linear head.

    Parameters
    ----------
    n_inputs : int
        Raw values per frame, ``L * 3``.
    n_classes : int
        Number of classes.
    d_model : int, default 64
        Width of the encoder; must be even and divisible by ``n_heads``.
    n_heads : int, default 4
        Attention heads.
    n_layers : int, default 2
        Encoder layers.
    dim_feedforward : int, optional
        Hidden width of each layer's feed-forward block; default ``2 * d_model``.
    dropout : float, default 0.1
        Dropout inside the encoder and before the head.
    frames_per_token : int, default 1
        Consecutive frames whose features are concatenated into one token (temporal patches,
        as ViT does with image patches): fewer tokens, so attention is cheaper and each token
        carries local motion. A token is padding when its first frame is.
    positions : {"frame", "relative"}, default "relative"
        Time positions given to the tokens (see :func:`token_positions`): the token index, or
        the index scaled to the sequence's length, which makes the positions independent of
        how fast the action is performed.
    preprocessing : Preprocessing, optional
        Input preprocessing; default ``Preprocessing()``.

    Raises
    ------
    ValueError
        If a size is not positive, ``n_inputs`` is not a multiple of 3, ``d_model`` is odd or
        not divisible by ``n_heads``, or ``dropout`` is outside [0, 1).
    """

    def __init__(
        self,
        n_inputs: int,
        n_classes: int,
        *,
        d_model: int = 64,
        n_heads: int = 4,
        n_layers: int = 2,
        dim_feedforward: int | None = None,
        dropout: float = 0.1,
        preprocessing: Preprocessing | None = None,
        frames_per_token: int = 1,
        positions: Positions = "relative",
    ) -> None:
        super().__init__()
        for name, value in (
            ("n_inputs", n_inputs),
            ("n_classes", n_classes),
            ("d_model", d_model),
            ("n_heads", n_heads),
            ("n_layers", n_layers),
            ("frames_per_token", frames_per_token),
        ):
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if n_inputs % 3:
            raise ValueError(f"n_inputs must be L * 3 (a multiple of 3), got {n_inputs}")
        if d_model % 2 or d_model % n_heads:
            raise ValueError(
                f"d_model must be even and divisible by n_heads, got {d_model} and {n_heads}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        if positions not in ("frame", "relative"):
            raise ValueError(f"positions must be 'frame' or 'relative', got {positions!r}")
        dim_feedforward = 2 * d_model if dim_feedforward is None else int(dim_feedforward)
        if dim_feedforward < 1:
            raise ValueError(f"dim_feedforward must be positive, got {dim_feedforward}")
        self.preprocessing = preprocessing or Preprocessing()
        self.n_inputs = int(n_inputs)
        self.n_classes = int(n_classes)
        self.d_model = int(d_model)
        self.hparams: dict[str, Any] = {
            "n_inputs": int(n_inputs),
            "n_classes": int(n_classes),
            "d_model": int(d_model),
            "n_heads": int(n_heads),
            "n_layers": int(n_layers),
            "dim_feedforward": dim_feedforward,
            "dropout": float(dropout),
            "frames_per_token": int(frames_per_token),
            "positions": positions,
            "preprocessing": self.preprocessing.to_dict(),
        }
        self.frames_per_token = int(frames_per_token)
        self.positions: Positions = positions
        self.embed = nn.Linear(
            self.preprocessing.n_features(n_inputs) * self.frames_per_token, d_model
        )
        layer = nn.TransformerEncoderLayer(
            d_model,
            n_heads,
            dim_feedforward=dim_feedforward,
            dropout=dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        # Nested tensors do not apply to pre-norm layers (and would warn); the mask does the work.
        self.encoder = nn.TransformerEncoder(
            layer, n_layers, norm=nn.LayerNorm(d_model), enable_nested_tensor=False
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(d_model, n_classes))

    @classmethod
    def from_hparams(cls, hparams: Mapping[str, Any]) -> MotionTransformer:
        """Build an (untrained) model from :attr:`hparams`, e.g. read from a checkpoint."""
        return cls(
            int(hparams["n_inputs"]),
            int(hparams["n_classes"]),
            d_model=int(hparams["d_model"]),
            n_heads=int(hparams["n_heads"]),
            n_layers=int(hparams["n_layers"]),
            dim_feedforward=int(hparams["dim_feedforward"]),
            dropout=float(hparams["dropout"]),
            frames_per_token=int(hparams.get("frames_per_token", 1)),
            positions=hparams.get("positions", "frame"),  # absent in older checkpoints
            preprocessing=Preprocessing.from_dict(hparams["preprocessing"]),
        )

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Class logits: the linear head applied to :meth:`encode`'s pooled features.

        Parameters
        ----------
        x : torch.Tensor, shape (B, T, L*3)
            Raw coordinates; values at padded frames are ignored.
        padding_mask : torch.Tensor of bool, shape (B, T), optional
            True where a frame is padding; None means no padding.

        Returns
        -------
        torch.Tensor, shape (B, n_classes)
            Unnormalised class scores.

        Raises
        ------
        ValueError
            If the input width is not ``n_inputs`` or a sequence has no valid frame.
        """
        return self.head(self.encode(x, padding_mask))

    def encode(self, x: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Sequence features, shape (B, d_model): the encoder's output mean-pooled over the
        valid tokens. Arguments and errors as in :meth:`forward`; relational distillation
        (``TrainConfig.relation_weight``) compares these features' distances with the teacher's.
        """
        if x.ndim != 3 or x.shape[-1] != self.n_inputs:
            raise ValueError(f"x must have shape (B, T, {self.n_inputs}), got {tuple(x.shape)}")
        if padding_mask is None:
            padding_mask = torch.zeros(x.shape[:2], dtype=torch.bool, device=x.device)
        padding_mask = padding_mask.to(device=x.device, dtype=torch.bool)
        if padding_mask.shape != x.shape[:2]:
            raise ValueError(
                f"padding_mask must have shape {tuple(x.shape[:2])}, "
                f"got {tuple(padding_mask.shape)}"
            )
        if bool(padding_mask.all(dim=1).any()):
            raise ValueError("every sequence needs at least one frame that is not padding")
        # Zero the padding first: a NaN there would otherwise survive the masked attention.
        x = x.masked_fill(padding_mask[:, :, None], 0.0)
        if self.preprocessing.frames is not None:
            x = resample_frames(x, padding_mask, self.preprocessing.frames)
            padding_mask = torch.zeros(x.shape[:2], dtype=torch.bool, device=x.device)
        features = preprocess(x, padding_mask, self.preprocessing)
        patch = self.frames_per_token
        if patch > 1:
            batch, frames, width = features.shape
            extra = (-frames) % patch  # pad with zero frames to whole tokens
            if extra:
                features = nn.functional.pad(features, (0, 0, 0, extra))
                padding_mask = nn.functional.pad(padding_mask, (0, extra), value=True)
            features = features.reshape(batch, -1, patch * width)
            padding_mask = padding_mask[:, ::patch]
        hidden = self.embed(features)
        hidden = hidden + _sinusoidal_encoding(
            token_positions(padding_mask, self.positions), self.d_model
        )
        hidden = self.encoder(hidden, src_key_padding_mask=padding_mask)
        valid = (~padding_mask).to(hidden.dtype)[:, :, None]
        return (hidden * valid).sum(dim=1) / valid.sum(dim=1)

    def extra_repr(self) -> str:
        return f"preprocessing={self.preprocessing}"


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
