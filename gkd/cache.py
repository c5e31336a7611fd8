"""Distance matrices cached on disk, computed in resumable blocks of rows.

A matrix is stored under ``<cache>/distances/<key>/``, where the key is a SHA-256 of everything
that changes its values: the valid frames of every sequence, their lengths, the metric and its
parameters, and the engine build. Besides the pairwise matrices, :meth:`DistanceCache.cross`
keeps (queries x references) matrices, each computed whole and written at once.

While a pairwise matrix is being computed, each finished block of rows is written there
atomically (a temporary file, then :func:`os.replace`), so a run stopped midway (Ctrl-C, or the
process killed) resumes from the finished blocks. Every pair ``i < j`` is computed as
``cross(x[i], x[j])`` whatever the block layout, so a resumed run, or a run with other block
sizes, gives the same matrix bit for bit. Runs that share a cache may fill the same entry at
once: each computes the blocks it does not find, and one that finds its blocks removed by another
that finished first reads that one's matrix.

The cache folder is ``$GKD_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/gkd``, else
``~/.cache/gkd``; deleting it is always safe.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import time
from dataclasses import astuple, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from gkd import _core
from gkd.distances import METRICS, HandParams, Metric, ProgressCallback, cross

__all__ = [
    "CACHE_ENV",
    "DistanceCache",
    "cached_pairwise",
    "default_cache_dir",
    "distance_key",
]

CACHE_ENV = "GKD_CACHE_DIR"
FORMAT_VERSION = 1

# Pairs per block when the caller does not choose: a second or two of work on a small machine,
# so an interrupted run loses little. Each block also computes its own rows against each other
# in both orders, a fraction of about block_rows / N extra work, kept here to a few per cent.
_DEFAULT_BLOCK_PAIRS = 1 << 14
# ... but at least this many row frames per block. Every block normalises its column
# sequences afresh, a cost that grows with the columns' frames but not with the rows, so a
# thin block over many long columns (3 rows of SIGNUM's 80 frames against 6,300 sequences)
# spent about 4 % of its time there; 1,024 row frames (13 such rows) cut that to a quarter.
_MIN_BLOCK_ROW_FRAMES = 1 << 10
_BLOCK_NAME = re.compile(r"^rows_(\d+)_(\d+)\.npy$")
_TEMP_NAME = re.compile(r"^\.(.+)\.(\d+)\.tmp$")


def default_cache_dir() -> Path:
    """The cache folder: ``$GKD_CACHE_DIR``, else ``$XDG_CACHE_HOME/gkd``, else ``~/.cache/gkd``."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "gkd"


@lru_cache(maxsize=1)
def _engine_fingerprint() -> str:
    """Version plus a digest of the compiled engine: a rebuilt extension starts afresh."""
    digest = hashlib.sha256()
    library = getattr(_core, "__file__", None)
    if library and Path(library).is_file():
        with Path(library).open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return f"{_core.__version__}:{digest.hexdigest()[:16]}"


@dataclass(frozen=True)
class _Settings:
    """Everything besides the data that changes a matrix's values."""

    metric: str
    band: int | None
    normalize: bool
    missing_cost: float | None
    hand: tuple[float, float, float, float] | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "band": self.band,
            "normalize": self.normalize,
            "missing_cost": self.missing_cost,
            "hand": list(self.hand) if self.hand is not None else None,
        }


def _as_sequences(
    x: ArrayLike, lengths: ArrayLike | None
) -> tuple[NDArray[np.floating], NDArray[np.int64]]:
    """(N, T, L, 3) array (not copied when already so) and int64 lengths, with light checks.

    The engine does the full validation when the first block is computed; this only makes sure
    the key can be formed.
    """
    array = np.asarray(x)
    if array.ndim == 3 and array.shape[2] % 3 == 0:
        array = array.reshape(array.shape[0], array.shape[1], array.shape[2] // 3, 3)
    if array.ndim != 4 or array.shape[3] != 3:
        raise ValueError(
            f"sequences have shape {array.shape}; expected (N, T, L, 3) or (N, T, L*3)"
        )
    if array.dtype.kind not in "fiu":
        raise TypeError(f"sequences must hold real numbers, got dtype {array.dtype}")
    n, frames = array.shape[:2]
    if lengths is None:
        valid = np.full(n, frames, dtype=np.int64)
    else:
        valid = np.asarray(lengths)
        if valid.shape != (n,):
            raise ValueError(f"lengths must have shape ({n},), one per sequence, got {valid.shape}")
        if n and valid.dtype.kind not in "iu":
            raise TypeError(f"lengths must be integers, got dtype {valid.dtype}")
        valid = valid.astype(np.int64)
        bad = np.flatnonzero((valid < 1) | (valid > frames))
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"lengths[{i}] = {int(valid[i])} is outside [1, {frames}]")
    return array, valid


def distance_key(
    sequences: ArrayLike,
    *,
    lengths: ArrayLike | None = None,
    metric: Metric = "procrustes",
    band: int | None = None,
    normalize: bool = False,
    missing_cost: float | None = None,
    hand: HandParams | None = None,
) -> str:
    """The cache key of ``pairwise(sequences, ...)``: a hex SHA-256.

    Only what changes the values enters the key: each sequence's valid frames (as float64, so a
    float32 copy of the same numbers has the same key; padding is never read), the lengths,
    the metric, band, normalisation, missing-frame cost, hand parameters and the engine build.
    The thread count and the block layout do not.

    Parameters
    ----------
    sequences : array_like
        ``(N, T, L, 3)`` or ``(N, T, L*3)``.
    lengths : array_like of int, optional
        Valid frames per sequence; default T.
    metric, band, normalize, missing_cost, hand
        As for :func:`gkd.pairwise`.

    Returns
    -------
    str
        64 hex digits.

    Raises
    ------
    ValueError, TypeError
        If the shapes or lengths are unusable.
    """
    array, valid = _as_sequences(sequences, lengths)
    settings = _settings(metric, band, normalize, missing_cost, hand)
    return _key(array, valid, settings)


def _settings(
    metric: str,
    band: int | None,
    normalize: bool,
    missing_cost: float | None,
    hand: HandParams | None,
) -> _Settings:
    # Checked here so that a bad option leaves no cache entry behind; the engine checks the rest.
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {', '.join(METRICS)}")
    if band is not None and (isinstance(band, bool) or int(band) != band or band < 0):
        raise ValueError(f"band must be a whole number of frames >= 0 or None, got {band!r}")
    if missing_cost is not None and not (math.isfinite(missing_cost) and missing_cost >= 0):
        raise ValueError(f"missing_cost must be a finite number >= 0, got {missing_cost}")
    return _Settings(
        metric=str(metric),
        band=None if band is None else int(band),
        normalize=bool(normalize),
        missing_cost=None if missing_cost is None else float(missing_cost),
        hand=None if hand is None else tuple(float(v) for v in astuple(hand)),  # type: ignore[arg-type]
    )


def _key(array: np.ndarray, lengths: NDArray[np.int64], settings: _Settings) -> str:
    header = {
        "format": FORMAT_VERSION,
        "kind": "pairwise",
        "engine": _engine_fingerprint(),
        "n": int(array.shape[0]),
        "landmarks": int(array.shape[2]),
        **settings.to_dict(),
    }
    digest = hashlib.sha256(json.dumps(header, sort_keys=True).encode())
    _digest_sequences(digest, array, lengths)
    return digest.hexdigest()


def _cross_key(
    queries: np.ndarray,
    query_lengths: NDArray[np.int64],
    references: np.ndarray,
    reference_lengths: NDArray[np.int64],
    settings: _Settings,
) -> str:
    """The key of a (queries x references) matrix; its own "kind", so never a pairwise key."""
    header = {
        "format": FORMAT_VERSION,
        "kind": "cross",
        "engine": _engine_fingerprint(),
        "n": [int(queries.shape[0]), int(references.shape[0])],
        "landmarks": [int(queries.shape[2]), int(references.shape[2])],
        **settings.to_dict(),
    }
    digest = hashlib.sha256(json.dumps(header, sort_keys=True).encode())
    _digest_sequences(digest, queries, query_lengths)
    _digest_sequences(digest, references, reference_lengths)
    return digest.hexdigest()


def _digest_sequences(digest: Any, array: np.ndarray, lengths: NDArray[np.int64]) -> None:
    """Feed ``lengths`` and each sequence's valid frames to the hash ``digest``."""
    digest.update(lengths.astype("<i8").tobytes())
    for i, length in enumerate(lengths):
        # Little-endian float64 of the valid frames only: what the engine reads.
        digest.update(np.ascontiguousarray(array[i, :length], dtype="<f8").tobytes())


def _default_block_rows(lengths: NDArray[np.int64]) -> int:
    """Rows per block: about ``_DEFAULT_BLOCK_PAIRS`` pairs, and ``_MIN_BLOCK_ROW_FRAMES``
    row frames, whichever needs more rows."""
    n = len(lengths)
    if n == 0:
        return 1
    by_pairs = math.ceil(_DEFAULT_BLOCK_PAIRS / n)
    by_frames = math.ceil(_MIN_BLOCK_ROW_FRAMES / float(np.mean(lengths)))
    return max(1, min(n, max(by_pairs, by_frames)))


def _block_bounds(n: int, block_rows: int) -> list[tuple[int, int]]:
    return [(start, min(start + block_rows, n)) for start in range(0, n, block_rows)]


def _block_pairs(n: int, start: int, stop: int, symmetric: bool) -> int:
    """Pairs the engine computes for rows [start, stop): against columns start.. or all."""
    return (stop - start) * ((n - start) if symmetric else n)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _save_atomic(path: Path, array: np.ndarray) -> None:
    """Write ``array`` to ``path`` so that readers see either nothing or the whole file."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with temp.open("wb") as handle:
            np.save(handle, array, allow_pickle=False)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


class DistanceCache:
    """A folder of cached distance matrices (see the module docstring).

    Parameters
    ----------
    root : pathlib.Path, optional
        The cache folder; default :func:`default_cache_dir`.
    """

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()

    def __repr__(self) -> str:
        return f"DistanceCache({str(self.root)!r})"

    def entry(self, key: str) -> Path:
        """Folder of the matrix with cache key ``key``."""
        if not re.fullmatch(r"[0-9a-f]{64}", key):
            raise ValueError(f"not a cache key: {key!r}")
        return self.root / "distances" / key

    def matrix_path(self, key: str) -> Path:
        """File of the finished matrix with cache key ``key`` (it may not exist yet)."""
        return self.entry(key) / "matrix.npy"

    def block_paths(self, key: str) -> list[Path]:
        """Finished block files of an unfinished matrix, in row order."""
        folder = self.entry(key)
        if not folder.is_dir():
            return []
        found = [(m, p) for p in folder.iterdir() if (m := _BLOCK_NAME.match(p.name))]
        return [p for m, p in sorted(found, key=lambda item: int(item[0].group(1)))]

    def lookup(
        self,
        sequences: ArrayLike,
        *,
        lengths: ArrayLike | None = None,
        metric: Metric = "procrustes",
        band: int | None = None,
        normalize: bool = False,
        missing_cost: float | None = None,
        hand: HandParams | None = None,
    ) -> Path | None:
        """The finished matrix file for these sequences and settings, or None if not cached.

        Parameters are those of :meth:`pairwise`.
        """
        key = distance_key(
            sequences,
            lengths=lengths,
            metric=metric,
            band=band,
            normalize=normalize,
            missing_cost=missing_cost,
            hand=hand,
        )
        path = self.matrix_path(key)
        return path if path.is_file() else None

    def lookup_cross(
        self,
        queries: ArrayLike,
        references: ArrayLike,
        *,
        query_lengths: ArrayLike | None = None,
        reference_lengths: ArrayLike | None = None,
        metric: Metric = "procrustes",
        band: int | None = None,
        normalize: bool = False,
        missing_cost: float | None = None,
        hand: HandParams | None = None,
    ) -> Path | None:
        """The finished (queries x references) matrix file, or None if not cached.

        Parameters are those of :meth:`cross`.
        """
        key = _cross_key(
            *_as_sequences(queries, query_lengths),
            *_as_sequences(references, reference_lengths),
            _settings(metric, band, normalize, missing_cost, hand),
        )
        path = self.matrix_path(key)
        return path if path.is_file() else None

    def clear(self) -> None:
        """Delete every cached matrix."""
        shutil.rmtree(self.root / "distances", ignore_errors=True)

    def pairwise(
        self,
        sequences: ArrayLike,
        *,
        lengths: ArrayLike | None = None,
        metric: Metric = "procrustes",
        band: int | None = None,
        normalize: bool = False,
        missing_cost: float | None = None,
        hand: HandParams | None = None,
        threads: int | None = None,
        block_rows: int | None = None,
        progress: ProgressCallback | None = None,
        mmap: bool = False,
    ) -> NDArray[np.float64]:
        """Distances between all sequences, from the cache or computed (and cached) in blocks.

        Parameters
        ----------
        sequences : array_like
            ``(N, T, L, 3)`` or ``(N, T, L*3)``, zero-padded after each length.
        lengths : array_like of int, optional
            Valid frames per sequence; default T.
        metric, band, normalize, missing_cost, hand
            As for :func:`gkd.pairwise`.
        threads : int, optional
            Engine threads; default one per core. Does not change the values.
        block_rows : int, optional
            Rows per block for a new matrix (default: about 16,000 pairs per block, and at
            least 1,024 row frames). A resumed matrix keeps the layout it was started with.
            Does not change the values.
        progress : callable, optional
            Called as ``progress(pairs_done, pairs_total)`` for the whole matrix; blocks
            already on disk count as done. Not called when the matrix is cached.
        mmap : bool, default False
            Return the cached file memory-mapped (read-only) instead of reading it.

        Returns
        -------
        numpy.ndarray
            float64, ``(N, N)``, zero diagonal; symmetric for every metric but
            ``procrustes-paper``. Equal to the upper triangle of ``gkd.cross(x, x)`` mirrored
            (``gkd.cross(x, x)`` itself for ``procrustes-paper``) bit for bit, and to
            :func:`gkd.pairwise` up to rounding.

        Raises
        ------
        ValueError, TypeError
            If the input or an option is unusable (as :func:`gkd.pairwise`), or ``block_rows``
            is not a positive integer.
        KeyboardInterrupt
            Ctrl-C: the blocks finished so far stay on disk and a later call resumes from them.
        """
        array, valid = _as_sequences(sequences, lengths)
        settings = _settings(metric, band, normalize, missing_cost, hand)
        if block_rows is not None and (
            isinstance(block_rows, bool) or int(block_rows) != block_rows or block_rows < 1
        ):
            raise ValueError(f"block_rows must be a positive integer, got {block_rows!r}")
        key = _key(array, valid, settings)
        path = self.matrix_path(key)
        if path.is_file():
            cached = self._load_matrix(path, array.shape[0])
            if cached is not None:
                return cached if mmap else np.array(cached)
        folder = self.entry(key)
        folder.mkdir(parents=True, exist_ok=True)
        self._remove_stale_temporaries(folder)
        layout = self._layout(folder, valid, block_rows, settings)
        self._compute_blocks(array, valid, settings, folder, layout, threads, progress)
        missing = self._assemble(folder, array.shape[0], layout, settings)
        matrix = self._load_matrix(path, array.shape[0])
        if matrix is None:
            if missing is not None:  # gone, and no other process left the matrix in its place
                raise OSError(f"block rows {missing[0]}-{missing[1]} vanished from {folder}")
            raise OSError(f"{path} could not be read back after writing it")  # pragma: no cover
        for start, stop in layout:
            (folder / f"rows_{start}_{stop}.npy").unlink(missing_ok=True)
        return matrix if mmap else np.array(matrix)

    def cross(
        self,
        queries: ArrayLike,
        references: ArrayLike,
        *,
        query_lengths: ArrayLike | None = None,
        reference_lengths: ArrayLike | None = None,
        metric: Metric = "procrustes",
        band: int | None = None,
        normalize: bool = False,
        missing_cost: float | None = None,
        hand: HandParams | None = None,
        threads: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> NDArray[np.float64]:
        """Distances from every query to every reference, from the cache or computed and cached.

        For the smaller matrices an experiment computes besides its pairwise one (the teacher's
        labels of blends, say), so that a rerun or a resumed run does not compute them again.
        The matrix is computed whole and written atomically: a run stopped midway leaves
        nothing behind and computes it again.

        Parameters
        ----------
        queries, references : array_like
            ``(N, T, L, 3)`` or ``(N, T, L*3)``, zero-padded after each length; N and T may
            differ between the two, L may not.
        query_lengths, reference_lengths : array_like of int, optional
            Valid frames per sequence; default T.
        metric, band, normalize, missing_cost, hand
            As for :func:`gkd.cross`.
        threads : int, optional
            Engine threads; default one per core. Does not change the values.
        progress : callable, optional
            Called as ``progress(pairs_done, pairs_total)``; not called when the matrix is cached.

        Returns
        -------
        numpy.ndarray
            float64, ``(len(queries), len(references))``, equal to :func:`gkd.cross` of the
            same arguments bit for bit.

        Raises
        ------
        ValueError, TypeError
            If the input or an option is unusable (as :func:`gkd.cross`).
        """
        query_array, query_valid = _as_sequences(queries, query_lengths)
        reference_array, reference_valid = _as_sequences(references, reference_lengths)
        settings = _settings(metric, band, normalize, missing_cost, hand)
        key = _cross_key(query_array, query_valid, reference_array, reference_valid, settings)
        path = self.matrix_path(key)
        if path.is_file():
            cached = self._load_matrix(path, len(query_array), len(reference_array))
            if cached is not None:
                return np.array(cached)
        matrix = cross(
            query_array,
            reference_array,
            lengths_a=query_valid,
            lengths_b=reference_valid,
            metric=metric,
            band=band,
            normalize=normalize,
            missing_cost=missing_cost,
            hand=hand,
            threads=threads,
            progress=progress,
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        _save_atomic(path, matrix)
        return matrix

    @staticmethod
    def _load_matrix(path: Path, n: int, columns: int | None = None) -> np.ndarray | None:
        """The cached matrix, memory-mapped; None (and the file removed) if it is unusable.
        ``columns``: default ``n`` (a pairwise matrix)."""
        try:
            matrix = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, EOFError):
            path.unlink(missing_ok=True)
            return None
        if matrix.shape != (n, n if columns is None else columns) or matrix.dtype != np.float64:
            path.unlink(missing_ok=True)
            return None
        return matrix

    @staticmethod
    def _remove_stale_temporaries(folder: Path) -> None:
        """Remove temporary files left by killed processes (never those of a live one)."""
        for path in folder.iterdir():
            match = _TEMP_NAME.match(path.name)
            if match and not _process_alive(int(match.group(2))):
                path.unlink(missing_ok=True)

    @staticmethod
    def _layout(
        folder: Path, lengths: NDArray[np.int64], block_rows: int | None, settings: _Settings
    ) -> list[tuple[int, int]]:
        """Block row ranges: those of the manifest when resuming, else a new layout."""
        n = len(lengths)
        manifest = folder / "manifest.json"
        if manifest.is_file():
            try:
                recorded = json.loads(manifest.read_text(encoding="utf-8"))
                rows = int(recorded["block_rows"])
                if recorded["n"] == n and rows >= 1:
                    return _block_bounds(n, rows)
            except (OSError, ValueError, KeyError, TypeError):
                pass  # unreadable manifest: start a new layout (finished blocks still match)
        if block_rows is None:
            block_rows = _default_block_rows(lengths)
        record = {
            "format": FORMAT_VERSION,
            "n": n,
            "block_rows": int(block_rows),
            "engine": _engine_fingerprint(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            **settings.to_dict(),
        }
        temp = manifest.with_name(f".{manifest.name}.{os.getpid()}.tmp")
        temp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        os.replace(temp, manifest)
        return _block_bounds(n, int(block_rows))

    @staticmethod
    def _read_block(path: Path, shape: tuple[int, int]) -> np.ndarray | None:
        try:
            block = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError):
            return None
        if block.shape != shape or block.dtype != np.float64:
            return None
        return block

    def _compute_blocks(
        self,
        array: np.ndarray,
        lengths: NDArray[np.int64],
        settings: _Settings,
        folder: Path,
        layout: list[tuple[int, int]],
        threads: int | None,
        progress: ProgressCallback | None,
    ) -> None:
        n = array.shape[0]
        symmetric = settings.metric != "procrustes-paper"
        sizes = [_block_pairs(n, start, stop, symmetric) for start, stop in layout]
        total = sum(sizes)
        todo = []
        done = 0
        for (start, stop), size in zip(layout, sizes, strict=True):
            path = folder / f"rows_{start}_{stop}.npy"
            shape = (stop - start, n - start if symmetric else n)
            if path.is_file() and self._read_block(path, shape) is not None:
                done += size
            else:
                todo.append((start, stop, size, path))
        if progress is not None:
            progress(done, total)
        hand = HandParams(*settings.hand) if settings.hand is not None else None
        if todo:
            # Once here rather than once per block: the engine needs C-contiguous input, and
            # a view (one hand of a two-hand array) would otherwise be copied for every block.
            array = np.ascontiguousarray(array)
        for start, stop, size, path in todo:
            columns = slice(start, None) if symmetric else slice(None)
            offset = done

            def report(pairs: int, _total: int, offset: int = offset) -> None:
                if progress is not None:
                    progress(offset + pairs, total)

            block = cross(
                array[start:stop],
                array[columns],
                lengths_a=lengths[start:stop],
                lengths_b=lengths[columns],
                metric=settings.metric,  # type: ignore[arg-type]
                band=settings.band,
                normalize=settings.normalize,
                missing_cost=settings.missing_cost,
                hand=hand,
                threads=threads,
                progress=report if progress is not None else None,
            )
            _save_atomic(path, block)
            done += size
            if progress is not None:
                progress(done, total)

    def _assemble(
        self, folder: Path, n: int, layout: list[tuple[int, int]], settings: _Settings
    ) -> tuple[int, int] | None:
        """Join the blocks into ``matrix.npy`` (written to a temporary file, then renamed).

        Returns None when done, or the rows of a block that vanished meanwhile. Another process
        computing the same matrix removes the blocks once it has written ``matrix.npy``, so
        the caller reads that instead.
        """
        symmetric = settings.metric != "procrustes-paper"
        target = folder / "matrix.npy"
        temp = folder / f".matrix.npy.{os.getpid()}.tmp"
        try:
            out = np.lib.format.open_memmap(temp, mode="w+", dtype=np.float64, shape=(n, n))
            for start, stop in layout:
                shape = (stop - start, n - start if symmetric else n)
                block = self._read_block(folder / f"rows_{start}_{stop}.npy", shape)
                if block is None:
                    return start, stop
                if symmetric:
                    size = stop - start
                    # Within the block keep i < j only, so each pair is cross(x_i, x_j).
                    square = np.triu(block[:, :size], k=1)
                    out[start:stop, start:stop] = square + square.T
                    out[start:stop, stop:] = block[:, size:]
                    out[stop:, start:stop] = block[:, size:].T
                else:
                    rows = np.array(block)
                    rows[np.arange(stop - start), np.arange(start, stop)] = 0.0
                    out[start:stop] = rows
            out.flush()
            del out
            with temp.open("rb+") as handle:
                os.fsync(handle.fileno())
            os.replace(temp, target)
        finally:
            temp.unlink(missing_ok=True)
        return None


def cached_pairwise(
    sequences: ArrayLike,
    *,
    lengths: ArrayLike | None = None,
    metric: Metric = "procrustes",
    band: int | None = None,
    normalize: bool = False,
    missing_cost: float | None = None,
    hand: HandParams | None = None,
    threads: int | None = None,
    block_rows: int | None = None,
    progress: ProgressCallback | None = None,
    cache_dir: Path | None = None,
    mmap: bool = False,
) -> NDArray[np.float64]:
    """:meth:`DistanceCache.pairwise` on the cache at ``cache_dir`` (default folder if None).

    See :meth:`DistanceCache.pairwise` for the parameters, result and errors.
    """
    return DistanceCache(cache_dir).pairwise(
        sequences,
        lengths=lengths,
        metric=metric,
        band=band,
        normalize=normalize,
        missing_cost=missing_cost,
        hand=hand,
        threads=threads,
        block_rows=block_rows,
        progress=progress,
        mmap=mmap,
    )
