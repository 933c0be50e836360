"""Session tokens (the web console's reconnects), logout, an admin ending a session, and
events from the daemon's bus reaching exactly their subscribers."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import secrets
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from wallctl.bus import EventBus
from wallctl.client import ApiError, Client, ConnectionRefused, connect
from wallctl.store import Actor

from .conftest import PASSWORD, Api, recv_json, start_api, stop_api


async def refused(api: Api, **kw: Any) -> tuple[int | None, str, float]:
    """Connect expecting a refusal: (close code, reason, seconds it took)."""
    t0 = time.perf_counter()
    with pytest.raises(ConnectionRefused) as e:
        await api.client(None, **kw)
    return e.value.code, e.value.reason, time.perf_counter() - t0


def token_rows(api: Api) -> list[tuple[bytes, str, str, float]]:
    return api.store.read_sync(
        lambda c: c.execute(
            "SELECT token_hash, account, session, expires_ts FROM api_tokens ORDER BY created_ts"
        ).fetchall()
    )


async def test_token_identifies_and_logout_revokes(api: Api) -> None:
    a = await api.client("op1")
    assert a.hello["authentication"]["mechanisms"] == ["SCRAM-SHA-256", "token"]
    t1 = await a.call("session.token")
    t2 = await a.call("session.token")
    for t in (t1, t2):
        assert re.fullmatch(r"[A-Za-z0-9_\-]{43,}", t["token"])
        assert abs(t["expires"] - (time.time() + 12 * 3600)) < 60
    assert t1["token"] != t2["token"]

    b = await api.client(token=t1["token"])
    ident = b.identified
    assert ident["identity"] == {"account": "op1", "display_name": "OP1", "role": "operator"}
    assert ident["server_signature"] is None and ident["session"] != a.session
    # It acts as op1, audited as op1 in its own session.
    await b.call("window.move", {"window": "w1", "x": 4, "y": 4})
    entry = (await asyncio.to_thread(api.store.audit_log, wall="main"))[0]
    assert (entry.actor, entry.session, entry.action) == ("op1", b.session, "window.move")
    logins = await asyncio.to_thread(api.store.audit_log, actor="op1")
    assert any(
        e.action == "session.login" and e.session == b.session and e.detail["mechanism"] == "token"
        for e in logins
    )

    # Only hashes are stored, and the audit log never holds a token.
    rows = await asyncio.to_thread(token_rows, api)
    assert [r[0] for r in rows] == [hashlib.sha256(t["token"].encode()).digest() for t in (t1, t2)]
    assert {(r[1], r[2]) for r in rows} == {("op1", a.session)}
    dump = await asyncio.to_thread(lambda: "\n".join(sqlite3.connect(api.store.path).iterdump()))
    assert t1["token"] not in dump and t2["token"] not in dump

    # b identified with t1: its logout revokes t1 (and b asked for none).
    assert await b.call("session.logout") == {"revoked": 1}
    code, reason, _ = await refused(api, token=t1["token"])
    assert (code, reason) == (4005, "authentication failed")
    # a still holds t2 until it logs out too.
    c = await api.client(token=t2["token"])
    assert await a.call("session.logout") == {"revoked": 1}
    assert (await refused(api, token=t2["token"]))[0] == 4005
    # A logged-out session stays open (the client closes it) and others are untouched.
    assert (await c.call("wall.get"))["state"]["wall"] == "main"
    actions = [e.action for e in await asyncio.to_thread(api.store.audit_log, actor="op1")]
    assert actions.count("session.token") == 2 and actions.count("session.logout") == 2
    for x in (a, b, c):
        await x.close()


async def test_tokens_survive_a_restart(tmp_path: Path, accounts_db: Path) -> None:
    api = await start_api(tmp_path, accounts_db)
    try:
        a = await api.client("viewer1")
        t = await a.call("session.token")
        await a.close()
    finally:
        await stop_api(api)
    api = await start_api(tmp_path, accounts_db)
    try:
        b = await api.client(token=t["token"])
        assert b.identified["identity"]["account"] == "viewer1"
        assert b.identified["scopes"] == ["read", "subscribe"]
        await b.close()
    finally:
        await stop_api(api)


async def test_tokens_end_with_their_account(api: Api) -> None:
    tokens: dict[str, str] = {}
    for name in ("op1", "op2", "viewer1", "admin1"):
        c = await api.client(name)
        tokens[name] = (await c.call("session.token"))["token"]
        await c.close()
    accounts = api.server.accounts
    assert hasattr(accounts, "passwd")
    await accounts.passwd("op1", "a new password 1")  # type: ignore[attr-defined]
    await accounts.set_disabled("op2", True)  # type: ignore[attr-defined]
    await accounts.remove("viewer1")  # type: ignore[attr-defined]
    for name in ("op1", "op2", "viewer1"):
        assert (await refused(api, token=tokens[name]))[0] == 4005, name
    # Nothing else was disturbed: admin1's token still works, as op1's new password does.
    admin = await api.client(token=tokens["admin1"])
    assert admin.role == "admin"
    op1 = await api.client("op1", password="a new password 1")
    for c in (admin, op1):
        await c.close()
    # Re-enabling op2 does not bring its old token back.
    await accounts.set_disabled("op2", False)  # type: ignore[attr-defined]
    assert (await refused(api, token=tokens["op2"]))[0] == 4005


async def test_bad_tokens_fail_like_a_wrong_password(tmp_path: Path, accounts_db: Path) -> None:
    api = await start_api(tmp_path, accounts_db, login_delay_ms=600, login_failures_max=4)
    try:
        other = await api.client("viewer1")
        good = (await other.call("session.token"))["token"]
        # Expired: moved into the past in the store.
        expired_client = await api.client("op1")
        expired = (await expired_client.call("session.token"))["token"]
        digest = hashlib.sha256(expired.encode()).digest()
        await api.store.write(
            lambda c: c.execute(
                "UPDATE api_tokens SET expires_ts = ? WHERE token_hash = ?",
                (time.time() - 1, digest),
            )
        )
        for bad in (secrets.token_urlsafe(32), "not a token, not even urlsafe", expired):
            code, reason, took = await refused(api, token=bad)
            assert (code, reason) == (4005, "authentication failed"), bad
            assert took >= 0.6
            # The waiting does not hold up anyone else.
            t0 = time.perf_counter()
            await other.call("wall.get")
            assert time.perf_counter() - t0 < 1.0
        denied = await asyncio.to_thread(api.store.audit_log, actor="(token)")
        assert len(denied) == 3 and {e.result for e in denied} == {"denied"}
        # Account and token together is a malformed identify, answered at once (the
        # client library refuses to send it, so this goes raw).
        with pytest.raises(ValueError):
            await connect(api.url, account="viewer1", password=PASSWORD, token=good)
        ws = await ws_connect(api.url)
        await recv_json(ws)
        identify = {"op": "identify", "protocol_version": 1, "account": "op1", "token": good}
        t0 = time.perf_counter()
        await ws.send(json.dumps(identify))
        with pytest.raises(ConnectionClosed):
            await recv_json(ws)
        assert (ws.close_code, ws.close_reason) == (
            4002,
            "identify takes account or token, not both",
        )
        # At once, not after the login delay (0.6 s).
        assert time.perf_counter() - t0 < 0.5
        # The failures count towards the address's throttle, passwords and tokens alike.
        assert (await refused(api, token=secrets.token_urlsafe(32)))[0] == 4005
        assert (await refused(api, token=good))[0] == 4010
        with pytest.raises(ConnectionRefused) as e:
            await api.client("op1")
        assert e.value.code == 4010
        await other.close()
        await expired_client.close()
    finally:
        await stop_api(api)


async def test_anonymous_session_gets_no_token(tmp_path: Path, accounts_db: Path) -> None:
    api = await start_api(tmp_path, accounts_db, anonymous_role="viewer")
    try:
        anon = await api.client(None)
        with pytest.raises(ApiError) as e:
            await anon.call("session.token")
        assert (e.value.code, e.value.field) == ("not_permitted", "method")
        assert "anonymous" in e.value.message
        assert await asyncio.to_thread(token_rows, api) == []
        await anon.close()
    finally:
        await stop_api(api)


async def wait_gone(api: Api, session: str) -> None:
    for _ in range(500):
        if session not in api.server.sessions:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"session {session} still listed")


async def test_admin_ends_another_session(api: Api) -> None:
    admin = await api.client("admin1", subscriptions=["session"])
    victim = await api.client("op1")
    bystander = await api.client("viewer1")
    op2 = await api.client("op2")

    async def kick_error(c: Client, params: dict[str, Any]) -> tuple[str, str | None, str]:
        with pytest.raises(ApiError) as e:
            await c.call("session.kick", params)
        return e.value.code, e.value.field, e.value.message

    assert (await kick_error(op2, {"session": victim.session}))[:2] == ("not_permitted", "method")
    assert await kick_error(admin, {"session": "nosuch"}) == (
        "not_found",
        "params.session",
        "no session 'nosuch'",
    )
    assert (await kick_error(admin, {"session": admin.session}))[:2] == (
        "invalid_field",
        "params.session",
    )
    assert (await kick_error(admin, {"session": victim.session, "reason": "a\nb"}))[:2] == (
        "invalid_field",
        "params.reason",
    )
    assert (await kick_error(admin, {"session": victim.session, "reason": "x" * 81}))[:2] == (
        "invalid_field",
        "params.reason",
    )
    # Nothing of that touched the victim.
    assert (await victim.call("wall.get"))["state"]["wall"] == "main"

    r = await admin.call("session.kick", {"session": victim.session, "reason": "交班 shift change"})
    assert (r["session"]["session"], r["session"]["account"]) == (victim.session, "op1")
    assert r["revoked_tokens"] == 0
    async with asyncio.timeout(5):
        await victim.ws.wait_closed()
    assert victim.ws.close_code == 4012
    assert victim.ws.close_reason == "ended by admin1: 交班 shift change"
    with pytest.raises(ConnectionRefused) as closed_err:
        await victim.call("wall.get")
    assert closed_err.value.code == 4012
    await wait_gone(api, victim.session)
    closed = await admin.next_event("session.closed")
    assert closed["data"] == {"session": victim.session, "account": "op1"}
    sessions = {s["session"] for s in (await admin.call("session.list"))["sessions"]}
    assert victim.session not in sessions and bystander.session in sessions

    entry = (await asyncio.to_thread(api.store.audit_log, actor="admin1"))[0]
    assert entry.action == "session.kick" and entry.session == admin.session
    assert entry.detail["session"] == victim.session and entry.detail["account"] == "op1"
    assert entry.detail["reason"] == "交班 shift change"
    assert (await bystander.call("wall.get"))["state"]["wall"] == "main"

    # With revoke_tokens the kicked client cannot come straight back with its token.
    holder = await api.client("op2")
    token = (await holder.call("session.token"))["token"]
    again = await api.client(token=token)
    r = await admin.call("session.kick", {"session": again.session, "revoke_tokens": True})
    assert r["revoked_tokens"] == 1
    async with asyncio.timeout(5):
        await again.ws.wait_closed()
    assert (again.ws.close_code, again.ws.close_reason) == (4012, "ended by admin1")
    assert (await refused(api, token=token))[0] == 4005
    for c in (admin, bystander, op2, holder):
        await c.close()


async def test_bus_events_reach_their_subscribers_only(tmp_path: Path, accounts_db: Path) -> None:
    bus = EventBus()
    api = await start_api(tmp_path, accounts_db, bus=bus)
    try:
        devices = await api.client("viewer1", subscriptions=["device"])
        walls = await api.client("viewer1", subscriptions=["wall"])
        snap = await walls.next_event()
        assert (snap["type"], snap["seq"]) == ("snapshot", 1)
        actor = Actor("op2", via="mqtt", session="s-77")
        bus.publish("device", "device.status", {"device": "matrix1", "state": "ok"}, actor=actor)
        bus.publish("device", "device.status", {"device": "matrix1", "state": "lost"}, wall="main")
        first = await devices.next_event()
        second = await devices.next_event()
        assert (first["seq"], first["type"], first["category"]) == (1, "device.status", "device")
        assert first["origin"] == {"identity": "op2", "session": "s-77", "via": "mqtt"}
        assert first["data"] == {"device": "matrix1", "state": "ok"}
        assert first["wall"] is None and first["revision"] is None
        assert second["seq"] == 2 and second["data"]["state"] == "lost"
        assert second["origin"] == {"identity": "system", "session": None, "via": "system"}
        assert (second["wall"], second["revision"]) == ("main", 1)
        # The wall subscriber got none of it: a round trip later its queue is empty.
        await walls.call("wall.get")
        assert walls.events.empty()
        # And a wall change reaches the wall subscriber, not the device one, with seq 2.
        op = await api.client("op1")
        await op.call("window.raise", {"window": "w1"})
        ev = await walls.next_event()
        assert (ev["seq"], ev["type"]) == (2, "wall.changed")
        await devices.call("wall.get")
        assert devices.events.empty()
        for c in (devices, walls, op):
            await c.close()
    finally:
        await stop_api(api)
