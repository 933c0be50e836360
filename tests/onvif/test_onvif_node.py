"""Cross-check the fake camera with an independent client: npm's `onvif` run by Node.

So the fake is not only as right as our own client: a second implementation (its own SOAP
envelopes, WS-Security digest and parser) must connect, read profiles and stream URIs,
move, stop, set and go to presets, subscribe, and be refused with the wrong password.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from camrig import CAM_PW

from drivers.onvif.simulator import FakeCamera

NODE_DIR = Path(__file__).resolve().parent / "node"


@pytest.fixture(scope="module")
def node_client() -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node/npm missing: `make deb-test-deps` installs nodejs and npm")
    if not (NODE_DIR / "node_modules" / "onvif").is_dir():
        # Reproducible: exactly the versions in package-lock.json.
        r = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"],
            cwd=NODE_DIR,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert r.returncode == 0, r.stderr[-2000:]
    return NODE_DIR / "crosscheck.js"


async def run_node(script: Path, port: int, password: str) -> dict[str, Any]:
    r = await asyncio.to_thread(
        subprocess.run,
        ["node", str(script), "127.0.0.1", str(port), "admin", password],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    result: dict[str, Any] = json.loads(r.stdout.strip().splitlines()[-1])
    return result


async def test_node_onvif_client_drives_the_fake_camera(node_client: Path) -> None:
    cam = await FakeCamera(password=CAM_PW).start()
    cam.profiles[1].stream_uri = "rtsp://127.0.0.1:8554/sub"
    try:
        out = await run_node(node_client, cam.port, CAM_PW)
        assert out["ok"] is True, out
        assert out["info"]["manufacturer"] == "Wallctl" and out["info"]["model"] == "FakeCam PTZ"
        assert [(p["token"], p["encoding"], p["width"], p["height"]) for p in out["profiles"]] == [
            ("main", "H264", 1920, 1080),
            ("sub", "H264", 640, 360),
        ]
        assert out["stream_uri"] == "rtsp://127.0.0.1:8554/sub"
        assert out["snapshot_uri"] == f"{cam.base}/snapshot/main.jpg"
        assert set(out["presets"]) == {"Gate", "Node"} and out["subscription"] is True
        moves = [c for c in cam.calls if c.operation == "ContinuousMove"]
        assert moves[0].args["velocity"] == (0.25, -0.5, 0.0)
        assert cam.velocity == (0.0, 0.0, 0.0)  # its Stop was understood
        assert cam.position == (0.1, 0.0, 0.0)  # GotoPreset 1
        assert "CreatePullPointSubscription" in cam.requests

        refused = await run_node(node_client, cam.port, "not-the-password")
        assert refused["ok"] is False and "Sender not Authorized" in refused["error"]
    finally:
        await cam.stop()
