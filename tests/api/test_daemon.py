"""The API as the daemon runs it: built by build_components, first admin bootstrapped."""

from __future__ import annotations

import asyncio
import urllib.request
from pathlib import Path

from wallctl.api.server import ApiServer
from wallctl.client import open_client
from wallctl.config import parse_config
from wallctl.daemon import Daemon

from .conftest import RAW_CONFIG


async def test_daemon_serves_the_api(tmp_path: Path) -> None:
    raw = {
        **RAW_CONFIG,
        "daemon": {"state_dir": str(tmp_path), "durability": "normal"},
        "http": {"port": 0},
        "api": {"port": 0},
    }
    daemon = Daemon(parse_config(raw))
    run = asyncio.create_task(daemon.run())
    try:
        for _ in range(200):
            if daemon.runtime is not None and daemon.runtime.http.port:
                break
            await asyncio.sleep(0.02)
        rt = daemon.runtime
        assert rt is not None
        api = next(c for c in rt.components if isinstance(c, ApiServer))
        password = (tmp_path / "admin-password").read_text().strip()
        async with open_client(
            api.url,
            account="admin",
            password=password,
            validate=True,
        ) as c:
            assert c.role == "admin"
            assert (await c.call("wall.get"))["state"]["revision"] == 1
            metrics = await asyncio.to_thread(
                lambda: urllib.request.urlopen(f"{rt.http.url}/metrics").read().decode()
            )
            assert "wallctl_api_clients 1.0" in metrics
            assert 'wallctl_api_requests_total{method="wall.get",result="ok"} 1.0' in metrics
    finally:
        daemon.request_stop()
        assert await asyncio.wait_for(run, 15) == 0
