"""An ONVIF camera seen through onvif-zeep-async: what the daemon and the CLI ask of it.

zeep owns the wire (SOAP built from the WSDLs the library ships), so this module is the
exception to the sans-I/O rule. It adds what the library leaves to its caller: a timeout
on every call (the library's own is 90 s), failures mapped to the framework's driver
errors (auth / offline / timeout / rejected / unsupported), and plain data out
(``DeviceInfo``, ``Profile``, ``Preset``) with stream URIs that carry no credentials.
Credentials go into a URI only through :func:`with_credentials`, inside the daemon.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

import aiohttp
import zeep.exceptions
from onvif import ONVIFCamera
from onvif.exceptions import ONVIFAuthError, ONVIFError

from drivers.errors import (
    AuthFailed,
    DeviceOffline,
    DeviceRejected,
    DeviceTimeout,
    DriverError,
    InvalidParams,
)

T = TypeVar("T")

PTZ_NS = "http://www.onvif.org/ver20/ptz/wsdl"
EVENTS_NS = "http://www.onvif.org/ver10/events/wsdl"
CLOCK_WARN_S = 5.0


class Unsupported(DriverError):
    """The camera does not offer this (no PTZ service, no events)."""


class NotOnvif(DriverError):
    """Something answered, but not as an ONVIF device does."""


@dataclass(frozen=True, slots=True)
class Profile:
    token: str
    name: str
    width: int | None
    height: int | None
    codec: str | None
    uri: str | None  # without credentials
    ptz: bool = False


@dataclass(frozen=True, slots=True)
class Preset:
    token: str
    name: str


@dataclass(slots=True)
class DeviceInfo:
    manufacturer: str = ""
    model: str = ""
    firmware: str = ""
    serial: str = ""
    services: dict[str, str] = field(default_factory=dict)
    clock_offset_s: float | None = None
    ptz: bool = False
    events: bool = False

    @property
    def clock_ok(self) -> bool:
        return self.clock_offset_s is None or abs(self.clock_offset_s) <= CLOCK_WARN_S


def strip_credentials(uri: str) -> str:
    """The URI with any user:password@ removed (what the API, logs and the CLI show)."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return "<invalid uri>"
    if "@" not in parts.netloc:
        return uri
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def with_credentials(uri: str, user: str | None, password: str | None) -> str:
    """The URI with ``user:password@`` inserted (for FFmpeg, inside the daemon only)."""
    if not user:
        return uri
    parts = urlsplit(strip_credentials(uri))
    auth = quote(user, safe="")
    if password:
        auth += ":" + quote(password, safe="")
    return urlunsplit(parts._replace(netloc=f"{auth}@{parts.netloc}"))


def check_name(name: str, field_name: str = "name") -> str:
    """A preset name a camera and an operator can both live with."""
    if not 1 <= len(name) <= 64:
        raise InvalidParams("must be 1 to 64 characters", field=field_name)
    if any(ord(c) < 32 or 127 <= ord(c) < 160 for c in name):
        raise InvalidParams("control characters are not allowed", field=field_name)
    return name


def _fault_code(exc: zeep.exceptions.Fault) -> str:
    subcodes = getattr(exc, "subcodes", None) or []
    for sc in subcodes:
        local = getattr(sc, "localname", None) or str(sc)
        return "ter:" + local.rpartition("}")[2].rpartition(":")[2]
    return str(getattr(exc, "code", "") or "fault")


def _is_auth(exc: BaseException) -> bool:
    if isinstance(exc, ONVIFAuthError):
        return True
    if isinstance(exc, zeep.exceptions.Fault):
        code = _fault_code(exc).lower()
        msg = (exc.message or "").lower()
        return "notauthorized" in code or "not authorized" in msg or "unauthorized" in msg
    return False


class CameraClient:
    """One camera. Not thread-safe; one instance per camera, used from one event loop."""

    def __init__(
        self,
        host: str,
        port: int,
        user: str | None,
        password: str | None,
        *,
        timeout_s: float = 5.0,
    ) -> None:
        self.host = host
        self.port = port
        self.user = user
        self._password = password
        self.timeout_s = timeout_s
        self._cam: Any = ONVIFCamera(host, port, user, password, no_cache=True)
        self.info = DeviceInfo()
        self.profiles: list[Profile] = []
        self._ptz: Any = None
        self._media: Any = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def call(self, what: str, aw: Awaitable[T], limit_s: float | None = None) -> T:
        """Await a SOAP call with our timeout, mapping every failure to a DriverError."""
        try:
            # asyncio.timeout, not wait_for: 3.11's wait_for drops a cancellation that
            # arrives in the same loop iteration as the SOAP answer.
            async with asyncio.timeout(limit_s or self.timeout_s):
                return await aw
        except TimeoutError:
            raise DeviceTimeout(
                f"{what}: no answer within {limit_s or self.timeout_s:g} s"
            ) from None
        except DriverError:
            raise
        except zeep.exceptions.Fault as exc:
            if _is_auth(exc):
                raise AuthFailed("the camera refused the user name or password") from None
            if exc.code is None and not getattr(exc, "subcodes", None):
                # zeep turns any non-SOAP answer (an HTML error page) into a bare fault.
                raise NotOnvif(f"{self.address} does not answer as an ONVIF device") from None
            code = _fault_code(exc)
            if "actionnotsupported" in code.lower():
                raise Unsupported(f"{what}: the camera does not support it") from None
            raise DeviceRejected(code, exc.message or what) from None
        except (aiohttp.ClientConnectionError, ConnectionError, OSError) as exc:
            raise DeviceOffline(f"{what}: cannot reach {self.address} ({exc})") from None
        except (zeep.exceptions.TransportError, zeep.exceptions.XMLSyntaxError) as exc:
            raise NotOnvif(f"{self.address} does not answer as an ONVIF device ({exc})") from None
        except (AttributeError, TypeError, ValueError) as exc:
            # zeep fails this way on a reply that is not XML at all (a bare "404" page).
            raise NotOnvif(
                f"{self.address} does not answer as an ONVIF device ({type(exc).__name__})"
            ) from None
        except aiohttp.ClientError as exc:
            raise DeviceOffline(f"{what}: {self.address}: {exc}") from None
        except ONVIFError as exc:
            if _is_auth(exc):
                raise AuthFailed("the camera refused the user name or password") from None
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, aiohttp.ClientConnectionError | ConnectionError | OSError):
                raise DeviceOffline(f"{what}: cannot reach {self.address}") from None
            if isinstance(cause, zeep.exceptions.TransportError | zeep.exceptions.XMLSyntaxError):
                raise NotOnvif(f"{self.address} does not answer as an ONVIF device") from None
            text = str(exc)
            if "Device doesn`t support service" in text:
                raise Unsupported(f"{what}: the camera does not support it") from None
            raise DeviceRejected("onvif", text.removeprefix("Unknown error: ")) from None

    # --- start-up sequence -------------------------------------------------------------

    async def connect(self) -> DeviceInfo:
        """Clock, services, device information, profiles: the fixed start-up sequence."""
        dm = await self.call("device service", self._cam.create_devicemgmt_service())
        offset: float | None = None
        try:
            sys_dt = await self.call("GetSystemDateAndTime", dm.authless_GetSystemDateAndTime())
            u = sys_dt.UTCDateTime
            cam = dt.datetime(
                u.Date.Year,
                u.Date.Month,
                u.Date.Day,
                u.Time.Hour,
                u.Time.Minute,
                u.Time.Second,
                tzinfo=dt.UTC,
            )
            offset = (cam - dt.datetime.now(dt.UTC)).total_seconds()
        except (DeviceRejected, AttributeError, TypeError, ValueError):
            # Some cameras answer the clock only with credentials, or omit UTCDateTime.
            offset = None
        if offset is not None and abs(offset) > CLOCK_WARN_S:
            # WS-Security tokens carry our time; a camera far off refuses them as replays.
            # Let the library stamp tokens on the camera's clock (it measures the offset
            # itself), as Home Assistant does for cameras without NTP.
            self._cam.adjust_time = True
        await self.call("GetServices", self._cam.update_xaddrs())
        # update_xaddrs may have rebuilt the device service (with the clock offset).
        dm = await self.call("device service", self._cam.create_devicemgmt_service())
        raw = await self.call("GetDeviceInformation", dm.GetDeviceInformation())
        services = {str(k): str(v) for k, v in self._cam.xaddrs.items()}
        self.info = DeviceInfo(
            manufacturer=str(raw.Manufacturer or ""),
            model=str(raw.Model or ""),
            firmware=str(raw.FirmwareVersion or ""),
            serial=str(raw.SerialNumber or ""),
            services=services,
            clock_offset_s=offset,
            ptz=PTZ_NS in services,
            events=EVENTS_NS in services,
        )
        await self.load_profiles()
        return self.info

    async def keepalive(self) -> None:
        """A cheap request proving the link (cameras without events are checked so)."""
        dm = await self.call("device service", self._cam.create_devicemgmt_service())
        await self.call("GetSystemDateAndTime", dm.GetSystemDateAndTime())

    async def load_profiles(self) -> list[Profile]:
        self._media = await self.call("media service", self._cam.create_media_service())
        raw = await self.call("GetProfiles", self._media.GetProfiles())
        out: list[Profile] = []
        for p in raw or []:
            vec = getattr(p, "VideoEncoderConfiguration", None)
            res = getattr(vec, "Resolution", None) if vec is not None else None
            uri_raw = await self.call(
                "GetStreamUri",
                self._media.GetStreamUri(
                    {
                        "StreamSetup": {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}},
                        "ProfileToken": p.token,
                    }
                ),
            )
            uri = getattr(uri_raw, "Uri", None)
            out.append(
                Profile(
                    token=str(p.token),
                    name=str(getattr(p, "Name", "") or p.token),
                    width=int(res.Width) if res is not None and res.Width else None,
                    height=int(res.Height) if res is not None and res.Height else None,
                    codec=str(vec.Encoding) if vec is not None and vec.Encoding else None,
                    uri=strip_credentials(str(uri)) if uri else None,
                    ptz=getattr(p, "PTZConfiguration", None) is not None,
                )
            )
        self.profiles = out
        return out

    def stream_uri(self, token: str) -> str:
        """A profile's stream URI with credentials inserted (inside the daemon only)."""
        for p in self.profiles:
            if p.token == token and p.uri:
                return with_credentials(p.uri, self.user, self._password)
        raise InvalidParams(f"no profile {token!r} with a stream", field="profile")

    def ptz_profile(self) -> str:
        for p in self.profiles:
            if p.ptz:
                return p.token
        if self.profiles and self.info.ptz:
            return self.profiles[0].token
        raise Unsupported(f"camera {self.address} has no PTZ")

    # --- PTZ ---------------------------------------------------------------------------

    async def _ptz_service(self) -> Any:
        if not self.info.ptz:
            raise Unsupported(f"camera {self.address} has no PTZ")
        if self._ptz is None:
            self._ptz = await self.call("PTZ service", self._cam.create_ptz_service())
        return self._ptz

    @staticmethod
    def _vec(pan: float, tilt: float, zoom: float) -> dict[str, Any]:
        for name, v in (("pan", pan), ("tilt", tilt), ("zoom", zoom)):
            if not math.isfinite(v) or not -1.0 <= v <= 1.0:
                raise InvalidParams("must be a number from -1 to 1", field=name)
        return {"PanTilt": {"x": pan, "y": tilt}, "Zoom": {"x": zoom}}

    async def continuous_move(self, pan: float, tilt: float, zoom: float) -> None:
        vec = self._vec(pan, tilt, zoom)
        svc = await self._ptz_service()
        await self.call(
            "ContinuousMove",
            svc.ContinuousMove({"ProfileToken": self.ptz_profile(), "Velocity": vec}),
        )

    async def stop(self) -> None:
        svc = await self._ptz_service()
        await self.call(
            "Stop", svc.Stop({"ProfileToken": self.ptz_profile(), "PanTilt": True, "Zoom": True})
        )

    async def relative_move(self, pan: float, tilt: float, zoom: float) -> None:
        vec = self._vec(pan, tilt, zoom)
        svc = await self._ptz_service()
        await self.call(
            "RelativeMove",
            svc.RelativeMove({"ProfileToken": self.ptz_profile(), "Translation": vec}),
        )

    async def absolute_move(self, pan: float, tilt: float, zoom: float) -> None:
        vec = self._vec(pan, tilt, zoom)
        svc = await self._ptz_service()
        await self.call(
            "AbsoluteMove", svc.AbsoluteMove({"ProfileToken": self.ptz_profile(), "Position": vec})
        )

    async def home(self) -> None:
        svc = await self._ptz_service()
        await self.call(
            "GotoHomePosition", svc.GotoHomePosition({"ProfileToken": self.ptz_profile()})
        )

    async def presets(self) -> list[Preset]:
        svc = await self._ptz_service()
        raw = await self.call("GetPresets", svc.GetPresets({"ProfileToken": self.ptz_profile()}))
        return [Preset(str(p.token), str(getattr(p, "Name", "") or "")) for p in raw or []]

    async def goto_preset(self, token: str) -> None:
        svc = await self._ptz_service()
        await self.call(
            "GotoPreset",
            svc.GotoPreset({"ProfileToken": self.ptz_profile(), "PresetToken": token}),
        )

    async def set_preset(self, name: str, token: str | None = None) -> str:
        check_name(name)
        svc = await self._ptz_service()
        req: dict[str, Any] = {"ProfileToken": self.ptz_profile(), "PresetName": name}
        if token:
            req["PresetToken"] = token
        raw = await self.call("SetPreset", svc.SetPreset(req))
        return str(raw)

    async def remove_preset(self, token: str) -> None:
        svc = await self._ptz_service()
        await self.call(
            "RemovePreset",
            svc.RemovePreset({"ProfileToken": self.ptz_profile(), "PresetToken": token}),
        )

    # --- snapshots ---------------------------------------------------------------------

    async def snapshot(self, token: str | None = None) -> bytes:
        tok = token or (self.profiles[-1].token if self.profiles else "")
        data = await self.call("snapshot", self._cam.get_snapshot(tok))
        if not data:
            raise DeviceRejected("snapshot", "the camera returned no picture")
        return bytes(data)

    # --- events ------------------------------------------------------------------------

    async def events_service(self) -> Any:
        if not self.info.events:
            raise Unsupported(f"camera {self.address} has no event service")
        return await self.call("events service", self._cam.create_events_service())

    async def subscription(self, address: str) -> tuple[Any, Any]:
        """Clients for one PullPoint subscription's address: (pull point, manager)."""
        self._cam.xaddrs[f"{EVENTS_NS}/PullPointSubscription"] = address
        self._cam.xaddrs[f"{EVENTS_NS}/SubscriptionManager"] = address
        pull = await self.call(
            "pullpoint service",
            self._cam.create_onvif_service("pullpoint", "PullPointSubscription"),
        )
        manager = await self.call(
            "subscription service",
            self._cam.create_onvif_service("subscription", "SubscriptionManager"),
        )
        return pull, manager

    async def close(self) -> None:
        try:
            async with asyncio.timeout(2.0):
                await self._cam.close()
        except (TimeoutError, OSError, ONVIFError):
            pass
