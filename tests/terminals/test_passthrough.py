"""Fails loudly when aiortc changes underneath the relay (wallctl/terminals/passthrough.py).

The relay depends on aiortc's private decoder queue; pyproject pins aiortc below the next
minor version. Raising that pin means running these tests and the netns WebRTC tests.
"""

from __future__ import annotations

import asyncio
import fractions
import queue
import tomllib
from pathlib import Path

import aiortc
import pytest
from aiortc import RTCRtpReceiver
from aiortc.codecs import get_encoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket

from wallctl.terminals import passthrough
from wallctl.terminals.passthrough import (
    EncodedTrack,
    PassthroughUnsupported,
    check_internals,
    tap_receiver,
)

ROOT = Path(__file__).resolve().parents[2]
H264 = RTCRtpCodecParameters(mimeType="video/H264", clockRate=90000, payloadType=102)


def test_aiortc_is_the_pinned_version() -> None:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (spec,) = [d for d in deps if d.startswith("aiortc")]
    assert ">=1.16" in spec and "<1.17" in spec, (
        f"aiortc must stay pinned to 1.16.x (passthrough.py): {spec}"
    )
    major, minor = (int(x) for x in aiortc.__version__.split(".")[:2])
    assert (major, minor) <= (1, 16), (
        f"aiortc {aiortc.__version__} is newer than passthrough.py was checked against"
    )


def test_the_private_decoder_queue_is_still_there() -> None:
    check_internals()


def test_a_tapped_receiver_hands_encoded_frames_over_instead_of_decoding() -> None:
    receiver = RTCRtpReceiver("video", passthrough._NoTransport())  # type: ignore[arg-type]
    got: list[tuple[str, bytes, int]] = []
    tap_receiver(receiver, lambda c, d, t: got.append((c, d, t)))
    q = getattr(receiver, passthrough._DECODER_QUEUE)
    # What aiortc's _handle_rtp_packet puts there for a complete frame.
    q.put((H264, JitterFrame(b"\x00\x00\x00\x01\x65\x88", 3600)))
    assert got == [("H264", b"\x00\x00\x00\x01\x65\x88", 3600)]
    assert q.qsize() == 0, "nothing may reach the decoder thread"
    q.put(None)  # the receiver's stop still reaches the decoder thread
    assert q.get_nowait() is None


def test_tapping_a_receiver_that_changed_shape_fails_loudly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    receiver = RTCRtpReceiver("video", passthrough._NoTransport())  # type: ignore[arg-type]
    monkeypatch.setattr(receiver, passthrough._DECODER_QUEUE, None, raising=False)
    with pytest.raises(PassthroughUnsupported, match="decoder_queue"):
        tap_receiver(receiver, lambda c, d, t: None)
    started = RTCRtpReceiver("video", passthrough._NoTransport())  # type: ignore[arg-type]
    setattr(started, passthrough._STARTED, True)
    with pytest.raises(PassthroughUnsupported, match="already started"):
        tap_receiver(started, lambda c, d, t: None)
    assert isinstance(getattr(started, passthrough._DECODER_QUEUE), queue.Queue)


def test_aiortc_packs_our_packets_without_encoding() -> None:
    """The sending half: Encoder.pack takes an av.Packet as it is."""

    async def one() -> tuple[list[bytes], int]:
        track = EncodedTrack("video", passthrough.VIDEO_TIME_BASE)
        idr = b"\x00\x00\x00\x01\x67\x42\xc0\x1e" + b"\x00\x00\x00\x01\x65" + b"\x88" * 3000
        track.push(idr, 9000, True)
        packet = await track.recv()
        return get_encoder(H264).pack(packet)

    payloads, timestamp = asyncio.run(one())
    assert timestamp == 9000
    assert len(payloads) >= 3  # STAP/FU-A fragments of a 3 kB picture, never re-encoded


async def test_a_viewer_track_starts_at_a_keyframe_and_drops_a_backlog() -> None:
    track = EncodedTrack("video", fractions.Fraction(1, 90000))
    track.push(b"\x00\x00\x01\x41", 0, False)  # a P-frame before any keyframe: useless
    track.push(b"\x00\x00\x01\x65", 3600, True)
    p = await track.recv()
    assert bytes(p) == b"\x00\x00\x01\x65" and p.pts == 3600
    for i in range(EncodedTrack.MAX_QUEUE + 5):
        track.push(b"\x00\x00\x01\x41", 7200 + i, False)
    # Past the bound: the backlog is gone and the track waits for the next keyframe.
    assert track._queue.qsize() < EncodedTrack.MAX_QUEUE
    assert track.need_keyframe and track.dropped >= EncodedTrack.MAX_QUEUE
    track.end()


async def test_a_viewer_falling_behind_live_skips_to_a_fresh_keyframe(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A backlog older than MAX_LAG_S is dropped even when short, and the publisher is
    asked for a keyframe at once instead of the viewer waiting a whole GOP."""
    clock = [100.0]
    monkeypatch.setattr(passthrough.time, "monotonic", lambda: clock[0])
    gaps: list[int] = []
    track = EncodedTrack("video", fractions.Fraction(1, 90000), on_gap=lambda: gaps.append(1))
    track.push(b"\x00\x00\x01\x65", 0, True)
    track.push(b"\x00\x00\x01\x41", 3600, False)
    clock[0] += EncodedTrack.MAX_LAG_S / 2
    track.push(b"\x00\x00\x01\x41", 7200, False)
    assert track._queue.qsize() == 3 and gaps == []  # young enough: kept
    clock[0] += EncodedTrack.MAX_LAG_S
    track.push(b"\x00\x00\x01\x41", 10800, False)
    assert track._queue.qsize() == 0 and track.need_keyframe and gaps == [1]
    assert track.dropped == 4
    track.push(b"\x00\x00\x01\x41", 14400, False)  # still no keyframe: nothing queued
    assert track._queue.qsize() == 0
    track.push(b"\x00\x00\x01\x65", 18000, True)
    p = await track.recv()
    assert bytes(p) == b"\x00\x00\x01\x65" and not track.need_keyframe
    track.end()


async def test_a_viewers_picture_loss_request_reaches_the_callback() -> None:
    """RTCP PLI from a viewer: aiortc's sender would re-encode; ours asks the publisher."""
    from aiortc import RTCRtpSender
    from aiortc.rtp import RTCP_PSFB_PLI, RtcpPsfbPacket

    sender = RTCRtpSender("video", passthrough._NoTransport())  # type: ignore[arg-type]
    asked: list[int] = []
    passthrough.on_keyframe_request(sender, lambda: asked.append(1))
    await sender._handle_rtcp_packet(
        RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=1, media_ssrc=sender._ssrc)
    )
    assert asked == [1]


def _rtp(seq: int, ts: int, data: bytes, marker: bool) -> RtpPacket:
    p = RtpPacket(payload_type=102, sequence_number=seq, timestamp=ts, marker=marker)
    p._data = data  # type: ignore[attr-defined]
    return p


def test_a_frame_is_complete_at_its_marked_last_packet() -> None:
    jb = passthrough.MarkerJitterBuffer(512, is_video=True)
    assert jb.add(_rtp(100, 3000, b"a", False)) == (False, None)
    _, frame = jb.add(_rtp(101, 3000, b"b", True))
    # Out at once, not when the next frame's first packet comes (aiortc's own buffer).
    assert frame is not None and (frame.data, frame.timestamp) == (b"ab", 3000)
    # A lost marker: the next frame's timestamp completes the frame.
    jb.add(_rtp(102, 6000, b"c", False))
    _, frame = jb.add(_rtp(103, 9000, b"d", True))
    assert frame is not None and (frame.data, frame.timestamp) == (b"c", 6000)
    # One frame per packet, as aiortc's: the next packet catches up.
    _, frame = jb.add(_rtp(104, 12000, b"e1", False))
    assert frame is not None and frame.data == b"d"
    # A gap: nothing until the missing packet arrives, then the frame is whole.
    assert jb.add(_rtp(106, 15000, b"f", True)) == (False, None)
    _, frame = jb.add(_rtp(105, 12000, b"e2", True))
    assert frame is not None and (frame.data, frame.timestamp) == (b"e1e2", 12000)


def test_the_tapped_video_receiver_uses_the_marker_aware_buffer() -> None:
    receiver = RTCRtpReceiver("video", passthrough._NoTransport())  # type: ignore[arg-type]
    tap_receiver(receiver, lambda c, d, t: None)
    assert isinstance(getattr(receiver, passthrough._JITTER_BUFFER), passthrough.MarkerJitterBuffer)
    audio = RTCRtpReceiver("audio", passthrough._NoTransport())  # type: ignore[arg-type]
    tap_receiver(audio, lambda c, d, t: None)
    assert not isinstance(
        getattr(audio, passthrough._JITTER_BUFFER), passthrough.MarkerJitterBuffer
    )
