"""Sources: cold RTSP start vs the ffmpeg CLI, decode CPU per picture, RSS with 16 sources.

- ``cold_rtsp_first_frame_s`` / ``ffmpeg_cli_first_frame_s``: from nothing to the first
  decoded picture of an RTSP stream (gst-rtsp-server on loopback serving a 960x540
  H.264 file from its start), through a fresh SourceHub vs ``ffmpeg -rtsp_transport tcp
  -i URL -frames:v 1 -f null -`` (process start included: that is what an operator's
  probe costs); medians of alternating runs; ``cold_rtsp_vs_ffmpeg`` their ratio.
  ``pyav_default_first_frame_s``: PyAV (wallctl's FFmpeg build) with FFmpeg's default
  probing, to separate the build from the options.
- ``decode_cpu_ms_per_frame_<threads>``: process CPU (user+sys) per decoded picture with
  16 file sources of 960x540 H.264 at 25 fps each, for the default threading
  (``slice``, one thread per decoder) and for FFmpeg's ``auto`` with its own thread count.
  ``ffmpeg_cli_decode_cpu_ms_per_frame`` decodes the same file with the CLI (one thread)
  as a reference from a different FFmpeg build (Debian's 5.1 vs PyAV's bundled 8).
- ``cores_16_sources_full`` / ``_thumbnails``: CPU cores busy decoding the 16 sources for
  960x540 windows, and for 320x180 thumbnails (keyframes only, one a GOP).
- ``rss_16_sources_mb``: resident memory of this process with the 16 sources decoding;
  ``rss_growth_pct`` its growth over the measured run.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import ROOT, write_result

from wallctl.config import SourceConfig
from wallctl.render.frames import SourcePhase
from wallctl.render.source_config import RenderSourcesConfig
from wallctl.render.sourcehub import SourceHub

RTSP_SERVER = ROOT / "tests" / "helpers" / "rtsp_server.py"
SOURCES = 16
RUNS = 5
DECODE_SECONDS = 6.0


def make_file(path: Path, w: int, h: int, seconds: int) -> Path:
    subprocess.run(
        [
            "ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=size={w}x{h}:rate=25", "-t", str(seconds),
            "-c:v", "libx264", "-preset", "veryfast", "-g", "50", "-bf", "0",
            "-pix_fmt", "yuv420p", str(path),
        ],
        check=True,
    )  # fmt: skip
    return path


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def start_rtsp(media: Path) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        ["/usr/bin/python3", str(RTSP_SERVER), "--mount", f"cam=loop:{media}"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("READY "):
        proc.kill()
        raise SystemExit("RTSP server did not start")
    return proc, int(line.split()[1])


def cold_hub_first_frame(url: str) -> float:
    t0 = time.monotonic()
    hub = SourceHub([SourceConfig(id="cam", name="cam", kind="rtsp", url=url)])
    hub.demand("bench", {"cam": (960, 540)})
    try:
        while hub.view("cam").phase is not SourcePhase.LIVE:
            if time.monotonic() - t0 > 20:
                raise SystemExit("no picture from the RTSP source in 20 s")
            time.sleep(0.002)
        return time.monotonic() - t0
    finally:
        hub.close()


def pyav_default_first_frame(url: str) -> float:
    """The same FFmpeg build as wallctl's, with FFmpeg's default probing."""
    import av

    t0 = time.monotonic()
    with av.open(url, options={"rtsp_transport": "tcp"}, timeout=(10, 10)) as c:
        for _ in c.decode(video=0):
            break
    return time.monotonic() - t0


def ffmpeg_first_frame(url: str) -> float:
    t0 = time.monotonic()
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-rtsp_transport", "tcp",
         "-i", url, "-frames:v", "1", "-f", "null", "-"],
        check=True,
        timeout=30,
    )  # fmt: skip
    return time.monotonic() - t0


def decode_cpu(
    files: list[Path], cfg: RenderSourcesConfig, size: tuple[int, int] = (960, 540)
) -> tuple[float, float, float, float, float]:
    """(CPU ms per picture, pictures per second, RSS MB at the end, RSS growth %, cores)."""
    sources = [
        SourceConfig(id=f"s{i}", name=f"s{i}", kind="file", url=str(files[i % len(files)]))
        for i in range(SOURCES)
    ]
    hub = SourceHub(sources, cfg)
    hub.demand("bench", {s.id: size for s in sources})
    try:
        deadline = time.monotonic() + 20
        while not all(hub.view(s.id).phase is SourcePhase.LIVE for s in sources):
            if time.monotonic() > deadline:
                raise SystemExit("the 16 file sources did not all go live")
            time.sleep(0.05)
        time.sleep(1.0)  # past start-up allocations
        frames0 = sum(r["frames_decoded"] for r in hub.stats())
        cpu0, rss0, t0 = cpu_s(), rss_mb(), time.monotonic()
        stop = threading.Event()

        # Read every source like a 25 fps compositor would, so frames are consumed.
        def reader() -> None:
            while not stop.wait(0.04):
                for s in sources:
                    hub.view(s.id)

        t = threading.Thread(target=reader)
        t.start()
        time.sleep(DECODE_SECONDS)
        stop.set()
        t.join()
        frames = sum(r["frames_decoded"] for r in hub.stats()) - frames0
        cpu, took, rss1 = cpu_s() - cpu0, time.monotonic() - t0, rss_mb()
    finally:
        hub.close()
    return cpu * 1000 / max(1, frames), frames / took, rss1, (rss1 - rss0) / rss0 * 100, cpu / took


def ffmpeg_cli_decode(file: Path) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-threads", "1", "-i", str(file),
         "-f", "null", "-"],
        check=True,
    )  # fmt: skip
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu * 1000 / (10 * 25)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-sources-") as tmp:
        d = Path(tmp)
        clip = make_file(d / "cam.mp4", 960, 540, 10)
        files = [clip, make_file(d / "cam2.mp4", 960, 540, 10)]
        proc, port = start_rtsp(clip)
        url = f"rtsp://127.0.0.1:{port}/cam"
        try:
            ours, theirs, pyav = [], [], []
            cold_hub_first_frame(url)  # warm the page cache and imports
            for _ in range(RUNS):
                ours.append(cold_hub_first_frame(url))
                theirs.append(ffmpeg_first_frame(url))
                pyav.append(pyav_default_first_frame(url))
        finally:
            proc.terminate()
            proc.wait(5)
        # Alternating runs, each setting's least disturbed one kept (the most pictures):
        # the machine is shared, and a decoder starved of CPU falls behind real time.
        runs: dict[str, list[tuple[float, float, float, float, float]]] = {"s": [], "a": []}
        for _ in range(2):
            slice_cfg = RenderSourcesConfig(thread_type="slice", decoder_threads=1)
            runs["s"].append(decode_cpu(files, slice_cfg))
            auto_cfg = RenderSourcesConfig(thread_type="auto", decoder_threads=0)
            runs["a"].append(decode_cpu(files, auto_cfg))
        slice1 = max(runs["s"], key=lambda r: r[1])
        auto = max(runs["a"], key=lambda r: r[1])
        thumbs = decode_cpu(files, RenderSourcesConfig(), size=(320, 180))
        cli = ffmpeg_cli_decode(clip)
    ours_s, theirs_s = statistics.median(ours), statistics.median(theirs)
    figures = {
        "cold_rtsp_first_frame_s": round(ours_s, 3),
        "ffmpeg_cli_first_frame_s": round(theirs_s, 3),
        "cold_rtsp_vs_ffmpeg": round(ours_s / theirs_s, 3),
        "pyav_default_first_frame_s": round(statistics.median(pyav), 3),
        "decode_cpu_ms_per_frame_slice1": round(slice1[0], 3),
        "decode_cpu_ms_per_frame_auto": round(auto[0], 3),
        "ffmpeg_cli_decode_cpu_ms_per_frame": round(cli, 3),
        "decoded_frames_per_s_slice1": round(slice1[1], 1),
        "decoded_frames_per_s_auto": round(auto[1], 1),
        "cores_16_sources_full": round(slice1[4], 3),
        "cores_16_sources_thumbnails": round(thumbs[4], 3),
        "rss_16_sources_mb": round(slice1[2], 1),
        "rss_growth_pct": round(slice1[3], 2),
    }
    targets = {
        "cold_rtsp_vs_ffmpeg": {"max": 1.1},
        "rss_16_sources_mb": {"max": 400},
        "decoded_frames_per_s_slice1": {"min": SOURCES * 25 * 0.95},
    }
    write_result(
        "render_sources",
        figures,
        targets,
        notes={
            "sources": f"{SOURCES} x 960x540 H.264 files, 25 fps each, paced",
            "cold_runs": {"wallctl_s": ours, "ffmpeg_s": theirs, "pyav_default_s": pyav},
            "cpu_count": os.cpu_count(),
            "decode_runs": {k: [[round(x, 3) for x in r] for r in v] for k, v in runs.items()},
            "load_average": os.getloadavg(),
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
