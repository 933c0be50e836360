"""``[terminals.audio]``: the centre's loudspeaker for what mobile terminals say."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# An ALSA PCM name: "default", "hw:1,0", "plughw:CARD=PCH,DEV=0", "dmix", a name defined
# in asound.conf. Nothing that could be read as a file path or an option.
_DEVICE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_:,.=\-]{0,127}$")


Follow = Literal["highlighted", "fullscreen"]


def _follow_both() -> list[Follow]:
    return ["highlighted", "fullscreen"]


class TerminalAudioConfig(BaseModel):
    # wallctl.config.Section's settings (see wallctl/terminals/config.py for why not it).
    model_config = ConfigDict(extra="forbid", frozen=True)

    # The ALSA output the centre hears terminals on ("default": the system's default
    # output); empty, the default, plays nothing here (WHEP views still carry the voice).
    device: str = Field(default="", max_length=128)
    # Who is heard without asking: "highlighted" — a terminal whose window a commander
    # points at (render.highlight: the picture under discussion); "fullscreen" — one whose
    # window was sent full screen (window.fullscreen) or covers a whole wall. [] — only
    # those asked for with terminal.listen. terminal.mute silences any of them.
    follow: list[Follow] = Field(default_factory=_follow_both, max_length=2)
    # At most this many terminals are mixed at once (those asked for first).
    max_heard: int = Field(default=4, ge=1, le=16)
    # Gain of the mix in dB (negative: quieter); clipped, never wrapped.
    gain_db: float = Field(default=0.0, ge=-60, le=20)
    # Audio held back per terminal before it plays, against network jitter.
    buffer_ms: int = Field(default=60, ge=20, le=1000)

    @field_validator("device")
    @classmethod
    def _device(cls, device: str) -> str:
        if device and _DEVICE.match(device) is None:
            raise ValueError(
                f"{device[:40]!r}: an ALSA device name such as default, hw:1,0 or "
                "plughw:CARD=PCH,DEV=0 (letters, digits and _:,.=-)"
            )
        return device
