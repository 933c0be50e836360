"""`wallctl cameras info` and `wallctl simulate onvif` as an installer runs them."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from camrig import CAM_PW

from drivers.onvif.simulator import FakeCamera

ROOT = Path(__file__).resolve().parents[2]


async def wallctl(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "wallctl", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
    )


async def test_info_prints_device_profiles_ptz_and_presets(tmp_path: Path) -> None:
    cam = await FakeCamera(password=CAM_PW).start()
    cam.profiles[0].stream_uri = f"rtsp://admin:{CAM_PW}@127.0.0.1:554/main"
    try:
        pw = tmp_path / "cam.pw"
        pw.write_text(CAM_PW + "\n")
        r = await wallctl(
            "cameras",
            "info",
            f"127.0.0.1:{cam.port}",
            "--user",
            "admin",
            "--password-file",
            str(pw),
        )
        assert r.returncode == 0, r.stderr
        assert r.stdout.splitlines()[0] == "Wallctl FakeCam PTZ  firmware 1.0.0  serial FC-0001"
        assert "1920x1080 H264   rtsp://127.0.0.1:554/main" in r.stdout  # credentials removed
        assert "PTZ: yes" in r.stdout and "1        Gate" in r.stdout
        assert CAM_PW not in r.stdout + r.stderr
        r = await wallctl(
            "cameras",
            "info",
            f"127.0.0.1:{cam.port}",
            "--user",
            "admin",
            "--json",
            env={"WALLCTL_CAMERA_PASSWORD": CAM_PW},
        )
        data = json.loads(r.stdout)
        assert data["presets"] == [{"token": "1", "name": "Gate"}]
        assert data["profiles"][1] == {
            "token": "sub",
            "name": "subStream",
            "width": 640,
            "height": 360,
            "codec": "H264",
            "uri": "rtsp://127.0.0.1:554/stream",
        }
        # Wrong password: a plain reason, exit 1, and no password echoed.
        r = await wallctl(
            "cameras",
            "info",
            f"127.0.0.1:{cam.port}",
            "--user",
            "admin",
            env={"WALLCTL_CAMERA_PASSWORD": "guess"},
        )
        assert r.returncode == 1 and "wrong user name or password" in r.stderr
        assert "guess" not in r.stderr
    finally:
        await cam.stop()


async def test_info_failures_say_why() -> None:
    env = {"WALLCTL_CAMERA_PASSWORD": "x"}
    r = await wallctl("cameras", "info", "127.0.0.1:1", "--user", "admin", env=env)
    assert r.returncode == 1 and "127.0.0.1:1: unreachable" in r.stderr
    # Something that answers HTTP but is not an ONVIF device: the daemon's own listener.
    from aiohttp import web

    app = web.Application()
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        r = await wallctl("cameras", "info", f"127.0.0.1:{port}", "--user", "admin", env=env)
        assert r.returncode == 1 and "not an ONVIF device" in r.stderr, r.stderr
    finally:
        await runner.cleanup()
    for bad in ("host:99999", "a b", "[::1"):
        r = await wallctl("cameras", "info", bad, "--user", "admin", env=env)
        assert r.returncode == 2 and "is not HOST[:PORT]" in r.stderr
    # No password anywhere and no terminal to ask on: a plain refusal, not a hang.
    clean = {k: v for k, v in os.environ.items() if k != "WALLCTL_CAMERA_PASSWORD"}
    r = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "wallctl", "cameras", "info", "127.0.0.1", "--user", "admin"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=clean,
        stdin=subprocess.DEVNULL,
    )
    assert r.returncode == 2 and "no password" in r.stderr


async def test_simulate_onvif_runs_standalone() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "wallctl",
        "simulate",
        "onvif",
        "--listen",
        "127.0.0.1:0",
        "--password",
        CAM_PW,
        "--no-ptz",
        "--rtsp",
        "rtsp://10.0.0.9/live",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().strip()
        host, _, port = line.rpartition(":")
        assert host == "127.0.0.1" and int(port) > 0
        r = await wallctl(
            "cameras",
            "info",
            line,
            "--user",
            "admin",
            "--json",
            env={"WALLCTL_CAMERA_PASSWORD": CAM_PW},
        )
        data = json.loads(r.stdout)
        assert data["ptz"] is False and data["presets"] is None
        assert {p["uri"] for p in data["profiles"]} == {"rtsp://10.0.0.9/live"}
    finally:
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    # Other protocols still reach the framework's simulate command.
    r = await wallctl("simulate", "no-such-protocol", "--listen", "127.0.0.1:0")
    assert r.returncode == 2 and "unknown protocol" in r.stderr


async def test_check_catches_bad_camera_config(tmp_path: Path) -> None:
    cfg = tmp_path / "wallctl.toml"
    cfg.write_text(
        """
[wall]
id = "main"
[wall.tiles]
rows = 2
cols = 2
width_mm = 1209.6
height_mm = 680.4
width_px = 1920
height_px = 1080

[[devices]]
id = "cam1"
name = "Cam"
protocol = "onvif"
host = "10.0.0.5"
deadman_ms = 5

[[devices]]
id = "mx"
name = "Matrix"
protocol = "extron-sis"
host = "10.0.0.6"

[[sources]]
id = "a"
name = "A"
kind = "onvif"
url = "rtsp://x/y"

[[sources]]
id = "b"
name = "B"
kind = "onvif"
url = "onvif://nope"

[[sources]]
id = "c"
name = "C"
kind = "onvif"
url = "onvif://mx"
""",
        encoding="utf-8",
    )
    r = await wallctl("check", str(cfg))
    assert r.returncode == 2
    assert r.stderr.splitlines() == [
        "devices[0].deadman_ms: must be >= 100",
        'sources[0].url: an onvif source needs url = "onvif://<device id>[/<profile>]"',
        "sources[1].url: no device 'nope' in [[devices]]",
        "sources[2].url: device 'mx' is extron-sis, not onvif",
    ]
