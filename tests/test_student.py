"""The transformer student and its input preprocessing (gkd.student)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gkd.student import (
    RELATIVE_SPAN,
    MotionTransformer,
    Preprocessing,
    count_parameters,
    preprocess,
    resample_frames,
    token_positions,
)

torch.set_num_threads(1)


def padded_batch(
    lengths: list[int], frames: int, landmarks: int = 4, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(len(lengths), frames, landmarks * 3, generator=generator)
    mask = torch.arange(frames)[None, :] >= torch.tensor(lengths)[:, None]
    return inputs, mask


def tiny_model(**kwargs) -> MotionTransformer:
    torch.manual_seed(0)
    options = {"d_model": 16, "n_heads": 2, "n_layers": 2, "dropout": 0.1}
    options.update(kwargs)
    return MotionTransformer(12, 5, **options).eval()


@pytest.mark.parametrize(
    ("preprocessing", "frames_per_token"),
    [
        (Preprocessing(), 1),
        (Preprocessing(centre="frame", centre_landmarks=(1,), velocities=True), 1),
        (Preprocessing(centre="none", scale=False), 1),
        (Preprocessing(velocities=True), 3),
        (Preprocessing(velocities=True, distances=True), 2),
        (Preprocessing(frames=6, distances=True), 2),
    ],
)
def test_output_does_not_depend_on_padding_values(preprocessing, frames_per_token):
    model = tiny_model(preprocessing=preprocessing, frames_per_token=frames_per_token)
    inputs, mask = padded_batch([7, 3, 10], frames=10)
    with torch.no_grad():
        reference = model(inputs, mask)
        for filler in (0.0, 1e4, float("nan"), float("inf")):
            changed = inputs.clone()
            changed[mask] = filler
            torch.testing.assert_close(model(changed, mask), reference, rtol=0, atol=0)
        noisy = inputs.clone()
        noisy[mask] = torch.randn(int(mask.sum()), 12) * 100
        torch.testing.assert_close(model(noisy, mask), reference, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("frames_per_token", "positions"), [(1, "frame"), (2, "frame"), (3, "frame"), (2, "relative")]
)
def test_padded_batch_matches_each_sequence_alone(frames_per_token, positions):
    model = tiny_model(
        preprocessing=Preprocessing(velocities=True),
        frames_per_token=frames_per_token,
        positions=positions,
    )
    inputs, mask = padded_batch([7, 3, 10], frames=10, seed=1)
    with torch.no_grad():
        together = model(inputs, mask)
        for i, length in enumerate([7, 3, 10]):
            alone = model(inputs[i : i + 1, :length])
            torch.testing.assert_close(alone[0], together[i], rtol=1e-5, atol=1e-5)


def test_training_mode_gradients_ignore_padding():
    model = tiny_model()
    model.train()
    inputs, mask = padded_batch([4, 6], frames=6)
    inputs.requires_grad_(True)
    model(inputs, mask).sum().backward()
    assert inputs.grad is not None
    assert torch.all(inputs.grad[mask] == 0)
    assert torch.any(inputs.grad[~mask] != 0)


def test_output_shape_and_parameter_count():
    model = tiny_model()
    inputs, mask = padded_batch([5, 2], frames=5)
    assert model(inputs, mask).shape == (2, 5)
    assert model(inputs).shape == (2, 5)  # no mask: nothing is padding
    assert count_parameters(model) == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("positions", ["frame", "relative"])
def test_from_hparams_rebuilds_the_same_function(positions):
    model = tiny_model(
        preprocessing=Preprocessing(centre="frame", velocities=True),
        frames_per_token=2,
        positions=positions,
    )
    copy = MotionTransformer.from_hparams(model.hparams)
    copy.load_state_dict(model.state_dict())
    copy.eval()
    assert copy.preprocessing == model.preprocessing
    inputs, mask = padded_batch([5, 3], frames=5)
    with torch.no_grad():
        torch.testing.assert_close(copy(inputs, mask), model(inputs, mask), rtol=0, atol=0)


def test_checkpoints_from_before_the_positions_option_keep_frame_positions():
    older = {key: value for key, value in tiny_model().hparams.items() if key != "positions"}
    assert MotionTransformer.from_hparams(older).positions == "frame"


def rotate_y(points: torch.Tensor, angle: float) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    rotation = torch.tensor([[c, 0.0, -s], [0.0, 1.0, 0.0], [s, 0.0, c]])
    return points @ rotation.T


def test_preprocess_removes_translation_and_scale():
    inputs, mask = padded_batch([6, 4], frames=6, landmarks=5)
    base = preprocess(inputs, mask, Preprocessing())
    moved = inputs.reshape(2, 6, 5, 3) * 3.5 + torch.tensor([1.0, -2.0, 4.0])
    torch.testing.assert_close(
        preprocess(moved.reshape(2, 6, 15), mask, Preprocessing()), base, rtol=1e-4, atol=1e-5
    )
    assert torch.all(base[mask] == 0)


def test_preprocess_sequence_centre_keeps_the_body_path_frame_centre_does_not():
    # A rigid body sliding along x: only the per-sequence centre keeps the slide.
    frames = 5
    body = torch.randn(1, 1, 4, 3).expand(1, frames, 4, 3).clone()
    body[..., 0] += torch.arange(frames, dtype=torch.float32)[None, :, None]
    mask = torch.zeros(1, frames, dtype=torch.bool)
    flat = body.reshape(1, frames, 12)
    per_frame = preprocess(flat, mask, Preprocessing(centre="frame", scale=False))
    torch.testing.assert_close(per_frame[0, 0], per_frame[0, -1])
    per_sequence = preprocess(flat, mask, Preprocessing(centre="sequence", scale=False))
    assert not torch.allclose(per_sequence[0, 0], per_sequence[0, -1])
    # Centring on landmark 2: that landmark's mean position becomes the origin.
    on_two = preprocess(flat, mask, Preprocessing(centre_landmarks=(2,), scale=False))
    centred_landmark = on_two.reshape(1, frames, 4, 3)[0, :, 2].mean(dim=0)
    torch.testing.assert_close(centred_landmark, torch.zeros(3), rtol=0, atol=1e-5)


def test_preprocess_velocities():
    inputs, mask = padded_batch([4, 2], frames=4)
    features = preprocess(inputs, mask, Preprocessing(centre="none", scale=False, velocities=True))
    assert features.shape == (2, 4, 24)
    torch.testing.assert_close(features[0, 2, 12:], inputs[0, 2] - inputs[0, 1])
    assert torch.all(features[:, 0, 12:] == 0)
    assert torch.all(features[1, 2:] == 0)  # padding stays zero, velocities included


def test_preprocess_distances_match_numpy_and_ignore_rotation():
    inputs, mask = padded_batch([5, 3], frames=5, landmarks=4, seed=2)
    chosen = Preprocessing(velocities=True, distances=True)
    features = preprocess(inputs, mask, chosen)
    assert features.shape == (2, 5, chosen.n_features(12)) == (2, 5, 12 + 12 + 6)
    # Reference: the scaled coordinates the same call returns, pairs i < j in row-major order.
    points = features[..., :12].reshape(2, 5, 4, 3).double().numpy()
    expected = [
        np.linalg.norm(points[:, :, i] - points[:, :, j], axis=-1)
        for i in range(4)
        for j in range(i + 1, 4)
    ]
    np.testing.assert_allclose(features[..., 24:].numpy(), np.stack(expected, -1), atol=1e-5)
    assert torch.all(features[1, 3:] == 0)  # padding stays zero
    # A rotation of the whole sequence changes the coordinates but not the distances.
    angle = 0.7
    rotation = torch.tensor(
        [
            [math.cos(angle), 0.0, math.sin(angle)],
            [0.0, 1.0, 0.0],
            [-math.sin(angle), 0.0, math.cos(angle)],
        ]
    )
    turned = (inputs.reshape(2, 5, 4, 3) @ rotation.T).reshape(2, 5, 12)
    rotated = preprocess(turned, mask, chosen)
    torch.testing.assert_close(rotated[..., 24:], features[..., 24:], rtol=0, atol=1e-5)
    assert not torch.allclose(rotated[..., :12], features[..., :12], atol=1e-2)


def test_preprocess_distances_stay_exact_for_close_landmarks_of_large_skeletons():
    inputs, mask = padded_batch([6], frames=6, landmarks=30, seed=3)
    points = inputs.reshape(1, 6, 30, 3)
    points[:, :, 1] = points[:, :, 0] + 1e-3  # two landmarks almost on top of each other
    chosen = Preprocessing(centre="none", scale=False, distances=True)
    features = preprocess(points.reshape(1, 6, 90), mask, chosen)
    gap = features[0, :, 90]  # the first pair: landmarks 0 and 1
    torch.testing.assert_close(gap, torch.full((6,), 3**0.5 * 1e-3), rtol=1e-3, atol=0)


def test_resample_frames_matches_numpy_interpolation():
    inputs, mask = padded_batch([7, 1, 10, 2], frames=10, seed=3)
    resampled = resample_frames(inputs.double(), mask, 13).numpy()
    for row, length in enumerate([7, 1, 10, 2]):
        valid = inputs[row, :length].double().numpy()
        times = np.linspace(0.0, length - 1.0, 13)
        expected = np.stack(
            [np.interp(times, np.arange(length), valid[:, c]) for c in range(valid.shape[1])],
            axis=1,
        )
        np.testing.assert_allclose(resampled[row], expected, rtol=1e-12, atol=1e-12)


def test_resampled_model_ignores_the_speed_of_a_linear_motion():
    # Landmarks moving at constant velocity: recorded over 5 or over 9 frames, the same path.
    start = torch.randn(1, 1, 12, generator=torch.Generator().manual_seed(4))
    step = torch.randn(1, 1, 12, generator=torch.Generator().manual_seed(5))
    fast = start + step * torch.linspace(0.0, 1.0, 5)[None, :, None]
    slow = start + step * torch.linspace(0.0, 1.0, 9)[None, :, None]
    model = tiny_model(preprocessing=Preprocessing(frames=8))
    with torch.no_grad():
        torch.testing.assert_close(model(fast), model(slow), rtol=1e-5, atol=1e-5)
        unresampled = tiny_model()
        assert not torch.allclose(unresampled(fast), unresampled(slow), atol=1e-3)


def test_token_positions_frame_index_or_scaled_to_the_length():
    mask = torch.arange(6)[None, :] >= torch.tensor([6, 3, 1])[:, None]
    frame = token_positions(mask, "frame")
    torch.testing.assert_close(frame, torch.arange(6.0).expand(3, 6))
    relative = token_positions(mask, "relative")
    for row, length in enumerate([6, 3, 1]):
        expected = np.arange(6) * RELATIVE_SPAN / length  # valid tokens span [0, RELATIVE_SPAN)
        np.testing.assert_allclose(relative[row].numpy(), expected, rtol=1e-6)


def test_relative_positions_put_a_slower_sequence_on_the_same_time_axis():
    # The same frames repeated twice as slowly: with relative positions each copy of a frame
    # sits at (about) the original frame's position; with frame indices, at twice it.
    inputs, _ = padded_batch([5], frames=5, seed=6)
    slow = inputs.repeat_interleave(2, dim=1)
    fast_positions = token_positions(torch.zeros(1, 5, dtype=torch.bool), "relative")
    slow_positions = token_positions(torch.zeros(1, 10, dtype=torch.bool), "relative")
    torch.testing.assert_close(slow_positions[:, ::2], fast_positions)
    relative = tiny_model(positions="relative", dropout=0.0)
    framewise = tiny_model(positions="frame", dropout=0.0)
    with torch.no_grad():
        gap_relative = (relative(inputs) - relative(slow)).abs().max()
        gap_frame = (framewise(inputs) - framewise(slow)).abs().max()
    assert gap_relative < gap_frame


def test_preprocessing_for_landmarks_finds_the_hips():
    kinect = ["head", "shoulder_center", "spine", "hip_center", "left_shoulder"]
    assert Preprocessing.for_landmarks(kinect).centre_landmarks == (3,)
    pose = ["nose", "left_hip", "right_hip", "left_wrist"]
    chosen = Preprocessing.for_landmarks(pose, velocities=True)
    assert chosen.centre_landmarks == (1, 2)
    assert chosen.velocities
    assert Preprocessing.for_landmarks(["wrist", "thumb_cmc"]).centre_landmarks == ()


def test_preprocessing_for_landmarks_adds_distances_for_small_skeletons():
    assert Preprocessing.for_landmarks([f"j{i}" for i in range(20)]).distances
    assert not Preprocessing.for_landmarks([f"j{i}" for i in range(42)]).distances
    assert not Preprocessing.for_landmarks([]).distances  # unknown skeleton: coordinates only
    assert not Preprocessing.for_landmarks(["a", "b", "c"], distances=False).distances


def test_preprocessing_round_trips_through_dict():
    original = Preprocessing(centre="frame", centre_landmarks=(3, 1), scale=False, velocities=True)
    assert Preprocessing.from_dict(original.to_dict()) == original
    with_distances = Preprocessing(distances=True)
    assert Preprocessing.from_dict(with_distances.to_dict()) == with_distances
    newer_fields = ("distances", "frames")
    older = {key: value for key, value in original.to_dict().items() if key not in newer_fields}
    assert Preprocessing.from_dict(older) == original  # checkpoints from before the option
    resampled = Preprocessing(frames=64)
    assert Preprocessing.from_dict(resampled.to_dict()) == resampled


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_inputs": 10}, "multiple of 3"),
        ({"d_model": 15, "n_heads": 3}, "even"),
        ({"d_model": 16, "n_heads": 3}, "divisible"),
        ({"dropout": 1.0}, "dropout"),
        ({"n_layers": 0}, "n_layers"),
        ({"positions": "absolute"}, "positions"),
    ],
)
def test_model_rejects_bad_hyperparameters(kwargs, message):
    arguments = {"n_inputs": 12, "n_classes": 3}
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        MotionTransformer(arguments.pop("n_inputs"), arguments.pop("n_classes"), **arguments)


def test_model_rejects_bad_input():
    model = tiny_model()
    inputs, mask = padded_batch([3, 2], frames=3)
    with pytest.raises(ValueError, match="shape"):
        model(inputs[..., :9], mask)
    with pytest.raises(ValueError, match="padding_mask"):
        model(inputs, mask[:, :2])
    all_padding = mask.clone()
    all_padding[1] = True
    with pytest.raises(ValueError, match="at least one frame"):
        model(inputs, all_padding)
    with pytest.raises(ValueError, match="centre"):
        Preprocessing(centre="hips")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="centre_landmarks"):
        preprocess(inputs, mask, Preprocessing(centre_landmarks=(9,)))
    for frames in (1, 2.5, True):
        with pytest.raises(ValueError, match="frames"):
            Preprocessing(frames=frames)  # type: ignore[arg-type]
