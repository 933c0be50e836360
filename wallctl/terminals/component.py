"""The terminals component: WHIP/WHEP routes, the relay, and the recorder behind it.

Registers ``rt.services["terminals"]`` (this component: ``relay``, ``identities``,
``recorder``, ``index``). Publish/unpublish and recording alarms go out on the bus
under the ``terminal`` category.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wallctl.api.tokens import Tokens
from wallctl.component import Component, Health, Status
from wallctl.config import Config
from wallctl.logs import get_logger
from wallctl.recordings.index import SegmentIndex
from wallctl.recordings.recorder import Alarm, Recorder
from wallctl.terminals.http import TerminalRoutes
from wallctl.terminals.identities import Terminals
from wallctl.terminals.passthrough import check_internals
from wallctl.terminals.relay import Publication, Relay

if TYPE_CHECKING:
    from wallctl.daemon import Runtime

log = get_logger("wallctl.terminals")


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
        TerminalRoutes(self.relay, self.identities, Tokens(rt.store)).install(rt.http.app)
        from wallctl.recordings.http import RecordingRoutes

        RecordingRoutes(self.index, Tokens(rt.store)).install(rt.http.app)
        rt.services["terminals"] = self
        self._started = False

    def _record(self, pub: Publication, kind: str, data: bytes, pts: int, kf: bool) -> None:
        assert self.recorder is not None
        self.recorder.on_frame(pub.source, pub.terminal.id, kind, data, pts, kf)

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
        self._started = True

    async def stop(self) -> None:
        await self.relay.stop()
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


def terminals_component(rt: Runtime) -> TerminalsComponent | None:
    if not rt.config.terminals.enabled:
        return None
    return TerminalsComponent(rt)
