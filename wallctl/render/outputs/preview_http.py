"""The preview's HTTP face on the daemon's listener.

- ``GET /preview``: a small page (no external resources) with each wall's live MJPEG.
- ``GET /preview/{wall}.mjpeg?width=W&fps=F``: multipart/x-mixed-replace JPEG stream of
  the whole wall canvas, scaled to W pixels wide.
- ``GET /preview/{wall}.jpg?width=W``: one JPEG of the wall now.
- ``GET /preview/source/{source}.jpg?width=W``: the newest picture of one source (a
  thumbnail; the source is kept decoding at that size for a while), or its slate.

Widths above the configured cap and rates above the cap are lowered to it; a value that
is not a number, not finite, given twice or out of range is answered 400 with the
reason. Other query parameters (a cache-busting ``t=``) are ignored.
"""

from __future__ import annotations

import asyncio
import html
import math
import time
from collections.abc import Callable

from aiohttp import web
from multidict import MultiMapping

from wallctl.logs import get_logger
from wallctl.render.outputs.preview import PreviewBusy, PreviewHub, snap_width

log = get_logger("wallctl.render.preview")

BOUNDARY = "wallctlframe"
MIN_WIDTH = 16
# A viewer that takes longer than this to accept one picture is dropped.
WRITE_TIMEOUT_S = 10.0
# With nothing changing on the wall, the last picture is sent again this often, so a
# dead viewer is noticed and a proxy does not time the stream out.
KEEPALIVE_S = 2.0


class BadQuery(ValueError):
    pass


def _one(query: MultiMapping[str], name: str) -> str | None:
    values = query.getall(name, [])
    if len(values) > 1:
        raise BadQuery(f"{name} is given {len(values)} times; give it once")
    return values[0] if values else None


def parse_width(query: MultiMapping[str], default: int, cap: int) -> int:
    raw = _one(query, "width")
    if raw is None:
        return snap_width(default, cap)
    if not raw.isascii() or not raw.isdigit() or len(raw) > 6:
        raise BadQuery(f"width must be a whole number of pixels, not {raw[:32]!r}")
    value = int(raw)
    if value < MIN_WIDTH:
        raise BadQuery(f"width must be at least {MIN_WIDTH} pixels, not {value}")
    return snap_width(value, cap)


def parse_fps(query: MultiMapping[str], default: float, cap: float) -> float:
    raw = _one(query, "fps")
    if raw is None:
        return min(default, cap)
    try:
        if len(raw) > 16:
            raise ValueError
        value = float(raw)
    except ValueError:
        raise BadQuery(f"fps must be a number of pictures per second, not {raw[:32]!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise BadQuery(f"fps must be a positive number, not {raw[:32]!r}")
    return min(value, cap)


def _bad(e: BadQuery) -> web.Response:
    return web.Response(status=400, text=f"{e}\n")


def _busy(e: PreviewBusy) -> web.Response:
    return web.Response(status=503, text=f"{e}\n", headers={"Retry-After": "5"})


NO_CACHE = {"Cache-Control": "no-cache, no-store", "X-Content-Type-Options": "nosniff"}


class PreviewRoutes:
    def __init__(self, hub: PreviewHub, wall_names: Callable[[], dict[str, str]]) -> None:
        self.hub = hub
        self.wall_names = wall_names

    def add_to(self, app: web.Application) -> None:
        app.router.add_get("/preview", self.page)
        app.router.add_get("/preview/source/{source}.jpg", self.source_jpg)
        app.router.add_get("/preview/{wall}.mjpeg", self.mjpeg)
        app.router.add_get("/preview/{wall}.jpg", self.wall_jpg)

    def _wall(self, request: web.Request) -> str:
        wall = request.match_info["wall"]
        if wall not in self.hub.walls:
            raise web.HTTPNotFound(text=f"no wall {wall[:64]!r} is composited here\n")
        return wall

    async def page(self, request: web.Request) -> web.Response:
        cfg = self.hub.config
        figures = []
        for wid, name in self.wall_names().items():
            if wid not in self.hub.walls:
                continue
            w, n = html.escape(wid, quote=True), html.escape(name)
            figures.append(
                f'<figure><img src="/preview/{w}.mjpeg?width={cfg.width}&amp;fps={cfg.fps:g}" '
                f'alt="{w}"><figcaption>{n} ({w})</figcaption></figure>'
            )
        body = (
            "<!doctype html><html lang=zh><head><meta charset=utf-8>"
            "<meta name=viewport content='width=device-width'>"
            "<title>wallctl preview</title><style>"
            "body{margin:0;background:#111;color:#ddd;font-family:sans-serif}"
            "figure{margin:12px}img{max-width:100%;display:block;background:#000}"
            "figcaption{padding:4px 0}</style></head><body>" + "".join(figures) + "</body></html>"
        )
        return web.Response(text=body, content_type="text/html", headers=NO_CACHE)

    async def wall_jpg(self, request: web.Request) -> web.Response:
        wall = self._wall(request)
        cfg = self.hub.config
        try:
            width = parse_width(request.query, cfg.width, cfg.max_width)
            jpeg = await self.hub.walls[wall].snapshot(width)
        except BadQuery as e:
            return _bad(e)
        except PreviewBusy as e:
            return _busy(e)
        except TimeoutError:
            return web.Response(status=503, text="the wall's compositor is not producing frames\n")
        return web.Response(body=jpeg, content_type="image/jpeg", headers=NO_CACHE)

    async def source_jpg(self, request: web.Request) -> web.Response:
        source = request.match_info["source"]
        if source not in self.hub.source_ids():
            raise web.HTTPNotFound(text=f"no source {source[:64]!r}\n")
        cfg = self.hub.config
        try:
            width = parse_width(request.query, cfg.thumb_width, cfg.max_width)
        except BadQuery as e:
            return _bad(e)
        jpeg, phase = await self.hub.thumbnail(source, width)
        headers = dict(NO_CACHE)
        headers["X-Source-Phase"] = phase
        return web.Response(body=jpeg, content_type="image/jpeg", headers=headers)

    async def mjpeg(self, request: web.Request) -> web.StreamResponse:
        wall = self._wall(request)
        cfg = self.hub.config
        try:
            width = parse_width(request.query, cfg.width, cfg.max_width)
            fps = parse_fps(request.query, cfg.fps, cfg.max_fps)
        except BadQuery as e:
            return _bad(e)
        wp = self.hub.walls[wall]
        try:
            self.hub.admit()
        except PreviewBusy as e:
            return _busy(e)
        try:
            try:
                st, token = wp.watch(width, fps)
            except PreviewBusy as e:
                return _busy(e)
            try:
                resp = web.StreamResponse(
                    headers={
                        **NO_CACHE,
                        "Content-Type": f"multipart/x-mixed-replace; boundary={BOUNDARY}",
                        "Pragma": "no-cache",
                    }
                )
                await resp.prepare(request)
                await self._pump(resp, st, fps)
                return resp
            finally:
                wp.unwatch(st, token)
        finally:
            self.hub.leave()

    async def _pump(self, resp: web.StreamResponse, st: object, fps: float) -> None:
        from wallctl.render.outputs.preview import SizeState

        assert isinstance(st, SizeState)
        sent_seq = -1
        last_sent = 0.0
        period = 1.0 / fps
        try:
            while True:
                if st.jpeg is None or st.seq == sent_seq:
                    try:
                        await asyncio.wait_for(asyncio.shield(st.next_picture()), KEEPALIVE_S)
                    except TimeoutError:
                        if st.jpeg is None:
                            continue
                        # Nothing new: send the same picture again (keep-alive).
                jpeg, seq = st.jpeg, st.seq
                assert jpeg is not None
                wait = last_sent + period - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                    jpeg, seq = st.jpeg or jpeg, st.seq
                part = (
                    (
                        f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                        f"Content-Length: {len(jpeg)}\r\n\r\n"
                    ).encode()
                    + jpeg
                    + b"\r\n"
                )
                await asyncio.wait_for(resp.write(part), WRITE_TIMEOUT_S)
                sent_seq = seq
                last_sent = time.monotonic()
        except (ConnectionResetError, ConnectionError, TimeoutError) as e:
            log.debug("preview viewer left", reason=type(e).__name__)
