"""Camera tours (轮巡): a window cycles through sources, each shown for its dwell time.

A stop may first send its camera to a PTZ preset. Tours run on the loop, one per window
(starting a tour on a window replaces the one there), and can be paused (the stop's
remaining dwell is kept), resumed and stopped. Each step is a wall revision made by the
tour's starter (so the audit log says who set the wall cycling) and a ``tour.*`` event.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from wallctl.errors import Conflict, NotFound, WallctlError
from wallctl.logs import get_logger
from wallctl.store import Actor

log = get_logger("wallctl.cameras.tours")

MIN_DWELL_S = 3.0
MAX_TOURS = 64

# (wall, window, source, actor) -> None: show the source in the window (a wall revision).
ShowFn = Callable[[str, str, str, Actor], Awaitable[None]]
# (camera device id, preset token, actor) -> None.
PresetFn = Callable[[str, str, Actor], Awaitable[None]]
PublishFn = Callable[[str, dict[str, Any], Actor], None]


@dataclass(frozen=True, slots=True)
class TourStop:
    source: str
    dwell_s: float
    camera: str | None = None  # the ONVIF device behind the source, when a preset is set
    preset: str | None = None


@dataclass
class Tour:
    id: str
    wall: str
    window: str
    stops: list[TourStop]
    actor: Actor
    loop: bool = True
    state: str = "running"  # running, paused, stopped
    index: int = -1
    rounds: int = 0
    deadline: float = 0.0  # monotonic end of the current stop's dwell
    remaining_s: float | None = None  # while paused
    reason: str = ""
    started_at: float = field(default_factory=time.time)
    task: asyncio.Task[None] | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def to_dict(self) -> dict[str, Any]:
        now = time.monotonic()
        cur = self.stops[self.index] if 0 <= self.index < len(self.stops) else None
        if self.state == "paused":
            left = self.remaining_s
        elif self.state == "running" and cur is not None:
            left = max(0.0, self.deadline - now)
        else:
            left = None
        return {
            "id": self.id,
            "wall": self.wall,
            "window": self.window,
            "state": self.state,
            "index": self.index,
            "source": cur.source if cur else None,
            "remaining_s": None if left is None else round(left, 2),
            "rounds": self.rounds,
            "loop": self.loop,
            "stops": [
                {"source": s.source, "dwell_s": s.dwell_s, "preset": s.preset} for s in self.stops
            ],
            "started_by": self.actor.identity,
            "reason": self.reason,
        }


class TourRunner:
    def __init__(self, show: ShowFn, goto_preset: PresetFn, publish: PublishFn) -> None:
        self._show = show
        self._goto_preset = goto_preset
        self._publish = publish
        self.tours: dict[str, Tour] = {}

    @staticmethod
    def key(wall: str, window: str) -> str:
        return f"{wall}/{window}"

    async def start(
        self, wall: str, window: str, stops: list[TourStop], actor: Actor, loop: bool = True
    ) -> Tour:
        tid = self.key(wall, window)
        old = self.tours.get(tid)
        if old is not None:
            await self._end(old, "replaced")
        elif len(self.tours) >= MAX_TOURS:
            raise Conflict(f"at most {MAX_TOURS} tours run at once")
        tour = Tour(tid, wall, window, stops, actor, loop)
        self.tours[tid] = tour
        tour.task = asyncio.create_task(self._run(tour), name=f"tour:{tid}")
        self._publish("tour.started", tour.to_dict(), actor)
        log.info("tour started", tour=tid, stops=len(stops), actor=actor.identity)
        return tour

    def get(self, wall: str, window: str) -> Tour:
        tour = self.tours.get(self.key(wall, window))
        if tour is None:
            raise NotFound(f"no tour runs in window {window!r} of wall {wall!r}", field="window")
        return tour

    def pause(self, tour: Tour, actor: Actor) -> Tour:
        if tour.state == "running":
            tour.remaining_s = max(0.0, tour.deadline - time.monotonic())
            tour.state = "paused"
            tour.changed.set()
            self._publish("tour.paused", tour.to_dict(), actor)
        return tour

    def resume(self, tour: Tour, actor: Actor) -> Tour:
        if tour.state == "paused":
            tour.deadline = time.monotonic() + (tour.remaining_s or 0.0)
            tour.remaining_s = None
            tour.state = "running"
            tour.changed.set()
            self._publish("tour.resumed", tour.to_dict(), actor)
        return tour

    async def stop(self, tour: Tour, actor: Actor, reason: str = "stopped") -> Tour:
        await self._end(tour, reason, actor)
        return tour

    async def _end(self, tour: Tour, reason: str, actor: Actor | None = None) -> None:
        tour.state = "stopped"
        tour.reason = reason
        self.tours.pop(tour.id, None)
        task = tour.task
        if task is not None and task is not asyncio.current_task() and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._publish("tour.stopped", tour.to_dict(), actor or tour.actor)
        log.info("tour stopped", tour=tour.id, reason=reason)

    def on_wall_changed(self, wall: str, action: str, windows: dict[str, str | None]) -> None:
        """A wall changed (``windows``: window id -> source). A tour whose window closed,
        or whose window someone set to another source by hand, ends: the operator took
        the window over (the tour's own steps are ``tour.step``)."""
        if action == "tour.step":
            return
        for tour in list(self.tours.values()):
            if tour.wall != wall or tour.state == "stopped":
                continue
            if tour.window not in windows:
                reason = "window closed"
            elif 0 <= tour.index < len(tour.stops) and windows[tour.window] != (
                tour.stops[tour.index].source
            ):
                reason = f"window taken over ({action})"
            else:
                continue
            asyncio.get_running_loop().create_task(self._end(tour, reason))

    async def close(self) -> None:
        for tour in list(self.tours.values()):
            await self._end(tour, "daemon stopping")

    async def _run(self, tour: Tour) -> None:
        try:
            while True:
                nxt = tour.index + 1
                if nxt >= len(tour.stops):
                    tour.rounds += 1
                    if not tour.loop:
                        await self._end(tour, "finished")
                        return
                    nxt = 0
                tour.index = nxt
                stop = tour.stops[nxt]
                if stop.preset and stop.camera:
                    try:
                        await self._goto_preset(stop.camera, stop.preset, tour.actor)
                    except WallctlError as e:
                        # The picture still changes: a wrong preset is not worth a dark wall.
                        log.warning("tour preset failed", tour=tour.id, error=e.message)
                try:
                    await self._show(tour.wall, tour.window, stop.source, tour.actor)
                except WallctlError as e:
                    await self._end(tour, f"cannot show {stop.source}: {e.message}")
                    return
                tour.deadline = time.monotonic() + stop.dwell_s
                self._publish("tour.step", tour.to_dict(), tour.actor)
                await self._dwell(tour)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a bug in one tour never takes the loop down
            log.exception("tour failed", tour=tour.id)
            await self._end(tour, f"failed: {e!r}")

    @staticmethod
    async def _dwell(tour: Tour) -> None:
        while True:
            tour.changed.clear()
            if tour.state == "paused":
                await tour.changed.wait()
                continue
            left = tour.deadline - time.monotonic()
            if left <= 0:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(tour.changed.wait(), left)
