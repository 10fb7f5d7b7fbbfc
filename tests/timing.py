"""CPU seconds of a call, for the tests that bound how long something takes."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable


def cpu_seconds(work: Callable[[], object]) -> float:
    """The CPU time ``work()`` takes in this thread. Not wall time, so other processes on a
    busy machine do not count; this thread only, so BLAS threads still spinning after an
    earlier matrix product do not count either; and with the garbage collector run before
    and paused during, so that collecting what earlier tests left does not count."""
    gc.collect()
    gc.disable()
    try:
        start = time.thread_time()
        work()
        return time.thread_time() - start
    finally:
        gc.enable()
