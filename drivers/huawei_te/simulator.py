"""A simulated Huawei TE20 / IdeaHub endpoint: ``action.cgi`` over HTTPS (or HTTP).

It follows ``docs/huawei-te-api-notes.md``: the answers are written the way the document's
examples are (compact JSON, ``data`` a JSON text, ``Content-Type: text/plain``,
``Response-Result``, ``Set-Cookie: SessionID=<64 hex>; Path=/; Secure; HttpOnly``), and
every refusal is the document's one failure example (id 100666995, code 33558532), since
the document gives no other code a meaning.

Sessions: ``WEB_RequestSessionIDAPI`` (refused when ``max_sessions`` are open),
``WEB_RequestCertificateAPI`` (a lock after repeated wrong passwords: our assumption),
``WEB_ChangeSessionIDAPI``, idle expiry after ``session_ttl_s``. Each session has its own
mailbox: ``WEB_GetMailboxDataAPI`` answers the call ``state`` and the ``MSG_*`` messages
queued since the last read (``MSG_START_CALL``, ``MSG_CALL_RSP``, ``MSG_CANCEL_CALL``,
``MSG_END_CONF_RSP``, ``MSG_REJECT_CALL``, ``MSG_AUXVIDEO_SEND_RESULT``).

Calls go through the shared simulated network (:class:`~drivers.cisco_xapi.farend.FarEnd`):
calling, alerting, connected, far-end hang-up, busy, unreachable, declined, no answer.
The answers are written here from the notes' tables, not with the codec's parser, so a
parser bug cannot hide behind a matching simulator bug.

HTTPS uses a self-signed certificate made at start-up (``cryptography``), as a factory-
fresh TE20 has; ``plain=True`` serves HTTP.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import secrets
import ssl
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from drivers.cisco_xapi.farend import CAUSES, FarEnd
from drivers.huawei_te import api

TERM_TYPE = "Huawei TE20"
MAX_FAILED_LOGINS = 5
# Messages a session's mailbox keeps until read (oldest dropped first).
MAILBOX_DEPTH = 64
# Response headers of the IdeaHub examples (0014, 0016), minus the length aiohttp sets.
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Download-Options": "noopen",
    "X-Frame-Options": "sameorigin",
    "X-XSS-Protection": "1; mode=block",
    "Strict-Transport-Security": "max-age=31536000; includeSubdomains",
    "Content-Security-Policy": "script-src 'self' 'unsafe-eval' 'unsafe-inline' ;img-src 'self'",
}


class _Refused(Exception):
    """The endpoint says no (always the document's example error: see the module doc)."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


@dataclass
class _Site:
    handle: int
    number: str
    incoming: bool
    # CALLING, ALERTING, INCOMING, CONNECTED
    state: str = "CALLING"
    task: asyncio.Task[None] | None = None


@dataclass
class _Login:
    csrf: str | None = None
    last_used: float = field(default_factory=time.monotonic)
    mailbox: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=MAILBOX_DEPTH))


@dataclass
class HuaweiModel:
    user: str = "api"
    password: str = ""
    farend: FarEnd = field(default_factory=FarEnd)
    # Idle time after which a session is forgotten (not in the document: ours).
    session_ttl_s: float = 600.0
    # Sessions open at once before WEB_RequestSessionIDAPI is refused ("会话数是否已满").
    max_sessions: int = 8
    lock_s: float = 300.0
    # TE10/TE20 make point-to-point calls: one far end at a time.
    max_sites: int = 1
    # Variants the driver must bear (docs/huawei-te-api-notes.md): ``data`` as a JSON object
    # rather than JSON text (tolerated, not seen), and no WEB_ChangeSessionIDAPI (the TE
    # pages reached never mention it).
    data_objects: bool = False
    change_session_id: bool = True

    def __post_init__(self) -> None:
        self.sessions: dict[str, _Login] = {}
        self.sites: dict[int, _Site] = {}
        self.mic_on = True
        self.aux_sending = False
        self.failed_logins = 0
        self.locked_until = 0.0
        self.logins = 0
        self._last_handle = 0
        # Every message sent, in order (for tests and the log), and the refusals.
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.refusals: list[tuple[str, str]] = []
        # Actions received, with their bodies (without the token).
        self.actions: list[tuple[str, dict[str, Any]]] = []

    # --- test hooks ----------------------------------------------------------------------

    def expire_sessions(self) -> None:
        """Forget every login (the endpoint rebooted or timed the sessions out)."""
        self.sessions.clear()

    def incoming(self, number: str) -> int:
        """A far end calls in; returns its site handle."""
        site = self._new_site(number, incoming=True)
        site.state = "INCOMING"
        self._post(
            api.MSG_START_CALL, data={"siteNum": site.handle, "siteText": number, "callDir": 0}
        )
        return site.handle

    def hangup_remote(self, handle: int | None = None) -> None:
        """The far end hangs up (the endpoint reports it only through the call state)."""
        for site in list(self.sites.values()):
            if handle is None or site.handle == handle:
                self._end(site)

    # --- messages ------------------------------------------------------------------------

    def _post(
        self,
        name: str,
        *,
        sub: int = 0,
        param1: int = 0,
        param2: int = 0,
        data: dict[str, Any] | None = None,
    ) -> None:
        msg = {
            "msgName": name,
            "subMsgID": sub,
            "param1": param1,
            "param2": param2,
            "msgData": json.dumps(data or {}, ensure_ascii=False, separators=(",", ":")),
        }
        self.events.append(
            (name, {"subMsgID": sub, "param1": param1, "param2": param2, **(data or {})})
        )
        for login in self.sessions.values():
            if login.csrf is not None:
                login.mailbox.append(msg)

    def _call_rsp(self, site: _Site, code: int, name: str = "") -> None:
        sub = (api.SUB_INCOMING if site.incoming else api.SUB_OUTGOING) | (site.handle << 4)
        data = {
            "result": code,
            "siteNum": site.handle,
            "resID": code,
            "param1": name if code == 0 else "",
            "param2": "",
        }
        self._post(api.MSG_CALL_RSP, sub=sub, param1=0 if code == 0 else 1, param2=code, data=data)

    # --- calls ---------------------------------------------------------------------------

    def _new_site(self, number: str, *, incoming: bool) -> _Site:
        if len(self.sites) >= self.max_sites:
            raise _Refused("already in a call")
        # Handles live in 4 bits of subMsgID; 0xF means a PSTN site.
        handle = self._last_handle
        for _ in range(14):
            handle = handle % 14 + 1
            if handle not in self.sites:
                break
        self._last_handle = handle
        site = _Site(handle, number, incoming)
        self.sites[handle] = site
        return site

    def _end(self, site: _Site) -> None:
        if self.sites.pop(site.handle, None) is None:
            return
        if site.task is not None and site.task is not asyncio.current_task():
            site.task.cancel()
        if not self.sites:
            self.aux_sending = False

    def _fail(self, site: _Site, outcome: str) -> None:
        _, code, _ = CAUSES.get(outcome, ("failed", 500, outcome))
        self._end(site)
        self._call_rsp(site, code)

    async def _life(self, site: _Site) -> None:
        fe = self.farend
        outcome = fe.outcome(site.number)
        await asyncio.sleep(fe.setup_s)
        if outcome in ("busy", "unreachable", "reject"):
            self._fail(site, outcome)
            return
        site.state = "ALERTING"
        if outcome == "no_answer":
            await asyncio.sleep(fe.no_answer_s)
            self._fail(site, "no_answer")
            return
        await asyncio.sleep(fe.ring_s)
        site.state = "CONNECTED"
        self._call_rsp(site, 0, _site_name(site.number))
        if outcome == "drop":
            await asyncio.sleep(fe.drop_after_s)
            self._end(site)

    def _site(self, body: dict[str, Any]) -> _Site:
        handle = body.get("ucSiteHandle")
        if not isinstance(handle, int) or isinstance(handle, bool):
            raise _Refused("ucSiteHandle missing or not a number")
        site = self.sites.get(handle)
        if site is None:
            raise _Refused(f"no site with handle {handle}")
        return site

    def call_state(self) -> dict[str, Any]:
        """The mailbox ``state`` (field names and values: docs/huawei-te-api-notes.md)."""
        site = next(iter(self.sites.values()), None)
        if site is None:
            return {"callstate": 0, "calltype": 0, "confstate": 0, "conftype": 0,
                    "IsInConf": 0, "RemoteMicStates": 0}  # fmt: skip
        calltype = 3 if site.number.lower().startswith("h323:") else 8
        if site.state == "CONNECTED":
            return {"callstate": 2, "calltype": calltype, "confstate": 0, "conftype": 1,
                    "IsInConf": 1, "RemoteMicStates": 0}  # fmt: skip
        confstate = 2 if site.state == "INCOMING" else 1
        return {"callstate": 1, "calltype": calltype, "confstate": confstate, "conftype": 0,
                "IsInConf": 0, "RemoteMicStates": 0}  # fmt: skip

    # --- the action table ----------------------------------------------------------------

    def act(self, action: str, body: dict[str, Any], login: _Login) -> Any:
        self.actions.append((action, {k: v for k, v in body.items() if k != "acCSRFToken"}))
        if action == api.MAILBOX:
            messages = list(login.mailbox)
            login.mailbox.clear()
            return {"state": self.call_state(), "msg": messages}
        if action == api.CALL_NUMBER:
            number = body.get("szNumber")
            if not isinstance(number, str) or not number or len(number) > 128:
                raise _Refused("szNumber missing or too long")
            if any(ord(c) < 32 or c in "\"'\\ " for c in number):
                raise _Refused("szNumber holds characters no address has")
            site = self._new_site(number, incoming=False)
            self._post(
                api.MSG_START_CALL, data={"siteNum": site.handle, "siteText": number, "callDir": 1}
            )
            site.task = asyncio.get_running_loop().create_task(self._life(site))
            return ""
        if action == api.CANCEL_CALL:
            site = self._site(body)
            if site.state == "CONNECTED":
                raise _Refused("the call is established: hang it up instead")
            self._end(site)
            self._post(api.MSG_CANCEL_CALL, data={"siteNum": site.handle})
            return ""
        if action == api.HANGUP_CALL:
            site = self._site(body)
            self._end(site)
            self._post(api.MSG_END_CONF_RSP, data={"siteNum": site.handle})
            return ""
        if action == api.INCOMING_CALL_PROC:
            site = self._site(body)
            value = body.get("ucValue")
            if site.state != "INCOMING" or value not in (0, 1):
                raise _Refused("no such incoming call, or ucValue not 0/1")
            if value == 1:
                site.state = "CONNECTED"
                self._call_rsp(site, 0, _site_name(site.number))
            else:
                self._end(site)
                self._post(api.MSG_REJECT_CALL, data={"siteNum": site.handle})
            return ""
        if action == api.CLOSE_MIC:
            self.mic_on = False
            return ""
        if action == api.OPEN_MIC:
            self.mic_on = True
            return ""
        if action == api.AUDIO_PARAMS:
            return {"MicSwitch": 1 if self.mic_on else 0, "SpeakerSwitch": 1, "speakerValue": 12}
        if action == api.START_AUX:
            if not any(s.state == "CONNECTED" for s in self.sites.values()):
                raise _Refused("no call to send the aux stream into")
            self.aux_sending = True
            self._post(api.MSG_AUXVIDEO_SEND_RESULT, param1=1)
            return ""
        if action == api.STOP_AUX:
            self.aux_sending = False
            return ""
        if action == api.IS_SENDING_AUX:
            return {"isSendAux": "auxOpen" if self.aux_sending else "auxClose"}
        if action == api.CALL_TYPES:
            return {"value": [3, 4, 8, 10]}
        raise _Refused(f"no action {action}")


def _site_name(number: str) -> str:
    """What the far end calls itself (the user part of its address)."""
    bare = number.split(":", 1)[-1]
    return bare.split("@", 1)[0] or number


def _compact(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def _answer(body: dict[str, Any], headers: dict[str, str] | None = None) -> web.Response:
    # The examples' Content-Type carries no charset; the body is UTF-8 JSON all the same.
    all_headers = {
        **SECURITY_HEADERS,
        **(headers or {}),
        "Content-Type": "text/plain",
        "Response-Result": str(body["success"]),
    }
    return web.Response(body=_compact(body).encode(), headers=all_headers)


def _ok(data: Any, headers: dict[str, str] | None = None, *, objects: bool = False) -> web.Response:
    # data is JSON text inside the JSON answer (or "" when there is none); some firmware
    # sends it as an object.
    text = data if isinstance(data, str) or objects else _compact(data)
    return _answer({"success": 1, "data": text}, headers)


def _fail() -> web.Response:
    error = {"id": api.EXAMPLE_ERROR_ID, "code": api.EXAMPLE_ERROR_CODE, "params": []}
    return _answer({"success": 0, "error": error})


def self_signed_context(host: str = "127.0.0.1") -> ssl.SSLContext:
    """A server context with a fresh self-signed certificate for ``host``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "TE20 simulator")])
    try:
        alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        alt = x509.DNSName(host)
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName([alt]), critical=False)
        .sign(key, hashes.SHA256())
    )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as d:
        cert_path, key_path = Path(d) / "cert.pem", Path(d) / "key.pem"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        ctx.load_cert_chain(cert_path, key_path)
    return ctx


class HuaweiSimulator:
    def __init__(self, model: HuaweiModel | None = None) -> None:
        self.model = model or HuaweiModel()
        self.port: int | None = None
        self.tls = False
        self.requests = 0
        self._runner: web.AppRunner | None = None

    def _session(self, request: web.Request) -> tuple[str, _Login] | None:
        sid = request.cookies.get(api.COOKIE_NAME)
        if not sid:
            return None
        login = self.model.sessions.get(sid)
        if login is None:
            return None
        now = time.monotonic()
        if now - login.last_used > self.model.session_ttl_s:
            del self.model.sessions[sid]
            return None
        login.last_used = now
        return sid, login

    def _new_session(self, login: _Login | None = None) -> tuple[str, dict[str, str]]:
        sid = secrets.token_hex(32)
        self.model.sessions[sid] = login or _Login()
        return sid, {"Set-Cookie": f"{api.COOKIE_NAME}={sid}; Path=/; Secure; HttpOnly"}

    def _refuse(self, action: str, why: str) -> web.Response:
        self.model.refusals.append((action, why))
        return _fail()

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        action = request.query.get("ActionID", "")
        if not api.ACTION_RE.match(action):
            return self._refuse(action[:80], "not a WEB_<Name>API action")
        raw = await request.read()
        body: dict[str, Any] = {}
        if raw.strip():
            try:
                parsed = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                return self._refuse(action, "body is not JSON")
            if not isinstance(parsed, dict):
                return self._refuse(action, "body is not a JSON object")
            body = parsed
        m = self.model
        session_data = {"acSessionId": "", "szTermType": TERM_TYPE}
        if action == api.REQUEST_SESSION:
            live = [
                s
                for s, lg in m.sessions.items()
                if time.monotonic() - lg.last_used <= m.session_ttl_s
            ]
            if len(live) >= m.max_sessions:
                return self._refuse(action, "session table full")
            _, cookie = self._new_session()
            return _ok(session_data, cookie, objects=m.data_objects)
        current = self._session(request)
        if current is None:
            return self._refuse(action, "unknown or expired session")
        sid, login = current
        if action == api.REQUEST_CERTIFICATE:
            if time.monotonic() < m.locked_until:
                return self._refuse(action, "user locked")
            if body.get("user") != m.user or body.get("password") != m.password:
                m.failed_logins += 1
                if m.failed_logins >= MAX_FAILED_LOGINS:
                    m.locked_until = time.monotonic() + m.lock_s
                    m.failed_logins = 0
                return self._refuse(action, "wrong user or password")
            m.failed_logins = 0
            m.logins += 1
            login.csrf = secrets.token_hex(16)
            return _ok({"acCSRFToken": login.csrf}, objects=m.data_objects)
        if login.csrf is None or body.get("acCSRFToken") != login.csrf:
            # IdeaHub 0016 shows the change without a body: the cookie is enough there.
            if not (action == api.CHANGE_SESSION and login.csrf is not None and not body):
                return self._refuse(action, "CSRF token missing or wrong")
        if action == api.CHANGE_SESSION and m.change_session_id:
            del m.sessions[sid]
            _, cookie = self._new_session(login)
            return _ok(session_data, cookie, objects=m.data_objects)
        try:
            return _ok(m.act(action, body, login), objects=m.data_objects)
        except _Refused as e:
            return self._refuse(action, e.why)

    async def start(self, host: str = "127.0.0.1", port: int = 0, *, plain: bool = False) -> None:
        app = web.Application(client_max_size=64 * 1024)
        app.router.add_post(api.ACTION_PATH, self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        ctx = None if plain else self_signed_context(host)
        self.tls = ctx is not None
        site = web.TCPSite(self._runner, host, port, ssl_context=ctx)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.Server)
        self.port = server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.model.hangup_remote()
