"""The published spec and the server agree, both ways, and the files are up to date."""

from __future__ import annotations

import inspect
import json
from typing import Any

import pytest

from wallctl import errors
from wallctl.api import protocol, spec
from wallctl.api.methods import METHODS
from wallctl.api.protocol import CLIENT_OPS, SERVER_OPS, decode

from .conftest import Api
from .schema_check import SchemaTap


def test_committed_files_are_current() -> None:
    for name, text in spec.render().items():
        on_disk = (spec.DOCS / name).read_text(encoding="utf-8")
        assert on_disk == text, f"docs/{name} is stale: run python -m wallctl.api.spec"


def test_tables_match_both_ways() -> None:
    s = spec.schema()
    assert set(s["x-methods"]) == set(METHODS)
    for name, m in METHODS.items():
        doc = s["x-methods"][name]
        assert doc["role"] == m.role and doc["atomic"] == (m.edit is not None)
        params = s["$defs"][doc["params"]["$ref"].rsplit("/", 1)[1]]
        assert set(params.get("properties", {})) == set(m.params.model_fields)
        assert set(params.get("required", [])) == {
            k for k, f in m.params.model_fields.items() if f.is_required()
        }
    assert set(s["x-client-messages"]) == set(CLIENT_OPS)
    assert set(s["x-server-messages"]) == set(SERVER_OPS)
    codes = {
        c.code
        for _, c in inspect.getmembers(errors, inspect.isclass)
        if issubclass(c, errors.WallctlError) and c.__module__ == errors.__name__
    }
    assert codes == set(s["x-error-codes"])
    used = {str(int(c)) for c in protocol.CloseCode}
    assert used <= set(s["x-close-codes"])


def test_every_documented_client_op_decodes() -> None:
    samples: dict[str, dict[str, Any]] = {
        "identify": {"protocol_version": 1},
        "identify_proof": {"proof": "AAAA"},
        "reidentify": {"subscriptions": ["wall"]},
        "request": {"id": 1, "method": "wall.get"},
        "batch": {"id": 1, "mode": "ordered", "requests": [{"id": 1, "method": "wall.get"}]},
    }
    assert set(samples) == set(spec.schema()["x-client-messages"])
    for op, body in samples.items():
        assert type(decode(json.dumps({"op": op, **body}))).__name__ == CLIENT_OPS[op].__name__


async def test_server_knows_every_documented_method(api: Api) -> None:
    """Each method of the spec reaches its handler (never unknown_method) on a live server;
    the client validates every server message against the published models."""
    admin = await api.client("admin1")
    for name in spec.schema()["x-methods"]:
        r = await admin.request(name, {"wall": 1} if name != "wall.list" else {})
        if not r["ok"]:
            assert r["error"]["code"] in ("invalid_field", "not_found"), (name, r)
    await admin.close()


async def test_real_messages_validate_against_the_schema_both_ways(api: Api) -> None:
    """A session using every client op and the common methods, every message checked
    against docs/api.schema.json (the fixture checks every API test's messages too)."""
    tap = SchemaTap()
    admin = await api.client("admin1", subscriptions=["wall", "layout", "session"], tap=tap)
    await admin.next_event("snapshot")
    token = (await admin.call("session.token"))["token"]
    other = await api.client(token=token, tap=tap)
    for name, params in (
        ("wall.list", {}),
        ("wall.get", {"wall": "side"}),
        ("layout.list", {}),
        ("source.list", {}),
        ("source.get", {"source": "cam1"}),
        ("window.open", {"x": 0, "y": 0, "w": 640, "h": 360, "source": "bars", "label": "一"}),
        ("window.move", {"window": "w1", "x": 8, "y": 8}),
        ("window.resize", {"window": "w1", "w": 320, "h": 180}),
        ("window.fullscreen", {"window": "w2"}),
        ("window.set_source", {"window": "w3", "source": None}),
        ("window.swap", {"a": "w1", "b": "w3"}),
        ("window.raise", {"window": "w4"}),
        ("window.close", {"window": "w4"}),
        ("layout.save", {"name": "早班"}),
        ("layout.apply", {"name": "3x3"}),
        ("state.history", {"limit": 3}),
        ("state.restore", {"revision": 1}),
        ("layout.delete", {"name": "早班"}),
        ("session.list", {}),
    ):
        await admin.call(name, params)
    await other.call("wall.get")
    await admin.batch(
        [
            {"id": "o", "method": "window.open", "params": {"x": 0, "y": 0, "w": 64, "h": 64}},
            {
                "id": "s",
                "method": "window.set_source",
                "params": {"window": {"$ref": "o.window.id"}, "source": "clock"},
            },
        ],
        "atomic",
    )
    await admin.batch([{"id": 1, "method": "wall.get"}, {"id": 2, "method": "nosuch"}], "ordered")
    await admin.request("window.move", {"window": "w1", "x": -1, "y": 0})
    await admin.reidentify([])
    await admin.reidentify(["wall"])
    await admin.next_event("snapshot")
    await other.call("session.logout")
    await other.close()
    await admin.close()
    seen = tap.verify()
    for op in CLIENT_OPS:
        assert seen[f"sent {op}"] >= 1, op
    for op in SERVER_OPS:
        assert seen[f"received {op}"] >= 1, op
    assert seen["method window.move"] >= 1 and seen["method session.token"] == 1
    assert sum(v for k, v in seen.items() if k.startswith("method ")) >= 24


def test_schema_check_catches_what_the_spec_does_not_allow() -> None:
    """The check above is not a rubber stamp: messages off the spec fail it."""
    bad: list[list[tuple[str, dict[str, Any]]]] = [
        [("sent", {"op": "request", "id": 1, "method": "wall.get", "extra": 1})],
        [("sent", {"op": "identify", "protocol_version": "1"})],
        [("received", {"op": "response", "id": 1, "ok": True, "result": {}, "more": 1})],
        [("received", {"op": "event", "seq": "1", "type": "x", "category": None})],
        [("received", {"op": "hello", "server_version": "1"})],
        # Accepted by a server means valid params: an unknown param is not.
        [
            ("sent", {"op": "request", "id": 7, "method": "wall.get", "params": {"zz": 1}}),
            ("received", {"op": "response", "id": 7, "ok": True, "result": {}}),
        ],
        # A result must have its method's shape.
        [
            ("sent", {"op": "request", "id": 8, "method": "window.move", "params": {}}),
            ("received", {"op": "response", "id": 8, "ok": True, "result": {"wall": "main"}}),
        ],
    ]
    for messages in bad:
        tap = SchemaTap()
        tap.messages = messages
        with pytest.raises(AssertionError):
            tap.verify()
