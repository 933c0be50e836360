"""Events to API clients: categories, fan-out, bounded per-connection queues, resync.

An event is serialised once, whatever the number of subscribers; each connection only
prefixes its own sequence number. Every connection has a bounded queue: offering to it
never blocks and never grows past the bound. A connection that falls that far behind
loses what is queued and gets, when it reads again, a ``resync`` event and a fresh
snapshot: a slow touch panel costs a little memory, never the wall's progress.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from wallctl.api.protocol import encode
from wallctl.store import Actor
from wallctl.walls import WallChanged, WallService
from wallctl.wallstate import state_data


def origin_of(actor: Actor) -> dict[str, Any]:
    return {"identity": actor.identity, "session": actor.session, "via": actor.via}


def event_tail(
    type_: str,
    category: str | None,
    data: dict[str, Any],
    *,
    wall: str | None = None,
    revision: int | None = None,
    origin: dict[str, Any] | None = None,
) -> bytes:
    """The event as UTF-8 JSON without its opening brace and seq: serialised once, the
    same bytes for every subscriber."""
    body = {
        "type": type_,
        "category": category,
        "wall": wall,
        "revision": revision,
        "origin": origin,
        "data": data,
    }
    try:
        return orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS)[1:]
    except TypeError:
        # What orjson refuses (integers over 64 bits): encode's fallback writes it.
        return encode(body).encode()[1:]


def frame(seq: int, tail: bytes) -> bytes:
    """One connection's event: its own sequence number, then the shared tail."""
    return b'{"op":"event","seq":%d,%b' % (seq, tail)


class Subscriber:
    """One connection's view of the event stream."""

    def __init__(self, categories: Iterable[str], bound: int) -> None:
        self.categories = set(categories)
        self.bound = bound
        self.queue: deque[bytes] = deque()
        self.seq = 0
        # Set when events were dropped, or a snapshot is due (subscribe, reidentify).
        self.resync = False
        self.snapshot_due = False
        self.dropped = 0
        self.wake = asyncio.Event()
        # True while the connection's writer task is between taking an event and
        # having handed it to the socket: nothing may overtake it then.
        self.sending = False
        # Writes a tail now if the socket takes it without waiting; set by the session.
        self.direct: Callable[[bytes], bool] | None = None

    def offer(self, category: str, tail: bytes) -> bool:
        """Queue an event; False when it overflowed (the queue is dropped for a resync)."""
        if category not in self.categories:
            return True
        if (
            self.direct is not None
            and not self.queue
            and not self.sending
            and not self.resync
            and not self.snapshot_due
            and self.direct(tail)
        ):
            # The common case, a client keeping up: no queue, no task switch.
            return True
        if len(self.queue) >= self.bound:
            self.dropped += len(self.queue) + 1
            self.queue.clear()
            self.resync = True
            self.wake.set()
            return False
        self.queue.append(tail)
        self.wake.set()
        return True

    def request_snapshot(self) -> None:
        self.queue.clear()
        self.snapshot_due = True
        self.wake.set()

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq


class EventHub:
    def __init__(self, walls: WallService) -> None:
        self.walls = walls
        self.subscribers: set[Subscriber] = set()
        self._interested: dict[str, list[Subscriber]] = {}
        self.resyncs = 0
        self.published = 0
        self._unsubscribe: Callable[[], None] | None = None

    def start(self) -> None:
        self._unsubscribe = self.walls.subscribe(self._wall_changed)

    def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def add(self, sub: Subscriber) -> None:
        self.subscribers.add(sub)
        self.resubscribed()

    def remove(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)
        self.resubscribed()

    def resubscribed(self) -> None:
        """Forget who listens to what: a subscriber came, went or changed categories."""
        self._interested.clear()

    def interested(self, category: str) -> list[Subscriber]:
        # Asked on every change of the wall, with many sessions and few subscriptions.
        subs = self._interested.get(category)
        if subs is None:
            subs = self._interested[category] = [
                s for s in self.subscribers if category in s.categories
            ]
        return subs

    def _fan_out(self, subs: list[Subscriber], category: str, tail: bytes) -> None:
        self.published += 1
        for sub in subs:
            if not sub.offer(category, tail):
                self.resyncs += 1

    def _wall_changed(self, ev: WallChanged) -> None:
        # Serialising a whole wall is the dear part: only when someone will read it.
        subs = self.interested("wall")
        if not subs:
            return
        state = ev.state
        data = {"action": ev.action, "ts": ev.ts, "state": state_data(state)}
        tail = event_tail(
            "wall.changed",
            "wall",
            data,
            wall=state.wall,
            revision=state.revision,
            origin=origin_of(ev.actor),
        )
        self._fan_out(subs, "wall", tail)

    def publish(
        self, category: str, type_: str, wall: str | None, actor: Actor, data: dict[str, Any]
    ) -> None:
        subs = self.interested(category)
        if not subs:
            return
        revision = self.walls.state(wall).revision if wall in self.walls.walls else None
        tail = event_tail(
            type_, category, data, wall=wall, revision=revision, origin=origin_of(actor)
        )
        self._fan_out(subs, category, tail)

    def snapshot_tail(self) -> bytes:
        """Every wall as it is now (durable state), for a client starting or resyncing."""
        walls = []
        for wid in self.walls.walls:
            st = self.walls.state(wid)
            walls.append({"wall": wid, "revision": st.revision, "state": state_data(st)})
        main = self.walls.state(None)
        return event_tail(
            "snapshot",
            None,
            {"ts": time.time(), "walls": walls},
            wall=main.wall,
            revision=main.revision,
        )

    @staticmethod
    def resync_tail(dropped: int) -> bytes:
        return event_tail(
            "resync", None, {"dropped": dropped, "reason": "the client read events too slowly"}
        )
