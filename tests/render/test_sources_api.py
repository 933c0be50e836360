"""source.stats and source.state events through the real API server (WebSocket)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from wallctl.accounts import Accounts, Role
from wallctl.api.config import ApiConfig
from wallctl.api.server import ApiServer
from wallctl.bus import EventBus
from wallctl.client import ApiError, connect
from wallctl.config import SourceConfig, parse_config
from wallctl.daemon import build_walls, load_layouts
from wallctl.render.sourcehub import SourceHub
from wallctl.store import Store
from wallctl.walls import WallService

from .conftest import Media

PASSWORD = "correct horse battery"
RAW_CONFIG = {
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


async def test_source_stats_and_state_events(
    tmp_path: Path, media: Media, hub_factory: Callable[..., SourceHub]
) -> None:
    sources = [
        SourceConfig.model_validate(
            {"id": "f", "name": "文件", "kind": "file", "url": str(media.h264_640)}
        ),
        SourceConfig.model_validate(
            {
                "id": "cam",
                "name": "cam",
                "kind": "rtsp",
                "url": "rtsp://127.0.0.1:1/x",
                "username": "admin",
                "password": "topsecret",
            }
        ),
    ]
    bus = EventBus()
    hub = hub_factory(sources, bus=bus)
    await hub.start()
    cfg = parse_config(RAW_CONFIG).config
    store = Store(tmp_path / "wallctl.db", "normal")
    await asyncio.to_thread(Accounts(store, iterations=4096).add_sync, "v", PASSWORD, Role.VIEWER)
    walls = WallService(store, build_walls(cfg), cfg.sources, load_layouts(cfg))
    await walls.load({})
    server = ApiServer(
        ApiConfig(port=0, login_delay_ms=50, identify_timeout=2),
        walls,
        store,
        Accounts(store),
        bus=bus,
        services={"sources": hub},
    )
    await server.start()
    try:
        client = await connect(
            server.url,
            account="v",
            password=PASSWORD,
            subscriptions=["source"],
            validate=True,
            answer_timeout=10,
        )
        hub.demand("wall:main", {"f": (640, 360), "cam": (640, 360)})
        seen: dict[str, list[str]] = {"f": [], "cam": []}
        async with asyncio.timeout(15):
            while "live" not in seen["f"] or "failed" not in seen["cam"]:
                ev = await client.next_event("source.state")
                seen[ev["data"]["source"]].append(ev["data"]["phase"])
        assert seen["f"][0] == "connecting"
        result = await client.call("source.stats", {"source": "f"})
        (row,) = result["sources"]
        assert row["phase"] == "live" and row["codec"] == "h264"
        assert (row["width"], row["height"]) == (640, 360)
        assert row["holders"] == ["wall:main"] and row["name"] == "文件"
        every = await client.call("source.stats")
        assert {r["source"] for r in every["sources"]} == {"f", "cam"}
        cam = next(r for r in every["sources"] if r["source"] == "cam")
        assert cam["phase"] == "failed" and "connection refused" in cam["error"]
        assert "topsecret" not in repr(every)
        with pytest.raises(ApiError) as e:
            await client.call("source.stats", {"source": "nope"})
        assert e.value.code == "not_found" and e.value.field == "params.source"
        with pytest.raises(ApiError) as e:
            await client.call("source.stats", {"source": 5})
        assert e.value.code == "invalid_field" and e.value.field == "params.source"
        await client.close()
    finally:
        await server.stop()
        walls.close()
        await asyncio.to_thread(store.close)
