"""Fake ONVIF cameras on real ports, and a daemon whose [[devices]] include them.

No conftest.py here: other folders import names from a `conftest` module of their own,
and a second rootless conftest would shadow theirs. Test modules import these fixtures.

- ``camera``: a started :class:`FakeCamera` (user admin, password ``CAM_PW``).
- ``rig``: a daemon (render off) with cameras ``ptz1`` (PTZ, events) and ``fixed1`` (no
  PTZ), sources ``cam-ptz`` / ``cam-fixed`` (``onvif://...``) and a test pattern, and one
  window on the main wall; ``rig.events`` records the bus.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from drivers.onvif.simulator import FakeCamera
from wallctl.api.server import ApiServer
from wallctl.bus import BusEvent
from wallctl.cameras.service import CameraService
from wallctl.config import parse_config
from wallctl.daemon import Daemon
from wallctl.devices.service import DeviceService

CAM_PW = "Cam-Secret-9f3"


async def eventually(check: Callable[[], Any], within: float = 8.0) -> None:
    """Wait until ``check()`` holds (generous: the machine is shared and noisy)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + within
    while not check():
        if loop.time() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


@pytest.fixture(name="camera")
async def camera_fixture() -> AsyncIterator[FakeCamera]:
    cam = await FakeCamera(password=CAM_PW).start()
    try:
        yield cam
    finally:
        await cam.stop()


def wall_config() -> dict[str, Any]:
    return {
        "id": "main",
        "tiles": {
            "rows": 2,
            "cols": 2,
            "width_mm": 1209.6,
            "height_mm": 680.4,
            "width_px": 1920,
            "height_px": 1080,
        },
    }


def camera_device(dev_id: str, port: int, password: str = CAM_PW, **over: Any) -> dict[str, Any]:
    dev = {
        "id": dev_id,
        "name": f"Camera {dev_id}",
        "protocol": "onvif",
        "host": "127.0.0.1",
        "port": port,
        "user": "admin",
        "password": password,
        "retry_max_s": 1,
        "timeout_ms": 2000,
        "deadman_ms": 400,
        "coalesce_ms": 100,
        "subscription_s": 10,
        "pull_timeout_s": 1,
    }
    dev.update(over)
    return dev


@dataclass
class Rig:
    daemon: Daemon
    cameras: dict[str, FakeCamera]
    tmp: Path
    task: asyncio.Task[int] | None = None
    events: list[BusEvent] = field(default_factory=list)

    @property
    def rt(self) -> Any:
        rt = self.daemon.runtime
        assert rt is not None
        return rt

    @property
    def devices(self) -> DeviceService:
        svc = self.rt.services["devices"]
        assert isinstance(svc, DeviceService)
        return svc

    @property
    def service(self) -> CameraService:
        svc = self.rt.services["cameras"]
        assert isinstance(svc, CameraService)
        return svc

    @property
    def api_url(self) -> str:
        return str(next(c for c in self.rt.components if isinstance(c, ApiServer)).url)

    @property
    def admin_password(self) -> str:
        return (self.tmp / "admin-password").read_text().strip()

    def camera_events(self, type_: str | None = None) -> list[dict[str, Any]]:
        return [
            e.data
            for e in self.events
            if e.category == "camera" and (type_ is None or e.type == type_)
        ]


async def start_rig(
    tmp_path: Path,
    devices: list[dict[str, Any]] | None = None,
    cameras: dict[str, FakeCamera] | None = None,
    wait: bool = True,
) -> Rig:
    if cameras is None:
        ptz = await FakeCamera(password=CAM_PW).start()
        fixed = await FakeCamera(password=CAM_PW, ptz=False, model="FakeCam Bullet").start()
        cameras = {"ptz1": ptz, "fixed1": fixed}
    if devices is None:
        devices = [camera_device(d, c.port) for d, c in cameras.items()]
    raw: dict[str, Any] = {
        "daemon": {"state_dir": str(tmp_path), "durability": "normal"},
        "http": {"port": 0},
        "api": {"port": 0},
        "render": {"enabled": False},
        "wall": wall_config(),
        "sources": [
            {"id": sid, "name": name, "kind": "onvif", "url": f"onvif://{dev}"}
            for sid, name, dev in (("cam-ptz", "云台", "ptz1"), ("cam-fixed", "枪机", "fixed1"))
            if any(d["id"] == dev for d in devices)
        ]
        + [{"id": "bars", "name": "Bars", "kind": "test_pattern"}],
        "devices": devices,
    }
    daemon = Daemon(parse_config(raw))
    task = asyncio.create_task(daemon.run())
    rig = Rig(daemon, cameras, tmp_path, task)
    for _ in range(500):
        rt = daemon.runtime
        if rt is not None and rt.http.port and "cameras" in rt.services:
            break
        await asyncio.sleep(0.02)
    rig.rt.bus.subscribe(rig.events.append)
    if wait:
        assert await rig.devices.wait_ready(15), {
            d.id: d.driver.status_detail for d in rig.devices.devices.values()
        }
    return rig


async def stop_rig(rig: Rig) -> None:
    rig.daemon.request_stop()
    assert rig.task is not None
    assert await asyncio.wait_for(rig.task, 20) == 0
    for cam in rig.cameras.values():
        await cam.stop()


@pytest.fixture(name="rig")
async def rig_fixture(tmp_path: Path) -> AsyncIterator[Rig]:
    r = await start_rig(tmp_path)
    try:
        yield r
    finally:
        await stop_rig(r)
