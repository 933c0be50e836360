"""API methods of the sources: live statistics beside the configured description.

``source.list`` / ``source.get`` describe what is configured; ``source.stats`` says how
each source is doing now (phase, reason, picture rate, bitrate, resolution, codec,
rendition, dropped pictures, age of the last picture, reconnects, who holds it).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from wallctl.api.methods import ApiContext, Ident, Params, Result, method
from wallctl.errors import NotFound
from wallctl.redact import redact_value
from wallctl.render.sourcehub import SourceHub
from wallctl.store import Actor


class SourceStatsParams(Params):
    # One source; every source when absent.
    source: Ident | None = None


class SourceStatsEntry(Result):
    source: str
    name: str
    kind: str
    # idle (no decoder), connecting, live, no_signal, failed.
    phase: str
    # Why it is not live, for a person (never a password).
    error: str | None = None
    # A decoder (or pattern) runs for it: demanded now or kept warm.
    active: bool
    # Who demands it now ("wall:main", "thumbs", ...).
    holders: list[str] = Field(default_factory=list)
    # Seconds left before a released source's decoder stops.
    warm_for_s: float | None = None
    fps: float = 0.0
    bitrate_bps: int = 0
    codec: str | None = None
    width: int | None = None
    height: int | None = None
    rendition: str | None = None
    switching_to: str | None = None
    keyframes_only: bool = False
    frames_decoded: int = 0
    frames_dropped: int = 0
    bytes_in: int = 0
    reconnects: int = 0
    # Seconds since the last picture; unix time of it (for "no signal since").
    age_s: float | None = None
    last_frame_at: float | None = None


class SourceStatsResult(Result):
    sources: list[SourceStatsEntry]


def _entry(row: dict[str, Any]) -> SourceStatsEntry:
    clean = redact_value("stats", row)
    assert isinstance(clean, dict)
    return SourceStatsEntry.model_validate(clean)


@method(
    "source.stats",
    "Live statistics of one source or of every source (phase, fps, bitrate, resolution).",
    "read",
    SourceStatsParams,
    SourceStatsResult,
)
async def _source_stats(
    ctx: ApiContext, actor: Actor, p: SourceStatsParams, if_revision: int | None
) -> Result:
    hub = ctx.service("sources", SourceHub)
    if p.source is None:
        return SourceStatsResult(sources=[_entry(r) for r in hub.stats()])
    row = hub.source_stats(p.source)
    if row is None:
        raise NotFound(f"no source {p.source!r}", field="params.source")
    return SourceStatsResult(sources=[_entry(row)])
