"""Commands and retained state through a real mosquitto, with its ACL deciding who is who."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from helpers.tls import make_cert

from wallctl.accounts import Accounts
from wallctl.client import connect
from wallctl.config import load_config

from .conftest import (
    DAEMON_PASSWORD,
    PASSWORD,
    Broker,
    caller,
    free_port,
    mqtt_raw,
    read_retained_until,
    start_centre,
    wait_until,
)


async def test_retained_state_and_commands_like_the_websocket_api(
    tmp_path: Path, broker: Broker, accounts_db: Path
) -> None:
    c = await start_centre(tmp_path, accounts_db, "main", mqtt_raw(broker, "main"), with_api=True)
    try:
        await wait_until(lambda: c.mqtt.connected, what="connected")
        # An independent client reads the retained availability and wall state.
        online = await read_retained_until(
            broker, "viewer1", "wallctl/main/online", lambda o: o["online"]
        )
        assert online["online"] is True and online["site"] == "main"
        state = await read_retained_until(
            broker, "viewer1", "wallctl/main/state/main", lambda s: s["revision"] == 1
        )
        assert state["revision"] == 1 and state["state"]["layout"] == "2x2"

        async with caller(broker, "main", "op1") as op:
            topic, answer, corr = await op.call("window.move", {"window": "w1", "x": 10, "y": 20})
            assert topic == "wallctl/main/reply/op1/t" and corr == b"c1"
            assert answer == {
                "op": "response",
                "id": "r1",
                "ok": True,
                "result": answer["result"],
            }
            assert answer["result"]["revision"] == 2
            assert answer["result"]["window"]["x"] == 10
        st = c.walls.state("main")
        assert st.revision == 2
        # The retained state follows, and the audit names the account and the face.
        state = await read_retained_until(
            broker, "viewer1", "wallctl/main/state/main", lambda s: s["revision"] == 2
        )
        assert state["revision"] == 2 and state["origin"]["identity"] == "op1"
        entries = await asyncio.to_thread(c.store.audit_log, limit=5)
        assert any(e.actor == "op1" and e.wall == "main" for e in entries)

        # The same request over the WebSocket gets the same answer shape.
        assert c.api is not None
        ws = await connect(c.api.url, account="op1", password=PASSWORD)
        over_ws = await ws.call("window.move", {"window": "w1", "x": 30, "y": 20})
        await ws.close()
        async with caller(broker, "main", "op1") as op:
            _, answer, _ = await op.call("window.move", {"window": "w1", "x": 40, "y": 20})
        assert set(answer["result"]) == set(over_ws)

        # A batch, atomic: one revision.
        async with caller(broker, "main", "op1") as op:
            batch = {
                "op": "batch",
                "id": "b1",
                "mode": "atomic",
                "requests": [
                    {
                        "id": "a",
                        "method": "window.move",
                        "params": {"window": "w1", "x": 0, "y": 0},
                    },
                    {
                        "id": "b",
                        "method": "window.move",
                        "params": {"window": "w2", "x": 1920, "y": 0},
                    },
                ],
            }
            _, answer, _ = await op.send_raw(json.dumps(batch).encode())
            assert answer["op"] == "batch_response" and answer["ok"] is True
            assert answer["revision"] == c.walls.state("main").revision
    finally:
        await c.stop()


async def test_mosquitto_pub_sends_a_command(
    tmp_path: Path, broker: Broker, accounts_db: Path
) -> None:
    c = await start_centre(tmp_path, accounts_db, "main", mqtt_raw(broker, "main"))
    try:
        await wait_until(lambda: c.mqtt.connected, what="connected")
        # Line-buffered, so its SUBACK line shows before it exits.
        sub = await asyncio.create_subprocess_exec(
            "stdbuf",
            "-oL",
            "mosquitto_sub",
            *broker.cli("op1"),
            "-t",
            "wallctl/main/reply/op1",
            "-C",
            "1",
            "-W",
            "10",
            "-d",
            stdout=asyncio.subprocess.PIPE,
        )
        assert sub.stdout is not None
        async with asyncio.timeout(10):
            while b"SUBACK" not in await sub.stdout.readline():
                pass
        body = '{"op":"request","id":7,"method":"window.close","params":{"window":"w4"}}'
        pub = await asyncio.create_subprocess_exec(
            "mosquitto_pub",
            *broker.cli("op1"),
            "-t",
            "wallctl/main/cmd/op1",
            "-q",
            "1",
            "-m",
            body,
            "-D",
            "publish",
            "correlation-data",
            "k7",
        )
        assert await pub.wait() == 0
        out, _ = await sub.communicate()
        # No response topic given: the answer goes to the account's reply topic.
        answer = json.loads(next(x for x in out.splitlines() if x.startswith(b"{")))
        assert answer["id"] == 7 and answer["ok"] is True
        assert c.walls.state("main").window("w4") is None
    finally:
        await c.stop()


@pytest.mark.parametrize(
    ("payload", "code", "message", "field", "rid"),
    [
        (b"{not json", "malformed_message", None, None, None),
        (b"\xff\xfe", "malformed_message", "the payload is not UTF-8 JSON text", None, None),
        (b"[1,2]", "malformed_message", "a message must be a JSON object", None, None),
        (
            b'{"op":"identify","protocol_version":1}',
            "unknown_method",
            "op 'identify' is not used over MQTT: the command topic names the account",
            "op",
            None,
        ),
        (
            b'{"op":"request","id":"x","method":"window.move","params":{"window":"w1","x":"a","y":0}}',
            "invalid_field",
            "params.x must be an integer",
            "params.x",
            "x",
        ),
        (
            b'{"op":"request","id":"y","method":"no.such","params":{}}',
            "unknown_method",
            "unknown method 'no.such'",
            "method",
            "y",
        ),
    ],
)
async def test_bad_commands_get_exact_answers(
    tmp_path: Path,
    broker: Broker,
    accounts_db: Path,
    payload: bytes,
    code: str,
    message: str | None,
    field: str | None,
    rid: Any,
) -> None:
    c = await start_centre(tmp_path, accounts_db, "main", mqtt_raw(broker, "main"))
    try:
        await wait_until(lambda: c.mqtt.connected, what="connected")
        before = c.walls.state("main")
        async with caller(broker, "main", "op1") as op:
            _, answer, _ = await op.send_raw(payload)
            assert answer["ok"] is False and answer["id"] == rid
            assert answer["error"]["code"] == code
            if message is not None:
                assert answer["error"]["message"] == message
            assert answer["error"]["field"] == field
            # Nothing else moved, and the next good command is served.
            assert c.walls.state("main") == before
            _, ok, _ = await op.send_raw(b'{"op":"request","id":1,"method":"wall.get"}')
            assert ok["ok"] is True
    finally:
        await c.stop()


async def test_oversized_response_topic_and_role(
    tmp_path: Path, broker: Broker, accounts_db: Path
) -> None:
    c = await start_centre(
        tmp_path, accounts_db, "main", mqtt_raw(broker, "main", max_message_bytes=2048)
    )
    try:
        await wait_until(lambda: c.mqtt.connected, what="connected")
        before = c.walls.state("main")
        async with caller(broker, "main", "op1") as op:
            big = json.dumps(
                {"op": "request", "id": 1, "method": "wall.get", "params": {"p": "x" * 4000}}
            ).encode()
            _, answer, _ = await op.send_raw(big)
            assert answer == {
                "op": "response",
                "id": None,
                "ok": False,
                "error": {
                    "code": "malformed_message",
                    "message": "message over 2048 bytes",
                    "field": None,
                    "retryable": False,
                },
            }
        # A response topic outside the account's own reply tree (here: the retained
        # state, which a viewer cannot write) is refused; the answer goes home instead.
        async with caller(broker, "main", "viewer1") as viewer:
            _, answer, _ = await viewer.send_raw(
                b'{"op":"request","id":2,"method":"wall.get"}',
                response_topic="wallctl/main/state/main",
            )
            assert answer["error"]["code"] == "invalid_field"
            assert answer["error"]["field"] == "response_topic"
            # A viewer may read but not move windows: not_permitted, audited as denied.
            _, answer, _ = await viewer.call("window.move", {"window": "w1", "x": 1, "y": 1})
            assert answer["error"]["code"] == "not_permitted"
            assert answer["error"]["message"] == (
                "window.move needs the operator role (you are viewer)"
            )
            _, answer, _ = await viewer.call("wall.get")
            assert answer["ok"] is True
        assert c.walls.state("main") == before
        entries = await asyncio.to_thread(c.store.audit_log, actor="viewer1", limit=5)
        assert [(e.action, e.result, e.via) for e in entries] == [("window.move", "denied", "mqtt")]
        state = await read_retained_until(
            broker, "viewer1", "wallctl/main/state/main", lambda s: s["revision"] >= 1
        )
        assert state["revision"] == before.revision
    finally:
        await c.stop()


async def test_the_broker_acl_is_what_makes_the_identity(
    tmp_path: Path, broker: Broker, accounts_db: Path
) -> None:
    """A viewer publishing on an operator's command topic is stopped by the broker."""
    c = await start_centre(tmp_path, accounts_db, "main", mqtt_raw(broker, "main"))
    try:
        await wait_until(lambda: c.mqtt.connected, what="connected")
        before = c.walls.state("main")
        async with broker.client("viewer1") as viewer:
            body = b'{"op":"request","id":1,"method":"window.close","params":{"window":"w1"}}'
            # mosquitto acknowledges and drops it (MQTT 5 PUBACK "not authorized").
            await viewer.publish("wallctl/main/cmd/op1", body, qos=1, timeout=3)
            # Its own topic would have worked: the broker ACL, not wallctl, decides.
            await viewer.publish("wallctl/main/cmd/viewer1", body, qos=1, timeout=3)
        await asyncio.sleep(0.5)
        await wait_until(lambda: c.mqtt.commands.counters.by_result != {}, what="command")
        assert c.walls.state("main") == before
        # Only the command on the viewer's own topic arrived, and it ran as the viewer.
        assert c.mqtt.commands.counters.by_result == {("window.close", "not_permitted"): 1}
    finally:
        await c.stop()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
async def test_tls_to_the_broker(tmp_path: Path, broker_factory: Any, accounts_db: Path) -> None:
    """TLS with the CA from the config (a relative path, from the config file's folder)."""
    etc = tmp_path / "etc"
    etc.mkdir()
    cert, key = etc / "broker.pem", etc / "broker.key"
    await asyncio.to_thread(make_cert, cert, key)
    port = free_port()
    tls = f"listener {port} 127.0.0.1\ncertfile {cert}\nkeyfile {key}\n"
    broker_factory("tls", ["main"], extra=tls)
    conf = etc / "wallctl.toml"
    conf.write_text(
        '[daemon]\nsite = "main"\n[wall.tiles]\nrows = 2\ncols = 2\nwidth_mm = 1209.6\n'
        "height_mm = 680.4\nwidth_px = 1920\nheight_px = 1080\n"
        f'[mqtt]\nhost = "127.0.0.1"\nport = {port}\ntls = true\ntls_ca = "broker.pem"\n'
        f'username = "wallctl-main"\npassword = "{DAEMON_PASSWORD}"\n'
    )
    cfg = load_config(conf).config.mqtt
    assert cfg.tls_ca == cert
    raw = {k: v for k, v in cfg.model_dump().items() if v is not None}
    raw["password"] = DAEMON_PASSWORD
    raw["tls_ca"] = str(cert)
    c = await start_centre(tmp_path, accounts_db, "main", raw)
    try:
        await wait_until(lambda: c.mqtt.connected, what="connected over TLS")
        assert "connected to 127.0.0.1" in c.mqtt.health().detail
    finally:
        await c.stop()
    # Without the CA the broker's certificate is not trusted: never connected.
    raw.pop("tls_ca")
    c = await start_centre(tmp_path / "b", accounts_db, "main", raw)
    try:
        await wait_until(lambda: c.mqtt.failures.get("unreachable", 0) >= 1, what="refusal")
        assert not c.mqtt.connected
        assert "CERTIFICATE_VERIFY_FAILED" in c.mqtt.health().detail
    finally:
        await c.stop()


async def test_rate_limit_disabled_account_and_device_status(
    tmp_path: Path, broker: Broker, accounts_db: Path
) -> None:
    raw = mqtt_raw(broker, "main", rate_limit=0.5, rate_burst=2)
    c = await start_centre(tmp_path, accounts_db, "main", raw)
    try:
        await wait_until(lambda: c.mqtt.connected, what="connected")
        async with caller(broker, "main", "op1") as op:
            codes = [(await op.call("wall.get"))[1].get("error", {}).get("code") for _ in range(3)]
            assert codes == [None, None, "rate_limited"]
        # Disabled from the CLI while the daemon runs: the next command is refused.
        await Accounts(c.store).set_disabled("viewer1", True)
        async with caller(broker, "main", "viewer1") as viewer:
            _, answer, _ = await viewer.call("wall.get")
            assert answer["error"] == {
                "code": "not_permitted",
                "message": "viewer1 is not an enabled wallctl account",
                "field": "topic",
                "retryable": False,
            }
        # A device's status is retained under its id, newest value only.
        c.bus.publish("device", "device.status", {"device": "proj1", "status": "ok"})
        for power in ("off", "on"):
            c.bus.publish(
                "device", "device.state", {"device": "proj1", "key": "power", "value": power}
            )
        status = await read_retained_until(
            broker,
            "viewer1",
            "wallctl/main/devices/proj1/status",
            lambda s: s["state"].get("power") == "on",
        )
        assert status["status"] == "ok" and status["device"] == "proj1"
        assert status["state"] == {"power": "on"}
        # An id that cannot be a topic level is not published as one.
        c.bus.publish("device", "device.status", {"device": "a/#", "power": "on"})
        assert "wallctl/main/devices/a/#/status" not in c.mqtt.buffer.retained
    finally:
        await c.stop()
