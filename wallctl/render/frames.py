"""The picture handed from decoders to the compositor and outputs.

Frames stay in YUV 4:2:0 (I420) from the decoder to the output that needs something
else: compositing in YUV was measured about 1.3x faster than in BGR here, and the
encoders take I420 directly. Planes are separate uint8 arrays whose pixels are
contiguous within a row but whose rows may lie further apart than the width (a decoded
picture is a view of the decoder's own buffer, padding included: no copy). Readers
must not write into them; numpy and OpenCV take such strided planes as they are. Width
and height are even so the chroma planes are exactly half size.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import numpy as np
import numpy.typing as npt

Plane = npt.NDArray[np.uint8]


@dataclass(frozen=True, slots=True)
class Frame:
    y: Plane  # (height, width)
    u: Plane  # (height // 2, width // 2)
    v: Plane  # (height // 2, width // 2)
    # Increases by one with every new picture of the same source: the compositor
    # repaints a window only when the seq it last drew differs.
    seq: int
    # time.monotonic() when the picture was decoded (age of last frame, slates).
    arrived: float
    # Presentation time in seconds from the stream, when it has one.
    pts: float | None = None

    @property
    def width(self) -> int:
        return int(self.y.shape[1])

    @property
    def height(self) -> int:
        return int(self.y.shape[0])


class SourcePhase(StrEnum):
    IDLE = "idle"  # nobody wants it: no decoder runs
    CONNECTING = "connecting"  # opening, or reconnecting after a loss, before a frame
    LIVE = "live"  # frames arrive
    NO_SIGNAL = "no_signal"  # was live; no new frame for 2 s (it keeps retrying)
    FAILED = "failed"  # cannot open (bad URL, auth, no video track); retried with backoff


@dataclass(frozen=True, slots=True)
class SourceView:
    """What a window needs to draw a source now: the picture or the reason for a slate."""

    source: str
    name: str
    phase: SourcePhase
    frame: Frame | None
    # time.time() of the last frame, for "no signal since HH:MM:SS".
    last_frame_at: float | None = None
    # Why it is not live, fit for an operator (never a password).
    error: str | None = None


class FrameSupply(Protocol):
    """The sources as the compositor, previews and other consumers see them.

    Thread-safe: ``view`` is called from compositor threads at frame rate, ``demand``
    from the event loop. A consumer (``holder``: "wall:main", "thumbs", ...) states
    everything it needs at once, with the pixel size it will draw each source at (for
    the rendition choice); a source no holder needs any more stays warm for the
    configured time, then its decoder stops.
    """

    def demand(self, holder: str, needs: Mapping[str, tuple[int, int]]) -> None: ...

    def view(self, source: str) -> SourceView: ...
