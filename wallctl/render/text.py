"""Text on the wall: window labels, slates and the clock, as cached I420 patches.

OpenCV's built-in fonts cannot draw Chinese, so text is set with Pillow in a CJK font
(Debian's fonts-noto-cjk, Simplified Chinese face) and converted to I420 once; the
compositor then only copies the patch. Labels are cached per (text, size), slates per
(size, lines): a source name or a "no signal since" time does not change every frame.
"""

from __future__ import annotations

import glob
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from wallctl.logs import get_logger
from wallctl.render.canvas import Patch, even_up

log = get_logger("wallctl.render.text")

# Where Debian (fonts-noto-cjk), Fedora and others put a CJK face; the first found wins.
FONT_CANDIDATES = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Medium.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
)

LABEL_BG = (24, 24, 24)
LABEL_FG = (240, 240, 240)
SLATE_BG = (18, 28, 46)
SLATE_FG = (235, 235, 235)
SLATE_DIM = (150, 165, 190)
MAX_TEXT = 64


def find_font(configured: Path | None = None) -> Path | None:
    if configured is not None:
        return configured
    for c in FONT_CANDIDATES:
        if Path(c).is_file():
            return Path(c)
    found = sorted(glob.glob("/usr/share/fonts/**/*CJK*.tt[cf]", recursive=True))
    return Path(found[0]) if found else None


class Fonts:
    """One CJK face at any size; the Simplified Chinese member of a .ttc collection."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = find_font(path)
        self._index = 0
        self._lock = threading.Lock()
        self._sizes: dict[int, ImageFont.FreeTypeFont | ImageFont.ImageFont] = {}
        if self.path is None:
            log.warning("no CJK font found: Chinese labels cannot render (install fonts-noto-cjk)")
        elif self.path.suffix.lower() == ".ttc":
            self._index = _sc_index(self.path)

    @property
    def cjk(self) -> bool:
        return self.path is not None

    def get(self, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
        with self._lock:
            font = self._sizes.get(size)
            if font is None:
                if self.path is None:
                    font = ImageFont.load_default(size)
                else:
                    font = ImageFont.truetype(str(self.path), size, index=self._index)
                self._sizes[size] = font
            return font


def _sc_index(path: Path) -> int:
    for i in range(16):
        try:
            f = ImageFont.truetype(str(path), 12, index=i)
        except OSError:
            break
        family = f.getname()[0] or ""
        if family.endswith(" SC") or "SC" in family.split():
            return i
    return 0


def clean_text(text: str) -> str:
    """One line, no control characters, bounded: a name comes from configs and clients."""
    out = "".join(c if c.isprintable() else " " for c in text).strip()
    return out[:MAX_TEXT]


class _Lru:
    def __init__(self, size: int) -> None:
        self.size = size
        self._d: OrderedDict[object, Patch] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: object) -> Patch | None:
        with self._lock:
            p = self._d.get(key)
            if p is not None:
                self._d.move_to_end(key)
                self.hits += 1
            else:
                self.misses += 1
            return p

    def put(self, key: object, patch: Patch) -> None:
        with self._lock:
            self._d[key] = patch
            self._d.move_to_end(key)
            while len(self._d) > self.size:
                self._d.popitem(last=False)

    def __len__(self) -> int:
        return len(self._d)


def label_size_for(window_h: int) -> int:
    """Font size for a window's label: readable on a small window, modest on a big one."""
    return max(14, min(40, window_h // 22))


class TextPainter:
    def __init__(self, fonts: Fonts | None = None, cache_size: int = 256) -> None:
        self.fonts = fonts or Fonts()
        self.labels = _Lru(cache_size)
        self.slates = _Lru(64)

    # --- labels ----------------------------------------------------------------------

    def label(self, text: str, size: int) -> Patch:
        key = (text, size)
        patch = self.labels.get(key)
        if patch is None:
            patch = self._render_label(clean_text(text), size)
            self.labels.put(key, patch)
        return patch

    def _render_label(self, text: str, size: int) -> Patch:
        font = self.fonts.get(size)
        pad = max(3, size // 4)
        x0, y0, x1, y1 = font.getbbox(text or " ")
        w = even_up(int(x1 - min(0, x0)) + 2 * pad)
        h = even_up(int(max(y1, size) - min(0, y0)) + pad)
        img = Image.new("RGB", (w, h), LABEL_BG)
        ImageDraw.Draw(img).text(
            (pad - min(0, x0), pad // 2 - min(0, y0)), text, font=font, fill=LABEL_FG
        )
        return Patch.from_rgb(np.asarray(img))

    # --- slates ----------------------------------------------------------------------

    def slate(self, width: int, height: int, lines: Sequence[str]) -> Patch:
        """The text block of a slate for a window of this size: the source's name and why
        it shows no video, on the slate colour. The window around it is filled with the
        same colour, so only the text is set in Pillow (a whole 1080p picture would cost
        tens of milliseconds on the compositor thread)."""
        width, height = even_up(max(2, width)), even_up(max(2, height))
        key = (width, height, tuple(lines))
        patch = self.slates.get(key)
        if patch is None:
            patch = self._render_slate(width, height, [clean_text(s) for s in lines])
            self.slates.put(key, patch)
        return patch

    def slate_picture(self, width: int, height: int, lines: Sequence[str]) -> Patch:
        """A whole slate picture of exactly this (even) size (thumbnails)."""
        block = self.slate(width, height, lines)
        rgb = np.empty((even_up(height), even_up(width), 3), np.uint8)
        rgb[:] = SLATE_BG
        out = Patch.from_rgb(rgb)
        x, y = slate_origin(out.width, out.height, block)
        bw, bh = min(block.width, out.width), min(block.height, out.height)
        out.y[y : y + bh, x : x + bw] = block.y[:bh, :bw]
        out.u[y // 2 : (y + bh) // 2, x // 2 : (x + bw) // 2] = block.u[: bh // 2, : bw // 2]
        out.v[y // 2 : (y + bh) // 2, x // 2 : (x + bw) // 2] = block.v[: bh // 2, : bw // 2]
        return out

    def _render_slate(self, width: int, height: int, lines: list[str]) -> Patch:
        big = max(12, min(72, height // 10, width // 16))
        small = max(10, big * 2 // 3)
        sizes = [big] + [small] * (len(lines) - 1)
        fonts = [self.fonts.get(s) for s in sizes]
        boxes = [f.getbbox(t or " ") for f, t in zip(fonts, lines, strict=True)]
        gap = max(4, big // 3)
        total = sum(b[3] - min(0, b[1]) for b in boxes) + gap * (len(lines) - 1)
        block_w = even_up(min(width, max(int(b[2] - b[0]) for b in boxes) + 2 * gap))
        block_h = even_up(min(height, int(total) + 2 * gap))
        img = Image.new("RGB", (block_w, block_h), SLATE_BG)
        draw = ImageDraw.Draw(img)
        yy = float(gap)
        for i, (font, text, box) in enumerate(zip(fonts, lines, boxes, strict=True)):
            tw = box[2] - box[0]
            colour = SLATE_FG if i == 0 else SLATE_DIM
            draw.text(
                ((block_w - tw) / 2 - box[0], yy - min(0, box[1])), text, font=font, fill=colour
            )
            yy += box[3] - min(0, box[1]) + gap
        return Patch.from_rgb(np.asarray(img))

    # --- clock -----------------------------------------------------------------------

    def clock(self, size: int, now: float | None = None) -> Patch:
        """Date and time in a box of fixed size, so each second overwrites the last."""
        text = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
        font = self.fonts.get(size)
        pad = max(3, size // 4)
        # Digits of a proportional face differ in width: size the box for the widest.
        x0, y0, x1, y1 = font.getbbox("2088-08-08 08:08:08")
        w = even_up(int(x1 - min(0, x0)) + 2 * pad + size // 2)
        h = even_up(int(max(y1, size) - min(0, y0)) + pad)
        img = Image.new("RGB", (w, h), LABEL_BG)
        tx0, _, tx1, _ = font.getbbox(text)
        draw = ImageDraw.Draw(img)
        draw.text(
            ((w - (tx1 - tx0)) / 2 - tx0, pad // 2 - min(0, y0)), text, font=font, fill=LABEL_FG
        )
        return Patch.from_rgb(np.asarray(img))


def slate_origin(width: int, height: int, block: Patch) -> tuple[int, int]:
    """Where a slate's text block goes in a window of this size (even, centred)."""
    x = max(0, (width - block.width) // 2)
    y = max(0, (height - block.height) // 2)
    return x - (x & 1), y - (y & 1)


def slate_lines(name: str, phase: str, last_frame_at: float | None, error: str | None) -> list[str]:
    """The words on a slate: the name, then the state in Chinese and English."""
    if phase in ("idle", "connecting"):
        return [name, "正在连接 connecting…"]
    if phase == "unknown":
        return [name, "未知信号源 unknown source"]
    if last_frame_at is not None:
        since = time.strftime("%H:%M:%S", time.localtime(last_frame_at))
        lines = [name, f"无信号 no signal since {since}"]
    else:
        lines = [name, "无信号 no signal"]
    if error:
        lines.append(error[:MAX_TEXT])
    return lines
