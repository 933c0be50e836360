"""A time span of recordings as one file, stitched without re-encoding.

Packets are copied from each segment overlapping the span, from the last video keyframe
at or before the span's start (a picture cannot start elsewhere) to the span's end, with
timestamps made continuous across segments. A segment's packet times are its index start
time plus the packet's timestamp (segments start at 0). The output's container follows
its name (``.mp4``, ``.mkv``); H.264 and Opus are copied as they are.
"""

from __future__ import annotations

import fractions
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import av

from wallctl.recordings.index import Segment


class ExportError(Exception):
    pass


def _times(seg: Segment) -> list[tuple[float, str, bool]]:
    out: list[tuple[float, str, bool]] = []
    with av.open(seg.path) as src:
        for p in src.demux():
            if p.pts is None or p.size == 0 or p.stream.type not in ("video", "audio"):
                continue
            out.append((seg.start + float(p.pts * p.time_base), p.stream.type, p.is_keyframe))
    return out


def export_span(segments: Sequence[Segment], start: float, end: float, out: Path) -> int:
    """Write the packets of ``segments`` within [start, end] to ``out``; return how many
    video frames it holds."""
    if end <= start:
        raise ExportError("the span must end after it starts")
    segs = sorted((s for s in segments if Path(s.path).is_file()), key=lambda s: s.start)
    if not segs:
        raise ExportError("no recording in that span")
    # Where the span can start: the last keyframe at or before `start`, else the first after.
    times = [x for s in segs for x in _times(s)]
    if not times or max(t for t, _, _ in times) < start or min(t for t, _, _ in times) > end:
        raise ExportError("no picture in that span")
    keyframes = [t for t, kind, kf in times if kind == "video" and kf]
    before = [t for t in keyframes if t <= start]
    after = [t for t in keyframes if start < t <= end]
    if not before and not after:
        raise ExportError("no picture in that span")
    cut = max(before) if before else min(after)
    dst = av.open(str(out), "w")
    outputs: dict[str, Any] = {}
    # Every output stream exists before the first packet is written (the header).
    for seg in segs:
        with av.open(seg.path) as src:
            for st in src.streams:
                if st.type in ("video", "audio") and st.type not in outputs:
                    outputs[st.type] = dst.add_stream_from_template(st)
    last: dict[str, int] = {}
    frames = 0
    try:
        for seg in segs:
            with av.open(seg.path) as src:
                for p in src.demux():
                    kind = p.stream.type
                    if p.pts is None or p.size == 0 or kind not in ("video", "audio"):
                        continue
                    t = seg.start + float(p.pts * p.time_base)
                    if t < cut - 1e-6 or t > end:
                        continue
                    ostream = outputs[kind]
                    tb = fractions.Fraction(1, 90000 if kind == "video" else 48000)
                    pts = round((t - cut) / tb)
                    if pts <= last.get(kind, -1):
                        pts = last[kind] + 1
                    last[kind] = pts
                    p.pts = p.dts = pts
                    p.time_base = tb
                    p.stream = ostream
                    dst.mux(p)
                    frames += kind == "video"
    finally:
        dst.close()
    if frames == 0:
        out.unlink(missing_ok=True)
        raise ExportError("no picture in that span")
    return frames
