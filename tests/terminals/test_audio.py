"""The centre's loudspeaker: mixing, who is heard, and real ALSA playback without a card.

ALSA's ``file`` plugin (over the ``null`` device) records what is played into a raw
file, through the same libasound PyAV's FFmpeg uses: the tone sent in must come out
(numpy's FFT), mixed when two terminals are heard, silent when none is.
"""

from __future__ import annotations

import fractions
import threading
import time
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
import pytest
from pydantic import ValidationError

from wallctl.terminals.audio import AudioOutput, Hearing, window_is_full
from wallctl.terminals.audio_config import TerminalAudioConfig
from wallctl.terminals.mixer import RATE, Mixer, as_stereo
from wallctl.wall import Rect
from wallctl.wallstate import Placement, Window


def opus_tone(hz: float, seconds: float, channels: int = 1, level: float = 0.3) -> list[bytes]:
    """Opus packets (20 ms) of a sine tone, encoded by PyAV's libopus."""
    enc = av.CodecContext.create("libopus", "w")
    enc.sample_rate = RATE
    enc.layout = "mono" if channels == 1 else "stereo"
    enc.format = "s16"
    enc.time_base = fractions.Fraction(1, RATE)
    n = 960
    packets: list[bytes] = []
    total = int(seconds * RATE)
    t = np.arange(total) / RATE
    wave = (np.sin(2 * np.pi * hz * t) * level * 32767).astype(np.int16)
    for i in range(0, total - n + 1, n):
        block = np.repeat(wave[i : i + n][:, None], channels, axis=1).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(block, format="s16", layout=enc.layout.name)
        frame.sample_rate = RATE
        frame.pts = i
        packets += [bytes(p) for p in enc.encode(frame)]
    packets += [bytes(p) for p in enc.encode(None)]
    return packets


def peaks(samples: npt.NDArray[np.int16], count: int = 2) -> list[float]:
    """The ``count`` strongest frequencies (Hz) of a mono signal, strongest first."""
    x = samples.astype(np.float64)
    x -= x.mean()
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    hz = np.fft.rfftfreq(len(x), 1 / RATE)
    found: list[float] = []
    for i in np.argsort(spectrum)[::-1]:
        if all(abs(hz[i] - f) > 50 for f in found):
            found.append(float(hz[i]))
        if len(found) == count:
            break
    return found


def alsa_tap(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An ALSA device "centre_tap" that writes what it plays to a file; its path."""
    out = tmp / "played.raw"
    conf = tmp / "asound.conf"
    conf.write_text(
        "pcm.centre_tap {\n  type file\n  slave.pcm { type null }\n"
        f'  file "{out}"\n  format "raw"\n}}\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("ALSA_CONFIG_PATH", str(conf))
    return out


def played(path: Path) -> npt.NDArray[np.int16]:
    return np.fromfile(path, np.int16).reshape(-1, 2)


def feed(out: AudioOutput, streams: dict[str, list[bytes]], seconds: float) -> None:
    """Push each terminal's packets in real time, as the relay would."""
    start = time.monotonic()
    for i in range(int(seconds * 50)):
        for terminal, packets in streams.items():
            out.push(terminal, packets[i % len(packets)])
        wait = start + (i + 1) * 0.02 - time.monotonic()
        if wait > 0:
            time.sleep(wait)


def test_a_heard_terminal_plays_its_tone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = alsa_tap(tmp_path, monkeypatch)
    out = AudioOutput(TerminalAudioConfig(device="centre_tap"))
    out.start()
    try:
        tone = opus_tone(600, 3.0)
        feed(out, {"p1": tone[100:]}, 0.4)
        assert not path.exists() and out.stats.frames_in == 0, "nobody heard: nothing plays"
        out.hear(["p1"])
        feed(out, {"p1": tone, "p2": opus_tone(1000, 3.0)}, 1.0)
        assert out.stats.playing, "writing while a heard terminal speaks"
        feed(out, {"p1": tone, "p2": opus_tone(1000, 3.0)}, 0.5)
        time.sleep(0.3)
        assert out.stats.error is None and out.stats.opens == 1
        assert out.stats.blocks_written >= 60, "1.5 s in 20 ms blocks"
    finally:
        out.stop()
    pcm = played(path)
    assert len(pcm) > RATE, "about 1.5 s played"
    assert len(pcm) < RATE * 2.5, "played at the real-time rate, not as fast as possible"
    (hz,) = peaks(pcm[RATE // 4 :, 0], 1)
    assert abs(hz - 600) < 5, hz
    assert np.array_equal(pcm[:, 0], pcm[:, 1]), "a mono terminal on both speakers"
    assert out.stats.frames_dropped == 0 and out.stats.decode_errors == 0


def test_two_terminals_are_mixed_and_silence_closes_the_device(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = alsa_tap(tmp_path, monkeypatch)
    out = AudioOutput(TerminalAudioConfig(device="centre_tap"))
    out.start()
    try:
        out.hear(["p1", "p2"])
        feed(out, {"p1": opus_tone(600, 3.0), "p2": opus_tone(1000, 3.0, channels=2)}, 1.5)
        deadline = time.monotonic() + 5
        while out.stats.playing and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not out.stats.playing, "the device closes after silence"
    finally:
        out.stop()
    pcm = played(path)
    found = sorted(peaks(pcm[RATE // 4 :, 0], 2))
    assert abs(found[0] - 600) < 5 and abs(found[1] - 1000) < 5, found
    assert int(np.abs(pcm).max()) < 32767, "0.3 + 0.3 of full scale: no clipping"


def test_a_device_that_does_not_open_is_reported_and_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    alsa_tap(tmp_path, monkeypatch)
    out = AudioOutput(TerminalAudioConfig(device="no_such_pcm"))
    out.start()
    try:
        out.hear(["p1"])
        feed(out, {"p1": opus_tone(600, 3.0)}, 0.5)
        assert out.stats.open_failures >= 1
        assert out.stats.error is not None and "no_such_pcm" in out.stats.error
        assert not out.stats.playing
        # Garbage in the Opus stream costs frames, not the thread.
        out.push("p1", b"\xff\x00garbage")
        feed(out, {"p1": [b""]}, 0.1)
    finally:
        out.stop()


def test_a_full_queue_drops_frames_instead_of_blocking_the_relay() -> None:
    out = AudioOutput(TerminalAudioConfig(device="centre_tap"))  # never started
    out.hear(["p1"])
    start = time.monotonic()
    for _ in range(2000):
        out.push("p1", b"x")
    assert time.monotonic() - start < 1.0
    assert out.stats.frames_dropped == 2000 - 500 and out.stats.frames_in == 2000


def test_mixer_buffers_mixes_clips_and_drops_late_audio() -> None:
    m = Mixer(buffer_ms=40, gain_db=0.0)
    one = np.full((960, 2), 0.25, np.float32)
    m.add("a", one)
    assert not np.any(m.mix(960)), "a voice waits for 40 ms before it plays"
    m.add("a", one)
    assert np.all(m.mix(960) == int(0.25 * 32767))
    assert np.all(m.mix(960) == int(0.25 * 32767))
    assert not np.any(m.mix(960)) and m.voices["a"].underruns == 1
    # Two loud voices: summed and clipped, never wrapped around.
    m.add("a", np.full((1920, 2), 0.8, np.float32))
    m.add("b", np.full((1920, 2), 0.8, np.float32))
    block = m.mix(960)
    assert np.all(block == 32767) and m.clipped > 0
    # More than half a second waiting: the oldest is dropped (late voice is worse).
    for _ in range(40):
        m.add("c", np.zeros((960, 2), np.float32))
    assert m.voices["c"].held <= RATE // 2 and m.voices["c"].dropped > 0
    quiet = Mixer(buffer_ms=20, gain_db=-20.0)
    quiet.add("a", np.full((960, 2), 0.5, np.float32))
    assert abs(int(quiet.mix(960)[0, 0]) - int(0.05 * 32767)) <= 1
    assert as_stereo(np.ones((1, 4), np.float32)).shape == (4, 2)
    assert as_stereo(np.ones(4, np.float32)).shape == (4, 2)


def test_who_is_heard() -> None:
    h = Hearing(TerminalAudioConfig(device="default", max_heard=2))
    h.follow([("P1", "highlighted"), ("p1", "fullscreen"), ("p2", "fullscreen")])
    assert h.heard() == ["p1", "p2"] and h.why("p1") == "highlighted"
    assert h.why("p2") == "fullscreen" and h.why("p9") is None
    h.mute("p1")
    assert h.heard() == ["p2"] and h.why("p1") == "muted"
    h.follow([("p1", "fullscreen")])  # a wall change does not undo a commander's mute
    assert h.heard() == []
    h.listen("p3")
    h.listen("p1")  # lifts the mute; the newest ask comes first
    assert h.heard() == ["p1", "p3"] and h.why("p1") == "listen"
    h.listen("p4")
    assert h.heard() == ["p4", "p1"], "at most max_heard, the oldest ask drops out"
    off = Hearing(TerminalAudioConfig(device="default", follow=[]))
    off.follow([("p1", "fullscreen"), ("p2", "highlighted")])
    assert off.heard() == []
    lit = Hearing(TerminalAudioConfig(device="default", follow=["highlighted"]))
    lit.follow([("p1", "fullscreen"), ("p2", "highlighted")])
    assert lit.heard() == ["p2"]
    canvas = Rect(0, 0, 1280, 360)
    assert window_is_full(Window(id="w1", x=0, y=0, w=1280, h=360), canvas)
    assert not window_is_full(Window(id="w1", x=0, y=0, w=640, h=360), canvas)
    sent = Window(id="w1", x=0, y=0, w=640, h=360, restore=Placement(x=0, y=0, w=64, h=64, z=0))
    assert window_is_full(sent, canvas), "sent to its tile with window.fullscreen"


@pytest.mark.parametrize(
    "device", ["/etc/passwd", "hw:0 --x", "a;b", "x" * 129, "plug\nhw", "-d", "default\x00"]
)
def test_hostile_device_names_are_refused(device: str) -> None:
    with pytest.raises(ValidationError) as e:
        TerminalAudioConfig(device=device)
    assert e.value.errors()[0]["loc"] == ("device",)


def test_device_names_alsa_uses() -> None:
    for device in ("", "default", "hw:1,0", "plughw:CARD=PCH,DEV=0", "dmix", "centre_tap"):
        assert TerminalAudioConfig(device=device).device == device
    with pytest.raises(ValidationError):
        TerminalAudioConfig(device="default", max_heard=0)
    with pytest.raises(ValidationError):
        TerminalAudioConfig(device="default", follow=["everyone"])  # type: ignore[list-item]


def test_wallctl_check_names_the_bad_audio_keys() -> None:
    from wallctl.config import ConfigError, parse_config

    raw = {
        "wall": {
            "id": "main",
            "min_diagonal_cm": 10,
            "tiles": {
                "rows": 1,
                "cols": 1,
                "width_mm": 1209.6,
                "height_mm": 680.4,
                "width_px": 640,
                "height_px": 360,
            },
        },
        "terminals": {"audio": {"device": "/dev/dsp", "max_heard": 99, "loud": True}},
    }
    with pytest.raises(ConfigError) as e:
        parse_config(raw)
    problems = {p.path: p.message for p in e.value.problems}
    assert "ALSA device name" in problems["terminals.audio.device"]
    assert "16" in problems["terminals.audio.max_heard"]
    assert "terminals.audio.loud" in problems


def test_the_system_alsa_configuration_is_used() -> None:
    # PyAV's libasound looks for alsa.conf where its wheel was built: without the system's
    # configuration even ALSA's own "null" device is unknown. A fresh process (libasound
    # reads its configuration once), with no ALSA_* variables.
    import os
    import subprocess
    import sys

    from wallctl.terminals.audio import use_system_alsa_config

    if not Path("/usr/share/alsa/alsa.conf").exists():
        pytest.skip("Debian libasound2-data is not installed")
    code = (
        "import time\n"
        "from wallctl.terminals.audio import AudioOutput\n"
        "from wallctl.terminals.audio_config import TerminalAudioConfig\n"
        "from tests.terminals.test_audio import feed, opus_tone\n"
        "out = AudioOutput(TerminalAudioConfig(device='null'))\n"
        "out.start(); out.hear(['p1'])\n"
        "feed(out, {'p1': opus_tone(600, 1.0)}, 0.4)\n"
        "out.stop()\n"
        "print(out.stats.opens, out.stats.error)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALSA_")}
    root = Path(__file__).resolve().parents[2]
    r = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=root, capture_output=True, text=True, timeout=60
    )
    assert r.stdout.split("\n")[-2] == "1 None", (r.stdout[-500:], r.stderr[-1500:])
    mine = {"ALSA_CONFIG_DIR": "/etc/mine"}
    assert not use_system_alsa_config(mine) and mine == {"ALSA_CONFIG_DIR": "/etc/mine"}


def test_a_hung_device_never_holds_up_the_relay() -> None:
    # A sound card whose driver hangs in a write (it cannot be made to hang on purpose:
    # this sink stands in for it, through the same interface the thread uses).
    release = threading.Event()
    writes: list[int] = []

    class HungSink:
        def __init__(self, device: str) -> None:
            pass

        def write(self, block: npt.NDArray[np.int16]) -> None:
            writes.append(len(block))
            release.wait(10)

        def close(self) -> None:
            pass

    out = AudioOutput(TerminalAudioConfig(device="hung"), sink=HungSink)  # type: ignore[arg-type]
    out.start()
    try:
        out.hear(["p1"])
        tone = opus_tone(600, 3.0)
        for packet in tone[:10]:
            out.push("p1", packet)
        deadline = time.monotonic() + 5
        while not writes and time.monotonic() < deadline:
            time.sleep(0.02)
        assert writes, "the thread went into the (hung) device"
        start = time.monotonic()
        for i in range(1000):  # 20 s of frames as fast as the relay could hand them over
            out.push("p1", tone[i % len(tone)])
        took = time.monotonic() - start
        assert took < 0.5, f"the relay waited {took:.2f} s for a hung sound card"
        assert len(writes) == 1, "still stuck in its first write"
        assert out.stats.frames_dropped == 1000 - 500, "a full queue drops, never waits"
    finally:
        release.set()
        out.stop()
