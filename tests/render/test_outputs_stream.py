"""The stream output decoded back: HTTP-served MPEG-TS read by PyAV and ffprobe, and
MPEG-TS pushed over UDP to a socket of the test."""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import socket
import subprocess
import threading
from collections.abc import AsyncIterator

import av
import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from wallctl.render.compositor import Compositor
from wallctl.render.config import StreamConfig
from wallctl.render.outputs import stream as stream_module
from wallctl.render.outputs.stream import StreamOutputs
from wallctl.render.text import TextPainter
from wallctl.wallstate import WallState, Window

from .conftest import wait_for
from .test_compositor import Supply, small_wall, solid

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def comp() -> AsyncIterator[Compositor]:
    supply = Supply()
    wall = small_wall()
    supply.live("a", solid(supply, 320, 180, (81, 90, 240)))  # red
    supply.live("b", solid(supply, 320, 180, (145, 54, 34)))  # green
    c = Compositor(wall, supply, fps=25, labels=False, text=TextPainter())
    c.set_state(
        WallState(
            wall="main",
            windows=(
                Window(id="w1", x=0, y=0, w=320, h=360, source="a", fit="stretch"),
                Window(id="w2", x=320, y=0, w=320, h=360, source="b", fit="stretch"),
            ),
        )
    )
    c.start()
    yield c
    c.stop()


def _decode_frames(container: av.container.InputContainer, count: int) -> list[np.ndarray]:
    out = []
    for frame in container.decode(video=0):
        out.append(frame.to_ndarray(format="rgb24"))
        if len(out) >= count:
            break
    return out


async def test_http_stream_decodes_to_the_canvas(
    comp: Compositor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream_module, "IDLE_STOP_S", 0.5)
    cfg = StreamConfig(id="wall", wall="main", width=320, fps=25, bitrate_kbps=1000)
    outs = StreamOutputs([cfg], {"main": comp})
    app = web.Application()
    outs.add_routes(app)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    await outs.start()
    out = outs.outputs["wall"]
    url = str(server.make_url("/stream/wall.ts"))
    try:
        assert out.frames == 0  # nobody watches: nothing encoded

        def pull() -> list[np.ndarray]:
            with av.open(url, timeout=10) as c:
                return _decode_frames(c, 10)

        frames = await asyncio.to_thread(pull)
        assert len(frames) == 10
        rgb = frames[-1]
        assert rgb.shape == (180, 320, 3)
        r, g, b = rgb[90, 60].astype(int)
        assert r > 180 and g < 80 and b < 80  # left half red
        r, g, b = rgb[90, 260].astype(int)
        assert g > 180 and r < 80  # right half green

        if shutil.which("ffprobe"):
            probe = await asyncio.to_thread(
                subprocess.run,
                [
                    "ffprobe", "-v", "error", "-probesize", "200000", "-analyzeduration", "500000",
                    "-select_streams", "v:0", "-show_entries",
                    "stream=codec_name,width,height,pix_fmt", "-of", "json", url,
                ],
                capture_output=True, text=True, timeout=30,
            )  # fmt: skip
            info = json.loads(probe.stdout)["streams"][0]
            assert info == {"codec_name": "h264", "width": 320, "height": 180, "pix_fmt": "yuv420p"}
        # The viewers left: encoding stops a little later.
        await asyncio.to_thread(wait_for, lambda: not out._active.is_set(), 10)
        assert out.viewers == 0
    finally:
        await outs.stop()
        await server.close()


async def test_unknown_stream_is_404(comp: Compositor) -> None:
    outs = StreamOutputs([StreamConfig(id="s1", wall="main")], {"main": comp})
    app = web.Application()
    outs.add_routes(app)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        import aiohttp

        async with aiohttp.ClientSession() as s, s.get(server.make_url("/stream/zz.ts")) as r:
            assert r.status == 404
    finally:
        await server.close()


def test_stream_of_an_unknown_head_or_wall_is_refused(comp: Compositor) -> None:
    with pytest.raises(ValueError, match="no head 'nope'"):
        StreamOutputs([StreamConfig(id="s", wall="main", head="nope")], {"main": comp})
    with pytest.raises(ValueError, match="no wall 'side'"):
        StreamOutputs([StreamConfig(id="s", wall="side")], {"main": comp})


def test_udp_target_must_be_host_port() -> None:
    with pytest.raises(ValueError, match="needs target"):
        StreamConfig(id="s", mode="udp")
    with pytest.raises(ValueError, match="host:port"):
        StreamConfig(id="s", mode="udp", target="239.1.1.1")


async def test_udp_push_decodes(comp: Compositor) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    port = sock.getsockname()[1]
    cfg = StreamConfig(
        id="push", wall="main", width=320, fps=25, mode="udp", target=f"127.0.0.1:{port}"
    )
    outs = StreamOutputs([cfg], {"main": comp})
    received = bytearray()
    stop = threading.Event()

    def receive() -> None:
        while not stop.is_set():
            try:
                received.extend(sock.recv(65536))
            except TimeoutError:
                continue

    t = threading.Thread(target=receive, daemon=True)
    t.start()
    await outs.start()
    try:
        await asyncio.to_thread(wait_for, lambda: len(received) >= 30_000, 20)
    finally:
        await outs.stop()
        stop.set()
        t.join()
        sock.close()
    assert len(received) % 188 == 0 and received[0] == 0x47  # whole TS packets
    with av.open(io.BytesIO(bytes(received)), format="mpegts") as c:
        frames = _decode_frames(c, 5)
    assert len(frames) == 5 and frames[0].shape == (180, 320, 3)
    assert frames[-1][90, 60, 0] > 180


async def test_stream_of_one_head_at_native_size(monkeypatch: pytest.MonkeyPatch) -> None:
    from wallctl.config import WallConfig
    from wallctl.wall import Wall

    monkeypatch.setattr(stream_module, "IDLE_STOP_S", 0.5)
    wall = Wall.from_config(
        WallConfig(
            min_diagonal_cm=1,
            tiles={
                "rows": 2,
                "cols": 2,
                "width_mm": 1209.6,
                "height_mm": 680.4,
                "width_px": 320,
                "height_px": 180,
            },
            heads=[
                {"id": "top", "row": 0, "col": 0, "rows": 1, "cols": 2},
                {"id": "bottom", "row": 1, "col": 0, "rows": 1, "cols": 2},
            ],
        )
    )
    supply = Supply()
    supply.live("a", solid(supply, 320, 180, (81, 90, 240)))  # red
    supply.live("b", solid(supply, 320, 180, (145, 54, 34)))  # green
    c = Compositor(wall, supply, fps=25, labels=False, text=TextPainter())
    c.set_state(
        WallState(
            wall="main",
            windows=(
                Window(id="w1", x=0, y=0, w=640, h=180, source="a", fit="stretch"),
                Window(id="w2", x=0, y=180, w=640, h=180, source="b", fit="stretch"),
            ),
        )
    )
    c.start()
    outs = StreamOutputs([StreamConfig(id="bottom", head="bottom", fps=25)], {"main": c})
    app = web.Application()
    outs.add_routes(app)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    await outs.start()
    url = str(server.make_url("/stream/bottom.ts"))
    try:

        def pull() -> list[np.ndarray]:
            with av.open(url, timeout=10) as container:
                return _decode_frames(container, 3)

        frames = await asyncio.to_thread(pull)
    finally:
        await outs.stop()
        await server.close()
        c.stop()
    rgb = frames[-1]
    assert rgb.shape == (180, 640, 3)  # the head's own size: two tiles side by side
    r, g, _b = rgb[90, 320].astype(int)
    assert g > 180 and r < 80  # the bottom head shows the green window only


@pytest.mark.skipif(shutil.which("ffprobe") is None, reason="needs Debian ffmpeg (libsrt)")
async def test_srt_listener_is_pulled_by_a_caller(comp: Compositor) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = StreamConfig(id="srt", wall="main", width=320, mode="srt", target=f"127.0.0.1:{port}")
    outs = StreamOutputs([cfg], {"main": comp})
    await outs.start()
    try:
        # The relay listens once its ffmpeg has read the start of the stream: call until
        # it answers (as a decoder does).
        for _ in range(20):
            probe = await asyncio.to_thread(
                subprocess.run,
            [
                "ffprobe", "-v", "error", "-probesize", "200000", "-analyzeduration", "1000000",
                "-select_streams", "v:0", "-show_entries", "stream=codec_name,width,height",
                "-of", "json", f"srt://127.0.0.1:{port}?mode=caller&connect_timeout=5000",
            ],
            capture_output=True, text=True, timeout=30,
            )  # fmt: skip
            if probe.returncode == 0:
                break
            await asyncio.sleep(0.5)
        assert probe.returncode == 0, (probe.stderr, outs.outputs["srt"].relay)
        info = json.loads(probe.stdout)["streams"][0]
        assert info == {"codec_name": "h264", "width": 320, "height": 180}
        # The caller left: the relay listens again for the next one.
        relay = outs.outputs["srt"].relay
        assert relay is not None
        await asyncio.to_thread(wait_for, lambda: relay.restarts >= 1, 10)
    finally:
        await outs.stop()
