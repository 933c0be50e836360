"""Mixing terminals' voices: per-terminal jitter buffers summed into one stereo stream.

Pure (no I/O, no threads): decoded 48 kHz stereo float samples go in with :meth:`add`,
blocks of 16-bit stereo come out of :meth:`mix`. Each terminal waits until it holds
``buffer_ms`` before it plays (network jitter), starts waiting again when it runs dry,
and never holds more than ``MAX_BUFFER_S`` (older samples are dropped: a voice heard
late is worse than a voice with a gap).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

RATE = 48000
CHANNELS = 2
MAX_BUFFER_S = 0.5

Samples = npt.NDArray[np.float32]  # (n, 2), -1.0 .. 1.0


@dataclass
class _Voice:
    chunks: deque[Samples] = field(default_factory=deque)
    held: int = 0  # samples buffered
    playing: bool = False
    underruns: int = 0
    dropped: int = 0  # samples dropped as too late


def as_stereo(planes: npt.NDArray[np.float32]) -> Samples:
    """Decoded planar audio, (channels, n), as (n, 2): mono is put on both sides."""
    if planes.ndim == 1:
        planes = planes[np.newaxis, :]
    if planes.shape[0] == 1:
        planes = np.repeat(planes, 2, axis=0)
    return np.ascontiguousarray(planes[:2].T, dtype=np.float32)


class Mixer:
    def __init__(self, buffer_ms: int = 60, gain_db: float = 0.0) -> None:
        self.prebuffer = max(1, RATE * buffer_ms // 1000)
        self.gain = float(10 ** (gain_db / 20))
        self.voices: dict[str, _Voice] = {}
        self.clipped = 0

    def add(self, voice: str, samples: Samples) -> None:
        v = self.voices.setdefault(voice, _Voice())
        v.chunks.append(samples)
        v.held += len(samples)
        limit = int(RATE * MAX_BUFFER_S)
        while v.held > limit and len(v.chunks) > 1:
            old = v.chunks.popleft()
            v.held -= len(old)
            v.dropped += len(old)

    def remove(self, voice: str) -> None:
        self.voices.pop(voice, None)

    def active(self) -> bool:
        """Anything to play now (or about to, once buffered)."""
        return any(v.held for v in self.voices.values())

    def _take(self, v: _Voice, n: int) -> Samples | None:
        if not v.playing:
            if v.held < self.prebuffer:
                return None
            v.playing = True
        out = np.zeros((n, CHANNELS), np.float32)
        got = 0
        while got < n and v.chunks:
            chunk = v.chunks[0]
            take = min(n - got, len(chunk))
            out[got : got + take] = chunk[:take]
            got += take
            if take == len(chunk):
                v.chunks.popleft()
            else:
                v.chunks[0] = chunk[take:]
            v.held -= take
        if got < n:
            # Ran dry: the gap stays silent and the voice buffers again before it goes on.
            v.playing = False
            v.underruns += 1
        return out

    def mix(self, n: int) -> npt.NDArray[np.int16]:
        """The next ``n`` samples of every playing voice summed, as (n, 2) int16."""
        total = np.zeros((n, CHANNELS), np.float32)
        for v in self.voices.values():
            part = self._take(v, n)
            if part is not None:
                total += part
        total *= self.gain * 32767.0
        over = int(np.count_nonzero(np.abs(total) > 32767.0))
        if over:
            self.clipped += over
            np.clip(total, -32768.0, 32767.0, out=total)
        return total.astype(np.int16)
