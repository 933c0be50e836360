"""``recordings.search``: recorded segments by source, identity and time."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from pydantic import Field, create_model, model_validator

from wallctl.api.methods import ApiContext, Params, Result, method
from wallctl.errors import InvalidField
from wallctl.store import Actor

Ts = Annotated[float, Field(ge=0, le=32503680000)]


class _SearchFields(Params):
    source: str | None = Field(default=None, min_length=1, max_length=80)
    identity: str | None = Field(default=None, min_length=1, max_length=64)
    to: Ts
    limit: int = Field(default=1000, ge=1, le=10000)

    @model_validator(mode="after")
    def _span(self) -> _SearchFields:
        if self.to < getattr(self, "from"):
            raise ValueError("'to' must not be before 'from'")
        return self


# "from" is a Python keyword: the field is added by name, so the wire name is the field's
# own (the spec and the validation come from the same model, as for every method).
SearchParams = create_model(
    "SearchParams",
    __base__=_SearchFields,
    __doc__="Unix seconds; segments overlapping [from, to].",
    **{"from": (Ts, ...)},  # type: ignore[call-overload]
)


class SearchResult(Result):
    # Each: id, source, identity, start, end, bytes, codecs, state, and url (playback
    # over HTTP with an API token; range requests work).
    segments: list[dict[str, Any]]


@method(
    "recordings.search",
    "Recorded segments of mobile terminals overlapping a time span, by source/identity",
    "read",
    SearchParams,
    SearchResult,
)
async def _search(ctx: ApiContext, actor: Actor, p: Any, rev: int | None) -> Result:
    from wallctl.terminals.component import TerminalsComponent

    comp = ctx.service("terminals", TerminalsComponent)
    if p.source is not None and not p.source.startswith("mobile/"):
        raise InvalidField("only mobile/<terminal> sources are recorded", field="source")
    segs = await asyncio.to_thread(
        comp.index.search, p.source, p.identity, getattr(p, "from"), p.to, p.limit
    )
    return SearchResult(segments=[{**s.to_dict(), "url": f"/recordings/{s.id}.mp4"} for s in segs])
