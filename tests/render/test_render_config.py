"""The [render] section: every bad value is refused with its key path and a reason."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from wallctl.config import ConfigError, parse_config

ROOT = Path(__file__).resolve().parents[2]


def demo() -> dict[str, Any]:
    return tomllib.loads((ROOT / "config" / "demo.toml").read_text(encoding="utf-8"))


def problems(render: dict[str, Any]) -> list[str]:
    raw = demo()
    raw["render"] = render
    with pytest.raises(ConfigError) as e:
        parse_config(raw)
    return [str(p) for p in e.value.problems]


def test_demo_enables_the_preview() -> None:
    cfg = parse_config(demo()).config.render
    assert cfg.enabled and cfg.preview.enabled and cfg.fps == 25 and cfg.labels


@pytest.mark.parametrize(
    ("render", "expected"),
    [
        ({"fps": 0}, "render.fps: must be >= 1"),
        ({"fps": 500}, "render.fps: must be <= 60"),
        ({"clock": "middle"}, "render.clock: must be one of"),
        ({"colour": "red"}, "render.colour: unknown key"),
        ({"preview": {"width": 8}}, "render.preview.width: must be >= 16"),
        ({"preview": {"width": 4000, "max_width": 1920}}, "width must be <= max_width"),
        ({"preview": {"fps": 30, "max_fps": 25}}, "fps must be <= max_fps"),
        ({"preview": {"quality": 101}}, "render.preview.quality: must be <= 100"),
        ({"window": {"display": "evil;rm -rf"}}, "render.window.display"),
        ({"window": {"renderer": "vulkan"}}, "render.window.renderer: must be one of"),
        ({"window": {"walls": ["side"]}}, "render.window.walls[0]: no wall 'side'"),
        (
            {"window": {"placements": [{"wall": "main", "head": "left", "x": 0, "y": 0}]}},
            "render.window.placements[0].head: wall 'main' has no head 'left'",
        ),
        ({"streams": [{"id": "s", "wall": "side"}]}, "render.streams[0].wall: no wall 'side'"),
        (
            {"streams": [{"id": "s", "head": "left"}]},
            "render.streams[0].head: wall 'main' has no head 'left'",
        ),
        (
            {"streams": [{"id": "s"}, {"id": "s"}]},
            "render.streams[1].id: 's' is already used by streams[0]",
        ),
        ({"streams": [{"id": "s", "mode": "udp"}]}, "a udp stream needs target"),
        ({"streams": [{"id": "s", "mode": "srt"}]}, "a srt stream needs target"),
        (
            {"streams": [{"id": "s", "mode": "srt", "target": "x:1", "srt_mode": "rendezvous"}]},
            "render.streams[0].srt_mode: must be one of",
        ),
        ({"streams": [{"id": "s", "mode": "rtmp"}]}, "render.streams[0].mode: must be one of"),
        ({"streams": [{"id": "s", "width": 10}]}, "render.streams[0].width: must be >= 64"),
        ({"streams": [{"id": "bad id"}]}, "render.streams[0].id: must be 1-64 letters"),
        ({"sources": {"warm_s": -1}}, "render.sources.warm_s: must be >= 0"),
    ],
)
def test_bad_values_named_by_key_path(render: dict[str, Any], expected: str) -> None:
    found = problems(render)
    assert any(expected in p for p in found), found


def test_good_outputs_accepted() -> None:
    raw = demo()
    raw["render"] = {
        "clock": "top-right",
        "window": {
            "enabled": True,
            "display": ":0",
            "placements": [{"wall": "main", "head": "bottom", "x": 0, "y": 1080}],
        },
        "streams": [
            {"id": "top", "head": "top", "width": 1920},
            {"id": "mc", "mode": "udp", "target": "239.1.1.1:5004"},
        ],
    }
    cfg = parse_config(raw).config.render
    assert [s.id for s in cfg.streams] == ["top", "mc"]


def test_wallctl_check_reports_the_key(tmp_path: Path) -> None:
    text = (ROOT / "config" / "demo.toml").read_text(encoding="utf-8")
    text = text.replace("[render]\nfps = 25", "[render]\nfps = 0")
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "wallctl", "check", str(path)], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "render.fps: must be >= 1" in proc.stdout + proc.stderr
