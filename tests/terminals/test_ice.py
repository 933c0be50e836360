"""ICE in closed networks: the port range's allocator and config, aioice's internals it
relies on, and (in a loopback-only namespace) sessions through a running daemon."""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import aioice
import aioice.ice
import pytest

from wallctl.config import ConfigError, parse_config
from wallctl.terminals.config import TerminalsConfig
from wallctl.terminals.ice import (
    IcePolicy,
    IcePortsExhausted,
    PortRange,
    RangedPeerConnection,
    check_internals,
    ranged_gathering,
)

from .conftest import run_in_netns
from .test_terminals_config import WALL, load

# --- aioice and aiortc underneath ------------------------------------------------------------


def test_aioice_and_aiortc_still_look_as_the_port_range_expects() -> None:
    """Fails loudly when aioice changes how it binds host candidates: then
    wallctl/terminals/ice.py must be checked against the new version (and the pins in
    pyproject.toml moved)."""
    assert aioice.__version__.startswith("0.13."), (
        f"aioice {aioice.__version__}: check wallctl/terminals/ice.py against it"
    )
    check_internals()
    # What the replacement stands in for: aioice binds each host address at port 0 in
    # this method, and gather_candidates calls it once per component.
    source = inspect.getsource(aioice.Connection.get_component_candidates)
    assert "local_addr=(address, 0)" in source
    assert "get_component_candidates" in inspect.getsource(aioice.Connection.gather_candidates)
    # aiortc gathers in setLocalDescription, which RangedPeerConnection prepares first.
    from aiortc import RTCPeerConnection

    assert "__gather" in inspect.getsource(RTCPeerConnection.setLocalDescription)
    pyproject = (Path(__file__).parents[2] / "pyproject.toml").read_text()
    assert '"aioice>=0.13,<0.14"' in pyproject


async def test_a_ranged_connection_gathers_in_the_range_on_loopback() -> None:
    # 127.0.0.1 given by hand (aioice skips it when it lists interfaces): no packet is
    # sent, gathering only binds.
    ports = PortRange(*_free_run(3))
    conn = aioice.Connection(ice_controlling=False)
    ranged_gathering(conn, ports)
    ranged_gathering(conn, ports)  # idempotent
    candidates = await conn.get_component_candidates(component=1, addresses=["127.0.0.1"])
    (c,) = candidates
    assert c.type == "host" and c.host == "127.0.0.1" and c.port in ports
    assert len(conn._protocols) == 1
    await conn.close()


async def test_a_peer_connection_made_by_the_policy_uses_the_range() -> None:
    first, last = _free_run(4)
    policy = IcePolicy(TerminalsConfig(ice_port_range=(first, last)))
    pc = policy.peer_connection()
    assert isinstance(pc, RangedPeerConnection) and pc.ice_ports is policy.ports
    assert policy.configuration().iceServers == []
    assert type(IcePolicy(TerminalsConfig()).peer_connection()) is not RangedPeerConnection
    await pc.close()


# --- the allocator ---------------------------------------------------------------------------


def _free_run(n: int) -> tuple[int, int]:
    """n consecutive ports free on 127.0.0.1 now (below the kernel's ephemeral range)."""
    for base in range(23000, 31000, 97):
        socks = []
        try:
            for port in range(base, base + n):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
        return base, base + n - 1
    raise AssertionError("no free run of ports")


async def test_ports_are_handed_out_round_robin_skipping_those_in_use() -> None:
    first, last = _free_run(3)
    ports = PortRange(first, last)
    squatter = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    squatter.bind(("127.0.0.1", first + 1))
    bound: list[asyncio.DatagramTransport] = []
    try:
        got = []
        for _ in range(2):
            t, _p = await ports.bind(asyncio.DatagramProtocol, "127.0.0.1")
            bound.append(t)
            got.append(t.get_extra_info("sockname")[1])
        assert got == [first, last], "the port in use is skipped"
        with pytest.raises(IcePortsExhausted) as info:
            await ports.bind(asyncio.DatagramProtocol, "127.0.0.1")
        message = str(info.value)
        assert f"terminals.ice_port_range {first}-{last}" in message
        assert "127.0.0.1" in message and "all 3 in use" in message
        # A released port is reused only after the others: round robin from the last.
        bound.pop(0).close()
        await asyncio.sleep(0.01)  # asyncio closes the socket on its next turn
        t, _p = await ports.bind(asyncio.DatagramProtocol, "127.0.0.1")
        bound.append(t)
        assert t.get_extra_info("sockname")[1] == first
    finally:
        squatter.close()
        for t in bound:
            t.close()


@pytest.mark.skipif(not Path("/proc/net/if_inet6").exists(), reason="no IPv6 here")
async def test_an_ipv6_address_binds_in_the_range_beside_ipv4() -> None:
    first, last = _free_run(2)
    ports = PortRange(first, last)
    v4, _ = await ports.bind(asyncio.DatagramProtocol, "127.0.0.1")
    try:
        v6, _ = await ports.bind(asyncio.DatagramProtocol, "::1")
    except OSError as e:  # ::1 not configured (ipv6 disabled on lo)
        v4.close()
        pytest.skip(f"::1 cannot be bound: {e}")
    try:
        assert v4.get_extra_info("sockname")[1] in ports
        assert v6.get_extra_info("sockname")[0] == "::1"
        assert v6.get_extra_info("sockname")[1] in ports
    finally:
        v4.close()
        v6.close()


async def test_an_address_that_cannot_be_bound_is_an_error_not_exhaustion() -> None:
    ports = PortRange(*_free_run(2))
    with pytest.raises(OSError) as info:
        await ports.bind(asyncio.DatagramProtocol, "192.0.2.77")  # not this host's
    assert not isinstance(info.value, IcePortsExhausted)


def test_the_policy_warns_of_a_range_that_cannot_hold_what_is_configured(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="wallctl.terminals.ice")
    IcePolicy(TerminalsConfig(ice_port_range=(20000, 20009), max_publishers=64))
    messages = [r.getMessage() for r in caplog.records]
    assert "ice host candidates in a port range" in messages
    assert "ice port range smaller than terminals.max_publishers" in messages
    caplog.clear()
    IcePolicy(TerminalsConfig(ice_port_range=(20000, 20099), max_publishers=64))
    assert "ice port range smaller than terminals.max_publishers" not in [
        r.getMessage() for r in caplog.records
    ]
    caplog.clear()
    IcePolicy(TerminalsConfig())
    assert caplog.records == [], "no range, nothing to say"


def test_an_overlap_with_the_kernels_ephemeral_ports_is_noticed(tmp_path: Path) -> None:
    f = tmp_path / "ip_local_port_range"
    f.write_text("32768\t60999\n")
    assert PortRange(40000, 40100).overlaps_ephemeral(f) == (32768, 60999)
    assert PortRange(20000, 20100).overlaps_ephemeral(f) is None
    assert PortRange(20000, 20100).overlaps_ephemeral(tmp_path / "missing") is None
    assert 20000 in PortRange(20000, 20001) and 20002 not in PortRange(20000, 20001)
    assert len(PortRange(20000, 20001)) == 2 and str(PortRange(20000, 20001)) == "20000-20001"
    with pytest.raises(ValueError):
        PortRange(5, 4)


# --- configuration ---------------------------------------------------------------------------


def test_a_port_range_is_read_from_the_config() -> None:
    assert load({}).ice_port_range is None
    cfg = load({"ice_port_range": [40000, 40099]})
    assert cfg.ice_port_range == (40000, 40099)
    assert load({"ice_port_range": [5000, 5000]}).ice_port_range == (5000, 5000)
    # As a firewall rule writes it.
    assert load({"ice_port_range": "40000-40099"}).ice_port_range == (40000, 40099)
    assert load({"ice_port_range": " 40000 - 40099 "}).ice_port_range == (40000, 40099)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ([40100, 40000], "the first port 40100 is above the last 40000"),
        ([80, 90], "port 80 is outside 1024..65535"),
        ([1023, 2000], "port 1023 is outside 1024..65535"),
        ([60000, 65536], "port 65536 is outside 1024..65535"),
        ([40000], "give the first and the last port"),
        ([40000, 40001, 40002], "give the first and the last port"),
        ("40100-40000", "the first port 40100 is above the last 40000"),
        ("40000:40100", "give [first, last] or"),
        ("40000-", "give [first, last] or"),
        ("100000-100001", "give [first, last] or"),
        (40000, "give the first and the last port"),
        (True, "give the first and the last port"),
        ({"first": 1}, "give the first and the last port"),
        (["a", "b"], "integer"),
        ([40000.5, 40001], "whole number"),
    ],
)
def test_bad_port_ranges_name_their_key(value: Any, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        load({"ice_port_range": value})
    assert info.value.problems, info.value
    for problem in info.value.problems:
        assert problem.path.startswith("terminals.ice_port_range")
    assert any(reason in p.message for p in info.value.problems), info.value.problems


def test_wallctl_check_reports_a_bad_range(tmp_path: Path) -> None:
    t = WALL["tiles"]
    assert isinstance(t, dict)
    conf = tmp_path / "wallctl.toml"
    conf.write_text(
        "[wall]\nmin_diagonal_cm = 10\n[wall.tiles]\n"
        + "".join(f"{k} = {v}\n" for k, v in t.items())
        + "[terminals]\nice_port_range = [50000, 49000]\n"
    )
    r = subprocess.run(
        [sys.executable, "-m", "wallctl", "check", str(conf)], capture_output=True, text=True
    )
    assert r.returncode != 0
    assert "terminals.ice_port_range: " in r.stderr
    assert "the first port 50000 is above the last 49000" in r.stderr
    # The same file with a good range passes.
    conf.write_text(conf.read_text().replace("[50000, 49000]", "[49000, 50000]"))
    r = subprocess.run(
        [sys.executable, "-m", "wallctl", "check", str(conf)], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr


def test_parse_config_keeps_the_range_beside_the_other_ice_keys() -> None:
    raw = {
        "wall": WALL,
        "terminals": {
            "ice_port_range": [40000, 40099],
            "announced_addresses": ["198.51.100.20"],
            "ice_servers": [{"urls": ["stun:10.1.1.1:3478"]}],
        },
    }
    cfg = parse_config(raw).config.terminals
    policy = IcePolicy(cfg)
    assert policy.ports is not None and (policy.ports.first, policy.ports.last) == (40000, 40099)
    (server,) = policy.configuration().iceServers
    assert server.urls == ["stun:10.1.1.1:3478"]


# --- through the daemon, in a loopback-only namespace -----------------------------------------


@pytest.mark.timeout(300)
def test_ice_in_loopback_namespace() -> None:
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("needs root, unshare (util-linux) and ip (iproute2)")
    r = run_in_netns("netns_ice.py")
    print(r.stdout[-6000:])
    print(r.stderr[-3000:])
    assert r.returncode == 0, r.stdout[-4000:]
    assert "5 passed" in r.stdout
