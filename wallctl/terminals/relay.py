"""The relay: WHIP publishers in, WHEP viewers and local consumers out, no transcoding.

Each publisher's receivers are tapped (passthrough.py): every complete encoded frame is
handed, on the event loop, to each viewer's :class:`EncodedTrack`, to the recorder and to
the byte feeds the wall's decoder reads (``feed``). Nothing here decodes: the wall's
SourceHub decodes a terminal once, and only while a window shows it.

One publication per terminal: a second publish with the same identity replaces the
first (a phone that changed network and published again without DELETE is the usual
cause), which ends with reason ``replaced``. A publisher whose video stops for
``inactivity_s`` is unpublished with reason ``inactive`` — ICE consent failure would
take about 30 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.rtcrtpparameters import RTCRtpCodecCapability

from wallctl.bus import EventBus
from wallctl.logs import get_logger
from wallctl.terminals import sdp
from wallctl.terminals.config import TerminalsConfig
from wallctl.terminals.h264 import is_keyframe
from wallctl.terminals.ice import IcePolicy, IcePortsExhausted
from wallctl.terminals.identities import TerminalInfo, source_of
from wallctl.terminals.passthrough import (
    AUDIO_TIME_BASE,
    VIDEO_TIME_BASE,
    EncodedTrack,
    on_keyframe_request,
    request_keyframe,
    tap_receiver,
)

log = get_logger("wallctl.terminals")

WATCH_S = 0.25
# Keyframes asked of a publisher on viewers' behalf: at most one per this interval.
KEYFRAME_INTERVAL_S = 0.5
# Bytes of Annex-B queued for one local feed before it is cut off (a stuck reader).
FEED_MAX_QUEUE = 256


class RelayError(Exception):
    """Refused with an HTTP status and a reason a person can act on."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# Told about every frame of a publication: (publication, kind, data, pts, keyframe).
FrameListener = Callable[["Publication", str, bytes, int, bool], None]


@dataclass(eq=False)
class Viewer:
    id: str
    source: str
    pc: RTCPeerConnection
    video: EncodedTrack
    audio: EncodedTrack | None
    started: float = field(default_factory=time.time)


@dataclass(eq=False)
class Publication:
    id: str
    terminal: TerminalInfo
    pc: RTCPeerConnection
    started: float = field(default_factory=time.time)
    connected_at: float | None = None
    last_video: float | None = None  # monotonic
    video_receiver: RTCRtpReceiver | None = None
    audio_receiver: RTCRtpReceiver | None = None
    viewers: dict[str, Viewer] = field(default_factory=dict)
    feeds: list[asyncio.Queue[bytes | None]] = field(default_factory=list)
    frames: int = 0
    keyframes: int = 0
    bytes: int = 0
    codecs: set[str] = field(default_factory=set)
    last_keyframe_request: float = 0.0

    @property
    def source(self) -> str:
        return source_of(self.terminal.id)

    def info(self) -> dict[str, Any]:
        return {
            "terminal": self.terminal.id,
            "name": self.terminal.name,
            "source": self.source,
            "session": self.id,
            "started": round(self.started, 3),
            "frames": self.frames,
            "keyframes": self.keyframes,
            "bytes": self.bytes,
            "viewers": len(self.viewers),
            "codecs": sorted(self.codecs),
        }


def _codecs(kind: str, mime: str) -> list[RTCRtpCodecCapability]:
    caps = RTCRtpReceiver.getCapabilities(kind)
    assert caps is not None
    return [c for c in caps.codecs if c.mimeType.lower() in (mime.lower(), f"{kind}/rtx")]


def _prefer(transceiver: RTCRtpTransceiver) -> None:
    if transceiver.kind == "video":
        transceiver.setCodecPreferences(_codecs("video", "video/H264"))
    elif transceiver.kind == "audio":
        transceiver.setCodecPreferences(_codecs("audio", "audio/opus"))


class Relay:
    def __init__(self, config: TerminalsConfig, bus: EventBus | None = None) -> None:
        self.config = config
        self.bus = bus
        self.ice = IcePolicy(config)
        self.publications: dict[str, Publication] = {}  # by terminal id (case folded)
        self.viewers: dict[str, Viewer] = {}
        self.listeners: list[FrameListener] = []
        self.on_unpublish: list[Callable[[Publication, str], None]] = []
        self._watch: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[Any]] = set()

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        self._watch = asyncio.create_task(self._watchdog(), name="terminals-watch")

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        for pub in list(self.publications.values()):
            await self.unpublish(pub, "shutdown")
        for v in list(self.viewers.values()):
            await self.end_view(v.id)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    def rtc_configuration(self) -> RTCConfiguration:
        # The configured ICE servers only, never aiortc's default public STUN server.
        return self.ice.configuration()

    def peer_connection(self) -> RTCPeerConnection:
        """A peer connection with the site's ICE servers, in terminals.ice_port_range."""
        return self.ice.peer_connection()

    def announce(self, answer: str) -> str:
        return sdp.announce_addresses(answer, [str(a) for a in self.config.announced_addresses])

    # --- publishing ----------------------------------------------------------------------

    def publication(self, terminal: str) -> Publication | None:
        return self.publications.get(terminal.lower())

    def by_source(self, source: str) -> Publication | None:
        for pub in self.publications.values():
            if pub.source.lower() == source.lower():
                return pub
        return None

    async def publish(self, terminal: TerminalInfo, offer_sdp: str) -> tuple[Publication, str]:
        """Answer a WHIP offer; the publication is live once its first frame arrives."""
        offer = sdp.parse_offer(offer_sdp)
        sdp.check_publish(offer)
        old = self.publication(terminal.id)
        if old is None and len(self.publications) >= self.config.max_publishers:
            raise RelayError(
                503,
                f"{self.config.max_publishers} terminals publish already "
                "(terminals.max_publishers)",
            )
        pc = self.peer_connection()
        pub = Publication(secrets.token_urlsafe(12), terminal, pc)

        @pc.on("track")
        def on_track(track: Any) -> None:
            for t in pc.getTransceivers():
                if t.receiver.track is track:
                    self._tap(pub, t)

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            state = pc.connectionState
            if state == "connected" and pub.connected_at is None:
                pub.connected_at = time.monotonic()
            if (
                state in ("failed", "closed")
                and self.publications.get(pub.terminal.id.lower()) is pub
            ):
                await self.unpublish(pub, "failed" if state == "failed" else "closed")

        try:
            # Made before the offer is applied, so aiortc answers with our codecs only
            # (it negotiates in setRemoteDescription, reusing these transceivers).
            for m in offer.media:
                _prefer(pc.addTransceiver(m.kind, direction="recvonly"))
            await pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
            await pc.setLocalDescription(await pc.createAnswer())
        except IcePortsExhausted as e:
            await pc.close()
            raise RelayError(503, str(e)) from None
        except Exception as e:
            await pc.close()
            raise RelayError(400, f"the offer cannot be answered: {e}") from None
        if old is not None:
            await self.unpublish(old, "replaced")
        self.publications[terminal.id.lower()] = pub
        log.info("terminal publishing", terminal=terminal.id, session=pub.id)
        self._publish_event("terminal.published", pub, None)
        return pub, self.announce(pc.localDescription.sdp)

    def _tap(self, pub: Publication, transceiver: RTCRtpTransceiver) -> None:
        receiver = transceiver.receiver
        if transceiver.kind == "video":
            pub.video_receiver = receiver
        else:
            pub.audio_receiver = receiver
        tap_receiver(receiver, lambda codec, data, ts: self._on_frame(pub, codec, data, ts))

    def _on_frame(self, pub: Publication, codec: str, data: bytes, ts: int) -> None:
        if self.publications.get(pub.terminal.id.lower()) is not pub:
            return
        kind = "audio" if codec.lower() == "opus" else "video"
        pub.codecs.add(codec)
        keyframe = kind == "video" and is_keyframe(data)
        if kind == "video":
            pub.last_video = time.monotonic()
            pub.frames += 1
            pub.keyframes += keyframe
        pub.bytes += len(data)
        for v in pub.viewers.values():
            track = v.video if kind == "video" else v.audio
            if track is not None:
                track.push(data, ts, keyframe)
        if kind == "video":
            for q in list(pub.feeds):
                if q.qsize() >= FEED_MAX_QUEUE:
                    pub.feeds.remove(q)
                    q.put_nowait(None)
                else:
                    q.put_nowait(data)
        for listener in self.listeners:
            try:
                listener(pub, kind, data, ts, keyframe)
            except Exception:
                log.exception("frame listener failed", source=pub.source)

    async def unpublish(self, pub: Publication, reason: str) -> None:
        if self.publications.get(pub.terminal.id.lower()) is pub:
            del self.publications[pub.terminal.id.lower()]
        else:
            return
        log.info("terminal unpublished", terminal=pub.terminal.id, session=pub.id, reason=reason)
        for v in list(pub.viewers.values()):
            v.video.end()
            if v.audio is not None:
                v.audio.end()
        for q in pub.feeds:
            q.put_nowait(None)
        pub.feeds.clear()
        for cb in self.on_unpublish:
            try:
                cb(pub, reason)
            except Exception:
                log.exception("unpublish listener failed", source=pub.source)
        self._publish_event("terminal.unpublished", pub, reason)
        task = asyncio.create_task(pub.pc.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def end_publish(self, terminal: str, session: str) -> bool:
        pub = self.publication(terminal)
        if pub is None or pub.id != session:
            return False
        await self.unpublish(pub, "deleted")
        return True

    def _publish_event(self, type_: str, pub: Publication, reason: str | None) -> None:
        if self.bus is None:
            return
        data = pub.info()
        if reason is not None:
            data["reason"] = reason
        self.bus.publish("terminal", type_, data)

    async def _watchdog(self) -> None:
        while True:
            await asyncio.sleep(WATCH_S)
            now = time.monotonic()
            limit = self.config.inactivity_s
            for pub in list(self.publications.values()):
                # Until the first frame, the time since connecting counts (a phone that
                # completes ICE and sends nothing); before connecting, since the answer
                # (ICE that never completes).
                since = pub.last_video or pub.connected_at
                if since is None:
                    since_wall = pub.started
                    if time.time() - since_wall > max(limit, 10.0) * 3:
                        await self.unpublish(pub, "never_connected")
                    continue
                if now - since > limit:
                    await self.unpublish(pub, "inactive")

    # --- viewing -------------------------------------------------------------------------

    async def view(self, source: str, offer_sdp: str) -> tuple[Viewer, str]:
        offer = sdp.parse_offer(offer_sdp)
        pub = self.by_source(source)
        if pub is None:
            raise RelayError(404, f"source {source!r} is not publishing")
        sdp.check_view(offer)
        if len(pub.viewers) >= self.config.max_viewers:
            raise RelayError(
                503, f"{source} has {len(pub.viewers)} viewers already (terminals.max_viewers)"
            )
        pc = self.peer_connection()
        video = EncodedTrack("video", VIDEO_TIME_BASE, on_gap=lambda: self._keyframe_for(viewer))
        audio: EncodedTrack | None = None
        viewer = Viewer(secrets.token_urlsafe(12), pub.source, pc, video, None)
        try:
            for m in offer.media:
                if m.kind == "video":
                    t = pc.addTransceiver(video, direction="sendonly")
                    _prefer(t)
                    on_keyframe_request(t.sender, lambda: self._keyframe_for(viewer))
                else:
                    audio = EncodedTrack("audio", AUDIO_TIME_BASE)
                    _prefer(pc.addTransceiver(audio, direction="sendonly"))
            viewer.audio = audio
            await pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
            await pc.setLocalDescription(await pc.createAnswer())
        except IcePortsExhausted as e:
            await pc.close()
            raise RelayError(503, str(e)) from None
        except Exception as e:
            await pc.close()
            raise RelayError(400, f"the offer cannot be answered: {e}") from None

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                await self.end_view(viewer.id)
            elif pc.connectionState == "connected" and pub.video_receiver is not None:
                # A picture at once: the publisher's next frame is a keyframe.
                await request_keyframe(pub.video_receiver)

        pub.viewers[viewer.id] = viewer
        self.viewers[viewer.id] = viewer
        if pub.video_receiver is not None:
            await request_keyframe(pub.video_receiver)
        log.info("viewer joined", source=pub.source, viewer=viewer.id, viewers=len(pub.viewers))
        return viewer, self.announce(pc.localDescription.sdp)

    def _keyframe_for(self, viewer: Viewer) -> None:
        """A viewer lost pictures: ask the publisher for a keyframe, at most every
        KEYFRAME_INTERVAL_S whoever asks (each keyframe costs the phone bandwidth)."""
        pub = self.by_source(viewer.source)
        if pub is None or pub.video_receiver is None:
            return
        now = time.monotonic()
        if now - pub.last_keyframe_request < KEYFRAME_INTERVAL_S:
            return
        pub.last_keyframe_request = now
        task = asyncio.ensure_future(request_keyframe(pub.video_receiver))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def end_view(self, viewer_id: str) -> bool:
        viewer = self.viewers.pop(viewer_id, None)
        if viewer is None:
            return False
        pub = self.by_source(viewer.source)
        if pub is not None:
            pub.viewers.pop(viewer_id, None)
        viewer.video.end()
        if viewer.audio is not None:
            viewer.audio.end()
        await viewer.pc.close()
        log.info("viewer left", source=viewer.source, viewer=viewer.id)
        return True

    # --- local feeds (the wall's decoder) -------------------------------------------------

    async def open_feed(self, terminal: str) -> asyncio.Queue[bytes | None] | None:
        """Annex-B access units of ``terminal``'s video from its next keyframe on."""
        pub = self.publication(terminal)
        if pub is None:
            return None
        q: asyncio.Queue[bytes | None] = asyncio.Queue()
        pub.feeds.append(q)
        if pub.video_receiver is not None:
            await request_keyframe(pub.video_receiver)
        return q

    def close_feed(self, terminal: str, q: asyncio.Queue[bytes | None]) -> None:
        pub = self.publication(terminal)
        if pub is not None and q in pub.feeds:
            pub.feeds.remove(q)
