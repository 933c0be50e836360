"""Shared fixtures for driver tests: a socat pty pair (a real serial line)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def socat_pair(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two linked pseudo-terminals from Debian's socat: (device end, host end)."""
    with _socat(tmp_path) as (dev, host, _):
        yield dev, host


@pytest.fixture
def socat_line(tmp_path: Path) -> Iterator[tuple[str, str, subprocess.Popen[bytes]]]:
    """Like ``socat_pair``, with the socat process, to cut the line in a test."""
    with _socat(tmp_path) as line:
        yield line


@contextlib.contextmanager
def _socat(tmp_path: Path) -> Iterator[tuple[str, str, subprocess.Popen[bytes]]]:
    if shutil.which("socat") is None:
        pytest.fail("socat is not installed (Makefile DEB_TEST_PACKAGES lists it)")
    a, b = tmp_path / "dev", tmp_path / "host"
    proc = subprocess.Popen(
        ["socat", f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not (a.exists() and b.exists()):
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            pytest.fail("socat did not create its ptys")
        time.sleep(0.01)
    try:
        yield os.path.realpath(a), os.path.realpath(b), proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(5)
