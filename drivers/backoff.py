"""Capped exponential backoff with jitter, for reconnects and driver restarts.

Jitter spreads the retries of many devices (and of several daemons) after a switch or a
site-wide power cut, so they do not all knock at the same instant.
"""

from __future__ import annotations

import random


class Backoff:
    def __init__(
        self,
        initial: float = 0.5,
        cap: float = 30.0,
        factor: float = 2.0,
        jitter: float = 0.25,
        rng: random.Random | None = None,
    ) -> None:
        self.initial = initial
        self.cap = cap
        self.factor = factor
        # Fraction of the delay drawn at random: delay * (1 - jitter .. 1 + jitter), capped.
        self.jitter = jitter
        self.attempts = 0
        self._rng = rng or random.Random()

    def next(self) -> float:
        """The delay before the next attempt; each call grows it up to ``cap``."""
        base = min(self.cap, self.initial * self.factor**self.attempts)
        self.attempts += 1
        spread = base * self.jitter
        return max(0.0, min(self.cap, base + self._rng.uniform(-spread, spread)))

    def at_cap(self) -> float:
        """A delay at the cap (after a failure retrying soon cannot fix, e.g. a password)."""
        self.attempts = max(self.attempts, 64)
        return self.next()

    def reset(self) -> None:
        self.attempts = 0
