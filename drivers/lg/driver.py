"""LG signage displays over RS-232C (or its TCP bridge): power, input, volume, mute, tiling.

One driver per display (``set_id``) -- or per RS-232 daisy chain: ``chain = [2, 3, 4]``
adds the displays looped through behind the first; every command then goes to each in
turn, with per-display state under ``display.<id>.*`` and the common value (or
``"mixed"``) under the usual keys. The state is read at connect and the power (and, when
on, the input) polled every ``keepalive_s``: a display reports nothing by itself.

Quirk handled here, in one place: LG acknowledges a power-on only once the display has
finished powering on, seconds later, and ignores other commands meanwhile. A single
display's power-on therefore waits up to ``power_on_timeout_s`` for its answer, with
the poll quiet meanwhile. A chain is switched on with one set-ID-00 broadcast (every
panel boots at once instead of one after the other), then read back after ``warmup_s``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from drivers.backoff import Backoff
from drivers.connection import Connection, Reply
from drivers.contract import DriverConfig, DriverSetup, Manifest, Origin, action
from drivers.display import ChainedDisplayDriver
from drivers.errors import DeviceRejected, DeviceTimeout, InvalidParams
from drivers.lg import codec
from drivers.lg.codec import Cmd, Event, Garbage, Input
from drivers.lg.codec import Reply as LgReply
from wallctl.logs import get_logger

log = get_logger("drivers.lg")

INPUTS: dict[str, Input] = {
    "hdmi1": Input.HDMI1,
    "hdmi2": Input.HDMI2,
    "hdmi3": Input.HDMI3,
    "dp": Input.DISPLAYPORT,
    "dvi": Input.DVI_D,
    "rgb": Input.RGB,
    "av": Input.AV,
    "component": Input.COMPONENT,
}
# A PC-labelled port is still that port.
REPORTED: dict[int, str] = {
    **{int(code): name for name, code in INPUTS.items()},
    Input.HDMI1_PC: "hdmi1",
    Input.HDMI2_PC: "hdmi2",
    Input.HDMI3_PC: "hdmi3",
    Input.DISPLAYPORT_PC: "dp",
    Input.DVI_D_PC: "dvi",
}


def input_name(code: int) -> str:
    return REPORTED.get(code, f"code_{code:02x}")


def off_reason_name(code: int) -> str:
    try:
        return codec.AbnormalState(code).name.lower()
    except ValueError:
        return f"code_{code:02x}"


class LgConfig(DriverConfig):
    set_id: int = Field(default=1, ge=1, le=0xFF, description="the display's Set ID")
    # Further displays on the same RS-232 daisy chain, driven together with the first.
    chain: list[int] = Field(default_factory=list, max_length=64)
    # LG answers a power-on only when the panel is up (model-dependent, up to ~15 s).
    power_on_timeout_s: float = Field(default=20.0, ge=1, le=120)
    # A chain's broadcast power-on gets no answer: read the panels back after this long.
    warmup_s: float = Field(default=10.0, ge=0, le=120)

    @model_validator(mode="after")
    def _chain_ids(self) -> LgConfig:
        ids = [self.set_id, *self.chain]
        for i in self.chain:
            if not 1 <= i <= 0xFF:
                raise ValueError(f"chain: set id {i} out of range 1..255")
        if len(set(ids)) != len(ids):
            raise ValueError("chain: every display on a line needs its own set id")
        return self


class VolumeParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    level: int = Field(ge=0, le=100, description="volume 0..100")


class MuteParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    on: bool = Field(description="true mutes")


class TileParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    columns: int = Field(ge=1, le=15, description="displays across (1x1 = tiling off)")
    rows: int = Field(ge=1, le=15, description="displays down")
    tile_id: int | None = Field(
        default=None,
        ge=1,
        le=225,
        description="this display, 1-based, row by row (a chain: its order gives the IDs)",
    )


def _matcher(cmd: Cmd, set_id: int) -> Callable[[Event], Reply]:
    def match(event: Event) -> Reply:
        if (
            isinstance(event, LgReply)
            and event.letter == cmd.reply_letter
            and event.set_id == set_id
        ):
            return Reply.DONE
        return Reply.OTHER

    return match


class LgDriver(ChainedDisplayDriver):
    manifest = Manifest(
        vendor="LG Electronics",
        products=("LG signage (SM/SH/UH/VH/VM series)", "LG video-wall displays"),
        protocol="lg",
        family="display",
        description="LG RS-232C commands (ka, xb, kf, ke, kd, dd, di) with OK/NG replies",
        default_tcp_port=codec.PORT,
        default_baud=codec.BAUD,
    )
    config_model = LgConfig
    input_names = tuple(INPUTS)

    def __init__(self, setup: DriverSetup) -> None:
        super().__init__(setup)
        cfg = setup.config
        assert isinstance(cfg, LgConfig)
        self.cfg = cfg
        self.ids: tuple[int, ...] = (cfg.set_id, *cfg.chain)
        self._powering_on = False
        self._busy_until = 0.0
        self.link = Connection(
            setup.device_id,
            setup.endpoint,
            codec.Decoder,
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

    async def _exchange(
        self,
        cmd: Cmd,
        data: bytes,
        set_id: int,
        *,
        early: bool = False,
        timeout_s: float | None = None,
    ) -> LgReply:
        """One request; its ``OK`` reply, or DeviceRejected on ``NG``."""
        assert self.link is not None
        wait = self._busy_until - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)  # the chain is booting: nobody would listen
        event = await self.link.request(
            data, _matcher(cmd, set_id), early=early, timeout_s=timeout_s
        )
        assert isinstance(event, LgReply)
        if not event.ok:
            raise DeviceRejected(
                "NG", f"the display refused {cmd.code} (off, busy or value not supported)"
            )
        return event

    async def _read(self, cmd: Cmd, set_id: int, *, early: bool = False) -> int | None:
        reply = await self._exchange(cmd, codec.encode_read(cmd, set_id), set_id, early=early)
        return reply.data[0] if reply.data else None

    def _power(self, sid: int, on: bool, origin: Origin) -> None:
        self._record(sid, "power", "on" if on else "off", origin)
        key = "off_reason" if len(self.ids) == 1 else f"display.{sid}.off_reason"
        if on and key in self.state:
            self._record(sid, "off_reason", "normal", origin)  # no longer off: no reason

    def _on_event(self, event: Event) -> None:
        if isinstance(event, Garbage):
            log.warning("lg line noise", device=self.device_id, reason=event.reason)

    # --- state ------------------------------------------------------------------------------

    async def _read_one(self, sid: int, origin: Origin, *, early: bool = False) -> None:
        power = await self._read(Cmd.POWER, sid, early=early)
        if power is None:
            return
        self._power(sid, bool(power), origin)
        if not power:
            # In standby every other read is answered NG; "kz" still says why it is off
            # (remote control, sleep timer, RS-232...), which an operator wants to know.
            try:
                reason = await self._read(Cmd.ABNORMAL_STATE, sid, early=early)
            except DeviceRejected:
                return
            if reason is not None:
                self._record(sid, "off_reason", off_reason_name(reason), origin)
            return
        for cmd in (Cmd.INPUT, Cmd.VOLUME, Cmd.VOLUME_MUTE):
            try:
                value = await self._read(cmd, sid, early=early)
            except DeviceRejected:
                continue  # a model without that function
            if value is None:
                continue
            if cmd is Cmd.INPUT:
                self._record(sid, "input", input_name(value), origin)
            elif cmd is Cmd.VOLUME:
                self._record(sid, "volume", value, origin)
            else:
                self._record(sid, "mute", value == codec.VOLUME_MUTE_ON, origin)
        try:
            mode = await self._read(Cmd.TILE_MODE, sid, early=early)
            tile_id = await self._read(Cmd.TILE_ID, sid, early=early)
        except DeviceRejected:
            return  # not a video-wall model
        if mode is not None:
            columns, rows = codec.decode_tile(mode) or (1, 1)
            tile = {"columns": columns, "rows": rows, "tile_id": tile_id or 1}
            self._record(sid, "tile", tile, origin)

    async def _on_connect(self) -> None:
        self._powering_on = False
        self._busy_until = 0.0
        # A chain comes up when one display answers; the others are read at the next poll.
        await self._each(lambda sid: self._read_one(sid, "connect", early=True), tolerate=True)

    async def _poll(self) -> None:
        if self._powering_on or self._busy_until > time.monotonic():
            return  # the display is deaf until its power-on ends: not a dead link

        async def one(sid: int) -> None:
            power = await self._read(Cmd.POWER, sid)
            if power is None:
                return
            self._power(sid, bool(power), "poll")
            if power:
                try:
                    code = await self._read(Cmd.INPUT, sid)
                except DeviceRejected:
                    return
                if code is not None:
                    self._record(sid, "input", input_name(code), "poll")

        await self._each(one, tolerate=True)

    # --- display family -------------------------------------------------------------------------

    async def _refresh(self) -> None:
        await self._each(lambda sid: self._read_one(sid, "poll"))

    async def _set_power(self, on: bool) -> None:
        if not on:

            async def off(sid: int) -> None:
                await self._exchange(Cmd.POWER, codec.encode_power(sid, False), sid)
                self._power(sid, False, "command")

            await self._each(off)
            return
        if len(self.ids) == 1:
            sid = self.ids[0]
            self._powering_on = True
            try:
                await self._exchange(
                    Cmd.POWER,
                    codec.encode_power(sid, True),
                    sid,
                    timeout_s=self.cfg.power_on_timeout_s,
                )
            except DeviceTimeout:
                raise DeviceTimeout(
                    f"{self.device_id}: no answer to power-on within "
                    f"{self.cfg.power_on_timeout_s:g} s"
                ) from None
            finally:
                self._powering_on = False
            self._power(sid, True, "command")
            return
        # A chain: one broadcast (set ID 00: every panel obeys, none answers), so the
        # panels boot together; then each one is read back.
        assert self.link is not None
        await self.link.send(codec.encode_power(codec.ALL_SETS, True))
        self._busy_until = time.monotonic() + self.cfg.warmup_s

        async def check(sid: int) -> None:
            power = await self._read(Cmd.POWER, sid)
            self._power(sid, bool(power), "command")
            if not power:
                raise DeviceRejected("off", f"still off {self.cfg.warmup_s:g} s after power-on")

        await self._each(check)

    async def _set_input(self, source: str) -> None:
        async def one(sid: int) -> None:
            await self._exchange(Cmd.INPUT, codec.encode_input(sid, INPUTS[source]), sid)
            self._record(sid, "input", source, "command")

        await self._each(one)

    # --- more actions ---------------------------------------------------------------------

    @action("volume", "Set the display's volume.", VolumeParams)
    async def act_volume(self, p: VolumeParams) -> dict[str, Any]:
        async def one(sid: int) -> None:
            await self._exchange(Cmd.VOLUME, codec.encode_volume(sid, p.level), sid)
            self._record(sid, "volume", p.level, "command")

        await self._each(one)
        return {"volume": p.level}

    @action("mute", "Mute or unmute the display's sound.", MuteParams)
    async def act_mute(self, p: MuteParams) -> dict[str, Any]:
        async def one(sid: int) -> None:
            await self._exchange(Cmd.VOLUME_MUTE, codec.encode_volume_mute(sid, p.on), sid)
            self._record(sid, "mute", p.on, "command")

        await self._each(one)
        return {"mute": p.on}

    @action("screen_mute", "Blank the picture (backlight stays on) or show it again.", MuteParams)
    async def act_screen_mute(self, p: MuteParams) -> dict[str, Any]:
        async def one(sid: int) -> None:
            await self._exchange(Cmd.SCREEN_MUTE, codec.encode_screen_mute(sid, p.on), sid)
            self._record(sid, "screen_mute", p.on, "command")

        await self._each(one)
        return {"screen_mute": p.on}

    @action(
        "tile",
        "Set the tile mode (columns x rows) and the display's tile ID (a chain: its order).",
        TileParams,
    )
    async def act_tile(self, p: TileParams) -> dict[str, Any]:
        tiles = p.columns * p.rows
        if len(self.ids) > 1 and p.tile_id is not None:
            raise InvalidParams(
                "on a chain each display's tile ID follows the chain order; omit tile_id",
                field="tile_id",
            )
        if tiles > 1 and len(self.ids) > tiles:
            raise InvalidParams(
                f"a {p.columns}x{p.rows} wall has {tiles} places for {len(self.ids)} displays",
                field="columns",
            )
        first = p.tile_id or 1
        if first > tiles:
            raise InvalidParams(
                f"tile_id {first} is outside a {p.columns}x{p.rows} wall (1..{tiles})",
                field="tile_id",
            )

        async def one(sid: int) -> None:
            tile_id = first if len(self.ids) == 1 else self.ids.index(sid) + 1
            await self._exchange(Cmd.TILE_MODE, codec.encode_tile_mode(sid, p.columns, p.rows), sid)
            if tiles > 1:
                await self._exchange(Cmd.TILE_ID, codec.encode_tile_id(sid, tile_id), sid)
            tile = {"columns": p.columns, "rows": p.rows, "tile_id": tile_id if tiles > 1 else 1}
            self._record(sid, "tile", tile, "command")

        await self._each(one)
        if len(self.ids) == 1:
            return {"tile": self.state.get("tile")}
        return {"tile": {str(s): self.state.get(f"display.{s}.tile") for s in self.ids}}
