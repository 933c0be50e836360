"""The matrix-switcher family: ties, salvos and tie reads, the same for every protocol.

Numbers are 1-based everywhere above the codec (input 1 is the first input, as on the
front panel of an Extron or Kramer); input 0 means "disconnect this output". A protocol
that counts from 0 on the wire (Videohub) converts in its codec, nowhere else.

A driver subclasses :class:`MatrixDriver`, sets ``levels`` and implements
``_send_ties`` (one command for several ties where the protocol allows) and
``_read_ties``; it inherits the declared actions ``route``, ``salvo`` and ``ties`` and the
validation of every number against the device's size before a byte is sent.

State keys: ``tie.<level>.<output>`` -> input (0 = none) for each level the device
switches (``video``, ``audio``), ``size`` -> ``{"inputs": n, "outputs": m}``, and
optionally ``label.input.<n>`` / ``label.output.<n>``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from drivers.contract import Driver, DriverConfig, DriverSetup, NoParams, Origin, action
from drivers.errors import DeviceRejected, DriverError, InvalidParams

Level = Literal["av", "video", "audio"]
# The largest matrix we accept anywhere (the biggest frames sold are 288x288 or so).
MAX_PORTS = 1024


class MatrixConfig(DriverConfig):
    # Size as "INPUTSxOUTPUTS" (e.g. "16x16"); the driver checks it against the device.
    size: str = "16x16"

    @field_validator("size")
    @classmethod
    def _size(cls, v: str) -> str:
        parse_size(v)
        return v

    def dims(self) -> tuple[int, int]:
        return parse_size(self.size)


def parse_size(text: str) -> tuple[int, int]:
    """``"16x8"`` -> (16, 8); ValueError when malformed or out of range."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() and len(p) <= 4 for p in parts):
        raise ValueError(f"size must look like 16x16, not {text!r}")
    i, o = int(parts[0]), int(parts[1])
    if not (1 <= i <= MAX_PORTS and 1 <= o <= MAX_PORTS):
        raise ValueError(f"inputs and outputs must each be 1..{MAX_PORTS}")
    return i, o


class TieParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # 0 disconnects the output.
    input: int = Field(ge=0, le=MAX_PORTS, description="input number, 0 = disconnect")
    output: int = Field(ge=1, le=MAX_PORTS, description="output number")
    level: Level = Field(default="av", description="av (audio+video), video or audio")


class RouteParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    input: int = Field(ge=0, le=MAX_PORTS, description="input number, 0 = disconnect")
    outputs: list[int] = Field(
        min_length=1, max_length=MAX_PORTS, description="output numbers to tie the input to"
    )
    level: Level = Field(default="av", description="av (audio+video), video or audio")


class SalvoParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    ties: list[TieParams] = Field(min_length=1, max_length=MAX_PORTS)


@dataclass(frozen=True)
class Tie:
    input: int
    output: int
    # "av", "video" or "audio" (a Level; plain str so codecs can pass theirs).
    level: str = "av"

    def to_dict(self) -> dict[str, Any]:
        return {"input": self.input, "output": self.output, "level": self.level}


@dataclass(frozen=True)
class TieOutcome:
    tie: Tie
    ok: bool
    # The device's own code (E13, ERR003) or offline/timeout when not ok.
    code: str = ""
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {**self.tie.to_dict(), "ok": self.ok}
        if not self.ok:
            out["code"] = self.code
            out["message"] = self.message
        return out


def tie_key(level: str, output: int) -> str:
    return f"tie.{level}.{output}"


class MatrixDriver(Driver):
    # The levels the device switches separately; "av" means all of them.
    levels: tuple[str, ...] = ("video", "audio")

    def __init__(self, setup: DriverSetup) -> None:
        super().__init__(setup)
        cfg = setup.config
        dims = cfg.dims() if isinstance(cfg, MatrixConfig) else (16, 16)
        self.inputs, self.outputs = dims
        self.set_state("size", {"inputs": self.inputs, "outputs": self.outputs}, "connect")

    # --- validation --------------------------------------------------------------------

    def check_tie(self, tie: Tie, where: str = "") -> None:
        """Refuse numbers outside the device, before anything reaches the line."""
        pre = f"{where}." if where else ""
        if not 0 <= tie.input <= self.inputs:
            raise InvalidParams(
                f"input {tie.input} is out of range: this matrix has inputs 1..{self.inputs}",
                field=f"{pre}input",
            )
        if not 1 <= tie.output <= self.outputs:
            raise InvalidParams(
                f"output {tie.output} is out of range: this matrix has outputs 1..{self.outputs}",
                field=f"{pre}output",
            )
        if tie.level != "av" and tie.level not in self.levels:
            raise InvalidParams(
                f"this matrix switches {', '.join(self.levels)} only", field=f"{pre}level"
            )

    def level_keys(self, level: str) -> tuple[str, ...]:
        return self.levels if level == "av" else (level,)

    def tie_of(self, output: int, level: str = "video") -> int | None:
        value = self.state.get(tie_key(level, output))
        return value if isinstance(value, int) else None

    def ties_table(self) -> dict[str, dict[str, int]]:
        """{level: {output: input}} from the cached state (outputs as strings, for JSON)."""
        table: dict[str, dict[str, int]] = {lvl: {} for lvl in self.levels}
        for key, value in self.state.items():
            if key.startswith("tie."):
                _, lvl, out = key.split(".", 2)
                table.setdefault(lvl, {})[out] = value
        return table

    def record_tie(self, tie: Tie, origin: Origin) -> None:
        for lvl in self.level_keys(tie.level):
            self.set_state(tie_key(lvl, tie.output), tie.input, origin)

    # --- what a protocol implements ---------------------------------------------------

    async def _send_ties(self, ties: Sequence[Tie]) -> None:
        """Send validated ties, as one command if the protocol allows; raise on refusal.
        Must record the new ties (``record_tie``) once the device confirmed them."""
        raise NotImplementedError

    async def _read_ties(self) -> None:
        """Read every output's tie from the device into the state."""
        raise NotImplementedError

    # --- the family's operations -------------------------------------------------------

    async def apply_ties(self, ties: Sequence[Tie]) -> list[TieOutcome]:
        """Validate all, then send as one command; if the device refuses the whole, send
        tie by tie so each one's own outcome is known. Offline/timeout fail them all."""
        for i, t in enumerate(ties):
            self.check_tie(t, f"ties[{i}]")
        try:
            await self._send_ties(ties)
            return [TieOutcome(t, True) for t in ties]
        except DeviceRejected as e:
            if len(ties) == 1:
                return [TieOutcome(ties[0], False, e.code, e.reason)]
        outcomes = []
        for t in ties:
            try:
                await self._send_ties([t])
                outcomes.append(TieOutcome(t, True))
            except DeviceRejected as e:
                outcomes.append(TieOutcome(t, False, e.code, e.reason))
        return outcomes

    # --- declared actions ----------------------------------------------------------------

    @action("route", "Tie one input to one or more outputs (input 0 disconnects).", RouteParams)
    async def act_route(self, p: RouteParams) -> dict[str, Any]:
        ties = [Tie(p.input, out, p.level) for out in p.outputs]
        for i, t in enumerate(ties):
            try:
                self.check_tie(t)
            except InvalidParams as e:
                field = "input" if e.field == "input" else f"outputs[{i}]"
                raise InvalidParams(e.message, field=field) from None
        return _ties_result(await self.apply_ties(ties))

    @action("salvo", "Several ties as one command, reported tie by tie.", SalvoParams)
    async def act_salvo(self, p: SalvoParams) -> dict[str, Any]:
        ties = [Tie(t.input, t.output, t.level) for t in p.ties]
        return _ties_result(await self.apply_ties(ties))

    @action("ties", "Read every output's tie from the device.", NoParams, read_only=True)
    async def act_ties(self, p: NoParams) -> dict[str, Any]:
        await self._read_ties()
        return {"ties": self.ties_table()}


def _ties_result(outcomes: list[TieOutcome]) -> dict[str, Any]:
    return {"ok": all(o.ok for o in outcomes), "ties": [o.to_dict() for o in outcomes]}


__all__ = [
    "DriverError",
    "Level",
    "MatrixConfig",
    "MatrixDriver",
    "RouteParams",
    "SalvoParams",
    "Tie",
    "TieOutcome",
    "TieParams",
    "parse_size",
    "tie_key",
]
