"""API methods of the render pipeline: highlight a window, read the compositors' state.

``render.highlight`` draws (or removes) a border round one window on the composited
wall: the commander points at the picture under discussion. It is not a wall edit (no
revision, not stored): it only changes what the software compositor draws.
"""

from __future__ import annotations

from typing import Any

from pydantic import StrictBool

from wallctl.api.methods import (
    ApiContext,
    Ident,
    Params,
    Result,
    WallParams,
    WindowId,
    method,
)
from wallctl.errors import NotFound
from wallctl.render.component import RenderComponent
from wallctl.store import Actor


class HighlightParams(WallParams):
    window: WindowId
    on: StrictBool = True


class HighlightResult(Result):
    wall: str
    # Every window of the wall highlighted now.
    highlighted: list[str]


class RenderStatusParams(Params):
    wall: Ident | None = None


class RenderStatus(Result):
    # Per wall: canvas size, frame rate, frames, late frames, paint time, highlights.
    walls: dict[str, dict[str, Any]]


@method(
    "render.highlight",
    "Draw or remove a highlight border round a window of the composited wall",
    "windows",
    HighlightParams,
    HighlightResult,
)
async def _highlight(
    ctx: ApiContext, actor: Actor, p: HighlightParams, if_revision: int | None
) -> Result:
    render = ctx.service("render", RenderComponent)
    wall, shown = render.highlight(p.wall, p.window, p.on)
    return HighlightResult(wall=wall, highlighted=shown)


@method(
    "render.status",
    "The software compositor of each wall: frame rate, late frames, paint time",
    "read",
    RenderStatusParams,
    RenderStatus,
)
async def _status(
    ctx: ApiContext, actor: Actor, p: RenderStatusParams, if_revision: int | None
) -> Result:
    render = ctx.service("render", RenderComponent)
    walls = render.status()
    if p.wall is not None:
        wid = ctx.walls.resolve_wall(p.wall)
        if wid not in walls:
            raise NotFound(f"wall {wid!r} is not composited here", field="wall")
        walls = {wid: walls[wid]}
    return RenderStatus(walls=walls)
