"""WS-Discovery across a veth pair: the fake camera runs in its own network namespace
(multicast does not work on loopback), `wallctl cameras discover` probes from the host."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from camrig import CAM_PW

from drivers.onvif import discovery

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@pytest.fixture
def camera_netns() -> Iterator[tuple[str, str, str]]:
    """A namespace with 10.x.y.2 joined to the host's 10.x.y.1 by a veth pair."""
    if os.geteuid() != 0:
        pytest.skip("WS-Discovery needs a network namespace and a veth pair: run as root")
    tag = uuid.uuid4().hex[:6]
    ns, host_if, cam_if = f"wcam{tag}", f"wv{tag}a", f"wv{tag}b"
    # A /30 of 10.201.x.y chosen per run, so parallel runs do not collide.
    n = int(tag, 16) % 16000
    net = f"10.201.{n // 64}.{(n % 64) * 4}"
    base = net.rsplit(".", 1)[0]
    last = int(net.rsplit(".", 1)[1])
    host_ip, cam_ip = f"{base}.{last + 1}", f"{base}.{last + 2}"
    _ip("netns", "add", ns)
    try:
        _ip("link", "add", host_if, "type", "veth", "peer", "name", cam_if)
        _ip("link", "set", cam_if, "netns", ns)
        _ip("addr", "add", f"{host_ip}/30", "dev", host_if)
        _ip("-n", ns, "addr", "add", f"{cam_ip}/30", "dev", cam_if)
        _ip("link", "set", host_if, "up")
        _ip("-n", ns, "link", "set", cam_if, "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        # Multicast leaves the namespace's only interface.
        _ip("-n", ns, "route", "add", "224.0.0.0/4", "dev", cam_if)
        yield ns, host_ip, cam_ip
    finally:
        subprocess.run(["ip", "link", "del", host_if], capture_output=True, timeout=10)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)


def test_codec_round_trip_and_hostile_datagrams() -> None:
    probe = discovery.probe_message("urn:uuid:1")
    assert discovery.parse_probe(probe) == ("urn:uuid:1", ["dn:NetworkVideoTransmitter"])
    answer = discovery.probe_matches_message(
        "urn:uuid:1",
        "urn:uuid:cam",
        ["http://10.0.0.2/onvif/device_service"],
        ["onvif://www.onvif.org/name/Hik_Vision", "onvif://www.onvif.org/hardware/DS-2DE"],
    )
    (m,) = discovery.parse_probe_matches(answer, "urn:uuid:1", "10.0.0.2")
    assert m.xaddrs == ("http://10.0.0.2/onvif/device_service",)
    assert (m.scope("name"), m.scope("hardware")) == ("Hik Vision", "DS-2DE")
    # Answers to someone else's probe, garbage, entity bombs: ignored.
    assert discovery.parse_probe_matches(answer, "urn:uuid:2") == []
    assert discovery.parse_probe_matches(b"\x00garbage", None) == []
    assert (
        discovery.parse_probe(b'<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><a>&x;</a>')
        is None
    )
    assert discovery.parse_probe_matches(b"<a/>" * 20000, None) == []


def test_discover_finds_the_camera_across_a_veth_pair(
    camera_netns: tuple[str, str, str], tmp_path: Path
) -> None:
    ns, host_ip, cam_ip = camera_netns
    sim = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            ns,
            PY,
            "-m",
            "wallctl",
            "simulate",
            "onvif",
            "--listen",
            f"{cam_ip}:8000",
            "--password",
            CAM_PW,
            "--discovery",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert sim.stdout is not None
        line = sim.stdout.readline().strip()
        assert line == f"{cam_ip}:8000", sim.stderr.read() if sim.stderr else ""
        snippet = tmp_path / "cams.toml"
        t0 = time.monotonic()
        out = subprocess.run(
            [
                PY,
                "-m",
                "wallctl",
                "cameras",
                "discover",
                "--timeout",
                "1.5",
                "--interface",
                host_ip,
                "--write-config",
                str(snippet),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
        )
        assert out.returncode == 0, out.stderr
        assert time.monotonic() - t0 < 30
        first = out.stdout.splitlines()[0].split()
        assert first[0] == f"{cam_ip}:8000" and first[1] == "Wallctl"
        assert "onvif://www.onvif.org/hardware/FakeCam_PTZ" in out.stdout
        text = snippet.read_text()
        assert 'protocol = "onvif"' in text and f'host = "{cam_ip}"' in text
        assert "port = 8000" in text and 'url = "onvif://cam1"' in text
        assert CAM_PW not in text
        # The snippet is a valid config fragment.
        import tomllib

        parsed = tomllib.loads(text)
        assert parsed["devices"][0]["id"] == "cam1" and parsed["sources"][0]["kind"] == "onvif"
        # And the camera it found answers `cameras info` (through the veth pair too).
        info = subprocess.run(
            [PY, "-m", "wallctl", "cameras", "info", f"{cam_ip}:8000", "--user", "admin", "--json"],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
            env={**os.environ, "WALLCTL_CAMERA_PASSWORD": CAM_PW},
        )
        assert info.returncode == 0, info.stderr
        assert '"model": "FakeCam PTZ"' in info.stdout
    finally:
        sim.terminate()
        sim.wait(10)
        for s in (sim.stdout, sim.stderr):
            if s is not None:
                s.close()
