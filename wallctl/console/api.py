"""API methods the console needs beyond the core set: renaming a saved preset.

Registered through ``wallctl.api.methods.EXTENSIONS`` like any capability's methods, so
integrators get them too: the console has no private back door.
"""

from __future__ import annotations

import asyncio

from pydantic import Field

from wallctl.api.methods import ApiContext, PresetInfo, WallParams, method
from wallctl.errors import InvalidField, NotFound, WallctlError
from wallctl.store import Actor
from wallctl.walls import check_preset_name


class RenameParams(WallParams):
    # The preset's current name and the new one (1-64 characters, no control characters).
    name: str = Field(min_length=1, max_length=64)
    to: str = Field(min_length=1, max_length=64)


@method(
    "layout.rename",
    "Rename a saved preset (its windows are kept).",
    "layouts",
    RenameParams,
    PresetInfo,
)
async def _layout_rename(
    ctx: ApiContext, actor: Actor, p: RenameParams, rev: int | None
) -> PresetInfo:
    walls = ctx.walls
    wid = walls.resolve_wall(p.wall)
    try:
        check_preset_name(p.to)
    except WallctlError as e:
        raise InvalidField(e.message, field="params.to") from None
    if p.to in walls.templates:
        raise InvalidField(f"{p.to!r} is a built-in template name", field="params.to")
    presets = {x.name: x for x in walls.presets(wid)}
    old = presets.get(p.name)
    if old is None:
        raise NotFound(f"no preset {p.name!r} on wall {wid!r}", field="params.name")
    if p.to == p.name:
        return PresetInfo(name=old.name, ts=old.ts, actor=old.actor, windows=len(old.windows))
    if p.to in presets:
        raise InvalidField(f"a preset named {p.to!r} exists; delete it first", field="params.to")
    # Written new-then-delete: a crash in between leaves both names, never neither.
    await ctx.store.save_preset(wid, p.to, old.windows, actor)
    await ctx.store.delete_preset(wid, p.name, actor)
    new = await asyncio.to_thread(ctx.store.preset, wid, p.to)
    assert new is not None
    # WallService keeps presets in memory for layout.apply; it has no rename of its own.
    cache = walls._presets[wid]
    cache.pop(p.name, None)
    cache[new.name] = new
    ctx.publish("layout", "layout.deleted", wid, actor, {"name": p.name, "renamed_to": p.to})
    ctx.publish("layout", "layout.saved", wid, actor, {"name": p.to, "renamed_from": p.name})
    return PresetInfo(name=new.name, ts=new.ts, actor=new.actor, windows=len(new.windows))
