"""Benchmark: from ``conference.call`` to the far-end window on the wall.

    .venv/bin/python bench/conference.py

A daemon (in this process, durability "normal", no rendering) with a Cisco codec
simulator over the xAPI WebSocket and a simulated Extron matrix, the simulated network's
call-setup and ringing delays set to zero. Per call, N times:

1. baseline: the codec driver alone -- ``dial`` until the driver reports the call
   connected (what any controller needs at least: the codec's own round trips);
2. conference: ``ConferenceService.call(wait=True)`` -- choose the codec, dial, wait for
   connected, route the matrix, open the window -- until the result says it is on the
   wall; the same through the control API (``conference.call`` with ``wait``).

Orchestration overhead = conference - baseline (medians, and p95). Target: <= 50 ms.
Writes bench/results/conference.json and prints a table.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# Before bench/ (the script's folder), whose drivers.py would shadow the drivers package.
sys.path.insert(0, str(ROOT))

from _common import write_result  # noqa: E402

from drivers.cisco_xapi.farend import FarEnd  # noqa: E402
from drivers.cisco_xapi.simulator import CiscoModel, CiscoSimulator  # noqa: E402
from wallctl.api.server import ApiServer  # noqa: E402
from wallctl.client import open_client  # noqa: E402
from wallctl.conference.service import ConferenceService  # noqa: E402
from wallctl.config import parse_config  # noqa: E402
from wallctl.daemon import Daemon  # noqa: E402
from wallctl.devices.service import DeviceService  # noqa: E402
from wallctl.logs import setup_logging  # noqa: E402

N = 40
PASSWORD = "bench pw"


def pct(values: list[float], p: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, round(p / 100 * (len(v) - 1)))]


def config(state: Path, port: int) -> dict[str, Any]:
    return {
        "daemon": {"state_dir": str(state), "durability": "normal"},
        "log": {"level": "warning"},
        "http": {"port": 0},
        "api": {"port": 0},
        "render": {"enabled": False},
        "wall": {
            "tiles": {
                "rows": 2,
                "cols": 2,
                "width_mm": 1209.6,
                "height_mm": 680.4,
                "width_px": 1920,
                "height_px": 1080,
            }
        },
        "sources": [{"id": "conf-upper", "name": "市级会议", "kind": "matrix"}],
        "devices": [
            {
                "id": "codec-a",
                "name": "市级会议终端",
                "protocol": "cisco-xapi",
                "host": "127.0.0.1",
                "port": port,
                "password": PASSWORD,
            },
            {
                "id": "matrix",
                "name": "主矩阵",
                "protocol": "extron-sis",
                "simulate": True,
                "size": "16x16",
            },
        ],
        "conference": {
            "codecs": [
                {
                    "id": "upper",
                    "name": "上级会议",
                    "device": "codec-a",
                    "matrix": "matrix",
                    "matrix_input": 3,
                    "wall_output": 5,
                    "source": "conf-upper",
                }
            ],
            "centres": [
                {"id": "huzhou", "name": "湖州市指挥中心", "level": "city", "sip": "sip:huzhou@x"}
            ],
        },
    }


class Changes:
    """Wakes whoever waits on a condition whenever a device's state changes."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    def __call__(self, event: Any) -> None:
        if event.category == "device":
            self.event.set()

    async def until(self, check: Any) -> None:
        while not check():
            self.event.clear()
            await self.event.wait()


async def main() -> None:
    setup_logging("warning", "kv")
    sim = CiscoSimulator(CiscoModel(password=PASSWORD, farend=FarEnd(setup_s=0, ring_s=0)))
    await sim.start()
    with tempfile.TemporaryDirectory() as tmp:
        daemon = Daemon(parse_config(config(Path(tmp), sim.port or 0)))
        run = asyncio.create_task(daemon.run())
        for _ in range(2000):
            # The HTTP listener starts last: every component is up then.
            if daemon.runtime is not None and daemon.runtime.http.port:
                break
            await asyncio.sleep(0.01)
        rt = daemon.runtime
        assert rt is not None
        changes = Changes()
        rt.bus.subscribe(changes)
        devices = rt.services["devices"]
        conf = rt.services["conference"]
        assert isinstance(devices, DeviceService) and isinstance(conf, ConferenceService)
        assert await devices.wait_ready(20)
        codec = devices.devices["codec-a"].driver

        baseline: list[float] = []
        service: list[float] = []
        api: list[float] = []
        steps: dict[str, list[float]] = {"connected": [], "routed": [], "window_opened": []}
        marks: dict[str, float] = {}

        def on_event(event: Any) -> None:
            if event.type == "conference.progress" and event.data["step"] in steps:
                marks[event.data["step"]] = time.perf_counter()

        rt.bus.subscribe(on_event)
        api_url = next(c for c in rt.components if isinstance(c, ApiServer)).url
        password = (Path(tmp) / "admin-password").read_text().strip()

        async def settle() -> None:
            # The codec idle again and the hang-up's own work (closing the window) done,
            # so no measurement pays for the one before it.
            await changes.until(lambda: not codec.state.get("calls"))
            await asyncio.sleep(0.05)

        async with open_client(api_url, account="admin", password=password) as client:
            # Interleaved, so drift of a shared machine hits all three alike.
            for _ in range(N):
                t0 = time.perf_counter()
                cid = (await codec.call("dial", {"number": "sip:huzhou@x"}))["call_id"]
                await changes.until(
                    lambda cid=cid: any(
                        c["id"] == cid and c["status"] == "connected" for c in codec.state["calls"]
                    )
                )
                baseline.append((time.perf_counter() - t0) * 1000)
                await codec.call("disconnect", {"call_id": cid})
                await settle()

                marks.clear()
                t0 = time.perf_counter()
                result = await conf.call(centre_id="huzhou", wait=True)
                service.append((time.perf_counter() - t0) * 1000)
                assert result["ok"], result
                for k in steps:
                    steps[k].append((marks[k] - t0) * 1000)
                await conf.hangup(link_id="upper")
                await settle()

                t0 = time.perf_counter()
                result = await client.call("conference.call", {"centre": "huzhou", "wait": True})
                api.append((time.perf_counter() - t0) * 1000)
                assert result["ok"], result
                await client.call("conference.hangup", {"link": "upper"})
                await settle()
        daemon.request_stop()
        await run
    await sim.stop()

    med = statistics.median
    figures = {
        "baseline_dial_to_connected_ms": round(med(baseline), 2),
        "call_to_window_ms": round(med(service), 2),
        "call_to_window_p95_ms": round(pct(service, 95), 2),
        "api_call_to_window_ms": round(med(api), 2),
        "overhead_ms": round(med(service) - med(baseline), 2),
        "overhead_p95_ms": round(pct(service, 95) - pct(baseline, 95), 2),
        "api_overhead_ms": round(med(api) - med(baseline), 2),
        "connected_to_routed_ms": round(med(steps["routed"]) - med(steps["connected"]), 2),
        "routed_to_window_ms": round(med(steps["window_opened"]) - med(steps["routed"]), 2),
    }
    targets = {"overhead_ms": {"max": 50.0}, "api_overhead_ms": {"max": 50.0}}
    write_result(
        "conference",
        figures,
        targets,
        {
            "calls": N,
            "codec": "cisco-xapi simulator over the WebSocket, setup and ring delays 0",
            "matrix": "extron-sis simulator over TCP, reply delay 0",
            "baseline": "the codec driver alone: dial until the driver reports connected",
        },
    )


if __name__ == "__main__":
    asyncio.run(main())
