"""The command layer for walls: every change of every wall goes through here.

The API, MQTT and CLI are faces of this one layer, so a request means the same thing,
with the same validation and audit, whichever way it arrives. A change is computed on the
event loop from the newest state (so concurrent requests serialise without locks), then
made durable in the store; the caller is answered and the event sent only after that.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from wallctl import edits
from wallctl.config import SourceConfig
from wallctl.edits import EditContext
from wallctl.errors import Conflict, InvalidField, NotFound, Unavailable
from wallctl.layout import LayoutTemplate, fit
from wallctl.logs import get_logger
from wallctl.store import SYSTEM, Actor, Preset, Store
from wallctl.wall import Wall
from wallctl.wallstate import WallState, evolve, same_windows

log = get_logger("wallctl.walls")

Edit = Callable[[WallState, EditContext], WallState]
PRESET_NAME_MAX = 64


class WallChanged(NamedTuple):
    """Sent to listeners once a change is durable (made once per change: a NamedTuple
    is cheaper to make than a frozen dataclass)."""

    state: WallState
    previous: WallState
    actor: Actor
    action: str
    ts: float


Listener = Callable[[WallChanged], None]


class PendingChange(NamedTuple):
    """A change begun (WallService.begin_change) and not yet known to be durable."""

    wall: str
    state: WallState
    actor: Actor
    action: str
    ts: float
    stored: asyncio.Future[Any]


class WallService:
    def __init__(
        self,
        store: Store,
        walls: Sequence[Wall],
        sources: Sequence[SourceConfig],
        templates: dict[str, LayoutTemplate],
    ) -> None:
        self.store = store
        self.walls: dict[str, Wall] = {w.id: w for w in walls}
        self.main_wall = walls[0].id
        self.sources: dict[str, SourceConfig] = {s.id: s for s in sources}
        # The run-time part of the catalogue (contribute_sources): by contributing service.
        self._configured: dict[str, SourceConfig] = dict(self.sources)
        self._contributed: dict[str, dict[str, SourceConfig]] = {}
        self._source_listeners: list[Callable[[], None]] = []
        self.templates = templates
        self._durable: dict[str, WallState] = {}
        # Newest state, possibly not yet durable: the next edit builds on it.
        self._head: dict[str, WallState] = {}
        self._listeners: list[Listener] = []
        # Presets are few and small: kept here so applying one reads no disk on the loop.
        self._presets: dict[str, dict[str, Preset]] = {w.id: {} for w in walls}
        self._closed = False
        # Built once per wall and source list, not per request (a centre has hundreds of
        # cameras); configure() drops them.
        self._contexts: dict[str, EditContext] = {}

    # --- start-up ---------------------------------------------------------------------

    async def load(self, startup: dict[str, tuple[str | None, list[str]]] | None = None) -> None:
        """Come back showing the last wall each wall showed.

        A wall the store has never seen starts with its configured start-up layout.
        """
        current = await asyncio.to_thread(self.store.load_current)
        for wall_id in self.walls:
            presets = await asyncio.to_thread(self.store.presets, wall_id)
            self._presets[wall_id] = {p.name: p for p in presets}
        for wall_id, wall in self.walls.items():
            state = current.get(wall_id)
            if state is None:
                state = WallState(wall=wall_id)
            else:
                outside = [w.id for w in state.windows if not wall.canvas.contains(w.rect)]
                if outside:
                    log.warning(
                        "windows outside the canvas after a wall geometry change",
                        wall=wall_id,
                        windows=",".join(outside),
                    )
            self._durable[wall_id] = self._head[wall_id] = state
            layout, sources = (startup or {}).get(wall_id, (None, []))
            if state.revision == 0 and layout:
                await self.change(
                    wall_id,
                    SYSTEM,
                    "layout.apply",
                    self.layout_edit_for(layout, sources or None),
                    detail={"name": layout, "reason": "start-up layout"},
                )

    def close(self) -> None:
        self._closed = True

    def configure(
        self, sources: Sequence[SourceConfig], templates: dict[str, LayoutTemplate]
    ) -> None:
        """Take new sources and templates (SIGHUP); the wall geometry needs a restart."""
        self.templates = templates
        self._contexts = {}
        # The configured sources, then what services contribute (configured ones win).
        self._configured = {s.id: s for s in sources}
        self._merge_sources()

    # --- sources contributed at run time ----------------------------------------------------

    def contribute_sources(self, owner: str, sources: Sequence[SourceConfig]) -> bool:
        """Sources a service knows at run time (every registered mobile terminal as
        ``mobile/<id>``), replacing what ``owner`` contributed before. A configured source
        with the same id wins. Windows showing a source that goes away keep it (the wall
        shows its slate). True when the catalogue changed; listeners are told then."""
        self._contributed[owner] = {s.id: s for s in sources}
        return self._merge_sources()

    def on_sources_changed(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener`` (on the event loop) whenever ``sources`` changes."""
        self._source_listeners.append(listener)
        return lambda: (
            self._source_listeners.remove(listener) if listener in self._source_listeners else None
        )

    def _merge_sources(self) -> bool:
        merged = dict(self._configured)
        for contributed in self._contributed.values():
            for sid, s in contributed.items():
                merged.setdefault(sid, s)
        if merged == self.sources:
            return False
        self.sources = merged
        self._contexts = {}
        for listener in list(self._source_listeners):
            try:
                listener()
            except Exception:
                log.exception("source catalogue listener failed", listener=repr(listener))
        return True

    # --- reading ------------------------------------------------------------------------

    def resolve_wall(self, wall_id: str | None) -> str:
        if wall_id is None:
            return self.main_wall
        if not isinstance(wall_id, str) or wall_id not in self.walls:
            raise NotFound(f"no wall {wall_id!r}", field="wall")
        return wall_id

    def state(self, wall_id: str | None = None) -> WallState:
        return self._durable[self.resolve_wall(wall_id)]

    def context(self, wall_id: str) -> EditContext:
        ctx = self._contexts.get(wall_id)
        if ctx is None:
            ctx = self._contexts[wall_id] = EditContext(
                self.walls[wall_id], frozenset(self.sources)
            )
        return ctx

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    # --- changing -----------------------------------------------------------------------

    async def change(
        self,
        wall_id: str | None,
        actor: Actor,
        action: str,
        edit: Edit,
        *,
        if_revision: int | None = None,
        detail: dict[str, Any] | None = None,
    ) -> WallState:
        """Apply ``edit`` as one revision; return the new state once it is durable.

        An edit that changes nothing makes no revision and is answered with the current
        state, so repeating a request is harmless.
        """
        new, pending = self.begin_change(
            wall_id, actor, action, edit, if_revision=if_revision, detail=detail
        )
        return new if pending is None else await self.completed(pending)

    async def completed(self, pending: PendingChange) -> WallState:
        """Wait for a begun change to be stored, then finish it (finish_change)."""
        with contextlib.suppress(Exception):
            # A refusal is finish_change's to handle, with the rest of the outcome.
            await pending.stored
        return self.finish_change(pending)

    def begin_change(
        self,
        wall_id: str | None,
        actor: Actor,
        action: str,
        edit: Edit,
        *,
        if_revision: int | None = None,
        detail: dict[str, Any] | None = None,
    ) -> tuple[WallState, PendingChange | None]:
        """The first half of ``change``, which never waits: the edit applied, numbered
        and handed to the store. The new state, and what ``finish_change`` takes once
        ``stored`` is done (None when the edit changed nothing: the state is the current
        one). Edits begun later build on this one, and are stored after it."""
        if self._closed:
            raise Unavailable("the daemon is shutting down")
        wid = self.resolve_wall(wall_id)
        head = self._head[wid]
        if if_revision is not None and if_revision != head.revision:
            raise Conflict(
                f"wall {wid!r} is at revision {head.revision}, not {if_revision}",
                field="if_revision",
            )
        new = edit(head, self.context(wid))
        if new.layout == head.layout and same_windows(head.windows, new.windows):
            return head, None
        if new.revision != head.revision + 1:
            new = evolve(new, revision=head.revision + 1)
        self._head[wid] = new
        try:
            ts, stored = self.store.commit_revision_nowait(new, actor, action, detail or {}, head)
        except Exception:
            self._head[wid] = self._durable[wid]
            log.exception("wall change not stored", wall=wid, revision=new.revision, action=action)
            raise Unavailable("the change could not be stored; the wall is unchanged") from None
        return new, PendingChange(wid, new, actor, action, ts, stored)

    def finish_change(self, pending: PendingChange) -> WallState:
        """The second half of ``change``, once ``pending.stored`` is done (and in the
        order the changes were begun): the state is durable, listeners hear of it.
        Unavailable when the store refused it."""
        wid, new = pending.wall, pending.state
        try:
            pending.stored.result()
        except BaseException:
            # The store is the truth: drop the speculative head (and anything built on
            # it, which the store refuses too) and go back to what is durable.
            self._head[wid] = self._durable[wid]
            log.exception(
                "wall change not stored", wall=wid, revision=new.revision, action=pending.action
            )
            raise Unavailable("the change could not be stored; the wall is unchanged") from None
        previous = self._durable[wid]
        self._durable[wid] = new
        event = WallChanged(new, previous, pending.actor, pending.action, pending.ts)
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("wall listener failed", listener=repr(listener))
        return new

    # --- the operations faces call --------------------------------------------------------

    def layout_edit(
        self, state: WallState, ctx: EditContext, name: str, sources: Sequence[str | None] | None
    ) -> WallState:
        template = self.templates.get(name)
        if template is None:
            preset = self._presets[state.wall].get(name)
            if preset is None:
                raise NotFound(f"no layout template or preset {name!r}", field="name")
            return edits.apply_windows(state, ctx, name, preset.windows)
        return edits.apply_layout(state, ctx, name, fit(template, ctx.wall), sources)

    def layout_edit_for(self, name: str, sources: Sequence[str | None] | None) -> Edit:
        return lambda s, c: self.layout_edit(s, c, name, sources)

    async def apply_layout(
        self,
        wall_id: str | None,
        actor: Actor,
        name: str,
        sources: Sequence[str | None] | None = None,
        *,
        if_revision: int | None = None,
    ) -> WallState:
        if not isinstance(name, str) or not name:
            raise InvalidField("name must be a layout template or preset name", field="name")
        return await self.change(
            wall_id,
            actor,
            "layout.apply",
            self.layout_edit_for(name, sources),
            if_revision=if_revision,
            detail={"name": name, "sources": list(sources) if sources is not None else None},
        )

    async def restore(
        self,
        wall_id: str | None,
        actor: Actor,
        *,
        revision: int | None = None,
        at: float | None = None,
        if_revision: int | None = None,
    ) -> WallState:
        wid = self.resolve_wall(wall_id)
        past = await self.find_revision(wid, revision=revision, at=at)
        return await self.change(
            wid,
            actor,
            "state.restore",
            lambda s, c: edits.restore(s, past),
            if_revision=if_revision,
            detail={"restored_revision": past.revision},
        )

    async def find_revision(
        self, wall_id: str, *, revision: int | None = None, at: float | None = None
    ) -> WallState:
        if (revision is None) == (at is None):
            raise InvalidField("give either revision or at", field="revision")
        if revision is not None:
            past = await asyncio.to_thread(self.store.revision, wall_id, revision)
            if past is None:
                raise NotFound(f"wall {wall_id!r} has no revision {revision}", field="revision")
        else:
            assert at is not None
            past = await asyncio.to_thread(self.store.revision_at, wall_id, at)
            if past is None:
                raise NotFound(f"wall {wall_id!r} had no revision at that time", field="at")
        return past

    async def save_preset(self, wall_id: str | None, actor: Actor, name: str) -> Preset:
        wid = self.resolve_wall(wall_id)
        check_preset_name(name)
        if name in self.templates:
            raise InvalidField(f"{name!r} is a built-in template name", field="name")
        windows = self.state(wid).windows
        await self.store.save_preset(wid, name, windows, actor)
        preset = await asyncio.to_thread(self.store.preset, wid, name)
        assert preset is not None
        self._presets[wid][name] = preset
        return preset

    def presets(self, wall_id: str | None) -> list[Preset]:
        return sorted(self._presets[self.resolve_wall(wall_id)].values(), key=lambda p: p.name)

    async def delete_preset(self, wall_id: str | None, actor: Actor, name: str) -> None:
        wid = self.resolve_wall(wall_id)
        check_preset_name(name)
        if not await self.store.delete_preset(wid, name, actor):
            raise NotFound(f"no preset {name!r} on wall {wid!r}", field="name")
        self._presets[wid].pop(name, None)


def check_preset_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidField("name must be a non-empty string", field="name")
    if len(name) > PRESET_NAME_MAX:
        raise InvalidField(f"name must be at most {PRESET_NAME_MAX} characters", field="name")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise InvalidField("name must not contain control characters", field="name")
    return name
