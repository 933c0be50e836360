"""The sources as the compositor sees them: one decoder per demanded source, kept warm.

``SourceHub`` implements ``FrameSupply``. Holders (a wall, the thumbnails, a preview)
``demand`` the sources they draw with the pixel size of each; the hub runs one decoder
per source whatever the number of windows, on the rendition that suits the largest size,
keyframes only when every holder draws a thumbnail. A source nobody demands keeps
decoding for ``warm_s`` so switching back is instant, then stops.

``view`` is what a window draws now: the latest picture whose time has come (a local
file's pictures are decoded a little ahead and wait in the slot until then), or the
phase and reason for a slate. Phases are derived from time (no picture for
``no_signal_s`` -> NO_SIGNAL), so a stalled decoder cannot leave a frozen picture on the
wall looking live. A housekeeping thread ends warm decoders, reaps stopped threads and
publishes ``source.state`` events on the bus when a phase changes.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

from wallctl.bus import EventBus
from wallctl.config import SourceConfig
from wallctl.logs import get_logger
from wallctl.render.decode_pool import DecodePool
from wallctl.render.decoder import DecodeSession, stream_spec
from wallctl.render.frames import Frame, Plane, SourcePhase, SourceView
from wallctl.render.patterns import MovingPattern
from wallctl.render.renditions import (
    RESOLVERS,
    UNRESOLVED_REASONS,
    Rendition,
    choose,
    largest_need,
    renditions_of,
    thumbnails_only,
)
from wallctl.render.source_config import RenderSourcesConfig
from wallctl.render.source_stats import SourceMetrics, SourceStats

log = get_logger("wallctl.render.sources")

HOUSEKEEPING_S = 0.1
# Sizes outside this are refused by demand() (a holder's bug, not a reason to allocate).
MAX_SIDE = 16384
# A rendition failing this many times in a row while the source has another is avoided
# for a while.
RENDITION_FAILURES = 3
RENDITION_AVOID_S = 60.0
# Sources one holder may demand at once (a wall of 16x16 windows is 256).
MAX_NEEDS = 4096
# A pattern nobody gave a size to is drawn at this size.
DEFAULT_PATTERN_SIZE = (640, 360)


def _even(n: int) -> int:
    return max(2, n - (n % 2))


class SourceSlot:
    """One configured source: its holders, decoder sessions, latest picture and stats."""

    def __init__(self, hub: SourceHub, config: SourceConfig) -> None:
        self.hub = hub
        self.config = config
        self.renditions: list[Rendition] = renditions_of(config)
        self.stats = SourceStats()
        self._lock = threading.Lock()
        self.needs: dict[str, tuple[int, int]] = {}
        self.released_at: float | None = None
        self.active: DecodeSession | None = None
        self.pending: DecodeSession | None = None
        self.pattern: MovingPattern | None = None
        self._need: tuple[int, int] = (0, 0)
        self._kf = False
        self._frame: Frame | None = None
        # Pictures decoded ahead of their time, oldest first (``Frame.arrived`` is when
        # each becomes current): only local files on the decode pool have any.
        self._ahead: deque[Frame] = deque()
        self._seq = 0
        self._last_frame_wall: float | None = None
        self._error: str | None = None  # a reason that is not the session's (limits, kind)
        # Demanded but over render.sources.max_decoders: started when a decoder frees.
        self.waiting_for_decoder = False
        # Renditions that keep failing while another exists are avoided until then.
        self.bad_until: dict[str, float] = {}
        self.started_at: float | None = None

    @property
    def id(self) -> str:
        return self.config.id

    @property
    def running(self) -> bool:
        return self.started_at is not None

    # --- SessionOwner (called from decoder threads) -----------------------------------

    def keyframes_only(self) -> bool:
        return self._kf

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        need_w, need_h = self._need
        factor = self.hub.config.downscale_factor
        if need_w and need_h and width >= need_w * factor and height >= need_h * factor:
            # Much larger than any window: scale here, in this source's thread.
            scale = max(need_w / width, need_h / height)
            return _even(round(width * scale)), _even(round(height * scale))
        return _even(width), _even(height)

    def offer(
        self,
        session: DecodeSession,
        y: Plane,
        u: Plane,
        v: Plane,
        pts: float | None,
        due: float | None = None,
    ) -> None:
        retired: DecodeSession | None = None
        now = time.monotonic()
        with self._lock:
            if session.stopping:
                return  # being stopped (dropped or replaced): its pictures are not wanted
            if session is self.pending:
                # The new rendition's first picture: switch now, with no gap or black frame.
                retired, self.active, self.pending = self.active, session, None
                self._ahead.clear()  # the old rendition's pictures decoded ahead
                self.stats.on_stream(
                    session.codec_name,
                    session._last_size[0],
                    session._last_size[1],
                    session.spec.rendition,
                )
            elif session is not self.active:
                return  # a session being stopped
            self._seq += 1
            current = self._frame
            was_live = current is not None and (
                now - current.arrived <= self.hub.config.no_signal_s
            )
            ahead = self._ahead
            if due is not None and due > now and was_live:
                # Decoded ahead (a local file): current from its time on, see view().
                if ahead and ahead[-1].arrived > due:
                    ahead.clear()  # the file's clock went back (a jump): its order wins
                ahead.append(Frame(y, u, v, seq=self._seq, arrived=due, pts=pts))
            else:
                ahead.clear()
                self._frame = Frame(y, u, v, seq=self._seq, arrived=now, pts=pts)
                self._last_frame_wall = time.time()
        if not was_live:
            self.hub._check(self)  # announce "live" now, not at the next housekeeping tick
        if retired is not None:
            log.info(
                "source rendition switched",
                source=self.id,
                rendition=session.spec.rendition,
                previous=retired.spec.rendition,
            )
            self.hub._retire(retired)

    def on_stream(self, session: DecodeSession, codec: str, width: int, height: int) -> None:
        if session is self.active:
            self.stats.on_stream(codec, width, height, session.spec.rendition)

    def on_failure(self, session: DecodeSession) -> None:
        if session is self.active:
            self.hub._check(self)

    # --- control (called under the hub's lock) ----------------------------------------

    def set_needs(self, needs: dict[str, tuple[int, int]], now: float) -> None:
        self.needs = needs
        sizes = list(needs.values())
        if any(w == 0 or h == 0 for w, h in sizes):
            # A holder that does not know its size yet gets the full picture.
            self._need, self._kf = (MAX_SIDE, MAX_SIDE), False
        else:
            self._need = largest_need(sizes)
            self._kf = thumbnails_only(sizes, self.hub.config.keyframes_only_max)
        if needs:
            self.released_at = None
            self._ensure_running(now)
        elif self.running and self.released_at is None:
            self.released_at = now

    def _ensure_running(self, now: float) -> None:
        cfg = self.config
        if cfg.kind == "test_pattern":
            w, h = self._need if self._need != (0, 0) else DEFAULT_PATTERN_SIZE
            if (w, h) == (MAX_SIDE, MAX_SIDE):  # size not known: the largest allowed
                cap = self.hub.config.pattern_max
                w, h = cap if cap[0] and cap[1] else (1920, 1080)
            mw, mh = self.hub.config.pattern_max
            w, h = min(w, mw or w), min(h, mh or h)
            if self.pattern is None:
                self.pattern = MovingPattern(cfg.pattern, w, h, self.hub.config.pattern_fps)
                self.started_at = now
            else:
                self.pattern.resize(w, h)
            return
        if cfg.kind in RESOLVERS and self.active is None:
            # Streams found at run time (camera profiles) may have appeared since.
            self.renditions = renditions_of(cfg)
        if not self.renditions and cfg.kind in RESOLVERS:
            self._error = f"the streams of {cfg.kind} source {cfg.id!r} are not known yet"
            if cfg.kind in UNRESOLVED_REASONS:  # the service that resolves it says why
                self._error = UNRESOLVED_REASONS[cfg.kind](cfg)
            self.started_at = self.started_at or now
            return
        if not self.renditions:
            self._error = (
                f"a {cfg.kind} source without a url is fed by its own service, not decoded here"
            )
            self.started_at = self.started_at or now
            return
        usable = [r for r in self.renditions if self.bad_until.get(r.name, 0.0) <= now]
        want = choose(usable or self.renditions, self._need)
        if self.active is None:
            if not self.hub._may_start():
                self._error = (
                    f"decoder limit reached (render.sources.max_decoders = "
                    f"{self.hub.config.max_decoders})"
                )
                self.waiting_for_decoder = True
                self.started_at = self.started_at or now
                return
            self._error = None
            self.waiting_for_decoder = False
            with self._lock:
                self.active = self._session(want)
            self.started_at = now
            self.stats.rendition = want.name
            self.stats.decoder_starts += 1
            # "connecting" goes out before the thread can deliver (and announce) a picture.
            self.hub._check(self)
            self.active.start()
            return
        # Sessions change only under the slot's lock, which offer() takes too: a pending
        # session is either promoted by its first picture or dropped here, never both.
        drop: list[DecodeSession] = []
        start: DecodeSession | None = None
        with self._lock:
            active = self.active
            if active.spec.rendition == want.name:
                if self.pending is not None:
                    drop.append(self.pending)
                    self.pending = None
            elif self.pending is not None and self.pending.spec.rendition == want.name:
                pass
            elif active.frames == 0:
                # Nothing shown yet from the old one: no picture to keep, switch at once.
                drop.append(active)
                if self.pending is not None:
                    drop.append(self.pending)
                    self.pending = None
                self.active = start = self._session(want)
                self.stats.rendition = want.name
            else:
                if self.pending is not None:
                    drop.append(self.pending)
                self.pending = start = self._session(want)
        for session in drop:
            self.hub._retire(session)
        if start is not None:
            start.start()

    def avoid_failing_rendition(self, now: float) -> None:
        """A sub-stream (or main stream) that will not open while the source has another:
        show the other rather than a failure slate, and try this one again later."""
        if len(self.renditions) < 2:
            return
        for session in (self.pending, self.active):
            if session is None or session.frames > 0 or session.failures < RENDITION_FAILURES:
                continue
            name = session.spec.rendition
            self.bad_until[name] = now + RENDITION_AVOID_S
            log.warning(
                "source rendition failing: using another",
                source=self.id,
                rendition=name,
                reason=session.error or "",
            )
            with self._lock:
                if session is self.pending:
                    self.pending = None
                else:
                    self.active = None
            self.hub._retire(session)
            if self.needs:
                self._ensure_running(now)
            return

    def _session(self, rendition: Rendition) -> DecodeSession:
        spec = stream_spec(self.config, rendition, self.hub.config)
        return DecodeSession(spec, self.hub.config, self, self.hub.pool)

    def stop_decoding(self) -> list[DecodeSession]:
        """Stop everything for this source; returns the sessions to join."""
        with self._lock:
            sessions = [s for s in (self.active, self.pending) if s is not None]
            self.active = self.pending = None
            self._frame = None
            self._ahead.clear()
            self._last_frame_wall = None
        for s in sessions:
            s.stop()
        self.pattern = None
        self.started_at = None
        self.released_at = None
        self._error = None
        self.waiting_for_decoder = False
        return sessions

    # --- what windows draw ---------------------------------------------------------------

    def view(self, now: float, *, draw: bool = True) -> SourceView:
        name = self.config.name
        if not self.running:
            return SourceView(self.id, name, SourcePhase.IDLE, None)
        pattern = self.pattern
        if pattern is not None:
            frame = pattern.frame(now) if draw else None
            return SourceView(self.id, name, SourcePhase.LIVE, frame, time.time())
        if self._error is not None:
            return SourceView(self.id, name, SourcePhase.FAILED, None, error=self._error)
        with self._lock:
            ahead = self._ahead
            if ahead and ahead[0].arrived <= now:
                # The newest picture whose time has come; older ones were never shown
                # (a consumer slower than the file's rate skips them, as it would live).
                current = ahead.popleft()
                while ahead and ahead[0].arrived <= now:
                    current = ahead.popleft()
                self._frame = current
                self._last_frame_wall = time.time() - (now - current.arrived)
            frame, wall_at, session = self._frame, self._last_frame_wall, self.active
        if session is None:
            return SourceView(self.id, name, SourcePhase.IDLE, None)
        error = session.error
        if frame is not None:
            fresh = now - frame.arrived <= self.hub.config.no_signal_s
            if not fresh and self._kf:
                # Thumbnails see a picture per GOP: packets arriving mean the signal is there.
                last_packet = self.stats.last_packet_at
                fresh = last_packet is not None and now - last_packet <= self.hub.config.no_signal_s
            phase = SourcePhase.LIVE if fresh else SourcePhase.NO_SIGNAL
            return SourceView(self.id, name, phase, frame, wall_at, None if fresh else error)
        if session.failures > 0 and error is not None:
            return SourceView(self.id, name, SourcePhase.FAILED, None, error=error)
        return SourceView(self.id, name, SourcePhase.CONNECTING, None)

    def row(self, now: float) -> dict[str, Any]:
        v = self.view(now, draw=False)
        phase, frame = v.phase, v.frame
        row: dict[str, Any] = {
            "source": self.id,
            "name": self.config.name,
            "kind": self.config.kind,
            "phase": phase.value,
            "error": v.error,
            "active": self.running,
            "holders": sorted(self.needs),
            "warm_for_s": (
                round(max(0.0, self.hub.config.warm_s - (now - self.released_at)), 1)
                if self.released_at is not None
                else None
            ),
            "age_s": round(now - frame.arrived, 3) if frame is not None else None,
            "last_frame_at": v.last_frame_at,
        }
        row.update(self.stats.snapshot(now))
        if self.pattern is not None:
            row["codec"] = "pattern"
            row["width"], row["height"] = self.pattern.size
            row["fps"] = self.hub.config.pattern_fps
        if self.pending is not None:
            row["switching_to"] = self.pending.spec.rendition
        return row


class SourceHub:
    """FrameSupply over the configured sources. Thread-safe; see the module docstring."""

    def __init__(
        self,
        sources: list[SourceConfig],
        config: RenderSourcesConfig | None = None,
        bus: EventBus | None = None,
    ) -> None:
        self.config = config or RenderSourcesConfig()
        self.bus = bus
        self._lock = threading.RLock()
        self._slots: dict[str, SourceSlot] = {}
        self._demands: dict[str, dict[str, tuple[int, int]]] = {}
        self._retired: list[DecodeSession] = []
        self._published: dict[str, tuple[str, str | None]] = {}
        # Held while a phase is compared and announced: events leave in order.
        self._pub_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = threading.Event()
        self._house: threading.Thread | None = None
        self._closed = False
        # Local files share a few decode threads; streams keep one each (decode_pool.py).
        self.pool = DecodePool()
        for s in sources:
            self._slots[s.id] = SourceSlot(self, s)

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._start_housekeeping()

    async def stop(self) -> None:
        await asyncio.to_thread(self.close)

    def close(self, timeout: float | None = None) -> None:
        """Stop every decoder and wait for their threads (bounded by the I/O timeouts)."""
        with self._lock:
            self._closed = True
            self._stopping.set()
            sessions = list(self._retired)
            self._retired.clear()
            for slot in self._slots.values():
                sessions += slot.stop_decoding()
        house = self._house
        if house is not None:
            house.join(2.0)
        limit = timeout
        if limit is None:
            # A blocked open or read ends within its own timeout; within the daemon's
            # 10 s allowance for a component's stop in any case (the threads are daemons).
            limit = min(8.0, max(self.config.open_timeout_s, self.config.read_timeout_s) + 1.0)
        deadline = time.monotonic() + limit
        for s in sessions:
            s.stop()
        for s in sessions:
            if not s.join(max(0.0, deadline - time.monotonic())):
                log.warning("decoder thread did not stop in time", source=s.spec.source)
        self.pool.close(max(0.5, deadline - time.monotonic()))

    def _start_housekeeping(self) -> None:
        with self._lock:
            if self._house is not None or self._closed:
                return
            self._house = threading.Thread(
                target=self._housekeeping, name="sourcehub-housekeeping", daemon=True
            )
            self._house.start()

    # --- FrameSupply ---------------------------------------------------------------------

    def demand(self, holder: str, needs: Mapping[str, tuple[int, int]]) -> None:
        """``holder`` now needs exactly these sources at these pixel sizes (replacing what
        it asked before; empty releases everything it held). A size of 0 means "not
        known": the source is then decoded in full. Sizes beyond 16384 or more than
        4096 sources raise ValueError and change nothing."""
        if len(needs) > MAX_NEEDS:
            raise ValueError(f"{len(needs)} sources demanded at once; at most {MAX_NEEDS}")
        clean: dict[str, tuple[int, int]] = {}
        for sid, size in needs.items():
            w, h = int(size[0]), int(size[1])
            if not (0 <= w <= MAX_SIDE and 0 <= h <= MAX_SIDE):
                raise ValueError(f"size of {sid!r} out of range: {w}x{h}")
            clean[sid] = (w, h)
        if self._loop is None:
            try:
                self._loop = asyncio.get_running_loop()
            except RuntimeError:
                pass
        with self._lock:
            if self._closed:
                return
            if clean:
                self._demands[holder] = clean
            else:
                self._demands.pop(holder, None)
            self._apply(time.monotonic())
        self._start_housekeeping()

    def view(self, source: str) -> SourceView:
        slot = self._slots.get(source)
        if slot is None:
            return SourceView(
                source, source, SourcePhase.FAILED, None, error=f"no source {source!r} configured"
            )
        return slot.view(time.monotonic())

    # --- configuration -------------------------------------------------------------------

    def configure(self, sources: list[SourceConfig]) -> None:
        """Take a reloaded source list: new ones appear, removed ones stop, changed restart."""
        stopped: list[DecodeSession] = []
        with self._lock:
            new = {s.id: s for s in sources}
            for sid in list(self._slots):
                slot = self._slots[sid]
                if sid not in new or new[sid] != slot.config:
                    stopped += slot.stop_decoding()
                    del self._slots[sid]
                    self._published.pop(sid, None)
            for sid, cfg in new.items():
                if sid not in self._slots:
                    self._slots[sid] = SourceSlot(self, cfg)
            self._retired += stopped
            self._apply(time.monotonic())

    def refresh_streams(self, source: str) -> None:
        """``source``'s streams changed at run time (a camera's profiles after it connected
        or rebooted): restart its decoder on the new ones if they differ."""
        with self._lock:
            slot = self._slots.get(source)
            if slot is None or self._closed:
                return
            new = renditions_of(slot.config)
            if new == slot.renditions and slot._error is None:
                return
            needs = dict(slot.needs)
            self._retired += slot.stop_decoding()
            slot.renditions = new
            if needs:
                slot.set_needs(needs, time.monotonic())
        self._check(slot)

    def _apply(self, now: float) -> None:
        per_source: dict[str, dict[str, tuple[int, int]]] = {}
        for holder, needs in self._demands.items():
            for sid, size in needs.items():
                per_source.setdefault(sid, {})[holder] = size
        for sid, slot in self._slots.items():
            needs = per_source.get(sid, {})
            if needs or slot.needs:
                slot.set_needs(needs, now)
            if not needs and slot.released_at is not None and self.config.warm_s == 0:
                self._retired += slot.stop_decoding()
            self._check(slot)

    # --- decoders --------------------------------------------------------------------------

    def _may_start(self) -> bool:
        running = sum(
            (slot.active is not None) + (slot.pending is not None) for slot in self._slots.values()
        )
        return running < self.config.max_decoders

    def _retire(self, session: DecodeSession) -> None:
        session.stop()
        with self._lock:
            self._retired.append(session)

    def decoder_threads(self) -> int:
        """Decoder threads alive now (active, switching, and stopping ones)."""
        with self._lock:
            sessions = list(self._retired)
            for slot in self._slots.values():
                sessions += [s for s in (slot.active, slot.pending) if s is not None]
        return sum(1 for s in sessions if s.alive())

    def _housekeeping(self) -> None:
        while not self._stopping.wait(HOUSEKEEPING_S):
            try:
                self._tick(time.monotonic())
            except Exception:  # keep the housekeeping alive whatever one tick hit
                log.exception("source housekeeping failed")

    def _tick(self, now: float) -> None:
        with self._lock:
            for slot in self._slots.values():
                if (
                    slot.released_at is not None
                    and not slot.needs
                    and now - slot.released_at >= self.config.warm_s
                ):
                    log.info("source cooled down: decoder stopped", source=slot.id)
                    self._retired += slot.stop_decoding()
            self._retired = [s for s in self._retired if s.alive()]
            for slot in self._slots.values():
                if slot.waiting_for_decoder and slot.needs and self._may_start():
                    slot._ensure_running(now)
                if slot.running and slot.pattern is None:
                    slot.avoid_failing_rendition(now)
            slots = list(self._slots.values())
        for slot in slots:
            self._check(slot)

    def _check(self, slot: SourceSlot) -> None:
        """Announce ``slot``'s phase if it changed since the last announcement."""
        with self._pub_lock:
            if self._slots.get(slot.id) is not slot:
                return  # removed by a reload
            v = slot.view(time.monotonic(), draw=False)
            state = (v.phase.value, v.error)
            if self._published.get(slot.id, ("idle", None)) != state:
                self._published[slot.id] = state
                self._announce(slot, v)

    def _announce(self, slot: SourceSlot, v: SourceView) -> None:
        log.info("source state", source=slot.id, phase=v.phase.value, error=v.error or "")
        bus, loop = self.bus, self._loop
        if bus is None or loop is None or loop.is_closed():
            return
        data = {
            "source": slot.id,
            "name": slot.config.name,
            "phase": v.phase.value,
            "error": v.error,
            "last_frame_at": v.last_frame_at,
            "rendition": slot.stats.rendition,
            "width": slot.stats.width,
            "height": slot.stats.height,
        }
        try:
            loop.call_soon_threadsafe(bus.publish, "source", "source.state", data)
        except RuntimeError:
            pass  # the loop closed between the check and the call

    # --- statistics ------------------------------------------------------------------------

    def stats(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        with self._lock:
            slots = list(self._slots.values())
        return [slot.row(now) for slot in slots]

    def source_stats(self, source: str) -> dict[str, Any] | None:
        slot = self._slots.get(source)
        return slot.row(time.monotonic()) if slot is not None else None

    def collector(self) -> SourceMetrics:
        """A Prometheus collector of every source's statistics, for /metrics."""
        return SourceMetrics(self.stats)

    def holders(self) -> dict[str, dict[str, tuple[int, int]]]:
        with self._lock:
            return {h: dict(n) for h, n in self._demands.items()}
