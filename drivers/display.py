"""The display family (wall panels, projectors): power, input, a status read.

A driver subclasses :class:`DisplayDriver`, lists the input names it accepts in
``input_names`` (e.g. ``("hdmi1", "hdmi2", "dp")``; lower-case words, mapped to the
protocol's codes in its codec) and implements ``_set_power``, ``_set_input`` and
``_refresh``. It inherits the actions ``power``, ``input`` and ``status``; the input name
is checked against ``input_names`` before anything is sent.

State keys: ``power`` -> ``"on"`` / ``"off"``, ``input`` -> an input name, and where the
device has them ``volume`` (0..100) and ``mute`` (bool).
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from drivers.contract import Driver, NoParams, action
from drivers.errors import InvalidParams


class PowerParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    on: bool = Field(description="true switches on, false to standby")


class InputParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str = Field(
        min_length=1, max_length=32, pattern=r"^[a-z0-9_]+$", description="input name"
    )


class DisplayDriver(Driver):
    input_names: ClassVar[tuple[str, ...]] = ()

    async def _set_power(self, on: bool) -> None:
        raise NotImplementedError

    async def _set_input(self, source: str) -> None:
        raise NotImplementedError

    async def _refresh(self) -> None:
        """Read power, input (and volume/mute where there are) into the state."""
        raise NotImplementedError

    def check_input(self, source: str) -> None:
        if source not in self.input_names:
            raise InvalidParams(
                f"unknown input {source[:32]!r}: this display has {', '.join(self.input_names)}",
                field="source",
            )

    @action("power", "Switch the display on or to standby.", PowerParams)
    async def act_power(self, p: PowerParams) -> dict[str, Any]:
        await self._set_power(p.on)
        return {"power": self.state.get("power")}

    @action("input", "Select the display's input.", InputParams)
    async def act_input(self, p: InputParams) -> dict[str, Any]:
        self.check_input(p.source)
        await self._set_input(p.source)
        return {"input": self.state.get("input")}

    @action("status", "Read power and input from the display.", NoParams, read_only=True)
    async def act_status(self, p: NoParams) -> dict[str, Any]:
        await self._refresh()
        return {k: v for k, v in self.state.items() if k in ("power", "input", "volume", "mute")}

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        for act in out["actions"]:
            if act["name"] == "input":
                act["params"]["properties"]["source"]["enum"] = list(self.input_names)
        out["inputs"] = list(self.input_names)
        return out
