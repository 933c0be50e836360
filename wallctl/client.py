"""An asyncio client of the control API, for the CLI, tests and integrators' scripts.

    async with open_client("ws://127.0.0.1:8765/api/v1", account="op1",
                           password="...", subscriptions=["wall"]) as api:
        wall = await api.call("wall.get")
        await api.call("window.move", {"window": "w1", "x": 0, "y": 0})
        event = await api.next_event()

The login is SCRAM-SHA-256 (RFC 5802/7677): the password never crosses the wire, and
the client checks the server's signature, so it knows it talks to a server holding its
verifier and not to an impostor.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import itertools
import json
import secrets
import ssl
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Origin

PROTOCOL_VERSION = 1
DEFAULT_URL = "ws://127.0.0.1:8765/api/v1"

# Called with ("sent" | "received", message) for every message of a connection: a test
# or a strict integrator checks them against docs/api.schema.json.
Tap = Callable[[str, dict[str, Any]], None]


class ApiError(Exception):
    """A request answered with an error; ``code`` is stable, ``message`` for people."""

    def __init__(
        self, code: str, message: str, field: str | None = None, retryable: bool = False
    ) -> None:
        super().__init__(f"{code}: {message}" + (f" (field {field})" if field else ""))
        self.code = code
        self.message = message
        self.field = field
        self.retryable = retryable

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ApiError:
        return cls(
            str(d.get("code")), str(d.get("message")), d.get("field"), bool(d.get("retryable"))
        )


class ConnectionRefused(Exception):
    """The server closed the connection during the handshake (login failed, ...)."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"closed by the server ({code}): {reason}")
        self.code = code
        self.reason = reason


def scram_proof(
    password: str, salt_b64: str, iterations: int, auth_message: str
) -> tuple[str, bytes]:
    """(ClientProof base64, expected ServerSignature) as RFC 5802 §3 defines them."""
    salted = hashlib.pbkdf2_hmac(
        "sha256", password.encode("utf-8"), base64.b64decode(salt_b64), iterations
    )
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    stored_key = hashlib.sha256(client_key).digest()
    msg = auth_message.encode("utf-8")
    client_signature = hmac.digest(stored_key, msg, "sha256")
    proof = bytes(a ^ b for a, b in zip(client_key, client_signature, strict=True))
    server_key = hmac.digest(salted, b"Server Key", "sha256")
    return base64.b64encode(proof).decode("ascii"), hmac.digest(server_key, msg, "sha256")


# Iteration counts beyond this would let a hostile server make the client spin for minutes.
MAX_ITERATIONS = 10_000_000


class Client:
    def __init__(
        self,
        ws: ClientConnection,
        hello: dict[str, Any],
        identified: dict[str, Any],
        *,
        validate: bool = False,
        event_buffer: int = 100_000,
        timeout: float = 30,
        tap: Tap | None = None,
    ) -> None:
        self.ws = ws
        self.tap = tap
        self.hello = hello
        self.identified = identified
        self.validate = validate
        # Seconds to wait for an answer (or an event) before TimeoutError.
        self.timeout = timeout
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue(event_buffer)
        # Events dropped here because the application did not take them (not the server's).
        self.events_lost = 0
        self._ids = itertools.count(1)
        self._pending: dict[tuple[str, Any], asyncio.Future[dict[str, Any]]] = {}
        self._reader = asyncio.create_task(self._read(), name="wallctl-client-reader")

    @property
    def session(self) -> str:
        return str(self.identified["session"])

    @property
    def role(self) -> str:
        return str(self.identified["identity"]["role"])

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                msg = json.loads(raw)
                if self.tap is not None:
                    self.tap("received", msg)
                if self.validate:
                    check_server_message(msg)
                op = msg.get("op")
                if op == "event":
                    try:
                        self.events.put_nowait(msg)
                    except asyncio.QueueFull:
                        self.events_lost += 1
                    continue
                key = ("identified", None) if op == "identified" else (op, msg.get("id"))
                fut = self._pending.pop(key, None)
                if fut is not None and not fut.done():
                    fut.set_result(msg)
        except ConnectionClosed:
            pass
        finally:
            err = ConnectionClosedError(self.ws.close_code, self.ws.close_reason or "")
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(err)
            self._pending.clear()

    async def _exchange(self, key: tuple[str, Any], message: dict[str, Any]) -> dict[str, Any]:
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[key] = fut
        if self.tap is not None:
            self.tap("sent", message)
        try:
            try:
                await self.ws.send(json.dumps(message, ensure_ascii=False))
            except ConnectionClosed:
                # Closed before we asked (kicked, shut down): say so as the reader does.
                raise ConnectionClosedError(
                    self.ws.close_code, self.ws.close_reason or ""
                ) from None
            async with asyncio.timeout(self.timeout):
                return await fut
        finally:
            self._pending.pop(key, None)

    async def request(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        if_revision: int | None = None,
    ) -> dict[str, Any]:
        """The raw response message (ok or error)."""
        rid = next(self._ids)
        msg: dict[str, Any] = {"op": "request", "id": rid, "method": method, "params": params or {}}
        if if_revision is not None:
            msg["if_revision"] = if_revision
        return await self._exchange(("response", rid), msg)

    async def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        if_revision: int | None = None,
    ) -> Any:
        """The result; raise ApiError when the server answered an error."""
        resp = await self.request(method, params, if_revision=if_revision)
        if not resp.get("ok"):
            raise ApiError.from_dict(resp.get("error") or {})
        return resp.get("result")

    async def batch(
        self,
        requests: Sequence[dict[str, Any]],
        mode: str = "atomic",
        *,
        if_revision: int | None = None,
    ) -> dict[str, Any]:
        """Send a batch; ``requests`` are {id, method, params}. Returns the batch_response."""
        bid = f"b{next(self._ids)}"
        msg: dict[str, Any] = {"op": "batch", "id": bid, "mode": mode, "requests": list(requests)}
        if if_revision is not None:
            msg["if_revision"] = if_revision
        return await self._exchange(("batch_response", bid), msg)

    async def reidentify(self, subscriptions: Sequence[str]) -> dict[str, Any]:
        msg = {"op": "reidentify", "subscriptions": list(subscriptions)}
        self.identified = await self._exchange(("identified", None), msg)
        return self.identified

    async def next_event(self, type_: str | None = None) -> dict[str, Any]:
        """The next event (of ``type_``, skipping others), waiting at most ``timeout``."""
        async with asyncio.timeout(self.timeout):
            while True:
                ev = await self.events.get()
                if type_ is None or ev.get("type") == type_:
                    return ev

    async def close(self) -> None:
        await self.ws.close()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


class ConnectionClosedError(ConnectionRefused):
    """The connection closed while a request waited for its answer."""


async def _recv_json(ws: ClientConnection, tap: Tap | None = None) -> dict[str, Any]:
    try:
        raw = await ws.recv()
    except ConnectionClosed as e:
        raise ConnectionRefused(
            e.rcvd.code if e.rcvd else None, e.rcvd.reason if e.rcvd else "connection lost"
        ) from None
    msg = json.loads(raw)
    if not isinstance(msg, dict):
        raise ConnectionRefused(None, "the server sent something that is not a message")
    if tap is not None:
        tap("received", msg)
    return msg


async def _send_json(ws: ClientConnection, msg: dict[str, Any], tap: Tap | None) -> None:
    if tap is not None:
        tap("sent", msg)
    await ws.send(json.dumps(msg, ensure_ascii=False))


async def connect(
    url: str = DEFAULT_URL,
    *,
    account: str | None = None,
    password: str | None = None,
    token: str | None = None,
    subscriptions: Sequence[str] = (),
    origin: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
    validate: bool = False,
    open_timeout: float = 10,
    max_size: int | None = 16 * 1024 * 1024,
    answer_timeout: float = 30,
    tap: Tap | None = None,
) -> Client:
    """Connect and identify; raise ConnectionRefused when the server says no.

    With ``account`` and ``password`` the login is SCRAM-SHA-256; with ``token`` (from
    ``session.token``) the connection identifies as that token's account; with neither
    it asks for the server's anonymous role.
    """
    if token is not None and account is not None:
        raise ValueError("give account and password, or token, not both")
    ws = await ws_connect(
        url,
        origin=Origin(origin) if origin else None,
        ssl=ssl_context,
        open_timeout=open_timeout,
        max_size=max_size,
        compression=None,
    )
    try:
        async with asyncio.timeout(open_timeout + 30):
            hello = await _recv_json(ws, tap)
            if validate:
                check_server_message(hello)
            identify: dict[str, Any] = {
                "op": "identify",
                "protocol_version": PROTOCOL_VERSION,
                "subscriptions": list(subscriptions),
            }
            expected: bytes | None = None
            if account is not None:
                nonce = secrets.token_urlsafe(24)
                identify |= {"account": account, "client_nonce": nonce}
                await _send_json(ws, identify, tap)
                challenge = await _recv_json(ws, tap)
                if challenge.get("op") != "challenge":
                    raise ConnectionRefused(
                        None, f"expected a challenge, got {challenge.get('op')}"
                    )
                snonce, salt, iterations = (
                    challenge["nonce"],
                    challenge["salt"],
                    int(challenge["iterations"]),
                )
                if not snonce.startswith(nonce) or not 1 <= iterations <= MAX_ITERATIONS:
                    raise ConnectionRefused(None, "the server's challenge is not valid SCRAM")
                auth_message = (
                    f"n={account},r={nonce},r={snonce},s={salt},i={iterations},c=biws,r={snonce}"
                )
                proof, expected = await asyncio.to_thread(
                    scram_proof, password or "", salt, iterations, auth_message
                )
                await _send_json(ws, {"op": "identify_proof", "proof": proof}, tap)
            else:
                if token is not None:
                    identify["token"] = token
                await _send_json(ws, identify, tap)
            identified = await _recv_json(ws, tap)
            if validate:
                check_server_message(identified)
            if identified.get("op") != "identified":
                raise ConnectionRefused(None, f"expected identified, got {identified.get('op')}")
            if expected is not None:
                sig = identified.get("server_signature") or ""
                if not hmac.compare_digest(base64.b64decode(sig), expected):
                    raise ConnectionRefused(None, "the server's signature is wrong: not our server")
    except BaseException:
        await ws.close()
        raise
    return Client(ws, hello, identified, validate=validate, timeout=answer_timeout, tap=tap)


@contextlib.asynccontextmanager
async def open_client(url: str = DEFAULT_URL, **kwargs: Any) -> AsyncIterator[Client]:
    client = await connect(url, **kwargs)
    try:
        yield client
    finally:
        await client.close()


def check_server_message(msg: dict[str, Any]) -> None:
    """Validate a server message against the published models (tests, strict clients)."""
    from wallctl.api.protocol import SERVER_OPS

    model = SERVER_OPS.get(str(msg.get("op")))
    if model is None:
        raise ValueError(f"unknown server op {msg.get('op')!r}")
    model.model_validate(msg)
