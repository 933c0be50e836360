"""Continuous PTZ from a joystick: coalesced moves and a dead-man stop.

A joystick (or a touch panel's drag) sends many moves a second. A camera handles a few:
the first move of a burst goes out at once, later ones within ``coalesce_s`` only update
the velocity to send, and the latest one goes out when the interval ends. A move with no
follow-up within ``deadman_s`` is stopped, so a client that vanishes mid-drag never leaves
a camera turning. Transport-free: ``send_move`` and ``send_stop`` do the I/O.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from drivers.errors import DriverError
from wallctl.logs import get_logger

log = get_logger("drivers.onvif.joystick")

Velocity = tuple[float, float, float]


class Joystick:
    def __init__(
        self,
        send_move: Callable[[Velocity], Awaitable[None]],
        send_stop: Callable[[], Awaitable[None]],
        *,
        coalesce_s: float,
        deadman_s: float,
        name: str = "",
    ) -> None:
        self._send_move = send_move
        self._send_stop = send_stop
        self.coalesce_s = coalesce_s
        self.deadman_s = deadman_s
        self.name = name
        self._next_at = 0.0  # loop time before which a move waits (coalesced)
        self._latest: Velocity | None = None
        self._deadline = 0.0
        self._flusher: asyncio.Task[None] | None = None
        self._deadman: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.moving = False
        self.sent = 0
        self.coalesced = 0
        self.deadman_stops = 0
        self.last_error: str | None = None

    async def move(self, velocity: Velocity) -> bool:
        """Ask for ``velocity``; True when sent now, False when it will follow shortly."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        self._deadline = now + self.deadman_s
        if self._deadman is None or self._deadman.done():
            self._deadman = asyncio.create_task(self._watch(), name=f"ptz-deadman:{self.name}")
        if self._lock.locked() or now < self._next_at:
            self._latest = velocity
            self.coalesced += 1
            if self._flusher is None or self._flusher.done():
                self._flusher = asyncio.create_task(self._flush(), name=f"ptz-flush:{self.name}")
            return False
        await self._send(velocity)
        return True

    async def _send(self, velocity: Velocity) -> None:
        async with self._lock:
            self._next_at = asyncio.get_running_loop().time() + self.coalesce_s
            self.moving = True
            self.sent += 1
            await self._send_move(velocity)

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        while self._latest is not None:
            await asyncio.sleep(max(0.0, self._next_at - loop.time()))
            async with self._lock:
                pass  # a send in flight finishes first
            velocity, self._latest = self._latest, None
            if velocity is None:
                return
            try:
                await self._send(velocity)
            except DriverError as e:
                self.last_error = e.message
                log.warning("ptz move failed", camera=self.name, error=e.message)

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            delay = self._deadline - loop.time()
            if delay <= 0:
                break
            await asyncio.sleep(delay)
        if not self.moving:
            return
        self.deadman_stops += 1
        log.info("ptz dead-man stop: no follow-up move", camera=self.name)
        try:
            await self.stop(from_deadman=True)
        except DriverError as e:
            self.last_error = e.message
            log.warning("ptz dead-man stop failed", camera=self.name, error=e.message)

    async def stop(self, *, from_deadman: bool = False) -> None:
        self._latest = None
        for task in (self._flusher, None if from_deadman else self._deadman):
            if task is not None and not task.done() and task is not asyncio.current_task():
                task.cancel()
                # Waits without taking on the task's cancellation, so a cancellation of
                # the caller itself still propagates.
                await asyncio.wait({task})
                if not task.cancelled():
                    task.result()
        self.moving = False
        async with self._lock:
            await self._send_stop()

    async def close(self) -> None:
        self._latest = None
        for task in (self._flusher, self._deadman):
            if task is not None and not task.done():
                task.cancel()
                # Waits without taking on the task's cancellation, so a cancellation of
                # the caller itself still propagates.
                await asyncio.wait({task})
                if not task.cancelled():
                    task.result()
