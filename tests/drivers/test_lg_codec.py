"""The LG RS-232C codec against the request/acknowledgement forms of LG's manuals."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.errors import InvalidParams
from drivers.lg import codec
from drivers.lg.codec import Cmd, Decoder, Garbage, Input, Reply


def test_encoders() -> None:
    assert codec.encode_power(1, True) == b"ka 01 01\r"
    assert codec.encode_power(0x1F, False) == b"ka 1f 00\r"
    assert codec.encode_read(Cmd.POWER, 1) == b"ka 01 ff\r"
    assert codec.encode_input(1, Input.HDMI1) == b"xb 01 90\r"
    assert codec.encode_volume(2, 100) == b"kf 02 64\r"
    assert codec.encode_volume_mute(1, True) == b"ke 01 00\r"
    assert codec.encode_screen_mute(1, True) == b"kd 01 01\r"
    assert codec.encode_tile_mode(1, 2, 3) == b"dd 01 23\r"
    assert codec.encode_tile_id(1, 4) == b"di 01 04\r"
    assert codec.decode_tile(0x23) == (2, 3)
    assert codec.decode_tile(0x11) is None


@pytest.mark.parametrize(
    ("call", "field", "message"),
    [
        (lambda: codec.encode_power(256, True), "set_id", "out of range 0..255"),
        (lambda: codec.encode_power(-1, True), "set_id", "out of range"),
        (lambda: codec.encode_power(1, 1), "on", "true or false"),  # type: ignore[arg-type]
        (lambda: codec.encode_volume(1, 101), "volume", "out of range 0..100"),
        (lambda: codec.encode_input(1, 0x99), "source", "unknown input"),
        (lambda: codec.encode_tile_mode(1, 16, 1), "columns", "out of range 1..15"),
        (lambda: codec.encode_tile_id(1, 0), "tile_id", "out of range 1..225"),
        (lambda: codec.encode(Cmd.POWER, 1, 2), "data", "out of range 0..1"),
        (lambda: codec.encode(Cmd.POWER, 1, []), "data", "no data"),
        (lambda: codec.encode(Cmd.POWER, "01\r", 1), "set_id", "must be an integer"),  # type: ignore[arg-type]
    ],
)
def test_encoders_refuse_bad_values(call: object, field: str, message: str) -> None:
    with pytest.raises(InvalidParams) as err:
        call()  # type: ignore[operator]
    assert err.value.field == field
    assert message in err.value.message


STREAM = b"a 01 OK01xb 01 NG90xv 0a OK0201x"
EXPECTED = [
    Reply("a", 1, True, (1,)),
    Reply("b", 1, False, (0x90,)),
    Reply("v", 10, True, (2, 1)),
]


def test_decode_ok_ng_and_multi_data() -> None:
    assert Decoder().feed(STREAM) == EXPECTED


def test_split_at_every_byte_boundary() -> None:
    for cut in range(1, len(STREAM)):
        d = Decoder()
        assert d.feed(STREAM[:cut]) + d.feed(STREAM[cut:]) == EXPECTED, cut


def test_line_breaks_and_echo_between_replies_are_tolerated() -> None:
    # Some RS-232 adapters echo the request and some firmware adds CR LF.
    events = Decoder().feed(b"ka 01 01\ra 01 OK01x\r\n")
    assert events[-1] == Reply("a", 1, True, (1,))
    assert all(isinstance(e, Garbage) for e in events[:-1])


def test_garbage_is_reported_and_decoding_resumes() -> None:
    d = Decoder()
    events = d.feed(b"\x00\xffzzxa 01 OK00x")
    assert isinstance(events[0], Garbage)
    assert events[-1] == Reply("a", 1, True, (0,))


def test_runaway_bytes_without_terminator_are_dropped() -> None:
    d = Decoder()
    events = d.feed(b"A" * (codec.MAX_REPLY_BYTES + 1))
    assert [type(e) for e in events] == [Garbage]
    assert d.feed(b"a 01 OK01x") == [Reply("a", 1, True, (1,))]


def test_odd_number_of_hex_digits_is_not_a_reply() -> None:
    events = Decoder().feed(b"a 01 OK1x")
    assert [type(e) for e in events] == [Garbage]


@given(st.lists(st.binary(max_size=100), max_size=8))
def test_decoder_never_raises_and_recovers(chunks: list[bytes]) -> None:
    d = Decoder()
    for chunk in chunks:
        d.feed(chunk)
    assert d.feed(b"xa 01 OK01x")[-1] == Reply("a", 1, True, (1,))
