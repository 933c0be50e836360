"""The camera service as a daemon component (``rt.services["cameras"]``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from drivers.contract import DriverStatus
from wallctl.cameras.service import CameraService
from wallctl.component import Component, Health, Status
from wallctl.store import Actor

if TYPE_CHECKING:
    from wallctl.config import Config
    from wallctl.daemon import Runtime


class CameraMetrics(Collector):
    def __init__(self, service: CameraService) -> None:
        self.service = service

    def collect(self) -> Iterable[GaugeMetricFamily | CounterMetricFamily]:
        up = GaugeMetricFamily(
            "wallctl_camera_up", "1 while a camera's link is ok", labels=["camera"]
        )
        stale = GaugeMetricFamily(
            "wallctl_camera_events_stale",
            "1 while a camera's event subscription is stale",
            labels=["camera"],
        )
        moves = CounterMetricFamily(
            "wallctl_camera_ptz_moves",
            "Continuous moves sent and coalesced",
            labels=["camera", "kind"],
        )
        for cam, drv in sorted(self.service.cameras().items()):
            up.add_metric([cam], 1 if drv.status is DriverStatus.OK else 0)
            stale.add_metric([cam], 1 if drv.state.get("events") == "stale" else 0)
            moves.add_metric([cam, "sent"], drv.joystick.sent)
            moves.add_metric([cam, "coalesced"], drv.joystick.coalesced)
            moves.add_metric([cam, "deadman_stop"], drv.joystick.deadman_stops)
        yield up
        yield stale
        yield moves
        tours = GaugeMetricFamily("wallctl_camera_tours", "Camera tours by state", labels=["state"])
        for state in ("running", "paused"):
            n = sum(1 for t in self.service.tours.tours.values() if t.state == state)
            tours.add_metric([state], n)
        yield tours


class CamerasComponent(Component):
    name = "cameras"

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

        def publish(category: str, type_: str, data: dict[str, Any], actor: Actor) -> None:
            rt.bus.publish(category, type_, data, actor=actor)

        self.service = CameraService(
            rt.services.get("devices"),
            rt.walls,
            list(rt.config.sources),
            publish,
            rt.services.get("sources"),
        )
        # Before any window demands a camera source: the hub asks us for its streams.
        self.service.install()
        rt.services["cameras"] = self.service
        rt.registry.register(CameraMetrics(self.service))
        self._unsubscribe: Callable[[], None] | None = None
        self._unsubscribe_walls: Callable[[], None] | None = None
        self._started = False

    async def start(self) -> None:
        self.service.devices = self.rt.services.get("devices")
        self.service.hub = self.rt.services.get("sources")
        self.service.attach()
        self._unsubscribe = self.rt.bus.subscribe(self.service.on_bus)
        self._unsubscribe_walls = self.rt.walls.subscribe(self.service.on_wall_changed)
        self._started = True

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._unsubscribe_walls is not None:
            self._unsubscribe_walls()
        await self.service.stop()

    def reload(self, config: Config) -> list[str]:
        self.service.sources = {s.id: s for s in config.sources}
        return []

    def health(self) -> Health:
        if not self._started:
            return Health(Status.STARTING)
        cams = self.service.cameras()
        stale = [c for c, d in cams.items() if d.state.get("events") == "stale"]
        if stale:
            return Health(Status.DEGRADED, f"camera events stale: {', '.join(sorted(stale))}")
        tours = len(self.service.tours.tours)
        return Health(Status.OK, f"{len(cams)} camera(s), {tours} tour(s)")


def cameras_component(rt: Runtime) -> CamerasComponent:
    return CamerasComponent(rt)
