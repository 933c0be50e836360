"""The ONVIF camera driver: supervision, PTZ with presets, snapshots and PullPoint events.

Start-up sequence (fixed, as Home Assistant's integration runs it): clock, services,
device information, media profiles with their stream URIs. Then, while the link lives,
one PullPoint subscription is pulled; it is renewed well before it expires and, when a
renewal or pull fails, left to lapse (never unsubscribed: some cameras then drop every
subscription) while the event state is marked stale and a new one is made. A lost link
reloads the profiles on reconnect, so a camera whose profiles changed across a reboot
feeds the wall its new streams.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import time
from collections.abc import Callable
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from drivers.backoff import Backoff
from drivers.contract import Driver, DriverConfig, DriverSetup, DriverStatus, Manifest, action
from drivers.errors import (
    AuthFailed,
    DeviceOffline,
    DeviceRejected,
    DriverError,
)
from drivers.onvif.client import CameraClient, NotOnvif, Profile, Unsupported, check_name
from drivers.onvif.joystick import Joystick
from drivers.transport import TcpEndpoint
from wallctl.logs import get_logger

log = get_logger("drivers.onvif")

# Topic fragments -> our event names (motion detectors and tamper/scene-change alarms).
TOPIC_KINDS = (
    ("motion", ("motion", "motiondetector", "motionalarm")),
    ("tamper", ("tamper", "globalscenechange", "scenechange")),
)
Listener = Callable[[str, dict[str, Any]], None]


class OnvifConfig(DriverConfig):
    # ONVIF answers are slower than a matrix's: the default SOAP timeout is longer.
    timeout_ms: int = Field(default=5000, ge=50, le=60000)
    user: str = Field(default="admin", min_length=1, max_length=64)
    # Joystick: at most one ContinuousMove per interval (the latest velocity wins).
    coalesce_ms: int = Field(default=100, ge=0, le=2000)
    # Dead-man: a continuous move with no follow-up for this long is stopped.
    deadman_ms: int = Field(default=1000, ge=100, le=60000)
    # PullPoint events (motion, tamper); off for cameras whose event service misbehaves.
    events: bool = True
    subscription_s: int = Field(default=60, ge=4, le=3600)
    pull_timeout_s: float = Field(default=5.0, ge=0.5, le=60)


class MoveParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pan: float = Field(default=0.0, ge=-1.0, le=1.0, allow_inf_nan=False)
    tilt: float = Field(default=0.0, ge=-1.0, le=1.0, allow_inf_nan=False)
    zoom: float = Field(default=0.0, ge=-1.0, le=1.0, allow_inf_nan=False)


class NoParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _token(value: str) -> str:
    if not 1 <= len(value) <= 64 or any(ord(c) < 33 or ord(c) == 127 for c in value):
        raise ValueError("must be 1 to 64 printable characters without spaces")
    return value


class PresetParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    preset: str = Field(min_length=1, max_length=64)

    @field_validator("preset")
    @classmethod
    def _preset(cls, v: str) -> str:
        return _token(v)


class SetPresetParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64)
    # Overwrite this preset; a new one when absent.
    preset: str | None = Field(default=None, min_length=1, max_length=64)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        try:
            return check_name(v)
        except DriverError as e:
            raise ValueError(e.message) from None

    @field_validator("preset")
    @classmethod
    def _preset(cls, v: str | None) -> str | None:
        return None if v is None else _token(v)


class SnapshotParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    profile: str | None = Field(default=None, min_length=1, max_length=64)


def profile_dict(p: Profile) -> dict[str, Any]:
    return {
        "token": p.token,
        "name": p.name,
        "width": p.width,
        "height": p.height,
        "codec": p.codec,
        "uri": p.uri,  # credentials already removed by the client
        "ptz": p.ptz,
    }


class OnvifDriver(Driver):
    manifest: ClassVar[Manifest] = Manifest(
        vendor="ONVIF",
        products=("Profile S / T cameras (Hikvision, Dahua, Uniview, Axis ...)",),
        protocol="onvif",
        family="camera",
        description="ONVIF cameras over SOAP: profiles, PTZ, presets, snapshots, events",
        default_tcp_port=80,
    )
    config_model: ClassVar[type[DriverConfig]] = OnvifConfig

    def __init__(self, setup: DriverSetup) -> None:
        super().__init__(setup)
        cfg = setup.config
        self.cfg = cfg if isinstance(cfg, OnvifConfig) else OnvifConfig()
        self._password = setup.password
        self.client: CameraClient | None = None
        self.listeners: list[Listener] = []
        self._stopping = asyncio.Event()
        self.joystick = Joystick(
            self._send_move,
            self._send_stop,
            coalesce_s=self.cfg.coalesce_ms / 1000,
            deadman_s=self.cfg.deadman_ms / 1000,
            name=setup.device_id,
        )
        self.subscriptions = 0
        self.renewals = 0
        self.set_state("events", "off" if not self.cfg.events else "starting", "connect")

    # --- link ----------------------------------------------------------------------------

    def _endpoint(self) -> tuple[str, int]:
        ep = self.setup.endpoint
        if not isinstance(ep, TcpEndpoint):
            raise NotOnvif("an ONVIF camera needs a host (and port), not a serial line")
        return ep.host, ep.port

    def notify(self, kind: str, data: dict[str, Any]) -> None:
        for listener in list(self.listeners):
            try:
                listener(kind, {"device": self.device_id, **data})
            except Exception:  # a listener's bug never stops the camera
                log.exception("camera listener failed", device=self.device_id, kind=kind)

    async def run(self) -> None:
        backoff = Backoff(initial=1.0, cap=self.cfg.retry_max_s)
        self._stopping.clear()
        while not self._stopping.is_set():
            host, port = self._endpoint()
            self.set_status(DriverStatus.CONNECTING, f"{host}:{port}")
            client = CameraClient(
                host, port, self.cfg.user, self._password, timeout_s=self.cfg.timeout_ms / 1000
            )
            at_cap = False
            try:
                await self._connect(client)
                backoff.reset()
                self.set_status(DriverStatus.OK, f"{host}:{port}")
                await self._serve(client)
                status, reason = DriverStatus.DISCONNECTED, "stopped"
            except AuthFailed as e:
                # A wrong password stays wrong: retry at the slowest pace, no login storm
                # (cameras lock an account after a few failures).
                status, reason, at_cap = DriverStatus.AUTH_FAILURE, e.message, True
            except NotOnvif as e:
                status, reason, at_cap = DriverStatus.CONNECTION_FAILURE, e.message, True
            except DriverError as e:
                status, reason = DriverStatus.CONNECTION_FAILURE, e.message
            finally:
                self.client = None
                await client.close()
            if self._stopping.is_set():
                break
            delay = backoff.at_cap() if at_cap else backoff.next()
            self.set_status(status, f"{reason}; retrying in {delay:.1f} s")
            log.info("camera link down", device=self.device_id, reason=reason, retry_s=delay)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._stopping.wait()

    async def _connect(self, client: CameraClient) -> None:
        info = await client.connect()
        if not info.clock_ok:
            log.warning(
                "camera clock is off: events and digests may fail",
                device=self.device_id,
                offset_s=round(info.clock_offset_s or 0.0, 1),
            )
        self.client = client
        self.set_state(
            "info",
            {
                "manufacturer": info.manufacturer,
                "model": info.model,
                "firmware": info.firmware,
                "serial": info.serial,
                "clock_offset_s": None
                if info.clock_offset_s is None
                else round(info.clock_offset_s, 1),
                "clock_ok": info.clock_ok,
                "ptz": info.ptz,
                "events": info.events,
            },
            "connect",
        )
        profiles = [profile_dict(p) for p in client.profiles]
        previous = self.state.get("profiles")
        self.set_state("profiles", profiles, "connect")
        if previous is not None and previous != profiles:
            log.info("camera profiles changed", device=self.device_id, count=len(profiles))
        self.notify("profiles", {"profiles": profiles, "changed": previous != profiles})

    async def _serve(self, client: CameraClient) -> None:
        """Pull events (or, without them, check the link) until stopped or the link drops."""
        if not (self.cfg.events and client.info.events):
            self.set_state("events", "off" if not self.cfg.events else "unsupported")
            while not self._stopping.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.cfg.keepalive_s or 10.0):
                        await self._stopping.wait()
                if not self._stopping.is_set():
                    await client.keepalive()
            return
        await self._pull_events(client)

    async def _subscribe(self, client: CameraClient) -> tuple[Any, Any, float]:
        ev = await client.events_service()
        r = await client.call(
            "CreatePullPointSubscription",
            ev.CreatePullPointSubscription(
                {"InitialTerminationTime": f"PT{self.cfg.subscription_s}S"}
            ),
        )
        addr = r.SubscriptionReference.Address
        address = str(getattr(addr, "_value_1", None) or addr)
        pull, manager = await client.subscription(address)
        self.subscriptions += 1
        self.set_state("events", "ok")
        return pull, manager, time.monotonic() + self._lifetime(r)

    def _lifetime(self, reply: Any) -> float:
        """Seconds the camera granted (its own clock on both sides), else what we asked."""
        cur, term = getattr(reply, "CurrentTime", None), getattr(reply, "TerminationTime", None)
        if isinstance(cur, dt.datetime) and isinstance(term, dt.datetime):
            return max(1.0, (term - cur).total_seconds())
        return float(self.cfg.subscription_s)

    async def _pull_events(self, client: CameraClient) -> None:
        sub: tuple[Any, Any, float] | None = None
        retry_at = 0.0
        while not self._stopping.is_set():
            now = time.monotonic()
            if sub is None:
                if now < retry_at:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(retry_at - now):
                            await self._stopping.wait()
                    continue
                try:
                    sub = await self._subscribe(client)
                except (DeviceRejected, Unsupported) as e:
                    self._stale(f"subscribe refused: {e.message}")
                    retry_at = time.monotonic() + min(30.0, self.cfg.subscription_s / 2)
                    continue
            pull, manager, expires = sub
            lifetime = self.cfg.subscription_s
            # Renew with a fifth of the lifetime (at least 5 s, at most half) to spare.
            if time.monotonic() >= expires - min(lifetime / 2, max(5.0, lifetime / 5)):
                try:
                    r = await client.call(
                        "Renew", manager.Renew({"TerminationTime": f"PT{lifetime}S"})
                    )
                    self.renewals += 1
                    expires = time.monotonic() + self._lifetime(r)
                    sub = (pull, manager, expires)
                except (DeviceRejected, Unsupported) as e:
                    # Let it lapse (no Unsubscribe) and make a new one.
                    self._stale(f"renewal refused: {e.message}")
                    sub = None
                    continue
            wait = min(self.cfg.pull_timeout_s, max(0.5, expires - time.monotonic() - 5.0))
            try:
                msgs = await client.call(
                    "PullMessages",
                    pull.PullMessages({"Timeout": f"PT{wait:g}S", "MessageLimit": 32}),
                    limit_s=wait + client.timeout_s,
                )
            except (DeviceRejected, Unsupported) as e:
                self._stale(f"pull refused: {e.message}")
                sub = None
                continue
            for m in getattr(msgs, "NotificationMessage", None) or []:
                self._on_notification(m)

    def _stale(self, reason: str) -> None:
        if self.state.get("events") != "stale":
            log.warning("camera events stale", device=self.device_id, reason=reason)
        self.set_state("events", "stale")
        self.notify("events_stale", {"reason": reason})

    def _on_notification(self, m: Any) -> None:
        try:
            topic = str(getattr(m.Topic, "_value_1", "") or "")
            msg = m.Message._value_1
            data = {
                i.Name: i.Value for i in (getattr(msg.Data, "SimpleItem", None) or []) if i.Name
            }
            source = {
                i.Name: i.Value for i in (getattr(msg.Source, "SimpleItem", None) or []) if i.Name
            }
        except AttributeError:
            log.info("camera event not understood", device=self.device_id)
            return
        low = topic.lower().replace("/", "").replace(":", "")
        kind = next((k for k, keys in TOPIC_KINDS if any(x in low for x in keys)), None)
        if kind is None:
            return
        value = next(iter(data.values()), None)
        active = str(value).lower() in ("true", "1")
        utc = getattr(msg, "UtcTime", None)
        event = {
            "active": active,
            "topic": topic[:256],
            "source": {k[:64]: str(v)[:128] for k, v in list(source.items())[:8]},
            "time": utc.isoformat() if isinstance(utc, dt.datetime) else None,
        }
        self.set_state(kind, active)
        self.notify(kind, event)

    async def stop(self) -> None:
        self._stopping.set()
        await self.joystick.close()
        await super().stop()

    # --- PTZ -----------------------------------------------------------------------------

    def _client(self) -> CameraClient:
        if self.client is None or self.status is not DriverStatus.OK:
            raise DeviceOffline(f"{self.device_id} is not connected ({self.status.value})")
        return self.client

    async def _send_move(self, v: tuple[float, float, float]) -> None:
        await self._client().continuous_move(*v)

    async def _send_stop(self) -> None:
        await self._client().stop()

    def _require_ptz(self) -> CameraClient:
        client = self._client()
        if not client.info.ptz:
            raise Unsupported(f"{self.device_id} has no PTZ (a fixed camera)")
        return client

    @action(
        "ptz_move",
        "Continuous move at a velocity (-1..1 each); coalesced, dead-man stop.",
        MoveParams,
    )
    async def ptz_move(self, p: MoveParams) -> dict[str, Any]:
        self._require_ptz()
        if p.pan == p.tilt == p.zoom == 0.0:
            await self.joystick.stop()
            return {"sent": True, "stopped": True}
        sent = await self.joystick.move((p.pan, p.tilt, p.zoom))
        return {"sent": sent, "coalesced": not sent, "deadman_ms": self.cfg.deadman_ms}

    @action("ptz_stop", "Stop pan, tilt and zoom.", NoParams)
    async def ptz_stop(self, p: NoParams) -> dict[str, Any]:
        self._require_ptz()
        await self.joystick.stop()
        return {"stopped": True}

    @action("ptz_relative", "Move by a translation (where the camera supports it).", MoveParams)
    async def ptz_relative(self, p: MoveParams) -> dict[str, Any]:
        await self._require_ptz().relative_move(p.pan, p.tilt, p.zoom)
        return {"moved": True}

    @action("ptz_absolute", "Move to a position (where the camera supports it).", MoveParams)
    async def ptz_absolute(self, p: MoveParams) -> dict[str, Any]:
        await self._require_ptz().absolute_move(p.pan, p.tilt, p.zoom)
        return {"moved": True}

    @action("home", "Go to the home position.", NoParams)
    async def home(self, p: NoParams) -> dict[str, Any]:
        await self._require_ptz().home()
        return {"moved": True}

    @action("presets", "List the PTZ presets.", NoParams, read_only=True)
    async def presets(self, p: NoParams) -> dict[str, Any]:
        presets = await self._require_ptz().presets()
        out = [{"token": x.token, "name": x.name} for x in presets]
        self.set_state("presets", out)
        return {"presets": out}

    @action("goto_preset", "Go to a preset (its token).", PresetParams)
    async def goto_preset(self, p: PresetParams) -> dict[str, Any]:
        await self.joystick.close()
        await self._require_ptz().goto_preset(p.preset)
        return {"preset": p.preset}

    @action("set_preset", "Store the current position as a preset.", SetPresetParams)
    async def set_preset(self, p: SetPresetParams) -> dict[str, Any]:
        token = await self._require_ptz().set_preset(p.name, p.preset)
        await self.presets(NoParams())
        return {"preset": token, "name": p.name}

    @action("remove_preset", "Delete a preset.", PresetParams)
    async def remove_preset(self, p: PresetParams) -> dict[str, Any]:
        await self._require_ptz().remove_preset(p.preset)
        await self.presets(NoParams())
        return {"removed": p.preset}

    @action("snapshot", "A JPEG picture (base64) for thumbnails.", SnapshotParams, read_only=True)
    async def snapshot(self, p: SnapshotParams) -> dict[str, Any]:
        data = await self._client().snapshot(p.profile)
        return {"content_type": "image/jpeg", "jpeg_base64": base64.b64encode(data).decode()}

    @action(
        "info",
        "Device information, profiles (no credentials) and PTZ support.",
        NoParams,
        read_only=True,
    )
    async def info(self, p: NoParams) -> dict[str, Any]:
        return {
            "info": self.state.get("info"),
            "profiles": self.state.get("profiles", []),
            "events": self.state.get("events"),
        }
