"""Benchmark: the Huawei TE driver against its simulator (HTTP on loopback).

    .venv/bin/python bench/huawei_te.py

The endpoint pushes nothing: the driver learns that a call connected (or failed) on its
next keep-alive read (``WEB_GetMailboxDataAPI``). Measured, N calls each:

- ``relogin_read_ms``: a status read on a session the endpoint forgot: the refused read,
  the keep-alive that tells the session is gone, session id, login, fresh session id,
  and the read again (keep-alive, microphone, aux stream);
- ``dial_answer_ms``: ``dial`` until it returns the endpoint's site handle;
- ``connected_seen_ms``: how long after the simulated far end answers the driver reports
  the call connected, with the default ``setup_poll_ms`` (200) and ``poll_ms`` (1000);
- ``connected_seen_poll_only_ms``: the same with ``setup_poll_ms = poll_ms`` (the driver
  before the faster setup read: the baseline, measured in the same run);
- ``idle_requests_per_s``: HTTP requests a connected, idle driver makes.

Writes bench/results/huawei_te.json and prints a table.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Before bench/ (the script's folder), whose drivers.py would shadow the drivers package.
sys.path.insert(0, str(ROOT))

from _common import write_result  # noqa: E402

from drivers.cisco_xapi.farend import FarEnd  # noqa: E402
from drivers.contract import DriverSetup, DriverStatus  # noqa: E402
from drivers.huawei_te.driver import HuaweiTeConfig, HuaweiTeDriver  # noqa: E402
from drivers.huawei_te.simulator import HuaweiModel, HuaweiSimulator  # noqa: E402
from drivers.transport import TcpEndpoint  # noqa: E402
from wallctl.logs import setup_logging  # noqa: E402

N = 12
PASSWORD = "bench pw"
SETUP_S, RING_S = 0.05, 0.1


async def until(check: Callable[[], bool], limit: float = 10.0) -> None:
    deadline = time.perf_counter() + limit
    while not check():
        if time.perf_counter() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.001)


async def measure(setup_poll_ms: int) -> tuple[list[float], list[float], list[float], float]:
    sim = HuaweiSimulator(
        HuaweiModel(password=PASSWORD, farend=FarEnd(setup_s=SETUP_S, ring_s=RING_S))
    )
    await sim.start(plain=True)
    cfg = HuaweiTeConfig(tls=False, poll_ms=1000, setup_poll_ms=setup_poll_ms)
    d = HuaweiTeDriver(
        DriverSetup("te", cfg, TcpEndpoint("127.0.0.1", sim.port or 0), password=PASSWORD)
    )
    logins: list[float] = []
    answers: list[float] = []
    seen: list[float] = []
    try:
        await d.start()
        await until(lambda: d.status is DriverStatus.OK)
        for _ in range(N):
            # A fresh login each round: the endpoint forgets the session.
            sim.model.expire_sessions()
            t0 = time.perf_counter()
            await d.call("calls", {})
            logins.append((time.perf_counter() - t0) * 1000)
        for i in range(N):
            t0 = time.perf_counter()
            await d.call("dial", {"number": f"sip:n{i}@bench"})
            answers.append((time.perf_counter() - t0) * 1000)
            await until(lambda: any(c["status"] == "connected" for c in d.state["calls"]))
            # The far end answered SETUP_S + RING_S after the dial (the simulator's clock).
            seen.append((time.perf_counter() - t0 - SETUP_S - RING_S) * 1000)
            await d.call("disconnect", {})
            await until(lambda: not d.state["calls"])
        before = d.requests
        await asyncio.sleep(3)
        idle_rate = (d.requests - before) / 3
    finally:
        await d.stop()
        await sim.stop()
    return logins, answers, seen, idle_rate


async def main() -> None:
    setup_logging("warning")
    logins, answers, seen, idle_rate = await measure(200)
    _, _, seen_poll_only, _ = await measure(1000)
    med = statistics.median
    figures = {
        "relogin_read_ms": round(med(logins), 2),
        "dial_answer_ms": round(med(answers), 2),
        "connected_seen_ms": round(med(seen), 1),
        "connected_seen_max_ms": round(max(seen), 1),
        "connected_seen_poll_only_ms": round(med(seen_poll_only), 1),
        "idle_requests_per_s": round(idle_rate, 2),
    }
    targets = {"connected_seen_ms": {"max": 250.0}, "idle_requests_per_s": {"max": 5.0}}
    notes = {
        "setup": f"simulator over HTTP on loopback, far end answers {SETUP_S + RING_S:.2f} s "
        "after the dial; poll_ms 1000, setup_poll_ms 200 (poll-only baseline: 1000)",
        "calls": N,
    }
    write_result("huawei_te", figures, targets, notes)


if __name__ == "__main__":
    asyncio.run(main())
