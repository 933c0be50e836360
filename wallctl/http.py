"""The HTTP listener: /healthz, /metrics, and the routes other components add.

One aiohttp application on the configured address; the preview, WHIP/WHEP endpoints,
recordings and the commander's web page register their routes on ``app`` before start.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from wallctl.component import Component, Health, Status
from wallctl.config import Config, HttpConfig
from wallctl.logs import get_logger

log = get_logger("wallctl.http")

HealthReport = Callable[[], tuple[bool, dict[str, Any]]]


class HttpServer(Component):
    name = "http"

    def __init__(
        self, config: HttpConfig, health: HealthReport, registry: CollectorRegistry
    ) -> None:
        self.config = config
        self._health = health
        self._registry = registry
        self.app = web.Application(client_max_size=1024 * 1024)
        self.app.router.add_get("/healthz", self._healthz)
        self.app.router.add_get("/metrics", self._metrics)
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port, reuse_address=True)
        await site.start()
        server = site._server  # aiohttp exposes the bound port only here
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else self.config.port
        log.info("http listening", host=self.config.host, port=self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def health(self) -> Health:
        return Health(Status.OK if self._runner is not None else Status.STOPPED)

    def reload(self, config: Config) -> list[str]:
        changed = []
        if config.http.host != self.config.host:
            changed.append("http.host")
        if config.http.port != self.config.port:
            changed.append("http.port")
        return changed

    @property
    def url(self) -> str:
        host = self.config.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    async def _healthz(self, request: web.Request) -> web.Response:
        ok, report = self._health()
        return web.Response(
            text=json.dumps(report, ensure_ascii=False, indent=1),
            status=200 if ok else 503,
            content_type="application/json",
        )

    async def _metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self._registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
