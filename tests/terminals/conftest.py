"""Shared fixtures: an H.264 clip made by ffmpeg, and the netns runner."""

from __future__ import annotations

import asyncio
import fractions
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import av
import pytest
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

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
        f'exec "{sys.executable}" -m pytest -q -p no:cacheprovider '
        # A recorder or relay thread that dies is a failure, not a warning.
        '-W error::pytest.PytestUnhandledThreadExceptionWarning "$0" "$@"'
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


class ClipTrack(MediaStreamTrack):
    """A publisher's camera: the clip's H.264 packets, looped, paced at their own rate.

    (aiortc's MediaPlayer with ``loop=True`` stops pacing after the first loop, because
    its timestamps start again at 0, and then sends as fast as it can.)
    """

    kind = "video"

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.packets: list[tuple[bytes, int]] = []
        with av.open(str(path)) as c:
            first = None
            for p in c.demux(c.streams.video[0]):
                if p.size and p.pts is not None:
                    first = p.pts if first is None else first
                    self.packets.append((bytes(p), int(p.pts - first)))
        self.period = self.packets[-1][1] + 3600  # 25 fps
        self.i = 0
        self.start: float | None = None

    async def recv(self) -> av.Packet[Any]:
        if self.readyState != "live":
            raise MediaStreamError
        data, pts = self.packets[self.i % len(self.packets)]
        pts += (self.i // len(self.packets)) * self.period
        self.i += 1
        now = time.monotonic()
        if self.start is None:
            self.start = now
        wait = self.start + pts / 90000 - now
        if wait > 0:
            await asyncio.sleep(wait)
        packet: av.Packet[Any] = av.Packet(data)
        packet.pts = pts
        packet.time_base = fractions.Fraction(1, 90000)
        return packet
