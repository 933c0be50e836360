"""The conference service as a daemon component (``rt.services["conference"]``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from drivers.contract import DriverStatus
from wallctl.component import Component, Health, Status
from wallctl.conference.service import ConferenceService
from wallctl.logs import get_logger
from wallctl.store import Actor

if TYPE_CHECKING:
    from wallctl.config import Config
    from wallctl.daemon import Runtime

log = get_logger("wallctl.conference")


class ConferenceMetrics(Collector):
    """Calls by link and outcome, and whether each link is in a call (for /metrics)."""

    def __init__(self, service: ConferenceService) -> None:
        self.service = service

    def collect(self) -> Iterable[GaugeMetricFamily | CounterMetricFamily]:
        calls = CounterMetricFamily(
            "wallctl_conference_calls",
            "Calls placed or answered, by link and outcome (connected or the reason)",
            labels=["link", "outcome"],
        )
        for (link_id, outcome), n in sorted(self.service.outcomes.items()):
            calls.add_metric([link_id, outcome], n)
        yield calls
        busy = GaugeMetricFamily(
            "wallctl_conference_link_busy", "1 while a link has a call", labels=["link"]
        )
        for link in self.service.links.values():
            busy.add_metric([link.id], 0 if link.state == "idle" else 1)
        yield busy


class ConferenceComponent(Component):
    name = "conference"

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

        def publish(category: str, type_: str, data: dict[str, Any], actor: Actor) -> None:
            rt.bus.publish(category, type_, data, actor=actor)

        self.service = ConferenceService(
            rt.config.conference, rt.services.get("devices"), rt.walls, publish
        )
        rt.services["conference"] = self.service
        rt.registry.register(ConferenceMetrics(self.service))
        self._unsubscribe: Callable[[], None] | None = None
        self._started = False

    async def start(self) -> None:
        # The device service is built before us (components are built in order).
        self.service.devices = self.rt.services.get("devices")
        problems = self.service.check_references(self.rt.config)
        for p in problems:
            log.error("conference config problem", problem=p)
        self._unsubscribe = self.rt.bus.subscribe(self.service.on_bus)
        self._started = True

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        await self.service.stop()

    def reload(self, config: Config) -> list[str]:
        return ["conference"] if config.conference != self.rt.config.conference else []

    def health(self) -> Health:
        if not self._started:
            return Health(Status.STARTING)
        if self.service.problems:
            return Health(Status.DEGRADED, "; ".join(self.service.problems))
        down = [
            lk.id
            for lk in self.service.links.values()
            if (d := self.service.driver(lk)) is None or d.status is not DriverStatus.OK
        ]
        if down:
            return Health(Status.DEGRADED, f"codec offline: {', '.join(down)}")
        busy = sum(1 for lk in self.service.links.values() if lk.state != "idle")
        return Health(Status.OK, f"{len(self.service.links)} link(s), {busy} in a call")


def conference_component(rt: Runtime) -> ConferenceComponent:
    return ConferenceComponent(rt)
