"""Edits of a wall: pure functions from one WallState to the next.

Each edit validates against the wall's geometry and the known sources and raises a
WallctlError naming the field at fault; none touches the store or the network, so the
command layer can apply a batch to a copy and keep it only when every step passed.
Field names are the request's parameter names.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from wallctl.errors import InvalidField, NotFound
from wallctl.layout import FittedWindow
from wallctl.wall import Rect, Wall
from wallctl.wallstate import (
    Crop,
    Fit,
    Placement,
    WallState,
    Window,
    evolve,
    replace_window,
)

# Smaller than this a window is neither visible on a wall nor grabbable on a touch panel.
MIN_WINDOW_PX = 16
MAX_WINDOWS = 256
MAX_LABEL = 64


@dataclass(frozen=True)
class EditContext:
    wall: Wall
    sources: frozenset[str]
    # The canvas size, computed once: every edit checks rectangles against it.
    width: int = field(init=False)
    height: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "width", self.wall.width)
        object.__setattr__(self, "height", self.wall.height)


_NUMBER = (int, float)


def _check_int(name: str, value: object) -> int:
    # Almost always a plain int: the one type test that settles it comes first.
    if type(value) is int:
        return value
    # bool is an int to Python but never a coordinate to a client.
    if isinstance(value, bool) or not isinstance(value, _NUMBER):
        raise InvalidField(f"{name} must be a number of canvas pixels", field=name)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidField(f"{name} must be a finite number", field=name)
        if value != int(value):
            raise InvalidField(f"{name} must be a whole number of pixels", field=name)
    return int(value)


def check_rect(ctx: EditContext, x: object, y: object, w: object, h: object) -> Rect:
    xi, yi, wi, hi = _check_int("x", x), _check_int("y", y), _check_int("w", w), _check_int("h", h)
    _check_placement(ctx, xi, yi, wi, hi)
    return Rect(xi, yi, wi, hi)


def _check_placement(ctx: EditContext, x: int, y: int, w: int, h: int) -> None:
    """That a rectangle of whole pixels lies on the canvas and is big enough."""
    cw, ch = ctx.width, ctx.height
    if x < 0 or x >= cw:
        raise InvalidField(f"x must be within 0..{cw - 1} (the canvas is {cw} px wide)", field="x")
    if y < 0 or y >= ch:
        raise InvalidField(f"y must be within 0..{ch - 1} (the canvas is {ch} px high)", field="y")
    if w < MIN_WINDOW_PX:
        raise InvalidField(f"w must be at least {MIN_WINDOW_PX} px", field="w")
    if h < MIN_WINDOW_PX:
        raise InvalidField(f"h must be at least {MIN_WINDOW_PX} px", field="h")
    if x + w > cw:
        raise InvalidField(f"x + w = {x + w} leaves the canvas ({cw} px wide)", field="w")
    if y + h > ch:
        raise InvalidField(f"y + h = {y + h} leaves the canvas ({ch} px high)", field="h")


def check_source(ctx: EditContext, source: str | None, field: str = "source") -> str | None:
    if source is None:
        return None
    if not isinstance(source, str):
        raise InvalidField(f"{field} must be a source id or null", field=field)
    if source not in ctx.sources:
        raise NotFound(f"no source {source!r}", field=field)
    return source


def check_label(label: str | None, field: str = "label") -> str | None:
    if label is None:
        return None
    if not isinstance(label, str):
        raise InvalidField(f"{field} must be a string", field=field)
    if len(label) > MAX_LABEL:
        raise InvalidField(f"{field} must be at most {MAX_LABEL} characters", field=field)
    if any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 for c in label):
        raise InvalidField(f"{field} must not contain control characters", field=field)
    return label


def get_window(state: WallState, window_id: object, field: str = "window") -> Window:
    return state.windows[window_index(state, window_id, field)]


def window_index(state: WallState, window_id: object, field: str = "window") -> int:
    """Where the window is in ``state.windows``; the same errors as ``get_window``."""
    if not isinstance(window_id, str):
        raise InvalidField(f"{field} must be a window id", field=field)
    i = state.index_of(window_id)
    if i is None:
        raise NotFound(f"no window {window_id!r} on wall {state.wall!r}", field=field)
    return i


def _replace(state: WallState, window: Window, *, keep_layout: bool = False) -> WallState:
    i = state.index_of(window.id)
    if i is None:
        raise NotFound(f"no window {window.id!r} on wall {state.wall!r}", field="window")
    return replace_window(state, i, window, layout=state.layout if keep_layout else None)


# --- whole-wall edits ------------------------------------------------------------------


def apply_layout(
    state: WallState,
    ctx: EditContext,
    name: str,
    fitted: Sequence[FittedWindow],
    sources: Sequence[str | None] | None = None,
) -> WallState:
    """Replace the windows with a layout's.

    Sources given by the caller fill the windows in order; without them the sources
    already on the wall carry over in the order they were stacked, so switching from
    2x2 to 3x3 keeps the four pictures the commander was watching.
    """
    if sources is not None:
        if len(sources) > len(fitted):
            raise InvalidField(
                f"{len(sources)} sources for a layout of {len(fitted)} windows", field="sources"
            )
        chosen = [check_source(ctx, s, f"sources[{i}]") for i, s in enumerate(sources)]
    else:
        chosen = [w.source for w in state.stacked() if w.source is not None]
    windows = []
    n = state.next_window
    for i, f in enumerate(fitted):
        src = chosen[i] if i < len(chosen) else None
        windows.append(
            Window(
                id=f"w{n}",
                x=f.rect.x,
                y=f.rect.y,
                w=f.rect.w,
                h=f.rect.h,
                z=f.z,
                source=src,
                label=f.label,
            )
        )
        n += 1
    return evolve(state, windows=tuple(windows), layout=name, next_window=n)


def apply_windows(
    state: WallState, ctx: EditContext, name: str, saved: Iterable[Window]
) -> WallState:
    """Show a saved preset: its windows exactly as they were saved, with fresh ids."""
    windows = []
    n = state.next_window
    for w in saved:
        rect = w.rect
        if not ctx.wall.canvas.contains(rect):
            raise InvalidField(f"preset {name!r} does not fit this wall", field="name")
        src = w.source if w.source in ctx.sources else None
        windows.append(evolve(w, id=f"w{n}", source=src, restore=None))
        n += 1
    return evolve(state, windows=tuple(windows), layout=name, next_window=n)


def restore(state: WallState, past: WallState) -> WallState:
    """Put back the windows of a past revision; ids stay as they were then.

    A source since removed from the config keeps its window (the wall shows its slate),
    so the picture of the wall at that time is complete.
    """
    return evolve(
        state,
        windows=past.windows,
        layout=past.layout,
        next_window=max(state.next_window, past.next_window),
    )


def clear(state: WallState) -> WallState:
    return evolve(state, windows=(), layout=None)


# --- window edits ------------------------------------------------------------------------


def open_window(
    state: WallState,
    ctx: EditContext,
    *,
    x: object,
    y: object,
    w: object,
    h: object,
    source: str | None = None,
    label: str | None = None,
    z: object = None,
    fit: Fit = "fit",
    snap: bool = False,
) -> tuple[WallState, Window]:
    if len(state.windows) >= MAX_WINDOWS:
        raise InvalidField(f"a wall holds at most {MAX_WINDOWS} windows", field="window")
    rect = check_rect(ctx, x, y, w, h)
    if snap:
        rect = ctx.wall.snap(rect)
    zz = state.top_z() + 1 if z is None else _check_int("z", z)
    if zz < 0:
        raise InvalidField("z must be >= 0", field="z")
    win = Window(
        id=f"w{state.next_window}",
        x=rect.x,
        y=rect.y,
        w=rect.w,
        h=rect.h,
        z=zz,
        source=check_source(ctx, source),
        label=check_label(label),
        fit=fit,
    )
    new = evolve(
        state,
        windows=(*state.windows, win),
        layout=None,
        next_window=state.next_window + 1,
    )
    return new, win


def move(
    state: WallState, ctx: EditContext, window: str, x: object, y: object, snap: bool = False
) -> WallState:
    return move_window(state, ctx, window, x, y, snap)[0]


def move_window(
    state: WallState, ctx: EditContext, window: str, x: object, y: object, snap: bool = False
) -> tuple[WallState, Window]:
    """``move``, and the window as it now is: the API answers with it, and the busiest
    request of the API should not look the window up twice."""
    i = window_index(state, window)
    win = state.windows[i]
    if snap:
        rect = ctx.wall.snap(check_rect(ctx, x, y, win.w, win.h))
        moved = evolve(win, x=rect.x, y=rect.y, w=rect.w, h=rect.h, restore=None)
    else:
        xi, yi = _check_int("x", x), _check_int("y", y)
        _check_placement(ctx, xi, yi, win.w, win.h)
        moved = evolve(win, x=xi, y=yi, restore=None)
    return replace_window(state, i, moved, layout=None), moved


def resize(
    state: WallState,
    ctx: EditContext,
    window: str,
    w: object,
    h: object,
    x: object = None,
    y: object = None,
    snap: bool = False,
) -> WallState:
    win = get_window(state, window)
    rect = check_rect(ctx, win.x if x is None else x, win.y if y is None else y, w, h)
    if snap:
        rect = ctx.wall.snap(rect)
    return _replace(
        state,
        evolve(win, x=rect.x, y=rect.y, w=rect.w, h=rect.h, restore=None),
    )


def close(state: WallState, window: str) -> WallState:
    win = get_window(state, window)
    return evolve(state, windows=tuple(w for w in state.windows if w.id != win.id), layout=None)


def swap(state: WallState, a: str, b: str) -> WallState:
    """Exchange the places (and stacking) of two windows; each keeps its source."""
    wa = get_window(state, a, "a")
    wb = get_window(state, b, "b")
    if wa.id == wb.id:
        raise InvalidField("cannot swap a window with itself", field="b")
    geo_a = {"x": wa.x, "y": wa.y, "w": wa.w, "h": wa.h, "z": wa.z, "restore": wa.restore}
    geo_b = {"x": wb.x, "y": wb.y, "w": wb.w, "h": wb.h, "z": wb.z, "restore": wb.restore}
    # Swapping keeps the layout's shape, so the wall is still "that layout".
    return _replace(
        _replace(state, evolve(wa, **geo_b), keep_layout=True),
        evolve(wb, **geo_a),
        keep_layout=True,
    )


def raise_window(state: WallState, window: str) -> WallState:
    win = get_window(state, window)
    top = state.top_z()
    if win.z == top and sum(1 for w in state.windows if w.z == top) == 1:
        return state
    return _replace(state, evolve(win, z=top + 1), keep_layout=True)


def set_source(state: WallState, ctx: EditContext, window: str, source: str | None) -> WallState:
    win = get_window(state, window)
    return _replace(state, evolve(win, source=check_source(ctx, source)), keep_layout=True)


def set_label(state: WallState, window: str, label: str | None) -> WallState:
    win = get_window(state, window)
    return _replace(state, evolve(win, label=check_label(label)), keep_layout=True)


def set_view(state: WallState, window: str, crop: Crop | None, fit: Fit) -> WallState:
    win = get_window(state, window)
    if crop is not None and (crop.x + crop.w > 1 + 1e-9 or crop.y + crop.h > 1 + 1e-9):
        raise InvalidField(
            "crop leaves the source frame (x + w and y + h must be <= 1)", field="crop"
        )
    return _replace(state, evolve(win, crop=crop, fit=fit), keep_layout=True)


def fullscreen(
    state: WallState, ctx: EditContext, window: str, on: bool, target: str = "wall"
) -> WallState:
    """Send a window to the full wall (or to the tile under it) and back.

    "Back" returns it exactly where it was, stacking included: the request users of every
    wall product make most.
    """
    win = get_window(state, window)
    if not on:
        if win.restore is None:
            return state
        r = win.restore
        return _replace(
            state,
            evolve(win, x=r.x, y=r.y, w=r.w, h=r.h, z=r.z, restore=None),
            keep_layout=True,
        )
    if target not in ("wall", "tile"):
        raise InvalidField("target must be 'wall' or 'tile'", field="target")
    rect = ctx.wall.canvas if target == "wall" else ctx.wall.nearest_tile_block(win.rect)
    saved = win.restore or Placement(x=win.x, y=win.y, w=win.w, h=win.h, z=win.z)
    return _replace(
        state,
        evolve(
            win,
            x=rect.x,
            y=rect.y,
            w=rect.w,
            h=rect.h,
            z=state.top_z() + 1,
            restore=saved,
        ),
        keep_layout=True,
    )
