"""A camera as a wall source: its profiles become the SourceHub's renditions, and a real RTSP
server (gst-rtsp-server, digest auth) proves credentials are inserted inside the daemon."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from camrig import CAM_PW, eventually

from drivers.onvif.simulator import FakeCamera, FakeProfile
from wallctl.cameras.service import CameraService
from wallctl.config import SourceConfig
from wallctl.devices.config import DeviceConfig
from wallctl.devices.service import DeviceService
from wallctl.render.frames import SourcePhase
from wallctl.render.renditions import RESOLVERS
from wallctl.render.source_config import RenderSourcesConfig
from wallctl.render.sourcehub import SourceHub

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from render.conftest import RtspServer, have_gst_rtsp  # noqa: E402


@pytest.fixture
def rtsp() -> Any:
    if not have_gst_rtsp():
        pytest.fail("gst-rtsp-server is missing: `make deb-test-deps` installs it")
    srv = RtspServer(
        {"main": "test:1280x720@25", "sub": "test:320x180@25"},
        user="admin",
        password=CAM_PW,
        auth="digest",
    ).start()
    yield srv
    srv.stop()


async def test_camera_profiles_feed_the_rendition_choice(rtsp: RtspServer) -> None:
    cam = await FakeCamera(
        password=CAM_PW,
        profiles=[
            FakeProfile("main", "mainStream", 1280, 720, stream_uri=rtsp.url("main")),
            FakeProfile("sub", "subStream", 320, 180, stream_uri=rtsp.url("sub")),
        ],
    ).start()
    dev = DeviceConfig.model_validate(
        {
            "id": "cam1",
            "name": "Cam",
            "protocol": "onvif",
            "host": "127.0.0.1",
            "port": cam.port,
            "user": "admin",
            "password": CAM_PW,
            "events": False,
        }
    )
    devices = DeviceService([dev])
    src = SourceConfig(id="cam", name="路口", kind="onvif", url="onvif://cam1")
    hub = SourceHub([src], RenderSourcesConfig(warm_s=0, backoff_initial_s=0.2, backoff_max_s=1))
    events: list[tuple[str, str, dict[str, Any]]] = []
    svc = CameraService(devices, None, [src], lambda c, t, d, a: events.append((c, t, d)), hub)
    svc.install()
    try:
        await hub.start()
        # Demanded before the camera answered: the source waits, with a reason.
        hub.demand("wall", {"cam": (320, 180)})
        view = hub.view("cam")
        assert view.phase is SourcePhase.FAILED and "not known yet" in (view.error or "")
        await devices.start()
        svc.attach()
        assert await devices.wait_ready(15)
        # The camera connected: its profiles became renditions; the small window gets "sub".
        await eventually(lambda: hub.view("cam").phase is SourcePhase.LIVE, 15)
        stats = hub.source_stats("cam")
        assert stats is not None and stats["rendition"] == "sub"
        # A full-screen window needs the main stream.
        hub.demand("wall", {"cam": (1280, 720)})
        await eventually(lambda: (hub.source_stats("cam") or {}).get("rendition") == "main", 15)
        await eventually(lambda: hub.view("cam").phase is SourcePhase.LIVE, 15)
        frame = hub.view("cam").frame
        assert frame is not None and frame.width == 1280
        # The credentials were used (the RTSP server demands digest auth) but never shown.
        shown = json.dumps([hub.stats(), svc.list_cameras(), [e[2] for e in events]], default=str)
        assert CAM_PW not in shown
    finally:
        svc.uninstall()
        assert "onvif" not in RESOLVERS
        hub.demand("wall", {})
        await devices.stop()
        await asyncio.to_thread(hub.close)
        await cam.stop()


async def test_window_set_source_to_a_camera_in_the_running_daemon(
    rtsp: RtspServer, tmp_path: Path
) -> None:
    import tomllib

    from wallctl.client import open_client
    from wallctl.config import parse_config
    from wallctl.daemon import Daemon

    cam = await FakeCamera(
        password=CAM_PW,
        profiles=[
            FakeProfile("main", "mainStream", 1280, 720, stream_uri=rtsp.url("main")),
            FakeProfile("sub", "subStream", 320, 180, stream_uri=rtsp.url("sub")),
        ],
    ).start()
    raw = tomllib.loads((ROOT / "config" / "demo.toml").read_text(encoding="utf-8"))
    raw.setdefault("daemon", {}).update({"state_dir": str(tmp_path), "durability": "normal"})
    raw["http"] = {"host": "127.0.0.1", "port": 0}
    raw["api"] = {**raw.get("api", {}), "port": 0}
    raw.setdefault("devices", []).append(
        {
            "id": "cam1",
            "name": "北门",
            "protocol": "onvif",
            "host": "127.0.0.1",
            "port": cam.port,
            "user": "admin",
            "password": CAM_PW,
            "events": False,
        }
    )
    raw["sources"].append({"id": "north", "name": "北门", "kind": "onvif", "url": "onvif://cam1"})
    daemon = Daemon(parse_config(raw))
    run = asyncio.create_task(daemon.run())
    try:
        for _ in range(500):
            if daemon.runtime is not None and daemon.runtime.http.port:
                break
            await asyncio.sleep(0.02)
        rt = daemon.runtime
        assert rt is not None
        hub = rt.services["sources"]
        from wallctl.api.server import ApiServer

        url = next(c for c in rt.components if isinstance(c, ApiServer)).url
        password = (tmp_path / "admin-password").read_text().strip()
        async with open_client(
            url, account="admin", password=password, subscriptions=["source"]
        ) as c:
            win = rt.walls.state("main").windows[0]
            await c.call("window.set_source", {"window": win.id, "source": "north"})
            live: dict[str, Any] = {}
            async with asyncio.timeout(20):
                while not live:
                    ev = await c.next_event()
                    if ev["type"] == "source.state" and ev["data"].get("source") == "north":
                        if ev["data"].get("phase") == "live":
                            live = ev["data"]
            # The window is a whole 1080p tile: no profile covers it, the largest is used.
            assert (hub.source_stats("north") or {}).get("rendition") == "main"
            assert CAM_PW not in json.dumps(live) and CAM_PW not in json.dumps(hub.stats())
    finally:
        daemon.request_stop()
        assert await asyncio.wait_for(run, 30) == 0
        await cam.stop()


def test_onvif_urls_name_a_device_and_optionally_a_profile() -> None:
    from wallctl.cameras.service import camera_of

    def src(url: str) -> SourceConfig:
        return SourceConfig(id="s", name="S", kind="onvif", url=url)

    assert camera_of(src("onvif://cam1")) == ("cam1", None)
    assert camera_of(src("onvif://cam-2/sub_01")) == ("cam-2", "sub_01")
    for bad in ("rtsp://cam1/a", "onvif://", "onvif://a/b/c", "onvif://-x", "onvif://a?x=1"):
        assert camera_of(src(bad)) is None, bad


async def test_a_source_pinned_to_one_profile_gets_only_that_stream() -> None:
    cam = await FakeCamera(password=CAM_PW).start()
    cam.profiles[1].stream_uri = "rtsp://127.0.0.1:9/sub"
    dev = DeviceConfig.model_validate(
        {
            "id": "cam1",
            "name": "Cam",
            "protocol": "onvif",
            "host": "127.0.0.1",
            "port": cam.port,
            "password": CAM_PW,
            "events": False,
        }
    )
    devices = DeviceService([dev])
    pinned = SourceConfig(id="p", name="P", kind="onvif", url="onvif://cam1/sub")
    svc = CameraService(devices, None, [pinned], lambda *a: None)
    try:
        assert svc.renditions(pinned) == []  # not connected yet: nothing to decode
        await devices.start()
        assert await devices.wait_ready(15)
        assert [(r.name, r.url) for r in svc.renditions(pinned)] == [
            ("sub", f"rtsp://admin:{CAM_PW}@127.0.0.1:9/sub")
        ]
    finally:
        await devices.stop()
        await cam.stop()
