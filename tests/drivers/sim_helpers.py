"""Helpers for driver tests (imported as ``sim_helpers``: pytest puts this folder on the
path, as the folder has no ``__init__.py``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from drivers.simulator import DeviceSimulator, SimSession


async def eventually(check: Callable[[], bool], within: float = 5.0) -> None:
    """Wait until ``check()`` holds (generous: the machine is shared and noisy)."""
    end = time.monotonic() + within
    while not check():
        if time.monotonic() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


class LineCodec:
    """Newline-framed text: the smallest codec a framework test needs."""

    def __init__(self) -> None:
        self.buf = b""

    def feed(self, data: bytes) -> list[str]:
        self.buf += data
        *lines, self.buf = self.buf.split(b"\n")
        return [line.decode() for line in lines]


class EchoSim(DeviceSimulator):
    """Answers "x" with "ok x"; records each line and when it arrived."""

    protocol = "echo"

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[bytes] = []
        self.arrivals: list[float] = []

    def on_data(self, session: SimSession, data: bytes) -> None:
        session.buffer.extend(data)
        while b"\n" in session.buffer:
            line, _, rest = bytes(session.buffer).partition(b"\n")
            session.buffer[:] = rest
            self.lines.append(line)
            self.arrivals.append(time.monotonic())
            session.send(b"ok " + line + b"\n")
