"""One stream decoded by PyAV in a worker thread, reopened with backoff when it fails.

A ``DecodeSession`` owns one rendition of one source: it opens the URL (credentials are
put into it here and nowhere else), demuxes, decodes to I420 and hands each picture to
its owner (the source's slot in the SourceHub). Every blocking FFmpeg call runs under
PyAV's interrupt timeouts (open and read), so ``stop()`` returns within those bounds
even when a camera hangs mid-handshake. Errors become a sentence an operator can act
on, with no password in it. Inputs the bundled FFmpeg cannot open (SRT, V4L2) come in
through the system ffmpeg (wallctl.render.bridge).
"""

from __future__ import annotations

import errno
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote, urlsplit, urlunsplit

import av
import av.error
import numpy as np

from wallctl.config import SourceConfig
from wallctl.logs import get_logger
from wallctl.redact import MASK, redact
from wallctl.render.bridge import BridgeError, BridgeNoVideo, FfmpegBridge, needs_bridge
from wallctl.render.frames import Plane
from wallctl.render.renditions import Rendition
from wallctl.render.source_config import RenderSourcesConfig
from wallctl.render.source_stats import SourceStats

if TYPE_CHECKING:
    from wallctl.render.decode_pool import DecodePool

log = get_logger("wallctl.render.decoder")

# Demuxers of on-demand network media, played at their own rate when they have a length.
PACED_FORMATS = frozenset({"hls", "mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "flv", "mpegts"})
# What a step yields to be parked until stopped (a file that ended and does not loop).
FOREVER = float("inf")
# A local file on the decode pool is decoded up to AHEAD_S before its pictures are due,
# and sleeps until its next picture is due within AHEAD_WAKE_S: five pictures a turn
# instead of one. Decoding a source's pictures back to back finds its reference picture
# and decoder state still in the core's cache: measured here, 0.89 ms instead of 1.03 ms
# a 540p picture (about 13 % less decode CPU), and a fifth of the wake-ups. The pictures
# wait in the source's slot and become current at their time (SourceSlot.view), so
# nothing is shown early; the AHEAD_WAKE_S still queued when a file's turn comes cover
# the pool serving every other file's turn first (36 files: about 100 ms). Never for
# live streams: that would be latency.
AHEAD_S = 0.32
AHEAD_WAKE_S = 0.12
# Pictures larger than this (after any downscale) are decoded just in time: a queue of
# them would cost more memory than it is worth, and such a picture does not fit the
# cache that makes back-to-back decoding cheaper anyway.
AHEAD_MAX_PIXELS = 1280 * 720
# A picture's stream time maps to at most this far past the decoding lead (reordered
# pictures come out a few frames after their packets; bad timestamps are cut here).
MAX_REORDER_S = 0.5
# The frame period assumed for a stream that states no rate (the seam of a loop).
DEFAULT_PERIOD_S = 0.04
NETWORK_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "srt", "http", "https", "udp", "rtp", "tcp")


class NoVideoTrack(Exception):
    """The stream opened but carries no video (an audio-only file or feed)."""


class StreamEnded(Exception):
    """A live stream reached its end: the server closed it."""


class OpenTimeout(TimeoutError):
    """Opening took the whole open timeout (FFmpeg may report it as invalid data)."""


class ReadTimeout(TimeoutError):
    """No data arrived for the whole read timeout."""


@dataclass(frozen=True)
class StreamSpec:
    """Everything needed to open one rendition, secrets included (never log ``url``)."""

    source: str
    rendition: str
    url: str
    # The URL as it may be shown: credentials masked.
    shown: str
    format: str | None = None
    options: dict[str, str] = field(default_factory=dict)
    # Files are paced at their own frame rate and may loop; live streams are not paced.
    is_file: bool = False
    loop: bool = True
    username: str | None = None
    password: str | None = None


def with_credentials(url: str, username: str | None, password: str | None) -> str:
    """``url`` with ``username:password@`` as its userinfo (percent-encoded)."""
    if not username:
        return url
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    userinfo = quote(username, safe="")
    if password:
        userinfo += ":" + quote(password, safe="")
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{host}"))


def stream_spec(source: SourceConfig, rendition: Rendition, cfg: RenderSourcesConfig) -> StreamSpec:
    """How to open ``rendition`` of ``source``: URL, demuxer and options."""
    password = source.password.get_secret_value() if source.password else None
    url = rendition.url
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    options: dict[str, str] = {}
    fmt: str | None = None
    is_file = source.kind == "file" or (scheme in ("", "file") and source.kind != "v4l2")
    if source.kind == "v4l2":
        fmt = "v4l2"
    elif scheme in NETWORK_SCHEMES:
        # Low latency: a small probe. Not `fflags nobuffer`: it throws away the packets
        # read while probing, the first keyframe among them, so the first picture waits
        # a whole GOP (measured: 2.05 s instead of 0.25 s with a 2 s GOP). PyAV's own
        # timeouts bound every blocking call; FFmpeg's socket timeout backs them up.
        options["probesize"] = str(cfg.probesize)
        options["analyzeduration"] = str(cfg.analyzeduration_ms * 1000)
        if scheme in ("rtsp", "rtsps"):
            options["rtsp_transport"] = source.rtsp_transport
            # A backstop only: PyAV's interrupt fires first and says why (a timeout).
            backstop = max(cfg.open_timeout_s, cfg.read_timeout_s) + 1.0
            options["timeout"] = str(int(backstop * 1_000_000))
        elif scheme in ("http", "https"):
            options["reconnect"] = "0"  # we reconnect, with our backoff
    options.update(source.options)
    if scheme in ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https"):
        url = with_credentials(url, source.username, password)
    return StreamSpec(
        source=source.id,
        rendition=rendition.name,
        url=url,
        shown=redact(url),
        format=fmt,
        options=options,
        is_file=is_file,
        loop=source.loop,
        username=source.username,
        password=password,
    )


def shares_threads(spec: StreamSpec) -> bool:
    """Whether a session may run on the shared decode threads: a local file, whose reads
    return at once. Anything that can wait on a peer (network, device, the ffmpeg
    bridge) keeps a thread of its own so its waits hold up no other source."""
    if not spec.is_file or spec.format is not None:
        return False
    scheme = urlsplit(spec.url).scheme.lower() if "://" in spec.url else ""
    return scheme in ("", "file")


# --- errors an operator can act on ------------------------------------------------------


def describe_error(exc: BaseException, spec: StreamSpec, cfg: RenderSourcesConfig) -> str:
    """One sentence for the slate, the API and the logs; never the password."""
    target = _host_of(spec)
    if isinstance(exc, NoVideoTrack | BridgeNoVideo):
        text = "no video track in the stream (audio only?)"
    elif isinstance(exc, BridgeError):
        # ffmpeg's own last line usually starts with the (masked) URL already.
        said = str(exc)
        text = said if "://" in said or target in said else f"{said}: {target}"
    elif isinstance(exc, StreamEnded):
        text = "the stream ended"
    elif isinstance(exc, av.error.HTTPUnauthorizedError):
        if spec.username:
            text = (
                f"authentication failed: {target} refused user {spec.username!r} "
                "(wrong username or password)"
            )
        else:
            text = f"authentication required by {target}: configure username and password"
    elif isinstance(exc, av.error.HTTPForbiddenError):
        text = f"access forbidden by {target}"
    elif isinstance(exc, av.error.HTTPNotFoundError):
        text = f"stream not found on {target} (check the path)"
    elif isinstance(exc, ReadTimeout):
        text = f"no data from {target} for {cfg.read_timeout_s:g} s (stream stalled)"
    elif isinstance(exc, av.error.ExitError) or isinstance(exc, TimeoutError):
        text = f"no answer from {target} within {cfg.open_timeout_s:g} s (unreachable or hung)"
    elif isinstance(exc, av.error.ConnectionRefusedError):
        text = f"connection refused by {target}"
    elif isinstance(exc, av.error.FileNotFoundError | FileNotFoundError):
        text = f"not found: {target}"
    elif isinstance(exc, av.error.InvalidDataError):
        text = f"not a stream FFmpeg can read: {target} (invalid data)"
    elif isinstance(exc, OSError) and exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        text = f"{target} is unreachable (no route)"
    elif isinstance(exc, av.error.FFmpegError) or isinstance(exc, OSError):
        # The target last: redaction would take "host:port)" or "host:port:" for
        # "user:password".
        text = f"{exc.strerror or type(exc).__name__}: {target}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    return scrub(text, spec)


def scrub(text: str, spec: StreamSpec) -> str:
    text = redact(text)
    if spec.password:
        for secret in {spec.password, quote(spec.password, safe="")}:
            text = text.replace(secret, MASK)
    return text


def _host_of(spec: StreamSpec) -> str:
    if spec.is_file or spec.format == "v4l2":
        return spec.shown
    parts = urlsplit(spec.shown)
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}" if host else spec.shown


# --- backoff ------------------------------------------------------------------------------

# The server answered and said no: retrying fast will not help and may lock an account.
REFUSALS = (
    av.error.HTTPUnauthorizedError,
    av.error.HTTPForbiddenError,
    av.error.HTTPNotFoundError,
    NoVideoTrack,
    BridgeNoVideo,
)


class Backoff:
    """Capped exponential backoff with +-20 % jitter.

    A stream that has been live is retried quickly (``lost_s``) while it is simply gone
    (refused, unreachable, silent), however long that lasts, so a camera that reboots
    is back on the wall within a second or two of answering again: such attempts cost
    a connection attempt each. A server that answers and refuses (wrong password, no
    such stream) backs off up to ``max_s``, as does a stream that never opened: hammering
    a camera's login can lock the account.
    """

    def __init__(
        self,
        initial_s: float,
        max_s: float,
        *,
        lost_s: float = 0.5,
        lost_for_s: float = float("inf"),
        rng: random.Random | None = None,
    ) -> None:
        self.initial_s, self.max_s = initial_s, max_s
        self.lost_s, self.lost_for_s = lost_s, lost_for_s
        self.attempt = 0
        self.lost_at: float | None = None
        self._rng = rng or random.Random()

    def reset(self) -> None:
        self.attempt = 0

    def lost(self, now: float) -> None:
        self.lost_at = now
        self.attempt = 0

    def next_delay(self, now: float, *, refused: bool = False) -> float:
        base = min(self.max_s, self.initial_s * (2 ** min(self.attempt, 32)))
        self.attempt += 1
        if not refused and self.lost_at is not None and now - self.lost_at < self.lost_for_s:
            base = min(base, self.lost_s)
        return float(base * self._rng.uniform(0.8, 1.2))


# --- the session --------------------------------------------------------------------------


class SessionOwner(Protocol):
    """What a session reports to (the source's slot in the hub)."""

    stats: SourceStats

    def keyframes_only(self) -> bool: ...

    def output_size(self, width: int, height: int) -> tuple[int, int]: ...

    def offer(
        self,
        session: DecodeSession,
        y: Plane,
        u: Plane,
        v: Plane,
        pts: float | None,
        due: float | None = None,
    ) -> None:
        """A new picture; ``due`` (monotonic) when it is to be shown, None for at once."""
        ...

    def on_stream(self, session: DecodeSession, codec: str, width: int, height: int) -> None: ...

    def on_failure(self, session: DecodeSession) -> None: ...


class DecodeSession:
    """Decodes one rendition until stopped; reconnects on failure.

    The work is written as steps (``steps()``, a generator) that yield whenever the
    session has nothing to do until a given time (pacing a file, backing off before a
    retry). A session reading something that can block (a network stream, a device, the
    ffmpeg bridge) runs its steps in a thread of its own, so a camera that hangs holds up
    nothing else. A local file never blocks for long: its steps run on the hub's
    ``DecodePool``, a few threads taking turns over every such session (fewer threads
    contending for the GIL and the cores than one per source).
    """

    def __init__(
        self,
        spec: StreamSpec,
        cfg: RenderSourcesConfig,
        owner: SessionOwner,
        pool: DecodePool | None = None,
    ) -> None:
        self.spec = spec
        self.cfg = cfg
        self.owner = owner
        self._stop = threading.Event()
        self._done = threading.Event()
        self._started = False
        self.backoff = Backoff(cfg.backoff_initial_s, cfg.backoff_max_s)
        # Read by the slot (any thread): plain attributes, each written atomically.
        self.error: str | None = None
        self.failures = 0  # consecutive failed opens/reads since the last picture
        self.frames = 0
        self.opened = False
        self.codec_name = ""
        self._last_size = (0, 0)
        self._shown_pixels = 0  # of the last picture handed over (after any downscale)
        self._last_io = 0.0
        self._bridge: FfmpegBridge | None = None
        self._logged_error: str | None = None
        # The last failure was the server saying no (not its absence): retry slowly.
        self._refused = False
        self.pool = pool if pool is not None and shares_threads(spec) else None
        self._thread: threading.Thread | None = None
        if self.pool is None:
            self._thread = threading.Thread(
                target=self._run, name=f"decode-{spec.source}-{spec.rendition}", daemon=True
            )
        # The pool's bookkeeping: which of its queue entries for this session is current.
        self.pool_token = 0

    def start(self) -> None:
        self._started = True
        if self._thread is not None:
            self._thread.start()
        else:
            assert self.pool is not None
            self.pool.add(self)

    def stop(self) -> None:
        """Ask the session to end; it does within the open/read timeouts."""
        self._stop.set()
        bridge = self._bridge
        if bridge is not None:
            bridge.kill()  # ends a read blocked on its pipe at once
        if self.pool is not None:
            self.pool.wake(self)  # its next step sees the stop and ends

    def join(self, timeout: float | None = None) -> bool:
        if self._thread is not None:
            if self._started:
                self._thread.join(timeout)
            return not self._thread.is_alive()
        return not self._started or self._done.wait(timeout)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def alive(self) -> bool:
        if self._thread is not None:
            return self._thread.is_alive()
        return self._started and not self._done.is_set()

    def finished(self) -> None:
        """Called once when the steps have ended (by the thread or the pool)."""
        self._done.set()

    # --- the steps -------------------------------------------------------------------

    def _run(self) -> None:
        """A thread of its own: wait out each step's pause (or a stop)."""
        try:
            for until in self.steps():
                if until == FOREVER:
                    self._stop.wait()
                else:
                    delay = until - time.monotonic()
                    if delay > 0:
                        self._stop.wait(delay)
        finally:
            self.finished()

    def steps(self) -> Iterator[float]:
        """Open, decode, reconnect until stopped; yields the time to go on at."""
        first = True
        while not self._stop.is_set():
            if not first:
                self.owner.stats.on_reconnect()
            first = False
            had_frames = self.frames
            try:
                yield from self._open_and_decode()
            except StreamEnded:
                if self.spec.is_file and not self.spec.loop:
                    # A file that does not loop has simply ended: keep its last picture
                    # (the wall shows "no signal" after a while), do not replay it.
                    self.error = "the file ended"
                    while not self._stop.is_set():
                        yield FOREVER
                    break
                self.failures += 1
                self.error = describe_error(StreamEnded(), self.spec, self.cfg)
                self.backoff.lost(time.monotonic())
                self.owner.on_failure(self)
                if not self._stop.is_set():
                    log.warning(
                        "source stream ended",
                        source=self.spec.source,
                        rendition=self.spec.rendition,
                    )
            except Exception as e:  # every failure is retried; the reason is kept
                self._refused = isinstance(e, REFUSALS)
                self.failures += 1
                self.error = describe_error(e, self.spec, self.cfg)
                if self.frames > had_frames:
                    self.backoff.lost(time.monotonic())
                self.owner.on_failure(self)
                if not self._stop.is_set():
                    self._log_failure()
            finally:
                self.opened = False
            if self._stop.is_set():
                break
            delay = self.backoff.next_delay(time.monotonic(), refused=self._refused)
            yield time.monotonic() + delay

    def _log_failure(self) -> None:
        # A camera down all night must not fill the journal: a warning when the reason
        # is new, then one every tenth retry, the rest at debug level.
        if self.error != self._logged_error or self.failures % 10 == 0:
            self._logged_error = self.error
            level = log.warning
        else:
            level = log.debug
        level(
            "source stream failed",
            source=self.spec.source,
            rendition=self.spec.rendition,
            reason=self.error or "",
            failures=self.failures,
        )

    def _open(self) -> Any:
        timeout = (self.cfg.open_timeout_s, self.cfg.read_timeout_s)
        if needs_bridge(self.spec.url, self.spec.format):
            self._bridge = FfmpegBridge(self.spec.url, self.spec.format, self.spec.options)
            if self._stop.is_set():
                raise StreamEnded()
            return self._bridge.open(timeout)
        return av.open(
            self.spec.url,
            mode="r",
            format=self.spec.format,
            options=dict(self.spec.options),
            timeout=(self.cfg.open_timeout_s, self.cfg.read_timeout_s),
        )

    def _open_and_decode(self) -> Iterator[float]:
        started = time.monotonic()
        try:
            container = self._open()
        except (av.error.FFmpegError, BridgeError) as e:
            self._close_bridge()
            # An interrupted RTSP handshake surfaces as "invalid data": the clock tells.
            if time.monotonic() - started >= self.cfg.open_timeout_s * 0.9:
                raise OpenTimeout() from e
            raise
        try:
            if not container.streams.video:
                raise NoVideoTrack()
            stream = container.streams.video[0]
            cc = stream.codec_context
            self.codec_name = cc.name
            self._last_size = (0, 0)
            cc.thread_type = self.cfg.thread_type.upper()
            cc.thread_count = self.cfg.decoder_threads
            if self.cfg.low_delay and not self.spec.is_file:
                cc.flags |= av.codec.context.Flags.low_delay
            self.opened = True
            self._last_io = time.monotonic()
            try:
                yield from self._decode(container, stream)
            except av.error.FFmpegError as e:
                if time.monotonic() - self._last_io >= self.cfg.read_timeout_s * 0.9:
                    raise ReadTimeout() from e
                raise
            except StreamEnded:
                bridge = self._bridge
                if bridge is not None and not self._stop.is_set():
                    bridge.close()
                    raise bridge.failure() from None  # its own words say why it ended
                raise
        finally:
            container.close()
            self._close_bridge()

    def _close_bridge(self) -> None:
        bridge, self._bridge = self._bridge, None
        if bridge is not None:
            bridge.close()

    def _decode(self, container: Any, stream: Any) -> Iterator[float]:
        cc = stream.codec_context
        stats = self.owner.stats
        stopped = self._stop.is_set
        keyframes_only = False
        time_base = float(stream.time_base) if stream.time_base else None
        # Files and on-demand streams (an HLS playlist that ends) arrive as fast as they
        # are read: play them at their own rate. Live streams arrive in real time and are
        # never delayed. The clock: wall-clock time and stream time that set it.
        paced = bool(time_base) and (
            self.spec.is_file
            # A live RTMP/FLV stream reports a duration of 0.
            or (container.format.name in PACED_FORMATS and bool(container.duration))
        )
        # Local files on the pool are decoded a few pictures ahead, each handed over with
        # its presentation time (see AHEAD_S); anything else is shown as it is decoded.
        ahead = AHEAD_S if paced and self.pool is not None else 0.0
        wake_early = AHEAD_WAKE_S if ahead else 0.0
        rate = stream.average_rate or stream.guessed_rate
        period = 1.0 / float(rate) if rate else DEFAULT_PERIOD_S
        clock: tuple[float, float] | None = None
        # Where the clock goes on after a loop: one picture after the last one's time, so
        # the seam is as long as any other picture (and pictures decoded ahead before the
        # seam are not overtaken by the first ones after it).
        resume: float | None = None
        last_due = 0.0
        while not stopped():
            ended = True
            for packet in container.demux(stream):
                if stopped():
                    return
                size = packet.size
                if size == 0:
                    continue  # the flush packet at the end of input
                ended = False
                if paced:
                    # Paced by the demuxer's clock, not by decoded pictures: in
                    # keyframes-only mode most packets give no picture.
                    when = packet.dts
                    if when is None:
                        when = packet.pts
                    if when is not None:
                        clock, last_due = self._pace(clock, when * time_base, resume)
                        resume = None
                        if last_due - time.monotonic() > ahead:
                            yield last_due - wake_early
                            if stopped():
                                return
                now = time.monotonic()
                self._last_io = now
                stats.on_packet(size, now)
                want = self.owner.keyframes_only()
                if want != keyframes_only:
                    if want:
                        cc.skip_frame = "NONKEY"
                        keyframes_only = stats.keyframes_only = True
                    elif packet.is_keyframe:
                        # Back to every picture only at a keyframe: the skipped pictures
                        # cannot serve as references, so earlier would show broken blocks.
                        cc.skip_frame = "DEFAULT"
                        keyframes_only = stats.keyframes_only = False
                try:
                    frames = cc.decode(packet)
                except av.error.FFmpegError:
                    # A corrupt packet costs its picture, not the stream.
                    stats.on_dropped()
                    continue
                for frame in frames:
                    pts = frame.pts
                    at = pts * time_base if pts is not None and time_base else None
                    self._deliver(frame, at, _due(clock, at, now) if ahead else None)
                    if ahead and self._shown_pixels > AHEAD_MAX_PIXELS:
                        ahead = wake_early = 0.0  # large pictures: just in time
            if self.spec.is_file and self.spec.loop and not ended:
                # The pictures the decoder still holds (reordering) first, then back to
                # the start; the pacing clock goes on from the last picture's time.
                try:
                    for frame in cc.decode(None):
                        pts = frame.pts * time_base if frame.pts is not None and time_base else None
                        due = None
                        if pts is not None and paced:
                            clock, due = self._pace(clock, pts)
                            last_due = max(last_due, due)
                            if due - time.monotonic() > ahead:
                                yield due - wake_early
                                if stopped():
                                    return
                        self._deliver(frame, pts, due if ahead else None)
                except av.error.FFmpegError:
                    stats.on_dropped()
                container.seek(0)
                cc.flush_buffers()
                clock = None
                resume = last_due + period if paced else None
                continue
            raise StreamEnded()

    @staticmethod
    def _pace(
        clock: tuple[float, float] | None, pts: float, resume: float | None = None
    ) -> tuple[tuple[float, float], float]:
        """(the clock, the wall-clock time due) for a packet at stream time pts. A new
        clock starts now, or at ``resume`` (a loop's seam) when that is near."""
        now = time.monotonic()
        if clock is None:
            start = now if resume is None or not (-2.0 < resume - now < 1.0) else resume
            return (start, pts), start
        wall0, pts0 = clock
        due = wall0 + (pts - pts0)
        if due - now > 1.0 or now - due > 2.0:
            # A jump in the file's timestamps, or far behind (the machine stalled us):
            # restart the clock. A little behind, the next packets go without waiting
            # until the file is on time again.
            return (now, pts), now
        return clock, due

    def _deliver(self, frame: Any, pts: float | None, due: float | None) -> None:
        w, h = frame.width, frame.height
        tw, th = self.owner.output_size(w, h)
        self._shown_pixels = tw * th
        if (tw, th) != (w, h):
            # Area averaging: a bilinear downscale by 2x or more aliases fine detail.
            frame = frame.reformat(width=tw, height=th, format="yuv420p", interpolation="AREA")
        elif frame.format.name != "yuv420p":
            frame = frame.reformat(format="yuv420p")
        y, u, v = frame.planes[:3]
        if (w, h) != self._last_size:
            # First picture, or the stream changed resolution mid-way.
            self.owner.on_stream(self, self.codec_name, w, h)
            self._last_size = (w, h)
        self.frames += 1
        if self.failures:
            self.failures = 0
            self.error = None
            self._logged_error = None
            self.backoff.reset()
        now = time.monotonic()
        self.owner.stats.on_frame(now)
        self.owner.offer(self, _plane(y), _plane(u), _plane(v), pts, due)


def _due(clock: tuple[float, float] | None, at: float | None, now: float) -> float | None:
    """When the picture at stream time ``at`` is to be shown (monotonic) by ``clock``."""
    if clock is None or at is None:
        return None
    return min(clock[0] + (at - clock[1]), now + AHEAD_S + MAX_REORDER_S)


def _plane(p: Any) -> Plane:
    """A plane of a decoded frame as a view of FFmpeg's own buffer, rows ``line_size``
    apart (no copy: copying every plane cost about a fifth of the decode CPU). The view
    keeps the frame alive, and a decoder never writes into a picture someone still
    holds (FFmpeg's buffers are reference counted), so the pixels cannot change under a
    reader."""
    return np.ndarray((p.height, p.width), np.uint8, p, 0, (p.line_size, 1))
