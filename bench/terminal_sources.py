"""Mobile terminals as wall sources: how soon a publish shows on the wall, and what the
centre's loudspeaker costs.

One daemon with its compositor (a 2-tile wall) and ``[terminals.audio]`` on ALSA's
``file`` plugin over ``null`` (no sound card needed). Two windows show the same terminal:

- ``mobile/p1``, the automatic source: its stream is resolved per publication and the
  first frame of a publication restarts the wall's decoder at once;
- ``old-p1``, the baseline in the same run: the way a terminal reached the wall before, a
  ``[[sources]]`` entry with the feed URL, whose decoder retries the offline terminal's
  feed (404) with its backoff.

Each round the terminal stays offline for BENCH_OFFLINE_S (20 s), then an aiortc
publisher sends H.264 (ffmpeg's clip, as encoded packets) and an Opus tone; the figures
are the median times from the WHIP answer to each window's source being live. Then the
publisher vanishes without DELETE: time until the automatic window's source is no longer
live. Last, BENCH_HEARD (4) terminals publish and are heard (terminal.listen): the audio
thread's CPU (from /proc, % of one core) per heard terminal while it decodes, mixes and
plays.

Everything runs in a loopback-only network namespace (root: the script re-executes
itself under ``unshare -n``). Environment: BENCH_ROUNDS (3), BENCH_OFFLINE_S (20),
BENCH_HEARD (4), BENCH_AUDIO_S (10).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import PYTHON, ROOT, write_result

sys.path.insert(0, str(ROOT))

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
OFFLINE_S = float(os.environ.get("BENCH_OFFLINE_S", "20"))
HEARD = int(os.environ.get("BENCH_HEARD", "4"))
AUDIO_S = float(os.environ.get("BENCH_AUDIO_S", "10"))


def thread_cpu_s(native_id: int) -> float:
    fields = Path(f"/proc/self/task/{native_id}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def wait_for(cond: Any, within: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < within:
        if cond():
            return time.monotonic() - start
        await asyncio.sleep(0.02)
    return float("nan")


async def bench(work: Path) -> dict[str, Any]:
    from tests.terminals import netns_sources  # sets ALSA_CONFIG_PATH: the file plugin
    from tests.terminals.conftest import make_clip
    from wallctl.accounts import Accounts, Role
    from wallctl.api.server import ApiServer
    from wallctl.client import connect
    from wallctl.config import parse_config
    from wallctl.daemon import Daemon
    from wallctl.render.component import RenderComponent
    from wallctl.render.frames import SourcePhase
    from wallctl.store import Actor
    from wallctl.terminals.component import TerminalsComponent
    from wallctl.terminals.identities import Terminals

    clip = make_clip(work / "clip.ts", seconds=6.0)
    raw = {
        "daemon": {"state_dir": str(work / "state"), "durability": "normal"},
        "http": {"host": "127.0.0.1", "port": 0},
        "api": {"port": 0},
        "wall": {
            "id": "main",
            "min_diagonal_cm": 10,
            "tiles": {
                "rows": 1,
                "cols": 2,
                "width_mm": 1209.6,
                "height_mm": 680.4,
                "width_px": 640,
                "height_px": 360,
            },
        },
        "sources": [
            # The baseline: the feed URL in a [[sources]] entry (port filled in below).
            {"id": "old-p1", "name": "old", "kind": "mobile", "url": "http://x/"}
        ],
        "render": {"fps": 10, "labels": False},
        "terminals": {"inactivity_s": 2.0, "audio": {"device": "centre_tap", "follow": []}},
    }
    # The listener's port is known once it runs: start on a free port picked here.
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    raw["http"]["port"] = port  # type: ignore[index]
    raw["sources"][0]["url"] = f"http://127.0.0.1:{port}/terminals/p1/feed.h264"  # type: ignore[index]
    d = Daemon(parse_config(raw))
    task = asyncio.create_task(d.run())
    for _ in range(600):
        if d.runtime is not None and any(c.name == "http" for c in d._started):
            break
        await asyncio.sleep(0.05)
    rt = d.runtime
    assert rt is not None, "the daemon did not start"
    await Accounts(rt.store).add("op1", "correct horse battery", Role.OPERATOR)
    api = next(c for c in rt.components if isinstance(c, ApiServer))
    client = await connect(api.url, account="op1", password="correct horse battery")
    render = rt.services["render"]
    comp = rt.services["terminals"]
    assert isinstance(render, RenderComponent) and isinstance(comp, TerminalsComponent)
    terminals = Terminals(rt.store)
    base = f"http://127.0.0.1:{port}"
    token = terminals.add("p1", "巡逻一组", Actor("bench"))
    await asyncio.sleep(3)  # the catalogue picks the terminal up
    for x, sid in ((0, "mobile/p1"), (640, "old-p1")):
        await client.call("window.open", {"x": x, "y": 0, "w": 640, "h": 360, "source": sid})
    hub = render.hub

    def live(sid: str) -> bool:
        return hub.view(sid).phase is SourcePhase.LIVE

    auto: list[float] = []
    old: list[float] = []
    gone: list[float] = []
    for _ in range(ROUNDS):
        await asyncio.sleep(OFFLINE_S)
        pc, camera, mic = await netns_sources.publish(base, "p1", token, clip, 600)
        start = time.monotonic()
        results = await asyncio.gather(
            wait_for(lambda: live("mobile/p1"), 30), wait_for(lambda: live("old-p1"), 30)
        )
        auto.append(results[0])
        old.append(results[1])
        await asyncio.sleep(max(0.0, 3 - (time.monotonic() - start)))
        camera.stop()
        mic.stop()
        gone.append(await wait_for(lambda: not live("mobile/p1"), 30))
        await pc.close()
        await wait_for(lambda: comp.relay.publication("p1") is None, 10)

    # The loudspeaker: HEARD terminals heard at once.
    pubs = []
    for i in range(HEARD):
        tok = terminals.add(f"a{i}", "", Actor("bench"))
        pubs.append(await netns_sources.publish(base, f"a{i}", tok, clip, 400 + 150 * i))
        await client.call("terminal.listen", {"terminal": f"a{i}"})
    audio = comp.audio
    assert audio is not None
    await wait_for(lambda: audio.stats.device_open, 20)
    await asyncio.sleep(1)
    thread = next(t for t in threading.enumerate() if t.name == "terminal-audio")
    assert thread.native_id is not None
    cpu0, t0, blocks0 = thread_cpu_s(thread.native_id), time.monotonic(), audio.stats.blocks_written
    await asyncio.sleep(AUDIO_S)
    cpu = thread_cpu_s(thread.native_id) - cpu0
    took = time.monotonic() - t0
    blocks = audio.stats.blocks_written - blocks0
    for pc, camera, mic in pubs:
        camera.stop()
        mic.stop()
        await pc.close()
    await client.close()
    d.request_stop()
    await task
    return {
        "auto": auto,
        "old": old,
        "gone": gone,
        "audio_cpu_pct": 100 * cpu / took,
        "audio_blocks_per_s": blocks / took,
        "dropped": audio.stats.frames_dropped,
    }


def main() -> int:
    if "--inside" not in sys.argv:
        if os.geteuid() != 0:
            print("terminal_sources: needs root (unshare -n)", file=sys.stderr)
            return 1
        script = 'ip link set lo up && ip addr add 127.0.0.2/8 dev lo && exec "$0" "$@"'
        return subprocess.run(
            ["unshare", "-n", "sh", "-c", script, PYTHON, __file__, "--inside"], cwd=ROOT
        ).returncode
    import logging

    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="wallctl-bench-sources-") as tmp:
        r = asyncio.run(bench(Path(tmp)))
    figures = {
        "live_after_publish_s": round(statistics.median(r["auto"]), 2),
        "live_after_publish_baseline_s": round(statistics.median(r["old"]), 2),
        "live_after_publish_vs_baseline": round(
            statistics.median(r["auto"]) / statistics.median(r["old"]), 3
        ),
        "offline_after_vanish_s": round(statistics.median(r["gone"]), 2),
        "audio_cpu_pct_per_heard_terminal": round(r["audio_cpu_pct"] / HEARD, 2),
        "audio_blocks_per_s": round(r["audio_blocks_per_s"], 1),
    }
    targets = {
        "live_after_publish_s": {"max": 3.0},
        "offline_after_vanish_s": {"max": 5.0},
        "audio_blocks_per_s": {"min": 49.0},
    }
    notes = {
        "rounds": ROUNDS,
        "offline_s": OFFLINE_S,
        "heard_terminals": HEARD,
        "live_after_publish_all_s": [round(x, 2) for x in r["auto"]],
        "baseline_all_s": [round(x, 2) for x in r["old"]],
        "offline_after_vanish_all_s": [round(x, 2) for x in r["gone"]],
        "audio_frames_dropped": r["dropped"],
        "baseline": "a [[sources]] entry with the terminal's feed URL (the way before): its "
        "decoder retries the offline feed with the render backoff (0.5 s doubling to 15 s)",
    }
    write_result("terminal_sources", figures, targets, notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
