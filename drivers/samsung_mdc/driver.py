"""Samsung signage displays over MDC: power, input, volume, mute, video wall.

One driver per display (``display_id``) on TCP 1515 or RS-232 -- or per RS-232 daisy
chain: ``chain = [2, 3, 4]`` adds the displays looped through behind the first, and every
command then goes to each of them in turn (a wall switched on, or to one input, as a
whole), with per-display state under ``display.<id>.*`` and the common value (or
``"mixed"``) under the usual keys. The state is read at connect and polled with the
status command every ``keepalive_s`` (a display reports nothing on its own, so an
IR-remote change shows up at the next poll).

Quirk handled here, in one place: after power-on a display acknowledges, then ignores
every frame while it boots. Rather than time out (and have the link dropped as dead),
the driver holds further commands for ``warmup_s`` after a power-on or reboot.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from drivers.backoff import Backoff
from drivers.connection import Connection, Reply
from drivers.contract import DriverConfig, DriverSetup, Manifest, NoParams, Origin, action
from drivers.display import ChainedDisplayDriver
from drivers.errors import AuthFailed, DeviceRejected, DeviceTimeout, InvalidParams
from drivers.samsung_mdc import codec
from drivers.samsung_mdc.codec import (
    Ack,
    ChecksumError,
    Command,
    Event,
    Garbage,
    InputSource,
    Nak,
    TlsRequired,
)
from wallctl.logs import get_logger

log = get_logger("drivers.samsung_mdc")

# API input names -> the code selected. Reported codes not listed map through REPORTED.
INPUTS: dict[str, InputSource] = {
    "hdmi1": InputSource.HDMI1,
    "hdmi2": InputSource.HDMI2,
    "hdmi3": InputSource.HDMI3,
    "hdmi4": InputSource.HDMI4,
    "dp1": InputSource.DISPLAY_PORT_1,
    "dp2": InputSource.DISPLAY_PORT_2,
    "dp3": InputSource.DISPLAY_PORT_3,
    "dvi": InputSource.DVI,
    "pc": InputSource.PC,
    "hdbaset": InputSource.HD_BASE_T,
    "magicinfo": InputSource.MAGIC_INFO,
    "url_launcher": InputSource.URL_LAUNCHER,
    "web_browser": InputSource.WEB_BROWSER,
    "component": InputSource.COMPONENT,
    "av": InputSource.AV,
}
# A PC signal on an HDMI port is reported under its own code: it is still that port.
REPORTED: dict[int, str] = {
    **{int(code): name for name, code in INPUTS.items()},
    InputSource.HDMI1_PC: "hdmi1",
    InputSource.HDMI2_PC: "hdmi2",
    InputSource.HDMI3_PC: "hdmi3",
    InputSource.HDMI4_PC: "hdmi4",
    InputSource.DVI_VIDEO: "dvi",
}
CHECKSUM_RETRIES = 2


def _command_name(command: int) -> str:
    try:
        return Command(command).name.lower()
    except ValueError:
        return f"0x{command:02x}"


def input_name(code: int) -> str:
    return REPORTED.get(code, f"code_{code:02x}")


class SamsungMdcConfig(DriverConfig):
    display_id: int = Field(default=1, ge=0, le=0xFD, description="the display's MDC ID")
    # Further displays on the same RS-232 daisy chain, driven together with the first.
    chain: list[int] = Field(default_factory=list, max_length=64)
    # Seconds a display ignores commands after power-on/reboot (model-dependent, 5-15 s).
    warmup_s: float = Field(default=8.0, ge=0, le=120)

    @model_validator(mode="after")
    def _chain_ids(self) -> SamsungMdcConfig:
        ids = [self.display_id, *self.chain]
        for i in self.chain:
            if not 0 <= i <= 0xFD:
                raise ValueError(f"chain: display id {i} out of range 0..253")
        if len(set(ids)) != len(ids):
            raise ValueError("chain: every display on a line needs its own id")
        return self


class VolumeParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    level: int = Field(ge=0, le=100, description="volume 0..100")


class MuteParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    on: bool = Field(description="true mutes the sound")


class VideoWallParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    on: bool = Field(description="false shows the whole picture on each display alone")
    columns: int = Field(default=1, ge=1, le=15, description="displays across")
    rows: int = Field(default=1, ge=1, le=15, description="displays down")
    position: int | None = Field(
        default=None,
        ge=1,
        le=225,
        description="this display, 1-based, row by row (a chain: its order gives the positions)",
    )
    mode: Literal["full", "natural"] = Field(default="full", description="stretch or keep aspect")


def _matcher(display_id: int, command: int) -> Callable[[Event], Reply]:
    def match(event: Event) -> Reply:
        if isinstance(event, Ack | Nak):
            ours = event.display_id == display_id and event.command == command
            return Reply.DONE if ours else Reply.OTHER
        if isinstance(event, ChecksumError | TlsRequired):
            return Reply.DONE
        return Reply.OTHER

    return match


class SamsungMdcDriver(ChainedDisplayDriver):
    manifest = Manifest(
        vendor="Samsung",
        products=("QM/QB/QH series signage", "VM/VH video-wall displays", "IER/IF LED (MDC)"),
        protocol="samsung-mdc",
        family="display",
        description="Samsung MDC (Multiple Display Control): power, input, volume, video wall",
        default_tcp_port=codec.PORT,
        default_baud=codec.BAUD,
    )
    config_model = SamsungMdcConfig
    input_names = tuple(INPUTS)

    def __init__(self, setup: DriverSetup) -> None:
        super().__init__(setup)
        cfg = setup.config
        assert isinstance(cfg, SamsungMdcConfig)
        self.cfg = cfg
        self.ids: tuple[int, ...] = (cfg.display_id, *cfg.chain)
        self._busy_until = 0.0
        self._tls_seen = False
        self.checksum_errors = 0
        self.link = Connection(
            setup.device_id,
            setup.endpoint,
            self._new_codec,
            on_event=self._on_event,
            on_status=self.set_status,
            on_connect=self._on_connect,
            keepalive=self._poll,
            gap_s=cfg.gap_ms / 1000,
            timeout_s=cfg.timeout_ms / 1000,
            keepalive_s=cfg.keepalive_s,
            silence_s=cfg.silence_s,
            max_queue=cfg.max_queue,
            backoff=Backoff(cap=cfg.retry_max_s),
        )

    # --- exchange ----------------------------------------------------------------------------

    def _new_codec(self) -> codec.Decoder:
        # A new link: forget what the last one said (the TLS banner may come before any
        # request of ours is waiting, so it is remembered, not matched).
        self._tls_seen = False
        return codec.Decoder()

    @staticmethod
    def _secured() -> AuthFailed:
        return AuthFailed(
            "the display uses the MDC secured protocol (TLS and PIN); switch it off "
            "in the display's network settings to control it from wallctl"
        )

    async def _settle(self) -> None:
        wait = self._busy_until - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)

    async def _exchange(
        self, data: bytes, command: int, display_id: int, *, early: bool = False
    ) -> Ack:
        """Send one frame and return its ACK; NAK -> DeviceRejected; retried on bad checksum."""
        assert self.link is not None
        await self._settle()
        for _ in range(CHECKSUM_RETRIES + 1):
            if self._tls_seen:
                raise self._secured()
            try:
                event = await self.link.request(data, _matcher(display_id, command), early=early)
            except DeviceTimeout:
                if self._tls_seen:
                    raise self._secured() from None
                raise
            if isinstance(event, ChecksumError):
                self.checksum_errors += 1
                log.warning("mdc reply failed its checksum; sending again", device=self.device_id)
                continue
            if isinstance(event, TlsRequired):
                self._tls_seen = True
                raise self._secured()
            if isinstance(event, Nak):
                name = _command_name(command)
                raise DeviceRejected(f"NAK 0x{event.error:02X}", f"the display refused {name}")
            assert isinstance(event, Ack)
            return event
        raise DeviceRejected("checksum", "replies kept failing their checksum (line noise?)")

    def _on_event(self, event: Event) -> None:
        if isinstance(event, Garbage | ChecksumError):
            log.warning("mdc line noise", device=self.device_id, kind=type(event).__name__)
        elif isinstance(event, TlsRequired):
            self._tls_seen = True
            log.warning("mdc display asks for the secured protocol", device=self.device_id)

    # --- state ----------------------------------------------------------------------------------

    def _apply_status(self, did: int, data: bytes, origin: Origin) -> None:
        status = codec.decode_status(data)
        self._record(did, "power", "on" if status.power == codec.Power.ON else "off", origin)
        if status.volume != 0xFF:
            self._record(did, "volume", status.volume, origin)
        if status.mute != codec.Mute.UNAVAILABLE:
            self._record(did, "mute", status.mute == codec.Mute.ON, origin)
        self._record(did, "input", input_name(status.input_source), origin)

    async def _read_status(self, did: int, origin: Origin, *, early: bool = False) -> None:
        ack = await self._exchange(
            codec.encode_get(Command.STATUS, did), Command.STATUS, did, early=early
        )
        try:
            self._apply_status(did, ack.data, origin)
        except ValueError as e:
            raise DeviceRejected("malformed", f"status reply: {e}") from None

    async def _read_video_wall(self, did: int, origin: Origin, *, early: bool = False) -> None:
        try:
            on = await self._exchange(
                codec.encode_get(Command.VIDEO_WALL_ON, did),
                Command.VIDEO_WALL_ON,
                did,
                early=early,
            )
            user = await self._exchange(
                codec.encode_get(Command.VIDEO_WALL_USER, did),
                Command.VIDEO_WALL_USER,
                did,
                early=early,
            )
        except DeviceRejected:
            return  # no video wall on this model (or in standby): nothing to show
        if len(on.data) < 1 or len(user.data) < 2:
            return
        columns, rows = codec.decode_wall_div(user.data[0])
        wall = {"on": on.data[0] == 1, "columns": columns, "rows": rows, "position": user.data[1]}
        self._record(did, "video_wall", wall, origin)

    async def _read_model(self, did: int, *, early: bool = False) -> None:
        try:
            ack = await self._exchange(
                codec.encode_get(Command.MODEL_NAME, did), Command.MODEL_NAME, did, early=early
            )
        except DeviceRejected:
            return  # older models have no model-name command
        # Device text is untrusted: printable characters only, bounded.
        text = ack.data.decode("ascii", errors="replace")
        name = "".join(ch for ch in text if ch.isprintable()).strip()[:64]
        if name:
            self._record(did, "model", name, "connect")

    async def _on_connect(self) -> None:
        self._busy_until = 0.0

        async def read(did: int) -> None:
            await self._read_status(did, "connect", early=True)
            if self.state.get(f"display.{did}.power", self.state.get("power")) == "on":
                await self._read_model(did, early=True)
                await self._read_video_wall(did, "connect", early=True)

        # A chain comes up when one display answers; the others are read at the next poll.
        await self._each(read, tolerate=True)

    async def _poll(self) -> None:
        if self._busy_until > time.monotonic():
            return  # booting: silence now is expected, not a dead link
        await self._each(lambda did: self._read_status(did, "poll"), tolerate=True)

    # --- display family ----------------------------------------------------------------------

    async def _refresh(self) -> None:
        await self._each(lambda did: self._read_status(did, "poll"))

    async def _set_power(self, on: bool) -> None:
        was_on = self.state.get("power") == "on"

        async def one(did: int) -> None:
            await self._exchange(codec.encode_power(did, on), Command.POWER, did)
            self._record(did, "power", "on" if on else "off", "command")

        try:
            await self._each(one)
        finally:
            if on and not was_on:
                self._busy_until = time.monotonic() + self.cfg.warmup_s

    async def _set_input(self, source: str) -> None:
        code = INPUTS[source]

        async def one(did: int) -> None:
            await self._exchange(codec.encode_input(did, code), Command.INPUT_SOURCE, did)
            self._record(did, "input", source, "command")

        await self._each(one)

    # --- more actions -----------------------------------------------------------------------------

    @action("volume", "Set the display's volume.", VolumeParams)
    async def act_volume(self, p: VolumeParams) -> dict[str, Any]:
        async def one(did: int) -> None:
            await self._exchange(codec.encode_volume(did, p.level), Command.VOLUME, did)
            self._record(did, "volume", p.level, "command")

        await self._each(one)
        return {"volume": p.level}

    @action("mute", "Mute or unmute the display's sound.", MuteParams)
    async def act_mute(self, p: MuteParams) -> dict[str, Any]:
        async def one(did: int) -> None:
            await self._exchange(codec.encode_mute(did, p.on), Command.MUTE, did)
            self._record(did, "mute", p.on, "command")

        await self._each(one)
        return {"mute": p.on}

    @action("reboot", "Restart the display (it is unreachable for warmup_s afterwards).")
    async def act_reboot(self, p: NoParams) -> dict[str, Any]:
        async def one(did: int) -> None:
            await self._exchange(codec.encode_power(did, codec.Power.REBOOT), Command.POWER, did)

        try:
            await self._each(one)
        finally:
            self._busy_until = time.monotonic() + self.cfg.warmup_s
        return {"power": "on", "busy_s": self.cfg.warmup_s}

    @action(
        "video_wall",
        "Make the display (a chain: each display, in chain order) a tile of a video wall, "
        "or take it out.",
        VideoWallParams,
    )
    async def act_video_wall(self, p: VideoWallParams) -> dict[str, Any]:
        tiles = p.columns * p.rows
        if len(self.ids) > 1 and p.position is not None:
            raise InvalidParams(
                "on a chain each display's position follows the chain order; omit position",
                field="position",
            )
        if p.on and len(self.ids) > tiles:
            raise InvalidParams(
                f"a {p.columns}x{p.rows} wall has {tiles} places for {len(self.ids)} displays",
                field="columns",
            )
        position = p.position or 1
        if p.on and position > tiles:
            raise InvalidParams(
                f"position {position} is outside a {p.columns}x{p.rows} wall (1..{tiles})",
                field="position",
            )
        mode = codec.VideoWallMode.FULL if p.mode == "full" else codec.VideoWallMode.NATURAL

        async def one(did: int) -> None:
            place = position if len(self.ids) == 1 else self.ids.index(did) + 1
            await self._exchange(codec.encode_video_wall_on(did, p.on), Command.VIDEO_WALL_ON, did)
            wall: dict[str, Any] = {"on": p.on, "columns": p.columns, "rows": p.rows}
            if p.on:
                await self._exchange(
                    codec.encode_video_wall_user(did, p.columns, p.rows, place),
                    Command.VIDEO_WALL_USER,
                    did,
                )
                await self._exchange(
                    codec.encode_video_wall_mode(did, mode), Command.VIDEO_WALL_MODE, did
                )
                wall.update(position=place, mode=p.mode)
            else:
                key = "video_wall" if len(self.ids) == 1 else f"display.{did}.video_wall"
                wall = {**(self.state.get(key) or wall), "on": False}
            self._record(did, "video_wall", wall, "command")

        await self._each(one)
        return self._walls()

    @action("read_video_wall", "Read the display's video-wall settings.", read_only=True)
    async def act_read_video_wall(self, p: NoParams) -> dict[str, Any]:
        await self._each(lambda did: self._read_video_wall(did, "poll"))
        return self._walls()

    def _walls(self) -> dict[str, Any]:
        if len(self.ids) == 1:
            return {"video_wall": self.state.get("video_wall")}
        # Positions differ along a chain: one entry per display.
        return {"video_wall": {str(d): self.state.get(f"display.{d}.video_wall") for d in self.ids}}
