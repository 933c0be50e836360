"""Matrix ties through each driver over a paced pty, against the pure wire time.

For every case of ``CASES`` (protocol x baud rate) the protocol's simulator runs in its own
process (``wallctl simulate PROTOCOL --pty --baud N --delay-ms D``), which paces bytes at
10 bits per byte both ways as a real UART would. This process runs the driver on that
pty and sends ``TIES`` single ties through the driver's declared ``route`` action (the
path the API takes: validation, queue, codec, transport). For each tie:

    wire_ms     = (bytes sent + bytes received) * 10 / baud * 1000 + the reply delay
    overhead_ms = measured latency - wire_ms

Target: overhead at most 2 ms at p99 for each case.

Baseline, same run, same simulator and pty: a bare client (no driver, no queue, no
codec) writes the same command bytes and reads up to the reply's line end, 500 times
before and 500 times after the driver's run. ``bare_*`` figures are its overhead over
the wire time; ``driver_added_*`` the driver's latency minus the bare client's at the
same percentile -- what the driver itself costs, apart from the machine and the pty.

Part B's protocols add a row each to ``CASES``: a protocol name, a baud rate, how to
build a tie's action arguments, and for the bare client the command bytes of a tie and
how its reply ends.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import serial_asyncio_fast
from _common import PYTHON, ROOT, write_result

from drivers import registry
from drivers.contract import DriverSetup
from drivers.extron_sis import codec as sis
from drivers.kramer_p3000 import codec as p3k
from drivers.lg import codec as lgc
from drivers.samsung_mdc import codec as mdc
from drivers.transport import Endpoint, SerialEndpoint, TcpEndpoint
from drivers.videohub import codec as vh

TIES = 1000
SIZE = 16
REPLY_DELAY_MS = 0
TARGET_P99_MS = 2.0


def tie_args(i: int) -> dict[str, Any]:
    """The i-th tie: inputs and outputs walk the whole matrix (video level)."""
    return {"input": i % SIZE + 1, "outputs": [(i * 7) % SIZE + 1], "level": "video"}


def extron_bytes(i: int) -> bytes:
    a = tie_args(i)
    return sis.tie(a["input"], a["outputs"][0], "video")


def kramer_bytes(i: int) -> bytes:
    a = tie_args(i)
    return p3k.route("video", [(a["input"], a["outputs"][0])])


@dataclass(frozen=True)
class Case:
    protocol: str
    baud: int
    # The bare client's command for tie i, and the bytes its reply ends with.
    raw: Callable[[int], bytes]
    reply_end: bytes = b"\r\n"
    action: str = "route"
    args: Callable[[int], dict[str, Any]] = tie_args
    options: tuple[tuple[str, Any], ...] = ()
    # Over loopback TCP instead of a pty (Videohub is controlled over Ethernet only):
    # the wire time is then 0 and the overhead is the whole latency.
    tcp: bool = False

    @property
    def key(self) -> str:
        if self.tcp:
            return f"{self.protocol.replace('-', '_')}_tcp"
        return f"{self.protocol.replace('-', '_')}_{self.baud}"


def videohub_bytes(i: int) -> bytes:
    # One fixed route: its broadcast ("...ROUTING:\n0 5\n\n") appears nowhere in the
    # prelude the bare client reads first, so it marks the end of the reply.
    return vh.encode_routes({0: 5})


def display_input_args(i: int) -> dict[str, Any]:
    """Displays have no ties: the i-th command switches the input back and forth."""
    return {"source": "hdmi1" if i % 2 else "hdmi2"}


def mdc_bytes(i: int) -> bytes:
    return mdc.encode_input(1, mdc.InputSource.HDMI1)


# MDC frames have no terminator: the bare client waits for the whole expected ACK.
MDC_ACK = mdc.frame(mdc.REPLY, 1, bytes((mdc.ACK, mdc.Command.INPUT_SOURCE, 0x21)))


def lg_bytes(i: int) -> bytes:
    return lgc.encode_input(1, lgc.Input.HDMI1)


CASES: list[Case] = [
    Case("extron-sis", 9600, extron_bytes),
    Case("extron-sis", 115200, extron_bytes),
    Case("kramer-p3000", 9600, kramer_bytes),
    Case("kramer-p3000", 115200, kramer_bytes),
    Case("videohub", 0, videohub_bytes, b"ROUTING:\n0 5\n\n", tcp=True),
    Case("samsung-mdc", 9600, mdc_bytes, MDC_ACK, "input", display_input_args),
    Case("samsung-mdc", 115200, mdc_bytes, MDC_ACK, "input", display_input_args),
    Case("lg", 9600, lg_bytes, lgc.REPLY_END, "input", display_input_args),
    Case("lg", 115200, lg_bytes, lgc.REPLY_END, "input", display_input_args),
]
BARE = 500


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def bare(case: Case, path: str, start: int) -> tuple[list[float], list[float]]:
    """(latency ms, overhead ms) of the bare client."""
    if case.tcp:
        host, _, port = path.rpartition(":")
        reader, writer = await asyncio.open_connection(host, int(port))
    else:
        reader, writer = await serial_asyncio_fast.open_serial_connection(
            url=path, baudrate=case.baud
        )
    baud = 0 if case.tcp else case.baud
    latency: list[float] = []
    overhead: list[float] = []
    try:
        for i in range(start, start + BARE):
            cmd = case.raw(i)
            t0 = time.perf_counter()
            writer.write(cmd)
            reply = await asyncio.wait_for(reader.readuntil(case.reply_end), 5)
            took = time.perf_counter() - t0
            wire = (len(cmd) + len(reply)) * 10 / baud if baud else 0.0
            wire += REPLY_DELAY_MS / 1000
            latency.append(took * 1000)
            overhead.append((took - wire) * 1000)
    finally:
        writer.close()
        await asyncio.sleep(0.05)
    return latency, overhead


async def run_case(case: Case) -> dict[str, float]:
    proto = registry.get(case.protocol)
    sim = await asyncio.create_subprocess_exec(
        PYTHON,
        "-m",
        "wallctl",
        "simulate",
        case.protocol,
        *(["--listen", "127.0.0.1:0"] if case.tcp else ["--pty"]),
        "--size",
        f"{SIZE}x{SIZE}",
        "--baud",
        str(case.baud),
        "--delay-ms",
        str(REPLY_DELAY_MS),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert sim.stdout is not None
    path = (await asyncio.wait_for(sim.stdout.readline(), 30)).decode().strip()
    options: dict[str, Any] = {"keepalive_s": 0, "timeout_ms": 5000}
    if proto.manifest.family == "matrix":
        options["size"] = f"{SIZE}x{SIZE}"
    options.update(dict(case.options))
    config = proto.config_model.model_validate(options)
    endpoint: Endpoint = SerialEndpoint(path, case.baud)
    if case.tcp:
        host, _, port = path.rpartition(":")
        endpoint = TcpEndpoint(host, int(port))
    driver = proto.driver(DriverSetup("bench", config, endpoint))
    try:
        bare_lat, bare_over = await bare(case, path, 0)
        await driver.start()
        assert driver.link is not None
        if not await driver.link.wait_ready(30):
            raise RuntimeError(f"{case.protocol}: {driver.status_detail}")
        link = driver.link
        for i in range(20):  # warm-up: first-call costs are not the steady state
            await driver.call(case.action, case.args(i))
        latency: list[float] = []
        overhead: list[float] = []
        for i in range(TIES):
            out0, in0 = link.bytes_out, link.bytes_in
            t0 = time.perf_counter()
            await driver.call(case.action, case.args(i))
            took = time.perf_counter() - t0
            nbytes = (link.bytes_out - out0) + (link.bytes_in - in0)
            wire = (nbytes * 10 / case.baud if case.baud else 0.0) + REPLY_DELAY_MS / 1000
            latency.append(took * 1000)
            overhead.append((took - wire) * 1000)
        await driver.stop()
        more_lat, more_over = await bare(case, path, BARE)
        bare_lat += more_lat
        bare_over += more_over
        return {
            f"{case.key}_latency_p50_ms": round(statistics.median(latency), 3),
            f"{case.key}_wire_p50_ms": round(
                statistics.median([lat - o for lat, o in zip(latency, overhead, strict=True)]), 3
            ),
            f"{case.key}_overhead_p50_ms": round(statistics.median(overhead), 3),
            f"{case.key}_overhead_p99_ms": round(pct(overhead, 99), 3),
            f"{case.key}_bare_overhead_p50_ms": round(statistics.median(bare_over), 3),
            f"{case.key}_bare_overhead_p99_ms": round(pct(bare_over, 99), 3),
            f"{case.key}_driver_added_p50_ms": round(
                statistics.median(latency) - statistics.median(bare_lat), 3
            ),
            f"{case.key}_driver_added_p99_ms": round(pct(latency, 99) - pct(bare_lat, 99), 3),
        }
    finally:
        await driver.stop()
        sim.terminate()
        await sim.wait()


async def main() -> None:
    figures: dict[str, float] = {}
    for case in CASES:
        figures.update(await run_case(case))
    targets = {f"{c.key}_overhead_p99_ms": {"max": TARGET_P99_MS} for c in CASES}
    write_result(
        "drivers",
        figures,
        targets,
        {
            "ties_per_case": TIES,
            "reply_delay_ms": REPLY_DELAY_MS,
            "wire": "10 bits per byte at the baud rate, bytes counted on the link both ways",
            "simulator": "separate process, `wallctl simulate --pty`, paced both ways",
            # Run under `chrt -f 20` to keep neighbours' load out of the p99 (the pty's
            # kernel work still runs at normal priority); recorded so runs compare.
            "scheduler": "fifo" if os.sched_getscheduler(0) == os.SCHED_FIFO else "normal",
            "load_average_1m": round(os.getloadavg()[0], 2),
        },
    )


if __name__ == "__main__":
    asyncio.run(main())
