"""``[[devices]]``: what `wallctl check` refuses, with the key path at fault."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import WALL

from drivers.transport import SerialEndpoint, TcpEndpoint
from wallctl.config import ConfigError, parse_config
from wallctl.devices.service import endpoint_for


def problems(devices: list[dict[str, Any]], **kw: Any) -> list[str]:
    with pytest.raises(ConfigError) as e:
        parse_config({"wall": WALL, "devices": devices}, **kw)
    return [str(p) for p in e.value.problems]


def dev(**kw: Any) -> dict[str, Any]:
    return {"id": "m", "name": "M", "protocol": "extron-sis", "host": "10.0.0.2", **kw}


def test_good_devices_and_defaults() -> None:
    cfg = parse_config(
        {
            "wall": WALL,
            "devices": [
                dev(size="16x16", inputs={"3": "区级会议终端"}, outputs={"5": "大屏输入5"}),
                dev(id="k", protocol="kramer-p3000", host=None, serial="/dev/ttyUSB0"),
            ],
        }
    ).config
    m, k = cfg.devices
    assert m.options() == {"size": "16x16"} and m.inputs == {3: "区级会议终端"}
    from drivers import registry

    assert endpoint_for(m, registry.get("extron-sis")) == TcpEndpoint("10.0.0.2", 23)
    assert endpoint_for(k, registry.get("kramer-p3000")) == SerialEndpoint("/dev/ttyUSB0", 115200)


def test_driver_options_are_checked_by_the_driver_model() -> None:
    devices = [dev(id="a"), dev(id="b"), dev(id="c", size="17", timeout_ms=5, color="red")]
    assert sorted(problems(devices)) == [
        "devices[2].color: unknown key",
        "devices[2].size: size must look like 16x16, not '17'",
        "devices[2].timeout_ms: must be >= 50",
    ]


def test_reach_protocol_names_and_duplicates() -> None:
    out = problems(
        [
            dev(protocol="crestron"),
            dev(id="x", host=None),
            dev(id="y", serial="/dev/ttyS0"),
            dev(id="z", simulate=True),
            dev(id="z"),
            dev(id="n", size="8x8", inputs={"9": "x"}, outputs={"1": "a\r\nb"}),
            dev(id="h", host="evil\r\nhost"),
            dev(id="b", host=None, baud=9600, simulate=True),
        ]
    )
    assert "devices[0].protocol: unknown protocol 'crestron'" in out[0]
    assert "devices[1]: give host (TCP) or serial (RS-232), or simulate = true" in out
    assert "devices[2].serial: give host or serial, not both" in out
    assert "devices[3].simulate: give simulate or host, not both" in out
    assert "devices[4].id: 'z' is already used by devices[3]" in out
    assert "devices[5].inputs.9: must be a number in 1..8" in out
    assert "devices[5].outputs.1: must be 1-64 printable characters" in out
    assert "devices[6].host: must not contain control characters" in out
    assert "devices[7].baud: baud goes with serial" in out


def test_schema_errors_come_first() -> None:
    assert problems([dev(port=99999)]) == ["devices[0].port: must be <= 65535"]
    assert problems([dev(id="bad id")])[0].startswith("devices[0].id: must be 1-64 letters")


def test_password_from_a_file_never_inline_in_errors(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    cfg = parse_config({"wall": WALL, "devices": [dev(password_file=str(secret))]}).config
    pw = cfg.devices[0].password
    assert pw is not None and pw.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(cfg.devices[0])
    out = problems([dev(password_file=str(tmp_path / "missing"))])
    assert out[0].startswith("devices[0].password_file: cannot read")
    secret.write_text("bad\rpw")
    assert problems([dev(password_file=str(secret))]) == [
        "devices[0].password: must be non-empty printable text"
    ]


def test_demo_and_example_configs_pass() -> None:
    from wallctl.config import load_config

    root = Path(__file__).resolve().parents[2] / "config"
    demo = load_config(root / "demo.toml").config
    assert {d.id for d in demo.devices} >= {"matrix"}
    assert all(d.simulate for d in demo.devices)
    example = load_config(root / "wallctl.example.toml").config
    assert example.devices[0].outputs[5] == "大屏输入5"


def test_salvos_checked_against_names_and_size() -> None:
    out = problems(
        [
            dev(
                size="8x8",
                inputs={"3": "区级会议终端"},
                salvos=[
                    {"name": "会商", "ties": [{"input": "区级会议终端", "output": 9}]},
                    {"name": "会商", "ties": [{"input": "无此输入", "output": 1}]},
                ],
            )
        ]
    )
    assert out == [
        "devices[0].salvos[0].ties[0].output: must be a number in 1..8",
        "devices[0].salvos[1].name: '会商' is used by another salvo",
        "devices[0].salvos[1].ties[0].input: no input named '无此输入' in [devices.inputs]",
    ]
