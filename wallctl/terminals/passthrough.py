"""Every use of aiortc's internals, in one place: encoded frames in, encoded frames out.

aiortc decodes whatever an ``RTCRtpReceiver`` receives: its jitter buffer hands each
complete frame to a decoder thread through a private queue. Forwarding without
transcoding needs those encoded frames, so :func:`tap_receiver` swaps that queue for one
that hands frames to the relay and never feeds the decoder (whose thread then idles
until the receiver stops), and swaps the video jitter buffer for one that knows a frame
is complete at its marked last packet. A viewer's keyframe request is passed on to
the publisher (:func:`on_keyframe_request`). The sending side needs no internals: a
track whose ``recv`` returns ``av.Packet`` is packetized as it is (``Encoder.pack``).

Tested against aiortc 1.16 (pyproject pins ``<1.17``); tests/terminals/test_passthrough.py
fails loudly when any of this changes underneath.
"""

from __future__ import annotations

import asyncio
import collections
import fractions
import queue
import time
from collections.abc import Callable
from typing import Any

import av
from aiortc import RTCRtpReceiver, RTCRtpSender
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

# The private, name-mangled attribute of RTCRtpReceiver that carries (codec, JitterFrame)
# tuples to the decoder thread; None on it stops that thread.
_DECODER_QUEUE = "_RTCRtpReceiver__decoder_queue"
_STARTED = "_RTCRtpReceiver__started"
_JITTER_BUFFER = "_RTCRtpReceiver__jitter_buffer"
_KIND = "_RTCRtpReceiver__kind"

VIDEO_TIME_BASE = fractions.Fraction(1, 90000)
AUDIO_TIME_BASE = fractions.Fraction(1, 48000)

# (codec name as in the SDP, e.g. "H264" or "opus", Annex-B/Opus payload, RTP timestamp
# rebased to start at 0 by aiortc).
FrameSink = Callable[[str, bytes, int], None]


class PassthroughUnsupported(RuntimeError):
    """aiortc changed: the receiver no longer looks as this module expects."""


def check_internals() -> None:
    """Raise PassthroughUnsupported unless aiortc's internals are what we rely on."""
    probe = RTCRtpReceiver("video", _NoTransport())  # type: ignore[arg-type]
    q = getattr(probe, _DECODER_QUEUE, None)
    if not isinstance(q, queue.Queue):
        raise PassthroughUnsupported(
            f"aiortc.RTCRtpReceiver has no {_DECODER_QUEUE} queue: update "
            "wallctl/terminals/passthrough.py for this aiortc version"
        )
    if getattr(probe, _STARTED, None) is not False:
        raise PassthroughUnsupported(f"aiortc.RTCRtpReceiver has no {_STARTED} flag")
    buffer = getattr(probe, _JITTER_BUFFER, None)
    if type(buffer) is not JitterBuffer or getattr(probe, _KIND, None) != "video":
        raise PassthroughUnsupported(f"aiortc.RTCRtpReceiver has no {_JITTER_BUFFER}")
    for name in ("_origin", "_packets", "_capacity"):
        if not hasattr(buffer, name):
            raise PassthroughUnsupported(f"aiortc's JitterBuffer has no {name}")
    if not callable(getattr(JitterBuffer, "_remove_frame", None)):
        raise PassthroughUnsupported("aiortc's JitterBuffer has no _remove_frame")
    if not callable(getattr(probe, "_send_rtcp_pli", None)):
        raise PassthroughUnsupported("aiortc.RTCRtpReceiver has no _send_rtcp_pli")
    if not callable(getattr(RTCRtpSender, "_send_keyframe", None)):
        raise PassthroughUnsupported("aiortc.RTCRtpSender has no _send_keyframe")


class MarkerJitterBuffer(JitterBuffer):
    """aiortc's video jitter buffer, but a frame is complete at its last packet (the RTP
    marker bit, RFC 6184 §5.1) rather than when the next frame's first packet arrives,
    which held every frame back by one frame interval (40 ms at 25 fps) per hop. Should
    the marked packet be lost, the next frame's timestamp still completes it."""

    def _remove_frame(self, sequence_number: int) -> JitterFrame | None:
        if self._origin is None:
            return None
        packets: list[Any] = []
        timestamp: int | None = None
        for count in range(self.capacity):
            packet = self._packets[(self._origin + count) % self.capacity]
            if packet is None:
                return None
            if timestamp is None:
                timestamp = packet.timestamp
            elif packet.timestamp != timestamp:
                self.remove(count)
                return JitterFrame(b"".join(x._data for x in packets), timestamp)
            packets.append(packet)
            if packet.marker:
                self.remove(count + 1)
                return JitterFrame(b"".join(x._data for x in packets), timestamp)
        return None


class _NoTransport:
    """Enough of an RTCDtlsTransport for a receiver that is built and never started."""

    state = "new"


class _TapQueue(queue.Queue):  # type: ignore[type-arg]
    """Stands in for the decoder queue: frames go to ``sink`` on the event loop's thread."""

    def __init__(self, sink: FrameSink) -> None:
        super().__init__()
        self.sink = sink

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if item is None:
            super().put(None)  # the stop signal still ends aiortc's decoder thread
            return
        codec, frame = item
        self.sink(str(codec.name), bytes(frame.data), int(frame.timestamp))


def tap_receiver(receiver: RTCRtpReceiver, sink: FrameSink) -> None:
    """Send ``receiver``'s encoded frames to ``sink`` instead of decoding them.

    Call before the receiver starts (in the peer connection's ``track`` event, which
    fires during setRemoteDescription, before ICE and DTLS connect)."""
    if getattr(receiver, _STARTED, True):
        raise PassthroughUnsupported("the receiver already started: tap it earlier")
    if not isinstance(getattr(receiver, _DECODER_QUEUE, None), queue.Queue):
        raise PassthroughUnsupported(f"aiortc.RTCRtpReceiver has no {_DECODER_QUEUE} queue")
    if not isinstance(getattr(receiver, _JITTER_BUFFER, None), JitterBuffer):
        raise PassthroughUnsupported(f"aiortc.RTCRtpReceiver has no {_JITTER_BUFFER}")
    setattr(receiver, _DECODER_QUEUE, _TapQueue(sink))
    if getattr(receiver, _KIND, None) == "video":
        old = getattr(receiver, _JITTER_BUFFER)
        setattr(receiver, _JITTER_BUFFER, MarkerJitterBuffer(old.capacity, is_video=True))


async def request_keyframe(receiver: RTCRtpReceiver) -> bool:
    """Ask the sender for a keyframe (RTCP PLI); False when no stream arrived yet."""
    sources = receiver.getSynchronizationSources()
    if not sources:
        return False
    for s in sources:
        await receiver._send_rtcp_pli(s.source)
    return True


def on_keyframe_request(sender: RTCRtpSender, callback: Callable[[], None]) -> None:
    """Call ``callback`` when ``sender``'s viewer asks for a keyframe (RTCP PLI or FIR).

    aiortc answers those by making its own encoder's next frame a keyframe; a forwarded
    stream has no encoder here, so the request must go on to the publisher."""
    original = getattr(sender, "_send_keyframe", None)
    if not callable(original):
        raise PassthroughUnsupported("aiortc.RTCRtpSender has no _send_keyframe")

    def send_keyframe() -> None:
        original()
        callback()

    sender._send_keyframe = send_keyframe  # type: ignore[method-assign]


class EncodedTrack(MediaStreamTrack):
    """A track of encoded frames for one viewer, packetized by aiortc without encoding.

    Bounded by count and by age: when the viewer's connection cannot keep up, the
    backlog is dropped and the track waits for the next keyframe (video) rather than
    grow, fall seconds behind live, or send a broken picture. ``on_gap`` is told when
    video was dropped, so the relay can ask the publisher for that keyframe instead of
    waiting a whole GOP.
    """

    MAX_QUEUE = 120
    # A commander watching a terminal wants the present: a backlog older than this is
    # worth less than a fresh keyframe.
    MAX_LAG_S = 0.5

    def __init__(
        self,
        kind: str,
        time_base: fractions.Fraction,
        on_gap: Callable[[], None] | None = None,
    ) -> None:
        super().__init__()
        self.kind = kind
        self.time_base = time_base
        self.on_gap = on_gap
        self._queue: asyncio.Queue[tuple[bytes, int] | None] = asyncio.Queue()
        # Arrival time of each queued frame, oldest first (the queue's own order).
        self._arrivals: collections.deque[float] = collections.deque()
        self.need_keyframe = kind == "video"
        self.dropped = 0
        self.sent = 0
        # Timestamps only rise: a new source feeding this track (a second commander on
        # a talkback leg) starts its clock at 0 again.
        self._offset = 0
        self._last: int | None = None
        self._step = 3000 if kind == "video" else 960

    def push(self, data: bytes, pts: int, keyframe: bool) -> None:
        if self.readyState != "live":
            return
        if self.need_keyframe:
            if not keyframe:
                self.dropped += 1
                return
            self.need_keyframe = False
        now = time.monotonic()
        if self._queue.qsize() >= self.MAX_QUEUE or (
            self._arrivals and now - self._arrivals[0] > self.MAX_LAG_S
        ):
            self.dropped += self._queue.qsize()
            while not self._queue.empty():
                self._queue.get_nowait()
            self._arrivals.clear()
            if self.kind == "video":
                self.need_keyframe = not keyframe
                if not keyframe:
                    self.dropped += 1
                    if self.on_gap is not None:
                        self.on_gap()
                    return
        if self._last is not None and pts + self._offset <= self._last:
            self._offset = self._last + self._step - pts
        self._last = pts + self._offset
        self._queue.put_nowait((data, self._last))
        self._arrivals.append(now)

    def end(self) -> None:
        self._queue.put_nowait(None)

    async def recv(self) -> av.Packet[Any]:
        if self.readyState != "live":
            raise MediaStreamError
        item = await self._queue.get()
        if item is None:
            self.stop()
            raise MediaStreamError
        data, pts = item
        self._arrivals.popleft()
        packet: av.Packet[Any] = av.Packet(data)
        packet.pts = pts
        packet.time_base = self.time_base
        self.sent += 1
        return packet
