"""WebRTC through a running daemon: aiortc publishers (WHIP) and viewers (WHEP).

Runs only inside a loopback-only network namespace (test_webrtc.py starts it there),
so no test packet can reach the machine's external address.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import json
import os
import shutil
import sqlite3
import subprocess
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import av
import pytest
from aiohttp import web
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaPlayer
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from helpers.services import service_of

from wallctl.accounts import Accounts, Role
from wallctl.api.server import ApiServer
from wallctl.api.tokens import Tokens
from wallctl.bus import BusEvent
from wallctl.client import connect
from wallctl.config import parse_config
from wallctl.daemon import Daemon
from wallctl.store import Actor
from wallctl.terminals.component import TerminalsComponent
from wallctl.terminals.identities import Terminals

from .conftest import HERE, NETNS_ENV, ClipTrack

pytestmark = pytest.mark.skipif(
    os.environ.get(NETNS_ENV) != "1", reason="runs inside a netns (see test_webrtc.py)"
)

WALL = {
    "id": "main",
    "min_diagonal_cm": 10,
    "tiles": {
        "rows": 1,
        "cols": 1,
        "width_mm": 1209.6,
        "height_mm": 680.4,
        "width_px": 640,
        "height_px": 360,
    },
}


@dataclass
class Centre:
    daemon: Daemon
    base: str
    terminals: Terminals
    api_token: str
    state_dir: Path
    events: list[BusEvent] = field(default_factory=list)

    @property
    def comp(self) -> TerminalsComponent:
        return service_of(self.daemon, "terminals", TerminalsComponent)

    def events_of(self, type_: str) -> list[dict[str, Any]]:
        return [e.data for e in self.events if e.type == type_]


async def start_centre(tmp: Path, **terminals: Any) -> tuple[Centre, asyncio.Task[int]]:
    raw = {
        "daemon": {"state_dir": str(tmp / "state"), "durability": "normal"},
        "http": {"host": "127.0.0.1", "port": 0},
        "api": {"port": 0},
        "wall": WALL,
        "render": {"enabled": False},
        "terminals": {"inactivity_s": 2.0, **terminals},
    }
    d = Daemon(parse_config(raw))
    task = asyncio.create_task(d.run())
    for _ in range(200):
        await asyncio.sleep(0.05)
        rt = d.runtime
        if rt is not None and rt.http.port and any(c.name == "http" for c in d._started):
            break
    else:
        raise AssertionError("daemon did not start")
    rt = d.runtime
    assert rt is not None
    await Accounts(rt.store).add("viewer1", "correct horse battery", Role.VIEWER)
    grant = await Tokens(rt.store).issue(Actor("viewer1", via="api", session="s1"), 3600)
    centre = Centre(
        d, f"http://127.0.0.1:{rt.http.port}", Terminals(rt.store), grant.token, rt.state_dir
    )
    rt.bus.subscribe(centre.events.append)
    return centre, task


@pytest.fixture
async def centre(tmp_path: Path) -> AsyncIterator[Centre]:
    c, task = await start_centre(tmp_path)
    try:
        yield c
    finally:
        c.daemon.request_stop()
        await asyncio.wait_for(task, 30)


def _ice() -> RTCConfiguration:
    return RTCConfiguration(iceServers=[])


async def whip_publish(
    base: str, terminal: str, token: str, clip: Path
) -> tuple[RTCPeerConnection, str, ClipTrack]:
    pc = RTCPeerConnection(_ice())
    camera = ClipTrack(clip)
    pc.addTransceiver(camera, direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    async with aiohttp.ClientSession() as s:
        r = await s.post(
            f"{base}/whip/{terminal}",
            data=pc.localDescription.sdp,
            headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {token}"},
        )
        body = await r.text()
        assert r.status == 201, body
        location = r.headers["Location"]
    await pc.setRemoteDescription(RTCSessionDescription(body, "answer"))
    return pc, location, camera


@dataclass
class Viewing:
    pc: RTCPeerConnection
    location: str
    frames: list[av.VideoFrame] = field(default_factory=list)
    audio: list[av.AudioFrame] = field(default_factory=list)
    first_at: float | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


async def whep_view(base: str, source: str, token: str, audio: bool = False) -> Viewing:
    pc = RTCPeerConnection(_ice())
    pc.addTransceiver("video", direction="recvonly")
    if audio:
        pc.addTransceiver("audio", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    viewing = Viewing(pc, "")

    @pc.on("track")
    def on_track(track: Any) -> None:
        async def pull() -> None:
            while True:
                try:
                    frame = await track.recv()
                except Exception:
                    return
                if track.kind == "audio":
                    viewing.audio.append(frame)
                    continue
                if viewing.first_at is None:
                    viewing.first_at = time.monotonic()
                viewing.frames.append(frame)

        viewing.tasks.append(asyncio.create_task(pull()))

    async with aiohttp.ClientSession() as s:
        r = await s.post(
            f"{base}/whep/{source}",
            data=pc.localDescription.sdp,
            headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {token}"},
        )
        body = await r.text()
        assert r.status == 201, body
        viewing.location = r.headers["Location"]
    await pc.setRemoteDescription(RTCSessionDescription(body, "answer"))
    return viewing


async def wait_for(cond: Any, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if cond():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_publish_view_record_and_delete(centre: Centre, clip: Path) -> None:
    token = centre.terminals.add("patrol-7", "巡逻七组", Actor("test"))
    pub_pc, location, _player = await whip_publish(centre.base, "patrol-7", token, clip)
    assert location.startswith("/whip/patrol-7/")
    relay = centre.comp.relay
    await wait_for(
        lambda: (p := relay.publication("patrol-7")) is not None and p.frames > 10,
        20,
        "frames from the publisher",
    )
    assert centre.events_of("terminal.published")[0]["source"] == "mobile/patrol-7"

    t0 = time.monotonic()
    viewers = [await whep_view(centre.base, "mobile/patrol-7", centre.api_token) for _ in range(2)]
    await wait_for(lambda: all(len(v.frames) >= 10 for v in viewers), 20, "viewer frames")
    # Forwarded at the publisher's rate (25 fps), not a trickle of keyframes.
    before = [len(v.frames) for v in viewers]
    await asyncio.sleep(2)
    assert all(len(v.frames) - b >= 25 for v, b in zip(viewers, before, strict=True))
    for v in viewers:
        assert v.first_at is not None and v.first_at - t0 < 10
        # The viewers decode the publisher's own pictures: 640x360, never re-encoded here.
        assert (v.frames[-1].width, v.frames[-1].height) == (640, 360)
    pub = relay.publication("patrol-7")
    assert pub is not None and len(pub.viewers) == 2
    rt = centre.daemon.runtime
    assert rt is not None
    api = next(c for c in rt.components if isinstance(c, ApiServer))
    client = await connect(api.url, token=centre.api_token)
    try:
        (row,) = (await client.call("terminal.list"))["terminals"]
        assert row["publishing"] is True and row["viewers"] == 2 and row["frames"] > 10
        assert row["codecs"] == ["H264"] and row["source"] == "mobile/patrol-7"
    finally:
        await client.close()

    # The wall's decoder feed: Annex-B from a keyframe, decodable by PyAV.
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{centre.base}/terminals/patrol-7/feed.h264") as r:
            assert r.status == 200
            data = b""
            while len(data) < 60_000:
                data += await r.content.read(65536)
    codec = av.CodecContext.create("h264", "r")
    pictures = [f for p in codec.parse(data) for f in codec.decode(p)]
    assert pictures and pictures[0].width == 640

    # DELETE ends the session: unpublished event, viewers' tracks end.
    async with aiohttp.ClientSession() as s:
        r = await s.delete(centre.base + location, headers={"Authorization": f"Bearer {token}"})
        assert r.status == 200
        r = await s.delete(centre.base + location, headers={"Authorization": f"Bearer {token}"})
        assert r.status == 404
    assert relay.publication("patrol-7") is None
    assert centre.events_of("terminal.unpublished")[-1]["reason"] == "deleted"
    for v in viewers:
        await v.pc.close()
    await pub_pc.close()

    # The recording: a closed segment in the index, playable, found by search.
    comp = centre.comp
    await wait_for(
        lambda: any(
            s.state == "closed"
            for s in comp.index.search("mobile/patrol-7", None, 0, time.time() + 1)
        ),
        10,
        "closed segment",
    )
    seg = comp.index.search("mobile/patrol-7", "patrol-7", 0, time.time() + 1)[0]
    with av.open(seg.path) as c:
        n = sum(1 for _ in c.decode(c.streams.video[0]))
    assert n > 10
    async with aiohttp.ClientSession() as s:
        r = await s.get(
            f"{centre.base}/recordings/{seg.id}.mp4",
            headers={"Authorization": f"Bearer {centre.api_token}", "Range": "bytes=0-187"},
        )
        assert r.status == 206
        assert (await r.read())[4:8] == b"ftyp"  # an MP4 file, from its first byte
        assert r.headers["Content-Range"].startswith("bytes 0-187/")
        r = await s.get(f"{centre.base}/recordings/{seg.id}.mp4")
        assert r.status == 401

    # The API: recordings.search, and the terminal events a viewer may subscribe to.
    rt = centre.daemon.runtime
    assert rt is not None
    api = next(c for c in rt.components if isinstance(c, ApiServer))
    client = await connect(api.url, token=centre.api_token, subscriptions=["terminal"])
    try:
        found = await client.call(
            "recordings.search",
            {"source": "mobile/patrol-7", "from": 0, "to": time.time() + 10},
        )
        assert found["segments"][0]["id"] == seg.id
        assert found["segments"][0]["url"] == f"/recordings/{seg.id}.mp4"
        assert found["segments"][0]["identity"] == "patrol-7"
        bad = await client.request("recordings.search", {"from": 10, "to": 5})
        assert bad["error"]["code"] == "invalid_field"
        listed = await client.call("terminal.list")
        (row,) = [t for t in listed["terminals"] if t["id"] == "patrol-7"]
        assert row["publishing"] is False and row["whep_path"] == "/whep/mobile/patrol-7"
        assert token not in str(listed)
    finally:
        await client.close()


async def test_vanished_publisher_goes_offline(centre: Centre, clip: Path) -> None:
    token = centre.terminals.add("bodycam-3", "", Actor("test"))
    pc, _loc, player = await whip_publish(centre.base, "bodycam-3", token, clip)
    relay = centre.comp.relay
    await wait_for(
        lambda: (p := relay.publication("bodycam-3")) is not None and p.frames > 5, 20, "frames"
    )
    # The phone loses its network: no DELETE, no more RTP.
    player.stop()
    gone = time.monotonic()
    await wait_for(lambda: relay.publication("bodycam-3") is None, 5, "offline within 5 s")
    assert time.monotonic() - gone < 5
    ev = centre.events_of("terminal.unpublished")[-1]
    assert ev["reason"] == "inactive" and ev["terminal"] == "bodycam-3"
    await pc.close()


async def test_second_publisher_replaces_first(centre: Centre, clip: Path) -> None:
    token = centre.terminals.add("patrol-9", "", Actor("test"))
    pc1, loc1, _ = await whip_publish(centre.base, "patrol-9", token, clip)
    relay = centre.comp.relay
    await wait_for(
        lambda: (p := relay.publication("patrol-9")) is not None and p.frames > 3,
        20,
        "first frames",
    )
    first = relay.publication("patrol-9")
    pc2, loc2, _ = await whip_publish(centre.base, "patrol-9", token, clip)
    assert loc1 != loc2
    second = relay.publication("patrol-9")
    assert second is not None and second is not first
    assert centre.events_of("terminal.unpublished")[-1]["reason"] == "replaced"
    async with aiohttp.ClientSession() as s:
        # The replaced session's location is gone; the new one still publishes.
        r = await s.delete(centre.base + loc1, headers={"Authorization": f"Bearer {token}"})
        assert r.status == 404
    assert relay.publication("patrol-9") is second
    async with aiohttp.ClientSession() as s:
        metrics = await (await s.get(f"{centre.base}/metrics")).text()
    assert "wallctl_terminals_publishing 1.0" in metrics
    assert 'wallctl_terminal_viewers{terminal="patrol-9"} 0.0' in metrics
    # Revoked: `wallctl terminals remove` (a stolen phone) ends the publication too.
    centre.terminals.remove("patrol-9")
    await wait_for(lambda: relay.publication("patrol-9") is None, 5, "revocation")
    assert centre.events_of("terminal.unpublished")[-1]["reason"] == "removed"
    await pc1.close()
    await pc2.close()


async def test_http_faults(centre: Centre, clip: Path) -> None:
    token = centre.terminals.add("unit-1", "", Actor("test"))
    pc = RTCPeerConnection(_ice())
    player = MediaPlayer(str(clip), decode=False)
    pc.addTransceiver(player.video, direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    offer = pc.localDescription.sdp
    sdp_h = {"Content-Type": "application/sdp"}
    async with aiohttp.ClientSession() as s:
        url = f"{centre.base}/whip/unit-1"
        r = await s.post(url, data=offer, headers=sdp_h)
        assert r.status == 401 and "bearer token" in await r.text()
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
        r = await s.post(url, data=offer, headers={**sdp_h, "Authorization": "Bearer nope"})
        assert r.status == 401
        other = centre.terminals.add("unit-2", "", Actor("test"))
        r = await s.post(url, data=offer, headers={**sdp_h, "Authorization": f"Bearer {other}"})
        assert r.status == 401, "another terminal's token must not publish as this one"
        auth = {**sdp_h, "Authorization": f"Bearer {token}"}
        r = await s.post(url, data="v=0\r\nthis is not sdp\r\n", headers=auth)
        assert r.status == 400 and "malformed SDP" in await r.text()
        r = await s.post(url, data=offer.replace("a=fingerprint", "a=x-fp"), headers=auth)
        assert r.status == 400 and "DTLS fingerprint" in await r.text()
        r = await s.post(
            url,
            data=offer,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "text/plain"},
        )
        assert r.status == 415
        vp8_only = "\r\n".join(
            ln for ln in offer.split("\r\n") if "H264" not in ln and "rtx" not in ln
        )
        r = await s.post(url, data=vp8_only, headers=auth)
        text = await r.text()
        assert r.status == 406 and "H.264" in text and "VP8" in text
        # A viewer of a source that is not publishing.
        r = await s.post(
            f"{centre.base}/whep/mobile/nobody",
            data=offer.replace("sendonly", "recvonly"),
            headers={**sdp_h, "Authorization": f"Bearer {centre.api_token}"},
        )
        assert r.status == 404
        r = await s.post(f"{centre.base}/whep/mobile/nobody", data=offer, headers=sdp_h)
        assert r.status == 401
        # Oversized, not UTF-8, hostile ids, unknown sessions and recordings.
        r = await s.post(url, data=b"v=0\r\n" + b"a=x:" + b"y" * 70000, headers=auth)
        assert r.status == 400 and "larger than" in await r.text()
        r = await s.post(url, data=b"v=0\r\n\xff\xfe", headers=auth)
        assert r.status == 400 and "UTF-8" in await r.text()
        r = await s.post(f"{centre.base}/whip/..%2Fetc", data=offer, headers=auth)
        assert r.status == 401
        r = await s.delete(f"{url}/nosuchsession", headers={"Authorization": f"Bearer {token}"})
        assert r.status == 404
        r = await s.delete(f"{url}/nosuchsession")
        assert r.status == 401
        viewer_auth = {"Authorization": f"Bearer {centre.api_token}"}
        r = await s.delete(f"{centre.base}/whep/sessions/nosuch", headers=viewer_auth)
        assert r.status == 404
        r = await s.patch(f"{url}/x", data="a=candidate", headers=auth)
        assert r.status == 405
        r = await s.options(url)
        assert r.status == 204 and r.headers["Access-Control-Allow-Origin"] == "*"
        r = await s.get(f"{centre.base}/recordings/999.mp4", headers=viewer_auth)
        assert r.status == 404
        r = await s.get(f"{centre.base}/recordings/999.mp4?token=wrong")
        assert r.status == 401
        r = await s.get(f"{centre.base}/terminals/unit-1/feed.h264")
        assert r.status == 404 and "not publishing" in await r.text()
    # None of it published anything.
    assert centre.comp.relay.publications == {}
    assert centre.events_of("terminal.published") == []
    await pc.close()
    # Tokens are kept hashed only.
    db = sqlite3.connect(centre.state_dir / "wallctl.db")
    dump = "\n".join(db.iterdump())
    db.close()
    assert token not in dump and other not in dump


async def test_the_wall_decodes_a_terminal_once_and_only_while_shown(
    centre: Centre, clip: Path
) -> None:
    from wallctl.config import SourceConfig
    from wallctl.render.frames import SourcePhase
    from wallctl.render.source_config import RenderSourcesConfig
    from wallctl.render.sourcehub import SourceHub

    token = centre.terminals.add("patrol-5", "", Actor("test"))
    pc, location, _ = await whip_publish(centre.base, "patrol-5", token, clip)
    relay = centre.comp.relay
    await wait_for(
        lambda: (p := relay.publication("patrol-5")) is not None and p.frames > 3, 20, "frames"
    )
    pub = relay.publication("patrol-5")
    assert pub is not None
    # How a mobile source is configured for the wall (docs/terminals.md).
    src = SourceConfig(
        id="patrol-5",
        name="巡逻五组",
        kind="mobile",
        url=f"{centre.base}/terminals/patrol-5/feed.h264",
    )
    hub = SourceHub([src], RenderSourcesConfig(warm_s=0, no_signal_s=1.0))
    await hub.start()
    try:
        await asyncio.sleep(0.5)
        assert pub.feeds == [], "nothing decodes a terminal no window shows"
        hub.demand("wall:main", {"patrol-5": (640, 360)})
        hub.demand("preview", {"patrol-5": (320, 180)})
        await wait_for(lambda: hub.view("patrol-5").phase is SourcePhase.LIVE, 15, "live")
        frame = hub.view("patrol-5").frame
        assert frame is not None
        assert len(pub.feeds) == 1, "two holders, one decoder"
        hub.demand("wall:main", {})
        hub.demand("preview", {})
        await wait_for(lambda: pub.feeds == [], 10, "the decoder to stop")
        # Shown again, then the publisher goes: the window's slate says so.
        hub.demand("wall:main", {"patrol-5": (640, 360)})
        await wait_for(lambda: hub.view("patrol-5").phase is SourcePhase.LIVE, 15, "live again")
        async with aiohttp.ClientSession() as s:
            await s.delete(centre.base + location, headers={"Authorization": f"Bearer {token}"})
        await wait_for(
            lambda: hub.view("patrol-5").phase is not SourcePhase.LIVE, 5, "offline slate"
        )
    finally:
        await hub.stop()
        await pc.close()


CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--no-first-run",
]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@contextlib.asynccontextmanager
async def chromium_on(
    page: str,
    query: Mapping[str, str],
    profile: Path,
    *,
    flags: Sequence[str] = (),
    posts: Mapping[str, Handler] | None = None,
) -> AsyncIterator[None]:
    """Headless Chromium on one of this folder's pages (``page``), served by a throwaway
    HTTP server with ``query`` in its URL and ``posts`` as extra POST routes; killed on
    exit (no DELETE, as a phone that loses its network)."""

    async def serve(request: web.Request) -> web.FileResponse:
        return web.FileResponse(HERE / page)

    app = web.Application()
    app.router.add_get(f"/{page}", serve)
    for path, handler in (posts or {}).items():
        app.router.add_post(path, handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        browser = await asyncio.create_subprocess_exec(
            "chromium",
            *CHROMIUM_FLAGS,
            *flags,
            f"--user-data-dir={profile}",
            f"http://127.0.0.1:{port}/{page}?{urllib.parse.urlencode(query)}",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            yield
        finally:
            browser.kill()
            await browser.wait()
    finally:
        await runner.cleanup()


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian chromium not installed")
async def test_chromium_publishes_with_its_fake_camera(centre: Centre, tmp_path: Path) -> None:
    token = centre.terminals.add("phone-1", "执法记录仪", Actor("test"))
    relay = centre.comp.relay
    query = {"whip": f"{centre.base}/whip/phone-1", "token": token}
    async with chromium_on("publish.html", query, tmp_path / "profile"):
        await wait_for(
            lambda: (p := relay.publication("phone-1")) is not None and p.frames > 20,
            40,
            "H.264 from Chromium",
        )
        pub = relay.publication("phone-1")
        assert pub is not None and {"H264", "opus"} <= pub.codecs
        # Chromium sends no periodic keyframes: a picture soon after joining shows that
        # the relay's keyframe request (RTCP PLI) reached the phone.
        await asyncio.sleep(3)
        joined = time.monotonic()
        viewer = await whep_view(centre.base, "mobile/phone-1", centre.api_token, audio=True)
        await wait_for(lambda: len(viewer.frames) >= 5, 20, "the viewer's pictures")
        assert viewer.first_at is not None and viewer.first_at - joined < 3.0
        assert viewer.frames[-1].width >= 320
        # The terminal's voice reaches the viewer too (Opus, forwarded as it came).
        await wait_for(lambda: len(viewer.audio) >= 10, 10, "the viewer's audio")
        assert viewer.audio[-1].sample_rate == 48000
        await viewer.pc.close()
    # The browser vanished without DELETE: offline by RTP inactivity, within 5 s.
    await wait_for(lambda: relay.publication("phone-1") is None, 5, "offline")
    assert centre.events_of("terminal.unpublished")[-1]["reason"] == "inactive"
    # Its video and voice were recorded as they came: H.264 and Opus in one file.
    index = centre.comp.index
    await wait_for(
        lambda: any(x.state == "closed" for x in index.search("mobile/phone-1", None, 0, 2e9)),
        10,
        "the segment closed",
    )
    segs = index.search("mobile/phone-1", None, 0, 2e9)
    counts = {"video": 0, "audio": 0}
    for seg in segs:  # more than one if the camera's size changed (a segment per size)
        assert seg.codecs == "h264,opus"
        with av.open(seg.path) as c:
            assert [s.codec_context.name for s in c.streams] == ["h264", "opus"]
            for p in c.demux():
                if p.size:
                    counts[p.stream.type] += 1
    assert counts["video"] > 20 and counts["audio"] > 50


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian chromium not installed")
async def test_chromium_watches_a_terminal_over_whep(
    centre: Centre, clip: Path, tmp_path: Path
) -> None:
    token = centre.terminals.add("patrol-2", "", Actor("test"))
    pc, _loc, _cam = await whip_publish(centre.base, "patrol-2", token, clip)
    relay = centre.comp.relay
    await wait_for(
        lambda: (p := relay.publication("patrol-2")) is not None and p.frames > 3, 20, "frames"
    )
    reports: list[dict[str, Any]] = []

    async def report(request: web.Request) -> web.Response:
        reports.append(json.loads(await request.text()))
        return web.Response(text="ok")

    query = {"whep": f"{centre.base}/whep/mobile/patrol-2", "token": centre.api_token}
    try:
        async with chromium_on(
            "view.html",
            query,
            tmp_path / "profile",
            flags=["--autoplay-policy=no-user-gesture-required"],
            posts={"/report": report},
        ):
            await wait_for(
                lambda: (
                    bool(reports)
                    and (reports[-1].get("framesDecoded", 0) >= 25 or "error" in reports[-1])
                ),
                40,
                "Chromium decoding the terminal",
            )
            last = reports[-1]
            assert "error" not in last, last
            assert last["width"] == 640 and last["mime"] == "video/H264"
    finally:
        await pc.close()


class OpusTrack(MediaStreamTrack):
    """A commander's microphone: Opus packets made by ffmpeg, paced at 20 ms."""

    kind = "audio"

    def __init__(self, packets: list[bytes]) -> None:
        super().__init__()
        self.packets = packets
        self.i = 0
        self.start: float | None = None

    async def recv(self) -> av.Packet[Any]:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        self.start = now if self.start is None else self.start
        wait = self.start + self.i * 0.02 - now
        if wait > 0:
            await asyncio.sleep(wait)
        packet: av.Packet[Any] = av.Packet(self.packets[self.i % len(self.packets)])
        packet.pts = self.i * 960
        packet.time_base = fractions.Fraction(1, 48000)
        self.i += 1
        return packet


async def test_talkback_carries_the_commanders_voice_to_the_terminal(
    centre: Centre, tmp_path: Path
) -> None:
    ogg = tmp_path / "voice.ogg"
    await asyncio.to_thread(
        subprocess.run,
        [
            "ffmpeg",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=600:sample_rate=48000",
            "-t",
            "2",
            "-c:a",
            "libopus",
            "-frame_duration",
            "20",
            str(ogg),
        ],
        check=True,
    )
    with av.open(str(ogg)) as c:
        opus = [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size]
    token = centre.terminals.add("radio-1", "", Actor("test"))
    rt = centre.daemon.runtime
    assert rt is not None
    await Accounts(rt.store).add("op1", "correct horse battery", Role.OPERATOR)
    op = await Tokens(rt.store).issue(Actor("op1", via="api", session="s2"), 3600)
    sdp_h = {"Content-Type": "application/sdp"}

    # The terminal listens (its own token), receive-only audio.
    ear = RTCPeerConnection(_ice())
    ear.addTransceiver("audio", direction="recvonly")
    heard: list[Any] = []
    pulls: list[asyncio.Future[None]] = []

    @ear.on("track")
    def on_track(track: Any) -> None:
        async def pull() -> None:
            while True:
                try:
                    heard.append(await track.recv())
                except Exception:
                    return

        pulls.append(asyncio.ensure_future(pull()))

    await ear.setLocalDescription(await ear.createOffer())
    async with aiohttp.ClientSession() as s:
        r = await s.post(
            f"{centre.base}/whep/talkback/radio-1",
            data=ear.localDescription.sdp,
            headers={**sdp_h, "Authorization": f"Bearer {token}"},
        )
        assert r.status == 201, await r.text()
        await ear.setRemoteDescription(RTCSessionDescription(await r.text(), "answer"))

        # A commander speaks: an operator's API token, Opus only.
        mouth = RTCPeerConnection(_ice())
        mouth.addTransceiver(OpusTrack(opus), direction="sendonly")
        await mouth.setLocalDescription(await mouth.createOffer())
        offer = mouth.localDescription.sdp
        r = await s.post(
            f"{centre.base}/talkback/radio-1",
            data=offer,
            headers={**sdp_h, "Authorization": f"Bearer {centre.api_token}"},
        )
        assert r.status == 403, "a viewer may not talk to a terminal"
        r = await s.post(
            f"{centre.base}/talkback/nobody",
            data=offer,
            headers={**sdp_h, "Authorization": f"Bearer {op.token}"},
        )
        assert r.status == 404
        r = await s.post(
            f"{centre.base}/talkback/radio-1",
            data=offer,
            headers={**sdp_h, "Authorization": f"Bearer {token}"},
        )
        assert r.status == 401, "a terminal's token is not an API token"
        r = await s.post(
            f"{centre.base}/talkback/radio-1",
            data=offer,
            headers={**sdp_h, "Authorization": f"Bearer {op.token}"},
        )
        assert r.status == 201, await r.text()
        location = r.headers["Location"]
        await mouth.setRemoteDescription(RTCSessionDescription(await r.text(), "answer"))

        await wait_for(lambda: len(heard) >= 25, 15, "the commander's voice at the terminal")
        assert heard[-1].sample_rate == 48000
        ev = centre.events_of("terminal.talkback")[-1]
        assert ev == {"terminal": "radio-1", "by": "op1", "state": "started"}
        r = await s.delete(centre.base + location, headers={"Authorization": f"Bearer {op.token}"})
        assert r.status == 200
        assert centre.events_of("terminal.talkback")[-1]["state"] == "ended"
        r = await s.delete(centre.base + location, headers={"Authorization": f"Bearer {op.token}"})
        assert r.status == 404
    await mouth.close()

    # The same from a commander's browser: Chromium's fake microphone.
    if shutil.which("chromium") is None:
        await ear.close()
        return
    before = len(heard)

    query = {"url": f"{centre.base}/talkback/radio-1", "token": op.token}
    try:
        async with chromium_on("talk.html", query, tmp_path / "profile"):
            await wait_for(lambda: len(heard) >= before + 25, 30, "the browser's voice")
    finally:
        await ear.close()
