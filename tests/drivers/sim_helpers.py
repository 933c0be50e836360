"""Helpers for driver tests (imported as ``sim_helpers``: pytest puts this folder on the
path, as the folder has no ``__init__.py``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


async def eventually(check: Callable[[], bool], within: float = 5.0) -> None:
    """Wait until ``check()`` holds (generous: the machine is shared and noisy)."""
    end = time.monotonic() + within
    while not check():
        if time.monotonic() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)
