"""MQTT payloads: JSON in and out, no I/O.

Commands are the WebSocket API's ``request`` and ``batch`` messages, decoded by the same
``wallctl.api.protocol`` code, so a command means the same thing either way; answers
have the WebSocket response shape. Federation adds the originating person to a request
and a ``status`` (``done`` or ``pending``) to its answers.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import Field, ValidationError

from wallctl.accounts import validate_account_name
from wallctl.api.protocol import (
    Batch,
    DecodeError,
    Message,
    MethodName,
    Request,
    RequestId,
    Revision,
    decode,
    encode,
    invalid_field,
    parse_json,
)
from wallctl.bus import BusEvent
from wallctl.errors import InvalidField, MalformedMessage, UnknownMethod, WallctlError
from wallctl.store import Actor
from wallctl.wallstate import WallState

Command = Request | Batch


def _text(payload: bytes, max_bytes: int) -> str:
    if len(payload) > max_bytes:
        raise DecodeError(MalformedMessage(f"message over {max_bytes} bytes"))
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        raise DecodeError(MalformedMessage("the payload is not UTF-8 JSON text")) from None


def decode_command(payload: bytes, max_bytes: int) -> Command:
    """A command payload to a request or batch; DecodeError saying what is wrong."""
    msg = decode(_text(payload, max_bytes), max_bytes)
    if not isinstance(msg, Request | Batch):
        raise DecodeError(
            UnknownMethod(
                f"op {msg.op!r} is not used over MQTT: the command topic names the account",
                field="op",
            )
        )
    return msg


class FederatedRequest(Message):
    """A command from another centre: a request plus the person who sent it there."""

    op: Literal["request"]
    id: RequestId
    method: MethodName
    params: dict[str, Any] = Field(default_factory=dict)
    if_revision: Revision | None = None
    # The account at the originating centre that sent it (for the audit log here).
    person: str = Field(min_length=1, max_length=64)


def decode_federated(payload: bytes, max_bytes: int) -> FederatedRequest:
    value = parse_json(_text(payload, max_bytes), max_bytes)
    if not isinstance(value, dict):
        raise DecodeError(MalformedMessage("a message must be a JSON object"))
    rid = value.get("id") if isinstance(value.get("id"), str | int) else None
    try:
        req = FederatedRequest.model_validate(value)
    except ValidationError as e:
        raise DecodeError(invalid_field(e), rid) from None
    try:
        validate_account_name(req.person)
    except WallctlError as e:
        raise DecodeError(InvalidField(e.message, field="person"), rid) from None
    return req


def encode_federated(
    request_id: str, method: str, params: dict[str, Any], if_revision: int | None, person: str
) -> bytes:
    body: dict[str, Any] = {"op": "request", "id": request_id, "method": method, "params": params}
    if if_revision is not None:
        body["if_revision"] = if_revision
    body["person"] = person
    return encode(body).encode()


def response(request_id: str | int | None, result: Any) -> dict[str, Any]:
    return {"op": "response", "id": request_id, "ok": True, "result": result}


def error_response(request_id: str | int | None, error: WallctlError) -> dict[str, Any]:
    return {"op": "response", "id": request_id, "ok": False, "error": error.to_dict()}


FedStatus = Literal["done", "pending"]


def federated_answer(reply: dict[str, Any], status: FedStatus, pending: str | None = None) -> bytes:
    body = {**reply, "status": status}
    if pending is not None:
        body["pending"] = pending
    return encode(body).encode()


def dumps(body: dict[str, Any]) -> bytes:
    return encode(body).encode()


def parse_json_object(payload: bytes, max_bytes: int) -> dict[str, Any]:
    value = parse_json(_text(payload, max_bytes), max_bytes)
    if not isinstance(value, dict):
        raise DecodeError(MalformedMessage("a message must be a JSON object"))
    return value


def loads_reply(payload: bytes, max_bytes: int) -> dict[str, Any]:
    """A federation answer from a peer; malformed ones raise DecodeError."""
    value = parse_json(_text(payload, max_bytes), max_bytes)
    if not isinstance(value, dict) or value.get("op") != "response":
        raise DecodeError(MalformedMessage("not a response"))
    if not isinstance(value.get("ok"), bool) or value.get("status") not in ("done", "pending"):
        raise DecodeError(MalformedMessage("a federation answer needs ok and status"))
    return value


# --- what a centre publishes --------------------------------------------------------------


def origin_of(actor: Actor) -> dict[str, Any]:
    out: dict[str, Any] = {"identity": actor.identity, "session": actor.session, "via": actor.via}
    if actor.origin is not None:
        out["centre"] = actor.origin
    return out


def online_payload(site: str, name: str, version: str, online: bool) -> bytes:
    return dumps(
        {"site": site, "name": name, "online": online, "version": version, "ts": time.time()}
    )


def state_payload(site: str, state: WallState, ts: float, actor: Actor | None) -> bytes:
    return dumps(
        {
            "site": site,
            "wall": state.wall,
            "revision": state.revision,
            "ts": ts,
            "origin": None if actor is None else origin_of(actor),
            "state": state.model_dump(mode="json"),
        }
    )


def event_payload(site: str, ev: BusEvent, revision: int | None = None) -> bytes:
    return dumps(
        {
            "site": site,
            "type": ev.type,
            "category": ev.category,
            "wall": ev.wall,
            "revision": revision,
            "ts": ev.ts,
            "origin": origin_of(ev.actor),
            "data": ev.data,
        }
    )
