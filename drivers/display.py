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

from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from drivers.contract import Driver, NoParams, Origin, action
from drivers.errors import AuthFailed, DeviceRejected, DriverError, InvalidParams
from wallctl.logs import get_logger

log = get_logger("drivers.display")


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


class ChainedDisplayDriver(DisplayDriver):
    """A display on its own line, or several on one RS-232 daisy chain driven together."""

    # The first display's id, then the rest of the chain; set from the driver's config.
    ids: tuple[int, ...] = ()

    async def _each(self, op: Callable[[int], Awaitable[None]], *, tolerate: bool = False) -> None:
        """Run ``op`` for every display of the chain, all of them even when some fail.

        All failed: the first error as it is (offline stays offline). Some failed: a
        DeviceRejected naming each display at fault -- or, with ``tolerate`` (reads),
        a warning, since the others' state is still worth having. A refused login stops
        at once: every display would refuse it.
        """
        errors: list[tuple[int, DriverError]] = []
        for did in self.ids:
            try:
                await op(did)
            except AuthFailed:
                raise
            except DriverError as e:
                errors.append((did, e))
        if not errors:
            return
        if len(errors) == len(self.ids):
            raise errors[0][1]
        summary = "; ".join(f"display {did}: {e.message}" for did, e in errors)
        if tolerate:
            log.warning(
                "displays of the chain did not answer", device=self.device_id, detail=summary
            )
            return
        raise DeviceRejected("partial", summary)

    def _record(self, did: int, key: str, value: Any, origin: Origin) -> None:
        """One display's ``key``; on a chain also the common value, or ``"mixed"``."""
        if len(self.ids) == 1:
            self.set_state(key, value, origin)
            return
        self.set_state(f"display.{did}.{key}", value, origin)
        known = [self.state[k] for i in self.ids if (k := f"display.{i}.{key}") in self.state]
        same = all(v == known[0] for v in known)
        self.set_state(key, known[0] if same else "mixed", origin)
