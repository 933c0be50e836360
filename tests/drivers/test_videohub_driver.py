"""The Videohub driver against its simulator over real TCP connections.

Videohub control is Ethernet only (its RS-422 port speaks a different, deck-style
protocol), so there is no pseudo-terminal variant here.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from drivers.contract import DriverSetup, DriverStatus, StateChanged, StatusChanged
from drivers.errors import DeviceOffline, DeviceRejected, InvalidParams
from drivers.matrix import Tie
from drivers.simulator import SimServer, serve_tcp
from drivers.transport import TcpEndpoint
from drivers.videohub.driver import VideohubConfig, VideohubDriver
from drivers.videohub.simulator import VideohubSimulator

pytestmark = pytest.mark.timeout(60)


async def until(cond: Callable[[], bool], within: float = 5.0, what: str = "") -> None:
    deadline = time.monotonic() + within
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or cond}")
        await asyncio.sleep(0.01)


class Rig:
    def __init__(self, sim: VideohubSimulator, srv: SimServer, drv: VideohubDriver) -> None:
        self.sim = sim
        self.srv = srv
        self.drv = drv
        self.events: list[Any] = []
        drv.on_event = self.events.append

    def statuses(self) -> list[DriverStatus]:
        return [e.status for e in self.events if isinstance(e, StatusChanged)]


def make_driver(port: int, **cfg: Any) -> VideohubDriver:
    options: dict[str, Any] = {"size": "8x4", "timeout_ms": 1000, "retry_max_s": 0.5}
    options.update(cfg)
    return VideohubDriver(
        DriverSetup("vh1", VideohubConfig(**options), TcpEndpoint("127.0.0.1", port))
    )


@contextlib.asynccontextmanager
async def rig(sim: VideohubSimulator | None = None, **cfg: Any) -> AsyncIterator[Rig]:
    sim = sim or VideohubSimulator(inputs=8, outputs=4)
    srv = await serve_tcp(sim)
    r = Rig(sim, srv, make_driver(srv.port, **cfg))
    await r.drv.start()
    try:
        yield r
    finally:
        await r.drv.stop()
        await r.srv.close()


async def ready(r: Rig) -> None:
    await until(lambda: r.drv.status == DriverStatus.OK, what="driver ok")


class RawClient:
    """A second controller on the same Videohub, speaking the protocol by hand."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.seen = b""

    @classmethod
    async def open(cls, port: int) -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        c = cls(reader, writer)
        await c.read_until(b"END PRELUDE:\n\n")
        return c

    async def read_until(self, marker: bytes, within: float = 5.0) -> bytes:
        async def loop() -> bytes:
            while marker not in self.seen:
                chunk = await self.reader.read(4096)
                if not chunk:
                    raise ConnectionError("closed")
                self.seen += chunk
            head, _, rest = self.seen.partition(marker)
            self.seen = rest
            return head + marker

        return await asyncio.wait_for(loop(), within)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


async def test_prelude_fills_the_state() -> None:
    sim = VideohubSimulator(inputs=8, outputs=4)
    sim.routes = {0: 7, 1: 6, 2: 0, 3: 1}
    sim.input_labels[2] = "区级会议终端"
    async with rig(sim) as r:
        await ready(r)
        s = r.drv.state
        assert [s[f"tie.video.{o}"] for o in range(1, 5)] == [8, 7, 1, 2]
        assert s["label.input.3"] == "区级会议终端"
        assert s["label.output.1"] == "Output 1"
        assert s["lock.1"] == "unlocked"
        assert s["protocol_version"] == "2.8"
        assert s["device"]["inputs"] == 8 and s["device"]["outputs"] == 4
        # Everything read at connect carries origin "connect".
        assert all(
            e.origin == "connect"
            for e in r.events
            if isinstance(e, StateChanged) and e.key.startswith("tie.")
        )


async def test_route_salvo_and_broadcast_to_other_clients() -> None:
    async with rig() as r:
        await ready(r)
        other = await RawClient.open(r.srv.port)
        try:
            result = await r.drv.call("route", {"input": 3, "outputs": [1, 2]})
            assert result == {
                "ok": True,
                "ties": [
                    {"input": 3, "output": 1, "level": "av", "ok": True},
                    {"input": 3, "output": 2, "level": "av", "ok": True},
                ],
            }
            assert r.sim.routes[0] == 2 and r.sim.routes[1] == 2
            # One block, one ACK: the other controller sees the same change at once.
            seen = await other.read_until(b"\n\n")
            assert seen == b"VIDEO OUTPUT ROUTING:\n0 2\n1 2\n\n"
            tie_events = [
                e for e in r.events if isinstance(e, StateChanged) and e.key == "tie.video.1"
            ]
            assert tie_events[-1].value == 3 and tie_events[-1].origin == "command"

            salvo = await r.drv.call(
                "salvo", {"ties": [{"input": 5, "output": 3}, {"input": 6, "output": 4}]}
            )
            assert salvo["ok"] is True
            assert (r.sim.routes[2], r.sim.routes[3]) == (4, 5)
            assert r.drv.state["tie.video.4"] == 6
        finally:
            await other.close()


async def test_front_panel_and_other_controller_changes_reach_the_state() -> None:
    async with rig() as r:
        await ready(r)
        r.sim.apply_routes({3: 7})
        await until(lambda: r.drv.state["tie.video.4"] == 8, what="front-panel route")
        other = await RawClient.open(r.srv.port)
        try:
            await other.send(b"OUTPUT LABELS:\n1 Big screen\n\n")
            await other.read_until(b"ACK\n\n")
            await until(lambda: r.drv.state["label.output.2"] == "Big screen")
        finally:
            await other.close()
        ev = [e for e in r.events if isinstance(e, StateChanged) and e.key == "tie.video.4"]
        assert ev[-1].origin == "device"


async def test_bad_values_are_refused_before_anything_is_sent() -> None:
    async with rig() as r:
        await ready(r)
        before = r.sim.blocks_received
        cases: list[tuple[str, dict[str, Any], str]] = [
            ("route", {"input": 9, "outputs": [1]}, "input"),
            ("route", {"input": 1, "outputs": [1, 5]}, "outputs[1]"),
            ("route", {"input": 0, "outputs": [1]}, "input"),
            ("route", {"input": "1\nVIDEO OUTPUT ROUTING:", "outputs": [1]}, "input"),
            (
                "salvo",
                {"ties": [{"input": 1, "output": 1}, {"input": 1, "output": 9}]},
                "ties[1].output",
            ),
            ("label", {"kind": "output", "number": 5, "label": "x"}, "number"),
            ("label", {"kind": "output", "number": 1, "label": "\r\n\x1b"}, "label"),
            ("lock", {"output": 1, "mode": "steal"}, "mode"),
        ]
        for name, args, field in cases:
            with pytest.raises(InvalidParams) as err:
                await r.drv.call(name, args)
            assert err.value.field == field, (name, args, err.value.message)
        assert r.sim.blocks_received == before
        assert r.sim.routes == {0: 0, 1: 1, 2: 2, 3: 3}


async def test_hostile_label_is_cleaned_and_disturbs_nothing() -> None:
    async with rig() as r:
        await ready(r)
        routes = dict(r.sim.routes)
        result = await r.drv.call(
            "label",
            {"kind": "input", "number": 2, "label": "Cam\n\nVIDEO OUTPUT ROUTING:\n0 5\n\x1b[2J"},
        )
        assert result["label"] == "Cam VIDEO OUTPUT ROUTING: 0 5 [2J"
        assert r.sim.input_labels[1] == "Cam VIDEO OUTPUT ROUTING: 0 5 [2J"
        assert r.sim.routes == routes
        assert r.sim.naks == 0


async def test_locks_from_another_controller() -> None:
    async with rig() as r:
        await ready(r)
        other = await RawClient.open(r.srv.port)
        try:
            await other.send(b"VIDEO OUTPUT LOCKS:\n1 O\n\n")
            await other.read_until(b"ACK\n\n")
            await until(lambda: r.drv.state["lock.2"] == "locked", what="lock seen")
            # A salvo over a locked output: the free tie goes through, the locked one is
            # reported as such, tie by tie.
            result = await r.drv.call(
                "salvo", {"ties": [{"input": 4, "output": 1}, {"input": 4, "output": 2}]}
            )
            assert result["ok"] is False
            assert result["ties"][0]["ok"] is True
            assert result["ties"][1]["ok"] is False and result["ties"][1]["code"] == "locked"
            assert r.sim.routes[0] == 3 and r.sim.routes[1] == 1

            # If our view is stale, the Videohub's own NAK is what the caller gets.
            r.drv.state["lock.2"] = "unlocked"
            with pytest.raises(DeviceRejected) as err:
                await r.drv._send_ties([Tie(4, 2, "av")])
            assert err.value.code == "NAK"

            # Break the other controller's lock, then lock it for ourselves.
            assert (await r.drv.call("lock", {"output": 2, "mode": "force_unlock"}))[
                "lock"
            ] == "unlocked"
            assert (await r.drv.call("lock", {"output": 2, "mode": "lock"}))["lock"] == "owned"
            # The other controller sees it as locked by someone else.
            seen = await other.read_until(b"1 L\n\n")
            assert seen.endswith(b"VIDEO OUTPUT LOCKS:\n1 L\n\n")
            await other.send(b"VIDEO OUTPUT ROUTING:\n1 0\n\n")
            await other.read_until(b"NAK\n\n")
            assert r.sim.routes[1] == 1
        finally:
            await other.close()


async def test_garbage_on_the_line_is_survived() -> None:
    async with rig() as r:
        await ready(r)
        r.sim.inject(b"\x00\xff\x1b[2J garbage\nVIDEO OUTPUT ROUTING:\n")
        r.sim.inject(b"bogus line\n\nSOMETHING NEW:\nx: y\n\n")
        assert (await r.drv.call("route", {"input": 2, "outputs": [4]}))["ok"] is True
        assert r.drv.garbage >= 1
        assert r.drv.status == DriverStatus.OK


async def test_keepalive_pings_and_a_silent_device_is_reconnected() -> None:
    async with rig(keepalive_s=0.2, silence_s=1.0) as r:
        await ready(r)
        await until(lambda: r.sim.blocks_received >= 3, what="pings")
        # The device keeps TCP open but stops answering: the link must be dropped...
        r.sim.mute = True
        await until(lambda: r.drv.status != DriverStatus.OK, within=6.0, what="link dropped")
        with pytest.raises(DeviceOffline):
            await r.drv.call("route", {"input": 1, "outputs": [1]})
        # ...and come back by itself once the device talks again.
        r.sim.mute = False
        await until(lambda: r.drv.status == DriverStatus.OK, within=8.0, what="link back")
        assert (await r.drv.call("route", {"input": 1, "outputs": [2]}))["ok"] is True


async def test_device_reboot_sends_the_prelude_again() -> None:
    async with rig() as r:
        await ready(r)
        connects = r.drv.link.connects if r.drv.link else 0
        # Changed while the driver is not looking (no broadcast), then power-cycled.
        r.sim.routes[0] = 5
        r.sim.output_labels[0] = "After reboot"
        r.sim.reboot()
        await until(
            lambda: (
                r.drv.link is not None
                and r.drv.link.connects > connects
                and r.drv.status == DriverStatus.OK
            ),
            within=8.0,
            what="reconnected",
        )
        await until(lambda: r.drv.state["tie.video.1"] == 6)
        assert r.drv.state["label.output.1"] == "After reboot"


async def test_killed_mid_command_fails_cleanly_and_recovers() -> None:
    sim = VideohubSimulator(inputs=8, outputs=4, reply_delay_s=0.5)
    srv = await serve_tcp(sim)
    port = srv.port
    drv = make_driver(port)
    await drv.start()
    try:
        await until(lambda: drv.status == DriverStatus.OK, what="driver ok")
        sent = sim.blocks_received
        call = asyncio.create_task(drv.call("route", {"input": 2, "outputs": [1]}))
        await until(lambda: sim.blocks_received > sent, what="request on the wire")
        await srv.close()  # the device dies with our request unanswered
        with pytest.raises(DeviceOffline):
            await call
        await until(lambda: drv.status != DriverStatus.OK, what="down")
        sim2 = VideohubSimulator(inputs=8, outputs=4)
        sim2.routes[2] = 7
        srv = await serve_tcp(sim2, port=port)
        await until(lambda: drv.status == DriverStatus.OK, within=10.0, what="back")
        # The state is re-read from the device that came back.
        assert drv.state["tie.video.3"] == 8
        assert (await drv.call("route", {"input": 2, "outputs": [1]}))["ok"] is True
        assert sim2.routes[0] == 1
    finally:
        await drv.stop()
        await srv.close()


async def test_old_firmware_without_end_prelude() -> None:
    sim = VideohubSimulator(inputs=8, outputs=4, version="2.3", end_prelude=False)
    async with rig(sim) as r:
        await ready(r)
        assert r.drv.state["protocol_version"] == "2.3"
        assert r.drv.state["tie.video.4"] == 4


async def test_server_without_a_router_and_a_size_too_large() -> None:
    sim = VideohubSimulator(inputs=8, outputs=4, device_present="false")
    async with rig(sim) as r:
        await until(lambda: DriverStatus.CONNECTION_FAILURE in r.statuses(), what="failure")
        assert "Device present: false" in r.drv.status_detail
    async with rig(size="16x16") as r:
        await until(lambda: r.drv.status == DriverStatus.BAD_CONFIG, what="bad config")
        assert "16x16 is larger than the device's 8x4" in r.drv.status_detail


async def test_router_replugged_behind_a_videohub_server() -> None:
    async with rig(keepalive_s=0) as r:
        await ready(r)
        assert r.drv.link is not None
        connects = r.drv.link.connects
        # Same link, new router state: every block but the preamble arrives again.
        r.sim.routes[1] = 6
        r.sim.replug()
        await until(lambda: r.drv.state["tie.video.2"] == 7, what="re-sent routing")
        assert r.drv.link.connects == connects
        # The router goes away: the driver says so instead of serving stale ties...
        r.sim.device_present = "false"
        r.sim.replug()
        await until(lambda: r.drv.status == DriverStatus.CONNECTION_FAILURE, what="no device")
        assert "Device present: false" in r.drv.status_detail
        with pytest.raises(DeviceOffline):
            await r.drv.call("route", {"input": 1, "outputs": [1]})
        # ...and carries on once it is back.
        r.sim.device_present = "true"
        await until(lambda: r.drv.status == DriverStatus.OK, within=8.0, what="router back")
        assert (await r.drv.call("ties", {}))["ties"]["video"]["2"] == 7


async def test_registered_simulator_takes_the_size() -> None:
    from drivers import registry
    from drivers.registry import SimOptions

    proto = registry.get("videohub")
    assert proto.driver is VideohubDriver and proto.manifest.default_tcp_port == 9990
    sim = proto.simulator(SimOptions(inputs=12, outputs=6))
    assert isinstance(sim, VideohubSimulator)
    async with rig(sim, size="12x6") as r:
        await ready(r)
        assert r.drv.state["device"]["model"] == "Blackmagic Smart Videohub 12G 12x6"
        assert r.drv.state["size"] == {"inputs": 12, "outputs": 6}


async def test_a_288x288_router() -> None:
    sim = VideohubSimulator(inputs=288, outputs=288)
    async with rig(sim, size="288x288") as r:
        await ready(r)
        assert r.drv.state["tie.video.288"] == 288
        assert r.drv.state["label.input.288"] == "Input 288"
        result = await r.drv.call("route", {"input": 288, "outputs": list(range(1, 289))})
        assert result["ok"] is True and len(result["ties"]) == 288
        assert set(sim.routes.values()) == {287}


async def test_monitoring_outputs_are_not_mistaken_for_outputs() -> None:
    sim = VideohubSimulator(inputs=8, outputs=4, monitoring_outputs=2)
    sim.monitor_routes = {0: 7, 1: 6}
    async with rig(sim) as r:
        await ready(r)
        assert [r.drv.state[f"tie.video.{o}"] for o in range(1, 5)] == [1, 2, 3, 4]
        assert "label.output.5" not in r.drv.state
        # Another panel switches a monitoring output: the matrix ties stay as they were.
        other = await RawClient.open(r.srv.port)
        try:
            await other.send(b"VIDEO MONITORING OUTPUT ROUTING:\n0 3\n\n")
            await other.read_until(b"ACK\n\n")
            await other.send(b"PING:\n\n")
            await other.read_until(b"ACK\n\n")
            assert sim.monitor_routes[0] == 3
            await r.drv.call("ties", {})
            assert r.drv.state["tie.video.1"] == 1
        finally:
            await other.close()


def test_liveness_defaults_follow_blackmagic_and_companion() -> None:
    cfg = VideohubConfig()
    assert (cfg.keepalive_s, cfg.silence_s) == (15.0, 30.0)
    drv = make_driver(9990)
    assert drv.link is not None
    assert (drv.link.keepalive_s, drv.link.silence_s) == (15.0, 30.0)
