"""Every message the API tests exchange, checked against the published docs/api.schema.json.

Both ways: what the tests send must be a valid client message, and what the server sends
a valid server message. For each request the server answered ``ok``, the params must
validate against the method's published params schema (the spec accepts what the server
accepts) and the result against its result schema.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "docs" / "api.schema.json"


@functools.cache
def schema() -> dict[str, Any]:
    return dict(json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))


@functools.cache
def validator(ref: str) -> Draft202012Validator:
    s = schema()
    return Draft202012Validator({"$ref": ref, "$defs": s["$defs"]})


def check(ref: str, value: Any, what: str) -> None:
    errors = sorted(validator(ref).iter_errors(value), key=lambda e: list(e.path))
    if errors:
        e = errors[0]
        path = "/".join(str(p) for p in e.path)
        raise AssertionError(f"{what} does not match {ref} at /{path}: {e.message}\n{value}")


def _has_ref(value: Any) -> bool:
    if isinstance(value, dict):
        return "$ref" in value or any(_has_ref(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_ref(v) for v in value)
    return False


class SchemaTap:
    """Records one connection's messages (``wallctl.client`` calls it); ``verify`` checks."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, direction: str, message: dict[str, Any]) -> None:
        # A copy: the client may go on using the dict it sent.
        self.messages.append((direction, json.loads(json.dumps(message))))

    def verify(self) -> Counter[str]:
        """Check every message; returns what was checked, by kind."""
        s = schema()
        seen: Counter[str] = Counter()
        requests: dict[Any, dict[str, Any]] = {}
        batches: dict[Any, dict[str, Any]] = {}
        for direction, msg in self.messages:
            op = msg.get("op")
            if direction == "sent":
                assert op in s["x-client-messages"], f"sent an undocumented op: {msg}"
                check(s["x-client-messages"][op]["$ref"], msg, f"sent {op}")
                seen[f"sent {op}"] += 1
                if op == "request":
                    requests[msg["id"]] = msg
                elif op == "batch":
                    batches[msg["id"]] = msg
                continue
            assert op in s["x-server-messages"], f"received an undocumented op: {msg}"
            check(s["x-server-messages"][op]["$ref"], msg, f"received {op}")
            seen[f"received {op}"] += 1
            if op == "response" and msg["ok"] and msg["id"] in requests:
                req = requests.pop(msg["id"])
                self._check_method(req["method"], req.get("params", {}), msg["result"], seen)
            elif op == "batch_response" and msg["id"] in batches:
                batch = batches.pop(msg["id"])
                for item, res in zip(batch["requests"], msg["results"], strict=True):
                    if res["ok"] and not _has_ref(item.get("params", {})):
                        self._check_method(
                            item["method"], item.get("params", {}), res["result"], seen
                        )
        return seen

    @staticmethod
    def _check_method(name: str, params: Any, result: Any, seen: Counter[str]) -> None:
        m = schema()["x-methods"].get(name)
        assert m is not None, f"the server answered an undocumented method {name}"
        check(m["params"]["$ref"], params, f"params of {name} (accepted by the server)")
        check(m["result"]["$ref"], result, f"result of {name}")
        seen[f"method {name}"] += 1
