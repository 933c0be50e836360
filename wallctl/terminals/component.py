"""The terminals component: WHIP/WHEP routes, the relay, and the recorder behind it.

Registers ``rt.services["terminals"]`` (this component: ``relay``, ``identities``,
``recorder``, ``index``, ``talkback``). Publish/unpublish and recording alarms go out on the bus
under the ``terminal`` category.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from wallctl.accounts import Accounts
from wallctl.api.tokens import Tokens
from wallctl.component import Component, Health, Status
from wallctl.config import Config
from wallctl.logs import get_logger
from wallctl.recordings.http import RecordingRoutes
from wallctl.recordings.index import SegmentIndex
from wallctl.recordings.recorder import Alarm, Recorder
from wallctl.recordings.retention import prune
from wallctl.terminals.audio import AudioOutput, Hearing, window_is_full
from wallctl.terminals.http import TerminalRoutes
from wallctl.terminals.identities import Terminals
from wallctl.terminals.passthrough import check_internals
from wallctl.terminals.relay import Publication, Relay
from wallctl.terminals.sources import TerminalSources, feed_base, public_base, terminal_of
from wallctl.terminals.talkback import Talkback

if TYPE_CHECKING:
    from wallctl.daemon import Runtime

log = get_logger("wallctl.terminals")

# How often publishing terminals are checked against the database (removed = revoked).
REVOKE_S = 2.0
PRUNE_EVERY_S = 3600.0
# How often highlighted windows are looked at (for [terminals.audio] follow).
HIGHLIGHT_POLL_S = 0.5


def recordings_dir(rt: Runtime) -> Path:
    return rt.config.terminals.recordings.dir or rt.state_dir / "recordings"


class TerminalsComponent(Component):
    name = "terminals"

    def __init__(self, rt: Runtime) -> None:
        # Refuse to start on an aiortc whose internals moved, rather than decode silently.
        check_internals()
        self.rt = rt
        cfg = rt.config.terminals
        self.identities = Terminals(rt.store)
        self.relay = Relay(cfg, rt.bus)
        self.index = SegmentIndex(rt.store)
        self.recorder: Recorder | None = None
        if cfg.recordings.enabled:
            self.recorder = Recorder(cfg.recordings, recordings_dir(rt), self.index, self._on_alarm)
            self.relay.listeners.append(self._record)
            self.relay.on_unpublish.append(self._stop_recording)
        self.talkback = Talkback(self.relay)
        self.accounts = Accounts(rt.store)  # roles of commanders who talk back
        TerminalRoutes(
            self.relay, self.identities, Tokens(rt.store), self.talkback, self.accounts
        ).install(rt.http.app)
        RecordingRoutes(self.index, Tokens(rt.store)).install(rt.http.app)
        # Every registered terminal is a wall source, mobile/<id> (wallctl/terminals/sources.py).
        self.sources = TerminalSources(
            rt.walls,
            self.identities,
            self.relay,
            base=lambda: feed_base(rt.config.http.host, rt.http.port),
            hub=lambda: rt.services.get("sources"),
            on_change=self._catalogue_changed,
        )
        # The centre's loudspeaker (wallctl/terminals/audio.py): only with a device.
        self.hearing = Hearing(cfg.audio)
        self.audio: AudioOutput | None = None
        if cfg.audio.device:
            self.audio = AudioOutput(cfg.audio)
            self.relay.listeners.append(self._audio_frame)
        self._unsubscribe_walls: Any = None
        self._highlighted: dict[str, frozenset[str]] = {}
        self._announced: list[tuple[str, str | None]] = []  # who is heard and why, as told
        self._follow_pending = False  # a wall change is waiting to be followed
        self._highlight_task: asyncio.Task[None] | None = None
        rt.services["terminals"] = self
        rt.registry.register(TerminalMetrics(self))
        self._started = False
        self._revoker: asyncio.Task[None] | None = None
        self._pruner: asyncio.Task[None] | None = None

    def _record(self, pub: Publication, kind: str, data: bytes, pts: int, kf: bool) -> None:
        assert self.recorder is not None
        has_audio = pub.audio_receiver is not None
        self.recorder.on_frame(pub.source, pub.terminal.id, kind, data, pts, kf, has_audio)

    def _stop_recording(self, pub: Publication, reason: str) -> None:
        assert self.recorder is not None
        self.recorder.end(pub.source)

    # --- sources and audio ------------------------------------------------------------------

    def public_base(self) -> str:
        return public_base(self.rt.config, self.rt.http)

    def _catalogue_changed(self, added: list[str], removed: list[str]) -> None:
        for sid in added:
            src = self.rt.walls.sources.get(sid)
            name = src.name if src is not None else sid
            self.rt.bus.publish("source", "source.added", {"source": sid, "name": name})
        for sid in removed:
            self.rt.bus.publish("source", "source.removed", {"source": sid})
        self._follow_walls()

    def _audio_frame(self, pub: Publication, kind: str, data: bytes, pts: int, kf: bool) -> None:
        if kind == "audio" and self.audio is not None:
            self.audio.push(pub.terminal.id.lower(), data)

    def _on_wall_changed(self, ev: Any) -> None:
        # On the API's hot path (every window.move): nothing to do without a loudspeaker,
        # and a burst of changes is followed once, after the loop has handled them all.
        if self.audio is None or self._follow_pending:
            return
        self._follow_pending = True
        asyncio.get_running_loop().call_soon(self._follow_soon)

    def _follow_soon(self) -> None:
        self._follow_pending = False
        self._follow_walls()

    def _highlights(self) -> dict[str, frozenset[str]]:
        """The windows commanders point at (render.highlight), by wall."""
        render = self.rt.services.get("render")
        compositors = getattr(render, "compositors", None) or {}
        return {wid: frozenset(c.highlighted()) for wid, c in compositors.items()}

    def _follow_walls(self) -> None:
        """Terminals in highlighted and full-screen windows, for ``[terminals.audio]
        follow``: highlighted ones first (the picture under discussion)."""
        walls = self.rt.walls
        self._highlighted = self._highlights()
        pointed: list[tuple[str, str]] = []
        full: list[tuple[str, str]] = []
        for wid, wall in walls.walls.items():
            try:
                state = walls.state(wid)
            except KeyError:
                continue  # not loaded yet
            lit = self._highlighted.get(wid, frozenset())
            for w in sorted(state.windows, key=lambda w: -w.z):
                src = walls.sources.get(w.source) if w.source else None
                terminal = terminal_of(src) if src is not None else None
                if terminal is None:
                    continue
                if w.id in lit:
                    pointed.append((terminal, "highlighted"))
                if window_is_full(w, wall.canvas):
                    full.append((terminal, "fullscreen"))
        self.hearing.follow(pointed + full)
        self.apply_hearing()

    async def _watch_highlights(self) -> None:
        # render.highlight announces nothing: a glance twice a second is cheap.
        while True:
            await asyncio.sleep(HIGHLIGHT_POLL_S)
            if self._highlights() != self._highlighted:
                self._follow_walls()

    def apply_hearing(self) -> None:
        """Hand who is heard to the audio thread; announce it when it changed."""
        if self.audio is None:
            return
        heard = self.hearing.heard()
        shown = [(t, self.hearing.why(t)) for t in heard]
        if shown != self._announced:
            self._announced = shown
            self.audio.hear(heard)
            log.info("terminals heard", heard=",".join(heard))
            self.rt.bus.publish("terminal", "terminal.audio", self.audio_info())

    def audio_info(self) -> dict[str, Any]:
        # Without a device nobody is heard here, whatever the policy would pick.
        heard = self.hearing.heard() if self.audio is not None else []
        info: dict[str, Any] = {
            "device": self.rt.config.terminals.audio.device or None,
            "follow": list(self.hearing.config.follow),
            "heard": [{"terminal": t, "why": self.hearing.why(t)} for t in heard],
            "muted": sorted(self.hearing.muted),
        }
        if self.audio is not None:
            st = self.audio.stats
            info.update(
                playing=st.playing,
                error=st.error,
                frames=st.frames_in,
                dropped=st.frames_dropped,
            )
        return info

    def _on_alarm(self, alarm: Alarm | None, source: str) -> None:
        loop = self._loop
        data: dict[str, Any] = {"source": source}
        if alarm is not None:
            data.update(reason=alarm.reason, free_mb=round(alarm.free_mb))
        kind = "recording.refused" if alarm is not None else "recording.resumed"
        loop.call_soon_threadsafe(self.rt.bus.publish, "terminal", kind, data)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        recovered = await asyncio.to_thread(self.index.recover)
        if recovered:
            log.warning("recording segments recovered after a crash", segments=recovered)
        await self.relay.start()
        await self.sources.start()
        self._unsubscribe_walls = self.rt.walls.subscribe(self._on_wall_changed)
        if self.audio is not None:
            self.audio.start()
            if "highlighted" in self.rt.config.terminals.audio.follow:
                self._highlight_task = asyncio.create_task(
                    self._watch_highlights(), name="terminal-audio-highlights"
                )
        self._follow_walls()
        self._revoker = asyncio.create_task(self._revoke_removed(), name="terminals-revoke")
        days = self.rt.config.terminals.recordings.retention_days
        if days is not None:
            self._pruner = asyncio.create_task(self._prune(days), name="recordings-retention")
        self._started = True

    async def _revoke_removed(self) -> None:
        """A terminal removed (a stolen phone) stops publishing within REVOKE_S, though
        the CLI wrote the database behind the daemon's back."""
        while True:
            await asyncio.sleep(REVOKE_S)
            for pub in list(self.relay.publications.values()):
                if await asyncio.to_thread(self.identities.get, pub.terminal.id) is None:
                    log.warning("terminal removed while publishing", terminal=pub.terminal.id)
                    await self.relay.unpublish(pub, "removed")

    async def _prune(self, days: float) -> None:
        while True:
            try:
                await asyncio.to_thread(prune, self.index, time.time() - days * 86400)
            except Exception:
                log.exception("recordings retention failed")
            await asyncio.sleep(PRUNE_EVERY_S)

    async def stop(self) -> None:
        for task in (self._revoker, self._pruner, self._highlight_task):
            if task is not None:
                task.cancel()
        if self._unsubscribe_walls is not None:
            self._unsubscribe_walls()
        await self.talkback.stop()
        await self.relay.stop()
        await self.sources.stop()
        if self.audio is not None:
            await asyncio.to_thread(self.audio.stop)
        self.accounts.close()
        if self.recorder is not None:
            await asyncio.to_thread(self.recorder.close)
        self._started = False

    def health(self) -> Health:
        if not self._started:
            return Health(Status.STARTING)
        if self.recorder is not None and self.recorder.alarms:
            names = ", ".join(sorted(self.recorder.alarms))
            return Health(Status.DEGRADED, f"recording refused (disk nearly full): {names}")
        if self.audio is not None and self.audio.stats.error:
            return Health(Status.DEGRADED, self.audio.stats.error)
        return Health(Status.OK, f"{len(self.relay.publications)} publishing")

    def reload(self, config: Config) -> list[str]:
        return ["terminals"] if config.terminals != self.rt.config.terminals else []


class TerminalMetrics(Collector):
    def __init__(self, comp: TerminalsComponent) -> None:
        self.comp = comp

    def collect(self) -> Iterable[GaugeMetricFamily | CounterMetricFamily]:
        relay = self.comp.relay
        pubs = GaugeMetricFamily("wallctl_terminals_publishing", "Terminals publishing now")
        pubs.add_metric([], len(relay.publications))
        yield pubs
        viewers = GaugeMetricFamily(
            "wallctl_terminal_viewers", "WHEP viewers of each terminal", labels=["terminal"]
        )
        frames = CounterMetricFamily(
            "wallctl_terminal_frames",
            "Video frames received this publication",
            labels=["terminal"],
        )
        for pub in relay.publications.values():
            viewers.add_metric([pub.terminal.id], len(pub.viewers))
            frames.add_metric([pub.terminal.id], pub.frames)
        yield viewers
        yield frames
        refused = GaugeMetricFamily(
            "wallctl_recordings_refused", "Streams not recorded because the disk is nearly full"
        )
        rec = self.comp.recorder
        refused.add_metric([], len(rec.alarms) if rec is not None else 0)
        yield refused
        audio = self.comp.audio
        if audio is not None:
            heard = GaugeMetricFamily(
                "wallctl_terminal_audio_heard", "Terminals heard on the centre's loudspeaker"
            )
            heard.add_metric([], len(audio.stats.heard))
            yield heard
            dropped = CounterMetricFamily(
                "wallctl_terminal_audio_dropped",
                "Opus frames of heard terminals dropped (the audio thread fell behind)",
            )
            dropped.add_metric([], audio.stats.frames_dropped)
            yield dropped


def terminals_component(rt: Runtime) -> TerminalsComponent | None:
    if not rt.config.terminals.enabled:
        return None
    return TerminalsComponent(rt)
