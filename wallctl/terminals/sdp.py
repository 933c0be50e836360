"""What a WHIP/WHEP offer asks for, checked before aiortc sees it (sans-I/O).

aiortc's own parser accepts much that cannot work (no ICE credentials, no fingerprint)
and fails later with an exception that says little; a phone's integrator needs the
reason in the 400 answer. The relay forwards what it receives, so only codecs every
viewer can take are accepted: H.264 video and Opus audio.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_SDP_BYTES = 64 * 1024
MAX_MEDIA_SECTIONS = 8
VIDEO_CODEC = "H264"
AUDIO_CODEC = "opus"

_RTPMAP = re.compile(r"^a=rtpmap:(\d{1,3}) ([A-Za-z0-9_.\-]+)/(\d+)")
_MEDIA = re.compile(r"^m=(\w+) (\d+) ([A-Za-z/]+)( [0-9A-Za-z ]+)?$")


class OfferError(ValueError):
    """The offer is malformed (HTTP 400)."""


class UnsupportedOffer(ValueError):
    """A well-formed offer with no codec the relay can take (HTTP 406)."""


@dataclass
class MediaSection:
    kind: str
    codecs: list[str] = field(default_factory=list)
    direction: str = "sendrecv"


@dataclass
class Offer:
    media: list[MediaSection]

    @property
    def kinds(self) -> list[str]:
        return [m.kind for m in self.media]


def parse_offer(text: str) -> Offer:
    """The media sections of ``text``; OfferError says what is wrong with it."""
    if len(text.encode("utf-8", "replace")) > MAX_SDP_BYTES:
        raise OfferError(f"SDP larger than {MAX_SDP_BYTES} bytes")
    lines = [ln.rstrip("\r") for ln in text.split("\n") if ln.strip()]
    if not lines:
        raise OfferError("empty SDP")
    if lines[0] != "v=0":
        raise OfferError("SDP must start with v=0")
    for ln in lines:
        if len(ln) < 2 or ln[1] != "=" or not ln[0].isalpha():
            raise OfferError(f"not an SDP line: {ln[:40]!r}")
    session: list[str] = []
    media: list[tuple[MediaSection, list[str]]] = []
    for ln in lines:
        if ln.startswith("m="):
            m = _MEDIA.match(ln)
            if m is None:
                raise OfferError(f"malformed media line: {ln[:60]!r}")
            media.append((MediaSection(m.group(1)), []))
        elif media:
            media[-1][1].append(ln)
        else:
            session.append(ln)
    if not media:
        raise OfferError("SDP has no media section (m= line)")
    if len(media) > MAX_MEDIA_SECTIONS:
        raise OfferError(f"more than {MAX_MEDIA_SECTIONS} media sections")
    has = {key: any(ln.startswith(key) for ln in session) for key in _REQUIRED}
    for section, attrs in media:
        for key, what in _REQUIRED.items():
            if not has[key] and not any(a.startswith(key) for a in attrs):
                raise OfferError(f"{section.kind} section has no {what} ({key})")
        for a in attrs:
            rm = _RTPMAP.match(a)
            if rm is not None:
                section.codecs.append(rm.group(2))
            elif a in ("a=sendrecv", "a=sendonly", "a=recvonly", "a=inactive"):
                section.direction = a[2:]
    return Offer([s for s, _ in media])


_REQUIRED = {
    "a=ice-ufrag:": "ICE username fragment",
    "a=ice-pwd:": "ICE password",
    "a=fingerprint:": "DTLS fingerprint",
}


def _has(codecs: list[str], name: str) -> bool:
    return any(c.lower() == name.lower() for c in codecs)


def check_publish(offer: Offer) -> None:
    """A WHIP offer: H.264 video (required), Opus audio (optional), sending."""
    problems: list[str] = []
    video = [m for m in offer.media if m.kind == "video"]
    if not video:
        problems.append("no video section: a terminal must send H.264 video")
    for m in offer.media:
        if m.kind == "video" and not _has(m.codecs, VIDEO_CODEC):
            problems.append(f"video needs H.264, offered: {', '.join(m.codecs) or 'none'}")
        elif m.kind == "audio" and not _has(m.codecs, AUDIO_CODEC):
            problems.append(f"audio needs Opus, offered: {', '.join(m.codecs) or 'none'}")
        elif m.kind not in ("audio", "video"):
            problems.append(f"{m.kind} sections are not taken")
    if sum(1 for m in offer.media if m.kind == "video") > 1:
        problems.append("more than one video section")
    if sum(1 for m in offer.media if m.kind == "audio") > 1:
        problems.append("more than one audio section")
    for m in offer.media:
        if m.direction in ("recvonly", "inactive"):
            problems.append(f"{m.kind} section is {m.direction}: a WHIP offer sends")
    if problems:
        raise UnsupportedOffer("; ".join(problems))


def check_view(offer: Offer) -> None:
    """A WHEP offer: receives H.264 video and maybe Opus audio."""
    problems: list[str] = []
    if not any(m.kind == "video" for m in offer.media):
        problems.append("no video section: a viewer must receive video")
    for m in offer.media:
        if m.kind == "video" and not _has(m.codecs, VIDEO_CODEC):
            problems.append(f"video needs H.264, offered: {', '.join(m.codecs) or 'none'}")
        elif m.kind == "audio" and not _has(m.codecs, AUDIO_CODEC):
            problems.append(f"audio needs Opus, offered: {', '.join(m.codecs) or 'none'}")
        elif m.kind not in ("audio", "video"):
            problems.append(f"{m.kind} sections are not taken")
        elif m.direction in ("sendonly", "inactive"):
            problems.append(f"{m.kind} section is {m.direction}: a WHEP offer receives")
    if problems:
        raise UnsupportedOffer("; ".join(problems))


def announce_addresses(answer: str, addresses: list[str]) -> str:
    """``answer`` with each UDP host candidate also offered at ``addresses`` (same port).

    For a daemon behind a 1:1 NAT or a published address that its own interfaces do not
    show: the peer sends its checks there and the NAT forwards them to the socket that
    gathered the original candidate, which answers whatever address the peer used."""
    if not addresses:
        return answer
    out: list[str] = []
    eol = "\r\n" if "\r\n" in answer else "\n"
    for line in answer.split(eol):
        out.append(line)
        parts = line.split()
        # a=candidate:<foundation> <component> udp <priority> <address> <port> typ host
        if (
            line.startswith("a=candidate:")
            and len(parts) >= 8
            and parts[2].lower() == "udp"
            and parts[6] == "typ"
            and parts[7] == "host"
        ):
            for n, address in enumerate(addresses, start=1):
                extra = list(parts)
                extra[0] = f"{parts[0]}{n}"  # a foundation of its own
                extra[3] = str(max(1, int(parts[3]) - n))  # just below the original
                extra[4] = address
                out.append(" ".join(extra))
    return eol.join(out)
