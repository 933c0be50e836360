"""The Videohub codec against byte strings shaped like Blackmagic's documented dialogue."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.errors import InvalidParams
from drivers.videohub import codec
from drivers.videohub.codec import (
    Ack,
    Configuration,
    Decoder,
    DeviceInfo,
    EndPrelude,
    Garbage,
    Labels,
    LockRequest,
    Locks,
    LockState,
    Nak,
    Preamble,
    Routes,
    UnknownBlock,
)

PRELUDE = (
    b"PROTOCOL PREAMBLE:\n"
    b"Version: 2.8\n"
    b"\n"
    b"VIDEOHUB DEVICE:\n"
    b"Device present: true\n"
    b"Model name: Blackmagic Smart Videohub 12G 40x40\n"
    b"Friendly name: Hub A\n"
    b"Unique ID: 7C2E0D03C49B\n"
    b"Video inputs: 4\n"
    b"Video processing units: 0\n"
    b"Video outputs: 3\n"
    b"Video monitoring outputs: 0\n"
    b"Serial ports: 0\n"
    b"\n"
    b"NETWORK:\n"
    b"Interface Count: 1\n"
    b"\n"
    b"INPUT LABELS:\n"
    b"0 Camera 1\n"
    b"1 \xe5\x8c\xba\xe7\xba\xa7\xe4\xbc\x9a\xe8\xae\xae\xe7\xbb\x88\xe7\xab\xaf\n"
    b"2 PC: main\n"
    b"3 Input 4\n"
    b"\n"
    b"OUTPUT LABELS:\n"
    b"0 Wall 1\n"
    b"1 Wall 2\n"
    b"2 Monitor\n"
    b"\n"
    b"VIDEO OUTPUT LOCKS:\n"
    b"0 U\n"
    b"1 L\n"
    b"2 O\n"
    b"\n"
    b"VIDEO OUTPUT ROUTING:\n"
    b"0 0\n"
    b"1 3\n"
    b"2 1\n"
    b"\n"
    b"CONFIGURATION:\n"
    b"Take Mode: true\n"
    b"\n"
    b"END PRELUDE:\n"
    b"\n"
)

EXPECTED = [
    Preamble("2.8"),
    DeviceInfo(
        present="true",
        model="Blackmagic Smart Videohub 12G 40x40",
        friendly_name="Hub A",
        unique_id="7C2E0D03C49B",
        video_inputs=4,
        video_outputs=3,
        monitoring_outputs=0,
        serial_ports=0,
        processing_units=0,
    ),
    UnknownBlock("NETWORK", ("Interface Count: 1",)),
    Labels("INPUT LABELS", {0: "Camera 1", 1: "区级会议终端", 2: "PC: main", 3: "Input 4"}),
    Labels("OUTPUT LABELS", {0: "Wall 1", 1: "Wall 2", 2: "Monitor"}),
    Locks(
        "VIDEO OUTPUT LOCKS",
        {0: LockState.UNLOCKED, 1: LockState.LOCKED, 2: LockState.OWNED},
    ),
    Routes("VIDEO OUTPUT ROUTING", {0: 0, 1: 3, 2: 1}),
    Configuration({"Take Mode": "true"}),
    EndPrelude(),
]


def test_prelude_decodes_in_one_feed() -> None:
    assert Decoder().feed(PRELUDE) == EXPECTED


def test_prelude_split_at_every_byte_boundary() -> None:
    for cut in range(1, len(PRELUDE)):
        d = Decoder()
        events = d.feed(PRELUDE[:cut]) + d.feed(PRELUDE[cut:])
        assert events == EXPECTED, cut


def test_prelude_one_byte_at_a_time() -> None:
    d = Decoder()
    events = []
    for i in range(len(PRELUDE)):
        events += d.feed(PRELUDE[i : i + 1])
    assert events == EXPECTED


def test_crlf_line_ends_are_accepted() -> None:
    assert Decoder().feed(PRELUDE.replace(b"\n", b"\r\n")) == EXPECTED


@given(st.lists(st.integers(min_value=1, max_value=len(PRELUDE) - 1), max_size=12))
def test_prelude_any_slicing(cuts: list[int]) -> None:
    d = Decoder()
    events = []
    prev = 0
    for cut in [*sorted(set(cuts)), len(PRELUDE)]:
        events += d.feed(PRELUDE[prev:cut])
        prev = cut
    assert events == EXPECTED


def test_ack_and_nak_then_broadcast() -> None:
    data = b"ACK\n\nVIDEO OUTPUT ROUTING:\n7 2\n\nNAK\n\n"
    assert Decoder().feed(data) == [
        Ack(),
        Routes("VIDEO OUTPUT ROUTING", {7: 2}),
        Nak(),
    ]


def test_ack_without_its_blank_line_is_still_an_ack() -> None:
    assert Decoder().feed(b"ACK\nOUTPUT LABELS:\n6 x\n\n") == [
        Ack(),
        Labels("OUTPUT LABELS", {6: "x"}),
    ]


def test_unknown_lines_inside_known_blocks_are_ignored() -> None:
    d = Decoder()
    events = d.feed(
        b"VIDEO OUTPUT ROUTING:\n0 1\nbogus\n1 x\n-1 2\n2 3 4\n99999 1\n3 2\n\n"
        b"VIDEO OUTPUT LOCKS:\n0 Q\n1 U\n\n"
    )
    assert events == [
        Routes("VIDEO OUTPUT ROUTING", {0: 1, 3: 2}),
        Locks("VIDEO OUTPUT LOCKS", {1: LockState.UNLOCKED}),
    ]
    assert d.ignored_lines == 6


def test_garbage_between_blocks_is_reported_and_skipped() -> None:
    events = Decoder().feed(b"\x00\xff\x1b[2Jhello\nVIDEO OUTPUT ROUTING:\n0 1\n\n")
    assert isinstance(events[0], Garbage)
    assert events[0].reason == "line outside a block"
    assert events[1:] == [Routes("VIDEO OUTPUT ROUTING", {0: 1})]


def test_overlong_line_is_dropped_and_decoding_resumes() -> None:
    d = Decoder()
    first = d.feed(b"A" * (codec.MAX_LINE_BYTES + 10))
    assert [type(e) for e in first] == [Garbage]
    more = d.feed(b"A" * 100 + b"\nPING:\n\nACK\n\n")
    # The rest of the long line is discarded; the PING block is an unknown block to a client.
    assert more == [UnknownBlock("PING", ()), Ack()]


def test_overlong_block_is_dropped_up_to_its_blank_line() -> None:
    body = b"".join(b"%d 1\n" % (i % 100) for i in range(codec.MAX_BLOCK_LINES + 5))
    events = Decoder().feed(b"VIDEO OUTPUT ROUTING:\n" + body + b"\nACK\n\n")
    assert isinstance(events[0], Garbage)
    assert events[1:] == [Ack()]


def test_hostile_labels_from_the_device_are_cleaned() -> None:
    data = (
        b"INPUT LABELS:\n"
        b"0 evil\x1b[31mred\x07\n"
        b"1 right\xe2\x80\xaeto-left\n"
        b"2 \xff\xfe broken utf8\n"
        b"\n"
    )
    (event,) = Decoder().feed(data)
    assert isinstance(event, Labels)
    assert event.labels[0] == "evil[31mred"
    assert event.labels[1] == "rightto-left"
    assert "\ufffd" in event.labels[2]


def test_device_not_present() -> None:
    events = Decoder().feed(b"VIDEOHUB DEVICE:\nDevice present: needs_update\n\n")
    assert events == [DeviceInfo(present="needs_update")]


def test_reset_forgets_a_partial_block() -> None:
    d = Decoder()
    d.feed(b"VIDEO OUTPUT ROUTING:\n0 1\n")
    d.reset()
    assert d.feed(b"ACK\n\n") == [Ack()]


# ---- encoders ------------------------------------------------------------------------


def test_encode_routes() -> None:
    assert codec.encode_routes({7: 2}) == b"VIDEO OUTPUT ROUTING:\n7 2\n\n"
    assert (
        codec.encode_routes({0: 1, 1: 0}, outputs=2, inputs=2)
        == b"VIDEO OUTPUT ROUTING:\n0 1\n1 0\n\n"
    )


@pytest.mark.parametrize(
    ("routes", "field", "message"),
    [
        ({16: 0}, "routes[16]", "output 16 out of range 0..15"),
        ({0: 16}, "routes[0]", "input 16 out of range 0..15"),
        ({-1: 0}, "routes[-1]", "output -1 is negative"),
        ({0: True}, "routes[0]", "input must be an integer"),
        ({"0\n": 1}, "routes['0\\n']", "output must be an integer"),
        ({}, "routes", "no routes given"),
    ],
)
def test_encode_routes_refuses_out_of_range(routes: dict, field: str, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(InvalidParams) as err:
        codec.encode_routes(routes, outputs=16, inputs=16)
    assert err.value.field == field
    assert message in err.value.message


def test_hostile_label_cannot_smuggle_a_block() -> None:
    hostile = "Cam\n\nVIDEO OUTPUT ROUTING:\n0 5\n"
    data = codec.encode_labels({3: hostile}, count=16)
    assert data == b"OUTPUT LABELS:\n3 Cam VIDEO OUTPUT ROUTING: 0 5\n\n"
    # And what a server would parse from it is one label block, nothing else.
    assert Decoder().feed(data) == [Labels("OUTPUT LABELS", {3: "Cam VIDEO OUTPUT ROUTING: 0 5"})]


@pytest.mark.parametrize(
    "text",
    ["\r\n", "\x00", "\u2028\u2029", "\x1b", "\u202e", "   ", "\x85"],
)
def test_label_of_only_control_characters_is_refused(text: str) -> None:
    with pytest.raises(InvalidParams) as err:
        codec.encode_labels({0: text}, count=4, header=codec.INPUT_LABELS)
    assert err.value.field == "labels[0]"
    assert "empty" in err.value.message


def test_label_length_and_type_checks() -> None:
    with pytest.raises(InvalidParams, match="longer than"):
        codec.encode_labels({0: "x" * (codec.MAX_LABEL_CHARS + 1)})
    with pytest.raises(InvalidParams, match="must be a string"):
        codec.encode_labels({0: 5})  # type: ignore[dict-item]
    with pytest.raises(InvalidParams, match="out of range"):
        codec.encode_labels({4: "x"}, count=4)
    assert codec.encode_labels({0: "区级会议终端"}).decode() == "OUTPUT LABELS:\n0 区级会议终端\n\n"


def test_encode_locks() -> None:
    assert (
        codec.encode_locks({7: LockRequest.LOCK, 1: LockRequest.FORCE_UNLOCK})
        == b"VIDEO OUTPUT LOCKS:\n7 O\n1 F\n\n"
    )
    with pytest.raises(InvalidParams) as err:
        codec.encode_locks({0: "L"})  # type: ignore[dict-item]
    assert err.value.field == "locks[0]"


def test_encode_request_and_ping() -> None:
    assert codec.encode_request(codec.OUTPUT_LABELS) == b"OUTPUT LABELS:\n\n"
    assert codec.encode_ping() == b"PING:\n\n"
    with pytest.raises(InvalidParams):
        codec.encode_request("OUTPUT LABELS:\n\nVIDEO OUTPUT ROUTING")
    with pytest.raises(InvalidParams):
        codec.encode_routes({0: 0}, header="OUTPUT LABELS")


def test_clean_label() -> None:
    assert codec.clean_label("  a\tb\u3000c  ") == "a b c"
    assert codec.clean_label("a\u200bb") == "ab"


@given(st.lists(st.binary(max_size=200), max_size=8))
def test_decoder_never_raises_on_noise(chunks: list[bytes]) -> None:
    d = Decoder()
    for chunk in chunks:
        d.feed(chunk)
    # Whatever came before, a clean block after a blank line is understood.
    assert d.feed(b"\n\nACK\n\n")[-1] == Ack()
