"""Layout templates: loading, refusing malformed files, and fitting to any wall (property-based)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wallctl.config import WallConfig
from wallctl.layout import (
    LayoutTemplate,
    TemplateError,
    fit,
    load_template,
    load_templates,
    parse_template,
)
from wallctl.resources import builtin_layouts_dir
from wallctl.wall import Rect, Wall

BUILTIN, BUILTIN_ERRORS = load_templates([builtin_layouts_dir()])
EXPECTED_BUILTIN = {"1x1", "2x2", "3x3", "4x4", "1+2", "1+5", "1+7", "1+12", "pip", "2x2+pip"}
WINDOW_COUNTS = {
    "1x1": 1,
    "2x2": 4,
    "3x3": 9,
    "4x4": 16,
    "1+5": 6,
    "1+7": 8,
    "1+12": 13,
    "pip": 2,
    "2x2+pip": 5,
}

PROPS = settings(
    max_examples=int(__import__("os").environ.get("WALLCTL_HYPOTHESIS_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


# --- walls ----------------------------------------------------------------------------------


@st.composite
def walls(draw: st.DrawFn, max_rc: int = 8, px: tuple[int, int] = (16, 4096)) -> Wall:
    rows = draw(st.integers(1, max_rc))
    cols = draw(st.integers(1, max_rc))
    w_px = draw(st.integers(*px))
    h_px = draw(st.integers(*px))
    # Physical size does not change pixels except through the bezel gap.
    w_mm = draw(st.floats(100, 2000))
    h_mm = draw(st.floats(100, 2000))
    bezel = draw(st.floats(0, 20))
    cfg = WallConfig.model_validate(
        {
            "tiles": {
                "rows": rows,
                "cols": cols,
                "width_mm": w_mm,
                "height_mm": h_mm,
                "bezel_mm": bezel,
                "width_px": w_px,
                "height_px": h_px,
            },
            "bezel_compensation": draw(st.booleans()),
            "min_diagonal_cm": 1,
        }
    )
    return Wall.from_config(cfg)


# --- random valid templates -------------------------------------------------------------------


@st.composite
def grid_templates(draw: st.DrawFn) -> tuple[str, list[tuple[int, int, int, int]], tuple[int, int]]:
    gcols = draw(st.integers(1, 12))
    grows = draw(st.integers(1, 12))
    n = draw(st.integers(1, 12))
    cells = []
    for _ in range(n):
        col = draw(st.integers(0, gcols - 1))
        row = draw(st.integers(0, grows - 1))
        cs = draw(st.integers(1, gcols - col))
        rs = draw(st.integers(1, grows - row))
        cells.append((col, row, cs, rs))
    text = f'title = "random"\ngrid = [{gcols}, {grows}]\n'
    for c in cells:
        text += f"[[window]]\ncell = [{c[0]}, {c[1]}, {c[2]}, {c[3]}]\n"
    return text, cells, (gcols, grows)


@st.composite
def rect_templates(draw: st.DrawFn) -> str:
    n = draw(st.integers(1, 8))
    text = 'title = "random"\n'
    for _ in range(n):
        x = draw(st.floats(0, 0.99))
        y = draw(st.floats(0, 0.99))
        w = draw(st.floats(0.001, 1 - x)) if x < 0.999 else 1 - x
        h = draw(st.floats(0.001, 1 - y)) if y < 0.999 else 1 - y
        if w <= 0 or h <= 0:
            continue
        text += f"[[window]]\nrect = [{x!r}, {y!r}, {w!r}, {h!r}]\nz = {draw(st.integers(0, 5))}\n"
    if "[[window]]" not in text:
        text += "[[window]]\nrect = [0.0, 0.0, 1.0, 1.0]\n"
    return text


def tile_lefts(wall: Wall) -> set[int]:
    return {wall.tile_rect(0, c).x for c in range(wall.cols)}


def tile_rights(wall: Wall) -> set[int]:
    return {wall.tile_rect(0, c).right for c in range(wall.cols)}


def tile_tops(wall: Wall) -> set[int]:
    return {wall.tile_rect(r, 0).y for r in range(wall.rows)}


def tile_bottoms(wall: Wall) -> set[int]:
    return {wall.tile_rect(r, 0).bottom for r in range(wall.rows)}


def assert_fits(template: LayoutTemplate, wall: Wall) -> None:
    fitted = fit(template, wall, snap=False)
    assert len(fitted) == len(template.windows)
    for f, tw in zip(fitted, template.windows, strict=True):
        r = f.rect
        assert r.w >= 1 and r.h >= 1, (template.name, r)
        assert wall.canvas.contains(r), (template.name, r, wall.canvas)
        assert f.z == tw.z
        assert f.label == tw.label
    # Edges shared in the template are shared exactly in pixels. (A window thinner than a
    # pixel is widened to 1 px and may overlap its neighbour by it: w/h >= 1 wins.)
    wins = template.windows
    for i, a in enumerate(wins):
        for j, b in enumerate(wins):
            if i == j:
                continue
            ra, rb = fitted[i].rect, fitted[j].rect
            wide = min(a.w, b.w) * wall.width >= 1
            high = min(a.h, b.h) * wall.height >= 1
            if abs((a.x + a.w) - b.x) < 1e-12 and wide:
                assert ra.right == rb.x, (template.name, i, j, ra, rb)
            if abs((a.y + a.h) - b.y) < 1e-12 and high:
                assert ra.bottom == rb.y, (template.name, i, j, ra, rb)
            if abs(a.x - b.x) < 1e-12:
                assert ra.x == rb.x
            if abs(a.y - b.y) < 1e-12:
                assert ra.y == rb.y


def assert_snapped(template: LayoutTemplate, wall: Wall) -> None:
    for f in fit(template, wall, snap=True):
        r = f.rect
        assert r.x in tile_lefts(wall) and r.right in tile_rights(wall), (r, wall)
        assert r.y in tile_tops(wall) and r.bottom in tile_bottoms(wall), (r, wall)
        assert r.right > r.x and r.bottom > r.y
        assert wall.canvas.contains(r)


# --- built-in templates -------------------------------------------------------------------------


def test_every_builtin_template_loads() -> None:
    assert BUILTIN_ERRORS == []
    assert set(BUILTIN) >= EXPECTED_BUILTIN
    for name, count in WINDOW_COUNTS.items():
        assert len(BUILTIN[name].windows) == count, name
    for path in sorted(builtin_layouts_dir().glob("*.toml")):
        t = load_template(path)
        assert t.name == path.stem
        assert t.title


@given(wall=walls())
@PROPS
def test_builtin_templates_fit_any_wall(wall: Wall) -> None:
    for template in BUILTIN.values():
        assert_fits(template, wall)


@given(wall=walls())
@PROPS
def test_builtin_templates_snap_to_tiles(wall: Wall) -> None:
    for template in BUILTIN.values():
        assert_snapped(template, wall)


def test_grid_templates_tile_the_canvas_without_overlap() -> None:
    wall = Wall.from_config(
        WallConfig.model_validate(
            {
                "tiles": {
                    "rows": 3,
                    "cols": 3,
                    "width_mm": 1209.6,
                    "height_mm": 680.4,
                    "bezel_mm": 1.75,
                    "width_px": 1366,
                    "height_px": 767,
                },
                "bezel_compensation": True,
            }
        )
    )
    for name in ("1x1", "2x2", "3x3", "4x4", "1+5", "1+7", "1+12"):
        fitted = fit(BUILTIN[name], wall, snap=False)
        assert sum(f.rect.w * f.rect.h for f in fitted) == wall.width * wall.height, name
        for i, a in enumerate(fitted):
            for b in fitted[i + 1 :]:
                assert not a.rect.intersects(b.rect), name


def test_2x2_on_the_demo_wall() -> None:
    wall = Wall.from_config(
        WallConfig.model_validate(
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
    )
    rects = [f.rect for f in fit(BUILTIN["2x2"], wall)]
    assert rects == [
        Rect(0, 0, 1920, 1080),
        Rect(1920, 0, 1920, 1080),
        Rect(0, 1080, 1920, 1080),
        Rect(1920, 1080, 1920, 1080),
    ]


# --- random templates -----------------------------------------------------------------------------


@given(wall=walls(), spec=grid_templates())
@PROPS
def test_random_grid_templates_fit(
    wall: Wall, spec: tuple[str, list[tuple[int, int, int, int]], tuple[int, int]]
) -> None:
    text, cells, (gcols, grows) = spec
    template = parse_template("random", text, "random.toml")
    assert_fits(template, wall)
    assert_snapped(template, wall)
    fitted = fit(template, wall, snap=False)
    # Cells that meet in the grid meet in pixels: compare on the integer cells themselves.
    for (c1, r1, cs1, rs1), f1 in zip(cells, fitted, strict=True):
        for (c2, r2, _cs2, _rs2), f2 in zip(cells, fitted, strict=True):
            if c1 + cs1 == c2:
                assert f1.rect.right == f2.rect.x
            if r1 + rs1 == r2:
                assert f1.rect.bottom == f2.rect.y
        if c1 + cs1 == gcols:
            assert f1.rect.right == wall.width
        if r1 + rs1 == grows:
            assert f1.rect.bottom == wall.height
        if c1 == 0 and r1 == 0:
            assert (f1.rect.x, f1.rect.y) == (0, 0)


@given(wall=walls(), text=rect_templates())
@PROPS
def test_random_rect_templates_fit(wall: Wall, text: str) -> None:
    template = parse_template("random", text, "random.toml")
    assert_fits(template, wall)
    assert_snapped(template, wall)


# --- tiles spanned, against a pixel map ----------------------------------------------------------


def pixel_tile_map(wall: Wall) -> np.ndarray:
    labels = np.full((wall.height, wall.width), -1, dtype=np.int32)
    for r in range(wall.rows):
        for c in range(wall.cols):
            t = wall.tile_rect(r, c)
            labels[t.y : t.bottom, t.x : t.right] = r * wall.cols + c
    return labels


@st.composite
def wall_and_rect(draw: st.DrawFn) -> tuple[Wall, Rect]:
    wall = draw(walls(max_rc=4, px=(16, 48)))
    x = draw(st.integers(0, wall.width - 1))
    y = draw(st.integers(0, wall.height - 1))
    w = draw(st.integers(1, wall.width - x))
    h = draw(st.integers(1, wall.height - y))
    return wall, Rect(x, y, w, h)


@given(case=wall_and_rect())
@settings(max_examples=300, deadline=None)
def test_tiles_spanned_matches_pixels(case: tuple[Wall, Rect]) -> None:
    wall, rect = case
    labels = pixel_tile_map(wall)
    under = np.unique(labels[rect.y : rect.bottom, rect.x : rect.right])
    expected = sorted(divmod(int(i), wall.cols) for i in under if i >= 0)
    assert sorted(wall.tiles_spanned(rect)) == expected
    cx, cy = rect.x, rect.y
    found = wall.tile_containing(cx, cy)
    label = int(labels[cy, cx])
    assert found == (None if label < 0 else divmod(label, wall.cols))


# --- malformed templates ------------------------------------------------------------------------

TWO_OK = 'title = "t"\n[[window]]\nrect = [0, 0, 1, 1]\n[[window]]\nrect = [0, 0, 1, 1]\n'
GRID_OK = (
    'title = "t"\ngrid = [2, 2]\n[[window]]\ncell = [0, 0, 1, 1]\n[[window]]\ncell = [1, 0, 1, 1]\n'
)

MALFORMED = [
    (
        TWO_OK + "[[window]]\ncell = [0, 0, 1, 1]\n",
        "window[2]: cell needs grid = [cols, rows] at the top",
    ),
    (
        GRID_OK + "[[window]]\ncell = [1, 1, 2, 1]\n",
        "window[2]: cell [1, 1, 2, 1] leaves the 2x2 grid (the canvas)",
    ),
    (
        GRID_OK + "[[window]]\ncell = [-1, 1, 1, 1]\n",
        "window[2]: cell needs col, row >= 0 and spans >= 1",
    ),
    (
        GRID_OK + "[[window]]\ncell = [1, 1, 0, 1]\n",
        "window[2]: cell needs col, row >= 0 and spans >= 1",
    ),
    (
        TWO_OK + "[[window]]\nrect = [0.5, 0.5, 0.6, 0.1]\n",
        "window[2]: rect [0.5, 0.5, 0.6, 0.1] leaves the canvas (x, y >= 0 and x + w, y + h <= 1)",
    ),
    (
        TWO_OK + "[[window]]\nrect = [-0.1, 0.5, 0.1, 0.1]\n",
        "window[2]: rect [-0.1, 0.5, 0.1, 0.1] leaves",
    ),
    (
        TWO_OK + "[[window]]\nrect = [0.5, 0.5, 0, 0.1]\n",
        "window[2]: rect width and height must be > 0",
    ),
    (
        TWO_OK + "[[window]]\nrect = [nan, 0.5, 0.1, 0.1]\n",
        "window[2]: rect values must be finite numbers",
    ),
    (
        TWO_OK + "[[window]]\nrect = [0.5, 0.5, inf, 0.1]\n",
        "window[2]: rect values must be finite numbers",
    ),
    (
        TWO_OK + "[[window]]\nz = 1\n",
        "window[2]: give exactly one of cell = [col, row, colspan, rowspan] or rect = [x, y, w, h]",
    ),
    (
        GRID_OK + "[[window]]\ncell = [0, 1, 1, 1]\nrect = [0, 0, 1, 1]\n",
        "window[2]: give exactly one of cell",
    ),
    (TWO_OK + "[[window]]\nrect = [0, 0, 1, 1]\ncolour = 1\n", "window[2].colour: "),
    (TWO_OK + "[[window]]\nrect = [0, 0, 1, 1]\nz = -1\n", "window[2].z: "),
    (TWO_OK + "[[window]]\nrect = [0, 0, 1]\n", "window[2].rect"),
    ("[[window]]\nrect = [0, 0, 1, 1]\n", "title: "),
    ('title = "t"\n', "window: "),
    ("title = \n", "not valid TOML: "),
    (
        'title = "t"\ngrid = [0, 2]\n[[window]]\ncell = [0, 0, 1, 1]\n',
        "grid must be 1..64 columns and rows",
    ),
]


@pytest.mark.parametrize(("text", "message"), MALFORMED, ids=[m for _, m in MALFORMED])
def test_malformed_template_names_file_and_window(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(TemplateError) as info:
        load_template(path)
    assert str(info.value).startswith(f"{path}: {message}"), str(info.value)


def test_template_name_checked() -> None:
    with pytest.raises(TemplateError, match=r"^x/bad name.toml: template name 'bad name' must be"):
        parse_template("bad name", TWO_OK, "x/bad name.toml")


def test_load_templates_skips_a_broken_file_and_loads_the_rest(tmp_path: Path) -> None:
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "good.toml").write_text(GRID_OK, encoding="utf-8")
    (extra / "bad.toml").write_text(TWO_OK + "[[window]]\ncell = [0, 0, 1, 1]\n", encoding="utf-8")
    (extra / "latin.toml").write_bytes(b'title = "\xe9"\n')
    # A folder later in the list replaces a built-in template of the same name.
    (extra / "2x2.toml").write_text('title = "mine"\n[[window]]\nrect = [0, 0, 1, 1]\n')
    missing = tmp_path / "missing"
    found, errors = load_templates([builtin_layouts_dir(), extra, missing])
    assert set(found) == set(BUILTIN) | {"good"}
    assert found["2x2"].title == "mine" and len(found["2x2"].windows) == 1
    messages = sorted(str(e) for e in errors)
    assert messages == [
        f"{extra / 'bad.toml'}: window[2]: cell needs grid = [cols, rows] at the top",
        f"{extra / 'latin.toml'}: not UTF-8 text",
        f"{missing}: layout folder does not exist",
    ]


def test_describe_round_trip() -> None:
    d = BUILTIN["pip"].describe()
    assert d["name"] == "pip"
    assert d["windows"][1]["z"] == 1


def test_shared_edge_survives_float_rounding() -> None:
    # 1/6 + 4/6 is 0.8333333333333333 but 5/6 is 0.8333333333333334: on a 69 px canvas one
    # is 57.4999... px and the other 57.5 px, which once rounded to different pixels.
    text = (
        'title = "t"\ngrid = [1, 6]\n'
        "[[window]]\ncell = [0, 1, 1, 4]\n[[window]]\ncell = [0, 5, 1, 1]\n"
    )
    wall = Wall.from_config(
        WallConfig.model_validate(
            {
                "tiles": {
                    "rows": 1,
                    "cols": 1,
                    "width_mm": 1000,
                    "height_mm": 1000,
                    "width_px": 16,
                    "height_px": 69,
                },
                "min_diagonal_cm": 1,
            }
        )
    )
    a, b = fit(parse_template("t", text, "t.toml"), wall)
    assert a.rect.bottom == b.rect.y
    assert b.rect.bottom == 69
