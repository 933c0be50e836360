"""WHIP (RFC 9725) and WHEP endpoints on the daemon's HTTP listener.

- ``POST /whip/<terminal>`` with ``Authorization: Bearer <terminal token>`` and an SDP
  offer (``application/sdp``) -> ``201`` with the answer and ``Location:
  /whip/<terminal>/<session>``; ``DELETE`` on that location ends the publication.
- ``POST /whep/mobile/<terminal>`` with ``Authorization: Bearer <API token>`` (any role:
  ``session.token`` on the API) -> ``201`` with the answer and ``Location:
  /whep/sessions/<session>``; ``DELETE`` there ends the view.
- ``GET /terminals/<terminal>/feed.h264``: the live video as an Annex-B byte stream from
  its next keyframe, for the wall's decoder; answered to loopback peers only.

Errors are plain text with the reason: 400 malformed SDP, 401 missing or wrong token,
404 unknown terminal/source/session, 406 no codec the relay can take, 415 not
application/sdp, 503 a configured limit reached.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiohttp import web

from wallctl.accounts import Accounts, Role, role_allows
from wallctl.api.tokens import TOKEN_PATTERN, Tokens
from wallctl.logs import get_logger
from wallctl.terminals import sdp
from wallctl.terminals.h264 import is_keyframe
from wallctl.terminals.identities import TERMINAL_ID, Terminals
from wallctl.terminals.relay import Relay, RelayError
from wallctl.terminals.talkback import Talkback

log = get_logger("wallctl.terminals.http")

SDP_TYPE = "application/sdp"
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type",
    "Access-Control-Expose-Headers": "Location",
}


def _text(status: int, message: str, **headers: str) -> web.Response:
    return web.Response(status=status, text=message + "\n", headers={**CORS, **headers})


def _bearer(request: web.Request) -> str | None:
    value = request.headers.get("Authorization", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _unauthorized(message: str) -> web.Response:
    return _text(401, message, **{"WWW-Authenticate": 'Bearer realm="wallctl"'})


_S = TypeVar("_S")


async def _negotiate(
    exchange: Awaitable[tuple[_S, str]], headers: Callable[[_S], dict[str, str]]
) -> web.Response:
    """One offer/answer exchange: 201 with the answer and the new session's Location, or
    the refusal a WHIP/WHEP client can act on."""
    try:
        session, answer = await exchange
    except sdp.OfferError as e:
        return _text(400, f"malformed SDP: {e}")
    except sdp.UnsupportedOffer as e:
        return _text(406, f"no codec wallctl can take: {e}")
    except RelayError as e:
        return _text(e.status, e.message)
    return web.Response(
        status=201, text=answer, content_type=SDP_TYPE, headers={**CORS, **headers(session)}
    )


async def _offer(request: web.Request) -> str | web.Response:
    ctype = request.content_type
    if ctype != SDP_TYPE:
        return _text(415, f"the offer must be sent as {SDP_TYPE}, not {ctype or 'nothing'}")
    if request.content_length is not None and request.content_length > sdp.MAX_SDP_BYTES:
        return _text(400, f"malformed SDP: larger than {sdp.MAX_SDP_BYTES} bytes")
    raw = await request.content.read(sdp.MAX_SDP_BYTES + 1)
    if len(raw) > sdp.MAX_SDP_BYTES:
        return _text(400, f"malformed SDP: larger than {sdp.MAX_SDP_BYTES} bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return _text(400, "malformed SDP: not UTF-8 text")


def _is_loopback(remote: str | None) -> bool:
    try:
        return remote is not None and ipaddress.ip_address(remote).is_loopback
    except ValueError:
        return False


def _from_this_host(request: web.Request) -> bool:
    """A loopback peer, or one whose address is the very address it reached us at (the
    daemon's own decoder when the listener is bound to one interface's address only)."""
    if _is_loopback(request.remote):
        return True
    sock = request.transport.get_extra_info("sockname") if request.transport else None
    return isinstance(sock, tuple) and bool(sock) and request.remote == sock[0]


class TerminalRoutes:
    def __init__(
        self,
        relay: Relay,
        terminals: Terminals,
        tokens: Tokens,
        talkback: Talkback | None = None,
        accounts: Accounts | None = None,
    ) -> None:
        self.relay = relay
        self.terminals = terminals
        self.tokens = tokens
        self.talkback = talkback
        self.accounts = accounts

    def install(self, app: web.Application) -> None:
        r = app.router
        r.add_post("/whip/{terminal}", self.whip_post)
        r.add_route("OPTIONS", "/whip/{terminal}", self.options)
        r.add_delete("/whip/{terminal}/{session}", self.whip_delete)
        r.add_route("PATCH", "/whip/{terminal}/{session}", self.patch)
        r.add_post("/whep/mobile/{terminal}", self.whep_post)
        r.add_route("OPTIONS", "/whep/mobile/{terminal}", self.options)
        r.add_delete("/whep/sessions/{session}", self.whep_delete)
        r.add_route("PATCH", "/whep/sessions/{session}", self.patch)
        r.add_get("/terminals/{terminal}/feed.h264", self.feed)
        app.on_shutdown.append(self._end_feeds)
        if self.talkback is not None:
            r.add_post("/talkback/{terminal}", self.talk_post)
            r.add_route("OPTIONS", "/talkback/{terminal}", self.options)
            r.add_post("/whep/talkback/{terminal}", self.listen_post)
            r.add_delete("/talkback/sessions/{session}", self.talk_delete)

    async def options(self, request: web.Request) -> web.Response:
        return web.Response(status=204, headers={**CORS, "Accept-Post": SDP_TYPE})

    async def patch(self, request: web.Request) -> web.Response:
        # Trickle ICE is optional in RFC 9725: the answer carries every candidate.
        return _text(
            405, "trickle ICE is not supported: the answer holds every candidate", Allow="DELETE"
        )

    # --- WHIP ----------------------------------------------------------------------------

    async def whip_post(self, request: web.Request) -> web.StreamResponse:
        terminal = request.match_info["terminal"]
        token = _bearer(request)
        if token is None:
            return _unauthorized("a bearer token is required (Authorization: Bearer ...)")
        info = self.terminals.verify(terminal, token)
        if info is None:
            log.warning(
                "whip refused: wrong token", terminal=terminal[:64], peer=request.remote or ""
            )
            return _unauthorized("unknown terminal or wrong token")
        offer = await _offer(request)
        if isinstance(offer, web.Response):
            return offer
        return await _negotiate(
            self.relay.publish(info, offer),
            lambda pub: {"Location": f"/whip/{info.id}/{pub.id}", "ETag": f'"{pub.id}"'},
        )

    async def whip_delete(self, request: web.Request) -> web.Response:
        terminal = request.match_info["terminal"]
        token = _bearer(request)
        if token is None:
            return _unauthorized("a bearer token is required (Authorization: Bearer ...)")
        if self.terminals.verify(terminal, token) is None:
            return _unauthorized("unknown terminal or wrong token")
        if not await self.relay.end_publish(terminal, request.match_info["session"]):
            return _text(404, "no such publishing session")
        return web.Response(status=200, headers=CORS)

    # --- WHEP ----------------------------------------------------------------------------

    async def _viewer_ok(self, request: web.Request) -> web.Response | None:
        token = _bearer(request)
        if token is None:
            return _unauthorized("an API token is required (session.token on the API)")
        if re.match(TOKEN_PATTERN, token) is None or await self.tokens.owner(token) is None:
            return _unauthorized("unknown, expired or revoked API token")
        return None

    async def whep_post(self, request: web.Request) -> web.StreamResponse:
        refused = await self._viewer_ok(request)
        if refused is not None:
            return refused
        offer = await _offer(request)
        if isinstance(offer, web.Response):
            return offer
        source = f"mobile/{request.match_info['terminal']}"
        return await _negotiate(
            self.relay.view(source, offer),
            lambda viewer: {"Location": f"/whep/sessions/{viewer.id}"},
        )

    async def whep_delete(self, request: web.Request) -> web.Response:
        refused = await self._viewer_ok(request)
        if refused is not None:
            return refused
        if not await self.relay.end_view(request.match_info["session"]):
            return _text(404, "no such viewing session")
        return web.Response(status=200, headers=CORS)

    # --- the wall's decoder ------------------------------------------------------------

    async def feed(self, request: web.Request) -> web.StreamResponse:
        if not _from_this_host(request):
            return _text(403, "the raw feed is served to this host only")
        terminal = request.match_info["terminal"]
        if TERMINAL_ID.match(terminal) is None:
            return _text(404, "no such terminal")
        q = await self.relay.open_feed(terminal)
        if q is None:
            return _text(404, f"terminal {terminal!r} is not publishing")
        resp = web.StreamResponse(
            headers={"Content-Type": "video/h264", "Cache-Control": "no-store"}
        )
        try:
            await resp.prepare(request)
            started = False
            while True:
                data = await q.get()
                if data is None:
                    break
                if not started:
                    if not is_keyframe(data):
                        continue
                    started = True
                await resp.write(data)
        except (ConnectionResetError, ConnectionError):
            pass
        finally:
            self.relay.close_feed(terminal, q)
        return resp

    async def _end_feeds(self, app: web.Application) -> None:
        """The listener stops: end the wall's feeds, which would otherwise hold it until
        their terminals stop publishing (aiohttp waits for running handlers)."""
        for pub in list(self.relay.publications.values()):
            for q in pub.feeds:
                q.put_nowait(None)

    # --- talkback ----------------------------------------------------------------------

    async def talk_post(self, request: web.Request) -> web.StreamResponse:
        """A commander speaks to a terminal: an operator's (or admin's) API token."""
        assert self.talkback is not None and self.accounts is not None
        token = _bearer(request)
        if token is None:
            return _unauthorized("an API token is required (session.token on the API)")
        owner = await self.tokens.owner(token) if re.match(TOKEN_PATTERN, token) else None
        if owner is None:
            return _unauthorized("unknown, expired or revoked API token")
        who = await asyncio.to_thread(self.accounts.current, owner.account)
        if who is None or not role_allows(who.role, Role.OPERATOR):
            return _text(403, "talking to a terminal needs the operator role")
        terminal = request.match_info["terminal"]
        if TERMINAL_ID.match(terminal) is None or self.terminals.get(terminal) is None:
            return _text(404, f"no terminal {terminal[:64]!r}")
        offer = await _offer(request)
        if isinstance(offer, web.Response):
            return offer
        return await _negotiate(
            self.talkback.speak(terminal, who.account, offer),
            lambda leg: {"Location": f"/talkback/sessions/{leg.id}"},
        )

    async def listen_post(self, request: web.Request) -> web.StreamResponse:
        """The terminal listens for commanders: its own bearer token."""
        assert self.talkback is not None
        terminal = request.match_info["terminal"]
        token = _bearer(request)
        if token is None:
            return _unauthorized("a bearer token is required (Authorization: Bearer ...)")
        if self.terminals.verify(terminal, token) is None:
            return _unauthorized("unknown terminal or wrong token")
        offer = await _offer(request)
        if isinstance(offer, web.Response):
            return offer
        return await _negotiate(
            self.talkback.listen(terminal, offer),
            lambda leg: {"Location": f"/talkback/sessions/{leg.id}"},
        )

    async def talk_delete(self, request: web.Request) -> web.Response:
        """Ends a talkback leg: the session id from the Location, with a valid token of the
        commander (API) or of the terminal the leg belongs to."""
        assert self.talkback is not None
        leg = self.talkback.legs.get(request.match_info["session"])
        token = _bearer(request)
        if token is None:
            return _unauthorized("a bearer token is required (Authorization: Bearer ...)")
        allowed = False
        if re.match(TOKEN_PATTERN, token) and await self.tokens.owner(token) is not None:
            allowed = True
        elif leg is not None and self.terminals.verify(leg.terminal, token) is not None:
            allowed = True
        if not allowed:
            return _unauthorized("unknown token")
        if leg is None or not await self.talkback.end(leg.id):
            return _text(404, "no such talkback session")
        return web.Response(status=200, headers=CORS)
