"""A few threads that take turns running the decode sessions of local files.

A file source is decoded a few pictures at a time, a little ahead of their time
(``decoder.AHEAD_S``: its slot shows each at its own time); between turns it has nothing
to do. One thread per file spends most of its life waking up and, on a wall of 16 to 36
sources on two cores, queueing for the GIL and the cores behind the other decoders:
measured here, one thread per source cost 5-7 % more CPU per picture than two threads
serving all of them, and eight threads 10-20 % more than one or two. A ``DecodePool``
keeps a queue of sessions ordered by when each one next has work (its steps yield that
time, see ``DecodeSession.steps``); each of its threads runs the earliest due session's
next step. It starts with one thread per core but one (that core is the compositor's,
the outputs' and the event loop's; 16 540p or 36 360p files need under half a core) and
grows, up to two threads per core, only while it is behind.

Only sessions whose reads return at once come here (``decoder.shares_threads``): a
network stream that stalls would stall every source sharing its thread, so those keep
a thread of their own.
"""

from __future__ import annotations

import heapq
import itertools
import os
import threading
import time
from typing import TYPE_CHECKING

from wallctl.logs import get_logger

if TYPE_CHECKING:
    from collections.abc import Iterator

    from wallctl.render.decoder import DecodeSession

log = get_logger("wallctl.render.decode_pool")

# A session due within this is run now rather than after one more sleep: a picture of a
# file paced a few milliseconds early is invisible (the compositor samples every 40 ms),
# a wake-up per picture is not.
EARLY_S = 0.008
MAX_THREADS = 8
# The earliest due session this late while no thread is free: the pool is behind (a busy
# machine, a slow disk, an expensive file) and takes one more thread, up to twice its
# size. A thread beyond the base size ends when, over RETIRE_S, it waited for work more
# than half the time (the pool has caught up), or found none for IDLE_S.
LAG_S = 0.1
# At most one thread added per this long: a thread just added needs a moment to catch
# up before the lag says anything about needing another.
GROW_EVERY_S = 0.5
RETIRE_S = 2.0
IDLE_S = 10.0


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class DecodePool:
    """Runs ``DecodeSession.steps()`` of many sessions on ``threads`` threads."""

    def __init__(self, threads: int | None = None) -> None:
        cores = usable_cores()
        self.size = max(1, min(MAX_THREADS, threads or cores - 1))
        self.max_size = max(self.size, min(MAX_THREADS, 2 * (threads or cores)))
        self._said_behind = 0.0
        self._grown_at = -GROW_EVERY_S
        self._cond = threading.Condition()
        # (due, order, token, session): an entry is current while its token is the
        # session's pool_token; older entries are skipped when they surface.
        self._queue: list[tuple[float, int, int, DecodeSession]] = []
        self._order = itertools.count()
        self._steps: dict[DecodeSession, Iterator[float]] = {}
        self._running: set[DecodeSession] = set()
        self._threads: list[threading.Thread] = []
        self._idle = 0  # threads waiting for a session to fall due
        self._closed = False

    # --- from any thread -----------------------------------------------------------------

    def add(self, session: DecodeSession) -> None:
        with self._cond:
            if self._closed:
                session.finished()
                return
            self._steps[session] = session.steps()
            self._push(session, time.monotonic())
            if len(self._threads) < self.size:
                self._spawn(extra=False)
            self._cond.notify()

    def wake(self, session: DecodeSession) -> None:
        """Run ``session``'s next step now (it was asked to stop)."""
        with self._cond:
            if session in self._steps and session not in self._running:
                self._push(session, time.monotonic())
                self._cond.notify()

    def sessions(self) -> int:
        with self._cond:
            return len(self._steps)

    def threads(self) -> int:
        with self._cond:
            return sum(1 for t in self._threads if t.is_alive())

    def close(self, timeout: float = 5.0) -> None:
        """End the threads. Sessions still here are closed (their files too) first."""
        with self._cond:
            self._closed = True
            for s in list(self._steps):
                s.stop()  # a session mid-step goes on to its end right after the step
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for t in list(self._threads):
            t.join(max(0.0, deadline - time.monotonic()))

    # --- the threads ---------------------------------------------------------------------

    def _spawn(self, *, extra: bool) -> None:
        self._threads = [t for t in self._threads if t.is_alive()]
        t = threading.Thread(
            target=self._work, args=(extra,), name=f"decode-pool-{len(self._threads)}", daemon=True
        )
        self._threads.append(t)
        t.start()
        now = time.monotonic()
        if extra and now - self._said_behind > 60.0:  # once a minute at most
            self._said_behind = now
            log.info("decode pool behind: one more thread", threads=len(self._threads))

    def _push(self, session: DecodeSession, due: float) -> None:
        session.pool_token += 1
        heapq.heappush(self._queue, (due, next(self._order), session.pool_token, session))

    def _next(self, extra: bool, load: _Load) -> DecodeSession | None:
        """The next session to step, waiting until one is due; None to end the thread."""
        idle_since = time.monotonic()
        with self._cond:
            while True:
                q = self._queue
                while q and q[0][2] != q[0][3].pool_token:
                    heapq.heappop(q)  # superseded by a later entry of the same session
                if self._closed and not self._steps:
                    return None
                now = time.monotonic()
                if extra and (now - idle_since > IDLE_S or load.slack(now)):
                    return None
                wait = q[0][0] - now if q else IDLE_S
                if wait > EARLY_S:
                    self._idle += 1
                    try:
                        self._cond.wait(wait)
                    finally:
                        self._idle -= 1
                        load.idle += time.monotonic() - now
                    continue
                session = heapq.heappop(q)[3]
                self._running.add(session)
                if (
                    -wait > LAG_S
                    and self._idle == 0
                    and len(self._threads) < self.max_size
                    and now - self._grown_at > GROW_EVERY_S
                ):
                    self._grown_at = now
                    self._spawn(extra=True)
                return session

    def _work(self, extra: bool) -> None:
        load = _Load(time.monotonic())
        while True:
            session = self._next(extra, load)
            if session is None:
                with self._cond:
                    me = threading.current_thread()
                    self._threads = [t for t in self._threads if t is not me]
                return
            steps = self._steps[session]
            try:
                due: float | None = next(steps)
            except StopIteration:
                due = None
            except Exception:  # a bug in one session must not take the pool down
                log.exception("decode session failed", source=session.spec.source)
                due = None
            with self._cond:
                self._running.discard(session)
                if due is None:
                    del self._steps[session]
                elif session.stopping:
                    # Asked to stop while this step ran: go on at once, to its end.
                    self._push(session, time.monotonic())
                elif due != float("inf"):
                    self._push(session, due)
                if self._closed:
                    self._cond.notify_all()
            if due is None:
                session.finished()


class _Load:
    """How much of its time one thread spent waiting for work, per RETIRE_S."""

    __slots__ = ("idle", "since")

    def __init__(self, now: float) -> None:
        self.since = now
        self.idle = 0.0

    def slack(self, now: float) -> bool:
        """True when, over the last period, the thread waited more than half the time."""
        span = now - self.since
        if span < RETIRE_S:
            return False
        waited = self.idle / span
        self.since, self.idle = now, 0.0
        return waited > 0.5
