"""The control API server: WebSocket sessions on top of the method table.

One task per connection reads, decodes and answers its requests in order (a client that
stops reading therefore stops being read: backpressure instead of buffering); a second
task per connection writes its events from a bounded queue. The socket is the only I/O
here: decoding lives in ``protocol``, the methods in ``methods``, the fan-out in
``events``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
import secrets
import ssl
import struct
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

import orjson
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK
from websockets.http11 import Request as HttpRequest
from websockets.http11 import Response as HttpResponse
from websockets.protocol import State

from wallctl import __version__
from wallctl.api import methods
from wallctl.api.config import ApiConfig
from wallctl.api.connection import ApiConnection
from wallctl.api.events import EventHub, Subscriber, frame
from wallctl.api.methods import ApiContext, SessionInfo
from wallctl.api.protocol import (
    CATEGORY_ROLE,
    MAX_BATCH,
    MAX_DEPTH,
    MAX_VALUES,
    MECHANISM,
    PROTOCOL_VERSION,
    ROLE_SCOPES,
    SUPPORTED_VERSIONS,
    TOKEN_MECHANISM,
    Batch,
    CloseCode,
    DecodeError,
    Identify,
    IdentifyProof,
    Reidentify,
    Request,
    decode,
    encode,
    error_response,
    role_allows,
)
from wallctl.api.tokens import TOKEN_PATTERN, TokenGrant, Tokens, token_hash
from wallctl.bus import BusEvent, EventBus
from wallctl.component import Component, Health, Status
from wallctl.errors import (
    InternalError,
    InvalidField,
    NotFound,
    NotPermitted,
    RateLimited,
    WallctlError,
)
from wallctl.logs import get_logger
from wallctl.store import Actor, Store
from wallctl.walls import PendingChange, WallService
from wallctl.wallstate import WallState

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from wallctl.config import Config
    from wallctl.daemon import Runtime

log = get_logger("wallctl.api")


class AuthBackend(Protocol):
    """What the server needs of ``wallctl.accounts.Accounts`` (tests pass a fake)."""

    async def load(self) -> None: ...

    def begin(self, account: str, client_nonce: str) -> tuple[Any, Any]: ...

    def finish(self, state: Any, client_proof_b64: str) -> tuple[Any, str]: ...

    def current(self, account: str) -> Any: ...


@dataclass(frozen=True)
class LoginIdentity:
    account: str
    role: str
    display_name: str


class _Refused(Exception):
    """Identify failed: close with this code once the login delay has passed."""

    def __init__(self, code: CloseCode, reason: str, delay: bool = False) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.delay = delay


class TokenBucket:
    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.stamp = time.monotonic()

    def take(self, n: int = 1) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= n:
            self.tokens -= n
            return True
        return False


class LoginThrottle:
    """Failed logins per address, bounded in memory."""

    MAX_ADDRESSES = 10000

    def __init__(self) -> None:
        self.failures: dict[str, deque[float]] = {}

    def blocked(self, address: str, limit: int, window: float) -> bool:
        q = self.failures.get(address)
        if q is None:
            return False
        cutoff = time.monotonic() - window
        while q and q[0] < cutoff:
            q.popleft()
        if not q:
            del self.failures[address]
            return False
        return len(q) >= limit

    def failed(self, address: str, limit: int) -> None:
        if address not in self.failures and len(self.failures) >= self.MAX_ADDRESSES:
            # Forget the address whose failures are oldest; an attacker rotating through
            # addresses gains nothing over one that waits out the window.
            oldest = min(self.failures, key=lambda a: self.failures[a][-1])
            del self.failures[oldest]
        self.failures.setdefault(address, deque(maxlen=limit)).append(time.monotonic())


class ConnectThrottle:
    """New connections per address: a token bucket each, and how many are open.

    Bounded in memory: past MAX_ADDRESSES the address seen longest ago is forgotten
    (it starts again with a full bucket, which an attacker gains nothing from).
    """

    MAX_ADDRESSES = 10000

    def __init__(self) -> None:
        self.buckets: dict[str, TokenBucket] = {}
        self.open: dict[str, int] = {}

    def admit(self, address: str, rate: float, burst: int, max_open: int) -> str | None:
        """None to let the connection in, or why not."""
        if self.open.get(address, 0) >= max_open:
            return f"too many connections from this address (at most {max_open})"
        bucket = self.buckets.pop(address, None)
        if bucket is None:
            if len(self.buckets) >= self.MAX_ADDRESSES:
                del self.buckets[next(iter(self.buckets))]
            bucket = TokenBucket(rate, burst)
        # Re-inserted: the dict stays ordered by last use, oldest first.
        self.buckets[address] = bucket
        bucket.rate, bucket.burst = rate, float(burst)
        if not bucket.take():
            return f"too many new connections from this address (over {rate:g}/s); slow down"
        return None

    def opened(self, address: str) -> None:
        self.open[address] = self.open.get(address, 0) + 1

    def closed(self, address: str) -> None:
        n = self.open.get(address, 0) - 1
        if n > 0:
            self.open[address] = n
        else:
            self.open.pop(address, None)


@dataclass
class _Counters:
    requests: dict[tuple[str, str], int] = field(default_factory=dict)
    login_failures: int = 0
    rate_limited: int = 0
    connections_refused: int = 0

    def count(self, method: str, result: str) -> None:
        key = (method if method in methods.METHODS else "unknown", result)
        self.requests[key] = self.requests.get(key, 0) + 1


class ApiServer(Component):
    name = "api"

    def __init__(
        self,
        config: ApiConfig,
        walls: WallService,
        store: Store,
        accounts: AuthBackend,
        *,
        http_port: int | Callable[[], int | None] | None = None,
        registry: CollectorRegistry | None = None,
        bootstrap_file: Path | None = None,
        bus: EventBus | None = None,
        services: dict[str, Any] | None = None,
    ) -> None:
        methods.load_extensions()
        self.config = config
        self.walls = walls
        self.store = store
        self.accounts = accounts
        self.http_port = http_port
        self.bootstrap_file = bootstrap_file
        self.hub = EventHub(walls)
        self.ctx = ApiContext(
            walls,
            store,
            self.session_infos,
            self.hub.publish,
            services={} if services is None else services,
            control=self,
        )
        self.tokens = Tokens(store)
        self.bus = bus
        self._bus_unsubscribe: Callable[[], None] | None = None
        self.sessions: dict[str, Session] = {}
        self.connections = 0
        self.throttle = LoginThrottle()
        self.connect_throttle = ConnectThrottle()
        self.counters = _Counters()
        self.port: int | None = None
        self._server: Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False
        if registry is not None:
            registry.register(_ApiMetrics(self))

    def _bus_event(self, ev: BusEvent) -> None:
        self.hub.publish(ev.category, ev.type, ev.wall, ev.actor, ev.data)

    # --- component -----------------------------------------------------------------

    async def start(self) -> None:
        await self.accounts.load()
        bootstrap = getattr(self.accounts, "ensure_bootstrap", None)
        if self.bootstrap_file is not None and bootstrap is not None:
            # Without any account nobody could log in: create "admin" on first start.
            written = await bootstrap(self.bootstrap_file)
            if written:
                log.warning("created API account 'admin'; its password is in", file=written)
        cfg = self.config
        tls: ssl.SSLContext | None = None
        if cfg.tls_cert is not None and cfg.tls_key is not None:
            tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            tls.minimum_version = ssl.TLSVersion.TLSv1_2
            await asyncio.to_thread(tls.load_cert_chain, cfg.tls_cert, cfg.tls_key)
        self.hub.start()
        if self.bus is not None:
            self._bus_unsubscribe = self.bus.subscribe(self._bus_event)
        self._server = await serve(
            self._session,
            cfg.host,
            cfg.port,
            ssl=tls,
            process_request=self._admit,
            max_size=cfg.max_message_bytes,
            # Frames read ahead of the handler: small, so a flood waits in the kernel.
            max_queue=8,
            write_limit=64 * 1024,
            ping_interval=cfg.ping_interval,
            ping_timeout=cfg.ping_timeout,
            close_timeout=5,
            # Deflate costs CPU per message and opens compression side channels.
            compression=None,
            create_connection=ApiConnection,
            server_header=f"wallctl/{__version__}",
        )
        sock = next(iter(self._server.sockets))
        self.port = sock.getsockname()[1]
        log.info("api listening", url=self.url)

    async def stop(self) -> None:
        self._stopping = True
        self.hub.stop()
        if self._bus_unsubscribe is not None:
            self._bus_unsubscribe()
            self._bus_unsubscribe = None
        if self._server is not None:
            # Sessions are closed with 1001 (going away); their handlers then end.
            self._server.close(close_connections=True)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), timeout=8)
            self._server = None
        for t in list(self._tasks):
            t.cancel()

    def health(self) -> Health:
        if self._server is None:
            return Health(Status.STOPPED if self._stopping else Status.STARTING)
        return Health(Status.OK, f"{len(self.sessions)} clients")

    def reload(self, config: Config) -> list[str]:
        new: ApiConfig = config.api
        old = self.config
        restart = [
            f"api.{k}"
            for k in (
                "host",
                "port",
                "path",
                "tls_cert",
                "tls_key",
                "max_message_bytes",
                "ping_interval",
                "ping_timeout",
                "allowed_origins",
            )
            if getattr(old, k) != getattr(new, k)
        ]
        # Those stay as they are until the restart, so `url` keeps telling the truth.
        self.config = new.model_copy(update={k[4:]: getattr(old, k[4:]) for k in restart})
        task = asyncio.get_running_loop().create_task(self.accounts.load())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return restart

    @property
    def url(self) -> str:
        return self.config.url(self.port)

    # --- admission -----------------------------------------------------------------

    def _origin_allowed(self, request: HttpRequest) -> bool:
        """Browsers send Origin; other clients (dispatch software, the CLI) do not.

        Allowed: no Origin, an origin from ``allowed_origins``, or a page served by our
        own HTTP listener (its bound port) on the host name this connection was made to
        - the commander's console, wherever the daemon is reached from.
        """
        origin = request.headers.get("Origin")
        if origin is None or origin in self.config.allowed_origins:
            return True
        port = self.http_port() if callable(self.http_port) else self.http_port
        if not port:
            return False
        try:
            o = urlsplit(origin)
            o_port = o.port or (443 if o.scheme == "https" else 80)
            host = urlsplit("//" + request.headers.get("Host", "")).hostname
        except ValueError:
            return False
        if o.scheme not in ("http", "https") or o.hostname is None:
            return False
        same_host = host is not None and o.hostname == host
        loopback = o.hostname in ("127.0.0.1", "localhost", "::1")
        return o_port == port and (same_host or loopback)

    def _admit(self, conn: ServerConnection, request: HttpRequest) -> HttpResponse | None:
        if request.path.split("?", 1)[0] != self.config.path:
            return conn.respond(HTTPStatus.NOT_FOUND, "no API at this path\n")
        if not self._origin_allowed(request):
            return conn.respond(HTTPStatus.FORBIDDEN, "origin not allowed\n")
        if self.connections >= self.config.max_connections:
            return conn.respond(HTTPStatus.SERVICE_UNAVAILABLE, "too many API connections\n")
        if self._stopping:
            return conn.respond(HTTPStatus.SERVICE_UNAVAILABLE, "shutting down\n")
        cfg = self.config
        why = self.connect_throttle.admit(
            _address(conn),
            cfg.connect_rate,
            cfg.connect_burst,
            cfg.max_connections_per_address,
        )
        if why is not None:
            self.counters.connections_refused += 1
            return conn.respond(HTTPStatus.TOO_MANY_REQUESTS, why + "\n")
        return None

    async def _session(self, ws: ServerConnection) -> None:
        address = _address(ws)
        self.connections += 1
        self.connect_throttle.opened(address)
        try:
            await Session(self, ws).run()
        finally:
            self.connections -= 1
            self.connect_throttle.closed(address)

    # --- for methods ---------------------------------------------------------------

    def session_infos(self) -> list[SessionInfo]:
        return [s.info() for s in self.sessions.values()]

    # --- SessionControl (methods.py): tokens, logout, kick ------------------------------

    async def issue_token(self, actor: Actor) -> TokenGrant:
        session = self.sessions.get(actor.session or "")
        if session is None or session.mechanism == "anonymous":
            raise NotPermitted(
                "an anonymous session cannot hold a token: identify with an account",
                field="method",
            )
        return await self.tokens.issue(actor, self.config.token_ttl)

    async def logout(self, actor: Actor) -> int:
        session = self.sessions.get(actor.session or "")
        used = session.token_used if session is not None else None
        return await self.tokens.revoke_session(actor, used)

    async def kick(
        self, actor: Actor, session_id: str, reason: str | None, revoke_tokens: bool
    ) -> tuple[SessionInfo, int]:
        target = self.sessions.get(session_id)
        if target is None:
            raise NotFound(f"no session {session_id!r}", field="params.session")
        if session_id == actor.session:
            raise InvalidField(
                "that is your own session: call session.logout and close the connection",
                field="params.session",
            )
        info = target.info()
        revoked = 0
        if revoke_tokens:
            revoked = await self.tokens.revoke_sessions_tokens(session_id)
            if target.token_used is not None:
                revoked += await self.tokens.revoke_hash(target.token_used)
        detail: dict[str, Any] = {
            "session": session_id,
            "account": info.account,
            "peer": info.peer,
            "reason": reason,
            "revoked_tokens": revoked,
        }
        await self.store.audit(actor, "session.kick", detail=detail)
        self.log_kick(actor, info, reason)
        text = f"ended by {actor.identity}" + (f": {reason}" if reason else "")
        # Not awaited here: the closing handshake may take the client's time, and the
        # admin's answer should not.
        task = asyncio.get_running_loop().create_task(
            target.ws.close(int(CloseCode.SESSION_KICKED), _reason(text))
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return info, revoked

    @staticmethod
    def log_kick(actor: Actor, info: SessionInfo, reason: str | None) -> None:
        log.warning(
            "api session ended by an administrator",
            session=info.session,
            account=info.account,
            by=actor.identity,
            reason=reason or "",
        )


class _ApiMetrics(Collector):
    def __init__(self, server: ApiServer) -> None:
        self.server = server

    def collect(self) -> Iterable[GaugeMetricFamily | CounterMetricFamily]:
        s = self.server
        clients = GaugeMetricFamily("wallctl_api_clients", "Identified API sessions")
        clients.add_metric([], len(s.sessions))
        yield clients
        conns = GaugeMetricFamily("wallctl_api_connections", "Open API connections")
        conns.add_metric([], s.connections)
        yield conns
        reqs = CounterMetricFamily(
            "wallctl_api_requests", "API requests answered", labels=["method", "result"]
        )
        for (m, r), n in sorted(s.counters.requests.items()):
            reqs.add_metric([m, r], n)
        yield reqs
        fails = CounterMetricFamily("wallctl_api_login_failures", "Failed API logins")
        fails.add_metric([], s.counters.login_failures)
        yield fails
        refused = CounterMetricFamily(
            "wallctl_api_connections_refused",
            "Connections refused for flooding from one address (HTTP 429)",
        )
        refused.add_metric([], s.counters.connections_refused)
        yield refused
        resyncs = CounterMetricFamily(
            "wallctl_api_resyncs", "Event queues dropped for a resync (slow clients)"
        )
        resyncs.add_metric([], s.hub.resyncs)
        yield resyncs


class Session:
    def __init__(self, server: ApiServer, ws: ServerConnection) -> None:
        self.server = server
        self.ws = ws
        self.id = secrets.token_hex(8)
        peer = ws.remote_address
        self.peer = str(peer[0]) if peer else "unknown"
        self.since = time.time()
        self.identity: LoginIdentity | None = None
        # How it identified: "scram", "token" or "anonymous"; with a token, its SHA-256.
        self.mechanism = "none"
        self.token_used: bytes | None = None
        self.actor = Actor("anonymous", via="api", session=self.id)
        self.sub: Subscriber | None = None
        self.requests = 0
        cfg = server.config
        self.bucket = TokenBucket(cfg.rate_limit, cfg.rate_burst)
        self._bucket_config = cfg
        self.log = log.bind(session=self.id, peer=self.peer)
        # Answers owed to wall edits begun without waiting (_edit_now): not yet durable,
        # or waiting for the socket. Any other request waits for ``_quiet``, so answers
        # keep the order of their requests.
        self._unsent = 0
        self._quiet = asyncio.Event()
        self._quiet.set()
        self._sender: asyncio.Task[None] | None = None
        self._ended = False

    def info(self) -> SessionInfo:
        ident = self.identity
        assert ident is not None
        return SessionInfo(
            session=self.id,
            account=ident.account,
            role=ident.role,
            peer=self.peer,
            since=self.since,
            subscriptions=sorted(self.sub.categories if self.sub else ()),
            requests=self.requests,
        )

    # --- life ------------------------------------------------------------------------

    async def run(self) -> None:
        cfg = self.server.config
        try:
            await self.ws.send(encode(self._hello()))
            try:
                async with asyncio.timeout(cfg.identify_timeout):
                    identify, identity, signature = await self._identify()
            except TimeoutError:
                raise _Refused(CloseCode.IDENTIFY_TIMEOUT, "identify timeout") from None
        except _Refused as r:
            if r.delay:
                await asyncio.sleep(cfg.login_delay_ms / 1000)
            await self.ws.close(int(r.code), r.reason)
            return
        except ConnectionClosed:
            return
        self.identity = identity
        self.actor = Actor(identity.account, via="api", session=self.id, role=identity.role)
        self.sub = Subscriber((), cfg.event_queue)
        granted = self._subscribe(identify.subscriptions)
        self.server.sessions[self.id] = self
        self.server.hub.add(self.sub)
        writer: asyncio.Task[None] | None = None
        self.log.info("api session identified", account=identity.account, role=identity.role)
        try:
            await self.ws.send(encode(self._identified(identify.subscriptions, granted, signature)))
            # Only now: the snapshot (and any event) must follow `identified`.
            writer = asyncio.create_task(self._write_events(), name=f"api-events-{self.id}")
            self.sub.direct = self._send_now
            self.server.hub.publish(
                "session",
                "session.opened",
                None,
                self.actor,
                {"session": self.id, "account": identity.account, "role": identity.role},
            )
            await self._serve()
        except ConnectionClosed:
            pass
        finally:
            self._ended = True
            self.server.hub.remove(self.sub)
            self.server.sessions.pop(self.id, None)
            if self._sender is not None:
                self._sender.cancel()
            if writer is not None:
                writer.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                    await writer
            self.server.hub.publish(
                "session",
                "session.closed",
                None,
                self.actor,
                {"session": self.id, "account": identity.account},
            )
            self.log.info(
                "api session closed", account=identity.account, code=self.ws.close_code or 0
            )

    def _hello(self) -> dict[str, Any]:
        anon = self.server.config.anonymous_role
        return {
            "op": "hello",
            "server": "wallctl",
            "server_version": __version__,
            "protocol_version": PROTOCOL_VERSION,
            "supported_versions": list(SUPPORTED_VERSIONS),
            "session": self.id,
            "authentication": {
                "mechanisms": [MECHANISM, TOKEN_MECHANISM],
                "anonymous_role": None if anon == "none" else anon,
            },
        }

    async def _next(self, expect: str) -> Any:
        raw = await self.ws.recv()
        try:
            return decode(raw, self.server.config.max_message_bytes)
        except DecodeError as e:
            raise _Refused(
                CloseCode.MESSAGE_DECODE_ERROR, _reason(f"expected {expect}: {e.error.message}")
            ) from None

    async def _identify(self) -> tuple[Identify, LoginIdentity, str | None]:
        cfg = self.server.config
        msg = await self._next("identify")
        if not isinstance(msg, Identify):
            raise _Refused(CloseCode.NOT_IDENTIFIED, f"expected identify, got {msg.op}")
        if msg.protocol_version not in SUPPORTED_VERSIONS:
            raise _Refused(
                CloseCode.UNSUPPORTED_PROTOCOL_VERSION,
                f"protocol_version {msg.protocol_version} is not supported; "
                f"use one of {list(SUPPORTED_VERSIONS)}",
            )
        if msg.token is not None:
            if msg.account is not None:
                raise _Refused(
                    CloseCode.MESSAGE_DECODE_ERROR, "identify takes account or token, not both"
                )
            return msg, await self._identify_token(msg.token), None
        if msg.account is None:
            if cfg.anonymous_role == "none":
                raise _Refused(CloseCode.AUTHENTICATION_FAILED, "this server requires a login")
            self.mechanism = "anonymous"
            return msg, LoginIdentity("anonymous", cfg.anonymous_role, "anonymous"), None
        if msg.client_nonce is None:
            raise _Refused(
                CloseCode.MESSAGE_DECODE_ERROR, "identify with an account needs client_nonce"
            )
        throttle = self.server.throttle
        if throttle.blocked(self.peer, cfg.login_failures_max, cfg.login_failure_window):
            self.log.warning("api login throttled", account=msg.account)
            raise _Refused(
                CloseCode.LOGIN_THROTTLED, "too many failed logins; try again later", delay=True
            )
        accounts = self.server.accounts
        try:
            challenge, state = accounts.begin(msg.account, msg.client_nonce)
        except WallctlError:
            # A malformed name is answered like a wrong password: no hint either way.
            await self._login_failed(msg.account)
            raise _Refused(
                CloseCode.AUTHENTICATION_FAILED, "authentication failed", delay=True
            ) from None
        await self.ws.send(
            encode(
                {
                    "op": "challenge",
                    "mechanism": MECHANISM,
                    "salt": challenge.salt,
                    "iterations": challenge.iterations,
                    "nonce": challenge.nonce,
                }
            )
        )
        proof = await self._next("identify_proof")
        if not isinstance(proof, IdentifyProof):
            raise _Refused(CloseCode.NOT_IDENTIFIED, f"expected identify_proof, got {proof.op}")
        try:
            ident, signature = accounts.finish(state, proof.proof)
        except WallctlError:
            await self._login_failed(msg.account)
            raise _Refused(
                CloseCode.AUTHENTICATION_FAILED, "authentication failed", delay=True
            ) from None
        identity = LoginIdentity(ident.account, str(ident.role), ident.display_name)
        self.mechanism = "scram"
        await self.server.store.audit(
            Actor(identity.account, via="api", session=self.id, role=identity.role),
            "session.login",
            detail={"peer": self.peer},
        )
        return msg, identity, signature

    async def _identify_token(self, token: str) -> LoginIdentity:
        """A token login: answered exactly like a password login, failures included."""
        cfg = self.server.config
        if self.server.throttle.blocked(
            self.peer, cfg.login_failures_max, cfg.login_failure_window
        ):
            self.log.warning("api login throttled", mechanism="token")
            raise _Refused(
                CloseCode.LOGIN_THROTTLED, "too many failed logins; try again later", delay=True
            )
        ident = None
        if _TOKEN_RE.fullmatch(token):
            owner = await self.server.tokens.owner(token)
            if owner is not None:
                # The account as it is now: a disabled or removed one has no tokens left,
                # and a changed role applies from this login on.
                ident = self.server.accounts.current(owner.account)
        if ident is None:
            # No account name to show: "(token)" cannot be one (see accounts.py).
            await self._login_failed("(token)")
            raise _Refused(CloseCode.AUTHENTICATION_FAILED, "authentication failed", delay=True)
        identity = LoginIdentity(ident.account, str(ident.role), ident.display_name)
        self.mechanism = "token"
        self.token_used = token_hash(token)
        await self.server.store.audit(
            Actor(identity.account, via="api", session=self.id, role=identity.role),
            "session.login",
            detail={"peer": self.peer, "mechanism": "token"},
        )
        return identity

    async def _login_failed(self, account: str) -> None:
        cfg = self.server.config
        self.server.throttle.failed(self.peer, cfg.login_failures_max)
        self.server.counters.login_failures += 1
        self.log.warning("api login failed", account=account[:64])
        await self.server.store.audit(
            Actor(account[:64], via="api", session=self.id),
            "session.login",
            result="denied",
            detail={"peer": self.peer},
        )

    def _subscribe(self, wanted: Iterable[str]) -> list[str]:
        assert self.sub is not None and self.identity is not None
        granted = [
            c for c in dict.fromkeys(wanted) if role_allows(self.identity.role, CATEGORY_ROLE[c])
        ]
        before = self.sub.categories
        self.sub.categories = set(granted)
        self.server.hub.resubscribed()
        if "wall" in self.sub.categories and "wall" not in before:
            self.sub.request_snapshot()
        return granted

    def _identified(
        self, wanted: Sequence[str], granted: list[str], signature: str | None
    ) -> dict[str, Any]:
        cfg = self.server.config
        ident = self.identity
        assert ident is not None
        return {
            "op": "identified",
            "protocol_version": PROTOCOL_VERSION,
            "session": self.id,
            "identity": {
                "account": ident.account,
                "display_name": ident.display_name,
                "role": ident.role,
            },
            "scopes": list(ROLE_SCOPES[ident.role]),
            "subscriptions": granted,
            "refused_subscriptions": [c for c in dict.fromkeys(wanted) if c not in granted],
            "server_signature": signature,
            "limits": {
                "max_message_bytes": cfg.max_message_bytes,
                "rate_limit": cfg.rate_limit,
                "rate_burst": cfg.rate_burst,
                "event_queue": cfg.event_queue,
                "max_batch": MAX_BATCH,
            },
        }

    # --- requests ------------------------------------------------------------------

    async def _serve(self) -> None:
        max_bytes = self.server.config.max_message_bytes
        ws = self.ws
        if isinstance(ws, ApiConnection):
            ws.take_texts()
            recv = ws.next_message
        else:
            recv = ws.recv
        while True:
            # recv() itself, not ``async for``: the async generator around it costs a
            # frame and a wrapper per message. A normal close ends the session here as
            # ``async for`` would; an abnormal one propagates.
            try:
                raw = await recv()
            except ConnectionClosedOK:
                return
            plain = _plain_request(raw, max_bytes)
            if plain is not None and self._edit_now(*plain):
                continue
            if self._unsent:
                await self._quiet.wait()
            if plain is not None:
                data = _utf8(await self._request(*plain))
                if not self._reply_now(data):
                    await self.ws.send(data, text=True)
                continue
            try:
                msg = decode(raw, max_bytes)
            except DecodeError as e:
                self.server.counters.count("unknown", e.error.code)
                await self.ws.send(encode(error_response(e.request_id, e.error)))
                continue
            if isinstance(msg, Request):
                data = _utf8(await self._request(msg.id, msg.method, msg.params, msg.if_revision))
                if not self._reply_now(data):
                    await self.ws.send(data, text=True)
            elif isinstance(msg, Batch):
                data = _utf8(await self._batch(msg))
                if not self._reply_now(data):
                    await self.ws.send(data, text=True)
            elif isinstance(msg, Reidentify):
                assert self.sub is not None
                # Held back until `identified` is out, so the snapshot follows it.
                wake = self.sub.wake
                self.sub.wake = asyncio.Event()
                granted = self._subscribe(msg.subscriptions)
                await self.ws.send(encode(self._identified(msg.subscriptions, granted, None)))
                pending = self.sub.wake.is_set()
                self.sub.wake = wake
                if pending:
                    wake.set()
            else:
                await self.ws.close(int(CloseCode.ALREADY_IDENTIFIED), "already identified")
                return

    def _limited(self, n: int) -> RateLimited | None:
        cfg = self.server.config
        bucket = self.bucket
        if self._bucket_config is not cfg:
            # The configuration was reloaded: its limits apply from now on.
            bucket.rate, bucket.burst = cfg.rate_limit, float(cfg.rate_burst)
            self._bucket_config = cfg
        if bucket.take(n):
            return None
        self.server.counters.rate_limited += 1
        return RateLimited(
            f"over {cfg.rate_limit:g} requests/s (burst {cfg.rate_burst}); slow down"
        )

    async def _request(
        self,
        rid: int | str,
        method: str,
        params: dict[str, Any],
        if_revision: int | None,
    ) -> dict[str, Any]:
        """One request, given as its fields (the usual request is never made a model)."""
        self.requests += 1
        assert self.identity is not None
        limited = self._limited(1)
        if limited is not None:
            self.server.counters.count(method, limited.code)
            return error_response(rid, limited)
        try:
            result = await methods.call(
                self.server.ctx,
                self.actor,
                self.identity.role,
                method,
                params,
                if_revision,
            )
        except WallctlError as e:
            self.server.counters.count(method, e.code)
            if e.code == "not_permitted":
                await self._audit_denied(method)
            return error_response(rid, e)
        except Exception:
            self.log.exception("api request failed", method=method)
            self.server.counters.count(method, "internal")
            return error_response(rid, InternalError("internal error; see the daemon's log"))
        self.server.counters.count(method, "ok")
        return {"op": "response", "id": rid, "ok": True, "result": result}

    def _edit_now(
        self, rid: int | str, method: str, params: dict[str, Any], if_revision: int | None
    ) -> bool:
        """A wall edit, begun without the session waiting for the store: its answer is
        sent from a callback once the revision is durable (WallService.begin_change),
        and the session reads the next message meanwhile. That saves the busiest request
        of the API a resumption of the session and of every coroutine between it and the
        store. False, having done nothing, for anything else - another kind of method,
        params that do not parse, a role that may not, answers still owed to earlier
        requests -, which ``_request`` then answers as always; once the edit is begun,
        every outcome is answered here exactly as ``_request`` answers it."""
        if self._unsent:
            return False
        m = methods.METHODS.get(method)
        if m is None or m.begin is None:
            return False
        assert self.identity is not None
        if not role_allows(self.identity.role, m.role):
            return False
        try:
            p = m.parse(params)
        except WallctlError:
            return False
        self.requests += 1
        limited = self._limited(1)
        if limited is not None:
            self.server.counters.count(method, limited.code)
            self._answer(error_response(rid, limited))
            return True
        try:
            answer, new, pending = m.begin(self.server.ctx, self.actor, p, if_revision)
        except Exception as e:
            self._answer(self._failed(rid, method, e))
            return True
        if pending is None:
            self._answer(self._succeeded(rid, method, answer(new)))
            return True
        self._unsent += 1
        self._quiet.clear()
        pending.stored.add_done_callback(
            functools.partial(self._edit_stored, rid, method, answer, pending)
        )
        return True

    def _edit_stored(
        self,
        rid: int | str,
        method: str,
        answer: Callable[[WallState], dict[str, Any]],
        pending: PendingChange,
        _stored: asyncio.Future[Any],
    ) -> None:
        try:
            # Whatever becomes of the session, the change is finished: listeners hear.
            new = self.server.ctx.walls.finish_change(pending)
        except Exception as e:
            reply = self._failed(rid, method, e)
        else:
            reply = self._succeeded(rid, method, answer(new))
        self._unsent -= 1
        self._answer(reply)

    def _succeeded(self, rid: int | str, method: str, result: dict[str, Any]) -> dict[str, Any]:
        self.server.counters.count(method, "ok")
        return {"op": "response", "id": rid, "ok": True, "result": result}

    def _failed(self, rid: int | str, method: str, e: Exception) -> dict[str, Any]:
        """The answer to a wall edit that failed, as ``_request`` gives it (the caller
        is handling ``e``: a log of it carries its traceback)."""
        if isinstance(e, WallctlError):
            self.server.counters.count(method, e.code)
            return error_response(rid, methods.prefixed(e))
        self.log.exception("api request failed", method=method)
        self.server.counters.count(method, "internal")
        return error_response(rid, InternalError("internal error; see the daemon's log"))

    def _answer(self, reply: dict[str, Any]) -> None:
        """Send an answer of _edit_now: straight to the socket when it takes it, else
        by a task that waits for the client to read (backpressure). One answer at most
        is ever owed here: _edit_now begins nothing while one is."""
        if self._ended:
            self._settled()
            return
        data = _utf8(reply)
        if self._reply_now(data):
            self._settled()
            return
        self._unsent += 1
        self._sender = asyncio.get_running_loop().create_task(
            self._send_later(data), name=f"api-answer-{self.id}"
        )

    async def _send_later(self, data: bytes) -> None:
        try:
            with contextlib.suppress(ConnectionClosed):
                await self.ws.send(data, text=True)
        finally:
            self._unsent -= 1
            self._sender = None
            self._settled()

    def _settled(self) -> None:
        if not self._unsent:
            self._quiet.set()

    async def _audit_denied(self, method: str) -> None:
        with contextlib.suppress(Exception):
            await self.server.store.audit(self.actor, method, result="denied")

    async def _batch(self, msg: Batch) -> dict[str, Any]:
        self.requests += len(msg.requests)
        assert self.identity is not None
        role = self.identity.role
        base = {"op": "batch_response", "id": msg.id, "mode": msg.mode}
        limited = self._limited(len(msg.requests))
        if limited is not None:
            self.server.counters.count("batch", limited.code)
            return {
                **base,
                "ok": False,
                "error": limited.to_dict(),
                "results": [
                    {"id": r.id, "ok": False, "error": limited.to_dict()} for r in msg.requests
                ],
            }
        try:
            if msg.mode == "atomic":
                out = await methods.run_atomic(
                    self.server.ctx, self.actor, role, msg.requests, msg.if_revision
                )
            else:
                if msg.if_revision is not None:
                    err: WallctlError = InvalidField(
                        "an ordered batch takes if_revision on each request", field="if_revision"
                    )
                    return {
                        **base,
                        "ok": False,
                        "error": err.to_dict(),
                        "results": [
                            {"id": r.id, "ok": False, "error": err.to_dict()} for r in msg.requests
                        ],
                    }
                out = await methods.run_ordered(self.server.ctx, self.actor, role, msg.requests)
        except Exception:
            self.log.exception("api batch failed")
            err = InternalError("internal error; see the daemon's log")
            return {
                **base,
                "ok": False,
                "error": err.to_dict(),
                "results": [
                    {"id": r.id, "ok": False, "error": err.to_dict()} for r in msg.requests
                ],
            }
        for r in out.results:
            self.server.counters.count(
                next(x.method for x in msg.requests if x.id == r["id"]),
                "ok" if r["ok"] else r["error"]["code"],
            )
        reply: dict[str, Any] = {**base, "ok": out.ok, "results": out.results}
        if out.error is not None:
            reply["error"] = out.error.to_dict()
        if out.revision is not None:
            reply["revision"] = out.revision
        return reply

    # --- events --------------------------------------------------------------------

    def _reply_now(self, data: bytes) -> bool:
        """Send a response (UTF-8 JSON) straight to the socket if it takes it at once;
        False when the caller must ``await ws.send(data, text=True)`` instead.

        ``send()`` costs an async context manager and a drain per message, a good part
        of a small request's time. With nothing buffered and no fragmented message under
        way, writing the frame is what ``send()`` would do; otherwise ``send()`` is used,
        and waits for the client to read (backpressure).
        """
        ws = self.ws
        if (
            ws.protocol.state is State.OPEN
            and ws.send_in_progress is None
            and not ws.transport.get_write_buffer_size()
        ):
            _write_text(ws, data)
            return True
        return False

    def _send_now(self, tail: bytes) -> bool:
        """Hand an event to the socket without a task switch, if it takes it at once.

        Fan-out to hundreds of viewers is dominated by per-send overhead; this skips the
        writer task and ``send()``'s drain for a connection with nothing buffered. It
        uses websockets' sans-I/O protocol object exactly as ``Connection.send`` does
        (websockets is pinned below 18); anything unusual falls back to the queue.
        """
        ws = self.ws
        transport = ws.transport
        if ws.protocol.state is not State.OPEN or transport.get_write_buffer_size():
            return False
        assert self.sub is not None
        try:
            _write_text(ws, frame(self.sub.next_seq(), tail))
        except Exception:
            # The connection is failing; its reader notices and ends the session.
            return True
        return True

    async def _write_events(self) -> None:
        sub = self.sub
        assert sub is not None
        while True:
            await sub.wake.wait()
            sub.wake.clear()
            sub.sending = True
            try:
                await self._drain_events(sub)
            finally:
                sub.sending = False

    async def _drain_events(self, sub: Subscriber) -> None:
        hub = self.server.hub
        while sub.queue or sub.resync or sub.snapshot_due:
            if sub.resync:
                dropped, sub.dropped = sub.dropped, 0
                sub.resync = False
                sub.queue.clear()
                self.log.warning("api client too slow: resync", dropped=dropped)
                await self.ws.send(frame(sub.next_seq(), hub.resync_tail(dropped)), text=True)
                sub.snapshot_due = True
                continue
            if sub.snapshot_due:
                sub.snapshot_due = False
                # Built now, after the drop: it holds what the dropped events said.
                sub.queue.clear()
                await self.ws.send(frame(sub.next_seq(), hub.snapshot_tail()), text=True)
                continue
            await self.ws.send(frame(sub.next_seq(), sub.queue.popleft()), text=True)


_TOKEN_RE = re.compile(TOKEN_PATTERN)
_HEAD_SHORT = struct.Struct("!BB")
_HEAD_16 = struct.Struct("!BBH")
_HEAD_64 = struct.Struct("!BBQ")
_FIN_TEXT = 0x81


def text_frame(payload: bytes) -> bytes:
    """A whole, unmasked text frame holding ``payload``, as a server sends it without
    extensions: the bytes websockets' ``Frame.serialize`` makes, without its per-frame
    objects (a fan-out sends thousands a second)."""
    n = len(payload)
    if n < 126:
        return _HEAD_SHORT.pack(_FIN_TEXT, n) + payload
    if n < 65536:
        return _HEAD_16.pack(_FIN_TEXT, 126, n) + payload
    return _HEAD_64.pack(_FIN_TEXT, 127, n) + payload


def _write_text(ws: ServerConnection, payload: bytes) -> None:
    """Send one text message on an open connection whose socket takes it at once.

    The plain case (no extension negotiated - the server offers none -, nothing queued in
    the protocol, no fragmented message under way) writes the frame straight to the
    transport; anything else goes through websockets' protocol object, as ``send()``
    would (websockets is pinned below 18).
    """
    protocol = ws.protocol
    if protocol.extensions or protocol.writes or protocol.expect_continuation_frame:
        protocol.send_text(payload)
        ws.send_data()
        return
    ws.transport.write(text_frame(payload))


_PlainRequest = tuple[int | str, str, dict[str, Any], int | None]
_REQUEST_KEYS = frozenset(("op", "id", "method", "params", "if_revision"))
_MAX_ID = 2**53


def _plain_request(raw: str | bytes, max_bytes: int) -> _PlainRequest | None:
    """The usual request's fields (id, method, params, if_revision), checked without
    pydantic; None for anything else.

    Accepts only what ``Request`` accepts (same types, bounds and fields), so every
    message it passes over gets ``decode``'s answer, errors included, unchanged. No
    Request model is built: the session needs only the four fields.
    """
    if (
        not isinstance(raw, str)
        or len(raw) > max_bytes
        # What parse_json would walk for nesting and size: left to it.
        or raw.count("{") + raw.count("[") > MAX_DEPTH
        or len(raw) > 2 * MAX_VALUES
    ):
        return None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if (
        type(value) is not dict
        or value.get("op") != "request"
        or not value.keys() <= (_REQUEST_KEYS)
    ):
        return None
    rid: Any = value.get("id")
    method = value.get("method")
    params = value.get("params", _NO_PARAMS)
    if_revision = value.get("if_revision")
    t = type(rid)
    if not ((t is int and 0 <= rid <= _MAX_ID) or (t is str and 0 < len(rid) <= 64)):
        return None
    if type(method) is not str or not 0 < len(method) <= 64:
        return None
    if params is _NO_PARAMS:
        params = {}
    elif type(params) is not dict:
        return None
    if if_revision is not None and not (type(if_revision) is int and 0 <= if_revision <= _MAX_ID):
        return None
    return rid, method, params, if_revision


_NO_PARAMS: Any = object()


def _utf8(message: dict[str, Any]) -> bytes:
    """``encode(message)`` as the UTF-8 bytes a text frame carries, without the detour
    through str."""
    try:
        return orjson.dumps(message, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:
        return encode(message).encode()


def _address(conn: ServerConnection) -> str:
    peer = conn.remote_address
    return str(peer[0]) if peer else "unknown"


def _reason(text: str) -> str:
    # A close reason must fit in a control frame (123 bytes of UTF-8).
    data = text.encode("utf-8")[:120]
    return data.decode("utf-8", "ignore")


def api_component(rt: Runtime) -> ApiServer:
    """The API as the daemon builds it, with the real accounts."""
    from wallctl.accounts import Accounts

    return ApiServer(
        rt.config.api,
        rt.walls,
        rt.store,
        Accounts(rt.store),
        # The bound port: with port 0 in the config it is known only once listening.
        http_port=lambda: rt.http.port or rt.config.http.port,
        registry=rt.registry,
        bootstrap_file=rt.state_dir / "admin-password",
        bus=rt.bus,
        services=rt.services,
    )
