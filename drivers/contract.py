"""The driver contract: what every device driver declares and does.

A driver is a class with, as data:

- ``manifest``: who makes the device, which products, the protocol name, the family
  (``matrix``, ``display``, ...) and the usual TCP port / baud rate;
- ``config_model``: a pydantic model (subclass of :class:`DriverConfig`) for its options,
  so ``wallctl check`` validates them and reports ``devices[2].size: ...``;
- actions: methods decorated with :func:`action`, each with a name, a description and a
  pydantic params model. ``Driver.actions`` collects them (inherited ones included), so
  the API, the CLI and the web page list and call them without knowing the driver;
- ``state``: a flat dict of JSON values the driver keeps current (``power``, ``input``,
  ``tie.video.5``...). Every change goes through :meth:`Driver.set_state`, which tells
  the host through ``on_event``.

Lifecycle: ``start()`` returns at once and keeps connecting in the background (status
``connecting`` -> ``ok``); ``stop()`` closes everything; ``reconfigure()`` takes a new
config. ``status`` is one of :class:`DriverStatus`, as in Companion modules.

A minimal driver::

    class Lamp(Driver):
        manifest = Manifest(vendor="Acme", products=("L1",), protocol="acme-lamp")
        config_model = DriverConfig

        @action("power", "Switch the lamp", PowerParams)
        async def power(self, p: PowerParams) -> dict[str, Any]:
            await self.link.request(encode_power(p.on), is_power_reply)
            self.set_state("power", "on" if p.on else "off", origin="command")
            return {"power": self.state["power"]}
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from drivers.errors import InvalidParams, UnknownAction
from drivers.transport import Endpoint
from wallctl.logs import get_logger

if TYPE_CHECKING:
    from drivers.connection import Connection

log = get_logger("drivers.contract")


class DriverStatus(StrEnum):
    OK = "ok"
    CONNECTING = "connecting"
    DISCONNECTED = "disconnected"
    CONNECTION_FAILURE = "connection_failure"
    BAD_CONFIG = "bad_config"
    AUTH_FAILURE = "auth_failure"


Family = Literal["matrix", "display", "codec", "camera", "other"]


@dataclass(frozen=True)
class Manifest:
    """Who makes the device and how it is reached; shown in ``device.list``."""

    vendor: str
    products: tuple[str, ...]
    # The name used in config (``protocol = "extron-sis"``) and by ``wallctl simulate``.
    protocol: str
    family: Family = "other"
    description: str = ""
    default_tcp_port: int | None = None
    default_baud: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "vendor": self.vendor,
            "products": list(self.products),
            "protocol": self.protocol,
            "family": self.family,
            "description": self.description,
            "default_tcp_port": self.default_tcp_port,
            "default_baud": self.default_baud,
        }


class DriverConfig(BaseModel):
    """Options every driver has; a driver's own model subclasses this and adds its own.

    Times are in milliseconds or seconds as the name says; the defaults suit most
    RS-232 devices. Subclasses may change a default by redeclaring the field.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Pause between the end of one exchange and the next command (slow serial devices).
    gap_ms: int = Field(default=0, ge=0, le=5000)
    # How long one request waits for its reply.
    timeout_ms: int = Field(default=2000, ge=50, le=60000)
    # Send the protocol's keepalive/poll after this much idle time (0 = never).
    keepalive_s: float = Field(default=10.0, ge=0, le=3600)
    # Drop and reopen the link after this long without a byte from the device (0 = never).
    silence_s: float = Field(default=0.0, ge=0, le=3600)
    # Cap of the reconnect backoff.
    retry_max_s: float = Field(default=30.0, ge=0.5, le=3600)
    # Requests allowed to wait for their turn before new ones are refused.
    max_queue: int = Field(default=64, ge=1, le=10000)


class NoParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- actions ------------------------------------------------------------------------------

ActionFn = Callable[[Any, Any], Awaitable[dict[str, Any]]]
F = TypeVar("F", bound=Callable[..., Awaitable[dict[str, Any]]])

_ACTION_ATTR = "__driver_action__"


@dataclass(frozen=True)
class Action:
    """One thing a device can do, declared as data."""

    name: str
    description: str
    params: type[BaseModel]
    # True for actions that only read (allowed to viewers); False for those that change.
    read_only: bool = False
    method: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "read_only": self.read_only,
            "params": self.params.model_json_schema(),
        }


def action(
    name: str, description: str, params: type[BaseModel] = NoParams, *, read_only: bool = False
) -> Callable[[F], F]:
    """Declare a driver method as an action: ``async def m(self, p: Params) -> dict``."""

    def mark(fn: F) -> F:
        setattr(fn, _ACTION_ATTR, Action(name, description, params, read_only, fn.__name__))
        return fn

    return mark


def validation_field(err: ValidationError) -> tuple[str, str]:
    """The first error of ``err`` as (``outputs[2]``-style path, reason)."""
    first = err.errors(include_url=False)[0]
    path = ""
    for part in first["loc"]:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path, str(first["msg"])


# --- events the host hears ------------------------------------------------------------------


@dataclass(frozen=True)
class StatusChanged:
    status: DriverStatus
    detail: str = ""


Origin = Literal["command", "device", "poll", "connect"]


@dataclass(frozen=True)
class StateChanged:
    """``key`` changed to ``value``. ``origin``: our command, the device on its own (front
    panel, another controller), a poll, or the full read after (re)connecting."""

    key: str
    value: Any
    origin: Origin = "device"


DriverEvent = StatusChanged | StateChanged


# --- the base class ------------------------------------------------------------------------------


@dataclass
class DriverSetup:
    """What the host gives a driver: its id, validated options, endpoint and secret."""

    device_id: str
    config: DriverConfig
    endpoint: Endpoint
    password: str | None = None
    # Extra context (e.g. the device's configured size) a driver may read; never secrets.
    extra: dict[str, Any] = field(default_factory=dict)


class Driver:
    """Base of every driver. Subclasses set ``manifest`` and ``config_model``, declare
    actions with :func:`action`, and usually create ``self.link`` (a Connection) in
    ``__init__``; the default ``start``/``stop`` then run and close that link."""

    manifest: ClassVar[Manifest]
    config_model: ClassVar[type[DriverConfig]] = DriverConfig
    actions: ClassVar[dict[str, Action]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        found: dict[str, Action] = {}
        # Base classes first so a subclass may redeclare (override) an action.
        for klass in reversed(cls.__mro__):
            for attr in vars(klass).values():
                act = getattr(attr, _ACTION_ATTR, None)
                if isinstance(act, Action):
                    found[act.name] = act
        cls.actions = found

    def __init__(self, setup: DriverSetup) -> None:
        self.setup = setup
        self.device_id = setup.device_id
        self.config = setup.config
        self.state: dict[str, Any] = {}
        self.status = DriverStatus.DISCONNECTED
        self.status_detail = ""
        # The host replaces this to hear status and state changes (called on the loop;
        # must not block).
        self.on_event: Callable[[DriverEvent], None] = lambda event: None
        self.link: Connection[Any] | None = None
        self._task: asyncio.Task[None] | None = None

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Begin connecting in the background (supervised); return at once."""
        from drivers.supervisor import supervise

        if self._task is None or self._task.done():
            self._task = asyncio.create_task(
                supervise(self.device_id, self.run), name=f"driver:{self.device_id}"
            )

    async def run(self) -> None:
        """The driver's long-running body; the default runs ``self.link`` until stopped."""
        if self.link is None:
            raise NotImplementedError(f"{type(self).__name__} has no link and no run()")
        await self.link.run()

    async def stop(self) -> None:
        if self.link is not None:
            await self.link.stop()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            # asyncio.wait, not ``await task`` inside ``except CancelledError: pass``: that
            # would also swallow a cancellation of the caller (a daemon shutting down
            # with a deadline), which must propagate from here.
            await asyncio.wait({task})
            if not task.cancelled() and task.exception() is not None:
                log.error(
                    "driver ended with an error",
                    device=self.device_id,
                    error=repr(task.exception()),
                )
        self.set_status(DriverStatus.DISCONNECTED, "stopped")

    async def reconfigure(self, setup: DriverSetup) -> None:
        """Take a new config: by default stop, rebuild (keeping the host's listener) and
        start again. Drivers that can apply some options live may override this."""
        listener = self.on_event
        await self.stop()
        type(self).__init__(self, setup)
        self.on_event = listener
        await self.start()

    # --- actions -----------------------------------------------------------------------

    async def call(self, name: str, args: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Validate ``args`` against the action's params model, then run it."""
        act = self.actions.get(name)
        if act is None:
            raise UnknownAction(f"{self.manifest.protocol} has no action {name!r}")
        try:
            params = act.params.model_validate(dict(args or {}))
        except ValidationError as e:
            path, reason = validation_field(e)
            raise InvalidParams(f"{path}: {reason}" if path else reason, field=path) from None
        fn: Callable[[BaseModel], Awaitable[dict[str, Any]]] = getattr(self, act.method)
        result = fn(params)
        if not inspect.isawaitable(result):
            raise TypeError(f"action {name} of {type(self).__name__} is not async")
        return await result

    # --- state and status --------------------------------------------------------------

    def set_state(self, key: str, value: Any, origin: Origin = "device") -> bool:
        """Record ``key = value``; tell the host when it changed. Returns True on change."""
        if key in self.state and self.state[key] == value:
            return False
        self.state[key] = value
        self.on_event(StateChanged(key, value, origin))
        return True

    def set_status(self, status: DriverStatus, detail: str = "") -> None:
        if status == self.status and detail == self.status_detail:
            return
        self.status = status
        self.status_detail = detail
        self.on_event(StatusChanged(status, detail))

    def describe(self) -> dict[str, Any]:
        """The manifest and the declared actions (with their params JSON schema)."""
        return {
            "manifest": self.manifest.to_dict(),
            "actions": [a.to_dict() for a in self.actions.values()],
        }
