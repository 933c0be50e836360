"""The xAPI wire forms, sans I/O: tshell lines and WebSocket JSON-RPC messages."""

from __future__ import annotations

import json

import pytest

from drivers.cisco_xapi import jsonrpc as rpc
from drivers.cisco_xapi.state import CodecState
from drivers.cisco_xapi.tshell import (
    Done,
    Garbage,
    Literal_,
    Prompt,
    Record,
    Text,
    TshellParser,
    format_command,
    format_feedback_register,
    format_status,
    write_records,
    write_result,
)
from drivers.cisco_xapi.values import check_dial_string
from drivers.errors import InvalidParams

# --- commands out ------------------------------------------------------------------------


def test_command_line_quotes_strings_and_leaves_numbers_and_literals() -> None:
    line = format_command(
        ("Dial",),
        [("Number", "sip:nanxun@10.33.1.10"), ("CallRate", 768), ("Protocol", Literal_("Sip"))],
    )
    assert line == b'xCommand Dial Number: "sip:nanxun@10.33.1.10" CallRate: 768 Protocol: Sip\n'
    assert format_status(("Call",)) == b"xStatus Call\n"
    assert format_feedback_register(("Status", "Call")) == b"xFeedback register /Status/Call\n"


@pytest.mark.parametrize(
    "hostile",
    [
        'x" \nxCommand SystemUnit FactoryReset Confirm: Yes',  # closes the quote, new line
        "a\rb",
        "a\nb",
        'a"b',
        "a\\b",
        "a\x1b[2Jb",  # terminal escape
        "a\x00b",
        "a\u2028b",  # a line separator some terminals honour
        "a\x85b",  # C1 next-line
    ],
)
def test_hostile_values_are_refused_before_any_byte_is_formed(hostile: str) -> None:
    with pytest.raises(InvalidParams) as e:
        format_command(("Dial",), [("Number", hostile)])
    assert e.value.field == "Number"


@pytest.mark.parametrize(
    "bad", ["", "sip:a b@c", 'sip:"a"@c', "a\nb", "x" * 256, "xCommand Dial", "南浔", "a'b"]
)
def test_dial_strings_are_checked(bad: str) -> None:
    with pytest.raises(InvalidParams) as e:
        check_dial_string(bad)
    assert e.value.field == "number"


@pytest.mark.parametrize(
    "good", ["sip:nanxun@10.33.1.10", "h323:nanxun", "+8657212345678", "10.1.1.1##1234", "1234*9#"]
)
def test_dial_strings_that_pass(good: str) -> None:
    assert check_dial_string(good) == good


def test_path_elements_are_checked() -> None:
    with pytest.raises(InvalidParams):
        format_command(("Dial Number:",), [])
    with pytest.raises(InvalidParams):
        format_command(("Dial",), [("Number: x", 1)])


# --- replies in --------------------------------------------------------------------------


def test_dial_result_ok_and_the_reply_end() -> None:
    p = TshellParser()
    events = p.feed(
        b"*r DialResult (status=OK):\r\n*r DialResult CallId: 3\r\n"
        b"*r DialResult ConferenceId: 2\r\n** end\r\n\r\nOK\r\n"
    )
    assert events == [
        Record("r", ((("CallId",), 3), (("ConferenceId",), 2)), "DialResult", "OK"),
        Done(True),
    ]


def test_error_result_carries_the_reason() -> None:
    events = TshellParser().feed(
        b'*r DialResult (status=Error):\r\n*r DialResult Reason: "Max active calls reached"\r\n'
        b"** end\r\n\r\nERROR\r\n"
    )
    assert events[0] == Record(
        "r", ((("Reason",), "Max active calls reached"),), "DialResult", "Error"
    )
    assert events[1] == Done(False)


def test_older_indented_result_members() -> None:
    events = TshellParser().feed(
        b"OK\n*r DialResult (status=OK):\n    CallId: 2\n    ConferenceId: 1\n*r/end\nOK\n"
    )
    assert events[0] == Done(True)
    assert events[1] == Record("r", ((("CallId",), 2), (("ConferenceId",), 1)), "DialResult", "OK")


def test_status_feedback_and_ghost_and_events() -> None:
    p = TshellParser()
    events = p.feed(
        b'*s Call 3 Status: Connected\r\n*s Call 3 RemoteNumber: "sip:a@b"\r\n** end\r\n'
        b'*e CallDisconnect CauseType: "RemoteDisconnect"\r\n*e CallDisconnect CallId: 3\r\n'
        b"** end\r\n*s Call 3 (ghost=True):\r\n** end\r\n"
    )
    assert events == [
        Record(
            "s",
            (
                (("Status", "Call", 3, "Status"), "Connected"),
                (("Status", "Call", 3, "RemoteNumber"), "sip:a@b"),
            ),
        ),
        Record(
            "e",
            (
                (("Event", "CallDisconnect", "CauseType"), "RemoteDisconnect"),
                (("Event", "CallDisconnect", "CallId"), 3),
            ),
        ),
        Record("s", ((("Status", "Call", 3, "ghost"), "True"),)),
    ]
    assert isinstance(events[0].pairs[0][1], Literal_)


def test_every_split_point_gives_the_same_events() -> None:
    data = write_result("DialResult", True, [(("CallId",), 7)]) + write_records(
        "s", [(("Call", 7, "Status"), Literal_("Connected"))]
    )
    whole = TshellParser().feed(data)
    for cut in range(1, len(data)):
        p = TshellParser()
        assert p.feed(data[:cut]) + p.feed(data[cut:]) == whole, cut


def test_login_prompts_without_line_end() -> None:
    p = TshellParser()
    assert p.feed(b"\r\nlogin: ") == [Prompt("login")]
    assert p.feed(b"Password: ") == [Prompt("password")]


def test_garbage_is_bounded_and_the_stream_recovers() -> None:
    p = TshellParser()
    events = p.feed(b"x" * 20000)
    assert events == [Garbage(20000)]
    assert p.feed(b"more junk\r\nOK\r\n") == [Done(True)]
    assert p.feed(b"\xff\xfe not utf8\r\n") == [Text("\ufffd\ufffd not utf8")]


# --- JSON-RPC ------------------------------------------------------------------------------


def test_request_and_responses() -> None:
    c = rpc.JsonRpcClient()
    rid, text = c.request("xCommand/Dial", {"Number": "sip:a@b"})
    assert json.loads(text) == {
        "jsonrpc": "2.0",
        "id": rid,
        "method": "xCommand/Dial",
        "params": {"Number": "sip:a@b"},
    }
    ok = c.receive(json.dumps({"jsonrpc": "2.0", "id": rid, "result": {"CallId": 4}}))
    assert ok == rpc.Response(rid, result={"CallId": 4})
    err = c.receive(
        json.dumps(
            {
                "jsonrpc": "2.0",
                "id": 9,
                "error": {
                    "code": 1,
                    "message": "Command returned an error.",
                    "data": {"Reason": "No such preset"},
                },
            }
        )
    )
    assert isinstance(err, rpc.Response) and err.error is not None
    assert rpc.error_reason(err.error) == "No such preset"


def test_feedback_event_flattens_instances() -> None:
    msg = {
        "jsonrpc": "2.0",
        "method": "xFeedback/Event",
        "params": {"Id": 2, "Status": {"Call": [{"id": 5, "Status": "Ringing", "Duration": 0}]}},
    }
    fb = rpc.JsonRpcClient().receive(json.dumps(msg))
    assert isinstance(fb, rpc.Feedback) and fb.subscription == 2
    assert fb.pairs == (
        (("Status", "Call", 5, "Status"), "Ringing"),
        (("Status", "Call", 5, "Duration"), 0),
    )


def test_nest_is_the_inverse_of_flatten() -> None:
    pairs = [
        (("Status", "Call", 5, "Status"), "Connected"),
        (("Status", "Call", 6, "ghost"), "True"),
        (("Status", "Audio", "Volume"), 40),
    ]
    assert list(rpc.flatten(rpc.nest(pairs))) == pairs


@pytest.mark.parametrize(
    "bad",
    [
        "not json",
        "[]",
        '{"jsonrpc": "1.0", "id": 1, "result": 1}',
        '{"jsonrpc": "2.0", "id": 1}',
        '{"jsonrpc": "2.0", "id": 1, "error": {"code": "x"}}',
        '{"jsonrpc": "2.0", "method": "xFeedback/Event", "params": {"Status": {}}}',
        '{"jsonrpc": "2.0", "method": "Other"}',
        '{"jsonrpc": "2.0", "id": true, "result": 1}',
    ],
)
def test_malformed_messages_raise_protocol_error(bad: str) -> None:
    with pytest.raises(rpc.ProtocolError):
        rpc.JsonRpcClient().receive(bad)


def test_oversized_message_is_refused_before_parsing() -> None:
    with pytest.raises(rpc.ProtocolError, match="over"):
        rpc.JsonRpcClient().receive("[" * (rpc.MAX_MESSAGE + 1))


def test_both_auth_styles_round_trip() -> None:
    assert rpc.parse_basic_auth(rpc.basic_auth_header("admin", "p:w")) == ("admin", "p:w")
    proto = rpc.auth_subprotocol("admin", "秘密?")
    assert proto.startswith("auth-") and "=" not in proto and "/" not in proto
    assert rpc.parse_auth_subprotocol(proto) == ("admin", "秘密?")
    assert rpc.parse_basic_auth("Basic !!!") is None
    assert rpc.parse_basic_auth("Bearer abc") is None
    assert rpc.parse_auth_subprotocol("auth-%%%") is None


# --- state ------------------------------------------------------------------------------------


def test_state_follows_a_call_and_the_presentation() -> None:
    s = CodecState()
    assert s.apply(("Status", "Call", 3, "Status"), Literal_("Connecting")) == "call"
    assert s.calls[3].status == "ringing"
    s.apply(("Status", "Call", 3, "Status"), Literal_("Connected"))
    s.apply(("Status", "Call", 3, "TransmitCallRate"), 1920)
    assert s.snapshot()["calls"][0]["status"] == "connected"
    assert s.snapshot()["calls"][0]["call_rate"] == 1920
    s.apply(("Status", "Conference", "Presentation", "Mode"), Literal_("Sending"))
    s.apply(("Status", "Conference", "Presentation", "LocalInstance", 1, "Source"), 2)
    assert s.snapshot()["presentation"] == {"mode": "Sending", "source": 2}
    s.apply(("Status", "Audio", "Microphones", "Mute"), Literal_("On"))
    assert s.microphones_muted is True
    assert s.apply(("Status", "Call", 3, "ghost"), "True") == "call"
    assert s.calls == {}
    assert s.apply(("Status", "Unknown", "Thing"), 1) is None


# --- properties -------------------------------------------------------------------------------

from hypothesis import example, given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@given(st.text(max_size=300))
def test_any_value_is_refused_or_stays_one_quoted_line(value: str) -> None:
    try:
        line = format_command(("Dial",), [("Number", value)])
    except InvalidParams:
        return
    text = line.decode()
    assert text.count("\n") == 1 and text.endswith("\n") and "\r" not in text
    assert text.count('"') == 2
    # What the codec would read back is exactly the value.
    assert text == f'xCommand Dial Number: "{value}"\n'


@given(st.text(max_size=300))
# A trailing line break, which a regex ending in "$" lets through (found by hypothesis).
@example("0\n")
@example("sip:alice@example.com\n")
def test_any_dial_string_is_refused_or_plain(value: str) -> None:
    try:
        checked = check_dial_string(value)
    except InvalidParams:
        return
    assert checked == value and all(
        c.isascii() and c.isprintable() and c not in " \"'\\" for c in value
    )
