"""Fixtures shared by several test modules."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest


@pytest.fixture
def ctrl_c_enabled() -> Iterator[None]:
    """Let SIGINT raise KeyboardInterrupt here and in the processes a test starts.

    A shell starts background jobs (``bash .ci/run &``) with SIGINT ignored, Python then leaves
    it ignored and its child processes inherit that, so without this a Ctrl-C test would see
    its run go on to the end instead of stopping.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
