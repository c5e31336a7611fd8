# Stubs of the native module built from rust/python.rs; keep the two in step.
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

__all__ = ["__version__", "distance_matrix", "kernel_name", "max_frame_cost"]
__version__: str

def distance_matrix(
    a: NDArray[np.float32] | NDArray[np.float64],
    lengths_a: NDArray[np.int64],
    b: NDArray[np.float32] | NDArray[np.float64] | None = None,
    lengths_b: NDArray[np.int64] | None = None,
    *,
    metric: str = "procrustes",
    band: int | None = None,
    normalize: bool = False,
    threads: int | None = None,
    missing_cost: float | None = None,
    hand: tuple[float, float, float, float] | None = None,
    progress: Callable[[int, int], object] | None = None,
    names: tuple[str, str] | None = None,
) -> NDArray[np.float64]: ...
def kernel_name() -> str: ...
def max_frame_cost(
    metric: str, n_landmarks: int, hand: tuple[float, float, float, float] | None = None
) -> float: ...
