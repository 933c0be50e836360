"""Serves the commander's console: static files at ``/`` and where to find the API.

The page is plain HTML, CSS and JavaScript modules in ``wallctl/console/static/`` (no
build step, no CDN, no external font: centres run in closed networks). The files are
read once at start-up and kept in memory with a gzip copy, so a page load costs no disk
I/O and no compression on the loop. ``/console/config.json`` tells the page where the
WebSocket API listens and which event categories it can subscribe to; everything else
the page does goes through the public WebSocket API and the preview URLs.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import mimetypes
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from wallctl import __version__
from wallctl.component import Component, Health, Status
from wallctl.logs import get_logger

if TYPE_CHECKING:
    from wallctl.daemon import Runtime

log = get_logger("wallctl.console")

STATIC_DIR = Path(__file__).resolve().parent / "static"
# Only these kinds of file are served; anything else dropped into the folder is not.
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json",
}
COMPRESSIBLE = {".html", ".js", ".css", ".svg", ".json"}
_HOST = re.compile(r"[A-Za-z0-9.\-]{1,253}|[0-9A-Fa-f:.]{2,45}")
# Methods whose params the page reads from /console/config.json.
OPTIONAL_PREFIXES = ("camera.",)
# A console that grew past this would break the page-weight promise (500 KB compressed).
MAX_FILE_BYTES = 2 * 1024 * 1024


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    gz: bytes | None
    content_type: str
    etag: str


def static_root() -> Path:
    """The static folder: in the source tree, else inside the installed package."""
    if STATIC_DIR.is_dir():
        return STATIC_DIR
    return Path(str(resources.files("wallctl.console") / "static"))


def load_static(root: Path) -> dict[str, StaticFile]:
    """Every servable file under ``root`` by its URL path (``index.html``, ``js/app.js``)."""
    files: dict[str, StaticFile] = {}
    for path in sorted(root.rglob("*")):
        suffix = path.suffix.lower()
        if not path.is_file() or suffix not in TYPES or path.name.startswith("."):
            continue
        body = path.read_bytes()
        if len(body) > MAX_FILE_BYTES:
            log.warning("console file too large, not served", file=str(path))
            continue
        gz = gzip.compress(body, 9, mtime=0) if suffix in COMPRESSIBLE else None
        if gz is not None and len(gz) >= len(body):
            gz = None
        etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
        rel = path.relative_to(root).as_posix()
        files[rel] = StaticFile(body, gz, TYPES.get(suffix) or _guess(path), etag)
    return files


def _guess(path: Path) -> str:
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def security_headers(api_origin: str) -> dict[str, str]:
    # The page talks to the API on its own port (another origin for the browser), so
    # connect-src names it; nothing else is loaded from anywhere but the daemon.
    csp = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        f"connect-src 'self' {api_origin}; font-src 'self'; object-src 'none'; "
        "base-uri 'none'; frame-ancestors 'none'; form-action 'none'"
    )
    return {
        "Content-Security-Policy": csp,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
    }


class ConsoleWeb(Component):
    """The console's routes on the daemon's HTTP listener."""

    name = "console"

    def __init__(self, rt: Runtime, root: Path | None = None) -> None:
        self.rt = rt
        self.root = root or static_root()
        self.files: dict[str, StaticFile] = {}
        app = rt.http.app
        app.router.add_get("/", self._index)
        app.router.add_get("/console/config.json", self._config)
        app.router.add_get("/console/{path:.+}", self._static)

    async def start(self) -> None:
        self.files = await asyncio.to_thread(load_static, self.root)
        if "index.html" not in self.files:
            log.error("console page missing", folder=str(self.root))
        else:
            log.info("console ready", files=len(self.files), bytes=self.weight()[1])

    def health(self) -> Health:
        if "index.html" in self.files:
            return Health(Status.OK, f"{len(self.files)} files")
        return Health(Status.DEGRADED, f"no console page in {self.root}")

    def weight(self) -> tuple[int, int]:
        """(bytes, bytes gzip-compressed) of every file the page loads."""
        raw = sum(len(f.body) for f in self.files.values())
        packed = sum(len(f.gz or f.body) for f in self.files.values())
        return raw, packed

    # --- the API's address, as the browser must reach it ----------------------------

    def api_info(self, request: web.Request) -> dict[str, Any]:
        from wallctl.api.protocol import CATEGORIES
        from wallctl.api.server import ApiServer

        cfg = self.rt.config.api
        port: int | None = cfg.port
        for comp in self.rt.components:
            if isinstance(comp, ApiServer):
                port = comp.port or cfg.port
        return {
            "scheme": "wss" if cfg.tls_cert is not None else "ws",
            "port": port,
            "path": cfg.path,
            "categories": sorted(CATEGORIES),
        }

    def _api_origin(self, request: web.Request) -> str:
        info = self.api_info(request)
        try:
            host = request.url.host or ""
        except ValueError:
            host = ""
        # The Host header is the client's to choose: only a plain name or address goes
        # into the policy, so no header can add directives to it.
        if not _HOST.fullmatch(host):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"{info['scheme']}://{host}:{info['port']}"

    # --- handlers ----------------------------------------------------------------------

    async def _config(self, request: web.Request) -> web.Response:
        info = self.api_info(request)
        body = {
            "version": __version__,
            "site": self.rt.config.daemon.name,
            "api": info,
            # The page asks for the preview only when the render pipeline serves it.
            "preview": any(
                r.resource is not None and r.resource.canonical.startswith("/preview")
                for r in self.rt.http.app.router.routes()
            ),
            "methods": optional_methods(),
        }
        return web.Response(
            text=json.dumps(body, ensure_ascii=False),
            content_type="application/json",
            headers={"Cache-Control": "no-store"},
        )

    async def _index(self, request: web.Request) -> web.StreamResponse:
        return self._serve(request, "index.html", self._api_origin(request))

    async def _static(self, request: web.Request) -> web.StreamResponse:
        return self._serve(request, request.match_info["path"], None)

    def _serve(self, request: web.Request, rel: str, api_origin: str | None) -> web.Response:
        f = self.files.get(rel)
        if f is None:
            raise web.HTTPNotFound(text="not found\n")
        headers = {
            "ETag": f.etag,
            # index.html must be revalidated so a new daemon version is picked up; the
            # modules revalidate too (cheap 304s) because their names carry no hash.
            "Cache-Control": "no-cache",
            "Vary": "Accept-Encoding",
        }
        if api_origin is not None:
            headers |= security_headers(api_origin)
        if request.headers.get("If-None-Match") == f.etag:
            return web.Response(status=304, headers=headers)
        body = f.body
        if f.gz is not None and "gzip" in request.headers.get("Accept-Encoding", ""):
            body = f.gz
            headers["Content-Encoding"] = "gzip"
        headers["Content-Type"] = f.content_type
        return web.Response(body=body, headers=headers)


def optional_methods() -> dict[str, Any]:
    """Params schemas of the capabilities the page adapts to (PTZ), when the daemon has
    them: the same JSON Schema the published spec holds, so the page reads parameter
    names instead of assuming them."""
    from wallctl.api import methods

    methods.load_extensions()
    return {
        name: {"role": m.role, "params": m.params.model_json_schema()}
        for name, m in sorted(methods.METHODS.items())
        if name.startswith(OPTIONAL_PREFIXES)
    }


def console_component(rt: Runtime) -> ConsoleWeb:
    return ConsoleWeb(rt)
