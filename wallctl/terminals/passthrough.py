"""Every use of aiortc's internals, in one place: encoded frames in, encoded frames out.

aiortc decodes whatever an ``RTCRtpReceiver`` receives: its jitter buffer hands each
complete frame to a decoder thread through a private queue. Forwarding without
transcoding needs those encoded frames, so :func:`tap_receiver` swaps that queue for one
that hands frames to the relay and never feeds the decoder (whose thread then idles
until the receiver stops). The sending side needs no internals: a track whose ``recv``
returns ``av.Packet`` is packetized as it is (``Encoder.pack``).

Tested against aiortc 1.16 (pyproject pins ``<1.17``); tests/terminals/test_passthrough.py
fails loudly when any of this changes underneath.
"""

from __future__ import annotations

import asyncio
import fractions
import queue
from collections.abc import Callable
from typing import Any

import av
from aiortc import RTCRtpReceiver
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

# The private, name-mangled attribute of RTCRtpReceiver that carries (codec, JitterFrame)
# tuples to the decoder thread; None on it stops that thread.
_DECODER_QUEUE = "_RTCRtpReceiver__decoder_queue"
_STARTED = "_RTCRtpReceiver__started"

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
    if not callable(getattr(probe, "_send_rtcp_pli", None)):
        raise PassthroughUnsupported("aiortc.RTCRtpReceiver has no _send_rtcp_pli")


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
    setattr(receiver, _DECODER_QUEUE, _TapQueue(sink))


async def request_keyframe(receiver: RTCRtpReceiver) -> bool:
    """Ask the sender for a keyframe (RTCP PLI); False when no stream arrived yet."""
    sources = receiver.getSynchronizationSources()
    if not sources:
        return False
    for s in sources:
        await receiver._send_rtcp_pli(s.source)
    return True


class EncodedTrack(MediaStreamTrack):
    """A track of encoded frames for one viewer, packetized by aiortc without encoding.

    Bounded: when the viewer's connection cannot keep up, the backlog is dropped and
    the track waits for the next keyframe (video) rather than grow or send a broken
    picture.
    """

    MAX_QUEUE = 120

    def __init__(self, kind: str, time_base: fractions.Fraction) -> None:
        super().__init__()
        self.kind = kind
        self.time_base = time_base
        self._queue: asyncio.Queue[tuple[bytes, int] | None] = asyncio.Queue()
        self.need_keyframe = kind == "video"
        self.dropped = 0
        self.sent = 0

    def push(self, data: bytes, pts: int, keyframe: bool) -> None:
        if self.readyState != "live":
            return
        if self.need_keyframe:
            if not keyframe:
                self.dropped += 1
                return
            self.need_keyframe = False
        if self._queue.qsize() >= self.MAX_QUEUE:
            self.dropped += self._queue.qsize()
            while not self._queue.empty():
                self._queue.get_nowait()
            if self.kind == "video":
                self.need_keyframe = not keyframe
                if not keyframe:
                    return
        self._queue.put_nowait((data, pts))

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
        packet: av.Packet[Any] = av.Packet(data)
        packet.pts = pts
        packet.time_base = self.time_base
        self.sent += 1
        return packet
