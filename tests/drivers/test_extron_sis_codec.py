"""Extron SIS codec: every reply form, frames split at every byte, noise, commands."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.extron_sis import codec as sis

STREAM = (
    b"(c) Copyright 2026, Extron Electronics, DXP 1616 HD 4K Plus, V1.05, 60-1494-01\r\n"
    b"Mon, 23 Nov 2026 14:00:00\r\n"
    b"\r\nPassword:"
)
REPLIES = b"\r\nLogin Administrator\r\nVrb3\r\nV16X16 A16X16\r\nOut03 In01 All\r\n07\r\n" + (
    b"Out12 In05 Vid\r\nIn04 RGB\r\nQik\r\nE13\r\nRpr05\r\n1.05\r\n"
)
EXPECTED: list[sis.Event] = [
    sis.Banner(
        "(c) Copyright 2026, Extron Electronics, DXP 1616 HD 4K Plus, V1.05, 60-1494-01",
        "DXP 1616 HD 4K Plus",
    ),
    sis.Line("Mon, 23 Nov 2026 14:00:00"),
    sis.PasswordPrompt(),
    sis.LoginOk("Administrator"),
    sis.Verbose(3),
    sis.Info(16, 16, 16, 16),
    sis.TieReport(1, 3, "av"),
    sis.Number(7),
    sis.TieReport(5, 12, "video"),
    sis.TieReport(4, None, "video"),
    sis.QuickAck(),
    sis.Error("E13"),
    sis.PresetRecalled(5),
    sis.Line("1.05"),
]


def test_every_reply_form_parses() -> None:
    assert sis.ExtronCodec().feed(STREAM + REPLIES) == EXPECTED


@pytest.mark.parametrize("cut", range(1, len(STREAM + REPLIES)))
def test_split_at_every_byte_boundary(cut: int) -> None:
    data = STREAM + REPLIES
    c = sis.ExtronCodec()
    assert c.feed(data[:cut]) + c.feed(data[cut:]) == EXPECTED


def test_byte_by_byte() -> None:
    c = sis.ExtronCodec()
    events = []
    for b in STREAM + REPLIES:
        events += c.feed(bytes([b]))
    assert events == EXPECTED


def test_three_digit_numbers_and_error_text() -> None:
    c = sis.ExtronCodec()
    assert c.feed(b"Out128 In064 Aud\r\nE01\r\n") == [
        sis.TieReport(64, 128, "audio"),
        sis.Error("E01"),
    ]
    assert sis.Error("E12").reason == "invalid output number"


def test_garbage_is_reported_and_parsing_recovers() -> None:
    c = sis.ExtronCodec()
    events = c.feed(b"\x00\xff\xfe garbage\r\n" + b"x" * 600 + b"\r\nOut01 In02 All\r\n")
    assert isinstance(events[0], sis.Garbage)
    assert events[-1] == sis.TieReport(2, 1, "av")
    # A flood without a line end is dropped, not kept for ever.
    events = c.feed(b"y" * 2000)
    assert events and isinstance(events[0], sis.Garbage)
    assert c.feed(b"\r\nQik\r\n") == [sis.QuickAck()]


def test_commands() -> None:
    assert sis.tie(1, 3, "av") == b"1*3!"
    assert sis.tie(0, 16, "video") == b"0*16%"
    assert sis.tie(7, 2, "audio") == b"7*2$"
    assert sis.tie_all(5, "av") == b"5*!"
    assert sis.quick_ties([(3, 4, "av"), (3, 5, "video")]) == b"\x1b+Q3*4!3*5%\r"
    assert sis.read_tie(12, "video") == b"12%"
    assert sis.set_verbose(3) == b"\x1b3CV\r"
    assert sis.recall_preset(5) == b"5."
    assert sis.password("s3cret") == b"s3cret\r"


@pytest.mark.parametrize("bad", ["pw\r1*1!", "pw\n", "\x1b3CV", "密码", "a\x7fb"])
def test_password_cannot_smuggle_commands(bad: str) -> None:
    with pytest.raises(ValueError):
        sis.password(bad)


def test_numbers_out_of_any_range_are_refused() -> None:
    with pytest.raises(ValueError):
        sis.tie(-1, 2, "av")
    with pytest.raises(ValueError):
        sis.tie(1, 10000, "av")
    with pytest.raises(ValueError):
        sis.read_tie(1, "av")
    with pytest.raises(ValueError):
        sis.set_verbose(4)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.integers(min_value=1, max_value=50))
def test_any_bytes_never_raise_and_parsing_recovers(noise: bytes, chunk: int) -> None:
    c = sis.ExtronCodec()
    for i in range(0, len(noise), chunk):
        c.feed(noise[i : i + chunk])
    # Whatever came before, a line end resynchronises the parser.
    events = c.feed(b"\r\nOut02 In03 Vid\r\n")
    assert events[-1] == sis.TieReport(3, 2, "video")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_simulator_survives_any_input(noise: bytes) -> None:
    from drivers.extron_sis.simulator import ExtronSimulator
    from drivers.simulator import SimSession

    sim = ExtronSimulator(8, 8)
    sent: list[bytes] = []

    class Line(SimSession):
        def __init__(self) -> None:  # no loop needed: record what would be sent
            self.sim, self.kind, self.baud = sim, "tcp", None
            self.buffer, self.vars, self.closed = bytearray(), {}, False

        def send(self, data: bytes, *, delayed: bool = True) -> None:
            sent.append(data)

    s = Line()
    sim.sessions.add(s)
    s.vars.update(verbose=3, logged_in=True)
    sim.on_data(s, noise + b"\r")
    assert len(s.buffer) <= 128 + 4  # never grows without bound
    sent.clear()
    s.buffer.clear()
    sim.on_data(s, b"1*2!")
    assert sent == [b"Out02 In01 All\r\n"] and sim.ties["audio"][2] == 1
