"""What a wall shows: its windows, their sources, and the revision that named them.

Immutable values: an edit makes a new state, so a batch can be tried on a copy and
dropped whole when one step fails, and the store keeps every revision as it was.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from wallctl.wall import Rect

Fit = Literal["fit", "fill", "stretch"]


class Crop(BaseModel):
    """The part of the source frame shown, in fractions of its width and height."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    x: float = Field(ge=0, le=1)
    y: float = Field(ge=0, le=1)
    w: float = Field(gt=0, le=1)
    h: float = Field(gt=0, le=1)


class Placement(BaseModel):
    """Where a window was before it went full screen."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    x: int
    y: int
    w: int
    h: int
    z: int


class Window(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str
    x: int
    y: int
    w: int
    h: int
    z: int = 0
    source: str | None = None
    label: str | None = None
    crop: Crop | None = None
    fit: Fit = "fit"
    # Set while the window is full screen: where "back" returns it to.
    restore: Placement | None = None

    @property
    def rect(self) -> Rect:
        return Rect(self.x, self.y, self.w, self.h)


class WallState(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    wall: str
    revision: int = 0
    # The template or preset the windows came from; None once they were edited by hand.
    layout: str | None = None
    windows: tuple[Window, ...] = ()
    # Window ids are never reused within a wall's life, so an old id in a client's hand
    # cannot point at a different window.
    next_window: int = 1

    def window(self, window_id: str) -> Window | None:
        for w in self.windows:
            if w.id == window_id:
                return w
        return None

    def top_z(self) -> int:
        return max((w.z for w in self.windows), default=-1)

    def stacked(self) -> list[Window]:
        """Bottom to top, as a compositor paints them."""
        return sorted(self.windows, key=lambda w: (w.z, int(w.id[1:]) if w.id[1:].isdigit() else 0))
