"""Sources without network peers: patterns, rendition rules, stream specs, config, hub rules."""

from __future__ import annotations

import random
import threading

import av
import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from wallctl.config import ConfigError, SourceConfig, parse_config
from wallctl.render.decoder import Backoff, StreamSpec, describe_error, stream_spec
from wallctl.render.frames import SourcePhase
from wallctl.render.patterns import PATTERNS, MovingPattern
from wallctl.render.renditions import Rendition, choose, renditions_of, thumbnails_only
from wallctl.render.source_config import RenderSourcesConfig

from .conftest import wait_for

WALL = {
    "tiles": {
        "rows": 2,
        "cols": 2,
        "width_mm": 1209.6,
        "height_mm": 680.4,
        "width_px": 1920,
        "height_px": 1080,
    }
}


def pattern_source(sid: str, pattern: str = "bars") -> SourceConfig:
    return SourceConfig.model_validate(
        {"id": sid, "name": sid, "kind": "test_pattern", "pattern": pattern}
    )


# --- patterns --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", PATTERNS)
def test_pattern_is_i420_and_moves(kind: str) -> None:
    p = MovingPattern(kind, 640, 360, fps=25)  # type: ignore[arg-type]
    f1 = p.frame(p._epoch + 0.0)
    f2 = p.frame(p._epoch + 1.0)  # 25 ticks later
    for f in (f1, f2):
        assert f.y.shape == (360, 640) and f.u.shape == (180, 320) and f.v.shape == (180, 320)
        assert all(a.dtype == np.uint8 and a.flags.c_contiguous for a in (f.y, f.u, f.v))
    assert f2.seq == f1.seq + 1
    # It visibly moves: a good share of the luma changed within a second.
    changed = np.count_nonzero(f1.y != f2.y) / f1.y.size
    assert changed > 0.005, f"{kind} barely moved ({changed:.4f})"
    # Not a flat picture: the pattern has structure.
    assert int(f1.y.max()) - int(f1.y.min()) > 50


def test_pattern_same_tick_same_frame_and_resize() -> None:
    p = MovingPattern("checkers", 320, 180)
    t = p._epoch + 0.5
    assert p.frame(t) is p.frame(t + 0.001)
    p.resize(1281, 721)  # odd sizes round down to even
    f = p.frame(t + 1)
    assert (f.width, f.height) == (1280, 720)


def test_bars_colours_are_75_percent_bars() -> None:
    f = MovingPattern("bars", 700, 100).frame(MovingPattern("bars", 700, 100)._epoch)
    # First bar is 75 % white: Y = 16 + 0.75 * 219 = 180 (BT.601 limited range).
    assert abs(int(f.y[50, 10]) - 180) <= 1
    assert abs(int(f.u[25, 5]) - 128) <= 1


def test_unknown_pattern_refused() -> None:
    with pytest.raises(ValueError, match="unknown pattern"):
        MovingPattern("plaid", 64, 64)  # type: ignore[arg-type]


# --- renditions ------------------------------------------------------------------------

MAIN = Rendition("main", "rtsp://cam/main")
SUB = Rendition("sub", "rtsp://cam/sub", 640, 360)
MID = Rendition("mid", "rtsp://cam/mid", 1280, 720)


def test_choose_smallest_rendition_at_least_as_large() -> None:
    rs = [MAIN, SUB, MID]
    assert choose(rs, (320, 180)) is SUB
    assert choose(rs, (640, 360)) is SUB
    assert choose(rs, (641, 360)) is MID
    assert choose(rs, (1280, 720)) is MID
    assert choose(rs, (1920, 1080)) is MAIN  # main's size unknown: the largest
    assert choose([SUB, MID], (3840, 2160)) is MID  # none large enough: the largest
    with pytest.raises(ValueError):
        choose([], (1, 1))


def test_renditions_of_source_and_thumbnail_rule() -> None:
    s = SourceConfig.model_validate(
        {
            "id": "c",
            "name": "c",
            "kind": "rtsp",
            "url": "rtsp://cam/main",
            "renditions": [{"name": "sub", "url": "rtsp://cam/sub", "width": 640, "height": 360}],
        }
    )
    assert [r.name for r in renditions_of(s)] == ["main", "sub"]
    assert thumbnails_only([(320, 180), (200, 100)], (320, 180))
    assert not thumbnails_only([(320, 180), (321, 100)], (320, 180))
    assert not thumbnails_only([], (320, 180))
    assert not thumbnails_only([(10, 10)], (0, 0))  # disabled


# --- stream specs and errors -------------------------------------------------------------


def rtsp_source(**kw: object) -> SourceConfig:
    base = {"id": "cam", "name": "cam", "kind": "rtsp", "url": "rtsp://10.0.0.5:554/s1"}
    return SourceConfig.model_validate({**base, **kw})


def test_credentials_go_into_the_url_only_in_the_spec() -> None:
    s = rtsp_source(username="ad min", password="p@ss:w/rd#1", rtsp_transport="udp")
    spec = stream_spec(s, renditions_of(s)[0], RenderSourcesConfig())
    assert spec.url == "rtsp://ad%20min:p%40ss%3Aw%2Frd%231@10.0.0.5:554/s1"
    assert "p%40ss" not in spec.shown and "p@ss" not in spec.shown
    assert spec.options["rtsp_transport"] == "udp"
    # No `fflags nobuffer`: it drops the probed packets and the first keyframe with them.
    assert "fflags" not in spec.options
    assert int(spec.options["probesize"]) <= 500_000
    assert not spec.is_file
    # The config's own URL keeps no secret either.
    assert "p@ss" not in (s.url or "")


def test_spec_for_files_v4l2_and_options() -> None:
    f = SourceConfig.model_validate({"id": "f", "name": "f", "kind": "file", "url": "/x.mp4"})
    spec = stream_spec(f, renditions_of(f)[0], RenderSourcesConfig())
    assert spec.is_file and spec.loop and "fflags" not in spec.options
    v = SourceConfig.model_validate(
        {
            "id": "v",
            "name": "v",
            "kind": "v4l2",
            "url": "/dev/video0",
            "options": {"input_format": "mjpeg", "video_size": "1920x1080"},
        }
    )
    spec = stream_spec(v, renditions_of(v)[0], RenderSourcesConfig())
    assert spec.format == "v4l2" and not spec.is_file
    assert spec.options == {"input_format": "mjpeg", "video_size": "1920x1080"}


def test_errors_read_well_and_never_hold_the_password() -> None:
    s = rtsp_source(username="admin", password="hunter2")
    spec = stream_spec(s, renditions_of(s)[0], RenderSourcesConfig())
    cfg = RenderSourcesConfig()
    unauthorized = av.error.HTTPUnauthorizedError(
        825242872, "Server returned 401 Unauthorized", spec.url
    )
    text = describe_error(unauthorized, spec, cfg)
    assert "authentication failed" in text and "'admin'" in text
    assert "hunter2" not in text
    refused = av.error.ConnectionRefusedError(111, "Connection refused", spec.url)
    assert describe_error(refused, spec, cfg) == "connection refused by rtsp://10.0.0.5:554"
    # An unknown failure whose text carries the secret is scrubbed too.
    odd = RuntimeError(f"boom at {spec.url} pw hunter2")
    assert "hunter2" not in describe_error(odd, spec, cfg)
    bare = StreamSpec("c", "main", "rtsp://h/x", "rtsp://h/x")
    assert "configure username and password" in describe_error(unauthorized, bare, cfg)


def test_backoff_doubles_to_the_cap_with_jitter_and_retries_lost_streams_fast() -> None:
    b = Backoff(0.5, 8.0, lost_s=1.0, lost_for_s=60, rng=random.Random(1))
    delays = [b.next_delay(0.0) for _ in range(8)]
    bases = [0.5, 1, 2, 4, 8, 8, 8, 8]
    for d, base in zip(delays, bases, strict=True):
        assert base * 0.8 <= d <= base * 1.2
    b.lost(100.0)
    assert all(b.next_delay(100.0 + i) <= 1.2 for i in range(10))
    assert b.next_delay(200.0) > 1.2  # long after the loss: back to the slow schedule
    # By default a lost stream is retried quickly however long it stays away...
    fast = Backoff(0.5, 8.0, rng=random.Random(2))
    fast.lost(0.0)
    assert all(fast.next_delay(t * 100.0) <= 0.6 for t in range(50))
    # ...but not when the server answers and refuses (a password changed meanwhile).
    assert fast.next_delay(5000.0, refused=True) >= 0.4
    assert max(fast.next_delay(5000.0, refused=True) for _ in range(10)) >= 6.4


# --- configuration -----------------------------------------------------------------------


def test_config_refuses_bad_renditions_and_options() -> None:
    raw = {
        "wall": WALL,
        "sources": [
            {
                "id": "c",
                "name": "c",
                "kind": "rtsp",
                "url": "rtsp://cam/1",
                "renditions": [
                    {"name": "sub", "url": "http://cam/sub", "width": 640, "height": 360},
                    {"name": "sub", "url": "rtsp://cam/s\n2", "width": 640, "height": 360},
                ],
                "options": {"Bad-Name": "1", "ok": "x\ny"},
            },
            {
                "id": "f",
                "name": "f",
                "kind": "file",
                "url": "/a.mp4",
                "renditions": [{"name": "small", "url": "/b.mp4", "width": 64, "height": 64}],
            },
            {"id": "t", "name": "t", "kind": "rtsp", "url": "rtsp://x", "rtsp_transport": "sctp"},
        ],
    }
    with pytest.raises(ConfigError) as e:
        parse_config(raw)
    got = {str(p) for p in e.value.problems}
    assert any(p.startswith("sources[2].rtsp_transport: must be one of") for p in got), got
    raw["sources"] = raw["sources"][:2]
    with pytest.raises(ConfigError) as e:
        parse_config(raw)
    got = {str(p) for p in e.value.problems}
    assert got == {
        "sources[0].renditions[0].url: an rtsp source needs an rtsp:// URL",
        "sources[0].renditions[1].name: 'sub' is already used by this source",
        "sources[0].renditions[1].url: must not contain control characters",
        "sources[0].options.Bad-Name: must be an FFmpeg option name (a-z, 0-9, _)",
        "sources[0].options.ok: must be at most 256 printable characters",
        "sources[1].renditions: a file source has one stream",
    }


def test_render_sources_config_limits() -> None:
    with pytest.raises(ValueError, match="backoff_max_s must be >= backoff_initial_s"):
        RenderSourcesConfig(backoff_initial_s=5, backoff_max_s=1)
    with pytest.raises(ValueError):
        RenderSourcesConfig(warm_s=-1)
    raw = {"wall": WALL, "render": {"sources": {"keyframes_only_max": [-1, 5], "warm_s": "x"}}}
    with pytest.raises(ConfigError) as e:
        parse_config(raw)
    assert {str(p) for p in e.value.problems} == {
        "render.sources.keyframes_only_max[0]: must be >= 0",
        "render.sources.warm_s: must be a number",
    }


# --- the hub without network -------------------------------------------------------------


def test_hub_patterns_lifecycle_and_warm(hub_factory) -> None:  # type: ignore[no-untyped-def]
    hub = hub_factory([pattern_source("a"), pattern_source("b", "clock")], warm_s=0.4)
    assert hub.view("a").phase is SourcePhase.IDLE
    hub.demand("wall:main", {"a": (960, 540), "b": (480, 270)})
    va = hub.view("a")
    assert va.phase is SourcePhase.LIVE and va.frame is not None
    assert (va.frame.width, va.frame.height) == (960, 540)
    # A second holder at a larger size: the pattern is drawn at the larger size.
    hub.demand("preview", {"a": (1920, 1080)})
    assert hub.view("a").frame.width == 1920  # type: ignore[union-attr]
    hub.demand("preview", {})
    hub.demand("wall:main", {"b": (480, 270)})
    # "a" is released but stays warm for a while, then stops.
    assert hub.view("a").phase is SourcePhase.LIVE
    row = next(r for r in hub.stats() if r["source"] == "a")
    assert row["warm_for_s"] is not None and row["holders"] == []
    wait_for(lambda: hub.view("a").phase is SourcePhase.IDLE, timeout=5)
    assert hub.view("b").phase is SourcePhase.LIVE


def test_unknown_size_gets_the_full_picture(hub_factory) -> None:  # type: ignore[no-untyped-def]
    hub = hub_factory([pattern_source("a")], keyframes_only_max=(320, 180))
    hub.demand("thumbs", {"a": (0, 0)})
    f = hub.view("a").frame
    assert f is not None and (f.width, f.height) == (1920, 1080)
    slot = hub._slots["a"]
    assert slot.keyframes_only() is False


def test_hub_refuses_bad_sizes_and_names_unknown_sources(hub_factory) -> None:  # type: ignore[no-untyped-def]
    hub = hub_factory([pattern_source("a")])
    for bad in ((-1, 10), (10, 16385)):
        with pytest.raises(ValueError, match="out of range"):
            hub.demand("wall:main", {"a": bad})
    with pytest.raises(ValueError, match="at most 4096"):
        hub.demand("wall:main", {f"s{i}": (1, 1) for i in range(4097)})
    # Nothing was disturbed by the refused demands.
    assert hub.holders() == {}
    v = hub.view("ghost")
    assert v.phase is SourcePhase.FAILED and v.error == "no source 'ghost' configured"
    hub.demand("wall:main", {"ghost": (100, 100), "a": (100, 100)})
    assert hub.view("a").phase is SourcePhase.LIVE


def test_sources_without_stream_or_over_the_limit_fail_with_a_reason(hub_factory) -> None:  # type: ignore[no-untyped-def]
    mobile = SourceConfig.model_validate({"id": "m", "name": "m", "kind": "mobile"})
    files = [
        SourceConfig.model_validate(
            {"id": f"f{i}", "name": "f", "kind": "file", "url": f"/nonexistent/{i}.mp4"}
        )
        for i in range(3)
    ]
    hub = hub_factory([mobile, *files], max_decoders=2)
    hub.demand("wall:main", {"m": (100, 100), **{f.id: (100, 100) for f in files}})
    v = hub.view("m")
    assert v.phase is SourcePhase.FAILED and "fed by its own service" in (v.error or "")
    over = [hub.view(f.id) for f in files]
    limited = [v for v in over if v.error and "decoder limit reached" in v.error]
    assert len(limited) == 1
    assert hub.decoder_threads() <= 2
    # The missing files fail with the path named.
    wait_for(lambda: all(v.phase is SourcePhase.FAILED for v in map(hub.view, ["f0", "f1"])))
    assert "not found" in (hub.view("f0").error or "")


def test_configure_adds_removes_and_restarts(hub_factory) -> None:  # type: ignore[no-untyped-def]
    hub = hub_factory([pattern_source("a"), pattern_source("b")])
    hub.demand("wall:main", {"a": (320, 180), "b": (320, 180)})
    hub.configure([pattern_source("a", "smpte"), pattern_source("c")])
    assert hub.view("b").phase is SourcePhase.FAILED  # removed
    # "a" changed: restarted with the new pattern, still demanded, so live again.
    assert hub.view("a").phase is SourcePhase.LIVE
    assert {r["source"] for r in hub.stats()} == {"a", "c"}


def test_metrics_collector_exports_every_source(hub_factory) -> None:  # type: ignore[no-untyped-def]
    hub = hub_factory([pattern_source("a"), pattern_source("b")])
    hub.demand("wall:main", {"a": (320, 180)})
    reg = CollectorRegistry()
    reg.register(hub.collector())
    text = generate_latest(reg).decode()
    assert 'wallctl_source_live{source="a"} 1.0' in text
    assert 'wallctl_source_live{source="b"} 0.0' in text
    assert 'wallctl_source_fps{source="a"} 25.0' in text
    assert "wallctl_source_reconnects_total" in text


def test_view_is_safe_from_many_threads(hub_factory) -> None:  # type: ignore[no-untyped-def]
    hub = hub_factory([pattern_source("a", "gradient")])
    hub.demand("wall:main", {"a": (320, 180)})
    seen: list[int] = []
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            for _ in range(200):
                f = hub.view("a").frame
                # Whichever size the last demand asked for, never a torn picture.
                assert f is not None and f.y.shape in ((180, 320), (180, 322))
                assert f.u.shape == (90, f.y.shape[1] // 2)
                seen.append(f.seq)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    for i in range(50):
        hub.demand("wall:main", {"a": (320 + 2 * (i % 2), 180)})
    for t in threads:
        t.join()
    assert not errors and len(seen) == 800
