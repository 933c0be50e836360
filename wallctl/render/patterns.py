"""Moving test patterns drawn straight into I420, cheaply.

Each pattern is drawn once per size into a base picture wider (or taller) than the
output; a frame is a window into it at an offset that advances with time, copied out
(one memcpy of 1.5 bytes per pixel: ~0.3 ms at 1080p). Only the clock draws text per
frame, into a small region. Frames are made when asked (``frame(now)``), at most once per
tick, so a pattern nobody looks at costs nothing and there is no thread to stop.

Colours use BT.601 limited range, the matrix OpenCV's I420 conversions assume.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Literal

import cv2
import numpy as np

from wallctl.render.frames import Frame, Plane

PatternKind = Literal["bars", "smpte", "gradient", "clock", "checkers"]
PATTERNS: tuple[PatternKind, ...] = ("bars", "smpte", "gradient", "clock", "checkers")

# Seconds for a scrolling pattern to move by its whole period (one picture width).
SCROLL_PERIOD_S = 8.0


def rgb_to_yuv(r: float, g: float, b: float) -> tuple[int, int, int]:
    """BT.601 limited-range Y, Cb, Cr of an RGB colour with components in 0..1."""
    y = 16 + 65.481 * r + 128.553 * g + 24.966 * b
    cb = 128 - 37.797 * r - 74.203 * g + 112.0 * b
    cr = 128 + 112.0 * r - 93.786 * g - 18.214 * b
    return round(y), round(cb), round(cr)


# 75 % colour bars, left to right.
BARS_75 = [
    rgb_to_yuv(0.75, 0.75, 0.75),
    rgb_to_yuv(0.75, 0.75, 0.0),
    rgb_to_yuv(0.0, 0.75, 0.75),
    rgb_to_yuv(0.0, 0.75, 0.0),
    rgb_to_yuv(0.75, 0.0, 0.75),
    rgb_to_yuv(0.75, 0.0, 0.0),
    rgb_to_yuv(0.0, 0.0, 0.75),
]
BLACK = rgb_to_yuv(0, 0, 0)
WHITE = rgb_to_yuv(1, 1, 1)


def even(n: int) -> int:
    return max(2, n - (n % 2))


class _I420:
    """A mutable I420 picture being drawn."""

    def __init__(self, width: int, height: int, fill: tuple[int, int, int] = BLACK) -> None:
        self.width, self.height = width, height
        self.y = np.full((height, width), fill[0], np.uint8)
        self.u = np.full((height // 2, width // 2), fill[1], np.uint8)
        self.v = np.full((height // 2, width // 2), fill[2], np.uint8)

    def rect(self, x0: int, y0: int, x1: int, y1: int, c: tuple[int, int, int]) -> None:
        """Fill [x0, x1) x [y0, y1); even coordinates keep chroma exact."""
        self.y[y0:y1, x0:x1] = c[0]
        self.u[y0 // 2 : (y1 + 1) // 2, x0 // 2 : (x1 + 1) // 2] = c[1]
        self.v[y0 // 2 : (y1 + 1) // 2, x0 // 2 : (x1 + 1) // 2] = c[2]


def _bars(
    img: _I420, x0: int, y0: int, w: int, h: int, colours: list[tuple[int, int, int]]
) -> None:
    n = len(colours)
    for i, c in enumerate(colours):
        a = x0 + even(w * i // n) if i else x0
        b = x0 + (even(w * (i + 1) // n) if i + 1 < n else w)
        img.rect(a, y0, b, y0 + h, c)


def _draw_bars(w: int, h: int) -> _I420:
    # Two periods side by side: any window of width w at offset 0..w is inside.
    img = _I420(2 * w, h)
    _bars(img, 0, 0, w, h, BARS_75)
    _bars(img, w, 0, w, h, BARS_75)
    return img


def _draw_smpte(w: int, h: int) -> _I420:
    """SMPTE EG 1 layout: bars, a castellation strip, then -I, white, +Q and PLUGE."""
    img = _I420(w, h)
    top = even(h * 2 // 3)
    mid = even(h * 3 // 4)
    _bars(img, 0, 0, w, top, BARS_75)
    grey = BARS_75[0]
    castellation = [BARS_75[6], BLACK, BARS_75[4], BLACK, BARS_75[2], BLACK, grey]
    _bars(img, 0, top, w, mid - top, castellation)
    minus_i = (16 + 0, 158, 95)  # -I: dark blue-violet (approximate, limited range)
    plus_q = (16 + 0, 174, 149)  # +Q: dark purple
    cell = even(w * 5 // 28)
    x = 0
    for c, width in ((minus_i, cell), (WHITE, cell), (plus_q, cell), (BLACK, cell)):
        img.rect(x, mid, x + width, h, c)
        x += width
    # PLUGE: below black, black, above black.
    rest = w - x
    for i, level in enumerate((7, 16, 25)):
        a = x + even(rest * i // 4)
        b = x + even(rest * (i + 1) // 4)
        img.rect(a, mid, b, h, (level, 128, 128))
    img.rect(x + even(rest * 3 // 4), mid, w, h, BLACK)
    return img


def _draw_gradient(w: int, h: int) -> _I420:
    # Luma is a triangle wave over one width, so two periods join without a seam.
    img = _I420(2 * w, h)
    xs = np.arange(2 * w, dtype=np.float32)
    tri = 1.0 - np.abs((xs / w) % 2.0 - 1.0)  # 1 at 0, 0 at w, 1 at 2w
    img.y[:] = (16 + 219 * tri).astype(np.uint8)[None, :]
    cw, ch = w, h // 2
    cx = np.arange(cw, dtype=np.float32)
    cy = np.arange(ch, dtype=np.float32)[:, None]
    angle = 2 * math.pi * (cx / (w / 2))  # chroma x has half resolution: w/2 per period
    sat = 0.3 + 0.6 * (cy / max(1, ch - 1))
    img.u[:] = np.clip(128 + 112 * sat * np.cos(angle)[None, :], 16, 240).astype(np.uint8)
    img.v[:] = np.clip(128 + 112 * sat * np.sin(angle)[None, :], 16, 240).astype(np.uint8)
    return img


def _checker_square(w: int, h: int) -> int:
    return max(2, even(h // 9))


def _draw_checkers(w: int, h: int) -> _I420:
    s = _checker_square(w, h)
    img = _I420(w + 2 * s, h + 2 * s)
    # An outer XOR of one row and one column: no full-size index grids.
    cols = (np.arange(img.width) // s) % 2 == 1
    rows = (np.arange(img.height) // s) % 2 == 1
    cells = rows[:, None] ^ cols[None, :]
    img.y[:] = np.where(cells, np.uint8(200), np.uint8(40))
    c = cells[::2, ::2]
    img.u[:] = np.where(c, np.uint8(90), np.uint8(170))
    img.v[:] = np.where(c, np.uint8(100), np.uint8(150))
    return img


def _draw_clock(w: int, h: int) -> _I420:
    img = _I420(w, h, rgb_to_yuv(0.08, 0.1, 0.16))
    return img


class MovingPattern:
    """A moving pattern at the size asked for; ``frame()`` is thread-safe."""

    def __init__(self, kind: PatternKind, width: int, height: int, fps: float = 25.0) -> None:
        if kind not in PATTERNS:
            raise ValueError(f"unknown pattern {kind!r}")
        self.kind = kind
        self.fps = fps
        self._lock = threading.Lock()
        self._epoch = time.monotonic()
        self._seq = 0
        self._last: Frame | None = None
        self._last_tick = -1
        self._text: tuple[str, Plane, int, int] | None = None
        self._base: _I420 | None = None
        self._w, self._h = 0, 0
        self.resize(width, height)

    @property
    def size(self) -> tuple[int, int]:
        return self._want

    def resize(self, width: int, height: int) -> None:
        """Draw at this size from the next frame on. Cheap: the drawing happens in
        ``frame()``, in the caller's (compositor's) thread, not in the one resizing
        (the event loop, through SourceHub.demand)."""
        self._want = (even(max(16, width)), even(max(16, height)))

    def _resize(self) -> _I420:
        self._w, self._h = self._want
        draw = {
            "bars": _draw_bars,
            "smpte": _draw_smpte,
            "gradient": _draw_gradient,
            "checkers": _draw_checkers,
            "clock": _draw_clock,
        }[self.kind]
        self._base = draw(self._w, self._h)
        self._text = None
        return self._base

    def frame(self, now: float | None = None) -> Frame:
        """The picture for the tick ``now`` (time.monotonic()) falls in."""
        t = time.monotonic() if now is None else now
        tick = int((t - self._epoch) * self.fps)
        with self._lock:
            resized = self._want != (self._w, self._h)
            if self._last is not None and tick == self._last_tick and not resized:
                return self._last
            base = self._resize() if resized or self._base is None else self._base
            y, u, v = self._draw(tick, base)
            self._seq += 1
            self._last_tick = tick
            self._last = Frame(y, u, v, seq=self._seq, arrived=t, pts=tick / self.fps)
            return self._last

    def _draw(self, tick: int, base: _I420) -> tuple[Plane, Plane, Plane]:
        w, h = self._w, self._h
        phase = (tick / self.fps / SCROLL_PERIOD_S) % 1.0
        if self.kind in ("bars", "gradient"):
            x = even(int(phase * w)) if phase * w >= 2 else 0
            return _window(base, x, 0, w, h)
        if self.kind == "checkers":
            s = _checker_square(w, h)
            # Across and down at different speeds: never a whole square per second, so
            # successive seconds never look alike.
            ox = int(phase * 2 * s * 3) % (2 * s)
            oy = int(phase * 2 * s * 2) % (2 * s)
            return _window(base, ox - ox % 2, oy - oy % 2, w, h)
        y, u, v = base.y.copy(), base.u.copy(), base.v.copy()
        if self.kind == "smpte":
            # A white bar sweeping across the top bars shows the picture is live.
            bw = even(max(2, w // 64))
            x = even(int(phase * (w - bw)))
            top = even(h * 2 // 3)
            y[:top, x : x + bw] = WHITE[0]
            u[: top // 2, x // 2 : (x + bw) // 2] = WHITE[1]
            v[: top // 2, x // 2 : (x + bw) // 2] = WHITE[2]
            return y, u, v
        self._draw_clock(y, tick, phase)
        return y, u, v

    def _draw_clock(self, y: Plane, tick: int, phase: float) -> None:
        w, h = self._w, self._h
        # Wall-clock time of this tick (the epoch is monotonic).
        now = time.time() - time.monotonic() + self._epoch + tick / self.fps
        frac = now % 1.0
        text = time.strftime("%H:%M:%S", time.localtime(now)) + f".{int(frac * 10)}"
        if self._text is None or self._text[0] != text:
            # Drawn once per tenth of a second (2-3 frames) into a strip, then pasted.
            scale = h / 180.0
            thickness = max(1, int(scale * 2))
            (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
            top = max(0, (h - th) // 2 - thickness)
            bottom = min(h, (h + th) // 2 + base + thickness)
            strip = y[top:bottom].copy()
            org = ((w - tw) // 2, (h + th) // 2 - top)
            cv2.putText(
                strip, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, 235, thickness, cv2.LINE_AA
            )
            self._text = (text, strip, top, bottom)
        _, strip, top, bottom = self._text
        y[top:bottom] = strip
        # A bar growing across the bottom over each second: motion at every frame.
        bar_h = max(2, h // 40)
        y[h - 2 * bar_h : h - bar_h, : int(frac * w)] = 200
        # And a line sweeping across the whole picture, as the scrolling patterns move.
        x = int(phase * (w - 2))
        y[:, x : x + 2] = 160


def _window(base: _I420, x: int, y0: int, w: int, h: int) -> tuple[Plane, Plane, Plane]:
    return (
        np.ascontiguousarray(base.y[y0 : y0 + h, x : x + w]),
        np.ascontiguousarray(base.u[y0 // 2 : (y0 + h) // 2, x // 2 : (x + w) // 2]),
        np.ascontiguousarray(base.v[y0 // 2 : (y0 + h) // 2, x // 2 : (x + w) // 2]),
    )
