"""The decoder, sans I/O: every malformed input has an exact answer; fuzzed, it never crashes."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wallctl.api.protocol import MAX_DEPTH, MAX_VALUES, Batch, DecodeError, Request, decode


def err(frame: str | bytes) -> tuple[str, str | None, str | int | None]:
    with pytest.raises(DecodeError) as e:
        decode(frame)
    return e.value.error.code, e.value.error.field, e.value.request_id


def test_request_decodes() -> None:
    msg = decode('{"op":"request","id":"a1","method":"wall.get","params":{"wall":"main"}}')
    assert isinstance(msg, Request) and msg.id == "a1" and msg.params == {"wall": "main"}


def test_malformed_inputs() -> None:
    assert err("{not json") == ("malformed_message", None, None)
    assert err(b'{"op":"request"}') == ("malformed_message", None, None)
    assert err("[1, 2]") == ("malformed_message", None, None)
    assert err('{"op": 3}') == ("invalid_field", "op", None)
    assert err('{"op":"explode","id":"x"}') == ("unknown_method", "op", "x")
    assert (
        err('{"op":"request","id":"r","method":"m","params":{"x":NaN}}')[0] == "malformed_message"
    )
    assert (
        err('{"op":"request","id":"r","method":"m","params":{"x":Infinity}}')[0]
        == "malformed_message"
    )
    assert err('{"op":"request","id":7,"method":"m","params":[]}') == ("invalid_field", "params", 7)
    assert err('{"op":"request","id":"r","method":"m","extra":1}') == (
        "invalid_field",
        "extra",
        "r",
    )
    assert err('{"op":"request","id":true,"method":"m"}')[:2] == ("invalid_field", "id")
    assert err('{"op":"request","id":"r"}') == ("invalid_field", "method", "r")


def test_deep_nesting_and_huge_arrays() -> None:
    deep = '{"op":"request","id":"d","method":"m","params":{"a":' + "[" * 40 + "]" * 40 + "}}"
    code, _, rid = err(deep)
    assert code == "malformed_message" and rid == "d"
    very_deep = "[" * 100000 + "]" * 100000
    assert err(very_deep)[0] == "malformed_message"
    huge = json.dumps(
        {"op": "request", "id": "h", "method": "m", "params": {"a": [0] * (MAX_VALUES + 1)}}
    )
    assert err(huge) == ("malformed_message", None, "h")
    ok = {"op": "request", "id": "o", "method": "m", "params": {"a": [[[1]]] * 10}}
    assert isinstance(decode(json.dumps(ok)), Request)
    nested = {"op": "request", "id": "n", "method": "m", "params": {}}
    inner: dict[str, object] = nested["params"]  # type: ignore[assignment]
    for _ in range(MAX_DEPTH - 3):
        inner["a"] = {}
        inner = inner["a"]  # type: ignore[assignment]
    assert isinstance(decode(json.dumps(nested)), Request)


def test_batch_limits() -> None:
    items = [{"id": i, "method": "wall.get"} for i in range(65)]
    assert err(json.dumps({"op": "batch", "id": "b", "mode": "atomic", "requests": items})) == (
        "invalid_field",
        "requests",
        "b",
    )
    assert isinstance(
        decode(json.dumps({"op": "batch", "id": "b", "mode": "ordered", "requests": items[:3]})),
        Batch,
    )


def test_oversized() -> None:
    assert err("x" * 70000) == ("malformed_message", None, None)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(max_size=200),
        st.binary(max_size=100),
        json_values.map(json.dumps),
        st.fixed_dictionaries(
            {
                "op": st.sampled_from(
                    ["request", "batch", "identify", "identify_proof", "reidentify", "x"]
                )
            },
            optional={
                "id": json_values,
                "method": json_values,
                "params": json_values,
                "mode": json_values,
                "requests": json_values,
                "subscriptions": json_values,
                "protocol_version": json_values,
                "proof": json_values,
            },
        ).map(json.dumps),
    )
)
def test_decoder_fuzz(frame: str | bytes) -> None:
    """Any input decodes or raises DecodeError with a known code: never anything else."""
    try:
        decode(frame)
    except DecodeError as e:
        assert e.error.code in ("malformed_message", "invalid_field", "unknown_method")
        assert e.error.message
