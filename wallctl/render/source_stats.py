"""Per-source statistics: counted by decoder threads, read by the API and /metrics.

Rates (fps, bitrate) are over a sliding window of the last couple of seconds, so they
fall to zero when a stream stops instead of keeping a stale average.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

RATE_WINDOW_S = 2.0


class SourceStats:
    """Counters of one source, kept across decoder restarts and renditions."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._frames: deque[float] = deque()
        self._packets: deque[tuple[float, int]] = deque()
        self._bytes_in_window = 0
        self.frames_decoded = 0
        self.frames_dropped = 0
        self.bytes_in = 0
        self.reconnects = 0
        self.decoder_starts = 0
        self.codec: str | None = None
        self.width: int | None = None
        self.height: int | None = None
        self.rendition: str | None = None
        self.keyframes_only = False
        self.last_packet_at: float | None = None  # monotonic

    def on_packet(self, size: int, now: float) -> None:
        with self._lock:
            self.bytes_in += size
            self._packets.append((now, size))
            self._bytes_in_window += size
            self.last_packet_at = now
            self._trim(now)

    def on_frame(self, now: float) -> None:
        with self._lock:
            self.frames_decoded += 1
            self._frames.append(now)
            self._trim(now)

    def on_dropped(self, n: int = 1) -> None:
        with self._lock:
            self.frames_dropped += n

    def on_reconnect(self) -> None:
        with self._lock:
            self.reconnects += 1

    def on_stream(
        self, codec: str | None, width: int | None, height: int | None, rendition: str | None
    ) -> None:
        with self._lock:
            self.codec, self.width, self.height, self.rendition = codec, width, height, rendition

    def _trim(self, now: float) -> None:
        edge = now - RATE_WINDOW_S
        while self._frames and self._frames[0] < edge:
            self._frames.popleft()
        while self._packets and self._packets[0][0] < edge:
            self._bytes_in_window -= self._packets.popleft()[1]

    def rates(self, now: float) -> tuple[float, float]:
        """(frames per second, bits per second) over the last window."""
        with self._lock:
            self._trim(now)
            return len(self._frames) / RATE_WINDOW_S, self._bytes_in_window * 8 / RATE_WINDOW_S

    def snapshot(self, now: float | None = None) -> dict[str, Any]:
        t = time.monotonic() if now is None else now
        fps, bps = self.rates(t)
        with self._lock:
            return {
                "fps": round(fps, 2),
                "bitrate_bps": round(bps),
                "codec": self.codec,
                "width": self.width,
                "height": self.height,
                "rendition": self.rendition,
                "keyframes_only": self.keyframes_only,
                "frames_decoded": self.frames_decoded,
                "frames_dropped": self.frames_dropped,
                "bytes_in": self.bytes_in,
                "reconnects": self.reconnects,
            }


class SourceMetrics(Collector):
    """Prometheus view of ``stats()`` rows (one dict per source, as SourceHub.stats())."""

    def __init__(self, stats: Callable[[], Iterable[dict[str, Any]]]) -> None:
        self._stats = stats

    def collect(self) -> Iterable[GaugeMetricFamily | CounterMetricFamily]:
        rows = list(self._stats())
        gauges = {
            "fps": GaugeMetricFamily(
                "wallctl_source_fps", "Decoded pictures per second", labels=["source"]
            ),
            "bitrate_bps": GaugeMetricFamily(
                "wallctl_source_bitrate_bps", "Received bits per second", labels=["source"]
            ),
            "age_s": GaugeMetricFamily(
                "wallctl_source_frame_age_seconds",
                "Seconds since the last picture (absent before the first)",
                labels=["source"],
            ),
            "live": GaugeMetricFamily(
                "wallctl_source_live", "1 when the source delivers pictures", labels=["source"]
            ),
            "active": GaugeMetricFamily(
                "wallctl_source_decoding", "1 while a decoder runs for it", labels=["source"]
            ),
        }
        counters = {
            "frames_decoded": CounterMetricFamily(
                "wallctl_source_frames_decoded", "Pictures decoded", labels=["source"]
            ),
            "frames_dropped": CounterMetricFamily(
                "wallctl_source_frames_dropped",
                "Pictures lost (corrupt, undecodable, late)",
                labels=["source"],
            ),
            "reconnects": CounterMetricFamily(
                "wallctl_source_reconnects", "Times the stream was reopened", labels=["source"]
            ),
        }
        for r in rows:
            sid = [str(r["source"])]
            gauges["fps"].add_metric(sid, float(r.get("fps") or 0))
            gauges["bitrate_bps"].add_metric(sid, float(r.get("bitrate_bps") or 0))
            if r.get("age_s") is not None:
                gauges["age_s"].add_metric(sid, float(r["age_s"]))
            gauges["live"].add_metric(sid, 1 if r.get("phase") == "live" else 0)
            gauges["active"].add_metric(sid, 1 if r.get("active") else 0)
            for key, fam in counters.items():
                fam.add_metric(sid, float(r.get(key) or 0))
        yield from gauges.values()
        yield from counters.values()
