"""The compositor: one wall's windows painted onto its canvas, at a steady frame rate.

One worker thread per wall (numpy and OpenCV release the GIL, so walls and decoders run
side by side and the event loop never waits on pixels). Each frame:

1. take the newest wall state and highlights handed over by the event loop (a layout
   switch lands here, at the next frame: warm sources show live video in that frame);
2. ask the frame supply for every shown source's view, once per source;
3. repaint only what changed: a window whose frame seq, slate, label or highlight
   changed; everything after a layout change;
4. hand the canvas to the taps (window output, preview, streams), which copy or scale
   what they need without blocking.

Windows are opaque rectangles painted bottom to top. A window nothing covers is painted
straight onto the canvas; one that another window overlaps (or that leaves the canvas)
keeps its own buffer, so when it changes, its rectangle is rebuilt from buffers in z
order without rescaling anyone else's picture.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, Protocol

import cv2

from wallctl.logs import get_logger
from wallctl.render.canvas import (
    BLACK,
    Canvas,
    Patch,
    Target,
    copy_plane,
    even_up,
    rgb_to_yuv,
    uncovered,
)
from wallctl.render.canvas_fit import bars, needed_size, place
from wallctl.render.frames import Frame, FrameSupply, Plane, SourcePhase, SourceView
from wallctl.render.text import (
    SLATE_BG,
    TextPainter,
    label_size_for,
    slate_lines,
    slate_origin,
)
from wallctl.wall import Rect, Wall
from wallctl.wallstate import WallState, Window

log = get_logger("wallctl.render.compositor")

ClockPosition = Literal["top-left", "top-right", "bottom-left", "bottom-right"]
HIGHLIGHT_RGB = (255, 196, 0)
# A frame warmer than this is still shown while its source reconnects.
WARM_FRAME_S = 2.0
LATE_WINDOW_S = 10.0


class CanvasTap(Protocol):
    """An output fed by a compositor. Called on the compositor's thread after every
    frame: copy or scale what is needed and return at once (never block, never wait
    on a client)."""

    def on_frame(self, comp: Compositor, frame_no: int, changed: bool) -> None: ...


@dataclass
class CompositorStats:
    frames: int = 0
    late_frames: int = 0
    repaints: int = 0
    full_repaints: int = 0
    paint_ms_last: float = 0.0
    paint_ms_avg: float = 0.0
    paint_ms_max: float = 0.0
    layout_switches: int = 0
    switch_ms_last: float = 0.0
    switch_ms_max: float = 0.0
    fps: float = 0.0
    tap_errors: int = 0

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in self.__dict__.items()}


@dataclass
class _VideoPlan:
    """How one window draws frames of one size: worked out once, used every frame."""

    size: tuple[int, int]  # the frame size it is for
    src_y: tuple[slice, slice]
    src_c: tuple[slice, slice]
    dst_y: Plane
    dst_u: Plane
    dst_v: Plane
    # None: the frame's part is exactly the destination's size (a copy, no scaling).
    interp_y: int | None
    interp_c: int | None
    bars: list[Rect]
    # The luma plane's shape it is for, (height, width): checked every frame.
    shape: tuple[int, ...] = ()


@dataclass
class _LabelPlan:
    text: str
    patch: Patch
    views: tuple[Plane, Plane, Plane]
    parts: tuple[Plane, Plane, Plane]


@dataclass
class _Win:
    window: Window
    direct: bool
    buf: Target | None
    key: object = None
    video: _VideoPlan | None = None
    label: _LabelPlan | None = None
    # What was drawn around the picture last time (label, highlight, bars): unchanged,
    # the bars need no new paint.
    frame_key: object = None
    # The window's rectangle, made once (Window.rect builds a new one on every call).
    rect: Rect = field(init=False)

    def __post_init__(self) -> None:
        self.rect = self.window.rect


class _Entry(NamedTuple):
    """What a window shows this frame."""

    key: object  # compared with the window's last key: different means repaint
    kind: str  # "video" | "slate" | "empty"
    what: object  # the Frame, the slate's lines, or None
    label: str
    highlighted: bool


@dataclass
class _Handover:
    """What the event loop hands the compositor thread, under the lock."""

    state: WallState | None = None
    state_at: float = 0.0
    highlights: set[str] = field(default_factory=set)
    generation: int = 0


_priority_warned = False


def raise_thread_priority(nice: int, what: str) -> bool:
    """Give the calling thread ``nice`` (Linux: per thread). False when not permitted
    (needs CAP_SYS_NICE or a systemd ``LimitNICE=``); said once in the log."""
    global _priority_warned
    if nice >= 0 or not hasattr(os, "setpriority"):
        return False
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
        return True
    except OSError as e:
        if not _priority_warned:
            _priority_warned = True
            log.warning(
                "cannot raise the priority of the render threads; frames may be late on a "
                "busy machine (grant CAP_SYS_NICE or LimitNICE= in the systemd unit)",
                thread=what,
                nice=nice,
                reason=e.strerror or str(e),
            )
        return False


def lower_thread_priority(by: int) -> None:
    """Make the calling thread nicer (always permitted): bulk work such as JPEG encoding."""
    if hasattr(os, "setpriority"):
        tid = threading.get_native_id()
        try:
            os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + by))
        except OSError:
            pass


def source_needs(state: WallState) -> dict[str, tuple[int, int]]:
    """Per source, the largest size any window of the state draws it at."""
    needs: dict[str, tuple[int, int]] = {}
    for w in state.windows:
        if w.source is None:
            continue
        nw, nh = needed_size(w.rect, w.crop)
        ow, oh = needs.get(w.source, (0, 0))
        needs[w.source] = (max(ow, nw), max(oh, nh))
    return needs


class Compositor:
    def __init__(
        self,
        wall: Wall,
        supply: FrameSupply,
        *,
        fps: float = 25.0,
        labels: bool = True,
        clock: ClockPosition | None = None,
        text: TextPainter | None = None,
        border_px: int = 6,
        nice: int = -10,
    ) -> None:
        self.wall = wall
        self.supply = supply
        self.canvas = Canvas(wall)
        self.text = text or TextPainter()
        self.stats = CompositorStats()
        self.fps = fps
        self.labels = labels
        self.clock = clock
        self.border_px = border_px
        # The paint thread runs ahead of the decoders: on a busy machine every runnable
        # thread gets an equal share, and a compositor waiting behind 16 decoders paints
        # a frame in 300 ms instead of 10 (measured in bench/render.py).
        self.nice = nice
        self.priority_applied: bool | None = None
        self.highlight_yuv = rgb_to_yuv(*HIGHLIGHT_RGB)
        self.slate_yuv = rgb_to_yuv(*SLATE_BG)
        self.frame_no = 0
        self.state: WallState | None = None
        self._wins: list[_Win] = []
        # What no window covers (painted black on a full repaint); None: the whole canvas.
        self._bare: list[Rect] | None = None
        # Window buffers of recent layouts, by rectangle: switching back and forth (a PiP
        # opened and closed) reuses them instead of allocating and faulting in new ones.
        self._spare_bufs: dict[Rect, Target] = {}
        self._highlights: set[str] = set()
        self._lock = threading.Lock()
        self._handover = _Handover()
        self._applied_generation = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._frame_done = threading.Condition()
        self._taps: list[CanvasTap] = []
        self._clock_text = ""
        self._clock_rect: Rect | None = None
        self._late_times: deque[float] = deque()
        self._fps_times: deque[float] = deque()
        self._last_frame_start = 0.0
        self._reset_requested = False
        self.heartbeat = time.monotonic()

    # --- from the event loop (thread-safe) ---------------------------------------------

    def set_state(self, state: WallState) -> None:
        """Show ``state`` from the next frame on (the newest one wins)."""
        with self._lock:
            h = self._handover
            h.state = state
            h.state_at = time.monotonic()
            h.generation += 1
        self._wake.set()

    def set_highlight(self, window_id: str, on: bool) -> None:
        with self._lock:
            if on:
                self._handover.highlights.add(window_id)
            else:
                self._handover.highlights.discard(window_id)
        self._wake.set()

    def highlighted(self) -> set[str]:
        with self._lock:
            return set(self._handover.highlights)

    def configure(
        self, *, fps: float | None = None, labels: bool | None = None, clock: object = ...
    ) -> None:
        """Change what can change live; takes effect with a full repaint next frame."""
        with self._lock:
            if fps is not None:
                self.fps = fps
            if labels is not None:
                self.labels = labels
            if clock is not ...:
                self.clock = clock  # type: ignore[assignment]
            self._reset_requested = True
        self._wake.set()

    def add_tap(self, tap: CanvasTap) -> None:
        with self._lock:
            self._taps = [*self._taps, tap]

    def remove_tap(self, tap: CanvasTap) -> None:
        with self._lock:
            self._taps = [t for t in self._taps if t is not tap]

    # --- the thread ----------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"compositor-{self.wall.id}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        self.priority_applied = raise_thread_priority(self.nice, f"compositor {self.wall.id}")
        next_t = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            if now < next_t:
                self._wake.wait(next_t - now)
                self._wake.clear()
                if self._stop.is_set():
                    break
                now = time.monotonic()
                if now < next_t:
                    # Woken early: a layout change is painted now, not at the next tick,
                    # unless the last frame was under half a period ago (a burst of
                    # switches must not multiply the frame rate).
                    if not self._pending_state():
                        continue
                    earliest = self._last_frame_start + 0.5 / self.fps
                    if now < earliest:
                        next_t = earliest
                        continue
                    next_t = now
            scheduled = next_t
            try:
                self.render_once()
            except Exception:
                log.exception("compositor frame failed", wall=self.wall.id)
            period = 1.0 / self.fps
            end = time.monotonic()
            next_t = scheduled + period
            if end > next_t:
                # Late: this frame ended after the next one was due. Skip the slots it
                # overran rather than rushing frames out to catch up.
                self.stats.late_frames += 1
                self._late_times.append(end)
                missed = int((end - next_t) / period) + 1
                next_t += missed * period
        log.info("compositor stopped", wall=self.wall.id)

    def _pending_state(self) -> bool:
        with self._lock:
            return self._handover.generation != self._applied_generation

    def late_recently(self, window_s: float = LATE_WINDOW_S) -> tuple[int, int]:
        """(late frames, frames) within the last ``window_s`` seconds."""
        cutoff = time.monotonic() - window_s
        while self._late_times and self._late_times[0] < cutoff:
            self._late_times.popleft()
        while self._fps_times and self._fps_times[0] < cutoff:
            self._fps_times.popleft()
        return len(self._late_times), len(self._fps_times)

    def wait_frame(self, after: int, timeout: float = 5.0) -> int:
        """Block until a frame numbered above ``after`` is done (tests, benchmarks)."""
        with self._frame_done:
            self._frame_done.wait_for(lambda: self.frame_no > after, timeout)
            return self.frame_no

    # --- one frame -------------------------------------------------------------------------

    def render_once(self) -> bool:
        """Paint one frame; True when any pixel changed."""
        t0 = time.monotonic()
        self._last_frame_start = t0
        self.heartbeat = t0
        with self._lock:
            h = self._handover
            new_state = h.state if h.generation != self._applied_generation else None
            state_at = h.state_at
            self._applied_generation = h.generation
            highlights = set(h.highlights)
            taps = self._taps
            reset = self._reset_requested
            self._reset_requested = False
        full = reset
        if new_state is not None and (
            self.state is None
            or new_state.windows != self.state.windows
            or new_state.wall != self.state.wall
        ):
            self._plan(new_state)
            full = True
        elif reset and self.state is not None:
            self._plan(self.state)  # the clock may have moved or appeared
        if new_state is not None:
            self.state = new_state
        self._highlights = highlights
        views = self._views()
        # What each window shows, worked out once: its key decides the repaint, the rest
        # is what the paint needs.
        entries = [self._entry(w, views) for w in self._wins]
        repainted: list[Rect] = []
        if full:
            # Black where no window will paint (the windows paint all of their own).
            for bare in self._bare if self._bare is not None else [self.canvas.extent]:
                self.canvas.fill(bare, BLACK)
            for w, e in zip(self._wins, entries, strict=True):
                self._paint(w, e)
                w.key = e.key
                if w.buf is not None:
                    self.canvas.blit_from(w.buf, w.rect)
            self.stats.full_repaints += 1
            repainted.append(self.canvas.extent)
        else:
            dirty = [
                i
                for i, (w, e) in enumerate(zip(self._wins, entries, strict=True))
                if w.key != e.key
            ]
            for i in dirty:
                w = self._wins[i]
                w.key = entries[i].key
                self._paint(w, entries[i], full=False)
                r = w.rect
                repainted.append(r)
                if w.buf is None:
                    continue
                self.canvas.blit_from(w.buf, r)
                for j in range(i + 1, len(self._wins)):
                    above = self._wins[j]
                    if not above.rect.intersects(r):
                        continue
                    if above.buf is None:
                        self._paint(above, entries[j])
                    else:
                        self.canvas.blit_from(above.buf, r)
            self.stats.repaints += len(dirty)
        self._draw_clock(full, repainted)
        changed = bool(repainted) or full
        t1 = time.monotonic()
        ms = (t1 - t0) * 1000
        s = self.stats
        s.frames += 1
        s.paint_ms_last = ms
        s.paint_ms_avg = ms if s.frames == 1 else s.paint_ms_avg * 0.95 + ms * 0.05
        s.paint_ms_max = max(s.paint_ms_max, ms)
        if new_state is not None:
            s.layout_switches += 1
            s.switch_ms_last = (t1 - state_at) * 1000
            s.switch_ms_max = max(s.switch_ms_max, s.switch_ms_last)
        self._fps_times.append(t1)
        while self._fps_times and self._fps_times[0] < t1 - LATE_WINDOW_S:
            self._fps_times.popleft()
        if len(self._fps_times) > 1:
            span = self._fps_times[-1] - self._fps_times[0]
            s.fps = (len(self._fps_times) - 1) / span if span > 0 else 0.0
        with self._frame_done:
            self.frame_no += 1
            self._frame_done.notify_all()
        for tap in taps:
            try:
                tap.on_frame(self, self.frame_no, changed)
            except Exception:
                s.tap_errors += 1
                if s.tap_errors < 10 or s.tap_errors % 1000 == 0:
                    log.exception("output tap failed", wall=self.wall.id, tap=repr(tap))
        return changed

    # --- planning ----------------------------------------------------------------------

    def _plan(self, state: WallState) -> None:
        stacked = state.stacked()
        canvas = Rect(0, 0, self.wall.width, self.wall.height)
        # Buffers of the same rectangles are reused (everything is repainted anyway):
        # allocating a full-wall buffer under a picture-in-picture costs milliseconds.
        spare = dict(self._spare_bufs)
        spare.update({w.rect: w.buf for w in self._wins if w.buf is not None})
        wins = []
        for i, w in enumerate(stacked):
            r = w.rect
            covered = any(o.rect.intersects(r) for o in stacked[i + 1 :])
            if not covered and canvas.contains(r):
                wins.append(_Win(w, True, None))
            else:
                buf = spare.pop(r, None)
                if buf is None:
                    ox, oy = r.x - (r.x & 1), r.y - (r.y & 1)
                    buf = Target(ox, oy, r.right - ox, r.bottom - oy)
                wins.append(_Win(w, False, buf))
        self._wins = wins
        self._bare = uncovered(canvas, [w.rect for w in stacked])
        # The buffers left over are kept for a switch back, newest first, up to a
        # canvas's worth of pixels.
        keep: dict[Rect, Target] = {}
        budget = self.canvas.width * self.canvas.height
        for r, buf in reversed(spare.items()):
            budget -= buf.width * buf.height
            if budget < 0:
                break
            keep[r] = buf
        self._spare_bufs = keep
        if self.clock is not None:
            size = max(16, min(48, self.wall.tile_h_px // 30))
            patch = self.text.clock(size)
            m = even_up(size)
            x = m if self.clock.endswith("left") else self.wall.width - patch.width - m
            y = m if self.clock.startswith("top") else self.wall.height - patch.height - m
            self._clock_rect = Rect(
                max(0, x - (x & 1)), max(0, y - (y & 1)), patch.width, patch.height
            )
        else:
            self._clock_rect = None
        self._clock_text = ""

    # --- content -------------------------------------------------------------------------

    def _views(self) -> dict[str, SourceView | None]:
        views: dict[str, SourceView | None] = {}
        for w in self._wins:
            sid = w.window.source
            if sid is None or sid in views:
                continue
            try:
                views[sid] = self.supply.view(sid)
            except Exception:  # an unknown or broken source shows a slate, never stops the wall
                views[sid] = None
        return views

    def _label(self, w: Window, view: SourceView | None) -> str:
        if not self.labels:
            return ""
        if w.label:
            return w.label
        if view is not None:
            return view.name
        return w.source or ""

    def _content(self, w: Window, view: SourceView | None) -> tuple[str, object]:
        """("video", frame) | ("slate", lines) | ("empty", None)."""
        if w.source is None:
            return "empty", None
        if view is None:
            return "slate", tuple(slate_lines(w.source, "unknown", None, None))
        frame = view.frame
        phase = view.phase
        if phase is SourcePhase.LIVE and frame is not None:
            return "video", frame
        if (
            phase in (SourcePhase.CONNECTING, SourcePhase.IDLE)
            and frame is not None
            and time.monotonic() - frame.arrived < WARM_FRAME_S
        ):
            return "video", frame
        shown_phase = phase.value
        if phase in (SourcePhase.CONNECTING, SourcePhase.IDLE) and view.last_frame_at is not None:
            shown_phase = "no_signal"
        error = view.error if phase is SourcePhase.FAILED else None
        return "slate", tuple(slate_lines(view.name, shown_phase, view.last_frame_at, error))

    def _entry(self, win: _Win, views: Mapping[str, SourceView | None]) -> _Entry:
        w = win.window
        view = views.get(w.source) if w.source else None
        kind, what = self._content(w, view)
        label = self._label(w, view) if kind != "slate" else ""
        highlighted = w.id in self._highlights
        if kind == "video":
            assert isinstance(what, Frame)
            shown: object = (what.seq, what.arrived, what.y.shape)
        else:
            shown = what
        return _Entry((kind, shown, label, highlighted), kind, what, label, highlighted)

    # --- painting ------------------------------------------------------------------------

    def _paint(self, win: _Win, e: _Entry, full: bool = True) -> None:
        t: Target = self.canvas if win.buf is None else win.buf
        r = win.rect
        kind, what, label, highlighted = e.kind, e.what, e.label, e.highlighted
        if kind == "video":
            assert isinstance(what, Frame)
            around = (label, highlighted)
            fresh = full or win.frame_key != around
            win.frame_key = around
            self._paint_video(t, win, what, fresh)
            if label:
                self._put_label(t, win, label)
            if highlighted:
                t.border(r, max(2, min(self.border_px, r.w // 20, r.h // 20)), self.highlight_yuv)
            return
        win.frame_key = None
        if kind == "slate":
            assert isinstance(what, tuple)
            t.fill(r, self.slate_yuv)
            patch = self.text.slate(r.w, r.h, what)
            ox, oy = r.x + (r.x & 1), r.y + (r.y & 1)
            dx, dy = slate_origin(r.right - ox, r.bottom - oy, patch)
            t.put_patch(patch, ox + dx, oy + dy, r)
        else:
            t.fill(r, BLACK)
            if label:
                self._put_label(t, win, label)
        if highlighted:
            t.border(r, max(2, min(self.border_px, r.w // 20, r.h // 20)), self.highlight_yuv)

    def _paint_video(self, t: Target, win: _Win, f: Frame, fresh: bool) -> None:
        """The picture into its window. The target always holds the whole window (a
        direct window lies inside the canvas; a buffer is the window's size)."""
        p = win.video
        if p is None or p.shape != f.y.shape:
            p = win.video = self._video_plan(t, win.window, f.width, f.height)
            p.shape = f.y.shape
            fresh = True
        if fresh:
            for b in p.bars:
                t.fill(b, BLACK)
        y, u, v = f.y[p.src_y], f.u[p.src_c], f.v[p.src_c]
        if p.interp_y is None:
            copy_plane(p.dst_y, y)
        else:
            cv2.resize(
                y, (p.dst_y.shape[1], p.dst_y.shape[0]), dst=p.dst_y, interpolation=p.interp_y
            )
        if p.interp_c is None:
            copy_plane(p.dst_u, u)
            copy_plane(p.dst_v, v)
        else:
            size = (p.dst_u.shape[1], p.dst_u.shape[0])
            cv2.resize(u, size, dst=p.dst_u, interpolation=p.interp_c)
            cv2.resize(v, size, dst=p.dst_v, interpolation=p.interp_c)

    @staticmethod
    def _video_plan(t: Target, w: Window, fw: int, fh: int) -> _VideoPlan:
        r = w.rect
        src, dest = place(fw, fh, r, w.fit, w.crop)
        src_y = (slice(src.y, src.bottom), slice(src.x, src.right))
        src_c = (slice(src.y // 2, src.bottom // 2), slice(src.x // 2, src.right // 2))
        dst_y = t.luma(dest)
        dst_u, dst_v = t.chroma(dest)
        shrink = src.w > 2 * dest.w or src.h > 2 * dest.h
        interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
        same_y = dst_y.shape == (src.h, src.w)
        same_c = dst_u.shape == (src.h // 2, src.w // 2)
        return _VideoPlan(
            (fw, fh),
            src_y,
            src_c,
            dst_y,
            dst_u,
            dst_v,
            None if same_y else interp,
            None if same_c else interp,
            bars(r, dest),
        )

    def _put_label(self, t: Target, win: _Win, text: str) -> None:
        lp = win.label
        if lp is None or lp.text != text:
            r = win.rect
            size = label_size_for(r.h)
            patch = self.text.label(text, size)
            m = even_up(max(4, size // 3))
            x, y = even_up(r.x + m), even_up(r.y + m)
            # Cut to the window, on whole chroma samples.
            w = min(patch.width, r.right - x)
            h = min(patch.height, r.bottom - y)
            w, h = w - (w & 1), h - (h & 1)
            if w <= 0 or h <= 0:
                win.label = None
                return
            c = Rect(x, y, w, h)
            u, v = t.chroma(c)
            lp = win.label = _LabelPlan(
                text,
                patch,
                (t.luma(c), u, v),
                (patch.y[:h, :w], patch.u[: h // 2, : w // 2], patch.v[: h // 2, : w // 2]),
            )
        for dst, src in zip(lp.views, lp.parts, strict=True):
            copy_plane(dst, src)

    def _draw_clock(self, full: bool, repainted: list[Rect]) -> None:
        cr = self._clock_rect
        if cr is None:
            return
        now = time.time()
        text = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
        touched = full or any(r.intersects(cr) for r in repainted)
        if text == self._clock_text and not touched:
            return
        size = max(16, min(48, self.wall.tile_h_px // 30))
        self.canvas.put_patch(self.text.clock(size, now), cr.x, cr.y, self.canvas.extent)
        self._clock_text = text
        repainted.append(cr)
