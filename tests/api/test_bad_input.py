"""Bad input: each case gets its exact answer, and other clients are not disturbed."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from wallctl.client import ApiError, ConnectionRefused

from .conftest import Api, raw_login, recv_json, slow_reader, start_api, stop_api


async def bystander_ok(api: Api) -> None:
    """A second client, connected all along, still gets prompt answers."""
    c = await api.client("viewer1")
    t0 = time.perf_counter()
    assert (await c.call("wall.get"))["state"]["wall"] == "main"
    assert time.perf_counter() - t0 < 1.0
    await c.close()


def error_of(resp: dict[str, object]) -> tuple[object, object, object]:
    assert resp["op"] == "response" and resp["ok"] is False
    e = resp["error"]
    assert isinstance(e, dict)
    return resp["id"], e["code"], e["field"]


async def test_malformed_frames_are_answered(api: Api) -> None:
    ws = await raw_login(api.url)
    await ws.send("{not json")
    r = await recv_json(ws)
    assert error_of(r) == (None, "malformed_message", None)
    assert r["error"]["message"].startswith("not valid JSON")
    await ws.send(b'{"op":"request","id":1,"method":"wall.get"}')
    r = await recv_json(ws)
    assert error_of(r) == (None, "malformed_message", None)
    assert r["error"]["message"] == "binary frames are not supported: send JSON as text"
    await ws.send(
        '{"op":"request","id":"deep","method":"wall.get","params":{"a":'
        + "[" * 30
        + "]" * 30
        + "}}"
    )
    assert error_of(await recv_json(ws)) == ("deep", "malformed_message", None)
    await ws.send(
        json.dumps(
            {"op": "request", "id": "huge", "method": "wall.get", "params": {"a": [0] * 10000}}
        )
    )
    assert error_of(await recv_json(ws)) == ("huge", "malformed_message", None)
    await ws.send(json.dumps({"op": "frobnicate", "id": "u"}))
    assert error_of(await recv_json(ws)) == ("u", "unknown_method", "op")
    await ws.send(json.dumps({"op": "request", "id": "m", "method": "wall.explode"}))
    r = await recv_json(ws)
    assert error_of(r) == ("m", "unknown_method", "method")
    assert r["error"]["message"] == "unknown method 'wall.explode'"
    await ws.send(
        json.dumps(
            {
                "op": "request",
                "id": "t",
                "method": "window.move",
                "params": {"window": "w1", "x": "10", "y": 0},
            }
        )
    )
    r = await recv_json(ws)
    assert error_of(r) == ("t", "invalid_field", "params.x")
    assert r["error"]["message"] == "params.x must be an integer"
    await ws.send(
        json.dumps(
            {
                "op": "request",
                "id": "f",
                "method": "window.move",
                "params": {"window": "w1", "x": 1.5, "y": 0},
            }
        )
    )
    assert error_of(await recv_json(ws)) == ("f", "invalid_field", "params.x")
    await ws.send(
        json.dumps(
            {
                "op": "request",
                "id": "e",
                "method": "window.move",
                "params": {"window": "w1", "x": 1, "y": 0, "colour": "red"},
            }
        )
    )
    assert error_of(await recv_json(ws)) == ("e", "invalid_field", "params.colour")
    # Still served after all that.
    await ws.send(json.dumps({"op": "request", "id": "ok", "method": "wall.get"}))
    r = await recv_json(ws)
    assert r["ok"] is True and r["id"] == "ok"
    await bystander_ok(api)
    await ws.close()


async def test_oversized_frame_closes_1009(api: Api) -> None:
    ws = await raw_login(api.url, max_size=None)
    await ws.send(
        json.dumps({"op": "request", "id": 1, "method": "wall.get", "params": {"pad": "x" * 70000}})
    )
    with pytest.raises(ConnectionClosed):
        await recv_json(ws)
    assert ws.close_code == 1009
    await bystander_ok(api)


async def test_coordinates(api: Api) -> None:
    c = await api.client("op1")
    r = await c.request("window.move", {"window": "w1", "x": -5, "y": 0})
    assert r["error"]["code"] == "invalid_field" and r["error"]["field"] == "params.x"
    assert r["error"]["message"] == "params.x must be >= 0"
    r = await c.request("window.move", {"window": "w1", "x": 5000, "y": 0})
    assert r["error"] == {
        "code": "invalid_field",
        "field": "params.x",
        "retryable": False,
        "message": "x must be within 0..3839 (the canvas is 3840 px wide)",
    }
    r = await c.request("window.move", {"window": "w1", "x": 3000, "y": 0})
    assert (r["error"]["code"], r["error"]["field"]) == ("invalid_field", "params.w")
    r = await c.request("window.open", {"x": 0, "y": 0, "w": 8, "h": 100})
    assert (r["error"]["code"], r["error"]["field"]) == ("invalid_field", "params.w")
    # JSON has no NaN: a client that writes one sent malformed JSON.
    ws = await raw_login(api.url)
    await ws.send(
        '{"op":"request","id":"n","method":"window.move","params":{"window":"w1","x":NaN,"y":0}}'
    )
    r = await recv_json(ws)
    assert error_of(r) == (None, "malformed_message", None)
    assert "NaN is not JSON" in r["error"]["message"]
    await ws.close()
    r = await c.request("window.set_source", {"window": "w1", "source": "nosuch"})
    assert (r["error"]["code"], r["error"]["field"]) == ("not_found", "params.source")
    r = await c.request("window.move", {"window": "w99", "x": 0, "y": 0})
    assert (r["error"]["code"], r["error"]["field"]) == ("not_found", "params.window")
    assert r["error"]["message"] == "no window 'w99' on wall 'main'"
    r = await c.request("wall.get", {"wall": "nosuch"})
    assert (r["error"]["code"], r["error"]["field"]) == ("not_found", "params.wall")
    assert api.walls.state("main").revision == 1
    await c.close()


async def test_request_before_identify_closes_4003(api: Api) -> None:
    ws = await ws_connect(api.url)
    await recv_json(ws)
    await ws.send(json.dumps({"op": "request", "id": 1, "method": "wall.get"}))
    with pytest.raises(ConnectionClosed):
        await recv_json(ws)
    assert (ws.close_code, ws.close_reason) == (4003, "expected identify, got request")
    ws = await ws_connect(api.url)
    await recv_json(ws)
    await ws.send("garbage")
    with pytest.raises(ConnectionClosed):
        await recv_json(ws)
    assert ws.close_code == 4002
    await bystander_ok(api)


async def test_protocol_version_and_anonymous(api: Api) -> None:
    ws = await ws_connect(api.url)
    await recv_json(ws)
    await ws.send(json.dumps({"op": "identify", "protocol_version": 9}))
    with pytest.raises(ConnectionClosed):
        await recv_json(ws)
    assert ws.close_code == 4006
    with pytest.raises(ConnectionRefused) as e:
        await api.client(None)
    assert (e.value.code, e.value.reason) == (4005, "this server requires a login")


async def test_wrong_password_is_delayed_then_throttled(tmp_path: Path, accounts_db: Path) -> None:
    api = await start_api(tmp_path, accounts_db, login_delay_ms=200, login_failures_max=3)
    try:
        other = await api.client("viewer1")
        for account in ("op1", "nosuch", "op1"):
            t0 = time.perf_counter()
            with pytest.raises(ConnectionRefused) as e:
                await api.client(account, password="wrong password")
            assert (e.value.code, e.value.reason) == (4005, "authentication failed")
            assert time.perf_counter() - t0 >= 0.2
            # The waiting does not hold up anyone else.
            t1 = time.perf_counter()
            await other.call("wall.get")
            assert time.perf_counter() - t1 < 0.2
        with pytest.raises(ConnectionRefused) as e:
            await api.client("op1")  # right password, but the address is throttled
        assert e.value.code == 4010
        log = await asyncio.to_thread(api.store.audit_log, actor="nosuch")
        assert log[0].action == "session.login" and log[0].result == "denied"
        await other.close()
    finally:
        await stop_api(api)


async def test_identify_timeout(tmp_path: Path, accounts_db: Path) -> None:
    api = await start_api(tmp_path, accounts_db, identify_timeout=0.3)
    try:
        ws = await ws_connect(api.url)
        await recv_json(ws)
        with pytest.raises(ConnectionClosed):
            await recv_json(ws, wait=3)
        assert ws.close_code == 4011
    finally:
        await stop_api(api)


async def test_flood_is_rate_limited(tmp_path: Path, accounts_db: Path) -> None:
    api = await start_api(tmp_path, accounts_db, rate_limit=50, rate_burst=20)
    try:
        ws = await raw_login(api.url)
        n = 300
        for i in range(n):
            await ws.send(json.dumps({"op": "request", "id": i, "method": "wall.get"}))
        answers = [await recv_json(ws) for _ in range(n)]
        assert [a["id"] for a in answers] == list(range(n))  # each answered, once, in order
        ok = sum(a["ok"] for a in answers)
        limited = [a for a in answers if not a["ok"]]
        assert 20 <= ok < 60
        assert {a["error"]["code"] for a in limited} == {"rate_limited"}
        assert all(a["error"]["retryable"] for a in limited)
        await bystander_ok(api)
        await ws.close()
    finally:
        await stop_api(api)


async def test_client_that_never_reads(tmp_path: Path, accounts_db: Path) -> None:
    api = await start_api(tmp_path, accounts_db, event_queue=16)
    try:
        op = await api.client("op1")
        slow = await slow_reader(api, op, "viewer1")
        sub = next(
            s.sub
            for s in api.server.sessions.values()
            if s.identity and s.identity.account == "viewer1"
        )
        assert sub is not None
        worst = 0.0
        for i in range(300):
            t0 = time.perf_counter()
            await op.call("window.move", {"window": "w1", "x": i % 2, "y": 0})
            worst = max(worst, time.perf_counter() - t0)
            assert len(sub.queue) <= 16
        assert worst < 0.5  # the wall never waited for the slow reader
        assert api.server.hub.resyncs >= 1
        final = api.walls.state("main").revision
        # When it reads again: what fitted in the buffers, then resync, then a snapshot.
        seen: list[str] = []
        seqs: list[int] = []
        while True:
            ev = await recv_json(slow)
            seen.append(ev["type"])
            seqs.append(ev["seq"])
            if ev["type"] == "snapshot" and seen.count("resync"):
                assert ev["data"]["walls"][0]["revision"] == final
                break
        assert seqs == list(range(1, len(seqs) + 1))  # no gaps: the resync says what is missing
        assert seen[0] == "snapshot"
        await slow.close()
        await op.close()
    finally:
        await stop_api(api)


async def test_concurrent_conflicting_moves(api: Api) -> None:
    clients = [await api.client("op1" if i % 2 else "op2", validate=False) for i in range(20)]
    for rnd in range(3):
        rev = api.walls.state("main").revision

        async def one(c: Any, k: int, rnd: int = rnd, rev: int = rev) -> dict[str, Any]:
            r: dict[str, Any] = await c.request(
                "window.move", {"window": "w1", "x": 100 + k, "y": rnd}, if_revision=rev
            )
            return r

        answers = await asyncio.gather(
            *(one(c, i * 10 + j) for i, c in enumerate(clients) for j in range(10))
        )
        assert len(answers) == 200
        wins = [a for a in answers if a["ok"]]
        assert len(wins) == 1
        assert wins[0]["result"]["revision"] == rev + 1
        losers = {
            (a["error"]["code"], a["error"]["field"], a["error"]["retryable"])
            for a in answers
            if not a["ok"]
        }
        assert losers == {("conflict", "if_revision", True)}
        assert api.walls.state("main").revision == rev + 1
    for c in clients:
        await c.close()


async def test_origin_path_and_connection_cap(tmp_path: Path, accounts_db: Path) -> None:
    api = await start_api(
        tmp_path, accounts_db, max_connections=2, allowed_origins=["https://panel.example"]
    )
    try:
        # A page from elsewhere, from another port of this host, or a broken Origin.
        for bad in (
            "http://evil.example",
            "http://127.0.0.1:9999",
            "null",
            "http://[::1",
            "ftp://127.0.0.1:8080",
        ):
            with pytest.raises(InvalidStatus) as e:
                await ws_connect(api.url, origin=bad)  # type: ignore[arg-type]
            assert e.value.response.status_code == 403, bad
            assert b"origin not allowed" in e.value.response.body
        ok1 = await ws_connect(api.url, origin="https://panel.example")  # type: ignore[arg-type]
        ok2 = await ws_connect(api.url, origin="http://127.0.0.1:8080")  # type: ignore[arg-type]
        with pytest.raises(InvalidStatus) as e:
            await ws_connect(api.url)
        assert e.value.response.status_code == 503
        await ok1.close()
        await ok2.close()
        await asyncio.sleep(0.05)
        with pytest.raises(InvalidStatus) as e:
            await ws_connect(api.url.replace("/api/v1", "/other"))
        assert e.value.response.status_code == 404
    finally:
        await stop_api(api)


async def test_unknown_sources_and_errors_via_client(api: Api) -> None:
    c = await api.client("op1")
    with pytest.raises(ApiError) as e:
        await c.call("source.get", {"source": "nosuch"})
    assert (e.value.code, e.value.field) == ("not_found", "params.source")
    await c.close()


async def test_connection_flood_from_one_address(tmp_path: Path, accounts_db: Path) -> None:
    """New connections per address are rate-limited, and so is how many stay open; both
    answered with HTTP 429, and a client connected before is not disturbed."""
    api = await start_api(
        tmp_path,
        accounts_db,
        # Slow refill, so a loaded machine cannot refill the bucket behind the test's back.
        connect_rate=0.5,
        connect_burst=3,
        max_connections_per_address=4,
        # The raw connections below never identify: they must stay open meanwhile.
        identify_timeout=60,
    )
    try:
        early = await api.client("viewer1")
        opened = [await ws_connect(api.url) for _ in range(2)]
        with pytest.raises(InvalidStatus) as e:
            await ws_connect(api.url)
        assert e.value.response.status_code == 429
        assert b"too many new connections from this address" in e.value.response.body
        assert api.server.counters.connections_refused == 1
        await bystander_ok_with(early)
        # The bucket refills at connect_rate: one more after two seconds.
        await asyncio.sleep(2.1)
        opened.append(await ws_connect(api.url))
        # Four are open now (early and three raw): the next is refused for that, first.
        with pytest.raises(InvalidStatus) as e:
            await ws_connect(api.url)
        assert e.value.response.status_code == 429
        assert b"too many connections from this address (at most 4)" in e.value.response.body
        await opened.pop().close()
        await asyncio.sleep(2.1)
        opened.append(await ws_connect(api.url))
        await bystander_ok_with(early)
        for ws in opened:
            await ws.close()
        await early.close()
    finally:
        await stop_api(api)


async def bystander_ok_with(c: Any) -> None:
    t0 = time.perf_counter()
    assert (await c.call("wall.get"))["state"]["wall"] == "main"
    assert time.perf_counter() - t0 < 1.0
