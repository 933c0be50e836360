"""ONVIF cameras: cold start of a camera source vs the ffmpeg CLI, and PTZ send latency.

- ``camera_first_frame_s``: from nothing to the first decoded picture of a camera source,
  ONVIF look-ups included: a fresh client runs the start-up sequence against the fake
  camera (clock, services, device information, profiles, stream URIs), its profiles
  become the renditions of an ``onvif://`` source in a fresh SourceHub, a 1280x720 window
  demands it, and the clock stops at the first picture (phase live). The RTSP server is
  gst-rtsp-server (tests/helpers/rtsp_server.py, live x264, digest auth).
- ``ffmpeg_cli_first_frame_s``: ``ffmpeg -rtsp_transport tcp -i URI -frames:v 1 -f null -``
  on the same stream URI (with the same credentials), process start included.
  Medians of alternating runs; ``camera_vs_ffmpeg`` is their ratio (target <= 1.2).
  ``camera_first_frame_first_run_s`` is the very first run (WSDL parsing included).
- ``ptz_send_p50_ms`` / ``ptz_send_p99_ms``: from a ``ptz_move`` action call on the driver
  (validation, joystick, zeep building the SOAP request) to the fake camera parsing that
  request (same process, same clock), 300 moves; target p99 <= 10 ms.
"""

from __future__ import annotations

import asyncio
import importlib.util
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# This script's own folder comes first on sys.path, where its name would shadow the
# onvif-zeep-async package `onvif`: drop it, and load bench/_common.py by path instead.
_BENCH = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _BENCH]
sys.path.insert(0, str(_BENCH.parent))
_spec = importlib.util.spec_from_file_location("_common", _BENCH / "_common.py")
assert _spec is not None and _spec.loader is not None
_common = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_common)
ROOT, median, write_result = _common.ROOT, _common.median, _common.write_result

from drivers.contract import DriverSetup  # noqa: E402
from drivers.onvif.client import CameraClient  # noqa: E402
from drivers.onvif.driver import OnvifConfig, OnvifDriver  # noqa: E402
from drivers.onvif.simulator import FakeCamera, FakeProfile  # noqa: E402
from drivers.transport import TcpEndpoint  # noqa: E402
from wallctl.config import SourceConfig  # noqa: E402
from wallctl.render.frames import SourcePhase  # noqa: E402
from wallctl.render.renditions import RESOLVERS, Rendition  # noqa: E402
from wallctl.render.source_config import RenderSourcesConfig  # noqa: E402
from wallctl.render.sourcehub import SourceHub  # noqa: E402

PW = "bench-pw"
RUNS = 5


def start_rtsp() -> tuple[subprocess.Popen[str], int]:
    cmd = [
        "/usr/bin/python3",
        str(ROOT / "tests" / "helpers" / "rtsp_server.py"),
        "--port",
        "0",
        "--mount",
        "main=test:1280x720@25",
        "--mount",
        "sub=test:640x360@25",
        "--user",
        "admin",
        "--password",
        PW,
        "--auth",
        "digest",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("READY "):
        raise SystemExit(f"RTSP server did not start: {proc.stderr.read() if proc.stderr else ''}")
    return proc, int(line.split()[1])


async def camera_first_frame(cam: FakeCamera) -> float:
    t0 = time.perf_counter()
    client = CameraClient("127.0.0.1", cam.port, "admin", PW)
    await client.connect()

    def resolve(source: SourceConfig) -> list[Rendition]:
        return [
            Rendition(p.token, client.stream_uri(p.token), p.width, p.height)
            for p in client.profiles
        ]

    RESOLVERS["onvif"] = resolve
    src = SourceConfig(id="cam", name="cam", kind="onvif", url="onvif://cam")
    hub = SourceHub([src], RenderSourcesConfig(warm_s=0))
    try:
        await hub.start()
        hub.demand("window", {"cam": (1280, 720)})
        while hub.view("cam").phase is not SourcePhase.LIVE:
            if time.perf_counter() - t0 > 20:
                raise SystemExit(f"no picture: {hub.view('cam').error}")
            await asyncio.sleep(0.002)
        took = time.perf_counter() - t0
    finally:
        hub.demand("window", {})
        await asyncio.to_thread(hub.close)
        RESOLVERS.pop("onvif", None)
        await client.close()
    return took


def ffmpeg_first_frame(url: str) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        [
            "ffmpeg",
            "-hide_banner",
            "-loglevel",
            "error",
            "-rtsp_transport",
            "tcp",
            "-i",
            url,
            "-frames:v",
            "1",
            "-f",
            "null",
            "-",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return time.perf_counter() - t0


async def ptz_latency(cam: FakeCamera) -> list[float]:
    setup = DriverSetup(
        "bench",
        OnvifConfig(coalesce_ms=0, deadman_ms=60000, events=False),
        TcpEndpoint("127.0.0.1", cam.port),
        PW,
    )
    drv = OnvifDriver(setup)
    await drv.start()
    for _ in range(2000):  # connected within 20 s
        if drv.client is not None:
            break
        await asyncio.sleep(0.01)
    out: list[float] = []
    try:
        for i in range(320):
            n = len(cam.calls)
            t0 = time.perf_counter()
            await drv.call("ptz_move", {"pan": 0.5 if i % 2 else -0.5})
            call = cam.calls[n]
            if i >= 20:  # warm-up: the PTZ service binding is built on first use
                out.append((call.at - t0) * 1000)
        await drv.call("ptz_stop", {})
    finally:
        await drv.stop()
    return out


async def main() -> None:
    rtsp, port = start_rtsp()
    main_uri = f"rtsp://127.0.0.1:{port}/main"
    cam = await FakeCamera(
        password=PW,
        profiles=[
            FakeProfile("main", "mainStream", 1280, 720, stream_uri=main_uri),
            FakeProfile("sub", "subStream", 640, 360, stream_uri=f"rtsp://127.0.0.1:{port}/sub"),
        ],
    ).start()
    try:
        ours: list[float] = []
        theirs: list[float] = []
        authed = f"rtsp://admin:{PW}@127.0.0.1:{port}/main"
        for _ in range(RUNS):
            ours.append(await camera_first_frame(cam))
            theirs.append(await asyncio.to_thread(ffmpeg_first_frame, authed))
        lat = sorted(await ptz_latency(cam))
    finally:
        await cam.stop()
        rtsp.terminate()
        rtsp.wait(5)

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, round(p / 100 * (len(lat) - 1)))]

    figures = {
        "camera_first_frame_s": round(median(ours), 3),
        "ffmpeg_cli_first_frame_s": round(median(theirs), 3),
        "camera_vs_ffmpeg": round(median(ours) / median(theirs), 3),
        "camera_first_frame_first_run_s": round(ours[0], 3),
        "ptz_send_p50_ms": round(pct(50), 3),
        "ptz_send_p99_ms": round(pct(99), 3),
    }
    targets: dict[str, dict[str, float]] = {
        "camera_vs_ffmpeg": {"max": 1.2},
        "ptz_send_p99_ms": {"max": 10.0},
    }
    notes: dict[str, Any] = {
        "runs": RUNS,
        "camera_runs_s": [round(x, 3) for x in ours],
        "ffmpeg_runs_s": [round(x, 3) for x in theirs],
        "ptz_samples": len(lat),
        "stream": "gst-rtsp-server test:1280x720@25 x264 zerolatency, GOP 25, digest auth",
    }
    write_result("onvif", figures, targets, notes)


if __name__ == "__main__":
    asyncio.run(main())
