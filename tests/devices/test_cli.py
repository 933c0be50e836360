"""`wallctl simulate` (a simulator on its own, TCP and pty) and `wallctl devices` through
a real API server: both as real processes."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

from conftest import PASSWORD, Stack
from sim_wait import eventually

from drivers.contract import DriverSetup, DriverStatus
from drivers.extron_sis.driver import ExtronConfig, ExtronDriver
from drivers.kramer_p3000.driver import KramerConfig, KramerDriver
from drivers.transport import SerialEndpoint, TcpEndpoint

WALLCTL = [sys.executable, "-m", "wallctl"]


async def spawn(*args: str) -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(
        *WALLCTL, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    return proc, line.decode().strip()


async def stop(proc: asyncio.subprocess.Process) -> int:
    proc.send_signal(signal.SIGTERM)
    return await asyncio.wait_for(proc.wait(), 10)


async def test_simulate_tcp_with_password_and_pty() -> None:
    proc, where = await spawn(
        "simulate", "extron-sis", "--listen", "127.0.0.1:0", "--size", "12x4", "--password", "pw"
    )
    try:
        host, port = where.rsplit(":", 1)
        d = ExtronDriver(
            DriverSetup("s", ExtronConfig(size="12x4"), TcpEndpoint(host, int(port)), "pw")
        )
        await d.start()
        await eventually(lambda: d.status is DriverStatus.OK, 15)
        assert d.state["device_size"] == "12x4"
        assert (await d.call("route", {"input": 12, "outputs": [4]}))["ok"]
        await d.stop()
    finally:
        assert await stop(proc) == 0
    proc, path = await spawn("simulate", "kramer-p3000", "--pty", "--baud", "115200")
    try:
        assert path.startswith("/dev/pts/"), path
        k = KramerDriver(DriverSetup("k", KramerConfig(), SerialEndpoint(path, 115200)))
        await k.start()
        await eventually(lambda: k.status is DriverStatus.OK, 15)
        assert (await k.call("route", {"input": 16, "outputs": [16]}))["ok"]
        await k.stop()
    finally:
        assert await stop(proc) == 0


async def test_simulate_refuses_bad_arguments() -> None:
    for args, words in (
        (["simulate", "crestron", "--pty"], "unknown protocol"),
        (["simulate", "extron-sis", "--pty", "--size", "0x4"], "--size"),
        (["simulate", "extron-sis", "--listen", "nowhere"], "HOST:PORT"),
    ):
        proc = await asyncio.create_subprocess_exec(
            *WALLCTL, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        _, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 2 and words in err.decode(), (args, err)


async def test_devices_commands(stack: Stack, tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text(PASSWORD)
    auth = ["--url", stack.url, "--account", "op1", "--password-file", str(pw)]

    async def run(*args: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            *WALLCTL, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    code, out, _ = await run("devices", "list", *auth)
    assert code == 0 and "matrix" in out and "extron-sis" in out and "route" in out
    code, out, _ = await run("devices", "route", "matrix", "区级会议终端", "大屏输入5", "7", *auth)
    assert code == 0 and "in 3 -> out 5" in out and "in 3 -> out 7" in out
    code, out, _ = await run(
        "devices", "call", "matrix2", "route", "input=2", "outputs=[3]", "level=video", *auth
    )
    assert code == 0 and json.loads(out)["ties"][0]["ok"] is True
    code, out, _ = await run("devices", "status", "matrix2", "--json", *auth)
    assert code == 0 and json.loads(out)["state"]["tie.video.3"] == 2
    code, _, err = await run("devices", "call", "matrix", "route", "input=99", "outputs=[1]", *auth)
    assert code == 2 and "params.args.input" in err
    code, out, _ = await run("devices", "status", "matrix", *auth)
    assert code == 0 and "connects 1" in out and "tie.video.5 = 3" in out
    code, _, err = await run("devices", "status", "nope", *auth)
    assert code == 3
    code, _, err = await run("devices", "call", "matrix", "route", "garbage", *auth)
    assert code == 2 and "KEY=VALUE" in err
    # watch: the operator's live view of routes made anywhere (here: the front panel).
    watch = await asyncio.create_subprocess_exec(
        *WALLCTL,
        "devices",
        "watch",
        "--device",
        "matrix",
        "--count",
        "1",
        *auth,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    sim = stack.service.devices["matrix"].simulator
    assert sim is not None
    assert watch.stdout is not None
    line = b""
    for i in range(100):  # until the watcher is subscribed and has seen a change
        sim.sim.front_panel_tie(3 + i % 2, 5, "%")  # type: ignore[attr-defined]
        try:
            line = await asyncio.wait_for(watch.stdout.readline(), 0.5)
            break
        except TimeoutError:
            continue
    assert await asyncio.wait_for(watch.wait(), 10) == 0
    assert line.startswith(b"matrix: in ") and "-> out 5 大屏输入5".encode() in line
