"""``terminal.list``: every terminal, whether it publishes now, and where to watch it."""

from __future__ import annotations

import asyncio
from typing import Any

from wallctl.api.methods import ApiContext, NoParams, Result, method
from wallctl.store import Actor


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
            "publishing": False,
        }
        pub = comp.relay.publication(t.id)
        if pub is not None:
            row.update(pub.info(), publishing=True)
            row.pop("terminal", None)
        rows.append(row)
    return TerminalList(terminals=rows)
