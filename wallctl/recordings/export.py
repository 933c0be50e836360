"""A time span of recordings as one MPEG-TS file, stitched without re-encoding.

Packets are copied from each segment overlapping the span: from the last keyframe at or
before the span's start (a picture cannot start elsewhere) to the span's end, with
timestamps made continuous across segments. Segment times come from the index
(wall-clock start of each), packet times from the segment's own timestamps.
"""

from __future__ import annotations

import fractions
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import av

from wallctl.recordings.index import Segment

TIME_BASE = fractions.Fraction(1, 90000)


class ExportError(Exception):
    pass


def export_span(segments: Sequence[Segment], start: float, end: float, out: Path) -> int:
    """Write the packets of ``segments`` within [start, end] to ``out``; return how many."""
    if end <= start:
        raise ExportError("the span must end after it starts")
    segs = sorted((s for s in segments if Path(s.path).is_file()), key=lambda s: s.start)
    if not segs:
        raise ExportError("no recording in that span")
    dst = av.open(str(out), "w", format="mpegts")
    ostream = dst.add_stream("h264")
    ostream.time_base = TIME_BASE
    written = 0
    base: int | None = None  # output pts of the span's first packet
    try:
        for seg in segs:
            with av.open(seg.path) as src:
                if not src.streams.video:
                    continue
                istream = src.streams.video[0]
                tb = istream.time_base or TIME_BASE
                first_pts: int | None = None
                pending: list[av.Packet[Any]] = []  # since the last keyframe, before the start
                started = base is not None
                for p in src.demux(istream):
                    if p.pts is None or p.size == 0:
                        continue
                    if first_pts is None:
                        first_pts = p.pts
                    assert first_pts is not None
                    at = seg.start + float((p.pts - first_pts) * tb)
                    if at > end:
                        break
                    if not started:
                        if p.is_keyframe:
                            pending = []
                        pending.append(p)
                        if at < start:
                            continue
                        started = True
                        batch = pending
                    else:
                        batch = [p]
                    for q in batch:
                        assert q.pts is not None
                        t = seg.start + float((q.pts - first_pts) * tb)
                        out_pts = round(t * 90000)
                        if base is None:
                            if not q.is_keyframe:
                                continue
                            base = out_pts
                        q.pts = q.dts = out_pts - base
                        q.time_base = TIME_BASE
                        q.stream = ostream
                        dst.mux(q)
                        written += 1
    finally:
        dst.close()
    if written == 0:
        out.unlink(missing_ok=True)
        raise ExportError("no picture in that span")
    return written
