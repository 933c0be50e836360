"""A fake ONVIF camera: a real HTTP SOAP server for the device, media, PTZ and event services.

It checks WS-Security UsernameToken digests (a wrong password gets ``ter:NotAuthorized``,
as cameras send it), serves profiles whose stream URIs point wherever the test says (the
gst-rtsp-server helper), keeps PTZ state and presets, queues motion/tamper notifications
for PullPoint subscriptions that expire on their own, and serves a JPEG snapshot behind
HTTP digest authentication. Knobs a test turns: ``delay_s`` (slow replies), ``ptz``
(a camera without PTZ), ``clock_offset_s``, ``profiles`` (changed after a "reboot").
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from drivers.onvif import soap
from drivers.onvif.soap import NS, SoapError, text


@dataclass
class FakeProfile:
    token: str
    name: str
    width: int
    height: int
    encoding: str = "H264"
    stream_uri: str = "rtsp://127.0.0.1:554/stream"


@dataclass
class Subscription:
    id: str
    expires: float  # time.monotonic()
    queue: list[tuple[str, str, bool]] = field(default_factory=list)  # topic, source, state


@dataclass
class PtzCall:
    operation: str
    at: float  # time.perf_counter() when the request was parsed
    args: dict[str, Any]


# A tiny valid JPEG (1x1 grey), enough for a thumbnail pipeline to decode.
SNAPSHOT_JPEG = bytes.fromhex(
    "ffd8ffe000104a46494600010100000100010000ffdb004300080606070605080707070909080a0c140d0c0b0b0c"
    "1912130f141d1a1f1e1d1a1c1c20242e2720222c231c1c2837292c30313434341f27393d38323c2e333432ffc0"
    "000b080001000101011100ffc4001f0000010501010101010100000000000000000102030405060708090a0bff"
    "c400b5100002010303020403050504040000017d01020300041105122131410613516107227114328191a10823"
    "42b1c11552d1f02433627282090a161718191a25262728292a3435363738393a434445464748494a5354555657"
    "58595a636465666768696a737475767778797a838485868788898a92939495969798999aa2a3a4a5a6a7a8a9aa"
    "b2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae1e2e3e4e5e6e7e8e9eaf1f2f3f4f5f6f7f8"
    "f9faffda0008010100003f00fbd3ffd9"
)


class FakeCamera:
    def __init__(
        self,
        *,
        user: str = "admin",
        password: str = "admin",
        host: str = "127.0.0.1",
        manufacturer: str = "Wallctl",
        model: str = "FakeCam PTZ",
        firmware: str = "1.0.0",
        serial: str = "FC-0001",
        ptz: bool = True,
        profiles: list[FakeProfile] | None = None,
    ) -> None:
        self.user = user
        self.password = password
        self.host = host
        self.manufacturer = manufacturer
        self.model = model
        self.firmware = firmware
        self.serial = serial
        self.ptz = ptz
        self.profiles = profiles or [
            FakeProfile("main", "mainStream", 1920, 1080),
            FakeProfile("sub", "subStream", 640, 360),
        ]
        self.delay_s = 0.0
        self.clock_offset_s = 0.0
        self.presets: dict[str, tuple[str, tuple[float, float, float]]] = {
            "1": ("Gate", (0.1, 0.0, 0.0))
        }
        self.position = (0.0, 0.0, 0.0)
        self.velocity = (0.0, 0.0, 0.0)
        self.calls: list[PtzCall] = []
        self.requests: list[str] = []
        self.subscriptions: dict[str, Subscription] = {}
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._digest_nonces: set[str] = set()

    # --- lifecycle ---------------------------------------------------------------------

    @property
    def base(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def app(self) -> web.Application:
        app = web.Application(client_max_size=soap.MAX_REQUEST)
        for svc in ("device", "media", "ptz", "events"):
            app.router.add_post(f"/onvif/{svc}_service", self._handle)
        app.router.add_post("/onvif/pullpoint/{sid}", self._handle)
        app.router.add_get("/snapshot/{token}.jpg", self._snapshot)
        return app

    async def start(self, port: int = 0) -> FakeCamera:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, port, reuse_address=True)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- test knobs --------------------------------------------------------------------

    def emit(self, topic: str, source: str, state: bool) -> None:
        """Queue a notification (``motion`` or ``tamper``) for every live subscription."""
        now = time.monotonic()
        for sub in self.subscriptions.values():
            if sub.expires > now:
                sub.queue.append((topic, source, state))

    def reboot(self, profiles: list[FakeProfile] | None = None) -> None:
        """Forget subscriptions (a camera loses them on restart); maybe new profiles."""
        self.subscriptions.clear()
        if profiles is not None:
            self.profiles = profiles

    # --- HTTP --------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        data = await request.read()
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        try:
            req = soap.parse_request(data)
            self.requests.append(req.operation)
            if req.operation == "PullMessages":
                await self._long_poll(req, request.match_info.get("sid"))
            # GetSystemDateAndTime is answered without credentials (ONVIF Core 5.9.1):
            # clients read the clock before they can build a valid token.
            if req.operation != "GetSystemDateAndTime":
                soap.check_token(req, self.user, self.password, self._now())
            body = self._dispatch(req, request.match_info.get("sid"))
        except SoapError as err:
            status = 400 if err.sender else 500
            return web.Response(
                body=soap.fault(err), status=status, content_type="application/soap+xml"
            )
        return web.Response(body=soap.envelope(body), content_type="application/soap+xml")

    async def _long_poll(self, req: Request, sid: str | None) -> None:
        """PullMessages waits (up to its Timeout) for a notification, as cameras do."""
        try:
            wait = min(10.0, soap.parse_duration(req.body.findtext("tev:Timeout", "PT0S", NS)))
        except SoapError:
            return
        until = time.monotonic() + wait
        while time.monotonic() < until:
            sub = self.subscriptions.get(sid or "")
            if sub is None or sub.queue or sub.expires <= time.monotonic():
                return
            await asyncio.sleep(0.02)

    def _now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self.clock_offset_s)

    def _dispatch(self, req: Request, sid: str | None) -> str:
        op = req.operation
        handler = getattr(self, f"op_{op}", None)
        if handler is None:
            raise SoapError("ter:ActionNotSupported", f"{op} is not supported")
        if op in PTZ_OPS:
            if not self.ptz:
                raise SoapError("ter:ActionNotSupported", "PTZ is not supported")
            self.calls.append(PtzCall(op, time.perf_counter(), {}))
        result: str = handler(req.body, sid) if op in SUB_OPS else handler(req.body)
        return result

    # --- device service ----------------------------------------------------------------

    def op_GetSystemDateAndTime(self, body: Any) -> str:
        now = self._now()
        return (
            "<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime>"
            "<tt:DateTimeType>NTP</tt:DateTimeType><tt:DaylightSavings>false</tt:DaylightSavings>"
            "<tt:TimeZone><tt:TZ>UTC0</tt:TZ></tt:TimeZone><tt:UTCDateTime>"
            f"<tt:Time><tt:Hour>{now.hour}</tt:Hour><tt:Minute>{now.minute}</tt:Minute>"
            f"<tt:Second>{now.second}</tt:Second></tt:Time>"
            f"<tt:Date><tt:Year>{now.year}</tt:Year><tt:Month>{now.month}</tt:Month>"
            f"<tt:Day>{now.day}</tt:Day></tt:Date>"
            "</tt:UTCDateTime></tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>"
        )

    def op_GetDeviceInformation(self, body: Any) -> str:
        return (
            "<tds:GetDeviceInformationResponse>"
            f"<tds:Manufacturer>{text(self.manufacturer)}</tds:Manufacturer>"
            f"<tds:Model>{text(self.model)}</tds:Model>"
            f"<tds:FirmwareVersion>{text(self.firmware)}</tds:FirmwareVersion>"
            f"<tds:SerialNumber>{text(self.serial)}</tds:SerialNumber>"
            "<tds:HardwareId>1</tds:HardwareId></tds:GetDeviceInformationResponse>"
        )

    def _services(self) -> list[tuple[str, str]]:
        out = [
            (NS["tds"], "/onvif/device_service"),
            (NS["trt"], "/onvif/media_service"),
            (NS["tev"], "/onvif/events_service"),
        ]
        if self.ptz:
            out.append((NS["tptz"], "/onvif/ptz_service"))
        return out

    def op_GetServices(self, body: Any) -> str:
        items = "".join(
            f"<tds:Service><tds:Namespace>{ns}</tds:Namespace>"
            f"<tds:XAddr>{self.base}{path}</tds:XAddr>"
            "<tds:Version><tt:Major>2</tt:Major><tt:Minor>60</tt:Minor></tds:Version>"
            "</tds:Service>"
            for ns, path in self._services()
        )
        return f"<tds:GetServicesResponse>{items}</tds:GetServicesResponse>"

    def op_GetCapabilities(self, body: Any) -> str:
        ptz = f"<tt:PTZ><tt:XAddr>{self.base}/onvif/ptz_service</tt:XAddr></tt:PTZ>"
        return (
            "<tds:GetCapabilitiesResponse><tds:Capabilities>"
            f"<tt:Device><tt:XAddr>{self.base}/onvif/device_service</tt:XAddr></tt:Device>"
            f"<tt:Events><tt:XAddr>{self.base}/onvif/events_service</tt:XAddr>"
            "<tt:WSSubscriptionPolicySupport>false</tt:WSSubscriptionPolicySupport>"
            "<tt:WSPullPointSupport>true</tt:WSPullPointSupport>"
            "<tt:WSPausableSubscriptionManagerInterfaceSupport>false"
            "</tt:WSPausableSubscriptionManagerInterfaceSupport></tt:Events>"
            f"<tt:Media><tt:XAddr>{self.base}/onvif/media_service</tt:XAddr>"
            "<tt:StreamingCapabilities><tt:RTPMulticast>false</tt:RTPMulticast>"
            "<tt:RTP_TCP>true</tt:RTP_TCP><tt:RTP_RTSP_TCP>true</tt:RTP_RTSP_TCP>"
            "</tt:StreamingCapabilities></tt:Media>"
            f"{ptz if self.ptz else ''}"
            "</tds:Capabilities></tds:GetCapabilitiesResponse>"
        )

    def op_GetScopes(self, body: Any) -> str:
        return (
            "<tds:GetScopesResponse>"
            + "".join(
                "<tds:Scopes><tt:ScopeDef>Fixed</tt:ScopeDef>"
                f"<tt:ScopeItem>{text(s)}</tt:ScopeItem></tds:Scopes>"
                for s in self.scopes()
            )
            + "</tds:GetScopesResponse>"
        )

    def scopes(self) -> list[str]:
        return [
            "onvif://www.onvif.org/type/video_encoder",
            "onvif://www.onvif.org/Profile/Streaming",
            f"onvif://www.onvif.org/hardware/{self.model.replace(' ', '_')}",
            f"onvif://www.onvif.org/name/{self.manufacturer.replace(' ', '_')}",
        ]

    # --- media service -----------------------------------------------------------------

    def _profile(self, p: FakeProfile) -> str:
        ptz = (
            '<tt:PTZConfiguration token="ptz0"><tt:Name>PTZ</tt:Name>'
            "<tt:UseCount>1</tt:UseCount><tt:NodeToken>node0</tt:NodeToken>"
            "</tt:PTZConfiguration>"
        )
        return (
            f'<trt:Profiles token="{text(p.token)}" fixed="true">'
            f"<tt:Name>{text(p.name)}</tt:Name>"
            '<tt:VideoSourceConfiguration token="vsc0"><tt:Name>VideoSource</tt:Name>'
            "<tt:UseCount>2</tt:UseCount><tt:SourceToken>vs0</tt:SourceToken>"
            f'<tt:Bounds x="0" y="0" width="{p.width}" height="{p.height}"/>'
            "</tt:VideoSourceConfiguration>"
            f'<tt:VideoEncoderConfiguration token="vec-{text(p.token)}">'
            f"<tt:Name>{text(p.name)}</tt:Name><tt:UseCount>1</tt:UseCount>"
            f"<tt:Encoding>{text(p.encoding)}</tt:Encoding>"
            f"<tt:Resolution><tt:Width>{p.width}</tt:Width><tt:Height>{p.height}</tt:Height>"
            "</tt:Resolution><tt:Quality>5</tt:Quality>"
            "<tt:RateControl><tt:FrameRateLimit>25</tt:FrameRateLimit>"
            "<tt:EncodingInterval>1</tt:EncodingInterval><tt:BitrateLimit>2048</tt:BitrateLimit>"
            "</tt:RateControl><tt:SessionTimeout>PT60S</tt:SessionTimeout>"
            "</tt:VideoEncoderConfiguration>"
            f"{ptz if self.ptz else ''}</trt:Profiles>"
        )

    def op_GetProfiles(self, body: Any) -> str:
        items = "".join(self._profile(p) for p in self.profiles)
        return f"<trt:GetProfilesResponse>{items}</trt:GetProfilesResponse>"

    def _find_profile(self, body: Any) -> FakeProfile:
        token = body.findtext("trt:ProfileToken", "", NS) or body.findtext(
            "tptz:ProfileToken", "", NS
        )
        for p in self.profiles:
            if p.token == token:
                return p
        raise SoapError("ter:NoProfile", f"no profile {token!r}")

    def op_GetVideoSources(self, body: Any) -> str:
        w = max((p.width for p in self.profiles), default=1920)
        h = max((p.height for p in self.profiles), default=1080)
        return (
            '<trt:GetVideoSourcesResponse><trt:VideoSources token="vs0">'
            f"<tt:Framerate>25</tt:Framerate><tt:Resolution><tt:Width>{w}</tt:Width>"
            f"<tt:Height>{h}</tt:Height></tt:Resolution></trt:VideoSources>"
            "</trt:GetVideoSourcesResponse>"
        )

    def op_GetStreamUri(self, body: Any) -> str:
        p = self._find_profile(body)
        return (
            "<trt:GetStreamUriResponse><trt:MediaUri>"
            f"<tt:Uri>{text(p.stream_uri)}</tt:Uri>"
            "<tt:InvalidAfterConnect>false</tt:InvalidAfterConnect>"
            "<tt:InvalidAfterReboot>false</tt:InvalidAfterReboot>"
            "<tt:Timeout>PT0S</tt:Timeout></trt:MediaUri></trt:GetStreamUriResponse>"
        )

    def op_GetSnapshotUri(self, body: Any) -> str:
        p = self._find_profile(body)
        return (
            "<trt:GetSnapshotUriResponse><trt:MediaUri>"
            f"<tt:Uri>{self.base}/snapshot/{text(p.token)}.jpg</tt:Uri>"
            "<tt:InvalidAfterConnect>false</tt:InvalidAfterConnect>"
            "<tt:InvalidAfterReboot>false</tt:InvalidAfterReboot>"
            "<tt:Timeout>PT0S</tt:Timeout></trt:MediaUri></trt:GetSnapshotUriResponse>"
        )

    # --- PTZ service -------------------------------------------------------------------

    @staticmethod
    def _vector(el: Any, path: str) -> tuple[float, float, float]:
        pt = el.find(f"{path}/tt:PanTilt", NS)
        zm = el.find(f"{path}/tt:Zoom", NS)
        try:
            x = float(pt.get("x", 0)) if pt is not None else 0.0
            y = float(pt.get("y", 0)) if pt is not None else 0.0
            z = float(zm.get("x", 0)) if zm is not None else 0.0
        except ValueError:
            raise SoapError("ter:InvalidArgVal", "vector is not a number") from None
        return x, y, z

    def op_ContinuousMove(self, body: Any) -> str:
        self._find_profile(body)
        self.velocity = self._vector(body, "tptz:Velocity")
        self.calls[-1].args["velocity"] = self.velocity
        return "<tptz:ContinuousMoveResponse/>"

    def op_Stop(self, body: Any) -> str:
        self._find_profile(body)
        self.velocity = (0.0, 0.0, 0.0)
        return "<tptz:StopResponse/>"

    def op_RelativeMove(self, body: Any) -> str:
        self._find_profile(body)
        d = self._vector(body, "tptz:Translation")
        self.position = tuple(  # type: ignore[assignment]
            max(-1.0, min(1.0, a + b)) for a, b in zip(self.position, d, strict=True)
        )
        self.calls[-1].args["translation"] = d
        return "<tptz:RelativeMoveResponse/>"

    def op_AbsoluteMove(self, body: Any) -> str:
        self._find_profile(body)
        self.position = self._vector(body, "tptz:Position")
        self.calls[-1].args["position"] = self.position
        return "<tptz:AbsoluteMoveResponse/>"

    def op_GotoHomePosition(self, body: Any) -> str:
        self._find_profile(body)
        self.position = (0.0, 0.0, 0.0)
        return "<tptz:GotoHomePositionResponse/>"

    def op_GetPresets(self, body: Any) -> str:
        self._find_profile(body)
        items = "".join(
            f'<tptz:Preset token="{text(tok)}"><tt:Name>{text(name)}</tt:Name>'
            f'<tt:PTZPosition><tt:PanTilt x="{pos[0]}" y="{pos[1]}"/>'
            f'<tt:Zoom x="{pos[2]}"/></tt:PTZPosition></tptz:Preset>'
            for tok, (name, pos) in self.presets.items()
        )
        return f"<tptz:GetPresetsResponse>{items}</tptz:GetPresetsResponse>"

    def op_SetPreset(self, body: Any) -> str:
        self._find_profile(body)
        name = body.findtext("tptz:PresetName", "", NS)
        token = body.findtext("tptz:PresetToken", "", NS)
        if any(ord(c) < 32 or ord(c) == 127 for c in name) or len(name) > 64:
            raise SoapError("ter:InvalidArgVal", "invalid preset name")
        if len(self.presets) >= 32 and token not in self.presets:
            raise SoapError("ter:TooManyPresets", "preset table full", sender=False)
        if not token:
            token = str(max([int(t) for t in self.presets if t.isdigit()] or [0]) + 1)
        self.presets[token] = (name or f"Preset {token}", self.position)
        return (
            f"<tptz:SetPresetResponse><tptz:PresetToken>{text(token)}</tptz:PresetToken>"
            "</tptz:SetPresetResponse>"
        )

    def op_RemovePreset(self, body: Any) -> str:
        self._find_profile(body)
        token = body.findtext("tptz:PresetToken", "", NS)
        if self.presets.pop(token, None) is None:
            raise SoapError("ter:NoToken", f"no preset {token!r}")
        return "<tptz:RemovePresetResponse/>"

    def op_GotoPreset(self, body: Any) -> str:
        self._find_profile(body)
        token = body.findtext("tptz:PresetToken", "", NS)
        if token not in self.presets:
            raise SoapError("ter:NoToken", f"no preset {token!r}")
        self.position = self.presets[token][1]
        self.calls[-1].args["preset"] = token
        return "<tptz:GotoPresetResponse/>"

    # --- events (PullPoint) ------------------------------------------------------------

    def _termination(self, seconds: float) -> str:
        return soap.iso(self._now() + dt.timedelta(seconds=seconds))

    def op_CreatePullPointSubscription(self, body: Any) -> str:
        term = body.findtext("tev:InitialTerminationTime", "PT60S", NS) or "PT60S"
        secs = min(3600.0, soap.parse_duration(term))
        sid = secrets.token_hex(6)
        self.subscriptions[sid] = Subscription(sid, time.monotonic() + secs)
        return (
            "<tev:CreatePullPointSubscriptionResponse><tev:SubscriptionReference>"
            f"<wsa:Address>{self.base}/onvif/pullpoint/{sid}</wsa:Address>"
            "</tev:SubscriptionReference>"
            f"<wsnt:CurrentTime>{soap.iso(self._now())}</wsnt:CurrentTime>"
            f"<wsnt:TerminationTime>{self._termination(secs)}</wsnt:TerminationTime>"
            "</tev:CreatePullPointSubscriptionResponse>"
        )

    def _live(self, sid: str | None) -> Subscription:
        sub = self.subscriptions.get(sid or "")
        if sub is None or sub.expires <= time.monotonic():
            if sub is not None:
                del self.subscriptions[sub.id]
            raise SoapError("ter:InvalidArgVal", "unknown or expired subscription")
        return sub

    def op_Renew(self, body: Any, sid: str | None) -> str:
        sub = self._live(sid)
        term = body.findtext("wsnt:TerminationTime", "PT60S", NS) or "PT60S"
        secs = min(3600.0, soap.parse_duration(term))
        sub.expires = time.monotonic() + secs
        return (
            f"<wsnt:RenewResponse><wsnt:TerminationTime>{self._termination(secs)}"
            f"</wsnt:TerminationTime><wsnt:CurrentTime>{soap.iso(self._now())}"
            "</wsnt:CurrentTime></wsnt:RenewResponse>"
        )

    def op_PullMessages(self, body: Any, sid: str | None) -> str:
        sub = self._live(sid)
        limit = int(body.findtext("tev:MessageLimit", "10", NS) or 10)
        batch, sub.queue = sub.queue[:limit], sub.queue[limit:]
        now = soap.iso(self._now())
        msgs = "".join(_notification(t, s, v, now) for t, s, v in batch)
        left = max(0.0, sub.expires - time.monotonic())
        return (
            f"<tev:PullMessagesResponse><tev:CurrentTime>{now}</tev:CurrentTime>"
            f"<tev:TerminationTime>{self._termination(left)}</tev:TerminationTime>"
            f"{msgs}</tev:PullMessagesResponse>"
        )

    def op_Unsubscribe(self, body: Any, sid: str | None) -> str:
        self.subscriptions.pop(sid or "", None)
        return "<wsnt:UnsubscribeResponse/>"

    # --- snapshot (HTTP digest, RFC 7616 MD5 with qop=auth) ------------------------------

    async def _snapshot(self, request: web.Request) -> web.Response:
        if not self._digest_ok(request):
            nonce = secrets.token_hex(16)
            self._digest_nonces.add(nonce)
            return web.Response(
                status=401,
                headers={
                    "WWW-Authenticate": f'Digest realm="FakeCam", qop="auth", '
                    f'nonce="{nonce}", algorithm=MD5'
                },
            )
        token = request.match_info["token"]
        if not any(p.token == token for p in self.profiles):
            raise web.HTTPNotFound()
        return web.Response(body=SNAPSHOT_JPEG, content_type="image/jpeg")

    def _digest_ok(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Digest "):
            return False
        parts: dict[str, str] = {}
        for item in _split_header(header[7:]):
            k, _, v = item.partition("=")
            parts[k.strip().lower()] = v.strip().strip('"')
        if parts.get("username") != self.user or parts.get("nonce") not in self._digest_nonces:
            return False

        def md5(s: str) -> str:
            return hashlib.md5(s.encode()).hexdigest()

        ha1 = md5(f"{self.user}:{parts.get('realm', '')}:{self.password}")
        ha2 = md5(f"{request.method}:{parts.get('uri', '')}")
        expect = md5(
            f"{ha1}:{parts['nonce']}:{parts.get('nc', '')}:{parts.get('cnonce', '')}:"
            f"{parts.get('qop', '')}:{ha2}"
        )
        return secrets.compare_digest(expect, parts.get("response", ""))


Request = soap.Request

PTZ_OPS = frozenset(
    {
        "ContinuousMove",
        "Stop",
        "RelativeMove",
        "AbsoluteMove",
        "GotoHomePosition",
        "GetPresets",
        "SetPreset",
        "RemovePreset",
        "GotoPreset",
    }
)
SUB_OPS = frozenset({"Renew", "PullMessages", "Unsubscribe"})

TOPICS = {
    "motion": ("tns1:RuleEngine/CellMotionDetector/Motion", "IsMotion"),
    "tamper": ("tns1:VideoSource/GlobalSceneChange/ImagingService", "State"),
}


def _notification(topic: str, source: str, state: bool, now: str) -> str:
    path, item = TOPICS[topic]
    return (
        "<wsnt:NotificationMessage>"
        '<wsnt:Topic Dialect="http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet">'
        f"{path}</wsnt:Topic><wsnt:Message>"
        f'<tt:Message UtcTime="{now}" PropertyOperation="Changed">'
        f'<tt:Source><tt:SimpleItem Name="VideoSourceConfigurationToken" Value="{text(source)}"/>'
        f'</tt:Source><tt:Data><tt:SimpleItem Name="{item}" Value="{str(state).lower()}"/>'
        "</tt:Data></tt:Message></wsnt:Message></wsnt:NotificationMessage>"
    )


def _split_header(value: str) -> list[str]:
    out, cur, quoted = [], "", False
    for ch in value:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    if cur:
        out.append(cur)
    return out
