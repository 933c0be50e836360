"""The device methods of the control API, end to end: client -> API -> service -> driver ->
simulator on a real TCP port, and events back."""

from __future__ import annotations

import pytest
from conftest import Stack

from wallctl.client import ApiError


async def test_device_list_describes_actions_and_names(stack: Stack) -> None:
    c = await stack.client("viewer1")
    try:
        devices = {d["id"]: d for d in (await c.call("device.list"))["devices"]}
        assert set(devices) == {"matrix", "matrix2", "panel"}
        m = devices["matrix"]
        assert m["status"] == "ok" and m["protocol"] == "extron-sis" and m["family"] == "matrix"
        assert m["manifest"]["vendor"] == "Extron"
        assert m["inputs"] == {"1": "市级会议终端", "3": "区级会议终端"}
        assert m["size"] == {"inputs": 8, "outputs": 8}
        actions = {a["name"]: a for a in m["actions"]}
        assert {"route", "salvo", "ties", "preset"} <= set(actions)
        route = actions["route"]["params"]
        assert route["properties"]["outputs"]["type"] == "array"
        assert set(route["required"]) == {"input", "outputs"}
        assert m["state"]["tie.video.1"] == 1
        # A viewer reads but does not switch.
        with pytest.raises(ApiError) as e:
            await c.call("matrix.route", {"device": "matrix", "input": 1, "outputs": [2]})
        assert e.value.code == "not_permitted"
    finally:
        await c.close()


async def test_route_by_name_with_events(stack: Stack) -> None:
    c = await stack.client("op1", subscriptions=["device"])
    try:
        r = await c.call(
            "matrix.route",
            {"device": "matrix", "input": "区级会议终端", "outputs": ["大屏输入5", 6]},
        )
        assert r["ok"] is True
        assert r["ties"][0] == {
            "input": 3,
            "output": 5,
            "level": "av",
            "ok": True,
            "input_name": "区级会议终端",
            "output_name": "大屏输入5",
        }
        sim = stack.service.devices["matrix"].simulator
        assert sim is not None
        assert sim.sim.ties["video"][5] == 3  # type: ignore[attr-defined]
        ev = await c.next_event("matrix.route")
        assert ev["data"]["device"] == "matrix"
        assert ev["data"]["origin"] == "command"
        routes = [e.data for e in stack.events if e.type == "matrix.route"]
        last = [d for d in routes if d["output"] == 5 and d["level"] == "video"][-1]
        assert last["input"] == 3 and last["origin"] == "command"
        assert last["input_name"] == "区级会议终端" and last["output_name"] == "大屏输入5"
        status = await c.call("matrix.status", {"device": "matrix"})
        assert status["matrices"][0]["ties"]["video"]["5"] == 3
        assert len((await c.call("matrix.status"))["matrices"]) == 2  # not the panel
    finally:
        await c.close()


async def test_salvo_validated_before_anything_moves(stack: Stack) -> None:
    c = await stack.client()
    try:
        sim = stack.service.devices["matrix2"].simulator
        assert sim is not None
        before = dict(sim.sim.routes["video"])  # type: ignore[attr-defined]
        with pytest.raises(ApiError) as e:
            await c.call(
                "matrix.salvo",
                {
                    "device": "matrix2",
                    "ties": [{"input": 2, "output": 1}, {"input": 2, "output": 9}],
                },
            )
        assert (e.value.code, e.value.field) == ("invalid_field", "params.ties[1].output")
        assert sim.sim.routes["video"] == before  # type: ignore[attr-defined]
        r = await c.call(
            "matrix.salvo",
            {
                "device": "matrix2",
                "ties": [{"input": 2, "output": 1}, {"input": 4, "output": 2, "level": "video"}],
            },
        )
        assert r["ok"] and [t["output"] for t in r["ties"]] == [1, 2]
        assert sim.sim.routes["video"][2] == 4  # type: ignore[attr-defined]
    finally:
        await c.close()


async def test_errors_name_the_field(stack: Stack) -> None:
    c = await stack.client()
    try:
        cases = [
            ("device.status", {"device": "nope"}, "not_found", "params.device"),
            ("device.call", {"device": "matrix", "action": "fly"}, "not_found", "params.action"),
            (
                "device.call",
                {"device": "matrix", "action": "route", "args": {"input": 1, "outputs": [99]}},
                "invalid_field",
                "params.args.outputs[0]",
            ),
            (
                "device.call",
                {"device": "matrix", "action": "route", "args": {"input": "1*1!", "outputs": [1]}},
                "invalid_field",
                "params.args.input",
            ),
            (
                "matrix.route",
                {"device": "matrix", "input": "区级会议终端\r\n1*1!", "outputs": [1]},
                "invalid_field",
                "params.input",
            ),
            (
                "matrix.route",
                {"device": "matrix", "input": 1, "outputs": ["x" * 65]},
                "invalid_field",
                "params.outputs[0]",
            ),
            (
                "matrix.route",
                {"device": "matrix", "input": 9, "outputs": [1]},
                "invalid_field",
                "params.input",
            ),
            ("display.power", {"device": "matrix", "on": True}, "invalid_field", "params.device"),
        ]
        for method, params, code, where in cases:
            with pytest.raises(ApiError) as e:
                await c.call(method, params)
            assert (e.value.code, e.value.field) == (code, where), (method, params)
        sim = stack.service.devices["matrix"].simulator
        assert sim is not None and sim.sim.ties["video"][1] == 1  # type: ignore[attr-defined]
        with pytest.raises(ApiError) as e:
            await c.call(
                "device.call", {"device": "matrix", "action": "preset", "args": {"preset": 9}}
            )
        assert e.value.code == "device_error" and "E11" in e.value.message
    finally:
        await c.close()


async def test_offline_device_is_not_ready_and_comes_back(stack: Stack) -> None:
    c = await stack.client("admin1")
    try:
        dev = stack.service.devices["matrix2"]
        assert dev.simulator is not None
        port = dev.simulator.port
        await dev.simulator.close()
        from sim_wait import eventually

        await eventually(lambda: dev.driver.status.value != "ok")
        with pytest.raises(ApiError) as e:
            await c.call("matrix.route", {"device": "matrix2", "input": 1, "outputs": [1]})
        assert e.value.code == "device_not_ready" and e.value.retryable
        status = (await c.call("device.status", {"device": "matrix2"}))["result"]
        assert status["status"] in ("disconnected", "connection_failure", "connecting")
        assert status["stats"]["connects"] >= 1 and status["stats"]["silent_for_s"] is None
        from drivers.simulator import serve_tcp

        dev.simulator = await serve_tcp(dev.simulator.sim, "127.0.0.1", port)
        await c.call("device.reconnect", {"device": "matrix2"})
        await eventually(lambda: dev.driver.status.value == "ok", 10)
        r = await c.call("matrix.route", {"device": "matrix2", "input": 1, "outputs": [1]})
        assert r["ok"]
        assert any(
            e.type == "device.status" and e.data["device"] == "matrix2" and e.data["status"] == "ok"
            for e in stack.events
        )
    finally:
        await c.close()


async def test_named_salvo(stack: Stack) -> None:
    c = await stack.client()
    try:
        r = await c.call("matrix.salvo", {"device": "matrix", "salvo": "会商模式"})
        assert r["ok"] and r["salvo"] == "会商模式"
        assert [(t["input"], t["output"], t["level"]) for t in r["ties"]] == [
            (3, 5, "av"),
            (1, 6, "video"),
        ]
        sim = stack.service.devices["matrix"].simulator
        assert sim is not None
        assert sim.sim.ties["audio"][5] == 3 and sim.sim.ties["video"][6] == 1  # type: ignore[attr-defined]
        for params, code, where in (
            ({"device": "matrix", "salvo": "nope"}, "not_found", "params.salvo"),
            ({"device": "matrix"}, "invalid_field", "params.ties"),
            (
                {"device": "matrix", "salvo": "会商模式", "ties": [{"input": 1, "output": 1}]},
                "invalid_field",
                "params.ties",
            ),
        ):
            with pytest.raises(ApiError) as e:
                await c.call("matrix.salvo", params)
            assert (e.value.code, e.value.field) == (code, where)
        listed = (await c.call("device.list"))["devices"]
        assert next(d for d in listed if d["id"] == "matrix")["salvos"] == ["会商模式"]
    finally:
        await c.close()


async def test_switching_is_audited_with_the_account(stack: Stack) -> None:
    c = await stack.client("op1")
    try:
        await c.call("matrix.route", {"device": "matrix", "input": 2, "outputs": [4]})
        await c.call("device.call", {"device": "matrix2", "action": "ties"})  # a read: not audited
        with pytest.raises(ApiError):
            await c.call(
                "device.call", {"device": "matrix", "action": "preset", "args": {"preset": 9}}
            )
    finally:
        await c.close()
    log = stack.store.audit_log()
    actions = [(e.action, e.actor, e.result) for e in log]
    assert actions[:2] == [("device.call", "op1", "error"), ("matrix.route", "op1", "ok")]
    route = log[1]
    assert route.detail["device"] == "matrix"
    assert route.detail["ties"][0] == {"input": 2, "output": 4, "level": "av", "ok": True}
    assert "E11" in log[0].detail["error"]


async def test_display_power_and_input(stack: Stack) -> None:
    c = await stack.client("op1", subscriptions=["device"])
    try:
        listed = {d["id"]: d for d in (await c.call("device.list"))["devices"]}
        inputs = listed["panel"]["inputs"]
        assert listed["panel"]["family"] == "display" and inputs
        r = await c.call("display.power", {"device": "panel", "on": True})
        assert r["result"]["power"] == "on"
        r = await c.call("display.input", {"device": "panel", "source": inputs[-1]})
        assert r["result"]["input"] == inputs[-1]
        ev = await c.next_event("display.input")
        assert ev["data"] == {"device": "panel", "input": inputs[-1], "origin": "command"}
        for params, where in (
            ({"device": "panel", "source": "hdmi1\r\nka 01 00"}, "params.source"),
            ({"device": "panel", "source": "nope"}, "params.source"),
            ({"device": "panel", "on": "yes"}, "params.on"),
            ({"device": "matrix", "source": "hdmi1"}, "params.device"),
        ):
            method = "display.power" if "on" in params else "display.input"
            with pytest.raises(ApiError) as e:
                await c.call(method, params)
            assert (e.value.code, e.value.field) == ("invalid_field", where), params
        state = (await c.call("device.status", {"device": "panel"}))["result"]["state"]
        assert state["power"] == "on" and state["input"] == inputs[-1]
    finally:
        await c.close()
