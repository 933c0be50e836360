"""What waits to be published: a bounded queue of events and the latest retained values.

Events are kept in order up to a bound; past it the oldest is dropped and counted (an
outage must cost memory in proportion to the bound, not to its length). Retained
values (a wall's state, a device's status) are coalesced per topic: only the newest
matters to a subscriber, so 1000 changes of one wall during an outage are one publish,
and while connected one topic is published at most every ``retained_interval`` seconds
(its newest value; every change is still an event), which halves the messages of a
wall changing 1000 times a second.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Outgoing:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    # Builds the payload when the message is sent: a retained value overwritten before
    # then (1000 wall changes a second) is never serialised at all.
    render: Callable[[], bytes] | None = field(default=None, compare=False, repr=False)

    def body(self) -> bytes:
        return self.payload if self.render is None else self.render()


class OutageBuffer:
    def __init__(self, bound: int, retained_interval: float = 0.05) -> None:
        self.bound = bound
        self.retained_interval = retained_interval
        self.events: deque[Outgoing] = deque()
        # topic -> newest retained message not yet handed to the broker.
        self.retained: dict[str, Outgoing] = {}
        # topic -> monotonic time before which it is not published again.
        self._not_before: dict[str, float] = {}
        self.dropped = 0
        self.high_water = 0
        self.wake = asyncio.Event()

    def __len__(self) -> int:
        return len(self.events) + len(self.retained)

    def put_event(self, msg: Outgoing) -> None:
        if len(self.events) >= self.bound:
            self.events.popleft()
            self.dropped += 1
        self.events.append(msg)
        self.high_water = max(self.high_water, len(self.events))
        self.wake.set()

    def put_retained(self, msg: Outgoing) -> None:
        # Re-inserted so the dict's order is the order of the newest changes.
        self.retained.pop(msg.topic, None)
        self.retained[msg.topic] = msg
        self.wake.set()

    def put_back(self, msg: Outgoing) -> None:
        """A message the broker did not acknowledge: first in line again."""
        if msg.retain:
            # A newer value for the topic wins over the one that failed.
            self.retained.setdefault(msg.topic, msg)
        else:
            if len(self.events) >= self.bound:
                self.dropped += 1
                return
            self.events.appendleft(msg)
        self.wake.set()

    def take(self, now: float) -> Outgoing | None:
        """Retained values first (they are what a reconnecting subscriber reads)."""
        if self.retained:
            for topic in self.retained:
                if self._not_before.get(topic, 0.0) <= now:
                    self._not_before[topic] = now + self.retained_interval
                    return self.retained.pop(topic)
        if self.events:
            return self.events.popleft()
        return None

    def next_due(self) -> float | None:
        """When the earliest held-back retained value may go (None: nothing held)."""
        if not self.retained:
            return None
        return min(self._not_before.get(t, 0.0) for t in self.retained)

    def unpace(self) -> None:
        """After a reconnect every retained value goes at once."""
        self._not_before.clear()
