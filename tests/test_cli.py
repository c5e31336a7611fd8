"""The gkd-run command line: every command, its errors, and real subprocess runs."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

import gkd.cache as cache_module
import gkd.cli as cli
import gkd.experiment as experiment
from gkd.cache import DistanceCache, cached_pairwise, distance_key
from gkd.cli import app
from gkd.datasets import load_npz, make_synthetic_motion, make_synthetic_signum, save_npz
from gkd.distances import pairwise, with_motion
from gkd.experiment import predict_file
from gkd.train import load_checkpoint

runner = CliRunner()
# A small student, so that training takes a fraction of a second.
TINY = '{"d_model": 16, "n_heads": 2, "n_layers": 1}'


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def gkd_run(*args: object, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``gkd-run ARGS`` in a fresh interpreter (``python -m gkd``, so PATH does not matter)."""
    return subprocess.run(
        [sys.executable, "-m", "gkd", *(str(a) for a in args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def one_error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert "Traceback" not in output
    assert lines[0].startswith("gkd-run: error: ")
    return lines[0]


@pytest.fixture(scope="module")
def motion_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "motion.npz"
    dataset = make_synthetic_motion(3, n_subjects=4, per_subject=3, n_landmarks=6, max_frames=16)
    save_npz(dataset, path)
    return path


@pytest.fixture(scope="module")
def signum_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("signum")
    return make_synthetic_signum(
        folder, n_classes=3, signers=(2, 1, 1), repetitions=2, frames=12, seed=1
    )


def fit_small(motion_file: Path, out: Path, *options: object) -> Path:
    """`gkd-run fit` of the small synthetic file, test subject 4, on one CPU thread."""
    result = invoke(
        "fit",
        motion_file,
        "--test-subjects",
        "4",
        *options,
        "--device",
        "cpu",
        "--threads",
        "1",
        "--out",
        out,
        "--cache-dir",
        out / "cache",
        "--quiet",
    )
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def fitted(motion_file, tmp_path_factory) -> Path:
    """Output folder of one small `gkd-run fit` run (shared by the predict tests)."""
    return fit_small(
        motion_file,
        tmp_path_factory.mktemp("fit"),
        "--epochs",
        "1",
        "--train-config",
        TINY[:-1] + ', "epochs": 5}',
    )


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ([], ["mhad", "signum", "fit", "distances", "predict"]),
        (
            ["mhad"],
            [
                "--protocol",
                "--quick",
                "--epochs",
                "--seeds",
                "--students",
                "--device",
                "--threads",
                "--retrain",
                "--refit-scale",
                "--lead",
                "--blends",
            ],
        ),
        (["signum"], ["--data", "X_train.npy"]),
        (
            ["fit"],
            [
                "--test-subjects",
                "--metric",
                "--groups",
                "--student-landmarks",
                "--lead",
                "--blends",
            ],
        ),
        (["distances"], ["--metric", "--band", "--lead", "--block-rows", "resumes"]),
        (["predict"], ["--csv", "--output", "checkpoint"]),
    ],
)
def test_help_names_the_options(command, expected):
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0
    for word in expected:
        assert word in result.output
    assert "--per-class-limit" not in result.output


def test_no_arguments_shows_help():
    result = invoke()
    assert result.exit_code in (0, 2)
    assert "Commands" in result.output


def test_signum_without_data_says_what_to_do():
    result = invoke("signum")
    assert result.exit_code == 2
    line = one_error_line(result.output)
    assert "obtain" in line and "X_train.npy" in line and "gkd-run signum --data DIR" in line


def test_signum_with_a_wrong_folder(tmp_path):
    result = invoke("signum", "--data", tmp_path)
    assert result.exit_code == 2
    line = one_error_line(result.output)
    assert "X_train.npy" in line and f"gkd-run signum --data {tmp_path}" in line


def test_signum_on_synthetic_data(signum_folder, tmp_path):
    result = invoke(
        "signum",
        "--data",
        signum_folder,
        "--epochs",
        "1",
        "--train-config",
        TINY,
        "--device",
        "cpu",
        "--out",
        tmp_path / "out",
        "--cache-dir",
        tmp_path / "cache",
        "--quiet",
    )
    assert result.exit_code == 0, result.output
    assert "| Student (distilled) |" in result.output
    metadata = json.loads((tmp_path / "out" / "results.json").read_text())["metadata"]
    assert metadata["teacher"]["metric"] == "hand"
    assert metadata["teacher"]["groups"] == ["left_hand", "right_hand"]
    assert metadata["dataset"]["student_landmarks"] == ["left_hand", "right_hand"]
    assert metadata["dataset"]["landmarks"] == 42
    # two cached matrices, one per hand
    assert len(list((tmp_path / "cache" / "distances").iterdir())) == 2


def test_fit_writes_results(fitted):
    document = json.loads((fitted / "results.json").read_text())
    config = document["metadata"]["train_config"]
    assert (config["d_model"], config["n_layers"], config["epochs"]) == (16, 1, 1)
    assert document["metadata"]["command"].startswith("gkd-run")
    assert document["metadata"]["dataset"]["splits"]["test"]["subjects"] == [4]
    assert (fitted / "results.md").read_text().startswith("### motion.npz")
    assert (fitted / "checkpoints" / "distilled_seed0.pt").is_file()


def test_fit_one_student(motion_file, tmp_path):
    out = fit_small(
        motion_file, tmp_path, "--epochs", "1", "--train-config", TINY, "--students", "distilled"
    )
    document = json.loads((out / "results.json").read_text())
    assert list(document["runs"]) == ["k-NN teacher", "Student (distilled)"]
    assert document["metadata"]["students"] == ["distilled"]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["distilled_seed0.pt"]
    # the CLI's names and default refit, kept without importing torch, are the experiment's
    assert tuple(experiment.STUDENTS) == cli.STUDENT_NAMES
    assert dict(experiment.REFIT_SCALES) == cli.REFIT_SCALES


@pytest.mark.parametrize(
    ("option", "scales"),
    [("2", {"direct": 2.0, "distilled": 2.0}), ("distilled=3", {"direct": 2.0, "distilled": 3.0})],
)
def test_fit_refit_scale_reaches_the_experiment(motion_file, tmp_path, option, scales):
    out = fit_small(
        motion_file, tmp_path, "--epochs", "2", "--train-config", TINY, "--refit-scale", option
    )
    document = json.loads((out / "results.json").read_text())
    assert document["metadata"]["refit_scale"] == scales
    for short, method in (("direct", "Transformer (direct)"), ("distilled", "Student (distilled)")):
        (run,) = document["runs"][method]
        _, info = load_checkpoint(out / "checkpoints" / f"{short}_seed0.pt")
        refit_epochs = info["training"]["config"]["epochs"]
        assert refit_epochs == max(1, round(scales[short] * run["best_epoch"]))


def test_fit_prints_progress_unless_quiet(motion_file, tmp_path):
    args = (
        "fit",
        motion_file,
        "--test-subjects",
        "4",
        "--validation-subjects",
        "3",
        "--epochs",
        "1",
        "--train-config",
        TINY,
        "--device",
        "cpu",
        "--out",
        tmp_path / "out",
        "--cache-dir",
        tmp_path / "cache",
        "--blends",
        "1",
    )
    # A training progress line ("1/1 epochs"), not the report's "the chosen epochs".
    training = re.compile(r"\d+/\d+ epochs")
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    for text in ("pairs", "k-NN: k =", "soft targets: temperature", "results written"):
        assert text in result.output
    assert training.search(result.output)
    assert "from the cache" not in result.output
    assert "reusing" not in result.output
    again = invoke(*args)
    assert again.exit_code == 0, again.output
    assert "procrustes DTW: from the cache" in again.output
    # The teacher's labels of the blends are kept too (selection and refit).
    assert again.output.count("blends, labelled by the teacher: from the cache") == 2
    # The students too: the rerun trains none of them, unless told to.
    assert "direct, seed 0: reusing" in again.output and not training.search(again.output)
    retrained = invoke(*args, "--retrain")
    assert retrained.exit_code == 0, retrained.output
    assert "reusing" not in retrained.output and training.search(retrained.output)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--test-subjects", "9"], 1, "test subject 9 has no sequence"),
        (["--test-subjects", "four"], 2, "whole numbers"),
        (["--test-subjects", "4", "--validation-subjects", "4"], 1, "both a validation"),
        (["--test-subjects", "4", "--metric", "euclid"], 2, "euclid"),
        (["--test-subjects", "4", "--groups", "left_hand"], 1, "left_hand"),
        (["--test-subjects", "4", "--temperature", "0"], 2, "positive"),
        (["--test-subjects", "4", "--temperature", "warm"], 2, "positive number or 'auto'"),
        (["--test-subjects", "4", "--epochs", "0"], 2, "--epochs"),
        (["--test-subjects", "4", "--refit-scale", "0"], 2, "--refit-scale"),
        (["--test-subjects", "4", "--refit-scale", "direct=-1"], 2, "got '-1'"),
        (["--test-subjects", "4", "--refit-scale", "teacher=2"], 2, "student 'teacher'"),
        (["--test-subjects", "4", "--students", "teacher"], 2, "direct, distilled or both"),
        (["--test-subjects", "4", "--students", ","], 2, "direct, distilled or both"),
        (["--test-subjects", "4", "--train-config", "{nope"], 2, "not valid JSON"),
        (["--test-subjects", "4", "--train-config", "[1]"], 2, "neither a JSON object"),
        (["--test-subjects", "4", "--train-config", '{"layers": 1}'], 1, "unknown TrainConfig"),
        (["--test-subjects", "4", "--lead", "-1"], 2, "--lead"),
        (["--test-subjects", "4", "--lead", "5", "--metric", "hand"], 1, "not 'hand'"),
        (["--test-subjects", "4", "--blends", "-1"], 2, "--blends"),
        (
            ["--test-subjects", "4", "--blends", "1", "--metric", "hand"],
            1,
            "with the 'hand' metric",
        ),
    ],
)
def test_fit_errors(motion_file, tmp_path, args, code, message):
    result = invoke("fit", motion_file, *args, "--cache-dir", tmp_path, "--out", tmp_path / "o")
    assert result.exit_code == code, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    if code == 1:
        one_error_line(result.output)


def test_missing_and_corrupt_files(tmp_path):
    result = invoke("fit", tmp_path / "none.npz", "--test-subjects", "1")
    assert result.exit_code == 2
    assert "none.npz does not exist" in one_error_line(result.output)
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"PK\x03\x04 this is not a zip archive")
    result = invoke("distances", broken, tmp_path / "d.npy", "--cache-dir", tmp_path)
    assert result.exit_code == 1
    assert "broken.npz" in one_error_line(result.output)


def test_debug_shows_the_exception(tmp_path):
    result = invoke("fit", tmp_path / "none.npz", "--test-subjects", "1", "--debug")
    assert result.exit_code != 0
    assert isinstance(result.exception, FileNotFoundError)


def test_unexpected_errors_and_interruptions(motion_file, tmp_path, monkeypatch):
    def explode(**kwargs):
        raise RuntimeError("something broke")

    monkeypatch.setattr(experiment, "run_npz", explode)
    result = invoke("fit", motion_file, "--test-subjects", "4", "--cache-dir", tmp_path)
    assert result.exit_code == 1
    assert "RuntimeError: something broke (rerun with --debug" in one_error_line(result.output)

    def interrupt(**kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(experiment, "run_npz", interrupt)
    result = invoke("fit", motion_file, "--test-subjects", "4", "--cache-dir", tmp_path)
    assert result.exit_code == 130
    assert "run the same command again to resume" in one_error_line(result.output)
    # predict saves nothing, so there is nothing to resume from
    monkeypatch.setattr(experiment, "predict_file", interrupt)
    result = invoke("predict", tmp_path / "any.pt", motion_file)
    assert result.exit_code == 130
    assert one_error_line(result.output) == "gkd-run: error: interrupted"


@pytest.mark.parametrize(
    ("args", "lead", "blends"),
    [
        ([], 10.0, 2.0),  # UTD-MHAD's default teacher (gkd.teacher.MHAD_LEAD, MHAD_BLENDS)
        (["--blends", "0"], 10.0, 0.0),
        (["--lead", "0", "--blends", "0"], 0.0, 0.0),
        (["--lead", "4", "--blends", "1.5"], 4.0, 1.5),
    ],
)
def test_mhad_lead_and_blends_reach_the_teacher(monkeypatch, args, lead, blends):
    seen = {}

    def record(**kwargs):
        seen.update(kwargs)
        raise KeyboardInterrupt  # stop before any work

    monkeypatch.setattr(experiment, "run_mhad", record)
    result = invoke("mhad", *args)
    assert result.exit_code == 130, result.output
    assert seen["teacher"].lead == lead
    assert seen["teacher"].blends == blends


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_cuda_without_a_gpu_is_a_usage_error():
    result = invoke("mhad", "--device", "cuda")
    assert result.exit_code == 2
    assert "no CUDA GPU" in result.output


def test_distances_command(motion_file, tmp_path):
    out = tmp_path / "sub" / "d.npy"
    result = invoke(
        "distances", motion_file, out, "--metric", "procrustes-sum", "--band", "3",
        "--cache-dir", tmp_path / "cache", "--quiet",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.output == ""
    dataset = load_npz(motion_file)
    expected = cached_pairwise(
        dataset.sequences,
        lengths=dataset.lengths,
        metric="procrustes-sum",
        band=3,
        cache_dir=tmp_path / "cache",
    )
    assert np.array_equal(np.load(out), expected)
    assert not [p for p in out.parent.iterdir() if p.name != "d.npy"]


def test_distances_with_motion(motion_file, tmp_path):
    out = tmp_path / "d.npy"
    result = invoke("distances", motion_file, out, "--lead", "4", "-q", "--cache-dir", tmp_path)
    assert result.exit_code == 0, result.output
    dataset = load_npz(motion_file)
    frames = with_motion(dataset.sequences, lengths=dataset.lengths, lead=4)
    np.testing.assert_allclose(np.load(out), pairwise(frames, lengths=dataset.lengths), rtol=1e-12)
    result = invoke("distances", motion_file, out, "--lead", "4", "--metric", "hand")
    assert result.exit_code == 1
    assert "--lead is for the procrustes and procrustes-sum metrics, not 'hand'" in one_error_line(
        result.output
    )


def test_distances_per_group_are_summed(signum_folder, tmp_path):
    from gkd.datasets import load_signum

    test = load_signum(signum_folder).test
    save_npz(test, tmp_path / "test.npz")
    result = invoke(
        "distances", tmp_path / "test.npz", tmp_path / "d.npy", "--metric", "hand",
        "--groups", "left_hand,right_hand", "--cache-dir", tmp_path / "cache",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    left = cached_pairwise(
        test.select_landmarks("left_hand").sequences,
        lengths=test.lengths,
        metric="hand",
        cache_dir=tmp_path / "cache",
    )
    right = cached_pairwise(
        test.select_landmarks("right_hand").sequences,
        lengths=test.lengths,
        metric="hand",
        cache_dir=tmp_path / "cache",
    )
    assert np.array_equal(np.load(tmp_path / "d.npy"), left + right)
    assert "left_hand" in result.output and "right_hand" in result.output


def test_predict_table_and_csv(fitted, motion_file, tmp_path):
    checkpoint = fitted / "checkpoints" / "direct_seed0.pt"
    table = invoke("predict", checkpoint, motion_file)
    assert table.exit_code == 0, table.output
    assert "predicted" in table.output and "class_0" in table.output
    assert "accuracy against the file's labels" in table.output

    result = invoke("predict", checkpoint, motion_file, "--csv", "--quiet")
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.output)))
    assert rows[0] == ["index", "predicted", "probability", "true"]
    dataset = load_npz(motion_file)
    assert len(rows) == len(dataset) + 1
    assert all(0 < float(row[2]) <= 1 for row in rows[1:])
    assert [row[3] for row in rows[1:]] == [dataset.class_names[c] for c in dataset.labels]

    target = tmp_path / "p.csv"
    result = invoke("predict", checkpoint, motion_file, "--output", target, "--quiet")
    assert result.exit_code == 0 and result.output == ""
    assert target.read_text() == invoke("predict", checkpoint, motion_file, "--csv").stdout


def test_fit_an_ensemble_and_predict_with_all_its_students(motion_file, tmp_path):
    out = fit_small(
        motion_file,
        tmp_path / "out",
        "--ensemble",
        "2",
        "--train-config",
        TINY[:-1] + ', "epochs": 2}',
    )
    members = [out / "checkpoints" / f"distilled_seed0_member{i}.pt" for i in (0, 1)]
    result = invoke("predict", members[0], motion_file, "--with", members[1], "--csv", "--quiet")
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.output)))[1:]
    expected = predict_file(checkpoint=members, data=motion_file)
    assert [float(row[2]) for row in rows] == pytest.approx(expected.confidence, abs=1e-4)
    assert json.loads((out / "results.json").read_text())["metadata"]["ensemble"] == 2


def test_predict_errors(fitted, motion_file, tmp_path):
    result = invoke("predict", tmp_path / "none.pt", motion_file)
    assert result.exit_code == 2
    assert "none.pt does not exist" in one_error_line(result.output)
    (tmp_path / "fake.pt").write_bytes(b"not a checkpoint")
    result = invoke("predict", tmp_path / "fake.pt", motion_file)
    assert result.exit_code == 1
    assert "fake.pt" in one_error_line(result.output)


def test_subprocess_run_writes_the_same_matrix(motion_file, tmp_path):
    out = tmp_path / "d.npy"
    completed = gkd_run("distances", motion_file, out, "--cache-dir", tmp_path, "--quiet")
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == "" and completed.stderr == ""
    dataset = load_npz(motion_file)
    expected = cached_pairwise(dataset.sequences, lengths=dataset.lengths, cache_dir=tmp_path)
    assert np.array_equal(np.load(out), expected)


def test_subprocess_errors_are_one_line(tmp_path):
    completed = gkd_run("signum")
    assert completed.returncode == 2
    assert completed.stdout == ""
    assert "gkd-run signum --data DIR" in one_error_line(completed.stderr)
    completed = gkd_run("mhad", "--protocol", "sideways")
    assert completed.returncode == 2
    assert "sideways" in completed.stderr and "Traceback" not in completed.stderr


def test_killed_run_resumes_to_the_same_bits(tmp_path, monkeypatch):
    """SIGKILL a real `gkd-run distances` after its first block, rerun, compare bit for bit."""
    dataset = make_synthetic_motion(
        5, n_subjects=4, per_subject=3, n_landmarks=10, min_frames=40, max_frames=55, seed=3
    )
    data = tmp_path / "data.npz"
    save_npz(dataset, data)
    cache = DistanceCache(tmp_path / "cache")
    key = distance_key(dataset.sequences, lengths=dataset.lengths)
    folder = cache.entry(key)
    block_rows = 2
    args = ["distances", data, tmp_path / "out.npy", "--cache-dir", cache.root]
    command = [sys.executable, "-m", "gkd", *map(str, args)]
    log = tmp_path / "stderr.txt"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [*command, "--block-rows", str(block_rows), "--threads", "1", "--quiet"],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            deadline = time.monotonic() + 60
            while not cache.block_paths(key):
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "no block was written within a minute"
                time.sleep(0.005)
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert process.returncode == -signal.SIGKILL
    assert not cache.matrix_path(key).exists(), "the run finished before it could be killed"
    assert not (tmp_path / "out.npy").exists()
    finished = {p.name: np.load(p) for p in cache.block_paths(key)}
    n_blocks = -(-len(dataset) // block_rows)
    assert 1 <= len(finished) < n_blocks

    # Rerun (in process, to count the engine calls): only the missing blocks are computed.
    calls = []

    def counting_cross(*a, **kw):
        calls.append(1)
        return real_cross(*a, **kw)

    real_cross = cache_module.cross
    monkeypatch.setattr(cache_module, "cross", counting_cross)
    result = invoke(*args, "--quiet")
    assert result.exit_code == 0, result.output
    assert len(calls) == n_blocks - len(finished)
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]
    monkeypatch.undo()

    uninterrupted = tmp_path / "fresh.npy"
    result = invoke("distances", data, uninterrupted, "--cache-dir", tmp_path / "fresh")
    assert result.exit_code == 0, result.output
    resumed = np.load(tmp_path / "out.npy")
    assert resumed.tobytes() == np.load(uninterrupted).tobytes()


def ctrl_c_once(args: list, ready: Callable[[], bool], *, within: float) -> tuple[int, str, str]:
    """Start a real ``gkd-run ARGS``, send SIGINT once ``ready()`` (which must come ``within``
    seconds), and return (exit code, stdout, stderr)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "gkd", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + within
        while not ready():
            assert process.poll() is None, "the run ended before it was ready to be stopped"
            assert time.monotonic() < deadline, f"the run was not ready within {within} s"
            time.sleep(0.005)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return process.returncode, stdout, stderr


def test_ctrl_c_stops_with_one_line_and_keeps_finished_blocks(tmp_path, ctrl_c_enabled):
    """SIGINT (Ctrl-C) to a real run: exit 130, one line saying how to resume, blocks kept."""
    dataset = make_synthetic_motion(
        5, n_subjects=4, per_subject=3, n_landmarks=10, min_frames=40, max_frames=55, seed=4
    )
    data = tmp_path / "data.npz"
    save_npz(dataset, data)
    cache = DistanceCache(tmp_path / "cache")
    key = distance_key(dataset.sequences, lengths=dataset.lengths)
    args = ["distances", data, tmp_path / "d.npy", "--cache-dir", cache.root]
    args += ["--block-rows", "2", "--threads", "1", "--quiet"]
    returncode, stdout, stderr = ctrl_c_once(args, lambda: bool(cache.block_paths(key)), within=60)
    assert returncode == 130, stderr
    assert stdout == ""
    line = one_error_line(stderr)
    assert "finished blocks of distances are kept: run the same command again" in line
    assert "students" not in line  # this command trains none
    assert cache.block_paths(key)
    assert not cache.matrix_path(key).exists()


def test_ctrl_c_in_training_keeps_the_finished_students(motion_file, tmp_path, ctrl_c_enabled):
    """SIGINT to a real `gkd-run fit` after its first student: the rerun reuses that student."""
    out = tmp_path / "out"
    args = ["fit", motion_file, "--test-subjects", "4", "--seeds", "3", "--epochs", "20"]
    args += ["--train-config", TINY, "--device", "cpu", "--threads", "1", "--out", out]
    args += ["--cache-dir", tmp_path / "cache", "--quiet"]
    first = out / "checkpoints" / "direct_seed0.pt"
    returncode, _, stderr = ctrl_c_once(args, first.exists, within=120)
    assert returncode == 130, stderr
    assert "trained students are kept" in one_error_line(stderr)
    assert not (out / "results.json").exists(), "the run finished before it could be stopped"
    kept = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert "direct_seed0.pt" in kept and len(kept) < 6 and not any(".tmp" in n for n in kept)
    resumed = invoke(*[a for a in args if a != "--quiet"])
    assert resumed.exit_code == 0, resumed.output
    assert "direct, seed 0: reusing" in resumed.output
    document = json.loads((out / "results.json").read_text())
    assert sorted(document["metadata"]["reused_students"]) == kept


def test_temperature_option_takes_a_number_or_auto():
    from gkd.cli import _temperature

    assert _temperature("0.2") == 0.2
    assert _temperature("auto") is None  # chosen by validation cross-entropy
    assert _temperature(" AUTO ") is None


def test_refit_scale_option_takes_a_number_or_one_per_student():
    from gkd.cli import _refit_scale

    assert _refit_scale(None) is None  # each student's default
    assert _refit_scale("1.5") == 1.5
    assert _refit_scale("direct=2.5") == {"direct": 2.5}
    assert _refit_scale(" direct = 1, distilled=3 ") == {"direct": 1.0, "distilled": 3.0}
    for text in ("0", "-2", "nan", "inf", "long", "direct=", "distilled=0", "=2", "both=2"):
        with pytest.raises(typer.BadParameter):
            _refit_scale(text)
