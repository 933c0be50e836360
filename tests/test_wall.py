"""Wall geometry: canvas, bezel compensation, heads, tiles, snapping."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from wallctl.config import WallConfig, load_config, parse_config
from wallctl.resources import demo_config_path
from wallctl.wall import Rect, Wall


def make_wall(compensation: bool = False, **tiles: Any) -> Wall:
    t = {
        "rows": 2,
        "cols": 2,
        "width_mm": 1209.6,
        "height_mm": 680.4,
        "bezel_mm": 1.75,
        "width_px": 1920,
        "height_px": 1080,
        **tiles,
    }
    cfg = WallConfig.model_validate({"tiles": t, "bezel_compensation": compensation})
    return Wall.from_config(cfg)


def demo_wall() -> Wall:
    return Wall.from_config(load_config(demo_config_path()).config.wall)


def test_canvas_without_compensation_is_tiles_side_by_side() -> None:
    w = make_wall(False)
    assert (w.gap_x, w.gap_y) == (0, 0)
    assert (w.width, w.height) == (3840, 2160)
    assert w.canvas == Rect(0, 0, 3840, 2160)
    assert w.tile_rect(1, 1) == Rect(1920, 1080, 1920, 1080)


def test_canvas_with_compensation_includes_the_pixels_behind_bezels() -> None:
    w = make_wall(True)
    # 2 x 1.75 mm of bezel at 1920 px / 1209.6 mm = 5.56 px -> 6 px per gap.
    assert (w.gap_x, w.gap_y) == (6, 6)
    assert (w.width, w.height) == (3846, 2166)
    assert w.tile_rect(0, 1) == Rect(1926, 0, 1920, 1080)
    assert w.tile_rect(1, 0) == Rect(0, 1086, 1920, 1080)
    # Without bezels compensation changes nothing.
    flat = make_wall(True, bezel_mm=0)
    assert (flat.width, flat.height) == (3840, 2160)


def test_compensation_on_a_3x4_wall() -> None:
    w = make_wall(True, rows=3, cols=4, bezel_mm=10)
    gx = round(20 * 1920 / 1209.6)
    gy = round(20 * 1080 / 680.4)
    assert (w.width, w.height) == (4 * 1920 + 3 * gx, 3 * 1080 + 2 * gy)
    assert w.tile_rect(2, 3) == Rect(3 * (1920 + gx), 2 * (1080 + gy), 1920, 1080)


def test_demo_wall_diagonal_and_shape() -> None:
    w = demo_wall()
    # Bezels included, as an installer measures: 2 x (1209.6 + 3.5) by 2 x (680.4 + 3.5) mm.
    assert w.diagonal_cm == pytest.approx(278.52, abs=0.01)
    assert w.diagonal_cm > 254
    assert w.made_of_16x9_units
    assert w.describe()["diagonal_cm"] == 278.5
    assert (w.rows, w.cols) == (2, 2)


def test_demo_wall_heads() -> None:
    w = demo_wall()
    assert [h.id for h in w.heads] == ["top", "bottom"]
    assert w.heads[0].rect == Rect(0, 0, 3840, 1080)
    assert w.heads[1].rect == Rect(0, 1080, 3840, 1080)


def test_heads_with_compensation_span_the_gap() -> None:
    t = {
        "rows": 2,
        "cols": 2,
        "width_mm": 1209.6,
        "height_mm": 680.4,
        "bezel_mm": 1.75,
        "width_px": 1920,
        "height_px": 1080,
    }
    cfg = WallConfig.model_validate(
        {
            "tiles": t,
            "bezel_compensation": True,
            "heads": [{"id": "left", "rows": 2}, {"id": "right", "col": 1, "rows": 2}],
        }
    )
    w = Wall.from_config(cfg)
    assert w.heads[0].rect == Rect(0, 0, 1920, 2166)
    assert w.heads[1].rect == Rect(1926, 0, 1920, 2166)


def test_no_heads_means_one_head_for_the_whole_wall() -> None:
    w = make_wall(True)
    (head,) = w.heads
    assert (head.id, head.rows, head.cols, head.rect) == ("all", 2, 2, w.canvas)


def test_wall_id_from_walls_table_key() -> None:
    base: dict[str, Any] = {
        "tiles": {
            "rows": 2,
            "cols": 2,
            "width_mm": 1209.6,
            "height_mm": 680.4,
            "width_px": 1920,
            "height_px": 1080,
        }
    }
    cfg = parse_config({"wall": base, "walls": {"side": copy.deepcopy(base)}}, environ={}).config
    assert Wall.from_config(cfg.walls["side"], wall_id="side").id == "side"


def test_tiles_spanned_and_tile_containing() -> None:
    w = make_wall(True)
    assert w.tiles_spanned(Rect(0, 0, 10, 10)) == [(0, 0)]
    assert w.tiles_spanned(Rect(1919, 0, 2, 10)) == [(0, 0)]  # the second pixel is in the gap
    assert w.tiles_spanned(Rect(1919, 0, 8, 10)) == [(0, 0), (0, 1)]
    assert w.tiles_spanned(Rect(1920, 1080, 6, 6)) == []  # only the bezel gap
    assert w.tiles_spanned(w.canvas) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert w.tile_containing(1925, 5) is None
    assert w.tile_containing(1926, 1086) == (1, 1)
    assert w.tile_containing(3846, 0) is None


def test_nearest_tile_block() -> None:
    w = make_wall(True)
    # The centre decides: (2000 + 400, 100 + 200) is on tile (0, 1).
    assert w.nearest_tile_block(Rect(2000, 100, 800, 400)) == w.tile_rect(0, 1)
    # Wider than a tile, crossing both rows: its centre (1600, 1200) is on tile (1, 0).
    assert w.nearest_tile_block(Rect(100, 1000, 3000, 400)) == w.tile_rect(1, 0)
    # Centre in the vertical bezel gap (x 1920..1925): nearest tile centre.
    # Tile centres are at x 960 and 2886; 1925 is nearer the right one, 1921 the left.
    assert w.nearest_tile_block(Rect(1904, 0, 42, 100)) == w.tile_rect(0, 1)
    assert w.nearest_tile_block(Rect(1900, 0, 42, 100)) == w.tile_rect(0, 0)
    # Centre in the crossing of both gaps.
    assert w.nearest_tile_block(Rect(1921, 1081, 4, 4)) in [
        w.tile_rect(r, c) for r in (0, 1) for c in (0, 1)
    ]
    # A rectangle off the canvas is clamped onto it.
    assert w.nearest_tile_block(Rect(10_000, 10_000, 100, 100)) == w.tile_rect(1, 1)


def test_snap_moves_edges_to_tile_edges() -> None:
    w = make_wall(True)
    assert w.snap(Rect(100, 100, 1700, 900)) == w.tile_rect(0, 0)
    assert w.snap(Rect(100, 100, 3600, 900)) == w.block_rect(0, 0, 1, 2)
    assert w.snap(Rect(50, 50, 3700, 2050)) == w.canvas
    # x = 1000 is nearer the right tile's left edge (1926) than 0: the window lands right.
    assert w.snap(Rect(1000, 500, 1900, 1000)) == w.tile_rect(0, 1)
    # Tiny windows still cover one tile.
    assert w.snap(Rect(3800, 2100, 16, 16)) == w.tile_rect(1, 1)


def test_snap_is_idempotent_on_tile_blocks() -> None:
    w = make_wall(True, rows=3, cols=3)
    for r in range(3):
        for c in range(3):
            for rs in range(1, 4 - r):
                for cs in range(1, 4 - c):
                    block = w.block_rect(r, c, rs, cs)
                    assert w.snap(block) == block


def test_describe_lists_tiles_and_heads() -> None:
    d = make_wall(True).describe()
    assert d["canvas"] == {"width": 3846, "height": 2166}
    assert d["tiles"][3] == {"row": 1, "col": 1, "x": 1926, "y": 1086, "w": 1920, "h": 1080}
    assert d["heads"][0]["id"] == "all"
