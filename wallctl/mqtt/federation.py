"""Federation of command centres through bridged brokers: policy, pending requests, peers.

A centre sends a command for centre P to ``<prefix>/P/fed/in/<self>``; P's broker gets it
only through the bridge from this centre's broker, which carries nothing else there, so
the topic's last level is the originating centre. P's policy decides per origin and
method: ``accept`` (run now), ``confirm`` (held until an operator at P confirms or
rejects it, or it expires), anything else is refused. The command runs as the person
who sent it, with ``via="federation"`` and the origin centre in the audit log, and the
role the policy gives that centre. The answer goes to ``<prefix>/<origin>/fed/reply/P``
with the request's correlation data: first ``status: done`` (the result or error), or
``status: pending`` followed by a ``done`` answer once someone decided.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from wallctl.api import methods
from wallctl.api.methods import ApiContext
from wallctl.api.protocol import DecodeError
from wallctl.api.server import TokenBucket
from wallctl.bus import EventBus
from wallctl.errors import (
    Aborted,
    InternalError,
    NotFound,
    NotPermitted,
    RateLimited,
    Unavailable,
    WallctlError,
)
from wallctl.logs import get_logger
from wallctl.mqtt import codec
from wallctl.mqtt.config import FederationConfig, PeerConfig
from wallctl.mqtt.topics import Topics
from wallctl.store import Actor, Store

log = get_logger("wallctl.mqtt.federation")

# Commands sent and still awaiting a decision at their peer, at most.
MAX_AWAITING = 1000

# Sends the payload to the topic with MQTT 5 correlation data (and response topic).
Publish = Callable[[str, bytes, bytes, str | None], Awaitable[None]]


def _error_classes() -> dict[str, type[WallctlError]]:
    out: dict[str, type[WallctlError]] = {}
    todo: list[type[WallctlError]] = [WallctlError]
    while todo:
        cls = todo.pop()
        out.setdefault(cls.code, cls)
        todo.extend(cls.__subclasses__())
    return out


def remote_error(centre: str, error: Any) -> WallctlError:
    """A peer's error as ours, same code, the message saying where it came from."""
    if not isinstance(error, dict):
        return InternalError(f"centre {centre} answered an unreadable error")
    cls = _error_classes().get(str(error.get("code")), InternalError)
    message = str(error.get("message", ""))[:500]
    field_ = error.get("field")
    return cls(f"centre {centre}: {message}", field=field_ if isinstance(field_, str) else None)


@dataclass
class Pending:
    id: str
    origin: str
    person: str
    method: str
    params: dict[str, Any]
    if_revision: int | None
    request_id: str | int
    correlation: bytes
    created: float
    expires: float
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "origin": self.origin,
            "person": self.person,
            "method": self.method,
            "params": self.params,
            "if_revision": self.if_revision,
            "created": self.created,
            "expires": self.expires,
        }


@dataclass
class PeerView:
    """What this centre knows of a watched peer, from its retained topics."""

    site: str
    online: bool | None = None
    name: str | None = None
    # The bridge to it, from mosquitto's notification topic (None: not reported).
    link: bool | None = None
    walls: dict[str, dict[str, Any]] = field(default_factory=dict)
    updated: float | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "site": self.site,
            "name": self.name,
            "online": self.online,
            "link": self.link,
            "updated": self.updated,
            "walls": [self.walls[w] for w in sorted(self.walls)],
        }


@dataclass
class _Awaiting:
    centre: str
    method: str
    actor: Actor
    first: asyncio.Future[dict[str, Any]]


class Federation:
    """The federation service (``rt.services["federation"]``) of one centre."""

    def __init__(
        self,
        config: FederationConfig,
        topics: Topics,
        ctx: ApiContext,
        store: Store,
        bus: EventBus,
        *,
        max_bytes: int,
        rate: Callable[[], tuple[float, int]] = lambda: (50.0, 100),
    ) -> None:
        self.config = config
        self.rate = rate
        self._buckets: dict[str, TokenBucket] = {}
        self.topics = topics
        self.ctx = ctx
        self.store = store
        self.bus = bus
        self.max_bytes = max_bytes
        self.pending: dict[str, Pending] = {}
        self.peers: dict[str, PeerView] = {
            site: PeerView(site) for site, p in config.peers.items() if p.watch
        }
        self._awaiting: dict[str, _Awaiting] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._publish: Publish | None = None
        self.counters: dict[str, int] = {}

    @property
    def site(self) -> str:
        return self.topics.site

    def attach(self, publish: Publish | None) -> None:
        """The connection's publish while connected; None while the broker is away."""
        self._publish = publish

    def _count(self, what: str) -> None:
        self.counters[what] = self.counters.get(what, 0) + 1

    def _event(self, type_: str, data: dict[str, Any], actor: Actor | None = None) -> None:
        if actor is None:
            self.bus.publish("federation", type_, data)
        else:
            self.bus.publish("federation", type_, data, actor=actor)

    # --- commands from other centres -----------------------------------------------------

    async def incoming(self, origin: str, payload: bytes, correlation: bytes) -> None:
        """A command from centre ``origin``: refuse, run, or hold it for confirmation."""
        reply_topic = self.topics.federation_reply_to(origin)
        peer = self.config.peers.get(origin)
        try:
            req = codec.decode_federated(payload, self.max_bytes)
        except DecodeError as e:
            self._count("malformed")
            await self._answer(
                reply_topic, correlation, codec.error_response(e.request_id, e.error)
            )
            return
        actor = Actor(req.person, via="federation", origin=origin, role=peer.role if peer else None)
        limited = self._limited(origin) if peer is not None else None
        if limited is not None:
            self._count("rate_limited")
            await self._answer(reply_topic, correlation, codec.error_response(req.id, limited))
            return
        verdict = self._verdict(peer, req.method)
        if verdict == "refuse":
            self._count("refused")
            err = NotPermitted(
                f"centre {self.site} does not take {req.method} from centre {origin}",
                field="method",
            )
            log.warning(
                "federation command refused", origin=origin, person=req.person, method=req.method
            )
            await self._audit(actor, req.method, "denied", {"params": req.params})
            self._event(
                "federation.refused",
                {"origin": origin, "person": req.person, "method": req.method},
                actor,
            )
            await self._answer(reply_topic, correlation, codec.error_response(req.id, err))
            return
        assert peer is not None
        if verdict == "accept":
            self._count("accepted")
            body = await self._run(actor, peer, req.method, req.params, req.if_revision, req.id)
            await self._answer(reply_topic, correlation, body)
            return
        if len(self.pending) >= self.config.max_pending:
            self._count("refused")
            err2: WallctlError = Unavailable(
                f"centre {self.site} already holds {len(self.pending)} commands for confirmation"
            )
            await self._answer(reply_topic, correlation, codec.error_response(req.id, err2))
            return
        now = time.time()
        p = Pending(
            id=secrets.token_hex(6),
            origin=origin,
            person=req.person,
            method=req.method,
            params=req.params,
            if_revision=req.if_revision,
            request_id=req.id,
            correlation=correlation,
            created=now,
            expires=now + self.config.confirm_timeout,
        )
        p.timer = asyncio.get_running_loop().call_later(
            self.config.confirm_timeout, self._expire, p.id
        )
        self.pending[p.id] = p
        self._count("pending")
        log.info(
            "federation command awaits confirmation",
            id=p.id,
            origin=origin,
            person=req.person,
            method=req.method,
        )
        await self._audit(actor, req.method, "pending", {"pending": p.id, "params": req.params})
        self._event("federation.pending", p.describe(), actor)
        await self._answer(
            reply_topic, correlation, codec.response(req.id, {"pending": p.id}), status="pending"
        )

    def _limited(self, origin: str) -> RateLimited | None:
        """Commands per origin centre, at the rate configured for accounts."""
        rate, burst = self.rate()
        bucket = self._buckets.setdefault(origin, TokenBucket(rate, burst))
        bucket.rate, bucket.burst = rate, float(burst)
        if bucket.take():
            return None
        return RateLimited(f"over {rate:g} commands/s (burst {burst}) from centre {origin}")

    def _verdict(self, peer: PeerConfig | None, method: str) -> str:
        if peer is None:
            return "refuse"
        if method in peer.accept:
            return "accept"
        if method in peer.confirm:
            return "confirm"
        return "refuse"

    async def _run(
        self,
        actor: Actor,
        peer: PeerConfig,
        method: str,
        params: dict[str, Any],
        if_revision: int | None,
        request_id: str | int,
    ) -> dict[str, Any]:
        try:
            result = await methods.call(self.ctx, actor, peer.role, method, params, if_revision)
        except WallctlError as e:
            if e.code == "not_permitted":
                await self._audit(actor, method, "denied", {})
            return codec.error_response(request_id, e)
        except Exception:
            log.exception("federation command failed", method=method, origin=actor.origin)
            return codec.error_response(
                request_id, InternalError("internal error; see the daemon's log")
            )
        return codec.response(request_id, result)

    async def _answer(
        self, topic: str, correlation: bytes, body: dict[str, Any], status: codec.FedStatus = "done"
    ) -> None:
        publish = self._publish
        if publish is None:
            log.warning("federation answer not sent: broker unreachable", topic=topic)
            return
        try:
            await publish(topic, codec.federated_answer(body, status), correlation, None)
        except Exception as e:
            log.warning("federation answer not sent", topic=topic, reason=str(e))

    async def _audit(self, actor: Actor, action: str, result: str, detail: dict[str, Any]) -> None:
        with contextlib.suppress(Exception):
            await self.store.audit(actor, action, result=result, detail=detail)

    # --- the local console's decisions -------------------------------------------------

    def list_pending(self) -> list[dict[str, Any]]:
        return [p.describe() for p in sorted(self.pending.values(), key=lambda p: p.created)]

    def _take(self, pid: str) -> Pending:
        p = self.pending.pop(pid, None)
        if p is None:
            raise NotFound(f"no pending federation command {pid!r}", field="params.id")
        if p.timer is not None:
            p.timer.cancel()
        return p

    async def confirm(self, pid: str, by: Actor) -> dict[str, Any]:
        p = self._take(pid)
        peer = self.config.peers.get(p.origin)
        actor = Actor(p.person, via="federation", origin=p.origin, role=peer.role if peer else None)
        if peer is None:
            # The policy changed (SIGHUP) while it waited: the centre is no peer any more.
            body = codec.error_response(
                p.request_id, NotPermitted(f"centre {p.origin} is no longer a federation peer")
            )
        else:
            body = await self._run(actor, peer, p.method, p.params, p.if_revision, p.request_id)
        await self._audit(
            by,
            "federation.confirm",
            "ok" if body["ok"] else "failed",
            {"pending": p.id, "origin": p.origin, "person": p.person, "method": p.method},
        )
        reply_topic = self.topics.federation_reply_to(p.origin)
        await self._answer(reply_topic, p.correlation, body)
        outcome = {"id": p.id, "origin": p.origin, "method": p.method, "ok": body["ok"]}
        outcome["result" if body["ok"] else "error"] = body.get("result", body.get("error"))
        self._event("federation.confirmed", {**outcome, "by": by.identity}, by)
        return outcome

    async def reject(self, pid: str, by: Actor, reason: str) -> dict[str, Any]:
        p = self._take(pid)
        why = f"rejected at centre {self.site} by {by.identity}" + (f": {reason}" if reason else "")
        await self._audit(
            by,
            "federation.reject",
            "ok",
            {
                "pending": p.id,
                "origin": p.origin,
                "person": p.person,
                "method": p.method,
                "reason": reason,
            },
        )
        reply_topic = self.topics.federation_reply_to(p.origin)
        await self._answer(
            reply_topic, p.correlation, codec.error_response(p.request_id, NotPermitted(why))
        )
        data = {
            "id": p.id,
            "origin": p.origin,
            "method": p.method,
            "by": by.identity,
            "reason": reason,
        }
        self._event("federation.rejected", data, by)
        return data

    def _expire(self, pid: str) -> None:
        p = self.pending.pop(pid, None)
        if p is None:
            return
        self._count("expired")
        log.warning("federation command expired unconfirmed", id=p.id, origin=p.origin)
        self._event("federation.expired", {"id": p.id, "origin": p.origin, "method": p.method})
        body = codec.error_response(
            p.request_id,
            Aborted(
                f"not confirmed at centre {self.site} within {self.config.confirm_timeout:g} s"
            ),
        )
        task = asyncio.get_running_loop().create_task(
            self._answer(self.topics.federation_reply_to(p.origin), p.correlation, body)
        )
        # The loop keeps only a weak reference to a task: hold it until it is done.
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def close(self) -> None:
        for p in self.pending.values():
            if p.timer is not None:
                p.timer.cancel()
        for a in self._awaiting.values():
            if not a.first.done():
                a.first.set_exception(Unavailable("the daemon is shutting down"))

    # --- commands to other centres -----------------------------------------------------

    async def send(
        self,
        actor: Actor,
        centre: str,
        method: str,
        params: dict[str, Any],
        if_revision: int | None,
    ) -> dict[str, Any]:
        peer = self.config.peers.get(centre)
        if peer is None:
            raise NotFound(f"centre {centre!r} is not a federation peer", field="params.centre")
        if method not in peer.send:
            raise NotPermitted(
                f"this centre's config does not allow sending {method} to centre {centre}",
                field="params.method",
            )
        publish = self._publish
        if publish is None:
            raise Unavailable("the MQTT broker is unreachable: nothing can reach other centres")
        rid = secrets.token_hex(8)
        while len(self._awaiting) >= MAX_AWAITING:
            # Pending commands whose decision never came (the peer restarted): forget the
            # oldest rather than grow without bound.
            self._awaiting.pop(next(iter(self._awaiting)))
        first: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._awaiting[rid] = _Awaiting(centre, method, actor, first)
        detail = {"centre": centre, "method": method, "params": params, "request": rid}
        try:
            await publish(
                self.topics.federation_to(centre),
                codec.encode_federated(rid, method, params, if_revision, actor.identity),
                rid.encode(),
                f"{self.topics.root}/fed/reply/{centre}",
            )
            async with asyncio.timeout(self.config.answer_timeout):
                answer = await first
        except TimeoutError:
            self._awaiting.pop(rid, None)
            await self._audit(actor, "federation.send", "failed", detail)
            raise Unavailable(
                f"no answer from centre {centre} within {self.config.answer_timeout:g} s "
                "(is the bridge up?)"
            ) from None
        except WallctlError:
            self._awaiting.pop(rid, None)
            raise
        except Exception as e:
            self._awaiting.pop(rid, None)
            raise Unavailable(f"could not send to centre {centre}: {e}") from None
        status = answer.get("status")
        if status != "pending":
            self._awaiting.pop(rid, None)
        if not answer["ok"]:
            await self._audit(actor, "federation.send", "denied", detail)
            raise remote_error(centre, answer.get("error"))
        await self._audit(actor, "federation.send", str(status), detail)
        out: dict[str, Any] = {"centre": centre, "request": rid, "status": status}
        if status == "pending":
            result = answer.get("result")
            out["pending"] = result.get("pending") if isinstance(result, dict) else None
        else:
            out["result"] = answer.get("result")
        return out

    def on_reply(self, peer: str, payload: bytes, correlation: bytes | None) -> None:
        """An answer from ``peer`` to a command this centre sent."""
        rid = (correlation or b"").decode("ascii", "replace")
        waiting = self._awaiting.get(rid)
        if waiting is None or waiting.centre != peer:
            self._count("stray_replies")
            return
        try:
            answer = codec.loads_reply(payload, self.max_bytes)
        except DecodeError as e:
            self._count("malformed")
            log.warning("unreadable federation answer", centre=peer, reason=e.error.message)
            return
        if not waiting.first.done():
            waiting.first.set_result(answer)
            return
        # The decision on a pending command, later: tell the sender's console.
        self._awaiting.pop(rid, None)
        data: dict[str, Any] = {
            "centre": peer,
            "request": rid,
            "method": waiting.method,
            "ok": answer["ok"],
        }
        data["result" if answer["ok"] else "error"] = answer.get(
            "result" if answer["ok"] else "error"
        )
        self._event("federation.outcome", data, waiting.actor)

    # --- what this centre sees of its peers ----------------------------------------------

    def on_peer_message(self, topic: str, payload: bytes) -> None:
        parsed = self.topics.peer_state(topic)
        if parsed is None:
            return
        site, kind, wall = parsed
        view = self.peers.get(site)
        if view is None:
            return
        if not payload:
            # A cleared retained message: the peer's state is no longer known.
            if kind == "state" and wall is not None:
                view.walls.pop(wall, None)
            return
        try:
            value = codec.parse_json_object(payload, self.max_bytes)
        except DecodeError:
            self._count("malformed")
            return
        view.updated = time.time()
        if kind == "online":
            was = view.online
            view.online = bool(value.get("online"))
            name = value.get("name")
            view.name = name if isinstance(name, str) else view.name
            if was != view.online:
                self._event("federation.peer", {"site": site, "online": view.online})
        elif wall is not None:
            state = value.get("state") if isinstance(value.get("state"), dict) else {}
            windows = state.get("windows") if isinstance(state, dict) else None
            view.walls[wall] = {
                "wall": wall,
                "revision": value.get("revision"),
                "ts": value.get("ts"),
                "layout": state.get("layout") if isinstance(state, dict) else None,
                "windows": len(windows) if isinstance(windows, list) else 0,
                "state": state,
            }

    def on_bridge(self, peer: str, payload: bytes) -> bool:
        """A bridge notification; True when the bridge has just come up."""
        up = payload.strip() == b"1"
        view = self.peers.get(peer)
        if view is not None and view.link != up:
            view.link = up
            self._event("federation.peer", {"site": peer, "link": up})
        return up

    def peer_list(self) -> list[dict[str, Any]]:
        return [self.peers[s].describe() for s in sorted(self.peers)]

    def reconfigure(self, config: FederationConfig) -> None:
        """New policy (SIGHUP): takes effect for the next command from a peer."""
        self.config = config
        for site, p in config.peers.items():
            if p.watch:
                self.peers.setdefault(site, PeerView(site))
