"""Broker outages: local control goes on, events wait in a bounded buffer, state comes back."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from wallctl.component import Status
from wallctl.store import Actor

from .conftest import (
    DAEMON_PASSWORD,
    Broker,
    Relay,
    free_port,
    mqtt_raw,
    read_retained,
    read_retained_until,
    start_centre,
    wait_until,
)

OP = Actor("op1", via="api", role="operator")


async def move(c: Any, x: int) -> int:
    from wallctl import edits

    st = await c.walls.change(
        "main", OP, "window.move", lambda s, ctx: edits.move(s, ctx, "w1", x, 0, False)
    )
    return int(st.revision)


async def collect(
    broker: Broker, topic: str, out: list[dict[str, Any]], ready: asyncio.Event
) -> None:
    async with broker.client("viewer1") as sub:
        await sub.subscribe(topic, qos=1)
        ready.set()
        async for m in sub.messages:
            assert isinstance(m.payload, bytes)
            out.append(json.loads(m.payload))


async def test_broker_down_at_start_then_up(
    tmp_path: Path, broker: Broker, accounts_db: Path
) -> None:
    # The daemon reaches the broker through a relay that is not listening yet: the broker
    # is "down" for it, while the test's subscriber is already on the real broker.
    relay = Relay(broker.port, free_port())
    raw = mqtt_raw(broker, "main", port=relay.port, outage_buffer=5)
    t0 = time.monotonic()
    c = await start_centre(tmp_path, accounts_db, "main", raw)
    events: list[dict[str, Any]] = []
    subscribed = asyncio.Event()
    task = asyncio.create_task(collect(broker, "wallctl/main/events/wall", events, subscribed))
    try:
        assert time.monotonic() - t0 < 5, "start must not wait for the broker"
        assert not c.mqtt.connected
        await wait_until(lambda: c.mqtt.failures.get("unreachable", 0) >= 1, what="attempt")
        health = c.mqtt.health()
        assert health.status is Status.DEGRADED and "next attempt in" in health.detail
        # Local control is unaffected; events pile up in the bounded buffer.
        revisions = [await move(c, 10 * i) for i in range(1, 13)]
        assert revisions[-1] == 13
        assert c.mqtt.buffer.dropped == 7 and len(c.mqtt.buffer.events) == 5
        await asyncio.wait_for(subscribed.wait(), 10)
        await relay.start()
        await wait_until(lambda: c.mqtt.connected, within=15, what="connected")
        await wait_until(lambda: len(events) >= 5, what="buffered events")
        # The newest five, in order; the seven oldest were dropped and counted.
        assert [e["revision"] for e in events] == revisions[-5:]
        assert all(e["origin"]["identity"] == "op1" for e in events)
        state = await read_retained_until(
            broker, "viewer1", "wallctl/main/state/main", lambda s: s["revision"] == 13
        )
        assert state["revision"] == 13
        assert c.mqtt.health().status is Status.OK
    finally:
        task.cancel()
        await c.stop()
        await relay.close()


async def test_broker_killed_and_restarted_mid_run(
    tmp_path: Path, broker: Broker, accounts_db: Path
) -> None:
    c = await start_centre(tmp_path, accounts_db, "main", mqtt_raw(broker, "main"))
    try:
        await wait_until(lambda: c.mqtt.connected, what="connected")
        assert c.mqtt.connects == 1
        broker.kill()
        await wait_until(lambda: not c.mqtt.connected, what="disconnect noticed")
        assert c.mqtt.health().status is Status.DEGRADED
        # The wall keeps working while the broker is gone.
        rev = await move(c, 100)
        await asyncio.sleep(1.0)  # several reconnect attempts, capped at 0.5 s apart
        attempts = c.mqtt.failures.get("unreachable", 0)
        assert 2 <= attempts <= 15, attempts
        # Restarted without persistence: it lost every retained message; the daemon
        # republishes availability and the state it has now.
        broker.start()
        await wait_until(lambda: c.mqtt.connected, within=15, what="reconnected")
        assert c.mqtt.connects == 2
        state = await read_retained_until(
            broker, "viewer1", "wallctl/main/state/main", lambda s: s["revision"] == rev
        )
        assert state["revision"] == rev and state["state"]["windows"][0]["x"] == 100
        online = await read_retained_until(
            broker, "viewer1", "wallctl/main/online", lambda o: o["online"]
        )
        assert online["online"] is True
    finally:
        await c.stop()
    # A clean stop says goodbye: availability false, retained.
    online = await read_retained(broker, "viewer1", "wallctl/main/online")
    assert online["online"] is False


async def test_wrong_credentials_clear_status_no_storm(
    tmp_path: Path, broker: Broker, accounts_db: Path
) -> None:
    raw = mqtt_raw(broker, "main", password="wrong-password", auth_retry=60)
    c = await start_centre(tmp_path, accounts_db, "main", raw)
    try:
        await wait_until(lambda: c.mqtt.failures.get("authentication", 0) >= 1, what="refusal")
        await asyncio.sleep(1.5)  # the ordinary backoff would have retried ~5 times by now
        assert c.mqtt.failures == {"authentication": 1}
        health = c.mqtt.health()
        assert health.status is Status.DEGRADED
        assert "refused the credentials" in health.detail and "next attempt in 60" in health.detail
        assert DAEMON_PASSWORD not in health.detail and "wrong-password" not in health.detail
        assert await move(c, 5) == 2  # local control unaffected
    finally:
        await c.stop()


def test_daemon_last_will_when_killed(tmp_path: Path, broker: Broker, accounts_db: Path) -> None:
    """The real daemon process: killed, the broker publishes its last will."""
    import shutil

    state = tmp_path / "state"
    state.mkdir()
    shutil.copyfile(accounts_db, state / "wallctl.db")
    (tmp_path / "mqtt-password").write_text(DAEMON_PASSWORD + "\n")
    http_port = free_port()
    cfg = tmp_path / "wallctl.toml"
    cfg.write_text(
        f"""
[daemon]
site = "main"
state_dir = "{state}"
durability = "normal"
[http]
port = {http_port}
[api]
port = 0
[wall]
id = "main"
startup_layout = "2x2"
[wall.tiles]
rows = 2
cols = 2
width_mm = 1209.6
height_mm = 680.4
width_px = 1920
height_px = 1080
[mqtt]
host = "127.0.0.1"
port = {broker.port}
username = "wallctl-main"
password_file = "mqtt-password"
"""
    )
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "wallctl", "run", "--config", str(cfg)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        deadline = time.monotonic() + 30
        health: dict[str, Any] = {}
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{http_port}/healthz", timeout=1
                ) as r:
                    health = json.loads(r.read())
                if health["components"].get("mqtt", {}).get("status") == "ok":
                    break
            except OSError:
                pass
            time.sleep(0.1)
        if not health and proc.poll() is not None:
            raise AssertionError(proc.communicate()[0].decode()[-3000:])
        assert health["components"]["mqtt"]["status"] == "ok", health
        online = asyncio.run(
            read_retained_until(broker, "viewer1", "wallctl/main/online", lambda o: o["online"])
        )
        assert online["online"] is True
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        online = asyncio.run(
            read_retained_until(broker, "viewer1", "wallctl/main/online", lambda o: not o["online"])
        )
        assert online["online"] is False
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


async def test_reload_applies_policy_live_and_names_what_needs_a_restart(
    tmp_path: Path, broker: Broker, accounts_db: Path
) -> None:
    from wallctl.config import parse_config

    from .conftest import raw_config

    c = await start_centre(tmp_path, accounts_db, "main", mqtt_raw(broker, "main"))
    try:
        await wait_until(lambda: c.mqtt.connected, what="connected")
        raw = raw_config("main")
        raw["mqtt"] = mqtt_raw(
            broker,
            "main",
            port=broker.port + 1,
            rate_limit=7,
            federation={"peers": {"city": {"watch": False, "accept": ["layout.apply"]}}},
        )
        restart = c.mqtt.reload(parse_config(raw).config)
        assert restart == ["mqtt.port"]
        # Live: the policy and the rate; the connection keeps its port until a restart.
        assert c.mqtt.federation.config.peers["city"].accept == ["layout.apply"]
        assert c.mqtt.config.rate_limit == 7 and c.mqtt.config.port == broker.port
        assert c.mqtt.connected
    finally:
        await c.stop()
