"""A real API server on a free port, over a real store and wall service in a temp dir."""

from __future__ import annotations

import asyncio
import shutil
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from wallctl.accounts import Accounts, Role
from wallctl.api.config import ApiConfig
from wallctl.api.server import ApiServer
from wallctl.bus import EventBus
from wallctl.client import Client, connect
from wallctl.config import parse_config
from wallctl.daemon import build_walls, load_layouts
from wallctl.store import Store
from wallctl.walls import WallService

from .schema_check import SchemaTap

PASSWORD = "correct horse battery"
ACCOUNTS = {
    "viewer1": Role.VIEWER,
    "op1": Role.OPERATOR,
    "op2": Role.OPERATOR,
    "admin1": Role.ADMIN,
}

RAW_CONFIG: dict[str, Any] = {
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
        "startup_layout": "2x2",
        "startup_sources": ["bars", "gradient", "checkers", "clock"],
    },
    "walls": {
        "side": {
            "id": "side",
            "min_diagonal_cm": 10,
            "tiles": {
                "rows": 1,
                "cols": 1,
                "width_mm": 1209.6,
                "height_mm": 680.4,
                "width_px": 1920,
                "height_px": 1080,
            },
        },
    },
    "sources": [
        {"id": s, "name": s, "kind": "test_pattern", "pattern": s}
        for s in ("bars", "gradient", "checkers", "clock")
    ]
    + [
        {
            "id": "cam1",
            "name": "摄像机",
            "kind": "rtsp",
            "url": "rtsp://user:secretpw@10.0.0.5/stream1",
        }
    ],
}


@dataclass
class Api:
    server: ApiServer
    walls: WallService
    store: Store
    url: str
    # One per client connection: checked against docs/api.schema.json when the API stops.
    taps: list[SchemaTap] = field(default_factory=list)

    async def client(
        self, account: str | None = "op1", password: str = PASSWORD, **kw: Any
    ) -> Client:
        kw.setdefault("validate", True)
        kw.setdefault("answer_timeout", 10)
        tap = SchemaTap()
        self.taps.append(tap)
        kw.setdefault("tap", tap)
        if account is None or "token" in kw:
            return await connect(self.url, **kw)
        return await connect(self.url, account=account, password=password, **kw)


def make_api_config(**over: Any) -> ApiConfig:
    base: dict[str, Any] = {
        "port": 0,
        "login_delay_ms": 50,
        "ping_interval": 5,
        "ping_timeout": 5,
        "identify_timeout": 2,
    }
    base.update(over)
    return ApiConfig(**base)


@pytest.fixture(scope="session")
def _accounts_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Accounts created once (PBKDF2 is slow on purpose); each test copies the db."""
    path = tmp_path_factory.mktemp("accounts") / "wallctl.db"
    store = Store(path, "normal")
    accounts = Accounts(store, iterations=4096)
    for name, role in ACCOUNTS.items():
        accounts.add_sync(name, PASSWORD, role, name.upper())
    store.close()
    return path


async def start_api(
    tmp_path: Path, accounts_db: Path, *, bus: EventBus | None = None, **over: Any
) -> Api:
    """A server over ``tmp_path/wallctl.db``: a copy of the accounts database unless one
    is there already (a restart)."""
    db = tmp_path / "wallctl.db"
    if not db.exists():
        await asyncio.to_thread(shutil.copyfile, accounts_db, db)
    cfg = parse_config(RAW_CONFIG).config
    store = Store(db, "normal")
    walls = WallService(store, build_walls(cfg), cfg.sources, load_layouts(cfg))
    startup: dict[str, tuple[str | None, list[str]]] = {
        "main": ("2x2", ["bars", "gradient", "checkers", "clock"])
    }
    await walls.load(startup)
    server = ApiServer(
        make_api_config(**over), walls, store, Accounts(store), http_port=8080, bus=bus
    )
    await server.start()
    return Api(server, walls, store, server.url)


async def stop_api(api: Api) -> None:
    await api.server.stop()
    api.walls.close()
    await asyncio.to_thread(api.store.close)
    for tap in api.taps:
        tap.verify()


@pytest.fixture
async def api(tmp_path: Path, _accounts_db: Path) -> AsyncIterator[Api]:
    a = await start_api(tmp_path, _accounts_db)
    try:
        yield a
    finally:
        await stop_api(a)


@pytest.fixture
def accounts_db(_accounts_db: Path) -> Path:
    return _accounts_db


async def raw_login(
    url: str,
    account: str = "op1",
    password: str = PASSWORD,
    subscriptions: list[str] | None = None,
    **kw: Any,
) -> Any:
    """A bare websockets connection, identified: for frames the client would never send."""
    import base64
    import json

    from websockets.asyncio.client import connect as ws_connect

    from wallctl.client import scram_proof

    ws = await ws_connect(url, compression=None, **kw)
    hello = json.loads(await ws.recv())
    assert hello["op"] == "hello"
    nonce = base64.urlsafe_b64encode(b"0123456789abcdefghij").decode().rstrip("=")
    await ws.send(
        json.dumps(
            {
                "op": "identify",
                "protocol_version": 1,
                "account": account,
                "client_nonce": nonce,
                "subscriptions": subscriptions or [],
            }
        )
    )
    ch = json.loads(await ws.recv())
    auth = (
        f"n={account},r={nonce},r={ch['nonce']},s={ch['salt']},i={ch['iterations']},"
        f"c=biws,r={ch['nonce']}"
    )
    proof, _ = scram_proof(password, ch["salt"], ch["iterations"], auth)
    await ws.send(json.dumps({"op": "identify_proof", "proof": proof}))
    ident = json.loads(await ws.recv())
    assert ident["op"] == "identified", ident
    return ws


async def recv_json(ws: Any, wait: float = 5) -> Any:
    import json

    async with asyncio.timeout(wait):
        return json.loads(await ws.recv())


async def slow_reader(api: Api, op: Client, account: str) -> Any:
    """``account`` identified on a socket with a 4 KiB receive buffer and subscribed to
    ``wall``, after ``op`` filled the wall with 60 labelled windows: each wall event is
    big, so the buffers fill quickly while it does not read."""
    opens = [
        {
            "id": i,
            "method": "window.open",
            "params": {"x": i * 50, "y": 0, "w": 100, "h": 100, "label": "窗口" * 8},
        }
        for i in range(60)
    ]
    assert (await op.batch(opens, "atomic"))["ok"]
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", api.server.port or 0))
    return await raw_login(api.url, account, subscriptions=["wall"], sock=sock, max_queue=1)
