"""`wallctl simulate cisco-xapi|huawei-te` run alone, and a driver pointed at them."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sim_helpers import eventually

from drivers.cisco_xapi.driver import CiscoXapiConfig, CiscoXapiDriver
from drivers.contract import DriverSetup, DriverStatus
from drivers.huawei_te.driver import HuaweiTeConfig, HuaweiTeDriver
from drivers.transport import TcpEndpoint


async def _spawn(*args: str) -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "wallctl",
        "simulate",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 60)
    return proc, line.decode().strip()


@pytest.fixture
async def procs() -> AsyncIterator[list[asyncio.subprocess.Process]]:
    running: list[asyncio.subprocess.Process] = []
    yield running
    for p in running:
        if p.returncode is None:
            p.send_signal(signal.SIGTERM)
            await asyncio.wait_for(p.wait(), 10)


@pytest.mark.parametrize("protocol", ["cisco-xapi", "huawei-te"])
async def test_standalone_simulator_serves_a_driver(
    procs: list[asyncio.subprocess.Process], protocol: str
) -> None:
    extra = ["--plain"] if protocol == "huawei-te" else []
    proc, where = await _spawn(
        protocol,
        "--listen",
        "127.0.0.1:0",
        "--user",
        "ops",
        "--password",
        "pw 1",
        "--setup-ms",
        "0",
        "--ring-ms",
        "0",
        *extra,
    )
    procs.append(proc)
    port = int(where.rsplit(":", 1)[1])
    driver: Any
    if protocol == "cisco-xapi":
        cfg = CiscoXapiConfig(user="ops", retry_max_s=1)
        driver = CiscoXapiDriver(DriverSetup("c", cfg, TcpEndpoint("127.0.0.1", port), "pw 1"))
    else:
        hcfg = HuaweiTeConfig(user="ops", tls=False, poll_ms=100, retry_max_s=1)
        driver = HuaweiTeDriver(DriverSetup("h", hcfg, TcpEndpoint("127.0.0.1", port), "pw 1"))
    await driver.start()
    try:
        await eventually(lambda: driver.status is DriverStatus.OK, 15)
        await driver.call("dial", {"number": "sip:nanxun@10.33.1.10"})
        await eventually(lambda: [c["status"] for c in driver.state["calls"]] == ["connected"])
    finally:
        await driver.stop()
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(proc.wait(), 10) == 0


async def test_cisco_tshell_on_a_pty(procs: list[asyncio.subprocess.Process]) -> None:
    from drivers.transport import SerialEndpoint

    proc, path = await _spawn("cisco-xapi", "--pty", "--setup-ms", "0", "--ring-ms", "0")
    procs.append(proc)
    assert path.startswith("/dev/")
    cfg = CiscoXapiConfig(transport="tshell", retry_max_s=1)
    driver = CiscoXapiDriver(DriverSetup("c", cfg, SerialEndpoint(path, 115200), None))
    await driver.start()
    try:
        await eventually(lambda: driver.status is DriverStatus.OK, 15)
        await driver.call("dial", {"number": "h323:nanxun"})
        await eventually(lambda: [c["status"] for c in driver.state["calls"]] == ["connected"])
    finally:
        await driver.stop()


async def test_a_hung_codec_is_dropped_and_found_again(
    procs: list[asyncio.subprocess.Process],
) -> None:
    """The codec process stops (SIGSTOP): TCP stays open in the kernel, nothing answers."""
    proc, where = await _spawn("cisco-xapi", "--listen", "127.0.0.1:0", "--password", "pw")
    procs.append(proc)
    port = int(where.rsplit(":", 1)[1])
    cfg = CiscoXapiConfig(keepalive_s=0.5, timeout_ms=1000, retry_max_s=1)
    driver = CiscoXapiDriver(DriverSetup("c", cfg, TcpEndpoint("127.0.0.1", port), "pw"))
    await driver.start()
    try:
        await eventually(lambda: driver.status is DriverStatus.OK, 15)
        proc.send_signal(signal.SIGSTOP)
        try:
            await eventually(lambda: driver.status is not DriverStatus.OK, 15)
            from drivers.errors import DeviceOffline, DeviceTimeout

            with pytest.raises((DeviceOffline, DeviceTimeout)):
                await driver.call("mute", {})
        finally:
            proc.send_signal(signal.SIGCONT)
        await eventually(lambda: driver.status is DriverStatus.OK, 20)
        await driver.call("mute", {})
    finally:
        await driver.stop()
