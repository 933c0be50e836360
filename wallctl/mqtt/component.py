"""The MQTT face of the daemon as a component: one broker connection, kept up for life.

The broker being away never holds up the daemon: ``start`` returns at once and a task
connects in the background, reconnecting with capped, jittered backoff (and a long
wait after the broker refused the credentials, so a wrong password is not retried in a
storm). While connected, a writer drains the outgoing buffer (retained values first) and
a reader hands commands to one worker, in arrival order. On every (re)connect the birth
message, every wall's state and every device status are published again, so a broker
restarted without persistence is whole again within a moment.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
import ssl
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import aiomqtt
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from drivers.backoff import Backoff
from wallctl import __version__
from wallctl.accounts import Accounts
from wallctl.api import methods
from wallctl.api.methods import ApiContext
from wallctl.bus import BusEvent, EventBus
from wallctl.component import Component, Health, Status
from wallctl.logs import get_logger
from wallctl.mqtt import codec
from wallctl.mqtt.buffer import OutageBuffer, Outgoing
from wallctl.mqtt.commands import CommandHandler
from wallctl.mqtt.config import MqttConfig
from wallctl.mqtt.federation import Federation
from wallctl.mqtt.topics import Topics, valid_level
from wallctl.store import Actor, Store
from wallctl.walls import WallChanged, WallService

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from wallctl.config import Config
    from wallctl.daemon import Runtime

log = get_logger("wallctl.mqtt")

# QoS 1 everywhere (see docs/mqtt.md): at least once, acknowledged by the broker. QoS 0
# would lose state and answers silently on a busy link; QoS 2 costs two more round
# trips per message and buys nothing that if_revision and idempotent edits do not.
QOS = 1
# Messages in flight to the broker at once (each awaits its PUBACK). The throughput
# ceiling is this over the broker's round trip: 256 / 20 ms (a broker in another centre)
# is still 12800 messages/s, and a broker starved of CPU does not stall the writer.
MAX_INFLIGHT = 256
# Incoming messages held while the worker is busy (commands, peers' state); aiomqtt
# discards beyond this with a warning rather than growing without bound.
MAX_INCOMING = 10000
COMMAND_QUEUE = 1000
# Devices given a retained status topic (a bound against a runaway id source).
MAX_DEVICES = 10000
# MQTT 5 CONNACK reason codes that mean "your credentials", and MQTT 3 return codes 4/5.
AUTH_REFUSED = {134, 135, 4, 5}


class _Accounts:
    """Roles of command senders, read afresh per command (see commands.py)."""

    def __init__(self, accounts: Accounts) -> None:
        self.accounts = accounts

    def role_of(self, account: str) -> str | None:
        # The same fresh read a WebSocket login makes (a primary-key lookup on a read-only
        # connection, well under a millisecond), so the CLI's changes count at once.
        rec = self.accounts._fresh(account)
        if rec is None or rec.disabled:
            return None
        return str(rec.role)


class MqttComponent(Component):
    name = "mqtt"

    def __init__(
        self,
        config: MqttConfig,
        *,
        site: str,
        centre_name: str,
        walls: WallService,
        store: Store,
        bus: EventBus,
        services: dict[str, Any] | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        assert config.host is not None
        self.config = config
        self.site = site
        self.centre_name = centre_name
        self.walls = walls
        self.store = store
        self.bus = bus
        self.topics = Topics(config.topic_prefix, site)
        self.services = {} if services is None else services
        self.ctx = ApiContext(walls, store, publish=self._ctx_publish, services=self.services)
        self.accounts = Accounts(store)
        self.commands = CommandHandler(
            self.ctx,
            store,
            self.topics,
            _Accounts(self.accounts),
            max_bytes=config.max_message_bytes,
            rate=lambda: (self.config.rate_limit, self.config.rate_burst),
        )
        self.federation = Federation(
            config.federation,
            self.topics,
            self.ctx,
            store,
            bus,
            max_bytes=config.max_message_bytes,
            rate=lambda: (self.config.rate_limit, self.config.rate_burst),
        )
        self.services.setdefault("federation", self.federation)
        self.buffer = OutageBuffer(config.outage_buffer)
        # Wide jitter: the daemons of a site that all lost the same broker must not come
        # back in step.
        self.backoff = Backoff(config.reconnect_min, config.reconnect_max, jitter=0.5)
        self.connected = False
        self.state_detail = "connecting"
        self.auth_failed = False
        self.connects = 0
        self.failures: dict[str, int] = {}
        self.published = 0
        self.next_attempt: float | None = None
        # Subscriptions the broker refused on the last connect (its ACL).
        self.refused: list[str] = []
        self._device_status: dict[str, Outgoing] = {}
        self._device_views: dict[str, dict[str, Any]] = {}
        self._client: aiomqtt.Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._unsubscribe: list[Callable[[], None]] = []
        self._background: set[asyncio.Task[None]] = set()
        self._tls: ssl.SSLContext | None = None
        self._inflight = asyncio.Semaphore(MAX_INFLIGHT)
        if registry is not None:
            registry.register(_MqttMetrics(self))

    # --- component -------------------------------------------------------------------

    async def start(self) -> None:
        methods.load_extensions()
        await self.accounts.load()
        if self.config.tls:
            self._tls = await asyncio.to_thread(self._tls_context)
        self._unsubscribe = [
            self.walls.subscribe(self._wall_changed),
            self.bus.subscribe(self._bus_event),
        ]
        self._queue_all_state()
        self._task = asyncio.create_task(self._run(), name="mqtt")
        log.info(
            "mqtt starting",
            broker=f"{self.config.host}:{self.config.port}",
            client_id=self.client_id,
            root=self.topics.root,
        )

    async def stop(self) -> None:
        self._stop.set()
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []
        self.federation.close()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout=5)
            except (TimeoutError, Exception):
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._task
            self._task = None
        self.accounts.close()

    def health(self) -> Health:
        if self.connected and self.refused:
            # Connected but deaf to commands: what a misconfigured ACL looks like.
            return Health(
                Status.DEGRADED,
                f"connected, but the broker's ACL refuses: {', '.join(self.refused)}",
            )
        if self.connected:
            return Health(Status.OK, f"connected to {self.config.host}:{self.config.port}")
        # Local control works without the broker: degraded, never failed.
        return Health(Status.DEGRADED, self.state_detail)

    def alive(self) -> bool:
        return self._task is None or not self._task.done() or self._stop.is_set()

    def reload(self, config: Config) -> list[str]:
        new = config.mqtt
        old = self.config
        restart = [
            f"mqtt.{k}"
            for k in type(old).model_fields
            if k not in ("federation", "rate_limit", "rate_burst", "events")
            and getattr(old, k) != getattr(new, k)
        ]
        if config.daemon.site != self.site:
            restart.append("daemon.site")
        watched = {s for s, p in new.federation.peers.items() if p.watch}
        if watched != {s for s, p in old.federation.peers.items() if p.watch}:
            restart.append("mqtt.federation.peers (watch)")
        # The policy, rate limits and published categories apply from the next message.
        self.config = old.model_copy(
            update={
                "federation": new.federation,
                "rate_limit": new.rate_limit,
                "rate_burst": new.rate_burst,
                "events": new.events,
            }
        )
        self.federation.reconfigure(new.federation)
        task = asyncio.get_running_loop().create_task(self.accounts.load())
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return restart

    @property
    def client_id(self) -> str:
        return self.config.client_id or f"wallctl-{self.site}"

    def _tls_context(self) -> ssl.SSLContext:
        cfg = self.config
        ctx = ssl.create_default_context(cafile=str(cfg.tls_ca) if cfg.tls_ca else None)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if cfg.tls_cert is not None and cfg.tls_key is not None:
            ctx.load_cert_chain(cfg.tls_cert, cfg.tls_key)
        if cfg.tls_insecure:
            ctx.check_hostname = False
        return ctx

    # --- what goes out ----------------------------------------------------------------

    def _wants(self, category: str) -> bool:
        events = self.config.events
        return "*" in events or category in events

    def _queue_all_state(self) -> None:
        for wid in self.walls.walls:
            st = self.walls.state(wid)
            self.buffer.put_retained(
                Outgoing(
                    self.topics.state(wid),
                    codec.state_payload(self.site, st, time.time(), None),
                    QOS,
                    True,
                )
            )
        for msg in self._device_status.values():
            self.buffer.put_retained(msg)

    def _wall_changed(self, ev: WallChanged) -> None:
        st = ev.state
        self.buffer.put_retained(
            Outgoing(
                self.topics.state(st.wall),
                b"",
                QOS,
                True,
                render=lambda: codec.state_payload(self.site, st, ev.ts, ev.actor),
            )
        )
        if self._wants("wall"):
            data = {"action": ev.action, "ts": ev.ts}
            bus_ev = BusEvent("wall", "wall.changed", data, st.wall, ev.actor, ev.ts)
            self.buffer.put_event(
                Outgoing(
                    self.topics.events("wall"),
                    codec.event_payload(self.site, bus_ev, st.revision),
                    QOS,
                    False,
                )
            )

    def _bus_event(self, ev: BusEvent) -> None:
        if not valid_level(ev.category):
            return
        device = ev.data.get("device")
        if (
            ev.type in ("device.status", "device.state")
            and isinstance(device, str)
            and valid_level(device)
        ):
            self._device_changed(device, ev)
        if self._wants(ev.category):
            revision = None
            if ev.wall is not None and ev.wall in self.walls.walls:
                revision = self.walls.state(ev.wall).revision
            self.buffer.put_event(
                Outgoing(
                    self.topics.events(ev.category),
                    codec.event_payload(self.site, ev, revision),
                    QOS,
                    False,
                )
            )

    def _device_changed(self, device: str, ev: BusEvent) -> None:
        """One retained view per device: its connection status and its cached state."""
        view = self._device_views.get(device)
        if view is None:
            if len(self._device_views) >= MAX_DEVICES:
                return
            view = self._device_views[device] = {
                "site": self.site,
                "device": device,
                "status": None,
                "detail": "",
                "state": {},
            }
        if ev.type == "device.status":
            view["status"] = ev.data.get("status")
            view["detail"] = ev.data.get("detail", "")
        else:
            key = ev.data.get("key")
            if not isinstance(key, str):
                return
            view["state"][key] = ev.data.get("value")
        view["ts"] = ev.ts
        msg = Outgoing(
            self.topics.device_status(device),
            b"",
            QOS,
            True,
            render=lambda: codec.dumps(view),
        )
        self._device_status[device] = msg
        self.buffer.put_retained(msg)

    def _ctx_publish(
        self, category: str, type_: str, wall: str, actor: Actor, data: dict[str, Any]
    ) -> None:
        # Presets saved over MQTT reach WebSocket subscribers (and us) through the bus.
        self.bus.publish(category, type_, data, wall=wall, actor=actor)

    # --- the connection -----------------------------------------------------------------

    def _new_client(self) -> aiomqtt.Client:
        cfg = self.config
        will = aiomqtt.Will(
            self.topics.online,
            codec.online_payload(self.site, self.centre_name, __version__, False),
            qos=QOS,
            retain=True,
        )
        client = aiomqtt.Client(
            cfg.host or "",
            cfg.port,
            username=cfg.username,
            password=cfg.password.get_secret_value() if cfg.password else None,
            identifier=self.client_id,
            protocol=aiomqtt.ProtocolVersion.V5,
            will=will,
            clean_start=True,
            keepalive=cfg.keepalive,
            timeout=cfg.connect_timeout,
            max_inflight_messages=MAX_INFLIGHT,
            max_queued_incoming_messages=MAX_INCOMING,
            tls_context=self._tls,
            # paho leaves Nagle on: an answer then waits for the broker's delayed ACK
            # (measured: 90 ms command round trips instead of a few).
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        )
        # aiomqtt warns past 10 publishes awaiting their PUBACK; the writer keeps up to
        # MAX_INFLIGHT in flight on purpose.
        client.pending_calls_threshold = MAX_INFLIGHT + COMMAND_QUEUE
        return client

    async def _run(self) -> None:
        while not self._stop.is_set():
            client = self._new_client()
            try:
                async with client:
                    await self._session(client)
            except MqttConnectError as e:
                rc = getattr(e.rc, "value", e.rc)
                if rc in AUTH_REFUSED:
                    self._on_failed("authentication", f"the broker refused the credentials ({e})")
                else:
                    self._on_failed("refused", f"the broker refused the connection ({e})")
            except aiomqtt.MqttError as e:
                self._on_failed("unreachable", str(e) or type(e).__name__)
            except Exception as e:  # a bug must not end the face for good
                log.exception("mqtt connection failed")
                self._on_failed("error", repr(e))
            finally:
                self._on_disconnected()
            if self._stop.is_set():
                break
            delay = self.config.auth_retry if self.auth_failed else self.backoff.next()
            self.next_attempt = time.time() + delay
            self.state_detail += f"; next attempt in {delay:.1f} s"
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=delay)

    def _on_connected(self, client: aiomqtt.Client) -> None:
        self._client = client
        self.connected = True
        self.auth_failed = False
        self.connects += 1
        self.backoff.reset()
        self.next_attempt = None
        self.state_detail = "connected"
        log.info("mqtt connected", broker=f"{self.config.host}:{self.config.port}")

    def _on_failed(self, kind: str, detail: str) -> None:
        self.failures[kind] = self.failures.get(kind, 0) + 1
        self.auth_failed = kind == "authentication"
        was = self.state_detail
        self.state_detail = f"broker {self.config.host}:{self.config.port}: {detail}"
        if kind == "authentication":
            log.error("mqtt broker refused the credentials", user=self.config.username or "")
        elif self.connected or not was.startswith("broker"):
            log.warning("mqtt broker unreachable", reason=detail)

    def _on_disconnected(self) -> None:
        if self.connected and not self._stop.is_set():
            log.warning("mqtt disconnected", buffered=len(self.buffer))
        self.connected = False
        self._client = None
        self.federation.attach(None)

    async def _session(self, client: aiomqtt.Client) -> None:
        await client.publish(
            self.topics.online,
            codec.online_payload(self.site, self.centre_name, __version__, True),
            qos=QOS,
            retain=True,
        )
        subs = [
            self.topics.commands,
            self.topics.federation_in,
            self.topics.federation_replies,
            self.topics.bridges,
        ]
        for site in self.federation.peers:
            peer = self.topics.peer(site)
            subs += [peer.online, f"{peer.root}/state/+", f"{peer.root}/bridge/{self.site}"]
        granted = await client.subscribe([(t, QOS) for t in subs])
        # MQTT 5 SUBACK: a reason code >= 0x80 per topic the broker refused (its ACL). EMQX
        # refuses here; mosquitto 2.0 grants every subscription and filters on delivery.
        self.refused = [t for t, rc in zip(subs, granted, strict=False) if _code(rc) >= 0x80]
        if self.refused:
            log.error("mqtt broker refused subscriptions", topics=",".join(self.refused))
        # Healthy from here: born, subscribed, answering.
        self._on_connected(client)
        self.federation.attach(self._publish_with_correlation)
        # Whatever the broker held may be gone (restart without persistence): say it all.
        self.buffer.unpace()
        self._queue_all_state()
        commands: asyncio.Queue[aiomqtt.Message] = asyncio.Queue(COMMAND_QUEUE)
        tasks = [
            asyncio.create_task(self._reader(client, commands), name="mqtt-reader"),
            asyncio.create_task(self._writer(client), name="mqtt-writer"),
            asyncio.create_task(self._worker(commands), name="mqtt-commands"),
            asyncio.create_task(self._stop.wait(), name="mqtt-stop"),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._stop.is_set():
            # A clean goodbye: the broker does not send the will for a normal DISCONNECT.
            with contextlib.suppress(Exception):
                await client.publish(
                    self.topics.online,
                    codec.online_payload(self.site, self.centre_name, __version__, False),
                    qos=QOS,
                    retain=True,
                    timeout=2,
                )
            return
        for t in done:
            exc = t.exception() if not t.cancelled() else None
            if exc is not None:
                raise exc if isinstance(exc, aiomqtt.MqttError) else aiomqtt.MqttError(str(exc))
        raise aiomqtt.MqttError("connection ended")

    async def _writer(self, client: aiomqtt.Client) -> None:
        lost = asyncio.Event()
        buffer = self.buffer
        pending: set[asyncio.Task[None]] = set()

        async def send(msg: Outgoing) -> None:
            try:
                # No per-message timeout (aiomqtt would spend a task and a timer on each):
                # a connection that stops acknowledging is found by the keepalive, and
                # ending the session cancels this.
                await client.publish(
                    msg.topic, msg.body(), qos=msg.qos, retain=msg.retain, timeout=math.inf
                )
                self.published += 1
            except asyncio.CancelledError:
                buffer.put_back(msg)  # unacknowledged when the session ended: send again
                raise
            except Exception:
                buffer.put_back(msg)
                lost.set()
            finally:
                self._inflight.release()

        try:
            while not lost.is_set():
                now = time.monotonic()
                msg = buffer.take(now)
                if msg is None:
                    buffer.wake.clear()
                    due = buffer.next_due()
                    waiter = asyncio.ensure_future(buffer.wake.wait())
                    lost_waiter = asyncio.ensure_future(lost.wait())
                    await asyncio.wait(
                        [waiter, lost_waiter],
                        timeout=None if due is None else max(0.0, due - now),
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                    waiter.cancel()
                    lost_waiter.cancel()
                    continue
                await self._inflight.acquire()
                t = asyncio.create_task(send(msg))
                pending.add(t)
                t.add_done_callback(pending.discard)
            raise aiomqtt.MqttError("publish failed: connection lost")
        finally:
            for t in list(pending):
                t.cancel()

    async def _reader(
        self, client: aiomqtt.Client, commands: asyncio.Queue[aiomqtt.Message]
    ) -> None:
        topics = self.topics
        async for message in client.messages:
            topic = message.topic.value
            payload = message.payload if isinstance(message.payload, bytes) else b""
            if topics.command_account(topic) is not None or topics.federation_origin(topic):
                await commands.put(message)
            elif (peer := topics.federation_reply_peer(topic)) is not None:
                self.federation.on_reply(peer, payload, _correlation(message))
            elif (peer := topics.bridge_peer(topic)) is not None:
                if self.federation.on_bridge(peer, payload):
                    # Our broker's bridge to a peer came (back) up: the peer's broker
                    # may have missed changes made while it was down.
                    self._queue_all_state()
            elif (peer := topics.peer_bridge(topic)) is not None:
                self.federation.on_bridge(peer, payload)
            else:
                self.federation.on_peer_message(topic, payload)

    async def _worker(self, commands: asyncio.Queue[aiomqtt.Message]) -> None:
        while True:
            message = await commands.get()
            topic = message.topic.value
            payload = message.payload if isinstance(message.payload, bytes) else b""
            try:
                await self._handle(topic, payload, message)
            except aiomqtt.MqttError:
                raise  # the connection went: the session ends and reconnects
            except Exception:
                log.exception("mqtt command handling failed", topic=topic[:200])

    async def _handle(self, topic: str, payload: bytes, message: aiomqtt.Message) -> None:
        origin = self.topics.federation_origin(topic)
        if origin is not None:
            await self.federation.incoming(origin, payload, _correlation(message) or b"")
            return
        props = message.properties
        response_topic = getattr(props, "ResponseTopic", None) if props else None
        reply = await self.commands.handle(topic, payload, response_topic)
        if reply is not None:
            await self._publish_with_correlation(
                reply.topic, codec.dumps(reply.body), _correlation(message), None
            )

    async def _publish_with_correlation(
        self, topic: str, payload: bytes, correlation: bytes | None, response_topic: str | None
    ) -> None:
        client = self._client
        if client is None:
            raise aiomqtt.MqttError("not connected")
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        if correlation:
            props.CorrelationData = correlation
        if response_topic:
            props.ResponseTopic = response_topic
        await client.publish(topic, payload, qos=QOS, retain=False, properties=props)
        self.published += 1


def _code(rc: Any) -> int:
    """A SUBACK entry as a number: a ReasonCode (MQTT 5) or the granted QoS (MQTT 3)."""
    return int(getattr(rc, "value", rc))


def _correlation(message: aiomqtt.Message) -> bytes | None:
    props = message.properties
    data = getattr(props, "CorrelationData", None) if props is not None else None
    return bytes(data) if data else None


class _MqttMetrics(Collector):
    def __init__(self, comp: MqttComponent) -> None:
        self.comp = comp

    def collect(self) -> Iterable[GaugeMetricFamily | CounterMetricFamily]:
        c = self.comp
        up = GaugeMetricFamily("wallctl_mqtt_connected", "1 while connected to the broker")
        up.add_metric([], 1 if c.connected else 0)
        yield up
        connects = CounterMetricFamily("wallctl_mqtt_connects", "Connections made to the broker")
        connects.add_metric([], c.connects)
        yield connects
        fails = CounterMetricFamily(
            "wallctl_mqtt_connect_failures",
            "Connections lost or refused, by kind (authentication, unreachable, refused)",
            labels=["kind"],
        )
        for kind, n in sorted(c.failures.items()):
            fails.add_metric([kind], n)
        yield fails
        queued = GaugeMetricFamily("wallctl_mqtt_queue", "Messages waiting to be published")
        queued.add_metric([], len(c.buffer))
        yield queued
        high = GaugeMetricFamily(
            "wallctl_mqtt_queue_high_water", "Most events ever waiting at once"
        )
        high.add_metric([], c.buffer.high_water)
        yield high
        dropped = CounterMetricFamily(
            "wallctl_mqtt_events_dropped", "Events dropped (oldest first) while the broker was away"
        )
        dropped.add_metric([], c.buffer.dropped)
        yield dropped
        pub = CounterMetricFamily("wallctl_mqtt_published", "Messages acknowledged by the broker")
        pub.add_metric([], c.published)
        yield pub
        cmds = CounterMetricFamily(
            "wallctl_mqtt_commands", "Commands answered", labels=["method", "result"]
        )
        for (m, r), n in sorted(c.commands.counters.by_result.items()):
            cmds.add_metric([m, r], n)
        yield cmds
        pend = GaugeMetricFamily(
            "wallctl_mqtt_federation_pending", "Federated commands awaiting confirmation"
        )
        pend.add_metric([], len(c.federation.pending))
        yield pend
        fed = CounterMetricFamily(
            "wallctl_mqtt_federation", "Federated commands by outcome", labels=["outcome"]
        )
        for k, n in sorted(c.federation.counters.items()):
            fed.add_metric([k], n)
        yield fed


def mqtt_components(rt: Runtime) -> list[Component]:
    """The MQTT component when ``[mqtt]`` names a broker; none otherwise."""
    cfg = rt.config.mqtt
    if not cfg.enabled:
        return []
    return [
        MqttComponent(
            cfg,
            site=rt.config.daemon.site,
            centre_name=rt.config.daemon.name,
            walls=rt.walls,
            store=rt.store,
            bus=rt.bus,
            services=rt.services,
            registry=rt.registry,
        )
    ]
