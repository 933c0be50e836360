"""How sources are decoded: the tunables every source shares (``[render.sources]``).

Per-source settings (URL, renditions, transport, loop) live in ``[[sources]]``
(wallctl.config.SourceConfig); these are the daemon-wide ones the render component hands
to the SourceHub. Defaults suit a 2-core machine showing a few dozen sources.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Side = Annotated[int, Field(ge=0, le=16384)]


class RenderSourcesConfig(BaseModel):
    # wallctl.config.Section's settings, not the class: wallctl.config imports the render
    # sections (this one among them) while it is being defined, so importing it back from
    # here would break whichever module is imported first.
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Keep a decoder running this long after the last window showing it closed, so
    # switching back to a layout shows live video at once.
    warm_s: float = Field(default=30.0, ge=0, le=3600)
    # A live source with no new picture for this long shows a "no signal" slate.
    no_signal_s: float = Field(default=2.0, gt=0, le=60)
    # Opening a URL (connect, RTSP handshake, probing) gives up after this long.
    open_timeout_s: float = Field(default=5.0, gt=0, le=120)
    # A read with no data for this long counts as a lost stream: reconnect.
    read_timeout_s: float = Field(default=4.0, gt=0, le=120)
    # Reconnect backoff: doubles from initial to max, with +-20 % jitter.
    backoff_initial_s: float = Field(default=0.5, gt=0, le=60)
    backoff_max_s: float = Field(default=15.0, gt=0, le=600)
    # Decoder threading. Field notes: with many decoders on 2 cores one thread each and
    # parallelism across decoders beats frame threading (which also adds latency and is
    # disabled by low_delay). bench/render_sources.py measures both.
    decoder_threads: int = Field(default=1, ge=0, le=16)  # 0: FFmpeg picks
    thread_type: Literal["slice", "frame", "auto"] = "slice"
    # Low-latency opening: a small probe (FFmpeg's defaults, 5 MB / 5 s, made the first
    # picture of an RTSP camera wait ~1.1 s; these ~0.25 s).
    probesize: int = Field(default=65536, ge=32, le=50_000_000)
    analyzeduration_ms: int = Field(default=200, ge=0, le=30_000)
    low_delay: bool = True
    # When every window showing a source is at most this big (pixels, both sides), only
    # its keyframes are decoded: thumbnails update once per GOP at a fraction of the CPU.
    keyframes_only_max: tuple[Side, Side] = (320, 180)
    # A frame much larger than every window showing it is scaled down in the decoder's
    # thread (in parallel, off the compositor) when it is at least this many times larger.
    downscale_factor: float = Field(default=2.0, ge=1.0, le=16)
    # Test patterns: picture rate and the largest size drawn.
    pattern_fps: float = Field(default=25.0, gt=0, le=60)
    pattern_max: tuple[Side, Side] = (1920, 1080)
    # Bounded: decoders running at once (sources beyond it stay FAILED with a reason).
    max_decoders: int = Field(default=64, ge=1, le=1024)

    @model_validator(mode="after")
    def _check(self) -> RenderSourcesConfig:
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError("backoff_max_s must be >= backoff_initial_s")
        return self
