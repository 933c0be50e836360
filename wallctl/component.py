"""The contract every part of the daemon meets: start, stop, health, reload.

The daemon starts components in order and stops them in reverse; /healthz reports each
one's health; the systemd watchdog is fed only while every component says it is alive.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from wallctl.config import Config


class Status(StrEnum):
    STARTING = "starting"
    OK = "ok"
    # Working, with something an operator should look at (a source down, clock unsynced).
    DEGRADED = "degraded"
    FAILED = "failed"
    STOPPED = "stopped"


@dataclass(frozen=True)
class Health:
    status: Status
    detail: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"status": self.status.value, "detail": self.detail}


class Component:
    """Base class: override what the component has."""

    name: str = "component"

    async def start(self) -> None:
        """Return once the component serves (listeners bound, first state loaded)."""

    async def stop(self) -> None:
        """Release everything; called once, in reverse start order, even after a failure."""

    def health(self) -> Health:
        return Health(Status.OK)

    def alive(self) -> bool:
        """False when the component is stuck: the watchdog then stops being fed."""
        return True

    def reload(self, config: Config) -> list[str]:
        """Take what can change live from ``config``; return the keys that need a restart."""
        return []
