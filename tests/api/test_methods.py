"""Roles, audit, batches, events and the other methods, through the real client."""

from __future__ import annotations

import asyncio

import pytest

from wallctl.client import ApiError

from .conftest import Api


async def test_roles(api: Api) -> None:
    viewer = await api.client("viewer1")
    op = await api.client("op1")
    admin = await api.client("admin1")
    assert viewer.identified["scopes"] == ["read", "subscribe"]
    assert (await viewer.call("wall.get"))["state"]["revision"] == 1
    with pytest.raises(ApiError) as e:
        await viewer.call("window.move", {"window": "w1", "x": 0, "y": 0})
    assert (e.value.code, e.value.field) == ("not_permitted", "method")
    assert e.value.message == "window.move needs the operator role (you are viewer)"
    with pytest.raises(ApiError) as e:
        await op.call("session.list")
    assert e.value.code == "not_permitted"
    sessions = (await admin.call("session.list"))["sessions"]
    assert {s["account"] for s in sessions} == {"viewer1", "op1", "admin1"}
    denied = await asyncio.to_thread(api.store.audit_log, actor="viewer1")
    assert denied[0].action == "window.move" and denied[0].result == "denied"
    for c in (viewer, op, admin):
        await c.close()


async def test_changes_are_audited_with_identity(api: Api) -> None:
    op = await api.client("op2")
    await op.call("window.move", {"window": "w2", "x": 8, "y": 8})
    entry = (await asyncio.to_thread(api.store.audit_log, wall="main"))[0]
    assert (entry.actor, entry.session, entry.via, entry.action, entry.revision) == (
        "op2",
        op.session,
        "api",
        "window.move",
        2,
    )
    assert entry.detail == {"window": "w2", "x": 8, "y": 8, "snap": False}
    login = (await asyncio.to_thread(api.store.audit_log, actor="op2"))[-1]
    assert login.action == "session.login" and login.result == "ok"
    await op.close()


async def test_subscriptions_and_reidentify(api: Api) -> None:
    viewer = await api.client("viewer1", subscriptions=["wall", "session"])
    assert viewer.identified["subscriptions"] == ["wall"]
    assert viewer.identified["refused_subscriptions"] == ["session"]
    assert (await viewer.next_event())["type"] == "snapshot"
    quiet = await api.client("op1")
    await quiet.call("window.raise", {"window": "w1"})
    ev = await viewer.next_event()
    assert ev["type"] == "wall.changed" and ev["data"]["action"] == "window.raise"
    assert quiet.events.empty()
    ident = await quiet.reidentify(["wall", "layout"])
    assert ident["subscriptions"] == ["wall", "layout"] and ident["server_signature"] is None
    snap = await quiet.next_event()
    assert snap["type"] == "snapshot" and snap["revision"] == 2
    await quiet.call("layout.save", {"name": "我的预案"})
    ev = await quiet.next_event()
    assert (ev["type"], ev["data"]["name"], ev["origin"]["identity"]) == (
        "layout.saved",
        "我的预案",
        "op1",
    )
    await quiet.reidentify([])
    await quiet.call("window.raise", {"window": "w2"})
    await viewer.next_event()
    await asyncio.sleep(0.05)
    assert quiet.events.empty()
    admin = await api.client("admin1", subscriptions=["session"])
    await (await api.client("viewer1")).close()
    ev = await admin.next_event("session.opened")
    assert ev["data"]["account"] == "admin1"  # its own session first
    ev = await admin.next_event("session.opened")
    assert ev["data"]["account"] == "viewer1"
    ev = await admin.next_event("session.closed")
    for c in (viewer, quiet, admin):
        await c.close()


async def test_atomic_batch(api: Api) -> None:
    op = await api.client("op1")
    viewer = await api.client("viewer1", subscriptions=["wall"])
    await viewer.next_event()
    r = await op.batch(
        [
            {"id": "open", "method": "window.open", "params": {"x": 0, "y": 0, "w": 640, "h": 360}},
            {
                "id": "src",
                "method": "window.set_source",
                "params": {"window": {"$ref": "open.window.id"}, "source": "cam1"},
            },
            {
                "id": "mv",
                "method": "window.move",
                "params": {"window": {"$ref": "open.window.id"}, "x": 100, "y": 100},
            },
        ],
        "atomic",
    )
    assert r["ok"] and r["revision"] == 2
    wid = r["results"][0]["result"]["window"]["id"]
    assert r["results"][2]["result"]["window"] == {
        **r["results"][2]["result"]["window"],
        "id": wid,
        "x": 100,
        "source": "cam1",
    }
    ev = await viewer.next_event()
    assert ev["revision"] == 2 and ev["data"]["action"] == "batch"
    # All or nothing: the third fails, nothing changes, the field says where.
    r = await op.batch(
        [
            {"id": 1, "method": "window.close", "params": {"window": "w1"}},
            {"id": 2, "method": "window.move", "params": {"window": "w2", "x": 0, "y": 0}},
            {"id": 3, "method": "window.move", "params": {"window": "w3", "x": 99999, "y": 0}},
        ],
        "atomic",
    )
    assert not r["ok"]
    assert (r["error"]["code"], r["error"]["field"]) == ("invalid_field", "requests[2].params.x")
    assert [x.get("error", {}).get("code") for x in r["results"]] == [
        "aborted",
        "aborted",
        "invalid_field",
    ]
    assert api.walls.state("main").revision == 2
    r = await op.batch([{"id": 1, "method": "wall.get"}], "atomic")
    assert (r["error"]["code"], r["error"]["field"]) == ("invalid_field", "requests[0].method")
    r = await op.batch(
        [{"id": 1, "method": "window.raise", "params": {"window": "w1"}}], "atomic", if_revision=1
    )
    assert (r["error"]["code"], r["error"]["field"]) == ("conflict", "if_revision")
    await asyncio.sleep(0.05)
    assert viewer.events.empty()  # one event for the one applied batch
    await op.close()
    await viewer.close()


async def test_ordered_batch(api: Api) -> None:
    op = await api.client("op1")
    r = await op.batch(
        [
            {"id": "a", "method": "window.open", "params": {"x": 0, "y": 0, "w": 640, "h": 360}},
            {
                "id": "b",
                "method": "window.set_source",
                "params": {"window": {"$ref": "a.window.id"}, "source": "bars"},
            },
            {"id": "c", "method": "window.close", "params": {"window": "w404"}},
            {"id": "d", "method": "window.close", "params": {"window": {"$ref": "a.window.id"}}},
        ],
        "ordered",
    )
    assert not r["ok"]
    assert [x["ok"] for x in r["results"]] == [True, True, False, False]
    assert (r["error"]["code"], r["error"]["field"]) == ("not_found", "requests[2].params.window")
    assert r["results"][3]["error"]["code"] == "aborted"
    assert api.walls.state("main").revision == 3
    r = await op.batch(
        [{"id": "x", "method": "wall.get", "params": {"wall": {"$ref": "nope.id"}}}], "ordered"
    )
    assert (r["error"]["code"], r["error"]["field"]) == ("invalid_field", "requests[0].params.wall")
    await op.close()


async def test_layouts_sources_history_devices(api: Api) -> None:
    op = await api.client("op1")
    layouts = await op.call("layout.list")
    assert "2x2" in {t["name"] for t in layouts["templates"]}
    r = await op.call("layout.apply", {"name": "3x3", "wall": "main"})
    assert r["revision"] == 2
    await op.call("layout.save", {"name": "p1"})
    assert [p["name"] for p in (await op.call("layout.list"))["presets"]] == ["p1"]
    await op.call("layout.delete", {"name": "p1"})
    with pytest.raises(ApiError) as e:
        await op.call("layout.delete", {"name": "p1"})
    assert (e.value.code, e.value.field) == ("not_found", "params.name")
    with pytest.raises(ApiError) as e:
        await op.call("layout.apply", {"name": "nosuch"})
    assert (e.value.code, e.value.field) == ("not_found", "params.name")
    sources = (await op.call("source.list"))["sources"]
    cam = next(s for s in sources if s["id"] == "cam1")
    assert "secretpw" not in cam["url"] and cam["name"] == "摄像机"
    hist = await op.call("state.history", {"limit": 5})
    assert [h["revision"] for h in hist["revisions"]] == [2, 1]
    assert hist["revisions"][0]["actor"] == "op1"
    r = await op.call("state.restore", {"revision": 1})
    assert r["revision"] == 3
    assert len(api.walls.state("main").windows) == 4
    with pytest.raises(ApiError) as e:
        await op.call("state.restore", {})
    assert e.value.code == "invalid_field"
    assert await op.call("device.list") == {"devices": []}
    for m, p in (
        ("device.status", {"device": "matrix1"}),
        ("device.call", {"device": "matrix1", "action": "tie"}),
    ):
        with pytest.raises(ApiError) as e:
            await op.call(m, p)
        assert (e.value.code, e.value.field) == ("not_found", "params.device")
    walls = await op.call("wall.list")
    assert [w["id"] for w in walls["walls"]] == ["main", "side"]
    opened = await op.call("window.open", {"wall": "side", "x": 0, "y": 0, "w": 100, "h": 100})
    assert opened["wall"] == "side" and opened["revision"] == 1
    await op.call("window.fullscreen", {"wall": "side", "window": opened["window"]["id"]})
    await op.close()
