"""The control API's messages, sans I/O: text in, validated message objects out.

Nothing here touches a socket or the event loop, so every malformed input a client can
send is tested with plain strings. The same pydantic models validate what clients send
and generate the published JSON Schema (``wallctl.api.spec``), so the two cannot drift.

Every message is one JSON object with an ``op``. The server speaks first (hello); the
client identifies (with a SCRAM-SHA-256 exchange when it logs in to an account); then
requests, batches and events flow until either side closes.
"""

from __future__ import annotations

import json
from enum import IntEnum
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from wallctl.errors import InvalidField, MalformedMessage, UnknownMethod, WallctlError

PROTOCOL_VERSION = 1
SUPPORTED_VERSIONS = (1,)
MECHANISM = "SCRAM-SHA-256"
# Identify with a session token (from `session.token`) instead of an account.
TOKEN_MECHANISM = "token"

# Deeper than any real request; json's C parser would otherwise recurse as deep as the
# client likes (within the size limit) and hand us a structure that is costly to walk.
MAX_DEPTH = 16
# Values (scalars and containers) in one message: a 64 KiB array of zeros has ~32000.
MAX_VALUES = 4096
MAX_BATCH = 64
MAX_SUBSCRIPTIONS = 8


class CloseCode(IntEnum):
    """Why the server closed a connection (the 4000 range is the application's)."""

    # Anything not covered below; the reason text says more.
    UNKNOWN_REASON = 4000
    # Before Identify, a message was not a JSON object of a known op.
    MESSAGE_DECODE_ERROR = 4002
    # A request or batch arrived before Identify completed.
    NOT_IDENTIFIED = 4003
    # Identify (or its proof) arrived when the connection was not waiting for it.
    ALREADY_IDENTIFIED = 4004
    # Wrong account or password, or a bad token (answered only after the login delay).
    AUTHENTICATION_FAILED = 4005
    # The client's protocol_version is not one the server speaks.
    UNSUPPORTED_PROTOCOL_VERSION = 4006
    # Too many failed logins from this address recently: wait, then try again.
    LOGIN_THROTTLED = 4010
    # Identify did not complete within the identify timeout.
    IDENTIFY_TIMEOUT = 4011
    # An administrator ended this session (session.kick); the reason names who.
    SESSION_KICKED = 4012


CLOSE_CODE_TEXT: dict[CloseCode, str] = {
    CloseCode.UNKNOWN_REASON: "not covered by another code; see the reason text",
    CloseCode.MESSAGE_DECODE_ERROR: "before Identify, a message was not a valid JSON message",
    CloseCode.NOT_IDENTIFIED: "a request or batch arrived before Identify completed",
    CloseCode.ALREADY_IDENTIFIED: "identify or identify_proof arrived when not expected",
    CloseCode.AUTHENTICATION_FAILED: (
        "wrong account or password, or an unknown, expired or revoked token "
        "(sent after the login delay)"
    ),
    CloseCode.UNSUPPORTED_PROTOCOL_VERSION: "the client's protocol_version is not supported",
    CloseCode.LOGIN_THROTTLED: "too many failed logins from this address recently",
    CloseCode.IDENTIFY_TIMEOUT: "Identify did not complete in time",
    CloseCode.SESSION_KICKED: "an administrator ended this session (session.kick)",
}

# Standard codes the server also uses (RFC 6455): documented beside ours.
STANDARD_CLOSE_CODES: dict[int, str] = {
    1000: "normal closure",
    1001: "going away (the daemon stops)",
    1009: "message too big (over api.max_message_bytes)",
    1011: "the server hit an internal error",
}

ERROR_CODES: dict[str, str] = {
    "malformed_message": "not a JSON object, not UTF-8 text, nested too deep or too large",
    "unknown_method": "the method (or op) does not exist in this protocol version",
    "invalid_field": "a field has the wrong type or value; `field` is its path",
    "not_permitted": "the identity's role does not allow this method",
    "conflict": "if_revision is stale: the wall moved on (retry from the new revision)",
    "not_found": "the wall, window, layout, source, revision or device does not exist",
    "device_not_ready": "the device is not connected yet (retryable)",
    "device_error": "the device refused or failed the command",
    "rate_limited": "more requests than the connection's rate allows (retryable)",
    "aborted": "not run because another request of the batch failed",
    "unavailable": "the daemon cannot serve now (shutting down, store failed; retryable)",
    "internal": "a bug in wallctl; the message says nothing more on purpose",
}

Category = Literal[
    "wall",
    "layout",
    "session",
    "device",
    "federation",
    "source",
    "conference",
    "terminal",
    "camera",
]
CATEGORIES: dict[str, str] = {
    "wall": "wall.changed: every new revision of every wall, with the whole state",
    "layout": "layout.saved / layout.deleted: presets of a wall",
    "session": "session.opened / session.closed: who is connected (admin only)",
    "device": "device.status (link state), device.state (any cached value), matrix.route"
    " (a tie changed, by us, the front panel or another controller), display.power /"
    " display.input",
    "federation": "federation.pending / confirmed / rejected / expired / refused / outcome /"
    " peer: commands between centres (MQTT federation)",
    "source": "source.state: a source's phase changed (connecting, live, no_signal, failed,"
    " idle) with the reason and its last picture's time; source.added / source.removed: a"
    " source joined or left the catalogue at run time (a mobile terminal, mobile/<id>)",
    "conference": "conference.progress / result / ended / mute / share: calls between centres,"
    " step by step (dialling, ringing, connected, routed, window_opened), with the reason",
    "terminal": "terminal.published / terminal.unpublished: a mobile terminal started or"
    " stopped sending over WHIP (with the reason: deleted, inactive, replaced, failed);"
    " terminal.audio: the terminals heard on the centre's loudspeaker changed",
    "camera": "camera.motion / camera.tamper (active true/false), camera.events_stale (the"
    " event subscription could not be renewed), camera.profiles (streams changed), tour.started"
    " / step / paused / resumed / stopped: camera tours",
}
# The role a subscription needs; one not allowed is listed in `refused_subscriptions`.
CATEGORY_ROLE: dict[str, str] = {
    "wall": "viewer",
    "layout": "viewer",
    "session": "admin",
    "device": "viewer",
    "federation": "viewer",
    "source": "viewer",
    "conference": "viewer",
    "terminal": "viewer",
    "camera": "viewer",
}

RoleName = Literal["viewer", "operator", "admin"]
ROLE_RANK: dict[str, int] = {"viewer": 0, "operator": 1, "admin": 2}

# What each role may do; a method names the scope it needs.
ROLE_SCOPES: dict[str, tuple[str, ...]] = {
    "viewer": ("read", "subscribe"),
    "operator": ("read", "subscribe", "layouts", "windows", "sources", "ptz", "routes"),
    "admin": (
        "read",
        "subscribe",
        "layouts",
        "windows",
        "sources",
        "ptz",
        "routes",
        "accounts",
        "devices",
        "config",
        "sessions",
    ),
}


def role_allows(have: str, need: str) -> bool:
    return ROLE_RANK.get(have, -1) >= ROLE_RANK[need]


RequestId = (
    Annotated[str, Field(min_length=1, max_length=64)] | Annotated[StrictInt, Field(ge=0, le=2**53)]
)
MethodName = Annotated[str, Field(min_length=1, max_length=64)]
Revision = Annotated[StrictInt, Field(ge=0, le=2**53)]


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# --- client -> server -------------------------------------------------------------------


class Identify(Message):
    """First message of the client; with ``account`` it starts a SCRAM-SHA-256 login,
    with ``token`` (from ``session.token``) it identifies as that token's account.

    With neither, the connection gets the configured anonymous role (if any).
    """

    op: Literal["identify"]
    protocol_version: StrictInt = Field(ge=1, le=1000)
    account: str | None = Field(default=None, min_length=1, max_length=64)
    # A session token; give it or account, not both.
    token: str | None = Field(default=None, min_length=1, max_length=256)
    # SCRAM client nonce: printable ASCII without ',' (RFC 5802).
    client_nonce: str | None = Field(
        default=None, min_length=16, max_length=128, pattern=r"^[!-+\--<>-~]+$"
    )
    subscriptions: list[Category] = Field(default_factory=list, max_length=MAX_SUBSCRIPTIONS)


class IdentifyProof(Message):
    """Second step of a login: the SCRAM ClientProof, base64."""

    op: Literal["identify_proof"]
    proof: str = Field(min_length=1, max_length=256)


class Reidentify(Message):
    """Change event subscriptions without reconnecting; answered with ``identified``."""

    op: Literal["reidentify"]
    subscriptions: list[Category] = Field(max_length=MAX_SUBSCRIPTIONS)


class Request(Message):
    op: Literal["request"]
    id: RequestId
    method: MethodName
    params: dict[str, Any] = Field(default_factory=dict)
    # Refuse with `conflict` unless the wall is still at this revision.
    if_revision: Revision | None = None


class BatchItem(Message):
    id: RequestId
    method: MethodName
    params: dict[str, Any] = Field(default_factory=dict)
    # In ordered batches only: checked when this request runs.
    if_revision: Revision | None = None


class Batch(Message):
    """Several requests answered by one ``batch_response``.

    ``atomic``: wall changes of one wall applied all or nothing as one revision (one
    event). ``ordered``: run one after another, stopping at the first failure.
    In both, a parameter value ``{"$ref": "<id>.<path>"}`` takes a value from the result
    of an earlier request of the batch (e.g. ``{"$ref": "open.window.id"}``).
    """

    op: Literal["batch"]
    id: RequestId
    mode: Literal["atomic", "ordered"]
    requests: list[BatchItem] = Field(min_length=1, max_length=MAX_BATCH)
    # atomic only: the wall must still be at this revision.
    if_revision: Revision | None = None


ClientMessage = Identify | IdentifyProof | Reidentify | Request | Batch
CLIENT_OPS: dict[str, type[Message]] = {
    "identify": Identify,
    "identify_proof": IdentifyProof,
    "reidentify": Reidentify,
    "request": Request,
    "batch": Batch,
}


# --- server -> client -------------------------------------------------------------------


class Authentication(Message):
    mechanisms: list[str]
    # Role a client gets by identifying without an account; null: a login is required.
    anonymous_role: RoleName | None


class Hello(Message):
    op: Literal["hello"]
    server: Literal["wallctl"] = "wallctl"
    server_version: str
    protocol_version: StrictInt
    supported_versions: list[StrictInt]
    session: str
    authentication: Authentication


class Challenge(Message):
    """SCRAM server-first: salt (base64), iterations and the combined nonce."""

    op: Literal["challenge"]
    mechanism: Literal["SCRAM-SHA-256"] = "SCRAM-SHA-256"
    salt: str
    iterations: StrictInt
    nonce: str


class IdentityInfo(Message):
    account: str
    display_name: str
    role: RoleName


class Limits(Message):
    max_message_bytes: StrictInt
    rate_limit: float
    rate_burst: StrictInt
    event_queue: StrictInt
    max_batch: StrictInt


class Identified(Message):
    op: Literal["identified"]
    protocol_version: StrictInt
    session: str
    identity: IdentityInfo
    scopes: list[str]
    subscriptions: list[Category]
    refused_subscriptions: list[Category]
    # SCRAM ServerSignature (base64): the client checks it to know the server holds
    # its verifier. Null for an anonymous identity and on reidentify.
    server_signature: str | None
    limits: Limits


class ErrorBody(Message):
    code: str
    message: str
    # Dotted path of the field at fault, e.g. "params.x" or "requests[2].params.window".
    field: str | None
    retryable: bool


class Response(Message):
    """The one answer to a request: ``ok`` with ``result``, or ``error``.

    ``id`` is null only when the message was too broken to read its id.
    """

    op: Literal["response"]
    id: RequestId | None
    ok: bool
    result: Any = None
    error: ErrorBody | None = None


class BatchResult(Message):
    id: RequestId
    ok: bool
    result: Any = None
    error: ErrorBody | None = None


class BatchResponse(Message):
    op: Literal["batch_response"]
    id: RequestId
    mode: Literal["atomic", "ordered"]
    ok: bool
    # One entry per request of the batch, in order.
    results: list[BatchResult]
    # The first failure (atomic: why nothing was applied), with the path of its field.
    error: ErrorBody | None = None
    # atomic: the revision the batch made (or the unchanged one).
    revision: StrictInt | None = None


class EventOrigin(Message):
    """Who caused the event: the account (or "system") and its session."""

    identity: str
    session: str | None
    via: str


class Event(Message):
    op: Literal["event"]
    # Per connection, from 1, without gaps; a `resync` event marks events not sent.
    seq: StrictInt
    type: str
    category: Category | None
    wall: str | None = None
    revision: StrictInt | None = None
    origin: EventOrigin | None = None
    data: dict[str, Any] = Field(default_factory=dict)


ServerMessage = Hello | Challenge | Identified | Response | BatchResponse | Event
SERVER_OPS: dict[str, type[Message]] = {
    "hello": Hello,
    "challenge": Challenge,
    "identified": Identified,
    "response": Response,
    "batch_response": BatchResponse,
    "event": Event,
}

EVENT_TYPES: dict[str, str] = {
    "snapshot": "the state of every wall, sent after subscribing and after resync",
    "resync": "events were dropped because the client read too slowly; a snapshot follows",
    "wall.changed": "a wall has a new revision; data.state is the whole new state",
    "layout.saved": "a preset was saved (data.name)",
    "layout.deleted": "a preset was deleted (data.name)",
    "session.opened": "a client identified (data.session, data.account, data.role)",
    "session.closed": "a client went away",
    "federation.pending": "a command from another centre awaits confirmation here (data.id)",
    "federation.confirmed": "a pending federated command was confirmed and run (data.ok)",
    "federation.rejected": "a pending federated command was rejected (data.reason)",
    "federation.expired": "a pending federated command was not decided in time",
    "federation.refused": "another centre sent a command this centre's policy refuses",
    "federation.outcome": "a command this centre sent was decided at its peer (data.ok)",
    "federation.peer": "a watched centre's availability or bridge link changed",
}


# --- decoding ---------------------------------------------------------------------------


class DecodeError(Exception):
    """A client message that cannot be used; ``request_id`` when one could be read."""

    def __init__(self, error: WallctlError, request_id: str | int | None = None) -> None:
        super().__init__(error.message)
        self.error = error
        self.request_id = request_id


def _check_shape(value: Any) -> None:
    """Refuse deep nesting and huge element counts before pydantic walks the value."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    count = 0
    while stack:
        v, depth = stack.pop()
        count += 1
        if count > MAX_VALUES:
            raise MalformedMessage(f"a message may hold at most {MAX_VALUES} values")
        if isinstance(v, dict):
            if depth >= MAX_DEPTH and v:
                raise MalformedMessage(f"a message may nest at most {MAX_DEPTH} levels")
            stack.extend((x, depth + 1) for x in v.values())
        elif isinstance(v, list):
            if depth >= MAX_DEPTH and v:
                raise MalformedMessage(f"a message may nest at most {MAX_DEPTH} levels")
            stack.extend((x, depth + 1) for x in v)


def parse_json(frame: str | bytes, max_bytes: int) -> Any:
    if isinstance(frame, bytes):
        raise DecodeError(MalformedMessage("binary frames are not supported: send JSON as text"))
    # A str of n characters is at least n bytes of UTF-8; the socket layer enforces the
    # byte limit exactly, this only guards callers that skip it.
    if len(frame) > max_bytes:
        raise DecodeError(MalformedMessage(f"message over {max_bytes} bytes"))
    try:
        # orjson: strict RFC 8259 (no NaN or Infinity, no lone surrogates), several times
        # faster than json on request-sized messages, and no recursion of ours.
        value = orjson.loads(frame)
    except orjson.JSONDecodeError as e:
        if "recursion" in str(e):
            raise DecodeError(
                MalformedMessage(f"a message may nest at most {MAX_DEPTH} levels")
            ) from None
        rest = frame[e.pos : e.pos + 9].lstrip("-")
        for name in ("NaN", "Infinity"):
            if rest.startswith(name):
                # What Python's json.dumps writes for a float it cannot put in JSON.
                raise DecodeError(MalformedMessage(f"not valid JSON: {name} is not JSON")) from None
        raise DecodeError(MalformedMessage(f"not valid JSON: {e}")) from None
    # Counting brackets is C-speed and bounds the nesting; the walk runs only for the
    # rare message that could break a limit.
    if frame.count("[") + frame.count("{") > MAX_DEPTH or len(frame) > 2 * MAX_VALUES:
        try:
            _check_shape(value)
        except MalformedMessage as e:
            raise DecodeError(e, _peek_id(value)) from None
    return value


def _peek_id(value: Any) -> str | int | None:
    if isinstance(value, dict):
        rid = value.get("id")
        if isinstance(rid, str) and 0 < len(rid) <= 64:
            return rid
        if isinstance(rid, int) and not isinstance(rid, bool) and 0 <= rid <= 2**53:
            return rid
    return None


def decode(frame: str | bytes, max_bytes: int = 65536) -> ClientMessage:
    """One client frame to a validated message; raise DecodeError saying what is wrong."""
    value = parse_json(frame, max_bytes)
    if not isinstance(value, dict):
        raise DecodeError(MalformedMessage("a message must be a JSON object"))
    op = value.get("op")
    rid = _peek_id(value)
    if not isinstance(op, str):
        raise DecodeError(InvalidField("op must be a string naming the message", field="op"), rid)
    model = CLIENT_OPS.get(op)
    if model is None:
        raise DecodeError(UnknownMethod(f"unknown op {op[:64]!r}", field="op"), rid)
    try:
        return model.model_validate(value)  # type: ignore[return-value]
    except ValidationError as e:
        raise DecodeError(invalid_field(e), rid) from None


_WORDS = {
    "int_type": "must be an integer",
    "float_type": "must be a number",
    "finite_number": "must be a finite number",
    "bool_type": "must be true or false",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "missing": "is required",
    "extra_forbidden": "is not a known field",
}


def field_path(loc: tuple[int | str, ...], prefix: str = "") -> str:
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith(("function-", "constrained-")) or part in ("str", "int", "float"):
            # A union's branch names, not fields of the request.
            continue
        else:
            out += f".{part}" if out else part
    return out


def invalid_field(err: ValidationError, prefix: str = "") -> InvalidField:
    """The first problem of ``err`` as an InvalidField naming its path."""
    e = err.errors(include_url=False)[0]
    kind = e["type"]
    ctx = e.get("ctx") or {}
    path = field_path(tuple(e["loc"]), prefix) or prefix or None
    if kind in _WORDS:
        msg = _WORDS[kind]
    elif kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        bound = next(iter(ctx.values()))
        msg = {
            "greater_than_equal": ">=",
            "greater_than": ">",
            "less_than_equal": "<=",
            "less_than": "<",
        }[kind]
        msg = f"must be {msg} {bound}"
    elif kind == "literal_error":
        msg = f"must be one of {ctx.get('expected')}"
    elif kind == "string_too_long":
        msg = f"must be at most {ctx.get('max_length')} characters"
    elif kind == "too_long":
        msg = f"must have at most {ctx.get('max_length')} items"
    elif kind == "string_too_short":
        msg = "must not be empty" if ctx.get("min_length") == 1 else str(e["msg"]).lower()
    else:
        msg = str(e["msg"]).lower()
    return InvalidField(f"{path or 'message'} {msg}", field=path)


def encode(message: dict[str, Any]) -> str:
    """Compact JSON text, Chinese names as themselves (half the bytes of \\u escapes)."""
    try:
        return orjson.dumps(message, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        # orjson refuses what json takes (integers over 64 bits): keep json's answer.
        return json.dumps(message, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def error_response(request_id: str | int | None, error: WallctlError) -> dict[str, Any]:
    return {"op": "response", "id": request_id, "ok": False, "error": error.to_dict()}
