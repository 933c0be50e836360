"""The Cisco xAPI driver against its simulator: WebSocket (both auth styles), tshell over
TCP and over a pseudo-terminal (the codec's RS-232 port), and Cisco's own client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from sim_helpers import eventually

from drivers.cisco_xapi.driver import CiscoXapiConfig, CiscoXapiDriver
from drivers.cisco_xapi.farend import FarEnd
from drivers.cisco_xapi.simulator import CiscoModel, CiscoSimulator
from drivers.contract import DriverSetup, DriverStatus
from drivers.errors import DeviceOffline, DeviceRejected, InvalidParams
from drivers.transport import SerialEndpoint, TcpEndpoint

PASSWORD = "s3cret pass"
FAST = FarEnd(setup_s=0.02, ring_s=0.02, drop_after_s=0.1, no_answer_s=0.2)


@pytest.fixture
async def sim() -> AsyncIterator[CiscoSimulator]:
    s = CiscoSimulator(CiscoModel(user="admin", password=PASSWORD, farend=FAST))
    await s.start()
    await s.start_tshell()
    try:
        yield s
    finally:
        await s.stop()


def _driver(sim: CiscoSimulator, mode: str, password: str = PASSWORD) -> CiscoXapiDriver:
    if mode == "ws-basic":
        ep: Any = TcpEndpoint("127.0.0.1", sim.port or 0)
        cfg = CiscoXapiConfig(retry_max_s=1)
    elif mode == "ws-subprotocol":
        ep = TcpEndpoint("127.0.0.1", sim.port or 0)
        cfg = CiscoXapiConfig(auth="subprotocol", retry_max_s=1)
    elif mode == "tshell-tcp":
        ep = TcpEndpoint("127.0.0.1", sim.tshell_port or 0)
        cfg = CiscoXapiConfig(transport="tshell", retry_max_s=1)
    else:
        assert sim.pty_path is not None
        ep = SerialEndpoint(sim.pty_path, 115200)
        cfg = CiscoXapiConfig(transport="tshell", retry_max_s=1)
    return CiscoXapiDriver(DriverSetup("codec-a", cfg, ep, password=password))


async def _up(d: CiscoXapiDriver) -> None:
    await d.start()
    await eventually(lambda: d.status is DriverStatus.OK, 10)


MODES = ["ws-basic", "ws-subprotocol", "tshell-tcp", "tshell-pty"]


@pytest.mark.parametrize("mode", MODES)
async def test_a_call_through_its_life(sim: CiscoSimulator, mode: str) -> None:
    if mode == "tshell-pty":
        await sim.start_pty()
    d = _driver(sim, mode)
    await _up(d)
    try:
        answer = await d.call("dial", {"number": "sip:nanxun@10.33.1.10", "call_rate": 1920})
        cid = answer["call_id"]
        assert cid == 1
        await eventually(lambda: [c["status"] for c in d.state["calls"]] == ["connected"])
        call = d.state["calls"][0]
        assert call["remote_number"] == "sip:nanxun@10.33.1.10"
        assert call["call_rate"] == 1920
        await d.call("mute", {})
        await d.call("volume", {"level": 35})
        await d.call("presentation_start", {"source": 3})
        await eventually(lambda: d.state["presentation"] == {"mode": "Sending", "source": 3})
        await eventually(lambda: d.state["microphones_muted"] is True and d.state["volume"] == 35)
        await d.call("camera_preset", {"preset": 2})
        assert sim.model.active_preset == 2
        with pytest.raises(DeviceRejected, match="Preset 9 not found"):
            await d.call("camera_preset", {"preset": 9})
        # The far end hangs up: the call is gone and the reason is known.
        sim.model.hangup_remote()
        await eventually(lambda: d.state["calls"] == [])
        await eventually(lambda: (d.state.get("last_disconnect") or {}).get("call_id") == cid)
        assert d.state["last_disconnect"]["reason"] == "remote_hangup"
        await eventually(lambda: d.state["presentation"]["mode"] == "Off")
        # Failures of the network come back with their reasons.
        for number, reason, code in (
            ("busy@x.cn", "busy", 486),
            ("unreachable@x.cn", "unreachable", 404),
            ("reject@x.cn", "rejected", 603),
            ("noanswer@x.cn", "no_answer", 480),
        ):
            cid = (await d.call("dial", {"number": number}))["call_id"]
            await eventually(
                lambda cid=cid: (d.state.get("last_disconnect") or {}).get("call_id") == cid
            )
            assert (d.state["last_disconnect"]["reason"], d.state["last_disconnect"]["code"]) == (
                reason,
                code,
            )
        # Our own hang-up.
        cid = (await d.call("dial", {"number": "sip:wuxing@10.33.1.11"}))["call_id"]
        await eventually(lambda: [c["status"] for c in d.state["calls"]] == ["connected"])
        await d.call("disconnect", {"call_id": cid})
        await eventually(lambda: d.state["calls"] == [])
        assert d.state["last_disconnect"]["reason"] == "local_hangup"
    finally:
        await d.stop()


@pytest.mark.parametrize("mode", ["ws-basic", "tshell-tcp"])
@pytest.mark.parametrize(
    "hostile",
    [
        'x" \nxCommand SystemUnit FactoryReset Confirm: Yes',
        "sip:a@b\r\nxCommand Call Disconnect",
        'sip:a"@b',
        "a\x1b[2J",
        "sip:a b@c",
    ],
)
async def test_hostile_dial_strings_never_reach_the_codec(
    sim: CiscoSimulator, mode: str, hostile: str
) -> None:
    d = _driver(sim, mode)
    await _up(d)
    try:
        before = list(sim.model.commands)
        with pytest.raises(InvalidParams) as e:
            await d.call("dial", {"number": hostile})
        assert e.value.field == "number"
        # The link is intact and nothing reached the device.
        await d.call("mute", {})
        assert sim.model.commands[len(before) :] == [("Audio/Microphones/Mute", {})]
        assert sim.model.calls == {}
    finally:
        await d.stop()


async def test_out_of_range_params_are_refused_by_the_declared_schema(sim: CiscoSimulator) -> None:
    d = _driver(sim, "ws-basic")
    await _up(d)
    try:
        for action, args, field in (
            ("volume", {"level": 101}, "level"),
            ("camera_preset", {"preset": 0}, "preset"),
            ("dial", {"number": "a", "call_rate": 10}, "call_rate"),
            ("dial", {"number": "a", "extra": 1}, "extra"),
        ):
            with pytest.raises(InvalidParams) as e:
                await d.call(action, args)
            assert e.value.field == field
        assert sim.model.commands == []
    finally:
        await d.stop()


@pytest.mark.parametrize("mode", ["ws-basic", "ws-subprotocol", "tshell-tcp"])
async def test_wrong_password_is_an_auth_failure(sim: CiscoSimulator, mode: str) -> None:
    d = _driver(sim, mode, password="wrong")
    await d.start()
    try:
        await eventually(lambda: d.status is DriverStatus.AUTH_FAILURE, 10)
        assert "admin" in d.status_detail
        with pytest.raises(DeviceOffline):
            await d.call("mute", {})
    finally:
        await d.stop()


async def test_codec_offline_then_back(sim: CiscoSimulator) -> None:
    d = _driver(sim, "ws-basic")
    await _up(d)
    port = sim.port
    try:
        await d.call("dial", {"number": "sip:a@b"})
        await eventually(lambda: len(d.state["calls"]) == 1)
        await sim.stop()
        await eventually(lambda: d.status is not DriverStatus.OK, 10)
        with pytest.raises(DeviceOffline):
            await d.call("dial", {"number": "sip:a@b"})
        back = CiscoSimulator(CiscoModel(user="admin", password=PASSWORD, farend=FAST))
        await back.start(port=port or 0)
        try:
            await eventually(lambda: d.status is DriverStatus.OK, 15)
            # The state was read afresh: the old call is gone with the old codec.
            assert d.state["calls"] == []
            assert (await d.call("dial", {"number": "sip:a@b"}))["call_id"] == 1
        finally:
            await back.stop()
    finally:
        await d.stop()


async def test_incoming_call_accepted(sim: CiscoSimulator) -> None:
    d = _driver(sim, "tshell-tcp")
    await _up(d)
    try:
        cid = sim.model.incoming("sip:huzhou@10.33.0.1")
        await eventually(lambda: [c["status"] for c in d.state["calls"]] == ["ringing"])
        await d.call("accept", {"call_id": cid})
        await eventually(lambda: [c["status"] for c in d.state["calls"]] == ["connected"])
        with pytest.raises(DeviceRejected, match="No incoming call"):
            await d.call("accept", {"call_id": cid})
    finally:
        await d.stop()


async def test_max_calls_is_the_codecs_refusal(sim: CiscoSimulator) -> None:
    d = _driver(sim, "ws-basic")
    await _up(d)
    try:
        await d.call("dial", {"number": "sip:a@b"})
        await d.call("dial", {"number": "sip:c@d"})
        with pytest.raises(DeviceRejected, match="Max active calls"):
            await d.call("dial", {"number": "sip:e@f"})
    finally:
        await d.stop()


# --- the simulator's WebSocket, seen raw -----------------------------------------------------


async def test_websocket_refuses_without_credentials_and_rejects_garbage(
    sim: CiscoSimulator,
) -> None:
    url = f"ws://127.0.0.1:{sim.port}/ws"
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as e:
            await http.ws_connect(url)
        assert e.value.status == 401
        with pytest.raises(aiohttp.WSServerHandshakeError) as e:
            await http.ws_connect(url, auth=aiohttp.BasicAuth("admin", "nope"))
        assert e.value.status == 403
        ws = await http.ws_connect(url, auth=aiohttp.BasicAuth("admin", PASSWORD))
        await ws.send_str("{not json")
        assert json.loads((await ws.receive()).data)["error"]["code"] == -32700
        await ws.send_str(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "xNope"}))
        assert json.loads((await ws.receive()).data)["error"]["code"] == -32601
        await ws.send_str(
            json.dumps({"jsonrpc": "2.0", "id": 2, "method": "xCommand/Dial", "params": {}})
        )
        err = json.loads((await ws.receive()).data)["error"]
        assert err["code"] == 1 and "Number" in err["data"]["Reason"]
        await ws.close()


# --- Cisco's own client against the simulator ---------------------------------------------


async def test_xows_client_against_the_simulator(sim: CiscoSimulator) -> None:
    xows = pytest.importorskip("xows")
    url = f"ws://127.0.0.1:{sim.port}/ws"
    seen: list[dict[str, Any]] = []
    async with xows.XoWSClient(url, username="admin", password=PASSWORD) as client:
        assert await client.xGet(["Status", "Audio", "Volume"]) == 50
        sub = await client.subscribe(["Status", "Call"], lambda data, id_: seen.append(data), True)
        assert isinstance(sub, int)
        result = await client.xCommand(["Dial"], Number="sip:nanxun@10.33.1.10")
        assert result["CallId"] == 1
        await eventually(
            lambda: any(
                c.get("Status") == "Connected"
                for s in seen
                for c in s.get("Status", {}).get("Call", [])
            )
        )
        assert await client.xSet(["Configuration", "Conference", "DefaultCall", "Rate"], 1920)
        assert sim.model.configuration[("Conference", "DefaultCall", "Rate")] == 1920
        with pytest.raises(xows.CommandError):
            await client.xCommand(["Camera", "Preset", "Activate"], PresetId=30)
        await client.xCommand(["Call", "Disconnect"])
        await eventually(lambda: sim.model.calls == {})
    with pytest.raises(xows.AuthenticationFailure):
        async with xows.XoWSClient(url, username="admin", password="bad"):
            pass
    assert asyncio.get_running_loop() is not None


async def test_tshell_over_a_socat_serial_line(socat_pair: tuple[str, str]) -> None:
    """RS-232 as on the codec's serial port: a socat pty pair, paced at 115200 baud."""
    from drivers.cisco_xapi.simulator import CiscoTshellSimulator
    from drivers.simulator import serve_serial

    device_end, host_end = socat_pair
    model = CiscoModel(farend=FAST)
    server = await serve_serial(CiscoTshellSimulator(model, login=False), device_end, 115200)
    cfg = CiscoXapiConfig(transport="tshell", retry_max_s=1)
    d = CiscoXapiDriver(DriverSetup("codec-rs232", cfg, SerialEndpoint(host_end, 115200), None))
    try:
        await _up(d)
        cid = (await d.call("dial", {"number": "h323:nanxun"}))["call_id"]
        await eventually(lambda: [c["status"] for c in d.state["calls"]] == ["connected"])
        with pytest.raises(InvalidParams):
            await d.call("dial", {"number": "x\rxCommand Call Disconnect"})
        await d.call("disconnect", {"call_id": cid})
        await eventually(lambda: d.state["calls"] == [])
        assert [c for c, _ in model.commands] == ["Dial", "Call/Disconnect"]
    finally:
        await d.stop()
        await server.close()


async def test_login_asked_without_a_password_configured(sim: CiscoSimulator) -> None:
    cfg = CiscoXapiConfig(transport="tshell", retry_max_s=1)
    ep = TcpEndpoint("127.0.0.1", sim.tshell_port or 0)
    d = CiscoXapiDriver(DriverSetup("codec-a", cfg, ep, password=None))
    await d.start()
    try:
        await eventually(lambda: d.status is DriverStatus.AUTH_FAILURE, 10)
        assert "no password is configured" in d.status_detail
    finally:
        await d.stop()
