"""Which stream of a source to decode for the sizes its windows are drawn at.

Pure rules, no I/O: a source's renditions (the main stream and sub-streams) and the
pixel sizes holders demand go in; the rendition to decode and whether thumbnails alone
need it come out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from wallctl.config import SourceConfig


@dataclass(frozen=True, slots=True)
class Rendition:
    name: str
    url: str
    # None for the main stream when its size is not configured: taken as the largest.
    width: int | None = None
    height: int | None = None

    def covers(self, w: int, h: int) -> bool:
        if self.width is None or self.height is None:
            return True
        return self.width >= w and self.height >= h

    @property
    def area(self) -> float:
        if self.width is None or self.height is None:
            return float("inf")
        return float(self.width * self.height)


# Sources whose streams are found at run time (an ONVIF camera's media profiles): the
# service that knows them registers a resolver for the source kind. It answers the
# renditions (URLs may carry credentials: they never leave the daemon), [] while unknown.
RESOLVERS: dict[str, Callable[[SourceConfig], list[Rendition]]] = {}
# Why a resolver's source has no stream now, for its slate (a mobile terminal: "offline
# since 14:02:11"); without one the slate says its streams are not known yet.
UNRESOLVED_REASONS: dict[str, Callable[[SourceConfig], str]] = {}


def renditions_of(source: SourceConfig) -> list[Rendition]:
    """The main stream (``url``) first, then the configured sub-streams."""
    resolver = RESOLVERS.get(source.kind)
    if resolver is not None:
        return resolver(source)
    out: list[Rendition] = []
    if source.url:
        out.append(Rendition("main", source.url))
    out += [Rendition(r.name, r.url, r.width, r.height) for r in source.renditions]
    return out


def largest_need(sizes: Iterable[tuple[int, int]]) -> tuple[int, int]:
    """The size that covers every demanded size (each side's maximum)."""
    w = h = 0
    for sw, sh in sizes:
        w, h = max(w, sw), max(h, sh)
    return w, h


def choose(renditions: list[Rendition], need: tuple[int, int]) -> Rendition:
    """The smallest rendition at least as large as ``need``; the largest if none is."""
    if not renditions:
        raise ValueError("a source without a stream has no rendition")
    w, h = need
    fitting = [r for r in renditions if r.covers(w, h)]
    if fitting:
        return min(fitting, key=lambda r: r.area)
    return max(renditions, key=lambda r: r.area)


def thumbnails_only(sizes: Iterable[tuple[int, int]], limit: tuple[int, int]) -> bool:
    """True when every demanded size fits in ``limit`` (and something is demanded)."""
    seen = False
    for w, h in sizes:
        seen = True
        if w > limit[0] or h > limit[1]:
            return False
    return seen and limit != (0, 0)
