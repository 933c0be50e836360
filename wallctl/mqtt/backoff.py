"""Reconnect delays: capped exponential backoff with jitter (no I/O).

Each wait is half the capped exponential plus a uniform draw of the other half: the
jitter spreads the daemons of a site that all lost the same broker, so its restart is
not met by a synchronised storm, and the floor keeps a wait from being near zero.
"""

from __future__ import annotations

import random


class Backoff:
    def __init__(self, first: float, cap: float, rng: random.Random | None = None) -> None:
        self.first = first
        self.cap = cap
        self.failures = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        """The wait before the next attempt; each call counts one more failure."""
        ceiling = min(self.cap, self.first * 2.0**self.failures)
        self.failures += 1
        # Never below half the ceiling: a zero wait would be a tight loop.
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    def reset(self) -> None:
        self.failures = 0
