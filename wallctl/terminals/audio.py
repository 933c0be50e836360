"""Terminals' voices on the centre's loudspeaker: Opus decoded once, mixed, played via ALSA.

Who is heard (:class:`Hearing`) is decided on the event loop: a terminal a commander
asked for (``terminal.listen``), and, as ``follow`` says, one whose window a commander
highlights (``render.highlight``) or sent full screen; ``terminal.mute`` silences a
terminal whichever way it came.

What is heard (:class:`AudioOutput`) happens in one thread: the relay hands each Opus
frame of a heard terminal to a bounded queue (never blocking the relay: a full queue
drops the frame and counts it), the thread decodes it (one decoder per heard terminal,
so each terminal is decoded once however it is mixed), mixes (wallctl/terminals/
mixer.py) on a 20 ms clock and writes 48 kHz 16-bit stereo to the ALSA device through
PyAV's ``alsa`` muxer. The device is opened when something is to be heard and closed
after ``IDLE_CLOSE_S`` of silence; a device that fails to open is retried with backoff
and reported on /healthz.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import av.error
import numpy as np
import numpy.typing as npt

from wallctl.logs import get_logger
from wallctl.terminals.audio_config import TerminalAudioConfig
from wallctl.terminals.mixer import RATE, Mixer, as_stereo

log = get_logger("wallctl.terminals.audio")

BLOCK = RATE // 50  # 20 ms, an Opus frame's usual length
QUEUE_MAX = 500  # ~10 s of 20 ms frames from every heard terminal together
IDLE_CLOSE_S = 2.0
# A terminal silent this long loses its decoder (it will start afresh).
DECODER_IDLE_S = 10.0
REOPEN_MIN_S = 1.0
REOPEN_MAX_S = 30.0


# Where Debian keeps ALSA's configuration (package libasound2-data).
SYSTEM_ALSA_DIR = Path("/usr/share/alsa")


def use_system_alsa_config(environ: MutableMapping[str, str] = os.environ) -> bool:
    """Point PyAV's bundled libasound at the system's ALSA configuration.

    The libasound inside PyAV's wheel looks for alsa.conf where it was built
    (/tmp/vendor/share/alsa), so without this even "default" and "null" are unknown
    PCMs. ALSA_CONFIG_DIR (or a whole ALSA_CONFIG_PATH) set by the operator wins."""
    if "ALSA_CONFIG_DIR" in environ or "ALSA_CONFIG_PATH" in environ:
        return False
    if not (SYSTEM_ALSA_DIR / "alsa.conf").exists():
        log.warning("no ALSA configuration: install libasound2-data", path=str(SYSTEM_ALSA_DIR))
        return False
    environ["ALSA_CONFIG_DIR"] = str(SYSTEM_ALSA_DIR)
    return True


class AlsaSink:
    """An ALSA playback device through PyAV (FFmpeg's ``alsa`` muxer, blocking writes)."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.container: Any = av.open(device, format="alsa", mode="w")
        try:
            self.stream: Any = self.container.add_stream("pcm_s16le", rate=RATE)
            self.stream.layout = "stereo"
            # Opens the device now, so a wrong name fails here rather than at the first
            # write.
            self.container.start_encoding()
        except Exception:
            self.container.close()
            raise
        self.samples = 0

    def write(self, block: npt.NDArray[np.int16]) -> None:
        frame = av.AudioFrame.from_ndarray(block.reshape(1, -1), format="s16", layout="stereo")
        frame.sample_rate = RATE
        frame.pts = self.samples
        self.samples += len(block)
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    def close(self) -> None:
        try:
            for packet in self.stream.encode(None):
                self.container.mux(packet)
        except Exception:
            pass  # a device gone away: closing is all that is left
        self.container.close()


@dataclass
class AudioStats:
    frames_in: int = 0
    frames_dropped: int = 0  # the queue was full (the thread could not keep up)
    decode_errors: int = 0
    blocks_written: int = 0
    opens: int = 0
    open_failures: int = 0
    error: str | None = None
    playing: bool = False  # writing blocks now
    device_open: bool = False
    heard: list[str] = field(default_factory=list)


class AudioOutput:
    """The playback thread. ``push`` is called on the event loop; everything else runs
    in the thread."""

    def __init__(
        self,
        config: TerminalAudioConfig,
        sink: Callable[[str], AlsaSink] = AlsaSink,
    ) -> None:
        self.config = config
        self._sink_factory = sink
        self._queue: queue.Queue[tuple[str, bytes] | None] = queue.Queue(QUEUE_MAX)
        self._heard: frozenset[str] = frozenset()
        self.stats = AudioStats()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    # --- the event loop's side --------------------------------------------------------------

    def start(self) -> None:
        use_system_alsa_config()
        self._thread = threading.Thread(target=self._run, name="terminal-audio", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            pass
        if self._thread is not None:
            self._thread.join(timeout)

    def hear(self, terminals: Iterable[str]) -> None:
        """The terminals (case-folded ids) whose frames are played from now on."""
        self._heard = frozenset(terminals)
        self.stats.heard = sorted(self._heard)

    def push(self, terminal: str, opus: bytes) -> None:
        """One Opus frame of ``terminal`` (case-folded id); dropped unless it is heard."""
        if terminal not in self._heard:
            return
        self.stats.frames_in += 1
        try:
            self._queue.put_nowait((terminal, opus))
        except queue.Full:
            self.stats.frames_dropped += 1

    # --- the thread ----------------------------------------------------------------------

    def _run(self) -> None:
        mixer = Mixer(self.config.buffer_ms, self.config.gain_db)
        decoders: dict[str, Any] = {}
        last_seen: dict[str, float] = {}
        sink: AlsaSink | None = None
        next_tick: float | None = None
        idle_since: float | None = None
        retry_at = 0.0
        retry_s = REOPEN_MIN_S
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                wait = 0.5 if next_tick is None else max(0.0, next_tick - now)
                try:
                    item = self._queue.get(timeout=wait)
                except queue.Empty:
                    item = None
                while item is not None:
                    self._decode(item, decoders, mixer, last_seen)
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        item = None
                if self._stop.is_set():
                    break
                now = time.monotonic()
                heard = self._heard
                for t in list(mixer.voices):
                    if t not in heard:
                        mixer.remove(t)
                for t, seen in list(last_seen.items()):
                    if t not in heard or now - seen > DECODER_IDLE_S:
                        decoders.pop(t, None)
                        del last_seen[t]
                if mixer.active():
                    idle_since = None
                    if sink is None and now >= retry_at:
                        try:
                            sink = self._sink_factory(self.config.device)
                            self.stats.device_open = True
                            self.stats.opens += 1
                            self.stats.error = None
                            retry_s = REOPEN_MIN_S
                            log.info("audio output opened", device=self.config.device)
                        except Exception as e:
                            self.stats.open_failures += 1
                            self.stats.error = (
                                f"cannot open ALSA device {self.config.device!r}: {e}"
                            )
                            if self.stats.open_failures in (1, 10) or retry_s >= REOPEN_MAX_S:
                                log.warning("audio output failed", reason=self.stats.error)
                            retry_at = now + retry_s
                            retry_s = min(REOPEN_MAX_S, retry_s * 2)
                    if sink is None:
                        # No device: the voices are dropped as they come, not queued up.
                        for v in mixer.voices.values():
                            v.chunks.clear()
                            v.held = 0
                        next_tick = None
                        continue
                    if next_tick is None or now - next_tick > 0.2:
                        next_tick = now  # (re)start the clock; far behind: skip, don't rush
                    while now >= next_tick:
                        try:
                            sink.write(mixer.mix(BLOCK))
                        except Exception as e:
                            self.stats.error = f"ALSA device {self.config.device!r} failed: {e}"
                            log.warning("audio output failed", reason=self.stats.error)
                            self._close(sink)
                            sink = None
                            retry_at = now + retry_s
                            next_tick = None
                            break
                        self.stats.blocks_written += 1
                        next_tick += BLOCK / RATE
                    self.stats.playing = sink is not None
                else:
                    next_tick = None
                    if sink is not None:
                        idle_since = idle_since or now
                        if now - idle_since >= IDLE_CLOSE_S:
                            self._close(sink)
                            sink = None
                            log.info("audio output closed (silence)", device=self.config.device)
                    self.stats.playing = False
        except Exception:
            log.exception("audio output thread failed")
            self.stats.error = "the audio thread failed (see the log)"
        finally:
            if sink is not None:
                self._close(sink)
            self.stats.playing = False

    def _close(self, sink: AlsaSink) -> None:
        try:
            sink.close()
        except Exception:
            log.exception("closing the audio output failed")
        self.stats.device_open = False

    def _decode(
        self,
        item: tuple[str, bytes],
        decoders: dict[str, Any],
        mixer: Mixer,
        last_seen: dict[str, float],
    ) -> None:
        terminal, data = item
        if terminal not in self._heard:
            return
        cc = decoders.get(terminal)
        if cc is None:
            cc = decoders[terminal] = av.CodecContext.create("opus", "r")
        last_seen[terminal] = time.monotonic()
        try:
            frames = cc.decode(av.Packet(data))
        except (av.error.FFmpegError, ValueError):
            self.stats.decode_errors += 1
            return
        for frame in frames:
            planes = frame.to_ndarray()
            if frame.format.name in ("s16", "s16p"):
                planes = planes.astype(np.float32) / 32768.0
            if not frame.format.is_planar:
                planes = planes.reshape(-1, len(frame.layout.channels)).T
            if frame.sample_rate != RATE:
                self.stats.decode_errors += 1  # Opus decodes at 48 kHz; anything else is odd
                continue
            mixer.add(terminal, as_stereo(planes.astype(np.float32, copy=False)))


def window_is_full(window: Any, canvas: Any) -> bool:
    """Sent full screen (wall or tile), or covering the whole wall."""
    if window.restore is not None:
        return True
    return bool(window.x == canvas.x and window.y == canvas.y) and (
        window.w == canvas.w and window.h == canvas.h
    )


class Hearing:
    """Who is heard: asked for (listen), followed (highlighted or full-screen windows),
    minus muted."""

    def __init__(self, config: TerminalAudioConfig) -> None:
        self.config = config
        self.listened: list[str] = []  # case-folded, in the order asked
        self.muted: set[str] = set()
        self.followed: dict[str, str] = {}  # terminal -> why ("highlighted", "fullscreen")

    def listen(self, terminal: str) -> None:
        key = terminal.lower()
        self.muted.discard(key)
        # The newest ask first: beyond max_heard the oldest asks drop out, not this one.
        if key in self.listened:
            self.listened.remove(key)
        self.listened.insert(0, key)

    def mute(self, terminal: str) -> None:
        key = terminal.lower()
        if key in self.listened:
            self.listened.remove(key)
        self.muted.add(key)

    def follow(self, shown: Iterable[tuple[str, str]]) -> None:
        """``shown``: (terminal, why) of the windows on the walls, in the order that
        counts (highlighted first); only the reasons ``follow`` names are followed."""
        followed: dict[str, str] = {}
        for terminal, why in shown:
            if why in self.config.follow:
                followed.setdefault(terminal.lower(), why)
        self.followed = followed

    def heard(self) -> list[str]:
        """Asked-for terminals first, then followed ones, at most ``max_heard``."""
        out = [t for t in self.listened if t not in self.muted]
        out += [t for t in self.followed if t not in self.muted and t not in out]
        return out[: self.config.max_heard]

    def why(self, terminal: str) -> str | None:
        key = terminal.lower()
        if key not in self.heard():
            return "muted" if key in self.muted else None
        return "listen" if key in self.listened else self.followed.get(key)
