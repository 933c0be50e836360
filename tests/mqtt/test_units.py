"""The pure parts: topics, payload codec, outgoing buffer, backoff, the [mqtt] section."""

from __future__ import annotations

from typing import Any

import pytest

from wallctl.api.protocol import DecodeError, Request
from wallctl.config import ConfigError, parse_config
from wallctl.errors import InvalidField
from wallctl.mqtt import codec
from wallctl.mqtt.buffer import OutageBuffer, Outgoing
from wallctl.mqtt.topics import Topics, valid_publish_topic

T = Topics("wallctl", "d1")


def test_topic_tree() -> None:
    assert T.online == "wallctl/d1/online"
    assert T.state("main") == "wallctl/d1/state/main"
    assert T.device_status("m1") == "wallctl/d1/devices/m1/status"
    assert T.events("wall") == "wallctl/d1/events/wall"
    assert T.federation_to("city") == "wallctl/city/fed/in/d1"
    assert T.federation_reply_to("city") == "wallctl/city/fed/reply/d1"
    assert T.command_account("wallctl/d1/cmd/op1") == "op1"
    assert T.command_account("wallctl/d1/cmd/op1/x") is None
    assert T.command_account("wallctl/d2/cmd/op1") is None
    assert T.federation_origin("wallctl/d1/fed/in/city") == "city"
    assert T.federation_origin("wallctl/d1/fed/in/+") is None
    assert T.peer_state("wallctl/city/state/main") == ("city", "state", "main")
    assert T.peer_state("wallctl/city/online") == ("city", "online", None)
    assert T.peer_state("wallctl/city/state/main/x") is None
    assert T.peer_bridge("wallctl/city/bridge/d1") == "city"
    assert T.peer_bridge("wallctl/city/bridge/d2") is None
    assert T.bridge_peer("wallctl/d1/bridge/city") == "city"


@pytest.mark.parametrize(
    "topic",
    [
        "wallctl/d1/state/main",  # what a viewer cannot write: the daemon would for it
        "wallctl/d1/reply/op2",  # another account's answers
        "wallctl/d1/reply/op1x",
        "wallctl/d1/reply/op1/#",
        "wallctl/d1/reply/op1/a\x00",
    ],
)
def test_response_topic_outside_the_account_tree_is_refused(topic: str) -> None:
    with pytest.raises(InvalidField) as e:
        T.check_response_topic("op1", topic)
    assert e.value.field == "response_topic"


def test_response_topic_inside_the_account_tree() -> None:
    assert T.check_response_topic("op1", None) == "wallctl/d1/reply/op1"
    assert T.check_response_topic("op1", "wallctl/d1/reply/op1/x/y") == "wallctl/d1/reply/op1/x/y"
    assert not valid_publish_topic("a/+/b") and valid_publish_topic("a/b")


def test_command_codec() -> None:
    msg = codec.decode_command(b'{"op":"request","id":1,"method":"wall.get"}', 1024)
    assert isinstance(msg, Request) and msg.method == "wall.get"
    with pytest.raises(DecodeError) as e:
        codec.decode_command(b"x" * 1025, 1024)
    assert e.value.error.message == "message over 1024 bytes"
    with pytest.raises(DecodeError) as e:
        codec.decode_command(b'{"op":"request","id":"q","method":"wall.get","x":1}', 1024)
    assert (e.value.error.code, e.value.error.field, e.value.request_id) == (
        "invalid_field",
        "x",
        "q",
    )


def test_federated_request_needs_a_person_who_can_be_an_account() -> None:
    body = codec.encode_federated("r1", "layout.apply", {"name": "1x1"}, 3, "op1")
    req = codec.decode_federated(body, 4096)
    assert (req.person, req.if_revision) == ("op1", 3)
    bad = body.replace(b'"op1"', b'"op1\\nforged"')
    with pytest.raises(DecodeError) as e:
        codec.decode_federated(bad, 4096)
    assert e.value.error.field == "person" and e.value.request_id == "r1"


def _msg(topic: str, n: int, retain: bool = False) -> Outgoing:
    return Outgoing(topic, str(n).encode(), 1, retain)


def test_buffer_drops_the_oldest_and_coalesces_retained() -> None:
    b = OutageBuffer(3)
    for i in range(5):
        b.put_event(_msg("e", i))
        b.put_retained(_msg("s/main", i, True))
    assert b.dropped == 2 and len(b) == 4
    # Retained first (only the newest), then the events in order.
    assert [m.payload for m in iter(lambda: b.take(100.0), None)] == [b"4", b"2", b"3", b"4"]
    # While connected one retained topic goes at most every retained_interval.
    b.put_retained(_msg("s/main", 9, True))
    b.put_back(_msg("s/main", 8, True))  # an older value that failed does not win
    assert b.take(100.01) is None and b.next_due() == pytest.approx(100.05)
    assert b.take(100.05) == _msg("s/main", 9, True)
    b.put_retained(_msg("s/main", 10, True))
    b.unpace()  # reconnected: everything at once
    assert b.take(100.06) == _msg("s/main", 10, True)


BASE: dict[str, Any] = {
    "wall": {
        "tiles": {
            "rows": 2,
            "cols": 2,
            "width_mm": 1209.6,
            "height_mm": 680.4,
            "width_px": 1920,
            "height_px": 1080,
        }
    }
}


def problems(mqtt: dict[str, Any], environ: dict[str, str] | None = None) -> list[str]:
    try:
        parse_config({**BASE, "mqtt": mqtt}, environ=environ or {})
    except ConfigError as e:
        return [str(p) for p in e.problems]
    return []


def test_config_off_by_default_and_secrets_from_the_usual_places(tmp_path: Any) -> None:
    cfg = parse_config(BASE).config
    assert not cfg.mqtt.enabled
    pw = tmp_path / "pw"
    pw.write_text("s3cret\n")
    loaded = parse_config(
        {**BASE, "mqtt": {"host": "b", "username": "u", "password_file": str(pw)}}
    )
    assert loaded.config.mqtt.password is not None
    assert loaded.config.mqtt.password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(loaded.config)


@pytest.mark.parametrize(
    ("mqtt", "expected"),
    [
        ({"host": "b", "port": 0}, "mqtt.port: must be >= 1"),
        (
            {"host": "b", "username": "u", "password_env": "NOPE"},
            "mqtt.password_env: environment variable NOPE is not set",
        ),
        ({"host": "b", "topic_prefix": "a/#"}, "mqtt.topic_prefix: must be 1-64 letters"),
        ({"host": "b", "tls_cert": "/c"}, "mqtt: Value error, give both tls_cert and tls_key"),
        ({"host": "b", "password": "x"}, "mqtt: Value error, a password needs a username"),
        (
            {"host": "b", "federation": {"peers": {"city": {"accept": ["no.such"]}}}},
            "mqtt.federation.peers.city.accept: Value error, no API method 'no.such'",
        ),
        (
            {
                "host": "b",
                "federation": {
                    "peers": {"city": {"accept": ["layout.apply"], "confirm": ["layout.apply"]}}
                },
            },
            "mqtt.federation.peers.city: Value error, layout.apply listed in both accept "
            "and confirm",
        ),
        (
            {"host": "b", "federation": {"peers": {"city": {"confirm": ["session.list"]}}}},
            "mqtt.federation.peers.city: Value error, session.list needs the admin role; "
            "this peer's role is operator",
        ),
        (
            {"host": "b", "federation": {"peers": {"city": {"accept": ["federation.send"]}}}},
            "mqtt.federation.peers.city: Value error, federation methods are not relayed "
            "between centres: federation.send",
        ),
    ],
)
def test_bad_config_is_reported_with_its_key(mqtt: dict[str, Any], expected: str) -> None:
    found = problems(mqtt)
    assert any(p.startswith(expected) for p in found), found


def test_cli_prints_the_acl_and_bridge_for_a_config(capsys: pytest.CaptureFixture[str]) -> None:
    """`wallctl mqtt acl` / `bridge`: the same text the federation tests run mosquitto with."""
    from pathlib import Path

    from wallctl.cli import main

    example = Path(__file__).resolve().parents[2] / "config" / "wallctl.example.toml"
    assert main(["mqtt", "acl", "--config", str(example)]) == 0
    out = capsys.readouterr().out
    assert "pattern write wallctl/huzhou-city/cmd/%u\n" in out
    assert "topic write wallctl/nanxun/fed/in/huzhou-city\n" in out
    args = ["mqtt", "bridge", "--config", str(example), "--peer", "nanxun"]
    assert main([*args, "--address", "10.0.0.9:8883"]) == 0
    out = capsys.readouterr().out
    assert "address 10.0.0.9:8883\n" in out
    assert "topic wallctl/nanxun/fed/in/huzhou-city out 1\n" in out
    # The city takes no commands from the district: nothing carries them in.
    assert "wallctl/huzhou-city/fed/in/" not in out
    assert main([*args[:-1], "nope", "--address", "x:1"]) == 3


def test_suback_refusals_are_recognised() -> None:
    """EMQX answers a subscription its ACL refuses with 0x87 (mosquitto 2.0 grants all)."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.reasoncodes import ReasonCode

    from wallctl.mqtt.component import _code

    assert _code(ReasonCode(PacketTypes.SUBACK, identifier=0x87)) == 0x87
    assert _code(ReasonCode(PacketTypes.SUBACK, identifier=1)) == 1
    assert _code(1) == 1
