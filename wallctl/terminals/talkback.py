"""Talkback: the commander's microphone back to a terminal, the other half of the voice link.

A WHIP session is publish-only (RFC 9725), so talkback is its own pair of legs: the
terminal listens with a WHEP-style session (``POST /whep/talkback/<id>``, its own bearer
token, an audio receive-only offer), and a commander speaks from the browser with a
WHIP-style session (``POST /talkback/<id>``, an operator's API token, an Opus send
offer). The commander's Opus frames are forwarded as they are to every listening session
of that terminal. One speaker per terminal: a second commander replaces the first.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCPeerConnection, RTCSessionDescription

from wallctl.logs import get_logger
from wallctl.terminals import sdp
from wallctl.terminals.ice import IcePortsExhausted
from wallctl.terminals.passthrough import AUDIO_TIME_BASE, EncodedTrack, tap_receiver
from wallctl.terminals.relay import Relay, RelayError, _prefer

log = get_logger("wallctl.terminals.talkback")

MAX_LISTENERS = 4


def check_audio_only(offer: sdp.Offer, *, sending: bool) -> None:
    problems: list[str] = []
    if [m.kind for m in offer.media] != ["audio"]:
        problems.append("talkback takes exactly one audio section")
    for m in offer.media:
        if m.kind == "audio" and not any(c.lower() == "opus" for c in m.codecs):
            problems.append(f"audio needs Opus, offered: {', '.join(m.codecs) or 'none'}")
        bad = ("recvonly", "inactive") if sending else ("sendonly", "inactive")
        if m.direction in bad:
            problems.append(f"{m.kind} section is {m.direction}")
    if problems:
        raise sdp.UnsupportedOffer("; ".join(problems))


@dataclass(eq=False)
class Leg:
    id: str
    terminal: str  # case-folded id
    role: str  # "speaker" (a commander) or "listener" (the terminal)
    pc: RTCPeerConnection
    who: str
    track: EncodedTrack | None = None
    frames: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class Talkback:
    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.speakers: dict[str, Leg] = {}
        self.listeners: dict[str, list[Leg]] = {}
        self.legs: dict[str, Leg] = {}

    def _event(self, type_: str, leg: Leg, **data: Any) -> None:
        if self.relay.bus is not None:
            self.relay.bus.publish(
                "terminal", type_, {"terminal": leg.terminal, "by": leg.who, **data}
            )

    async def speak(self, terminal: str, account: str, offer_sdp: str) -> tuple[Leg, str]:
        """A commander's microphone for ``terminal``."""
        check_audio_only(sdp.parse_offer(offer_sdp), sending=True)
        key = terminal.lower()
        pc = self.relay.peer_connection()
        leg = Leg(secrets.token_urlsafe(12), key, "speaker", pc, account)
        t = pc.addTransceiver("audio", direction="recvonly")
        _prefer(t)
        tap_receiver(t.receiver, lambda codec, data, ts: self._forward(leg, data, ts))
        answer = await self._answer(pc, offer_sdp)
        old = self.speakers.get(key)
        if old is not None:
            await self.end(old.id, "replaced")
        self.speakers[key] = self.legs[leg.id] = leg
        self._watch(leg)
        log.info("talkback started", terminal=key, account=account)
        self._event("terminal.talkback", leg, state="started")
        return leg, answer

    async def listen(self, terminal: str, offer_sdp: str) -> tuple[Leg, str]:
        """The terminal's loudspeaker: what commanders say to it from now on."""
        check_audio_only(sdp.parse_offer(offer_sdp), sending=False)
        key = terminal.lower()
        if len(self.listeners.get(key, [])) >= MAX_LISTENERS:
            raise RelayError(503, f"{MAX_LISTENERS} talkback listeners for {terminal} already")
        pc = self.relay.peer_connection()
        track = EncodedTrack("audio", AUDIO_TIME_BASE)
        leg = Leg(secrets.token_urlsafe(12), key, "listener", pc, terminal, track)
        _prefer(pc.addTransceiver(track, direction="sendonly"))
        answer = await self._answer(pc, offer_sdp)
        self.listeners.setdefault(key, []).append(leg)
        self.legs[leg.id] = leg
        self._watch(leg)
        return leg, answer

    async def _answer(self, pc: RTCPeerConnection, offer_sdp: str) -> str:
        try:
            await pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
            await pc.setLocalDescription(await pc.createAnswer())
        except IcePortsExhausted as e:
            await pc.close()
            raise RelayError(503, str(e)) from None
        except Exception as e:
            await pc.close()
            raise RelayError(400, f"the offer cannot be answered: {e}") from None
        return self.relay.announce(str(pc.localDescription.sdp))

    def _watch(self, leg: Leg) -> None:
        @leg.pc.on("connectionstatechange")
        async def on_state() -> None:
            if leg.pc.connectionState in ("failed", "closed"):
                await self.end(leg.id, leg.pc.connectionState)

    def _forward(self, leg: Leg, data: bytes, ts: int) -> None:
        if self.speakers.get(leg.terminal) is not leg:
            return
        leg.frames += 1
        for listener in self.listeners.get(leg.terminal, []):
            if listener.track is not None:
                listener.track.push(data, ts, True)

    async def end(self, leg_id: str, reason: str = "deleted") -> bool:
        leg = self.legs.pop(leg_id, None)
        if leg is None:
            return False
        if leg.role == "speaker":
            if self.speakers.get(leg.terminal) is leg:
                del self.speakers[leg.terminal]
            self._event("terminal.talkback", leg, state="ended", reason=reason)
            log.info("talkback ended", terminal=leg.terminal, reason=reason)
        else:
            legs = self.listeners.get(leg.terminal, [])
            if leg in legs:
                legs.remove(leg)
            if leg.track is not None:
                leg.track.end()
        await leg.pc.close()
        return True

    async def stop(self) -> None:
        for leg_id in list(self.legs):
            await self.end(leg_id, "shutdown")
