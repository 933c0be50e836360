"""Benchmark of the control API against a bare websockets echo server, in one run.

    .venv/bin/python bench/api.py [--duration 5]

The daemon runs in its own process (`wallctl run` on a temporary config and state dir,
durability "normal"), configured as a dispatch-only centre would run it: the API and
the wall store, no software compositor, no mobile terminals, no devices, no MQTT (the
output says so: MINIMAL_CONFIG). Clients run in worker processes, so neither side's
CPU is charged to the other's latency; the table gives each side's CPU per request.
Phases:

1. echo: 50 clients send a request-sized message in a closed loop to a bare websockets
   echo server (same harness, same framing, no compression): the baseline.
2. throughput: 50 clients each send window.move (its own window) in a closed loop.
   Phases 1 and 2 take turns (echo, move, echo, move: ROUNDS each), so a load from
   elsewhere on the machine that comes or goes weighs on both sides of the ratio; an
   unmeasured warm-up of each server (WARMUP_S) comes first.
3. latency: the same 50 clients paced to 2 moves/s each (100/s in all, a busy centre),
   then to 20 moves/s each (1000/s).
4. fan-out: 200 viewers subscribed to `wall`, one operator making 100 changes/s; the
   fan-out time is from sending the change to each viewer receiving its event.

Writes bench/results/api.json and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PY = sys.executable
N_MOVERS = 50
# Said in the output: what runs in the daemon beside the API while it is measured.
MINIMAL_CONFIG = (
    "daemon config: dispatch-only centre - API + wall store (durability normal), "
    "no [render] compositor, no [terminals], no devices, no MQTT"
)
N_VIEWERS = 200
# Turns of echo then window.move, closed loop (see main), after a warm-up of each. Six:
# on this shared machine one turn's ratio alone swings by 10 points and more.
ROUNDS = 6
WARMUP_S = 2.0
FANOUT_RATE = 100.0
PACED_RATE = 20.0
LIGHT_RATE = 2.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, round(p / 100 * (len(v) - 1)))]


# --- workers (run in their own processes) ----------------------------------------------


async def login(
    url: str, account: str | None, password: str | None, subscriptions: Sequence[str] = ()
) -> Any:
    from websockets.asyncio.client import connect

    from wallctl.client import scram_proof

    ws = await connect(url, compression=None, max_size=None, open_timeout=60)
    json.loads(await ws.recv())
    ident: dict[str, Any] = {
        "op": "identify",
        "protocol_version": 1,
        "subscriptions": list(subscriptions),
    }
    if account is None:
        await ws.send(json.dumps(ident))
    else:
        nonce = secrets.token_urlsafe(18)
        await ws.send(json.dumps({**ident, "account": account, "client_nonce": nonce}))
        ch = json.loads(await ws.recv())
        auth = (
            f"n={account},r={nonce},r={ch['nonce']},s={ch['salt']},i={ch['iterations']},"
            f"c=biws,r={ch['nonce']}"
        )
        proof, _ = scram_proof(password or "", ch["salt"], ch["iterations"], auth)
        await ws.send(json.dumps({"op": "identify_proof", "proof": proof}))
    msg = json.loads(await ws.recv())
    assert msg["op"] == "identified", msg
    return ws


async def worker_load(cfg: dict[str, Any]) -> dict[str, Any]:
    from websockets.asyncio.client import connect

    kind, url, windows = cfg["kind"], cfg["url"], cfg["windows"]
    rate, start, duration = cfg["rate"], cfg["start"], cfg["duration"]
    if kind == "echo":
        conns = [await connect(url, compression=None) for _ in windows]
    else:
        conns = [await login(url, "admin", cfg["password"]) for _ in windows]
    lat: list[float] = []
    sent: list[tuple[int, float]] = []
    errors: dict[str, int] = {}

    async def run(ws: Any, window: str, k: int) -> None:
        n = 0
        await asyncio.sleep(max(0.0, start - time.time()) + (k / len(windows)) / max(rate, 1))
        end = start + duration
        next_at = time.time()
        while time.time() < end:
            n += 1
            msg = json.dumps(
                {
                    "op": "request",
                    "id": n,
                    "method": "window.move",
                    "params": {"window": window, "x": 100 + (n % 2) * 10, "y": 100},
                }
            )
            t0 = time.perf_counter()
            wall_t0 = time.time()
            await ws.send(msg)
            raw = await ws.recv()
            lat.append((time.perf_counter() - t0) * 1000)
            if kind == "api":
                resp = json.loads(raw)
                if resp.get("ok"):
                    sent.append((resp["result"]["revision"], wall_t0))
                else:
                    code = resp["error"]["code"]
                    errors[code] = errors.get(code, 0) + 1
            if rate:
                next_at += 1 / rate
                delay = next_at - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)

    cpu0 = time.process_time()
    await asyncio.gather(
        *(run(ws, w, k) for k, (ws, w) in enumerate(zip(conns, windows, strict=True)))
    )
    cpu = time.process_time() - cpu0
    for ws in conns:
        await ws.close()
    return {"lat_ms": lat, "sent": sent, "errors": errors, "count": len(lat), "cpu_s": cpu}


async def worker_view(cfg: dict[str, Any]) -> dict[str, Any]:
    viewers = []
    for _ in range(cfg["n"]):
        viewers.append(await login(cfg["url"], None, None, ["wall"]))
    print("ready", flush=True)
    got: list[tuple[int, float]] = []
    resyncs = 0
    end = cfg["start"] + cfg["duration"] + 2.0

    async def read(ws: Any) -> None:
        nonlocal resyncs
        while True:
            left = end - time.time()
            if left <= 0:
                return
            try:
                async with asyncio.timeout(left):
                    raw = await ws.recv()
            except TimeoutError:
                return
            now = time.time()
            # Cheap prefix checks: the viewer process must keep up with 20000 events/s.
            if '"type":"wall.changed"' in raw:
                i = raw.index('"revision":') + 11
                got.append((int(raw[i : raw.index(",", i)]), now))
            elif '"type":"resync"' in raw:
                resyncs += 1

    await asyncio.gather(*(read(ws) for ws in viewers))
    for ws in viewers:
        await ws.close()
    return {"got": got, "resyncs": resyncs}


async def echo_server(port: int) -> None:
    from websockets.asyncio.server import serve

    async def echo(ws: Any) -> None:
        async for msg in ws:
            await ws.send(msg)

    async with serve(echo, "127.0.0.1", port, compression=None):
        print("ready", flush=True)
        await asyncio.Future()


# --- orchestration ---------------------------------------------------------------------


def spawn(role: str, cfg: dict[str, Any]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PY, __file__, "--worker", role, json.dumps(cfg)], stdout=subprocess.PIPE, text=True
    )


def start_process(argv: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd=ROOT)


def collect(p: subprocess.Popen[str]) -> dict[str, Any]:
    out, _ = p.communicate(timeout=300)
    last = out.strip().splitlines()[-1]
    return dict(json.loads(last))


def write_config(tmp: Path, port: int) -> Path:
    cfg = f"""
[daemon]
state_dir = "{tmp / "state"}"
durability = "normal"
[log]
level = "warning"
# The control API alone, as a dispatch-only centre runs it (see MINIMAL_CONFIG): a
# hardware-rendered wall (the software compositor has its own benchmark, and repainting on
# each of thousands of changes a second is its cost, not ours), no mobile terminals (their
# wall listener looks for full-screen terminal windows on every change), no devices, no
# MQTT broker.
[render]
enabled = false
[terminals]
enabled = false
[http]
port = {free_port()}
[api]
port = {port}
max_connections = 1000
max_connections_per_address = 1000
connect_rate = 100000
connect_burst = 100000
rate_limit = 100000
rate_burst = 100000
anonymous_role = "viewer"
event_queue = 1024
[wall]
id = "main"
startup_layout = "2x2"
startup_sources = ["bars"]
[wall.tiles]
rows = 2
cols = 2
width_mm = 1209.6
height_mm = 680.4
width_px = 1920
height_px = 1080
[[sources]]
id = "bars"
name = "bars"
kind = "test_pattern"
"""
    path = tmp / "wallctl.toml"
    path.write_text(cfg)
    return path


async def wait_port(port: int, within_s: float = 90) -> None:
    end = time.time() + within_s
    while time.time() < end:
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return
        except OSError:
            await asyncio.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_phase(
    kind: str,
    url: str,
    windows: list[str],
    rate: float,
    duration: float,
    password: str | None,
    procs: int = 1,
    server_pid: int | None = None,
) -> dict[str, Any]:
    start = time.time() + 3.0
    share = [windows[i::procs] for i in range(procs)]
    ps = [
        spawn(
            "load",
            {
                "kind": kind,
                "url": url,
                "windows": w,
                "rate": rate,
                "start": start,
                "duration": duration,
                "password": password,
            },
        )
        for w in share
    ]
    # The server's CPU over the whole phase (log-ins and idle start-up included, which
    # are small next to thousands of requests): what one request costs it.
    cpu0 = cpu_seconds(server_pid) if server_pid else 0.0
    results = [collect(p) for p in ps]
    cpu = cpu_seconds(server_pid) - cpu0 if server_pid else float("nan")
    lat = [x for r in results for x in r["lat_ms"]]
    errors: dict[str, int] = {}
    for r in results:
        for k, v in r["errors"].items():
            errors[k] = errors.get(k, 0) + v
    return {
        "count": len(lat),
        "per_s": len(lat) / duration,
        "p50_ms": pct(lat, 50),
        "p99_ms": pct(lat, 99),
        "mean_ms": statistics.fmean(lat) if lat else float("nan"),
        "errors": errors,
        "sent": [s for r in results for s in r["sent"]],
        "server_cpu_us_per_request": cpu / max(len(lat), 1) * 1e6,
        # The load process's own CPU (JSON, websockets client): when it nears a whole core
        # the phase measures the client, not the server.
        "client_cpu_us_per_request": sum(r["cpu_s"] for r in results) / max(len(lat), 1) * 1e6,
    }


def combine(runs: list[dict[str, Any]], duration: float) -> dict[str, Any]:
    """Rounds of one closed-loop phase as one: rates over the whole time, the slowest
    round's percentiles (each round's samples are not kept), CPU per request overall."""
    count = sum(r["count"] for r in runs)
    cpu_s = sum(r["server_cpu_us_per_request"] * r["count"] for r in runs) / 1e6
    errors: dict[str, int] = {}
    for r in runs:
        for k, v in r["errors"].items():
            errors[k] = errors.get(k, 0) + v
    return {
        "count": count,
        "per_s": count / (duration * len(runs)),
        "p50_ms": max(r["p50_ms"] for r in runs),
        "p99_ms": max(r["p99_ms"] for r in runs),
        "mean_ms": statistics.fmean(r["mean_ms"] for r in runs),
        "errors": errors,
        "server_cpu_us_per_request": cpu_s / max(count, 1) * 1e6,
        "client_cpu_us_per_request": sum(r["client_cpu_us_per_request"] * r["count"] for r in runs)
        / max(count, 1),
    }


async def main(duration: float) -> dict[str, Any]:
    from wallctl.client import connect

    results: dict[str, Any] = {
        "duration_s": duration,
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
    }
    echo_port = free_port()
    echo = start_process([PY, __file__, "--worker", "echo", str(echo_port)])
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        port = free_port()
        cfg = write_config(tmp, port)
        daemon = start_process([PY, "-m", "wallctl", "run", "--config", str(cfg)])
        try:
            await wait_port(echo_port)
            await wait_port(port)
            url = f"ws://127.0.0.1:{port}/api/v1"
            password = (tmp / "state" / "admin-password").read_text().strip()
            admin = await connect(url, account="admin", password=password)
            opens = [
                {
                    "id": i,
                    "method": "window.open",
                    "params": {"x": (i % 10) * 300, "y": (i // 10) * 300, "w": 200, "h": 150},
                }
                for i in range(N_MOVERS)
            ]
            b = await admin.batch(opens, "atomic")
            assert b["ok"], b
            windows = [x["result"]["window"]["id"] for x in b["results"]]
            # The phases below block this loop: an idle connection would miss its pings.
            await admin.close()

            # 1-2. echo baseline and window.move throughput, closed loop, taking turns
            # (echo, move, echo, move...): the machine is shared, and a load that comes or
            # goes during the run then weighs on both sides of the ratio alike. The idle
            # server of each turn (the daemon during echo, the echo server during moves)
            # uses no CPU to speak of.
            echo_runs, move_runs = [], []
            # Unmeasured warm-up of both servers (allocator, page cache, the state
            # database's files growing to their working size), as a running daemon is.
            load_phase(
                "echo",
                f"ws://127.0.0.1:{echo_port}/",
                [f"w{i}" for i in range(N_MOVERS)],
                0,
                WARMUP_S,
                None,
            )
            load_phase("api", url, windows, 0, WARMUP_S, password)
            for _ in range(ROUNDS):
                r = load_phase(
                    "echo",
                    f"ws://127.0.0.1:{echo_port}/",
                    [f"w{i}" for i in range(N_MOVERS)],
                    0,
                    duration,
                    None,
                    server_pid=echo.pid,
                )
                r.pop("sent")
                echo_runs.append(r)
                r = load_phase("api", url, windows, 0, duration, password, server_pid=daemon.pid)
                r.pop("sent")
                move_runs.append(r)
            results["echo"] = combine(echo_runs, duration)
            results["api_closed_loop"] = combine(move_runs, duration)
            results["rounds"] = [
                {
                    "echo_per_s": e["per_s"],
                    "move_per_s": m["per_s"],
                    "ratio": m["per_s"] / e["per_s"],
                    "echo_cpu_us": e["server_cpu_us_per_request"],
                    "move_cpu_us": m["server_cpu_us_per_request"],
                }
                for e, m in zip(echo_runs, move_runs, strict=True)
            ]
            # 3. latency at paced rates
            r = load_phase("api", url, windows, LIGHT_RATE, duration, password)
            r.pop("sent")
            results["api_paced_light"] = r
            r = load_phase("api", url, windows, PACED_RATE, duration, password)
            r.pop("sent")
            results["api_paced"] = r

            # 4. fan-out to 200 subscribers at 100 changes/s
            start = time.time() + 6.0
            views = [
                spawn(
                    "view", {"url": url, "n": N_VIEWERS // 2, "start": start, "duration": duration}
                )
                for _ in range(2)
            ]
            for v in views:
                assert v.stdout is not None
                assert v.stdout.readline().strip() == "ready"
            op = load_phase("api", url, windows[:1], FANOUT_RATE, duration, password)
            got = [collect(v) for v in views]
            sent = dict(op.pop("sent"))
            fan = [(t - sent[rev]) * 1000 for g in got for rev, t in g["got"] if rev in sent]
            expected = len(sent) * N_VIEWERS
            results["fanout"] = {
                "changes": len(sent),
                "changes_per_s": len(sent) / duration,
                "deliveries": len(fan),
                "expected": expected,
                "p50_ms": pct(fan, 50),
                "p99_ms": pct(fan, 99),
                "max_ms": max(fan, default=0),
                "resyncs": sum(g["resyncs"] for g in got),
                "response_p50_ms": op["p50_ms"],
                "response_p99_ms": op["p99_ms"],
            }
        finally:
            daemon.terminate()
            daemon.wait(timeout=30)
            echo.terminate()
            echo.wait()
    results["throughput_vs_echo"] = results["api_closed_loop"]["per_s"] / results["echo"]["per_s"]
    results["targets"] = {
        "response_p99_le_5ms_at_100_per_s": results["api_paced_light"]["p99_ms"] <= 5,
        "response_p99_le_5ms_at_1000_per_s": results["api_paced"]["p99_ms"] <= 5,
        "fanout_p99_le_50ms": results["fanout"]["p99_ms"] <= 50,
        "throughput_ge_50pct_echo": results["throughput_vs_echo"] >= 0.5,
    }
    return results


def table(r: dict[str, Any]) -> str:
    rows = [
        ("echo baseline, 50 clients closed loop", r["echo"]),
        ("window.move, 50 clients closed loop", r["api_closed_loop"]),
        (f"window.move, 50 clients x {LIGHT_RATE:g}/s", r["api_paced_light"]),
        (f"window.move, 50 clients x {PACED_RATE:g}/s", r["api_paced"]),
    ]
    lines = [MINIMAL_CONFIG, f"{'phase':<42} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}"]
    for name, x in rows:
        lines.append(f"{name:<42} {x['per_s']:>8.0f} {x['p50_ms']:>8.2f} {x['p99_ms']:>8.2f}")
    f = r["fanout"]
    lines.append(
        f"fan-out to {N_VIEWERS} viewers at {f['changes_per_s']:.0f} changes/s: "
        f"p50 {f['p50_ms']:.1f} ms, p99 {f['p99_ms']:.1f} ms, max {f['max_ms']:.1f} ms, "
        f"{f['deliveries']}/{f['expected']} delivered, {f['resyncs']} resyncs; "
        f"operator response p99 {f['response_p99_ms']:.2f} ms"
    )
    lines.append(
        f"throughput vs echo: {r['throughput_vs_echo']:.0%} over {len(r['rounds'])} turns each ("
        + ", ".join(
            f"{x['move_per_s']:.0f}/{x['echo_per_s']:.0f} = {x['ratio']:.0%}" for x in r["rounds"]
        )
        + ")"
    )
    lines.append(
        "server CPU per request: echo "
        f"{r['echo']['server_cpu_us_per_request']:.0f} us, window.move "
        f"{r['api_closed_loop']['server_cpu_us_per_request']:.0f} us (closed loop); "
        f"load process: {r['echo']['client_cpu_us_per_request']:.0f} us, "
        f"{r['api_closed_loop']['client_cpu_us_per_request']:.0f} us"
    )
    lines.append(
        "targets: " + ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in r["targets"].items())
    )
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        role = sys.argv[2]
        if role == "echo":
            asyncio.run(echo_server(int(sys.argv[3])))
        else:
            fn = worker_load if role == "load" else worker_view
            print(json.dumps(asyncio.run(fn(json.loads(sys.argv[3])))), flush=True)
        raise SystemExit(0)
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=5.0)
    args = ap.parse_args()
    res = asyncio.run(main(args.duration))
    print(table(res))
    sys.path.insert(0, str(ROOT / "bench"))
    from _common import write_result

    f = res["fanout"]
    figures = {
        "echo_per_s": round(res["echo"]["per_s"], 1),
        "echo_p99_ms": round(res["echo"]["p99_ms"], 2),
        "move_closed_loop_per_s": round(res["api_closed_loop"]["per_s"], 1),
        "move_closed_loop_p99_ms": round(res["api_closed_loop"]["p99_ms"], 2),
        "throughput_vs_echo": round(res["throughput_vs_echo"], 3),
        "move_100_per_s_p50_ms": round(res["api_paced_light"]["p50_ms"], 2),
        "move_100_per_s_p99_ms": round(res["api_paced_light"]["p99_ms"], 2),
        "move_1000_per_s_p50_ms": round(res["api_paced"]["p50_ms"], 2),
        "move_1000_per_s_p99_ms": round(res["api_paced"]["p99_ms"], 2),
        "fanout_200_viewers_p50_ms": round(f["p50_ms"], 2),
        "fanout_200_viewers_p99_ms": round(f["p99_ms"], 2),
        "fanout_delivered_ratio": round(f["deliveries"] / max(f["expected"], 1), 4),
        "echo_server_cpu_us_per_request": round(res["echo"]["server_cpu_us_per_request"], 1),
        "move_server_cpu_us_per_request": round(
            res["api_closed_loop"]["server_cpu_us_per_request"], 1
        ),
        "echo_client_cpu_us_per_request": round(res["echo"]["client_cpu_us_per_request"], 1),
        "move_client_cpu_us_per_request": round(
            res["api_closed_loop"]["client_cpu_us_per_request"], 1
        ),
        "throughput_vs_echo_worst_turn": round(min(x["ratio"] for x in res["rounds"]), 3),
    }
    write_result(
        "api",
        figures,
        {
            "throughput_vs_echo": {"min": 0.5},
            "move_100_per_s_p99_ms": {"max": 5},
            "move_1000_per_s_p99_ms": {"max": 5},
            "fanout_200_viewers_p99_ms": {"max": 50},
        },
        {
            "phases": res,
            "clients": N_MOVERS,
            "viewers": N_VIEWERS,
            "durability": "normal",
            "daemon_config": MINIMAL_CONFIG,
        },
    )
