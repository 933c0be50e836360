"""pyextron (an independent Extron SIS client from PyPI, written for MAV+ matrices)
pointed at the extron-sis simulator over Telnet.

pyextron's own connect sequence waits for three lines after the banner, which our
simulator (like the guides' transcript) does not send without a password, so the test
uses its Telnet transport and its command tables (``_set_source_cmd``: zero-padded
input, ``!`` tie, CR LF) rather than its constructor.
"""

from __future__ import annotations

import asyncio
import warnings

import pytest

from drivers.extron_sis.simulator import ExtronSimulator
from drivers.simulator import serve_tcp

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    pyextron = pytest.importorskip("pyextron")
    from telnetlib import Telnet


async def test_pyextron_commands_drive_the_simulator() -> None:
    sim = ExtronSimulator(8, 8)
    srv = await serve_tcp(sim)

    def client() -> list[bytes]:
        tn = Telnet("127.0.0.1", srv.port, timeout=5)
        try:
            banner = [tn.read_until(b"\r\n", 5), tn.read_until(b"\r\n", 5)]
            assert banner[0].startswith(b"(c) Copyright")
            replies = []
            for zone, source in ((3, 5), (8, 1), (1, 8)):
                tn.write(pyextron._set_source_cmd("mav88", zone, source))
                replies.append(tn.read_until(b"\r\n", 5))
            return replies
        finally:
            tn.close()

    try:
        replies = await asyncio.to_thread(client)
        assert replies == [b"Out03 In05 All\r\n", b"Out08 In01 All\r\n", b"Out01 In08 All\r\n"]
        assert (sim.ties["video"][3], sim.ties["audio"][3]) == (5, 5)
        assert sim.ties["video"][8] == 1 and sim.ties["video"][1] == 8
    finally:
        await srv.close()
