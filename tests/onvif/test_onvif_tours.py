"""Camera tours (轮巡) and full screen and back, through the API of a running daemon."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from camrig import (
    Rig,
    eventually,
    rig_fixture,  # noqa: F401 (the "rig" fixture)
)

from wallctl.client import ApiError, open_client


def window(rig: Rig, wid: str) -> Any:
    return rig.rt.walls.state("main").window(wid)


async def test_tour_cycles_with_presets_pauses_resumes_and_stops(rig: Rig) -> None:
    cam = rig.cameras["ptz1"]
    async with open_client(
        rig.api_url,
        account="admin",
        password=rig.admin_password,
        validate=True,
        subscriptions=["camera"],
    ) as c:
        opened = await c.call("window.open", {"x": 0, "y": 0, "w": 1920, "h": 1080})
        wid = opened["window"]["id"]
        # Bad input first: each refused with the field at fault, no tour started.
        for stops, field in (
            ([{"source": "bars", "dwell_s": 2.5}], "params.stops[0].dwell_s"),
            ([{"source": "nope", "dwell_s": 5}], "params.stops[0].source"),
            ([{"source": "bars", "dwell_s": 5, "preset": "1"}], "params.stops[0].preset"),
        ):
            try:
                await c.call("tour.start", {"window": wid, "stops": stops})
            except ApiError as e:
                assert e.code in ("invalid_field", "not_found") and e.field == field, e
            else:
                raise AssertionError(f"tour {stops} accepted")
        try:
            await c.call(
                "tour.start", {"window": "w999", "stops": [{"source": "bars", "dwell_s": 3}]}
            )
        except ApiError as e:
            assert e.code == "not_found" and e.field == "params.window"
        assert (await c.call("tour.list"))["tours"] == []

        t0 = time.monotonic()
        started = await c.call(
            "tour.start",
            {
                "window": wid,
                "stops": [
                    {"source": "cam-ptz", "dwell_s": 3, "preset": "1"},
                    {"source": "bars", "dwell_s": 3},
                ],
            },
        )
        assert started["tour"]["state"] == "running"
        await eventually(lambda: window(rig, wid).source == "cam-ptz", 3)
        assert cam.position == (0.1, 0.0, 0.0)  # preset "1" (Gate) was called first
        assert any(x.operation == "GotoPreset" and x.args["preset"] == "1" for x in cam.calls)
        await eventually(lambda: window(rig, wid).source == "bars", 6)
        assert time.monotonic() - t0 >= 2.9  # the dwell was kept
        paused = (await c.call("tour.pause", {"window": wid}))["tour"]
        assert paused["state"] == "paused" and 0 < paused["remaining_s"] <= 3
        await asyncio.sleep(3.5)
        assert window(rig, wid).source == "bars"  # nothing moves while paused
        listed = (await c.call("tour.list"))["tours"]
        assert listed[0]["state"] == "paused" and listed[0]["source"] == "bars"
        await c.call("tour.resume", {"window": wid})
        await eventually(lambda: window(rig, wid).source == "cam-ptz", 5)
        stopped = (await c.call("tour.stop", {"window": wid}))["tour"]
        assert stopped["state"] == "stopped" and stopped["rounds"] >= 1
        await asyncio.sleep(0.1)
        assert (await c.call("tour.list"))["tours"] == []
        try:
            await c.call("tour.pause", {"window": wid})
        except ApiError as e:
            assert e.code == "not_found"
        types = []
        async with asyncio.timeout(5):
            while "tour.stopped" not in types:
                types.append((await c.next_event())["type"])
        for t in ("tour.started", "tour.step", "tour.paused", "tour.resumed", "tour.stopped"):
            assert t in types, types
    # Every step is a wall revision by the tour's starter (the audit says who).
    steps = [a for a in rig.rt.store.audit_log(limit=100) if a.action == "tour.step"]
    assert steps and {a.actor for a in steps} == {"admin"}


async def test_a_tour_ends_when_its_window_is_closed(rig: Rig) -> None:
    async with open_client(
        rig.api_url, account="admin", password=rig.admin_password, subscriptions=["camera"]
    ) as c:
        wid = (await c.call("window.open", {"x": 0, "y": 0, "w": 960, "h": 540}))["window"]["id"]
        await c.call(
            "tour.start",
            {
                "window": wid,
                "loop": True,
                "stops": [{"source": "bars", "dwell_s": 3}, {"source": "cam-fixed", "dwell_s": 3}],
            },
        )
        await c.call("window.close", {"window": wid})
        async with asyncio.timeout(8):
            while True:
                ev = await c.next_event()
                if ev["type"] == "tour.stopped":
                    break
        assert ev["data"]["reason"] == "window closed"
        assert (await c.call("tour.list"))["tours"] == []
        # An operator setting the window's source by hand takes it over: the tour ends.
        wid = (await c.call("window.open", {"x": 0, "y": 0, "w": 960, "h": 540}))["window"]["id"]
        stops = [{"source": "bars", "dwell_s": 3}, {"source": "cam-fixed", "dwell_s": 3}]
        await c.call("tour.start", {"window": wid, "stops": stops})
        await eventually(lambda: window(rig, wid).source == "bars", 3)
        await c.call("window.set_source", {"window": wid, "source": "cam-ptz"})
        async with asyncio.timeout(8):
            while True:
                ev = await c.next_event()
                if ev["type"] == "tour.stopped":
                    break
        assert ev["data"]["reason"] == "window taken over (window.set_source)"
        await asyncio.sleep(3.2)
        assert window(rig, wid).source == "cam-ptz"  # the tour did not come back


async def test_fullscreen_and_back_to_exactly_where_it_was(rig: Rig) -> None:
    async with open_client(rig.api_url, account="admin", password=rig.admin_password) as c:
        a = (await c.call("window.open", {"x": 100, "y": 60, "w": 640, "h": 360}))["window"]
        b = (await c.call("window.open", {"x": 200, "y": 100, "w": 800, "h": 450}))["window"]
        assert b["z"] > a["z"]
        full = (await c.call("window.fullscreen", {"window": a["id"]}))["window"]
        assert (full["x"], full["y"], full["w"], full["h"]) == (0, 0, 3840, 2160)
        assert full["z"] > b["z"]  # on top of everything
        # Going full screen twice keeps the original place, not the full-screen one.
        await c.call("window.fullscreen", {"window": a["id"]})
        back = (await c.call("window.fullscreen", {"window": a["id"], "on": False}))["window"]
        assert (back["x"], back["y"], back["w"], back["h"], back["z"]) == (
            a["x"],
            a["y"],
            a["w"],
            a["h"],
            a["z"],
        )
        # To its tile: the tile block under it (the top-left 1920x1080 tile).
        tile = (await c.call("window.fullscreen", {"window": a["id"], "target": "tile"}))["window"]
        assert (tile["x"], tile["y"], tile["w"], tile["h"]) == (0, 0, 1920, 1080)
        back = (await c.call("window.fullscreen", {"window": a["id"], "on": False}))["window"]
        assert (back["x"], back["y"], back["w"], back["h"]) == (100, 60, 640, 360)
        try:
            await c.call("window.fullscreen", {"window": a["id"], "target": "moon"})
        except ApiError as e:
            assert e.code == "invalid_field"
        else:
            raise AssertionError("target moon accepted")
