"""The preview over real HTTP: MJPEG parsed part by part, snapshots, thumbnails, bad input.

A compositor thread runs on an in-test frame supply; an aiohttp server on a free port
serves the routes; aiohttp's client reads them as a browser would.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import cv2
import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from wallctl.render.compositor import Compositor
from wallctl.render.config import PreviewConfig
from wallctl.render.frames import SourcePhase
from wallctl.render.outputs.preview import THUMBS_HOLDER, PreviewHub
from wallctl.render.outputs.preview_http import BOUNDARY, PreviewRoutes
from wallctl.render.text import TextPainter
from wallctl.wall import Wall
from wallctl.wallstate import WallState, Window

from .conftest import wait_for
from .test_compositor import Supply, small_wall, solid

pytestmark = pytest.mark.timeout(60)


@dataclass
class Rig:
    url: str
    hub: PreviewHub
    comp: Compositor
    supply: Supply
    wall: Wall
    session: aiohttp.ClientSession


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    supply = Supply()
    wall = small_wall()
    text = TextPainter()
    comp = Compositor(wall, supply, fps=25, labels=False, text=text)
    supply.live("a", solid(supply, 320, 180, (81, 90, 240)))  # red
    supply.live("b", solid(supply, 320, 180, (41, 240, 110)))  # blue
    comp.set_state(
        WallState(
            wall="main",
            windows=(
                Window(id="w1", x=0, y=0, w=320, h=360, source="a", fit="stretch"),
                Window(id="w2", x=320, y=0, w=320, h=360, source="b", fit="stretch"),
            ),
        )
    )
    cfg = PreviewConfig(width=320, fps=10, max_width=480, max_fps=20, max_viewers=3, max_sizes=2)
    hub = PreviewHub(cfg, supply, lambda: {"a", "b", "c"}, text)
    hub.attach(comp, asyncio.get_running_loop())
    app = web.Application()
    PreviewRoutes(hub, lambda: {"main": "主屏 <main>"}).add_to(app)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    await hub.start()
    comp.start()
    session = aiohttp.ClientSession()
    try:
        yield Rig(str(server.make_url("")).rstrip("/"), hub, comp, supply, wall, session)
    finally:
        await session.close()
        await hub.stop()
        comp.stop()
        await server.close()


def decode(jpeg: bytes) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None
    return img


async def read_parts(resp: aiohttp.ClientResponse, count: int) -> list[bytes]:
    """Parse multipart/x-mixed-replace by hand: boundary, headers, Content-Length body."""
    parts = []
    reader = resp.content
    while len(parts) < count:
        line = await reader.readline()
        if not line.strip():
            continue
        assert line.strip() == f"--{BOUNDARY}".encode(), line
        headers = {}
        while True:
            h = (await reader.readline()).strip()
            if not h:
                break
            k, _, v = h.decode().partition(":")
            headers[k.strip().lower()] = v.strip()
        assert headers["content-type"] == "image/jpeg"
        body = await reader.readexactly(int(headers["content-length"]))
        assert body[:2] == b"\xff\xd8" and body[-2:] == b"\xff\xd9"
        parts.append(body)
    return parts


async def test_page_lists_each_wall_without_external_resources(rig: Rig) -> None:
    async with rig.session.get(rig.url + "/preview") as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/html")
        page = await r.text()
    assert '<img src="/preview/main.mjpeg?width=320&amp;fps=10"' in page
    assert "主屏 &lt;main&gt;" in page  # the wall's name, escaped
    assert "http://" not in page and "https://" not in page and "//" not in page.split("<body>")[1]


async def test_mjpeg_stream_parts_are_the_wall(rig: Rig) -> None:
    async with rig.session.get(rig.url + "/preview/main.mjpeg?width=320&fps=10") as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == f"multipart/x-mixed-replace; boundary={BOUNDARY}"
        t0 = time.monotonic()
        # The wall changes every frame: the parts keep coming at about the asked rate.
        for _ in range(30):
            rig.supply.live("a", solid(rig.supply, 320, 180, (81, 90, 240)))
            await asyncio.sleep(0.01)
        parts = await read_parts(r, 4)
        took = time.monotonic() - t0
    assert took >= 0.25  # 4 pictures at 10 fps take at least 0.3 s (after the first)
    img = decode(parts[-1])
    assert img.shape == (180, 320, 3)
    b, g, r_ = img[90, 80].astype(int)
    assert r_ > 200 and b < 60 and g < 60  # left half red
    b, g, r_ = img[90, 240].astype(int)
    assert b > 200 and r_ < 60  # right half blue
    # The viewer left: counted out (at the latest when the next keep-alive write fails).
    await asyncio.to_thread(wait_for, lambda: rig.hub.viewers == 0, 10)


async def test_one_encode_per_size_however_many_viewers(rig: Rig) -> None:
    urls = [rig.url + "/preview/main.mjpeg?width=320&fps=20"] * 3
    responses = [await rig.session.get(u) for u in urls]
    try:
        for _ in range(40):
            rig.supply.live("a", solid(rig.supply, 320, 180, (81, 90, 240)))
            await asyncio.sleep(0.025)
        got = await asyncio.gather(*(read_parts(r, 5) for r in responses))
        wp = rig.hub.walls["main"]
        # Three viewers of one size share each picture: the encodes are those of one.
        assert sum(len(g) for g in got) == 15
        assert wp.encodes <= 40
        assert len(wp.sizes) == 1
        # A fourth viewer is over the limit of 3.
        async with rig.session.get(urls[0]) as r:
            assert r.status == 503
            assert "max 3" in await r.text()
    finally:
        for r in responses:
            r.close()


async def test_nothing_is_encoded_while_nobody_watches(rig: Rig) -> None:
    wp = rig.hub.walls["main"]
    await asyncio.sleep(0.3)
    assert wp.encodes == 0


async def test_snapshot_and_width_cap(rig: Rig) -> None:
    async with rig.session.get(rig.url + "/preview/main.jpg?width=200") as r:
        assert r.status == 200 and r.headers["Content-Type"] == "image/jpeg"
        img = decode(await r.read())
    assert img.shape[1] == 192  # snapped to a multiple of 16
    async with rig.session.get(rig.url + "/preview/main.jpg?width=100000") as r:
        img = decode(await r.read())
    assert img.shape == (270, 480, 3)  # capped at max_width, aspect kept
    # Nothing changed on the wall: the same picture is answered without a new encode.
    before = rig.hub.walls["main"].encodes
    async with rig.session.get(rig.url + "/preview/main.jpg?width=480") as r:
        assert r.status == 200
    assert rig.hub.walls["main"].encodes == before


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("width=abc", "width must be a whole number of pixels, not 'abc'"),
        ("width=-5", "width must be a whole number of pixels, not '-5'"),
        ("width=0", "width must be at least 16 pixels, not 0"),
        ("width=1.5", "width must be a whole number of pixels, not '1.5'"),
        ("width=99999999999", "width must be a whole number of pixels, not '99999999999'"),
        ("width=320&width=640", "width is given 2 times; give it once"),
        ("fps=0", "fps must be a positive number, not '0'"),
        ("fps=-1", "fps must be a positive number, not '-1'"),
        ("fps=nan", "fps must be a positive number, not 'nan'"),
        ("fps=inf", "fps must be a positive number, not 'inf'"),
        ("fps=fast", "fps must be a number of pictures per second, not 'fast'"),
    ],
)
async def test_bad_query_values_get_400_with_the_reason(rig: Rig, query: str, reason: str) -> None:
    async with rig.session.get(rig.url + "/preview/main.mjpeg?" + query) as r:
        assert r.status == 400
        assert (await r.text()).strip() == reason
    assert rig.hub.viewers == 0
    if query.startswith("width"):
        async with rig.session.get(rig.url + "/preview/main.jpg?" + query) as r:
            assert r.status == 400
            assert (await r.text()).strip() == reason
        async with rig.session.get(rig.url + "/preview/source/a.jpg?" + query) as r:
            assert r.status == 400
    # Nothing else was disturbed: a good request still works.
    async with rig.session.get(rig.url + "/preview/main.jpg?width=160&t=123") as r:
        assert r.status == 200


async def test_unknown_wall_and_source_are_404(rig: Rig) -> None:
    for path in ("/preview/nope.jpg", "/preview/nope.mjpeg", "/preview/source/nope.jpg"):
        async with rig.session.get(rig.url + path) as r:
            assert r.status == 404, path
            assert "nope" in await r.text()


async def test_too_many_sizes_is_503(rig: Rig) -> None:
    r1 = await rig.session.get(rig.url + "/preview/main.mjpeg?width=160")
    r2 = await rig.session.get(rig.url + "/preview/main.mjpeg?width=320")
    try:
        await read_parts(r1, 1)
        await read_parts(r2, 1)
        async with rig.session.get(rig.url + "/preview/main.mjpeg?width=480") as r:
            assert r.status == 503
            assert "max 2" in await r.text()
    finally:
        r1.close()
        r2.close()


async def test_source_thumbnail_demands_the_source(rig: Rig) -> None:
    async with rig.session.get(rig.url + "/preview/source/a.jpg?width=160") as r:
        assert r.status == 200 and r.headers["X-Source-Phase"] == "live"
        img = decode(await r.read())
    assert img.shape == (90, 160, 3)
    assert img[45, 80, 2] > 200  # red
    assert rig.supply.demands[THUMBS_HOLDER] == {"a": (160, 90)}
    # A source that is not live answers its slate, quickly, with the phase.
    rig.supply.set("c", SourcePhase.NO_SIGNAL, last=time.time() - 10)
    async with rig.session.get(rig.url + "/preview/source/c.jpg") as r:
        assert r.status == 200 and r.headers["X-Source-Phase"] == "no_signal"
        img = decode(await r.read())
    assert img.shape == (180, 320, 3)
    # Same frame, same size: served from the cache, not encoded again.
    encodes = rig.hub.thumb_encodes
    async with rig.session.get(rig.url + "/preview/source/a.jpg?width=160") as r:
        assert r.status == 200
    assert rig.hub.thumb_encodes == encodes


async def test_thumbnail_hold_expires(rig: Rig) -> None:
    rig.hub.configure(rig.hub.config.model_copy(update={"thumb_hold_s": 0.5}))
    async with rig.session.get(rig.url + "/preview/source/b.jpg") as r:
        assert r.status == 200
    assert "b" in rig.supply.demands[THUMBS_HOLDER]
    await asyncio.to_thread(wait_for, lambda: not rig.supply.demands[THUMBS_HOLDER], 5)


async def test_slow_viewer_does_not_stall_others(rig: Rig) -> None:
    # A client that never reads: its socket buffers fill, its writes time out; a second
    # viewer keeps getting pictures meanwhile.
    _reader, writer = await asyncio.open_connection(*rig.url.removeprefix("http://").split(":"))
    writer.write(b"GET /preview/main.mjpeg?width=480&fps=20 HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    try:
        async with rig.session.get(rig.url + "/preview/main.mjpeg?width=480&fps=20") as r:
            for _ in range(20):
                rig.supply.live("a", solid(rig.supply, 320, 180, (81, 90, 240)))
                await asyncio.sleep(0.03)
            parts = await read_parts(r, 5)
        assert len(parts) == 5
    finally:
        writer.close()
