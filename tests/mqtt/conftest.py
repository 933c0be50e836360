"""Real mosquitto brokers on free ports, and centres (store, walls, API, MQTT) around them.

Each broker gets a generated config: one listener, a password file made with
mosquitto_passwd, an ACL file giving each person only their own command topic and each
daemon only its own tree (plus federation topics), optionally a bridge to another
broker. Accounts are the same names in the broker and in wallctl.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from wallctl.accounts import Accounts, Role
from wallctl.api.config import ApiConfig
from wallctl.api.server import ApiServer
from wallctl.bus import EventBus
from wallctl.config import parse_config
from wallctl.daemon import build_walls, load_layouts
from wallctl.mqtt.component import MqttComponent
from wallctl.store import Store
from wallctl.walls import WallService

pytestmark = pytest.mark.skipif(shutil.which("mosquitto") is None, reason="needs mosquitto")

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
PASSWORD = "correct horse battery"
# wallctl accounts (and broker accounts of the same name).
ACCOUNTS = {"viewer1": Role.VIEWER, "op1": Role.OPERATOR, "admin1": Role.ADMIN}
# Broker-only accounts: the daemons themselves and a bridge.
DAEMON_PASSWORD = "daemon-secret-pw"


def _user() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def acl_for(sites: list[str]) -> str:
    """Each daemon its own tree; each person its own command and reply topics."""
    lines = []
    for site in sites:
        lines += [
            f"user wallctl-{site}",
            f"topic readwrite wallctl/{site}/#",
            # Send to peers, answer them, watch them.
            f"topic write wallctl/+/fed/in/{site}",
            f"topic write wallctl/+/fed/reply/{site}",
            "topic read wallctl/+/state/+",
            "topic read wallctl/+/online",
            f"topic read wallctl/+/bridge/{site}",
            "",
        ]
    lines += [
        "user bridge",
        "topic readwrite wallctl/#",
        "",
        "pattern write wallctl/+/cmd/%u",
        "pattern read wallctl/+/reply/%u/#",
        "pattern read wallctl/+/state/#",
        "pattern read wallctl/+/online",
        "pattern read wallctl/+/events/#",
        "pattern read wallctl/+/devices/#",
        "",
    ]
    return "\n".join(lines)


@dataclass
class Broker:
    name: str
    dir: Path
    port: int
    sites: list[str]
    # More mosquitto.conf lines: a bridge, a TLS listener.
    extra: str = ""
    # The ACL file's text (default: acl_for(sites)).
    acl: str | None = None
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def write(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        pw = self.dir / "passwd"
        pw.write_text("")
        users = {u: PASSWORD for u in ACCOUNTS}
        users.update({f"wallctl-{s}": DAEMON_PASSWORD for s in self.sites})
        users["bridge"] = DAEMON_PASSWORD
        for user, password in users.items():
            subprocess.run(["mosquitto_passwd", "-b", str(pw), user, password], check=True)
        (self.dir / "acl").write_text(self.acl if self.acl is not None else acl_for(self.sites))
        (self.dir / "mosquitto.conf").write_text(
            "\n".join(
                [
                    "per_listener_settings false",
                    # Started as root, mosquitto would become "mosquitto" and could not
                    # read the test's private temp dir; as anyone else this is ignored.
                    f"user {_user()}",
                    f"listener {self.port} 127.0.0.1",
                    "allow_anonymous false",
                    f"password_file {pw}",
                    f"acl_file {self.dir / 'acl'}",
                    "persistence false",
                    "set_tcp_nodelay true",
                    "log_dest stderr",
                    "log_type error",
                    "log_type warning",
                    "log_type notice",
                    "log_type information",
                    self.extra,
                    "",
                ]
            )
        )

    def start(self) -> None:
        if self.starts == 0:
            self.write()
        log = open(self.dir / "mosquitto.log", "ab")
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.dir / "mosquitto.conf")], stderr=log, stdout=log
        )
        log.close()
        self.starts += 1
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 0.2),
            ):
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.log()[-2000:]}")
            time.sleep(0.05)
        raise RuntimeError("mosquitto did not listen")

    def kill(self) -> None:
        """SIGKILL: no goodbye to anyone, as when the broker's host dies."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def log(self) -> str:
        p = self.dir / "mosquitto.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def client(self, user: str, password: str = PASSWORD, **kw: Any) -> aiomqtt.Client:
        return aiomqtt.Client(
            "127.0.0.1",
            self.port,
            username=user,
            password=password,
            protocol=aiomqtt.ProtocolVersion.V5,
            identifier=f"test-{user}-{uuid.uuid4().hex[:8]}",
            **kw,
        )

    def cli(self, user: str) -> list[str]:
        """Common arguments of mosquitto_sub / mosquitto_pub for ``user``."""
        return ["-h", "127.0.0.1", "-p", str(self.port), "-u", user, "-P", PASSWORD, "-V", "5"]


@pytest.fixture
def broker_factory(tmp_path: Path) -> Iterator[Any]:
    made: list[Broker] = []

    def make(
        name: str,
        sites: list[str],
        extra: str = "",
        port: int | None = None,
        start: bool = True,
        acl: str | None = None,
    ) -> Broker:
        b = Broker(name, tmp_path / f"broker-{name}", port or free_port(), sites, extra, acl)
        if start:
            b.start()
        else:
            b.write()
            b.starts = 1
        made.append(b)
        return b

    yield make
    for b in made:
        b.stop()


@pytest.fixture
def broker(broker_factory: Any) -> Broker:
    b: Broker = broker_factory("a", ["main"])
    return b


class Relay:
    """A TCP relay to a broker that a test can cut (a bridge that drops) or open late."""

    def __init__(self, target_port: int, port: int = 0) -> None:
        self.target_port = target_port
        self.server: asyncio.Server | None = None
        self.port = port
        self.conns: set[asyncio.StreamWriter] = set()
        self.cut = False

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.cut:
            writer.close()
            return
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self.conns |= {writer, up_w}

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await r.read(65536):
                    w.write(data)
                    await w.drain()
            w.close()

        with contextlib.suppress(asyncio.CancelledError):  # the loop closing at teardown
            await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))
        self.conns -= {writer, up_w}

    def drop(self) -> None:
        self.cut = True
        for w in list(self.conns):
            w.transport.abort()

    def restore(self) -> None:
        self.cut = False

    async def close(self) -> None:
        self.drop()
        if self.server is not None:
            self.server.close()


# --- centres ------------------------------------------------------------------------------


def raw_config(site: str) -> dict[str, Any]:
    tiles = {
        "rows": 2,
        "cols": 2,
        "width_mm": 1209.6,
        "height_mm": 680.4,
        "width_px": 1920,
        "height_px": 1080,
    }
    return {
        "daemon": {"site": site, "name": f"centre {site}"},
        "wall": {
            "id": "main",
            "tiles": tiles,
            "startup_layout": "2x2",
            "startup_sources": ["bars", "gradient", "checkers", "clock"],
        },
        "sources": [
            {"id": s, "name": s, "kind": "test_pattern", "pattern": s}
            for s in ("bars", "gradient", "checkers", "clock")
        ],
    }


@pytest.fixture(scope="session")
def accounts_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("mqtt-accounts") / "wallctl.db"
    store = Store(path, "normal")
    accounts = Accounts(store, iterations=4096)
    for name, role in ACCOUNTS.items():
        accounts.add_sync(name, PASSWORD, role, name.upper())
    store.close()
    return path


@dataclass
class Centre:
    site: str
    store: Store
    walls: WallService
    bus: EventBus
    mqtt: MqttComponent
    api: ApiServer | None
    services: dict[str, Any] = field(default_factory=dict)

    async def stop(self) -> None:
        await self.mqtt.stop()
        if self.api is not None:
            await self.api.stop()
        self.walls.close()
        await asyncio.to_thread(self.store.close)


def mqtt_raw(broker: Broker, site: str, **over: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": broker.port,
        "username": f"wallctl-{site}",
        "password": DAEMON_PASSWORD,
        "reconnect_min": 0.1,
        "reconnect_max": 0.5,
        "keepalive": 5,
        "connect_timeout": 3,
    }
    raw.update(over)
    return raw


async def start_centre(
    tmp_path: Path,
    accounts_db: Path,
    site: str,
    mqtt: dict[str, Any],
    *,
    with_api: bool = False,
) -> Centre:
    d = tmp_path / f"centre-{site}"
    d.mkdir(parents=True, exist_ok=True)
    await asyncio.to_thread(shutil.copyfile, accounts_db, d / "wallctl.db")
    raw = raw_config(site)
    raw["mqtt"] = mqtt
    cfg = parse_config(raw).config
    store = Store(d / "wallctl.db", "normal")
    walls = WallService(store, build_walls(cfg), cfg.sources, load_layouts(cfg))
    await walls.load({"main": ("2x2", ["bars", "gradient", "checkers", "clock"])})
    bus = EventBus()
    services: dict[str, Any] = {}
    api = None
    if with_api:
        api = ApiServer(
            ApiConfig(port=0, login_delay_ms=50),
            walls,
            store,
            Accounts(store),
            bus=bus,
            services=services,
        )
        await api.start()
    comp = MqttComponent(
        cfg.mqtt,
        site=site,
        centre_name=cfg.daemon.name,
        walls=walls,
        store=store,
        bus=bus,
        services=services,
    )
    await comp.start()
    return Centre(site, store, walls, bus, comp, api, services)


async def wait_until(pred: Any, within: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if pred():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@contextlib.asynccontextmanager
async def caller(broker: Broker, site: str, user: str) -> AsyncIterator[Caller]:
    async with broker.client(user) as client:
        c = Caller(client, site, user)
        await client.subscribe(f"wallctl/{site}/reply/{user}/#", qos=1)
        yield c


class Caller:
    """Sends commands on the account's topic and waits for the correlated answer."""

    def __init__(self, client: aiomqtt.Client, site: str, user: str) -> None:
        self.client = client
        self.site = site
        self.user = user
        self.seq = 0

    async def send_raw(
        self,
        payload: bytes,
        *,
        topic: str | None = None,
        response_topic: str | None = None,
        correlation: bytes | None = None,
        wait: float = 10.0,
    ) -> tuple[str, dict[str, Any], bytes | None]:
        self.seq += 1
        corr = correlation if correlation is not None else f"c{self.seq}".encode()
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = response_topic or f"wallctl/{self.site}/reply/{self.user}/t"
        props.CorrelationData = corr
        await self.client.publish(
            topic or f"wallctl/{self.site}/cmd/{self.user}", payload, qos=1, properties=props
        )
        async with asyncio.timeout(wait):
            async for m in self.client.messages:
                got = getattr(m.properties, "CorrelationData", None)
                if got is not None and bytes(got) == corr:
                    assert isinstance(m.payload, bytes)
                    return m.topic.value, json.loads(m.payload), bytes(got)
        raise AssertionError("unreachable")

    async def call(
        self, method: str, params: dict[str, Any] | None = None, **kw: Any
    ) -> tuple[str, dict[str, Any], bytes | None]:
        body = {"op": "request", "id": f"r{self.seq + 1}", "method": method}
        body["params"] = params or {}
        body.update(kw)
        return await self.send_raw(json.dumps(body).encode())


async def read_retained(broker: Broker, user: str, topic: str, within: float = 5) -> Any:
    """One retained message read by mosquitto_sub, an independent client."""
    proc = await asyncio.create_subprocess_exec(
        "mosquitto_sub",
        *broker.cli(user),
        "-t",
        topic,
        "-C",
        "1",
        "-W",
        str(int(within)),
        "--retained-only",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise AssertionError(f"mosquitto_sub failed ({proc.returncode}): {err.decode()}")
    if not out.strip():
        # --retained-only exits quietly on a live (non-retained) message: none retained yet.
        return None
    return json.loads(out)


async def read_retained_until(
    broker: Broker, user: str, topic: str, pred: Any, within: float = 10
) -> Any:
    """The retained message once ``pred`` holds for it (a publish may still be in flight)."""
    deadline = time.monotonic() + within
    while True:
        value = await read_retained(broker, user, topic)
        if (value is not None and pred(value)) or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.05)
