"""Start-up time: exec of `python -m wallctl run` to READY=1 on $NOTIFY_SOCKET.

Each run uses a copy of the demo config with its own fresh state directory and free ports
(so the start-up layout is applied, as on a first start). Against `python -c "import
wallctl"` measured in the same run. Target: median under 1 s.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import PYTHON, ROOT, median, write_result

RUNS = 10


def config_text(state_dir: Path) -> str:
    text = (ROOT / "config" / "demo.toml").read_text(encoding="utf-8")
    text = text.replace('site = "demo"', f'site = "demo"\nstate_dir = "{state_dir}"', 1)
    text = text.replace("port = 8080", "port = 0", 1)
    text = text.replace('level = "info"', 'level = "warning"', 1)
    if (ROOT / "wallctl" / "api" / "config.py").exists():
        text += "\n[api]\nport = 0\n"
    return text


def time_to_ready(work: Path) -> float:
    state = Path(tempfile.mkdtemp(dir=work))
    cfg = state / "wallctl.toml"
    cfg.write_text(config_text(state / "state"))
    sock_path = state / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(30)
    env = {**os.environ, "NOTIFY_SOCKET": str(sock_path)}
    env.pop("WATCHDOG_USEC", None)
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [PYTHON, "-m", "wallctl", "run", "--config", str(cfg)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
        env=env,
    )
    try:
        while True:
            data = sock.recv(65536).decode()
            if "READY=1" in data.split("\n"):
                elapsed = time.perf_counter() - t0
                break
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        sock.close()
    return elapsed


def time_import() -> float:
    t0 = time.perf_counter()
    subprocess.run([PYTHON, "-c", "import wallctl"], check=True, cwd=ROOT)
    return time.perf_counter() - t0


def time_cli_import() -> float:
    t0 = time.perf_counter()
    subprocess.run([PYTHON, "-c", "import wallctl.daemon"], check=True, cwd=ROOT)
    return time.perf_counter() - t0


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="wallctl-bench-") as tmp:
        work = Path(tmp)
        time_to_ready(work)  # warm the page cache and bytecode
        ready = [time_to_ready(work) for _ in range(RUNS)]
    imports = [time_import() for _ in range(RUNS)]
    daemon_imports = [time_cli_import() for _ in range(RUNS)]
    figures = {
        "ready_median_s": round(median(ready), 4),
        "ready_min_s": round(min(ready), 4),
        "ready_max_s": round(max(ready), 4),
        "import_wallctl_median_s": round(median(imports), 4),
        "import_wallctl_daemon_median_s": round(median(daemon_imports), 4),
    }
    write_result(
        "startup",
        figures,
        {"ready_median_s": {"max": 1.0}},
        {"runs": RUNS, "state": "fresh state directory per run (start-up layout applied)"},
    )


if __name__ == "__main__":
    main()
