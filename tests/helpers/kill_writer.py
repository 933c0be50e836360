"""Run durable_writer.py in a process of its own and ``kill -9`` it: the durability tests'
one way to die at a random moment."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
WRITER = HERE / "durable_writer.py"
PYTHON = str(ROOT / ".venv" / "bin" / "python")
if not Path(PYTHON).exists():
    PYTHON = sys.executable


@dataclass
class Killed:
    """What the writer said before it died: the revision it started from (READY) and
    every revision it acknowledged (ACK), read to the end of its output."""

    ready: int | None
    acks: list[int]
    stderr: str

    @property
    def last_ack(self) -> int | None:
        return self.acks[-1] if self.acks else None


def kill_writer(
    state_dir: Path, delay: float, *, durability: str = "full", wait_ready: bool = True
) -> Killed:
    """Start the writer on ``state_dir``, SIGKILL it ``delay`` s later (after its READY
    line when ``wait_ready``, else counted from the start, so start-up may be hit)."""
    argv = [PYTHON, str(WRITER), str(state_dir)]
    if durability == "normal":
        argv.append("normal")
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    ready_rev: list[int] = []
    acks: list[int] = []
    ready = threading.Event()

    def reader() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            kind, _, value = line.strip().partition(" ")
            if kind == "READY":
                ready_rev.append(int(value))
                ready.set()
            elif kind == "ACK":
                acks.append(int(value))
        ready.set()

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    if wait_ready:
        assert ready.wait(30), "the writer did not start"
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    # Every line the writer flushed before it died is still in the pipe: read it all
    # (a loaded machine may take a while), or the last ACK would look lost.
    t.join(60)
    assert not t.is_alive(), "the writer's output was not read to the end"
    stderr = proc.stderr.read() if proc.stderr else ""
    assert proc.returncode == -signal.SIGKILL, stderr
    return Killed(ready_rev[0] if ready_rev else None, acks, stderr)
