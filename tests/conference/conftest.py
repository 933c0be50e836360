"""A daemon with two conference codecs (a Cisco over the xAPI WebSocket, a Huawei TE over
HTTPS), a simulated matrix and a directory of centres; all over real ports."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from drivers.cisco_xapi.farend import FarEnd
from drivers.cisco_xapi.simulator import CiscoModel, CiscoSimulator
from drivers.huawei_te.simulator import HuaweiModel, HuaweiSimulator
from wallctl.api.server import ApiServer
from wallctl.bus import BusEvent
from wallctl.conference.service import ConferenceService
from wallctl.config import parse_config
from wallctl.daemon import Daemon
from wallctl.devices.service import DeviceService


async def eventually(check: Any, within: float = 5.0) -> None:
    """Wait until ``check()`` holds (generous: the machine is shared and noisy)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + within
    while not check():
        if loop.time() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


CISCO_PW = "cisco pw"
HUAWEI_PW = "Change_Me"


def fast() -> FarEnd:
    return FarEnd(setup_s=0.02, ring_s=0.05, drop_after_s=0.2, no_answer_s=0.3)


def raw_config(tmp_path: Path, cisco_port: int, huawei_port: int, **over: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "daemon": {"state_dir": str(tmp_path), "durability": "normal"},
        "http": {"port": 0},
        "api": {"port": 0},
        "render": {"enabled": False},
        "wall": {
            "id": "main",
            "tiles": {
                "rows": 2,
                "cols": 2,
                "width_mm": 1209.6,
                "height_mm": 680.4,
                "width_px": 1920,
                "height_px": 1080,
            },
        },
        "sources": [
            {"id": "conf-upper", "name": "市级会议", "kind": "matrix"},
            {"id": "conf-lower", "name": "区级会议", "kind": "matrix"},
            {"id": "pc1", "name": "指挥电脑", "kind": "matrix"},
        ],
        "devices": [
            {
                "id": "codec-a",
                "name": "市级会议终端",
                "protocol": "cisco-xapi",
                "host": "127.0.0.1",
                "port": cisco_port,
                "password": CISCO_PW,
                "retry_max_s": 1,
            },
            {
                "id": "codec-b",
                "name": "区级会议终端",
                "protocol": "huawei-te",
                "host": "127.0.0.1",
                "port": huawei_port,
                "password": HUAWEI_PW,
                "poll_ms": 200,
                "retry_max_s": 1,
            },
            {
                "id": "matrix",
                "name": "主矩阵",
                "protocol": "extron-sis",
                "simulate": True,
                "size": "16x16",
                "inputs": {"3": "市级会议终端", "4": "区级会议终端", "9": "指挥电脑"},
                "outputs": {"5": "大屏输入5", "6": "大屏输入6", "7": "会议辅流"},
            },
        ],
        "conference": {
            "connect_timeout_s": 5,
            "share_inputs": {"pc1": "指挥电脑"},
            "codecs": [
                {
                    "id": "upper",
                    "name": "上级会议",
                    "device": "codec-a",
                    "matrix": "matrix",
                    "matrix_input": 3,
                    "wall_output": "大屏输入5",
                    "content_output": 7,
                    "source": "conf-upper",
                },
                {
                    "id": "lower",
                    "name": "下级会议",
                    "device": "codec-b",
                    "matrix": "matrix",
                    "matrix_input": "区级会议终端",
                    "wall_output": 6,
                    "source": "conf-lower",
                    "content_source": 1,
                },
            ],
            "centres": [
                {
                    "id": "huzhou",
                    "name": "湖州市指挥中心",
                    "level": "city",
                    "sip": "sip:huzhou@10.33.0.1",
                    "codec": "upper",
                },
                {
                    "id": "nanxun",
                    "name": "南浔区指挥中心",
                    "level": "district",
                    "parent": "huzhou",
                    "sip": "sip:nanxun@10.33.1.10",
                    "e164": "+8657212345678",
                    "codec": "lower",
                },
                {
                    "id": "lianshi",
                    "name": "练市镇指挥中心",
                    "level": "township",
                    "parent": "nanxun",
                    "sip": "sip:busy-lianshi@10.33.2.1",
                },
                {
                    "id": "shuanglin",
                    "name": "双林镇指挥中心",
                    "level": "township",
                    "parent": "nanxun",
                    "sip": "sip:drop-shuanglin@10.33.2.2",
                },
                {
                    "id": "hefu",
                    "name": "和孚镇指挥中心",
                    "level": "township",
                    "parent": "nanxun",
                    "sip": "sip:noanswer-hefu@10.33.2.3",
                },
                {
                    "id": "wuxing",
                    "name": "吴兴区指挥中心",
                    "level": "district",
                    "parent": "huzhou",
                    "h323": "h323:wuxing",
                    "sip": "sip:wuxing@10.33.1.20",
                    "prefer": ["h323", "sip"],
                },
            ],
        },
    }
    raw.update(over)
    return raw


@dataclass
class Rig:
    daemon: Daemon
    cisco: CiscoSimulator
    huawei: HuaweiSimulator
    tmp: Path
    task: asyncio.Task[int] | None = None
    events: list[BusEvent] = field(default_factory=list)

    @property
    def conf(self) -> ConferenceService:
        rt = self.daemon.runtime
        assert rt is not None
        svc = rt.services["conference"]
        assert isinstance(svc, ConferenceService)
        return svc

    @property
    def devices(self) -> DeviceService:
        rt = self.daemon.runtime
        assert rt is not None
        svc = rt.services["devices"]
        assert isinstance(svc, DeviceService)
        return svc

    @property
    def api_url(self) -> str:
        rt = self.daemon.runtime
        assert rt is not None
        return next(c for c in rt.components if isinstance(c, ApiServer)).url

    @property
    def admin_password(self) -> str:
        return (self.tmp / "admin-password").read_text().strip()

    def conference_events(self, type_: str | None = None) -> list[dict[str, Any]]:
        return [
            e.data
            for e in self.events
            if e.category == "conference" and (type_ is None or e.type == type_)
        ]

    def wall(self) -> Any:
        rt = self.daemon.runtime
        assert rt is not None
        return rt.walls.state("main")


async def start_rig(tmp_path: Path, **over: Any) -> Rig:
    cisco = CiscoSimulator(CiscoModel(user="admin", password=CISCO_PW, farend=fast()))
    await cisco.start()
    huawei = HuaweiSimulator(HuaweiModel(password=HUAWEI_PW, farend=fast()))
    await huawei.start()
    raw = raw_config(tmp_path, cisco.port or 0, huawei.port or 0, **over)
    daemon = Daemon(parse_config(raw))
    task = asyncio.create_task(daemon.run())
    rig = Rig(daemon, cisco, huawei, tmp_path, task)
    for _ in range(500):
        rt = daemon.runtime
        if rt is not None and rt.http.port and "conference" in rt.services:
            break
        await asyncio.sleep(0.02)
    rt = daemon.runtime
    assert rt is not None
    rt.bus.subscribe(rig.events.append)
    assert await rig.devices.wait_ready(15), {
        d.id: d.driver.status_detail for d in rig.devices.devices.values()
    }
    return rig


async def stop_rig(rig: Rig) -> None:
    rig.daemon.request_stop()
    assert rig.task is not None
    assert await asyncio.wait_for(rig.task, 20) == 0
    await rig.cisco.stop()
    await rig.huawei.stop()


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    r = await start_rig(tmp_path)
    try:
        yield r
    finally:
        await stop_rig(r)
