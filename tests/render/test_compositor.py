"""The compositor on its own: geometry, slates, labels, repaint rules, layout switches.

Sources are a small in-test FrameSupply holding hand-made I420 frames, so every pixel
expected is known; the real SourceHub feeds it in test_render_component.py.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import cv2
import numpy as np
import pytest

from wallctl.config import WallConfig
from wallctl.render.canvas import Patch, to_bgr
from wallctl.render.canvas_fit import bars, crop_rect, needed_size, place
from wallctl.render.compositor import Compositor, source_needs
from wallctl.render.frames import Frame, SourcePhase, SourceView
from wallctl.render.text import Fonts, TextPainter, slate_lines
from wallctl.wall import Rect, Wall
from wallctl.wallstate import Crop, WallState, Window

pytestmark = pytest.mark.timeout(60)


class Supply:
    """FrameSupply for tests: views set by hand; counts view calls; records demands."""

    def __init__(self) -> None:
        self.views: dict[str, SourceView] = {}
        self.demands: dict[str, dict[str, tuple[int, int]]] = {}
        self.calls = 0
        self.delay = 0.0
        self._seq = 0
        self.lock = threading.Lock()

    def demand(self, holder: str, needs: Mapping[str, tuple[int, int]]) -> None:
        self.demands[holder] = dict(needs)

    def view(self, source: str) -> SourceView:
        self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        with self.lock:
            v = self.views.get(source)
        if v is None:
            raise KeyError(source)
        return v

    def live(self, sid: str, frame: Frame, name: str | None = None) -> None:
        with self.lock:
            self.views[sid] = SourceView(sid, name or sid, SourcePhase.LIVE, frame, time.time())

    def set(
        self, sid: str, phase: SourcePhase, last: float | None = None, err: str | None = None
    ) -> None:
        with self.lock:
            self.views[sid] = SourceView(sid, sid, phase, None, last, err)

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq


def solid(supply: Supply, w: int, h: int, yuv: tuple[int, int, int]) -> Frame:
    return Frame(
        np.full((h, w), yuv[0], np.uint8),
        np.full((h // 2, w // 2), yuv[1], np.uint8),
        np.full((h // 2, w // 2), yuv[2], np.uint8),
        supply.next_seq(),
        time.monotonic(),
    )


def halves(supply: Supply, w: int, h: int, left: int, right: int) -> Frame:
    y = np.full((h, w), left, np.uint8)
    y[:, w // 2 :] = right
    return Frame(
        y,
        np.full((h // 2, w // 2), 128, np.uint8),
        np.full((h // 2, w // 2), 128, np.uint8),
        supply.next_seq(),
        time.monotonic(),
    )


def small_wall(rows: int = 2, cols: int = 2, bezel: bool = False) -> Wall:
    cfg = WallConfig(
        id="main",
        min_diagonal_cm=1,
        bezel_compensation=bezel,
        tiles={
            "rows": rows,
            "cols": cols,
            "width_mm": 1209.6,
            "height_mm": 680.4,
            "bezel_mm": 10 if bezel else 0,
            "width_px": 320,
            "height_px": 180,
        },
    )
    return Wall.from_config(cfg)


def state(*windows: Window) -> WallState:
    return WallState(wall="main", windows=windows)


@pytest.fixture(scope="module")
def text() -> TextPainter:
    return TextPainter(Fonts())


@pytest.fixture
def supply() -> Supply:
    return Supply()


@pytest.fixture
def comp(supply: Supply, text: TextPainter) -> Iterator[Compositor]:
    c = Compositor(small_wall(), supply, labels=False, text=text)
    yield c
    c.stop()


# --- geometry (pure) -------------------------------------------------------------------------


def test_fit_letterboxes_a_wide_picture_in_a_tall_window() -> None:
    src, dest = place(1920, 1080, Rect(100, 50, 400, 400), "fit")
    assert src == Rect(0, 0, 1920, 1080)
    # 400 wide -> 225 high, centred: (400 - 225) // 2 = 87 above.
    assert dest == Rect(100, 50 + 87, 400, 225)
    assert bars(Rect(100, 50, 400, 400), dest) == [
        Rect(100, 50, 400, 87),
        Rect(100, 50 + 87 + 225, 400, 400 - 87 - 225),
    ]


def test_fit_pillarboxes_a_tall_picture() -> None:
    _src, dest = place(1080, 1920, Rect(0, 0, 1600, 900), "fit")
    assert dest == Rect((1600 - 506) // 2, 0, 506, 900)


def test_fill_cuts_the_overflow_equally() -> None:
    src, dest = place(1920, 1080, Rect(0, 0, 500, 500), "fill")
    assert dest == Rect(0, 0, 500, 500)
    assert src == Rect(420, 0, 1080, 1080)


def test_stretch_uses_the_whole_picture_and_window() -> None:
    assert place(640, 360, Rect(7, 9, 333, 111), "stretch") == (
        Rect(0, 0, 640, 360),
        Rect(7, 9, 333, 111),
    )


def test_crop_then_fit() -> None:
    crop = Crop(x=0.5, y=0.0, w=0.5, h=0.5)
    assert crop_rect(1920, 1080, crop) == Rect(960, 0, 960, 540)
    src, dest = place(1920, 1080, Rect(0, 0, 960, 540), "fit", crop)
    assert (src, dest) == (Rect(960, 0, 960, 540), Rect(0, 0, 960, 540))
    # A crop asks the source for more pixels: 960 wall pixels of half the picture.
    assert needed_size(Rect(0, 0, 960, 540), crop) == (1920, 1080)


def test_source_needs_takes_the_largest_window_per_source() -> None:
    st = state(
        Window(id="w1", x=0, y=0, w=320, h=180, source="a"),
        Window(id="w2", x=0, y=0, w=640, h=100, source="a"),
        Window(id="w3", x=0, y=0, w=100, h=100, source=None),
    )
    assert source_needs(st) == {"a": (640, 180)}


# --- pixels ------------------------------------------------------------------------------------


def test_fit_pixels_exact_on_the_canvas(comp: Compositor, supply: Supply) -> None:
    supply.live("a", solid(supply, 640, 360, (200, 128, 128)))
    # A 16:9 picture in a 300x300 window at an odd position: bars above and below.
    comp.set_state(state(Window(id="w1", x=11, y=21, w=300, h=300, source="a", fit="fit")))
    comp.render_once()
    y = comp.canvas.y
    top = 21 + (300 - 169) // 2  # 300 * 9 / 16 = 168.75 -> 169 rows
    assert (y[top : top + 169, 11:311] == 200).all()
    assert (y[21:top, 11:311] == 16).all()
    assert (y[top + 169 : 321, 11:311] == 16).all()
    # Nothing outside the window was touched.
    assert (y[:, :11] == 16).all() and (y[:, 311:] == 16).all()


def test_fill_and_stretch_cover_the_window(comp: Compositor, supply: Supply) -> None:
    supply.live("a", halves(supply, 640, 360, 60, 220))
    comp.set_state(
        state(
            Window(id="w1", x=0, y=0, w=100, h=180, source="a", fit="fill"),
            Window(id="w2", x=320, y=0, w=200, h=100, source="a", fit="stretch"),
        )
    )
    comp.render_once()
    y = comp.canvas.y.astype(int)
    # fill: the centre 202x360 of the picture (half dark, half light) in 100x180.
    assert (y[0:180, 0:45] == 60).all() and (y[0:180, 55:100] == 220).all()
    # stretch: left half of the window dark, right half light, no bars.
    assert (y[0:100, 320:415] == 60).all() and (y[0:100, 425:520] == 220).all()


def test_crop_shows_only_the_named_part(comp: Compositor, supply: Supply) -> None:
    supply.live("a", halves(supply, 640, 360, 60, 220))
    crop = Crop(x=0.5, y=0.0, w=0.5, h=1.0)
    comp.set_state(
        state(Window(id="w1", x=0, y=0, w=320, h=360, source="a", crop=crop, fit="stretch"))
    )
    comp.render_once()
    assert (comp.canvas.y[0:360, 0:320] == 220).all()


def test_z_order_and_repaint_under_a_covering_window(comp: Compositor, supply: Supply) -> None:
    supply.live("bg", solid(supply, 640, 360, (50, 128, 128)))
    supply.live("pip", solid(supply, 320, 180, (180, 128, 128)))
    comp.set_state(
        state(
            Window(id="w1", x=0, y=0, w=640, h=360, z=0, source="bg", fit="stretch"),
            Window(id="w2", x=100, y=100, w=200, h=100, z=1, source="pip", fit="stretch"),
        )
    )
    comp.render_once()
    assert comp.canvas.y[150, 200] == 180 and comp.canvas.y[50, 50] == 50
    # The covered window gets a new picture: it repaints, the one above stays on top.
    supply.live("bg", solid(supply, 640, 360, (90, 128, 128)))
    before = comp.stats.repaints
    comp.render_once()
    assert comp.stats.repaints == before + 1
    assert comp.canvas.y[150, 200] == 180 and comp.canvas.y[50, 50] == 90


def test_only_changed_windows_are_repainted(comp: Compositor, supply: Supply) -> None:
    supply.live("a", solid(supply, 320, 180, (100, 128, 128)))
    supply.live("b", solid(supply, 320, 180, (150, 128, 128)))
    comp.set_state(
        state(
            Window(id="w1", x=0, y=0, w=320, h=180, source="a"),
            Window(id="w2", x=320, y=0, w=320, h=180, source="b"),
        )
    )
    assert comp.render_once() is True
    assert comp.render_once() is False  # nothing new: no pixel touched
    comp.canvas.y[10, 330] = 1  # a marker in w2 that only a repaint of w2 would erase
    supply.live("a", solid(supply, 320, 180, (120, 128, 128)))
    repaints = comp.stats.repaints
    assert comp.render_once() is True
    assert comp.stats.repaints == repaints + 1
    assert comp.canvas.y[10, 10] == 120
    assert comp.canvas.y[10, 330] == 1
    # A source shown in two windows is asked for its view once per frame.
    comp.set_state(
        state(
            Window(id="w1", x=0, y=0, w=320, h=180, source="a"),
            Window(id="w2", x=320, y=0, w=320, h=180, source="a"),
        )
    )
    calls = supply.calls
    comp.render_once()
    assert supply.calls == calls + 1


def test_highlight_border(comp: Compositor, supply: Supply) -> None:
    supply.live("a", solid(supply, 320, 180, (100, 128, 128)))
    comp.set_state(state(Window(id="w1", x=0, y=0, w=320, h=180, source="a")))
    comp.set_highlight("w1", True)
    comp.render_once()
    hy = comp.highlight_yuv[0]
    assert comp.canvas.y[0, 100] == hy and comp.canvas.y[179, 100] == hy
    assert comp.canvas.y[90, 0] == hy and comp.canvas.y[90, 319] == hy
    assert comp.canvas.y[90, 160] == 100
    comp.set_highlight("w1", False)
    comp.render_once()
    assert comp.canvas.y[0, 100] == 100


# --- slates and labels ------------------------------------------------------------------------


def test_slates_for_connecting_and_no_signal(
    comp: Compositor, supply: Supply, text: TextPainter
) -> None:
    supply.set("a", SourcePhase.CONNECTING)
    lost = time.time() - 60
    supply.set("b", SourcePhase.NO_SIGNAL, last=lost)
    comp.set_state(
        state(
            Window(id="w1", x=0, y=0, w=320, h=180, source="a"),
            Window(id="w2", x=320, y=0, w=320, h=180, source="b"),
            Window(id="w3", x=0, y=180, w=320, h=180, source="ghost"),
        )
    )
    comp.render_once()
    since = time.strftime("%H:%M:%S", time.localtime(lost))
    expected = {
        "w1": ["a", "正在连接 connecting…"],
        "w2": ["b", f"无信号 no signal since {since}"],
        "w3": ["ghost", "未知信号源 unknown source"],
    }
    assert slate_lines("b", "no_signal", lost, None) == expected["w2"]
    for wid, (x, y) in {"w1": (0, 0), "w2": (320, 0), "w3": (0, 180)}.items():
        want = text.slate_picture(320, 180, expected[wid])
        assert np.array_equal(comp.canvas.y[y : y + 180, x : x + 320], want.y), wid
    # Drawn once: the same slate next frame is neither rendered again nor repainted.
    misses, repaints = text.slates.misses, comp.stats.repaints
    comp.render_once()
    assert (text.slates.misses, comp.stats.repaints) == (misses, repaints)
    # The source comes back: live video replaces the slate at once.
    supply.live("b", solid(supply, 320, 180, (77, 128, 128)))
    comp.render_once()
    assert (comp.canvas.y[0:180, 320:640] == 77).all()


def test_failed_source_slate_names_the_error(comp: Compositor, supply: Supply) -> None:
    supply.set("a", SourcePhase.FAILED, err="wrong user name or password")
    lines = slate_lines("a", "failed", None, "wrong user name or password")
    assert lines == ["a", "无信号 no signal", "wrong user name or password"]
    comp.set_state(state(Window(id="w1", x=0, y=0, w=320, h=180, source="a")))
    comp.render_once()
    assert np.array_equal(comp.canvas.y[0:180, 0:320], comp.text.slate_picture(320, 180, lines).y)


def test_chinese_labels_render_real_glyphs(text: TextPainter) -> None:
    assert text.fonts.cjk, "install fonts-noto-cjk"
    a, b = text.label("测试信号", 24), text.label("南浔区指", 24)
    # A font without the glyphs draws the same box for every character.
    assert a.y.shape == b.y.shape and not np.array_equal(a.y, b.y)
    assert (a.y > 200).sum() > 50  # ink
    # Cached per (text, size).
    assert text.label("测试信号", 24) is a
    # Control characters and overlong names are cleaned, not drawn.
    assert text.label("x\n\x1b[31my" + "z" * 500, 24).width < 64 * 24


def test_label_on_window_uses_source_name(supply: Supply, text: TextPainter) -> None:
    c = Compositor(small_wall(), supply, labels=True, text=text)
    supply.live("a", solid(supply, 320, 180, (30, 128, 128)), name="测试信号：彩条")
    c.set_state(state(Window(id="w1", x=0, y=0, w=320, h=180, source="a")))
    c.render_once()
    patch = text.label("测试信号：彩条", 14)
    m = 4  # even_up(max(4, 14 // 3))
    assert np.array_equal(c.canvas.y[m : m + patch.height, m : m + patch.width], patch.y)


def test_composited_frame_saved_as_png(tmp_path: Path, supply: Supply, text: TextPainter) -> None:
    wall = small_wall()
    c = Compositor(wall, supply, labels=True, clock="top-right", text=text)
    rgb = np.zeros((180, 320, 3), np.uint8)
    rgb[:, :160] = (200, 30, 30)
    rgb[:, 160:] = (30, 30, 200)
    p = Patch.from_rgb(rgb)
    supply.live("cam", Frame(p.y, p.u, p.v, 1, time.monotonic()), name="南浔区指挥中心")
    supply.set("lost", SourcePhase.NO_SIGNAL, last=time.time() - 5)
    c.set_state(
        state(
            Window(id="w1", x=0, y=0, w=320, h=180, source="cam"),
            Window(id="w2", x=320, y=0, w=320, h=180, source="lost"),
        )
    )
    c.render_once()
    out = tmp_path / "frame.png"
    bgr = to_bgr(c.canvas.y, c.canvas.u, c.canvas.v)
    assert cv2.imwrite(str(out), bgr)
    back = cv2.imread(str(out))
    assert back.shape == (360, 640, 3)
    # Red stays red, blue stays blue through I420 and back.
    b, _g, r = back[100, 60].astype(int)
    assert r > 150 and b < 80
    b, _g, r = back[100, 260].astype(int)
    assert b > 150 and r < 80


# --- the thread: pacing, switches -------------------------------------------------------------


def test_layout_switch_lands_on_the_next_frame(comp: Compositor, supply: Supply) -> None:
    supply.live("a", solid(supply, 320, 180, (60, 128, 128)))
    supply.live("b", solid(supply, 320, 180, (200, 128, 128)))
    comp.set_state(state(Window(id="w1", x=0, y=0, w=640, h=360, source="a")))
    comp.start()
    n = comp.wait_frame(0)
    assert comp.canvas.y[100, 100] == 60
    new = state(Window(id="w9", x=0, y=0, w=640, h=360, source="b"))
    t0 = time.monotonic()
    comp.set_state(new)
    comp.wait_frame(n + 1)
    # Whichever frame finished first after the hand-over may have started before it;
    # the one after certainly shows the new layout, with the warm source live.
    comp.wait_frame(comp.frame_no)
    assert comp.state == new
    assert comp.canvas.y[100, 100] == 200
    assert comp.stats.switch_ms_last < 1000 * (time.monotonic() - t0) + 1
    assert comp.stats.switch_ms_last < 500


def test_hundred_switches_in_a_second_end_in_the_last(comp: Compositor, supply: Supply) -> None:
    for i in range(4):
        supply.live(f"s{i}", solid(supply, 320, 180, (40 + 40 * i, 128, 128)))
    comp.start()
    comp.wait_frame(0)
    threads = threading.active_count()
    last = None
    for i in range(100):
        last = state(Window(id=f"w{i + 1}", x=0, y=0, w=640, h=360, source=f"s{i % 4}"))
        comp.set_state(last)
        time.sleep(0.01)
    comp.wait_frame(comp.frame_no + 2)
    assert comp.state == last
    assert comp.canvas.y[100, 100] == 40 + 40 * (99 % 4)
    # A burst of switches does not multiply the frame rate (at most one extra per period).
    assert comp.stats.frames < 2 * 25 * 2 + 10
    assert threading.active_count() == threads


def test_late_frames_are_counted(supply: Supply, text: TextPainter) -> None:
    c = Compositor(small_wall(), supply, fps=25, labels=False, text=text)
    supply.live("a", solid(supply, 320, 180, (60, 128, 128)))
    c.set_state(state(Window(id="w1", x=0, y=0, w=320, h=180, source="a")))
    supply.delay = 0.06  # every frame takes longer than its 40 ms period
    c.start()
    try:
        deadline = time.monotonic() + 5
        while c.stats.late_frames < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert c.stats.late_frames >= 3
        late, frames = c.late_recently()
        assert late >= 3 and frames >= late
    finally:
        c.stop()
    assert not c.running


def test_broken_source_view_never_stops_the_wall(comp: Compositor, supply: Supply) -> None:
    supply.live("a", solid(supply, 320, 180, (60, 128, 128)))
    comp.set_state(
        state(
            Window(id="w1", x=0, y=0, w=320, h=180, source="a"),
            Window(id="w2", x=320, y=0, w=320, h=180, source="missing"),
        )
    )
    comp.render_once()
    assert comp.canvas.y[50, 50] == 60


def test_bezel_compensated_head_drops_hidden_pixels(supply: Supply, text: TextPainter) -> None:
    wall = small_wall(rows=1, cols=2, bezel=True)
    assert wall.gap_x > 0
    c = Compositor(wall, supply, labels=False, text=text)
    supply.live("a", halves(supply, 640, 360, 60, 220))
    c.set_state(
        state(Window(id="w1", x=0, y=0, w=wall.width, h=wall.height, source="a", fit="stretch"))
    )
    c.render_once()
    (head,) = wall.heads
    y, _u, _v = c.canvas.head_image(head)
    assert y.shape == (180, 640)
    assert np.array_equal(y[:, :320], c.canvas.y[:180, :320])
    assert np.array_equal(y[:, 320:], c.canvas.y[:180, 320 + wall.gap_x : 640 + wall.gap_x])


@pytest.mark.skipif(os.geteuid() != 0, reason="raising a thread's priority needs CAP_SYS_NICE")
def test_compositor_thread_runs_ahead_of_decoders(supply: Supply, text: TextPainter) -> None:
    c = Compositor(small_wall(), supply, labels=False, text=text, nice=-7)
    c.start()
    try:
        c.wait_frame(0)
        assert c.priority_applied is True
        assert c._thread is not None and c._thread.native_id is not None
        assert os.getpriority(os.PRIO_PROCESS, c._thread.native_id) == -7
    finally:
        c.stop()


def test_clock_in_its_corner_redrawn_each_second(supply: Supply, text: TextPainter) -> None:
    wall = small_wall()
    c = Compositor(wall, supply, labels=False, clock="top-right", text=text)
    supply.live("a", solid(supply, 640, 360, (120, 128, 128)))
    c.set_state(state(Window(id="w1", x=0, y=0, w=640, h=360, source="a")))
    t0 = time.time()
    c.render_once()
    r = c._clock_rect
    assert r is not None and r.right <= wall.width and r.x > wall.width // 2 and r.y < 40
    size = max(16, min(48, wall.tile_h_px // 30))
    shown = c.canvas.y[r.y : r.bottom, r.x : r.right]
    assert any(np.array_equal(shown, text.clock(size, t).y) for t in (t0, t0 + 1, time.time()))
    # The video under it changes: the clock is drawn again on top.
    supply.live("a", solid(supply, 640, 360, (30, 128, 128)))
    c.render_once()
    assert c.canvas.y[200, 100] == 30
    assert not (c.canvas.y[r.y : r.bottom, r.x : r.right] == 30).all()
    # Live change: no clock at all after a reload.
    c.configure(clock=None)
    c.render_once()
    assert c._clock_rect is None and (c.canvas.y[r.y : r.bottom, r.x : r.right] == 30).all()


def test_source_changing_resolution_is_redrawn_to_fit(comp: Compositor, supply: Supply) -> None:
    # A 16:9 picture in a 4:3 window (bars), then the stream turns 4:3 (no bars).
    supply.live("a", solid(supply, 640, 360, (200, 128, 128)))
    comp.set_state(state(Window(id="w1", x=0, y=0, w=320, h=240, source="a", fit="fit")))
    comp.render_once()
    assert comp.canvas.y[10, 160] == 16 and comp.canvas.y[120, 160] == 200
    supply.live("a", solid(supply, 400, 300, (90, 128, 128)))
    comp.render_once()
    assert (comp.canvas.y[0:240, 0:320] == 90).all()
    # And back: the bars return black, not left over from the 4:3 picture.
    supply.live("a", solid(supply, 640, 360, (150, 128, 128)))
    comp.render_once()
    assert comp.canvas.y[10, 160] == 16 and comp.canvas.y[120, 160] == 150


# --- full repaints: only bare canvas is cleared; window buffers are reused ----------------


def test_uncovered_is_the_canvas_minus_the_windows() -> None:
    from wallctl.render.canvas import subtract, uncovered

    canvas = Rect(0, 0, 640, 360)
    assert subtract(canvas, Rect(700, 0, 10, 10)) == [canvas]
    assert subtract(Rect(0, 0, 10, 10), Rect(0, 0, 10, 10)) == []
    grid = [Rect(x, y, 320, 180) for x in (0, 320) for y in (0, 180)]
    assert uncovered(canvas, grid) == []
    pieces = uncovered(canvas, [*grid[:3], Rect(500, 300, 400, 400)])  # one hangs outside
    assert pieces is not None
    area = sum(r.w * r.h for r in pieces)
    assert area == 320 * 180 - 140 * 60
    assert all(canvas.contains(r) for r in pieces)
    for a in pieces:  # no overlaps, and none inside a window
        assert not any(a.intersects(w) for w in grid[:3])
        assert sum(a.intersects(b) for b in pieces) == 1
    # A pathological pile of windows falls back to clearing everything.
    specks = [Rect(x * 4 + 1, y * 4 + 1, 2, 2) for x in range(40) for y in range(40)]
    assert uncovered(canvas, specks, limit=256) is None


def test_switch_clears_what_no_window_covers_any_more(comp: Compositor, supply: Supply) -> None:
    supply.live("a", solid(supply, 320, 180, (200, 128, 128)))
    full = [
        Window(id=f"w{i}", x=(i % 2) * 320, y=(i // 2) * 180, w=320, h=180, source="a")
        for i in range(4)
    ]
    comp.set_state(state(*full))
    comp.render_once()
    assert (comp.canvas.y == 200).all() and comp._bare == []
    # Three windows left: the fourth quarter turns black, the rest is untouched video.
    comp.set_state(state(*full[:3]))
    comp.render_once()
    assert (comp.canvas.y[180:, 320:] == 16).all() and (comp.canvas.u[90:, 160:] == 128).all()
    assert (comp.canvas.y[:180, :] == 200).all() and (comp.canvas.y[180:, :320] == 200).all()


def test_pip_switched_on_and_off_reuses_the_buffers_under_it(
    comp: Compositor, supply: Supply
) -> None:
    supply.live("a", solid(supply, 320, 180, (90, 128, 128)))
    supply.live("b", solid(supply, 160, 90, (180, 128, 128)))
    grid = [
        Window(id=f"w{i}", x=(i % 2) * 320, y=(i // 2) * 180, w=320, h=180, source="a")
        for i in range(4)
    ]
    pip = Window(id="pip", x=240, y=135, w=160, h=90, z=5, source="b")
    comp.set_state(state(*grid, pip))
    comp.render_once()
    first = {w.window.id: w.buf for w in comp._wins if w.buf is not None}
    assert set(first) == {"w0", "w1", "w2", "w3"}  # every quarter lies under the PiP
    for k in range(4):
        comp.set_state(state(*grid) if k % 2 == 0 else state(*grid, pip))
        comp.render_once()
    again = {w.window.id: w.buf for w in comp._wins if w.buf is not None}
    assert all(again[k] is first[k] for k in first)
    # And the picture is right: PiP on top, the quarters around it.
    assert (comp.canvas.y[135:225, 240:400] == 180).all()
    assert comp.canvas.y[100, 100] == 90 and comp.canvas.y[300, 600] == 90
