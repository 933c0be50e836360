"""Writes each publishing terminal's video and voice to fragmented MP4 segments, without
re-encoding.

The relay hands every encoded frame to :meth:`Recorder.on_frame` on the event loop; a
thread per stream muxes them (file I/O off the loop). A segment starts at a video
keyframe and ends at the first keyframe after ``segment_s``, so every segment plays on
its own. Fragmented MP4 (``empty_moov`` + a fragment per keyframe) because the header is
written first and each fragment is complete when written: a crash loses at most the open
fragment (one GOP), and the file plays up to there; the index row says ``recovered``.
Opus audio goes into the same file (MPEG-TS would carry it poorly: FIELD-NOTES).

Times come from each stream's media clock, anchored at its first frame's arrival, so a
segment's time does not depend on when the writer thread got to it; audio and video are
aligned to within the network jitter of their first packets.

Before a segment starts, the free space of the recordings' disk is checked: below
``min_free_mb`` no new segment is started (an alarm on the "terminal" events and in
/healthz) and segments already written are never touched.
"""

from __future__ import annotations

import fractions
import os
import queue
import shutil
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av

from wallctl.logs import get_logger
from wallctl.recordings.index import SegmentIndex
from wallctl.terminals.config import RecordingsConfig
from wallctl.terminals.h264 import NAL_PPS, NAL_SPS, nal_units

log = get_logger("wallctl.recordings")

VIDEO_TB = fractions.Fraction(1, 90000)
AUDIO_TB = fractions.Fraction(1, 48000)
CLOCK = {"video": 90000, "audio": 48000}
# Frames queued for one stream's writer thread before the backlog is dropped.
MAX_QUEUE = 2000
MOVFLAGS = "frag_keyframe+empty_moov+default_base_moof"
# The Opus identification header (RFC 7845 §5.1): version 1, stereo, 312 samples of
# pre-skip (what libopus and browsers use at 48 kHz), 48 kHz, no gain, mapping family 0.
OPUS_HEAD = b"OpusHead" + struct.pack("<BBHIhB", 1, 2, 312, 48000, 0, 0)


@dataclass
class Alarm:
    source: str
    reason: str
    free_mb: float


def segment_name(source: str, start: float) -> Path:
    """``mobile/patrol-7`` at 14:02:05.250 UTC -> mobile/patrol-7/YYYY/MM/DD/140205-250.mp4."""
    t = time.gmtime(start)
    ms = int((start % 1) * 1000)
    return (
        Path(source)
        / time.strftime("%Y/%m/%d", t)
        / (time.strftime("%H%M%S", t) + f"-{ms:03d}.mp4")
    )


def picture_size(access_unit: bytes) -> tuple[int, int] | None:
    """The size of a keyframe's picture: decoding one frame per segment is cheaper and
    surer than parsing every SPS variant."""
    codec = av.CodecContext.create("h264", "r")
    try:
        packets = codec.parse(access_unit) or [av.Packet(access_unit)]
        for p in [*packets, None]:
            for frame in codec.decode(p):
                return int(frame.width), int(frame.height)
    except av.FFmpegError:
        return None
    return None


class StreamWriter(threading.Thread):
    """One stream's segments; fed through a bounded queue."""

    def __init__(self, rec: Recorder, source: str, identity: str, audio: bool) -> None:
        super().__init__(name=f"recorder-{source}", daemon=True)
        self.rec = rec
        self.source = source
        self.identity = identity
        self.audio = audio
        self.queue: queue.Queue[tuple[str, bytes, int, bool] | None] = queue.Queue(MAX_QUEUE)
        self.container: Any = None
        self.streams: dict[str, Any] = {}
        self.seg_id: int | None = None
        self.path: Path | None = None
        self.seg_start = 0.0
        self.last: dict[str, int] = {}
        self.anchor: dict[str, tuple[float, int]] = {}
        self.params: list[bytes] = []  # the latest SPS and PPS seen
        self.seg_params: list[bytes] = []  # those the open segment's header holds
        self.refused = False
        self.stopping = threading.Event()
        self.dropped = 0
        self.segments = 0

    def push(self, kind: str, data: bytes, pts: int, keyframe: bool) -> None:
        try:
            self.queue.put_nowait((kind, data, pts, keyframe))
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

    def at(self, kind: str, pts: int) -> float:
        """The wall-clock time of ``pts`` on ``kind``'s media clock."""
        if kind not in self.anchor:
            self.anchor[kind] = (time.time(), pts)
        wall, first = self.anchor[kind]
        return wall + (pts - first) / CLOCK[kind]

    def _frame(self, kind: str, data: bytes, pts: int, keyframe: bool) -> None:
        when = self.at(kind, pts)
        if kind == "video":
            params = [n for n in nal_units(data) if n and n[0] & 0x1F in (NAL_SPS, NAL_PPS)]
            if params:
                self.params = params
            # A new segment also when the picture's parameters change (a phone's camera
            # ramping from 360p to 720p): each segment's header describes all its pictures.
            if keyframe and (
                self.container is None
                or when - self.seg_start >= self.rec.config.segment_s
                or self.params != self.seg_params
            ):
                self._close()
                self._open(when, data)
        stream = self.streams.get(kind)
        if self.container is None or stream is None:
            return  # waiting for a keyframe, refused, or audio the segment does not carry
        rel = round((when - self.seg_start) * CLOCK[kind])
        if rel <= self.last.get(kind, -1):
            rel = self.last[kind] + 1  # a muxer insists on rising timestamps
        if rel < 0:
            return  # audio from before the segment's first picture
        self.last[kind] = rel
        packet = av.Packet(data)
        packet.pts = packet.dts = rel
        packet.time_base = VIDEO_TB if kind == "video" else AUDIO_TB
        packet.stream = stream
        packet.is_keyframe = keyframe or kind == "audio"
        self.container.mux(packet)

    def _open(self, start: float, keyframe: bytes) -> None:
        free_mb = self.rec.free_mb()
        if free_mb < self.rec.config.min_free_mb:
            if not self.refused:
                self.refused = True
                self.rec.alarm(Alarm(self.source, "disk_full", free_mb))
            return
        if self.refused:
            self.refused = False
            self.rec.alarm_cleared(self.source)
        size = picture_size(keyframe)
        if size is None or not self.params:
            log.warning("recording waits for a keyframe with its SPS/PPS", source=self.source)
            return
        path = self.rec.root / segment_name(self.source, start)
        path.parent.mkdir(parents=True, exist_ok=True)
        container = av.open(str(path), "w", format="mp4", options={"movflags": MOVFLAGS})
        video = container.add_stream("h264")
        video.width, video.height = size
        video.time_base = VIDEO_TB
        video.codec_context.extradata = b"".join(b"\x00\x00\x00\x01" + n for n in self.params)
        self.streams = {"video": video}
        codecs = "h264"
        if self.audio:
            audio = container.add_stream("opus", rate=48000)
            audio.time_base = AUDIO_TB
            audio.codec_context.extradata = OPUS_HEAD
            self.streams["audio"] = audio
            codecs = "h264,opus"
        self.container, self.path = container, path
        self.seg_start, self.last, self.seg_params = start, {}, list(self.params)
        self.seg_id = self.rec.index.open(self.source, self.identity, path, start, codecs)
        self.segments += 1
        log.info("recording segment started", source=self.source, path=str(path))

    def _close(self) -> None:
        container, seg_id, path = self.container, self.seg_id, self.path
        # One frame interval past the last picture (25 fps assumed for its length).
        end = self.seg_start + max(self.last.get("video", 0), 0) / 90000 + 0.04
        self.container, self.streams = None, {}
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
        self.ending: list[StreamWriter] = []
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
        self,
        source: str,
        identity: str,
        kind: str,
        data: bytes,
        pts: int,
        keyframe: bool,
        audio: bool = False,
    ) -> None:
        """One encoded frame of ``source``; ``audio``: whether the stream carries audio."""
        w = self.writers.get(source)
        if w is None:
            w = self.writers[source] = StreamWriter(self, source, identity, audio)
            w.start()
        w.push(kind, data, pts, keyframe)

    def end(self, source: str) -> StreamWriter | None:
        w = self.writers.pop(source, None)
        if w is not None:
            w.end()
            # Still closing its segment: close() waits for it before the store goes.
            self.ending = [x for x in self.ending if x.is_alive()] + [w]
        return w

    def close(self, timeout: float = 10.0) -> None:
        for s in list(self.writers):
            self.end(s)
        for w in self.ending:
            w.join(timeout)
        self.ending = []
