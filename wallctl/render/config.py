"""The ``[render]`` section: the software compositor and its outputs.

Sources are decoded per ``[render.sources]`` (wallctl.render.source_config); each wall
is composited at ``fps``; outputs are the X window per head (``[render.window]``), the
HTTP preview (``[render.preview]``) and encoded streams (``[[render.streams]]``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from wallctl.config import Ident, Section
from wallctl.render.source_config import RenderSourcesConfig

ClockPosition = Literal["top-left", "top-right", "bottom-left", "bottom-right"]


class PreviewConfig(Section):
    """MJPEG and JPEG snapshots of each wall on the HTTP listener (``/preview``)."""

    enabled: bool = True
    # Defaults for a request that names no width / fps; the caps bound what one may ask.
    width: int = Field(default=960, ge=16, le=7680)
    fps: float = Field(default=10.0, gt=0, le=60)
    max_width: int = Field(default=1920, ge=16, le=7680)
    max_fps: float = Field(default=25.0, gt=0, le=60)
    quality: int = Field(default=80, ge=10, le=100)
    # MJPEG viewers at once (all walls); one more is answered 503.
    max_viewers: int = Field(default=32, ge=1, le=1024)
    # Distinct picture widths encoded at once per wall (each costs a scale + encode).
    max_sizes: int = Field(default=4, ge=1, le=32)
    # Source thumbnails (/preview/source/{id}.jpg): default width, and how long a source
    # stays demanded after the last request for its thumbnail.
    thumb_width: int = Field(default=320, ge=16, le=1920)
    thumb_hold_s: float = Field(default=20.0, gt=0, le=3600)

    @model_validator(mode="after")
    def _caps(self) -> PreviewConfig:
        if self.width > self.max_width:
            raise ValueError("width must be <= max_width")
        if self.fps > self.max_fps:
            raise ValueError("fps must be <= max_fps")
        return self


class WindowHeadConfig(Section):
    """Where one head's window goes on the X screen (default: the head's place in the
    wall, tile sizes apart, which is how a multi-head X screen is usually arranged)."""

    wall: Ident = "main"
    head: Ident
    x: int = Field(ge=0, le=65535)
    y: int = Field(ge=0, le=65535)


class WindowOutputConfig(Section):
    """A borderless window per head on an X display (SDL2), at the head's geometry."""

    enabled: bool = False
    # The X display; None: $DISPLAY.
    display: str | None = Field(
        default=None, max_length=64, pattern=r"^[A-Za-z0-9_.\-]*:\d+(\.\d+)?$"
    )
    # SDL render driver: "software" works everywhere; "opengl" uses the GPU when present.
    renderer: Literal["auto", "software", "opengl", "opengles2"] = "auto"
    # Which walls get windows; empty: every wall.
    walls: list[Ident] = Field(default_factory=list)
    placements: list[WindowHeadConfig] = Field(default_factory=list, max_length=64)


class StreamConfig(Section):
    """A head or a whole wall, scaled, encoded with x264 and sent as MPEG-TS."""

    id: Ident
    wall: Ident = "main"
    # One head of the wall; None: the whole canvas.
    head: Ident | None = None
    # Output width (height keeps the picture's aspect ratio); None: native size.
    width: int | None = Field(default=None, ge=64, le=7680)
    fps: float = Field(default=25.0, gt=0, le=60)
    bitrate_kbps: int = Field(default=6000, ge=100, le=100_000)
    # Keyframe interval (a decoder joining mid-stream waits at most this long).
    gop_s: float = Field(default=1.0, gt=0, le=10)
    # "http": served at /stream/{id}.ts on the HTTP listener to whoever pulls it (wall
    # decoders, an upper centre, VLC); encoding runs only while someone watches.
    # "udp": pushed continuously to `target` (unicast or multicast).
    # "srt": SRT through the system ffmpeg (Debian's has libsrt): with srt_mode "listener"
    # decoders call `target` (the address to bind, e.g. "0.0.0.0:9000"), one at a time;
    # with "caller" it is pushed to a listener at `target`.
    mode: Literal["http", "udp", "srt"] = "http"
    # For udp and srt: host:port ("239.1.1.1:5004" for multicast).
    target: str | None = Field(default=None, max_length=256)
    ttl: int = Field(default=4, ge=1, le=255)
    srt_mode: Literal["listener", "caller"] = "listener"
    # SRT receive latency (ms): the retransmission window.
    srt_latency_ms: int = Field(default=120, ge=20, le=8000)
    max_viewers: int = Field(default=8, ge=1, le=256)

    @model_validator(mode="after")
    def _mode(self) -> StreamConfig:
        if self.mode in ("udp", "srt"):
            if not self.target:
                raise ValueError(f"a {self.mode} stream needs target = 'host:port'")
            host, sep, port = self.target.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError("target must be 'host:port'")
        return self


class RenderConfig(Section):
    # Off: no decoding or compositing on this machine (a hardware wall renders).
    enabled: bool = True
    fps: float = Field(default=25.0, ge=1, le=60)
    # The source name (or the window's label) in the top-left of each window.
    labels: bool = True
    # A date and time on each wall's canvas; None: no clock.
    clock: ClockPosition | None = None
    # A CJK font file; None: found among the usual places (Debian's fonts-noto-cjk).
    font: Path | None = None
    # Health turns degraded when more than this share of the last 10 s of frames were late.
    late_degraded_ratio: float = Field(default=0.1, gt=0, le=1)
    # Nice value of the compositor and window-output threads (Linux, per thread): ahead
    # of the decoders, so a busy machine drops source frames rather than wall frames.
    # Below 0 needs CAP_SYS_NICE or LimitNICE= (else a warning and normal priority).
    thread_nice: int = Field(default=-10, ge=-20, le=0)
    sources: RenderSourcesConfig = Field(default_factory=RenderSourcesConfig)
    preview: PreviewConfig = Field(default_factory=PreviewConfig)
    window: WindowOutputConfig = Field(default_factory=WindowOutputConfig)
    streams: list[StreamConfig] = Field(default_factory=list, max_length=16)


def render_problems(config: Any) -> list[Any]:
    """Rules that need the walls: a stream's or window placement's wall and head exist,
    stream ids are unique. ``config`` is the whole Config; returns wallctl.config.Problem."""
    from wallctl.config import Problem

    problems: list[Problem] = []
    walls = {config.wall.id: config.wall}
    walls.update(config.walls)
    heads: dict[str, set[str]] = {
        wid: {h.id for h in w.heads} or {"all"} for wid, w in walls.items()
    }
    r = config.render
    seen: dict[str, int] = {}
    for i, s in enumerate(r.streams):
        path = f"render.streams[{i}]"
        if s.id in seen:
            problems.append(
                Problem(f"{path}.id", f"{s.id!r} is already used by streams[{seen[s.id]}]")
            )
        seen.setdefault(s.id, i)
        if s.wall not in walls:
            problems.append(Problem(f"{path}.wall", f"no wall {s.wall!r}"))
        elif s.head is not None and s.head not in heads[s.wall]:
            problems.append(Problem(f"{path}.head", f"wall {s.wall!r} has no head {s.head!r}"))
    for i, p in enumerate(r.window.placements):
        path = f"render.window.placements[{i}]"
        if p.wall not in walls:
            problems.append(Problem(f"{path}.wall", f"no wall {p.wall!r}"))
        elif p.head not in heads[p.wall]:
            problems.append(Problem(f"{path}.head", f"wall {p.wall!r} has no head {p.head!r}"))
    for i, wid in enumerate(r.window.walls):
        if wid not in walls:
            problems.append(Problem(f"render.window.walls[{i}]", f"no wall {wid!r}"))
    return problems
