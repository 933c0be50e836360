"""Conference calls between centres, from "call 南浔区" to the far end on the wall.

One :class:`Link` per configured codec (``[[conference.codecs]]``): two codecs give two
simultaneous calls, typically one to the level above and one to a level below. A call
runs through fixed steps, each announced on the bus (category ``conference``):

    codec chosen -> dialling -> ringing -> connected -> routed (matrix) -> window opened

and ends with ``conference.result`` (ok, or the reason: busy, unreachable, rejected,
no_answer, timeout, codec_offline, failed) and later ``conference.ended`` (the reason:
local_hangup, remote_hangup, codec_offline ...). A call that drops while on the wall
leaves its window as a slate ("会议中断：南浔区指挥中心") instead of a frozen picture.

The codecs are devices of the device service (their drivers' state: ``calls``,
``last_disconnect``); the service listens to their ``device.state`` events on the bus
and always re-reads the driver's current state, so the order in which a codec reports
a call's steps (or a dial answer overtaken by the call's first status) does not matter.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from drivers.contract import Driver, DriverStatus
from drivers.errors import DeviceRejected, DriverError
from wallctl import edits
from wallctl.bus import BusEvent
from wallctl.conference.config import (
    CentreConfig,
    CodecLinkConfig,
    ConferenceConfig,
    conference_problems,
)
from wallctl.devices.service import driver_error
from wallctl.errors import (
    Conflict,
    DeviceNotReady,
    InvalidField,
    NotFound,
    WallctlError,
)
from wallctl.logs import get_logger
from wallctl.store import SYSTEM, Actor
from wallctl.wallstate import WallState, Window

if TYPE_CHECKING:
    from wallctl.config import Config
    from wallctl.devices.service import DeviceService
    from wallctl.walls import WallService

log = get_logger("wallctl.conference")

ACTIVE = ("dialling", "ringing", "connected", "ending")
# How long a call may be gone from the codec's list before it counts as ended without a
# reason (the codec's disconnect event normally comes first or right after).
END_GRACE_S = 1.0
REASON_TEXT = {
    "busy": "对方忙",
    "unreachable": "无法接通",
    "rejected": "对方拒绝",
    "no_answer": "无人应答",
    "remote_hangup": "对方挂断",
    "local_hangup": "本端挂断",
    "timeout": "呼叫超时",
    "codec_offline": "终端离线",
    "failed": "呼叫失败",
}

Publish = Callable[[str, str, dict[str, Any], Actor], None]


@dataclass
class Link:
    index: int
    cfg: CodecLinkConfig
    state: str = "idle"
    centre: CentreConfig | None = None
    number: str = ""
    call_id: int | None = None
    window: str | None = None
    wall: str | None = None
    actor: Actor = SYSTEM
    started: float = 0.0
    connected_at: float | None = None
    on_wall: bool = False
    # The codec has listed this call at least once.
    seen: bool = False
    # The id of a call ringing in on this (idle) link.
    incoming: int | None = None
    result: dict[str, Any] | None = None
    last: dict[str, Any] | None = None
    sharing: str | None = None
    # The driver's last_disconnect when this call began: anything else is about it.
    stale_disconnect: Any = None
    waiters: list[asyncio.Future[dict[str, Any]]] = field(default_factory=list)
    enders: list[asyncio.Future[dict[str, Any]]] = field(default_factory=list)
    timer: asyncio.TimerHandle | None = None
    grace: asyncio.TimerHandle | None = None

    @property
    def id(self) -> str:
        return self.cfg.id

    @property
    def target(self) -> str:
        return self.centre.name if self.centre is not None else self.number


class ConferenceService:
    def __init__(
        self,
        config: ConferenceConfig,
        devices: DeviceService | None,
        walls: WallService,
        publish: Publish | None = None,
    ) -> None:
        self.config = config
        self.devices = devices
        self.walls = walls
        self.publish: Publish = publish or (lambda category, type_, data, actor: None)
        self.links: dict[str, Link] = {c.id: Link(i, c) for i, c in enumerate(config.codecs)}
        self.centres: dict[str, CentreConfig] = {c.id: c for c in config.centres}
        self._by_device = {c.device: c.id for c in config.codecs}
        self.problems: list[str] = []
        # (link, "connected" or the reason) -> calls, for /metrics.
        self.outcomes: dict[tuple[str, str], int] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    # --- set-up ----------------------------------------------------------------------------

    def check_references(self, config: Config) -> list[str]:
        """Problems with what the section names elsewhere (devices, sources, walls), and
        codecs configured but not running (their device failed to start)."""
        problems = [str(p) for p in conference_problems(config)]
        configured = {d.id for d in config.devices}
        for i, c in enumerate(self.config.codecs):
            running = self.devices is not None and c.device in self.devices.devices
            if c.device in configured and not running:
                problems.append(
                    f"conference.codecs[{i}].device: {c.device!r} did not start (see devices)"
                )
        self.problems = problems
        return problems

    def driver(self, link: Link) -> Driver | None:
        if self.devices is None:
            return None
        dev = self.devices.devices.get(link.cfg.device)
        return dev.driver if dev is not None else None

    # --- events in ---------------------------------------------------------------------------

    def on_bus(self, event: BusEvent) -> None:
        if event.category != "device":
            return
        lid = self._by_device.get(str(event.data.get("device")))
        if lid is None:
            return
        link = self.links[lid]
        if event.type == "device.status":
            if event.data.get("status") != DriverStatus.OK.value and link.state in ACTIVE:
                self._ended(link, "codec_offline", {"detail": event.data.get("detail", "")})
            return
        if event.type == "device.state" and event.data.get("key") in ("calls", "last_disconnect"):
            self._evaluate(link)
            if link.state == "idle" and event.data.get("key") == "calls":
                self._incoming(link)

    # --- incoming calls ------------------------------------------------------------------------

    def centre_for(self, number: str) -> CentreConfig | None:
        """The directory entry one of whose dial strings is ``number`` (scheme-insensitive)."""

        def bare(n: str) -> str:
            n = n.strip().lower()
            for scheme in ("sip:", "h323:", "tel:"):
                n = n.removeprefix(scheme)
            return n

        want = bare(number)
        for centre in self.config.centres:
            if any(bare(d) == want for _, d in centre.dial_strings()):
                return centre
        return None

    def _incoming(self, link: Link) -> None:
        drv = self.driver(link)
        calls = (drv.state.get("calls") or []) if drv is not None else []
        ringing = [
            c for c in calls if c.get("direction") == "Incoming" and c.get("status") == "ringing"
        ]
        if not ringing:
            link.incoming = None
            return
        call = ringing[0]
        if link.incoming == call.get("id"):
            return
        link.incoming = call.get("id")
        remote = str(call.get("remote_number") or "")
        centre = self.centre_for(remote)
        self.publish(
            "conference",
            "conference.incoming",
            {
                "link": link.id,
                "codec": link.cfg.device,
                "call_id": link.incoming,
                "remote": remote,
                "centre": centre.id if centre else None,
                "centre_name": centre.name if centre else remote,
                "auto_answer": link.cfg.auto_answer,
            },
            SYSTEM,
        )
        if link.cfg.auto_answer:
            self._spawn(self._answer_quietly(link.id))

    async def _answer_quietly(self, link_id: str) -> None:
        try:
            await self.accept(link_id)
        except WallctlError as e:
            log.error("auto-answer failed", link=link_id, error=e.message)

    async def accept(self, link_id: str | None, actor: Actor = SYSTEM) -> dict[str, Any]:
        """Answer the call ringing on a link; once connected it goes to the wall."""
        if link_id is None:
            ringing = [lk for lk in self.links.values() if lk.incoming is not None]
            if len(ringing) != 1:
                raise InvalidField(
                    "name the link to answer: "
                    + (f"{len(ringing)} links ring" if ringing else "no call is ringing"),
                    field="params.link",
                )
            link = ringing[0]
        else:
            link = self._link(link_id, "params.link")
        call_id = link.incoming
        if call_id is None or link.state != "idle":
            raise NotFound(f"no incoming call rings on link {link.id}", field="params.link")
        drv = self.driver(link)
        assert drv is not None
        call: dict[str, Any] = next(
            (c for c in drv.state.get("calls") or [] if c.get("id") == call_id), {}
        )
        remote = str(call.get("remote_number") or "")
        link.state, link.centre, link.number = "ringing", self.centre_for(remote), remote
        link.call_id, link.result, link.actor = call_id, None, actor
        link.started, link.connected_at, link.seen = time.time(), None, True
        link.stale_disconnect = drv.state.get("last_disconnect")
        link.incoming = None
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        link.waiters.append(waiter)
        self._progress(link, "answering", number=remote)
        try:
            await drv.call("accept", {"call_id": call_id})
        except DriverError as e:
            link.state = "idle"
            self._finish(link, False, "failed", detail=e.message)
            raise driver_error(e, link.cfg.device) from None
        self._evaluate(link)
        try:
            # asyncio.timeout, not wait_for: 3.11's wait_for drops a cancellation that
            # lands as the outcome does. shield: other callers share this waiter.
            async with asyncio.timeout(self.config.connect_timeout_s):
                return await asyncio.shield(waiter)
        except TimeoutError:
            return {**self._base(link), "state": link.state, "number": remote}

    def _evaluate(self, link: Link) -> None:
        if link.state not in ACTIVE or link.call_id is None:
            return
        drv = self.driver(link)
        if drv is None:
            return
        last = drv.state.get("last_disconnect")
        if (
            last is not link.stale_disconnect
            and isinstance(last, dict)
            and last.get("call_id") == link.call_id
        ):
            self._ended(link, str(last.get("reason") or "failed"), last)
            return
        call = next((c for c in drv.state.get("calls") or [] if c.get("id") == link.call_id), None)
        if call is None:
            # A polling codec may not list a call it has just placed: only a call seen
            # before can be gone (the connect timeout covers one never seen).
            if link.seen and link.grace is None:
                link.grace = asyncio.get_running_loop().call_later(
                    END_GRACE_S, self._gone, link, link.call_id
                )
            return
        link.seen = True
        if link.grace is not None:
            link.grace.cancel()
            link.grace = None
        status = call.get("status")
        if status == "ringing" and link.state == "dialling":
            link.state = "ringing"
            self._progress(link, "ringing")
        elif status == "connected" and link.state in ("dialling", "ringing"):
            link.state = "connected"
            link.connected_at = time.time()
            self._progress(link, "connected", call_rate=call.get("call_rate"))
            self._spawn(self._bring_to_wall(link))

    def _gone(self, link: Link, call_id: int) -> None:
        link.grace = None
        if link.call_id == call_id and link.state in ACTIVE:
            self._ended(link, "local_hangup" if link.state == "ending" else "failed", {})

    # --- publishing --------------------------------------------------------------------------

    def _base(self, link: Link) -> dict[str, Any]:
        return {
            "link": link.id,
            "codec": link.cfg.device,
            "centre": link.centre.id if link.centre else None,
            "centre_name": link.target,
            "call_id": link.call_id,
        }

    def _progress(self, link: Link, step: str, **detail: Any) -> None:
        data = {**self._base(link), "step": step, "state": link.state, **detail}
        log.info("conference step", link=link.id, step=step, target=link.target)
        self.publish("conference", "conference.progress", data, link.actor)

    def _finish(self, link: Link, ok: bool, reason: str | None, **detail: Any) -> dict[str, Any]:
        """The call's outcome (connected and on the wall, or why not); wakes waiters."""
        result = {
            **self._base(link),
            "ok": ok,
            "reason": reason,
            "reason_text": REASON_TEXT.get(reason or "", reason),
            "state": link.state,
            "window": link.window,
            "wall": link.wall,
            **detail,
        }
        link.result = result
        key = (link.id, "connected" if ok else str(reason))
        self.outcomes[key] = self.outcomes.get(key, 0) + 1
        self.publish("conference", "conference.result", result, link.actor)
        for fut in link.waiters:
            if not fut.done():
                fut.set_result(result)
        link.waiters.clear()
        return result

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- the wall ------------------------------------------------------------------------------

    async def _bring_to_wall(self, link: Link) -> None:
        cfg = link.cfg
        if cfg.matrix is not None and self.devices is not None:
            assert cfg.matrix_input is not None and cfg.wall_output is not None
            try:
                report = await self.devices.salvo(
                    cfg.matrix, [(cfg.matrix_input, cfg.wall_output, "av")], link.actor
                )
            except WallctlError as e:
                self._progress(link, "route_failed", error=e.message)
                self._finish(link, False, "route_failed", detail=e.message)
                return
            if not report.get("ok"):
                self._progress(link, "route_failed", ties=report.get("ties"))
                self._finish(link, False, "route_failed", ties=report.get("ties"))
                return
            self._progress(link, "routed", matrix=cfg.matrix, ties=report.get("ties"))
        if link.state != "connected":
            return  # it ended while the matrix switched
        try:
            await self._open_window(link)
        except WallctlError as e:
            self._progress(link, "window_failed", error=e.message)
            self._finish(link, False, "window_failed", detail=e.message)
            return
        if link.state != "connected":
            # It ended while the window opened: show that, as for any drop.
            reason = (link.last or {}).get("reason") or "failed"
            await self._leave_wall(link, reason != "local_hangup", str(reason))
            return
        link.on_wall = True
        self._progress(link, "window_opened", window=link.window, wall=link.wall)
        self._finish(link, True, None)

    async def _open_window(self, link: Link) -> None:
        wall_id = self.walls.resolve_wall(link.cfg.wall)
        rect = self.config.window_for(link.index, link.cfg)
        label = link.target[:64]
        old = link.window if link.wall == wall_id else None
        opened: list[Window] = []

        def edit(state: WallState, ctx: edits.EditContext) -> WallState:
            if old is not None and state.window(old) is not None:
                state = edits.close(state, old)
            w, h = ctx.wall.width, ctx.wall.height
            new, win = edits.open_window(
                state,
                ctx,
                x=int(rect.x * w),
                y=int(rect.y * h),
                w=max(edits.MIN_WINDOW_PX, int(rect.w * w)),
                h=max(edits.MIN_WINDOW_PX, int(rect.h * h)),
                source=link.cfg.source,
                label=label,
            )
            opened.append(win)
            return new

        await self.walls.change(
            wall_id, link.actor, "conference.open", edit, detail={"link": link.id}
        )
        link.wall = wall_id
        link.window = opened[-1].id if opened else None

    async def _leave_wall(self, link: Link, slate: bool, reason: str) -> None:
        """Close the far-end window, or turn it into a slate saying the call dropped."""
        if link.window is None or link.wall is None:
            return
        window = link.window
        text = f"{self.config.slate_label}：{link.target}（{REASON_TEXT.get(reason, reason)}）"

        def edit(state: WallState, ctx: edits.EditContext) -> WallState:
            if state.window(window) is None:
                return state
            if not slate:
                return edits.close(state, window)
            state = edits.set_source(state, ctx, window, None)
            return edits.set_label(state, window, text[:64])

        try:
            await self.walls.change(
                link.wall,
                SYSTEM,
                "conference.slate" if slate else "conference.close",
                edit,
                detail={"link": link.id, "reason": reason},
            )
        except WallctlError as e:
            log.error("conference window not updated", link=link.id, error=e.message)
        if not slate:
            link.window = None

    # --- ending --------------------------------------------------------------------------------

    def _ended(self, link: Link, reason: str, detail: dict[str, Any]) -> None:
        if link.state not in ACTIVE:
            return
        connected_at = link.connected_at
        was_connected = connected_at is not None
        for handle in (link.timer, link.grace):
            if handle is not None:
                handle.cancel()
        link.timer = link.grace = None
        previous = link.state
        link.state = "idle"
        ended = {
            **self._base(link),
            "reason": reason,
            "reason_text": REASON_TEXT.get(reason, reason),
            "connected": was_connected,
            "duration_s": round(time.time() - connected_at, 1) if connected_at else 0.0,
            "code": detail.get("code"),
            "text": detail.get("text") or detail.get("detail") or "",
        }
        log.info("conference ended", link=link.id, target=link.target, reason=reason)
        if link.result is None:
            # Ended before it reached the wall: that is the call's outcome.
            self._finish(link, False, reason, code=detail.get("code"), was=previous)
        self.publish("conference", "conference.ended", ended, link.actor)
        link.last = ended
        for fut in link.enders:
            if not fut.done():
                fut.set_result(ended)
        link.enders.clear()
        link.sharing = None
        if link.on_wall:
            link.on_wall = False
            slate = reason != "local_hangup"
            self._spawn(self._leave_wall(link, slate, reason))

    def _timed_out(self, link: Link, call_id: int | None) -> None:
        link.timer = None
        if link.call_id != call_id or link.state not in ("dialling", "ringing"):
            return
        self._spawn(self._hang_up_quietly(link))
        self._ended(link, "timeout", {})

    async def _hang_up_quietly(self, link: Link) -> None:
        drv = self.driver(link)
        if drv is None or link.call_id is None:
            return
        with contextlib.suppress(DriverError):
            await drv.call("disconnect", {"call_id": link.call_id})

    # --- operations ------------------------------------------------------------------------------

    def _link(self, link_id: str, field_path: str) -> Link:
        link = self.links.get(link_id)
        if link is None:
            known = ", ".join(self.links) or "none"
            raise NotFound(
                f"no conference link {link_id[:64]!r} (links: {known})", field=field_path
            )
        return link

    def _ready(self, link: Link) -> bool:
        drv = self.driver(link)
        return drv is not None and drv.status is DriverStatus.OK

    def _busy(self, link: Link) -> bool:
        drv = self.driver(link)
        calls = drv.state.get("calls") if drv is not None else None
        return link.state in ACTIVE or bool(calls)

    def choose(self, centre: CentreConfig | None, codec: str | None) -> Link:
        if codec is not None:
            link = self._link(codec, "params.codec")
            if self._busy(link):
                who = link.target or "another party"
                raise Conflict(
                    f"link {link.id} ({link.cfg.name}) is in a call with {who}",
                    field="params.codec",
                )
            if not self._ready(link):
                raise DeviceNotReady(f"link {link.id}: codec {link.cfg.device} is not connected")
            return link
        order = list(self.links.values())
        if centre is not None and centre.codec in self.links:
            order.sort(key=lambda lk: lk.id != centre.codec)
        for link in order:
            if not self._busy(link) and self._ready(link):
                return link
        if not order:
            raise DeviceNotReady("no conference codec is configured")
        busy = [lk for lk in order if self._busy(lk)]
        if len(busy) == len(order):
            who = "; ".join(f"{lk.id} with {lk.target or 'a call'} ({lk.state})" for lk in busy)
            raise Conflict(f"every conference codec is busy: {who}", field="params.centre")
        down = [lk.id for lk in order if not self._ready(lk)]
        raise DeviceNotReady(f"no free conference codec is connected (offline: {', '.join(down)})")

    async def call(
        self,
        *,
        centre_id: str | None = None,
        number: str | None = None,
        codec: str | None = None,
        actor: Actor = SYSTEM,
        wait: bool = False,
        timeout_s: float | None = None,
    ) -> dict[str, Any]:
        if (centre_id is None) == (number is None):
            raise InvalidField("give either centre or number", field="params.centre")
        centre = None
        if centre_id is not None:
            centre = self.centres.get(centre_id)
            if centre is None:
                raise NotFound(
                    f"no centre {centre_id[:64]!r} in the directory", field="params.centre"
                )
            active = [
                lk for lk in self.links.values() if lk.centre is centre and lk.state in ACTIVE
            ]
            if active:
                raise Conflict(
                    f"{centre.name} is already on link {active[0].id} ({active[0].state})",
                    field="params.centre",
                )
        link = self.choose(centre, codec)
        drv = self.driver(link)
        assert drv is not None
        dials = centre.dial_strings() if centre is not None else [("number", number or "")]
        link.state, link.centre, link.number = "dialling", centre, dials[0][1]
        link.call_id, link.result, link.actor = None, None, actor
        link.started, link.connected_at, link.seen = time.time(), None, False
        link.stale_disconnect = drv.state.get("last_disconnect")
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        link.waiters.append(waiter)
        self._progress(link, "codec_chosen", codec_name=link.cfg.name)
        rate = (centre.call_rate if centre else None) or link.cfg.call_rate
        last_error: WallctlError | None = None
        for i, (kind, dial) in enumerate(dials):
            link.number = dial
            args: dict[str, Any] = {"number": dial}
            if rate is not None:
                args["call_rate"] = rate
            self._progress(link, "dialling", number=dial, kind=kind)
            try:
                answer = await drv.call("dial", args)
            except DeviceRejected as e:
                # The codec refused this form (e.g. no H.323 gatekeeper): try the next.
                last_error = driver_error(e, link.cfg.device)
                self._progress(link, "dial_refused", number=dial, error=e.message)
                if i + 1 < len(dials):
                    continue
            except DriverError as e:
                last_error = driver_error(e, link.cfg.device, "params")
            else:
                last_error = None
                call_id = answer.get("call_id")
                link.call_id = call_id if isinstance(call_id, int) else None
                break
        if last_error is not None:
            link.state = "idle"
            self._finish(link, False, "failed", detail=last_error.message)
            raise last_error
        if link.call_id is None:
            # A codec that does not say which call it placed: the newest one is ours.
            calls = drv.state.get("calls") or []
            link.call_id = max((int(c["id"]) for c in calls), default=None)
        link.timer = asyncio.get_running_loop().call_later(
            self.config.connect_timeout_s, self._timed_out, link, link.call_id
        )
        self._evaluate(link)
        if wait:
            limit = timeout_s if timeout_s is not None else self.config.connect_timeout_s + 10
            try:
                async with asyncio.timeout(limit):
                    return await asyncio.shield(waiter)
            except TimeoutError:
                pass
        return {**self._base(link), "state": link.state, "number": link.number}

    async def hangup(
        self,
        *,
        link_id: str | None = None,
        centre_id: str | None = None,
        actor: Actor = SYSTEM,
        wait_s: float = 5.0,
    ) -> dict[str, Any]:
        if link_id is not None:
            link = self._link(link_id, "params.link")
        elif centre_id is not None:
            found = [
                lk
                for lk in self.links.values()
                if lk.centre is not None and lk.centre.id == centre_id and lk.state in ACTIVE
            ]
            if not found:
                raise NotFound(f"no call with centre {centre_id[:64]!r}", field="params.centre")
            link = found[0]
        else:
            active = [lk for lk in self.links.values() if lk.state in ACTIVE]
            if len(active) != 1:
                raise InvalidField(
                    "name the link (or centre) to hang up: "
                    + (f"{len(active)} calls are up" if active else "no call is up"),
                    field="params.link",
                )
            link = active[0]
        if link.state not in ACTIVE:
            raise NotFound(f"link {link.id} has no call", field="params.link")
        drv = self.driver(link)
        assert drv is not None
        ender: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        link.enders.append(ender)
        link.state = "ending"
        link.actor = actor
        self._progress(link, "hanging_up")
        args = {"call_id": link.call_id} if link.call_id is not None else {}
        try:
            await drv.call("disconnect", args)
        except DriverError as e:
            link.state = "connected" if link.connected_at else "dialling"
            raise driver_error(e, link.cfg.device) from None
        self._evaluate(link)
        try:
            async with asyncio.timeout(wait_s):
                return await asyncio.shield(ender)
        except TimeoutError:
            return {**self._base(link), "reason": None, "state": link.state}

    async def mute(self, link_id: str | None, on: bool, actor: Actor = SYSTEM) -> dict[str, Any]:
        link = self._one(link_id)
        drv = self.driver(link)
        if drv is None:
            raise DeviceNotReady(f"link {link.id}: codec {link.cfg.device} is not configured")
        await self._act(link, drv, "mute" if on else "unmute", {})
        self.publish("conference", "conference.mute", {**self._base(link), "muted": on}, actor)
        return {"link": link.id, "muted": on}

    async def share(
        self, source: str | None, link_id: str | None, actor: Actor = SYSTEM
    ) -> dict[str, Any]:
        """Send ``source`` as content on the link's call (``None``: stop sending)."""
        link = self._one(link_id)
        drv = self.driver(link)
        if drv is None:
            raise DeviceNotReady(f"link {link.id}: codec {link.cfg.device} is not configured")
        if source is None:
            await self._act(link, drv, "presentation_stop", {})
            link.sharing = None
            self.publish(
                "conference", "conference.share", {**self._base(link), "source": None}, actor
            )
            return {"link": link.id, "sharing": None}
        if link.state != "connected":
            raise InvalidField(
                f"link {link.id} has no connected call to share into", field="params.link"
            )
        port = self.config.share_inputs.get(source)
        if port is None:
            raise NotFound(
                f"source {source[:64]!r} cannot be shared (not in conference.share_inputs)",
                field="params.source",
            )
        cfg = link.cfg
        if cfg.matrix is not None and cfg.content_output is not None and self.devices is not None:
            report = await self.devices.salvo(cfg.matrix, [(port, cfg.content_output, "av")], actor)
            if not report.get("ok"):
                raise InvalidField(
                    f"the matrix refused the content route: {report.get('ties')}",
                    field="params.source",
                )
        await self._act(link, drv, "presentation_start", {"source": cfg.content_source})
        link.sharing = source
        self.publish(
            "conference", "conference.share", {**self._base(link), "source": source}, actor
        )
        return {"link": link.id, "sharing": source}

    def _one(self, link_id: str | None) -> Link:
        if link_id is not None:
            return self._link(link_id, "params.link")
        active = [lk for lk in self.links.values() if lk.state in ACTIVE]
        if len(active) == 1:
            return active[0]
        if len(self.links) == 1:
            return next(iter(self.links.values()))
        raise InvalidField(
            "name the link: " + (f"{len(active)} calls are up" if active else "no call is up"),
            field="params.link",
        )

    async def _act(self, link: Link, drv: Driver, action: str, args: dict[str, Any]) -> Any:
        try:
            return await drv.call(action, args)
        except DriverError as e:
            raise driver_error(e, link.cfg.device) from None

    def status(self) -> dict[str, Any]:
        links = []
        for link in self.links.values():
            drv = self.driver(link)
            links.append(
                {
                    "link": link.id,
                    "name": link.cfg.name,
                    "codec": link.cfg.device,
                    "codec_status": drv.status.value if drv else "unconfigured",
                    "state": link.state,
                    "centre": link.centre.id if link.centre and link.state in ACTIVE else None,
                    "centre_name": link.target if link.state in ACTIVE else None,
                    "number": link.number if link.state in ACTIVE else None,
                    "call_id": link.call_id if link.state in ACTIVE else None,
                    "since": link.started if link.state in ACTIVE else None,
                    "connected_at": link.connected_at if link.state in ACTIVE else None,
                    "window": link.window,
                    "wall": link.wall,
                    "muted": drv.state.get("microphones_muted") if drv else None,
                    "sharing": link.sharing,
                    "last_result": link.result,
                    "last_ended": link.last,
                }
            )
        return {"links": links, "problems": list(self.problems)}

    def directory(self) -> list[dict[str, Any]]:
        return [
            {
                "id": c.id,
                "name": c.name,
                "level": c.level,
                "parent": c.parent,
                "dial": [{"kind": k, "number": v} for k, v in c.dial_strings()],
                "codec": c.codec,
            }
            for c in self.config.centres
        ]

    async def stop(self) -> None:
        for link in self.links.values():
            for handle in (link.timer, link.grace):
                if handle is not None:
                    handle.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
