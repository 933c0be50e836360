"""Protocol name -> driver class, config model, simulator factory and manifest.

Each protocol package registers itself with one :func:`register` call in its
``__init__.py``; :func:`load_all` imports the packages listed in ``PACKAGES`` (a
protocol added later appends its package there). Names are those used in config
(``protocol = "extron-sis"``) and by ``wallctl simulate``.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from drivers.contract import Driver, DriverConfig, Manifest
from drivers.simulator import DeviceSimulator, RunningSimulator, serve_tcp


@dataclass(frozen=True)
class SimOptions:
    """What ``wallctl simulate`` and ``simulate = true`` devices can set."""

    inputs: int = 16
    outputs: int = 16
    password: str | None = None
    reply_delay_s: float = 0.0
    # The user name a simulator with accounts accepts (None: the protocol's default).
    user: str | None = None
    # For ``simulate = true``: the driver options the device's config sets (validated;
    # defaults left out), so the simulator plays the device configured -- display IDs,
    # daisy chain, warm-up, TLS. From ``wallctl simulate``: ``--option KEY=VALUE`` and
    # the flags extensions add. A factory reads the keys it knows, ignores the rest.
    options: dict[str, Any] = field(default_factory=dict)


SimulatorFactory = Callable[[SimOptions], DeviceSimulator]
# ``host(options, address, port)``: start a simulator that is not a byte stream (HTTPS,
# WebSocket) listening there, and return it running. Raises ValueError on options it
# cannot honour, OSError when it cannot listen.
SimulatorHost = Callable[[SimOptions, str, int], Awaitable[RunningSimulator]]


@dataclass(frozen=True)
class Protocol:
    name: str
    driver: type[Driver]
    config_model: type[DriverConfig]
    # The byte-stream device model (TCP, pty, serial); may raise NotImplementedError
    # for a protocol that only has a ``host``.
    simulator: SimulatorFactory
    manifest: Manifest
    host: SimulatorHost | None = None

    async def serve(
        self, options: SimOptions, address: str = "127.0.0.1", port: int = 0
    ) -> RunningSimulator:
        """The protocol's simulator listening on ``address:port`` (0: a free port): its
        own host when it has one, else its device model on a TCP port."""
        if self.host is not None:
            return await self.host(options, address, port)
        return await serve_tcp(self.simulator(options), address, port)

    def simulation_problem(self, options: SimOptions) -> str | None:
        """Why ``simulate = true`` cannot work for this protocol (None when it can), for
        ``wallctl check``: a protocol with neither a host nor a byte-stream model, or
        options its model refuses. A host's own refusals show when it starts."""
        if self.host is not None:
            return None
        try:
            self.simulator(options)
        except (NotImplementedError, ValueError) as e:
            return str(e)
        return None


PROTOCOLS: dict[str, Protocol] = {}
# Packages that failed to import: package -> why (so one broken protocol never takes
# the others, or `wallctl check`, down with it).
BROKEN: dict[str, str] = {}

PACKAGES = [
    "drivers.extron_sis",
    "drivers.kramer_p3000",
    "drivers.videohub",
    "drivers.samsung_mdc",
    "drivers.lg",
    "drivers.cisco_xapi",
    "drivers.huawei_te",
    "drivers.onvif",
]


def register(
    driver: type[Driver], simulator: SimulatorFactory, *, host: SimulatorHost | None = None
) -> Protocol:
    m = driver.manifest
    entry = Protocol(m.protocol, driver, driver.config_model, simulator, m, host)
    PROTOCOLS[m.protocol] = entry
    return entry


def load_all() -> dict[str, Protocol]:
    """Import every protocol package (a missing one is skipped: it is not built yet)."""
    for pkg in PACKAGES:
        if pkg in BROKEN:
            continue
        try:
            importlib.import_module(pkg)
        except ModuleNotFoundError as e:
            if e.name != pkg:
                BROKEN[pkg] = repr(e)
        except Exception as e:
            BROKEN[pkg] = repr(e)
    return PROTOCOLS


def get(name: str) -> Protocol:
    load_all()
    try:
        return PROTOCOLS[name]
    except KeyError:
        known = ", ".join(sorted(PROTOCOLS)) or "none"
        broken = "".join(f"; {pkg} failed to load: {why}" for pkg, why in BROKEN.items())
        raise KeyError(f"unknown protocol {name!r} (known: {known}){broken}") from None
