"""The Extron SIS driver against its simulator over real TCP, a pty and a socat pair."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sim_helpers import eventually

from drivers.contract import DriverSetup, DriverStatus, StateChanged
from drivers.errors import DeviceOffline, DeviceRejected, DeviceTimeout, InvalidParams
from drivers.extron_sis.driver import ExtronConfig, ExtronDriver
from drivers.extron_sis.simulator import ExtronSimulator
from drivers.simulator import SimServer, serve_pty, serve_serial, serve_tcp
from drivers.transport import Endpoint, SerialEndpoint, TcpEndpoint


def make(endpoint: Endpoint, password: str | None = None, **opts: Any) -> ExtronDriver:
    opts = {"size": "8x8", "timeout_ms": 1000, "retry_max_s": 1.0, **opts}
    d = ExtronDriver(DriverSetup("mx", ExtronConfig(**opts), endpoint, password))
    d.events = []  # type: ignore[attr-defined]
    d.on_event = d.events.append  # type: ignore[attr-defined]
    return d


@pytest.fixture
async def tcp() -> AsyncIterator[tuple[ExtronSimulator, SimServer]]:
    sim = ExtronSimulator(8, 8, password="s3cret")
    srv = await serve_tcp(sim)
    yield sim, srv
    await srv.close()


async def started(d: ExtronDriver) -> ExtronDriver:
    await d.start()
    assert d.link is not None
    assert await d.link.wait_ready(10), d.status_detail
    return d


def sim_ties(sim: ExtronSimulator, level: str = "video") -> dict[int, int]:
    return dict(sim.ties[level])


def drv_ties(d: ExtronDriver, level: str = "video") -> dict[int, int]:
    return {o: d.state[f"tie.{level}.{o}"] for o in range(1, d.outputs + 1)}


async def test_tcp_login_read_route_salvo(tcp: tuple[ExtronSimulator, SimServer]) -> None:
    sim, srv = tcp
    d = await started(make(TcpEndpoint("127.0.0.1", srv.port), "s3cret"))
    try:
        assert d.status is DriverStatus.OK
        assert d.state["login"] == "Administrator"
        assert d.state["device_size"] == "8x8"
        assert drv_ties(d) == sim_ties(sim) and drv_ties(d, "audio") == sim_ties(sim, "audio")

        r = await d.call("route", {"input": 5, "outputs": [2]})
        assert r == {"ok": True, "ties": [{"input": 5, "output": 2, "level": "av", "ok": True}]}
        assert sim.ties["video"][2] == 5 and sim.ties["audio"][2] == 5
        assert d.state["tie.video.2"] == 5
        assert StateChanged("tie.video.2", 5, "command") in d.events  # type: ignore[attr-defined]

        r = await d.call(
            "salvo",
            {"ties": [{"input": 3, "output": 4, "level": "video"}, {"input": 0, "output": 6}]},
        )
        assert r["ok"] and [t["ok"] for t in r["ties"]] == [True, True]
        assert sim.ties["video"][4] == 3 and sim.ties["audio"][4] == 4  # audio untouched
        assert sim.ties["video"][6] == 0

        await d.call("route", {"input": 7, "outputs": list(range(1, 9))})  # uses 7*!
        assert set(sim.ties["video"].values()) == {7}
        assert (await d.call("ties", {}))["ties"]["video"] == {str(o): 7 for o in range(1, 9)}

        r = await d.call("preset", {"preset": 2})
        assert r["ties"]["video"]["1"] == sim.presets[2][1]
        with pytest.raises(DeviceRejected) as e:
            await d.call("preset", {"preset": 9})
        assert e.value.code == "E11"
    finally:
        await d.stop()


async def test_out_of_range_and_hostile_values_never_reach_the_line(
    tcp: tuple[ExtronSimulator, SimServer],
) -> None:
    sim, srv = tcp
    d = await started(make(TcpEndpoint("127.0.0.1", srv.port), "s3cret"))
    try:
        before = sim.commands
        cases: list[tuple[str, dict[str, Any], str]] = [
            ("route", {"input": 9, "outputs": [1]}, "input"),
            ("route", {"input": 1, "outputs": [1, 9]}, "outputs[1]"),
            ("route", {"input": 1, "outputs": [0]}, "outputs[0]"),
            ("route", {"input": "1*2!", "outputs": [1]}, "input"),
            ("route", {"input": 1, "outputs": ["3\r\n1*1!"]}, "outputs[0]"),
            ("route", {"input": 1, "outputs": [1], "level": "av\r\x1b3CV"}, "level"),
            ("route", {"input": -1, "outputs": [1]}, "input"),
            ("route", {"input": 1, "outputs": []}, "outputs"),
            ("salvo", {"ties": [{"input": 1, "output": 2}, {"input": 99, "output": 1}]}, ""),
            ("preset", {"preset": "5.\x1b"}, "preset"),
            ("route", {"input": 1, "outputs": [1], "extra": "x"}, "extra"),
        ]
        for action, args, where in cases:
            with pytest.raises(InvalidParams) as e:
                await d.call(action, args)
            assert where in (e.value.field or ""), (action, args, e.value.field)
        assert sim.commands == before  # nothing was sent
        assert sim_ties(sim) == drv_ties(d)
    finally:
        await d.stop()


async def test_wrong_and_missing_password(tcp: tuple[ExtronSimulator, SimServer]) -> None:
    _, srv = tcp
    for password, words in (("nope", "refused the password"), (None, "none is configured")):
        d = make(TcpEndpoint("127.0.0.1", srv.port), password)
        await d.start()
        try:
            await eventually(lambda d=d: d.status is DriverStatus.AUTH_FAILURE)
            assert words in d.status_detail
            with pytest.raises(DeviceOffline):
                await d.call("ties", {})
        finally:
            await d.stop()


async def test_size_larger_than_the_device_is_bad_config(
    tcp: tuple[ExtronSimulator, SimServer],
) -> None:
    _, srv = tcp
    d = make(TcpEndpoint("127.0.0.1", srv.port), "s3cret", size="16x16")
    await d.start()
    try:
        await eventually(lambda: d.status is DriverStatus.BAD_CONFIG)
        assert "8x8" in d.status_detail
    finally:
        await d.stop()


async def test_changes_made_elsewhere_are_followed(tcp: tuple[ExtronSimulator, SimServer]) -> None:
    sim, srv = tcp
    d = await started(make(TcpEndpoint("127.0.0.1", srv.port), "s3cret"))
    other = await started(make(TcpEndpoint("127.0.0.1", srv.port), "s3cret"))
    try:
        # Front panel: the switcher only says "Qik"; the driver reads the ties again.
        sim.front_panel_tie(6, 3)
        await eventually(lambda: d.state["tie.video.3"] == 6)
        assert StateChanged("tie.video.3", 6, "device") in d.events  # type: ignore[attr-defined]
        # Another controller: a verbose-mode report names the tie.
        await other.call("route", {"input": 2, "outputs": [8], "level": "audio"})
        await eventually(lambda: d.state["tie.audio.8"] == 2)
    finally:
        await other.stop()
        await d.stop()


async def test_killed_mid_command_then_back(tcp: tuple[ExtronSimulator, SimServer]) -> None:
    sim, srv = tcp
    port = srv.port
    d = await started(make(TcpEndpoint("127.0.0.1", port), "s3cret"))
    try:
        sim.reply_delay_s = 0.5
        call = asyncio.create_task(d.call("route", {"input": 4, "outputs": [1]}))
        await asyncio.sleep(0.1)
        t0 = time.monotonic()
        await srv.close()
        with pytest.raises(DeviceOffline):
            await call
        assert time.monotonic() - t0 < 1.0  # a clear error at once, not a timeout
        await eventually(lambda: d.status is not DriverStatus.OK)
        with pytest.raises(DeviceOffline):
            await d.call("ties", {})
        # It comes back with other ties (changed while we were away): re-read on connect.
        sim.reply_delay_s = 0.0
        sim.front_panel_tie(8, 5)
        srv2 = await serve_tcp(sim, "127.0.0.1", port)
        try:
            await eventually(lambda: d.status is DriverStatus.OK, 10)
            assert d.state["tie.video.5"] == 8
            assert d.link is not None and d.link.connects >= 2
        finally:
            await srv2.close()
    finally:
        await d.stop()


async def test_reboot_and_garbage(tcp: tuple[ExtronSimulator, SimServer]) -> None:
    sim, srv = tcp
    d = await started(make(TcpEndpoint("127.0.0.1", srv.port), "s3cret"))
    try:
        sim.inject(b"\x00\xff\xfe\x1b[2J noise\r\n")
        await d.call("route", {"input": 3, "outputs": [7]})
        assert d.status is DriverStatus.OK and sim.ties["video"][7] == 3
        sim.reboot()  # drops the link, forgets the ties
        assert d.link is not None
        await eventually(lambda: d.link is not None and d.link.connects >= 2, 10)
        await eventually(lambda: d.status is DriverStatus.OK, 10)
        assert d.state["tie.video.7"] == 7  # read again after the restart
    finally:
        await d.stop()


async def test_device_that_stops_answering_is_reopened(
    tcp: tuple[ExtronSimulator, SimServer],
) -> None:
    sim, srv = tcp
    d = await started(make(TcpEndpoint("127.0.0.1", srv.port), "s3cret", timeout_ms=300))
    try:
        sim.mute = True
        with pytest.raises(DeviceTimeout):
            await d.call("ties", {})
        # An unanswered command: the link is dropped and resynchronised, not trusted (a
        # late bare-number answer could otherwise be taken for the next read's).
        await eventually(lambda: d.status is not DriverStatus.OK)
        with pytest.raises(DeviceOffline):
            await d.call("ties", {})
        sim.mute = False
        await eventually(lambda: d.status is DriverStatus.OK, 10)
        await d.call("route", {"input": 2, "outputs": [2]})
        assert sim.ties["video"][2] == 2
    finally:
        await d.stop()


async def test_pty_paced_at_9600_baud() -> None:
    sim = ExtronSimulator(8, 8)
    srv = await serve_pty(sim, 9600)
    d = await started(make(SerialEndpoint(srv.path, 9600)))
    try:
        t0 = time.monotonic()
        await d.call("route", {"input": 5, "outputs": [1]})
        took = time.monotonic() - t0
        # "5*1!" + "Out01 In05 All\r\n" = 20 bytes = 20.8 ms at 9600 baud.
        assert took >= 0.020
        assert sim.ties["video"][1] == 5
        sim.reboot()  # on RS-232 the banner comes again: the driver starts afresh
        await eventually(lambda: d.link is not None and d.link.connects >= 2, 10)
        await eventually(lambda: d.status is DriverStatus.OK, 10)
        assert d.state["tie.video.1"] == 1
    finally:
        await d.stop()
        await srv.close()


async def test_socat_serial_pair(socat_pair: tuple[str, str]) -> None:
    dev_end, host_end = socat_pair
    sim = ExtronSimulator(8, 8)
    srv = await serve_serial(sim, dev_end, 115200)
    d = await started(make(SerialEndpoint(host_end, 115200)))
    try:
        assert drv_ties(d) == sim_ties(sim)
        r = await d.call("salvo", {"ties": [{"input": 1, "output": o} for o in (2, 3, 4)]})
        assert r["ok"]
        assert [sim.ties["video"][o] for o in (2, 3, 4)] == [1, 1, 1]
        sim.front_panel_tie(4, 8)
        await eventually(lambda: d.state["tie.video.8"] == 4)
    finally:
        await d.stop()
        await srv.close()


async def test_keepalive_holds_the_telnet_idle_timeout_off(
    tcp: tuple[ExtronSimulator, SimServer],
) -> None:
    sim, srv = tcp
    sim.idle_timeout_s = 0.8
    alive = await started(make(TcpEndpoint("127.0.0.1", srv.port), "s3cret", keepalive_s=0.25))
    idle = await started(make(TcpEndpoint("127.0.0.1", srv.port), "s3cret", keepalive_s=0))
    try:
        assert alive.link is not None and idle.link is not None
        await eventually(lambda: idle.link is not None and idle.link.connects >= 2, 10)
        assert alive.link.connects == 1  # its polls ("Q") kept the session open
        await eventually(lambda: idle.status is DriverStatus.OK, 10)  # and it came back
    finally:
        await alive.stop()
        await idle.stop()


async def test_a_tie_is_answered_only_by_its_own_echo(
    tcp: tuple[ExtronSimulator, SimServer],
) -> None:
    sim, srv = tcp
    d = await started(make(TcpEndpoint("127.0.0.1", srv.port), "s3cret"))
    try:
        sim.reply_delay_s = 0.3
        call = asyncio.create_task(d.call("route", {"input": 2, "outputs": [3]}))
        await asyncio.sleep(0.05)
        # Another controller's tie, reported while ours waits: not our answer.
        sim.inject(b"Out05 In07 All\r\n")
        r = await call
        assert r["ok"] and sim.ties["video"][3] == 2
        assert d.state["tie.video.5"] == 7  # taken as the change report it is
    finally:
        await d.stop()


async def test_verbose_modes(tcp: tuple[ExtronSimulator, SimServer]) -> None:
    sim, srv = tcp
    quiet = await started(make(TcpEndpoint("127.0.0.1", srv.port), "s3cret", verbose=0))
    tagged = await started(make(TcpEndpoint("127.0.0.1", srv.port), "s3cret", verbose=2))
    loud = await started(make(TcpEndpoint("127.0.0.1", srv.port), "s3cret", verbose=3))
    try:
        sessions = sorted(s.vars["verbose"] for s in sim.sessions)
        assert sessions == [0, 2, 3]
        for d in (quiet, tagged, loud):  # bare (0) and tagged (2, 3) reads both parse
            assert drv_ties(d) == sim_ties(sim)
        sim.front_panel_tie(8, 1, "%")
        await eventually(lambda: loud.state["tie.video.1"] == 8)
        await asyncio.sleep(0.2)
        # Modes 0 and 2 get no change reports: the state stays stale until a read.
        assert quiet.state["tie.video.1"] == 1 and tagged.state["tie.video.1"] == 1
        await quiet.call("ties", {})
        assert quiet.state["tie.video.1"] == 8
    finally:
        for d in (quiet, tagged, loud):
            await d.stop()


async def test_serial_line_cut_mid_command(
    socat_line: tuple[str, str, subprocess.Popen[bytes]],
) -> None:
    dev_end, host_end, proc = socat_line
    sim = ExtronSimulator(8, 8)
    srv = await serve_serial(sim, dev_end, 9600)
    d = await started(make(SerialEndpoint(host_end, 9600)))
    try:
        sim.reply_delay_s = 0.5
        call = asyncio.create_task(d.call("route", {"input": 2, "outputs": [2]}))
        await asyncio.sleep(0.1)
        proc.kill()  # the adapter is pulled out
        with pytest.raises((DeviceOffline, DeviceTimeout)):
            await call
        await eventually(lambda: d.status is not DriverStatus.OK, 10)
        # The port is gone: each retry says why, and the daemon carries on.
        await eventually(lambda: d.status is DriverStatus.CONNECTION_FAILURE, 10)
        assert "retrying in" in d.status_detail
    finally:
        await d.stop()
        await srv.close()
