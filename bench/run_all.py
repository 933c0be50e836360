"""Run the benchmarks and collect their results: `make bench`, or
`python bench/run_all.py [startup store ...]` for some of them.

The convention every benchmark follows (bench/api.py and later ones too):

- It is a script `bench/<name>.py`, run as `python bench/<name>.py` from the repository
  root, each in its own process; it takes no arguments and exits 0 when it measured
  (a missed target is not a failure of the script).
- It writes `bench/results/<name>.json` holding at least
  `{"name": "<name>", "figures": {<figure>: <number>, ...},
  "targets": {<figure>: {"max": <number>} | {"min": <number>}, ...}}`;
  `bench/_common.py:write_result` writes that (plus "met", "notes", the machine) and
  prints a short table.
- A figure's name carries its unit (`_s`, `_per_s`, `_ms`, `_vs_bare` for ratios), and
  every figure compared with a baseline has the baseline measured in the same run.

This script runs each given (or every `bench/*.py` not starting with `_` except itself),
then writes `bench/results/summary.json` ({name: result or error}) and prints one table.
It exits 1 if a benchmark failed to run, 0 otherwise (missed targets are shown, not fatal).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import BENCH_DIR, PYTHON, RESULTS, ROOT, check_targets


def discover() -> list[str]:
    return sorted(
        p.stem for p in BENCH_DIR.glob("*.py") if not p.name.startswith("_") and p.stem != "run_all"
    )


def run_one(name: str) -> dict[str, Any]:
    script = BENCH_DIR / f"{name}.py"
    if not script.exists():
        return {"name": name, "error": f"no benchmark {script}"}
    out = RESULTS / f"{name}.json"
    out.unlink(missing_ok=True)
    t0 = time.perf_counter()
    proc = subprocess.run([PYTHON, str(script)], cwd=ROOT, capture_output=True, text=True)
    took = round(time.perf_counter() - t0, 1)
    sys.stdout.write(proc.stdout)
    if proc.returncode != 0 or not out.exists():
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        return {"name": name, "error": f"exit {proc.returncode}: {tail}", "took_s": took}
    result: dict[str, Any] = json.loads(out.read_text())
    result["took_s"] = took
    return result


def main(argv: list[str]) -> int:
    names = [a.removesuffix(".py").rsplit("/", 1)[-1] for a in argv] or discover()
    RESULTS.mkdir(parents=True, exist_ok=True)
    results = {name: run_one(name) for name in names}
    (RESULTS / "summary.json").write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")
    rows = []
    for name, r in results.items():
        if "error" in r:
            rows.append((name, "-", "ERROR", r["error"].splitlines()[0] if r["error"] else ""))
            continue
        figures = r.get("figures", {})
        targets = r.get("targets", {})
        met = check_targets(figures, targets)
        for key, value in figures.items():
            target = " ".join(f"{k} {v:g}" for k, v in targets.get(key, {}).items())
            state = ("met" if met[key] else "MISSED") if key in met else ""
            rows.append((name, key, f"{value:.4g}", f"{target} {state}".strip()))
    print("\n== summary")
    w = [max(len(str(r[i])) for r in rows) for i in range(3)] if rows else [0, 0, 0]
    for r in rows:
        print(f"  {r[0]:<{w[0]}}  {r[1]:<{w[1]}}  {r[2]:>{w[2]}}  {r[3]}")
    return 1 if any("error" in r for r in results.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
