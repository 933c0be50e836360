"""The shared decode threads for local files, and the zero-copy pictures decoders hand out."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from wallctl.config import SourceConfig
from wallctl.render.canvas import Target
from wallctl.render.decode_pool import DecodePool
from wallctl.render.decoder import shares_threads, stream_spec
from wallctl.render.frames import SourcePhase
from wallctl.render.renditions import renditions_of
from wallctl.render.source_config import RenderSourcesConfig
from wallctl.render.source_stats import SourceStats
from wallctl.render.sourcehub import SourceHub
from wallctl.wall import Rect

from .conftest import Media, RtspServer, wait_for

Hubs = Callable[..., SourceHub]


def src(sid: str, kind: str, url: str, **kw: Any) -> SourceConfig:
    return SourceConfig.model_validate({"id": sid, "name": sid, "kind": kind, "url": url, **kw})


def spec_of(kind: str, url: str) -> Any:
    cfg = src("s", kind, url)
    return stream_spec(cfg, renditions_of(cfg)[0], RenderSourcesConfig())


def decode_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("decode-")]


# --- which sessions share ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "url", "shared"),
    [
        ("file", "/srv/clips/a.mp4", True),
        ("file", "file:///srv/clips/a.mp4", True),
        ("file", "relative/a.mp4", True),
        # Anything that can wait on a peer keeps its own thread.
        ("file", "http://10.0.0.5/a.mp4", False),
        ("rtsp", "rtsp://10.0.0.5/main", False),
        ("url", "https://10.0.0.5/live.m3u8", False),
        ("url", "srt://10.0.0.5:9000", False),
        ("v4l2", "/dev/video0", False),
    ],
)
def test_only_local_files_share_threads(kind: str, url: str, shared: bool) -> None:
    assert shares_threads(spec_of(kind, url)) is shared


# --- files on the pool -------------------------------------------------------------------


def test_many_files_decode_live_on_a_few_threads(hub_factory: Hubs, media: Media) -> None:
    before = set(decode_threads())
    sources = [src(f"f{i}", "file", str(media.h264_320)) for i in range(8)]
    hub = hub_factory(sources)
    hub.demand("wall:main", {s.id: (480, 270) for s in sources})
    wait_for(lambda: all(hub.view(s.id).phase is SourcePhase.LIVE for s in sources), timeout=10)
    seqs = [hub.view(s.id).frame.seq for s in sources]  # type: ignore[union-attr]
    time.sleep(2.0)
    # Every file keeps its own rate (25 fps, generous margins for a loaded machine)...
    for s, seq in zip(sources, seqs, strict=True):
        got = hub.view(s.id).frame.seq - seq  # type: ignore[union-attr]
        assert 25 <= got <= 60, (s.id, got)
    # ...on the pool's threads, not one thread per source.
    assert hub.pool.sessions() == 8 and hub.decoder_threads() == 8
    pool_threads = [n for n in decode_threads() if n not in before]
    assert 1 <= len(pool_threads) <= hub.pool.max_size
    assert all(n.startswith("decode-pool-") for n in pool_threads)
    hub.close()
    assert hub.decoder_threads() == 0 and hub.pool.sessions() == 0
    wait_for(lambda: not [n for n in decode_threads() if n not in before], timeout=5)


def test_a_network_source_keeps_its_own_thread_beside_pooled_files(
    hub_factory: Hubs, media: Media, rtsp_server: Callable[..., RtspServer]
) -> None:
    srv = rtsp_server({"cam": f"loop:{media.h264_320}"})
    hub = hub_factory([src("f", "file", str(media.h264_320)), src("cam", "rtsp", srv.url("cam"))])
    hub.demand("wall:main", {"f": (480, 270), "cam": (480, 270)})
    wait_for(lambda: all(hub.view(s).phase is SourcePhase.LIVE for s in ("f", "cam")))
    assert hub.pool.sessions() == 1
    assert "decode-cam-main" in decode_threads()
    # The camera dies: the file on the pool does not notice.
    srv.stop()
    seq = hub.view("f").frame.seq  # type: ignore[union-attr]
    time.sleep(1.5)
    assert hub.view("f").phase is SourcePhase.LIVE
    assert hub.view("f").frame.seq >= seq + 20  # type: ignore[union-attr]


def test_a_file_that_ended_is_parked_and_stops_at_once(hub_factory: Hubs, media: Media) -> None:
    clip = media.h264("one_s.mp4", 320, 180, 1, ())
    hub = hub_factory([src("f", "file", str(clip), loop=False)], warm_s=0)
    hub.demand("wall:main", {"f": (480, 270)})
    wait_for(lambda: hub.view("f").frame is not None)
    slot = hub._slots["f"]
    session = slot.active
    assert session is not None
    wait_for(lambda: session.error == "the file ended", timeout=5)
    assert session.alive() and hub.pool.sessions() == 1
    t0 = time.monotonic()
    hub.demand("wall:main", {})
    assert session.join(2.0), "a parked session did not end when stopped"
    assert time.monotonic() - t0 < 1.0
    wait_for(lambda: hub.pool.sessions() == 0, timeout=2)


# --- the pool itself, with sessions that are only steps ---------------------------------


class FakeSpec:
    source = "fake"


class FakeSession:
    """What the pool needs of a session: steps, a stop flag and an end notice."""

    def __init__(self, steps: Callable[[FakeSession], Iterator[float]]) -> None:
        self.spec = FakeSpec()
        self.pool_token = 0
        self._steps = steps
        self._stop = threading.Event()
        self.done = threading.Event()
        self.ticks = 0

    def steps(self) -> Iterator[float]:
        return self._steps(self)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def stop(self) -> None:
        self._stop.set()

    def finished(self) -> None:
        self.done.set()


def ticking(period: float, work: float = 0.0) -> Callable[[FakeSession], Iterator[float]]:
    def steps(s: FakeSession) -> Iterator[float]:
        due = time.monotonic()
        while not s.stopping:
            s.ticks += 1
            if work:
                time.sleep(work)  # a step that holds its thread (a slow disk, a big picture)
            due += period
            yield due

    return steps


@pytest.fixture
def pool() -> Iterator[DecodePool]:
    p = DecodePool(threads=1)
    yield p
    p.close()


def test_pool_runs_each_session_at_its_own_times(pool: DecodePool) -> None:
    fast, slow = FakeSession(ticking(0.02)), FakeSession(ticking(0.1))
    for s in (fast, slow):
        pool.add(s)  # type: ignore[arg-type]
    time.sleep(1.0)
    assert 35 <= fast.ticks <= 60 and 8 <= slow.ticks <= 13, (fast.ticks, slow.ticks)
    assert pool.threads() == 1


def test_stopping_a_sleeping_session_wakes_it(pool: DecodePool) -> None:
    s = FakeSession(ticking(30.0))
    pool.add(s)  # type: ignore[arg-type]
    wait_for(lambda: s.ticks == 1)
    s.stop()
    pool.wake(s)  # type: ignore[arg-type]
    assert s.done.wait(1.0)
    assert pool.sessions() == 0


def test_a_failing_session_does_not_take_the_pool_down(pool: DecodePool) -> None:
    def broken(s: FakeSession) -> Iterator[float]:
        yield time.monotonic()
        raise RuntimeError("bug in a session")

    bad, good = FakeSession(broken), FakeSession(ticking(0.02))
    pool.add(bad)  # type: ignore[arg-type]
    pool.add(good)  # type: ignore[arg-type]
    assert bad.done.wait(2.0)
    n = good.ticks
    time.sleep(0.3)
    assert good.ticks >= n + 8 and pool.sessions() == 1


def test_a_pool_that_falls_behind_takes_another_thread(pool: DecodePool) -> None:
    # Each step holds the only thread for 60 ms while two sessions want one every 40 ms:
    # behind, the pool grows (up to twice its size) and catches up.
    a, b = FakeSession(ticking(0.04, work=0.06)), FakeSession(ticking(0.04, work=0.06))
    pool.add(a)  # type: ignore[arg-type]
    pool.add(b)  # type: ignore[arg-type]
    wait_for(lambda: pool.threads() == 2, timeout=3)
    assert pool.threads() <= pool.max_size == 2


def test_close_ends_every_session_and_thread(pool: DecodePool) -> None:
    sessions = [FakeSession(ticking(0.05)) for _ in range(5)]
    for s in sessions:
        pool.add(s)  # type: ignore[arg-type]
    time.sleep(0.2)
    pool.close(timeout=2.0)
    assert all(s.done.is_set() for s in sessions)
    assert pool.threads() == 0 and pool.sessions() == 0
    # A session offered after closing is ended at once, never run.
    late = FakeSession(ticking(0.05))
    pool.add(late)  # type: ignore[arg-type]
    assert late.done.is_set() and late.ticks == 0


# --- pictures are views of the decoder's buffers ----------------------------------------


def test_decoded_planes_are_views_not_copies(hub_factory: Hubs, media: Media) -> None:
    clip = media.h264("odd_stride.mp4", 330, 186, 1, ())  # rows padded by the decoder
    hub = hub_factory([src("f", "file", str(clip))])
    hub.demand("wall:main", {"f": (330, 186)})
    f = wait_for(lambda: hub.view("f").frame)
    assert (f.width, f.height) == (330, 186)
    for plane, shape in ((f.y, (186, 330)), (f.u, (93, 165)), (f.v, (93, 165))):
        assert plane.shape == shape and plane.dtype == np.uint8
        assert plane.strides[1] == 1 and plane.strides[0] >= shape[1]
        assert not plane.flags.owndata and plane.base is not None  # FFmpeg's buffer, kept alive
    assert f.y.strides[0] > 330  # FFmpeg pads rows: a copy would have been contiguous
    # The picture stays intact while the decoder goes on (reference-counted buffers).
    kept = f.y.copy()
    wait_for(lambda: hub.view("f").frame.seq > f.seq + 10)  # type: ignore[union-attr]
    assert np.array_equal(f.y, kept)


def test_strided_planes_paint_like_contiguous_ones() -> None:
    rng = np.random.default_rng(3)
    wide = rng.integers(0, 255, (180, 352), np.uint8)
    wide_c = rng.integers(0, 255, (90, 192), np.uint8)
    y, u, v = wide[:, :320], wide_c[:, :160], wide_c[:, 16:176]
    assert not y.flags.c_contiguous
    a, b = Target(0, 0, 640, 360), Target(0, 0, 640, 360)
    for t, planes in ((a, (y, u, v)), (b, tuple(np.ascontiguousarray(p) for p in (y, u, v)))):
        t.scale_into(Rect(0, 0, 320, 180), *planes)  # a copy
        t.scale_into(Rect(320, 0, 320, 360), *planes)  # a resize
    for pa, pb in ((a.y, b.y), (a.u, b.u), (a.v, b.v)):
        assert np.array_equal(pa, pb)


# --- statistics without locks -------------------------------------------------------------


def test_rates_follow_the_stream_and_fall_to_zero() -> None:
    st = SourceStats()
    t0 = 5000.0
    for i in range(100):  # 4 s at 25 fps, 10 kB a picture
        st.on_packet(10_000, t0 + i * 0.04)
        st.on_frame(t0 + i * 0.04)
    end = t0 + 99 * 0.04
    fps, bps = st.rates(end)
    assert 23.5 <= fps <= 27 and 1.9e6 <= bps <= 2.2e6, (fps, bps)
    assert st.rates(end + 1.0)[0] < fps * 0.7  # half the window without pictures
    assert st.rates(end + 2.5) == (0.0, 0.0)  # stopped: no stale average
    snap = st.snapshot(end)
    assert snap["frames_decoded"] == 100 and snap["bytes_in"] == 1_000_000
