"""The Huawei TE / IdeaHub / CloudLink Box driver over the HTTP API.

The device pushes nothing an HTTP client can hold on to, so the driver logs in
(session cookie + CSRF token), then polls the call status, the microphone and the aux
(content) stream every ``poll_ms`` -- and at once after each of its own commands, so a
dial is seen ringing and connected without waiting out the poll. Asynchronous results
(call connected, far end busy, hung up) are the differences between two polls, and the
end of a call carries its reason from ``stLastCallEnd``.

An expired session (reboot, idle timeout, someone logged in elsewhere) is noticed on the
next request: the driver logs in again and repeats that request once. A refused password
stops the retries at the backoff cap (``auth_failure``) instead of locking the account.

State keys match the Cisco driver's (``calls``, ``microphones_muted``, ``presentation``,
``last_disconnect``) so the conference layer drives either.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
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


class HuaweiTeConfig(DriverConfig):
    # HTTPS (the device's default); false for a device (or simulator) serving HTTP.
    tls: bool = True
    # Check the certificate (devices ship a self-signed one).
    verify_tls: bool = False
    user: str = Field(default="api", min_length=1, max_length=64)
    # How often the call status is read when nothing else happens.
    poll_ms: int = Field(default=1000, ge=100, le=60000)
    timeout_ms: int = Field(default=5000, ge=50, le=60000)


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DialParams(_Params):
    number: str = Field(min_length=1, max_length=128, description="SIP URI, H.323 alias or E.164")
    call_rate: int | None = Field(default=None, ge=64, le=8192, description="kbps")


class SiteParams(_Params):
    call_id: int | None = Field(default=None, ge=0, le=255, description="none: every call")


class AuxParams(_Params):
    source: int = Field(default=1, ge=1, le=8, description="the endpoint's content input")


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
        self._last_end_seq: int | None = None
        self.requests = 0
        self.logins = 0
        self.set_state("calls", [], "connect")
        self.set_state("microphones_muted", None, "connect")
        self.set_state("volume", None, "connect")
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
        req = self.session.request_session()
        status, headers, body = await self._send(req)
        try:
            self.session.on_session(status, headers, body)
            status, _, body = await self._send(self.session.login(self.cfg.user, self._password))
            self.session.on_login(status, body)
        except api.LoginRefused as e:
            raise AuthFailed(f"the endpoint refused user {self.cfg.user!r}: {e}") from None
        except (api.MalformedReply, api.SessionExpired) as e:
            raise DeviceOffline(f"{self.device_id}: login failed ({e})") from None
        self.logins += 1
        log.info("logged in", device=self.device_id, term=self.session.term_type)

    async def request(self, action: str, params: dict[str, Any] | None = None) -> Any:
        """One API call; logs in again once if the session has expired."""
        async with self._lock:
            for attempt in (1, 2):
                if not self.session.logged_in:
                    await self._login()
                status, _, body = await self._send(self.session.call(action, params))
                try:
                    return api.decode_reply(status, body)
                except api.SessionExpired:
                    log.info("session expired; logging in again", device=self.device_id)
                    self.session.reset()
                    if attempt == 2:
                        raise DeviceOffline(f"{self.device_id}: session refused twice") from None
                except api.ApiFailure as e:
                    raise DeviceRejected(str(e.code), e.text) from None
                except api.MalformedReply as e:
                    raise DeviceRejected("malformed", str(e)) from None
        raise AssertionError("unreachable")

    # --- the poll ------------------------------------------------------------------------

    async def poll(self, origin: Literal["command", "device", "poll", "connect"] = "poll") -> None:
        data = await self.request("WEB_GetCallStatusInfoAPI")
        try:
            status = api.parse_call_status(data)
        except api.MalformedReply as e:
            raise DeviceRejected("malformed", str(e)) from None
        end = status.last_end
        if end is not None:
            seq = end.pop("seq", 0)
            if self._last_end_seq is not None and seq != self._last_end_seq:
                self.set_state("last_disconnect", end, "device")
            self._last_end_seq = seq
        elif self._last_end_seq is None:
            self._last_end_seq = 0
        self.set_state("calls", [s.to_dict() for s in status.sites], origin)
        audio = await self.request("WEB_InitAudioCtrlParamsAPI")
        if isinstance(audio, dict) and "MicSwitch" in audio:
            self.set_state("microphones_muted", not bool(audio["MicSwitch"]), origin)
        aux = await self.request("WEB_IsSendAuxStreamAPI")
        if isinstance(aux, dict):
            sending = bool(aux.get("bIsSending"))
            src = aux.get("ucVideoSrc")
            self.set_state(
                "presentation",
                {
                    "mode": "Sending" if sending else "Off",
                    "source": src if sending and isinstance(src, int) else None,
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
                self.session.reset()
                self._last_end_seq = None
                try:
                    await self.poll("connect")
                    self._up = True
                    backoff.reset()
                    self.set_status(DriverStatus.OK, self._base())
                    while not self._stopping.is_set():
                        with contextlib.suppress(TimeoutError):
                            async with asyncio.timeout(self.cfg.poll_ms / 1000):
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

    async def stop(self) -> None:
        self._stopping.set()
        self._poke.set()
        await super().stop()

    async def _command(self, action_name: str, params: dict[str, Any] | None = None) -> Any:
        if not self._up:
            raise DeviceOffline(f"{self.device_id} is not connected")
        result = await self.request(action_name, params)
        self._poke.set()
        return result

    def _sites(self, call_id: int | None) -> list[int]:
        calls = self.state.get("calls") or []
        ids = [int(c["id"]) for c in calls]
        if call_id is None:
            return ids
        return [call_id]

    # --- actions -------------------------------------------------------------------------

    @action("dial", "Dial a SIP URI, H.323 alias or E.164 number.", DialParams)
    async def act_dial(self, p: DialParams) -> dict[str, Any]:
        body: dict[str, Any] = {"szNumber": api.check_number(p.number)}
        if p.call_rate is not None:
            body["ulCallRate"] = p.call_rate
        data = await self._command("WEB_CallNumberAPI", body)
        handle = data.get("ucSiteHandle") if isinstance(data, dict) else None
        return {"call_id": handle if isinstance(handle, int) else None}

    @action("accept", "Answer an incoming call.", SiteParams)
    async def act_accept(self, p: SiteParams) -> dict[str, Any]:
        calls = self.state.get("calls") or []
        ringing = [c["id"] for c in calls if c.get("device_status") == "INCOMING"]
        handle = p.call_id if p.call_id is not None else (ringing[0] if ringing else None)
        if handle is None:
            raise DeviceRejected(str(api.ERR_STATE), "no incoming call to accept")
        await self._command("WEB_IncomingCallProcAPI", {"ucSiteHandle": handle, "bAccept": 1})
        return {}

    @action(
        "disconnect", "Hang up one call (or every call); cancels a call still dialling.", SiteParams
    )
    async def act_disconnect(self, p: SiteParams) -> dict[str, Any]:
        calls = {int(c["id"]): c for c in self.state.get("calls") or []}
        targets = self._sites(p.call_id)
        if not targets and p.call_id is None:
            return {}
        for handle in targets:
            call = calls.get(handle)
            if call is not None and call.get("device_status") in ("CALLING", "ALERTING"):
                await self._command("WEB_CancelCallAPI")
            else:
                await self._command("WEB_HangupCallAPI", {"ucSiteHandle": handle})
        return {}

    @action("mute", "Close the microphone.", NoParams)
    async def act_mute(self, p: NoParams) -> dict[str, Any]:
        await self._command("WEB_CloseMicAPI")
        return {}

    @action("unmute", "Open the microphone.", NoParams)
    async def act_unmute(self, p: NoParams) -> dict[str, Any]:
        await self._command("WEB_OpenMicAPI")
        return {}

    @action("presentation_start", "Send the aux (content) stream from an input.", AuxParams)
    async def act_presentation_start(self, p: AuxParams) -> dict[str, Any]:
        await self._command("WEB_StartSendAuxStreamAPI", {"ucVideoSrc": p.source})
        return {}

    @action("presentation_stop", "Stop the aux (content) stream.", NoParams)
    async def act_presentation_stop(self, p: NoParams) -> dict[str, Any]:
        await self._command("WEB_StopSendAuxStreamAPI")
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
