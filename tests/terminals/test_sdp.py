"""The offer checks in front of aiortc: each bad offer gets its own reason."""

from __future__ import annotations

import pytest

from wallctl.terminals import sdp
from wallctl.terminals.h264 import is_keyframe, nal_types

SESSION = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
CREDS = "a=ice-ufrag:abcd\r\na=ice-pwd:0123456789012345678901\r\na=fingerprint:sha-256 AA:BB\r\n"


def media(kind: str, codecs: list[str], direction: str = "sendonly") -> str:
    pts = " ".join(str(96 + i) for i in range(len(codecs)))
    lines = [f"m={kind} 9 UDP/TLS/RTP/SAVPF {pts}", "c=IN IP4 0.0.0.0", f"a={direction}"]
    clock = "48000/2" if kind == "audio" else "90000"
    lines += [f"a=rtpmap:{96 + i} {c}/{clock}" for i, c in enumerate(codecs)]
    return "\r\n".join(lines) + "\r\n"


def offer(*sections: str, creds: str = CREDS) -> str:
    return SESSION + creds + "".join(sections)


def test_a_phone_offer_with_h264_and_opus_passes() -> None:
    o = sdp.parse_offer(offer(media("video", ["VP8", "H264", "rtx"]), media("audio", ["opus"])))
    assert o.kinds == ["video", "audio"]
    assert o.media[0].codecs == ["VP8", "H264", "rtx"]
    assert o.media[0].direction == "sendonly"
    sdp.check_publish(o)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty SDP"),
        ("hello\r\n", "must start with v=0"),
        ("v=0\r\nthis is not sdp\r\n", "not an SDP line"),
        (SESSION + CREDS, "no media section"),
        (offer("m=video nine UDP\r\n"), "malformed media line"),
        (offer(media("video", ["H264"]), creds=""), "ICE username fragment"),
        (
            offer(media("video", ["H264"]), creds=CREDS.replace("a=fingerprint", "a=x")),
            "DTLS fingerprint",
        ),
        (offer(media("video", ["H264"]) * 9), "more than 8 media sections"),
        ("v=0\r\n" + "a=x:" + "y" * 70000 + "\r\n", "larger than"),
    ],
)
def test_malformed_offers_say_why(text: str, reason: str) -> None:
    with pytest.raises(sdp.OfferError, match=reason):
        sdp.parse_offer(text)


@pytest.mark.parametrize(
    ("sections", "reason"),
    [
        ([media("video", ["VP8", "VP9"])], "video needs H.264, offered: VP8, VP9"),
        ([media("audio", ["opus"])], "no video section"),
        ([media("video", ["H264"]), media("audio", ["PCMU"])], "audio needs Opus, offered: PCMU"),
        ([media("video", ["H264"], "recvonly")], "video section is recvonly"),
        ([media("video", ["H264"]), media("video", ["H264"])], "more than one video section"),
    ],
)
def test_offers_without_a_codec_we_take_are_refused(sections: list[str], reason: str) -> None:
    with pytest.raises(sdp.UnsupportedOffer, match=reason):
        sdp.check_publish(sdp.parse_offer(offer(*sections)))


def test_a_viewer_must_receive_h264() -> None:
    sdp.check_view(sdp.parse_offer(offer(media("video", ["H264"], "recvonly"))))
    with pytest.raises(sdp.UnsupportedOffer, match=r"video needs H\.264"):
        sdp.check_view(sdp.parse_offer(offer(media("video", ["VP8"], "recvonly"))))
    with pytest.raises(sdp.UnsupportedOffer, match="sendonly"):
        sdp.check_view(sdp.parse_offer(offer(media("video", ["H264"], "sendonly"))))


def test_h264_keyframes_are_told_apart() -> None:
    sps_pps_idr = (
        b"\x00\x00\x00\x01\x67\x42" + b"\x00\x00\x00\x01\x68\xce" + b"\x00\x00\x01\x65\x88"
    )
    p_slice = b"\x00\x00\x00\x01\x41\x9a"
    assert nal_types(sps_pps_idr) == [7, 8, 5]
    assert is_keyframe(sps_pps_idr)
    assert not is_keyframe(p_slice)
    assert nal_types(b"") == [] and not is_keyframe(b"\x00\x00\x01")


def test_the_raw_feed_is_for_this_host_only() -> None:
    from wallctl.terminals.http import _is_loopback

    assert _is_loopback("127.0.0.1") and _is_loopback("127.0.0.2") and _is_loopback("::1")
    assert not _is_loopback("192.0.2.10") and not _is_loopback("10.0.0.1")
    assert not _is_loopback(None) and not _is_loopback("not-an-address")


def test_announced_addresses_join_each_udp_host_candidate() -> None:
    answer = (
        "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 102\r\n"
        "a=candidate:abc 1 udp 2130706431 10.1.2.3 40000 typ host\r\n"
        "a=candidate:def 1 udp 1694498815 198.51.100.1 40002 typ srflx raddr 10.1.2.3 "
        "rport 40000\r\n"
        "a=candidate:ghi 1 tcp 1518280447 10.1.2.3 9 typ host tcptype active\r\n"
        "a=end-of-candidates\r\n"
    )
    out = sdp.announce_addresses(answer, ["203.0.113.5"])
    lines = out.split("\r\n")
    assert "a=candidate:abc1 1 udp 2130706430 203.0.113.5 40000 typ host" in lines
    assert sum("203.0.113.5" in ln for ln in lines) == 1, "only UDP host candidates"
    assert lines[:3] == answer.split("\r\n")[:3]
    assert sdp.announce_addresses(answer, []) == answer
