"""A simulated Huawei TE20 / IdeaHub endpoint: ``action.cgi`` over HTTPS (or HTTP).

Sessions work as on the device: a ``SessionID`` cookie from ``WEB_RequestSessionIDAPI``,
an ``acCSRFToken`` from ``WEB_RequestCertificateAPI`` carried in every later body, idle
expiry (``session_ttl_s``), and a lock after repeated wrong passwords. Calls go through
the shared simulated network (:class:`~drivers.cisco_xapi.farend.FarEnd`): calling,
alerting, connected, far-end hang-up, busy, unreachable. Replies use the documented
envelope, with ``data`` as a JSON text the way TE10/TE20 send it.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from drivers.cisco_xapi.farend import CAUSES, FarEnd
from drivers.huawei_te import api

TERM_TYPE = "Huawei TE20 (simulated)"
MAX_FAILED_LOGINS = 5


class _Refused(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class _Site:
    handle: int
    number: str
    incoming: bool
    rate: int
    state: str = "CALLING"
    task: asyncio.Task[None] | None = None


@dataclass
class _Login:
    csrf: str | None = None
    last_used: float = field(default_factory=time.monotonic)


@dataclass
class HuaweiModel:
    user: str = "api"
    password: str = ""
    farend: FarEnd = field(default_factory=FarEnd)
    session_ttl_s: float = 600.0
    lock_s: float = 300.0
    max_sites: int = 1
    aux_sources: int = 2

    def __post_init__(self) -> None:
        self.sessions: dict[str, _Login] = {}
        self.sites: dict[int, _Site] = {}
        self.mic_on = True
        self.aux_sending = False
        self.aux_source: int | None = None
        self.last_end: dict[str, Any] | None = None
        self.failed_logins = 0
        self.locked_until = 0.0
        self._next_site = 1
        self._end_seq = 0
        # MSG_* events in the order they happened (tests and the simulator's log).
        self.events: list[tuple[str, dict[str, Any]]] = []
        # Actions received, with their bodies (without the token).
        self.actions: list[tuple[str, dict[str, Any]]] = []

    # --- test hooks ----------------------------------------------------------------------

    def expire_sessions(self) -> None:
        """Forget every login (the device rebooted or timed the sessions out)."""
        self.sessions.clear()

    def incoming(self, number: str) -> int:
        site = self._new_site(number, incoming=True, rate=self.farend.max_call_rate)
        site.state = "INCOMING"
        self._emit("MSG_CALL_INCOMING", site)
        return site.handle

    def hangup_remote(self, handle: int | None = None) -> None:
        for site in list(self.sites.values()):
            if handle is None or site.handle == handle:
                self._end(site, "remote_hangup")

    # --- calls ---------------------------------------------------------------------------

    def _emit(self, name: str, site: _Site, **extra: Any) -> None:
        self.events.append((name, {"ucSiteHandle": site.handle, "szNumber": site.number, **extra}))

    def _new_site(self, number: str, *, incoming: bool, rate: int) -> _Site:
        if len(self.sites) >= self.max_sites:
            raise _Refused(api.ERR_STATE)
        site = _Site(self._next_site, number, incoming, rate)
        self._next_site += 1
        self.sites[site.handle] = site
        return site

    def _end(self, site: _Site, cause: str) -> None:
        if self.sites.pop(site.handle, None) is None:
            return
        if site.task is not None and site.task is not asyncio.current_task():
            site.task.cancel()
        _, code, text = CAUSES.get(cause, ("failed", 500, cause))
        if cause in ("remote_hangup", "drop"):
            code = 200
        self._end_seq += 1
        self.last_end = {
            "ucSiteHandle": site.handle,
            "szNumber": site.number,
            "ulReason": code,
            "szReason": text,
            "ulSeq": self._end_seq,
        }
        self._emit("MSG_CALL_DISCONNECTED", site, ulReason=code)
        if not self.sites:
            self.aux_sending = False
            self.aux_source = None

    async def _life(self, site: _Site) -> None:
        fe = self.farend
        outcome = fe.outcome(site.number)
        await asyncio.sleep(fe.setup_s)
        if outcome in ("busy", "unreachable", "reject"):
            self._end(site, outcome)
            return
        site.state = "ALERTING"
        self._emit("MSG_CALL_ALERTING", site)
        if outcome == "no_answer":
            await asyncio.sleep(fe.no_answer_s)
            self._end(site, "no_answer")
            return
        await asyncio.sleep(fe.ring_s)
        site.state = "CONNECTED"
        self._emit("MSG_CALL_CONNECTED", site)
        if outcome == "drop":
            await asyncio.sleep(fe.drop_after_s)
            self._end(site, "drop")

    def _site(self, body: dict[str, Any]) -> _Site:
        handle = body.get("ucSiteHandle")
        if not isinstance(handle, int) or isinstance(handle, bool):
            raise _Refused(api.ERR_BAD_PARAM)
        site = self.sites.get(handle)
        if site is None:
            raise _Refused(api.ERR_NO_SUCH_SITE)
        return site

    # --- the action table ----------------------------------------------------------------

    def act(self, action: str, body: dict[str, Any]) -> Any:
        self.actions.append((action, {k: v for k, v in body.items() if k != "acCSRFToken"}))
        if action == "WEB_CallNumberAPI":
            number = body.get("szNumber")
            if not isinstance(number, str) or not number or len(number) > 128:
                raise _Refused(api.ERR_BAD_PARAM)
            if any(ord(c) < 32 or c in "\"'\\" for c in number):
                raise _Refused(api.ERR_BAD_PARAM)
            rate = body.get("ulCallRate")
            requested = rate if isinstance(rate, int) and not isinstance(rate, bool) else None
            site = self._new_site(number, incoming=False, rate=self.farend.call_rate(requested))
            self._emit("MSG_CALL_CALLING", site)
            site.task = asyncio.get_running_loop().create_task(self._life(site))
            return {"ucSiteHandle": site.handle}
        if action == "WEB_HangupCallAPI":
            self._end(self._site(body), "local_hangup")
            return ""
        if action == "WEB_CancelCallAPI":
            dialling = [s for s in self.sites.values() if s.state in ("CALLING", "ALERTING")]
            if not dialling:
                raise _Refused(api.ERR_STATE)
            for s in dialling:
                self._end(s, "local_hangup")
            return ""
        if action == "WEB_IncomingCallProcAPI":
            site = self._site(body)
            if site.state != "INCOMING":
                raise _Refused(api.ERR_STATE)
            if body.get("bAccept", 1):
                site.state = "CONNECTED"
                self._emit("MSG_CALL_CONNECTED", site)
            else:
                self._end(site, "local_hangup")
            return ""
        if action == "WEB_CloseMicAPI":
            self.mic_on = False
            return ""
        if action == "WEB_OpenMicAPI":
            self.mic_on = True
            return ""
        if action == "WEB_InitAudioCtrlParamsAPI":
            return {"MicSwitch": 1 if self.mic_on else 0}
        if action == "WEB_StartSendAuxStreamAPI":
            if not any(s.state == "CONNECTED" for s in self.sites.values()):
                raise _Refused(api.ERR_STATE)
            src = body.get("ucVideoSrc", 1)
            if not isinstance(src, int) or not 1 <= src <= self.aux_sources:
                raise _Refused(api.ERR_BAD_PARAM)
            self.aux_sending, self.aux_source = True, src
            return ""
        if action == "WEB_StopSendAuxStreamAPI":
            self.aux_sending, self.aux_source = False, None
            return ""
        if action == "WEB_IsSendAuxStreamAPI":
            return {"bIsSending": 1 if self.aux_sending else 0, "ucVideoSrc": self.aux_source or 0}
        if action == "WEB_GetCallStatusInfoAPI":
            return {
                "bInConf": 1 if any(s.state == "CONNECTED" for s in self.sites.values()) else 0,
                "astSiteList": [
                    {
                        "ucSiteHandle": s.handle,
                        "szNumber": s.number,
                        "szSiteName": s.number,
                        "enCallState": s.state,
                        "bIncoming": 1 if s.incoming else 0,
                        "ulCallRate": s.rate,
                    }
                    for s in self.sites.values()
                ],
                "stLastCallEnd": self.last_end or {},
            }
        raise _Refused(api.ERR_UNKNOWN_ACTION)


def _ok(data: Any, headers: dict[str, str] | None = None) -> web.Response:
    # TE10/TE20 send data as JSON text inside the JSON answer.
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    body = json.dumps({"success": 1, "data": text}, ensure_ascii=False)
    return web.Response(text=body, content_type="text/plain", headers=headers)


def _fail(code: int) -> web.Response:
    body = {"success": 0, "error": {"id": 100000 + code % 1000, "code": code, "params": []}}
    return web.Response(text=json.dumps(body), content_type="text/plain")


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

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        action = request.query.get("ActionID", "")
        if not api.ACTION_RE.match(action):
            return _fail(api.ERR_UNKNOWN_ACTION)
        raw = await request.read()
        body: dict[str, Any] = {}
        if raw.strip():
            try:
                parsed = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                return _fail(api.ERR_BAD_PARAM)
            if not isinstance(parsed, dict):
                return _fail(api.ERR_BAD_PARAM)
            body = parsed
        m = self.model
        if action == "WEB_RequestSessionIDAPI":
            sid = secrets.token_hex(32)
            m.sessions[sid] = _Login()
            cookie = f"{api.COOKIE_NAME}={sid}; Path=/; {'Secure; ' if self.tls else ''}HttpOnly"
            return _ok({"acSessionId": "", "szTermType": TERM_TYPE}, {"Set-Cookie": cookie})
        current = self._session(request)
        if current is None:
            return _fail(api.ERR_SESSION_INVALID)
        sid, login = current
        if action == "WEB_RequestCertificateAPI":
            if time.monotonic() < m.locked_until:
                return _fail(api.ERR_USER_LOCKED)
            if body.get("user") != m.user or body.get("password") != m.password:
                m.failed_logins += 1
                if m.failed_logins >= MAX_FAILED_LOGINS:
                    m.locked_until = time.monotonic() + m.lock_s
                    m.failed_logins = 0
                return _fail(api.ERR_LOGIN_FAILED)
            m.failed_logins = 0
            login.csrf = secrets.token_hex(16)
            return _ok({"acCSRFToken": login.csrf})
        if login.csrf is None or body.get("acCSRFToken") != login.csrf:
            return _fail(api.ERR_CSRF_INVALID)
        try:
            return _ok(m.act(action, body))
        except _Refused as e:
            return _fail(e.code)

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
