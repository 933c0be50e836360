"""API methods of conferencing: call a centre, hang up, mute, share content, status.

``conference.call`` answers once the call is placed (``wait: false``, the default) or
once it is on the wall or has failed (``wait: true``); either way each step is also an
event of category ``conference`` (``conference.progress``, ``conference.result``,
``conference.ended``).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import ConfigDict, Field, StrictBool, model_validator

from wallctl.api.methods import ApiContext, NoParams, Params, Result, method
from wallctl.conference.service import ConferenceService
from wallctl.store import Actor

Ident = Annotated[str, Field(min_length=1, max_length=64)]


class CallParams(Params):
    # A centre of the directory (conference.centres) ...
    centre: Ident | None = None
    # ... or a dial string (SIP URI, H.323 ID, E.164), checked before it reaches a codec.
    number: str | None = Field(default=None, min_length=1, max_length=255)
    # The link (conference codec) to use; a free one when absent.
    codec: Ident | None = None
    # Answer once the far end is on the wall (or the call failed), not when dialled.
    wait: StrictBool = False

    @model_validator(mode="after")
    def _one(self) -> CallParams:
        if (self.centre is None) == (self.number is None):
            raise ValueError("give either centre or number")
        return self


class HangupParams(Params):
    link: Ident | None = None
    centre: Ident | None = None


class AcceptParams(Params):
    # The link whose codec rings; the only ringing one when absent.
    link: Ident | None = None


class MuteParams(Params):
    link: Ident | None = None
    on: StrictBool = True


class ShareParams(Params):
    # A source of conference.share_inputs; null stops sending content.
    source: Ident | None
    link: Ident | None = None


class Answer(Result):
    """The link, codec, centre and call id, and what the method did (state, reason ...)."""

    model_config = ConfigDict(extra="allow", frozen=True)


class ConferenceStatus(Result):
    links: list[dict[str, Any]]
    problems: list[str]


class Directory(Result):
    centres: list[dict[str, Any]]


def _svc(ctx: ApiContext) -> ConferenceService:
    return ctx.service("conference", ConferenceService)


@method(
    "conference.call",
    "Call a centre of the directory (or a number) on a free codec; its far end opens on "
    "the wall once connected.",
    "routes",
    CallParams,
    Answer,
)
async def _call(ctx: ApiContext, actor: Actor, p: CallParams, rev: int | None) -> dict[str, Any]:
    return await _svc(ctx).call(
        centre_id=p.centre, number=p.number, codec=p.codec, actor=actor, wait=p.wait
    )


@method(
    "conference.hangup",
    "Hang up a link's call (by link or centre).",
    "routes",
    HangupParams,
    Answer,
)
async def _hangup(
    ctx: ApiContext, actor: Actor, p: HangupParams, rev: int | None
) -> dict[str, Any]:
    return await _svc(ctx).hangup(link_id=p.link, centre_id=p.centre, actor=actor)


@method(
    "conference.accept",
    "Answer the call ringing on a link; once connected its far end opens on the wall.",
    "routes",
    AcceptParams,
    Answer,
)
async def _accept(
    ctx: ApiContext, actor: Actor, p: AcceptParams, rev: int | None
) -> dict[str, Any]:
    return await _svc(ctx).accept(p.link, actor)


@method("conference.mute", "Mute (or unmute) a link's microphones.", "routes", MuteParams, Answer)
async def _mute(ctx: ApiContext, actor: Actor, p: MuteParams, rev: int | None) -> dict[str, Any]:
    return await _svc(ctx).mute(p.link, p.on, actor)


@method(
    "conference.share",
    "Route a source to the codec's content input and present it (null: stop).",
    "routes",
    ShareParams,
    Answer,
)
async def _share(ctx: ApiContext, actor: Actor, p: ShareParams, rev: int | None) -> dict[str, Any]:
    return await _svc(ctx).share(p.source, p.link, actor)


@method(
    "conference.status",
    "Each link: its call, codec and window.",
    "read",
    NoParams,
    ConferenceStatus,
)
async def _status(ctx: ApiContext, actor: Actor, p: NoParams, rev: int | None) -> dict[str, Any]:
    return _svc(ctx).status()


@method(
    "conference.centres",
    "The directory of centres and their dial strings.",
    "read",
    NoParams,
    Directory,
)
async def _centres(ctx: ApiContext, actor: Actor, p: NoParams, rev: int | None) -> dict[str, Any]:
    return {"centres": _svc(ctx).directory()}
