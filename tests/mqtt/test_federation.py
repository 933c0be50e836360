"""Two centres, each with its own broker and wallctl, federated through a mosquitto bridge.

The district's broker bridges to the city's through a TCP relay the test can cut, so
"the bridge drops" is a real connection loss between two real brokers.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from wallctl.api import methods
from wallctl.bus import BusEvent
from wallctl.config import parse_config
from wallctl.errors import WallctlError
from wallctl.mqtt.config import MqttConfig
from wallctl.mqtt.mosquitto import acl, bridge, bridge_acl
from wallctl.store import Actor

from .conftest import (
    DAEMON_PASSWORD,
    Broker,
    Centre,
    Relay,
    mqtt_raw,
    raw_config,
    start_centre,
    wait_until,
)

CITY_PERSON = Actor("op1", via="api", role="operator")
DISTRICT_ADMIN = Actor("admin1", via="api", role="admin")


CITY_POLICY = {
    "answer_timeout": 2,
    "peers": {"d1": {"send": ["layout.apply", "window.set_source", "window.close"]}},
}
DISTRICT_POLICY = {
    "peers": {
        "city": {"watch": False, "accept": ["layout.apply"], "confirm": ["window.set_source"]}
    }
}


def mqtt_section(site: str, policy: dict[str, Any]) -> MqttConfig:
    raw = raw_config(site)
    raw["mqtt"] = {"host": "127.0.0.1", "username": f"wallctl-{site}", "federation": policy}
    return parse_config(raw).config.mqtt


@dataclass
class Federation:
    city: Centre
    district: Centre
    city_broker: Broker
    district_broker: Broker
    relay: Relay
    city_events: list[BusEvent]
    district_events: list[BusEvent]


@pytest.fixture
async def fed(tmp_path: Path, broker_factory: Any, accounts_db: Path) -> AsyncIterator[Federation]:
    # The brokers' ACLs and the bridge are generated from the centres' configs, as an
    # integrator would (wallctl mqtt acl / wallctl mqtt bridge).
    city_cfg, d1_cfg = mqtt_section("city", CITY_POLICY), mqtt_section("d1", DISTRICT_POLICY)
    city_acl = acl(city_cfg, "city") + bridge_acl(d1_cfg, "d1", "city", remote_username="bridge")
    city_broker: Broker = broker_factory("city", ["city", "d1"], acl=city_acl)
    relay = Relay(city_broker.port)
    await relay.start()
    bridge_conf = bridge(
        d1_cfg,
        "d1",
        "city",
        f"127.0.0.1:{relay.port}",
        remote_username="bridge",
        keepalive=5,
        restart_timeout="1",
    )
    district_broker: Broker = broker_factory(
        "d1",
        ["city", "d1"],
        bridge_conf + f"remote_password {DAEMON_PASSWORD}\n",
        acl=acl(d1_cfg, "d1"),
    )
    city = await start_centre(
        tmp_path,
        accounts_db,
        "city",
        mqtt_raw(
            city_broker,
            "city",
            federation={
                "answer_timeout": 2,
                "peers": {"d1": {"send": ["layout.apply", "window.set_source", "window.close"]}},
            },
        ),
    )
    district = await start_centre(
        tmp_path,
        accounts_db,
        "d1",
        mqtt_raw(
            district_broker,
            "d1",
            federation=DISTRICT_POLICY,
        ),
    )
    city_events: list[BusEvent] = []
    district_events: list[BusEvent] = []
    city.bus.subscribe(city_events.append)
    district.bus.subscribe(district_events.append)
    f = Federation(
        city, district, city_broker, district_broker, relay, city_events, district_events
    )
    try:
        await wait_until(lambda: city.mqtt.connected and district.mqtt.connected, what="up")
        view = city.mqtt.federation.peers["d1"]
        try:
            await wait_until(lambda: view.link is True and "main" in view.walls, what="peer seen")
        except AssertionError:
            print(view, city.mqtt.federation.counters, district.mqtt.state_detail)
            print(district_broker.log()[-3000:])
            print(city_broker.log()[-3000:])
            raise
        yield f
    finally:
        await district.stop()
        await city.stop()
        await relay.close()


async def city_send(f: Federation, method: str, params: dict[str, Any]) -> dict[str, Any]:
    ctx = f.city.mqtt.ctx
    return await methods.call(
        ctx,
        CITY_PERSON,
        "operator",
        "federation.send",
        {"centre": "d1", "method": method, "params": params},
        None,
    )


async def test_city_sees_and_commands_the_district(fed: Federation) -> None:
    # The city sees the district's walls and availability through the bridge.
    peers = await methods.call(
        fed.city.mqtt.ctx, CITY_PERSON, "viewer", "federation.peers", {}, None
    )
    (d1,) = peers["peers"]
    assert d1["site"] == "d1" and d1["online"] is True and d1["link"] is True
    assert d1["walls"][0]["wall"] == "main" and d1["walls"][0]["layout"] == "2x2"

    # Accepted by policy: runs at once, audited with the city and its person.
    out = await city_send(fed, "layout.apply", {"name": "1+5"})
    assert out["status"] == "done" and out["result"]["revision"] == 2
    assert fed.district.walls.state("main").layout == "1+5"
    entries = await asyncio.to_thread(fed.district.store.audit_log, wall="main", limit=1)
    assert (entries[0].actor, entries[0].via, entries[0].origin) == ("op1", "federation", "city")
    # ... and the city sees the new state.
    view = fed.city.mqtt.federation.peers["d1"]
    await wait_until(lambda: view.walls["main"]["revision"] == 2, what="state at city")

    # Refused by policy: not run, the answer says so, the district audits the refusal.
    with pytest.raises(WallctlError) as err:
        await city_send(fed, "window.close", {"window": "w5"})
    assert err.value.code == "not_permitted"
    assert err.value.message == ("centre d1: centre d1 does not take window.close from centre city")
    assert fed.district.walls.state("main").window("w5") is not None
    entries = await asyncio.to_thread(fed.district.store.audit_log, actor="op1", limit=1)
    assert (entries[0].action, entries[0].result, entries[0].origin) == (
        "window.close",
        "denied",
        "city",
    )
    # Validation is the same as everywhere: the district's exact error comes back.
    with pytest.raises(WallctlError) as err:
        await city_send(fed, "layout.apply", {"name": "no-such-layout"})
    assert err.value.code == "not_found" and err.value.field == "params.name"

    # Not in the city's own send list: refused before anything leaves the city.
    with pytest.raises(WallctlError) as err:
        await city_send(fed, "window.move", {"window": "w1", "x": 0, "y": 0})
    assert err.value.code == "not_permitted" and err.value.field == "params.method"


async def test_confirmation_on_the_district_console(fed: Federation) -> None:
    out = await city_send(fed, "window.set_source", {"window": "w1", "source": "clock"})
    assert out["status"] == "pending"
    pid = out["pending"]
    dctx = fed.district.mqtt.ctx
    pending = await methods.call(dctx, DISTRICT_ADMIN, "viewer", "federation.pending", {}, None)
    assert [(p["id"], p["origin"], p["person"]) for p in pending["pending"]] == [
        (pid, "city", "op1")
    ]
    assert fed.district.walls.state("main").window("w1").source == "bars"  # type: ignore[union-attr]
    assert any(e.type == "federation.pending" for e in fed.district_events)

    decision = await methods.call(
        dctx, DISTRICT_ADMIN, "operator", "federation.confirm", {"id": pid}, None
    )
    assert decision["ok"] is True and decision["by"] == "admin1"
    assert fed.district.walls.state("main").window("w1").source == "clock"  # type: ignore[union-attr]
    entries = await asyncio.to_thread(fed.district.store.audit_log, limit=3)
    ran = next(e for e in entries if e.action == "window.set_source")
    assert (ran.actor, ran.via, ran.origin) == ("op1", "federation", "city")
    assert any(e.action == "federation.confirm" and e.actor == "admin1" for e in entries)
    # The city's console learns the outcome.
    await wait_until(
        lambda: any(e.type == "federation.outcome" for e in fed.city_events), what="outcome"
    )
    outcome = next(e for e in fed.city_events if e.type == "federation.outcome")
    assert outcome.data["ok"] is True and outcome.data["method"] == "window.set_source"

    # Rejected: nothing runs, the city is told why.
    out = await city_send(fed, "window.set_source", {"window": "w2", "source": "clock"})
    await methods.call(
        dctx,
        DISTRICT_ADMIN,
        "operator",
        "federation.reject",
        {"id": out["pending"], "reason": "drill in progress"},
        None,
    )
    assert fed.district.walls.state("main").window("w2").source == "gradient"  # type: ignore[union-attr]
    await wait_until(
        lambda: sum(e.type == "federation.outcome" for e in fed.city_events) == 2, what="reject"
    )
    rejected = [e for e in fed.city_events if e.type == "federation.outcome"][-1]
    assert rejected.data["ok"] is False
    assert rejected.data["error"]["message"] == (
        "rejected at centre d1 by admin1: drill in progress"
    )
    # Deciding twice, or on an unknown id: not_found.
    with pytest.raises(WallctlError) as err:
        await methods.call(
            dctx, DISTRICT_ADMIN, "operator", "federation.confirm", {"id": pid}, None
        )
    assert err.value.code == "not_found" and err.value.field == "params.id"
    # A viewer cannot confirm.
    with pytest.raises(WallctlError) as err:
        await methods.call(dctx, DISTRICT_ADMIN, "viewer", "federation.confirm", {"id": pid}, None)
    assert err.value.code == "not_permitted"


async def test_district_cannot_command_the_city(fed: Federation) -> None:
    before = fed.city.walls.state("main")
    # Not configured as something the district may send.
    dctx = fed.district.mqtt.ctx
    with pytest.raises(WallctlError) as err:
        await methods.call(
            dctx,
            DISTRICT_ADMIN,
            "admin",
            "federation.send",
            {"centre": "city", "method": "layout.apply", "params": {"name": "1x1"}},
            None,
        )
    assert err.value.code == "not_permitted"
    # Even the district daemon's own broker account publishing by hand: the bridge
    # carries nothing towards the city's command topics.
    async with fed.district_broker.client("wallctl-d1", DAEMON_PASSWORD) as d:
        await d.publish(
            "wallctl/city/fed/in/d1",
            b'{"op":"request","id":1,"method":"layout.apply","params":{"name":"1x1"},'
            b'"person":"op1"}',
            qos=1,
        )
    await asyncio.sleep(1.0)
    assert fed.city.walls.state("main") == before
    assert fed.city.mqtt.federation.counters == {}


async def test_a_bridge_that_drops(fed: Federation) -> None:
    view = fed.city.mqtt.federation.peers["d1"]
    fed.relay.drop()
    # The city broker publishes the bridge's will: the city knows the link is down.
    await wait_until(lambda: view.link is False, within=15, what="link down")
    with pytest.raises(WallctlError) as err:
        await city_send(fed, "layout.apply", {"name": "1+5"})
    assert err.value.code == "unavailable" and err.value.retryable
    assert "no answer from centre d1 within 2 s" in err.value.message
    assert fed.district.walls.state("main").layout == "2x2"
    # Meanwhile the district changes its wall locally.
    await fed.district.walls.apply_layout("main", DISTRICT_ADMIN, "3x3")
    rev = fed.district.walls.state("main").revision
    fed.relay.restore()
    await wait_until(lambda: view.link is True, within=20, what="link up")
    # The district republishes when its bridge comes back: the city catches up.
    await wait_until(
        lambda: view.walls.get("main", {}).get("revision") == rev, within=10, what="caught up"
    )
    assert view.walls["main"]["layout"] == "3x3"
    out = await city_send(fed, "layout.apply", {"name": "1+5"})
    assert out["status"] == "done"


async def test_unconfirmed_command_expires_and_policy_reloads(fed: Federation) -> None:
    fedsvc = fed.district.mqtt.federation
    # A new policy (as SIGHUP applies it): quicker expiry, window.close now accepted.
    peer = fedsvc.config.peers["city"].model_copy(
        update={"accept": ["layout.apply", "window.close"]}
    )
    fedsvc.reconfigure(
        fedsvc.config.model_copy(update={"confirm_timeout": 0.5, "peers": {"city": peer}})
    )
    out = await city_send(fed, "window.set_source", {"window": "w1", "source": "clock"})
    assert out["status"] == "pending"
    await wait_until(
        lambda: any(e.type == "federation.outcome" for e in fed.city_events), what="expiry"
    )
    outcome = next(e for e in fed.city_events if e.type == "federation.outcome")
    assert outcome.data["ok"] is False and outcome.data["error"]["code"] == "aborted"
    assert fedsvc.pending == {}
    assert any(e.type == "federation.expired" for e in fed.district_events)
    assert fed.district.walls.state("main").window("w1").source == "bars"  # type: ignore[union-attr]
    out = await city_send(fed, "window.close", {"window": "w4"})
    assert out["status"] == "done" and fed.district.walls.state("main").window("w4") is None


@pytest.mark.parametrize(
    ("payload", "code", "field"),
    [
        (b"{broken", "malformed_message", None),
        (
            b'{"op":"request","id":"h1","method":"layout.apply","params":{}}',
            "invalid_field",
            "person",
        ),
        (
            b'{"op":"request","id":"h2","method":"layout.apply","params":{"name":"1x1"},'
            b'"person":"op1\\u202eevil"}',
            "invalid_field",
            "person",
        ),
        (
            b'{"op":"request","id":"h3","method":"layout.apply","params":{"name":"'
            + b"x" * 70000
            + b'"},"person":"op1"}',
            "malformed_message",
            None,
        ),
    ],
)
async def test_hostile_federated_payloads(
    fed: Federation, payload: bytes, code: str, field: str | None
) -> None:
    """What a broken (or hostile) city could send: answered exactly, nothing runs."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    before = fed.district.walls.state("main")
    async with fed.city_broker.client("wallctl-city", DAEMON_PASSWORD) as city:
        await city.subscribe("wallctl/city/fed/reply/d1", qos=1)
        props = Properties(PacketTypes.PUBLISH)
        props.CorrelationData = b"hostile"
        await city.publish("wallctl/d1/fed/in/city", payload, qos=1, properties=props)
        async with asyncio.timeout(10):
            async for m in city.messages:
                if bytes(getattr(m.properties, "CorrelationData", b"")) == b"hostile":
                    assert isinstance(m.payload, bytes)
                    answer = json.loads(m.payload)
                    break
    assert answer["ok"] is False and answer["status"] == "done"
    assert (answer["error"]["code"], answer["error"]["field"]) == (code, field)
    assert fed.district.walls.state("main") == before
    # The city's own service ignored the stray answer (no request of its own).
    await wait_until(
        lambda: fed.city.mqtt.federation.counters.get("stray_replies", 0) >= 1, what="stray"
    )
