"""Simulator hosting: the on_disconnect hook (and the Videohub's lock release), driver
options reaching simulators (``SimOptions.options``), and protocols that host their own
simulator (HTTPS, WebSocket) for ``simulate = true`` and ``wallctl simulate``."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from typing import Any

import pytest
from sim_helpers import eventually

from drivers import registry
from drivers.contract import DriverSetup, DriverStatus
from drivers.registry import SimOptions
from drivers.samsung_mdc.driver import SamsungMdcConfig, SamsungMdcDriver
from drivers.simulator import DeviceSimulator, HostedSimulator, SimServer, SimSession, serve_tcp
from drivers.transport import TcpEndpoint
from drivers.videohub.simulator import VideohubSimulator
from wallctl.config import Config  # noqa: F401  (first: wallctl.config imports the devices')
from wallctl.devices.config import DeviceConfig
from wallctl.devices.service import DeviceService

pytestmark = pytest.mark.timeout(90)


class Recorder(DeviceSimulator):
    protocol = "recorder"

    def __init__(self) -> None:
        super().__init__()
        self.departed: list[tuple[SimSession, bool]] = []
        self.explode = False

    def on_data(self, session: SimSession, data: bytes) -> None:
        session.send(data)

    def on_disconnect(self, session: SimSession) -> None:
        self.departed.append((session, session in self.sessions))
        if self.explode:
            raise RuntimeError("simulator bug")


async def _client(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def test_on_disconnect_runs_once_per_departed_client() -> None:
    sim = Recorder()
    srv = await serve_tcp(sim)
    try:
        _r1, w1 = await _client(srv.port)
        r2, w2 = await _client(srv.port)
        await eventually(lambda: len(sim.sessions) == 2)
        sim.explode = True  # a failing hook is logged; the server and the others go on
        w1.close()
        await eventually(lambda: len(sim.departed) == 1)
        session, still_listed = sim.departed[0]
        assert session.closed and not still_listed
        w2.write(b"echo\n")
        assert await asyncio.wait_for(r2.readline(), 5) == b"echo\n"
        sim.explode = False
    finally:
        await srv.close()
    # Closing the server drops (and reports) the remaining client, once.
    assert len(sim.departed) == 2 and len({id(s) for s, _ in sim.departed}) == 2
    w2.close()


async def _block(reader: asyncio.StreamReader, within: float = 5.0) -> bytes:
    async def read() -> bytes:
        lines = []
        while True:
            line = await reader.readline()
            if not line:
                raise ConnectionError("closed")
            if line == b"\n":
                return b"".join(lines)
            lines.append(line)

    return await asyncio.wait_for(read(), within)


async def _until(reader: asyncio.StreamReader, header: bytes) -> bytes:
    while True:
        block = await _block(reader)
        if block.startswith(header):
            return block


async def test_videohub_releases_a_departed_clients_locks_at_once() -> None:
    sim = VideohubSimulator(inputs=4, outputs=3)
    srv = await serve_tcp(sim)
    try:
        ra, wa = await _client(srv.port)
        rb, wb = await _client(srv.port)
        await _until(ra, b"END PRELUDE:")
        await _until(rb, b"END PRELUDE:")
        wa.write(b"VIDEO OUTPUT LOCKS:\n1 O\n2 O\n\n")
        assert await _block(ra) == b"ACK\n"
        assert await _until(rb, b"VIDEO OUTPUT LOCKS:") == b"VIDEO OUTPUT LOCKS:\n1 L\n2 L\n"
        wb.write(b"VIDEO OUTPUT ROUTING:\n1 3\n\n")
        assert await _block(rb) == b"NAK\n"  # A holds output 2 (index 1)
        wa.close()
        # B hears at once (not at its next dump) that both outputs are free ...
        assert await _until(rb, b"VIDEO OUTPUT LOCKS:") == b"VIDEO OUTPUT LOCKS:\n1 U\n2 U\n"
        assert sim.lock_owner == {}
        # ... and can route and lock them.
        wb.write(b"VIDEO OUTPUT ROUTING:\n1 3\n\n")
        assert await _block(rb) == b"ACK\n"
        assert await _block(rb) == b"VIDEO OUTPUT ROUTING:\n1 3\n"
        assert sim.routes[1] == 3
        # A client that held nothing leaves quietly: nobody gets a lock block.
        rc, wc = await _client(srv.port)
        await _until(rc, b"END PRELUDE:")
        wc.close()
        wb.write(b"PING:\n\n")
        assert await _block(rb) == b"ACK\n"
        wb.close()
    finally:
        await srv.close()


def _service(*devices: dict[str, Any]) -> DeviceService:
    configs = [DeviceConfig.model_validate(d) for d in devices]
    return DeviceService(configs)


def _sim_of(svc: DeviceService, device: str) -> Any:
    running = svc.devices[device].simulator
    assert isinstance(running, SimServer)
    return running.sim


async def test_simulated_displays_play_the_configured_ids_and_warmup() -> None:
    svc = _service(
        {"id": "mdc", "name": "MDC", "protocol": "samsung-mdc", "simulate": True,
         "display_id": 7, "chain": [8], "warmup_s": 0.4},
        {"id": "lg", "name": "LG", "protocol": "lg", "simulate": True, "set_id": 5},
        {"id": "any", "name": "MDC default", "protocol": "samsung-mdc", "simulate": True},
    )  # fmt: skip
    await svc.start()
    try:
        assert await svc.wait_ready(30), {d: v.driver.status_detail for d, v in svc.devices.items()}
        mdc, lg, anyid = _sim_of(svc, "mdc"), _sim_of(svc, "lg"), _sim_of(svc, "any")
        assert set(mdc.displays) == {7, 8} and not mdc.any_id and mdc.warmup_s == 0.4
        assert set(lg.displays) == {5} and not lg.any_id and lg.warmup_s == 0.0
        assert anyid.any_id and anyid.warmup_s == 0.0  # nothing configured: the old default
        # The chain's panels warm up after power-on; the driver waits them out.
        await svc.display_power("mdc", True)
        assert mdc.displays[7].power and mdc.displays[8].power
        driver = svc.devices["mdc"].driver
        source = driver.input_names[0]  # type: ignore[attr-defined]
        await svc.display_input("mdc", source)
        assert driver.state.get("input") == source
    finally:
        await svc.stop()


async def test_codec_simulators_host_themselves_for_simulate_true() -> None:
    svc = _service(
        {"id": "te", "name": "TE20", "protocol": "huawei-te", "simulate": True,
         "password": "pw 1", "poll_ms": 100, "retry_max_s": 1},
        {"id": "room", "name": "Room Kit", "protocol": "cisco-xapi", "simulate": True,
         "user": "ops", "password": "pw 2", "retry_max_s": 1},
        {"id": "shell", "name": "tshell", "protocol": "cisco-xapi", "simulate": True,
         "transport": "tshell", "retry_max_s": 1},
        {"id": "bad", "name": "TLS ws", "protocol": "cisco-xapi", "simulate": True,
         "tls": True},
    )  # fmt: skip
    await svc.start()
    try:
        # A simulator that cannot honour its options fails that device alone, saying why.
        assert "serves plain ws: set tls = false" in svc.failed["bad"]
        await eventually(
            lambda: all(d.driver.status is DriverStatus.OK for d in svc.devices.values()), 30
        )
        te, room = svc.devices["te"].simulator, svc.devices["room"].simulator
        assert isinstance(te, HostedSimulator) and te.describe().startswith("huawei-te on https")
        assert isinstance(room, HostedSimulator) and "/ws" in room.describe()
        assert isinstance(svc.devices["shell"].simulator, SimServer)
        for dev in ("te", "room"):
            driver = svc.devices[dev].driver
            await driver.call("dial", {"number": "sip:nanxun@10.33.1.10"})
            await eventually(
                lambda d=driver: (
                    [c["status"] for c in d.state.get("calls") or []]  # type: ignore[misc]
                    == ["connected"]
                ),
                15,
            )
    finally:
        await svc.stop()


async def test_serve_uses_the_byte_stream_model_when_there_is_no_host() -> None:
    proto = registry.get("samsung-mdc")
    assert proto.host is None and registry.get("huawei-te").host is not None
    running = await proto.serve(SimOptions(options={"display_id": 3}))
    try:
        assert isinstance(running, SimServer) and set(running.sim.displays) == {3}  # type: ignore[attr-defined]
        assert running.describe() == f"samsung-mdc simulator on tcp 127.0.0.1:{running.port}"
    finally:
        await running.close()
    with pytest.raises(ValueError, match="setup_ms"):
        await registry.get("huawei-te").serve(SimOptions(options={"setup_ms": -1}))


async def _cli(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "wallctl",
        "simulate",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_cli_options_reach_the_simulator_and_bad_ones_are_refused() -> None:
    proc = await _cli("samsung-mdc", "--listen", "127.0.0.1:0", "--option", "display_id=3")
    try:
        assert proc.stdout is not None
        where = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode().strip()
        port = int(where.rsplit(":", 1)[1])
        # Only display 3 answers: a driver for ID 3 comes up, one for ID 1 does not.
        good = SamsungMdcDriver(
            DriverSetup("m3", SamsungMdcConfig(display_id=3), TcpEndpoint("127.0.0.1", port))
        )
        bad = SamsungMdcDriver(
            DriverSetup(
                "m1",
                SamsungMdcConfig(display_id=1, timeout_ms=300, retry_max_s=1),
                TcpEndpoint("127.0.0.1", port),
            )
        )
        await good.start()
        await bad.start()
        try:
            await eventually(lambda: good.status is DriverStatus.OK, 20)
            await eventually(lambda: bad.status is DriverStatus.CONNECTION_FAILURE, 20)
        finally:
            await good.stop()
            await bad.stop()
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    for args, expect in (
        (["lg", "--pty", "--option", "set_id"], "--option: expected KEY=VALUE"),
        (["lg", "--pty", "--option", "set_id=0"], "--option set_id: Input should be greater"),
        (["lg", "--pty", "--option", "chain=[1]"], "needs its own set id"),
        (["samsung-mdc", "--pty", "--option", "bogus=1"], "bogus: not an option of samsung-mdc"),
        (["cisco-xapi", "--listen", "127.0.0.1:0", "--setup-ms", "-5"], "setup_ms must be"),
        (["huawei-te", "--pty"], "not a byte stream: use --listen"),
        (["cisco-xapi", "--listen", "127.0.0.1:0", "--tshell", "nowhere"], "not HOST:PORT"),
    ):
        p = await _cli(*args)
        out, err = await asyncio.wait_for(p.communicate(), 60)
        assert p.returncode == 2, (args, err)
        assert expect in err.decode(), (args, err)
        assert out == b""


def test_check_refuses_simulate_where_no_simulator_can_run() -> None:
    from wallctl.config import ConfigError, parse_config

    tiles = {"rows": 2, "cols": 2, "width_mm": 1209.6, "height_mm": 680.4}
    raw: dict[str, Any] = {
        "wall": {"tiles": {**tiles, "width_px": 1920, "height_px": 1080}},
        "devices": [
            {"id": "cam", "name": "Cam", "protocol": "onvif", "simulate": True},
            {"id": "te", "name": "TE", "protocol": "huawei-te", "simulate": True},
            {"id": "m", "name": "M", "protocol": "samsung-mdc", "simulate": True, "chain": [2]},
        ],
    }
    with pytest.raises(ConfigError) as e:
        parse_config(raw)
    problems = [str(p) for p in e.value.problems]
    # Only the camera: the codec hosts its simulator, the display chain is playable.
    assert len(problems) == 1, problems
    assert problems[0].startswith("devices[0].simulate: onvif has no in-daemon simulator")
