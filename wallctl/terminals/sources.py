"""Every registered terminal is a wall source, ``mobile/<id>``, with no configuration.

The terminals table is the truth (``wallctl terminals add|remove`` write it, with or
without the daemon running): :class:`TerminalSources` reads it every ``REFRESH_S`` and
contributes one source per terminal to the walls' catalogue
(``WallService.contribute_sources``), which the API (``source.list``, ``window.*``,
layouts) validates against and the render SourceHub follows. A terminal added while the
daemon runs appears within ``REFRESH_S``; one removed disappears (a window still showing
it shows its slate).

A ``[[sources]]`` entry with the id ``mobile/<id>`` wins over the automatic one (to give
it a name or a group); an older-style entry of ``kind = "mobile"`` with its own id stays
a source of its own, showing the terminal its id or feed URL names.

The SourceHub decodes a terminal only while a window shows it, from the daemon's own
loopback feed (``/terminals/<id>/feed.h264``). Its stream is resolved here
(``RESOLVERS["mobile"]``): the feed of the terminal's current publication, or none while
it does not publish, so that no decoder polls an offline terminal and its slate says
since when it is offline. A new publication (first frame) or its end restarts the
decoder at once (``SourceHub.refresh_streams``) rather than after the decoder's backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from wallctl.config import SourceConfig
from wallctl.logs import get_logger
from wallctl.render.renditions import RESOLVERS, UNRESOLVED_REASONS, Rendition
from wallctl.terminals.identities import SOURCE_PREFIX, TerminalInfo, Terminals, source_of

if TYPE_CHECKING:
    # Types only: source.list reaches public_url_of without loading aiortc.
    from wallctl.terminals.relay import Publication, Relay
    from wallctl.walls import WallService

log = get_logger("wallctl.terminals.sources")

KIND = "mobile"
# The group of the automatic sources in the console's source tree.
GROUP = "移动终端"
# How often the terminals table is read for terminals added or removed behind our back.
REFRESH_S = 2.0
# Source ids are at most 64 characters (the API's limit): "mobile/" leaves 57.
MAX_TERMINAL_ID = 64 - len(SOURCE_PREFIX)

_FEED_URL = re.compile(r"/terminals/([A-Za-z0-9][A-Za-z0-9_.\-]{0,63})/feed\.h264(\?|$)")

# (publication id, time.time() it went live) by case-folded terminal id.
Live = dict[str, tuple[str, float]]


def terminal_of(source: SourceConfig) -> str | None:
    """The terminal a ``mobile`` source shows: ``mobile/<id>``, else the terminal its feed
    URL names, else the terminal with the source's own id (docs/terminals.md)."""
    if source.kind != KIND:
        return None
    if source.id.startswith(SOURCE_PREFIX):
        return source.id[len(SOURCE_PREFIX) :]
    m = _FEED_URL.search(source.url or "")
    return m.group(1) if m else source.id


def whep_path(source: SourceConfig) -> str | None:
    """Where a browser watches ``source`` over WHEP: mobile terminals only (the relay
    forwards what terminals publish; cameras and other sources are not served)."""
    terminal = terminal_of(source)
    return None if terminal is None else f"/whep/{source_of(terminal)}"


def source_for(terminal: TerminalInfo) -> SourceConfig | None:
    """The automatic source of ``terminal``; None when its id is too long to be one."""
    if len(terminal.id) > MAX_TERMINAL_ID:
        return None
    return SourceConfig(
        id=terminal.source, name=terminal.name or terminal.id, kind=KIND, group=GROUP
    )


def feed_base(host: str, port: int | None) -> str | None:
    """The address this host reaches its own HTTP listener at, for the decoders' feed."""
    if not port:
        return None
    if host in ("", "0.0.0.0", "localhost") or host.startswith("127."):
        return f"http://127.0.0.1:{port}"
    if host in ("::", "::1"):
        return f"http://[::1]:{port}"
    if ":" in host:
        return f"http://[{host}]:{port}"
    return f"http://{host}:{port}"


class TerminalSources:
    """The terminals' share of the source catalogue, and their streams for the SourceHub."""

    OWNER = "terminals"

    def __init__(
        self,
        walls: WallService,
        identities: Terminals,
        relay: Relay,
        base: Callable[[], str | None],
        hub: Callable[[], Any],
        on_change: Callable[[list[str], list[str]], None] | None = None,
    ) -> None:
        self.walls = walls
        self.identities = identities
        self.relay = relay
        self._base = base
        self._hub = hub
        self._on_change = on_change
        self.sources: dict[str, SourceConfig] = {}
        # Written on the event loop, read by the SourceHub's threads (whole-dict swaps).
        self._live: Live = {}
        self._offline: dict[str, tuple[float, str]] = {}
        self._task: asyncio.Task[None] | None = None
        self._too_long: set[str] = set()
        relay.listeners.append(self._on_frame)
        relay.on_unpublish.append(self._on_unpublish)

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        RESOLVERS[KIND] = self.resolve
        UNRESOLVED_REASONS[KIND] = self.offline_reason
        await self.refresh()
        self._task = asyncio.create_task(self._poll(), name="terminal-sources")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        # Another daemon in this process (tests) may have registered its own since.
        if RESOLVERS.get(KIND) == self.resolve:
            del RESOLVERS[KIND]
        if UNRESOLVED_REASONS.get(KIND) == self.offline_reason:
            del UNRESOLVED_REASONS[KIND]
        self.walls.contribute_sources(self.OWNER, [])

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_S)
            try:
                await self.refresh()
            except Exception:  # the store failing now and then must not end the catalogue
                log.exception("terminal sources not refreshed")

    async def refresh(self) -> bool:
        """Read the terminals table; contribute its sources. True when they changed."""
        terminals = await asyncio.to_thread(self.identities.list)
        sources: dict[str, SourceConfig] = {}
        for t in terminals:
            src = source_for(t)
            if src is None:
                if t.id not in self._too_long:
                    self._too_long.add(t.id)
                    log.warning(
                        "terminal id too long to be a wall source",
                        terminal=t.id,
                        limit=MAX_TERMINAL_ID,
                    )
                continue
            sources[src.id] = src
        if sources == self.sources:
            return False
        added = sorted(set(sources) - set(self.sources))
        removed = sorted(set(self.sources) - set(sources))
        self.sources = sources
        self.walls.contribute_sources(self.OWNER, list(sources.values()))
        if added or removed:
            log.info("terminal sources changed", added=",".join(added), removed=",".join(removed))
        if self._on_change is not None:
            self._on_change(added, removed)
        return True

    # --- publications -----------------------------------------------------------------------

    def _on_frame(self, pub: Publication, kind: str, data: bytes, pts: int, kf: bool) -> None:
        key = pub.terminal.id.lower()
        if kind != "video" or self._live.get(key, ("", 0.0))[0] == pub.id:
            return
        # The first picture of a new publication: show it now, not after the backoff.
        self._live = {**self._live, key: (pub.id, time.time())}
        self._offline.pop(key, None)
        self._kick(pub.terminal.id)

    def _on_unpublish(self, pub: Publication, reason: str) -> None:
        key = pub.terminal.id.lower()
        live = self._live.get(key)
        if live is None or live[0] != pub.id:
            return
        self._live = {k: v for k, v in self._live.items() if k != key}
        self._offline = {**self._offline, key: (time.time(), reason)}
        self._kick(pub.terminal.id)

    def _kick(self, terminal: str) -> None:
        hub = self._hub()
        if hub is None:
            return
        key = terminal.lower()
        for sid, src in list(self.walls.sources.items()):
            t = terminal_of(src)
            if t is not None and t.lower() == key:
                hub.refresh_streams(sid)

    def publishing(self, terminal: str) -> bool:
        return terminal.lower() in self._live

    # --- the SourceHub's view (called from its threads) --------------------------------------

    def resolve(self, source: SourceConfig) -> list[Rendition]:
        if source.url:
            return [Rendition("main", source.url)]  # configured by hand: as it says
        terminal = terminal_of(source)
        base = self._base()
        live = self._live.get(terminal.lower()) if terminal else None
        if terminal is None or live is None or base is None:
            return []
        # The publication in the URL: a new one is a new stream, restarted at once.
        url = f"{base}/terminals/{quote(terminal, safe='')}/feed.h264?session={live[0]}"
        return [Rendition("main", url)]

    def offline_reason(self, source: SourceConfig) -> str:
        terminal = terminal_of(source) or source.id
        off = self._offline.get(terminal.lower())
        if off is None:
            return "终端未推流 terminal not publishing"
        since = time.strftime("%H:%M:%S", time.localtime(off[0]))
        return f"终端离线 offline since {since} ({off[1]})"


def public_base(config: Any, http: Any) -> str:
    """Where phones and browsers reach this daemon: ``[terminals] public_url``, else the
    HTTP listener's own address."""
    if config.terminals.public_url:
        return str(config.terminals.public_url).rstrip("/")
    return str(http.url)


def public_url_of(services: dict[str, Any], path: str | None) -> str | None:
    """``path`` (a WHEP path) as a full URL, when the terminals component runs."""
    comp = services.get("terminals")
    if path is None or comp is None:
        return None
    return f"{comp.public_base()}{path}"


def source_problems(sources: list[SourceConfig]) -> list[tuple[str, str]]:
    """(key path, reason) for ``[[sources]]`` entries that misuse a terminal's source id."""
    problems = []
    for i, s in enumerate(sources):
        if s.id.startswith(SOURCE_PREFIX) and s.kind != KIND:
            problems.append(
                (f"sources[{i}].kind", f'{s.id!r} is a mobile terminal\'s source: kind = "mobile"')
            )
    return problems


def publishing_of(services: dict[str, Any], source: SourceConfig) -> bool | None:
    """Whether the terminal ``source`` shows publishes now; None for other sources."""
    terminal = terminal_of(source)
    comp = services.get("terminals")
    if terminal is None or comp is None:
        return None
    return comp.relay.publication(terminal) is not None
