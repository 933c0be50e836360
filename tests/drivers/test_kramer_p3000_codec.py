"""Kramer Protocol 3000 codec: replies, reports, errors, splits, noise, the 64-char limit."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.kramer_p3000 import codec as p3k

DATA = (
    b"~01@ OK\r\n"
    b"~01@VID 1>2,3>4 OK\r\n"
    b"~01@VID 3>2\r\n"
    b"~01@AUD ERR002\r\n"
    b"~01@VID 17>1 ERR003\r\n"
    b"~01@INFO-IO IN 16,OUT 16\r\n"
    b"~01@ERR001\r\n"
    b"Kramer Electronics LTD., Device Model VS-1616DN, Version 1.12\r\n"
    b"~02@LOGIN admin,x OK\r\n"
)
EXPECTED: list[p3k.Event] = [
    p3k.Reply(1, "", "", "OK"),
    p3k.Reply(1, "VID", "1>2,3>4", "OK"),
    p3k.Reply(1, "VID", "3>2", ""),
    p3k.Reply(1, "AUD", "", "ERR002"),
    p3k.Reply(1, "VID", "17>1", "ERR003"),
    p3k.Reply(1, "INFO-IO", "IN 16,OUT 16", ""),
    p3k.Reply(1, "", "", "ERR001"),
    p3k.StartMessage("Kramer Electronics LTD., Device Model VS-1616DN, Version 1.12"),
    p3k.Reply(2, "LOGIN", "admin,x", "OK"),
]


def test_every_reply_form() -> None:
    assert p3k.KramerCodec().feed(DATA) == EXPECTED
    assert EXPECTED[4].error == "ERR003" and EXPECTED[4].reason == "parameter out of range"
    assert EXPECTED[2].error is None


@pytest.mark.parametrize("cut", range(1, len(DATA)))
def test_split_at_every_byte_boundary(cut: int) -> None:
    c = p3k.KramerCodec()
    assert c.feed(DATA[:cut]) + c.feed(DATA[cut:]) == EXPECTED


def test_routes_and_io() -> None:
    assert p3k.parse_routes("1>2, 3>*,0>4") == [(1, 2), (3, None), (0, 4)]
    assert p3k.parse_routes("1>2,x") is None
    assert p3k.parse_io("IN 16,OUT 8") == (16, 8)


def test_noise() -> None:
    c = p3k.KramerCodec()
    events = c.feed(b"\x00\x9b[2J\r\n~01@VID 1>1\r\n")
    assert isinstance(events[0], p3k.Garbage)
    assert events[1] == p3k.Reply(1, "VID", "1>1", "")
    assert isinstance(c.feed(b"z" * 5000)[0], p3k.Garbage)


def test_commands() -> None:
    assert p3k.handshake() == b"#\r"
    assert p3k.route("video", [(1, 2), (3, None)]) == b"#VID 1>2,3>*\r"
    assert p3k.route("av", [(0, 5)], machine=2) == b"#02@AV 0>5\r"
    assert p3k.query_route("audio", None) == b"#AUD? *\r"
    assert p3k.query_route("video", 7) == b"#VID? 7\r"


def test_salvo_is_cut_at_64_characters() -> None:
    ties: list[tuple[int, int | None]] = [(i, i) for i in range(1, 33)]
    chunks = p3k.route_chunks("video", ties)
    assert len(chunks) > 1
    assert all(len(data) <= p3k.MAX_COMMAND for data, _ in chunks)
    assert [t for _, part in chunks for t in part] == ties
    with pytest.raises(ValueError):
        p3k.route("video", ties)


@pytest.mark.parametrize("bad", ["pw|#VID 1>1", "a,b", "x\ry", "sp ace", "~01@"])
def test_login_cannot_smuggle_commands(bad: str) -> None:
    with pytest.raises(ValueError):
        p3k.login("admin", bad)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.integers(min_value=1, max_value=50))
def test_any_bytes_never_raise_and_parsing_recovers(noise: bytes, chunk: int) -> None:
    c = p3k.KramerCodec()
    for i in range(0, len(noise), chunk):
        c.feed(noise[i : i + chunk])
    assert c.feed(b"\r\n~01@VID 1>2 OK\r\n")[-1] == p3k.Reply(1, "VID", "1>2", "OK")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_simulator_survives_any_input(noise: bytes) -> None:
    from drivers.kramer_p3000.simulator import KramerSimulator
    from drivers.simulator import SimSession

    sim = KramerSimulator(8, 8)
    sent: list[bytes] = []

    class Line(SimSession):
        def __init__(self) -> None:
            self.sim, self.kind, self.baud = sim, "tcp", None
            self.buffer, self.vars, self.closed = bytearray(), {"logged_in": True}, False

        def send(self, data: bytes, *, delayed: bool = True) -> None:
            sent.append(data)

    s = Line()
    sim.sessions.add(s)
    sim.on_data(s, noise.replace(b"\r", b"") + b"\r")
    sent.clear()
    sim.on_data(s, b"#VID 3>4\r")
    assert sent == [b"~01@VID 3>4 OK\r\n"] and sim.routes["video"][4] == 3
