"""The LG RS-232C driver against its simulator: a socat pty pair and TCP."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from drivers.contract import DriverSetup, DriverStatus, StateChanged
from drivers.errors import DeviceOffline, DeviceRejected, DeviceTimeout, InvalidParams
from drivers.lg import codec
from drivers.lg.driver import LgConfig, LgDriver
from drivers.lg.simulator import LgSimulator
from drivers.simulator import SimServer, serve_serial, serve_tcp
from drivers.transport import Endpoint, SerialEndpoint, TcpEndpoint

pytestmark = pytest.mark.timeout(60)


async def until(cond: Callable[[], bool], within: float = 5.0, what: str = "") -> None:
    deadline = time.monotonic() + within
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or cond}")
        await asyncio.sleep(0.01)


def make_driver(endpoint: Endpoint, **cfg: Any) -> LgDriver:
    options: dict[str, Any] = {
        "set_id": 1,
        "timeout_ms": 800,
        "retry_max_s": 0.5,
        "keepalive_s": 0,
        "power_on_timeout_s": 5,
    }
    options.update(cfg)
    return LgDriver(DriverSetup("lg-1", LgConfig(**options), endpoint))


@contextlib.asynccontextmanager
async def serial_rig(
    pair: tuple[str, str], sim: LgSimulator | None = None, baud: int = 9600, **cfg: Any
) -> AsyncIterator[tuple[LgSimulator, SimServer, LgDriver, list[Any]]]:
    """Simulator on one end of a socat pty pair, the driver on the other."""
    sim = sim or LgSimulator()
    device_end, host_end = pair
    srv = await serve_serial(sim, device_end, baud=baud)
    drv = make_driver(SerialEndpoint(host_end, baud), **cfg)
    events: list[Any] = []
    drv.on_event = events.append
    await drv.start()
    try:
        yield sim, srv, drv, events
    finally:
        await drv.stop()
        await srv.close()


async def ok(drv: LgDriver) -> None:
    await until(lambda: drv.status == DriverStatus.OK, what="driver ok")


async def test_power_input_volume_mute_over_serial(socat_pair: tuple[str, str]) -> None:
    async with serial_rig(socat_pair) as (sim, _srv, drv, events):
        await ok(drv)
        assert drv.state == {
            "power": "on",
            "input": "hdmi1",
            "volume": 20,
            "mute": False,
            "tile": {"columns": 1, "rows": 1, "tile_id": 1},
        }
        assert sim.requests[:6] == [
            "ka 01 ff",
            "xb 01 ff",
            "kf 01 ff",
            "ke 01 ff",
            "dd 01 ff",
            "di 01 ff",
        ]
        assert await drv.call("input", {"source": "dp"}) == {"input": "dp"}
        assert sim.displays[1].input == codec.Input.DISPLAYPORT
        await drv.call("volume", {"level": 64})
        await drv.call("mute", {"on": True})
        d = sim.displays[1]
        # ke is inverted on the wire: 00 means muted.
        assert (d.volume, d.volume_mute) == (64, codec.VOLUME_MUTE_ON)
        await drv.call("screen_mute", {"on": True})
        assert d.screen_mute == codec.SCREEN_MUTE_ON
        await drv.call("power", {"on": False})
        assert d.power == 0
        # In standby the display answers NG to anything but power.
        with pytest.raises(DeviceRejected) as err:
            await drv.call("input", {"source": "hdmi2"})
        assert err.value.code == "NG"
        assert d.input == codec.Input.DISPLAYPORT
        status = await drv.call("status", {})
        assert status["power"] == "off"
        assert drv.state["off_reason"] == "off_by_rs232"
        assert [e.origin for e in events if isinstance(e, StateChanged) and e.key == "power"] == [
            "connect",
            "command",
        ]


async def test_power_on_ack_arrives_only_after_the_warmup(socat_pair: tuple[str, str]) -> None:
    sim = LgSimulator(warmup_s=1.2)
    sim.displays[1].power = 0
    async with serial_rig(socat_pair, sim, keepalive_s=0.2) as (sim, _srv, drv, _events):
        await ok(drv)
        assert drv.state["power"] == "off"
        started = time.monotonic()
        assert await drv.call("power", {"on": True}) == {"power": "on"}
        assert time.monotonic() - started >= 1.1
        # The poll stayed quiet meanwhile: no timeouts, the link never dropped.
        assert drv.link is not None and drv.link.timeouts == 0 and drv.link.connects == 1
        await drv.call("input", {"source": "hdmi2"})
        assert sim.displays[1].input == codec.Input.HDMI2


async def test_power_on_that_never_completes_times_out_clearly(socat_pair: tuple[str, str]) -> None:
    sim = LgSimulator(warmup_s=30)
    sim.displays[1].power = 0
    async with serial_rig(socat_pair, sim, power_on_timeout_s=1) as (sim, _srv, drv, _events):
        await ok(drv)
        with pytest.raises(DeviceTimeout, match="no answer to power-on within 1 s"):
            await drv.call("power", {"on": True})


async def test_bad_values_never_reach_the_line(socat_pair: tuple[str, str]) -> None:
    async with serial_rig(socat_pair, baud=115200) as (sim, _srv, drv, _events):
        await ok(drv)
        before = len(sim.requests)
        cases: list[tuple[str, dict[str, Any], str]] = [
            ("input", {"source": "hdmi7"}, "source"),
            ("input", {"source": "hdmi1\rka 00 00"}, "source"),
            ("volume", {"level": 101}, "level"),
            ("volume", {"level": -1}, "level"),
            ("tile", {"columns": 2, "rows": 2, "tile_id": 5}, "tile_id"),
            ("tile", {"columns": 0, "rows": 2}, "columns"),
            ("power", {"on": "01"}, "on"),
        ]
        for name, args, field in cases:
            with pytest.raises(InvalidParams) as err:
                await drv.call(name, args)
            assert err.value.field == field, (name, args, err.value.message)
        assert len(sim.requests) == before
        assert sim.ignored == 0


async def test_tile_mode(socat_pair: tuple[str, str]) -> None:
    async with serial_rig(socat_pair, baud=115200) as (sim, _srv, drv, _events):
        await ok(drv)
        assert (await drv.call("tile", {"columns": 3, "rows": 2, "tile_id": 6}))["tile"] == {
            "columns": 3,
            "rows": 2,
            "tile_id": 6,
        }
        assert (sim.displays[1].tile_mode, sim.displays[1].tile_id) == (0x32, 6)
        assert sim.requests[-2:] == ["dd 01 32", "di 01 06"]


async def test_daisy_chain_only_the_addressed_set_answers(socat_pair: tuple[str, str]) -> None:
    sim = LgSimulator(ids=(1, 2, 3))
    async with serial_rig(socat_pair, sim, baud=115200, set_id=3) as (sim, _srv, drv, _events):
        await ok(drv)
        await drv.call("input", {"source": "hdmi3"})
        assert [d.input for d in sim.displays.values()] == [0x90, 0x90, 0x92]


async def test_garbage_and_silence_on_the_line(socat_pair: tuple[str, str]) -> None:
    async with serial_rig(socat_pair, baud=115200, keepalive_s=0.2) as (sim, _srv, drv, _events):
        await ok(drv)
        sim.inject(b"\x00\xff~~x\r\n")
        assert await drv.call("volume", {"level": 9}) == {"volume": 9}
        # A display that stops answering (cable pulled at the far end): the poll times
        # out, the link is reopened, and the driver recovers when it answers again.
        sim.mute = True
        await until(lambda: drv.status != DriverStatus.OK, within=6.0, what="dropped")
        with pytest.raises(DeviceOffline):
            await drv.call("volume", {"level": 10})
        sim.mute = False
        await until(lambda: drv.status == DriverStatus.OK, within=8.0, what="back")
        assert await drv.call("volume", {"level": 11}) == {"volume": 11}


async def test_remote_control_change_seen_by_the_poll_over_tcp() -> None:
    sim = LgSimulator()
    srv = await serve_tcp(sim)
    drv = make_driver(TcpEndpoint("127.0.0.1", srv.port), keepalive_s=0.2)
    events: list[Any] = []
    drv.on_event = events.append
    await drv.start()
    try:
        await ok(drv)
        sim.remote_control(1, input=codec.Input.HDMI2_PC)
        await until(lambda: drv.state.get("input") == "hdmi2", what="poll")
        sim.remote_control(1, power=0)
        await until(lambda: drv.state.get("power") == "off", what="poll")
        ev = [e for e in events if isinstance(e, StateChanged) and e.key == "power"]
        assert ev[-1].origin == "poll"
        await drv.call("status", {})
        assert drv.state["off_reason"] == "off_by_remote"
        await drv.call("power", {"on": True})
        assert drv.state["off_reason"] == "normal"
    finally:
        await drv.stop()
        await srv.close()


async def test_killed_mid_command_then_back_over_tcp() -> None:
    sim = LgSimulator(reply_delay_s=0.5)
    srv = await serve_tcp(sim)
    port = srv.port
    drv = make_driver(TcpEndpoint("127.0.0.1", port), timeout_ms=2000)
    await drv.start()
    try:
        await ok(drv)
        sent = len(sim.requests)
        call = asyncio.create_task(drv.call("volume", {"level": 50}))
        await until(lambda: len(sim.requests) > sent, what="request on the wire")
        await srv.close()
        with pytest.raises(DeviceOffline):
            await call
        sim2 = LgSimulator()
        sim2.displays[1].volume = 33
        srv = await serve_tcp(sim2, port=port)
        await until(lambda: drv.status == DriverStatus.OK, within=10.0, what="back")
        assert drv.state["volume"] == 33
    finally:
        await drv.stop()
        await srv.close()


async def test_simulator_set_id_00_is_obeyed_by_all_and_answered_by_none() -> None:
    sim = LgSimulator(ids=(1, 2))
    srv = await serve_tcp(sim)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        writer.write(b"ka 00 00\rka 02 ff\r")
        await writer.drain()
        reply = await asyncio.wait_for(reader.read(64), 3)
        assert reply == b"a 02 OK00x"
        assert [d.power for d in sim.displays.values()] == [0, 0]
        # Malformed requests get no answer at all.
        writer.write(b"ka01 01\rKA 01 01\rka 01 1\r")
        await writer.drain()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.read(64), 0.3)
        assert sim.ignored == 3
        writer.close()
    finally:
        await srv.close()


async def test_registered_simulator_answers_whatever_set_id_the_config_names() -> None:
    from drivers import registry
    from drivers.registry import SimOptions

    proto = registry.get("lg")
    assert proto.driver is LgDriver
    sim = proto.simulator(SimOptions())
    assert isinstance(sim, LgSimulator)
    srv = await serve_tcp(sim)
    drv = make_driver(TcpEndpoint("127.0.0.1", srv.port), set_id=0x2A)
    await drv.start()
    try:
        await ok(drv)
        await drv.call("power", {"on": False})
        assert list(sim.displays) == [0x2A] and sim.displays[0x2A].power == 0
        assert sim.requests[-1] == "ka 2a 00"
    finally:
        await drv.stop()
        await srv.close()


async def test_independent_client_lgtv_rs232() -> None:
    """lgtv-rs232-zcline91 (an independent pyserial client, CR LF line ends) over a pty."""
    lgtv = pytest.importorskip("lgtv_rs232")
    from drivers.simulator import serve_pty

    sim = LgSimulator(ids=(1,))
    srv = await serve_pty(sim, baud=9600)
    try:

        def session() -> dict[str, object]:
            tv = lgtv.LgTV(srv.path, tv_id=1)
            try:
                seen = {"input": tv.input, "volume": tv.volume, "muted": tv.muted}
                seen["set_input"] = tv.request("input", "hdmi2")
                seen["set_volume"] = tv.request("volume", "35")
                seen["mute"] = tv.request("sound", "off")
                seen["power_off"] = tv.request("power", "off")
                seen["is_on"] = tv.is_on
                seen["input_while_off"] = tv.request("input", "hdmi1")
                return seen
            finally:
                tv._ser.close()

        seen = await asyncio.to_thread(session)
        assert seen == {
            "input": "hdmi1",
            "volume": 20,
            "muted": False,
            "set_input": True,
            "set_volume": True,
            "mute": True,
            "power_off": True,
            "is_on": False,
            "input_while_off": False,  # NG: a display in standby takes only power
        }
        d = sim.displays[1]
        assert (d.input, d.volume, d.volume_mute, d.power) == (0x91, 35, 0x00, 0)
    finally:
        await srv.close()


async def test_daisy_chain_boots_together_and_tiles_in_order(socat_pair: tuple[str, str]) -> None:
    sim = LgSimulator(ids=(1, 2, 3, 4), warmup_s=1.0)
    for d in sim.displays.values():
        d.power = 0
    async with serial_rig(
        socat_pair, sim, baud=115200, chain=[2, 3, 4], warmup_s=1.2, keepalive_s=0.2
    ) as (sim, _srv, drv, _events):
        await ok(drv)
        assert drv.state["power"] == "off" and drv.state["display.3.power"] == "off"
        started = time.monotonic()
        await drv.call("power", {"on": True})
        took = time.monotonic() - started
        # One broadcast: the four panels boot at once, not one warm-up after another
        # (that would take at least 4 x 1.0 s).
        assert 1.1 <= took < 3.9
        assert "ka 00 01" in sim.requests
        assert not any(r in sim.requests for r in ("ka 01 01", "ka 02 01", "ka 03 01"))
        assert [d.power for d in sim.displays.values()] == [1, 1, 1, 1]
        assert drv.state["power"] == "on"
        assert drv.link is not None and drv.link.connects == 1
        result = await drv.call("tile", {"columns": 2, "rows": 2})
        assert [(d.tile_mode, d.tile_id) for d in sim.displays.values()] == [
            (0x22, 1),
            (0x22, 2),
            (0x22, 3),
            (0x22, 4),
        ]
        assert result["tile"]["4"] == {"columns": 2, "rows": 2, "tile_id": 4}
        await drv.call("input", {"source": "hdmi2"})
        assert drv.state["input"] == "hdmi2"
        sim.remote_control(2, input=codec.Input.DISPLAYPORT)
        await until(lambda: drv.state["input"] == "mixed", what="mixed")
        assert drv.state["display.2.input"] == "dp"
        with pytest.raises(InvalidParams) as err:
            await drv.call("tile", {"columns": 2, "rows": 2, "tile_id": 3})
        assert err.value.field == "tile_id"


async def test_chain_with_a_dead_display_reports_exactly_which(
    socat_pair: tuple[str, str],
) -> None:
    sim = LgSimulator(ids=(1, 2))
    async with serial_rig(socat_pair, sim, baud=115200, chain=[7, 2]) as (
        sim,
        _srv,
        drv,
        _events,
    ):
        await ok(drv)
        with pytest.raises(DeviceRejected) as err:
            await drv.call("volume", {"level": 30})
        assert err.value.code == "partial"
        assert "display 7" in err.value.reason and "display 2" not in err.value.reason
        assert [d.volume for d in sim.displays.values()] == [30, 30]


def test_chain_config_is_checked() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="its own set id"):
        LgConfig(set_id=1, chain=[1])
    with pytest.raises(ValidationError, match="out of range"):
        LgConfig(set_id=1, chain=[0])
