"""A real API server whose ``devices`` service runs simulated devices on real TCP ports."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from wallctl.accounts import Accounts, Role
from wallctl.api.config import ApiConfig
from wallctl.api.server import ApiServer
from wallctl.bus import BusEvent, EventBus
from wallctl.client import Client, connect
from wallctl.config import parse_config
from wallctl.daemon import build_walls, load_layouts
from wallctl.devices.service import DeviceService
from wallctl.store import Actor, Store
from wallctl.walls import WallService

PASSWORD = "correct horse battery"
ACCOUNTS = {"viewer1": Role.VIEWER, "op1": Role.OPERATOR, "admin1": Role.ADMIN}
WALL: dict[str, Any] = {
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
DEVICES: list[dict[str, Any]] = [
    {
        "id": "matrix",
        "name": "主矩阵",
        "protocol": "extron-sis",
        "simulate": True,
        "size": "8x8",
        "password": "extron",
        "inputs": {"3": "区级会议终端", "1": "市级会议终端"},
        "outputs": {"5": "大屏输入5"},
        "salvos": [
            {
                "name": "会商模式",
                "ties": [
                    {"input": "区级会议终端", "output": "大屏输入5"},
                    {"input": 1, "output": 6, "level": "video"},
                ],
            }
        ],
    },
    {
        "id": "matrix2",
        "name": "会议室矩阵",
        "protocol": "kramer-p3000",
        "simulate": True,
        "size": "8x8",
    },
    {"id": "panel", "name": "大屏面板", "protocol": "lg", "simulate": True},
]


def raw_config(devices: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"wall": WALL, "devices": DEVICES if devices is None else devices}


@dataclass
class Stack:
    service: DeviceService
    server: ApiServer
    bus: EventBus
    url: str
    store: Store
    events: list[BusEvent] = field(default_factory=list)

    async def client(self, account: str = "op1", **kw: Any) -> Client:
        kw.setdefault("answer_timeout", 15)
        return await connect(self.url, account=account, password=PASSWORD, **kw)


@pytest.fixture(scope="session")
def accounts_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dev-accounts") / "wallctl.db"
    store = Store(path, "normal")
    accounts = Accounts(store, iterations=4096)
    for name, role in ACCOUNTS.items():
        accounts.add_sync(name, PASSWORD, role, name.upper())
    store.close()
    return path


@pytest.fixture
async def stack(tmp_path: Path, accounts_db: Path) -> AsyncIterator[Stack]:
    import shutil

    db = tmp_path / "wallctl.db"
    await asyncio.to_thread(shutil.copyfile, accounts_db, db)
    cfg = parse_config(raw_config()).config
    store = Store(db, "normal")
    walls = WallService(store, build_walls(cfg), cfg.sources, load_layouts(cfg))
    await walls.load({})
    bus = EventBus()

    def publish(category: str, type_: str, data: dict[str, Any], actor: Actor) -> None:
        bus.publish(category, type_, data, actor=actor)

    service = DeviceService(list(cfg.devices), publish, store.audit)
    server = ApiServer(
        ApiConfig(port=0, login_delay_ms=50),
        walls,
        store,
        Accounts(store),
        http_port=8080,
        bus=bus,
        services={"devices": service},
    )
    st = Stack(service, server, bus, "", store)
    bus.subscribe(st.events.append)
    await service.start()
    await server.start()
    st.url = server.url
    assert await service.wait_ready(15), [d.driver.status_detail for d in service.devices.values()]
    try:
        yield st
    finally:
        await server.stop()
        await service.stop()
        walls.close()
        await asyncio.to_thread(store.close)
