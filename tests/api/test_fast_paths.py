"""The hot path's shortcuts answer exactly what the general path answers.

The server checks the usual request without pydantic, serialises windows without it and
sends events as shared UTF-8 bytes; each shortcut must agree with the path it skips, or
give way to it.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.frames import Frame, Opcode

from wallctl.api.events import EventHub, Subscriber, event_tail, frame
from wallctl.api.protocol import DecodeError, Request, decode
from wallctl.api.server import _plain_request, _utf8, text_frame
from wallctl.wallstate import Crop, Placement, WallState, Window, state_data, window_data

EDGE_IDS = [0, 1, 2**53, 2**53 + 1, -1, True, False, 1.0, None, "", "a", "x" * 64, "x" * 65]
EDGE_METHODS = ["window.move", "", "m" * 64, "m" * 65, 7, None, ["window.move"]]
EDGE_REVISIONS = [None, 0, 5, 2**53, 2**53 + 1, -1, True, 2.0, "3"]
leaves = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
)
values = st.recursive(
    leaves,
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c, max_size=4),
    max_leaves=20,
)
requests = st.fixed_dictionaries(
    {"op": st.sampled_from(["request", "request", "request", "batch", "Request", 1])},
    optional={
        "id": st.sampled_from(EDGE_IDS) | values,
        "method": st.sampled_from(EDGE_METHODS) | values,
        "params": st.dictionaries(st.text(max_size=6), values, max_size=4) | values,
        "if_revision": st.sampled_from(EDGE_REVISIONS) | values,
        "extra": values,
    },
)


@settings(max_examples=400, deadline=None)
@given(requests, st.sampled_from([65536, 40]))
def test_plain_request_agrees_with_decode(message: dict[str, Any], max_bytes: int) -> None:
    raw = json.dumps(message, ensure_ascii=False)
    fast = _plain_request(raw, max_bytes)
    try:
        slow = decode(raw, max_bytes)
    except DecodeError:
        # Whatever decode refuses, the shortcut leaves to it (so the error is decode's).
        assert fast is None
        return
    if fast is None:
        return
    assert isinstance(slow, Request)
    assert fast == (slow.id, slow.method, slow.params, slow.if_revision)
    assert type(fast[0]) is type(slow.id)


def test_plain_request_takes_the_usual_request_and_leaves_the_rest() -> None:
    usual = '{"op":"request","id":7,"method":"window.move","params":{"window":"w1","x":1,"y":2}}'
    got = _plain_request(usual, 65536)
    slow = decode(usual)
    assert isinstance(slow, Request)
    assert got == (slow.id, slow.method, slow.params, slow.if_revision)
    assert got == (7, "window.move", {"window": "w1", "x": 1, "y": 2}, None)
    assert _plain_request('{"op":"request","id":"a","method":"wall.get"}', 65536) == (
        "a",
        "wall.get",
        {},
        None,
    )
    deep = '{"op":"request","id":1,"method":"x","params":{"a":' + "[" * 20 + "]" * 20 + "}}"
    for raw in (
        b'{"op":"request","id":1,"method":"x"}',  # binary frame
        '{"op":"request","id":1,"method":"x","params":{"v":NaN}}',
        '{"op":"request","id":1,"method":"x"} trailing',
        deep,
        '{"op":"request","id":1,"method":"x","if_revision":true}',
        '{"op":"request","id":1,"method":"x","params":[]}',
        '{"op":"request","id":1,"method":"x","unknown":1}',
    ):
        assert _plain_request(raw, 65536) is None, raw
        try:
            decode(raw)
        except DecodeError:
            pass


windows = st.builds(
    Window,
    id=st.text(min_size=1, max_size=6),
    x=st.integers(-5, 5000),
    y=st.integers(-5, 5000),
    w=st.integers(1, 5000),
    h=st.integers(1, 5000),
    z=st.integers(0, 300),
    source=st.none() | st.text(max_size=8),
    label=st.none() | st.text(max_size=8),
    crop=st.none() | st.just(Crop(x=0.1, y=0.2, w=0.5, h=0.5)),
    fit=st.sampled_from(["fit", "fill", "stretch"]),
    restore=st.none() | st.just(Placement(x=1, y=2, w=3, h=4, z=5)),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(windows, max_size=6), st.none() | st.text(max_size=6), st.integers(0, 10**6))
def test_window_and_state_data_match_pydantic(
    ws: list[Window], layout: str | None, revision: int
) -> None:
    for w in ws:
        assert window_data(w) == w.model_dump(mode="json")
        assert list(window_data(w)) == list(w.model_dump(mode="json"))
    state = WallState(wall="main", revision=revision, layout=layout, windows=tuple(ws))
    assert state_data(state) == state.model_dump(mode="json")
    # The shortcut hands out copies: changing one changes no window.
    if ws:
        data, x = window_data(ws[0]), ws[0].x
        data["x"] = x + 1
        assert ws[0].x == x


def test_event_frames_are_one_shared_utf8_tail() -> None:
    tail = event_tail(
        "wall.changed", "wall", {"name": "我的预案", "big": 2**70}, wall="main", revision=3
    )
    assert isinstance(tail, bytes)
    a, b = frame(1, tail), frame(2, tail)
    assert a.endswith(tail) and b.endswith(tail)
    ev = json.loads(a)
    assert ev["op"] == "event" and ev["seq"] == 1 and ev["type"] == "wall.changed"
    assert ev["data"] == {"name": "我的预案", "big": 2**70} and ev["revision"] == 3
    # Chinese text travels as UTF-8, not as \\u escapes.
    assert "我的预案".encode() in a
    assert _utf8({"op": "response", "id": 1, "n": 2**70}) == b'{"op":"response","id":1,"n":%d}' % (
        2**70
    )
    assert _utf8({"a": "中"}) == orjson.dumps({"a": "中"})


class _Walls:
    def __init__(self) -> None:
        self.walls: dict[str, Any] = {}

    def subscribe(self, listener: Any) -> Any:
        return lambda: None


def test_hub_knows_who_listens_after_every_change() -> None:
    hub = EventHub(_Walls())  # type: ignore[arg-type]
    a, b = Subscriber(["wall"], 8), Subscriber(["session"], 8)
    hub.add(a)
    hub.add(b)
    assert hub.interested("wall") == [a]
    assert hub.interested("wall") is hub.interested("wall")
    b.categories = {"wall", "session"}
    hub.resubscribed()
    assert set(hub.interested("wall")) == {a, b}
    hub.remove(a)
    assert hub.interested("wall") == [b]
    assert hub.interested("layout") == []


def test_text_frames_are_what_websockets_would_send() -> None:
    """Every length class of the header: 7 bits, 16 bits, 64 bits."""
    for n in (0, 1, 125, 126, 127, 65535, 65536, 200_000):
        payload = ("中" * (n // 3) + "x" * (n % 3)).encode()
        assert text_frame(payload) == Frame(Opcode.TEXT, payload).serialize(mask=False), n
