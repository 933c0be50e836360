"""The Cisco xAPI driver: calls, microphones, volume, presentation, camera presets.

Two transports, one state model and one set of actions:

- ``transport = "ws"`` (the default): xAPI over WebSocket at ``/ws`` (``wss`` with
  ``tls = true``), authenticated with a Basic header or the ``auth-`` subprotocol. The
  driver subscribes to call, audio and presentation status and to the call events with
  ``NotifyCurrentValue``, so the first feedback is the full state.
- ``transport = "tshell"``: the terminal protocol over TCP (telnet-style login) or an
  RS-232 line (a serial endpoint), through the framework's :class:`Connection` (request
  queue, timeouts, reconnect). After login it registers the same feedback and reads
  ``xStatus`` once.
- ``transport = "ssh"``: the same terminal protocol on an SSH shell session (port 22,
  how most integrators reach a codec), opened by :mod:`drivers.cisco_xapi.ssh` through
  the same :class:`Connection`: the codec's host key is pinned (``host_key``) or trusted
  on first use and recorded in the state directory, a changed key is refused; after
  the codec's banner and ``OK`` the driver turns echo off and goes on as on tshell.

State keys: ``calls`` (list of calls with a vendor-neutral ``status``: dialling,
ringing, connected, disconnecting), ``microphones_muted``, ``volume``, ``presentation``
(``{"mode", "source"}``) and ``last_disconnect`` (``{"call_id", "reason", "code",
"text", "remote"}``, reason one of busy, unreachable, rejected, no_answer,
remote_hangup, local_hangup, failed) -- how the conference layer learns why a call
ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

import aiohttp
from pydantic import BaseModel, ConfigDict, Field, field_validator

from drivers.backoff import Backoff
from drivers.cisco_xapi import jsonrpc as rpc
from drivers.cisco_xapi.ssh import (
    KNOWN_HOSTS_NAME,
    HostKeyCheck,
    KnownHosts,
    SshLogin,
    normalise_fingerprint,
    open_ssh,
)
from drivers.cisco_xapi.state import CodecState
from drivers.cisco_xapi.tshell import (
    Done,
    Garbage,
    Literal_,
    Prompt,
    Record,
    Scalar,
    Text,
    TshellEvent,
    TshellParser,
    format_command,
    format_feedback_register,
    format_status,
)
from drivers.cisco_xapi.values import check_dial_string, check_text
from drivers.connection import Connection, Reply
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
    InvalidParams,
)
from drivers.transport import SerialEndpoint, TcpEndpoint
from wallctl.logs import get_logger

log = get_logger("drivers.cisco_xapi")

# What the driver follows; the same paths on both transports.
FEEDBACK: tuple[tuple[str, ...], ...] = (
    ("Status", "Call"),
    ("Status", "Audio", "Microphones", "Mute"),
    ("Status", "Audio", "Volume"),
    ("Status", "Conference", "Presentation"),
    ("Event", "CallDisconnect"),
    ("Event", "CallSuccessful"),
    ("Event", "IncomingCallIndication"),
)
STATUS_READS: tuple[tuple[str, ...], ...] = (
    ("Call",),
    ("Audio", "Microphones", "Mute"),
    ("Audio", "Volume"),
    ("Conference", "Presentation"),
)

# Cisco's CauseType, then the SIP cause code, -> the conference layer's reason words.
CAUSE_TYPES = {
    "LocalDisconnect": "local_hangup",
    "RemoteDisconnect": "remote_hangup",
    "RemoteBusy": "busy",
    "LocalBusy": "busy",
    "Unavailable": "unreachable",
    "NetworkRejected": "unreachable",
    "RemoteRejected": "rejected",
    "LocalRejected": "rejected",
    "Rejected": "rejected",
    "RemoteNoAnswer": "no_answer",
}
CAUSE_CODES = {486: "busy", 600: "busy", 404: "unreachable", 604: "unreachable", 603: "rejected"}
CAUSE_CODES.update({480: "no_answer", 408: "no_answer"})


def disconnect_reason(cause_type: str, code: int | None) -> str:
    if cause_type in CAUSE_TYPES:
        return CAUSE_TYPES[cause_type]
    if code is not None and code in CAUSE_CODES:
        return CAUSE_CODES[code]
    return "failed"


class CiscoXapiConfig(DriverConfig):
    # "ws": xAPI over WebSocket (/ws); "tshell": the terminal protocol (TCP or RS-232);
    # "ssh": the terminal protocol on an SSH session (port 22 unless the device sets one).
    transport: Literal["ws", "tshell", "ssh"] = "ws"
    # ssh: the codec's host key fingerprint as `ssh-keygen -lf` prints it (SHA256:...).
    # Unset: the first key seen is trusted and recorded in the state directory.
    host_key: str | None = None
    # wss:// instead of ws:// (the codec's HTTPS service).
    tls: bool = False
    # Check the codec's certificate (codecs usually carry a self-signed one).
    verify_tls: bool = False
    user: str = Field(default="admin", min_length=1, max_length=64)
    # How the WebSocket authenticates: an HTTP Basic header or the auth- subprotocol.
    auth: Literal["basic", "subprotocol"] = "basic"
    timeout_ms: int = Field(default=5000, ge=50, le=60000)
    keepalive_s: float = Field(default=30.0, ge=0, le=3600)

    @field_validator("host_key")
    @classmethod
    def _host_key(cls, v: str | None) -> str | None:
        return None if v is None else normalise_fingerprint(v)

    def endpoint_problem(self, way: str) -> str | None:
        """Why this transport cannot use ``way`` ("host" or "serial"), for wallctl check."""
        if self.transport == "ssh" and way == "serial":
            return 'transport = "ssh" needs host (and port), not a serial line'
        return None

    def default_port(self) -> int:
        """The codec's port for this transport when the device names none."""
        if self.transport == "ssh":
            return 22
        if self.transport == "tshell":
            return 23
        return 443 if self.tls else 80

    @field_validator("user")
    @classmethod
    def _user(cls, v: str) -> str:
        try:
            check_text(v, "user", 64)
        except InvalidParams as e:
            raise ValueError(e.message) from None
        if ":" in v or " " in v:
            raise ValueError("must not contain ':' or spaces")
        return v


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DialParams(_Params):
    number: str = Field(min_length=1, max_length=255, description="SIP URI, H.323 ID or E.164")
    call_rate: int | None = Field(default=None, ge=64, le=6000, description="kbps")
    protocol: Literal["auto", "sip", "h323"] = "auto"


class CallIdParams(_Params):
    call_id: int | None = Field(default=None, ge=1, le=65534, description="none: every call")


class VolumeParams(_Params):
    level: int = Field(ge=0, le=100)


class SourceParams(_Params):
    source: int = Field(ge=1, le=8, description="the codec's video input carrying the content")


class PresetParams(_Params):
    preset: int = Field(ge=1, le=35)


class CiscoXapiDriver(Driver):
    manifest: ClassVar[Manifest] = Manifest(
        vendor="Cisco",
        products=("Room Kit", "Codec Plus", "Codec Pro", "Room Bar", "SX80", "Desk Pro"),
        protocol="cisco-xapi",
        family="codec",
        description="Cisco collaboration endpoints (RoomOS/CE): xAPI over WebSocket or tshell",
        default_tcp_port=80,
        default_baud=115200,
    )
    config_model: ClassVar[type[DriverConfig]] = CiscoXapiConfig

    def __init__(self, setup: DriverSetup) -> None:
        super().__init__(setup)
        cfg = setup.config
        self.cfg = cfg if isinstance(cfg, CiscoXapiConfig) else CiscoXapiConfig()
        self.codec = CodecState()
        self._password = setup.password or ""
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._ws_ready = False
        self._rpc = rpc.JsonRpcClient()
        self._pending: dict[int | str, asyncio.Future[rpc.Response]] = {}
        self._subscriptions: set[int] = set()
        self._stop_ws = asyncio.Event()
        self.use_ssh = self.cfg.transport == "ssh"
        self.use_tshell = self.cfg.transport in ("tshell", "ssh") or isinstance(
            setup.endpoint, SerialEndpoint
        )
        self.host_keys: HostKeyCheck | None = None
        opener = None
        if self.use_ssh and isinstance(setup.endpoint, TcpEndpoint):
            self.host_keys = HostKeyCheck(
                self.device_id,
                setup.endpoint.host,
                setup.endpoint.port,
                pinned=self.cfg.host_key,
                known_hosts=self._known_hosts(setup),
            )
            login = SshLogin(
                self.device_id,
                self.cfg.user,
                self._password,
                self.host_keys,
                login_timeout_s=max(self.cfg.timeout_ms / 1000, 5.0),
            )
            opener = functools.partial(open_ssh, login)
        elif self.use_ssh:
            # `wallctl check` says so too; at run time the link reports bad_config.
            opener = functools.partial(open_ssh, None)
        if self.use_tshell:
            self.link = Connection(
                self.device_id,
                setup.endpoint,
                TshellParser,
                on_event=self._tshell_unsolicited,
                on_status=self.set_status,
                on_connect=self._tshell_startup,
                keepalive=self._keepalive,
                gap_s=self.cfg.gap_ms / 1000,
                timeout_s=self.cfg.timeout_ms / 1000,
                keepalive_s=self.cfg.keepalive_s,
                silence_s=self.cfg.silence_s,
                max_queue=self.cfg.max_queue,
                backoff=Backoff(cap=self.cfg.retry_max_s),
                opener=opener,
                # SSH's key exchange and login take longer than a TCP connect.
                connect_timeout_s=max(self.cfg.timeout_ms / 1000, 5.0) if self.use_ssh else 5.0,
            )
        self._publish_all("connect")

    @staticmethod
    def _known_hosts(setup: DriverSetup) -> KnownHosts | None:
        """Where first-use host keys are recorded: the daemon's state directory. A
        simulated device (a new key every start) and a driver without one record none:
        the key first seen holds for this driver's life (its reconnects)."""
        state_dir = setup.extra.get("state_dir")
        if setup.extra.get("simulated") or not isinstance(state_dir, str | Path):
            return None
        return KnownHosts(Path(state_dir) / KNOWN_HOSTS_NAME)

    # --- state ---------------------------------------------------------------------------

    def _publish(
        self, what: str | None, origin: Literal["command", "device", "poll", "connect"] = "device"
    ) -> None:
        snap = self.codec.snapshot()
        if what == "call":
            self.set_state("calls", snap["calls"], origin)
        elif what == "audio":
            self.set_state("microphones_muted", snap["microphones_muted"], origin)
            self.set_state("volume", snap["volume"], origin)
        elif what == "presentation":
            self.set_state("presentation", snap["presentation"], origin)

    def _publish_all(self, origin: Literal["command", "device", "poll", "connect"]) -> None:
        for what in ("call", "audio", "presentation"):
            self._publish(what, origin)

    def _apply_pairs(
        self, pairs: Any, origin: Literal["command", "device", "poll", "connect"] = "device"
    ) -> None:
        changed: set[str] = set()
        for path, value in pairs:
            what = self.codec.apply(path, value)
            if what:
                changed.add(what)
        for what in sorted(changed):
            self._publish(what, origin)

    def _apply_event(self, pairs: Any) -> None:
        """``("Event", name, key...)`` pairs of one event block."""
        by_name: dict[str, dict[str, Scalar]] = {}
        for path, value in pairs:
            if len(path) >= 3 and path[0] == "Event":
                by_name.setdefault(str(path[1]), {})[str(path[2])] = value
        fields = by_name.get("CallDisconnect")
        if fields is not None:
            code = fields.get("CauseCode")
            code_i = int(code) if isinstance(code, int) else None
            call_id = fields.get("CallId")
            self.set_state(
                "last_disconnect",
                {
                    "call_id": int(call_id) if isinstance(call_id, int) else None,
                    "reason": disconnect_reason(str(fields.get("CauseType", "")), code_i),
                    "code": code_i,
                    "text": str(fields.get("CauseString", "")),
                    "remote": str(fields.get("RemoteURI", "")),
                },
            )
            log.info(
                "call ended",
                device=self.device_id,
                call=call_id,
                cause=str(fields.get("CauseType", "")),
                code=code_i,
            )

    # --- the WebSocket transport ---------------------------------------------------------

    def _ws_url(self) -> str:
        ep = self.setup.endpoint
        if not isinstance(ep, TcpEndpoint):
            raise BadConfig("the WebSocket transport needs a host and port")
        scheme = "wss" if self.cfg.tls else "ws"
        host = f"[{ep.host}]" if ":" in ep.host else ep.host
        return f"{scheme}://{host}:{ep.port}/ws"

    async def run(self) -> None:
        if self.use_tshell:
            await super().run()
            return
        backoff = Backoff(cap=self.cfg.retry_max_s)
        self._stop_ws.clear()
        while not self._stop_ws.is_set():
            self.set_status(DriverStatus.CONNECTING, self._ws_url())
            at_cap = False
            try:
                reason = await self._ws_session(backoff)
                status = DriverStatus.DISCONNECTED
            except AuthFailed as e:
                status, reason, at_cap = DriverStatus.AUTH_FAILURE, e.message, True
            except BadConfig as e:
                status, reason, at_cap = DriverStatus.BAD_CONFIG, e.message, True
            except (aiohttp.ClientError, OSError, TimeoutError, DeviceTimeout, DeviceOffline) as e:
                status, reason = DriverStatus.CONNECTION_FAILURE, str(e) or type(e).__name__
            except DeviceRejected as e:
                status, reason = DriverStatus.CONNECTION_FAILURE, f"start-up refused: {e.message}"
            if self._stop_ws.is_set():
                break
            delay = backoff.at_cap() if at_cap else backoff.next()
            self.set_status(status, f"{reason}; retrying in {delay:.1f} s")
            log.info(
                "codec link down", device=self.device_id, reason=reason, retry_s=round(delay, 2)
            )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._stop_ws.wait()

    async def _ws_session(self, backoff: Backoff) -> str:
        headers: dict[str, str] = {}
        protocols: tuple[str, ...] = ()
        if self.cfg.auth == "basic":
            headers["Authorization"] = rpc.basic_auth_header(self.cfg.user, self._password)
        else:
            protocols = (rpc.auth_subprotocol(self.cfg.user, self._password),)
        # Codecs usually carry a self-signed certificate: verify only when asked to.
        ctx: ssl.SSLContext | bool = False
        if self.cfg.tls and self.cfg.verify_tls:
            ctx = ssl.create_default_context()
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.cfg.timeout_ms / 1000)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            try:
                # Bounded as a whole: a hung codec accepts TCP (in the kernel) and then
                # never answers the upgrade.
                async with asyncio.timeout(self.cfg.timeout_ms / 1000):
                    ws = await session.ws_connect(
                        self._ws_url(),
                        headers=headers,
                        protocols=protocols,
                        ssl=ctx,
                        heartbeat=self.cfg.keepalive_s or None,
                        max_msg_size=rpc.MAX_MESSAGE,
                        timeout=aiohttp.ClientWSTimeout(ws_close=2.0),
                    )
            except aiohttp.WSServerHandshakeError as e:
                if e.status in (401, 403):
                    raise AuthFailed(
                        f"the codec refused user {self.cfg.user!r} ({e.status})"
                    ) from None
                raise
            self._ws = ws
            reader = asyncio.create_task(self._ws_reader(ws), name=f"ws:{self.device_id}")
            try:
                self.codec.clear()
                self._subscriptions.clear()
                for query in FEEDBACK:
                    answer = await self._ws_request(
                        "xFeedback/Subscribe",
                        {"Query": list(query), "NotifyCurrentValue": query[0] == "Status"},
                        early=True,
                    )
                    if isinstance(answer, dict) and isinstance(answer.get("Id"), int):
                        self._subscriptions.add(answer["Id"])
                self._ws_ready = True
                self._publish_all("connect")
                backoff.reset()
                self.set_status(DriverStatus.OK, self._ws_url())
                log.info("codec link up", device=self.device_id, url=self._ws_url())
                stop = asyncio.create_task(self._stop_ws.wait())
                await asyncio.wait({reader, stop}, return_when=asyncio.FIRST_COMPLETED)
                stop.cancel()
                return "closed by the codec" if reader.done() else "stopped"
            finally:
                self._ws_ready = False
                self._ws = None
                reader.cancel()
                # Not ``suppress(CancelledError)`` around ``await reader``: that would
                # also swallow a cancellation of this task (the driver being stopped).
                await asyncio.wait({reader})
                if not reader.cancelled() and reader.exception() is not None:
                    log.warning(
                        "codec reader failed", device=self.device_id, error=repr(reader.exception())
                    )
                await ws.close()
                for fut in self._pending.values():
                    if not fut.done():
                        fut.set_exception(DeviceOffline(f"{self.device_id}: link lost"))
                self._pending.clear()

    async def _ws_reader(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            try:
                incoming = self._rpc.receive(msg.data)
            except rpc.ProtocolError as e:
                log.warning("codec sent a malformed message", device=self.device_id, error=str(e))
                continue
            if isinstance(incoming, rpc.Response):
                fut = self._pending.pop(incoming.id, None)
                if fut is not None and not fut.done():
                    fut.set_result(incoming)
            else:
                self._apply_pairs([p for p in incoming.pairs if p[0][:1] == ("Status",)])
                events = [p for p in incoming.pairs if p[0][:1] == ("Event",)]
                if events:
                    self._apply_event(events)

    async def _ws_request(
        self, method: str, params: Mapping[str, Any], *, early: bool = False
    ) -> Any:
        ws = self._ws
        if ws is None or ws.closed or not (early or self._ws_ready):
            raise DeviceOffline(f"{self.device_id} is not connected")
        rid, text = self._rpc.request(method, params)
        fut: asyncio.Future[rpc.Response] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        try:
            await ws.send_str(text)
        except (ConnectionError, aiohttp.ClientError) as e:
            self._pending.pop(rid, None)
            raise DeviceOffline(f"{self.device_id}: send failed ({e})") from None
        try:
            # asyncio.timeout, not wait_for: 3.11's wait_for drops a cancellation that
            # lands in the same loop iteration as the answer (or the link-lost failure).
            async with asyncio.timeout(self.cfg.timeout_ms / 1000):
                answer = await fut
        except TimeoutError:
            raise DeviceTimeout(
                f"{self.device_id} did not answer within {self.cfg.timeout_ms} ms"
            ) from None
        finally:
            self._pending.pop(rid, None)
        if answer.error is not None:
            raise DeviceRejected(str(answer.error.get("code")), rpc.error_reason(answer.error))
        return answer.result

    # --- the tshell transport ------------------------------------------------------------

    def _tshell_unsolicited(self, event: TshellEvent) -> None:
        if isinstance(event, Record):
            if event.kind == "s":
                self._apply_pairs(event.pairs)
            elif event.kind == "e":
                self._apply_event(event.pairs)
        elif isinstance(event, Prompt):
            # A login prompt on a running session: the codec restarted its shell.
            if self.link is not None:
                self.link.drop("the codec asked to log in again")
        elif isinstance(event, Garbage):
            log.warning("codec sent an over-long line", device=self.device_id, size=event.size)

    async def _tshell_request(
        self, data: bytes, *, early: bool = False
    ) -> tuple[list[Record], list[str]]:
        """Send one command line; its ``*r`` records and stray text once ``OK`` arrives;
        raise DeviceRejected on ``ERROR``."""
        assert self.link is not None
        records: list[Record] = []
        texts: list[str] = []

        def match(event: TshellEvent) -> Reply:
            if isinstance(event, Record) and event.kind == "r":
                records.append(event)
                return Reply.MORE
            if isinstance(event, Record) and event.kind == "s":
                # Status read by xStatus: state, and also passed to on_event.
                return Reply.OTHER
            if isinstance(event, Text):
                texts.append(event.line)
                return Reply.MORE
            if isinstance(event, Done):
                return Reply.DONE
            return Reply.OTHER

        done = await self.link.request(data, match, early=early)
        assert isinstance(done, Done)
        failed = [r for r in records if r.status.lower() == "error"]
        if not done.ok or failed:
            reason = ""
            for r in failed:
                reason = next((str(v) for p, v in r.pairs if p[-1:] == ("Reason",)), reason)
            if not reason:
                reason = (
                    "; ".join(t.strip() for t in texts if t.strip()) or "the codec answered ERROR"
                )
            name = failed[0].name if failed else "ERROR"
            raise DeviceRejected(name, reason)
        return records, texts

    async def _tshell_login(self) -> None:
        assert self.link is not None
        if not isinstance(self.setup.endpoint, TcpEndpoint):
            return  # RS-232: logged in unless the codec's SerialPort LoginRequired is on

        def prompt(event: TshellEvent) -> Reply:
            return Reply.DONE if isinstance(event, Prompt) else Reply.MORE

        # Without a password configured the session is expected to need none: a short
        # look for a prompt is enough to say clearly that it does.
        wait_s = 2.0 if self.setup.password is not None else 0.3
        try:
            # Nothing is sent: wait for what the codec says first (the login prompt).
            first = await self.link.request(
                b"", prompt, early=True, timeout_s=wait_s, expected_silence=True
            )
        except DeviceTimeout:
            return  # no prompt: a session that needs no login
        if not (isinstance(first, Prompt) and first.what == "login"):
            raise AuthFailed(f"expected a login prompt, got {first!r}")
        if self.setup.password is None:
            raise AuthFailed("the codec asks for a login and no password is configured")
        if "\n" in self._password or "\r" in self._password:
            raise BadConfig("the password must not contain a line break")

        asked = await self.link.request(f"{self.cfg.user}\n".encode(), prompt, early=True)
        if not (isinstance(asked, Prompt) and asked.what == "password"):
            raise AuthFailed("the codec did not ask for a password")
        refused: list[str] = []

        def logged_in(event: TshellEvent) -> Reply:
            if isinstance(event, Text) and "incorrect" in event.line.lower():
                refused.append(event.line)
                return Reply.MORE
            if isinstance(event, Prompt) or isinstance(event, Done):
                return Reply.DONE
            return Reply.MORE

        outcome = await self.link.request(f"{self._password}\n".encode(), logged_in, early=True)
        if refused or not (isinstance(outcome, Done) and outcome.ok):
            raise AuthFailed(f"the codec refused user {self.cfg.user!r}")

    async def _ssh_greeting(self) -> None:
        """SSH authenticated already: the codec prints its banner and ``OK``; then echo
        off, or every command line would come back as text before its answer."""
        assert self.link is not None
        banner: list[str] = []

        def ready(event: TshellEvent) -> Reply:
            if isinstance(event, Text):
                banner.append(event.line.strip())
                return Reply.MORE
            if isinstance(event, Done | Prompt):
                return Reply.DONE
            return Reply.OTHER

        try:
            first = await self.link.request(
                b"", ready, early=True, timeout_s=max(self.cfg.timeout_ms / 1000, 2.0)
            )
        except DeviceTimeout:
            raise DeviceTimeout(
                "the codec opened the SSH session but gave no tshell prompt"
            ) from None
        if isinstance(first, Prompt):
            # Not tshell: an SSH server that lands in a login of another kind.
            raise BadConfig(f"the SSH session asks for a {first.what}, not a tshell prompt")
        assert isinstance(first, Done)
        release = next((line for line in banner if "Release" in line), "")
        log.info("codec tshell ready over ssh", device=self.device_id, release=release[:120])
        await self._tshell_request(b"echo off\n", early=True)

    async def _tshell_startup(self) -> None:
        if self.use_ssh:
            await self._ssh_greeting()
        else:
            await self._tshell_login()
        await self._tshell_request(b"xPreferences outputmode terminal\n", early=True)
        for query in FEEDBACK:
            await self._tshell_request(format_feedback_register(query), early=True)
        self.codec.clear()
        for path in STATUS_READS:
            await self._tshell_request(format_status(path), early=True)
        self._publish_all("connect")

    async def _keepalive(self) -> object:
        return await self._tshell_request(format_status(("Standby", "State")))

    # --- one command, either transport ---------------------------------------------------

    async def command(
        self, path: tuple[str, ...], params: list[tuple[str, Scalar]]
    ) -> dict[str, Any]:
        """Run ``xCommand <path>``; the result's members as a dict."""
        if self.use_tshell:
            records, _ = await self._tshell_request(format_command(path, params))
            out: dict[str, Any] = {}
            for r in records:
                for p, v in r.pairs:
                    out[".".join(str(x) for x in p)] = v if isinstance(v, int) else str(v)
            return out
        # The same checks as the tshell formatter, so a value means the same on both.
        format_command(path, params)
        result = await self._ws_request(rpc.command_method(path), {k: v for k, v in params})
        return result if isinstance(result, dict) else {"result": result}

    # --- actions -------------------------------------------------------------------------

    @action("dial", "Dial a SIP URI, H.323 ID or E.164 number.", DialParams)
    async def act_dial(self, p: DialParams) -> dict[str, Any]:
        number = check_dial_string(p.number, "number")
        params: list[tuple[str, Scalar]] = [("Number", number)]
        if p.call_rate is not None:
            params.append(("CallRate", p.call_rate))
        if p.protocol != "auto":
            params.append(("Protocol", Literal_("Sip" if p.protocol == "sip" else "H323")))
        result = await self.command(("Dial",), params)
        call_id = result.get("CallId")
        return {
            "call_id": int(call_id)
            if isinstance(call_id, int | str) and str(call_id).isdigit()
            else None
        }

    @action("accept", "Answer an incoming call.", CallIdParams)
    async def act_accept(self, p: CallIdParams) -> dict[str, Any]:
        await self.command(("Call", "Accept"), [("CallId", p.call_id)] if p.call_id else [])
        return {}

    @action("disconnect", "Hang up one call (or every call).", CallIdParams)
    async def act_disconnect(self, p: CallIdParams) -> dict[str, Any]:
        await self.command(("Call", "Disconnect"), [("CallId", p.call_id)] if p.call_id else [])
        return {}

    @action("mute", "Mute the microphones.", NoParams)
    async def act_mute(self, p: NoParams) -> dict[str, Any]:
        await self.command(("Audio", "Microphones", "Mute"), [])
        return {}

    @action("unmute", "Unmute the microphones.", NoParams)
    async def act_unmute(self, p: NoParams) -> dict[str, Any]:
        await self.command(("Audio", "Microphones", "Unmute"), [])
        return {}

    @action("volume", "Set the loudspeaker volume (0-100).", VolumeParams)
    async def act_volume(self, p: VolumeParams) -> dict[str, Any]:
        await self.command(("Audio", "Volume", "Set"), [("Level", p.level)])
        return {}

    @action("presentation_start", "Send content from one of the codec's inputs.", SourceParams)
    async def act_presentation_start(self, p: SourceParams) -> dict[str, Any]:
        await self.command(("Presentation", "Start"), [("PresentationSource", p.source)])
        return {}

    @action("presentation_stop", "Stop sending content.", NoParams)
    async def act_presentation_stop(self, p: NoParams) -> dict[str, Any]:
        await self.command(("Presentation", "Stop"), [])
        return {}

    @action("camera_preset", "Move the main camera to a stored preset.", PresetParams)
    async def act_camera_preset(self, p: PresetParams) -> dict[str, Any]:
        await self.command(("Camera", "Preset", "Activate"), [("PresetId", p.preset)])
        return {}

    @action(
        "calls",
        "The calls, microphones and presentation as the codec reports them.",
        NoParams,
        read_only=True,
    )
    async def act_calls(self, p: NoParams) -> dict[str, Any]:
        return self.codec.snapshot()

    # --- lifecycle -----------------------------------------------------------------------

    async def stop(self) -> None:
        self._stop_ws.set()
        await super().stop()
