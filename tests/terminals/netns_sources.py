"""A publisher on the wall and in the centre's loudspeaker, through a running daemon.

Runs only inside a loopback-only network namespace (test_sources_webrtc.py starts it).
aiortc publishers send H.264 (ffmpeg's clip, as encoded packets) and an Opus tone; the
daemon composites the wall for real and plays the heard terminals into ALSA's ``file``
plugin, which records what a loudspeaker would have played.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from helpers.services import service_of

from wallctl.accounts import Accounts, Role
from wallctl.api.server import ApiServer
from wallctl.api.tokens import Tokens
from wallctl.bus import BusEvent
from wallctl.client import Client, connect
from wallctl.config import parse_config
from wallctl.daemon import Daemon
from wallctl.render.canvas import rgb_to_yuv
from wallctl.render.component import RenderComponent
from wallctl.render.text import SLATE_BG
from wallctl.store import Actor
from wallctl.terminals.component import TerminalsComponent
from wallctl.terminals.identities import Terminals
from wallctl.terminals.sources import REFRESH_S

from .conftest import NETNS_ENV, ClipTrack
from .netns_webrtc import OpusTrack, _ice, wait_for, whep_view
from .test_audio import opus_tone, peaks

pytestmark = pytest.mark.skipif(
    os.environ.get(NETNS_ENV) != "1", reason="runs inside a netns (see test_sources_webrtc.py)"
)

# Before anything opens ALSA in this process: a device that records what it plays.
ALSA_DIR = Path(tempfile.mkdtemp(prefix="wallctl-alsa-"))
PLAYED = ALSA_DIR / "played.raw"
(ALSA_DIR / "asound.conf").write_text(
    "pcm.centre_tap {\n  type file\n  slave.pcm { type null }\n"
    f'  file "{PLAYED}"\n  format "raw"\n}}\n',
    encoding="utf-8",
)
os.environ["ALSA_CONFIG_PATH"] = str(ALSA_DIR / "asound.conf")
RATE = 48000
PASSWORD = "correct horse battery"


def tone_track(hz: float, seconds: float = 40.0) -> OpusTrack:
    """A terminal's microphone: a tone long enough never to loop within a test (a loop
    is a discontinuity the decoder answers with a click)."""
    return OpusTrack(opus_tone(hz, seconds))


@dataclass
class Centre:
    daemon: Daemon
    base: str
    terminals: Terminals
    client: Client
    viewer_token: str
    api_url: str
    events: list[BusEvent] = field(default_factory=list)

    @property
    def render(self) -> RenderComponent:
        return service_of(self.daemon, "render", RenderComponent)

    @property
    def comp(self) -> TerminalsComponent:
        return service_of(self.daemon, "terminals", TerminalsComponent)

    def slate_share(self) -> float:
        """How much of the composited wall (the real canvas) is slate-coloured."""
        comp = self.render.compositors["main"]
        comp.wait_frame(comp.stats.frames)
        c = comp.canvas
        sy, su, sv = rgb_to_yuv(*SLATE_BG)
        near = (
            (np.abs(c.y[::2, ::2].astype(int) - sy) <= 2)
            & (np.abs(c.u.astype(int) - su) <= 2)
            & (np.abs(c.v.astype(int) - sv) <= 2)
        )
        return float(np.count_nonzero(near) / near.size)


@pytest.fixture
async def centre(tmp_path: Path) -> AsyncIterator[Centre]:
    async for c in run_centre(tmp_path, "127.0.0.1"):
        yield c


async def run_centre(tmp_path: Path, host: str) -> AsyncIterator[Centre]:
    raw = {
        "daemon": {"state_dir": str(tmp_path / "state"), "durability": "normal"},
        "http": {"host": host, "port": 0},
        "api": {"port": 0},
        "wall": {
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
        },
        "render": {"fps": 10, "labels": False, "sources": {"warm_s": 0}},
        "terminals": {"inactivity_s": 2.0, "audio": {"device": "centre_tap"}},
    }
    d = Daemon(parse_config(raw))
    task = asyncio.create_task(d.run())
    for _ in range(300):
        await asyncio.sleep(0.05)
        if d.runtime is not None and any(c.name == "http" for c in d._started):
            break
    rt = d.runtime
    assert rt is not None
    accounts = Accounts(rt.store)
    await accounts.add("op1", PASSWORD, Role.OPERATOR)
    await accounts.add("viewer1", PASSWORD, Role.VIEWER)
    grant = await Tokens(rt.store).issue(Actor("viewer1", via="api", session="s1"), 3600)
    api = next(c for c in rt.components if isinstance(c, ApiServer))
    client = await connect(api.url, account="op1", password=PASSWORD)
    c = Centre(
        d, f"http://{host}:{rt.http.port}", Terminals(rt.store), client, grant.token, api.url
    )
    rt.bus.subscribe(c.events.append)
    try:
        yield c
    finally:
        await client.close()
        d.request_stop()
        await asyncio.wait_for(task, 30)


async def publish(
    base: str, terminal: str, token: str, clip: Path, hz: float
) -> tuple[RTCPeerConnection, ClipTrack, OpusTrack]:
    pc = RTCPeerConnection(_ice())
    camera, mic = ClipTrack(clip), tone_track(hz)
    pc.addTransceiver(camera, direction="sendonly")
    pc.addTransceiver(mic, direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    async with aiohttp.ClientSession() as s:
        r = await s.post(
            f"{base}/whip/{terminal}",
            data=pc.localDescription.sdp,
            headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {token}"},
        )
        body = await r.text()
        assert r.status == 201, body
    await pc.setRemoteDescription(RTCSessionDescription(body, "answer"))
    return pc, camera, mic


async def heard_until_closed(centre: Centre, *mute: str) -> np.ndarray:
    """Mute ``mute``; once the silent device has closed (ALSA's file plugin has written
    all it buffered), what it played since it opened (each open truncates the file)."""
    for terminal in mute:
        await centre.client.call("terminal.mute", {"terminal": terminal})
    audio = centre.comp.audio
    assert audio is not None
    await wait_for(lambda: not audio.stats.device_open, 10, "the device to close")
    return np.fromfile(PLAYED, np.int16).reshape(-1, 2)


async def test_a_publisher_appears_on_the_wall_and_in_the_loudspeaker(
    centre: Centre, clip: Path
) -> None:
    token = centre.terminals.add("p1", "巡逻一组", Actor("test"))

    async def listed() -> bool:
        ids = [s["id"] for s in (await centre.client.call("source.list"))["sources"]]
        return "mobile/p1" in ids

    deadline = time.monotonic() + REFRESH_S * 3
    while not await listed():
        assert time.monotonic() < deadline, "mobile/p1 never listed"
        await asyncio.sleep(0.1)
    # The window shows the terminal before it publishes: the slate.
    await centre.client.call("layout.apply", {"name": "1x1", "sources": ["mobile/p1"]})
    await wait_for(lambda: centre.slate_share() > 0.6, 5, "the not-publishing slate")
    audio = await centre.client.call("terminal.audio")
    assert audio["heard"] == [{"terminal": "p1", "why": "fullscreen"}], audio

    published = time.monotonic()
    pc, camera, mic = await publish(centre.base, "p1", token, clip, 600)
    await wait_for(lambda: centre.slate_share() < 0.1, 10, "live video on the composited wall")
    live_after = time.monotonic() - published
    assert live_after < 8, live_after
    print(f"\nwall live {live_after:.2f} s after the WHIP answer")
    assert (await centre.client.call("source.get", {"source": "mobile/p1"}))["publishing"]

    # Heard in the centre: a window that covers the wall is followed.
    await asyncio.sleep(2.5)
    pcm = await heard_until_closed(centre, "p1")
    assert len(pcm) > RATE * 2, f"{len(pcm)} samples played in 2.5 s"
    (hz,) = peaks(pcm[RATE // 2 : -RATE // 4, 0], 1)
    assert abs(hz - 600) < 5, hz
    await centre.client.call("terminal.listen", {"terminal": "p1"})
    # And over WHEP: a viewer's audio carries the same voice.
    viewer = await whep_view(centre.base, "mobile/p1", centre.viewer_token, audio=True)
    await wait_for(lambda: len(viewer.audio) >= 100, 15, "the viewer's audio")
    # aiortc decodes to packed 16-bit stereo: L R L R ...; the left channel.
    assert viewer.audio[-1].format.name == "s16" and viewer.audio[-1].sample_rate == RATE
    heard = np.concatenate([f.to_ndarray()[0][::2] for f in viewer.audio[-75:]])
    (whep_hz,) = peaks(heard, 1)
    assert abs(whep_hz - 600) < 5, whep_hz
    await viewer.pc.close()

    # Decoded once, and only while a window shows it: one feed for the wall, none once
    # the window shows something else, one again when it comes back.
    pub = centre.comp.relay.publication("p1")
    assert pub is not None and len(pub.feeds) == 1
    (window,) = (await centre.client.call("wall.get"))["state"]["windows"]
    await centre.client.call("window.set_source", {"window": window["id"], "source": None})
    await wait_for(lambda: pub.feeds == [], 10, "the wall's decoder to stop")
    await centre.client.call("window.set_source", {"window": window["id"], "source": "mobile/p1"})
    await wait_for(lambda: centre.slate_share() < 0.1, 10, "live again on the wall")
    assert len(pub.feeds) == 1

    # The phone vanishes without DELETE: the wall shows the offline slate within 5 s.
    camera.stop()
    mic.stop()
    gone = time.monotonic()
    await wait_for(lambda: centre.slate_share() > 0.6, 5, "the offline slate within 5 s")
    slate_after = time.monotonic() - gone
    print(f"offline slate {slate_after:.2f} s after the publisher went silent")
    await wait_for(lambda: centre.comp.relay.publication("p1") is None, 5, "unpublished")
    hub = centre.render.hub
    await wait_for(lambda: (hub.view("mobile/p1").error or "").startswith("终端离线"), 5, "why")
    assert "(inactive)" in (hub.view("mobile/p1").error or "")
    await pc.close()
    # And it comes back within seconds of publishing again.
    pc2, camera2, mic2 = await publish(centre.base, "p1", token, clip, 600)
    await wait_for(lambda: centre.slate_share() < 0.1, 10, "live again")
    camera2.stop()
    mic2.stop()
    await pc2.close()


async def test_commanders_choose_whom_they_hear(centre: Centre, clip: Path) -> None:
    t1 = centre.terminals.add("p1", "", Actor("test"))
    t2 = centre.terminals.add("p2", "", Actor("test"))
    await asyncio.sleep(REFRESH_S * 1.5)
    pubs = [
        await publish(centre.base, "p1", t1, clip, 600),
        await publish(centre.base, "p2", t2, clip, 1000),
    ]
    relay = centre.comp.relay
    await wait_for(
        lambda: all((p := relay.publication(t)) is not None and p.frames > 5 for t in ("p1", "p2")),
        20,
        "both publishing",
    )
    # Nothing on the wall, nobody asked: silence (the device is not even opened).
    audio = centre.comp.audio
    assert audio is not None
    assert (await centre.client.call("terminal.audio"))["heard"] == []
    await asyncio.sleep(1.0)
    assert audio.stats.opens == 0 and audio.stats.frames_in == 0
    # p1 full screen (followed), p2 asked for: both mixed.
    await centre.client.call("layout.apply", {"name": "1x1", "sources": ["mobile/p1"]})
    info = await centre.client.call("terminal.listen", {"terminal": "p2"})
    assert info["heard"] == [
        {"terminal": "p2", "why": "listen"},
        {"terminal": "p1", "why": "fullscreen"},
    ]
    assert [e.type for e in centre.events].count("terminal.audio") >= 2
    await asyncio.sleep(2.5)
    pcm = await heard_until_closed(centre, "p1", "p2")
    found = sorted(peaks(pcm[RATE // 2 : -RATE // 4, 0], 2))
    assert abs(found[0] - 600) < 5 and abs(found[1] - 1000) < 5, found
    # p1 stays muted though its window is full screen; p2 asked for again: p2 alone.
    info = await centre.client.call("terminal.listen", {"terminal": "p2"})
    assert info["heard"] == [{"terminal": "p2", "why": "listen"}] and info["muted"] == ["p1"]
    await asyncio.sleep(2.5)
    pcm = await heard_until_closed(centre, "p2")
    part = pcm[RATE // 2 : -RATE // 4, 0].astype(float)
    (only,) = peaks(part.astype(np.int16), 1)
    assert abs(only - 1000) < 5, only
    spectrum = np.abs(np.fft.rfft(part * np.hanning(len(part))))
    freqs = np.fft.rfftfreq(len(part), 1 / RATE)
    assert spectrum[np.argmin(np.abs(freqs - 600))] < spectrum.max() / 30, "p1 is silent"
    assert audio.stats.opens == 2
    # Bad input: an unknown terminal, a hostile id; nothing heard changes.
    for bad, code in [("nobody", "not_found"), ("../p1", "invalid_field"), ("", "invalid_field")]:
        r = await centre.client.request("terminal.listen", {"terminal": bad})
        assert r["error"]["code"] == code, (bad, r)
    assert (await centre.client.call("terminal.audio"))["heard"] == []
    # A viewer may look but not choose.
    viewer = await connect(centre.api_url, account="viewer1", password=PASSWORD)
    try:
        r = await viewer.request("terminal.listen", {"terminal": "p1"})
        assert r["error"]["code"] == "not_permitted"
        assert (await viewer.call("terminal.audio"))["device"] == "centre_tap"
    finally:
        await viewer.close()
    for pc, camera, mic in pubs:
        camera.stop()
        mic.stop()
        await pc.close()


@pytest.fixture
def lan_address() -> Iterator[str]:
    """A LAN-like interface (a veth pair inside the namespace) with 10.99.0.1."""
    subprocess.run(
        ["ip", "link", "add", "lan0", "type", "veth", "peer", "name", "lan1"], check=True
    )
    subprocess.run(["ip", "addr", "add", "10.99.0.1/24", "dev", "lan0"], check=True)
    subprocess.run(["ip", "link", "set", "lan1", "up"], check=True)
    subprocess.run(["ip", "link", "set", "lan0", "up"], check=True)
    try:
        yield "10.99.0.1"
    finally:
        subprocess.run(["ip", "link", "del", "lan0"], check=False)


@pytest.fixture
async def lan_centre(tmp_path: Path, lan_address: str) -> AsyncIterator[Centre]:
    async for c in run_centre(tmp_path, lan_address):
        yield c


async def test_a_listener_on_one_interface_address_still_feeds_the_wall(
    lan_centre: Centre, clip: Path
) -> None:
    # The HTTP listener bound to one non-loopback address only (a centre's LAN address):
    # the wall's decoder reaches the terminal's feed at that address, and the feed, served
    # to this host only, recognises the daemon's own connection.
    centre = lan_centre
    token = centre.terminals.add("p1", "", Actor("test"))
    await asyncio.sleep(REFRESH_S * 1.5)
    await centre.client.call("layout.apply", {"name": "1x1", "sources": ["mobile/p1"]})
    pc, camera, mic = await publish(centre.base, "p1", token, clip, 600)
    await wait_for(lambda: centre.slate_share() < 0.1, 10, "live video via 10.99.0.1")
    rendition = centre.render.hub._slots["mobile/p1"].renditions[0]
    assert rendition.url.startswith("http://10.99.0.1:")
    camera.stop()
    mic.stop()
    await pc.close()
