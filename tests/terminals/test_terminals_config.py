"""``[terminals]``: defaults suit a closed network; bad values are named by key path."""

from __future__ import annotations

from typing import Any

import pytest

from wallctl.config import ConfigError, parse_config
from wallctl.terminals.relay import Relay

WALL = {
    "min_diagonal_cm": 10,
    "tiles": {
        "rows": 1,
        "cols": 1,
        "width_mm": 1209.6,
        "height_mm": 680.4,
        "width_px": 1920,
        "height_px": 1080,
    },
}


def load(terminals: dict[str, Any]) -> Any:
    return parse_config({"wall": WALL, "terminals": terminals}).config.terminals


def test_defaults_use_no_public_stun_server() -> None:
    cfg = load({})
    assert cfg.ice_servers == [] and cfg.recordings.enabled and cfg.recordings.segment_s == 60
    assert Relay(cfg).rtc_configuration().iceServers == []


def test_site_ice_servers_reach_aiortc_with_their_secret() -> None:
    cfg = load(
        {"ice_servers": [{"urls": ["turn:10.0.0.5:3478"], "username": "u", "credential": "s3cret"}]}
    )
    (server,) = Relay(cfg).rtc_configuration().iceServers
    assert server.urls == ["turn:10.0.0.5:3478"] and server.credential == "s3cret"
    assert "s3cret" not in repr(cfg)


@pytest.mark.parametrize(
    ("terminals", "path", "reason"),
    [
        ({"inactivity_s": 0.1}, "terminals.inactivity_s", ">= 0.5"),
        ({"public_url": "ftp://x"}, "terminals.public_url", "http:// or https://"),
        (
            {"ice_servers": [{"urls": ["stun.example.org"]}]},
            "terminals.ice_servers[0].urls",
            "starts with stun:",
        ),
        ({"recordings": {"segment_s": 1}}, "terminals.recordings.segment_s", ">= 2"),
        ({"recordings": {"min_free_mb": -1}}, "terminals.recordings.min_free_mb", ">= 0"),
        ({"max_viewers": 0}, "terminals.max_viewers", ">= 1"),
        ({"stun": "x"}, "terminals.stun", ""),
        ({"announced_addresses": ["gateway.example"]}, "terminals.announced_addresses[0]", ""),
    ],
)
def test_bad_values_name_their_key(terminals: dict[str, Any], path: str, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(terminals)
    (problem,) = info.value.problems
    assert problem.path == path and reason in problem.message


def test_a_mobile_source_says_where_to_watch_it() -> None:
    from wallctl.terminals.identities import whep_path_of

    feed = "http://127.0.0.1:8080/terminals/patrol-7/feed.h264"
    assert whep_path_of("wall-patrol", "mobile", feed) == "/whep/mobile/patrol-7"
    assert whep_path_of("patrol-9", "mobile", None) == "/whep/mobile/patrol-9"
    assert whep_path_of("cam1", "rtsp", "rtsp://x/y") is None
