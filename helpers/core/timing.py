"""Timings worth comparing: a warm-up, then the median of repeats with their spread (no numpy
needed, no framework imported).

Lessons: ``06_integrated_gradients.ipynb`` (IG cost per number of steps),
``07_comparativa.ipynb`` (cost per method) and ``14_grad_cam_e_integrated_gradients.ipynb``.
A single timing mixes the work with one-time costs (first call, caches, another process on the
machine); the first call pays them, so it is thrown away, and the median of the rest resists
the odd slow repeat. On a GPU pass ``sync=torch.cuda.synchronize``: kernels run asynchronously.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Timing:
    """Seconds of each timed repeat (warm-up excluded), with their median and range."""

    seconds: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def low(self) -> float:
        return min(self.seconds)

    @property
    def high(self) -> float:
        return max(self.seconds)

    @property
    def repeats(self) -> int:
        return len(self.seconds)


def time_repeated(fn: Callable[[], Any], repeats: int = 5, warmup: int = 1,
                  sync: Callable[[], Any] | None = None,
                  clock: Callable[[], float] = time.perf_counter) -> Timing:
    """Call ``fn()`` ``warmup`` times untimed, then time ``repeats`` calls one by one."""
    for name, value, least in (("repeats", repeats, 1), ("warmup", warmup, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"{name} must be an int >= {least}, got {value!r}")
    for _ in range(warmup):
        fn()
    if sync is not None:
        sync()
    seconds = []
    for _ in range(repeats):
        start = clock()
        fn()
        if sync is not None:
            sync()
        seconds.append(clock() - start)
    return Timing(tuple(seconds))
