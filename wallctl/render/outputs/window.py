"""The ``window`` output: a borderless window per head on an X display, via SDL2.

Each head of each wall gets a window exactly the head's size, placed where the head's
monitor sits on the X screen (by default the head's place in the wall: column and row
times the tile size, the usual arrangement of a multi-head X screen; configurable per
head). The picture goes up as I420 into an SDL streaming texture, so no colour
conversion runs on the CPU when SDL renders with the GPU; the software renderer (an X
server without GPU, Xvfb) converts in SDL's own code.

All SDL calls happen on this output's one thread (SDL wants its video calls on one
thread). The compositor thread only copies a changed head's planes into a spare buffer
and signals; a slow X server makes the window skip frames, never the compositor wait.
If the display cannot be opened (X not up yet, restarted), it is retried every few
seconds and the health says why.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from wallctl.logs import get_logger
from wallctl.render.compositor import Compositor, raise_thread_priority
from wallctl.render.config import WindowOutputConfig
from wallctl.render.frames import Plane
from wallctl.wall import Head, Wall

log = get_logger("wallctl.render.window")

RETRY_S = 5.0
_U8P = ctypes.POINTER(ctypes.c_uint8)


@dataclass
class HeadWindow:
    wall: Wall
    head: Head
    x: int
    y: int
    width: int
    height: int
    # Filled by the compositor thread, taken by the SDL thread.
    pending: tuple[Plane, Plane, Plane] | None = None
    spare: list[tuple[Plane, Plane, Plane]] = field(default_factory=list)
    shown: int = 0
    sdl_window: Any = None
    renderer: Any = None
    texture: Any = None


def default_position(wall: Wall, head: Head) -> tuple[int, int]:
    return head.col * wall.tile_w_px, head.row * wall.tile_h_px


class WindowOutput:
    def __init__(self, config: WindowOutputConfig, compositors: dict[str, Compositor]) -> None:
        self.config = config
        self.compositors = {
            wid: c for wid, c in compositors.items() if not config.walls or wid in config.walls
        }
        placements = {(p.wall, p.head): (p.x, p.y) for p in config.placements}
        self.heads: list[HeadWindow] = []
        for comp in self.compositors.values():
            for head in comp.wall.heads:
                x, y = placements.get((comp.wall.id, head.id), default_position(comp.wall, head))
                w, h = comp.canvas.head_size(head)
                self.heads.append(HeadWindow(comp.wall, head, x, y, w, h))
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: str | None = None
        self.opened = threading.Event()
        self.presented = 0
        self.nice = -10

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="window-output", daemon=True)
        self._thread.start()
        for comp in self.compositors.values():
            comp.add_tap(self)

    async def stop(self) -> None:
        for comp in self.compositors.values():
            comp.remove_tap(self)
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 5.0)
            self._thread = None

    # --- compositor thread -----------------------------------------------------------------

    def on_frame(self, comp: Compositor, frame_no: int, changed: bool) -> None:
        if not changed and frame_no > 1:
            return
        if not self.opened.is_set():
            return
        for hw in self.heads:
            if hw.wall is not comp.wall:
                continue
            y, u, v = comp.canvas.head_image(hw.head)
            with self._lock:
                buf = hw.spare.pop() if hw.spare else None
            if buf is None or buf[0].shape != y.shape:
                buf = (np.empty_like(y), np.empty_like(u), np.empty_like(v))
            np.copyto(buf[0], y)
            np.copyto(buf[1], u)
            np.copyto(buf[2], v)
            with self._lock:
                if hw.pending is not None:
                    hw.spare.append(hw.pending)
                hw.pending = buf
        self._wake.set()

    # --- the SDL thread ----------------------------------------------------------------------

    def _run(self) -> None:
        # Putting the picture on the panels is as urgent as painting it.
        raise_thread_priority(self.nice, "window output")
        while not self._stop.is_set():
            try:
                self._open()
            except Exception as e:
                self.error = str(e)
                log.error("window output cannot open the display", reason=self.error)
                self._close()
                self._stop.wait(RETRY_S)
                continue
            self.error = None
            self.opened.set()
            # The first picture: the compositor repaints everything for a new tap.
            for comp in self.compositors.values():
                comp.configure()
            try:
                self._loop()
            except Exception as e:
                self.error = str(e)
                log.exception("window output failed; reopening", reason=self.error)
            self.opened.clear()
            self._close()
            if not self._stop.is_set():
                self._stop.wait(RETRY_S)

    def _open(self) -> None:
        import sdl2
        import sdl2.surface

        if self.config.display:
            os.environ["DISPLAY"] = self.config.display
        # X11 only: SDL would otherwise fall back to an off-screen driver and "succeed".
        sdl2.SDL_SetHint(b"SDL_VIDEODRIVER", b"x11")
        if self.config.renderer != "auto":
            sdl2.SDL_SetHint(sdl2.SDL_HINT_RENDER_DRIVER, self.config.renderer.encode())
        # Our I420 is BT.601 (as the decoders and the preview's conversion treat it).
        sdl2.SDL_SetYUVConversionMode(sdl2.surface.SDL_YUV_CONVERSION_BT601)
        sdl2.SDL_SetHint(sdl2.SDL_HINT_VIDEO_MINIMIZE_ON_FOCUS_LOSS, b"0")
        if sdl2.SDL_InitSubSystem(sdl2.SDL_INIT_VIDEO) != 0:
            raise RuntimeError(f"SDL video: {sdl2.SDL_GetError().decode(errors='replace')}")
        sdl2.SDL_ShowCursor(sdl2.SDL_DISABLE)
        flags = sdl2.SDL_WINDOW_BORDERLESS | sdl2.SDL_WINDOW_SHOWN | sdl2.SDL_WINDOW_ALWAYS_ON_TOP
        for hw in self.heads:
            title = f"wallctl {hw.wall.id}/{hw.head.id}".encode()
            win = sdl2.SDL_CreateWindow(title, hw.x, hw.y, hw.width, hw.height, flags)
            if not win:
                raise RuntimeError(f"SDL window: {sdl2.SDL_GetError().decode(errors='replace')}")
            hw.sdl_window = win
            ren = sdl2.SDL_CreateRenderer(win, -1, 0)
            if not ren:
                raise RuntimeError(f"SDL renderer: {sdl2.SDL_GetError().decode(errors='replace')}")
            hw.renderer = ren
            tex = sdl2.SDL_CreateTexture(
                ren,
                sdl2.SDL_PIXELFORMAT_IYUV,
                sdl2.SDL_TEXTUREACCESS_STREAMING,
                hw.width,
                hw.height,
            )
            if not tex:
                raise RuntimeError(f"SDL texture: {sdl2.SDL_GetError().decode(errors='replace')}")
            hw.texture = tex
            sdl2.SDL_SetRenderDrawColor(ren, 0, 0, 0, 255)
            sdl2.SDL_RenderClear(ren)
            sdl2.SDL_RenderPresent(ren)
            log.info(
                "head window open",
                wall=hw.wall.id,
                head=hw.head.id,
                x=hw.x,
                y=hw.y,
                width=hw.width,
                height=hw.height,
            )

    def _loop(self) -> None:
        import sdl2
        import sdl2.surface

        event = sdl2.SDL_Event()
        while not self._stop.is_set():
            self._wake.wait(0.1)
            self._wake.clear()
            # Keep the X connection serviced; a close request is ignored: the wall stays.
            while sdl2.SDL_PollEvent(ctypes.byref(event)):
                pass
            for hw in self.heads:
                with self._lock:
                    buf = hw.pending
                    hw.pending = None
                if buf is None:
                    continue
                y, u, v = buf
                rc = sdl2.SDL_UpdateYUVTexture(
                    hw.texture,
                    None,
                    y.ctypes.data_as(_U8P),
                    int(y.strides[0]),
                    u.ctypes.data_as(_U8P),
                    int(u.strides[0]),
                    v.ctypes.data_as(_U8P),
                    int(v.strides[0]),
                )
                if rc != 0:
                    raise RuntimeError(
                        f"SDL upload: {sdl2.SDL_GetError().decode(errors='replace')}"
                    )
                sdl2.SDL_RenderCopy(hw.renderer, hw.texture, None, None)
                sdl2.SDL_RenderPresent(hw.renderer)
                hw.shown += 1
                self.presented += 1
                with self._lock:
                    hw.spare.append(buf)

    def _close(self) -> None:
        try:
            import sdl2
        except Exception:
            return
        for hw in self.heads:
            if hw.texture:
                sdl2.SDL_DestroyTexture(hw.texture)
            if hw.renderer:
                sdl2.SDL_DestroyRenderer(hw.renderer)
            if hw.sdl_window:
                sdl2.SDL_DestroyWindow(hw.sdl_window)
            hw.texture = hw.renderer = hw.sdl_window = None
        sdl2.SDL_QuitSubSystem(sdl2.SDL_INIT_VIDEO)

    def wait_presented(self, count: int, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.presented >= count:
                return True
            time.sleep(0.02)
        return False
