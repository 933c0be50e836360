"""Shared fixtures: an H.264 clip made by ffmpeg, and the netns runner."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
NETNS_ENV = "WALLCTL_TEST_NETNS"


def make_clip(path: Path, seconds: float = 6.0, size: str = "640x360", gop: int = 25) -> Path:
    """A 25 fps H.264 test clip in MPEG-TS (Annex-B, with timestamps)."""
    if not path.exists():
        subprocess.run(
            [
                "ffmpeg",
                "-loglevel",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                f"testsrc2=size={size}:rate=25",
                "-t",
                str(seconds),
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-tune",
                "zerolatency",
                "-profile:v",
                "baseline",
                "-g",
                str(gop),
                "-pix_fmt",
                "yuv420p",
                "-f",
                "mpegts",
                str(path),
            ],
            check=True,
        )
    return path


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed")
    return make_clip(tmp_path_factory.mktemp("clips") / "clip.ts")


def run_in_netns(
    module: str, *pytest_args: str, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    """Run ``module``'s tests in a new network namespace that has only loopback.

    aioice skips 127.0.0.1, so lo gets a second address (127.0.0.2) for the peers'
    host candidates (FIELD-NOTES). No packet can leave the machine from in there.
    """
    script = (
        "ip link set lo up && ip addr add 127.0.0.2/8 dev lo && "
        f'exec "{sys.executable}" -m pytest -q -p no:cacheprovider "$0" "$@"'
    )
    env = {**os.environ, NETNS_ENV: "1"}
    return subprocess.run(
        ["unshare", "-n", "sh", "-c", script, str(HERE / module), *pytest_args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=HERE.parent.parent,
    )
