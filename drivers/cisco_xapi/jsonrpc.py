"""xAPI over WebSocket (``/ws``): JSON-RPC 2.0 messages, sans I/O.

Requests name the xAPI verb and path in ``method`` -- ``xCommand/Dial``,
``xCommand/Audio/Microphones/Mute`` -- or use ``xGet``/``xSet``/``xQuery`` with a
``Path`` list, and ``xFeedback/Subscribe {Query, NotifyCurrentValue}`` (answered with
``{"Id": n}``), after which the codec pushes ``xFeedback/Event`` notifications whose
params hold the subscription ``Id`` and a tree rooted at ``Status``/``Event``/
``Configuration``. A command the codec refuses answers with error code 1 and the
command's own result (``Reason``) in ``data``.

Two ways to authenticate are seen in the wild: an HTTP Basic ``Authorization`` header on
the upgrade request (what ``xows`` and most integrations send), and -- for clients that
cannot set headers, such as browsers -- a subprotocol ``auth-<base64url(user:pass)>``,
which the codec echoes back.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from drivers.cisco_xapi.tshell import Pair, Path, Scalar
from drivers.cisco_xapi.values import check_node

# JSON-RPC 2.0 and the xAPI's own codes (the codec documents -31999..-31997 and 1).
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
PERMISSION_DENIED = -31999
SUBSCRIBER_COUNT_EXCEEDED = -31998
NOT_READY = -31997
COMMAND_ERROR = 1

MAX_MESSAGE = 1024 * 1024


class ProtocolError(Exception):
    """The peer sent something that is not a JSON-RPC message of this protocol."""


# --- authentication ----------------------------------------------------------------------


def basic_auth_header(user: str, password: str) -> str:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return f"Basic {token}"


def auth_subprotocol(user: str, password: str) -> str:
    token = base64.urlsafe_b64encode(f"{user}:{password}".encode()).decode().rstrip("=")
    return f"auth-{token}"


def _decode_userpass(raw: bytes) -> tuple[str, str] | None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    user, sep, password = text.partition(":")
    return (user, password) if sep else None


def parse_basic_auth(header: str | None) -> tuple[str, str] | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic" or not token:
        return None
    try:
        raw = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    return _decode_userpass(raw)


def parse_auth_subprotocol(protocol: str) -> tuple[str, str] | None:
    if not protocol.startswith("auth-"):
        return None
    token = protocol[5:]
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        return None
    return _decode_userpass(raw)


# --- messages ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Response:
    id: int | str
    result: Any = None
    # {"code": int, "message": str, "data": ...} when the request failed.
    error: dict[str, Any] | None = None


@dataclass(frozen=True)
class Feedback:
    """A pushed ``xFeedback/Event``: the subscription and the tree as flat pairs."""

    subscription: int
    pairs: tuple[Pair, ...]
    tree: dict[str, Any]


Incoming = Response | Feedback


def command_method(path: Sequence[str]) -> str:
    return "xCommand/" + "/".join(check_node(p, "command") for p in path)


class JsonRpcClient:
    """Numbers requests and turns received text into :data:`Incoming` messages."""

    def __init__(self) -> None:
        self._next_id = 1

    def request(self, method: str, params: Mapping[str, Any] | None = None) -> tuple[int, str]:
        rid = self._next_id
        self._next_id += 1
        msg = {"jsonrpc": "2.0", "id": rid, "method": method, "params": dict(params or {})}
        return rid, json.dumps(msg, ensure_ascii=False, separators=(",", ":"))

    def receive(self, text: str | bytes) -> Incoming:
        if len(text) > MAX_MESSAGE:
            raise ProtocolError(f"message of {len(text)} bytes is over {MAX_MESSAGE}")
        try:
            msg = json.loads(text)
        except (ValueError, UnicodeDecodeError) as e:
            raise ProtocolError(f"not JSON: {e}") from None
        if not isinstance(msg, dict) or msg.get("jsonrpc") != "2.0":
            raise ProtocolError("not a JSON-RPC 2.0 message")
        if "id" in msg and msg["id"] is not None and "method" not in msg:
            rid = msg["id"]
            if not isinstance(rid, int | str) or isinstance(rid, bool):
                raise ProtocolError("response id must be a number or string")
            error = msg.get("error")
            if error is not None:
                if not isinstance(error, dict) or not isinstance(error.get("code"), int):
                    raise ProtocolError("error must be an object with an integer code")
                return Response(rid, error=error)
            if "result" not in msg:
                raise ProtocolError("response without result or error")
            return Response(rid, result=msg["result"])
        if msg.get("method") == "xFeedback/Event":
            params = msg.get("params")
            if not isinstance(params, dict):
                raise ProtocolError("xFeedback/Event without params")
            tree = {k: v for k, v in params.items() if k != "Id"}
            sub = params.get("Id")
            if not isinstance(sub, int) or isinstance(sub, bool):
                raise ProtocolError("xFeedback/Event without a subscription Id")
            return Feedback(sub, tuple(flatten(tree)), tree)
        if "id" in msg and msg.get("id") is None and "error" in msg:
            # A parse error the codec could not tie to a request (JSON-RPC allows id null).
            return Response("", error=msg["error"])
        raise ProtocolError(f"unexpected message: method {str(msg.get('method'))[:64]!r}")


def error_reason(error: Mapping[str, Any]) -> str:
    """The person-readable reason of an error: the command's Reason, else the message."""
    data = error.get("data")
    if isinstance(data, dict):
        for key in ("Reason", "reason", "XPath", "Cause"):
            if isinstance(data.get(key), str) and data[key]:
                return str(data[key])
    return str(error.get("message") or f"error {error.get('code')}")


# --- trees <-> flat pairs ----------------------------------------------------------------


def flatten(tree: Any, prefix: Path = ()) -> Iterator[Pair]:
    """``{"Status": {"Call": [{"id": 3, "Status": "Connected"}]}}`` ->
    ``(("Status", "Call", 3, "Status"), "Connected")``. Instances are lists of objects
    carrying ``id``; a list of scalars is numbered from 1."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from flatten(value, (*prefix, str(key)))
    elif isinstance(tree, list):
        for i, item in enumerate(tree, start=1):
            if isinstance(item, dict) and "id" in item:
                ident = item["id"]
                inst: str | int = int(ident) if str(ident).isdigit() else str(ident)
                rest = {k: v for k, v in item.items() if k != "id"}
                if not rest:
                    continue
                yield from flatten(rest, (*prefix, inst))
            else:
                yield from flatten(item, (*prefix, i))
    elif isinstance(tree, bool):
        yield prefix, "True" if tree else "False"
    elif isinstance(tree, int | str):
        yield prefix, tree
    elif isinstance(tree, float):
        yield prefix, str(tree)
    elif tree is None:
        yield prefix, ""


def nest(pairs: Sequence[tuple[Path, Scalar]]) -> dict[str, Any]:
    """The inverse of :func:`flatten` (the simulator writes trees from its flat state)."""
    root: dict[str, Any] = {}
    for path, value in pairs:
        node: Any = root
        for i, part in enumerate(path):
            last = i == len(path) - 1
            nxt = path[i + 1] if not last else None
            if isinstance(part, int):
                # node is the instance list of the previous key
                item = next((x for x in node if x.get("id") == part), None)
                if item is None:
                    item = {"id": part}
                    node.append(item)
                if last:
                    continue
                node = item
                continue
            if last:
                node[part] = value
            elif isinstance(nxt, int):
                node = node.setdefault(part, [])
            else:
                node = node.setdefault(part, {})
    return root
