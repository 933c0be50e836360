"""The Huawei TE / IdeaHub / CloudLink Box HTTP API, sans I/O.

Every call is ``POST /action.cgi?ActionID=WEB_<Name>API`` with a JSON body (none for
actions without parameters). What each request and answer holds, and which source says
so, is in ``docs/huawei-te-api-notes.md``; in short:

- session (Huawei "TE10, TE20 HTTP API 编程参考", 登录认证; IdeaHub API 0014-0016):
  ``WEB_RequestSessionIDAPI`` sets ``SessionID`` in ``Set-Cookie``;
  ``WEB_RequestCertificateAPI {"user", "password"}`` answers ``acCSRFToken``;
  ``WEB_ChangeSessionIDAPI`` then hands out a fresh ``SessionID``. Every later request
  sends the cookie and carries ``acCSRFToken`` in its body.
- answers are ``{"success": 1, "data": ...}`` (``data`` usually a JSON *text*, decoded a
  second time here) or ``{"success": 0, "error": {"id", "code", "params"}}``. The document
  gives no code a meaning we could read, so a failure keeps its numbers and no more.
- the endpoint pushes nothing to an HTTP client: state and ``MSG_*`` messages are fetched
  with the keep-alive read ``WEB_GetMailboxDataAPI`` (Huawei's eSDK sample polls every
  600 ms). :func:`parse_mailbox` reads it, accepting the spellings seen in the field.

This module builds requests (:class:`HttpRequest`) and reads answers; it never touches a
socket.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from drivers.errors import InvalidParams

ACTION_PATH = "/action.cgi"
ACTION_RE = re.compile(r"^WEB_[A-Za-z0-9]{1,64}API\Z")
COOKIE_NAME = "SessionID"
MAX_BODY = 1024 * 1024

# ActionIDs this package uses (docs/huawei-te-api-notes.md says where each comes from).
REQUEST_SESSION = "WEB_RequestSessionIDAPI"
REQUEST_CERTIFICATE = "WEB_RequestCertificateAPI"
CHANGE_SESSION = "WEB_ChangeSessionIDAPI"
MAILBOX = "WEB_GetMailboxDataAPI"
CALL_NUMBER = "WEB_CallNumberAPI"
CANCEL_CALL = "WEB_CancelCallAPI"
HANGUP_CALL = "WEB_HangupCallAPI"
INCOMING_CALL_PROC = "WEB_IncomingCallProcAPI"
OPEN_MIC = "WEB_OpenMicAPI"
CLOSE_MIC = "WEB_CloseMicAPI"
AUDIO_PARAMS = "WEB_InitAudioCtrlParamsAPI"
START_AUX = "WEB_StartSendAuxStreamAPI"
STOP_AUX = "WEB_StopSendAuxStreamAPI"
IS_SENDING_AUX = "WEB_IsSendAuxStreamAPI"
CALL_TYPES = "WEB_RequestCallTypeDataAPI"

# Messages (IdeaHub MSG_CALL_RSP page; Huawei's eSDK TE sample for the others).
MSG_START_CALL = "MSG_START_CALL"
MSG_CALL_RSP = "MSG_CALL_RSP"
MSG_CANCEL_CALL = "MSG_CANCEL_CALL"
MSG_END_CONF_RSP = "MSG_END_CONF_RSP"
MSG_REJECT_CALL = "MSG_REJECT_CALL"
MSG_AUXVIDEO_SEND_RESULT = "MSG_AUXVIDEO_SEND_RESULT"

# MSG_CALL_RSP subMsgID: bits 0-3 the direction, bits 4-7 the site handle (0xF: PSTN).
SUB_INCOMING = 1
SUB_OUTGOING = 2
PSTN_HANDLE = 0xF

# The one failure the document shows (on every page); its meaning is not given.
EXAMPLE_ERROR_ID = 100666995
EXAMPLE_ERROR_CODE = 33558532

# ucMediaType of WEB_IncomingCallProcAPI (field integrations: 0 audio only, 1 video).
MEDIA_AUDIO, MEDIA_VIDEO = 0, 1

# MSG_CALL_RSP failure codes -> the conference layer's reason words. ASSUMED: the
# document's code table was out of reach; these are the SIP causes the simulator uses
# (and many gateways pass through). Any other code is "failed" with the code kept.
END_REASONS = {
    486: "busy",
    600: "busy",
    404: "unreachable",
    604: "unreachable",
    603: "rejected",
    480: "no_answer",
    408: "no_answer",
}

# Dial strings: SIP URIs, H.323 aliases, E.164 numbers, IP##extension.
DIAL_STRING = re.compile(r"^[A-Za-z0-9@.:_+\-*#/=;!~%]{1,128}\Z")


class ApiFailure(Exception):
    """``success: 0``: the endpoint refused the request."""

    def __init__(self, code: int, error_id: int | None = None, params: list[Any] | None = None):
        self.code = code
        self.error_id = error_id
        self.params = params or []
        super().__init__(self.text)

    @property
    def text(self) -> str:
        ident = f", error id {self.error_id}" if self.error_id is not None else ""
        extra = f", params {self.params!r}" if self.params else ""
        return f"error code {self.code}{ident}{extra}"


class SessionLost(Exception):
    """The endpoint no longer knows this session (HTTP 401/403): log in again."""


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
        if len(value) > 128:
            raise InvalidParams(f"{field_name} must be at most 128 characters", field_name)
        bad = next((c for c in value if not DIAL_STRING.match(c)), None)
        raise InvalidParams(
            f"{field_name} may hold only letters, digits and @ . : _ + - * # / = ; ! ~ % "
            f"(found {bad!r})",
            field_name,
        )
    return value


def encode_body(params: Mapping[str, Any]) -> bytes:
    # Compact, as the document's examples are written.
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


def _int(value: object) -> int | None:
    """An integer field; a string of digits is tolerated too."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def json_text(value: Any) -> Any:
    """``value`` decoded once more when it is a JSON text (``"{...}"`` / ``"[...]"``)."""
    if isinstance(value, str) and value.lstrip()[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def decode_reply(status: int, body: bytes) -> Any:
    """The ``data`` of a successful answer (JSON text decoded again); raise otherwise."""
    if status in (401, 403):
        raise SessionLost(f"HTTP {status}")
    if status != 200:
        raise MalformedReply(f"HTTP {status}")
    if len(body) > MAX_BODY:
        raise MalformedReply(f"answer of {len(body)} bytes is over {MAX_BODY}")
    try:
        msg = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise MalformedReply("the answer is not JSON") from None
    if not isinstance(msg, dict):
        raise MalformedReply("the answer is not a JSON object")
    success = _int(msg.get("success"))
    if success not in (0, 1):
        raise MalformedReply("the answer has no success field")
    if success == 0:
        err = msg.get("error")
        code = _int(err.get("code")) if isinstance(err, dict) else None
        if not isinstance(err, dict) or code is None:
            raise MalformedReply("a failed answer without an error code")
        params = err.get("params")
        raise ApiFailure(code, _int(err.get("id")), params if isinstance(params, list) else [])
    return json_text(msg.get("data"))


class Session:
    """Cookie and CSRF token of one login; builds every request of it."""

    def __init__(self) -> None:
        self.session_id: str | None = None
        self.csrf: str | None = None
        self.term_type: str = ""
        # The id came in ``acSessionId`` rather than a cookie (older firmware).
        self.id_in_body = False

    @property
    def logged_in(self) -> bool:
        return self.session_id is not None and self.csrf is not None

    def reset(self) -> None:
        self.session_id = None
        self.csrf = None
        self.id_in_body = False

    def _headers(self, with_body: bool) -> dict[str, str]:
        headers: dict[str, str] = {}
        if with_body:
            headers["Content-Type"] = "application/json; charset=UTF-8"
        if self.session_id:
            # The flow description insists on this spelling ("注意大小写").
            headers["Cookie"] = f"{COOKIE_NAME}={self.session_id}"
            if self.id_in_body:
                # Firmware that hands the id out in the body reads it from this header
                # (field integrations); the cookie goes along for the others.
                headers["Sessionid"] = self.session_id
        return headers

    def _take_session(self, headers: Iterable[tuple[str, str]], data: Any) -> str | None:
        sid = session_cookie(headers)
        if isinstance(data, dict):
            self.term_type = str(data.get("szTermType", self.term_type))
            # Older firmware hands the id out in the body ("TE10、TE20 now put it in the
            # cookie", says the document; two integrations still read acSessionId first).
            legacy = data.get("acSessionId")
            if sid is None and isinstance(legacy, str) and legacy.strip():
                sid = legacy.strip()
                self.id_in_body = True
        return sid

    # step 1
    def request_session(self) -> HttpRequest:
        self.reset()
        return HttpRequest(REQUEST_SESSION, b"", self._headers(False))

    def on_session(self, status: int, headers: Iterable[tuple[str, str]], body: bytes) -> None:
        data = decode_reply(status, body)
        self.id_in_body = False
        sid = self._take_session(headers, data)
        if sid is None:
            raise MalformedReply(f"{REQUEST_SESSION} set no {COOKIE_NAME} cookie")
        self.session_id = sid

    # step 2
    def login(self, user: str, password: str) -> HttpRequest:
        if self.session_id is None:
            raise RuntimeError("request a session first")
        body = encode_body({"user": user, "password": password})
        return HttpRequest(REQUEST_CERTIFICATE, body, self._headers(True))

    def on_login(self, status: int, body: bytes) -> None:
        data = decode_reply(status, body)
        token = data.get("acCSRFToken") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            raise MalformedReply(f"{REQUEST_CERTIFICATE} returned no acCSRFToken")
        self.csrf = token

    # step 3
    def change_session(self) -> HttpRequest:
        if not self.logged_in:
            raise RuntimeError("log in first")
        return HttpRequest(CHANGE_SESSION, b"", self._headers(False))

    def on_change_session(
        self, status: int, headers: Iterable[tuple[str, str]], body: bytes
    ) -> bool:
        """Adopt the fresh session id; False when the answer carried none."""
        data = decode_reply(status, body)
        sid = self._take_session(headers, data)
        if sid is None:
            return False
        self.session_id = sid
        return True

    # every later call
    def call(self, action: str, params: Mapping[str, Any] | None = None) -> HttpRequest:
        if not self.logged_in:
            raise SessionLost("not logged in")
        body = {**dict(params or {}), "acCSRFToken": self.csrf}
        return HttpRequest(check_action(action), encode_body(body), self._headers(True))


# --- the keep-alive read: state and messages ------------------------------------------------

Phase = Literal["idle", "setup", "up"]


@dataclass(frozen=True)
class CallState:
    """``state`` of the mailbox. ``phase`` is None when the fields say nothing we know."""

    phase: Phase | None
    callstate: int | None = None
    confstate: int | str | None = None
    conftype: int | None = None
    calltype: int | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Message:
    name: str
    sub_msg_id: int | None
    param1: int | None
    param2: int | None
    data: Any

    def _data_int(self, key: str) -> int | None:
        return _int(self.data.get(key)) if isinstance(self.data, dict) else None

    @property
    def handle(self) -> int | None:
        """The site handle: ``siteNum`` in the data, else bits 4-7 of ``subMsgID``."""
        site = self._data_int("siteNum")
        if site is None:
            site = self._data_int("ucSiteHandle")
        if site is None and self.sub_msg_id is not None and self.sub_msg_id > 0xF:
            site = (self.sub_msg_id >> 4) & 0xF
        return site

    @property
    def incoming(self) -> bool | None:
        """Direction: from ``callDir`` (1 = we call) or the low bits of ``subMsgID``."""
        call_dir = self._data_int("callDir")
        if call_dir is not None:
            return call_dir != 1
        if self.sub_msg_id is not None:
            low = self.sub_msg_id & 0xF
            if low in (SUB_INCOMING, SUB_OUTGOING):
                return low == SUB_INCOMING
        return None

    @property
    def result(self) -> int | None:
        """0 success, otherwise the failure code (``Data.result``, else ``Param1``)."""
        res = self._data_int("result")
        if res is not None:
            return res
        return self.param1

    @property
    def failure_code(self) -> int | None:
        """The code that says why a call failed (``result``, else ``Param2``)."""
        res = self._data_int("result")
        if res not in (None, 0, 1):
            return res
        return self.param2 if self.param2 not in (None, 0) else res

    def text(self, key: str) -> str:
        value = self.data.get(key) if isinstance(self.data, dict) else None
        return value if isinstance(value, str) else ""


@dataclass(frozen=True)
class Mailbox:
    state: CallState | None
    messages: tuple[Message, ...]


def _field(item: Mapping[str, Any], *names: str) -> Any:
    lowered = {k.lower(): v for k, v in item.items() if isinstance(k, str)}
    for name in names:
        if name.lower() in lowered:
            return lowered[name.lower()]
    return None


def parse_message(item: Any) -> Message | None:
    if not isinstance(item, dict):
        return None
    name = _field(item, "msgName", "name")
    if not isinstance(name, str) or not name.startswith("MSG_"):
        return None
    return Message(
        name=name,
        sub_msg_id=_int(_field(item, "subMsgID", "subMsgId")),
        param1=_int(_field(item, "param1")),
        param2=_int(_field(item, "param2")),
        data=json_text(_field(item, "msgData", "data")),
    )


def parse_state(raw: Any) -> CallState | None:
    if not isinstance(raw, dict):
        return None
    callstate = _int(raw.get("callstate"))
    conftype = _int(raw.get("conftype"))
    calltype = _int(raw.get("calltype"))
    conf = raw.get("confstate", raw.get("confState"))
    confstate: int | str | None = conf if isinstance(conf, str) else _int(conf)
    if isinstance(confstate, str) and confstate.strip().isdigit():
        confstate = int(confstate)
    phase: Phase | None = None
    if (conftype is not None and conftype > 0) or callstate == 2:
        phase = "up"
    elif callstate == 1 or confstate in (1, 2):
        phase = "setup"
    elif callstate == 0 and conftype in (0, None) and confstate in (0, "", None):
        phase = "idle"
    return CallState(phase, callstate, confstate, conftype, calltype, dict(raw))


def parse_mailbox(data: Any) -> Mailbox:
    """The keep-alive answer: ``state`` and every ``MSG_*`` item of any list in it."""
    if data in ("", None):
        return Mailbox(None, ())
    if not isinstance(data, dict):
        raise MalformedReply(f"{MAILBOX} data is not an object")
    messages: list[Message] = []
    for value in data.values():
        for item in value if isinstance(value, list) else ():
            msg = parse_message(item)
            if msg is not None:
                messages.append(msg)
    return Mailbox(parse_state(data.get("state")), tuple(messages))


def mic_open(data: Any) -> bool | None:
    """``MicSwitch`` of ``WEB_InitAudioCtrlParamsAPI``: 1 open, 0 closed."""
    value = _int(data.get("MicSwitch")) if isinstance(data, dict) else None
    return None if value is None else value != 0


def aux_sending(data: Any) -> bool | None:
    """``isSendAux`` of ``WEB_IsSendAuxStreamAPI``: ``auxOpen`` / ``auxClose``."""
    value = data.get("isSendAux") if isinstance(data, dict) else None
    if value == "auxOpen":
        return True
    if value == "auxClose":
        return False
    return None


def dial_handle(data: Any) -> int | None:
    """A site handle in the dial answer, should the endpoint give one there."""
    if not isinstance(data, dict):
        return None
    for key in ("ucSiteHandle", "siteNum"):
        handle = _int(data.get(key))
        if handle is not None:
            return handle
    return None


def end_reason(code: int | None) -> str:
    return END_REASONS.get(code, "failed") if code is not None else "failed"
