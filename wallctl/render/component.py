"""The render component: sources, one compositor per wall, and the outputs, from config.

It follows the command layer: every new wall state goes to that wall's compositor (shown
from the next frame) and becomes the wall's demand on the sources ("wall:<id>", the size
each source is drawn at), so a source leaving the wall stays warm for a while and a
source joining it starts decoding. Registers ``rt.services["sources"]`` (the SourceHub)
and ``rt.services["render"]`` (this component).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from wallctl.component import Component, Health, Status
from wallctl.config import Config
from wallctl.errors import InvalidField, NotFound
from wallctl.logs import get_logger
from wallctl.render.compositor import Compositor, source_needs
from wallctl.render.config import RenderConfig
from wallctl.render.outputs.preview import PreviewHub
from wallctl.render.outputs.preview_http import PreviewRoutes
from wallctl.render.sourcehub import SourceHub
from wallctl.render.text import Fonts, TextPainter
from wallctl.walls import WallChanged

if TYPE_CHECKING:
    from wallctl.daemon import Runtime
    from wallctl.render.outputs.stream import StreamOutputs
    from wallctl.render.outputs.window import WindowOutput

log = get_logger("wallctl.render")

# A compositor thread that has not finished a frame for this long is stuck.
STUCK_S = 10.0


def wall_holder(wall_id: str) -> str:
    return f"wall:{wall_id}"


class RenderComponent(Component):
    name = "render"

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.config: RenderConfig = rt.config.render
        cfg = self.config
        self.hub = SourceHub(list(rt.config.sources), cfg.sources, bus=rt.bus)
        self.text = TextPainter(Fonts(cfg.font))
        self.compositors: dict[str, Compositor] = {
            wid: Compositor(
                wall,
                self.hub,
                fps=cfg.fps,
                labels=cfg.labels,
                clock=cfg.clock,
                text=self.text,
                nice=cfg.thread_nice,
            )
            for wid, wall in rt.walls.walls.items()
        }
        self.preview: PreviewHub | None = None
        if cfg.preview.enabled:
            self.preview = PreviewHub(
                cfg.preview, self.hub, lambda: set(self.rt.walls.sources), self.text
            )
            PreviewRoutes(self.preview, self._wall_names).add_to(rt.http.app)
        self.window: WindowOutput | None = None
        if cfg.window.enabled:
            from wallctl.render.outputs.window import WindowOutput

            self.window = WindowOutput(cfg.window, self.compositors)
            self.window.nice = cfg.thread_nice
        self.streams: StreamOutputs | None = None
        if cfg.streams:
            from wallctl.render.outputs.stream import StreamOutputs

            self.streams = StreamOutputs(cfg.streams, self.compositors)
            self.streams.add_routes(rt.http.app)
        self._unsubscribe: Any = None
        self._started = False
        rt.services["sources"] = self.hub
        rt.services["render"] = self
        # Sources known at run time (mobile terminals) join and leave the hub as they come.
        self._unsubscribe_sources = rt.walls.on_sources_changed(
            lambda: self.hub.configure(list(self.rt.walls.sources.values()))
        )
        rt.registry.register(_RenderMetrics(self))
        rt.registry.register(self.hub.collector())

    def _wall_names(self) -> dict[str, str]:
        return {wid: w.name for wid, w in self.rt.walls.walls.items()}

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        await self.hub.start()
        loop = asyncio.get_running_loop()
        for wid, comp in self.compositors.items():
            self._show(wid, self.rt.walls.state(wid))
            if self.preview is not None:
                self.preview.attach(comp, loop)
            comp.start()
        self._unsubscribe = self.rt.walls.subscribe(self._on_wall_changed)
        if self.preview is not None:
            await self.preview.start()
        if self.window is not None:
            await self.window.start()
        if self.streams is not None:
            await self.streams.start()
        self._started = True
        log.info(
            "render started",
            walls=",".join(self.compositors),
            fps=self.config.fps,
            preview=self.preview is not None,
            window=self.window is not None,
            streams=len(self.config.streams),
        )

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self.streams is not None:
            await self.streams.stop()
        if self.window is not None:
            await self.window.stop()
        if self.preview is not None:
            await self.preview.stop()
        await asyncio.to_thread(self._stop_compositors)
        await self.hub.stop()
        self._started = False

    def _stop_compositors(self) -> None:
        for comp in self.compositors.values():
            comp.stop()

    # --- following the walls ------------------------------------------------------------------

    def _on_wall_changed(self, ev: WallChanged) -> None:
        self._show(ev.state.wall, ev.state)

    def _show(self, wall_id: str, state: Any) -> None:
        comp = self.compositors.get(wall_id)
        if comp is None:
            return
        # Demand first: a source that is already warm has its picture before the frame.
        self.hub.demand(wall_holder(wall_id), source_needs(state))
        comp.set_state(state)

    # --- what the API reaches --------------------------------------------------------------

    def compositor(self, wall_id: str | None) -> Compositor:
        wid = self.rt.walls.resolve_wall(wall_id)
        comp = self.compositors.get(wid)
        if comp is None:
            raise NotFound(f"wall {wid!r} is not composited here", field="wall")
        return comp

    def highlight(self, wall_id: str | None, window: str, on: bool) -> tuple[str, list[str]]:
        comp = self.compositor(wall_id)
        state = self.rt.walls.state(comp.wall.id)
        if on and state.window(window) is None:
            raise NotFound(f"no window {window!r} on wall {comp.wall.id!r}", field="window")
        if not isinstance(on, bool):
            raise InvalidField("on must be true or false", field="on")
        comp.set_highlight(window, on)
        # Highlights of windows that closed since are forgotten here.
        live = {w.id for w in state.windows}
        for stale in comp.highlighted() - live:
            comp.set_highlight(stale, False)
        return comp.wall.id, sorted(comp.highlighted() & live)

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for wid, comp in self.compositors.items():
            late, frames = comp.late_recently()
            out[wid] = {
                "canvas": {"width": comp.wall.width, "height": comp.wall.height},
                "fps_target": comp.fps,
                "running": comp.running,
                "highlighted": sorted(comp.highlighted()),
                "late_last_10s": late,
                "frames_last_10s": frames,
                **comp.stats.as_dict(),
            }
        return out

    # --- component contract -----------------------------------------------------------------

    def health(self) -> Health:
        if not self._started:
            return Health(Status.STARTING)
        problems = []
        for wid, comp in self.compositors.items():
            if not comp.running:
                return Health(Status.FAILED, f"compositor of wall {wid!r} stopped")
            late, frames = comp.late_recently()
            if frames and late / frames > self.config.late_degraded_ratio:
                problems.append(f"wall {wid}: {late} of {frames} frames late in the last 10 s")
        if self.window is not None and self.window.error:
            problems.append(f"window output: {self.window.error}")
        if self.streams is not None:
            problems += self.streams.problems()
        if problems:
            return Health(Status.DEGRADED, "; ".join(problems))
        return Health(Status.OK, f"{len(self.compositors)} walls at {self.config.fps:g} fps")

    def alive(self) -> bool:
        import time

        now = time.monotonic()
        return all(not c.running or now - c.heartbeat < STUCK_S for c in self.compositors.values())

    def reload(self, config: Config) -> list[str]:
        new = config.render
        old = self.config
        restart = []
        # The walls' catalogue: the configured sources and those contributed at run time
        # (WallsComponent.reload, before this, took config.sources into it).
        self.hub.configure(list(self.rt.walls.sources.values()))
        if new.enabled != old.enabled:
            restart.append("render.enabled")
        if new.sources != old.sources:
            restart.append("render.sources")
        if new.font != old.font:
            restart.append("render.font")
        if new.thread_nice != old.thread_nice:
            restart.append("render.thread_nice")
        if new.window != old.window:
            restart.append("render.window")
        if new.streams != old.streams:
            restart.append("render.streams")
        if new.preview.enabled != old.preview.enabled:
            restart.append("render.preview.enabled")
        elif self.preview is not None:
            self.preview.configure(new.preview)
        for comp in self.compositors.values():
            comp.configure(fps=new.fps, labels=new.labels, clock=new.clock)
        self.config = new.model_copy(
            update={
                "sources": old.sources,
                "font": old.font,
                "thread_nice": old.thread_nice,
                "window": old.window,
                "streams": old.streams,
                "enabled": old.enabled,
            }
        )
        return restart


class _RenderMetrics(Collector):
    def __init__(self, comp: RenderComponent) -> None:
        self.comp = comp

    def collect(self) -> Iterable[GaugeMetricFamily | CounterMetricFamily]:
        fps = GaugeMetricFamily(
            "wallctl_render_fps", "Frames composited per second", labels=["wall"]
        )
        late = CounterMetricFamily(
            "wallctl_render_late_frames", "Frames finished after their deadline", labels=["wall"]
        )
        frames = CounterMetricFamily("wallctl_render_frames", "Frames composited", labels=["wall"])
        paint = GaugeMetricFamily(
            "wallctl_render_paint_ms", "Time to paint a frame (moving average)", labels=["wall"]
        )
        paint_max = GaugeMetricFamily(
            "wallctl_render_paint_max_ms", "Longest frame paint since start", labels=["wall"]
        )
        switch = GaugeMetricFamily(
            "wallctl_render_switch_ms",
            "Last layout switch: from the new state to its first composited frame",
            labels=["wall"],
        )
        for wid, c in self.comp.compositors.items():
            s = c.stats
            fps.add_metric([wid], s.fps)
            late.add_metric([wid], s.late_frames)
            frames.add_metric([wid], s.frames)
            paint.add_metric([wid], s.paint_ms_avg)
            paint_max.add_metric([wid], s.paint_ms_max)
            switch.add_metric([wid], s.switch_ms_last)
        yield from (fps, late, frames, paint, paint_max, switch)
        if self.comp.preview is not None:
            viewers = GaugeMetricFamily(
                "wallctl_preview_viewers", "MJPEG preview viewers connected"
            )
            viewers.add_metric([], self.comp.preview.viewers)
            yield viewers
            enc = CounterMetricFamily(
                "wallctl_preview_encodes", "Preview JPEGs encoded", labels=["wall"]
            )
            for wid, wp in self.comp.preview.walls.items():
                enc.add_metric([wid], wp.encodes)
            yield enc
        if self.comp.streams is not None:
            yield from self.comp.streams.metrics()


def render_component(rt: Runtime) -> RenderComponent | None:
    """The component, or None when rendering is switched off in the config."""
    if not rt.config.render.enabled:
        return None
    return RenderComponent(rt)
