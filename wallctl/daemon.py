"""The daemon: one asyncio loop, components started in order and stopped in reverse.

systemd sees READY=1 once every listener is bound, WATCHDOG=1 only while the loop and
every component are alive, STATUS= lines as things happen and STOPPING=1 on the way out.
SIGTERM/SIGINT stop gracefully; SIGHUP reloads the config, applying what can change live
and logging what needs a restart.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from wallctl import __version__
from wallctl.bus import EventBus
from wallctl.clock import clock_synchronized
from wallctl.component import Component, Health, Status
from wallctl.config import Config, ConfigError, LoadedConfig, load_config
from wallctl.http import HttpServer
from wallctl.layout import LayoutTemplate, load_templates
from wallctl.logs import get_logger, setup_logging
from wallctl.notify import Notifier, watchdog_interval
from wallctl.resources import builtin_layouts_dir
from wallctl.store import Store
from wallctl.wall import Wall
from wallctl.walls import WallService

log = get_logger("wallctl.daemon")

DB_NAME = "wallctl.db"
LOCK_NAME = "wallctl.lock"


class StateLocked(Exception):
    """Another wallctl daemon holds this state directory."""


def state_dir_for(config: Config, environ: dict[str, str] | None = None) -> Path:
    """From the config, else $STATE_DIRECTORY (systemd's StateDirectory=), else per user."""
    env = os.environ if environ is None else environ
    if config.daemon.state_dir is not None:
        return config.daemon.state_dir
    if env.get("STATE_DIRECTORY"):
        # systemd may pass several, colon-separated; the first is ours.
        return Path(env["STATE_DIRECTORY"].split(":")[0])
    base = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "wallctl"


def lock_state_dir(state_dir: Path) -> int:
    """Hold the state directory for this process's life; raise StateLocked if taken."""
    state_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(state_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StateLocked(f"another wallctl daemon uses {state_dir}") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def template_dirs(config: Config) -> list[Path]:
    return [builtin_layouts_dir(), *config.layouts.dirs]


def load_layouts(config: Config) -> dict[str, LayoutTemplate]:
    templates, errors = load_templates(template_dirs(config))
    for e in errors:
        log.error("layout template refused", reason=str(e))
    return templates


def build_walls(config: Config) -> list[Wall]:
    walls = [Wall.from_config(config.wall)]
    walls += [Wall.from_config(w, wall_id=key) for key, w in config.walls.items()]
    return walls


@dataclass
class Runtime:
    """What components are built from: the config and the shared services."""

    config: Config
    config_path: Path | None
    state_dir: Path
    store: Store
    walls: WallService
    http: HttpServer
    registry: CollectorRegistry
    notifier: Notifier
    started_at: float = field(default_factory=time.time)
    components: list[Component] = field(default_factory=list)
    # Events of every capability, for the API and MQTT to carry out.
    bus: EventBus = field(default_factory=EventBus)
    # What a capability offers the others (and the API's methods), by name:
    # e.g. "devices" -> the device registry. Filled by components as they are built.
    services: dict[str, Any] = field(default_factory=dict)


class WallsComponent(Component):
    """The command layer as a component: loads the last walls on start."""

    name = "walls"

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._loaded = False

    async def start(self) -> None:
        startup = {
            w.id if key is None else key: (w.startup_layout, list(w.startup_sources))
            for key, w in [(None, self.rt.config.wall), *self.rt.config.walls.items()]
        }
        await self.rt.walls.load(startup)
        self._loaded = True
        for wid in self.rt.walls.walls:
            st = self.rt.walls.state(wid)
            log.info(
                "wall restored",
                wall=wid,
                revision=st.revision,
                layout=st.layout or "",
                windows=len(st.windows),
            )

    async def stop(self) -> None:
        self.rt.walls.close()

    def health(self) -> Health:
        return Health(Status.OK if self._loaded else Status.STARTING)

    def reload(self, config: Config) -> list[str]:
        old = self.rt.config
        restart = []
        if old.wall != config.wall:
            restart.append("wall")
        if old.walls != config.walls:
            restart.append("walls")
        if old.daemon.state_dir != config.daemon.state_dir:
            restart.append("daemon.state_dir")
        if old.daemon.durability != config.daemon.durability:
            restart.append("daemon.durability")
        self.rt.walls.configure(config.sources, load_layouts(config))
        return restart


class ClockComponent(Component):
    """Reports whether timestamps (audit, recordings) come from a synchronised clock."""

    name = "clock"

    def health(self) -> Health:
        synced = clock_synchronized()
        if synced is None:
            return Health(Status.DEGRADED, "cannot tell whether the clock is synchronised")
        if not synced:
            return Health(Status.DEGRADED, "system clock is not synchronised (check chrony)")
        return Health(Status.OK, "synchronised")


class _DaemonMetrics(Collector):
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    def collect(self) -> Iterable[GaugeMetricFamily | CounterMetricFamily]:
        rt = self.daemon.runtime
        up = GaugeMetricFamily("wallctl_uptime_seconds", "Seconds since the daemon started")
        up.add_metric([], time.time() - (rt.started_at if rt else time.time()))
        yield up
        info = GaugeMetricFamily("wallctl_build_info", "wallctl version", labels=["version"])
        info.add_metric([__version__], 1)
        yield info
        if rt is None:
            return
        rev = GaugeMetricFamily(
            "wallctl_wall_revision", "Current revision of each wall", labels=["wall"]
        )
        win = GaugeMetricFamily(
            "wallctl_wall_windows", "Windows open on each wall", labels=["wall"]
        )
        for wid in rt.walls.walls:
            try:
                st = rt.walls.state(wid)
            except KeyError:
                continue
            rev.add_metric([wid], st.revision)
            win.add_metric([wid], len(st.windows))
        yield rev
        yield win
        comp = GaugeMetricFamily(
            "wallctl_component_up", "1 when a component is ok or degraded", labels=["component"]
        )
        for c in rt.components:
            comp.add_metric([c.name], 1 if c.health().status in (Status.OK, Status.DEGRADED) else 0)
        yield comp
        commits = CounterMetricFamily(
            "wallctl_store_commits", "State store transactions committed since start"
        )
        commits.add_metric([], rt.store.commits)
        yield commits


class Daemon:
    def __init__(self, loaded: LoadedConfig, *, notifier: Notifier | None = None) -> None:
        self.loaded = loaded
        self.notifier = notifier or Notifier()
        self.runtime: Runtime | None = None
        self._stop = asyncio.Event()
        self._reload_requested = asyncio.Event()
        self._lock_fd: int | None = None
        self._started: list[Component] = []

    # --- health ------------------------------------------------------------------------

    def health_report(self) -> tuple[bool, dict[str, Any]]:
        rt = self.runtime
        comps = {c.name: c.health() for c in (rt.components if rt else [])}
        ok = bool(comps) and all(h.status in (Status.OK, Status.DEGRADED) for h in comps.values())
        overall = "ok"
        if not ok:
            overall = "failed"
        elif any(h.status is Status.DEGRADED for h in comps.values()):
            overall = "degraded"
        synced = clock_synchronized()
        return ok, {
            "status": overall,
            "version": __version__,
            "uptime_s": round(time.time() - rt.started_at, 1) if rt else 0,
            "clock_synchronized": synced,
            "components": {name: h.to_dict() for name, h in comps.items()},
        }

    # --- lifecycle ---------------------------------------------------------------------

    def _build(self) -> Runtime:
        cfg = self.loaded.config
        state_dir = state_dir_for(cfg)
        self._lock_fd = lock_state_dir(state_dir)
        store = Store(state_dir / DB_NAME, cfg.daemon.durability)
        registry = CollectorRegistry()
        walls = WallService(store, build_walls(cfg), cfg.sources, load_layouts(cfg))
        http = HttpServer(cfg.http, self.health_report, registry)
        rt = Runtime(cfg, self.loaded.path, state_dir, store, walls, http, registry, self.notifier)
        registry.register(_DaemonMetrics(self))
        rt.components = build_components(rt)
        return rt

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, self._reload_requested.set)
        for w in self.loaded.warnings:
            log.warning("config warning", key=w.path, reason=w.message)
        self.notifier.status("starting")
        try:
            self.runtime = await asyncio.to_thread(self._build)
            for comp in self.runtime.components:
                self.notifier.status(f"starting {comp.name}")
                await comp.start()
                self._started.append(comp)
                log.info("component started", component=comp.name)
        except StateLocked:
            raise  # the caller says so and exits with its own code (the CLI's 4)
        except Exception as e:
            log.exception("start-up failed", reason=str(e))
            self.notifier.status(f"start-up failed: {e}")
            await self._shutdown()
            return 1
        self.notifier.ready()
        rt = self.runtime
        # The URL ends the text: redaction masks "host:port;" as if it were "user:password".
        self.notifier.status(f"walls: {', '.join(rt.walls.walls)}; serving {rt.http.url}")
        log.info("ready", http=rt.http.url, state_dir=str(rt.state_dir), version=__version__)
        tasks = [
            asyncio.create_task(self._watchdog(), name="watchdog"),
            asyncio.create_task(self._reloader(), name="reloader"),
        ]
        await self._stop.wait()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._shutdown()
        return 0

    def request_stop(self) -> None:
        if not self._stop.is_set():
            log.info("stopping")
            self.notifier.stopping()
            self._stop.set()

    async def _shutdown(self) -> None:
        self.notifier.stopping()
        for comp in reversed(self._started):
            try:
                await asyncio.wait_for(comp.stop(), timeout=10)
                log.info("component stopped", component=comp.name)
            except Exception:
                log.exception("component did not stop cleanly", component=comp.name)
        self._started.clear()
        if self.runtime is not None:
            await asyncio.to_thread(self.runtime.store.close)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        log.info("stopped")

    async def _watchdog(self) -> None:
        interval = watchdog_interval()
        if interval is None:
            return
        rt = self.runtime
        assert rt is not None
        while True:
            # The loop is alive if this runs at all; each component vouches for itself.
            stuck = [c.name for c in rt.components if not c.alive()]
            if stuck:
                log.error("watchdog withheld: component not alive", components=",".join(stuck))
            else:
                self.notifier.watchdog()
            await asyncio.sleep(interval)

    async def _reloader(self) -> None:
        while True:
            await self._reload_requested.wait()
            self._reload_requested.clear()
            await self.reload()

    async def reload(self) -> None:
        rt = self.runtime
        assert rt is not None
        self.notifier.reloading()
        path = self.loaded.path
        try:
            if path is None:
                log.info("reload: running the built-in demo, nothing to re-read")
                return
            new = await asyncio.to_thread(load_config, path)
        except ConfigError as e:
            for p in e.problems:
                log.error("reload refused: config invalid", key=p.path, reason=p.message)
            return
        finally:
            self.notifier.ready()
        for w in new.warnings:
            log.warning("config warning", key=w.path, reason=w.message)
        setup_logging(new.config.log.level, new.config.log.format)
        restart: list[str] = []
        for comp in rt.components:
            restart += comp.reload(new.config)
        if rt.config.daemon.site != new.config.daemon.site:
            restart.append("daemon.site")
        rt.config = new.config
        self.loaded = new
        for key in sorted(set(restart)):
            log.warning("reload: change needs a restart", key=key)
        log.info("reloaded", path=str(path), restart_needed=",".join(sorted(set(restart))))
        self.notifier.status(
            f"reloaded; restart needed for: {', '.join(sorted(set(restart))) or 'nothing'}"
        )


def build_components(rt: Runtime) -> list[Component]:
    """Every component, in start order. Later capabilities add theirs here."""
    comps: list[Component] = [WallsComponent(rt), ClockComponent()]
    from wallctl.store import StoreComponent  # degraded while the journal cannot be taken in

    comps.append(StoreComponent(rt.store))
    # --- components of later capabilities (API, render, devices) go here ---
    from wallctl.render.component import render_component  # sources, compositors, outputs

    render = render_component(rt)
    if render is not None:
        comps.append(render)
    from wallctl.api.server import api_component

    comps.append(api_component(rt))
    from wallctl.console.web import console_component  # the commander's page at /

    comps.append(console_component(rt))
    from wallctl.mqtt.component import mqtt_components  # none unless [mqtt] names a broker

    comps += mqtt_components(rt)
    from wallctl.devices.service import devices_component  # matrix switchers, displays

    comps.append(devices_component(rt))
    from wallctl.conference.component import conference_component  # calls between centres

    comps.append(conference_component(rt))
    from wallctl.cameras.component import cameras_component  # ONVIF sources, PTZ, tours

    comps.append(cameras_component(rt))
    from wallctl.terminals.component import terminals_component  # WHIP/WHEP, recordings

    terminals = terminals_component(rt)
    if terminals is not None:
        comps.append(terminals)
    comps.append(rt.http)  # last: the listener opens once everything it serves is ready
    return comps
