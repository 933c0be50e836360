"""Layout templates: data files in normalized coordinates, fitted to any wall.

A template file ``layouts/<name>.toml`` holds windows given either as cells of a grid
(``grid = [cols, rows]`` and ``cell = [col, row, colspan, rowspan]``) or as normalized
rectangles (``rect = [x, y, w, h]`` in 0..1 of the canvas), with an optional z-order.
Fitting turns them into canvas pixels; two windows sharing an edge in the template share
it exactly in pixels, because both edges round the same fraction.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from wallctl.wall import Rect, Wall

TEMPLATE_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-_.x")
MAX_TEMPLATE_WINDOWS = 64


class TemplateError(Exception):
    """A template file that cannot be used; the message names the file and the window."""


class _WindowSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    cell: tuple[int, int, int, int] | None = None
    rect: tuple[float, float, float, float] | None = None
    z: int = Field(default=0, ge=0, le=1000)
    label: str | None = Field(default=None, max_length=64)

    @model_validator(mode="after")
    def _one_of(self) -> _WindowSpec:
        if (self.cell is None) == (self.rect is None):
            raise ValueError(
                "give exactly one of cell = [col, row, colspan, rowspan] or rect = [x, y, w, h]"
            )
        return self


class _TemplateFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    title: str = Field(min_length=1, max_length=64)
    description: str = Field(default="", max_length=256)
    grid: tuple[int, int] | None = None
    window: list[_WindowSpec] = Field(min_length=1, max_length=MAX_TEMPLATE_WINDOWS)


@dataclass(frozen=True, slots=True)
class TemplateWindow:
    """A window in fractions of the canvas."""

    x: float
    y: float
    w: float
    h: float
    z: int = 0
    label: str | None = None


@dataclass(frozen=True)
class LayoutTemplate:
    name: str
    title: str
    description: str
    windows: tuple[TemplateWindow, ...]
    origin: str

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "windows": [
                {"x": w.x, "y": w.y, "w": w.w, "h": w.h, "z": w.z, "label": w.label}
                for w in self.windows
            ],
        }


@dataclass(frozen=True, slots=True)
class FittedWindow:
    rect: Rect
    z: int
    label: str | None


def parse_template(name: str, text: str, origin: str) -> LayoutTemplate:
    """Parse one template file's text; ``origin`` names it in error messages."""
    if not name or not set(name) <= TEMPLATE_NAME_CHARS or len(name) > 32:
        raise TemplateError(f"{origin}: template name {name!r} must be 1-32 of [A-Za-z0-9+-_.]")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise TemplateError(f"{origin}: not valid TOML: {e}") from None
    try:
        spec = _TemplateFile.model_validate(data)
    except ValidationError as e:
        first = e.errors(include_url=False)[0]
        loc = ""
        for p in first["loc"]:
            if isinstance(p, int):  # window[2], as the checks below name it
                loc += f"[{p}]"
            elif not str(p).startswith("function"):
                loc += f".{p}" if loc else str(p)
        msg = str(first["msg"]).removeprefix("Value error, ")
        raise TemplateError(f"{origin}: {loc or 'file'}: {msg}") from None
    windows = []
    for i, w in enumerate(spec.window):
        where = f"{origin}: window[{i}]"
        if w.cell is not None:
            if spec.grid is None:
                raise TemplateError(f"{where}: cell needs grid = [cols, rows] at the top")
            gcols, grows = spec.grid
            if gcols < 1 or grows < 1 or gcols > 64 or grows > 64:
                raise TemplateError(f"{origin}: grid must be 1..64 columns and rows")
            col, row, cs, rs = w.cell
            if col < 0 or row < 0 or cs < 1 or rs < 1:
                raise TemplateError(f"{where}: cell needs col, row >= 0 and spans >= 1")
            if col + cs > gcols or row + rs > grows:
                raise TemplateError(
                    f"{where}: cell {list(w.cell)} leaves the {gcols}x{grows} grid (the canvas)"
                )
            x, y, ww, hh = col / gcols, row / grows, cs / gcols, rs / grows
        else:
            assert w.rect is not None
            x, y, ww, hh = w.rect
            if not all(math.isfinite(v) for v in w.rect):
                raise TemplateError(f"{where}: rect values must be finite numbers")
            if ww <= 0 or hh <= 0:
                raise TemplateError(f"{where}: rect width and height must be > 0")
            if x < 0 or y < 0 or x + ww > 1 + 1e-9 or y + hh > 1 + 1e-9:
                raise TemplateError(
                    f"{where}: rect {list(w.rect)} leaves the canvas (x, y >= 0 and "
                    "x + w, y + h <= 1)"
                )
        windows.append(TemplateWindow(x, y, min(ww, 1 - x), min(hh, 1 - y), w.z, w.label))
    return LayoutTemplate(name, spec.title, spec.description, tuple(windows), origin)


def load_template(path: Path) -> LayoutTemplate:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise TemplateError(f"{path}: cannot read: {e.strerror}") from None
    except UnicodeDecodeError:
        raise TemplateError(f"{path}: not UTF-8 text") from None
    return parse_template(path.stem, text, str(path))


def load_templates(dirs: list[Path]) -> tuple[dict[str, LayoutTemplate], list[TemplateError]]:
    """Every template in ``dirs``, later folders replacing earlier names.

    A broken file is reported and left out; the others still load, so one bad file
    dropped into a folder does not take every layout away from the commander.
    """
    found: dict[str, LayoutTemplate] = {}
    errors: list[TemplateError] = []
    for d in dirs:
        if not d.is_dir():
            errors.append(TemplateError(f"{d}: layout folder does not exist"))
            continue
        for path in sorted(d.glob("*.toml")):
            try:
                t = load_template(path)
            except TemplateError as e:
                errors.append(e)
                continue
            found[t.name] = t
    return found, errors


def fit(template: LayoutTemplate, wall: Wall, snap: bool | None = None) -> list[FittedWindow]:
    """The template's windows in the wall's canvas pixels."""
    do_snap = wall.snap_to_tiles if snap is None else snap
    out = []
    for w in template.windows:
        rect = fit_rect(w.x, w.y, w.w, w.h, wall)
        if do_snap:
            rect = wall.snap(rect)
        out.append(FittedWindow(rect, w.z, w.label))
    return out


def fit_rect(x: float, y: float, w: float, h: float, wall: Wall) -> Rect:
    cw, ch = wall.width, wall.height
    x0 = min(max(_px(x, cw), 0), cw - 1)
    y0 = min(max(_px(y, ch), 0), ch - 1)
    x1 = min(max(_px(x + w, cw), x0 + 1), cw)
    y1 = min(max(_px(y + h, ch), y0 + 1), ch)
    return Rect(x0, y0, x1 - x0, y1 - y0)


def _px(fraction: float, size: int) -> int:
    """Pixel edge for a fraction of the canvas.

    Rounded to 1e-6 px first: 1/6 + 4/6 and 5/6 differ in the last bit, which can put
    57.4999... and 57.5 on different pixels and open a gap between cells that share an edge.
    """
    return round(round(fraction * size, 6))
