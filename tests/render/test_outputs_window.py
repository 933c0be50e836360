"""The window output on a real X server (Xvfb): one borderless window per head, placed
at the head's geometry; a screenshot of the X screen (PyAV's x11grab) matches the
canvas the compositor painted."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import Iterator

import av
import numpy as np
import pytest

from wallctl.config import WallConfig
from wallctl.render.canvas import to_bgr
from wallctl.render.compositor import Compositor
from wallctl.render.config import WindowHeadConfig, WindowOutputConfig
from wallctl.render.outputs.window import WindowOutput
from wallctl.render.text import TextPainter
from wallctl.wall import Wall
from wallctl.wallstate import WallState, Window

from .conftest import wait_for
from .test_compositor import Supply, halves, solid

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(shutil.which("Xvfb") is None, reason="needs Xvfb (Debian xvfb)"),
]


@pytest.fixture
def xvfb() -> Iterator[str]:
    read, write = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write), "-screen", "0", "800x400x24", "-nolisten", "tcp"],
        pass_fds=(write,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write)
    try:
        with os.fdopen(read) as f:
            number = f.readline().strip()
        assert number.isdigit(), "Xvfb did not report its display"
        yield f":{number}"
    finally:
        proc.terminate()
        proc.wait(10)


def two_head_wall() -> Wall:
    cfg = WallConfig(
        id="main",
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
    return Wall.from_config(cfg)


def grab(display: str, width: int, height: int) -> np.ndarray:
    with av.open(display, format="x11grab", options={"video_size": f"{width}x{height}"}) as c:
        for frame in c.decode(video=0):
            return frame.to_ndarray(format="bgr24")
    raise AssertionError("no screenshot")


async def test_heads_shown_at_their_geometry(xvfb: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # The output sets $DISPLAY for SDL: put the test process's own back afterwards.
    monkeypatch.setenv("DISPLAY", xvfb)
    supply = Supply()
    wall = two_head_wall()
    comp = Compositor(wall, supply, fps=25, labels=True, text=TextPainter())
    supply.live("a", halves(supply, 640, 360, 60, 200), name="测试信号")
    supply.live("b", solid(supply, 320, 180, (81, 90, 240)))
    comp.set_state(
        WallState(
            wall="main",
            windows=(
                Window(id="w1", x=0, y=0, w=640, h=180, source="a", fit="stretch"),
                Window(id="w2", x=0, y=180, w=320, h=180, source="b", fit="stretch"),
                Window(id="w3", x=320, y=180, w=320, h=180, source=None),
            ),
        )
    )
    # The bottom head goes 100 px right of where the wall would put it (a placement).
    cfg = WindowOutputConfig(
        enabled=True,
        display=xvfb,
        renderer="software",
        placements=[WindowHeadConfig(wall="main", head="bottom", x=100, y=200)],
    )
    out = WindowOutput(cfg, {"main": comp})
    comp.start()
    await out.start()
    try:
        assert out.opened.wait(10), out.error
        assert out.wait_presented(2, timeout=10)
        await asyncio.sleep(0.3)  # let the X server finish drawing
        shot = await asyncio.to_thread(grab, xvfb, 800, 400)
    finally:
        await out.stop()
        comp.stop()
    assert out.error is None
    canvas = to_bgr(comp.canvas.y, comp.canvas.u, comp.canvas.v)
    top = shot[0:180, 0:640].astype(int)
    bottom = shot[200:380, 100:740].astype(int)
    for got, want in ((top, canvas[0:180, 0:640]), (bottom, canvas[180:360, 0:640])):
        diff = np.abs(got - want.astype(int))
        assert diff.mean() < 4, diff.mean()
        assert np.percentile(diff, 99) < 24
    # Outside the windows the X root stays black: the windows are exactly head-sized.
    assert shot[190, 700].max() < 10 and shot[390, 50].max() < 10
    # The red window on the bottom head really is red on screen.
    b, g, r = shot[290, 150].astype(int)
    assert r > 200 and g < 60 and b < 60


async def test_no_display_is_reported_and_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISPLAY", ":4099")
    supply = Supply()
    comp = Compositor(two_head_wall(), supply, fps=25, text=TextPainter())
    cfg = WindowOutputConfig(enabled=True, display=":4099", renderer="software")
    out = WindowOutput(cfg, {"main": comp})
    await out.start()
    try:
        await asyncio.to_thread(wait_for, lambda: out.error is not None, 10)
        assert out.error is not None and "SDL" in out.error
        assert not out.opened.is_set()
    finally:
        await out.stop()
