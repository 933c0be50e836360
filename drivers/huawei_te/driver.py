"""The Huawei TE / IdeaHub / CloudLink Box driver over the HTTP API.

The endpoint pushes nothing an HTTP client can hold on to. The driver logs in (session
cookie, CSRF token, fresh session id), then reads the keep-alive ``WEB_GetMailboxDataAPI``
every ``poll_ms`` (``setup_poll_ms`` while a call is being set up) -- and at once after
each of its own commands: its ``state`` says
whether a call is being set up or is up, its ``MSG_*`` messages say which site (handle)
it is, who called whom, and how a call attempt ended (``MSG_CALL_RSP``). The microphone
and the aux (content) stream are read alongside. Sources and assumptions:
``docs/huawei-te-api-notes.md``.

A call's id is the endpoint's own site handle (``ucSiteHandle`` / ``siteNum``), so the
conference layer and a technician at the endpoint's web page talk about the same call.
A call that ends reports why in ``last_disconnect``: the ``MSG_CALL_RSP`` failure code
(busy, unreachable ...), our own hang-up, or -- the state going idle with no message --
the far end hanging up.

The document gives no error code a meaning we could read, so a refusal is judged by what
else is true: when a command is refused the driver reads the keep-alive; if that answers,
the refusal is the command's own (``DeviceRejected`` with the endpoint's code); if not,
the session is gone, the driver logs in again and repeats the command once. A refused
password stops the retries at the backoff cap (``auth_failure``) instead of locking the
account, and a network blip keeps the session (the endpoint's session table is small).

State keys match the Cisco driver's (``calls``, ``microphones_muted``, ``presentation``,
``last_disconnect``) so the conference layer drives either.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import aiohttp
from pydantic import BaseModel, ConfigDict, Field

from drivers.backoff import Backoff
from drivers.contract import (
    Driver,
    DriverConfig,
    DriverSetup,
    DriverStatus,
    Manifest,
    NoParams,
    action,
)
from drivers.errors import (
    AuthFailed,
    BadConfig,
    DeviceOffline,
    DeviceRejected,
    DeviceTimeout,
)
from drivers.huawei_te import api
from drivers.transport import TcpEndpoint
from wallctl.logs import get_logger

log = get_logger("drivers.huawei_te")

# A call listed but never seen in the endpoint's state is dropped after this long idle.
IDLE_GRACE_S = 3.0
# How often the keep-alive is read while a dial waits for its site handle.
DIAL_READ_S = 0.05


class HuaweiTeConfig(DriverConfig):
    # HTTPS (the device's default); false for a device (or simulator) serving HTTP.
    tls: bool = True
    # Check the certificate (devices ship a self-signed one).
    verify_tls: bool = False
    user: str = Field(default="api", min_length=1, max_length=64)
    # How often the keep-alive (call state and messages) is read when nothing else happens.
    poll_ms: int = Field(default=1000, ge=100, le=60000)
    # ... and while a call is being set up (dialling, ringing), so "connected" or "busy"
    # shows within this rather than a whole poll_ms.
    setup_poll_ms: int = Field(default=200, ge=50, le=60000)
    timeout_ms: int = Field(default=5000, ge=50, le=60000)


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DialParams(_Params):
    number: str = Field(min_length=1, max_length=128, description="SIP URI, H.323 alias or E.164")
    # The documented request carries only the number: the rate is the endpoint's setting.
    call_rate: int | None = Field(
        default=None, ge=64, le=8192, description="kbps (not sent: an endpoint setting)"
    )


class SiteParams(_Params):
    # ucSiteHandle is a 32-bit integer (IdeaHub 取消呼叫).
    call_id: int | None = Field(default=None, ge=0, le=2**31 - 1, description="none: every call")


class AuxParams(_Params):
    # The documented request names no input: the endpoint sends its configured aux input.
    source: int = Field(default=1, ge=1, le=8, description="the content input wired to it")


@dataclass
class _Call:
    handle: int
    incoming: bool
    status: str  # dialling, ringing, connected
    remote: str
    name: str = ""
    # The endpoint's state showed a call while this one was listed.
    active: bool = False
    accepting: bool = False
    # Set when we asked to end it: the reason its end will carry.
    ending: str | None = None
    idle_since: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.handle,
            "status": self.status,
            "direction": "Incoming" if self.incoming else "Outgoing",
            "remote_number": self.remote,
            "display_name": self.name or self.remote,
            "call_rate": None,
        }


class HuaweiTeDriver(Driver):
    manifest: ClassVar[Manifest] = Manifest(
        vendor="Huawei",
        products=("TE10", "TE20", "TE30", "TE40", "TE50", "IdeaHub", "CloudLink Box", "Bar"),
        protocol="huawei-te",
        family="codec",
        description="Huawei video-conference endpoints: the action.cgi HTTP JSON API",
        default_tcp_port=443,
    )
    config_model: ClassVar[type[DriverConfig]] = HuaweiTeConfig

    def __init__(self, setup: DriverSetup) -> None:
        super().__init__(setup)
        cfg = setup.config
        self.cfg = cfg if isinstance(cfg, HuaweiTeConfig) else HuaweiTeConfig()
        self.session = api.Session()
        self._password = setup.password or ""
        self._http: aiohttp.ClientSession | None = None
        self._lock = asyncio.Lock()
        self._poke = asyncio.Event()
        self._stopping = asyncio.Event()
        self._up = False
        self._calls: dict[int, _Call] = {}
        self._pending_dial: str | None = None
        self._dialled: int | None = None
        self._aux_source: int | None = None
        self._disconnects = 0
        # Reads an endpoint refused once (older firmware): not asked again this link.
        self._unsupported: set[str] = set()
        self.requests = 0
        self.logins = 0
        self.set_state("calls", [], "connect")
        self.set_state("microphones_muted", None, "connect")
        self.set_state("presentation", {"mode": "Off", "source": None}, "connect")

    # --- HTTP ----------------------------------------------------------------------------

    def _base(self) -> str:
        ep = self.setup.endpoint
        if not isinstance(ep, TcpEndpoint):
            raise BadConfig("the Huawei HTTP API needs a host and port")
        host = f"[{ep.host}]" if ":" in ep.host else ep.host
        return f"{'https' if self.cfg.tls else 'http'}://{host}:{ep.port}"

    async def _send(self, req: api.HttpRequest) -> tuple[int, list[tuple[str, str]], bytes]:
        http = self._http
        if http is None:
            raise DeviceOffline(f"{self.device_id} is not connected")
        ctx: ssl.SSLContext | bool = False
        if self.cfg.tls and self.cfg.verify_tls:
            ctx = ssl.create_default_context()
        self.requests += 1
        try:
            async with http.post(
                self._base() + req.target, data=req.body, headers=req.headers, ssl=ctx
            ) as resp:
                body = await resp.content.read(api.MAX_BODY + 1)
                return resp.status, list(resp.headers.items()), body
        except TimeoutError:
            raise DeviceTimeout(
                f"{self.device_id} did not answer within {self.cfg.timeout_ms} ms"
            ) from None
        except (aiohttp.ClientError, OSError) as e:
            raise DeviceOffline(f"{self.device_id}: {e or type(e).__name__}") from None

    async def _login(self) -> None:
        status, headers, body = await self._send(self.session.request_session())
        try:
            self.session.on_session(status, headers, body)
        except api.ApiFailure as e:
            # 登录认证流程: refused when no new session may open (table full, upgrading).
            raise DeviceOffline(
                f"{self.device_id}: the endpoint opens no new session ({e.text}); "
                "its session table may be full or it is upgrading"
            ) from None
        except (api.MalformedReply, api.SessionLost) as e:
            raise DeviceOffline(f"{self.device_id}: no session ({e})") from None
        status, _, body = await self._send(self.session.login(self.cfg.user, self._password))
        try:
            self.session.on_login(status, body)
        except api.ApiFailure as e:
            raise AuthFailed(f"the endpoint refused user {self.cfg.user!r} ({e.text})") from None
        except (api.MalformedReply, api.SessionLost) as e:
            raise DeviceOffline(f"{self.device_id}: login failed ({e})") from None
        # A fresh id after the login (IdeaHub 更换SessionID). Firmware without it keeps the
        # first id, which still works there.
        changed = False
        status, headers, body = await self._send(self.session.change_session())
        try:
            changed = self.session.on_change_session(status, headers, body)
        except (api.ApiFailure, api.MalformedReply, api.SessionLost) as e:
            log.info("endpoint keeps its session id", device=self.device_id, reason=str(e))
        self.logins += 1
        log.info("logged in", device=self.device_id, term=self.session.term_type, new_id=changed)

    async def _exchange(self, action_id: str, params: dict[str, Any] | None) -> Any:
        status, _, body = await self._send(self.session.call(action_id, params))
        data = api.decode_reply(status, body)
        if action_id == api.MAILBOX:
            # Read and absorbed under the same lock: messages are taken in order, once.
            self._absorb(api.parse_mailbox(data))
        return data

    async def _session_alive(self) -> bool:
        try:
            await self._exchange(api.MAILBOX, None)
        except (api.SessionLost, api.ApiFailure):
            return False
        except api.MalformedReply:
            return True
        return True

    async def request(self, action_id: str, params: dict[str, Any] | None = None) -> Any:
        """One API call; logs in again (once) if the session turns out to be gone."""
        async with self._lock:
            for attempt in (1, 2):
                if not self.session.logged_in:
                    await self._login()
                try:
                    return await self._exchange(action_id, params)
                except api.SessionLost as e:
                    why = str(e)
                except api.ApiFailure as e:
                    if action_id != api.MAILBOX and await self._session_alive():
                        # The code leads the message already (DeviceRejected): no repeat.
                        extra = f", params {e.params!r}" if e.params else ""
                        raise DeviceRejected(
                            str(e.code), f"{action_id} refused (error id {e.error_id}{extra})"
                        ) from None
                    why = f"{action_id} refused ({e.text}) and so was the keep-alive"
                except api.MalformedReply as e:
                    raise DeviceRejected("malformed", f"{action_id}: {e}") from None
                self.session.reset()
                log.info("session lost; logging in again", device=self.device_id, reason=why)
                if attempt == 2:
                    raise DeviceOffline(
                        f"{self.device_id}: refused even after a fresh login ({why})"
                    )
        raise AssertionError("unreachable")

    # --- what the keep-alive says --------------------------------------------------------

    def _publish_calls(self) -> None:
        calls = [self._calls[h].to_dict() for h in sorted(self._calls)]
        self.set_state("calls", calls, "device")

    def _end(self, handle: int, reason: str, code: int | None = None, text: str = "") -> None:
        call = self._calls.pop(handle, None)
        if call is None:
            return
        self._disconnects += 1
        self.set_state(
            "last_disconnect",
            {
                "call_id": handle,
                "reason": call.ending or reason,
                "code": code,
                "text": text,
                "remote": call.remote,
                # Two ends alike in every other field still differ here.
                "seq": self._disconnects,
            },
            "device",
        )
        log.info("call ended", device=self.device_id, call=handle, reason=call.ending or reason)

    def _add(self, handle: int, incoming: bool, remote: str) -> _Call:
        call = self._calls.get(handle)
        if call is None:
            if not incoming and self._pending_dial is not None:
                remote = self._pending_dial
                self._dialled = handle
            call = _Call(handle, incoming, "ringing" if incoming else "dialling", remote)
            self._calls[handle] = call
        return call

    def _single(self, handle: int | None) -> int | None:
        """A message without a handle is about the one call there is, if one."""
        if handle is not None:
            return handle
        return next(iter(self._calls)) if len(self._calls) == 1 else None

    def _absorb(self, mailbox: api.Mailbox) -> None:
        for msg in mailbox.messages:
            self._message(msg)
        state = mailbox.state
        if state is not None and state.phase is not None:
            self._phase(state.phase)
        self._publish_calls()

    def _message(self, msg: api.Message) -> None:
        handle = msg.handle
        if msg.name == api.MSG_START_CALL and handle is not None:
            self._add(handle, msg.incoming is True, msg.text("siteText"))
        elif msg.name == api.MSG_CALL_RSP:
            handle = self._single(handle)
            if handle is None:
                log.warning("call answer without a site", device=self.device_id)
                return
            call = self._add(handle, msg.incoming is True, "")
            if msg.result == 0:
                call.status, call.active = "connected", True
                call.name = msg.text("param1") or call.name
            else:
                code = msg.failure_code
                self._end(handle, api.end_reason(code), code, f"MSG_CALL_RSP result {code}")
        elif msg.name in (api.MSG_CANCEL_CALL, api.MSG_END_CONF_RSP):
            handle = msg.handle
            targets = (
                [handle]
                if handle in self._calls
                else [h for h, c in self._calls.items() if c.ending]
            )
            for h in targets:
                if (msg.param1 or 0) == 0:
                    self._end(h, "local_hangup")
                else:
                    self._calls[h].ending = None
                    log.warning(
                        "endpoint failed to end a call",
                        device=self.device_id,
                        call=h,
                        message=msg.name,
                        code=msg.param2,
                    )
        elif msg.name == api.MSG_REJECT_CALL:
            targets = (
                [handle]
                if handle in self._calls
                else [h for h, c in self._calls.items() if c.incoming and c.status == "ringing"]
            )
            for h in targets:
                self._end(h, "rejected")
        elif msg.name == api.MSG_AUXVIDEO_SEND_RESULT:
            if msg.param1 == 1:
                self.set_state("presentation", {"mode": "Sending", "source": self._aux_source})
            else:
                self.set_state("presentation", {"mode": "Off", "source": None})
                log.warning("aux stream refused", device=self.device_id, code=msg.param2)

    def _phase(self, phase: api.Phase) -> None:
        now = time.monotonic()
        for handle, call in list(self._calls.items()):
            if phase == "idle":
                if call.active:
                    lost = (
                        "remote_hangup" if call.status == "connected" or call.incoming else "failed"
                    )
                    self._end(handle, lost, text="the endpoint's state went idle")
                elif call.idle_since is None:
                    call.idle_since = now
                elif now - call.idle_since > IDLE_GRACE_S:
                    self._end(handle, "failed", text="never seen in the endpoint's state")
                continue
            call.active, call.idle_since = True, None
            if phase == "up" and call.status != "connected" and len(self._calls) == 1:
                # Up with no MSG_CALL_RSP (yet): an outgoing call, or one we answered.
                if not call.incoming or call.accepting:
                    call.status = "connected"

    # --- the poll ------------------------------------------------------------------------

    async def _optional_read(self, action_id: str) -> Any:
        if action_id in self._unsupported:
            return None
        try:
            return await self.request(action_id)
        except DeviceRejected as e:
            self._unsupported.add(action_id)
            log.warning("endpoint refuses a status read", device=self.device_id, error=e.message)
            return None

    async def poll(self, origin: Literal["command", "device", "poll", "connect"] = "poll") -> None:
        await self.request(api.MAILBOX)
        mic = api.mic_open(await self._optional_read(api.AUDIO_PARAMS))
        if mic is not None:
            self.set_state("microphones_muted", not mic, origin)
        sending = api.aux_sending(await self._optional_read(api.IS_SENDING_AUX))
        if sending is not None:
            self.set_state(
                "presentation",
                {
                    "mode": "Sending" if sending else "Off",
                    "source": self._aux_source if sending else None,
                },
                origin,
            )

    async def run(self) -> None:
        backoff = Backoff(cap=self.cfg.retry_max_s)
        self._stopping.clear()
        timeout = aiohttp.ClientTimeout(total=self.cfg.timeout_ms / 1000)
        while not self._stopping.is_set():
            self.set_status(DriverStatus.CONNECTING, self._base())
            at_cap = False
            async with aiohttp.ClientSession(
                timeout=timeout, cookie_jar=aiohttp.DummyCookieJar()
            ) as http:
                self._http = http
                # The session survives a network blip on the endpoint: keep using it (a
                # lost one is noticed on the first request) rather than fill the
                # endpoint's session table with a new login per blip. Calls stay listed
                # until the endpoint's state says otherwise.
                self._unsupported.clear()
                try:
                    await self.poll("connect")
                    self._up = True
                    backoff.reset()
                    self.set_status(DriverStatus.OK, self._base())
                    while not self._stopping.is_set():
                        with contextlib.suppress(TimeoutError):
                            async with asyncio.timeout(self._interval()):
                                await self._poke.wait()
                        self._poke.clear()
                        if self._stopping.is_set():
                            break
                        await self.poll()
                    status, reason = DriverStatus.DISCONNECTED, "stopped"
                except AuthFailed as e:
                    status, reason, at_cap = DriverStatus.AUTH_FAILURE, e.message, True
                except BadConfig as e:
                    status, reason, at_cap = DriverStatus.BAD_CONFIG, e.message, True
                except (DeviceOffline, DeviceTimeout) as e:
                    status, reason = DriverStatus.CONNECTION_FAILURE, e.message
                except DeviceRejected as e:
                    status, reason = DriverStatus.CONNECTION_FAILURE, f"poll refused: {e.message}"
                finally:
                    self._up = False
                    self._http = None
            if self._stopping.is_set():
                break
            delay = backoff.at_cap() if at_cap else backoff.next()
            self.set_status(status, f"{reason}; retrying in {delay:.1f} s")
            log.info("endpoint link down", device=self.device_id, reason=reason, retry_s=delay)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._stopping.wait()

    def _interval(self) -> float:
        setting_up = any(c.status != "connected" for c in self._calls.values())
        ms = min(self.cfg.poll_ms, self.cfg.setup_poll_ms) if setting_up else self.cfg.poll_ms
        return ms / 1000

    async def stop(self) -> None:
        self._stopping.set()
        self._poke.set()
        await super().stop()

    async def _command(self, action_id: str, params: dict[str, Any] | None = None) -> Any:
        if not self._up:
            raise DeviceOffline(f"{self.device_id} is not connected")
        try:
            return await self.request(action_id, params)
        finally:
            self._poke.set()

    # --- actions -------------------------------------------------------------------------

    @action("dial", "Dial a SIP URI, H.323 alias or E.164 number.", DialParams)
    async def act_dial(self, p: DialParams) -> dict[str, Any]:
        number = api.check_number(p.number)
        self._pending_dial, self._dialled = number, None
        try:
            data = await self._command(api.CALL_NUMBER, {"szNumber": number})
            handle = api.dial_handle(data)
            if handle is not None:
                self._add(handle, False, number)
                self._publish_calls()
            else:
                # The handle comes with MSG_START_CALL / MSG_CALL_RSP on the keep-alive.
                loop = asyncio.get_running_loop()
                deadline = loop.time() + self.cfg.timeout_ms / 1000
                while self._dialled is None and loop.time() < deadline:
                    await self.request(api.MAILBOX)
                    if self._dialled is None:
                        await asyncio.sleep(DIAL_READ_S)
                handle = self._dialled
        finally:
            self._pending_dial = None
        if handle is None:
            log.warning("endpoint named no site for the dial", device=self.device_id)
        return {"call_id": handle}

    def _ringing(self, call_id: int | None) -> int:
        if call_id is not None:
            return call_id
        ringing = [h for h, c in self._calls.items() if c.incoming and c.status == "ringing"]
        if not ringing:
            raise DeviceRejected("no_call", "no incoming call rings")
        return ringing[0]

    async def _answer(self, handle: int, accept: bool) -> None:
        call = self._calls.get(handle)
        if call is not None:
            call.accepting, call.ending = accept, (None if accept else "local_hangup")
        body = {
            "ucValue": 1 if accept else 0,
            "ucMediaType": api.MEDIA_VIDEO,
            "ucSiteHandle": handle,
        }
        try:
            await self._command(api.INCOMING_CALL_PROC, body)
        except Exception:
            if call is not None:
                call.accepting, call.ending = False, None
            raise

    @action("accept", "Answer an incoming call (with video).", SiteParams)
    async def act_accept(self, p: SiteParams) -> dict[str, Any]:
        await self._answer(self._ringing(p.call_id), True)
        return {}

    @action("reject", "Refuse an incoming call.", SiteParams)
    async def act_reject(self, p: SiteParams) -> dict[str, Any]:
        await self._answer(self._ringing(p.call_id), False)
        return {}

    @action(
        "disconnect", "Hang up one call (or every call); cancels a call still dialling.", SiteParams
    )
    async def act_disconnect(self, p: SiteParams) -> dict[str, Any]:
        handles = list(self._calls) if p.call_id is None else [p.call_id]
        for handle in handles:
            call = self._calls.get(handle)
            if call is not None and call.incoming and call.status == "ringing":
                await self._answer(handle, False)
                continue
            if call is not None:
                call.ending = "local_hangup"
            act = api.CANCEL_CALL if call is not None and call.status == "dialling" else None
            try:
                await self._command(act or api.HANGUP_CALL, {"ucSiteHandle": handle})
            except Exception:
                if call is not None:
                    call.ending = None
                raise
        return {}

    @action("mute", "Close the microphone.", NoParams)
    async def act_mute(self, p: NoParams) -> dict[str, Any]:
        await self._command(api.CLOSE_MIC)
        return {}

    @action("unmute", "Open the microphone.", NoParams)
    async def act_unmute(self, p: NoParams) -> dict[str, Any]:
        await self._command(api.OPEN_MIC)
        return {}

    @action(
        "presentation_start",
        "Send the aux (content) stream; the endpoint's configured aux input is sent.",
        AuxParams,
    )
    async def act_presentation_start(self, p: AuxParams) -> dict[str, Any]:
        self._aux_source = p.source
        await self._command(api.START_AUX)
        return {}

    @action("presentation_stop", "Stop the aux (content) stream.", NoParams)
    async def act_presentation_stop(self, p: NoParams) -> dict[str, Any]:
        await self._command(api.STOP_AUX)
        return {}

    @action("calls", "Read the calls, microphone and content state now.", NoParams, read_only=True)
    async def act_calls(self, p: NoParams) -> dict[str, Any]:
        if self._up:
            await self.poll("poll")
        return {
            "calls": self.state.get("calls"),
            "microphones_muted": self.state.get("microphones_muted"),
            "presentation": self.state.get("presentation"),
        }
