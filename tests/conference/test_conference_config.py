"""The [conference] section: every mistake named with its key path."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from wallctl.config import ConfigError, parse_config

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
    },
    "devices": [
        {"id": "codec-a", "name": "A", "protocol": "cisco-xapi", "host": "192.0.2.1"},
        {"id": "codec-b", "name": "B", "protocol": "huawei-te", "host": "192.0.2.3"},
    ],
    "conference": {
        "codecs": [
            {"id": "upper", "name": "上级会议", "device": "codec-a"},
            {"id": "lower", "name": "下级会议", "device": "codec-b"},
        ],
        "centres": [
            {"id": "huzhou", "name": "湖州市指挥中心", "level": "city", "sip": "sip:huzhou@x"},
            {
                "id": "nanxun",
                "name": "南浔区指挥中心",
                "level": "district",
                "parent": "huzhou",
                "e164": "+8657212345678",
                "sip": "sip:nanxun@x",
                "prefer": ["e164", "sip"],
            },
        ],
    },
}


def _problems(change: Any) -> list[str]:
    raw = copy.deepcopy(BASE)
    change(raw["conference"])
    with pytest.raises(ConfigError) as e:
        parse_config(raw)
    return [str(p) for p in e.value.problems]


def test_a_good_section_parses_with_dial_order() -> None:
    cfg = parse_config(copy.deepcopy(BASE)).config.conference
    assert [c.id for c in cfg.codecs] == ["upper", "lower"]
    assert cfg.centres[1].dial_strings() == [
        ("e164", "+8657212345678"),
        ("sip", "sip:nanxun@x"),
    ]
    assert cfg.window_for(1, cfg.codecs[1]).y == 0.5


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda c: c["centres"][0].update(sip='sip:a"@b'),
            "conference.centres[0].sip: may hold only letters",
        ),
        (
            lambda c: c["centres"][0].update(sip="sip:a@b\nxCommand Dial"),
            "conference.centres[0].sip: may hold only letters",
        ),
        (lambda c: c["centres"][1].update(e164="+86 572"), "conference.centres[1].e164"),
        (lambda c: c["centres"][0].update(level="province"), "conference.centres[0].level"),
        (lambda c: c["centres"][0].pop("sip"), "give at least one of sip, h323, e164"),
        (lambda c: c["centres"][1].update(parent="anji"), "centres[1].parent: no centre 'anji'"),
        (lambda c: c["centres"][1].update(id="huzhou"), "centres[1].id: 'huzhou' is already"),
        (lambda c: c["centres"][0].update(codec="middle"), "centres[0].codec: no codec link"),
        (lambda c: c["codecs"][1].update(device="codec-a"), "codecs[1].device: 'codec-a'"),
        (lambda c: c["codecs"][1].update(id="upper"), "codecs[1].id: 'upper' is already"),
        (
            lambda c: c["codecs"][0].update(matrix="m"),
            "needs matrix_input and wall_output",
        ),
        (
            lambda c: c["codecs"][0].update(wall_output=5),
            "matrix_input and the outputs go with matrix",
        ),
        (
            lambda c: c["codecs"][0].update(window={"x": 0.6, "y": 0, "w": 0.5, "h": 0.5}),
            "x + w and y + h must be at most 1",
        ),
        (lambda c: c["codecs"][0].update(matrix="m", matrix_input=0, wall_output=1), "port"),
        (lambda c: c.update(connect_timeout_s=0), "conference.connect_timeout_s: must be > 0"),
        (lambda c: c["codecs"][0].update(colour="red"), "conference.codecs[0].colour: unknown key"),
    ],
)
def test_mistakes_are_named(change: Any, expected: str) -> None:
    problems = _problems(change)
    assert any(expected in p for p in problems), problems


def test_references_to_devices_sources_and_walls() -> None:
    # `wallctl check` (parse_config) refuses a conference that names what is not there.
    raw = copy.deepcopy(BASE)
    raw["sources"] = [{"id": "cap", "name": "采集", "kind": "matrix"}]
    raw["devices"] = [
        {"id": "codec-a", "name": "A", "protocol": "cisco-xapi", "host": "192.0.2.1"},
        {"id": "matrix", "name": "M", "protocol": "extron-sis", "host": "192.0.2.2"},
    ]
    raw["conference"]["codecs"][0].update(
        matrix="codec-a", matrix_input=1, wall_output=2, source="cap", wall="side"
    )
    raw["conference"]["codecs"][1].update(device="matrix", source="nope")
    raw["conference"]["share_inputs"] = {"ghost": 3}
    with pytest.raises(ConfigError) as e:
        parse_config(raw)
    assert [str(p) for p in e.value.problems] == [
        "conference.codecs[0].matrix: 'codec-a' (cisco-xapi) is not a matrix",
        "conference.codecs[0].wall: no wall 'side'",
        "conference.codecs[1].device: 'matrix' (extron-sis) is not a codec",
        "conference.codecs[1].source: no source 'nope' in [[sources]]",
        "conference.share_inputs.ghost: no source 'ghost'",
    ]
    raw["conference"]["codecs"][1]["device"] = "codec-z"
    with pytest.raises(ConfigError) as e:
        parse_config(raw)
    assert "conference.codecs[1].device: no device 'codec-z' in [[devices]]" in [
        str(p) for p in e.value.problems
    ]
