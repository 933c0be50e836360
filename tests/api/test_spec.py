"""The published spec and the server agree, both ways, and the files are up to date."""

from __future__ import annotations

import inspect
import json
from typing import Any

from wallctl import errors
from wallctl.api import protocol, spec
from wallctl.api.methods import METHODS
from wallctl.api.protocol import CLIENT_OPS, SERVER_OPS, decode

from .conftest import Api


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
