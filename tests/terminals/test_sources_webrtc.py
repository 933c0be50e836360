"""Runs netns_sources.py inside a loopback-only network namespace (needs root)."""

from __future__ import annotations

import os
import shutil

import pytest

from .conftest import run_in_netns


@pytest.mark.timeout(300)
def test_publishers_on_the_wall_and_loudspeaker_in_loopback_namespace() -> None:
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("needs root, unshare (util-linux) and ip (iproute2)")
    r = run_in_netns("netns_sources.py", "-s")
    print(r.stdout[-6000:])
    print(r.stderr[-3000:])
    assert r.returncode == 0, r.stdout[-4000:]
    assert " passed" in r.stdout and "skipped" not in r.stdout.split("\n")[-2]
