"""The daemon's event bus: capabilities announce what happened, faces pass it on.

Drivers, sources, cameras and terminals publish events here without knowing who
listens; the WebSocket API and MQTT subscribe and carry them to their clients. The
bus is synchronous and in-process: ``publish`` calls every listener at once, on the
event loop, so a listener must only queue work (never block, never await).
A listener that raises is logged and kept: one broken face never silences another.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from wallctl.logs import get_logger
from wallctl.store import SYSTEM, Actor

log = get_logger("wallctl.bus")


@dataclass(frozen=True)
class BusEvent:
    # The API's subscription category ("device", "source", "camera", ...).
    category: str
    # Dotted event type, e.g. "device.status", "source.state".
    type: str
    data: dict[str, Any]
    wall: str | None = None
    actor: Actor = SYSTEM
    ts: float = field(default_factory=time.time)


Listener = Callable[[BusEvent], None]


class EventBus:
    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self.published = 0
        self.listener_errors = 0

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` for every event from now on; returns the unsubscribe."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def publish(
        self,
        category: str,
        type_: str,
        data: dict[str, Any],
        *,
        wall: str | None = None,
        actor: Actor = SYSTEM,
    ) -> None:
        event = BusEvent(category, type_, data, wall, actor)
        self.published += 1
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception as e:  # one listener must not stop the rest
                self.listener_errors += 1
                log.error("event listener failed", event=type_, error=repr(e))
