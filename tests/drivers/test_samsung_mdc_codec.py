"""The Samsung MDC codec against frames built the way the MDC document shows them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.errors import InvalidParams
from drivers.samsung_mdc import codec
from drivers.samsung_mdc.codec import (
    Ack,
    ChecksumError,
    Command,
    Decoder,
    Garbage,
    InputSource,
    Nak,
    TlsRequired,
)


def test_power_on_frame_matches_the_document_example() -> None:
    # The document's example: power on, ID 0xFE -> checksum 0x11+0xFE+0x01+0x01 = 0x111 -> 0x11.
    assert codec.encode_power(0xFE, True) == bytes.fromhex("AA 11 FE 01 01 11")


def test_encoders() -> None:
    assert codec.encode_get(Command.STATUS, 1) == bytes.fromhex("AA 00 01 00 01")
    assert codec.encode_volume(1, 100) == bytes.fromhex("AA 12 01 01 64 78")
    assert codec.encode_mute(1, True) == bytes.fromhex("AA 13 01 01 01 16")
    assert codec.encode_input(1, InputSource.HDMI1) == bytes.fromhex("AA 14 01 01 21 37")
    assert codec.encode_video_wall_on(1, True) == bytes.fromhex("AA 84 01 01 01 87")
    assert codec.encode_video_wall_mode(2, codec.VideoWallMode.FULL)[1:3] == b"\x5c\x02"
    # 2 columns x 2 rows, position 3 -> Wall_Div 0x22, SNo 3.
    assert codec.encode_video_wall_user(1, 2, 2, 3) == codec.frame(0x89, 1, b"\x22\x03")
    assert codec.decode_wall_div(0x24) == (4, 2)


@pytest.mark.parametrize(
    ("call", "field", "message"),
    [
        (lambda: codec.encode_volume(1, 101), "volume", "volume 101 out of range 0..100"),
        (lambda: codec.encode_volume(1, -1), "volume", "out of range"),
        (lambda: codec.encode_volume(1, True), "volume", "must be an integer"),
        (lambda: codec.encode_get(Command.STATUS, 255), "display_id", "out of range 0..254"),
        (lambda: codec.encode_get(Command.STATUS, -1), "display_id", "out of range"),
        (lambda: codec.encode_input(1, 0x99), "source", "unknown input source"),
        (lambda: codec.encode_input(1, InputSource.HDMI1_PC), "source", "but not selected"),
        (lambda: codec.encode_power(1, 7), "power", "not off, on or reboot"),
        (lambda: codec.encode_mute(1, 1), "mute", "true or false"),  # type: ignore[arg-type]
        (lambda: codec.encode_video_wall_user(1, 16, 1, 1), "columns", "out of range 1..15"),
        (lambda: codec.encode_video_wall_user(1, 2, 2, 5), "position", "out of range 1..4"),
        (lambda: codec.encode_video_wall_mode(1, 3), "mode", "natural or full"),
    ],
)
def test_encoders_refuse_bad_values(call: object, field: str, message: str) -> None:
    with pytest.raises(InvalidParams) as err:
        call()  # type: ignore[operator]
    assert err.value.field == field
    assert message in err.value.message


STATUS_ACK = codec.frame(0xFF, 1, bytes((codec.ACK, 0x00, 1, 25, 0, 0x21, 0x10, 0, 0)))
POWER_NAK = codec.frame(0xFF, 1, bytes((codec.NAK, 0x11, 0x01)))
STREAM = STATUS_ACK + POWER_NAK


def test_decode_ack_and_nak() -> None:
    events = Decoder().feed(STREAM)
    assert events == [
        Ack(1, 0x00, bytes((1, 25, 0, 0x21, 0x10, 0, 0))),
        Nak(1, 0x11, 0x01),
    ]
    ack = events[0]
    assert isinstance(ack, Ack)
    status = codec.decode_status(ack.data)
    assert (status.power, status.volume, status.input_source) == (1, 25, 0x21)


def test_split_at_every_byte_boundary() -> None:
    expected = Decoder().feed(STREAM)
    for cut in range(1, len(STREAM)):
        d = Decoder()
        assert d.feed(STREAM[:cut]) + d.feed(STREAM[cut:]) == expected, cut


@given(st.binary(max_size=40), st.lists(st.integers(1, len(STREAM) - 1), max_size=6))
def test_garbage_before_a_frame_never_hides_it(noise: bytes, cuts: list[int]) -> None:
    # Noise without 0xAA: the decoder must find both replies whatever the slicing.
    noise = noise.replace(b"\xaa", b"")
    data = noise + STREAM
    d = Decoder()
    events = []
    prev = 0
    for cut in [*sorted({c + len(noise) for c in cuts}), len(data)]:
        events += d.feed(data[prev:cut])
        prev = cut
    replies = [e for e in events if isinstance(e, Ack | Nak)]
    assert replies == [Ack(1, 0x00, bytes((1, 25, 0, 0x21, 0x10, 0, 0))), Nak(1, 0x11, 0x01)]


def test_checksum_error_is_reported_and_the_next_frame_still_decodes() -> None:
    bad = bytearray(STATUS_ACK)
    bad[-1] ^= 0x55
    events = Decoder().feed(bytes(bad) + POWER_NAK)
    assert isinstance(events[0], ChecksumError)
    assert events[0].expected == STATUS_ACK[-1]
    assert events[-1] == Nak(1, 0x11, 0x01)
    assert not any(isinstance(e, Ack) for e in events)


def test_stray_header_byte_does_not_swallow_the_reply() -> None:
    # 0xAA followed by something other than 0xFF: a noise byte, not a frame with length 0x30.
    events = Decoder().feed(b"\xaa\x30\x30" + POWER_NAK)
    assert events[-1] == Nak(1, 0x11, 0x01)
    assert isinstance(events[0], Garbage)


def test_reply_without_ack_or_nak_is_garbage() -> None:
    (event,) = Decoder().feed(codec.frame(0xFF, 1, b"Z\x11"))
    assert isinstance(event, Garbage)


def test_tls_banner_is_recognised_even_split() -> None:
    d = Decoder()
    assert d.feed(b"MDCSTA") == []
    assert d.feed(b"RT<<TLS>>") == [TlsRequired()]


def test_decode_status_rejects_short_data() -> None:
    with pytest.raises(ValueError, match="expected at least 5"):
        codec.decode_status(b"\x01\x02")


@given(st.lists(st.binary(max_size=300), max_size=8))
def test_decoder_never_raises_and_recovers(chunks: list[bytes]) -> None:
    d = Decoder()
    for chunk in chunks:
        d.feed(chunk)
    # A partial frame may still be waiting for bytes; a reset starts clean.
    d.reset()
    assert d.feed(POWER_NAK) == [Nak(1, 0x11, 0x01)]
