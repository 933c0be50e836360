"""Recording without re-encoding: segments, index, disk-full refusal, crash recovery,
search (API and CLI) and export of a time span."""

from __future__ import annotations

import itertools
import json
import os
import signal
import struct
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import av
import pytest

from wallctl.cli import main
from wallctl.recordings.export import ExportError, export_span
from wallctl.recordings.index import SegmentIndex
from wallctl.recordings.recorder import Alarm, Recorder, segment_name
from wallctl.recordings.repair import truncate_to_complete
from wallctl.recordings.retention import prune
from wallctl.store import Store
from wallctl.terminals.config import RecordingsConfig
from wallctl.terminals.h264 import is_keyframe

SOURCE = "mobile/patrol-7"


def clip_frames(clip: Path) -> list[tuple[bytes, int, bool]]:
    """The clip's access units as the relay hands them over: Annex-B, 90 kHz pts."""
    out = []
    with av.open(str(clip)) as c:
        s = c.streams.video[0]
        first = None
        for p in c.demux(s):
            if p.size == 0 or p.pts is None:
                continue
            first = p.pts if first is None else first
            data = bytes(p)
            out.append((data, int(p.pts - first), is_keyframe(data)))
    return out


def decoded(path: str | Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(c.streams.video[0]))


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "wallctl.db", "normal")
    yield s  # type: ignore[misc]
    s.close()


def record(
    store: Store,
    root: Path,
    frames: list[tuple[bytes, int, bool]],
    config: RecordingsConfig,
    alarms: list[tuple[Alarm | None, str]] | None = None,
) -> Recorder:
    rec = Recorder(
        config,
        root,
        SegmentIndex(store),
        (lambda a, s: alarms.append((a, s))) if alarms is not None else None,
    )
    for data, pts, kf in frames:
        rec.on_frame(SOURCE, "patrol-7", "video", data, pts, kf)
    rec.close()
    return rec


def test_segments_start_at_keyframes_and_play_on_their_own(
    store: Store, tmp_path: Path, clip: Path
) -> None:
    frames = clip_frames(clip)  # 6 s at 25 fps, a keyframe every second
    t0 = time.time()
    record(store, tmp_path / "rec", frames, RecordingsConfig(segment_s=2, min_free_mb=0))
    segs = SegmentIndex(store).search(SOURCE, None, 0, time.time() + 60)
    assert len(segs) == 3
    assert all(s.state == "closed" and s.identity == "patrol-7" for s in segs)
    assert sum(decoded(s.path) for s in segs) == len(frames), "every frame, none re-encoded"
    # Times from the media clock: consecutive, two seconds each.
    assert abs(segs[0].start - t0) < 5
    for a, b in itertools.pairwise(segs):
        assert b.start == pytest.approx(a.start + 2, abs=0.05)
        assert a.end == pytest.approx(b.start, abs=0.05)
    # The bytes are the terminal's own: the first segment starts with its first keyframe.
    with av.open(segs[0].path) as c:
        first = next(p for p in c.demux(c.streams.video[0]) if p.size)
        assert bytes(first).endswith(frames[0][0][-64:])
    assert Path(segs[0].path).relative_to(tmp_path / "rec").parts[:2] == ("mobile", "patrol-7")
    # Search by identity and by a span that touches only the middle segment.
    assert [
        s.id
        for s in SegmentIndex(store).search(
            None, "patrol-7", segs[1].start + 0.5, segs[1].start + 1
        )
    ] == [segs[1].id]
    assert SegmentIndex(store).search("mobile/other", None, 0, time.time() + 60) == []


def test_export_stitches_a_span_across_segments_without_reencoding(
    store: Store, tmp_path: Path, clip: Path
) -> None:
    frames = clip_frames(clip)
    record(store, tmp_path / "rec", frames, RecordingsConfig(segment_s=2, min_free_mb=0))
    segs = SegmentIndex(store).search(SOURCE, None, 0, time.time() + 60)
    start, end = segs[0].start + 1.5, segs[0].start + 4.5
    out = tmp_path / "span.mp4"
    n = export_span(segs, start, end, out)
    # From the keyframe at 1.0 s (the last one before 1.5 s) to 4.5 s: 3.5 s of 25 fps.
    assert n == pytest.approx(88, abs=2)
    assert decoded(out) == n
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.name == "h264"
        pts = [p.pts for p in c.demux(c.streams.video[0]) if p.size]
    assert pts == sorted(pts), "timestamps run on across the segment boundaries"
    with pytest.raises(ExportError, match="must end after"):
        export_span(segs, end, start, out)
    with pytest.raises(ExportError, match="no picture"):
        export_span(segs, segs[-1].end + 100, segs[-1].end + 200, tmp_path / "none.mp4")
    assert not (tmp_path / "none.mp4").exists()


def test_disk_nearly_full_refuses_new_segments_and_raises_the_alarm(
    store: Store, tmp_path: Path, clip: Path
) -> None:
    frames = clip_frames(clip)
    old = tmp_path / "rec" / "old.ts"
    old.parent.mkdir(parents=True)
    old.write_bytes(b"\x47" * 188 * 10)
    alarms: list[tuple[Alarm | None, str]] = []
    # More free space asked for than any disk here has.
    rec = record(store, tmp_path / "rec", frames, RecordingsConfig(min_free_mb=10_000_000), alarms)
    assert SegmentIndex(store).search(None, None, 0, time.time() + 60) == []
    assert len(alarms) == 1, "one alarm, not one per keyframe"
    alarm, source = alarms[0]
    assert source == SOURCE and alarm is not None and alarm.reason == "disk_full"
    assert SOURCE in rec.alarms
    assert old.read_bytes() == b"\x47" * 188 * 10, "segments already written are untouched"
    assert list((tmp_path / "rec").rglob("*.mp4")) == []


def test_recording_resumes_when_space_is_back(store: Store, tmp_path: Path, clip: Path) -> None:
    frames = clip_frames(clip)
    alarms: list[tuple[Alarm | None, str]] = []
    rec = Recorder(
        RecordingsConfig(min_free_mb=10_000_000, segment_s=2),
        tmp_path / "r",
        SegmentIndex(store),
        lambda a, s: alarms.append((a, s)),
    )
    for data, pts, kf in frames[:30]:
        rec.on_frame(SOURCE, "patrol-7", "video", data, pts, kf)
    time.sleep(0.5)
    rec.config = RecordingsConfig(min_free_mb=0, segment_s=2)
    for data, pts, kf in frames[30:]:
        rec.on_frame(SOURCE, "patrol-7", "video", data, pts, kf)
    rec.close()
    assert [a is None for a, _ in alarms] == [False, True]
    segs = SegmentIndex(store).search(SOURCE, None, 0, time.time() + 60)
    assert segs and decoded(segs[0].path) > 0


CRASH = """
import sys, time
from pathlib import Path
from wallctl.recordings.index import SegmentIndex
from wallctl.recordings.repair import truncate_to_complete
from wallctl.recordings.retention import prune
from wallctl.recordings.recorder import Recorder
from wallctl.store import Store
from wallctl.terminals.config import RecordingsConfig
sys.path.insert(0, {tests!r})
from test_recordings import clip_frames, SOURCE
frames = clip_frames(Path({clip!r}))
store = Store(Path({db!r}), "normal")
rec = Recorder(RecordingsConfig(segment_s=60, min_free_mb=0), Path({root!r}), SegmentIndex(store))
for data, pts, kf in frames:
    rec.on_frame(SOURCE, "patrol-7", "video", data, pts, kf)
while rec.writers[SOURCE].queue.qsize():
    time.sleep(0.05)
time.sleep(0.3)
print("recording", flush=True)
time.sleep(60)
"""


def test_a_crash_leaves_a_playable_segment_that_is_recovered(tmp_path: Path, clip: Path) -> None:
    db, root = tmp_path / "wallctl.db", tmp_path / "rec"
    code = CRASH.format(
        tests=str(Path(__file__).parent), clip=str(clip), db=str(db), root=str(root)
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "recording"
    finally:
        os.kill(child.pid, signal.SIGKILL)  # mid-segment, nothing closed
        child.wait(10)
    store = Store(db, "normal")
    try:
        index = SegmentIndex(store)
        (seg,) = index.search(SOURCE, None, 0, time.time() + 60)
        assert seg.state == "open"
        assert index.recover() == 1
        (seg,) = index.search(SOURCE, None, 0, time.time() + 60)
        assert seg.state == "recovered" and seg.bytes == Path(seg.path).stat().st_size > 0
        # It plays, losing at most the tail the muxer had not written yet.
        assert decoded(seg.path) >= 100
        assert index.recover() == 0
    finally:
        store.close()


def test_segment_names_sort_by_time_and_keep_sources_apart() -> None:
    ts = datetime(2026, 11, 29, 10, 42, 5, 250000, tzinfo=UTC).timestamp()
    assert segment_name("mobile/patrol-7", ts) == Path("mobile/patrol-7/2026/11/29/104205-250.mp4")
    assert segment_name("mobile/a", ts) < segment_name("mobile/a", ts + 1)


def test_cli_search_and_export(
    tmp_path: Path, clip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    store = Store(state / "wallctl.db", "normal")
    try:
        cfg = RecordingsConfig(segment_s=2, min_free_mb=0)
        record(store, tmp_path / "rec", clip_frames(clip), cfg)
        segs = SegmentIndex(store).search(SOURCE, None, 0, time.time() + 60)
    finally:
        store.close()

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            code = main(["recordings", args[0], "--state-dir", str(state), *args[1:]])
        except SystemExit as e:
            code = int(e.code or 0)
        out = capsys.readouterr()
        return code, out.out, out.err

    span = ["--from", str(segs[0].start), "--to", str(segs[-1].end)]
    code, out, err = run("search", "--source", SOURCE, *span, "--json")
    assert code == 0, err
    assert [s["id"] for s in json.loads(out)] == [s.id for s in segs]
    code, out, err = run("search", "--identity", "patrol-7", *span)
    assert code == 0 and len(out.splitlines()) == 3 and "closed" in out
    target = tmp_path / "all.mp4"
    code, out, err = run("export", "--source", SOURCE, *span, "-o", str(target))
    assert code == 0, err
    assert decoded(target) == 150
    code, out, err = run("search", "--source", "mobile/nobody", *span)
    assert code == 3 and "no recordings" in err
    code, out, err = run("search", "--from", "yesterday", "--to", "1")
    assert code == 2 and "ISO 8601" in err
    code, out, err = run("search", "--from", "2026-11-23T10:00:00Z", "--to", "2026-11-23T09:00Z")
    assert code == 2 and "before" in err


def box(kind: bytes, body: bytes = b"") -> bytes:
    return struct.pack(">I4s", 8 + len(body), kind) + body


@pytest.mark.parametrize(
    ("tail", "kept"),
    [
        (b"", "all"),
        (box(b"moof", b"x" * 20), "before"),  # a fragment header without its media
        (box(b"moof", b"x" * 20) + box(b"mdat", b"y" * 50)[:30], "before"),  # media cut
        (b"\x00\x00\x00", "before"),  # a box header cut short
        (struct.pack(">I4s", 4, b"free"), "before"),  # an impossible size
        (struct.pack(">I4sQ", 1, b"mdat", 10**12), "before"),  # a 64-bit size past the end
    ],
)
def test_repair_cuts_back_to_the_last_whole_fragment(
    tmp_path: Path, tail: bytes, kept: str
) -> None:
    whole = box(b"ftyp", b"isom") + box(b"moov", b"m" * 40)
    whole += box(b"moof", b"f" * 16) + box(b"mdat", b"d" * 100)
    path = tmp_path / "seg.mp4"
    path.write_bytes(whole + tail)
    before, _ = truncate_to_complete(path)
    assert before == len(whole + tail)
    assert path.read_bytes() == (whole + tail if kept == "all" else whole)


def test_voice_is_recorded_beside_the_picture_and_exported(store: Store, tmp_path: Path) -> None:
    """Opus from the terminal's microphone lands in the same MP4, as it came."""
    src = tmp_path / "av.mkv"
    subprocess.run(
        [
            "ffmpeg",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-t",
            "3",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "25",
            "-bsf:v",
            "h264_mp4toannexb",
            "-c:a",
            "libopus",
            "-f",
            "matroska",
            str(src),
        ],
        check=True,
    )
    items: list[tuple[float, str, bytes, int, bool]] = []
    with av.open(str(src)) as c:
        # Annex-B as from the relay (Matroska keeps length-prefixed NAL units).
        annexb = av.BitStreamFilterContext("h264_mp4toannexb", c.streams.video[0])
        packets: list[tuple[str, Any]] = []
        for p in c.demux():
            if p.size and p.pts is not None:
                kind = p.stream.type
                packets += [(kind, q) for q in (annexb.filter(p) if kind == "video" else [p])]
        for kind, p in packets:
            assert p.pts is not None
            t = float(p.pts * p.time_base)
            data = bytes(p)
            rate = 90000 if kind == "video" else 48000
            items.append((t, kind, data, round(t * rate), kind == "video" and is_keyframe(data)))
    items.sort(key=lambda x: x[0])
    rec = Recorder(RecordingsConfig(min_free_mb=0), tmp_path / "rec", SegmentIndex(store))
    for _, kind, data, pts, kf in items:
        rec.on_frame(SOURCE, "patrol-7", kind, data, pts, kf, audio=True)
    rec.close()
    (seg,) = SegmentIndex(store).search(SOURCE, None, 0, time.time() + 60)
    assert seg.codecs == "h264,opus"
    with av.open(seg.path) as c:
        assert [s.codec_context.name for s in c.streams] == ["h264", "opus"]
        audio = sum(f.samples for f in c.decode(audio=0))
    assert audio == pytest.approx(3 * 48000, rel=0.05), "every Opus packet, decodable"
    out = tmp_path / "voice.mp4"
    export_span([seg], seg.start, seg.end or seg.start + 3, out)
    with av.open(str(out)) as c:
        assert {s.type for s in c.streams} == {"video", "audio"}
        assert sum(f.samples for f in c.decode(audio=0)) > 2 * 48000


def test_retention_deletes_only_segments_past_it(store: Store, tmp_path: Path, clip: Path) -> None:
    record(store, tmp_path / "rec", clip_frames(clip), RecordingsConfig(segment_s=2, min_free_mb=0))
    index = SegmentIndex(store)
    segs = index.search(SOURCE, None, 0, time.time() + 60)
    assert len(segs) == 3
    # Everything that ended before the last segment's start goes; the last one stays.
    assert prune(index, segs[-1].start + 0.01) == 2
    (left,) = index.search(SOURCE, None, 0, time.time() + 60)
    assert left.id == segs[-1].id and Path(left.path).exists()
    assert not Path(segs[0].path).exists() and not Path(segs[1].path).exists()
    assert prune(index, segs[-1].start + 0.01) == 0


def test_a_new_picture_size_starts_a_new_segment(store: Store, tmp_path: Path) -> None:
    """A phone's camera ramps up (360p to 720p): each segment's header fits its pictures."""
    from .conftest import make_clip  # here: the crash test's child imports this module bare

    small = make_clip(tmp_path / "small.ts", seconds=2, size="320x180")
    large = make_clip(tmp_path / "large.ts", seconds=2, size="640x360")
    frames = clip_frames(small)
    last = frames[-1][1] + 3600
    frames += [(d, p + last, k) for d, p, k in clip_frames(large)]
    record(store, tmp_path / "rec", frames, RecordingsConfig(segment_s=60, min_free_mb=0))
    segs = SegmentIndex(store).search(SOURCE, None, 0, time.time() + 60)
    sizes = []
    for seg in segs:
        with av.open(seg.path) as c:
            cc = c.streams.video[0].codec_context
            sizes.append((cc.width, cc.height))
            assert decoded(seg.path) == 50
    assert sizes == [(320, 180), (640, 360)]
