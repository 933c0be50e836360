"""JPEG pictures of the walls and sources, encoded once however many people watch.

A wall's preview is a tap on its compositor: for each picture width someone is watching
(an MJPEG viewer) or waiting for (a snapshot), the compositor thread scales the canvas
down into a fresh I420 buffer when the canvas changed and the width's rate allows, and
hands it to the encoder thread. Encoding (I420 -> BGR -> JPEG) never runs on the event
loop nor on the compositor thread, never queues (a width still being encoded skips
frames), and stops when the last viewer leaves. The event loop only passes finished
JPEG bytes to the viewers of that width.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import cv2
import numpy as np

from wallctl.logs import get_logger
from wallctl.render.canvas import to_bgr
from wallctl.render.compositor import Compositor, lower_thread_priority
from wallctl.render.config import PreviewConfig
from wallctl.render.frames import Frame, FrameSupply, SourcePhase, SourceView
from wallctl.render.text import TextPainter, slate_lines

log = get_logger("wallctl.render.preview")

SIZE_STEP = 16
# A width nobody watched for this long forgets its last picture.
SIZE_IDLE_S = 30.0
THUMBS_HOLDER = "thumbs"


class PreviewBusy(Exception):
    """Too many viewers or picture sizes at once; the reason says which."""


def snap_width(width: int, cap: int) -> int:
    """Widths are encoded in steps of 16 pixels so near-equal requests share a picture."""
    w = min(width, cap)
    return max(SIZE_STEP, w - w % SIZE_STEP)


def height_for(width: int, src_w: int, src_h: int) -> int:
    h = max(2, round(width * src_h / src_w))
    return h + (h & 1)


def encode_jpeg(y: np.ndarray, u: np.ndarray, v: np.ndarray, quality: int) -> bytes:
    ok, data = cv2.imencode(".jpg", to_bgr(y, u, v), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return bytes(data)


def scale_i420(y: np.ndarray, u: np.ndarray, v: np.ndarray, width: int, height: int) -> np.ndarray:
    """The planes scaled to width x height, as one contiguous I420 buffer."""
    out = np.empty((height * 3 // 2, width), np.uint8)
    oy = out[:height]
    flat = out[height:].reshape(-1)
    q = (height // 2) * (width // 2)
    ou = flat[:q].reshape(height // 2, width // 2)
    ov = flat[q:].reshape(height // 2, width // 2)
    shrink = y.shape[1] > 2 * width
    interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    cv2.resize(y, (width, height), dst=oy, interpolation=interp)
    cv2.resize(u, (width // 2, height // 2), dst=ou, interpolation=interp)
    cv2.resize(v, (width // 2, height // 2), dst=ov, interpolation=interp)
    return out


@dataclass
class SizeState:
    """One picture width of one wall."""

    width: int
    height: int
    loop: asyncio.AbstractEventLoop
    watchers: dict[int, float] = field(default_factory=dict)  # viewer token -> fps
    oneshots: int = 0
    jpeg: bytes | None = None
    seq: int = 0
    busy: bool = False
    last_encode: float = 0.0
    changed: bool = True
    idle_since: float = field(default_factory=time.monotonic)
    waiter: asyncio.Future[None] | None = None

    @property
    def fps(self) -> float:
        return max(self.watchers.values(), default=0.0)

    @property
    def wanted(self) -> bool:
        return bool(self.watchers) or self.oneshots > 0

    def next_picture(self) -> asyncio.Future[None]:
        if self.waiter is None or self.waiter.done():
            self.waiter = self.loop.create_future()
        return self.waiter


class WallPreview:
    """The tap on one compositor plus the picture widths being watched."""

    def __init__(
        self,
        comp: Compositor,
        config: PreviewConfig,
        encoder: ThreadPoolExecutor,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.comp = comp
        self.config = config
        self._encoder = encoder
        self._loop = loop
        self._lock = threading.Lock()
        self.sizes: dict[int, SizeState] = {}
        self.encodes = 0
        self.encode_ms = 0.0
        self._tokens = 0

    @property
    def wall_id(self) -> str:
        return self.comp.wall.id

    def _size(self, width: int) -> SizeState:
        """Under the lock: the state for a snapped width, made if allowed."""
        st = self.sizes.get(width)
        if st is None:
            now = time.monotonic()
            for w, s in list(self.sizes.items()):
                if not s.wanted and not s.busy and now - s.idle_since > SIZE_IDLE_S:
                    del self.sizes[w]
            active = sum(1 for s in self.sizes.values() if s.wanted or s.busy)
            if active >= self.config.max_sizes:
                raise PreviewBusy(
                    f"{active} preview sizes of wall {self.wall_id!r} are being encoded "
                    f"(max {self.config.max_sizes}): ask for one of "
                    + ", ".join(str(w) for w, s in sorted(self.sizes.items()) if s.wanted)
                )
            h = height_for(width, self.comp.wall.width, self.comp.wall.height)
            st = self.sizes[width] = SizeState(width, h, self._loop)
        return st

    def watch(self, width: int, fps: float) -> tuple[SizeState, int]:
        with self._lock:
            st = self._size(width)
            self._tokens += 1
            st.watchers[self._tokens] = fps
            return st, self._tokens

    def unwatch(self, st: SizeState, token: int) -> None:
        with self._lock:
            st.watchers.pop(token, None)
            if not st.wanted:
                st.idle_since = time.monotonic()

    async def snapshot(self, width: int, wait_s: float = 3.0) -> bytes:
        """A JPEG of the wall as it is now (the last one, when nothing changed since)."""
        with self._lock:
            st = self._size(width)
            if st.jpeg is not None and not st.changed and not st.busy:
                return st.jpeg
            st.oneshots += 1
            seq = st.seq
        try:
            async with asyncio.timeout(wait_s):
                while st.seq == seq or st.jpeg is None:
                    await st.next_picture()
                jpeg: bytes = st.jpeg
            return jpeg
        finally:
            with self._lock:
                st.oneshots -= 1
                if not st.wanted:
                    st.idle_since = time.monotonic()

    # --- compositor thread -------------------------------------------------------------

    def on_frame(self, comp: Compositor, frame_no: int, changed: bool) -> None:
        now = time.monotonic()
        jobs = []
        with self._lock:
            for st in self.sizes.values():
                if changed:
                    st.changed = True
                if not st.wanted or st.busy:
                    continue
                if not st.changed and st.jpeg is not None:
                    continue
                if st.oneshots == 0 and st.jpeg is not None and now - st.last_encode < 1 / st.fps:
                    continue
                st.busy = True
                st.changed = False
                st.last_encode = now
                jobs.append(st)
        c = comp.canvas
        cy = c.y[: c.wall_height, : c.wall_width]
        cu = c.u[: (c.wall_height + 1) // 2, : (c.wall_width + 1) // 2]
        cv = c.v[: (c.wall_height + 1) // 2, : (c.wall_width + 1) // 2]
        for st in jobs:
            buf = scale_i420(cy, cu, cv, st.width, st.height)
            self._encoder.submit(self._encode, st, buf)

    # --- encoder thread ----------------------------------------------------------------

    def _encode(self, st: SizeState, buf: np.ndarray) -> None:
        t0 = time.perf_counter()
        try:
            ok, data = cv2.imencode(
                ".jpg",
                cv2.cvtColor(buf, cv2.COLOR_YUV2BGR_I420),
                [cv2.IMWRITE_JPEG_QUALITY, self.config.quality],
            )
            jpeg = bytes(data) if ok else None
        except Exception:
            log.exception("preview encode failed", wall=self.wall_id)
            jpeg = None
        ms = (time.perf_counter() - t0) * 1000
        with self._lock:
            st.busy = False
            self.encodes += 1
            self.encode_ms = ms if self.encodes == 1 else self.encode_ms * 0.9 + ms * 0.1
        if jpeg is not None:
            self._loop.call_soon_threadsafe(self._publish, st, jpeg)

    def _publish(self, st: SizeState, jpeg: bytes) -> None:
        st.jpeg = jpeg
        st.seq += 1
        if st.waiter is not None and not st.waiter.done():
            st.waiter.set_result(None)
        st.waiter = None

    def viewers(self) -> int:
        with self._lock:
            return sum(len(s.watchers) for s in self.sizes.values())


@dataclass
class _Thumb:
    seq: int
    arrived: float
    phase: str
    jpeg: bytes


class PreviewHub:
    """Every wall's preview, the source thumbnails, and the bounds on both."""

    def __init__(
        self,
        config: PreviewConfig,
        supply: FrameSupply,
        source_ids: Callable[[], set[str]],
        text: TextPainter,
    ) -> None:
        self.config = config
        self.supply = supply
        self.source_ids = source_ids
        self.text = text
        self.walls: dict[str, WallPreview] = {}
        # Previews are for people at desks: they yield to the wall's own threads.
        self._encoder = ThreadPoolExecutor(
            max_workers=2,
            thread_name_prefix="preview-jpeg",
            initializer=lower_thread_priority,
            initargs=(5,),
        )
        self._viewers = 0
        self._thumb_until: dict[str, tuple[tuple[int, int], float]] = {}
        self._thumbs: dict[tuple[str, int], _Thumb] = {}
        self._thumb_jobs: dict[tuple[str, int], asyncio.Future[_Thumb]] = {}
        self._expiry: asyncio.Task[None] | None = None
        self.thumb_encodes = 0

    def attach(self, comp: Compositor, loop: asyncio.AbstractEventLoop) -> WallPreview:
        wp = WallPreview(comp, self.config, self._encoder, loop)
        self.walls[comp.wall.id] = wp
        comp.add_tap(wp)
        return wp

    def configure(self, config: PreviewConfig) -> None:
        self.config = config
        for wp in self.walls.values():
            wp.config = config

    async def start(self) -> None:
        self._expiry = asyncio.create_task(self._expire_thumbs(), name="preview-thumbs")

    async def stop(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            await asyncio.gather(self._expiry, return_exceptions=True)
            self._expiry = None
        for wp in self.walls.values():
            wp.comp.remove_tap(wp)
        self.supply.demand(THUMBS_HOLDER, {})
        await asyncio.to_thread(self._encoder.shutdown, True)

    # --- viewers -----------------------------------------------------------------------

    def admit(self) -> None:
        if self._viewers >= self.config.max_viewers:
            raise PreviewBusy(
                f"{self._viewers} preview viewers already (max {self.config.max_viewers})"
            )
        self._viewers += 1

    def leave(self) -> None:
        self._viewers -= 1

    @property
    def viewers(self) -> int:
        return self._viewers

    # --- thumbnails ----------------------------------------------------------------------

    async def thumbnail(self, source: str, width: int) -> tuple[bytes, str]:
        """(JPEG, phase) of one source's newest picture, or of its slate."""
        height = height_for(width, 16, 9)
        self._hold_thumb(source, (width, height))
        deadline = time.monotonic() + 2.5
        view = self.supply.view(source)
        # A cold source gets a moment to show its first picture before we answer a slate.
        while (
            view.frame is None
            and view.phase in (SourcePhase.IDLE, SourcePhase.CONNECTING)
            and time.monotonic() < deadline
        ):
            await asyncio.sleep(0.05)
            view = self.supply.view(source)
        key = (source, width)
        frame = view.frame if view.phase is SourcePhase.LIVE else None
        seq = frame.seq if frame is not None else -1
        arrived = frame.arrived if frame is not None else 0.0
        cached = self._thumbs.get(key)
        if cached is not None and (cached.seq, cached.arrived, cached.phase) == (
            seq,
            arrived,
            view.phase.value,
        ):
            return cached.jpeg, cached.phase
        job = self._thumb_jobs.get(key)
        if job is None:
            loop = asyncio.get_running_loop()
            job = loop.create_future()
            self._thumb_jobs[key] = job
            try:
                thumb = await loop.run_in_executor(
                    self._encoder, self._encode_thumb, view, frame, width
                )
                self._thumbs[key] = thumb
                job.set_result(thumb)
            except Exception as e:
                job.set_exception(e)
                raise
            finally:
                del self._thumb_jobs[key]
                if not job.done():
                    job.cancel()
            return thumb.jpeg, thumb.phase
        thumb = await asyncio.shield(job)
        return thumb.jpeg, thumb.phase

    def _encode_thumb(self, view: SourceView, frame: Frame | None, width: int) -> _Thumb:
        if frame is not None:
            h = height_for(width, frame.width, frame.height)
            buf = scale_i420(frame.y, frame.u, frame.v, width, h)
            bgr = cv2.cvtColor(buf, cv2.COLOR_YUV2BGR_I420)
            ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, self.config.quality])
            if not ok:
                raise RuntimeError("JPEG encoding failed")
            self.thumb_encodes += 1
            return _Thumb(frame.seq, frame.arrived, view.phase.value, bytes(data))
        h = height_for(width, 16, 9)
        phase = view.phase.value
        lines = slate_lines(view.name, phase, view.last_frame_at, view.error)
        patch = self.text.slate_picture(width, h, lines)
        jpeg = encode_jpeg(patch.y, patch.u, patch.v, self.config.quality)
        self.thumb_encodes += 1
        return _Thumb(-1, 0.0, phase, jpeg)

    def _hold_thumb(self, source: str, size: tuple[int, int]) -> None:
        until = time.monotonic() + self.config.thumb_hold_s
        old = self._thumb_until.get(source)
        if old is not None and old[0] >= size:
            self._thumb_until[source] = (old[0], until)
            return
        self._thumb_until[source] = (max(old[0], size) if old else size, until)
        self._demand_thumbs()

    def _demand_thumbs(self) -> None:
        self.supply.demand(THUMBS_HOLDER, {s: v[0] for s, v in self._thumb_until.items()})

    async def _expire_thumbs(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            gone = [s for s, (_, until) in self._thumb_until.items() if until < now]
            if gone:
                for s in gone:
                    del self._thumb_until[s]
                    for key in [k for k in self._thumbs if k[0] == s]:
                        del self._thumbs[key]
                self._demand_thumbs()
