"""Cisco tshell over SSH: what the SSH layer costs against tshell on plain TCP and the xAPI
WebSocket, same simulator, same run.

The simulated codec runs in its own process (``wallctl simulate cisco-xapi`` with the
WebSocket, ``--tshell`` and ``--ssh-listen`` on one endpoint model; a second process for an
RSA host key). This process runs the driver, as the daemon does:

- ``connect_*_ms``: from ``driver.start()`` to status ``ok`` (TCP, SSH key exchange, host
  key check, password, banner, ``echo off``, feedback registration, the state read),
  median of ``CONNECTS`` links; a fresh driver each time.
- ``rtt_*_p50_ms`` / ``_p99_ms``: one ``volume`` action (validation, queue, codec, the
  transport, the codec's ``OK``), ``COMMANDS`` per link in rounds, the transports taking
  turns.
- ``ssh_added_*``: SSH minus tshell on TCP at the same percentile (the baseline).

Targets: SSH adds at most 2 ms to a command at p99; an SSH link is up within 500 ms.
"""

from __future__ import annotations

import asyncio
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import PYTHON, ROOT, write_result

from drivers.cisco_xapi.driver import CiscoXapiConfig, CiscoXapiDriver
from drivers.contract import DriverSetup, DriverStatus
from drivers.transport import TcpEndpoint

CONNECTS = 20
COMMANDS = 1000
ROUNDS = 10
PASSWORD = "bench pw"
TARGET_ADDED_P99_MS = 2.0
TARGET_CONNECT_MS = 500.0


async def simulator(*extra: str) -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(
        PYTHON,
        "-m",
        "wallctl",
        "simulate",
        "cisco-xapi",
        "--user",
        "admin",
        "--password",
        PASSWORD,
        *extra,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode().strip()
    where = (await asyncio.wait_for(proc.stderr.readline(), 30)).decode()
    return proc, first + " " + where


def port_after(text: str, pattern: str) -> int:
    m = re.search(pattern, text)
    if m is None:
        raise RuntimeError(f"no {pattern!r} in {text!r}")
    return int(m.group(1))


def driver(transport: str, port: int, state_dir: str) -> CiscoXapiDriver:
    cfg = CiscoXapiConfig.model_validate(
        {"transport": transport, "retry_max_s": 1, "keepalive_s": 0}
    )
    extra = {"state_dir": state_dir}
    return CiscoXapiDriver(
        DriverSetup("bench", cfg, TcpEndpoint("127.0.0.1", port), PASSWORD, extra=extra)
    )


async def up(d: CiscoXapiDriver) -> float:
    t0 = time.perf_counter()
    await d.start()
    while d.status is not DriverStatus.OK:
        if time.perf_counter() - t0 > 30:
            raise RuntimeError(f"no link: {d.status_detail}")
        await asyncio.sleep(0.0005)
    return (time.perf_counter() - t0) * 1000


async def connects(transport: str, port: int, state_dir: str) -> float:
    took = []
    for _ in range(CONNECTS):
        d = driver(transport, port, state_dir)
        took.append(await up(d))
        await d.stop()
    return statistics.median(took)


async def rtts(links: dict[str, CiscoXapiDriver]) -> dict[str, list[float]]:
    """``COMMANDS`` per link, in interleaved rounds so machine noise falls on all alike."""
    out: dict[str, list[float]] = {name: [] for name in links}
    for r in range(ROUNDS):
        for name, d in links.items():
            for i in range(COMMANDS // ROUNDS):
                t0 = time.perf_counter()
                await d.call("volume", {"level": (r + i) % 100})
                out[name].append((time.perf_counter() - t0) * 1000)
    return out


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def main() -> None:
    main_sim, where = await simulator(
        "--listen",
        "127.0.0.1:0",
        "--tshell",
        "127.0.0.1:0",
        "--ssh-listen",
        "127.0.0.1:0",
        "--ssh-key-type",
        "ed25519",
    )
    rsa_sim, rsa_where = await simulator(
        "--listen", "127.0.0.1:0", "--ssh", "--ssh-key-type", "rsa"
    )
    ws = port_after(where, r"ws://127\.0\.0\.1:(\d+)/ws")
    tshell = port_after(where, r"tshell on tcp 127\.0\.0\.1:(\d+)")
    ssh = port_after(where, r"tshell over ssh on 127\.0\.0\.1:(\d+)")
    ssh_rsa = port_after(rsa_where, r"^127\.0\.0\.1:(\d+)")
    figures: dict[str, float] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="bench-cisco-ssh-") as state:
            figures["connect_ssh_ed25519_ms"] = await connects("ssh", ssh, state)
            figures["connect_ssh_rsa_ms"] = await connects("ssh", ssh_rsa, state)
            figures["connect_tshell_tcp_ms"] = await connects("tshell", tshell, state)
            figures["connect_ws_ms"] = await connects("ws", ws, state)
            links = {
                "ssh": driver("ssh", ssh, state),
                "tshell_tcp": driver("tshell", tshell, state),
                "ws": driver("ws", ws, state),
            }
            for d in links.values():
                await up(d)
            try:
                samples = await rtts(links)
            finally:
                for d in links.values():
                    await d.stop()
    finally:
        for proc in (main_sim, rsa_sim):
            proc.terminate()
            await proc.wait()
    for name, values in samples.items():
        figures[f"rtt_{name}_p50_ms"] = pct(values, 50)
        figures[f"rtt_{name}_p99_ms"] = pct(values, 99)
    figures["ssh_added_p50_ms"] = figures["rtt_ssh_p50_ms"] - figures["rtt_tshell_tcp_p50_ms"]
    figures["ssh_added_p99_ms"] = figures["rtt_ssh_p99_ms"] - figures["rtt_tshell_tcp_p99_ms"]
    figures = {k: round(v, 3) for k, v in figures.items()}
    write_result(
        "cisco_ssh",
        figures,
        {
            "ssh_added_p99_ms": {"max": TARGET_ADDED_P99_MS},
            "connect_ssh_ed25519_ms": {"max": TARGET_CONNECT_MS},
            "connect_ssh_rsa_ms": {"max": TARGET_CONNECT_MS},
        },
        notes={
            "connects": CONNECTS,
            "commands": COMMANDS,
            "baseline": "tshell on plain TCP, same simulator process, same run",
        },
    )


if __name__ == "__main__":
    asyncio.run(main())
