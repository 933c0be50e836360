"""WebRTC relay: 8 publishers of 720p H.264, each watched by 2 WHEP viewers, through
wallctl's forwarding relay and through aiortc's stock relay (decode once, re-encode per
viewer, as aiortc's examples do with MediaRelay) in the same run.

Figures: the relay process's CPU (% of one core) for each, their ratio (target <= 0.1),
the frames per second delivered to all viewers, and the CPU per 1000 delivered frames
(the fair comparison when the stock relay cannot keep up). Publishers and viewers are
separate processes whose CPU is not counted; viewers count the encoded frames they
receive without decoding them. Everything runs in a loopback-only network namespace
(needs root: the script re-executes itself under ``unshare -n``). Recording is off in
both relays, so only the relay path is compared.

Environment: WEBRTC_PUBLISHERS (8), WEBRTC_VIEWERS (2 per publisher), WEBRTC_SECONDS (10).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import PYTHON, ROOT, write_result

sys.path.insert(0, str(ROOT))

PUBLISHERS = int(os.environ.get("WEBRTC_PUBLISHERS", "8"))
VIEWERS = int(os.environ.get("WEBRTC_VIEWERS", "2"))
SECONDS = float(os.environ.get("WEBRTC_SECONDS", "10"))
WORK = Path(os.environ.get("WEBRTC_WORK", "/tmp/wallctl-bench-webrtc"))
CLIP = WORK / "clip720.ts"


def make_clip() -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    if CLIP.exists():
        return
    subprocess.run(
        [
            "ffmpeg",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1280x720:rate=25",
            "-t",
            "10",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-tune",
            "zerolatency",
            "-profile:v",
            "baseline",
            "-b:v",
            "2M",
            "-g",
            "50",
            "-pix_fmt",
            "yuv420p",
            "-f",
            "mpegts",
            str(CLIP),
        ],
        check=True,
    )


# --- the relays -------------------------------------------------------------------------------


async def serve(mode: str, port_file: Path) -> None:
    from aiohttp import web
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
    from aiortc.contrib.media import MediaRelay

    from wallctl.terminals.config import TerminalsConfig
    from wallctl.terminals.identities import TerminalInfo
    from wallctl.terminals.relay import Relay, _prefer

    app = web.Application()
    relay = Relay(TerminalsConfig(inactivity_s=30, max_viewers=64))
    await relay.start()
    stock = MediaRelay()
    tracks: dict[str, Any] = {}
    pcs: list[Any] = []

    async def whip(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        offer = await request.text()
        if mode == "passthrough":
            info = TerminalInfo(name, name, 0.0, "bench")
            _, answer = await relay.publish(info, offer)
            return web.Response(status=201, text=answer, content_type="application/sdp")
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pcs.append(pc)
        _prefer(pc.addTransceiver("video", direction="recvonly"))

        @pc.on("track")
        def on_track(track: Any) -> None:
            tracks[name] = track

        await pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        return web.Response(
            status=201, text=pc.localDescription.sdp, content_type="application/sdp"
        )

    async def whep(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        offer = await request.text()
        if mode == "passthrough":
            _, answer = await relay.view(f"mobile/{name}", offer)
            return web.Response(status=201, text=answer, content_type="application/sdp")
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pcs.append(pc)
        # The stock path: one decoder per publisher (MediaRelay), one encoder per viewer.
        _prefer(pc.addTransceiver(stock.subscribe(tracks[name]), direction="sendonly"))
        await pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        return web.Response(
            status=201, text=pc.localDescription.sdp, content_type="application/sdp"
        )

    app.router.add_post("/whip/{name}", whip)
    app.router.add_post("/whep/{name}", whep)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    await asyncio.to_thread(port_file.write_text, str(port))
    await asyncio.Event().wait()


# --- publishers and viewers -------------------------------------------------------------------


def clip_track_class() -> Any:
    import fractions

    import av
    from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

    class ClipTrack(MediaStreamTrack):
        """The clip's packets looped and paced at 25 fps (MediaPlayer's loop=True stops
        pacing after its first loop). Same as tests/terminals/conftest.py."""

        kind = "video"

        def __init__(self, packets: list[tuple[bytes, int]]) -> None:
            super().__init__()
            self.packets = packets
            self.period = packets[-1][1] + 3600
            self.i = 0
            self.start: float | None = None

        async def recv(self) -> Any:
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
            packet = av.Packet(stamp() + data)
            packet.pts = pts
            packet.time_base = fractions.Fraction(1, 90000)
            return packet

    return ClipTrack


# A timestamp rides in every access unit as an SEI NAL unit (user data unregistered):
# the relay forwards it untouched, decoders ignore it, and the viewer reads the send time
# back. ASCII digits, so the payload needs no emulation-prevention bytes.
STAMP_UUID = b"wallctl-latency!"


def stamp() -> bytes:
    text = f"{time.time():.6f}".encode()
    payload = STAMP_UUID + text
    return b"\x00\x00\x00\x01\x06\x05" + bytes([len(payload)]) + payload + b"\x80"


def stamped_at(data: bytes) -> float | None:
    i = data.find(STAMP_UUID)
    if i < 0:
        return None
    try:
        return float(data[i + 16 : i + 16 + 17])
    except ValueError:
        return None


def clip_packets() -> list[tuple[bytes, int]]:
    import av

    out: list[tuple[bytes, int]] = []
    with av.open(str(CLIP)) as c:
        first = None
        for p in c.demux(c.streams.video[0]):
            if p.size and p.pts is not None:
                first = p.pts if first is None else first
                out.append((bytes(p), int(p.pts - first)))
    return out


async def publish(base: str) -> None:
    import aiohttp
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

    clip_track = clip_track_class()
    packets = clip_packets()
    pcs = []
    async with aiohttp.ClientSession() as s:
        for i in range(PUBLISHERS):
            pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            camera = clip_track(packets)
            pc.addTransceiver(camera, direction="sendonly")
            await pc.setLocalDescription(await pc.createOffer())
            r = await s.post(
                f"{base}/whip/pub{i}",
                data=pc.localDescription.sdp,
                headers={"Content-Type": "application/sdp"},
            )
            assert r.status == 201, await r.text()
            await pc.setRemoteDescription(RTCSessionDescription(await r.text(), "answer"))
            pcs.append((pc, camera))
    await asyncio.Event().wait()


async def view(base: str, counts: Path) -> None:
    import aiohttp
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

    from wallctl.terminals.passthrough import tap_receiver

    total = {"frames": 0, "bytes": 0, "connected": 0}

    latencies: list[float] = []

    def count(codec: str, data: bytes, ts: int) -> None:
        total["frames"] += 1
        total["bytes"] += len(data)
        sent = stamped_at(data)
        if sent is not None:
            latencies.append(time.time() - sent)
            del latencies[: -int(SECONDS * PUBLISHERS * VIEWERS * 25)]  # about the window

    async def report() -> None:
        while True:
            lat = sorted(latencies)
            data = json.dumps(
                {
                    **total,
                    "t": time.monotonic(),
                    "latency_p50_ms": 1000 * lat[len(lat) // 2] if lat else None,
                    "latency_p95_ms": 1000 * lat[int(len(lat) * 0.95)] if lat else None,
                }
            )
            await asyncio.to_thread(write_atomically, counts, data)
            await asyncio.sleep(0.25)

    reporter = asyncio.create_task(report())
    pcs = []
    async with aiohttp.ClientSession() as s:
        for i in range(PUBLISHERS):
            for _ in range(VIEWERS):
                pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
                t = pc.addTransceiver("video", direction="recvonly")
                # Count encoded frames; decoding 16 streams here would starve the relay.
                tap_receiver(t.receiver, count)
                await pc.setLocalDescription(await pc.createOffer())
                r = await s.post(
                    f"{base}/whep/pub{i}",
                    data=pc.localDescription.sdp,
                    headers={"Content-Type": "application/sdp"},
                )
                assert r.status == 201, await r.text()
                await pc.setRemoteDescription(RTCSessionDescription(await r.text(), "answer"))
                pcs.append(pc)
                total["connected"] += 1
    await reporter  # runs until the process is killed
    del pcs


# --- the run ----------------------------------------------------------------------------------


def write_atomically(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)  # a reader never sees a half-written file


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def role(*args: str) -> subprocess.Popen[bytes]:
    log = open(WORK / f"{args[0].strip('-')}.log", "ab")  # the child keeps it open
    return subprocess.Popen(
        [PYTHON, __file__, *args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log
    )


def measure(mode: str) -> dict[str, float]:
    port_file, counts = WORK / f"{mode}.port", WORK / f"{mode}.counts"
    port_file.unlink(missing_ok=True)
    counts.unlink(missing_ok=True)
    procs = [role("--serve", mode, str(port_file))]
    try:
        for _ in range(200):
            if port_file.exists() and port_file.read_text():
                break
            time.sleep(0.05)
        base = f"http://127.0.0.1:{port_file.read_text()}"
        procs.append(role("--publish", base))
        time.sleep(3)
        procs.append(role("--view", base, str(counts)))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if (
                counts.exists()
                and json.loads(counts.read_text() or "{}").get("connected") == PUBLISHERS * VIEWERS
            ):
                break
            time.sleep(0.25)
        else:
            raise RuntimeError(f"{mode}: the viewers did not all connect in 120 s")
        time.sleep(5)  # connections up, keyframes through, encoders warm
        server = procs[0].pid
        c0, f0 = cpu_s(server), json.loads(counts.read_text())
        time.sleep(SECONDS)
        c1, f1 = cpu_s(server), json.loads(counts.read_text())
        span = f1["t"] - f0["t"]
        frames = f1["frames"] - f0["frames"]
        cpu = c1 - c0
        return {
            "latency_p50_ms": f1.get("latency_p50_ms") or -1.0,
            "latency_p95_ms": f1.get("latency_p95_ms") or -1.0,
            "cpu_pct": 100 * cpu / span,
            "delivered_fps": frames / span,
            "cpu_ms_per_1000_frames": 1000 * 1000 * cpu / max(frames, 1),
        }
    finally:
        for p in reversed(procs):
            p.kill()
            p.wait()


def inside() -> None:
    make_clip()
    load_before = os.getloadavg()[0]
    ours = measure("passthrough")
    stock = measure("stock")
    load_after = os.getloadavg()[0]
    expected = PUBLISHERS * VIEWERS * 25
    figures = {
        "relay_cpu_pct": round(ours["cpu_pct"], 1),
        "stock_relay_cpu_pct": round(stock["cpu_pct"], 1),
        "relay_cpu_vs_stock": round(ours["cpu_pct"] / max(stock["cpu_pct"], 0.1), 3),
        "relay_delivered_fps": round(ours["delivered_fps"], 1),
        "stock_delivered_fps": round(stock["delivered_fps"], 1),
        "relay_cpu_ms_per_1000_frames": round(ours["cpu_ms_per_1000_frames"], 1),
        "stock_cpu_ms_per_1000_frames": round(stock["cpu_ms_per_1000_frames"], 1),
        "relay_send_to_receive_p50_ms": round(ours["latency_p50_ms"], 1),
        "relay_send_to_receive_p95_ms": round(ours["latency_p95_ms"], 1),
        "per_frame_cost_vs_stock": round(
            ours["cpu_ms_per_1000_frames"] / max(stock["cpu_ms_per_1000_frames"], 0.1), 3
        ),
    }
    write_result(
        "webrtc",
        figures,
        {
            "relay_cpu_vs_stock": {"max": 0.1},
            "per_frame_cost_vs_stock": {"max": 0.1},
            "relay_delivered_fps": {"min": expected * 0.9},
            "relay_send_to_receive_p95_ms": {"max": 100},
        },
        notes={
            "publishers": PUBLISHERS,
            "viewers_per_publisher": VIEWERS,
            "seconds": SECONDS,
            "clip": "1280x720 25 fps H.264 baseline 2 Mbit/s, GOP 50 (ffmpeg testsrc2)",
            "expected_fps": expected,
            "cpu": "the relay process only, % of one core (user + system)",
            "load_average_1min": [round(load_before, 2), round(load_after, 2)],
            "cores": os.cpu_count(),
            "latency": "publisher's send to the viewer's complete frame, through the relay, "
            "read from a timestamp SEI in each access unit (the stock relay re-encodes and "
            "drops it); camera capture and display are not included",
        },
    )


def main() -> int:
    if len(sys.argv) > 1:
        cmd = sys.argv[1]
        if cmd == "--serve":
            asyncio.run(serve(sys.argv[2], Path(sys.argv[3])))
        elif cmd == "--publish":
            asyncio.run(publish(sys.argv[2]))
        elif cmd == "--view":
            asyncio.run(view(sys.argv[2], Path(sys.argv[3])))
        elif cmd == "--inside":
            inside()
        return 0
    if os.geteuid() != 0:
        print("bench/webrtc.py needs root for its loopback-only network namespace")
        return 1
    script = 'ip link set lo up && ip addr add 127.0.0.2/8 dev lo && exec "$0" "$@"'
    return subprocess.run(
        ["unshare", "-n", "sh", "-c", script, PYTHON, __file__, "--inside"], cwd=ROOT
    ).returncode


if __name__ == "__main__":
    sys.exit(main())
