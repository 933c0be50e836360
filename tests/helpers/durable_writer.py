"""Changes a wall in a loop through the store's own interface, for the durability test.

Usage: python durable_writer.py STATE_DIR [full|normal]   (the store's durability; full)

Prints ``READY <revision>`` once the store is open and the wall loaded, then
``ACK <revision>`` (flushed) after each change WallService.change acknowledged. Each change
moves window w1 to ``position(revision)``, so the test can tell which change a stored state
came from. Runs until killed.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Literal

from wallctl import edits
from wallctl.config import WallConfig
from wallctl.store import Actor, Store
from wallctl.wall import Wall
from wallctl.walls import WallService

WALL = WallConfig.model_validate(
    {
        "tiles": {
            "rows": 2,
            "cols": 2,
            "width_mm": 1209.6,
            "height_mm": 680.4,
            "width_px": 1920,
            "height_px": 1080,
        },
    }
)
SIZE = 16
ACTOR = Actor("durability-test", via="cli")


def position(revision: int) -> tuple[int, int]:
    """Where change number ``revision`` puts the window (x = revision while it fits)."""
    span = 3840 - SIZE
    return revision % span, (revision // span) % (2160 - SIZE)


async def main(state_dir: Path, durability: Literal["full", "normal"] = "full") -> None:
    store = Store(state_dir / "wallctl.db", durability)
    service = WallService(store, [Wall.from_config(WALL)], [], {})
    await service.load()
    if service.state().window("w1") is None:
        await service.change(
            None,
            ACTOR,
            "window.open",
            lambda s, c: edits.open_window(s, c, x=0, y=0, w=SIZE, h=SIZE)[0],
        )
    out = sys.stdout
    out.write(f"READY {service.state().revision}\n")
    out.flush()
    while True:

        def move(s, c):  # type: ignore[no-untyped-def]
            x, y = position(s.revision + 1)
            return edits.move(s, c, "w1", x, y)

        new = await service.change(None, ACTOR, "window.move", move)
        out.write(f"ACK {new.revision}\n")
        out.flush()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), "normal" if sys.argv[2:] == ["normal"] else "full"))
