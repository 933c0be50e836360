"""The Kramer Protocol 3000 driver against its simulator over TCP, a pty and socat."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sim_helpers import eventually

from drivers.contract import DriverSetup, DriverStatus, StateChanged
from drivers.errors import DeviceOffline, DeviceTimeout, InvalidParams
from drivers.kramer_p3000.driver import KramerConfig, KramerDriver
from drivers.kramer_p3000.simulator import KramerSimulator
from drivers.simulator import SimServer, serve_pty, serve_serial, serve_tcp
from drivers.transport import Endpoint, SerialEndpoint, TcpEndpoint


def make(endpoint: Endpoint, password: str | None = None, **opts: Any) -> KramerDriver:
    opts = {"size": "16x16", "timeout_ms": 1000, "retry_max_s": 1.0, **opts}
    d = KramerDriver(DriverSetup("kx", KramerConfig(**opts), endpoint, password))
    d.events = []  # type: ignore[attr-defined]
    d.on_event = d.events.append  # type: ignore[attr-defined]
    return d


async def started(d: KramerDriver) -> KramerDriver:
    await d.start()
    assert d.link is not None
    assert await d.link.wait_ready(10), d.status_detail
    return d


@pytest.fixture
async def tcp() -> AsyncIterator[tuple[KramerSimulator, SimServer]]:
    sim = KramerSimulator(16, 16, password="pw")
    srv = await serve_tcp(sim)
    yield sim, srv
    await srv.close()


async def test_tcp_login_read_route_salvo(tcp: tuple[KramerSimulator, SimServer]) -> None:
    sim, srv = tcp
    d = await started(make(TcpEndpoint("127.0.0.1", srv.port), "pw"))
    try:
        assert d.state["device_size"] == "16x16"
        assert all(d.state[f"tie.video.{o}"] == sim.routes["video"][o] for o in range(1, 17))
        r = await d.call("route", {"input": 4, "outputs": [9], "level": "video"})
        assert r["ok"] and sim.routes["video"][9] == 4 and sim.routes["audio"][9] == 9
        # 16 ties do not fit one 64-character line: the driver cuts the salvo.
        ties = [{"input": (o % 16) + 1, "output": o} for o in range(1, 17)]
        r = await d.call("salvo", {"ties": ties})
        assert r["ok"] and len(r["ties"]) == 16
        assert all(sim.routes["audio"][o] == (o % 16) + 1 for o in range(1, 17))
        assert d.state["tie.audio.16"] == 1
        # Input 0 disconnects; all outputs of one input use "*".
        await d.call("route", {"input": 0, "outputs": [3]})
        assert sim.routes["video"][3] == 0
        await d.call("route", {"input": 2, "outputs": list(range(1, 17))})
        assert set(sim.routes["video"].values()) == {2}
    finally:
        await d.stop()


async def test_device_error_is_reported_tie_by_tie(tcp: tuple[KramerSimulator, SimServer]) -> None:
    sim, srv = tcp
    d = await started(make(TcpEndpoint("127.0.0.1", srv.port), "pw", size="16x16"))
    try:
        # A device smaller than it claims: outputs past 12 are refused with ERR003.
        sim.outputs = 12
        r = await d.call("salvo", {"ties": [{"input": 1, "output": 2}, {"input": 1, "output": 14}]})
        assert not r["ok"]
        assert r["ties"][0]["ok"] is True
        assert r["ties"][1] == {
            "input": 1,
            "output": 14,
            "level": "av",
            "ok": False,
            "code": "ERR003",
            "message": "parameter out of range",
        }
        assert sim.routes["video"][2] == 1
    finally:
        await d.stop()


async def test_hostile_values(tcp: tuple[KramerSimulator, SimServer]) -> None:
    sim, srv = tcp
    d = await started(make(TcpEndpoint("127.0.0.1", srv.port), "pw"))
    try:
        before = sim.commands
        for args in (
            {"input": "1|#LOGIN admin,x", "outputs": [1]},
            {"input": 1, "outputs": ["2\r#VID 1>*"]},
            {"input": 17, "outputs": [1]},
            {"input": 1, "outputs": [17]},
            {"input": 1.5, "outputs": [1]},
        ):
            with pytest.raises(InvalidParams):
                await d.call("route", args)
        assert sim.commands == before
    finally:
        await d.stop()


async def test_unsolicited_reports_update_state(tcp: tuple[KramerSimulator, SimServer]) -> None:
    sim, srv = tcp
    d = await started(make(TcpEndpoint("127.0.0.1", srv.port), "pw"))
    try:
        sim.inject(b"\x00\xfe~99@\x1b[2J\r\n~01@VID 5>99\r\n")  # noise; past our outputs
        assert (await d.call("route", {"input": 6, "outputs": [6]}))["ok"]
        assert d.status is DriverStatus.OK and "tie.video.99" not in d.state
        sim.front_panel_route(11, 5, "av")
        await eventually(lambda: d.state["tie.video.5"] == 11 and d.state["tie.audio.5"] == 11)
        assert StateChanged("tie.video.5", 11, "device") in d.events  # type: ignore[attr-defined]
    finally:
        await d.stop()


async def test_wrong_password(tcp: tuple[KramerSimulator, SimServer]) -> None:
    _, srv = tcp
    d = make(TcpEndpoint("127.0.0.1", srv.port), "wrong")
    await d.start()
    try:
        await eventually(lambda: d.status is DriverStatus.AUTH_FAILURE)
        assert "ERR004" in d.status_detail
    finally:
        await d.stop()
    d = make(TcpEndpoint("127.0.0.1", srv.port), None)
    await d.start()
    try:
        await eventually(lambda: d.status is DriverStatus.AUTH_FAILURE)
    finally:
        await d.stop()


async def test_killed_mid_command_silent_device_and_return(
    tcp: tuple[KramerSimulator, SimServer],
) -> None:
    sim, srv = tcp
    port = srv.port
    d = await started(make(TcpEndpoint("127.0.0.1", port), "pw", timeout_ms=300))
    try:
        sim.mute = True
        with pytest.raises(DeviceTimeout):
            await d.call("route", {"input": 1, "outputs": [1]})
        sim.mute = False
        sim.reply_delay_s = 0.5
        call = asyncio.create_task(d.call("route", {"input": 1, "outputs": [1]}))
        await asyncio.sleep(0.1)
        await srv.close()
        with pytest.raises(DeviceOffline):
            await call
        sim.reply_delay_s = 0
        sim.routes["video"][16] = 3
        srv2 = await serve_tcp(sim, "127.0.0.1", port)
        try:
            await eventually(lambda: d.status is DriverStatus.OK, 10)
            assert d.state["tie.video.16"] == 3
        finally:
            await srv2.close()
    finally:
        await d.stop()


async def test_video_only_device() -> None:
    sim = KramerSimulator(4, 4, audio=False)
    srv = await serve_tcp(sim)
    d = await started(make(TcpEndpoint("127.0.0.1", srv.port), size="4x4"))
    try:
        assert d.levels == ("video",)
        assert (await d.call("route", {"input": 2, "outputs": [1]}))["ok"]
        assert sim.routes["video"][1] == 2
        with pytest.raises(InvalidParams):
            await d.call("route", {"input": 2, "outputs": [1], "level": "audio"})
    finally:
        await d.stop()
        await srv.close()


async def test_pty_and_socat(socat_pair: tuple[str, str]) -> None:
    sim = KramerSimulator(8, 8)
    srv = await serve_pty(sim, 9600)
    d = await started(make(SerialEndpoint(srv.path, 9600), size="8x8"))
    try:
        t0 = time.monotonic()
        await d.call("route", {"input": 5, "outputs": [1], "level": "video"})
        # "#VID 5>1\r" + "~01@VID 5>1 OK\r\n" = 25 bytes = 26 ms at 9600 baud.
        assert time.monotonic() - t0 >= 0.025
        assert sim.routes["video"][1] == 5
        sim.reboot()  # the start message on RS-232: the driver redoes its start-up
        await eventually(lambda: d.link is not None and d.link.connects >= 2, 10)
        await eventually(lambda: d.status is DriverStatus.OK and d.state["tie.video.1"] == 1)
    finally:
        await d.stop()
        await srv.close()
    dev_end, host_end = socat_pair
    sim = KramerSimulator(8, 8)
    srv = await serve_serial(sim, dev_end, 115200)
    d = await started(make(SerialEndpoint(host_end, 115200), size="8x8"))
    try:
        await d.call("route", {"input": 8, "outputs": [8]})
        assert sim.routes["audio"][8] == 8 and d.state["tie.video.8"] == 8
    finally:
        await d.stop()
        await srv.close()


async def test_a_front_panel_report_is_not_taken_for_an_answer(
    tcp: tuple[KramerSimulator, SimServer],
) -> None:
    sim, srv = tcp
    d = await started(make(TcpEndpoint("127.0.0.1", srv.port), "pw"))
    try:
        sim.reply_delay_s = 0.3
        t0 = time.monotonic()
        call = asyncio.create_task(d.call("ties", {}))
        await asyncio.sleep(0.05)
        sim.front_panel_route(9, 4, "video")  # "~01@VID 9>4" while VID? * waits
        r = await call  # completed by the full answer (delayed), not by the report
        assert time.monotonic() - t0 >= 0.28
        assert len(r["ties"]["video"]) == 16
        assert d.link is not None and d.link.timeouts == 0
        sim.reply_delay_s = 0
        assert (await d.call("ties", {}))["ties"]["video"]["4"] == 9
        sim.reply_delay_s = 0.3
        route = asyncio.create_task(d.call("route", {"input": 3, "outputs": [2]}))
        await asyncio.sleep(0.05)
        sim.inject(b"~01@VID 5>6 OK\r\n")  # a result line that is not ours
        t0 = time.monotonic()
        assert (await route)["ok"] and sim.routes["video"][2] == 3
        assert time.monotonic() - t0 >= 0.15  # it waited for its own echo
    finally:
        await d.stop()


async def test_reboot_takes_time_and_the_driver_waits_it_out(
    tcp: tuple[KramerSimulator, SimServer],
) -> None:
    sim, srv = tcp
    d = await started(make(TcpEndpoint("127.0.0.1", srv.port), "pw", timeout_ms=300))
    try:
        await d.call("route", {"input": 3, "outputs": [7]})
        assert d.state["tie.video.7"] == 3
        sim.boot_time_s = 1.5
        sim.reboot()
        await eventually(lambda: d.status is not DriverStatus.OK)
        with pytest.raises(DeviceOffline):
            await d.call("route", {"input": 1, "outputs": [1]})
        statuses: list[DriverStatus] = []
        d.on_event = lambda e: statuses.append(getattr(e, "status", DriverStatus.OK))
        await eventually(lambda: d.status is DriverStatus.OK, 15)
        assert DriverStatus.CONNECTION_FAILURE in statuses or DriverStatus.DISCONNECTED in statuses
        assert d.state["tie.video.7"] == 7  # the reset ties were read again
    finally:
        await d.stop()


async def test_machine_numbers_on_a_shared_bus() -> None:
    sim = KramerSimulator(8, 8, machine=2)
    srv = await serve_tcp(sim)
    right = make(TcpEndpoint("127.0.0.1", srv.port), size="8x8", machine=2)
    wrong = make(TcpEndpoint("127.0.0.1", srv.port), size="8x8", machine=3, timeout_ms=300)
    try:
        await started(right)
        await right.call("route", {"input": 4, "outputs": [4]})
        assert sim.routes["video"][4] == 4
        sim.inject(b"~05@VID 1>4\r\n")  # machine 5's report on the same bus
        await asyncio.sleep(0.1)
        assert right.state["tie.video.4"] == 4
        await wrong.start()  # machine 3 is not on this bus: nobody answers
        await eventually(lambda: wrong.status is DriverStatus.CONNECTION_FAILURE, 10)
        assert "did not answer" in wrong.status_detail
    finally:
        await right.stop()
        await wrong.stop()
        await srv.close()
