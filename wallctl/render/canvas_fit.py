"""Where a source's picture goes in a window: crop, then fit / fill / stretch.

Pure arithmetic, no pixels: given the frame size, the window's crop (fractions of the
frame) and fit mode, say which part of the frame is shown (in frame pixels) and where
it lands (in wall pixels). Pixels are taken as square.

- ``stretch``: the cropped picture covers the whole window, aspect not kept.
- ``fit``: the whole cropped picture, as large as fits, centred; black bars elsewhere.
- ``fill``: the window is covered, aspect kept; what overflows is cut equally on both
  sides.
"""

from __future__ import annotations

from wallctl.wall import Rect
from wallctl.wallstate import Crop, Fit


def crop_rect(width: int, height: int, crop: Crop | None) -> Rect:
    """The part of a frame a crop names, on even frame pixels (whole chroma samples)."""
    if crop is None:
        return Rect(0, 0, width, height)
    x0 = _even_down(crop.x * width)
    y0 = _even_down(crop.y * height)
    x1 = min(width, _even_up(min(1.0, crop.x + crop.w) * width))
    y1 = min(height, _even_up(min(1.0, crop.y + crop.h) * height))
    # A crop that rounds to nothing still shows two pixels rather than failing.
    x0 = min(x0, max(0, x1 - 2))
    y0 = min(y0, max(0, y1 - 2))
    return Rect(x0, y0, max(2, x1 - x0), max(2, y1 - y0))


def place(
    frame_w: int, frame_h: int, window: Rect, fit: Fit, crop: Crop | None = None
) -> tuple[Rect, Rect]:
    """(source rect in frame pixels, destination rect in wall pixels)."""
    src = crop_rect(frame_w, frame_h, crop)
    if fit == "stretch":
        return src, window
    if fit == "fit":
        s = min(window.w / src.w, window.h / src.h)
        dw = max(1, min(window.w, round(src.w * s)))
        dh = max(1, min(window.h, round(src.h * s)))
        return src, Rect(window.x + (window.w - dw) // 2, window.y + (window.h - dh) // 2, dw, dh)
    # fill: show the centre of the picture at the window's aspect ratio.
    s = max(window.w / src.w, window.h / src.h)
    sw = min(src.w, max(2, _even_near(window.w / s)))
    sh = min(src.h, max(2, _even_near(window.h / s)))
    sx = src.x + _even_down((src.w - sw) / 2)
    sy = src.y + _even_down((src.h - sh) / 2)
    return Rect(sx, sy, sw, sh), window


def needed_size(window: Rect, crop: Crop | None) -> tuple[int, int]:
    """The frame size at which the window shows the source at one frame pixel per wall
    pixel: what the window asks of the source (renditions, scaling at decode)."""
    if crop is None:
        return window.w, window.h
    return (
        _even_up(min(16384.0, window.w / max(crop.w, 1e-3))),
        _even_up(min(16384.0, window.h / max(crop.h, 1e-3))),
    )


def bars(window: Rect, dest: Rect) -> list[Rect]:
    """The parts of the window the picture leaves uncovered."""
    out = []
    if dest.y > window.y:
        out.append(Rect(window.x, window.y, window.w, dest.y - window.y))
    if dest.bottom < window.bottom:
        out.append(Rect(window.x, dest.bottom, window.w, window.bottom - dest.bottom))
    if dest.x > window.x:
        out.append(Rect(window.x, dest.y, dest.x - window.x, dest.h))
    if dest.right < window.right:
        out.append(Rect(dest.right, dest.y, window.right - dest.right, dest.h))
    return out


def _even_down(v: float) -> int:
    n = int(v)
    return n - (n & 1)


def _even_up(v: float) -> int:
    n = int(-(-v // 1))
    return n + (n & 1)


def _even_near(v: float) -> int:
    n = round(v)
    return n + (n & 1) if n % 2 else n
