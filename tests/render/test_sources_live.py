"""Sources against real peers: files made by ffmpeg and a gst-rtsp-server RTSP server."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

import av
import pytest

from wallctl.bus import BusEvent, EventBus
from wallctl.config import SourceConfig
from wallctl.render.frames import SourcePhase
from wallctl.render.sourcehub import SourceHub

from .conftest import Media, RtspServer, wait_for

Hubs = Callable[..., SourceHub]
Servers = Callable[..., RtspServer]


def src(sid: str, kind: str, url: str, **kw: Any) -> SourceConfig:
    return SourceConfig.model_validate({"id": sid, "name": sid, "kind": kind, "url": url, **kw})


def live(hub: SourceHub, sid: str, timeout: float = 10.0) -> Any:
    try:
        return wait_for(
            lambda: (v := hub.view(sid)).phase is SourcePhase.LIVE and v.frame is not None and v,
            timeout=timeout,
        )
    except AssertionError:
        raise AssertionError(f"{sid} not live: {hub.view(sid)} {hub.source_stats(sid)}") from None


async def poll(predicate: Callable[[], bool], within_s: float = 10.0) -> None:
    """wait_for on the event loop (the bus delivers events there)."""
    deadline = time.monotonic() + within_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def test_rtsp_source_goes_live_with_stats_and_events(
    hub_factory: Hubs, rtsp_server: Servers
) -> None:
    srv = rtsp_server({"cam": "test:320x180@25"})
    bus = EventBus()
    events: list[BusEvent] = []
    bus.subscribe(events.append)

    async def run() -> SourceHub:
        hub = hub_factory([src("cam", "rtsp", srv.url("cam"))], bus=bus)
        await hub.start()
        hub.demand("wall:main", {"cam": (640, 360)})
        assert hub.view("cam").phase is SourcePhase.CONNECTING
        await poll(lambda: hub.view("cam").phase is SourcePhase.LIVE)
        await asyncio.sleep(1.5)  # a second of pictures for the rates
        return hub

    hub = asyncio.run(run())
    v = hub.view("cam")
    assert v.phase is SourcePhase.LIVE and v.frame is not None
    assert (v.frame.width, v.frame.height) == (320, 180)
    (row,) = hub.stats()
    assert row["codec"] == "h264" and (row["width"], row["height"]) == (320, 180)
    assert 15 <= row["fps"] <= 30, row
    assert row["bitrate_bps"] > 10_000 and row["age_s"] < 1.0
    assert row["reconnects"] == 0 and row["holders"] == ["wall:main"]
    phases = [e.data["phase"] for e in events if e.type == "source.state"]
    assert phases[:2] == ["connecting", "live"], phases
    assert all(e.category == "source" for e in events)


@pytest.mark.parametrize("auth", ["basic", "digest"])
def test_rtsp_credentials_udp_and_tcp(hub_factory: Hubs, rtsp_server: Servers, auth: str) -> None:
    # Two mounts: gst-rtsp-server will not add a UDP client to a shared media that a TCP
    # client prepared (it answers 5XX), which is the server's limit, not the decoder's.
    srv = rtsp_server(
        {"cam": "test:320x180@25", "cam2": "test:320x180@25"},
        user="admin",
        password="pa ss@1",
        auth=auth,
    )
    hub = hub_factory(
        [
            src("tcp", "rtsp", srv.url("cam"), username="admin", password="pa ss@1"),
            src(
                "udp",
                "rtsp",
                srv.url("cam2"),
                username="admin",
                password="pa ss@1",
                rtsp_transport="udp",
            ),
        ]
    )
    hub.demand("wall:main", {"tcp": (320, 180), "udp": (320, 180)})
    live(hub, "tcp")
    live(hub, "udp")


def test_wrong_rtsp_password_says_so_without_the_password(
    hub_factory: Hubs, rtsp_server: Servers, caplog: pytest.LogCaptureFixture
) -> None:
    srv = rtsp_server({"cam": "test:320x180@25"}, user="admin", password="right")
    bus = EventBus()
    events: list[BusEvent] = []
    bus.subscribe(events.append)
    secret = "Wr0ngSecret"

    async def run() -> SourceHub:
        hub = hub_factory(
            [src("cam", "rtsp", srv.url("cam"), username="admin", password=secret)], bus=bus
        )
        await hub.start()
        hub.demand("wall:main", {"cam": (320, 180)})
        await poll(lambda: hub.view("cam").phase is SourcePhase.FAILED)
        await asyncio.sleep(1.0)  # a few retries, each logged
        return hub

    with caplog.at_level(logging.DEBUG):
        hub = asyncio.run(run())
    v = hub.view("cam")
    assert v.phase is SourcePhase.FAILED
    assert v.error is not None
    assert "authentication failed" in v.error and "wrong username or password" in v.error
    assert "'admin'" in v.error
    (row,) = hub.stats()
    assert row["reconnects"] >= 2  # it keeps retrying, with backoff
    # ...and says so once, not at every retry (the rest is debug).
    failed = [r for r in caplog.records if r.getMessage() == "source stream failed"]
    assert len(failed) > len([r for r in failed if r.levelno == logging.WARNING]) == 1
    everything = [v.error, repr(row), caplog.text, repr(events)]
    everything += [repr(getattr(r, "wallctl_fields", "")) for r in caplog.records]
    for text in everything:
        assert secret not in text
    assert any(e.data["phase"] == "failed" for e in events)


def test_unreachable_and_silent_hosts_fail_and_close_promptly(hub_factory: Hubs) -> None:
    # A port that refuses, and a listener that accepts but never answers (a hung camera).
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        refused_port = s.getsockname()[1]
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        hub = hub_factory(
            [
                src("refused", "rtsp", f"rtsp://127.0.0.1:{refused_port}/x"),
                src("silent", "rtsp", f"rtsp://127.0.0.1:{silent.getsockname()[1]}/x"),
            ],
            open_timeout_s=1.5,
            read_timeout_s=1.5,
        )
        hub.demand("wall:main", {"refused": (320, 180), "silent": (320, 180)})
        v = wait_for(lambda: (v := hub.view("refused")).phase is SourcePhase.FAILED and v)
        assert v.error == f"connection refused by rtsp://127.0.0.1:{refused_port}"
        v = wait_for(lambda: (v := hub.view("silent")).phase is SourcePhase.FAILED and v)
        assert "no answer" in (v.error or "")
        # While the silent host hangs an open, close() still returns within the timeouts.
        time.sleep(0.3)
        t0 = time.monotonic()
        hub.close()
        assert time.monotonic() - t0 < 5.0
        assert hub.decoder_threads() == 0
    finally:
        silent.close()


def test_resolution_change_mid_stream(hub_factory: Hubs, media: Media) -> None:
    hub = hub_factory([src("rc", "file", str(media.res_change), loop=False)])
    hub.demand("wall:main", {"rc": (640, 360)})
    first = live(hub, "rc").frame
    assert (first.width, first.height) == (320, 180)
    later = wait_for(
        lambda: (f := hub.view("rc").frame) is not None and f.width == 640 and f, timeout=10
    )
    assert later.height == 360 and later.u.shape == (180, 320)
    row = hub.source_stats("rc")
    assert row is not None and (row["width"], row["height"]) == (640, 360)


def test_corrupted_packets_do_not_stop_the_picture(hub_factory: Hubs, media: Media) -> None:
    assert media.corrupt.read_bytes() != media.ts_640.read_bytes()
    hub = hub_factory([src("bad", "file", str(media.corrupt))])
    hub.demand("wall:main", {"bad": (640, 360)})
    live(hub, "bad")
    seq0 = hub.view("bad").frame.seq  # type: ignore[union-attr]
    time.sleep(2.0)
    v = hub.view("bad")
    assert v.phase is SourcePhase.LIVE
    assert v.frame is not None and v.frame.seq >= seq0 + 20


def test_file_loops_at_its_own_rate(hub_factory: Hubs, media: Media) -> None:
    # With B-frames: the pictures held for reordering at the end are shown before the loop.
    clip = media.h264("short_bf.mp4", 320, 180, 1, ("-bf", "3", "-preset", "medium"))
    with av.open(str(clip)) as c:
        assert c.streams.video[0].codec_context.has_b_frames
    hub = hub_factory([src("f", "file", str(clip))])
    hub.demand("wall:main", {"f": (480, 270)})
    live(hub, "f")
    time.sleep(2.5)  # past the 1 s file's end twice
    row = hub.source_stats("f")
    assert row is not None and row["phase"] == "live"
    # Paced at 25 fps, not decoded as fast as the CPU allows.
    assert 40 <= row["frames_decoded"] <= 90, row


def test_no_video_track(hub_factory: Hubs, media: Media, rtsp_server: Servers) -> None:
    srv = rtsp_server({"radio": f"audio:{media.audio_only}"})
    hub = hub_factory(
        [src("file", "file", str(media.audio_only)), src("rtsp", "rtsp", srv.url("radio"))]
    )
    hub.demand("wall:main", {"file": (320, 180), "rtsp": (320, 180)})
    for sid in ("file", "rtsp"):
        v = wait_for(lambda sid=sid: (v := hub.view(sid)).phase is SourcePhase.FAILED and v)
        assert v.error == "no video track in the stream (audio only?)", sid


def test_source_stops_and_returns_live_within_3_s(hub_factory: Hubs, rtsp_server: Servers) -> None:
    srv = rtsp_server({"cam": "test:320x180@25"})
    hub = hub_factory([src("cam", "rtsp", srv.url("cam"))])
    hub.demand("wall:main", {"cam": (640, 360)})
    live(hub, "cam")
    srv.stop()
    lost_at = time.time()
    v = wait_for(lambda: (v := hub.view("cam")).phase is SourcePhase.NO_SIGNAL and v, timeout=6)
    # The slate can say since when: the last picture's time, just before the loss.
    assert v.last_frame_at is not None and lost_at - 1.5 < v.last_frame_at <= lost_at + 0.1
    assert v.frame is not None  # the last picture is kept (the compositor chooses a slate)
    time.sleep(2.0)  # gone for a while: the decoder keeps retrying
    assert hub.view("cam").phase is SourcePhase.NO_SIGNAL
    seq = hub.view("cam").frame.seq  # type: ignore[union-attr]
    srv.start()
    back = time.monotonic()
    wait_for(
        lambda: (v := hub.view("cam")).phase is SourcePhase.LIVE and v.frame.seq > seq,  # type: ignore[union-attr]
        timeout=8,
    )
    took = time.monotonic() - back
    assert took <= 3.0, f"live again {took:.2f} s after the source returned"
    assert hub.source_stats("cam")["reconnects"] >= 1  # type: ignore[index]


def test_one_decoder_per_source_whatever_the_holders(hub_factory: Hubs, media: Media) -> None:
    hub = hub_factory([src("f", "file", str(media.h264_320))])
    hub.demand("wall:main", {"f": (480, 270)})
    hub.demand("wall:side", {"f": (640, 360)})
    hub.demand("preview", {"f": (160, 90)})
    live(hub, "f")
    assert hub.decoder_threads() == 1
    assert hub.source_stats("f")["holders"] == ["preview", "wall:main", "wall:side"]  # type: ignore[index]


def test_warm_decoder_is_reused_then_stops(hub_factory: Hubs, media: Media) -> None:
    hub = hub_factory([src("f", "file", str(media.h264_320))], warm_s=1.5)
    hub.demand("wall:main", {"f": (480, 270)})
    live(hub, "f")
    hub.demand("wall:main", {})
    time.sleep(0.5)
    # Back within the warm time: the same decoder, the picture is there at once.
    hub.demand("wall:main", {"f": (480, 270)})
    v = hub.view("f")
    assert v.phase is SourcePhase.LIVE and v.frame is not None
    assert hub.source_stats("f")["frames_decoded"] > 10  # type: ignore[index]
    hub.demand("wall:main", {})
    wait_for(lambda: hub.view("f").phase is SourcePhase.IDLE, timeout=6)
    wait_for(lambda: hub.decoder_threads() == 0, timeout=6)


def test_rendition_switch_at_keyframe_without_a_gap(
    hub_factory: Hubs, media: Media, rtsp_server: Servers
) -> None:
    srv = rtsp_server({"main": f"loop:{media.h264_640}", "sub": f"loop:{media.h264_320}"})
    cam = src(
        "cam",
        "rtsp",
        srv.url("main"),
        renditions=[{"name": "sub", "url": srv.url("sub"), "width": 320, "height": 180}],
    )
    hub = hub_factory([cam], downscale_factor=16)
    hub.demand("wall:main", {"cam": (320, 180)})
    v = live(hub, "cam")
    assert v.frame.width == 320 and hub.source_stats("cam")["rendition"] == "sub"  # type: ignore[index]
    # The window grows past the sub-stream: the main stream starts, the sub keeps
    # feeding until the main's first picture; no view in between lacks a picture.
    seen: list[tuple[str, int, int]] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            v = hub.view("cam")
            f = v.frame
            seen.append((v.phase.value, f.width if f else 0, f.seq if f else -1))
            time.sleep(0.005)

    t = threading.Thread(target=watch)
    t.start()
    try:
        hub.demand("wall:main", {"cam": (1280, 720)})
        wait_for(lambda: (f := hub.view("cam").frame) is not None and f.width == 640, timeout=10)
        time.sleep(0.3)
    finally:
        stop.set()
        t.join()
    assert all(phase == "live" and width > 0 for phase, width, _ in seen), set(seen)
    seqs = [s for _, _, s in seen]
    assert seqs == sorted(seqs)
    widths = [w for _, w, _ in seen]
    first_big = widths.index(640)
    assert set(widths[:first_big]) == {320} and set(widths[first_big:]) == {640}
    assert hub.source_stats("cam")["rendition"] == "main"  # type: ignore[index]
    wait_for(lambda: hub.decoder_threads() == 1, timeout=8)  # the sub-stream stopped


def test_thumbnails_decode_keyframes_only_and_stay_live(hub_factory: Hubs, media: Media) -> None:
    hub = hub_factory([src("f", "file", str(media.h264_640))], keyframes_only_max=(320, 180))
    hub.demand("thumbs", {"f": (160, 90)})
    live(hub, "f")
    time.sleep(3.0)
    row = hub.source_stats("f")
    assert row is not None and row["keyframes_only"] is True
    assert row["fps"] <= 2.0, row  # one keyframe a second
    assert hub.view("f").phase is SourcePhase.LIVE  # GOP-rate pictures are not "no signal"
    # Much larger than the thumbnail: scaled down in the decoder's thread.
    f = hub.view("f").frame
    assert f is not None and (f.width, f.height) == (160, 90)
    # A big window joins: every picture again, at the next keyframe.
    hub.demand("wall:main", {"f": (640, 360)})
    wait_for(lambda: hub.source_stats("f")["fps"] >= 15, timeout=6)  # type: ignore[index]
    assert hub.source_stats("f")["keyframes_only"] is False  # type: ignore[index]


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_100_demand_changes_in_a_second_leak_nothing(
    hub_factory: Hubs, media: Media, rtsp_server: Servers
) -> None:
    files = [media.h264_320, media.h264_640]
    sources = [src(f"f{i}", "file", str(files[i % 2])) for i in range(5)]
    sources += [
        SourceConfig.model_validate({"id": f"p{i}", "name": "p", "kind": "test_pattern"})
        for i in range(2)
    ]
    # RTSP cameras too: decoders stopped mid-handshake and renditions switched mid-way.
    srv = rtsp_server({"main": f"loop:{media.h264_640}", "sub": f"loop:{media.h264_320}"})
    sub = [{"name": "sub", "url": srv.url("sub"), "width": 320, "height": 180}]
    sources += [src(f"r{i}", "rtsp", srv.url("main"), renditions=sub) for i in range(2)]
    ids = [s.id for s in sources]
    threads0, fds0 = threading.active_count(), _fds()
    hub = hub_factory(sources, warm_s=0.3)
    rng = random.Random(4)
    t0 = time.monotonic()
    last: dict[str, tuple[int, int]] = {}
    for i in range(100):
        last = {sid: (rng.choice([160, 320, 640]), 180) for sid in rng.sample(ids, 3)}
        if i == 99:  # the last layout: a camera on its main stream among them
            last = {"r0": (640, 360), "f1": (640, 360), "p0": (320, 180)}
        hub.demand("wall:main", last)
        time.sleep(max(0.0, t0 + (i + 1) * 0.01 - time.monotonic()))
    assert time.monotonic() - t0 < 3.0
    assert hub.holders() == {"wall:main": last}
    for sid in last:
        live(hub, sid)
    wait_for(lambda: hub.source_stats("r0")["rendition"] == "main", timeout=8)  # type: ignore[index]
    # Once the warm time passes only the last layout's sources decode.
    wait_for(lambda: {r["source"] for r in hub.stats() if r["active"]} == set(last), timeout=8)
    wait_for(lambda: hub.decoder_threads() == sum(1 for s in last if s[0] in "fr"), timeout=8)
    hub.close()
    assert hub.decoder_threads() == 0
    wait_for(lambda: threading.active_count() <= threads0, timeout=5)
    wait_for(lambda: _fds() <= fds0, timeout=5)


def test_srt_through_the_system_ffmpeg_bridge(hub_factory: Hubs, media: Media) -> None:
    """PyAV's bundled FFmpeg has no SRT: the source is remuxed by Debian's ffmpeg."""
    from wallctl.render.bridge import needs_bridge

    assert needs_bridge("srt://127.0.0.1:9/x", None)
    assert not needs_bridge("rtsp://127.0.0.1:9/x", None)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    clip = media.ts_640
    sender = subprocess.Popen(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1",
         "-i", str(clip), "-c", "copy", "-f", "mpegts", f"srt://127.0.0.1:{port}?mode=listener"],
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        hub = hub_factory(
            [
                src("srt", "url", f"srt://127.0.0.1:{port}?mode=caller"),
                src("gone", "url", "srt://127.0.0.1:9?mode=caller&passphrase=SrtSecret99"),
            ],
            open_timeout_s=6,
        )
        hub.demand("wall:main", {"srt": (640, 360), "gone": (640, 360)})
        v = live(hub, "srt")
        assert (v.frame.width, v.frame.height) == (640, 360)
        gone = wait_for(lambda: (g := hub.view("gone")).phase is SourcePhase.FAILED and g, 15)
        assert gone.error and "SrtSecret99" not in gone.error
        assert "srt://127.0.0.1:9" in gone.error
        t0 = time.monotonic()
        hub.close()  # kills the bridge processes: no read stays blocked
        assert time.monotonic() - t0 < 3.0 and hub.decoder_threads() == 0
    finally:
        sender.kill()
        sender.wait(5)


def test_file_without_loop_ends_on_its_last_picture(hub_factory: Hubs, media: Media) -> None:
    hub = hub_factory([src("f", "file", str(media.h264("one_s.mp4", 320, 180, 1)), loop=False)])
    hub.demand("wall:main", {"f": (640, 360)})
    live(hub, "f")
    v = wait_for(lambda: (v := hub.view("f")).phase is SourcePhase.NO_SIGNAL and v, timeout=6)
    assert v.error == "the file ended" and v.frame is not None
    time.sleep(1.0)
    row = hub.source_stats("f")
    assert row is not None and row["frames_decoded"] == 25 and row["reconnects"] == 0


def test_rtmp_live_stream(hub_factory: Hubs, media: Media) -> None:
    """ffmpeg as an RTMP server (listen mode) pushing a live FLV stream."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1",
         "-i", str(media.ts_640), "-c", "copy", "-f", "flv", "-listen", "1",
         f"rtmp://127.0.0.1:{port}/live/cam"],
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        hub = hub_factory([src("rtmp", "url", f"rtmp://127.0.0.1:{port}/live/cam")])
        hub.demand("wall:main", {"rtmp": (640, 360)})
        v = live(hub, "rtmp")
        assert (v.frame.width, v.frame.height) == (640, 360)
        time.sleep(1.5)
        row = hub.source_stats("rtmp")
        assert row is not None and row["codec"] == "h264" and 15 <= row["fps"] <= 32, row
        hub.close()
    finally:
        server.kill()
        server.wait(5)


def test_hls_over_http_plays_at_its_own_rate(hub_factory: Hubs, media: Media) -> None:
    import functools
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    hls = media.dir / "hls"
    hls.mkdir(exist_ok=True)
    playlist = hls / "index.m3u8"
    if not playlist.exists():
        media.make(
            "hls/index.m3u8",
            "-i", str(media.ts_640), "-c", "copy", "-f", "hls", "-hls_time", "1",
            "-hls_list_size", "0", "-hls_playlist_type", "vod",
        )  # fmt: skip

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(hls)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/index.m3u8"
        hub = hub_factory([src("hls", "url", url)])
        hub.demand("wall:main", {"hls": (640, 360)})
        v = live(hub, "hls")
        assert (v.frame.width, v.frame.height) == (640, 360)
        time.sleep(2.0)
        row = hub.source_stats("hls")
        assert row is not None and row["codec"] == "h264"
        # Paced: about 25 pictures a second, not the whole playlist in a burst.
        assert 15 <= row["fps"] <= 32 and row["frames_decoded"] <= 90, row
        hub.close()
        # HTTP-FLV (an FLV file over HTTP) takes the same path.
        (hls / "clip.flv").write_bytes(
            media.make("clip.flv", "-i", str(media.ts_640), "-c", "copy").read_bytes()
        )
        flv = f"http://127.0.0.1:{server.server_address[1]}/clip.flv"
        hub = hub_factory([src("flv", "url", flv)])
        hub.demand("wall:main", {"flv": (640, 360)})
        assert live(hub, "flv").frame.width == 640
        time.sleep(1.0)
        assert hub.source_stats("flv")["frames_decoded"] <= 60  # type: ignore[index]
    finally:
        server.shutdown()
        server.server_close()


def test_v4l2_goes_through_the_bridge_and_names_a_missing_device(hub_factory: Hubs) -> None:
    from wallctl.render.bridge import FfmpegBridge, needs_bridge

    # PyAV's FFmpeg has no V4L2 demuxer; Debian's ffmpeg does.
    assert needs_bridge("/dev/video0", "v4l2")
    cmd = FfmpegBridge("/dev/video9", "v4l2", {"input_format": "mjpeg"}).command("ffmpeg")
    assert cmd[cmd.index("-f") : cmd.index("-i") + 2] == [
        "-f", "v4l2", "-input_format", "mjpeg", "-i", "/dev/video9",
    ]  # fmt: skip
    assert cmd[-3:] == ["-f", "nut", "pipe:1"] and "-map" in cmd and "copy" in cmd
    hub = hub_factory([src("cap", "v4l2", "/dev/video-none", options={"input_format": "mjpeg"})])
    hub.demand("wall:main", {"cap": (1920, 1080)})
    v = wait_for(lambda: (v := hub.view("cap")).phase is SourcePhase.FAILED and v, timeout=10)
    assert "/dev/video-none" in (v.error or "") and "No such file" in (v.error or "")


def test_hostile_servers_fail_cleanly_and_disturb_nobody(hub_factory: Hubs, media: Media) -> None:
    """A port that answers garbage to RTSP and HTTP: a reason, no crash, others unharmed."""
    garbage = socket.socket()
    garbage.bind(("127.0.0.1", 0))
    garbage.listen(16)
    stop = threading.Event()

    def serve() -> None:
        garbage.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = garbage.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(1)
                try:
                    conn.recv(4096)
                    conn.sendall(b"\x00\xffRTSP/9.9 999 WHAT\r\nCSeq: x\r\n\r\n" + os.urandom(4096))
                except OSError:
                    pass

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    port = garbage.getsockname()[1]
    try:
        hub = hub_factory(
            [
                src("rtsp", "rtsp", f"rtsp://127.0.0.1:{port}/x"),
                src("http", "url", f"http://127.0.0.1:{port}/x.ts"),
                src("good", "file", str(media.h264_640)),
            ]
        )
        hub.demand("wall:main", {"rtsp": (640, 360), "http": (640, 360), "good": (640, 360)})
        for sid in ("rtsp", "http"):
            v = wait_for(lambda sid=sid: (v := hub.view(sid)).phase is SourcePhase.FAILED and v)
            assert v.error and f"127.0.0.1:{port}" in v.error, v.error
        assert live(hub, "good").phase is SourcePhase.LIVE
        t0 = time.monotonic()
        hub.close()
        assert time.monotonic() - t0 < 8 and hub.decoder_threads() == 0
    finally:
        stop.set()
        t.join(2)
        garbage.close()


def test_a_broken_sub_stream_falls_back_to_the_main_stream(
    hub_factory: Hubs, media: Media, rtsp_server: Servers
) -> None:
    srv = rtsp_server({"main": f"loop:{media.h264_640}"})
    cam = src(
        "cam",
        "rtsp",
        srv.url("main"),
        renditions=[{"name": "sub", "url": srv.url("missing"), "width": 320, "height": 180}],
    )
    hub = hub_factory([cam])
    hub.demand("wall:main", {"cam": (300, 170)})
    # The sub-stream is chosen first and fails with its reason...
    v = wait_for(lambda: (v := hub.view("cam")).phase is SourcePhase.FAILED and v)
    assert "stream not found" in (v.error or "")
    # ...then the main stream is shown rather than a failure slate.
    v = live(hub, "cam", timeout=15)
    row = hub.source_stats("cam")
    assert row is not None and row["rendition"] == "main"
    assert (row["width"], row["height"]) == (640, 360)
    # Twice the window's size: scaled down in the decoder's thread to what it needs.
    assert (v.frame.width, v.frame.height) == (302, 170)
