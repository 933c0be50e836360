"""The ``stream`` output: a head or a whole wall, scaled, H.264 in MPEG-TS.

Network wall decoders (解码上墙) and the centre one level up pull streams; pushing RTSP
would need a media server on their side (field notes). So the default is to *serve*:
``GET /stream/{id}.ts`` on the daemon's HTTP listener is a continuous MPEG-TS that any
decoder, VLC, ffplay or an upper centre's recorder can pull, with no extra server. Many
decoders also take MPEG-TS over UDP (usually multicast): ``mode = "udp"`` pushes to a
``target`` host:port. Across networks SRT is the better protocol; the FFmpeg bundled
with PyAV has no libsrt, so ``mode = "srt"`` hands the TS to the system ``ffmpeg``
(Debian's has libsrt) which listens for a decoder to call (or calls a listener); the
relay is restarted when a caller leaves. RTSP serving is a later step.

One encoder per stream, however many viewers: libx264 ``ultrafast`` + ``zerolatency``,
I420 straight from the canvas (scaled in the compositor thread when the stream asks for
a smaller size), paced by its own thread at the stream's rate, repeating the last
picture while the wall stands still. In ``http`` mode it runs only while someone
watches; a viewer joining gets the stream from the next keyframe (forced at once), with
the tables (PAT/PMT) in front of it. A viewer too slow to take the stream is dropped
rather than allowed to hold the encoder back.
"""

from __future__ import annotations

import asyncio
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import av
import numpy as np
from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from wallctl.logs import get_logger
from wallctl.redact import redact
from wallctl.render.compositor import Compositor
from wallctl.render.config import StreamConfig
from wallctl.render.outputs.preview import scale_i420
from wallctl.wall import Head

log = get_logger("wallctl.render.stream")

# Chunks of TS queued for one HTTP viewer before it counts as too slow.
VIEWER_QUEUE = 512
IDLE_STOP_S = 3.0
RETRY_S = 3.0


@dataclass(eq=False)
class _Viewer:
    queue: asyncio.Queue[bytes | None]
    started: bool = False


@dataclass
class _Fanout:
    """Byte sink of the muxer (HTTP mode): passes TS bytes to the viewers' queues."""

    loop: asyncio.AbstractEventLoop
    viewers: set[_Viewer] = field(default_factory=set)
    bytes_out: int = 0
    dropped_viewers: int = 0

    def write(self, data: bytes) -> int:
        chunk = bytes(data)
        self.bytes_out += len(chunk)
        self.loop.call_soon_threadsafe(self._deliver, chunk, False)
        return len(chunk)

    def keyframe_next(self) -> None:
        self.loop.call_soon_threadsafe(self._deliver, b"", True)

    def flush(self) -> None:
        pass

    def _deliver(self, chunk: bytes, keyframe: bool) -> None:
        for v in list(self.viewers):
            if keyframe:
                v.started = True
            if not v.started or not chunk:
                continue
            try:
                v.queue.put_nowait(chunk)
            except asyncio.QueueFull:
                self.viewers.discard(v)
                self.dropped_viewers += 1
                v.queue.get_nowait()
                v.queue.put_nowait(None)


class StreamOutput:
    def __init__(self, config: StreamConfig, comp: Compositor) -> None:
        self.config = config
        self.comp = comp
        self.head: Head | None = None
        if config.head is not None:
            heads = {h.id: h for h in comp.wall.heads}
            if config.head not in heads:
                raise ValueError(f"render.streams {config.id!r}: wall has no head {config.head!r}")
            self.head = heads[config.head]
            sw, sh = comp.canvas.head_size(self.head)
        else:
            sw, sh = comp.wall.width, comp.wall.height
        w = config.width or sw
        w -= w % 2
        h = round(w * sh / sw)
        h += h & 1
        self.width, self.height = w, h
        self._lock = threading.Lock()
        self._latest: np.ndarray | None = None
        self._want_frame = False
        self._taken = 0.0
        self._dirty = True
        self._force_key = threading.Event()
        self._stop = threading.Event()
        self._active = threading.Event()
        self._thread: threading.Thread | None = None
        self.fanout: _Fanout | None = None
        self.relay: SrtRelay | None = None
        self.frames = 0
        self.late = 0
        self.error: str | None = None
        self.encode_ms = 0.0

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        self.fanout = _Fanout(asyncio.get_running_loop())
        self.comp.add_tap(self)
        if self.config.mode in ("udp", "srt"):
            self._active.set()
        self._thread = threading.Thread(
            target=self._run, name=f"stream-{self.config.id}", daemon=True
        )
        self._thread.start()

    async def stop(self) -> None:
        self.comp.remove_tap(self)
        self._stop.set()
        self._active.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 5.0)
            self._thread = None
        if self.relay is not None:
            await asyncio.to_thread(self.relay.close)
            self.relay = None
        if self.fanout is not None:
            for v in list(self.fanout.viewers):
                v.queue.put_nowait(None)
            self.fanout.viewers.clear()

    # --- compositor thread -----------------------------------------------------------------

    def on_frame(self, comp: Compositor, frame_no: int, changed: bool) -> None:
        if not self._active.is_set():
            return
        now = time.monotonic()
        with self._lock:
            self._dirty = self._dirty or changed
            if not self._want_frame:
                if not self._dirty and self._latest is not None:
                    return
                # A stream slower than the compositor takes only the pictures it sends
                # (a change skipped here is taken with the next frame).
                if now - self._taken < 0.9 / self.config.fps:
                    return
            self._want_frame = False
            self._dirty = False
            self._taken = now
        canvas = comp.canvas
        if self.head is not None:
            y, u, v = canvas.head_image(self.head)
        else:
            y = canvas.y[: canvas.wall_height, : canvas.wall_width]
            u = canvas.u[: (canvas.wall_height + 1) // 2, : (canvas.wall_width + 1) // 2]
            v = canvas.v[: (canvas.wall_height + 1) // 2, : (canvas.wall_width + 1) // 2]
        buf = scale_i420(y, u, v, self.width, self.height)
        with self._lock:
            self._latest = buf

    # --- viewers (event loop) --------------------------------------------------------------

    def join(self) -> _Viewer:
        assert self.fanout is not None
        if len(self.fanout.viewers) >= self.config.max_viewers:
            raise web.HTTPServiceUnavailable(
                text=f"stream {self.config.id!r} has {self.config.max_viewers} viewers already\n"
            )
        v = _Viewer(asyncio.Queue(VIEWER_QUEUE))
        self.fanout.viewers.add(v)
        with self._lock:
            self._want_frame = True
        self._force_key.set()
        self._active.set()
        return v

    def leave(self, v: _Viewer) -> None:
        if self.fanout is not None:
            self.fanout.viewers.discard(v)

    @property
    def viewers(self) -> int:
        return len(self.fanout.viewers) if self.fanout is not None else 0

    # --- encoder thread ----------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            self._active.wait()
            if self._stop.is_set():
                break
            try:
                self._encode_session()
                self.error = None
            except Exception as e:
                self.error = str(e)
                log.exception("stream output failed", stream=self.config.id, reason=self.error)
                self._stop.wait(RETRY_S)

    def _open(self) -> Any:
        cfg = self.config
        if cfg.mode == "srt":
            if self.relay is None:
                assert cfg.target is not None
                self.relay = SrtRelay(cfg.id, srt_url(cfg), self._stop)
                self.relay.start()
            container = av.open(
                self.relay,
                "w",
                format="mpegts",
                buffer_size=1316 * 8,
                options={"flush_packets": "1"},
            )
        elif cfg.mode == "udp":
            assert cfg.target is not None
            url = f"udp://{cfg.target}?pkt_size=1316&ttl={cfg.ttl}"
            container = av.open(url, "w", format="mpegts")
        else:
            assert self.fanout is not None
            # Flushed after every frame: a viewer gets each picture as soon as it is encoded.
            container = av.open(
                self.fanout,
                "w",
                format="mpegts",
                buffer_size=1316 * 8,
                options={"flush_packets": "1"},
            )
        fps = Fraction(cfg.fps).limit_denominator(1001)
        stream = container.add_stream("libx264", rate=fps)
        stream.width = self.width
        stream.height = self.height
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = cfg.bitrate_kbps * 1000
        stream.codec_context.gop_size = max(1, round(cfg.fps * cfg.gop_s))
        stream.options = {
            "preset": "ultrafast",
            "tune": "zerolatency",
            # Constant-ish rate with a bounded buffer: decoders on a LAN want steadiness.
            "x264-params": f"vbv-maxrate={cfg.bitrate_kbps}:vbv-bufsize={cfg.bitrate_kbps}",
        }
        return container, stream, fps

    def _encode_session(self) -> None:
        cfg = self.config
        container, stream, fps = self._open()
        log.info(
            "stream encoding",
            stream=cfg.id,
            mode=cfg.mode,
            width=self.width,
            height=self.height,
            fps=cfg.fps,
        )
        period = 1.0 / cfg.fps
        index = 0
        idle_since: float | None = None
        next_t = time.monotonic()
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                if now < next_t:
                    self._stop.wait(next_t - now)
                    continue
                if cfg.mode == "http":
                    if self.viewers == 0:
                        idle_since = idle_since or now
                        if now - idle_since > IDLE_STOP_S:
                            self._active.clear()
                            break
                    else:
                        idle_since = None
                with self._lock:
                    buf = self._latest
                if buf is not None:
                    t0 = time.perf_counter()
                    frame = av.VideoFrame.from_ndarray(buf, format="yuv420p")
                    frame.pts = index
                    frame.time_base = 1 / fps
                    if self._force_key.is_set():
                        self._force_key.clear()
                        frame.pict_type = av.video.frame.PictureType.I
                    for packet in stream.encode(frame):
                        if packet.is_keyframe and self.fanout is not None:
                            self.fanout.keyframe_next()
                        container.mux(packet)
                    index += 1
                    self.frames += 1
                    ms = (time.perf_counter() - t0) * 1000
                    self.encode_ms = ms if self.frames == 1 else self.encode_ms * 0.95 + ms * 0.05
                next_t += period
                end = time.monotonic()
                if end > next_t + period:
                    missed = int((end - next_t) / period)
                    self.late += missed
                    next_t += missed * period
        finally:
            try:
                for packet in stream.encode(None):
                    container.mux(packet)
            except Exception:
                pass
            container.close()
            log.info("stream stopped encoding", stream=cfg.id)

    # --- HTTP ------------------------------------------------------------------------------------

    async def serve(self, request: web.Request) -> web.StreamResponse:
        if self.config.mode != "http":
            raise web.HTTPNotFound(
                text=f"stream {self.config.id!r} is sent over {self.config.mode.upper()}\n"
            )
        viewer = self.join()
        try:
            resp = web.StreamResponse(
                headers={"Content-Type": "video/mp2t", "Cache-Control": "no-cache, no-store"}
            )
            await resp.prepare(request)
            while True:
                chunk = await viewer.queue.get()
                if chunk is None:
                    break
                await asyncio.wait_for(resp.write(chunk), 10.0)
            return resp
        except (ConnectionError, TimeoutError):
            return web.StreamResponse()
        finally:
            self.leave(viewer)


def srt_url(cfg: StreamConfig) -> str:
    assert cfg.target is not None
    return (
        f"srt://{cfg.target}?mode={cfg.srt_mode}&latency={cfg.srt_latency_ms * 1000}&transtype=live"
    )


class SrtRelay:
    """Passes the muxed TS to a system ``ffmpeg`` that speaks SRT (copy, no re-encode).

    The muxer writes from the encoder thread into a bounded queue (full: chunks are
    dropped, the encoder never waits); a writer thread feeds ffmpeg's stdin. ffmpeg in
    listener mode waits for a caller and exits when it leaves: it is started again.
    """

    QUEUE = 128

    def __init__(self, name: str, url: str, stop: threading.Event) -> None:
        self.name = name
        self.url = url
        self._stop = stop
        self._closed = threading.Event()
        self._queue: queue.Queue[bytes] = queue.Queue(self.QUEUE)
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None
        self.dropped = 0
        self.restarts = 0
        self.error: str | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"srt-{self.name}", daemon=True)
        self._thread.start()

    # The muxer's file interface.
    def write(self, data: bytes) -> int:
        try:
            self._queue.put_nowait(bytes(data))
        except queue.Full:
            self.dropped += 1
        return len(data)

    def flush(self) -> None:
        pass

    def _run(self) -> None:
        ffmpeg = shutil.which("ffmpeg")
        while not (self._stop.is_set() or self._closed.is_set()):
            if ffmpeg is None:
                self.error = "SRT needs the system ffmpeg (Debian package ffmpeg)"
                self._closed.wait(RETRY_S)
                continue
            # A short probe: the stream is ours and known; FFmpeg's default would hold the
            # listener back for 5 s of video.
            args = [ffmpeg, "-v", "error", "-probesize", "65536", "-analyzeduration", "300000"]
            args += ["-f", "mpegts", "-i", "pipe:0", "-c", "copy"]
            args += ["-f", "mpegts", self.url]
            self._proc = subprocess.Popen(
                args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            stdin = self._proc.stdin
            assert stdin is not None
            try:
                while self._proc.poll() is None and not self._closed.is_set():
                    try:
                        chunk = self._queue.get(timeout=0.5)
                    except queue.Empty:
                        continue
                    stdin.write(chunk)
                    stdin.flush()
            except (BrokenPipeError, OSError):
                pass
            self._end_proc()
            if not self._closed.is_set():
                self.restarts += 1
                log.info("srt relay restarting", stream=self.name, restarts=self.restarts)
                self._closed.wait(0.5)

    def _end_proc(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        proc.wait(5)
        err = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
        if err:
            self.error = redact(err.splitlines()[-1])[:200]
        for f in (proc.stdin, proc.stderr):
            if f is not None:
                try:
                    f.close()
                except OSError:
                    pass
        self._proc = None

    def close(self) -> None:
        self._closed.set()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()
        if self._thread is not None:
            self._thread.join(5)


class StreamOutputs:
    def __init__(self, configs: list[StreamConfig], compositors: dict[str, Compositor]) -> None:
        self.outputs: dict[str, StreamOutput] = {}
        for cfg in configs:
            comp = compositors.get(cfg.wall)
            if comp is None:
                raise ValueError(f"render.streams {cfg.id!r}: no wall {cfg.wall!r} is composited")
            self.outputs[cfg.id] = StreamOutput(cfg, comp)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/stream/{id}.ts", self._serve)

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        out = self.outputs.get(request.match_info["id"])
        if out is None:
            raise web.HTTPNotFound(text=f"no stream {request.match_info['id'][:64]!r}\n")
        return await out.serve(request)

    async def start(self) -> None:
        for out in self.outputs.values():
            await out.start()

    async def stop(self) -> None:
        for out in self.outputs.values():
            await out.stop()

    def problems(self) -> list[str]:
        return [f"stream {sid}: {o.error}" for sid, o in self.outputs.items() if o.error]

    def metrics(self) -> Iterable[GaugeMetricFamily | CounterMetricFamily]:
        frames = CounterMetricFamily("wallctl_stream_frames", "Frames encoded", labels=["stream"])
        late = CounterMetricFamily(
            "wallctl_stream_late_frames", "Frame slots the encoder missed", labels=["stream"]
        )
        viewers = GaugeMetricFamily("wallctl_stream_viewers", "HTTP viewers", labels=["stream"])
        enc = GaugeMetricFamily(
            "wallctl_stream_encode_ms", "Time to encode a frame (moving average)", labels=["stream"]
        )
        for sid, o in self.outputs.items():
            frames.add_metric([sid], o.frames)
            late.add_metric([sid], o.late)
            viewers.add_metric([sid], o.viewers)
            enc.add_metric([sid], o.encode_ms)
        return [frames, late, viewers, enc]
