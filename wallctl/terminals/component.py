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
from wallctl.terminals.http import TerminalRoutes
from wallctl.terminals.identities import Terminals
from wallctl.terminals.passthrough import check_internals
from wallctl.terminals.relay import Publication, Relay
from wallctl.terminals.talkback import Talkback

if TYPE_CHECKING:
    from wallctl.daemon import Runtime

log = get_logger("wallctl.terminals")

# How often publishing terminals are checked against the database (removed = revoked).
REVOKE_S = 2.0
PRUNE_EVERY_S = 3600.0


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
        for task in (self._revoker, self._pruner):
            if task is not None:
                task.cancel()
        await self.talkback.stop()
        await self.relay.stop()
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


def terminals_component(rt: Runtime) -> TerminalsComponent | None:
    if not rt.config.terminals.enabled:
        return None
    return TerminalsComponent(rt)
