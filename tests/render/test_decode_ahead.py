"""Local files decoded a few pictures ahead: handed over on time, looped without a seam,
stopped without leaving pictures or threads behind; live streams never wait."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from typing import Any

from wallctl.config import SourceConfig
from wallctl.render.decoder import AHEAD_S, DecodeSession
from wallctl.render.frames import Frame, Plane, SourcePhase
from wallctl.render.sourcehub import SourceHub, SourceSlot

from .conftest import Media, RtspServer, wait_for

Hubs = Callable[..., SourceHub]
PERIOD = 0.04  # the test clips are 25 fps


def src(sid: str, kind: str, url: str, **kw: Any) -> SourceConfig:
    return SourceConfig.model_validate({"id": sid, "name": sid, "kind": kind, "url": url, **kw})


def record_offers(slot: SourceSlot) -> list[tuple[float, float | None, float | None]]:
    """Every picture the slot is offered: (monotonic time, stream pts, due)."""
    seen: list[tuple[float, float | None, float | None]] = []
    real = slot.offer

    def offer(
        session: DecodeSession,
        y: Plane,
        u: Plane,
        v: Plane,
        pts: float | None,
        due: float | None = None,
    ) -> None:
        seen.append((time.monotonic(), pts, due))
        real(session, y, u, v, pts, due)

    slot.offer = offer  # type: ignore[method-assign]
    return seen


def watch(hub: SourceHub, sid: str, seconds: float) -> list[tuple[float, Frame]]:
    """(when first seen, frame) for every new picture ``view`` shows, polled every 2 ms."""
    shown: list[tuple[float, Frame]] = []
    end = time.monotonic() + seconds
    last = -1
    while time.monotonic() < end:
        frame = hub.view(sid).frame
        now = time.monotonic()
        if frame is not None and frame.seq != last:
            shown.append((now, frame))
            last = frame.seq
        time.sleep(0.002)
    return shown


def test_pictures_are_decoded_ahead_and_shown_at_their_time(
    hub_factory: Hubs, media: Media
) -> None:
    hub = hub_factory([src("f", "file", str(media.h264_320))])
    slot = hub._slots["f"]
    offers = record_offers(slot)
    hub.demand("wall:main", {"f": (480, 270)})
    wait_for(lambda: hub.view("f").phase is SourcePhase.LIVE)
    shown = watch(hub, "f", 1.5)
    # Decoded ahead: most pictures were offered before their time...
    early = [due - at for at, _, due in offers[2:] if due is not None]
    assert len(early) >= 20 and sum(1 for e in early if e > PERIOD) > len(early) / 2, early
    assert max(early) <= AHEAD_S + 0.05
    # ...and a turn of the pool decodes several in a row (few wake-ups).
    bursts = sum(1 for a, b in itertools.pairwise(offers) if b[0] - a[0] > 0.02)
    assert bursts < len(offers) / 2.5, (bursts, len(offers))
    # Never shown before its time; a picture comes up within a period or so of it
    # (generous: the machine is shared), in order, at the file's rate.
    assert len(shown) >= 25
    for seen_at, frame in shown:
        assert frame.arrived <= seen_at + 1e-3
    lateness = sorted(seen_at - f.arrived for seen_at, f in shown)
    assert lateness[len(lateness) // 2] < 0.03, lateness
    seqs = [f.seq for _, f in shown]
    assert seqs == sorted(seqs)
    span = shown[-1][1].arrived - shown[0][1].arrived
    pictures = shown[-1][1].seq - shown[0][1].seq
    assert abs(span / pictures - PERIOD) < 0.005, (span, pictures)


def test_a_looping_file_has_no_seam(hub_factory: Hubs, media: Media) -> None:
    clip = media.h264("one_s_loop.mp4", 320, 180, 1)
    hub = hub_factory([src("f", "file", str(clip))])
    offers = record_offers(hub._slots["f"])
    hub.demand("wall:main", {"f": (480, 270)})
    wait_for(lambda: len(offers) >= 60, timeout=10)  # past the end of the 1 s file
    dues = [(pts, due) for _, pts, due in offers if due is not None]
    seams = [i for i in range(1, len(dues)) if (dues[i][0] or 0) < (dues[i - 1][0] or 0)]
    assert seams, "the file did not loop"
    for i in seams:
        # The first picture after the seam is one period after the last before it: no
        # gap, no picture shown twice as long, none jumping ahead of those queued.
        step = dues[i][1] - dues[i - 1][1]
        assert abs(step - PERIOD) < 0.002, (i, step)
    steps = [b[1] - a[1] for a, b in itertools.pairwise(dues)]
    assert all(abs(s - PERIOD) < 0.002 for s in steps), steps


def test_stopping_drops_the_pictures_ahead_and_ends_the_threads(
    hub_factory: Hubs, media: Media
) -> None:
    before = {t.name for t in threading.enumerate()}
    sources = [src(f"f{i}", "file", str(media.h264_320)) for i in range(4)]
    hub = hub_factory(sources)
    hub.demand("wall:main", {s.id: (480, 270) for s in sources})
    wait_for(lambda: all(hub._slots[s.id]._ahead for s in sources))
    slot = hub._slots["f0"]
    session = slot.active
    assert session is not None
    hub.demand("wall:main", {s.id: (480, 270) for s in sources[1:]})
    # f0 stays warm (warm_s) until it cools: releasing it keeps decoding...
    time.sleep(0.3)
    assert slot._ahead and session.alive()
    hub.close()
    assert session.join(2.0)
    assert all(not hub._slots[s.id]._ahead for s in sources)
    assert all(hub.view(s.id).frame is None for s in sources)
    assert hub.pool.sessions() == 0
    wait_for(
        lambda: (
            not [
                t.name
                for t in threading.enumerate()
                if t.name not in before and t.name.startswith("decode-")
            ]
        ),
        timeout=5,
    )


def test_a_live_stream_is_shown_as_it_is_decoded(
    hub_factory: Hubs, media: Media, rtsp_server: Callable[..., RtspServer]
) -> None:
    srv = rtsp_server({"cam": f"loop:{media.h264_320}"})
    hub = hub_factory([src("cam", "rtsp", srv.url("cam"))])
    offers = record_offers(hub._slots["cam"])
    hub.demand("wall:main", {"cam": (480, 270)})
    wait_for(lambda: len(offers) >= 15)
    assert all(due is None for _, _, due in offers)
    assert not hub._slots["cam"]._ahead
    frame = hub.view("cam").frame
    assert frame is not None and time.monotonic() - frame.arrived < 0.5


def test_large_pictures_are_decoded_just_in_time(hub_factory: Hubs, media: Media) -> None:
    clip = media.h264("big_1s.mp4", 1280, 736, 1)  # just over AHEAD_MAX_PIXELS
    hub = hub_factory([src("f", "file", str(clip))])
    offers = record_offers(hub._slots["f"])
    hub.demand("wall:main", {"f": (0, 0)})  # size not known: the full picture
    wait_for(lambda: len(offers) >= 10)
    # The first picture decides: every later one is handed over as it is decoded, at
    # its time (paced), with nothing queued.
    assert all(due is None for _, _, due in offers[1:])
    assert not hub._slots["f"]._ahead
    span = offers[-1][0] - offers[1][0]
    assert span >= (len(offers) - 3) * PERIOD, "not paced"
