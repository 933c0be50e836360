"""The render component inside the daemon: the demo wall with real test-pattern sources
(the SourceHub), following layout changes, reached through the API and HTTP."""

from __future__ import annotations

import asyncio
import os
import threading
import time
import tomllib
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from wallctl.client import open_client
from wallctl.config import parse_config
from wallctl.daemon import Daemon, Runtime
from wallctl.render.canvas import to_bgr
from wallctl.render.component import RenderComponent
from wallctl.render.compositor import Compositor
from wallctl.render.frames import SourcePhase
from wallctl.store import SYSTEM

from .conftest import wait_for

pytestmark = pytest.mark.timeout(90)

ROOT = Path(__file__).resolve().parents[2]
DOC_IMAGE = ROOT / "docs" / "images" / "demo-wall.png"
SOURCES = ["bars", "gradient", "checkers", "clock"]


@dataclass
class Running:
    daemon: Daemon
    rt: Runtime
    render: RenderComponent
    state_dir: Path


def demo_raw(state_dir: Path) -> dict[str, object]:
    raw = tomllib.loads((ROOT / "config" / "demo.toml").read_text(encoding="utf-8"))
    raw.setdefault("daemon", {})["state_dir"] = str(state_dir)  # type: ignore[index]
    raw["daemon"]["durability"] = "normal"  # type: ignore[index]
    raw["http"] = {"host": "127.0.0.1", "port": 0}
    raw["api"] = {**raw.get("api", {}), "port": 0}  # type: ignore[dict-item]
    return raw


@pytest.fixture
async def demo(tmp_path: Path) -> AsyncIterator[Running]:
    daemon = Daemon(parse_config(demo_raw(tmp_path)))
    run = asyncio.create_task(daemon.run())
    try:
        for _ in range(500):
            if daemon.runtime is not None and daemon.runtime.http.port:
                break
            if run.done():
                raise AssertionError(f"daemon exited: {run.result()}")
            await asyncio.sleep(0.02)
        rt = daemon.runtime
        assert rt is not None and rt.http.port
        render = rt.services["render"]
        assert isinstance(render, RenderComponent)
        yield Running(daemon, rt, render, tmp_path)
    finally:
        daemon.request_stop()
        assert await asyncio.wait_for(run, 30) == 0


def http_get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


class _Snapshot:
    """A tap that copies one whole frame (the canvas is repainted in place)."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.bgr: np.ndarray | None = None

    def on_frame(self, comp: Compositor, frame_no: int, changed: bool) -> None:
        if not self.done.is_set():
            self.bgr = to_bgr(comp.canvas.y, comp.canvas.u, comp.canvas.v)
            self.done.set()


def snapshot(comp: Compositor) -> np.ndarray:
    tap = _Snapshot()
    comp.add_tap(tap)
    try:
        assert tap.done.wait(5)
    finally:
        comp.remove_tap(tap)
    assert tap.bgr is not None
    return tap.bgr


async def all_live(render: RenderComponent, sources: list[str], wait_s: float = 15) -> None:
    def live() -> bool:
        return all(render.hub.view(s).phase is SourcePhase.LIVE for s in sources)

    await asyncio.to_thread(wait_for, live, wait_s)


async def test_demo_wall_composited_with_live_patterns_and_labels(
    demo: Running, tmp_path: Path
) -> None:
    rt, render = demo.rt, demo.render
    assert rt.services["sources"] is render.hub
    comp = render.compositors["main"]
    await all_live(render, SOURCES)
    # Every window shows video (no slate), with its source's name as the label.
    n = comp.frame_no
    await asyncio.to_thread(comp.wait_frame, n + 2)
    state = rt.walls.state("main")
    assert [w.source for w in state.stacked()] == SOURCES
    keys = [w.key for w in comp._wins]
    assert [k[0] for k in keys] == ["video"] * 4  # type: ignore[index]
    assert keys[0][2] == "测试信号：彩条"  # type: ignore[index]
    # The patterns move: two frames a few periods apart differ inside each window.
    y1 = comp.canvas.y.copy()
    await asyncio.to_thread(comp.wait_frame, comp.frame_no + 3)
    y2 = comp.canvas.y
    for w in state.windows:
        region = (slice(w.y + 100, w.y + w.h - 100), slice(w.x + 100, w.x + w.w - 100))
        if w.source in ("bars", "gradient", "checkers", "clock"):
            assert not np.array_equal(y1[region], y2[region]), w.source
    # The picture, saved for people to look at (and once into docs/): taken on the
    # compositor's thread between two frames, as every output takes it.
    bgr = await asyncio.to_thread(snapshot, comp)
    small = cv2.resize(bgr, (1920, 1080), interpolation=cv2.INTER_AREA)
    assert cv2.imwrite(str(tmp_path / "demo-wall.png"), small)
    # Once into docs/ (the README shows it); WALLCTL_WRITE_DOC_IMAGES=1 makes it anew.
    if not DOC_IMAGE.exists() or os.environ.get("WALLCTL_WRITE_DOC_IMAGES"):
        DOC_IMAGE.parent.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(DOC_IMAGE), small)
    # The same wall over HTTP, as the console and the dispatch system see it.
    status, headers, body = await asyncio.to_thread(
        http_get, f"{rt.http.url}/preview/main.jpg?width=960"
    )
    assert status == 200 and headers["Content-Type"] == "image/jpeg"
    img = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == (540, 960, 3)
    status, _, body = await asyncio.to_thread(http_get, f"{rt.http.url}/preview")
    assert status == 200 and b"/preview/main.mjpeg" in body
    status, headers, body = await asyncio.to_thread(
        http_get, f"{rt.http.url}/preview/source/clock.jpg?width=320"
    )
    assert status == 200 and headers["X-Source-Phase"] == "live"
    metrics = (await asyncio.to_thread(http_get, f"{rt.http.url}/metrics"))[2].decode()
    assert 'wallctl_render_frames_total{wall="main"}' in metrics
    assert 'wallctl_render_fps{wall="main"}' in metrics
    assert 'wallctl_render_late_frames_total{wall="main"}' in metrics
    health = render.health()
    assert health.status.value in ("ok", "degraded"), health


async def test_layout_switch_follows_the_wall_with_warm_sources(demo: Running) -> None:
    rt, render = demo.rt, demo.render
    comp = render.compositors["main"]
    await all_live(render, SOURCES)
    new = await rt.walls.apply_layout("main", SYSTEM, "1x1", ["clock"])
    # Handed over at once; shown from the next frame, the warm source live in it.
    assert render.hub.holders()["wall:main"] == {"clock": (new.windows[0].w, new.windows[0].h)}

    def shown() -> bool:
        return comp.state is not None and comp.state.revision == new.revision

    await asyncio.to_thread(wait_for, shown, 5)
    await asyncio.to_thread(comp.wait_frame, comp.frame_no + 1)
    assert [w.key[0] for w in comp._wins] == ["video"]  # type: ignore[index]
    assert comp.stats.switch_ms_last < 500
    # The sources that left stay warm (demanded by nobody, still decoding for a while).
    assert render.hub.view("bars").phase is SourcePhase.LIVE


async def test_hundred_layout_switches_end_in_the_last_without_leaks(demo: Running) -> None:
    rt, render = demo.rt, demo.render
    comp = render.compositors["main"]
    await all_live(render, SOURCES)
    threads = threading.active_count()
    fds = len(os.listdir("/proc/self/fd"))
    # 100 switches at once, as a burst of operators' clicks: the store commits them in
    # groups; the wall must end showing the newest.
    t0 = time.monotonic()
    results = await asyncio.gather(
        *(
            rt.walls.apply_layout(
                "main", SYSTEM, "2x2" if i % 2 else "1+5", [SOURCES[(i + k) % 4] for k in range(4)]
            )
            for i in range(100)
        )
    )
    assert time.monotonic() - t0 < 30
    last = max(results, key=lambda s: s.revision)
    assert last.revision == rt.walls.state("main").revision

    def settled() -> bool:
        return comp.state is not None and comp.state.revision == last.revision

    await asyncio.to_thread(wait_for, settled, 5)
    await asyncio.to_thread(comp.wait_frame, comp.frame_no + 1)
    assert comp.state == last
    assert [w.window.id for w in comp._wins] == [w.id for w in last.stacked()]
    # The same four sources throughout: no decoder started or leaked by the switching.
    await asyncio.sleep(0.5)
    assert threading.active_count() <= threads + 1
    assert len(os.listdir("/proc/self/fd")) <= fds + 4


async def test_highlight_and_status_through_the_api(demo: Running) -> None:
    rt, render = demo.rt, demo.render
    from wallctl.api.server import ApiServer

    api = next(c for c in rt.components if isinstance(c, ApiServer))
    password = (demo.state_dir / "admin-password").read_text().strip()
    window = rt.walls.state("main").stacked()[0].id
    async with open_client(api.url, account="admin", password=password, validate=True) as c:
        res = await c.call("render.highlight", {"window": window, "on": True})
        assert res == {"wall": "main", "highlighted": [window]}
        assert render.compositors["main"].highlighted() == {window}
        res = await c.call("render.highlight", {"window": window, "on": False})
        assert res["highlighted"] == []
        with pytest.raises(Exception) as e:
            await c.call("render.highlight", {"window": "w999"})
        assert getattr(e.value, "code", None) == "not_found"
        with pytest.raises(Exception) as e:
            await c.call("render.highlight", {"window": window, "on": "yes"})
        assert getattr(e.value, "code", None) == "invalid_field"
        with pytest.raises(Exception) as e:
            await c.call("render.highlight", {"wall": "nope", "window": window})
        assert getattr(e.value, "code", None) == "not_found"
        await asyncio.to_thread(render.compositors["main"].wait_frame, 0)
        status = await c.call("render.status")
        main = status["walls"]["main"]
        assert main["canvas"] == {"width": 3840, "height": 2160}
        assert main["frames"] > 0 and main["running"] is True


async def test_reload_changes_rate_and_labels_live(demo: Running) -> None:
    render = demo.render
    raw = demo_raw(demo.state_dir)
    raw["render"] = {**raw.get("render", {}), "fps": 10, "labels": False}  # type: ignore[dict-item]
    raw["render"]["streams"] = [{"id": "s1"}]  # type: ignore[index]
    restart = render.reload(parse_config(raw).config)
    assert restart == ["render.streams"]
    comp = render.compositors["main"]
    assert comp.fps == 10 and comp.labels is False


async def test_health_degrades_when_frames_are_late(demo: Running) -> None:
    render = demo.render
    comp = render.compositors["main"]
    await asyncio.to_thread(comp.wait_frame, 0)
    assert render.alive()
    # Half the frames of the last 10 s were late (as a starved machine would make them).
    now = time.monotonic()
    frames = max(10, len(comp._fps_times))
    comp._late_times.extend([now] * frames)
    health = render.health()
    assert health.status.value == "degraded"
    assert "frames late in the last 10 s" in health.detail
    comp._late_times.clear()
    # A compositor that stopped is a failure, and says which wall.
    await asyncio.to_thread(comp.stop)
    health = render.health()
    assert health.status.value == "failed" and "main" in health.detail
