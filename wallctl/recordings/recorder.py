"""Writes each publishing terminal's video to MPEG-TS segments, without re-encoding.

The relay hands every encoded frame to :meth:`Recorder.on_frame` on the event loop; a
thread per stream muxes them (file I/O off the loop). A segment starts at a keyframe
and ends at the first keyframe after ``segment_s``, so every segment plays on its own.
MPEG-TS because a crash leaves it playable up to its last whole packet (nothing is
written at the end of the file); the index row says ``recovered`` after such a crash.

Before a segment starts, the free space of the recordings' disk is checked: below
``min_free_mb`` no new segment is started (an alarm on the "terminal" events and in
/healthz) and segments already written are never touched.
"""

from __future__ import annotations

import fractions
import os
import queue
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av

from wallctl.logs import get_logger
from wallctl.recordings.index import SegmentIndex
from wallctl.terminals.config import RecordingsConfig

log = get_logger("wallctl.recordings")

TIME_BASE = fractions.Fraction(1, 90000)
# Frames queued for one stream's writer thread before the backlog is dropped.
MAX_QUEUE = 1000


@dataclass
class Alarm:
    source: str
    reason: str
    free_mb: float


def segment_name(source: str, start: float) -> Path:
    """``mobile/patrol-7`` at 14:02:05 UTC -> mobile/patrol-7/2026/11/23/140205.ts."""
    t = time.gmtime(start)
    ms = int((start % 1) * 1000)
    return (
        Path(source) / time.strftime("%Y/%m/%d", t) / (time.strftime("%H%M%S", t) + f"-{ms:03d}.ts")
    )


class StreamWriter(threading.Thread):
    """One stream's segments; fed through a bounded queue."""

    def __init__(self, rec: Recorder, source: str, identity: str) -> None:
        super().__init__(name=f"recorder-{source}", daemon=True)
        self.rec = rec
        self.source = source
        self.identity = identity
        self.queue: queue.Queue[tuple[bytes, int, bool] | None] = queue.Queue(MAX_QUEUE)
        self.container: av.container.OutputContainer | None = None
        self.stream: av.VideoStream | None = None
        self.seg_id: int | None = None
        self.path: Path | None = None
        self.seg_start_wall = 0.0
        self.seg_start_pts = 0
        self.last_pts = -1
        self.refused = False
        self.anchor: tuple[float, int] | None = None
        self.stopping = threading.Event()
        self.dropped = 0
        self.segments = 0

    def push(self, data: bytes, pts: int, keyframe: bool) -> None:
        try:
            self.queue.put_nowait((data, pts, keyframe))
        except queue.Full:
            self.dropped += 1

    def end(self) -> None:
        # Never blocks the loop: a full queue is drained first, then the flag ends it.
        self.stopping.set()
        try:
            self.queue.put_nowait(None)
        except queue.Full:
            pass

    def run(self) -> None:
        try:
            while True:
                try:
                    item = self.queue.get(timeout=0.5)
                except queue.Empty:
                    if self.stopping.is_set():
                        break
                    continue
                if item is None:
                    break
                try:
                    self._frame(*item)
                except Exception:
                    log.exception("recording failed: segment closed", source=self.source)
                    self._close()
        finally:
            self._close()

    def at(self, pts: int) -> float:
        """The wall-clock time of ``pts``: the stream's media clock, anchored at its first
        frame (so segment times do not depend on when the writer thread got to them)."""
        if self.anchor is None:
            self.anchor = (time.time(), pts)
        wall, first = self.anchor
        return wall + (pts - first) / 90000

    def _frame(self, data: bytes, pts: int, keyframe: bool) -> None:
        now = self.at(pts)
        if keyframe and (
            self.container is None or now - self.seg_start_wall >= self.rec.config.segment_s
        ):
            self._close()
            self._open(pts)
        if self.container is None or self.stream is None:
            return  # waiting for a keyframe, or refused
        rel = pts - self.seg_start_pts
        if rel <= self.last_pts:
            rel = self.last_pts + 1  # aiortc's timestamps are monotonic; a muxer insists
        self.last_pts = rel
        packet = av.Packet(data)
        packet.pts = packet.dts = rel
        packet.time_base = TIME_BASE
        packet.stream = self.stream
        packet.is_keyframe = keyframe
        self.container.mux(packet)

    def _open(self, pts: int) -> None:
        free_mb = self.rec.free_mb()
        if free_mb < self.rec.config.min_free_mb:
            if not self.refused:
                self.refused = True
                self.rec.alarm(Alarm(self.source, "disk_full", free_mb))
            return
        if self.refused:
            self.refused = False
            self.rec.alarm_cleared(self.source)
        start = self.at(pts)
        path = self.rec.root / segment_name(self.source, start)
        path.parent.mkdir(parents=True, exist_ok=True)
        container = av.open(str(path), "w", format="mpegts")
        stream = container.add_stream("h264")
        stream.time_base = TIME_BASE
        self.container, self.stream, self.path = container, stream, path
        self.seg_start_wall, self.seg_start_pts, self.last_pts = start, pts, -1
        self.seg_id = self.rec.index.open(self.source, self.identity, path, start, "h264")
        self.segments += 1
        log.info("recording segment started", source=self.source, path=str(path))

    def _close(self) -> None:
        container, seg_id, path = self.container, self.seg_id, self.path
        # One frame interval past the last frame's time (25 fps assumed for its length).
        end = self.seg_start_wall + max(self.last_pts, 0) / 90000 + 0.04
        self.container = self.stream = None
        self.seg_id = self.path = None
        if container is None:
            return
        try:
            container.close()
        except Exception:
            log.exception("recording segment did not close cleanly", source=self.source)
        size = 0
        if path is not None:
            try:
                with open(path, "rb") as f:
                    os.fsync(f.fileno())
                size = path.stat().st_size
            except OSError:
                pass
        if seg_id is not None:
            self.rec.index.close(seg_id, end, size)


class Recorder:
    def __init__(
        self,
        config: RecordingsConfig,
        root: Path,
        index: SegmentIndex,
        on_alarm: Callable[[Alarm | None, str], None] | None = None,
    ) -> None:
        self.config = config
        self.root = root
        self.index = index
        self.on_alarm = on_alarm
        self.writers: dict[str, StreamWriter] = {}
        self.alarms: dict[str, Alarm] = {}
        root.mkdir(parents=True, exist_ok=True)

    def free_mb(self) -> float:
        return shutil.disk_usage(self.root).free / (1024 * 1024)

    def alarm(self, alarm: Alarm) -> None:
        self.alarms[alarm.source] = alarm
        log.error(
            "recording refused: disk nearly full",
            source=alarm.source,
            free_mb=round(alarm.free_mb),
            min_free_mb=self.config.min_free_mb,
        )
        if self.on_alarm is not None:
            self.on_alarm(alarm, alarm.source)

    def alarm_cleared(self, source: str) -> None:
        if self.alarms.pop(source, None) is not None and self.on_alarm is not None:
            self.on_alarm(None, source)

    def on_frame(
        self, source: str, identity: str, kind: str, data: bytes, pts: int, keyframe: bool
    ) -> None:
        if kind != "video":
            return
        w = self.writers.get(source)
        if w is None:
            w = self.writers[source] = StreamWriter(self, source, identity)
            w.start()
        w.push(data, pts, keyframe)

    def end(self, source: str) -> StreamWriter | None:
        w = self.writers.pop(source, None)
        if w is not None:
            w.end()
        return w

    def close(self, timeout: float = 10.0) -> None:
        writers = list(self.writers)
        for s in writers:
            w = self.end(s)
            if w is not None:
                w.join(timeout)
