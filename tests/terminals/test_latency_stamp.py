"""bench/webrtc.py's glass-to-glass stamp: a capture time drawn into the pixels before
encoding must read back after H.264, and a damaged stamp must read as None, not as
another time."""

from __future__ import annotations

import fractions
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import av
import numpy as np

BENCH = Path(__file__).parents[2] / "bench"


def bench_webrtc() -> ModuleType:
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location("bench_webrtc", BENCH / "webrtc.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCH))


def test_stamps_survive_h264_at_a_low_bit_rate() -> None:
    wb = bench_webrtc()
    enc = av.CodecContext.create("libx264", "w")
    enc.width, enc.height, enc.pix_fmt = 1280, 720, "yuv420p"
    enc.time_base = fractions.Fraction(1, 90000)
    enc.framerate = fractions.Fraction(25, 1)
    enc.bit_rate = 1_000_000  # half the bench's 2 Mbit/s
    enc.options = {"preset": "ultrafast", "tune": "zerolatency"}
    dec = av.CodecContext.create("h264", "r")
    # A detailed picture (waves and grain) that moves every frame, as a camera's would.
    y, x = np.mgrid[0:1080, 0 : 1280 + 4 * 30]
    grain = np.random.default_rng(7).normal(0, 12, x.shape)
    texture = np.clip(128 + 70 * np.sin(x / 23) * np.cos(y / 17) + grain, 0, 255).astype(np.uint8)
    sent: list[int] = []
    read: list[int | None] = []
    for i in range(30):
        picture = texture[:, 4 * i : 4 * i + 1280].copy()
        value = (0xFFFFF0 + i * 37) & wb.STAMP_MASK  # wraps past 2^24
        sent.append(value)
        wb.draw_stamp(picture[:720], value)
        frame = av.VideoFrame.from_ndarray(picture, format="yuv420p")
        frame.pts, frame.time_base = i * 3600, enc.time_base
        for packet in enc.encode(frame):
            read += [wb.read_stamp(wb.luma_of(d)) for d in dec.decode(packet)]
    assert len(read) >= 25
    good = [v for v in read if v is not None]
    # Never a value that was not sent, and in the order sent (a starved encoder may
    # repeat a picture, and so its stamp: the bench counts a stamp's first decode).
    positions = [sent.index(v) for v in good]
    assert positions == sorted(positions)
    assert len(set(good)) >= 0.9 * len(sent)


def test_a_damaged_stamp_reads_as_none() -> None:
    wb = bench_webrtc()
    luma = np.full((720, 1280), 128, np.uint8)
    assert wb.read_stamp(luma) is None  # grey: every bit reads 1, the check fails
    wb.draw_stamp(luma, 0x123456)
    assert wb.read_stamp(luma) == 0x123456
    block = wb.STAMP_BLOCK
    for bit in range(wb.STAMP_BITS):  # any single flipped bit is caught by the check
        damaged = luma.copy()
        cell = damaged[:block, bit * block : (bit + 1) * block]
        cell[:] = 251 - cell
        assert wb.read_stamp(damaged) is None, bit
