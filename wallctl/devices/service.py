"""The device service: every configured device's driver, running supervised.

It starts each ``[[devices]]`` entry's driver (and, for ``simulate = true``, that
protocol's simulator on a free loopback port first), turns driver events into bus
events (category ``device``), and offers the operations the API and the CLI use:
list, status, call a declared action, matrix routes and salvos by number or by name,
display power and input. Driver failures become the API's stable errors:
``device_not_ready`` (retryable) when the device is offline, busy or silent,
``device_error`` with the device's own code (E13, ERR003, NAK) when it refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import typing
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from drivers import registry
from drivers.contract import Driver, DriverSetup, DriverStatus, StateChanged, StatusChanged
from drivers.display import DisplayDriver
from drivers.errors import (
    DeviceOffline,
    DeviceRejected,
    DeviceTimeout,
    DriverError,
    InvalidParams,
    QueueFull,
    UnknownAction,
)
from drivers.matrix import MatrixDriver, Tie, TieOutcome
from drivers.registry import Protocol, SimOptions
from drivers.simulator import RunningSimulator
from drivers.transport import Endpoint, SerialEndpoint, TcpEndpoint
from wallctl.component import Component, Health, Status
from wallctl.devices.config import DeviceConfig
from wallctl.errors import (
    DeviceError,
    DeviceNotReady,
    InvalidField,
    NotFound,
    WallctlError,
)
from wallctl.logs import get_logger
from wallctl.store import SYSTEM, Actor

if TYPE_CHECKING:
    from wallctl.config import Config
    from wallctl.daemon import Runtime

log = get_logger("wallctl.devices")

# publish(category, type, data, actor)
Publish = Callable[[str, str, dict[str, Any], Actor], None]


class Audit(typing.Protocol):
    def __call__(
        self, actor: Actor, action: str, *, result: str = "ok", detail: dict[str, Any] | None = None
    ) -> Awaitable[None]: ...


@dataclass
class Device:
    config: DeviceConfig
    protocol: Protocol
    driver: Driver
    simulator: RunningSimulator | None = None
    calls: int = 0
    failures: int = 0
    last_error: str = ""
    since: float = field(default_factory=time.time)

    @property
    def id(self) -> str:
        return self.config.id

    def input_name(self, n: int) -> str | None:
        return self.config.inputs.get(n)

    def output_name(self, n: int) -> str | None:
        return self.config.outputs.get(n)


def endpoint_for(cfg: DeviceConfig, proto: Protocol, options: Any = None) -> Endpoint:
    m = proto.manifest
    if cfg.serial is not None:
        return SerialEndpoint(
            cfg.serial,
            cfg.baud or m.default_baud or 9600,
            cfg.bytesize,
            cfg.parity,
            cfg.stopbits,
        )
    if cfg.host is None:
        raise ValueError(f"device {cfg.id} has neither host nor serial")
    # A driver whose port depends on its options says so (cisco-xapi: 22 over SSH).
    default_port = getattr(options, "default_port", None)
    port = default_port() if callable(default_port) else None
    return TcpEndpoint(cfg.host, cfg.port or port or m.default_tcp_port or 23)


def driver_error(e: DriverError, device: str, where: str = "params.args") -> WallctlError:
    """The API error for a driver failure."""
    if isinstance(e, InvalidParams):
        field_path = f"{where}.{e.field}" if e.field else where
        return InvalidField(e.message, field=field_path)
    if isinstance(e, UnknownAction):
        return NotFound(e.message, field="params.action")
    if isinstance(e, DeviceOffline | DeviceTimeout | QueueFull):
        return DeviceNotReady(f"{device}: {e.message}")
    if isinstance(e, DeviceRejected):
        return DeviceError(f"{device} refused: {e.code} ({e.reason})")
    return DeviceError(f"{device}: {e.message}")


class DeviceService:
    def __init__(
        self,
        configs: list[DeviceConfig],
        publish: Publish | None = None,
        audit: Audit | None = None,
        state_dir: Path | None = None,
    ) -> None:
        self.configs = [c for c in configs if c.enabled]
        # The daemon's state directory, for drivers that keep records (SSH host keys).
        self.state_dir = state_dir
        self.publish: Publish = publish or (lambda category, type_, data, actor: None)
        # Store.audit: every switching action is recorded with who asked for it.
        self.audit = audit
        self.devices: dict[str, Device] = {}
        # Devices whose driver could not even be built: id -> why (shown in the list).
        self.failed: dict[str, str] = {}

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        for cfg in self.configs:
            try:
                await self._start_one(cfg)
            except Exception as e:  # one bad device never stops the others (or the daemon)
                self.failed[cfg.id] = f"failed to start: {e}"
                log.exception("device failed to start", device=cfg.id, error=repr(e))

    async def _start_one(self, cfg: DeviceConfig) -> None:
        proto = registry.get(cfg.protocol)
        options = proto.config_model.model_validate(cfg.options())
        sim: RunningSimulator | None = None
        password = cfg.password.get_secret_value() if cfg.password else None
        if cfg.simulate:
            dims = getattr(options, "dims", None)
            i, o = dims() if callable(dims) else (16, 16)
            user = getattr(options, "user", None)
            sim_options = SimOptions(
                i,
                o,
                password,
                reply_delay_s=cfg.simulate_delay_ms / 1000,
                user=user if isinstance(user, str) else None,
                # Only what the config sets: the simulator keeps its own defaults.
                options=options.model_dump(mode="json", exclude_unset=True),
            )
            # Byte-stream simulators on a TCP port; HTTPS/WebSocket ones host themselves.
            sim = await proto.serve(sim_options, "127.0.0.1", 0)
            endpoint: Endpoint = TcpEndpoint("127.0.0.1", sim.port)
            log.info("simulator started", device=cfg.id, protocol=cfg.protocol, port=sim.port)
        else:
            endpoint = endpoint_for(cfg, proto, options)
        extra: dict[str, Any] = {"simulated": cfg.simulate}
        if self.state_dir is not None:
            extra["state_dir"] = str(self.state_dir)
        setup = DriverSetup(cfg.id, options, endpoint, password, extra=extra)
        driver = proto.driver(setup)
        dev = Device(cfg, proto, driver, sim)
        driver.on_event = lambda event: self._on_event(dev, event)
        self.devices[cfg.id] = dev
        await driver.start()

    async def apply(self, configs: list[DeviceConfig]) -> list[str]:
        """Take a new device list live (SIGHUP): start added devices, stop removed ones,
        restart changed ones; a change of names only (inputs/outputs, name) keeps the
        link. Returns what it did, one line per device."""
        wanted = {c.id: c for c in configs if c.enabled}
        done: list[str] = []
        for did in list(self.devices):
            if did not in wanted:
                await self._stop_one(did)
                done.append(f"{did}: removed")
        for did in list(self.failed):
            if did not in wanted:
                del self.failed[did]
        for did, cfg in wanted.items():
            dev = self.devices.get(did)
            if dev is None:
                self.failed.pop(did, None)
                try:
                    await self._start_one(cfg)
                    done.append(f"{did}: added")
                except Exception as e:
                    self.failed[did] = f"failed to start: {e}"
                    log.exception("device failed to start", device=did, error=repr(e))
                continue
            names = {"name", "inputs", "outputs"}
            if dev.config.model_dump(exclude=names) == cfg.model_dump(exclude=names):
                if dev.config != cfg:
                    dev.config = cfg
                    done.append(f"{did}: names updated")
                continue
            await self._stop_one(did)
            try:
                await self._start_one(cfg)
                done.append(f"{did}: restarted with its new settings")
            except Exception as e:
                self.failed[did] = f"failed to start: {e}"
                log.exception("device failed to start", device=did, error=repr(e))
        self.configs = list(wanted.values())
        for line in done:
            log.info("devices reloaded", change=line)
        return done

    async def _stop_one(self, device_id: str) -> None:
        dev = self.devices.pop(device_id)
        with contextlib.suppress(Exception):
            await dev.driver.stop()
        if dev.simulator is not None:
            with contextlib.suppress(Exception):
                await dev.simulator.close()

    async def stop(self) -> None:
        for dev in self.devices.values():
            with contextlib.suppress(Exception):
                await dev.driver.stop()
            if dev.simulator is not None:
                with contextlib.suppress(Exception):
                    await dev.simulator.close()

    async def wait_ready(self, within_s: float) -> bool:
        """True once every device's link is up (tests and the demo's start-up)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + within_s
        while loop.time() < end:
            if self.failed:
                return False
            if all(d.driver.status is DriverStatus.OK for d in self.devices.values()):
                return True
            await asyncio.sleep(0.02)
        return False

    # --- events ------------------------------------------------------------------------

    def _on_event(self, dev: Device, event: StatusChanged | StateChanged) -> None:
        if isinstance(event, StatusChanged):
            dev.since = time.time()
            log.info(
                "device status",
                device=dev.id,
                status=event.status.value,
                detail=event.detail,
            )
            self.publish(
                "device",
                "device.status",
                {"device": dev.id, "status": event.status.value, "detail": event.detail},
                SYSTEM,
            )
            return
        self.publish(
            "device",
            "device.state",
            {"device": dev.id, "key": event.key, "value": event.value, "origin": event.origin},
            SYSTEM,
        )
        if event.key.startswith("tie.") and isinstance(event.value, int):
            _, level, out = event.key.split(".", 2)
            output = int(out)
            self.publish(
                "device",
                "matrix.route",
                {
                    "device": dev.id,
                    "output": output,
                    "output_name": dev.output_name(output),
                    "input": event.value,
                    "input_name": dev.input_name(event.value),
                    "level": level,
                    "origin": event.origin,
                },
                SYSTEM,
            )
        elif event.key in ("power", "input") and isinstance(dev.driver, DisplayDriver):
            self.publish(
                "device",
                f"display.{event.key}",
                {"device": dev.id, event.key: event.value, "origin": event.origin},
                SYSTEM,
            )

    # --- look-ups ------------------------------------------------------------------------

    def get(self, device_id: str, field_path: str = "params.device") -> Device:
        dev = self.devices.get(device_id)
        if dev is None and device_id in self.failed:
            raise DeviceError(f"{device_id} {self.failed[device_id]}")
        if dev is None:
            raise NotFound(f"no device {device_id[:64]!r}", field=field_path)
        return dev

    def matrix(self, device_id: str) -> tuple[Device, MatrixDriver]:
        dev = self.get(device_id)
        if not isinstance(dev.driver, MatrixDriver):
            raise InvalidField(f"{device_id} is not a matrix switcher", field="params.device")
        return dev, dev.driver

    def display(self, device_id: str) -> tuple[Device, DisplayDriver]:
        dev = self.get(device_id)
        if not isinstance(dev.driver, DisplayDriver):
            raise InvalidField(f"{device_id} is not a display", field="params.device")
        return dev, dev.driver

    def summary(self, dev: Device) -> dict[str, Any]:
        d = dev.driver
        out: dict[str, Any] = {
            "id": dev.id,
            "name": dev.config.name,
            "protocol": dev.config.protocol,
            "family": dev.protocol.manifest.family,
            "status": d.status.value,
            "detail": d.status_detail,
            "since": dev.since,
            "simulated": dev.config.simulate,
        }
        if isinstance(d, MatrixDriver):
            out["size"] = {"inputs": d.inputs, "outputs": d.outputs}
            out["inputs"] = {str(k): v for k, v in sorted(dev.config.inputs.items())}
            out["outputs"] = {str(k): v for k, v in sorted(dev.config.outputs.items())}
            out["salvos"] = [s.name for s in dev.config.salvos]
        return out

    def describe(self, dev: Device) -> dict[str, Any]:
        return {**self.summary(dev), **dev.driver.describe(), "state": dict(dev.driver.state)}

    def list_devices(self) -> list[dict[str, Any]]:
        out = [self.describe(d) for d in self.devices.values()]
        for cfg in self.configs:
            if cfg.id in self.failed:
                out.append(
                    {
                        "id": cfg.id,
                        "name": cfg.name,
                        "protocol": cfg.protocol,
                        "status": "bad_config",
                        "detail": self.failed[cfg.id],
                        "actions": [],
                        "state": {},
                    }
                )
        return out

    def status(self, device_id: str) -> dict[str, Any]:
        dev = self.get(device_id)
        out = self.describe(dev)
        link = dev.driver.link
        out["stats"] = {
            "calls": dev.calls,
            "failures": dev.failures,
            "last_error": dev.last_error,
            **(
                {
                    "connects": link.connects,
                    "requests": link.requests,
                    "timeouts": link.timeouts,
                    "drops": link.drops,
                    "silent_for_s": (
                        None if link.silent_for_s is None else round(link.silent_for_s, 1)
                    ),
                }
                if link is not None
                else {}
            ),
        }
        if isinstance(dev.driver, MatrixDriver):
            out["ties"] = dev.driver.ties_table()
        return out

    # --- operations ------------------------------------------------------------------------

    async def call(
        self, device_id: str, action: str, args: Mapping[str, Any], actor: Actor = SYSTEM
    ) -> dict[str, Any]:
        dev = self.get(device_id)
        if action not in dev.driver.actions:
            known = ", ".join(dev.driver.actions)
            raise NotFound(
                f"{device_id} has no action {action[:64]!r} (it has: {known})",
                field="params.action",
            )
        read_only = dev.driver.actions[action].read_only
        result: dict[str, Any] = await self._run(
            dev,
            action,
            lambda: dev.driver.call(action, args),
            actor,
            audit=None if read_only else ("device.call", {"action": action, "args": dict(args)}),
        )
        return result

    async def _run(
        self,
        dev: Device,
        what: str,
        fn: Callable[[], Awaitable[Any]],
        actor: Actor,
        where: str = "params.args",
        audit: tuple[str, dict[str, Any]] | None = None,
    ) -> Any:
        """Run a driver operation: count, log, audit (who, what, outcome), map errors."""
        dev.calls += 1
        started = time.monotonic()
        try:
            result = await fn()
        except DriverError as e:
            dev.failures += 1
            dev.last_error = e.message
            log.info(
                "device action failed",
                device=dev.id,
                action=what,
                actor=actor.identity,
                error=e.message,
            )
            err = driver_error(e, dev.id, where)
            if audit is not None and not isinstance(err, InvalidField | NotFound):
                await self._audit(actor, audit, dev, "error", {"error": err.message})
            raise err from None
        if audit is not None:
            outcome: dict[str, Any] = {}
            if isinstance(result, list) and all(isinstance(o, TieOutcome) for o in result):
                outcome["ties"] = [o.to_dict() for o in result]
                ok = all(o.ok for o in result)
            else:
                ok = True
            await self._audit(actor, audit, dev, "ok" if ok else "partial", outcome)
        log.info(
            "device action",
            device=dev.id,
            action=what,
            actor=actor.identity,
            via=actor.via,
            ms=round((time.monotonic() - started) * 1000, 1),
        )
        return result

    async def _audit(
        self,
        actor: Actor,
        audit: tuple[str, dict[str, Any]],
        dev: Device,
        result: str,
        extra: dict[str, Any],
    ) -> None:
        if self.audit is None:
            return
        action, detail = audit
        try:
            await self.audit(
                actor, action, result=result, detail={"device": dev.id, **detail, **extra}
            )
        except Exception as e:  # the switch happened: a failed audit write is logged, not raised
            log.error("device audit failed", device=dev.id, action=action, error=repr(e))

    def resolve_port(self, dev: Device, kind: str, value: int | str, field_path: str) -> int:
        """A matrix port by number or by configured name."""
        names = dev.config.inputs if kind == "input" else dev.config.outputs
        if isinstance(value, int):
            return value
        text = value.strip()
        if text.isdigit():
            return int(text)
        for num, name in names.items():
            if name == text:
                return num
        raise InvalidField(f"{dev.id} has no {kind} named {value[:64]!r}", field=field_path)

    def _tie_report(self, dev: Device, outcomes: list[TieOutcome]) -> dict[str, Any]:
        ties = []
        for o in outcomes:
            t = o.to_dict()
            t["input_name"] = dev.input_name(o.tie.input)
            t["output_name"] = dev.output_name(o.tie.output)
            ties.append(t)
        return {"device": dev.id, "ok": all(o.ok for o in outcomes), "ties": ties}

    async def salvo(
        self,
        device_id: str,
        ties: Sequence[tuple[int | str, int | str, str]],
        actor: Actor = SYSTEM,
        field_prefix: str = "params.ties",
        audit_action: str = "matrix.salvo",
        audit_detail: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Ties (input, output, level) as one command, reported tie by tie. Every tie is
        validated before anything is sent: one bad number and nothing moves."""
        dev, drv = self.matrix(device_id)
        resolved = []
        for i, (inp, out, level) in enumerate(ties):
            t = Tie(
                self.resolve_port(dev, "input", inp, f"{field_prefix}[{i}].input"),
                self.resolve_port(dev, "output", out, f"{field_prefix}[{i}].output"),
                level,
            )
            try:
                drv.check_tie(t)
            except InvalidParams as e:
                raise InvalidField(e.message, field=f"{field_prefix}[{i}].{e.field}") from None
            resolved.append(t)
        outcomes = await self._run(
            dev,
            "salvo",
            lambda: drv.apply_ties(resolved),
            actor,
            audit=(audit_action, audit_detail or {}),
        )
        return self._tie_report(dev, outcomes)

    async def run_salvo(self, device_id: str, name: str, actor: Actor = SYSTEM) -> dict[str, Any]:
        """A salvo named in the config, reported tie by tie."""
        dev, _ = self.matrix(device_id)
        salvo = dev.config.salvo(name)
        if salvo is None:
            known = ", ".join(s.name for s in dev.config.salvos) or "none"
            raise NotFound(
                f"{device_id} has no salvo {name[:64]!r} (it has: {known})", field="params.salvo"
            )
        ties = [(t.input, t.output, t.level) for t in salvo.ties]
        report = await self.salvo(
            device_id,
            ties,
            actor,
            field_prefix=f"salvos[{name}].ties",
            audit_detail={"salvo": name},
        )
        return {**report, "salvo": name}

    async def route(
        self,
        device_id: str,
        inp: int | str,
        outputs: list[int | str],
        level: str,
        actor: Actor = SYSTEM,
    ) -> dict[str, Any]:
        dev, drv = self.matrix(device_id)
        i = self.resolve_port(dev, "input", inp, "params.input")
        outs = [
            self.resolve_port(dev, "output", o, f"params.outputs[{k}]")
            for k, o in enumerate(outputs)
        ]
        ties = [Tie(i, o, level) for o in outs]
        for k, t in enumerate(ties):
            try:
                drv.check_tie(t)
            except InvalidParams as e:
                where = "params.input" if e.field == "input" else f"params.outputs[{k}]"
                if e.field == "level":
                    where = "params.level"
                raise InvalidField(e.message, field=where) from None
        outcomes = await self._run(
            dev, "route", lambda: drv.apply_ties(ties), actor, audit=("matrix.route", {})
        )
        return self._tie_report(dev, outcomes)

    async def display_power(self, device_id: str, on: bool, actor: Actor = SYSTEM) -> Any:
        dev, _ = self.display(device_id)
        return await self._run(
            dev,
            "power",
            lambda: dev.driver.call("power", {"on": on}),
            actor,
            "params",
            audit=("display.power", {"on": on}),
        )

    async def display_input(self, device_id: str, source: str, actor: Actor = SYSTEM) -> Any:
        dev, _ = self.display(device_id)
        return await self._run(
            dev,
            "input",
            lambda: dev.driver.call("input", {"source": source}),
            actor,
            "params",
            audit=("display.input", {"source": source}),
        )

    def reconnect(self, device_id: str) -> None:
        dev = self.get(device_id)
        if dev.driver.link is not None:
            dev.driver.link.drop("reconnect asked by an operator")
            dev.driver.link.retry_now()


class DevicesComponent(Component):
    """Starts every configured device; healthy while none is stuck in a failure."""

    name = "devices"

    def __init__(self, service: DeviceService) -> None:
        self.service = service
        self._started = False
        self._reloading: asyncio.Task[list[str]] | None = None

    async def start(self) -> None:
        await self.service.start()
        self._started = True

    async def stop(self) -> None:
        await self.service.stop()

    def reload(self, config: Config) -> list[str]:
        # Applied live: unchanged devices keep their links (see DeviceService.apply).
        self._reloading = asyncio.get_running_loop().create_task(
            self.service.apply(list(config.devices)), name="devices-reload"
        )
        return []

    def health(self) -> Health:
        if not self._started:
            return Health(Status.STARTING)
        bad = [
            f"{d.id}: {d.driver.status.value}"
            for d in self.service.devices.values()
            if d.driver.status is not DriverStatus.OK
        ]
        bad += [f"{did}: {why}" for did, why in self.service.failed.items()]
        if bad:
            # A device down is worth a look, not a reason to restart the daemon.
            return Health(Status.DEGRADED, "; ".join(bad))
        return Health(Status.OK, f"{len(self.service.devices)} device(s) ok")


class DeviceMetrics(Collector):
    """Prometheus figures per device: up, requests, timeouts, link (re)connects."""

    def __init__(self, service: DeviceService) -> None:
        self.service = service

    def collect(self) -> Iterable[GaugeMetricFamily | CounterMetricFamily]:
        labels = ["device", "protocol"]
        up = GaugeMetricFamily(
            "wallctl_device_up", "1 while the device's link is ok", labels=labels
        )
        req = CounterMetricFamily(
            "wallctl_device_requests", "Commands sent to the device", labels=labels
        )
        tmo = CounterMetricFamily(
            "wallctl_device_timeouts", "Commands the device did not answer", labels=labels
        )
        con = CounterMetricFamily(
            "wallctl_device_connects", "Links opened to the device", labels=labels
        )
        for dev in self.service.devices.values():
            key = [dev.id, dev.config.protocol]
            up.add_metric(key, 1 if dev.driver.status is DriverStatus.OK else 0)
            link = dev.driver.link
            if link is not None:
                req.add_metric(key, link.requests)
                tmo.add_metric(key, link.timeouts)
                con.add_metric(key, link.connects)
        for did in self.service.failed:
            up.add_metric([did, ""], 0)
        yield from (up, req, tmo, con)


def devices_component(rt: Runtime) -> DevicesComponent:
    """The device service registered as ``rt.services["devices"]``, as a component."""

    def publish(category: str, type_: str, data: dict[str, Any], actor: Actor) -> None:
        rt.bus.publish(category, type_, data, actor=actor)

    service = DeviceService(list(rt.config.devices), publish, rt.store.audit, rt.state_dir)
    rt.services["devices"] = service
    rt.registry.register(DeviceMetrics(service))
    return DevicesComponent(service)
