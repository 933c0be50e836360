"""Real media peers for the render tests: H.264 files made by ffmpeg and an RTSP server.

Fixtures (usable by every test under tests/render/):

- ``media`` (session): a ``Media`` with paths of small files ffmpeg makes once per
  session in a temp dir: ``h264_320`` (320x180, 25 fps, 4 s, a keyframe every second,
  MP4), ``h264_640`` (640x360, same), ``res_change`` (MPEG-TS: 2 s at 320x180 then 2 s
  at 640x360), ``ts_640`` (640x360 MPEG-TS), ``corrupt`` (``ts_640`` with its video
  packets damaged by ffmpeg's noise bitstream filter), ``audio_only`` (AAC in MP4, no
  video track). ``media.make(name, *ffmpeg_args)`` makes more (cached per name);
  ``media.h264(name, w, h, seconds, extra_args)`` makes an H.264 clip.
- ``rtsp_server``: a factory ``rtsp_server(mounts={"cam": "loop:/path.mp4"}, user=,
  password=, auth="basic"|"digest", port=0) -> RtspServer`` starting
  tests/helpers/rtsp_server.py under the system python (mount specs are documented
  there). ``srv.url("cam")`` is ``rtsp://127.0.0.1:PORT/cam``; ``srv.stop()`` kills it and
  ``srv.start()`` brings it back on the same port (a camera that goes and returns).
  Every server is stopped at teardown.
- ``hub_factory``: ``hub_factory(sources, **RenderSourcesConfig fields) -> SourceHub`` with
  test-friendly timeouts (short warm, quick backoff); closed at teardown.
- ``wait_for(predicate, timeout=...)``: poll a condition from a test (plain function).

Timing in tests uses generous margins: the machine is shared by several engineers.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from wallctl.config import SourceConfig
from wallctl.render.source_config import RenderSourcesConfig
from wallctl.render.sourcehub import SourceHub

HELPERS = Path(__file__).resolve().parent.parent / "helpers"
RTSP_SERVER = HELPERS / "rtsp_server.py"
SYSTEM_PYTHON = "/usr/bin/python3"


def have_ffmpeg() -> bool:
    return shutil.which("ffmpeg") is not None


def have_gst_rtsp() -> bool:
    probe = (
        "import gi; gi.require_version('GstRtspServer', '1.0'); "
        "from gi.repository import GstRtspServer"
    )
    try:
        return subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True).returncode == 0
    except OSError:
        return False


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail the test on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


@dataclass
class Media:
    dir: Path
    made: dict[str, Path] = field(default_factory=dict)

    def make(self, name: str, *args: str) -> Path:
        """``ffmpeg -y <args> <dir/name>`` once per session; returns the path."""
        if name in self.made:
            return self.made[name]
        out = self.dir / name
        cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args, str(out)]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)
        self.made[name] = out
        return out

    def h264(
        self, name: str, w: int, h: int, seconds: float = 4, extra: tuple[str, ...] = ()
    ) -> Path:
        return self.make(
            name,
            "-f", "lavfi", "-i", f"testsrc2=size={w}x{h}:rate=25",
            "-t", str(seconds),
            "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
            "-g", "25", "-pix_fmt", "yuv420p",
            *extra,
        )  # fmt: skip

    @property
    def h264_320(self) -> Path:
        return self.h264("h264_320.mp4", 320, 180)

    @property
    def h264_640(self) -> Path:
        return self.h264("h264_640.mp4", 640, 360)

    @property
    def res_change(self) -> Path:
        a = self.h264("rc_a.ts", 320, 180, 2, ("-bsf:v", "h264_mp4toannexb"))
        b = self.h264("rc_b.ts", 640, 360, 2, ("-bsf:v", "h264_mp4toannexb"))
        # Byte-concatenated transport streams: one stream whose SPS changes mid-way.
        out = self.dir / "res_change.ts"
        if "res_change.ts" not in self.made:
            out.write_bytes(a.read_bytes() + b.read_bytes())
            self.made["res_change.ts"] = out
        return out

    @property
    def ts_640(self) -> Path:
        return self.h264("clean_640.ts", 640, 360, 4)

    @property
    def corrupt(self) -> Path:
        src = self.ts_640
        return self.make("corrupt.ts", "-i", str(src), "-c", "copy", "-bsf:v", "noise=amount=2000")

    @property
    def audio_only(self) -> Path:
        return self.make(
            "audio_only.m4a",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
            "-t", "4", "-c:a", "aac", "-b:a", "64k",
        )  # fmt: skip


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> Media:
    if not have_ffmpeg():
        pytest.fail("ffmpeg is missing: `make deb-test-deps` installs it (Debian ffmpeg)")
    return Media(tmp_path_factory.mktemp("media"))


class RtspServer:
    """tests/helpers/rtsp_server.py in a subprocess; restartable on the same port."""

    def __init__(
        self,
        mounts: dict[str, str],
        user: str | None = None,
        password: str | None = None,
        auth: str = "basic",
        port: int = 0,
    ) -> None:
        self.mounts, self.user, self.password, self.auth = mounts, user, password, auth
        self.port = port
        self.proc: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 15.0) -> RtspServer:
        cmd = [SYSTEM_PYTHON, str(RTSP_SERVER), "--port", str(self.port), "--auth", self.auth]
        for name, spec in self.mounts.items():
            cmd += ["--mount", f"{name}={spec}"]
        if self.user:
            cmd += ["--user", self.user, "--password", self.password or ""]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line.startswith("READY "):
                self.port = int(line.split()[1])
                return self
            if not line and self.proc.poll() is not None:
                break
        err = self.proc.stderr.read() if self.proc.stderr else ""
        self.stop()
        raise RuntimeError(f"RTSP server did not start: {err.strip()[-500:]}")

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        self.proc = None

    def url(self, mount: str, user: str | None = None, password: str | None = None) -> str:
        auth = f"{user}:{password}@" if user else ""
        return f"rtsp://{auth}127.0.0.1:{self.port}/{mount}"


@pytest.fixture
def rtsp_server() -> Iterator[Callable[..., RtspServer]]:
    if not have_gst_rtsp():
        pytest.fail(
            "gst-rtsp-server for /usr/bin/python3 is missing: `make deb-test-deps` installs "
            "python3-gst-1.0 gir1.2-gst-rtsp-server-1.0 and the GStreamer plugins"
        )
    servers: list[RtspServer] = []

    def start(mounts: dict[str, str], **kw: Any) -> RtspServer:
        srv = RtspServer(mounts, **kw).start()
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        srv.stop()


# Quick enough for tests, loose enough for a loaded 2-core machine.
TEST_SOURCES_CONFIG: dict[str, Any] = {
    "warm_s": 0.5,
    "open_timeout_s": 4.0,
    "read_timeout_s": 2.0,
    "backoff_initial_s": 0.2,
    "backoff_max_s": 1.0,
}


@pytest.fixture
def hub_factory() -> Iterator[Callable[..., SourceHub]]:
    hubs: list[SourceHub] = []

    def make(sources: list[SourceConfig], bus: Any = None, **overrides: Any) -> SourceHub:
        cfg = RenderSourcesConfig(**{**TEST_SOURCES_CONFIG, **overrides})
        hub = SourceHub(sources, cfg, bus=bus)
        hubs.append(hub)
        return hub

    yield make
    for hub in hubs:
        hub.close()
