"""Commands over MQTT: the same method table, roles, audit and answers as the WebSocket API.

MQTT does not tell a subscriber who published a message, so the identity of a command
is the account its topic names (``<prefix>/<site>/cmd/<account>``) and the broker's ACL
is what guarantees that only that account can publish there. The account must also be
an enabled wallctl account: its role here is the one the accounts table gives it, read
afresh for every command (an account disabled or re-roled from the CLI takes effect at
its next command, not at the next restart).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from wallctl.api import methods
from wallctl.api.methods import ApiContext
from wallctl.api.protocol import Batch, DecodeError, Request, _peek_id
from wallctl.api.server import TokenBucket
from wallctl.errors import InternalError, InvalidField, NotPermitted, RateLimited, WallctlError
from wallctl.logs import get_logger
from wallctl.mqtt.codec import decode_command, error_response, response
from wallctl.mqtt.topics import Topics, check_account_level
from wallctl.store import Actor, Store

log = get_logger("wallctl.mqtt")

# Per-account state kept for at most this many accounts (a broker ACL normally limits
# who can publish commands at all; this bounds memory if it does not).
MAX_ACCOUNTS = 10000


class AccountLookup(Protocol):
    def role_of(self, account: str) -> str | None: ...


@dataclass
class Reply:
    topic: str
    body: dict[str, Any]


@dataclass
class CommandCounters:
    by_result: dict[tuple[str, str], int] = field(default_factory=dict)
    unanswerable: int = 0

    def count(self, method: str, result: str) -> None:
        key = (method if method in methods.METHODS else "unknown", result)
        self.by_result[key] = self.by_result.get(key, 0) + 1


class CommandHandler:
    def __init__(
        self,
        ctx: ApiContext,
        store: Store,
        topics: Topics,
        accounts: AccountLookup,
        *,
        max_bytes: int,
        rate: Callable[[], tuple[float, int]],
    ) -> None:
        self.ctx = ctx
        self.store = store
        self.topics = topics
        self.accounts = accounts
        self.max_bytes = max_bytes
        self.rate = rate
        self.buckets: dict[str, TokenBucket] = {}
        self.counters = CommandCounters()

    async def handle(self, topic: str, payload: bytes, response_topic: str | None) -> Reply | None:
        """Run one command; the answer and where it goes (None: nowhere to answer)."""
        level = self.topics.command_account(topic)
        try:
            account = check_account_level(level or "")
        except WallctlError:
            # No reply topic can be built for a name that is not an account: drop it.
            self.counters.unanswerable += 1
            log.warning("mqtt command on a topic naming no account", topic=topic[:200])
            return None
        try:
            reply_topic = self.topics.check_response_topic(account, response_topic)
        except InvalidField as e:
            self.counters.count("unknown", e.code)
            return Reply(self.topics.reply(account), error_response(_peek(payload), e))
        try:
            msg = decode_command(payload, self.max_bytes)
        except DecodeError as e:
            self.counters.count("unknown", e.error.code)
            return Reply(reply_topic, error_response(e.request_id, e.error))
        role = self.accounts.role_of(account)
        actor = Actor(account, via="mqtt", role=role)
        name = msg.method if isinstance(msg, Request) else "batch"
        if role is None:
            err = NotPermitted(f"{account} is not an enabled wallctl account", field="topic")
            self.counters.count(name, err.code)
            await self._audit_denied(actor, name)
            return Reply(reply_topic, self._error(msg, err))
        limited = self._limited(account, 1 if isinstance(msg, Request) else len(msg.requests))
        if limited is not None:
            self.counters.count(name, limited.code)
            return Reply(reply_topic, self._error(msg, limited))
        if isinstance(msg, Request):
            body = await self._request(actor, role, msg)
        else:
            body = await self._batch(actor, role, msg)
        return Reply(reply_topic, body)

    # --- the two kinds of command ----------------------------------------------------

    async def _request(self, actor: Actor, role: str, msg: Request) -> dict[str, Any]:
        try:
            result = await methods.call(
                self.ctx, actor, role, msg.method, msg.params, msg.if_revision
            )
        except WallctlError as e:
            self.counters.count(msg.method, e.code)
            if e.code == "not_permitted":
                await self._audit_denied(actor, msg.method)
            return error_response(msg.id, e)
        except Exception:
            log.exception("mqtt command failed", method=msg.method, account=actor.identity)
            self.counters.count(msg.method, "internal")
            return error_response(msg.id, InternalError("internal error; see the daemon's log"))
        self.counters.count(msg.method, "ok")
        return response(msg.id, result)

    async def _batch(self, actor: Actor, role: str, msg: Batch) -> dict[str, Any]:
        base: dict[str, Any] = {"op": "batch_response", "id": msg.id, "mode": msg.mode}
        try:
            if msg.mode == "atomic":
                out = await methods.run_atomic(self.ctx, actor, role, msg.requests, msg.if_revision)
            elif msg.if_revision is not None:
                return self._error(
                    msg,
                    InvalidField(
                        "an ordered batch takes if_revision on each request", field="if_revision"
                    ),
                )
            else:
                out = await methods.run_ordered(self.ctx, actor, role, msg.requests)
        except Exception:
            log.exception("mqtt batch failed", account=actor.identity)
            return self._error(msg, InternalError("internal error; see the daemon's log"))
        for r in out.results:
            method = next(x.method for x in msg.requests if x.id == r["id"])
            self.counters.count(method, "ok" if r["ok"] else r["error"]["code"])
            if not r["ok"] and r["error"]["code"] == "not_permitted":
                await self._audit_denied(actor, method)
        reply: dict[str, Any] = {**base, "ok": out.ok, "results": out.results}
        if out.error is not None:
            reply["error"] = out.error.to_dict()
        if out.revision is not None:
            reply["revision"] = out.revision
        return reply

    # --- helpers ---------------------------------------------------------------------

    @staticmethod
    def _error(msg: Request | Batch, err: WallctlError) -> dict[str, Any]:
        if isinstance(msg, Request):
            return error_response(msg.id, err)
        return {
            "op": "batch_response",
            "id": msg.id,
            "mode": msg.mode,
            "ok": False,
            "error": err.to_dict(),
            "results": [{"id": r.id, "ok": False, "error": err.to_dict()} for r in msg.requests],
        }

    def _limited(self, account: str, n: int) -> RateLimited | None:
        rate, burst = self.rate()
        bucket = self.buckets.get(account)
        if bucket is None:
            if len(self.buckets) >= MAX_ACCOUNTS:
                self.buckets.clear()
            bucket = self.buckets[account] = TokenBucket(rate, burst)
        bucket.rate, bucket.burst = rate, float(burst)
        if bucket.take(n):
            return None
        return RateLimited(f"over {rate:g} commands/s (burst {burst}) for {account}; slow down")

    async def _audit_denied(self, actor: Actor, method: str) -> None:
        with contextlib.suppress(Exception):
            await self.store.audit(actor, method, result="denied")


def _peek(payload: bytes) -> str | int | None:
    """The request id, when an unusable message still shows one (for the answer)."""
    import json

    if len(payload) > 65536:
        return None
    try:
        return _peek_id(json.loads(payload))
    except (ValueError, RecursionError):
        return None
