"""Per-source statistics: counted by decoder threads, read by the API and /metrics.

Rates (fps, bitrate) are over a sliding window of the last couple of seconds, so they
fall to zero when a stream stops instead of keeping a stale average. Counting happens
for every packet and picture of every source (about a thousand times a second on a
full wall), so it takes no lock and allocates nothing: counts go into a small ring of
time buckets. Only the decoder threads of one source write (one, or two for a moment
while a rendition switch overlaps); readers take a consistent-enough copy.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

RATE_WINDOW_S = 2.0
# The window is made of buckets this long; rates cover the whole buckets of the window
# plus the one being filled (so between RATE_WINDOW_S - BUCKET_S and RATE_WINDOW_S).
BUCKET_S = 0.25
_PER_S = 1.0 / BUCKET_S
_BUCKETS = int(RATE_WINDOW_S / BUCKET_S) + 1


class _Ring:
    """Counts per time bucket over the last RATE_WINDOW_S."""

    __slots__ = ("counts", "keys")

    def __init__(self) -> None:
        self.keys = [-1] * _BUCKETS
        self.counts = [0] * _BUCKETS

    def add(self, now: float, n: int) -> None:
        k = int(now * _PER_S)
        i = k % _BUCKETS
        if self.keys[i] != k:
            self.keys[i] = k
            self.counts[i] = 0
        self.counts[i] += n

    def rate(self, now: float) -> float:
        k = int(now * _PER_S)
        first = k - _BUCKETS + 2  # the oldest whole bucket still inside the window
        total = sum(c for key, c in zip(self.keys, self.counts, strict=True) if first <= key <= k)
        span = now - first * BUCKET_S
        return total / span if span > 0 else 0.0


class SourceStats:
    """Counters of one source, kept across decoder restarts and renditions."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # for the fields set together (stream properties)
        self._frames = _Ring()
        self._bytes = _Ring()
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
        self.bytes_in += size
        self._bytes.add(now, size)
        self.last_packet_at = now

    def on_frame(self, now: float) -> None:
        self.frames_decoded += 1
        self._frames.add(now, 1)

    def on_dropped(self, n: int = 1) -> None:
        self.frames_dropped += n

    def on_reconnect(self) -> None:
        self.reconnects += 1

    def on_stream(
        self, codec: str | None, width: int | None, height: int | None, rendition: str | None
    ) -> None:
        with self._lock:
            self.codec, self.width, self.height, self.rendition = codec, width, height, rendition

    def rates(self, now: float) -> tuple[float, float]:
        """(frames per second, bits per second) over the last window."""
        return self._frames.rate(now), self._bytes.rate(now) * 8

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
