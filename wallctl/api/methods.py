"""The API's methods: name -> params model, scope (hence role), handler, result model.

This is the API face of the command layer: handlers call ``WallService`` and the store,
never the socket. Wall edits also declare a pure ``edit`` so an atomic batch can chain
several of them into one revision. Params are validated strictly (an integer is an
integer, unknown fields are refused) and every failure names the field at fault.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Generic, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError

from wallctl import edits
from wallctl.api.protocol import (
    ROLE_SCOPES,
    BatchItem,
    invalid_field,
    role_allows,
)
from wallctl.edits import EditContext
from wallctl.errors import (
    Aborted,
    InvalidField,
    NotFound,
    NotPermitted,
    Unavailable,
    UnknownMethod,
    WallctlError,
)
from wallctl.redact import redact
from wallctl.store import Actor, Store
from wallctl.walls import PendingChange, WallService
from wallctl.wallstate import Fit, WallState, Window, window_data

Ident = Annotated[str, Field(min_length=1, max_length=64)]
WindowId = Annotated[str, Field(min_length=1, max_length=32)]
Coord = Annotated[StrictInt, Field(ge=0, le=65535)]
Size = Annotated[StrictInt, Field(ge=1, le=65535)]
Timestamp = Annotated[float, Field(ge=0, le=1e11, allow_inf_nan=False)]


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Result(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WallParams(Params):
    # The wall to act on; the main wall when absent.
    wall: Ident | None = None


class WindowParams(WallParams):
    window: WindowId


class OpenParams(WallParams):
    x: Coord
    y: Coord
    w: Size
    h: Size
    source: Ident | None = None
    label: str | None = Field(default=None, max_length=64)
    z: Coord | None = None
    fit: Fit = "fit"
    # Snap the rectangle to the nearest tile edges.
    snap: StrictBool = False


class MoveParams(WindowParams):
    x: Coord
    y: Coord
    snap: StrictBool = False


class ResizeParams(WindowParams):
    w: Size
    h: Size
    x: Coord | None = None
    y: Coord | None = None
    snap: StrictBool = False


class SwapParams(WallParams):
    a: WindowId
    b: WindowId


class FullscreenParams(WindowParams):
    on: StrictBool = True
    target: Literal["wall", "tile"] = "wall"


class SetSourceParams(WindowParams):
    # null leaves the window empty (it shows its label on black).
    source: Ident | None


class LayoutApplyParams(WallParams):
    name: Ident
    # Sources for the layout's windows in order; absent: keep the wall's sources.
    sources: list[Ident | None] | None = Field(default=None, max_length=256)


class LayoutNameParams(WallParams):
    name: Ident


class SourceParams(Params):
    source: Ident


class HistoryParams(WallParams):
    since: Timestamp | None = None
    until: Timestamp | None = None
    limit: StrictInt = Field(default=100, ge=1, le=1000)


class RestoreParams(WallParams):
    # Give exactly one: a revision number, or a time (the wall as it stood then).
    revision: StrictInt | None = Field(default=None, ge=0)
    at: Timestamp | None = None


class NoParams(Params):
    pass


# --- results ---------------------------------------------------------------------------


class WallInfo(Result):
    wall: dict[str, Any]
    state: WallState


class WallList(Result):
    walls: list[dict[str, Any]]
    main: str


class PresetInfo(Result):
    name: str
    ts: float
    actor: str
    windows: int


class LayoutList(Result):
    templates: list[dict[str, Any]]
    presets: list[PresetInfo]


class Change(Result):
    """A wall edit's answer: the revision now shown and, where one is concerned, the window."""

    wall: str
    revision: int
    window: Window | None = None


class Done(Result):
    pass


class SourceInfo(Result):
    id: str
    name: str
    kind: str
    group: str
    # Credentials in the URL are masked.
    url: str | None
    # Where a browser watches it over WHEP (docs/terminals.md), for mobile terminals.
    whep_path: str | None = None
    # The same as a full URL at the address phones and browsers reach (terminals.public_url
    # or the HTTP listener); null for sources the relay does not serve.
    whep_url: str | None = None
    # Mobile terminals: whether the terminal publishes now; null for other sources.
    publishing: bool | None = None


class SourceList(Result):
    sources: list[SourceInfo]


class RevisionEntry(Result):
    revision: int
    ts: float
    actor: str
    action: str


class History(Result):
    wall: str
    revisions: list[RevisionEntry]


class SessionInfo(Result):
    session: str
    account: str
    role: str
    peer: str
    since: float
    subscriptions: list[str]
    requests: int


class SessionList(Result):
    sessions: list[SessionInfo]


# --- the table ---------------------------------------------------------------------------


S = TypeVar("S")


class SessionControl(Protocol):
    """What the server offers the session methods (wallctl/api/sessions.py)."""

    async def issue_token(self, actor: Actor) -> Any: ...

    async def logout(self, actor: Actor) -> int: ...

    async def kick(
        self, actor: Actor, session_id: str, reason: str | None, revoke_tokens: bool
    ) -> tuple[SessionInfo, int]: ...


@dataclass
class ApiContext:
    """What handlers reach: the command layer, the store, and hooks into the server."""

    walls: WallService
    store: Store
    sessions: Callable[[], list[SessionInfo]] = lambda: []
    # Tell subscribers about a change the WallService does not announce (presets).
    publish: Callable[[str, str, str, Actor, dict[str, Any]], None] = (
        lambda category, type_, wall, actor, data: None
    )
    # The daemon's services by name (Runtime.services): how methods of later
    # capabilities reach their component without the API importing it.
    services: dict[str, Any] = field(default_factory=dict)
    # Sessions, tokens and kicks: the server itself (None without one, e.g. in tests).
    control: SessionControl | None = None

    def service(self, name: str, kind: type[S]) -> S:
        """The running service ``name``, or ``unavailable`` when it is not configured."""
        svc = self.services.get(name)
        if svc is None:
            raise Unavailable(f"{name} are not configured on this daemon")
        if not isinstance(svc, kind):
            raise AssertionError(f"service {name} is a {type(svc).__name__}")
        return svc


P = TypeVar("P", bound=Params)
Handler = Callable[[ApiContext, Actor, Any, int | None], Awaitable[Result | dict[str, Any]]]
# For atomic batches: params -> (new state, the window concerned or None).
EditFn = Callable[[ApiContext, Any, WallState, EditContext], tuple[WallState, Window | None]]
# A wall edit begun without waiting (Method.begin): its answer once durable, and what
# WallService.finish_change takes (None when nothing changed: the answer stands).
Begun = tuple[Callable[[WallState], dict[str, Any]], WallState, PendingChange | None]
BeginFn = Callable[[ApiContext, Actor, Any, int | None], Begun]


@dataclass(frozen=True)
class Method(Generic[P]):
    name: str
    summary: str
    scope: str
    params: type[P]
    result: type[Result]
    handler: Handler
    edit: EditFn | None = None
    # Wall edits: the handler's work up to the store, without waiting (the API session
    # answers from a callback once the revision is durable; see Session._edit_now).
    begin: BeginFn | None = None

    @functools.cached_property
    def role(self) -> str:
        # Cached: asked on every request, and a method's scope never changes.
        for role in ("viewer", "operator", "admin"):
            if self.scope in ROLE_SCOPES[role]:
                return role
        raise AssertionError(f"scope {self.scope} belongs to no role")

    def parse(self, params: dict[str, Any], prefix: str = "params") -> P:
        try:
            return self.params.model_validate(params)
        except ValidationError as e:
            raise invalid_field(e, prefix) from None


METHODS: dict[str, Method[Any]] = {}

# Modules of later capabilities whose methods register on import (with ``method``).
# Each capability adds its module here; the server and the spec generator load them.
EXTENSIONS: list[str] = [
    "wallctl.api.sessions",
    "wallctl.console.api",
    "wallctl.mqtt.methods",
    "wallctl.render.render_api",
    "wallctl.render.api",
    "wallctl.devices.api",
    "wallctl.conference.api",
    "wallctl.cameras.api",
    "wallctl.recordings.api",
    "wallctl.terminals.api",
]


def load_extensions() -> None:
    for name in EXTENSIONS:
        importlib.import_module(name)


def method(
    name: str,
    summary: str,
    scope: str,
    params: type[Params],
    result: type[Result],
    *,
    edit: EditFn | None = None,
) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        METHODS[name] = Method(name, summary, scope, params, result, handler, edit)
        return handler

    return register


# --- walls and windows ------------------------------------------------------------------


def _wall_edit(name: str, summary: str, params: type[Params], edit: EditFn) -> None:
    """Register a wall edit: one revision, answered with the revision and the window."""

    def begin(ctx: ApiContext, actor: Actor, p: Any, if_revision: int | None) -> Begun:
        box: list[Window | None] = [None]

        def run(state: WallState, ectx: EditContext) -> WallState:
            new, box[0] = edit(ctx, p, state, ectx)
            return new

        # The params are flat JSON values already: cheaper than model_dump on the hot path.
        detail = {k: v for k, v in p.__dict__.items() if v is not None}
        new, pending = ctx.walls.begin_change(
            p.wall, actor, name, run, if_revision=if_revision, detail=detail
        )
        # The edit's own window: the change only numbered the state it made (or, when
        # nothing changed, kept an equal one).
        win = box[0]

        def answer(state: WallState) -> dict[str, Any]:
            # Shaped as `Change` (the spec's result model), built directly for speed.
            return {
                "wall": state.wall,
                "revision": state.revision,
                "window": None if win is None else window_data(win),
            }

        return answer, new, pending

    async def handler(
        ctx: ApiContext, actor: Actor, p: Any, if_revision: int | None
    ) -> Result | dict[str, Any]:
        answer, new, pending = begin(ctx, actor, p, if_revision)
        if pending is not None:
            new = await ctx.walls.completed(pending)
        return answer(new)

    METHODS[name] = Method(
        name,
        summary,
        "windows" if name.startswith("window.") else "layouts",
        params,
        Change,
        handler,
        edit,
        begin,
    )


def _same(state: WallState, window: str) -> Window | None:
    return state.window(window)


def _open(ctx: ApiContext, p: OpenParams, s: WallState, c: EditContext) -> tuple[WallState, Window]:
    return edits.open_window(
        s,
        c,
        x=p.x,
        y=p.y,
        w=p.w,
        h=p.h,
        source=p.source,
        label=p.label,
        z=p.z,
        fit=p.fit,
        snap=p.snap,
    )


def _move(
    ctx: ApiContext, p: MoveParams, s: WallState, c: EditContext
) -> tuple[WallState, Window | None]:
    return edits.move_window(s, c, p.window, p.x, p.y, p.snap)


def _resize(
    ctx: ApiContext, p: ResizeParams, s: WallState, c: EditContext
) -> tuple[WallState, Window | None]:
    new = edits.resize(s, c, p.window, p.w, p.h, p.x, p.y, p.snap)
    return new, _same(new, p.window)


def _close(
    ctx: ApiContext, p: WindowParams, s: WallState, c: EditContext
) -> tuple[WallState, Window | None]:
    return edits.close(s, p.window), None


def _swap(
    ctx: ApiContext, p: SwapParams, s: WallState, c: EditContext
) -> tuple[WallState, Window | None]:
    return edits.swap(s, p.a, p.b), None


def _raise(
    ctx: ApiContext, p: WindowParams, s: WallState, c: EditContext
) -> tuple[WallState, Window | None]:
    new = edits.raise_window(s, p.window)
    return new, _same(new, p.window)


def _fullscreen(
    ctx: ApiContext, p: FullscreenParams, s: WallState, c: EditContext
) -> tuple[WallState, Window | None]:
    new = edits.fullscreen(s, c, p.window, p.on, p.target)
    return new, _same(new, p.window)


def _set_source(
    ctx: ApiContext, p: SetSourceParams, s: WallState, c: EditContext
) -> tuple[WallState, Window | None]:
    new = edits.set_source(s, c, p.window, p.source)
    return new, _same(new, p.window)


def _apply(
    ctx: ApiContext, p: LayoutApplyParams, s: WallState, c: EditContext
) -> tuple[WallState, Window | None]:
    # The same template-or-preset lookup WallService.apply_layout uses, as a pure edit.
    return ctx.walls.layout_edit(s, c, p.name, p.sources), None


_wall_edit("window.open", "Open a window on the canvas; answers its id.", OpenParams, _open)
_wall_edit("window.move", "Move a window (top-left corner, canvas pixels).", MoveParams, _move)
_wall_edit("window.resize", "Resize (and optionally move) a window.", ResizeParams, _resize)
_wall_edit("window.close", "Close a window.", WindowParams, _close)
_wall_edit("window.swap", "Exchange the places of two windows.", SwapParams, _swap)
_wall_edit("window.raise", "Bring a window to the top.", WindowParams, _raise)
_wall_edit(
    "window.fullscreen",
    "Send a window to the whole wall or its tiles, and back.",
    FullscreenParams,
    _fullscreen,
)
_wall_edit(
    "window.set_source", "Show a source in a window (null: none).", SetSourceParams, _set_source
)
_wall_edit(
    "layout.apply",
    "Replace the windows with a layout template or a saved preset.",
    LayoutApplyParams,
    _apply,
)


@method("wall.list", "The walls of this centre and their geometry.", "read", NoParams, WallList)
async def _wall_list(ctx: ApiContext, actor: Actor, p: NoParams, rev: int | None) -> Result:
    return WallList(
        walls=[w.describe() for w in ctx.walls.walls.values()], main=ctx.walls.main_wall
    )


@method("wall.get", "One wall: its geometry and its current state.", "read", WallParams, WallInfo)
async def _wall_get(ctx: ApiContext, actor: Actor, p: WallParams, rev: int | None) -> Result:
    wid = ctx.walls.resolve_wall(p.wall)
    return WallInfo(wall=ctx.walls.walls[wid].describe(), state=ctx.walls.state(wid))


@method(
    "layout.list", "Layout templates and the wall's saved presets.", "read", WallParams, LayoutList
)
async def _layout_list(ctx: ApiContext, actor: Actor, p: WallParams, rev: int | None) -> Result:
    presets = [
        PresetInfo(name=x.name, ts=x.ts, actor=x.actor, windows=len(x.windows))
        for x in ctx.walls.presets(p.wall)
    ]
    templates = [t.describe() for _, t in sorted(ctx.walls.templates.items())]
    return LayoutList(templates=templates, presets=presets)


@method(
    "layout.save",
    "Save the wall's windows as a named preset.",
    "layouts",
    LayoutNameParams,
    PresetInfo,
)
async def _layout_save(
    ctx: ApiContext, actor: Actor, p: LayoutNameParams, rev: int | None
) -> Result:
    preset = await ctx.walls.save_preset(p.wall, actor, p.name)
    ctx.publish("layout", "layout.saved", preset.wall, actor, {"name": preset.name})
    return PresetInfo(
        name=preset.name, ts=preset.ts, actor=preset.actor, windows=len(preset.windows)
    )


@method("layout.delete", "Delete a saved preset.", "layouts", LayoutNameParams, Done)
async def _layout_delete(
    ctx: ApiContext, actor: Actor, p: LayoutNameParams, rev: int | None
) -> Result:
    wid = ctx.walls.resolve_wall(p.wall)
    await ctx.walls.delete_preset(wid, actor, p.name)
    ctx.publish("layout", "layout.deleted", wid, actor, {"name": p.name})
    return Done()


# --- sources, history -------------------------------------------------------------------


def _source_info(ctx: ApiContext, sid: str) -> SourceInfo:
    s = ctx.walls.sources[sid]
    from wallctl.terminals.identities import whep_path_of  # mobile terminals' WHEP
    from wallctl.terminals.sources import public_url_of, publishing_of

    return SourceInfo(
        id=s.id,
        name=s.name,
        kind=s.kind,
        group=s.group,
        url=redact(s.url) if s.url else None,
        whep_path=whep_path_of(s.id, s.kind, s.url),
        whep_url=public_url_of(ctx.services, whep_path_of(s.id, s.kind, s.url)),
        publishing=publishing_of(ctx.services, s),
    )


@method(
    "source.list", "Every configured source (credentials masked).", "read", NoParams, SourceList
)
async def _source_list(ctx: ApiContext, actor: Actor, p: NoParams, rev: int | None) -> Result:
    return SourceList(sources=[_source_info(ctx, sid) for sid in ctx.walls.sources])


@method("source.get", "One source.", "read", SourceParams, SourceInfo)
async def _source_get(ctx: ApiContext, actor: Actor, p: SourceParams, rev: int | None) -> Result:
    if p.source not in ctx.walls.sources:
        raise NotFound(f"no source {p.source!r}", field="params.source")
    return _source_info(ctx, p.source)


@method("state.history", "Past revisions of a wall, newest first.", "read", HistoryParams, History)
async def _history(ctx: ApiContext, actor: Actor, p: HistoryParams, rev: int | None) -> Result:
    wid = ctx.walls.resolve_wall(p.wall)
    rows = await asyncio.to_thread(
        ctx.store.history, wid, since=p.since, until=p.until, limit=p.limit
    )
    return History(
        wall=wid,
        revisions=[
            RevisionEntry(revision=r.revision, ts=r.ts, actor=r.actor, action=r.action)
            for r in rows
        ],
    )


@method(
    "state.restore",
    "Put back the windows of a past revision (by number or time).",
    "layouts",
    RestoreParams,
    Change,
)
async def _restore(ctx: ApiContext, actor: Actor, p: RestoreParams, rev: int | None) -> Result:
    new = await ctx.walls.restore(p.wall, actor, revision=p.revision, at=p.at, if_revision=rev)
    return Change(wall=new.wall, revision=new.revision)


# --- sessions (device methods live in wallctl.devices.api) --------------------------------


@method("session.list", "Connected API sessions.", "sessions", NoParams, SessionList)
async def _session_list(ctx: ApiContext, actor: Actor, p: NoParams, rev: int | None) -> Result:
    return SessionList(sessions=ctx.sessions())


# --- dispatch ----------------------------------------------------------------------------


def lookup(name: str, role: str, field_name: str = "method") -> Method[Any]:
    m = METHODS.get(name)
    if m is None:
        raise UnknownMethod(f"unknown method {name[:64]!r}", field=field_name)
    if not role_allows(role, m.role):
        raise NotPermitted(f"{name} needs the {m.role} role (you are {role})", field=field_name)
    return m


def prefixed(e: WallctlError) -> WallctlError:
    """The error with its field as a path from the message root (edits name bare params)."""
    if e.field is not None and not e.field.startswith(("params", "method", "if_revision")):
        e.field = f"params.{e.field}"
    return e


async def call(
    ctx: ApiContext,
    actor: Actor,
    role: str,
    name: str,
    params: dict[str, Any],
    if_revision: int | None,
) -> dict[str, Any]:
    """Run one request; the result as JSON data, or a WallctlError naming its field."""
    m = lookup(name, role)
    p = m.parse(params)
    try:
        result = await m.handler(ctx, actor, p, if_revision)
    except WallctlError as e:
        raise prefixed(e) from None
    return result if isinstance(result, dict) else result.model_dump(mode="json")


# --- batches -------------------------------------------------------------------------------


@dataclass
class BatchOutcome:
    ok: bool
    results: list[dict[str, Any]] = field(default_factory=list)
    error: WallctlError | None = None
    revision: int | None = None


_MISSING = object()


def _follow(results: dict[str | int, Any], ref: str, where: str) -> Any:
    head, _, path = ref.partition(".")
    key: str | int = head
    if head not in results and head.isdigit() and int(head) in results:
        key = int(head)
    if key not in results:
        raise InvalidField(f"$ref {ref!r} names no earlier request of the batch", field=where)
    value: Any = results[key]
    for part in path.split(".") if path else []:
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            raise InvalidField(f"$ref {ref!r}: the result has no {part!r}", field=where)
    return value


def resolve_refs(value: Any, results: dict[str | int, Any], where: str) -> Any:
    """Replace ``{"$ref": "id.path"}`` values by what an earlier result holds there."""
    if isinstance(value, dict):
        if len(value) == 1 and "$ref" in value:
            ref = value["$ref"]
            if not isinstance(ref, str) or not ref:
                raise InvalidField("$ref must be a string 'id.path'", field=where)
            return _follow(results, ref, where)
        return {k: resolve_refs(v, results, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_refs(v, results, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def _entry(
    item: BatchItem, result: Any = None, error: WallctlError | None = None
) -> dict[str, Any]:
    if error is None:
        return {"id": item.id, "ok": True, "result": result}
    return {"id": item.id, "ok": False, "error": error.to_dict()}


def _aborted(item: BatchItem, why: str) -> dict[str, Any]:
    return _entry(item, error=Aborted(why))


async def run_ordered(
    ctx: ApiContext, actor: Actor, role: str, items: Sequence[BatchItem]
) -> BatchOutcome:
    out = BatchOutcome(ok=True)
    done: dict[str | int, Any] = {}
    for i, item in enumerate(items):
        where = f"requests[{i}]"
        try:
            params = resolve_refs(item.params, done, f"{where}.params")
            m = lookup(item.method, role, f"{where}.method")
            p = m.parse(params, f"{where}.params")
            answer = await m.handler(ctx, actor, p, item.if_revision)
            result = answer if isinstance(answer, dict) else answer.model_dump(mode="json")
        except WallctlError as e:
            err = _in_batch(e, where)
            out.ok, out.error = False, err
            out.results.append(_entry(item, error=err))
            failed = item.id
            out.results += [
                _aborted(x, f"request {failed!r} of the batch failed") for x in items[i + 1 :]
            ]
            return out
        done[item.id] = result
        out.results.append(_entry(item, result))
    return out


def _in_batch(e: WallctlError, where: str) -> WallctlError:
    if e.field is None:
        e.field = where
    elif not e.field.startswith("requests["):
        f = (
            e.field
            if e.field.startswith(("params", "method", "if_revision"))
            else f"params.{e.field}"
        )
        e.field = f"{where}.{f}"
    return e


async def run_atomic(
    ctx: ApiContext, actor: Actor, role: str, items: Sequence[BatchItem], if_revision: int | None
) -> BatchOutcome:
    """All the wall edits of one wall as one revision, or none of them."""
    methods: list[Method[Any]] = []
    wall_ids: set[str] = set()
    try:
        for i, item in enumerate(items):
            where = f"requests[{i}]"
            m = lookup(item.method, role, f"{where}.method")
            if m.edit is None:
                raise InvalidField(
                    f"{item.method} cannot be part of an atomic batch (only wall "
                    "edits: window.*, layout.apply)",
                    field=f"{where}.method",
                )
            if item.if_revision is not None:
                raise InvalidField(
                    "in an atomic batch give if_revision on the batch", field=f"{where}.if_revision"
                )
            wall = item.params.get("wall")
            wall_ids.add(ctx.walls.resolve_wall(wall if isinstance(wall, str) else None))
            if len(wall_ids) > 1:
                raise InvalidField("an atomic batch changes one wall", field=f"{where}.params.wall")
            methods.append(m)
        wid = wall_ids.pop()
    except WallctlError as e:
        return _atomic_failure(items, e)

    results: list[Any] = []
    failed: list[int] = []

    def run(state: WallState, ectx: EditContext) -> WallState:
        done: dict[str | int, Any] = {}
        results.clear()
        for i, (item, m) in enumerate(zip(items, methods, strict=True)):
            failed[:] = [i]
            where = f"requests[{i}]"
            params = resolve_refs(item.params, done, f"{where}.params")
            p = m.parse(params, f"{where}.params")
            assert m.edit is not None
            try:
                state, win = m.edit(ctx, p, state, ectx)
            except WallctlError as e:
                raise _in_batch(e, where) from None
            res = {"wall": wid, "window": win.model_dump(mode="json") if win else None}
            done[item.id] = res
            results.append(res)
        failed.clear()
        return state

    detail = {"batch": [{"method": x.method, **x.params} for x in items]}
    try:
        new = await ctx.walls.change(
            wid, actor, "batch", run, if_revision=if_revision, detail=detail
        )
    except WallctlError as e:
        return _atomic_failure(items, e, failed[0] if failed else None)
    out = BatchOutcome(ok=True, revision=new.revision)
    for item, res in zip(items, results, strict=True):
        res["revision"] = new.revision
        out.results.append(_entry(item, res))
    return out


def _atomic_failure(
    items: Sequence[BatchItem], e: WallctlError, at: int | None = None
) -> BatchOutcome:
    if at is None and e.field and e.field.startswith("requests["):
        at = int(e.field[len("requests[") :].split("]", 1)[0])
    out = BatchOutcome(ok=False, error=e)
    for i, item in enumerate(items):
        if i == at:
            out.results.append(_entry(item, error=e))
        else:
            out.results.append(_aborted(item, "the atomic batch was not applied"))
    return out
