from __future__ import annotations

from .conftest import Api


async def test_login_and_wall_get(api: Api) -> None:
    c = await api.client("op1", subscriptions=["wall"])
    assert c.role == "operator"
    snap = await c.next_event()
    assert snap["type"] == "snapshot" and snap["seq"] == 1
    res = await c.call("wall.get")
    assert res["state"]["revision"] == 1
    assert len(res["state"]["windows"]) == 4
    moved = await c.call("window.move", {"window": "w1", "x": 10, "y": 20})
    assert moved["revision"] == 2 and moved["window"]["x"] == 10
    ev = await c.next_event()
    assert ev["type"] == "wall.changed" and ev["revision"] == 2 and ev["seq"] == 2
    assert ev["origin"] == {"identity": "op1", "session": c.session, "via": "api"}
    await c.close()
