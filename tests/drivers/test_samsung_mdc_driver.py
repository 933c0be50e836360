"""The Samsung MDC driver against its simulator: TCP 1515 and a socat pty pair."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from drivers.contract import DriverSetup, DriverStatus, StateChanged
from drivers.errors import DeviceOffline, DeviceRejected, DeviceTimeout, InvalidParams
from drivers.samsung_mdc.driver import SamsungMdcConfig, SamsungMdcDriver
from drivers.samsung_mdc.simulator import SamsungMdcSimulator
from drivers.simulator import SimServer, serve_serial, serve_tcp
from drivers.transport import Endpoint, SerialEndpoint, TcpEndpoint

pytestmark = pytest.mark.timeout(60)


async def until(cond: Callable[[], bool], within: float = 5.0, what: str = "") -> None:
    deadline = time.monotonic() + within
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or cond}")
        await asyncio.sleep(0.01)


def make_driver(endpoint: Endpoint, **cfg: Any) -> SamsungMdcDriver:
    options: dict[str, Any] = {
        "display_id": 1,
        "timeout_ms": 800,
        "retry_max_s": 0.5,
        "warmup_s": 0,
        "keepalive_s": 0,
    }
    options.update(cfg)
    return SamsungMdcDriver(DriverSetup("wall-1", SamsungMdcConfig(**options), endpoint))


@contextlib.asynccontextmanager
async def tcp_rig(
    sim: SamsungMdcSimulator | None = None, **cfg: Any
) -> AsyncIterator[tuple[SamsungMdcSimulator, SimServer, SamsungMdcDriver, list[Any]]]:
    sim = sim or SamsungMdcSimulator()
    srv = await serve_tcp(sim)
    drv = make_driver(TcpEndpoint("127.0.0.1", srv.port), **cfg)
    events: list[Any] = []
    drv.on_event = events.append
    await drv.start()
    try:
        yield sim, srv, drv, events
    finally:
        await drv.stop()
        await srv.close()


async def ok(drv: SamsungMdcDriver) -> None:
    await until(lambda: drv.status == DriverStatus.OK, what="driver ok")


async def test_connect_reads_status_then_power_input_volume_mute() -> None:
    sim = SamsungMdcSimulator()
    sim.displays[1].wall_on = 1
    sim.displays[1].wall_div = 0x22
    sim.displays[1].wall_sno = 4
    async with tcp_rig(sim) as (sim, _srv, drv, events):
        await ok(drv)
        assert drv.state["power"] == "on"
        assert drv.state["input"] == "hdmi1"
        assert drv.state["volume"] == 10 and drv.state["mute"] is False
        assert drv.state["video_wall"] == {"on": True, "columns": 2, "rows": 2, "position": 4}
        assert drv.state["model"] == "QM55B"

        assert await drv.call("input", {"source": "dp1"}) == {"input": "dp1"}
        assert sim.displays[1].input_source == 0x25
        assert await drv.call("volume", {"level": 42}) == {"volume": 42}
        assert await drv.call("mute", {"on": True}) == {"mute": True}
        assert (sim.displays[1].volume, sim.displays[1].mute) == (42, 1)
        assert await drv.call("power", {"on": False}) == {"power": "off"}
        assert sim.displays[1].power == 0
        # In standby the display refuses everything but power and status: its NAK is
        # what the operator sees.
        with pytest.raises(DeviceRejected) as err:
            await drv.call("input", {"source": "hdmi2"})
        assert err.value.code == "NAK 0x01"
        assert "input_source" in err.value.reason
        status = await drv.call("status", {})
        assert status["power"] == "off" and status["input"] == "dp1"
        assert [e.origin for e in events if isinstance(e, StateChanged) and e.key == "input"] == [
            "connect",
            "command",
        ]


async def test_bad_values_never_reach_the_line() -> None:
    async with tcp_rig() as (sim, _srv, drv, _events):
        await ok(drv)
        before = len(sim.frames)
        cases: list[tuple[str, dict[str, Any], str]] = [
            ("input", {"source": "hdmi9"}, "source"),
            ("input", {"source": "HDMI1\r\n"}, "source"),
            ("volume", {"level": 101}, "level"),
            ("volume", {"level": "10"}, "level"),
            ("mute", {"on": "yes please"}, "on"),
            ("video_wall", {"on": True, "columns": 2, "rows": 2, "position": 5}, "position"),
            ("video_wall", {"on": True, "columns": 16, "rows": 1}, "columns"),
        ]
        for name, args, field in cases:
            with pytest.raises(InvalidParams) as err:
                await drv.call(name, args)
            assert err.value.field == field, (name, args, err.value.message)
        assert len(sim.frames) == before


async def test_video_wall_setup() -> None:
    async with tcp_rig() as (sim, _srv, drv, _events):
        await ok(drv)
        result = await drv.call(
            "video_wall", {"on": True, "columns": 3, "rows": 2, "position": 5, "mode": "natural"}
        )
        assert result["video_wall"]["position"] == 5
        d = sim.displays[1]
        assert (d.wall_on, d.wall_div, d.wall_sno, d.wall_mode) == (1, 0x23, 5, 0)
        assert (await drv.call("read_video_wall", {}))["video_wall"] == {
            "on": True,
            "columns": 3,
            "rows": 2,
            "position": 5,
        }
        await drv.call("video_wall", {"on": False})
        assert d.wall_on == 0


async def test_power_on_warmup_is_waited_out_not_timed_out() -> None:
    sim = SamsungMdcSimulator(warmup_s=1.0)
    sim.displays[1].power = 0
    async with tcp_rig(sim, warmup_s=1.0) as (sim, _srv, drv, _events):
        await ok(drv)
        assert drv.state["power"] == "off"
        await drv.call("power", {"on": True})
        started = time.monotonic()
        await drv.call("input", {"source": "hdmi2"})
        assert time.monotonic() - started >= 0.8  # held until the display could listen
        assert sim.displays[1].input_source == 0x23
        assert drv.link is not None and drv.link.timeouts == 0


async def test_without_the_warmup_hold_the_display_really_is_deaf() -> None:
    # The quirk is real in the simulator: a driver told not to wait times out.
    sim = SamsungMdcSimulator(warmup_s=2.0)
    sim.displays[1].power = 0
    async with tcp_rig(sim, warmup_s=0, timeout_ms=300) as (sim, _srv, drv, _events):
        await ok(drv)
        await drv.call("power", {"on": True})
        with pytest.raises(DeviceTimeout):
            await drv.call("input", {"source": "hdmi2"})


async def test_remote_control_change_is_seen_by_the_poll() -> None:
    async with tcp_rig(keepalive_s=0.2) as (sim, _srv, drv, events):
        await ok(drv)
        sim.remote_control(1, input_source=0x22, volume=77)  # HDMI1 with a PC signal
        await until(lambda: drv.state["volume"] == 77, what="poll")
        assert drv.state["input"] == "hdmi1"
        ev = [e for e in events if isinstance(e, StateChanged) and e.key == "volume"]
        assert ev[-1].origin == "poll"


async def test_checksum_errors_and_noise() -> None:
    async with tcp_rig() as (sim, _srv, drv, _events):
        await ok(drv)
        sim.corrupt_replies = 1
        assert await drv.call("volume", {"level": 5}) == {"volume": 5}
        assert drv.checksum_errors == 1
        sim.corrupt_replies = 10
        with pytest.raises(DeviceRejected) as err:
            await drv.call("volume", {"level": 6})
        assert err.value.code == "checksum"
        sim.corrupt_replies = 0
        sim.inject(b"\x00\x13\xaa\x01\x02noise")
        assert await drv.call("volume", {"level": 7}) == {"volume": 7}
        # A frame we send with a bad checksum is ignored by the display.
        assert drv.link is not None and drv.link._transport is not None
        await drv.link._transport.write(bytes.fromhex("AA 12 01 01 09 00"))
        await until(lambda: sim.checksum_errors == 1)
        assert sim.displays[1].volume == 7


async def test_secured_protocol_is_an_auth_failure_with_a_clear_reason() -> None:
    async with tcp_rig(SamsungMdcSimulator(secured=True)) as (_sim, _srv, drv, _events):
        await until(lambda: drv.status == DriverStatus.AUTH_FAILURE, what="auth failure")
        assert "secured protocol" in drv.status_detail


async def test_silent_display_is_dropped_and_comes_back() -> None:
    async with tcp_rig(keepalive_s=0.2, timeout_ms=300) as (sim, _srv, drv, _events):
        await ok(drv)
        sim.mute = True
        await until(lambda: drv.status != DriverStatus.OK, within=6.0, what="dropped")
        sim.mute = False
        await until(lambda: drv.status == DriverStatus.OK, within=8.0, what="back")
        assert await drv.call("volume", {"level": 3}) == {"volume": 3}


async def test_killed_mid_command_then_back() -> None:
    sim = SamsungMdcSimulator(reply_delay_s=0.5)
    srv = await serve_tcp(sim)
    port = srv.port
    drv = make_driver(TcpEndpoint("127.0.0.1", port), timeout_ms=2000)
    await drv.start()
    try:
        await ok(drv)
        sent = len(sim.frames)
        call = asyncio.create_task(drv.call("volume", {"level": 50}))
        await until(lambda: len(sim.frames) > sent, what="request on the wire")
        await srv.close()
        with pytest.raises(DeviceOffline):
            await call
        sim2 = SamsungMdcSimulator()
        sim2.displays[1].volume = 33
        srv = await serve_tcp(sim2, port=port)
        await until(lambda: drv.status == DriverStatus.OK, within=10.0, what="back")
        assert drv.state["volume"] == 33
    finally:
        await drv.stop()
        await srv.close()


async def test_serial_daisy_chain_over_a_socat_pty_pair_at_9600_baud(
    socat_pair: tuple[str, str],
) -> None:
    device_end, host_end = socat_pair
    sim = SamsungMdcSimulator(ids=(1, 2, 3))
    srv = await serve_serial(sim, device_end, baud=9600)
    drv = make_driver(SerialEndpoint(host_end, 9600), display_id=2)
    await drv.start()
    try:
        await ok(drv)
        started = time.monotonic()
        await drv.call("input", {"source": "hdmi2"})
        elapsed = time.monotonic() - started
        # 6 bytes out + 8 back at 9600 baud is ~15 ms of wire time.
        assert elapsed >= 0.014
        assert sim.displays[2].input_source == 0x23
        assert sim.displays[1].input_source == 0x21  # the neighbours were not touched
        assert sim.displays[3].input_source == 0x21
        await drv.call("power", {"on": False})
        assert [d.power for d in sim.displays.values()] == [1, 0, 1]
    finally:
        await drv.stop()
        await srv.close()


async def test_independent_client_python_samsung_mdc() -> None:
    """python-samsung-mdc (an independent implementation) against the simulator."""
    samsung_mdc = pytest.importorskip("samsung_mdc")
    sim = SamsungMdcSimulator(ids=(5,))
    srv = await serve_tcp(sim)
    try:
        async with samsung_mdc.MDC(f"127.0.0.1:{srv.port}", timeout=3) as mdc:
            status = await mdc.status(5)
            assert status[0].name == "ON"
            assert status[3].name == "HDMI1"
            assert (await mdc.volume(5, [35]))[0] == 35
            assert (await mdc.input_source(5, ["DISPLAY_PORT_1"]))[0].name == "DISPLAY_PORT_1"
            assert (await mdc.video_wall_state(5, ["ON"]))[0].name == "ON"
            assert await mdc.video_wall_model(5, ["2,2", 3]) == ((2, 2), 3)
            assert (await mdc.volume(5, [100]))[0] == 100
            with pytest.raises(samsung_mdc.exceptions.NAKError):
                await mdc.input_source(5, ["TV_DTV"])  # a port this display lacks
        d = sim.displays[5]
        assert (d.volume, d.input_source, d.wall_div, d.wall_sno) == (100, 0x25, 0x22, 3)
    finally:
        await srv.close()


async def test_simulator_broadcast_id_is_obeyed_by_all_and_answered_by_none() -> None:
    from drivers.samsung_mdc import codec

    sim = SamsungMdcSimulator(ids=(1, 2))
    srv = await serve_tcp(sim)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        writer.write(codec.encode_power(codec.BROADCAST_ID, False))
        writer.write(codec.encode_get(codec.Command.POWER, 2))  # then one addressed query
        await writer.drain()
        reply = await asyncio.wait_for(reader.read(64), 3)
        # Only the addressed query is answered: display 2 reports it is off.
        assert codec.Decoder().feed(reply) == [codec.Ack(2, 0x11, b"\x00")]
        assert [d.power for d in sim.displays.values()] == [0, 0]
        # A display that is not on the line stays silent.
        writer.write(codec.encode_get(codec.Command.STATUS, 9))
        await writer.drain()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.read(64), 0.3)
        writer.close()
    finally:
        await srv.close()


async def test_registered_simulator_answers_whatever_id_the_config_names() -> None:
    from drivers import registry
    from drivers.registry import SimOptions

    proto = registry.get("samsung-mdc")
    assert proto.driver is SamsungMdcDriver
    sim = proto.simulator(SimOptions())
    assert isinstance(sim, SamsungMdcSimulator)
    srv = await serve_tcp(sim)
    drv = make_driver(TcpEndpoint("127.0.0.1", srv.port), display_id=7)
    await drv.start()
    try:
        await ok(drv)
        await drv.call("input", {"source": "hdmi2"})
        assert list(sim.displays) == [7]
        assert sim.displays[7].input_source == 0x23
    finally:
        await drv.stop()
        await srv.close()


async def test_text_from_the_display_is_cleaned() -> None:
    sim = SamsungMdcSimulator()
    sim.displays[1].model_name = "QM\x1b[2J55\r\nB\x07"
    async with tcp_rig(sim) as (_sim, _srv, drv, _events):
        await ok(drv)
        assert drv.state["model"] == "QM[2J55B"


async def test_daisy_chain_driven_as_one_wall(socat_pair: tuple[str, str]) -> None:
    device_end, host_end = socat_pair
    sim = SamsungMdcSimulator(ids=(1, 2, 3, 4))
    srv = await serve_serial(sim, device_end, baud=115200)
    drv = make_driver(
        SerialEndpoint(host_end, 115200), display_id=1, chain=[2, 3, 4], keepalive_s=0.3
    )
    await drv.start()
    try:
        await ok(drv)
        assert drv.state["power"] == "on" and drv.state["display.4.input"] == "hdmi1"
        await drv.call("input", {"source": "dp1"})
        assert [d.input_source for d in sim.displays.values()] == [0x25] * 4
        assert drv.state["input"] == "dp1"
        # Someone changes one panel with its remote: the poll shows the wall is mixed.
        sim.remote_control(3, input_source=0x21)
        await until(lambda: drv.state["input"] == "mixed", what="mixed input")
        assert drv.state["display.3.input"] == "hdmi1"
        # One command lays the wall out: positions follow the chain order.
        result = await drv.call("video_wall", {"on": True, "columns": 2, "rows": 2})
        assert [d.wall_sno for d in sim.displays.values()] == [1, 2, 3, 4]
        assert result["video_wall"]["3"]["position"] == 3
        with pytest.raises(InvalidParams) as err:
            await drv.call("video_wall", {"on": True, "columns": 3, "rows": 1})
        assert err.value.field == "columns"
        with pytest.raises(InvalidParams) as err:
            await drv.call("video_wall", {"on": True, "columns": 2, "rows": 2, "position": 2})
        assert err.value.field == "position"
    finally:
        await drv.stop()
        await srv.close()


async def test_chain_with_a_dead_display_reports_exactly_which(
    socat_pair: tuple[str, str],
) -> None:
    device_end, host_end = socat_pair
    sim = SamsungMdcSimulator(ids=(1, 2))
    srv = await serve_serial(sim, device_end, baud=115200)
    drv = make_driver(SerialEndpoint(host_end, 115200), display_id=1, chain=[9, 2])
    await drv.start()
    try:
        await ok(drv)  # one display answering is enough to come up
        with pytest.raises(DeviceRejected) as err:
            await drv.call("power", {"on": False})
        assert err.value.code == "partial"
        assert "display 9" in err.value.reason and "display 1" not in err.value.reason
        # The living displays were switched all the same.
        assert [d.power for d in sim.displays.values()] == [0, 0]
        assert drv.state["display.2.power"] == "off"
    finally:
        await drv.stop()
        await srv.close()


def test_chain_config_is_checked() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="its own id"):
        SamsungMdcConfig(display_id=1, chain=[2, 1])
    with pytest.raises(ValidationError, match="out of range"):
        SamsungMdcConfig(display_id=1, chain=[254])
