"""Distance cache: keys, blocks, resumption after an interruption, bad files (gkd.cache)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

import gkd
import gkd.cache as cache_module
from gkd.cache import DistanceCache, cached_pairwise, default_cache_dir, distance_key
from gkd.datasets import make_synthetic_motion
from gkd.distances import HandParams


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    ds = make_synthetic_motion(3, n_subjects=3, per_subject=3, n_landmarks=5, max_frames=16)
    return ds.sequences, ds.lengths


def mirrored_cross(x: np.ndarray, lengths: np.ndarray, **options: object) -> np.ndarray:
    """What the cache promises: cross(x_i, x_j) for i < j, mirrored, zero diagonal."""
    full = gkd.cross(x, x, lengths_a=lengths, lengths_b=lengths, **options)
    upper = np.triu(full, k=1)
    return upper + upper.T


class CountingCross:
    """Stands in for the engine call inside gkd.cache; can stop after some blocks."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.calls = 0
        self.stop_after = stop_after

    def __call__(self, *args: object, **kwargs: object) -> np.ndarray:
        if self.stop_after is not None and self.calls >= self.stop_after:
            raise KeyboardInterrupt
        self.calls += 1
        return gkd.cross(*args, **kwargs)


@pytest.mark.parametrize("block_rows", [1, 4, 7, None, 1000])
def test_any_block_layout_gives_the_same_bits(tmp_path, data, block_rows):
    x, lengths = data
    matrix = cached_pairwise(x, lengths=lengths, block_rows=block_rows, cache_dir=tmp_path)
    assert matrix.dtype == np.float64
    assert np.array_equal(matrix, mirrored_cross(x, lengths))
    assert np.array_equal(matrix, matrix.T)
    assert np.all(np.diag(matrix) == 0)
    np.testing.assert_allclose(matrix, gkd.pairwise(x, lengths=lengths), rtol=1e-9, atol=1e-9)


def test_asymmetric_paper_metric_keeps_both_orders(tmp_path, data):
    x, lengths = data
    matrix = cached_pairwise(
        x, lengths=lengths, metric="procrustes-paper", block_rows=3, cache_dir=tmp_path
    )
    expected = gkd.cross(x, x, lengths_a=lengths, lengths_b=lengths, metric="procrustes-paper")
    np.fill_diagonal(expected, 0.0)
    assert np.array_equal(matrix, expected)
    np.testing.assert_allclose(
        matrix, gkd.pairwise(x, lengths=lengths, metric="procrustes-paper"), rtol=1e-9, atol=1e-9
    )


def test_second_call_reads_the_cache(tmp_path, data, monkeypatch):
    x, lengths = data
    cache = DistanceCache(tmp_path)
    assert cache.lookup(x, lengths=lengths) is None
    first = cached_pairwise(x, lengths=lengths, cache_dir=tmp_path)
    assert cache.lookup(x, lengths=lengths) == cache.matrix_path(distance_key(x, lengths=lengths))
    assert cache.lookup(x, lengths=lengths, band=1) is None
    spy = CountingCross()
    monkeypatch.setattr(cache_module, "cross", spy)
    seen = []
    again = cached_pairwise(
        x, lengths=lengths, cache_dir=tmp_path, progress=lambda d, t: seen.append(d)
    )
    assert spy.calls == 0
    assert seen == []
    assert np.array_equal(first, again)
    # a float64 copy of the same numbers and other block sizes / threads hit the same entry
    cached_pairwise(
        x.astype(np.float64), lengths=lengths, cache_dir=tmp_path, block_rows=2, threads=1
    )
    assert spy.calls == 0
    entries = list((tmp_path / "distances").iterdir())
    assert len(entries) == 1
    assert sorted(p.name for p in entries[0].iterdir()) == ["manifest.json", "matrix.npy"]


def test_cross_matrix_is_the_engines_and_is_read_back(tmp_path, data, monkeypatch):
    x, lengths = data
    queries, query_lengths = x[:4], lengths[:4]
    references, reference_lengths = x[4:], lengths[4:]
    cache = DistanceCache(tmp_path)
    arguments = {"query_lengths": query_lengths, "reference_lengths": reference_lengths}
    assert cache.lookup_cross(queries, references, **arguments) is None
    first = cache.cross(queries, references, **arguments, band=3)
    expected = gkd.cross(
        queries, references, lengths_a=query_lengths, lengths_b=reference_lengths, band=3
    )
    assert first.dtype == np.float64 and first.shape == (4, len(x) - 4)
    assert np.array_equal(first, expected)
    assert cache.lookup_cross(queries, references, **arguments, band=3) is not None
    assert cache.lookup_cross(queries, references, **arguments) is None  # other band
    assert (
        cache.lookup_cross(
            references,
            queries,
            query_lengths=reference_lengths,
            reference_lengths=query_lengths,
            band=3,
        )
        is None
    )  # other order
    spy = CountingCross()
    monkeypatch.setattr(cache_module, "cross", spy)
    seen = []
    again = cache.cross(
        queries.astype(np.float64),
        references,
        **arguments,
        band=3,
        threads=1,
        progress=lambda d, t: seen.append(d),
    )
    assert spy.calls == 0 and seen == []
    assert np.array_equal(again, first)
    # Never the pairwise entry of the same sequences, and a damaged file is computed again.
    assert cache.lookup(x, lengths=lengths, band=3) is None
    path = cache.lookup_cross(queries, references, **arguments, band=3)
    path.write_bytes(b"truncated")
    assert np.array_equal(cache.cross(queries, references, **arguments, band=3), first)
    assert spy.calls == 1


def test_cross_key_follows_both_sides(tmp_path, data):
    x, lengths = data
    cache = DistanceCache(tmp_path)
    queries, references = x[:4], x[4:]
    changed = references.copy()
    changed[-1, 0, 0, 0] += 1e-6
    shorter = lengths[4:].copy()
    shorter[0] -= 1
    cache.cross(queries, references, query_lengths=lengths[:4], reference_lengths=lengths[4:])
    for other_references, other_lengths in ((changed, lengths[4:]), (references, shorter)):
        assert (
            cache.lookup_cross(
                queries,
                other_references,
                query_lengths=lengths[:4],
                reference_lengths=other_lengths,
            )
            is None
        )


def test_cross_refuses_mismatched_landmarks_and_leaves_no_entry(tmp_path, data):
    x, lengths = data
    with pytest.raises(ValueError, match="landmarks"):
        DistanceCache(tmp_path).cross(
            x, x[:, :, :3], query_lengths=lengths, reference_lengths=lengths
        )
    assert not (tmp_path / "distances").exists()


def test_key_follows_everything_that_changes_values(data):
    x, lengths = data
    base = distance_key(x, lengths=lengths)
    assert distance_key(x.astype(np.float64), lengths=lengths) == base
    padded = x.copy()
    i = int(np.argmin(lengths))
    padded[i, lengths[i] :] = 123.0  # past the length: never read
    assert distance_key(padded, lengths=lengths) == base
    changed = x.copy()
    changed[0, 0, 0, 0] += 1e-6
    shorter = lengths.copy()
    shorter[0] -= 1
    variants = [
        distance_key(changed, lengths=lengths),
        distance_key(x, lengths=shorter),
        distance_key(x, lengths=lengths, metric="procrustes-sum"),
        distance_key(x, lengths=lengths, band=2),
        distance_key(x, lengths=lengths, normalize=True),
        distance_key(x, lengths=lengths, missing_cost=0.5),
        distance_key(x, lengths=lengths, metric="hand", hand=HandParams()),
        distance_key(x, lengths=lengths, metric="hand", hand=HandParams(sigma_shape=0.4)),
        distance_key(x[:-1], lengths=lengths[:-1]),
    ]
    assert len({base, *variants}) == len(variants) + 1


def test_interrupted_run_resumes_from_finished_blocks(tmp_path, data, monkeypatch):
    x, lengths = data
    n = len(x)
    block_rows = 4
    n_blocks = -(-n // block_rows)
    cache = DistanceCache(tmp_path / "cache")
    monkeypatch.setattr(cache_module, "cross", CountingCross(stop_after=2))
    with pytest.raises(KeyboardInterrupt):
        cache.pairwise(x, lengths=lengths, block_rows=block_rows)
    key = distance_key(x, lengths=lengths)
    assert [p.name for p in cache.block_paths(key)] == ["rows_0_4.npy", "rows_4_8.npy"]
    assert not cache.matrix_path(key).exists()

    # resumed with another requested layout: the recorded one is kept, done blocks are reused
    spy = CountingCross()
    monkeypatch.setattr(cache_module, "cross", spy)
    progress: list[tuple[int, int]] = []
    resumed = cache.pairwise(
        x, lengths=lengths, block_rows=5, progress=lambda d, t: progress.append((d, t))
    )
    assert spy.calls == n_blocks - 2
    total = sum((min(s + block_rows, n) - s) * (n - s) for s in range(0, n, block_rows))
    assert progress[0] == ((4 * n) + 4 * (n - 4), total)
    assert progress[-1] == (total, total)
    assert cache.block_paths(key) == []

    monkeypatch.undo()
    fresh = cached_pairwise(x, lengths=lengths, cache_dir=tmp_path / "other", block_rows=4)
    assert np.array_equal(resumed, fresh)


def test_two_processes_filling_the_same_entry_both_get_the_matrix(tmp_path, data, monkeypatch):
    # Two runs sharing a cache start the same matrix together; the first to finish writes
    # matrix.npy and removes the blocks before the second joins them (seen with two lanes of
    # benches/tune_mhad.py). Stand-in: a second cache finishes the entry between this one's
    # last block and its assembly.
    x, lengths = data
    cache = DistanceCache(tmp_path)
    compute = DistanceCache._compute_blocks
    other = DistanceCache(tmp_path)
    other_finished: list[np.ndarray] = []

    def compute_then_let_another_finish(self: DistanceCache, *args: object) -> None:
        compute(self, *args)
        if self is not other:
            other_finished.append(other.pairwise(x, lengths=lengths))

    monkeypatch.setattr(DistanceCache, "_compute_blocks", compute_then_let_another_finish)
    matrix = cache.pairwise(x, lengths=lengths, block_rows=4)
    key = distance_key(x, lengths=lengths)
    assert cache.block_paths(key) == []
    assert np.array_equal(matrix, other_finished[0])
    assert np.array_equal(matrix, mirrored_cross(x, lengths))


def test_a_block_lost_with_no_matrix_in_its_place_is_an_error(tmp_path, data, monkeypatch):
    x, lengths = data
    cache = DistanceCache(tmp_path)
    compute = DistanceCache._compute_blocks

    def compute_then_lose_a_block(self: DistanceCache, *args: object) -> None:
        compute(self, *args)
        (cache.entry(distance_key(x, lengths=lengths)) / "rows_4_8.npy").unlink()

    monkeypatch.setattr(DistanceCache, "_compute_blocks", compute_then_lose_a_block)
    with pytest.raises(OSError, match="block rows 4-8 vanished"):
        cache.pairwise(x, lengths=lengths, block_rows=4)


def test_damaged_files_are_recomputed_and_stale_temporaries_removed(tmp_path, data):
    x, lengths = data
    cache = DistanceCache(tmp_path)
    key = distance_key(x, lengths=lengths)
    folder = cache.entry(key)
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"n": len(x), "block_rows": 5}))
    np.save(folder / "rows_0_5.npy", np.zeros((2, 2)))  # wrong shape: not trusted
    (folder / "rows_5_10.npy").write_bytes(b"not an npy file")
    dead = folder / ".rows_10_15.npy.999999999.tmp"  # no such process
    dead.write_bytes(b"partial")
    matrix = cache.pairwise(x, lengths=lengths)
    assert np.array_equal(matrix, mirrored_cross(x, lengths))
    assert not dead.exists()
    assert not [p for p in folder.iterdir() if p.suffix == ".tmp"]

    cache.matrix_path(key).write_bytes(b"truncated")
    assert np.array_equal(cache.pairwise(x, lengths=lengths), matrix)


def test_memory_mapped_result_is_read_only(tmp_path, data):
    x, lengths = data
    matrix = cached_pairwise(x, lengths=lengths, cache_dir=tmp_path, mmap=True)
    assert isinstance(matrix, np.memmap)
    with pytest.raises(ValueError, match="read-only"):
        matrix[0, 1] = 1.0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"metric": "euclid"}, "unknown metric"),
        ({"band": -1}, "band"),
        ({"missing_cost": float("nan")}, "missing_cost"),
        ({"block_rows": 0}, "block_rows"),
        ({"lengths": np.zeros(27, dtype=np.int64)}, r"lengths\[0\]"),
    ],
)
def test_bad_options_leave_no_entry(tmp_path, data, options, message):
    x, lengths = data
    arguments = {"lengths": lengths, **options}
    with pytest.raises(ValueError, match=message):
        cached_pairwise(x, cache_dir=tmp_path, **arguments)
    assert not (tmp_path / "distances").exists()


def test_bad_shapes_are_refused(tmp_path):
    with pytest.raises(ValueError, match="expected"):
        cached_pairwise(np.zeros((3, 4, 5)), cache_dir=tmp_path)
    with pytest.raises(TypeError, match="dtype"):
        cached_pairwise(np.zeros((3, 4, 2, 3), dtype=complex), cache_dir=tmp_path)


def test_default_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("GKD_CACHE_DIR", str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("GKD_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "gkd"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path.home() / ".cache" / "gkd"


def test_entry_refuses_what_is_not_a_key(tmp_path):
    with pytest.raises(ValueError, match="not a cache key"):
        DistanceCache(tmp_path).entry("../../etc")
    assert os.fspath(DistanceCache(tmp_path).root) == os.fspath(tmp_path)


def test_a_strided_view_is_made_contiguous_once_for_all_blocks(tmp_path, data, monkeypatch):
    x, lengths = data
    # One "hand" of a two-hand array: a view the engine cannot read in place.
    hands = np.stack([x, x[::-1]], axis=2)
    view = hands[:, :, 0]
    assert not view.flags.c_contiguous
    columns: list[np.ndarray] = []

    def recording_cross(a: np.ndarray, b: np.ndarray, **kwargs: object) -> np.ndarray:
        columns.append(b)
        return gkd.cross(a, b, **kwargs)

    monkeypatch.setattr(cache_module, "cross", recording_cross)
    matrix = cached_pairwise(view, lengths=lengths, block_rows=2, cache_dir=tmp_path)
    assert np.array_equal(matrix, mirrored_cross(x, lengths))
    assert len(columns) > 1
    assert all(b.flags.c_contiguous for b in columns)
    assert all(np.shares_memory(b, columns[0]) for b in columns)


def test_default_blocks_hold_enough_pairs_or_row_frames():
    def enough(rows: int, n: int, frames: int) -> bool:
        return rows == n or (rows * n >= 16384 and rows * frames >= 1024)

    for n, frames in [(5, 80), (100, 16), (861, 60), (6300, 80), (20000, 4), (50000, 200)]:
        rows = cache_module._default_block_rows(np.full(n, frames, dtype=np.int64))
        assert 1 <= rows <= n
        # the fewest rows that give a block both about 16,000 pairs and 1,024 row frames
        assert enough(rows, n, frames), (n, frames, rows)
        assert not enough(rows - 1, n, frames), (n, frames, rows)
    # SIGNUM's shape: 13 rows of 80 frames, where pairs alone would have given 3
    assert cache_module._default_block_rows(np.full(6300, 80)) == 13
