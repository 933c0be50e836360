"""Cameras in the daemon: ONVIF devices as wall sources, their events, PTZ and tours.

A camera is a ``[[devices]]`` entry with ``protocol = "onvif"`` (the device service runs
and supervises its driver). A source shows it with ``kind = "onvif"`` and
``url = "onvif://<device id>"``: its renditions are the camera's media profiles, found at
run time through :data:`wallctl.render.renditions.RESOLVERS`, with credentials inserted
here and nowhere else. This service (``rt.services["cameras"]``) also puts motion and
tamper events on the bus (category ``camera``) and runs the tours.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from drivers.contract import DriverStatus
from drivers.onvif.driver import OnvifDriver
from wallctl import edits
from wallctl.cameras.tours import MIN_DWELL_S, TourRunner, TourStop
from wallctl.config import SourceConfig
from wallctl.errors import DeviceError, InvalidField, NotFound, WallctlError
from wallctl.logs import get_logger
from wallctl.render.renditions import RESOLVERS, Rendition
from wallctl.store import SYSTEM, Actor

log = get_logger("wallctl.cameras")

_URL = re.compile(r"^onvif://([A-Za-z0-9][A-Za-z0-9_.-]{0,63})(?:/([^/?#]{1,64}))?/?\Z")

Publish = Callable[[str, str, dict[str, Any], Actor], None]


def camera_of(source: SourceConfig) -> tuple[str, str | None] | None:
    """(device id, profile token or None) of an ``onvif://device[/profile]`` source."""
    m = _URL.match(source.url or "")
    return (m.group(1), m.group(2)) if m else None


class CameraService:
    def __init__(
        self,
        devices: Any,
        walls: Any,
        sources: list[SourceConfig],
        publish: Publish,
        hub: Any = None,
    ) -> None:
        self.devices = devices  # wallctl.devices.service.DeviceService (or None)
        self.walls = walls
        self.hub = hub  # the SourceHub (None without the software compositor)
        self.sources = {s.id: s for s in sources}
        self.publish = publish
        self._attached: set[int] = set()
        self.tours = TourRunner(self._show, self._goto_preset, self._publish_tour)
        self.events_seen = 0

    # --- drivers -------------------------------------------------------------------------

    def cameras(self) -> dict[str, OnvifDriver]:
        out: dict[str, OnvifDriver] = {}
        if self.devices is None:
            return out
        for dev_id, dev in self.devices.devices.items():
            if isinstance(dev.driver, OnvifDriver):
                out[dev_id] = dev.driver
        return out

    def driver(self, camera: str, field: str = "params.camera") -> OnvifDriver:
        if self.devices is None:
            raise NotFound("no cameras are configured", field=field)
        dev = self.devices.get(camera, field)
        if not isinstance(dev.driver, OnvifDriver):
            raise InvalidField(
                f"{camera!r} is a {dev.config.protocol} device, not a camera", field=field
            )
        return dev.driver

    def attach(self) -> None:
        """Listen to every camera driver (again after a device reload built new ones)."""
        for dev_id, drv in self.cameras().items():
            if id(drv) in self._attached:
                continue
            self._attached.add(id(drv))
            drv.listeners.append(self._listener(dev_id))
            if drv.state.get("profiles") is not None:
                self._refresh_sources(dev_id)

    def _listener(self, camera: str) -> Callable[[str, dict[str, Any]], None]:
        def listen(kind: str, data: dict[str, Any]) -> None:
            self._on_camera(camera, kind, data)

        return listen

    def on_bus(self, event: Any) -> None:
        """A device (re)started: attach to its driver if it is a new camera."""
        if getattr(event, "category", None) == "device":
            self.attach()

    def _on_camera(self, camera: str, kind: str, data: dict[str, Any]) -> None:
        if kind == "profiles":
            self._refresh_sources(camera)
            if data.get("changed"):
                self.publish("camera", "camera.profiles", data, SYSTEM)
            return
        if kind in ("motion", "tamper"):
            self.events_seen += 1
            self.publish("camera", f"camera.{kind}", data, SYSTEM)
        elif kind == "events_stale":
            self.publish("camera", "camera.events_stale", data, SYSTEM)

    def _refresh_sources(self, camera: str) -> None:
        if self.hub is None:
            return
        for sid, src in self.sources.items():
            ref = camera_of(src) if src.kind == "onvif" else None
            if ref is not None and ref[0] == camera:
                self.hub.refresh_streams(sid)

    # --- renditions (called by the SourceHub, in its threads) -----------------------------

    def renditions(self, source: SourceConfig) -> list[Rendition]:
        ref = camera_of(source)
        if ref is None or self.devices is None:
            return []
        dev = self.devices.devices.get(ref[0])
        drv = getattr(dev, "driver", None)
        client = getattr(drv, "client", None)
        if not isinstance(drv, OnvifDriver) or client is None:
            return []
        out: list[Rendition] = []
        for p in list(client.profiles):
            if ref[1] is not None and p.token != ref[1]:
                continue
            if p.uri is None:
                continue
            out.append(Rendition(p.token, client.stream_uri(p.token), p.width, p.height))
        return out

    def install(self) -> None:
        RESOLVERS["onvif"] = self.renditions

    def uninstall(self) -> None:
        if RESOLVERS.get("onvif") == self.renditions:
            del RESOLVERS["onvif"]

    # --- listing -------------------------------------------------------------------------

    def list_cameras(self) -> list[dict[str, Any]]:
        out = []
        for dev_id, drv in sorted(self.cameras().items()):
            out.append(
                {
                    "camera": dev_id,
                    "status": drv.status.value,
                    "detail": drv.status_detail,
                    "info": drv.state.get("info"),
                    "profiles": drv.state.get("profiles", []),
                    "events": drv.state.get("events"),
                    "presets": drv.state.get("presets"),
                    "sources": [
                        sid
                        for sid, s in self.sources.items()
                        if s.kind == "onvif" and (camera_of(s) or ("",))[0] == dev_id
                    ],
                }
            )
        return out

    # --- tours ---------------------------------------------------------------------------

    def tour_stop(self, i: int, source: str, dwell_s: float, preset: str | None) -> TourStop:
        path = f"params.stops[{i}]"
        src = self.sources.get(source)
        if src is None:
            raise NotFound(f"no source {source!r}", field=f"{path}.source")
        if dwell_s < MIN_DWELL_S:
            raise InvalidField(f"dwell must be at least {MIN_DWELL_S:g} s", field=f"{path}.dwell_s")
        camera = None
        if preset is not None:
            ref = camera_of(src) if src.kind == "onvif" else None
            if ref is None:
                raise InvalidField(
                    f"source {source!r} is not an ONVIF camera: it has no presets",
                    field=f"{path}.preset",
                )
            camera = ref[0]
            self.driver(camera, f"{path}.source")
        return TourStop(source, dwell_s, camera, preset)

    async def _show(self, wall: str, window: str, source: str, actor: Actor) -> None:
        def run(state: Any, ctx: Any) -> Any:
            return edits.set_source(state, ctx, window, source)

        await self.walls.change(
            wall, actor, "tour.step", run, detail={"window": window, "source": source}
        )

    async def _goto_preset(self, camera: str, preset: str, actor: Actor) -> None:
        if self.devices is None:
            raise DeviceError("no device service")
        drv = self.driver(camera)
        if drv.status is not DriverStatus.OK:
            raise DeviceError(f"{camera} is {drv.status.value}")
        await self.devices.call(camera, "goto_preset", {"preset": preset}, actor)

    def on_wall_changed(self, ev: Any) -> None:
        """WallService listener: tours end when their window is closed or taken over."""
        if not self.tours.tours:
            # No tour runs (the usual case): skip the window map, built per wall change.
            return
        windows = {w.id: w.source for w in ev.state.windows}
        self.tours.on_wall_changed(ev.state.wall, ev.action, windows)

    def _publish_tour(self, type_: str, data: dict[str, Any], actor: Actor) -> None:
        self.publish("camera", type_, data, actor)

    async def stop(self) -> None:
        await self.tours.close()
        self.uninstall()


__all__ = ["CameraService", "WallctlError", "camera_of"]


def camera_problems(config: Any) -> list[Any]:
    """``kind = "onvif"`` sources must name an ONVIF device: ``url = "onvif://<device>"``
    (optionally ``/<profile token>``), with ``protocol = "onvif"`` in [[devices]]."""
    from wallctl.config import Problem

    problems: list[Problem] = []
    devices = {d.id: d for d in config.devices}
    for i, s in enumerate(config.sources):
        if s.kind != "onvif":
            continue
        where = f"sources[{i}].url"
        ref = camera_of(s)
        if ref is None:
            problems.append(
                Problem(where, 'an onvif source needs url = "onvif://<device id>[/<profile>]"')
            )
            continue
        dev = devices.get(ref[0])
        if dev is None:
            problems.append(Problem(where, f"no device {ref[0]!r} in [[devices]]"))
        elif dev.protocol != "onvif":
            problems.append(Problem(where, f"device {ref[0]!r} is {dev.protocol}, not onvif"))
        if s.renditions:
            problems.append(
                Problem(f"sources[{i}].renditions", "an onvif source's streams are its profiles")
            )
    return problems
