"""API methods of federation (registered through ``wallctl.api.methods.EXTENSIONS``).

They work from the WebSocket API and from MQTT commands alike; with no ``[mqtt]``
configured they answer ``unavailable``.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, StrictInt

from wallctl.api.methods import ApiContext, Ident, Params, Result, method
from wallctl.mqtt.federation import Federation
from wallctl.store import Actor

PendingId = Field(min_length=1, max_length=32, pattern=r"^[0-9a-f]+$")


class PendingList(Result):
    pending: list[dict[str, Any]]


class PendingParams(Params):
    id: str = PendingId


class RejectParams(PendingParams):
    reason: str = Field(default="", max_length=256)


class Decision(Result):
    id: str
    origin: str
    method: str
    ok: bool | None = None
    by: str | None = None
    reason: str | None = None
    result: Any = None
    error: dict[str, Any] | None = None


class SendParams(Params):
    # The peer centre (its site id) and the command to run there.
    centre: Ident
    method: str = Field(min_length=1, max_length=64)
    params: dict[str, Any] = Field(default_factory=dict)
    if_revision: StrictInt | None = Field(default=None, ge=0)


class SendAnswer(Result):
    centre: str
    request: str
    # "done": ran there (result); "pending": waits for confirmation there (pending id).
    status: str
    result: Any = None
    pending: str | None = None


class PeerList(Result):
    peers: list[dict[str, Any]]


class NoParams(Params):
    pass


def _fed(ctx: ApiContext) -> Federation:
    return ctx.service("federation", Federation)


@method(
    "federation.pending",
    "Commands from other centres waiting for confirmation here.",
    "read",
    NoParams,
    PendingList,
)
async def _pending(ctx: ApiContext, actor: Actor, p: NoParams, rev: int | None) -> Result:
    return PendingList(pending=_fed(ctx).list_pending())


@method(
    "federation.confirm",
    "Run a pending command from another centre (audited with its centre and person).",
    "layouts",
    PendingParams,
    Decision,
)
async def _confirm(ctx: ApiContext, actor: Actor, p: PendingParams, rev: int | None) -> Result:
    out = await _fed(ctx).confirm(p.id, actor)
    return Decision(by=actor.identity, **out)


@method(
    "federation.reject",
    "Refuse a pending command from another centre; its sender is told why.",
    "layouts",
    RejectParams,
    Decision,
)
async def _reject(ctx: ApiContext, actor: Actor, p: RejectParams, rev: int | None) -> Result:
    out = await _fed(ctx).reject(p.id, actor, p.reason)
    return Decision(ok=False, **out)


@method(
    "federation.send",
    "Send a command to another centre, as the config's federation policy allows.",
    "layouts",
    SendParams,
    SendAnswer,
)
async def _send(ctx: ApiContext, actor: Actor, p: SendParams, rev: int | None) -> Result:
    out = await _fed(ctx).send(actor, p.centre, p.method, p.params, p.if_revision)
    return SendAnswer(**out)


@method(
    "federation.peers",
    "Other centres this one watches: availability, bridge link, walls.",
    "read",
    NoParams,
    PeerList,
)
async def _peers(ctx: ApiContext, actor: Actor, p: NoParams, rev: int | None) -> Result:
    return PeerList(peers=_fed(ctx).peer_list())
