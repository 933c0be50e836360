"""Playback of recorded segments over HTTP, with range requests.

``GET /recordings/<id>.mp4`` with ``Authorization: Bearer <API token>`` (or ``?token=``
for a player that cannot set headers) answers the segment file; aiohttp's FileResponse
serves ``Range:`` requests (206) so a player can seek.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from aiohttp import web

from wallctl.api.tokens import TOKEN_PATTERN, Tokens
from wallctl.recordings.index import SegmentIndex


class RecordingRoutes:
    def __init__(self, index: SegmentIndex, tokens: Tokens) -> None:
        self.index = index
        self.tokens = tokens

    def install(self, app: web.Application) -> None:
        app.router.add_get(r"/recordings/{id:\d{1,18}}.mp4", self.segment)

    async def segment(self, request: web.Request) -> web.StreamResponse:
        auth = request.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer":
            token = request.query.get("token", "")
        token = token.strip()
        if not token or re.match(TOKEN_PATTERN, token) is None:
            return web.Response(
                status=401,
                text="an API token is required (session.token on the API)\n",
                headers={"WWW-Authenticate": 'Bearer realm="wallctl"'},
            )
        if await self.tokens.owner(token) is None:
            return web.Response(status=401, text="unknown, expired or revoked API token\n")
        seg = self.index.get(int(request.match_info["id"]))
        if seg is None or not await asyncio.to_thread(Path(seg.path).is_file):
            return web.Response(status=404, text="no such recording\n")
        return web.FileResponse(seg.path, headers={"Content-Type": "video/mp4"})
