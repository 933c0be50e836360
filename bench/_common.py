"""Shared by the benchmark scripts: where results go and how they are written and shown."""

from __future__ import annotations

import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wallctl.wall import Wall

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
RESULTS = BENCH_DIR / "results"
PYTHON = str(ROOT / ".venv" / "bin" / "python")
if not Path(PYTHON).exists():
    PYTHON = sys.executable


def check_targets(
    figures: dict[str, float], targets: dict[str, dict[str, float]]
) -> dict[str, bool]:
    """``targets`` maps a figure to {"max": v} and/or {"min": v}; True where it is met."""
    met = {}
    for name, bound in targets.items():
        value = figures[name]
        ok = True
        if "max" in bound:
            ok = ok and value <= bound["max"]
        if "min" in bound:
            ok = ok and value >= bound["min"]
        met[name] = ok
    return met


def write_result(
    name: str,
    figures: dict[str, float],
    targets: dict[str, dict[str, float]],
    notes: dict[str, Any] | None = None,
) -> dict[str, Any]:
    RESULTS.mkdir(parents=True, exist_ok=True)
    met = check_targets(figures, targets)
    result = {
        "name": name,
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "figures": figures,
        "targets": targets,
        "met": met,
        "notes": notes or {},
    }
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    print_table(name, figures, targets, met)
    return result


def print_table(
    name: str,
    figures: dict[str, float],
    targets: dict[str, dict[str, float]],
    met: dict[str, bool],
) -> None:
    print(f"== {name}")
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        target = targets.get(key)
        t = ""
        if target:
            t = " ".join(f"{k} {v:g}" for k, v in target.items())
            t = f"  target {t}: {'met' if met[key] else 'MISSED'}"
        print(f"  {key:<{width}}  {value:>12.4g}{t}")


def median(values: list[float]) -> float:
    return statistics.median(values)


def bench_wall() -> Wall:
    """The wall the store benchmarks edit: 2 x 2 tiles of 1920 x 1080 (1209.6 mm wide
    each, a 55" panel), as a wallctl Wall."""
    from wallctl.config import WallConfig
    from wallctl.wall import Wall

    return Wall.from_config(
        WallConfig.model_validate(
            {
                "tiles": {
                    "rows": 2,
                    "cols": 2,
                    "width_mm": 1209.6,
                    "height_mm": 680.4,
                    "width_px": 1920,
                    "height_px": 1080,
                }
            }
        )
    )
