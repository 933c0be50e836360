"""The Huawei TE / IdeaHub / CloudLink Box HTTP API, sans I/O.

Every call is ``POST /action.cgi?ActionID=WEB_<Name>API`` with a JSON body. The session
is two steps (Huawei "TE10, TE20 HTTP API 编程参考", 登录认证; IdeaHub API, 请求SessionID
and 登录):

1. ``WEB_RequestSessionIDAPI`` (empty body): the answer's ``Set-Cookie`` carries
   ``SessionID=...``, which every later request sends back as a cookie;
2. ``WEB_RequestCertificateAPI {"user", "password"}``: answers ``acCSRFToken``, which
   every later body carries.

Answers are ``{"success": 1, "data": ...}`` or ``{"success": 0, "error": {"id", "code",
"params"}}``. ``data`` is often itself a JSON text (``"{\\"acSessionId\\":...}"``), so it is
decoded a second time when it looks like JSON. A session the device no longer knows
(reboot, idle expiry, another login elsewhere) shows as HTTP 401/403 or one of the
session error codes below; :class:`SessionExpired` tells the driver to log in again and
repeat the request once.

This module builds requests (:class:`HttpRequest`) and reads answers; it never touches a
socket. The error code values and the call-status field names are those this package's
simulator uses, following the document's naming style (``sz`` strings, ``uc``/``ul``
numbers, ``b`` flags); check them against the device's own document before relying on a
particular number.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from drivers.errors import InvalidParams

ACTION_PATH = "/action.cgi"
ACTION_RE = re.compile(r"^WEB_[A-Za-z0-9]{1,64}API$")
COOKIE_NAME = "SessionID"
MAX_BODY = 1024 * 1024

# Session errors: log in again and repeat.
ERR_SESSION_INVALID = 101001
ERR_CSRF_INVALID = 101002
# Login refused (wrong user or password) and locked after too many attempts.
ERR_LOGIN_FAILED = 101003
ERR_USER_LOCKED = 101004
# The request itself.
ERR_BAD_PARAM = 102001
ERR_UNKNOWN_ACTION = 102002
# The endpoint's state does not allow it (no call to hang up, already in a call ...).
ERR_STATE = 103001
ERR_NO_SUCH_SITE = 103002

SESSION_ERRORS = frozenset({ERR_SESSION_INVALID, ERR_CSRF_INVALID})
ERROR_TEXT = {
    ERR_SESSION_INVALID: "session unknown or expired",
    ERR_CSRF_INVALID: "CSRF token missing or wrong",
    ERR_LOGIN_FAILED: "user name or password wrong",
    ERR_USER_LOCKED: "user locked after too many failed logins",
    ERR_BAD_PARAM: "parameter missing or invalid",
    ERR_UNKNOWN_ACTION: "no such action",
    ERR_STATE: "not possible in the current call state",
    ERR_NO_SUCH_SITE: "no call with that site handle",
}

# Call states of WEB_GetCallStatusInfoAPI -> the conference layer's words.
CALL_STATES = {
    "CALLING": "dialling",
    "ALERTING": "ringing",
    "INCOMING": "ringing",
    "CONNECTED": "connected",
    "DISCONNECTING": "disconnecting",
}

# SIP-style end codes of stLastCallEnd -> the conference layer's reason words.
END_REASONS = {
    486: "busy",
    600: "busy",
    404: "unreachable",
    604: "unreachable",
    603: "rejected",
    480: "no_answer",
    408: "no_answer",
    200: "remote_hangup",
    0: "local_hangup",
}

# Dial strings: SIP URIs, H.323 aliases, E.164 numbers, IP##extension.
DIAL_STRING = re.compile(r"^[A-Za-z0-9@.:_+\-*#/=;!~%]{1,128}$")


class ApiFailure(Exception):
    """``success: 0``: the device refused the request."""

    def __init__(self, code: int, error_id: int | None = None, params: list[Any] | None = None):
        self.code = code
        self.error_id = error_id
        self.params = params or []
        super().__init__(f"{code}: {ERROR_TEXT.get(code, 'refused')}")

    @property
    def text(self) -> str:
        return ERROR_TEXT.get(self.code, f"error {self.code}")


class SessionExpired(Exception):
    """The device no longer knows this session: log in again."""


class LoginRefused(Exception):
    def __init__(self, code: int) -> None:
        self.code = code
        super().__init__(ERROR_TEXT.get(code, f"login refused ({code})"))


class MalformedReply(Exception):
    """Not the API's JSON envelope (a proxy's error page, a truncated body ...)."""


@dataclass(frozen=True)
class HttpRequest:
    action: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    method: Literal["POST"] = "POST"

    @property
    def target(self) -> str:
        return f"{ACTION_PATH}?ActionID={self.action}"


def check_action(name: str) -> str:
    if not ACTION_RE.match(name):
        raise ValueError(f"{name!r} is not a WEB_<Name>API action")
    return name


def check_number(value: object, field_name: str = "number") -> str:
    if not isinstance(value, str) or not value:
        raise InvalidParams(f"{field_name} must be a non-empty string", field_name)
    if not DIAL_STRING.match(value):
        bad = next((c for c in value if not DIAL_STRING.match(c)), None)
        if len(value) > 128:
            raise InvalidParams(f"{field_name} must be at most 128 characters", field_name)
        raise InvalidParams(
            f"{field_name} may hold only letters, digits and @ . : _ + - * # / = ; ! ~ % "
            f"(found {bad!r})",
            field_name,
        )
    return value


def encode_body(params: Mapping[str, Any]) -> bytes:
    return json.dumps(dict(params), ensure_ascii=False, separators=(",", ":")).encode()


def session_cookie(headers: Iterable[tuple[str, str]]) -> str | None:
    """The ``SessionID`` value from the answer's ``Set-Cookie`` headers."""
    for name, value in headers:
        if name.lower() != "set-cookie":
            continue
        first = value.split(";", 1)[0].strip()
        key, sep, val = first.partition("=")
        if sep and key.strip() == COOKIE_NAME and val.strip():
            return val.strip()
    return None


def decode_reply(status: int, body: bytes) -> Any:
    """The ``data`` of a successful answer (JSON text decoded again); raise otherwise."""
    if status in (401, 403):
        raise SessionExpired(f"HTTP {status}")
    if status != 200:
        raise MalformedReply(f"HTTP {status}")
    if len(body) > MAX_BODY:
        raise MalformedReply(f"answer of {len(body)} bytes is over {MAX_BODY}")
    try:
        msg = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise MalformedReply("the answer is not JSON") from None
    if not isinstance(msg, dict) or msg.get("success") not in (0, 1):
        raise MalformedReply("the answer has no success field")
    if msg["success"] == 0:
        err = msg.get("error")
        if not isinstance(err, dict) or not isinstance(err.get("code"), int):
            raise MalformedReply("a failed answer without an error code")
        code = int(err["code"])
        if code in SESSION_ERRORS:
            raise SessionExpired(ERROR_TEXT[code])
        eid = err.get("id")
        params = err.get("params")
        raise ApiFailure(
            code, eid if isinstance(eid, int) else None, params if isinstance(params, list) else []
        )
    data = msg.get("data")
    if isinstance(data, str) and data[:1] in ("{", "["):
        try:
            return json.loads(data)
        except ValueError:
            return data
    return data


class Session:
    """Cookie and CSRF token of one login; builds every request of it."""

    def __init__(self) -> None:
        self.session_id: str | None = None
        self.csrf: str | None = None
        self.term_type: str = ""

    @property
    def logged_in(self) -> bool:
        return self.session_id is not None and self.csrf is not None

    def reset(self) -> None:
        self.session_id = None
        self.csrf = None

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json; charset=UTF-8"}
        if self.session_id:
            headers["Cookie"] = f"{COOKIE_NAME}={self.session_id}"
        return headers

    # step 1
    def request_session(self) -> HttpRequest:
        self.reset()
        return HttpRequest("WEB_RequestSessionIDAPI", b"", self._headers())

    def on_session(self, status: int, headers: Iterable[tuple[str, str]], body: bytes) -> None:
        data = decode_reply(status, body)
        sid = session_cookie(headers)
        if sid is None:
            raise MalformedReply("WEB_RequestSessionIDAPI set no SessionID cookie")
        self.session_id = sid
        if isinstance(data, dict):
            self.term_type = str(data.get("szTermType", ""))

    # step 2
    def login(self, user: str, password: str) -> HttpRequest:
        if self.session_id is None:
            raise RuntimeError("request a session first")
        body = encode_body({"user": user, "password": password})
        return HttpRequest("WEB_RequestCertificateAPI", body, self._headers())

    def on_login(self, status: int, body: bytes) -> None:
        try:
            data = decode_reply(status, body)
        except ApiFailure as e:
            raise LoginRefused(e.code) from None
        token = data.get("acCSRFToken") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            raise MalformedReply("WEB_RequestCertificateAPI returned no acCSRFToken")
        self.csrf = token

    # every later call
    def call(self, action: str, params: Mapping[str, Any] | None = None) -> HttpRequest:
        if not self.logged_in:
            raise SessionExpired("not logged in")
        body = {**dict(params or {}), "acCSRFToken": self.csrf}
        return HttpRequest(check_action(action), encode_body(body), self._headers())


# --- what the call-status answer says --------------------------------------------------


@dataclass(frozen=True)
class Site:
    handle: int
    number: str
    name: str
    state: str
    incoming: bool
    rate: int

    @property
    def status(self) -> str:
        return CALL_STATES.get(self.state, self.state.lower())

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.handle,
            "status": self.status,
            "device_status": self.state,
            "direction": "Incoming" if self.incoming else "Outgoing",
            "remote_number": self.number,
            "display_name": self.name,
            "call_rate": self.rate,
        }


@dataclass(frozen=True)
class CallStatus:
    sites: tuple[Site, ...]
    # The last call that ended: its handle, number and SIP-style end code.
    last_end: dict[str, Any] | None


def parse_call_status(data: Any) -> CallStatus:
    if not isinstance(data, dict):
        raise MalformedReply("WEB_GetCallStatusInfoAPI data is not an object")
    sites = []
    raw = data.get("astSiteList", [])
    if not isinstance(raw, list):
        raise MalformedReply("astSiteList is not a list")
    for s in raw:
        if not isinstance(s, dict) or not isinstance(s.get("ucSiteHandle"), int):
            continue
        sites.append(
            Site(
                handle=int(s["ucSiteHandle"]),
                number=str(s.get("szNumber", "")),
                name=str(s.get("szSiteName", "")),
                state=str(s.get("enCallState", "")),
                incoming=bool(s.get("bIncoming", 0)),
                rate=int(s["ulCallRate"]) if isinstance(s.get("ulCallRate"), int) else 0,
            )
        )
    last = data.get("stLastCallEnd")
    last_end = None
    if isinstance(last, dict) and isinstance(last.get("ucSiteHandle"), int):
        code = last.get("ulReason")
        code_i = int(code) if isinstance(code, int) else -1
        last_end = {
            "call_id": int(last["ucSiteHandle"]),
            "reason": END_REASONS.get(code_i, "failed"),
            "code": code_i,
            "text": str(last.get("szReason", "")),
            "remote": str(last.get("szNumber", "")),
            "seq": int(last["ulSeq"]) if isinstance(last.get("ulSeq"), int) else 0,
        }
    return CallStatus(tuple(sites), last_end)
