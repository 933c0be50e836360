"""``terminal.list``: every terminal, whether it publishes now, and where to watch it;
``terminal.listen`` / ``terminal.mute`` / ``terminal.audio``: whom the centre hears."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import Field

from wallctl.api.methods import ApiContext, NoParams, Params, Result, method
from wallctl.errors import NotFound, Unavailable
from wallctl.store import Actor
from wallctl.terminals.identities import TERMINAL_ID


class TerminalList(Result):
    # Each: id, name, source ("mobile/<id>"), whip_path, whep_path, publishing, and while
    # publishing: session, started, frames, keyframes, bytes, viewers, codecs.
    terminals: list[dict[str, Any]]


@method(
    "terminal.list",
    "Mobile terminals: who publishes now, with their WHIP/WHEP paths (never tokens)",
    "read",
    NoParams,
    TerminalList,
)
async def _list(ctx: ApiContext, actor: Actor, p: NoParams, rev: int | None) -> Result:
    from wallctl.terminals.component import TerminalsComponent

    comp = ctx.service("terminals", TerminalsComponent)
    rows = []
    for t in await asyncio.to_thread(comp.identities.list):
        row: dict[str, Any] = {
            "id": t.id,
            "name": t.name,
            "source": t.source,
            "whip_path": f"/whip/{t.id}",
            "whep_path": f"/whep/{t.source}",
            "whep_url": f"{comp.public_base()}/whep/{t.source}",
            "publishing": False,
        }
        pub = comp.relay.publication(t.id)
        if pub is not None:
            row.update(pub.info(), publishing=True)
            row.pop("terminal", None)
        rows.append(row)
    return TerminalList(terminals=rows)


class TerminalParams(Params):
    terminal: str = Field(min_length=1, max_length=64, pattern=TERMINAL_ID.pattern)


class AudioInfo(Result):
    # ALSA device (null: no audio output here), what is followed, who is heard and why
    # ("listen" | "highlighted" | "fullscreen"), who is muted; with a device: playing,
    # error, frames, dropped.
    device: str | None
    follow: list[str]
    heard: list[dict[str, Any]]
    muted: list[str]
    playing: bool | None = None
    error: str | None = None
    frames: int | None = None
    dropped: int | None = None


def _audio_comp(ctx: ApiContext) -> Any:
    from wallctl.terminals.component import TerminalsComponent

    comp = ctx.service("terminals", TerminalsComponent)
    if comp.audio is None:
        raise Unavailable("no audio output is configured here ([terminals.audio] device)")
    return comp


async def _hear(ctx: ApiContext, terminal: str, *, listen: bool) -> AudioInfo:
    """Listen to or mute a known terminal; who is heard now."""
    comp = _audio_comp(ctx)
    if await asyncio.to_thread(comp.identities.get, terminal) is None:
        raise NotFound(f"no terminal {terminal!r}", field="terminal")
    (comp.hearing.listen if listen else comp.hearing.mute)(terminal)
    comp.apply_hearing()
    return AudioInfo(**comp.audio_info())


@method(
    "terminal.listen",
    "Hear a terminal's voice on the centre's loudspeaker (besides those already heard)",
    "sources",
    TerminalParams,
    AudioInfo,
)
async def _listen(ctx: ApiContext, actor: Actor, p: TerminalParams, rev: int | None) -> Result:
    return await _hear(ctx, p.terminal, listen=True)


@method(
    "terminal.mute",
    "Stop hearing a terminal (also one followed on the wall) until listened to again",
    "sources",
    TerminalParams,
    AudioInfo,
)
async def _mute(ctx: ApiContext, actor: Actor, p: TerminalParams, rev: int | None) -> Result:
    return await _hear(ctx, p.terminal, listen=False)


@method(
    "terminal.audio",
    "The centre's audio output: which terminals are heard now and why",
    "read",
    NoParams,
    AudioInfo,
)
async def _audio(ctx: ApiContext, actor: Actor, p: NoParams, rev: int | None) -> Result:
    from wallctl.terminals.component import TerminalsComponent

    comp = ctx.service("terminals", TerminalsComponent)
    return AudioInfo(**comp.audio_info())
