"""Wall geometry: tiles, bezels, output heads and the canvas in wall pixels.

Plain data and rules: no I/O. The canvas is what layouts are fitted to and what a
software compositor paints; with bezel compensation it includes the pixels hidden behind
the bezels, so a picture crossing two panels stays geometrically straight.
"""

from __future__ import annotations

from dataclasses import dataclass

from wallctl.config import WallConfig, is_16x9, wall_diagonal_cm


@dataclass(frozen=True, slots=True)
class Rect:
    x: int
    y: int
    w: int
    h: int

    @property
    def right(self) -> int:
        return self.x + self.w

    @property
    def bottom(self) -> int:
        return self.y + self.h

    def intersects(self, other: Rect) -> bool:
        return (
            self.x < other.right
            and other.x < self.right
            and self.y < other.bottom
            and other.y < self.bottom
        )

    def contains(self, other: Rect) -> bool:
        return (
            self.x <= other.x
            and self.y <= other.y
            and other.right <= self.right
            and other.bottom <= self.bottom
        )


@dataclass(frozen=True, slots=True)
class Tile:
    row: int
    col: int
    rect: Rect


@dataclass(frozen=True, slots=True)
class Head:
    id: str
    row: int
    col: int
    rows: int
    cols: int
    rect: Rect


@dataclass(frozen=True)
class Wall:
    id: str
    name: str
    rows: int
    cols: int
    tile_w_px: int
    tile_h_px: int
    tile_w_mm: float
    tile_h_mm: float
    bezel_mm: float
    bezel_compensation: bool
    snap_to_tiles: bool
    heads: tuple[Head, ...]

    @classmethod
    def from_config(cls, cfg: WallConfig, wall_id: str | None = None) -> Wall:
        t = cfg.tiles
        base = cls(
            id=wall_id or cfg.id,
            name=cfg.name,
            rows=t.rows,
            cols=t.cols,
            tile_w_px=t.width_px,
            tile_h_px=t.height_px,
            tile_w_mm=t.width_mm,
            tile_h_mm=t.height_mm,
            bezel_mm=t.bezel_mm,
            bezel_compensation=cfg.bezel_compensation,
            snap_to_tiles=cfg.snap_to_tiles,
            heads=(),
        )
        if cfg.heads:
            heads = tuple(
                Head(
                    h.id,
                    h.row,
                    h.col,
                    h.rows,
                    h.cols,
                    base.block_rect(h.row, h.col, h.rows, h.cols),
                )
                for h in cfg.heads
            )
        else:
            heads = (Head("all", 0, 0, t.rows, t.cols, base.canvas),)
        object.__setattr__(base, "heads", heads)
        return base

    # --- size --------------------------------------------------------------------

    @property
    def gap_x(self) -> int:
        """Canvas pixels hidden between two panels side by side."""
        if not self.bezel_compensation:
            return 0
        return round(2 * self.bezel_mm * self.tile_w_px / self.tile_w_mm)

    @property
    def gap_y(self) -> int:
        if not self.bezel_compensation:
            return 0
        return round(2 * self.bezel_mm * self.tile_h_px / self.tile_h_mm)

    @property
    def width(self) -> int:
        return self.cols * self.tile_w_px + (self.cols - 1) * self.gap_x

    @property
    def height(self) -> int:
        return self.rows * self.tile_h_px + (self.rows - 1) * self.gap_y

    @property
    def canvas(self) -> Rect:
        return Rect(0, 0, self.width, self.height)

    @property
    def diagonal_cm(self) -> float:
        return wall_diagonal_cm(self.rows, self.cols, self.tile_w_mm, self.tile_h_mm, self.bezel_mm)

    @property
    def made_of_16x9_units(self) -> bool:
        return is_16x9(self.tile_w_mm, self.tile_h_mm)

    # --- tiles -------------------------------------------------------------------

    def tile_rect(self, row: int, col: int) -> Rect:
        return Rect(
            col * (self.tile_w_px + self.gap_x),
            row * (self.tile_h_px + self.gap_y),
            self.tile_w_px,
            self.tile_h_px,
        )

    def block_rect(self, row: int, col: int, rows: int, cols: int) -> Rect:
        first = self.tile_rect(row, col)
        last = self.tile_rect(row + rows - 1, col + cols - 1)
        return Rect(first.x, first.y, last.right - first.x, last.bottom - first.y)

    @property
    def tiles(self) -> tuple[Tile, ...]:
        return tuple(
            Tile(r, c, self.tile_rect(r, c)) for r in range(self.rows) for c in range(self.cols)
        )

    def tiles_spanned(self, rect: Rect) -> list[tuple[int, int]]:
        """(row, col) of every tile the rectangle shows on (a pixel or more)."""
        return [(t.row, t.col) for t in self.tiles if t.rect.intersects(rect)]

    def tile_containing(self, x: int, y: int) -> tuple[int, int] | None:
        for t in self.tiles:
            if t.rect.x <= x < t.rect.right and t.rect.y <= y < t.rect.bottom:
                return (t.row, t.col)
        return None

    def snap(self, rect: Rect) -> Rect:
        """Move each edge to the nearest tile edge; the result covers at least one tile."""
        lefts = [self.tile_rect(0, c).x for c in range(self.cols)]
        rights = [self.tile_rect(0, c).right for c in range(self.cols)]
        tops = [self.tile_rect(r, 0).y for r in range(self.rows)]
        bottoms = [self.tile_rect(r, 0).bottom for r in range(self.rows)]
        c0 = _nearest(lefts, rect.x)
        c1 = max(_nearest(rights, rect.right), c0)
        r0 = _nearest(tops, rect.y)
        r1 = max(_nearest(bottoms, rect.bottom), r0)
        return self.block_rect(r0, c0, r1 - r0 + 1, c1 - c0 + 1)

    def nearest_tile_block(self, rect: Rect) -> Rect:
        """The tile under the rectangle's centre (for "full screen on its tile")."""
        cx = min(max(rect.x + rect.w // 2, 0), self.width - 1)
        cy = min(max(rect.y + rect.h // 2, 0), self.height - 1)
        found = self.tile_containing(cx, cy)
        if found is None:  # the centre falls in a bezel gap: take the nearest tile
            r = _nearest(
                [self.tile_rect(i, 0).y + self.tile_h_px // 2 for i in range(self.rows)], cy
            )
            c = _nearest(
                [self.tile_rect(0, i).x + self.tile_w_px // 2 for i in range(self.cols)], cx
            )
            found = (r, c)
        return self.tile_rect(*found)

    def describe(self) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "rows": self.rows,
            "cols": self.cols,
            "canvas": {"width": self.width, "height": self.height},
            "tile": {
                "width_px": self.tile_w_px,
                "height_px": self.tile_h_px,
                "width_mm": self.tile_w_mm,
                "height_mm": self.tile_h_mm,
                "bezel_mm": self.bezel_mm,
            },
            "bezel_compensation": self.bezel_compensation,
            "diagonal_cm": round(self.diagonal_cm, 1),
            "tiles": [
                {
                    "row": t.row,
                    "col": t.col,
                    "x": t.rect.x,
                    "y": t.rect.y,
                    "w": t.rect.w,
                    "h": t.rect.h,
                }
                for t in self.tiles
            ],
            "heads": [
                {
                    "id": h.id,
                    "row": h.row,
                    "col": h.col,
                    "rows": h.rows,
                    "cols": h.cols,
                    "x": h.rect.x,
                    "y": h.rect.y,
                    "w": h.rect.w,
                    "h": h.rect.h,
                }
                for h in self.heads
            ],
        }


def _nearest(edges: list[int], value: int) -> int:
    return min(range(len(edges)), key=lambda i: (abs(edges[i] - value), i))
