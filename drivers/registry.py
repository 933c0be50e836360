"""Protocol name -> driver class, config model, simulator factory and manifest.

Each protocol package registers itself with one :func:`register` call in its
``__init__.py``; :func:`load_all` imports the packages listed in ``PACKAGES`` (a
protocol added later appends its package there). Names are those used in config
(``protocol = "extron-sis"``) and by ``wallctl simulate``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from drivers.contract import Driver, DriverConfig, Manifest
from drivers.simulator import DeviceSimulator


@dataclass(frozen=True)
class SimOptions:
    """What ``wallctl simulate`` and ``simulate = true`` devices can set."""

    inputs: int = 16
    outputs: int = 16
    password: str | None = None
    reply_delay_s: float = 0.0


SimulatorFactory = Callable[[SimOptions], DeviceSimulator]


@dataclass(frozen=True)
class Protocol:
    name: str
    driver: type[Driver]
    config_model: type[DriverConfig]
    simulator: SimulatorFactory
    manifest: Manifest


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


def register(driver: type[Driver], simulator: SimulatorFactory) -> Protocol:
    m = driver.manifest
    entry = Protocol(m.protocol, driver, driver.config_model, simulator, m)
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
